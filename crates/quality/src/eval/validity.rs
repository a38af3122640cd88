//! `validity`: the share of a window's values outside a range, a set or a pattern. Event
//! times past their arrival (`not_future`) are refusals, judged in [`super::refused`].

use super::ident;
use super::rate::RateRule;
use crate::checks::Rule;

/// The rule as a share of invalid values.
pub(super) fn rule(column: &str, rule: &Rule, max_invalid_rate: f64) -> RateRule {
    let c = ident(column);
    let (invalid, described) = match rule {
        Rule::Range { min, max } => {
            let mut parts = Vec::new();
            let mut text = Vec::new();
            if let Some(lo) = min {
                parts.push(format!("{c} < {lo}"));
                text.push(format!("≥ {lo}"));
            }
            if let Some(hi) = max {
                parts.push(format!("{c} > {hi}"));
                text.push(format!("≤ {hi}"));
            }
            (
                parts.join(" OR "),
                format!("{column} {}", text.join(" and ")),
            )
        }
        Rule::Values { values } => (
            format!(
                "NOT ({c}::text = ANY(ARRAY[{}]))",
                values
                    .iter()
                    .map(|v| format!("'{}'", v.replace('\'', "''")))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!("{column} in {{{}}}", values.join(", ")),
        ),
        Rule::Pattern { pattern } => (
            format!("NOT ({c}::text ~ '{}')", pattern.replace('\'', "''")),
            format!("{column} matches /{pattern}/"),
        ),
        Rule::NotFuture => unreachable!("incremental"),
    };
    let cond = format!("{c} IS NOT NULL AND ({invalid})");
    RateRule {
        counted: "count(*)::float8".into(),
        cond,
        max_rate: max_invalid_rate,
        threshold: format!("{described}; invalid rate ≤ {max_invalid_rate}"),
        keys: ("rows", "invalid"),
        message: Box::new(move |k, rows| format!("{k} of {rows} rows break {described}")),
        empty: "no rows",
    }
}

#[cfg(test)]
mod tests {
    use super::super::rate::judge;
    use super::super::tests::{at, hourly};
    use super::super::Status;
    use super::*;
    use crate::checks::CheckKind;

    #[test]
    fn rules_become_sql_and_a_readable_threshold() {
        let range = Rule::Range {
            min: Some(0.0),
            max: Some(100.0),
        };
        let r = rule("amount", &range, 0.01);
        assert_eq!(
            r.cond,
            r#""amount" IS NOT NULL AND ("amount" < 0 OR "amount" > 100)"#
        );
        assert_eq!(r.threshold, "amount ≥ 0 and ≤ 100; invalid rate ≤ 0.01");
        let values = Rule::Values {
            values: vec!["card".into(), "it's".into()],
        };
        let v = rule("method", &values, 0.0);
        assert!(v.cond.contains("ARRAY['card', 'it''s']"), "{}", v.cond);
        let check = hourly(CheckKind::Validity {
            column: "amount".into(),
            rule: range,
            max_invalid_rate: 0.01,
        });
        let o = judge(&check, at(5), 400.0, 8.0, &r);
        assert_eq!(o.status, Status::Fail);
        assert_eq!(o.message, "8 of 400 rows break amount ≥ 0 and ≤ 100");
        assert_eq!(judge(&check, at(5), 400.0, 4.0, &r).status, Status::Pass);
        assert_eq!(judge(&check, at(5), 0.0, 0.0, &r).message, "no rows");
    }
}
