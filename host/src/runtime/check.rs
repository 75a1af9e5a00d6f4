//! What a component file is, read from its outer import and export
//! sections without compiling it: the world it implements, what it imports
//! and whether this host links each import. `warden check` prints it, and a
//! load runs it first, so a component this host cannot link fails in
//! milliseconds with a reason rather than after a long compile.

use serde::Serialize;
use wasmparser::{Chunk, Encoding, Parser, Payload};

/// The contract's package and the versions of it this host speaks.
const CONTRACT: &str = "warden:provider";
const CONTRACT_VERSION: &str = "0.1";

/// The WASI 0.2 interfaces the host links (`wasmtime-wasi` and
/// `wasmtime-wasi-http`, any 0.2.x patch version), by package.
const WASI_P2: &[(&str, &[&str])] = &[
    ("io", &["error", "poll", "streams"]),
    ("clocks", &["monotonic-clock", "wall-clock"]),
    ("filesystem", &["types", "preopens"]),
    ("random", &["random", "insecure", "insecure-seed"]),
    (
        "cli",
        &[
            "environment",
            "exit",
            "stdin",
            "stdout",
            "stderr",
            "terminal-input",
            "terminal-output",
            "terminal-stdin",
            "terminal-stdout",
            "terminal-stderr",
        ],
    ),
    (
        "sockets",
        &[
            "network",
            "instance-network",
            "udp",
            "udp-create-socket",
            "tcp",
            "tcp-create-socket",
            "ip-name-lookup",
        ],
    ),
    ("http", &["types", "outgoing-handler"]),
];

/// The contract's interfaces a guest may import.
const HOST_IMPORTS: &[&str] = &["types", "host", "http-client"];

/// The contract's interfaces a guest may export; `provider` is required.
const EXPORTS: &[&str] = &["provider", "session-handler", "discovery", "cleanup"];

/// What `warden check` reports about a component.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ComponentReport {
    /// Size of the file.
    pub bytes: u64,
    /// The smallest `warden:provider` world it fits
    /// (`warden:provider/plugin`, `http-plugin`, `session-plugin`,
    /// `discovery-plugin`), if it is a provider at all.
    pub world: Option<String>,
    /// Its imports, each with whether this host links it.
    pub imports: Vec<ImportCheck>,
    /// The names it exports.
    pub exports: Vec<String>,
    /// Why it cannot be loaded; empty when it can (as far as names and
    /// versions tell: function types are checked when it is linked).
    pub problems: Vec<String>,
}

/// One import and whether this host links it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImportCheck {
    /// Its name, e.g. `wasi:cli/environment@0.2.6`.
    pub name: String,
    /// Whether this host provides it.
    pub links: bool,
    /// Why not, when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

impl ComponentReport {
    /// Whether nothing stands in the way of loading it.
    pub fn loads(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Reads `bytes` (a component file) without compiling it.
pub fn check_component(bytes: &[u8]) -> ComponentReport {
    let mut report = ComponentReport {
        bytes: bytes.len() as u64,
        world: None,
        imports: Vec::new(),
        exports: Vec::new(),
        problems: Vec::new(),
    };
    if let Err(e) = read_names(bytes, &mut report) {
        report.problems.push(e);
        return report;
    }
    for import in &mut report.imports {
        if let Err(why) = links(&import.name) {
            import.links = false;
            report
                .problems
                .push(format!("it imports `{}`, which {why}", import.name));
            import.why = Some(why);
        }
    }
    let exported = |iface: &str| {
        report
            .exports
            .iter()
            .any(|e| contract_interface(e) == Some(iface))
    };
    if !exported("provider") {
        let listed = if report.exports.is_empty() {
            "nothing".to_string()
        } else {
            report.exports.join(", ")
        };
        report.problems.push(format!(
            "it does not implement the Warden provider contract: it exports no `{CONTRACT}/provider@{CONTRACT_VERSION}.x` (it exports {listed}); build it for world `{CONTRACT}/plugin` (see wit/provider.wit)"
        ));
    } else {
        let imports_http = report.imports.iter().any(|i| {
            contract_interface(&i.name) == Some("http-client") || i.name.starts_with("wasi:http/")
        });
        let world = if exported("discovery") {
            "discovery-plugin"
        } else if exported("session-handler") || exported("cleanup") {
            "session-plugin"
        } else if imports_http {
            "http-plugin"
        } else {
            "plugin"
        };
        report.world = Some(format!("{CONTRACT}/{world}@{CONTRACT_VERSION}.0"));
    }
    for e in &report.exports {
        if let Some(rest) = e.strip_prefix(&format!("{CONTRACT}/")) {
            let (iface, version) = split_version(rest);
            if !EXPORTS.contains(&iface) {
                report.problems.push(format!(
                    "it exports `{e}`, which is not part of the Warden contract"
                ));
            } else if !speaks(version) {
                report.problems.push(format!(
                    "it exports `{e}`, a version of the contract this host does not speak ({CONTRACT}@{CONTRACT_VERSION}.x)"
                ));
            }
        }
    }
    report
}

/// The interface name of a `warden:provider/NAME@VERSION` item.
fn contract_interface(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(CONTRACT)?.strip_prefix('/')?;
    Some(split_version(rest).0)
}

/// Whether `version` is one of the contract's this host speaks (`0.1.x`).
fn speaks(version: Option<&str>) -> bool {
    version.is_some_and(|v| {
        v.strip_prefix(CONTRACT_VERSION)
            .is_some_and(|rest| rest.starts_with('.'))
    })
}

fn split_version(s: &str) -> (&str, Option<&str>) {
    match s.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (s, None),
    }
}

/// Whether this host links import `name`, or why not.
fn links(name: &str) -> Result<(), String> {
    let (path, version) = split_version(name);
    let Some((package, iface)) = path.split_once('/') else {
        return Err("is not a WASI or Warden interface this host provides (a bare function or instance import)".into());
    };
    if package == CONTRACT {
        if !HOST_IMPORTS.contains(&iface) {
            return Err(format!(
                "is not an interface the host provides (it provides {})",
                HOST_IMPORTS.join(", ")
            ));
        }
        if !speaks(version) {
            return Err(format!(
                "is a version of the contract this host does not speak ({CONTRACT}@{CONTRACT_VERSION}.x)"
            ));
        }
        return Ok(());
    }
    let Some(wasi) = package.strip_prefix("wasi:") else {
        return Err("is not a WASI or Warden interface this host provides".into());
    };
    match version {
        Some(v) if v.starts_with("0.3.") || v.starts_with("0.3-") => {
            return Err(format!(
                "is WASI {v} (WASI 0.3, async); this host links WASI 0.2.x only: build the component for WASI 0.2 (e.g. the wasm32-wasip2 target)"
            ))
        }
        Some(v) if v.starts_with("0.2.") => {}
        Some(v) => {
            return Err(format!(
                "is WASI {v}; this host links WASI 0.2.x only"
            ))
        }
        None => return Err("has no version; this host links WASI 0.2.x".into()),
    }
    match WASI_P2.iter().find(|(p, _)| *p == wasi) {
        Some((_, ifaces)) if ifaces.contains(&iface) => Ok(()),
        Some(_) => Err(format!(
            "is not an interface of wasi:{wasi} this host links"
        )),
        None => Err(format!(
            "is from wasi:{wasi}, which this host does not provide to plugins"
        )),
    }
}

/// Collects the outer component's import and export names; nested modules
/// and components are skipped, not read.
fn read_names(bytes: &[u8], report: &mut ComponentReport) -> Result<(), String> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err("not a WebAssembly file".into());
    }
    let invalid =
        |e: wasmparser::BinaryReaderError| format!("not a valid WebAssembly component: {e}");
    let mut parser = Parser::new(0);
    let mut data = bytes;
    loop {
        let (payload, consumed) = match parser.parse(data, true).map_err(invalid)? {
            Chunk::Parsed { consumed, payload } => (payload, consumed),
            Chunk::NeedMoreData(_) => {
                return Err("not a valid WebAssembly component: truncated".into())
            }
        };
        data = &data[consumed..];
        match payload {
            Payload::Version { encoding, .. } if encoding != Encoding::Component => {
                return Err("a core WebAssembly module, not a component: make one with `wasm-tools component new` (or build for wasm32-wasip2, componentize-py, jco)".into());
            }
            Payload::ComponentImportSection(section) => {
                for import in section {
                    let import = import.map_err(invalid)?;
                    report.imports.push(ImportCheck {
                        name: import.name.name.to_string(),
                        links: true,
                        why: None,
                    });
                }
            }
            Payload::ComponentExportSection(section) => {
                for export in section {
                    report
                        .exports
                        .push(export.map_err(invalid)?.name.name.to_string());
                }
            }
            // The outer parser has moved past the nested item already; the
            // data is skipped here instead of being read.
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => {
                let len = unchecked_range.len();
                if len > data.len() {
                    return Err("not a valid WebAssembly component: truncated".into());
                }
                data = &data[len..];
            }
            Payload::End(_) => return Ok(()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(wat: &str) -> Vec<u8> {
        wat::parse_str(wat).unwrap()
    }

    #[test]
    fn wasi_0_3_is_named_as_such() {
        let c = component(
            r#"(component
                (import "wasi:cli/environment@0.3.0" (instance))
                (import "warden:provider/host@0.1.0" (instance))
            )"#,
        );
        let r = check_component(&c);
        assert!(!r.loads());
        assert!(r.problems.iter().any(|p| p.contains("WASI 0.3")), "{r:?}");
        assert!(r.imports[1].links, "{r:?}");
        assert!(r.problems.iter().any(|p| p.contains("does not implement")));
    }

    #[test]
    fn wasi_0_2_patch_versions_link() {
        for v in ["0.2.0", "0.2.6", "0.2.12", "0.2.15"] {
            assert!(links(&format!("wasi:cli/environment@{v}")).is_ok(), "{v}");
        }
        assert!(links("wasi:http/incoming-handler@0.2.6").is_err());
        assert!(links("wasi:keyvalue/store@0.2.0").is_err());
        assert!(links("warden:provider/host@0.2.0").is_err());
        assert!(links("warden:provider/http-client@0.1.3").is_ok());
    }

    #[test]
    fn a_core_module_or_garbage_is_named() {
        let r = check_component(&wat::parse_str("(module)").unwrap());
        assert!(r.problems[0].contains("core WebAssembly module"), "{r:?}");
        let r = check_component(b"\0asm\x0d\x00\x01\x00garbage");
        assert!(!r.loads());
        let r = check_component(b"hello");
        assert!(r.problems[0].contains("not a WebAssembly file"));
    }
}
