//! The lineage explorer: the graph laid out left to right (the whole of it when it is small,
//! else the neighbourhood of a node), search, upstream/downstream focus, and a node's details:
//! schema, last run, checks, KPIs and column lineage.

use crate::incidents::urlencode;
use crate::page::{self, badge, scroll};
use crate::svg::{self, GNode};
use crate::{ok, Answer, Console, Who};
use axum::extract::{Query, State};
use heal_lineage::model::NodeKind;
use maud::html;
use std::sync::Arc;

/// Above this many nodes the whole graph is not drawn: search and focus instead.
const WHOLE_GRAPH_MAX: usize = 250;
/// Most nodes drawn around a focus.
const FOCUS_MAX: usize = 200;

#[derive(serde::Deserialize, Default)]
pub struct LineageQuery {
    q: Option<String>,
    focus: Option<String>,
    /// `both` (default), `up` or `down`.
    dir: Option<String>,
    depth: Option<u32>,
    /// Draw checks and KPIs too.
    meta: Option<String>,
}

pub async fn page(
    State(c): State<Arc<Console>>,
    who: Who,
    Query(q): Query<LineageQuery>,
) -> Answer {
    let g = c.graph().await;
    let depth = q.depth.unwrap_or(2).clamp(1, 8);
    let dir = q.dir.as_deref().unwrap_or("both");
    let meta = q.meta.as_deref().is_some_and(|m| !m.is_empty() && m != "0");
    let search = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let hits = search.map(|s| g.search(s, 30)).unwrap_or_default();
    let focus = q.focus.as_deref().and_then(|f| g.find(f)).or_else(|| {
        // A search with exactly one hit focuses it.
        (hits.len() == 1).then(|| hits[0])
    });
    let shown: Vec<usize> = match focus {
        Some(f) => g.around(f, depth, dir != "down", dir != "up", meta, FOCUS_MAX),
        None if g.len() <= WHOLE_GRAPH_MAX => {
            if meta {
                (0..g.len()).collect()
            } else {
                g.flow_nodes()
            }
        }
        None => Vec::new(),
    };
    let nodes: Vec<GNode> = shown
        .iter()
        .map(|&v| {
            let n = &g.nodes[v];
            let mut state = Vec::new();
            if Some(v) == focus {
                state.push("focus");
            }
            if n.failing() {
                state.push("failing");
            }
            GNode {
                key: n.key.clone(),
                label: n.short_name().to_string(),
                kind: n.kind.as_str().to_string(),
                state,
                href: link(&n.key, dir, depth, meta),
            }
        })
        .collect();
    let edges = g.edges_among(&shown);
    let picture = (!nodes.is_empty()).then(|| {
        svg::graph(
            &match focus {
                Some(f) => format!(
                    "Lineage within {depth} step(s) of {}: {} nodes",
                    g.nodes[f].short_name(),
                    nodes.len()
                ),
                None => format!("The whole lineage graph: {} nodes", nodes.len()),
            },
            &nodes,
            &edges,
            &[],
        )
    });
    let columns = match focus {
        Some(f) if g.nodes[f].kind.is_data() => column_lineage(&c, &g.nodes[f].key).await?,
        _ => Vec::new(),
    };
    let body = html! {
        form.inline method="get" action="/lineage" role="search" aria-label="Lineage" {
            label for="lq" { "Search" }
            input #lq type="search" name="q" value=(search.unwrap_or("")) placeholder="orders, daily_revenue, revenue…";
            @if let Some(f) = focus { input type="hidden" name="focus" value=(g.nodes[f].key); }
            label for="ldir" { "Direction" }
            select #ldir name="dir" {
                @for (v, l) in [("both", "both"), ("up", "upstream"), ("down", "downstream")] {
                    option value=(v) selected[dir == v] { (l) }
                }
            }
            label for="ldepth" { "Depth" }
            input #ldepth type="number" name="depth" min="1" max="8" value=(depth);
            label { input type="checkbox" name="meta" value="1" checked[meta]; " checks and KPIs" }
            button type="submit" { "Show" }
        }
        p.muted { (g.len()) " nodes in the graph." }
        @if let Some(s) = search {
            @if hits.is_empty() {
                (page::empty(&format!("Nothing matches {s:?}.")))
            } @else if focus.is_none() || hits.len() > 1 {
                h2 { "Matches" }
                ul.matches {
                    @for &h in &hits {
                        li { a href=(link(&g.nodes[h].key, dir, depth, meta)) { (g.nodes[h].short_name()) } " " span.muted { (g.nodes[h].kind.as_str()) } }
                    }
                }
            }
        }
        @if let Some(p) = &picture {
            div.legend aria-hidden="true" {
                span.l-stream { "stream" } span.l-job { "job" } span.l-dataset { "dataset" }
                @if meta { span.l-check { "check" } span.l-kpi { "KPI" } }
                span.l-focus { "focus" } span.l-failing { "failing" }
            }
            div.graphbox { (p) }
        } @else if focus.is_none() && g.len() > WHOLE_GRAPH_MAX {
            p.notice { "The graph has " (g.len()) " nodes: search for one to see its neighbourhood." }
        } @else if g.is_empty() {
            (page::empty("The lineage graph is empty (or the lineage role cannot be reached)."))
        }
        @if let Some(f) = focus {
            @let n = &g.nodes[f];
            section aria-labelledby="h-node" {
                h2 #h-node { (n.kind.as_str()) " " (n.short_name()) }
                (scroll("Node details", html! {
                    table {
                        tbody {
                            tr { th scope="row" { "Key" } td { (n.key) } }
                            @if let Some(l) = &n.props.layer { tr { th scope="row" { "Layer" } td { (l) } } }
                            @if let Some(o) = &n.props.owner { tr { th scope="row" { "Owner" } td { (o) } } }
                            @if let Some(d) = &n.props.description { tr { th scope="row" { "Description" } td { (d) } } }
                            @if let Some(fs) = &n.props.fields { tr { th scope="row" { "Schema" } td { (fs.join(", ")) } } }
                            @if let Some(r) = n.props.row_count { tr { th scope="row" { "Rows (last write)" } td { (r) } } }
                            @if let Some(w) = &n.props.last_written_at { tr { th scope="row" { "Last written" } td { (w) } } }
                            @if let Some(s) = &n.props.last_run_state { tr { th scope="row" { "Last run" } td { (badge(s)) " " (n.props.last_run_at.as_deref().unwrap_or("")) } } }
                            @if let Some(e) = &n.props.last_error { tr { th scope="row" { "Last error" } td { (e) } } }
                            @if let Some(s) = n.props.check_success { tr { th scope="row" { "Newest result" } td { (badge(if s { "pass" } else { "fail" })) } } }
                            @if let Some(c) = &n.props.criticality { tr { th scope="row" { "Criticality" } td { (c) } } }
                        }
                    }
                }))
                @let attached: Vec<usize> = g.downstream(f).iter().copied().filter(|&w| matches!(g.nodes[w].kind, NodeKind::Check | NodeKind::Kpi)).collect();
                @if !attached.is_empty() {
                    h2 { "Checks and KPIs" }
                    ul {
                        @for &w in &attached {
                            @let m = &g.nodes[w];
                            li {
                                @if m.kind == NodeKind::Check {
                                    a href=(format!("/checks/{}", urlencode(m.short_name()))) { (m.short_name()) }
                                    " " (badge(match m.props.check_success { Some(true) => "pass", Some(false) => "fail", None => "unknown" }))
                                } @else {
                                    (m.short_name()) " " span.muted { "KPI" @if let Some(c) = &m.props.criticality { ", " (c) } }
                                }
                            }
                        }
                    }
                }
                @if !columns.is_empty() {
                    h2 { "Column lineage" }
                    (scroll("Column lineage", html! {
                        table {
                            thead { tr { th { "Column" } th { "Made from" } th { "Transformation" } } }
                            tbody {
                                @for (dst, src, srcf, t) in &columns {
                                    tr { td { (dst) } td { a href=(link(src, "both", 2, false)) { (short(src)) } "." (srcf) } td { (t) } }
                                }
                            }
                        }
                    }))
                }
            }
        }
    };
    ok(page::frame("Lineage", "/lineage", &who.0, None, body))
}

fn link(key: &str, dir: &str, depth: u32, meta: bool) -> String {
    format!(
        "/lineage?focus={}&dir={dir}&depth={depth}{}",
        urlencode(key),
        if meta { "&meta=1" } else { "" }
    )
}

fn short(key: &str) -> &str {
    let name = key.rsplit(':').next().unwrap_or(key);
    name.strip_prefix("public.").unwrap_or(name)
}

/// The columns of `key` and the columns they are made from (from the PostgreSQL graph; a
/// Bolt-backed graph shows none here).
async fn column_lineage(
    c: &Console,
    key: &str,
) -> Result<Vec<(String, String, String, String)>, crate::Fail> {
    Ok(sqlx::query_as(
        "SELECT ce.dst_field, s.key, ce.src_field, ce.transformation
         FROM lineage_column_edges ce
         JOIN lineage_nodes d ON d.id = ce.dst_node
         JOIN lineage_nodes s ON s.id = ce.src_node
         WHERE d.key = $1 ORDER BY ce.dst_field, s.key, ce.src_field LIMIT 500",
    )
    .bind(key)
    .fetch_all(&c.pool)
    .await?)
}
