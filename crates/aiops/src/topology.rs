//! The lineage graph as the engine reasons over it: a snapshot taken through the lineage
//! role's API (in-process or HTTP) and indexed in memory, so that correlating one failure
//! costs a few bounded breadth-first walks and no round trip. Data flows along
//! stream → job → dataset → job → … edges; checks and KPIs hang off datasets and count only
//! for the blast radius.

use futures::future::BoxFuture;
use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// A node as the lineage API exports it, reduced to what the engine needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphNode {
    pub key: String,
    /// `stream`, `dataset`, `job`, `check` or `kpi`.
    pub kind: String,
    /// The name users say (`payments`, not `public.payments`).
    pub name: String,
    pub layer: Option<String>,
    pub owner: Option<String>,
    pub criticality: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphEdge {
    pub src: String,
    pub dst: String,
    pub kind: String,
}

/// The whole graph at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GraphSnapshot {
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
}

/// Where snapshots come from: the lineage role's API, in this process or over HTTP.
pub trait LineageSource: Send + Sync {
    fn snapshot(&self) -> BoxFuture<'_, Result<GraphSnapshot, String>>;
}

pub type NodeId = usize;

/// The indexed graph.
#[derive(Debug, Default)]
pub struct Topology {
    nodes: Vec<GraphNode>,
    index: HashMap<String, NodeId>,
    by_name: HashMap<String, Vec<NodeId>>,
    down: Vec<Vec<(NodeId, u16)>>,
    up: Vec<Vec<(NodeId, u16)>>,
    /// Streams, datasets and jobs (what data flows through), by id.
    flow: Vec<bool>,
    edge_kinds: Vec<String>,
}

impl Topology {
    pub fn new(snapshot: GraphSnapshot) -> Topology {
        let mut t = Topology::default();
        for n in snapshot.nodes {
            if t.index.contains_key(&n.key) {
                continue;
            }
            let id = t.nodes.len();
            t.index.insert(n.key.clone(), id);
            t.by_name.entry(n.name.clone()).or_default().push(id);
            t.flow
                .push(matches!(n.kind.as_str(), "stream" | "dataset" | "job"));
            t.nodes.push(n);
            t.down.push(Vec::new());
            t.up.push(Vec::new());
        }
        let mut kinds: HashMap<String, u16> = HashMap::default();
        for e in snapshot.edges {
            let (Some(&s), Some(&d)) = (t.index.get(&e.src), t.index.get(&e.dst)) else {
                continue;
            };
            let next = kinds.len() as u16;
            let k = *kinds.entry(e.kind.clone()).or_insert_with(|| {
                t.edge_kinds.push(e.kind.clone());
                next
            });
            t.down[s].push((d, k));
            t.up[d].push((s, k));
        }
        t
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn node(&self, id: NodeId) -> &GraphNode {
        &self.nodes[id]
    }

    /// The node with this key.
    pub fn by_key(&self, key: &str) -> Option<NodeId> {
        self.index.get(key).copied()
    }

    /// The node of `kind` called `name` (a `public.` prefix is ignored).
    pub fn find(&self, kind: &str, name: &str) -> Option<NodeId> {
        let name = name.strip_prefix("public.").unwrap_or(name);
        self.by_name
            .get(name)?
            .iter()
            .copied()
            .find(|&id| self.nodes[id].kind == kind)
    }

    /// True for nodes data flows through (streams, datasets, jobs).
    pub fn is_flow(&self, id: NodeId) -> bool {
        self.flow[id]
    }

    fn walk(
        &self,
        from: NodeId,
        max: u32,
        upward: bool,
        flow_only: bool,
        cap: usize,
    ) -> Vec<(NodeId, u32)> {
        let adj = if upward { &self.up } else { &self.down };
        let mut seen: HashMap<NodeId, u32> = HashMap::default();
        seen.insert(from, 0);
        let mut queue = VecDeque::from([(from, 0u32)]);
        let mut out = Vec::new();
        while let Some((n, d)) = queue.pop_front() {
            if d >= max {
                continue;
            }
            for &(m, _) in &adj[n] {
                if flow_only && !self.is_flow(m) {
                    continue;
                }
                if seen.contains_key(&m) {
                    continue;
                }
                seen.insert(m, d + 1);
                out.push((m, d + 1));
                if out.len() >= cap {
                    return out;
                }
                queue.push_back((m, d + 1));
            }
        }
        out
    }

    /// The direct upstream neighbours of `id`.
    pub fn parents(&self, id: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        self.up[id].iter().map(|(p, _)| *p)
    }

    /// Everything downstream of `id` (checks and KPIs included: the blast radius) within
    /// `max` hops, stopping after `cap` nodes (nearest first).
    pub fn reach_capped(&self, id: NodeId, max: u32, cap: usize) -> Vec<(NodeId, u32)> {
        self.walk(id, max, false, false, cap)
    }

    /// For every node: whether a dataset outside `except` lies anywhere upstream of it (one
    /// pass over the graph; a cycle counts as nothing upstream).
    pub fn data_above(&self, except: &std::collections::HashSet<NodeId>) -> Vec<bool> {
        // 0 unknown, 1 on the stack, 2 done.
        let mut state = vec![0u8; self.nodes.len()];
        let mut above = vec![false; self.nodes.len()];
        for start in 0..self.nodes.len() {
            if state[start] == 2 {
                continue;
            }
            let mut stack = vec![(start, false)];
            while let Some((n, expanded)) = stack.pop() {
                if expanded {
                    above[n] = self.up[n].iter().any(|&(p, _)| {
                        (self.nodes[p].kind == "dataset" && !except.contains(&p)) || above[p]
                    });
                    state[n] = 2;
                    continue;
                }
                if state[n] != 0 {
                    continue;
                }
                state[n] = 1;
                stack.push((n, true));
                for &(p, _) in &self.up[n] {
                    if state[p] == 0 {
                        stack.push((p, false));
                    }
                }
            }
        }
        above
    }

    /// Flow nodes upstream of `id` within `max` hops, each at its shortest distance.
    pub fn ancestors(&self, id: NodeId, max: u32) -> Vec<(NodeId, u32)> {
        self.walk(id, max, true, true, usize::MAX)
    }

    /// Flow nodes downstream of `id` within `max` hops.
    pub fn descendants(&self, id: NodeId, max: u32) -> Vec<(NodeId, u32)> {
        self.walk(id, max, false, true, usize::MAX)
    }

    /// The shortest directed path `from` → `to` within `max` hops, as edges
    /// `(src, dst, kind)`; `Some(vec![])` when they are the same node. Searched upstream
    /// from `to` (lineage fans out more than it fans in), stopping at `from`.
    pub fn path(&self, from: NodeId, to: NodeId, max: u32) -> Option<Vec<(NodeId, NodeId, &str)>> {
        if from == to {
            return Some(Vec::new());
        }
        // next[n] = (the node after n on the way to `to`, edge kind).
        let mut next: HashMap<NodeId, (NodeId, u16)> = HashMap::default();
        let mut queue = VecDeque::from([(to, 0u32)]);
        let mut found = false;
        'bfs: while let Some((n, d)) = queue.pop_front() {
            if d >= max {
                continue;
            }
            for &(m, k) in &self.up[n] {
                if m == to || next.contains_key(&m) || !self.is_flow(m) {
                    continue;
                }
                next.insert(m, (n, k));
                if m == from {
                    found = true;
                    break 'bfs;
                }
                queue.push_back((m, d + 1));
            }
        }
        if !found {
            return None;
        }
        let mut steps = Vec::new();
        let mut at = from;
        while at != to {
            let (n, k) = next[&at];
            steps.push((at, n, self.edge_kinds[k as usize].as_str()));
            at = n;
        }
        Some(steps)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The tables ingest writes (besides the quarantine).
    const RAW: [&str; 8] = [
        "raw_events",
        "users",
        "sessions",
        "product_views",
        "cart_items",
        "orders",
        "payments",
        "refunds",
    ];

    /// The platform's shape in small: the generator produces `raw-events`, ingest reads it
    /// and writes raw tables and the quarantine, staging and analytics jobs below, a check and
    /// a KPI.
    pub fn platform() -> GraphSnapshot {
        let mut nodes = Vec::new();
        let mut edges = Vec::new();
        let mut node = |kind: &str, name: &str, layer: Option<&str>| {
            nodes.push(GraphNode {
                key: format!("{kind}:{name}"),
                kind: kind.into(),
                name: name.into(),
                layer: layer.map(str::to_string),
                owner: None,
                criticality: (kind == "kpi").then(|| "critical".to_string()),
            });
        };
        node("job", "generator", None);
        node("stream", "raw-events", Some("source"));
        node("job", "ingest", None);
        for t in RAW {
            node("dataset", t, Some("raw"));
        }
        node("dataset", "quarantine", Some("quarantine"));
        for j in ["stg_orders", "stg_payments", "stg_refunds"] {
            node("job", j, None);
            node("dataset", j, Some("staging"));
        }
        node("job", "daily_revenue", None);
        node("dataset", "daily_revenue", Some("analytics"));
        node("job", "user_funnel", None);
        node("dataset", "user_funnel", Some("analytics"));
        node("kpi", "revenue", None);
        node("check", "payments_schema", None);
        let mut edge = |s: &str, d: &str, k: &str| {
            edges.push(GraphEdge {
                src: s.into(),
                dst: d.into(),
                kind: k.into(),
            })
        };
        edge("job:generator", "stream:raw-events", "produces");
        edge("stream:raw-events", "job:ingest", "reads");
        for t in RAW.iter().chain(&["quarantine"]) {
            edge("job:ingest", &format!("dataset:{t}"), "writes");
        }
        for (raw, stg) in [
            ("orders", "stg_orders"),
            ("payments", "stg_payments"),
            ("refunds", "stg_refunds"),
        ] {
            edge(&format!("dataset:{raw}"), &format!("job:{stg}"), "reads");
            edge(&format!("job:{stg}"), &format!("dataset:{stg}"), "writes");
            edge(&format!("dataset:{stg}"), "job:daily_revenue", "reads");
        }
        edge("job:daily_revenue", "dataset:daily_revenue", "writes");
        for t in ["sessions", "product_views", "cart_items", "stg_orders"] {
            edge(&format!("dataset:{t}"), "job:user_funnel", "reads");
        }
        edge("job:user_funnel", "dataset:user_funnel", "writes");
        edge("dataset:daily_revenue", "kpi:revenue", "measures");
        edge("dataset:payments", "check:payments_schema", "monitors");
        GraphSnapshot { nodes, edges }
    }

    #[test]
    fn walks_paths_and_names() {
        let t = Topology::new(platform());
        let payments = t.find("dataset", "public.payments").unwrap();
        let revenue = t.find("dataset", "daily_revenue").unwrap();
        let job = t.find("job", "daily_revenue").unwrap();
        assert_ne!(revenue, job, "a job and a table may share a name");
        let path = t.path(payments, revenue, 8).unwrap();
        let names: Vec<&str> = path.iter().map(|s| t.node(s.1).name.as_str()).collect();
        assert_eq!(
            names,
            [
                "stg_payments",
                "stg_payments",
                "daily_revenue",
                "daily_revenue"
            ]
        );
        assert_eq!(path[0].2, "reads");
        assert!(
            t.path(revenue, payments, 8).is_none(),
            "paths follow the data"
        );
        let sessions = t.find("dataset", "sessions").unwrap();
        assert!(
            t.path(payments, sessions, 8).is_none(),
            "siblings are not connected"
        );
        let up: Vec<&str> = t
            .ancestors(payments, 2)
            .iter()
            .map(|(n, _)| t.node(*n).name.as_str())
            .collect();
        assert_eq!(up, ["ingest", "raw-events"]);
        let blast: Vec<&str> = t
            .reach_capped(payments, 10, usize::MAX)
            .iter()
            .map(|(n, _)| t.node(*n).kind.as_str())
            .collect();
        assert!(blast.contains(&"kpi") && blast.contains(&"check"));
        assert!(!t
            .descendants(payments, 10)
            .iter()
            .any(|(n, _)| !t.is_flow(*n)));
    }
}
