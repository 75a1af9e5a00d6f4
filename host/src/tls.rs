//! TLS for the host's own outbound connections (the audit sink, OTLP):
//! rustls with ring and the public roots, whatever provider the process
//! installed, plus a CA the operator names.

use std::sync::Arc;

/// The public roots, and the CA of `ca` (PEM) when given.
pub(crate) fn client_config(ca: Option<&str>) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    if let Some(pem) = ca {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| format!("`ca`: {e}"))?;
            roots.add(cert).map_err(|e| format!("`ca`: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err("`ca` holds no PEM certificate".into());
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}
