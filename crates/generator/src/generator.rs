//! [`Generator`]: the simulation plus fault injection, yielding the messages a producer sends
//! (key, payload bytes, send time) in non-decreasing send time, with the ground truth of what
//! was injected.

use crate::faults::{Emission, FaultEngine, InjectionRecord};
use crate::scenario::{Scenario, SchemaMix};
use crate::sim::{self, Simulation};
use crate::versions::VersionMix;
use chrono::{DateTime, Utc};
use heal_model::{EventKind, FaultKind};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// One message for the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedEvent {
    /// The user id: the bus partition key.
    pub key: String,
    /// The encoded JSON bytes, possibly corrupted.
    pub payload: Vec<u8>,
    /// The simulated time the producer sends it (the Kafka message timestamp).
    pub produced_at: DateTime<Utc>,
    pub event_id: String,
    pub kind: EventKind,
}

/// A message waiting for its send time.
struct Queued {
    seq: u64,
    emission: Emission,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.emission.at, self.seq) == (other.emission.at, other.seq)
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    /// Reversed, so that `BinaryHeap` pops the earliest send time first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.emission.at, other.seq).cmp(&(self.emission.at, self.seq))
    }
}

/// Deterministic event stream of a scenario (or an open-ended real-time stream).
pub struct Generator {
    sim: Simulation,
    engine: FaultEngine,
    queue: BinaryHeap<Queued>,
    buffer: Vec<Emission>,
    seq: u64,
    sim_time: DateTime<Utc>,
    expected: u64,
}

impl Generator {
    /// The generator of a validated scenario, faults included.
    pub fn new(scenario: &Scenario) -> Generator {
        Generator {
            sim: Simulation::new(scenario),
            engine: FaultEngine::new(scenario),
            queue: BinaryHeap::new(),
            buffer: Vec::new(),
            seq: 0,
            sim_time: scenario.start,
            expected: estimate(scenario),
        }
    }

    /// An open-ended, fault-free stream averaging `events_per_second` (×86400 per simulated
    /// day, with the same seasonality), starting at `start`. It never ends: the caller paces it
    /// against the wall clock.
    pub fn realtime(
        seed: u64,
        events_per_second: f64,
        start: DateTime<Utc>,
        schema_mix: SchemaMix,
    ) -> Generator {
        Generator {
            sim: Simulation::realtime(seed, events_per_second, start, schema_mix),
            engine: FaultEngine::clean(VersionMix::new(schema_mix)),
            queue: BinaryHeap::new(),
            buffer: Vec::new(),
            seq: 0,
            sim_time: start,
            expected: 0,
        }
    }

    /// What each fault did so far (one record per fault, in file order); complete once the
    /// iterator is exhausted.
    pub fn ground_truth(&self) -> Vec<InjectionRecord> {
        self.engine.records().to_vec()
    }

    /// Estimated number of messages of the whole run, for progress bars (faults included);
    /// 0 for an open-ended stream.
    pub fn expected_events(&self) -> u64 {
        self.expected
    }

    /// The send time of the last message yielded (the start before the first).
    pub fn sim_time(&self) -> DateTime<Utc> {
        self.sim_time
    }

    /// The simulated end of the run (exclusive); `None` for an open-ended stream. Late and
    /// duplicated messages may be sent after it.
    pub fn end(&self) -> Option<DateTime<Utc>> {
        self.sim.end()
    }
}

impl Iterator for Generator {
    type Item = GeneratedEvent;

    fn next(&mut self) -> Option<GeneratedEvent> {
        loop {
            // Every message still to come is sent at or after `bound`.
            let bound = self.sim.peek_ms();
            if let Some(top) = self.queue.peek() {
                if bound.is_none_or(|b| top.emission.at <= b) {
                    let e = self.queue.pop().expect("peeked").emission;
                    let produced_at = sim::to_datetime(e.at);
                    self.sim_time = produced_at;
                    return Some(GeneratedEvent {
                        key: e.key,
                        payload: e.payload,
                        produced_at,
                        event_id: e.event_id,
                        kind: e.kind,
                    });
                }
            }
            let Some(event) = self.sim.next() else {
                if self.queue.is_empty() {
                    return None;
                }
                continue;
            };
            self.engine.process(event, &mut self.buffer);
            for emission in self.buffer.drain(..) {
                self.seq += 1;
                self.queue.push(Queued {
                    seq: self.seq,
                    emission,
                });
            }
        }
    }
}

/// Expected messages of a scenario: its volume, less drops, plus duplicates and spikes.
fn estimate(scenario: &Scenario) -> u64 {
    let base = scenario.events_per_day * scenario.days;
    let shares = Simulation::kind_shares();
    let run_end = scenario.end();
    let per_ms = base / scenario.duration().num_milliseconds().max(1) as f64;
    let mut total = base;
    for fault in &scenario.faults {
        let (from, to) = fault.window(scenario.start);
        let to = to.min(run_end);
        let share: f64 = shares
            .iter()
            .filter(|(kind, _)| fault.target.matches(*kind))
            .map(|(_, s)| s)
            .sum();
        let in_window = per_ms * (to - from).num_milliseconds().max(0) as f64 * share * fault.rate;
        total += match (fault.kind, &fault.action) {
            (FaultKind::VolumeDrop | FaultKind::SourceOutage, _) => -in_window,
            (_, crate::scenario::FaultAction::DuplicateEvents { copies, .. }) => {
                in_window * f64::from(*copies)
            }
            (_, crate::scenario::FaultAction::VolumeSpike { factor }) => in_window * (factor - 1.0),
            _ => 0.0,
        };
    }
    total.max(0.0).round() as u64
}
