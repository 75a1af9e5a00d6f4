//! `warden new NAME --lang rust|python|js`: a minimal working plugin (its
//! sources, a build script, a `warden.toml` that loads it).

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub(crate) struct NewArgs {
    /// The plugin's name (lower-case letters, digits, `-`); its
    /// capability is `NAME.echo`.
    name: String,
    /// The language.
    #[arg(long, value_enum, default_value = "rust")]
    lang: Lang,
    /// Where to write it (default: ./NAME; must be empty or absent).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The warden-sdk crate to depend on (Rust; default: the SDK of the
    /// checkout this CLI was built from, else crates.io).
    #[arg(long, value_name = "PATH")]
    sdk: Option<PathBuf>,
}

/// The language of a new plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Lang {
    /// The Rust SDK (`warden-sdk`), built for wasm32-wasip2.
    Rust,
    /// Python, built with componentize-py.
    Python,
    /// JavaScript, built with ComponentizeJS.
    Js,
}

/// The deps-free WIT of world `plugin`, for componentize-py and ComponentizeJS.
const WIT: &str = include_str!("../../../wit/plugin/warden.wit");

/// A file of the plugin: its path in the plugin's directory and its text.
type File = (&'static str, String);

/// Writes the plugin into `--dir` (default `./NAME`); prints what to do next.
pub(crate) fn run(args: NewArgs) -> Result<()> {
    let NewArgs {
        name,
        lang,
        dir,
        sdk,
    } = args;
    check_name(&name)?;
    let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
    if dir.exists()
        && std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!("{} exists and is not empty", dir.display());
    }
    let files = plugin_files(&name, lang, sdk)?;
    write_files(&dir, &files)?;
    let build = match lang {
        Lang::Rust | Lang::Python => "./build.sh",
        Lang::Js => "npm install && node build.mjs",
    };
    println!(
        "wrote a {lang:?} plugin `{name}` in {}\nnext: cd {} && {build} && warden call {name}.echo '{{\"text\":\"hi\"}}'",
        dir.display(),
        dir.display()
    );
    Ok(())
}

fn check_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        bail!("`{name}` is not a plugin name: use lower-case letters, digits and `-`, starting with a letter");
    }
    Ok(())
}

/// A template with the plugin's name and crate name filled in.
fn fill(template: &str, name: &str) -> String {
    template
        .replace("{{name}}", name)
        .replace("{{crate}}", &name.replace('-', "_"))
}

/// Every file of the plugin: its language's sources, `.gitignore`, the
/// deps-free WIT for an interpreter, and `warden.toml`.
fn plugin_files(name: &str, lang: Lang, sdk: Option<PathBuf>) -> Result<Vec<File>> {
    let Sources {
        mut files,
        ignored,
        interpreter,
    } = sources(name, lang, sdk)?;
    files.push((".gitignore", format!("{ignored}\n*.wasm\n")));
    let limits = match interpreter {
        Some(what) => {
            files.push(("wit/warden.wit", WIT.to_string()));
            format!("# The {what} needs more memory than the default 64 MiB.\nlimits = {{ memory = \"128MiB\" }}\n")
        }
        None => String::new(),
    };
    files.push((
        "warden.toml",
        fill(include_str!("../../templates/warden.toml"), name).replace("{{limits}}", &limits),
    ));
    Ok(files)
}

/// A language's part of the plugin.
struct Sources {
    files: Vec<File>,
    /// What git should ignore besides `*.wasm`.
    ignored: &'static str,
    /// For an interpreter, its name: it builds from the deps-free WIT and
    /// needs more memory.
    interpreter: Option<&'static str>,
}

fn sources(name: &str, lang: Lang, sdk: Option<PathBuf>) -> Result<Sources> {
    let fill = |t: &str| fill(t, name);
    Ok(match lang {
        Lang::Rust => {
            let sdk = sdk_dependency(sdk)?;
            let cargo =
                fill(include_str!("../../templates/rust-Cargo.toml")).replace("{{sdk}}", &sdk);
            Sources {
                files: vec![
                    ("Cargo.toml", cargo),
                    (
                        "src/lib.rs",
                        fill(include_str!("../../templates/rust-lib.rs")),
                    ),
                    (
                        "build.sh",
                        fill(include_str!("../../templates/rust-build.sh")),
                    ),
                ],
                ignored: "target/",
                interpreter: None,
            }
        }
        Lang::Python => Sources {
            files: vec![
                (
                    "app.py",
                    fill(include_str!("../../templates/python-app.py")),
                ),
                (
                    "build.sh",
                    fill(include_str!("../../templates/python-build.sh")),
                ),
            ],
            ignored: "__pycache__/",
            interpreter: Some("Python interpreter"),
        },
        Lang::Js => Sources {
            files: vec![
                (
                    "plugin.js",
                    fill(include_str!("../../templates/js-plugin.js")),
                ),
                (
                    "build.mjs",
                    fill(include_str!("../../templates/js-build.mjs")),
                ),
                (
                    "package.json",
                    fill(include_str!("../../templates/js-package.json")),
                ),
            ],
            ignored: "node_modules/",
            interpreter: Some("JavaScript engine"),
        },
    })
}

/// Writes `files` under `dir`; build scripts are made executable.
fn write_files(dir: &Path, files: &[File]) -> Result<()> {
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        if path.extension().is_some_and(|e| e == "sh") {
            make_executable(&path)?;
        }
    }
    Ok(())
}

/// The `warden-sdk` dependency line: `--sdk PATH`, else the SDK of the
/// checkout this CLI was built from when it is still there, else the
/// registry version.
fn sdk_dependency(sdk: Option<PathBuf>) -> Result<String> {
    let path = match sdk {
        Some(p) => {
            Some(std::fs::canonicalize(&p).with_context(|| format!("no SDK at {}", p.display()))?)
        }
        None => std::fs::canonicalize(Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk")).ok(),
    };
    Ok(match path {
        Some(p) => format!(
            "warden-sdk = {{ path = {:?}, version = \"0.1.0\" }}",
            p.display().to_string()
        ),
        None => "warden-sdk = \"0.1\"".to_string(),
    })
}

fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut perms = std::fs::metadata(path)?.permissions();
    perms.set_mode(0o755);
    std::fs::set_permissions(path, perms).with_context(|| format!("chmod {}", path.display()))
}
