//! The batch role: analytics jobs declared by what they read and write ([`job`], [`catalog`]),
//! ordered into a DAG ([`dag`]), computed one day partition at a time and only where inputs
//! changed ([`engine`]), on interval or cron schedules ([`schedule`]), with run history, an
//! HTTP API ([`http`]) and OpenLineage and pipeline events ([`events`]).

pub mod catalog;
pub mod dag;
pub mod engine;
pub mod events;
pub mod http;
pub mod job;
pub mod metrics;
pub mod schedule;
pub mod status;

pub use dag::{Dag, DagError};
pub use engine::{Claimed, Engine, Report, RunOutcome, Selection, Settings, Trigger, Waiting};
pub use schedule::{run_scheduler, Schedule, Schedules};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Dag(#[from] DagError),
    #[error("no job is named {0:?}")]
    UnknownJob(String),
    #[error("{0}")]
    Injected(String),
    #[error("batch.schedules.{job} = {value:?}: {reason}")]
    Schedule {
        job: String,
        value: String,
        reason: String,
    },
}

pub type Result<T> = std::result::Result<T, Error>;
