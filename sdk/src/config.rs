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
