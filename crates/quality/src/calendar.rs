//! The calendar of special days in the checks file: holidays, promotions, anything that
//! changes traffic on purpose. `[[calendar]]` tables, e.g.
//!
//! ```toml
//! [[calendar]]
//! name = "Black Friday"
//! kind = "promotion"
//! date = "2026-11-27"
//! until = "2026-11-30"          # optional: the last day, inclusive
//! datasets = ["orders"]         # optional: only these datasets' traffic (default: all)
//! ```
//!
//! Volume checks judge the windows of a declared day against earlier days of the same kind
//! (the first day of a kind is learned, not judged), and ordinary days never learn from a
//! declared one. Days are UTC dates, the data clock's.

use crate::checks::{Catalog, ChecksError};
use chrono::NaiveDate;
use serde::{Deserialize, Deserializer, Serialize};

/// One declared day, or a run of days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecialDay {
    pub name: String,
    /// Days of one kind are judged against each other (`promotion`, `holiday`, …).
    pub kind: String,
    /// The (first) day.
    #[serde(deserialize_with = "date")]
    pub date: NaiveDate,
    /// The last day, inclusive; absent: `date` alone.
    #[serde(default, deserialize_with = "optional_date")]
    pub until: Option<NaiveDate>,
    /// Datasets whose traffic it changes; empty: every dataset.
    #[serde(default)]
    pub datasets: Vec<String>,
}

impl SpecialDay {
    pub fn last(&self) -> NaiveDate {
        self.until.unwrap_or(self.date)
    }

    fn covers(&self, dataset: &str, day: NaiveDate) -> bool {
        (self.date..=self.last()).contains(&day)
            && (self.datasets.is_empty() || self.datasets.iter().any(|d| d == dataset))
    }
}

/// A date as a string (`"2026-11-27"`) or a TOML local date (`2026-11-27`).
fn date<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
    let text = match toml::Value::deserialize(d)? {
        toml::Value::String(s) => s,
        toml::Value::Datetime(dt) => dt.to_string(),
        other => {
            return Err(serde::de::Error::custom(format!(
                "{other} is not a date (YYYY-MM-DD)"
            )))
        }
    };
    NaiveDate::parse_from_str(&text, "%Y-%m-%d")
        .map_err(|e| serde::de::Error::custom(format!("{text:?} is not a date (YYYY-MM-DD): {e}")))
}

fn optional_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
    date(d).map(Some)
}

/// The declared days of a checks file.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Calendar {
    pub days: Vec<SpecialDay>,
}

impl Calendar {
    /// The declared day covering `day` for `dataset` (the first declared, when several do).
    pub fn on(&self, dataset: &str, day: NaiveDate) -> Option<&SpecialDay> {
        self.days.iter().find(|d| d.covers(dataset, day))
    }

    /// The kinds of day declared, in order of first declaration (their index is the kind's
    /// number for the detector).
    pub fn kinds(&self) -> Vec<&str> {
        let mut kinds: Vec<&str> = Vec::new();
        for d in &self.days {
            if !kinds.contains(&d.kind.as_str()) {
                kinds.push(&d.kind);
            }
        }
        kinds
    }

    /// Reads the `calendar` array of a checks file (`file` names it in errors) and checks its
    /// datasets against `catalog`.
    pub fn parse(
        value: &toml::Value,
        file: &str,
        catalog: &Catalog,
    ) -> Result<Calendar, ChecksError> {
        let err = |key: String, message: String| ChecksError {
            file: file.to_string(),
            check: None,
            key,
            message,
        };
        let toml::Value::Array(items) = value else {
            return Err(err(
                "calendar".into(),
                "must be an array of tables ([[calendar]])".into(),
            ));
        };
        let mut days = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let key = |k: &str| format!("calendar[{}]{k}", i + 1);
            let day: SpecialDay = item
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| err(key(""), e.message().to_string()))?;
            if day.name.trim().is_empty() {
                return Err(err(key(".name"), "must not be empty".into()));
            }
            if !crate::checks::valid_name(&day.kind) {
                return Err(err(
                    key(".kind"),
                    format!(
                        "{:?} is not a kind name (letters, digits, _ . - only)",
                        day.kind
                    ),
                ));
            }
            if day.last() < day.date {
                return Err(err(
                    key(".until"),
                    format!("{} is before the date {}", day.last(), day.date),
                ));
            }
            if let Some(d) = day
                .datasets
                .iter()
                .find(|d| !catalog.tables.contains_key(d.as_str()))
            {
                return Err(err(key(".datasets"), format!("no table {d:?}")));
            }
            days.push(day);
        }
        Ok(Calendar { days })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let mut c = Catalog::default();
        c.tables.insert("orders".into(), Default::default());
        c
    }

    fn parse(text: &str) -> Result<Calendar, ChecksError> {
        let top: toml::Table = text.parse().unwrap();
        Calendar::parse(&top["calendar"], "c.toml", &catalog())
    }

    #[test]
    fn days_are_read_as_strings_or_toml_dates_and_cover_their_datasets() {
        let c = parse(
            r#"
            [[calendar]]
            name = "Black Friday"
            kind = "promotion"
            date = "2026-11-27"
            until = 2026-11-30
            datasets = ["orders"]

            [[calendar]]
            name = "New Year"
            kind = "holiday"
            date = 2027-01-01
            "#,
        )
        .unwrap();
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            c.on("orders", d("2026-11-29")).unwrap().name,
            "Black Friday"
        );
        assert!(c.on("sessions", d("2026-11-29")).is_none(), "orders only");
        assert!(c.on("orders", d("2026-12-01")).is_none());
        assert_eq!(c.on("sessions", d("2027-01-01")).unwrap().kind, "holiday");
        assert_eq!(c.kinds(), ["promotion", "holiday"]);
    }

    #[test]
    fn mistakes_name_the_entry_and_the_key() {
        let e = parse("[[calendar]]\nname = \"x\"\nkind = \"promotion\"\ndate = \"27.11.2026\"")
            .unwrap_err();
        assert_eq!(e.key, "calendar[1]");
        assert!(e.message.contains("27.11.2026"), "{e:?}");
        let e = parse("[[calendar]]\nname = \"x\"\nkind = \"promotion\"\ndate = \"2026-11-27\"\nuntil = \"2026-11-26\"")
            .unwrap_err();
        assert_eq!(e.key, "calendar[1].until");
        let e = parse("[[calendar]]\nname = \"x\"\nkind = \"promotion\"\ndate = \"2026-11-27\"\ndatasets = [\"nope\"]")
            .unwrap_err();
        assert_eq!(e.key, "calendar[1].datasets");
        assert!(e.message.contains("nope"), "{e:?}");
        let e = parse(
            "[[calendar]]\nname = \"x\"\nkind = \"promotion\"\ndate = \"2026-11-27\"\nfactor = 3",
        )
        .unwrap_err();
        assert!(e.message.contains("factor"), "{e:?}");
        let e =
            parse("[[calendar]]\nname = \"x\"\nkind = \"a b\"\ndate = \"2026-11-27\"").unwrap_err();
        assert_eq!(e.key, "calendar[1].kind");
    }
}
