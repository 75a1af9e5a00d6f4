//! The published marketplace (`/.well-known/warden/marketplace.json` and
//! `.rtfs`): behind the MCP endpoint's tokens, listing only what the
//! caller's principal may call, as `:RemoteRTFS` at the service's endpoint,
//! with a weak `ETag` that answers 304, signed (RFC 9421 over an RFC 9530
//! digest) with `[audit] signing-key` so that the public key verifies it
//! and a changed byte does not; and importable into another host.

use crate::util::*;
use base64::Engine as _;
use serde_json::Value;
use sha2::Digest as _;

const JSON: &str = "/.well-known/warden/marketplace.json";
const RTFS: &str = "/.well-known/warden/marketplace.rtfs";

/// Alice and Bob with tokens; Bob may not call `text.case`; the audit log
/// signs with `host.key` (made here); `serve` goes under `[serve]`.
fn config(dir: &std::path::Path, serve: &str) -> String {
    let out = std::process::Command::new(warden_bin())
        .current_dir(dir)
        .args(["audit", "keygen", "host"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let with_rules = format!(
        "{}signing-key = {{ file = \"host.key\" }}\n\n\
         [[policy.rules]]\ncapability = \"text.case\"\nprincipals = [\"bob\"]\ndecision = \"deny\"\n",
        base_config(dir)
    );
    two_principals(dir, serve).replacen(&base_config(dir), &with_rules, 1)
}

/// GET `path` as `token` with `extra` headers: status, headers, body.
fn fetch(
    port: u16,
    path: &str,
    token: &str,
    extra: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, String) {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("Authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    http_at(port, "GET", path, &headers, "")
}

fn ids(snapshot: &Value) -> Vec<String> {
    snapshot["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

/// Whether the RFC 9421 signature in `headers` over `body` verifies with
/// the public key in `public` (PEM), its digest checked first.
fn verifies(headers: &[(String, String)], body: &str, public: &str) -> bool {
    let h = |name: &str| header(headers, name).unwrap_or_default().to_string();
    let digest = format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body.as_bytes()))
    );
    if h("content-digest") != digest {
        return false;
    }
    let input = h("signature-input");
    let params = input.strip_prefix("warden=").expect("labelled warden");
    assert!(
        params.starts_with("(\"content-digest\" \"content-type\");created="),
        "{input}"
    );
    let base = format!(
        "\"content-digest\": {}\n\"content-type\": {}\n\"@signature-params\": {params}",
        h("content-digest"),
        h("content-type")
    );
    let signature = h("signature");
    let signature = signature
        .strip_prefix("warden=:")
        .and_then(|s| s.strip_suffix(':'))
        .expect("warden=:...:");
    let key = warden::audit::signing::VerifyingKey::from_pem(public).unwrap();
    key.verifies(base.as_bytes(), signature)
}

#[test]
fn the_marketplace_lists_what_each_principal_may_call_signed() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &config(dir.path(), ""), &[]);
    let port = serve.port;

    // No token, a wrong one: the MCP endpoint's refusals.
    assert_eq!(http_at(port, "GET", JSON, &[], "").0, 401);
    assert_eq!(fetch(port, JSON, "not-a-token-0123456789", &[]).0, 401);
    let (status, _, _) = fetch(port, JSON, TOKEN_A, &[("Origin", "https://evil.example")]);
    assert_eq!(status, 403);

    let (status, headers, body) = fetch(port, JSON, TOKEN_A, &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    assert_eq!(header(&headers, "vary"), Some("Authorization"));
    let alice: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        alice["type"], "rtfs/capabilities/marketplace-snapshot",
        "{body}"
    );
    let listed = ids(&alice);
    assert!(listed.contains(&"text.case".to_string()), "{listed:?}");
    assert!(
        listed.contains(&"text.stats".to_string()),
        "approval is callable: {listed:?}"
    );
    assert!(
        !listed.contains(&"json.merge".to_string()),
        "denied to all: {listed:?}"
    );
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted);
    let case = alice["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "text.case")
        .unwrap();
    assert_eq!(case["provider"], "RemoteRTFS", "{case}");
    assert_eq!(case["provider-meta"]["remote-id"], "text.case", "{case}");
    assert_eq!(
        case["provider-meta"]["module-url"],
        format!("http://127.0.0.1:{port}/mcp"),
        "{case}"
    );
    assert!(
        case["input-schema"].as_str().unwrap().contains(":text"),
        "{case}"
    );

    // Signed with the audit key: verifies, and not once a byte changes.
    let public = std::fs::read_to_string(dir.path().join("host.pub")).unwrap();
    assert!(verifies(&headers, &body, &public));
    let tampered = body.replacen("text.case", "text.case ", 1);
    assert!(!verifies(&headers, &tampered, &public));
    let key = warden::audit::signing::VerifyingKey::from_pem(&public).unwrap();
    let input = header(&headers, "signature-input").unwrap();
    assert!(
        input.contains(&format!("keyid=\"{}\"", key.id())),
        "{input}"
    );
    let (_, other) = warden::audit::signing::SigningKey::generate();
    assert!(!verifies(&headers, &body, &other));

    // Bob's list lacks what his rule denies; his tag differs.
    let (_, bob_headers, bob_body) = fetch(port, JSON, TOKEN_B, &[]);
    let bob: Value = serde_json::from_str(&bob_body).unwrap();
    assert!(!ids(&bob).contains(&"text.case".to_string()), "{bob_body}");
    assert!(
        ids(&bob).contains(&"text.slugify".to_string()),
        "{bob_body}"
    );
    let tag = header(&headers, "etag").unwrap().to_string();
    assert!(tag.starts_with("W/\""), "{tag}");
    assert_ne!(header(&bob_headers, "etag"), Some(tag.as_str()));

    // The same tag again: 304 without a body; another: the snapshot.
    let (status, again, body) = fetch(port, JSON, TOKEN_A, &[("If-None-Match", &tag)]);
    assert_eq!((status, body.as_str()), (304, ""));
    assert_eq!(header(&again, "etag"), Some(tag.as_str()));
    let (status, _, _) = fetch(port, JSON, TOKEN_A, &[("If-None-Match", "W/\"other\"")]);
    assert_eq!(status, 200);

    // The RTFS form lists the same, as an RTFS snapshot module.
    let (status, rtfs_headers, rtfs) = fetch(port, RTFS, TOKEN_A, &[]);
    assert_eq!(status, 200, "{rtfs}");
    assert!(
        rtfs.contains(":module") && rtfs.contains(":provider :RemoteRTFS"),
        "{rtfs}"
    );
    assert!(verifies(&rtfs_headers, &rtfs, &public));
    assert_ne!(header(&rtfs_headers, "etag"), Some(tag.as_str()));

    // Only GET and HEAD.
    let auth = format!("Bearer {TOKEN_A}");
    let (status, _, _) = http_at(port, "POST", JSON, &[("Authorization", &auth)], "{}");
    assert_eq!(status, 405);

    // Saved, the snapshot imports into another host as :RemoteRTFS.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(
        other.path().join("central.json"),
        serde_json::to_string(&alice).unwrap(),
    )
    .unwrap();
    std::fs::write(other.path().join("warden.toml"), base_config(other.path())).unwrap();
    let out = std::process::Command::new(warden_bin())
        .current_dir(other.path())
        .args(["--config", "warden.toml", "import", "central.json"])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("text.stats"), "{text}");
}

#[test]
fn the_public_url_and_a_separate_key_are_what_is_published() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(warden_bin())
        .current_dir(dir.path())
        .args(["audit", "keygen", "market"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let serve = "public-url = \"https://central.example/mcp\"\n\
                 marketplace-signing-key = { file = \"market.key\" }";
    let config = config(dir.path(), serve);
    let server = Serve::start(dir.path(), &config, &[]);
    let (status, headers, body) = fetch(server.port, JSON, TOKEN_A, &[]);
    assert_eq!(status, 200, "{body}");
    let snapshot: Value = serde_json::from_str(&body).unwrap();
    for c in snapshot["capabilities"].as_array().unwrap() {
        assert_eq!(
            c["provider-meta"]["module-url"], "https://central.example/mcp",
            "{c}"
        );
    }
    let market = std::fs::read_to_string(dir.path().join("market.pub")).unwrap();
    let audit = std::fs::read_to_string(dir.path().join("host.pub")).unwrap();
    assert!(verifies(&headers, &body, &market));
    assert!(!verifies(&headers, &body, &audit));
}
