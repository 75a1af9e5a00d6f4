"""An agent's view of Warden: connect with the official MCP Python SDK, list
the tools, call one, and show what a refusal looks like.

    python list_and_call.py http://127.0.0.1:8700/mcp
    python list_and_call.py --stdio warden --config warden.toml serve --stdio
"""

import asyncio
import sys

from mcp.client import Client
from mcp.client.stdio import StdioServerParameters


async def main(argv):
    if argv[:1] == ["--stdio"]:
        target = StdioServerParameters(command=argv[1], args=argv[2:])
    else:
        target = argv[0] if argv else "http://127.0.0.1:8700/mcp"
    async with Client(target) as client:
        print(f"connected: protocol {client.session.protocol_version}")
        tools = (await client.list_tools()).tools
        print(f"{len(tools)} tools:")
        for t in tools:
            print(f"  {t.name:16} {t.description or t.title or ''}")
        r = await client.call_tool("text.case", {"text": "agents call warden", "to": "title"})
        print(f"tools/call text.case -> {r.structured_content}")
        r = await client.call_tool("json.merge", {"base": {}, "patch": {}})
        print(f"tools/call json.merge -> isError={r.is_error}: {r.content[0].text}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
