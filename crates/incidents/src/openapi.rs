//! The OpenAPI 3.1 document of the incident API, served at `/api/openapi.json`. The enumerations
//! (states, classes, severities, resolution reasons, actions) come from the code that checks
//! them, so the document cannot drift from what the API accepts; a test sends every documented
//! operation to the router.

use crate::state::{Reason, State};
use heal_model::incident::{IncidentClass, ACTION_NAMES};
use heal_model::quality::Severity;
use serde_json::{json, Value};

fn strings<I: IntoIterator<Item = &'static str>>(it: I) -> Value {
    Value::from(it.into_iter().collect::<Vec<_>>())
}

fn error(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

fn ok(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn id_param() -> Value {
    json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" },
            "description": "The incident's id" })
}

fn limit(max: u32, default: u32) -> Value {
    json!({ "name": "limit", "in": "query", "required": false,
            "schema": { "type": "integer", "minimum": 1, "maximum": max, "default": default } })
}

/// A change: needs an operator token; answers the incident's new state.
fn change(summary: &str, body: Value, answer: Value) -> Value {
    json!({
        "summary": summary,
        "security": [{ "bearer": ["operator"] }],
        "parameters": [id_param()],
        "requestBody": { "required": false,
                         "content": { "application/json": { "schema": body } } },
        "responses": {
            "200": answer.clone(),
            "201": answer,
            "400": error("A field of the body is wrong; `field` names it"),
            "401": error("No bearer token, or an unknown one"),
            "403": error("The token's scope is too small (operator needed)"),
            "404": error("No such incident"),
            "409": error("The state machine refuses this move"),
        }
    })
}

/// Every state an executor action can be in (the `executor_actions.state` check).
pub const ACTION_STATES: [&str; 11] = [
    "manual",
    "skipped",
    "refused",
    "pending_approval",
    "ready",
    "rejected",
    "applying",
    "applied",
    "failed",
    "verified",
    "rolled_back",
];

/// An operator's decision on a pending action.
fn decision(summary: &str) -> Value {
    json!({
        "summary": summary,
        "security": [{ "bearer": ["operator"] }],
        "parameters": [id_param(), { "name": "action", "in": "path", "required": true,
            "schema": { "type": "string" }, "description": "The action's id (a positive whole number)" }],
        "requestBody": { "required": false, "content": { "application/json": {
            "schema": { "$ref": "#/components/schemas/Move" } } } },
        "responses": {
            "200": ok("The action after the decision", json!({ "$ref": "#/components/schemas/ExecutorAction" })),
            "400": error("A field of the body or the action id is wrong; `field` names it"),
            "401": error("No bearer token, or an unknown one"),
            "403": error("The token's scope is too small (operator needed)"),
            "404": error("No such incident or action"),
            "409": error("The action is not waiting for a decision"),
        }
    })
}

pub fn document() -> Value {
    let states = strings(State::ALL.iter().map(|s| s.as_str()));
    let classes = strings(IncidentClass::ALL.iter().map(|c| c.as_str()));
    let severities = strings(Severity::ALL.iter().map(|s| s.as_str()));
    let reasons = strings(Reason::OPERATOR.iter().map(|r| r.as_str()));
    let actions = strings(ACTION_NAMES);
    let text = json!({ "type": "string", "maxLength": 10000 });
    let state_answer = ok(
        "The incident's state after the move",
        json!({ "$ref": "#/components/schemas/StateChange" }),
    );
    let time = |name: &str, what: &str| {
        json!({ "name": name, "in": "query", "required": false, "description": what,
                "schema": { "type": "string", "format": "date-time" } })
    };
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "heal incident API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Incidents AI Ops raised, their life cycle, timeline, notes and feedback. Changes need a bearer token with the operator scope (401 without, 403 with a smaller one); reads are open unless the server protects them."
        },
        "paths": {
            "/api/incidents": { "get": {
                "summary": "Incidents, newest first, with filters and paging",
                "parameters": [
                    { "name": "state", "in": "query", "schema": { "type": "string", "enum": states } },
                    { "name": "class", "in": "query", "schema": { "type": "string", "enum": classes } },
                    { "name": "severity", "in": "query", "schema": { "type": "string", "enum": severities } },
                    { "name": "dataset", "in": "query", "schema": { "type": "string" },
                      "description": "A lineage node the incident touches (e.g. dataset:orders)" },
                    time("since", "Opened at or after"),
                    time("until", "Opened before"),
                    limit(1000, 50),
                    { "name": "offset", "in": "query", "schema": { "type": "integer", "minimum": 0, "default": 0 } }
                ],
                "responses": {
                    "200": ok("A page of incidents", json!({
                        "type": "object",
                        "required": ["incidents", "total", "limit", "offset"],
                        "properties": {
                            "incidents": { "type": "array", "items": { "$ref": "#/components/schemas/IncidentSummary" } },
                            "total": { "type": "integer" },
                            "limit": { "type": "integer" },
                            "offset": { "type": "integer" }
                        }
                    })),
                    "400": error("A query parameter is wrong; `field` names it")
                }
            }},
            "/api/incidents/similar/{classification}": { "get": {
                "summary": "Past incidents of a class (the seed's endpoint)",
                "parameters": [
                    { "name": "classification", "in": "path", "required": true,
                      "schema": { "type": "string", "enum": classes } },
                    limit(1000, 20)
                ],
                "responses": {
                    "200": ok("Incidents of the class, newest first", json!({ "type": "array", "items": { "type": "object" } })),
                    "400": error("Unknown class or bad limit")
                }
            }},
            "/api/incidents/{id}": { "get": {
                "summary": "One incident with its timeline and feedback",
                "parameters": [id_param()],
                "responses": {
                    "200": ok("The incident", json!({ "$ref": "#/components/schemas/IncidentDetail" })),
                    "404": error("No such incident")
                }
            }},
            "/api/incidents/{id}/similar": { "get": {
                "summary": "Similar past incidents and how they ended",
                "parameters": [id_param(), limit(100, 10)],
                "responses": {
                    "200": ok("Similar incidents, most similar first", json!({
                        "type": "object", "required": ["incident", "similar"],
                        "properties": { "incident": { "type": "string" }, "similar": { "type": "array", "items": { "type": "object" } } }
                    })),
                    "400": error("Bad limit"),
                    "404": error("No such incident")
                }
            }},
            "/api/incidents/{id}/acknowledge": { "post": change(
                "Acknowledge (open → acknowledged)",
                json!({ "$ref": "#/components/schemas/Move" }), state_answer.clone()) },
            "/api/incidents/{id}/reopen": { "post": change(
                "Reopen a resolved, failed or false-positive incident",
                json!({ "$ref": "#/components/schemas/Move" }), state_answer.clone()) },
            "/api/incidents/{id}/resolve": { "post": change(
                "Resolve with a reason (the seed's callers may send `resolution` text instead)",
                json!({
                    "type": "object", "additionalProperties": false,
                    "anyOf": [{ "required": ["reason"] }, { "required": ["resolution"] }],
                    "properties": {
                        "reason": { "type": "string", "enum": reasons },
                        "note": text, "actor": text,
                        "resolution": { "type": "string", "maxLength": 10000, "description": "The seed's free-text resolution: reason other, text as the note" }
                    }
                }), state_answer) },
            "/api/incidents/{id}/notes": { "post": change(
                "Add a note to the timeline",
                json!({
                    "type": "object", "additionalProperties": false, "required": ["note"],
                    "properties": { "note": { "type": "string", "minLength": 1, "maxLength": 10000 }, "actor": text }
                }),
                ok("The note stored", json!({ "type": "object", "properties": { "incident": { "type": "string" }, "note": { "type": "string" } } }))) },
            "/api/incidents/{id}/feedback": { "post": change(
                "Feedback: the right class, the real root cause, whether the remediation worked (AI Ops learns from it)",
                json!({
                    "type": "object", "additionalProperties": false,
                    "properties": {
                        "class": { "type": "string", "enum": classes },
                        "root_cause": text,
                        "remediation_worked": { "type": "boolean" },
                        "action": { "type": "string", "enum": actions },
                        "note": text, "actor": text
                    }
                }),
                ok("The feedback stored and published", json!({ "type": "object" }))) },
            "/api/incidents/{id}/merge": { "post": change(
                "Merge this incident into another (the same problem): it is resolved as merged and points at the other",
                json!({
                    "type": "object", "additionalProperties": false, "required": ["into"],
                    "properties": { "into": { "type": "string", "minLength": 1 }, "note": text, "actor": text }
                }),
                ok("The incident merged into", json!({ "$ref": "#/components/schemas/IncidentSummary" }))) },
            "/api/incidents/{id}/split": { "post": change(
                "Split symptoms (by failure event id) out into a new incident; at least one must stay",
                json!({
                    "type": "object", "additionalProperties": false, "required": ["symptoms"],
                    "properties": {
                        "symptoms": { "type": "array", "minItems": 1, "items": { "type": "string" } },
                        "note": text, "actor": text
                    }
                }),
                ok("The new incident", json!({ "$ref": "#/components/schemas/IncidentSummary" }))) },
            "/api/incidents/{id}/actions": { "get": {
                "summary": "The self-healing executor's actions for the incident: dry run, mode, state, outcome",
                "parameters": [id_param()],
                "responses": {
                    "200": ok("The actions, best ranked first", json!({
                        "type": "object", "required": ["incident", "actions"],
                        "properties": {
                            "incident": { "type": "string" },
                            "actions": { "type": "array", "items": { "$ref": "#/components/schemas/ExecutorAction" } }
                        }
                    })),
                    "404": error("No such incident")
                }
            }},
            "/api/incidents/{id}/actions/{action}/approve": { "post": decision(
                "Approve an action waiting for an operator; the executor applies it at its next round") },
            "/api/incidents/{id}/actions/{action}/reject": { "post": decision(
                "Reject an action waiting for an operator") },
            "/api/executor/status": { "get": {
                "summary": "Whether the executor runs, the rate cap and the circuit breaker",
                "responses": { "200": ok("The executor's status", json!({ "type": "object" })) }
            }},
            "/api/executor/audit": { "get": {
                "summary": "The executor's append-only audit log, newest first",
                "parameters": [
                    { "name": "incident", "in": "query", "schema": { "type": "string" },
                      "description": "Only this incident's entries" },
                    limit(1000, 100)
                ],
                "responses": {
                    "200": ok("Audit entries", json!({ "type": "object", "properties": {
                        "entries": { "type": "array", "items": { "type": "object" } } } })),
                    "400": error("A query parameter is wrong; `field` names it")
                }
            }},
            "/api/executor/breaker/reset": { "post": {
                "summary": "Close the circuit breaker: earlier failures no longer count",
                "security": [{ "bearer": ["operator"] }],
                "requestBody": { "required": false, "content": { "application/json": { "schema": {
                    "type": "object", "additionalProperties": false, "properties": { "actor": text } } } } },
                "responses": {
                    "200": ok("The breaker is closed", json!({ "type": "object" })),
                    "400": error("A field of the body is wrong; `field` names it"),
                    "401": error("No bearer token, or an unknown one"),
                    "403": error("The token's scope is too small (operator needed)")
                }
            }},
            "/api/docs": { "get": {
                "summary": "This document, browsable (Swagger UI; its assets are served from here, nothing from elsewhere)",
                "responses": { "200": { "description": "An HTML page", "content": { "text/html": { "schema": { "type": "string" } } } } }
            }},
            "/api/openapi.json": { "get": {
                "summary": "This document",
                "responses": { "200": ok("OpenAPI 3.1", json!({ "type": "object" })) }
            }}
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": {
                    "type": "object", "required": ["code", "message"],
                    "properties": {
                        "code": { "type": "string", "description": "Stable: scripts branch on it" },
                        "message": { "type": "string" },
                        "field": { "type": ["string", "null"], "description": "The parameter or body field at fault" },
                        "error": { "type": "string", "description": "The message again, for the first API versions' clients" }
                    }
                },
                "Move": {
                    "type": "object", "additionalProperties": false,
                    "properties": { "actor": text, "note": text }
                },
                "StateChange": { "type": "object" },
                "IncidentSummary": {
                    "type": "object",
                    "properties": {
                        "id": { "type": "string" },
                        "state": { "type": "string", "enum": states },
                        "class": { "type": "string", "enum": classes },
                        "severity": { "type": "string", "enum": severities }
                    }
                },
                "IncidentDetail": { "type": "object" },
                "ExecutorAction": {
                    "type": "object",
                    "properties": {
                        "id": { "type": "integer" },
                        "action": { "type": "string", "enum": actions },
                        "mode": { "type": "string", "enum": ["auto", "approve", "off"] },
                        "state": { "type": "string", "enum": ACTION_STATES },
                        "data_changing": { "type": "boolean" },
                        "blast_radius": { "type": "integer" },
                        "dry_run": { "type": "object" },
                        "outcome": { "type": ["object", "null"] }
                    }
                }
            }
        }
    })
}
