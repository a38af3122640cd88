//! `referential`: the share of a window's references with no parent row (judged after the
//! check's grace, so a parent arriving a little later is not an orphan).

use super::rate::RateRule;
use super::{ident, Source};

/// Orphan references of `column` to `parent.parent_column` as a share of the references.
pub(super) fn rule(
    src: &Source,
    column: &str,
    parent: &str,
    parent_column: &str,
    max_orphan_rate: f64,
) -> RateRule {
    let c = ident(column);
    let cond = format!(
        "{c} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {p} p WHERE p.{pc} = {t}.{c})",
        p = ident(parent),
        pc = ident(parent_column),
        t = src.table
    );
    let (parent, parent_column, column) = (
        parent.to_string(),
        parent_column.to_string(),
        column.to_string(),
    );
    RateRule {
        counted: format!("count({c})::float8"),
        cond,
        max_rate: max_orphan_rate,
        threshold: format!("orphan rate ≤ {max_orphan_rate}"),
        keys: ("references", "orphans"),
        message: Box::new(move |k, rows| {
            format!("{k} of {rows} {column} values have no {parent}.{parent_column}")
        }),
        empty: "no references",
    }
}
