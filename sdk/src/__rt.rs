//! Glue between the generated bindings and [`Provider`]. Not public API.
#![allow(missing_docs)]

use crate::{Capabilities, Config, Error, Provider};
use std::any::Any;
use std::cell::RefCell;

pub mod bindings {
    wit_bindgen::generate!({
        inline: r#"
            package warden:sdk;
            world guest {
                include warden:provider/http-plugin@0.1.0;
                import wasi:cli/environment@0.2.12;
                import wasi:filesystem/preopens@0.2.12;
                import wasi:filesystem/types@0.2.12;
                import wasi:clocks/monotonic-clock@0.2.12;
            }
        "#,
        path: "../wit",
        world: "warden:sdk/guest",
        default_bindings_module: "warden_sdk::__rt::bindings",
        pub_export_macro: true,
        export_macro_name: "__warden_export_world",
        generate_all,
    });
}

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

pub fn describe<P: Provider>() -> wit::Description {
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
            .map(|(c, _)| wit::CapabilityDescriptor {
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
            })
            .collect(),
    })
}

pub fn init<P: Provider>(config: String) -> Result<(), wit::Error> {
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
        let (_, handler) = state
            .caps
            .entries
            .iter()
            .find(|(c, _)| c.id == id)
            .ok_or_else(|| Error::not_found(format!("no capability `{id}` in this provider")))?;
        handler(provider, &input).map_err(Into::into)
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
