//! `warden:provider/host`: the log, env-var, remote-state, progress,
//! note and service-lookup services.

use crate::audit::{Effect, Outcome};
use crate::bindings::warden::provider::host::{self, Level};
use crate::bindings::warden::provider::types::Error as WitError;

use super::*;

/// Longest text `set-remote-state` keeps.
const MAX_REMOTE_STATE: usize = 64 << 10;
/// Longest topic and text of a `note`, in bytes.
const MAX_NOTE_TOPIC: usize = 64;
const MAX_NOTE_TEXT: usize = 512;

impl host::Host for State {
    fn env_var(&mut self, name: String) -> Result<Option<String>, WitError> {
        use crate::governance::effect_policy::Decision;
        match self.policy.env_allowed(&name) {
            Decision::Allow(reason) => {
                if !self
                    .auditor
                    .record(Effect::Env, &name, Outcome::Allow, &reason)
                {
                    return Err(WitError::Denied("the audit log cannot be written".into()));
                }
                Ok(std::env::var(&name).ok())
            }
            Decision::Deny(reason) => {
                self.auditor
                    .record(Effect::Env, &name, Outcome::Deny, &reason);
                Err(WitError::Denied(reason))
            }
        }
    }

    fn set_remote_state(&mut self, state: String) -> Result<(), WitError> {
        if state.len() > MAX_REMOTE_STATE {
            return Err(WitError::InvalidInput(format!(
                "a remote state of {} bytes is over the {MAX_REMOTE_STATE}-byte limit",
                state.len()
            )));
        }
        self.remote_state = state;
        Ok(())
    }

    fn progress(&mut self, done: u64, total: Option<u64>, message: String) {
        if !self.pace.admits(done, total) {
            return;
        }
        let (capability, call_id) = self.auditor.current();
        let Some(sink) = self.listeners.of(&call_id) else {
            return;
        };
        let line = one_line(&message);
        sink.report(crate::progress::Progress {
            capability,
            done,
            total,
            message: clip_to(&line, crate::progress::MAX_MESSAGE_BYTES).to_string(),
        });
    }

    fn note(&mut self, topic: String, text: String) {
        let (_, call_id) = self.auditor.current();
        if call_id.is_empty() || !self.log_budget.take() {
            return;
        }
        let topic = one_line(clip_to(&topic, MAX_NOTE_TOPIC)).into_owned();
        let text = one_line(clip_to(&text, MAX_NOTE_TEXT)).into_owned();
        self.auditor
            .record(Effect::Note, &topic, Outcome::Allow, &text);
    }

    async fn lookup_service(&mut self, name: String) -> Result<Vec<host::ServiceTarget>, WitError> {
        let lookup = super::service_lookup::ServiceLookup {
            egress: self.hooks.egress().clone(),
            auditor: self.auditor.clone(),
            timeout: std::time::Duration::from_millis(self.hooks.limits().request_timeout_ms),
        };
        lookup.run(name).await
    }

    fn log(&mut self, level: Level, message: String) {
        if !self.log_budget.take() {
            if matches!(level, Level::Error) {
                self.stderr_tail.push(&one_line(clip(&message)));
            }
            return;
        }
        let plugin = &*self.plugin;
        let message = one_line(clip(&message));
        if matches!(level, Level::Warn | Level::Error) {
            // Kept for the cause of a crash that may follow.
            self.stderr_tail.push(&message);
        }
        match level {
            Level::Trace => tracing::trace!(target: "guest", plugin, "{message}"),
            Level::Debug => tracing::debug!(target: "guest", plugin, "{message}"),
            Level::Info => tracing::info!(target: "guest", plugin, "{message}"),
            Level::Warn => tracing::warn!(target: "guest", plugin, "{message}"),
            Level::Error => tracing::error!(target: "guest", plugin, "{message}"),
        }
    }
}

/// `s` with line breaks and other control characters escaped, so that one
/// guest message is one log line and cannot forge others.
pub(super) fn one_line(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_message_is_one_line() {
        let forged = "ok\n2026-12-01T00:00:00Z  INFO warden: fake\r\x1b[31m";
        let line = super::one_line(forged);
        assert!(!line.contains('\n') && !line.contains('\r') && !line.contains('\x1b'));
        assert_eq!(
            line,
            "ok\\n2026-12-01T00:00:00Z  INFO warden: fake\\r\\u{1b}[31m"
        );
        assert_eq!(super::one_line("plain"), "plain");
    }
}
