//! Scenario files: a TOML description of a simulated run (seed, simulated clock, volume,
//! schema-version mix) and the faults to inject into it. Files are parsed strictly (unknown
//! keys are errors) and validated; every error names the file, the fault (1-based index and
//! kind) and the key with its bad value.
//!
//! ```toml
//! name = "payments-schema-drift"
//! seed = 7
//! start = "2026-03-01T00:00:00Z"
//! days = 10
//! events_per_day = 20000
//! schema_mix = { v1 = 0.2, v2 = 0.5, v3 = 0.3 }
//!
//! [[fault]]
//! kind = "schema_drift"
//! target = "payment"
//! start = "P8DT10H"
//! duration = "PT3H"
//! rate = 0.4
//! params = { rename = "amount", to = "amount_cents" }
//! ```

mod params;

pub use heal_model::duration::{format_iso_duration, parse_iso_duration};
pub use params::{FaultAction, SchemaDrift};

use chrono::{DateTime, Duration, Utc};
use heal_model::{EventKind, FaultKind};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Longest simulated run accepted, in days.
const MAX_DAYS: f64 = 3660.0;
/// Highest volume accepted, in events per simulated day.
const MAX_EVENTS_PER_DAY: f64 = 1.0e9;

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: invalid scenario TOML: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}: {location}: `{key}` = {value}: {message}")]
    Invalid {
        file: String,
        /// `scenario`, or the fault as `fault #2 (schema_drift)`.
        location: String,
        /// The key, e.g. `rate` or `params.field`.
        key: String,
        /// The offending value as written (TOML syntax).
        value: String,
        message: String,
    },
}

/// Relative weights of the wire schema versions producers use. Weights are renormalized over
/// the versions each event kind exists in; a kind whose versions all weigh zero uses v2.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaMix {
    #[serde(default)]
    pub v1: f64,
    #[serde(default)]
    pub v2: f64,
    #[serde(default)]
    pub v3: f64,
}

impl Default for SchemaMix {
    fn default() -> Self {
        SchemaMix {
            v1: 0.2,
            v2: 0.5,
            v3: 0.3,
        }
    }
}

impl SchemaMix {
    /// The weight of one version.
    pub fn weight(&self, version: heal_model::SchemaVersion) -> f64 {
        match version {
            heal_model::SchemaVersion::V1 => self.v1,
            heal_model::SchemaVersion::V2 => self.v2,
            heal_model::SchemaVersion::V3 => self.v3,
        }
    }
}

/// The target of a `database_outage`: the ingest role, the first writer the outage stops.
pub const OUTAGE_TARGET: &str = "ingest";

/// What a fault acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every event kind (`source_outage`, `volume_drop`, `volume_spike` only).
    All,
    /// One event kind, named in files by its target name (`order`, `payment`, …).
    Event(EventKind),
    /// A batch job (`job_failure`, `job_delay`), or the role whose store an outage stops
    /// (`database_outage`: `ingest`).
    Job(String),
}

impl Target {
    /// The name as written in scenario files.
    pub fn name(&self) -> &str {
        match self {
            Target::All => "all",
            Target::Event(kind) => kind.target_name(),
            Target::Job(name) => name,
        }
    }

    /// Whether events of `kind` are targeted.
    pub fn matches(&self, kind: EventKind) -> bool {
        match self {
            Target::All => true,
            Target::Event(k) => *k == kind,
            Target::Job(_) => false,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One validated `[[fault]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    /// Position in the file, from 0.
    pub index: usize,
    pub kind: FaultKind,
    pub target: Target,
    /// Offset of the window from the scenario start.
    pub start: Duration,
    /// Length of the window.
    pub duration: Duration,
    /// Share of targeted events affected (for `volume_drop`, the share dropped).
    pub rate: f64,
    /// The kind's parameters, resolved with their defaults.
    pub action: FaultAction,
}

impl FaultSpec {
    /// The window `[start, end)` in simulated time.
    pub fn window(&self, scenario_start: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let start = scenario_start + self.start;
        (start, start + self.duration)
    }

    /// Where affected events should end up: `quarantine:<reason_code>`, `late`,
    /// `deduplicated`, `dropped`, `stored` or `job`.
    pub fn expected(&self) -> String {
        self.action.expected()
    }

    /// The resolved parameters as JSON (defaults filled in), as recorded in the ground truth.
    pub fn params_json(&self) -> serde_json::Value {
        self.action.params_json()
    }

    /// `fault #2 (schema_drift)`, as error messages name it.
    pub fn label(&self) -> String {
        fault_label(self.index, Some(self.kind.as_str()))
    }
}

fn fault_label(index: usize, kind: Option<&str>) -> String {
    match kind {
        Some(kind) => format!("fault #{} ({kind})", index + 1),
        None => format!("fault #{}", index + 1),
    }
}

/// A validated scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    pub seed: u64,
    /// Simulated clock at the start of the run.
    pub start: DateTime<Utc>,
    /// Simulated days generated (may be fractional).
    pub days: f64,
    /// Average number of events per simulated day in a clean run.
    pub events_per_day: f64,
    pub schema_mix: SchemaMix,
    pub faults: Vec<FaultSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    description: Option<String>,
    seed: u64,
    start: String,
    days: f64,
    events_per_day: f64,
    schema_mix: Option<SchemaMix>,
    #[serde(default, rename = "fault")]
    faults: Vec<RawFault>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    kind: String,
    target: String,
    start: Option<String>,
    duration: Option<String>,
    rate: Option<f64>,
    params: Option<toml::Table>,
}

/// Builds `ScenarioError::Invalid` values for one file and location.
pub(crate) struct Ctx<'a> {
    pub file: &'a str,
    pub location: String,
}

impl Ctx<'_> {
    pub fn err(
        &self,
        key: &str,
        value: impl fmt::Display,
        message: impl Into<String>,
    ) -> ScenarioError {
        ScenarioError::Invalid {
            file: self.file.to_string(),
            location: self.location.clone(),
            key: key.to_string(),
            value: value.to_string(),
            message: message.into(),
        }
    }
}

/// A string shown as TOML would write it.
pub(crate) fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: impl AsRef<Path>) -> Result<Scenario, ScenarioError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Scenario::parse(&text, &path.display().to_string())
    }

    /// Reads and validates every `*.toml` file in `dir`, sorted by file name.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Vec<(PathBuf, Scenario)>, ScenarioError> {
        let dir = dir.as_ref();
        let io = |source| ScenarioError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().is_some_and(|ext| ext == "toml") {
                paths.push(path);
            }
        }
        paths.sort();
        paths
            .into_iter()
            .map(|path| Scenario::load(&path).map(|s| (path, s)))
            .collect()
    }

    /// Parses and validates scenario TOML; `file` names the source in error messages.
    pub fn parse(text: &str, file: &str) -> Result<Scenario, ScenarioError> {
        let raw: RawScenario = toml::from_str(text).map_err(|e| ScenarioError::Syntax {
            file: file.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let ctx = Ctx {
            file,
            location: "scenario".to_string(),
        };
        if raw.name.trim().is_empty() {
            return Err(ctx.err("name", quoted(&raw.name), "must not be empty"));
        }
        let start = DateTime::parse_from_rfc3339(raw.start.trim())
            .map_err(|e| {
                ctx.err(
                    "start",
                    quoted(&raw.start),
                    format!("not an RFC 3339 date-time like 2026-03-01T00:00:00Z ({e})"),
                )
            })?
            .with_timezone(&Utc);
        let start = DateTime::from_timestamp_millis(start.timestamp_millis()).unwrap_or(start);
        if !(raw.days.is_finite() && raw.days > 0.0 && raw.days <= MAX_DAYS) {
            return Err(ctx.err(
                "days",
                raw.days,
                format!("must be a positive number of days, at most {MAX_DAYS}"),
            ));
        }
        if !(raw.events_per_day.is_finite()
            && raw.events_per_day > 0.0
            && raw.events_per_day <= MAX_EVENTS_PER_DAY)
        {
            return Err(ctx.err(
                "events_per_day",
                raw.events_per_day,
                format!("must be positive and at most {MAX_EVENTS_PER_DAY}"),
            ));
        }
        let schema_mix = raw.schema_mix.unwrap_or_default();
        for (key, weight) in [
            ("schema_mix.v1", schema_mix.v1),
            ("schema_mix.v2", schema_mix.v2),
            ("schema_mix.v3", schema_mix.v3),
        ] {
            if !(weight.is_finite() && weight >= 0.0) {
                return Err(ctx.err(key, weight, "weights must be non-negative numbers"));
            }
        }
        if schema_mix.v1 + schema_mix.v2 + schema_mix.v3 <= 0.0 {
            return Err(ctx.err(
                "schema_mix",
                format!(
                    "{{ v1 = {}, v2 = {}, v3 = {} }}",
                    schema_mix.v1, schema_mix.v2, schema_mix.v3
                ),
                "at least one weight must be positive",
            ));
        }
        let mut scenario = Scenario {
            name: raw.name,
            description: raw.description,
            seed: raw.seed,
            start,
            days: raw.days,
            events_per_day: raw.events_per_day,
            schema_mix,
            faults: Vec::new(),
        };
        for (index, fault) in raw.faults.into_iter().enumerate() {
            let spec = validate_fault(&scenario, file, index, fault)?;
            scenario.faults.push(spec);
        }
        Ok(scenario)
    }

    /// A clean scenario (no faults) with the default schema mix.
    pub fn clean(
        name: &str,
        seed: u64,
        start: DateTime<Utc>,
        days: f64,
        events_per_day: f64,
    ) -> Scenario {
        Scenario {
            name: name.to_string(),
            description: None,
            seed,
            start,
            days,
            events_per_day,
            schema_mix: SchemaMix::default(),
            faults: Vec::new(),
        }
    }

    /// The simulated length of the run.
    pub fn duration(&self) -> Duration {
        Duration::milliseconds((self.days * 86_400_000.0).round() as i64)
    }

    /// The simulated time at which the run ends (exclusive).
    pub fn end(&self) -> DateTime<Utc> {
        self.start + self.duration()
    }
}

impl FromStr for Scenario {
    type Err = ScenarioError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Scenario::parse(text, "<scenario>")
    }
}

fn validate_fault(
    scenario: &Scenario,
    file: &str,
    index: usize,
    raw: RawFault,
) -> Result<FaultSpec, ScenarioError> {
    let ctx = Ctx {
        file,
        location: fault_label(index, None),
    };
    let kind = FaultKind::from_str(raw.kind.trim())
        .map_err(|message| ctx.err("kind", quoted(&raw.kind), message))?;
    let ctx = Ctx {
        file,
        location: fault_label(index, Some(kind.as_str())),
    };
    let target = parse_target(&ctx, kind, raw.target.trim())?;

    let start = match &raw.start {
        None => Duration::zero(),
        Some(text) => {
            let d = parse_iso_duration(text).map_err(|e| ctx.err("start", quoted(text), e))?;
            if d < Duration::zero() {
                return Err(ctx.err(
                    "start",
                    quoted(text),
                    "the offset from the scenario start must not be negative",
                ));
            }
            d
        }
    };
    let run = scenario.duration();
    if start >= run {
        return Err(ctx.err(
            "start",
            quoted(raw.start.as_deref().unwrap_or("PT0S")),
            format!(
                "the window starts after the scenario ends (it lasts {})",
                format_iso_duration(run)
            ),
        ));
    }
    let duration = match &raw.duration {
        None => run - start,
        Some(text) => {
            let d = parse_iso_duration(text).map_err(|e| ctx.err("duration", quoted(text), e))?;
            if d <= Duration::zero() {
                return Err(ctx.err("duration", quoted(text), "must be positive"));
            }
            d
        }
    };

    let default_rate = if kind == FaultKind::VolumeDrop {
        0.9
    } else {
        1.0
    };
    let rate = raw.rate.unwrap_or(default_rate);
    if !(rate.is_finite() && rate > 0.0 && rate <= 1.0) {
        return Err(ctx.err(
            "rate",
            rate,
            "must be in (0, 1]: the share of targeted events affected",
        ));
    }
    if kind == FaultKind::SourceOutage && rate != 1.0 {
        return Err(ctx.err(
            "rate",
            rate,
            "a source outage drops every targeted event; use volume_drop for a partial loss",
        ));
    }

    let table = raw.params.unwrap_or_default();
    let action = params::resolve(&ctx, kind, &target, &table)?;
    Ok(FaultSpec {
        index,
        kind,
        target,
        start,
        duration,
        rate,
        action,
    })
}

fn parse_target(ctx: &Ctx<'_>, kind: FaultKind, name: &str) -> Result<Target, ScenarioError> {
    let value = quoted(name);
    let targets: Vec<&str> = EventKind::ALL.iter().map(|k| k.target_name()).collect();
    if kind.is_outage() {
        return if name == OUTAGE_TARGET {
            Ok(Target::Job(name.to_string()))
        } else {
            Err(ctx.err(
                "target",
                value,
                format!("must be `{OUTAGE_TARGET}`: the role whose writes the outage stops"),
            ))
        };
    }
    if kind.targets_job() {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        return if valid {
            Ok(Target::Job(name.to_string()))
        } else {
            Err(ctx.err(
                "target",
                value,
                "must be a batch job name (letters, digits, `_`, `-`, `.`; at most 64 characters)",
            ))
        };
    }
    let allows_all = matches!(
        kind,
        FaultKind::SourceOutage | FaultKind::VolumeDrop | FaultKind::VolumeSpike
    );
    if name == "all" {
        return if allows_all {
            Ok(Target::All)
        } else {
            Err(ctx.err(
                "target",
                value,
                format!(
                    "`all` is only allowed for source_outage, volume_drop and volume_spike; name one of {}",
                    targets.join(", ")
                ),
            ))
        };
    }
    let event = EventKind::from_target_name(name).ok_or_else(|| {
        ctx.err(
            "target",
            &value,
            format!(
                "unknown target; expected one of {}{}",
                targets.join(", "),
                if allows_all { ", all" } else { "" }
            ),
        )
    })?;
    if kind == FaultKind::OrphanReference
        && !matches!(event, EventKind::PaymentProcessed | EventKind::RefundIssued)
    {
        return Err(ctx.err(
            "target",
            value,
            "orphan_reference applies to payment (order_id) or refund (payment_id)",
        ));
    }
    Ok(Target::Event(event))
}

#[cfg(test)]
mod tests;
