//! The one error shape of every role's HTTP API. A failed request answers
//!
//! ```json
//! { "code": "invalid_parameter", "message": "limit must be a whole number from 1 to 1000",
//!   "field": "limit", "error": "limit must be a whole number from 1 to 1000" }
//! ```
//!
//! `code` is stable (scripts branch on it), `message` is for people, `field` names the query
//! parameter or body field at fault when there is one, and `error` repeats the message for
//! clients of the first API versions. What went wrong inside (database text, backend errors)
//! is logged with the request's route and never returned.

pub mod auth;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::collections::HashMap;
use std::fmt::Display;

/// An error answer: status, stable code, message and the offending field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// 400: a query parameter or body field is wrong (`invalid_parameter`).
    pub fn invalid(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_parameter", message).with_field(field)
    }

    /// 400: a field of the body is wrong (`invalid_field`).
    pub fn invalid_field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_field", message).with_field(field)
    }

    /// 400: the body as a whole cannot be used (`invalid_body`).
    pub fn bad_body(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message)
    }

    /// 404 (`not_found`).
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: the request is valid but conflicts with the current state (`conflict`).
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 503: a backend this request needs failed; `detail` is logged, not returned.
    pub fn unavailable(what: &str, detail: impl Display) -> ApiError {
        tracing::error!(error = %detail, backend = what, "request failed: backend unavailable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("{what} is unavailable; see the server log"),
        )
    }

    /// 500: a bug or an unexpected failure; `detail` is logged, not returned.
    pub fn internal(detail: impl Display) -> ApiError {
        tracing::error!(error = %detail, "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }

    /// The same error with another stable code.
    pub fn with_code(mut self, code: &'static str) -> ApiError {
        self.code = code;
        self
    }

    pub fn with_field(mut self, field: &str) -> ApiError {
        self.field = Some(field.to_string());
        self
    }

    fn with_field_opt(mut self, field: Option<String>) -> ApiError {
        self.field = field;
        self
    }

    pub fn body(&self) -> serde_json::Value {
        json!({
            "code": self.code,
            "message": self.message,
            "field": self.field,
            "error": self.message,
        })
    }
}

impl Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// Percent-encodes every byte outside `A-Za-z0-9-._~`: a safe path segment, query value or
/// cookie value.
pub fn percent_encode(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// Refuses query parameters outside `allowed`, naming the first unknown one.
pub fn only(params: &HashMap<String, String>, allowed: &[&str]) -> Result<(), ApiError> {
    let mut keys: Vec<&String> = params.keys().collect();
    keys.sort();
    if let Some(k) = keys.iter().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            k,
            format!(
                "unknown query parameter {k:?}; accepted: {}",
                allowed.join(", ")
            ),
        )
        .with_code("unknown_parameter"));
    }
    // PostgreSQL text cannot hold a NUL character: refuse it here rather than fail in the store.
    match keys.into_iter().find(|k| params[*k].contains('\0')) {
        Some(k) => Err(ApiError::invalid(
            k,
            format!("{k} must not contain a NUL character"),
        )),
        None => Ok(()),
    }
}

/// Middleware: a path holding an encoded NUL character (`%00`) is refused with 400 before any
/// handler sees it (PostgreSQL text cannot hold one, so it could never name anything).
pub async fn refuse_nul_in_path(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if req.uri().path().to_ascii_lowercase().contains("%00") {
        return ApiError::invalid("path", "the path must not contain a NUL character (%00)")
            .into_response();
    }
    next.run(req).await
}

/// A query parameter parsed as `T`, or a 400 naming it with `expected` (e.g. "a whole number
/// from 1 to 1000").
pub fn parse<T: std::str::FromStr>(
    params: &HashMap<String, String>,
    name: &str,
    expected: &str,
) -> Result<Option<T>, ApiError> {
    match params.get(name) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::invalid(name, format!("{name} must be {expected}; got {v:?}"))),
    }
}

/// A query string that did not deserialize, as a 400 naming the parameter when serde's
/// message does (`field: problem`, or ``unknown field `x` ``).
pub fn query_rejection(e: axum::extract::rejection::QueryRejection) -> ApiError {
    let text = e.body_text();
    ApiError::invalid("", text.clone()).with_field_opt(field_in(&text))
}

fn field_in(text: &str) -> Option<String> {
    let rest = text.rsplit_once("query string: ").map_or(text, |(_, r)| r);
    if let Some(after) = rest.split_once("field `").map(|(_, a)| a) {
        return after.split_once('`').map(|(f, _)| f.to_string());
    }
    let (head, _) = rest.split_once(": ")?;
    head.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
        .then(|| head.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_error_answers_its_status_code_message_and_field() {
        let e = ApiError::invalid("limit", "limit must be a whole number");
        let r = e.clone().into_response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["code"], "invalid_parameter");
        assert_eq!(v["field"], "limit");
        assert_eq!(v["message"], "limit must be a whole number");
        assert_eq!(v["error"], v["message"]);
    }

    #[test]
    fn internal_details_are_not_returned() {
        let e = ApiError::unavailable("the database", "relation \"secret_table\" does not exist");
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!e.body().to_string().contains("secret_table"));
        let e = ApiError::internal("password=hunter2");
        assert!(!e.body().to_string().contains("hunter2"));
        assert_eq!(e.code, "internal");
    }

    #[test]
    fn unknown_and_malformed_parameters_are_named() {
        let mut q = HashMap::new();
        q.insert("limit".to_string(), "ten".to_string());
        assert!(only(&q, &["limit"]).is_ok());
        let e = parse::<u32>(&q, "limit", "a whole number").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("limit"));
        assert!(e.message.contains("\"ten\""));
        q.insert("bogus".to_string(), "1".to_string());
        let e = only(&q, &["limit"]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("bogus"));
        assert_eq!(e.code, "unknown_parameter");
        assert_eq!(parse::<u32>(&HashMap::new(), "limit", "x").unwrap(), None);
        // A NUL character can never be stored or matched: refused naming the parameter.
        let mut q = HashMap::new();
        q.insert("dataset".to_string(), "or\0ders".to_string());
        let e = only(&q, &["dataset"]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("dataset"));
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn serde_query_messages_name_their_field() {
        assert_eq!(
            field_in("Failed to deserialize query string: date: input contains invalid characters")
                .as_deref(),
            Some("date")
        );
        assert_eq!(
            field_in(
                "Failed to deserialize query string: unknown field `bogus`, expected one of `a`"
            )
            .as_deref(),
            Some("bogus")
        );
        assert_eq!(
            field_in("Failed to deserialize query string: something odd"),
            None
        );
    }
}
