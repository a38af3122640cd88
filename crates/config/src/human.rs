//! Durations in configuration, written with their unit (`500ms`, `30s`, `5m`, `1h 30m`) and
//! read into [`Duration`]s: `#[serde(with = "heal_config::human")]`.

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};
use std::fmt;
use std::time::Duration;

pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(Human)
}

/// Reads `s` as a duration with its unit.
pub fn parse(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("{s:?} is not a duration ({e}); write it with its unit, e.g. \"500ms\", \"30s\", \"5m\", \"1h\"")
    })
}

struct Human;

impl<'de> Visitor<'de> for Human {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a duration with its unit, e.g. \"500ms\", \"30s\", \"5m\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "{v} has no unit; write e.g. \"{v}ms\" or \"{v}s\""
        )))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "{v} has no unit; write e.g. \"{v}ms\" or \"{v}s\""
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_their_unit() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse(" 1h 30m "), Ok(Duration::from_secs(5400)));
        assert!(parse("soon").unwrap_err().contains("\"30s\""));
        assert!(parse("60").is_err());
    }
}
