//! Embeds Warden in a Rust program: one host, many concurrent calls, a
//! runaway call stopped by its limit while the host goes on serving.
//!
//! Run it with `cargo xtask demo` (which builds the components first) or
//! `cargo run -p embed-example -- examples/demo/warden.toml`.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::json;
use warden::{Error, Host, Limit};

#[derive(Serialize)]
struct CaseIn<'a> {
    text: &'a str,
    to: &'a str,
}

#[derive(Deserialize)]
struct CaseOut {
    text: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "examples/demo/warden.toml".into());
    // Build the host from a config file. (`Host::new(Config::new(..).with_plugin(..))`
    // builds one in code.)
    let host = Host::from_config_file(path.as_ref())
        .await
        .with_context(|| format!("loading {path}"))?;

    // Typed calls with serde values.
    let out: CaseOut = host
        .call_typed(
            "text.case",
            &CaseIn {
                text: "embedded warden",
                to: "snake",
            },
        )
        .await?;
    println!("typed call: text.case -> {}", out.text);

    // 64 concurrent calls from 64 tasks, all on one host.
    let mut tasks = Vec::new();
    for i in 0..64 {
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            host.call("text.stats", json!({ "text": "word ".repeat(i) }))
                .await
                .map(|v| (i, v))
        }));
    }
    let mut correct = 0;
    for t in tasks {
        let (i, v) = t.await??;
        if v["words"] == i {
            correct += 1;
        }
    }
    println!("concurrent calls: {correct}/64 correct");

    // A runaway call is stopped by its limit; the same host serves the next call.
    let runaway = host
        .call(
            "text.hash",
            json!({ "text": "x", "rounds": 100_000_000u64 }),
        )
        .await;
    match runaway {
        Err(Error::LimitExceeded {
            limit: Limit::Fuel | Limit::Time,
            ref detail,
            ..
        }) => {
            println!("runaway call stopped: {detail}")
        }
        other => anyhow::bail!("expected the runaway call to hit a limit, got {other:?}"),
    }
    let next = host.call("text.hash", json!({ "text": "x" })).await?;
    println!("next call on the same host: sha256 = {}", next["sha256"]);
    Ok(())
}
