//! Secret placeholders (`{{secret:NAME}}`) in header values, substituted
//! at egress for the destinations, headers and methods the secret is bound
//! to; and the redaction of the value of every secret granted to the
//! plugin from every response it receives (head, body and trailers),
//! whether or not that request carried it.

use super::*;
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use wasmtime_wasi_http::Error as HttpError;

/// What a redacted value is replaced with.
const REDACTED: &[u8] = b"[redacted]";

/// Replaces each `{{secret:NAME}}` in `text` with `lookup(NAME)`.
pub(super) fn substitute(
    text: &str,
    mut lookup: impl FnMut(&str) -> Result<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(SECRET_OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + SECRET_OPEN.len()..];
        let end = after
            .find("}}")
            .ok_or("unterminated `{{secret:` placeholder")?;
        out.push_str(&lookup(after[..end].trim())?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The values of a plugin's secrets, to be cut out of its responses.
pub(super) struct Redaction {
    /// Each value as sent and, where it differs, as a JSON string quotes it.
    patterns: Vec<Vec<u8>>,
    longest: usize,
}

impl Redaction {
    /// A redaction of `values` (empty ones are ignored); `None` if there is
    /// nothing to redact.
    pub(super) fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Redaction> {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        for v in values.into_iter().filter(|v| !v.is_empty()) {
            let quoted = serde_json::to_string(v).unwrap_or_default();
            let escaped = quoted
                .strip_prefix('"')
                .and_then(|q| q.strip_suffix('"'))
                .unwrap_or(v);
            for p in [v, escaped] {
                if !patterns.iter().any(|q| q == p.as_bytes()) {
                    patterns.push(p.as_bytes().to_vec());
                }
            }
        }
        // The longest first, so that a value containing another is cut whole.
        patterns.sort_by_key(|p| std::cmp::Reverse(p.len()));
        let longest = patterns.first()?.len();
        Some(Redaction { patterns, longest })
    }

    /// Copies `buf` into `out` with every value replaced, up to where a
    /// value could still continue in data not seen yet (all of it when
    /// `at_end`); returns how many bytes were taken and how many values
    /// were replaced.
    fn cut(&self, buf: &[u8], at_end: bool, out: &mut Vec<u8>) -> (usize, usize) {
        // Any value that starts before `safe` lies wholly inside `buf`.
        let safe = if at_end {
            buf.len()
        } else {
            buf.len().saturating_sub(self.longest - 1)
        };
        let mut i = 0;
        let mut found = 0;
        while i < safe {
            if let Some(p) = self.patterns.iter().find(|p| buf[i..].starts_with(p)) {
                out.extend_from_slice(REDACTED);
                i += p.len();
                found += 1;
            } else {
                out.push(buf[i]);
                i += 1;
            }
        }
        (i.min(buf.len()), found)
    }

    /// `text` with every value replaced, and how many were.
    pub(super) fn text(&self, text: &str) -> (String, usize) {
        let mut out = Vec::with_capacity(text.len());
        let (_, found) = self.cut(text.as_bytes(), true, &mut out);
        // Whole values are cut out of valid UTF-8: it stays valid.
        (String::from_utf8_lossy(&out).into_owned(), found)
    }

    /// Redacts header values in place and drops a header whose name holds a
    /// value; returns how many were changed.
    pub(super) fn head(&self, headers: &mut HeaderMap) -> usize {
        let mut changed = 0;
        let mut kept = HeaderMap::with_capacity(headers.len());
        let mut name = None;
        for (n, value) in std::mem::take(headers) {
            if let Some(n) = n {
                name = Some(n);
            }
            let Some(n) = &name else { continue };
            let lower = n.as_str().as_bytes();
            if self
                .patterns
                .iter()
                .any(|p| contains(lower, &p.to_ascii_lowercase()))
            {
                changed += 1;
                continue;
            }
            let mut out = Vec::new();
            let (_, found) = self.cut(value.as_bytes(), true, &mut out);
            if found == 0 {
                kept.append(n.clone(), value);
                continue;
            }
            changed += 1;
            if let Ok(v) = http::HeaderValue::from_bytes(&out) {
                kept.append(n.clone(), v);
            }
        }
        *headers = kept;
        changed
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// A response body with the plugin's secret values cut out; reports how
/// many it cut once, when it ends or is dropped.
pub(super) struct Redacted<B> {
    pub(super) inner: B,
    pub(super) redaction: Arc<Redaction>,
    /// Bytes held back: the start of a value that may go on in the next
    /// frame.
    carry: Vec<u8>,
    /// Trailers that arrived while bytes were held back.
    trailers: Option<HeaderMap>,
    inner_done: bool,
    found: usize,
    on_end: Option<Box<dyn FnOnce(usize) + Send>>,
}

impl<B> Redacted<B> {
    pub(super) fn new(
        inner: B,
        redaction: Arc<Redaction>,
        on_end: Box<dyn FnOnce(usize) + Send>,
    ) -> Self {
        Redacted {
            inner,
            redaction,
            carry: Vec::new(),
            trailers: None,
            inner_done: false,
            found: 0,
            on_end: Some(on_end),
        }
    }

    fn finish(&mut self) {
        if let Some(f) = self.on_end.take() {
            f(self.found);
        }
    }

    /// The held-back bytes, redacted, as one frame (`None` if none).
    fn flush(&mut self) -> Option<Frame<Bytes>> {
        if self.carry.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(self.carry.len());
        let (_, found) = self.redaction.cut(&self.carry, true, &mut out);
        self.found += found;
        self.carry.clear();
        Some(Frame::data(Bytes::from(out)))
    }
}

impl<B> Drop for Redacted<B> {
    fn drop(&mut self) {
        self.finish();
    }
}

impl<B: Body<Data = Bytes, Error = HttpError> + Unpin> Body for Redacted<B> {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        loop {
            if this.inner_done {
                if let Some(frame) = this.flush() {
                    return Poll::Ready(Some(Ok(frame)));
                }
                if let Some(mut trailers) = this.trailers.take() {
                    this.found += this.redaction.head(&mut trailers);
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
                this.finish();
                return Poll::Ready(None);
            }
            let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.inner_done = true;
                    continue;
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    // Trailers end the body: what is held back goes first.
                    if let Ok(trailers) = frame.into_trailers() {
                        this.trailers = Some(trailers);
                    }
                    this.inner_done = true;
                    continue;
                }
            };
            this.carry.extend_from_slice(&data);
            let mut out = Vec::with_capacity(this.carry.len());
            let (taken, found) = this.redaction.cut(&this.carry, false, &mut out);
            this.found += found;
            this.carry.drain(..taken);
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner_done && self.carry.is_empty() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        // Redaction changes the length.
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn placeholders_are_substituted_or_refused() {
        let lookup = |n: &str| {
            if n == "A" {
                Ok("va".to_string())
            } else {
                Err(format!("secret `{n}` is not granted"))
            }
        };
        assert_eq!(
            substitute("Bearer {{secret:A}}", lookup).unwrap(),
            "Bearer va"
        );
        assert_eq!(
            substitute("{{secret:A}}:{{secret: A }}", lookup).unwrap(),
            "va:va"
        );
        assert!(substitute("x {{secret:B}}", lookup)
            .unwrap_err()
            .contains("`B`"));
        assert!(substitute("x {{secret:A", lookup).is_err());
        assert_eq!(substitute("plain", lookup).unwrap(), "plain");
    }

    /// A body of the given data frames.
    struct Chunks(std::collections::VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = HttpError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    #[tokio::test]
    async fn values_are_cut_across_frames() {
        let secret = r#"tok"en-123"#;
        let text = r#"a tok"en-123 b {"v":"tok\"en-123"} tok"#;
        for split in 0..=text.len() {
            let (x, y) = text.split_at(split);
            let chunks = [x, y, ""].map(|c| Bytes::copy_from_slice(c.as_bytes()));
            let counted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let seen = counted.clone();
            let body = Redacted::new(
                Chunks(chunks.into_iter().collect()),
                Arc::new(Redaction::new([secret]).unwrap()),
                Box::new(move |n| seen.store(n, std::sync::atomic::Ordering::SeqCst)),
            );
            let out = body.collect().await.ok().unwrap().to_bytes();
            assert_eq!(
                std::str::from_utf8(&out).unwrap(),
                r#"a [redacted] b {"v":"[redacted]"} tok"#,
                "split at {split}"
            );
            assert_eq!(counted.load(std::sync::atomic::Ordering::SeqCst), 2);
        }
    }

    #[test]
    fn heads_are_redacted() {
        let r = Redaction::new(["Secret-1", ""]).unwrap();
        let mut h = HeaderMap::new();
        h.append("x-echo", "Bearer Secret-1".parse().unwrap());
        h.append("x-echo", "plain".parse().unwrap());
        h.append("x-secret-1", "1".parse().unwrap());
        h.append("content-type", "text/plain".parse().unwrap());
        assert_eq!(r.head(&mut h), 2);
        let echoed: Vec<_> = h.get_all("x-echo").iter().collect();
        assert_eq!(echoed, ["Bearer [redacted]", "plain"]);
        assert!(h.get("x-secret-1").is_none() && h.get("content-type").is_some());
        assert!(Redaction::new([""]).is_none());
    }
}
