//! Grants: what one plugin may touch (`[plugins.NAME.grants]`), and the
//! destination pattern syntax they use ([`EgressRule`]). The effect
//! [`EffectPolicy`](super::effect_policy::Policy) is built from them.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// What a plugin may touch (`[plugins.NAME.grants]`). Empty means nothing.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Grants {
    /// Names of host environment variables the plugin may read.
    #[serde(default)]
    pub env: Vec<String>,
    /// Host directories preopened for the plugin.
    #[serde(default)]
    pub dirs: Vec<DirGrant>,
    /// Egress destinations as `scheme://host:port` patterns: `*.` subdomain
    /// wildcards (`https://*.example.com:443`) and `*` ports are allowed;
    /// the scheme is `http`, `https`, `tcp` or `udp`.
    #[serde(default)]
    pub network: Vec<String>,
    /// Secrets the plugin may send, each bound to destinations (egress
    /// patterns), to the header names it may fill and to methods. The guest
    /// writes `{{secret:NAME}}` in a request header; the host substitutes
    /// the value only there, and redacts it from the response. The guest
    /// never sees the value.
    #[serde(default)]
    pub secrets: Vec<SecretGrant>,
}

/// One secret granted to a plugin.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SecretGrant {
    /// The secret's name (a key of `[secrets]`).
    pub name: String,
    /// Destinations it may be sent to, as `scheme://host:port` patterns.
    pub hosts: Vec<String>,
    /// Request headers it may fill (case-insensitive); `authorization`
    /// when not given.
    #[serde(default = "default_secret_headers")]
    pub headers: Vec<String>,
    /// Methods of the requests it may be sent with; when not given, any
    /// method but `TRACE` and `CONNECT` (which reflect or tunnel a request).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
}

impl SecretGrant {
    /// Secret `name` bound to `hosts`, for the `authorization` header and
    /// any method but `TRACE` and `CONNECT`.
    pub fn new(name: impl Into<String>, hosts: Vec<String>) -> Self {
        SecretGrant {
            name: name.into(),
            hosts,
            headers: default_secret_headers(),
            methods: Vec::new(),
        }
    }
}

fn default_secret_headers() -> Vec<String> {
    vec!["authorization".to_string()]
}

/// One preopened directory.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DirGrant {
    /// Directory on the host, relative to the config file.
    pub host: PathBuf,
    /// Absolute path the guest sees, e.g. `/data`.
    pub guest: String,
    /// `ro` (the default) or `rw`.
    #[serde(default)]
    pub mode: DirMode,
}

/// Access to a granted directory.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum DirMode {
    /// Read only.
    #[default]
    #[serde(rename = "ro", alias = "read-only")]
    ReadOnly,
    /// Read and write.
    #[serde(rename = "rw", alias = "read-write")]
    ReadWrite,
}

impl Grants {
    /// Checks what serde cannot. `at` is the table's place in the
    /// configuration (`plugins.NAME.grants`); `secret_defined` says whether
    /// `[secrets]` defines a name.
    pub(crate) fn validate(&self, at: &str, secret_defined: impl Fn(&str) -> bool) -> Result<()> {
        for (i, d) in self.dirs.iter().enumerate() {
            if !d.guest.starts_with('/') {
                return Err(Error::Config(format!(
                    "at `{at}.dirs[{i}].guest`: `{}` must be an absolute path like `/data`",
                    d.guest
                )));
            }
        }
        for (i, pattern) in self.network.iter().enumerate() {
            EgressRule::parse(pattern)
                .map_err(|e| Error::Config(format!("at `{at}.network[{i}]`: {e}")))?;
        }
        for (i, g) in self.secrets.iter().enumerate() {
            if !secret_defined(&g.name) {
                return Err(Error::Config(format!(
                    "at `{at}.secrets[{i}]`: secret `{}` is not defined in [secrets]",
                    g.name
                )));
            }
            if g.hosts.is_empty() {
                return Err(Error::Config(format!(
                    "at `{at}.secrets[{i}].hosts`: bind the secret to at least one destination"
                )));
            }
            for (j, pattern) in g.hosts.iter().enumerate() {
                EgressRule::parse(pattern).map_err(|e| {
                    Error::Config(format!("at `{at}.secrets[{i}].hosts[{j}]`: {e}"))
                })?;
            }
            if g.headers.is_empty() {
                return Err(Error::Config(format!(
                    "at `{at}.secrets[{i}].headers`: name at least one header the secret may fill"
                )));
            }
            for (j, header) in g.headers.iter().enumerate() {
                if http::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
                    return Err(Error::Config(format!(
                        "at `{at}.secrets[{i}].headers[{j}]`: `{header}` is not a header name"
                    )));
                }
                if header.eq_ignore_ascii_case("host") {
                    return Err(Error::Config(format!(
                        "at `{at}.secrets[{i}].headers[{j}]`: a secret may not fill `Host`"
                    )));
                }
            }
            for (j, method) in g.methods.iter().enumerate() {
                if http::Method::from_bytes(method.as_bytes()).is_err() || method.is_empty() {
                    return Err(Error::Config(format!(
                        "at `{at}.secrets[{i}].methods[{j}]`: `{method}` is not an HTTP method"
                    )));
                }
            }
        }
        for (i, var) in self.env.iter().enumerate() {
            if var.is_empty() || var.contains('=') {
                return Err(Error::Config(format!(
                    "at `{at}.env[{i}]`: `{var}` is not a variable name"
                )));
            }
        }
        Ok(())
    }
}

/// One egress grant: `scheme://host:port` with `*.` subdomain wildcards and a
/// `*` port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressRule {
    scheme: String,
    host: HostPattern,
    port: Option<u16>,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// `*.example.com`: any subdomain of `example.com`, not the apex.
    Subdomains(String),
}

const SCHEMES: &[&str] = &["http", "https", "tcp", "udp"];

impl EgressRule {
    /// Parses a grant. The port is required (`*` for any).
    pub fn parse(text: &str) -> std::result::Result<EgressRule, String> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("`{text}`: expected scheme://host:port"))?;
        let scheme = scheme.to_ascii_lowercase();
        if !SCHEMES.contains(&scheme.as_str()) {
            return Err(format!(
                "`{text}`: scheme must be one of {}",
                SCHEMES.join(", ")
            ));
        }
        if rest.contains('/') || rest.contains('?') || rest.contains('@') {
            return Err(format!(
                "`{text}`: a grant names scheme, host and port only"
            ));
        }
        let (host, port) = if let Some(stripped) = rest.strip_prefix('[') {
            let (h, p) = stripped
                .split_once(']')
                .ok_or_else(|| format!("`{text}`: unclosed `[`"))?;
            (
                h.to_string(),
                p.strip_prefix(':')
                    .ok_or_else(|| format!("`{text}`: missing port"))?,
            )
        } else {
            let (h, p) = rest
                .rsplit_once(':')
                .ok_or_else(|| format!("`{text}`: missing port (use `:*` for any)"))?;
            (h.to_string(), p)
        };
        let port = match port {
            "*" => None,
            p => Some(
                p.parse::<u16>()
                    .map_err(|_| format!("`{text}`: invalid port `{p}`"))?,
            ),
        };
        let host = host.to_ascii_lowercase();
        if host.is_empty() || host == "*" {
            return Err(format!(
                "`{text}`: a host is required; `*` alone would allow every host"
            ));
        }
        let host = match host.strip_prefix("*.") {
            Some(base) if !base.is_empty() && !base.contains('*') => {
                HostPattern::Subdomains(base.to_string())
            }
            _ if host.contains('*') => {
                return Err(format!("`{text}`: `*` is allowed only as a leading `*.`"))
            }
            _ => HostPattern::Exact(host),
        };
        Ok(EgressRule {
            scheme,
            host,
            port,
            text: text.to_string(),
        })
    }

    /// Whether the grant names one host exactly (not a `*.` wildcard).
    pub fn is_by_name(&self) -> bool {
        matches!(self.host, HostPattern::Exact(_))
    }

    /// The scheme it grants (`https`, `tcp`, ...).
    pub(crate) fn scheme(&self) -> &str {
        &self.scheme
    }

    /// Whether it grants `scheme://host:port` (`host` normalized).
    pub(crate) fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        if self.scheme != scheme || self.port.is_some_and(|p| p != port) {
            return false;
        }
        self.matches_host(host)
    }

    /// Whether it names `host` (normalized), on any scheme and port.
    pub(crate) fn matches_host(&self, host: &str) -> bool {
        match &self.host {
            HostPattern::Exact(h) => h == host,
            // A wildcard names domains: it never matches an IP literal
            // (`*.0.0.1` is not `127.0.0.1`).
            HostPattern::Subdomains(base) => {
                host.parse::<std::net::IpAddr>().is_err()
                    && host.len() > base.len() + 1
                    && host.ends_with(base.as_str())
                    && host.as_bytes()[host.len() - base.len() - 1] == b'.'
            }
        }
    }
}

impl fmt::Display for EgressRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
