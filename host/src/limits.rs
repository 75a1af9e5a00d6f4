//! Per-call limits (`[limits]`, `[plugins.NAME.limits]`), their defaults and
//! their resolution; enforced by the runtime (fuel, memory, time), the
//! sandbox (log lines, output) and egress (requests, bytes, timeouts).

use crate::error::{Error, Result};

mod descriptors;
pub(crate) use descriptors::{DescriptorBudget, Kind, SocketSlot};
use serde::{Deserialize, Deserializer, Serialize};

/// Default fuel per call.
pub const DEFAULT_FUEL: u64 = 1_000_000_000;
/// Default linear-memory cap per instance.
pub const DEFAULT_MEMORY: u64 = 64 << 20;
/// Default wall-clock time per call.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// Per-call limits (`[limits]`, `[plugins.NAME.limits]`). Unset fields fall
/// back to the top-level `[limits]`, then to the built-in defaults.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    /// Fuel per call (roughly, wasm instructions). Default 1e9.
    pub fuel: Option<u64>,
    /// Linear memory per instance in bytes; the file accepts `"64MiB"`,
    /// `"512KiB"`, `"1GiB"` or a plain integer. Default 64 MiB.
    #[serde(default, deserialize_with = "de_size")]
    #[cfg_attr(feature = "schema", schemars(schema_with = "size_schema"))]
    pub memory: Option<u64>,
    /// Wall-clock time per call in milliseconds. Default 10 000.
    pub timeout_ms: Option<u64>,
    /// Largest HTTP response body per request, in bytes (or a size string).
    /// Default 10 MiB.
    #[serde(default, deserialize_with = "de_size")]
    #[cfg_attr(feature = "schema", schemars(schema_with = "size_schema"))]
    pub max_response_bytes: Option<u64>,
    /// Most outbound HTTP requests per call. Default 100.
    pub max_requests: Option<u32>,
    /// Most bytes sent and received over HTTP per call (or a size string).
    /// Default 50 MiB.
    #[serde(default, deserialize_with = "de_size")]
    #[cfg_attr(feature = "schema", schemars(schema_with = "size_schema"))]
    pub max_egress_bytes: Option<u64>,
    /// Timeout of one outbound request (connect, first byte, between bytes),
    /// in milliseconds. Default 30 000.
    pub request_timeout_ms: Option<u64>,
    /// Largest output of one call, in bytes (or a size string). Default 4 MiB.
    #[serde(default, deserialize_with = "de_size")]
    #[cfg_attr(feature = "schema", schemars(schema_with = "size_schema"))]
    pub max_output_bytes: Option<u64>,
    /// Most log lines (host log and stdout/stderr) kept per call; the rest
    /// are dropped and counted in one audit record. Default 1000.
    pub max_log_lines: Option<u32>,
    /// Most sockets the plugin holds open at once, across all its
    /// instances. Creating one more fails in the guest with
    /// `new-socket-limit` and is audited. Default 16.
    pub max_sockets: Option<u32>,
    /// Most files and directories the plugin holds open at once (opened by
    /// the guest, not counting the granted directories themselves), across
    /// all its instances. Opening one more fails in the guest with `quota`
    /// and is audited. Default 32.
    pub max_files: Option<u32>,
}

/// Default largest HTTP response body.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 10 << 20;
/// Default most HTTP requests per call.
pub const DEFAULT_MAX_REQUESTS: u32 = 100;
/// Default most HTTP bytes per call.
pub const DEFAULT_MAX_EGRESS_BYTES: u64 = 50 << 20;
/// Default timeout of one outbound request.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 30_000;
/// Default largest output of one call.
pub const DEFAULT_MAX_OUTPUT_BYTES: u64 = 4 << 20;
/// Default most log lines per call.
pub const DEFAULT_MAX_LOG_LINES: u32 = 1000;
/// Default most open sockets per plugin.
pub const DEFAULT_MAX_SOCKETS: u32 = 16;
/// Default most open files per plugin.
pub const DEFAULT_MAX_FILES: u32 = 32;

impl Limits {
    /// `self`, with unset fields taken from `fallback`.
    pub fn or(self, fallback: Limits) -> Limits {
        Limits {
            fuel: self.fuel.or(fallback.fuel),
            memory: self.memory.or(fallback.memory),
            timeout_ms: self.timeout_ms.or(fallback.timeout_ms),
            max_response_bytes: self.max_response_bytes.or(fallback.max_response_bytes),
            max_requests: self.max_requests.or(fallback.max_requests),
            max_egress_bytes: self.max_egress_bytes.or(fallback.max_egress_bytes),
            request_timeout_ms: self.request_timeout_ms.or(fallback.request_timeout_ms),
            max_output_bytes: self.max_output_bytes.or(fallback.max_output_bytes),
            max_log_lines: self.max_log_lines.or(fallback.max_log_lines),
            max_sockets: self.max_sockets.or(fallback.max_sockets),
            max_files: self.max_files.or(fallback.max_files),
        }
    }

    /// The effective limits with built-in defaults filled in.
    pub fn resolve(self) -> ResolvedLimits {
        ResolvedLimits {
            fuel: self.fuel.unwrap_or(DEFAULT_FUEL),
            memory: self.memory.unwrap_or(DEFAULT_MEMORY),
            timeout_ms: self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
            max_response_bytes: self
                .max_response_bytes
                .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES),
            max_requests: self.max_requests.unwrap_or(DEFAULT_MAX_REQUESTS),
            max_egress_bytes: self.max_egress_bytes.unwrap_or(DEFAULT_MAX_EGRESS_BYTES),
            request_timeout_ms: self
                .request_timeout_ms
                .unwrap_or(DEFAULT_REQUEST_TIMEOUT_MS),
            max_output_bytes: self.max_output_bytes.unwrap_or(DEFAULT_MAX_OUTPUT_BYTES),
            max_log_lines: self.max_log_lines.unwrap_or(DEFAULT_MAX_LOG_LINES),
            max_sockets: self.max_sockets.unwrap_or(DEFAULT_MAX_SOCKETS),
            max_files: self.max_files.unwrap_or(DEFAULT_MAX_FILES),
        }
    }
}

/// Limits with every value decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ResolvedLimits {
    /// Fuel per call.
    pub fuel: u64,
    /// Linear memory bytes per instance.
    pub memory: u64,
    /// Wall-clock milliseconds per call.
    pub timeout_ms: u64,
    /// Largest HTTP response body per request.
    pub max_response_bytes: u64,
    /// Most HTTP requests per call.
    pub max_requests: u32,
    /// Most HTTP bytes per call, both directions.
    pub max_egress_bytes: u64,
    /// Timeout of one outbound request.
    pub request_timeout_ms: u64,
    /// Largest output of one call.
    pub max_output_bytes: u64,
    /// Most log lines per call.
    pub max_log_lines: u32,
    /// Most open sockets of the plugin.
    pub max_sockets: u32,
    /// Most open files of the plugin.
    pub max_files: u32,
}

pub(crate) fn de_size<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Int(u64),
        Text(String),
    }
    match Option::<Size>::deserialize(d)? {
        None => Ok(None),
        Some(Size::Int(n)) => Ok(Some(n)),
        Some(Size::Text(s)) => parse_size(&s).map(Some).map_err(serde::de::Error::custom),
    }
}

/// The JSON Schema of a size read by [`de_size`]: bytes, or text such as
/// `"64MiB"`.
#[cfg(feature = "schema")]
pub(crate) fn size_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "A size: bytes, or a number with B, KiB (K, KB, k), MiB (M, MB) or GiB (G, GB), e.g. \"64MiB\".",
        "anyOf": [
            {"type": "integer", "minimum": 0},
            {"type": "string", "pattern": "^\\s*[0-9_]+\\s*(B|KiB|K|KB|k|MiB|M|MB|GiB|G|GB)?\\s*$"}
        ]
    })
}

/// Parses `"64MiB"`, `"512 KiB"`, `"1GiB"`, `"1000"` into bytes.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '_')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .replace('_', "")
        .parse()
        .map_err(|_| format!("invalid size `{s}`: expected e.g. \"64MiB\""))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" | "k" => 1 << 10,
        "MiB" | "M" | "MB" => 1 << 20,
        "GiB" | "G" | "GB" => 1 << 30,
        other => {
            return Err(format!(
                "invalid size unit `{other}` in `{s}`: use B, KiB, MiB or GiB"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size `{s}` is too large"))
}

/// Checks what serde cannot in a `[limits]` table at `at`.
pub(crate) fn check_limits(at: &str, l: &Limits) -> Result<()> {
    if l.fuel == Some(0) {
        return Err(Error::Config(format!("at `{at}.fuel`: must be at least 1")));
    }
    if let Some(m) = l.memory {
        if m < 64 << 10 {
            return Err(Error::Config(format!(
                "at `{at}.memory`: {m} bytes is below one wasm page (64KiB)"
            )));
        }
        if m > 4 << 30 {
            return Err(Error::Config(format!(
                "at `{at}.memory`: {m} bytes is above the 4GiB a 32-bit memory can address"
            )));
        }
    }
    if l.timeout_ms == Some(0) {
        return Err(Error::Config(format!(
            "at `{at}.timeout-ms`: must be at least 1"
        )));
    }
    for (field, zero) in [
        ("max-response-bytes", l.max_response_bytes == Some(0)),
        ("max-requests", l.max_requests == Some(0)),
        ("max-egress-bytes", l.max_egress_bytes == Some(0)),
        ("request-timeout-ms", l.request_timeout_ms == Some(0)),
        ("max-output-bytes", l.max_output_bytes == Some(0)),
    ] {
        if zero {
            return Err(Error::Config(format!(
                "at `{at}.{field}`: must be at least 1"
            )));
        }
    }
    Ok(())
}
