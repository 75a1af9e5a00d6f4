//! `warden:provider/host`: the log and env-var services.

use crate::bindings::warden::provider::host::{self, Level};
use crate::bindings::warden::provider::types::Error as WitError;
use crate::governance::audit::{Effect, Outcome};

use super::*;

impl host::Host for State {
    fn env_var(&mut self, name: String) -> Result<Option<String>, WitError> {
        use crate::governance::policy::Decision;
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

    fn log(&mut self, level: Level, message: String) {
        if !self.log_budget.take() {
            return;
        }
        let plugin = &*self.plugin;
        let message = clip(&message);
        match level {
            Level::Trace => tracing::trace!(target: "guest", plugin, "{message}"),
            Level::Debug => tracing::debug!(target: "guest", plugin, "{message}"),
            Level::Info => tracing::info!(target: "guest", plugin, "{message}"),
            Level::Warn => tracing::warn!(target: "guest", plugin, "{message}"),
            Level::Error => tracing::error!(target: "guest", plugin, "{message}"),
        }
    }
}
