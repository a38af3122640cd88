//! The `params` table of a fault: which keys each fault kind accepts, their types, ranges and
//! defaults, resolved into a [`FaultAction`].

use super::{format_iso_duration, parse_iso_duration, Ctx, ScenarioError, Target};
use crate::fields::{self, FieldUse};
use chrono::Duration;
use heal_model::{FaultKind, ReasonCode, SchemaVersion};
use serde_json::{json, Value};

/// How a `schema_drift` fault drifts.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaDrift {
    /// The field's key is renamed to `to` (the decoder sees a required field missing and an
    /// unknown key): `quarantine:schema_drift`.
    Rename { field: &'static str, to: String },
    /// `schema_version` is set to a well-formed but unknown version such as `4.0`:
    /// `quarantine:unknown_schema_version`.
    Version(String),
}

/// A fault kind with its parameters resolved (defaults filled in). Field names are canonical.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    MalformedJson,
    EncodingCorruption,
    MissingField {
        field: &'static str,
    },
    NullField {
        field: &'static str,
    },
    TypeChange {
        field: &'static str,
    },
    SchemaDrift(SchemaDrift),
    /// `schema_version` set to a value that is not a version number.
    InvalidSchemaVersion {
        value: Value,
    },
    /// `copies` extra copies of the same bytes, sent within `delay` after the original.
    DuplicateEvents {
        copies: u32,
        delay: Duration,
    },
    /// Sent `delay` after the event occurred.
    LateEvents {
        delay: Duration,
    },
    /// `occurred_at` moved `skew` past the time the event is sent.
    FutureTimestamps {
        skew: Duration,
    },
    VolumeDrop,
    /// `factor` × the normal volume; the extra events are fresh copies with new ids.
    VolumeSpike {
        factor: f64,
    },
    SourceOutage,
    ValueOutlier {
        field: &'static str,
        factor: f64,
    },
    DistributionShift {
        field: &'static str,
        to: String,
    },
    OrphanReference,
    JobFailure {
        message: Option<String>,
        /// Attempts that fail before the fault is spent (default: every attempt of one run).
        failures: Option<u32>,
    },
    JobDelay {
        delay: Duration,
    },
    /// The store refuses writes for the window (made to happen by the harness).
    DatabaseOutage,
}

fn quarantine(reason: ReasonCode) -> String {
    format!("quarantine:{}", reason.as_str())
}

impl FaultAction {
    /// Where affected events should end up.
    pub fn expected(&self) -> String {
        match self {
            FaultAction::MalformedJson => quarantine(ReasonCode::MalformedJson),
            FaultAction::EncodingCorruption => quarantine(ReasonCode::InvalidEncoding),
            FaultAction::MissingField { .. } => quarantine(ReasonCode::MissingField),
            FaultAction::NullField { .. } => quarantine(ReasonCode::NullField),
            FaultAction::TypeChange { .. } => quarantine(ReasonCode::TypeMismatch),
            FaultAction::SchemaDrift(SchemaDrift::Rename { .. }) => {
                quarantine(ReasonCode::SchemaDrift)
            }
            FaultAction::SchemaDrift(SchemaDrift::Version(_)) => {
                quarantine(ReasonCode::UnknownSchemaVersion)
            }
            FaultAction::InvalidSchemaVersion { .. } => {
                quarantine(ReasonCode::InvalidSchemaVersion)
            }
            FaultAction::FutureTimestamps { .. } => quarantine(ReasonCode::FutureTimestamp),
            FaultAction::DuplicateEvents { .. } => "deduplicated".to_string(),
            FaultAction::LateEvents { .. } => "late".to_string(),
            FaultAction::VolumeDrop | FaultAction::SourceOutage => "dropped".to_string(),
            FaultAction::VolumeSpike { .. }
            | FaultAction::ValueOutlier { .. }
            | FaultAction::DistributionShift { .. }
            | FaultAction::OrphanReference => "stored".to_string(),
            FaultAction::JobFailure { .. } | FaultAction::JobDelay { .. } => "job".to_string(),
            FaultAction::DatabaseOutage => "outage".to_string(),
        }
    }

    /// The resolved parameters as a JSON object.
    pub fn params_json(&self) -> Value {
        match self {
            FaultAction::MissingField { field }
            | FaultAction::NullField { field }
            | FaultAction::TypeChange { field } => json!({ "field": field }),
            FaultAction::SchemaDrift(SchemaDrift::Rename { field, to }) => {
                json!({ "rename": field, "to": to })
            }
            FaultAction::SchemaDrift(SchemaDrift::Version(version)) => {
                json!({ "version": version })
            }
            FaultAction::InvalidSchemaVersion { value } => json!({ "value": value }),
            FaultAction::DuplicateEvents { copies, delay } => {
                json!({ "copies": copies, "delay": format_iso_duration(*delay) })
            }
            FaultAction::LateEvents { delay } | FaultAction::JobDelay { delay } => {
                json!({ "delay": format_iso_duration(*delay) })
            }
            FaultAction::FutureTimestamps { skew } => {
                json!({ "skew": format_iso_duration(*skew) })
            }
            FaultAction::VolumeSpike { factor } => json!({ "factor": factor }),
            FaultAction::ValueOutlier { field, factor } => {
                json!({ "field": field, "factor": factor })
            }
            FaultAction::DistributionShift { field, to } => json!({ "field": field, "to": to }),
            FaultAction::JobFailure { message, failures }
                if message.is_some() || failures.is_some() =>
            {
                let mut v = json!({});
                if let Some(m) = message {
                    v["value"] = json!(m);
                }
                if let Some(n) = failures {
                    v["failures"] = json!(n);
                }
                v
            }
            FaultAction::MalformedJson
            | FaultAction::EncodingCorruption
            | FaultAction::VolumeDrop
            | FaultAction::SourceOutage
            | FaultAction::OrphanReference
            | FaultAction::DatabaseOutage
            | FaultAction::JobFailure { .. } => json!({}),
        }
    }
}

/// The parameter keys each fault kind accepts.
fn allowed(kind: FaultKind) -> &'static [&'static str] {
    match kind {
        FaultKind::MalformedJson
        | FaultKind::EncodingCorruption
        | FaultKind::VolumeDrop
        | FaultKind::SourceOutage
        | FaultKind::OrphanReference
        | FaultKind::DatabaseOutage => &[],
        FaultKind::MissingField | FaultKind::NullField | FaultKind::TypeChange => &["field"],
        FaultKind::SchemaDrift => &["rename", "field", "to", "version"],
        FaultKind::InvalidSchemaVersion => &["value"],
        FaultKind::JobFailure => &["value", "failures"],
        FaultKind::DuplicateEvents => &["copies", "delay"],
        FaultKind::LateEvents | FaultKind::JobDelay => &["delay"],
        FaultKind::FutureTimestamps => &["skew"],
        FaultKind::VolumeSpike => &["factor"],
        FaultKind::ValueOutlier => &["field", "factor"],
        FaultKind::DistributionShift => &["field", "to"],
    }
}

struct Params<'a> {
    ctx: &'a Ctx<'a>,
    table: &'a toml::Table,
}

impl Params<'_> {
    fn key(name: &str) -> String {
        format!("params.{name}")
    }

    fn err(&self, name: &str, message: impl Into<String>) -> ScenarioError {
        let value = self
            .table
            .get(name)
            .map(|v| v.to_string())
            .unwrap_or_else(|| "(absent)".to_string());
        self.ctx.err(&Self::key(name), value, message)
    }

    fn string(&self, name: &str) -> Result<Option<&str>, ScenarioError> {
        match self.table.get(name) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(self.err(name, "must be a string")),
        }
    }

    fn number(&self, name: &str) -> Result<Option<f64>, ScenarioError> {
        match self.table.get(name) {
            None => Ok(None),
            Some(toml::Value::Float(f)) => Ok(Some(*f)),
            Some(toml::Value::Integer(i)) => Ok(Some(*i as f64)),
            Some(_) => Err(self.err(name, "must be a number")),
        }
    }

    fn duration(&self, name: &str, default: Duration) -> Result<Duration, ScenarioError> {
        let Some(text) = self.string(name)? else {
            return Ok(default);
        };
        let d = parse_iso_duration(text).map_err(|e| self.err(name, e))?;
        if d <= Duration::zero() {
            return Err(self.err(name, "must be a positive ISO-8601 duration"));
        }
        Ok(d)
    }

    fn factor(
        &self,
        default: f64,
        valid: impl Fn(f64) -> bool,
        rule: &str,
    ) -> Result<f64, ScenarioError> {
        let factor = self.number("factor")?.unwrap_or(default);
        if factor.is_finite() && valid(factor) {
            Ok(factor)
        } else {
            Err(self.err("factor", rule.to_string()))
        }
    }

    /// The field named by `key` (or the default), checked against the target and the use.
    fn field(
        &self,
        key: &str,
        target: &Target,
        usage: FieldUse<'_>,
    ) -> Result<&'static str, ScenarioError> {
        let Target::Event(kind) = *target else {
            return Err(self.err(key, "field faults need a single event target"));
        };
        let field = match self.string(key)? {
            Some(name) => fields::resolve(kind, name.trim()).ok_or_else(|| {
                self.err(
                    key,
                    format!(
                        "{} events have no such field; known fields: {}",
                        kind.target_name(),
                        fields::known(kind).join(", ")
                    ),
                )
            })?,
            None => fields::default_field(kind, usage).ok_or_else(|| {
                self.err(
                    key,
                    format!(
                        "{} events have no default field for this fault; set params.{key}",
                        kind.target_name()
                    ),
                )
            })?,
        };
        match usage {
            FieldUse::Scale if !fields::NUMERIC.contains(&field) => {
                return Err(self.err(
                    key,
                    format!(
                        "`{field}` is not numeric; value_outlier scales one of {}",
                        fields::NUMERIC.join(", ")
                    ),
                ))
            }
            FieldUse::Categorical if fields::default_shift_value(field).is_none() => {
                let names: Vec<&str> = fields::CATEGORICAL.iter().map(|(n, _)| *n).collect();
                return Err(self.err(
                    key,
                    format!(
                        "`{field}` is not categorical; distribution_shift forces one of {}",
                        names.join(", ")
                    ),
                ));
            }
            _ => {}
        }
        if fields::eligible_versions(kind, field, usage).is_empty() {
            let why = match usage {
                FieldUse::Remove | FieldUse::Null | FieldUse::Rename(_) => format!(
                    "`{field}` is optional in every schema version of {} events, so the decoder would accept the event; choose a required field",
                    kind.target_name()
                ),
                _ => format!(
                    "`{field}` does not exist in any schema version of {} events",
                    kind.target_name()
                ),
            };
            return Err(self.err(key, why));
        }
        Ok(field)
    }
}

/// Mirrors the decoder's test for "a version number we do not know" (→ unknown_schema_version)
/// as opposed to "not a version number" (→ invalid_schema_version).
fn looks_like_version(raw: &str) -> bool {
    let t = raw.trim_start_matches(['v', 'V']);
    !t.is_empty()
        && t.split('.').count() <= 3
        && t.split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// Checks the `params` table of a fault and resolves it with the kind's defaults.
pub(super) fn resolve(
    ctx: &Ctx<'_>,
    kind: FaultKind,
    target: &Target,
    table: &toml::Table,
) -> Result<FaultAction, ScenarioError> {
    let accepted = allowed(kind);
    for key in table.keys() {
        if !accepted.contains(&key.as_str()) {
            let hint = if accepted.is_empty() {
                format!("{kind} takes no parameters")
            } else {
                format!("{kind} accepts {}", accepted.join(", "))
            };
            return Err(ctx.err(
                &Params::key(key),
                table[key].to_string(),
                format!("unknown parameter; {hint}"),
            ));
        }
    }
    let p = Params { ctx, table };
    Ok(match kind {
        FaultKind::MalformedJson => FaultAction::MalformedJson,
        FaultKind::EncodingCorruption => FaultAction::EncodingCorruption,
        FaultKind::MissingField => FaultAction::MissingField {
            field: p.field("field", target, FieldUse::Remove)?,
        },
        FaultKind::NullField => FaultAction::NullField {
            field: p.field("field", target, FieldUse::Null)?,
        },
        FaultKind::TypeChange => FaultAction::TypeChange {
            field: p.field("field", target, FieldUse::Retype)?,
        },
        FaultKind::SchemaDrift => schema_drift(&p, target)?,
        FaultKind::InvalidSchemaVersion => {
            let value = match table.get("value") {
                None => Value::String("banana".to_string()),
                Some(toml::Value::String(s)) => {
                    if SchemaVersion::parse(s).is_some() || looks_like_version(s) {
                        return Err(p.err(
                            "value",
                            "looks like a version number; use schema_drift with params.version for an unknown version",
                        ));
                    }
                    Value::String(s.clone())
                }
                Some(toml::Value::Integer(i)) => json!(i),
                Some(toml::Value::Float(f)) => json!(f),
                Some(toml::Value::Boolean(b)) => json!(b),
                Some(_) => return Err(p.err("value", "must be a string, number or boolean")),
            };
            FaultAction::InvalidSchemaVersion { value }
        }
        FaultKind::DuplicateEvents => {
            let copies = p.number("copies")?.unwrap_or(1.0);
            if !(copies.fract() == 0.0 && (1.0..=100.0).contains(&copies)) {
                return Err(p.err(
                    "copies",
                    "must be a whole number of extra copies from 1 to 100",
                ));
            }
            FaultAction::DuplicateEvents {
                copies: copies as u32,
                delay: p.duration("delay", Duration::minutes(1))?,
            }
        }
        FaultKind::LateEvents => FaultAction::LateEvents {
            delay: p.duration("delay", Duration::hours(6))?,
        },
        FaultKind::FutureTimestamps => FaultAction::FutureTimestamps {
            skew: p.duration("skew", Duration::days(1))?,
        },
        FaultKind::VolumeDrop => FaultAction::VolumeDrop,
        FaultKind::SourceOutage => FaultAction::SourceOutage,
        FaultKind::VolumeSpike => FaultAction::VolumeSpike {
            factor: p.factor(
                5.0,
                |f| f > 1.0 && f <= 100.0,
                "must be a multiple of the normal volume above 1 and at most 100",
            )?,
        },
        FaultKind::ValueOutlier => FaultAction::ValueOutlier {
            field: p.field("field", target, FieldUse::Scale)?,
            factor: p.factor(
                100.0,
                |f| f > 0.0 && f != 1.0 && f <= 1.0e6,
                "must be a positive multiplier other than 1, at most 1000000",
            )?,
        },
        FaultKind::DistributionShift => {
            let field = p.field("field", target, FieldUse::Categorical)?;
            let to = match p.string("to")? {
                Some(to)
                    if to.trim().is_empty() || to.chars().count() > 64 || to.contains('\0') =>
                {
                    return Err(p.err("to", "must be a non-empty value of at most 64 characters"))
                }
                Some(to) => to.to_string(),
                None => fields::default_shift_value(field)
                    .unwrap_or_default()
                    .to_string(),
            };
            FaultAction::DistributionShift { field, to }
        }
        FaultKind::OrphanReference => FaultAction::OrphanReference,
        FaultKind::JobFailure => {
            let failures = match p.number("failures")? {
                None => None,
                Some(n) if n.fract() == 0.0 && (1.0..=100.0).contains(&n) => Some(n as u32),
                Some(_) => {
                    return Err(p.err(
                        "failures",
                        "must be a whole number of failed attempts from 1 to 100",
                    ))
                }
            };
            FaultAction::JobFailure {
                message: p.string("value")?.map(str::to_string),
                failures,
            }
        }
        FaultKind::JobDelay => FaultAction::JobDelay {
            delay: p.duration("delay", Duration::hours(2))?,
        },
        FaultKind::DatabaseOutage => FaultAction::DatabaseOutage,
    })
}

fn schema_drift(p: &Params<'_>, target: &Target) -> Result<FaultAction, ScenarioError> {
    let version = p.string("version")?;
    let renames = ["rename", "field", "to"]
        .into_iter()
        .find(|k| p.table.contains_key(*k));
    if let Some(version) = version {
        if let Some(key) = renames {
            return Err(p.err(
                key,
                "a schema drift either renames a field or sets params.version, not both",
            ));
        }
        if SchemaVersion::parse(version).is_some() {
            return Err(p.err(
                "version",
                "is a known schema version (1.0, 2.0, 3.0); the events would decode",
            ));
        }
        if !looks_like_version(version) {
            return Err(p.err(
                "version",
                "is not a version number like 4.0; use invalid_schema_version for garbage",
            ));
        }
        return Ok(FaultAction::SchemaDrift(SchemaDrift::Version(
            version.to_string(),
        )));
    }
    if p.table.contains_key("rename") && p.table.contains_key("field") {
        return Err(p.err("field", "give the field to rename once, as params.rename"));
    }
    let key = if p.table.contains_key("field") {
        "field"
    } else {
        "rename"
    };
    // Resolve the field first (for the default `to`), then check `to` against it.
    let field = p.field(key, target, FieldUse::Remove)?;
    let to = match p.string("to")? {
        Some(to) => to.trim().to_string(),
        None => format!("{field}_v2"),
    };
    if to.is_empty() || to.len() > 64 || to.contains(['\0', '"']) {
        return Err(p.err("to", "must be a non-empty key of at most 64 characters"));
    }
    let Target::Event(kind) = *target else {
        return Err(p.err(key, "schema drift needs a single event target"));
    };
    if fields::eligible_versions(kind, field, FieldUse::Rename(&to)).is_empty() {
        return Err(p.err(
            "to",
            format!("is already a known key next to `{field}` in every schema version; the rename would not drift"),
        ));
    }
    Ok(FaultAction::SchemaDrift(SchemaDrift::Rename { field, to }))
}
