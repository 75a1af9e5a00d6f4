//! `warden sign FILE --key KEY`: a detached signature beside a component
//! (`FILE.sig`, base64, as `cosign sign-blob` writes it), which hosts check
//! against `[plugins.X] verify.keys` or `[host] trusted-keys`. Given an
//! `oci://` reference instead, the signature goes to the registry, as
//! `cosign sign --key` puts it (see `registry.rs`).

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct SignArgs {
    /// The component (`.wasm`), or `oci://HOST[:PORT]/REPO:TAG` to sign
    /// the manifest it resolves to in its registry.
    pub(crate) file: PathBuf,
    /// The private key: PKCS#8 PEM, ECDSA P-256 or Ed25519 (`openssl
    /// genpkey -algorithm ed25519`, or `warden audit keygen`).
    #[arg(long, value_name = "PRIVATE_KEY")]
    pub(crate) key: PathBuf,
}

pub(crate) fn run(args: SignArgs) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let pem = std::fs::read_to_string(&args.key)
        .with_context(|| format!("reading {}", args.key.display()))?;
    let (signature, key) = warden::provenance::sign(&pem, &bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.key.display()))?;
    let out = warden::provenance::signature_path(&args.file);
    std::fs::write(&out, format!("{signature}\n"))
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "signed {} ({}) with {key}: {}",
        args.file.display(),
        warden::digest(&bytes),
        out.display()
    );
    Ok(())
}
