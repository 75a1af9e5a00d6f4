//! The `[policy]` table: rules that decide whether a call runs at all
//! (enforced by [`Governance`](super::admission::Governance)).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Rules for calls (`[policy]`). Effects are governed by each plugin's
/// grants; these rules decide whether a call runs at all.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CallRules {
    /// What happens to a call no rule matches. Default `allow`; `deny`
    /// turns the rules into an allow-list.
    #[serde(default)]
    pub default: RuleDecision,
    /// Rules by capability id glob, first match wins (`[[policy.rules]]`).
    #[serde(default)]
    pub rules: Vec<CallRule>,
    /// Per plugin rules (`[policy.plugins.NAME]`).
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginRules>,
}

/// What a rule does with a call.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum RuleDecision {
    /// The call runs.
    #[default]
    Allow,
    /// The call is refused (exit 3).
    Deny,
    /// The call waits for the embedder's approver (the CLI asks on the
    /// terminal and denies where there is none).
    Approve,
}

/// One rule (`[[policy.rules]]`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CallRule {
    /// Capability ids it matches: `*` matches any run of characters
    /// (`files.*`, `mcp.*.delete_*`). Default `*`.
    #[serde(default = "every_capability")]
    pub capability: String,
    /// Metadata the capability must also have, by flattened key, each
    /// value equal (`{ "mcp.annotations.destructive-hint" = true }`).
    #[serde(default)]
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// Callers it applies to, by principal: `*` matches any run of
    /// characters (`build-*`). Empty (the default): every caller. A caller
    /// without a principal matches no rule that lists some.
    #[serde(default)]
    pub principals: Vec<String>,
    /// Scopes the caller must hold, all of them, for the rule to apply
    /// (OAuth scopes, or those an embedder passes). Empty: any.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Groups the caller must be in, one of them, for the rule to apply
    /// (an OAuth token's groups claim, or those an embedder passes).
    /// Empty: any.
    #[serde(default)]
    pub groups: Vec<String>,
    /// What it does. Default `allow`.
    #[serde(default)]
    pub decision: RuleDecision,
    /// At most this many calls per minute to each capability it matches.
    pub calls_per_minute: Option<u32>,
    /// Shown to the caller when the rule denies.
    pub reason: Option<String>,
}

/// Per plugin rules (`[policy.plugins.NAME]`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PluginRules {
    /// At most this many calls per minute to the plugin, all capabilities together.
    pub calls_per_minute: Option<u32>,
    /// At most this many calls to the plugin at once; a further call waits
    /// up to `max-wait-ms`, then fails (exit 3).
    pub max_concurrent: Option<u32>,
    /// How long a call waits for a `max-concurrent` slot.
    #[serde(default = "default_max_wait_ms")]
    pub max_wait_ms: u64,
    /// The component's expected digest (`sha256:<64 hex>`); another
    /// component refuses to load.
    pub digest: Option<String>,
}

fn every_capability() -> String {
    "*".into()
}

/// Who is calling, as rules see it: the authenticated principal, if any,
/// and the scopes it holds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Identity<'a> {
    /// The principal (a token's, an OAuth subject, `stdio`, `local`).
    pub principal: Option<&'a str>,
    /// Its scopes.
    pub scopes: &'a [String],
    /// The groups it is in.
    pub groups: &'a [String],
}

impl CallRule {
    /// Whether the rule applies to capability `id` with flattened metadata
    /// `flat`, called by `caller`.
    pub(crate) fn matches(
        &self,
        id: &str,
        flat: &BTreeMap<String, serde_json::Value>,
        caller: Identity<'_>,
    ) -> bool {
        glob(&self.capability, id)
            && self.metadata.iter().all(|(k, v)| flat.get(k) == Some(v))
            && self.applies_to(caller)
    }

    fn applies_to(&self, caller: Identity<'_>) -> bool {
        let principal_ok = self.principals.is_empty()
            || caller
                .principal
                .is_some_and(|p| self.principals.iter().any(|g| glob(g, p)));
        let groups_ok =
            self.groups.is_empty() || self.groups.iter().any(|g| caller.groups.contains(g));
        principal_ok && groups_ok && self.scopes.iter().all(|s| caller.scopes.contains(s))
    }
}

fn default_max_wait_ms() -> u64 {
    1000
}

impl CallRules {
    /// Checks what serde cannot; `plugin_exists` says whether a plugin of
    /// that name is configured.
    pub(crate) fn validate(&self, plugin_exists: impl Fn(&str) -> bool) -> Result<()> {
        for (i, r) in self.rules.iter().enumerate() {
            for (key, items) in [
                ("principals", &r.principals),
                ("scopes", &r.scopes),
                ("groups", &r.groups),
            ] {
                if let Some(j) = items.iter().position(|p| p.trim().is_empty()) {
                    return Err(Error::Config(format!(
                        "at `policy.rules[{i}].{key}[{j}]`: must not be empty"
                    )));
                }
            }
            if r.capability.trim().is_empty() {
                return Err(Error::Config(format!(
                    "at `policy.rules[{i}].capability`: must not be empty (use `*` for every capability)"
                )));
            }
            if let Some(k) = r.metadata.keys().find(|k| k.trim().is_empty()) {
                return Err(Error::Config(format!(
                    "at `policy.rules[{i}].metadata`: key `{k}` is empty"
                )));
            }
            if r.calls_per_minute == Some(0) {
                return Err(Error::Config(format!(
                    "at `policy.rules[{i}].calls-per-minute`: must be at least 1 (use decision = \"deny\" to refuse calls)"
                )));
            }
        }
        for (name, p) in &self.plugins {
            if !plugin_exists(name) {
                return Err(Error::Config(format!(
                    "at `policy.plugins.{name}`: no plugin `{name}` is configured"
                )));
            }
            if p.calls_per_minute == Some(0) || p.max_concurrent == Some(0) {
                return Err(Error::Config(format!(
                    "at `policy.plugins.{name}`: calls-per-minute and max-concurrent must be at least 1"
                )));
            }
            if let Some(d) = &p.digest {
                let ok = d
                    .strip_prefix("sha256:")
                    .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()));
                if !ok {
                    return Err(Error::Config(format!(
                        "at `policy.plugins.{name}.digest`: `{d}` is not `sha256:` and 64 hex digits"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// `*` matches any run of characters; everything else matches itself.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if text.len() < first.len() + last.len() || !text.starts_with(first) || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs() {
        assert!(glob("*", "a.b"));
        assert!(glob("files.*", "files.read"));
        assert!(!glob("files.*", "text.files"));
        assert!(glob("mcp.*.delete_*", "mcp.demo.delete_all"));
        assert!(!glob("mcp.*.delete_*", "mcp.demo.add"));
        assert!(glob("text.case", "text.case"));
        assert!(!glob("text.case", "text.cases"));
        assert!(!glob("a*a", "a"));
    }
}
