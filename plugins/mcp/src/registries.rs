//! Warden services found without naming each one (`[discovery]` in the
//! plugin's config): `registries`, the MCP endpoints of Warden services,
//! and `dns-sd`, DNS service names (`_warden._tcp.example.org`) whose SRV
//! records list the replicas of one service each, looked up through the
//! host's governed DNS ([`warden_sdk::dns::lookup_service`]) at every
//! discovery and again when the answer is older than [`DNS_TTL`]. Each
//! becomes a service as if configured under `servers` with
//! `marketplace = true`, named after its host (`central.example.org:8443`
//! gives `central-example-org-8443`) or its domain (`example-org`).

use serde::Deserialize;
use std::time::Duration;
use warden_sdk::Error;

/// How long the replicas found by SRV records are used before they are
/// looked up again (at discovery they always are).
pub(crate) const DNS_TTL: Duration = Duration::from_secs(30);
/// The prefix of a DNS-SD name for Warden services.
const DNS_SD_PREFIX: &str = "_warden._tcp.";

/// `[discovery]`: where to find Warden services, and how to reach them.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct DiscoveryConfig {
    /// MCP endpoints of Warden services (`https://central.example.org/mcp`).
    #[serde(default)]
    pub registries: Vec<String>,
    /// DNS-SD names (`_warden._tcp.example.org`): each one service, its
    /// SRV targets its replicas.
    #[serde(default)]
    pub dns_sd: Vec<String>,
    /// The scheme of the URLs made from SRV targets (default `https`).
    pub scheme: Option<String>,
    /// The MCP path on SRV targets (default `/mcp`).
    pub path: Option<String>,
    /// The secret holding the bearer token for every service found.
    pub auth_secret: Option<String>,
    /// The Ed25519 public key (PEM) every marketplace found must be signed with.
    pub marketplace_key: Option<String>,
    /// How long a replica that did not answer is left out (default 5000).
    pub back_off_ms: Option<u64>,
    pub timeout_ms: Option<u64>,
}

/// A service whose replicas are the targets of SRV records.
#[derive(Debug, Clone)]
pub(crate) struct DnsSd {
    /// The name looked up.
    pub name: String,
    scheme: String,
    path: String,
    /// When (monotonic ns) the replicas were last looked up.
    pub resolved_at: Option<u64>,
}

impl DnsSd {
    /// Whether the replicas should be looked up again (`fresh`: always).
    pub(crate) fn due(&self, fresh: bool) -> bool {
        let now = warden_sdk::time::monotonic_nanos();
        fresh
            || self
                .resolved_at
                .is_none_or(|at| now.saturating_sub(at) >= DNS_TTL.as_nanos() as u64)
    }

    /// The replicas' MCP URLs with their SRV priorities, lowest first.
    pub(crate) fn look_up(&mut self) -> Result<Vec<(String, u16)>, Error> {
        let targets = warden_sdk::dns::lookup_service(&self.name)?;
        self.resolved_at = Some(warden_sdk::time::monotonic_nanos());
        Ok(targets
            .into_iter()
            .map(|t| {
                let url = format!("{}://{}:{}{}", self.scheme, t.host, t.port, self.path);
                (url, t.priority)
            })
            .collect())
    }
}

/// One service `[discovery]` names: its name here and where it is.
pub(crate) enum Found {
    /// A registry: one MCP endpoint.
    Registry { name: String, url: String },
    /// A DNS-SD name.
    Dns { name: String, dns: DnsSd },
}

impl DiscoveryConfig {
    /// The services it names, each with the name its capabilities get
    /// (`mcp.<name>.<id there>`).
    pub(crate) fn found(&self) -> Result<Vec<Found>, Error> {
        let scheme = self.scheme.clone().unwrap_or_else(|| "https".into());
        if scheme != "https" && scheme != "http" {
            return Err(Error::invalid_input(format!(
                "discovery.scheme: `{scheme}`: use https or http"
            )));
        }
        let path = self.path.clone().unwrap_or_else(|| "/mcp".into());
        if !path.starts_with('/') {
            return Err(Error::invalid_input(format!(
                "discovery.path: `{path}` does not start with `/`"
            )));
        }
        let mut out = Vec::new();
        for url in &self.registries {
            let name = registry_name(url).ok_or_else(|| {
                Error::invalid_input(format!(
                    "discovery.registries: `{url}` is not an http(s) URL"
                ))
            })?;
            out.push(Found::Registry {
                name,
                url: url.clone(),
            });
        }
        for name in &self.dns_sd {
            let domain = name.strip_prefix(DNS_SD_PREFIX).filter(|d| !d.is_empty());
            let Some(domain) = domain else {
                return Err(Error::invalid_input(format!(
                    "discovery.dns-sd: `{name}` does not start with `{DNS_SD_PREFIX}`"
                )));
            };
            out.push(Found::Dns {
                name: sanitize(domain.trim_end_matches('.')),
                dns: DnsSd {
                    name: name.clone(),
                    scheme: scheme.clone(),
                    path: path.clone(),
                    resolved_at: None,
                },
            });
        }
        Ok(out)
    }
}

/// The name of the service at `url`: its host and port, as a name.
fn registry_name(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let authority = authority.rsplit('@').next()?;
    (!authority.is_empty()).then(|| sanitize(authority))
}

/// `text` in lower case with each run of characters other than letters,
/// digits and `_` made one `-`.
fn sanitize(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c.is_ascii_alphanumeric() || c == '_' {
            true => s.push(c.to_ascii_lowercase()),
            false if !s.ends_with('-') => s.push('-'),
            false => {}
        }
    }
    s.trim_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_hosts_and_domains() {
        let c = DiscoveryConfig {
            registries: vec![
                "https://Central.Example.org/mcp".into(),
                "http://127.0.0.1:4000/mcp".into(),
                "http://[::1]:4000".into(),
            ],
            dns_sd: vec!["_warden._tcp.example.org.".into()],
            ..Default::default()
        };
        let names: Vec<String> = c
            .found()
            .unwrap()
            .into_iter()
            .map(|f| match f {
                Found::Registry { name, .. } | Found::Dns { name, .. } => name,
            })
            .collect();
        assert_eq!(
            names,
            [
                "central-example-org",
                "127-0-0-1-4000",
                "1-4000",
                "example-org"
            ]
        );
    }

    #[test]
    fn bad_entries_are_refused_by_name() {
        for c in [
            DiscoveryConfig {
                registries: vec!["ftp://x".into()],
                ..Default::default()
            },
            DiscoveryConfig {
                dns_sd: vec!["_other._tcp.example.org".into()],
                ..Default::default()
            },
            DiscoveryConfig {
                scheme: Some("gopher".into()),
                ..Default::default()
            },
        ] {
            assert!(c.found().is_err());
        }
    }
}
