//! `warden serve`: the host as an MCP server.

use anyhow::Context;
use clap::Args;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use warden_serve::Server;

#[derive(Args)]
#[command(group = clap::ArgGroup::new("transport").required(true).multiple(true))]
pub(crate) struct ServeArgs {
    /// Serve one client on stdin/stdout.
    #[arg(long, group = "transport")]
    stdio: bool,
    /// Serve streamable HTTP on ADDR (a port alone means 127.0.0.1).
    #[arg(long, value_name = "ADDR", group = "transport", num_args = 0..=1,
          default_missing_value = "127.0.0.1:8700", value_parser = parse_addr)]
    http: Option<SocketAddr>,
    /// Do not reload when the configuration or a component changes
    /// (SIGHUP still reloads).
    #[arg(long)]
    no_watch: bool,
}

pub(crate) async fn run(args: ServeArgs, config: &Path) -> anyhow::Result<()> {
    let ServeArgs {
        stdio,
        http,
        no_watch,
    } = args;
    eprintln!("warden serve: loading {} (the first load of a plugin compiles it; later loads come from the cache)", config.display());
    let server = Server::from_config_file(config).await?;
    let tools = server.host().capabilities().len();
    // Readiness: what is served, and what was refused at load (the others
    // are served; `[host] strict-load = true` refuses to start instead).
    for (name, why) in server.host().refused_plugins() {
        eprintln!("warden serve: plugin `{name}` refused at load, not served: {why}");
    }
    // From here on a stop signal drains and stops (before, it ends the load).
    let signals = warden_serve::StopSignals::listen();
    let mut transports: Vec<Pin<Box<dyn Future<Output = ()> + Send>>> = Vec::new();
    if let Some(addr) = http {
        let listener = server.bind_http(addr).await?;
        eprintln!(
            "warden serve: {tools} tools over MCP at http://{}/mcp (revisions {} and {})",
            listener.local_addr(),
            warden_serve::MODERN,
            warden_serve::HANDSHAKE.join(", ")
        );
        eprintln!(
            "warden serve: replica {}; probes at http://{addr}/healthz and /readyz; marketplace at http://{addr}{}",
            server.replica(),
            warden_serve::http::marketplace::JSON_PATH,
            addr = listener.local_addr()
        );
        transports.push(listener.run());
    }
    if stdio {
        eprintln!("warden serve: {tools} tools over MCP on stdin/stdout");
        transports.push(Box::pin(server.stdio()));
    }
    tokio::spawn(server.watch(!no_watch));
    server.run_until(transports, signals).await;
    eprintln!("warden serve: stopped");
    Ok(())
}

/// Parses `--http`'s value: an address, or a port on 127.0.0.1.
fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse::<SocketAddr>()
        .with_context(|| format!("`{text}` is not an address such as 127.0.0.1:8700"))
        .map_err(|e| format!("{e:#}"))
}
