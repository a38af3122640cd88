//! `heal bench lineage`: generates a synthetic layered lineage DAG (default 100k nodes, 500k
//! edges: alternating dataset and job layers, each node feeding nodes near its position in the
//! next layer, plus skip edges) in a fresh database on the PostgreSQL server, then measures
//! p50/p95 latency of the impact and upstream queries at depth 5 and unbounded: the whole
//! answer through the lineage service (traversal, node properties, criticality, freshness,
//! failures), the traversal alone, and a naive recursive CTE over the same tables in the same
//! run (node keys and distances only).

use super::progress::phase;
use super::{on_server, percentile, Server};
use clap::Args;
use heal_clikit::output::{count, table};
use heal_clikit::{Global, OutputFormat};
use heal_lineage::pg::PgGraph;
use heal_lineage::{Direction, Graph, Lineage, LineageApi};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use sqlx::PgPool;
use std::process::ExitCode;
use std::time::Instant;

/// Goal: p95 of a depth-5 query.
const P95_GOAL_MS: f64 = 50.0;

#[derive(Debug, Args)]
pub struct LineageBenchArgs {
    /// Nodes of the lineage graph.
    #[arg(long, default_value_t = 100_000)]
    pub nodes: u32,
    /// Edges of the lineage graph [default: 5 per node].
    #[arg(long)]
    pub edges: Option<u32>,
    /// Layers of the DAG (datasets and jobs alternate).
    #[arg(long, default_value_t = 20)]
    pub layers: u32,
    /// Queries per measured series.
    #[arg(long, default_value_t = 100)]
    pub queries: usize,
    /// Longest a baseline query may run before it is counted as timed out.
    #[arg(long, default_value_t = 10)]
    pub baseline_timeout_secs: u64,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

impl LineageBenchArgs {
    /// The edges asked for, or five per node.
    fn edges(&self) -> u32 {
        self.edges.unwrap_or(self.nodes.saturating_mul(5))
    }
}

#[derive(Debug, Clone, Serialize)]
struct Series {
    query: String,
    depth: String,
    method: String,
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
    mean_nodes: f64,
    timeouts: usize,
}

#[derive(Debug, Serialize)]
struct LineageReport {
    nodes: i64,
    edges: i64,
    layers: u32,
    load_secs: f64,
    server_version: Option<String>,
    series: Vec<Series>,
    p95_goal_ms: f64,
    goal_met: bool,
}

pub async fn run(global: &Global, args: LineageBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.layers >= 6, "--layers must be at least 6");
    anyhow::ensure!(
        args.nodes >= args.layers * 10,
        "--nodes is too small for --layers"
    );
    anyhow::ensure!(args.queries >= 10, "--queries must be at least 10");
    let bench = async |_: &heal_config::Config, server: &mut Server| measure(&args, server).await;
    on_server(
        global,
        "heal bench lineage",
        None,
        args.output,
        bench,
        print,
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// Loads the layered DAG; returns the node ids per layer.
async fn load(pool: &PgPool, args: &LineageBenchArgs) -> anyhow::Result<Vec<Vec<i64>>> {
    let per_layer = (args.nodes / args.layers) as i64;
    sqlx::query(
        "INSERT INTO lineage_nodes (key, kind, namespace, name, facets)
         SELECT (CASE WHEN l % 2 = 0 THEN 'dataset' ELSE 'job' END) || ':bench:l' || l || '_n' || i,
                CASE WHEN l % 2 = 0 THEN 'dataset' ELSE 'job' END, 'bench', 'l' || l || '_n' || i,
                jsonb_build_object('layer', 'l' || l)
         FROM generate_series(0, $1 - 1) l, generate_series(0, $2 - 1) i
         ORDER BY l, i",
    )
    .bind(args.layers as i64)
    .bind(per_layer)
    .execute(pool)
    .await?;
    let ids: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, name FROM lineage_nodes WHERE namespace = 'bench' ORDER BY id")
            .fetch_all(pool)
            .await?;
    let mut layers: Vec<Vec<i64>> = vec![Vec::new(); args.layers as usize];
    for (id, name) in ids {
        let l: usize = name[1..name.find('_').unwrap_or(1)].parse().unwrap_or(0);
        layers[l].push(id);
    }
    // Edges: each node feeds nodes near its position in the next layer; the rest are skip
    // edges two layers ahead (job to job through a shared dataset is the common real case).
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let forward_layers = (args.layers - 1) as u64;
    let per_node = (args.edges() as u64 / (forward_layers * per_layer as u64)).max(1);
    let mut edges: std::collections::HashSet<(i64, i64)> = std::collections::HashSet::new();
    let window = 50i64;
    for l in 0..layers.len() - 1 {
        for (i, &src) in layers[l].iter().enumerate() {
            for _ in 0..per_node {
                let j = (i as i64 + rng.gen_range(-window..=window)).rem_euclid(per_layer);
                edges.insert((src, layers[l + 1][j as usize]));
            }
        }
    }
    let mut attempts = 0u64;
    while (edges.len() as u32) < args.edges() {
        attempts += 1;
        anyhow::ensure!(
            attempts <= 20 * args.edges() as u64,
            "cannot place {} distinct edges among {} nodes in {} layers: lower --edges or raise --nodes",
            args.edges(),
            args.nodes,
            args.layers
        );
        let l = rng.gen_range(0..layers.len() - 2);
        let i = rng.gen_range(0..per_layer);
        let j = (i + rng.gen_range(-window..=window)).rem_euclid(per_layer);
        edges.insert((layers[l][i as usize], layers[l + 2][j as usize]));
    }
    let all: Vec<(i64, i64)> = edges.into_iter().collect();
    for chunk in all.chunks(50_000) {
        let src: Vec<i64> = chunk.iter().map(|e| e.0).collect();
        let dst: Vec<i64> = chunk.iter().map(|e| e.1).collect();
        sqlx::query(
            "INSERT INTO lineage_edges (src, dst, kind)
             SELECT s, d, 'reads' FROM UNNEST($1::int8[], $2::int8[]) AS e(s, d)",
        )
        .bind(&src)
        .bind(&dst)
        .execute(pool)
        .await?;
    }
    sqlx::query("ANALYZE lineage_nodes").execute(pool).await?;
    sqlx::query("ANALYZE lineage_edges").execute(pool).await?;
    Ok(layers)
}

fn series(
    query: &str,
    depth: Option<u32>,
    method: &str,
    times: Vec<f64>,
    nodes: &[usize],
    timeouts: usize,
) -> Series {
    let mut t = times;
    t.sort_by(|a, b| a.total_cmp(b));
    Series {
        query: query.into(),
        depth: depth
            .map(|d| d.to_string())
            .unwrap_or_else(|| "unbounded".into()),
        method: method.into(),
        p50_ms: percentile(&t, 0.5),
        p95_ms: percentile(&t, 0.95),
        mean_nodes: if nodes.is_empty() {
            0.0
        } else {
            nodes.iter().sum::<usize>() as f64 / nodes.len() as f64
        },
        timeouts,
    }
}

/// The naive recursive CTE: every path expanded, one row per (node, depth) reached, then
/// reduced to each node's shortest depth and joined to the node rows. Unbounded, it must
/// drop the depth to terminate (`UNION` on the node alone).
fn naive_sql(dir: Direction, depth: Option<u32>) -> String {
    let (from, to) = match dir {
        Direction::Downstream => ("src", "dst"),
        Direction::Upstream => ("dst", "src"),
    };
    match depth {
        Some(d) => format!(
            "WITH RECURSIVE r(id, depth) AS (
                 SELECT $1::int8, 0
                 UNION ALL
                 SELECT e.{to}, r.depth + 1 FROM r JOIN lineage_edges e ON e.{from} = r.id
                 WHERE r.depth < {d})
             SELECT n.key, min(r.depth) FROM r JOIN lineage_nodes n ON n.id = r.id
             WHERE r.depth > 0 GROUP BY n.key"
        ),
        None => format!(
            "WITH RECURSIVE r(id) AS (
                 SELECT $1::int8
                 UNION
                 SELECT e.{to} FROM r JOIN lineage_edges e ON e.{from} = r.id)
             SELECT n.key, 0 FROM r JOIN lineage_nodes n ON n.id = r.id WHERE r.id <> $1"
        ),
    }
}

async fn measure(args: &LineageBenchArgs, server: &mut Server) -> anyhow::Result<LineageReport> {
    let server_version = server.version().await;
    let name = format!("heal_bench_lineage_{}", std::process::id());
    let (_, db) = server.create(&name).await?;
    let pool = db.pool().clone();
    phase(&format!(
        "generating a layered DAG of {} nodes / {} edges",
        count(args.nodes as i64),
        count(args.edges() as i64)
    ));
    let started = Instant::now();
    let layers = load(&pool, args).await?;
    let load_secs = started.elapsed().as_secs_f64();
    let (nodes, edges): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM lineage_nodes), (SELECT count(*) FROM lineage_edges)",
    )
    .fetch_one(&pool)
    .await?;
    let service = Lineage::new(
        Graph::Postgres(PgGraph::new(pool.clone())),
        pool.clone(),
        None,
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let n_layers = layers.len();
    // Impact starts from datasets in the first quarter; upstream from the last quarter.
    let pick = |rng: &mut rand_chacha::ChaCha8Rng, from: usize, to: usize| -> i64 {
        let l = rng.gen_range(from..to) & !1; // dataset layers are even
        let layer = &layers[l];
        layer[rng.gen_range(0..layer.len())]
    };
    let down: Vec<i64> = (0..args.queries)
        .map(|_| pick(&mut rng, 0, n_layers / 4))
        .collect();
    let up: Vec<i64> = (0..args.queries)
        .map(|_| pick(&mut rng, n_layers * 3 / 4, n_layers))
        .collect();
    let keys: std::collections::HashMap<i64, String> =
        sqlx::query_as("SELECT id, key FROM lineage_nodes WHERE id = ANY($1)")
            .bind(down.iter().chain(&up).copied().collect::<Vec<_>>())
            .fetch_all(&pool)
            .await?
            .into_iter()
            .collect();
    let mut out = Vec::new();
    for (query, dir, starts) in [
        ("impact", Direction::Downstream, &down),
        ("upstream", Direction::Upstream, &up),
    ] {
        for depth in [Some(5), None] {
            phase(&format!(
                "{query}, depth {}",
                depth
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "unbounded".into())
            ));
            // Warm-up.
            for id in starts.iter().take(3) {
                let _ = run_ours(&service, query, &keys[id], dir, depth).await?;
            }
            let mut times = Vec::new();
            let mut sizes = Vec::new();
            for id in starts {
                let t = Instant::now();
                let n = run_ours(&service, query, &keys[id], dir, depth).await?;
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                sizes.push(n);
            }
            out.push(series(query, depth, "heal: whole answer", times, &sizes, 0));
            // The traversal alone (nodes and distances, and the edges followed), the part
            // the baseline computes.
            let mut times = Vec::new();
            let mut sizes = Vec::new();
            let graph = PgGraph::new(pool.clone());
            for id in starts {
                let t = Instant::now();
                let reach = graph.reach(&keys[id], dir, depth).await?;
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                sizes.push(reach.nodes.len());
            }
            out.push(series(query, depth, "heal: traversal", times, &sizes, 0));
            let sql = naive_sql(dir, depth);
            let mut conn = pool.acquire().await?;
            sqlx::query(&format!(
                "SET statement_timeout = {}",
                args.baseline_timeout_secs * 1000
            ))
            .execute(&mut *conn)
            .await?;
            let mut times = Vec::new();
            let mut sizes = Vec::new();
            let mut timeouts = 0;
            for id in starts {
                let t = Instant::now();
                match sqlx::query_as::<_, (String, i32)>(&sql)
                    .bind(id)
                    .fetch_all(&mut *conn)
                    .await
                {
                    Ok(rows) => {
                        times.push(t.elapsed().as_secs_f64() * 1000.0);
                        sizes.push(rows.len());
                    }
                    Err(e) if e.to_string().contains("statement timeout") => timeouts += 1,
                    Err(e) => return Err(e.into()),
                }
                if timeouts >= 3 {
                    break;
                }
            }
            sqlx::query("RESET statement_timeout")
                .execute(&mut *conn)
                .await?;
            out.push(series(
                query,
                depth,
                "naive recursive CTE",
                times,
                &sizes,
                timeouts,
            ));
        }
    }
    db.close().await;
    server.drop_database(&name).await?;
    let goal_met = out
        .iter()
        .filter(|s| s.depth == "5" && s.method == "heal: whole answer")
        .all(|s| s.p95_ms.is_some_and(|p| p < P95_GOAL_MS));
    Ok(LineageReport {
        nodes,
        edges,
        layers: args.layers,
        load_secs,
        server_version,
        series: out,
        p95_goal_ms: P95_GOAL_MS,
        goal_met,
    })
}

async fn run_ours(
    service: &Lineage,
    query: &str,
    key: &str,
    dir: Direction,
    depth: Option<u32>,
) -> anyhow::Result<usize> {
    let n = if query == "impact" {
        service
            .impact(key, depth)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .summary
            .assets
    } else {
        service
            .traverse(key, dir, depth)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .nodes
            .len()
    };
    Ok(n)
}

fn print(r: &LineageReport) {
    println!(
        "lineage graph: {} nodes, {} edges, {} layers (loaded in {:.1} s), PostgreSQL {}",
        count(r.nodes),
        count(r.edges),
        r.layers,
        r.load_secs,
        r.server_version.as_deref().unwrap_or("?")
    );
    let mut t = table(&[
        "query",
        "depth",
        "method",
        "p50 ms",
        "p95 ms",
        "nodes reached (mean)",
        "timeouts",
    ]);
    let ms = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into());
    for s in &r.series {
        t.add_row(vec![
            s.query.clone(),
            s.depth.clone(),
            s.method.clone(),
            ms(s.p50_ms),
            ms(s.p95_ms),
            format!("{:.0}", s.mean_nodes),
            s.timeouts.to_string(),
        ]);
    }
    println!("{t}");
    println!(
        "goal: p95 < {} ms at depth 5: {}",
        r.p95_goal_ms,
        if r.goal_met { "met" } else { "NOT met" }
    );
}
