//! `warden check FILE`: what a component file is, without compiling it or
//! loading a host.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use warden::ComponentReport;

#[derive(Args)]
pub(crate) struct CheckArgs {
    /// The component (`.wasm`).
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Exit 0 when the component can be loaded, 2 when not (or when the file
/// cannot be read).
pub(crate) fn run(args: &CheckArgs) -> ExitCode {
    let file = &args.file;
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let report = warden::check_component(&bytes);
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print_report(&args.file, &report);
    }
    if report.loads() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

/// The report as text: world, exports, each import linked or missing, and
/// why the component does not load.
fn print_report(file: &std::path::Path, report: &ComponentReport) {
    println!(
        "file      {} ({:.1} MB)",
        file.display(),
        report.bytes as f64 / 1e6
    );
    println!(
        "world     {}",
        report.world.as_deref().unwrap_or("(not a Warden provider)")
    );
    println!("exports   {}", report.exports.join(", "));
    println!("imports");
    for i in &report.imports {
        match &i.why {
            None => println!("  links    {}", i.name),
            Some(why) => println!("  MISSING  {} ({why})", i.name),
        }
    }
    if report.loads() {
        println!("loads     yes (function types are checked when it is linked)");
    } else {
        println!("loads     no");
        for p in &report.problems {
            println!("  - {p}");
        }
    }
}
