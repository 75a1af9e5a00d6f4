//! `warden schema ...`: RTFS schemas checked and converted, no configuration.

use crate::SchemaCommand;
use anyhow::Context;
use std::io::Read;
use std::process::ExitCode;

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
pub(crate) fn schema_command(cmd: SchemaCommand) -> anyhow::Result<ExitCode> {
    use warden::TypeExpr;
    match cmd {
        SchemaCommand::Check { schema, json } => {
            let ty = TypeExpr::parse(&schema)?;
            let value: serde_json::Value = serde_json::from_str(&read_arg(&json)?)
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
        SchemaCommand::ToJson { schema } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&TypeExpr::parse(&schema)?.to_json_schema())?
            );
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
