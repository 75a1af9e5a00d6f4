//! Text and JSON utilities: the first Warden provider.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use warden_sdk::{Capabilities, Capability, Config, Error, Provider, ProviderInfo};

struct Text {
    ellipsis: String,
    max_rounds: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextIn {
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseIn {
    text: String,
    to: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TruncateIn {
    text: String,
    max: usize,
    ellipsis: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HashIn {
    text: String,
    rounds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetIn {
    value: Value,
    pointer: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeIn {
    base: Value,
    patch: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlattenIn {
    value: Value,
    separator: Option<String>,
}

fn words(text: &str) -> Vec<String> {
    // Split on non-alphanumerics and on lower->upper transitions (camelCase).
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in text.chars() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_numeric();
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn capitalize(w: &str) -> String {
    let mut cs = w.chars();
    match cs.next() {
        Some(f) => f
            .to_uppercase()
            .chain(cs.flat_map(|c| c.to_lowercase()))
            .collect(),
        None => String::new(),
    }
}

fn convert_case(text: &str, to: &str) -> Result<String, Error> {
    let ws = words(text);
    let lower = || ws.iter().map(|w| w.to_lowercase()).collect::<Vec<_>>();
    Ok(match to {
        "upper" => text.to_uppercase(),
        "lower" => text.to_lowercase(),
        "title" => ws
            .iter()
            .map(|w| capitalize(w))
            .collect::<Vec<_>>()
            .join(" "),
        "snake" => lower().join("_"),
        "kebab" => lower().join("-"),
        "camel" => ws
            .iter()
            .enumerate()
            .map(|(i, w)| {
                if i == 0 {
                    w.to_lowercase()
                } else {
                    capitalize(w)
                }
            })
            .collect(),
        "pascal" => ws.iter().map(|w| capitalize(w)).collect(),
        other => {
            return Err(Error::invalid_input(format!(
            "unknown case `{other}`: expected upper, lower, title, snake, kebab, camel or pascal"
        )))
        }
    })
}

fn flatten(prefix: &str, sep: &str, value: &Value, out: &mut Map<String, Value>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}{sep}{k}")
                };
                flatten(&key, sep, v, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                let key = if prefix.is_empty() {
                    i.to_string()
                } else {
                    format!("{prefix}{sep}{i}")
                };
                flatten(&key, sep, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// RFC 7396 JSON merge patch.
fn merge(base: &mut Value, patch: Value) {
    match patch {
        Value::Object(patch) => {
            if !base.is_object() {
                *base = Value::Object(Map::new());
            }
            let target = base.as_object_mut().expect("object");
            for (k, v) in patch {
                if v.is_null() {
                    target.remove(&k);
                } else {
                    merge(target.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        other => *base = other,
    }
}

impl Provider for Text {
    fn info() -> ProviderInfo {
        ProviderInfo::new("text", env!("CARGO_PKG_VERSION"), "Text and JSON utilities")
    }

    fn capabilities(caps: &mut Capabilities<Self>) {
        caps.add(
            Capability::new("text.case", "Change case")
                .describe("Converts text to upper, lower, title, snake, kebab, camel or pascal case")
                .input("[:map [:text :string] [:to [:enum \"upper\" \"lower\" \"title\" \"snake\" \"kebab\" \"camel\" \"pascal\"]]]")
                .output("[:map [:text :string]]"),
            |_, i: CaseIn| Ok(json!({ "text": convert_case(&i.text, &i.to)? })),
        )
        .add(
            Capability::new("text.stats", "Text statistics")
                .describe("Counts bytes, characters, words and lines")
                .input("[:map [:text :string]]")
                .output("[:map [:bytes :int] [:chars :int] [:words :int] [:lines :int]]"),
            |_, i: TextIn| {
                Ok(json!({
                    "bytes": i.text.len(),
                    "chars": i.text.chars().count(),
                    "words": i.text.split_whitespace().count(),
                    "lines": if i.text.is_empty() { 0 } else { i.text.lines().count() },
                }))
            },
        )
        .add(
            Capability::new("text.slugify", "Slugify")
                .describe("Turns a title into a lowercase URL slug")
                .input("[:map [:text :string]]")
                .output("[:map [:slug :string]]"),
            |_, i: TextIn| Ok(json!({ "slug": convert_case(&i.text, "kebab")? })),
        )
        .add(
            Capability::new("text.truncate", "Truncate")
                .describe("Shortens text to at most `max` characters, ending with an ellipsis when cut")
                .input("[:map [:text :string] [:max :int] [:ellipsis :string?]]")
                .output("[:map [:text :string] [:truncated :bool]]"),
            |this, i: TruncateIn| {
                let ellipsis = i.ellipsis.unwrap_or_else(|| this.ellipsis.clone());
                let n = i.text.chars().count();
                if n <= i.max {
                    return Ok(json!({ "text": i.text, "truncated": false }));
                }
                let keep = i.max.saturating_sub(ellipsis.chars().count());
                let mut out: String = i.text.chars().take(keep).collect();
                out.push_str(&ellipsis);
                Ok(json!({ "text": out, "truncated": true }))
            },
        )
        .add(
            Capability::new("text.hash", "SHA-256")
                .describe("Hex SHA-256 of the text, iterated `rounds` times (key stretching; default 1)")
                .input("[:map [:text :string] [:rounds :int?]]")
                .output("[:map [:sha256 :string] [:rounds :int]]"),
            |this, i: HashIn| {
                let rounds = i.rounds.unwrap_or(1);
                if rounds == 0 || rounds > this.max_rounds {
                    return Err(Error::invalid_input(format!("rounds must be 1..={}", this.max_rounds)));
                }
                let mut digest = Sha256::digest(i.text.as_bytes());
                for _ in 1..rounds {
                    digest = Sha256::digest(digest);
                }
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                Ok(json!({ "sha256": hex, "rounds": rounds }))
            },
        )
        .add(
            Capability::new("json.get", "JSON pointer")
                .describe("Picks the value at an RFC 6901 JSON pointer (`/items/0/name`)")
                .input("[:map [:value :any] [:pointer :string]]")
                .output("[:map [:found :bool] [:value :any]]"),
            |_, i: GetIn| match i.value.pointer(&i.pointer) {
                Some(v) => Ok(json!({ "found": true, "value": v })),
                None => Ok(json!({ "found": false, "value": null })),
            },
        )
        .add(
            Capability::new("json.merge", "JSON merge patch")
                .describe("Applies an RFC 7396 merge patch to a JSON value")
                .input("[:map [:base :any] [:patch :any]]")
                .output(":any"),
            |_, i: MergeIn| {
                let mut base = i.base;
                merge(&mut base, i.patch);
                Ok(base)
            },
        )
        .add(
            Capability::new("json.flatten", "Flatten JSON")
                .describe("Flattens nested objects and arrays into one object with dotted keys")
                .input("[:map [:value :any] [:separator :string?]]")
                .output("[:map]"),
            |_, i: FlattenIn| {
                let mut out = Map::new();
                flatten("", i.separator.as_deref().unwrap_or("."), &i.value, &mut out);
                Ok(Value::Object(out))
            },
        );
    }

    fn init(config: Config) -> Result<Self, Error> {
        Ok(Text {
            ellipsis: config.get("ellipsis")?.unwrap_or_else(|| "…".to_string()),
            max_rounds: config.get("max-rounds")?.unwrap_or(u64::MAX),
        })
    }
}

warden_sdk::export!(Text);
