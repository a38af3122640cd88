//! The questions lineage answers, on top of any backend: what a table's failure affects,
//! what a job depends on and feeds, impact analysis with criticality, freshness and open
//! failures, upstream/downstream traversals, the path between two nodes, the subgraph around a
//! node, and the whole graph as JSON, DOT or Mermaid.

use crate::model::{Direction, Edge, EdgeKind, Node, NodeKind, Props};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// Why a query has no answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Ambiguous(String),
    #[error("{0}")]
    NoPath(String),
    #[error("lineage backend: {0}")]
    Backend(String),
}

impl From<crate::Error> for QueryError {
    fn from(e: crate::Error) -> Self {
        QueryError::Backend(e.to_string())
    }
}

/// A node reached by a traversal, at its shortest distance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Asset {
    pub key: String,
    pub kind: NodeKind,
    pub namespace: String,
    pub name: String,
    pub depth: u32,
    #[serde(default)]
    pub props: Props,
}

impl Asset {
    pub fn new_at(n: &Node, depth: u32) -> Asset {
        Asset {
            key: n.key.clone(),
            kind: n.kind,
            namespace: n.namespace.clone(),
            name: n.name.clone(),
            depth,
            props: n.props.clone(),
        }
    }
}

/// `GET /api/lineage/affected/{table}`: everything downstream of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Affected {
    pub node: Node,
    pub depth_limit: Option<u32>,
    pub affected: Vec<Asset>,
    /// How many of each kind.
    pub counts: BTreeMap<NodeKind, usize>,
}

/// `GET /api/lineage/dependencies/{job}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dependencies {
    pub job: Node,
    /// Datasets and streams the job reads.
    pub inputs: Vec<Node>,
    /// Datasets and streams the job writes.
    pub outputs: Vec<Node>,
    /// Jobs that read what this job writes, directly (depth 1) or further down; depth counts
    /// jobs, not edges.
    pub downstream_jobs: Vec<Asset>,
    /// Jobs whose outputs this job reads, directly or further up.
    pub upstream_jobs: Vec<Asset>,
}

/// When an asset last changed, and how long ago.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Freshness {
    pub last_updated: Option<String>,
    pub age_seconds: Option<i64>,
}

/// Something failing that concerns an asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// `job_failed` or `check_failed`.
    pub kind: String,
    /// The failing job or check.
    pub node: String,
    pub message: Option<String>,
    pub since: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImpactAsset {
    pub key: String,
    pub name: String,
    pub namespace: String,
    /// The highest criticality of the KPIs this asset feeds (its own, for a KPI).
    pub criticality: Option<String>,
    pub freshness: Freshness,
    pub open_failures: Vec<Failure>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImpactGroup {
    pub kind: NodeKind,
    pub distance: u32,
    pub assets: Vec<ImpactAsset>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImpactSummary {
    pub assets: usize,
    pub by_kind: BTreeMap<NodeKind, usize>,
    pub max_criticality: Option<String>,
    /// KPIs downstream, most critical first.
    pub kpis_at_risk: Vec<String>,
    pub open_failures: usize,
}

/// `GET /api/lineage/impact/{table}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Impact {
    pub node: Node,
    pub depth_limit: Option<u32>,
    pub summary: ImpactSummary,
    /// Downstream assets by kind and distance (nearest first).
    pub groups: Vec<ImpactGroup>,
}

/// An upstream or downstream traversal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Traversal {
    pub node: Node,
    pub direction: Direction,
    pub depth_limit: Option<u32>,
    pub nodes: Vec<Asset>,
    pub edges: Vec<Edge>,
}

/// The shortest path between two nodes, following data flow (`downstream`: `to` is
/// downstream of `from`) or against it (`upstream`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathResult {
    pub direction: Direction,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

/// A node with everything within `depth` edges up- and downstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subgraph {
    pub center: Node,
    pub depth: u32,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

/// The whole graph.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GraphExport {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

/// Criticality order: `critical` > `high` > `medium` > `low`.
pub fn criticality_rank(c: &str) -> u8 {
    match c {
        "critical" => 4,
        "high" => 3,
        "medium" => 2,
        "low" => 1,
        _ => 0,
    }
}

fn max_criticality<'a>(a: Option<&'a str>, b: Option<&'a str>) -> Option<&'a str> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if criticality_rank(y) > criticality_rank(x) {
            y
        } else {
            x
        }),
        (x, None) => x,
        (None, y) => y,
    }
}

fn describe(kinds: &[NodeKind]) -> String {
    match kinds {
        [] => "node".into(),
        [NodeKind::Stream, NodeKind::Dataset] | [NodeKind::Dataset, NodeKind::Stream] => {
            "table or stream".into()
        }
        [k] => match k {
            NodeKind::Dataset => "table".into(),
            other => other.as_str().into(),
        },
        _ => "node".into(),
    }
}

/// Picks the one node `reference` means among `candidates` (found by key or name), limited to
/// `kinds` (all when empty). `reference` may be `kind:name`.
pub fn choose(
    reference: &str,
    candidates: Vec<Node>,
    kinds: &[NodeKind],
) -> Result<Node, QueryError> {
    let allowed = |n: &Node| kinds.is_empty() || kinds.contains(&n.kind);
    let mut found: Vec<Node> = candidates.into_iter().filter(allowed).collect();
    if let Some(exact) = found.iter().position(|n| n.key == reference) {
        return Ok(found.swap_remove(exact));
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(QueryError::NotFound(format!(
            "no {} named {reference:?} in the lineage graph",
            describe(kinds)
        ))),
        _ => {
            let keys: Vec<&str> = found.iter().map(|n| n.key.as_str()).collect();
            Err(QueryError::Ambiguous(format!(
                "{reference:?} names {} nodes: {}; use a key, or kind:name (e.g. job:{reference})",
                found.len(),
                keys.join(", ")
            )))
        }
    }
}

/// Splits `kind:rest` when `kind` is a node kind.
pub fn split_kind(reference: &str) -> (Option<NodeKind>, &str) {
    match reference.split_once(':') {
        Some((k, rest)) if !rest.is_empty() => match NodeKind::parse(k) {
            Some(kind) => (Some(kind), rest),
            None => (None, reference),
        },
        _ => (None, reference),
    }
}

fn age(at: &str, now: chrono::DateTime<chrono::Utc>) -> Option<i64> {
    let t = chrono::DateTime::parse_from_rfc3339(at).ok()?;
    Some((now - t.with_timezone(&chrono::Utc)).num_seconds().max(0))
}

/// Sorts assets nearest first, then by kind and name.
pub fn sort_assets(assets: &mut [Asset]) {
    assets.sort_by(|a, b| {
        (a.depth, a.kind, &a.name, &a.key).cmp(&(b.depth, b.kind, &b.name, &b.key))
    });
}

/// Builds the affected answer from a downstream traversal.
pub fn affected(node: Node, depth_limit: Option<u32>, mut assets: Vec<Asset>) -> Affected {
    sort_assets(&mut assets);
    let mut counts = BTreeMap::new();
    for a in &assets {
        *counts.entry(a.kind).or_insert(0) += 1;
    }
    Affected {
        node,
        depth_limit,
        affected: assets,
        counts,
    }
}

/// Builds the dependencies answer from a job's two unbounded traversals.
pub fn dependencies(job: Node, down: &[Asset], up: &[Asset]) -> Dependencies {
    let node = |a: &Asset| Node {
        key: a.key.clone(),
        kind: a.kind,
        namespace: a.namespace.clone(),
        name: a.name.clone(),
        props: a.props.clone(),
    };
    let direct = |side: &[Asset]| -> Vec<Node> {
        let mut v: Vec<Node> = side
            .iter()
            .filter(|a| a.depth == 1 && a.kind.is_data())
            .map(node)
            .collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    };
    let jobs = |side: &[Asset]| -> Vec<Asset> {
        let mut v: Vec<Asset> = side
            .iter()
            .filter(|a| a.kind == NodeKind::Job)
            .map(|a| Asset {
                depth: a.depth.div_ceil(2),
                ..a.clone()
            })
            .collect();
        sort_assets(&mut v);
        v
    };
    Dependencies {
        inputs: direct(up),
        outputs: direct(down),
        downstream_jobs: jobs(down),
        upstream_jobs: jobs(up),
        job,
    }
}

/// Builds the impact answer from a downstream traversal (its nodes and edges).
pub fn impact(
    node: Node,
    depth_limit: Option<u32>,
    assets: &[Asset],
    edges: &[Edge],
    now: chrono::DateTime<chrono::Utc>,
) -> Impact {
    let by_key: HashMap<&str, &Asset> = assets.iter().map(|a| (a.key.as_str(), a)).collect();
    // Criticality flows up from each KPI against the edges.
    let mut into: HashMap<&str, Vec<&str>> = HashMap::new();
    for e in edges {
        into.entry(e.dst.as_str()).or_default().push(e.src.as_str());
    }
    let mut crit: HashMap<&str, &str> = HashMap::new();
    for kpi in assets.iter().filter(|a| a.kind == NodeKind::Kpi) {
        let Some(c) = kpi.props.criticality.as_deref() else {
            continue;
        };
        let mut queue = VecDeque::from([kpi.key.as_str()]);
        let mut seen = HashSet::new();
        while let Some(k) = queue.pop_front() {
            if !seen.insert(k) {
                continue;
            }
            let entry = crit.entry(k).or_insert(c);
            *entry = max_criticality(Some(entry), Some(c)).unwrap_or(c);
            for src in into.get(k).into_iter().flatten() {
                queue.push_back(src);
            }
        }
    }
    // What fails, and what each asset is attached to.
    let fail_of = |a: &Asset| -> Option<Failure> {
        if !a.props.failing() {
            return None;
        }
        Some(match a.kind {
            NodeKind::Check => Failure {
                kind: "check_failed".into(),
                node: a.key.clone(),
                message: a.props.description.clone(),
                since: a.props.check_at.clone(),
            },
            _ => Failure {
                kind: "job_failed".into(),
                node: a.key.clone(),
                message: a.props.last_error.clone(),
                since: a.props.last_run_at.clone(),
            },
        })
    };
    // Writers of each dataset and checks on it, for the failures attached to it.
    let mut related: HashMap<&str, Vec<&str>> = HashMap::new();
    for e in edges {
        match e.kind {
            EdgeKind::Writes | EdgeKind::Produces => related
                .entry(e.dst.as_str())
                .or_default()
                .push(e.src.as_str()),
            EdgeKind::Monitors => related
                .entry(e.src.as_str())
                .or_default()
                .push(e.dst.as_str()),
            _ => {}
        }
    }
    let attached = |a: &Asset| -> Vec<Failure> {
        let mut out: Vec<Failure> = fail_of(a).into_iter().collect();
        let data_keys: Vec<&str> = match a.kind {
            NodeKind::Dataset | NodeKind::Stream => vec![a.key.as_str()],
            NodeKind::Kpi => into.get(a.key.as_str()).cloned().unwrap_or_default(),
            _ => vec![],
        };
        for dk in data_keys {
            for other in related.get(dk).into_iter().flatten() {
                if let Some(f) = by_key.get(other).and_then(|o| fail_of(o)) {
                    if !out.contains(&f) {
                        out.push(f);
                    }
                }
            }
        }
        out
    };
    let freshness = |a: &Asset| -> Freshness {
        let last = match a.kind {
            NodeKind::Dataset | NodeKind::Stream => a.props.last_written_at.clone(),
            NodeKind::Job => a
                .props
                .last_success_at
                .clone()
                .or(a.props.last_run_at.clone()),
            NodeKind::Check => a.props.check_at.clone(),
            NodeKind::Kpi => into
                .get(a.key.as_str())
                .into_iter()
                .flatten()
                .filter_map(|k| by_key.get(k))
                .filter_map(|d| d.props.last_written_at.clone())
                .max(),
        };
        Freshness {
            age_seconds: last.as_deref().and_then(|t| age(t, now)),
            last_updated: last,
        }
    };
    let mut groups: BTreeMap<(NodeKind, u32), Vec<ImpactAsset>> = BTreeMap::new();
    let mut by_kind = BTreeMap::new();
    let mut failures = 0;
    let mut kpis: Vec<(u8, String)> = Vec::new();
    for a in assets {
        let open = attached(a);
        failures += open.iter().filter(|f| f.node == a.key).count();
        *by_kind.entry(a.kind).or_insert(0) += 1;
        if a.kind == NodeKind::Kpi {
            kpis.push((
                criticality_rank(a.props.criticality.as_deref().unwrap_or_default()),
                a.name.clone(),
            ));
        }
        groups
            .entry((a.kind, a.depth))
            .or_default()
            .push(ImpactAsset {
                key: a.key.clone(),
                name: a.name.clone(),
                namespace: a.namespace.clone(),
                criticality: crit.get(a.key.as_str()).map(|c| c.to_string()),
                freshness: freshness(a),
                open_failures: open,
            });
    }
    kpis.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let max = crit.values().fold(None, |m, c| max_criticality(m, Some(c)));
    let mut groups: Vec<ImpactGroup> = groups
        .into_iter()
        .map(|((kind, distance), mut assets)| {
            assets.sort_by(|a, b| a.key.cmp(&b.key));
            ImpactGroup {
                kind,
                distance,
                assets,
            }
        })
        .collect();
    groups.sort_by_key(|g| (g.distance, g.kind));
    Impact {
        node,
        depth_limit,
        summary: ImpactSummary {
            assets: assets.len(),
            by_kind,
            max_criticality: max.map(str::to_string),
            kpis_at_risk: kpis.into_iter().map(|k| k.1).collect(),
            open_failures: failures,
        },
        groups,
    }
}

/// The shortest path from `from` to `to` over `edges` followed in `dir`, as node keys and the
/// edges taken.
pub fn shortest_path(
    from: &str,
    to: &str,
    edges: &[Edge],
    dir: Direction,
) -> Option<(Vec<String>, Vec<Edge>)> {
    let mut next: HashMap<&str, Vec<&Edge>> = HashMap::new();
    for e in edges {
        let (a, _) = match dir {
            Direction::Downstream => (e.src.as_str(), e.dst.as_str()),
            Direction::Upstream => (e.dst.as_str(), e.src.as_str()),
        };
        next.entry(a).or_default().push(e);
    }
    let mut prev: HashMap<&str, &Edge> = HashMap::new();
    let mut seen = HashSet::from([from]);
    let mut queue = VecDeque::from([from]);
    while let Some(k) = queue.pop_front() {
        if k == to {
            let mut keys = vec![to.to_string()];
            let mut taken = Vec::new();
            let mut cur = to;
            while cur != from {
                let e = prev[cur];
                taken.push(e.clone());
                cur = match dir {
                    Direction::Downstream => e.src.as_str(),
                    Direction::Upstream => e.dst.as_str(),
                };
                keys.push(cur.to_string());
            }
            keys.reverse();
            taken.reverse();
            return Some((keys, taken));
        }
        for e in next.get(k).into_iter().flatten() {
            let other = match dir {
                Direction::Downstream => e.dst.as_str(),
                Direction::Upstream => e.src.as_str(),
            };
            if seen.insert(other) {
                prev.insert(other, e);
                queue.push_back(other);
            }
        }
    }
    None
}

fn dot_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The graph in Graphviz DOT.
pub fn to_dot(g: &GraphExport) -> String {
    let mut out =
        String::from("digraph lineage {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n");
    for n in &g.nodes {
        let shape = match n.kind {
            NodeKind::Stream => "cds",
            NodeKind::Dataset => "cylinder",
            NodeKind::Job => "box",
            NodeKind::Check => "hexagon",
            NodeKind::Kpi => "doublecircle",
        };
        let color = if n.failing() { ", color=red" } else { "" };
        out.push_str(&format!(
            "  {} [label={}, shape={shape}{color}];\n",
            dot_quote(&n.key),
            dot_quote(&format!("{}\\n({})", n.short_name(), n.kind))
        ));
    }
    for e in &g.edges {
        out.push_str(&format!(
            "  {} -> {} [label={}];\n",
            dot_quote(&e.src),
            dot_quote(&e.dst),
            dot_quote(e.kind.as_str())
        ));
    }
    out.push_str("}\n");
    out
}

/// The graph as a Mermaid flowchart.
pub fn to_mermaid(g: &GraphExport) -> String {
    let ids: HashMap<&str, String> = g
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.key.as_str(), format!("n{i}")))
        .collect();
    let label = |s: &str| s.replace('"', "#quot;");
    let mut out = String::from("flowchart LR\n");
    for n in &g.nodes {
        let l = label(n.short_name());
        let shape = match n.kind {
            NodeKind::Stream => format!(">\"{l}\"]"),
            NodeKind::Dataset => format!("[(\"{l}\")]"),
            NodeKind::Job => format!("[\"{l}\"]"),
            NodeKind::Check => format!("{{{{\"{l}\"}}}}"),
            NodeKind::Kpi => format!("((\"{l}\"))"),
        };
        out.push_str(&format!("  {}{shape}\n", ids[n.key.as_str()]));
    }
    for e in &g.edges {
        if let (Some(a), Some(b)) = (ids.get(e.src.as_str()), ids.get(e.dst.as_str())) {
            out.push_str(&format!("  {a} -->|{}| {b}\n", e.kind.as_str()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(src: &str, dst: &str) -> Edge {
        Edge {
            src: src.into(),
            dst: dst.into(),
            kind: EdgeKind::Reads,
        }
    }

    #[test]
    fn shortest_path_prefers_fewer_edges_and_follows_direction() {
        let edges = vec![e("a", "b"), e("b", "c"), e("c", "d"), e("a", "d")];
        let (keys, taken) = shortest_path("a", "d", &edges, Direction::Downstream).unwrap();
        assert_eq!(keys, vec!["a", "d"]);
        assert_eq!(taken.len(), 1);
        let (keys, _) = shortest_path("d", "b", &edges, Direction::Upstream).unwrap();
        assert_eq!(keys, vec!["d", "c", "b"]);
        assert!(shortest_path("d", "a", &edges, Direction::Downstream).is_none());
    }

    #[test]
    fn references_resolve_by_kind_and_report_ambiguity() {
        let job = Node::new(NodeKind::Job, "heal", "daily_revenue", Props::default());
        let table = Node::new(
            NodeKind::Dataset,
            "postgres://heal",
            "public.daily_revenue",
            Props::default(),
        );
        let both = vec![job.clone(), table.clone()];
        assert_eq!(
            choose("daily_revenue", both.clone(), &[NodeKind::Job]).unwrap(),
            job
        );
        let err = choose("daily_revenue", both.clone(), &[]).unwrap_err();
        assert!(matches!(err, QueryError::Ambiguous(_)), "{err}");
        assert!(err.to_string().contains("job:heal:daily_revenue"));
        let err = choose("x", vec![], &[NodeKind::Dataset]).unwrap_err();
        assert_eq!(err.to_string(), "no table named \"x\" in the lineage graph");
        assert_eq!(
            split_kind("table:orders"),
            (Some(NodeKind::Dataset), "orders")
        );
        assert_eq!(split_kind("orders"), (None, "orders"));
    }

    #[test]
    fn exports_quote_names() {
        let g = GraphExport {
            nodes: vec![Node::new(
                NodeKind::Dataset,
                "ns",
                "we\"ird",
                Props::default(),
            )],
            edges: vec![],
        };
        assert!(to_dot(&g).contains("we\\\"ird"));
        assert!(to_mermaid(&g).contains("we#quot;ird"));
    }
}
