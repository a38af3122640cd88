//! The ingest pipeline against real PostgreSQL engines (embedded everywhere, the server too
//! when configured): normalization of every kind and version, deduplication, late events,
//! quarantine and replay, and exactly-once resumption from stored offsets.

use chrono::{DateTime, Duration, TimeZone, Utc};
use heal_bus::{Bus, Record};
use heal_ingest::{run_consumer, ConsumerStats, Incoming, Ingestor, Settings, Source};
use heal_model::event::{EventBody, EventKind, OrderLine, PaymentStatus, SchemaVersion};
use heal_model::{wire, CanonicalEvent};
use heal_testkit::{backends, TestDb};
use std::sync::Arc;

fn at(h: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap() + Duration::hours(h)
}

fn order(id: &str, hour: i64, amount_minor: i64, currency: &str) -> CanonicalEvent {
    CanonicalEvent {
        event_id: id.into(),
        occurred_at: at(hour),
        user_id: "u1".into(),
        session_id: Some("s1".into()),
        schema_version: SchemaVersion::V2,
        body: EventBody::Order {
            order_id: format!("o-{id}"),
            amount_minor,
            currency: currency.into(),
            item_count: 1,
            lines: vec![OrderLine {
                product_id: "p1".into(),
                quantity: 1,
                unit_price_minor: amount_minor,
            }],
        },
    }
}

fn payment(id: &str, hour: i64) -> CanonicalEvent {
    CanonicalEvent {
        event_id: id.into(),
        occurred_at: at(hour),
        user_id: "u1".into(),
        session_id: None,
        schema_version: SchemaVersion::V3,
        body: EventBody::Payment {
            payment_id: format!("pay-{id}"),
            order_id: Some("o-x".into()),
            amount_minor: 1250,
            currency: "USD".into(),
            method: "card".into(),
            status: PaymentStatus::Succeeded,
            attempt: 1,
            failure_reason: None,
        },
    }
}

fn bytes(ev: &CanonicalEvent, version: SchemaVersion) -> Vec<u8> {
    wire::encode(ev, version).unwrap().to_string().into_bytes()
}

fn http(payloads: Vec<Vec<u8>>) -> Vec<Incoming> {
    payloads
        .into_iter()
        .map(|payload| Incoming {
            partition: None,
            offset: None,
            payload,
            produced_at: None,
        })
        .collect()
}

async fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normalizes_deduplicates_flags_late_and_quarantines() {
    for backend in backends() {
        let t = TestDb::new(&backend).await;
        let pool = t.pool().clone();
        let ingestor = Ingestor::new(pool.clone(), Settings::default())
            .await
            .unwrap();

        // Every version of an order, a v3 payment, a repeated id, and two broken events.
        let o1 = order("e1", 10, 12345, "USD");
        let o2 = order("e2", 11, 1500, "JPY");
        let o3 = order("e3", 12, 999, "EUR");
        let batch = http(vec![
            bytes(&o1, SchemaVersion::V1),
            bytes(&o2, SchemaVersion::V2),
            bytes(&o3, SchemaVersion::V3),
            bytes(&payment("e4", 12), SchemaVersion::V3),
            bytes(&o1, SchemaVersion::V1),
            b"{not json".to_vec(),
            br#"{"event_id":"e9","event_type":"ORDER_PLACED","schema_version":"7.1"}"#.to_vec(),
        ]);
        let out = ingestor.ingest(&Source::Http, batch).await.unwrap();
        assert_eq!(
            (out.inserted, out.duplicates, out.late),
            (4, 1, 0),
            "{backend}"
        );
        let reasons: Vec<&str> = out.quarantined.iter().map(|q| q.reason.as_str()).collect();
        assert_eq!(
            reasons,
            vec!["malformed_json", "unknown_schema_version"],
            "{backend}"
        );
        assert_eq!(out.quarantined[1].event_id.as_deref(), Some("e9"));

        // Typed rows: v1 decimal amounts become minor units, v1 orders are keyed by event id.
        let rows: Vec<(String, String, i64, String)> = sqlx::query_as(
            "SELECT event_id, order_id, amount_minor, currency FROM orders ORDER BY event_id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(
            rows,
            vec![
                ("e1".into(), "e1".into(), 12345, "USD".into()),
                ("e2".into(), "o-e2".into(), 1500, "JPY".into()),
                ("e3".into(), "o-e3".into(), 999, "EUR".into()),
            ],
            "{backend}"
        );
        assert_eq!(
            count(
                &pool,
                "SELECT count(*) FROM payments WHERE payment_id = 'pay-e4'"
            )
            .await,
            1
        );
        assert_eq!(count(&pool, "SELECT count(*) FROM raw_events").await, 4);

        // Redelivery of stored events: counted, not stored again.
        let again = ingestor
            .ingest(&Source::Http, http(vec![bytes(&o2, SchemaVersion::V2)]))
            .await
            .unwrap();
        assert_eq!((again.inserted, again.duplicates), (0, 1));
        assert_eq!(
            count(
                &pool,
                "SELECT duplicate_count::int8 FROM raw_events WHERE event_id = 'e1'"
            )
            .await,
            1
        );
        assert_eq!(
            count(
                &pool,
                "SELECT duplicate_count::int8 FROM raw_events WHERE event_id = 'e2'"
            )
            .await,
            1
        );

        // An order three hours behind the newest one is late: stored, flagged, partition dirty.
        let late = order("e5", 8, 100, "USD");
        let out = ingestor
            .ingest(&Source::Http, http(vec![bytes(&late, SchemaVersion::V2)]))
            .await
            .unwrap();
        assert_eq!((out.inserted, out.late), (1, 1));
        assert_eq!(
            count(&pool, "SELECT count(*) FROM orders WHERE is_late").await,
            1
        );
        let dirty: Vec<(String, chrono::NaiveDate, i64)> =
            sqlx::query_as("SELECT table_name, day, late_events FROM dirty_partitions")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(dirty, vec![("orders".into(), at(0).date_naive(), 1)]);

        // Within the allowed lateness: not late.
        let on_time = order("e6", 11, 100, "USD");
        let out = ingestor
            .ingest(
                &Source::Http,
                http(vec![bytes(&on_time, SchemaVersion::V2)]),
            )
            .await
            .unwrap();
        assert_eq!(out.late, 0);
        t.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn future_events_are_quarantined_and_replay_once_they_are_valid() {
    for backend in backends() {
        let t = TestDb::new(&backend).await;
        let pool = t.pool().clone();
        let ingestor = Ingestor::new(pool.clone(), Settings::default())
            .await
            .unwrap();
        let ev = order("f1", 30, 500, "USD");
        // Produced a day before the time it claims: a future timestamp.
        let items = vec![
            Incoming {
                partition: None,
                offset: None,
                payload: bytes(&ev, SchemaVersion::V2),
                produced_at: Some(at(6)),
            },
            Incoming {
                partition: None,
                offset: None,
                payload: b"\xff\xfe garbage".to_vec(),
                produced_at: None,
            },
        ];
        let out = ingestor.ingest(&Source::Http, items).await.unwrap();
        assert_eq!(out.inserted, 0);
        let reasons: Vec<&str> = out.quarantined.iter().map(|q| q.reason.as_str()).collect();
        assert_eq!(reasons, vec!["future_timestamp", "invalid_encoding"]);

        // Replaying now (the event time has passed) ingests it; garbage stays open.
        let report =
            heal_ingest::quarantine::replay(&ingestor, &heal_ingest::quarantine::Filter::default())
                .await
                .unwrap();
        assert_eq!(
            (report.examined, report.ingested, report.still_failing),
            (2, 1, 1)
        );
        assert_eq!(
            count(&pool, "SELECT count(*) FROM orders WHERE event_id = 'f1'").await,
            1
        );
        let statuses: Vec<(String, String, i32)> =
            sqlx::query_as("SELECT reason, status, replay_attempts FROM quarantine ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(
            statuses,
            vec![
                ("future_timestamp".into(), "replayed".into(), 1),
                ("invalid_encoding".into(), "open".into(), 1)
            ]
        );
        // Nothing left to replay twice.
        let report = heal_ingest::quarantine::replay(
            &ingestor,
            &heal_ingest::quarantine::Filter {
                reason: Some("future_timestamp".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(report.examined, 0);
        t.finish().await;
    }
}

async fn consume_until(
    ingestor: Arc<Ingestor>,
    bus: &Bus,
    expected_messages: u64,
) -> Arc<ConsumerStats> {
    let consumer = bus.consumer("heal-ingest", "raw-events").unwrap();
    let stats = Arc::new(ConsumerStats::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(run_consumer(
        ingestor,
        consumer,
        None,
        "heal-ingest".into(),
        "raw-events".into(),
        stats.clone(),
        stop_rx,
    ));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while stats.messages.load(std::sync::atomic::Ordering::Relaxed) < expected_messages
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Give a redelivery a chance to show up before stopping.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop_tx.send(true).unwrap();
    task.await.unwrap().unwrap();
    stats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_resumes_from_offsets_stored_with_the_rows() {
    for backend in backends() {
        let t = TestDb::new(&backend).await;
        let pool = t.pool().clone();
        let settings = Settings {
            batch_size: 64,
            ..Settings::default()
        };
        let records: Vec<Record> = (0..500)
            .map(|i| {
                let ev = order(&format!("k{i}"), i / 20, 100 + i, "USD");
                Record {
                    key: format!("user-{}", i % 13).into_bytes(),
                    payload: bytes(&ev, SchemaVersion::V2),
                    timestamp_ms: at(i / 20).timestamp_millis(),
                }
            })
            .collect();

        let bus = Bus::new(None).unwrap();
        bus.create_topics(&["raw-events"], 3, 1).await.unwrap();
        bus.send("raw-events", records.clone()).await.unwrap();
        let ingestor = Arc::new(Ingestor::new(pool.clone(), settings.clone()).await.unwrap());
        let stats = consume_until(ingestor, &bus, 500).await;
        assert_eq!(
            stats.inserted.load(std::sync::atomic::Ordering::Relaxed),
            500
        );
        let stored: i64 = count(&pool, "SELECT sum(next_offset)::int8 FROM consumer_offsets").await;
        assert_eq!(stored, 500, "{backend}: offsets stored with the rows");

        // A restarted process whose broker redelivers everything from offset 0 (a new bus with
        // the same log): the stored offsets make it skip all of it.
        let bus2 = Bus::new(None).unwrap();
        bus2.create_topics(&["raw-events"], 3, 1).await.unwrap();
        bus2.send("raw-events", records).await.unwrap();
        let ingestor = Arc::new(Ingestor::new(pool.clone(), settings).await.unwrap());
        let stats = consume_until(ingestor, &bus2, 0).await;
        assert_eq!(
            stats.messages.load(std::sync::atomic::Ordering::Relaxed),
            0,
            "{backend}"
        );
        assert_eq!(count(&pool, "SELECT count(*) FROM raw_events").await, 500);
        assert_eq!(
            count(
                &pool,
                "SELECT coalesce(sum(duplicate_count), 0)::int8 FROM raw_events"
            )
            .await,
            0
        );
        assert_eq!(count(&pool, "SELECT count(*) FROM orders").await, 500);
        let _ = EventKind::ALL;
        t.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_few_events_stamped_far_ahead_do_not_move_the_watermark() {
    for backend in backends() {
        let t = TestDb::new(&backend).await;
        let pool = t.pool().clone();
        let ingestor = Ingestor::new(pool.clone(), Settings::default())
            .await
            .unwrap();
        // Twenty orders within an hour, and three whose device clock is a day ahead.
        let mut payloads: Vec<Vec<u8>> = (0..20)
            .map(|i| {
                let mut o = order(&format!("n{i}"), 10, 100, "USD");
                o.occurred_at += Duration::minutes(3 * i);
                bytes(&o, SchemaVersion::V2)
            })
            .collect();
        payloads.extend(
            (0..3).map(|i| bytes(&order(&format!("f{i}"), 34, 100, "USD"), SchemaVersion::V2)),
        );
        let out = ingestor
            .ingest(&Source::Http, http(payloads))
            .await
            .unwrap();
        assert_eq!((out.inserted, out.late), (23, 0), "{backend}");
        let watermark: DateTime<Utc> =
            sqlx::query_scalar("SELECT max(max_event_time) FROM stream_watermarks")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(watermark, at(10) + Duration::minutes(57), "{backend}");
        // The next on-time events are on time.
        let next = http(
            (0..5)
                .map(|i| bytes(&order(&format!("m{i}"), 11, 100, "USD"), SchemaVersion::V2))
                .collect(),
        );
        let out = ingestor.ingest(&Source::Http, next).await.unwrap();
        assert_eq!((out.inserted, out.late), (5, 0), "{backend}");

        // One event a day ahead posted alone: nothing in its request to judge it by, and it
        // does not move the watermark either.
        let watermark = || async {
            sqlx::query_scalar::<_, DateTime<Utc>>(
                "SELECT max(max_event_time) FROM stream_watermarks",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
        };
        let alone = |id: &str, hour: i64| {
            http(vec![bytes(&order(id, hour, 100, "USD"), SchemaVersion::V2)])
        };
        let out = ingestor
            .ingest(&Source::Http, alone("a0", 35))
            .await
            .unwrap();
        assert_eq!(out.inserted, 1, "{backend}");
        assert_eq!(watermark().await, at(11), "{backend}");
        let out = ingestor
            .ingest(&Source::Http, alone("a1", 11))
            .await
            .unwrap();
        assert_eq!((out.inserted, out.late), (1, 0), "{backend}");

        // A source resuming after an outage one event per request: the third in a row far
        // ahead moves the watermark, and the old time is late from then on.
        for (i, hour) in [15, 15, 16].into_iter().enumerate() {
            ingestor
                .ingest(&Source::Http, alone(&format!("r{i}"), hour))
                .await
                .unwrap();
            let expected = if i < 2 { at(11) } else { at(16) };
            assert_eq!(
                watermark().await,
                expected,
                "{backend}: after {} alone",
                i + 1
            );
        }
        let out = ingestor
            .ingest(&Source::Http, alone("old", 11))
            .await
            .unwrap();
        assert_eq!(out.late, 1, "{backend}");
    }
}
