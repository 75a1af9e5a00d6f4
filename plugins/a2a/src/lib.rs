//! The A2A provider: each configured Agent2Agent agent's skills become
//! capabilities `a2a.<agent>.<skill>`, spoken over A2A 1.0 or 0.3 (the
//! card decides), with one conversation (`contextId`) per caller's session.
//!
//! Configuration (`[plugins.a2a.config]`):
//!
//! ```toml
//! [plugins.a2a.config.servers.analyst]
//! url = "http://127.0.0.1:9999"       # the agent (its card at
//!                                      # /.well-known/agent-card.json) or the
//!                                      # card's own URL
//! auth-secret = "ANALYST_TOKEN"        # optional: a credential, by secret name
//! auth-header = "authorization"        # optional: the header it goes in
//!                                      # (`authorization`: as a bearer token)
//! extended-card = false                # optional: read the authenticated
//!                                      # extended card when the agent has one
//! protocol = "auto"                    # optional: "auto" (1.0, else 0.3), "1.0", "0.3"
//! streaming = true                     # optional: stream when the agent can
//! timeout-ms = 30000                   # optional: the longest wait for the
//!                                      # agent's next bytes
//! poll-ms = 200                        # optional: the first wait between polls
//! skills = { allow = ["*"], deny = [] }   # optional globs on skill ids
//! ```
//!
//! A call sends the input's `text` (and `data`, if any) as one message and
//! follows the task to its end: streamed when the agent streams, else
//! polled with backoff; the plugin's `limits.timeout-ms` bounds it, and a
//! call stopped by a limit has its task cancelled upstream. A task that
//! waits for the user (`input-required`, `auth-required`) ends the call with
//! an error that says which and names the task; the next call in the same
//! session answers it. Every request goes through the host's egress
//! policy: grant the agent's origin in `grants.network` and the secret in
//! `grants.secrets`.

mod card;
mod client;
mod sse;
mod wire;

use card::Card;
use client::{Agent, Outcome};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use warden_sdk::http::Request;
use warden_sdk::{
    Capabilities, Capability, Config, Error, Provider, ProviderInfo, SessionConfig, Sessions,
};
use wire::{Target, Version};

/// The input every skill takes unless its card says more.
const INPUT: &str = "[:map [:text :string] [:data :any?]]";
/// What a call returns.
const OUTPUT: &str = "[:map [:state :string] [:text :string] [:data [:vector :any]] [:files [:vector :any]] [:artifacts [:vector :any]] [:message :string?] [:task-id :string?] [:context-id :string?]]";

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct A2aConfig {
    #[serde(default)]
    servers: BTreeMap<String, ServerConfig>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ServerConfig {
    url: String,
    auth_secret: Option<String>,
    auth_header: Option<String>,
    #[serde(default)]
    extended_card: bool,
    #[serde(default)]
    protocol: Protocol,
    #[serde(default = "yes")]
    streaming: bool,
    timeout_ms: Option<u64>,
    poll_ms: Option<u64>,
    #[serde(default)]
    skills: Filter,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    #[default]
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "1.0")]
    V1,
    #[serde(rename = "0.3")]
    V03,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct Filter {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
}

impl Filter {
    fn admits(&self, skill: &str) -> bool {
        (self.allow.is_empty() || self.allow.iter().any(|g| glob(g, skill)))
            && !self.deny.iter().any(|g| glob(g, skill))
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            text.starts_with(head)
                && (0..=text.len() - head.len())
                    .filter(|i| text.is_char_boundary(head.len() + i))
                    .any(|i| glob(rest, &text[head.len() + i..]))
        }
    }
}

/// A skill id as the last part of a capability id: letters, digits, `-`
/// and `_` kept, anything else `-`.
fn id_part(skill: &str) -> String {
    skill
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

struct A2a {
    servers: BTreeMap<String, ServerConfig>,
    /// Cards read by this instance, by server.
    cards: BTreeMap<String, Card>,
}

/// One caller's conversation with one agent.
struct Conversation {
    server: String,
    /// How to reach the agent, when the capability says (else its card).
    agent: Option<Agent>,
    /// Whether it is a caller's own session (the shared `default` one keeps
    /// no conversation).
    keeps: bool,
    context: Option<String>,
    /// A task that waits for the user: the next call answers it.
    waiting: Option<String>,
}

/// A call's input.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    text: String,
    #[serde(default)]
    data: Option<Value>,
}

impl A2a {
    /// The card of `server`, read once per instance.
    fn card(&mut self, server: &str) -> Result<Card, Error> {
        if let Some(c) = self.cards.get(server) {
            return Ok(c.clone());
        }
        let config = self
            .servers
            .get(server)
            .ok_or_else(|| Error::not_found(format!("no A2A agent `{server}` is configured")))?
            .clone();
        let want = match config.protocol {
            Protocol::Auto => None,
            Protocol::V1 => Some(Version::V1),
            Protocol::V03 => Some(Version::V03),
        };
        let read = |v: &Value| {
            card::parse(v, want).map_err(|e| Error::upstream(format!("A2A agent `{server}`: {e}")))
        };
        let public = fetch_card(server, &config)?;
        let mut card = read(&public)?;
        if config.extended_card && card.extended {
            let agent = self.agent(server, &config, &card);
            let extended = agent.request(wire::Method::ExtendedCard, json!({}))?;
            let skills = read(&extended).map(|c| c.skills).unwrap_or_else(|_| {
                extended
                    .get("skills")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            });
            card.skills = skills;
        }
        self.cards.insert(server.to_string(), card.clone());
        Ok(card)
    }

    fn agent(&self, server: &str, config: &ServerConfig, card: &Card) -> Agent {
        Agent {
            name: server.to_string(),
            endpoint: card.endpoint.clone(),
            version: card.version,
            streaming: card.streaming && config.streaming,
            auth_secret: config.auth_secret.clone(),
            auth_header: config
                .auth_header
                .clone()
                .unwrap_or_else(|| "authorization".into()),
            timeout: config.timeout_ms.map(Duration::from_millis),
            poll: Duration::from_millis(config.poll_ms.unwrap_or(200).max(10)),
        }
    }

    fn skills_of(&mut self, server: &str) -> Result<Vec<Capability>, Error> {
        let card = self.card(server)?;
        let config = &self.servers[server];
        let mut caps = Vec::new();
        for skill in &card.skills {
            let Some(id) = skill.get("id").and_then(Value::as_str) else {
                continue;
            };
            if config.skills.admits(id) {
                caps.push(capability(server, config, &card, id, skill));
            }
        }
        Ok(caps)
    }

    /// The skill a capability id names: looked up in the agent's card when
    /// this instance has read it or the id was rewritten from the skill's,
    /// else the id's last part itself.
    fn skill_of(&mut self, server: &str, capability: &str) -> Result<String, Error> {
        let part = capability
            .strip_prefix(&format!("a2a.{server}."))
            .ok_or_else(|| {
                Error::not_found(format!(
                    "`{capability}` is not a skill of A2A agent `{server}`"
                ))
            })?;
        if !self.cards.contains_key(server) && id_part(part) == part {
            return Ok(part.to_string());
        }
        let card = self.card(server)?;
        card.skills
            .iter()
            .filter_map(|s| s.get("id").and_then(Value::as_str))
            .find(|id| id_part(id) == part)
            .map(str::to_string)
            .ok_or_else(|| {
                Error::not_found(format!(
                    "A2A agent `{server}` has no skill `{part}` any more"
                ))
            })
    }
}

/// Reads an agent's public card.
fn fetch_card(server: &str, config: &ServerConfig) -> Result<Value, Error> {
    let url = card::card_url(&config.url);
    let mut req = Request::get(&url).header("accept", "application/json");
    if let Some(t) = config.timeout_ms {
        req = req.timeout(Duration::from_millis(t));
    }
    let resp = req.send().map_err(|e| match e {
        Error::Upstream(m) => Error::Upstream(format!(
            "A2A agent `{server}`: reading its card at {url}: {m}"
        )),
        other => other,
    })?;
    if resp.status >= 300 {
        return Err(Error::upstream(format!(
            "A2A agent `{server}`: its card at {url} answered {}",
            resp.status
        )));
    }
    resp.json::<Value>().map_err(|e| {
        Error::upstream(format!(
            "A2A agent `{server}`: its card at {url} is not JSON: {e}"
        ))
    })
}

/// The capability for one skill.
fn capability(
    server: &str,
    config: &ServerConfig,
    card: &Card,
    id: &str,
    skill: &Value,
) -> Capability {
    let text = |k: &str| {
        skill
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let list = |k: &str| {
        skill
            .get(k)
            .filter(|v| v.is_array())
            .cloned()
            .unwrap_or(json!([]))
    };
    let title = match text("name") {
        t if t.is_empty() => id.to_string(),
        t => t,
    };
    let a2a = json!({
        "requires-session": true,
        "server": server,
        "agent": card.name,
        "agent-url": config.url,
        "skill": id,
        "protocol": card.version.name(),
        "streaming": card.streaming && config.streaming,
        "tags": list("tags"),
        "examples": list("examples"),
        "input-modes": list("inputModes"),
        "output-modes": list("outputModes"),
    });
    let mut meta = Map::new();
    meta.insert("agent-url".into(), json!(config.url));
    meta.insert("endpoint".into(), json!(card.endpoint));
    meta.insert("protocol".into(), json!(card.version.name()));
    meta.insert("skill".into(), json!(id));
    if let Some(s) = &config.auth_secret {
        meta.insert("auth-secret".into(), json!(s));
    }
    Capability::new(format!("a2a.{server}.{}", id_part(id)), title)
        .describe(text("description"))
        .input(INPUT)
        .output(OUTPUT)
        .metadata(json!({ "a2a": a2a }))
        .effect("call:external_api")
        .provider("A2A", Value::Object(meta))
}

/// Sends one message for `to.skill` and follows its task to its end.
fn converse(agent: &Agent, input: Input, to: &Target) -> Result<Outcome, Error> {
    let message =
        agent
            .version
            .message(&client::message_id(), &input.text, input.data.as_ref(), to);
    agent.send(message, to.task.as_deref())
}

/// The call's result for how the agent's task ended; a task that waits for
/// the user, or did not complete, is an error that says so.
fn finish(agent: &Agent, outcome: &Outcome) -> Result<Value, Error> {
    // The agent's words, as far as an error should carry them.
    let said: String = outcome
        .message
        .as_ref()
        .map(|m| client::collect(&m.parts).0)
        .unwrap_or_default()
        .chars()
        .take(1000)
        .collect();
    let task = outcome.task.as_deref().unwrap_or_default();
    let who = format!("A2A agent `{}`", agent.name);
    match outcome.state.as_str() {
        "completed" => Ok(output(outcome)),
        "input-required" | "auth-required" => Err(Error::upstream(format!(
            "{who} needs {} ({}) for task {task}: {said}; call again in the same session to answer",
            if outcome.state == "input-required" {
                "more input"
            } else {
                "authorization"
            },
            outcome.state
        ))),
        "failed" | "rejected" | "canceled" => Err(Error::upstream(format!(
            "{who}: task {task} {}: {said}",
            outcome.state
        ))),
        other => Err(Error::upstream(format!(
            "{who}: task {task} ended in state `{other}`"
        ))),
    }
}

/// The result: artifacts' parts (or the reply's, without artifacts), text
/// joined, data and files kept apart; each artifact also on its own.
fn output(o: &Outcome) -> Value {
    let mut parts = Vec::new();
    let mut artifacts = Vec::new();
    for a in &o.artifacts {
        parts.extend(a.parts.iter().cloned());
        let (text, data, files) = client::collect(&a.parts);
        artifacts
            .push(json!({"id": a.id, "name": a.name, "text": text, "data": data, "files": files}));
    }
    let said = o.message.as_ref().map(|m| client::collect(&m.parts));
    if o.artifacts.is_empty() {
        if let Some(m) = &o.message {
            parts.extend(m.parts.iter().cloned());
        }
    }
    let (text, data, files) = client::collect(&parts);
    let mut out = json!({
        "state": o.state,
        "text": text,
        "data": data,
        "files": files,
        "artifacts": artifacts,
    });
    if let Some((m, _, _)) = said.filter(|(m, _, _)| !m.is_empty()) {
        out["message"] = json!(m);
    }
    if let Some(t) = &o.task {
        out["task-id"] = json!(t);
    }
    if let Some(c) = &o.context {
        out["context-id"] = json!(c);
    }
    out
}

fn input(v: Value) -> Result<Input, Error> {
    serde_json::from_value(v).map_err(|e| Error::invalid_input(format!("input: {e}")))
}

/// What the host sends `a2a.invoke`: an `:A2A` capability imported from a
/// snapshot (its provider-meta names the agent and the skill) and the input.
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

impl A2a {
    /// Calls the skill an imported `:A2A` capability names: at its
    /// `endpoint` when its provider-meta names the `protocol`, else where
    /// the agent's card (at `agent-url`, or under the endpoint) says. The
    /// host's egress policy decides whether that agent may be reached.
    fn invoke(&mut self, i: Invoke) -> Result<Value, Error> {
        let meta = &i.capability.provider_meta;
        let text = |k: &str| meta.get(k).and_then(Value::as_str).map(str::to_string);
        let endpoint = text("endpoint")
            .ok_or_else(|| Error::invalid_input("provider-meta has no endpoint"))?;
        let skill =
            text("skill").ok_or_else(|| Error::invalid_input("provider-meta has no skill"))?;
        let url = text("agent-url").unwrap_or_else(|| endpoint.clone());
        for u in [&url, &endpoint] {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(Error::invalid_input(format!("`{u}` is not an http(s) URL")));
            }
        }
        let config = ServerConfig {
            url: url.clone(),
            auth_secret: text("auth-secret"),
            auth_header: None,
            extended_card: false,
            protocol: Protocol::Auto,
            streaming: true,
            timeout_ms: None,
            poll_ms: None,
            skills: Filter::default(),
        };
        let card = match text("protocol").as_deref().and_then(Version::parse) {
            Some(version) => Card {
                name: url.clone(),
                endpoint,
                version,
                streaming: false,
                extended: false,
                skills: Vec::new(),
            },
            None => card::parse(&fetch_card(&url, &config)?, None)
                .map_err(|e| Error::upstream(format!("A2A agent at {url}: {e}")))?,
        };
        let agent = self.agent(&url, &config, &card);
        let to = Target {
            skill,
            context: None,
            task: None,
        };
        converse(&agent, input(i.input)?, &to)
            .and_then(|outcome| finish(&agent, &outcome))
            .map_err(|e| match e {
                Error::Upstream(m) => Error::Upstream(format!("`{}`: {m}", i.capability.id)),
                other => other,
            })
    }
}

impl Provider for A2a {
    fn info() -> ProviderInfo {
        ProviderInfo::new(
            "a2a",
            env!("CARGO_PKG_VERSION"),
            "Agent2Agent client: each configured agent's skills as capabilities, one conversation per session",
        )
    }

    fn capabilities(caps: &mut Capabilities<Self>) {
        caps.add(
            Capability::new("a2a.invoke", "Serve an :A2A capability")
                .describe("Calls the skill an :A2A capability names (one imported from a snapshot; the host routes them here)")
                .input("[:map [:capability [:map [:id :string] [:provider-meta [:map [:endpoint :string] [:skill :string]]]]] [:input :any]]")
                .output(OUTPUT)
                .metadata(json!({"warden": {"serves": "A2A"}}))
                .effect("call:external_api"),
            |this: &mut A2a, i: Invoke| this.invoke(i),
        );
    }

    fn init(config: Config) -> Result<Self, Error> {
        let config: A2aConfig = config.parse()?;
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
            if !(s.url.starts_with("http://") || s.url.starts_with("https://")) {
                return Err(Error::invalid_input(format!(
                    "servers.{name}.url: `{}` is not an http(s) URL",
                    s.url
                )));
            }
            if s.extended_card && s.auth_secret.is_none() {
                return Err(Error::invalid_input(format!(
                    "servers.{name}.extended-card needs auth-secret: the extended card is read with credentials"
                )));
            }
        }
        Ok(A2a {
            servers: config.servers,
            cards: BTreeMap::new(),
        })
    }

    fn sources(&mut self) -> Vec<String> {
        self.servers.keys().cloned().collect()
    }

    fn discover(&mut self, source: &str) -> Result<Vec<Capability>, Error> {
        if !self.servers.contains_key(source) {
            return Err(Error::not_found(format!(
                "no A2A agent `{source}` is configured"
            )));
        }
        // A card read again at each discovery.
        self.cards.remove(source);
        self.skills_of(source)
    }

    fn release(&mut self, state: &str) {
        client::release(state);
    }
}

impl Sessions for A2a {
    type Session = Conversation;

    fn open(&mut self, config: SessionConfig) -> Result<Conversation, Error> {
        let server = config.meta_str("a2a.server").ok_or_else(|| {
            Error::invalid_input(format!(
                "`{}`: metadata a2a.server is missing",
                config.capability
            ))
        })?;
        if !self.servers.contains_key(server) {
            return Err(Error::not_found(format!(
                "`{}`: A2A agent `{server}` is not configured",
                config.capability
            )));
        }
        // The endpoint discovery found, kept in the capability: no need to
        // read the card again in a new instance.
        let found = config
            .provider_meta
            .get("endpoint")
            .and_then(Value::as_str)
            .zip(config.meta_str("a2a.protocol").and_then(Version::parse));
        let agent = found.map(|(endpoint, version)| {
            let card = Card {
                name: server.to_string(),
                endpoint: endpoint.to_string(),
                version,
                streaming: config.metadata.get("a2a.streaming") == Some(&json!(true)),
                extended: false,
                skills: Vec::new(),
            };
            self.agent(server, &self.servers[server], &card)
        });
        Ok(Conversation {
            server: server.to_string(),
            agent,
            keeps: config.session_key != "default",
            context: None,
            waiting: None,
        })
    }

    fn call(
        &mut self,
        c: &mut Conversation,
        capability: &str,
        input_value: Value,
    ) -> Result<Value, Error> {
        let skill = self.skill_of(&c.server.clone(), capability)?;
        let agent = match &c.agent {
            Some(agent) => agent.clone(),
            None => {
                let card = self.card(&c.server.clone())?;
                self.agent(&c.server, &self.servers[&c.server], &card)
            }
        };
        let to = Target {
            skill,
            context: if c.keeps { c.context.clone() } else { None },
            task: if c.keeps { c.waiting.take() } else { None },
        };
        let outcome = converse(&agent, input(input_value)?, &to)?;
        if c.keeps {
            c.context = outcome.context.clone().or(c.context.take());
            if wire::is_interrupted(&outcome.state) {
                c.waiting = outcome.task.clone();
            }
        }
        finish(&agent, &outcome)
    }
}

warden_sdk::export!(A2a, sessions);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_ids() {
        assert!(glob("*", "x") && glob("an*", "analyze") && !glob("an*", "plan"));
        assert!(glob("a*z*", "abcz") && !glob("a*z", "abc"));
        assert_eq!(id_part("analyze csv/v2"), "analyze-csv-v2");
    }
}
