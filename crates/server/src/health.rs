//! Liveness, readiness and metrics endpoints served by every role's listener.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What must hold for the process to be ready: the database answers, and every registered
/// component (e.g. the ingest consumer) reports itself running.
pub struct Readiness {
    pool: PgPool,
    components: Mutex<BTreeMap<String, Arc<AtomicBool>>>,
    roles: Vec<String>,
}

impl Readiness {
    pub fn new(pool: PgPool, roles: Vec<String>) -> Arc<Readiness> {
        Arc::new(Readiness {
            pool,
            components: Mutex::new(BTreeMap::new()),
            roles,
        })
    }

    /// Registers a component; it is not ready until the returned flag is set.
    pub fn component(&self, name: &str) -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(false));
        self.components
            .lock()
            .expect("readiness lock")
            .insert(name.to_string(), flag.clone());
        flag
    }

    async fn check(&self) -> (bool, serde_json::Value) {
        let db = tokio::time::timeout(
            Duration::from_secs(5),
            sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&self.pool),
        )
        .await
        .map(|r| r.is_ok())
        .unwrap_or(false);
        let components: BTreeMap<String, bool> = self
            .components
            .lock()
            .expect("readiness lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.load(Ordering::SeqCst)))
            .collect();
        let ready = db && components.values().all(|v| *v);
        (
            ready,
            json!({ "ready": ready, "database": db, "components": components, "roles": self.roles }),
        )
    }
}

pub fn routes(readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(readiness)
}

async fn readyz(State(r): State<Arc<Readiness>>) -> Response {
    let (ready, body) = r.check().await;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics() -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        crate::telemetry::prometheus().render(),
    )
        .into_response()
}
