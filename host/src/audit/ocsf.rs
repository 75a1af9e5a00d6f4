//! Audit records as OCSF 1.9 events, for SIEMs: `warden audit export` and
//! `[audit.sink] format = "ocsf"`.
//!
//! Each record kind goes to the class that fits it best: calls, approvals,
//! limits, traps, environment and secret reads and id claims are API
//! Activity (6003); a load is Application Lifecycle (6002); a file opened,
//! File System Activity (1001); a socket, Network Activity (4001); an
//! outbound request, HTTP Activity (4002); a name lookup, DNS Activity
//! (4003); dropped log lines, checkpoints and a sink's gaps, Event Log
//! Activity (1008). The decision becomes `status_id`, and for decisions
//! made before an effect, the `security_control` profile's `action_id` and
//! `disposition_id`.
//!
//! The chain goes into the `record_integrity` profile: one attestation
//! whose `fingerprint` is the record's own `hash` (SHA-256, hex, over the
//! Warden record, hence serialization "warden-audit-record") and whose
//! `prev_event` names the record before by `seq` and `prev`. The whole
//! record rides along in `unmapped.warden`, so a consumer can hash it again
//! and check the chain without the file.

use super::{Record, GENESIS};
use serde_json::{json, Map, Value};

/// The OCSF version the events follow.
pub const VERSION: &str = "1.9.0";
/// The profiles the events use (`metadata.profiles`).
pub const PROFILES: [&str; 2] = ["record_integrity", "security_control"];

/// Makes events for the records of one log (one chain).
pub struct Events {
    chain: String,
    hostname: String,
}

impl Events {
    /// For the log whose chain is named `chain` (its file name, say).
    pub fn new(chain: &str) -> Events {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        Events {
            chain: chain.to_string(),
            hostname: if hostname.is_empty() {
                "localhost".into()
            } else {
                hostname
            },
        }
    }

    /// The OCSF event for `record`.
    pub fn event(&self, record: &Record) -> Value {
        let (class, fields) = self.class_fields(record);
        let mut event = base(record, &class);
        event.extend(fields);
        event.insert("attestation_list".into(), self.attestation(record));
        Value::Object(event)
    }

    /// The class of `record` and the fields only that class has.
    fn class_fields(&self, r: &Record) -> (Class, Map<String, Value>) {
        let mut f = Map::new();
        let class = match r.effect.as_str() {
            "load" => {
                f.insert("app".into(), app(r));
                Class::new(6002, "Application Lifecycle", 3, "Start")
            }
            "file" => {
                f.insert("actor".into(), plugin_actor(r));
                f.insert(
                    "device".into(),
                    json!({"type_id": 1, "hostname": self.hostname}),
                );
                f.insert("file".into(), file(&r.target));
                Class::new(1001, "File Activity", 14, "Open")
            }
            "socket" => return socket(r),
            "egress" => return egress(r),
            "lookup" => {
                f.insert("query".into(), json!({"hostname": r.target}));
                f.insert("src_endpoint".into(), json!({"name": who(r)}));
                f.insert("app_name".into(), json!(who(r)));
                Class::new(4003, "DNS Activity", 1, "Query")
            }
            "log" | "checkpoint" | "sink" => return event_log(r),
            _ => return api_activity(r),
        };
        (class, f)
    }

    /// The `record_integrity` attestation carrying the chain.
    fn attestation(&self, r: &Record) -> Value {
        let mut a = json!({
            "chain_uid": self.chain,
            "uid": r.seq.to_string(),
            "fingerprint": {
                "algorithm_id": 3, "algorithm": "SHA-256",
                "encoding_id": 1, "encoding": "Hex",
                "serialization_id": 99, "serialization": "warden-audit-record",
                "value": r.hash,
            },
        });
        if r.seq > 1 && r.prev != GENESIS {
            a["prev_event"] = json!({
                "uid": (r.seq - 1).to_string(),
                "fingerprint": {"algorithm_id": 3, "encoding_id": 1, "value": r.prev},
            });
        }
        json!([a])
    }
}

/// A class, with the activity this record is in it.
struct Class {
    uid: u32,
    name: &'static str,
    activity: u32,
    activity_name: &'static str,
}

impl Class {
    fn new(uid: u32, name: &'static str, activity: u32, activity_name: &'static str) -> Class {
        Class {
            uid,
            name,
            activity,
            activity_name,
        }
    }

    fn category(&self) -> (u32, &'static str) {
        match self.uid / 1000 {
            1 => (1, "System Activity"),
            4 => (4, "Network Activity"),
            _ => (6, "Application Activity"),
        }
    }
}

/// The fields every event has.
fn base(r: &Record, class: &Class) -> Map<String, Value> {
    let (category, category_name) = class.category();
    let (severity, severity_name) = severity(r);
    let mut e = json!({
        "class_uid": class.uid,
        "class_name": class.name,
        "category_uid": category,
        "category_name": category_name,
        "activity_id": class.activity,
        "activity_name": class.activity_name,
        "type_uid": u64::from(class.uid) * 100 + u64::from(class.activity),
        "type_name": format!("{}: {}", class.name, class.activity_name),
        "severity_id": severity,
        "severity": severity_name,
        "time": warden_manifest::time::epoch_millis(&r.time).unwrap_or(0),
        "message": message(r),
        "metadata": metadata(r),
        "unmapped": {"warden": r},
    });
    let map = e.as_object_mut().expect("an object");
    status(r, map);
    std::mem::take(map)
}

fn metadata(r: &Record) -> Value {
    let mut m = json!({
        "version": VERSION,
        "profiles": PROFILES,
        "product": {
            "name": "Warden",
            "vendor_name": "Warden",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "uid": r.seq.to_string(),
        "sequence": r.seq,
        "log_name": "audit",
        "original_time": r.time,
    });
    if !r.call_id.is_empty() {
        m["correlation_uid"] = json!(r.call_id);
    }
    m
}

/// `status_id`, and for a decision taken before the effect, `action_id`
/// and `disposition_id`.
fn status(r: &Record, e: &mut Map<String, Value>) {
    let (status, name) = match r.decision.as_str() {
        "allow" | "ok" => (1, "Success"),
        "deny" | "error" => (2, "Failure"),
        "cancelled" => (99, "Cancelled"),
        _ => (0, "Unknown"),
    };
    e.insert("status_id".into(), json!(status));
    e.insert("status".into(), json!(name));
    if !r.reason.is_empty() {
        e.insert("status_detail".into(), json!(r.reason));
    }
    let approval = r.effect == "approval";
    let (action, disposition) = match (r.decision.as_str(), approval) {
        ("allow", false) => ((1, "Allowed"), (1, "Allowed")),
        ("allow", true) => ((1, "Allowed"), (8, "Approved")),
        ("deny", false) => ((2, "Denied"), (2, "Blocked")),
        ("deny", true) => ((2, "Denied"), (25, "Rejected")),
        _ => return,
    };
    e.insert("action_id".into(), json!(action.0));
    e.insert("action".into(), json!(action.1));
    e.insert("disposition_id".into(), json!(disposition.0));
    e.insert("disposition".into(), json!(disposition.1));
}

/// Denials, limits and traps stand out; the rest is informational.
fn severity(r: &Record) -> (u32, &'static str) {
    match (r.effect.as_str(), r.decision.as_str()) {
        ("limit" | "trap" | "sink", _) | (_, "deny") => (3, "Medium"),
        (_, "error") => (2, "Low"),
        _ => (1, "Informational"),
    }
}

fn message(r: &Record) -> String {
    let subject = match (r.plugin.is_empty(), r.capability.is_empty()) {
        (true, _) => "warden".to_string(),
        (false, true) => r.plugin.clone(),
        (false, false) => r.capability.clone(),
    };
    match r.target.is_empty() {
        true => format!("{subject}: {} {}", r.effect, r.decision),
        false => format!("{subject}: {} {} {}", r.effect, r.target, r.decision),
    }
}

/// The plugin the record is about, or the host.
fn who(r: &Record) -> &str {
    if r.plugin.is_empty() {
        "warden"
    } else {
        &r.plugin
    }
}

/// A call's caller as OCSF's actor: the principal, its issuer and session
/// where the record's `client` names them; else the plugin (or the host).
fn actor(r: &Record) -> Value {
    let Some(client) = r.client.as_deref().filter(|c| !c.is_empty()) else {
        return plugin_actor(r);
    };
    let caller = Caller::parse(client);
    let mut a = json!({"user": {"name": caller.principal, "uid": caller.principal}});
    if let Some(issuer) = caller.issuer {
        a["idp"] = json!({"name": issuer, "uid": issuer});
    }
    if let Some(session) = caller.session {
        a["session"] = json!({"uid": session});
    }
    a["app_name"] = json!(who(r));
    a
}

fn plugin_actor(r: &Record) -> Value {
    let mut a = json!({"app_name": who(r)});
    if !r.digest.is_empty() {
        a["app_uid"] = json!(r.digest);
    }
    a
}

/// What `warden serve` writes as a record's `client`:
/// `PRINCIPAL[ (issuer ISS; scopes …)][ over TRANSPORT (CLIENT, session|handle ID)]`.
struct Caller<'a> {
    principal: &'a str,
    issuer: Option<&'a str>,
    session: Option<&'a str>,
}

impl<'a> Caller<'a> {
    fn parse(client: &'a str) -> Caller<'a> {
        let end = [" (issuer ", " over "]
            .iter()
            .filter_map(|m| client.find(m))
            .min()
            .unwrap_or(client.len());
        let issuer = client
            .split_once(" (issuer ")
            .and_then(|(_, rest)| rest.split_once(';'))
            .map(|(iss, _)| iss);
        let session = [", session ", ", handle "].iter().find_map(|m| {
            client
                .rsplit_once(m)
                .map(|(_, rest)| rest.trim_end_matches(')'))
        });
        Caller {
            principal: &client[..end],
            issuer,
            session,
        }
    }
}

/// API Activity: calls and what happens on their behalf that has no class
/// of its own.
fn api_activity(r: &Record) -> (Class, Map<String, Value>) {
    let (activity, activity_name, resource) = match r.effect.as_str() {
        "env" => (2, "Read", Some("environment_variable")),
        "secret" => (2, "Read", Some("secret")),
        "register" => (1, "Create", Some("capability")),
        "approval" => (99, "Approve", None),
        "limit" => (99, "Limit", None),
        "trap" => (99, "Trap", None),
        "call" => (99, "Call", None),
        _ => (99, "Other", None),
    };
    let operation = if r.capability.is_empty() {
        r.effect.as_str()
    } else {
        r.capability.as_str()
    };
    let mut service = json!({"name": who(r)});
    if !r.digest.is_empty() {
        service["uid"] = json!(r.digest);
    }
    let mut api = json!({"operation": operation, "service": service});
    if !r.call_id.is_empty() {
        api["request"] = json!({"uid": r.call_id});
    }
    let mut f = Map::new();
    f.insert("actor".into(), actor(r));
    f.insert("api".into(), api);
    f.insert("src_endpoint".into(), json!({"svc_name": "warden"}));
    if !r.target.is_empty() {
        let mut resource_json = json!({"name": r.target});
        if let Some(kind) = resource {
            resource_json["type"] = json!(kind);
        }
        f.insert("resources".into(), json!([resource_json]));
    }
    (Class::new(6003, "API Activity", activity, activity_name), f)
}

fn app(r: &Record) -> Value {
    let mut app = json!({"name": who(r)});
    if !r.digest.is_empty() {
        app["uid"] = json!(r.digest);
    }
    if !r.target.is_empty() {
        app["path"] = json!(r.target);
    }
    app
}

fn file(path: &str) -> Value {
    let name = path.rsplit('/').find(|s| !s.is_empty()).unwrap_or(path);
    json!({"name": if name.is_empty() { "/" } else { name }, "path": path, "type_id": 0})
}

/// A socket: `USE ADDRESS`, e.g. `TcpConnect 10.0.0.1:443`.
fn socket(r: &Record) -> (Class, Map<String, Value>) {
    let (usage, address) = r.target.split_once(' ').unwrap_or(("", &r.target));
    let (activity, name) = if usage.ends_with("Bind") {
        (7, "Listen")
    } else if usage.ends_with("Connect") || usage.ends_with("Accept") {
        (1, "Open")
    } else if usage.starts_with("Udp") {
        (6, "Traffic")
    } else {
        (99, "Other")
    };
    let endpoint = match address.parse::<std::net::SocketAddr>() {
        Ok(a) => json!({"ip": a.ip().to_string(), "port": a.port()}),
        Err(_) => json!({"name": address}),
    };
    let mut f = Map::new();
    if activity == 7 {
        f.insert("src_endpoint".into(), endpoint);
    } else {
        f.insert("src_endpoint".into(), json!({"name": who(r)}));
        f.insert("dst_endpoint".into(), endpoint);
    }
    f.insert("app_name".into(), json!(who(r)));
    (Class::new(4001, "Network Activity", activity, name), f)
}

/// An outbound request: `METHOD scheme://host:port`.
fn egress(r: &Record) -> (Class, Map<String, Value>) {
    let (method, destination) = r.target.split_once(' ').unwrap_or(("", &r.target));
    let (activity, name) = http_activity(method);
    let mut url = json!({"url_string": destination});
    let mut f = Map::new();
    if let Ok(parsed) = url::Url::parse(destination) {
        url["scheme"] = json!(parsed.scheme());
        if let Some(host) = parsed.host_str() {
            url["hostname"] = json!(host);
            let mut dst = json!({"hostname": host});
            if let Some(port) = parsed.port_or_known_default() {
                url["port"] = json!(port);
                dst["port"] = json!(port);
            }
            f.insert("dst_endpoint".into(), dst);
        }
    }
    let mut request = json!({"url": url});
    if !method.is_empty() {
        request["http_method"] = json!(method);
    }
    f.insert("http_request".into(), request);
    f.insert("src_endpoint".into(), json!({"name": who(r)}));
    f.insert("app_name".into(), json!(who(r)));
    (Class::new(4002, "HTTP Activity", activity, name), f)
}

fn http_activity(method: &str) -> (u32, &'static str) {
    match method {
        "CONNECT" => (1, "Connect"),
        "DELETE" => (2, "Delete"),
        "GET" => (3, "Get"),
        "HEAD" => (4, "Head"),
        "OPTIONS" => (5, "Options"),
        "POST" => (6, "Post"),
        "PUT" => (7, "Put"),
        "TRACE" => (8, "Trace"),
        "PATCH" => (9, "Patch"),
        "" => (0, "Unknown"),
        _ => (99, "Other"),
    }
}

/// The log itself: lines dropped, a checkpoint, records a sink did not get.
fn event_log(r: &Record) -> (Class, Map<String, Value>) {
    let mut f = Map::new();
    let (activity, name) = match r.effect.as_str() {
        "log" => {
            f.insert("log_provider".into(), json!(who(r)));
            f.insert("log_name".into(), json!("plugin log"));
            (99, "Drop")
        }
        "checkpoint" => {
            f.insert("log_name".into(), json!("audit"));
            (99, "Checkpoint")
        }
        _ => {
            f.insert("log_name".into(), json!("audit"));
            if let Ok(url) = url::Url::parse(&r.target) {
                if let Some(host) = url.host_str() {
                    let mut dst = json!({"hostname": host});
                    if let Some(port) = url.port_or_known_default() {
                        dst["port"] = json!(port);
                    }
                    f.insert("dst_endpoint".into(), dst);
                }
            }
            (3, "Export")
        }
    };
    (Class::new(1008, "Event Log Activity", activity, name), f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_label_gives_principal_issuer_and_session() {
        let c = Caller::parse(
            "alice (issuer https://idp.example; scopes a b) over http (inspector 1.0, session 0123abcd)",
        );
        assert_eq!(c.principal, "alice");
        assert_eq!(c.issuer, Some("https://idp.example"));
        assert_eq!(c.session, Some("0123abcd"));
        let c = Caller::parse("ci over stdio (unnamed client, handle h-1)");
        assert_eq!(
            (c.principal, c.issuer, c.session),
            ("ci", None, Some("h-1"))
        );
        let c = Caller::parse("just-a-name");
        assert_eq!(
            (c.principal, c.issuer, c.session),
            ("just-a-name", None, None)
        );
    }
}
