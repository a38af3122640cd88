//! The in-memory half of a batch: decoding, the future-timestamp rule, duplicates within the
//! batch, and the late-event decision against each stream's watermark.

use crate::{Incoming, Ingestor, Source};
use chrono::{DateTime, Utc};
use heal_model::{decode_mapped, CanonicalEvent, ReasonCode};
use std::collections::HashMap;

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
    /// The oldest event time of the batch on each stream whose watermark moves: where a
    /// stream's data begins when the batch is its first.
    pub firsts: HashMap<String, DateTime<Utc>>,
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
        // Each stream's event times in delivery order, and each candidate's place there: an
        // event far ahead of the ones delivered after it (a device clock a day off) does not
        // move its watermark.
        let mut by_stream: HashMap<String, Vec<DateTime<Utc>>> = HashMap::new();
        let places: Vec<(String, usize)> = candidates
            .iter()
            .map(|(_, item, event, _)| {
                let stream = stream_name(source, item.partition);
                let times = by_stream.entry(stream.clone()).or_default();
                times.push(event.occurred_at);
                (stream, times.len() - 1)
            })
            .collect();
        // A batch of several events on a stream ends a run of lone far-ahead ones.
        if by_stream.values().any(|t| t.len() > 1) {
            let mut pending = self.pending.lock().expect("pending lock");
            pending.retain(|s, _| by_stream.get(s).is_none_or(|t| t.len() == 1));
        }
        for ((index, item, event, mapped), (stream, place)) in candidates.into_iter().zip(places) {
            if let Some(&at) = first_by_id.get(&event.event_id) {
                out.accepted[at].copies += 1;
                continue;
            }
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
            let gap = self.settings.allowed_lateness;
            let late = newest.is_some_and(|w| event.occurred_at < w - gap);
            let times = &by_stream[&stream];
            let held = times.len() == 1
                && *source != Source::Replay
                && self.lone_far_ahead(&stream, event.occurred_at, newest, gap);
            if newest.is_none_or(|w| event.occurred_at > w)
                && *source != Source::Replay
                && !held
                && !far_ahead(times, place, gap)
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
        out.firsts = out
            .watermarks
            .keys()
            .filter_map(|s| Some((s.clone(), *by_stream.get(s)?.iter().min()?)))
            .collect();
        out
    }
}

impl Ingestor {
    /// Whether an event that arrived alone on its stream (nothing around it in the batch to
    /// judge it by) is far ahead of the stream's watermark and not yet confirmed. Such events
    /// move the watermark only once [`CONFIRM`] of them arrive in a row, each alone and far
    /// ahead, as a source resuming after an outage one event per request does; one device
    /// clock a day off between ordinary events does not.
    fn lone_far_ahead(
        &self,
        stream: &str,
        at: DateTime<Utc>,
        newest: Option<DateTime<Utc>>,
        gap: chrono::Duration,
    ) -> bool {
        let mut pending = self.pending.lock().expect("pending lock");
        if newest.is_none_or(|w| at - w <= gap) {
            pending.remove(stream);
            return false;
        }
        let seen = pending.entry(stream.to_string()).or_insert(0);
        *seen += 1;
        if *seen >= CONFIRM {
            pending.remove(stream);
            return false;
        }
        true
    }
}

/// Lone far-ahead events in a row that move a stream's watermark: the majority of the
/// [`NEIGHBOURS`] that judge an event inside a batch.
const CONFIRM: u32 = (NEIGHBOURS / 2 + 1) as u32;

/// Whether the event at `place` of one stream's batch (times in delivery order) is far ahead
/// of what was delivered around it: more than `gap` after the median time of the next
/// [`NEIGHBOURS`] events (at the end of the batch, of the ones before). A source resuming after
/// an outage is followed by more of the same time and counts; a device clock a day ahead is
/// followed by ordinary events and does not.
fn far_ahead(times: &[DateTime<Utc>], place: usize, gap: chrono::Duration) -> bool {
    let after = &times[place + 1..times.len().min(place + 1 + NEIGHBOURS)];
    let before = &times[place.saturating_sub(NEIGHBOURS - after.len())..place];
    let mut around = [DateTime::<Utc>::MIN_UTC; NEIGHBOURS];
    let n = after.len() + before.len();
    if n == 0 {
        return false;
    }
    around[..after.len()].copy_from_slice(after);
    around[after.len()..n].copy_from_slice(before);
    let around = &mut around[..n];
    around.sort_unstable();
    times[place] - around[n / 2] > gap
}

/// Events delivered after (or before) one that judge whether it is far ahead.
const NEIGHBOURS: usize = 5;
