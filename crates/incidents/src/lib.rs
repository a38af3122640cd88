//! The incidents role: the incident store fed by the `incidents` topic (`store.rs`: applied
//! exactly once, with a timeline of everything that happened to each incident, feedback and
//! similar-incident search), the life cycle every move goes through (`state.rs`), the topic
//! loop (`role.rs`), the self-healing executor (`executor/`: policy, dry runs, actions with
//! checkpoints and rollback, verification on checks and KPIs, audit log) and the API
//! (`http.rs`).
//!
//! Not here yet (see the README): merge and split, and the executor's `replay_quarantine` and
//! `pause_source` actions (they stay recommendations for an operator).

pub mod executor;
pub mod http;
pub mod metrics;
pub mod openapi;
pub mod role;
pub mod state;
pub mod store;
