//! The incidents role: the incident store fed by the `incidents` topic (`store.rs`: applied
//! exactly once, with a timeline of everything that happened to each incident, feedback and
//! similar-incident search), the life cycle every move goes through (`state.rs`), the topic
//! loop (`role.rs`) and the API (`http.rs`).
//!
//! Not here yet (see the README): authentication, the OpenAPI document, merge and split,
//! feedback reaching the AI Ops classifier, and the self-healing executor.

pub mod http;
pub mod metrics;
pub mod openapi;
pub mod role;
pub mod state;
pub mod store;
