//! The quality role. Built so far: the anomaly detector ([`detect`]) that judges a metric's
//! history against a seasonal baseline, and reading series from CSV ([`series`]). The checks
//! file, the check runner and failure events are not built yet.

pub mod detect;
pub mod series;

pub use detect::{detect, DetectError, Detection, Direction, Flag, Settings};
pub use series::{parse_csv, Point, SeriesError};
