//! The configuration structure, its defaults, and the layered loader.

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The shortest loop interval a role accepts.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// A duration as configuration writes it (`500ms`, `30s`, `1h 30m`).
fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("cannot read configuration file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where embedded state (the embedded PostgreSQL) lives.
    pub data_dir: PathBuf,
    /// Listen address in monolithic mode (all roles on one port).
    pub http_addr: SocketAddr,
    /// Host the per-role listeners bind in microservices mode.
    pub bind_host: String,
    pub log_format: LogFormat,
    pub log_level: String,
    pub database: DatabaseConfig,
    pub kafka: KafkaConfig,
    pub neo4j: Neo4jConfig,
    pub ports: RolePorts,
    pub ingest: IngestConfig,
    pub generator: GeneratorConfig,
    pub batch: BatchConfig,
    pub lineage: LineageConfig,
    pub quality: QualityConfig,
    pub aiops: AiopsConfig,
    pub executor: ExecutorConfig,
    pub auth: AuthConfig,
}

/// The self-healing executor the incidents role runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorConfig {
    /// Whether the incidents role plans, applies and verifies remediations.
    pub enabled: bool,
    /// Time between the executor's rounds.
    #[serde(with = "crate::human")]
    pub interval: Duration,
    /// Mode of action types the policy does not name: `auto`, `approve` or `off`.
    pub default_mode: String,
    /// Per action type: a mode (`deduplicate = "approve"`) or modes per severity with a
    /// default (`deduplicate = { critical = "approve", default = "auto" }`). Named types
    /// replace the shipped rule for that type; the others keep it.
    pub policy: BTreeMap<String, PolicyRule>,
    /// Most actions applied in any hour.
    pub max_actions_per_hour: u32,
    /// Failed actions in a row that open the circuit breaker (0: never).
    pub breaker_failures: u32,
    /// Most assets one action may touch; larger actions are refused.
    pub max_blast_radius: u32,
    /// How long a remediation has to pass verification before it is rolled back.
    #[serde(with = "crate::human")]
    pub verify_within: Duration,
    /// Largest relative distance of a KPI from its baseline that passes verification.
    pub kpi_tolerance: f64,
    /// Where `notify_owner` and escalations are posted (JSON). Unset: no notifications.
    pub webhook_url: Option<String>,
    /// KPIs verification compares with their baseline. Empty: revenue, orders, conversion,
    /// payment success and day-1 retention from the analytics tables.
    pub kpis: Vec<KpiConfig>,
}

/// A mode for every severity, or per severity (`low`, `medium`, `high`, `critical`, `default`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PolicyRule {
    Mode(String),
    BySeverity(BTreeMap<String, String>),
}

/// A KPI measured per day: `value` aggregates rows of `table` grouped by the day expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KpiConfig {
    pub name: String,
    pub table: String,
    /// An SQL expression giving the day: a `date` column, or e.g.
    /// `(placed_at AT TIME ZONE 'UTC')::date`.
    pub day: String,
    /// An aggregate SQL expression, e.g. `sum(gross_revenue_usd)`.
    pub value: String,
}

const MODES: [&str; 3] = ["auto", "approve", "off"];
const POLICY_SEVERITIES: [&str; 5] = ["low", "medium", "high", "critical", "default"];

/// Who may change things through the HTTP APIs: bearer tokens with scopes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// No token is asked for anywhere (a warning at start). `heal demo` runs this way.
    pub disabled: bool,
    /// Reading endpoints need a token with the `read` scope too (by default they are open and
    /// only changes need a token).
    pub protect_reads: bool,
    /// The tokens, inline (`[[auth.tokens]]` in `heal.toml`, or `HEAL_AUTH__TOKENS` as
    /// `[{name="ci", token="…", scopes=["operator"]}]`).
    pub tokens: Vec<ApiToken>,
    /// A TOML file of `[[tokens]]` entries (a mounted secret), read at start.
    pub tokens_file: Option<PathBuf>,
}

/// One API token. Scopes: `read` (see), `operator` (also change: post events, run jobs and
/// checks, move incidents), `admin` (everything).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    /// Who holds it (logged with what it did; the token itself never is).
    pub name: String,
    pub token: String,
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken")
            .field("name", &self.name)
            .field("token", &"<secret>")
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// The scopes a token may carry.
pub const SCOPES: [&str; 3] = ["read", "operator", "admin"];

impl AuthConfig {
    /// Every token: the inline ones and those of `tokens_file`.
    pub fn all_tokens(&self) -> Result<Vec<ApiToken>, ConfigError> {
        let mut out = self.tokens.clone();
        if let Some(path) = &self.tokens_file {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct File {
                tokens: Vec<ApiToken>,
            }
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::File {
                path: path.clone(),
                source,
            })?;
            let file: File = toml::from_str(&text).map_err(|e| {
                ConfigError::Invalid(format!(
                    "auth.tokens_file = {}: {}",
                    path.display(),
                    e.message()
                ))
            })?;
            out.extend(file.tokens);
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgresql://…` (a JDBC `jdbc:postgresql://…` URL is accepted too). Unset: embedded.
    pub url: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub max_connections: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port,…`. Unset: the in-process bus.
    pub bootstrap_servers: Option<String>,
    /// Partitions of topics the platform creates.
    pub partitions: i32,
    pub replication_factor: i32,
    /// Consumer group ids are `<group_prefix>-<role>`.
    pub group_prefix: String,
    /// Static group membership id of this process (e.g. the StatefulSet pod name), so a
    /// restarted consumer gets its partitions back without waiting for a session timeout.
    pub group_instance_id: Option<String>,
    /// `group`: partitions balanced by the broker's group protocol. `static`: this process
    /// reads the partitions `p % replicas == replica_index` with no group membership, so a
    /// killed process resumes at once (offsets come from PostgreSQL either way).
    pub assignment: String,
    pub replicas: i32,
    pub replica_index: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Neo4jConfig {
    /// `bolt://host:7687` (or `neo4j://…`): the lineage graph lives there instead of in
    /// PostgreSQL.
    pub uri: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Database (Neo4j) or graph (FalkorDB) name; unset: the server's default.
    pub database: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineageConfig {
    /// Folder holding the official OpenLineage JSON schemas (`spec/OpenLineage.json` and
    /// `spec/facets/*.json`). Set: posted events are validated against them as well as by the
    /// built-in check.
    pub openlineage_spec_dir: Option<PathBuf>,
    /// How often the event log is projected into the graph.
    #[serde(with = "crate::human")]
    pub project_interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityConfig {
    /// The checks file (TOML). Unset: the built-in checks for the platform's own tables.
    pub checks_file: Option<PathBuf>,
    /// How often every check runs.
    #[serde(with = "crate::human")]
    pub interval: Duration,
    /// Whether the checks that read the ingest quarantine run as soon as the ingest role
    /// reports refused events (false: only every `interval`).
    pub on_refusals: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AiopsConfig {
    /// How far apart in data time (ISO 8601 duration) two failures may be and still be one
    /// incident.
    pub window: String,
    /// How many lineage hops apart two failures may be and still be one incident.
    pub max_hops: u32,
    /// Datasets every stream passes through: their failures join the incident of their kind
    /// rather than linking unrelated streams.
    pub shared_datasets: Vec<String>,
    /// Data time (ISO 8601) without new failures, once every condition resolved, before an
    /// incident resolves.
    pub resolve_after: String,
    /// Classifier confidence under which a decision is marked low-confidence.
    pub low_confidence: f64,
    /// The lineage role's URL, for an `aiops` process that does not run lineage itself
    /// (microservices). Unset: the lineage graph is read in-process from the database.
    pub lineage_url: Option<String>,
    /// How often the lineage snapshot is refreshed.
    #[serde(with = "crate::human")]
    pub refresh: Duration,
    /// An OpenAI-compatible endpoint (`…/v1`) that rewrites explanations as prose. Unset: off.
    pub llm_url: Option<String>,
    pub llm_key: Option<String>,
    pub llm_model: String,
    #[serde(with = "crate::human")]
    pub llm_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolePorts {
    pub generator: u16,
    pub ingest: u16,
    pub batch: u16,
    pub quality: u16,
    pub lineage: u16,
    pub aiops: u16,
    pub incidents: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Topic the ingest role consumes.
    pub topic: String,
    /// Most events written in one transaction.
    pub batch_size: usize,
    /// Longest a partial batch waits before it is written.
    #[serde(with = "crate::human")]
    pub batch_timeout: Duration,
    /// Events older than a stream's newest event time minus this are flagged late.
    #[serde(with = "crate::human")]
    pub allowed_lateness: Duration,
    /// Events whose time is this far past their production time are quarantined as future.
    #[serde(with = "crate::human")]
    pub future_tolerance: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    /// Real-time rate of the generator role.
    pub events_per_second: f64,
    pub seed: u64,
    /// Share of events in schema versions 1.0, 2.0, 3.0.
    pub schema_mix: [f64; 3],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Schedule of every job without its own: `every 60s` or a cron expression.
    pub default_schedule: String,
    /// Per-job schedules (`daily_revenue = "0 5 * * *"`).
    pub schedules: std::collections::BTreeMap<String, String>,
    /// Attempts per partition run, the first included.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled before each further one.
    #[serde(with = "crate::human")]
    pub retry_backoff: Duration,
    /// Partitions computed at once.
    pub concurrency: usize,
    /// Real seconds slept per simulated second of an injected job delay.
    pub delay_scale: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from(".heal"),
            http_addr: "127.0.0.1:8080".parse().expect("valid literal"),
            bind_host: "0.0.0.0".into(),
            log_format: LogFormat::Text,
            log_level: "info".into(),
            database: DatabaseConfig {
                url: None,
                user: None,
                password: None,
                max_connections: 10,
            },
            kafka: KafkaConfig {
                bootstrap_servers: None,
                partitions: 6,
                replication_factor: 1,
                group_prefix: "heal".into(),
                group_instance_id: None,
                assignment: "group".into(),
                replicas: 1,
                replica_index: 0,
            },
            neo4j: Neo4jConfig {
                uri: None,
                username: None,
                password: None,
                database: None,
            },
            ports: RolePorts {
                generator: 8081,
                ingest: 8082,
                batch: 8083,
                quality: 8084,
                lineage: 8085,
                aiops: 8086,
                incidents: 8087,
            },
            ingest: IngestConfig {
                topic: "raw-events".into(),
                batch_size: 5000,
                batch_timeout: Duration::from_millis(200),
                allowed_lateness: Duration::from_secs(3600),
                future_tolerance: Duration::from_secs(300),
            },
            generator: GeneratorConfig {
                events_per_second: 20.0,
                seed: 1,
                schema_mix: [0.2, 0.5, 0.3],
            },
            batch: BatchConfig {
                default_schedule: "every 60s".into(),
                schedules: Default::default(),
                max_attempts: 3,
                retry_backoff: Duration::from_secs(2),
                concurrency: 2,
                delay_scale: 1.0 / 3600.0,
            },
            lineage: LineageConfig {
                openlineage_spec_dir: None,
                project_interval: Duration::from_secs(1),
            },
            quality: QualityConfig {
                checks_file: None,
                interval: Duration::from_secs(60),
                on_refusals: true,
            },
            aiops: AiopsConfig {
                window: "PT2H".into(),
                max_hops: 6,
                shared_datasets: vec!["raw_events".into(), "quarantine".into()],
                resolve_after: "PT6H".into(),
                low_confidence: 0.6,
                lineage_url: None,
                refresh: Duration::from_secs(30),
                llm_url: None,
                llm_key: None,
                llm_model: "gpt-4o-mini".into(),
                llm_timeout: Duration::from_secs(20),
            },
            executor: ExecutorConfig {
                enabled: true,
                interval: Duration::from_secs(5),
                default_mode: "approve".into(),
                policy: BTreeMap::new(),
                max_actions_per_hour: 20,
                breaker_failures: 3,
                max_blast_radius: 25,
                verify_within: Duration::from_secs(900),
                kpi_tolerance: 0.25,
                webhook_url: None,
                kpis: vec![],
            },
            auth: AuthConfig {
                disabled: false,
                protect_reads: false,
                tokens: vec![],
                tokens_file: None,
            },
        }
    }
}

/// Environment variables of the seed, and the key each one sets.
const SEED_VARIABLES: [(&str, &str); 7] = [
    ("DATABASE_URL", "database.url"),
    ("DATABASE_USER", "database.user"),
    ("DATABASE_PASSWORD", "database.password"),
    ("KAFKA_BOOTSTRAP_SERVERS", "kafka.bootstrap_servers"),
    ("NEO4J_URI", "neo4j.uri"),
    ("NEO4J_USERNAME", "neo4j.username"),
    ("NEO4J_PASSWORD", "neo4j.password"),
];

/// Short `HEAL_*` names for the settings users reach for most.
const HEAL_ALIASES: [(&str, &str); 6] = [
    ("HEAL_DATABASE_URL", "database.url"),
    ("HEAL_KAFKA_BOOTSTRAP_SERVERS", "kafka.bootstrap_servers"),
    ("HEAL_NEO4J_URI", "neo4j.uri"),
    ("HEAL_LLM_URL", "aiops.llm_url"),
    ("HEAL_LLM_KEY", "aiops.llm_key"),
    ("HEAL_LLM_MODEL", "aiops.llm_model"),
];

/// Variables Kubernetes injects for every Service in the namespace (`HEAL_INGEST_PORT`,
/// `HEAL_INGEST_SERVICE_HOST`, `HEAL_INGEST_PORT_8082_TCP_ADDR` for a Service `heal-ingest`):
/// never settings, which are single words or use `__` between section and key.
fn is_service_link(rest: &str) -> bool {
    if rest.contains("__") {
        return false;
    }
    rest.ends_with("_SERVICE_HOST")
        || rest.contains("_SERVICE_PORT")
        || rest.ends_with("_PORT")
        || ["_TCP", "_UDP", "_SCTP"].iter().any(|p| {
            rest.contains("_PORT_") && (rest.contains(&format!("{p}_")) || rest.ends_with(p))
        })
}

/// Names of environment variables that hold secrets (never echoed in errors).
fn is_secret(key: &str) -> bool {
    key.ends_with("password")
        || key.ends_with("_key")
        || key.contains("token")
        || key.contains("webhook")
}

/// One setting from one named place (an environment variable, a flag), so that an error says
/// exactly where a bad value came from.
struct NamedValue {
    origin: String,
    key: String,
    value: Value,
}

impl Provider for NamedValue {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.origin.clone())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        let parts: Vec<&str> = self.key.split('.').collect();
        let (last, parents) = parts.split_last().expect("key is not empty");
        let mut leaf = Dict::new();
        leaf.insert((*last).to_string(), self.value.clone());
        let mut value = Value::from(leaf);
        for parent in parents.iter().rev() {
            let mut d = Dict::new();
            d.insert((*parent).to_string(), value);
            value = Value::from(d);
        }
        if let Value::Dict(_, d) = value {
            dict = d;
        }
        Ok(Profile::Default.collect(dict))
    }
}

fn parse_env_value(raw: &str) -> Value {
    raw.parse::<Value>()
        .unwrap_or_else(|_| Value::from(raw.to_string()))
}

impl Config {
    /// Loads the configuration. `file` is `heal.toml` (read if it exists, or required if the
    /// user named it), `env` the process environment, `flags` the `(key, value)` pairs of CLI
    /// flags that were given, with their flag names for messages.
    pub fn load(
        file: Option<&Path>,
        file_required: bool,
        env: &BTreeMap<String, String>,
        flags: &[(&str, &str, String)],
    ) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if path.exists() {
                std::fs::read_to_string(path).map_err(|source| ConfigError::File {
                    path: path.to_path_buf(),
                    source,
                })?;
                figment = figment.merge(Toml::file(path));
            } else if file_required {
                return Err(ConfigError::File {
                    path: path.to_path_buf(),
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
                });
            }
        }
        for (var, key) in SEED_VARIABLES.iter().chain(HEAL_ALIASES.iter()) {
            if let Some(raw) = env.get(*var) {
                figment = figment.merge(NamedValue {
                    origin: format!("environment variable {var}"),
                    key: key.to_string(),
                    value: Value::from(raw.clone()),
                });
            }
        }
        for (var, raw) in env {
            let Some(rest) = var.strip_prefix("HEAL_") else {
                continue;
            };
            if HEAL_ALIASES.iter().any(|(alias, _)| alias == var) || rest.is_empty() {
                continue;
            }
            // Variables of the tooling around the binary, not settings.
            if rest.starts_with("TEST_")
                || matches!(rest, "CONFIG" | "ROLES" | "CACHE" | "BIN" | "TOKEN")
            {
                continue;
            }
            if is_service_link(rest) {
                continue;
            }
            let key = rest.to_ascii_lowercase().replace("__", ".");
            figment = figment.merge(NamedValue {
                origin: format!("environment variable {var}"),
                key,
                value: parse_env_value(raw),
            });
        }
        for (flag, key, raw) in flags {
            figment = figment.merge(NamedValue {
                origin: format!("command-line flag {flag}"),
                key: key.to_string(),
                value: parse_env_value(raw),
            });
        }
        let config: Config = figment.extract().map_err(|e| describe(&e))?;
        config.validate()?;
        Ok(config)
    }

    fn validate_executor(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, value: &dyn std::fmt::Display, why: &str| {
            Err(ConfigError::Invalid(format!("{key} = {value}: {why}")))
        };
        let e = &self.executor;
        if !MODES.contains(&e.default_mode.as_str()) {
            return bad(
                "executor.default_mode",
                &e.default_mode,
                "must be auto, approve or off",
            );
        }
        for (action, rule) in &e.policy {
            let key = format!("executor.policy.{action}");
            if !heal_model::incident::ACTION_NAMES.contains(&action.as_str()) {
                return bad(
                    &key,
                    &"…",
                    &format!(
                        "{action:?} is not an action; use one of {}",
                        heal_model::incident::ACTION_NAMES.join(", ")
                    ),
                );
            }
            let modes: Vec<(String, &String)> = match rule {
                PolicyRule::Mode(m) => vec![(key.clone(), m)],
                PolicyRule::BySeverity(by) => {
                    if let Some(s) = by.keys().find(|s| !POLICY_SEVERITIES.contains(&s.as_str())) {
                        return bad(
                            &format!("{key}.{s}"),
                            &"…",
                            "severities are low, medium, high, critical and default",
                        );
                    }
                    by.iter().map(|(s, m)| (format!("{key}.{s}"), m)).collect()
                }
            };
            for (k, m) in modes {
                if !MODES.contains(&m.as_str()) {
                    return bad(&k, m, "must be auto, approve or off");
                }
            }
        }
        if e.interval < MIN_INTERVAL {
            return bad(
                "executor.interval",
                &human(e.interval),
                "must be at least 100ms",
            );
        }
        if e.max_actions_per_hour == 0 {
            return bad("executor.max_actions_per_hour", &0, "must be at least 1");
        }
        if e.verify_within < Duration::from_secs(1) {
            return bad(
                "executor.verify_within",
                &human(e.verify_within),
                "must be at least 1s",
            );
        }
        if !(e.kpi_tolerance > 0.0 && e.kpi_tolerance <= 10.0) {
            return bad(
                "executor.kpi_tolerance",
                &e.kpi_tolerance,
                "must be above 0 and at most 10 (a share of the baseline)",
            );
        }
        if let Some(u) = &e.webhook_url {
            match url::Url::parse(u) {
                Ok(p) if matches!(p.scheme(), "http" | "https") => {}
                _ => {
                    return bad(
                        "executor.webhook_url",
                        &"(not shown)",
                        "must be an http:// or https:// URL",
                    )
                }
            }
        }
        for (i, k) in e.kpis.iter().enumerate() {
            for (field, v) in [
                ("name", &k.name),
                ("table", &k.table),
                ("day", &k.day),
                ("value", &k.value),
            ] {
                if v.trim().is_empty() {
                    return bad(
                        &format!("executor.kpis[{i}].{field}"),
                        &"\"\"",
                        "must not be empty",
                    );
                }
            }
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, value: &dyn std::fmt::Display, why: &str| {
            Err(ConfigError::Invalid(format!("{key} = {value}: {why}")))
        };
        if self.ingest.batch_size == 0 || self.ingest.batch_size > 1_000_000 {
            return bad(
                "ingest.batch_size",
                &self.ingest.batch_size,
                "must be between 1 and 1000000",
            );
        }
        if self.ingest.batch_timeout < Duration::from_millis(1) {
            return bad(
                "ingest.batch_timeout",
                &human(self.ingest.batch_timeout),
                "must be at least 1ms",
            );
        }
        if self.batch.max_attempts == 0 || self.batch.max_attempts > 100 {
            return bad(
                "batch.max_attempts",
                &self.batch.max_attempts,
                "must be between 1 and 100",
            );
        }
        if self.batch.concurrency == 0 || self.batch.concurrency > 64 {
            return bad(
                "batch.concurrency",
                &self.batch.concurrency,
                "must be between 1 and 64",
            );
        }
        if !(self.batch.delay_scale >= 0.0 && self.batch.delay_scale.is_finite()) {
            return bad(
                "batch.delay_scale",
                &self.batch.delay_scale,
                "must be a number of at least 0",
            );
        }
        if self.quality.interval < MIN_INTERVAL {
            return bad(
                "quality.interval",
                &human(self.quality.interval),
                "must be at least 100ms",
            );
        }
        if let Some(path) = &self.quality.checks_file {
            if !path.is_file() {
                return bad(
                    "quality.checks_file",
                    &path.display(),
                    "is not a readable file",
                );
            }
        }
        for (key, value) in [
            ("aiops.window", &self.aiops.window),
            ("aiops.resolve_after", &self.aiops.resolve_after),
        ] {
            if let Err(e) = heal_model::duration::parse_iso_duration(value) {
                return bad(
                    key,
                    value,
                    &format!("must be an ISO 8601 duration such as PT2H ({e})"),
                );
            }
        }
        if !(1..=50).contains(&self.aiops.max_hops) {
            return bad(
                "aiops.max_hops",
                &self.aiops.max_hops,
                "must be between 1 and 50",
            );
        }
        if !(0.0..=1.0).contains(&self.aiops.low_confidence) {
            return bad(
                "aiops.low_confidence",
                &self.aiops.low_confidence,
                "must be between 0 and 1",
            );
        }
        if self.aiops.refresh < MIN_INTERVAL {
            return bad(
                "aiops.refresh",
                &human(self.aiops.refresh),
                "must be at least 100ms",
            );
        }
        for (key, url) in [
            ("aiops.lineage_url", &self.aiops.lineage_url),
            ("aiops.llm_url", &self.aiops.llm_url),
        ] {
            if let Some(u) = url {
                if !u.starts_with("http://") && !u.starts_with("https://") {
                    return bad(key, u, "must be an http:// or https:// URL");
                }
            }
        }
        self.validate_executor()?;
        if self.lineage.project_interval < Duration::from_millis(1) {
            return bad(
                "lineage.project_interval",
                &human(self.lineage.project_interval),
                "must be at least 1ms",
            );
        }
        if let Some(uri) = &self.neo4j.uri {
            if !["bolt://", "neo4j://"].iter().any(|s| uri.starts_with(s)) {
                return bad(
                    "neo4j.uri",
                    uri,
                    "must start with bolt:// or neo4j:// (host:port after it; TLS is not supported yet)",
                );
            }
        }
        if !(1..=10_000).contains(&self.kafka.partitions) {
            return bad(
                "kafka.partitions",
                &self.kafka.partitions,
                "must be between 1 and 10000",
            );
        }
        if !matches!(self.kafka.assignment.as_str(), "group" | "static") {
            return bad(
                "kafka.assignment",
                &self.kafka.assignment,
                "must be group or static",
            );
        }
        if self.kafka.replicas < 1 || !(0..self.kafka.replicas).contains(&self.kafka.replica_index)
        {
            return bad(
                "kafka.replica_index",
                &self.kafka.replica_index,
                "must be between 0 and kafka.replicas - 1",
            );
        }
        if self.kafka.replication_factor < 1 {
            return bad(
                "kafka.replication_factor",
                &self.kafka.replication_factor,
                "must be at least 1",
            );
        }
        if self.database.max_connections == 0 {
            return bad("database.max_connections", &0, "must be at least 1");
        }
        if !(self.generator.events_per_second > 0.0 && self.generator.events_per_second.is_finite())
        {
            return bad(
                "generator.events_per_second",
                &self.generator.events_per_second,
                "must be a positive number",
            );
        }
        let mix = self.generator.schema_mix;
        if mix.iter().any(|w| *w < 0.0 || !w.is_finite()) || mix.iter().sum::<f64>() <= 0.0 {
            return bad(
                "generator.schema_mix",
                &format!("{mix:?}"),
                "weights must be non-negative and not all zero",
            );
        }
        if let Some(url) = &self.database.url {
            let plain = url.strip_prefix("jdbc:").unwrap_or(url);
            if !(plain.starts_with("postgres://") || plain.starts_with("postgresql://")) {
                return bad(
                    "database.url",
                    url,
                    "must start with postgresql:// (or jdbc:postgresql://)",
                );
            }
        }
        if let Some(servers) = &self.kafka.bootstrap_servers {
            if servers.trim().is_empty() || servers.split(',').any(|s| !s.contains(':')) {
                return bad(
                    "kafka.bootstrap_servers",
                    servers,
                    "must be host:port[,host:port…]",
                );
            }
        }
        if !matches!(
            self.log_level.as_str(),
            "trace" | "debug" | "info" | "warn" | "error"
        ) && !self.log_level.contains('=')
        {
            return bad(
                "log_level",
                &self.log_level,
                "must be trace, debug, info, warn, error or a filter like heal=debug",
            );
        }
        let tokens = self.auth.all_tokens()?;
        let mut names = std::collections::BTreeSet::new();
        for (i, t) in tokens.iter().enumerate() {
            let key = format!("auth.tokens[{i}]");
            if t.name.trim().is_empty() {
                return bad(&format!("{key}.name"), &"\"\"", "every token needs a name");
            }
            if !names.insert(t.name.as_str()) {
                return bad(&format!("{key}.name"), &t.name, "two tokens have this name");
            }
            if t.token.chars().count() < 16 || t.token.chars().any(char::is_whitespace) {
                return bad(
                    &format!("{key}.token"),
                    &"(not shown)",
                    "a token must be at least 16 characters without spaces",
                );
            }
            if t.scopes.is_empty() {
                return bad(&format!("{key}.scopes"), &"[]", "give at least one scope");
            }
            if let Some(s) = t.scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
                return bad(
                    &format!("{key}.scopes"),
                    s,
                    "scopes are read, operator and admin",
                );
            }
        }
        Ok(())
    }

    /// The database URL to connect to, with `user`/`password` merged in and a JDBC prefix
    /// removed; `None` means the embedded engine.
    pub fn database_url(&self) -> Option<String> {
        let url = self.database.url.as_ref()?;
        Some(crate::dburl::with_credentials(
            url,
            self.database.user.as_deref(),
            self.database.password.as_deref(),
        ))
    }

    /// The port a role listens on in microservices mode.
    pub fn role_port(&self, role: crate::Role) -> u16 {
        use crate::Role::*;
        match role {
            Generator => self.ports.generator,
            Ingest => self.ports.ingest,
            Batch => self.ports.batch,
            Quality => self.ports.quality,
            Lineage => self.ports.lineage,
            Aiops => self.ports.aiops,
            Incidents => self.ports.incidents,
        }
    }
}

fn describe(e: &figment::Error) -> ConfigError {
    let mut parts = Vec::new();
    for error in e.clone() {
        let key = error.path.join(".");
        let origin = error
            .metadata
            .as_ref()
            .map(|m| m.name.to_string())
            .unwrap_or_else(|| "defaults".into());
        let mut kind = if is_secret(&key) {
            "invalid value (not shown: secret)".to_string()
        } else {
            error.kind.to_string()
        };
        if let figment::error::Kind::UnknownField(field, _) = &error.kind {
            if let Some(stem) = field
                .strip_suffix("_ms")
                .or_else(|| field.strip_suffix("_secs"))
            {
                kind.push_str(&format!(
                    "; durations are written with their unit under the name without it: `{stem} = \"30s\"`"
                ));
            }
        }
        if key.is_empty() {
            parts.push(format!("{kind} (from {origin})"));
        } else {
            parts.push(format!("key `{key}`: {kind} (from {origin})"));
        }
    }
    ConfigError::Invalid(parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn kubernetes_service_links_are_not_settings() {
        let e = env(&[
            ("HEAL_INGEST_PORT", "tcp://10.0.0.7:8082"),
            ("HEAL_INGEST_SERVICE_HOST", "10.0.0.7"),
            ("HEAL_INGEST_SERVICE_PORT", "8082"),
            ("HEAL_INGEST_SERVICE_PORT_HTTP", "8082"),
            ("HEAL_INGEST_PORT_8082_TCP", "tcp://10.0.0.7:8082"),
            ("HEAL_INGEST_PORT_8082_TCP_ADDR", "10.0.0.7"),
            ("HEAL_INGEST_PORT_8082_TCP_PORT", "8082"),
            ("HEAL_INGEST_PORT_8082_TCP_PROTO", "tcp"),
            ("HEAL_PORTS__INGEST", "9082"),
        ]);
        let c = Config::load(None, false, &e, &[]).unwrap();
        assert_eq!(c.ports.ingest, 9082);
        // A misspelt setting still fails.
        let e = env(&[("HEAL_LOG_LEVL", "debug")]);
        assert!(Config::load(None, false, &e, &[]).is_err());
    }

    #[test]
    fn precedence_is_defaults_file_env_flags() {
        let dir = std::env::temp_dir().join(format!("heal-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("heal.toml");
        std::fs::write(
            &file,
            "http_addr = \"127.0.0.1:9000\"\n[ingest]\nbatch_size = 10\nbatch_timeout = \"7ms\"\n[kafka]\npartitions = 3\n",
        )
        .unwrap();
        let e = env(&[
            ("HEAL_INGEST__BATCH_SIZE", "20"),
            ("HEAL_KAFKA__PARTITIONS", "4"),
        ]);
        let flags = [("--partitions", "kafka.partitions", "5".to_string())];
        let c = Config::load(Some(&file), true, &e, &flags).unwrap();
        assert_eq!(c.http_addr.port(), 9000, "file beats defaults");
        assert_eq!(
            c.ingest.batch_timeout,
            Duration::from_millis(7),
            "file beats defaults"
        );
        assert_eq!(c.ingest.batch_size, 20, "env beats file");
        assert_eq!(c.kafka.partitions, 5, "flag beats env");
        assert_eq!(
            c.ingest.allowed_lateness,
            Duration::from_secs(3600),
            "default kept"
        );
    }

    #[test]
    fn seed_variables_are_accepted_and_jdbc_urls_get_credentials() {
        let e = env(&[
            ("DATABASE_URL", "jdbc:postgresql://db:5432/analytics"),
            ("DATABASE_USER", "heal"),
            ("DATABASE_PASSWORD", "p@ss"),
            ("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092"),
            ("NEO4J_URI", "bolt://neo4j:7687"),
        ]);
        let c = Config::load(None, false, &e, &[]).unwrap();
        assert_eq!(
            c.database_url().unwrap(),
            "postgresql://heal:p%40ss@db:5432/analytics"
        );
        assert_eq!(c.kafka.bootstrap_servers.as_deref(), Some("kafka:9092"));
        assert_eq!(c.neo4j.uri.as_deref(), Some("bolt://neo4j:7687"));
    }

    #[test]
    fn bad_values_name_the_key_the_value_and_where_it_came_from() {
        let e = env(&[("HEAL_INGEST__BATCH_SIZE", "lots")]);
        let err = Config::load(None, false, &e, &[]).unwrap_err().to_string();
        assert!(err.contains("ingest.batch_size"), "{err}");
        assert!(err.contains("lots"), "{err}");
        assert!(err.contains("HEAL_INGEST__BATCH_SIZE"), "{err}");

        let flags = [("--http-addr", "http_addr", "not-an-address".to_string())];
        let err = Config::load(None, false, &BTreeMap::new(), &flags)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("http_addr") && err.contains("--http-addr"),
            "{err}"
        );

        let e = env(&[("HEAL_KAFKA__PARTITIONS", "0")]);
        let err = Config::load(None, false, &e, &[]).unwrap_err().to_string();
        assert!(err.contains("kafka.partitions = 0"), "{err}");

        let e = env(&[("HEAL_NO_SUCH__KEY", "1")]);
        let err = Config::load(None, false, &e, &[]).unwrap_err().to_string();
        assert!(err.contains("no_such"), "{err}");

        let e = env(&[("NEO4J_URI", "http://neo4j:7474")]);
        let err = Config::load(None, false, &e, &[]).unwrap_err().to_string();
        assert!(
            err.contains("neo4j.uri = http://neo4j:7474") && err.contains("bolt://"),
            "{err}"
        );
        let e = env(&[("HEAL_LINEAGE__PROJECT_INTERVAL", "0s")]);
        let err = Config::load(None, false, &e, &[]).unwrap_err().to_string();
        assert!(err.contains("lineage.project_interval = 0s"), "{err}");
        let e = env(&[("HEAL_QUALITY__INTERVAL", "soon")]);
        let err = Config::load(None, false, &e, &[]).unwrap_err().to_string();
        assert!(
            err.contains("quality.interval") && err.contains("\"soon\" is not a duration"),
            "{err}"
        );
        let e = env(&[("HEAL_QUALITY__INTERVAL", "60")]);
        let err = Config::load(None, false, &e, &[]).unwrap_err().to_string();
        assert!(err.contains("60 has no unit"), "{err}");
        // A key of the old form says how durations are written now.
        let e = env(&[("HEAL_QUALITY__INTERVAL_MS", "60000")]);
        let err = Config::load(None, false, &e, &[]).unwrap_err().to_string();
        assert!(err.contains("`interval = \"30s\"`"), "{err}");
    }

    #[test]
    fn api_tokens_come_from_the_environment_or_a_file_and_are_checked_without_being_shown() {
        let e = env(&[(
            "HEAL_AUTH__TOKENS",
            r#"[{name="ci", token="0123456789abcdef-ci", scopes=["operator"]}]"#,
        )]);
        let c = Config::load(None, false, &e, &[]).unwrap();
        assert_eq!(c.auth.tokens[0].name, "ci");
        assert!(!format!("{c:?}").contains("0123456789abcdef-ci"));

        let dir = std::env::temp_dir().join(format!("heal-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tokens.toml");
        std::fs::write(
            &file,
            "[[tokens]]\nname = \"viewer\"\ntoken = \"read-only-secret-000\"\nscopes = [\"read\"]\n",
        )
        .unwrap();
        let e = env(&[
            ("HEAL_AUTH__TOKENS_FILE", file.to_str().unwrap()),
            (
                "HEAL_AUTH__TOKENS",
                r#"[{name="ci", token="0123456789abcdef-ci", scopes=["operator"]}]"#,
            ),
        ]);
        let c = Config::load(None, false, &e, &[]).unwrap();
        let all = c.auth.all_tokens().unwrap();
        assert_eq!(
            all.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            ["ci", "viewer"]
        );

        // Mistakes name the key and never show the token.
        for (tokens, key, secret) in [
            (
                r#"[{name="a", token="short", scopes=["read"]}]"#,
                "auth.tokens[0].token",
                "short",
            ),
            (
                r#"[{name="a", token="long-enough-token-1", scopes=["root"]}]"#,
                "auth.tokens[0].scopes",
                "long-enough-token-1",
            ),
            (
                r#"[{name="a", token="long-enough-token-1", scopes=["read"]}, {name="a", token="long-enough-token-2", scopes=["read"]}]"#,
                "auth.tokens[1].name",
                "long-enough-token-2",
            ),
        ] {
            let e = env(&[("HEAL_AUTH__TOKENS", tokens)]);
            let err = Config::load(None, false, &e, &[]).unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
            assert!(!err.contains(secret), "{err}");
        }
        std::fs::write(&file, "[[tokens]]\nname = \"x\"\n").unwrap();
        let e = env(&[("HEAL_AUTH__TOKENS_FILE", file.to_str().unwrap())]);
        let err = Config::load(None, false, &e, &[]).unwrap_err().to_string();
        assert!(err.contains("auth.tokens_file"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
