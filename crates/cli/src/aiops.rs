//! `heal aiops incidents` and `heal aiops explain <incident>`: the incidents AI Ops raised, as
//! stored in the database (or asked of a running aiops role with `--url`).

use crate::cli::{load_config, open_database, Global, OutputFormat};
use crate::output::table;
use anyhow::Context;
use clap::{Args, Subcommand};
use heal_model::incident::Incident;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum AiopsCommand {
    /// List incidents, newest first.
    Incidents(ListArgs),
    /// A readable report of one incident: root cause with its lineage path, class with its
    /// confidence, the evidence, what it affects and the recommended actions.
    Explain(ExplainArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only `open` or `resolved` incidents.
    #[arg(long, value_parser = ["open", "resolved"])]
    pub status: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    /// A running aiops role (e.g. http://localhost:8086) instead of the database.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Incident id (a unique prefix is enough).
    pub incident: String,
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

pub async fn aiops(global: &Global, cmd: AiopsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AiopsCommand::Incidents(args) => {
            let incidents = match &args.url {
                Some(url) => {
                    let mut q = format!(
                        "{}/api/aiops/incidents?limit={}",
                        url.trim_end_matches('/'),
                        args.limit
                    );
                    if let Some(s) = &args.status {
                        q.push_str(&format!("&status={s}"));
                    }
                    let v: serde_json::Value = get(&q).await?;
                    serde_json::from_value(v["incidents"].clone())?
                }
                None => {
                    let config = load_config(global, &[])?;
                    let db = open_database(&config).await?;
                    let l =
                        heal_aiops::role::list(db.pool(), args.status.as_deref(), args.limit).await;
                    db.close().await;
                    l?
                }
            };
            print_list(&incidents, args.output)?;
            Ok(ExitCode::SUCCESS)
        }
        AiopsCommand::Explain(args) => {
            let incident: Option<Incident> = match &args.url {
                Some(url) => {
                    let q = format!(
                        "{}/api/aiops/incidents/{}",
                        url.trim_end_matches('/'),
                        args.incident
                    );
                    match reqwest::get(&q).await.with_context(|| format!("GET {q}"))? {
                        r if r.status() == reqwest::StatusCode::NOT_FOUND => None,
                        r => Some(r.error_for_status()?.json().await?),
                    }
                }
                None => {
                    let config = load_config(global, &[])?;
                    let db = open_database(&config).await?;
                    let i = heal_aiops::role::load(db.pool(), &args.incident).await;
                    db.close().await;
                    i?
                }
            };
            let Some(i) = incident else {
                eprintln!(
                    "no incident {:?} (or the prefix is not unique)",
                    args.incident
                );
                return Ok(ExitCode::from(2));
            };
            match args.output {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&i)?),
                OutputFormat::Table => print!("{}", report(&i)),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn get(url: &str) -> anyhow::Result<serde_json::Value> {
    Ok(reqwest::get(url)
        .await
        .with_context(|| format!("GET {url}"))?
        .error_for_status()?
        .json()
        .await?)
}

fn print_list(incidents: &[Incident], output: OutputFormat) -> anyhow::Result<()> {
    if output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(incidents)?);
        return Ok(());
    }
    let mut t = table(&[
        "id",
        "status",
        "severity",
        "class",
        "conf",
        "root cause",
        "since (data)",
        "symptoms",
    ]);
    for i in incidents {
        t.add_row(vec![
            i.id[..8].to_string(),
            format!("{:?}", i.status).to_lowercase(),
            i.severity.to_string(),
            i.classification.class.to_string(),
            format!("{:.2}", i.classification.confidence),
            i.root_causes
                .first()
                .map(|c| format!("{} {}", c.node.kind, c.node.name))
                .unwrap_or_else(|| "-".into()),
            i.data_start.format("%Y-%m-%d %H:%M").to_string(),
            i.symptoms.len().to_string(),
        ]);
    }
    println!("{t}");
    Ok(())
}

/// The readable report of one incident.
pub fn report(i: &Incident) -> String {
    use std::fmt::Write;
    let mut s = format!(
        "Incident {} ({:?}, severity {}){}\n\n",
        i.id,
        i.status,
        i.severity,
        i.previous
            .as_deref()
            .map(|p| format!(", recurs after {p}"))
            .unwrap_or_default()
    );
    s.push_str(&i.explanation.text);
    if let Some(p) = &i.explanation.prose {
        let _ = writeln!(s, "\nIn prose (language model):\n{p}");
    }
    let mut t = table(&["rank", "candidate", "class", "score", "grounded"]);
    for c in &i.root_causes {
        t.add_row(vec![
            c.rank.to_string(),
            format!("{} {}", c.node.kind, c.node.name),
            c.class.to_string(),
            format!("{:.3}", c.score),
            if c.grounded { "yes" } else { "no" }.to_string(),
        ]);
    }
    let _ = writeln!(s, "\nRoot-cause candidates:\n{t}");
    let mut r = table(&["rank", "action", "prior success", "why"]);
    for a in &i.recommendations {
        let params = serde_json::to_value(&a.action)
            .map(|v| {
                let mut v = v;
                v.as_object_mut().map(|o| o.remove("action"));
                v.to_string()
            })
            .unwrap_or_default();
        r.add_row(vec![
            a.rank.to_string(),
            format!("{} {params}", a.action.name()),
            format!("{:.2}", a.success_rate),
            a.rationale.clone(),
        ]);
    }
    let _ = writeln!(s, "Recommended actions:\n{r}");
    s
}
