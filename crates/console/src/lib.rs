//! The web console: server-rendered HTML pages with SVG pictures over the platform's own
//! database and lineage graph — overview, incidents, lineage explorer, check history, jobs
//! and quarantine — served at `/` beside the API. No script, no CDN, nothing to build: the
//! pages are HTML forms and links, so they work offline, with a keyboard and on a phone.
//!
//! Sign-in uses the API's tokens: `/login` stores the token in an HTTP-only, same-site
//! cookie that the authentication middleware accepts like a bearer header. Buttons appear
//! for the operator scope (or when authentication is off); pages for the read scope.

pub mod graph;
mod incidents;
pub mod layout;
mod lineage;
mod ops;
mod overview;
pub mod page;
pub mod svg;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use futures::future::BoxFuture;
use heal_http::auth::{Auth, Caller, Scope};
use heal_lineage::query::GraphExport;
use maud::{html, Markup};
use page::Viewer;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the console reads the lineage graph: the lineage service in this process or the
/// lineage role over HTTP (the server fills it in).
pub trait GraphSource: Send + Sync {
    fn export(&self) -> BoxFuture<'_, Result<GraphExport, String>>;
}

/// How long an indexed graph is reused before it is read again.
const GRAPH_TTL: Duration = Duration::from_secs(10);

/// The console's state.
pub struct Console {
    pub pool: PgPool,
    pub bus: Option<heal_bus::Bus>,
    pub auth: Arc<Auth>,
    graph_source: Arc<dyn GraphSource>,
    graph: tokio::sync::Mutex<Option<(Instant, Arc<graph::Graph>)>>,
    ingestor: tokio::sync::OnceCell<heal_ingest::Ingestor>,
}

impl Console {
    pub fn new(
        pool: PgPool,
        bus: Option<heal_bus::Bus>,
        auth: Arc<Auth>,
        graph_source: Arc<dyn GraphSource>,
    ) -> Arc<Console> {
        Arc::new(Console {
            pool,
            bus,
            auth,
            graph_source,
            graph: tokio::sync::Mutex::new(None),
            ingestor: tokio::sync::OnceCell::new(),
        })
    }

    /// The lineage graph, read at most every [`GRAPH_TTL`]; an empty one (with the reason
    /// logged) when lineage cannot be reached, so pages still show everything else.
    pub async fn graph(&self) -> Arc<graph::Graph> {
        let mut cached = self.graph.lock().await;
        if let Some((at, g)) = cached.as_ref() {
            if at.elapsed() < GRAPH_TTL {
                return g.clone();
            }
        }
        let g = match self.graph_source.export().await {
            Ok(e) => Arc::new(graph::Graph::new(e)),
            Err(e) => {
                tracing::warn!(error = %e, "the console could not read the lineage graph");
                match cached.as_ref() {
                    Some((_, g)) => g.clone(),
                    None => Arc::new(graph::Graph::default()),
                }
            }
        };
        *cached = Some((Instant::now(), g.clone()));
        g
    }

    /// The ingest machinery a replay from the quarantine page runs with.
    async fn ingestor(&self) -> Result<&heal_ingest::Ingestor, Fail> {
        self.ingestor
            .get_or_try_init(|| {
                heal_ingest::Ingestor::new(self.pool.clone(), heal_ingest::Settings::default())
            })
            .await
            .map_err(|e| Fail::internal(format!("starting ingest for a replay: {e}")))
    }
}

/// The console's routes (pages, forms, its style sheet).
pub fn routes(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(overview::page))
        .route("/incidents", get(incidents::list))
        .route("/incidents/{id}", get(incidents::page))
        .route(
            "/incidents/{id}/actions/{action}/decide",
            post(incidents::decide),
        )
        .route("/incidents/{id}/feedback", post(incidents::feedback))
        .route("/lineage", get(lineage::page))
        .route("/checks", get(ops::checks))
        .route("/checks/{name}", get(ops::check))
        .route("/jobs", get(ops::jobs))
        .route("/jobs/{job}/backfill", post(ops::backfill))
        .route("/quarantine", get(ops::quarantine))
        .route("/quarantine/replay", post(ops::replay))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/console.css", get(css))
        .with_state(console)
}

/// The name of the cookie that carries a signed-in token.
pub const COOKIE: &str = heal_http::auth::TOKEN_COOKIE;

/// Who asks: from the caller the authentication middleware identified.
pub struct Who(pub Viewer);

impl FromRequestParts<Arc<Console>> for Who {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        let caller = parts.extensions.get::<Caller>().cloned();
        let auth_off = state.auth.is_disabled();
        Ok(Who(Viewer {
            operator: auth_off || caller.as_ref().is_some_and(|c| c.scope >= Scope::Operator),
            name: caller.map(|c| c.name),
            auth_off,
        }))
    }
}

impl Who {
    /// The name recorded as the actor of a change.
    pub fn actor(&self) -> String {
        self.0.name.clone().unwrap_or_else(|| "console".to_string())
    }
}

/// What a page handler can fail with.
#[derive(Debug)]
pub enum Fail {
    NotFound(String),
    /// A form field that is wrong: (field, why).
    Invalid(String, String),
    Forbidden(String),
    Conflict(String),
    Internal(String),
}

impl Fail {
    fn internal(e: impl std::fmt::Display) -> Fail {
        Fail::Internal(e.to_string())
    }
}

impl From<sqlx::Error> for Fail {
    fn from(e: sqlx::Error) -> Fail {
        Fail::internal(e)
    }
}

impl From<heal_incidents::store::Error> for Fail {
    fn from(e: heal_incidents::store::Error) -> Fail {
        use heal_incidents::store::Error as E;
        match e {
            E::NotFound(what) => Fail::NotFound(format!("no incident {what}")),
            E::Conflict(m) => Fail::Conflict(m),
            E::Invalid(field, m) => Fail::Invalid(field.to_string(), m),
            E::Db(e) => Fail::internal(e),
        }
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            Fail::NotFound(m) => (StatusCode::NOT_FOUND, "Not found", m),
            Fail::Invalid(field, m) => (
                StatusCode::BAD_REQUEST,
                "Not accepted",
                format!("{field}: {m}"),
            ),
            Fail::Forbidden(m) => (StatusCode::FORBIDDEN, "Not allowed", m),
            Fail::Conflict(m) => (StatusCode::CONFLICT, "Not possible now", m),
            Fail::Internal(e) => {
                tracing::error!(error = %e, "a console page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "the page could not be made; the server's log says why".to_string(),
                )
            }
        };
        let viewer = Viewer {
            name: None,
            operator: false,
            auth_off: false,
        };
        (
            status,
            Html(page::trouble(&viewer, title, &message).into_string()),
        )
            .into_response()
    }
}

pub type Answer = Result<Response, Fail>;

fn ok(m: Markup) -> Answer {
    Ok(Html(m.into_string()).into_response())
}

/// Refuses a change made by someone who may only read, and a form posted from another site
/// (its `Origin` names a different host than the request's).
fn may_change(who: &Who, headers: &HeaderMap) -> Result<(), Fail> {
    if !who.0.operator {
        return Err(Fail::Forbidden(
            "this needs a token with the operator scope; sign in with one".into(),
        ));
    }
    if let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        let same = origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host);
        if !same && origin != "null" {
            return Err(Fail::Forbidden(format!(
                "a form from {origin} cannot change anything here"
            )));
        }
    }
    Ok(())
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        page::CSS,
    )
        .into_response()
}

#[derive(serde::Deserialize, Default)]
struct LoginQuery {
    next: Option<String>,
}

async fn login_page(who: Who, axum::extract::Query(q): axum::extract::Query<LoginQuery>) -> Answer {
    ok(login_form(&who.0, q.next.as_deref(), None))
}

fn login_form(viewer: &Viewer, next: Option<&str>, error: Option<&str>) -> Markup {
    page::frame(
        "Sign in",
        "",
        viewer,
        None,
        html! {
            @if let Some(e) = error { p.notice.bad role="alert" { (e) } }
            @if viewer.auth_off {
                p.notice { "Authentication is off on this server: every page and button works without signing in." }
            }
            form.stack method="post" action="/login" {
                label for="token" { "API token" }
                input #token name="token" type="password" autocomplete="current-password" required;
                input type="hidden" name="next" value=(next.unwrap_or("/"));
                p.muted { "The same bearer tokens as the API: the read scope shows pages, operator adds the buttons." }
                div { button type="submit" { "Sign in" } }
            }
        },
    )
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

/// Only a path on this site is a place to go back to.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p,
        _ => "/",
    }
}

async fn login(State(c): State<Arc<Console>>, who: Who, Form(f): Form<LoginForm>) -> Response {
    let bearer = HeaderValue::from_str(&format!("Bearer {}", f.token.trim())).ok();
    match c.auth.identify(bearer.as_ref()) {
        Some(caller) => {
            tracing::info!(token = %caller.name, "signed in to the console");
            let cookie = format!(
                "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
                heal_http::percent_encode(f.token.trim())
            );
            (
                [(header::SET_COOKIE, cookie)],
                Redirect::to(local_path(f.next.as_deref())),
            )
                .into_response()
        }
        None => (
            StatusCode::UNAUTHORIZED,
            Html(
                login_form(
                    &who.0,
                    f.next.as_deref(),
                    Some("That token is not known to this server."),
                )
                .into_string(),
            ),
        )
            .into_response(),
    }
}

async fn logout() -> Response {
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
        )],
        Redirect::to("/"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(local_path(Some("/incidents/x")), "/incidents/x");
        assert_eq!(local_path(Some("//evil.example")), "/");
        assert_eq!(local_path(Some("https://evil.example")), "/");
        assert_eq!(local_path(Some("/\\evil")), "/");
        assert_eq!(local_path(None), "/");
    }
}
