//! Helpers shared by the integration tests.

use chrono::{DateTime, Utc};
use heal_generator::{GeneratedEvent, Generator, InjectionRecord, Scenario};

/// The workspace's `scenarios/` folder.
pub use heal_testkit::scenarios_dir;

pub fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// Runs a scenario to the end.
pub fn run(scenario: &Scenario) -> (Vec<GeneratedEvent>, Vec<InjectionRecord>) {
    let mut generator = Generator::new(scenario);
    let messages: Vec<GeneratedEvent> = generator.by_ref().collect();
    (messages, generator.ground_truth())
}

/// Parses scenario TOML, panicking with the error.
pub fn scenario(text: &str) -> Scenario {
    Scenario::parse(text, "<test>").unwrap_or_else(|e| panic!("{e}"))
}
