//! `warden serve` driven by real MCP clients: the official Python SDK
//! (both protocol revisions, stdio and HTTP), the TypeScript v2 client, MCP
//! Inspector's CLI, and raw HTTP for the transport's refusals and its front
//! door under attack.

use warden_test_support::{components, mcp_server};

mod attest;
mod clients;
mod cluster;
mod cluster_settings;
mod cluster_tasks;
mod federation;
mod front_door;
mod hostile_central;
mod lifecycle;
mod marketplace;
mod oauth;
mod principals;
mod registries;
mod tasks;
mod telemetry;
mod transport;
mod updates;
mod util;
