//! The smallest useful Warden plugin: one capability, typed input and output.
//! Build: `cargo build --release --target wasm32-wasip2` (or `cargo xtask
//! build-plugin examples/hello-plugin`); call: `warden call hello.greet '{"name":"Ada"}'`.
use serde::{Deserialize, Serialize};
use warden_sdk::{Capabilities, Capability, Config, Error, Provider, ProviderInfo};

struct Hello {
    greeting: String,
}

#[derive(Deserialize)]
struct GreetIn {
    name: String,
}

#[derive(Serialize)]
struct GreetOut {
    message: String,
}

impl Provider for Hello {
    fn info() -> ProviderInfo {
        ProviderInfo::new("hello", "0.1.0", "Greets people")
    }
    fn capabilities(caps: &mut Capabilities<Self>) {
        let greet = Capability::new("hello.greet", "Greet someone")
            .input("[:map [:name :string]]")
            .output("[:map [:message :string]]");
        caps.add(greet, |this, i: GreetIn| {
            Ok(GreetOut {
                message: format!("{}, {}!", this.greeting, i.name),
            })
        });
    }
    fn init(config: Config) -> Result<Self, Error> {
        let greeting = config
            .get("greeting")?
            .unwrap_or_else(|| "Hello".to_string());
        Ok(Hello { greeting })
    }
}

warden_sdk::export!(Hello);
