//! Bearer tokens with scopes, checked in front of every role's routes.
//!
//! A request that changes something (`POST`, `PUT`, `PATCH`, `DELETE`) needs a token with the
//! `operator` scope (or `admin`); reading endpoints are open unless reads are protected, then
//! they need `read`. Health, readiness and metrics are always open. Without a token the answer
//! is 401 (`unauthorized`, with `WWW-Authenticate: Bearer`); with one whose scope is too small,
//! 403 (`forbidden`). Tokens are compared by their SHA-256 digest and never logged; the
//! token's name is, and handlers find it as a [`Caller`] extension.
//!
//! A browser presents its token in the [`TOKEN_COOKIE`] cookie instead (the console's sign-in
//! sets it, HTTP-only and same-site); a page (any path outside `/api/`) that needs a token the
//! visitor has not given redirects to the sign-in page.

use crate::ApiError;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// What a token may do; each scope includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Read,
    Operator,
    Admin,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "operator" => Some(Scope::Operator),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Operator => "operator",
            Scope::Admin => "admin",
        }
    }
}

/// The holder of the token a request came with (absent when authentication is off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub scope: Scope,
}

struct Token {
    name: String,
    digest: [u8; 32],
    scope: Scope,
}

/// The tokens a server accepts and what each request needs.
pub struct Auth {
    disabled: bool,
    protect_reads: bool,
    tokens: Vec<Token>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Auth {
    /// `tokens`: name, secret, scopes (unknown scope names are ignored; configuration
    /// validates them before this).
    pub fn new<I, S>(disabled: bool, protect_reads: bool, tokens: I) -> Auth
    where
        I: IntoIterator<Item = (String, String, Vec<S>)>,
        S: AsRef<str>,
    {
        Auth {
            disabled,
            protect_reads,
            tokens: tokens
                .into_iter()
                .filter_map(|(name, secret, scopes)| {
                    let scope = scopes
                        .iter()
                        .filter_map(|s| Scope::parse(s.as_ref()))
                        .max()?;
                    Some(Token {
                        name,
                        digest: digest(&secret),
                        scope,
                    })
                })
                .collect(),
        }
    }

    /// No token asked for anywhere.
    pub fn off() -> Auth {
        Auth::new(true, false, Vec::<(String, String, Vec<String>)>::new())
    }

    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }

    /// The scope a request needs, if any.
    pub fn required(&self, method: &Method, path: &str) -> Option<Scope> {
        if self.disabled
            || matches!(
                path,
                "/health"
                    | "/healthz"
                    | "/readyz"
                    | "/metrics"
                    | "/login"
                    | "/logout"
                    | "/console.css"
            )
            || path.starts_with("/health/")
        {
            return None;
        }
        match *method {
            Method::GET | Method::HEAD => self.protect_reads.then_some(Scope::Read),
            Method::OPTIONS => None,
            _ => Some(Scope::Operator),
        }
    }

    /// Who presents `authorization` (the header's value), if the token is known.
    pub fn identify(&self, authorization: Option<&HeaderValue>) -> Option<Caller> {
        let value = authorization?.to_str().ok()?;
        let (kind, secret) = value.split_once(' ')?;
        if !kind.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let d = digest(secret.trim());
        self.tokens.iter().find(|t| t.digest == d).map(|t| Caller {
            name: t.name.clone(),
            scope: t.scope,
        })
    }

    /// Lets the request through, or answers why not.
    pub fn check(
        &self,
        method: &Method,
        path: &str,
        authorization: Option<&HeaderValue>,
    ) -> Result<Option<Caller>, ApiError> {
        let caller = if self.disabled {
            None
        } else {
            self.identify(authorization)
        };
        let Some(needed) = self.required(method, path) else {
            return Ok(caller);
        };
        match caller {
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                if authorization.is_some() {
                    "the bearer token is not known"
                } else {
                    "this needs a bearer token (Authorization: Bearer …)"
                },
            )),
            Some(c) if c.scope < needed => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "token `{}` has the {} scope; this needs {}",
                    c.name,
                    c.scope.as_str(),
                    needed.as_str()
                ),
            )),
            Some(c) => Ok(Some(c)),
        }
    }
}

/// The cookie a browser carries its token in.
pub const TOKEN_COOKIE: &str = "heal_token";

fn cookie_decode(v: &str) -> Option<String> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The credentials a request presents: its `Authorization` header, or else the token in
/// its [`TOKEN_COOKIE`] cookie as a bearer header.
pub fn presented(headers: &axum::http::HeaderMap) -> Option<HeaderValue> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        return Some(v.clone());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == TOKEN_COOKIE)
        .and_then(|(_, v)| cookie_decode(v))
        .filter(|t| !t.is_empty())
        .and_then(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok())
}

/// The middleware: `router.layer(axum::middleware::from_fn_with_state(auth, auth::layer))`.
pub async fn layer(State(auth): State<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let presented = presented(req.headers());
    match auth.check(req.method(), &path, presented.as_ref()) {
        Ok(caller) => {
            if let Some(c) = caller {
                req.extensions_mut().insert(c);
            }
            next.run(req).await
        }
        Err(e) => {
            tracing::info!(method = %req.method(), path, code = e.code, "request refused");
            let unauthorized = e.status == StatusCode::UNAUTHORIZED;
            let page = !path.starts_with("/api/") && *req.method() == Method::GET;
            if unauthorized && page {
                let back = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "/".into());
                return axum::response::Redirect::to(&format!(
                    "/login?next={}",
                    crate::percent_encode(&back)
                ))
                .into_response();
            }
            let mut resp = e.into_response();
            if unauthorized {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"heal\""),
                );
            }
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    fn auth(protect_reads: bool) -> Arc<Auth> {
        Arc::new(Auth::new(
            false,
            protect_reads,
            vec![
                ("viewer".to_string(), "r".repeat(20), vec!["read"]),
                ("ops".to_string(), "o".repeat(20), vec!["read", "operator"]),
            ],
        ))
    }

    async fn call(auth: Arc<Auth>, method: Method, path: &str, token: Option<&str>) -> Response {
        let app = Router::new()
            .route(
                "/api/things",
                get(|| async { "list" }).post(|| async { "made" }),
            )
            .route("/healthz", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(auth, layer));
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
    }

    #[tokio::test]
    async fn changes_need_an_operator_token_reads_are_open_unless_protected() {
        let (r, o) = ("r".repeat(20), "o".repeat(20));
        let a = auth(false);
        let resp = call(a.clone(), Method::POST, "/api/things", None).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(resp.headers().contains_key(header::WWW_AUTHENTICATE));
        let resp = call(
            a.clone(),
            Method::POST,
            "/api/things",
            Some("wrong-token-0000000"),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let resp = call(a.clone(), Method::POST, "/api/things", Some(&r)).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["code"], "forbidden");
        assert!(!v.to_string().contains(&r), "the token is never echoed");
        assert_eq!(
            call(a.clone(), Method::POST, "/api/things", Some(&o))
                .await
                .status(),
            StatusCode::OK
        );
        assert_eq!(
            call(a.clone(), Method::GET, "/api/things", None)
                .await
                .status(),
            StatusCode::OK
        );
        let p = auth(true);
        assert_eq!(
            call(p.clone(), Method::GET, "/api/things", None)
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(p.clone(), Method::GET, "/api/things", Some(&r))
                .await
                .status(),
            StatusCode::OK
        );
        assert_eq!(
            call(p.clone(), Method::GET, "/healthz", None)
                .await
                .status(),
            StatusCode::OK
        );
        // Off: nothing is asked.
        assert_eq!(
            call(Arc::new(Auth::off()), Method::POST, "/api/things", None)
                .await
                .status(),
            StatusCode::OK
        );
    }

    #[test]
    fn the_highest_scope_counts_and_unknown_tokens_are_nobody() {
        let a = auth(false);
        let o = HeaderValue::from_str(&format!("Bearer {}", "o".repeat(20))).unwrap();
        assert_eq!(a.identify(Some(&o)).unwrap().scope, Scope::Operator);
        let basic = HeaderValue::from_static("Basic b3BzOm9vb28=");
        assert_eq!(a.identify(Some(&basic)), None);
        assert_eq!(a.identify(None), None);
    }

    #[tokio::test]
    async fn a_browser_signs_in_with_the_cookie_and_pages_redirect_to_sign_in() {
        let p = auth(true);
        let app = Router::new()
            .route("/incidents", get(|| async { "page" }))
            .route("/api/things", get(|| async { "list" }))
            .layer(axum::middleware::from_fn_with_state(p, layer));
        let get_with = |path: &str, cookie: Option<String>| {
            let mut req = Request::builder().uri(path);
            if let Some(c) = cookie {
                req = req.header(header::COOKIE, c);
            }
            app.clone().oneshot(req.body(Body::empty()).unwrap())
        };
        let page = get_with("/incidents?state=open", None).await.unwrap();
        assert_eq!(page.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            page.headers()[header::LOCATION],
            "/login?next=%2Fincidents%3Fstate%3Dopen"
        );
        // The API still answers 401, never a redirect.
        let api = get_with("/api/things", None).await.unwrap();
        assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
        let cookie = format!(
            "theme=dark; {TOKEN_COOKIE}={}",
            crate::percent_encode(&"r".repeat(20))
        );
        let page = get_with("/incidents", Some(cookie)).await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let wrong = format!("{TOKEN_COOKIE}=nobody");
        assert_eq!(
            get_with("/incidents", Some(wrong)).await.unwrap().status(),
            StatusCode::SEE_OTHER
        );
    }

    #[test]
    fn cookie_values_round_trip() {
        for t in ["plain-token_1.x~", "with space;and=signs%", "ünï"] {
            assert_eq!(cookie_decode(&crate::percent_encode(t)).as_deref(), Some(t));
            assert!(!crate::percent_encode(t).contains([';', ' ', '=']));
        }
    }
}
