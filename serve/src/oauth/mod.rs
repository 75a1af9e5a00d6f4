//! `warden serve` as an OAuth 2.1 resource server (`[serve.oauth]`), as
//! the MCP authorization specification asks: protected resource metadata
//! (RFC 9728) naming the authorization server, and JWT access tokens
//! checked offline against the issuer's JWKS (discovered, cached, fetched
//! again for an unknown key id at a bounded rate): signature by an
//! allowed algorithm with a key of its family, `iss`, `aud` = this
//! resource (RFC 8707), `exp`/`nbf` with bounded skew, and the required
//! scopes. The principal is a configured claim.

pub(crate) mod introspect;
mod jwks;
mod ring;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `[serve.oauth]`.
///
/// ```toml
/// [serve.oauth]
/// issuer = "https://login.example.com"             # the authorization server
/// resource = "https://tools.example.com/mcp"       # this endpoint, as clients name it
/// scopes = ["mcp:tools"]                           # every token must hold these
/// ```
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OAuthSettings {
    /// The authorization server's issuer identifier (the tokens' `iss`).
    pub issuer: String,
    /// This MCP endpoint's canonical URL: the tokens' audience (`aud`) and
    /// the `resource` of its protected resource metadata.
    pub resource: String,
    /// Where the issuer's keys are; default: its metadata's `jwks_uri`
    /// (OpenID discovery, then RFC 8414).
    pub jwks_uri: Option<String>,
    /// Scopes every token must hold (403 `insufficient_scope` otherwise);
    /// also advertised as `scopes_supported`.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The claim naming the principal. Default `sub`.
    #[serde(default = "default_principal_claim")]
    pub principal_claim: String,
    /// The claim listing the caller's groups (an array of strings, or
    /// one space-separated string), kept with the principal for rules
    /// that name `groups` and for the audit log. Default `groups`.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds. Default 60.
    #[serde(default = "default_leeway_s")]
    pub leeway_s: u64,
    /// An unknown key id fetches the keys again at most this often.
    /// Default 30 000 ms.
    #[serde(default = "default_jwks_refresh_ms")]
    pub jwks_refresh_ms: u64,
    /// Opaque (non-JWT) tokens are checked at this introspection endpoint
    /// (RFC 7662); without it they are refused.
    #[serde(default)]
    pub introspection: Option<introspect::IntrospectionSettings>,
}

fn default_principal_claim() -> String {
    "sub".into()
}
fn default_groups_claim() -> String {
    "groups".into()
}
fn default_leeway_s() -> u64 {
    60
}
fn default_jwks_refresh_ms() -> u64 {
    30_000
}

impl OAuthSettings {
    /// Checks what serde cannot.
    pub(crate) fn validate(&self) -> Result<(), String> {
        for (key, url) in [("issuer", &self.issuer), ("resource", &self.resource)] {
            let ok = url.starts_with("https://") || url.starts_with("http://");
            if !ok || url.contains('#') {
                return Err(format!(
                    "at `serve.oauth.{key}`: an http(s) URL without a fragment"
                ));
            }
        }
        if self.principal_claim.is_empty() {
            return Err("at `serve.oauth.principal-claim`: must not be empty".into());
        }
        Ok(())
    }

    /// The path of this resource's metadata: RFC 9728's well-known prefix
    /// before the resource's path.
    pub(crate) fn metadata_path(&self) -> String {
        let path = resource_path(&self.resource);
        format!(
            "/.well-known/oauth-protected-resource{}",
            path.trim_end_matches('/')
        )
    }

    /// The metadata document (RFC 9728).
    pub(crate) fn metadata(&self) -> Value {
        serde_json::json!({
            "resource": self.resource,
            "authorization_servers": [self.issuer],
            "scopes_supported": self.scopes,
            "bearer_methods_supported": ["header"],
        })
    }

    /// The absolute URL of the metadata, for `WWW-Authenticate`.
    pub(crate) fn metadata_url(&self) -> String {
        let origin_end = self
            .resource
            .find("://")
            .and_then(|i| self.resource[i + 3..].find('/').map(|j| i + 3 + j))
            .unwrap_or(self.resource.len());
        format!("{}{}", &self.resource[..origin_end], self.metadata_path())
    }
}

fn resource_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("", |i| &rest[i..])
}

/// The `WWW-Authenticate` challenge of a 401: the resource metadata's URL,
/// the scopes to ask for, and `error` when a token was refused.
pub(crate) fn challenge(settings: &OAuthSettings, error: Option<&str>) -> String {
    let mut c = format!("Bearer resource_metadata=\"{}\"", settings.metadata_url());
    if !settings.scopes.is_empty() {
        c.push_str(&format!(", scope=\"{}\"", settings.scopes.join(" ")));
    }
    if let Some(e) = error {
        c.push_str(&format!(", error=\"{e}\""));
    }
    c
}

/// The challenge of a 403 for missing scopes.
pub(crate) fn scope_challenge(settings: &OAuthSettings, missing: &[String]) -> String {
    let mut scopes = settings.scopes.clone();
    scopes.extend(
        missing
            .iter()
            .filter(|m| !settings.scopes.contains(m))
            .cloned(),
    );
    format!(
        "Bearer error=\"insufficient_scope\", scope=\"{}\", resource_metadata=\"{}\"",
        scopes.join(" "),
        settings.metadata_url()
    )
}

/// Who a valid token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenIdentity {
    pub principal: String,
    pub scopes: Vec<String>,
    /// The groups its groups claim lists.
    pub groups: Vec<String>,
    /// The issuer that signed it.
    pub issuer: String,
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// 401 `invalid_token`.
    Invalid(String),
    /// 403 `insufficient_scope`, naming the scopes it lacks.
    Scope(Vec<String>),
    /// 503: the keys could not be had, so no token can be checked.
    Unavailable(String),
}

/// Most checked tokens remembered at once.
const MAX_CHECKED: usize = 4096;

/// Checks tokens for one `[serve.oauth]`.
pub(crate) struct Validator {
    settings: OAuthSettings,
    /// Tokens already checked, by their SHA-256, until they expire: a
    /// client reuses its token for many requests.
    checked: std::sync::Mutex<std::collections::HashMap<[u8; 32], (TokenIdentity, u64)>>,
    /// Why no token can be checked, if the backend or client could not
    /// be set up (every token is then refused).
    keys: Result<jwks::KeySource, String>,
    /// Opaque tokens' introspection, when configured (an error refuses
    /// every opaque token, saying why).
    introspector: Option<Result<introspect::Introspector, String>>,
}

impl Validator {
    /// A validator for `settings`; one that could not be set up refuses
    /// every token (fail closed) and says why.
    pub(crate) fn new(settings: OAuthSettings) -> Validator {
        warden::install_tls_provider();
        let keys = ring::install()
            .map_err(|e| format!("the JWT backend: {e}"))
            .and_then(|()| jwks::KeySource::new(&settings));
        if let Err(e) = &keys {
            tracing::error!("[serve.oauth] cannot check tokens, so every one is refused: {e}");
        }
        let introspector = settings
            .introspection
            .as_ref()
            .map(introspect::Introspector::new);
        if let Some(Err(e)) = &introspector {
            tracing::error!(
                "[serve.oauth] cannot introspect tokens, so opaque ones are refused: {e}"
            );
        }
        Validator {
            settings,
            keys,
            checked: Default::default(),
            introspector,
        }
    }

    pub(crate) fn settings(&self) -> &OAuthSettings {
        &self.settings
    }

    /// Checks `token` (or finds it checked and not expired); the identity
    /// it carries.
    pub(crate) async fn check(&self, token: &str) -> Result<TokenIdentity, Rejection> {
        use sha2::Digest as _;
        let key: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let now = jsonwebtoken::get_current_timestamp();
        let leeway = self.settings.leeway_s;
        {
            let mut checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
            match checked.get(&key) {
                Some((id, exp)) if now <= exp.saturating_add(leeway) => return Ok(id.clone()),
                Some(_) => {
                    checked.remove(&key);
                }
                None => {}
            }
        }
        let (id, exp) = self.verify(token).await?;
        let mut checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
        if checked.len() >= MAX_CHECKED {
            checked.retain(|_, (_, e)| now <= e.saturating_add(leeway));
            if checked.len() >= MAX_CHECKED {
                checked.clear();
            }
        }
        checked.insert(key, (id.clone(), exp));
        Ok(id)
    }

    /// Verifies `token` in full; the identity and its expiry.
    async fn verify(&self, token: &str) -> Result<(TokenIdentity, u64), Rejection> {
        let header = match jsonwebtoken::decode_header(token) {
            Ok(h) => h,
            // Not a JWS: an opaque token, for the introspection endpoint.
            Err(e) => return self.introspect(token, e).await,
        };
        let kid = header
            .kid
            .ok_or_else(|| Rejection::Invalid("the token names no key (`kid`)".into()))?;
        let keys = self
            .keys
            .as_ref()
            .map_err(|e| Rejection::Unavailable(e.clone()))?;
        let jwk = keys.find(&kid).await?;
        let alg = algorithm_of(&jwk).map_err(Rejection::Invalid)?;
        if header.alg != alg {
            return Err(Rejection::Invalid(format!(
                "signed with {:?}, but key `{kid}` is for {alg:?}",
                header.alg
            )));
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| Rejection::Invalid(e.to_string()))?;
        let mut v = Validation::new(alg);
        v.set_issuer(&[&self.settings.issuer]);
        v.set_audience(&[&self.settings.resource]);
        v.validate_nbf = true;
        v.leeway = self.settings.leeway_s;
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key, &v)
            .map_err(|e| Rejection::Invalid(e.to_string()))?;
        let exp = data.claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        Ok((self.identity(&data.claims)?, exp))
    }

    /// An opaque token, checked at the introspection endpoint; without
    /// one, refused as not a JWS (`why`).
    async fn introspect(
        &self,
        token: &str,
        why: jsonwebtoken::errors::Error,
    ) -> Result<(TokenIdentity, u64), Rejection> {
        match &self.introspector {
            None => Err(Rejection::Invalid(format!("not a JWS: {why}"))),
            Some(Err(e)) => Err(Rejection::Unavailable(e.clone())),
            Some(Ok(i)) => {
                let (claims, exp) = i.claims(token, &self.settings).await?;
                Ok((self.identity(&claims)?, exp))
            }
        }
    }

    fn identity(
        &self,
        claims: &serde_json::Map<String, Value>,
    ) -> Result<TokenIdentity, Rejection> {
        let claim = &self.settings.principal_claim;
        let principal = claims
            .get(claim)
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| Rejection::Invalid(format!("no `{claim}` claim names the caller")))?;
        let scopes = strings(claims.get("scope").or_else(|| claims.get("scp")));
        let missing: Vec<String> = self
            .settings
            .scopes
            .iter()
            .filter(|s| !scopes.contains(s))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(Rejection::Scope(missing));
        }
        Ok(TokenIdentity {
            principal: principal.to_string(),
            scopes,
            groups: strings(claims.get(&self.settings.groups_claim)),
            issuer: self.settings.issuer.clone(),
        })
    }
}

/// A claim that lists names: an array of strings, or one space-separated
/// string (at most 256 names, each at most 256 bytes, others dropped).
fn strings(claim: Option<&Value>) -> Vec<String> {
    let names: Vec<&str> = match claim {
        Some(Value::String(s)) => s.split_whitespace().collect(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    names
        .into_iter()
        .filter(|n| !n.is_empty() && n.len() <= 256)
        .take(256)
        .map(str::to_string)
        .collect()
}

/// The one algorithm a key may verify: from its type and curve, never
/// from the token. HMAC (`oct`) keys and other curves verify nothing.
fn algorithm_of(jwk: &Jwk) -> Result<Algorithm, String> {
    let alg = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        _ => {
            return Err(
                "the key is of a type no token may use (allowed: RS256, ES256, EdDSA)".into(),
            )
        }
    };
    if let Some(declared) = jwk.common.key_algorithm {
        if format!("{declared:?}") != format!("{alg:?}") {
            return Err(format!("the key is declared for {declared:?}, not {alg:?}"));
        }
    }
    Ok(alg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(resource: &str) -> OAuthSettings {
        let text = format!("issuer = \"https://login.example\"\nresource = \"{resource}\"\n");
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn the_metadata_lives_under_the_resource_path() {
        let s = settings("https://tools.example:8443/team/mcp");
        assert_eq!(
            s.metadata_path(),
            "/.well-known/oauth-protected-resource/team/mcp"
        );
        assert_eq!(
            s.metadata_url(),
            "https://tools.example:8443/.well-known/oauth-protected-resource/team/mcp"
        );
        let root = settings("https://tools.example");
        assert_eq!(
            root.metadata_path(),
            "/.well-known/oauth-protected-resource"
        );
        assert!(challenge(&s, Some("invalid_token")).contains("error=\"invalid_token\""));
    }

    #[test]
    fn bad_settings_are_named() {
        assert!(settings("tools.example/mcp")
            .validate()
            .unwrap_err()
            .contains("resource"));
        assert!(settings("https://t.example/mcp#x").validate().is_err());
        let e = toml::from_str::<OAuthSettings>(
            "issuer = \"https://a\"\nresource = \"https://b\"\naudience = \"x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("audience"), "{e}");
    }

    #[test]
    fn a_key_decides_its_algorithm_and_hmac_keys_decide_none() {
        let jwk = |v: serde_json::Value| serde_json::from_value::<Jwk>(v).unwrap();
        let ed = jwk(
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}),
        );
        assert_eq!(algorithm_of(&ed), Ok(Algorithm::EdDSA));
        let oct = jwk(serde_json::json!({"kty": "oct", "k": "c2VjcmV0"}));
        assert!(algorithm_of(&oct).is_err());
        let wrong = jwk(
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "alg": "HS256", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}),
        );
        assert!(algorithm_of(&wrong).is_err());
    }
}
