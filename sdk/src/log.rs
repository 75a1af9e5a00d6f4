//! Logging into the host's log. Every record is tagged by the host with the
//! plugin's name; the guest cannot choose or forge the tag.

use crate::__rt::bindings::warden::provider::host::{self, Level};

/// Logs `message` at trace level.
pub fn trace(message: impl AsRef<str>) {
    host::log(Level::Trace, message.as_ref())
}
/// Logs `message` at debug level.
pub fn debug(message: impl AsRef<str>) {
    host::log(Level::Debug, message.as_ref())
}
/// Logs `message` at info level.
pub fn info(message: impl AsRef<str>) {
    host::log(Level::Info, message.as_ref())
}
/// Logs `message` at warn level.
pub fn warn(message: impl AsRef<str>) {
    host::log(Level::Warn, message.as_ref())
}
/// Logs `message` at error level.
pub fn error(message: impl AsRef<str>) {
    host::log(Level::Error, message.as_ref())
}

/// Notes `text` about the call in progress in the host's audit log, under
/// `topic` (a record of that call: effect `note`). For what only the
/// plugin knows, such as the id a remote service gave the call. Clipped
/// to 64 and 512 bytes; counts as a log line; outside a call it goes
/// nowhere.
pub fn audit_note(topic: impl AsRef<str>, text: impl AsRef<str>) {
    host::note(topic.as_ref(), text.as_ref())
}
