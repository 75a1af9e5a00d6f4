"""An MCP server on the official Python SDK, for Warden's tests and benchmarks.

Serves streamable HTTP on 127.0.0.1 at /mcp. Tools:
  count()        calls so far in this MCP session (1, 2, 3, ...)
  add(a, b)      a + b
  echo(text)     text
  fail(message)  a tool error (isError) with message
  slow(ms)       sleeps ms milliseconds, then answers "slept" (notes
                 `slow cancelled` or `slow finished` in <log>.events)
  secret_tool()  hidden by a deny filter in tests

Options: --port P (0 picks one; the chosen port is printed as `PORT <n>`),
--json (JSON responses instead of SSE), --stateless, --token T (bearer auth),
--log FILE (one line per HTTP request: `METHOD session-id`).
"""

import argparse
import asyncio
import json
import socket
import sys

import uvicorn
from typing import Annotated

from pydantic import BaseModel, Field
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import Icon, ToolAnnotations

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, default=0)
ap.add_argument("--json", action="store_true")
ap.add_argument("--stateless", action="store_true")
ap.add_argument("--token")
ap.add_argument("--log")
# Which protocol revisions it accepts: both (the SDK's default), only the
# 2025-era handshake (like servers on older SDKs: a 2026-07-28 request gets
# 400 asking for a session), or only 2026-07-28 (a handshake gets -32022).
ap.add_argument("--era", choices=["both", "legacy", "modern"], default="both")
args = ap.parse_args()

sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", args.port))
sock.listen(128)
port = sock.getsockname()[1]


class Verifier:
    async def verify_token(self, token: str):
        if token == args.token:
            return AccessToken(token=token, client_id="warden-test", scopes=[])
        return None


auth = {}
if args.token:
    base = f"http://127.0.0.1:{port}"
    auth = dict(
        token_verifier=Verifier(),
        auth=AuthSettings(issuer_url=base, resource_server_url=f"{base}/mcp", required_scopes=[]),
    )

server = MCPServer("warden-test", **auth)
counts: dict[str, int] = {}


@server.tool()
def count(ctx: Context) -> int:
    """Counts calls in this MCP session."""
    headers = ctx.headers or {}
    sid = headers.get("mcp-session-id", "")
    counts[sid] = counts.get(sid, 0) + 1
    return counts[sid]


@server.tool(annotations=ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False))
def add(a: int, b: int) -> int:
    """Adds two integers."""
    return a + b


@server.tool()
def echo(text: str) -> str:
    """Returns its input."""
    return text


@server.tool()
async def steps(n: int, ctx: Context) -> int:
    """Reports progress `n` times, then returns `n`."""
    for i in range(1, n + 1):
        await ctx.report_progress(i, n, f"step {i}")
        await asyncio.sleep(0.01)
    return n


@server.tool()
def fail(message: str) -> str:
    """Always fails with a tool error."""
    raise ToolError(message)


def event(text: str) -> None:
    """Notes what a tool saw in `<log>.events` (with --log)."""
    if args.log:
        with open(args.log + ".events", "a") as f:
            f.write(text + "\n")


@server.tool()
async def slow(ms: int) -> str:
    """Sleeps `ms` milliseconds. Notes `slow cancelled` if cancelled first."""
    try:
        await asyncio.sleep(ms / 1000)
    except asyncio.CancelledError:
        event("slow cancelled")
        raise
    event("slow finished")
    return "slept"


class Address(BaseModel):
    street: str
    zip: int


class Order(BaseModel):
    item: str
    to: Address


@server.tool()
def ship(order: Order) -> str:
    """Takes a nested model (its input schema uses $ref/$defs)."""
    return f"{order.item} to {order.to.street}"


@server.tool()
def big(n: int) -> str:
    """Returns `n` bytes of text."""
    return "x" * n


@server.tool()
def code(code: Annotated[str, Field(pattern="^[A-Z]{3}$")]) -> str:
    """Takes a code matching a pattern (which RTFS types cannot express)."""
    return code


@server.tool(title="Wipe everything", annotations=ToolAnnotations(destructiveHint=True),
             icons=[Icon(src="https://example.com/wipe.png", mimeType="image/png", sizes=["48x48"])])
def wipe() -> str:
    """Pretends to delete everything."""
    return "wiped"


@server.tool()
def secret_tool() -> str:
    """A tool the tests filter out."""
    return "should not be reachable"


app = server.streamable_http_app(json_response=args.json, stateless_http=args.stateless)


HANDSHAKE = {"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"}


async def refuse(send, body):
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": 400,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


class RequestLog:
    """Logs each request (method, session id, protocol header) and applies `--era`."""

    def __init__(self, inner, path):
        self.inner = inner
        self.path = path

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            version = headers.get(b"mcp-protocol-version", b"-").decode()
            if self.path:
                sid = headers.get(b"mcp-session-id", b"-").decode()
                with open(self.path, "a") as f:
                    f.write(f"{scope['method']} {sid} {version}\n")
            modern = version not in HANDSHAKE and version != "-"
            if scope["method"] == "POST" and args.era == "legacy" and modern:
                return await refuse(send, {"jsonrpc": "2.0", "id": None, "error": {
                    "code": -32000, "message": "Bad Request: No valid session ID provided"}})
            if scope["method"] == "POST" and args.era == "modern" and not modern:
                return await refuse(send, {"jsonrpc": "2.0", "id": None, "error": {
                    "code": -32022, "message": f"Unsupported protocol version: {version}",
                    "data": {"supported": ["2026-07-28"]}}})
            if scope["method"] == "POST":
                receive = noting_cancellations(receive)
        await self.inner(scope, receive, send)


def noting_cancellations(receive):
    """`receive`, noting each `notifications/cancelled` in the events."""
    body = bytearray()

    async def wrapped():
        message = await receive()
        if message["type"] == "http.request":
            body.extend(message.get("body", b""))
            if not message.get("more_body"):
                try:
                    rpc = json.loads(body)
                except ValueError:
                    rpc = None
                if isinstance(rpc, dict) and rpc.get("method") == "notifications/cancelled":
                    event(f"notified cancelled {rpc.get('params', {}).get('requestId')}")
        return message

    return wrapped


config = uvicorn.Config(RequestLog(app, args.log), log_level="warning")
userver = uvicorn.Server(config)
print(f"PORT {port}", flush=True)
asyncio.run(userver.serve(sockets=[sock]))
