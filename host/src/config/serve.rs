//! `[serve]`: how `warden serve` lets MCP clients in.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Settings of `warden serve` (`[serve]`).
///
/// ```toml
/// [secrets.AGENT_TOKEN]
/// env = "AGENT_TOKEN"
///
/// [serve]
/// tokens = [{ secret = "AGENT_TOKEN", principal = "build-agent" }]
/// allowed-origins = ["https://agent.example"]
/// ```
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ServeSettings {
    /// Bearer tokens accepted on the HTTP transport, each naming a secret
    /// (from `[secrets]`) that holds the token and the principal it stands
    /// for. With none, only loopback binds are allowed and every HTTP client
    /// is the principal `local`.
    pub tokens: Vec<ServeToken>,
    /// Browser origins allowed besides the loopback ones
    /// (`http://localhost:*`, `http://127.0.0.1:*`, `http://[::1]:*`); a
    /// request with any other `Origin` is refused (DNS rebinding).
    pub allowed_origins: Vec<String>,
    /// Largest request body accepted, in bytes.
    pub max_request_bytes: u64,
    /// Requests one principal may have in flight at once; more are refused
    /// with 429.
    pub max_concurrent_per_client: u32,
    /// On shutdown, how long calls in flight may run on before they are
    /// abandoned.
    pub shutdown_grace_ms: u64,
    /// How long the user has to answer an approval request.
    pub approval_timeout_ms: u64,
    /// MCP sessions (revision 2025-11-25) idle this long are ended.
    pub session_idle_ms: u64,
    /// At most this many MCP sessions at once; `initialize` is refused past it.
    pub max_sessions: u32,
}

/// One accepted bearer token (`[[serve.tokens]]`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeToken {
    /// The secret (in `[secrets]`) whose value is the token.
    pub secret: String,
    /// Who presents it: named in the audit log, and the owner of the
    /// sessions and approvals opened with it.
    pub principal: String,
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            tokens: Vec::new(),
            allowed_origins: Vec::new(),
            max_request_bytes: 4 << 20,
            max_concurrent_per_client: 32,
            shutdown_grace_ms: 10_000,
            approval_timeout_ms: 120_000,
            session_idle_ms: 30 * 60_000,
            max_sessions: 10_000,
        }
    }
}

impl ServeSettings {
    pub(crate) fn validate(&self, secret_defined: impl Fn(&str) -> bool) -> Result<()> {
        let bad = |at: String, what: &str| Err(Error::Config(format!("at `serve.{at}`: {what}")));
        let mut principals = std::collections::BTreeSet::new();
        for (i, t) in self.tokens.iter().enumerate() {
            if !secret_defined(&t.secret) {
                return bad(
                    format!("tokens[{i}].secret"),
                    &format!("secret `{}` is not defined in [secrets]", t.secret),
                );
            }
            let name_ok = !t.principal.is_empty()
                && t.principal.len() <= 128
                && t.principal.chars().all(|c| c.is_ascii_graphic());
            if !name_ok {
                return bad(
                    format!("tokens[{i}].principal"),
                    "must be 1-128 visible ASCII characters",
                );
            }
            if t.principal == "local" || t.principal == "stdio" {
                return bad(
                    format!("tokens[{i}].principal"),
                    &format!("`{}` is reserved", t.principal),
                );
            }
            if !principals.insert(&t.principal) {
                return bad(
                    format!("tokens[{i}].principal"),
                    &format!("`{}` is given twice", t.principal),
                );
            }
        }
        for (i, o) in self.allowed_origins.iter().enumerate() {
            let ok = (o.starts_with("http://") || o.starts_with("https://"))
                && !o.ends_with('/')
                && !o.contains(char::is_whitespace);
            if !ok {
                return bad(
                    format!("allowed-origins[{i}]"),
                    "must be an origin such as `https://app.example` (scheme and host, no path)",
                );
            }
        }
        for (field, v) in [
            ("max-request-bytes", self.max_request_bytes),
            (
                "max-concurrent-per-client",
                self.max_concurrent_per_client.into(),
            ),
            ("approval-timeout-ms", self.approval_timeout_ms),
            ("session-idle-ms", self.session_idle_ms),
            ("max-sessions", self.max_sessions.into()),
        ] {
            if v == 0 {
                return bad(field.to_string(), "must be at least 1");
            }
        }
        Ok(())
    }
}
