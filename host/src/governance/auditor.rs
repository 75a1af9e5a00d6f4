//! The per-instance effect recorder: each effect decision of a plugin,
//! tagged with the call running in its instance, written to the audit log.

use super::audit::{AuditLog, Effect, Entry, Outcome};
use std::sync::{Arc, Mutex};

/// Writes a plugin's effect decisions to the audit log, tagged with the
/// call in progress in its instance.
#[derive(Clone)]
pub(crate) struct Auditor {
    log: Option<Arc<AuditLog>>,
    plugin: Arc<str>,
    digest: Arc<str>,
    scope: Arc<Mutex<(String, String)>>,
}

impl Auditor {
    pub(crate) fn new(log: Option<Arc<AuditLog>>, plugin: Arc<str>, digest: Arc<str>) -> Auditor {
        Auditor {
            log,
            plugin,
            digest,
            scope: Arc::new(Mutex::new((String::new(), String::new()))),
        }
    }

    /// The same log and plugin with a scope of its own (one per instance).
    pub(crate) fn for_instance(&self) -> Auditor {
        Auditor::new(self.log.clone(), self.plugin.clone(), self.digest.clone())
    }

    /// The call now running in this instance.
    pub(crate) fn enter(&self, capability: &str, call_id: &str) {
        if self.log.is_none() {
            return;
        }
        let mut scope = self.scope.lock().unwrap_or_else(|e| e.into_inner());
        scope.0.clear();
        scope.0.push_str(capability);
        scope.1.clear();
        scope.1.push_str(call_id);
    }

    /// Whether decisions are written anywhere (callers may skip building
    /// a record's text otherwise).
    pub(crate) fn active(&self) -> bool {
        self.log.is_some()
    }

    /// Records an effect decision. `false` if it could not be written: the
    /// caller then refuses the effect (fail closed).
    pub(crate) fn record(
        &self,
        effect: Effect,
        target: &str,
        decision: Outcome,
        reason: &str,
    ) -> bool {
        let Some(log) = &self.log else { return true };
        let (capability, call_id) = self.scope.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match log.append(Entry {
            plugin: self.plugin.to_string(),
            digest: self.digest.to_string(),
            capability,
            call_id,
            effect,
            target: target.to_string(),
            decision,
            reason: reason.to_string(),
            duration_ms: None,
        }) {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(plugin = %self.plugin, "audit log: {e}");
                false
            }
        }
    }
}
