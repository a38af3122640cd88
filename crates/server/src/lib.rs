//! The composition root of a `heal` process. [`App::create`] checks the configuration against
//! the chosen roles, opens the database (a server, or the embedded engine in monolithic mode),
//! applies migrations, creates the topics, and builds each chosen role; [`App::start`] then
//! serves HTTP (one port for all roles in monolithic mode, each role's own port otherwise) and
//! runs the roles' background tasks until shutdown is asked for.

pub mod aiops;
mod app;
pub mod executor;
mod health;
pub mod role;
mod roles;
pub mod telemetry;

pub use app::{App, Listen, Mode};
pub use health::Readiness;

/// Roles whose implementation exists in this build.
pub const IMPLEMENTED_ROLES: [heal_config::Role; 7] = [
    heal_config::Role::Generator,
    heal_config::Role::Ingest,
    heal_config::Role::Batch,
    heal_config::Role::Quality,
    heal_config::Role::Lineage,
    heal_config::Role::Aiops,
    heal_config::Role::Incidents,
];

/// The quality engine a configuration asks for: the checks of `quality.checks_file` (or the
/// built-in ones), validated against the database. Fails naming the file, the check and the
/// key.
pub async fn quality_engine(
    config: &heal_config::Config,
    pool: sqlx::PgPool,
) -> anyhow::Result<heal_quality::Quality> {
    let catalog = heal_quality::Catalog::load(&pool).await?;
    let checks = match &config.quality.checks_file {
        Some(path) => heal_quality::ChecksFile::load(path, &catalog)?,
        None => heal_quality::ChecksFile::default_checks(&catalog)?,
    };
    Ok(heal_quality::Quality::new(pool, checks).await?)
}

/// The lineage service a configuration asks for: the graph in the Bolt server `neo4j.uri`
/// names, or in PostgreSQL; events validated against the official schemas when
/// `lineage.openlineage_spec_dir` is set. Fails, naming the key, when the schemas cannot be
/// loaded or the Bolt server cannot be reached.
pub async fn lineage_service(
    config: &heal_config::Config,
    pool: sqlx::PgPool,
) -> anyhow::Result<heal_lineage::Lineage> {
    use anyhow::Context;
    let schemas = match &config.lineage.openlineage_spec_dir {
        Some(dir) => Some(std::sync::Arc::new(heal_lineage::validate::Schemas::load(
            dir,
        )?)),
        None => None,
    };
    let graph = match &config.neo4j.uri {
        Some(uri) => {
            let settings = heal_lineage::bolt::BoltSettings {
                uri: uri.clone(),
                username: config.neo4j.username.clone(),
                password: config.neo4j.password.clone(),
                database: config.neo4j.database.clone(),
            };
            let g = heal_lineage::bolt::BoltGraph::connect(settings)
                .await
                .with_context(|| format!("neo4j.uri = {uri}"))?;
            heal_lineage::Graph::Bolt(g)
        }
        None => heal_lineage::Graph::Postgres(heal_lineage::pg::PgGraph::new(pool.clone())),
    };
    Ok(heal_lineage::Lineage::new(graph, pool, schemas))
}

/// The ingest settings a configuration asks for.
pub fn ingest_settings(config: &heal_config::Config) -> heal_ingest::Settings {
    let span =
        |d: std::time::Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    heal_ingest::Settings {
        batch_size: config.ingest.batch_size,
        batch_timeout: config.ingest.batch_timeout,
        allowed_lateness: span(config.ingest.allowed_lateness),
        future_tolerance: span(config.ingest.future_tolerance),
    }
}

/// The batch engine settings a configuration asks for.
pub fn batch_settings(config: &heal_config::Config) -> heal_batch::Settings {
    heal_batch::Settings {
        max_attempts: config.batch.max_attempts,
        retry_backoff: config.batch.retry_backoff,
        concurrency: config.batch.concurrency,
        delay_scale: config.batch.delay_scale,
        namespace: heal_model::openlineage::JOB_NAMESPACE.into(),
    }
}
