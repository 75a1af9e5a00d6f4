"""An A2A agent on the official Python SDK (a2a-sdk 1.3.0), for Warden's tests.

Options: --port P (0 picks one; the chosen port is printed as `PORT <n>`),
--log FILE (one line per request: `<path> <A2A-Version or -> <JSON-RPC method or ->
<the credential header or ->`; what the skills note goes to FILE.events), --era both|0.3
(`both`: 1.0 with 0.3 beside it on one URL, one card with both views; `0.3`:
0.3 only, with a 0.3 card), --token T (JSON-RPC requests need `Bearer T`;
the card stays public), --token-header H (the token goes in header H, as
is, instead of `Authorization: Bearer`), --stall-ms N (every JSON-RPC
response starts N ms late), --no-stream (the card says it cannot stream).

Skills (picked by message metadata `skill`, else the text's first word):
echo (a reply without a task), data (a task with a data artifact), count
(three text chunks of one artifact, streamed), slow (works until cancelled or
30 s; notes `slow cancelled`), ask (input-required; the answer completes it),
fail (failed), turn (says how many messages its conversation has seen); the
extended card adds `secret`.
"""
import argparse
import asyncio
import json
import os
import socket
import stat
import sys
import threading

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import a2a.server.routes  # before the compat import (a circular import otherwise)
from a2a.compat.v0_3.conversions import to_compat_agent_card
from a2a.compat.v0_3.jsonrpc_adapter import JSONRPC03Adapter
from a2a.helpers import new_data_part, new_task_from_user_message, new_text_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types.a2a_pb2 import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
from google.protobuf.json_format import MessageToDict

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, default=0)
ap.add_argument("--log")
ap.add_argument("--era", choices=["both", "0.3"], default="both")
ap.add_argument("--token")
ap.add_argument("--token-header", default="authorization")
ap.add_argument("--stall-ms", type=int, default=0)
ap.add_argument("--no-stream", action="store_true")
args = ap.parse_args()

sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
# Inherited by accepted connections: a kept-alive client's response is not
# held back by Nagle until its delayed ACK (40 ms).
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
sock.bind(("127.0.0.1", args.port))
sock.listen(128)
PORT = sock.getsockname()[1]
BASE = f"http://127.0.0.1:{PORT}/"
TURNS = {}


def note(line):
    if args.log:
        with open(args.log + ".events", "a") as f:
            f.write(line + "\n")


def skill(i, d):
    return AgentSkill(id=i, name=i, description=d, tags=[i], examples=[f"{i} hello"])


versions = ["1.0", "0.3"] if args.era == "both" else ["0.3"]
CARD = AgentCard(
    name="warden-test-agent",
    description="A2A agent for Warden's tests",
    version="1.0.0",
    supported_interfaces=[
        AgentInterface(url=BASE, protocol_binding="JSONRPC", protocol_version=v) for v in versions
    ],
    capabilities=AgentCapabilities(
        streaming=not args.no_stream, push_notifications=False, extended_agent_card=True
    ),
    default_input_modes=["text/plain", "application/json"],
    default_output_modes=["text/plain", "application/json"],
    skills=[
        skill("echo", "Replies with the text it was sent"),
        skill("data", "Completes a task with a data artifact"),
        skill("count", "Three chunks of one text artifact"),
        skill("slow", "Works until cancelled"),
        skill("ask", "Asks for a name, then thanks"),
        skill("fail", "Fails"),
        skill("turn", "Counts the messages of its conversation"),
    ],
)


def pick(ctx):
    meta = MessageToDict(ctx.message.metadata) if ctx.message.HasField("metadata") else {}
    name = meta.get("skill")
    if not name:
        words = ctx.get_user_input().split()
        name = words[0].lower() if words else "echo"
    return name


class Executor(AgentExecutor):
    async def execute(self, ctx: RequestContext, q: EventQueue) -> None:
        text = ctx.get_user_input()
        task = ctx.current_task
        if task is not None and task.status.state == 6:  # an answer to input-required
            up = TaskUpdater(q, task.id, task.context_id)
            await up.complete(up.new_agent_message([new_text_part(f"thanks, {text}")]))
            return
        name = pick(ctx)
        if name in ("echo", "turn"):
            TURNS[ctx.context_id] = TURNS.get(ctx.context_id, 0) + 1
            reply = f"echo: {text}" if name == "echo" else f"turn {TURNS[ctx.context_id]}"
            data = [new_data_part(MessageToDict(p.data)) for p in ctx.message.parts if p.HasField("data")]
            msg = new_text_message(reply, context_id=ctx.context_id, task_id=None)
            msg.parts.extend(data)
            await q.enqueue_event(msg)
            return
        if task is None:
            task = new_task_from_user_message(ctx.message)
            await q.enqueue_event(task)
        up = TaskUpdater(q, task.id, task.context_id)
        if name == "data":
            await up.add_artifact([new_data_part({"answer": 42, "items": ["a", "b"]})], name="result")
            await up.complete()
        elif name == "count":
            await up.start_work(up.new_agent_message([new_text_part("counting")]))
            for i in range(3):
                await asyncio.sleep(0.05)
                await up.add_artifact([new_text_part(f"chunk {i}")], artifact_id="count", name="count",
                                      append=i > 0, last_chunk=i == 2)
            await up.complete(up.new_agent_message([new_text_part("counted")]))
        elif name == "slow":
            await up.start_work(up.new_agent_message([new_text_part("working")]))
            note("slow started")
            for _ in range(300):
                await asyncio.sleep(0.1)
            note("slow finished")
            await up.complete()
        elif name == "ask":
            await up.requires_input(up.new_agent_message([new_text_part("What is your name?")]))
        elif name == "fail":
            await up.failed(up.new_agent_message([new_text_part("it failed on purpose")]))
        else:
            await up.reject(up.new_agent_message([new_text_part(f"no skill {name}")]))

    async def cancel(self, ctx: RequestContext, q: EventQueue) -> None:
        note("slow cancelled")
        up = TaskUpdater(q, ctx.task_id, ctx.context_id)
        await up.cancel(up.new_agent_message([new_text_part("cancelled")]))


# The extended card (read with credentials) lists one more skill.
EXTENDED = AgentCard()
EXTENDED.CopyFrom(CARD)
EXTENDED.skills.append(skill("secret", "Only in the extended card"))
handler = DefaultRequestHandler(
    agent_executor=Executor(), task_store=InMemoryTaskStore(), agent_card=CARD, extended_agent_card=EXTENDED
)

if args.era == "both":
    routes = [*create_agent_card_routes(CARD), *create_jsonrpc_routes(handler, rpc_url="/", enable_v0_3_compat=True)]
else:
    adapter = JSONRPC03Adapter(http_handler=handler)
    CARD03 = to_compat_agent_card(CARD).model_dump(mode="json", by_alias=True, exclude_none=True)

    async def card(_: Request):
        return JSONResponse(CARD03)

    async def rpc(request: Request):
        body = await request.json()
        rid, method = body.get("id"), body.get("method")
        if not isinstance(method, str) or not adapter.supports_method(method):
            return JSONResponse({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "Method not found"}})
        return await adapter.handle_request(request_id=rid, method=method, body=body, request=request)

    routes = [Route("/.well-known/agent-card.json", card, methods=["GET"]), Route("/", rpc, methods=["POST"])]


class Gate:
    """Logs each request; with --token, JSON-RPC requests need the bearer token."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        body = b""
        more = True
        while more:
            m = await receive()
            body += m.get("body", b"")
            more = m.get("more_body", False)
        method = "-"
        if body:
            try:
                method = json.loads(body).get("method", "-")
            except Exception:
                pass
        if args.log:
            with open(args.log, "a") as f:
                f.write(f"{scope['path']} {headers.get('a2a-version', '-')} {method} {headers.get(args.token_header.lower(), '-')}\n")
        expected = f"Bearer {args.token}" if args.token_header.lower() == "authorization" else args.token
        if args.token and scope["method"] == "POST" and headers.get(args.token_header.lower()) != expected:
            return await JSONResponse({"error": "unauthorized"}, status_code=401)(scope, receive, send)
        if args.stall_ms and scope["method"] == "POST":
            await asyncio.sleep(args.stall_ms / 1000)
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)


def watch_parent():
    """Exits when the test process that started it ends (its stdin, a pipe, closes)."""
    sys.stdin.read()
    os._exit(0)


app = Gate(Starlette(routes=routes))
if stat.S_ISFIFO(os.fstat(0).st_mode):
    threading.Thread(target=watch_parent, daemon=True).start()
print(f"PORT {PORT}", flush=True)
uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
