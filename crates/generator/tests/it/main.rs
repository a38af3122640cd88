//! Integration tests of heal-generator: the scenario files, the generator's stream, and the
//! agreement between the injected faults, their ground truth and what the decoder observes.

mod common;
mod faults;
mod generator;
mod scenarios;
