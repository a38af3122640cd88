//! The quality role's loop: a check cycle every `interval`, plus the pipeline checks at once
//! whenever a batch job reports on `pipeline-events`, and the quarantine checks at once
//! whenever the ingest role reports refused events there; the failure events of each cycle
//! are published on `data-quality-checks`, keyed by check.

use crate::runner::{CycleReport, Error, Quality};
use heal_bus::{Bus, Consumer, Record};
use heal_model::pipeline::{PipelineEvent, PipelineStatus};
use heal_model::quality::{FailureEvent, RecheckRequest};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Mutex};

/// The engine with where its events go.
pub struct QualityRole {
    pub quality: Arc<Quality>,
    bus: Option<Bus>,
    topic: String,
    /// One cycle at a time in this process (replicas coordinate through advisory locks).
    running: Mutex<()>,
    /// Whether ingest's reports of refused events run the quarantine checks at once.
    on_refusals: bool,
}

impl QualityRole {
    pub fn new(quality: Arc<Quality>, bus: Option<Bus>, topic: &str) -> QualityRole {
        QualityRole {
            quality,
            bus,
            topic: topic.to_string(),
            running: Mutex::new(()),
            on_refusals: true,
        }
    }

    /// Whether ingest's reports of refused events run the quarantine checks at once (the
    /// default) or wait for the next cycle.
    pub fn on_refusals(mut self, on: bool) -> QualityRole {
        self.on_refusals = on;
        self
    }

    /// Runs a cycle (of every check, or one) and publishes its failure events.
    pub async fn run(&self, only: Option<&str>) -> Result<CycleReport, Error> {
        let _guard = self.running.lock().await;
        let report = self.quality.run_cycle(only).await?;
        self.publish(&report.events).await;
        if let Err(e) = self.to_lineage(&report).await {
            tracing::warn!(error = %e, "cannot record check results for lineage");
        }
        Ok(report)
    }

    /// Runs the checks that read the ingest quarantine, at once (the ingest role announced a
    /// micro-batch with refusals), and publishes their failure events. Lineage hears of the
    /// run only when a condition changed: the next full cycle reports the rest.
    pub async fn run_quarantine_checks(&self) -> Result<CycleReport, Error> {
        let _guard = self.running.lock().await;
        let report = self.quality.run_checks(Quality::reads_quarantine).await?;
        self.publish(&report.events).await;
        if !report.events.is_empty() {
            if let Err(e) = self.to_lineage(&report).await {
                tracing::warn!(error = %e, "cannot record check results for lineage");
            }
        }
        Ok(report)
    }

    /// Records the cycle's checks as an OpenLineage run event of the job `quality`, with a
    /// `dataQualityAssertions` facet per dataset, so the lineage graph shows each check on
    /// its dataset and whether it currently fails (an open condition).
    async fn to_lineage(&self, report: &CycleReport) -> Result<(), sqlx::Error> {
        use heal_model::openlineage as ol;
        let ran: Vec<&str> = report
            .checks
            .iter()
            .filter(|c| c.evaluated > 0)
            .map(|c| c.check.as_str())
            .collect();
        if ran.is_empty() {
            return Ok(());
        }
        let pool = self.quality.pool();
        let failing: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT check_name FROM quality_conditions WHERE state = 'open'",
        )
        .fetch_all(pool)
        .await?;
        let producer = ol::producer("quality");
        let mut by_dataset: std::collections::BTreeMap<&str, Vec<serde_json::Value>> =
            Default::default();
        for check in self
            .quality
            .checks()
            .checks
            .iter()
            .filter(|c| ran.contains(&c.name.as_str()))
        {
            let mut a = serde_json::json!({
                "assertion": check.kind.type_name(),
                "name": check.name,
                "success": !failing.contains(&check.name),
                "severity": if check.severity >= heal_model::quality::Severity::High { "error" } else { "warn" },
            });
            if let Some(d) = &check.description {
                a["description"] = serde_json::json!(d);
            }
            if let Some(c) = check.column.as_deref().filter(|c| !c.contains(',')) {
                a["column"] = serde_json::json!(c);
            }
            by_dataset
                .entry(check.dataset.as_str())
                .or_default()
                .push(a);
        }
        let inputs: Vec<serde_json::Value> = by_dataset
            .into_iter()
            .filter(|(ds, _)| !ds.is_empty())
            .map(|(ds, assertions)| {
                serde_json::json!({
                    "namespace": ol::POSTGRES_NAMESPACE,
                    "name": format!("public.{ds}"),
                    "inputFacets": { "dataQualityAssertions": ol::facet(
                        &producer,
                        "https://openlineage.io/spec/facets/1-1-0/DataQualityAssertionsDatasetFacet.json#/$defs/DataQualityAssertionsDatasetFacet",
                        serde_json::json!({ "assertions": assertions }),
                    ) },
                })
            })
            .collect();
        let event = serde_json::json!({
            "eventTime": ol::time(chrono::Utc::now()),
            "producer": producer,
            "schemaURL": ol::RUN_EVENT,
            "eventType": "COMPLETE",
            "run": { "runId": uuid::Uuid::new_v4() },
            "job": { "namespace": ol::JOB_NAMESPACE, "name": "quality" },
            "inputs": inputs,
            "outputs": [],
        });
        heal_store::lineage_log::record(pool, "quality", &event).await?;
        Ok(())
    }

    async fn publish(&self, events: &[FailureEvent]) {
        let Some(bus) = &self.bus else { return };
        if events.is_empty() {
            return;
        }
        let records: Vec<Record> = events
            .iter()
            .map(|e| Record {
                key: e.check.as_bytes().to_vec(),
                payload: serde_json::to_vec(e).expect("events serialize"),
                timestamp_ms: e.emitted_at.timestamp_millis(),
            })
            .collect();
        match bus.send_evicting(&self.topic, records).await {
            Ok(()) => metrics::counter!("heal_quality_failure_events_total")
                .increment(events.len() as u64),
            Err(e) => {
                tracing::warn!(error = %e, topic = %self.topic, "cannot publish failure events")
            }
        }
    }
}

/// Runs cycles every `interval` until `stop`; the pipeline checks whenever `pipeline` (a
/// consumer of `pipeline-events`) delivers a run's outcome, and the quarantine checks whenever
/// it delivers the ingest role's announcement of refused events (a stream fault becomes a
/// failure event within a second or two of being ingested, not at the next cycle).
pub async fn run_loop(
    role: Arc<QualityRole>,
    interval: Duration,
    mut pipeline: Option<(Consumer, String)>,
    mut requests: Option<(Consumer, String)>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let triggered: Option<Trigger> = tokio::select! {
            _ = stop.wait_for(|v| *v) => return,
            _ = tick.tick() => None,
            t = next_trigger(&mut pipeline) => Some(t),
            names = next_recheck(&mut requests) => Some(Trigger {
                checks: names,
                ..Trigger::default()
            }),
        };
        let Some(triggered) = triggered else {
            cycle(&role, None).await;
            continue;
        };
        if triggered.refusals && role.on_refusals {
            match role.run_quarantine_checks().await {
                Ok(r) => tracing::debug!(
                    checks = r.checks.len(),
                    events = r.events.len(),
                    wall_ms = r.wall_ms,
                    "quarantine checks after refusals"
                ),
                Err(e) => tracing::warn!(error = %e, "quarantine checks failed"),
            }
        }
        let mut names: Vec<String> = triggered
            .jobs
            .iter()
            .flat_map(|job| role.quality.triggered_by(job))
            .chain(
                triggered
                    .checks
                    .into_iter()
                    .filter(|name| role.quality.checks().get(name).is_some()),
            )
            .collect();
        names.sort();
        names.dedup();
        for name in names {
            cycle(&role, Some(&name)).await;
        }
    }
}

async fn cycle(role: &QualityRole, only: Option<&str>) {
    match role.run(only).await {
        Ok(r) => {
            let failed: usize = r.checks.iter().map(|c| c.failed).sum();
            tracing::info!(
                checks = r.checks.len(),
                failed,
                events = r.events.len(),
                wall_ms = r.wall_ms,
                "quality cycle"
            );
        }
        Err(e) => tracing::warn!(error = %e, "quality cycle failed"),
    }
}

/// What one batch of pipeline events asks the quality role to run.
#[derive(Debug, Default, PartialEq)]
struct Trigger {
    /// Jobs whose runs finished or were delayed.
    jobs: Vec<String>,
    /// The ingest role quarantined events.
    refusals: bool,
    /// Checks asked for by name (`quality-requests`).
    checks: Vec<String>,
}

impl Trigger {
    fn read(&mut self, e: PipelineEvent) {
        if e.status == PipelineStatus::Quarantined {
            self.refusals = true;
        } else if e.status.is_outcome() {
            self.jobs.push(e.job);
        }
    }
}

/// What the next batch of pipeline events asks for; never returns when there is no consumer.
async fn next_trigger(pipeline: &mut Option<(Consumer, String)>) -> Trigger {
    let Some((consumer, topic)) = pipeline else {
        return std::future::pending().await;
    };
    loop {
        let batch = match consumer.poll_batch(200, Duration::from_millis(500)).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read pipeline events");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        if batch.is_empty() {
            continue;
        }
        let mut trigger = Trigger::default();
        let mut next = std::collections::BTreeMap::new();
        for m in &batch {
            next.insert(m.partition, m.offset + 1);
            match serde_json::from_slice::<PipelineEvent>(&m.payload) {
                Ok(e) => trigger.read(e),
                Err(e) => tracing::warn!(error = %e, partition = m.partition, offset = m.offset,
                    "skipping a pipeline event that does not parse"),
            }
        }
        let offsets: Vec<(i32, i64)> = next.into_iter().collect();
        if let Err(e) = consumer.commit(topic, &offsets) {
            tracing::warn!(error = %e, "cannot commit pipeline-event offsets");
        }
        if trigger != Trigger::default() {
            return trigger;
        }
    }
}

/// The checks the next batch of recheck requests names; never returns when there is no
/// consumer.
async fn next_recheck(requests: &mut Option<(Consumer, String)>) -> Vec<String> {
    let Some((consumer, topic)) = requests else {
        return std::future::pending().await;
    };
    loop {
        let batch = match consumer.poll_batch(200, Duration::from_millis(500)).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read recheck requests");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        if batch.is_empty() {
            continue;
        }
        let mut names = Vec::new();
        let mut next = std::collections::BTreeMap::new();
        for m in &batch {
            next.insert(m.partition, m.offset + 1);
            match serde_json::from_slice::<RecheckRequest>(&m.payload) {
                Ok(r) => {
                    tracing::info!(incident = %r.incident_id, checks = ?r.checks, reason = %r.reason, "recheck requested");
                    names.extend(r.checks);
                }
                Err(e) => tracing::warn!(error = %e, partition = m.partition, offset = m.offset,
                    "skipping a recheck request that does not parse"),
            }
        }
        let offsets: Vec<(i32, i64)> = next.into_iter().collect();
        if let Err(e) = consumer.commit(topic, &offsets) {
            tracing::warn!(error = %e, "cannot commit recheck-request offsets");
        }
        if !names.is_empty() {
            return names;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use heal_model::pipeline::PipelineStatus as S;

    fn event(job: &str, status: S) -> PipelineEvent {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        PipelineEvent::new(job, day, uuid::Uuid::new_v4(), status)
    }

    #[test]
    fn refusals_trigger_the_quarantine_checks_and_outcomes_the_jobs_checks() {
        let mut t = Trigger::default();
        t.read(event("daily_revenue", S::Started));
        assert_eq!(t, Trigger::default(), "a start triggers nothing");
        t.read(event("ingest", S::Quarantined));
        assert!(t.refusals);
        assert!(t.jobs.is_empty(), "refusals are not a job outcome");
        t.read(event("daily_revenue", S::Failed));
        t.read(event("funnel", S::Delayed));
        assert_eq!(t.jobs, ["daily_revenue", "funnel"]);
    }
}
