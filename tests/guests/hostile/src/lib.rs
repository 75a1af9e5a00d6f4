//! A hostile provider for the host's tests: each capability attempts one
//! thing the sandbox must stop or contain, and reports what it observed.

use serde::Deserialize;
use serde_json::{json, Value};
use warden_sdk::{
    env, fs, http, log, Capabilities, Capability, Config, Error, Provider, ProviderInfo,
    SessionConfig, Sessions,
};

/// Raw WASI imports, generated from `wit/raw.wit` by `cargo xtask bindings`.
#[rustfmt::skip]
mod raw;

struct Hostile {
    calls: u64,
    /// Host resources kept alive across calls (sockets, header sets, files).
    kept: Vec<Box<dyn std::any::Any>>,
}

#[derive(Deserialize)]
struct HeadersIn {
    url: String,
    headers: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct RequestIn {
    url: String,
    method: String,
    headers: Vec<(String, String)>,
    /// Through `wasi:http` rather than the host's HTTP client.
    #[serde(default)]
    wasi: bool,
}

#[derive(Deserialize)]
struct OpenMany {
    path: String,
    n: usize,
}

#[derive(Deserialize)]
struct StreamMany {
    path: String,
    n: usize,
    /// `read`, `write`, `append` (a stream of the file) or `list` (a
    /// listing of the directory).
    mode: String,
    /// Ask for the granted directories this many times first.
    #[serde(default)]
    preopens: usize,
}

#[derive(Deserialize)]
struct LookupMany {
    n: usize,
    /// Names are `n<i>.<suffix>`.
    suffix: String,
}

#[derive(Deserialize)]
struct EnvFlood {
    n: usize,
    #[serde(default)]
    len: usize,
    /// Ask for this name every time instead of made-up ones.
    name: Option<String>,
}

#[derive(Deserialize)]
struct Arg<T> {
    arg: T,
}

#[derive(Deserialize)]
struct SecretIn {
    url: String,
    secret: String,
}

#[derive(Deserialize)]
struct WriteIn {
    path: String,
    text: String,
}

fn tcp_connect(addr: &str) -> Result<Value, Error> {
    use raw::wasi::sockets::network::{
        ErrorCode, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress,
    };
    let (ip, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| Error::invalid_input("want a.b.c.d:port"))?;
    let port: u16 = port.parse().map_err(|_| Error::invalid_input("bad port"))?;
    let o: Vec<u8> = ip.split('.').map(|p| p.parse().unwrap_or(0)).collect();
    if o.len() != 4 {
        return Err(Error::invalid_input("want an IPv4 address"));
    }
    let map = |e: ErrorCode| match e {
        ErrorCode::AccessDenied | ErrorCode::NotSupported => {
            Error::denied(format!("connect {addr}: {e:?}"))
        }
        other => Error::upstream(format!("connect {addr}: {other:?}")),
    };
    let net = raw::wasi::sockets::instance_network::instance_network();
    let sock = raw::wasi::sockets::tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4)
        .map_err(map)?;
    let target = IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port,
        address: (o[0], o[1], o[2], o[3]),
    });
    sock.start_connect(&net, target).map_err(map)?;
    loop {
        match sock.finish_connect() {
            Ok(_) => return Ok(json!({ "connected": true })),
            Err(ErrorCode::WouldBlock) => sock.subscribe().block(),
            Err(e) => return Err(map(e)),
        }
    }
}

#[inline(never)]
#[allow(unconditional_recursion)]
/// The granted directory that holds `path`, and the rest of the path in it.
fn granted_dir(path: &str) -> Result<(raw::wasi::filesystem::types::Descriptor, String), Error> {
    raw::wasi::filesystem::preopens::get_directories()
        .into_iter()
        .find_map(|(d, at)| {
            let rest = path.strip_prefix(&at)?.trim_start_matches('/').to_string();
            Some((d, rest))
        })
        .ok_or_else(|| Error::invalid_input("no granted directory holds that path"))
}

/// Recurses until the wasm stack is exhausted (`hostile.stack`), on purpose.
#[allow(unconditional_recursion)]
fn recurse(depth: u64, pad: [u8; 64]) -> u64 {
    let p = std::hint::black_box(pad);
    1 + recurse(depth + 1, p) + p[(depth % 64) as usize] as u64
}

impl Provider for Hostile {
    fn info() -> ProviderInfo {
        ProviderInfo::new("hostile", "0.1.0", "Attacks the sandbox (test only)")
    }

    fn capabilities(caps: &mut Capabilities<Self>) {
        caps.add(Capability::new("hostile.echo", "Echo").metadata(json!({"test": {"nested": {"key": "v"}, "flag": true}})), |this, v: Value| {
            this.calls += 1;
            Ok(v)
        })
        .add(Capability::new("hostile.count", "Calls served by this instance"), |this, _: Value| {
            this.calls += 1;
            Ok(json!({ "calls": this.calls }))
        })
        .add(
            Capability::new("hostile.typed", "Counts calls that passed the input schema")
                .input("[:map [:n :int]]")
                .output("[:map [:n :int] [:calls :int]]"),
            |this, v: Value| {
                this.calls += 1;
                Ok(json!({ "n": v["n"], "calls": this.calls }))
            },
        )
        .add(
            Capability::new("hostile.bad-output", "Returns output that breaks its schema").output("[:map [:ok :bool]]"),
            |_, _: Value| Ok(json!({ "ok": "yes" })),
        )
        .add(
            Capability::new("hostile.remote", "Stands for a remote MCP tool")
                .describe("An Mcp-kind capability, exportable to snapshots")
                .version("2.1.0")
                .input("[:map [:a :int] [:b :int]]")
                .output(":int")
                .metadata(json!({"mcp": {"server-url": "http://127.0.0.1:9/mcp", "tool-name": "add"}}))
                .permission("call:add")
                .effect("call:external_api")
                .provider("Mcp", json!({"server-url": "http://127.0.0.1:9/mcp", "tool-name": "add", "auth-secret": "DEMO_TOKEN"})),
            |_, v: Value| Ok(json!(v["a"].as_i64().unwrap_or(0) + v["b"].as_i64().unwrap_or(0))),
        )
        .add(Capability::new("hostile.spin", "Loop forever"), |_, _: Value| {
            let mut i: u64 = 0;
            loop {
                i = std::hint::black_box(i.wrapping_add(1));
                if i == u64::MAX {
                    break;
                }
            }
            Ok(json!(i))
        })
        .add(Capability::new("hostile.alloc", "Allocate and touch N MiB"), |_, a: Arg<usize>| {
            let v = vec![1u8; a.arg << 20];
            Ok(json!({ "allocated": v.len(), "sum": v.iter().step_by(4096).map(|b| *b as u64).sum::<u64>() }))
        })
        .add(Capability::new("hostile.try-alloc", "Try to reserve N MiB"), |_, a: Arg<usize>| {
            let mut v: Vec<u8> = Vec::new();
            v.try_reserve_exact(a.arg << 20)
                .map_err(|e| Error::Unavailable(format!("allocation of {} MiB refused: {e}", a.arg)))?;
            Ok(json!({ "reserved": v.capacity() }))
        })
        .add(Capability::new("hostile.stack", "Recurse without end"), |_, _: Value| {
            Ok(json!(recurse(0, [7; 64])))
        })
        .add(Capability::new("hostile.panic", "Panic"), |_, _: Value| -> Result<Value, Error> {
            panic!("hostile guest panics on purpose")
        })
        .add(Capability::new("hostile.env", "Read an environment variable"), |_, a: Arg<String>| {
            Ok(json!({ "name": a.arg, "value": env::var(&a.arg), "visible": env::vars().len() }))
        })
        .add(Capability::new("hostile.read", "Read a file"), |_, a: Arg<String>| {
            Ok(json!({ "text": fs::read_to_string(&a.arg)? }))
        })
        .add(Capability::new("hostile.write", "Write a file"), |_, w: WriteIn| {
            fs::write(&w.path, w.text.as_bytes())?;
            Ok(json!({ "written": w.text.len() }))
        })
        .add(Capability::new("hostile.list", "List a directory"), |_, a: Arg<String>| {
            Ok(json!({ "entries": fs::read_dir(&a.arg)? }))
        })
        .add(Capability::new("hostile.http", "HTTP GET"), |_, a: Arg<String>| {
            let r = http::Request::get(a.arg).send()?;
            Ok(json!({ "status": r.status, "body": r.text() }))
        })
        .add(Capability::new("hostile.http-wasi", "HTTP GET through wasi:http"), |_, a: Arg<String>| {
            let r = http::Request::get(a.arg).send_wasi_http()?;
            Ok(json!({ "status": r.status, "body": r.text() }))
        })
        .add(Capability::new("hostile.http-headers", "HTTP GET with the given headers"), |_, a: HeadersIn| {
            let mut request = http::Request::get(a.url);
            for (name, value) in a.headers {
                request = request.header(name, value);
            }
            let r = request.send()?;
            Ok(json!({ "status": r.status, "body": r.text() }))
        })
        .add(Capability::new("hostile.fs-changes", "mkdir, symlinks (one escaping), a hard link, rename, unlink, rmdir in a granted directory"), |_, a: Arg<String>| {
            let dir = raw::wasi::filesystem::preopens::get_directories()
                .into_iter()
                .find_map(|(d, at)| (at == a.arg).then_some(d))
                .ok_or_else(|| Error::invalid_input("no such granted directory"))?;
            let show = |r: Result<(), raw::wasi::filesystem::types::ErrorCode>| match r {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("{e:?}"),
            };
            use raw::wasi::filesystem::types::PathFlags;
            Ok(json!({
                "mkdir": show(dir.create_directory_at("d")),
                "symlink-out": show(dir.symlink_at("../../../etc/passwd", "evil")),
                "symlink-abs": show(dir.symlink_at("/etc/passwd", "evil2")),
                "symlink-in": show(dir.symlink_at("f", "good")),
                "link": show(dir.link_at(PathFlags::empty(), "f", &dir, "hard")),
                "rename": show(dir.rename_at("f", &dir, "g")),
                "unlink": show(dir.unlink_file_at("g")),
                "rmdir": show(dir.remove_directory_at("d")),
            }))
        })
        .add(Capability::new("hostile.env-strict", "Ask the host for an environment variable"), |_, a: Arg<String>| {
            Ok(json!({ "value": env::try_var(&a.arg)? }))
        })
        .add(Capability::new("hostile.big-output", "Return N MiB of text"), |_, a: Arg<usize>| {
            Ok(json!("x".repeat(a.arg << 20)))
        })
        .add(Capability::new("hostile.request", "Any method and headers; returns the whole response"), |_, a: RequestIn| {
            let mut request = http::Request::new(a.method, a.url);
            for (name, value) in a.headers {
                request = request.header(name, value);
            }
            let r = if a.wasi { request.send_wasi_http()? } else { request.send()? };
            let headers: Vec<(String, String)> =
                r.headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            Ok(json!({ "status": r.status, "headers": headers, "body": String::from_utf8_lossy(&r.body) }))
        })
        .add(Capability::new("hostile.http-secret", "GET with a secret placeholder in a header"), |_, a: SecretIn| {
            let r = http::Request::get(a.url)
                .header("authorization", format!("Bearer {{{{secret:{}}}}}", a.secret))
                .send()?;
            Ok(json!({ "status": r.status }))
        })
        .add(Capability::new("hostile.sleep", "Sleep N ms"), |_, a: Arg<u64>| {
            warden_sdk::time::sleep(std::time::Duration::from_millis(a.arg));
            Ok(json!({ "slept": a.arg }))
        })
        .add(Capability::new("hostile.tcp", "Open a raw TCP connection"), |_, a: Arg<String>| tcp_connect(&a.arg))
        .add(Capability::new("hostile.print", "Write to stdout and stderr"), |_, a: Arg<String>| {
            let out = raw::wasi::cli::stdout::get_stdout();
            out.blocking_write_and_flush(format!("{}\n", a.arg).as_bytes())
                .map_err(|e| Error::internal(format!("{e:?}")))?;
            let err = raw::wasi::cli::stderr::get_stderr();
            err.blocking_write_and_flush(format!("err: {}\n", a.arg).as_bytes())
                .map_err(|e| Error::internal(format!("{e:?}")))?;
            Ok(json!({ "printed": true }))
        })
        .add(Capability::new("hostile.sockets", "Create N TCP sockets and keep them"), |this, a: Arg<usize>| {
            use raw::wasi::sockets::{network::IpAddressFamily, tcp_create_socket::create_tcp_socket};
            for i in 0..a.arg {
                match create_tcp_socket(IpAddressFamily::Ipv4) {
                    Ok(s) => this.kept.push(Box::new(s)),
                    Err(e) => return Ok(json!({ "created": i, "error": format!("{e:?}") })),
                }
            }
            Ok(json!({ "created": a.arg }))
        })
        .add(Capability::new("hostile.remote-state", "Ask the host to keep N bytes of remote state"), |_, a: Arg<usize>| {
            Ok(match warden_sdk::set_remote_state(&"x".repeat(a.arg)) {
                Ok(()) => json!({ "kept": a.arg }),
                Err(e) => json!({ "refused": e.to_string() }),
            })
        })
        .add(Capability::new("hostile.slow-release", "Leave remote state that takes N ms to release"), |_, a: Arg<u64>| {
            warden_sdk::set_remote_state(&format!("sleep:{}", a.arg)).map_err(|e| Error::internal(e.to_string()))?;
            Ok(json!({ "left": a.arg }))
        })
        .add(Capability::new("hostile.release", "Drop every kept resource"), |this, _: Value| {
            let n = this.kept.len();
            this.kept.clear();
            Ok(json!({ "released": n }))
        })
        .add(Capability::new("hostile.fields", "Create N wasi:http header sets of 60 KiB and keep them"), |this, a: Arg<usize>| {
            let value = vec![b'v'; 60 << 10];
            for i in 0..a.arg {
                let fields = raw::wasi::http::types::Fields::new();
                if let Err(e) = fields.append("x-big", &value) {
                    return Ok(json!({ "created": i, "error": format!("{e:?}") }));
                }
                this.kept.push(Box::new(fields));
            }
            Ok(json!({ "created": a.arg }))
        })
        .add(Capability::new("hostile.open-many", "Open a file N times and keep it open"), |this, a: OpenMany| {
            use raw::wasi::filesystem::types::{DescriptorFlags, OpenFlags, PathFlags};
            let (dir, rest) = granted_dir(&a.path)?;
            for i in 0..a.n {
                match dir.open_at(PathFlags::empty(), &rest, OpenFlags::empty(), DescriptorFlags::READ) {
                    Ok(f) => this.kept.push(Box::new(f)),
                    Err(e) => return Ok(json!({ "opened": i, "error": format!("{e:?}") })),
                }
            }
            Ok(json!({ "opened": a.n }))
        })
        .add(Capability::new("hostile.stream-many", "Open N streams or listings, drop their descriptors, keep them"), |this, a: StreamMany| {
            use raw::wasi::filesystem::types::{DescriptorFlags, OpenFlags, PathFlags};
            for _ in 0..a.preopens {
                this.kept.push(Box::new(raw::wasi::filesystem::preopens::get_directories()));
            }
            let (dir, rest) = granted_dir(&a.path)?;
            let flags = if a.mode == "read" || a.mode == "list" { DescriptorFlags::READ } else { DescriptorFlags::WRITE };
            for i in 0..a.n {
                let fd = match dir.open_at(PathFlags::empty(), &rest, OpenFlags::empty(), flags) {
                    Ok(f) => f,
                    Err(e) => return Ok(json!({ "opened": i, "error": format!("{e:?}") })),
                };
                let kept: Result<Box<dyn std::any::Any>, _> = match a.mode.as_str() {
                    "read" => fd.read_via_stream(0).map(|s| Box::new(s) as Box<dyn std::any::Any>),
                    "write" => fd.write_via_stream(0).map(|s| Box::new(s) as Box<dyn std::any::Any>),
                    "append" => fd.append_via_stream().map(|s| Box::new(s) as Box<dyn std::any::Any>),
                    _ => fd.read_directory().map(|s| Box::new(s) as Box<dyn std::any::Any>),
                };
                // The descriptor goes; only its stream or listing is kept.
                drop(fd);
                match kept {
                    Ok(k) => this.kept.push(k),
                    Err(e) => return Ok(json!({ "opened": i, "error": format!("{e:?}") })),
                }
            }
            Ok(json!({ "opened": a.n }))
        })
        .add(Capability::new("hostile.lookup-many", "Look up N made-up names under SUFFIX, all at once, and wait for every answer"), |_, a: LookupMany| {
            use raw::wasi::sockets::ip_name_lookup::{resolve_addresses, ErrorCode};
            let network = raw::wasi::sockets::instance_network::instance_network();
            let (mut refused, mut failed, mut answered) = (0, 0, 0);
            let mut pending = Vec::new();
            for i in 0..a.n {
                match resolve_addresses(&network, &format!("n{i}.{}", a.suffix)) {
                    Ok(stream) => pending.push(stream),
                    Err(ErrorCode::AccessDenied) => refused += 1,
                    Err(_) => failed += 1,
                }
            }
            for stream in pending {
                loop {
                    match stream.resolve_next_address() {
                        Err(ErrorCode::WouldBlock) => stream.subscribe().block(),
                        Ok(_) => {
                            answered += 1;
                            break;
                        }
                        Err(ErrorCode::AccessDenied) => {
                            refused += 1;
                            break;
                        }
                        Err(_) => {
                            failed += 1;
                            break;
                        }
                    }
                }
            }
            Ok(json!({ "refused": refused, "failed": failed, "answered": answered }))
        })
        .add(Capability::new("hostile.deny-flood", "Try N ungranted TCP connects, one socket each"), |_, a: Arg<usize>| {
            let mut denied = 0;
            for i in 0..a.arg {
                let addr = format!("127.0.0.1:{}", 1 + i % 60000);
                if let Err(Error::Denied(_)) = tcp_connect(&addr) {
                    denied += 1;
                }
            }
            Ok(json!({ "denied": denied }))
        })
        .add(Capability::new("hostile.env-flood", "Ask for N environment variables with names of LEN bytes"), |_, a: EnvFlood| {
            let mut denied = 0;
            for i in 0..a.n {
                let name = match &a.name {
                    Some(name) => name.clone(),
                    None => {
                        let mut name = format!("HOSTILE_{i}_");
                        name.extend(std::iter::repeat_n('X', a.len.saturating_sub(name.len())));
                        name
                    }
                };
                if env::try_var(&name).is_err() {
                    denied += 1;
                }
            }
            Ok(json!({ "denied": denied }))
        })
        .add(Capability::new("hostile.log", "Log N lines"), |_, a: Arg<u64>| {
            for i in 0..a.arg {
                log::info(format!("hostile log line {i}"));
            }
            Ok(json!({ "logged": a.arg }))
        });
        caps.add(
            Capability::new(
                "hostile.session-count-two",
                "Count calls within a session with server two",
            )
            .metadata(json!({"test": {"requires-session": true, "server": "two"}})),
            |_, _: Value| -> Result<Value, Error> {
                Err(Error::internal("called outside a session"))
            },
        );
        let in_session = json!({"test": {"requires-session": true, "server": "one"}});
        for (id, what) in [
            ("hostile.session-count", "Count calls within the session"),
            ("hostile.session-trap", "Trap inside the session"),
            (
                "hostile.session-key",
                "The session key the host opened the session with",
            ),
        ] {
            caps.add(
                Capability::new(id, what).metadata(in_session.clone()),
                |_, _: Value| -> Result<Value, Error> {
                    Err(Error::internal("called outside a session"))
                },
            );
        }
    }

    fn init(config: Config) -> Result<Self, Error> {
        if config.get::<bool>("fail-init")?.unwrap_or(false) {
            return Err(Error::Unavailable("configured to fail init".into()));
        }
        Ok(Hostile {
            calls: 0,
            kept: Vec::new(),
        })
    }

    /// State `sleep:MS` takes MS milliseconds to release (a server that is
    /// slow to close a session).
    fn release(&mut self, state: &str) {
        if let Some(ms) = state.strip_prefix("sleep:").and_then(|m| m.parse().ok()) {
            warden_sdk::time::sleep(std::time::Duration::from_millis(ms));
        }
    }
}

/// A session: its calls so far and the key it was opened with.
struct Counter {
    calls: u64,
    key: String,
}

impl Sessions for Hostile {
    type Session = Counter;

    fn open(&mut self, config: SessionConfig) -> Result<Counter, Error> {
        if config.meta_str("test.server").is_none() {
            return Err(Error::invalid_input("metadata test.server missing"));
        }
        Ok(Counter {
            calls: 0,
            key: config.session_key,
        })
    }

    fn call(
        &mut self,
        session: &mut Counter,
        capability: &str,
        _input: Value,
    ) -> Result<Value, Error> {
        session.calls += 1;
        match capability {
            "hostile.session-count" | "hostile.session-count-two" => Ok(json!(session.calls)),
            "hostile.session-key" => Ok(json!(session.key)),
            "hostile.session-trap" => panic!("hostile: trap inside a session"),
            other => Err(Error::not_found(other.to_string())),
        }
    }
}

warden_sdk::export!(Hostile, sessions);
