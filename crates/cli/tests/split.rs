//! Microservices mode: the generator and the ingest roles as separate processes, each on its
//! own port, talking through Kafka and sharing a real PostgreSQL server, as the Kubernetes
//! manifests run them.

use heal_testkit::{free_port, http, wait_for, KillOnDrop};
use heal_testkit::{Backend, TestDb};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn role(role: &str, db: &str, kafka: &str, group: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_heal"))
        .args(["run", "--roles", role])
        .env("DATABASE_URL", db)
        .env("KAFKA_BOOTSTRAP_SERVERS", kafka)
        .env("HEAL_KAFKA__GROUP_PREFIX", group)
        .env(
            format!("HEAL_PORTS__{}", role.to_uppercase()),
            port.to_string(),
        )
        .env("HEAL_BIND_HOST", "127.0.0.1")
        .env("HEAL_GENERATOR__EVENTS_PER_SECOND", "200")
        .env("HEAL_LOG_LEVEL", "warn")
        .current_dir(std::env::temp_dir())
        .spawn()
        .expect("heal starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generator_and_ingest_as_separate_processes() {
    let (Some(admin), Some(kafka)) = (heal_testkit::server_url(), heal_testkit::kafka()) else {
        eprintln!("skipped: needs HEAL_TEST_DATABASE_URL and HEAL_TEST_KAFKA (the test script provides both)");
        return;
    };
    let t = TestDb::new(&Backend::Server(admin)).await;
    let url = t.url().unwrap().to_string();
    let group = format!("split-{}", std::process::id());
    let (gen_port, ingest_port) = (free_port(), free_port());
    let mut generator = KillOnDrop(role("generator", &url, &kafka, &group, gen_port));
    let mut ingest = KillOnDrop(role("ingest", &url, &kafka, &group, ingest_port));

    for port in [gen_port, ingest_port] {
        wait_for("readiness", || {
            matches!(http(port, "GET", "/readyz", ""), Some((200, _)))
        });
        let (status, body) = http(port, "GET", "/healthz", "").unwrap();
        assert_eq!(status, 200, "{body}");
    }
    // Each listener serves its own role's API only.
    assert_eq!(
        http(gen_port, "GET", "/api/generator/status", "")
            .unwrap()
            .0,
        200
    );
    assert_eq!(
        http(gen_port, "GET", "/api/ingest/status", "").unwrap().0,
        404
    );
    assert_eq!(
        http(ingest_port, "GET", "/api/ingest/status", "")
            .unwrap()
            .0,
        200
    );

    // Generated events cross Kafka into PostgreSQL.
    let pool = t.pool().clone();
    let started = Instant::now();
    let mut stored = 0i64;
    while stored < 200 && started.elapsed() < Duration::from_secs(90) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stored = sqlx::query_scalar("SELECT count(*) FROM raw_events")
            .fetch_one(&pool)
            .await
            .unwrap();
    }
    assert!(stored >= 200, "only {stored} events arrived");
    let (_, metrics) = http(ingest_port, "GET", "/metrics", "").unwrap();
    assert!(
        metrics.contains("heal_ingest_events_inserted_total"),
        "{metrics}"
    );
    // The topic may hold events of earlier runs on the same broker: the generator's own
    // counter says that it sent some.
    wait_for("the generator to count what it sent", || {
        http(gen_port, "GET", "/metrics", "")
            .is_some_and(|(_, m)| m.contains("heal_generator_events_sent_total"))
    });

    for child in [&mut generator, &mut ingest] {
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
    }
    for child in [&mut generator, &mut ingest] {
        let status = child.wait().unwrap();
        assert!(status.success(), "graceful stop: {status}");
    }
    t.finish().await;
}
