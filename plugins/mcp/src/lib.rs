//! The MCP provider: each configured Model Context Protocol server's tools
//! become capabilities `mcp.<server>.<tool>`, served in pooled sessions.
//!
//! Configuration (`[plugins.mcp.config]`):
//!
//! ```toml
//! [plugins.mcp.config.servers.demo]
//! url = "http://127.0.0.1:8000/mcp"
//! auth-secret = "DEMO_TOKEN"          # optional: bearer token, by secret name
//! timeout-ms = 10000                  # optional: the longest wait for the
//!                                     # server's next bytes (an idle timeout;
//!                                     # the plugin's `limits.timeout-ms`
//!                                     # bounds a whole call)
//! tools = { allow = ["*"], deny = ["admin_*"] }   # optional globs on tool names
//! retry = { attempts = 3, backoff-ms = 200 }   # optional: for read-only or
//!                                     # idempotent tools when the server is unreachable
//! protocol = "auto"                   # optional: "auto" (2026-07-28, else the
//!                                     # handshake), "2026-07-28", "2025-11-25"
//! ```
//!
//! A server that keeps sessions (a 2025-era server that gives a session id)
//! has its tools served in pooled sessions, one per caller; the tools of a
//! stateless server (2026-07-28, or a 2025-era server without session ids)
//! are called directly.
//!
//! `transport = "wasi-http"` (top level) sends through `wasi:http` instead of
//! the host's whole-message `http-client` import.
//!
//! Every request goes through the host's egress policy: grant the server's
//! origin in `grants.network` and the secret in `grants.secrets`.

mod client;
mod federation;
mod registries;
mod remote_state;
mod sse;
mod tasks;
mod wire;

use client::{Client, Endpoint, Era};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use warden_sdk::{
    Capabilities, Capability, Config, Error, Provider, ProviderInfo, SessionConfig, Sessions,
};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "kebab-case")]
struct McpConfig {
    #[serde(default)]
    servers: BTreeMap<String, ServerConfig>,
    /// Warden services found by registry URL or DNS-SD (`registries`).
    #[serde(default)]
    discovery: registries::DiscoveryConfig,
    /// `host` (default): the host's `http-client` import; `wasi-http`:
    /// `wasi:http`. Both go through the same egress policy.
    #[serde(default)]
    transport: Transport,
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum Transport {
    #[default]
    Host,
    WasiHttp,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ServerConfig {
    /// The server's MCP endpoint (for a Warden service, or `urls`).
    #[serde(default)]
    url: String,
    /// A Warden service's replicas (`marketplace = true` only).
    #[serde(default)]
    urls: Vec<String>,
    /// A Warden service: its published marketplace is discovered, its
    /// capabilities served as `:RemoteRTFS` (see `federation`).
    #[serde(default)]
    marketplace: bool,
    /// The Ed25519 public key (PEM) the marketplace must be signed with.
    marketplace_key: Option<String>,
    /// How long a Warden service's replica that did not answer is left
    /// out (default 5000).
    back_off_ms: Option<u64>,
    auth_secret: Option<String>,
    timeout_ms: Option<u64>,
    #[serde(default)]
    tools: ToolFilter,
    #[serde(default)]
    protocol: Protocol,
    /// A retry hint for the server's read-only or idempotent tools
    /// (`{ attempts = 3, backoff-ms = 200 }`): kept as their
    /// `mcp.retry-strategy` metadata, which the host honours when the
    /// server cannot be reached.
    retry: Option<Value>,
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    #[default]
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "2026-07-28")]
    Modern,
    #[serde(rename = "2025-11-25")]
    Legacy,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ToolFilter {
    /// Globs; empty means every tool.
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
}

impl ToolFilter {
    fn admits(&self, tool: &str) -> bool {
        (self.allow.is_empty() || self.allow.iter().any(|g| glob(g, tool)))
            && !self.deny.iter().any(|g| glob(g, tool))
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

struct Mcp {
    servers: BTreeMap<String, ServerConfig>,
    /// The servers that are Warden services (`marketplace = true`).
    services: BTreeMap<String, federation::Service>,
    transport: Transport,
    /// Clients of stateless servers, for direct calls (no per-caller state).
    direct: BTreeMap<String, Client>,
}

impl Mcp {
    fn endpoint(&self, name: &str) -> Option<Endpoint> {
        self.servers.get(name).map(|s| Endpoint {
            name: name.to_string(),
            url: s.url.clone(),
            auth_secret: s.auth_secret.clone(),
            timeout: s.timeout_ms.map(Duration::from_millis),
            wasi_http: self.transport == Transport::WasiHttp,
            era: match s.protocol {
                Protocol::Auto => Era::Auto,
                Protocol::Modern => Era::Modern,
                Protocol::Legacy => Era::Legacy,
            },
        })
    }

    /// The server and tool a discovered capability id names.
    fn split_id<'a>(&self, capability: &'a str) -> Option<(String, &'a str)> {
        let rest = capability.strip_prefix("mcp.")?;
        let names = self.servers.keys().chain(self.services.keys());
        names.into_iter().find_map(|s| {
            rest.strip_prefix(s.as_str())
                .and_then(|t| t.strip_prefix('.'))
                .map(|tool| (s.clone(), tool))
        })
    }

    fn tools_of(&self, name: &str) -> Result<Vec<Capability>, Error> {
        let server = &self.servers[name];
        let mut client = Client::connect(self.endpoint(name).expect("configured"))?;
        let tools = client.list_tools();
        let keeps_session = client.keeps_session();
        let protocol = client.protocol().to_string();
        client.close();
        let mut caps = Vec::new();
        for tool in tools? {
            let Some(tool_name) = tool.get("name").and_then(Value::as_str) else {
                continue;
            };
            if !server.tools.admits(tool_name) {
                continue;
            }
            caps.push(capability(
                name,
                server,
                tool_name,
                &tool,
                keeps_session,
                &protocol,
            ));
        }
        Ok(caps)
    }
}

/// The capability for one tool.
fn capability(
    server: &str,
    config: &ServerConfig,
    tool_name: &str,
    tool: &Value,
    keeps_session: bool,
    protocol: &str,
) -> Capability {
    let text = |k: &str| {
        tool.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let title = match text("title") {
        t if t.is_empty() => tool_name.to_string(),
        t => t,
    };
    let schema = |k: &str| match tool.get(k) {
        Some(s @ Value::Object(_)) => s.to_string(),
        _ => ":any".to_string(),
    };
    let mut meta = Map::new();
    meta.insert("server-url".into(), json!(config.url));
    meta.insert("tool-name".into(), json!(tool_name));
    if let Some(secret) = &config.auth_secret {
        meta.insert("auth-secret".into(), json!(secret));
    }
    let mut mcp = json!({
        "requires-session": keeps_session,
        "protocol": protocol,
        "server": server,
        "server-url": config.url,
        "tool-name": tool_name,
    });
    // The tool's annotations, kept as metadata (`mcp.annotations.read-only-hint`,
    // ...): `warden serve` passes them on to its own clients.
    let mut annotations = Map::new();
    for (wire, key) in [
        ("readOnlyHint", "read-only-hint"),
        ("destructiveHint", "destructive-hint"),
        ("idempotentHint", "idempotent-hint"),
        ("openWorldHint", "open-world-hint"),
    ] {
        if let Some(b) = tool
            .pointer(&format!("/annotations/{wire}"))
            .and_then(Value::as_bool)
        {
            annotations.insert(key.into(), json!(b));
        }
    }
    if !annotations.is_empty() {
        mcp["annotations"] = Value::Object(annotations);
    }
    if let Some(r) = &config.retry {
        mcp["retry-strategy"] = r.clone();
    }
    // Its icons (each with a `src`), a few at most: `warden serve` passes
    // them on.
    let icons: Vec<Value> = tool
        .get("icons")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|i| i.get("src").is_some_and(Value::is_string))
        .take(8)
        .cloned()
        .collect();
    if !icons.is_empty() {
        mcp["icons"] = Value::Array(icons);
    }
    if let Some(t) = tool
        .pointer("/execution/taskSupport")
        .and_then(Value::as_str)
    {
        mcp["task-support"] = json!(t);
        // A tool that runs only as a task runs long: `warden serve`
        // answers its callers with a task at once.
        if t == "required" {
            mcp["long-running"] = json!(true);
        }
    }
    Capability::new(format!("mcp.{server}.{tool_name}"), title)
        .describe(text("description"))
        .input(schema("inputSchema"))
        .output(schema("outputSchema"))
        .metadata(json!({ "mcp": mcp }))
        .effect("call:external_api")
        .provider("Mcp", Value::Object(meta))
}

/// What the host sends `mcp.invoke`: the capability (its provider-meta
/// names the server and the tool) and the caller's input.
#[derive(Deserialize)]
struct Invoke {
    capability: Served,
    #[serde(default)]
    input: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Served {
    id: String,
    provider_meta: Map<String, Value>,
}

impl Mcp {
    /// Calls the tool of an `:Mcp` capability that no configured server
    /// offers (imported from a snapshot): the server from its
    /// `server-url`, the bearer token from its `auth-secret`; the host's
    /// egress policy decides whether that server may be reached.
    fn invoke(&mut self, i: Invoke) -> Result<Value, Error> {
        let meta = &i.capability.provider_meta;
        let text = |k: &str| meta.get(k).and_then(Value::as_str).map(str::to_string);
        let url = text("server-url")
            .ok_or_else(|| Error::invalid_input("provider-meta has no server-url"))?;
        let tool = text("tool-name")
            .ok_or_else(|| Error::invalid_input("provider-meta has no tool-name"))?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::invalid_input(format!(
                "server-url `{url}` is not an http(s) URL"
            )));
        }
        let key = format!("url:{url}");
        if !self.direct.contains_key(&key) {
            let endpoint = Endpoint {
                name: url.clone(),
                url: url.clone(),
                auth_secret: text("auth-secret"),
                timeout: None,
                wasi_http: self.transport == Transport::WasiHttp,
                era: Era::Auto,
            };
            self.direct.insert(key.clone(), Client::connect(endpoint)?);
        }
        let client = self.direct.get_mut(&key).expect("just inserted");
        let outcome = client.call_tool(&tool, i.input).map(output);
        if outcome.is_err() {
            if let Some(mut c) = self.direct.remove(&key) {
                c.close();
            }
        }
        outcome.map_err(|e| match e {
            Error::Upstream(m) => Error::Upstream(format!("`{}`: {m}", i.capability.id)),
            other => other,
        })
    }
}

/// The Warden services: those configured (`marketplace = true`) and those
/// `[discovery]` names.
fn services(config: &McpConfig) -> Result<BTreeMap<String, federation::Service>, Error> {
    let wasi_http = config.transport == Transport::WasiHttp;
    let mut out = BTreeMap::new();
    for (name, s) in config.servers.iter().filter(|(_, s)| s.marketplace) {
        let urls = match (s.url.is_empty(), s.urls.is_empty()) {
            (false, true) => vec![s.url.clone()],
            (true, false) => s.urls.clone(),
            _ => {
                return Err(Error::invalid_input(format!(
                    "servers.{name}: give one of `url` and `urls`"
                )))
            }
        };
        let how = federation::Reach::configured(
            &format!("servers.{name}"),
            &s.auth_secret,
            &s.marketplace_key,
            s.timeout_ms,
            s.back_off_ms,
            wasi_http,
        )?;
        let service = federation::Service::new(name, urls, how)?;
        out.insert(name.clone(), service);
    }
    let d = &config.discovery;
    for found in d.found()? {
        let how = federation::Reach::configured(
            "discovery",
            &d.auth_secret,
            &d.marketplace_key,
            d.timeout_ms,
            d.back_off_ms,
            wasi_http,
        )?;
        let (name, service) = match found {
            registries::Found::Registry { name, url } => {
                let service = federation::Service::new(&name, vec![url], how)?;
                (name, service)
            }
            registries::Found::Dns { name, dns } => {
                let service = federation::Service::by_dns(&name, dns, how);
                (name, service)
            }
        };
        if config.servers.contains_key(&name) || out.contains_key(&name) {
            return Err(Error::invalid_input(format!(
                "discovery: a service found there would be named `{name}`, which is taken: rename the server or leave one out"
            )));
        }
        out.insert(name, service);
    }
    Ok(out)
}

impl Mcp {
    /// Calls the capability a `:RemoteRTFS` capability names (imported from
    /// a snapshot): through the configured Warden service whose replicas
    /// include its `module-url` (its credentials, key and replicas), else
    /// at that URL alone, without credentials.
    fn invoke_remote(&mut self, i: Invoke) -> Result<Value, Error> {
        let meta = &i.capability.provider_meta;
        let text = |k: &str| meta.get(k).and_then(Value::as_str).map(str::to_string);
        let url = text("module-url")
            .ok_or_else(|| Error::invalid_input("provider-meta has no module-url"))?;
        let id = text("remote-id")
            .ok_or_else(|| Error::invalid_input("provider-meta has no remote-id"))?;
        if let Some(service) = self.services.values_mut().find(|s| s.serves(&url)) {
            return service.call(&id, i.input, None);
        }
        let how = federation::Reach {
            wasi_http: self.transport == Transport::WasiHttp,
            back_off: federation::BACK_OFF,
            ..Default::default()
        };
        let mut alone = federation::Service::new(&url, vec![url.clone()], how)?;
        alone.call(&id, i.input, None)
    }
}

/// A tool result as the capability's output: its structured content, or
/// its content blocks. Content blocks that say more than the structured
/// content (an image, a text that is not its JSON echo) are kept under
/// `_content` beside it, so nothing is dropped.
fn output(result: Value) -> Value {
    let content = result.get("content").cloned().unwrap_or(json!([]));
    match result.get("structuredContent") {
        Some(Value::Object(structured)) => {
            let echo = Value::Object(structured.clone());
            // SDKs send the structured content again as text: as JSON, or
            // for a wrapped primitive (`{"result": 5}`) as the value alone.
            let wrapped = (structured.len() == 1)
                .then(|| structured.get("result"))
                .flatten();
            let is_echo = |text: &str| {
                let parsed = serde_json::from_str::<Value>(text).ok();
                parsed.as_ref() == Some(&echo)
                    || wrapped
                        .is_some_and(|v| parsed.as_ref() == Some(v) || v.as_str() == Some(text))
            };
            let extra: Vec<Value> = content
                .as_array()
                .into_iter()
                .flatten()
                .filter(|block| {
                    let text = block.get("text").and_then(Value::as_str);
                    !(block.get("type").and_then(Value::as_str) == Some("text")
                        && text.is_some_and(is_echo))
                })
                .cloned()
                .collect();
            let mut out = structured.clone();
            if !extra.is_empty() {
                out.insert("_content".into(), Value::Array(extra));
            }
            Value::Object(out)
        }
        Some(s) if !s.is_null() => s.clone(),
        _ => json!({ "content": content }),
    }
}

#[cfg(test)]
mod output_tests {
    use super::*;

    #[test]
    fn structured_content_keeps_what_the_content_adds() {
        let echo = json!({"structuredContent": {"n": 1}, "content": [{"type": "text", "text": "{\"n\": 1}"}]});
        assert_eq!(output(echo), json!({"n": 1}));
        let image = json!({"type": "image", "data": "AAAA", "mimeType": "image/png"});
        let more = json!({"structuredContent": {"n": 1}, "content": [
            {"type": "text", "text": "{\"n\":1}"}, {"type": "text", "text": "a caption"}, image.clone()]});
        assert_eq!(
            output(more),
            json!({"n": 1, "_content": [{"type": "text", "text": "a caption"}, image]})
        );
        let wrapped =
            json!({"structuredContent": {"result": 5}, "content": [{"type": "text", "text": "5"}]});
        assert_eq!(output(wrapped), json!({"result": 5}));
        let wrapped = json!({"structuredContent": {"result": "hi"}, "content": [{"type": "text", "text": "hi"}]});
        assert_eq!(output(wrapped), json!({"result": "hi"}));
        let plain = json!({"content": [{"type": "text", "text": "hi"}]});
        assert_eq!(
            output(plain),
            json!({"content": [{"type": "text", "text": "hi"}]})
        );
    }
}

/// One session with one server.
struct McpSession {
    link: Link,
    prefix: String,
}

/// What a session talks to.
enum Link {
    /// An MCP server's session.
    Server(Client),
    /// A Warden service, in its session `handle`.
    Service { server: String, handle: String },
}

impl Provider for Mcp {
    fn info() -> ProviderInfo {
        ProviderInfo::new(
            "mcp",
            env!("CARGO_PKG_VERSION"),
            "Model Context Protocol client: each configured server's tools as capabilities, in sessions",
        )
    }

    fn capabilities(caps: &mut Capabilities<Self>) {
        caps.add(
            Capability::new("mcp.invoke", "Serve an :Mcp capability")
                .describe("Calls the tool an :Mcp capability names (one imported from a snapshot; the host routes them here)")
                .input("[:map [:capability [:map [:id :string] [:provider-meta [:map [:server-url :string] [:tool-name :string]]]]] [:input :any]]")
                .output(":any")
                .metadata(json!({"warden": {"serves": "Mcp"}}))
                .effect("call:external_api"),
            |this: &mut Mcp, i: Invoke| this.invoke(i),
        );
        caps.add(
            Capability::new("mcp.invoke-remote", "Serve a :RemoteRTFS capability")
                .describe("Calls the capability a :RemoteRTFS capability names on the Warden service at its module-url (one imported from a snapshot; the host routes them here)")
                .input("[:map [:capability [:map [:id :string] [:provider-meta [:map [:module-url :string] [:remote-id :string]]]]] [:input :any]]")
                .output(":any")
                .metadata(json!({"warden": {"serves": "RemoteRTFS"}}))
                .effect("call:external_api"),
            |this: &mut Mcp, i: Invoke| this.invoke_remote(i),
        );
    }

    fn init(config: Config) -> Result<Self, Error> {
        let config: McpConfig = config.parse()?;
        for (name, s) in &config.servers {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(Error::invalid_input(format!(
                    "server name `{name}`: use letters, digits, `-` and `_` only"
                )));
            }
            if s.marketplace {
                continue;
            }
            if !s.urls.is_empty() || s.marketplace_key.is_some() || s.back_off_ms.is_some() {
                return Err(Error::invalid_input(format!(
                    "servers.{name}: `urls`, `marketplace-key` and `back-off-ms` are for a Warden service: set `marketplace = true`"
                )));
            }
            if !(s.url.starts_with("http://") || s.url.starts_with("https://")) {
                return Err(Error::invalid_input(format!(
                    "servers.{name}.url: `{}` is not an http(s) URL",
                    s.url
                )));
            }
        }
        let services = services(&config)?;
        Ok(Mcp {
            direct: BTreeMap::new(),
            servers: config.servers,
            services,
            transport: config.transport,
        })
    }

    fn call_discovered(&mut self, capability: &str, input: Value) -> Result<Value, Error> {
        let (server, tool) = self.split_id(capability).ok_or_else(|| {
            Error::not_found(format!("`{capability}` names no configured MCP server"))
        })?;
        if let Some(service) = self.services.get_mut(&server) {
            return service.call(tool, input, None);
        }
        if !self.direct.contains_key(&server) {
            let endpoint = self.endpoint(&server).expect("a configured server");
            self.direct
                .insert(server.clone(), Client::connect(endpoint)?);
        }
        let client = self.direct.get_mut(&server).expect("just inserted");
        match client.call_tool(tool, input) {
            Ok(result) => Ok(output(result)),
            Err(e) => {
                // A broken connection is not reused.
                if matches!(e, Error::Upstream(_)) {
                    if let Some(mut c) = self.direct.remove(&server) {
                        c.close();
                    }
                }
                Err(e)
            }
        }
    }

    fn sources(&mut self) -> Vec<String> {
        let mut names: Vec<String> = self.servers.keys().cloned().collect();
        let found = self
            .services
            .keys()
            .filter(|n| !self.servers.contains_key(*n));
        names.extend(found.cloned());
        names
    }

    fn release(&mut self, state: &str) {
        for entry in remote_state::entries(state) {
            Client::release(&entry);
        }
    }

    fn discover(&mut self, source: &str) -> Result<Vec<Capability>, Error> {
        if let Some(service) = self.services.get_mut(source) {
            return service.capabilities();
        }
        if !self.servers.contains_key(source) {
            return Err(Error::not_found(format!(
                "no MCP server `{source}` is configured"
            )));
        }
        self.tools_of(source)
    }
}

impl Sessions for Mcp {
    type Session = McpSession;

    fn open(&mut self, config: SessionConfig) -> Result<McpSession, Error> {
        let remote = self.split_id(&config.capability).map(|(s, _)| s);
        if let Some(server) = remote.filter(|s| self.services.contains_key(s)) {
            return Ok(McpSession {
                prefix: format!("mcp.{server}."),
                link: Link::Service {
                    server,
                    handle: federation::session_handle(&config.session_key),
                },
            });
        }
        let server = config.meta_str("mcp.server").ok_or_else(|| {
            Error::invalid_input(format!(
                "`{}`: metadata mcp.server is missing",
                config.capability
            ))
        })?;
        let mut endpoint = self.endpoint(server).ok_or_else(|| {
            Error::not_found(format!(
                "`{}`: MCP server `{server}` is not configured",
                config.capability
            ))
        })?;
        // Discovery found a 2025-era server: no need to probe again.
        if endpoint.era == Era::Auto
            && config
                .meta_str("mcp.protocol")
                .is_some_and(|p| client::PROTOCOL_VERSIONS.contains(&p))
        {
            endpoint.era = Era::Legacy;
        }
        Ok(McpSession {
            link: Link::Server(Client::connect(endpoint)?),
            prefix: format!("mcp.{server}."),
        })
    }

    fn call(
        &mut self,
        session: &mut McpSession,
        capability: &str,
        input: Value,
    ) -> Result<Value, Error> {
        let tool = capability.strip_prefix(&session.prefix).ok_or_else(|| {
            Error::not_found(format!(
                "`{capability}` is not a tool of this session's server"
            ))
        })?;
        match &mut session.link {
            Link::Server(client) => Ok(output(client.call_tool(tool, input)?)),
            Link::Service { server, handle } => {
                let service = self.services.get_mut(server.as_str()).ok_or_else(|| {
                    Error::not_found(format!("Warden service `{server}` is not configured"))
                })?;
                service.call(tool, input, Some(handle))
            }
        }
    }

    fn close(&mut self, session: McpSession) {
        // A Warden service ends an idle session itself (session-idle-ms).
        if let Link::Server(mut client) = session.link {
            client.close();
        }
    }
}

warden_sdk::export!(Mcp, sessions);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_filters() {
        assert!(glob("*", "anything"));
        assert!(glob("add", "add"));
        assert!(!glob("add", "adder"));
        assert!(glob("secret_*", "secret_tool"));
        assert!(glob("*_tool", "secret_tool"));
        assert!(glob("a*c*e", "abcde"));
        assert!(!glob("a*c*e", "abde"));
        let f = ToolFilter {
            allow: vec![],
            deny: vec!["secret_*".into()],
        };
        assert!(f.admits("count") && !f.admits("secret_tool"));
        let f = ToolFilter {
            allow: vec!["c*".into()],
            deny: vec![],
        };
        assert!(f.admits("count") && !f.admits("add"));
    }
}
