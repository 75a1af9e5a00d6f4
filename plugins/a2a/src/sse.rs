//! Server-sent events, one event's `data` at a time: lines found with
//! `memchr` and handled in place (every byte costs fuel), `\n` or `\r\n`
//! line ends, multi-line data joined with `\n`, other fields ignored.

use warden_sdk::http::StreamingResponse;
use warden_sdk::Error;

/// Most bytes one event may hold: an agent cannot make the plugin buffer
/// without bound (its memory limit would stop it anyway, less clearly).
const MAX_EVENT_BYTES: usize = 16 << 20;

pub struct Events<'r> {
    resp: &'r mut StreamingResponse,
    buf: Vec<u8>,
    /// `buf[start..]` is not handled yet; `buf[start..scanned]` holds no newline.
    start: usize,
    scanned: usize,
    data: Vec<u8>,
    ended: bool,
}

impl<'r> Events<'r> {
    pub fn new(resp: &'r mut StreamingResponse) -> Self {
        Events {
            resp,
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            data: Vec::new(),
            ended: false,
        }
    }

    /// The next event's data (events without data are skipped); `None` at
    /// the end of the stream.
    pub fn next_data(&mut self) -> Result<Option<Vec<u8>>, Error> {
        loop {
            while let Some(at) = memchr::memchr(b'\n', &self.buf[self.scanned..]) {
                let end = self.scanned + at;
                let mut line = &self.buf[self.start..end];
                if let [rest @ .., b'\r'] = line {
                    line = rest;
                }
                let done = line.is_empty() && !self.data.is_empty();
                if let Some(rest) = line.strip_prefix(b"data:") {
                    if !self.data.is_empty() {
                        self.data.push(b'\n');
                    }
                    self.data
                        .extend_from_slice(rest.strip_prefix(b" ").unwrap_or(rest));
                    if self.data.len() > MAX_EVENT_BYTES {
                        return Err(Error::upstream(
                            "an event of the stream is larger than 16 MiB",
                        ));
                    }
                }
                self.start = end + 1;
                self.scanned = self.start;
                if done {
                    return Ok(Some(std::mem::take(&mut self.data)));
                }
            }
            self.scanned = self.buf.len();
            if self.start > 0 && self.start * 2 >= self.buf.len() {
                self.buf.drain(..self.start);
                self.scanned -= self.start;
                self.start = 0;
            }
            if self.ended {
                // The stream ended inside an event: what it had is its data.
                return Ok((!self.data.is_empty()).then(|| std::mem::take(&mut self.data)));
            }
            match self.resp.next_chunk()? {
                Some(chunk) => self.buf.extend_from_slice(&chunk),
                None => {
                    self.ended = true;
                    // A last line without its newline.
                    if self.start < self.buf.len() {
                        self.buf.push(b'\n');
                    }
                }
            }
            if self.buf.len() - self.start > MAX_EVENT_BYTES {
                return Err(Error::upstream(
                    "a line of the stream is larger than 16 MiB",
                ));
            }
        }
    }
}
