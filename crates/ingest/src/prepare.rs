//! The in-memory half of a batch: decoding, the future-timestamp rule, duplicates within the
//! batch, and the late-event decision against each stream's watermark.

use crate::{Incoming, Ingestor, Source};
use chrono::{DateTime, Utc};
use heal_model::{decode_mapped, CanonicalEvent, ReasonCode};
use std::collections::{HashMap, HashSet};

/// An event that will be written (its first occurrence in the batch).
#[derive(Debug)]
pub struct Accepted {
    pub index: usize,
    pub event: CanonicalEvent,
    /// The payload as received (valid UTF-8 JSON), or as a field mapping rewrote it.
    pub payload: String,
    pub late: bool,
    /// How many times the event id appeared in this batch.
    pub copies: u32,
}

/// An event that goes to quarantine.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub index: usize,
    pub reason: String,
    pub detail: String,
    pub event_id: Option<String>,
}

/// A decoded batch, ready to write.
#[derive(Debug, Default)]
pub struct Prepared {
    pub accepted: Vec<Accepted>,
    pub rejected: Vec<Rejected>,
    /// New watermark values to store with the batch.
    pub watermarks: HashMap<String, DateTime<Utc>>,
}

/// The watermark stream of an event: its source and partition. Producers send each partition
/// in time order, so an event far behind the newest time of its partition arrived late — even
/// on a partition where its own event type is rare.
pub fn stream_name(source: &Source, partition: Option<i32>) -> String {
    format!("{}/{}", source.label(), partition.unwrap_or(0))
}

impl Ingestor {
    pub(crate) fn prepare(&self, source: &Source, items: &[Incoming]) -> Prepared {
        let now = Utc::now();
        let mut out = Prepared::default();
        let mut first_by_id: HashMap<String, usize> = HashMap::new();
        let current = self.watermarks.lock().expect("watermark lock").clone();
        let mappings = self.mappings();
        let mut candidates = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let (event, mapped) = match decode_mapped(&item.payload, &mappings) {
                Ok(decoded) => decoded,
                Err(e) => {
                    out.rejected.push(Rejected {
                        index,
                        reason: e.reason.as_str().to_string(),
                        detail: e.detail,
                        event_id: e.event_id,
                    });
                    continue;
                }
            };
            let reference = item.produced_at.unwrap_or(now);
            if event.occurred_at > reference + self.settings.future_tolerance {
                out.rejected.push(Rejected {
                    index,
                    reason: ReasonCode::FutureTimestamp.as_str().to_string(),
                    detail: format!(
                        "event time {} is {} s after it was produced ({}); tolerance is {} s",
                        event.occurred_at.to_rfc3339(),
                        (event.occurred_at - reference).num_seconds(),
                        reference.to_rfc3339(),
                        self.settings.future_tolerance.num_seconds()
                    ),
                    event_id: Some(event.event_id),
                });
                continue;
            }
            candidates.push((index, item, event, mapped));
        }
        // Events far ahead of the ones delivered after them on their stream (a device clock a
        // day off) do not move watermarks.
        let mut by_stream: HashMap<String, Vec<(usize, DateTime<Utc>)>> = HashMap::new();
        for (n, (_, item, event, _)) in candidates.iter().enumerate() {
            by_stream
                .entry(stream_name(source, item.partition))
                .or_default()
                .push((n, event.occurred_at));
        }
        let ahead: HashSet<usize> = by_stream
            .values()
            .flat_map(|events| far_ahead(events, self.settings.allowed_lateness))
            .collect();
        for (n, (index, item, event, mapped)) in candidates.into_iter().enumerate() {
            if let Some(&at) = first_by_id.get(&event.event_id) {
                out.accepted[at].copies += 1;
                continue;
            }
            let stream = stream_name(source, item.partition);
            let newest = match source {
                // A replayed event is judged against the newest time of every stream.
                Source::Replay => current
                    .values()
                    .chain(out.watermarks.values())
                    .copied()
                    .max(),
                _ => out
                    .watermarks
                    .get(&stream)
                    .or_else(|| current.get(&stream))
                    .copied(),
            };
            let late =
                newest.is_some_and(|w| event.occurred_at < w - self.settings.allowed_lateness);
            let in_body = !ahead.contains(&n);
            if newest.is_none_or(|w| event.occurred_at > w) && in_body && *source != Source::Replay
            {
                out.watermarks.insert(stream, event.occurred_at);
            }
            // Decoding succeeded, so the payload is valid UTF-8.
            let payload =
                String::from_utf8_lossy(mapped.as_deref().unwrap_or(&item.payload)).into_owned();
            first_by_id.insert(event.event_id.clone(), out.accepted.len());
            out.accepted.push(Accepted {
                index,
                event,
                payload,
                late,
                copies: 1,
            });
        }
        out
    }
}

/// The events (their positions) of one stream's batch, in delivery order, that are far ahead
/// of what was delivered around them: more than `gap` after the median time of the next
/// [`NEIGHBOURS`] events (at the end of the batch, of the ones before). A source resuming after
/// an outage is followed by more of the same time and stays; a device clock a day ahead is
/// followed by ordinary events and is left out.
fn far_ahead(events: &[(usize, DateTime<Utc>)], gap: chrono::Duration) -> Vec<usize> {
    let mut out = Vec::new();
    for (k, (n, t)) in events.iter().enumerate() {
        let mut around: Vec<DateTime<Utc>> = events[k + 1..]
            .iter()
            .take(NEIGHBOURS)
            .map(|(_, t)| *t)
            .collect();
        if around.len() < NEIGHBOURS {
            let need = NEIGHBOURS - around.len();
            around.extend(events[..k].iter().rev().take(need).map(|(_, t)| *t));
        }
        if around.is_empty() {
            continue;
        }
        around.sort_unstable();
        if *t - around[around.len() / 2] > gap {
            out.push(*n);
        }
    }
    out
}

/// Events delivered after (or before) one that judge whether it is far ahead.
const NEIGHBOURS: usize = 5;
