//! Fault injection: turns each simulated event into the message(s) a producer sends, applying
//! the scenario's faults to events of their target kind whose `occurred_at` falls in their
//! window, each with probability `rate`, and keeps the ground truth ([`InjectionRecord`]).
//!
//! Each event is affected by at most one fault: the first fault in file order that selects it
//! and can apply to it. That keeps the ground truth exact: every affected event ends up where
//! its fault's record says (`expected`). Each fault draws from its own seeded RNG stream and
//! schema versions are drawn by the simulation, so the clean events of a faulty run are the
//! same as those of the clean run with the same seed.

mod mutate;

use crate::fields::{self, FieldUse};
use crate::scenario::{FaultAction, Scenario, SchemaDrift, Target};
use crate::sim::{rng_stream, to_datetime, uuid_from};
use crate::versions::{self, VersionMix};
use heal_model::{wire, CanonicalEvent, EventBody, EventKind, SchemaVersion};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

/// First RNG stream of the faults (fault `i` uses `STREAM_FAULTS + i`).
const STREAM_FAULTS: u64 = 1_000;
/// Spread of the extra events of a volume spike after their original.
const SPIKE_SPREAD_MS: i64 = 60_000;

pub use heal_model::fault::InjectionRecord;

/// One message for the bus.
pub(crate) struct Emission {
    /// When the producer sends it (ms since the epoch).
    pub at: i64,
    pub key: String,
    pub payload: Vec<u8>,
    pub event_id: String,
    pub kind: EventKind,
}

fn emission(ev: &CanonicalEvent, at: i64, payload: Vec<u8>) -> Emission {
    Emission {
        at,
        key: ev.user_id.clone(),
        payload,
        event_id: ev.event_id.clone(),
        kind: ev.kind(),
    }
}

fn to_bytes(value: &Value) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(512);
    serde_json::to_writer(&mut bytes, value).expect("a JSON value always serializes");
    // Messages may be held for a while (bus buffers, tests): do not keep the slack.
    bytes.shrink_to_fit();
    bytes
}

/// A fault acting on events.
struct ActiveFault {
    record: usize,
    target: Target,
    from_ms: i64,
    to_ms: i64,
    rate: f64,
    action: FaultAction,
    /// Versions in which a field fault has its promised outcome.
    eligible: Vec<SchemaVersion>,
    rng: ChaCha8Rng,
}

/// Applies a scenario's faults and keeps their records.
pub(crate) struct FaultEngine {
    active: Vec<ActiveFault>,
    records: Vec<InjectionRecord>,
    versions: VersionMix,
}

impl FaultEngine {
    pub fn new(scenario: &Scenario) -> FaultEngine {
        let mut active = Vec::new();
        let mut records = Vec::new();
        for spec in &scenario.faults {
            let (window_start, window_end) = spec.window(scenario.start);
            if spec.kind.mutates_events() {
                active.push(ActiveFault {
                    record: records.len(),
                    target: spec.target.clone(),
                    from_ms: window_start.timestamp_millis(),
                    to_ms: window_end.timestamp_millis(),
                    rate: spec.rate,
                    eligible: eligible(&spec.target, &spec.action),
                    action: spec.action.clone(),
                    rng: rng_stream(scenario.seed, STREAM_FAULTS + spec.index as u64),
                });
            }
            records.push(InjectionRecord {
                kind: spec.kind,
                target: spec.target.name().to_string(),
                window_start,
                window_end,
                rate: spec.rate,
                params: spec.params_json(),
                expected: spec.expected(),
                affected_count: 0,
                affected_event_ids: Vec::new(),
            });
        }
        FaultEngine {
            active,
            records,
            versions: VersionMix::new(scenario.schema_mix),
        }
    }

    /// An engine without faults (for open-ended runs).
    pub fn clean(versions: VersionMix) -> FaultEngine {
        FaultEngine {
            active: Vec::new(),
            records: Vec::new(),
            versions,
        }
    }

    pub fn records(&self) -> &[InjectionRecord] {
        &self.records
    }

    /// Turns one simulated event into the messages sent for it (none when dropped).
    pub fn process(&mut self, ev: CanonicalEvent, out: &mut Vec<Emission>) {
        let t = ev.occurred_at.timestamp_millis();
        let kind = ev.kind();
        for fault in &mut self.active {
            if !fault.target.matches(kind) || t < fault.from_ms || t >= fault.to_ms {
                continue;
            }
            if fault.rng.gen::<f64>() >= fault.rate {
                continue;
            }
            let record = &mut self.records[fault.record];
            if fault.apply(&ev, t, &self.versions, record, out) {
                return;
            }
        }
        let payload = to_bytes(&versions::encode(&ev, ev.schema_version).1);
        out.push(Emission {
            at: t,
            kind,
            key: ev.user_id,
            event_id: ev.event_id,
            payload,
        });
    }
}

/// The versions a field fault can use on its target.
fn eligible(target: &Target, action: &FaultAction) -> Vec<SchemaVersion> {
    let Target::Event(kind) = *target else {
        return Vec::new();
    };
    let (field, usage) = match action {
        FaultAction::MissingField { field } => (*field, FieldUse::Remove),
        FaultAction::NullField { field } => (*field, FieldUse::Null),
        FaultAction::TypeChange { field } => (*field, FieldUse::Retype),
        FaultAction::SchemaDrift(SchemaDrift::Rename { field, to }) => {
            return fields::eligible_versions(kind, field, FieldUse::Rename(to))
        }
        FaultAction::ValueOutlier { field, .. } => (*field, FieldUse::Scale),
        FaultAction::DistributionShift { field, .. } => (*field, FieldUse::Categorical),
        _ => return Vec::new(),
    };
    fields::eligible_versions(kind, field, usage)
}

fn record_hit(record: &mut InjectionRecord, event_id: &str, count: u64) {
    record.affected_count += count;
    record.affected_event_ids.push(event_id.to_string());
}

impl ActiveFault {
    /// Applies the fault to `ev`, pushing what is sent; `false` when it cannot apply (e.g. the
    /// field is absent from this event), in which case nothing was pushed.
    fn apply(
        &mut self,
        ev: &CanonicalEvent,
        t: i64,
        mix: &VersionMix,
        record: &mut InjectionRecord,
        out: &mut Vec<Emission>,
    ) -> bool {
        let rng = &mut self.rng;
        let encoded = || to_bytes(&versions::encode(ev, ev.schema_version).1);
        match &self.action {
            FaultAction::VolumeDrop | FaultAction::SourceOutage => {}
            FaultAction::MalformedJson => {
                let mut bytes = encoded();
                mutate::break_json(&mut bytes, &ev.event_id, rng);
                out.push(emission(ev, t, bytes));
            }
            FaultAction::EncodingCorruption => {
                let mut bytes = encoded();
                if !mutate::corrupt_encoding(&mut bytes, rng) {
                    return false;
                }
                out.push(emission(ev, t, bytes));
            }
            FaultAction::MissingField { field }
            | FaultAction::NullField { field }
            | FaultAction::TypeChange { field }
            | FaultAction::SchemaDrift(SchemaDrift::Rename { field, .. })
            | FaultAction::ValueOutlier { field, .. }
            | FaultAction::DistributionShift { field, .. } => {
                let Some((version, mut value)) =
                    field_encoding(ev, field, &self.eligible, mix, rng)
                else {
                    return false;
                };
                let spec =
                    wire::field(ev.kind(), version, field).expect("eligible version has the field");
                apply_to_field(&self.action, &mut value, spec.path);
                out.push(emission(ev, t, to_bytes(&value)));
            }
            FaultAction::SchemaDrift(SchemaDrift::Version(version)) => {
                let mut value = versions::encode(ev, ev.schema_version).1;
                wire::set_path(
                    &mut value,
                    &["schema_version"],
                    Value::String(version.clone()),
                );
                out.push(emission(ev, t, to_bytes(&value)));
            }
            FaultAction::InvalidSchemaVersion { value: bad } => {
                let mut value = versions::encode(ev, ev.schema_version).1;
                wire::set_path(&mut value, &["schema_version"], bad.clone());
                out.push(emission(ev, t, to_bytes(&value)));
            }
            FaultAction::DuplicateEvents { copies, delay } => {
                let bytes = encoded();
                let spread = delay.num_milliseconds().max(1);
                for _ in 0..*copies {
                    out.push(emission(ev, t + rng.gen_range(1..=spread), bytes.clone()));
                }
                out.push(emission(ev, t, bytes));
                record_hit(record, &ev.event_id, u64::from(*copies));
                return true;
            }
            FaultAction::LateEvents { delay } => {
                out.push(emission(ev, t + delay.num_milliseconds(), encoded()));
            }
            FaultAction::FutureTimestamps { skew } => {
                let mut shifted = ev.clone();
                shifted.occurred_at = ev.occurred_at + *skew;
                let bytes = to_bytes(&versions::encode(&shifted, ev.schema_version).1);
                out.push(emission(ev, t, bytes));
            }
            FaultAction::VolumeSpike { factor } => {
                let extra = factor - 1.0;
                let n = extra.floor() as u64 + u64::from(rng.gen::<f64>() < extra.fract());
                if n == 0 {
                    return false;
                }
                out.push(emission(ev, t, encoded()));
                for _ in 0..n {
                    let at = t + rng.gen_range(0..=SPIKE_SPREAD_MS);
                    let mut copy = fresh_copy(ev, at, rng);
                    copy.schema_version = mix.choose_for(&copy, rng.gen());
                    let bytes = to_bytes(&versions::encode(&copy, copy.schema_version).1);
                    out.push(emission(&copy, at, bytes));
                    record_hit(record, &copy.event_id, 1);
                }
                return true;
            }
            FaultAction::OrphanReference => {
                let mut orphan = ev.clone();
                match &mut orphan.body {
                    EventBody::Payment { order_id, .. } => *order_id = Some(uuid_from(rng)),
                    EventBody::Refund { payment_id, .. } => {
                        *payment_id = format!("pay_{:016x}", rng.gen::<u64>());
                    }
                    _ => return false,
                }
                // v1 payments carry no order reference.
                let referencing = [SchemaVersion::V2, SchemaVersion::V3];
                let version = if referencing.contains(&ev.schema_version) {
                    ev.schema_version
                } else {
                    mix.choose_among(&referencing, rng.gen())
                };
                let bytes = to_bytes(&versions::encode(&orphan, version).1);
                out.push(emission(ev, t, bytes));
            }
            FaultAction::JobFailure { .. }
            | FaultAction::JobDelay { .. }
            | FaultAction::DatabaseOutage => return false,
        }
        record_hit(record, &ev.event_id, 1);
        true
    }
}

/// Encodes `ev` in a version where the fault on `field` has its promised outcome and the
/// event has a value for the field: its own version if eligible, else one chosen by the mix.
fn field_encoding(
    ev: &CanonicalEvent,
    field: &str,
    eligible: &[SchemaVersion],
    mix: &VersionMix,
    rng: &mut ChaCha8Rng,
) -> Option<(SchemaVersion, Value)> {
    if eligible.is_empty() {
        return None;
    }
    let first = if eligible.contains(&ev.schema_version) {
        ev.schema_version
    } else {
        mix.choose_among(eligible, rng.gen())
    };
    let others = eligible.iter().copied().filter(|v| *v != first);
    std::iter::once(first).chain(others).find_map(|version| {
        if !versions::expressible(ev, version) {
            return None;
        }
        let value = wire::encode(ev, version)?;
        let spec = wire::field(ev.kind(), version, field)?;
        wire::get_path(&value, spec.path)
            .is_some_and(|v| !v.is_null())
            .then_some((version, value))
    })
}

/// Changes the field at `path` of an encoded event as a field fault says.
fn apply_to_field(action: &FaultAction, value: &mut Value, path: &[&str]) {
    match action {
        FaultAction::MissingField { .. } => {
            wire::remove_path(value, path);
        }
        FaultAction::NullField { .. } => wire::set_path(value, path, Value::Null),
        FaultAction::TypeChange { .. } => {
            if let Some(slot) = wire::get_path_mut(value, path) {
                mutate::retype(slot);
            }
        }
        FaultAction::SchemaDrift(SchemaDrift::Rename { to, .. }) => {
            if let Some(moved) = wire::remove_path(value, path) {
                let mut renamed: Vec<&str> = path[..path.len() - 1].to_vec();
                renamed.push(to);
                wire::set_path(value, &renamed, moved);
            }
        }
        FaultAction::ValueOutlier { field, factor } => {
            if let Some(slot) = wire::get_path_mut(value, path) {
                mutate::scale(slot, *factor, *field == "quantity");
            }
        }
        FaultAction::DistributionShift { to, .. } => {
            wire::set_path(value, path, Value::String(to.clone()));
        }
        _ => {}
    }
}

/// A new event like `ev` at `at`, with fresh ids (a new customer for sign-ups).
fn fresh_copy(ev: &CanonicalEvent, at: i64, rng: &mut ChaCha8Rng) -> CanonicalEvent {
    let mut copy = ev.clone();
    copy.event_id = uuid_from(rng);
    copy.occurred_at = to_datetime(at);
    match &mut copy.body {
        EventBody::User { email, .. } => {
            copy.user_id = format!("usr_{:016x}", rng.gen::<u64>());
            *email = format!("x{:04x}.{email}", rng.gen::<u16>());
        }
        EventBody::Order { order_id, .. } => order_id.clone_from(&copy.event_id),
        EventBody::Payment { payment_id, .. } => {
            *payment_id = format!("pay_{:016x}", rng.gen::<u64>());
        }
        EventBody::Refund { refund_id, .. } => {
            *refund_id = format!("ref_{:016x}", rng.gen::<u64>());
        }
        EventBody::Session { .. } | EventBody::ProductView { .. } | EventBody::CartItem { .. } => {}
    }
    copy
}
