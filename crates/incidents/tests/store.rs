//! The incident store on every backend: messages applied once, out-of-order updates kept in
//! their place, the life cycle through the state machine with its refusals, the engine's own
//! resolution, notes and feedback in the timeline, filters with paging, similar incidents; and
//! the API over HTTP with its errors (404, 409, 400 naming the field).

mod common;

use common::{at, incident, message};
use heal_incidents::state::{Move, Reason};
use heal_incidents::store::{self, Error, Feedback, Filter};
use heal_model::incident::*;
use heal_model::quality::Severity;
use heal_testkit::{backends, TestDb};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_apply_once_and_moves_follow_the_life_cycle() {
    for backend in backends() {
        let t = TestDb::new(&backend).await;
        let pool = t.pool();
        let mut a = incident(
            "inc-a",
            IncidentClass::SchemaDrift,
            "dataset:payments",
            &["dataset:payments", "dataset:quarantine"],
            10,
        );
        let opened = message(IncidentChange::Opened, &a);
        assert!(store::apply_message(pool, &opened).await.unwrap());
        assert!(
            !store::apply_message(pool, &opened).await.unwrap(),
            "{backend}: a redelivery changes nothing"
        );
        // An update, then an older message arriving late: the newer body stays.
        a.updated_at = at(13);
        a.severity = Severity::Critical;
        let newer = message(IncidentChange::Updated, &a);
        let mut stale = a.clone();
        stale.updated_at = at(12);
        stale.severity = Severity::Low;
        store::apply_message(pool, &newer).await.unwrap();
        store::apply_message(pool, &message(IncidentChange::Updated, &stale))
            .await
            .unwrap();
        let d = store::get(pool, "inc-a").await.unwrap();
        assert_eq!(d.summary.severity, "critical", "{backend}");
        assert_eq!(d.summary.state, "open");
        assert_eq!(
            d.timeline.len(),
            3,
            "{backend}: opened, updated, the late update"
        );
        assert_eq!(d.incident["severity"], "critical");

        // The life cycle, with refusals.
        let s = store::transition(pool, "inc-a", Move::Acknowledge, "ana", Some("looking"))
            .await
            .unwrap();
        assert_eq!(s.state, "acknowledged");
        match store::transition(pool, "inc-a", Move::Acknowledge, "ana", None).await {
            Err(Error::Conflict(m)) => assert!(m.contains("acknowledged"), "{m}"),
            other => panic!("{backend}: {other:?}"),
        }
        assert!(matches!(
            store::transition(pool, "nope", Move::Acknowledge, "ana", None).await,
            Err(Error::NotFound(_))
        ));
        let s = store::transition(
            pool,
            "inc-a",
            Move::Resolve(Reason::Duplicates),
            "ana",
            Some("dedup ran"),
        )
        .await
        .unwrap();
        assert_eq!(
            (
                s.state.as_str(),
                s.resolution_reason.as_deref(),
                s.resolution_note.as_deref()
            ),
            ("resolved", Some("duplicates"), Some("dedup ran"))
        );
        assert!(s.resolved_at.is_some());
        let s = store::transition(pool, "inc-a", Move::Reopen, "ana", None)
            .await
            .unwrap();
        assert_eq!((s.state.as_str(), s.resolution_reason), ("open", None));

        // The engine resolves what nobody works on, never what is being remediated.
        store::transition(pool, "inc-a", Move::StartRemediation, "executor", None)
            .await
            .unwrap();
        a.status = IncidentStatus::Resolved;
        a.updated_at = at(20);
        a.resolved_at = Some(at(20));
        store::apply_message(pool, &message(IncidentChange::Resolved, &a))
            .await
            .unwrap();
        let d = store::get(pool, "inc-a").await.unwrap();
        assert_eq!(
            (d.summary.state.as_str(), d.summary.engine_status.as_str()),
            ("remediating", "resolved")
        );
        let b = incident(
            "inc-b",
            IncidentClass::LateData,
            "dataset:orders",
            &["dataset:orders"],
            30,
        );
        store::apply_message(pool, &message(IncidentChange::Opened, &b))
            .await
            .unwrap();
        let mut b2 = b.clone();
        b2.status = IncidentStatus::Resolved;
        b2.updated_at = at(40);
        store::apply_message(pool, &message(IncidentChange::Resolved, &b2))
            .await
            .unwrap();
        let d = store::get(pool, "inc-b").await.unwrap();
        assert_eq!(
            (
                d.summary.state.as_str(),
                d.summary.resolution_reason.as_deref()
            ),
            ("resolved", Some("checks_passed")),
            "{backend}"
        );

        // Notes and feedback land in the timeline, in order.
        store::note(pool, "inc-b", "ana", "orders were replayed")
            .await
            .unwrap();
        store::feedback(
            pool,
            "inc-b",
            "ana",
            &Feedback {
                class: Some("LATE_DATA".into()),
                remediation_worked: Some(true),
                ..Feedback::default()
            },
        )
        .await
        .unwrap();
        let d = store::get(pool, "inc-b").await.unwrap();
        let kinds: Vec<&str> = d.timeline.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["opened", "resolved", "note", "feedback"],
            "{backend}"
        );
        assert_eq!(d.feedback[0].remediation_worked, Some(true));
        t.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_page_and_similar_incidents_rank_by_cause_class_and_nodes() {
    for backend in backends() {
        let t = TestDb::new(&backend).await;
        let pool = t.pool();
        let cases = [
            (
                "s1",
                IncidentClass::SchemaDrift,
                "dataset:payments",
                vec!["dataset:payments"],
                0,
            ),
            (
                "s2",
                IncidentClass::SchemaDrift,
                "dataset:payments",
                vec!["dataset:payments", "dataset:quarantine"],
                30,
            ),
            (
                "s3",
                IncidentClass::SchemaDrift,
                "dataset:orders",
                vec!["dataset:orders"],
                60,
            ),
            (
                "v1",
                IncidentClass::VolumeAnomaly,
                "stream:raw-events",
                vec!["dataset:sessions"],
                90,
            ),
        ];
        for (id, class, root, nodes, h) in &cases {
            let i = incident(id, *class, root, nodes, *h);
            store::apply_message(pool, &message(IncidentChange::Opened, &i))
                .await
                .unwrap();
        }
        store::feedback(
            pool,
            "s1",
            "ana",
            &Feedback {
                remediation_worked: Some(true),
                ..Feedback::default()
            },
        )
        .await
        .unwrap();
        let all = |f: Filter| async move { store::list(pool, &f).await.unwrap() };
        let base = Filter {
            limit: 50,
            ..Filter::default()
        };
        let (rows, total) = all(Filter {
            class: Some("SCHEMA_DRIFT".into()),
            ..base.clone()
        })
        .await;
        assert_eq!((rows.len(), total), (3, 3), "{backend}");
        let (rows, _) = all(Filter {
            node: Some("payments".into()),
            ..base.clone()
        })
        .await;
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["s2", "s1"], "{backend}: newest first");
        let (rows, total) = all(Filter {
            limit: 1,
            offset: 1,
            ..base.clone()
        })
        .await;
        assert_eq!((rows.len(), total), (1, 4));
        let (rows, _) = all(Filter {
            since: Some(at(80)),
            ..base.clone()
        })
        .await;
        assert_eq!(
            rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["v1"]
        );

        let sim = store::similar(pool, "s2", 10).await.unwrap();
        let ids: Vec<&str> = sim.iter().map(|s| s.summary.id.as_str()).collect();
        assert_eq!(
            ids,
            ["s1", "s3"],
            "{backend}: same cause and class first, then class"
        );
        assert!(sim[0].score > sim[1].score);
        assert_eq!(sim[0].remediation_worked, Some(true));
        let seed = store::of_class(pool, "SCHEMA_DRIFT", 2).await.unwrap();
        assert_eq!(seed.len(), 2);
        t.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_and_refuses_as_documented() {
    let backend = backends().pop().unwrap();
    let t = TestDb::new(&backend).await;
    let i = incident(
        "inc-1",
        IncidentClass::DuplicateEvents,
        "dataset:payments",
        &["dataset:payments"],
        5,
    );
    store::apply_message(t.pool(), &message(IncidentChange::Opened, &i))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let bus = heal_bus::Bus::new(None).unwrap();
    bus.create_topics(&[heal_model::topics::INCIDENT_FEEDBACK], 1, 1)
        .await
        .unwrap();
    let mut learned = bus
        .consumer("test", heal_model::topics::INCIDENT_FEEDBACK)
        .unwrap();
    let app = heal_incidents::http::routes(t.pool().clone(), Some(bus.clone()));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let c = reqwest::Client::new();
    let get = |path: &str| {
        let (c, url) = (c.clone(), format!("{base}{path}"));
        async move {
            let r = c.get(url).send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or_default(),
            )
        }
    };
    let post = |path: &str, body: Value| {
        let (c, url) = (c.clone(), format!("{base}{path}"));
        async move {
            let r = c.post(url).json(&body).send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or_default(),
            )
        }
    };
    let (s, b) = get("/api/incidents?state=open").await;
    assert_eq!((s, b["total"].as_i64()), (200, Some(1)), "{b}");
    let (s, b) = get("/api/incidents/inc-1").await;
    assert_eq!(s, 200);
    assert_eq!(
        b["incident"]["root_causes"][0]["node"]["key"],
        "dataset:payments"
    );
    assert_eq!(b["timeline"][0]["kind"], "opened");

    for (path, status, code, field) in [
        ("/api/incidents/nope", 404, "not_found", Some("id")),
        (
            "/api/incidents?state=closed",
            400,
            "invalid_parameter",
            Some("state"),
        ),
        (
            "/api/incidents?limit=0",
            400,
            "invalid_parameter",
            Some("limit"),
        ),
        (
            "/api/incidents?colour=red",
            400,
            "unknown_parameter",
            Some("colour"),
        ),
        (
            "/api/incidents?since=yesterday",
            400,
            "invalid_parameter",
            Some("since"),
        ),
        (
            "/api/incidents/similar/BOGUS",
            400,
            "invalid_parameter",
            Some("classification"),
        ),
        ("/api/incidents/nope/similar", 404, "not_found", Some("id")),
    ] {
        let (s, b) = get(path).await;
        assert_eq!(
            (s, b["code"].as_str(), b["field"].as_str()),
            (status, Some(code), field),
            "{path}: {b}"
        );
    }
    let (s, b) = post("/api/incidents/inc-1/resolve", json!({})).await;
    assert_eq!(
        (s, b["code"].as_str(), b["field"].as_str()),
        (400, Some("missing_field"), Some("reason")),
        "{b}"
    );
    let (s, b) = post("/api/incidents/inc-1/resolve", json!({"reason": "bored"})).await;
    assert_eq!((s, b["field"].as_str()), (400, Some("reason")), "{b}");
    let (s, b) = post("/api/incidents/inc-1/acknowledge", json!({"colour": 1})).await;
    assert_eq!((s, b["field"].as_str()), (400, Some("colour")), "{b}");
    let (s, b) = post(
        "/api/incidents/inc-1/feedback",
        json!({"remediation_worked": "yes"}),
    )
    .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (400, Some("remediation_worked")),
        "{b}"
    );
    let (s, _) = post("/api/incidents/nope/acknowledge", json!({})).await;
    assert_eq!(s, 404);

    let (s, b) = post("/api/incidents/inc-1/acknowledge", json!({"actor": "ana"})).await;
    assert_eq!((s, b["state"].as_str()), (200, Some("acknowledged")), "{b}");
    let (s, b) = post("/api/incidents/inc-1/acknowledge", json!({})).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (409, Some("illegal_transition")),
        "{b}"
    );
    // The seed's callers resolve with free text.
    let (s, b) = post(
        "/api/incidents/inc-1/resolve",
        json!({"resolution": "fixed upstream"}),
    )
    .await;
    assert_eq!(
        (
            s,
            b["resolution_reason"].as_str(),
            b["resolution_note"].as_str()
        ),
        (200, Some("other"), Some("fixed upstream")),
        "{b}"
    );
    let (s, _) = post("/api/incidents/inc-1/notes", json!({"note": "done"})).await;
    assert_eq!(s, 201);
    let (s, b) = post("/api/incidents/inc-1/feedback", json!({"action": "reboot"})).await;
    assert_eq!((s, b["field"].as_str()), (400, Some("action")), "{b}");
    let (s, b) = post(
        "/api/incidents/inc-1/feedback",
        json!({"class": "duplicate_events", "remediation_worked": true, "action": "deduplicate"}),
    )
    .await;
    assert_eq!((s, b["published"].as_bool()), (201, Some(true)), "{b}");
    // Published for AI Ops to learn from.
    let got = learned
        .poll_batch(10, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let m: FeedbackMessage = serde_json::from_slice(&got[0].payload).unwrap();
    assert_eq!(
        (
            m.incident_id.as_str(),
            m.class,
            m.remediation_worked,
            m.action.as_deref()
        ),
        (
            "inc-1",
            Some(IncidentClass::DuplicateEvents),
            Some(true),
            Some("deduplicate")
        )
    );
    let (s, b) = get("/api/incidents/similar/duplicate_events").await;
    assert_eq!((s, b[0]["id"].as_str()), (200, Some("inc-1")), "{b}");
    let (_, b) = get("/api/incidents/inc-1").await;
    let kinds: Vec<&str> = b["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["opened", "state", "state", "note", "feedback"]);
    server.abort();
    t.finish().await;
}

/// Every operation the OpenAPI document describes reaches a handler (no routing 404 or 405),
/// with the document's own example values; and what it lists as enumerations is what the API
/// accepts.
#[tokio::test]
async fn the_openapi_document_describes_the_routes_there_are() {
    let backend = backends().pop().unwrap();
    let t = TestDb::new(&backend).await;
    let i = incident(
        "inc-1",
        IncidentClass::LateData,
        "dataset:orders",
        &["dataset:orders"],
        5,
    );
    store::apply_message(t.pool(), &message(IncidentChange::Opened, &i))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = heal_incidents::http::routes(t.pool().clone(), None);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let c = reqwest::Client::new();
    let doc: Value = c
        .get(format!("{base}/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 10, "{}", paths.len());
    let mut operations = 0;
    for (path, ops) in paths {
        let concrete = path
            .replace("{id}", "inc-1")
            .replace("{classification}", "LATE_DATA")
            .replace("{action}", "1");
        for (method, op) in ops.as_object().unwrap() {
            operations += 1;
            let url = format!("{base}{concrete}");
            let r = match method.as_str() {
                "get" => c.get(&url).send().await.unwrap(),
                "post" => c.post(&url).json(&json!({})).send().await.unwrap(),
                m => panic!("undocumented method {m}"),
            };
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or_default();
            assert_ne!(status, 405, "{method} {path}");
            // A 404 must be the handler's (an unknown incident), never the router's.
            assert!(
                status != 404 || body["code"] == "not_found",
                "{method} {path}: {status} {body}"
            );
            let documented = op["responses"].as_object().unwrap();
            assert!(
                documented.contains_key(&status.to_string()),
                "{method} {path} answered {status}, not documented: {body}"
            );
        }
    }
    assert!(operations >= 10);
    // The enumerations are the API's: every documented state filters without a 400.
    let states = doc["paths"]["/api/incidents"]["get"]["parameters"][0]["schema"]["enum"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(states.len(), 7);
    for s in states {
        let r = c
            .get(format!(
                "{base}/api/incidents?state={}",
                s.as_str().unwrap()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{s}");
    }
    server.abort();
    t.finish().await;
}
