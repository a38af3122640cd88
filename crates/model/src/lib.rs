//! The shared domain model of the platform: the canonical e-commerce events, the three wire
//! schema versions producers send (v1 is the seed's format), decoding with stable quarantine
//! reason codes, the fault kinds of scenario files and the names of the topics.

pub mod decode;
pub mod duration;
pub mod event;
pub mod fault;
pub mod incident;
pub mod metric;
pub mod money;
pub mod openlineage;
pub mod pipeline;
pub mod quality;
pub mod topics;
pub mod wire;

pub use decode::{decode, decode_mapped, DecodeError, FieldMapping, ReasonCode};
pub use event::{CanonicalEvent, EventBody, EventKind, SchemaVersion};
pub use fault::FaultKind;
