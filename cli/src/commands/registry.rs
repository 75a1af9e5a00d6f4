//! `warden push`, `warden pull` and `warden sign oci://…`: components in
//! OCI registries, reached as the configuration says (`[host]
//! insecure-registries`, `[host.registries]`, Docker's `config.json`)
//! when the configuration file exists.

use anyhow::Context;
use clap::Args;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use warden::oci::{OciRef, Registries};

#[derive(Args)]
pub(crate) struct PushArgs {
    /// The component (`.wasm`).
    file: PathBuf,
    /// Where to push it: `oci://HOST[:PORT]/REPO:TAG`.
    reference: String,
}

#[derive(Args)]
pub(crate) struct PullArgs {
    /// What to pull: `oci://HOST[:PORT]/REPO:TAG` or `…@sha256:HEX`.
    reference: String,
    /// Also write the component to this file.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// The configuration when its file exists, the defaults otherwise.
fn settings(config: &Path) -> anyhow::Result<warden::Config> {
    if config.exists() {
        super::read_config(config)
    } else {
        Ok(warden::Config::new("."))
    }
}

fn registries(config: &warden::Config) -> anyhow::Result<Registries> {
    Ok(Registries::from_config(config)?)
}

/// Pushes a component; prints its pinned reference.
pub(crate) async fn push(args: PushArgs, config: &Path) -> anyhow::Result<()> {
    let reference = OciRef::parse(&args.reference).map_err(anyhow::Error::msg)?;
    if reference.digest.is_some() {
        anyhow::bail!("push to a tag (`oci://HOST/REPO:TAG`): a digest is what the push makes");
    }
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let config = settings(config)?;
    eprintln!(
        "pushing {} ({} bytes) to {reference}",
        args.file.display(),
        bytes.len()
    );
    let digest = registries(&config)?.push(&reference, &bytes).await?;
    let pinned = OciRef {
        digest: Some(digest),
        ..reference
    };
    println!("{pinned}");
    Ok(())
}

/// Pulls a component into the content store (and `--output`); prints its
/// pinned reference and where it is stored.
pub(crate) async fn pull(args: PullArgs, config: &Path) -> anyhow::Result<()> {
    let reference = OciRef::parse(&args.reference).map_err(anyhow::Error::msg)?;
    let config = settings(config)?;
    let store = config.content_store()?;
    let terminal = std::io::stderr().is_terminal();
    let progress = move |done: u64, total: u64| {
        if terminal && total > 0 {
            eprint!(
                "\rpulling {:>6.1} of {:.1} MiB",
                done as f64 / 1048576.0,
                total as f64 / 1048576.0
            );
            let _ = std::io::stderr().flush();
        }
    };
    let pulled = registries(&config)?
        .fetch(&reference, &store, &progress)
        .await;
    if terminal {
        eprint!("\r\x1b[K");
    }
    let pulled = pulled?;
    if let Some(why) = &pulled.offline {
        eprintln!("warning: {why}");
    }
    if let Some(out) = &args.output {
        std::fs::write(out, &pulled.bytes).with_context(|| format!("writing {}", out.display()))?;
    }
    println!("{}", pulled.reference);
    eprintln!(
        "{} bytes (component {}), {} signature(s), stored in {}",
        pulled.bytes.len(),
        warden::digest(&pulled.bytes),
        pulled.signatures.len(),
        store.dir().display()
    );
    Ok(())
}

/// Signs the manifest `reference` resolves to and adds the signature to
/// its `sha256-<digest>.sig` tag, as cosign does.
pub(crate) async fn sign(reference: &str, key: &Path, config: &Path) -> anyhow::Result<()> {
    let reference = OciRef::parse(reference).map_err(anyhow::Error::msg)?;
    let pem = std::fs::read_to_string(key).with_context(|| format!("reading {}", key.display()))?;
    let config = settings(config)?;
    let registries = registries(&config)?;
    let (_, digest) = registries.resolve(&reference).await?;
    let payload = warden::oci::signature_payload(&reference, &digest);
    let (signature, key_id) = warden::provenance::sign(&pem, &payload)
        .map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?;
    let signature = warden::oci::CosignSignature { payload, signature };
    let tag = warden::oci::push_signature(&registries, &reference, &digest, &signature).await?;
    println!(
        "signed {} with {key_id}: {tag}",
        reference.at_digest(&digest)
    );
    Ok(())
}
