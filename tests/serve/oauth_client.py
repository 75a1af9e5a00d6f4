"""The official MCP Python SDK's OAuth client against `warden serve`: it is
refused (401), finds the authorization server through the protected
resource metadata, registers itself, runs the authorization code flow with
PKCE and the resource indicator (the provider's login and consent approve
by themselves; the redirects are followed here, headless), then lists the
tools and calls one. Prints one JSON line per observation.

    oauth_client.py URL TOOL ARGUMENTS_JSON
"""

import asyncio
import json
import sys
from urllib.parse import parse_qs, urljoin, urlparse

import httpx2
from mcp import ClientSession
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata

REDIRECT = "http://127.0.0.1:9/callback"  # never listened on: the code is read off the redirect


class Memory:
    tokens = None
    client = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, info):
        self.client = info


def report(**fields):
    print(json.dumps(fields), flush=True)


async def main(url, tool, arguments):
    result = {}

    async def redirect_handler(authorize_url):
        report(step="authorize", resource=parse_qs(urlparse(authorize_url).query).get("resource"))
        async with httpx2.AsyncClient(follow_redirects=False) as agent:
            response = await agent.get(authorize_url)
            for _ in range(20):
                if response.status_code not in (302, 303):
                    break
                location = urljoin(str(response.url), response.headers["location"])
                if location.startswith(REDIRECT):
                    query = parse_qs(urlparse(location).query)
                    result.update({k: v[0] for k, v in query.items()})
                    return
                response = await agent.get(location)
            raise RuntimeError(f"the authorization flow stopped at {response.url}: {response.status_code}")

    async def callback_handler():
        if "code" not in result:
            raise RuntimeError(f"no code: {result}")
        return AuthorizationCodeResult(code=result["code"], state=result.get("state"), iss=result.get("iss"))

    metadata = OAuthClientMetadata(
        redirect_uris=[REDIRECT], token_endpoint_auth_method="none", client_name="warden-test"
    )
    storage = Memory()
    auth = OAuthClientProvider(url, metadata, storage, redirect_handler, callback_handler)
    async with httpx2.AsyncClient(auth=auth) as http:
        async with streamable_http_client(url, http_client=http) as (read, write, *_):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = await session.list_tools()
                report(step="tools", names=[t.name for t in tools.tools])
                called = await session.call_tool(tool, json.loads(arguments))
                report(step="call", error=called.is_error, structured=called.structured_content)
    report(step="token", registered=storage.client is not None, has_token=storage.tokens is not None)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
