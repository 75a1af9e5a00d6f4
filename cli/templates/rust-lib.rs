//! The `{{name}}` Warden plugin. Build: `./build.sh`; try it:
//! `warden call {{name}}.echo '{"text":"hi"}'`.
use serde::{Deserialize, Serialize};
use warden_sdk::{Capabilities, Capability, Config, Error, Provider, ProviderInfo};

struct Plugin {
    prefix: String,
}

#[derive(Deserialize)]
struct EchoIn {
    text: String,
}

#[derive(Serialize)]
struct EchoOut {
    text: String,
}

impl Provider for Plugin {
    fn info() -> ProviderInfo {
        ProviderInfo::new("{{name}}", "0.1.0", "A Warden plugin")
    }
    fn capabilities(caps: &mut Capabilities<Self>) {
        let echo = Capability::new("{{name}}.echo", "Echo")
            .describe("Returns its text with the configured prefix")
            .input("[:map [:text :string]]")
            .output("[:map [:text :string]]");
        caps.add(echo, |this, i: EchoIn| {
            if i.text.is_empty() {
                // A typed error: the caller gets `invalid-input`.
                return Err(Error::invalid_input("text is empty"));
            }
            Ok(EchoOut {
                text: format!("{}{}", this.prefix, i.text),
            })
        });
    }
    fn init(config: Config) -> Result<Self, Error> {
        let prefix = config.get("prefix")?.unwrap_or_default();
        Ok(Plugin { prefix })
    }
}

warden_sdk::export!(Plugin);
