//! `[audit.sink]`: records shipped as they are written, to a real HTTP
//! server on 127.0.0.1 and to a real rsyslogd (Debian's), with a collector
//! that is down costing no record in the file and its gap reported.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use warden::audit::sink::{SinkConfig, SinkFormat, SinkSettings};
use warden::audit::{AuditLog, Effect, Entry, Outcome, SyncPolicy};
use warden_test_support::http_server::TestServer;

fn settings(url: &str, format: SinkFormat, buffer: usize) -> SinkSettings {
    SinkSettings {
        url: url.into(),
        format,
        buffer_records: Some(buffer),
        token_secret: None,
        ca: None,
        timeout_ms: Some(1000),
    }
}

fn open(path: &Path, sink: &SinkSettings, token: Option<&str>) -> Result<AuditLog> {
    open_trusting(path, sink, token, None)
}

/// [`open`], trusting the CA certificate `ca` (PEM text) besides the
/// public roots.
fn open_trusting(
    path: &Path,
    sink: &SinkSettings,
    token: Option<&str>,
    ca: Option<String>,
) -> Result<AuditLog> {
    let config =
        SinkConfig::new(sink, token.map(str::to_string), ca).map_err(anyhow::Error::msg)?;
    Ok(AuditLog::open_shipped(
        path,
        SyncPolicy::Flush,
        0,
        None,
        Some(config),
        None,
    )?)
}

fn entry(n: usize, decision: Outcome) -> Entry {
    Entry {
        plugin: "files".into(),
        capability: "files.write".into(),
        call_id: format!("call-{n}"),
        effect: Effect::File,
        target: format!("/data/{n}.txt"),
        decision,
        reason: "granted".into(),
        ..Entry::default()
    }
}

fn records(path: &Path) -> Result<Vec<warden::audit::Record>> {
    std::fs::read_to_string(path)?
        .lines()
        .map(|l| serde_json::from_str(l).context("a record"))
        .collect()
}

/// Every JSON event the collector was sent, in order.
fn received(server: &TestServer) -> Vec<serde_json::Value> {
    server
        .seen()
        .iter()
        .filter(|s| s.method == "POST")
        .flat_map(|s| {
            serde_json::from_slice::<Vec<serde_json::Value>>(&s.body).expect("a JSON array")
        })
        .collect()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[test]
fn records_reach_an_http_collector_as_ocsf_events_with_their_chain() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("audit.jsonl");
    let server = TestServer::start();
    let log = open(
        &path,
        &settings(&server.url("/echo"), SinkFormat::Ocsf, 100),
        Some("sink-token"),
    )?;
    for n in 0..40 {
        let decision = if n % 4 == 0 {
            Outcome::Deny
        } else {
            Outcome::Allow
        };
        log.append(entry(n, decision))?;
    }
    wait_for("40 events", || received(&server).len() == 40).with_context(|| {
        format!(
            "{:?}, {} requests: {:?}",
            log.sink_stats(),
            server.count(),
            server.seen().first().map(|s| (
                s.target.clone(),
                String::from_utf8_lossy(&s.body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ))
        )
    })?;
    // Counted once the collector's answer is in (after it recorded them).
    wait_for("40 counted as shipped", || {
        log.sink_stats().is_some_and(|s| s.shipped == 40)
    })?;
    assert_eq!(log.sink_stats().expect("a sink").dropped, 0);
    drop(log);
    let written = records(&path)?;
    let events = received(&server);
    for (record, event) in written.iter().zip(&events) {
        assert_eq!(event["metadata"]["sequence"], record.seq, "{event}");
        assert_eq!(
            event["metadata"]["correlation_uid"],
            record.call_id.as_str()
        );
        let integrity = serde_json::to_string(event)?;
        assert!(
            integrity.contains(&record.hash),
            "the event carries its hash"
        );
        assert!(integrity.contains(&record.prev), "and the previous one");
    }
    let sent = server.seen();
    let post = sent.iter().find(|s| s.method == "POST").expect("a POST");
    let header = |name: &str| {
        post.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    // The test server never echoes `authorization`, but shows it arrived.
    assert!(
        header("authorization").is_some(),
        "the bearer token is sent"
    );
    Ok(())
}

#[test]
fn a_collector_that_is_down_loses_nothing_from_the_file_and_the_gap_is_reported() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("audit.jsonl");
    let port = warden_test_support::free_port();
    let url = format!("http://127.0.0.1:{port}/echo");
    let log = open(&path, &settings(&url, SinkFormat::Warden, 3), None)?;
    let start = Instant::now();
    for n in 0..20 {
        log.append(entry(n, Outcome::Allow))?;
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "appends do not wait for the collector"
    );
    wait_for("records dropped from the sink", || {
        log.sink_stats().is_some_and(|s| s.dropped > 0 && s.failing)
    })?;
    // The collector comes up: the held records go, then the report.
    let server = TestServer::start_on(port);
    log.append(entry(20, Outcome::Allow))?;
    wait_for("the gap's report", || {
        received(&server).iter().any(|r| r["effect"] == "sink")
    })?;
    // Records written while the sink was still backing off were dropped too.
    let dropped = log.sink_stats().expect("a sink").dropped;
    drop(log);
    let written = records(&path)?;
    assert!(written.len() >= 22, "every record is in the file");
    let verdict = warden::audit::verify(std::slice::from_ref(&path))?;
    assert!(
        matches!(verdict, warden::audit::Verdict::Ok { .. }),
        "{verdict:?}"
    );
    let report = written
        .iter()
        .find(|r| r.effect == "sink")
        .expect("a sink record");
    assert_eq!(report.target, url);
    assert!(report.reason.contains("connecting to"), "{}", report.reason);
    // The first report counts every record dropped before it (a later
    // drop, of the report itself say, is reported in turn).
    let reported: u64 = report
        .reason
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count: {}", report.reason));
    assert!(
        reported >= 1 && reported <= dropped,
        "{reported} of {dropped}"
    );
    // What the collector got plus the gap is everything before the report.
    let got: Vec<u64> = received(&server)
        .iter()
        .filter_map(|r| r["seq"].as_u64())
        .collect();
    let before_report: Vec<u64> = written
        .iter()
        .take_while(|r| r.effect != "sink")
        .map(|r| r.seq)
        .collect();
    let missing = before_report.iter().filter(|s| !got.contains(s)).count() as u64;
    assert_eq!(missing, reported);
    Ok(())
}

/// A real rsyslogd listening on loopback TCP and UDP, writing each
/// message's MSGID and text to a file.
struct Rsyslog {
    child: std::process::Child,
    out: PathBuf,
    tcp: u16,
    udp: u16,
    _dir: tempfile::TempDir,
}

impl Rsyslog {
    fn start() -> Result<Rsyslog> {
        let dir = tempfile::tempdir()?;
        let (tcp, udp) = (
            warden_test_support::free_port(),
            warden_test_support::free_port(),
        );
        let out = dir.path().join("received.log");
        let conf = dir.path().join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{work}" maxMessageSize="256k")
module(load="imtcp")
module(load="imudp")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
input(type="imudp" address="127.0.0.1" port="{udp}")
template(name="raw" type="string" string="%msgid% %syslogfacility% %syslogseverity-text% %msg%\n")
*.* action(type="omfile" file="{out}" template="raw")
"#,
                work = dir.path().display(),
                out = out.display(),
            ),
        )?;
        let child = std::process::Command::new(rsyslogd())
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.path().join("rsyslogd.pid"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(warden_test_support::peer_stderr())
            .spawn()
            .context("starting rsyslogd (cargo xtask test installs rsyslog)")?;
        let rsyslog = Rsyslog {
            child,
            out,
            tcp,
            udp,
            _dir: dir,
        };
        wait_for("rsyslogd to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", tcp)).is_ok()
        })?;
        Ok(rsyslog)
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `timeout-ms`: a collector that accepts and never answers is given up on
/// after it (reported failing, nothing held up, nothing lost from the file).
#[test]
fn a_collector_that_hangs_is_given_up_on_after_the_timeout() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("audit.jsonl");
    let port = warden_test_support::http_server::silent_port();
    let mut sink = settings(
        &format!("http://127.0.0.1:{port}/echo"),
        SinkFormat::Warden,
        100,
    );
    sink.timeout_ms = Some(300);
    let log = open(&path, &sink, None)?;
    for n in 0..5 {
        log.append(entry(n, Outcome::Allow))?;
    }
    wait_for("the hung collector reported failing", || {
        log.sink_stats()
            .is_some_and(|s| s.failing && s.shipped == 0)
    })?;
    drop(log);
    assert!(records(&path)?.len() >= 5, "every record is in the file");
    Ok(())
}

/// An HTTPS front for `server`: TLS with the certificate in `dir` (made
/// by openssl, signed by `dir/ca.pem`), each connection relayed to it.
fn https_front(dir: &Path, server: &TestServer) -> Result<u16> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs =
        CertificateDer::pem_file_iter(dir.join("cert.pem"))?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem"))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let target = server.port;
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a listener");
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut plain) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
    });
    Ok(port)
}

/// `ca`: an https collector whose certificate a private CA signed is
/// trusted with that CA, and without it nothing is sent to it (the
/// records stay in the file, the sink reports failing).
#[test]
fn an_https_collector_is_trusted_through_its_ca_and_only_then() -> Result<()> {
    let dir = tempfile::tempdir()?;
    warden_test_support::registry::make_certificates(dir.path());
    let server = TestServer::start();
    let port = https_front(dir.path(), &server)?;
    let url = format!("https://127.0.0.1:{port}/echo");
    let sink = settings(&url, SinkFormat::Warden, 100);

    let untrusted = dir.path().join("untrusted.jsonl");
    let log = open_trusting(&untrusted, &sink, None, None)?;
    for n in 0..5 {
        log.append(entry(n, Outcome::Allow))?;
    }
    wait_for("the untrusted sink failing", || {
        log.sink_stats().is_some_and(|s| s.failing)
    })?;
    drop(log);
    assert_eq!(server.count(), 0, "nothing crossed an untrusted session");
    let kept: Vec<u64> = records(&untrusted)?.iter().map(|r| r.seq).collect();
    assert!(kept.len() >= 5, "every record is in the file: {kept:?}");

    let trusted = dir.path().join("trusted.jsonl");
    let ca = std::fs::read_to_string(dir.path().join("ca.pem"))?;
    let log = open_trusting(&trusted, &sink, None, Some(ca))?;
    for n in 0..5 {
        log.append(entry(n, Outcome::Allow))?;
    }
    wait_for("5 records over https", || received(&server).len() == 5)?;
    wait_for("5 counted as shipped", || {
        log.sink_stats()
            .is_some_and(|s| s.shipped == 5 && !s.failing)
    })?;
    let calls: Vec<String> = received(&server)
        .iter()
        .map(|r| r["call_id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        calls,
        (0..5).map(|n| format!("call-{n}")).collect::<Vec<_>>()
    );
    Ok(())
}

fn rsyslogd() -> PathBuf {
    ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| "rsyslogd".into())
}

#[test]
fn records_reach_rsyslog_over_tcp_and_udp() -> Result<()> {
    let rsyslog = Rsyslog::start()?;
    for (scheme, port) in [("syslog+tcp", rsyslog.tcp), ("syslog", rsyslog.udp)] {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("audit.jsonl");
        let url = format!("{scheme}://127.0.0.1:{port}");
        let log = open(&path, &settings(&url, SinkFormat::Ocsf, 100), None)?;
        for n in 0..10 {
            let decision = if n == 3 {
                Outcome::Deny
            } else {
                Outcome::Allow
            };
            log.append(entry(n, decision))?;
        }
        wait_for("10 events at rsyslogd", || {
            log.sink_stats().is_some_and(|s| s.shipped == 10)
        })?;
        drop(log);
        let written = records(&path)?;
        wait_for("rsyslogd to write them", || {
            let lines = rsyslog.lines();
            written
                .iter()
                .all(|r| lines.iter().any(|l| l.contains(&r.hash)))
        })?;
        let lines = rsyslog.lines();
        for r in &written {
            let line = lines.iter().find(|l| l.contains(&r.hash)).expect("shipped");
            let (msgid, rest) = line.split_once(' ').expect("msgid");
            assert_eq!(msgid, r.effect, "{scheme}: MSGID is the effect");
            let (facility, rest) = rest.split_once(' ').expect("facility");
            assert_eq!(facility, "13", "{scheme}: facility \"log audit\"");
            let (severity, json) = rest.split_once(' ').expect("severity");
            let expected = if r.decision == "deny" {
                "warning"
            } else {
                "info"
            };
            assert_eq!(severity, expected, "{scheme}: {line}");
            let event: serde_json::Value = serde_json::from_str(json.trim())
                .with_context(|| format!("{scheme}: an OCSF event: {json}"))?;
            assert_eq!(event["metadata"]["sequence"], r.seq);
        }
    }
    Ok(())
}
