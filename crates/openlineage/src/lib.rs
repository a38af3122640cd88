//! Checking an OpenLineage event before it is accepted.
//!
//! Two layers. The built-in check always runs: the event is a run, job or dataset event with
//! the fields the specification requires, in the right types and formats (RFC 3339 times,
//! UUID run ids, URI producers, known event types, facets with `_producer` and `_schemaURL`).
//! When the official JSON schemas are available (`lineage.openlineage_spec_dir`, the folder
//! holding `spec/OpenLineage.json` and `spec/facets/`), the event is also validated against the
//! core schema and every facet against the schema its `_schemaURL` names. Facets with a schema
//! the folder does not hold (custom facets) are allowed, as the specification allows them.
//!
//! Every problem names the JSON path of the field it concerns.

use heal_model::decode::json_type_name;
use jsonschema::{Resource, Validator};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Event types of run events.
pub const EVENT_TYPES: [&str; 6] = ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"];

/// Why the official schemas could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("lineage.openlineage_spec_dir = {dir:?}: {reason}")]
pub struct SpecError {
    pub dir: PathBuf,
    pub reason: String,
}

/// The official OpenLineage schemas, compiled.
pub struct Schemas {
    core: Validator,
    facets: BTreeMap<String, Validator>,
}

fn read(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

impl Schemas {
    /// Loads `dir/spec/OpenLineage.json` and every `dir/spec/facets/*.json`.
    pub fn load(dir: &Path) -> Result<Schemas, SpecError> {
        let fail = |reason: String| SpecError {
            dir: dir.to_path_buf(),
            reason,
        };
        let core = read(&dir.join("spec/OpenLineage.json")).map_err(fail)?;
        let core_id = core["$id"]
            .as_str()
            .ok_or_else(|| fail("spec/OpenLineage.json has no $id".into()))?
            .to_string();
        let with_core = || {
            jsonschema::options()
                .should_validate_formats(true)
                .with_resource(core_id.clone(), Resource::from_contents(core.clone()))
        };
        let mut facets = BTreeMap::new();
        let entries = std::fs::read_dir(dir.join("spec/facets"))
            .map_err(|e| fail(format!("spec/facets: {e}")))?;
        for entry in entries {
            let path = entry.map_err(|e| fail(e.to_string()))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let schema = read(&path).map_err(fail)?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let validator = with_core()
                .build(&schema)
                .map_err(|e| fail(format!("{name}: {e}")))?;
            facets.insert(name, validator);
        }
        let core = with_core()
            .build(&core)
            .map_err(|e| fail(format!("spec/OpenLineage.json: {e}")))?;
        Ok(Schemas { core, facets })
    }

    /// Problems of `event` against the core schema and each facet's own schema. Facets whose
    /// `_schemaURL` names no file of the folder are listed in `unknown`, not as problems.
    pub fn check(&self, event: &Value) -> SchemaReport {
        let mut problems: Vec<String> = self
            .core
            .iter_errors(event)
            .map(|e| format!("{}: {e}", pointer(&e.instance_path().to_string())))
            .collect();
        let mut unknown = Vec::new();
        for (path, set) in facet_sets(event) {
            for (key, facet) in set.as_object().into_iter().flatten() {
                let url = facet["_schemaURL"].as_str().unwrap_or_default();
                let file = url
                    .split('#')
                    .next()
                    .unwrap_or_default()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default();
                let Some(validator) = self.facets.get(file) else {
                    unknown.push(format!("{path}.{key}: {url}"));
                    continue;
                };
                let wrapped = serde_json::json!({ key: facet });
                problems.extend(validator.iter_errors(&wrapped).map(|e| {
                    let inner = e.instance_path().to_string();
                    let inner = inner.trim_start_matches('/').replacen(key.as_str(), "", 1);
                    format!("{path}.{key}{}: {e}", pointer(&inner))
                }));
            }
        }
        SchemaReport { problems, unknown }
    }
}

/// What [`Schemas::check`] found.
#[derive(Debug, Clone, Default)]
pub struct SchemaReport {
    pub problems: Vec<String>,
    /// Facets with a schema the specification folder does not hold (custom facets).
    pub unknown: Vec<String>,
}

/// A JSON pointer (`/run/runId`) as a path (`run.runId`, `$` for the root).
fn pointer(p: &str) -> String {
    let parts: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
    if parts.is_empty() {
        return "$".into();
    }
    let mut out = String::new();
    for part in parts {
        if part.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

/// Every facet map of an event, with its path.
fn facet_sets(event: &Value) -> Vec<(String, &Value)> {
    let mut sets = vec![
        ("run.facets".to_string(), &event["run"]["facets"]),
        ("job.facets".to_string(), &event["job"]["facets"]),
        ("dataset.facets".to_string(), &event["dataset"]["facets"]),
    ];
    for side in ["inputs", "outputs"] {
        for (i, d) in event[side].as_array().into_iter().flatten().enumerate() {
            sets.push((format!("{side}[{i}].facets"), &d["facets"]));
            sets.push((format!("{side}[{i}].inputFacets"), &d["inputFacets"]));
            sets.push((format!("{side}[{i}].outputFacets"), &d["outputFacets"]));
        }
    }
    sets.into_iter().filter(|(_, v)| !v.is_null()).collect()
}

fn is_uri(s: &str) -> bool {
    match s.split_once(':') {
        Some((scheme, rest)) => {
            !rest.is_empty()
                && scheme
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
                && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

fn need_str<'a>(v: &'a Value, path: &str, out: &mut Vec<String>) -> Option<&'a str> {
    match v {
        Value::String(s) => Some(s),
        Value::Null => {
            out.push(format!("{path}: is required"));
            None
        }
        other => {
            out.push(format!(
                "{path}: must be a string, not {}",
                json_type_name(other)
            ));
            None
        }
    }
}

fn check_facets(set: &Value, path: &str, out: &mut Vec<String>) {
    match set {
        Value::Null => {}
        Value::Object(map) => {
            for (key, facet) in map {
                let at = format!("{path}.{key}");
                match facet {
                    Value::Object(f) => {
                        // A facet may be deleted by sending `{"_deleted": true}`.
                        if f.get("_deleted").and_then(Value::as_bool) == Some(true) {
                            continue;
                        }
                        for field in ["_producer", "_schemaURL"] {
                            if let Some(s) = need_str(&facet[field], &format!("{at}.{field}"), out)
                            {
                                if !is_uri(s) {
                                    out.push(format!("{at}.{field}: {s:?} is not a URI"));
                                }
                            }
                        }
                    }
                    other => out.push(format!(
                        "{at}: must be an object, not {}",
                        json_type_name(other)
                    )),
                }
            }
        }
        other => out.push(format!(
            "{path}: must be an object, not {}",
            json_type_name(other)
        )),
    }
}

fn name_rules(s: &str, path: &str, out: &mut Vec<String>) {
    if s.is_empty() {
        out.push(format!("{path}: must not be empty"));
    } else if s.len() > MAX_NAME {
        out.push(format!("{path}: longer than {MAX_NAME} bytes"));
    }
}

fn check_dataset(d: &Value, path: &str, out: &mut Vec<String>) {
    if !d.is_object() {
        out.push(format!(
            "{path}: must be an object, not {}",
            json_type_name(d)
        ));
        return;
    }
    for field in ["namespace", "name"] {
        if let Some(s) = need_str(&d[field], &format!("{path}.{field}"), out) {
            name_rules(s, &format!("{path}.{field}"), out);
        }
    }
    for facets in ["facets", "inputFacets", "outputFacets"] {
        check_facets(&d[facets], &format!("{path}.{facets}"), out);
    }
}

/// Longest namespace or name accepted (node keys are indexed).
pub const MAX_NAME: usize = 1000;

/// Strings PostgreSQL cannot store (a NUL character), anywhere in the event.
fn nul_strings(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.contains('\0') => {
            out.push(format!("{path}: contains a NUL character"));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                nul_strings(item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                if k.contains('\0') {
                    out.push(format!("{path}: a key contains a NUL character"));
                }
                let p = if path == "$" {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                nul_strings(item, &p, out);
            }
        }
        _ => {}
    }
}

/// The built-in check: every problem, each naming its field. Empty means valid.
pub fn structural(event: &Value) -> Vec<String> {
    let mut out = Vec::new();
    nul_strings(event, "$", &mut out);
    if !event.is_object() {
        return vec![format!(
            "$: an OpenLineage event must be a JSON object, not {}",
            json_type_name(event)
        )];
    }
    if let Some(t) = need_str(&event["eventTime"], "eventTime", &mut out) {
        if chrono::DateTime::parse_from_rfc3339(t).is_err() {
            out.push(format!("eventTime: {t:?} is not an RFC 3339 date-time"));
        }
    }
    for field in ["producer", "schemaURL"] {
        if let Some(s) = need_str(&event[field], field, &mut out) {
            if !is_uri(s) {
                out.push(format!("{field}: {s:?} is not a URI"));
            }
        }
    }
    let has_run = !event["run"].is_null();
    let has_job = !event["job"].is_null();
    let has_dataset = !event["dataset"].is_null();
    if has_run {
        if let Some(id) = need_str(&event["run"]["runId"], "run.runId", &mut out) {
            if uuid::Uuid::parse_str(id).is_err() {
                out.push(format!("run.runId: {id:?} is not a UUID"));
            }
        }
        check_facets(&event["run"]["facets"], "run.facets", &mut out);
        if !has_job {
            out.push("job: is required in a run event".into());
        }
        if let Some(t) = event.get("eventType") {
            match t.as_str() {
                Some(s) if EVENT_TYPES.contains(&s) => {}
                _ => out.push(format!(
                    "eventType: {t} is not one of {}",
                    EVENT_TYPES.join(", ")
                )),
            }
        }
    } else if !has_job && !has_dataset {
        out.push(
            "$: an OpenLineage event needs `run` and `job` (run event), `job` (job event) or `dataset` (dataset event)"
                .into(),
        );
    }
    if has_job {
        let job = &event["job"];
        for field in ["namespace", "name"] {
            if let Some(s) = need_str(&job[field], &format!("job.{field}"), &mut out) {
                name_rules(s, &format!("job.{field}"), &mut out);
            }
        }
        check_facets(&job["facets"], "job.facets", &mut out);
    }
    if has_dataset {
        check_dataset(&event["dataset"], "dataset", &mut out);
    }
    for side in ["inputs", "outputs"] {
        match &event[side] {
            Value::Null => {}
            Value::Array(items) => {
                for (i, d) in items.iter().enumerate() {
                    check_dataset(d, &format!("{side}[{i}]"), &mut out);
                }
            }
            other => out.push(format!(
                "{side}: must be an array, not {}",
                json_type_name(other)
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> Value {
        json!({
            "eventType": "START",
            "eventTime": "2026-03-01T10:00:00.000Z",
            "producer": "https://example.com/producer",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            "run": { "runId": "3f5e9c4e-8a5b-4b53-9d0c-2e1b7b0f1a11" },
            "job": { "namespace": "n", "name": "j" },
            "inputs": [{ "namespace": "pg", "name": "t", "facets": {} }],
        })
    }

    #[test]
    fn a_valid_event_has_no_problems() {
        assert_eq!(structural(&valid()), Vec::<String>::new());
    }

    #[test]
    fn each_problem_names_its_field() {
        let cases: Vec<(&str, Value, &str)> = vec![
            ("/run/runId", json!("not-a-uuid"), "run.runId"),
            ("/eventTime", json!("yesterday"), "eventTime"),
            ("/eventType", json!("DONE"), "eventType"),
            ("/producer", json!("no uri"), "producer"),
            ("/job/name", json!(7), "job.name"),
            ("/inputs/0/name", json!(""), "inputs[0].name"),
            (
                "/inputs/0/facets",
                json!({ "schema": { "fields": [] } }),
                "inputs[0].facets.schema._producer",
            ),
        ];
        for (ptr, value, field) in cases {
            let mut e = valid();
            *e.pointer_mut(ptr).unwrap_or_else(|| panic!("{ptr}")) = value;
            let problems = structural(&e);
            assert!(
                problems.iter().any(|p| p.starts_with(field)),
                "{ptr}: {problems:?}"
            );
        }
        let mut e = valid();
        e["job"]["name"] = json!("a".repeat(MAX_NAME + 1));
        assert!(structural(&e)
            .iter()
            .any(|p| p.starts_with("job.name: longer")));
        let mut e = valid();
        e["inputs"][0]["facets"]["x"] =
            json!({ "_producer": "urn:a", "_schemaURL": "urn:b", "v": "a\u{0}b" });
        assert!(
            structural(&e)
                .iter()
                .any(|p| p.starts_with("inputs[0].facets.x.v: contains a NUL")),
            "{:?}",
            structural(&e)
        );
        let mut e = valid();
        e.as_object_mut().unwrap().remove("job");
        assert!(structural(&e).iter().any(|p| p.starts_with("job")));
        assert!(structural(&json!([1])).iter().any(|p| p.starts_with('$')));
    }
}
