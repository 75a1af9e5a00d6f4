//! Rules that name the caller: with two token principals, only one may
//! call `files.write`; the other is refused by the rule, and each call's
//! record names who made it.

use crate::components::component;
use crate::util::*;
use serde_json::json;

#[test]
fn a_rule_lets_one_principal_write_and_refuses_the_other() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("data");
    std::fs::create_dir(&data).unwrap();
    let config = format!(
        "{}\n[plugins.files]\ncomponent = \"{}\"\ngrants = {{ dirs = [{{ host = \"{}\", guest = \"/data\", mode = \"rw\" }}] }}\n\n\
         [[policy.rules]]\ncapability = \"files.write\"\nprincipals = [\"alice\"]\n\n\
         [[policy.rules]]\ncapability = \"files.write\"\ndecision = \"deny\"\nreason = \"only alice writes\"\n",
        two_principals(dir, ""),
        component("files").display(),
        data.display()
    );
    let serve = Serve::start(dir, &config, &["--no-watch"]);
    let write = |token: &str, text: &str| {
        let call =
            json!({"name": "files.write", "arguments": {"path": "/data/note.txt", "text": text}});
        let auth = format!("Bearer {token}");
        modern(
            serve.port,
            1,
            "tools/call",
            call,
            &[("authorization", &auth)],
        )
        .1
    };
    let by_alice = write(TOKEN_A, "from alice");
    assert!(by_alice["result"]["isError"] != true, "{by_alice}");
    assert_eq!(
        std::fs::read_to_string(data.join("note.txt")).unwrap(),
        "from alice"
    );
    let by_bob = write(TOKEN_B, "from bob");
    let text = by_bob.to_string();
    assert!(text.contains("only alice writes"), "{text}");
    assert_eq!(
        std::fs::read_to_string(data.join("note.txt")).unwrap(),
        "from alice"
    );
    let records = audit(&dir.join("audit.jsonl"));
    let denied = records
        .iter()
        .find(|r| r["capability"] == "files.write" && r["decision"] == "deny")
        .expect("bob's refusal is recorded");
    assert!(denied.to_string().contains("bob"), "{denied}");
}
