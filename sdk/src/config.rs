use crate::Error;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The provider's configuration: the `config` table of its entry in the
/// host configuration, as JSON.
#[derive(Debug, Clone, Default)]
pub struct Config {
    values: Map<String, Value>,
}

impl Config {
    pub(crate) fn from_json(text: &str) -> Result<Self, Error> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(values)) => Ok(Config { values }),
            Ok(other) => Err(Error::invalid_input(format!(
                "config must be a JSON object, got {}",
                crate::__rt::json_kind(&other)
            ))),
            Err(e) => Err(Error::invalid_input(format!(
                "config is not valid JSON: {e}"
            ))),
        }
    }

    /// The value at `key`, deserialized, or `None` if the key is absent.
    /// A present value of the wrong type is an [`Error::InvalidInput`] that names the key.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        match self.values.get(key) {
            None => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| Error::invalid_input(format!("config key `{key}`: {e}"))),
        }
    }

    /// The whole configuration deserialized into `T` (use
    /// `#[serde(deny_unknown_fields)]` on `T` to reject unknown keys).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_value(Value::Object(self.values.clone()))
            .map_err(|e| Error::invalid_input(format!("config: {e}")))
    }

    /// The raw JSON values.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.values
    }
}

/// What the host says when it opens a session: which capability the first
/// call is for, that capability's flattened metadata and provider
/// parameters, and the caller's session key.
#[derive(Debug, Clone, Default)]
pub struct SessionConfig {
    /// The capability the session is opened for.
    pub capability: String,
    /// Its flattened metadata (`mcp.server-url`, ...).
    pub metadata: Map<String, Value>,
    /// Its provider parameters, if any.
    pub provider_meta: Map<String, Value>,
    /// The caller's session key (`default` when the caller gave none).
    pub session_key: String,
}

impl SessionConfig {
    pub(crate) fn from_json(capability: String, text: &str) -> Result<Self, Error> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid_input(format!("session config is not JSON: {e}")))?;
        let map = |k: &str| match v.get(k) {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        Ok(SessionConfig {
            metadata: map("metadata"),
            provider_meta: map("provider-meta"),
            session_key: v
                .get("session-key")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string(),
            capability,
        })
    }

    /// The metadata value at the flattened `key` as text, if it is one.
    pub fn meta_str(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(Value::as_str)
    }
}
