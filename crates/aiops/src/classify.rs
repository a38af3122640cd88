//! The incident classifier: a naive-Bayes product of per-feature class distributions,
//! each a Dirichlet-smoothed count table. Rule priors seed the counts (so it decides well on
//! day one), and every labelled incident (scenario ground truth, an operator's correction)
//! adds its features to its class with a weight shared among them, so later decisions on
//! similar incidents move. Training is incremental: one labelled incident costs one update, no batch refit.
//!
//! Written here rather than taken from `linfa-bayes`: that crate trains in batch on dense
//! matrices and has no way to start from prior pseudo-counts, which is what a cold start
//! needs.

use heal_model::incident::{Classification, IncidentClass};
use std::collections::{BTreeSet, HashMap};

/// How strongly a rule prior counts, in labelled incidents.
pub const PRIOR_WEIGHT: f64 = 4.0;
/// Smoothing added to every (feature, class) count.
const ALPHA: f64 = 0.25;

/// The rules the classifier starts from: a feature and the class (or classes, sharing the
/// weight) it points to.
fn rules() -> Vec<(&'static str, Vec<IncidentClass>, f64)> {
    use IncidentClass as C;
    let one = |f: &'static str, c: IncidentClass| (f, vec![c], PRIOR_WEIGHT);
    let weak = |f: &'static str, cs: Vec<IncidentClass>| (f, cs, 1.0);
    let mut r = vec![
        one("reason:schema_drift", C::SchemaDrift),
        one("reason:unknown_schema_version", C::SchemaDrift),
        one("reason:invalid_schema_version", C::SchemaDrift),
        one("reason:unknown_event_type", C::SchemaDrift),
        one("reason:malformed_json", C::DataCorruption),
        one("reason:invalid_encoding", C::DataCorruption),
        one("reason:not_an_object", C::DataCorruption),
        one("reason:type_mismatch", C::DataCorruption),
        one("reason:invalid_timestamp", C::DataCorruption),
        one("reason:future_timestamp", C::DataCorruption),
        one("reason:invalid_value", C::DataCorruption),
        one("reason:payload_too_large", C::DataCorruption),
        one("reason:missing_field", C::MissingFields),
        one("reason:null_field", C::MissingFields),
        one("reason:storage_rejected", C::Infrastructure),
        one("reason:storage_unavailable", C::Infrastructure),
        one("check:uniqueness", C::DuplicateEvents),
        one("column:is_late", C::LateData),
        one("check:volume", C::VolumeAnomaly),
        one("freshness:raw", C::VolumeAnomaly),
        one("check:distribution", C::ValueAnomaly),
        one("check:referential", C::ReferentialIntegrity),
        one("freshness:derived", C::StaleData),
        one("pipeline:delayed", C::StaleData),
        one("pipeline:failed", C::PipelineFailure),
        one("check:completeness", C::MissingFields),
        weak("check:validity", vec![C::ValueAnomaly]),
        weak(
            "check:schema",
            vec![C::SchemaDrift, C::DataCorruption, C::MissingFields],
        ),
        weak(
            "check:reconciliation",
            vec![C::PipelineFailure, C::LateData, C::DuplicateEvents],
        ),
    ];
    for f in [
        "infrastructure:database",
        "infrastructure:broker",
        "infrastructure:unavailable",
    ] {
        r.push(one(f, C::Infrastructure));
    }
    r
}

/// One labelled example.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Label {
    pub features: Vec<String>,
    pub class: IncidentClass,
    /// How many incidents this label counts as.
    pub weight: f64,
}

#[derive(Debug, Clone)]
pub struct Classifier {
    /// feature → count per class (indexed as `IncidentClass::ALL`).
    counts: HashMap<String, [f64; 12]>,
    /// Below this, a decision says it is unsure.
    pub low_confidence: f64,
    labels: usize,
}

fn idx(c: IncidentClass) -> usize {
    IncidentClass::ALL
        .iter()
        .position(|x| *x == c)
        .expect("every class is in ALL")
}

impl Classifier {
    /// The classifier with its rule priors only.
    pub fn with_priors(low_confidence: f64) -> Classifier {
        let mut c = Classifier {
            counts: HashMap::new(),
            low_confidence,
            labels: 0,
        };
        for (feature, classes, weight) in rules() {
            let share = weight / classes.len() as f64;
            let row = c.counts.entry(feature.to_string()).or_insert([0.0; 12]);
            for class in classes {
                row[idx(class)] += share;
            }
        }
        c
    }

    /// Adds a labelled incident.
    /// Adds a labelled incident. Its weight is spread over its features: a feature that rides
    /// along with many classes (`check:schema`, `column:order_id`) is not taken over by the
    /// class labelled most often, while the features that tell the class apart gather weight
    /// label after label.
    pub fn learn(&mut self, label: &Label) {
        let share = label.weight / label.features.len().max(1) as f64;
        for f in &label.features {
            let row = self.counts.entry(f.clone()).or_insert([0.0; 12]);
            row[idx(label.class)] += share;
        }
        self.labels += 1;
    }

    /// Labelled incidents learned since the priors.
    pub fn labels(&self) -> usize {
        self.labels
    }

    /// Class probabilities for weighted features (a feature of a consequence counts less
    /// than one of the root cause). Features the classifier has never seen carry no vote.
    pub fn classify(&self, features: &[(String, f64)]) -> Classification {
        let n = IncidentClass::ALL.len();
        // UNKNOWN only wins when nothing known votes.
        let mut log = [0.0f64; 12];
        let mut known = false;
        for (f, w) in features {
            let Some(row) = self.counts.get(f) else {
                continue;
            };
            let total: f64 = row.iter().sum::<f64>() + ALPHA * n as f64;
            if row.iter().sum::<f64>() <= 0.0 {
                continue;
            }
            known = true;
            for (i, l) in log.iter_mut().enumerate() {
                *l += w * ((row[i] + ALPHA) / total).ln();
            }
        }
        let unknown = idx(IncidentClass::Unknown);
        let mut probs = [0.0f64; 12];
        if known {
            log[unknown] = f64::NEG_INFINITY;
            let max = log.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = log.iter().map(|l| (l - max).exp()).sum();
            for i in 0..n {
                probs[i] = (log[i] - max).exp() / sum;
            }
        } else {
            probs[unknown] = 1.0;
        }
        let mut scores: Vec<(IncidentClass, f64)> = IncidentClass::ALL
            .iter()
            .zip(probs)
            .map(|(c, p)| (*c, (p * 10_000.0).round() / 10_000.0))
            .collect();
        scores.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let (class, confidence) = scores[0];
        let confidence = if known { confidence } else { 0.0 };
        scores.truncate(5);
        let mut names: BTreeSet<String> = BTreeSet::new();
        for (f, _) in features {
            names.insert(f.clone());
        }
        Classification {
            class,
            confidence,
            low_confidence: confidence < self.low_confidence,
            scores,
            features: names.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(fs: &[&str]) -> Vec<(String, f64)> {
        fs.iter().map(|f| (f.to_string(), 1.0)).collect()
    }

    #[test]
    fn rule_priors_decide_on_day_one() {
        let c = Classifier::with_priors(0.6);
        let d = c.classify(&w(&["check:schema", "reason:schema_drift", "check:volume"]));
        assert_eq!(d.class, IncidentClass::SchemaDrift);
        let d = c.classify(&w(&["check:pipeline", "pipeline:failed"]));
        assert_eq!(d.class, IncidentClass::PipelineFailure);
        assert!(d.confidence > 0.6 && !d.low_confidence, "{d:?}");
        let d = c.classify(&w(&["check:validity", "column:is_late"]));
        assert_eq!(d.class, IncidentClass::LateData);
        let d = c.classify(&w(&["check:custom_sql"]));
        assert_eq!(d.class, IncidentClass::Unknown);
        assert!(d.low_confidence);
    }

    #[test]
    fn a_label_correction_changes_the_next_similar_decision() {
        let mut c = Classifier::with_priors(0.6);
        let features = w(&["check:reconciliation", "direction:low"]);
        let before = c.classify(&features);
        assert_ne!(before.class, IncidentClass::VolumeAnomaly);
        c.learn(&Label {
            features: features.iter().map(|f| f.0.clone()).collect(),
            class: IncidentClass::VolumeAnomaly,
            weight: 5.0,
        });
        let after = c.classify(&features);
        assert_eq!(after.class, IncidentClass::VolumeAnomaly, "{after:?}");
        assert_eq!(c.labels(), 1);
    }

    #[test]
    fn labels_move_what_tells_classes_apart_not_what_they_share() {
        let mut c = Classifier::with_priors(0.6);
        let label = |fs: &[&str], class| Label {
            features: fs.iter().map(|f| f.to_string()).collect(),
            class,
            weight: 5.0,
        };
        // Three schema drifts confirmed: they share check:schema with corruption.
        for _ in 0..3 {
            c.learn(&label(
                &[
                    "check:schema",
                    "check:validity",
                    "column:is_late",
                    "reason:schema_drift",
                ],
                IncidentClass::SchemaDrift,
            ));
        }
        let corrupt = w(&["check:schema", "reason:malformed_json"]);
        assert_eq!(c.classify(&corrupt).class, IncidentClass::DataCorruption);
        // A team that calls type changes schema drift says so twice: it is heard.
        let typed = w(&["check:schema", "reason:type_mismatch"]);
        assert_eq!(c.classify(&typed).class, IncidentClass::DataCorruption);
        for _ in 0..2 {
            c.learn(&label(
                &["check:schema", "reason:type_mismatch"],
                IncidentClass::SchemaDrift,
            ));
        }
        assert_eq!(c.classify(&typed).class, IncidentClass::SchemaDrift);
        assert_eq!(c.classify(&corrupt).class, IncidentClass::DataCorruption);
    }
}
