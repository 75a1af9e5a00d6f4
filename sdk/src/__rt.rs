//! Glue between the generated bindings and [`Provider`]. Not public API.
#![allow(missing_docs)]

use crate::{Capabilities, Config, Error, Provider};
use std::any::Any;
use std::cell::RefCell;

/// Generated from `wit/` and `sdk/wit/guest.wit` by `cargo xtask bindings`.
#[rustfmt::skip]
pub mod bindings;

use bindings::warden::provider::types as wit;

struct State<P> {
    caps: Capabilities<P>,
    provider: Option<P>,
}

thread_local! {
    // One instance of a component is single-threaded and owns its memory, so
    // this is per-instance state, not shared between instances.
    static STATE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

fn with_state<P: Provider, R>(f: impl FnOnce(&mut State<P>) -> R) -> R {
    STATE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let mut caps = Capabilities::new();
            P::capabilities(&mut caps);
            *slot = Some(Box::new(State::<P> {
                caps,
                provider: None,
            }));
        }
        let state = slot
            .as_mut()
            .and_then(|b| b.downcast_mut::<State<P>>())
            .expect("one provider type per component");
        f(state)
    })
}

pub fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn descriptor(c: &crate::Capability) -> wit::CapabilityDescriptor {
    wit::CapabilityDescriptor {
        id: c.id.clone(),
        name: c.name.clone(),
        version: c.version.clone(),
        description: c.description.clone(),
        input_schema: c.input_schema.clone(),
        output_schema: c.output_schema.clone(),
        metadata: c.metadata.to_string(),
        permissions: c.permissions.clone(),
        effects: c.effects.clone(),
        provider_kind: c.provider_kind.clone(),
        provider_meta: if c.provider_meta.is_null() {
            String::new()
        } else {
            c.provider_meta.to_string()
        },
    }
}

/// Sends a panic's message to the host's log at error level before the
/// instance traps, so the host can give the crash's cause (on targets
/// without a stderr, the default hook's message would be lost).
fn report_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| crate::log::error(format!("panic: {info}"))));
    });
}

pub fn describe<P: Provider>() -> wit::Description {
    report_panics();
    let info = P::info();
    with_state::<P, _>(|state| wit::Description {
        info: wit::ProviderInfo {
            name: info.name,
            version: info.version,
            description: info.description,
        },
        capabilities: state
            .caps
            .entries
            .iter()
            .map(|(c, _)| descriptor(c))
            .collect(),
    })
}

pub fn release<P: Provider>(state: String) {
    let _ = with_provider::<P, _>(|provider| {
        provider.release(&state);
        Ok(())
    });
}

pub fn sources<P: Provider>() -> Vec<String> {
    with_state::<P, _>(|state| match state.provider.as_mut() {
        Some(provider) => provider.sources(),
        None => Vec::new(),
    })
}

pub fn discover<P: Provider>(name: String) -> Result<Vec<wit::CapabilityDescriptor>, wit::Error> {
    with_provider::<P, _>(|provider| {
        provider
            .discover(&name)
            .map(|caps| caps.iter().map(descriptor).collect())
    })
    .map_err(Into::into)
}

/// Runs `f` on the initialised provider.
fn with_provider<P: Provider, R>(f: impl FnOnce(&mut P) -> Result<R, Error>) -> Result<R, Error> {
    with_state::<P, _>(|state| match state.provider.as_mut() {
        Some(p) => f(p),
        None => Err(Error::Unavailable("provider called before init".into())),
    })
}

/// The session resource of a provider with [`crate::Sessions`].
pub struct SessionOf<P: crate::Sessions> {
    inner: RefCell<Option<P::Session>>,
}

impl<P: crate::Sessions> SessionOf<P> {
    pub fn open(capability: String, config: String) -> Result<Self, wit::Error> {
        let config = crate::SessionConfig::from_json(capability, &config)?;
        let session = with_provider::<P, _>(|p| p.open(config))?;
        Ok(SessionOf::<P> {
            inner: RefCell::new(Some(session)),
        })
    }

    pub fn call(&self, capability: String, input: String) -> Result<String, wit::Error> {
        let input: serde_json::Value = serde_json::from_str(&input)
            .map_err(|e| Error::invalid_input(format!("input is not JSON: {e}")))?;
        let mut slot = self.inner.borrow_mut();
        let session = slot
            .as_mut()
            .ok_or_else(|| Error::Unavailable("session is closed".into()))?;
        let out = with_provider::<P, _>(|p| p.call(session, &capability, input))?;
        serde_json::to_string(&out).map_err(|e| Error::internal(e.to_string()).into())
    }
}

impl<P: crate::Sessions> Drop for SessionOf<P> {
    fn drop(&mut self) {
        if let Some(session) = self.inner.get_mut().take() {
            // The provider may be gone if the instance is being torn down.
            let _ = with_state::<P, _>(|state| match state.provider.as_mut() {
                Some(p) => {
                    p.close(session);
                    Ok::<(), Error>(())
                }
                None => Ok(()),
            });
        }
    }
}

/// The session resource of a provider without sessions.
pub struct NoSessions;

impl NoSessions {
    pub fn open(capability: String, _config: String) -> Result<Self, wit::Error> {
        Err(Error::NotFound(format!("`{capability}`: this provider has no sessions")).into())
    }
    pub fn call(&self, _capability: String, _input: String) -> Result<String, wit::Error> {
        Err(Error::internal("this provider has no sessions").into())
    }
}

pub fn init<P: Provider>(config: String) -> Result<(), wit::Error> {
    report_panics();
    let config = Config::from_json(&config)?;
    let provider = P::init(config)?;
    with_state::<P, _>(|state| state.provider = Some(provider));
    Ok(())
}

pub fn call<P: Provider>(id: String, input: String) -> Result<String, wit::Error> {
    with_state::<P, _>(|state| {
        let provider = state
            .provider
            .as_mut()
            .ok_or_else(|| Error::Unavailable("provider called before init".into()))?;
        match state.caps.entries.iter().find(|(c, _)| c.id == id) {
            Some((_, handler)) => handler(provider, &input).map_err(Into::into),
            None => {
                let input: serde_json::Value = serde_json::from_str(&input)
                    .map_err(|e| Error::invalid_input(format!("input is not JSON: {e}")))?;
                let out = provider.call_discovered(&id, input)?;
                serde_json::to_string(&out).map_err(|e| Error::internal(e.to_string()).into())
            }
        }
    })
}

pub fn health<P: Provider>() -> wit::HealthReport {
    with_state::<P, _>(|state| {
        let h = match &state.provider {
            Some(p) => p.health(),
            None => crate::Health::unhealthy("not initialised"),
        };
        wit::HealthReport {
            status: match h.status {
                0 => wit::HealthStatus::Healthy,
                1 => wit::HealthStatus::Degraded,
                _ => wit::HealthStatus::Unhealthy,
            },
            message: h.message,
        }
    })
}
