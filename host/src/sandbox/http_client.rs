//! `warden:provider/http-client`: one host call per request, decided and
//! performed by the egress path; response bodies read in chunks.

use crate::bindings::warden::provider::http_client;
use crate::bindings::warden::provider::types::Error as WitError;
use crate::bindings::ResponseBody;
use crate::egress::{Failure, OutBody, Timeouts};
use bytes::Bytes;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;
use wasmtime::component::Resource;

use super::*;

/// Most bytes one `read` hands over.
const MAX_READ: usize = 256 * 1024;

impl ResponseBody {
    /// The next bytes of the body, up to [`MAX_READ`]: with `wait`, waits
    /// (up to `self.wait`) for the first frame, then takes whatever else is
    /// ready; without, takes only what is ready now (maybe nothing).
    async fn take(&mut self, wait: bool) -> Result<Vec<u8>, WitError> {
        use http_body_util::BodyExt;
        let mut out: Vec<u8> = Vec::new();
        while !self.done && out.len() < MAX_READ {
            let next = if wait && out.is_empty() {
                match tokio::time::timeout(self.wait, self.body.frame()).await {
                    Ok(n) => n,
                    Err(_) => {
                        self.done = true;
                        return Err(WitError::Timeout(format!(
                            "no response data within {} ms",
                            self.wait.as_millis()
                        )));
                    }
                }
            } else {
                let ready = std::future::poll_fn(|cx| {
                    use http_body::Body;
                    match Pin::new(&mut self.body).poll_frame(cx) {
                        Poll::Ready(n) => Poll::Ready(Some(n)),
                        Poll::Pending => Poll::Ready(None),
                    }
                })
                .await;
                match ready {
                    Some(n) => n,
                    None => break,
                }
            };
            match next {
                None => self.done = true,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        out.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Err(body_error(e));
                }
            }
        }
        Ok(out)
    }
}

/// `headers` as `name: value` lines, each ended by CR LF (hyper has checked
/// that no name holds `:` and no value CR or LF).
fn field_lines(headers: &http::HeaderMap) -> String {
    let mut out = String::with_capacity(headers.len() * 40);
    for (k, v) in headers {
        out.push_str(k.as_str());
        out.push_str(": ");
        match v.to_str() {
            Ok(text) => out.push_str(text),
            Err(_) => out.push_str(&String::from_utf8_lossy(v.as_bytes())),
        }
        out.push_str("\r\n");
    }
    out
}

impl http_client::Host for State {
    async fn send(
        &mut self,
        request: http_client::Request,
    ) -> wasmtime::Result<Result<http_client::Response, WitError>> {
        let head = match build_head(&request) {
            Ok(h) => h,
            Err(e) => return Ok(Err(WitError::InvalidInput(format!("{}: {e}", request.url)))),
        };
        let url = request.url;
        let wait = match request.timeout_ms {
            0 => None,
            ms => Some(Duration::from_millis(ms.into())),
        };
        let timeouts = Timeouts {
            connect: wait,
            first_byte: wait,
        };
        let limit = Duration::from_millis(self.hooks.limits().request_timeout_ms);
        let dispatch =
            self.hooks
                .dispatch(head, OutBody::Full(Bytes::from(request.body)), timeouts);
        let response = match dispatch.await {
            Ok(r) => r,
            Err(f) => return Ok(Err(failure_error(&url, f))),
        };
        let (parts, body) = response.into_parts();
        let headers = field_lines(&parts.headers);
        let mut body = ResponseBody {
            body,
            wait: wait.map_or(limit, |w| w.min(limit)),
            done: false,
        };
        // What came with the head goes with it: a small response needs no
        // `read` at all.
        let body_start = match body.take(false).await {
            Ok(data) => data,
            Err(e) => return Ok(Err(e)),
        };
        let body = if body.done {
            None
        } else {
            Some(self.table.push(body)?)
        };
        Ok(Ok(http_client::Response {
            status: parts.status.as_u16(),
            headers,
            body_start,
            body,
        }))
    }
}

impl http_client::HostBody for State {
    async fn read(
        &mut self,
        body: Resource<ResponseBody>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, WitError>> {
        let body = self.table.get_mut(&body)?;
        Ok(match body.take(true).await {
            Ok(out) if out.is_empty() && body.done => Ok(None),
            Ok(out) => Ok(Some(out)),
            Err(e) => Err(e),
        })
    }

    async fn drop(&mut self, body: Resource<ResponseBody>) -> wasmtime::Result<()> {
        self.table.delete(body)?;
        Ok(())
    }
}

fn build_head(r: &http_client::Request) -> Result<http::request::Parts, String> {
    let method = if r.method.bytes().any(|b| b.is_ascii_lowercase()) {
        http::Method::from_bytes(r.method.to_ascii_uppercase().as_bytes())
    } else {
        http::Method::from_bytes(r.method.as_bytes())
    }
    .map_err(|_| format!("invalid method `{}`", r.method))?;
    let uri: http::Uri = r.url.parse().map_err(|e| format!("invalid URL: {e}"))?;
    if uri.scheme().is_none() || uri.host().is_none() {
        return Err("not an absolute URL".into());
    }
    let mut b = http::Request::builder().method(method.clone()).uri(uri);
    let mut has_length = false;
    for (k, v) in &r.headers {
        let name = http::header::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("invalid header name `{k}`"))?;
        if is_forbidden(&name) {
            return Err(format!("header `{k}` is set by the host"));
        }
        has_length |= name == http::header::CONTENT_LENGTH;
        let value = http::HeaderValue::from_str(v)
            .map_err(|_| format!("invalid value for header `{k}`"))?;
        b = b.header(name, value);
    }
    if !has_length
        && (!r.body.is_empty()
            || matches!(
                method,
                http::Method::POST | http::Method::PUT | http::Method::PATCH
            ))
    {
        b = b.header(http::header::CONTENT_LENGTH, r.body.len());
    }
    let (parts, ()) = b.body(()).map_err(|e| e.to_string())?.into_parts();
    Ok(parts)
}

/// Hop-by-hop headers the host's connection manages (as `wasi:http` forbids them).
fn is_forbidden(name: &http::header::HeaderName) -> bool {
    use http::header::*;
    [
        CONNECTION,
        TRANSFER_ENCODING,
        UPGRADE,
        TE,
        PROXY_AUTHORIZATION,
    ]
    .contains(name)
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

fn failure_error(url: &str, f: Failure) -> WitError {
    use wasmtime_wasi_http::Error as E;
    match f {
        Failure::Denied(reason) => WitError::Denied(format!("{url}: denied by the host: {reason}")),
        Failure::Failed(E::HttpResponseBodySize(_) | E::HttpRequestBodySize(_), reason) => {
            WitError::Denied(format!("{url}: cut by the host: {reason}"))
        }
        Failure::Failed(
            E::ConnectionTimeout
            | E::ConnectionReadTimeout
            | E::DnsTimeout
            | E::HttpResponseTimeout,
            reason,
        ) => WitError::Timeout(format!("{url}: {reason}")),
        Failure::Failed(_, reason) => WitError::Upstream(format!("{url}: {reason}")),
    }
}

fn body_error(e: wasmtime_wasi_http::Error) -> WitError {
    use wasmtime_wasi_http::Error as E;
    match e {
        E::HttpResponseBodySize(n) => WitError::Denied(format!(
            "response body cut by the host after {} bytes: larger than limits.max-response-bytes",
            n.unwrap_or(0)
        )),
        E::HttpRequestBodySize(_) => WitError::Denied(
            "cut by the host: the call's traffic exceeds limits.max-egress-bytes".into(),
        ),
        other => WitError::Upstream(format!("reading the response body: {other}")),
    }
}
