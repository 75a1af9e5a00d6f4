//! Agent cards (`/.well-known/agent-card.json`): the JSON-RPC interface to
//! talk to and its protocol version (1.0's `supportedInterfaces`, else
//! 0.3's `url` and `protocolVersion`), whether the agent streams, whether it
//! has an extended card, and its skills.

use crate::wire::Version;
use serde_json::Value;

/// What this client needs of a card.
#[derive(Debug, Clone)]
pub struct Card {
    pub name: String,
    /// The JSON-RPC endpoint chosen.
    pub endpoint: String,
    pub version: Version,
    pub streaming: bool,
    pub extended: bool,
    pub skills: Vec<Value>,
}

/// The card's URL for an agent configured at `url`: the URL itself when it
/// names a `.json` document, else the well-known path under it.
pub fn card_url(url: &str) -> String {
    if url.ends_with(".json") {
        return url.to_string();
    }
    format!("{}/.well-known/agent-card.json", url.trim_end_matches('/'))
}

/// Reads a card. `want` pins a version (`protocol` in the configuration);
/// without it, 1.0 is preferred over 0.3, as the official clients do.
pub fn parse(card: &Value, want: Option<Version>) -> Result<Card, String> {
    let interfaces = interfaces(card);
    let pick = |v: Version| interfaces.iter().find(|(_, iv)| *iv == v);
    let chosen = match want {
        Some(v) => pick(v),
        None => pick(Version::V1).or_else(|| pick(Version::V03)),
    };
    let Some((endpoint, version)) = chosen.cloned() else {
        let offered: Vec<String> = interfaces
            .iter()
            .map(|(u, v)| format!("{u} ({})", v.name()))
            .collect();
        return Err(match want {
            Some(v) => format!(
                "the card offers no JSON-RPC interface at A2A {} (it offers: {})",
                v.name(),
                if offered.is_empty() {
                    "none".to_string()
                } else {
                    offered.join(", ")
                }
            ),
            None => "the card offers no JSON-RPC interface at A2A 1.0 or 0.3".to_string(),
        });
    };
    let flag = |pointer: &str| card.pointer(pointer).and_then(Value::as_bool) == Some(true);
    Ok(Card {
        name: card
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        endpoint,
        version,
        streaming: flag("/capabilities/streaming"),
        extended: flag("/capabilities/extendedAgentCard")
            || flag("/supportsAuthenticatedExtendedCard"),
        skills: card
            .get("skills")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
    })
}

/// The card's JSON-RPC interfaces with a version this client speaks:
/// `supportedInterfaces` (1.0 cards, which may also list 0.3), else the
/// 0.3 fields (`url`, `preferredTransport`, `additionalInterfaces`).
fn interfaces(card: &Value) -> Vec<(String, Version)> {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let jsonrpc =
        |binding: Option<String>| binding.is_none_or(|b| b.eq_ignore_ascii_case("JSONRPC"));
    if let Some(Value::Array(list)) = card.get("supportedInterfaces") {
        return list
            .iter()
            .filter(|i| jsonrpc(text(i, "protocolBinding")))
            .filter_map(|i| {
                let version = Version::parse(&text(i, "protocolVersion")?)?;
                Some((text(i, "url")?, version))
            })
            .collect();
    }
    // 0.3: one version for every interface the card lists.
    let version = text(card, "protocolVersion").map_or(Some(Version::V03), |v| Version::parse(&v));
    let Some(version) = version else {
        return Vec::new();
    };
    let mut found = Vec::new();
    if let Some(url) = text(card, "url") {
        if jsonrpc(text(card, "preferredTransport")) {
            found.push((url, version));
        }
    }
    for i in card
        .get("additionalInterfaces")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(url), true) = (text(i, "url"), jsonrpc(text(i, "transport"))) {
            found.push((url, version));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_1_0_card_is_preferred_at_1_0_and_can_be_pinned_to_0_3() {
        let card = json!({"name": "a", "supportedInterfaces": [
            {"url": "http://h/rpc03", "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
            {"url": "http://h/grpc", "protocolBinding": "GRPC", "protocolVersion": "1.0"},
            {"url": "http://h/rpc", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}],
            "url": "http://h/rpc03", "protocolVersion": "0.3",
            "capabilities": {"streaming": true, "extendedAgentCard": true}, "skills": [{"id": "s"}]});
        let c = parse(&card, None).unwrap();
        assert_eq!(
            (c.endpoint.as_str(), c.version),
            ("http://h/rpc", Version::V1)
        );
        assert!(c.streaming && c.extended);
        let c = parse(&card, Some(Version::V03)).unwrap();
        assert_eq!(c.endpoint, "http://h/rpc03");
    }

    #[test]
    fn a_0_3_card_reads_from_its_url() {
        let card = json!({"name": "b", "url": "http://h/", "protocolVersion": "0.3.0",
            "preferredTransport": "JSONRPC", "supportsAuthenticatedExtendedCard": true});
        let c = parse(&card, None).unwrap();
        assert_eq!(
            (c.endpoint.as_str(), c.version),
            ("http://h/", Version::V03)
        );
        assert!(c.extended && !c.streaming);
        let e = parse(&card, Some(Version::V1)).unwrap_err();
        assert!(e.contains("no JSON-RPC interface at A2A 1.0"), "{e}");
        let old = json!({"url": "http://h/", "protocolVersion": "0.2.5"});
        assert!(parse(&old, None).is_err());
    }

    #[test]
    fn card_urls() {
        assert_eq!(
            card_url("http://h:1"),
            "http://h:1/.well-known/agent-card.json"
        );
        assert_eq!(
            card_url("http://h:1/"),
            "http://h:1/.well-known/agent-card.json"
        );
        assert_eq!(card_url("http://h/card.json"), "http://h/card.json");
    }
}
