//! `heal eval`: the platform's score on scenarios whose truth is known. Each scenario runs
//! from scratch in a fresh database (embedded, or a new database on the `DATABASE_URL`
//! server): clean warm-up days first, then the scenario's faults. Its events are replayed in
//! steps of data time; after each step the batch jobs, one check cycle and the AI Ops engine
//! run, as the live roles would after that much traffic. At the end the incidents are scored
//! against the ground truth the generator recorded (the scoring rules are in the README).

use crate::cli::{load_config, Global, OutputFormat};
use crate::output::table;
use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use clap::Args;
use heal_aiops::{Engine, Topology};
use heal_bench::Server;
use heal_generator::{Generator, InjectionRecord, Scenario};
use heal_ingest::outage::{span_of, OutageTracker};
use heal_ingest::{Incoming, Ingestor, Settings, Source};
use heal_model::incident::{Incident, IncidentChange, IncidentClass};
use heal_model::EventKind;
use heal_store::Database;
use serde::Serialize;
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Scenario files, or folders of them (every `*.toml` inside, recursively).
    #[arg(long = "scenarios", value_name = "DIR|FILE", num_args = 1.., default_value = "scenarios")]
    pub scenarios: Vec<PathBuf>,
    /// Days of clean traffic before each scenario's faults (their offsets move by as much):
    /// the volume baselines need four.
    #[arg(long, default_value_t = 4)]
    pub warmup_days: i64,
    /// Events per simulated day for every scenario (default: each file's own).
    #[arg(long)]
    pub events_per_day: Option<f64>,
    /// Data time replayed between two rounds of batch jobs, checks and AI Ops (ISO 8601).
    #[arg(long, default_value = "PT6H")]
    pub step: String,
    /// Also write the JSON report (with every incident) to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also measure what operator feedback teaches: the ground truth of every other scenario
    /// (the 1st, 3rd, …) is fed back as feedback on its incidents, and the others are replayed
    /// again with the classifier that learned it. Reports their classification before and
    /// after.
    #[arg(long)]
    pub feedback: bool,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// How a fault was found.
#[derive(Debug, Clone, Serialize)]
pub struct FaultScore {
    pub kind: String,
    pub target: String,
    pub truth_node: String,
    pub truth_class: IncidentClass,
    pub window_start: DateTime<Utc>,
    pub detected: bool,
    /// The incident that explains it best, when detected.
    pub incident: Option<String>,
    /// Rank (1-based) of the first root cause with the right node and class; of the right
    /// node alone.
    pub exact_rank: Option<usize>,
    pub node_rank: Option<usize>,
    pub predicted_class: Option<IncidentClass>,
    pub confidence: Option<f64>,
    /// From the fault's start to the data time the incident opened at (the replay clock), in
    /// hours.
    pub ttd_data_hours: Option<f64>,
    /// Wall time from the round that ingested the fault's start to the incident.
    pub ttd_wall_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioScore {
    pub scenario: String,
    pub file: String,
    pub events: u64,
    pub failure_events: u64,
    pub incidents: usize,
    /// Incidents no fault explains.
    pub false_incidents: usize,
    pub faults: Vec<FaultScore>,
    /// Failure events per incident.
    pub compression: f64,
    pub wall_ms: u64,
    pub decision_us: Vec<u64>,
    pub remediation: Remediation,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub incident_list: Vec<Incident>,
    /// What an operator would teach from this scenario: the features of each fault's
    /// incident with the fault's true class.
    #[serde(skip)]
    pub labels: Vec<(Vec<String>, IncidentClass)>,
}

/// Classification of the held-out scenarios before and after feedback (`--feedback`).
#[derive(Debug, Clone, Serialize)]
pub struct FeedbackEffect {
    pub taught_scenarios: usize,
    pub labels: usize,
    pub scored_scenarios: usize,
    pub scored_faults: usize,
    pub accuracy_before: f64,
    pub accuracy_after: f64,
    pub macro_f1_before: f64,
    pub macro_f1_after: f64,
    /// Faults whose predicted class changed, and how many of those changes are right.
    pub changed: usize,
    pub changed_to_right: usize,
}

/// What the self-healing executor made of a scenario's incidents.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Remediation {
    /// Incidents with at least one action the executor could run (not manual, not skipped,
    /// not refused).
    pub remediable: usize,
    /// Of those, resolved as remediated (verification passed).
    pub remediated: usize,
    /// Of those, failed verification (escalated).
    pub failed: usize,
    pub actions_applied: usize,
    /// Actions applied although the policy said `off`, or `approve` without an approval.
    pub actions_outside_policy: usize,
    /// Data-changing actions whose verification failed, and how many of them were rolled back.
    pub data_changing_failed: usize,
    pub rolled_back: usize,
    /// Per remediated incident: data time from detection to verified resolution (hours), and
    /// wall time from the incident's opening to its resolution.
    pub ttr_data_hours: Vec<f64>,
    pub ttr_wall_ms: Vec<u64>,
    /// Why each failed incident did not pass: its last verification (open conditions, KPIs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct Overall {
    pub scenarios: usize,
    pub faults: usize,
    pub detection_recall: f64,
    pub clean_scenarios: usize,
    pub incidents_on_clean: usize,
    pub false_incidents: usize,
    pub ac1_exact: f64,
    pub ac3_exact: f64,
    pub avg5_exact: f64,
    pub ac1_node: f64,
    pub ac3_node: f64,
    pub class_accuracy: f64,
    pub class_macro_f1: f64,
    pub compression: f64,
    pub ttd_data_hours_median: Option<f64>,
    pub ttd_wall_ms_median: Option<u64>,
    pub decision_us_p50: u64,
    pub decision_us_p95: u64,
    pub remediable_incidents: usize,
    /// Share of remediable incidents resolved with verification passed.
    pub remediation_success: f64,
    pub ttr_data_hours_median: Option<f64>,
    pub ttr_wall_ms_median: Option<u64>,
    pub actions_applied: usize,
    pub actions_outside_policy: usize,
    /// Rolled back / data-changing actions whose verification failed (1 when none failed).
    pub rollback_coverage: f64,
}

/// Every `*.toml` under the given files and folders, sorted.
pub fn scenario_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for e in entries {
                if e.is_dir() || e.extension().is_some_and(|x| x == "toml") {
                    walk(&e, out)?;
                }
            }
        } else if p.is_file() {
            out.push(p.to_path_buf());
        } else {
            anyhow::bail!("{}: no such file or folder", p.display());
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        walk(p, &mut out)?;
    }
    if out.is_empty() {
        anyhow::bail!("no scenario files (*.toml) in {paths:?}");
    }
    Ok(out)
}

pub async fn eval(global: &Global, args: EvalArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(global, &[])?;
    let step = heal_model::duration::parse_iso_duration(&args.step)
        .map_err(|e| anyhow::anyhow!("--step {}: {e}", args.step))?;
    if step < Duration::minutes(5) {
        anyhow::bail!("--step {} is too short: at least PT5M", args.step);
    }
    let files = scenario_files(&args.scenarios)?;
    // Parse everything first: a bad file fails before anything runs.
    let mut scenarios = Vec::new();
    for f in &files {
        let mut s = Scenario::load(f).with_context(|| format!("{}", f.display()))?;
        prepare(&mut s, args.warmup_days, args.events_per_day);
        scenarios.push((f.clone(), s));
    }
    let quiet = args.output == OutputFormat::Json;
    let mut server = match config.database_url() {
        Some(_) => Some(Server::for_bench(&config, "heal eval")?),
        None => None,
    };
    let settings = heal_server::aiops::settings(&config)?;
    let healing = heal_server::executor::settings(&config.executor);
    let run = Runner {
        config: &config,
        step,
        settings,
        healing,
        quiet,
        keep_incidents: args.json.is_some(),
        of: scenarios.len(),
    };
    let mut scores = Vec::new();
    for (i, (file, s)) in scenarios.iter().enumerate() {
        scores.push(run.one(&mut server, i, file, s, &[]).await?);
    }
    // Feedback: teach the truth of every other scenario, replay the rest again.
    let feedback = if args.feedback && scenarios.len() >= 2 {
        let labels: Vec<(Vec<String>, IncidentClass)> = scores
            .iter()
            .step_by(2)
            .flat_map(|s| s.labels.iter().cloned())
            .collect();
        let mut after = Vec::new();
        for (i, (file, s)) in scenarios.iter().enumerate().skip(1).step_by(2) {
            if !quiet {
                eprintln!("    again, after feedback from {} label(s):", labels.len());
            }
            after.push(run.one(&mut server, i, file, s, &labels).await?);
        }
        let before: Vec<ScenarioScore> = scores.iter().skip(1).step_by(2).cloned().collect();
        Some(feedback_effect(
            &before,
            &after,
            scores.len().div_ceil(2),
            labels.len(),
        ))
    } else {
        None
    };
    let overall = overall(&scores);
    let mut json = serde_json::json!({ "overall": overall, "scenarios": scores });
    if let Some(f) = &feedback {
        json["feedback"] = serde_json::to_value(f)?;
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    match args.output {
        OutputFormat::Json => {
            for s in json["scenarios"].as_array_mut().into_iter().flatten() {
                s.as_object_mut().map(|o| o.remove("incident_list"));
            }
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
        OutputFormat::Table => {
            print(&scores, &overall);
            if let Some(f) = &feedback {
                print_feedback(f);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What every scenario run shares.
struct Runner<'a> {
    config: &'a heal_config::Config,
    step: Duration,
    settings: heal_aiops::Settings,
    healing: heal_incidents::executor::Settings,
    quiet: bool,
    keep_incidents: bool,
    of: usize,
}

impl Runner<'_> {
    /// Runs scenario `i` from scratch in a fresh database, the engine first taught `teach`.
    async fn one(
        &self,
        server: &mut Option<Server>,
        i: usize,
        file: &Path,
        s: &Scenario,
        teach: &[(Vec<String>, IncidentClass)],
    ) -> anyhow::Result<ScenarioScore> {
        if !self.quiet {
            eprintln!(
                "[{}/{}] {} ({}): {:.1} days × {:.0} events/day, {} fault(s)",
                i + 1,
                self.of,
                s.name,
                file.display(),
                s.days,
                s.events_per_day,
                s.faults.len()
            );
        }
        let dir = tempdir(&self.config.data_dir, i)?;
        let (db, name) = match server {
            Some(server) => {
                let name = format!("heal_eval_{}_{i}", std::process::id());
                let (_, db) = server.create(&name).await?;
                (db, Some(name))
            }
            None => {
                let db = Database::open(None, 1, &dir).await?;
                db.migrate().await?;
                (db, None)
            }
        };
        let score = run_scenario(
            db.pool(),
            s,
            file,
            self.step,
            self.settings.clone(),
            &self.healing,
            self.quiet,
            self.keep_incidents,
            teach,
        )
        .await;
        db.close().await;
        if let (Some(server), Some(name)) = (server, &name) {
            server.drop_database(name).await?;
        }
        let _ = std::fs::remove_dir_all(&dir);
        let score = score.with_context(|| format!("scenario {}", file.display()))?;
        if !self.quiet {
            eprintln!(
                "    {} incident(s), {} of {} fault(s) detected, {} false, {:.1} s",
                score.incidents,
                score.faults.iter().filter(|f| f.detected).count(),
                score.faults.len(),
                score.false_incidents,
                score.wall_ms as f64 / 1000.0
            );
        }
        Ok(score)
    }
}

/// Classification of the same scenarios before and after feedback.
pub fn feedback_effect(
    before: &[ScenarioScore],
    after: &[ScenarioScore],
    taught_scenarios: usize,
    labels: usize,
) -> FeedbackEffect {
    let (b, a) = (overall(before), overall(after));
    let predicted = |s: &[ScenarioScore]| -> Vec<(IncidentClass, Option<IncidentClass>)> {
        s.iter()
            .flat_map(|s| s.faults.iter().map(|f| (f.truth_class, f.predicted_class)))
            .collect()
    };
    let (pb, pa) = (predicted(before), predicted(after));
    let changed: Vec<_> = pb
        .iter()
        .zip(&pa)
        .filter(|(x, y)| x.1 != y.1)
        .map(|(_, y)| y)
        .collect();
    FeedbackEffect {
        taught_scenarios,
        labels,
        scored_scenarios: before.len(),
        scored_faults: b.faults,
        accuracy_before: b.class_accuracy,
        accuracy_after: a.class_accuracy,
        macro_f1_before: b.class_macro_f1,
        macro_f1_after: a.class_macro_f1,
        changed: changed.len(),
        changed_to_right: changed.iter().filter(|(t, p)| Some(*t) == *p).count(),
    }
}

fn print_feedback(f: &FeedbackEffect) {
    let mut t = table(&["feedback", "before", "after"]);
    t.add_row(vec![
        "classification accuracy".to_string(),
        f2(f.accuracy_before),
        f2(f.accuracy_after),
    ]);
    t.add_row(vec![
        "classification macro-F1".to_string(),
        f2(f.macro_f1_before),
        f2(f.macro_f1_after),
    ]);
    println!(
        "Feedback: the truth of {} scenario(s) taught as {} label(s); {} held-out scenario(s), \
         {} fault(s); {} decision(s) changed, {} of them to the right class.\n{t}",
        f.taught_scenarios,
        f.labels,
        f.scored_scenarios,
        f.scored_faults,
        f.changed,
        f.changed_to_right
    );
}

fn tempdir(base: &Path, i: usize) -> anyhow::Result<PathBuf> {
    let dir = base.join(format!("eval-{}-{i}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Moves the faults `warmup_days` later (that much clean history first) and sets the volume.
pub fn prepare(s: &mut Scenario, warmup_days: i64, events_per_day: Option<f64>) {
    if let Some(n) = events_per_day {
        s.events_per_day = n;
    }
    for f in &mut s.faults {
        f.start += Duration::days(warmup_days);
    }
    s.days += warmup_days as f64;
}

/// The lineage node a fault's target is: the table of an event type, the source stream for
/// `all`, the job for a job fault.
fn truth_node(target: &str, stream: &str) -> (String, String) {
    if target == "all" {
        return ("stream".into(), stream.into());
    }
    match EventKind::ALL.iter().find(|k| k.target_name() == target) {
        Some(k) => ("dataset".into(), k.table().into()),
        None => ("job".into(), target.into()),
    }
}

/// How long after its window a fault may still show (late data arrives after it, daily
/// partitions and reconciliations are judged after the day).
fn tail(r: &InjectionRecord) -> Duration {
    let delay = r
        .params
        .get("delay")
        .and_then(|d| d.as_str())
        .and_then(|d| heal_model::duration::parse_iso_duration(d).ok())
        .unwrap_or_else(Duration::zero);
    Duration::hours(if r.kind.targets_job() { 30 } else { 8 }) + delay
}

#[allow(clippy::too_many_arguments)]
async fn run_scenario(
    pool: &PgPool,
    s: &Scenario,
    file: &Path,
    step: Duration,
    settings: heal_aiops::Settings,
    healing: &heal_incidents::executor::Settings,
    quiet: bool,
    keep_incidents: bool,
    teach: &[(Vec<String>, IncidentClass)],
) -> anyhow::Result<ScenarioScore> {
    let started = Instant::now();
    // The executor as the incidents role runs it; verification waits (in wall time) while the
    // replay goes on and is judged for whatever still waits once the replay ends.
    let executor = heal_incidents::executor::Executor::new(
        pool.clone(),
        heal_incidents::executor::Settings {
            verify_within: std::time::Duration::from_secs(24 * 3600),
            ..healing.clone()
        },
        None,
    );
    let mut to_store: Vec<heal_model::incident::IncidentMessage> = Vec::new();
    let mut recovered: HashMap<String, (DateTime<Utc>, Instant)> = HashMap::new();
    let shared = settings.shared_datasets.clone();
    let topic = heal_model::topics::RAW_EVENTS;
    // What the roles declare at start, so lineage knows the graph.
    heal_generator::role::announce(pool, None).await?;
    heal_ingest::lineage::announce(pool, None, topic).await?;
    let batch = heal_batch::Engine::new(
        pool.clone(),
        None,
        heal_batch::Settings {
            retry_backoff: std::time::Duration::from_millis(10),
            delay_scale: 1e-6,
            ..heal_batch::Settings::default()
        },
    )?;
    batch.announce().await;
    let lineage =
        heal_server::lineage_service(&heal_config::Config::default(), pool.clone()).await?;
    lineage.project().await?;
    let snapshot = {
        use heal_lineage::LineageApi;
        heal_server::aiops::snapshot_of(lineage.export().await.map_err(|e| anyhow::anyhow!("{e}"))?)
    };
    let topology = Arc::new(Topology::new(snapshot));
    let mut engine = Engine::new(
        heal_aiops::Settings {
            keep_resolved: usize::MAX,
            ..settings
        },
        topology.clone(),
    );
    // Feedback from earlier scenarios, as the AI Ops role learns it from operators.
    for (features, class) in teach {
        engine.learn(features.clone(), *class);
    }
    let catalog = heal_quality::Catalog::load(pool).await?;
    let quality = heal_quality::Quality::new(
        pool.clone(),
        heal_quality::ChecksFile::default_checks(&catalog)?,
    )
    .await?;
    let ingestor = Ingestor::new(pool.clone(), Settings::default()).await?;
    let source = Source::Topic {
        group: "heal-eval".into(),
        topic: topic.into(),
    };

    // The ground truth first (one pass of the deterministic generator): the batch engine
    // reads job faults from it from the first run on.
    let truth = {
        let mut g = Generator::new(s);
        g.by_ref().for_each(drop);
        g.ground_truth()
    };
    heal_store::faults::record_ground_truth(pool, "eval", &s.name, &truth).await?;
    let mut generator = Generator::new(s);
    let expected = generator.expected_events();
    let mut produced = generator.by_ref().peekable();
    // Outages the harness makes happen: the store refuses writes for their windows.
    let outages: Vec<(DateTime<Utc>, DateTime<Utc>)> = truth
        .iter()
        .filter(|r| r.kind.is_outage())
        .map(|r| (r.window_start, r.window_end))
        .collect();
    let mut down = false;
    let mut tracker = OutageTracker::default();
    // Events sent but not yet stored (what waits in the topic while the store is down).
    let mut held: Vec<Incoming> = Vec::new();
    let mut offset = 0i64;
    let mut clock = s.start;
    let mut opened_at: HashMap<String, (DateTime<Utc>, Instant)> = HashMap::new();
    let mut round_started: Vec<(DateTime<Utc>, DateTime<Utc>, Instant)> = Vec::new();
    let mut decision_us = Vec::new();
    let mut failure_events = 0u64;
    let progress = (!quiet).then(|| crate::output::progress("replay", expected));
    let mut decide =
        |engine: &mut Engine,
         failures: &[heal_model::quality::FailureEvent],
         at: DateTime<Utc>,
         opened_at: &mut HashMap<String, (DateTime<Utc>, Instant)>,
         to_store: &mut Vec<heal_model::incident::IncidentMessage>| {
            for f in failures {
                let t = Instant::now();
                let msgs = engine.ingest(f);
                decision_us.push(t.elapsed().as_micros() as u64);
                note_opened(&msgs, opened_at, at);
                to_store.extend(msgs);
            }
            failures.len() as u64
        };
    while produced.peek().is_some() || !held.is_empty() {
        let until = clock + step;
        let round_wall = Instant::now();
        round_started.push((clock, until, round_wall));
        // The round in segments cut where an outage starts or ends.
        let mut cuts: Vec<DateTime<Utc>> = outages
            .iter()
            .flat_map(|&(a, b)| [a, b])
            .filter(|t| clock < *t && *t < until)
            .collect();
        cuts.push(until);
        cuts.sort();
        let mut from = clock;
        for cut in cuts {
            let outage = outages.iter().any(|&(a, b)| a <= from && from < b);
            if outage != down {
                heal_store::outage::refuse_writes(pool, outage)
                    .await
                    .context("switching the store for an outage")?;
                down = outage;
            }
            while let Some(e) = produced.next_if(|e| e.produced_at < cut) {
                held.push(Incoming {
                    partition: Some(0),
                    offset: Some(offset),
                    payload: e.payload,
                    produced_at: Some(e.produced_at),
                });
                offset += 1;
            }
            // What the consumer does: write, and report the store when it cannot.
            let mut reports = Vec::new();
            if down {
                for _ in 0..heal_ingest::outage::REPORT_AFTER {
                    let span = span_of(&held);
                    match ingestor.ingest(&source, held.clone()).await {
                        Ok(_) => anyhow::bail!("the store took writes during an outage"),
                        Err(e) => reports.extend(tracker.failed(&e, span)),
                    }
                }
            } else {
                for chunk in std::mem::take(&mut held).chunks(5000) {
                    ingestor.ingest(&source, chunk.to_vec()).await?;
                    reports.extend(tracker.succeeded());
                }
            }
            let failures: Vec<_> = reports
                .iter()
                .filter_map(heal_aiops::symptom::from_pipeline)
                .collect();
            // The consumer reports within seconds of its first failed write.
            let at = if down { from } else { cut };
            failure_events += decide(&mut engine, &failures, at, &mut opened_at, &mut to_store);
            from = cut;
        }
        if let Some(p) = &progress {
            p.set_position(offset as u64);
        }
        // Jobs and checks cannot run on a store that is down; they catch up after it.
        if !down {
            batch
                .run(
                    &[],
                    heal_batch::Trigger::Schedule,
                    heal_batch::Selection::default(),
                )
                .await?;
            let report = quality.run_cycle(None).await?;
            let mut failures = report.events;
            failures.sort_by_key(|e| e.data_span().0);
            failure_events += decide(&mut engine, &failures, until, &mut opened_at, &mut to_store);
        }
        let msgs = engine.advance(until);
        note_opened(&msgs, &mut opened_at, until);
        to_store.extend(msgs);
        if !down {
            heal_round(
                pool,
                &executor,
                &ingestor,
                &mut to_store,
                &mut recovered,
                until,
            )
            .await?;
        }
        clock = until;
    }
    if down {
        heal_store::outage::refuse_writes(pool, false).await?;
    }
    let msgs = engine.flush();
    note_opened(&msgs, &mut opened_at, clock);
    to_store.extend(msgs);
    // The last round: what the actions changed is recomputed and re-checked, and whatever
    // still waits for verification is judged now.
    heal_round(
        pool,
        &executor,
        &ingestor,
        &mut to_store,
        &mut recovered,
        clock,
    )
    .await?;
    batch
        .run(
            &[],
            heal_batch::Trigger::Schedule,
            heal_batch::Selection::default(),
        )
        .await?;
    quality.run_cycle(None).await?;
    let last = heal_incidents::executor::Executor::new(
        pool.clone(),
        heal_incidents::executor::Settings {
            verify_within: std::time::Duration::ZERO,
            ..healing.clone()
        },
        None,
    );
    heal_round(pool, &last, &ingestor, &mut to_store, &mut recovered, clock).await?;
    let remediation = remediation(
        pool,
        &incidents_detected_at(&engine),
        &opened_at,
        &recovered,
    )
    .await?;
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    let incidents: Vec<Incident> = engine.incidents().into_iter().cloned().collect();
    let stream = topic.to_string();
    let mut faults = Vec::new();
    let mut labels = Vec::new();
    let mut explained: HashSet<String> = HashSet::new();
    for r in &truth {
        let (kind, name) = truth_node(&r.target, &stream);
        let class = IncidentClass::of_fault(r.kind);
        let truth_id = topology.find(&kind, &name);
        let downstream: HashSet<usize> = match truth_id {
            Some(id) => {
                let mut d: HashSet<usize> = topology
                    .descendants(id, 20)
                    .into_iter()
                    .map(|(n, _)| n)
                    .collect();
                d.insert(id);
                d
            }
            None => HashSet::new(),
        };
        let from = r.window_start - Duration::hours(1);
        let to = r.window_end + tail(r);
        let related: Vec<&Incident> = incidents
            .iter()
            .filter(|i| i.data_start < to && i.data_end > from)
            .filter(|i| {
                i.symptoms.iter().any(|s| {
                    let n = topology.by_key(&s.node.key);
                    n.is_some_and(|n| downstream.contains(&n))
                        || s.node.name == name
                        || shared.contains(&s.node.name)
                })
            })
            .collect();
        let rank_of = |i: &Incident, exact: bool| {
            i.root_causes
                .iter()
                .position(|c| {
                    c.node.kind == kind && c.node.name == name && (!exact || c.class == class)
                })
                .map(|p| p + 1)
        };
        let best = related
            .iter()
            .min_by_key(|i| {
                (
                    rank_of(i, false).unwrap_or(99),
                    std::cmp::Reverse(i.symptoms.len()),
                )
            })
            .copied();
        for i in &related {
            explained.insert(i.id.clone());
        }
        if let Some(i) = best {
            labels.push((i.classification.features.clone(), class));
        }
        let fault_round = round_started
            .iter()
            .find(|(a, b, _)| *a <= r.window_start && r.window_start < *b)
            .map(|x| x.2);
        faults.push(FaultScore {
            kind: r.kind.to_string(),
            target: r.target.clone(),
            truth_node: format!("{kind}:{name}"),
            truth_class: class,
            window_start: r.window_start,
            detected: best.is_some(),
            incident: best.map(|i| i.id.clone()),
            exact_rank: best.and_then(|i| rank_of(i, true)),
            node_rank: best.and_then(|i| rank_of(i, false)),
            predicted_class: best.map(|i| i.classification.class),
            confidence: best.map(|i| i.classification.confidence),
            ttd_data_hours: best
                .and_then(|i| opened_at.get(&i.id))
                .map(|(at, _)| ((*at - r.window_start).num_minutes() as f64 / 60.0).max(0.0)),
            ttd_wall_ms: best
                .and_then(|i| opened_at.get(&i.id))
                .and_then(|(_, wall)| {
                    fault_round
                        .map(|start| wall.saturating_duration_since(start).as_millis() as u64)
                }),
        });
    }
    let false_incidents = incidents
        .iter()
        .filter(|i| !explained.contains(&i.id))
        .count();
    Ok(ScenarioScore {
        scenario: s.name.clone(),
        file: file.display().to_string(),
        events: offset as u64,
        failure_events,
        incidents: incidents.len(),
        false_incidents,
        compression: if incidents.is_empty() {
            0.0
        } else {
            incidents.iter().map(|i| i.failure_events).sum::<u64>() as f64 / incidents.len() as f64
        },
        faults,
        wall_ms: started.elapsed().as_millis() as u64,
        decision_us,
        remediation,
        incident_list: if keep_incidents {
            incidents
        } else {
            Vec::new()
        },
        labels,
    })
}

/// The incidents role's share of a round: store the engine's messages, let an operator approve
/// what waits for approval (the evaluation's operator says yes), run the executor and
/// run the replays it asked for as ingest would, note the incidents it resolved.
async fn heal_round(
    pool: &PgPool,
    executor: &heal_incidents::executor::Executor,
    ingestor: &Ingestor,
    to_store: &mut Vec<heal_model::incident::IncidentMessage>,
    recovered: &mut HashMap<String, (DateTime<Utc>, Instant)>,
    clock: DateTime<Utc>,
) -> anyhow::Result<()> {
    for m in to_store.drain(..) {
        heal_incidents::store::apply_message(pool, &m).await?;
    }
    for _ in 0..2 {
        executor.tick().await?;
        // What the ingest role does between ticks: the replays the executor asked for.
        heal_ingest::quarantine::run_requested(ingestor).await?;
        let pending: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, incident_id FROM executor_actions WHERE state = 'pending_approval'",
        )
        .fetch_all(pool)
        .await?;
        for (id, incident) in pending {
            heal_incidents::executor::decide(pool, &incident, id, true, "eval-operator", None)
                .await?;
        }
    }
    let done: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM incidents WHERE state = 'resolved' AND resolution_reason = 'remediated'",
    )
    .fetch_all(pool)
    .await?;
    for id in done {
        recovered.entry(id).or_insert((clock, Instant::now()));
    }
    Ok(())
}

fn incidents_detected_at(engine: &Engine) -> HashMap<String, DateTime<Utc>> {
    engine
        .incidents()
        .into_iter()
        .map(|i| (i.id.clone(), i.detected_at_data))
        .collect()
}

/// The executor's score from what it recorded.
async fn remediation(
    pool: &PgPool,
    detected: &HashMap<String, DateTime<Utc>>,
    opened: &HashMap<String, (DateTime<Utc>, Instant)>,
    recovered: &HashMap<String, (DateTime<Utc>, Instant)>,
) -> anyhow::Result<Remediation> {
    let rows: Vec<(String, bool, String, Option<String>)> = sqlx::query_as(
        "SELECT a.incident_id,
                bool_or(a.state NOT IN ('manual', 'skipped', 'refused')),
                i.state, i.resolution_reason
         FROM executor_actions a JOIN incidents i ON i.id = a.incident_id
         GROUP BY a.incident_id, i.state, i.resolution_reason",
    )
    .fetch_all(pool)
    .await?;
    let mut r = Remediation::default();
    for (id, remediable, state, reason) in rows {
        if !remediable {
            continue;
        }
        r.remediable += 1;
        if state == "resolved" && reason.as_deref() == Some("remediated") {
            r.remediated += 1;
            if let (Some(d), Some((at, wall))) = (detected.get(&id), recovered.get(&id)) {
                r.ttr_data_hours
                    .push(((*at - *d).num_minutes() as f64 / 60.0).max(0.0));
                if let Some((_, opened_wall)) = opened.get(&id) {
                    r.ttr_wall_ms
                        .push(wall.saturating_duration_since(*opened_wall).as_millis() as u64);
                }
            }
        } else if state == "failed" {
            r.failed += 1;
            let last: Option<serde_json::Value> = sqlx::query_scalar(
                "SELECT detail FROM incident_timeline
                 WHERE incident_id = $1 AND kind = 'verification' ORDER BY id DESC LIMIT 1",
            )
            .bind(&id)
            .fetch_optional(pool)
            .await?;
            r.failures
                .push(serde_json::json!({ "incident": id, "verification": last }));
        }
    }
    let (applied, outside, failed_dc, rolled): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE applied),
                count(*) FILTER (WHERE applied
                                   AND (mode = 'off' OR (mode = 'approve' AND decided_by IS NULL))),
                count(*) FILTER (WHERE data_changing AND outcome->>'verification' = 'failed'),
                count(*) FILTER (WHERE data_changing AND state = 'rolled_back')
         FROM (SELECT *, state IN ('applying', 'applied', 'verified', 'rolled_back')
                         OR (state = 'failed' AND outcome ? 'verification') AS applied
               FROM executor_actions) a",
    )
    .fetch_one(pool)
    .await?;
    r.actions_applied = applied as usize;
    r.actions_outside_policy = outside as usize;
    r.data_changing_failed = failed_dc as usize;
    r.rolled_back = rolled as usize;
    Ok(r)
}

fn note_opened(
    msgs: &[heal_model::incident::IncidentMessage],
    opened: &mut HashMap<String, (DateTime<Utc>, Instant)>,
    clock: DateTime<Utc>,
) {
    for m in msgs {
        if m.change == IncidentChange::Opened {
            opened
                .entry(m.incident.id.clone())
                .or_insert((clock, Instant::now()));
        }
    }
}

fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    heal_bench::percentile(sorted, p).unwrap_or(0)
}

pub fn overall(scores: &[ScenarioScore]) -> Overall {
    let faults: Vec<&FaultScore> = scores.iter().flat_map(|s| &s.faults).collect();
    let n = faults.len();
    let detected = faults.iter().filter(|f| f.detected).count();
    let within = |k: usize, exact: bool| {
        faults
            .iter()
            .filter(|f| {
                let r = if exact { f.exact_rank } else { f.node_rank };
                r.is_some_and(|r| r <= k)
            })
            .count()
    };
    let avg5 = (1..=5).map(|k| ratio(within(k, true), n)).sum::<f64>() / 5.0;
    // Classification: a missed fault counts as UNKNOWN.
    let pairs: Vec<(IncidentClass, IncidentClass)> = faults
        .iter()
        .map(|f| {
            (
                f.truth_class,
                f.predicted_class.unwrap_or(IncidentClass::Unknown),
            )
        })
        .collect();
    let correct = pairs.iter().filter(|(t, p)| t == p).count();
    let classes: Vec<IncidentClass> = {
        let mut c: Vec<IncidentClass> = pairs.iter().map(|p| p.0).collect();
        c.sort();
        c.dedup();
        c
    };
    let f1s: Vec<f64> = classes
        .iter()
        .map(|c| {
            let tp = pairs.iter().filter(|(t, p)| t == c && p == c).count() as f64;
            let fp = pairs.iter().filter(|(t, p)| t != c && p == c).count() as f64;
            let fneg = pairs.iter().filter(|(t, p)| t == c && p != c).count() as f64;
            if tp == 0.0 {
                0.0
            } else {
                2.0 * tp / (2.0 * tp + fp + fneg)
            }
        })
        .collect();
    let clean: Vec<&ScenarioScore> = scores.iter().filter(|s| s.faults.is_empty()).collect();
    let mut ttd: Vec<f64> = faults.iter().filter_map(|f| f.ttd_data_hours).collect();
    ttd.sort_by(f64::total_cmp);
    let mut wall: Vec<u64> = faults.iter().filter_map(|f| f.ttd_wall_ms).collect();
    wall.sort();
    let mut decisions: Vec<u64> = scores
        .iter()
        .flat_map(|s| s.decision_us.iter().copied())
        .collect();
    decisions.sort();
    let incidents: usize = scores.iter().map(|s| s.incidents).sum();
    let events: u64 = scores.iter().map(|s| s.failure_events).sum();
    let sum =
        |f: fn(&Remediation) -> usize| -> usize { scores.iter().map(|s| f(&s.remediation)).sum() };
    let mut ttr: Vec<f64> = scores
        .iter()
        .flat_map(|s| s.remediation.ttr_data_hours.iter().copied())
        .collect();
    ttr.sort_by(f64::total_cmp);
    let mut ttr_wall: Vec<u64> = scores
        .iter()
        .flat_map(|s| s.remediation.ttr_wall_ms.iter().copied())
        .collect();
    ttr_wall.sort();
    Overall {
        scenarios: scores.len(),
        faults: n,
        detection_recall: ratio(detected, n),
        clean_scenarios: clean.len(),
        incidents_on_clean: clean.iter().map(|s| s.incidents).sum(),
        false_incidents: scores.iter().map(|s| s.false_incidents).sum(),
        ac1_exact: ratio(within(1, true), n),
        ac3_exact: ratio(within(3, true), n),
        avg5_exact: avg5,
        ac1_node: ratio(within(1, false), n),
        ac3_node: ratio(within(3, false), n),
        class_accuracy: ratio(correct, n),
        class_macro_f1: if f1s.is_empty() {
            0.0
        } else {
            f1s.iter().sum::<f64>() / f1s.len() as f64
        },
        compression: if incidents == 0 {
            0.0
        } else {
            events as f64 / incidents as f64
        },
        ttd_data_hours_median: ttd.get(ttd.len() / 2).copied(),
        ttd_wall_ms_median: wall.get(wall.len() / 2).copied(),
        decision_us_p50: percentile(&decisions, 0.5),
        decision_us_p95: percentile(&decisions, 0.95),
        remediable_incidents: sum(|r| r.remediable),
        remediation_success: ratio(sum(|r| r.remediated), sum(|r| r.remediable)),
        ttr_data_hours_median: ttr.get(ttr.len() / 2).copied(),
        ttr_wall_ms_median: ttr_wall.get(ttr_wall.len() / 2).copied(),
        actions_applied: sum(|r| r.actions_applied),
        actions_outside_policy: sum(|r| r.actions_outside_policy),
        rollback_coverage: if sum(|r| r.data_changing_failed) == 0 {
            1.0
        } else {
            ratio(sum(|r| r.rolled_back), sum(|r| r.data_changing_failed))
        },
    }
}

fn f2(x: f64) -> String {
    format!("{x:.2}")
}

fn print(scores: &[ScenarioScore], o: &Overall) {
    let mut t = table(&[
        "scenario",
        "faults",
        "found",
        "incidents",
        "false",
        "events/inc",
        "AC@1",
        "AC@3",
        "class",
        "TTD (data h)",
    ]);
    for s in scores {
        let n = s.faults.len();
        let hit = |f: &FaultScore, k: usize| f.exact_rank.is_some_and(|r| r <= k);
        let ttd: Vec<String> = s
            .faults
            .iter()
            .map(|f| f.ttd_data_hours.map_or("-".into(), |h| format!("{h:.1}")))
            .collect();
        let per = |k: usize| {
            if n == 0 {
                "-".to_string()
            } else {
                format!("{}/{n}", s.faults.iter().filter(|f| hit(f, k)).count())
            }
        };
        t.add_row(vec![
            s.scenario.clone(),
            n.to_string(),
            format!("{}/{n}", s.faults.iter().filter(|f| f.detected).count()),
            s.incidents.to_string(),
            s.false_incidents.to_string(),
            format!("{:.1}", s.compression),
            per(1),
            per(3),
            if n == 0 {
                "-".into()
            } else {
                format!(
                    "{}/{n}",
                    s.faults
                        .iter()
                        .filter(|f| f.predicted_class == Some(f.truth_class))
                        .count()
                )
            },
            ttd.join(" "),
        ]);
    }
    println!("{t}");
    let mut misses = table(&[
        "scenario",
        "fault",
        "truth",
        "found as",
        "class",
        "rank (node)",
    ]);
    let mut any = false;
    for s in scores {
        for f in &s.faults {
            if f.exact_rank == Some(1) {
                continue;
            }
            any = true;
            misses.add_row(vec![
                s.scenario.clone(),
                format!("{} on {}", f.kind, f.target),
                format!("{} {}", f.truth_node, f.truth_class),
                f.incident
                    .as_deref()
                    .map_or("not detected".into(), |i| i[..8].to_string()),
                f.predicted_class.map_or("-".into(), |c| c.to_string()),
                f.node_rank.map_or("-".into(), |r| r.to_string()),
            ]);
        }
    }
    if any {
        println!("Faults not exactly right at rank 1:\n{misses}");
    }
    let mut sum = table(&["measure", "value", "goal"]);
    let rows: Vec<(&str, String, &str)> = vec![
        (
            "scenarios / faults",
            format!("{} / {}", o.scenarios, o.faults),
            "",
        ),
        ("detection recall", f2(o.detection_recall), "≥ 0.95"),
        (
            "incidents on clean scenarios",
            format!("{} (in {})", o.incidents_on_clean, o.clean_scenarios),
            "0",
        ),
        (
            "incidents no fault explains",
            o.false_incidents.to_string(),
            "",
        ),
        (
            "root cause AC@1 / AC@3 / Avg@5 (exact)",
            format!(
                "{} / {} / {}",
                f2(o.ac1_exact),
                f2(o.ac3_exact),
                f2(o.avg5_exact)
            ),
            "≥ 0.9 / ≥ 0.98",
        ),
        (
            "root cause AC@1 / AC@3 (node only)",
            format!("{} / {}", f2(o.ac1_node), f2(o.ac3_node)),
            "",
        ),
        (
            "classification accuracy / macro-F1",
            format!("{} / {}", f2(o.class_accuracy), f2(o.class_macro_f1)),
            "macro-F1 ≥ 0.9",
        ),
        (
            "failure events per incident",
            format!("{:.1}", o.compression),
            "≥ 5 where faults cascade",
        ),
        (
            "time to detect, median (data time)",
            o.ttd_data_hours_median
                .map_or("-".into(), |h| format!("{h:.1} h")),
            "",
        ),
        (
            "time to detect, median (wall, from ingest)",
            o.ttd_wall_ms_median
                .map_or("-".into(), |m| format!("{m} ms")),
            "",
        ),
        (
            "engine decision p50 / p95",
            format!("{} µs / {} µs", o.decision_us_p50, o.decision_us_p95),
            "",
        ),
        (
            "remediation success (verified / remediable incidents)",
            format!(
                "{} ({} incidents)",
                f2(o.remediation_success),
                o.remediable_incidents
            ),
            "≥ 0.9",
        ),
        (
            "time to recovery, median (data / wall)",
            format!(
                "{} / {}",
                o.ttr_data_hours_median
                    .map_or("-".into(), |h| format!("{h:.1} h")),
                o.ttr_wall_ms_median
                    .map_or("-".into(), |m| format!("{m} ms"))
            ),
            "",
        ),
        (
            "actions applied / outside policy",
            format!("{} / {}", o.actions_applied, o.actions_outside_policy),
            "outside: 0",
        ),
        (
            "rolled back / data-changing actions that failed verification",
            f2(o.rollback_coverage),
            "1.00",
        ),
    ];
    for (a, b, c) in rows {
        sum.add_row(vec![a.to_string(), b, c.to_string()]);
    }
    println!("{sum}");
}
