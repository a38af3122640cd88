//! The engine: failure events in, incident messages out. Pure and synchronous (no I/O), so
//! the role, `heal eval` and the benchmark drive the same code.
//!
//! Correlation, in data time: a failure joins an open incident when their data-time spans are
//! within `window` of each other and they are connected — the failure's node is within
//! `max_hops` up- or downstream of one of the incident's nodes, or both come from the same
//! source stream (the first datasets below the sources, found in lineage), or they are
//! siblings showing the same family of symptom (traffic, refusals, job runs) as a common
//! upstream cause does. Failures on shared datasets (every stream passes through them: the
//! all-events table, the quarantine) wait one `window` so that the stream-specific failures of
//! the same moment arrive first, then join the incident of their family that overlaps them most.
//! The same condition always updates its incident. An incident resolves once every condition
//! in it has resolved and `resolve_after` of data time has passed without a new failure; a
//! later failure with the same fingerprint opens a new incident linked to it.

use crate::classify::{Classifier, Label};
use crate::explain;
use crate::remedy::{self, Evidence, SuccessTable};
use crate::rootcause::{self, node_ref};
use crate::symptom::{observe, Observed};
use crate::topology::{NodeId, Topology};
use chrono::{DateTime, Duration, Utc};
use heal_model::incident::{
    AffectedAsset, Incident, IncidentChange, IncidentClass, IncidentMessage, IncidentStatus,
    NodeRef,
};
use heal_model::quality::{ConditionChange, FailureEvent};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// The engine's rules.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How far apart in data time two failures may be and still be one incident.
    pub window: Duration,
    /// How many lineage hops apart two failures may be and still be one incident.
    pub max_hops: u32,
    /// Datasets every stream passes through (by name).
    pub shared_datasets: Vec<String>,
    /// Data time without a new failure, after every condition resolved, before the incident
    /// resolves.
    pub resolve_after: Duration,
    /// How long after a resolution the same fingerprint counts as a recurrence.
    pub recurrence_window: Duration,
    /// Classifier confidence under which a decision says it is unsure.
    pub low_confidence: f64,
    /// How many incidents one operator label counts as.
    pub feedback_weight: f64,
    /// Weight of a consequence's features against the root cause's in classification.
    pub consequence_weight: f64,
    /// Resolved incidents kept in memory (for the API); the store keeps all of them.
    pub keep_resolved: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            window: Duration::hours(2),
            max_hops: 6,
            shared_datasets: vec!["raw_events".into(), "quarantine".into()],
            resolve_after: Duration::hours(6),
            recurrence_window: Duration::days(7),
            low_confidence: 0.6,
            feedback_weight: 5.0,
            consequence_weight: 0.5,
            keep_resolved: 1000,
        }
    }
}

/// The family of a symptom: what kind of upstream cause makes siblings show it together.
fn family(o: &Observed) -> &'static str {
    let t = o.symptom.check_type.as_str();
    match t {
        "volume" | "freshness" => "traffic",
        "schema" => "refusals",
        "pipeline" if o.features.contains("pipeline:quarantine_rate") => "refusals",
        "pipeline" | crate::symptom::INFRASTRUCTURE => "jobs",
        "validity" if o.features.iter().any(|f| f.starts_with("reason:")) => "refusals",
        "uniqueness" => "duplicates",
        "distribution" => "values",
        _ => "other",
    }
}

struct Held {
    incident: Incident,
    observed: Vec<Observed>,
    nodes: HashSet<NodeId>,
    /// Nodes with a failed or late job run among the symptoms, and nodes with any other.
    job_runs: HashSet<NodeId>,
    data_nodes: HashSet<NodeId>,
    /// Source streams of the symptoms that are not job runs.
    streams: BTreeSet<NodeId>,
    /// Datasets the referential symptoms point into.
    related: HashSet<NodeId>,
    families: BTreeSet<&'static str>,
    /// condition id → index in `observed`.
    conditions: HashMap<i64, usize>,
    all_resolved_at: Option<DateTime<Utc>>,
    /// True while only shared-dataset failures are in it.
    only_shared: bool,
}

impl Held {
    /// An incident with no failure in it yet.
    fn new(incident: Incident) -> Held {
        Held {
            incident,
            observed: Vec::new(),
            nodes: HashSet::new(),
            job_runs: HashSet::new(),
            data_nodes: HashSet::new(),
            streams: BTreeSet::new(),
            related: HashSet::new(),
            families: BTreeSet::new(),
            conditions: HashMap::new(),
            all_resolved_at: None,
            only_shared: true,
        }
    }

    /// Takes in a failure (`streams`: its node's source streams).
    fn absorb(&mut self, o: Observed, streams: &BTreeSet<NodeId>, shared: bool) {
        let fam = family(&o);
        if let Some(n) = o.node {
            self.nodes.insert(n);
            if fam == "jobs" {
                self.job_runs.insert(n);
            } else {
                self.data_nodes.insert(n);
                self.streams.extend(streams.iter().copied());
            }
        }
        if let Some(r) = o.related {
            self.related.insert(r);
        }
        self.families.insert(fam);
        self.only_shared &= shared;
        self.conditions
            .insert(o.symptom.condition_id, self.observed.len());
        self.observed.push(o);
    }
}

/// A failure's node, how far lineage may link it, and its source streams.
#[derive(Default)]
struct Near {
    node: Option<NodeId>,
    max_hops: u32,
    streams: BTreeSet<NodeId>,
}

impl Near {
    /// Hops from `x` down to the failure's node (`x` upstream of it). Searches go upstream,
    /// where lineage fans out least, and stop at the first hit.
    fn hops_from(&self, t: &Topology, x: NodeId) -> Option<u32> {
        t.path(x, self.node?, self.max_hops).map(|p| p.len() as u32)
    }

    /// Hops from the failure's node down to `x`.
    fn hops_to(&self, t: &Topology, x: NodeId) -> Option<u32> {
        t.path(self.node?, x, self.max_hops).map(|p| p.len() as u32)
    }
}

/// A shared-dataset failure waiting for the stream failures of its moment.
struct Pending {
    observed: Observed,
    due: DateTime<Utc>,
}

/// Counters the role exports as metrics.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    pub failure_events: u64,
    pub incidents_opened: u64,
    pub incidents_resolved: u64,
    pub ignored_resolutions: u64,
}

pub struct Engine {
    settings: Settings,
    topology: Arc<Topology>,
    shared: HashSet<NodeId>,
    /// Per node: a (non-shared) dataset lies somewhere upstream of it.
    data_above: Vec<bool>,
    classifier: Classifier,
    remedies: SuccessTable,
    /// Operators' root-cause corrections: per class and symptom node (key), how often each
    /// node (key) was named the root cause.
    root_causes: HashMap<(IncidentClass, String), HashMap<String, f64>>,
    open: Vec<Held>,
    pending: Vec<Pending>,
    resolved: VecDeque<Incident>,
    /// fingerprint → (incident id, data time it resolved).
    last_resolved: HashMap<String, (String, DateTime<Utc>)>,
    clock: Option<DateTime<Utc>>,
    stats: Stats,
}

fn fnv(s: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

impl Engine {
    pub fn new(settings: Settings, topology: Arc<Topology>) -> Engine {
        let classifier = Classifier::with_priors(settings.low_confidence);
        let mut e = Engine {
            settings,
            topology: Arc::new(Topology::default()),
            shared: HashSet::new(),
            data_above: Vec::new(),
            classifier,
            remedies: SuccessTable::with_priors(),
            root_causes: HashMap::new(),
            open: Vec::new(),
            pending: Vec::new(),
            resolved: VecDeque::new(),
            last_resolved: HashMap::new(),
            clock: None,
            stats: Stats::default(),
        };
        e.replace_topology(topology);
        e
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Replaces the graph (a new lineage snapshot): open incidents find their nodes again by
    /// key (or name, for those the old graph did not know) and are ranked again; returns an
    /// update for each whose top root cause changed.
    pub fn set_topology(&mut self, topology: Arc<Topology>) -> Vec<IncidentMessage> {
        let before: Vec<Option<String>> = self
            .open
            .iter()
            .map(|h| h.incident.root_causes.first().map(|c| c.node.key.clone()))
            .collect();
        if !self.replace_topology(topology) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (i, was) in before.into_iter().enumerate() {
            self.rebuild(i);
            let now = self.open[i]
                .incident
                .root_causes
                .first()
                .map(|c| c.node.key.clone());
            if now != was {
                out.push(IncidentMessage::new(
                    IncidentChange::Updated,
                    self.open[i].incident.clone(),
                ));
            }
        }
        out
    }

    /// Swaps the graph in; false when it is the same one.
    fn replace_topology(&mut self, topology: Arc<Topology>) -> bool {
        self.shared = self
            .settings
            .shared_datasets
            .iter()
            .filter_map(|n| topology.find("dataset", n))
            .collect();
        self.data_above = topology.data_above(&self.shared);
        let old = std::mem::replace(&mut self.topology, topology);
        if Arc::ptr_eq(&old, &self.topology) {
            return false;
        }
        // Node ids are the new graph's: resolve every symptom again by key.
        let t = self.topology.clone();
        for i in 0..self.open.len() {
            let observed = std::mem::take(&mut self.open[i].observed);
            {
                let h = &mut self.open[i];
                h.nodes.clear();
                h.job_runs.clear();
                h.data_nodes.clear();
                h.streams.clear();
                h.related.clear();
                h.families.clear();
                h.conditions.clear();
                h.only_shared = true;
            }
            for mut o in observed {
                o.node = t.by_key(&o.symptom.node.key).or_else(|| {
                    crate::symptom::find_node(&t, &o.symptom.node.kind, &o.symptom.node.name)
                });
                if let Some(n) = o.node {
                    o.symptom.node = crate::rootcause::node_ref(&t, n);
                }
                o.related = crate::symptom::related_node(&t, &o.symptom);
                let streams = o.node.map(|n| self.streams_of(n)).unwrap_or_default();
                let shared = self.is_shared(&o);
                self.open[i].absorb(o, &streams, shared);
            }
        }
        for p in &mut self.pending {
            let o = &mut p.observed;
            o.node = t.by_key(&o.symptom.node.key).or_else(|| {
                crate::symptom::find_node(&t, &o.symptom.node.kind, &o.symptom.node.name)
            });
            if let Some(n) = o.node {
                o.symptom.node = crate::rootcause::node_ref(&t, n);
            }
            o.related = crate::symptom::related_node(&t, &o.symptom);
        }
        true
    }

    pub fn topology(&self) -> &Arc<Topology> {
        &self.topology
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// Learns from a labelled incident's features.
    pub fn learn(&mut self, features: Vec<String>, class: IncidentClass) {
        let weight = self.settings.feedback_weight;
        self.classifier.learn(&Label {
            features,
            class,
            weight,
        });
    }

    /// Records whether an action worked (it re-ranks later recommendations).
    pub fn record_outcome(&mut self, class: IncidentClass, action: &'static str, worked: bool) {
        self.remedies.record(class, action, worked);
    }

    /// Records an operator's correction: the root cause of an incident of `class` whose
    /// symptoms sat on `symptom_nodes` (lineage keys) was `root` (a lineage key). Later
    /// incidents of that class on those nodes rank it higher.
    pub fn record_root_cause(
        &mut self,
        class: IncidentClass,
        symptom_nodes: &[String],
        root: &str,
    ) {
        let nodes: HashSet<&String> = symptom_nodes.iter().collect();
        for n in nodes {
            *self
                .root_causes
                .entry((class, n.clone()))
                .or_default()
                .entry(root.to_string())
                .or_default() += 1.0;
        }
    }

    /// Per node key, the share of operators' corrections that named it the root cause of
    /// incidents of `class` on these symptom nodes (averaged over the nodes with any).
    fn confirmed(&self, class: IncidentClass, symptom_nodes: &[String]) -> HashMap<String, f64> {
        let mut out: HashMap<String, f64> = HashMap::new();
        let seen: Vec<&HashMap<String, f64>> = symptom_nodes
            .iter()
            .collect::<HashSet<_>>()
            .into_iter()
            .filter_map(|n| self.root_causes.get(&(class, n.clone())))
            .collect();
        for named in &seen {
            let total: f64 = named.values().sum();
            for (root, n) in named.iter() {
                *out.entry(root.clone()).or_default() += n / total / seen.len() as f64;
            }
        }
        out
    }

    /// Every incident held: open ones first, then the most recently resolved.
    pub fn incidents(&self) -> Vec<&Incident> {
        self.open
            .iter()
            .map(|h| &h.incident)
            .chain(self.resolved.iter().rev())
            .collect()
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Takes back an incident the store kept (at start), so its conditions keep updating it.
    pub fn restore(&mut self, incident: Incident) {
        if incident.status == IncidentStatus::Resolved {
            if incident.resolved_at.is_some() {
                self.last_resolved.insert(
                    incident.fingerprint.clone(),
                    (incident.id.clone(), incident.data_end),
                );
            }
            self.resolved.push_back(incident);
            while self.resolved.len() > self.settings.keep_resolved {
                self.resolved.pop_front();
            }
            return;
        }
        let t = self.topology.clone();
        let observed: Vec<Observed> = incident
            .symptoms
            .iter()
            .map(|s| Observed {
                symptom: s.clone(),
                node: t.by_key(&s.node.key),
                related: crate::symptom::related_node(&t, s),
                features: incident.classification.features.iter().cloned().collect(),
            })
            .collect();
        let mut h = Held::new(incident);
        for o in observed {
            let streams = o.node.map(|n| self.streams_of(n)).unwrap_or_default();
            let shared = self.is_shared(&o);
            h.absorb(o, &streams, shared);
        }
        self.open.push(h);
    }

    /// The source streams of a node: the first datasets below the sources among the node
    /// and its ancestors, shared ones excepted. Empty for sources, ingest and shared datasets.
    fn streams_of(&self, n: NodeId) -> BTreeSet<NodeId> {
        let t = &self.topology;
        let is_source = |c: NodeId| {
            t.node(c).kind == "dataset" && !self.shared.contains(&c) && !self.data_above[c]
        };
        t.ancestors(n, rootcause::MAX_DEPTH)
            .into_iter()
            .map(|(a, _)| a)
            .chain(std::iter::once(n))
            .filter(|&c| is_source(c))
            .collect()
    }

    fn is_shared(&self, o: &Observed) -> bool {
        match o.node {
            Some(n) => self.shared.contains(&n),
            None => false,
        }
    }

    /// Sets the prose rewrite of an incident's explanation.
    pub fn set_prose(&mut self, id: &str, prose: String) -> Option<IncidentMessage> {
        let inc = self
            .open
            .iter_mut()
            .map(|h| &mut h.incident)
            .chain(self.resolved.iter_mut())
            .find(|i| i.id == id)?;
        inc.explanation.prose = Some(prose);
        inc.updated_at = Utc::now();
        Some(IncidentMessage::new(IncidentChange::Updated, inc.clone()))
    }

    /// Folds one failure event in; returns the incident messages it causes.
    pub fn ingest(&mut self, e: &FailureEvent) -> Vec<IncidentMessage> {
        self.stats.failure_events += 1;
        let o = observe(e, &self.topology);
        let mut out = Vec::new();
        // Only a failure moves the data clock: a resolution may carry no data time of its own
        // (an incremental check that saw nothing), and then its span is wall-clock time.
        let data_end = match e.change {
            ConditionChange::Resolved => self.clock.unwrap_or(o.symptom.data_start),
            _ => o.symptom.data_end,
        };
        match e.change {
            ConditionChange::Resolved => out.extend(self.resolve_condition(&o)),
            ConditionChange::Opened | ConditionChange::Escalated => {
                if let Some(i) = self.held_with_condition(e.condition_id) {
                    out.extend(self.update_symptom(i, o));
                } else if self.is_shared(&o) || o.related.is_some() {
                    // Shared datasets and orphans wait one window: what the stream-specific
                    // and parent-side failures of the same moment show decides where they go.
                    let due = o.symptom.data_end + self.settings.window;
                    match self
                        .pending
                        .iter_mut()
                        .find(|p| p.observed.symptom.condition_id == e.condition_id)
                    {
                        Some(p) => p.observed = o,
                        None => self.pending.push(Pending { observed: o, due }),
                    }
                } else {
                    out.extend(self.place(o));
                }
            }
        }
        out.extend(self.advance(data_end));
        out
    }

    fn held_with_condition(&self, condition: i64) -> Option<usize> {
        self.open
            .iter()
            .position(|h| h.conditions.contains_key(&condition))
    }

    fn resolve_condition(&mut self, o: &Observed) -> Vec<IncidentMessage> {
        let cond = o.symptom.condition_id;
        if let Some(p) = self
            .pending
            .iter()
            .position(|p| p.observed.symptom.condition_id == cond)
        {
            self.pending[p].observed.symptom.active = false;
            return Vec::new();
        }
        let Some(i) = self.held_with_condition(cond) else {
            self.stats.ignored_resolutions += 1;
            return Vec::new();
        };
        let h = &mut self.open[i];
        let k = h.conditions[&cond];
        h.observed[k].symptom.active = false;
        h.incident.failure_events += 1;
        if h.observed.iter().all(|x| !x.symptom.active) {
            // The quiet period starts when the resolution is known: evidence (late data, a
            // re-judged window) can arrive well after the data time it concerns.
            let last = h
                .observed
                .iter()
                .map(|x| x.symptom.data_end)
                .max()
                .unwrap_or(o.symptom.data_end)
                .max(self.clock.unwrap_or(o.symptom.data_end));
            h.all_resolved_at = Some(last);
        }
        self.rebuild(i);
        vec![IncidentMessage::new(
            IncidentChange::Updated,
            self.open[i].incident.clone(),
        )]
    }

    fn update_symptom(&mut self, i: usize, o: Observed) -> Vec<IncidentMessage> {
        let h = &mut self.open[i];
        let k = h.conditions[&o.symptom.condition_id];
        h.observed[k] = o;
        h.all_resolved_at = None;
        h.incident.failure_events += 1;
        self.rebuild(i);
        vec![IncidentMessage::new(
            IncidentChange::Updated,
            self.open[i].incident.clone(),
        )]
    }

    /// How strongly `o` belongs with held incident `h` (None: not at all).
    fn relation(&self, o: &Observed, near: &Near, h: &Held) -> Option<f64> {
        let s = &o.symptom;
        let widest = self.settings.resolve_after.max(self.settings.window);
        if s.data_start > h.incident.data_end + widest
            || s.data_end + widest < h.incident.data_start
        {
            return None;
        }
        // The same check on the same node again, while the incident waits to resolve: the
        // same ongoing problem.
        let again = h
            .observed
            .iter()
            .any(|x| x.symptom.check == s.check && x.symptom.node.key == s.node.key);
        let w = if again {
            self.settings.resolve_after.max(self.settings.window)
        } else {
            self.settings.window
        };
        if s.data_start > h.incident.data_end + w || s.data_end + w < h.incident.data_start {
            return None;
        }
        let fam = family(o);
        let shared = self.is_shared(o);
        let job_run = fam == "jobs";
        let mut best: Option<f64> = None;
        let mut bump = |v: f64| best = Some(best.map_or(v, |b: f64| b.max(v)));
        if again {
            bump(3.0);
        }
        // A referential failure and the dataset its keys point into.
        if o.related.is_some_and(|r| h.nodes.contains(&r))
            || o.node.is_some_and(|n| h.related.contains(&n))
        {
            bump(2.9);
        }
        if o.node.is_some() && !shared && !h.only_shared {
            // A failure downstream of the incident's nodes is a consequence of them; one
            // upstream may be their cause. A failed or late job run is only ever a cause: it
            // takes in what is downstream of it, never what is upstream.
            for x in &h.nodes {
                if Some(*x) == o.node {
                    bump(3.0);
                } else if let Some(d) = near.hops_from(&self.topology, *x) {
                    // A stopped job or store holds data back; it never makes producers send
                    // refused or repeated events.
                    let stopped = h.job_runs.contains(x) && !h.data_nodes.contains(x);
                    let caused = !stopped || !matches!(fam, "refusals" | "duplicates");
                    if !job_run && caused {
                        bump(3.0 - 0.1 * f64::from(d));
                    }
                } else if let Some(d) = near.hops_to(&self.topology, *x) {
                    if !h.job_runs.contains(x) || h.data_nodes.contains(x) {
                        bump(3.0 - 0.1 * f64::from(d));
                    }
                }
            }
            if !job_run
                && !near.streams.is_empty()
                && near.streams.intersection(&h.streams).next().is_some()
            {
                bump(2.0);
            }
        }
        // Orphans whose parent stream is losing traffic: the traffic incident explains them
        // when its cause is upstream of the parent.
        if let (Some(r), true) = (o.related, h.families.contains("traffic")) {
            let t = &self.topology;
            let upstream = h
                .incident
                .root_causes
                .first()
                .and_then(|c| t.by_key(&c.node.key))
                .is_some_and(|c| {
                    c == r
                        || t.ancestors(r, rootcause::MAX_DEPTH)
                            .iter()
                            .any(|(a, _)| *a == c)
                });
            if upstream {
                bump(1.2);
            }
        }
        if shared {
            if h.families.contains(fam) {
                bump(1.5);
            }
        } else if h.families.contains(fam) && (fam == "traffic" || h.only_shared) {
            // Sibling streams losing or gaining traffic together share an upstream cause.
            bump(1.0);
        }
        // Overlap in time breaks ties.
        let overlap = (s.data_end.min(h.incident.data_end)
            - s.data_start.max(h.incident.data_start))
        .num_seconds()
        .max(0) as f64;
        best.map(|b| b + overlap.min(86_400.0) / 86_400.0 * 0.01)
    }

    /// Puts a new failure into the incident it belongs with, or opens one.
    fn place(&mut self, o: Observed) -> Vec<IncidentMessage> {
        let near = match o.node {
            Some(n) => Near {
                node: Some(n),
                max_hops: self.settings.max_hops,
                streams: self.streams_of(n),
            },
            None => Near::default(),
        };
        let mut best: Option<(usize, f64)> = None;
        for (i, h) in self.open.iter().enumerate() {
            if let Some(score) = self.relation(&o, &near, h) {
                if best.is_none_or(|(_, b)| score > b) {
                    best = Some((i, score));
                }
            }
        }
        match best {
            Some((i, _)) => {
                let shared = self.is_shared(&o);
                let h = &mut self.open[i];
                h.all_resolved_at = None;
                h.incident.failure_events += 1;
                h.absorb(o, &near.streams, shared);
                self.rebuild(i);
                vec![IncidentMessage::new(
                    IncidentChange::Updated,
                    self.open[i].incident.clone(),
                )]
            }
            None => self.open_incident(o, near.streams),
        }
    }

    fn open_incident(&mut self, o: Observed, streams: BTreeSet<NodeId>) -> Vec<IncidentMessage> {
        let t = self.topology.clone();
        let stream_names: Vec<&str> = if streams.is_empty() {
            vec!["*"]
        } else {
            streams.iter().map(|s| t.node(*s).name.as_str()).collect()
        };
        let fingerprint = fnv(&format!("{}|{}", stream_names.join(","), family(&o)));
        let previous = self
            .last_resolved
            .get(&fingerprint)
            .filter(|(_, at)| o.symptom.data_start - *at <= self.settings.recurrence_window)
            .map(|(id, _)| id.clone());
        let now = Utc::now();
        let placeholder = self.classifier.classify(&[]);
        let incident = Incident {
            id: uuid::Uuid::new_v4().to_string(),
            fingerprint,
            status: IncidentStatus::Open,
            severity: o.symptom.severity,
            title: String::new(),
            data_start: o.symptom.data_start,
            data_end: o.symptom.data_end,
            detected_at_data: o.symptom.data_end,
            opened_at: now,
            updated_at: now,
            resolved_at: None,
            previous,
            symptoms: Vec::new(),
            root_causes: Vec::new(),
            classification: placeholder.clone(),
            affected: Vec::new(),
            explanation: explain::explain(&[], &[], &placeholder, &[]),
            recommendations: Vec::new(),
            failure_events: 1,
        };
        let shared = self.is_shared(&o);
        let mut h = Held::new(incident);
        h.absorb(o, &streams, shared);
        self.open.push(h);
        let i = self.open.len() - 1;
        self.rebuild(i);
        self.stats.incidents_opened += 1;
        crate::metrics::incident_opened();
        vec![IncidentMessage::new(
            IncidentChange::Opened,
            self.open[i].incident.clone(),
        )]
    }

    /// Moves the data clock: places shared-dataset failures whose wait is over and resolves
    /// quiet incidents.
    pub fn advance(&mut self, now: DateTime<Utc>) -> Vec<IncidentMessage> {
        let clock = self.clock.map_or(now, |c| c.max(now));
        self.clock = Some(clock);
        let mut out = Vec::new();
        let (due, waiting): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.due <= clock);
        self.pending = waiting;
        out.extend(self.place_pending(due));
        let quiet = self.settings.resolve_after;
        let mut i = 0;
        while i < self.open.len() {
            let done = self.open[i]
                .all_resolved_at
                .is_some_and(|at| clock >= at + quiet);
            if done {
                out.push(self.close(i));
            } else {
                i += 1;
            }
        }
        out
    }

    /// End of input (a replay that finished): places every waiting failure and resolves
    /// every incident whose conditions all resolved.
    pub fn flush(&mut self) -> Vec<IncidentMessage> {
        let mut out = Vec::new();
        let all = std::mem::take(&mut self.pending);
        out.extend(self.place_pending(all));
        let mut i = 0;
        while i < self.open.len() {
            if self.open[i].all_resolved_at.is_some() {
                out.push(self.close(i));
            } else {
                i += 1;
            }
        }
        out
    }

    /// Places waiting failures: shared datasets first (they complete the picture of their
    /// moment), orphans last (their parent's incident may have just formed). A failure whose
    /// condition resolved while it waited is placed too, as resolved.
    fn place_pending(&mut self, mut due: Vec<Pending>) -> Vec<IncidentMessage> {
        due.sort_by_key(|p| (p.observed.related.is_some(), p.due));
        let mut out = Vec::new();
        for p in due {
            let active = p.observed.symptom.active;
            let cond = p.observed.symptom.condition_id;
            out.extend(self.place(p.observed));
            if !active {
                if let Some(i) = self.held_with_condition(cond) {
                    let clock = self.clock;
                    let h = &mut self.open[i];
                    if h.observed.iter().all(|x| !x.symptom.active) {
                        let last = h.observed.iter().map(|x| x.symptom.data_end).max();
                        h.all_resolved_at = last.max(clock);
                    }
                }
            }
        }
        out
    }

    fn close(&mut self, i: usize) -> IncidentMessage {
        let mut h = self.open.remove(i);
        h.incident.status = IncidentStatus::Resolved;
        let now = Utc::now();
        h.incident.resolved_at = Some(now);
        h.incident.updated_at = now;
        self.last_resolved.insert(
            h.incident.fingerprint.clone(),
            (
                h.incident.id.clone(),
                h.all_resolved_at.unwrap_or(h.incident.data_end),
            ),
        );
        self.stats.incidents_resolved += 1;
        let msg = IncidentMessage::new(IncidentChange::Resolved, h.incident.clone());
        self.resolved.push_back(h.incident);
        while self.resolved.len() > self.settings.keep_resolved {
            self.resolved.pop_front();
        }
        msg
    }

    fn weighted_features(&self, h: &Held, own: &HashSet<usize>) -> Vec<(String, f64)> {
        let mut best: HashMap<&str, f64> = HashMap::new();
        for (i, o) in h.observed.iter().enumerate() {
            let w = if own.is_empty() || own.contains(&i) {
                1.0
            } else {
                self.settings.consequence_weight
            };
            for f in &o.features {
                let e = best.entry(f.as_str()).or_insert(0.0);
                *e = e.max(w);
            }
        }
        let mut v: Vec<(String, f64)> = best.into_iter().map(|(f, w)| (f.to_string(), w)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Recomputes everything derived from an incident's symptoms.
    fn rebuild(&mut self, i: usize) {
        let t = self.topology.clone();
        let h = &self.open[i];
        // Classify on everything, rank with that class, then classify again with the top
        // candidate's own symptoms weighing more (and rank again if the class moved).
        let mut class = self
            .classifier
            .classify(&self.weighted_features(h, &HashSet::new()));
        let symptom_nodes: Vec<String> = h
            .observed
            .iter()
            .filter_map(|o| o.node.map(|n| t.node(n).key.clone()))
            .collect();
        let mut confirmed = self.confirmed(class.class, &symptom_nodes);
        let mut scored = rootcause::rank(&t, &h.observed, class.class, &self.shared, &confirmed);
        for _ in 0..2 {
            let own: HashSet<usize> = scored
                .first()
                .map(|top| {
                    h.observed
                        .iter()
                        .enumerate()
                        .filter(|(_, o)| o.node == Some(top.node))
                        .map(|(i, _)| i)
                        .collect()
                })
                .unwrap_or_default();
            let next = self.classifier.classify(&self.weighted_features(h, &own));
            let moved = next.class != class.class;
            class = next;
            if !moved {
                break;
            }
            confirmed = self.confirmed(class.class, &symptom_nodes);
            scored = rootcause::rank(&t, &h.observed, class.class, &self.shared, &confirmed);
        }
        let causes = rootcause::to_root_causes(&t, &scored, &h.observed, &self.shared, |s| {
            if std::ptr::eq(s, &scored[0]) {
                return class.class;
            }
            let feats: Vec<(String, f64)> = s
                .covers
                .iter()
                .flat_map(|&k| h.observed[k].features.iter().map(|f| (f.clone(), 1.0)))
                .collect();
            self.classifier.classify(&feats).class
        });
        let affected: Vec<AffectedAsset> = match scored.first() {
            Some(top) => {
                let mut a: Vec<AffectedAsset> = t
                    .reach_capped(top.node, 10, 500)
                    .into_iter()
                    .map(|(n, d)| AffectedAsset {
                        node: node_ref(&t, n),
                        distance: d,
                        criticality: t.node(n).criticality.clone(),
                    })
                    .collect();
                a.sort_by(|x, y| {
                    x.distance
                        .cmp(&y.distance)
                        .then(x.node.name.cmp(&y.node.name))
                });
                a.truncate(100);
                a
            }
            None => Vec::new(),
        };
        let symptoms: Vec<_> = h.observed.iter().map(|o| o.symptom.clone()).collect();
        let explanation = explain::explain(&symptoms, &causes, &class, &affected);
        let (root_kind, root_name, owner) = match scored.first() {
            Some(s) => {
                let n = t.node(s.node);
                (n.kind.clone(), n.name.clone(), n.owner.clone())
            }
            None => {
                let n = symptoms.first().map(|s| s.node.clone()).unwrap_or(NodeRef {
                    key: String::new(),
                    kind: "dataset".into(),
                    name: String::new(),
                });
                (n.kind, n.name, None)
            }
        };
        let data_start = symptoms
            .iter()
            .map(|s| s.data_start)
            .min()
            .expect("symptoms");
        let data_end = symptoms.iter().map(|s| s.data_end).max().expect("symptoms");
        let mut days: Vec<String> = Vec::new();
        let mut d = data_start.date_naive();
        while d <= data_end.date_naive() && days.len() < 60 {
            days.push(d.to_string());
            d += Duration::days(1);
        }
        let failed_partitions: Vec<String> = h
            .observed
            .iter()
            .filter(|o| {
                o.features.contains("pipeline:failed") || o.features.contains("pipeline:delayed")
            })
            .filter_map(|o| {
                o.symptom
                    .sample
                    .first()
                    .and_then(|s| s.get("day"))
                    .and_then(|d| d.as_str())
                    .map(str::to_string)
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let key: Vec<String> = h
            .observed
            .iter()
            .filter(|o| o.symptom.check_type == "uniqueness")
            .flat_map(|o| {
                o.symptom
                    .threshold
                    .split(|c: char| !c.is_alphanumeric() && c != '_')
            })
            .filter(|w| w.ends_with("_id"))
            .map(str::to_string)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let evidence = Evidence {
            class: class.class,
            root_kind: &root_kind,
            root_name: &root_name,
            root_owner: owner.as_deref(),
            downstream: affected
                .iter()
                .filter(|a| a.node.kind == "dataset")
                .map(|a| a.node.name.clone())
                .collect(),
            reasons: symptoms
                .iter()
                .flat_map(|s| s.reasons.keys().cloned())
                .collect(),
            details: symptoms
                .iter()
                .flat_map(|s| remedy::details(&s.sample))
                .collect(),
            days,
            failed_partitions,
            from: data_start.to_rfc3339(),
            to: data_end.to_rfc3339(),
            key,
        };
        let recommendations = remedy::recommend(&evidence, &self.remedies);
        let severity = symptoms.iter().map(|s| s.severity).max().expect("symptoms");
        let h = &mut self.open[i];
        let inc = &mut h.incident;
        inc.title = explanation.summary.clone();
        inc.severity = severity;
        inc.data_start = data_start;
        inc.data_end = data_end;
        inc.updated_at = Utc::now();
        inc.symptoms = symptoms;
        inc.root_causes = causes;
        inc.classification = class;
        inc.affected = affected;
        inc.explanation = explanation;
        inc.recommendations = recommendations;
    }
}

#[cfg(test)]
mod tests;
