//! What a guest's answer means for the caller: a guest error's kind and
//! message, and the whole cause of a crash.

use crate::bindings::warden::provider::types as wit;
use crate::error::ErrorKind;

/// The kind (None for `denied`) and message of a guest error.
pub(crate) fn split_wit_error(e: wit::Error) -> (Option<ErrorKind>, String) {
    match e {
        wit::Error::InvalidInput(m) => (Some(ErrorKind::InvalidInput), m),
        wit::Error::NotFound(m) => (Some(ErrorKind::NotFound), m),
        wit::Error::Denied(m) => (None, m),
        wit::Error::Upstream(m) => (Some(ErrorKind::Upstream), m),
        wit::Error::Timeout(m) => (Some(ErrorKind::Timeout), m),
        wit::Error::Unavailable(m) => (Some(ErrorKind::Unavailable), m),
        wit::Error::Internal(m) => (Some(ErrorKind::Internal), m),
    }
}

/// Why a guest crashed, in full: the error's first line and its root cause
/// (the trap: `unreachable`, an out-of-bounds access, ...; wasmtime puts the
/// backtrace between them), then the last lines the guest wrote to stderr
/// or logged as warnings and errors (where a Python traceback or a JS
/// exception is printed, and where the SDK sends a Rust panic's message).
pub(crate) fn crash_cause(e: &wasmtime::Error, stderr_tail: &[String]) -> String {
    let mut cause = if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
        // `exit()`, Python's `sys.exit`, JavaScript's `process.exit`.
        format!(
            "the guest exited with status {} instead of returning",
            exit.0
        )
    } else {
        let outer = e.to_string();
        let outer = outer.lines().next().unwrap_or("").trim_end_matches(':');
        let root = e.root_cause().to_string();
        let root = root.lines().next().unwrap_or("");
        if root.is_empty() || root == outer {
            outer.to_string()
        } else if outer.starts_with("error while executing at wasm backtrace") {
            // Only a header for the backtrace: the trap says it all.
            root.to_string()
        } else {
            format!("{outer}: {root}")
        }
    };
    if !stderr_tail.is_empty() {
        cause.push_str("; the guest's last error output: ");
        cause.push_str(&stderr_tail.join(" | "));
    }
    cause
}

/// A guest error as text, for logs: `kind: message`.
pub(crate) fn wit_error_text(e: &wit::Error) -> String {
    let (kind, message) = split_wit_error(e.clone());
    match kind {
        Some(k) => format!("{k}: {message}"),
        None => format!("denied: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_says_its_cause_first() {
        let trap = wasmtime::Error::new(wasmtime::Trap::UnreachableCodeReached)
            .context("error while executing at wasm backtrace:\n    0: 0x1 - f");
        let text = crash_cause(&trap, &["panicked: boom".into()]);
        assert!(text.starts_with("wasm trap: wasm `unreachable`"), "{text}");
        assert!(
            text.ends_with("the guest's last error output: panicked: boom"),
            "{text}"
        );
        let exit = wasmtime::Error::new(wasmtime_wasi::I32Exit(3));
        assert_eq!(
            crash_cause(&exit, &[]),
            "the guest exited with status 3 instead of returning"
        );
    }
}
