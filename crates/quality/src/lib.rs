//! The quality role: declarative checks from a checks file ([`checks`]), measured over windows
//! of event time or over what arrived since their last run ([`eval`]), judged against their
//! rules and, for volume, freshness, completeness and distribution metrics, against a
//! seasonal baseline of their own history ([`detect`]); results stored with their metric,
//! repeated failures folded into ongoing conditions whose changes are published as failure
//! events ([`runner`]); the role's loop ([`role`]) and its HTTP API ([`http`]).

pub mod calendar;
pub mod checks;
pub mod condition;
pub mod detect;
pub mod eval;
pub mod http;
pub mod metrics;
pub mod report;
pub mod role;
pub mod runner;
pub mod score;
pub mod series;
pub mod stats;

pub use checks::{Catalog, Check, CheckKind, ChecksError, ChecksFile};
pub use detect::{detect, DetectError, Detection, Direction, Flag, Settings};
pub use eval::Status;
pub use runner::{CheckReport, CycleReport, Error, Quality};
pub use series::{parse_csv, Point, SeriesError};
