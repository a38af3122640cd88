//! The wire formats of schema versions 1.0, 2.0 and 3.0 and the one table that says where each
//! field lives in each of them. Encoding (used by the generator and by tests) and decoding
//! (`crate::decode`) both read this table, so the two can never disagree, and fault injection
//! finds a field's path here whether the scenario names it canonically (`amount`) or by its
//! seed name (`order_amount`).
//!
//! * v1 is the seed's `BaseEvent` in snake_case: `event_id`, `event_type`, `timestamp` (a local
//!   date-time, read as UTC), `user_id`, `schema_version: "1.0"`, `properties` with decimal
//!   amounts. Only the seed's four event kinds exist in v1.
//! * v2 is flat: `occurred_at` (RFC 3339), `session_id`, and `data` with amounts in minor units,
//!   order ids that payments and refunds reference, and order lines.
//! * v3 nests the customer (`customer.id`, `customer.country`, …), carries a `context`, and
//!   writes money as `{ "minor": …, "currency": … }` objects.

use crate::event::{CanonicalEvent, EventBody, EventKind, SchemaVersion};
use crate::money;
use serde_json::{json, Map, Value};

/// Where one canonical field lives in one schema version of one event kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// Canonical name, as scenario files and quality checks use it.
    pub name: &'static str,
    /// JSON object keys from the event root.
    pub path: &'static [&'static str],
    /// Whether decoding fails when the field is absent.
    pub required: bool,
}

/// A `FieldSpec` literal (a macro, so the tables below are promoted to statics).
macro_rules! f {
    ($name:expr, $path:expr, $required:expr) => {
        FieldSpec {
            name: $name,
            path: $path,
            required: $required,
        }
    };
}

/// Seed (v1) and alternative names, mapped to canonical field names.
pub fn canonical_field_name(name: &str) -> &str {
    match name {
        "order_amount" | "payment_amount" | "amount_minor" | "total" => "amount",
        "payment_method" => "method",
        "transaction_id" => "payment_id",
        "timestamp" | "event_time" => "occurred_at",
        "customer_id" => "user_id",
        "lines" => "items",
        other => other,
    }
}

/// The envelope fields of a version (present on every kind).
fn envelope(version: SchemaVersion) -> &'static [FieldSpec] {
    match version {
        SchemaVersion::V1 => &[
            f!("event_id", &["event_id"], true),
            f!("event_type", &["event_type"], true),
            f!("occurred_at", &["timestamp"], true),
            f!("user_id", &["user_id"], true),
            f!("schema_version", &["schema_version"], true),
        ],
        SchemaVersion::V2 => &[
            f!("event_id", &["event_id"], true),
            f!("event_type", &["event_type"], true),
            f!("occurred_at", &["occurred_at"], true),
            f!("user_id", &["user_id"], true),
            f!("session_id", &["session_id"], false),
            f!("schema_version", &["schema_version"], true),
        ],
        SchemaVersion::V3 => &[
            f!("event_id", &["event_id"], true),
            f!("event_type", &["event_type"], true),
            f!("occurred_at", &["occurred_at"], true),
            f!("user_id", &["customer", "id"], true),
            f!("session_id", &["session_id"], false),
            f!("schema_version", &["schema_version"], true),
            f!("producer", &["context", "producer"], false),
            f!("trace_id", &["context", "trace_id"], false),
        ],
    }
}

/// The body fields of a kind in a version; empty when the kind does not exist in that version.
fn body(kind: EventKind, version: SchemaVersion) -> &'static [FieldSpec] {
    use EventKind::*;
    use SchemaVersion::*;
    match (version, kind) {
        (V1, UserCreated) => &[
            f!("email", &["properties", "email"], true),
            f!("country", &["properties", "country"], true),
        ],
        (V1, ProductViewed) => &[
            f!("product_id", &["properties", "product_id"], true),
            f!("category", &["properties", "category"], true),
        ],
        (V1, OrderPlaced) => &[
            f!("amount", &["properties", "order_amount"], true),
            f!("currency", &["properties", "currency"], true),
            f!("items", &["properties", "items"], true),
        ],
        (V1, PaymentProcessed) => &[
            f!("amount", &["properties", "payment_amount"], true),
            f!("method", &["properties", "payment_method"], true),
            f!("payment_id", &["properties", "transaction_id"], true),
            f!("currency", &["properties", "currency"], false),
        ],
        (V1, _) => &[],
        (V2, UserCreated) => &[
            f!("email", &["data", "email"], true),
            f!("country", &["data", "country"], true),
            f!("device", &["data", "device"], false),
            f!("channel", &["data", "channel"], false),
        ],
        (V2, SessionStarted) => &[
            f!("device", &["data", "device"], true),
            f!("channel", &["data", "channel"], true),
            f!("country", &["data", "country"], false),
        ],
        (V2, ProductViewed) => &[
            f!("product_id", &["data", "product_id"], true),
            f!("category", &["data", "category"], true),
            f!("price", &["data", "price_minor"], false),
            f!("currency", &["data", "currency"], false),
        ],
        (V2, CartItemAdded) => &[
            f!("product_id", &["data", "product_id"], true),
            f!("quantity", &["data", "quantity"], true),
            f!("price", &["data", "unit_price_minor"], true),
            f!("currency", &["data", "currency"], true),
        ],
        (V2, OrderPlaced) => &[
            f!("order_id", &["data", "order_id"], true),
            f!("amount", &["data", "amount_minor"], true),
            f!("currency", &["data", "currency"], true),
            f!("items", &["data", "items"], true),
        ],
        (V2, PaymentProcessed) => &[
            f!("payment_id", &["data", "payment_id"], true),
            f!("order_id", &["data", "order_id"], true),
            f!("amount", &["data", "amount_minor"], true),
            f!("currency", &["data", "currency"], true),
            f!("method", &["data", "method"], true),
            f!("status", &["data", "status"], true),
            f!("attempt", &["data", "attempt"], false),
            f!("failure_reason", &["data", "failure_reason"], false),
        ],
        (V2, RefundIssued) => &[
            f!("refund_id", &["data", "refund_id"], true),
            f!("payment_id", &["data", "payment_id"], true),
            f!("order_id", &["data", "order_id"], false),
            f!("amount", &["data", "amount_minor"], true),
            f!("currency", &["data", "currency"], true),
            f!("reason", &["data", "reason"], true),
        ],
        (V3, UserCreated) => &[
            f!("email", &["payload", "email"], true),
            f!("country", &["customer", "country"], true),
            f!("device", &["customer", "device"], false),
            f!("channel", &["customer", "channel"], false),
        ],
        (V3, SessionStarted) => &[
            f!("device", &["customer", "device"], true),
            f!("channel", &["customer", "channel"], true),
            f!("country", &["customer", "country"], false),
        ],
        (V3, ProductViewed) => &[
            f!("product_id", &["payload", "product", "id"], true),
            f!("category", &["payload", "product", "category"], true),
            f!("price", &["payload", "product", "price", "minor"], false),
            f!(
                "currency",
                &["payload", "product", "price", "currency"],
                false
            ),
        ],
        (V3, CartItemAdded) => &[
            f!("product_id", &["payload", "product", "id"], true),
            f!("quantity", &["payload", "quantity"], true),
            f!("price", &["payload", "unit_price", "minor"], true),
            f!("currency", &["payload", "unit_price", "currency"], true),
        ],
        (V3, OrderPlaced) => &[
            f!("order_id", &["payload", "order_id"], true),
            f!("amount", &["payload", "total", "minor"], true),
            f!("currency", &["payload", "total", "currency"], true),
            f!("items", &["payload", "lines"], true),
        ],
        (V3, PaymentProcessed) => &[
            f!("payment_id", &["payload", "payment_id"], true),
            f!("order_id", &["payload", "order_id"], true),
            f!("amount", &["payload", "amount", "minor"], true),
            f!("currency", &["payload", "amount", "currency"], true),
            f!("method", &["payload", "method"], true),
            f!("status", &["payload", "outcome", "status"], true),
            f!(
                "failure_reason",
                &["payload", "outcome", "failure_reason"],
                false
            ),
            f!("attempt", &["payload", "attempt"], false),
        ],
        (V3, RefundIssued) => &[
            f!("refund_id", &["payload", "refund_id"], true),
            f!("payment_id", &["payload", "payment_id"], true),
            f!("order_id", &["payload", "order_id"], false),
            f!("amount", &["payload", "amount", "minor"], true),
            f!("currency", &["payload", "amount", "currency"], true),
            f!("reason", &["payload", "reason"], true),
        ],
    }
}

/// Every field of `kind` in `version`, envelope first.
pub fn fields(kind: EventKind, version: SchemaVersion) -> impl Iterator<Item = &'static FieldSpec> {
    envelope(version).iter().chain(body(kind, version).iter())
}

/// Where the field called `name` (canonical or seed name) lives, if it exists in that version.
pub fn field(kind: EventKind, version: SchemaVersion, name: &str) -> Option<&'static FieldSpec> {
    let canonical = canonical_field_name(name);
    fields(kind, version).find(|spec| spec.name == canonical)
}

/// Keys the format knows in the object at `parent` (a prefix of field paths).
pub fn known_keys(kind: EventKind, version: SchemaVersion, parent: &[&str]) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = fields(kind, version)
        .filter(|spec| spec.path.len() > parent.len() && spec.path[..parent.len()] == *parent)
        .map(|spec| spec.path[parent.len()])
        .collect();
    if parent.is_empty() {
        keys.extend(["properties", "data", "payload", "customer", "context"]);
    }
    if matches!(parent.last(), Some(&"items") | Some(&"lines")) {
        keys.clear();
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Reads the value at `path`, if every step exists.
pub fn get_path<'a>(root: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(root, |v, key| v.as_object()?.get(*key))
}

/// Mutable access to the value at `path`.
pub fn get_path_mut<'a>(root: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter()
        .try_fold(root, |v, key| v.as_object_mut()?.get_mut(*key))
}

/// Removes the value at `path` and returns it.
pub fn remove_path(root: &mut Value, path: &[&str]) -> Option<Value> {
    let (last, parent) = path.split_last()?;
    get_path_mut(root, parent)?.as_object_mut()?.remove(*last)
}

/// Sets the value at `path`, creating intermediate objects.
pub fn set_path(root: &mut Value, path: &[&str], value: Value) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut cur = root;
    for key in parent {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        cur = cur
            .as_object_mut()
            .expect("object ensured above")
            .entry(*key)
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if let Some(obj) = cur.as_object_mut() {
        obj.insert((*last).to_string(), value);
    }
}

/// Formats a v1 timestamp the way the seed's Java `LocalDateTime` serializes (no zone).
fn v1_timestamp(ev: &CanonicalEvent) -> String {
    ev.occurred_at.format("%Y-%m-%dT%H:%M:%S%.3f").to_string()
}

fn rfc3339(ev: &CanonicalEvent) -> String {
    ev.occurred_at
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Encodes a canonical event in a wire version. Returns `None` when the kind does not exist in
/// that version (v1 knows only the seed's four kinds) or the event cannot be expressed there
/// (v1 has no failed payments).
pub fn encode(ev: &CanonicalEvent, version: SchemaVersion) -> Option<Value> {
    let kind = ev.kind();
    if !kind.versions().contains(&version) {
        return None;
    }
    let mut root = json!({
        "event_id": ev.event_id,
        "event_type": kind.wire_name(),
        "schema_version": version.as_str(),
    });
    match version {
        SchemaVersion::V1 => {
            set_path(&mut root, &["timestamp"], json!(v1_timestamp(ev)));
            set_path(&mut root, &["user_id"], json!(ev.user_id));
        }
        SchemaVersion::V2 => {
            set_path(&mut root, &["occurred_at"], json!(rfc3339(ev)));
            set_path(&mut root, &["user_id"], json!(ev.user_id));
            if let Some(s) = &ev.session_id {
                set_path(&mut root, &["session_id"], json!(s));
            }
        }
        SchemaVersion::V3 => {
            set_path(&mut root, &["occurred_at"], json!(rfc3339(ev)));
            set_path(&mut root, &["customer", "id"], json!(ev.user_id));
            if let Some(s) = &ev.session_id {
                set_path(&mut root, &["session_id"], json!(s));
            }
            set_path(&mut root, &["context", "producer"], json!("heal-generator"));
        }
    }
    let put = |root: &mut Value, name: &str, value: Value| {
        if let Some(spec) = field(kind, version, name) {
            set_path(root, spec.path, value);
        }
    };
    match &ev.body {
        EventBody::User {
            email,
            country,
            device,
            channel,
        } => {
            put(&mut root, "email", json!(email));
            put(&mut root, "country", json!(country));
            if let Some(d) = device {
                put(&mut root, "device", json!(d));
            }
            if let Some(c) = channel {
                put(&mut root, "channel", json!(c));
            }
        }
        EventBody::Session {
            device,
            channel,
            country,
        } => {
            put(&mut root, "device", json!(device));
            put(&mut root, "channel", json!(channel));
            if let Some(c) = country {
                put(&mut root, "country", json!(c));
            }
        }
        EventBody::ProductView {
            product_id,
            category,
            price_minor,
            currency,
        } => {
            put(&mut root, "product_id", json!(product_id));
            put(&mut root, "category", json!(category));
            if let Some(p) = price_minor {
                put(&mut root, "price", json!(p));
            }
            if let Some(c) = currency {
                put(&mut root, "currency", json!(c));
            }
        }
        EventBody::CartItem {
            product_id,
            quantity,
            unit_price_minor,
            currency,
        } => {
            put(&mut root, "product_id", json!(product_id));
            put(&mut root, "quantity", json!(quantity));
            put(&mut root, "price", json!(unit_price_minor));
            put(&mut root, "currency", json!(currency));
        }
        EventBody::Order {
            order_id,
            amount_minor,
            currency,
            item_count,
            lines,
        } => {
            put(&mut root, "currency", json!(currency));
            match version {
                SchemaVersion::V1 => {
                    put(
                        &mut root,
                        "amount",
                        json!(money::to_major(*amount_minor, currency)),
                    );
                    put(&mut root, "items", json!(item_count));
                }
                SchemaVersion::V2 => {
                    put(&mut root, "order_id", json!(order_id));
                    put(&mut root, "amount", json!(amount_minor));
                    let items: Vec<Value> = lines
                        .iter()
                        .map(|l| json!({"product_id": l.product_id, "quantity": l.quantity, "unit_price_minor": l.unit_price_minor}))
                        .collect();
                    put(&mut root, "items", Value::Array(items));
                }
                SchemaVersion::V3 => {
                    put(&mut root, "order_id", json!(order_id));
                    put(&mut root, "amount", json!(amount_minor));
                    let items: Vec<Value> = lines
                        .iter()
                        .map(|l| json!({"sku": l.product_id, "quantity": l.quantity, "unit_price_minor": l.unit_price_minor}))
                        .collect();
                    put(&mut root, "items", Value::Array(items));
                }
            }
        }
        EventBody::Payment {
            payment_id,
            order_id,
            amount_minor,
            currency,
            method,
            status,
            attempt,
            failure_reason,
        } => {
            if version == SchemaVersion::V1 {
                // The seed's payment has neither a status nor a currency: it can only say
                // "a successful payment in USD" (the currency the decoder assumes).
                if *status != crate::event::PaymentStatus::Succeeded || currency != "USD" {
                    return None;
                }
                put(
                    &mut root,
                    "amount",
                    json!(money::to_major(*amount_minor, currency)),
                );
            } else {
                put(&mut root, "amount", json!(amount_minor));
                put(&mut root, "currency", json!(currency));
                put(&mut root, "order_id", json!(order_id));
                put(&mut root, "status", json!(status.as_str()));
                put(&mut root, "attempt", json!(attempt));
                if let Some(r) = failure_reason {
                    put(&mut root, "failure_reason", json!(r));
                }
            }
            put(&mut root, "payment_id", json!(payment_id));
            put(&mut root, "method", json!(method));
        }
        EventBody::Refund {
            refund_id,
            payment_id,
            order_id,
            amount_minor,
            currency,
            reason,
        } => {
            put(&mut root, "refund_id", json!(refund_id));
            put(&mut root, "payment_id", json!(payment_id));
            if let Some(o) = order_id {
                put(&mut root, "order_id", json!(o));
            }
            put(&mut root, "amount", json!(amount_minor));
            put(&mut root, "currency", json!(currency));
            put(&mut root, "reason", json!(reason));
        }
    }
    Some(root)
}
