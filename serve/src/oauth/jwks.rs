//! The issuer's signing keys: its `jwks_uri` (configured, or from its
//! metadata), fetched once and again only for a key id not seen yet, at
//! most every `jwks-refresh-ms`, with bounded time and size.

use super::{OAuthSettings, Rejection};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use std::time::{Duration, Instant};

/// The largest metadata or key set read.
const MAX_DOCUMENT: usize = 1 << 20;

pub(super) struct KeySource {
    issuer: String,
    configured: Option<String>,
    client: reqwest::Client,
    refresh: Duration,
    cache: tokio::sync::RwLock<Option<JwkSet>>,
    /// One fetch at a time, and when the last one was.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

impl KeySource {
    pub(super) fn new(settings: &OAuthSettings) -> Result<KeySource, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("an HTTP client for the issuer: {e}"))?;
        Ok(KeySource {
            issuer: settings.issuer.trim_end_matches('/').to_string(),
            configured: settings.jwks_uri.clone(),
            client,
            refresh: Duration::from_millis(settings.jwks_refresh_ms),
            cache: tokio::sync::RwLock::new(None),
            fetching: tokio::sync::Mutex::new(None),
        })
    }

    /// The key `kid`, fetching the set again if it is unknown and the last
    /// fetch is old enough.
    pub(super) async fn find(&self, kid: &str) -> Result<Jwk, Rejection> {
        if let Some(k) = self.cached(kid).await {
            return Ok(k);
        }
        let mut last = self.fetching.lock().await;
        // Another request may have fetched meanwhile.
        if let Some(k) = self.cached(kid).await {
            return Ok(k);
        }
        let due = last.is_none_or(|t| t.elapsed() >= self.refresh);
        if due {
            *last = Some(Instant::now());
            match self.fetch().await {
                Ok(set) => *self.cache.write().await = Some(set),
                Err(e) => {
                    tracing::warn!("cannot fetch the issuer's keys: {e}");
                    if self.cache.read().await.is_none() {
                        return Err(Rejection::Unavailable(e));
                    }
                }
            }
        }
        drop(last);
        self.cached(kid)
            .await
            .ok_or_else(|| Rejection::Invalid(format!("key `{kid}` is not one of the issuer's")))
    }

    async fn cached(&self, kid: &str) -> Option<Jwk> {
        self.cache.read().await.as_ref()?.find(kid).cloned()
    }

    async fn fetch(&self) -> Result<JwkSet, String> {
        let uri = match &self.configured {
            Some(u) => u.clone(),
            None => self.discover().await?,
        };
        let body = self.get(&uri).await?;
        serde_json::from_slice(&body).map_err(|e| format!("{uri}: not a JWK set: {e}"))
    }

    /// The issuer's `jwks_uri`, from OpenID discovery or RFC 8414 metadata
    /// whose `issuer` is the configured one.
    async fn discover(&self) -> Result<String, String> {
        let (origin, path) = match self.issuer.split_once("://") {
            Some((scheme, rest)) => match rest.find('/') {
                Some(i) => (format!("{scheme}://{}", &rest[..i]), rest[i..].to_string()),
                None => (self.issuer.clone(), String::new()),
            },
            None => return Err(format!("issuer `{}` is not a URL", self.issuer)),
        };
        let candidates = [
            format!("{}/.well-known/openid-configuration", self.issuer),
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
        ];
        let mut why = Vec::new();
        for url in candidates {
            match self.get(&url).await {
                Ok(body) => {
                    let meta: serde_json::Value = serde_json::from_slice(&body)
                        .map_err(|e| format!("{url}: not JSON: {e}"))?;
                    let issuer = meta["issuer"]
                        .as_str()
                        .unwrap_or_default()
                        .trim_end_matches('/');
                    if issuer != self.issuer {
                        return Err(format!(
                            "{url} names issuer `{issuer}`, not `{}`",
                            self.issuer
                        ));
                    }
                    return meta["jwks_uri"]
                        .as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("{url} has no `jwks_uri`"));
                }
                Err(e) => why.push(e),
            }
        }
        Err(why.join("; "))
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut response = self
            .client
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("{url}: {e}"))? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DOCUMENT {
                return Err(format!("{url}: larger than {MAX_DOCUMENT} bytes"));
            }
        }
        Ok(body)
    }
}
