//! Exactly once through Kafka while the ingest process is killed with SIGKILL at random
//! moments: after restarts, every produced event is in PostgreSQL exactly once, with the same
//! id set, no duplicate deliveries counted, and nothing valid in quarantine.

use heal_bus::{Bus, Record};
use heal_generator::{Generator, Scenario};
use heal_testkit::{free_port, KillOnDrop};
use heal_testkit::{Backend, TestDb};
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const EVENTS: f64 = 200_000.0;

fn spawn_ingest(db_url: &str, kafka: &str, topic: &str, group: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_heal"))
        .args(["run", "--roles", "ingest"])
        .env("DATABASE_URL", db_url)
        .env("KAFKA_BOOTSTRAP_SERVERS", kafka)
        .env("HEAL_INGEST__TOPIC", topic)
        .env("HEAL_KAFKA__GROUP_PREFIX", group)
        // One replica owning every partition, restarted in place (tansu's group coordinator
        // keeps a killed member's partitions for minutes; static assignment does not wait).
        .env("HEAL_KAFKA__ASSIGNMENT", "static")
        .env("HEAL_INGEST__BATCH_SIZE", "2000")
        .env("HEAL_PORTS__INGEST", free_port().to_string())
        .env("HEAL_LOG_LEVEL", "warn")
        .current_dir(std::env::temp_dir())
        .spawn()
        .expect("heal starts")
}

async fn stored(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM raw_events")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_ingestion_loses_and_duplicates_nothing() {
    let (Some(admin), Some(kafka)) = (heal_testkit::server_url(), heal_testkit::kafka()) else {
        eprintln!("skipped: needs HEAL_TEST_DATABASE_URL and HEAL_TEST_KAFKA (the test script provides both)");
        return;
    };
    let t = TestDb::new(&Backend::Server(admin)).await;
    let pool = t.pool().clone();
    let url = t.url().unwrap().to_string();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let topic = format!("crash-{suffix}");
    let group = format!("crash-{suffix}");

    // Produce the events first, remembering every id.
    let scenario = Scenario::clean(
        "crash",
        11,
        "2026-03-01T00:00:00Z".parse().unwrap(),
        2.0,
        EVENTS / 2.0,
    );
    let bus = Bus::new(Some(&kafka)).unwrap();
    bus.create_topics(&[topic.as_str()], 6, 1).await.unwrap();
    let mut ids = BTreeSet::new();
    let mut generator = Generator::new(&scenario);
    loop {
        let chunk: Vec<Record> = generator
            .by_ref()
            .take(5000)
            .map(|ev| {
                ids.insert(ev.event_id.clone());
                Record {
                    key: ev.key.into_bytes(),
                    payload: ev.payload,
                    timestamp_ms: ev.produced_at.timestamp_millis(),
                }
            })
            .collect();
        if chunk.is_empty() {
            break;
        }
        bus.send(&topic, chunk).await.unwrap();
    }
    let total = ids.len() as i64;
    assert!(total >= 200_000, "produced {total}");

    // Kill the ingest process at random moments while it is writing.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut kills = 0;
    while kills < 4 {
        let before = stored(&pool).await;
        let mut child = KillOnDrop(spawn_ingest(&url, &kafka, &topic, &group));
        let started = Instant::now();
        // Wait until it makes progress, then a random moment later, kill it.
        while stored(&pool).await == before && started.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..1500))).await;
        let now = stored(&pool).await;
        if now >= total {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        kills += 1;
        eprintln!("killed ingest after {now} of {total} events");
    }
    assert!(
        kills >= 3,
        "the process was killed mid-ingestion {kills} times"
    );

    // A last run finishes the topic.
    let mut child = KillOnDrop(spawn_ingest(&url, &kafka, &topic, &group));
    let started = Instant::now();
    while stored(&pool).await < total && started.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let any redelivery show up before checking.
    tokio::time::sleep(Duration::from_secs(2)).await;
    sigterm(&child);
    let _ = child.wait();
    let _ = child.kill();

    let stored_ids: Vec<String> = sqlx::query_scalar("SELECT event_id FROM raw_events")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(stored_ids.len() as i64, total, "every event stored once");
    let stored_set: BTreeSet<String> = stored_ids.into_iter().collect();
    assert!(
        stored_set == ids,
        "the stored id set equals the produced id set"
    );
    let dups: i64 =
        sqlx::query_scalar("SELECT coalesce(sum(duplicate_count), 0)::int8 FROM raw_events")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        dups, 0,
        "redelivered messages were skipped by stored offsets, not re-ingested"
    );
    let quarantined: i64 = sqlx::query_scalar("SELECT count(*) FROM quarantine")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(quarantined, 0, "nothing valid in quarantine");
    let typed: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM sessions) + (SELECT count(*) FROM product_views)
              + (SELECT count(*) FROM cart_items) + (SELECT count(*) FROM orders) + (SELECT count(*) FROM payments)
              + (SELECT count(*) FROM refunds)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        typed, total,
        "every event normalized once into its typed table"
    );
    let offsets: i64 = sqlx::query_scalar("SELECT sum(next_offset)::int8 FROM consumer_offsets")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(offsets, total, "stored offsets cover exactly the topic");
    t.finish().await;
}

/// Asks the child to stop gracefully.
fn sigterm(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}
