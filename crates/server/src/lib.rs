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
pub const IMPLEMENTED_ROLES: [heal_config::Role; 2] =
    [heal_config::Role::Generator, heal_config::Role::Ingest];
