//! What a job is: the tables and columns it reads and writes, how its inputs map onto its day
//! partitions, and the SQL that computes one partition. The DAG, the incremental plan and the
//! lineage events are all derived from these declarations.

use serde::Serialize;

/// One table a job reads.
#[derive(Debug, Clone, Serialize)]
pub struct Input {
    pub table: &'static str,
    /// The column that places a row in a day: a `timestamptz` column, or `day` (a date) for
    /// tables written by other jobs; empty for a reference table read whole (e.g. rates).
    pub time_column: &'static str,
    pub columns: &'static [&'static str],
    /// Output day `D` reads this input's days `D ..= D + window_days` (e.g. 30 for 30-day
    /// retention). Inputs with a window of 0 also define which days exist.
    pub window_days: i32,
}

impl Input {
    /// False for reference tables, which have no day partitions.
    pub fn partitioned(&self) -> bool {
        !self.time_column.is_empty()
    }
}

/// Where one output column comes from: `(column, kind, inputs)` with `kind` one of
/// `IDENTITY` (copied), `TRANSFORMATION` (computed from the inputs row by row) or
/// `AGGREGATION` (computed over many rows), and `inputs` as `table.column`.
pub type Derivation = (&'static str, &'static str, &'static [&'static str]);

/// One table a job writes, one day partition at a time, and the statement that fills a
/// partition: `$1` is the day (date), `$2` its start and `$3` its end (timestamptz, UTC).
#[derive(Debug, Clone, Serialize)]
pub struct Output {
    pub table: &'static str,
    pub columns: &'static [&'static str],
    /// Column-level lineage: every output column and the input columns it is made of.
    pub derives: &'static [Derivation],
    #[serde(skip)]
    pub sql: &'static str,
}

/// A business metric a job's output carries, which lineage shows as the end of the chain
/// (what breaks for the business when a table upstream breaks).
#[derive(Debug, Clone, Serialize)]
pub struct Kpi {
    pub name: &'static str,
    pub table: &'static str,
    pub column: &'static str,
    /// `critical`, `high`, `medium` or `low`.
    pub criticality: &'static str,
    pub description: &'static str,
}

/// A declared job.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub name: &'static str,
    pub description: &'static str,
    pub inputs: Vec<Input>,
    pub outputs: Vec<Output>,
    /// Counts rows of a partition left out, by reason: a query with the same parameters as the
    /// output statements returning `(reason text, rows int8)`.
    #[serde(skip)]
    pub exclusions: Option<&'static str>,
    /// The KPIs read from this job's outputs.
    pub kpis: &'static [Kpi],
}

impl Job {
    /// The widest input window: how many later days an output day depends on.
    pub fn max_window(&self) -> i32 {
        self.inputs.iter().map(|i| i.window_days).max().unwrap_or(0)
    }

    pub fn writes(&self, table: &str) -> bool {
        self.outputs.iter().any(|o| o.table == table)
    }

    pub fn reads(&self, table: &str) -> Option<&Input> {
        self.inputs.iter().find(|i| i.table == table)
    }

    /// Checks the column lineage against the declared columns: every output column is
    /// derived, from columns the job declares it reads, in one of the known ways.
    pub fn check_lineage(&self) -> Result<(), String> {
        for out in &self.outputs {
            for col in out.columns {
                if !out.derives.iter().any(|d| d.0 == *col) {
                    return Err(format!("{}.{col} has no derivation", out.table));
                }
            }
            for (col, kind, from) in out.derives {
                if !out.columns.contains(col) {
                    return Err(format!(
                        "{}.{col} is derived but not a declared column",
                        out.table
                    ));
                }
                if !matches!(*kind, "IDENTITY" | "TRANSFORMATION" | "AGGREGATION") {
                    return Err(format!(
                        "{}.{col}: unknown derivation kind {kind}",
                        out.table
                    ));
                }
                for source in *from {
                    let (table, column) = source.split_once('.').ok_or_else(|| {
                        format!("{}.{col}: {source:?} is not table.column", out.table)
                    })?;
                    match self.reads(table) {
                        Some(input) if input.columns.contains(&column) => {}
                        _ => {
                            return Err(format!(
                                "{}.{col} derives from {source}, which the job does not declare it reads",
                                out.table
                            ))
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks the KPI declarations: each names a declared output column and a known
    /// criticality.
    pub fn check_kpis(&self) -> Result<(), String> {
        for k in self.kpis {
            match self.outputs.iter().find(|o| o.table == k.table) {
                Some(o) if o.columns.contains(&k.column) => {}
                _ => {
                    return Err(format!(
                        "KPI {}: {}.{} is not a declared output column",
                        k.name, k.table, k.column
                    ))
                }
            }
            if !matches!(k.criticality, "critical" | "high" | "medium" | "low") {
                return Err(format!(
                    "KPI {}: unknown criticality {}",
                    k.name, k.criticality
                ));
            }
        }
        Ok(())
    }

    /// Every statement the job runs, for documentation and the OpenLineage SQL facet.
    pub fn sql_text(&self) -> String {
        let mut parts: Vec<&str> = self.outputs.iter().map(|o| o.sql.trim()).collect();
        if let Some(e) = self.exclusions {
            parts.push(e.trim());
        }
        parts.join(";\n\n")
    }
}
