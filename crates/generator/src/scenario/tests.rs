//! Tests of scenario parsing and validation: the documented shape parses, defaults apply, and
//! every kind of mistake is reported with the file, the fault and the key with its value.

use super::*;
use heal_model::SchemaVersion;
use serde_json::json;

const HEADER: &str = r#"
name = "t"
seed = 7
start = "2026-03-01T00:00:00Z"
days = 10
events_per_day = 20000
"#;

fn with_fault(fault: &str) -> String {
    format!("{HEADER}\n[[fault]]\n{fault}\n")
}

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(text, "scenarios/test.toml")
}

fn error(text: &str) -> String {
    parse(text).expect_err("should be rejected").to_string()
}

fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(
            message.contains(part),
            "{message:?} should mention {part:?}"
        );
    }
}

#[test]
fn the_documented_example_parses() {
    let s = parse(
        r#"
name = "payments-schema-drift"
description = "optional text"
seed = 7
start = "2026-03-01T00:00:00Z"
days = 10
events_per_day = 20000
schema_mix = { v1 = 0.2, v2 = 0.5, v3 = 0.3 }

[[fault]]
kind = "schema_drift"
target = "payment"
start = "P8DT10H"
duration = "PT3H"
rate = 0.4
params = { rename = "amount", to = "amount_cents" }
"#,
    )
    .unwrap();
    assert_eq!(s.name, "payments-schema-drift");
    assert_eq!(s.seed, 7);
    assert_eq!(s.days, 10.0);
    assert_eq!(s.schema_mix, SchemaMix::default());
    assert_eq!(s.end() - s.start, Duration::days(10));
    let f = &s.faults[0];
    assert_eq!(f.kind, FaultKind::SchemaDrift);
    assert_eq!(f.target, Target::Event(EventKind::PaymentProcessed));
    assert_eq!(f.start, Duration::hours(8 * 24 + 10));
    assert_eq!(f.duration, Duration::hours(3));
    assert_eq!(f.rate, 0.4);
    assert_eq!(
        f.action,
        FaultAction::SchemaDrift(SchemaDrift::Rename {
            field: "amount",
            to: "amount_cents".into()
        })
    );
    assert_eq!(f.expected(), "quarantine:schema_drift");
    assert_eq!(
        f.params_json(),
        json!({"rename": "amount", "to": "amount_cents"})
    );
    let (from, to) = f.window(s.start);
    assert_eq!(from.to_rfc3339(), "2026-03-09T10:00:00+00:00");
    assert_eq!(to.to_rfc3339(), "2026-03-09T13:00:00+00:00");
}

#[test]
fn every_kind_runs_without_params_and_gets_its_defaults() {
    let cases = [
        (
            "malformed_json",
            "order",
            json!({}),
            "quarantine:malformed_json",
        ),
        (
            "encoding_corruption",
            "user",
            json!({}),
            "quarantine:invalid_encoding",
        ),
        (
            "missing_field",
            "order",
            json!({"field": "amount"}),
            "quarantine:missing_field",
        ),
        (
            "null_field",
            "user",
            json!({"field": "email"}),
            "quarantine:null_field",
        ),
        (
            "type_change",
            "cart",
            json!({"field": "product_id"}),
            "quarantine:type_mismatch",
        ),
        (
            "schema_drift",
            "session",
            json!({"rename": "device", "to": "device_v2"}),
            "quarantine:schema_drift",
        ),
        (
            "invalid_schema_version",
            "order",
            json!({"value": "banana"}),
            "quarantine:invalid_schema_version",
        ),
        (
            "duplicate_events",
            "order",
            json!({"copies": 1, "delay": "PT1M"}),
            "deduplicated",
        ),
        ("late_events", "order", json!({"delay": "PT6H"}), "late"),
        (
            "future_timestamps",
            "payment",
            json!({"skew": "P1D"}),
            "quarantine:future_timestamp",
        ),
        ("volume_drop", "all", json!({}), "dropped"),
        (
            "volume_spike",
            "product_view",
            json!({"factor": 5.0}),
            "stored",
        ),
        ("source_outage", "all", json!({}), "dropped"),
        (
            "value_outlier",
            "payment",
            json!({"field": "amount", "factor": 100.0}),
            "stored",
        ),
        (
            "distribution_shift",
            "payment",
            json!({"field": "method", "to": "gift_card"}),
            "stored",
        ),
        ("orphan_reference", "refund", json!({}), "stored"),
        ("job_failure", "daily_revenue", json!({}), "job"),
        (
            "job_delay",
            "daily_revenue",
            json!({"delay": "PT2H"}),
            "job",
        ),
        ("database_outage", "ingest", json!({}), "outage"),
    ];
    assert_eq!(cases.len(), FaultKind::ALL.len());
    for (kind, target, params, expected) in cases {
        let s = parse(&with_fault(&format!(
            "kind = \"{kind}\"\ntarget = \"{target}\"\nstart = \"P1D\"\nduration = \"PT2H\""
        )))
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
        let f = &s.faults[0];
        assert_eq!(f.kind.as_str(), kind);
        assert_eq!(f.params_json(), params, "{kind}");
        assert_eq!(f.expected(), expected, "{kind}");
        let rate = if kind == "volume_drop" { 0.9 } else { 1.0 };
        assert_eq!(f.rate, rate, "{kind}");
    }
}

#[test]
fn an_outage_targets_the_ingest_role_only() {
    let e = parse(&with_fault(
        "kind = \"database_outage\"\ntarget = \"order\"\nstart = \"PT1H\"\nduration = \"PT1H\"",
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("target") && e.contains("ingest"), "{e}");
    let s = parse(&with_fault(
        "kind = \"database_outage\"\ntarget = \"ingest\"\nstart = \"PT1H\"\nduration = \"PT1H\"",
    ))
    .unwrap();
    assert_eq!(s.faults[0].action, FaultAction::DatabaseOutage);
    assert!(!s.faults[0].kind.mutates_events());
}

#[test]
fn seed_field_names_are_accepted() {
    let s = parse(&with_fault(
        "kind = \"missing_field\"\ntarget = \"order\"\nstart = \"PT1H\"\nduration = \"PT1H\"\nparams = { field = \"order_amount\" }",
    ))
    .unwrap();
    assert_eq!(
        s.faults[0].action,
        FaultAction::MissingField { field: "amount" }
    );
    let s = parse(&with_fault(
        "kind = \"distribution_shift\"\ntarget = \"payment\"\nstart = \"PT1H\"\nduration = \"PT1H\"\nparams = { field = \"payment_method\", to = \"paypal\" }",
    ))
    .unwrap();
    assert_eq!(
        s.faults[0].action,
        FaultAction::DistributionShift {
            field: "method",
            to: "paypal".into()
        }
    );
}

#[test]
fn optional_keys_have_defaults() {
    let s = parse(&format!(
        "{HEADER}\nschema_mix = {{ v3 = 1 }}\n[[fault]]\nkind = \"job_failure\"\ntarget = \"daily_revenue\"\n"
    ))
    .unwrap();
    assert_eq!(s.schema_mix.weight(SchemaVersion::V1), 0.0);
    assert_eq!(s.schema_mix.weight(SchemaVersion::V3), 1.0);
    assert_eq!(s.faults[0].start, Duration::zero());
    assert_eq!(s.faults[0].duration, Duration::days(10));
    let half: Scenario = format!(
        "{}days = 0.5\nevents_per_day = 100",
        "name = \"h\"\nseed = 1\nstart = \"2026-03-01T00:00:00Z\"\n"
    )
    .parse()
    .unwrap();
    assert_eq!(half.duration(), Duration::hours(12));
}

#[test]
fn errors_name_the_file_the_fault_the_key_and_the_value() {
    let e = error(&with_fault(
        "kind = \"late_events\"\ntarget = \"order\"\nstart = \"P1D\"\nduration = \"PT1H\"\nrate = 1.5",
    ));
    assert_mentions(
        &e,
        &[
            "scenarios/test.toml",
            "fault #1 (late_events)",
            "`rate`",
            "1.5",
            "(0, 1]",
        ],
    );

    let e = error(&with_fault(
        "kind = \"missing_field\"\ntarget = \"order\"\nstart = \"P1D\"\nduration = \"PT1H\"\nparams = { field = \"colour\" }",
    ));
    assert_mentions(
        &e,
        &[
            "fault #1 (missing_field)",
            "params.field",
            "\"colour\"",
            "order events have no such field",
            "amount",
        ],
    );

    let e = error(&with_fault(
        "kind = \"late_events\"\ntarget = \"order\"\nstart = \"P1D\"\nduration = \"PT1H\"\nparams = { skew = \"P1D\" }",
    ));
    assert_mentions(
        &e,
        &[
            "params.skew",
            "unknown parameter",
            "late_events accepts delay",
        ],
    );

    let e = error(&with_fault(
        "kind = \"volume_drop\"\ntarget = \"orders\"\nstart = \"P1D\"\nduration = \"PT1H\"",
    ));
    assert_mentions(
        &e,
        &["`target`", "\"orders\"", "unknown target", "payment", "all"],
    );

    let e = error(&with_fault(
        "kind = \"late_events\"\ntarget = \"order\"\nstart = \"P1D\"\nduration = \"PT0S\"",
    ));
    assert_mentions(&e, &["`duration`", "\"PT0S\"", "must be positive"]);

    let e = error(&with_fault(
        "kind = \"late_events\"\ntarget = \"order\"\nstart = \"-PT1H\"\nduration = \"PT1H\"",
    ));
    assert_mentions(&e, &["`start`", "\"-PT1H\"", "negative"]);

    let e = error(&with_fault(
        "kind = \"late_events\"\ntarget = \"order\"\nstart = \"P1D\"\nduration = \"PT1H\"\nparams = { delay = \"-PT5M\" }",
    ));
    assert_mentions(&e, &["params.delay", "\"-PT5M\"", "positive"]);

    let e = error(&with_fault(
        "kind = \"late_events\"\ntarget = \"order\"\nstart = \"P1M\"\nduration = \"PT1H\"",
    ));
    assert_mentions(&e, &["`start`", "\"P1M\"", "months"]);

    let e = error(&with_fault(
        "kind = \"late_events\"\ntarget = \"order\"\nstart = \"P11D\"\nduration = \"PT1H\"",
    ));
    assert_mentions(&e, &["`start`", "after the scenario ends"]);

    let e = error(&with_fault(
        "kind = \"schema_slip\"\ntarget = \"order\"\nstart = \"P1D\"\nduration = \"PT1H\"",
    ));
    assert_mentions(
        &e,
        &["fault #1", "`kind`", "\"schema_slip\"", "schema_drift"],
    );
}

#[test]
fn field_faults_reject_fields_that_would_not_produce_their_outcome() {
    let fault = |kind: &str, target: &str, params: &str| {
        with_fault(&format!(
            "kind = \"{kind}\"\ntarget = \"{target}\"\nstart = \"P1D\"\nduration = \"PT1H\"\nparams = {{ {params} }}"
        ))
    };
    // Optional everywhere: removing it leaves a valid event.
    assert_mentions(
        &error(&fault("missing_field", "refund", "field = \"order_id\"")),
        &["optional", "params.field"],
    );
    assert_mentions(
        &error(&fault("null_field", "session", "field = \"session_id\"")),
        &["optional"],
    );
    // The id must stay readable; the version has its own faults.
    assert_mentions(
        &error(&fault("missing_field", "order", "field = \"event_id\"")),
        &["no such field"],
    );
    assert_mentions(
        &error(&fault("value_outlier", "payment", "field = \"method\"")),
        &["not numeric"],
    );
    assert_mentions(
        &error(&fault(
            "distribution_shift",
            "order",
            "field = \"currency\"",
        )),
        &["not categorical"],
    );
    assert_mentions(
        &error(&fault("value_outlier", "user", "factor = 10")),
        &["no default field"],
    );
    assert_mentions(
        &error(&fault("value_outlier", "order", "factor = 0")),
        &["params.factor", "0"],
    );
    assert_mentions(
        &error(&fault("volume_spike", "order", "factor = 1")),
        &["params.factor"],
    );
    assert_mentions(
        &error(&fault("duplicate_events", "order", "copies = 1.5")),
        &["params.copies", "1.5"],
    );
    assert_mentions(
        &error(&fault("schema_drift", "order", "version = \"2.0\"")),
        &["known schema version"],
    );
    assert_mentions(
        &error(&fault("schema_drift", "order", "version = \"banana\"")),
        &["invalid_schema_version"],
    );
    assert_mentions(
        &error(&fault(
            "schema_drift",
            "order",
            "version = \"4.0\", to = \"x\"",
        )),
        &["not both"],
    );
    assert_mentions(
        &error(&fault("invalid_schema_version", "order", "value = \"4.0\"")),
        &["looks like a version"],
    );
    assert!(parse(&fault("schema_drift", "order", "version = \"4.0\"")).is_ok());
    assert!(parse(&fault("invalid_schema_version", "order", "value = 7")).is_ok());
}

#[test]
fn targets_are_checked_per_kind() {
    let fault = |kind: &str, target: &str| {
        with_fault(&format!(
            "kind = \"{kind}\"\ntarget = \"{target}\"\nstart = \"P1D\"\nduration = \"PT1H\""
        ))
    };
    assert_mentions(
        &error(&fault("late_events", "all")),
        &["`all` is only allowed"],
    );
    assert_mentions(
        &error(&fault("orphan_reference", "order")),
        &["payment (order_id) or refund"],
    );
    assert_mentions(
        &error(&fault("job_failure", "daily revenue")),
        &["batch job name"],
    );
    assert!(parse(&fault("source_outage", "all")).is_ok());
    assert!(parse(&fault("volume_spike", "cart")).is_ok());
    let e = error(&format!("{}rate = 0.5\n", fault("source_outage", "all")));
    assert_mentions(&e, &["`rate`", "volume_drop"]);
}

#[test]
fn top_level_mistakes_are_reported() {
    let e = error(&format!("{HEADER}colour = \"blue\"\n"));
    assert_mentions(&e, &["scenarios/test.toml", "colour"]);
    let e = error(&HEADER.replace("days = 10", "days = 0"));
    assert_mentions(&e, &["scenario", "`days`", "= 0"]);
    let e = error(&HEADER.replace("2026-03-01T00:00:00Z", "March 1st"));
    assert_mentions(&e, &["`start`", "\"March 1st\"", "RFC 3339"]);
    let e = error(&HEADER.replace("events_per_day = 20000", "events_per_day = -5"));
    assert_mentions(&e, &["`events_per_day`", "-5"]);
    let e = error(&format!("{HEADER}schema_mix = {{ v1 = 0, v2 = 0 }}\n"));
    assert_mentions(&e, &["schema_mix", "positive"]);
    let e = error(&format!("{HEADER}schema_mix = {{ v4 = 1 }}\n"));
    assert_mentions(&e, &["v4"]);
    let e = error(&with_fault(
        "kind = \"late_events\"\ntarget = \"order\"\nwindow = \"PT1H\"",
    ));
    assert_mentions(&e, &["window"]);
    let e = error(&HEADER.replace("seed = 7", "seed = -1"));
    assert_mentions(&e, &["seed"]);
}

#[test]
fn load_reports_the_path_of_a_missing_file() {
    let e = Scenario::load("/nonexistent/dir/x.toml").unwrap_err();
    assert_mentions(&e.to_string(), &["/nonexistent/dir/x.toml"]);
}

#[test]
fn job_failures_may_say_how_many_attempts_fail() {
    let s = parse(&with_fault(
        r#"kind = "job_failure"
target = "daily_revenue"
start = "P1D"
duration = "PT2H"
params = { value = "executor lost", failures = 2 }"#,
    ))
    .unwrap();
    assert_eq!(
        s.faults[0].params_json(),
        json!({ "value": "executor lost", "failures": 2 })
    );
    let message = error(&with_fault(
        r#"kind = "job_failure"
target = "daily_revenue"
start = "P1D"
duration = "PT2H"
params = { failures = 0 }"#,
    ));
    assert_mentions(&message, &["failures", "0"]);
}
