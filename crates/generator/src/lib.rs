//! The event generator of the platform: a deterministic, seeded e-commerce simulation
//! ([`sim`]), scenario files describing a run and the faults to inject into it ([`scenario`]),
//! fault injection with exact ground truth ([`faults`]), and the [`Generator`] tying them
//! together into the stream of messages a producer would send to the bus.
//!
//! The crate is a pure library: it reads scenario files and does no other I/O. Pacing against
//! the wall clock and publishing are the caller's business.
//!
//! ```
//! use heal_generator::{Generator, Scenario};
//!
//! let scenario: Scenario = r#"
//!     name = "tiny"
//!     seed = 1
//!     start = "2026-03-01T00:00:00Z"
//!     days = 0.1
//!     events_per_day = 2000
//!
//!     [[fault]]
//!     kind = "late_events"
//!     target = "product_view"
//!     start = "PT30M"
//!     duration = "PT1H"
//!     rate = 0.5
//! "#
//! .parse()
//! .unwrap();
//! let mut generator = Generator::new(&scenario);
//! let messages: Vec<_> = generator.by_ref().collect();
//! assert!(messages.windows(2).all(|w| w[0].produced_at <= w[1].produced_at));
//! let truth = generator.ground_truth();
//! assert_eq!(truth[0].expected, "late");
//! ```

pub mod faults;
mod fields;
mod generator;
pub mod metrics;
pub mod role;
pub mod scenario;
pub mod sim;
mod versions;

pub use faults::InjectionRecord;
pub use generator::{GeneratedEvent, Generator};
pub use scenario::{
    format_iso_duration, parse_iso_duration, FaultAction, FaultSpec, Scenario, ScenarioError,
    SchemaDrift, SchemaMix, Target,
};
pub use sim::Simulation;
