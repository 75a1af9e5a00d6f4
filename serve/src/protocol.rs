//! The wire: JSON-RPC messages, MCP revisions, error codes, `_meta` keys.

use serde_json::{json, Map, Value};

/// The stateless revision, spoken first.
pub const MODERN: &str = "2026-07-28";
/// Revisions reached through `initialize`, newest first.
pub const HANDSHAKE: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

pub(crate) const META_PROTOCOL: &str = "io.modelcontextprotocol/protocolVersion";
pub(crate) const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
pub(crate) const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
pub(crate) const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
pub(crate) const META_SUBSCRIPTION: &str = "io.modelcontextprotocol/subscriptionId";
/// The state handle a 2026-07-28 client sends to keep a session of its own
/// (bound to its principal).
pub(crate) const META_SESSION: &str = "dev.warden/session";

pub(crate) const PARSE_ERROR: i64 = -32700;
pub(crate) const INVALID_REQUEST: i64 = -32600;
pub(crate) const METHOD_NOT_FOUND: i64 = -32601;
pub(crate) const INVALID_PARAMS: i64 = -32602;
pub(crate) const INTERNAL_ERROR: i64 = -32603;
pub(crate) const HEADER_MISMATCH: i64 = -32020;
/// A request that needs a capability (an extension) the client did not
/// declare.
pub(crate) const MISSING_CAPABILITY: i64 = -32021;
pub(crate) const UNSUPPORTED_VERSION: i64 = -32022;
/// Warden's own: too many requests of one principal in flight.
pub(crate) const BUSY: i64 = -32000;

/// A JSON-RPC error answer.
#[derive(Debug, Clone)]
pub(crate) struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
    /// What it names does not exist for this caller (HTTP 404).
    pub not_found: bool,
}

impl RpcError {
    pub(crate) fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
            not_found: false,
        }
    }

    pub(crate) fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }

    pub(crate) fn unsupported(requested: &Value) -> Self {
        let mut supported = vec![MODERN];
        supported.extend(HANDSHAKE);
        RpcError {
            code: UNSUPPORTED_VERSION,
            message: "Unsupported protocol version".into(),
            data: Some(json!({"supported": supported, "requested": requested})),
            not_found: false,
        }
    }

    /// The HTTP status a 2026-07-28 answer carrying this error gets.
    pub(crate) fn http_status(&self) -> u16 {
        if self.not_found {
            return 404;
        }
        match self.code {
            PARSE_ERROR | INVALID_REQUEST | INVALID_PARAMS | HEADER_MISMATCH
            | MISSING_CAPABILITY | UNSUPPORTED_VERSION => 400,
            METHOD_NOT_FOUND => 404,
            _ => 200,
        }
    }
}

/// One decoded message.
#[derive(Debug)]
pub(crate) enum Message {
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
        params: Value,
    },
    /// An answer to a request this server sent (elicitation).
    Response {
        id: Value,
        body: Value,
    },
}

/// Decodes one JSON-RPC message; `Err` is the error to answer with
/// (`id` null).
pub(crate) fn decode(bytes: &[u8]) -> Result<Message, RpcError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| RpcError::new(PARSE_ERROR, format!("Parse error: {e}")))?;
    let Value::Object(mut obj) = value else {
        return Err(RpcError::new(
            INVALID_REQUEST,
            "a message must be one JSON-RPC object (batches are not accepted)",
        ));
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(RpcError::new(INVALID_REQUEST, "`jsonrpc` must be \"2.0\""));
    }
    let id = obj.remove("id");
    if let Some(id) = &id {
        if !(id.is_string() || id.is_i64() || id.is_u64()) {
            return Err(RpcError::new(
                INVALID_REQUEST,
                "`id` must be a string or an integer",
            ));
        }
    }
    match (obj.remove("method"), id) {
        (Some(Value::String(method)), id) => {
            let params = obj.remove("params").unwrap_or(Value::Object(Map::new()));
            if !params.is_object() {
                return Err(RpcError::new(INVALID_REQUEST, "`params` must be an object"));
            }
            Ok(match id {
                Some(id) => Message::Request { id, method, params },
                None => Message::Notification { method, params },
            })
        }
        (Some(_), _) => Err(RpcError::new(INVALID_REQUEST, "`method` must be a string")),
        (None, Some(id)) if obj.contains_key("result") || obj.contains_key("error") => {
            Ok(Message::Response {
                id,
                body: Value::Object(obj),
            })
        }
        _ => Err(RpcError::new(
            INVALID_REQUEST,
            "not a JSON-RPC request, notification or response",
        )),
    }
}

pub(crate) fn response(id: &Value, outcome: Result<Value, RpcError>) -> Value {
    match outcome {
        // The result moves in whole (`json!` would copy it).
        Ok(result) => {
            let mut message = serde_json::Map::with_capacity(3);
            message.insert("jsonrpc".into(), "2.0".into());
            message.insert("id".into(), id.clone());
            message.insert("result".into(), result);
            Value::Object(message)
        }
        Err(e) => error_response(id, &e),
    }
}

pub(crate) fn error_response(id: &Value, e: &RpcError) -> Value {
    let mut error = json!({"code": e.code, "message": e.message});
    if let Some(d) = &e.data {
        error["data"] = d.clone();
    }
    json!({"jsonrpc": "2.0", "id": id, "error": error})
}

/// One SSE `message` event carrying `message`.
pub(crate) fn sse_event(message: &Value) -> bytes::Bytes {
    let mut event = b"event: message\ndata: ".to_vec();
    serde_json::to_writer(&mut event, message).expect("a Value serializes");
    event.extend_from_slice(b"\n\n");
    bytes::Bytes::from(event)
}

pub(crate) fn notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

/// What a 2026-07-28 request says about its client, from `params._meta`.
#[derive(Debug, Clone)]
pub(crate) struct Envelope {
    pub capabilities: Value,
    pub client_info: Option<Value>,
    /// `dev.warden/session`, if given.
    pub session: Option<String>,
}

/// Whether `params` carries the 2026-07-28 envelope (a protocol version in
/// `_meta`).
pub(crate) fn is_modern(params: &Value) -> bool {
    params
        .get("_meta")
        .and_then(|m| m.get(META_PROTOCOL))
        .is_some()
}

/// Checks the 2026-07-28 envelope of `params`: the required keys, then the
/// version.
pub(crate) fn envelope(params: &Value) -> Result<Envelope, RpcError> {
    let Some(meta) = params.get("_meta").and_then(Value::as_object) else {
        return Err(RpcError::invalid_params(format!(
            "params._meta must be an object carrying `{META_PROTOCOL}` and `{META_CAPABILITIES}`"
        )));
    };
    let missing: Vec<&str> = [META_PROTOCOL, META_CAPABILITIES]
        .into_iter()
        .filter(|k| !meta.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err(RpcError::invalid_params(format!(
            "params._meta is missing {}",
            missing.join(", ")
        )));
    }
    let version = &meta[META_PROTOCOL];
    if !version.is_string() {
        return Err(RpcError::invalid_params(
            "the protocol version in _meta must be a string",
        ));
    }
    if version.as_str() != Some(MODERN) {
        return Err(RpcError::unsupported(version));
    }
    let session = match meta.get(META_SESSION) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => Some(s.clone()),
        Some(_) => {
            return Err(RpcError::invalid_params(format!(
                "`{META_SESSION}` must be a string of 1-256 bytes"
            )))
        }
    };
    Ok(Envelope {
        capabilities: meta[META_CAPABILITIES].clone(),
        client_info: meta.get(META_CLIENT_INFO).cloned(),
        session,
    })
}

/// A JSON-RPC id as spans name it (`None` for a missing or null id).
pub(crate) fn id_text(id: &Value) -> Option<String> {
    match id {
        Value::Null => None,
        Value::String(s) => Some(s.chars().take(128).collect()),
        other => Some(other.to_string()),
    }
}

/// `name version` of a client's `clientInfo`, cut to a sane length.
pub(crate) fn client_label(info: Option<&Value>) -> String {
    let part = |k: &str| {
        info.and_then(|i| i.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_control())
            .take(64)
            .collect::<String>()
    };
    let (name, version) = (part("name"), part("version"));
    match (name.is_empty(), version.is_empty()) {
        (true, _) => "unnamed client".into(),
        (false, true) => name,
        (false, false) => format!("{name} {version}"),
    }
}

/// Decodes an `Mcp-Name` header value (the `=?base64?...?=` form included).
pub(crate) fn decode_header_value(value: &str) -> Option<String> {
    let Some(payload) = value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    else {
        return Some(value.to_string());
    };
    let bytes = base64_decode(payload)?;
    String::from_utf8(bytes).ok()
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let text = text.as_bytes();
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for chunk in text.chunks(4) {
        let mut n = 0u32;
        let mut pad = 0;
        for (i, &c) in chunk.iter().enumerate() {
            let v = if c == b'=' && i >= 2 {
                pad += 1;
                0
            } else if pad > 0 {
                return None;
            } else {
                ALPHABET.iter().position(|&a| a == c)? as u32
            };
            n = (n << 6) | v;
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_messages_and_refuses_what_is_not_one() {
        assert!(matches!(
            decode(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
            Ok(Message::Request { .. })
        ));
        assert!(matches!(
            decode(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Ok(Message::Notification { .. })
        ));
        assert!(matches!(
            decode(br#"{"jsonrpc":"2.0","id":"w1","result":{}}"#),
            Ok(Message::Response { .. })
        ));
        for (bad, code) in [
            (&b"{"[..], PARSE_ERROR),
            (b"[]", INVALID_REQUEST),
            (br#"{"jsonrpc":"1.0","id":1,"method":"x"}"#, INVALID_REQUEST),
            (
                br#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#,
                INVALID_REQUEST,
            ),
            (
                br#"{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}"#,
                INVALID_REQUEST,
            ),
        ] {
            assert_eq!(
                decode(bad).unwrap_err().code,
                code,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn the_envelope_is_checked_in_order() {
        let e = envelope(&json!({})).unwrap_err();
        assert_eq!(e.code, INVALID_PARAMS);
        let e = envelope(&json!({"_meta": {META_PROTOCOL: MODERN}})).unwrap_err();
        assert!(e.message.contains(META_CAPABILITIES), "{}", e.message);
        let e = envelope(&json!({"_meta": {META_PROTOCOL: "2099-01-01", META_CAPABILITIES: {}}}))
            .unwrap_err();
        assert_eq!(e.code, UNSUPPORTED_VERSION);
        assert_eq!(e.data.unwrap()["supported"][0], MODERN);
        let ok = envelope(
            &json!({"_meta": {META_PROTOCOL: MODERN, META_CAPABILITIES: {}, META_SESSION: "h"}}),
        )
        .unwrap();
        assert_eq!(ok.session.as_deref(), Some("h"));
    }

    #[test]
    fn header_values_decode() {
        assert_eq!(decode_header_value("text.case").unwrap(), "text.case");
        assert_eq!(decode_header_value("=?base64?aMOp?=").unwrap(), "hé");
        assert!(decode_header_value("=?base64?a?=").is_none());
    }
}
