//! `heal incidents …` against a running incidents role (`heal run --roles incidents` on a
//! PostgreSQL server and Kafka): an incident AI Ops published is listed from the database and
//! over HTTP, acknowledged, refused a second acknowledgement (the API's 409 as an error exit),
//! resolved with a reason and shown with its timeline.

use heal_incidents::store;
use heal_model::incident::{IncidentChange, IncidentMessage};
use heal_testkit::{free_port, http, wait_for, Backend, Heal, KillOnDrop, TestDb};
use serde_json::Value;
use std::process::{Command, Output};

const OPERATOR: &str = "operator-token-for-the-cli-test";
const READER: &str = "read-only-token-for-the-cli-test";

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_are_listed_moved_and_shown_from_the_command_line() {
    let (Some(admin), Some(kafka)) = (heal_testkit::server_url(), heal_testkit::kafka()) else {
        eprintln!("skipped: needs HEAL_TEST_DATABASE_URL and HEAL_TEST_KAFKA");
        return;
    };
    let t = TestDb::new(&Backend::Server(admin)).await;
    let url = t.url().unwrap().to_string();
    // An incident as AI Ops publishes it (stored the way the role stores it).
    let body: Value = serde_json::from_str(include_str!("incident.json")).unwrap();
    let incident = serde_json::from_value(body).unwrap();
    let m = IncidentMessage::new(IncidentChange::Opened, incident);
    assert!(store::apply_message(t.pool(), &m).await.unwrap());

    let port = free_port();
    let _heal = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_heal"))
            .args(["run", "--roles", "incidents"])
            .env("DATABASE_URL", &url)
            .env("KAFKA_BOOTSTRAP_SERVERS", &kafka)
            .env(
                "HEAL_KAFKA__GROUP_PREFIX",
                format!("incidents-{}", std::process::id()),
            )
            .env("HEAL_PORTS__INCIDENTS", port.to_string())
            .env("HEAL_BIND_HOST", "127.0.0.1")
            .env("HEAL_LOG_LEVEL", "warn")
            // The operator's moves alone: the self-healing executor stays out of this one.
            .env("HEAL_EXECUTOR__ENABLED", "false")
            .env(
                "HEAL_AUTH__TOKENS",
                format!(
                    r#"[{{name="ana", token="{OPERATOR}", scopes=["operator"]}}, {{name="viewer", token="{READER}", scopes=["read"]}}]"#
                ),
            )
            .current_dir(std::env::temp_dir())
            .spawn()
            .expect("heal starts"),
    );
    wait_for("readiness", || {
        http(port, "GET", "/readyz", "").is_some_and(|(s, _)| s == 200)
    });
    let base = format!("http://127.0.0.1:{port}");
    let as_who = |token: &str, args: &[&str]| {
        Heal::new(env!("CARGO_BIN_EXE_heal"))
            .env("DATABASE_URL", &url)
            .env("HEAL_TOKEN", token)
            .run(args)
    };
    let heal = |args: &[&str]| as_who(OPERATOR, args);

    let o = heal(&["incidents", "list", "--output", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["total"], 1, "{v}");
    let id = v["incidents"][0]["id"].as_str().unwrap().to_string();
    let o = heal(&["incidents", "list", "--url", &base, "--state", "open"]);
    assert!(
        o.status.success() && text(&o).contains(&id[..8]),
        "{}",
        text(&o)
    );

    // Changes need an operator token: none is 401, a read token 403, both told plainly.
    let o = as_who("", &["incidents", "ack", &id, "--url", &base]);
    assert!(
        !o.status.success() && text(&o).contains("401"),
        "{}",
        text(&o)
    );
    let o = as_who(READER, &["incidents", "ack", &id, "--url", &base]);
    assert!(
        !o.status.success() && text(&o).contains("403") && text(&o).contains("operator"),
        "{}",
        text(&o)
    );
    assert!(!text(&o).contains(READER), "the token is never echoed");

    let o = heal(&["incidents", "ack", &id, "--url", &base, "--actor", "ana"]);
    assert!(
        o.status.success() && text(&o).contains("acknowledged"),
        "{}",
        text(&o)
    );
    let o = heal(&["incidents", "ack", &id, "--url", &base]);
    assert!(!o.status.success(), "a second acknowledgement is refused");
    assert!(text(&o).contains("409"), "{}", text(&o));
    let o = heal(&[
        "incidents",
        "resolve",
        &id,
        "--reason",
        "nonsense",
        "--url",
        &base,
    ]);
    assert!(
        !o.status.success() && text(&o).contains("field reason"),
        "{}",
        text(&o)
    );
    let o = heal(&[
        "incidents",
        "resolve",
        &id,
        "--reason",
        "duplicates",
        "--note",
        "dedup ran",
        "--url",
        &base,
    ]);
    assert!(
        o.status.success() && text(&o).contains("resolved"),
        "{}",
        text(&o)
    );

    let o = heal(&["incidents", "show", &id, "--output", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["state"], "resolved");
    assert_eq!(v["resolution_reason"], "duplicates");
    let kinds: Vec<&str> = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["opened", "state", "state"]);
    // Merge and split go through the API's rules: told plainly what is wrong.
    for (args, expected) in [
        (vec!["split", &id, "--symptom", "f1"], "409"),
        (vec!["split", &id, "--symptom", "nope"], "field symptoms"),
        (vec!["merge", &id, "--into", &id], "field into"),
    ] {
        let mut all = vec!["incidents"];
        all.extend(args);
        all.extend(["--url", &base]);
        let o = heal(&all);
        assert!(
            !o.status.success() && text(&o).contains(expected),
            "{all:?}: {}",
            text(&o)
        );
    }
    let o = heal(&["incidents", "show", "nope"]);
    assert!(
        !o.status.success() && text(&o).contains("no incident"),
        "{}",
        text(&o)
    );
    drop(_heal);
    t.finish().await;
}
