//! Audit records as their callers make them: the vocabulary (what a record
//! is about, [`Effect`], and what was decided, [`Outcome`], written by
//! their names), and a record's text, made in two parts. What the caller
//! knows (plugin, capability, call, effect, target, decision, reason, ...)
//! is serialized on the caller's thread into a [`Pending`] record; the
//! writer adds what only it knows (`seq`, `time`, `prev`), takes the hash
//! and writes ([`file`](super::file)). The bytes are those `serde_json`
//! gives for a [`Record`](super::Record), which is what
//! [`verify`](super::verify()) hashes again.

/// What a record is about: a call, its approval, a plugin's load, a limit
/// that stopped a call, or one effect of a guest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Effect {
    /// A call admitted, refused or ended (`call`).
    #[default]
    Call,
    /// An approver's answer (`approval`).
    Approval,
    /// A component refused at load (`load`).
    Load,
    /// A limit that stopped a call (`limit`).
    Limit,
    /// A guest that crashed (`trap`): a panic, an exception, `unreachable`.
    Trap,
    /// An environment variable read (`env`).
    Env,
    /// A file or directory opened (`file`).
    File,
    /// Log lines dropped over the budget (`log`).
    Log,
    /// A socket bind, connect or send (`socket`).
    Socket,
    /// An outbound HTTP request (`egress`).
    Egress,
    /// A name lookup (`lookup`).
    Lookup,
    /// A secret substituted into a request (`secret`).
    Secret,
    /// A claim on a capability id (`register`): refused when the id is
    /// registered already.
    Register,
    /// A signed checkpoint over the chain head (`checkpoint`).
    Checkpoint,
    /// Records the `[audit.sink]` collector did not get (`sink`).
    Sink,
    /// A plugin's note about the call in progress (`note`): its statement,
    /// e.g. the id a remote service gave the call.
    Note,
}

impl Effect {
    /// The name written in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Call => "call",
            Effect::Approval => "approval",
            Effect::Load => "load",
            Effect::Limit => "limit",
            Effect::Trap => "trap",
            Effect::Env => "env",
            Effect::File => "file",
            Effect::Log => "log",
            Effect::Socket => "socket",
            Effect::Egress => "egress",
            Effect::Lookup => "lookup",
            Effect::Secret => "secret",
            Effect::Register => "register",
            Effect::Checkpoint => "checkpoint",
            Effect::Sink => "sink",
            Effect::Note => "note",
        }
    }
}

/// What was decided, or how an admitted call ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Outcome {
    /// Allowed (`allow`).
    #[default]
    Allow,
    /// Refused (`deny`).
    Deny,
    /// The call completed (`ok`).
    Ok,
    /// The call failed (`error`).
    Error,
    /// The call's caller went away before it ended (`cancelled`).
    Cancelled,
}

impl Outcome {
    /// The name written in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Cancelled => "cancelled",
        }
    }
}

use super::Entry;

/// What a record is to its call.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A call's admission (`call`, `allow`): its first record.
    Admits,
    /// A call's end (`call`, `ok` / `error` / `cancelled`).
    Ends,
    /// Anything else.
    Other,
}

/// A record as its caller made it: everything but `seq`, `time`, `prev` and
/// `hash`, already serialized.
pub(crate) struct Pending {
    /// `"plugin":...,"client":...` (the fields between `time` and `prev`).
    pub(super) body: Vec<u8>,
    pub(super) call_id: String,
    pub(super) kind: Kind,
}

/// A record's text as the writer takes it: a [`Pending`] record's, or the
/// same bytes where the queue copied them.
#[derive(Clone, Copy)]
pub(super) struct Line<'a> {
    /// See [`Pending`].
    pub(super) body: &'a [u8],
    /// The call it belongs to.
    pub(super) call_id: &'a str,
    /// What it is to that call.
    pub(super) kind: Kind,
}

/// Appends `s` as a JSON string, as `serde_json` writes it: strings with
/// nothing to escape (nearly all) are copied as they are.
fn put_str(out: &mut Vec<u8>, s: &str) {
    // Without a short cut, so that the check is vectorized.
    let escapes = s.bytes().fold(false, |any, b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if escapes {
        serde_json::to_writer(&mut *out, s).expect("strings serialize");
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// The fields of a [`Record`] from `plugin` to `target`, in its order.
fn put_head(out: &mut Vec<u8>, [plugin, digest, capability, call_id, effect, target]: [&str; 6]) {
    for (name, value) in [
        (&br#""plugin":"#[..], plugin),
        (br#","digest":"#, digest),
        (br#","capability":"#, capability),
        (br#","call_id":"#, call_id),
        (br#","effect":"#, effect),
        (br#","target":"#, target),
    ] {
        out.extend_from_slice(name);
        put_str(out, value);
    }
}

/// `,"decision":...,"reason":...,"duration_ms":...`, the fields after
/// [`put_head`]'s.
fn put_decision(out: &mut Vec<u8>, decision: Outcome, reason: &str, duration_ms: Option<u64>) {
    out.extend_from_slice(br#","decision":"#);
    put_str(out, decision.as_str());
    out.extend_from_slice(br#","reason":"#);
    put_str(out, reason);
    out.extend_from_slice(br#","duration_ms":"#);
    match duration_ms {
        Some(ms) => out.extend_from_slice(itoa::Buffer::new().format(ms).as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
}

/// `,"client":...` when there is one (absent otherwise, as in [`Record`]).
fn put_client(out: &mut Vec<u8>, client: Option<&str>) {
    if let Some(client) = client {
        out.extend_from_slice(br#","client":"#);
        put_str(out, client);
    }
}

fn kind(effect: Effect, decision: Outcome) -> Kind {
    match (effect, decision) {
        (Effect::Call, Outcome::Allow) => Kind::Admits,
        (Effect::Call, Outcome::Ok | Outcome::Error | Outcome::Cancelled) => Kind::Ends,
        _ => Kind::Other,
    }
}

impl Pending {
    /// The record as the writer takes it.
    pub(super) fn line(&self) -> Line<'_> {
        Line {
            body: &self.body,
            call_id: &self.call_id,
            kind: self.kind,
        }
    }

    pub(crate) fn new(entry: Entry) -> Pending {
        let mut body = Vec::with_capacity(256 + entry.reason.len() + entry.target.len());
        put_head(
            &mut body,
            [
                &entry.plugin,
                &entry.digest,
                &entry.capability,
                &entry.call_id,
                entry.effect.as_str(),
                &entry.target,
            ],
        );
        put_decision(&mut body, entry.decision, &entry.reason, entry.duration_ms);
        put_client(&mut body, entry.client.as_deref());
        Pending {
            body,
            call_id: entry.call_id,
            kind: kind(entry.effect, entry.decision),
        }
    }

    /// A `call` record of the call `fields` describe (its admission, denial
    /// or end).
    pub(crate) fn call(
        fields: &CallFields,
        decision: Outcome,
        reason: &str,
        duration_ms: Option<u64>,
    ) -> Pending {
        let mut body =
            Vec::with_capacity(fields.head.len() + fields.tail.len() + 64 + reason.len());
        body.extend_from_slice(&fields.head);
        put_decision(&mut body, decision, reason, duration_ms);
        body.extend_from_slice(&fields.tail);
        Pending {
            body,
            call_id: fields.call_id.clone(),
            kind: kind(Effect::Call, decision),
        }
    }
}

/// What every `call` record of one call has in common, serialized once.
pub(crate) struct CallFields {
    head: Vec<u8>,
    tail: Vec<u8>,
    call_id: String,
}

impl CallFields {
    /// The records of call `call_id` of capability `capability`, served by
    /// `plugin` (component `digest`), asked for by `client`.
    pub(crate) fn new(
        plugin: &str,
        digest: &str,
        capability: &str,
        call_id: &str,
        client: Option<&str>,
    ) -> CallFields {
        let mut head = Vec::with_capacity(160 + 2 * capability.len());
        let effect = Effect::Call.as_str();
        put_head(
            &mut head,
            [plugin, digest, capability, call_id, effect, capability],
        );
        let mut tail = Vec::new();
        put_client(&mut tail, client);
        CallFields {
            head,
            tail,
            call_id: call_id.to_string(),
        }
    }
}
