//! Host configuration: the `warden.toml` format and its typed form.
//!
//! ```toml
//! [limits]                  # defaults for every plugin
//! fuel = 1_000_000_000      # fuel per call
//! memory = "64MiB"          # linear memory per instance (bytes or a size string)
//! timeout-ms = 10_000       # wall-clock time per call
//!
//! [plugins.text]
//! component = "plugins/text.wasm"   # relative to this file
//! config = { ellipsis = "..." }     # passed to the plugin's init
//! limits = { fuel = 50_000_000 }    # overrides the defaults above
//!
//! [plugins.files.grants]
//! env = ["HOME"]                                            # variables passed through
//! dirs = [{ host = "data", guest = "/data", mode = "ro" }]  # preopened directories
//! network = ["http://127.0.0.1:8080"]                      # egress destinations
//! ```
//!
//! Every table is strict: an unknown key is an error that names the key and
//! where it is.

use crate::error::{Error, Result};
pub use crate::governance::{
    AuditSettings, CallRule, CallRules, DirGrant, DirMode, Grants, PluginRules, RuleDecision,
    SecretGrant,
};
use crate::limits::check_limits;
pub use crate::limits::{
    parse_size, Limits, ResolvedLimits, DEFAULT_FUEL, DEFAULT_MAX_EGRESS_BYTES,
    DEFAULT_MAX_LOG_LINES, DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_MAX_REQUESTS,
    DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_MEMORY, DEFAULT_REQUEST_TIMEOUT_MS, DEFAULT_TIMEOUT_MS,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Default number of instances of one plugin that may run at once.
pub const DEFAULT_MAX_INSTANCES: u32 = 16;

/// The whole host configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Host-wide settings.
    #[serde(default)]
    pub host: HostSettings,
    /// Default limits for every plugin; each plugin may override any field.
    #[serde(default)]
    pub limits: Limits,
    /// Plugins by name.
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginConfig>,
    /// The marketplace store.
    #[serde(default)]
    pub marketplace: MarketplaceSettings,
    /// Named secrets and where their values come from. Plugins get a secret
    /// only through a grant that binds it to destinations.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretSource>,
    /// Which plugin serves capabilities of each provider kind, e.g.
    /// `Http = "http"`: declared and imported `:Http` capabilities are called
    /// through that plugin.
    #[serde(default)]
    pub providers: BTreeMap<String, String>,
    /// Capabilities declared in the configuration (marketplace manifests).
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Vec<serde_json::Map<String, serde_json::Value>>")
    )]
    pub capabilities: Vec<warden_manifest::Manifest>,
    /// Rules for calls: allow, deny or ask for approval by capability id,
    /// rate limits, concurrency, component pinning.
    #[serde(default)]
    pub policy: CallRules,
    /// The tamper-evident audit log; none if absent.
    pub audit: Option<AuditSettings>,
    /// Traces and metrics over OTLP; off if absent.
    #[serde(default)]
    pub telemetry: Option<crate::telemetry::TelemetrySettings>,
    /// State shared by the replicas of one service (Redis); none if absent.
    #[serde(default)]
    pub cluster: Option<crate::cluster::ClusterSettings>,
    /// How `warden serve` lets MCP clients in: kept as written and read
    /// (strictly) by `warden-serve`'s `ServeSettings::from_config`.
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "serde_json::Map<String, serde_json::Value>")
    )]
    pub serve: toml::Table,
    /// Directory that relative paths are resolved against (the config
    /// file's directory; the current directory for configs built in code).
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The file it was read from, if any.
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
}

/// Host-wide settings (`[host]`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HostSettings {
    /// Where compiled components are cached. Default: `$WARDEN_CACHE_DIR`,
    /// else `$XDG_CACHE_HOME/warden`, else `~/.cache/warden`.
    pub cache_dir: Option<PathBuf>,
    /// Turns the compiled-component cache off.
    #[serde(default)]
    pub no_cache: bool,
    /// Size cap of the compiled-component cache (`"2GiB"`, the default);
    /// the least recently used entries are evicted past it.
    #[serde(default, deserialize_with = "crate::limits::de_size")]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::limits::size_schema")
    )]
    pub cache_max_bytes: Option<u64>,
    /// Fixed name resolutions used by egress instead of DNS
    /// (`{ "api.internal" = "10.0.0.7" }`), like curl's `--resolve`. The
    /// address is still checked: a private one needs a by-name grant.
    #[serde(default)]
    pub resolve: BTreeMap<String, std::net::IpAddr>,
    /// Nameservers (`"IP:PORT"`) every plugin's lookups go to, instead of
    /// the system's (`/etc/resolv.conf`). `/etc/hosts` is read first either
    /// way.
    #[serde(default)]
    pub dns_servers: Vec<std::net::SocketAddr>,
    /// Whether a name granted only by a `*.` wildcard is looked up (the
    /// default, `true`). `false` resolves only names pinned in `resolve` or
    /// granted exactly, so that no label a plugin makes up reaches a
    /// nameserver (a DNS channel out).
    pub resolve_wildcards: Option<bool>,
    /// Refuse to start when any plugin is refused at load (a bad
    /// component, a failed describe or discovery listing, a provider kind
    /// its plugin cannot serve). Default `false`: the others load and
    /// serve, and each refusal is logged, audited and reported
    /// ([`Host::refused_plugins`](crate::Host::refused_plugins)).
    #[serde(default)]
    pub strict_load: bool,
    /// Public keys (PEM: ECDSA P-256 or Ed25519, relative to the config
    /// file) any plugin's signature may verify with, besides its own
    /// `verify.keys`.
    #[serde(default)]
    pub trusted_keys: Vec<PathBuf>,
    /// Refuse a component without a signature (`FILE.wasm.sig`) that
    /// verifies with a trusted key. Default `false`: unsigned components
    /// load (a signature that is there must still verify).
    #[serde(default)]
    pub require_signatures: bool,
    /// What a plugin whose digest differs from its `warden.lock` entry may
    /// do: `refuse` (the default) loads it only if nothing it declares,
    /// imports or is granted changed (a pulled one keeps serving its locked
    /// version); `accept-same-grants` also lets in changed capabilities;
    /// `accept` lets in any change. Plugins without an entry load.
    #[serde(default)]
    pub on_update: OnUpdate,
    /// The lockfile. Default: `warden.lock` beside the config file (configs
    /// built in code have none unless this is set).
    pub lockfile: Option<PathBuf>,
    /// Registries (`HOST[:PORT]`) reached over plain HTTP; every other one
    /// over HTTPS.
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    /// How to reach each registry (`[host.registries."HOST[:PORT]"]`):
    /// certificate authority and credentials. Without credentials here,
    /// those in Docker's `config.json` are used.
    #[serde(default)]
    pub registries: BTreeMap<String, RegistrySettings>,
}

/// One OCI registry (`[host.registries."HOST[:PORT]"]`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RegistrySettings {
    /// A PEM file of certificate authorities trusted for this registry
    /// besides the system's, relative to the config file.
    pub ca: Option<PathBuf>,
    /// The user name to log in with (HTTP basic or token auth).
    pub username: Option<String>,
    /// The `[secrets]` entry holding the password or token.
    pub password_secret: Option<String>,
}

/// What to do when a plugin's digest differs from its locked one
/// (`[host] on-update`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum OnUpdate {
    /// Refuse a version whose capabilities, schemas, effects, imports or
    /// grants changed (a pulled one keeps its locked version); a version
    /// that changes nothing declared loads.
    #[default]
    Refuse,
    /// Load a version whose imports and grants are unchanged, whatever its
    /// capabilities.
    AcceptSameGrants,
    /// Load any version (the change is logged and audited).
    Accept,
}

/// Whose signature a plugin's component must carry
/// (`[plugins.NAME.verify]`): with it, the component must be signed.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct VerifySettings {
    /// Public keys (PEM: ECDSA P-256 or Ed25519), relative to the config
    /// file; `[host] trusted-keys` are tried too.
    pub keys: Vec<PathBuf>,
}

/// Where a secret's value comes from (`[secrets.NAME]`): exactly one of
/// `env` (a host environment variable) or `file` (a file holding the value;
/// surrounding whitespace is trimmed).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SecretSource {
    /// Host environment variable holding the value.
    pub env: Option<String>,
    /// File holding the value, relative to the config file.
    pub file: Option<PathBuf>,
    /// No fixed value: for each call, the caller's OAuth access token
    /// exchanged (RFC 8693) for one scoped to an upstream audience.
    #[serde(default)]
    pub exchange: Option<TokenExchange>,
}

/// `[secrets.NAME] exchange`: the caller's access token exchanged at an
/// authorization server (RFC 8693) for one meant for an upstream; the
/// host injects it where the secret is bound, the plugin never sees it.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TokenExchange {
    /// The authorization server's token endpoint.
    pub token_endpoint: String,
    /// The upstream the new token is for (`audience`, and `resource` per
    /// RFC 8707).
    pub audience: String,
    /// The scopes asked for, space-separated (default: none asked).
    #[serde(default)]
    pub scope: Option<String>,
    /// The host's client id at the authorization server.
    pub client_id: String,
    /// A secret of `[secrets]` holding the client's secret (HTTP Basic
    /// authentication); none for a public client.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// How long one exchange may take (default 5000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// The marketplace store (`[marketplace]`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MarketplaceSettings {
    /// Directory where `warden import` keeps imported capabilities (one
    /// `.rtfs` file each), loaded at every start. Default for a config file:
    /// `.warden/marketplace` beside it; configs built in code have none
    /// unless set (imports then live in memory only).
    pub dir: Option<PathBuf>,
}

/// How instances of a plugin are used across calls.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum InstanceMode {
    /// Keep instances warm and reuse them (state may carry between calls of
    /// the same instance). The default.
    #[default]
    Reuse,
    /// A fresh instance for every call: nothing carries over.
    Fresh,
}

/// One plugin (`[plugins.NAME]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PluginConfig {
    /// The component: a `.wasm` file (relative to the config file) or an
    /// OCI reference, `oci://HOST[:PORT]/REPO:TAG` or `…@sha256:HEX`.
    pub component: PathBuf,
    /// Values passed to the plugin's `init` as a JSON object.
    #[serde(default = "empty_object")]
    pub config: serde_json::Value,
    /// Limits overriding the top-level `[limits]`.
    #[serde(default)]
    pub limits: Limits,
    /// What the plugin may touch. Nothing unless granted.
    #[serde(default)]
    pub grants: Grants,
    /// Reuse warm instances or use a fresh one per call.
    #[serde(default)]
    pub instances: InstanceMode,
    /// Most instances of this plugin running at once; further calls wait.
    #[serde(default = "default_max_instances")]
    pub max_instances: u32,
    /// The session pool for capabilities that ask for a session.
    #[serde(default)]
    pub sessions: SessionSettings,
    /// The id prefixes the plugin may register capabilities under (`text`
    /// covers `text` and `text.*`). Default: the plugin's own name. A claim
    /// outside them is refused (summarized in the audit log), never fatal.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// The keys its component's signature (`FILE.wasm.sig`, as `cosign
    /// sign-blob` or `warden sign` writes it) must verify with; with it,
    /// an unsigned component is refused.
    #[serde(default)]
    pub verify: Option<VerifySettings>,
}

/// The session pool of one plugin (`[plugins.NAME.sessions]`).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SessionSettings {
    /// A session unused this long is closed (the server sees it end).
    #[serde(default = "default_idle_ttl_ms")]
    pub idle_ttl_ms: u64,
    /// Most open sessions per server (per `*.server`/`*.server-url` in the
    /// capability's metadata). A new one beyond it closes the least recently
    /// used idle session of that server, or fails if all are busy.
    #[serde(default = "default_max_per_server")]
    pub max_per_server: u32,
    /// Most open sessions of the plugin in all; each is one instance.
    #[serde(default = "default_max_sessions")]
    pub max: u32,
    /// How often capabilities of a source that failed discovery (a server
    /// that was down) are asked for again.
    #[serde(default = "default_discovery_retry_ms")]
    pub discovery_retry_ms: u64,
    /// How often the capabilities of sources that answered are asked for
    /// again (a remote marketplace that changed: new ones registered, gone
    /// ones removed, changed ones replaced). Unset: never (at least 100).
    #[serde(default)]
    pub discovery_refresh_ms: Option<u64>,
    /// A source whose refreshes keep failing keeps its last capabilities
    /// (stale) this long, then loses them until it answers again. Unset:
    /// kept while the host runs.
    #[serde(default)]
    pub discovery_stale_after_ms: Option<u64>,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            idle_ttl_ms: default_idle_ttl_ms(),
            max_per_server: default_max_per_server(),
            max: default_max_sessions(),
            discovery_retry_ms: default_discovery_retry_ms(),
            discovery_refresh_ms: None,
            discovery_stale_after_ms: None,
        }
    }
}

fn default_idle_ttl_ms() -> u64 {
    5 * 60 * 1000
}
fn default_max_per_server() -> u32 {
    8
}
fn default_max_sessions() -> u32 {
    16
}
fn default_discovery_retry_ms() -> u64 {
    10_000
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

fn default_max_instances() -> u32 {
    DEFAULT_MAX_INSTANCES
}

impl PluginConfig {
    /// A plugin loaded from `component` with no config, no grants and default limits.
    pub fn new(component: impl Into<PathBuf>) -> Self {
        PluginConfig {
            component: component.into(),
            config: empty_object(),
            limits: Limits::default(),
            grants: Grants::default(),
            instances: InstanceMode::Reuse,
            max_instances: DEFAULT_MAX_INSTANCES,
            sessions: SessionSettings::default(),
            namespaces: Vec::new(),
            verify: None,
        }
    }

    /// With the id prefixes it may register under.
    pub fn with_namespaces(mut self, namespaces: &[&str]) -> Self {
        self.namespaces = namespaces.iter().map(|n| n.to_string()).collect();
        self
    }
}

impl Config {
    /// An empty configuration whose relative paths resolve against `base_dir`.
    pub fn new(base_dir: impl Into<PathBuf>) -> Self {
        Config {
            base_dir: base_dir.into(),
            ..Default::default()
        }
    }

    /// Adds a plugin named `name`.
    pub fn with_plugin(mut self, name: impl Into<String>, plugin: PluginConfig) -> Self {
        self.plugins.insert(name.into(), plugin);
        self
    }

    /// Reads and checks a configuration file.
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(path, format!("cannot read: {e}")))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        let mut config = Config::from_toml(&text, &base).map_err(|e| match e {
            Error::Config(msg) => Error::Config(format!("{}: {msg}", path.display())),
            other => other,
        })?;
        config.config_file = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses configuration text; relative paths resolve against `base_dir`.
    pub fn from_toml(text: &str, base_dir: &Path) -> Result<Config> {
        let de = toml::Deserializer::new(text);
        let mut cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let location = inner
                .span()
                .map(|span| {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    let col = span.start
                        - text[..span.start.min(text.len())]
                            .rfind('\n')
                            .map(|i| i + 1)
                            .unwrap_or(0)
                        + 1;
                    format!(" (line {line}, column {col})")
                })
                .unwrap_or_default();
            let what = inner.message().trim().to_string();
            let what = what.replace("unknown field", "unknown key");
            if path == "." || path.is_empty() {
                Error::Config(format!("{what}{location}"))
            } else {
                Error::Config(format!("at `{path}`: {what}{location}"))
            }
        })?;
        cfg.base_dir = base_dir.to_path_buf();
        if cfg.marketplace.dir.is_none() {
            cfg.marketplace.dir = Some(PathBuf::from(".warden/marketplace"));
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what serde cannot: names, paths, values in range.
    pub fn validate(&self) -> Result<()> {
        self.validate_globals()?;
        self.validate_registries()?;
        self.validate_policy()?;
        self.validate_cluster()?;
        check_limits("limits", &self.limits)?;
        for (name, p) in &self.plugins {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(Error::Config(format!(
                    "plugin name `{name}`: use letters, digits, `-` and `_` only"
                )));
            }
            check_limits(&format!("plugins.{name}.limits"), &p.limits)?;
            let sessions = &p.sessions;
            for (key, bad) in [
                ("idle-ttl-ms", sessions.idle_ttl_ms == 0),
                ("max-per-server", sessions.max_per_server == 0),
                ("max", sessions.max == 0),
                ("discovery-retry-ms", sessions.discovery_retry_ms == 0),
                (
                    "discovery-stale-after-ms",
                    sessions.discovery_stale_after_ms == Some(0),
                ),
            ] {
                if bad {
                    return Err(Error::Config(format!(
                        "at `plugins.{name}.sessions.{key}`: must be at least 1"
                    )));
                }
            }
            if sessions.discovery_refresh_ms.is_some_and(|ms| ms < 100) {
                return Err(Error::Config(format!(
                    "at `plugins.{name}.sessions.discovery-refresh-ms`: must be at least 100"
                )));
            }
            if p.max_instances == 0 {
                return Err(Error::Config(format!(
                    "at `plugins.{name}.max-instances`: must be at least 1"
                )));
            }
            if !p.config.is_object() {
                return Err(Error::Config(format!(
                    "at `plugins.{name}.config`: must be a table"
                )));
            }
            p.grants.validate(&format!("plugins.{name}.grants"), |s| {
                self.secrets.contains_key(s)
            })?;
        }
        Ok(())
    }

    fn validate_exchange(&self, name: &str, x: &TokenExchange) -> Result<()> {
        let at = format!("secrets.{name}.exchange");
        let url = url::Url::parse(&x.token_endpoint)
            .map_err(|e| Error::Config(format!("at `{at}.token-endpoint`: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::Config(format!(
                "at `{at}.token-endpoint`: an http(s) URL"
            )));
        }
        if x.audience.is_empty() || x.client_id.is_empty() {
            return Err(Error::Config(format!(
                "at `{at}`: `audience` and `client-id` must not be empty"
            )));
        }
        if let Some(s) = &x.client_secret {
            match self.secrets.get(s) {
                Some(src) if src.exchange.is_none() => {}
                _ => {
                    return Err(Error::Config(format!(
                    "at `{at}.client-secret`: `{s}` is not a secret with a value under [secrets]"
                )))
                }
            }
        }
        Ok(())
    }

    fn validate_cluster(&self) -> Result<()> {
        let replica = self.audit.as_ref().and_then(|a| a.replica.as_deref());
        if let Some(name) = replica.filter(|n| !crate::audit::is_replica_name(n)) {
            return Err(Error::Config(format!(
                "at `audit.replica`: {name:?}: must be 1-63 letters, digits, `.`, `_` or `-`"
            )));
        }
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        cluster.validate().map_err(Error::Config)?;
        match &cluster.password_secret {
            Some(name) if !self.secrets.contains_key(name) => Err(Error::Config(format!(
                "at `cluster.password-secret`: secret `{name}` is not defined in [secrets]"
            ))),
            _ => Ok(()),
        }
    }

    fn validate_policy(&self) -> Result<()> {
        self.policy
            .validate(|name| self.plugins.contains_key(name))?;
        if let Some(a) = &self.audit {
            if a.path.as_os_str().is_empty() {
                return Err(Error::Config("at `audit.path`: must not be empty".into()));
            }
        }
        Ok(())
    }

    fn validate_globals(&self) -> Result<()> {
        for (name, src) in &self.secrets {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
            {
                return Err(Error::Config(format!(
                    "secret name `{name}`: use letters, digits, `_`, `-` and `.` only"
                )));
            }
            match (&src.env, &src.file, &src.exchange) {
                (Some(_), None, None) | (None, Some(_), None) => {}
                (None, None, Some(x)) => self.validate_exchange(name, x)?,
                _ => {
                    return Err(Error::Config(format!(
                        "at `secrets.{name}`: set exactly one of `env`, `file` or `exchange`"
                    )));
                }
            }
        }
        for (kind, plugin) in &self.providers {
            let k = warden_manifest::ProviderKind::parse(kind).ok_or_else(|| {
                Error::Config(format!("at `providers.{kind}`: unknown provider kind"))
            })?;
            if !k.serializable() {
                return Err(Error::Config(format!("at `providers.{kind}`: only Http, Mcp, A2A and RemoteRTFS are served by plugins")));
            }
            if !self.plugins.contains_key(plugin) {
                return Err(Error::Config(format!(
                    "at `providers.{kind}`: no plugin named `{plugin}`"
                )));
            }
        }
        for (i, m) in self.capabilities.iter().enumerate() {
            m.check()
                .map_err(|e| Error::Config(format!("at `capabilities[{i}]` (`{}`): {e}", m.id)))?;
        }
        Ok(())
    }

    /// Reads the value of secret `name` from its source.
    pub fn secret_value(&self, name: &str) -> Result<String> {
        let src = self
            .secrets
            .get(name)
            .ok_or_else(|| Error::Config(format!("secret `{name}` is not defined")))?;
        if src.exchange.is_some() {
            return Err(Error::Config(format!(
                "secret `{name}` is exchanged for each call's caller; it has no fixed value"
            )));
        }
        match (&src.env, &src.file) {
            (Some(var), _) => std::env::var(var).map_err(|_| {
                Error::Config(format!(
                    "secret `{name}`: environment variable `{var}` is not set"
                ))
            }),
            (None, Some(file)) => {
                let path = self.resolve_path(file);
                std::fs::read_to_string(&path)
                    .map(|v| v.trim().to_string())
                    .map_err(|e| {
                        Error::Config(format!(
                            "secret `{name}`: cannot read {}: {e}",
                            path.display()
                        ))
                    })
            }
            (None, None) => Err(Error::Config(format!("secret `{name}` has no source"))),
        }
    }

    /// `path` resolved against the config's directory.
    pub fn resolve_path(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    /// The marketplace store directory, if any.
    pub fn marketplace_dir(&self) -> Option<PathBuf> {
        self.marketplace
            .dir
            .as_deref()
            .map(|d| self.resolve_path(d))
    }

    /// The compiled-component cache directory, or `None` if caching is off.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        if self.host.no_cache {
            return None;
        }
        self.cache_root()
    }

    /// Where the caches live, whether or not compiled code is cached.
    fn cache_root(&self) -> Option<PathBuf> {
        if let Some(dir) = &self.host.cache_dir {
            return Some(self.resolve_path(dir));
        }
        if let Some(dir) = std::env::var_os("WARDEN_CACHE_DIR").filter(|v| !v.is_empty()) {
            return Some(PathBuf::from(dir));
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
            return Some(PathBuf::from(dir).join("warden"));
        }
        std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .map(|h| PathBuf::from(h).join(".cache/warden"))
    }

    /// The compiled-component cache, or `None` if caching is off.
    pub fn compiled_cache(&self) -> Option<crate::CompiledCache> {
        let max = self
            .host
            .cache_max_bytes
            .unwrap_or(crate::runtime::cache::DEFAULT_CACHE_MAX_BYTES);
        self.cache_dir()
            .map(|dir| crate::CompiledCache::new(dir, max))
    }

    /// The content store of components pulled from registries
    /// (`<cache dir>/oci`, kept even with `no-cache`), under the same size
    /// cap as the compiled cache.
    pub fn content_store(&self) -> Result<crate::oci::store::ContentStore> {
        let max = self
            .host
            .cache_max_bytes
            .unwrap_or(crate::runtime::cache::DEFAULT_CACHE_MAX_BYTES);
        let root = self.cache_root().ok_or_else(|| {
            Error::Config(
                "no cache directory for pulled components: set `[host] cache-dir` (or HOME)".into(),
            )
        })?;
        Ok(crate::oci::store::ContentStore::new(root.join("oci"), max))
    }

    /// The lockfile's path: `[host] lockfile`, else `warden.lock` beside
    /// the config file; `None` for a config built in code without one.
    pub fn lock_path(&self) -> Option<PathBuf> {
        match &self.host.lockfile {
            Some(p) => Some(self.resolve_path(p)),
            None => self
                .config_file
                .as_ref()
                .map(|_| self.base_dir.join("warden.lock")),
        }
    }

    /// The OCI reference plugin `pc`'s component names, if it names one.
    pub fn oci_component(
        pc: &PluginConfig,
    ) -> Option<std::result::Result<crate::oci::reference::OciRef, String>> {
        let source = pc.component.to_str()?;
        crate::oci::reference::OciRef::is_oci(source)
            .then(|| crate::oci::reference::OciRef::parse(source))
    }

    fn validate_registries(&self) -> Result<()> {
        for (name, p) in &self.plugins {
            if let Some(Err(e)) = Config::oci_component(p) {
                return Err(Error::Config(format!("at `plugins.{name}.component`: {e}")));
            }
        }
        for (i, r) in self.host.insecure_registries.iter().enumerate() {
            crate::oci::reference::check_registry(r)
                .map_err(|e| Error::Config(format!("at `host.insecure-registries[{i}]`: {e}")))?;
        }
        for (registry, r) in &self.host.registries {
            let at = format!("host.registries.\"{registry}\"");
            crate::oci::reference::check_registry(registry)
                .map_err(|e| Error::Config(format!("at `{at}`: {e}")))?;
            match (&r.username, &r.password_secret) {
                (Some(_), Some(s)) if !self.secrets.contains_key(s) => {
                    return Err(Error::Config(format!(
                        "at `{at}.password-secret`: `{s}` is not defined in [secrets]"
                    )));
                }
                (Some(_), None) | (None, Some(_)) => {
                    return Err(Error::Config(format!(
                        "at `{at}`: `username` and `password-secret` go together"
                    )));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::from_toml(text, Path::new("/cfg"))
    }

    #[test]
    fn defaults_are_documented_values() {
        let cfg = parse("[plugins.a]\ncomponent = 'a.wasm'\n").unwrap();
        let p = &cfg.plugins["a"];
        assert_eq!(
            p.limits.or(cfg.limits).resolve(),
            ResolvedLimits {
                fuel: DEFAULT_FUEL,
                memory: DEFAULT_MEMORY,
                timeout_ms: DEFAULT_TIMEOUT_MS,
                max_response_bytes: 10 << 20,
                max_requests: 100,
                max_egress_bytes: 50 << 20,
                request_timeout_ms: 30_000,
                max_output_bytes: 4 << 20,
                max_log_lines: 1000,
                max_sockets: 16,
                max_files: 32,
            }
        );
        assert!(cfg.secrets.is_empty() && cfg.providers.is_empty() && cfg.capabilities.is_empty());
        assert!(cfg.host.resolve.is_empty());
        assert_eq!(p.instances, InstanceMode::Reuse);
        assert_eq!(p.max_instances, DEFAULT_MAX_INSTANCES);
        assert_eq!(p.grants, Grants::default());
        assert_eq!(p.config, serde_json::json!({}));
        assert!(!cfg.host.no_cache);
        assert_eq!(
            cfg.marketplace_dir(),
            Some(PathBuf::from("/cfg/.warden/marketplace"))
        );
        assert_eq!(Config::new("/x").marketplace_dir(), None);
        assert_eq!(cfg.resolve_path(&p.component), PathBuf::from("/cfg/a.wasm"));
        let d: DirGrant = toml::from_str("host = 'x'\nguest = '/x'").unwrap();
        assert_eq!(d.mode, DirMode::ReadOnly);
    }

    #[test]
    fn discovery_refresh_and_staleness_are_bounded() {
        let with = |sessions: &str| {
            parse(&format!(
                "[plugins.a]\ncomponent = 'a.wasm'\nsessions = {{ {sessions} }}\n"
            ))
        };
        let ok = with("discovery-refresh-ms = 100, discovery-stale-after-ms = 1").unwrap();
        assert_eq!(ok.plugins["a"].sessions.discovery_refresh_ms, Some(100));
        for (bad, key) in [
            ("discovery-refresh-ms = 99", "discovery-refresh-ms"),
            ("discovery-stale-after-ms = 0", "discovery-stale-after-ms"),
        ] {
            let e = with(bad).unwrap_err().to_string();
            assert!(e.contains(key), "{bad}: {e}");
        }
        assert_eq!(
            with("").unwrap().plugins["a"].sessions.discovery_refresh_ms,
            None
        );
    }

    #[test]
    fn plugin_limits_override_field_by_field() {
        let cfg = parse("[limits]\nfuel = 10\nmemory = '1MiB'\n[plugins.a]\ncomponent = 'a.wasm'\nlimits = { fuel = 5 }\n").unwrap();
        let l = cfg.plugins["a"].limits.or(cfg.limits).resolve();
        assert_eq!(
            l,
            ResolvedLimits {
                fuel: 5,
                memory: 1 << 20,
                ..Limits::default().resolve()
            }
        );
    }

    #[test]
    fn unknown_key_is_named_with_its_place() {
        let err = parse("[plugins.a]\ncomponent = 'a.wasm'\n[plugins.a.limits]\nfule = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("fule"), "{err}");
        assert!(err.contains("plugins.a.limits"), "{err}");
        assert!(err.contains("line 4"), "{err}");
        let err = parse("[hots]\n").unwrap_err().to_string();
        assert!(err.contains("hots"), "{err}");
    }

    #[test]
    fn secrets_read_from_env_or_file() {
        let dir = std::env::temp_dir().join(format!("warden-secret-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tok"), "  from-file\n").unwrap();
        std::env::set_var("WARDEN_CONFIG_TEST_SECRET", "from-env");
        let cfg = Config::from_toml("[secrets.F]\nfile = 'tok'\n[secrets.E]\nenv = 'WARDEN_CONFIG_TEST_SECRET'\n[secrets.M]\nenv = 'WARDEN_CONFIG_TEST_UNSET'\n", &dir).unwrap();
        assert_eq!(cfg.secret_value("F").unwrap(), "from-file");
        assert_eq!(cfg.secret_value("E").unwrap(), "from-env");
        assert!(cfg
            .secret_value("M")
            .unwrap_err()
            .to_string()
            .contains("WARDEN_CONFIG_TEST_UNSET"));
        assert!(cfg.secret_value("Z").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("512 KiB").unwrap(), 512 << 10);
        assert_eq!(parse_size("1_000").unwrap(), 1000);
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse("[limits]\nmemory = '3 bananas'\n")
            .unwrap_err()
            .to_string()
            .contains("bananas"));
        assert!(parse("[limits]\nmemory = 100\n")
            .unwrap_err()
            .to_string()
            .contains("below one wasm page"));
    }

    #[test]
    fn bad_values_are_rejected() {
        for (text, needle) in [
            ("[plugins.a]\ncomponent='a'\nmax-instances = 0\n", "max-instances"),
            ("[plugins.a]\ncomponent='a'\ngrants = { dirs = [{ host = 'd', guest = 'rel' }] }\n", "absolute"),
            ("[plugins.a]\ncomponent='a'\ngrants = { dirs = [{ host = 'd', guest = '/d', mode = 'rwx' }] }\n", "rwx"),
            ("[plugins.a]\ncomponent='a'\ngrants = { network = ['ftp://x:21'] }\n", "network[0]"),
            ("[plugins.a]\ncomponent='a'\ngrants = { env = ['A=B'] }\n", "env[0]"),
            ("[plugins.'a b']\ncomponent='a'\n", "plugin name"),
            ("[plugins.a]\n", "component"),
            ("[limits]\nfuel = 0\n", "fuel"),
            ("[limits]\ntimeout-ms = 0\n", "timeout-ms"),
            ("not toml at all", "line 1"),
            ("[plugins.a]\ncomponent='a'\ngrants = { secrets = [{ name = 'NOPE', hosts = ['http://x:1'] }] }\n", "not defined in [secrets]"),
            ("[secrets.T]\nenv='A'\n[plugins.a]\ncomponent='a'\ngrants = { secrets = [{ name = 'T', hosts = [] }] }\n", "at least one destination"),
            ("[secrets.T]\nenv='A'\n[plugins.a]\ncomponent='a'\ngrants = { secrets = [{ name = 'T', hosts = ['x'] }] }\n", "hosts[0]"),
            ("[secrets.T]\nenv='A'\n[plugins.a]\ncomponent='a'\ngrants = { secrets = [{ name = 'T', hosts = ['http://x:1'], headers = [] }] }\n", "at least one header"),
            ("[secrets.T]\nenv='A'\n[plugins.a]\ncomponent='a'\ngrants = { secrets = [{ name = 'T', hosts = ['http://x:1'], headers = ['bad header'] }] }\n", "headers[0]"),
            ("[secrets.T]\nenv='A'\n[plugins.a]\ncomponent='a'\ngrants = { secrets = [{ name = 'T', hosts = ['http://x:1'], headers = ['Host'] }] }\n", "may not fill `Host`"),
            ("[secrets.T]\nenv='A'\n[plugins.a]\ncomponent='a'\ngrants = { secrets = [{ name = 'T', hosts = ['http://x:1'], methods = ['G T'] }] }\n", "methods[0]"),
            ("[secrets.T]\nenv='A'\n[plugins.a]\ncomponent='a'\ngrants = { secrets = [{ name = 'T', hosts = ['http://x:1'], verbs = ['GET'] }] }\n", "verbs"),
            ("[secrets.T]\nenv = 'A'\nfile = 'f'\n", "exactly one of"),
            ("[secrets.T]\n", "exactly one of"),
            ("providers = { Http = 'nobody' }\n", "no plugin named `nobody`"),
            ("[plugins.a]\ncomponent='a'\n[providers]\nLocal = 'a'\n", "only Http"),
            ("[plugins.a]\ncomponent='a'\n[providers]\nFtp = 'a'\n", "unknown provider kind"),
            ("[limits]\nmax-requests = 0\n", "max-requests"),
            ("[limits]\nmax-response-bytes = 0\n", "max-response-bytes"),
            ("[[capabilities]]\nid='x'\nname='x'\nversion='1'\nprovider='Http'\ninput-schema=':any'\noutput-schema=':any'\n", "base-url"),
            ("[host]\nresolve = { 'a.test' = 'not-an-ip' }\n", "resolve"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?} -> {err}");
        }
    }

    #[test]
    fn an_exchange_secret_is_checked_and_has_no_fixed_value() {
        let x = "exchange = { token-endpoint = 'https://idp/token', audience = 'https://up', client-id = 'w'";
        let ok = parse(&format!(
            "[secrets.C]\nenv = 'X'\n[secrets.U]\n{x}, client-secret = 'C' }}\n"
        ))
        .unwrap();
        assert!(ok
            .secret_value("U")
            .unwrap_err()
            .to_string()
            .contains("no fixed value"));
        for (text, needle) in [
            (format!("[secrets.U]\nenv = 'X'\n{x} }}\n"), "exactly one of `env`, `file` or `exchange`"),
            (format!("[secrets.U]\n{x}, client-secret = 'NONE' }}\n"), "is not a secret with a value"),
            (format!("[secrets.U]\n{x}, client-secret = 'U' }}\n"), "is not a secret with a value"),
            ("[secrets.U]\nexchange = { token-endpoint = 'ftp://idp', audience = 'a', client-id = 'w' }\n".into(), "an http(s) URL"),
            ("[secrets.U]\nexchange = { token-endpoint = 'https://idp', audience = '', client-id = 'w' }\n".into(), "must not be empty"),
            ("[secrets.U]\nexchange = { token-endpoint = 'https://idp', audience = 'a', client-id = 'w', extra = 1 }\n".into(), "unknown key `extra`"),
        ] {
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?} -> {err}");
        }
    }
}
