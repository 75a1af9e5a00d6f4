//! Outbound HTTP through the host. Every request is checked by the host
//! against the plugin's network grants; a refused request fails with
//! [`Error::Denied`] and never leaves the machine.
//!
//! ```ignore
//! let resp = warden_sdk::http::Request::get("http://api.example.com/items?page=1").send()?;
//! let items: serde_json::Value = resp.json()?;
//! ```

use crate::__rt::bindings::warden::provider::http_client;
use crate::__rt::bindings::wasi::http::outgoing_handler;
use crate::__rt::bindings::wasi::http::types::{
    http_error_code, ErrorCode, Fields, HeaderError, Method, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme,
};
use crate::__rt::bindings::wasi::io::streams::StreamError;
use crate::Error;

/// An HTTP request to send with [`Request::send`].
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout: Option<std::time::Duration>,
    wasi_http: bool,
}

/// The response to a [`Request`].
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: Headers,
    /// The whole response body.
    pub body: Vec<u8>,
}

/// Response header fields: names in lower case, in the order received. Kept
/// as the host sent them (`name: value` lines) and read in place, without a
/// string per name and value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    /// `name: value` lines, each ended by CR LF.
    lines: String,
}

impl Headers {
    /// Fields from `(name, value)` pairs. Names are lower-cased; CR, LF and
    /// `:` in a name and CR and LF in a value become spaces, so every pair
    /// stays one line.
    pub fn from_pairs<N, V>(pairs: impl IntoIterator<Item = (N, V)>) -> Self
    where
        N: AsRef<str>,
        V: AsRef<str>,
    {
        let mut lines = String::new();
        for (name, value) in pairs {
            let in_name = |c: char| match c {
                '\r' | '\n' | ':' => ' ',
                c => c.to_ascii_lowercase(),
            };
            let in_value = |c: char| match c {
                '\r' | '\n' => ' ',
                c => c,
            };
            lines.extend(name.as_ref().chars().map(in_name));
            lines.push_str(": ");
            lines.extend(value.as_ref().chars().map(in_value));
            lines.push_str("\r\n");
        }
        Headers { lines }
    }

    /// The value of the first field named `name` (case-insensitive), if any.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Every field, as `(name, value)`, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        FieldLines {
            lines: &self.lines,
            at: 0,
        }
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The fields of `name: value` lines (each ended by CR LF), in one pass
/// over the bytes: short lines make `str` searching cost more than it saves.
struct FieldLines<'a> {
    lines: &'a str,
    at: usize,
}

impl<'a> Iterator for FieldLines<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.lines.as_bytes();
        while self.at < bytes.len() {
            let start = self.at;
            let mut colon = None;
            let mut end = start;
            while end < bytes.len() && bytes[end] != b'\n' {
                if colon.is_none() && bytes[end] == b':' {
                    colon = Some(end);
                }
                end += 1;
            }
            self.at = end + 1;
            if end > start && bytes[end - 1] == b'\r' {
                end -= 1;
            }
            if let Some(colon) = colon.filter(|&c| c < end) {
                let mut value = colon + 1;
                if value < end && bytes[value] == b' ' {
                    value += 1;
                }
                // Every index is at an ASCII byte, so a char boundary.
                return Some((&self.lines[start..colon], &self.lines[value..end]));
            }
        }
        None
    }
}

impl Response {
    /// The first header named `name` (case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }
    /// The body as UTF-8 text (invalid sequences replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::upstream(format!("response is not the expected JSON: {e}")))
    }
}

/// A response whose body is read chunk by chunk.
#[derive(Debug)]
pub struct StreamingResponse {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: Headers,
    body: BodyState,
}

#[derive(Debug)]
enum BodyState {
    /// What came with the head, then the rest from the host.
    Start(Vec<u8>, http_client::Body),
    Host(http_client::Body),
    Buffered(Vec<u8>),
    Done,
}

impl StreamingResponse {
    /// The first header named `name` (case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The next chunk of the body, or `None` at its end.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, Error> {
        match std::mem::replace(&mut self.body, BodyState::Done) {
            BodyState::Done => Ok(None),
            BodyState::Buffered(data) => Ok(Some(data)),
            BodyState::Start(data, body) => {
                self.body = BodyState::Host(body);
                Ok(Some(data))
            }
            BodyState::Host(body) => match body.read() {
                Ok(Some(chunk)) => {
                    self.body = BodyState::Host(body);
                    Ok(Some(chunk))
                }
                Ok(None) => Ok(None),
                Err(e) => Err(e.into()),
            },
        }
    }
}

impl Request {
    /// A request with `method` (e.g. `"GET"`) to the absolute `url`.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Request {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
            wasi_http: false,
        }
    }
    /// A `GET` request to `url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }
    /// A `POST` request to `url`.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }
    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
    /// Sets the timeout for connecting and for the first byte of the
    /// response (the host may enforce a shorter one).
    pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// Sets a JSON body and the matching `content-type`.
    pub fn json<T: serde::Serialize>(self, value: &T) -> Result<Self, Error> {
        let body = serde_json::to_vec(value).map_err(|e| Error::internal(e.to_string()))?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// Sends the request and reads the whole response.
    pub fn send(self) -> Result<Response, Error> {
        let mut streaming = self.send_streaming()?;
        let mut body = Vec::new();
        let (status, headers) = (streaming.status, std::mem::take(&mut streaming.headers));
        while let Some(chunk) = streaming.next_chunk()? {
            if body.is_empty() {
                body = chunk;
            } else {
                body.extend_from_slice(&chunk);
            }
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// Sends through `wasi:http` resources and streams instead of the host's
    /// whole-message import (governed the same way; slower). For hosts that
    /// offer only `wasi:http`. A streaming response is then read whole first.
    pub fn via_wasi_http(mut self) -> Self {
        self.wasi_http = true;
        self
    }

    /// Sends the request and returns once the response head is in; read
    /// the body with [`StreamingResponse::next_chunk`]. Dropping the
    /// response early stops reading (e.g. once the wanted SSE event came).
    pub fn send_streaming(self) -> Result<StreamingResponse, Error> {
        if self.wasi_http {
            let r = self.send_wasi_http()?;
            return Ok(StreamingResponse {
                status: r.status,
                headers: r.headers,
                body: if r.body.is_empty() {
                    BodyState::Done
                } else {
                    BodyState::Buffered(r.body)
                },
            });
        }
        let timeout_ms = self.timeout.map_or(0, |t| {
            u32::try_from(t.as_millis()).unwrap_or(u32::MAX).max(1)
        });
        let response = http_client::send(&http_client::Request {
            method: self.method,
            url: self.url,
            headers: self.headers,
            body: self.body,
            timeout_ms,
        })
        .map_err(Error::from)?;
        let start = response.body_start;
        let body = match response.body {
            Some(rest) if start.is_empty() => BodyState::Host(rest),
            Some(rest) => BodyState::Start(start, rest),
            None if start.is_empty() => BodyState::Done,
            None => BodyState::Buffered(start),
        };
        Ok(StreamingResponse {
            status: response.status,
            headers: Headers {
                lines: response.headers,
            },
            body,
        })
    }

    /// Sends the request through `wasi:http` and reads the whole response
    /// (see [`via_wasi_http`](Self::via_wasi_http)).
    pub fn send_wasi_http(self) -> Result<Response, Error> {
        let (scheme, authority, path) = split_url(&self.url)?;
        let fields = Fields::new();
        let has_length = self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
        if !has_length
            && (!self.body.is_empty()
                || matches!(
                    self.method.to_ascii_uppercase().as_str(),
                    "POST" | "PUT" | "PATCH"
                ))
        {
            let _ = fields.append("content-length", self.body.len().to_string().as_bytes());
        }
        for (k, v) in &self.headers {
            fields.append(k, v.as_bytes()).map_err(|e| match e {
                HeaderError::Forbidden => {
                    Error::denied(format!("header `{k}` may not be set by a plugin"))
                }
                other => Error::invalid_input(format!("header `{k}`: {other:?}")),
            })?;
        }
        let req = OutgoingRequest::new(fields);
        let method = match self.method.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "CONNECT" => Method::Connect,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            "PATCH" => Method::Patch,
            other => Method::Other(other.to_string()),
        };
        let bad = |what: &str| Error::invalid_input(format!("{}: invalid {what}", self.url));
        req.set_method(&method).map_err(|_| bad("method"))?;
        let scheme = match scheme.as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => Scheme::Other(other.to_string()),
        };
        req.set_scheme(Some(&scheme)).map_err(|_| bad("scheme"))?;
        req.set_authority(Some(&authority))
            .map_err(|_| bad("authority"))?;
        req.set_path_with_query(Some(&path))
            .map_err(|_| bad("path"))?;

        let body = req
            .body()
            .map_err(|_| Error::internal("request body already taken"))?;
        let options = self.timeout.map(|t| {
            let o = RequestOptions::new();
            let ns = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
            let _ = o.set_connect_timeout(Some(ns));
            let _ = o.set_first_byte_timeout(Some(ns));
            let _ = o.set_between_bytes_timeout(Some(ns));
            o
        });
        let future = outgoing_handler::handle(req, options).map_err(|e| map_code(&self.url, e))?;
        // A write can fail because the host refused the request; the
        // response future then says why, so it is consulted first.
        let mut send_error = None;
        {
            let stream = body
                .write()
                .map_err(|_| Error::internal("request body stream"))?;
            for chunk in self.body.chunks(4096) {
                if let Err(e) = stream.blocking_write_and_flush(chunk) {
                    send_error = Some(Error::upstream(format!(
                        "{}: sending body: {e:?}",
                        self.url
                    )));
                    break;
                }
            }
        }
        if send_error.is_none() {
            if let Err(e) = OutgoingBody::finish(body, None) {
                send_error = Some(map_code(&self.url, e));
            }
        }

        let incoming = loop {
            match future.get() {
                Some(result) => break result,
                None => future.subscribe().block(),
            }
        };
        let response = incoming
            .map_err(|_| Error::internal("response taken twice"))?
            .map_err(|e| map_code(&self.url, e))?;
        if let Some(e) = send_error {
            return Err(e);
        }
        let status = response.status();
        let headers = Headers::from_pairs(
            response
                .headers()
                .entries()
                .iter()
                .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v))),
        );
        let body = response
            .consume()
            .map_err(|_| Error::internal("response body taken twice"))?;
        let stream = body
            .stream()
            .map_err(|_| Error::internal("response body stream"))?;
        let mut data = Vec::new();
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    let text = e.to_debug_string();
                    return Err(match http_error_code(&e) {
                        Some(code) => map_code(&self.url, code),
                        // wasi-http 0.2 hands body errors over as text; the
                        // host's size cut is recognised by it.
                        None if text.contains("body size exceeds limit") => {
                            map_code(&self.url, ErrorCode::HttpResponseBodySize(None))
                        }
                        None => Error::upstream(format!("{}: reading body: {text}", self.url)),
                    });
                }
            }
        }
        Ok(Response {
            status,
            headers,
            body: data,
        })
    }
}

fn map_code(url: &str, code: ErrorCode) -> Error {
    match code {
        ErrorCode::HttpRequestDenied => {
            Error::denied(format!("{url}: request denied by the host's policy"))
        }
        ErrorCode::HttpResponseBodySize(_) | ErrorCode::HttpRequestBodySize(_) => {
            Error::denied(format!(
            "{url}: cut by the host: the response or the call's traffic exceeds the plugin's limit"
        ))
        }
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => Error::Timeout(format!("{url}: {code:?}")),
        other => Error::upstream(format!("{url}: {other:?}")),
    }
}

/// Splits an absolute URL into scheme, authority and path-with-query.
fn split_url(url: &str) -> Result<(String, String, String), Error> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| Error::invalid_input(format!("{url}: not an absolute URL")))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    if authority.is_empty() {
        return Err(Error::invalid_input(format!("{url}: no host")));
    }
    Ok((scheme.to_ascii_lowercase(), authority.to_string(), path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_lines() {
        let fields = |lines: &str| -> Vec<(String, String)> {
            Headers {
                lines: lines.to_string(),
            }
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
        };
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(fields(""), pairs(&[]));
        assert_eq!(fields("\r\n\n:\r\nno colon\r\n"), pairs(&[("", "")]));
        assert_eq!(fields("a:b"), pairs(&[("a", "b")]));
        assert_eq!(fields("é: ü\r\n"), pairs(&[("é", "ü")]));
        let lines = "content-type: a/b\r\nx-a: b: c\r\nempty: \r\nx-a: 2\r\n";
        assert_eq!(
            fields(lines),
            pairs(&[
                ("content-type", "a/b"),
                ("x-a", "b: c"),
                ("empty", ""),
                ("x-a", "2")
            ])
        );
        let h = Headers {
            lines: lines.to_string(),
        };
        assert_eq!(h.get("X-A"), Some("b: c"));
        assert_eq!(h.get("missing"), None);
        assert!(!h.is_empty() && Headers::default().is_empty());
        let built = Headers::from_pairs([("X-A", "b: c"), ("Bad:\r\nName", "v\r\nw")]);
        assert_eq!(
            built.iter().collect::<Vec<_>>(),
            vec![("x-a", "b: c"), ("bad   name", "v  w")]
        );
        assert_eq!(
            format!("{built:?}"),
            r#"[("x-a", "b: c"), ("bad   name", "v  w")]"#
        );
    }
}
