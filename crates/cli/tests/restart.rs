//! The embedded default keeps its state: a monolithic `heal run` on a data directory, stopped
//! with SIGTERM and started again, still has its events, and deduplication spans the restart.

use heal_testkit::{free_port, http};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn start(dir: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_heal"))
        .args(["--data-dir", dir.to_str().unwrap(), "run"])
        .env("HEAL_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("HEAL_LOG_LEVEL", "warn")
        // Posting events needs a token unless authentication is off, as here.
        .env("HEAL_AUTH__DISABLED", "true")
        .env_remove("DATABASE_URL")
        .env_remove("KAFKA_BOOTSTRAP_SERVERS")
        .current_dir(std::env::temp_dir())
        .spawn()
        .expect("heal starts")
}

fn wait_ready(port: u16) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if let Some((200, _)) = http(port, "GET", "/readyz", "") {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("not ready within 60 s");
}

fn stop(mut child: Child) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "graceful stop exits 0: {status}");
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "stops within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_restart_on_the_same_data_directory_resumes() {
    let dir = std::env::temp_dir().join(format!("heal-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let event = r#"{"event_id":"restart-1","event_type":"ORDER_PLACED","timestamp":"2026-03-01T10:00:00","user_id":"u1","schema_version":"1.0","properties":{"order_amount":12.5,"currency":"USD","items":1}}"#;

    let port = free_port();
    let child = start(&dir, port);
    wait_ready(port);
    let (status, body) = http(port, "POST", "/api/events", event).unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["inserted"], 1, "{v}");
    let (status, body) = http(port, "POST", "/api/events", "[]").unwrap();
    assert_eq!(status, 400, "an empty body names the problem: {body}");
    assert!(body.contains("body"), "{body}");
    stop(child);

    let port = free_port();
    let child = start(&dir, port);
    wait_ready(port);
    let (_, body) = http(port, "POST", "/api/events", event).unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["inserted"].as_u64(), v["duplicates"].as_u64()),
        (Some(0), Some(1)),
        "{v}"
    );
    let (_, body) = http(port, "GET", "/api/ingest/status", "").unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let orders = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "orders")
        .unwrap()["rows"]
        .as_i64()
        .unwrap();
    assert!(orders >= 1, "{v}");
    let (status, metrics) = http(port, "GET", "/metrics", "").unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains("heal_ingest_events_duplicate_total"),
        "{metrics}"
    );
    stop(child);
    let _ = std::fs::remove_dir_all(&dir);
}
