//! The lineage role. OpenLineage run, job and dataset events — from the platform's own roles
//! (through the `lineage_events` log) and from any emitter posting to `POST /api/v1/lineage`
//! — are validated ([`validate`]), stored once, and projected ([`mapping`]) into a graph of
//! streams, datasets, jobs, checks and KPIs ([`model`]). The graph lives in PostgreSQL
//! ([`pg`], the default) or in a Bolt/Cypher server such as Neo4j ([`bolt`]); both answer the
//! same questions ([`query`], [`service::LineageApi`]), in-process or over HTTP ([`client`]).

pub mod bolt;
pub mod client;
pub mod http;
pub mod mapping;
pub mod metrics;
pub mod model;
pub mod pg;
pub mod query;
pub mod service;
pub mod topic;

pub use client::HttpLineage;
/// Event validation lives in its own crate, which batch tests use without the role.
pub use heal_openlineage as validate;
pub use model::{Direction, Edge, EdgeKind, Node, NodeKind, Props};
pub use query::QueryError;
pub use service::{Graph, Lineage, LineageApi};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("graph database (Bolt): {0}")]
    Bolt(String),
    #[error("unexpected data in the lineage store: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, Error>;
