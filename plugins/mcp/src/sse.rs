//! Server-sent events as MCP servers send a response: read line by line,
//! each byte scanned once, until the event that answers our request.

use serde_json::{json, Value};
use warden_sdk::http::StreamingResponse;
use warden_sdk::Error;

use crate::wire::{transient, Failure};

/// Reads SSE events until the JSON-RPC response with `id`, then stops
/// (without waiting for the stream's end). Linear in the bytes read and
/// cheap per byte, since every byte costs fuel: lines are found with
/// `memchr` and handled in place, and only a `data:` line's payload is
/// copied, once.
pub(crate) fn read_sse_response(resp: &mut StreamingResponse, id: u64) -> Result<Value, Failure> {
    let mut buf: Vec<u8> = Vec::new();
    // `buf[start..]` is not handled yet; `buf[start..scanned]` holds no
    // newline.
    let mut start = 0;
    let mut scanned = 0;
    let mut data: Vec<u8> = Vec::new();
    loop {
        while let Some(at) = memchr::memchr(b'\n', &buf[scanned..]) {
            let end = scanned + at;
            let mut line = &buf[start..end];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if line.is_empty() {
                // End of an event.
                if let Some(m) = matching_bytes(&data, id) {
                    return Ok(m);
                }
                pass_on_progress(&data, id);
                data.clear();
            } else if let Some(rest) = line.strip_prefix(b"data:") {
                if !data.is_empty() {
                    data.push(b'\n');
                }
                data.extend_from_slice(rest.strip_prefix(b" ").unwrap_or(rest));
            }
            // `event:`, `id:`, `retry:` and comments need nothing here.
            start = end + 1;
            scanned = start;
        }
        scanned = buf.len();
        // Drop what was handled before the buffer grows again.
        if start > 0 && start * 2 >= buf.len() {
            buf.drain(..start);
            scanned -= start;
            start = 0;
        }
        match resp.next_chunk().map_err(transient)? {
            Some(chunk) => buf.extend_from_slice(&chunk),
            None => {
                if let Some(m) = matching_bytes(&data, id) {
                    return Ok(m);
                }
                return Err(Failure::Error(Error::upstream(
                    "the SSE stream ended without the response",
                )));
            }
        }
    }
}

/// Passes on a `notifications/progress` for our request (`id` is its
/// token) as the call's progress. MCP's progress may be fractional: it is
/// rounded.
fn pass_on_progress(data: &[u8], id: u64) {
    if memchr::memmem::find(data, b"notifications/progress").is_none() {
        return;
    }
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let p = &v["params"];
    if v["method"] != "notifications/progress" || p["progressToken"] != json!(id) {
        return;
    }
    let Some(done) = p["progress"].as_f64() else {
        return;
    };
    let total = p["total"].as_f64().map(|t| t.round() as u64);
    let message = p["message"].as_str().unwrap_or_default();
    warden_sdk::progress(done.round() as u64, total, message);
}

/// The message in `data` if it is the response to `id` (blank or not JSON:
/// `None`).
fn matching_bytes(data: &[u8], id: u64) -> Option<Value> {
    if data.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let v: Value = serde_json::from_slice(data).ok()?;
    let is_response = v.get("result").is_some() || v.get("error").is_some();
    (is_response && v.get("id") == Some(&json!(id))).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_data_matches_only_our_response() {
        assert!(matching_bytes(br#"{"jsonrpc":"2.0","id":3,"result":{}}"#, 3).is_some());
        assert!(matching_bytes(br#"{"jsonrpc":"2.0","id":4,"result":{}}"#, 3).is_none());
        assert!(matching_bytes(
            br#"{"jsonrpc":"2.0","method":"notifications/message","params":{}}"#,
            3
        )
        .is_none());
        assert!(matching_bytes(b"", 3).is_none());
        assert!(matching_bytes(b"not json", 3).is_none());
    }
}
