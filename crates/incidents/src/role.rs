//! The role's loop: reads the `incidents` topic and applies each message to the store
//! ([`crate::store::apply_message`]; a redelivery changes nothing). A message that does not
//! parse is counted, logged with its position and skipped; a store that fails is retried
//! without committing the topic offsets, so nothing is lost.

use heal_bus::Consumer;
use heal_model::incident::{FeedbackMessage, IncidentMessage};
use heal_model::topics::INCIDENT_FEEDBACK;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;

/// Applies a batch of messages; returns how many changed the store, or the first database
/// error (the batch is then read again).
pub async fn apply_batch(
    pool: &PgPool,
    batch: &[heal_bus::Message],
) -> Result<usize, crate::store::Error> {
    let mut applied = 0;
    for m in batch {
        match serde_json::from_slice::<IncidentMessage>(&m.payload) {
            Ok(msg) => {
                if crate::store::apply_message(pool, &msg).await? {
                    applied += 1;
                    metrics::counter!("heal_incidents_messages_total", "outcome" => "applied")
                        .increment(1);
                } else {
                    metrics::counter!("heal_incidents_messages_total", "outcome" => "repeated")
                        .increment(1);
                }
            }
            Err(e) => {
                metrics::counter!("heal_incidents_messages_total", "outcome" => "unreadable")
                    .increment(1);
                tracing::warn!(topic = %m.topic, partition = m.partition, offset = m.offset,
                    error = %e, "skipping a message that is not an incident message");
            }
        }
    }
    Ok(applied)
}

/// Publishes feedback (an operator's, or the executor's outcome of an action) on
/// `incident-feedback`, where AI Ops learns from it.
pub async fn publish_feedback(bus: &heal_bus::Bus, m: &FeedbackMessage) -> heal_bus::Result<()> {
    let record = heal_bus::Record {
        key: m.incident_id.as_bytes().to_vec(),
        payload: serde_json::to_vec(m).expect("feedback serializes"),
        timestamp_ms: m.emitted_at.timestamp_millis(),
    };
    bus.send(INCIDENT_FEEDBACK, vec![record]).await
}

/// Stores an operator's feedback on incident `id` and publishes it for AI Ops to learn from.
/// Without `action`, an outcome (`remediation_worked`) is about the incident's first
/// recommendation. Returns the message and whether it was published (stored either way).
pub async fn give_feedback(
    pool: &PgPool,
    bus: Option<&heal_bus::Bus>,
    id: &str,
    who: &str,
    class: Option<heal_model::incident::IncidentClass>,
    f: &crate::store::Feedback,
    action: Option<String>,
) -> crate::store::Result<(FeedbackMessage, bool)> {
    crate::store::feedback(pool, id, who, f).await?;
    let action = match (action, f.remediation_worked) {
        (Some(a), _) => Some(a),
        (None, Some(_)) => crate::store::get(pool, id).await?.incident["recommendations"][0]
            ["action"]
            .as_str()
            .map(str::to_string),
        (None, None) => None,
    };
    let mut m = FeedbackMessage::new(id, who);
    m.class = class;
    m.root_cause = f.root_cause.clone();
    m.remediation_worked = f.remediation_worked;
    m.action = action;
    let published = match bus {
        Some(bus) => match publish_feedback(bus, &m).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, incident = %id, "feedback stored but not published");
                false
            }
        },
        None => false,
    };
    Ok((m, published))
}

/// Shows the message counter at zero for each outcome, so a scrape lists it from the start.
pub fn register() {
    for outcome in ["applied", "repeated", "unreadable"] {
        metrics::counter!("heal_incidents_messages_total", "outcome" => outcome).increment(0);
    }
}

/// Consumes `topic` until `stop` turns true.
pub async fn run_loop(
    pool: PgPool,
    mut consumer: Consumer,
    topic: String,
    mut stop: watch::Receiver<bool>,
) {
    register();
    let mut backoff = Duration::from_millis(200);
    loop {
        let batch = tokio::select! {
            b = consumer.poll_batch(200, Duration::from_millis(500)) => b,
            _ = stop.wait_for(|v| *v) => return,
        };
        let batch = match batch {
            Ok(b) if b.is_empty() => continue,
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read incidents; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            match apply_batch(&pool, &batch).await {
                Ok(_) => {
                    backoff = Duration::from_millis(200);
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot store incidents; retrying the batch");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.wait_for(|v| *v) => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
        let mut next = BTreeMap::new();
        for m in &batch {
            let e = next.entry(m.partition).or_insert(m.offset + 1);
            *e = (*e).max(m.offset + 1);
        }
        let offsets: Vec<(i32, i64)> = next.into_iter().collect();
        if let Err(e) = consumer.commit(&topic, &offsets) {
            tracing::debug!(error = %e, "advisory offset commit failed");
        }
    }
}
