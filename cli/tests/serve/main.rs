//! `warden serve` driven by real MCP clients: the official Python SDK
//! (both protocol revisions, stdio and HTTP), the TypeScript v2 client, MCP
//! Inspector's CLI, and raw HTTP for the transport's refusals and its front
//! door under attack.

#[path = "../../../host/tests/support/components.rs"]
mod components;
#[path = "../../../host/tests/support/mcp_server.rs"]
mod mcp_server;

mod clients;
mod front_door;
mod lifecycle;
mod transport;
mod util;
