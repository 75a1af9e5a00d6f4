//! `deploy/`: the Kubernetes manifests pass the API's schemas strictly
//! (kubernetes-validate) and a security linter (checkov, which also reads
//! the Dockerfile); a manifest made worse fails both, so the checks bite;
//! and the pieces agree with each other and with Warden (the ConfigMap's
//! `warden.toml` loads as a configuration, the probes, ports, mounts and
//! grace periods match what `warden serve` does). Needs `.venv-deploy/`
//! (`cargo xtask deploy-tools`, or `cargo xtask test`).

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    // Whole: checkov skips Kubernetes files under a path with `..` in it.
    let cli = Path::new(env!("CARGO_MANIFEST_DIR"));
    cli.parent().expect("the workspace").to_path_buf()
}

fn manifests() -> PathBuf {
    repo().join("deploy/kubernetes")
}

/// A tool of `.venv-deploy/`.
fn tool(name: &str) -> Command {
    let path = repo().join(".venv-deploy/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask deploy-tools` (or `cargo xtask test`)",
        path.display()
    );
    let mut c = Command::new(path);
    // checkov asks a web service for guidelines unless told not to.
    c.env("BC_SKIP_MAPPING", "TRUE");
    c
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every manifest file in `dir`.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 7,
        "manifests in {}: {files:?}",
        dir.display()
    );
    files
}

fn kubernetes_validate(files: &[PathBuf]) -> Output {
    tool("kubernetes-validate")
        .args(["--strict", "--quiet"])
        .args(files)
        .output()
        .unwrap()
}

/// checkov's JSON report over `dir`: one object per framework.
fn checkov(dir: &Path, frameworks: &[&str]) -> Result<Vec<Value>> {
    let out = tool("checkov")
        .arg("-d")
        .arg(dir)
        .arg("--framework")
        .args(frameworks)
        .args(["--skip-download", "--quiet", "--output", "json"])
        .output()?;
    let report: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("checkov's report is not JSON: {}", text(&out)))?;
    Ok(match report {
        Value::Array(reports) => reports,
        one => vec![one],
    })
}

/// The check ids that failed in a checkov report.
fn failed(reports: &[Value]) -> Vec<String> {
    reports
        .iter()
        .flat_map(|r| {
            r["results"]["failed_checks"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|c| format!("{} {}", c["check_id"], c["file_path"]))
        .collect()
}

#[test]
fn the_manifests_pass_the_kubernetes_schemas_strictly() {
    let files = yaml_files(&manifests());
    let out = kubernetes_validate(&files);
    assert!(out.status.success(), "{}", text(&out));
    // A field the API does not know fails strict validation.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("deployment.yaml");
    let deployment = std::fs::read_to_string(manifests().join("deployment.yaml")).unwrap();
    let worse = deployment.replacen("  replicas: 3", "  replicas: 3\n  replica: 3", 1);
    assert_ne!(worse, deployment);
    std::fs::write(&bad, worse).unwrap();
    let out = kubernetes_validate(&[bad]);
    assert!(
        !out.status.success(),
        "an unknown field passed: {}",
        text(&out)
    );
}

#[test]
fn the_manifests_and_dockerfile_pass_the_security_linter() -> Result<()> {
    let reports = checkov(&repo().join("deploy"), &["kubernetes", "dockerfile"])?;
    let kinds: Vec<&str> = reports
        .iter()
        .filter_map(|r| r["check_type"].as_str())
        .collect();
    assert!(
        kinds.contains(&"kubernetes") && kinds.contains(&"dockerfile"),
        "both were checked: {kinds:?}"
    );
    for r in &reports {
        let passed = r["summary"]["passed"].as_u64().unwrap_or(0);
        assert!(passed > 10, "{}: {passed} checks passed", r["check_type"]);
        assert_eq!(r["summary"]["parsing_errors"], 0, "{}", r["check_type"]);
    }
    assert_eq!(failed(&reports), Vec::<String>::new());
    // A privileged container with a writable root fails it (in a folder
    // whose name does not start with `.`, which checkov would skip).
    let dir = tempfile::Builder::new().prefix("deploy-").tempdir()?;
    let deployment = std::fs::read_to_string(manifests().join("deployment.yaml"))?;
    let worse = deployment
        .replace("privileged: false", "privileged: true")
        .replace(
            "readOnlyRootFilesystem: true",
            "readOnlyRootFilesystem: false",
        );
    std::fs::write(dir.path().join("deployment.yaml"), worse)?;
    let failures = failed(&checkov(dir.path(), &["kubernetes"])?);
    for id in ["CKV_K8S_16", "CKV_K8S_22"] {
        if !failures.iter().any(|f| f.contains(id)) {
            bail!("{id} did not fail: {failures:?}");
        }
    }
    Ok(())
}

/// Every document of a manifest file, as JSON (through the linter's PyYAML).
fn documents(file: &str) -> Vec<Value> {
    let out = tool("python")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(manifests().join(file))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn one(file: &str) -> Value {
    documents(file).remove(0)
}

#[test]
fn the_configuration_loads_and_the_pieces_agree() -> Result<()> {
    let config_map = one("configmap.yaml");
    let toml_text = config_map["data"]["warden.toml"].as_str().unwrap();
    let config = warden::Config::from_toml(toml_text, Path::new("/etc/warden"))?;
    let serve = warden_serve::ServeSettings::from_config(&config)?;
    assert!(!serve.tokens.is_empty(), "a non-loopback bind needs tokens");

    let deployment = one("deployment.yaml");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    // The probes ask what `warden serve` answers, on the port it listens on.
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    let port = container["ports"][0]["containerPort"].as_u64().unwrap();
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        args.contains(&format!("0.0.0.0:{port}").as_str()),
        "{args:?}"
    );
    // Draining outlasts the readiness probe's verdict, and the pod's grace
    // period outlasts draining and the calls' grace.
    let readiness = &container["readinessProbe"];
    let unready_after_ms = readiness["periodSeconds"].as_u64().unwrap()
        * readiness["failureThreshold"].as_u64().unwrap()
        * 1000;
    let drain = serve.drain_ms;
    assert!(
        drain > unready_after_ms,
        "drain-ms {drain} vs {unready_after_ms}"
    );
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap() * 1000;
    assert!(grace > drain + serve.shutdown_grace_ms);
    // Each replica is named by its pod.
    let env = container["env"].as_array().unwrap();
    assert!(env.iter().any(|e| e["name"] == "WARDEN_REPLICA_ID"
        && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"));
    // The files the configuration names are where the volumes put them.
    let mounts = container["volumeMounts"].as_array().unwrap();
    let mount_of = |volume: &str| -> String {
        let m = mounts.iter().find(|m| m["name"] == volume).unwrap();
        m["mountPath"].as_str().unwrap().to_string()
    };
    let dockerfile = std::fs::read_to_string(repo().join("deploy/Dockerfile"))?;
    assert!(dockerfile.contains(&format!("\"{}/warden.toml\"", mount_of("config"))));
    // Every secret file the configuration names is a key of the Secret.
    let secret = one("secret.yaml");
    let data = secret["stringData"].as_object().unwrap();
    let tokens = mount_of("tokens");
    for source in config.secrets.values() {
        let file = source.file.as_ref().expect("secrets come from files");
        let key = file
            .strip_prefix(&tokens)
            .unwrap_or_else(|_| panic!("{} is not under {tokens}", file.display()));
        assert!(
            data.contains_key(key.to_str().unwrap()),
            "{key:?} in the Secret"
        );
    }
    // [cluster] names the Redis Service, whose password is the Secret's.
    let cluster = config.cluster.as_ref().expect("[cluster] is set");
    let redis = documents("redis.yaml");
    let service = redis.iter().find(|d| d["kind"] == "Service").unwrap();
    let host = format!(
        "redis://{}.{}.svc:{}",
        service["metadata"]["name"].as_str().unwrap(),
        service["metadata"]["namespace"].as_str().unwrap(),
        service["spec"]["ports"][0]["port"]
    );
    assert_eq!(cluster.redis, host);
    let password = data["redis-password"].as_str().unwrap();
    assert_eq!(data["redis.conf"], format!("requirepass {password}"));
    for writable in ["/var/lib/warden/warden.lock", "/var/lib/warden/audit.jsonl"] {
        assert!(toml_text.contains(writable), "{writable}");
    }
    assert_eq!(mount_of("state"), "/var/lib/warden");
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    Ok(())
}
