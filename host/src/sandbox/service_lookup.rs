//! `host.lookup-service`: SRV records (DNS-SD, RFC 2782) through the
//! plugin's governed DNS. The name is judged as a name lookup is (a network
//! grant naming it, `[host] resolve-wildcards`), recorded (`lookup`) before
//! any query leaves, and answered within the plugin's
//! `request-timeout-ms` from its own resolver's slots. The targets are
//! names: whatever reaches them later is decided by egress like any host.

use crate::audit::{Effect, Outcome};
use crate::bindings::warden::provider::host::ServiceTarget;
use crate::bindings::warden::provider::types::Error as WitError;
use crate::egress::{DnsFailure, Egress, MAX_SERVICE_TARGETS};
use crate::governance::Auditor;
use std::sync::Arc;
use std::time::Duration;

/// Longest name looked up (a DNS name has at most 253 characters).
const MAX_NAME: usize = 253;

/// What one service lookup needs from its instance.
pub(super) struct ServiceLookup {
    pub(super) egress: Arc<Egress>,
    pub(super) auditor: Auditor,
    pub(super) timeout: Duration,
}

impl ServiceLookup {
    /// The targets of `name`, or the typed refusal the guest sees.
    pub(super) async fn run(self, name: String) -> Result<Vec<ServiceTarget>, WitError> {
        let name = self.admit(&name).await?;
        let found = self.egress.lookup_service(&name, self.timeout).await;
        let (outcome, reason, answer) = match found {
            Ok(Some(targets)) => (Outcome::Allow, listed(&name, &targets), Ok(targets)),
            Ok(None) => {
                let reason = format!("{name} has no SRV records");
                (
                    Outcome::Error,
                    reason.clone(),
                    Err(WitError::NotFound(reason)),
                )
            }
            Err(DnsFailure::Timeout) => {
                let reason = format!("looking up {name} timed out");
                (
                    Outcome::Error,
                    reason.clone(),
                    Err(WitError::Timeout(reason)),
                )
            }
            Err(DnsFailure::Failed(reason)) => (
                Outcome::Error,
                reason.clone(),
                Err(WitError::Upstream(reason)),
            ),
        };
        let recorded = self
            .auditor
            .record_async(Effect::Lookup, &name, outcome, &reason);
        if !recorded.done().await {
            return Err(denied("the audit log cannot be written"));
        }
        answer.map(|targets| {
            targets
                .into_iter()
                .map(|t| ServiceTarget {
                    priority: t.priority,
                    weight: t.weight,
                    port: t.port,
                    target: t.target,
                })
                .collect()
        })
    }

    /// `name` in the form grants use, once it is granted and its lookup is
    /// recorded: nothing leaves before that.
    async fn admit(&self, name: &str) -> Result<String, WitError> {
        let parsed = match name.len() <= MAX_NAME {
            true => url::Host::parse(name).ok(),
            false => None,
        };
        let name = match parsed {
            Some(url::Host::Domain(d)) if d.len() <= MAX_NAME => {
                d.trim_end_matches('.').to_string()
            }
            _ => {
                let shown: String = name.chars().take(MAX_NAME).collect();
                let reason = format!("`{}` is not a domain name", shown.escape_debug());
                self.auditor
                    .record(Effect::Lookup, &shown, Outcome::Deny, &reason);
                return Err(WitError::InvalidInput(reason));
            }
        };
        let granted = match self.egress.admit_lookup(&name) {
            Ok(granted) => granted,
            Err(reason) => {
                self.auditor
                    .record(Effect::Lookup, &name, Outcome::Deny, &reason);
                return Err(WitError::Denied(reason));
            }
        };
        let reason = format!("{granted}; SRV, querying the nameservers");
        let recorded = self
            .auditor
            .record_async(Effect::Lookup, &name, Outcome::Allow, &reason);
        if !recorded.done().await {
            return Err(denied("the audit log cannot be written"));
        }
        Ok(name)
    }
}

/// The answer as its record gives it: `name -> 10 5 8080 a.example.org, ...`.
fn listed(name: &str, targets: &[crate::egress::ServiceTarget]) -> String {
    let each: Vec<String> = targets
        .iter()
        .map(|t| format!("{} {} {} {}", t.priority, t.weight, t.port, t.target))
        .collect();
    let more = if targets.len() == MAX_SERVICE_TARGETS {
        " (the first by priority)"
    } else {
        ""
    };
    format!("{name} SRV -> {}{more}", each.join(", "))
}

fn denied(reason: &str) -> WitError {
    WitError::Denied(reason.to_string())
}
