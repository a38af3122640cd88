//! The checks file: which checks run on which datasets, with their thresholds. TOML, one
//! `[[check]]` table per check, an optional `[defaults]` table and the special days of
//! `[[calendar]]` (see [`crate::calendar`]). A file with a mistake is
//! refused as a whole when loaded, and the error names the file, the check and the key.
//!
//! Loading happens in two steps: [`ChecksFile::parse`] reads and validates the file against the
//! database's catalog (tables, columns, their types), so unknown datasets and columns are
//! caught before anything runs; [`crate::Quality::new`] then has PostgreSQL plan every query
//! the checks will run, so a filter, pattern or custom query that does not compile is refused
//! at start too, not at 3 a.m.

use crate::calendar::Calendar;
use chrono::Duration;
use heal_model::duration::{format_iso_duration, parse_iso_duration};
use heal_model::quality::Severity;
use heal_model::{EventKind, ReasonCode};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The shipped checks for the platform's own tables.
pub const DEFAULT_CHECKS: &str = include_str!("../checks.default.toml");
/// The name the shipped file is reported under.
pub const DEFAULT_CHECKS_NAME: &str = "checks.default.toml (built in)";

/// The shipped check meant to catch each fault kind of the scenario format, and the dataset
/// its failure names (what the fault tests and `heal bench quality` hold the checks to).
/// None for an outage: the role that cannot write reports it, not a check.
pub fn catching(kind: heal_model::FaultKind) -> Option<(&'static str, &'static str)> {
    use heal_model::FaultKind as K;
    Some(match kind {
        K::MalformedJson => ("product_views_schema", "product_views"),
        K::EncodingCorruption => ("users_schema", "users"),
        K::MissingField => ("orders_schema", "orders"),
        K::NullField | K::SchemaDrift => ("payments_schema", "payments"),
        K::TypeChange => ("cart_items_schema", "cart_items"),
        K::InvalidSchemaVersion => ("sessions_schema", "sessions"),
        K::DuplicateEvents => ("payments_unique", "payments"),
        K::LateEvents => ("orders_on_time", "orders"),
        K::FutureTimestamps => ("sessions_timestamps", "sessions"),
        K::VolumeDrop => ("raw_events_volume", "raw_events"),
        K::VolumeSpike => ("product_views_volume", "product_views"),
        K::SourceOutage => ("raw_events_freshness", "raw_events"),
        K::ValueOutlier => ("orders_amount_distribution", "orders"),
        K::DistributionShift => ("payments_method_mix", "payments"),
        K::OrphanReference => ("payments_reference_orders", "payments"),
        K::JobFailure | K::JobDelay => ("pipeline_health", "daily_revenue"),
        K::DatabaseOutage => return None,
    })
}

/// A checks file that cannot be used: where, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}: {}{key}: {message}", check.as_ref().map(|c| format!("check {c:?}: ")).unwrap_or_default())]
pub struct ChecksError {
    pub file: String,
    pub check: Option<String>,
    pub key: String,
    pub message: String,
}

/// Tables and their columns (name → data type), as the database reports them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    pub tables: BTreeMap<String, BTreeMap<String, String>>,
}

impl Catalog {
    /// The tables and columns of the current schema.
    pub async fn load(pool: &sqlx::PgPool) -> Result<Catalog, sqlx::Error> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT table_name::text, column_name::text, data_type::text
             FROM information_schema.columns WHERE table_schema = current_schema()",
        )
        .fetch_all(pool)
        .await?;
        let mut tables: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (t, c, ty) in rows {
            tables.entry(t).or_default().insert(c, ty);
        }
        Ok(Catalog { tables })
    }

    fn column_type(&self, table: &str, column: &str) -> Option<&str> {
        self.tables.get(table)?.get(column).map(String::as_str)
    }
}

/// The event kind whose events the ingest role writes to `table`, if any.
pub fn event_kind_of(table: &str) -> Option<EventKind> {
    EventKind::ALL.into_iter().find(|k| k.table() == table)
}

/// The time column of the platform's own tables.
fn default_time_column(table: &str) -> Option<&'static str> {
    Some(match table {
        "raw_events" => "occurred_at",
        "users" => "signed_up_at",
        "sessions" => "started_at",
        "product_views" => "viewed_at",
        "cart_items" => "added_at",
        "orders" => "placed_at",
        "payments" => "processed_at",
        "refunds" => "refunded_at",
        "quarantine" => "received_at",
        _ => return None,
    })
}

/// Which way an anomaly counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Both,
    Drop,
    Spike,
}

/// Anomaly detection on a check's metric history.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Anomaly {
    pub sensitivity: f64,
    pub direction: Direction,
}

/// A validity rule on one column.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Rule {
    Range {
        min: Option<f64>,
        max: Option<f64>,
    },
    Values {
        values: Vec<String>,
    },
    Pattern {
        pattern: String,
    },
    /// Event times past their arrival: the events of the dataset the ingest role refused as
    /// `future_timestamp` since the last run (any one fails the check).
    NotFuture,
}

/// One side of a reconciliation: an aggregate of a dataset per day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Side {
    pub dataset: String,
    pub value: String,
    pub time: String,
    pub filter: Option<String>,
}

/// What a check measures, with its type's parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CheckKind {
    Freshness {
        #[serde(serialize_with = "iso")]
        max_age: Duration,
    },
    Volume {
        min_rows: Option<f64>,
        max_rows: Option<f64>,
    },
    Completeness {
        columns: Vec<String>,
        max_null_rate: f64,
    },
    Uniqueness {
        key: Vec<String>,
        max_duplicate_rate: f64,
    },
    Validity {
        column: String,
        #[serde(flatten)]
        rule: Rule,
        max_invalid_rate: f64,
    },
    Referential {
        column: String,
        parent: String,
        parent_column: String,
        #[serde(serialize_with = "iso")]
        grace: Duration,
        max_orphan_rate: f64,
    },
    Distribution {
        column: String,
        numeric: bool,
        #[serde(serialize_with = "iso")]
        baseline: Duration,
        max_psi: f64,
        min_rows: i64,
    },
    Reconciliation {
        left: Side,
        right: Side,
        min_ratio: f64,
        max_ratio: f64,
    },
    Schema {
        reasons: Vec<String>,
        max_rows: i64,
    },
    Pipeline {
        jobs: Vec<String>,
        #[serde(serialize_with = "iso")]
        max_delay: Duration,
        max_quarantine_rate: f64,
    },
    CustomSql {
        sql: String,
        max_rows: i64,
    },
    /// Two streams judged together: rows of the dataset per row of `of` in each window,
    /// against that ratio over the `baseline` before the window. The numerator is taken as
    /// Poisson around `ratio · rows of of` with the over-dispersion the baseline's own windows
    /// show; a score beyond `sensitivity` fails (orders up while payments stay flat, even when
    /// each stream is inside its own band).
    Relation {
        of: String,
        of_time: String,
        of_filter: Option<String>,
        #[serde(serialize_with = "iso")]
        baseline: Duration,
        /// Rows of `of` a window needs to be judged.
        min_rows: i64,
        sensitivity: f64,
    },
    /// Live: a kind of event that stopped arriving on the wall clock while traffic at this
    /// time of day says it should come (judged each cycle, so an outage is open while it
    /// lasts). One subject per event kind of the dataset (`raw_events`: every kind).
    Staleness {
        #[serde(serialize_with = "iso")]
        max_silence: Duration,
        /// Events the same stretch of the day brought in earlier days (median) below which a
        /// silence is not judged (a quiet hour of a rare kind is no outage).
        min_expected: f64,
    },
}

impl CheckKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            CheckKind::Freshness { .. } => "freshness",
            CheckKind::Volume { .. } => "volume",
            CheckKind::Completeness { .. } => "completeness",
            CheckKind::Uniqueness { .. } => "uniqueness",
            CheckKind::Validity { .. } => "validity",
            CheckKind::Referential { .. } => "referential",
            CheckKind::Distribution { .. } => "distribution",
            CheckKind::Reconciliation { .. } => "reconciliation",
            CheckKind::Schema { .. } => "schema",
            CheckKind::Pipeline { .. } => "pipeline",
            CheckKind::CustomSql { .. } => "custom_sql",
            CheckKind::Staleness { .. } => "staleness",
            CheckKind::Relation { .. } => "relation",
        }
    }

    /// Checks that judge what arrived since their last run (quarantine rows, job runs) rather
    /// than windows of event time.
    pub fn incremental(&self) -> bool {
        matches!(
            self,
            CheckKind::Schema { .. }
                | CheckKind::Pipeline { .. }
                | CheckKind::Staleness { .. }
                | CheckKind::Validity {
                    rule: Rule::NotFuture,
                    ..
                }
        )
    }
}

fn iso<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_iso_duration(*d))
}

/// A validated check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: String,
    pub description: Option<String>,
    pub dataset: String,
    /// The column the check is about, when there is one.
    pub column: Option<String>,
    /// Event-time column windows are cut on.
    pub time: Option<String>,
    /// Extra SQL condition on the dataset's rows.
    pub filter: Option<String>,
    pub severity: Severity,
    #[serde(flatten)]
    pub kind: CheckKind,
    /// Step of the windows judged (and of the metric history).
    #[serde(serialize_with = "iso")]
    pub every: Duration,
    /// Length of each window (≥ `every`; longer windows overlap).
    #[serde(serialize_with = "iso")]
    pub window: Duration,
    /// Time after a window's end before it is judged (out-of-order arrivals).
    #[serde(serialize_with = "iso")]
    pub settle: Duration,
    /// Windows this recent are judged again each cycle (late data changes them).
    #[serde(serialize_with = "iso")]
    pub lookback: Duration,
    /// How far back the first cycle starts.
    #[serde(serialize_with = "iso")]
    pub history: Duration,
    pub anomaly: Option<Anomaly>,
    /// Passing results in a row that resolve an open condition.
    pub clear_after: u32,
    /// Jobs whose completion triggers this check at once.
    pub after_jobs: Vec<String>,
}

/// A loaded checks file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChecksFile {
    pub source: String,
    pub checks: Vec<Check>,
    /// Declared special days (`[[calendar]]`), which volume checks judge by their kind.
    pub calendar: Calendar,
}

const TYPES: [&str; 13] = [
    "freshness",
    "volume",
    "completeness",
    "uniqueness",
    "validity",
    "referential",
    "distribution",
    "reconciliation",
    "schema",
    "pipeline",
    "custom_sql",
    "staleness",
    "relation",
];

/// Keys every check may have.
const COMMON: [&str; 16] = [
    "name",
    "type",
    "description",
    "dataset",
    "time",
    "filter",
    "severity",
    "every",
    "window",
    "settle",
    "lookback",
    "history",
    "anomaly",
    "sensitivity",
    "direction",
    "clear_after",
];

fn type_keys(ty: &str) -> &'static [&'static str] {
    match ty {
        "freshness" => &["max_age"],
        "volume" => &["min_rows", "max_rows"],
        "completeness" => &["columns", "max_null_rate"],
        "uniqueness" => &["key", "max_duplicate_rate"],
        "validity" => &[
            "column",
            "min",
            "max",
            "values",
            "pattern",
            "rule",
            "max_invalid_rate",
        ],
        "referential" => &["column", "references", "grace", "max_orphan_rate"],
        "distribution" => &["column", "kind", "baseline", "max_psi", "min_rows"],
        "reconciliation" => &["left", "right", "min_ratio", "max_ratio"],
        "schema" => &["reasons", "max_rows"],
        "pipeline" => &["jobs", "max_delay", "max_quarantine_rate"],
        "custom_sql" => &["sql", "max_rows"],
        "staleness" => &["max_silence", "min_expected"],
        "relation" => &["of", "of_time", "of_filter", "baseline", "min_rows"],
        _ => &[],
    }
}

/// Reasons of the ingest role that mean a payload did not fit its schema.
pub const SCHEMA_REASONS: [ReasonCode; 10] = [
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
];

/// The values of the `[defaults]` table (or the built-in ones).
#[derive(Debug, Clone)]
struct Defaults {
    severity: Severity,
    sensitivity: f64,
    every: Duration,
    settle: Duration,
    lookback: Duration,
    history: Duration,
    clear_after: u32,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            severity: Severity::Medium,
            sensitivity: 5.0,
            every: Duration::hours(1),
            settle: Duration::minutes(10),
            lookback: Duration::hours(6),
            history: Duration::days(14),
            clear_after: 2,
        }
    }
}

/// A checks file as written. Serde reads its shape (unknown keys and wrong types are refused
/// with the key they concern); the catalogue pass that follows ([`parse_check`]) decides what
/// it means for this database.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    defaults: Option<RawDefaults>,
    /// Each `[[check]]` is read on its own, so that its errors name it.
    #[serde(default)]
    check: Vec<toml::Table>,
    calendar: Option<toml::Value>,
    builtin: Option<bool>,
    generate: Option<bool>,
    off: Option<OneOrMany>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    severity: Option<String>,
    sensitivity: Option<f64>,
    every: Option<String>,
    settle: Option<String>,
    lookback: Option<String>,
    history: Option<String>,
    clear_after: Option<f64>,
}

/// One string or a list of them (`key = "order_id"` or `key = ["user_id", "day"]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Every key a check may have; which of them its type takes is [`type_keys`]'s business.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    /// Read (and validated) before the rest, to name the check in errors.
    #[serde(rename = "name")]
    _name: Option<toml::Value>,
    /// Read before the rest: it decides which keys the check takes.
    #[serde(rename = "type")]
    _type: Option<toml::Value>,
    description: Option<String>,
    dataset: Option<String>,
    time: Option<String>,
    filter: Option<String>,
    severity: Option<String>,
    every: Option<String>,
    window: Option<String>,
    settle: Option<String>,
    lookback: Option<String>,
    history: Option<String>,
    anomaly: Option<bool>,
    sensitivity: Option<f64>,
    direction: Option<String>,
    clear_after: Option<f64>,
    max_age: Option<String>,
    min_rows: Option<f64>,
    max_rows: Option<f64>,
    columns: Option<OneOrMany>,
    max_null_rate: Option<f64>,
    key: Option<OneOrMany>,
    max_duplicate_rate: Option<f64>,
    column: Option<String>,
    min: Option<f64>,
    max: Option<f64>,
    values: Option<OneOrMany>,
    pattern: Option<String>,
    rule: Option<String>,
    max_invalid_rate: Option<f64>,
    references: Option<String>,
    grace: Option<String>,
    max_orphan_rate: Option<f64>,
    kind: Option<String>,
    baseline: Option<String>,
    max_psi: Option<f64>,
    left: Option<RawSide>,
    right: Option<RawSide>,
    min_ratio: Option<f64>,
    max_ratio: Option<f64>,
    reasons: Option<OneOrMany>,
    jobs: Option<OneOrMany>,
    max_delay: Option<String>,
    max_quarantine_rate: Option<f64>,
    sql: Option<String>,
    max_silence: Option<String>,
    min_expected: Option<f64>,
    of: Option<String>,
    of_time: Option<String>,
    of_filter: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSide {
    dataset: Option<String>,
    value: Option<String>,
    time: Option<String>,
    filter: Option<String>,
}

/// Reads `value` as `T`; an error names the key it concerns (under `prefix`, e.g. `left.`).
fn read<T: serde::de::DeserializeOwned>(value: toml::Value, cx: &Cx<'_>) -> Result<T, ChecksError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.message().trim().to_string();
        // An unknown key is reported at the key itself.
        if let Some(rest) = message.strip_prefix("unknown field `") {
            let key = rest.split('`').next().unwrap_or_default();
            let key = if path == "." {
                key.to_string()
            } else if path == key || path.ends_with(&format!(".{key}")) {
                path.clone()
            } else {
                format!("{path}.{key}")
            };
            return cx.err(&key, format!("unknown key; {message}"));
        }
        cx.err(if path == "." { "" } else { path.as_str() }, message)
    })
}

/// Where a value was read: the file, the check and the key prefix errors name.
struct Cx<'a> {
    file: &'a str,
    check: Option<String>,
    prefix: String,
}

impl Cx<'_> {
    fn err(&self, key: &str, message: impl Into<String>) -> ChecksError {
        ChecksError {
            file: self.file.to_string(),
            check: self.check.clone(),
            key: format!("{}{key}", self.prefix),
            message: message.into(),
        }
    }

    /// A string that must not be blank when given.
    fn text(&self, key: &str, v: Option<String>) -> Result<Option<String>, ChecksError> {
        match v {
            Some(s) if s.trim().is_empty() => Err(self.err(key, "must not be empty")),
            v => Ok(v),
        }
    }

    fn required(&self, key: &str, v: Option<String>) -> Result<String, ChecksError> {
        self.text(key, v)?
            .ok_or_else(|| self.err(key, "is required for this check type"))
    }

    fn number(&self, key: &str, v: Option<f64>) -> Result<Option<f64>, ChecksError> {
        match v {
            Some(n) if !n.is_finite() => Err(self.err(key, format!("{n} is not a number"))),
            v => Ok(v),
        }
    }

    fn rate(&self, key: &str, v: Option<f64>, default: f64) -> Result<f64, ChecksError> {
        match self.number(key, v)? {
            None => Ok(default),
            Some(r) if (0.0..=1.0).contains(&r) => Ok(r),
            Some(r) => Err(self.err(key, format!("{r} is not a rate between 0 and 1"))),
        }
    }

    fn count(&self, key: &str, v: Option<f64>, default: i64) -> Result<i64, ChecksError> {
        match self.number(key, v)? {
            None => Ok(default),
            Some(n) if n >= 0.0 && n.fract() == 0.0 => Ok(n as i64),
            Some(n) => Err(self.err(key, format!("{n} is not a whole number ≥ 0"))),
        }
    }

    /// An ISO 8601 duration longer than zero.
    fn duration(&self, key: &str, v: Option<String>) -> Result<Option<Duration>, ChecksError> {
        let Some(text) = self.text(key, v)? else {
            return Ok(None);
        };
        let d = parse_iso_duration(&text).map_err(|e| self.err(key, e))?;
        if d <= Duration::zero() {
            return Err(self.err(key, format!("{text:?} must be longer than zero")));
        }
        Ok(Some(d))
    }

    /// A non-empty list of strings (one string is a list of one).
    fn list(&self, key: &str, v: Option<OneOrMany>) -> Result<Option<Vec<String>>, ChecksError> {
        match v {
            None => Ok(None),
            Some(OneOrMany::One(s)) => Ok(Some(vec![s])),
            Some(OneOrMany::Many(list)) if list.is_empty() => {
                Err(self.err(key, "must not be empty"))
            }
            Some(OneOrMany::Many(list)) => Ok(Some(list)),
        }
    }
}

/// The keys of `table` outside `allowed` are refused, naming what the table takes.
fn only_keys(table: &toml::Table, allowed: &[&str], cx: &Cx<'_>) -> Result<(), ChecksError> {
    match table.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(cx.err(
            key,
            format!("unknown key; this table takes {}", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

impl ChecksFile {
    /// Reads a checks file from disk (see [`ChecksFile::parse`]).
    pub fn load(path: &Path, catalog: &Catalog) -> Result<ChecksFile, ChecksError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ChecksError {
            file: file.clone(),
            check: None,
            key: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &file, catalog)
    }

    /// The shipped checks.
    pub fn default_checks(catalog: &Catalog) -> Result<ChecksFile, ChecksError> {
        Self::parse(DEFAULT_CHECKS, DEFAULT_CHECKS_NAME, catalog)
    }

    /// Parses and validates `text` (named `file` in errors) against `catalog`.
    pub fn parse(text: &str, file: &str, catalog: &Catalog) -> Result<ChecksFile, ChecksError> {
        let top: toml::Table = text.parse().map_err(|e: toml::de::Error| ChecksError {
            file: file.to_string(),
            check: None,
            key: String::new(),
            message: format!("not valid TOML: {}", e.message()),
        })?;
        let root = Cx {
            file,
            check: None,
            prefix: String::new(),
        };
        only_keys(
            &top,
            &[
                "defaults", "check", "calendar", "builtin", "generate", "off",
            ],
            &root,
        )?;
        match top.get("check") {
            None => {}
            Some(toml::Value::Array(items)) => {
                if let Some(i) = items.iter().position(|v| !v.is_table()) {
                    return Err(root.err(&format!("check[{}]", i + 1), "must be a table"));
                }
            }
            Some(_) => return Err(root.err("check", "must be an array of tables ([[check]])")),
        }
        if let Some(d) = top.get("defaults") {
            let toml::Value::Table(t) = d else {
                return Err(root.err("defaults", "must be a table"));
            };
            let cx = Cx {
                file,
                check: None,
                prefix: "defaults.".into(),
            };
            only_keys(
                t,
                &[
                    "severity",
                    "sensitivity",
                    "every",
                    "settle",
                    "lookback",
                    "history",
                    "clear_after",
                ],
                &cx,
            )?;
        }
        let raw: RawFile = read(toml::Value::Table(top.clone()), &root)?;
        let builtin = raw.builtin.unwrap_or(false);
        let generate = raw.generate.unwrap_or(true);
        let off = root.list("off", raw.off)?.unwrap_or_default();
        let calendar = match &raw.calendar {
            Some(v) => Calendar::parse(v, file, catalog)?,
            None => Calendar::default(),
        };
        let mut defaults = Defaults::default();
        if let Some(d) = raw.defaults {
            let r = Cx {
                file,
                check: None,
                prefix: "defaults.".into(),
            };
            if let Some(s) = r.text("severity", d.severity)? {
                defaults.severity = s.parse().map_err(|e: String| r.err("severity", e))?;
            }
            if let Some(s) = r.number("sensitivity", d.sensitivity)? {
                if s <= 0.0 {
                    return Err(r.err("sensitivity", format!("{s} must be above 0")));
                }
                defaults.sensitivity = s;
            }
            defaults.every = r.duration("every", d.every)?.unwrap_or(defaults.every);
            defaults.settle = r.duration("settle", d.settle)?.unwrap_or(defaults.settle);
            defaults.lookback = r
                .duration("lookback", d.lookback)?
                .unwrap_or(defaults.lookback);
            defaults.history = r
                .duration("history", d.history)?
                .unwrap_or(defaults.history);
            defaults.clear_after =
                r.count("clear_after", d.clear_after, defaults.clear_after as i64)? as u32;
        }
        let mut checks = Vec::new();
        let mut names = BTreeSet::new();
        for (i, t) in raw.check.into_iter().enumerate() {
            let name = match t.get("name") {
                Some(toml::Value::String(s)) if valid_name(s) => s.clone(),
                Some(v) => {
                    return Err(ChecksError {
                        file: file.into(),
                        check: Some(format!("#{}", i + 1)),
                        key: "name".into(),
                        message: format!(
                            "{v} is not a name (letters, digits, _ . - only, at most 100)"
                        ),
                    })
                }
                None => {
                    return Err(ChecksError {
                        file: file.into(),
                        check: Some(format!("#{}", i + 1)),
                        key: "name".into(),
                        message: "every check needs a name".into(),
                    })
                }
            };
            let cx = Cx {
                file,
                check: Some(name.clone()),
                prefix: String::new(),
            };
            if !names.insert(name.clone()) {
                return Err(cx.err("name", "another check has this name"));
            }
            checks.push(parse_check(&cx, &t, name, &defaults, catalog)?);
        }
        let mut calendar = calendar;
        if builtin {
            // This file's checks override the shipped ones of the same name and add to them.
            let shipped = Self::default_checks(catalog)?;
            let mut merged: Vec<Check> = shipped
                .checks
                .into_iter()
                .filter(|c| !names.contains(&c.name))
                .collect();
            merged.append(&mut checks);
            checks = merged;
            calendar.days.extend(shipped.calendar.days);
        }
        if generate {
            for c in generated(&defaults, catalog, file)? {
                if !checks.iter().any(|have| have.name == c.name) {
                    checks.push(c);
                }
            }
        }
        for (i, name) in off.iter().enumerate() {
            let before = checks.len();
            checks.retain(|c| &c.name != name);
            if checks.len() == before {
                return Err(root.err(
                    &format!("off[{}]", i + 1),
                    format!(
                        "no check is named {name:?}{}",
                        if builtin {
                            ""
                        } else {
                            " (set builtin = true to switch off shipped checks)"
                        }
                    ),
                ));
            }
        }
        Ok(ChecksFile {
            source: file.to_string(),
            checks,
            calendar,
        })
    }

    pub fn get(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// The checks every event stream gets from the catalogue, named `<table>_<class>`: volume
/// (with the counts judgement), schema refusals, timestamps not in the future, arrival within
/// the allowed lateness, and uniqueness of its business key (or of the event id, which counts
/// events delivered more than once). A declared check of the same name overrides one, `off`
/// switches one off, and a stream the database lacks gets none. Freshness per stream is the
/// live `staleness` check's (one subject per event kind); referential, distribution and
/// relation checks need what the catalogue does not say and are declared.
fn generated(d: &Defaults, catalog: &Catalog, file: &str) -> Result<Vec<Check>, ChecksError> {
    let mut out = Vec::new();
    for kind in EventKind::ALL {
        let table = kind.table();
        let Some(columns) = catalog.tables.get(table) else {
            continue;
        };
        let time = kind.time_column();
        let key = kind.business_key().unwrap_or("event_id");
        let mut specs = vec![
            ("volume", r#"type = "volume""#.to_string()),
            ("schema", r#"type = "schema""#.to_string()),
            (
                "timestamps",
                format!(
                    r#"type = "validity"
rule = "not_future"
column = "{time}""#
                ),
            ),
            (
                "unique",
                format!(
                    r#"type = "uniqueness"
key = ["{key}"]"#
                ),
            ),
        ];
        if columns.contains_key("is_late") {
            specs.push((
                "on_time",
                r#"type = "validity"
column = "is_late"
values = ["false"]
max_invalid_rate = 0.02"#
                    .to_string(),
            ));
        }
        // A class whose column the table lacks is not generated.
        specs.retain(|(class, _)| match *class {
            "timestamps" => columns.contains_key(time),
            "unique" => columns.contains_key(key),
            _ => true,
        });
        for (class, spec) in specs {
            let mut t: toml::Table = spec.parse().expect("a generated check is valid TOML");
            t.insert("dataset".into(), table.into());
            t.insert(
                "description".into(),
                format!("Generated for the {} stream ({class})", kind.wire_name()).into(),
            );
            let name = format!("{table}_{class}");
            let cx = Cx {
                file,
                check: Some(name.clone()),
                prefix: String::new(),
            };
            out.push(parse_check(&cx, &t, name, d, catalog)?);
        }
    }
    Ok(out)
}

pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn dataset_column(
    r: &Cx<'_>,
    catalog: &Catalog,
    dataset: &str,
    key: &str,
    column: &str,
) -> Result<(), ChecksError> {
    if catalog.column_type(dataset, column).is_none() {
        let known: Vec<&String> = catalog
            .tables
            .get(dataset)
            .map(|c| c.keys().collect())
            .unwrap_or_default();
        return Err(r.err(
            key,
            format!(
                "{dataset} has no column {column:?}; its columns are {}",
                known
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(())
}

fn is_time_type(ty: &str) -> bool {
    ty.starts_with("timestamp") || ty == "date"
}

fn is_numeric_type(ty: &str) -> bool {
    matches!(
        ty,
        "bigint" | "integer" | "smallint" | "numeric" | "double precision" | "real"
    )
}

fn parse_check(
    r: &Cx<'_>,
    table: &toml::Table,
    name: String,
    d: &Defaults,
    catalog: &Catalog,
) -> Result<Check, ChecksError> {
    let ty = r.required(
        "type",
        table
            .get("type")
            .and_then(|v| v.as_str())
            .map(str::to_string),
    )?;
    if !TYPES.contains(&ty.as_str()) {
        return Err(r.err(
            "type",
            format!("unknown check type {ty:?}; use one of {}", TYPES.join(", ")),
        ));
    }
    let mut allowed: Vec<&str> = COMMON.to_vec();
    allowed.extend_from_slice(type_keys(&ty));
    only_keys(table, &allowed, r)?;
    let mut c: RawCheck = read(toml::Value::Table(table.clone()), r)?;

    let dataset = match (ty.as_str(), r.text("dataset", c.dataset.take())?) {
        ("pipeline", None) => "job_runs".to_string(),
        ("reconciliation", None) => String::new(),
        (_, None) => return Err(r.err("dataset", "is required")),
        (_, Some(ds)) => ds,
    };
    if !dataset.is_empty() && !catalog.tables.contains_key(&dataset) {
        return Err(r.err(
            "dataset",
            format!(
                "unknown dataset {dataset:?}; the database has {}",
                catalog
                    .tables
                    .keys()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let severity = match r.text("severity", c.severity.take())? {
        Some(s) => s.parse().map_err(|e: String| r.err("severity", e))?,
        None => d.severity,
    };
    let every = r
        .duration("every", c.every.take())?
        .unwrap_or(if ty == "reconciliation" {
            Duration::days(1)
        } else {
            d.every
        });
    if every < Duration::minutes(1) || Duration::days(1).num_seconds() % every.num_seconds() != 0 {
        return Err(r.err(
            "every",
            format!(
                "{} must be at least a minute and divide a day (PT5M, PT1H, P1D, …)",
                format_iso_duration(every)
            ),
        ));
    }
    let default_window = match ty.as_str() {
        "distribution" => Duration::hours(6).max(every),
        "relation" => Duration::hours(3).max(every),
        _ => every,
    };
    let window = r
        .duration("window", c.window.take())?
        .unwrap_or(default_window);
    if window < every || window.num_seconds() % every.num_seconds() != 0 {
        return Err(r.err(
            "window",
            format!(
                "{} must be a whole number of `every` steps ({})",
                format_iso_duration(window),
                format_iso_duration(every)
            ),
        ));
    }
    let settle = r.duration("settle", c.settle.take())?.unwrap_or(d.settle);
    let lookback = r
        .duration("lookback", c.lookback.take())?
        .unwrap_or(d.lookback);
    let history = r
        .duration("history", c.history.take())?
        .unwrap_or(d.history);
    let clear_after = r
        .count("clear_after", c.clear_after, d.clear_after as i64)?
        .max(1) as u32;
    let filter = r.text("filter", c.filter.take())?;

    let time = if matches!(
        ty.as_str(),
        "reconciliation" | "pipeline" | "schema" | "staleness"
    ) {
        None
    } else {
        match r.text("time", c.time.take())? {
            Some(col) => Some(col),
            None => default_time_column(&dataset)
                .map(str::to_string)
                .or_else(|| {
                    catalog
                        .column_type(&dataset, "day")
                        .filter(|t| *t == "date")
                        .map(|_| "day".to_string())
                }),
        }
    };
    let windowed = !matches!(
        ty.as_str(),
        "pipeline" | "schema" | "reconciliation" | "staleness"
    );
    if let Some(col) = &time {
        dataset_column(r, catalog, &dataset, "time", col)?;
        let t = catalog.column_type(&dataset, col).unwrap_or_default();
        if !is_time_type(t) {
            return Err(r.err("time", format!("{col} is a {t}, not a timestamp or date")));
        }
        if t == "date" && every < Duration::days(1) {
            return Err(r.err(
                "every",
                format!(
                    "{col} is a date: windows of {} cannot be cut from it; use every = \"P1D\"",
                    format_iso_duration(every)
                ),
            ));
        }
    } else if windowed && ty != "custom_sql" {
        return Err(r.err(
            "time",
            format!("{dataset} has no known event-time column: name one"),
        ));
    }

    let anomaly_on = c.anomaly.unwrap_or(ty == "volume");
    let sensitivity = match r.number("sensitivity", c.sensitivity)? {
        Some(s) if s > 0.0 => s,
        Some(s) => return Err(r.err("sensitivity", format!("{s} must be above 0"))),
        None => d.sensitivity,
    };
    let direction = match r.text("direction", c.direction.take())?.as_deref() {
        None | Some("both") => Direction::Both,
        Some("drop") => Direction::Drop,
        Some("spike") => Direction::Spike,
        Some(other) => {
            return Err(r.err("direction", format!("{other:?}: use both, drop or spike")))
        }
    };
    let anomaly = match (anomaly_on, ty.as_str()) {
        (true, "volume" | "freshness" | "distribution" | "completeness") => Some(Anomaly {
            sensitivity,
            direction,
        }),
        (true, _) => return Err(r.err(
            "anomaly",
            "anomaly detection applies to volume, freshness, completeness and distribution checks",
        )),
        (false, _) => None,
    };
    let after_jobs = Vec::new();

    let mut column = None;
    let kind = match ty.as_str() {
        "freshness" => CheckKind::Freshness {
            max_age: r
                .duration("max_age", c.max_age.take())?
                .ok_or_else(|| r.err("max_age", "is required (e.g. PT30M)"))?,
        },
        "volume" => {
            let min_rows = r.number("min_rows", c.min_rows)?;
            let max_rows = r.number("max_rows", c.max_rows)?;
            if let (Some(lo), Some(hi)) = (min_rows, max_rows) {
                if lo > hi {
                    return Err(r.err("min_rows", format!("{lo} is above max_rows {hi}")));
                }
            }
            CheckKind::Volume { min_rows, max_rows }
        }
        "completeness" => {
            let columns = r
                .list("columns", c.columns.take())?
                .ok_or_else(|| r.err("columns", "is required"))?;
            for c in &columns {
                dataset_column(r, catalog, &dataset, "columns", c)?;
            }
            column = columns.first().cloned();
            CheckKind::Completeness {
                columns,
                max_null_rate: r.rate("max_null_rate", c.max_null_rate, 0.0)?,
            }
        }
        "uniqueness" => {
            let key = r
                .list("key", c.key.take())?
                .ok_or_else(|| r.err("key", "is required"))?;
            for c in &key {
                dataset_column(r, catalog, &dataset, "key", c)?;
            }
            column = Some(key.join(","));
            CheckKind::Uniqueness {
                key,
                max_duplicate_rate: r.rate("max_duplicate_rate", c.max_duplicate_rate, 0.0)?,
            }
        }
        "validity" => {
            let col = r.required("column", c.column.take())?;
            dataset_column(r, catalog, &dataset, "column", &col)?;
            let col_type = catalog.column_type(&dataset, &col).unwrap_or_default();
            let (min, max) = (r.number("min", c.min)?, r.number("max", c.max)?);
            let values = r.list("values", c.values.take())?;
            let pattern = r.text("pattern", c.pattern.take())?;
            let named = r.text("rule", c.rule.take())?;
            let given = [
                min.is_some() || max.is_some(),
                values.is_some(),
                pattern.is_some(),
                named.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if given != 1 {
                return Err(r.err(
                    "rule",
                    "give exactly one rule: min/max, values, pattern, or rule = \"not_future\"",
                ));
            }
            let rule = if let Some(n) = named {
                if n != "not_future" {
                    return Err(r.err("rule", format!("{n:?}: the named rule is not_future")));
                }
                if !is_time_type(col_type) {
                    return Err(r.err("column", format!("{col} is a {col_type}, not a time")));
                }
                if event_kind_of(&dataset).is_none() {
                    return Err(r.err(
                        "rule",
                        "not_future reads the ingest quarantine: use it on a table the ingest role writes",
                    ));
                }
                if c.max_invalid_rate.is_some() {
                    return Err(r.err(
                        "max_invalid_rate",
                        "not_future counts refused events (any one fails): it takes no rate",
                    ));
                }
                Rule::NotFuture
            } else if let Some(values) = values {
                Rule::Values { values }
            } else if let Some(pattern) = pattern {
                Rule::Pattern { pattern }
            } else {
                if !is_numeric_type(col_type) {
                    return Err(r.err(
                        "min",
                        format!("{col} is a {col_type}; min/max need a number column"),
                    ));
                }
                if let (Some(lo), Some(hi)) = (min, max) {
                    if lo > hi {
                        return Err(r.err("min", format!("{lo} is above max {hi}")));
                    }
                }
                Rule::Range { min, max }
            };
            column = Some(col.clone());
            CheckKind::Validity {
                column: col,
                rule,
                max_invalid_rate: r.rate("max_invalid_rate", c.max_invalid_rate, 0.0)?,
            }
        }
        "referential" => {
            let col = r.required("column", c.column.take())?;
            dataset_column(r, catalog, &dataset, "column", &col)?;
            let refs = r.required("references", c.references.take())?;
            let (parent, parent_column) = refs
                .split_once('.')
                .ok_or_else(|| r.err("references", format!("{refs:?}: write table.column")))?;
            if !catalog.tables.contains_key(parent) {
                return Err(r.err("references", format!("unknown dataset {parent:?}")));
            }
            dataset_column(r, catalog, parent, "references", parent_column)?;
            column = Some(col.clone());
            CheckKind::Referential {
                column: col,
                parent: parent.to_string(),
                parent_column: parent_column.to_string(),
                grace: r
                    .duration("grace", c.grace.take())?
                    .unwrap_or(Duration::hours(1)),
                max_orphan_rate: r.rate("max_orphan_rate", c.max_orphan_rate, 0.0)?,
            }
        }
        "distribution" => {
            let col = r.required("column", c.column.take())?;
            dataset_column(r, catalog, &dataset, "column", &col)?;
            let col_type = catalog.column_type(&dataset, &col).unwrap_or_default();
            let numeric = match r.text("kind", c.kind.take())?.as_deref() {
                Some("numeric") => {
                    if !is_numeric_type(col_type) {
                        return Err(r.err("kind", format!("{col} is a {col_type}, not a number")));
                    }
                    true
                }
                Some("categorical") => false,
                None => is_numeric_type(col_type),
                Some(other) => {
                    return Err(r.err("kind", format!("{other:?}: use categorical or numeric")))
                }
            };
            let max_psi = r.number("max_psi", c.max_psi)?.unwrap_or(0.25);
            if max_psi <= 0.0 {
                return Err(r.err("max_psi", format!("{max_psi} must be above 0")));
            }
            column = Some(col.clone());
            CheckKind::Distribution {
                column: col,
                numeric,
                baseline: r
                    .duration("baseline", c.baseline.take())?
                    .unwrap_or(Duration::days(7)),
                max_psi,
                min_rows: r.count("min_rows", c.min_rows, 30)?,
            }
        }
        "reconciliation" => {
            let left = side(r, catalog, "left", c.left.take())?;
            let right = side(r, catalog, "right", c.right.take())?;
            let min_ratio = r.number("min_ratio", c.min_ratio)?.unwrap_or(1.0);
            let max_ratio = r.number("max_ratio", c.max_ratio)?.unwrap_or(1.0);
            if min_ratio > max_ratio || min_ratio < 0.0 {
                return Err(r.err(
                    "min_ratio",
                    format!("{min_ratio} must be ≥ 0 and ≤ max_ratio {max_ratio}"),
                ));
            }
            CheckKind::Reconciliation {
                left,
                right,
                min_ratio,
                max_ratio,
            }
        }
        "schema" => {
            let reasons = match r.list("reasons", c.reasons.take())? {
                Some(list) => {
                    for reason in &list {
                        if !ReasonCode::ALL.iter().any(|c| c.as_str() == reason) {
                            return Err(r.err(
                                "reasons",
                                format!(
                                    "unknown reason {reason:?}; the ingest role uses {}",
                                    ReasonCode::ALL
                                        .iter()
                                        .map(|c| c.as_str())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            ));
                        }
                    }
                    list
                }
                None => SCHEMA_REASONS
                    .iter()
                    .map(|c| c.as_str().to_string())
                    .collect(),
            };
            if dataset != "raw_events" && event_kind_of(&dataset).is_none() {
                return Err(r.err(
                    "dataset",
                    "schema checks read the ingest quarantine: use raw_events or a table the ingest role writes",
                ));
            }
            CheckKind::Schema {
                reasons,
                max_rows: r.count("max_rows", c.max_rows, 0)?,
            }
        }
        "pipeline" => CheckKind::Pipeline {
            jobs: r.list("jobs", c.jobs.take())?.unwrap_or_default(),
            max_delay: r
                .duration("max_delay", c.max_delay.take())?
                .unwrap_or(Duration::hours(1)),
            max_quarantine_rate: r.rate("max_quarantine_rate", c.max_quarantine_rate, 0.05)?,
        },
        "custom_sql" => CheckKind::CustomSql {
            sql: r.required("sql", c.sql.take())?,
            max_rows: r.count("max_rows", c.max_rows, 0)?,
        },
        "relation" => {
            let of = r.required("of", c.of.take())?;
            if !catalog.tables.contains_key(&of) {
                return Err(r.err("of", format!("unknown dataset {of:?}")));
            }
            let of_time = match r.text("of_time", c.of_time.take())? {
                Some(col) => col,
                None => default_time_column(&of)
                    .map(str::to_string)
                    .ok_or_else(|| {
                        r.err(
                            "of_time",
                            format!("{of} has no known event-time column: name one"),
                        )
                    })?,
            };
            dataset_column(r, catalog, &of, "of_time", &of_time)?;
            for (key, table, col) in [
                ("time", &dataset, time.as_deref().unwrap_or_default()),
                ("of_time", &of, of_time.as_str()),
            ] {
                let t = catalog.column_type(table, col).unwrap_or_default();
                if !is_time_type(t) || t == "date" {
                    return Err(r.err(
                        key,
                        format!("{col} is a {t}: relation checks cut windows from timestamps"),
                    ));
                }
            }
            let min_rows = r.count("min_rows", c.min_rows, 30)?.max(1);
            CheckKind::Relation {
                of,
                of_time,
                of_filter: r.text("of_filter", c.of_filter.take())?,
                baseline: r
                    .duration("baseline", c.baseline.take())?
                    .unwrap_or(Duration::days(7)),
                min_rows,
                sensitivity,
            }
        }
        "staleness" => {
            if dataset != "raw_events" && event_kind_of(&dataset).is_none() {
                return Err(r.err(
                    "dataset",
                    "staleness checks watch arriving events: use raw_events or a table the ingest role writes",
                ));
            }
            let max_silence = r
                .duration("max_silence", c.max_silence.take())?
                .unwrap_or(Duration::minutes(15));
            if max_silence < Duration::minutes(1) {
                return Err(r.err(
                    "max_silence",
                    format!(
                        "{} must be at least a minute",
                        format_iso_duration(max_silence)
                    ),
                ));
            }
            let min_expected = r.number("min_expected", c.min_expected)?.unwrap_or(20.0);
            if min_expected.is_nan() || min_expected <= 0.0 {
                return Err(r.err("min_expected", format!("{min_expected} must be above 0")));
            }
            CheckKind::Staleness {
                max_silence,
                min_expected,
            }
        }
        _ => unreachable!("type checked above"),
    };
    let mut after_jobs = after_jobs;
    if let CheckKind::Pipeline { jobs, .. } = &kind {
        after_jobs.clone_from(jobs);
    }
    Ok(Check {
        name,
        description: r.text("description", c.description.take())?,
        dataset,
        column,
        time,
        filter,
        severity,
        kind,
        every,
        window,
        settle,
        lookback,
        history,
        anomaly,
        clear_after,
        after_jobs,
    })
}

fn side(
    r: &Cx<'_>,
    catalog: &Catalog,
    key: &str,
    raw: Option<RawSide>,
) -> Result<Side, ChecksError> {
    let Some(raw) = raw else {
        return Err(r.err(key, "is required: a table { dataset, value, time, filter }"));
    };
    let s = Cx {
        file: r.file,
        check: r.check.clone(),
        prefix: format!("{key}."),
    };
    let dataset = s.required("dataset", raw.dataset)?;
    if !catalog.tables.contains_key(&dataset) {
        return Err(s.err("dataset", format!("unknown dataset {dataset:?}")));
    }
    let time = match s.text("time", raw.time)? {
        Some(t) => t,
        None => default_time_column(&dataset)
            .map(str::to_string)
            .or_else(|| catalog.column_type(&dataset, "day").map(|_| "day".into()))
            .ok_or_else(|| s.err("time", format!("{dataset} has no known time column")))?,
    };
    dataset_column(&s, catalog, &dataset, "time", &time)?;
    Ok(Side {
        dataset,
        value: s
            .text("value", raw.value)?
            .unwrap_or_else(|| "count(*)".into()),
        time,
        filter: s.text("filter", raw.filter)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let mut tables: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let cols = |list: &[(&str, &str)]| {
            list.iter()
                .map(|(c, t)| (c.to_string(), t.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        tables.insert(
            "orders".into(),
            cols(&[
                ("order_id", "text"),
                ("amount_minor", "bigint"),
                ("currency", "text"),
                ("placed_at", "timestamp with time zone"),
                ("is_late", "boolean"),
            ]),
        );
        tables.insert(
            "payments".into(),
            cols(&[
                ("order_id", "text"),
                ("processed_at", "timestamp with time zone"),
            ]),
        );
        tables.insert(
            "daily_revenue".into(),
            cols(&[("day", "date"), ("orders", "bigint")]),
        );
        Catalog { tables }
    }

    fn err(text: &str) -> ChecksError {
        ChecksFile::parse(text, "checks.toml", &catalog()).expect_err("refused")
    }

    #[test]
    fn a_valid_file_loads_with_defaults_filled_in() {
        let f = ChecksFile::parse(
            r#"
            [defaults]
            severity = "high"
            [[check]]
            name = "orders_volume"
            type = "volume"
            dataset = "orders"
            [[check]]
            name = "revenue_fresh"
            type = "freshness"
            dataset = "daily_revenue"
            max_age = "P2D"
            every = "P1D"
            "#,
            "checks.toml",
            &catalog(),
        )
        .unwrap();
        let v = &f.checks[0];
        assert_eq!(v.time.as_deref(), Some("placed_at"));
        assert_eq!(v.severity, Severity::High);
        assert_eq!(v.every, Duration::hours(1));
        assert!(v.anomaly.is_some(), "volume is judged by its baseline");
        assert_eq!(
            f.checks[1].time.as_deref(),
            Some("day"),
            "date column found"
        );
    }

    #[test]
    fn mistakes_name_the_file_the_check_and_the_key() {
        let e = err("[[check]]\nname = \"x\"\ntype = \"volumes\"\ndataset = \"orders\"\n");
        assert_eq!((e.check.as_deref(), e.key.as_str()), (Some("x"), "type"));
        assert!(
            e.to_string()
                .starts_with("checks.toml: check \"x\": type: unknown check type \"volumes\""),
            "{e}"
        );

        let e = err("[[check]]\nname = \"x\"\ntype = \"volume\"\ndataset = \"orderz\"\n");
        assert_eq!(e.key, "dataset");
        assert!(e.message.contains("orderz"), "{e}");

        let e = err("[[check]]\nname = \"x\"\ntype = \"completeness\"\ndataset = \"orders\"\ncolumns = [\"amount\"]\n");
        assert_eq!(e.key, "columns");
        assert!(e.message.contains("no column \"amount\""), "{e}");

        let e = err("[[check]]\nname = \"x\"\ntype = \"completeness\"\ndataset = \"orders\"\ncolumns = [\"currency\"]\nmax_null_rate = 1.5\n");
        assert_eq!(e.key, "max_null_rate");

        let e = err("[[check]]\nname = \"x\"\ntype = \"freshness\"\ndataset = \"orders\"\nmax_age = \"30 minutes\"\n");
        assert_eq!(e.key, "max_age");

        let e = err(
            "[[check]]\nname = \"x\"\ntype = \"volume\"\ndataset = \"orders\"\nthreshold = 3\n",
        );
        assert_eq!(e.key, "threshold");
        assert!(e.message.contains("unknown key"), "{e}");

        let e = err("[[check]]\nname = \"x\"\ntype = \"referential\"\ndataset = \"payments\"\ncolumn = \"order_id\"\nreferences = \"orders.id\"\n");
        assert_eq!(e.key, "references");

        let e = err("[[check]]\nname = \"x\"\ntype = \"volume\"\ndataset = \"orders\"\n[[check]]\nname = \"x\"\ntype = \"volume\"\ndataset = \"orders\"\n");
        assert_eq!(e.key, "name");
        assert!(e.message.contains("another check"), "{e}");

        let e = err("[[check]]\nname = \"x\"\ntype = \"validity\"\ndataset = \"orders\"\ncolumn = \"currency\"\nmin = 0\n");
        assert_eq!(e.key, "min", "min/max need a number column: {e}");

        let e = err("[[check]]\nname = \"x\"\ntype = \"volume\"\ndataset = \"daily_revenue\"\n");
        assert_eq!(e.key, "every", "hourly windows on a date column: {e}");

        let e = err("[defaults]\nsensitivity = -1\n");
        assert_eq!((e.check, e.key.as_str()), (None, "defaults.sensitivity"));

        let e = err("[[check]]\ntype = \"volume\"\n");
        assert_eq!((e.check.as_deref(), e.key.as_str()), (Some("#1"), "name"));

        let e = err("[[check]]\nname = \"x\"\ntype = \"relation\"\ndataset = \"payments\"\nof = \"orderz\"\n");
        assert_eq!(e.key, "of");
        assert!(e.message.contains("orderz"), "{e}");

        let e = err("[[check]]\nname = \"x\"\ntype = \"relation\"\ndataset = \"payments\"\nof = \"daily_revenue\"\n");
        assert_eq!(e.key, "of_time", "a date cannot be cut into hours: {e}");

        let e = err("[[check]]\nname = \"x\"\ntype = \"staleness\"\ndataset = \"daily_revenue\"\n");
        assert_eq!(e.key, "dataset", "only arriving events: {e}");

        let e = err("[[check]]\nname = \"x\"\ntype = \"staleness\"\ndataset = \"orders\"\nmax_silence = \"PT10S\"\n");
        assert_eq!(e.key, "max_silence");
        assert!(e.message.contains("PT10S"), "{e}");
    }

    #[test]
    fn wrong_types_are_refused_by_the_reader_naming_their_key() {
        let e = err("[[check]]\nname = \"x\"\ntype = \"volume\"\ndataset = \"orders\"\nmin_rows = \"many\"\n");
        assert_eq!(
            (e.check.as_deref(), e.key.as_str()),
            (Some("x"), "min_rows")
        );
        assert!(e.message.contains("invalid type"), "{e}");
        let e = err("[defaults]\nevery = 5\n");
        assert_eq!((e.check, e.key.as_str()), (None, "defaults.every"));
        let e = err("[[check]]\nname = \"x\"\ntype = \"reconciliation\"\nleft = { dataset = 1 }\nright = { dataset = \"orders\" }\n");
        assert_eq!(e.key, "left.dataset", "{e}");
        let e = err("[[check]]\nname = \"x\"\ntype = \"reconciliation\"\nleft = { dataset = \"orders\", colour = \"red\" }\nright = { dataset = \"orders\" }\n");
        assert_eq!(e.key, "left.colour", "{e}");
        assert!(e.message.starts_with("unknown key"), "{e}");
        let e = err("generate = \"yes\"\n");
        assert_eq!(e.key, "generate", "{e}");
        let e = err("[[check]]\nname = \"x\"\ntype = \"completeness\"\ndataset = \"orders\"\ncolumns = []\n");
        assert_eq!(e.key, "columns");
        assert!(e.message.contains("must not be empty"), "{e}");
    }

    #[test]
    fn relation_and_staleness_checks_load_with_their_defaults() {
        let f = ChecksFile::parse(
            "[[check]]\nname = \"r\"\ntype = \"relation\"\ndataset = \"payments\"\nof = \"orders\"\n\
             [[check]]\nname = \"s\"\ntype = \"staleness\"\ndataset = \"orders\"\n",
            "checks.toml",
            &catalog(),
        )
        .unwrap();
        let r = f.get("r").unwrap();
        assert_eq!(r.window, Duration::hours(3));
        assert_eq!(r.time.as_deref(), Some("processed_at"));
        assert!(matches!(
            &r.kind,
            CheckKind::Relation { of, of_time, min_rows: 30, sensitivity, .. }
                if of == "orders" && of_time == "placed_at" && *sensitivity == 5.0
        ));
        let s = f.get("s").unwrap();
        assert!(s.kind.incremental() && s.time.is_none());
        assert!(matches!(
            s.kind,
            CheckKind::Staleness { max_silence, min_expected }
                if max_silence == Duration::minutes(15) && min_expected == 20.0
        ));
    }

    #[test]
    fn the_shipped_checks_name_real_columns_of_the_platform() {
        // Every table and column the shipped file names must exist in the migrations.
        let sql: String = [
            include_str!("../../store/migrations/0001_foundation.sql"),
            include_str!("../../store/migrations/0002_batch.sql"),
        ]
        .concat();
        let parsed: toml::Table = DEFAULT_CHECKS.parse().unwrap();
        for c in parsed["check"].as_array().unwrap() {
            let ds = c.get("dataset").and_then(|d| d.as_str());
            if let Some(ds) = ds {
                assert!(sql.contains(&format!("CREATE TABLE {ds} (")), "{ds}");
            }
        }
    }
}
