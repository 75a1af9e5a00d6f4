//! Byte counting: response bodies cut at `max-response-bytes` and a call's
//! traffic at `max-egress-bytes`.

use super::*;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use wasmtime_wasi_http::Error as HttpError;

/// Called once when a body ends, with the bytes it carried and how it ended.
pub(super) type OnEnd = Box<dyn FnOnce(u64, &str) + Send>;

/// A body that counts its bytes against a per-body and a per-call limit and
/// reports the outcome once when it ends.
pub(super) struct Counted<B> {
    pub(super) inner: B,
    pub(super) seen: u64,
    pub(super) per_body_limit: u64,
    pub(super) total: Arc<AtomicU64>,
    pub(super) total_limit: u64,
    pub(super) also: Option<Arc<AtomicU64>>,
    pub(super) on_end: Option<OnEnd>,
    /// For a response body: the connection's ACK control, used when the
    /// body has to wait for data.
    pub(super) acker: Option<Arc<Acker>>,
}

impl<B> Counted<B> {
    fn finish(&mut self, outcome: &str) {
        if let Some(f) = self.on_end.take() {
            f(self.seen, outcome);
        }
    }
}

impl<B> Drop for Counted<B> {
    fn drop(&mut self) {
        self.finish("body dropped before its end");
    }
}

impl<B: Body<Data = Bytes, Error = HttpError> + Unpin> Body for Counted<B> {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(None) => {
                self.finish("complete");
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Err(e))) => {
                self.finish("body error");
                return Poll::Ready(Some(Err(e)));
            }
            Poll::Pending => {
                if let Some(acker) = &self.acker {
                    acker.ack_if_owed();
                }
                return Poll::Pending;
            }
        };
        if let Some(data) = frame.data_ref() {
            let n = data.len() as u64;
            self.seen += n;
            if let Some(also) = &self.also {
                also.fetch_add(n, Ordering::Relaxed);
            }
            let total = self.total.fetch_add(n, Ordering::Relaxed) + n;
            if self.seen > self.per_body_limit {
                self.finish("cut: larger than limits.max-response-bytes");
                return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(self.seen)))));
            }
            if total > self.total_limit {
                self.finish("cut: call exceeded limits.max-egress-bytes");
                let e = if self.also.is_some() {
                    HttpError::HttpRequestBodySize(Some(total))
                } else {
                    HttpError::HttpResponseBodySize(Some(total))
                };
                return Poll::Ready(Some(Err(e)));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
