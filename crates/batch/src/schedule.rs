//! When jobs run: `every 30s` / `every 5m` / `every 1h` intervals or five-field cron
//! expressions (`0 5 * * *`), one per job. Due jobs run together in dependency order; a job
//! whose inputs an upstream job has not yet refreshed waits for it.

use crate::engine::{Engine, Report, Selection, Trigger};
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// A run still `running` this long after it started is taken as interrupted.
const INTERRUPTED_AFTER: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub enum Schedule {
    Every(Duration),
    Cron(Box<croner::Cron>, String),
}

impl Schedule {
    pub fn parse(text: &str) -> std::result::Result<Schedule, String> {
        let t = text.trim();
        if let Some(rest) = t.strip_prefix("every ") {
            let rest = rest.trim();
            let split = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| {
                "an interval needs a unit: s, m, h or d (e.g. every 30s)".to_string()
            })?;
            let (n, unit) = rest.split_at(split);
            let n: u64 = n.parse().map_err(|_| {
                "an interval starts with a whole number (e.g. every 30s)".to_string()
            })?;
            let secs = match unit.trim() {
                "s" => n,
                "m" => n * 60,
                "h" => n * 3600,
                "d" => n * 86_400,
                other => return Err(format!("unknown interval unit {other:?}; use s, m, h or d")),
            };
            if secs == 0 {
                return Err("an interval must be longer than zero".into());
            }
            return Ok(Schedule::Every(Duration::from_secs(secs)));
        }
        let cron = croner::Cron::from_str(t).map_err(|e| {
            format!("not an interval (every 30s) nor a cron expression (0 5 * * *): {e}")
        })?;
        Ok(Schedule::Cron(Box::new(cron), t.to_string()))
    }

    /// The first time after `t` the job is due.
    pub fn next_after(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Schedule::Every(d) => t + chrono::Duration::from_std(*d).unwrap_or_default(),
            Schedule::Cron(c, _) => c
                .find_next_occurrence(&t, false)
                .unwrap_or(t + chrono::Duration::days(1)),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Schedule::Every(d) => format!("every {}s", d.as_secs()),
            Schedule::Cron(_, text) => text.clone(),
        }
    }
}

/// Each job's schedule.
#[derive(Debug, Clone, Default)]
pub struct Schedules(pub BTreeMap<String, Schedule>);

impl Schedules {
    /// `default` for every job of `engine`, overridden per job by `overrides`. Unknown job
    /// names and unparsable values are errors naming the key and value.
    pub fn build(
        engine: &Engine,
        default: &str,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Schedules> {
        let mut out = BTreeMap::new();
        let parse = |job: &str, value: &str| {
            Schedule::parse(value).map_err(|reason| Error::Schedule {
                job: job.to_string(),
                value: value.to_string(),
                reason,
            })
        };
        let fallback = parse("default", default)?;
        for job in engine.dag().ordered() {
            out.insert(job.name.to_string(), fallback.clone());
        }
        for (job, value) in overrides {
            if engine.dag().get(job).is_none() {
                return Err(Error::Schedule {
                    job: job.clone(),
                    value: value.clone(),
                    reason: "no job has this name".into(),
                });
            }
            out.insert(job.clone(), parse(job, value)?);
        }
        Ok(Schedules(out))
    }

    pub fn describe(&self, job: &str) -> Option<String> {
        self.0.get(job).map(Schedule::describe)
    }
}

/// What the scheduler has done, for the status API.
#[derive(Debug, Default)]
pub struct SchedulerState {
    pub next_due: Mutex<BTreeMap<String, DateTime<Utc>>>,
    pub last_report: Mutex<Option<(DateTime<Utc>, Report)>>,
}

/// Runs due jobs until `shutdown` turns true; the partition in flight finishes first.
pub async fn run_scheduler(
    engine: Arc<Engine>,
    schedules: Schedules,
    state: Arc<SchedulerState>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let start = Utc::now();
    {
        // Everything is due once at start: catch up with what changed while stopped.
        let mut next = state.next_due.lock().expect("scheduler lock");
        for job in schedules.0.keys() {
            next.insert(job.clone(), start);
        }
    }
    loop {
        if *shutdown.borrow() {
            break;
        }
        let now = Utc::now();
        let due: Vec<String> = state
            .next_due
            .lock()
            .expect("scheduler lock")
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(j, _)| j.clone())
            .collect();
        if !due.is_empty() {
            match engine.mark_interrupted(INTERRUPTED_AFTER).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(
                    runs = n,
                    "runs left running by a stopped process marked failed"
                ),
                Err(e) => tracing::warn!(error = %e, "cannot check for interrupted runs"),
            }
            let names: Vec<&str> = due.iter().map(String::as_str).collect();
            match engine
                .run(&names, Trigger::Schedule, Selection::default())
                .await
            {
                Ok(report) => {
                    if !report.runs.is_empty() {
                        tracing::info!(
                            runs = report.runs.len(),
                            failed = report.failed(),
                            waiting = report.waiting.len(),
                            "scheduled batch runs done"
                        );
                    }
                    *state.last_report.lock().expect("scheduler lock") = Some((now, report));
                }
                Err(e) => tracing::error!(error = %e, "scheduled batch run failed"),
            }
            let after = Utc::now();
            let mut next = state.next_due.lock().expect("scheduler lock");
            for job in &due {
                if let Some(s) = schedules.0.get(job) {
                    next.insert(job.clone(), s.next_after(after));
                }
            }
        }
        let wake = state
            .next_due
            .lock()
            .expect("scheduler lock")
            .values()
            .min()
            .copied()
            .unwrap_or(now + chrono::Duration::seconds(1));
        let wait = (wake - Utc::now())
            .to_std()
            .unwrap_or_default()
            .min(Duration::from_secs(1));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }
    tracing::info!("batch scheduler stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_and_cron_expressions() {
        let t: DateTime<Utc> = "2026-03-01T10:17:00Z".parse().unwrap();
        let s = Schedule::parse("every 5m").unwrap();
        assert_eq!(
            s.next_after(t),
            "2026-03-01T10:22:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        let s = Schedule::parse("0 5 * * *").unwrap();
        assert_eq!(
            s.next_after(t),
            "2026-03-02T05:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert!(Schedule::parse("every 5").unwrap_err().contains("unit"));
        assert!(Schedule::parse("every 0s").is_err());
        assert!(Schedule::parse("whenever").unwrap_err().contains("cron"));
    }
}
