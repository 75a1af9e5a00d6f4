//! Opaque access tokens, checked at the authorization server's
//! introspection endpoint (RFC 7662): `[serve.oauth] introspection`. The
//! answer must say `active`, name this resource in `aud` and the issuer in
//! `iss` (when it gives one), and carry an `exp` not past; the identity is
//! read from it as from a JWT's claims. The caller remembers the answer
//! until `exp` (`Validator::check`), so a token is introspected once.

use super::{OAuthSettings, Rejection};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// The largest answer read.
const MAX_ANSWER: usize = 64 << 10;

/// `[serve.oauth] introspection`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IntrospectionSettings {
    /// The introspection endpoint.
    pub endpoint: String,
    /// This server's client id there.
    pub client_id: String,
    /// A secret of `[secrets]` holding the client's secret (HTTP Basic);
    /// none for a public client.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// That secret's value, read with the configuration.
    #[serde(skip)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    pub(crate) secret_value: Option<Hidden>,
}

/// A value kept out of `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Hidden(pub(crate) String);

impl std::fmt::Debug for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<hidden>")
    }
}

/// Asks the introspection endpoint about tokens.
pub(super) struct Introspector {
    settings: IntrospectionSettings,
    client_secret: Option<String>,
    http: reqwest::Client,
}

impl Introspector {
    pub(super) fn new(settings: &IntrospectionSettings) -> Result<Introspector, String> {
        if settings.client_secret.is_some() && settings.secret_value.is_none() {
            return Err("the introspection client's secret was not read".into());
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("an HTTP client for introspection: {e}"))?;
        Ok(Introspector {
            settings: settings.clone(),
            client_secret: settings.secret_value.clone().map(|h| h.0),
            http,
        })
    }

    /// The claims of an active token meant for this resource, and its
    /// expiry.
    pub(super) async fn claims(
        &self,
        token: &str,
        oauth: &OAuthSettings,
    ) -> Result<(serde_json::Map<String, Value>, u64), Rejection> {
        let answer = self.ask(token).await?;
        check(&answer, oauth)?;
        let exp = answer.get("exp").and_then(Value::as_u64).unwrap_or(0);
        Ok((answer, exp))
    }

    async fn ask(&self, token: &str) -> Result<serde_json::Map<String, Value>, Rejection> {
        let s = &self.settings;
        let form = [("token", token), ("token_type_hint", "access_token")];
        let client = warden::oauth_form::Client {
            id: &s.client_id,
            secret: self.client_secret.as_deref(),
        };
        let unavailable =
            |e: String| Rejection::Unavailable(format!("introspection at {}: {e}", s.endpoint));
        let (status, body) =
            warden::oauth_form::post(&self.http, &s.endpoint, &form, client, MAX_ANSWER)
                .await
                .map_err(unavailable)?;
        if !status.is_success() {
            return Err(unavailable(format!("HTTP {status}")));
        }
        serde_json::from_slice(&body).map_err(|e| unavailable(format!("not JSON: {e}")))
    }
}

/// What RFC 7662 and this resource require of an answer.
fn check(answer: &serde_json::Map<String, Value>, oauth: &OAuthSettings) -> Result<(), Rejection> {
    let invalid = |why: &str| Err(Rejection::Invalid(format!("introspection: {why}")));
    if answer.get("active") != Some(&Value::Bool(true)) {
        return invalid("the token is not active");
    }
    if let Some(iss) = answer.get("iss") {
        if iss.as_str() != Some(oauth.issuer.as_str()) {
            return invalid("issued by another issuer");
        }
    }
    let audience_ok = match answer.get("aud") {
        Some(Value::String(a)) => *a == oauth.resource,
        Some(Value::Array(all)) => all.iter().any(|a| a.as_str() == Some(&oauth.resource)),
        _ => false,
    };
    if !audience_ok {
        return invalid("the token is not for this resource (`aud`)");
    }
    let now = jsonwebtoken::get_current_timestamp();
    let leeway = oauth.leeway_s;
    match answer.get("exp").and_then(Value::as_u64) {
        None => return invalid("no `exp`"),
        Some(exp) if exp.saturating_add(leeway) < now => return invalid("expired"),
        Some(_) => {}
    }
    if let Some(nbf) = answer.get("nbf").and_then(Value::as_u64) {
        if nbf > now.saturating_add(leeway) {
            return invalid("not yet valid");
        }
    }
    Ok(())
}
