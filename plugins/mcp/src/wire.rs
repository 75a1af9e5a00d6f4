//! Small pieces of the MCP wire: why a request failed, header values,
//! JSON-RPC errors as typed errors, the text of a tool result.

use serde_json::Value;
use warden_sdk::Error;

/// Why a request failed.
#[derive(Debug)]
pub enum Failure {
    /// The server no longer knows our session (400 or 404 with a session id).
    SessionGone(String),
    /// A 2026-07-28 request refused in a way that means "not this revision".
    Refused(String),
    /// Anything else, as the capability's error.
    Error(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Error(e)
    }
}

impl Failure {
    pub(crate) fn into_error(self) -> Error {
        match self {
            Failure::SessionGone(m) | Failure::Refused(m) => Error::upstream(m),
            Failure::Error(e) => e,
        }
    }
}

/// A transport failure (connection refused or lost) as `unavailable`; a
/// refusal by the host's policy stays what it is.
pub(crate) fn transient(e: Error) -> Error {
    match e {
        Error::Upstream(m) => Error::Unavailable(m),
        other => other,
    }
}

/// A header value as 2026-07-28 sends it: plain printable ASCII as is,
/// anything else as `=?base64?...?=`.
pub(crate) fn header_value(value: &str) -> String {
    let plain = value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && value.trim() == value
        && !(value.starts_with("=?base64?") && value.ends_with("?="));
    if plain {
        return value.to_string();
    }
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::from("=?base64?");
    for chunk in value.as_bytes().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out.push_str("?=");
    out
}

pub(crate) fn rpc_error(server: &str, method: &str, err: &Value) -> Error {
    let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("(no message)");
    let text = format!("MCP server `{server}`: {method} failed ({code}): {message}");
    match code {
        -32602 => Error::invalid_input(text),
        -32601 => Error::not_found(text),
        _ => Error::upstream(text),
    }
}

/// The text items of a tool result's `content`, joined.
pub fn content_text(result: &Value) -> String {
    let items = result.get("content").and_then(Value::as_array);
    let texts: Vec<&str> = items
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("text").and_then(Value::as_str))
        .collect();
    if texts.is_empty() {
        "(no text)".into()
    } else {
        texts.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn header_values_are_plain_or_base64() {
        assert_eq!(header_value("add"), "add");
        assert_eq!(header_value("hé"), "=?base64?aMOp?=");
        assert_eq!(header_value(" x"), "=?base64?IHg=?=");
        assert_eq!(header_value("abc"), "abc");
        assert_eq!(header_value("=?base64?x?="), "=?base64?PT9iYXNlNjQ/eD89?=");
    }

    #[test]
    fn rpc_errors_map_to_kinds() {
        assert!(matches!(
            rpc_error("s", "m", &json!({"code": -32602, "message": "x"})),
            Error::InvalidInput(_)
        ));
        assert!(matches!(
            rpc_error("s", "m", &json!({"code": -32601, "message": "x"})),
            Error::NotFound(_)
        ));
        assert!(matches!(
            rpc_error("s", "m", &json!({"code": -32000})),
            Error::Upstream(_)
        ));
    }
}
