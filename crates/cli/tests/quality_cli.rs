//! `heal quality validate|run|status|results|conditions` against a PostgreSQL server database:
//! a checks file with a mistake is refused naming the file, the check and the key; the shipped
//! checks validate, run and report, as tables and as JSON.

use heal_testkit::{server_url, Backend, Heal, TestDb};
use serde_json::Value;
use std::process::Output;

fn heal(url: &str, args: &[&str]) -> Output {
    Heal::new(env!("CARGO_BIN_EXE_heal"))
        .env("DATABASE_URL", url)
        .run(args)
}

fn json(o: &Output) -> Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("JSON on stdout")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quality_commands_validate_run_and_report() {
    let Some(admin) = server_url() else {
        eprintln!("skipped: HEAL_TEST_DATABASE_URL is not set");
        return;
    };
    let t = TestDb::new(&Backend::Server(admin)).await;
    let url = t.url().expect("server database").to_string();
    let dir = std::env::temp_dir().join(format!("heal-quality-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[check]]\nname = \"order_nulls\"\ntype = \"completeness\"\ndataset = \"orders\"\ncolumns = [\"amount\"]\n",
    )
    .unwrap();
    let o = heal(
        &url,
        &["quality", "validate", "--checks", bad.to_str().unwrap()],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.toml")
            && err.contains("check \"order_nulls\"")
            && err.contains("columns:")
            && err.contains("amount"),
        "{err}"
    );

    let shipped = json(&heal(&url, &["quality", "validate", "--output", "json"]));
    let n = shipped["checks"].as_array().unwrap().len();
    assert!(n >= 20, "{n} shipped checks");

    // No data yet: windowed checks have nothing to judge, incremental ones pass.
    let report = json(&heal(&url, &["quality", "run", "--output", "json"]));
    assert_eq!(report["checks"].as_array().unwrap().len(), n);
    assert!(report["clock"].is_null());
    assert!(report["events"].as_array().unwrap().is_empty());
    let one = json(&heal(
        &url,
        &[
            "quality",
            "run",
            "--check",
            "pipeline_health",
            "--output",
            "json",
        ],
    ));
    assert_eq!(one["checks"].as_array().unwrap().len(), 1);
    let o = heal(&url, &["quality", "run", "--check", "nope"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope"));

    let status = json(&heal(&url, &["quality", "status", "--output", "json"]));
    assert_eq!(status.as_array().unwrap().len(), n);
    let table = heal(&url, &["quality", "status"]);
    assert!(table.status.success());
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("raw_events_volume") && text.contains("trend"),
        "{text}"
    );

    let results = json(&heal(
        &url,
        &[
            "quality",
            "results",
            "--check",
            "pipeline_health",
            "--output",
            "json",
        ],
    ));
    assert!(!results.as_array().unwrap().is_empty(), "{results}");
    let o = heal(&url, &["quality", "results", "--limit", "0"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--limit"));
    let conditions = json(&heal(
        &url,
        &[
            "quality",
            "conditions",
            "--state",
            "open",
            "--output",
            "json",
        ],
    ));
    assert!(conditions.as_array().unwrap().is_empty());

    std::fs::remove_dir_all(&dir).ok();
    t.finish().await;
}
