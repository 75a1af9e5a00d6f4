"""Validates OCSF events (one JSON object a line, from FILE or stdin)
against the OCSF 1.9 JSON Schemas in schemas/ (one per class, with the
record_integrity and security_control profiles), and checks what a schema
cannot say: `type_uid` is class_uid * 100 + activity_id, each attestation
carries its record's hash, and each event's `prev_event` names the event
before it (uid and fingerprint), so the chain holds across the export.

Prints `N events valid` and exits 0, or prints each problem and exits 1.
"""

import json
import pathlib
import sys

from jsonschema import Draft202012Validator

SCHEMAS = pathlib.Path(__file__).parent / "schemas"


def validators():
    out = {}
    for path in SCHEMAS.glob("*.json"):
        uid = int(path.name.split("-", 1)[0])
        out[uid] = Draft202012Validator(json.loads(path.read_text()))
    return out


def problems(events):
    checks = validators()
    before = None
    for n, event in enumerate(events, 1):
        where = f"event {n} (seq {event.get('metadata', {}).get('sequence')})"
        validator = checks.get(event.get("class_uid"))
        if validator is None:
            yield f"{where}: no schema for class {event.get('class_uid')}"
            continue
        for e in validator.iter_errors(event):
            yield f"{where}: {list(e.absolute_path)}: {e.message[:300]}"
        if event["type_uid"] != event["class_uid"] * 100 + event["activity_id"]:
            yield f"{where}: type_uid {event['type_uid']} is not class_uid * 100 + activity_id"
        [attestation] = event["attestation_list"]
        record = event["unmapped"]["warden"]
        if attestation["fingerprint"]["value"] != record["hash"]:
            yield f"{where}: the fingerprint is not the record's hash"
        prev = attestation.get("prev_event")
        if before is not None:
            if prev is None:
                yield f"{where}: no prev_event after the first event"
            else:
                if prev["uid"] != before["metadata"]["uid"]:
                    yield f"{where}: prev_event.uid {prev['uid']} is not the event before"
                if prev["fingerprint"]["value"] != before["attestation_list"][0]["fingerprint"]["value"]:
                    yield f"{where}: prev_event.fingerprint is not the event before's"
        before = event


def main():
    source = open(sys.argv[1]) if len(sys.argv) > 1 else sys.stdin
    events = [json.loads(line) for line in source if line.strip()]
    found = list(problems(events))
    for p in found:
        print(p)
    if found or not events:
        print(f"{len(found)} problems in {len(events)} events")
        sys.exit(1)
    print(f"{len(events)} events valid")


if __name__ == "__main__":
    main()
