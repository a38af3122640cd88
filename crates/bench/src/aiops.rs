//! `heal bench aiops`: the AI Ops engine under load. A layered lineage graph (100k nodes by
//! default: source streams, ingest jobs, raw tables, then layers of jobs and derived tables
//! each reading two or three upstream tables), 10k incidents already held (resolved), then
//! failure events in cascades (a fault on a table or job, then failures on nodes downstream
//! of it) fed at a steady rate. Reported: sustained events/s, and p50/p95/max of the decision
//! latency (failure event in → incident messages out, serialized as the role publishes them);
//! the same events unpaced (the ceiling); and, side by side, the seed's way (group by table
//! and check type in a map, no lineage) as the reference.

use chrono::{DateTime, Duration, Utc};
use clap::Args;
use heal_aiops::{Engine, GraphEdge, GraphNode, GraphSnapshot, Settings, Topology};
use heal_clikit::output::table;
use heal_clikit::OutputFormat;
use heal_model::quality::{ConditionChange, FailureEvent, Severity, FAILURE_EVENT_SCHEMA};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Args)]
pub struct AiopsBenchArgs {
    /// Nodes of the lineage graph.
    #[arg(long, default_value_t = 100_000)]
    pub nodes: usize,
    /// Incidents held before the measured phase.
    #[arg(long, default_value_t = 10_000)]
    pub incidents: usize,
    /// Failure events in the measured phase.
    #[arg(long, default_value_t = 20_000)]
    pub events: usize,
    /// Target rate of the measured phase (events per second).
    #[arg(long, default_value_t = 2_000.0)]
    pub rate: f64,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Serialize)]
struct Phase {
    name: &'static str,
    events: usize,
    wall_s: f64,
    events_per_s: f64,
    p50_us: u64,
    p95_us: u64,
    max_us: u64,
    incidents_opened: u64,
}

/// A layered DAG of about `n` nodes; returns it and the names of its raw tables and jobs.
fn graph(n: usize, rng: &mut impl Rng) -> (GraphSnapshot, Vec<String>) {
    let mut nodes = Vec::with_capacity(n);
    let mut edges = Vec::with_capacity(n * 2);
    let mut node = |kind: &str, name: String, layer: &str| {
        nodes.push(GraphNode {
            key: format!("{kind}:{name}"),
            kind: kind.into(),
            name,
            layer: Some(layer.into()),
            owner: None,
            criticality: None,
        });
    };
    let streams = (n / 2000).max(1);
    let per_stream = 20;
    let mut tables: Vec<String> = Vec::new();
    for s in 0..streams {
        node("stream", format!("stream{s}"), "source");
        node("job", format!("ingest{s}"), "raw");
        edges.push((
            format!("stream:stream{s}"),
            format!("job:ingest{s}"),
            "reads",
        ));
        for t in 0..per_stream {
            let name = format!("raw{s}_{t}");
            node("dataset", name.clone(), "raw");
            edges.push((
                format!("job:ingest{s}"),
                format!("dataset:{name}"),
                "writes",
            ));
            tables.push(name);
        }
    }
    let mut faultable = tables.clone();
    let mut made = streams * (per_stream + 2);
    let mut layer = 0;
    while made + 2 <= n {
        layer += 1;
        let width = ((n - made) / 2).min(tables.len() * 2).max(1);
        let mut next = Vec::with_capacity(width);
        for i in 0..width {
            if made + 2 > n {
                break;
            }
            let job = format!("j{layer}_{i}");
            let out = format!("d{layer}_{i}");
            node("job", job.clone(), "staging");
            node("dataset", out.clone(), "analytics");
            let reads = rng.gen_range(2..=3);
            for _ in 0..reads {
                let src = &tables[rng.gen_range(0..tables.len())];
                edges.push((format!("dataset:{src}"), format!("job:{job}"), "reads"));
            }
            edges.push((format!("job:{job}"), format!("dataset:{out}"), "writes"));
            if i % 10 == 0 {
                faultable.push(format!("job:{job}"));
            }
            next.push(out);
            made += 2;
        }
        tables.extend(next);
    }
    let edges = edges
        .into_iter()
        .map(|(src, dst, kind)| GraphEdge {
            src,
            dst,
            kind: kind.into(),
        })
        .collect();
    (GraphSnapshot { nodes, edges }, faultable)
}

fn event(
    id: &mut i64,
    dataset: &str,
    job: Option<&str>,
    check_type: &str,
    at: DateTime<Utc>,
) -> FailureEvent {
    *id += 1;
    FailureEvent {
        schema: FAILURE_EVENT_SCHEMA.into(),
        event_id: format!("b{id}"),
        emitted_at: Utc::now(),
        change: ConditionChange::Opened,
        condition_id: *id,
        check: format!("{dataset}_{check_type}"),
        check_type: check_type.into(),
        dataset: dataset.into(),
        column: None,
        subject: job.unwrap_or(dataset).into(),
        severity: Severity::High,
        observed: Some(10.0),
        expected: Some(100.0),
        lower: Some(70.0),
        upper: Some(130.0),
        threshold: "rows in band".into(),
        window_start: at,
        window_end: at + Duration::hours(1),
        partition: None,
        run_id: None,
        message: format!("{dataset} {check_type} failed"),
        sample: vec![],
        first_seen: Utc::now(),
        last_seen: Utc::now(),
        occurrences: 1,
        data_start: Some(at),
        data_end: Some(at + Duration::hours(1)),
        detail: serde_json::json!({}),
    }
}

/// A fault's failure events: its own, then up to four nodes downstream of it.
fn cascade(
    t: &Topology,
    faultable: &[String],
    rng: &mut impl Rng,
    id: &mut i64,
    at: DateTime<Utc>,
) -> Vec<FailureEvent> {
    let pick = &faultable[rng.gen_range(0..faultable.len())];
    let (kind, name) = pick.split_once(':').unwrap_or(("dataset", pick));
    let (kind, name) = if kind == "job" {
        ("job", name)
    } else {
        ("dataset", pick.as_str())
    };
    let mut out = Vec::new();
    let Some(root) = t.find(kind, name) else {
        return out;
    };
    if kind == "job" {
        out.push(event(id, name, Some(name), "pipeline", at));
    } else {
        out.push(event(id, name, None, "volume", at));
    }
    for (i, (n, _)) in t
        .descendants(root, 4)
        .into_iter()
        .filter(|(n, _)| t.node(*n).kind == "dataset")
        .take(4)
        .enumerate()
    {
        out.push(event(
            id,
            &t.node(n).name,
            None,
            "reconciliation",
            at + Duration::minutes(10 * (i as i64 + 1)),
        ));
    }
    out
}

impl Phase {
    /// A phase's figures from its per-event latencies (µs) and wall time.
    fn new(name: &'static str, lat: Vec<u64>, wall_s: f64, incidents_opened: u64) -> Phase {
        let events = lat.len();
        let (p50_us, p95_us, max_us) = percentiles(lat);
        Phase {
            name,
            events,
            wall_s,
            events_per_s: events as f64 / wall_s,
            p50_us,
            p95_us,
            max_us,
            incidents_opened,
        }
    }
}

fn percentiles(mut v: Vec<u64>) -> (u64, u64, u64) {
    v.sort_unstable();
    if v.is_empty() {
        return (0, 0, 0);
    }
    let at = |p: f64| super::percentile(&v, p).unwrap_or(0);
    (at(0.5), at(0.95), *v.last().unwrap_or(&0))
}

pub async fn run(args: AiopsBenchArgs) -> anyhow::Result<ExitCode> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let t0 = Instant::now();
    let (snapshot, faultable) = graph(args.nodes, &mut rng);
    let (n_nodes, n_edges) = (snapshot.nodes.len(), snapshot.edges.len());
    let topology = Arc::new(Topology::new(snapshot));
    let build_s = t0.elapsed().as_secs_f64();
    let settings = Settings {
        keep_resolved: args.incidents + 1000,
        shared_datasets: vec![],
        ..Settings::default()
    };
    let mut engine = Engine::new(settings, topology.clone());
    let start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse()?;
    let mut id = 0i64;
    // Held incidents: one fault every 12 hours of data time, each resolved.
    let t1 = Instant::now();
    let mut at = start;
    let mut events_seen = 0usize;
    while engine.stats().incidents_opened < args.incidents as u64 {
        let evs = cascade(&topology, &faultable, &mut rng, &mut id, at);
        for e in &evs {
            engine.ingest(e);
            events_seen += 1;
        }
        for e in &evs {
            let mut r = e.clone();
            r.change = ConditionChange::Resolved;
            r.data_start = Some(at + Duration::hours(2));
            r.data_end = Some(at + Duration::hours(3));
            engine.ingest(&r);
        }
        at += Duration::hours(12);
        engine.advance(at);
    }
    let preload_s = t1.elapsed().as_secs_f64();
    // The measured events: cascades of new faults, 20 minutes of data time apart.
    let mut measured = Vec::with_capacity(args.events);
    while measured.len() < args.events {
        measured.extend(cascade(&topology, &faultable, &mut rng, &mut id, at));
        at += Duration::minutes(20);
    }
    measured.truncate(args.events);
    let held = engine.incidents().len();

    let mut phases = Vec::new();
    for (name, paced) in [
        ("heal engine, paced", true),
        ("heal engine, unpaced", false),
    ] {
        let mut e = Engine::new(
            Settings {
                keep_resolved: args.incidents + args.events,
                shared_datasets: vec![],
                ..Settings::default()
            },
            topology.clone(),
        );
        // The same held incidents in both runs.
        for i in engine.incidents() {
            e.restore(i.clone());
        }
        let opened_before = e.stats().incidents_opened;
        let mut lat = Vec::with_capacity(measured.len());
        let began = Instant::now();
        for (k, ev) in measured.iter().enumerate() {
            if paced {
                let due = std::time::Duration::from_secs_f64(k as f64 / args.rate);
                if let Some(wait) = due.checked_sub(began.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            let t = Instant::now();
            let msgs = e.ingest(ev);
            for m in &msgs {
                std::hint::black_box(serde_json::to_vec(m)?);
            }
            lat.push(t.elapsed().as_micros() as u64);
        }
        let opened = e.stats().incidents_opened - opened_before;
        phases.push(Phase::new(name, lat, began.elapsed().as_secs_f64(), opened));
    }
    // The reference: the seed's engine groups by (table, check type) in a map and raises at
    // three failures, no lineage.
    {
        let mut groups: HashMap<(String, String), u32> = HashMap::new();
        let mut raised = 0u64;
        let mut lat = Vec::with_capacity(measured.len());
        let began = Instant::now();
        for ev in &measured {
            let t = Instant::now();
            let n = groups
                .entry((ev.dataset.clone(), ev.check_type.clone()))
                .or_insert(0);
            *n += 1;
            if *n == 3 {
                raised += 1;
                std::hint::black_box(serde_json::to_vec(ev)?);
            }
            lat.push(t.elapsed().as_micros() as u64);
        }
        phases.push(Phase::new(
            "reference: seed-style grouping (no lineage)",
            lat,
            began.elapsed().as_secs_f64(),
            raised,
        ));
    }
    let report = serde_json::json!({
        "graph": { "nodes": n_nodes, "edges": n_edges, "build_s": build_s },
        "held_incidents": held,
        "preload": { "events": events_seen, "seconds": preload_s },
        "target_rate": args.rate,
        "phases": phases,
        "goal": { "events_per_s": 1000, "p95_ms": 100 },
    });
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Table => {
            println!(
                "lineage graph: {n_nodes} nodes, {n_edges} edges (built in {build_s:.1} s); {held} incidents held before the measured phase ({events_seen} failure events, {preload_s:.1} s)"
            );
            let mut t = table(&[
                "phase",
                "events",
                "events/s",
                "p50",
                "p95",
                "max",
                "incidents opened",
            ]);
            for p in &phases {
                t.add_row(vec![
                    p.name.to_string(),
                    p.events.to_string(),
                    format!("{:.0}", p.events_per_s),
                    format!("{:.2} ms", p.p50_us as f64 / 1000.0),
                    format!("{:.2} ms", p.p95_us as f64 / 1000.0),
                    format!("{:.2} ms", p.max_us as f64 / 1000.0),
                    p.incidents_opened.to_string(),
                ]);
            }
            println!("{t}");
            println!(
                "goal: sustained ≥ 1,000 events/s at p95 < 100 ms (paced at {:.0} events/s)",
                args.rate
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
