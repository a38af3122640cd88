//! The console's pages and forms against a real database, behind the same authentication
//! middleware as the API: what each scope sees, what its buttons change, how bad input and
//! unknown ids are answered.

#[path = "../../incidents/tests/common/mod.rs"]
mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use common::{incident, message, node};
use futures::future::BoxFuture;
use heal_console::{Console, GraphSource};
use heal_http::auth::{Auth, TOKEN_COOKIE};
use heal_http::percent_encode as cookie_encode;
use heal_incidents::executor::policy::{Mode, Policy};
use heal_incidents::executor::{self, Executor, Settings};
use heal_incidents::state::{Move, Reason};
use heal_incidents::store;
use heal_lineage::model::{Edge, EdgeKind, Node, NodeKind, Props};
use heal_lineage::query::GraphExport;
use heal_model::incident::*;
use heal_model::quality::Severity;
use heal_testkit::{backends, TestDb};
use std::sync::Arc;
use tower::ServiceExt;

struct Fixed(GraphExport);

impl GraphSource for Fixed {
    fn export(&self) -> BoxFuture<'_, Result<GraphExport, String>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
}

fn graph() -> GraphExport {
    let n = |k: NodeKind, name: &str| Node::new(k, "heal", name, Props::default());
    let nodes = vec![
        n(NodeKind::Stream, "raw-events"),
        n(NodeKind::Job, "ingest"),
        n(NodeKind::Dataset, "orders"),
        n(NodeKind::Job, "daily_revenue"),
        n(NodeKind::Dataset, "daily_revenue"),
        n(NodeKind::Kpi, "revenue"),
    ];
    let e = |a: usize, b: usize, kind| Edge {
        src: nodes[a].key.clone(),
        dst: nodes[b].key.clone(),
        kind,
    };
    let edges = vec![
        e(0, 1, EdgeKind::Reads),
        e(1, 2, EdgeKind::Writes),
        e(2, 3, EdgeKind::Reads),
        e(3, 4, EdgeKind::Writes),
        e(4, 5, EdgeKind::Measures),
    ];
    GraphExport { nodes, edges }
}

const READER: &str = "reader-token-0000000000";
const OPERATOR: &str = "operator-token-00000000";

fn app(pool: sqlx::PgPool, g: GraphExport, protect_reads: bool) -> Router {
    let auth = Arc::new(Auth::new(
        false,
        protect_reads,
        vec![
            ("viewer".to_string(), READER.to_string(), vec!["read"]),
            (
                "ops".to_string(),
                OPERATOR.to_string(),
                vec!["read", "operator"],
            ),
        ],
    ));
    heal_console::routes(Console::new(pool, None, auth.clone(), Arc::new(Fixed(g)))).layer(
        axum::middleware::from_fn_with_state(auth, heal_http::auth::layer),
    )
}

async fn call(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    form: Option<&str>,
) -> (StatusCode, Option<String>, String) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header(
            header::COOKIE,
            format!("{TOKEN_COOKIE}={}", cookie_encode(t)),
        );
    }
    let body = match form {
        Some(f) => {
            req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            Body::from(f.to_string())
        }
        None => Body::empty(),
    };
    let resp = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let location = resp
        .headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = axum::body::to_bytes(resp.into_body(), 10 << 20)
        .await
        .unwrap();
    (status, location, String::from_utf8(bytes.to_vec()).unwrap())
}

fn duplicates(id: &str) -> Incident {
    let mut i = incident(
        id,
        IncidentClass::DuplicateEvents,
        "dataset:orders",
        &["dataset:orders"],
        0,
    );
    i.severity = Severity::High;
    i.title = "Duplicated orders <b>bold</b>".into();
    i.affected = vec![AffectedAsset {
        node: node("dataset:daily_revenue"),
        distance: 1,
        criticality: Some("high".into()),
    }];
    i.recommendations = vec![Recommendation {
        rank: 1,
        action: Action::Backfill {
            dataset: "orders".into(),
            from: i.data_start.to_rfc3339(),
            to: i.data_end.to_rfc3339(),
        },
        success_rate: 0.8,
        rationale: "test".into(),
    }];
    i
}

#[tokio::test]
async fn pages_show_the_incident_and_only_operators_change_anything() {
    for backend in backends() {
        let t = TestDb::new(&backend).await;
        let pool = t.pool().clone();
        let mut g = graph();
        // Keys in the fixture's node form (`dataset:orders`).
        for n in &mut g.nodes {
            n.key = format!("{}:{}", n.kind.as_str(), n.name);
        }
        for e in &mut g.edges {
            e.src = e.src.replace(":heal:", ":");
            e.dst = e.dst.replace(":heal:", ":");
        }
        let inc = duplicates("inc-1");
        store::apply_message(&pool, &message(IncidentChange::Opened, &inc))
            .await
            .unwrap();
        // Every action waits for an operator.
        let ex = Executor::new(
            pool.clone(),
            Settings {
                policy: Policy {
                    default: Mode::Approve,
                    rules: Default::default(),
                },
                ..Settings::default()
            },
            None,
        );
        ex.tick().await.unwrap();
        let actions = executor::actions_of(&pool, "inc-1").await.unwrap();
        assert_eq!(actions[0].state, "pending_approval", "{backend}");
        // Newer incidents that are over do not push it off the overview.
        for k in 0..9 {
            let mut done = incident(
                &format!("done-{k}"),
                IncidentClass::LateData,
                "dataset:orders",
                &["dataset:orders"],
                5 + k,
            );
            done.status = IncidentStatus::Resolved;
            store::apply_message(&pool, &message(IncidentChange::Opened, &done))
                .await
                .unwrap();
            store::transition(&pool, &done.id, Move::Resolve(Reason::Other), "test", None)
                .await
                .unwrap();
        }
        let app = app(pool.clone(), g.clone(), false);

        let (s, _, overview) = call(&app, "GET", "/", None, None).await;
        assert_eq!(s, StatusCode::OK, "{backend}: {overview}");
        assert!(overview.contains("href=\"/incidents/inc-1\""), "{overview}");
        assert!(overview.contains("Duplicated orders &lt;b&gt;bold&lt;/b&gt;"));
        assert!(overview.contains("<main"), "landmarks");

        // A reader sees the incident, its graph and evidence, and no buttons.
        let (s, _, page) = call(&app, "GET", "/incidents/inc-1", Some(READER), None).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert!(page.contains("svg class=\"graph\""), "{page}");
        assert!(page.contains("node dataset root failing"), "{page}");
        assert!(page.contains("blast"), "the blast radius is marked");
        assert!(page.contains("pending_approval"));
        assert!(!page.contains("value=\"approve\""));
        assert!(!page.contains("fb-class"));
        assert!(page.contains("viewer (read only)"));
        // An operator sees the buttons.
        let (_, _, page) = call(&app, "GET", "/incidents/inc-1", Some(OPERATOR), None).await;
        assert!(page.contains("value=\"approve\""), "{page}");
        assert!(page.contains("fb-class"));

        let decide = format!("/incidents/inc-1/actions/{}/decide", actions[0].id);
        let (s, _, _) = call(
            &app,
            "POST",
            &decide,
            Some(READER),
            Some("decision=approve"),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _, _) = call(&app, "POST", &decide, None, Some("decision=approve")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, _, body) = call(
            &app,
            "POST",
            &decide,
            Some(OPERATOR),
            Some("decision=maybe"),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(body.contains("decision"), "{body}");
        let (s, to, _) = call(
            &app,
            "POST",
            &decide,
            Some(OPERATOR),
            Some("decision=approve&note=looks+right"),
        )
        .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(to.as_deref(), Some("/incidents/inc-1#h-actions"));
        let after = executor::actions_of(&pool, "inc-1").await.unwrap();
        assert_eq!(after[0].state, "ready", "{backend}");
        assert_eq!(after[0].decided_by.as_deref(), Some("ops"));
        // Deciding twice is refused.
        let (s, _, _) = call(
            &app,
            "POST",
            &decide,
            Some(OPERATOR),
            Some("decision=reject"),
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT);

        let fb = "/incidents/inc-1/feedback";
        let (s, _, body) = call(&app, "POST", fb, Some(OPERATOR), Some("note=only+a+note")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        let (s, _, _) = call(
            &app,
            "POST",
            fb,
            Some(OPERATOR),
            Some("class=no_such_class&remediation_worked=true"),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, _, _) = call(
            &app,
            "POST",
            fb,
            Some(OPERATOR),
            Some("class=late_data&remediation_worked=false&root_cause=&note=from+the+console"),
        )
        .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        let d = store::get(&pool, "inc-1").await.unwrap();
        assert_eq!(d.feedback.len(), 1);
        assert_eq!(d.feedback[0].class.as_deref(), Some("LATE_DATA"));
        assert_eq!(d.feedback[0].remediation_worked, Some(false));
        assert_eq!(d.feedback[0].actor, "ops");

        let (s, _, _) = call(&app, "GET", "/incidents/nope", None, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _, list) = call(
            &app,
            "GET",
            "/incidents?state=open&severity=high",
            None,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert!(list.contains("inc-1"));
        let (s, _, _) = call(&app, "GET", "/incidents?state=sleeping", None, None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);

        // Lineage: the small graph is drawn whole; a search focuses its one hit.
        let (s, _, lineage) = call(&app, "GET", "/lineage", None, None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            lineage.matches("class=\"node ").count(),
            5,
            "checks and KPIs hidden"
        );
        let (_, _, focused) = call(
            &app,
            "GET",
            "/lineage?q=orders&dir=down&depth=1",
            None,
            None,
        )
        .await;
        assert!(focused.contains("node dataset focus"), "{focused}");
        assert!(focused.contains("id=\"h-node\""));
        assert_eq!(
            focused.matches("class=\"node ").count(),
            2,
            "orders and what reads it"
        );
        let (_, _, miss) = call(&app, "GET", "/lineage?q=zzz", None, None).await;
        assert!(miss.contains("Nothing matches"));

        // Jobs and backfill: bad dates name the field; unknown jobs are 404.
        let (s, _, _) = call(&app, "GET", "/jobs", None, None).await;
        assert_eq!(s, StatusCode::OK);
        let bf = "/jobs/daily_revenue/backfill";
        let (s, _, body) = call(
            &app,
            "POST",
            bf,
            Some(OPERATOR),
            Some("from=yesterday&to=2026-03-02"),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(body.contains("from:"), "{body}");
        let (s, _, _) = call(
            &app,
            "POST",
            bf,
            Some(OPERATOR),
            Some("from=2026-03-02&to=2026-03-01"),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, _, _) = call(
            &app,
            "POST",
            bf,
            Some(OPERATOR),
            Some("from=2026-03-01&to=2026-03-02"),
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "no run of that job here");

        for path in ["/checks", "/quarantine", "/login", "/console.css"] {
            let (s, _, body) = call(&app, "GET", path, None, None).await;
            assert_eq!(s, StatusCode::OK, "{path}: {body}");
        }
        let (s, _, _) = call(&app, "GET", "/checks/no_such_check", None, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        // Sign-in: an unknown token is refused, a known one becomes the cookie.
        let (s, _, _) = call(&app, "POST", "/login", None, Some("token=wrong&next=/jobs")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let req = Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={READER}&next=%2Fjobs")))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        assert_eq!(resp.headers()[header::LOCATION], "/jobs");
        let cookie = resp.headers()[header::SET_COOKIE].to_str().unwrap();
        assert!(
            cookie.starts_with(&format!("{TOKEN_COOKIE}={READER}")),
            "{cookie}"
        );
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));

        // With reads protected, pages send strangers to the sign-in page.
        let closed = self::app(pool.clone(), g.clone(), true);
        let (s, to, _) = call(&closed, "GET", "/incidents/inc-1", None, None).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(to.as_deref(), Some("/login?next=%2Fincidents%2Finc-1"));
        let (s, _, _) = call(&closed, "GET", "/login", None, None).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _, _) = call(&closed, "GET", "/incidents/inc-1", Some(READER), None).await;
        assert_eq!(s, StatusCode::OK);
        t.finish().await;
    }
}

#[tokio::test]
async fn a_form_from_another_site_changes_nothing() {
    let backend = backends().remove(0);
    let t = TestDb::new(&backend).await;
    let app = app(t.pool().clone(), graph(), false);
    let req = Request::post("/jobs/x/backfill")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::HOST, "heal.internal:8080")
        .header(header::ORIGIN, "https://evil.example")
        .header(
            header::COOKIE,
            format!("{TOKEN_COOKIE}={}", cookie_encode(OPERATOR)),
        )
        .body(Body::from("from=2026-03-01&to=2026-03-01"))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    t.finish().await;
}
