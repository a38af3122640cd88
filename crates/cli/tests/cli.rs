//! The binary's contract with operators: help for every command, clear start-up failures for
//! bad configuration, and role/mode checks that refuse to run half-connected.

use heal_testkit::Heal;
use std::process::Output;

fn heal(args: &[&str], env: &[(&str, &str)]) -> Output {
    env.iter()
        .fold(
            Heal::new(env!("CARGO_BIN_EXE_heal")).clean_env(),
            |h, (k, v)| h.env(k, v),
        )
        .run(args)
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
        vec!["bench", "batch", "--help"],
        vec!["batch", "--help"],
        vec!["batch", "run", "--help"],
        vec!["batch", "backfill", "--help"],
        vec!["batch", "status", "--help"],
        vec!["batch", "runs", "--help"],
        vec!["aiops", "--help"],
        vec!["aiops", "incidents", "--help"],
        vec!["aiops", "explain", "--help"],
        vec!["incidents", "--help"],
        vec!["incidents", "list", "--help"],
        vec!["incidents", "show", "--help"],
        vec!["incidents", "ack", "--help"],
        vec!["incidents", "resolve", "--help"],
        vec!["incidents", "reopen", "--help"],
        vec!["incidents", "note", "--help"],
        vec!["incidents", "feedback", "--help"],
        vec!["eval", "--help"],
        vec!["bench", "aiops", "--help"],
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
    assert_eq!(faults.len(), 6);
    assert!(
        faults.iter().all(|f| f["affected"].as_u64().unwrap() > 0),
        "{v}"
    );
    let raw = v["tables"][0]["rows"].as_i64().unwrap();
    assert!(raw > 8000, "{v}");
    // The batch jobs ran on what was ingested.
    // The injected job failure failed the first pass; the second pass recomputed it.
    let passes = v["batch"]["passes"].as_array().unwrap();
    assert_eq!(passes.len(), 2, "{v}");
    assert_eq!(passes[0]["failed"], 1, "{v}");
    assert_eq!(v["batch"]["failed"], 0, "{v}");
    let revenue = v["batch"]["daily_revenue"].as_array().unwrap();
    assert_eq!(revenue.len(), 3, "{v}");
    for day in revenue {
        let (gross, refunds, net) = (
            day["gross_revenue_usd"].as_f64().unwrap(),
            day["refunds_usd"].as_f64().unwrap(),
            day["net_revenue_usd"].as_f64().unwrap(),
        );
        assert!(
            gross > 0.0 && (gross - refunds - net).abs() < 0.011,
            "{day}"
        );
    }
    assert_eq!(v["batch"]["user_funnel"].as_array().unwrap().len(), 3);
    // AI Ops turned the checks' failures into incidents, each with a grounded root cause, a
    // class, an explanation and actions; the payments drift is one of them.
    let incidents = v["aiops"]["incidents"].as_array().unwrap();
    assert!(!incidents.is_empty(), "{}", v["aiops"]);
    for i in incidents {
        assert!(!i["root_causes"].as_array().unwrap().is_empty(), "{i}");
        assert!(
            !i["explanation"]["text"].as_str().unwrap().is_empty(),
            "{i}"
        );
        assert!(!i["recommendations"].as_array().unwrap().is_empty(), "{i}");
    }
    assert!(
        incidents
            .iter()
            .any(|i| i["classification"]["class"] == "SCHEMA_DRIFT"
                && i["root_causes"][0]["node"]["name"] == "payments"),
        "{}",
        v["aiops"]
    );
}

/// `heal batch run|status|runs|backfill` against a server database holding ingested events.
#[tokio::test]
async fn batch_commands_run_report_and_backfill() {
    let Some(admin) = heal_testkit::server_url() else {
        eprintln!("skipped: needs HEAL_TEST_DATABASE_URL");
        return;
    };
    let t = heal_testkit::TestDb::new(&heal_testkit::Backend::Server(admin)).await;
    let url = t.url().unwrap().to_string();
    let scenario = heal_generator::Scenario::clean(
        "cli-batch",
        3,
        "2026-03-01T00:00:00Z".parse().unwrap(),
        2.0,
        1500.0,
    );
    let ingestor = heal_ingest::Ingestor::new(t.pool().clone(), heal_ingest::Settings::default())
        .await
        .unwrap();
    let items: Vec<heal_ingest::Incoming> = heal_generator::Generator::new(&scenario)
        .map(|e| heal_ingest::Incoming {
            partition: None,
            offset: None,
            payload: e.payload,
            produced_at: Some(e.produced_at),
        })
        .collect();
    ingestor
        .ingest(&heal_ingest::Source::Http, items)
        .await
        .unwrap();
    let env = [("DATABASE_URL", url.as_str()), ("HEAL_LOG_LEVEL", "warn")];
    let json = |o: &Output| -> serde_json::Value {
        assert!(o.status.success(), "{}", text(o));
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
    };

    let run = json(&heal(&["batch", "run", "--output", "json"], &env));
    let runs = run["runs"].as_array().unwrap();
    assert!(runs.len() >= 12, "six jobs or more on two days: {run}");
    assert!(runs.iter().all(|r| r["succeeded"] == true), "{run}");

    let status = json(&heal(&["batch", "status", "--output", "json"], &env));
    let jobs = status.as_array().unwrap();
    assert_eq!(jobs.len(), 7);
    for j in jobs {
        // Two days hold no refunds yet.
        let want = if j["name"] == "stg_refunds" {
            "no_data"
        } else {
            "fresh"
        };
        assert_eq!(j["state"], want, "{status}");
    }
    let table = heal(&["batch", "status"], &env);
    assert!(text(&table).contains("daily_revenue") && text(&table).contains("fresh"));

    let backfill = json(&heal(
        &[
            "batch",
            "backfill",
            "--from",
            "2026-03-02",
            "--to",
            "2026-03-02",
            "--job",
            "stg_orders",
            "--output",
            "json",
        ],
        &env,
    ));
    let mut rerun: Vec<String> = backfill["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["job"].as_str().unwrap(),
                r["day"].as_str().unwrap()
            )
        })
        .collect();
    rerun.sort();
    assert_eq!(
        rerun,
        [
            "daily_revenue 2026-03-02",
            "stg_orders 2026-03-02",
            "user_funnel 2026-03-02"
        ],
        "the job and everything downstream of it, for that day"
    );
    let history = json(&heal(
        &["batch", "runs", "--job", "stg_orders", "--output", "json"],
        &env,
    ));
    let triggers: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["trigger"].as_str().unwrap())
        .collect();
    assert_eq!(triggers[0], "backfill", "{history}");
    assert!(triggers[1..].iter().all(|t| *t == "manual"));

    let o = heal(&["batch", "run", "no_such_job"], &env);
    assert!(!o.status.success());
    assert!(text(&o).contains("no_such_job"), "{}", text(&o));
    let o = heal(&["batch", "run", "--date", "2026-13-01"], &env);
    assert!(!o.status.success());
    assert!(text(&o).contains("--date"), "{}", text(&o));
    t.finish().await;
}
