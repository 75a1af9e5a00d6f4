//! Token exchange (RFC 8693) for `[secrets.NAME] exchange`: before a call
//! of a plugin granted such a secret runs, the caller's access token is
//! exchanged at the authorization server for one meant for the upstream
//! audience, and kept for that call only ([`CallTokens`]); egress
//! substitutes it where the secret is bound, and cuts it out of every
//! response the call's requests get. The caller's own token is never sent
//! anywhere but the token endpoint.
//!
//! Exchanged tokens are cached by the SHA-256 of the caller's token until
//! shortly before they expire (bounded), so a caller's calls exchange once.

use crate::config::TokenExchange;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Exchanged tokens remembered per secret at most.
const MAX_CACHED: usize = 4096;
/// Default `exchange.timeout-ms`.
const DEFAULT_TIMEOUT_MS: u64 = 5_000;
/// The longest answer read from the token endpoint.
const MAX_ANSWER: usize = 64 << 10;
/// A token is used until this long before it expires.
const MARGIN: Duration = Duration::from_secs(10);
/// How long a token without `expires_in` is kept.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);

const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

/// One exchange secret: where and how its tokens are had.
pub(crate) struct Exchanger {
    name: String,
    settings: TokenExchange,
    client_secret: Option<String>,
    http: reqwest::Client,
    cache: Mutex<HashMap<[u8; 32], (String, Instant)>>,
}

impl std::fmt::Debug for Exchanger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchanger")
            .field("name", &self.name)
            .field("token_endpoint", &self.settings.token_endpoint)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Answer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    token_type: Option<String>,
}

#[derive(Deserialize)]
struct Refusal {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl Exchanger {
    /// For secret `name`; `client_secret` is the value of the secret its
    /// settings name.
    pub(crate) fn new(
        name: &str,
        settings: &TokenExchange,
        client_secret: Option<String>,
    ) -> Result<Exchanger, String> {
        let tls = crate::tls::client_config(None)?;
        let timeout = Duration::from_millis(settings.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS));
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Exchanger {
            name: name.to_string(),
            settings: settings.clone(),
            client_secret,
            http,
            cache: Mutex::default(),
        })
    }

    /// The secret's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// A token for the upstream in exchange for `subject` (the caller's).
    pub(crate) async fn token_for(&self, subject: &str) -> Result<String, String> {
        let key: [u8; 32] = Sha256::digest(subject.as_bytes()).into();
        if let Some(token) = self.cached(&key) {
            return Ok(token);
        }
        let (token, lifetime) = self.exchange(subject).await?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        cache.retain(|_, (_, until)| *until > now);
        if cache.len() < MAX_CACHED {
            cache.insert(key, (token.clone(), now + lifetime.saturating_sub(MARGIN)));
        }
        Ok(token)
    }

    fn cached(&self, key: &[u8; 32]) -> Option<String> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(key)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(t, _)| t.clone())
    }

    /// One request to the token endpoint.
    async fn exchange(&self, subject: &str) -> Result<(String, Duration), String> {
        let s = &self.settings;
        let mut form = vec![
            ("grant_type", GRANT),
            ("subject_token", subject),
            ("subject_token_type", ACCESS_TOKEN),
            ("requested_token_type", ACCESS_TOKEN),
            ("audience", s.audience.as_str()),
            ("resource", s.audience.as_str()),
        ];
        if let Some(scope) = &s.scope {
            form.push(("scope", scope));
        }
        let client = crate::oauth_form::Client {
            id: &s.client_id,
            secret: self.client_secret.as_deref(),
        };
        let at = &s.token_endpoint;
        let (status, body) = crate::oauth_form::post(&self.http, at, &form, client, MAX_ANSWER)
            .await
            .map_err(|e| format!("the token exchange at {at} failed: {e}"))?;
        if !status.is_success() {
            let why = serde_json::from_slice::<Refusal>(&body)
                .map(|r| match r.error_description {
                    Some(d) => format!("{}: {d}", r.error),
                    None => r.error,
                })
                .unwrap_or_else(|_| format!("HTTP {status}"));
            return Err(format!("the token exchange at {at} was refused ({why})"));
        }
        let answer: Answer = serde_json::from_slice(&body)
            .map_err(|e| format!("the token exchange at {at} answered no token ({e})"))?;
        if answer
            .token_type
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("bearer") && !t.eq_ignore_ascii_case("N_A"))
        {
            return Err(format!(
                "the token exchange at {at} issued a token of type {:?}, not a bearer token",
                answer.token_type.unwrap_or_default()
            ));
        }
        let lifetime = answer
            .expires_in
            .map_or(DEFAULT_LIFETIME, Duration::from_secs);
        Ok((answer.access_token, lifetime))
    }
}

/// One call's tokens: each exchange secret's name and its token, or why
/// there is none.
type Tokens = Vec<(String, Result<String, String>)>;

/// The exchanged tokens of the calls running now, by call id.
#[derive(Default)]
pub(crate) struct CallTokens {
    calls: Mutex<HashMap<Box<str>, Tokens>>,
}

impl CallTokens {
    /// The token of secret `name` for call `call_id`.
    pub(crate) fn get(&self, call_id: &str, name: &str) -> Result<String, String> {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls
            .get(call_id)
            .and_then(|t| t.iter().find(|(n, _)| n == name))
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| Err(format!("secret `{name}` was not exchanged for this call")))
    }

    /// Every token of call `call_id` (to cut out of its responses).
    pub(crate) fn values(&self, call_id: &str) -> Vec<String> {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls
            .get(call_id)
            .map(|t| t.iter().filter_map(|(_, t)| t.clone().ok()).collect())
            .unwrap_or_default()
    }

    fn put(&self, call_id: &str, tokens: Tokens) {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(call_id.into(), tokens);
    }

    fn forget(&self, call_id: &str) {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(call_id);
    }
}

/// A call's exchanged tokens, forgotten when it is dropped (the call ended).
pub(crate) struct Exchanged {
    tokens: Arc<CallTokens>,
    call_id: Box<str>,
}

impl Drop for Exchanged {
    fn drop(&mut self) {
        self.tokens.forget(&self.call_id);
    }
}

/// Exchanges `subject` (the caller's token, if any) at each of
/// `exchangers` for call `call_id`; a failure is kept as the reason the
/// secret cannot be sent.
pub(crate) async fn for_call(
    exchangers: &[Arc<Exchanger>],
    tokens: &Arc<CallTokens>,
    call_id: &str,
    subject: Option<&str>,
) -> Exchanged {
    let mut got = Vec::with_capacity(exchangers.len());
    for x in exchangers {
        let token = match subject {
            Some(subject) => x.token_for(subject).await,
            None => Err(format!(
                "secret `{}` is the caller's OAuth access token exchanged for the upstream, \
                 and this call came with none",
                x.name()
            )),
        };
        if let Err(why) = &token {
            tracing::warn!(secret = %x.name(), "{why}");
        }
        got.push((x.name().to_string(), token));
    }
    tokens.put(call_id, got);
    Exchanged {
        tokens: tokens.clone(),
        call_id: call_id.into(),
    }
}
