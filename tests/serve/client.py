"""Drives `warden serve` with the official MCP Python SDK client (`mcp` 2.3.0).

Used by cli/tests/serve: each scenario checks what it sees and prints one JSON
line per observation; it exits non-zero (with the reason on stderr) when a
check fails.

    client.py suite  --mode auto|legacy (--url URL [--token T] | --stdio WARDEN CONFIG)
    client.py watch  --mode auto|legacy --url URL
    client.py count  --mode auto|legacy --url URL --tool ID --times N [--handle H]
    client.py progress --mode auto|legacy (--url URL | --stdio WARDEN CONFIG) --tool ID --times N [--key K]
    client.py spread --mode auto|legacy --url URL --times N [--pause-ms P]
    client.py calls --url URL --calls '[["tool", {args}], ...]'
"""

import argparse
import asyncio
import json
import sys

import httpx2
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
import mcp_types as types


def report(**fields):
    print(json.dumps(fields), flush=True)


def fail(why):
    print(f"FAILED: {why}", file=sys.stderr, flush=True)
    sys.exit(1)


def check(cond, why):
    if not cond:
        fail(why)


def target(args):
    if args.stdio:
        warden, config = args.stdio
        return StdioServerParameters(command=warden, args=["--config", config, "serve", "--stdio"])
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60.0))
    return streamable_http_client(args.url, http_client=http)


def text_of(result):
    return "".join(c.text for c in result.content if getattr(c, "type", None) == "text")


class Approvals:
    """Answers approval questions from a script: True approves, False refuses."""

    def __init__(self):
        self.answers = []
        self.asked = []

    async def __call__(self, context, params):
        self.asked.append(params.message)
        approve = self.answers.pop(0) if self.answers else False
        return types.ElicitResult(action="accept", content={"approve": approve})


async def suite(args):
    approvals = Approvals()
    meta = {"dev.warden/session": "suite"} if args.mode != "legacy" else None
    async with Client(target(args), mode=args.mode, elicitation_callback=approvals,
                      client_info=types.Implementation(name="suite-client", version="1.0")) as client:
        version = client.session.protocol_version
        report(check="version", version=version)
        check(version == ("2025-11-25" if args.mode == "legacy" else "2026-07-28"), f"negotiated {version}")

        tools = (await client.list_tools()).tools
        names = [t.name for t in tools]
        check(names == sorted(names), "tools/list is not in a deterministic (sorted) order")
        check("text.case" in names, f"text.case missing from {names}")
        case = next(t for t in tools if t.name == "text.case")
        check(case.input_schema.get("type") == "object" and "text" in case.input_schema["properties"],
              f"text.case inputSchema: {case.input_schema}")
        check(case.output_schema and case.output_schema.get("type") == "object", "no outputSchema")
        report(check="list", tools=len(names))

        r = await client.call_tool("text.case", {"text": "hello there", "to": "upper"}, meta=meta)
        check(not r.is_error, f"valid call failed: {text_of(r)}")
        check(r.structured_content == {"text": "HELLO THERE"}, f"structuredContent {r.structured_content}")
        check(json.loads(text_of(r)) == {"text": "HELLO THERE"}, f"text block {text_of(r)}")
        report(check="call", ok=True)

        r = await client.call_tool("text.case", {"text": 5, "to": "upper"}, meta=meta)
        check(r.is_error and "invalid input" in text_of(r), f"invalid input: {r}")
        report(check="invalid", text=text_of(r))

        r = await client.call_tool("text.hash", {"text": "x", "rounds": 100000000}, meta=meta)
        check(r.is_error and "limit" in text_of(r), f"limit: {text_of(r)}")
        report(check="limit", text=text_of(r))

        r = await client.call_tool("json.merge", {"base": {}, "patch": {}}, meta=meta)
        check(r.is_error and "refused by policy rule" in text_of(r), f"denial: {text_of(r)}")
        report(check="denied", text=text_of(r))

        approvals.answers = [True]
        r = await client.call_tool("text.stats", {"text": "two words"}, meta=meta)
        check(len(approvals.asked) == 1 and "text.stats" in approvals.asked[0], f"asked {approvals.asked}")
        check(not r.is_error and r.structured_content["words"] == 2, f"approved call: {text_of(r)}")
        report(check="approved", asked=approvals.asked[0])

        approvals.answers = [False]
        r = await client.call_tool("text.stats", {"text": "three words here"}, meta=meta)
        check(len(approvals.asked) == 2, "not asked the second time")
        check(r.is_error and "not approved" in text_of(r), f"refused approval: {text_of(r)}")
        report(check="refused", text=text_of(r))

        counts = []
        for _ in range(3):
            r = await client.call_tool("hostile.session-count", {}, meta=meta)
            check(not r.is_error, f"session call: {text_of(r)}")
            counts.append(r.structured_content["result"])
        check(counts == [1, 2, 3], f"session counts {counts}")
        report(check="session", counts=counts)

        try:
            await client.call_tool("no.such.tool", {}, meta=meta)
            fail("an unknown tool did not fail")
        except Exception as e:  # MCPError
            report(check="unknown", error=str(e))

    # A second client: a session of its own.
    async with Client(target(args), mode=args.mode) as other:
        meta = {"dev.warden/session": "other"} if args.mode != "legacy" else None
        r = await other.call_tool("hostile.session-count", {}, meta=meta)
        check(r.structured_content["result"] == 1, f"second client's count {text_of(r)}")
        # Without elicitation it cannot approve anything.
        r = await other.call_tool("text.stats", {"text": "a"}, meta=meta)
        check(r.is_error and "cannot ask its user" in text_of(r), f"no elicitation: {text_of(r)}")
        report(check="second-client", ok=True)
    report(done=True)


async def watch(args):
    """Prints READY, waits for a tool-list change, prints the new list."""
    async with Client(target(args), mode=args.mode, cache=None) as client:
        before = [t.name for t in (await client.list_tools()).tools]
        if args.mode == "legacy":
            changed = asyncio.Event()

            async def on_message(message):
                if getattr(message, "method", None) == "notifications/tools/list_changed":
                    changed.set()

            client.session._message_handler = on_message  # noqa: the SDK's hook for notifications
            report(ready=True, tools=len(before))
            await asyncio.wait_for(changed.wait(), 60)
        else:
            async with client.listen(tools_list_changed=True) as sub:
                report(ready=True, tools=len(before))
                async def first():
                    async for event in sub:
                        return event
                event = await asyncio.wait_for(first(), 60)
                report(event=type(event).__name__)
        after = [t.name for t in (await client.list_tools()).tools]
        report(changed=True, added=sorted(set(after) - set(before)), removed=sorted(set(before) - set(after)))


async def count(args):
    meta = {"dev.warden/session": args.handle} if args.handle else None
    async with Client(target(args), mode=args.mode) as client:
        seen = []
        for _ in range(args.times):
            r = await client.call_tool(args.tool, {}, meta=meta)
            check(not r.is_error, text_of(r))
            seen.append(r.structured_content["result"])
        report(counts=seen)
        if args.hold:
            report(ready=True)
            await asyncio.sleep(3600)


async def progress(args):
    """Calls a tool that reports progress N times; reports what it heard."""
    heard = []

    async def on_progress(done, total, message):
        heard.append({"progress": done, "total": total, "message": message})

    async with Client(target(args), mode=args.mode) as client:
        r = await client.call_tool(args.tool, {args.key: args.times}, progress_callback=on_progress)
        check(not r.is_error, text_of(r))
        report(progress=heard, text=text_of(r))


async def spread(args):
    """Calls text.case N times in one client (one session in legacy mode),
    reporting each call as it ends; a call that fails is reported, not fatal
    (a replica behind a load balancer may die under it)."""
    async with Client(target(args), mode=args.mode) as client:
        report(version=client.session.protocol_version)
        for n in range(args.times):
            try:
                r = await client.call_tool("text.case", {"text": f"call {n}", "to": "upper"})
                ok = not r.is_error and r.structured_content == {"text": f"CALL {n}"}
                report(call=n, ok=ok, text="" if ok else text_of(r))
            except Exception as e:  # the transport's or the server's error
                report(call=n, ok=False, text=f"{type(e).__name__}: {e}")
            await asyncio.sleep(args.pause_ms / 1000)
    report(done=True)


async def calls(args):
    """Lists the tools, then makes each call in --calls, reporting each outcome."""
    async with Client(target(args), mode=args.mode,
                      client_info=types.Implementation(name="calls-client", version="1.0")) as client:
        tools = await client.list_tools()
        report(tools=sorted(t.name for t in tools.tools))
        for tool, arguments in json.loads(args.calls):
            try:
                r = await client.call_tool(tool, arguments)
                meta = r.meta or {}
                report(tool=tool, ok=not r.is_error, structured=r.structured_content,
                       text=text_of(r), kind=meta.get("dev.warden/error"))
            except Exception as e:  # the transport's or the server's error
                report(tool=tool, ok=False, text=f"{type(e).__name__}: {e}", kind="exception")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=["suite", "watch", "count", "progress", "spread", "calls"])
    p.add_argument("--mode", default="auto")
    p.add_argument("--url")
    p.add_argument("--token")
    p.add_argument("--stdio", nargs=2, metavar=("WARDEN", "CONFIG"))
    p.add_argument("--tool", default="hostile.session-count")
    p.add_argument("--times", type=int, default=3)
    p.add_argument("--key", default="arg", help="the input key that takes --times")
    p.add_argument("--handle")
    p.add_argument("--hold", action="store_true")
    p.add_argument("--pause-ms", type=int, default=0)
    p.add_argument("--calls", default="[]", help="JSON list of [tool, arguments]")
    args = p.parse_args()
    scenarios = {"suite": suite, "watch": watch, "count": count, "progress": progress, "spread": spread,
                 "calls": calls}
    asyncio.run(scenarios[args.scenario](args))


if __name__ == "__main__":
    main()
