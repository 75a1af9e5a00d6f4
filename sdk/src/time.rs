//! Time: waiting without burning fuel.

use crate::__rt::bindings::wasi::clocks::monotonic_clock;
use std::time::Duration;

/// Blocks the plugin for `d` (the host's wall-clock limit still applies).
pub fn sleep(d: Duration) {
    let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    monotonic_clock::subscribe_duration(nanos).block();
}

/// Nanoseconds on a monotonic clock, for measuring intervals.
pub fn monotonic_nanos() -> u64 {
    monotonic_clock::now()
}
