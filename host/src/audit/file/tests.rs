//! The writer's record text and its refusal of unadmitted calls.
use super::*;
use crate::audit::record::{CallFields, Pending};
use crate::audit::{Effect, Entry, Outcome};

fn entry(client: Option<&str>, duration_ms: Option<u64>) -> Entry {
    Entry {
        plugin: "p\"q".into(),
        digest: "sha256:a\\b".into(),
        capability: "c.d".into(),
        call_id: "id-1".into(),
        effect: Effect::Egress,
        target: "https://x/\u{1}é\n\\".into(),
        decision: Outcome::Deny,
        reason: "quote \" tab \t and ü".into(),
        duration_ms,
        client: client.map(str::to_string),
    }
}

/// The writer's text is exactly `serde_json`'s for the same `Record`,
/// so `verify` (which re-serializes) agrees with the writer's hash.
#[test]
fn records_are_the_bytes_serde_json_makes_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jsonl");
    let mut writer = Writer::open(&path, SyncPolicy::Flush, 0, None).unwrap();
    let records: Vec<Pending> = [
        entry(None, None),
        entry(Some("alice/s1"), Some(7)),
        entry(Some(""), Some(0)),
    ]
    .into_iter()
    .map(Pending::new)
    .collect();
    let mut refused = [false; 3];
    let lines = records.iter().map(Pending::line).zip(refused.iter_mut());
    writer.write(lines, false, false).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    for line in lines {
        let record: Record = serde_json::from_str(line).unwrap();
        assert_eq!(serde_json::to_string(&record).unwrap(), line);
        assert_eq!(record.compute_hash(), record.hash);
    }
}

/// A call's records made from its common fields are those made from
/// whole entries.
#[test]
fn call_records_from_common_fields_are_whole_entries() {
    for client in [None, Some("alice \"x\"")] {
        let fields = CallFields::new("p", "sha256:ab", "c.\u{7}d", "id-1", client);
        for (decision, duration_ms) in [
            (Outcome::Allow, None),
            (Outcome::Deny, None),
            (Outcome::Ok, Some(3)),
            (Outcome::Cancelled, Some(0)),
        ] {
            let whole = Pending::new(Entry {
                plugin: "p".into(),
                digest: "sha256:ab".into(),
                capability: "c.\u{7}d".into(),
                call_id: "id-1".into(),
                effect: Effect::Call,
                target: "c.\u{7}d".into(),
                decision,
                reason: "why \"not\"\n".into(),
                duration_ms,
                client: client.map(str::to_string),
            });
            let made = Pending::call(&fields, decision, "why \"not\"\n", duration_ms);
            assert_eq!(
                String::from_utf8(made.body).unwrap(),
                String::from_utf8(whole.body).unwrap()
            );
            assert!(made.kind == whole.kind && made.call_id == whole.call_id);
        }
    }
}

/// A call whose admission record failed has none of its later records
/// written, and the writer forgets it at its end record.
#[test]
fn records_of_an_unadmitted_call_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jsonl");
    let mut writer = Writer::open(&path, SyncPolicy::Flush, 0, None).unwrap();
    let call = |effect, decision, id: &str| {
        Pending::new(Entry {
            call_id: id.into(),
            effect,
            decision,
            ..Entry::default()
        })
    };
    let failed = [call(Effect::Call, Outcome::Allow, "x")];
    writer.unadmit(failed.iter().map(Pending::line));
    let later = [
        call(Effect::Egress, Outcome::Allow, "x"),
        call(Effect::Egress, Outcome::Allow, "y"),
        call(Effect::Call, Outcome::Ok, "x"),
        call(Effect::Egress, Outcome::Allow, "x"),
    ];
    let mut refused = [false; 4];
    let lines = later.iter().map(Pending::line).zip(refused.iter_mut());
    writer.write(lines, false, false).unwrap();
    assert_eq!(refused, [true, false, true, false]);
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
}
