//! The published marketplace: `GET /.well-known/warden/marketplace.json`
//! (the JSON snapshot) and `.rtfs` (the RTFS one), behind the same
//! authentication as `/mcp`, listing what the caller's principal may call
//! (`Host::published`: each capability as `:RemoteRTFS` at this service's
//! endpoint). A weak `ETag` over the capabilities answers `If-None-Match`
//! with 304. With a signing key, the body carries an RFC 9530
//! `Content-Digest` and an RFC 9421 signature over it and its type
//! (`Signature-Input: warden=("content-digest" "content-type");created=...;
//! keyid="ed25519:...";alg="ed25519"`), which a consumer checks with the
//! public key.

use super::body::plain;
use super::Body;
use crate::Shared;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use warden_manifest::snapshot;

/// The JSON snapshot's path.
pub const JSON_PATH: &str = "/.well-known/warden/marketplace.json";
/// The RTFS snapshot's path.
pub const RTFS_PATH: &str = "/.well-known/warden/marketplace.rtfs";
/// The signature's label in `Signature-Input` and `Signature`.
pub const SIGNATURE_LABEL: &str = "warden";

/// Which snapshot a path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Json,
    Rtfs,
}

impl Format {
    /// The snapshot at `path`, if it is one.
    pub(super) fn at(path: &str) -> Option<Format> {
        match path {
            JSON_PATH => Some(Format::Json),
            RTFS_PATH => Some(Format::Rtfs),
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Rtfs => "text/plain; charset=utf-8",
        }
    }
}

/// The snapshot `caller` may see, as `method` asks (GET or HEAD).
pub(super) fn answer(
    shared: &Shared,
    format: Format,
    method: &Method,
    headers: &HeaderMap,
    caller: warden::Identity<'_>,
) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "use GET or HEAD");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let endpoint = endpoint(shared, headers);
    let caps = shared.host().published(caller, &endpoint);
    let tag = etag(&caps, format);
    let mut r = if matches_any(headers, &tag) {
        let mut r = Response::new(Body::Full(None));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let text = match format {
            Format::Json => snapshot::snapshot_to_json(&caps),
            Format::Rtfs => snapshot::snapshot_to_rtfs(&caps),
        };
        let mut r = Response::new(Body::Full(Some(Bytes::from(text))));
        let content_type = HeaderValue::from_static(format.content_type());
        if let Some(key) = shared.marketplace_key() {
            sign(&mut r, key, &content_type);
        }
        r.headers_mut().insert(header::CONTENT_TYPE, content_type);
        r
    };
    let h = r.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_str(&tag).expect("hex"));
    // What is listed depends on who asks.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Authorization"));
    r
}

/// Where consumers call what is listed: `[serve] public-url`, else this
/// request's `Host` over `http://`.
fn endpoint(shared: &Shared, headers: &HeaderMap) -> String {
    if let Some(url) = &shared.settings.public_url {
        return url.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("127.0.0.1");
    format!("http://{host}/mcp")
}

/// A weak tag of what is listed (the snapshot's time aside) in `format`.
fn etag(caps: &[warden_manifest::Manifest], format: Format) -> String {
    use sha2::Digest as _;
    let listed = serde_json::to_vec(caps).expect("manifests serialize");
    let digest: String = sha2::Sha256::digest(&listed)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let kind = match format {
        Format::Json => "j",
        Format::Rtfs => "r",
    };
    format!("W/\"{kind}{}\"", &digest[..32])
}

/// Whether `If-None-Match` names `tag` (weakly) or is `*`.
fn matches_any(headers: &HeaderMap, tag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let ours = bare(tag);
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || bare(t) == ours)
}

/// Adds `Content-Digest`, `Signature-Input` and `Signature` to `r`.
fn sign(
    r: &mut Response<Body>,
    key: &warden::audit::signing::SigningKey,
    content_type: &HeaderValue,
) {
    let Body::Full(Some(body)) = r.body() else {
        return;
    };
    use sha2::Digest as _;
    let digest = format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body))
    );
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let params = format!(
        "(\"content-digest\" \"content-type\");created={created};keyid=\"{}\";alg=\"ed25519\"",
        key.id()
    );
    let base = signature_base(&digest, content_type.to_str().unwrap_or(""), &params);
    let signature = key.sign(base.as_bytes());
    let h = r.headers_mut();
    let value = |s: String| HeaderValue::from_str(&s).expect("printable");
    h.insert("content-digest", value(digest));
    h.insert(
        "signature-input",
        value(format!("{SIGNATURE_LABEL}={params}")),
    );
    h.insert(
        "signature",
        value(format!("{SIGNATURE_LABEL}=:{signature}:")),
    );
}

/// The RFC 9421 signature base over `content-digest` and `content-type`
/// with signature parameters `params`.
pub fn signature_base(digest: &str, content_type: &str, params: &str) -> String {
    format!(
        "\"content-digest\": {digest}\n\"content-type\": {content_type}\n\"@signature-params\": {params}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_two_paths_are_snapshots() {
        assert_eq!(Format::at(JSON_PATH), Some(Format::Json));
        assert_eq!(Format::at(RTFS_PATH), Some(Format::Rtfs));
        for other in [
            "/.well-known/warden/marketplace",
            "/.well-known/warden/marketplace.json/",
            "/.well-known/warden/MARKETPLACE.json",
            "/mcp",
        ] {
            assert_eq!(Format::at(other), None, "{other}");
        }
    }

    #[test]
    fn if_none_match_compares_weakly_and_in_lists() {
        let tag = "W/\"jabc\"";
        for (sent, hit) in [
            ("W/\"jabc\"", true),
            ("\"jabc\"", true),
            ("\"x\", W/\"jabc\"", true),
            ("*", true),
            ("W/\"jab\"", false),
            ("W/\"rabc\"", false),
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, sent.parse().unwrap());
            assert_eq!(matches_any(&h, tag), hit, "{sent}");
        }
        assert!(!matches_any(&HeaderMap::new(), tag));
    }
}
