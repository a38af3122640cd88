//! The binary's contract with operators: help for every command, clear start-up failures for
//! bad configuration, and role/mode checks that refuse to run half-connected.

use std::process::{Command, Output};

fn heal(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_heal"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.current_dir(std::env::temp_dir());
    cmd.output().expect("heal runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["demo", "--help"],
        vec!["migrate", "--help"],
        vec!["generate", "--help"],
        vec!["quarantine", "--help"],
        vec!["quarantine", "list", "--help"],
        vec!["quarantine", "show", "--help"],
        vec!["quarantine", "replay", "--help"],
        vec!["bench", "ingest", "--help"],
    ] {
        let o = heal(&args, &[]);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        assert!(text(&o).contains("Usage:"), "{args:?}");
    }
    let o = heal(&["run", "--help"], &[]);
    assert!(text(&o).contains("--roles") && text(&o).contains("--check-config"));
}

#[test]
fn a_subset_of_roles_without_server_settings_fails_naming_them() {
    let o = heal(&["run", "--roles", "ingest", "--check-config"], &[]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("DATABASE_URL") && t.contains("KAFKA_BOOTSTRAP_SERVERS"),
        "{t}"
    );

    let o = heal(
        &["run", "--roles", "ingest", "--check-config"],
        &[("DATABASE_URL", "postgresql://db/x")],
    );
    let t = text(&o);
    assert!(
        !o.status.success()
            && t.contains("KAFKA_BOOTSTRAP_SERVERS")
            && !t.contains("needs DATABASE_URL"),
        "{t}"
    );

    let o = heal(
        &[
            "run",
            "--roles",
            "ingest,generator",
            "--check-config",
            "--output",
            "json",
        ],
        &[
            ("DATABASE_URL", "postgresql://heal:secret@db/x"),
            ("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092"),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["mode"], "microservices");
    assert_eq!(v["roles"], serde_json::json!(["generator", "ingest"]));
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("secret"),
        "secrets are hidden"
    );
}

#[test]
fn unknown_roles_and_bad_settings_are_refused_with_the_key_and_value() {
    let o = heal(&["run", "--roles", "ingest,bogus"], &[]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("bogus") && text(&o).contains("valid roles"),
        "{}",
        text(&o)
    );

    let o = heal(
        &["run", "--check-config"],
        &[("HEAL_INGEST__BATCH_SIZE", "lots")],
    );
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("ingest.batch_size")
            && t.contains("lots")
            && t.contains("HEAL_INGEST__BATCH_SIZE"),
        "{t}"
    );

    let o = heal(&["run", "--check-config", "--http-addr", "nowhere"], &[]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("http_addr") && text(&o).contains("--http-addr"),
        "{}",
        text(&o)
    );

    let o = heal(&["run", "--check-config"], &[("DATABASE_URL", "mysql://x")]);
    assert!(!o.status.success());
    assert!(text(&o).contains("database.url"), "{}", text(&o));
}

#[test]
fn demo_runs_end_to_end_and_matches_the_ground_truth() {
    let dir = std::env::temp_dir().join(format!("heal-demo-test-{}", std::process::id()));
    let o = heal(
        &[
            "--data-dir",
            dir.to_str().unwrap(),
            "demo",
            "--exit",
            "--events-per-day",
            "4000",
            "--http-addr",
            "127.0.0.1:0",
            "--output",
            "json",
        ],
        &[],
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json summary");
    assert_eq!(v["all_matched"], true, "{v}");
    let faults = v["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 4);
    assert!(
        faults.iter().all(|f| f["affected"].as_u64().unwrap() > 0),
        "{v}"
    );
    let raw = v["tables"][0]["rows"].as_i64().unwrap();
    assert!(raw > 8000, "{v}");
}
