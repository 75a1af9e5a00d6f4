//! Call ids: unique across hosts and restarts (the host's start time and
//! process id, then a counter), made without an allocation, since every
//! call has one.

use std::fmt;

/// Longest id: a 16-digit hex time, an 8-digit hex process id, `-`, and a
/// 20-digit counter.
const MAX_LEN: usize = 45;

/// One call's id, held inline.
#[derive(Clone, Copy)]
pub(crate) struct CallId {
    len: u8,
    bytes: [u8; MAX_LEN],
}

impl CallId {
    /// The id made of `prefix`, `-` and `n`.
    #[cfg(test)]
    pub(crate) fn new(prefix: &str, n: u64) -> CallId {
        CallId::prefix(prefix).numbered(n)
    }

    /// The start every id of one host shares: `prefix` and `-`; its ids
    /// are made from it with [`numbered`](Self::numbered).
    pub(crate) fn prefix(prefix: &str) -> CallId {
        let mut id = CallId {
            len: 0,
            bytes: [0; MAX_LEN],
        };
        id.push(prefix);
        id.push("-");
        id
    }

    /// This prefix followed by `n`.
    pub(crate) fn numbered(mut self, n: u64) -> CallId {
        self.push(itoa::Buffer::new().format(n));
        self
    }

    fn push(&mut self, part: &str) {
        let end = (self.len as usize + part.len()).min(MAX_LEN);
        let taken = end - self.len as usize;
        self.bytes[self.len as usize..end].copy_from_slice(&part.as_bytes()[..taken]);
        self.len = end as u8;
    }

    /// The id as text.
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII is ever written (hex digits, `-`, decimal digits).
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or_default()
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The prefix every call id of one host starts with.
pub(crate) fn host_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!("{nanos:x}{:x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_its_prefix_a_dash_and_its_number_at_every_size() {
        let prefix = host_prefix();
        assert!(prefix.len() <= 24, "{prefix}");
        for n in [0, 1, 9, 10, 4_294_967_296, u64::MAX] {
            assert_eq!(CallId::new(&prefix, n).as_str(), format!("{prefix}-{n}"));
        }
        let longest = "f".repeat(24);
        assert_eq!(
            CallId::new(&longest, u64::MAX).as_str().len(),
            MAX_LEN,
            "the longest id fits"
        );
    }
}
