//! `warden call`: one capability called, its JSON result on stdout, its
//! progress reports as lines on stderr; SIGINT or SIGTERM ends the call
//! (audited as `cancelled`).

use crate::exit::Interrupted;
use anyhow::Context;
use clap::Args;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use warden::{CallContext, Host, Progress, ProgressSink};

#[derive(Args)]
pub(crate) struct CallArgs {
    /// Capability id, e.g. `text.case`.
    capability: String,
    /// Input as JSON, or `-` to read it from stdin. Default: `{}`.
    input: Option<String>,
    /// Session key for a capability that asks for a session (separate
    /// keys get separate sessions). Default: `default`.
    #[arg(long, value_name = "KEY")]
    session: Option<String>,
    /// Call as this principal, for `[[policy.rules]]` that name
    /// `principals` (the operator's own identity on this machine).
    #[arg(long, value_name = "NAME")]
    principal: Option<String>,
    /// A scope the principal holds (repeat for more), for rules that name
    /// `scopes`.
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// A group the principal is in (repeat for more), for rules that name
    /// `groups`.
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
}

pub(crate) async fn run(args: CallArgs, config: &Path) -> anyhow::Result<()> {
    let CallArgs {
        capability,
        input,
        session,
        principal,
        scopes,
        groups,
    } = args;
    // A call needs only the plugins (and sources) that can serve its id.
    let host = super::ready(Host::new_for_call(super::read_config(config)?, &capability).await?);
    let value = read_input(&capability, input.as_deref())?;
    let progress: Arc<dyn ProgressSink> = Arc::new(progress_line);
    let context = CallContext {
        session_key: session.as_deref(),
        progress: Some(&progress),
        identity: warden::Identity {
            principal: principal.as_deref(),
            scopes: &scopes,
            groups: &groups,
        },
        ..CallContext::default()
    };
    let call = host.call_with(&capability, value, &context);
    let out = tokio::select! {
        out = call => out,
        // The call is dropped: it gets its end record (`cancelled`),
        // its remote state is released, and the log is flushed.
        signal = warden_serve::stop_signal() => {
            eprintln!("warden: {signal}: stopping the call to `{capability}`");
            host.shutdown().await;
            return Err(Interrupted(signal).into());
        }
    };
    // Sessions end with the process: their servers see them closed.
    host.shutdown().await;
    println!("{}", serde_json::to_string_pretty(&out?)?);
    Ok(())
}

/// A progress report as one line on stderr: `progress: 3/10 message`.
fn progress_line(p: Progress) {
    let of = p.total.map(|t| format!("/{t}")).unwrap_or_default();
    let message = if p.message.is_empty() {
        String::new()
    } else {
        format!(" {}", p.message)
    };
    eprintln!("progress: {}{of}{message}", p.done);
}

/// The call's input: `{}` when none is given, stdin for `-`.
fn read_input(capability: &str, input: Option<&str>) -> anyhow::Result<serde_json::Value> {
    let text = match input {
        None => "{}".to_string(),
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading input from stdin")?;
            s
        }
        Some(s) => s.to_string(),
    };
    // Not an `Error`: bad JSON on the command line is a usage error (exit 2).
    serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("input for `{capability}` is not valid JSON: {e}"))
}
