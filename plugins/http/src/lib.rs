//! Declarative HTTP capabilities.
//!
//! The host routes every capability of provider kind `:Http` (declared in
//! its config or imported from a snapshot) to `http.invoke`, with the
//! capability's provider-meta and the caller's input. The provider-meta says
//! how to build the request:
//!
//! | key | meaning |
//! |---|---|
//! | `base-url` | required, e.g. `https://api.example.com/v1` |
//! | `method` | default `GET` |
//! | `path` | template appended to the base URL: `/users/{user}/repos` |
//! | `query` | input fields sent as query parameters: `["page", "q"]`, or `{"param": "{field}"}` |
//! | `headers` | `{"accept": "application/json", "x-id": "{id}"}`; may hold `{{secret:NAME}}` |
//! | `body` | `"input"` (the whole input as JSON), a list of input fields, or `"none"`; default `"input"` for POST/PUT/PATCH |
//! | `auth-secret` | sends `authorization: Bearer {{secret:NAME}}` (`auth-scheme`, `auth-header` adjust it) |
//! | `timeout-ms` | per-request timeout |
//! | `expect-status` | accepted statuses, default any 2xx |
//! | `response-headers` | response headers copied into the output |
//! | `follow-redirects` | follow up to 5 redirects for GET/HEAD (default true); each hop is checked by the host again |
//! | `retry-non-idempotent` | allow the retry hint to retry POST/PATCH (default false) |
//!
//! The output is `{"status": 200, "headers": {...}, "body": <JSON or text>}`.
//! Retries follow the capability's `*.retry-strategy` hint: idempotent
//! methods only (unless declared), on connection failures and 5xx.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;
use std::time::Duration;
use warden_sdk::http::{Request, Response};
use warden_sdk::{log, time, Capabilities, Capability, Config, Error, Provider, ProviderInfo};

/// Most capability plans kept (more are rebuilt on use).
const MAX_PLANS: usize = 1024;

struct Http {
    /// Per capability id: its provider-meta text and the plan read from it,
    /// so a repeated call does not interpret the meta again.
    plans: HashMap<String, (Box<str>, Rc<Plan>), BuildHasherDefault<Fnv>>,
}

/// FNV-1a: the plan table's keys are capability ids from the host's
/// configuration, short and not chosen by an attacker; SipHash's setup
/// costs more than the lookup.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// `a == b`, eight bytes at a time (wasm's `memcmp` goes byte by byte).
fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let (mut wa, mut wb) = (a.chunks_exact(8), b.chunks_exact(8));
    let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap_or_default());
    (&mut wa).zip(&mut wb).all(|(x, y)| word(x) == word(y)) && wa.remainder() == wb.remainder()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Invoke {
    capability: Target,
    #[serde(default)]
    input: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Target {
    id: String,
    #[serde(rename = "provider-meta")]
    meta: Box<RawValue>,
    #[serde(default)]
    retry: Option<Retry>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
struct Retry {
    attempts: u32,
    backoff_ms: u64,
    exponential: bool,
    #[serde(default = "yes")]
    jitter: bool,
}

fn yes() -> bool {
    true
}

impl Retry {
    /// The wait before retry number `attempt` (from 1): `backoff-ms`,
    /// doubled each time if exponential, and with jitter drawn from `seed`
    /// between half and all of it.
    fn delay(&self, attempt: u32, seed: u64) -> Duration {
        let factor = if self.exponential {
            1u64 << (attempt - 1).min(16)
        } else {
            1
        };
        let full = self.backoff_ms.saturating_mul(factor);
        if !self.jitter || full < 2 {
            return Duration::from_millis(full);
        }
        // splitmix64: spreads close seeds (clock readings) apart.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let half = full / 2;
        Duration::from_millis(half + z % (full - half + 1))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    method: Option<String>,
    url: String,
    #[serde(default)]
    headers: Map<String, Value>,
    body: Option<Value>,
    #[serde(rename = "timeout-ms")]
    timeout_ms: Option<u64>,
}

fn meta_str<'a>(meta: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, Error> {
    match meta.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(Error::invalid_input(format!(
            "provider-meta `{key}` must be a string, got {other}"
        ))),
    }
}

fn meta_bool(meta: &Map<String, Value>, key: &str, default: bool) -> Result<bool, Error> {
    match meta.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(Error::invalid_input(format!(
            "provider-meta `{key}` must be true or false, got {other}"
        ))),
    }
}

/// Text of an input value for a URL or header.
fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

const SECRET_OPEN: &str = "{{secret:";

/// Refuses a secret placeholder that comes from a caller: only the
/// capability's declaration may name a secret.
fn no_placeholder_from_caller(text: &str, what: &str) -> Result<(), Error> {
    if text.contains(SECRET_OPEN) {
        return Err(Error::denied(format!(
            "{what} holds a `{SECRET_OPEN}...}}}}` placeholder: secrets are named by the capability's declaration, never by its caller"
        )));
    }
    Ok(())
}

/// Fills `{field}` from the input; `{{...}}` is left as written (secret
/// placeholders are the host's business). A placeholder that the input
/// would add, whole or pieced together from several fields, is refused.
fn render(template: &str, input: &Value, encode: bool) -> Result<String, Error> {
    let out = fill(template, input, encode)?;
    if out.matches(SECRET_OPEN).count() > template.matches(SECRET_OPEN).count() {
        return no_placeholder_from_caller(&out, &format!("the input rendered into `{template}`"))
            .map(|_| out);
    }
    Ok(out)
}

fn fill(template: &str, input: &Value, encode: bool) -> Result<String, Error> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(stripped) = after.strip_prefix("{{") {
            let end = stripped
                .find("}}")
                .ok_or_else(|| Error::invalid_input(format!("unclosed `{{{{` in `{template}`")))?;
            out.push_str(&after[..end + 4]);
            rest = &stripped[end + 2..];
            continue;
        }
        let end = after
            .find('}')
            .ok_or_else(|| Error::invalid_input(format!("unclosed `{{` in `{template}`")))?;
        let field = &after[1..end];
        let value = input.get(field).filter(|v| !v.is_null()).ok_or_else(|| {
            Error::invalid_input(format!(
                "input field `{field}` is required by the template `{template}`"
            ))
        })?;
        let text = scalar_text(value);
        out.push_str(&if encode { percent_encode(&text) } else { text });
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The input field names listed by provider-meta `key`.
fn field_names(fields: &[Value], key: &str) -> Result<Vec<String>, Error> {
    fields
        .iter()
        .map(|f| {
            f.as_str().map(str::to_string).ok_or_else(|| {
                Error::invalid_input(format!("provider-meta `{key}` lists field names"))
            })
        })
        .collect()
}

/// Query parameters from the input.
enum Query {
    /// `["page", "q"]`: these input fields, when present (a list repeats).
    Fields(Vec<String>),
    /// `{"param": "{field}"}`: each parameter from a template.
    Templates(Vec<(String, String)>),
}

/// The request body.
enum BodySpec {
    None,
    /// The whole input as JSON.
    Input,
    /// An object of these input fields.
    Fields(Vec<String>),
}

/// How the URL is built: `base` (no trailing `/`) + the `path` template +
/// the query.
struct UrlPlan {
    base: String,
    path: String,
    query: Option<Query>,
}

impl UrlPlan {
    fn new(meta: &Map<String, Value>) -> Result<UrlPlan, Error> {
        let base = meta_str(meta, "base-url")?
            .ok_or_else(|| Error::invalid_input("provider-meta `base-url` is required"))?;
        let path = meta_str(meta, "path")?.unwrap_or("").to_string();
        let query = match meta.get("query") {
            None | Some(Value::Null) => None,
            Some(Value::Array(fields)) => Some(Query::Fields(field_names(fields, "query")?)),
            Some(Value::Object(map)) => Some(Query::Templates(
                map.iter()
                    .map(|(param, template)| {
                        let t = template.as_str().ok_or_else(|| {
                            Error::invalid_input("provider-meta `query` values are templates")
                        })?;
                        Ok((param.clone(), t.to_string()))
                    })
                    .collect::<Result<_, Error>>()?,
            )),
            Some(other) => {
                return Err(Error::invalid_input(format!(
                    "provider-meta `query` must be a list or a map, got {other}"
                )))
            }
        };
        Ok(UrlPlan {
            base: base.trim_end_matches('/').to_string(),
            path,
            query,
        })
    }

    /// The URL for `input`.
    fn build(&self, input: &Value) -> Result<String, Error> {
        let path = render(&self.path, input, true)?;
        let mut url = String::with_capacity(self.base.len() + path.len() + 1);
        url.push_str(&self.base);
        if !path.is_empty() && !path.starts_with('/') {
            url.push('/');
        }
        url.push_str(&path);
        let mut params: Vec<(&str, String)> = Vec::new();
        match &self.query {
            None => {}
            Some(Query::Fields(fields)) => {
                for name in fields {
                    match input.get(name) {
                        None | Some(Value::Null) => {}
                        Some(Value::Array(items)) => {
                            params.extend(items.iter().map(|i| (name.as_str(), scalar_text(i))))
                        }
                        Some(other) => params.push((name, scalar_text(other))),
                    }
                }
            }
            Some(Query::Templates(templates)) => {
                for (param, template) in templates {
                    params.push((param, render(template, input, false)?));
                }
            }
        }
        for (i, (k, v)) in params.iter().enumerate() {
            url.push(match i {
                0 if url.contains('?') => '&',
                0 => '?',
                _ => '&',
            });
            url.push_str(&percent_encode(k));
            url.push('=');
            url.push_str(&percent_encode(v));
        }
        Ok(url)
    }
}

impl BodySpec {
    fn new(meta: &Map<String, Value>, method: &str) -> Result<BodySpec, Error> {
        Ok(match meta.get("body") {
            None | Some(Value::Null) if matches!(method, "POST" | "PUT" | "PATCH") => {
                BodySpec::Input
            }
            None | Some(Value::Null) => BodySpec::None,
            Some(Value::String(s)) if s == "input" => BodySpec::Input,
            Some(Value::String(s)) if s == "none" => BodySpec::None,
            Some(Value::Array(fields)) => BodySpec::Fields(field_names(fields, "body")?),
            Some(other) => {
                return Err(Error::invalid_input(format!(
                "provider-meta `body` must be \"input\", \"none\" or a list of fields, got {other}"
            )))
            }
        })
    }

    /// The body for `input`, as JSON.
    fn build(&self, input: &Value) -> Result<Option<Vec<u8>>, Error> {
        let bytes = match self {
            BodySpec::None => return Ok(None),
            BodySpec::Input => serde_json::to_vec(input),
            BodySpec::Fields(fields) => {
                let obj: Map<String, Value> = fields
                    .iter()
                    .filter_map(|name| Some((name.clone(), input.get(name)?.clone())))
                    .collect();
                serde_json::to_vec(&obj)
            }
        };
        bytes.map(Some).map_err(|e| Error::internal(e.to_string()))
    }
}

/// Whether `text` contains `needle` (ASCII, any case).
fn contains_ignore_case(text: &str, needle: &str) -> bool {
    text.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Appends `n` in decimal.
fn push_u16(out: &mut Vec<u8>, n: u16) {
    let mut digits = [0u8; 5];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends `s` as a JSON string.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// The output of a response: `{"status": .., "headers": {..}, "body": ..}`,
/// written here, where the response still lives. `wanted` names the headers
/// copied (`None`: all; the first value of a name). A JSON body is passed
/// through as written (checked, not rebuilt); another body becomes a string,
/// an empty one null.
fn output(resp: &Response, wanted: Option<&[String]>) -> String {
    let mut headers = std::collections::BTreeMap::new();
    match wanted {
        Some(names) => {
            for name in names {
                if let Some(v) = resp.header(name) {
                    headers.insert(name.to_ascii_lowercase(), v);
                }
            }
        }
        None => {
            for (name, v) in resp.headers.iter() {
                headers.entry(name.to_ascii_lowercase()).or_insert(v);
            }
        }
    }
    let is_json = resp
        .header("content-type")
        .is_some_and(|c| contains_ignore_case(c, "json"));
    let json = is_json
        .then(|| std::str::from_utf8(&resp.body).ok())
        .flatten()
        .filter(|text| serde_json::from_str::<&RawValue>(text).is_ok());
    let mut out = Vec::with_capacity(resp.body.len() + 48);
    out.extend_from_slice(b"{\"status\":");
    push_u16(&mut out, resp.status);
    out.extend_from_slice(b",\"headers\":{");
    for (i, (k, v)) in headers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_json_str(&mut out, k);
        out.push(b':');
        push_json_str(&mut out, v);
    }
    out.extend_from_slice(b"},\"body\":");
    match json {
        Some(text) => out.extend_from_slice(text.as_bytes()),
        None if resp.body.is_empty() && !is_json => out.extend_from_slice(b"null"),
        None => push_json_str(&mut out, &resp.text()),
    }
    out.push(b'}');
    // Only UTF-8 was written: JSON text, and a body that is valid UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Where a redirect's `Location` points, resolved against the URL that was
/// requested (RFC 3986: absolute only with a scheme of its own; `//host`
/// keeps the scheme; `/path` keeps the authority; anything else is relative
/// to the current path's directory). A `://` later in a relative reference
/// (`/next?u=http://x`) does not make it absolute.
fn resolve_location(current: &str, location: &str) -> String {
    if has_scheme(location) {
        return location.to_string();
    }
    let (scheme, rest) = current.split_once("://").unwrap_or(("http", current));
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(authority_end);
    let path = path_and_query.split(['?', '#']).next().unwrap_or("");
    if let Some(net) = location.strip_prefix("//") {
        format!("{scheme}://{net}")
    } else if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else if location.starts_with('?') {
        format!("{scheme}://{authority}{path}{location}")
    } else {
        let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        format!("{scheme}://{authority}{dir}/{location}")
    }
}

/// Whether `reference` starts with a URI scheme (`ALPHA *( ALPHA / DIGIT /
/// "+" / "-" / "." ) ":"`).
fn has_scheme(reference: &str) -> bool {
    let Some((scheme, _)) = reference.split_once(':') else {
        return false;
    };
    let mut bytes = scheme.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// How to serve one capability, read once from its provider-meta.
struct Plan {
    url: UrlPlan,
    body: BodySpec,
    method: String,
    headers: Vec<(String, String)>,
    timeout: Option<Duration>,
    expect: Vec<u16>,
    wanted: Vec<String>,
    may_retry: bool,
    follow: bool,
}

impl Plan {
    fn new(meta: Map<String, Value>) -> Result<Plan, Error> {
        let method = meta_str(&meta, "method")?
            .unwrap_or("GET")
            .to_ascii_uppercase();
        let url = UrlPlan::new(&meta)?;
        let body = BodySpec::new(&meta, &method)?;
        let mut headers: Vec<(String, String)> = Vec::new();
        if let Some(Value::Object(h)) = meta.get("headers") {
            for (k, v) in h {
                let t = v.as_str().ok_or_else(|| {
                    Error::invalid_input(format!("provider-meta header `{k}` must be a string"))
                })?;
                headers.push((k.clone(), t.to_string()));
            }
        }
        if let Some(secret) = meta_str(&meta, "auth-secret")? {
            let scheme = meta_str(&meta, "auth-scheme")?.unwrap_or("Bearer");
            let header = meta_str(&meta, "auth-header")?.unwrap_or("authorization");
            // `{{...}}` is left alone by `render`.
            let value = if scheme.is_empty() {
                format!("{{{{secret:{secret}}}}}")
            } else {
                format!("{scheme} {{{{secret:{secret}}}}}")
            };
            headers.push((header.to_string(), value));
        }
        let timeout = match meta.get("timeout-ms") {
            None | Some(Value::Null) => None,
            Some(v) => Some(Duration::from_millis(v.as_u64().ok_or_else(|| {
                Error::invalid_input("provider-meta `timeout-ms` must be an integer")
            })?)),
        };
        let expect: Vec<u16> = match meta.get("expect-status") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_u64()
                        .and_then(|n| u16::try_from(n).ok())
                        .ok_or_else(|| {
                            Error::invalid_input("provider-meta `expect-status` lists status codes")
                        })
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(Error::invalid_input(format!(
                    "provider-meta `expect-status` must be a list, got {other}"
                )))
            }
        };
        let wanted: Vec<String> = match meta.get("response-headers") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        let idempotent = matches!(
            method.as_str(),
            "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE"
        );
        let may_retry = idempotent || meta_bool(&meta, "retry-non-idempotent", false)?;
        let follow = meta_bool(&meta, "follow-redirects", true)?
            && matches!(method.as_str(), "GET" | "HEAD");
        Ok(Plan {
            url,
            body,
            method,
            headers,
            timeout,
            expect,
            wanted,
            may_retry,
            follow,
        })
    }
}

impl Http {
    /// The plan for `target`, read again only when its provider-meta changed.
    fn plan(&mut self, target: &Target) -> Result<Rc<Plan>, Error> {
        let text = target.meta.get();
        if let Some((seen, plan)) = self.plans.get(&target.id) {
            if same_text(seen, text) {
                return Ok(plan.clone());
            }
        }
        let meta: Map<String, Value> = serde_json::from_str(text)
            .map_err(|e| Error::invalid_input(format!("provider-meta must be a map: {e}")))?;
        let plan = Rc::new(Plan::new(meta)?);
        if self.plans.len() >= MAX_PLANS {
            self.plans.clear();
        }
        self.plans
            .insert(target.id.clone(), (text.into(), plan.clone()));
        Ok(plan)
    }
}

fn invoke(plan: &Plan, inv: Invoke) -> Result<String, Error> {
    let input = &inv.input;
    let method = &plan.method;
    let mut url = plan.url.build(input)?;
    let body_bytes = plan.body.build(input)?;
    let mut headers: Vec<(String, String)> = Vec::with_capacity(plan.headers.len());
    for (k, t) in &plan.headers {
        headers.push((k.clone(), render(t, input, false)?));
    }
    let timeout = plan.timeout;
    let expect = &plan.expect;
    let wanted = &plan.wanted;
    let retry = inv.capability.retry.filter(|_| plan.may_retry);
    let follow = plan.follow;

    let send = |url: &str| -> Result<Response, Error> {
        let mut req = Request::new(method.clone(), url);
        for (k, v) in &headers {
            req = req.header(k.clone(), v.clone());
        }
        if let Some(b) = &body_bytes {
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                req = req.header("content-type", "application/json");
            }
            req = req.body(b.clone());
        }
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        req.send()
    };

    let attempts = retry.map_or(1, |r| r.attempts.max(1));
    let mut redirects = 0;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = send(&url);
        let retryable = match &result {
            Ok(r) => r.status >= 500,
            Err(Error::Upstream(_)) | Err(Error::Timeout(_)) => true,
            Err(_) => false,
        };
        if retryable && attempt < attempts {
            let r = retry.expect("attempts > 1 only with a retry strategy");
            let wait = r.delay(attempt, time::monotonic_nanos());
            log::debug(format!(
                "{}: attempt {attempt} failed, retrying in {} ms",
                inv.capability.id,
                wait.as_millis()
            ));
            time::sleep(wait);
            continue;
        }
        let resp = result?;
        if follow && (300..400).contains(&resp.status) && resp.status != 304 {
            if let Some(loc) = resp.header("location") {
                redirects += 1;
                if redirects > 5 {
                    return Err(Error::upstream(format!(
                        "{}: more than 5 redirects",
                        inv.capability.id
                    )));
                }
                url = resolve_location(&url, loc);
                attempt = 0;
                continue;
            }
        }
        let ok = if expect.is_empty() {
            (200..300).contains(&resp.status)
        } else {
            expect.contains(&resp.status)
        };
        if !ok {
            let snippet: String = resp.text().chars().take(200).collect();
            return Err(Error::upstream(format!(
                "{}: unexpected status {}: {snippet}",
                inv.capability.id, resp.status
            )));
        }
        return Ok(output(&resp, Some(wanted)));
    }
}

impl Provider for Http {
    fn info() -> ProviderInfo {
        ProviderInfo::new(
            "http",
            env!("CARGO_PKG_VERSION"),
            "Declarative HTTP capabilities",
        )
    }

    fn capabilities(caps: &mut Capabilities<Self>) {
        caps.add_raw(
            Capability::new("http.invoke", "Serve an :Http capability")
                .describe("Runs a declared :Http capability (the host routes them here)")
                .input("[:map [:capability [:map [:id :string] [:provider-meta [:map [:base-url :string]]]]] [:input :any]]")
                .output("[:map [:status :int] [:headers [:map]] [:body :any]]")
                .metadata(json!({"warden": {"serves": "Http"}}))
                .effect("call:external_api"),
            |this, i: Invoke| {
                let plan = this.plan(&i.capability)?;
                invoke(&plan, i)
            },
        )
        .add_raw(
            Capability::new("http.request", "HTTP request")
                .describe("Sends one HTTP request to a granted destination and returns status, headers and body")
                .input("[:map [:url :string] [:method :string?] [:headers {:optional true} [:map]] [:body :any?] [:timeout-ms :int?]]")
                .output("[:map [:status :int] [:headers [:map]] [:body :any]]")
                .effect("call:external_api"),
            |_, r: Raw| {
                let mut req = Request::new(r.method.unwrap_or_else(|| "GET".into()).to_ascii_uppercase(), r.url);
                for (k, v) in r.headers {
                    let value = scalar_text(&v);
                    no_placeholder_from_caller(&value, &format!("header `{k}`"))?;
                    req = req.header(k, value);
                }
                if let Some(b) = r.body.filter(|b| !b.is_null()) {
                    req = req.json(&b)?;
                }
                if let Some(t) = r.timeout_ms {
                    req = req.timeout(Duration::from_millis(t));
                }
                let resp = req.send()?;
                Ok(output(&resp, None))
            },
        );
    }

    fn init(_config: Config) -> Result<Self, Error> {
        Ok(Http {
            plans: HashMap::default(),
        })
    }
}

warden_sdk::export!(Http);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs() {
        let resp = |ctype: &str, body: &[u8]| Response {
            status: 201,
            headers: warden_sdk::http::Headers::from_pairs([
                ("Content-Type", ctype),
                ("x-q", "a\"b\\c\u{1}"),
            ]),
            body: body.to_vec(),
        };
        let parse = |s: String| serde_json::from_str::<Value>(&s).unwrap();
        let wanted = ["X-Q".to_string(), "missing".to_string()];
        assert_eq!(
            parse(output(
                &resp("Application/JSON; charset=utf-8", b" {\"ok\": [1]} "),
                Some(&wanted)
            )),
            json!({"status": 201, "headers": {"x-q": "a\"b\\c\u{1}"}, "body": {"ok": [1]}})
        );
        // All headers, the first value of a repeated name.
        let mut twice = resp("text/plain", b"");
        twice.headers = warden_sdk::http::Headers::from_pairs([("a", "1"), ("B", "2"), ("a", "3")]);
        assert_eq!(
            parse(output(&twice, None))["headers"],
            json!({"a": "1", "b": "2"})
        );
        // Not JSON after all, not JSON, empty, not UTF-8.
        assert_eq!(
            parse(output(&resp("application/json", b"{\"a\":1} x"), Some(&[])))["body"],
            "{\"a\":1} x"
        );
        assert_eq!(
            parse(output(&resp("text/plain", b"hi \"there\""), Some(&[])))["body"],
            "hi \"there\""
        );
        assert_eq!(
            parse(output(&resp("text/plain", b""), Some(&[])))["body"],
            Value::Null
        );
        assert_eq!(
            parse(output(&resp("application/json", b""), Some(&[])))["body"],
            ""
        );
        assert_eq!(
            parse(output(&resp("text/plain", b"a\xffb"), Some(&[])))["body"],
            "a\u{fffd}b"
        );
        let mut r = resp("x", b"");
        for status in [0, 7, 200, 65535] {
            r.status = status;
            assert_eq!(parse(output(&r, Some(&[])))["status"], status);
        }
    }

    #[test]
    fn templates_and_urls() {
        let input = json!({"user": "a b", "page": 2, "tags": ["x", "y"], "q": null});
        let meta = json!({"base-url": "http://h/api/", "path": "/users/{user}/repos", "query": ["page", "tags", "q"]});
        assert_eq!(
            UrlPlan::new(meta.as_object().unwrap())
                .unwrap()
                .build(&input)
                .unwrap(),
            "http://h/api/users/a%20b/repos?page=2&tags=x&tags=y"
        );
        let url = |meta: Value| {
            UrlPlan::new(meta.as_object().unwrap())
                .and_then(|p| p.build(&input))
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            url(json!({"base-url": "http://h", "path": "p?x=1", "query": {"u": "{user}/{page}"}})),
            Ok("http://h/p?x=1&u=a%20b%2F2".to_string())
        );
        assert_eq!(
            url(json!({"base-url": "http://h/"})),
            Ok("http://h".to_string())
        );
        assert!(url(json!({"path": "/p"})).unwrap_err().contains("base-url"));
        assert!(url(json!({"base-url": "http://h", "query": 3}))
            .unwrap_err()
            .contains("query"));
        assert!(url(json!({"base-url": "http://h", "path": "/{nope}"}))
            .unwrap_err()
            .contains("nope"));

        let body = |meta: Value, method: &str| {
            BodySpec::new(meta.as_object().unwrap(), method)
                .and_then(|b| b.build(&input))
                .map(|b| b.map(|b| String::from_utf8(b).unwrap()))
        };
        assert_eq!(body(json!({}), "GET").unwrap(), None);
        assert_eq!(
            body(json!({}), "POST").unwrap().as_deref(),
            Some(r#"{"page":2,"q":null,"tags":["x","y"],"user":"a b"}"#)
        );
        assert_eq!(body(json!({"body": "none"}), "PUT").unwrap(), None);
        assert_eq!(
            body(json!({"body": ["user", "q", "absent"]}), "GET")
                .unwrap()
                .as_deref(),
            Some(r#"{"q":null,"user":"a b"}"#)
        );
        assert!(body(json!({"body": 1}), "GET").is_err());
        assert_eq!(
            render("Bearer {{secret:T}} {user}", &input, false).unwrap(),
            "Bearer {{secret:T}} a b"
        );
        assert!(render("{missing}", &input, false).is_err());
        // Retry delays: exact without jitter; with it, between half and all
        // of the delay, and not the same for every seed.
        let steady = Retry {
            attempts: 3,
            backoff_ms: 100,
            exponential: true,
            jitter: false,
        };
        assert_eq!(steady.delay(1, 7), Duration::from_millis(100));
        assert_eq!(steady.delay(3, 7), Duration::from_millis(400));
        let jittered = Retry {
            jitter: true,
            ..steady
        };
        let waits: std::collections::BTreeSet<_> =
            (0..50u64).map(|seed| jittered.delay(2, seed)).collect();
        assert!(waits.len() > 10, "{waits:?}");
        assert!(waits
            .iter()
            .all(|w| (100..=200).contains(&(w.as_millis() as u64))));
        // A placeholder from the input, whole or pieced together, is refused.
        let sneaky = json!({"id": "{{secret:T}}", "a": "{{sec", "b": "ret:T}}"});
        for template in ["{id}", "x-{a}{b}", "Bearer {{secret:T}} {a}{b}"] {
            let e = render(template, &sneaky, false).unwrap_err();
            assert!(matches!(e, Error::Denied(_)), "{template}: {e:?}");
        }
        assert!(render("{a}", &sneaky, false).is_ok());
        for (a, b) in [
            ("", ""),
            ("abc", "abc"),
            ("0123456789abcdefXY", "0123456789abcdefXY"),
        ] {
            assert!(same_text(a, b));
        }
        for (a, b) in [
            ("a", ""),
            ("abc", "abd"),
            ("0123456789abcdefXY", "0123456789abcdefXZ"),
            ("01234567", "01234568"),
        ] {
            assert!(!same_text(a, b));
        }
        assert_eq!(resolve_location("http://h:1/a/b?x", "/c"), "http://h:1/c");
        assert_eq!(
            resolve_location("http://h:1/a/b", "http://o:2/"),
            "http://o:2/"
        );
    }

    #[test]
    fn locations_resolve_as_rfc_3986_says() {
        let cur = "http://h:8/a/b?q=1";
        for (location, want) in [
            ("https://other/x", "https://other/x"),
            ("//other/x", "http://other/x"),
            ("/next?u=http://evil/", "http://h:8/next?u=http://evil/"),
            ("c?u=http://evil/", "http://h:8/a/c?u=http://evil/"),
            ("?page=2", "http://h:8/a/b?page=2"),
            ("c", "http://h:8/a/c"),
        ] {
            assert_eq!(resolve_location(cur, location), want, "{location}");
        }
        assert_eq!(resolve_location("http://h", "c"), "http://h/c");
    }
}
