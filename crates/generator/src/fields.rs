//! Which canonical fields a field fault (`missing_field`, `null_field`, `type_change`,
//! `schema_drift`, `value_outlier`, `distribution_shift`) may name for each event kind, the
//! default field of each fault, and the schema versions in which the fault produces exactly the
//! outcome the ground truth promises. Scenario validation and fault injection both read this
//! module, so a scenario that validates always injects what it says.

use heal_model::wire;
use heal_model::{EventKind, SchemaVersion};

/// Envelope fields a field fault may name (besides the kind's body fields). `event_id` is
/// excluded so that every broken event can still be traced, `event_type` and
/// `schema_version` have their own faults, and the v3 `context` is not read by the decoder.
const ENVELOPE: [&str; 3] = ["user_id", "occurred_at", "session_id"];

/// Numeric fields `value_outlier` can scale.
pub(crate) const NUMERIC: [&str; 3] = ["amount", "price", "quantity"];

/// Categorical fields `distribution_shift` can force, each with a valid but normally rare value.
pub(crate) const CATEGORICAL: [(&str, &str); 7] = [
    ("method", "gift_card"),
    ("category", "garden"),
    ("country", "IE"),
    ("device", "tablet"),
    ("channel", "referral"),
    ("reason", "wrong_item"),
    ("failure_reason", "fraud_suspected"),
];

/// What a field fault does to the field; decides which versions are eligible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldUse<'a> {
    /// Removed: the field must be required.
    Remove,
    /// Set to null: the field must be required.
    Null,
    /// Replaced by a value of another JSON type.
    Retype,
    /// Key renamed to the given key: the field must be required and the new key unknown.
    Rename(&'a str),
    /// Multiplied: a number.
    Scale,
    /// Forced to a string value.
    Categorical,
}

/// The canonical (static) name of `name` if a field fault may name it on `kind`.
pub(crate) fn resolve(kind: EventKind, name: &str) -> Option<&'static str> {
    let canonical = wire::canonical_field_name(name);
    if let Some(envelope) = ENVELOPE.iter().find(|f| **f == canonical) {
        return Some(envelope);
    }
    kind.versions().iter().find_map(|&version| {
        wire::field(kind, version, canonical)
            .filter(|spec| !is_envelope_only(spec.name))
            .map(|spec| spec.name)
    })
}

fn is_envelope_only(name: &str) -> bool {
    matches!(
        name,
        "event_id" | "event_type" | "schema_version" | "producer" | "trace_id"
    )
}

/// Every field name a field fault may use on `kind`, sorted (for error messages).
pub(crate) fn known(kind: EventKind) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = ENVELOPE.to_vec();
    for &version in kind.versions() {
        names.extend(
            wire::fields(kind, version)
                .map(|spec| spec.name)
                .filter(|name| !is_envelope_only(name)),
        );
    }
    names.sort_unstable();
    names.dedup();
    names
}

/// The field a fault uses on `kind` when the scenario does not name one.
pub(crate) fn default_field(kind: EventKind, usage: FieldUse<'_>) -> Option<&'static str> {
    use EventKind::*;
    match usage {
        FieldUse::Remove | FieldUse::Null | FieldUse::Retype | FieldUse::Rename(_) => {
            Some(match kind {
                UserCreated => "email",
                SessionStarted => "device",
                ProductViewed | CartItemAdded => "product_id",
                OrderPlaced | PaymentProcessed | RefundIssued => "amount",
            })
        }
        FieldUse::Scale => match kind {
            OrderPlaced | PaymentProcessed | RefundIssued => Some("amount"),
            ProductViewed | CartItemAdded => Some("price"),
            UserCreated | SessionStarted => None,
        },
        FieldUse::Categorical => match kind {
            PaymentProcessed => Some("method"),
            ProductViewed => Some("category"),
            UserCreated => Some("country"),
            SessionStarted => Some("device"),
            RefundIssued => Some("reason"),
            CartItemAdded | OrderPlaced => None,
        },
    }
}

/// The rare value `distribution_shift` forces a categorical field to by default.
pub(crate) fn default_shift_value(field: &str) -> Option<&'static str> {
    CATEGORICAL
        .iter()
        .find(|(name, _)| *name == field)
        .map(|(_, value)| *value)
}

/// Versions of `kind` in which applying `usage` to `field` gives the promised outcome.
pub(crate) fn eligible_versions(
    kind: EventKind,
    field: &str,
    usage: FieldUse<'_>,
) -> Vec<SchemaVersion> {
    kind.versions()
        .iter()
        .copied()
        .filter(|&version| {
            let Some(spec) = wire::field(kind, version, field) else {
                return false;
            };
            match usage {
                FieldUse::Remove | FieldUse::Null => spec.required,
                FieldUse::Rename(to) => {
                    let parent = &spec.path[..spec.path.len() - 1];
                    spec.required
                        && !to.is_empty()
                        && !wire::known_keys(kind, version, parent).contains(&to)
                }
                FieldUse::Retype | FieldUse::Scale | FieldUse::Categorical => true,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_names_resolve_to_canonical_ones() {
        assert_eq!(
            resolve(EventKind::OrderPlaced, "order_amount"),
            Some("amount")
        );
        assert_eq!(
            resolve(EventKind::PaymentProcessed, "payment_method"),
            Some("method")
        );
        assert_eq!(
            resolve(EventKind::OrderPlaced, "timestamp"),
            Some("occurred_at")
        );
        assert_eq!(resolve(EventKind::OrderPlaced, "colour"), None);
        assert_eq!(resolve(EventKind::OrderPlaced, "event_id"), None);
        assert_eq!(resolve(EventKind::UserCreated, "amount"), None);
        assert!(known(EventKind::SessionStarted).contains(&"device"));
    }

    #[test]
    fn every_default_is_known_and_has_an_eligible_version() {
        let uses = [
            FieldUse::Remove,
            FieldUse::Null,
            FieldUse::Retype,
            FieldUse::Rename("renamed_v2"),
            FieldUse::Scale,
            FieldUse::Categorical,
        ];
        for kind in EventKind::ALL {
            for usage in uses {
                if let Some(field) = default_field(kind, usage) {
                    assert_eq!(resolve(kind, field), Some(field), "{kind:?} {usage:?}");
                    assert!(
                        !eligible_versions(kind, field, usage).is_empty(),
                        "{kind:?} {usage:?} {field}"
                    );
                }
            }
        }
    }

    #[test]
    fn optional_fields_cannot_be_removed_and_known_keys_cannot_be_rename_targets() {
        assert!(
            eligible_versions(EventKind::RefundIssued, "order_id", FieldUse::Remove).is_empty()
        );
        assert_eq!(
            eligible_versions(EventKind::PaymentProcessed, "currency", FieldUse::Null),
            vec![SchemaVersion::V2, SchemaVersion::V3]
        );
        // In v2 the key already is `amount_minor`; v1 and v3 name it differently.
        assert_eq!(
            eligible_versions(
                EventKind::OrderPlaced,
                "amount",
                FieldUse::Rename("amount_minor")
            ),
            vec![SchemaVersion::V1, SchemaVersion::V3]
        );
    }
}
