//! Incidents: the list with filters, and one incident's page — its timeline, the root-cause
//! path drawn on the lineage subgraph with failing nodes and the blast radius, the evidence,
//! the explanation, recommended and applied actions with their dry runs and approve/reject
//! buttons, verification with the KPIs before, during and after, feedback, similar incidents.

use crate::overview::{self, OPEN_STATES};
use crate::page::{self, badge, scroll, time};
use crate::svg::{self, short_number, GNode};
use crate::{may_change, ok, Answer, Console, Fail, Who};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use chrono::{Duration, NaiveDate};
use heal_incidents::executor::{self, verify, Context};
use heal_incidents::state::State as IncidentState;
use heal_incidents::store::{self, Filter};
use heal_model::incident::{Incident, IncidentClass};
use maud::{html, Markup};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

pub use heal_http::percent_encode as urlencode;

const PAGE: i64 = 50;

#[derive(serde::Deserialize, Default)]
pub struct ListQuery {
    state: Option<String>,
    severity: Option<String>,
    class: Option<String>,
    dataset: Option<String>,
    page: Option<i64>,
}

fn blank(v: &Option<String>) -> Option<String> {
    v.as_ref()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

pub async fn list(State(c): State<Arc<Console>>, who: Who, Query(q): Query<ListQuery>) -> Answer {
    let state = match blank(&q.state) {
        Some(s) if s == "active" => None,
        Some(s) => Some(
            s.parse::<IncidentState>()
                .map_err(|e| Fail::Invalid("state".into(), e.to_string()))?,
        ),
        None => None,
    };
    let page_no = q.page.unwrap_or(0).max(0);
    let (rows, total) = store::list(
        &c.pool,
        &Filter {
            state,
            class: blank(&q.class),
            severity: blank(&q.severity),
            node: blank(&q.dataset),
            limit: PAGE,
            offset: page_no * PAGE,
            ..Default::default()
        },
    )
    .await?;
    let link = |p: i64| {
        let mut s = format!("/incidents?page={p}");
        for (k, v) in [
            ("state", &q.state),
            ("severity", &q.severity),
            ("class", &q.class),
            ("dataset", &q.dataset),
        ] {
            if let Some(v) = blank(v) {
                s.push_str(&format!("&{k}={}", urlencode(&v)));
            }
        }
        s
    };
    let selected = |v: &Option<String>, x: &str| blank(v).as_deref() == Some(x);
    let body = html! {
        form.inline method="get" action="/incidents" aria-label="Filter incidents" {
            label for="f-state" { "State" }
            select #f-state name="state" {
                option value="" { "any" }
                @for s in IncidentState::ALL {
                    option value=(s.as_str()) selected[selected(&q.state, s.as_str())] { (s.as_str()) }
                }
            }
            label for="f-sev" { "Severity" }
            select #f-sev name="severity" {
                option value="" { "any" }
                @for s in ["critical", "high", "medium", "low"] {
                    option value=(s) selected[selected(&q.severity, s)] { (s) }
                }
            }
            label for="f-class" { "Class" }
            select #f-class name="class" {
                option value="" { "any" }
                @for cl in IncidentClass::ALL {
                    option value=(cl.as_str()) selected[selected(&q.class, cl.as_str())] { (cl.as_str()) }
                }
            }
            label for="f-dataset" { "Dataset" }
            input #f-dataset name="dataset" value=(blank(&q.dataset).unwrap_or_default()) size="14";
            button type="submit" { "Filter" }
        }
        p.muted { (total) " incident(s)" }
        @if rows.is_empty() {
            (page::empty("No incident matches."))
        } @else {
            (scroll("Incidents", html! {
                table {
                    thead { tr { th { "Incident" } th { "Severity" } th { "State" } th { "Class" } th { "Root cause" } th { "Data time" } th { "Updated" } } }
                    tbody {
                        @for i in &rows {
                            tr {
                                td { a href=(format!("/incidents/{}", urlencode(&i.id))) { (i.title) } br; span.muted { (i.id) } }
                                td { (badge(&i.severity)) }
                                td { (badge(&i.state)) }
                                td { (i.class) }
                                td { (i.root_cause.as_deref().unwrap_or("–")) }
                                td { (time(&i.data_start)) }
                                td { (time(&i.updated_at)) }
                            }
                        }
                    }
                }
            }))
        }
        nav aria-label="Pages" {
            @if page_no > 0 { a href=(link(page_no - 1)) { "← newer" } " " }
            @if (page_no + 1) * PAGE < total { a href=(link(page_no + 1)) { "older →" } }
        }
    };
    ok(page::frame("Incidents", "/incidents", &who.0, None, body))
}

pub async fn page(State(c): State<Arc<Console>>, who: Who, Path(id): Path<String>) -> Answer {
    let detail = store::get(&c.pool, &id).await?;
    let incident: Option<Incident> = serde_json::from_value(detail.incident.clone()).ok();
    let actions = executor::actions_of(&c.pool, &id).await?;
    let similar = store::similar(&c.pool, &id, 5).await?;
    let s = &detail.summary;
    let graph = match &incident {
        Some(i) => Some(subgraph(&c, i).await),
        None => None,
    };
    let kpis = match &incident {
        Some(i) => kpis_around(&c, i).await?,
        None => Vec::new(),
    };
    let verification: Vec<&store::TimelineEntry> = detail
        .timeline
        .iter()
        .filter(|t| t.kind.contains("verif") || t.kind.contains("rolled") || t.kind == "escalated")
        .collect();
    let operator = who.0.operator;
    let body = html! {
        div.grid {
            div.card {
                h2 { "State" }
                p { (badge(&s.state)) " " (badge(&s.severity)) }
                p { "Class " strong { (s.class) }
                    @if let Some(i) = &incident { " (confidence " (format!("{:.0} %", i.classification.confidence * 100.0)) ")" } }
            }
            div.card {
                h2 { "Data time" }
                p { (time(&s.data_start)) " → " (time(&s.data_end)) }
                p.muted { "opened " (time(&s.opened_at)) }
            }
            div.card {
                h2 { "Root cause" }
                p { strong { (s.root_cause.as_deref().unwrap_or("unknown")) } }
                @if let Some(r) = &s.resolution_reason { p { "Resolved: " (r) @if let Some(n) = &s.resolution_note { " — " (n) } } }
            }
        }
        @if let Some(i) = &incident {
            section aria-labelledby="h-explain" {
                h2 #h-explain { "Explanation" }
                p { (i.explanation.summary) }
                @if !i.explanation.evidence.is_empty() {
                    ul { @for e in &i.explanation.evidence { li { (e) } } }
                }
                @if let Some(p) = &i.explanation.prose { p { (p) } }
                p.muted { "Impact: " (i.explanation.impact) }
            }
        }
        @if let Some((g, legend)) = &graph {
            section aria-labelledby="h-graph" {
                h2 #h-graph { "Root-cause path and blast radius" }
                (legend)
                div.graphbox { (g) }
            }
        }
        @if let Some(i) = &incident {
            section aria-labelledby="h-evidence" {
                h2 #h-evidence { "Evidence" }
                (scroll("Evidence", html! {
                    table {
                        thead { tr { th { "Check" } th { "On" } th { "Window" } th.num { "Observed" } th.num { "Expected" } th { "Band" } th { "Says" } } }
                        tbody {
                            @for sy in &i.symptoms {
                                tr {
                                    td { a href=(format!("/checks/{}", urlencode(&sy.check))) { (sy.check) } }
                                    td { (sy.node.name) }
                                    td { (time(&sy.data_start)) }
                                    td.num { (num(sy.observed)) }
                                    td.num { (num(sy.expected)) }
                                    td { (num(sy.lower)) " – " (num(sy.upper)) }
                                    td { (sy.message) }
                                }
                            }
                        }
                    }
                }))
                h2 { "Root-cause candidates" }
                (scroll("Root-cause candidates", html! {
                    table {
                        thead { tr { th { "Rank" } th { "Node" } th { "Class" } th { "Mechanism" } th.num { "Score" } } }
                        tbody {
                            @for r in &i.root_causes {
                                tr {
                                    td { (r.rank) }
                                    td { a href=(format!("/lineage?focus={}", urlencode(&r.node.key))) { (r.node.name) } " " span.muted { (r.node.kind) } }
                                    td { (r.class.as_str()) }
                                    td { (r.mechanism) }
                                    td.num { (format!("{:.2}", r.score)) }
                                }
                            }
                        }
                    }
                }))
            }
        }
        section aria-labelledby="h-actions" {
            h2 #h-actions { "Actions" }
            @if let Some(i) = &incident {
                @if !i.recommendations.is_empty() {
                    p.muted { "Recommended: "
                        @for (k, r) in i.recommendations.iter().enumerate() {
                            @if k > 0 { ", " }
                            (r.action.name()) " (" (format!("{:.0} %", r.success_rate * 100.0)) " success)"
                        }
                    }
                }
            }
            @if actions.is_empty() {
                (page::empty("The executor has planned no action for this incident."))
            } @else {
                (scroll("Actions", html! {
                    table {
                        thead { tr { th { "Action" } th { "Mode" } th { "State" } th.num { "Blast radius" } th { "Dry run" } th { "Outcome" } th { "Decision" } } }
                        tbody {
                            @for a in &actions {
                                tr data-action=(a.action) {
                                    td.wrap { strong { (a.action) } br; span.muted { (compact(&a.params, 160)) } }
                                    td { (a.mode) }
                                    td { (badge(&a.state)) }
                                    td.num { (a.blast_radius) }
                                    td.wrap { (compact(&a.dry_run, 300)) }
                                    td.wrap { @if let Some(o) = &a.outcome { (compact(o, 300)) } @else { "–" } }
                                    td {
                                        @if a.state == "pending_approval" && operator {
                                            form.inline method="post" action=(format!("/incidents/{}/actions/{}/decide", urlencode(&id), a.id)) {
                                                label for=(format!("note-{}", a.id)) { "Note" }
                                                input id=(format!("note-{}", a.id)) name="note" size="10";
                                                button type="submit" name="decision" value="approve" { "Approve" }
                                                button.secondary type="submit" name="decision" value="reject" { "Reject" }
                                            }
                                        } @else if let Some(d) = &a.decided_by { (d) } @else { "–" }
                                    }
                                }
                            }
                        }
                    }
                }))
            }
        }
        section aria-labelledby="h-verify" {
            h2 #h-verify { "Verification" }
            @for t in &verification {
                p.wrap { (badge(&t.kind)) " " (time(&t.at)) " " span.muted { (compact(&t.detail, 400)) } }
            }
            @if kpis.is_empty() {
                (page::empty("No KPI is read from the datasets this incident touches."))
            } @else {
                (scroll("KPIs before, during and after", html! {
                    table {
                        thead { tr { th { "KPI" } th.num { "Before (median)" } th.num { "During" } th.num { "After" } th { "Days" } } }
                        tbody {
                            @for k in &kpis {
                                tr {
                                    td { (k.name) }
                                    td.num { (num(k.before)) }
                                    td.num { (num(k.during)) }
                                    td.num { (num(k.after)) }
                                    td { (k.spark.clone()) }
                                }
                            }
                        }
                    }
                }))
            }
        }
        div.two {
            section aria-labelledby="h-timeline" {
                h2 #h-timeline { "Timeline" }
                ol.timeline {
                    @for t in &detail.timeline {
                        li { (time(&t.at)) " " strong { (t.kind) } " by " (t.actor)
                            @if !t.detail.is_null() && t.detail != Value::Object(Default::default()) {
                                br; span.muted.wrap { (compact(&t.detail, 240)) }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="h-feedback" {
                h2 #h-feedback { "Feedback" }
                @for f in &detail.feedback {
                    p { (time(&f.at)) " " (f.actor) ": "
                        @if let Some(cl) = &f.class { "class " (cl) "; " }
                        @if let Some(r) = &f.root_cause { "root cause " (r) "; " }
                        @if let Some(w) = f.remediation_worked { "remediation " (if w { "worked" } else { "did not work" }) "; " }
                        @if let Some(n) = &f.note { (n) }
                    }
                }
                @if operator {
                    form.stack method="post" action=(format!("/incidents/{}/feedback", urlencode(&id))) {
                        label for="fb-class" { "Correct class" }
                        select #fb-class name="class" {
                            option value="" { "(no change)" }
                            @for cl in IncidentClass::ALL { option value=(cl.as_str()) { (cl.as_str()) } }
                        }
                        label for="fb-root" { "Correct root cause" }
                        select #fb-root name="root_cause" {
                            option value="" { "(no change)" }
                            @if let Some(i) = &incident {
                                @for r in &i.root_causes { option value=(r.node.key) { (r.node.name) " (" (r.node.kind) ")" } }
                            }
                        }
                        label for="fb-worked" { "Did the remediation work?" }
                        select #fb-worked name="remediation_worked" {
                            option value="" { "(not saying)" }
                            option value="true" { "yes" }
                            option value="false" { "no" }
                        }
                        label for="fb-note" { "Note" }
                        textarea #fb-note name="note" rows="2" {}
                        div { button type="submit" { "Send feedback" } }
                    }
                }
            }
        }
        section aria-labelledby="h-similar" {
            h2 #h-similar { "Similar past incidents" }
            @if similar.is_empty() {
                (page::empty("None yet."))
            } @else {
                ul {
                    @for x in &similar {
                        li { a href=(format!("/incidents/{}", urlencode(&x.summary.id))) { (x.summary.title) }
                            " — " (x.summary.state)
                            @if let Some(r) = &x.summary.resolution_reason { " (" (r) ")" }
                            @if let Some(w) = x.remediation_worked { (if w { ", remediation worked" } else { ", remediation failed" }) }
                            span.muted { " similarity " (format!("{:.2}", x.score)) } }
                    }
                }
            }
        }
    };
    let title = format!("{} — {}", s.title, s.id);
    let refresh = OPEN_STATES.contains(&s.state.as_str()).then_some(30);
    ok(page::frame(&title, "/incidents", &who.0, refresh, body))
}

/// The lineage around an incident: root-cause candidates, the paths from them to the
/// symptoms, the symptoms and the blast radius, with the edges the graph knows among them.
pub async fn subgraph(c: &Console, i: &Incident) -> (Markup, Markup) {
    let g = c.graph().await;
    let mut keys: Vec<String> = Vec::new();
    let mut names: HashMap<String, (String, String)> = HashMap::new();
    let mut add = |n: &heal_model::incident::NodeRef, keys: &mut Vec<String>| {
        if !names.contains_key(&n.key) {
            names.insert(n.key.clone(), (n.name.clone(), n.kind.clone()));
            keys.push(n.key.clone());
        }
    };
    let mut path_edges: Vec<(String, String)> = Vec::new();
    let mut hot: BTreeSet<(String, String)> = BTreeSet::new();
    for (rank, r) in i.root_causes.iter().take(3).enumerate() {
        add(&r.node, &mut keys);
        for p in &r.paths {
            for st in &p.steps {
                add(&st.from, &mut keys);
                add(&st.to, &mut keys);
                path_edges.push((st.from.key.clone(), st.to.key.clone()));
                if rank == 0 {
                    hot.insert((st.from.key.clone(), st.to.key.clone()));
                }
            }
        }
    }
    for s in &i.symptoms {
        add(&s.node, &mut keys);
    }
    let blast: BTreeSet<String> = i.affected.iter().map(|a| a.node.key.clone()).collect();
    for a in i.affected.iter().take(60) {
        add(&a.node, &mut keys);
    }
    let failing: BTreeSet<&str> = i.symptoms.iter().map(|s| s.node.key.as_str()).collect();
    let root = i.root_causes.first().map(|r| r.node.key.as_str());
    let nodes: Vec<GNode> = keys
        .iter()
        .map(|k| {
            let (name, kind) = names.get(k).cloned().unwrap_or_default();
            let mut state = Vec::new();
            if Some(k.as_str()) == root {
                state.push("root");
            }
            if failing.contains(k.as_str()) || g.by_key(k).is_some_and(|v| g.nodes[v].failing()) {
                state.push("failing");
            }
            if blast.contains(k) {
                state.push("blast");
            }
            GNode {
                key: k.clone(),
                label: name,
                kind,
                state,
                href: format!("/lineage?focus={}", urlencode(k)),
            }
        })
        .collect();
    let at: HashMap<&str, usize> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let mut edges: BTreeSet<(usize, usize)> = BTreeSet::new();
    let ids: Vec<Option<usize>> = keys.iter().map(|k| g.by_key(k)).collect();
    let known: Vec<usize> = ids.iter().flatten().copied().collect();
    let known_at: Vec<usize> = ids
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|_| i))
        .collect();
    for (a, b) in g.edges_among(&known) {
        edges.insert((known_at[a], known_at[b]));
    }
    for (a, b) in &path_edges {
        if let (Some(&x), Some(&y)) = (at.get(a.as_str()), at.get(b.as_str())) {
            edges.insert((x, y));
        }
    }
    let edges: Vec<(usize, usize)> = edges.into_iter().collect();
    let highlight: Vec<bool> = edges
        .iter()
        .map(|(a, b)| hot.contains(&(keys[*a].clone(), keys[*b].clone())))
        .collect();
    let legend = html! {
        div.legend aria-hidden="true" {
            span.l-root { "root cause" } span.l-failing { "failing" } span.l-blast { "blast radius" }
        }
    };
    (
        svg::graph(
            &format!(
                "Lineage around the incident: {} nodes, root cause {}",
                nodes.len(),
                i.root_causes
                    .first()
                    .map_or("unknown", |r| r.node.name.as_str())
            ),
            &nodes,
            &edges,
            &highlight,
        ),
        legend,
    )
}

pub struct KpiAround {
    pub name: String,
    pub before: Option<f64>,
    pub during: Option<f64>,
    pub after: Option<f64>,
    pub spark: Markup,
}

/// The KPIs read from the datasets an incident touches: the median of the 7 days before it,
/// the mean over its days and over the days since.
async fn kpis_around(c: &Console, i: &Incident) -> Result<Vec<KpiAround>, Fail> {
    let ctx = Context::of(i);
    let all = verify::standard_kpis();
    let mut out = Vec::new();
    let (Some(first), Some(last)) = (ctx.days.first().copied(), ctx.days.last().copied()) else {
        return Ok(out);
    };
    for k in verify::concerning(&all, &ctx.datasets) {
        let from = first - Duration::days(7);
        let rows: Vec<(NaiveDate, Option<f64>)> = sqlx::query_as(&format!(
            "SELECT ({d})::date, ({v})::float8 FROM {t} WHERE ({d})::date >= $1
             GROUP BY 1 ORDER BY 1 LIMIT 60",
            d = k.day_column,
            v = k.value,
            t = k.table
        ))
        .bind(from)
        .fetch_all(&c.pool)
        .await?;
        let mean =
            |xs: Vec<f64>| (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64);
        let mut before: Vec<f64> = rows
            .iter()
            .filter(|(d, _)| *d < first)
            .filter_map(|(_, v)| *v)
            .collect();
        before.sort_by(f64::total_cmp);
        let during = rows
            .iter()
            .filter(|(d, _)| *d >= first && *d <= last)
            .filter_map(|(_, v)| *v)
            .collect();
        let after = rows
            .iter()
            .filter(|(d, _)| *d > last)
            .filter_map(|(_, v)| *v)
            .collect();
        let newest = rows.last().map_or(last, |(d, _)| *d).max(last);
        let s = overview::series(&k.name, from, newest, &rows);
        let mark = s
            .days
            .iter()
            .position(|d| *d == first)
            .zip(s.days.iter().position(|d| *d == last));
        out.push(KpiAround {
            name: k.name.clone(),
            before: (!before.is_empty()).then(|| before[before.len() / 2]),
            during: mean(during),
            after: mean(after),
            spark: svg::sparkline(
                &format!("{} around the incident; its days shaded", k.name),
                &s.values,
                &s.band,
                mark,
            ),
        });
    }
    Ok(out)
}

#[derive(serde::Deserialize)]
pub struct Decision {
    decision: String,
    note: Option<String>,
}

pub async fn decide(
    State(c): State<Arc<Console>>,
    who: Who,
    headers: HeaderMap,
    Path((id, action)): Path<(String, i64)>,
    Form(f): Form<Decision>,
) -> Answer {
    may_change(&who, &headers)?;
    let approve = match f.decision.as_str() {
        "approve" => true,
        "reject" => false,
        other => {
            return Err(Fail::Invalid(
                "decision".into(),
                format!("{other:?} is neither approve nor reject"),
            ))
        }
    };
    let note = blank(&f.note);
    executor::decide(&c.pool, &id, action, approve, &who.actor(), note.as_deref()).await?;
    Ok(Redirect::to(&format!("/incidents/{}#h-actions", urlencode(&id))).into_response())
}

#[derive(serde::Deserialize)]
pub struct FeedbackForm {
    class: Option<String>,
    root_cause: Option<String>,
    remediation_worked: Option<String>,
    note: Option<String>,
}

pub async fn feedback(
    State(c): State<Arc<Console>>,
    who: Who,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<FeedbackForm>,
) -> Answer {
    may_change(&who, &headers)?;
    let class = match blank(&f.class) {
        Some(s) => Some(
            s.parse::<IncidentClass>()
                .map_err(|e| Fail::Invalid("class".into(), e.to_string()))?,
        ),
        None => None,
    };
    let worked = match blank(&f.remediation_worked).as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(Fail::Invalid(
                "remediation_worked".into(),
                format!("{other:?} is neither true nor false"),
            ))
        }
    };
    let fb = store::Feedback {
        class: class.map(|c| c.as_str().to_string()),
        root_cause: blank(&f.root_cause),
        remediation_worked: worked,
        note: blank(&f.note),
    };
    if fb.class.is_none() && fb.root_cause.is_none() && fb.remediation_worked.is_none() {
        return Err(Fail::Invalid(
            "feedback".into(),
            "give at least a class, a root cause or whether the remediation worked".into(),
        ));
    }
    heal_incidents::role::give_feedback(
        &c.pool,
        c.bus.as_ref(),
        &id,
        &who.actor(),
        class,
        &fb,
        None,
    )
    .await?;
    Ok(Redirect::to(&format!("/incidents/{}#h-feedback", urlencode(&id))).into_response())
}

fn num(v: Option<f64>) -> String {
    v.map(short_number).unwrap_or_else(|| "–".into())
}

/// JSON on one line, cut to `max` characters.
pub fn compact(v: &Value, max: usize) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    if s.chars().count() > max {
        format!("{}…", s.chars().take(max).collect::<String>())
    } else {
        s
    }
}
