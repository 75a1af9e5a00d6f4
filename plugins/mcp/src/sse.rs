//! Server-sent events as MCP servers send a response: read line by line,
//! each byte scanned once, until the event that answers our request.

use serde_json::{json, Value};
use warden_sdk::http::StreamingResponse;
use warden_sdk::Error;

use crate::client::{transient, Failure};

/// Reads SSE events until the JSON-RPC response with `id`, then stops
/// (without waiting for the stream's end).
pub(crate) fn read_sse_response(resp: &mut StreamingResponse, id: u64) -> Result<Value, Failure> {
    let mut buf: Vec<u8> = Vec::new();
    let mut data = String::new();
    // How much of `buf` is known to hold no newline: each byte is scanned
    // once, however long a line (a multi-megabyte `data:` line) grows.
    let mut scanned = 0;
    loop {
        // Handle every complete line in the buffer.
        while let Some(pos) = buf[scanned..]
            .iter()
            .position(|b| *b == b'\n')
            .map(|p| p + scanned)
        {
            scanned = 0;
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                // End of an event.
                if !data.trim().is_empty() {
                    if let Some(m) = matching(&data, id) {
                        return Ok(m);
                    }
                }
                data.clear();
            } else if let Some(rest) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
            }
            // `event:`, `id:`, `retry:` and comments need nothing here.
        }
        scanned = buf.len();
        match resp.next_chunk().map_err(transient)? {
            Some(chunk) => buf.extend_from_slice(&chunk),
            None => {
                if !data.trim().is_empty() {
                    if let Some(m) = matching(&data, id) {
                        return Ok(m);
                    }
                }
                return Err(Failure::Error(Error::upstream(
                    "the SSE stream ended without the response",
                )));
            }
        }
    }
}

/// The message in `data` if it is the response to `id`.
fn matching(data: &str, id: u64) -> Option<Value> {
    let v: Value = serde_json::from_str(data).ok()?;
    let is_response = v.get("result").is_some() || v.get("error").is_some();
    (is_response && v.get("id") == Some(&json!(id))).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_data_matches_only_our_response() {
        assert!(matching(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#, 3).is_some());
        assert!(matching(r#"{"jsonrpc":"2.0","id":4,"result":{}}"#, 3).is_none());
        assert!(matching(
            r#"{"jsonrpc":"2.0","method":"notifications/message","params":{}}"#,
            3
        )
        .is_none());
        assert!(matching("", 3).is_none());
        assert!(matching("not json", 3).is_none());
    }
}
