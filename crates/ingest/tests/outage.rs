//! A database outage while the consumer runs, on every backend: the store is made to refuse
//! writes (read-only, other sessions cut) while events keep arriving. The consumer must report
//! the outage on `pipeline-events` with the data span it holds back, lose and double nothing,
//! and report the end once the store takes writes again.

use chrono::{TimeZone, Utc};
use heal_bus::{Bus, Consumer, Record};
use heal_generator::{Generator, SchemaMix};
use heal_ingest::{run_consumer, ConsumerStats, Ingestor, Settings};
use heal_model::pipeline::{PipelineEvent, PipelineStatus, STORAGE_UNAVAILABLE};
use heal_model::topics::{PIPELINE_EVENTS, RAW_EVENTS};
use heal_testkit::{backends, wait_until, TestDb};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn records(g: &mut Generator, n: usize) -> Vec<Record> {
    g.by_ref()
        .take(n)
        .map(|m| Record {
            key: m.key.into_bytes(),
            payload: m.payload,
            timestamp_ms: m.produced_at.timestamp_millis(),
        })
        .collect()
}

async fn stored(t: &TestDb) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM raw_events")
        .fetch_one(t.pool())
        .await
        .expect("count");
    n
}

/// The next pipeline event with `status`, within `within`.
async fn next_event(c: &mut Consumer, status: PipelineStatus, within: Duration) -> PipelineEvent {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        for m in c
            .poll_batch(10, Duration::from_millis(200))
            .await
            .expect("poll")
        {
            let e: PipelineEvent = serde_json::from_slice(&m.payload).expect("a pipeline event");
            if e.status == status {
                return e;
            }
        }
    }
    panic!("no {status:?} pipeline event within {within:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_reported_and_loses_nothing() {
    for backend in backends() {
        let t = TestDb::new(&backend).await;
        let bus = Bus::new(None).unwrap();
        bus.create_topics(&[RAW_EVENTS, PIPELINE_EVENTS], 1, 1)
            .await
            .unwrap();
        let mut watch = bus.consumer("test-watch", PIPELINE_EVENTS).unwrap();
        let ingestor = Arc::new(
            Ingestor::new(
                t.pool().clone(),
                Settings {
                    batch_size: 100,
                    ..Settings::default()
                },
            )
            .await
            .unwrap(),
        );
        let t0 = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
        let mut g = Generator::realtime(7, 2.0, t0, SchemaMix::default());
        let stats = Arc::new(ConsumerStats::default());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(run_consumer(
            ingestor,
            bus.consumer("heal-ingest", RAW_EVENTS).unwrap(),
            Some(bus.clone()),
            "heal-ingest".into(),
            RAW_EVENTS.into(),
            stats.clone(),
            stop_rx,
        ));

        let before = records(&mut g, 300);
        bus.send(RAW_EVENTS, before).await.unwrap();
        let stored_at_least = |n: u64| {
            let stats = stats.clone();
            move || {
                let ok = stats.messages.load(Ordering::Relaxed) >= n;
                async move { ok }
            }
        };
        let minute = Duration::from_secs(60);
        wait_until("the first events stored", minute, stored_at_least(300)).await;

        heal_store::outage::refuse_writes(t.pool(), true)
            .await
            .unwrap();
        let during = records(&mut g, 200);
        let first_held = during.first().unwrap().timestamp_ms;
        bus.send(RAW_EVENTS, during).await.unwrap();
        let down = next_event(&mut watch, PipelineStatus::Failed, Duration::from_secs(30)).await;
        assert_eq!(down.job, "ingest", "{backend}");
        assert_eq!(down.reason.as_deref(), Some(STORAGE_UNAVAILABLE));
        assert!(down.attempt >= 3, "{backend}: {down:?}");
        assert_eq!(
            down.data_start.map(|d| d.timestamp_millis()),
            Some(first_held),
            "{backend}: the span starts with the first event held back"
        );
        assert!(down
            .error
            .as_deref()
            .unwrap_or("")
            .contains("cannot take writes"));
        assert!(stats.errors.load(Ordering::Relaxed) >= 3);
        assert_eq!(
            stored(&t).await,
            300,
            "{backend}: nothing written while down"
        );

        heal_store::outage::refuse_writes(t.pool(), false)
            .await
            .unwrap();
        let up = next_event(
            &mut watch,
            PipelineStatus::Succeeded,
            Duration::from_secs(60),
        )
        .await;
        assert_eq!(
            up.run_id, down.run_id,
            "{backend}: the end names the same outage"
        );
        assert!(up.data_end >= down.data_end, "{backend}");
        assert!(up.duration_ms.is_some_and(|d| d > 0), "{backend}");
        wait_until("every event stored", minute, stored_at_least(500)).await;
        stop_tx.send(true).unwrap();
        task.await.unwrap().unwrap();
        assert_eq!(stored(&t).await, 500, "{backend}: each event once");
        let (offset,): (i64,) =
            sqlx::query_as("SELECT next_offset FROM consumer_offsets WHERE topic = $1")
                .bind(RAW_EVENTS)
                .fetch_one(t.pool())
                .await
                .unwrap();
        assert_eq!(offset, 500, "{backend}");
        t.finish().await;
    }
}
