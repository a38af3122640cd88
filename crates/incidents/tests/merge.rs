//! Operators merge two incidents that are one problem and split failures out of one that
//! mixes two: in the store on every backend (and the engine's later updates respect a split),
//! and over HTTP with its refusals (400 naming the field, 404, 409).

mod common;

use common::{at, incident, message};
use heal_incidents::store::{self, Error};
use heal_model::incident::*;
use heal_testkit::{backends, TestDb};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_and_split_in_the_store_and_over_http() {
    for backend in backends() {
        let t = TestDb::new(&backend).await;
        let pool = t.pool();
        let a = incident(
            "inc-a",
            IncidentClass::LateData,
            "dataset:orders",
            &["dataset:orders", "dataset:daily_revenue"],
            3,
        );
        let b = incident(
            "inc-b",
            IncidentClass::LateData,
            "dataset:orders",
            &["dataset:orders"],
            4,
        );
        let mixed = incident(
            "inc-m",
            IncidentClass::SchemaDrift,
            "dataset:payments",
            &["dataset:payments", "dataset:sessions", "dataset:orders"],
            6,
        );
        for i in [&a, &b, &mixed] {
            store::apply_message(pool, &message(IncidentChange::Opened, i))
                .await
                .unwrap();
        }

        // Merge b into a: b is resolved as merged and points at a; a lists it.
        let into = store::merge(pool, "inc-b", "inc-a", "ana", Some("same broker lag"))
            .await
            .unwrap();
        assert_eq!(into.id, "inc-a");
        let db = store::get(pool, "inc-b").await.unwrap();
        assert_eq!(db.summary.state, "resolved", "{backend}");
        assert_eq!(db.summary.resolution_reason.as_deref(), Some("merged"));
        assert_eq!(db.merged_into.as_deref(), Some("inc-a"));
        let da = store::get(pool, "inc-a").await.unwrap();
        assert_eq!(da.merged_from, ["inc-b"]);
        assert_eq!(da.timeline.last().unwrap().kind, "merged");
        // Refused: again (b is closed), into itself, into nothing, into a merged one.
        assert!(matches!(
            store::merge(pool, "inc-b", "inc-a", "ana", None).await,
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            store::merge(pool, "inc-a", "inc-a", "ana", None).await,
            Err(Error::Invalid("into", _))
        ));
        assert!(matches!(
            store::merge(pool, "inc-a", "nope", "ana", None).await,
            Err(Error::Invalid("into", _))
        ));
        assert!(matches!(
            store::merge(pool, "inc-m", "inc-b", "ana", None).await,
            Err(Error::Conflict(_))
        ));

        // Split the sessions failure out of the mixed incident.
        let sessions = mixed.symptoms[1].failure_event_id.clone();
        let part = store::split(pool, "inc-m", std::slice::from_ref(&sessions), "ana", None)
            .await
            .unwrap();
        assert_eq!(part.id, "inc-m-split-1");
        assert_eq!(part.state, "open");
        let dp = store::get(pool, "inc-m-split-1").await.unwrap();
        assert_eq!(dp.split_from.as_deref(), Some("inc-m"));
        assert_eq!(dp.incident["symptoms"].as_array().unwrap().len(), 1);
        assert_eq!(dp.incident["symptoms"][0]["failure_event_id"], sessions);
        let dm = store::get(pool, "inc-m").await.unwrap();
        assert_eq!(dm.split_into, ["inc-m-split-1"]);
        assert_eq!(dm.incident["symptoms"].as_array().unwrap().len(), 2);
        assert!(!dm.summary.nodes.contains(&"dataset:sessions".to_string()));
        // The engine publishes the mixed incident again, with all three: the split one stays out.
        let mut again = mixed.clone();
        again.updated_at = at(9);
        store::apply_message(pool, &message(IncidentChange::Updated, &again))
            .await
            .unwrap();
        let dm = store::get(pool, "inc-m").await.unwrap();
        assert_eq!(
            dm.incident["symptoms"].as_array().unwrap().len(),
            2,
            "{backend}"
        );
        // Refused: an unknown symptom (400 on `symptoms`), none, or every one left.
        assert!(matches!(
            store::split(pool, "inc-m", &["nope".into()], "ana", None).await,
            Err(Error::Invalid("symptoms", _))
        ));
        assert!(matches!(
            store::split(pool, "inc-m", &[], "ana", None).await,
            Err(Error::Invalid("symptoms", _))
        ));
        let rest: Vec<String> = mixed
            .symptoms
            .iter()
            .filter(|s| s.failure_event_id != sessions)
            .map(|s| s.failure_event_id.clone())
            .collect();
        assert!(matches!(
            store::split(pool, "inc-m", &rest, "ana", None).await,
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            store::split(pool, "nope", &rest, "ana", None).await,
            Err(Error::NotFound(_))
        ));

        // Over HTTP.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = heal_incidents::http::routes(pool.clone(), None);
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let c = reqwest::Client::new();
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
        let (s, v) = post(
            "/api/incidents/inc-m/split",
            json!({ "symptoms": [rest[0]], "note": "two problems" }),
        )
        .await;
        assert_eq!((s, v["id"].as_str()), (201, Some("inc-m-split-2")), "{v}");
        let (s, v) = post(
            "/api/incidents/inc-m-split-2/merge",
            json!({ "into": "inc-m-split-1" }),
        )
        .await;
        assert_eq!((s, v["id"].as_str()), (200, Some("inc-m-split-1")), "{v}");
        for (path, body, status, field) in [
            ("/api/incidents/inc-a/merge", json!({}), 400, Some("into")),
            (
                "/api/incidents/inc-a/merge",
                json!({ "into": 5 }),
                400,
                Some("into"),
            ),
            (
                "/api/incidents/inc-a/merge",
                json!({ "into": "inc-a" }),
                400,
                Some("into"),
            ),
            (
                "/api/incidents/inc-a/merge",
                json!({ "into": "x", "why": 1 }),
                400,
                Some("why"),
            ),
            (
                "/api/incidents/nope/merge",
                json!({ "into": "inc-a" }),
                404,
                Some("id"),
            ),
            (
                "/api/incidents/inc-b/merge",
                json!({ "into": "inc-a" }),
                409,
                None,
            ),
            (
                "/api/incidents/inc-m/split",
                json!({ "symptoms": [] }),
                400,
                Some("symptoms"),
            ),
            (
                "/api/incidents/inc-m/split",
                json!({ "symptoms": [1] }),
                400,
                Some("symptoms"),
            ),
            (
                "/api/incidents/inc-m/split",
                json!({ "symptoms": ["nope"] }),
                400,
                Some("symptoms"),
            ),
            (
                "/api/incidents/inc-m-split-1/split",
                json!({ "symptoms": [sessions] }),
                409,
                None,
            ),
        ] {
            let (s, v) = post(path, body.clone()).await;
            assert_eq!(s, status, "{backend}: {path} {body}: {v}");
            if let Some(f) = field {
                assert_eq!(v["field"], f, "{path} {body}: {v}");
            }
        }
        server.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_browsable_offline() {
    let backend = backends().pop().unwrap();
    let t = TestDb::new(&backend).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = heal_incidents::http::routes(t.pool().clone(), None);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let page = reqwest::get(format!("{base}/api/docs")).await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("/api/openapi.json"), "{html}");
    // Every script and style comes from this server.
    let refs: Vec<&str> = html
        .split(['"', '\''])
        .filter(|s| s.ends_with(".js") || s.ends_with(".css"))
        .collect();
    assert_eq!(refs.len(), 2, "{html}");
    for r in refs {
        assert!(r.starts_with("/api/docs/"), "{r}");
        let a = reqwest::get(format!("{base}{r}")).await.unwrap();
        assert_eq!(a.status(), 200, "{r}");
        assert!(a.bytes().await.unwrap().len() > 10_000, "{r}");
    }
    server.abort();
}
