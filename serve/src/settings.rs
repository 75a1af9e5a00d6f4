//! `[serve]`: how `warden serve` lets MCP clients in. The host's
//! configuration keeps the table as it is; this crate reads it, refusing
//! unknown keys by name.

use serde::{Deserialize, Serialize};
use warden::{Config, Error, Result};

/// Settings of `warden serve` (`[serve]`).
///
/// ```toml
/// [secrets.AGENT_TOKEN]
/// env = "AGENT_TOKEN"
///
/// [serve]
/// tokens = [{ secret = "AGENT_TOKEN", principal = "build-agent" }]
/// allowed-origins = ["https://agent.example"]
/// max-connections = 1024          # open HTTP connections in total
/// max-connections-per-ip = 256    # from one client address (an IPv6 /64)
/// ```
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
    /// Host names (no port) a loopback-bound server answers to besides
    /// `localhost` and the loopback addresses: names this machine has (in
    /// `/etc/hosts`, DNS or a local proxy's upstream). Any other `Host` is
    /// refused with 421 (DNS rebinding). Binds that are not loopback take
    /// any `Host`.
    pub allowed_hosts: Vec<String>,
    /// Largest request body accepted, in bytes.
    pub max_request_bytes: u64,
    /// Requests one client may have in flight at once; more are refused
    /// with 429. A client is a token's principal, the stdio client, or,
    /// without tokens, each 2025-11-25 session and each HTTP connection.
    pub max_concurrent_per_client: u32,
    /// Requests in flight at once over every client; more are refused with
    /// 429. At least `max-concurrent-per-client`.
    pub max_concurrent: u32,
    /// On shutdown, how long calls in flight may run on before they are
    /// abandoned.
    pub shutdown_grace_ms: u64,
    /// How long the user has to answer an approval request.
    pub approval_timeout_ms: u64,
    /// The `[secrets]` entry (at least 32 characters) whose value keys the
    /// `requestState` of approvals, so that every replica given the same
    /// one accepts the others' states (each still usable once: across
    /// replicas with `[cluster]`). Unset: a random key of this process.
    pub approval_key_secret: Option<String>,
    /// A former `approval-key-secret`, whose states are still accepted
    /// (never issued) during a rotation.
    pub approval_previous_key_secret: Option<String>,
    /// MCP sessions (revision 2025-11-25) idle this long are ended.
    pub session_idle_ms: u64,
    /// At most this many MCP sessions at once; `initialize` is refused past it.
    pub max_sessions: u32,
    /// At most this many MCP sessions of one principal (`local` is one, and
    /// so is `stdio`); unset, a quarter of `max-sessions` (at least 1).
    pub max_sessions_per_principal: Option<u32>,
    /// A connection's request headers must arrive within this time, counted
    /// from the connection's start or the end of its previous response (so
    /// it is also how long an idle keep-alive connection stays open).
    pub header_timeout_ms: u64,
    /// A request's body must arrive whole within this time after its
    /// headers; a stalled one is answered 408 and its connection closed.
    pub body_timeout_ms: u64,
    /// Open HTTP connections at most. When full, a new connection closes the
    /// one that has waited longest for a request (stalled mid-request or idle
    /// between requests); if every one is serving a request, the new one is
    /// closed.
    pub max_connections: u32,
    /// Open HTTP connections from one client address (an IPv6 /64) at most,
    /// with the same rule; at most `max-connections`.
    pub max_connections_per_ip: u32,
    /// A call by a client that declares the MCP Tasks extension and still
    /// runs after this long is answered with a task (a capability whose
    /// metadata says `long-running = true` is, at once).
    pub task_after_ms: u64,
    /// How long an ended task's result is kept for `tasks/get`.
    pub task_ttl_ms: u64,
    /// Tasks one principal may hold (running or kept); past it, the
    /// oldest ended one is dropped, and when all run, a call is answered
    /// without a task.
    pub max_tasks_per_principal: u32,
    /// Bytes of task results one principal may have kept; past it, its
    /// oldest ended tasks are dropped, and a larger result is not kept
    /// (the task fails, saying so).
    pub task_bytes_per_principal: u64,
    /// Each successful tool result carries
    /// `_meta["dev.warden/attestation"]`: the call's id, digests of its
    /// input and output, signed with `[audit] signing-key` (which it
    /// needs). `warden audit verify-result` checks one.
    pub attest_results: bool,
    /// OAuth 2.1 access tokens (JWT) from an authorization server, beside
    /// the static `tokens`.
    pub oauth: Option<crate::oauth::OAuthSettings>,
    /// On SIGTERM or SIGINT, how long `/readyz` answers 503 while requests
    /// are still served, before the server stops taking new ones: time for
    /// a load balancer or Kubernetes to stop sending here. A second signal
    /// ends the wait. 0: stop at once.
    pub drain_ms: u64,
    /// This replica's name, given by `/healthz` and `/readyz`. Unset: the
    /// environment's `WARDEN_REPLICA_ID`, else the machine's host name (a
    /// Kubernetes pod's name). 1-63 letters, digits, `.`, `_` or `-`.
    pub replica_id: Option<String>,
    /// The Ed25519 key (a PEM file or secret, as `[audit] signing-key`)
    /// that signs the published marketplace (`/.well-known/warden/
    /// marketplace.json` and `.rtfs`: an RFC 9421 `Signature` over its RFC
    /// 9530 `Content-Digest`). Unset: `[audit] signing-key`, if that is
    /// set; else the marketplace is published unsigned.
    pub marketplace_signing_key: Option<warden::audit::KeySource>,
    /// This service's MCP endpoint as its consumers reach it
    /// (`https://central.example/mcp`), published as each capability's
    /// `:module-url`. Unset: `http://`, the request's `Host`, `/mcp`.
    pub public_url: Option<String>,
}

/// One accepted bearer token (`[[serve.tokens]]`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
            allowed_hosts: Vec::new(),
            max_request_bytes: 4 << 20,
            max_concurrent_per_client: 32,
            max_concurrent: 256,
            shutdown_grace_ms: 10_000,
            approval_timeout_ms: 120_000,
            session_idle_ms: 30 * 60_000,
            max_sessions: 10_000,
            max_sessions_per_principal: None,
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            max_connections: 1024,
            max_connections_per_ip: 256,
            task_after_ms: 5_000,
            task_ttl_ms: 10 * 60_000,
            max_tasks_per_principal: 64,
            task_bytes_per_principal: 32 << 20,
            attest_results: false,
            oauth: None,
            drain_ms: 0,
            replica_id: None,
            approval_key_secret: None,
            approval_previous_key_secret: None,
            marketplace_signing_key: None,
            public_url: None,
        }
    }
}

/// Longest accepted `header-timeout-ms` and `body-timeout-ms` (one hour).
const MAX_TIMEOUT_MS: u64 = 3_600_000;

impl ServeSettings {
    /// The `[serve]` table of `config`, checked: an unknown key is named,
    /// every bound holds and each token's secret is defined.
    pub fn from_config(config: &Config) -> Result<ServeSettings> {
        let mut settings = ServeSettings::deserialize(toml::Value::Table(config.serve.clone()))
            .map_err(|e| Error::Config(format!("in [serve]: {}", e.message())))?;
        settings.validate(|s| config.secrets.contains_key(s))?;
        if let Some(o) = &mut settings.oauth {
            o.validate().map_err(Error::Config)?;
            if let Some(i) = &mut o.introspection {
                if let Some(name) = &i.client_secret {
                    let value = config.secret_value(name).map_err(|e| {
                        Error::Config(format!("at `serve.oauth.introspection.client-secret`: {e}"))
                    })?;
                    i.secret_value = Some(crate::oauth::introspect::Hidden(value));
                }
            }
        }
        Ok(settings)
    }

    /// `max-sessions-per-principal`, or its default: a quarter of
    /// `max-sessions`, at least 1.
    pub fn sessions_per_principal(&self) -> u32 {
        self.max_sessions_per_principal
            .unwrap_or((self.max_sessions / 4).max(1))
    }

    fn validate(&self, secret_defined: impl Fn(&str) -> bool) -> Result<()> {
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
        for (key, name) in [
            ("approval-key-secret", &self.approval_key_secret),
            (
                "approval-previous-key-secret",
                &self.approval_previous_key_secret,
            ),
        ] {
            if let Some(name) = name.as_deref().filter(|n| !secret_defined(n)) {
                return bad(
                    key.to_string(),
                    &format!("secret `{name}` is not defined in [secrets]"),
                );
            }
        }
        if self.approval_previous_key_secret.is_some() && self.approval_key_secret.is_none() {
            return bad(
                "approval-previous-key-secret".into(),
                "needs `approval-key-secret` (the key states are issued with)",
            );
        }
        if let Some(url) = &self.public_url {
            let ok = (url.starts_with("http://") || url.starts_with("https://"))
                && !url.contains(char::is_whitespace)
                && url.len() <= 2048;
            if !ok {
                return bad(
                    "public-url".into(),
                    "must be an http:// or https:// URL such as `https://central.example/mcp`",
                );
            }
        }
        for (i, h) in self.allowed_hosts.iter().enumerate() {
            let ok = !h.is_empty()
                && h.len() <= 253
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
            if !ok {
                return bad(
                    format!("allowed-hosts[{i}]"),
                    "must be a host name such as `central.internal` (no scheme, port or path)",
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
            ("max-concurrent", self.max_concurrent.into()),
            (
                "max-sessions-per-principal",
                self.sessions_per_principal().into(),
            ),
            ("header-timeout-ms", self.header_timeout_ms),
            ("body-timeout-ms", self.body_timeout_ms),
            ("max-connections", self.max_connections.into()),
            ("max-connections-per-ip", self.max_connections_per_ip.into()),
            ("task-after-ms", self.task_after_ms),
            ("task-ttl-ms", self.task_ttl_ms),
            (
                "max-tasks-per-principal",
                self.max_tasks_per_principal.into(),
            ),
            ("task-bytes-per-principal", self.task_bytes_per_principal),
        ] {
            if v == 0 {
                return bad(field.to_string(), "must be at least 1");
            }
        }
        self.validate_bounds()
    }

    /// Each per-client cap fits under its total; timeouts stay under an hour.
    fn validate_bounds(&self) -> Result<()> {
        let bad = |at: &str, what: String| Err(Error::Config(format!("at `serve.{at}`: {what}")));
        for (field, part, whole, total) in [
            (
                "max-concurrent-per-client",
                self.max_concurrent_per_client,
                self.max_concurrent,
                "max-concurrent",
            ),
            (
                "max-sessions-per-principal",
                self.sessions_per_principal(),
                self.max_sessions,
                "max-sessions",
            ),
            (
                "max-connections-per-ip",
                self.max_connections_per_ip,
                self.max_connections,
                "max-connections",
            ),
        ] {
            if part > whole {
                return bad(field, format!("{part} is more than `{total}` ({whole})"));
            }
        }
        for (field, v) in [
            ("header-timeout-ms", self.header_timeout_ms),
            ("body-timeout-ms", self.body_timeout_ms),
            ("drain-ms", self.drain_ms),
        ] {
            if v > MAX_TIMEOUT_MS {
                return bad(field, format!("must be at most {MAX_TIMEOUT_MS} (an hour)"));
            }
        }
        if let Some(id) = &self.replica_id {
            if !warden::audit::is_replica_name(id) {
                return bad(
                    "replica-id",
                    format!("{id:?}: must be 1-63 letters, digits, `.`, `_` or `-`"),
                );
            }
        }
        Ok(())
    }

    /// The replica's name: `replica-id`, else `WARDEN_REPLICA_ID` from the
    /// environment, else the host name, else `warden` (a name that does
    /// not fit the rule is not taken from the environment).
    pub fn replica(&self) -> String {
        if let Some(id) = &self.replica_id {
            return id.clone();
        }
        let from_env = std::env::var("WARDEN_REPLICA_ID").ok();
        let host_name = || {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        };
        from_env
            .filter(|id| warden::audit::is_replica_name(id))
            .or_else(|| host_name().filter(|id| warden::audit::is_replica_name(id)))
            .unwrap_or_else(|| "warden".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> ServeSettings {
        toml::from_str(toml_text).expect("valid [serve]")
    }

    fn error(toml_text: &str) -> String {
        let settings = parse(toml_text);
        match settings.validate(|_| true) {
            Err(e) => e.to_string(),
            Ok(()) => panic!("{toml_text:?} was accepted"),
        }
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = parse("");
        assert_eq!(s, ServeSettings::default());
        assert_eq!(s.max_request_bytes, 4 << 20);
        assert_eq!(s.max_concurrent_per_client, 32);
        assert_eq!(s.max_concurrent, 256);
        assert_eq!(s.max_sessions, 10_000);
        assert_eq!(s.sessions_per_principal(), 2_500);
        assert_eq!(s.header_timeout_ms, 10_000);
        assert_eq!(s.body_timeout_ms, 30_000);
        assert_eq!(s.max_connections, 1024);
        assert_eq!(s.max_connections_per_ip, 256);
        assert!(s.validate(|_| true).is_ok());
        // The per-principal default follows max-sessions, at least 1.
        assert_eq!(parse("max-sessions = 2").sessions_per_principal(), 1);
        assert_eq!(parse("max-sessions = 40").sessions_per_principal(), 10);
    }

    #[test]
    fn caps_and_timeouts_are_checked() {
        for (text, named) in [
            ("max-connections = 0", "max-connections"),
            ("header-timeout-ms = 0", "header-timeout-ms"),
            ("body-timeout-ms = 0", "body-timeout-ms"),
            (
                "max-sessions-per-principal = 0",
                "max-sessions-per-principal",
            ),
            ("max-concurrent = 0", "max-concurrent"),
            (
                "max-connections = 10\nmax-connections-per-ip = 11",
                "max-connections-per-ip",
            ),
            (
                "max-sessions = 5\nmax-sessions-per-principal = 6",
                "max-sessions-per-principal",
            ),
            (
                "max-concurrent = 4\nmax-concurrent-per-client = 5",
                "max-concurrent-per-client",
            ),
            ("header-timeout-ms = 3600001", "header-timeout-ms"),
            ("body-timeout-ms = 9223372036854775807", "body-timeout-ms"),
            ("drain-ms = 3600001", "drain-ms"),
            (
                "approval-previous-key-secret = \"OLD\"",
                "approval-previous-key-secret",
            ),
            ("replica-id = \"\"", "replica-id"),
            ("replica-id = \"a b\"", "replica-id"),
            ("replica-id = \"r/1\"", "replica-id"),
        ] {
            let e = error(text);
            assert!(e.contains(&format!("serve.{named}`")), "{text}: {e}");
        }
        assert!(toml::from_str::<ServeSettings>("max-connection = 1").is_err());
    }

    #[test]
    fn a_replica_is_named_by_its_setting_first() {
        let s = parse("replica-id = \"edge-1.eu_west\"");
        assert!(s.validate(|_| true).is_ok());
        assert_eq!(s.replica(), "edge-1.eu_west");
        // Unset: the environment's or the host's name, always a valid one.
        assert!(warden::audit::is_replica_name(&parse("").replica()));
        assert!(!warden::audit::is_replica_name(&"x".repeat(64)));
    }
}
