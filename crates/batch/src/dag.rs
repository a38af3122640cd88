//! The job graph, derived from what each job reads and writes: job B depends on job A when B
//! reads a table A writes. Built once at start; a cycle or two writers of one table are
//! configuration errors.

use crate::job::Job;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DagError {
    #[error("table {table} is written by both {first} and {second}")]
    TwoWriters {
        table: String,
        first: String,
        second: String,
    },
    #[error("jobs {0:?} depend on each other in a cycle")]
    Cycle(Vec<String>),
    #[error("two jobs are named {0}")]
    DuplicateName(String),
    #[error("job {job}: {detail}")]
    Lineage { job: String, detail: String },
}

#[derive(Debug, Clone)]
pub struct Dag {
    jobs: Vec<Job>,
    /// Indexes of `jobs` in run order (every job after the jobs it reads from).
    order: Vec<usize>,
    /// For each job, the jobs it reads from.
    upstream: Vec<BTreeSet<usize>>,
}

impl Dag {
    pub fn new(jobs: Vec<Job>) -> Result<Dag, DagError> {
        let mut names = BTreeSet::new();
        let mut writer: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, job) in jobs.iter().enumerate() {
            if !names.insert(job.name) {
                return Err(DagError::DuplicateName(job.name.to_string()));
            }
            job.check_lineage()
                .and_then(|()| job.check_kpis())
                .map_err(|detail| DagError::Lineage {
                    job: job.name.to_string(),
                    detail,
                })?;
            for out in &job.outputs {
                if let Some(first) = writer.insert(out.table, i) {
                    return Err(DagError::TwoWriters {
                        table: out.table.to_string(),
                        first: jobs[first].name.to_string(),
                        second: job.name.to_string(),
                    });
                }
            }
        }
        let upstream: Vec<BTreeSet<usize>> = jobs
            .iter()
            .map(|job| {
                job.inputs
                    .iter()
                    .filter_map(|input| writer.get(input.table).copied())
                    .collect()
            })
            .collect();
        // Kahn's algorithm, taking ready jobs by name so the order is stable.
        let mut remaining: Vec<BTreeSet<usize>> = upstream.clone();
        let mut done = vec![false; jobs.len()];
        let mut order = Vec::with_capacity(jobs.len());
        while order.len() < jobs.len() {
            let ready: Vec<usize> = (0..jobs.len())
                .filter(|i| !done[*i] && remaining[*i].is_empty())
                .collect();
            if ready.is_empty() {
                let stuck = (0..jobs.len())
                    .filter(|i| !done[*i])
                    .map(|i| jobs[i].name.to_string())
                    .collect();
                return Err(DagError::Cycle(stuck));
            }
            let mut ready = ready;
            ready.sort_by_key(|i| jobs[*i].name);
            for i in ready {
                done[i] = true;
                order.push(i);
                for r in remaining.iter_mut() {
                    r.remove(&i);
                }
            }
        }
        Ok(Dag {
            jobs,
            order,
            upstream,
        })
    }

    /// Jobs in run order.
    pub fn ordered(&self) -> impl Iterator<Item = &Job> {
        self.order.iter().map(|i| &self.jobs[*i])
    }

    pub fn get(&self, name: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.name == name)
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.jobs.iter().position(|j| j.name == name)
    }

    /// The jobs `name` reads from directly.
    pub fn upstream(&self, name: &str) -> Vec<&Job> {
        self.index(name)
            .map(|i| self.upstream[i].iter().map(|u| &self.jobs[*u]).collect())
            .unwrap_or_default()
    }

    /// The jobs that read from `name` directly.
    pub fn downstream(&self, name: &str) -> Vec<&Job> {
        let Some(i) = self.index(name) else {
            return Vec::new();
        };
        self.order
            .iter()
            .filter(|j| self.upstream[**j].contains(&i))
            .map(|j| &self.jobs[*j])
            .collect()
    }

    /// `name` and everything downstream of it, in run order.
    pub fn with_descendants(&self, name: &str) -> Vec<&Job> {
        let Some(start) = self.index(name) else {
            return Vec::new();
        };
        let mut keep = BTreeSet::from([start]);
        for i in &self.order {
            if self.upstream[*i].iter().any(|u| keep.contains(u)) {
                keep.insert(*i);
            }
        }
        self.order
            .iter()
            .filter(|i| keep.contains(i))
            .map(|i| &self.jobs[*i])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Input, Output};

    fn job(name: &'static str, reads: &[&'static str], writes: &'static str) -> Job {
        Job {
            name,
            description: "",
            inputs: reads
                .iter()
                .map(|t| Input {
                    table: t,
                    time_column: "day",
                    columns: &[],
                    window_days: 0,
                })
                .collect(),
            outputs: vec![Output {
                table: writes,
                columns: &[],
                derives: &[],
                sql: "",
            }],
            exclusions: None,
            kpis: &[],
        }
    }

    #[test]
    fn orders_jobs_after_what_they_read() {
        let dag = Dag::new(vec![
            job("report", &["clean"], "report_t"),
            job("clean", &["raw"], "clean"),
            job("other", &["raw"], "other_t"),
            job("final", &["report_t", "other_t"], "final_t"),
        ])
        .unwrap();
        let order: Vec<&str> = dag.ordered().map(|j| j.name).collect();
        assert_eq!(order, ["clean", "other", "report", "final"]);
        let up: Vec<&str> = dag.upstream("final").iter().map(|j| j.name).collect();
        assert_eq!(up, ["report", "other"]);
        let down: Vec<&str> = dag
            .with_descendants("clean")
            .iter()
            .map(|j| j.name)
            .collect();
        assert_eq!(down, ["clean", "report", "final"]);
    }

    #[test]
    fn cycles_and_two_writers_are_refused() {
        let err = Dag::new(vec![job("a", &["b_t"], "a_t"), job("b", &["a_t"], "b_t")]).unwrap_err();
        assert_eq!(err, DagError::Cycle(vec!["a".into(), "b".into()]));
        let err = Dag::new(vec![job("a", &[], "t"), job("b", &[], "t")]).unwrap_err();
        assert!(matches!(err, DagError::TwoWriters { .. }), "{err}");
    }

    #[test]
    fn column_lineage_must_match_the_declared_columns() {
        let mut j = job("a", &["raw"], "out");
        j.inputs[0].columns = &["x"];
        j.outputs[0].columns = &["y"];
        j.outputs[0].derives = &[("y", "IDENTITY", &["raw.z"])];
        let err = Dag::new(vec![j.clone()]).unwrap_err();
        assert!(err.to_string().contains("raw.z"), "{err}");
        j.outputs[0].derives = &[];
        let err = Dag::new(vec![j.clone()]).unwrap_err();
        assert!(err.to_string().contains("out.y has no derivation"), "{err}");
        j.outputs[0].derives = &[("y", "IDENTITY", &["raw.x"])];
        assert!(Dag::new(vec![j]).is_ok());
    }

    #[test]
    fn the_catalog_forms_a_dag() {
        let dag = Dag::new(crate::catalog::jobs()).unwrap();
        let order: Vec<&str> = dag.ordered().map(|j| j.name).collect();
        let pos = |n: &str| order.iter().position(|o| *o == n).unwrap();
        assert!(pos("stg_orders") < pos("daily_revenue"));
        assert!(pos("stg_payments") < pos("user_funnel"));
        assert!(pos("stg_payments") < pos("payment_success"));
        let down: Vec<&str> = dag
            .downstream("stg_payments")
            .iter()
            .map(|j| j.name)
            .collect();
        assert_eq!(down, ["daily_revenue", "payment_success", "user_funnel"]);
    }
}
