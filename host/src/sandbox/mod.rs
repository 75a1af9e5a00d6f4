//! Per-instance sandbox state: the WASI context built from a plugin's
//! policy, the egress hook for `wasi:http`, the resource limiter, and the
//! host services a guest imports.

use crate::config::DirMode;
use crate::egress::{Egress, EgressHooks};
use crate::governance::audit::{Effect, Outcome};
use crate::governance::Auditor;
use crate::limits::ResolvedLimits;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

mod filesystem;
mod http_client;
mod limiter;
mod output;
mod services;
mod sockets;

pub(crate) use filesystem::add_audited_open_at;
pub(crate) use limiter::{Limiter, MAX_TABLE_ELEMENTS};
use output::LogStream;

/// Longest log line or guest output line kept; the rest is cut.
const MAX_LOG_LINE: usize = 8 * 1024;

/// `s` cut to at most [`MAX_LOG_LINE`] bytes, on a character boundary.
fn clip(s: &str) -> &str {
    if s.len() <= MAX_LOG_LINE {
        return s;
    }
    let mut end = MAX_LOG_LINE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// What lives in each instance's store.
pub(crate) struct State {
    plugin: Arc<str>,
    /// The plugin's effect policy: every effect in this instance asks it.
    policy: Arc<crate::governance::policy::Policy>,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    pub(crate) hooks: EgressHooks,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) auditor: Auditor,
    log_budget: Arc<LogBudget>,
}

/// Log lines a call may still write (`limits.max-log-lines`), shared by the
/// host log import and the guest's stdout/stderr.
pub(crate) struct LogBudget {
    limit: u32,
    used: std::sync::atomic::AtomicU32,
    dropped: std::sync::atomic::AtomicU64,
}

impl LogBudget {
    fn new(limit: u32) -> Self {
        LogBudget {
            limit,
            used: Default::default(),
            dropped: Default::default(),
        }
    }
    /// Whether one more line may be written.
    fn take(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        if self.used.fetch_add(1, Relaxed) < self.limit {
            true
        } else {
            self.dropped.fetch_add(1, Relaxed);
            false
        }
    }
}

impl State {
    /// Starts a new call's log budget.
    pub(crate) fn reset_log_budget(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.log_budget.used.store(0, Relaxed);
        self.log_budget.dropped.store(0, Relaxed);
    }

    /// Ends a call: a flood of log lines is reported once and audited;
    /// returns whether there was one.
    pub(crate) fn end_call(&self, capability: &str) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let dropped = self.log_budget.dropped.swap(0, Relaxed);
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
}

impl State {
    /// Builds the sandbox for one instance from its plugin's spec alone.
    pub(crate) fn new(spec: &SandboxSpec) -> Result<State, String> {
        let plugin = spec.plugin.clone();
        let egress = spec.egress.clone();
        let limits = spec.limits;
        let auditor = spec.auditor.for_instance();
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
        let log_budget = Arc::new(LogBudget::new(limits.max_log_lines));
        b.stdout(LogStream {
            plugin: plugin.clone(),
            stream: "stdout",
            budget: log_budget.clone(),
        });
        b.stderr(LogStream {
            plugin: plugin.clone(),
            stream: "stderr",
            budget: log_budget.clone(),
        });
        // Sockets may be created; every bind, connect and send is decided
        // (and audited) by the address check below, which denies by default.
        b.allow_tcp(true);
        b.allow_udp(true);
        // Name lookups would let a guest probe the resolver; the HTTP issue
        // routes them through the egress policy. Until then: off.
        b.allow_ip_name_lookup(false);
        b.socket_addr_check(sockets::check(
            policy.clone(),
            plugin.clone(),
            auditor.clone(),
        ));
        Ok(State {
            policy,
            hooks: EgressHooks::new(egress, limits, auditor.clone()),
            auditor,
            log_budget,
            plugin,
            wasi: b.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limiter: Limiter {
                memory: memory as usize,
                table_elements: limiter::MAX_TABLE_ELEMENTS,
                hit: None,
            },
        })
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
