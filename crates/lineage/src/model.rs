//! The lineage graph's vocabulary: node and edge kinds, the properties that matter on a node
//! (schema, owner, layer, last run, row counts, check results, KPI criticality) and the update
//! one OpenLineage event makes to the graph.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// A topic or event stream.
    Stream,
    /// A table, file or any other dataset.
    Dataset,
    Job,
    /// A data-quality check on a dataset (or one of its columns).
    Check,
    /// A business metric read from a dataset column.
    Kpi,
}

impl NodeKind {
    pub const ALL: [NodeKind; 5] = [
        NodeKind::Stream,
        NodeKind::Dataset,
        NodeKind::Job,
        NodeKind::Check,
        NodeKind::Kpi,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Stream => "stream",
            NodeKind::Dataset => "dataset",
            NodeKind::Job => "job",
            NodeKind::Check => "check",
            NodeKind::Kpi => "kpi",
        }
    }

    /// Parses a kind name; `table` and `topic` are accepted for `dataset` and `stream`.
    pub fn parse(s: &str) -> Option<NodeKind> {
        match s {
            "stream" | "topic" => Some(NodeKind::Stream),
            "dataset" | "table" => Some(NodeKind::Dataset),
            "job" => Some(NodeKind::Job),
            "check" => Some(NodeKind::Check),
            "kpi" => Some(NodeKind::Kpi),
            _ => None,
        }
    }

    /// True for what holds data (streams and datasets).
    pub fn is_data(self) -> bool {
        matches!(self, NodeKind::Stream | NodeKind::Dataset)
    }
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How two nodes are related, always in the direction data flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeKind {
    /// A job produces a stream.
    Produces,
    /// A dataset or stream is read by a job.
    Reads,
    /// A job writes a dataset.
    Writes,
    /// A dataset is monitored by a check.
    Monitors,
    /// A dataset carries a KPI.
    Measures,
}

impl EdgeKind {
    pub const ALL: [EdgeKind; 5] = [
        EdgeKind::Produces,
        EdgeKind::Reads,
        EdgeKind::Writes,
        EdgeKind::Monitors,
        EdgeKind::Measures,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EdgeKind::Produces => "produces",
            EdgeKind::Reads => "reads",
            EdgeKind::Writes => "writes",
            EdgeKind::Monitors => "monitors",
            EdgeKind::Measures => "measures",
        }
    }

    pub fn parse(s: &str) -> Option<EdgeKind> {
        EdgeKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
    }
}

/// A node's identity, shared by every backend: `kind:namespace:name`.
pub fn node_key(kind: NodeKind, namespace: &str, name: &str) -> String {
    format!("{}:{namespace}:{name}", kind.as_str())
}

/// The properties of a node that lineage keeps. Absent means unknown.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Props {
    /// `source`, `raw`, `quarantine`, `staging`, `analytics`, … (the `heal` facet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Field names of the dataset's schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
    /// Dataset type (`TABLE`, `STREAM`, …) or job processing type (`BATCH`, `STREAMING`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtype: Option<String>,
    /// The producer URI of the newest event that described the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer: Option<String>,
    /// KPI criticality: `critical`, `high`, `medium` or `low`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criticality: Option<String>,
    /// The column a KPI reads or a check tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// Rows written by the newest run that reported a count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_count: Option<i64>,
    /// When a run last completed writing this dataset (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_written_at: Option<String>,
    /// Newest run of a job: state (`START`, `RUNNING`, `COMPLETE`, `FAIL`, `ABORT`), time,
    /// run id and error message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<String>,
    /// Newest result of a check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_success: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
}

/// Longest error message kept on a node.
pub const MAX_ERROR: usize = 500;
/// Longest description kept on a node.
pub const MAX_DESCRIPTION: usize = 500;

pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn newer(new: &Option<String>, old: &Option<String>) -> bool {
    match (new, old) {
        (Some(n), Some(o)) => n >= o,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

impl Props {
    /// True when the newest run failed (a job) or the newest result failed (a check).
    pub fn failing(&self) -> bool {
        matches!(self.last_run_state.as_deref(), Some("FAIL" | "ABORT"))
            || self.check_success == Some(false)
    }

    /// Merges a newer description of the node into `self`: set values replace, unset ones
    /// keep what was known; run, write and check results only move forward in time, so
    /// events applied out of order leave the newest state.
    pub fn merge(&mut self, new: &Props) {
        macro_rules! take {
            ($($f:ident),*) => { $( if new.$f.is_some() { self.$f = new.$f.clone(); } )* };
        }
        take!(
            layer,
            description,
            owner,
            fields,
            subtype,
            producer,
            criticality,
            column,
            severity
        );
        if newer(&new.last_written_at, &self.last_written_at) {
            self.last_written_at = new.last_written_at.clone();
            if new.row_count.is_some() {
                self.row_count = new.row_count;
            }
        } else if self.row_count.is_none() {
            self.row_count = new.row_count;
        }
        if newer(&new.last_run_at, &self.last_run_at) {
            self.last_run_at = new.last_run_at.clone();
            self.last_run_state = new.last_run_state.clone();
            self.last_run_id = new.last_run_id.clone();
            self.last_error = new.last_error.clone();
        }
        if newer(&new.last_success_at, &self.last_success_at) {
            self.last_success_at = new.last_success_at.clone();
        }
        if newer(&new.check_at, &self.check_at) {
            self.check_at = new.check_at.clone();
            self.check_success = new.check_success;
        }
    }
}

/// A node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub key: String,
    pub kind: NodeKind,
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub props: Props,
}

impl Node {
    pub fn new(kind: NodeKind, namespace: &str, name: &str, props: Props) -> Node {
        Node {
            key: node_key(kind, namespace, name),
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
            props,
        }
    }

    /// The name without a `public.` schema prefix, as users say it.
    pub fn short_name(&self) -> &str {
        self.name.strip_prefix("public.").unwrap_or(&self.name)
    }

    /// True when the newest run of this job failed, or this check's newest result failed.
    pub fn failing(&self) -> bool {
        self.props.failing()
    }
}

/// An edge between two node keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Edge {
    pub src: String,
    pub dst: String,
    pub kind: EdgeKind,
}

/// Column-level lineage: `dst.dst_field` is made from `src.src_field`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ColumnEdge {
    pub src: String,
    pub src_field: String,
    pub dst: String,
    pub dst_field: String,
    /// `DIRECT/IDENTITY`, `DIRECT/AGGREGATION`, `INDIRECT/FILTER`, …
    pub transformation: String,
}

/// What one event adds to the graph.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Update {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    pub columns: Vec<ColumnEdge>,
}

impl Update {
    /// Adds a node, merging with one already in this update.
    pub fn node(&mut self, node: Node) {
        match self.nodes.iter_mut().find(|n| n.key == node.key) {
            Some(existing) => existing.props.merge(&node.props),
            None => self.nodes.push(node),
        }
    }

    pub fn edge(&mut self, src: &str, dst: &str, kind: EdgeKind) {
        let e = Edge {
            src: src.to_string(),
            dst: dst.to_string(),
            kind,
        };
        if !self.edges.contains(&e) {
            self.edges.push(e);
        }
    }

    /// Appends `other`, merging nodes.
    pub fn extend(&mut self, other: Update) {
        for n in other.nodes {
            self.node(n);
        }
        for e in other.edges {
            self.edge(&e.src, &e.dst, e.kind);
        }
        for c in other.columns {
            self.column(c);
        }
    }

    /// Adds a column edge; a later one for the same (source, target) field pair replaces the
    /// earlier (its transformation is newer).
    pub fn column(&mut self, c: ColumnEdge) {
        match self.columns.iter_mut().find(|e| {
            e.src == c.src
                && e.src_field == c.src_field
                && e.dst == c.dst
                && e.dst_field == c.dst_field
        }) {
            Some(existing) => *existing = c,
            None => self.columns.push(c),
        }
    }
}

/// Which way a traversal follows edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Downstream,
    Upstream,
}

/// What a traversal from one node reached: each node once, at its shortest distance, and
/// every edge it followed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reach {
    pub nodes: Vec<(String, u32)>,
    pub edges: Vec<Edge>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_the_newest_run_whatever_the_order() {
        let run = |state: &str, at: &str| Props {
            last_run_state: Some(state.into()),
            last_run_at: Some(at.into()),
            ..Props::default()
        };
        let mut p = Props::default();
        p.merge(&run("COMPLETE", "2026-01-02T00:00:00.000Z"));
        p.merge(&run("FAIL", "2026-01-01T00:00:00.000Z"));
        assert_eq!(p.last_run_state.as_deref(), Some("COMPLETE"));
        p.merge(&run("FAIL", "2026-01-03T00:00:00.000Z"));
        assert_eq!(p.last_run_state.as_deref(), Some("FAIL"));
        p.merge(&Props {
            owner: Some("team".into()),
            ..Props::default()
        });
        assert_eq!(p.last_run_state.as_deref(), Some("FAIL"), "unset keeps");
        assert_eq!(p.owner.as_deref(), Some("team"));
    }

    #[test]
    fn kinds_parse_with_aliases() {
        assert_eq!(NodeKind::parse("table"), Some(NodeKind::Dataset));
        assert_eq!(NodeKind::parse("topic"), Some(NodeKind::Stream));
        assert_eq!(NodeKind::parse("nope"), None);
        for k in NodeKind::ALL {
            assert_eq!(NodeKind::parse(k.as_str()), Some(k));
        }
    }
}
