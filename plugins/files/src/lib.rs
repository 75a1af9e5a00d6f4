//! Files as capabilities. The provider reaches only the directories the
//! host grants it; everything else is refused by the host, not by this code.

use serde::Deserialize;
use serde_json::json;
use warden_sdk::{fs, log, Capabilities, Capability, Config, Error, Provider, ProviderInfo};

struct Files {
    max_bytes: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathIn {
    path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteIn {
    path: String,
    text: String,
}

impl Provider for Files {
    fn info() -> ProviderInfo {
        ProviderInfo::new(
            "files",
            env!("CARGO_PKG_VERSION"),
            "Read, write and list files in granted directories",
        )
    }

    fn capabilities(caps: &mut Capabilities<Self>) {
        caps.add(
            Capability::new("files.read", "Read a text file")
                .describe("Reads a UTF-8 file from a granted directory")
                .input("[:map [:path :string]]")
                .output("[:map [:path :string] [:text :string] [:bytes :int]]")
                .effect("read:files"),
            |this, i: PathIn| {
                let text = fs::read_to_string(&i.path)?;
                if text.len() > this.max_bytes {
                    return Err(Error::invalid_input(format!(
                        "{} is larger than {} bytes",
                        i.path, this.max_bytes
                    )));
                }
                Ok(json!({ "path": i.path, "bytes": text.len(), "text": text }))
            },
        )
        .add(
            Capability::new("files.write", "Write a text file")
                .describe("Creates or replaces a UTF-8 file in a directory granted read-write")
                .input("[:map [:path :string] [:text :string]]")
                .output("[:map [:path :string] [:bytes :int]]")
                .effect("write:files"),
            |_, i: WriteIn| {
                fs::write(&i.path, &i.text)?;
                log::info(format!("wrote {} bytes to {}", i.text.len(), i.path));
                Ok(json!({ "path": i.path, "bytes": i.text.len() }))
            },
        )
        .add(
            Capability::new("files.list", "List a directory")
                .describe("Lists the entries of a granted directory")
                .input("[:map [:path :string]]")
                .output("[:map [:path :string] [:entries [:vector :string]]]")
                .effect("read:files"),
            |_, i: PathIn| Ok(json!({ "entries": fs::read_dir(&i.path)?, "path": i.path })),
        );
    }

    fn init(config: Config) -> Result<Self, Error> {
        Ok(Files {
            max_bytes: config.get("max-bytes")?.unwrap_or(1 << 20),
        })
    }
}

warden_sdk::export!(Files);
