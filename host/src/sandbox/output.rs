//! Guest stdout and stderr: lines to the host's log, within the log budget.

use bytes::Bytes;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use super::*;

/// Guest stdout/stderr: each line goes to the host's log, tagged with the
/// plugin. Never inherited from the host process.
#[derive(Clone)]
pub(super) struct LogStream {
    pub(super) plugin: Arc<str>,
    pub(super) stream: &'static str,
    pub(super) budget: Arc<LogBudget>,
    /// For stderr: its last lines, kept even past the log budget, for the
    /// cause of a crash.
    pub(super) tail: Option<Arc<StderrTail>>,
}

/// The last lines a guest wrote to stderr, or logged as warnings and errors,
/// in the current call (bounded). `written` says whether any were kept
/// since the last clear, so that clearing after a quiet call takes no lock.
#[derive(Default)]
pub(crate) struct StderrTail {
    lines: std::sync::Mutex<std::collections::VecDeque<String>>,
    written: std::sync::atomic::AtomicBool,
}

/// Lines kept, and bytes kept of each.
const TAIL_LINES: usize = 5;
const TAIL_LINE_BYTES: usize = 240;

impl StderrTail {
    pub(crate) fn push(&self, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        let line = crate::governance::auditor::clip_field(line, TAIL_LINE_BYTES).into_owned();
        let mut lines = self.lines();
        if lines.len() == TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
        self.written
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    pub(crate) fn clear(&self) {
        if self
            .written
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            self.lines().clear();
        }
    }
    pub(crate) fn to_vec(&self) -> Vec<String> {
        self.lines().iter().cloned().collect()
    }
    fn lines(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<String>> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LineLogger::new(self.clone()))
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineLogger::new(self.clone()))
    }
}

struct LineLogger {
    target: LogStream,
    buf: Vec<u8>,
}

impl LineLogger {
    fn new(target: LogStream) -> Self {
        LineLogger {
            target,
            buf: Vec::new(),
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        for chunk in bytes.split_inclusive(|b| *b == b'\n') {
            if self.buf.len() < MAX_LOG_LINE {
                let room = MAX_LOG_LINE - self.buf.len();
                self.buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            if chunk.ends_with(b"\n") {
                self.emit();
            }
        }
    }

    fn emit(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let line = String::from_utf8_lossy(&self.buf);
        let line = super::services::one_line(line.trim_end_matches(['\n', '\r']));
        if let Some(tail) = &self.target.tail {
            tail.push(&line);
        }
        if !self.target.budget.take() {
            self.buf.clear();
            return;
        }
        tracing::info!(target: "guest", plugin = %self.target.plugin, stream = self.target.stream, "{line}");
        self.buf.clear();
    }
}

impl Drop for LineLogger {
    fn drop(&mut self) {
        self.emit();
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineLogger {
    async fn ready(&mut self) {}
}

impl OutputStream for LineLogger {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for LineLogger {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.emit();
        Poll::Ready(Ok(()))
    }
}
