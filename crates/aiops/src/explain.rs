//! The deterministic explanation: every sentence is built from the incident's own evidence
//! (symptoms with their numbers and samples, the root-cause path, the blast radius, the
//! classifier's confidence, the runner-up's score), so it is the same on every run and
//! never says more than the data shows.

use heal_model::incident::{
    AffectedAsset, Classification, Explanation, RootCause, Symptom, SymptomPath,
};
use std::fmt::Write;

fn num(x: f64) -> String {
    if x.abs() >= 100.0 || x.fract() == 0.0 {
        format!("{x:.0}")
    } else if x.abs() >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.4}")
    }
}

/// One line of evidence for a symptom: what failed, by how much, against what.
pub fn evidence_line(s: &Symptom) -> String {
    let mut line = format!(
        "{} ({}) on {}: {}",
        s.check, s.check_type, s.node.name, s.message
    );
    match (s.observed, s.expected, s.lower, s.upper) {
        (Some(o), Some(e), lo, hi) => {
            let _ = write!(line, "; observed {} vs expected {}", num(o), num(e));
            if let (Some(lo), Some(hi)) = (lo, hi) {
                let _ = write!(line, " (band {} .. {})", num(lo), num(hi));
            }
        }
        (Some(o), None, _, _) => {
            let _ = write!(line, "; observed {}", num(o));
        }
        _ => {}
    }
    if !s.threshold.is_empty() {
        let _ = write!(line, "; rule: {}", s.threshold);
    }
    if !s.reasons.is_empty() {
        let codes: Vec<String> = s.reasons.iter().map(|(r, n)| format!("{r} ×{n}")).collect();
        let _ = write!(line, "; reason codes: {}", codes.join(", "));
    }
    let keys: Vec<String> = s
        .sample
        .iter()
        .take(3)
        .filter_map(|v| {
            ["event_id", "order_id", "payment_id", "key", "run_id", "id"]
                .iter()
                .find_map(|k| {
                    v.get(*k).filter(|x| !x.is_null()).map(|x| {
                        format!(
                            "{k}={}",
                            x.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| x.to_string())
                        )
                    })
                })
        })
        .collect();
    if !keys.is_empty() {
        let _ = write!(line, "; sample: {}", keys.join(", "));
    }
    let _ = write!(
        line,
        " [data {} .. {}]",
        s.data_start.format("%Y-%m-%d %H:%M"),
        s.data_end.format("%Y-%m-%d %H:%M")
    );
    line
}

/// `a → b (job) → c`.
pub fn render_path(p: &SymptomPath) -> String {
    if p.steps.is_empty() {
        return format!("{} itself", p.node.name);
    }
    let mut s = format!("{} ({})", p.steps[0].from.name, p.steps[0].from.kind);
    for step in &p.steps {
        let _ = write!(s, " -{}-> {} ({})", step.edge, step.to.name, step.to.kind);
    }
    s
}

pub fn explain(
    symptoms: &[Symptom],
    causes: &[RootCause],
    classification: &Classification,
    affected: &[AffectedAsset],
) -> Explanation {
    let since = symptoms
        .iter()
        .map(|s| s.data_start)
        .min()
        .unwrap_or_else(chrono::Utc::now);
    let top = causes.first();
    let summary = match top {
        Some(c) => format!(
            "{} at {} {}: {} symptom(s) on {} node(s) since {} (data time)",
            classification.class,
            c.node.kind,
            c.node.name,
            symptoms.len(),
            {
                let mut nodes: Vec<&str> = symptoms.iter().map(|s| s.node.name.as_str()).collect();
                nodes.sort();
                nodes.dedup();
                nodes.len()
            },
            since.format("%Y-%m-%d %H:%M UTC")
        ),
        None => format!(
            "{}: {} symptom(s) on nodes lineage does not know, since {}",
            classification.class,
            symptoms.len(),
            since.format("%Y-%m-%d %H:%M UTC")
        ),
    };
    let evidence: Vec<String> = symptoms.iter().map(evidence_line).collect();
    let origin = match top {
        Some(c) => {
            let mut o = format!(
                "{} {} (score {:.2}{}): {}",
                c.node.kind,
                c.node.name,
                c.score,
                if c.grounded {
                    ", a lineage path reaches every symptom"
                } else {
                    "; NOT grounded: no lineage path reaches every symptom"
                },
                c.mechanism
            );
            for p in &c.paths {
                let _ = write!(o, "\n    to {}: {}", p.symptom, render_path(p));
            }
            o
        }
        None => "unknown: none of the symptoms' nodes is in the lineage graph".into(),
    };
    let kpis: Vec<String> = affected
        .iter()
        .filter(|a| a.node.kind == "kpi")
        .map(|a| match &a.criticality {
            Some(c) => format!("{} ({c})", a.node.name),
            None => a.node.name.clone(),
        })
        .collect();
    let count = |k: &str| affected.iter().filter(|a| a.node.kind == k).count();
    let impact = format!(
        "{} downstream dataset(s), {} job(s), {} check(s); KPIs at risk: {}",
        count("dataset"),
        count("job"),
        count("check"),
        if kpis.is_empty() {
            "none".to_string()
        } else {
            kpis.join(", ")
        }
    );
    let second = classification
        .scores
        .get(1)
        .map(|(c, p)| format!(", next {c} {p:.2}"))
        .unwrap_or_default();
    let confidence = format!(
        "class {} with probability {:.2}{}{}",
        classification.class,
        classification.confidence,
        second,
        if classification.low_confidence {
            ": LOW confidence, a person should confirm"
        } else {
            ""
        }
    );
    let runner_up = match (top, causes.get(1)) {
        (Some(a), Some(b)) => {
            let mut why = Vec::new();
            for (k, va) in &a.factors {
                let vb = b.factors.get(k).copied().unwrap_or(0.0);
                if va - vb > 0.05 {
                    why.push(format!("{k} {vb:.2} < {va:.2}"));
                }
            }
            if !b.grounded && a.grounded {
                why.insert(0, "no lineage path to every symptom".into());
            }
            Some(format!(
                "{} {} scored {:.2} against {:.2}: {}",
                b.node.kind,
                b.node.name,
                b.score,
                a.score,
                if why.is_empty() {
                    "a near tie".to_string()
                } else {
                    why.join(", ")
                }
            ))
        }
        _ => None,
    };
    let mut text = format!("{summary}\n\nWhat is wrong:\n");
    for e in &evidence {
        let _ = writeln!(text, "  - {e}");
    }
    let _ = writeln!(text, "\nWhere it started: {origin}");
    let _ = writeln!(text, "\nWhat it affects: {impact}");
    let _ = writeln!(text, "\nConfidence: {confidence}");
    if let Some(r) = &runner_up {
        let _ = writeln!(text, "\nRunner-up: {r}");
    }
    Explanation {
        summary,
        evidence,
        since,
        origin,
        impact,
        confidence,
        runner_up,
        text,
        prose: None,
    }
}
