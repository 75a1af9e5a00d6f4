//! `warden new NAME --lang rust|python|js`: a minimal working plugin (its
//! sources, a build script, a `warden.toml` that loads it).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The language of a new plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Lang {
    /// The Rust SDK (`warden-sdk`), built for wasm32-wasip2.
    Rust,
    /// Python, built with componentize-py.
    Python,
    /// JavaScript, built with ComponentizeJS.
    Js,
}

/// The deps-free WIT of world `plugin`, for componentize-py and ComponentizeJS.
const WIT: &str = include_str!("../../wit/plugin/warden.wit");

/// Writes the plugin into `dir` (default `./NAME`); prints what to do next.
pub(crate) fn new(
    name: &str,
    lang: Lang,
    dir: Option<PathBuf>,
    sdk: Option<PathBuf>,
) -> Result<()> {
    let valid = !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        bail!("`{name}` is not a plugin name: use lower-case letters, digits and `-`, starting with a letter");
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists()
        && std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!("{} exists and is not empty", dir.display());
    }
    let fill = |t: &str| -> String {
        t.replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
    };
    // Per language: its sources, what git should ignore, and for an
    // interpreter its name (it builds from the deps-free WIT and needs more
    // memory).
    let (mut files, ignored, interpreter): (Vec<(&str, String)>, &str, Option<&str>) = match lang {
        Lang::Rust => {
            let sdk = sdk_dependency(sdk)?;
            let cargo = fill(include_str!("../templates/rust-Cargo.toml")).replace("{{sdk}}", &sdk);
            (
                vec![
                    ("Cargo.toml", cargo),
                    ("src/lib.rs", fill(include_str!("../templates/rust-lib.rs"))),
                    ("build.sh", fill(include_str!("../templates/rust-build.sh"))),
                ],
                "target/",
                None,
            )
        }
        Lang::Python => (
            vec![
                ("app.py", fill(include_str!("../templates/python-app.py"))),
                (
                    "build.sh",
                    fill(include_str!("../templates/python-build.sh")),
                ),
            ],
            "__pycache__/",
            Some("Python interpreter"),
        ),
        Lang::Js => (
            vec![
                ("plugin.js", fill(include_str!("../templates/js-plugin.js"))),
                ("build.mjs", fill(include_str!("../templates/js-build.mjs"))),
                (
                    "package.json",
                    fill(include_str!("../templates/js-package.json")),
                ),
            ],
            "node_modules/",
            Some("JavaScript engine"),
        ),
    };
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
        fill(include_str!("../templates/warden.toml")).replace("{{limits}}", &limits),
    ));
    for (path, text) in &files {
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
