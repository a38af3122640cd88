//! `heal bench console`: server-side render time of the console's overview and incident
//! pages with 10k incidents in the store and a 100k-node lineage graph (a layered DAG held
//! by the console as the lineage service would export it), in a fresh database on the
//! PostgreSQL server. The reference, measured in the same run on the same data, is the JSON
//! API answer for the same incident (`GET /api/incidents/{id}`): what the page costs beyond
//! reading the incident.

use super::progress::phase;
use super::{on_server, Server};
use axum::body::Body;
use axum::http::Request;
use axum::Router;
use chrono::{Duration, Utc};
use clap::Args;
use futures::future::BoxFuture;
use heal_clikit::output::{count, table};
use heal_clikit::{Global, OutputFormat};
use heal_lineage::model::{Edge, EdgeKind, Node, NodeKind, Props};
use heal_lineage::query::GraphExport;
use heal_model::incident::*;
use heal_model::quality::Severity;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;
use tower::ServiceExt;

/// Goal: p95 render time of either page.
const P95_GOAL_MS: f64 = 300.0;

#[derive(Debug, Args)]
pub struct ConsoleBenchArgs {
    #[arg(long, default_value_t = 10_000)]
    pub incidents: u32,
    #[arg(long, default_value_t = 100_000)]
    pub nodes: u32,
    /// Renders per page.
    #[arg(long, default_value_t = 200)]
    pub requests: usize,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Serialize)]
struct Series {
    page: String,
    p50_ms: f64,
    p95_ms: f64,
    max_ms: f64,
    mean_kb: f64,
}

#[derive(Debug, Serialize)]
struct ConsoleReport {
    incidents: u32,
    graph_nodes: usize,
    graph_edges: usize,
    /// Indexing the exported graph (done once per 10 s refresh, not per page).
    graph_index_ms: f64,
    load_secs: f64,
    series: Vec<Series>,
    p95_goal_ms: f64,
    goal_met: bool,
}

struct Fixed(GraphExport);

impl heal_console::GraphSource for Fixed {
    fn export(&self) -> BoxFuture<'_, Result<GraphExport, String>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
}

pub async fn run(global: &Global, args: ConsoleBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.nodes >= 1_000, "--nodes must be at least 1000");
    anyhow::ensure!(args.incidents >= 10, "--incidents must be at least 10");
    anyhow::ensure!(args.requests >= 20, "--requests must be at least 20");
    let bench = async |_: &heal_config::Config, server: &mut Server| measure(&args, server).await;
    on_server(
        global,
        "heal bench console",
        None,
        args.output,
        bench,
        print,
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// A layered DAG: datasets and jobs alternate over 20 layers; each node feeds three nodes
/// near its position in the next layer.
fn graph(nodes: u32) -> (GraphExport, Vec<Vec<usize>>) {
    let layers = 20usize;
    let per = nodes as usize / layers;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut g = GraphExport::default();
    let mut by_layer = vec![Vec::new(); layers];
    for (l, layer) in by_layer.iter_mut().enumerate() {
        let kind = if l % 2 == 0 {
            NodeKind::Dataset
        } else {
            NodeKind::Job
        };
        for i in 0..per {
            let props = Props {
                layer: Some(format!("l{l}")),
                owner: Some(format!("team-{}", i % 17)),
                ..Props::default()
            };
            layer.push(g.nodes.len());
            g.nodes
                .push(Node::new(kind, "bench", &format!("l{l}_n{i}"), props));
        }
    }
    for l in 0..layers - 1 {
        for i in 0..per {
            for _ in 0..3 {
                let j = (i as i64 + rng.gen_range(-20..=20)).rem_euclid(per as i64) as usize;
                g.edges.push(Edge {
                    src: g.nodes[by_layer[l][i]].key.clone(),
                    dst: g.nodes[by_layer[l + 1][j]].key.clone(),
                    kind: if l % 2 == 0 {
                        EdgeKind::Reads
                    } else {
                        EdgeKind::Writes
                    },
                });
            }
        }
    }
    (g, by_layer)
}

fn node_ref(n: &Node) -> NodeRef {
    NodeRef {
        key: n.key.clone(),
        kind: n.kind.as_str().to_string(),
        name: n.name.clone(),
    }
}

/// An incident rooted at a dataset of layer 2k, with symptoms and a blast radius downstream.
fn incident(g: &GraphExport, by_layer: &[Vec<usize>], n: u32, rng: &mut impl Rng) -> Incident {
    let l = 2 * rng.gen_range(0..(by_layer.len() / 2 - 2));
    let i = rng.gen_range(0..by_layer[l].len());
    let root = &g.nodes[by_layer[l][i]];
    let job = &g.nodes[by_layer[l + 1][i]];
    let hit = &g.nodes[by_layer[l + 2][i]];
    let start = Utc::now() - Duration::hours(rng.gen_range(1..24 * 60));
    let classes = IncidentClass::ALL;
    let class = classes[n as usize % classes.len()];
    let step = |a: &Node, b: &Node, edge: &str| PathStep {
        from: node_ref(a),
        to: node_ref(b),
        edge: edge.into(),
    };
    Incident {
        id: format!("bench-{n:05}"),
        fingerprint: format!("fp-{}", root.key),
        status: IncidentStatus::Open,
        severity: [
            Severity::Critical,
            Severity::High,
            Severity::Medium,
            Severity::Low,
        ][n as usize % 4],
        title: format!("{class} at {}", root.name),
        data_start: start,
        data_end: start + Duration::hours(2),
        detected_at_data: start + Duration::hours(1),
        opened_at: start + Duration::hours(1),
        updated_at: start + Duration::hours(1),
        resolved_at: None,
        previous: None,
        symptoms: (0..3)
            .map(|k| Symptom {
                failure_event_id: format!("bench-{n}-f{k}"),
                condition_id: (n * 3 + k) as i64,
                check: format!("check_{k}"),
                check_type: "volume".into(),
                node: node_ref(if k == 0 { root } else { hit }),
                severity: Severity::High,
                data_start: start,
                data_end: start + Duration::hours(1),
                observed: Some(120.0),
                expected: Some(1000.0),
                lower: Some(800.0),
                upper: Some(1200.0),
                threshold: "band".into(),
                message: "volume dropped".into(),
                reasons: BTreeMap::new(),
                sample: vec![],
                active: true,
            })
            .collect(),
        root_causes: vec![RootCause {
            rank: 1,
            node: node_ref(root),
            class,
            mechanism: "bench".into(),
            score: 0.9,
            grounded: true,
            factors: BTreeMap::new(),
            paths: vec![SymptomPath {
                symptom: format!("bench-{n}-f1"),
                node: node_ref(hit),
                steps: vec![step(root, job, "reads"), step(job, hit, "writes")],
            }],
        }],
        classification: Classification {
            class,
            confidence: 0.8,
            low_confidence: false,
            scores: vec![(class, 0.8)],
            features: vec![format!("class:{class}")],
        },
        affected: (0..20)
            .map(|k| {
                let ll = (l + 2 + k / 5).min(by_layer.len() - 1);
                let j = (i + k) % by_layer[ll].len();
                AffectedAsset {
                    node: node_ref(&g.nodes[by_layer[ll][j]]),
                    distance: (2 + k / 5) as u32,
                    criticality: None,
                }
            })
            .collect(),
        explanation: Explanation {
            summary: format!("{} dropped upstream of {}", root.name, hit.name),
            evidence: vec!["volume 120 against 1000 expected".into()],
            since: start,
            origin: root.name.clone(),
            impact: "20 downstream assets".into(),
            confidence: "high".into(),
            runner_up: None,
            text: "bench".into(),
            prose: None,
        },
        recommendations: vec![],
        failure_events: 3,
    }
}

async fn measure(args: &ConsoleBenchArgs, server: &mut Server) -> anyhow::Result<ConsoleReport> {
    let name = format!("heal_bench_console_{}", std::process::id());
    let (_, db) = server.create(&name).await?;
    let pool = db.pool().clone();
    phase("generating the lineage graph");
    let (g, by_layer) = graph(args.nodes);
    let (graph_nodes, graph_edges) = (g.nodes.len(), g.edges.len());
    let t = Instant::now();
    let indexed = heal_console::graph::Graph::new(g.clone());
    let graph_index_ms = t.elapsed().as_secs_f64() * 1e3;
    drop(indexed);
    let started = Instant::now();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut ids = Vec::new();
    phase(&format!("storing {} incidents", args.incidents));
    {
        for n in 0..args.incidents {
            let mut i = incident(&g, &by_layer, n, &mut rng);
            heal_incidents::store::apply_message(
                &pool,
                &IncidentMessage::new(IncidentChange::Opened, i.clone()),
            )
            .await?;
            // Most incidents of a real store are over.
            if n % 10 < 7 {
                i.status = IncidentStatus::Resolved;
                i.resolved_at = Some(Utc::now());
                heal_incidents::store::apply_message(
                    &pool,
                    &IncidentMessage::new(IncidentChange::Resolved, i.clone()),
                )
                .await?;
            }
            ids.push(i.id);
        }
        sqlx::query("ANALYZE").execute(&pool).await?;
    }
    let load_secs = started.elapsed().as_secs_f64();
    let auth = Arc::new(heal_http::auth::Auth::off());
    let console: Router = heal_console::routes(heal_console::Console::new(
        pool.clone(),
        None,
        auth,
        Arc::new(Fixed(g)),
    ));
    let api: Router = heal_incidents::http::routes(pool.clone(), None);
    // The first request indexes the graph: outside the measurement.
    get(&console, "/").await?;
    let mut series = Vec::new();
    for (label, router, path) in [
        ("overview /", &console, None),
        (
            "incident page /incidents/{id}",
            &console,
            Some("/incidents/"),
        ),
        (
            "reference: JSON /api/incidents/{id}",
            &api,
            Some("/api/incidents/"),
        ),
        (
            "part of the page: JSON /api/incidents/{id}/similar",
            &api,
            Some("/api/incidents/"),
        ),
    ] {
        let mut times = Vec::new();
        let mut bytes = 0usize;
        phase(&format!("rendering {label} {} times", args.requests));
        {
            for k in 0..args.requests {
                let p = match path {
                    None => "/".to_string(),
                    Some(prefix) if label.ends_with("/similar") => {
                        format!("{prefix}{}/similar", ids[(k * 7919) % ids.len()])
                    }
                    Some(prefix) => format!("{prefix}{}", ids[(k * 7919) % ids.len()]),
                };
                let t = Instant::now();
                bytes += get(router, &p).await?;
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        times.sort_by(f64::total_cmp);
        let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
        series.push(Series {
            page: label.to_string(),
            p50_ms: at(0.5),
            p95_ms: at(0.95),
            max_ms: *times.last().unwrap_or(&0.0),
            mean_kb: bytes as f64 / times.len() as f64 / 1024.0,
        });
    }
    db.close().await;
    server.drop_database(&name).await?;
    let goal_met = series
        .iter()
        .filter(|s| !s.page.contains("JSON"))
        .all(|s| s.p95_ms < P95_GOAL_MS);
    Ok(ConsoleReport {
        incidents: args.incidents,
        graph_nodes,
        graph_edges,
        graph_index_ms,
        load_secs,
        series,
        p95_goal_ms: P95_GOAL_MS,
        goal_met,
    })
}

/// One request through the router; the body's size. A non-200 answer is an error.
async fn get(router: &Router, path: &str) -> anyhow::Result<usize> {
    let resp = router
        .clone()
        .oneshot(Request::get(path).body(Body::empty())?)
        .await?;
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 64 << 20).await?;
    anyhow::ensure!(
        status.is_success(),
        "{path} answered {status}: {}",
        String::from_utf8_lossy(&body[..body.len().min(300)])
    );
    Ok(body.len())
}

fn print(r: &ConsoleReport) {
    println!(
        "{} incidents; lineage graph of {} nodes and {} edges (indexed in {:.0} ms, once per refresh); loaded in {:.1} s",
        count(r.incidents as i64),
        count(r.graph_nodes as i64),
        count(r.graph_edges as i64),
        r.graph_index_ms,
        r.load_secs
    );
    let mut t = table(&["page", "p50 ms", "p95 ms", "max ms", "KB"]);
    for s in &r.series {
        t.add_row(vec![
            s.page.clone(),
            format!("{:.1}", s.p50_ms),
            format!("{:.1}", s.p95_ms),
            format!("{:.1}", s.max_ms),
            format!("{:.1}", s.mean_kb),
        ]);
    }
    println!("{t}");
    println!(
        "goal: p95 < {:.0} ms for both pages: {}",
        r.p95_goal_ms,
        if r.goal_met { "met" } else { "NOT met" }
    );
}
