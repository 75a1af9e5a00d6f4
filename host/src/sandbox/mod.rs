//! Per-instance sandbox state: the WASI context built from a plugin's
//! policy, the egress hook for `wasi:http`, the resource limiter, and the
//! host services a guest imports.

use crate::audit::{Effect, Outcome};
use crate::config::DirMode;
use crate::egress::{Egress, EgressHooks};
use crate::governance::auditor::LogBudget;
use crate::governance::Auditor;
use crate::limits::ResolvedLimits;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

mod descriptors;
mod filesystem;
mod http_client;
mod limiter;
mod lookup;
mod output;
mod service_lookup;
mod services;
mod sockets;

pub use descriptors::raise_open_file_limit;
pub(crate) use descriptors::{open_file_limit, HOST_DESCRIPTOR_RESERVE};
pub(crate) use filesystem::add_audited_open_at;
pub(crate) use limiter::{Limiter, MAX_TABLE_ELEMENTS};
pub(crate) use lookup::add_governed_lookup;
use output::{LogStream, StderrTail};
pub(crate) use sockets::add_counted_socket_creation;

/// Longest log line or guest output line kept; the rest is cut.
const MAX_LOG_LINE: usize = 8 * 1024;

/// `s` cut to at most [`MAX_LOG_LINE`] bytes, on a character boundary.
fn clip(s: &str) -> &str {
    clip_to(s, MAX_LOG_LINE)
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn clip_to(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// What lives in each instance's store.
pub(crate) struct State {
    plugin: Arc<str>,
    /// The plugin's effect policy: every effect in this instance asks it.
    policy: Arc<crate::governance::effect_policy::EffectPolicy>,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    pub(crate) hooks: EgressHooks,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) auditor: Auditor,
    log_budget: Arc<LogBudget>,
    stderr_tail: Arc<StderrTail>,
    /// The names this instance looked up, for judging its connects.
    looked_up: Arc<lookup::LookedUp>,
    /// The sockets and files this instance holds, charged to its plugin.
    held: descriptors::Held,
    /// When the call in progress must stop (checked at each epoch tick).
    pub(crate) deadline: std::time::Instant,
    /// What would end this instance's remote state from another instance
    /// (`host.set-remote-state`); empty when there is none.
    pub(crate) remote_state: String,
    /// This instance's slot in its plugin's share of the pool; given back
    /// when the store is dropped.
    _slot: tokio::sync::OwnedSemaphorePermit,
    /// Who listens to the progress of which call.
    listeners: Arc<crate::progress::Listeners>,
    /// The pace of this instance's progress reports in the call in progress.
    pub(crate) pace: crate::progress::Pace,
}

/// Header bytes one `wasi:http` `fields` may hold.
const FIELD_SIZE_LIMIT: usize = 64 << 10;

/// Most host resources (header sets, bodies, streams, sockets, descriptors,
/// ...) one instance may hold: as many as header sets of
/// [`FIELD_SIZE_LIMIT`] fit in its memory limit, so host-side state a guest
/// creates is bounded by as much again as its memory; at least 256.
pub(crate) fn max_host_resources(memory: u64) -> usize {
    ((memory / FIELD_SIZE_LIMIT as u64) as usize).clamp(256, 1 << 16)
}

impl State {
    /// Starts a new entry into the guest: what the previous one counted is
    /// audited, and the log and audit budgets start again.
    pub(crate) fn reset_log_budget(&self) {
        self.auditor.finish();
        self.log_budget.reset();
        self.stderr_tail.clear();
    }

    /// The last lines the guest wrote to stderr in this entry.
    pub(crate) fn stderr_tail(&self) -> Vec<String> {
        self.stderr_tail.to_vec()
    }

    /// Ends a call: what the auditor counted instead of writing is written,
    /// and a flood of log lines is reported once and audited; returns
    /// whether there was one.
    pub(crate) fn end_call(&self, capability: &str) -> bool {
        self.auditor.finish();
        let dropped = self.log_budget.take_dropped();
        if dropped > 0 {
            let reason = format!(
                "{dropped} log lines dropped past limits.max-log-lines ({})",
                self.log_budget.limit
            );
            tracing::warn!(target: "guest", plugin = %self.plugin, capability, "{reason}");
            self.auditor
                .record(Effect::Log, capability, Outcome::Deny, &reason);
        }
        dropped > 0
    }
}

/// What every instance of one plugin is sandboxed by, built once when the
/// plugin loads: its name, its egress (which holds its policy), its limits,
/// and its audit recorder.
pub(crate) struct SandboxSpec {
    pub(crate) plugin: Arc<str>,
    pub(crate) egress: Arc<Egress>,
    pub(crate) limits: ResolvedLimits,
    pub(crate) auditor: Auditor,
    /// Who listens to the progress of which call (the host's table).
    pub(crate) listeners: Arc<crate::progress::Listeners>,
}

impl State {
    /// Builds the sandbox for one instance from its plugin's spec alone,
    /// in the pool slot `slot` of that plugin.
    pub(crate) fn new(
        spec: &SandboxSpec,
        slot: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<State, String> {
        let plugin = spec.plugin.clone();
        let egress = spec.egress.clone();
        let limits = spec.limits;
        let log_budget = Arc::new(LogBudget::new(limits.max_log_lines));
        let auditor = spec.auditor.for_instance(log_budget.clone());
        let policy = egress.policy().clone();
        let memory = limits.memory;
        let mut b = WasiCtxBuilder::new();
        b.envs(&policy.environment(|name| std::env::var(name).ok()));
        for dir in policy.dirs() {
            let perms = match dir.mode {
                DirMode::ReadOnly => FsPerms::ReadOnly,
                DirMode::ReadWrite => FsPerms::ReadWrite,
            };
            b.preopened_dir(&dir.host, &dir.guest, perms).map_err(|e| {
                format!("cannot open granted directory {}: {e}", dir.host.display())
            })?;
        }
        let stderr_tail = Arc::new(StderrTail::default());
        b.stdout(LogStream {
            plugin: plugin.clone(),
            stream: "stdout",
            budget: log_budget.clone(),
            tail: None,
        });
        b.stderr(LogStream {
            plugin: plugin.clone(),
            stream: "stderr",
            budget: log_budget.clone(),
            tail: Some(stderr_tail.clone()),
        });
        // Sockets may be created; every bind, connect and send is decided
        // (and audited) by the address check below, which denies by default.
        b.allow_tcp(true);
        b.allow_udp(true);
        // Name lookups are governed by `lookup.rs`, which replaces WASI's
        // resolver in the linker; WASI's own stays off.
        b.allow_ip_name_lookup(false);
        let looked_up = Arc::new(lookup::LookedUp::default());
        b.socket_addr_check(sockets::check(
            policy.clone(),
            plugin.clone(),
            auditor.clone(),
            looked_up.clone(),
        ));
        let mut table = ResourceTable::new();
        table.set_max_capacity(max_host_resources(memory));
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(FIELD_SIZE_LIMIT);
        Ok(State {
            // Its caps on open sockets and files: shared by all its
            // instances and the egress's connections.
            held: descriptors::Held::new(egress.descriptors().clone()),
            looked_up,
            deadline: std::time::Instant::now(),
            remote_state: String::new(),
            _slot: slot,
            listeners: spec.listeners.clone(),
            pace: Default::default(),
            policy,
            hooks: EgressHooks::new(egress, limits, auditor.clone()),
            auditor,
            log_budget,
            stderr_tail,
            plugin,
            wasi: b.build(),
            http,
            table,
            limiter: Limiter::new(memory as usize, limiter::MAX_TABLE_ELEMENTS),
        })
    }
}

impl State {
    /// Takes one socket or file from the plugin's cap for a creation about
    /// to happen; `false` (audited as a denial of `target`) at the cap.
    fn take_descriptor(&mut self, kind: crate::limits::Kind, target: &str) -> bool {
        let Err(max) = self.held.take(kind, &mut self.table) else {
            return true;
        };
        let (effect, field, what) = match kind {
            crate::limits::Kind::Socket => (Effect::Socket, "max-sockets", "sockets"),
            crate::limits::Kind::File => (Effect::File, "max-files", "files"),
        };
        let reason = format!("limits.{field} ({max}) reached: the plugin holds {max} open {what}");
        self.auditor.record(effect, target, Outcome::Deny, &reason);
        false
    }

    /// Gives back to the plugin's caps what the guest closed since the
    /// last count (done as each entry into the guest starts, so that the
    /// host's own connections for the plugin see the slots free).
    pub(crate) fn recount_descriptors(&mut self) {
        self.held.recount(&mut self.table);
    }

    /// Takes one socket for the guest, like
    /// [`take_descriptor`](Self::take_descriptor); at the cap, the idle
    /// HTTP connections the host pools for the plugin (which count toward
    /// it) are closed first to make room.
    async fn take_socket(&mut self, target: &str) -> bool {
        let budget = self.hooks.egress().descriptors().clone();
        // Connections closed for room and not yet given back.
        let mut closing = 0;
        loop {
            let released = budget.released();
            tokio::pin!(released);
            released.as_mut().enable();
            if self
                .held
                .take(crate::limits::Kind::Socket, &mut self.table)
                .is_ok()
            {
                return true;
            }
            closing += self.hooks.egress().close_idle();
            // Nothing closing, nothing the host holds that could close.
            if closing == 0 && budget.held_by_host() == 0 {
                break;
            }
            // A closed connection gives its socket back as its task ends.
            let wait = std::time::Duration::from_millis(250);
            if tokio::time::timeout(wait, released).await.is_err() {
                break;
            }
            closing = closing.saturating_sub(1);
        }
        self.take_descriptor(crate::limits::Kind::Socket, target)
    }

    /// Gives back what [`take_descriptor`](Self::take_descriptor) took, for
    /// a creation that failed.
    fn give_back_descriptor(&mut self, kind: crate::limits::Kind) {
        self.held.give_back(kind);
    }
}

impl Drop for State {
    // An instance discarded mid-call (a trap, a limit) still writes what its
    // auditor counted.
    fn drop(&mut self) {
        self.auditor.finish();
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl crate::bindings::warden::provider::types::Host for State {}
