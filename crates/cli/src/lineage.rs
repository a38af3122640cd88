//! `heal lineage …`: the lineage queries from the command line, in-process against the
//! configured database (pending events are projected first) or over HTTP against a running
//! lineage role (`--url`).

use crate::cli::{load_config, Global, OutputFormat};
use crate::output::table;
use clap::{Subcommand, ValueEnum};
use heal_lineage::query::{self, Asset, GraphExport};
use heal_lineage::{Direction, HttpLineage, LineageApi, QueryError};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum LineageCommand {
    /// Everything downstream of a table that its failure affects (tables, jobs, checks, KPIs).
    Affected {
        table: String,
        #[command(flatten)]
        common: Common,
    },
    /// A job's inputs and outputs, and the jobs up- and downstream of it.
    Dependencies {
        job: String,
        #[command(flatten)]
        common: Common,
    },
    /// Impact analysis: downstream assets by kind and distance, with criticality, freshness
    /// and open failures.
    Impact {
        table: String,
        #[command(flatten)]
        common: Common,
    },
    /// Everything a node depends on. NODE is a name, a key, or kind:name (e.g. kpi:net_revenue,
    /// job:daily_revenue, table:daily_revenue).
    Upstream {
        node: String,
        #[command(flatten)]
        common: Common,
    },
    /// Everything that depends on a node.
    Downstream {
        node: String,
        #[command(flatten)]
        common: Common,
    },
    /// The shortest path between two nodes, along or against the data flow.
    Path {
        from: String,
        to: String,
        #[command(flatten)]
        common: Common,
    },
    /// The whole graph as JSON, Graphviz DOT or Mermaid.
    Export {
        #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
        format: ExportFormat,
        /// Query a running lineage role at this URL instead of the database.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Rebuild the graph from the whole event log (after switching backends, or to repair).
    Rebuild,
}

#[derive(Debug, clap::Args)]
pub struct Common {
    /// Follow at most this many edges (default: no limit).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    depth: Option<u32>,
    /// Query a running lineage role at this URL (e.g. http://localhost:8085) instead of the
    /// database.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Json,
    Dot,
    Mermaid,
}

pub async fn lineage(global: &Global, cmd: LineageCommand) -> anyhow::Result<ExitCode> {
    let url = match &cmd {
        LineageCommand::Export { url, .. } => url.clone(),
        LineageCommand::Rebuild => None,
        LineageCommand::Affected { common, .. }
        | LineageCommand::Dependencies { common, .. }
        | LineageCommand::Impact { common, .. }
        | LineageCommand::Upstream { common, .. }
        | LineageCommand::Downstream { common, .. }
        | LineageCommand::Path { common, .. } => common.url.clone(),
    };
    if let Some(url) = url {
        load_config(global, &[])?;
        return answer(&HttpLineage::new(&url), cmd).await;
    }
    let config = load_config(global, &[])?;
    let db = crate::cli::open_database(&config).await?;
    // Every path closes the database (the embedded engine needs it), errors included.
    let result = async {
        let service = heal_server::lineage_service(&config, db.pool().clone()).await?;
        match cmd {
            LineageCommand::Rebuild => {
                let n = service.rebuild().await?;
                let applied = service.project().await?;
                println!("graph rebuilt from {n} events ({applied} applied)");
                Ok(ExitCode::SUCCESS)
            }
            cmd => {
                service.project().await?;
                answer(&service, cmd).await
            }
        }
    }
    .await;
    db.close().await;
    result
}

fn fail(e: QueryError) -> anyhow::Result<ExitCode> {
    eprintln!("error: {e}");
    Ok(match e {
        QueryError::Backend(_) => ExitCode::from(1),
        _ => ExitCode::from(2),
    })
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn assets_table(assets: &[Asset]) {
    let mut t = table(&["depth", "kind", "name", "namespace", "state"]);
    for a in assets {
        let state = a
            .props
            .last_run_state
            .clone()
            .or(a
                .props
                .check_success
                .map(|ok| if ok { "pass" } else { "FAIL" }.to_string()))
            .or(a.props.criticality.clone())
            .unwrap_or_default();
        t.add_row(vec![
            a.depth.to_string(),
            a.kind.to_string(),
            a.name.clone(),
            a.namespace.clone(),
            state,
        ]);
    }
    println!("{t}");
}

async fn answer<A: LineageApi>(api: &A, cmd: LineageCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LineageCommand::Affected { table: t, common } => {
            let r = match api.affected(&t, common.depth).await {
                Ok(r) => r,
                Err(e) => return fail(e),
            };
            match common.output {
                OutputFormat::Json => print_json(&r)?,
                OutputFormat::Table => {
                    println!("downstream of {} ({} assets)", r.node.key, r.affected.len());
                    assets_table(&r.affected);
                }
            }
        }
        LineageCommand::Dependencies { job, common } => {
            let r = match api.dependencies(&job).await {
                Ok(r) => r,
                Err(e) => return fail(e),
            };
            match common.output {
                OutputFormat::Json => print_json(&r)?,
                OutputFormat::Table => {
                    let names = |v: &[heal_lineage::Node]| {
                        v.iter()
                            .map(|n| n.name.clone())
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    println!("job {}", r.job.key);
                    println!("  reads:  {}", names(&r.inputs));
                    println!("  writes: {}", names(&r.outputs));
                    println!("upstream jobs (depth in jobs):");
                    assets_table(&r.upstream_jobs);
                    println!("downstream jobs (depth in jobs):");
                    assets_table(&r.downstream_jobs);
                }
            }
        }
        LineageCommand::Impact { table: t, common } => {
            let r = match api.impact(&t, common.depth).await {
                Ok(r) => r,
                Err(e) => return fail(e),
            };
            match common.output {
                OutputFormat::Json => print_json(&r)?,
                OutputFormat::Table => {
                    let s = &r.summary;
                    println!(
                        "impact of {}: {} assets, max criticality {}, {} open failure(s)",
                        r.node.key,
                        s.assets,
                        s.max_criticality.as_deref().unwrap_or("none"),
                        s.open_failures
                    );
                    if !s.kpis_at_risk.is_empty() {
                        println!("KPIs at risk: {}", s.kpis_at_risk.join(", "));
                    }
                    let mut t = table(&[
                        "distance",
                        "kind",
                        "name",
                        "criticality",
                        "last updated",
                        "open failures",
                    ]);
                    for g in &r.groups {
                        for a in &g.assets {
                            let failures: Vec<String> = a
                                .open_failures
                                .iter()
                                .map(|f| format!("{} {}", f.kind, f.node))
                                .collect();
                            t.add_row(vec![
                                g.distance.to_string(),
                                g.kind.to_string(),
                                a.name.clone(),
                                a.criticality.clone().unwrap_or_default(),
                                a.freshness.last_updated.clone().unwrap_or_default(),
                                failures.join("\n"),
                            ]);
                        }
                    }
                    println!("{t}");
                }
            }
        }
        LineageCommand::Upstream { node, common } => {
            return traverse(api, &node, Direction::Upstream, &common).await
        }
        LineageCommand::Downstream { node, common } => {
            return traverse(api, &node, Direction::Downstream, &common).await
        }
        LineageCommand::Path { from, to, common } => {
            let r = match api.path(&from, &to).await {
                Ok(r) => r,
                Err(e) => return fail(e),
            };
            match common.output {
                OutputFormat::Json => print_json(&r)?,
                OutputFormat::Table => {
                    let hops: Vec<String> = r
                        .nodes
                        .iter()
                        .map(|n| format!("{}:{}", n.kind, n.short_name()))
                        .collect();
                    let arrow = match r.direction {
                        Direction::Downstream => " → ",
                        Direction::Upstream => " ← ",
                    };
                    println!("{}", hops.join(arrow));
                }
            }
        }
        LineageCommand::Export { format, .. } => {
            let g: GraphExport = match api.export().await {
                Ok(g) => g,
                Err(e) => return fail(e),
            };
            match format {
                ExportFormat::Json => print_json(&g)?,
                ExportFormat::Dot => print!("{}", query::to_dot(&g)),
                ExportFormat::Mermaid => print!("{}", query::to_mermaid(&g)),
            }
        }
        LineageCommand::Rebuild => {
            anyhow::bail!("heal lineage rebuild works on the database, not with --url")
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn traverse<A: LineageApi>(
    api: &A,
    node: &str,
    dir: Direction,
    common: &Common,
) -> anyhow::Result<ExitCode> {
    let r = match api.traverse(node, dir, common.depth).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    match common.output {
        OutputFormat::Json => print_json(&r)?,
        OutputFormat::Table => {
            let which = match dir {
                Direction::Upstream => "upstream",
                Direction::Downstream => "downstream",
            };
            println!("{which} of {} ({} nodes)", r.node.key, r.nodes.len());
            assets_table(&r.nodes);
        }
    }
    Ok(ExitCode::SUCCESS)
}
