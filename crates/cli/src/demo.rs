//! `heal demo`: the whole platform on one machine with nothing installed. Embedded PostgreSQL
//! (in `<data-dir>/demo`, recreated each run) and the in-process bus; a scenario's simulated
//! days with injected faults are generated and ingested while progress bars run, then a
//! summary shows what landed where and checks it against the injected ground truth.

use crate::cli::{load_config, wait_for_signal, Global, OutputFormat};
use crate::output::{count, progress, table};
use anyhow::Context;
use clap::Args;
use heal_config::RoleSet;
use heal_generator::{InjectionRecord, Scenario};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The scenario the demo runs unless told otherwise.
const DEMO_SCENARIO: &str = include_str!("../../../scenarios/demo.toml");

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Scenario file to run instead of the built-in demo (scenarios/demo.toml).
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Override the scenario's number of simulated days.
    #[arg(long)]
    pub days: Option<f64>,
    /// Override the scenario's events per simulated day.
    #[arg(long)]
    pub events_per_day: Option<f64>,
    /// Exit after the summary instead of serving the HTTP API until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
    /// Listen address of the HTTP API and the console.
    #[arg(long, value_name = "HOST:PORT")]
    pub http_addr: Option<String>,
    /// Actions of this type wait for an operator's approval (in the console, the API or
    /// `heal incidents approve`) instead of being applied on their own; repeatable.
    #[arg(long, value_name = "ACTION")]
    pub approve: Vec<String>,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

pub async fn demo(global: &Global, args: DemoArgs) -> anyhow::Result<ExitCode> {
    let mut extra = Vec::new();
    if let Some(a) = &args.http_addr {
        extra.push(("--http-addr", "http_addr", a.clone()));
    }
    let mut config = load_config(global, &extra)?;
    // The demo is self-contained: its own embedded database and the in-process bus.
    let dir = config.data_dir.join("demo");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    config.data_dir = dir.clone();
    config.database.url = None;
    config.kafka.bootstrap_servers = None;
    // A demo on a laptop: no tokens (App warns that authentication is off).
    config.auth.disabled = true;
    // The executor heals on its own in the demo: every action type is `auto`.
    config.executor.default_mode = "auto".into();
    for a in &args.approve {
        if !heal_model::incident::ACTION_NAMES.contains(&a.as_str()) {
            anyhow::bail!(
                "--approve {a:?}: not an action; use one of {}",
                heal_model::incident::ACTION_NAMES.join(", ")
            );
        }
    }
    for a in heal_model::incident::ACTION_NAMES {
        let mode = if args.approve.iter().any(|x| x == a) {
            "approve"
        } else {
            "auto"
        };
        config
            .executor
            .policy
            .insert(a.to_string(), heal_config::PolicyRule::Mode(mode.into()));
    }
    config.executor.interval = std::time::Duration::from_secs(1);
    let mut scenario = match &args.scenario {
        Some(path) => Scenario::load(path)?,
        None => Scenario::parse(DEMO_SCENARIO, "scenarios/demo.toml")?,
    };
    if let Some(d) = args.days {
        scenario.days = d;
    }
    if let Some(n) = args.events_per_day {
        scenario.events_per_day = n;
    }
    let quiet = args.output == OutputFormat::Json;
    if !quiet {
        eprintln!(
            "heal demo: scenario {:?}, {} simulated day(s) from {}, ~{} events/day; embedded PostgreSQL in {}",
            scenario.name,
            scenario.days,
            scenario.start.format("%Y-%m-%d"),
            count(scenario.events_per_day as i64),
            dir.display()
        );
    }
    let started = Instant::now();
    // Monolithic, with the ingest and batch roles: the demo publishes the scenario itself
    // instead of running the real-time generator, and runs the jobs once everything is in
    // (the scheduler only catches up at start, then waits an hour).
    config.batch.default_schedule = "every 1h".into();
    let app = heal_server::App::create_in(
        config.clone(),
        &RoleSet::new(vec![
            heal_config::Role::Ingest,
            heal_config::Role::Batch,
            heal_config::Role::Quality,
            heal_config::Role::Lineage,
            heal_config::Role::Aiops,
            heal_config::Role::Incidents,
        ]),
        heal_server::Mode::Monolithic,
    )
    .await?;
    let pool = app.database().pool().clone();
    let bus = app.bus().clone();
    let lineage = app.lineage().context("the lineage role")?;
    let quality = app.quality().context("the quality role")?;
    let aiops = app.aiops().context("the aiops role")?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(app.start(stop_rx, Some(bound_tx)));
    let addrs = bound_rx.await.context("the HTTP server did not start")?;

    let run_id = uuid::Uuid::new_v4().to_string();
    let truth_first = heal_generator::role::truth_first(&scenario);
    if truth_first {
        let truth = heal_generator::role::dry_run(&scenario);
        heal_store::faults::record_ground_truth(&pool, &run_id, &scenario.name, &truth).await?;
    }
    let gen_bar = progress("generate", 0);
    let (sent, truth) =
        heal_generator::role::publish_scenario(&bus, &scenario, |sent, expected| {
            gen_bar.set_length(expected);
            gen_bar.set_position(sent);
        })
        .await?;
    gen_bar.finish();
    if !truth_first {
        heal_store::faults::record_ground_truth(&pool, &run_id, &scenario.name, &truth).await?;
    }

    let ingest_bar = progress("ingest", sent);
    loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(next_offset), 0)::int8 FROM consumer_offsets WHERE topic = 'raw-events'",
        )
        .fetch_one(&pool)
        .await?;
        ingest_bar.set_position(done as u64);
        if done as u64 >= sent {
            break;
        }
        if server.is_finished() {
            anyhow::bail!("the platform stopped before ingesting everything; see the log above");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ingest_bar.finish();
    let elapsed = started.elapsed();
    let mut settings = heal_server::batch_settings(&config);
    settings.retry_backoff = Duration::from_millis(200);
    let engine = heal_batch::Engine::new(pool.clone(), Some(bus.clone()), settings)?;
    // The first pass meets the injected job faults; a second pass (what the scheduler does on
    // its next tick) recomputes what failed and what waited for it.
    let mut batch = Vec::new();
    for _ in 0..2 {
        let pass = crate::batch::run_with_progress(
            &engine,
            &[],
            heal_batch::Trigger::Schedule,
            heal_batch::Selection::default(),
            args.output,
        )
        .await?;
        let done = pass.failed() == 0 && pass.waiting.is_empty();
        batch.push(pass);
        if done {
            break;
        }
    }
    // The batch role's own scheduler may still be finishing a run it started while the events
    // arrived (a delayed one, say): the summary waits for the platform to be quiet.
    let quiet_by = Instant::now() + Duration::from_secs(60);
    while Instant::now() < quiet_by {
        let running: i64 =
            sqlx::query_scalar("SELECT count(*) FROM job_runs WHERE status = 'running'")
                .fetch_one(&pool)
                .await?;
        if running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut summary = summarize(&pool, &truth, sent, elapsed, &batch).await?;
    let (text, json) = quality_section(&quality).await?;
    summary.text.push_str(&text);
    summary.json["quality"] = json;
    let (text, json) = lineage_section(&lineage).await?;
    summary.text.push_str(&text);
    summary.json["lineage"] = json;
    let (text, json) = aiops_section(&aiops).await?;
    summary.text.push_str(&text);
    summary.json["aiops"] = json;
    let (text, json) = healing_section(&pool).await?;
    summary.text.push_str(&text);
    summary.json["healing"] = json;
    let addr = addrs
        .first()
        .map(|l| l.addr.to_string())
        .unwrap_or_default();
    summary.json["console"] = serde_json::json!(format!("http://{addr}/"));
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&summary.json)?),
        OutputFormat::Table => {
            println!("{}", summary.text);
            println!("Console: http://{addr}/ (incidents, lineage, checks, jobs, quarantine)");
            println!(
                "HTTP API on http://{addr}: /api/ingest/status, /api/quarantine, /api/batch/jobs, /api/batch/runs, /api/quality/checks, /api/quality/conditions, /api/aiops/incidents, /api/incidents, /api/docs (the incident API, browsable), /api/lineage/impact/payments, /api/lineage/graph?format=mermaid, /metrics, /readyz"
            );
        }
    }
    if !args.exit {
        println!("serving until Ctrl-C (data kept in {})", dir.display());
        wait_for_signal().await;
    }
    let _ = stop_tx.send(true);
    server.await??;
    Ok(if summary.all_matched {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(4)
    })
}

/// A check cycle over everything the demo ingested and computed: what the checks judged and
/// the conditions the scenario's faults opened.
async fn quality_section(
    quality: &heal_quality::role::QualityRole,
) -> anyhow::Result<(String, serde_json::Value)> {
    let report = quality.run(None).await?;
    let pool = quality.quality.pool();
    let conditions = heal_quality::report::conditions(pool, None, 100).await?;
    let count =
        |f: fn(&heal_quality::CheckReport) -> usize| -> usize { report.checks.iter().map(f).sum() };
    let mut text = format!(
        "\nQuality (heal quality run): {} checks judged {} windows: {} passed, {} failed, {} still learning their baseline, {} errored; {} conditions\n",
        report.checks.len(),
        count(|c| c.evaluated),
        count(|c| c.passed),
        count(|c| c.failed),
        count(|c| c.learning),
        count(|c| c.errored),
        conditions.len(),
    );
    let mut t = table(&[
        "state",
        "severity",
        "check",
        "dataset",
        "first seen",
        "times",
        "message",
    ]);
    for c in &conditions {
        let message = c.first_event["message"].as_str().unwrap_or("");
        t.add_row(vec![
            c.state.clone(),
            c.severity.clone(),
            c.check_name.clone(),
            c.dataset.clone(),
            c.first_seen.format("%m-%d %H:%M").to_string(),
            c.occurrences.to_string(),
            message.chars().take(80).collect(),
        ]);
    }
    if !conditions.is_empty() {
        text.push_str(&format!("{t}\n"));
    }
    let json = serde_json::json!({
        "clock": report.clock,
        "checks": report.checks,
        "conditions": conditions,
    });
    Ok((text, json))
}

/// The incidents AI Ops raised from the failure events of the checks: waits until the engine
/// has read every failure event published so far, then shows each incident's root cause with
/// its lineage path, class with confidence, explanation and recommended actions.
async fn aiops_section(
    aiops: &heal_aiops::AiopsRole,
) -> anyhow::Result<(String, serde_json::Value)> {
    let published = || {
        let scrape = heal_server::telemetry::prometheus().render();
        scrape
            .lines()
            .find(|l| l.starts_with("heal_quality_failure_events_total"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    };
    let by = Instant::now() + Duration::from_secs(30);
    while Instant::now() < by {
        let read = aiops.stats()["engine"]["failure_events"]
            .as_u64()
            .unwrap_or(0);
        if read >= published() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The graph as lineage has it now (the role refreshes it on its own every
    // `aiops.refresh`; the demo is quicker than that).
    aiops.refresh_topology().await?;
    let incidents = aiops.incidents();
    let mut text = format!(
        "\nAI Ops (heal aiops explain <id>): {} incident(s) from {} failure event(s)\n",
        incidents.len(),
        aiops.stats()["engine"]["failure_events"]
    );
    for i in &incidents {
        let top = i.root_causes.first();
        text.push_str(&format!(
            "\n  [{}] {} — {} (confidence {:.2}{})\n",
            &i.id[..8],
            i.severity,
            i.classification.class,
            i.classification.confidence,
            if i.classification.low_confidence {
                ", low"
            } else {
                ""
            }
        ));
        text.push_str(&format!("      {}\n", i.explanation.summary));
        if let Some(c) = top {
            text.push_str(&format!(
                "      root cause: {} {} (score {:.2}{})\n",
                c.node.kind,
                c.node.name,
                c.score,
                if c.grounded {
                    ", grounded"
                } else {
                    ", NOT grounded"
                }
            ));
            for p in c.paths.iter().filter(|p| !p.steps.is_empty()).take(3) {
                text.push_str(&format!(
                    "        path to {}: {}\n",
                    p.symptom,
                    heal_aiops::explain::render_path(p)
                ));
            }
        }
        text.push_str(&format!("      affects: {}\n", i.explanation.impact));
        for r in i.recommendations.iter().take(3) {
            text.push_str(&format!(
                "      action {}: {} (prior success {:.2}) — {}\n",
                r.rank,
                r.action.name(),
                r.success_rate,
                r.rationale
            ));
        }
    }
    Ok((text, serde_json::json!({ "incidents": incidents })))
}

/// What the self-healing executor did with the incidents: waits (up to two minutes) until no
/// action is left to apply and no incident is being remediated or verified, then shows each
/// incident's actions with their dry run and outcome, and its KPIs before (the baseline),
/// during (when the actions were planned) and after (at verification).
async fn healing_section(pool: &sqlx::PgPool) -> anyhow::Result<(String, serde_json::Value)> {
    let by = Instant::now() + Duration::from_secs(120);
    loop {
        let busy: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM incidents WHERE state IN ('remediating', 'verifying'))
                  + (SELECT count(*) FROM executor_actions WHERE state IN ('ready', 'applying'))",
        )
        .fetch_one(pool)
        .await?;
        if busy == 0 || Instant::now() >= by {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let incidents: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT id, state, resolution_reason FROM incidents i
         WHERE EXISTS (SELECT 1 FROM executor_actions a WHERE a.incident_id = i.id)
         ORDER BY opened_at",
    )
    .fetch_all(pool)
    .await?;
    let mut text = String::new();
    let mut out = Vec::new();
    let mut remediated = 0;
    for (id, state, reason) in &incidents {
        let actions = heal_incidents::executor::actions_of(pool, id).await?;
        let kpis: Vec<(String, serde_json::Value)> = sqlx::query_as(
            "SELECT kind, detail FROM incident_timeline
             WHERE incident_id = $1 AND kind IN ('kpis', 'verification') ORDER BY id",
        )
        .bind(id)
        .fetch_all(pool)
        .await?;
        if reason.as_deref() == Some("remediated") {
            remediated += 1;
        }
        text.push_str(&format!(
            "\n  [{}] {state}{}\n",
            &id[..8.min(id.len())],
            reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
        for a in &actions {
            let why = a
                .outcome
                .as_ref()
                .and_then(|o| o.get("reason").or_else(|| o.get("error")))
                .and_then(|v| v.as_str())
                .map(|w| format!(": {w}"))
                .unwrap_or_default();
            text.push_str(&format!(
                "      {} {} — {}{why}\n",
                a.action,
                dry_run_line(&a.dry_run),
                a.state
            ));
        }
        let during = kpis
            .iter()
            .find(|(k, _)| k == "kpis")
            .map(|(_, d)| &d["kpis"]);
        let after = kpis
            .iter()
            .rev()
            .find(|(k, _)| k == "verification")
            .map(|(_, d)| &d["detail"]["kpis"]);
        for r in during.and_then(|d| d.as_array()).into_iter().flatten() {
            let name = r["kpi"].as_str().unwrap_or("?");
            let values = |v: Option<&serde_json::Value>| -> String {
                v.and_then(|v| v.as_array())
                    .and_then(|all| all.iter().find(|x| x["kpi"] == name))
                    .and_then(|x| x["values"].as_array())
                    .filter(|vals| !vals.is_empty())
                    .map(|vals| {
                        vals.iter()
                            .map(|p| format!("{:.2}", p[1].as_f64().unwrap_or(f64::NAN)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_else(|| "-".into())
            };
            text.push_str(&format!(
                "      KPI {name}: before {} · during {} · after {}\n",
                r["baseline"]
                    .as_f64()
                    .map_or("-".into(), |b| format!("{b:.2}")),
                values(during),
                values(after),
            ));
        }
        out.push(serde_json::json!({
            "incident": id, "state": state, "resolution_reason": reason,
            "actions": actions, "kpis": kpis.iter().map(|(k, d)| serde_json::json!({"kind": k, "detail": d})).collect::<Vec<_>>(),
        }));
    }
    let head = format!(
        "\nSelf-healing (heal incidents actions <id>): {} incident(s) with planned actions, {remediated} remediated and verified\n",
        incidents.len()
    );
    Ok((head + &text, serde_json::json!({ "incidents": out })))
}

/// A dry run in a few words.
fn dry_run_line(d: &serde_json::Value) -> String {
    let n = |k: &str| d.get(k).and_then(|v| v.as_u64());
    if let Some(rows) = n("rows_deleted") {
        return format!("(dry run: {rows} row(s) to delete)");
    }
    if let Some(q) = n("would_ingest") {
        return format!(
            "(dry run: {q} of {} quarantined event(s) to ingest)",
            n("quarantined_events").unwrap_or(q)
        );
    }
    if let Some(days) = d.get("days").and_then(|v| v.as_array()) {
        return format!("(dry run: {} partition(s) to recompute)", days.len());
    }
    if d.get("from_day").is_some() {
        return format!(
            "(dry run: hold {} to {})",
            d["from_day"].as_str().unwrap_or("?"),
            d["to_day"].as_str().unwrap_or("?")
        );
    }
    String::new()
}

/// The lineage graph the roles declared and ran, and what a problem with the raw `payments`
/// table would put at risk.
async fn lineage_section(
    lineage: &heal_lineage::Lineage,
) -> anyhow::Result<(String, serde_json::Value)> {
    use heal_lineage::LineageApi;
    lineage.project().await?;
    let graph = lineage.export().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let impact = lineage
        .impact("payments", None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let s = &impact.summary;
    let mut text = format!(
        "\nLineage (heal lineage impact payments): {} nodes, {} edges; a problem in payments reaches {} assets, max criticality {}, KPIs at risk: {}\n",
        graph.nodes.len(),
        graph.edges.len(),
        s.assets,
        s.max_criticality.as_deref().unwrap_or("none"),
        s.kpis_at_risk.join(", ")
    );
    let mut t = table(&["distance", "kind", "assets"]);
    for g in &impact.groups {
        let names: Vec<&str> = g
            .assets
            .iter()
            .map(|a| a.name.trim_start_matches("public."))
            .collect();
        t.add_row(vec![
            g.distance.to_string(),
            g.kind.to_string(),
            names.join(", "),
        ]);
    }
    text.push_str(&format!("{t}\n"));
    let json = serde_json::json!({
        "nodes": graph.nodes.len(),
        "edges": graph.edges.len(),
        "impact_of_payments": impact.summary,
    });
    Ok((text, json))
}

struct Summary {
    text: String,
    json: serde_json::Value,
    all_matched: bool,
}

/// Day partitions a fault window overlaps.
fn window_days(r: &InjectionRecord) -> Vec<chrono::NaiveDate> {
    let mut days = Vec::new();
    let mut d = r.window_start.date_naive();
    while d.and_hms_opt(0, 0, 0).expect("midnight").and_utc() < r.window_end {
        days.push(d);
        d += chrono::Duration::days(1);
    }
    days
}

/// For a job fault: (partitions it should hit, partitions where the batch engine recorded it).
async fn job_fault_seen(pool: &sqlx::PgPool, r: &InjectionRecord) -> anyhow::Result<(i64, i64)> {
    let days = window_days(r);
    let condition = if r.kind == heal_model::FaultKind::JobFailure {
        "status = 'failed' AND error LIKE 'injected job_failure%'"
    } else {
        "delayed_secs > 0"
    };
    let seen: i64 = sqlx::query_scalar(&format!(
        "SELECT count(DISTINCT day) FROM job_runs WHERE job = $1 AND day = ANY($2) AND {condition}"
    ))
    .bind(&r.target)
    .bind(&days)
    .fetch_one(pool)
    .await?;
    Ok((days.len() as i64, seen))
}

/// Where the injected events were found, for one ground-truth row.
async fn observed(pool: &sqlx::PgPool, r: &InjectionRecord) -> anyhow::Result<Option<i64>> {
    let ids = serde_json::json!(r.affected_event_ids);
    let n: Option<i64> = if let Some(reason) = r.expected.strip_prefix("quarantine:") {
        Some(
            sqlx::query_scalar(
                "SELECT count(DISTINCT event_id) FROM quarantine
                 WHERE reason = $1 AND event_id IN (SELECT jsonb_array_elements_text($2))",
            )
            .bind(reason)
            .bind(&ids)
            .fetch_one(pool)
            .await?,
        )
    } else {
        match r.expected.as_str() {
            "late" => Some(
                sqlx::query_scalar(
                    "SELECT count(*) FROM raw_events WHERE is_late AND event_id IN (SELECT jsonb_array_elements_text($1))",
                )
                .bind(&ids)
                .fetch_one(pool)
                .await?,
            ),
            "deduplicated" => Some(
                sqlx::query_scalar(
                    "SELECT coalesce(sum(duplicate_count), 0)::int8 FROM raw_events WHERE event_id IN (SELECT jsonb_array_elements_text($1))",
                )
                .bind(&ids)
                .fetch_one(pool)
                .await?,
            ),
            "dropped" => Some(
                r.affected_count as i64
                    - sqlx::query_scalar::<_, i64>(
                        "SELECT count(*) FROM raw_events WHERE event_id IN (SELECT jsonb_array_elements_text($1))",
                    )
                    .bind(&ids)
                    .fetch_one(pool)
                    .await?,
            ),
            "stored" => Some(
                sqlx::query_scalar(
                    "SELECT count(*) FROM raw_events WHERE event_id IN (SELECT jsonb_array_elements_text($1))",
                )
                .bind(&ids)
                .fetch_one(pool)
                .await?,
            ),
            _ => None,
        }
    };
    Ok(n)
}

async fn summarize(
    pool: &sqlx::PgPool,
    truth: &[InjectionRecord],
    sent: u64,
    elapsed: Duration,
    batch: &[heal_batch::Report],
) -> anyhow::Result<Summary> {
    let tables = heal_ingest::table_counts(pool).await?;
    let reasons: Vec<(String, i64)> =
        sqlx::query_as("SELECT reason, count(*) FROM quarantine GROUP BY reason ORDER BY 2 DESC")
            .fetch_all(pool)
            .await?;
    let (late, dups): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE is_late), coalesce(sum(duplicate_count), 0)::int8 FROM raw_events",
    )
    .fetch_one(pool)
    .await?;
    let dirty: Vec<(String, chrono::NaiveDate, i64)> =
        sqlx::query_as("SELECT table_name, day, late_events FROM dirty_partitions ORDER BY 1, 2")
            .fetch_all(pool)
            .await?;

    let mut text = String::new();
    text.push_str(&format!(
        "\n{} events generated and ingested in {:.1} s\n\n",
        count(sent as i64),
        elapsed.as_secs_f64()
    ));
    let mut t = table(&["table", "rows"]);
    for (name, n) in &tables {
        t.add_row(vec![name.clone(), count(*n)]);
    }
    text.push_str(&format!("Stored\n{t}\n"));
    text.push_str(&format!(
        "late events flagged: {}   duplicate deliveries absorbed: {}   partitions marked for recomputation: {}\n\n",
        count(late),
        count(dups),
        dirty.len()
    ));
    let mut q = table(&["quarantine reason", "events"]);
    for (r, n) in &reasons {
        q.add_row(vec![r.clone(), count(*n)]);
    }
    text.push_str(&format!("Quarantined (heal quarantine list)\n{q}\n"));

    let mut f = table(&[
        "injected fault",
        "target",
        "affected",
        "expected",
        "observed",
        "match",
    ]);
    let mut faults = Vec::new();
    let mut all_matched = true;
    for r in truth {
        let (affected, seen) = if r.kind.targets_job() {
            let (want, seen) = job_fault_seen(pool, r).await?;
            (want, Some(seen))
        } else {
            (r.affected_count as i64, observed(pool, r).await?)
        };
        let matched = seen.map(|n| n == affected);
        if matched == Some(false) {
            all_matched = false;
        }
        f.add_row(vec![
            r.kind.to_string(),
            r.target.clone(),
            count(affected),
            r.expected.clone(),
            seen.map(count).unwrap_or_else(|| "-".into()),
            match matched {
                Some(true) => "yes".into(),
                Some(false) => "NO".into(),
                None => "-".into(),
            },
        ]);
        faults.push(serde_json::json!({
            "kind": r.kind, "target": r.target, "affected": affected,
            "expected": r.expected, "observed": seen, "matched": matched,
        }));
    }
    text.push_str(&format!(
        "Injected faults against what the platform recorded\n{f}"
    ));
    let analytics = analytics(pool, batch).await?;
    text.push_str(&analytics.0);
    let json = serde_json::json!({
        "events": sent,
        "seconds": elapsed.as_secs_f64(),
        "tables": tables.iter().map(|(t, n)| serde_json::json!({"table": t, "rows": n})).collect::<Vec<_>>(),
        "late_events": late,
        "duplicate_deliveries": dups,
        "dirty_partitions": dirty.len(),
        "quarantine": reasons.iter().map(|(r, n)| serde_json::json!({"reason": r, "events": n})).collect::<Vec<_>>(),
        "faults": faults,
        "all_matched": all_matched,
        "batch": analytics.1,
    });
    Ok(Summary {
        text,
        json,
        all_matched,
    })
}

/// Day, orders, gross, refunds, net, paying customers, average order value.
type RevenueRow = (chrono::NaiveDate, i64, f64, f64, f64, i64, Option<f64>);
/// Day, users at each of the five steps, overall conversion.
type FunnelRow = (chrono::NaiveDate, i64, i64, i64, i64, i64, Option<f64>);

/// What the batch jobs computed: a run summary, daily revenue and the funnel.
async fn analytics(
    pool: &sqlx::PgPool,
    passes: &[heal_batch::Report],
) -> anyhow::Result<(String, serde_json::Value)> {
    let mut text = String::from("\n\nBatch jobs (heal batch status, heal batch runs)\n");
    for (i, pass) in passes.iter().enumerate() {
        let jobs: std::collections::BTreeSet<&str> =
            pass.runs.iter().map(|r| r.job.as_str()).collect();
        text.push_str(&format!(
            "pass {}: {} partitions of {} jobs computed, {} failed, {} waiting\n",
            i + 1,
            pass.runs.len(),
            jobs.len(),
            pass.failed(),
            pass.waiting.len()
        ));
        for r in pass.runs.iter().filter(|r| !r.succeeded) {
            text.push_str(&format!(
                "  failed: {} {} after {} attempts: {}\n",
                r.job,
                r.day,
                r.attempts,
                r.error.as_deref().unwrap_or("")
            ));
        }
        for r in pass.runs.iter().filter(|r| r.delayed_secs > 0.0) {
            text.push_str(&format!(
                "  delayed: {} {} started {:.0} simulated minutes late\n",
                r.job,
                r.day,
                r.delayed_secs / 60.0
            ));
        }
    }
    let last = passes.last();
    let revenue: Vec<RevenueRow> = sqlx::query_as(
        "SELECT day, orders, gross_revenue_usd::float8, refunds_usd::float8, net_revenue_usd::float8,
                paying_customers, avg_order_value_usd::float8
         FROM daily_revenue ORDER BY day",
    )
    .fetch_all(pool)
    .await?;
    let mut t = table(&[
        "day",
        "orders",
        "gross USD",
        "refunds USD",
        "net USD",
        "paying customers",
        "avg order USD",
    ]);
    for (d, orders, gross, refunds, net, customers, aov) in &revenue {
        t.add_row(vec![
            d.to_string(),
            count(*orders),
            format!("{gross:.2}"),
            format!("{refunds:.2}"),
            format!("{net:.2}"),
            count(*customers),
            aov.map(|a| format!("{a:.2}")).unwrap_or_else(|| "-".into()),
        ]);
    }
    text.push_str(&format!("Daily revenue\n{t}\n"));
    let funnel: Vec<FunnelRow> = sqlx::query_as(
        "SELECT day, sessions, product_views, add_to_cart, orders, payments, overall_rate
         FROM user_funnel ORDER BY day",
    )
    .fetch_all(pool)
    .await?;
    let mut f = table(&[
        "day",
        "sessions",
        "viewed",
        "carted",
        "ordered",
        "paid",
        "conversion",
    ]);
    for (d, s, v, c, o, p, rate) in &funnel {
        f.add_row(vec![
            d.to_string(),
            count(*s),
            count(*v),
            count(*c),
            count(*o),
            count(*p),
            rate.map(|r| format!("{:.1}%", r * 100.0))
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    text.push_str(&format!("User funnel (distinct users per step)\n{f}"));
    let json = serde_json::json!({
        "passes": passes.iter().map(|p| serde_json::json!({
            "partitions_computed": p.runs.len(),
            "failed": p.failed(),
            "waiting": p.waiting.len(),
        })).collect::<Vec<_>>(),
        "failed": last.map(|p| p.failed()).unwrap_or(0),
        "waiting": last.map(|p| p.waiting.len()).unwrap_or(0),
        "daily_revenue": revenue.iter().map(|(d, o, g, r, n, c, a)| serde_json::json!({
            "day": d, "orders": o, "gross_revenue_usd": g, "refunds_usd": r, "net_revenue_usd": n,
            "paying_customers": c, "avg_order_value_usd": a,
        })).collect::<Vec<_>>(),
        "user_funnel": funnel.iter().map(|(d, s, v, c, o, p, r)| serde_json::json!({
            "day": d, "sessions": s, "product_views": v, "add_to_cart": c, "orders": o, "payments": p,
            "overall_rate": r,
        })).collect::<Vec<_>>(),
    });
    Ok((text, json))
}
