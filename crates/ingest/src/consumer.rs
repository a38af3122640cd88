//! The topic consumer loop: resume from the offsets stored in PostgreSQL, ingest in batches
//! bounded by size and time, and on failure rewind to the stored offsets and retry, so that
//! nothing acknowledged is lost and nothing is written twice. A store that stays unavailable
//! is reported on `pipeline-events` (see [`crate::outage`]).

use crate::outage::{span_of, OutageTracker};
use crate::positions::{Positions, Verdict};
use crate::write::stored_offsets;
use crate::{Incoming, Ingestor, Source};
use chrono::{DateTime, Utc};
use heal_bus::{Bus, Consumer, Record};
use heal_model::pipeline::PipelineEvent;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often the consumer compares its positions with the partitions' end offsets.
const END_CHECK: Duration = Duration::from_secs(5);
/// How long a partition with records left may deliver nothing before it is rewound.
const QUIET: Duration = Duration::from_secs(10);

/// Counters of a running consumer, for health and progress.
#[derive(Debug, Default)]
pub struct ConsumerStats {
    pub messages: AtomicU64,
    pub inserted: AtomicU64,
    pub duplicates: AtomicU64,
    pub quarantined: AtomicU64,
    pub late: AtomicU64,
    pub batches: AtomicU64,
    pub errors: AtomicU64,
}

/// Consumes `topic` as `group` until `shutdown` turns true. The batch in flight when shutdown
/// is asked for is finished first. Outages of the store are published on `pipeline-events`
/// through `events` when given.
#[allow(clippy::too_many_arguments)]
pub async fn run_consumer(
    ingestor: Arc<Ingestor>,
    mut consumer: Consumer,
    events: Option<Bus>,
    group: String,
    topic: String,
    stats: Arc<ConsumerStats>,
    mut shutdown: watch::Receiver<bool>,
) -> crate::Result<()> {
    let source = Source::Topic {
        group: group.clone(),
        topic: topic.clone(),
    };
    let batch_size = ingestor.settings().batch_size;
    let wait = ingestor.settings().batch_timeout;
    let mut stored: BTreeMap<i32, i64> = stored_offsets(ingestor.pool(), &group, &topic).await?;
    let mut positions = Positions::new(&stored);
    let mut backoff = Duration::from_millis(100);
    let mut next_end_check = Instant::now() + END_CHECK;
    let mut outage = OutageTracker::default();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let batch = tokio::select! {
            b = consumer.poll_batch(batch_size, wait) => b,
            _ = shutdown.changed() => break,
        };
        if consumer.assignment_changed() {
            // The store may be down right now: wait for it rather than give up the role.
            stored = loop {
                match stored_offsets(ingestor.pool(), &group, &topic).await {
                    Ok(s) => break s,
                    Err(e) if *shutdown.borrow() => return Err(e.into()),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the stored offsets; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            };
            positions = Positions::new(&stored);
            for (p, o) in &stored {
                // Kafka may not have this partition assigned; the checks below still apply.
                let _ = consumer.seek(&topic, *p, *o);
            }
        }
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "poll failed; retrying");
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let now = Instant::now();
        for m in &batch {
            positions.delivered(m.partition, now);
        }
        if now >= next_end_check {
            next_end_check = now + END_CHECK;
            match consumer.end_offsets(&topic).await {
                Ok(ends) => {
                    tracing::debug!(?ends, "end offsets");
                    for p in positions.stalled(&ends, now, QUIET) {
                        metrics::counter!("heal_ingest_stalled_partitions_total").increment(1);
                        let end = ends[&p];
                        if positions.expected(p).is_some_and(|e| end > e) {
                            tracing::warn!(
                                partition = p,
                                end,
                                "records left but none delivered; rewinding the partition"
                            );
                        } else {
                            tracing::info!(partition = p, end, "the broker's end offset is behind the resumed position; re-reading the partition once to check it");
                        }
                        if let Err(e) = consumer.seek(&topic, p, 0) {
                            tracing::warn!(partition = p, error = %e, "rewind failed; will retry");
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "end offsets unavailable"),
            }
        }
        // Skip what an earlier transaction already stored (redelivery after a crash), and
        // never step over records the broker did not deliver.
        let mut rewinds: BTreeMap<i32, i64> = BTreeMap::new();
        let mut gapped: std::collections::BTreeSet<i32> = std::collections::BTreeSet::new();
        let items: Vec<Incoming> = batch
            .into_iter()
            .filter(|m| {
                if gapped.contains(&m.partition) {
                    return false;
                }
                match positions.judge(m.partition, m.offset) {
                    Verdict::Accept => true,
                    Verdict::Skip => false,
                    Verdict::Gap(to) => {
                        gapped.insert(m.partition);
                        if let Some(to) = to {
                            rewinds.insert(m.partition, to);
                        }
                        false
                    }
                }
            })
            .map(|m| Incoming {
                partition: Some(m.partition),
                offset: Some(m.offset),
                payload: m.payload,
                produced_at: m
                    .timestamp_ms
                    .and_then(DateTime::<Utc>::from_timestamp_millis),
            })
            .collect();
        for (p, to) in &rewinds {
            metrics::counter!("heal_ingest_offset_gaps_total").increment(1);
            tracing::warn!(partition = p, expected = ?stored.get(p), rewind_to = to, "the broker skipped records; rewinding the partition");
            if let Err(e) = consumer.seek(&topic, *p, *to) {
                // The end-offset check rewinds the partition again if it stays stuck.
                tracing::warn!(partition = p, error = %e, "rewind failed; will retry");
            }
        }
        if items.is_empty() {
            continue;
        }
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for item in &items {
            let (p, o) = (item.partition.unwrap_or(0), item.offset.unwrap_or(0));
            let e = next.entry(p).or_insert(o + 1);
            *e = (*e).max(o + 1);
        }
        let count = items.len() as u64;
        let span = span_of(&items);
        match ingestor.ingest(&source, items).await {
            Ok(outcome) => {
                backoff = Duration::from_millis(100);
                if let Some(ended) = outage.succeeded() {
                    tracing::info!("the store takes writes again; reporting the end of the outage");
                    publish(events.as_ref(), &ended).await;
                }
                stats.messages.fetch_add(count, Ordering::Relaxed);
                stats
                    .inserted
                    .fetch_add(outcome.inserted, Ordering::Relaxed);
                stats
                    .duplicates
                    .fetch_add(outcome.duplicates, Ordering::Relaxed);
                stats.late.fetch_add(outcome.late, Ordering::Relaxed);
                stats
                    .quarantined
                    .fetch_add(outcome.quarantined.len() as u64, Ordering::Relaxed);
                stats.batches.fetch_add(1, Ordering::Relaxed);
                stored.extend(next.iter().map(|(p, o)| (*p, *o)));
                let offsets: Vec<(i32, i64)> = next.into_iter().collect();
                if let Err(e) = consumer.commit(&topic, &offsets) {
                    tracing::debug!(error = %e, "advisory offset commit failed");
                }
            }
            Err(e) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("heal_ingest_batch_errors_total").increment(1);
                tracing::error!(error = %e, events = count, "batch not stored; rewinding to stored offsets");
                if let Some(report) = outage.failed(&e, span) {
                    tracing::error!(
                        attempts = report.attempt,
                        "the store cannot take writes; reporting an outage"
                    );
                    publish(events.as_ref(), &report).await;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                stored = stored_offsets(ingestor.pool(), &group, &topic)
                    .await
                    .unwrap_or(stored);
                positions = Positions::new(&stored);
                for p in next.keys() {
                    let o = stored.get(p).copied().unwrap_or(0);
                    // Without a rewind, later batches would move the stored offsets past the
                    // events of this one: stop instead, and resume from the stored offsets.
                    consumer.seek(&topic, *p, o)?;
                }
            }
        }
    }
    tracing::info!(%topic, %group, "consumer stopped");
    Ok(())
}

/// Publishes a pipeline event about the store (never blocks on a full in-process topic).
async fn publish(bus: Option<&Bus>, event: &PipelineEvent) {
    let Some(bus) = bus else { return };
    let record = Record {
        key: event.job.as_bytes().to_vec(),
        payload: serde_json::to_vec(event).expect("pipeline events serialize"),
        timestamp_ms: Utc::now().timestamp_millis(),
    };
    if let Err(e) = bus
        .send_evicting(heal_model::topics::PIPELINE_EVENTS, vec![record])
        .await
    {
        tracing::warn!(error = %e, "cannot publish the outage event");
    }
}
