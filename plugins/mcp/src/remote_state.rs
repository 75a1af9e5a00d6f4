//! This instance's remote state (`warden_sdk::set_remote_state`): what each
//! live client leaves open on its server (a 2025-era session, a request in
//! flight), kept current so that a fresh instance can end it should this one
//! die (a limit, a trap, a caller that went away).
//!
//! A request in flight matters only on the 2025-era wire, where a closed
//! connection is not a cancellation: the fresh instance sends
//! `notifications/cancelled`. At 2026-07-28 closing the response stream is
//! the cancellation, and the host closes it with the dead instance.

use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

thread_local! {
    /// What each live client leaves open, by its serial number.
    static OPEN: RefCell<BTreeMap<u64, Value>> = const { RefCell::new(BTreeMap::new()) };
    static NEXT: Cell<u64> = const { Cell::new(1) };
}

/// A serial number for a new client.
pub(crate) fn serial() -> u64 {
    NEXT.with(|n| {
        let s = n.get();
        n.set(s + 1);
        s
    })
}

/// Records what client `serial` leaves open (`None`: nothing) and tells
/// the host when this changes the instance's remote state.
pub(crate) fn report(serial: u64, open: Option<Value>) {
    let text = OPEN.with(|m| {
        let mut m = m.borrow_mut();
        if m.get(&serial) == open.as_ref() {
            return None;
        }
        match open {
            Some(v) => m.insert(serial, v),
            None => m.remove(&serial),
        };
        Some(if m.is_empty() {
            String::new()
        } else {
            Value::Array(m.values().cloned().collect()).to_string()
        })
    });
    if let Some(text) = text {
        if let Err(e) = warden_sdk::set_remote_state(&text) {
            warden_sdk::log::warn(format!(
                "MCP: what this instance leaves open on its servers is too much to keep ({e}); it may be left open should the instance die"
            ));
        }
    }
}

/// The entries of a remote state as [`report`] set it.
pub(crate) fn entries(state: &str) -> Vec<Value> {
    match serde_json::from_str::<Value>(state) {
        Ok(Value::Array(items)) => items,
        _ => Vec::new(),
    }
}
