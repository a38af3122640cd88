//! The deterministic e-commerce simulation behind the generator. Sessions arrive as a
//! non-homogeneous Poisson process following [`seasonality`]; each session is played out at its
//! start (sign-up for new customers, product views, cart additions, checkout, payment attempts
//! with retries, a refund days later) and its events are put on a time-ordered heap, so the
//! simulation yields [`CanonicalEvent`]s in `occurred_at` order. Everything random comes from
//! ChaCha streams seeded with the scenario seed: the same seed gives the same events.
//!
//! Volume is calibrated analytically: the session arrival rate is the event intensity divided
//! by the expected number of events per session, so a clean run produces
//! `events_per_day × days` events on average.

mod catalog;
mod seasonality;
mod session;

use crate::scenario::{Scenario, SchemaMix};
use crate::versions::VersionMix;
use catalog::Catalog;
use chrono::{DateTime, Utc};
use heal_model::{CanonicalEvent, EventKind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use seasonality::Intensity;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// RNG stream of the simulation itself (ids, behaviour).
const STREAM_SIM: u64 = 0;
/// RNG stream of the schema version choices.
const STREAM_VERSIONS: u64 = 1;

/// Converts simulated milliseconds since the epoch to a timestamp.
pub(crate) fn to_datetime(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("simulated time stays within chrono's range")
}

/// A seeded ChaCha stream.
pub(crate) fn rng_stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// A random (v4-style) UUID string from `rng`.
pub(crate) fn uuid_from(rng: &mut impl Rng) -> String {
    uuid::Builder::from_random_bytes(rng.gen())
        .into_uuid()
        .to_string()
}

/// A scheduled event: its time, a tie-breaker, and its slot in `Simulation::slots` (the heap
/// moves these small entries rather than whole events).
struct Pending {
    at: i64,
    seq: u64,
    slot: u32,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    /// Reversed, so that `BinaryHeap` pops the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A customer.
struct User {
    id: String,
    country: u8,
    device: u8,
    channel: u8,
}

/// The simulation: an iterator of canonical events in `occurred_at` order.
pub struct Simulation {
    rng: ChaCha8Rng,
    version_rng: ChaCha8Rng,
    versions: VersionMix,
    catalog: Catalog,
    intensity: Intensity,
    end_ms: Option<i64>,
    /// Next session arrival (fractional milliseconds), `None` once past the end.
    next_arrival: Option<f64>,
    pending: BinaryHeap<Pending>,
    /// Scheduled events, by slot; `free` lists the empty slots.
    slots: Vec<Option<CanonicalEvent>>,
    free: Vec<u32>,
    seq: u64,
    /// Expected events per session by returning customers (a new one adds its sign-up).
    base_events: f64,
    users: Vec<User>,
    /// User indexes, each user appearing once per unit of activity (skewed).
    tickets: Vec<u32>,
    /// Population scale of the new-customer share (see [`session::new_user_share`]).
    new_user_scale: f64,
}

impl Simulation {
    /// The clean simulation of a scenario (its faults are applied by the generator).
    pub fn new(scenario: &Scenario) -> Simulation {
        let start = scenario.start.timestamp_millis();
        let end = scenario.end().timestamp_millis();
        let total = scenario.events_per_day * scenario.days;
        let intensity = Intensity::bounded(scenario.seed, start, end, total);
        Simulation::build(
            scenario.seed,
            start,
            Some(end),
            intensity,
            scenario.events_per_day,
            scenario.schema_mix,
        )
    }

    /// An open-ended simulation averaging `events_per_second` (at least 0.001).
    pub fn realtime(
        seed: u64,
        events_per_second: f64,
        start: DateTime<Utc>,
        schema_mix: SchemaMix,
    ) -> Simulation {
        let eps = if events_per_second.is_finite() {
            events_per_second.max(0.001)
        } else {
            0.001
        };
        let start = start.timestamp_millis();
        let intensity = Intensity::open(seed, start, eps / 1000.0);
        Simulation::build(seed, start, None, intensity, eps * 86_400.0, schema_mix)
    }

    fn build(
        seed: u64,
        start: i64,
        end_ms: Option<i64>,
        intensity: Intensity,
        events_per_day: f64,
        schema_mix: SchemaMix,
    ) -> Simulation {
        let base_events = session::expected_events_per_session(0.0);
        let sessions_per_day = events_per_day / base_events;
        let mut sim = Simulation {
            rng: rng_stream(seed, STREAM_SIM),
            version_rng: rng_stream(seed, STREAM_VERSIONS),
            versions: VersionMix::new(schema_mix),
            catalog: Catalog::new(),
            intensity,
            end_ms,
            next_arrival: None,
            pending: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            seq: 0,
            base_events,
            users: Vec::new(),
            tickets: Vec::new(),
            new_user_scale: (sessions_per_day * session::NEW_USER_SCALE).max(1.0),
        };
        sim.next_arrival = sim.arrival_after(start as f64);
        sim
    }

    /// The time of the next session arrival after `from`, or `None` past the end.
    fn arrival_after(&mut self, from: f64) -> Option<f64> {
        let share = session::new_user_share(self.users.len(), self.new_user_scale);
        let per_ms = self.intensity.events_per_ms(from as i64) / (self.base_events + share);
        if per_ms.is_nan() || per_ms <= 0.0 {
            return None;
        }
        let u: f64 = self.rng.gen();
        let next = from + -(1.0 - u).ln() / per_ms;
        match self.end_ms {
            Some(end) if next >= end as f64 => None,
            _ => Some(next),
        }
    }

    fn schedule(&mut self, at: i64, event: CanonicalEvent) {
        self.seq += 1;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(event);
                slot
            }
            None => {
                self.slots.push(Some(event));
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 scheduled events")
            }
        };
        self.pending.push(Pending {
            at,
            seq: self.seq,
            slot,
        });
    }

    /// A lower bound of the `occurred_at` (ms) of every event not yet yielded; `None` when
    /// the simulation is over.
    pub(crate) fn peek_ms(&self) -> Option<i64> {
        let arrival = self.next_arrival.map(|a| a.floor() as i64);
        let top = self.pending.peek().map(|p| p.at);
        let next = match (arrival, top) {
            (Some(a), Some(t)) => Some(a.min(t)),
            (a, t) => a.or(t),
        };
        next.filter(|t| self.end_ms.is_none_or(|end| *t < end))
    }

    /// A lower bound of the time of the next event; `None` when the simulation is over.
    pub fn peek_time(&self) -> Option<DateTime<Utc>> {
        self.peek_ms().map(to_datetime)
    }

    /// The simulated end (exclusive), `None` when open-ended.
    pub fn end(&self) -> Option<DateTime<Utc>> {
        self.end_ms.map(to_datetime)
    }

    /// Expected share of each event kind in a steady-state run.
    pub fn kind_shares() -> Vec<(EventKind, f64)> {
        session::kind_shares()
    }
}

impl Iterator for Simulation {
    type Item = CanonicalEvent;

    fn next(&mut self) -> Option<CanonicalEvent> {
        loop {
            let top = self.pending.peek().map(|p| p.at);
            match self.next_arrival {
                Some(arrival) if top.is_none_or(|t| arrival.floor() as i64 <= t) => {
                    self.spawn_session(arrival.floor() as i64);
                    self.next_arrival = self.arrival_after(arrival);
                }
                _ => {
                    let at = top?;
                    if self.end_ms.is_some_and(|end| at >= end) {
                        self.pending.clear();
                        self.slots.clear();
                        self.free.clear();
                        return None;
                    }
                    let slot = self.pending.pop()?.slot;
                    self.free.push(slot);
                    return self.slots[slot as usize].take();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
