//! The AI Ops role against a real database (embedded, and the server in CI): an unreadable
//! message on either topic is stored with its bytes and position and skipped while the rest of
//! its batch is processed; incidents are stored as published and read back; an operator's
//! label is stored and learned; prose from an OpenAI-compatible endpoint (a local fake) lands
//! on the incident without holding it back.

use axum::routing::post;
use axum::{Json, Router};
use futures::future::BoxFuture;
use heal_aiops::llm::Llm;
use heal_aiops::{AiopsRole, GraphEdge, GraphNode, GraphSnapshot, LineageSource, Settings};
use heal_bus::Message;
use heal_model::incident::IncidentClass;
use heal_model::quality::{ConditionChange, FailureEvent, Severity, FAILURE_EVENT_SCHEMA};
use heal_testkit::{backends, TestDb};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

struct Fixed;

impl LineageSource for Fixed {
    fn snapshot(&self) -> BoxFuture<'_, Result<GraphSnapshot, String>> {
        let node = |kind: &str, name: &str| GraphNode {
            key: format!("{kind}:{name}"),
            kind: kind.into(),
            name: name.into(),
            layer: Some("raw".into()),
            owner: None,
            criticality: None,
        };
        let edge = |s: &str, d: &str, k: &str| GraphEdge {
            src: s.into(),
            dst: d.into(),
            kind: k.into(),
        };
        Box::pin(async move {
            Ok(GraphSnapshot {
                nodes: vec![
                    node("stream", "raw-events"),
                    node("job", "ingest"),
                    node("dataset", "payments"),
                    node("job", "stg_payments"),
                    node("dataset", "stg_payments"),
                ],
                edges: vec![
                    edge("stream:raw-events", "job:ingest", "reads"),
                    edge("job:ingest", "dataset:payments", "writes"),
                    edge("dataset:payments", "job:stg_payments", "reads"),
                    edge("job:stg_payments", "dataset:stg_payments", "writes"),
                ],
            })
        })
    }
}

fn failure(id: i64, dataset: &str) -> FailureEvent {
    let at = "2026-03-02T10:00:00Z".parse().unwrap();
    FailureEvent {
        schema: FAILURE_EVENT_SCHEMA.into(),
        event_id: format!("f{id}"),
        emitted_at: chrono::Utc::now(),
        change: ConditionChange::Opened,
        condition_id: id,
        check: format!("{dataset}_schema"),
        check_type: "schema".into(),
        dataset: dataset.into(),
        column: None,
        subject: dataset.into(),
        severity: Severity::High,
        observed: Some(321.0),
        expected: None,
        lower: None,
        upper: None,
        threshold: "refused payloads ≤ 0".into(),
        window_start: at,
        window_end: at + chrono::Duration::hours(1),
        partition: None,
        run_id: None,
        message: "321 payloads refused (schema_drift: 321)".into(),
        sample: vec![json!({"reason": "schema_drift", "event_id": "e-1"})],
        first_seen: at,
        last_seen: at,
        occurrences: 1,
        data_start: Some(at),
        data_end: Some(at + chrono::Duration::hours(1)),
        detail: json!({"by_reason": {"schema_drift": 321}}),
    }
}

fn message(topic: &str, offset: i64, payload: Vec<u8>) -> Message {
    Message {
        topic: topic.into(),
        partition: 2,
        offset,
        key: None,
        payload,
        timestamp_ms: None,
    }
}

/// A fake chat-completions endpoint that answers once `release` is notified.
async fn fake_llm(release: Arc<tokio::sync::Notify>) -> String {
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |Json(body): Json<Value>| {
            let release = release.clone();
            async move {
                release.notified().await;
                let text = body["messages"][1]["content"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                Json(json!({ "choices": [{ "message": { "role": "assistant",
                    "content": format!("PROSE: {}", text.lines().next().unwrap_or("")) } }] }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/v1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_kept_and_skipped_incidents_stored_labels_learned_prose_added() {
    for backend in backends() {
        let t = TestDb::new(&backend).await;
        let release = Arc::new(tokio::sync::Notify::new());
        let llm = Llm::new(
            &fake_llm(release.clone()).await,
            Some("k".into()),
            "m",
            Duration::from_secs(10),
        );
        let role = AiopsRole::new(
            t.pool().clone(),
            None,
            "incidents",
            Arc::new(Fixed),
            Settings::default(),
            Some(llm),
        )
        .await
        .unwrap();
        let good = serde_json::to_vec(&failure(1, "payments")).unwrap();
        let batch = vec![
            message("data-quality-checks", 10, b"{not json".to_vec()),
            message("data-quality-checks", 11, good),
            message(
                "data-quality-checks",
                12,
                br#"{"schema":"heal.quality/1"}"#.to_vec(),
            ),
        ];
        let published = role.on_failures(&batch).await;
        assert_eq!(published, 1, "{backend}: the good event opened an incident");
        role.on_pipeline(&[message("pipeline-events", 3, vec![0xff, 0xfe])])
            .await;
        #[allow(clippy::type_complexity)]
        let dead: Vec<(String, i32, i64, Vec<u8>, String)> = sqlx::query_as(
            "SELECT topic, partition, \"offset\", payload, reason FROM aiops_dead_letters ORDER BY topic, \"offset\"",
        )
        .fetch_all(t.pool())
        .await
        .unwrap();
        assert_eq!(dead.len(), 3, "{backend}: {dead:?}");
        assert_eq!(
            (dead[0].0.as_str(), dead[0].1, dead[0].2),
            ("data-quality-checks", 2, 10)
        );
        assert_eq!(dead[0].3, b"{not json");
        assert!(dead[0].4.contains("not a failure event"), "{}", dead[0].4);
        assert_eq!(dead[1].2, 12);
        assert!(dead[1].4.contains("missing field"), "{}", dead[1].4);
        assert_eq!((dead[2].0.as_str(), dead[2].2), ("pipeline-events", 3));
        assert_eq!(role.stats()["dead_letters"], 3);
        // The same message again is stored once.
        role.on_failures(&batch[..1]).await;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM aiops_dead_letters")
            .fetch_one(t.pool())
            .await
            .unwrap();
        assert_eq!(n, 3);

        // Stored as published, before any prose arrived.
        let held = role.incidents();
        assert_eq!(held.len(), 1);
        let id = held[0].id.clone();
        let stored = heal_aiops::role::load(t.pool(), &id[..8])
            .await
            .unwrap()
            .expect("stored");
        assert_eq!(stored.root_causes[0].node.name, "payments");
        assert_eq!(stored.classification.class, IncidentClass::SchemaDrift);
        assert!(stored.explanation.prose.is_none());
        assert!(stored.explanation.text.contains("321"));

        // Prose lands once the endpoint answers.
        release.notify_one();
        let mut prose = None;
        for _ in 0..100 {
            role.apply_prose().await;
            prose = role.incidents()[0].explanation.prose.clone();
            if prose.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let prose = prose.expect("prose from the fake endpoint");
        assert!(
            prose.starts_with("PROSE: SCHEMA_DRIFT at dataset payments"),
            "{prose}"
        );
        let stored = heal_aiops::role::load(t.pool(), &id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.explanation.prose.as_deref(), Some(prose.as_str()));

        // An operator's label is stored and learned.
        assert!(role
            .label(&id, IncidentClass::DataCorruption, "operator")
            .await
            .unwrap());
        assert!(!role
            .label("nope", IncidentClass::DataCorruption, "operator")
            .await
            .unwrap());
        let (class, source): (String, String) =
            sqlx::query_as("SELECT class, source FROM aiops_labels")
                .fetch_one(t.pool())
                .await
                .unwrap();
        assert_eq!(
            (class.as_str(), source.as_str()),
            ("DATA_CORRUPTION", "operator")
        );
        assert_eq!(role.stats()["labels_learned"], 1);

        // The API.
        let role = Arc::new(role);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = heal_aiops::http::routes(role.clone());
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let c = reqwest::Client::new();
        let get = |path: &str| {
            let c = c.clone();
            let url = format!("{base}{path}");
            async move {
                let r = c.get(url).send().await.unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            }
        };
        let (status, body) = get("/api/aiops/incidents?status=open").await;
        assert_eq!(status, 200);
        assert_eq!(body["incidents"][0]["id"], json!(id));
        let (status, body) = get("/api/aiops/incidents?status=closed").await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some("status")),
            "{body}"
        );
        let (status, body) = get("/api/aiops/incidents?colour=red").await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("unknown_parameter"))
        );
        let (status, body) = get(&format!("/api/aiops/incidents/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(body["classification"]["class"], "SCHEMA_DRIFT");
        let (status, body) = get("/api/aiops/incidents/nope").await;
        assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
        let (status, body) = get("/api/aiops/status").await;
        assert_eq!(status, 200);
        assert_eq!(
            body["dead_letters"], 4,
            "counted as read, the repeat included"
        );
        let post = |path: String, body: &'static str| {
            let c = c.clone();
            let url = format!("{base}{path}");
            async move {
                let r = c
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                (
                    r.status().as_u16(),
                    r.json::<Value>().await.unwrap_or_default(),
                )
            }
        };
        let (status, body) = post(
            format!("/api/aiops/incidents/{id}/label"),
            r#"{"class":"BOGUS"}"#,
        )
        .await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some("class")),
            "{body}"
        );
        let (status, body) = post(format!("/api/aiops/incidents/{id}/label"), r#"{}"#).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("missing_field"))
        );
        let (status, _) = post(
            format!("/api/aiops/incidents/{id}/label"),
            r#"{"class":"late_data"}"#,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(role.stats()["labels_learned"], 2);
        server.abort();

        // A restarted role takes back the open incident and its labels.
        let again = AiopsRole::new(
            t.pool().clone(),
            None,
            "incidents",
            Arc::new(Fixed),
            Settings::default(),
            None,
        )
        .await
        .unwrap();
        assert_eq!(again.incidents().len(), 1);
        assert_eq!(again.stats()["labels_learned"], 2);
        let mut next = failure(1, "payments");
        next.change = ConditionChange::Escalated;
        next.severity = Severity::Critical;
        again
            .on_failures(&[message(
                "data-quality-checks",
                20,
                serde_json::to_vec(&next).unwrap(),
            )])
            .await;
        let held = again.incidents();
        assert_eq!(
            held.len(),
            1,
            "the same condition updates its incident after a restart"
        );
        assert_eq!(held[0].severity, Severity::Critical);
        t.finish().await;
    }
}

#[tokio::test]
async fn a_failing_language_model_is_an_error_not_a_hang() {
    let llm = Llm::new(
        "http://127.0.0.1:9/v1",
        None,
        "m",
        Duration::from_millis(500),
    );
    let e = heal_model::incident::Explanation {
        summary: String::new(),
        evidence: vec![],
        since: chrono::Utc::now(),
        origin: String::new(),
        impact: String::new(),
        confidence: String::new(),
        runner_up: None,
        text: "x".into(),
        prose: None,
    };
    assert!(llm.rewrite(&e).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_on_pipeline_events_opens_a_stored_infrastructure_incident() {
    use heal_model::pipeline::{PipelineEvent, PipelineStatus, STORAGE_UNAVAILABLE};
    for backend in backends() {
        let t = TestDb::new(&backend).await;
        let role = AiopsRole::new(
            t.pool().clone(),
            None,
            "incidents",
            Arc::new(Fixed),
            Settings::default(),
            None,
        )
        .await
        .unwrap();
        let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        // A job's own outcome only updates the job state.
        let job = PipelineEvent::new(
            "stg_payments",
            day,
            uuid::Uuid::new_v4(),
            PipelineStatus::Failed,
        );
        let mut down =
            PipelineEvent::new("ingest", day, uuid::Uuid::new_v4(), PipelineStatus::Failed);
        down.reason = Some(STORAGE_UNAVAILABLE.into());
        down.attempt = 3;
        down.data_start = Some("2026-03-02T10:00:00Z".parse().unwrap());
        down.data_end = Some("2026-03-02T10:05:00Z".parse().unwrap());
        down.error = Some("the database cannot take writes (3 attempts): read-only".into());
        let published = role
            .on_pipeline(&[
                message("pipeline-events", 1, serde_json::to_vec(&job).unwrap()),
                message("pipeline-events", 2, serde_json::to_vec(&down).unwrap()),
            ])
            .await;
        assert_eq!(published, 1, "{backend}");
        assert!(role.jobs().contains_key("stg_payments"));
        let held = role.incidents();
        assert_eq!(held.len(), 1, "{backend}");
        let stored = heal_aiops::role::load(t.pool(), &held[0].id)
            .await
            .unwrap()
            .expect("stored");
        assert_eq!(stored.classification.class, IncidentClass::Infrastructure);
        assert_eq!(stored.root_causes[0].node.key, "job:ingest");
        assert!(
            stored.explanation.text.contains("read-only"),
            "{}",
            stored.explanation.text
        );
        t.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_feedback_relabels_and_reranks_later_decisions_once_per_message() {
    use heal_model::incident::FeedbackMessage;
    for backend in backends() {
        let t = TestDb::new(&backend).await;
        let role = AiopsRole::new(
            t.pool().clone(),
            None,
            "incidents",
            Arc::new(Fixed),
            Settings::default(),
            None,
        )
        .await
        .unwrap();
        let batch = [message(
            "data-quality-checks",
            1,
            serde_json::to_vec(&failure(1, "payments")).unwrap(),
        )];
        role.on_failures(&batch).await;
        let inc = role.incidents()[0].clone();
        let top = |i: &heal_model::incident::Incident| i.recommendations[0].action.name();
        assert_eq!(top(&inc), "replay_quarantine", "{backend}");

        // The replay did not work, five times over: the same kind of incident is now
        // answered with another action first.
        let mut feedback = Vec::new();
        for k in 0..5 {
            let mut f = FeedbackMessage::new(&inc.id, "ana");
            f.remediation_worked = Some(false);
            f.action = Some("replay_quarantine".into());
            feedback.push(message(
                "incident-feedback",
                k,
                serde_json::to_vec(&f).unwrap(),
            ));
        }
        // The operator also names the real root cause: a candidate ranked below the top one.
        let corrected = inc.root_causes[1..]
            .iter()
            .find(|c| c.grounded == inc.root_causes[0].grounded)
            .map(|c| c.node.key.clone())
            .expect("a second candidate");
        assert_ne!(inc.root_causes[0].node.key, corrected);
        let mut relabel = FeedbackMessage::new(&inc.id, "ana");
        relabel.class = Some(IncidentClass::SchemaDrift);
        relabel.root_cause = Some(corrected.clone());
        feedback.push(message(
            "incident-feedback",
            9,
            serde_json::to_vec(&relabel).unwrap(),
        ));
        feedback.push(message("incident-feedback", 10, b"{}".to_vec()));
        assert_eq!(role.on_feedback(&feedback).await, 6, "{backend}");
        assert_eq!(
            role.on_feedback(&feedback[..6]).await,
            0,
            "{backend}: each message once"
        );
        assert_eq!(role.stats()["labels_learned"], 1);
        assert_eq!(role.stats()["dead_letters"], 1);
        let mut again = failure(1, "payments");
        again.change = ConditionChange::Escalated;
        again.severity = Severity::Critical;
        role.on_failures(&[message(
            "data-quality-checks",
            2,
            serde_json::to_vec(&again).unwrap(),
        )])
        .await;
        let after = role.incidents()[0].clone();
        assert_ne!(
            top(&after),
            "replay_quarantine",
            "{backend}: {:?}",
            after.recommendations
        );
        assert_eq!(
            after.root_causes[0].node.key, corrected,
            "{backend}: the corrected root cause ranks first"
        );

        // A restarted role takes the outcomes back.
        let restarted = AiopsRole::new(
            t.pool().clone(),
            None,
            "incidents",
            Arc::new(Fixed),
            Settings::default(),
            None,
        )
        .await
        .unwrap();
        restarted
            .on_failures(&[message(
                "data-quality-checks",
                3,
                serde_json::to_vec(&again).unwrap(),
            )])
            .await;
        assert_ne!(
            top(&restarted.incidents()[0]),
            "replay_quarantine",
            "{backend}"
        );
        assert_eq!(
            restarted.incidents()[0].root_causes[0].node.key,
            corrected,
            "{backend}: a restarted role takes the root-cause correction back too"
        );
        t.finish().await;
    }
}
