//! A small HTTP/1.1 server for tests and benchmarks (shared by both).

/// What the test server received.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// An HTTP/1.1 server on 127.0.0.1 with keep-alive, for egress tests. It
/// records every request and connection; it never echoes `authorization`.
///
/// Routes: `/json` (JSON describing the request), `/echo` (the request body
/// back as JSON), `/big?n=N[&chunked=1]`, `/redirect?to=URL`, `/flaky`
/// (500 for the first two requests, then 200), `/slow?ms=N`, `/status/N`,
/// `/store` (keeps the whole request, `authorization` included, as a paste
/// or webhook-inspection service would) and `/load` (returns what was
/// stored, in small chunks), `/encoded?coding=C` (a body labelled
/// `content-encoding: C`).
pub struct TestServer {
    pub port: u16,
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
    pub connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Connections open now.
    pub open: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// Shared by a server's connections.
#[derive(Default)]
struct Shared {
    requests: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
    flaky: std::sync::atomic::AtomicUsize,
    stored: std::sync::Mutex<Vec<u8>>,
    /// Whether requests are recorded without their bodies.
    discard: bool,
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_on(0)
    }

    /// On `port` (0: any free one), e.g. a collector that comes up late.
    pub fn start_on(port: u16) -> TestServer {
        Self::start_with(port, false)
    }

    /// One that records requests without their bodies: a collector for a
    /// benchmark, which must not grow with what it receives.
    pub fn start_discarding() -> TestServer {
        Self::start_with(0, true)
    }

    fn start_with(port: u16, discard: bool) -> TestServer {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let connections = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Shared {
            requests: requests.clone(),
            discard,
            ..Shared::default()
        });
        let (c, o) = (connections.clone(), open.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                o.fetch_add(1, Ordering::SeqCst);
                let (shared, o) = (shared.clone(), o.clone());
                std::thread::spawn(move || {
                    serve_connection(stream, &shared);
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        TestServer {
            port,
            requests,
            connections,
            open,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve_connection(stream: std::net::TcpStream, shared: &Shared) {
    use std::io::BufReader;
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    // A discarding server reads each body into the last one's room.
    let mut spare = Vec::new();
    while let Some(seen) = read_request(&mut reader, std::mem::take(&mut spare)) {
        let kept = Seen {
            method: seen.method.clone(),
            target: seen.target.clone(),
            headers: seen.headers.clone(),
            body: match shared.discard {
                true => Vec::new(),
                false => seen.body.clone(),
            },
        };
        shared.requests.lock().unwrap().push(kept);
        let close = seen
            .headers
            .iter()
            .any(|(k, v)| k == "connection" && v.eq_ignore_ascii_case("close"));
        if !write_reply(&mut out, reply(&seen, shared)) || close {
            return;
        }
        if shared.discard {
            spare = seen.body;
        }
    }
}

/// One request off the connection, its body read into `room`; `None`
/// when it ends or is malformed.
fn read_request(reader: &mut impl std::io::BufRead, room: Vec<u8>) -> Option<Seen> {
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let body = read_body(reader, &headers, room)?;
    Some(Seen {
        method,
        target,
        headers,
        body,
    })
}

/// A request's body, in `room`: `content-length` bytes, or chunks.
fn read_body(
    reader: &mut impl std::io::BufRead,
    headers: &[(String, String)],
    mut room: Vec<u8>,
) -> Option<Vec<u8>> {
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    room.clear();
    if !chunked {
        room.resize(len, 0);
        reader.read_exact(&mut room).ok()?;
        return Some(room);
    }
    let mut body = room;
    loop {
        let mut size = String::new();
        if reader.read_line(&mut size).unwrap_or(0) == 0 {
            return None;
        }
        let n = usize::from_str_radix(size.trim(), 16).ok()?;
        let mut chunk = vec![0u8; n + 2];
        reader.read_exact(&mut chunk).ok()?;
        if n == 0 {
            return Some(body);
        }
        body.extend_from_slice(&chunk[..n]);
    }
}

/// What the server answers.
struct Reply {
    status: u16,
    extra: String,
    chunked: bool,
    chunk_size: usize,
    body: Vec<u8>,
}

/// The answer to one request, by its path.
fn reply(seen: &Seen, shared: &Shared) -> Reply {
    let Seen {
        method,
        target,
        headers,
        body,
    } = seen;
    let flaky = &shared.flaky;
    let (path, query) = target.split_once('?').unwrap_or((target.as_str(), ""));
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
    };
    let mut status = 200;
    let mut extra = String::new();
    let mut chunked = false;
    let mut chunk_size = 1000;
    let body_out: Vec<u8> = match path {
        "/json" => {
            let visible: serde_json::Map<String, serde_json::Value> = headers
                .iter()
                .filter(|(k, _)| k != "authorization")
                .map(|(k, v)| (k.clone(), serde_json::json!(v)))
                .collect();
            serde_json::to_vec(&serde_json::json!({"method": method, "path": path, "query": query, "headers": visible})).unwrap()
        }
        "/echo" => serde_json::to_vec(&serde_json::json!({"method": method, "got": serde_json::from_slice::<serde_json::Value>(body).unwrap_or(serde_json::Value::Null)})).unwrap(),
        "/big" => {
            chunked = param("chunked").is_some();
            vec![b'x'; param("n").and_then(|n| n.parse().ok()).unwrap_or(0)]
        }
        "/redirect" => {
            status = 302;
            extra = format!("Location: {}\r\n", param("to").unwrap_or_default().replace("%2F", "/").replace("%3A", ":"));
            Vec::new()
        }
        // Quotes the whole request back, as echo and debug endpoints
        // do: in the body (in small chunks, as text and as JSON) and in
        // response headers.
        "/reflect" => {
            chunked = true;
            chunk_size = 7;
            let mut text = format!("{method} {target}\n");
            for (k, v) in headers {
                text.push_str(&format!("{k}: {v}\n"));
                extra.push_str(&format!("x-echo: {v}\r\n"));
            }
            text.push_str(&serde_json::to_string(headers).unwrap());
            text.into_bytes()
        }
        "/tiny" => br#"{"ok":true}"#.to_vec(),
        "/store" => {
            let mut stored = shared.stored.lock().unwrap();
            stored.clear();
            for (k, v) in headers {
                stored.extend_from_slice(format!("{k}: {v}\n").as_bytes());
            }
            stored.extend_from_slice(body);
            br#"{"stored":true}"#.to_vec()
        }
        "/load" => {
            chunked = true;
            chunk_size = 5;
            shared.stored.lock().unwrap().clone()
        }
        // What was stored, as a JSON string with every character
        // escaped (`\u0074...`): byte-wise it never matches a value.
        "/escaped" => {
            let stored = shared.stored.lock().unwrap().clone();
            let escaped: String = String::from_utf8_lossy(&stored)
                .encode_utf16()
                .map(|u| format!("\\u{u:04x}"))
                .collect();
            format!("{{\"stored\":\"{escaped}\"}}").into_bytes()
        }
        "/encoded" => {
            extra = format!("content-encoding: {}\r\n", param("coding").unwrap_or_default());
            b"\x1f\x8b compressed bytes".to_vec()
        }
        "/flaky" => {
            if flaky.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
                status = 500;
            }
            br#"{"flaky":true}"#.to_vec()
        }
        "/slow" => {
            std::thread::sleep(std::time::Duration::from_millis(param("ms").and_then(|n| n.parse().ok()).unwrap_or(1000)));
            br#"{"slow":true}"#.to_vec()
        }
        p if p.starts_with("/status/") => {
            status = p[8..].parse().unwrap_or(500);
            Vec::new()
        }
        // A collector that refuses everything, at length (1 MiB of
        // explanation).
        p if p.starts_with("/refuse/") => {
            status = 500;
            vec![b'x'; 1 << 20]
        }
        // An OTLP/HTTP collector that takes everything (for benchmarks):
        // an empty Export*ServiceResponse.
        p if p == "/v1/traces" || p == "/v1/metrics" => Vec::new(),
        _ => {
            status = 404;
            b"not found".to_vec()
        }
    };
    Reply {
        status,
        extra,
        chunked,
        chunk_size,
        body: body_out,
    }
}

/// Writes `reply`; `false` when the connection is gone.
fn write_reply(out: &mut impl std::io::Write, reply: Reply) -> bool {
    let ctype = if reply.body.first() == Some(&b'{') {
        "application/json"
    } else {
        "text/plain"
    };
    let (status, extra) = (reply.status, &reply.extra);
    let mut resp =
        format!("HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\nx-served-by: test\r\n{extra}");
    let bytes = if reply.chunked {
        resp.push_str("transfer-encoding: chunked\r\n\r\n");
        let mut bytes = resp.into_bytes();
        for chunk in reply.body.chunks(reply.chunk_size) {
            bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            bytes.extend_from_slice(chunk);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"0\r\n\r\n");
        bytes
    } else {
        resp.push_str(&format!("content-length: {}\r\n\r\n", reply.body.len()));
        let mut bytes = resp.into_bytes();
        bytes.extend_from_slice(&reply.body);
        bytes
    };
    out.write_all(&bytes).is_ok()
}

/// A port on 127.0.0.1 that accepts connections and never answers (nor
/// closes them): a peer that hangs.
pub fn silent_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}
