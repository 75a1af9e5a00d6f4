//! The host's instruments. What every call counts is kept where the call
//! finds it without a lookup by attributes: calls by capability and
//! outcome, and fuel by plugin, are the host's own atomics, which
//! observable counters read at each export; a call's duration goes to the
//! SDK's histogram bound to its capability and outcome. Two cores counting
//! the same call then share one relaxed add, not the SDK's tracker map and
//! its locks.

use super::MCP_BUCKETS;
use opentelemetry::metrics::{BoundHistogram, Counter, Histogram, Meter};
use opentelemetry::{KeyValue, StringValue, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

/// Capabilities counted apart; calls of any more are counted together
/// under `otel.metric.overflow` (as the SDK does past its own limit).
const MAX_CAPABILITIES: usize = 4096;

/// How a capability call ended (`warden.outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Deny,
    Limit,
    Trap,
    Error,
}

impl Outcome {
    const ALL: [Outcome; 5] = [
        Outcome::Ok,
        Outcome::Deny,
        Outcome::Limit,
        Outcome::Trap,
        Outcome::Error,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Deny => "deny",
            Outcome::Limit => "limit",
            Outcome::Trap => "trap",
            Outcome::Error => "error",
        }
    }
}

/// One capability's counts and names, made at its first call.
pub(super) struct CallInstruments {
    /// `gen_ai.tool.name`: the capability.
    pub(super) tool: KeyValue,
    /// The call span's name.
    pub(super) name: StringValue,
    /// The name of the span of a `tools/call` of it.
    pub(super) request_name: StringValue,
    /// Whether this counts every capability past [`MAX_CAPABILITIES`].
    overflow: bool,
    calls: [AtomicU64; Outcome::ALL.len()],
    durations: [OnceLock<BoundHistogram<f64>>; Outcome::ALL.len()],
    /// `mcp.server.operation.duration` of a `tools/call` of it that did
    /// not fail.
    operation: OnceLock<BoundHistogram<f64>>,
}

impl CallInstruments {
    fn new(capability: &str) -> CallInstruments {
        CallInstruments {
            tool: KeyValue::new(
                "gen_ai.tool.name",
                Value::from(Arc::<str>::from(capability)),
            ),
            name: format!("execute_tool {capability}").into(),
            request_name: format!("tools/call {capability}").into(),
            overflow: false,
            calls: Default::default(),
            durations: Default::default(),
            operation: OnceLock::new(),
        }
    }

    fn overflow() -> CallInstruments {
        CallInstruments {
            tool: KeyValue::new("otel.metric.overflow", true),
            overflow: true,
            ..CallInstruments::new("")
        }
    }

    /// Whether it stands for one capability (not the overflow).
    pub(super) fn is_own(&self) -> bool {
        !self.overflow
    }

    fn attributes(&self, outcome: Outcome) -> [KeyValue; 2] {
        [
            self.tool.clone(),
            KeyValue::new("warden.outcome", outcome.as_str()),
        ]
    }
}

/// The capabilities' instruments, and the overflow.
struct CallTable {
    by_capability: RwLock<HashMap<Box<str>, Arc<CallInstruments>>>,
    overflow: Arc<CallInstruments>,
}

/// The host's instruments.
pub(super) struct Instruments {
    call_duration: Histogram<f64>,
    pub(super) denials: Counter<u64>,
    pub(super) limits: Counter<u64>,
    pub(super) operation_duration: Histogram<f64>,
    calls: Arc<CallTable>,
    /// Fuel used, by plugin name (kept across reloads, so that the count
    /// stays cumulative).
    fuel: Arc<Mutex<HashMap<Box<str>, Arc<AtomicU64>>>>,
}

impl Instruments {
    pub(super) fn new(meter: &Meter) -> Instruments {
        let calls = Arc::new(CallTable {
            by_capability: RwLock::default(),
            overflow: Arc::new(CallInstruments::overflow()),
        });
        let fuel: Arc<Mutex<HashMap<Box<str>, Arc<AtomicU64>>>> = Arc::default();
        observe_calls(meter, calls.clone());
        observe_fuel(meter, fuel.clone());
        Instruments {
            call_duration: meter
                .f64_histogram("warden.call.duration")
                .with_description("Capability call duration, admission to end")
                .with_unit("s")
                .with_boundaries(MCP_BUCKETS.to_vec())
                .build(),
            denials: meter
                .u64_counter("warden.denials")
                .with_description("Decisions that refused an effect or a call, by effect")
                .with_unit("{denial}")
                .build(),
            limits: meter
                .u64_counter("warden.limit.hits")
                .with_description("Calls stopped by a plugin limit, by limit")
                .with_unit("{call}")
                .build(),
            operation_duration: meter
                .f64_histogram("mcp.server.operation.duration")
                .with_description(
                    "MCP request or notification duration as observed on the receiver from \
                     the time it was received until the result or ack is sent.",
                )
                .with_unit("s")
                .with_boundaries(MCP_BUCKETS.to_vec())
                .build(),
            calls,
            fuel,
        }
    }

    /// The instruments of `capability`, made at its
    /// first call; past [`MAX_CAPABILITIES`], the overflow's.
    pub(super) fn for_call(&self, capability: &str) -> Arc<CallInstruments> {
        let table = &self.calls;
        let read = |map: &HashMap<Box<str>, Arc<CallInstruments>>| map.get(capability).cloned();
        let map = table
            .by_capability
            .read()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(found) = read(&map) {
            return found;
        }
        drop(map);
        let mut map = table
            .by_capability
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(found) = read(&map) {
            return found;
        }
        if map.len() >= MAX_CAPABILITIES {
            return table.overflow.clone();
        }
        let made = Arc::new(CallInstruments::new(capability));
        map.insert(capability.into(), made.clone());
        made
    }

    /// Counts and times one call that ended with `outcome`.
    pub(super) fn record_call(&self, call: &CallInstruments, outcome: Outcome, seconds: f64) {
        let slot = outcome as usize;
        call.calls[slot].fetch_add(1, Ordering::Relaxed);
        call.durations[slot]
            .get_or_init(|| self.call_duration.bind(&call.attributes(outcome)))
            .record(seconds);
    }

    /// The instruments of capability `tool` when it was called before
    /// (found, never made: a client's names take no room).
    pub(super) fn known(&self, tool: &str) -> Option<Arc<CallInstruments>> {
        let map = self
            .calls
            .by_capability
            .read()
            .unwrap_or_else(|e| e.into_inner());
        map.get(tool).cloned()
    }

    /// Times a `tools/call` of `call`'s capability that did not fail.
    pub(super) fn record_tool_call(&self, call: &CallInstruments, seconds: f64) {
        call.operation
            .get_or_init(|| {
                let attributes = [
                    KeyValue::new("mcp.method.name", "tools/call"),
                    call.tool.clone(),
                ];
                self.operation_duration.bind(&attributes)
            })
            .record(seconds);
    }

    /// The fuel count of `plugin`.
    pub(super) fn fuel_of(&self, plugin: &str) -> Arc<AtomicU64> {
        let mut fuel = self.fuel.lock().unwrap_or_else(|e| e.into_inner());
        fuel.entry(plugin.into()).or_default().clone()
    }
}

/// `warden.calls`, read from the capabilities' counts at each export.
fn observe_calls(meter: &Meter, table: Arc<CallTable>) {
    meter
        .u64_observable_counter("warden.calls")
        .with_description("Capability calls, by capability and outcome")
        .with_unit("{call}")
        .with_callback(move |observer| {
            let map = table
                .by_capability
                .read()
                .unwrap_or_else(|e| e.into_inner());
            for call in map.values().chain([&table.overflow]) {
                for outcome in Outcome::ALL {
                    let count = call.calls[outcome as usize].load(Ordering::Relaxed);
                    if count > 0 {
                        observer.observe(count, &call.attributes(outcome));
                    }
                }
            }
        })
        .build();
}

/// `warden.fuel.used`, read from the plugins' counts at each export.
fn observe_fuel(meter: &Meter, fuel: Arc<Mutex<HashMap<Box<str>, Arc<AtomicU64>>>>) {
    meter
        .u64_observable_counter("warden.fuel.used")
        .with_description("Fuel the plugins' calls used")
        .with_unit("{fuel}")
        .with_callback(move |observer| {
            let fuel = fuel.lock().unwrap_or_else(|e| e.into_inner());
            for (plugin, used) in fuel.iter() {
                let plugin = KeyValue::new("warden.plugin", plugin.to_string());
                observer.observe(used.load(Ordering::Relaxed), &[plugin]);
            }
        })
        .build();
}
