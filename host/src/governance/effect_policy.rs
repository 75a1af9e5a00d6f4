//! EffectPolicy: what one plugin may do. Built once per plugin from its grants;
//! the code that performs an effect asks this handle and interprets nothing
//! itself. Deny is the default: no grant, no effect.

pub use super::grants::EgressRule;
use super::grants::{DirMode, Grants};
use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

pub use super::addresses::is_public;
use std::path::PathBuf;

/// The answer to "may this plugin do that?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, by the grant quoted.
    Allow(String),
    /// Refused, with the reason.
    Deny(String),
}

impl Decision {
    /// Whether the effect may happen.
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
}

/// What a guest does with a socket address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketUse {
    /// Connect a TCP socket.
    TcpConnect,
    /// Bind a TCP socket.
    TcpBind,
    /// Listen on a TCP socket.
    TcpListen,
    /// Accept on a TCP socket.
    TcpAccept,
    /// Bind a UDP socket.
    UdpBind,
    /// Send a UDP datagram.
    UdpSend,
    /// Receive UDP datagrams from an address.
    UdpReceive,
}

/// A preopened directory, resolved to a host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirAccess {
    /// Host directory.
    pub host: PathBuf,
    /// Path the guest sees.
    pub guest: String,
    /// Read-only or read-write.
    pub mode: DirMode,
}

/// A secret's value. Never printed: `Debug` shows only the length.
#[derive(Clone)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps a value.
    pub fn new(value: String) -> Self {
        SecretValue(value)
    }
    /// The value, for substitution into a request.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretValue(<{} bytes redacted>)", self.0.len())
    }
}

/// A secret granted to a plugin, bound to destinations.
#[derive(Debug, Clone)]
pub struct BoundSecret {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: SecretValue,
    /// Where it may be sent.
    pub hosts: Vec<EgressRule>,
    /// The request headers it may fill, in lower case.
    pub headers: Vec<String>,
    /// The methods it may be sent with, in upper case; empty: any but
    /// `TRACE` and `CONNECT`.
    pub methods: Vec<String>,
    /// Why its value could not be read when the plugin loaded (an unset
    /// environment variable, an unreadable file); a request that would
    /// carry it is refused with this reason, and other requests go on.
    pub unavailable: Option<String>,
}

/// Where a secret would be sent: the request's destination, method and
/// the header it would fill.
#[derive(Debug, Clone, Copy)]
pub struct SecretUse<'a> {
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The destination host.
    pub host: &'a str,
    /// The destination port.
    pub port: u16,
    /// The header the placeholder is in.
    pub header: &'a str,
    /// The request method.
    pub method: &'a str,
}

/// Everything one plugin may do.
#[derive(Debug, Clone, Default)]
pub struct EffectPolicy {
    env: Vec<String>,
    dirs: Vec<DirAccess>,
    egress: Vec<EgressRule>,
    secrets: Vec<BoundSecret>,
}

impl EffectPolicy {
    /// A policy that allows nothing.
    pub fn deny_all() -> Self {
        EffectPolicy::default()
    }

    /// Builds the policy from grants; `resolve` turns grant paths into host paths.
    pub fn from_grants(
        grants: &Grants,
        resolve: impl Fn(&std::path::Path) -> PathBuf,
    ) -> Result<Self, String> {
        let egress = grants
            .network
            .iter()
            .map(|g| EgressRule::parse(g))
            .collect::<Result<Vec<_>, _>>()?;
        let dirs = grants
            .dirs
            .iter()
            .map(|d| DirAccess {
                host: resolve(&d.host),
                guest: d.guest.clone(),
                mode: d.mode,
            })
            .collect();
        Ok(EffectPolicy {
            env: grants.env.clone(),
            dirs,
            egress,
            secrets: Vec::new(),
        })
    }

    /// Adds the plugin's bound secrets.
    pub fn with_secrets(mut self, secrets: Vec<BoundSecret>) -> Self {
        self.secrets = secrets;
        self
    }

    /// The names and values of every secret granted to the plugin that
    /// could be read: what every response it receives is redacted of.
    pub fn granted_secrets(&self) -> impl Iterator<Item = (&str, &SecretValue)> {
        self.secrets
            .iter()
            .filter(|s| s.unavailable.is_none())
            .map(|s| (s.name.as_str(), &s.value))
    }

    /// The value of secret `name` for header `header` of a `method`
    /// request to `scheme://host:port`, or why it may not be sent there.
    /// Reasons name the secret, never its value.
    pub fn secret_for(&self, name: &str, use_: SecretUse<'_>) -> Result<&SecretValue, String> {
        let SecretUse {
            scheme,
            host,
            port,
            header,
            method,
        } = use_;
        let secret = self
            .secrets
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| format!("secret `{name}` is not granted to this plugin"))?;
        let host = normalize_host(host);
        if !secret
            .hosts
            .iter()
            .any(|r| r.matches(&scheme.to_ascii_lowercase(), &host, port))
        {
            return Err(format!(
                "secret `{name}` may not be sent to {scheme}://{host}:{port}"
            ));
        }
        if !secret
            .headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case(header))
        {
            return Err(format!(
                "secret `{name}` may not fill header `{header}` (it may fill: {})",
                secret.headers.join(", ")
            ));
        }
        let method_ok = if secret.methods.is_empty() {
            !method.eq_ignore_ascii_case("TRACE") && !method.eq_ignore_ascii_case("CONNECT")
        } else {
            secret
                .methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(method))
        };
        if !method_ok {
            return Err(format!(
                "secret `{name}` may not be sent with a {method} request"
            ));
        }
        if let Some(why) = &secret.unavailable {
            return Err(format!("{why}, so nothing that would carry it is sent"));
        }
        Ok(&secret.value)
    }

    /// Whether the plugin has any secrets (to skip scanning headers otherwise).
    pub fn has_secrets(&self) -> bool {
        !self.secrets.is_empty()
    }

    /// The check after name resolution: may the plugin connect to `ip`,
    /// which `host` resolved to? A loopback, private, link-local or
    /// unique-local address needs a grant that names `host` exactly.
    pub fn check_resolved(&self, scheme: &str, host: &str, port: u16, ip: IpAddr) -> Decision {
        let host_n = normalize_host(host);
        if host_n.parse::<IpAddr>().is_ok() || is_public(ip) {
            return Decision::Allow(format!("{host_n} -> {ip}"));
        }
        let scheme = scheme.to_ascii_lowercase();
        match self.egress.iter().find(|r| r.matches(&scheme, &host_n, port) && r.is_by_name()) {
            Some(rule) => Decision::Allow(format!("{host_n} -> {ip}, granted by name in `{rule}`")),
            None => Decision::Deny(format!(
                "{host_n} resolves to the non-public address {ip}; only a grant naming `{host_n}` exactly allows that"
            )),
        }
    }

    /// May the plugin look up `name` (`wasi:sockets/ip-name-lookup`)? Only
    /// when some network grant names it, on any scheme and port: a lookup of
    /// any other name would only probe the resolver.
    pub fn lookup_decision(&self, name: &str) -> Decision {
        let name = normalize_host(name);
        match self.egress.iter().find(|r| r.matches_host(&name)) {
            Some(rule) => Decision::Allow(format!("network grant `{rule}` names `{name}`")),
            None if self.egress.is_empty() => Decision::Deny(format!(
                "looking up `{name}`: the plugin has no network grants"
            )),
            None => Decision::Deny(format!("looking up `{name}`: no network grant names it")),
        }
    }

    /// Whether a network grant names `name` exactly (not by a wildcard).
    pub fn names_exactly(&self, name: &str) -> bool {
        let name = normalize_host(name);
        self.egress
            .iter()
            .any(|r| r.is_by_name() && r.matches_host(&name))
    }

    /// Whether a lookup of `name` may answer `ip`: a public address, or any
    /// address when a grant names `name` exactly (the rule HTTP follows).
    pub fn lookup_answer_allowed(&self, name: &str, ip: IpAddr) -> bool {
        let name = normalize_host(name);
        is_public(ip) || self.names_exactly(&name)
    }

    /// Whether the plugin may read the environment variable `name`.
    pub fn env_allowed(&self, name: &str) -> Decision {
        if self.env.iter().any(|n| n == name) {
            Decision::Allow(format!("env grant `{name}`"))
        } else {
            Decision::Deny(format!("environment variable `{name}` is not granted"))
        }
    }

    /// The environment the plugin sees: the granted variables that are set
    /// in `lookup` (the host's environment in production).
    pub fn environment(&self, lookup: impl Fn(&str) -> Option<String>) -> Vec<(String, String)> {
        self.env
            .iter()
            .filter_map(|n| lookup(n).map(|v| (n.clone(), v)))
            .collect()
    }

    /// The directories to preopen.
    pub fn dirs(&self) -> &[DirAccess] {
        &self.dirs
    }

    /// The egress grants.
    pub fn egress_rules(&self) -> &[EgressRule] {
        &self.egress
    }

    /// Decides one use of a socket address by a guest (`wasi:sockets`):
    /// connects and sends by the egress grants; a bind of the wildcard
    /// address with port 0 (the ephemeral bind the OS makes before a connect
    /// or send, which reaches nothing by itself) always, so that a refused
    /// connect is judged, and recorded, on the address it tried; any other
    /// bind, listen or accept is never granted.
    ///
    /// `names` are the names the plugin looked up that answered this
    /// address: a grant naming one of them allows it too, under the rule
    /// for resolved addresses ([`check_resolved`](Self::check_resolved)).
    pub fn check_socket(
        &self,
        usage: SocketUse,
        addr: std::net::SocketAddr,
        names: &[String],
    ) -> Decision {
        let ip = addr.ip().to_string();
        let implicit_bind = addr.ip().is_unspecified() && addr.port() == 0;
        let by_address_or_name = |scheme: &str| {
            let by_address = self.check_egress(scheme, &ip, addr.port());
            if by_address.allowed() {
                return by_address;
            }
            for name in names {
                if let Ok(rule) = self.granting_rule(scheme, name, addr.port()) {
                    if let Decision::Allow(how) =
                        self.check_resolved(scheme, name, addr.port(), addr.ip())
                    {
                        return Decision::Allow(format!("network grant `{rule}` ({how})"));
                    }
                }
            }
            by_address
        };
        match usage {
            SocketUse::TcpConnect => by_address_or_name("tcp"),
            SocketUse::UdpSend | SocketUse::UdpReceive => by_address_or_name("udp"),
            SocketUse::TcpBind | SocketUse::UdpBind if implicit_bind => Decision::Allow(
                "an ephemeral bind of the wildcard address reaches nothing by itself".into(),
            ),
            SocketUse::TcpBind | SocketUse::UdpBind => {
                Decision::Deny(format!("binding {addr} is not granted"))
            }
            SocketUse::TcpListen | SocketUse::TcpAccept => {
                Decision::Deny(format!("listening on {addr} is not granted"))
            }
        }
    }
    /// Whether any grant uses `scheme` (to decide whether to enable a
    /// socket family at all).
    pub fn any_egress(&self, scheme: &str) -> bool {
        self.egress.iter().any(|r| r.scheme() == scheme)
    }

    /// The one egress check, for HTTP requests and sockets alike: may the
    /// plugin reach `host:port` over `scheme`? `host` is the destination
    /// actually connected to (a name or an IP literal), never a header.
    pub fn check_egress(&self, scheme: &str, host: &str, port: u16) -> Decision {
        match self.granting_rule(scheme, host, port) {
            Ok(rule) => Decision::Allow(format!("network grant `{rule}`")),
            Err(reason) => Decision::Deny(reason),
        }
    }

    /// [`check_egress`](Self::check_egress) without building the reason
    /// for an allowed destination (the per-request path): `None` when
    /// allowed, else why not.
    pub fn egress_denial(&self, scheme: &str, host: &str, port: u16) -> Option<String> {
        self.granting_rule(scheme, host, port).err()
    }

    fn granting_rule(&self, scheme: &str, host: &str, port: u16) -> Result<&EgressRule, String> {
        let scheme = lower(scheme);
        let host = normalize_host(host);
        match self.egress.iter().find(|r| r.matches(&scheme, &host, port)) {
            Some(rule) => Ok(rule),
            None if self.egress.is_empty() => Err(format!(
                "{scheme}://{host}:{port}: the plugin has no network grants"
            )),
            None => Err(format!("{scheme}://{host}:{port} matches no network grant")),
        }
    }
}

/// `s` in lower case, borrowed when it already is.
fn lower(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// A host as grants name it: lower case, no brackets or trailing dot, an IP
/// literal in its canonical form.
fn normalize_host(host: &str) -> Cow<'_, str> {
    let h = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.');
    if h.parse::<std::net::Ipv4Addr>().is_ok() {
        // The IPv4 parser takes only the canonical dotted form.
        return Cow::Borrowed(h);
    }
    match h.parse::<IpAddr>() {
        Ok(ip) => Cow::Owned(ip.to_string()),
        Err(_) => lower(h),
    }
}

#[cfg(test)]
mod tests;
