//! Metric series as users hand them to `heal quality detect`: CSV with a header line and
//! `timestamp,value` rows; timestamps in RFC 3339 / ISO 8601 (`2026-03-01T10:00:00Z`, with or
//! without an offset; without one it is UTC) or `YYYY-MM-DD HH:MM:SS` (UTC); spacing may be
//! irregular.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;

/// One observation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    pub at: DateTime<Utc>,
    pub value: f64,
}

/// Why a series cannot be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SeriesError {
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("the series is empty: expected a header line and `timestamp,value` rows")]
    Empty,
}

/// Parses one timestamp in any of the accepted forms.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    None
}

/// Reads `timestamp,value` rows after a header line (further columns are ignored; fields may
/// be quoted). Blank lines are skipped; anything else that is not a row is an error naming its
/// line.
pub fn parse_csv(text: &str) -> Result<Vec<Point>, SeriesError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let line_of = |r: &csv::StringRecord| r.position().map_or(0, |p| p.line() as usize);
    let header = match records.next() {
        None => return Err(SeriesError::Empty),
        Some(Err(e)) => return Err(unreadable(&e)),
        Some(Ok(h)) => h,
    };
    if header.len() < 2 || parse_time(&header[0]).is_some() {
        return Err(SeriesError::Line {
            line: line_of(&header),
            reason: format!(
                "expected a header line such as `timestamp,value`, found {:?}",
                header.iter().collect::<Vec<_>>().join(",")
            ),
        });
    }
    let mut out = Vec::new();
    for record in records {
        let record = record.map_err(|e| unreadable(&e))?;
        let line = line_of(&record);
        let (Some(t), Some(v)) = (record.get(0), record.get(1)) else {
            return Err(SeriesError::Line {
                line,
                reason: format!(
                    "expected `timestamp,value`, found {:?}",
                    record.iter().collect::<Vec<_>>().join(",")
                ),
            });
        };
        let at = parse_time(t).ok_or_else(|| SeriesError::Line {
            line,
            reason: format!(
                "{t:?} is not a timestamp (use ISO 8601, e.g. 2026-03-01T10:00:00Z, or YYYY-MM-DD HH:MM:SS)"
            ),
        })?;
        let value: f64 = v.parse().map_err(|_| SeriesError::Line {
            line,
            reason: format!("{v:?} is not a number"),
        })?;
        if !value.is_finite() {
            return Err(SeriesError::Line {
                line,
                reason: format!("{v:?} is not a finite number"),
            });
        }
        out.push(Point { at, value });
    }
    if out.is_empty() {
        return Err(SeriesError::Empty);
    }
    Ok(out)
}

/// A CSV syntax error (an unclosed quote, invalid UTF-8) as a line error.
fn unreadable(e: &csv::Error) -> SeriesError {
    SeriesError::Line {
        line: e.position().map_or(0, |p| p.line() as usize),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_timestamp_forms_and_offsets_are_read() {
        let s = parse_csv(
            "timestamp,value\n2026-03-01T10:00:00Z,1\n\n2026-03-01 11:00:00,2.5\n2026-03-01T14:00:00+02:00,3\n",
        )
        .unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[1].at, parse_time("2026-03-01T11:00:00Z").unwrap());
        assert_eq!(s[2].at, parse_time("2026-03-01T12:00:00Z").unwrap());
        assert_eq!(s[1].value, 2.5);
    }

    #[test]
    fn quoted_fields_and_further_columns_are_read() {
        let s = parse_csv(
            "\"timestamp\",\"value\",\"label\"\n\"2026-03-01T10:00:00Z\",\" 4 \",0\n2026-03-01T11:00:00Z,5\n",
        )
        .unwrap();
        assert_eq!(s.iter().map(|p| p.value).collect::<Vec<_>>(), [4.0, 5.0]);
        let e = parse_csv("timestamp,value\n2026-03-01T10:00:00Z\n").unwrap_err();
        assert!(matches!(e, SeriesError::Line { line: 2, .. }), "{e}");
    }

    #[test]
    fn mistakes_name_their_line() {
        let e = parse_csv("timestamp,value\n2026-03-01T10:00:00Z,1\nyesterday,2\n").unwrap_err();
        assert!(matches!(e, SeriesError::Line { line: 3, .. }), "{e}");
        assert!(e.to_string().contains("yesterday"));
        let e = parse_csv("timestamp,value\n2026-03-01T10:00:00Z,many\n").unwrap_err();
        assert_eq!(e.to_string(), "line 2: \"many\" is not a number");
        let e = parse_csv("2026-03-01T10:00:00Z,1\n").unwrap_err();
        assert!(e.to_string().contains("header"), "{e}");
        assert_eq!(parse_csv("").unwrap_err(), SeriesError::Empty);
        assert_eq!(
            parse_csv("timestamp,value\n").unwrap_err(),
            SeriesError::Empty
        );
    }
}
