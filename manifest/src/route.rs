//! Metadata-driven routing: the one place that reads a capability's
//! flattened metadata to decide how a call is served. No provider name
//! appears here; any `<namespace>.requires-session` key asks for a session,
//! whatever the namespace (`mcp`, `graphql`, ...).
//!
//! The same place reads the hints the design documents list for later use,
//! `*.retry-strategy` and `*.rate-limit`, and rejects malformed values when
//! the capability is registered.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// How calls to a capability are served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Route {
    /// A plain call on an instance of the serving plugin.
    Direct,
    /// A call within a pooled session (the plugin's `session-handler`).
    Session {
        /// The metadata key that asked for it, e.g. `mcp.requires-session`.
        key: String,
    },
}

/// Retry hint (`*.retry-strategy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RetryStrategy {
    /// Attempts in all, 1 to 10.
    pub attempts: u32,
    /// Delay before the first retry.
    pub backoff_ms: u64,
    /// Whether the delay doubles each time.
    pub exponential: bool,
    /// Whether each delay is drawn at random between half and all of it, so
    /// that calls that failed together do not retry in lockstep (default).
    pub jitter: bool,
}

impl RetryStrategy {
    /// The wait before retry number `attempt` (from 1): `backoff-ms`,
    /// doubled each time if exponential, and with jitter drawn from `seed`
    /// between half and all of it.
    pub fn delay(&self, attempt: u32, seed: u64) -> std::time::Duration {
        let factor = if self.exponential {
            1u64 << attempt.saturating_sub(1).min(16)
        } else {
            1
        };
        let full = self.backoff_ms.saturating_mul(factor);
        if !self.jitter || full < 2 {
            return std::time::Duration::from_millis(full);
        }
        // splitmix64: spreads close seeds (clock readings) apart.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let half = full / 2;
        std::time::Duration::from_millis(half + z % (full - half + 1))
    }
}

/// Rate-limit hint (`*.rate-limit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RateLimit {
    /// Calls allowed per period.
    pub calls: u32,
    /// The period in seconds.
    pub per_seconds: u64,
}

/// Hints read from metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Hints {
    /// From `*.retry-strategy`.
    pub retry: Option<RetryStrategy>,
    /// From `*.rate-limit`.
    pub rate_limit: Option<RateLimit>,
}

/// Whether a flattened key names `hint` in any namespace. Accepts the dotted
/// form (`mcp.requires-session`) and the flat spellings of the design
/// documents (`mcp-requires-session`, `mcp_requires_session`).
fn names_hint(key: &str, hint: &str) -> bool {
    let snake = hint.replace('-', "_");
    [hint, snake.as_str()].iter().any(|h| {
        key == *h
            || key.ends_with(&format!(".{h}"))
            || key.ends_with(&format!("-{h}"))
            || key.ends_with(&format!("_{h}"))
    })
}

/// The value of the first flattened metadata key that names `hint` in any
/// namespace (`mcp.annotations.read-only-hint`, `read_only_hint`, ...).
pub fn find_hint<'a>(flat: &'a BTreeMap<String, Value>, hint: &str) -> Option<&'a Value> {
    flat.iter()
        .find(|(key, _)| names_hint(key, hint))
        .map(|(_, v)| v)
}

/// Decides the route from flattened metadata.
pub fn route(flat: &BTreeMap<String, Value>) -> Result<Route, String> {
    let mut asked: Option<String> = None;
    for (key, value) in flat {
        if !names_hint(key, "requires-session") {
            continue;
        }
        let wants = match value {
            Value::Bool(b) => *b,
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "auto" | "required" | "yes" => true,
                "false" | "no" | "none" => false,
                other => {
                    return Err(format!(
                        "metadata `{key}`: `{other}` is not true, false or \"auto\""
                    ))
                }
            },
            other => {
                return Err(format!(
                    "metadata `{key}`: {other} is not true, false or \"auto\""
                ))
            }
        };
        if wants && asked.is_none() {
            asked = Some(key.clone());
        }
    }
    Ok(match asked {
        Some(key) => Route::Session { key },
        None => Route::Direct,
    })
}

/// Reads the retry and rate-limit hints; a malformed one is an error naming the key.
pub fn hints(flat: &BTreeMap<String, Value>) -> Result<Hints, String> {
    let mut out = Hints::default();
    // Nested hint objects were flattened: gather `<prefix>.retry-strategy.<field>`.
    let groups = |hint: &str| -> BTreeMap<String, Value> {
        let mut g: BTreeMap<String, Value> = BTreeMap::new();
        for (k, v) in flat {
            if names_hint(k, hint) {
                g.insert(k.clone(), v.clone());
            } else if let Some(pos) = k.rfind('.') {
                let (head, field) = (&k[..pos], &k[pos + 1..]);
                if names_hint(head, hint) {
                    let entry = g
                        .entry(head.to_string())
                        .or_insert_with(|| Value::Object(Default::default()));
                    if let Value::Object(o) = entry {
                        o.insert(field.to_string(), v.clone());
                    }
                }
            }
        }
        g
    };
    for (key, v) in groups("retry-strategy") {
        out.retry = parse_retry(&v).map_err(|e| format!("metadata `{key}`: {e}"))?;
    }
    for (key, v) in groups("rate-limit") {
        out.rate_limit = Some(parse_rate(&v).map_err(|e| format!("metadata `{key}`: {e}"))?);
    }
    Ok(out)
}

fn parse_retry(v: &Value) -> Result<Option<RetryStrategy>, String> {
    match v {
        Value::String(s) if s == "none" => Ok(None),
        Value::Object(o) => {
            for k in o.keys() {
                if !["attempts", "backoff-ms", "backoff", "jitter"].contains(&k.as_str()) {
                    return Err(format!(
                        "unknown field `{k}` (expected attempts, backoff-ms, backoff, jitter)"
                    ));
                }
            }
            let attempts = match o.get("attempts") {
                Some(n) => n
                    .as_u64()
                    .filter(|n| (1..=10).contains(n))
                    .ok_or_else(|| format!("attempts must be 1 to 10, got {n}"))?
                    as u32,
                None => return Err("attempts is required".into()),
            };
            let backoff_ms = match o.get("backoff-ms") {
                Some(n) => n
                    .as_u64()
                    .filter(|n| *n <= 60_000)
                    .ok_or_else(|| format!("backoff-ms must be 0 to 60000, got {n}"))?,
                None => 100,
            };
            let exponential = match o.get("backoff").and_then(Value::as_str) {
                None | Some("exponential") => true,
                Some("fixed") => false,
                Some(other) => {
                    return Err(format!(
                        "backoff must be \"fixed\" or \"exponential\", got \"{other}\""
                    ))
                }
            };
            let jitter = match o.get("jitter") {
                None => true,
                Some(Value::Bool(b)) => *b,
                Some(other) => return Err(format!("jitter must be true or false, got {other}")),
            };
            Ok(Some(RetryStrategy {
                attempts,
                backoff_ms,
                exponential,
                jitter,
            }))
        }
        other => Err(format!(
            "expected {{attempts, backoff-ms, backoff, jitter}} or \"none\", got {other}"
        )),
    }
}

fn parse_rate(v: &Value) -> Result<RateLimit, String> {
    let period = |p: &str| match p {
        "second" | "s" => Ok(1),
        "minute" | "min" | "m" => Ok(60),
        "hour" | "h" => Ok(3600),
        other => Err(format!(
            "period must be second, minute or hour, got `{other}`"
        )),
    };
    let (calls, per_seconds) = match v {
        Value::String(s) => {
            let (n, p) = s
                .split_once('/')
                .ok_or_else(|| format!("expected \"N/minute\", got \"{s}\""))?;
            (
                n.trim()
                    .parse::<u64>()
                    .map_err(|_| format!("expected \"N/minute\", got \"{s}\""))?,
                period(p.trim())?,
            )
        }
        Value::Object(o) => {
            for k in o.keys() {
                if !["calls", "per"].contains(&k.as_str()) {
                    return Err(format!("unknown field `{k}` (expected calls, per)"));
                }
            }
            let calls = o
                .get("calls")
                .and_then(Value::as_u64)
                .ok_or("calls must be a positive integer")?;
            (
                calls,
                period(o.get("per").and_then(Value::as_str).unwrap_or("minute"))?,
            )
        }
        other => {
            return Err(format!(
                "expected \"N/minute\" or {{calls, per}}, got {other}"
            ))
        }
    };
    if calls == 0 || calls > u32::MAX as u64 {
        return Err(format!("calls must be 1 to {}, got {calls}", u32::MAX));
    }
    Ok(RateLimit {
        calls: calls as u32,
        per_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::flatten_metadata;
    use serde_json::json;

    fn flat(v: Value) -> BTreeMap<String, Value> {
        flatten_metadata(&v)
    }

    #[test]
    fn any_namespace_can_ask_for_a_session() {
        for meta in [
            json!({"mcp": {"requires-session": true}}),
            json!({"graphql": {"requires-session": "auto"}}),
            json!({"anything-new": {"deeper": {"requires-session": "true"}}}),
            json!({"mcp-requires-session": "true"}),
            json!({"grpc_requires_session": "required"}),
        ] {
            assert!(
                matches!(route(&flat(meta.clone())).unwrap(), Route::Session { .. }),
                "{meta}"
            );
        }
        for meta in [
            json!({}),
            json!({"mcp": {"requires-session": false}}),
            json!({"mcp": {"server-url": "x"}}),
            json!({"requires-sessions": true}),
        ] {
            assert_eq!(route(&flat(meta.clone())).unwrap(), Route::Direct, "{meta}");
        }
        assert_eq!(
            route(&flat(json!({"x": {"requires-session": true}}))).unwrap(),
            Route::Session {
                key: "x.requires-session".into()
            }
        );
    }

    #[test]
    fn malformed_session_flags_are_rejected() {
        for meta in [
            json!({"mcp": {"requires-session": "sometimes"}}),
            json!({"mcp": {"requires-session": 1}}),
        ] {
            assert!(route(&flat(meta))
                .unwrap_err()
                .contains("mcp.requires-session"));
        }
    }

    #[test]
    fn hints_parse_and_malformed_ones_are_rejected() {
        let h = hints(&flat(json!({"http": {"retry-strategy": {"attempts": 3, "backoff-ms": 50, "backoff": "fixed"}, "rate-limit": "30/minute"}}))).unwrap();
        assert_eq!(
            h.retry,
            Some(RetryStrategy {
                attempts: 3,
                backoff_ms: 50,
                exponential: false,
                jitter: true
            })
        );
        assert_eq!(
            h.rate_limit,
            Some(RateLimit {
                calls: 30,
                per_seconds: 60
            })
        );
        let h = hints(&flat(
            json!({"api": {"rate-limit": {"calls": 5, "per": "second"}}, "retry-strategy": "none"}),
        ))
        .unwrap();
        assert_eq!(
            h.rate_limit,
            Some(RateLimit {
                calls: 5,
                per_seconds: 1
            })
        );
        assert_eq!(h.retry, None);
        let steady = hints(&flat(
            json!({"http": {"retry-strategy": {"attempts": 2, "jitter": false}}}),
        ))
        .unwrap();
        assert!(!steady.retry.unwrap().jitter);
        for (meta, needle) in [
            (
                json!({"http": {"retry-strategy": {"attempts": 0}}}),
                "attempts",
            ),
            (
                json!({"http": {"retry-strategy": {"attempts": 2, "jitter": "yes"}}}),
                "jitter",
            ),
            (
                json!({"http": {"retry-strategy": "always"}}),
                "http.retry-strategy",
            ),
            (json!({"http": {"rate-limit": "many"}}), "N/minute"),
            (json!({"http": {"rate-limit": "10/fortnight"}}), "fortnight"),
            (json!({"http": {"rate-limit": {"calls": 0}}}), "calls"),
        ] {
            let err = hints(&flat(meta.clone())).unwrap_err();
            assert!(err.contains(needle), "{meta}: {err}");
        }
    }
}
