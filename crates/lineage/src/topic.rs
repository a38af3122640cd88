//! The `lineage-events` topic as a second way in, for emitters using OpenLineage's Kafka
//! transport. Each record is one event, accepted exactly as `POST /api/v1/lineage` accepts it;
//! the platform's own events, which its roles also append to the log directly, are recognized
//! as already stored. Offsets are committed after the records are stored, so a restart may
//! read a record again, which the log absorbs. A record that is not a valid event is logged
//! and counted, never retried forever.

use crate::service::{AcceptError, Lineage};
use heal_bus::Consumer;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Consumes `topic` until `stop` turns true.
pub async fn run_consumer(
    lineage: Arc<Lineage>,
    mut consumer: Consumer,
    topic: String,
    mut stop: watch::Receiver<bool>,
) -> Result<(), heal_bus::Error> {
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let batch = tokio::select! {
            b = consumer.poll_batch(500, Duration::from_millis(500)) => b?,
            _ = stop.wait_for(|v| *v) => return Ok(()),
        };
        if batch.is_empty() {
            continue;
        }
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for m in &batch {
            match serde_json::from_slice::<serde_json::Value>(&m.payload) {
                Ok(event) => loop {
                    match lineage.accept(&event, "topic").await {
                        Ok(_) => break,
                        Err(AcceptError::Invalid(r)) => {
                            reject(&topic, m.partition, m.offset, &r.to_string());
                            break;
                        }
                        Err(e @ AcceptError::Backend(_)) => {
                            // Storage is down: wait and try the same record again.
                            tracing::warn!(error = %e, "cannot store a lineage event; retrying");
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                                _ = stop.wait_for(|v| *v) => return Ok(()),
                            }
                        }
                    }
                },
                Err(e) => reject(&topic, m.partition, m.offset, &format!("not JSON: {e}")),
            }
            next.insert(m.partition, m.offset + 1);
        }
        let offsets: Vec<(i32, i64)> = next.into_iter().collect();
        consumer.commit(&topic, &offsets)?;
    }
}

fn reject(topic: &str, partition: i32, offset: i64, reason: &str) {
    metrics::counter!("heal_lineage_events_rejected_total", "source" => "topic").increment(1);
    tracing::warn!(topic, partition, offset, reason, "lineage event refused");
}
