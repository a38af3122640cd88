//! The composition root of a `heal` process. [`App::create`] checks the configuration against
//! the chosen roles, opens the database (a server, or the embedded engine in monolithic mode),
//! applies migrations, creates the topics, and builds each chosen role; [`App::start`] then
//! serves HTTP (one port for all roles in monolithic mode, each role's own port otherwise) and
//! runs the roles' background tasks until shutdown is asked for.

mod app;
pub mod generate;
mod health;
pub mod telemetry;

pub use app::{App, Listen, Mode};
pub use health::Readiness;

/// Roles whose implementation exists in this build.
pub const IMPLEMENTED_ROLES: [heal_config::Role; 3] = [
    heal_config::Role::Generator,
    heal_config::Role::Ingest,
    heal_config::Role::Batch,
];

/// The batch engine settings a configuration asks for.
pub fn batch_settings(config: &heal_config::Config) -> heal_batch::Settings {
    heal_batch::Settings {
        max_attempts: config.batch.max_attempts,
        retry_backoff: std::time::Duration::from_millis(config.batch.retry_backoff_ms),
        concurrency: config.batch.concurrency,
        delay_scale: config.batch.delay_scale,
        namespace: "heal".into(),
    }
}
