//! `[telemetry]`: `warden serve` exporting OTLP to a receiver built on the
//! official `opentelemetry-proto` definitions (`tests/serve/otlp_receiver.py`),
//! over HTTP/protobuf and gRPC. One trace runs from the client's
//! `traceparent` (in `params._meta`, or the HTTP header) through the MCP
//! request's span and the capability call's span to its egress request,
//! whose `traceparent` the upstream server receives; the metrics arrive
//! with their names.

use super::util::{modern, python, repo, Serve};
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use warden_test_support::components::component;
use warden_test_support::http_server::TestServer;

/// The receiver, writing what it gets to a file, one JSON object a line.
struct Receiver {
    child: Child,
    out: PathBuf,
    http: u16,
    grpc: u16,
}

impl Receiver {
    fn start(dir: &Path) -> Receiver {
        let out = dir.join("otlp.jsonl");
        let mut child = Command::new(python())
            .arg(repo().join("tests/serve/otlp_receiver.py"))
            .arg("--out")
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(warden_test_support::peer_stderr())
            .spawn()
            .expect("starting the OTLP receiver (cargo xtask test makes .venv)");
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("the receiver's ports");
        let port = |key: &str| -> u16 {
            first
                .split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("no {key} in {first:?}"))
        };
        Receiver {
            http: port("http="),
            grpc: port("grpc="),
            out,
            child,
        }
    }

    fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until `found` holds for what arrived.
    fn wait(&self, what: &str, found: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let records = self.records();
            if found(&records) {
                return records;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within 60 s; received: {}",
                records
                    .iter()
                    .map(|r| format!("{} {}", r["signal"], r["name"]))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(
    dir: &Path,
    endpoint: &str,
    protocol: &str,
    upstream: &TestServer,
    extra: &str,
) -> String {
    format!(
        r#"
[plugins.hostile]
component = "{hostile}"
grants = {{ network = ["http://127.0.0.1:{port}"] }}

[[policy.rules]]
capability = "hostile.count"
decision = "deny"
reason = "not in this test"

[audit]
path = "{audit}"

[telemetry]
otlp-endpoint = "{endpoint}"
protocol = "{protocol}"
service-name = "warden-test"
metrics-interval-ms = 300
{extra}
"#,
        hostile = component("hostile").display(),
        port = upstream.port,
        audit = dir.join("audit.jsonl").display(),
    )
}

fn span<'a>(records: &'a [Value], name: &str) -> Option<&'a Value> {
    records
        .iter()
        .find(|r| r["signal"] == "span" && r["name"] == name)
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// The span named `name` whose parent is `parent`'s span.
fn child<'a>(records: &'a [Value], parent: &Value, name: &str) -> Option<&'a Value> {
    records.iter().find(|r| {
        r["signal"] == "span" && r["name"] == name && r["parent_span_id"] == parent["span_id"]
    })
}

/// The server span of the request with JSON-RPC id `id`, named `name`.
fn request_span<'a>(records: &'a [Value], name: &str, id: u64) -> Option<&'a Value> {
    records.iter().find(|r| {
        r["signal"] == "span"
            && r["name"] == name
            && r["attributes"]["jsonrpc.request.id"].as_str() == Some(id.to_string().as_str())
    })
}

/// One call (JSON-RPC id `id`) with the client's `traceparent` in `_meta`;
/// the trace's spans, parent to child, and the `traceparent` the upstream
/// got. The same before and after the capability's first call.
fn traced_call(serve: &Serve, receiver: &Receiver, upstream: &TestServer, id: u64) {
    let url = upstream.url("/json");
    let traceparent = format!("00-{TRACE}-{CLIENT_SPAN}-01");
    let (status, answer) = modern(
        serve.port,
        id,
        "tools/call",
        json!({"name": "hostile.http", "arguments": {"arg": url},
               "_meta": {"traceparent": traceparent}}),
        &[],
    );
    assert_eq!(status, 200, "{answer}");
    assert_ne!(answer["result"]["isError"], true, "{answer}");
    let spans = |r: &[Value]| {
        let server = request_span(r, "tools/call hostile.http", id)?;
        let call = child(r, server, "execute_tool hostile.http")?;
        let egress = child(r, call, "GET")?;
        Some((server.clone(), call.clone(), egress.clone()))
    };
    let records = receiver.wait("the call's three spans", |r| spans(r).is_some());
    let (server, call, egress) = spans(&records).unwrap();
    let (server, call, egress) = (&server, &call, &egress);
    for s in [server, call, egress] {
        assert_eq!(s["trace_id"], TRACE, "one trace: {s}");
        assert_eq!(s["resource"]["service.name"], "warden-test");
    }
    assert_eq!(
        server["parent_span_id"], CLIENT_SPAN,
        "the client's span is the parent"
    );
    assert_eq!(server["kind"], "SPAN_KIND_SERVER");
    assert_eq!(server["attributes"]["mcp.method.name"], "tools/call");
    assert_eq!(server["attributes"]["gen_ai.tool.name"], "hostile.http");
    assert_eq!(server["attributes"]["mcp.protocol.version"], "2026-07-28");
    assert_eq!(
        server["attributes"]["gen_ai.operation.name"],
        "execute_tool"
    );
    assert_eq!(server["name"], "tools/call hostile.http");
    assert_eq!(server["attributes"]["network.transport"], "tcp");
    assert_eq!(server["attributes"]["network.protocol.name"], "http");
    assert_eq!(call["parent_span_id"], server["span_id"]);
    assert_eq!(call["name"], "execute_tool hostile.http");
    assert_eq!(call["kind"], "SPAN_KIND_INTERNAL");
    assert_eq!(call["attributes"]["gen_ai.operation.name"], "execute_tool");
    assert_eq!(call["attributes"]["gen_ai.tool.name"], "hostile.http");
    assert_eq!(call["attributes"]["warden.plugin"], "hostile");
    assert_eq!(call["attributes"]["warden.outcome"], "ok");
    let call_id = call["attributes"]["gen_ai.tool.call.id"].as_str();
    assert!(call_id.is_some_and(|id| !id.is_empty()), "{call}");
    assert!(call["attributes"].get("error.type").is_none(), "{call}");
    assert_eq!(egress["parent_span_id"], call["span_id"]);
    assert_eq!(egress["kind"], "SPAN_KIND_CLIENT");
    assert_eq!(egress["attributes"]["http.response.status_code"], 200);
    // The upstream saw the egress span as its parent.
    let seen = upstream.seen();
    let sent = seen
        .iter()
        .rev()
        .find_map(|s| {
            s.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("traceparent"))
                .map(|(_, v)| v.clone())
        })
        .expect("the request carried a traceparent");
    assert_eq!(
        sent,
        format!("00-{TRACE}-{}-01", egress["span_id"].as_str().unwrap())
    );
}

#[test]
fn one_trace_from_the_client_through_the_call_to_its_egress_and_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(dir.path());
    let upstream = TestServer::start();
    let endpoint = format!("http://127.0.0.1:{}", receiver.http);
    let serve = Serve::start(
        dir.path(),
        &config(dir.path(), &endpoint, "http/protobuf", &upstream, ""),
        &[],
    );
    traced_call(&serve, &receiver, &upstream, 7);
    traced_call(&serve, &receiver, &upstream, 17);

    // The HTTP header names the parent when `_meta` does not; a plugin's
    // own traceparent never leaves.
    let other = "0af7651916cd43dd8448eb211c80319c";
    let header = format!("00-{other}-b7ad6b7169203331-01");
    let (status, answer) = modern(
        serve.port,
        8,
        "tools/call",
        json!({"name": "hostile.http-headers", "arguments": {"url": upstream.url("/json"),
               "headers": [["traceparent", "00-11111111111111111111111111111111-2222222222222222-01"]]}}),
        &[("traceparent", &header)],
    );
    assert_eq!(status, 200, "{answer}");
    let records = receiver.wait("the header-parented trace", |r| {
        r.iter()
            .any(|s| s["signal"] == "span" && s["trace_id"] == other && s["name"] == "GET")
    });
    let server = records
        .iter()
        .find(|s| s["trace_id"] == other && s["kind"] == "SPAN_KIND_SERVER")
        .expect("a server span in the header's trace");
    assert_eq!(server["parent_span_id"], "b7ad6b7169203331");
    let forged = upstream.seen().iter().any(|s| {
        s.headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("traceparent") && v.contains("1111111111"))
    });
    assert!(!forged, "the host owns the trace headers of what leaves");

    // A denied call: an error span and a denial counted.
    let (_, answer) = modern(
        serve.port,
        9,
        "tools/call",
        json!({"name": "hostile.count", "arguments": {}}),
        &[],
    );
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    let metrics = [
        "warden.calls",
        "warden.call.duration",
        "warden.denials",
        "warden.fuel.used",
        "warden.instances",
        "warden.audit.queue",
        "warden.mcp.sessions",
        "mcp.server.operation.duration",
    ];
    let records = receiver.wait("every metric", |r| {
        metrics
            .iter()
            .all(|m| r.iter().any(|p| p["signal"] == "metric" && p["name"] == *m))
            && r.iter()
                .any(|p| p["name"] == "warden.calls" && p["attributes"]["warden.outcome"] == "deny")
            && span(r, "tools/call hostile.count").is_some()
    });
    let denied = records
        .iter()
        .find(|p| p["name"] == "warden.denials" && p["attributes"]["warden.effect"] == "call")
        .expect("the denied call counted");
    assert!(denied["value"].as_i64().unwrap_or(0) >= 1, "{denied}");
    let calls = records
        .iter()
        .find(|p| {
            p["name"] == "warden.calls"
                && p["attributes"]["warden.outcome"] == "deny"
                && p["attributes"]["gen_ai.tool.name"] == "hostile.count"
        })
        .expect("the denied call by its capability");
    assert_eq!(calls["value"].as_i64(), Some(1), "one call: {calls}");
    let fuel = records
        .iter()
        .find(|p| p["name"] == "warden.fuel.used" && p["attributes"]["warden.plugin"] == "hostile")
        .expect("the plugin's fuel");
    assert!(fuel["value"].as_i64().unwrap_or(0) > 0, "{fuel}");
    let duration = records
        .iter()
        .find(|p| p["name"] == "mcp.server.operation.duration")
        .unwrap();
    assert_eq!(duration["unit"], "s");
    assert_eq!(duration["bounds"][0], 0.01, "MCP's buckets: {duration}");
    let failed = span(&records, "tools/call hostile.count").expect("the denied call's span");
    assert_eq!(failed["attributes"]["error.type"], "tool_error");
    assert!(
        failed["attributes"]
            .get("rpc.response.status_code")
            .is_none(),
        "a tool's error is no JSON-RPC error: {failed}"
    );
    assert_eq!(failed["status"], "STATUS_CODE_ERROR");
    let refused = span(&records, "execute_tool hostile.count").expect("the denied call");
    assert_eq!(refused["parent_span_id"], failed["span_id"]);
    assert_eq!(refused["attributes"]["warden.outcome"], "deny");
    assert_eq!(refused["attributes"]["error.type"], "deny");
    assert_eq!(refused["status"], "STATUS_CODE_ERROR");
}

/// Over gRPC, recording no new trace (`sample-ratio = 0.0`): a client's
/// sampled trace is still followed, a call without one leaves no span,
/// and its metrics arrive all the same.
#[test]
fn over_grpc_too_and_sampled_as_configured() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(dir.path());
    let upstream = TestServer::start();
    let endpoint = format!("http://127.0.0.1:{}", receiver.grpc);
    let serve = Serve::start(
        dir.path(),
        &config(
            dir.path(),
            &endpoint,
            "grpc",
            &upstream,
            "sample-ratio = 0.0",
        ),
        &[],
    );
    traced_call(&serve, &receiver, &upstream, 7);
    let (status, answer) = modern(
        serve.port,
        11,
        "tools/call",
        json!({"name": "hostile.echo", "arguments": {"unsampled": true}}),
        &[],
    );
    assert_eq!(status, 200, "{answer}");
    receiver.wait("the unsampled call's metrics", |r| {
        r.iter().any(|p| {
            p["signal"] == "metric"
                && p["name"] == "warden.calls"
                && p["attributes"]["gen_ai.tool.name"] == "hostile.echo"
        })
    });
    // A client's unsampled trace is followed as unsampled: no spans, and
    // the upstream is told the same trace, unsampled, from a new span.
    let unsampled = "5ce0e9a56015fec5aadfa328ae398115";
    let before = upstream.seen().len();
    let (status, answer) = modern(
        serve.port,
        12,
        "tools/call",
        json!({"name": "hostile.http", "arguments": {"arg": upstream.url("/json")},
               "_meta": {"traceparent": format!("00-{unsampled}-ab42124a3c573678-00")}}),
        &[],
    );
    assert_eq!(status, 200, "{answer}");
    let sent = upstream.seen()[before..]
        .iter()
        .find_map(|s| {
            s.headers
                .iter()
                .find(|(k, _)| k == "traceparent")
                .map(|(_, v)| v.clone())
        })
        .expect("the unsampled call's request carried a traceparent");
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts.len(), 4, "{sent}");
    assert_eq!((parts[1], parts[3]), (unsampled, "00"), "{sent}");
    assert!(
        parts[2] != "ab42124a3c573678" && parts[2] != "0000000000000000",
        "{sent}"
    );
    // Spans wait at most a second to be exported.
    std::thread::sleep(Duration::from_millis(1500));
    let records = receiver.records();
    assert!(
        span(&records, "tools/call hostile.echo").is_none(),
        "a new trace was recorded at sample-ratio 0"
    );
    assert!(
        !records
            .iter()
            .any(|r| r["signal"] == "span" && r["trace_id"] == unsampled),
        "an unsampled client's trace was recorded"
    );
    assert!(records.iter().all(|r| r["transport"] == "grpc"));
}

/// `propagate = false`: what leaves carries no trace header at all, the
/// plugin's own included. `timeout-ms`: a collector that never answers
/// holds up neither calls nor the exit by more than its exports' timeout.
#[test]
fn propagation_off_and_a_silent_collector_bounded_by_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = TestServer::start();
    let endpoint = format!(
        "http://127.0.0.1:{}",
        warden_test_support::http_server::silent_port()
    );
    let mut serve = Serve::start(
        dir.path(),
        &config(
            dir.path(),
            &endpoint,
            "http/protobuf",
            &upstream,
            "propagate = false\ntimeout-ms = 300",
        ),
        &[],
    );
    for id in 0..20 {
        let (status, answer) = modern(
            serve.port,
            id,
            "tools/call",
            json!({"name": "hostile.http-headers", "arguments": {"url": upstream.url("/json"),
                   "headers": [["traceparent", "00-11111111111111111111111111111111-2222222222222222-01"],
                               ["tracestate", "forged=1"]]},
                   "_meta": {"traceparent": format!("00-{TRACE}-{CLIENT_SPAN}-01")}}),
            &[],
        );
        assert_eq!(status, 200, "{answer}");
        assert_ne!(answer["result"]["isError"], true, "{answer}");
    }
    let seen = upstream.seen();
    assert_eq!(seen.len(), 20);
    for request in &seen {
        assert!(
            !request
                .headers
                .iter()
                .any(|(k, _)| k == "traceparent" || k == "tracestate"),
            "a trace header left with propagation off: {:?}",
            request.headers
        );
    }
    // Exiting flushes spans and metrics to the silent collector: each
    // attempt gives up after 300 ms (the default would wait 10 s).
    let started = Instant::now();
    let status = serve.signal_and_wait("TERM");
    assert!(status.success(), "{status}: {}", serve.log());
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the exit waited {:?} on a collector that never answers",
        started.elapsed()
    );
}

/// A collector that refuses every export with a long explanation: calls
/// are not held up, and each failed export is one bounded warning that
/// names the collector's status.
#[test]
fn a_refusing_collector_costs_warnings_not_calls() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = TestServer::start();
    let endpoint = upstream.url("/refuse");
    let mut serve = Serve::start(
        dir.path(),
        &config(dir.path(), &endpoint, "http/protobuf", &upstream, ""),
        &[],
    );
    for id in 0..5 {
        let (status, answer) = modern(
            serve.port,
            id,
            "tools/call",
            json!({"name": "hostile.echo", "arguments": {"refused": id}}),
            &[],
        );
        assert_eq!(status, 200, "{answer}");
        assert_ne!(answer["result"]["isError"], true, "{answer}");
    }
    let status = serve.signal_and_wait("TERM");
    assert!(status.success(), "{status}: {}", serve.log());
    let log = serve.log();
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("spans not exported"))
        .collect();
    assert!(!warned.is_empty(), "no warning:\n{log}");
    for line in warned {
        assert!(line.contains("HTTP 500"), "{line}");
        assert!(
            line.len() < 1000,
            "a collector's answer repeated whole: {} bytes",
            line.len()
        );
    }
}
