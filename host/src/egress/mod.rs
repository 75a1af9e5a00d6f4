//! The one door to the network for `wasi:http`: every outbound request of a
//! plugin is decided here by its [`EffectPolicy`], on the destination actually
//! connected to.
//!
//! Per request: the per-call request cap; the `Host` header must match the
//! destination; the egress grant for `scheme://host:port`; secret
//! placeholders (`{{secret:NAME}}` in header values) substituted only for a
//! destination, header and method the secret is bound to, and every value
//! sent cut out of the response; name resolution (or the configured
//! `[host] resolve` table) with every address checked, a non-public one
//! needing a by-name grant; the connection made to the checked address.
//! Responses are cut at `max-response-bytes` and a call's traffic at
//! `max-egress-bytes`. Redirects are never followed here: a guest that
//! follows one makes a new request, checked again. Each attempt is one
//! structured event (`target: warden::egress`).
//!
//! Connections are kept alive and reused per plugin and destination. Each
//! one, in use or idle in the pool, holds one of the plugin's
//! `limits.max-sockets` until it is closed: at the cap an idle connection
//! is closed to make room, or the request waits (within its connect
//! timeout) for one to close, then fails with `connection-limit-reached`.

use crate::governance::effect_policy::{Decision, EffectPolicy, SecretUse, SecretValue};
use crate::governance::Auditor;
use crate::limits::{DescriptorBudget, SocketSlot};
use hyper::client::conn::http1::SendRequest;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

mod ack;
mod connect;
mod counted;
mod decide;
mod dns;
pub(crate) mod exchange;
mod hooks;
mod respond;
mod secrets;

use ack::{Acker, QuickAck};
use connect::Conn;
use counted::Counted;
use dns::Dns;
pub(crate) use dns::{DnsFailure, ServiceTarget, MAX_SERVICE_TARGETS};
use hooks::Attempt;
pub(crate) use hooks::{EgressHooks, Failure, OutBody, Timeouts};
use secrets::{substitute, Redacted, Redaction};

const SECRET_OPEN: &str = "{{secret:";

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>;

#[derive(Clone, PartialEq, Eq, Hash)]
struct Destination {
    https: bool,
    host: String,
    port: u16,
}

impl Destination {
    fn scheme(&self) -> &'static str {
        if self.https {
            "https"
        } else {
            "http"
        }
    }
}

/// How names are resolved, host-wide (`[host]`): pinned addresses, the
/// nameservers, and whether names granted only by a `*.` wildcard are
/// looked up.
#[derive(Clone, Default)]
pub(crate) struct Naming {
    pub(crate) pins: Arc<BTreeMap<String, IpAddr>>,
    pub(crate) servers: Arc<[SocketAddr]>,
    pub(crate) wildcards: bool,
}

/// A plugin's egress: its policy, name resolution and connection pool.
/// Shared by all instances of the plugin.
pub(crate) struct Egress {
    plugin: Arc<str>,
    policy: Arc<EffectPolicy>,
    pins: Arc<BTreeMap<String, IpAddr>>,
    wildcards: bool,
    /// The plugin's own resolver.
    dns: Dns,
    idle: Mutex<HashMap<Destination, Vec<Conn>>>,
    tls: Arc<rustls::ClientConfig>,
    /// The plugin's sockets, which its connections count toward.
    descriptors: Arc<DescriptorBudget>,
    /// The values of every secret granted to the plugin, cut out of every
    /// response it receives, and their names; `None` without secrets.
    redaction: Option<(Arc<Redaction>, Arc<str>)>,
    /// The secrets granted that are the caller's token exchanged
    /// (`[secrets.NAME] exchange`), and each running call's tokens.
    exchangers: Vec<Arc<exchange::Exchanger>>,
    call_tokens: Arc<exchange::CallTokens>,
}

impl Egress {
    pub(crate) fn new(
        plugin: Arc<str>,
        policy: Arc<EffectPolicy>,
        naming: &Naming,
        descriptors: Arc<DescriptorBudget>,
    ) -> Egress {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let redaction = granted_redaction(&policy);
        Egress {
            plugin,
            policy,
            pins: naming.pins.clone(),
            wildcards: naming.wildcards,
            dns: Dns::new(naming.servers.clone()),
            idle: Mutex::new(HashMap::new()),
            tls: Arc::new(tls),
            descriptors,
            redaction,
            exchangers: Vec::new(),
            call_tokens: Arc::default(),
        }
    }

    /// The same, with the exchange secrets granted to the plugin.
    pub(crate) fn with_exchangers(mut self, exchangers: Vec<Arc<exchange::Exchanger>>) -> Egress {
        self.exchangers = exchangers;
        self
    }

    /// Exchanges the caller's token (`subject`) for each exchange secret
    /// granted, for call `call_id`; `None` if the plugin has none. The
    /// tokens are forgotten when the result is dropped.
    pub(crate) async fn exchange_for_call(
        &self,
        call_id: &str,
        subject: Option<&str>,
    ) -> Option<exchange::Exchanged> {
        if self.exchangers.is_empty() {
            return None;
        }
        Some(exchange::for_call(&self.exchangers, &self.call_tokens, call_id, subject).await)
    }

    /// Whether the plugin was granted exchange secrets.
    pub(crate) fn has_exchangers(&self) -> bool {
        !self.exchangers.is_empty()
    }

    /// Whether `name` is an exchange secret of this plugin.
    fn exchanges(&self, name: &str) -> bool {
        self.exchangers.iter().any(|x| x.name() == name)
    }

    /// Whether every response the plugin gets is redacted (it holds a
    /// secret with a value, or one exchanged per call).
    fn redacts(&self) -> bool {
        self.redaction.is_some() || !self.exchangers.is_empty()
    }

    /// The redaction of a response to the call `auditor` is in: the
    /// plugin's secrets and the call's exchanged tokens.
    fn redaction_for(&self, auditor: &Auditor) -> Option<(Arc<Redaction>, Arc<str>)> {
        if self.exchangers.is_empty() {
            return self.redaction.clone();
        }
        let tokens = self.call_tokens.values(&auditor.current().1);
        let granted: Vec<(&str, &SecretValue)> = self.policy.granted_secrets().collect();
        let values = granted
            .iter()
            .map(|(_, v)| v.expose())
            .chain(tokens.iter().map(String::as_str));
        let redaction = Redaction::new(values)?;
        let names: Vec<&str> = granted.iter().map(|(n, _)| *n).collect();
        Some((Arc::new(redaction), names.join(", ").into()))
    }

    /// A call's output with the value of every secret granted to the
    /// plugin cut out: its canonical JSON text (so `\u` escapes cannot hide
    /// a value) with the values replaced, and how many were; `None` when
    /// there was nothing to cut (or the plugin has no secrets).
    /// Whether the plugin holds secrets whose values are cut from outputs.
    pub(crate) fn redacts_output(&self) -> bool {
        self.redaction.is_some()
    }

    pub(crate) fn redact_output(&self, output: &serde_json::Value) -> Option<(String, usize)> {
        let (redaction, _) = self.redaction.as_ref()?;
        let canonical = serde_json::to_string(output).ok()?;
        Some(redaction.text(&canonical)).filter(|(_, cut)| *cut > 0)
    }

    /// The plugin's socket and file budget.
    pub(crate) fn descriptors(&self) -> &Arc<DescriptorBudget> {
        &self.descriptors
    }

    pub(crate) fn policy(&self) -> &Arc<EffectPolicy> {
        &self.policy
    }

    /// Why `host` may not be looked up at all, beyond the grants: with
    /// `[host] resolve-wildcards = false`, a name granted only by a `*.`
    /// wildcard (not pinned, not granted by name) never reaches a
    /// nameserver, so its labels cannot carry data out.
    pub(crate) fn lookup_denial(&self, host: &str) -> Option<String> {
        if self.wildcards
            || host.parse::<IpAddr>().is_ok()
            || self.pinned(host)
            || self.policy.names_exactly(host)
        {
            return None;
        }
        Some(format!(
            "`{host}` is granted only by a wildcard, and [host] resolve-wildcards = false: \
             only pinned names and names granted exactly are looked up"
        ))
    }

    /// Whether `host` (a name) may be looked up by the guest: the grant
    /// that names it, or why not (no grant names it, or only a wildcard
    /// does and `[host] resolve-wildcards = false`). The one admission of
    /// address and service lookups.
    pub(crate) fn admit_lookup(&self, host: &str) -> Result<String, String> {
        use crate::governance::effect_policy::Decision;
        let granted = match self.policy.lookup_decision(host) {
            Decision::Allow(granted) => granted,
            Decision::Deny(reason) => return Err(reason),
        };
        match self.lookup_denial(host) {
            Some(reason) => Err(reason),
            None => Ok(granted),
        }
    }

    /// The SRV records of `name` (admitted), through the plugin's resolver
    /// within `timeout`; `Ok(None)` when it has none.
    pub(crate) async fn lookup_service(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<Option<Vec<ServiceTarget>>, DnsFailure> {
        self.dns.lookup_service(name, timeout).await
    }

    /// Whether `host` is pinned in `[host] resolve` (no query for it).
    pub(crate) fn pinned(&self, host: &str) -> bool {
        self.pins.contains_key(host)
    }

    /// The addresses of `host` (lower case, no brackets or trailing dot):
    /// an IP literal as it is, a `[host] resolve` pin, else the plugin's
    /// resolver within `timeout` (waiting for a free lookup slot
    /// included). The one resolution for HTTP and for a guest's own
    /// lookups.
    pub(crate) async fn resolve(
        &self,
        host: &str,
        timeout: Duration,
    ) -> Result<Vec<IpAddr>, Refusal> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        if let Some(ip) = self.pins.get(host) {
            return Ok(vec![*ip]);
        }
        if let Some(reason) = self.lookup_denial(host) {
            return Err(Refusal::Denied(reason));
        }
        match self.dns.lookup(host, timeout).await {
            Ok(addrs) => Ok(addrs),
            Err(DnsFailure::Failed(reason)) => {
                Err(Refusal::Failed(HttpError::DestinationNotFound, reason))
            }
            Err(DnsFailure::Timeout) => Err(Refusal::Failed(
                HttpError::DnsTimeout,
                format!("resolving {host} timed out"),
            )),
        }
    }
}

/// The redaction of every secret granted under `policy`, with their names.
fn granted_redaction(policy: &EffectPolicy) -> Option<(Arc<Redaction>, Arc<str>)> {
    let granted: Vec<(&str, &SecretValue)> = policy.granted_secrets().collect();
    let redaction = Redaction::new(granted.iter().map(|(_, v)| v.expose()))?;
    let names: Vec<&str> = granted.iter().map(|(n, _)| *n).collect();
    Some((Arc::new(redaction), names.join(", ").into()))
}

pub(crate) enum Refusal {
    /// EffectPolicy said no: the guest sees `HttpRequestDenied`.
    Denied(String),
    /// The network said no.
    Failed(HttpError, String),
}
