//! # `warden serve`
//!
//! One long-lived [`Host`] whose capabilities are MCP tools, served over
//! stdio and streamable HTTP (path `/mcp`). Both protocol revisions come
//! from one endpoint: 2026-07-28 (stateless: `server/discover`, `_meta` on
//! every request, `subscriptions/listen`) and 2025-11-25 (`initialize`,
//! `Mcp-Session-Id`, `notifications/tools/list_changed`), with the older
//! handshake revisions.
//!
//! Every `tools/call` goes through [`Host::call_with`]: policy, schema
//! checks, limits and the audit log, whose call records name the client.
//! Calls that need approval ask the client's user (elicitation, or an
//! `input_required` result with an authenticated `requestState`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), warden_serve::ServeError> {
//! let server = warden_serve::Server::from_config_file("warden.toml".as_ref()).await?;
//! let http = server.bind_http("127.0.0.1:8700".parse().unwrap()).await?;
//! println!("MCP at http://{}/mcp", http.local_addr());
//! server.run_until_signal(vec![http.run()]).await;
//! # Ok(()) }
//! ```

mod admission;
mod approval;
mod client_sessions;
mod cluster_holds;
mod cluster_sessions;
mod cluster_tasks;
mod dispatch;
pub mod http;
mod oauth;
mod protocol;
mod refusals;
mod reload;
mod settings;
pub mod stdio;
mod tasks;
mod tools;

use admission::{Budgets, InFlight, Spent};
use protocol::RpcError;
use refusals::{Refusal, Refusals};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use warden::{Config, Host};

pub use oauth::OAuthSettings;
pub use protocol::{HANDSHAKE, MODERN};
pub use refusals::RefusalCounts;
pub use settings::{ServeSettings, ServeToken};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration or a plugin could not be loaded.
    #[error(transparent)]
    Host(#[from] warden::Error),
    /// A reload found a plugin version `[host] on-update` refuses; the
    /// running host keeps serving.
    #[error("reload refused; the running version keeps serving: {why}")]
    UpdateHeld {
        /// The plugin.
        plugin: String,
        /// Its change and the policy that refused it.
        why: String,
    },
    /// A listening socket could not be opened.
    #[error("cannot listen on {addr}: {message}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// What failed.
        message: String,
    },
    /// The HTTP transport would be open to the network without tokens.
    #[error("refusing to listen on {0} without authentication: add bearer tokens under [serve] tokens, or bind 127.0.0.1")]
    Unauthenticated(std::net::SocketAddr),
}

/// Where replicas tell each other that their tool list changed (the
/// message is the replica's name).
const CHANGES_TOPIC: &str = "tools-changed";
/// How long a lost listening connection waits before listening again.
const RELISTEN: Duration = Duration::from_secs(1);

/// State shared by every transport.
pub(crate) struct Shared {
    host: RwLock<Host>,
    /// The host serving now has `[telemetry]` on (set with each host), so
    /// that a request without it pays one load, not a look at the host.
    traced: std::sync::atomic::AtomicBool,
    config_path: Option<PathBuf>,
    pub(crate) settings: ServeSettings,
    /// Bearer token values and the principal each stands for.
    tokens: Vec<(String, String)>,
    pub(crate) states: approval::States,
    pub(crate) sessions: client_sessions::Sessions,
    /// Bumped whenever the tool list changes.
    pub(crate) changes: watch::Sender<u64>,
    /// Bumped whenever a reload swaps the host.
    pub(crate) swaps: watch::Sender<u64>,
    /// Set once shutdown begins.
    pub(crate) stopping: watch::Sender<bool>,
    /// Set once a stop signal came: `/readyz` answers 503 while requests
    /// are still served (`drain-ms`).
    pub(crate) draining: std::sync::atomic::AtomicBool,
    /// This replica's name (`replica-id`).
    pub(crate) replica: String,
    /// Requests in flight, per client and in total.
    budgets: Arc<Budgets>,
    /// Refusals so far, by reason.
    pub(crate) refusals: Refusals,
    /// Calls answered as MCP Tasks.
    pub(crate) tasks: Arc<tasks::Tasks>,
    /// The key that signs tool results, with `attest-results`.
    pub(crate) attestor: std::sync::OnceLock<Arc<warden::audit::signing::SigningKey>>,
    /// The key that signs the published marketplace, if one does.
    publisher: std::sync::OnceLock<Arc<warden::audit::signing::SigningKey>>,
    /// Checks OAuth access tokens, with `[serve.oauth]`.
    pub(crate) oauth: Option<oauth::Validator>,
}

/// A running server. Cheap to clone.
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
}

/// A request not let in: the server is stopping, or a budget is spent.
pub(crate) struct Busy {
    pub stopping: bool,
    pub error: RpcError,
}

impl Shared {
    pub(crate) fn host(&self) -> Host {
        self.host.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether the host serving now exports telemetry.
    pub(crate) fn traced(&self) -> bool {
        self.traced.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The server's gauges on `host`'s telemetry (each host has its own):
    /// open 2025-11-25 sessions and running tasks. They hold the server
    /// weakly.
    pub(crate) fn observe(self: &Arc<Self>, host: &Host) {
        self.traced.store(
            host.telemetry().is_some(),
            std::sync::atomic::Ordering::Relaxed,
        );
        let Some(telemetry) = host.telemetry() else {
            return;
        };
        let shared = Arc::downgrade(self);
        telemetry.gauge(
            "warden.mcp.sessions",
            "Open MCP sessions (2025-11-25 Mcp-Session-Id)",
            "{session}",
            move || {
                shared
                    .upgrade()
                    .map(|s| vec![(s.sessions.len() as u64, Vec::new())])
                    .unwrap_or_default()
            },
        );
    }

    /// The principal a bearer token stands for (compared in constant time).
    pub(crate) fn principal_for(&self, token: &str) -> Option<&str> {
        let mut found = None;
        for (value, principal) in &self.tokens {
            let same = value.len() == token.len()
                && value
                    .bytes()
                    .zip(token.bytes())
                    .fold(0u8, |d, (a, b)| d | (a ^ b))
                    == 0;
            if same && found.is_none() {
                found = Some(principal.as_str());
            }
        }
        found
    }

    pub(crate) fn requires_auth(&self) -> bool {
        !self.tokens.is_empty() || self.oauth.is_some()
    }

    /// Counts a request of client `client` (see [`admission`]) in flight;
    /// refused past a budget (counted and logged) or once shutdown began.
    pub(crate) fn enter(&self, client: &str) -> Result<InFlight, Busy> {
        if *self.stopping.borrow() {
            let error = RpcError::new(protocol::BUSY, "the server is shutting down");
            return Err(Busy {
                stopping: true,
                error,
            });
        }
        let spent = match self.budgets.enter(client) {
            Ok(in_flight) => return Ok(in_flight),
            Err(spent) => spent,
        };
        let message = match spent {
            Spent::Client => format!(
                "more than {} requests in flight for this client (serve.max-concurrent-per-client)",
                self.settings.max_concurrent_per_client
            ),
            Spent::Total => format!(
                "more than {} requests in flight in total (serve.max-concurrent)",
                self.settings.max_concurrent
            ),
        };
        self.refusals
            .note(Refusal::Busy, &format!("{client}: {message}"));
        Err(Busy {
            stopping: false,
            error: RpcError::new(protocol::BUSY, message),
        })
    }

    /// The key that signs the published marketplace, if one does.
    pub(crate) fn marketplace_key(&self) -> Option<&warden::audit::signing::SigningKey> {
        self.publisher.get().map(|k| &**k)
    }

    /// Tells this server's listeners that the tool list changed, and with
    /// `[cluster]` the other replicas' (in the background: a Redis that
    /// does not answer is logged by the cluster, never waited for here).
    pub(crate) fn tools_changed(&self) {
        self.changes.send_modify(|n| *n += 1);
        let Some(cluster) = self.cluster() else {
            return;
        };
        let replica = self.replica.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = cluster.publish(CHANGES_TOPIC, &replica).await;
            });
        }
    }

    /// Ends a 2025-11-25 session and the host sessions opened under it.
    pub(crate) async fn end_session(&self, session: &client_sessions::Session) {
        let n = self.host().end_sessions(&session.pool_key()).await;
        tracing::debug!(session = %session.id, closed = n, "MCP session ended");
    }
}

impl Server {
    /// Loads the configuration file and its plugins.
    pub async fn from_config_file(path: &Path) -> Result<Server, ServeError> {
        let mut config = Config::from_file(path)?;
        let settings = ServeSettings::from_config(&config)?;
        as_replica(&mut config, &settings.replica());
        let tokens = tokens(&config, &settings)?;
        let attestor = attestor(&config, &settings)?;
        let publisher = marketplace_key(&config, &settings)?;
        let keys = approval_keys(&config, &settings)?;
        let host = Host::new(config).await?;
        let mut server = Server::build(host, settings, tokens, Some(path.to_path_buf()), keys);
        if let Some(key) = attestor {
            server = server.attesting_with(key);
        }
        if let Some(key) = publisher {
            server = server.publishing_with(key);
        }
        Ok(server)
    }

    /// Serves an existing host (an embedder's), with `settings` and bearer
    /// tokens as (value, principal) pairs.
    pub fn from_host(host: Host, settings: ServeSettings, tokens: Vec<(String, String)>) -> Server {
        Server::build(host, settings, tokens, None, approval::StateKeys::random())
    }

    /// Signs each successful tool result with `key` (`[serve]
    /// attest-results` does this from the configuration). Call before
    /// serving.
    pub fn attesting_with(self, key: warden::audit::signing::SigningKey) -> Server {
        let _ = self.shared.attestor.set(Arc::new(key));
        self
    }

    /// Signs the published marketplace with `key` (`[serve]
    /// marketplace-signing-key`, else `[audit] signing-key`, does this from
    /// the configuration). Call before serving.
    pub fn publishing_with(self, key: warden::audit::signing::SigningKey) -> Server {
        let _ = self.shared.publisher.set(Arc::new(key));
        self
    }

    fn build(
        host: Host,
        settings: ServeSettings,
        tokens: Vec<(String, String)>,
        config_path: Option<PathBuf>,
        keys: approval::StateKeys,
    ) -> Server {
        let oauth = settings.oauth.clone().map(oauth::Validator::new);
        let settings_replica = settings.replica();
        let shared = Arc::new(Shared {
            oauth,
            host: RwLock::new(host),
            traced: Default::default(),
            config_path,
            states: approval::States::new(
                Duration::from_millis(settings.approval_timeout_ms),
                keys,
            ),
            sessions: client_sessions::Sessions::new(
                settings.max_sessions as usize,
                settings.sessions_per_principal() as usize,
                Duration::from_millis(settings.session_idle_ms),
            ),
            budgets: Arc::new(Budgets::new(
                settings.max_concurrent_per_client,
                settings.max_concurrent,
            )),
            refusals: Refusals::new(),
            tasks: tasks::Tasks::new(tasks::TaskLimits {
                ttl: Duration::from_millis(settings.task_ttl_ms),
                per_principal: settings.max_tasks_per_principal as usize,
                bytes_per_principal: usize::try_from(settings.task_bytes_per_principal)
                    .unwrap_or(usize::MAX),
            }),
            settings,
            tokens,
            attestor: std::sync::OnceLock::new(),
            publisher: std::sync::OnceLock::new(),
            changes: watch::channel(0).0,
            swaps: watch::channel(0).0,
            stopping: watch::channel(false).0,
            draining: Default::default(),
            replica: settings_replica,
        });
        shared.observe(&shared.host());
        let server = Server { shared };
        server.spawn_sweeper();
        server.spawn_catalog_forwarder();
        server.spawn_change_listener();
        server.spawn_task_sharing();
        server
    }

    /// With `[cluster]`: another replica's tool list change reaches this
    /// one's listeners (its clients then list again).
    fn spawn_change_listener(&self) {
        self.spawn_listener(CHANGES_TOPIC, |shared, from| {
            if from != shared.replica {
                tracing::info!(from = %from, "the tool list changed on another replica: clients are told");
                shared.changes.send_modify(|n| *n += 1);
            }
        });
    }

    /// With `[cluster]`: `heard` is given each message on `topic` until the
    /// server stops (listening again after a lost connection).
    pub(crate) fn spawn_listener(
        &self,
        topic: &'static str,
        heard: impl Fn(&Shared, &str) + Send + 'static,
    ) {
        let Some(cluster) = self.shared.cluster() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak = Arc::downgrade(&self.shared);
        let mut stopping = self.shared.stopping.subscribe();
        runtime.spawn(async move {
            loop {
                if let Ok(mut messages) = cluster.listen(topic).await {
                    loop {
                        let message = tokio::select! {
                            m = messages.next() => m,
                            _ = stopped(&mut stopping) => return,
                        };
                        let Some(message) = message else { break };
                        let Some(shared) = weak.upgrade() else { return };
                        heard(&shared, &message);
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(RELISTEN) => {}
                    _ = stopped(&mut stopping) => return,
                }
            }
        });
    }

    /// Open MCP sessions (revision 2025-11-25 clients).
    pub fn client_sessions(&self) -> usize {
        self.shared.sessions.len()
    }

    /// Requests and connections refused since start, by reason (each is
    /// also logged).
    pub fn refusals(&self) -> RefusalCounts {
        self.shared.refusals.counts()
    }

    /// The host being served (the current one, after reloads).
    pub fn host(&self) -> Host {
        self.shared.host()
    }

    /// Opens the HTTP transport on `addr` (port 0 picks one).
    pub async fn bind_http(
        &self,
        addr: std::net::SocketAddr,
    ) -> Result<http::HttpServer, ServeError> {
        http::HttpServer::bind(self.shared.clone(), addr).await
    }

    /// Serves one client over stdin/stdout until stdin closes.
    pub fn stdio(&self) -> impl Future<Output = ()> + Send + 'static {
        stdio::serve(self.shared.clone(), tokio::io::stdin(), tokio::io::stdout())
    }

    /// Reloads the configuration now; see [`watch`](Self::watch).
    pub async fn reload(&self) -> Result<bool, ServeError> {
        reload::reload(&self.shared).await
    }

    /// Reloads on SIGHUP and, with `files`, when the configuration file or
    /// a plugin's component changes (checked by digest).
    pub fn watch(&self, files: bool) -> impl Future<Output = ()> + Send + 'static {
        reload::watch(self.shared.clone(), files)
    }

    /// Runs `transports` until SIGTERM or SIGINT (or until every transport
    /// ends, e.g. stdin closed), then shuts down gracefully.
    pub async fn run_until_signal(
        &self,
        transports: Vec<Pin<Box<dyn Future<Output = ()> + Send>>>,
    ) {
        self.run_until(transports, StopSignals::listen()).await
    }

    /// [`run_until_signal`](Self::run_until_signal) with signals listened
    /// for since `signals` was made (make it before announcing the server,
    /// so that a signal sent as soon as it is announced is not missed).
    pub async fn run_until(
        &self,
        transports: Vec<Pin<Box<dyn Future<Output = ()> + Send>>>,
        mut signals: StopSignals,
    ) {
        let mut set = tokio::task::JoinSet::new();
        for t in transports {
            set.spawn(t);
        }
        tokio::select! {
            _ = async { while set.join_next().await.is_some() {} } => tracing::info!("every transport ended"),
            s = signals.next() => {
                tracing::info!("{s}: shutting down");
                tokio::select! {
                    _ = self.drain() => {}
                    s = signals.next() => tracing::info!("{s} while draining: stopping now"),
                }
            }
        }
        self.shutdown().await;
        // Transports end once they see the shutdown (listen streams get
        // their closing result first).
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while set.join_next().await.is_some() {}
        })
        .await;
    }

    /// Marks the server not ready (`/readyz` answers 503) and keeps serving
    /// for `drain-ms`, so that a load balancer stops sending here before
    /// [`shutdown`](Self::shutdown) refuses new requests.
    /// [`run_until_signal`](Self::run_until_signal) ends the wait at a
    /// second signal.
    pub async fn drain(&self) {
        let shared = &self.shared;
        shared
            .draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let ms = shared.settings.drain_ms;
        if ms == 0 {
            return;
        }
        tracing::info!(
            replica = %shared.replica,
            "draining: /readyz answers 503; requests are served for {ms} ms more (serve.drain-ms; a second signal stops now)"
        );
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    /// This replica's name (`[serve] replica-id`).
    pub fn replica(&self) -> &str {
        &self.shared.replica
    }

    /// Stops accepting requests, lets calls in flight finish (up to
    /// `shutdown-grace-ms`), ends every session (MCP servers behind the
    /// host see `DELETE`) and flushes the audit log.
    pub async fn shutdown(&self) {
        let shared = &self.shared;
        shared.stopping.send_replace(true);
        let grace = Duration::from_millis(shared.settings.shutdown_grace_ms);
        let drained = tokio::time::timeout(grace, shared.budgets.drained()).await;
        let refused = shared.refusals.summary();
        if !refused.is_empty() {
            tracing::info!("refused since start: {refused}");
        }
        if drained.is_err() {
            tracing::warn!(
                calls = shared.budgets.in_flight(),
                "calls still running after {} ms are abandoned",
                grace.as_millis()
            );
        }
        shared.tasks.abort_all();
        for s in shared.sessions.drain() {
            shared.end_session(&s).await;
        }
        shared.host().shutdown().await;
    }

    /// Capabilities the host registers later (a discovery source that came
    /// up) change the tool list: clients are told.
    fn spawn_catalog_forwarder(&self) {
        let weak = Arc::downgrade(&self.shared);
        let mut swaps = self.shared.swaps.subscribe();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            loop {
                let Some(shared) = weak.upgrade() else { return };
                let mut catalog = shared.host().catalog_changes();
                drop(shared);
                tokio::select! {
                    r = catalog.changed() => {
                        let Some(shared) = weak.upgrade() else { return };
                        if r.is_ok() {
                            tracing::info!("capabilities were registered: the tool list changed");
                            shared.tools_changed();
                        } else {
                            drop(shared);
                            // That host is gone: wait for its replacement.
                            if swaps.changed().await.is_err() { return; }
                        }
                    }
                    r = swaps.changed() => if r.is_err() { return },
                }
            }
        });
    }

    fn spawn_sweeper(&self) {
        let weak = Arc::downgrade(&self.shared);
        let every =
            Duration::from_millis((self.shared.settings.session_idle_ms / 4).clamp(50, 60_000));
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(shared) = weak.upgrade() else { return };
                shared.tasks.sweep();
                for s in shared.sessions.expired() {
                    tracing::info!(session = %s.id, principal = %s.principal, "MCP session idle too long: ended");
                    shared.end_session(&s).await;
                }
            }
        });
    }
}

/// The configuration as replica `replica` serves it: with `[cluster]`, its
/// audit records name it (unless `[audit] replica` names another).
pub(crate) fn as_replica(config: &mut Config, replica: &str) {
    if config.cluster.is_none() {
        return;
    }
    if let Some(audit) = config.audit.as_mut() {
        audit.replica.get_or_insert_with(|| replica.to_string());
    }
}

/// The key that signs tool results, when `attest-results` asks for it.
fn attestor(
    config: &Config,
    settings: &ServeSettings,
) -> Result<Option<warden::audit::signing::SigningKey>, ServeError> {
    if !settings.attest_results {
        return Ok(None);
    }
    match config.audit_signing_key()? {
        Some(key) => Ok(Some(key)),
        None => Err(warden::Error::Config(
            "at `serve.attest-results`: results are signed with `[audit] signing-key`, which is not set"
                .into(),
        )
        .into()),
    }
}

/// The key that signs the published marketplace: `[serve]
/// marketplace-signing-key`, else `[audit] signing-key`, else none.
fn marketplace_key(
    config: &Config,
    settings: &ServeSettings,
) -> Result<Option<warden::audit::signing::SigningKey>, ServeError> {
    match &settings.marketplace_signing_key {
        Some(source) => Ok(Some(
            config.signing_key(source, "serve.marketplace-signing-key")?,
        )),
        None => Ok(config.audit_signing_key()?),
    }
}

/// The keys of approvals' `requestState` (`approval-key-secret` and
/// `approval-previous-key-secret`), or a random one.
fn approval_keys(
    config: &Config,
    settings: &ServeSettings,
) -> Result<approval::StateKeys, ServeError> {
    let read = |key: &str, name: &Option<String>| -> Result<Option<[u8; 32]>, ServeError> {
        let Some(name) = name else { return Ok(None) };
        let value = config.secret_value(name)?;
        if value.chars().count() < 32 {
            return Err(warden::Error::Config(format!(
                "at `serve.{key}`: the key in secret `{name}` is shorter than 32 characters"
            ))
            .into());
        }
        Ok(Some(approval::StateKeys::derive(&value)))
    };
    let current = read("approval-key-secret", &settings.approval_key_secret)?;
    let previous = read(
        "approval-previous-key-secret",
        &settings.approval_previous_key_secret,
    )?;
    Ok(match current {
        Some(current) => approval::StateKeys { current, previous },
        None => approval::StateKeys::random(),
    })
}

/// Bearer tokens of `[serve]`, read from their secrets.
fn tokens(config: &Config, settings: &ServeSettings) -> Result<Vec<(String, String)>, ServeError> {
    let mut out = Vec::new();
    for t in &settings.tokens {
        let value = config.secret_value(&t.secret)?;
        if value.len() < 16 {
            return Err(warden::Error::Config(format!(
                "at `serve.tokens`: the token in secret `{}` is shorter than 16 characters",
                t.secret
            ))
            .into());
        }
        out.push((value, t.principal.clone()));
    }
    Ok(out)
}

/// Resolves at the first SIGTERM or SIGINT with its name (never where
/// those signals cannot be listened for).
pub async fn stop_signal() -> &'static str {
    StopSignals::listen().next().await
}

/// SIGTERM and SIGINT, listened for from creation on: one that comes
/// before [`next`](Self::next) is asked is kept for it.
pub struct StopSignals {
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl StopSignals {
    /// Starts listening (inside a Tokio runtime).
    pub fn listen() -> StopSignals {
        use tokio::signal::unix::{signal, SignalKind};
        let streams = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Some((term, int)),
            _ => None,
        };
        StopSignals { streams }
    }

    /// The next signal's name (never, where they cannot be listened for).
    pub async fn next(&mut self) -> &'static str {
        let Some((term, int)) = &mut self.streams else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    }
}

/// Resolves once shutdown has begun.
pub(crate) async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|s| *s).await;
}
