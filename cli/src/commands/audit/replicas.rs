//! `warden audit verify` over the logs of several replicas: the files are
//! grouped into one chain per replica (the `replica` their first record
//! names; files naming none are one chain, as before), each chain is
//! verified on its own, and then their union: every admitted call is in
//! exactly one chain.

use anyhow::Context;
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The files of one replica's chain, in the order given.
pub(super) struct Chain {
    pub replica: Option<String>,
    pub files: Vec<PathBuf>,
}

/// `files` grouped by the replica their first record names.
pub(super) fn chains(files: &[PathBuf]) -> anyhow::Result<Vec<Chain>> {
    let mut chains: Vec<Chain> = Vec::new();
    for file in files {
        let replica = first_replica(file)?;
        match chains.iter_mut().find(|c| c.replica == replica) {
            Some(chain) => chain.files.push(file.clone()),
            None => chains.push(Chain {
                replica,
                files: vec![file.clone()],
            }),
        }
    }
    Ok(chains)
}

fn first_replica(file: &Path) -> anyhow::Result<Option<String>> {
    let f = std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?;
    let mut line = String::new();
    std::io::BufReader::new(f)
        .read_line(&mut line)
        .with_context(|| format!("reading {}", file.display()))?;
    let first: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
    Ok(first["replica"].as_str().map(str::to_string))
}

/// Verifies each chain with `one` (which prints its verdict), then the
/// union. Exits 1 if any chain, or the union, is bad.
pub(super) fn verify(
    chains: &[Chain],
    one: impl Fn(&[PathBuf]) -> anyhow::Result<ExitCode>,
) -> anyhow::Result<ExitCode> {
    let mut bad = false;
    for chain in chains {
        println!("replica {}:", name(chain));
        bad |= one(&chain.files)? != ExitCode::SUCCESS;
    }
    if bad {
        return Ok(ExitCode::from(1));
    }
    let mut admitted: HashMap<String, String> = HashMap::new();
    for chain in chains {
        for file in &chain.files {
            for call in admissions(file)? {
                if let Some(other) = admitted.insert(call.clone(), name(chain)) {
                    println!(
                        "BAD: call {call} was admitted in two chains: replica {other} and replica {}",
                        name(chain)
                    );
                    return Ok(ExitCode::from(1));
                }
            }
        }
    }
    println!(
        "OK: {} chains, each intact; {} calls admitted, each in one chain",
        chains.len(),
        admitted.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn name(chain: &Chain) -> String {
    chain.replica.clone().unwrap_or_else(|| "(unnamed)".into())
}

/// The ids of the calls `file` records admitting.
fn admissions(file: &Path) -> anyhow::Result<Vec<String>> {
    let f = std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?;
    let mut calls = Vec::new();
    for line in std::io::BufReader::new(f).lines() {
        let line = line.with_context(|| format!("reading {}", file.display()))?;
        let record: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("{}: a record is not JSON", file.display()))?;
        if record["effect"] == "call" && record["decision"] == "allow" {
            calls.push(record["call_id"].as_str().unwrap_or("").to_string());
        }
    }
    Ok(calls)
}
