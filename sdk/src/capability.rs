use crate::Error;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

/// Who a provider is: its name, version and purpose.
#[derive(Debug, Clone)]
pub struct ProviderInfo {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) description: String,
}

impl ProviderInfo {
    /// A provider named `name` at `version`, described by `description`.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        ProviderInfo {
            name: name.into(),
            version: version.into(),
            description: description.into(),
        }
    }
}

/// Health reported by [`Provider::health`](crate::Provider::health).
#[derive(Debug, Clone)]
pub struct Health {
    pub(crate) status: u8,
    pub(crate) message: String,
}

impl Health {
    /// The provider can serve calls.
    pub fn healthy() -> Self {
        Health {
            status: 0,
            message: String::new(),
        }
    }
    /// The provider serves calls, with reduced quality; `message` says why.
    pub fn degraded(message: impl Into<String>) -> Self {
        Health {
            status: 1,
            message: message.into(),
        }
    }
    /// The provider cannot serve calls; `message` says why.
    pub fn unhealthy(message: impl Into<String>) -> Self {
        Health {
            status: 2,
            message: message.into(),
        }
    }
}

/// The description of one capability: id, schemas, metadata.
///
/// Schemas are RTFS type expressions such as `[:map [:text :string] [:limit :int?]]`;
/// they default to `:any`.
#[derive(Debug, Clone)]
pub struct Capability {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) description: String,
    pub(crate) input_schema: String,
    pub(crate) output_schema: String,
    pub(crate) metadata: Value,
    pub(crate) permissions: Vec<String>,
    pub(crate) effects: Vec<String>,
    pub(crate) provider_kind: String,
    pub(crate) provider_meta: Value,
}

impl Capability {
    /// A capability with the globally unique `id` (dotted, e.g. `text.upper`)
    /// and a short display `name`. Version defaults to `0.1.0`.
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Self {
        Capability {
            id: id.into(),
            name: name.into(),
            version: "0.1.0".into(),
            description: String::new(),
            input_schema: ":any".into(),
            output_schema: ":any".into(),
            metadata: Value::Object(Default::default()),
            permissions: Vec::new(),
            effects: Vec::new(),
            provider_kind: String::new(),
            provider_meta: Value::Null,
        }
    }
    /// Sets what the capability does.
    pub fn describe(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }
    /// Sets the capability's version.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }
    /// Sets the input schema (an RTFS type expression).
    pub fn input(mut self, schema: impl Into<String>) -> Self {
        self.input_schema = schema.into();
        self
    }
    /// Sets the output schema (an RTFS type expression).
    pub fn output(mut self, schema: impl Into<String>) -> Self {
        self.output_schema = schema.into();
        self
    }
    /// Sets hierarchical metadata, a JSON object such as
    /// `json!({"mcp": {"requires-session": true}})`.
    pub fn metadata(mut self, metadata: Value) -> Self {
        self.metadata = metadata;
        self
    }
    /// Adds a permission the capability needs, e.g. `read:weather`.
    pub fn permission(mut self, permission: impl Into<String>) -> Self {
        self.permissions.push(permission.into());
        self
    }
    /// Declares that the capability stands for a remote service of `kind`
    /// (`Http`, `Mcp`, `A2A`, `RemoteRTFS`) with its parameters, e.g.
    /// `json!({"server-url": "http://...", "tool-name": "add"})`, so the host's
    /// marketplace can export it. Name secrets (`auth-secret`), never embed them.
    pub fn provider(mut self, kind: impl Into<String>, meta: Value) -> Self {
        self.provider_kind = kind.into();
        self.provider_meta = meta;
        self
    }
    /// Adds an effect the capability may have, e.g. `call:external_api`.
    pub fn effect(mut self, effect: impl Into<String>) -> Self {
        self.effects.push(effect.into());
        self
    }
}

pub(crate) type Handler<P> = Box<dyn Fn(&mut P, &str) -> Result<String, Error>>;

/// The capabilities of a provider of type `P`, each with its typed handler.
pub struct Capabilities<P> {
    pub(crate) entries: Vec<(Capability, Handler<P>)>,
}

impl<P: 'static> Capabilities<P> {
    pub(crate) fn new() -> Self {
        Capabilities {
            entries: Vec::new(),
        }
    }

    /// Adds a capability served by `handler`. The input JSON is deserialized
    /// into `I` (a mismatch is reported to the caller as invalid input) and the
    /// handler's output serialized from `O`.
    pub fn add<I, O, F>(&mut self, capability: Capability, handler: F) -> &mut Self
    where
        I: DeserializeOwned,
        O: Serialize,
        F: Fn(&mut P, I) -> Result<O, Error> + 'static,
    {
        let id = capability.id.clone();
        self.add_raw(capability, move |provider, input: I| {
            let output = handler(provider, input)?;
            serde_json::to_string(&output)
                .map_err(|e| Error::internal(format!("output of `{id}` cannot be serialized: {e}")))
        })
    }

    /// Like [`add`](Self::add), for a handler that writes its output as JSON
    /// text itself, for example to pass a JSON document it received through
    /// without building it again. The host still checks that the text is
    /// JSON and matches the output schema.
    pub fn add_raw<I, F>(&mut self, capability: Capability, handler: F) -> &mut Self
    where
        I: DeserializeOwned,
        F: Fn(&mut P, I) -> Result<String, Error> + 'static,
    {
        let id = capability.id.clone();
        let erased: Handler<P> = Box::new(move |provider, input| {
            let text = if input.trim().is_empty() {
                "null"
            } else {
                input
            };
            let typed: I = serde_json::from_str(text)
                .map_err(|e| Error::invalid_input(format!("input for `{id}`: {e}")))?;
            handler(provider, typed)
        });
        self.entries.push((capability, erased));
        self
    }
}
