//! Forced TCP ACKs while a response is awaited (see [`Acker`]).

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// Forces TCP ACKs on one connection when a response is awaited.
///
/// On a kept-alive connection Linux delays ACKs (about 40 ms). A server that
/// writes a response's head and body separately without `TCP_NODELAY` holds
/// the body back until it sees the ACK of the head (Nagle), which would
/// dominate every call. So an ACK is forced while a response is incomplete
/// and we are waiting: by [`QuickAck`] while the head is not all in, and by
/// the response body when it has to wait for data. A response that arrives
/// whole costs no extra system call and no extra packet: its ACK rides on
/// the next request.
pub(super) struct Acker {
    /// The socket while it is open. Cleared (under the lock) before the
    /// socket closes, so a forced ACK never reaches a reused descriptor.
    #[cfg(target_os = "linux")]
    fd: Mutex<Option<std::os::fd::RawFd>>,
    /// Data was read since our last ACK or write.
    unacked: std::sync::atomic::AtomicBool,
}

impl Acker {
    pub(super) fn new(tcp: &tokio::net::TcpStream) -> Acker {
        #[cfg(not(target_os = "linux"))]
        let _ = tcp;
        Acker {
            #[cfg(target_os = "linux")]
            fd: Mutex::new(Some(std::os::fd::AsRawFd::as_raw_fd(tcp))),
            unacked: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Sends the ACK now if data read has not been acknowledged yet.
    pub(super) fn ack_if_owed(&self) {
        if !self.unacked.swap(false, Ordering::Relaxed) {
            return;
        }
        #[cfg(target_os = "linux")]
        {
            let fd = self.fd.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(fd) = *fd {
                let one: libc::c_int = 1;
                // SAFETY: `fd` is an open socket (it is cleared under this
                // lock before the socket closes) and `one` is a c_int of the
                // size given.
                unsafe {
                    libc::setsockopt(
                        fd,
                        libc::IPPROTO_TCP,
                        libc::TCP_QUICKACK,
                        &one as *const libc::c_int as *const libc::c_void,
                        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                    );
                }
            }
        }
    }

    fn closing(&self) {
        #[cfg(target_os = "linux")]
        {
            *self.fd.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}

/// The TCP stream of a connection. It notes what it reads for its
/// [`Acker`] and, for plain HTTP, whether the response head (up to the
/// blank line) is in since the last request was written; a read that has to
/// wait while the head is incomplete forces the ACK. Under TLS it cannot
/// see the head and forces the ACK whenever a read has to wait after data.
pub(super) struct QuickAck {
    tcp: tokio::net::TcpStream,
    acker: Arc<Acker>,
    scan_head: bool,
    head_done: bool,
    /// The last bytes read, to find a `\r\n\r\n` split across reads.
    tail: u32,
}

impl QuickAck {
    pub(super) fn new(tcp: tokio::net::TcpStream, acker: Arc<Acker>, scan_head: bool) -> QuickAck {
        QuickAck {
            tcp,
            acker,
            scan_head,
            head_done: false,
            tail: 0,
        }
    }

    fn scan(&mut self, data: &[u8]) {
        const END: u32 = u32::from_be_bytes(*b"\r\n\r\n");
        for &b in data {
            self.tail = (self.tail << 8) | u32::from(b);
            if self.tail == END {
                self.head_done = true;
                return;
            }
        }
    }

    fn wrote(&mut self) {
        // A segment we send carries the ACK; the next response starts.
        self.acker.unacked.store(false, Ordering::Relaxed);
        self.head_done = false;
        self.tail = 0;
    }
}

impl Drop for QuickAck {
    fn drop(&mut self) {
        self.acker.closing();
    }
}

impl tokio::io::AsyncRead for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.tcp).poll_read(cx, buf);
        match r {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                self.acker.unacked.store(true, Ordering::Relaxed);
                if self.scan_head && !self.head_done {
                    let this = &mut *self;
                    this.scan(&buf.filled()[before..]);
                }
            }
            Poll::Pending if !(self.scan_head && self.head_done) => self.acker.ack_if_owed(),
            _ => {}
        }
        r
    }
}

impl tokio::io::AsyncWrite for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.tcp).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.wrote();
        }
        r
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.wrote();
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
