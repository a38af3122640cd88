//! Choosing the wire schema version of each event from the scenario's `schema_mix`
//! (renormalized over the versions the event's kind exists in), and encoding with the fallback
//! to v2 for events v1 cannot express (failed or non-USD payments).

use crate::scenario::SchemaMix;
use heal_model::event::PaymentStatus;
use heal_model::{wire, CanonicalEvent, EventBody, EventKind, SchemaVersion};
use serde_json::Value;

/// Per-kind cumulative version weights.
#[derive(Debug, Clone)]
pub(crate) struct VersionMix {
    mix: SchemaMix,
    /// For each kind (in `EventKind::ALL` order): its versions with cumulative probabilities.
    cumulative: Vec<Vec<(SchemaVersion, f64)>>,
}

fn kind_index(kind: EventKind) -> usize {
    EventKind::ALL
        .iter()
        .position(|k| *k == kind)
        .expect("every kind is in ALL")
}

impl VersionMix {
    pub fn new(mix: SchemaMix) -> VersionMix {
        let cumulative = EventKind::ALL
            .iter()
            .map(|kind| cumulative(&mix, kind.versions()))
            .collect();
        VersionMix { mix, cumulative }
    }

    /// The version of a `kind` event for a uniform draw `u` in `[0, 1)`.
    pub fn choose(&self, kind: EventKind, u: f64) -> SchemaVersion {
        pick(&self.cumulative[kind_index(kind)], u)
    }

    /// A version among `versions` weighted by the mix, for a uniform draw `u`.
    pub fn choose_among(&self, versions: &[SchemaVersion], u: f64) -> SchemaVersion {
        pick(&cumulative(&self.mix, versions), u)
    }

    /// The version for `ev`: chosen by the mix, v2 when v1 cannot express the event.
    pub fn choose_for(&self, ev: &CanonicalEvent, u: f64) -> SchemaVersion {
        let version = self.choose(ev.kind(), u);
        if expressible(ev, version) {
            version
        } else {
            SchemaVersion::V2
        }
    }
}

fn cumulative(mix: &SchemaMix, versions: &[SchemaVersion]) -> Vec<(SchemaVersion, f64)> {
    let total: f64 = versions.iter().map(|v| mix.weight(*v)).sum();
    if total <= 0.0 {
        let fallback = if versions.contains(&SchemaVersion::V2) {
            SchemaVersion::V2
        } else {
            versions[0]
        };
        return vec![(fallback, 1.0)];
    }
    let mut acc = 0.0;
    versions
        .iter()
        .map(|v| {
            acc += mix.weight(*v) / total;
            (*v, acc)
        })
        .collect()
}

fn pick(cumulative: &[(SchemaVersion, f64)], u: f64) -> SchemaVersion {
    cumulative
        .iter()
        .find(|(_, c)| u < *c)
        .or(cumulative.last())
        .map(|(v, _)| *v)
        .unwrap_or(SchemaVersion::V2)
}

/// Whether `wire::encode` can write `ev` in `version` (v1 only knows the seed's four kinds and
/// successful USD payments).
pub(crate) fn expressible(ev: &CanonicalEvent, version: SchemaVersion) -> bool {
    if !ev.kind().versions().contains(&version) {
        return false;
    }
    match (&ev.body, version) {
        (
            EventBody::Payment {
                status, currency, ..
            },
            SchemaVersion::V1,
        ) => *status == PaymentStatus::Succeeded && currency == "USD",
        _ => true,
    }
}

/// Encodes `ev` in `version`, or in v2 when `version` cannot express it; returns the version
/// actually used.
pub(crate) fn encode(ev: &CanonicalEvent, version: SchemaVersion) -> (SchemaVersion, Value) {
    if let Some(value) = wire::encode(ev, version) {
        return (version, value);
    }
    let value = wire::encode(ev, SchemaVersion::V2).expect("every event kind exists in v2");
    (SchemaVersion::V2, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_renormalized_over_the_versions_of_a_kind() {
        let mix = VersionMix::new(SchemaMix::default());
        // user exists in v1..v3: 0.2 / 0.5 / 0.3
        assert_eq!(mix.choose(EventKind::UserCreated, 0.19), SchemaVersion::V1);
        assert_eq!(mix.choose(EventKind::UserCreated, 0.21), SchemaVersion::V2);
        assert_eq!(mix.choose(EventKind::UserCreated, 0.71), SchemaVersion::V3);
        // cart only in v2/v3: 0.5/0.8 = 0.625 for v2
        assert_eq!(mix.choose(EventKind::CartItemAdded, 0.6), SchemaVersion::V2);
        assert_eq!(
            mix.choose(EventKind::CartItemAdded, 0.65),
            SchemaVersion::V3
        );
        assert_eq!(
            mix.choose(EventKind::CartItemAdded, 0.999_999),
            SchemaVersion::V3
        );
    }

    #[test]
    fn kinds_without_weighted_versions_use_v2() {
        let only_v1 = VersionMix::new(SchemaMix {
            v1: 1.0,
            v2: 0.0,
            v3: 0.0,
        });
        assert_eq!(
            only_v1.choose(EventKind::SessionStarted, 0.5),
            SchemaVersion::V2
        );
        assert_eq!(
            only_v1.choose(EventKind::OrderPlaced, 0.5),
            SchemaVersion::V1
        );
        assert_eq!(
            only_v1.choose_among(&[SchemaVersion::V2, SchemaVersion::V3], 0.9),
            SchemaVersion::V2
        );
    }
}
