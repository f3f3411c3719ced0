//! The incident API: list with filters, one incident with its alerts,
//! timeline and similar past incidents, its Markdown report, and the
//! lifecycle operations (ack, assign, notes, resolve, close, reopen).
//!
//! Contract: an illegal transition answers 409 naming the incident's status;
//! a malformed body 400 naming the JSON path; an unknown id 404.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::auth::Actor;
use super::{error, json_body, read, unavailable, AppState};
use crate::engine::OpError;
use crate::model::json::to_value;
use crate::model::{IncidentKey, Op, OpRequest, Priority, Status, TransitionError, CATEGORIES};
use crate::pipeline::OpFailure;
use crate::store::{ListFilter, Store};

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    priority: Option<String>,
    category: Option<String>,
    limit: Option<String>,
}

const MAX_LIMIT: usize = 10_000;

pub async fn list(
    State(s): State<AppState>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let f = match filter(&q) {
        Ok(f) => f,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    match read(&s.store, move |store| store.list(&f)).await {
        Ok(list) => Json(list).into_response(),
        Err(r) => r,
    }
}

/// The list filter from the query; every given parameter must name a
/// known value (an empty one is refused, not ignored).
fn filter(q: &ListQuery) -> Result<ListFilter, String> {
    let mut f = ListFilter {
        limit: 100,
        ..ListFilter::default()
    };
    let given = |name: &str, v: &Option<String>| -> Result<Option<String>, String> {
        match v.as_deref() {
            None => Ok(None),
            Some("") => Err(format!(
                "{name}: empty value; give one or leave the parameter out"
            )),
            Some(v) => Ok(Some(v.to_string())),
        }
    };
    if let Some(v) = given("status", &q.status)? {
        f.status = Some(Status::parse(&v).ok_or_else(|| {
            format!("status: unknown value {v:?}; expected open, acknowledged, resolved or closed")
        })?);
    }
    if let Some(v) = given("priority", &q.priority)? {
        f.priority = Some(
            Priority::parse(&v.to_ascii_uppercase())
                .ok_or_else(|| format!("priority: unknown value {v:?}; expected P1..P5"))?,
        );
    }
    if let Some(v) = given("category", &q.category)? {
        if !CATEGORIES.contains(&v.as_str()) {
            return Err(format!(
                "category: unknown value {v:?}; expected one of {}",
                CATEGORIES.join(", ")
            ));
        }
        f.category = Some(v);
    }
    if let Some(v) = given("limit", &q.limit)? {
        f.limit = v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| format!("limit: {v:?} is not a number between 1 and {MAX_LIMIT}"))?;
    }
    Ok(f)
}

fn parse_id(id: &str) -> Result<IncidentKey, Box<Response>> {
    IncidentKey::parse(id).ok_or_else(|| {
        Box::new(error(
            StatusCode::NOT_FOUND,
            format!("no incident {id:?} (ids look like INC-20261123-0001)"),
        ))
    })
}

pub async fn show(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let key = match parse_id(&id) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    match read(&s.store, move |store| store.incident_full(key)).await {
        Ok(Some((inc, alerts, timeline))) => {
            let similar = similar_details(&s.store, &inc.similar).await;
            let mut v = to_value(&inc);
            if let Some(obj) = v.as_object_mut() {
                obj.insert("alerts".into(), to_value(&alerts));
                obj.insert("timeline".into(), to_value(&timeline));
                obj.insert("similar_incidents".into(), similar);
            }
            Json(v).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no incident {id}")),
        Err(r) => r,
    }
}

pub async fn report(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let key = match parse_id(&id) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    match read(&s.store, move |store| store.incident_full(key)).await {
        Ok(Some((inc, alerts, timeline))) => (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            super::report::render(&inc, &alerts, &timeline, Utc::now()),
        )
            .into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no incident {id}")),
        Err(r) => r,
    }
}

pub async fn operate(
    State(s): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    actor: Option<Extension<Actor>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(op) = Op::parse(&action) else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "unknown action {action:?}; expected ack, assign, notes, resolve, close or reopen"
            ),
        );
    };
    let key = match parse_id(&id) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    let body = match body {
        Ok(b) => b,
        Err(rej) => return error(rej.status(), rej.body_text()),
    };
    let mut req: OpRequest = if body.iter().all(u8::is_ascii_whitespace) {
        OpRequest::default()
    } else {
        match json_body(&body) {
            Ok(r) => r,
            Err(r) => return *r,
        }
    };
    if let Some(Extension(Actor(name))) = actor {
        // The token's name acts; a different `by` is who it was done for.
        req.on_behalf_of = req
            .by
            .take()
            .map(|b| b.trim().to_string())
            .filter(|b| !b.is_empty() && *b != name);
        req.by = Some(name);
    }
    match s.handle.op(key, op, req).await {
        Ok(inc) => Json(inc).into_response(),
        Err(OpFailure::Op(OpError::NotFound(id))) => {
            error(StatusCode::NOT_FOUND, format!("no incident {id}"))
        }
        Err(OpFailure::Op(OpError::Transition(t))) => match t {
            TransitionError::BadRequest(m) => error(StatusCode::BAD_REQUEST, m),
            illegal => error(StatusCode::CONFLICT, illegal),
        },
        Err(OpFailure::Pipeline(e)) => unavailable(&e),
    }
}

/// The `similar` incidents with what resolved them (knowledge base at first response).
pub(super) async fn similar_details(store: &Store, ids: &[String]) -> serde_json::Value {
    let store = store.clone();
    let keys: Vec<IncidentKey> = ids.iter().filter_map(|i| IncidentKey::parse(i)).collect();
    let found = tokio::task::spawn_blocking(move || {
        keys.into_iter()
            .filter_map(|k| store.incident(k).ok().flatten())
            .map(|i| {
                json!({
                    "id": i.id, "title": i.title, "status": i.status, "priority": i.priority,
                    "created_at": i.created_at, "resolved_at": i.resolved_at,
                    "workaround": i.workaround, "root_cause": i.root_cause,
                })
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    serde_json::Value::Array(found)
}
