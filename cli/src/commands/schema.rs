//! `warden schema ...`: RTFS schemas checked and converted, and the JSON
//! Schema of the configuration file; no configuration is read.

use anyhow::Context;
use clap::{Args, Subcommand};
use std::io::Read;
use std::process::ExitCode;
use warden::TypeExpr;

#[derive(Args)]
pub(crate) struct SchemaArgs {
    #[command(subcommand)]
    command: SchemaCommand,
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// Check a JSON value against a schema: prints OK, or the error path (exit 4).
    Check {
        /// The schema, e.g. `[:map [:name :string]]`.
        schema: String,
        /// The JSON value, or `-` for stdin.
        json: String,
    },
    /// Print the JSON Schema equivalent of a schema.
    ToJson {
        /// The schema.
        schema: String,
    },
    /// Convert a JSON Schema (text, or `-` for stdin) into a schema; losses go to stderr.
    FromJson {
        /// The JSON Schema.
        json: String,
    },
    /// Print the JSON Schema of the configuration file (`warden.toml`), for
    /// editors; the repository keeps it as `docs/warden.schema.json`.
    Config,
}

fn read_arg(text: &str) -> anyhow::Result<String> {
    if text == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading stdin")?;
        Ok(s)
    } else {
        Ok(text.to_string())
    }
}

/// `warden schema ...` needs no configuration.
pub(crate) fn run(args: SchemaArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        SchemaCommand::Check { schema, json } => check(&schema, &json),
        SchemaCommand::ToJson { schema } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&TypeExpr::parse(&schema)?.to_json_schema())?
            );
            Ok(ExitCode::SUCCESS)
        }
        SchemaCommand::Config => {
            println!("{}", serde_json::to_string_pretty(&config_schema()?)?);
            Ok(ExitCode::SUCCESS)
        }
        SchemaCommand::FromJson { json } => {
            let value: serde_json::Value = serde_json::from_str(&read_arg(&json)?)
                .map_err(|e| anyhow::anyhow!("not valid JSON: {e}"))?;
            let (ty, notes) = TypeExpr::from_json_schema(&value);
            for n in notes {
                eprintln!("note: {n}");
            }
            println!("{ty}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `warden schema check`: exit 0 when the value fits, 4 when not.
fn check(schema: &str, json: &str) -> anyhow::Result<ExitCode> {
    let ty = TypeExpr::parse(schema)?;
    let value: serde_json::Value = serde_json::from_str(&read_arg(json)?)
        .map_err(|e| anyhow::anyhow!("the value is not valid JSON: {e}"))?;
    match ty.validate(&value) {
        Ok(()) => {
            println!("OK");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("{e}");
            Ok(ExitCode::from(4))
        }
    }
}

/// The JSON Schema of `warden.toml`, made from the configuration types:
/// the host's, with `[serve]` as `warden-serve` reads it.
pub(crate) fn config_schema() -> anyhow::Result<serde_json::Value> {
    let mut root = serde_json::to_value(schemars::schema_for!(warden::Config))?;
    let mut serve = serde_json::to_value(schemars::schema_for!(warden_serve::ServeSettings))?;
    let defs = root
        .as_object_mut()
        .context("a schema is an object")?
        .entry("$defs")
        .or_insert_with(|| serde_json::json!({}));
    if let Some(serve_defs) = serve.as_object_mut().and_then(|s| s.remove("$defs")) {
        for (name, def) in serve_defs.as_object().into_iter().flatten() {
            defs[name.as_str()] = def.clone();
        }
    }
    if let Some(s) = serve.as_object_mut() {
        s.remove("$schema");
        s.remove("title");
    }
    defs["ServeSettings"] = serve;
    root["properties"]["serve"] = serde_json::json!({"$ref": "#/$defs/ServeSettings"});
    root["title"] = "warden.toml".into();
    Ok(root)
}
