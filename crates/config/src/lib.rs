//! Configuration of a `heal` process and the roles it can run.
//!
//! Precedence, lowest to highest (written once, here): built-in defaults < `heal.toml` <
//! environment variables < command-line flags. Environment variables are `HEAL_<KEY>` with
//! `__` separating sections (`HEAL_INGEST__BATCH_SIZE`), plus the seed's variables
//! (`DATABASE_URL`, `DATABASE_USER`, `DATABASE_PASSWORD`, `KAFKA_BOOTSTRAP_SERVERS`,
//! `NEO4J_URI`, `NEO4J_USERNAME`, `NEO4J_PASSWORD`). The environment is passed in as a map so
//! that tests never mutate the process environment.

pub mod dburl;
pub mod human;
mod role;
mod settings;

pub use role::{Role, RoleSet};
pub use settings::{
    ApiToken, AuthConfig, BatchConfig, Config, ConfigError, DatabaseConfig, ExecutorConfig,
    GeneratorConfig, IngestConfig, KafkaConfig, KpiConfig, LineageConfig, LogFormat, Neo4jConfig,
    PolicyRule, QualityConfig, RolePorts,
};
