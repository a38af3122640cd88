//! `heal incidents …`: the incident store and the executor's actions. `list`, `show` and
//! `actions` read the database (or a running incidents role with `--url`); the moves, notes,
//! feedback, approvals and the breaker reset go through a running role's API
//! (`--url`, by default the monolithic address), so they follow the same rules and feedback
//! reaches AI Ops.

use crate::cli::{load_config, open_database, Global, OutputFormat};
use crate::output::table;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use heal_incidents::store::{self, Filter};
use serde_json::{json, Value};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum IncidentsCommand {
    /// List stored incidents, newest first.
    List(ListArgs),
    /// One incident with its timeline and feedback.
    Show(ShowArgs),
    /// Acknowledge an open incident.
    Ack(MoveArgs),
    /// Resolve an incident with a reason.
    Resolve(ResolveArgs),
    /// Reopen a resolved, false-positive or failed incident.
    Reopen(MoveArgs),
    /// Add a note to an incident's timeline.
    Note(NoteArgs),
    /// Give feedback: the right class, the right root cause, whether the remediation worked.
    Feedback(FeedbackArgs),
    /// The self-healing executor's actions for an incident: dry run, mode, state, outcome.
    Actions(ShowArgs),
    /// Approve an action waiting for an operator (the executor applies it at its next round).
    Approve(DecideArgs),
    /// Reject an action waiting for an operator.
    Reject(DecideArgs),
    /// Close the executor's circuit breaker after repeated failures.
    BreakerReset(BreakerArgs),
    /// Merge an incident into another that is the same problem (it is resolved as merged).
    Merge(MergeArgs),
    /// Split symptoms (by failure event id, see `heal incidents show`) out into a new incident.
    Split(SplitArgs),
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    pub incident: String,
    /// The incident it is merged into.
    #[arg(long, value_name = "INCIDENT")]
    pub into: String,
    #[arg(long)]
    pub note: Option<String>,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Debug, Args)]
pub struct SplitArgs {
    pub incident: String,
    /// The failure_event_id of a symptom to split out (repeat for several).
    #[arg(long = "symptom", value_name = "FAILURE_EVENT_ID", required = true)]
    pub symptoms: Vec<String>,
    #[arg(long)]
    pub note: Option<String>,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Debug, Args)]
pub struct DecideArgs {
    pub incident: String,
    /// The action's id (see `heal incidents actions`).
    pub action: i64,
    #[arg(long)]
    pub note: Option<String>,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Debug, Args)]
pub struct BreakerArgs {
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// open, acknowledged, remediating, verifying, resolved, failed or false_positive.
    #[arg(long)]
    pub state: Option<String>,
    /// An incident class, e.g. SCHEMA_DRIFT.
    #[arg(long)]
    pub class: Option<String>,
    /// A dataset (or job, stream) among the incident's symptoms and root cause.
    #[arg(long)]
    pub dataset: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    /// A running incidents role (e.g. http://localhost:8087) instead of the database.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// A bearer token (needed when the server protects reads).
    #[arg(long, env = "HEAL_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    pub incident: String,
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// A bearer token (needed when the server protects reads).
    #[arg(long, env = "HEAL_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct Remote {
    /// The running incidents role (default: http://<http_addr> of the configuration).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Who does it (recorded in the timeline).
    #[arg(long, default_value = "operator")]
    pub actor: String,
    /// A bearer token with the operator scope (the server's `auth.tokens`).
    #[arg(long, env = "HEAL_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct MoveArgs {
    pub incident: String,
    #[arg(long)]
    pub note: Option<String>,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Debug, Args)]
pub struct ResolveArgs {
    pub incident: String,
    /// false_positive, missing_data, duplicates, out_of_bounds or other.
    #[arg(long)]
    pub reason: String,
    #[arg(long)]
    pub note: Option<String>,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Debug, Args)]
pub struct NoteArgs {
    pub incident: String,
    pub text: String,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Debug, Args)]
pub struct FeedbackArgs {
    pub incident: String,
    /// The class it really was, e.g. LATE_DATA.
    #[arg(long)]
    pub class: Option<String>,
    /// The lineage key of the real root cause, e.g. dataset:orders.
    #[arg(long)]
    pub root_cause: Option<String>,
    /// Whether the remediation worked.
    #[arg(long)]
    pub worked: Option<bool>,
    /// The action the outcome is about (default: the incident's top recommendation).
    #[arg(long)]
    pub action: Option<String>,
    #[arg(long)]
    pub note: Option<String>,
    #[command(flatten)]
    pub remote: Remote,
}

pub async fn incidents(global: &Global, cmd: IncidentsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        IncidentsCommand::List(a) => list(global, a).await,
        IncidentsCommand::Show(a) => show(global, a).await,
        IncidentsCommand::Ack(a) => {
            let body = json!({ "note": a.note, "actor": a.remote.actor });
            post(global, &a.remote, &a.incident, "acknowledge", body).await
        }
        IncidentsCommand::Reopen(a) => {
            let body = json!({ "note": a.note, "actor": a.remote.actor });
            post(global, &a.remote, &a.incident, "reopen", body).await
        }
        IncidentsCommand::Resolve(a) => {
            let body = json!({ "reason": a.reason, "note": a.note, "actor": a.remote.actor });
            post(global, &a.remote, &a.incident, "resolve", body).await
        }
        IncidentsCommand::Note(a) => {
            let body = json!({ "note": a.text, "actor": a.remote.actor });
            post(global, &a.remote, &a.incident, "notes", body).await
        }
        IncidentsCommand::Feedback(a) => {
            let body = json!({
                "class": a.class, "root_cause": a.root_cause, "remediation_worked": a.worked,
                "action": a.action, "note": a.note, "actor": a.remote.actor,
            });
            post(global, &a.remote, &a.incident, "feedback", body).await
        }
        IncidentsCommand::Merge(a) => {
            let body = json!({ "into": a.into, "note": a.note, "actor": a.remote.actor });
            post(global, &a.remote, &a.incident, "merge", body).await
        }
        IncidentsCommand::Split(a) => {
            let body = json!({ "symptoms": a.symptoms, "note": a.note, "actor": a.remote.actor });
            post(global, &a.remote, &a.incident, "split", body).await
        }
        IncidentsCommand::Actions(a) => actions(global, a).await,
        IncidentsCommand::Approve(a) => decide(global, a, "approve").await,
        IncidentsCommand::Reject(a) => decide(global, a, "reject").await,
        IncidentsCommand::BreakerReset(a) => {
            let body = json!({ "actor": a.remote.actor });
            send(
                global,
                &a.remote,
                "/api/executor/breaker/reset",
                "executor",
                body,
            )
            .await
        }
    }
}

async fn decide(global: &Global, a: DecideArgs, verb: &str) -> anyhow::Result<ExitCode> {
    let body = json!({ "note": a.note, "actor": a.remote.actor });
    let what = format!("actions/{}/{verb}", a.action);
    post(global, &a.remote, &a.incident, &what, body).await
}

async fn actions(global: &Global, a: ShowArgs) -> anyhow::Result<ExitCode> {
    let v: Value = match &a.url {
        Some(url) => {
            let q = format!(
                "{}/api/incidents/{}/actions",
                url.trim_end_matches('/'),
                a.incident
            );
            fetch(&q, a.token.as_deref()).await?
        }
        None => {
            let config = load_config(global, &[])?;
            let db = open_database(&config).await?;
            let r = heal_incidents::executor::actions_of(db.pool(), &a.incident).await;
            db.close().await;
            json!({ "incident": a.incident, "actions": r? })
        }
    };
    if a.output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&[
        "id", "rank", "action", "mode", "state", "radius", "dry run", "outcome",
    ]);
    for x in v["actions"].as_array().into_iter().flatten() {
        let s = |k: &str| x[k].as_str().unwrap_or("-").to_string();
        t.add_row(vec![
            x["id"].to_string(),
            x["rank"].to_string(),
            s("action"),
            s("mode"),
            s("state"),
            x["blast_radius"].to_string(),
            x["dry_run"].to_string(),
            if x["outcome"].is_null() {
                "-".into()
            } else {
                x["outcome"].to_string()
            },
        ]);
    }
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}

async fn list(global: &Global, a: ListArgs) -> anyhow::Result<ExitCode> {
    let v: Value = match &a.url {
        Some(url) => {
            let mut q = format!(
                "{}/api/incidents?limit={}",
                url.trim_end_matches('/'),
                a.limit
            );
            for (k, v) in [
                ("state", &a.state),
                ("class", &a.class),
                ("dataset", &a.dataset),
            ] {
                if let Some(v) = v {
                    q.push_str(&format!("&{k}={v}"));
                }
            }
            fetch(&q, a.token.as_deref()).await?
        }
        None => {
            let filter = Filter {
                state: match &a.state {
                    Some(s) => Some(
                        s.parse()
                            .map_err(|e: String| anyhow::anyhow!("--state: {e}"))?,
                    ),
                    None => None,
                },
                class: match &a.class {
                    Some(c) => Some(
                        c.parse::<heal_model::incident::IncidentClass>()
                            .map_err(|e| anyhow::anyhow!("--class: {e}"))?
                            .as_str()
                            .to_string(),
                    ),
                    None => None,
                },
                node: a.dataset.clone(),
                limit: a.limit.clamp(1, 1000),
                ..Filter::default()
            };
            let config = load_config(global, &[])?;
            let db = open_database(&config).await?;
            let r = store::list(db.pool(), &filter).await;
            db.close().await;
            let (incidents, total) = r?;
            json!({ "incidents": incidents, "total": total })
        }
    };
    if a.output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&[
        "id",
        "state",
        "severity",
        "class",
        "root cause",
        "since (data)",
        "updated",
    ]);
    for i in v["incidents"].as_array().into_iter().flatten() {
        let s = |k: &str| i[k].as_str().unwrap_or("-").to_string();
        t.add_row(vec![
            s("id").chars().take(8).collect(),
            s("state"),
            s("severity"),
            s("class"),
            s("root_cause"),
            s("data_start"),
            s("updated_at"),
        ]);
    }
    println!("{t}");
    println!("{} incident(s) in all", v["total"]);
    Ok(ExitCode::SUCCESS)
}

async fn show(global: &Global, a: ShowArgs) -> anyhow::Result<ExitCode> {
    let v: Value = match &a.url {
        Some(url) => {
            let q = format!("{}/api/incidents/{}", url.trim_end_matches('/'), a.incident);
            fetch(&q, a.token.as_deref()).await?
        }
        None => {
            let config = load_config(global, &[])?;
            let db = open_database(&config).await?;
            let r = store::get(db.pool(), &a.incident).await;
            db.close().await;
            match r {
                Ok(d) => serde_json::to_value(d)?,
                Err(store::Error::NotFound(id)) => bail!("no incident {id:?}"),
                Err(e) => return Err(e.into()),
            }
        }
    };
    if a.output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let s = |k: &str| v[k].as_str().unwrap_or("-").to_string();
    println!("{}  {}", s("id"), s("title"));
    println!(
        "state {} · {} · {} · root cause {}",
        s("state"),
        s("severity"),
        s("class"),
        s("root_cause")
    );
    if let Some(text) = v["incident"]["explanation"]["text"].as_str() {
        println!("\n{text}");
    }
    let mut t = table(&["at", "actor", "what", "detail"]);
    for e in v["timeline"].as_array().into_iter().flatten() {
        t.add_row(vec![
            e["at"].as_str().unwrap_or("").to_string(),
            e["actor"].as_str().unwrap_or("").to_string(),
            e["kind"].as_str().unwrap_or("").to_string(),
            e["detail"].to_string(),
        ]);
    }
    println!("\nTimeline:\n{t}");
    Ok(ExitCode::SUCCESS)
}

/// The body of a 2xx answer; an error answer's message otherwise.
/// A GET of the remote API, with the bearer token when one is given (a server that protects
/// reads asks for one).
async fn fetch(q: &str, token: Option<&str>) -> anyhow::Result<Value> {
    let mut req = reqwest::Client::new().get(q);
    if let Some(t) = token.filter(|t| !t.is_empty()) {
        req = req.bearer_auth(t);
    }
    answer(req.send().await.with_context(|| format!("GET {q}"))?).await
}

async fn answer(r: reqwest::Response) -> anyhow::Result<Value> {
    let status = r.status();
    let body: Value = r.json().await.unwrap_or_default();
    if !status.is_success() {
        let field = body["field"]
            .as_str()
            .map(|f| format!(" (field {f})"))
            .unwrap_or_default();
        bail!(
            "{status}: {}{field}",
            body["message"].as_str().unwrap_or("no message")
        );
    }
    Ok(body)
}

async fn post(
    global: &Global,
    remote: &Remote,
    id: &str,
    what: &str,
    body: Value,
) -> anyhow::Result<ExitCode> {
    send(
        global,
        remote,
        &format!("/api/incidents/{id}/{what}"),
        id,
        body,
    )
    .await
}

/// POSTs `body` (without its null fields) to `path` of the remote API and prints the answer.
async fn send(
    global: &Global,
    remote: &Remote,
    path: &str,
    id: &str,
    body: Value,
) -> anyhow::Result<ExitCode> {
    let base = match &remote.url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => format!("http://{}", load_config(global, &[])?.http_addr),
    };
    // Leave out what was not given.
    let body: serde_json::Map<String, Value> = body
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let url = format!("{base}{path}");
    let mut req = reqwest::Client::new().post(&url).json(&body);
    if let Some(t) = &remote.token {
        req = req.bearer_auth(t);
    }
    let r = req
        .send()
        .await
        .with_context(|| format!("POST {url} (is an incidents role running there? see --url)"))?;
    let v = answer(r).await?;
    match remote.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&v)?),
        // The incident the answer is about (a merge answers the one merged into, a split the
        // new one).
        OutputFormat::Table => match v["state"].as_str() {
            Some(state) => println!("{}: {state}", v["id"].as_str().unwrap_or(id)),
            None => println!("{id}: done"),
        },
    }
    Ok(ExitCode::SUCCESS)
}
