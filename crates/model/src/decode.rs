//! Decoding raw bytes into a [`CanonicalEvent`]: UTF-8, JSON, schema version, event type,
//! required fields and value rules, then upcasting to the canonical model. Every failure has a
//! stable [`ReasonCode`] (stored with the quarantined bytes) and a human-readable detail.
//! Decoding is total: any byte string yields either an event or a reason, never a panic.

use crate::event::{CanonicalEvent, EventBody, EventKind, OrderLine, PaymentStatus, SchemaVersion};
use crate::money;
use crate::wire::{self, FieldSpec};
use chrono::{DateTime, Datelike, NaiveDateTime, Utc};
use serde_json::Value;
use std::fmt;

/// Largest payload accepted (1 MiB); larger ones are quarantined as `payload_too_large`.
pub const MAX_EVENT_BYTES: usize = 1 << 20;
/// Longest identifier or label accepted in a string field.
const MAX_STRING_CHARS: usize = 256;

/// Why an event could not be ingested. The `as_str` codes are stable: they are stored in the
/// quarantine and used by checks and operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReasonCode {
    PayloadTooLarge,
    InvalidEncoding,
    MalformedJson,
    NotAnObject,
    InvalidSchemaVersion,
    UnknownSchemaVersion,
    UnknownEventType,
    MissingField,
    NullField,
    TypeMismatch,
    SchemaDrift,
    InvalidTimestamp,
    FutureTimestamp,
    InvalidValue,
}

impl ReasonCode {
    pub const ALL: [ReasonCode; 14] = [
        ReasonCode::PayloadTooLarge,
        ReasonCode::InvalidEncoding,
        ReasonCode::MalformedJson,
        ReasonCode::NotAnObject,
        ReasonCode::InvalidSchemaVersion,
        ReasonCode::UnknownSchemaVersion,
        ReasonCode::UnknownEventType,
        ReasonCode::MissingField,
        ReasonCode::NullField,
        ReasonCode::TypeMismatch,
        ReasonCode::SchemaDrift,
        ReasonCode::InvalidTimestamp,
        ReasonCode::FutureTimestamp,
        ReasonCode::InvalidValue,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::PayloadTooLarge => "payload_too_large",
            ReasonCode::InvalidEncoding => "invalid_encoding",
            ReasonCode::MalformedJson => "malformed_json",
            ReasonCode::NotAnObject => "not_an_object",
            ReasonCode::InvalidSchemaVersion => "invalid_schema_version",
            ReasonCode::UnknownSchemaVersion => "unknown_schema_version",
            ReasonCode::UnknownEventType => "unknown_event_type",
            ReasonCode::MissingField => "missing_field",
            ReasonCode::NullField => "null_field",
            ReasonCode::TypeMismatch => "type_mismatch",
            ReasonCode::SchemaDrift => "schema_drift",
            ReasonCode::InvalidTimestamp => "invalid_timestamp",
            ReasonCode::FutureTimestamp => "future_timestamp",
            ReasonCode::InvalidValue => "invalid_value",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decoding failure: the reason code, a detail for humans, and the event id if one could be
/// read (so quarantined events can still be matched to what a producer sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub reason: ReasonCode,
    pub detail: String,
    pub event_id: Option<String>,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

impl std::error::Error for DecodeError {}

fn err(reason: ReasonCode, detail: impl Into<String>) -> DecodeError {
    DecodeError {
        reason,
        detail: detail.into(),
        event_id: None,
    }
}

/// Finds an `"event_id":"…"` in bytes that are not valid JSON, so a corrupted event can still
/// be traced to what its producer sent.
pub fn sniff_event_id(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let start = text.find("\"event_id\"")? + "\"event_id\"".len();
    let rest = text[start..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let end = rest.find('"')?;
    let id = &rest[..end];
    (!id.is_empty() && id.len() <= 128 && !id.contains(['\u{fffd}', '\0'])).then(|| id.to_string())
}

/// Decodes and validates one event.
pub fn decode(bytes: &[u8]) -> Result<CanonicalEvent, DecodeError> {
    decode_inner(bytes).map_err(|mut e| {
        if e.event_id.is_none() {
            e.event_id = sniff_event_id(bytes);
        }
        e
    })
}

/// A field renamed by a producer, mapped back: in events of `event_type` (and of
/// `schema_version`, when given), a key `from` found where the schema expects the field `to`
/// (its canonical name) is moved there before decoding.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldMapping {
    pub event_type: String,
    #[serde(default)]
    pub schema_version: Option<String>,
    pub from: String,
    pub to: String,
}

/// Decodes with field mappings. An event that decodes as sent is never touched; one refused
/// for a missing field or schema drift is rewritten by the mappings that apply to its type and
/// version and decoded again. Returns the event and, when a mapping was used, the rewritten
/// bytes; when the rewritten event still does not decode, its (new) reason.
pub fn decode_mapped(
    bytes: &[u8],
    mappings: &[FieldMapping],
) -> Result<(CanonicalEvent, Option<Vec<u8>>), DecodeError> {
    let refused = match decode(bytes) {
        Ok(ev) => return Ok((ev, None)),
        Err(e) => e,
    };
    if mappings.is_empty()
        || !matches!(
            refused.reason,
            ReasonCode::SchemaDrift | ReasonCode::MissingField
        )
    {
        return Err(refused);
    }
    match apply_mappings(bytes, mappings) {
        Some(mapped) => decode(&mapped).map(|ev| (ev, Some(mapped))),
        None => Err(refused),
    }
}

/// The bytes with every applicable mapping applied, or `None` when none applies.
pub fn apply_mappings(bytes: &[u8], mappings: &[FieldMapping]) -> Option<Vec<u8>> {
    let mut root: Value = serde_json::from_slice(bytes).ok()?;
    let obj = root.as_object()?;
    let version = schema_version(obj.get("schema_version")).ok()?;
    let kind = event_kind(obj.get("event_type"), version).ok()?;
    let sent_type = obj
        .get("event_type")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut changed = false;
    for m in mappings {
        let same_type = EventKind::from_wire_name(&m.event_type) == Some(kind)
            || sent_type.as_deref() == Some(m.event_type.as_str());
        let same_version = m
            .schema_version
            .as_deref()
            .is_none_or(|v| SchemaVersion::parse(v) == Some(version));
        if !same_type || !same_version {
            continue;
        }
        let Some(spec) = wire::field(kind, version, &m.to) else {
            continue;
        };
        let Some((last, parent)) = spec.path.split_last() else {
            continue;
        };
        let Some(target) = wire::get_path_mut(&mut root, parent).and_then(Value::as_object_mut)
        else {
            continue;
        };
        if target.contains_key(*last) {
            continue;
        }
        if let Some(v) = target.remove(&m.from) {
            target.insert((*last).to_string(), v);
            changed = true;
        }
    }
    changed.then(|| serde_json::to_vec(&root).expect("a JSON value serializes"))
}

fn decode_inner(bytes: &[u8]) -> Result<CanonicalEvent, DecodeError> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(err(
            ReasonCode::PayloadTooLarge,
            format!(
                "{} bytes exceed the limit of {MAX_EVENT_BYTES}",
                bytes.len()
            ),
        ));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| err(ReasonCode::InvalidEncoding, format!("not valid UTF-8: {e}")))?;
    let root: Value = serde_json::from_str(text)
        .map_err(|e| err(ReasonCode::MalformedJson, format!("not valid JSON: {e}")))?;
    if contains_nul(&root) {
        return Err(err(
            ReasonCode::InvalidEncoding,
            "contains a NUL character (\\u0000), which cannot be stored",
        ));
    }
    let obj = root.as_object().ok_or_else(|| {
        err(
            ReasonCode::NotAnObject,
            format!(
                "an event must be a JSON object, found {}",
                json_type_name(&root)
            ),
        )
    })?;
    let event_id = obj
        .get("event_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    let with_id = |mut e: DecodeError| {
        e.event_id = event_id.clone();
        e
    };
    let version = schema_version(obj.get("schema_version")).map_err(with_id)?;
    let kind = event_kind(obj.get("event_type"), version).map_err(with_id)?;
    let reader = Reader {
        root: &root,
        kind,
        version,
    };
    reader.event().map_err(with_id)
}

fn contains_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(contains_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

/// How a JSON value's type reads in an error message ("a string", "an array", …).
pub fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn schema_version(v: Option<&Value>) -> Result<SchemaVersion, DecodeError> {
    let raw = match v {
        None => {
            return Err(err(
                ReasonCode::InvalidSchemaVersion,
                "schema_version is missing",
            ))
        }
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(err(
                ReasonCode::InvalidSchemaVersion,
                format!(
                    "schema_version must be a string, found {}",
                    json_type_name(other)
                ),
            ))
        }
    };
    if let Some(version) = SchemaVersion::parse(raw) {
        return Ok(version);
    }
    let looks_like_version = {
        let t = raw.trim_start_matches(['v', 'V']);
        !t.is_empty()
            && t.split('.').count() <= 3
            && t.split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    };
    if looks_like_version {
        Err(err(
            ReasonCode::UnknownSchemaVersion,
            format!("schema_version {raw:?} is not one of 1.0, 2.0, 3.0"),
        ))
    } else {
        Err(err(
            ReasonCode::InvalidSchemaVersion,
            format!("schema_version {:?} is not a version number", truncate(raw)),
        ))
    }
}

fn event_kind(v: Option<&Value>, version: SchemaVersion) -> Result<EventKind, DecodeError> {
    let name = match v {
        None => {
            return Err(err(
                ReasonCode::MissingField,
                "required field `event_type` is missing",
            ))
        }
        Some(Value::Null) => return Err(err(ReasonCode::NullField, "field `event_type` is null")),
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(err(
                ReasonCode::TypeMismatch,
                format!(
                    "field `event_type` must be a string, found {}",
                    json_type_name(other)
                ),
            ))
        }
    };
    let kind = EventKind::from_wire_name(name).ok_or_else(|| {
        err(
            ReasonCode::UnknownEventType,
            format!("event_type {:?} is not known", truncate(name)),
        )
    })?;
    if !kind.versions().contains(&version) {
        return Err(err(
            ReasonCode::UnknownEventType,
            format!(
                "event_type {name} does not exist in schema version {}",
                version.as_str()
            ),
        ));
    }
    Ok(kind)
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

struct Reader<'a> {
    root: &'a Value,
    kind: EventKind,
    version: SchemaVersion,
}

impl<'a> Reader<'a> {
    fn spec(&self, name: &str) -> Option<&'static FieldSpec> {
        wire::field(self.kind, self.version, name)
    }

    fn describe(&self, name: &str) -> String {
        match self.spec(name) {
            Some(spec) => Self::display(spec),
            None => format!("`{name}`"),
        }
    }

    fn display(spec: &FieldSpec) -> String {
        format!("`{}` ({})", spec.name, spec.path.join("."))
    }

    /// The raw value of a field: `Ok(None)` when an optional field is absent or null, or when
    /// the field does not exist in this schema version.
    fn value(&self, name: &str) -> Result<Option<&'a Value>, DecodeError> {
        let Some(spec) = self.spec(name) else {
            return Ok(None);
        };
        match wire::get_path(self.root, spec.path) {
            Some(Value::Null) if spec.required => Err(err(
                ReasonCode::NullField,
                format!("required field {} is null", Self::display(spec)),
            )),
            Some(Value::Null) => Ok(None),
            Some(v) => Ok(Some(v)),
            None if spec.required => Err(self.missing(spec)),
            None => Ok(None),
        }
    }

    fn missing(&self, spec: &FieldSpec) -> DecodeError {
        let parent = &spec.path[..spec.path.len() - 1];
        let known = wire::known_keys(self.kind, self.version, parent);
        let unknown: Vec<&str> = wire::get_path(self.root, parent)
            .and_then(Value::as_object)
            .map(|o| {
                o.keys()
                    .map(String::as_str)
                    .filter(|k| !known.contains(k))
                    .collect()
            })
            .unwrap_or_default();
        if unknown.is_empty() {
            err(
                ReasonCode::MissingField,
                format!("required field {} is missing", Self::display(spec)),
            )
        } else {
            err(
                ReasonCode::SchemaDrift,
                format!(
                    "required field {} is missing and unknown field(s) {} appeared",
                    Self::display(spec),
                    unknown
                        .iter()
                        .map(|k| format!("`{}`", truncate(k)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        }
    }

    fn mismatch(&self, name: &str, expected: &str, found: &Value) -> DecodeError {
        err(
            ReasonCode::TypeMismatch,
            format!(
                "field {} must be {expected}, found {}",
                self.describe(name),
                json_type_name(found)
            ),
        )
    }

    fn invalid(&self, name: &str, why: impl fmt::Display) -> DecodeError {
        err(
            ReasonCode::InvalidValue,
            format!("field {} {why}", self.describe(name)),
        )
    }

    fn opt_str(&self, name: &str) -> Result<Option<String>, DecodeError> {
        match self.value(name)? {
            None => Ok(None),
            Some(Value::String(s)) => {
                if s.trim().is_empty() {
                    Err(self.invalid(name, "is empty"))
                } else if s.chars().count() > MAX_STRING_CHARS {
                    Err(self.invalid(
                        name,
                        format_args!("is longer than {MAX_STRING_CHARS} characters"),
                    ))
                } else {
                    Ok(Some(s.clone()))
                }
            }
            Some(other) => Err(self.mismatch(name, "a string", other)),
        }
    }

    fn str(&self, name: &str) -> Result<String, DecodeError> {
        Ok(self.opt_str(name)?.unwrap_or_default())
    }

    fn opt_int(&self, name: &str) -> Result<Option<i64>, DecodeError> {
        match self.value(name)? {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.mismatch(name, "an integer", &Value::Number(n.clone()))),
            Some(other) => Err(self.mismatch(name, "an integer", other)),
        }
    }

    fn int(&self, name: &str) -> Result<i64, DecodeError> {
        Ok(self.opt_int(name)?.unwrap_or_default())
    }

    fn currency(&self, name: &str) -> Result<Option<String>, DecodeError> {
        match self.opt_str(name)? {
            Some(c) if money::exponent(&c).is_none() => Err(self.invalid(
                name,
                format_args!("{:?} is not a supported currency", truncate(&c)),
            )),
            other => Ok(other),
        }
    }

    /// A non-negative amount in minor units; v1 sends a decimal major-unit number.
    fn amount(&self, currency: &str) -> Result<i64, DecodeError> {
        let minor = if self.version == SchemaVersion::V1 {
            match self.value("amount")? {
                Some(Value::Number(n)) => n
                    .as_f64()
                    .and_then(|major| money::to_minor(major, currency))
                    .ok_or_else(|| self.invalid("amount", "is out of range"))?,
                Some(other) => return Err(self.mismatch("amount", "a number", other)),
                None => 0,
            }
        } else {
            self.int("amount")?
        };
        if minor < 0 {
            return Err(self.invalid("amount", format_args!("is negative ({minor})")));
        }
        Ok(minor)
    }

    fn quantity(&self, name: &str, q: i64) -> Result<i32, DecodeError> {
        if (1..=10_000).contains(&q) {
            Ok(q as i32)
        } else {
            Err(self.invalid(name, format_args!("quantity {q} is outside 1..=10000")))
        }
    }

    fn timestamp(&self) -> Result<DateTime<Utc>, DecodeError> {
        let raw = self.str("occurred_at")?;
        let parsed = DateTime::parse_from_rfc3339(&raw)
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                    .iter()
                    .find_map(|fmt| NaiveDateTime::parse_from_str(&raw, fmt).ok())
                    .map(|n| n.and_utc())
            });
        match parsed {
            Some(t) if (1970..=2200).contains(&t.year()) => Ok(t),
            Some(_) => Err(err(
                ReasonCode::InvalidTimestamp,
                format!(
                    "timestamp {:?} is outside the years 1970-2200",
                    truncate(&raw)
                ),
            )),
            None => Err(err(
                ReasonCode::InvalidTimestamp,
                format!(
                    "timestamp {:?} is not ISO-8601 (RFC 3339, or a local date-time read as UTC)",
                    truncate(&raw)
                ),
            )),
        }
    }

    fn lines(&self) -> Result<Vec<OrderLine>, DecodeError> {
        let items = match self.value("items")? {
            Some(Value::Array(items)) => items,
            Some(other) => return Err(self.mismatch("items", "an array", other)),
            None => return Ok(Vec::new()),
        };
        if items.len() > 1000 {
            return Err(self.invalid("items", "has more than 1000 lines"));
        }
        let id_key = if self.version == SchemaVersion::V3 {
            "sku"
        } else {
            "product_id"
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let bad = |what: &str| {
                    err(
                        ReasonCode::TypeMismatch,
                        format!("order line {i} must have {what}"),
                    )
                };
                let product_id = item
                    .get(id_key)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty() && s.len() <= MAX_STRING_CHARS)
                    .ok_or_else(|| bad(&format!("a string `{id_key}`")))?;
                let quantity = item
                    .get("quantity")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| bad("an integer `quantity`"))?;
                let unit_price_minor = item
                    .get("unit_price_minor")
                    .and_then(Value::as_i64)
                    .filter(|p| *p >= 0)
                    .ok_or_else(|| bad("a non-negative integer `unit_price_minor`"))?;
                Ok(OrderLine {
                    product_id: product_id.to_string(),
                    quantity: self.quantity("items", quantity)?,
                    unit_price_minor,
                })
            })
            .collect()
    }

    fn body(&self) -> Result<EventBody, DecodeError> {
        Ok(match self.kind {
            EventKind::UserCreated => {
                let email = self.str("email")?;
                if !email.contains('@') {
                    return Err(self.invalid("email", "is not an e-mail address"));
                }
                EventBody::User {
                    email,
                    country: self.str("country")?,
                    device: self.opt_str("device")?,
                    channel: self.opt_str("channel")?,
                }
            }
            EventKind::SessionStarted => EventBody::Session {
                device: self.str("device")?,
                channel: self.str("channel")?,
                country: self.opt_str("country")?,
            },
            EventKind::ProductViewed => {
                let currency = if self.version == SchemaVersion::V1 {
                    None
                } else {
                    self.currency("currency")?
                };
                let price_minor = if self.version == SchemaVersion::V1 {
                    None
                } else {
                    self.opt_int("price")?
                };
                if price_minor.is_some_and(|p| p < 0) {
                    return Err(self.invalid("price", "is negative"));
                }
                EventBody::ProductView {
                    product_id: self.str("product_id")?,
                    category: self.str("category")?,
                    price_minor,
                    currency,
                }
            }
            EventKind::CartItemAdded => {
                let unit_price_minor = self.int("price")?;
                if unit_price_minor < 0 {
                    return Err(self.invalid("price", "is negative"));
                }
                EventBody::CartItem {
                    product_id: self.str("product_id")?,
                    quantity: self.quantity("quantity", self.int("quantity")?)?,
                    unit_price_minor,
                    currency: self.currency("currency")?.unwrap_or_default(),
                }
            }
            EventKind::OrderPlaced => {
                let currency = self.currency("currency")?.unwrap_or_default();
                let amount_minor = self.amount(&currency)?;
                let (order_id, lines, item_count) = if self.version == SchemaVersion::V1 {
                    let items = self.int("items")?;
                    if !(0..=100_000).contains(&items) {
                        return Err(
                            self.invalid("items", format_args!("count {items} is out of range"))
                        );
                    }
                    // The seed's order has no order id: the event id identifies it.
                    (String::new(), Vec::new(), items as i32)
                } else {
                    let lines = self.lines()?;
                    let count = lines.iter().map(|l| l.quantity).sum();
                    (self.str("order_id")?, lines, count)
                };
                EventBody::Order {
                    order_id,
                    amount_minor,
                    currency,
                    item_count,
                    lines,
                }
            }
            EventKind::PaymentProcessed => {
                let currency = self
                    .currency("currency")?
                    .unwrap_or_else(|| "USD".to_string());
                let amount_minor = self.amount(&currency)?;
                let (order_id, status, attempt, failure_reason) = if self.version
                    == SchemaVersion::V1
                {
                    (None, PaymentStatus::Succeeded, 1, None)
                } else {
                    let status = match self.str("status")?.to_ascii_uppercase().as_str() {
                        "SUCCEEDED" | "SUCCESS" | "CAPTURED" => PaymentStatus::Succeeded,
                        "FAILED" | "DECLINED" => PaymentStatus::Failed,
                        other => {
                            return Err(self.invalid(
                                "status",
                                format_args!("{:?} is not SUCCEEDED or FAILED", truncate(other)),
                            ))
                        }
                    };
                    let attempt = self.opt_int("attempt")?.unwrap_or(1);
                    if !(1..=100).contains(&attempt) {
                        return Err(
                            self.invalid("attempt", format_args!("{attempt} is outside 1..=100"))
                        );
                    }
                    (
                        Some(self.str("order_id")?),
                        status,
                        attempt as i32,
                        self.opt_str("failure_reason")?,
                    )
                };
                EventBody::Payment {
                    payment_id: self.str("payment_id")?,
                    order_id,
                    amount_minor,
                    currency,
                    method: self.str("method")?,
                    status,
                    attempt,
                    failure_reason,
                }
            }
            EventKind::RefundIssued => {
                let currency = self.currency("currency")?.unwrap_or_default();
                EventBody::Refund {
                    refund_id: self.str("refund_id")?,
                    payment_id: self.str("payment_id")?,
                    order_id: self.opt_str("order_id")?,
                    amount_minor: self.amount(&currency)?,
                    currency,
                    reason: self.str("reason")?,
                }
            }
        })
    }

    fn event(&self) -> Result<CanonicalEvent, DecodeError> {
        let event_id = self.str("event_id")?;
        if event_id.len() > 128 {
            return Err(self.invalid("event_id", "is longer than 128 bytes"));
        }
        let user_id = self.str("user_id")?;
        let occurred_at = self.timestamp()?;
        let session_id = self.opt_str("session_id")?;
        let mut body = self.body()?;
        if let EventBody::Order { order_id, .. } = &mut body {
            if order_id.is_empty() {
                order_id.clone_from(&event_id);
            }
        }
        Ok(CanonicalEvent {
            event_id,
            occurred_at,
            user_id,
            session_id,
            schema_version: self.version,
            body,
        })
    }
}

#[cfg(test)]
mod tests;
