//! Ended spans waiting for export, already encoded, and the task on the
//! host's runtime that sends them to the collector: over HTTP/protobuf
//! through reqwest, or over gRPC through tonic with the bytes passed as
//! they are. A span that ends while the queue is full is dropped and
//! counted, never a call held up.

use super::otlp::Envelope;
use bytes::{Buf as _, BufMut as _, Bytes};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

/// How long ended spans wait to be exported together.
const SPAN_DELAY: Duration = Duration::from_secs(1);
/// Spans that wake the exporter before the delay.
const SPAN_BATCH: usize = 2048;
/// Spans, and their encoded bytes, held for export at most.
const SPAN_QUEUE: usize = 8192;
const SPAN_QUEUE_BYTES: usize = 16 << 20;
/// gRPC's method for traces.
const GRPC_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The queue of ended spans.
#[derive(Debug)]
pub(super) struct Batch {
    pending: Mutex<Pending>,
    ready: Notify,
    /// How long a flush waits for its export.
    timeout: Duration,
}

#[derive(Debug, Default)]
struct Pending {
    /// `ScopeSpans.spans` entries ([`span_entry`](super::otlp::span_entry)).
    bytes: Vec<u8>,
    spans: usize,
    /// Spans dropped since the last export.
    dropped: u64,
    /// Flushes waiting for the next export.
    waiting: Vec<mpsc::SyncSender<()>>,
    closed: bool,
}

impl Batch {
    pub(super) fn new(timeout: Duration) -> Batch {
        Batch {
            pending: Mutex::default(),
            ready: Notify::new(),
            timeout,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues one span, whose fields `encode` writes into the queue (under
    /// its lock: a span is about 300 bytes, written in well under a
    /// microsecond, and not copied again); drops it, unwritten, when the
    /// queue is full or closed.
    pub(super) fn push(&self, encode: impl FnOnce(&mut Vec<u8>)) {
        let mut pending = self.lock();
        if pending.closed || pending.spans >= SPAN_QUEUE || pending.bytes.len() >= SPAN_QUEUE_BYTES
        {
            pending.dropped += 1;
            return;
        }
        super::otlp::span_entry(&mut pending.bytes, encode);
        pending.spans += 1;
        let full = pending.spans == SPAN_BATCH;
        drop(pending);
        if full {
            self.ready.notify_one();
        }
    }

    /// Exports what is queued now and returns once the collector has it, the
    /// export failed, or the timeout passed. Blocks.
    pub(super) fn flush(&self) {
        self.wait(false);
    }

    /// Like [`flush`](Self::flush), and then stops the exporter: spans
    /// ended afterwards are dropped.
    pub(super) fn close(&self) {
        self.wait(true);
    }

    /// Stops the exporter after one last export, without waiting for it.
    pub(super) fn close_now(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    fn wait(&self, close: bool) {
        let (done, wait) = mpsc::sync_channel(1);
        {
            let mut pending = self.lock();
            if pending.closed {
                return;
            }
            pending.waiting.push(done);
            pending.closed = close;
        }
        self.ready.notify_one();
        let _ = wait.recv_timeout(self.timeout + Duration::from_secs(1));
    }

    /// Takes what is queued, leaving `spare` (emptied) in its place.
    fn take(&self, spare: Vec<u8>) -> Pending {
        let mut pending = self.lock();
        Pending {
            bytes: std::mem::replace(&mut pending.bytes, spare),
            spans: std::mem::take(&mut pending.spans),
            dropped: std::mem::take(&mut pending.dropped),
            waiting: std::mem::take(&mut pending.waiting),
            closed: pending.closed,
        }
    }
}

/// Where exports go.
#[derive(Debug, Clone)]
pub(super) enum Sender {
    /// POST to the collector's `/v1/traces`.
    Http {
        client: reqwest::Client,
        url: String,
    },
    /// `TraceService/Export`.
    Grpc(tonic::client::Grpc<tonic::transport::Channel>),
}

impl Sender {
    async fn send(&self, body: Vec<u8>) -> Result<(), String> {
        match self {
            Sender::Http { client, url } => {
                let mut response = client
                    .post(url)
                    .header(http::header::CONTENT_TYPE, "application/x-protobuf")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| format!("{url}: {e}"))?;
                let status = response.status();
                if status.is_success() {
                    return Ok(());
                }
                // The collector's explanation: its first chunk, no more.
                let head = response.chunk().await.ok().flatten().unwrap_or_default();
                let text = String::from_utf8_lossy(&head[..head.len().min(200)]);
                Err(format!("{url}: HTTP {status} {text}"))
            }
            Sender::Grpc(grpc) => {
                let mut grpc = grpc.clone();
                grpc.ready().await.map_err(|e| e.to_string())?;
                let path = http::uri::PathAndQuery::from_static(GRPC_EXPORT);
                grpc.unary(tonic::Request::new(Bytes::from(body)), path, Raw)
                    .await
                    .map(drop)
                    .map_err(|status| status.to_string())
            }
        }
    }
}

/// Sends the queue of `batch` to `sender`: every [`SPAN_DELAY`], when a
/// batch's worth has ended, and when asked (a flush); stops once closed.
pub(super) async fn export(batch: std::sync::Arc<Batch>, sender: Sender, envelope: Envelope) {
    let mut spare = Vec::new();
    loop {
        let _ = tokio::time::timeout(SPAN_DELAY, batch.ready.notified()).await;
        let taken = batch.take(spare);
        if taken.spans > 0 {
            if let Err(e) = sender.send(envelope.request(&taken.bytes)).await {
                tracing::warn!("telemetry: {} spans not exported: {e}", taken.spans);
            }
        }
        if taken.dropped > 0 {
            tracing::warn!(
                "telemetry: {} spans dropped: they ended faster than the collector took them",
                taken.dropped
            );
        }
        for done in taken.waiting {
            let _ = done.send(());
        }
        if taken.closed {
            return;
        }
        spare = taken.bytes;
        spare.clear();
    }
}

/// A gRPC codec that sends bytes already encoded and ignores the answer's
/// body (an `ExportTraceServiceResponse`, empty unless partly refused).
#[derive(Debug, Clone, Copy)]
struct Raw;

impl tonic::codec::Codec for Raw {
    type Encode = Bytes;
    type Decode = ();
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl tonic::codec::Encoder for Raw {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Raw {
    type Item = ();
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<()>, tonic::Status> {
        src.advance(src.remaining());
        Ok(Some(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However spans end, the queue holds at most [`SPAN_QUEUE`] of them and
    /// [`SPAN_QUEUE_BYTES`] (plus the one span that crossed it), and counts
    /// the rest as dropped.
    #[test]
    fn the_queue_is_bounded_in_spans_and_bytes_and_counts_what_it_drops() {
        for size in [1, 300, 64 << 10, 4 << 20] {
            let batch = Batch::new(Duration::from_millis(10));
            let pushed = SPAN_QUEUE + 100;
            for _ in 0..pushed {
                batch.push(|out| out.resize(out.len() + size, 7));
            }
            let mut entry = Vec::new();
            super::super::otlp::span_entry(&mut entry, |out| out.resize(out.len() + size, 7));
            let taken = batch.take(Vec::new());
            assert!(taken.spans <= SPAN_QUEUE, "{size}: {}", taken.spans);
            assert!(taken.bytes.len() < SPAN_QUEUE_BYTES + entry.len(), "{size}");
            assert_eq!(taken.spans as u64 + taken.dropped, pushed as u64, "{size}");
            assert_eq!(taken.bytes.len(), taken.spans * entry.len());
            let again = batch.take(Vec::new());
            assert_eq!((again.spans, again.dropped, again.bytes.len()), (0, 0, 0));
        }
    }

    /// Once closed, nothing more is queued, and a flush does not wait.
    #[test]
    fn a_closed_queue_takes_nothing_and_flushes_at_once() {
        let batch = Batch::new(Duration::from_secs(30));
        batch.close_now();
        batch.push(|out| out.push(1));
        batch.flush();
        assert!(
            batch.lock().waiting.is_empty(),
            "a flush waits for no exporter"
        );
        let taken = batch.take(Vec::new());
        assert_eq!((taken.spans, taken.dropped), (0, 1));
    }
}
