//! The AI Ops role: failure events (from `data-quality-checks`) and pipeline events become
//! incidents — correlated over lineage and data time, with grounded root causes, a class
//! with its confidence, an evidence-based explanation and ranked remediation recommendations —
//! published on `incidents`.
//!
//! - [`topology`]: the lineage snapshot the engine walks
//! - [`symptom`]: a failure event normalized (node, data-time span, reason codes, features)
//! - [`engine`]: correlation, recurrence and resolution; builds each incident
//! - [`rootcause`]: candidate ranking with lineage paths
//! - [`classify`]: the classifier (rule priors, learned labels)
//! - [`explain`]: the deterministic explanation; [`llm`]: optional prose
//! - [`remedy`]: typed remediation actions and their success priors
//! - [`role`]: topics in, incidents out, storage; [`http`]: the API

pub mod classify;
pub mod engine;
pub mod explain;
pub mod http;
pub mod llm;
pub mod metrics;
pub mod remedy;
pub mod role;
pub mod rootcause;
pub mod symptom;
pub mod topology;

pub use engine::{Engine, Settings};
pub use role::AiopsRole;
pub use topology::{GraphEdge, GraphNode, GraphSnapshot, LineageSource, Topology};
