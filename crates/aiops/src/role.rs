//! The AI Ops role: reads failure events from `data-quality-checks` and pipeline events from
//! `pipeline-events`, folds them into incidents with the engine, stores every incident as last
//! published (`aiops_incidents`), publishes each change on `incidents`, and keeps what it
//! cannot read in `aiops_dead_letters` (bytes, topic, offset, reason) instead of dropping it.
//! The lineage graph comes from the lineage role's API as a snapshot, refreshed periodically
//! and when a failure names a node the snapshot does not know.

use crate::engine::{Engine, Settings};
use crate::llm::Llm;
use crate::metrics as m;
use crate::topology::{LineageSource, Topology};
use heal_bus::{Bus, Consumer, Message, Record};
use heal_model::incident::{
    FeedbackMessage, Incident, IncidentClass, IncidentMessage, ACTION_NAMES,
};
use heal_model::pipeline::PipelineEvent;
use heal_model::quality::FailureEvent;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("lineage: {0}")]
    Lineage(String),
}

/// The newest pipeline event per job.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobState {
    pub status: heal_model::pipeline::PipelineStatus,
    pub partition: chrono::NaiveDate,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    pub error: Option<String>,
}

pub struct AiopsRole {
    engine: Mutex<Engine>,
    pool: PgPool,
    bus: Option<Bus>,
    topic: String,
    lineage: Arc<dyn LineageSource>,
    llm: Option<Llm>,
    jobs: Mutex<BTreeMap<String, JobState>>,
    last_refresh: Mutex<Option<Instant>>,
    dead_letters: std::sync::atomic::AtomicU64,
}

impl AiopsRole {
    /// Builds the engine on a first lineage snapshot, takes back the open incidents the store
    /// kept, and trains the classifier on the stored labels.
    pub async fn new(
        pool: PgPool,
        bus: Option<Bus>,
        topic: &str,
        lineage: Arc<dyn LineageSource>,
        settings: Settings,
        llm: Option<Llm>,
    ) -> Result<AiopsRole, Error> {
        m::register(&[
            heal_model::topics::DATA_QUALITY_CHECKS,
            heal_model::topics::PIPELINE_EVENTS,
            heal_model::topics::INCIDENT_FEEDBACK,
        ]);
        // A lineage role that is not up yet must not hold this one back: start on what
        // answers within a few seconds, and refresh later.
        let first = tokio::time::timeout(Duration::from_secs(5), lineage.snapshot())
            .await
            .unwrap_or_else(|_| Err("no answer within 5 s".into()));
        let snapshot = match first {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "no lineage snapshot yet; starting on an empty graph");
                Default::default()
            }
        };
        let mut engine = Engine::new(settings, Arc::new(Topology::new(snapshot)));
        let bodies: Vec<(serde_json::Value,)> = sqlx::query_as(
            "SELECT body FROM (SELECT body, updated_at FROM aiops_incidents
                 WHERE status = 'open' OR updated_at > now() - interval '7 days'
                 ORDER BY updated_at DESC LIMIT 2000) t ORDER BY updated_at",
        )
        .fetch_all(&pool)
        .await?;
        for (body,) in bodies {
            match serde_json::from_value::<Incident>(body) {
                Ok(i) => engine.restore(i),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping a stored incident that does not parse")
                }
            }
        }
        let labels: Vec<(serde_json::Value, String)> =
            sqlx::query_as("SELECT features, class FROM aiops_labels ORDER BY id")
                .fetch_all(&pool)
                .await?;
        for (features, class) in labels {
            let features: Vec<String> = serde_json::from_value(features).unwrap_or_default();
            if let Ok(class) = class.parse::<IncidentClass>() {
                engine.learn(features, class);
            }
        }
        let outcomes: Vec<(String, String, bool)> = sqlx::query_as(
            "SELECT incident_class, action, worked FROM aiops_feedback
             WHERE action IS NOT NULL AND worked IS NOT NULL AND incident_class IS NOT NULL
             ORDER BY at",
        )
        .fetch_all(&pool)
        .await?;
        for (class, action, worked) in outcomes {
            let action = ACTION_NAMES.iter().find(|a| **a == action);
            if let (Ok(class), Some(action)) = (class.parse::<IncidentClass>(), action) {
                engine.record_outcome(class, action, worked);
            }
        }
        let roots: Vec<(String, String, Vec<String>)> = sqlx::query_as(
            "SELECT root_cause_class, root_cause, symptom_nodes FROM aiops_feedback
             WHERE root_cause IS NOT NULL AND root_cause_class IS NOT NULL
               AND symptom_nodes IS NOT NULL
             ORDER BY at",
        )
        .fetch_all(&pool)
        .await?;
        for (class, root, nodes) in roots {
            if let Ok(class) = class.parse::<IncidentClass>() {
                engine.record_root_cause(class, &nodes, &root);
            }
        }
        Ok(AiopsRole {
            engine: Mutex::new(engine),
            pool,
            bus,
            topic: topic.to_string(),
            lineage,
            llm,
            jobs: Mutex::new(BTreeMap::new()),
            last_refresh: Mutex::new(None),
            dead_letters: Default::default(),
        })
    }

    /// Takes a new lineage snapshot.
    pub async fn refresh_topology(&self) -> Result<usize, Error> {
        *self.last_refresh.lock().expect("lock") = Some(Instant::now());
        let snapshot = tokio::time::timeout(Duration::from_secs(10), self.lineage.snapshot())
            .await
            .map_err(|_| Error::Lineage("no answer within 10 s".into()))?
            .map_err(Error::Lineage)?;
        let t = Arc::new(Topology::new(snapshot));
        let n = t.len();
        let updated = self.engine.lock().expect("lock").set_topology(t);
        self.publish(updated).await;
        Ok(n)
    }

    /// What the engine holds: open incidents first, then recently resolved ones.
    pub fn incidents(&self) -> Vec<Incident> {
        self.engine
            .lock()
            .expect("lock")
            .incidents()
            .into_iter()
            .cloned()
            .collect()
    }

    pub fn jobs(&self) -> BTreeMap<String, JobState> {
        self.jobs.lock().expect("lock").clone()
    }

    pub fn stats(&self) -> serde_json::Value {
        let e = self.engine.lock().expect("lock");
        serde_json::json!({
            "engine": e.stats(),
            "open": e.open_count(),
            "graph_nodes": e.topology().len(),
            "labels_learned": e.classifier().labels(),
            "dead_letters": self.dead_letters.load(std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// Stores an operator's (or the ground truth's) class for an incident and learns it.
    pub async fn label(
        &self,
        incident_id: &str,
        class: IncidentClass,
        source: &str,
    ) -> Result<bool, Error> {
        let features = match self.incident_of(incident_id).await? {
            Some(i) => i.classification.features,
            None => return Ok(false),
        };
        sqlx::query("INSERT INTO aiops_labels (incident_id, features, class, source) VALUES ($1, $2, $3, $4)")
            .bind(incident_id)
            .bind(serde_json::json!(features))
            .bind(class.as_str())
            .bind(source)
            .execute(&self.pool)
            .await?;
        self.engine.lock().expect("lock").learn(features, class);
        Ok(true)
    }

    /// The incident as the engine holds it, or as last stored.
    async fn incident_of(&self, id: &str) -> Result<Option<Incident>, Error> {
        let held = {
            let e = self.engine.lock().expect("lock");
            e.incidents().into_iter().find(|i| i.id == id).cloned()
        };
        if held.is_some() {
            return Ok(held);
        }
        let body: Option<(serde_json::Value,)> =
            sqlx::query_as("SELECT body FROM aiops_incidents WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(body.and_then(|(b,)| serde_json::from_value::<Incident>(b).ok()))
    }

    /// Learns from operators' feedback (`incident-feedback`), each message once: the class
    /// they gave becomes a label, a remediation outcome re-ranks later recommendations of that
    /// class, a corrected root cause ranks that node higher for later incidents of that class
    /// on the same nodes. Returns how many messages taught something.
    pub async fn on_feedback(&self, batch: &[Message]) -> usize {
        let mut taught = 0;
        for msg in batch {
            let f = match serde_json::from_slice::<FeedbackMessage>(&msg.payload) {
                Ok(f) => f,
                Err(e) => {
                    self.dead_letter(msg, &format!("not a feedback message: {e}"))
                        .await;
                    continue;
                }
            };
            match self.learn_feedback(&f).await {
                Ok(true) => taught += 1,
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, incident = %f.incident_id,
                    "cannot learn from feedback"),
            }
        }
        taught
    }

    async fn learn_feedback(&self, f: &FeedbackMessage) -> Result<bool, Error> {
        let Some(incident) = self.incident_of(&f.incident_id).await? else {
            tracing::warn!(incident = %f.incident_id, "feedback on an incident AI Ops does not know");
            return Ok(false);
        };
        let outcome_class = f.class.unwrap_or(incident.classification.class);
        let action = f
            .action
            .as_deref()
            .and_then(|a| ACTION_NAMES.iter().find(|n| **n == a).copied());
        let outcome = f.remediation_worked.zip(action);
        // A corrected root cause is learned under the incident's (corrected) class, matched
        // on the nodes its symptoms sat on.
        let root = f
            .root_cause
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty());
        let symptom_nodes: Vec<String> = incident
            .symptoms
            .iter()
            .map(|s| s.node.key.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let first = sqlx::query(
            "INSERT INTO aiops_feedback (event_id, incident_id, class, incident_class, action, worked,
                                         root_cause, root_cause_class, symptom_nodes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(&f.event_id)
        .bind(&f.incident_id)
        .bind(f.class.map(|c| c.as_str()))
        .bind(outcome.map(|_| outcome_class.as_str()))
        .bind(outcome.map(|(_, a)| a))
        .bind(outcome.map(|(w, _)| w))
        .bind(root)
        .bind(root.map(|_| outcome_class.as_str()))
        .bind(root.map(|_| &symptom_nodes))
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        if !first {
            return Ok(false);
        }
        let mut taught = false;
        if let Some(class) = f.class {
            taught |= self.label(&f.incident_id, class, "feedback").await?;
        }
        if let Some((worked, action)) = outcome {
            self.engine
                .lock()
                .expect("lock")
                .record_outcome(outcome_class, action, worked);
            taught = true;
        }
        if let Some(root) = root {
            self.engine.lock().expect("lock").record_root_cause(
                outcome_class,
                &symptom_nodes,
                root,
            );
            taught = true;
        }
        Ok(taught)
    }

    /// Reads a batch of failure-event messages; returns the incident messages published.
    pub async fn on_failures(&self, batch: &[Message]) -> usize {
        let mut events = Vec::new();
        for msg in batch {
            match serde_json::from_slice::<FailureEvent>(&msg.payload) {
                Ok(e) => events.push(e),
                Err(e) => {
                    self.dead_letter(msg, &format!("not a failure event: {e}"))
                        .await
                }
            }
        }
        self.decide(events).await
    }

    /// Folds failure events into incidents; returns the incident messages published.
    pub async fn decide(&self, mut events: Vec<FailureEvent>) -> usize {
        let started = Instant::now();
        if events.is_empty() {
            return 0;
        }
        let unknown = {
            let e = self.engine.lock().expect("lock");
            let t = e.topology();
            events
                .iter()
                .any(|ev| crate::symptom::node_of(ev, t).0.is_none())
        };
        if unknown && self.refresh_due(Duration::from_secs(2)) {
            if let Err(e) = self.refresh_topology().await {
                tracing::warn!(error = %e, "cannot refresh the lineage snapshot");
            }
        }
        // Data-time order, so correlation sees what happened first first.
        events.sort_by_key(|e| e.data_span().0);
        let msgs: Vec<IncidentMessage> = {
            let mut e = self.engine.lock().expect("lock");
            let mut out = Vec::new();
            for ev in &events {
                out.extend(e.ingest(ev));
            }
            let held = e.incidents();
            let total: u64 = held.iter().map(|i| i.failure_events).sum();
            m::held(e.open_count(), total as f64 / held.len().max(1) as f64);
            out
        };
        m::failure_events(events.len());
        let n = msgs.len();
        self.publish(msgs).await;
        m::decision(started.elapsed().as_secs_f64());
        n
    }

    fn refresh_due(&self, every: Duration) -> bool {
        self.last_refresh
            .lock()
            .expect("lock")
            .is_none_or(|t| t.elapsed() >= every)
    }

    /// Puts prose that arrived from the language model on its incidents and publishes them.
    pub async fn apply_prose(&self) {
        let Some(llm) = &self.llm else { return };
        let done = llm.take_done();
        if done.is_empty() {
            return;
        }
        let msgs: Vec<IncidentMessage> = {
            let mut e = self.engine.lock().expect("lock");
            done.into_iter()
                .filter_map(|(id, text)| e.set_prose(&id, text))
                .collect()
        };
        self.publish(msgs).await;
    }

    /// Reads a batch of pipeline events (the newest state per job); the platform's own
    /// failures among them (a store outage) go to the engine as failures. Returns the
    /// incident messages published.
    pub async fn on_pipeline(&self, batch: &[Message]) -> usize {
        let mut failures = Vec::new();
        for msg in batch {
            match serde_json::from_slice::<PipelineEvent>(&msg.payload) {
                // Ingest's announcement of refused events is for the quality role's checks.
                Ok(e) if e.status == heal_model::pipeline::PipelineStatus::Quarantined => {}
                Ok(e) => {
                    failures.extend(crate::symptom::from_pipeline(&e));
                    self.jobs.lock().expect("lock").insert(
                        e.job.clone(),
                        JobState {
                            status: e.status,
                            partition: e.partition,
                            occurred_at: e.occurred_at,
                            error: e.error.clone(),
                        },
                    );
                }
                Err(e) => {
                    self.dead_letter(msg, &format!("not a pipeline event: {e}"))
                        .await
                }
            }
        }
        self.decide(failures).await
    }

    async fn dead_letter(&self, msg: &Message, reason: &str) {
        self.dead_letters
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        m::dead_letter(&msg.topic);
        tracing::warn!(topic = %msg.topic, partition = msg.partition, offset = msg.offset, %reason,
            "stored an unreadable message in aiops_dead_letters");
        let r = sqlx::query(
            "INSERT INTO aiops_dead_letters (topic, partition, \"offset\", payload, reason)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (topic, partition, \"offset\") DO NOTHING",
        )
        .bind(&msg.topic)
        .bind(msg.partition)
        .bind(msg.offset)
        .bind(&msg.payload)
        .bind(reason)
        .execute(&self.pool)
        .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "cannot store a dead letter");
        }
    }

    /// Stores and publishes incident messages; starts the prose rewrite of new ones when a
    /// language model is configured (never waited for).
    pub async fn publish(&self, msgs: Vec<IncidentMessage>) {
        if msgs.is_empty() {
            return;
        }
        if let Err(e) = store(&self.pool, &msgs).await {
            tracing::error!(error = %e, "cannot store incidents");
        }
        if let Some(bus) = &self.bus {
            let records: Vec<Record> = msgs
                .iter()
                .map(|m| Record {
                    key: m.incident.id.as_bytes().to_vec(),
                    payload: serde_json::to_vec(m).expect("incidents serialize"),
                    timestamp_ms: m.emitted_at.timestamp_millis(),
                })
                .collect();
            if let Err(e) = bus.send(&self.topic, records).await {
                tracing::warn!(error = %e, topic = %self.topic, "cannot publish incidents");
            }
        }
        if let Some(llm) = &self.llm {
            for m in msgs
                .iter()
                .filter(|m| m.change == heal_model::incident::IncidentChange::Opened)
            {
                llm.rewrite_later(m.incident.id.clone(), m.incident.explanation.clone());
            }
        }
    }
}

/// Upserts the incidents of `msgs` (the newest state of each wins).
pub async fn store(pool: &PgPool, msgs: &[IncidentMessage]) -> Result<(), sqlx::Error> {
    let mut latest: BTreeMap<&str, &Incident> = BTreeMap::new();
    for m in msgs {
        latest.insert(m.incident.id.as_str(), &m.incident);
    }
    let mut tx = pool.begin().await?;
    for i in latest.values() {
        let status = match i.status {
            heal_model::incident::IncidentStatus::Open => "open",
            heal_model::incident::IncidentStatus::Resolved => "resolved",
        };
        sqlx::query(
            "INSERT INTO aiops_incidents (id, fingerprint, status, class, severity, data_start, data_end, opened_at, updated_at, body)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (id) DO UPDATE SET status = excluded.status, class = excluded.class,
                 severity = excluded.severity, data_start = excluded.data_start, data_end = excluded.data_end,
                 updated_at = excluded.updated_at, body = excluded.body",
        )
        .bind(&i.id)
        .bind(&i.fingerprint)
        .bind(status)
        .bind(i.classification.class.as_str())
        .bind(i.severity.as_str())
        .bind(i.data_start)
        .bind(i.data_end)
        .bind(i.opened_at)
        .bind(i.updated_at)
        .bind(serde_json::to_value(i).expect("incidents serialize"))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// One stored incident by id (or unique id prefix).
pub async fn load(pool: &PgPool, id: &str) -> Result<Option<Incident>, sqlx::Error> {
    let rows: Vec<(serde_json::Value,)> = sqlx::query_as(
        "SELECT body FROM aiops_incidents WHERE id = $1 OR id LIKE $2 || '%' ORDER BY (id = $1) DESC LIMIT 2",
    )
    .bind(id)
    .bind(id)
    .fetch_all(pool)
    .await?;
    if rows.len() > 1 && rows[0].0["id"] != serde_json::json!(id) {
        return Ok(None);
    }
    Ok(rows
        .into_iter()
        .next()
        .and_then(|(b,)| serde_json::from_value(b).ok()))
}

/// Stored incidents, newest first.
pub async fn list(
    pool: &PgPool,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<Incident>, sqlx::Error> {
    let rows: Vec<(serde_json::Value,)> = sqlx::query_as(
        "SELECT body FROM aiops_incidents WHERE ($1::text IS NULL OR status = $1)
         ORDER BY opened_at DESC LIMIT $2",
    )
    .bind(status)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(b,)| serde_json::from_value(b).ok())
        .collect())
}

/// Commits `batch`'s positions.
fn commit(consumer: &Consumer, topic: &str, batch: &[Message]) {
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for m in batch {
        let e = next.entry(m.partition).or_insert(0);
        *e = (*e).max(m.offset + 1);
    }
    let offsets: Vec<(i32, i64)> = next.into_iter().collect();
    if let Err(e) = consumer.commit(topic, &offsets) {
        tracing::warn!(error = %e, %topic, "cannot commit offsets");
    }
}

/// Reads both topics until `stop` (one after the other: a poll is never cancelled halfway);
/// refreshes the lineage snapshot every `refresh`.
pub async fn run_loop(
    role: Arc<AiopsRole>,
    mut failures: (Consumer, String),
    mut pipeline: (Consumer, String),
    mut feedback: (Consumer, String),
    refresh: Duration,
    stop: watch::Receiver<bool>,
) {
    let mut refreshed = Instant::now();
    while !*stop.borrow() {
        if refreshed.elapsed() >= refresh {
            refreshed = Instant::now();
            if let Err(e) = role.refresh_topology().await {
                tracing::warn!(error = %e, "cannot refresh the lineage snapshot");
            }
        }
        match failures.0.poll_batch(500, Duration::from_millis(200)).await {
            Ok(b) if !b.is_empty() => {
                role.on_failures(&b).await;
                commit(&failures.0, &failures.1, &b);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot read failure events");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        role.apply_prose().await;
        match pipeline.0.poll_batch(500, Duration::from_millis(20)).await {
            Ok(b) if !b.is_empty() => {
                role.on_pipeline(&b).await;
                commit(&pipeline.0, &pipeline.1, &b);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot read pipeline events");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        match feedback.0.poll_batch(200, Duration::from_millis(20)).await {
            Ok(b) if !b.is_empty() => {
                role.on_feedback(&b).await;
                commit(&feedback.0, &feedback.1, &b);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot read incident feedback");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
