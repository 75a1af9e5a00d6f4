//! `[cluster]`: what the replicas of one service share through Redis:
//! rate limits (`calls-per-minute`, a rule's and a plugin's, and a
//! capability's rate-limit hint) counted across every replica in a sliding
//! window kept on Redis's own clock (replicas' clocks may differ), and
//! one-time claims ([`Cluster::claim_once`], e.g. `warden serve`'s
//! approval nonces), places held under a lease ([`Cluster::hold`], e.g.
//! requests in flight per principal), records with a time to live
//! ([`Cluster::put`], e.g. 2025-11-25 sessions), states that end once
//! ([`Cluster::advance`], e.g. MCP Tasks), and news between replicas ([`Cluster::publish`],
//! [`Cluster::listen`], e.g. that the tool list changed).
//!
//! When Redis does not answer within `timeout-ms`, `on-unreachable`
//! decides: `fail-closed` (the default) refuses the calls a shared limit
//! covers, `fail-open` counts them in this replica alone. Either way the
//! log says so once when it starts and once when Redis is back.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// `[cluster]`.
///
/// ```toml
/// [cluster]
/// redis = "rediss://redis.internal:6379/0"
/// password-secret = "REDIS_PASSWORD"   # a [secrets] entry
/// on-unreachable = "fail-closed"       # or "fail-open"
/// ```
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClusterSettings {
    /// `redis://HOST:PORT[/DB]`, or `rediss://` for TLS (the public roots).
    /// No password in it: see `password-secret`.
    pub redis: String,
    /// The user name Redis's `AUTH` is given (ACL users), if any.
    #[serde(default)]
    pub username: Option<String>,
    /// The `[secrets]` entry whose value is Redis's password, if it has one.
    #[serde(default)]
    pub password_secret: Option<String>,
    /// Prefix of every key (default `warden`); services sharing one Redis
    /// take different ones. Letters, digits, `.`, `_`, `-`, `:`.
    #[serde(default)]
    pub key_prefix: Option<String>,
    /// How long connecting, and each command, may take (default 500 ms, at
    /// most 60 000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// What a call under a shared limit meets while Redis does not answer.
    #[serde(default)]
    pub on_unreachable: OnUnreachable,
}

/// What happens while Redis does not answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum OnUnreachable {
    /// Calls a shared limit covers are refused (`rate limited`, saying why).
    #[default]
    FailClosed,
    /// Such calls are counted by this replica alone, as without `[cluster]`.
    FailOpen,
}

const DEFAULT_TIMEOUT_MS: u64 = 500;
/// The longest message [`Cluster::listen`] passes on.
pub const MAX_MESSAGE: usize = 1024;
const MAX_TIMEOUT_MS: u64 = 60_000;

impl ClusterSettings {
    /// Checks the settings; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        let bad = |key: &str, what: String| Err(format!("at `cluster.{key}`: {what}"));
        let rest = self
            .redis
            .strip_prefix("redis://")
            .or_else(|| self.redis.strip_prefix("rediss://"));
        let Some(rest) = rest else {
            return bad(
                "redis",
                format!("{:?} is not a redis:// or rediss:// URL", self.redis),
            );
        };
        let authority = rest.split('/').next().unwrap_or("");
        if authority.contains('@') {
            return bad(
                "redis",
                "holds credentials: give the password through `password-secret`".into(),
            );
        }
        if authority.is_empty() {
            return bad("redis", "names no host".into());
        }
        if let Err(e) = redis::Client::open(self.redis.as_str()) {
            return bad("redis", e.to_string());
        }
        if let Some(prefix) = &self.key_prefix {
            let ok = (1..=64).contains(&prefix.len())
                && prefix
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b));
            if !ok {
                return bad(
                    "key-prefix",
                    "must be 1-64 letters, digits, `.`, `_`, `-` or `:`".into(),
                );
            }
        }
        match self.timeout_ms {
            Some(0) => bad("timeout-ms", "must be at least 1".into()),
            Some(ms) if ms > MAX_TIMEOUT_MS => {
                bad("timeout-ms", format!("must be at most {MAX_TIMEOUT_MS}"))
            }
            _ => Ok(()),
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS))
    }
}

/// Counts one call in a sliding window. KEYS[1]: the window (a sorted set
/// of calls by time). ARGV: the window's length in ms, the limit, the
/// call's member. Returns 1 if counted, 0 if the window is full.
const SLIDING_WINDOW: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local per = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - per)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], per)
return 1
";

/// Holds a place among at most ARGV[2] in KEYS[1] (a sorted set of
/// holders by the end of their lease): expired leases go first. ARGV: the
/// lease in ms, the limit, the holder. Returns 1 if held, 0 if full.
const HOLD: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[3])
redis.call('PEXPIRE', KEYS[1], 2 * lease)
return 1
";

/// Extends holder ARGV[2]'s lease in KEYS[1] to ARGV[1] ms from now, if it
/// still holds a place.
const RENEW: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
if redis.call('ZADD', KEYS[1], 'XX', 'CH', now + lease, ARGV[2]) == 1 then
  redis.call('PEXPIRE', KEYS[1], 2 * lease)
end
return 1
";

/// Writes ARGV[1] (a state: `O` open or `F` final, then the value) to
/// KEYS[1] for ARGV[2] ms, unless the state there is final. Returns 1 if
/// written, 0 if refused.
const ADVANCE: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, 1) == 'F' then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// The messages of one topic ([`Cluster::listen`]).
pub struct Messages(std::pin::Pin<Box<redis::aio::PubSubStream>>);

impl Messages {
    /// The next message (at most [`MAX_MESSAGE`] bytes of UTF-8; others
    /// are skipped), or `None` once the connection is lost.
    pub async fn next(&mut self) -> Option<String> {
        use futures::StreamExt;
        loop {
            let message = self.0.next().await?;
            if message.get_payload_bytes().len() > MAX_MESSAGE {
                continue;
            }
            if let Ok(text) = message.get_payload::<String>() {
                return Some(text);
            }
        }
    }
}

/// Why shared state could not be reached: Redis did not answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(pub(crate) String);

/// Why a request to Redis failed.
enum Failure {
    /// No answer: down, unreachable, too slow.
    Silent(String),
    /// It answered, refusing this replica: credentials or permissions.
    Refused(String),
}

impl Failure {
    fn of(e: &redis::RedisError) -> Self {
        let refused = e.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"));
        match refused {
            true => Failure::Refused(e.to_string()),
            false => Failure::Silent(e.to_string()),
        }
    }
}

/// A connection to the cluster's Redis (made lazily, remade after a loss);
/// [`Host::cluster`](crate::Host::cluster) gives the host's.
pub struct Cluster {
    /// For listening connections (one each).
    client: redis::Client,
    manager: ConnectionManager,
    prefix: String,
    timeout: Duration,
    mode: OnUnreachable,
    window: redis::Script,
    hold: redis::Script,
    renew: redis::Script,
    advance: redis::Script,
    /// Where Redis is, for messages (the URL has no credentials).
    address: String,
    /// Redis did not answer last time (so the log says when it is back).
    down: AtomicBool,
}

impl Cluster {
    /// Connects lazily to the Redis `settings` name (inside a Tokio
    /// runtime), with `password` for `AUTH`.
    pub(crate) fn new(
        settings: &ClusterSettings,
        password: Option<String>,
    ) -> Result<Self, String> {
        settings.validate()?;
        let redis_error = |e: redis::RedisError| format!("at `cluster.redis`: {e}");
        let mut info = redis::IntoConnectionInfo::into_connection_info(settings.redis.as_str())
            .map_err(redis_error)?;
        let mut auth = info.redis_settings().clone();
        if let Some(user) = &settings.username {
            auth = auth.set_username(user);
        }
        if let Some(password) = password {
            auth = auth.set_password(password);
        }
        info = info.set_redis_settings(auth);
        let client = redis::Client::open(info).map_err(redis_error)?;
        let timeout = settings.timeout();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let manager =
            ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(redis_error)?;
        Ok(Cluster {
            client,
            manager,
            prefix: settings
                .key_prefix
                .clone()
                .unwrap_or_else(|| "warden".into()),
            timeout,
            mode: settings.on_unreachable,
            window: redis::Script::new(SLIDING_WINDOW),
            hold: redis::Script::new(HOLD),
            renew: redis::Script::new(RENEW),
            advance: redis::Script::new(ADVANCE),
            address: settings.redis.clone(),
            down: AtomicBool::new(false),
        })
    }

    /// What happens while Redis does not answer (`on-unreachable`).
    pub fn mode(&self) -> OnUnreachable {
        self.mode
    }

    fn key(&self, name: &str) -> String {
        format!("{}:rate:{name}", self.prefix)
    }

    /// Counts call `member` under the shared window `name` (`limit` calls
    /// per `per`): `Ok(true)` counted, `Ok(false)` the window is full.
    pub(crate) async fn take(
        &self,
        name: &str,
        limit: u32,
        per: Duration,
        member: &str,
    ) -> Result<bool, Unreachable> {
        let mut conn = self.manager.clone();
        let per_ms = per.as_millis().max(1) as u64;
        let mut invocation = self.window.key(self.key(name));
        invocation.arg(per_ms).arg(limit).arg(member);
        let counted = self
            .answer(invocation.invoke_async::<i64>(&mut conn))
            .await?;
        Ok(counted == 1)
    }

    /// What Redis answered to `request`, bounded in time (the connection's
    /// own timeouts bound each attempt; this bounds the whole, a
    /// reconnection and a script load included), the log told of a change.
    async fn answer<T>(
        &self,
        request: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Unreachable> {
        let bound = self.timeout * 3;
        let answer = match tokio::time::timeout(bound, request).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Failure::of(&e)),
            Err(_) => Err(Failure::Silent(format!(
                "no answer within {} ms",
                bound.as_millis()
            ))),
        };
        self.note(answer.as_ref().err());
        answer.map_err(|failure| {
            Unreachable(match failure {
                Failure::Silent(why) => format!("Redis at {} did not answer: {why}", self.address),
                Failure::Refused(why) => format!(
                    "Redis at {} refused this replica ({why}): check `cluster.username` and \
                     `cluster.password-secret`, and the user's ACL",
                    self.address
                ),
            })
        })
    }

    /// Claims `name` (in the `claim` space) until `ttl` from now:
    /// `Ok(true)` for the first claim across the cluster, `Ok(false)` if it
    /// was claimed already and has not expired.
    pub async fn claim_once(&self, name: &str, ttl: Duration) -> Result<bool, Unreachable> {
        let mut conn = self.manager.clone();
        let mut set = redis::cmd("SET");
        set.arg(format!("{}:claim:{name}", self.prefix))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64);
        let set = self
            .answer(set.query_async::<Option<String>>(&mut conn))
            .await?;
        Ok(set.is_some())
    }

    /// Takes one of at most `limit` places under `name` for `holder`, for
    /// `lease` (renew it while held; a replica that dies lets its places
    /// go when their leases end): `Ok(false)` when every place is held.
    pub async fn hold(
        &self,
        name: &str,
        holder: &str,
        limit: u32,
        lease: Duration,
    ) -> Result<bool, Unreachable> {
        let mut conn = self.manager.clone();
        let mut invocation = self.hold.key(self.holds(name));
        invocation
            .arg(lease.as_millis().max(1) as u64)
            .arg(limit)
            .arg(holder);
        Ok(self
            .answer(invocation.invoke_async::<i64>(&mut conn))
            .await?
            == 1)
    }

    /// Extends `holder`'s place under `name` for `lease` from now.
    pub async fn renew(
        &self,
        name: &str,
        holder: &str,
        lease: Duration,
    ) -> Result<(), Unreachable> {
        let mut conn = self.manager.clone();
        let mut invocation = self.renew.key(self.holds(name));
        invocation.arg(lease.as_millis().max(1) as u64).arg(holder);
        self.answer(invocation.invoke_async::<i64>(&mut conn))
            .await?;
        Ok(())
    }

    /// Gives `holder`'s place under `name` back. Best effort: a place not
    /// given back ends with its lease.
    pub async fn release(&self, name: &str, holder: &str) {
        let mut conn = self.manager.clone();
        let mut remove = redis::cmd("ZREM");
        remove.arg(self.holds(name)).arg(holder);
        let _ = tokio::time::timeout(self.timeout * 3, remove.exec_async(&mut conn)).await;
    }

    fn holds(&self, name: &str) -> String {
        format!("{}:hold:{name}", self.prefix)
    }

    /// Keeps `value` under `name` (in the `record` space) for `ttl`.
    pub async fn put(&self, name: &str, value: &str, ttl: Duration) -> Result<(), Unreachable> {
        let mut conn = self.manager.clone();
        let mut set = redis::cmd("SET");
        set.arg(self.record(name))
            .arg(value)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64);
        self.answer(set.query_async::<()>(&mut conn)).await
    }

    /// The value under `name`, its time to live reset to `ttl`; `None` if
    /// there is none (never put, removed, or expired).
    pub async fn get_refreshed(
        &self,
        name: &str,
        ttl: Duration,
    ) -> Result<Option<String>, Unreachable> {
        let mut conn = self.manager.clone();
        let mut get = redis::cmd("GETEX");
        get.arg(self.record(name))
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64);
        self.answer(get.query_async::<Option<String>>(&mut conn))
            .await
    }

    /// Removes the value under `name`.
    pub async fn remove(&self, name: &str) -> Result<(), Unreachable> {
        let mut conn = self.manager.clone();
        let mut del = redis::cmd("DEL");
        del.arg(self.record(name));
        self.answer(del.query_async::<i64>(&mut conn)).await?;
        Ok(())
    }

    /// Whether a value is under `name` (see [`put`](Self::put)).
    pub async fn exists(&self, name: &str) -> Result<bool, Unreachable> {
        let mut conn = self.manager.clone();
        let mut exists = redis::cmd("EXISTS");
        exists.arg(self.record(name));
        Ok(self.answer(exists.query_async::<i64>(&mut conn)).await? == 1)
    }

    /// Moves the state under `name` (in the `state` space) to `value` for
    /// `ttl`, unless it is final already; `last` makes this one final.
    /// `Ok(false)`: it was final, nothing changed. Replicas racing to end
    /// one state (done here, cancelled there) agree on the first.
    pub async fn advance(
        &self,
        name: &str,
        value: &str,
        ttl: Duration,
        last: bool,
    ) -> Result<bool, Unreachable> {
        let mut conn = self.manager.clone();
        let tagged = format!("{}{value}", if last { 'F' } else { 'O' });
        let mut invocation = self.advance.key(self.state_key(name));
        invocation.arg(tagged).arg(ttl.as_millis().max(1) as u64);
        Ok(self
            .answer(invocation.invoke_async::<i64>(&mut conn))
            .await?
            == 1)
    }

    /// The state under `name` and whether it is final; `None` if there is
    /// none (never set, or expired).
    pub async fn state(&self, name: &str) -> Result<Option<(String, bool)>, Unreachable> {
        let mut conn = self.manager.clone();
        let mut get = redis::cmd("GET");
        get.arg(self.state_key(name));
        let tagged = self
            .answer(get.query_async::<Option<String>>(&mut conn))
            .await?;
        Ok(tagged.and_then(|t| match t.split_at_checked(1) {
            Some(("F", value)) => Some((value.to_string(), true)),
            Some(("O", value)) => Some((value.to_string(), false)),
            _ => None,
        }))
    }

    fn state_key(&self, name: &str) -> String {
        format!("{}:state:{name}", self.prefix)
    }

    fn record(&self, name: &str) -> String {
        format!("{}:record:{name}", self.prefix)
    }

    /// Publishes `message` on `topic` to every replica listening.
    pub async fn publish(&self, topic: &str, message: &str) -> Result<(), Unreachable> {
        let mut conn = self.manager.clone();
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(self.topic(topic)).arg(message);
        self.answer(publish.query_async::<i64>(&mut conn)).await?;
        Ok(())
    }

    /// Listens on `topic`: its messages as they come, until the
    /// connection is lost (then listen again).
    pub async fn listen(&self, topic: &str) -> Result<Messages, Unreachable> {
        let topic = self.topic(topic);
        let connect = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(&topic).await?;
            Ok(pubsub)
        };
        let pubsub = self.answer(connect).await?;
        Ok(Messages(Box::pin(pubsub.into_on_message())))
    }

    fn topic(&self, topic: &str) -> String {
        format!("{}:topic:{topic}", self.prefix)
    }

    /// Takes back call `member` from window `name` (its approval was
    /// deferred: it will be counted when it comes back). Best effort.
    pub(crate) async fn give_back(&self, name: &str, member: &str) {
        let mut conn = self.manager.clone();
        let mut remove = redis::cmd("ZREM");
        remove.arg(self.key(name)).arg(member);
        let _ = tokio::time::timeout(self.timeout * 3, remove.exec_async(&mut conn)).await;
    }

    /// Logs when Redis stops answering and when it answers again.
    fn note(&self, failure: Option<&Failure>) {
        let was_down = self.down.swap(failure.is_some(), Ordering::Relaxed);
        match (failure, was_down) {
            (Some(failure), false) => {
                let what = match self.mode {
                    OnUnreachable::FailClosed => {
                        "calls under shared rate limits are refused (cluster.on-unreachable = fail-closed)"
                    }
                    OnUnreachable::FailOpen => {
                        "calls under shared rate limits are counted by this replica alone (cluster.on-unreachable = fail-open)"
                    }
                };
                match failure {
                    Failure::Silent(why) => {
                        tracing::error!(redis = %self.address, "cluster: Redis does not answer ({why}): {what}")
                    }
                    Failure::Refused(why) => {
                        tracing::error!(redis = %self.address, "cluster: Redis refuses this replica ({why}; check cluster.username, cluster.password-secret and the user's ACL): {what}")
                    }
                }
            }
            (None, true) => {
                tracing::warn!(redis = %self.address, "cluster: Redis answers again: rate limits are shared");
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> ClusterSettings {
        toml::from_str(text).expect("parses")
    }

    #[test]
    fn settings_are_checked_and_name_the_key() {
        for (text, key) in [
            (r#"redis = "http://127.0.0.1:6379""#, "cluster.redis"),
            (
                r#"redis = "redis://:hunter2@127.0.0.1:6379""#,
                "cluster.redis",
            ),
            (r#"redis = "redis://user:pw@127.0.0.1""#, "cluster.redis"),
            (r#"redis = "redis:///0""#, "cluster.redis"),
            (
                "redis = \"redis://r\"\nkey-prefix = \"a b\"",
                "cluster.key-prefix",
            ),
            (
                "redis = \"redis://r\"\ntimeout-ms = 0",
                "cluster.timeout-ms",
            ),
            (
                "redis = \"redis://r\"\ntimeout-ms = 60001",
                "cluster.timeout-ms",
            ),
        ] {
            let e = settings(text).validate().unwrap_err();
            assert!(e.contains(key), "{text}: {e}");
        }
        let ok = settings("redis = \"rediss://r.example:6380/2\"\nkey-prefix = \"team-a:warden\"");
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(ok.on_unreachable, OnUnreachable::FailClosed);
        assert!(
            toml::from_str::<ClusterSettings>("redis = \"redis://r\"\nredis-url = \"x\"").is_err()
        );
        assert!(toml::from_str::<ClusterSettings>(
            "redis = \"redis://r\"\non-unreachable = \"maybe\""
        )
        .is_err());
    }
}
