//! The lineage graph as the console reads it: an export of the lineage service, indexed once
//! per refresh, with the neighbourhood walks and searches the pages need.

use heal_lineage::model::{Node, NodeKind};
use heal_lineage::query::GraphExport;
use std::collections::{HashMap, VecDeque};

#[derive(Debug, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    index: HashMap<String, usize>,
    out: Vec<Vec<usize>>,
    inc: Vec<Vec<usize>>,
}

impl Graph {
    pub fn new(g: GraphExport) -> Graph {
        let index: HashMap<String, usize> = g
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.key.clone(), i))
            .collect();
        let mut out = vec![Vec::new(); g.nodes.len()];
        let mut inc = vec![Vec::new(); g.nodes.len()];
        for e in &g.edges {
            if let (Some(&a), Some(&b)) = (index.get(&e.src), index.get(&e.dst)) {
                out[a].push(b);
                inc[b].push(a);
            }
        }
        Graph {
            nodes: g.nodes,
            index,
            out,
            inc,
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn by_key(&self, key: &str) -> Option<usize> {
        self.index.get(key).copied()
    }

    /// A node by key, or by name when the name is unambiguous enough (first of data, job).
    pub fn find(&self, key_or_name: &str) -> Option<usize> {
        self.by_key(key_or_name).or_else(|| {
            let mut best: Option<usize> = None;
            for (i, n) in self.nodes.iter().enumerate() {
                if n.short_name() == key_or_name || n.name == key_or_name {
                    match best {
                        Some(b) if rank(self.nodes[b].kind) <= rank(n.kind) => {}
                        _ => best = Some(i),
                    }
                }
            }
            best
        })
    }

    pub fn upstream(&self, v: usize) -> &[usize] {
        &self.inc[v]
    }

    pub fn downstream(&self, v: usize) -> &[usize] {
        &self.out[v]
    }

    /// Nodes within `depth` steps of `center` upstream (`up`) and/or downstream (`down`), at
    /// most `cap` of them, nearest first; checks and KPIs only when `meta`.
    pub fn around(
        &self,
        center: usize,
        depth: u32,
        up: bool,
        down: bool,
        meta: bool,
        cap: usize,
    ) -> Vec<usize> {
        let mut dist: HashMap<usize, u32> = HashMap::from([(center, 0)]);
        let mut order = vec![center];
        let mut queue = VecDeque::from([(center, 0u32, 0u8)]);
        // Direction 1 walks up, 2 walks down; the centre walks both.
        while let Some((v, d, dir)) = queue.pop_front() {
            if d >= depth || order.len() >= cap {
                continue;
            }
            let mut step = |next: &[usize], ndir: u8| {
                for &w in next {
                    if order.len() >= cap {
                        break;
                    }
                    if !meta && matches!(self.nodes[w].kind, NodeKind::Check | NodeKind::Kpi) {
                        continue;
                    }
                    if let std::collections::hash_map::Entry::Vacant(e) = dist.entry(w) {
                        e.insert(d + 1);
                        order.push(w);
                        queue.push_back((w, d + 1, ndir));
                    }
                }
            };
            if up && dir != 2 {
                step(&self.inc[v], 1);
            }
            if down && dir != 1 {
                step(&self.out[v], 2);
            }
        }
        order
    }

    /// The edges among `nodes`, as positions in that list.
    pub fn edges_among(&self, nodes: &[usize]) -> Vec<(usize, usize)> {
        let at: HashMap<usize, usize> = nodes.iter().enumerate().map(|(i, &v)| (v, i)).collect();
        let mut edges = Vec::new();
        for (i, &v) in nodes.iter().enumerate() {
            for w in &self.out[v] {
                if let Some(&j) = at.get(w) {
                    edges.push((i, j));
                }
            }
        }
        edges
    }

    /// Nodes whose key contains every word of `q` (case-insensitive), data and jobs first.
    pub fn search(&self, q: &str, limit: usize) -> Vec<usize> {
        let words: Vec<String> = q.split_whitespace().map(str::to_lowercase).collect();
        if words.is_empty() {
            return Vec::new();
        }
        let mut hits: Vec<usize> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| {
                let k = n.key.to_lowercase();
                words.iter().all(|w| k.contains(w.as_str()))
            })
            .map(|(i, _)| i)
            .collect();
        hits.sort_by_key(|&i| (rank(self.nodes[i].kind), self.nodes[i].name.len(), i));
        hits.truncate(limit);
        hits
    }

    /// The nodes with no data or job upstream of them (where data enters).
    pub fn flow_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| !matches!(self.nodes[i].kind, NodeKind::Check | NodeKind::Kpi))
            .collect()
    }
}

fn rank(k: NodeKind) -> u8 {
    match k {
        NodeKind::Dataset => 0,
        NodeKind::Stream => 1,
        NodeKind::Job => 2,
        NodeKind::Kpi => 3,
        NodeKind::Check => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use heal_lineage::model::{Edge, EdgeKind, Props};

    fn export() -> GraphExport {
        let n = |k: NodeKind, name: &str| Node::new(k, "heal", name, Props::default());
        let nodes = vec![
            n(NodeKind::Stream, "raw-events"),
            n(NodeKind::Job, "ingest"),
            n(NodeKind::Dataset, "orders"),
            n(NodeKind::Job, "daily_revenue"),
            n(NodeKind::Dataset, "daily_revenue"),
            n(NodeKind::Kpi, "revenue"),
            n(NodeKind::Check, "orders_volume"),
        ];
        let e = |a: usize, b: usize| Edge {
            src: nodes[a].key.clone(),
            dst: nodes[b].key.clone(),
            kind: EdgeKind::Reads,
        };
        let edges = vec![e(0, 1), e(1, 2), e(2, 3), e(3, 4), e(4, 5), e(2, 6)];
        GraphExport { nodes, edges }
    }

    #[test]
    fn around_walks_each_way_from_the_centre_only() {
        let g = Graph::new(export());
        let orders = g.find("orders").unwrap();
        let near = g.around(orders, 1, true, true, false, 100);
        let names: Vec<&str> = near.iter().map(|&i| g.nodes[i].name.as_str()).collect();
        assert_eq!(names, ["orders", "ingest", "daily_revenue"]);
        let with_meta = g.around(orders, 1, true, true, true, 100);
        assert_eq!(with_meta.len(), 4);
        // Upstream only, far: never turns back down.
        let up = g.around(g.find("daily_revenue").unwrap(), 9, true, false, false, 100);
        assert!(up.iter().all(|&i| g.nodes[i].name != "revenue"));
        assert_eq!(up.len(), 5);
        assert_eq!(g.around(orders, 9, true, true, true, 3).len(), 3);
    }

    #[test]
    fn search_ranks_datasets_first_and_needs_every_word() {
        let g = Graph::new(export());
        let hits = g.search("daily revenue", 10);
        assert_eq!(g.nodes[hits[0]].kind, NodeKind::Dataset);
        assert_eq!(hits.len(), 2);
        assert!(g.search("orders nothing", 10).is_empty());
        let order = g.around(0, 9, false, true, true, 100);
        let edges = g.edges_among(&order);
        assert_eq!(edges.len(), 6);
    }
}
