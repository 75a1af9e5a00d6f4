//! Approval through the client: a call whose rule says `approve` asks the
//! client's user, never the model.
//!
//! - 2025-11-25: an `elicitation/create` request on the call's own channel
//!   ([`Elicit`]).
//! - 2026-07-28: an `input_required` result whose `requestState` is
//!   authenticated here ([`States`]): HMAC-SHA256 over the principal, the
//!   tool, the exact arguments, an expiry and a nonce. The state is usable
//!   once; the client's answer counts only together with it.

use crate::protocol::RpcError;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use warden::{Approval, ApprovalRequest, Approver};

/// The key of the one input request an approval asks.
pub(crate) const INPUT_KEY: &str = "warden-approval";
/// Redeemed states remembered at most (each until it expires).
const MAX_REDEEMED: usize = 100_000;

/// The elicitation that asks the user about one call.
pub(crate) fn elicitation(tool: &str, rule: &str, args: &Value) -> Value {
    let mut shown = args.to_string();
    if shown.len() > 2000 {
        let cut = (0..=2000)
            .rev()
            .find(|i| shown.is_char_boundary(*i))
            .unwrap_or(0);
        shown.truncate(cut);
        shown.push_str("...");
    }
    json!({
        "mode": "form",
        "message": format!("Warden asks: may the agent call `{tool}` (policy rule `{rule}`) with these arguments?\n{shown}"),
        "requestedSchema": {
            "type": "object",
            "properties": {
                "approve": {
                    "type": "boolean",
                    "title": "Approve this call",
                    "description": format!("Allow this one call of `{tool}`"),
                }
            },
            "required": ["approve"],
        },
    })
}

/// Reads the user's answer to [`elicitation`]: approved only on `accept`
/// with `approve: true`.
pub(crate) fn answer(result: &Value) -> Approval {
    match result.get("action").and_then(Value::as_str) {
        Some("accept") if result.pointer("/content/approve") == Some(&Value::Bool(true)) => {
            Approval::Approve
        }
        Some("accept") => Approval::Deny("the user did not approve it".into()),
        Some("decline") => Approval::Deny("the user declined it".into()),
        Some("cancel") => Approval::Deny("the user dismissed the request".into()),
        _ => {
            Approval::Deny("the client's answer to the approval request was not understood".into())
        }
    }
}

/// Sends a request to the client and waits for its answer.
pub(crate) trait BackChannel: Send + Sync {
    fn request<'a>(
        &'a self,
        method: &'a str,
        params: Value,
    ) -> Pin<Box<dyn Future<Output = Result<Value, String>> + Send + 'a>>;
}

/// Asks through a 2025-11-25 client's elicitation.
pub(crate) struct Elicit {
    pub channel: Arc<dyn BackChannel>,
    pub timeout: Duration,
    pub tool: String,
}

impl Approver for Elicit {
    fn approve<'a>(
        &'a self,
        request: &'a ApprovalRequest,
    ) -> Pin<Box<dyn Future<Output = Approval> + Send + 'a>> {
        Box::pin(async move {
            let params = elicitation(&self.tool, &request.rule, &request.input);
            let asked = self.channel.request("elicitation/create", params);
            match tokio::time::timeout(self.timeout, asked).await {
                Ok(Ok(result)) => answer(&result),
                Ok(Err(e)) => Approval::Deny(format!("the approval request failed: {e}")),
                Err(_) => Approval::Deny(format!(
                    "the user did not answer within {} s",
                    self.timeout.as_secs()
                )),
            }
        })
    }
}

/// An answer decided before the call (from a redeemed `requestState`, or a
/// refusal for a client that cannot ask).
pub(crate) struct Decided(pub Approval);

impl Approver for Decided {
    fn approve<'a>(
        &'a self,
        _request: &'a ApprovalRequest,
    ) -> Pin<Box<dyn Future<Output = Approval> + Send + 'a>> {
        Box::pin(std::future::ready(self.0.clone()))
    }
}

/// Defers the question to a 2026-07-28 client's user: admission records
/// the round and the call does not run; the server then answers
/// `input_required` with what was asked (see
/// [`asked`](AskLater::asked)).
#[derive(Default)]
pub(crate) struct AskLater {
    asked: Mutex<Option<Asked>>,
}

/// What a deferred call asks the user about: the rule and the (validated)
/// arguments.
pub(crate) struct Asked {
    pub rule: String,
    pub input: Value,
}

impl AskLater {
    /// The question, once admission has deferred the call.
    pub(crate) fn asked(&self) -> Option<Asked> {
        self.asked.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl Approver for AskLater {
    fn approve<'a>(
        &'a self,
        request: &'a ApprovalRequest,
    ) -> Pin<Box<dyn Future<Output = Approval> + Send + 'a>> {
        *self.asked.lock().unwrap_or_else(|e| e.into_inner()) = Some(Asked {
            rule: request.rule.clone(),
            input: request.input.clone(),
        });
        Box::pin(std::future::ready(Approval::Deferred(
            "the client's user is asked (input_required); the call runs when the client sends the answer".into(),
        )))
    }
}

/// Issues and redeems `requestState` values.
pub(crate) struct States {
    keys: StateKeys,
    ttl: Duration,
    /// Redeemed nonces, until their expiry (unix ms).
    redeemed: Mutex<HashMap<[u8; 16], u64>>,
}

/// The keys that authenticate `requestState` values: states are issued
/// with `current` and accepted under either (a rotation's old key stays
/// `previous` until the states it issued expire).
#[derive(Clone)]
pub(crate) struct StateKeys {
    pub current: [u8; 32],
    pub previous: Option<[u8; 32]>,
}

impl StateKeys {
    /// A key of this process alone (no replica accepts its states).
    pub(crate) fn random() -> StateKeys {
        StateKeys {
            current: random(),
            previous: None,
        }
    }

    /// The key a configured secret's value stands for.
    pub(crate) fn derive(secret: &str) -> [u8; 32] {
        hmac(&[0u8; 32], &[b"warden-approval-key-v1", secret.as_bytes()])
    }
}

/// A `requestState` whose authentication and expiry were checked; still
/// to be used up ([`States::use_up`]).
pub(crate) struct Checked {
    nonce: [u8; 16],
    expiry: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).expect("the system's random source works");
    b
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// HMAC-SHA256 over `parts`, each prefixed with its length (so no two lists
/// of parts give the same message).
fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    hmac_with(key, |inner| {
        for p in parts {
            inner.update((p.len() as u64).to_be_bytes());
            inner.update(p);
        }
    })
}

/// HMAC-SHA256 (RFC 2104) of the message `feed` writes.
fn hmac_with(key: &[u8; 32], feed: impl FnOnce(&mut Sha256)) -> [u8; 32] {
    let mut inner_key = [0x36u8; 64];
    let mut outer_key = [0x5cu8; 64];
    for (i, k) in key.iter().enumerate() {
        inner_key[i] ^= k;
        outer_key[i] ^= k;
    }
    let mut inner = Sha256::new();
    inner.update(inner_key);
    feed(&mut inner);
    let mut outer = Sha256::new();
    outer.update(outer_key);
    outer.update(inner.finalize());
    outer.finalize().into()
}

impl States {
    pub(crate) fn new(ttl: Duration, keys: StateKeys) -> Self {
        States {
            keys,
            ttl,
            redeemed: Mutex::new(HashMap::new()),
        }
    }

    fn mac(
        key: &[u8; 32],
        principal: &str,
        tool: &str,
        args: &Value,
        expiry: u64,
        nonce: &[u8],
    ) -> [u8; 32] {
        let mut text = String::new();
        warden::audit::signing::canonical_json(args, &mut text);
        let digest = Sha256::digest(text.as_bytes());
        hmac(
            key,
            &[
                b"warden-approval-v1",
                principal.as_bytes(),
                tool.as_bytes(),
                &digest,
                &expiry.to_be_bytes(),
                nonce,
            ],
        )
    }

    /// A state for one approval of `tool` with exactly `args` by `principal`.
    pub(crate) fn issue(&self, principal: &str, tool: &str, args: &Value) -> String {
        let expiry = now_ms() + self.ttl.as_millis() as u64;
        let nonce: [u8; 16] = random();
        let mac = Self::mac(&self.keys.current, principal, tool, args, expiry, &nonce);
        format!("v1.{expiry}.{}.{}", hex(&nonce), hex(&mac))
    }

    /// Checks a state the client sent back: its form, that this server (or
    /// a replica with the same key) issued it for this principal, tool and
    /// arguments, and that it has not expired. Then [`use_up`](Self::use_up).
    pub(crate) fn check(
        &self,
        state: &str,
        principal: &str,
        tool: &str,
        args: &Value,
    ) -> Result<Checked, RpcError> {
        let parts: Vec<&str> = state.split('.').collect();
        let [version, expiry, nonce, mac] = parts[..] else {
            return Err(refused("malformed"));
        };
        let (Ok(expiry), Some(nonce), Some(mac)) =
            (expiry.parse::<u64>(), unhex(nonce), unhex(mac))
        else {
            return Err(refused("malformed"));
        };
        if version != "v1" || nonce.len() != 16 || mac.len() != 32 {
            return Err(refused("malformed"));
        }
        let matches = |key: &[u8; 32]| {
            let expected = Self::mac(key, principal, tool, args, expiry, &nonce);
            // Constant time: every byte is compared.
            expected.iter().zip(&mac).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
        };
        let previous = self.keys.previous.as_ref().is_some_and(matches);
        if !matches(&self.keys.current) && !previous {
            return Err(refused(
                "it was not issued by this server for this client, tool and arguments",
            ));
        }
        if now_ms() > expiry {
            return Err(refused(
                "it has expired; call the tool again to be asked anew",
            ));
        }
        let nonce: [u8; 16] = nonce.try_into().expect("16 bytes");
        Ok(Checked { nonce, expiry })
    }

    /// Uses a checked state up: once across the cluster's replicas with
    /// `cluster` (`[cluster]`), else once in this process. While Redis does
    /// not answer, `on-unreachable` decides: refused, or once here.
    pub(crate) async fn use_up(
        &self,
        checked: Checked,
        cluster: Option<&warden::cluster::Cluster>,
    ) -> Result<(), RpcError> {
        let Some(cluster) = cluster else {
            return self.use_here(&checked);
        };
        let left = checked.expiry.saturating_sub(now_ms()).max(1);
        let name = format!("approval:{}", hex(&checked.nonce));
        match cluster.claim_once(&name, Duration::from_millis(left)).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(refused("it has been used already")),
            Err(e) => match cluster.mode() {
                warden::cluster::OnUnreachable::FailOpen => self.use_here(&checked),
                warden::cluster::OnUnreachable::FailClosed => Err(refused(&format!(
                    "whether another replica used it cannot be checked ({e}; cluster.on-unreachable = fail-closed)"
                ))),
            },
        }
    }

    /// Remembers a checked state's nonce here until it expires.
    fn use_here(&self, checked: &Checked) -> Result<(), RpcError> {
        let now = now_ms();
        let mut redeemed = self.redeemed.lock().unwrap_or_else(|e| e.into_inner());
        redeemed.retain(|_, until| *until >= now);
        if redeemed.len() >= MAX_REDEEMED {
            return Err(refused("too many approvals are in use; try again later"));
        }
        if redeemed.insert(checked.nonce, checked.expiry).is_some() {
            return Err(refused("it has been used already"));
        }
        Ok(())
    }
}

/// A refused `requestState`, saying why.
fn refused(why: &str) -> RpcError {
    RpcError::invalid_params(format!("requestState refused: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    impl States {
        /// Checks and uses up a state in this process.
        fn redeem(
            &self,
            state: &str,
            principal: &str,
            tool: &str,
            args: &Value,
        ) -> Result<(), RpcError> {
            self.use_here(&self.check(state, principal, tool, args)?)
        }
    }

    fn keyed(key: &str, previous: Option<&str>) -> States {
        let keys = StateKeys {
            current: StateKeys::derive(key),
            previous: previous.map(StateKeys::derive),
        };
        States::new(Duration::from_secs(60), keys)
    }

    #[test]
    fn replicas_with_one_key_accept_each_others_states_and_a_rotation_keeps_old_ones() {
        let args = json!({"path": "a"});
        let issued = keyed("first-key-0123456789abcdef0123456789", None).issue("a", "t", &args);
        let replica = keyed("first-key-0123456789abcdef0123456789", None);
        assert!(replica.redeem(&issued, "a", "t", &args).is_ok());
        let rotated = keyed(
            "second-key-0123456789abcdef012345678",
            Some("first-key-0123456789abcdef0123456789"),
        );
        assert!(rotated.redeem(&issued, "a", "t", &args).is_ok());
        let forgotten = keyed("second-key-0123456789abcdef012345678", None);
        assert!(forgotten.redeem(&issued, "a", "t", &args).is_err());
    }

    #[test]
    fn a_state_is_bound_and_usable_once() {
        let states = States::new(Duration::from_secs(60), StateKeys::random());
        let args = json!({"b": 1, "a": [true, {"y": 2, "x": 1}]});
        let same = json!({"a": [true, {"x": 1, "y": 2}], "b": 1});
        let s = states.issue("alice", "files.delete", &args);
        assert!(states.redeem(&s, "bob", "files.delete", &args).is_err());
        assert!(states.redeem(&s, "alice", "files.write", &args).is_err());
        assert!(states
            .redeem(&s, "alice", "files.delete", &json!({"b": 2}))
            .is_err());
        let mut forged = s.clone();
        forged.replace_range(3..4, if &s[3..4] == "9" { "8" } else { "9" });
        assert!(states
            .redeem(&forged, "alice", "files.delete", &args)
            .is_err());
        states.redeem(&s, "alice", "files.delete", &same).unwrap();
        let again = states
            .redeem(&s, "alice", "files.delete", &args)
            .unwrap_err();
        assert!(again.message.contains("used already"), "{}", again.message);
        let other = States::new(Duration::from_secs(60), StateKeys::random());
        assert!(other
            .redeem(&states.issue("a", "t", &args), "a", "t", &args)
            .is_err());
        let expired = States::new(Duration::ZERO, StateKeys::random());
        let s = expired.issue("a", "t", &args);
        std::thread::sleep(Duration::from_millis(5));
        assert!(expired
            .redeem(&s, "a", "t", &args)
            .unwrap_err()
            .message
            .contains("expired"));
    }

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        // A key shorter than the block is zero-padded, as ours are.
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let mac = hmac_with(&key, |h| h.update(b"what do ya want for nothing?"));
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_ne!(hmac(&key, &[b"ab", b"c"]), hmac(&key, &[b"a", b"bc"]));
    }

    #[test]
    fn answers_are_read_strictly() {
        assert_eq!(
            answer(&json!({"action": "accept", "content": {"approve": true}})),
            Approval::Approve
        );
        for a in [
            json!({"action": "accept", "content": {"approve": false}}),
            json!({"action": "accept", "content": {"approve": "true"}}),
            json!({"action": "decline"}),
            json!({"action": "cancel"}),
            json!({}),
        ] {
            assert!(matches!(answer(&a), Approval::Deny(_)), "{a}");
        }
    }
}
