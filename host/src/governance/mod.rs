//! Governance: what a plugin may do and whether a call may run, and the
//! record of every decision. Imports nothing above it (no configuration
//! loading, registry, runtime, sandbox or egress; only the audit log
//! below it): those hand it plain values.
//!
//! - [`grants`]: a plugin's grants (`[plugins.NAME.grants]`) and the
//!   destination pattern syntax.
//! - [`effect_policy`]: the effect policy built from the grants, the one handle the
//!   code performing an effect asks; `addresses` says which are public.
//! - [`rules`]: the `[policy]` table; [`admission`] enforces it per call
//!   (rules, rate limits, approval, concurrency slots).
//! - [`auditor`] records each instance's effect decisions in the audit log
//!   ([`crate::audit`]); [`budget`] bounds its volume per plugin and client.

mod addresses;
pub(crate) mod admission;
pub(crate) mod auditor;
pub mod budget;
mod call_id;
pub mod effect_policy;
pub(crate) mod grants;
pub(crate) mod rules;

pub use crate::audit::AuditSettings;
pub(crate) use admission::Governance;
pub(crate) use admission::{Admitting, CallFacts, Input, MatchedRule};
pub use admission::{Approval, ApprovalRequest, Approver};
pub(crate) use auditor::{Auditor, CallTag};
pub(crate) use call_id::CallId;
pub use grants::{DirGrant, DirMode, Grants, SecretGrant};
pub use rules::{CallRule, CallRules, PluginRules, RuleDecision};
