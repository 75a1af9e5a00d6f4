//! Response bodies: whole, or a stream of SSE events; each tells its
//! connection when it ends.

use super::conns::Conn;
use crate::protocol::{self, RpcError};
use bytes::Bytes;
use http::{header, Response, StatusCode};
use serde_json::Value;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// A response body.
pub enum Body {
    /// The whole body.
    Full(Option<Bytes>),
    /// Events as they come; ends when the sender is dropped.
    Events(mpsc::Receiver<Bytes>),
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            Body::Full(b) => {
                http_body::SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64))
            }
            Body::Events(_) => http_body::SizeHint::default(),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(http_body::Frame::data(b)))),
            Body::Events(rx) => rx
                .poll_recv(cx)
                .map(|o| o.map(|b| Ok(http_body::Frame::data(b)))),
        }
    }
}

/// A response body that marks its connection as waiting for the next
/// request once it is sent whole (or dropped).
pub(super) struct Tracked {
    body: Body,
    conn: Arc<Conn>,
}

impl Tracked {
    pub(super) fn new(body: Body, conn: Arc<Conn>) -> Self {
        Tracked { body, conn }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.conn.responded();
    }
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = Infallible;

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }
}

pub(super) fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(Body::Full(Some(Bytes::from(text.to_string()))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        "text/plain; charset=utf-8".parse().expect("valid"),
    );
    r
}

pub(super) fn json_body(status: StatusCode, body: &Value) -> Response<Body> {
    // `to_vec` writes straight to bytes (`to_string` goes through `fmt`).
    let text = serde_json::to_vec(body).expect("a Value serializes");
    let mut r = Response::new(Body::Full(Some(Bytes::from(text))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/json".parse().expect("valid"),
    );
    r
}

pub(super) fn rpc_error(status: StatusCode, id: &Value, e: &RpcError) -> Response<Body> {
    json_body(status, &protocol::error_response(id, e))
}

pub(super) fn events(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let mut r = Response::new(Body::Events(rx));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        "text/event-stream".parse().expect("valid"),
    );
    h.insert(
        header::CACHE_CONTROL,
        "no-cache, no-transform".parse().expect("valid"),
    );
    h.insert("x-accel-buffering", "no".parse().expect("valid"));
    r
}
