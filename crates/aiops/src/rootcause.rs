//! Root-cause ranking. Candidates are the symptoms' own nodes and everything upstream of them
//! in lineage; each is scored on
//! - coverage: the share of symptoms it has a directed lineage path to (a candidate that
//!   reaches every symptom is *grounded*; an ungrounded one is never ranked above a grounded
//!   one),
//! - failing: whether it shows a symptom itself,
//! - position: the most upstream failing node (no failing node above it), or for a node that
//!   does not fail itself, how close it sits to the symptoms,
//! - precedence: how early its own symptoms started in data time,
//! - evidence: the severity of its own symptoms,
//! - mechanism: whether its kind is where the incident's class originates (a source stream
//!   for volume anomalies, a job for pipeline and infrastructure problems, a table for what
//!   arrives in it).
//!
//! Symptoms on *shared* datasets (the all-events table and the quarantine, which every
//! stream passes through) do not decide coverage: any candidate of the stream explains them
//! through the ingest job that writes them.

use crate::symptom::Observed;
use crate::topology::{NodeId, Topology};
use heal_model::incident::{IncidentClass, NodeRef, PathStep, RootCause, SymptomPath};
use heal_model::quality::Severity;
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Deepest path followed from a candidate to a symptom.
pub const MAX_DEPTH: u32 = 12;
/// Candidates listed per incident.
pub const TOP: usize = 5;

pub fn node_ref(t: &Topology, id: NodeId) -> NodeRef {
    let n = t.node(id);
    NodeRef {
        key: n.key.clone(),
        kind: n.kind.clone(),
        name: n.name.clone(),
    }
}

fn severity_weight(s: Severity) -> f64 {
    match s {
        Severity::Low => 0.25,
        Severity::Medium => 0.5,
        Severity::High => 0.75,
        Severity::Critical => 1.0,
    }
}

/// Where each class of problem originates.
fn origin_kind(class: IncidentClass) -> &'static str {
    match class {
        IncidentClass::VolumeAnomaly => "stream",
        IncidentClass::PipelineFailure
        | IncidentClass::StaleData
        | IncidentClass::Infrastructure => "job",
        _ => "dataset",
    }
}

/// A candidate before it is turned into a [`RootCause`].
pub struct Scored {
    pub node: NodeId,
    pub score: f64,
    pub grounded: bool,
    pub factors: BTreeMap<String, f64>,
    /// Indexes of the symptoms it reaches.
    pub covers: Vec<usize>,
}

/// Ranks the candidates of an incident whose symptoms are `symptoms`, `class` being the
/// incident's classification; `shared` are the shared datasets; `confirmed` gives, per node
/// key, the share of operators' corrections that named it the root cause of such incidents.
pub fn rank(
    t: &Topology,
    symptoms: &[Observed],
    class: IncidentClass,
    shared: &HashSet<NodeId>,
    confirmed: &std::collections::HashMap<String, f64>,
) -> Vec<Scored> {
    let located: Vec<(usize, NodeId)> = symptoms
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.node.map(|n| (i, n)))
        .collect();
    if located.is_empty() {
        return Vec::new();
    }
    let mut core: Vec<(usize, NodeId)> = located
        .iter()
        .copied()
        .filter(|(_, n)| !shared.contains(n))
        .collect();
    let only_shared = core.is_empty();
    if only_shared {
        core = located.clone();
    } else {
        // Traffic on a shared dataset that the streams in the incident cannot account for
        // (its deficit or excess far beyond theirs together) has a cause above all of them:
        // it must be explained too.
        let gap = |i: usize| {
            let s = &symptoms[i].symptom;
            match (s.check_type.as_str(), s.observed, s.expected) {
                ("volume", Some(o), Some(e)) => (o - e).abs(),
                _ => 0.0,
            }
        };
        let streams: f64 = core.iter().map(|&(i, _)| gap(i)).sum();
        let wide: Vec<(usize, NodeId)> = located
            .iter()
            .copied()
            .filter(|&(i, n)| shared.contains(&n) && gap(i) > 2.0 * streams.max(1.0))
            .collect();
        core.extend(wide);
    }
    let core_nodes: HashSet<NodeId> = core.iter().map(|(_, n)| *n).collect();
    // Each candidate with its distance to each core symptom node it reaches.
    let mut reach: FxHashMap<NodeId, FxHashMap<NodeId, u32>> = FxHashMap::default();
    for &n in &core_nodes {
        reach.entry(n).or_default().insert(n, 0);
        for (a, d) in t.ancestors(n, MAX_DEPTH) {
            reach.entry(a).or_default().insert(n, d);
        }
    }
    // A referential symptom is also reached through the dataset its keys point into.
    for &(i, n) in &core {
        let Some(r) = symptoms[i].related else {
            continue;
        };
        let via = std::iter::once((r, 0)).chain(t.ancestors(r, MAX_DEPTH));
        for (a, d) in via {
            let e = reach.entry(a).or_default().entry(n).or_insert(d + 1);
            *e = (*e).min(d + 1);
        }
    }
    // A shared dataset is not a cause of its own: its cause is upstream of it.
    if !only_shared {
        reach.retain(|n, _| !shared.contains(n));
    } else {
        reach.retain(|n, _| !shared.contains(n) || core_nodes.len() > 1);
        if reach.is_empty() {
            for &n in &core_nodes {
                reach.entry(n).or_default().insert(n, 0);
            }
        }
    }
    let failing: HashMap<NodeId, Vec<usize>> = {
        let mut m: HashMap<NodeId, Vec<usize>> = HashMap::new();
        for &(i, n) in &located {
            m.entry(n).or_default().push(i);
        }
        m
    };
    let first = symptoms
        .iter()
        .map(|s| s.symptom.data_start)
        .min()
        .expect("symptoms");
    let last = symptoms
        .iter()
        .map(|s| s.symptom.data_start)
        .max()
        .expect("symptoms");
    let span = (last - first).num_seconds().max(1) as f64;
    let max_evidence = failing
        .values()
        .map(|is| {
            is.iter()
                .map(|&i| severity_weight(symptoms[i].symptom.severity))
                .sum::<f64>()
        })
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let mut out = Vec::new();
    for (&cand, reached) in &reach {
        if !t.is_flow(cand) {
            continue;
        }
        let coverage = reached.len() as f64 / core_nodes.len() as f64;
        let own = failing.get(&cand);
        let is_failing = own.is_some();
        let position = if is_failing {
            // No other failing node upstream of this one.
            let above = t
                .ancestors(cand, MAX_DEPTH)
                .iter()
                .any(|(a, _)| failing.contains_key(a) && !shared.contains(a));
            if above {
                0.0
            } else {
                1.0
            }
        } else {
            let mean = reached.values().map(|&d| d as f64).sum::<f64>() / reached.len() as f64;
            1.0 / (1.0 + mean)
        };
        let precedence = match own {
            Some(is) => {
                let start = is
                    .iter()
                    .map(|&i| symptoms[i].symptom.data_start)
                    .min()
                    .expect("own symptoms");
                1.0 - (start - first).num_seconds() as f64 / span
            }
            None => 0.0,
        };
        let evidence = own
            .map(|is| {
                is.iter()
                    .map(|&i| severity_weight(symptoms[i].symptom.severity))
                    .sum::<f64>()
                    / max_evidence
            })
            .unwrap_or(0.0);
        let codes = own
            .map(|is| {
                let coded = is.iter().any(|&i| {
                    let f = &symptoms[i].features;
                    f.iter()
                        .any(|x| x.starts_with("reason:") || x == "pipeline:failed")
                });
                if coded {
                    1.0
                } else {
                    0.0
                }
            })
            .unwrap_or(0.0);
        let mechanism = if t.node(cand).kind == origin_kind(class) {
            1.0
        } else {
            0.0
        };
        // Operators named it the root cause of incidents like this one before. Weighed so that
        // a node they named every time outranks what the structure alone prefers (grounded
        // candidates' scores spread over about half a point); split corrections weigh less.
        let learned = confirmed
            .get(&t.node(cand).key)
            .copied()
            .unwrap_or(0.0)
            .clamp(0.0, 1.0);
        let score = 0.40 * coverage
            + 0.20 * f64::from(u8::from(is_failing))
            + 0.15 * position
            + 0.08 * precedence
            + 0.07 * evidence
            + 0.05 * codes
            + 0.10 * mechanism
            + 0.60 * learned;
        let mut factors = BTreeMap::new();
        for (k, v) in [
            ("coverage", coverage),
            ("failing", f64::from(u8::from(is_failing))),
            ("position", position),
            ("precedence", precedence),
            ("evidence", evidence),
            ("codes", codes),
            ("mechanism", mechanism),
            ("confirmed", learned),
        ] {
            factors.insert(k.to_string(), (v * 1000.0).round() / 1000.0);
        }
        let covers: Vec<usize> = located
            .iter()
            .filter(|(_, n)| reached.contains_key(n) || shared.contains(n))
            .map(|(i, _)| *i)
            .collect();
        out.push(Scored {
            node: cand,
            score: (score * 1000.0).round() / 1000.0,
            grounded: coverage >= 1.0,
            factors,
            covers,
        });
    }
    out.sort_by(|a, b| {
        b.grounded
            .cmp(&a.grounded)
            .then(b.score.total_cmp(&a.score))
            .then(t.node(a.node).key.cmp(&t.node(b.node).key))
    });
    out.truncate(TOP);
    out
}

/// The paths from `cand` to each symptom it explains (through the ingest job for shared
/// datasets).
pub fn paths(
    t: &Topology,
    cand: NodeId,
    symptoms: &[Observed],
    shared: &HashSet<NodeId>,
) -> Vec<SymptomPath> {
    let mut out = Vec::new();
    let mut done: HashSet<(NodeId, String)> = HashSet::new();
    for s in symptoms {
        let Some(n) = s.node else { continue };
        if !done.insert((n, s.symptom.check.clone())) {
            continue;
        }
        let referenced = || {
            let r = s.related?;
            let mut steps = t.path(cand, r, MAX_DEPTH)?;
            steps.push((r, n, "references"));
            Some(steps)
        };
        let route = t.path(cand, n, MAX_DEPTH).or_else(referenced).or_else(|| {
            // A shared dataset: from the job that writes it, when the candidate is upstream
            // of that job or below it.
            if !shared.contains(&n) {
                return None;
            }
            let writer = t.ancestors(n, 1).into_iter().map(|(w, _)| w).next()?;
            t.path(writer, n, 1)
        });
        let Some(route) = route else { continue };
        out.push(SymptomPath {
            symptom: s.symptom.check.clone(),
            node: s.symptom.node.clone(),
            steps: route
                .into_iter()
                .map(|(a, b, k)| PathStep {
                    from: node_ref(t, a),
                    to: node_ref(t, b),
                    edge: k.to_string(),
                })
                .collect(),
        });
    }
    out
}

/// Turns scored candidates into root causes; `mechanism` describes each candidate's class.
pub fn to_root_causes(
    t: &Topology,
    scored: &[Scored],
    symptoms: &[Observed],
    shared: &HashSet<NodeId>,
    class_of: impl Fn(&Scored) -> IncidentClass,
) -> Vec<RootCause> {
    scored
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let class = class_of(s);
            let n = t.node(s.node);
            let own = symptoms.iter().filter(|x| x.node == Some(s.node)).count();
            let mechanism = if own > 0 {
                format!(
                    "{} at {} {} ({} symptom(s) of its own, reaches {} of {})",
                    class,
                    n.kind,
                    n.name,
                    own,
                    s.covers.len(),
                    symptoms.len()
                )
            } else {
                format!(
                    "{} upstream at {} {} (no symptom of its own; reaches {} of {})",
                    class,
                    n.kind,
                    n.name,
                    s.covers.len(),
                    symptoms.len()
                )
            };
            RootCause {
                rank: i as u32 + 1,
                node: node_ref(t, s.node),
                class,
                mechanism,
                score: s.score,
                grounded: s.grounded,
                factors: s.factors.clone(),
                paths: paths(t, s.node, symptoms, shared),
            }
        })
        .collect()
}
