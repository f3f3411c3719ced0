//! The incident API: list with filters, one incident with its alerts,
//! timeline and similar past incidents, its Markdown report, the
//! lifecycle operations (ack, assign, notes, resolve, close, reopen) and
//! the service desk's (open by hand, merge, link, split, priority).
//!
//! Contract: an illegal transition answers 409 naming the incident's status;
//! a malformed body 400 naming the JSON path; an unknown id 404.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::auth::Actor;
use super::{error, json_body, read, unavailable, AppState};
use crate::engine::OpError;
use crate::model::json::to_value;
use crate::model::matcher;
use crate::model::{
    DeskOp, Incident, IncidentKey, ManualIncident, Op, OpRequest, Priority, Status,
    TransitionError, CATEGORIES,
};
use crate::pipeline::OpFailure;
use crate::store::{ListFilter, Store};

const MAX_LIMIT: usize = 10_000;

/// `GET /api/v1/incidents`: one page, the next page's cursor in `Link`
/// (`rel="next"`) and `X-Next-Cursor`, the total in `X-Total-Count`.
pub async fn list(State(s): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    let raw = raw.unwrap_or_default();
    let f = match filter(&raw) {
        Ok(f) => f,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let fc = f.clone();
    let page = match read(&s.store, move |store| store.list_page(&fc, true)).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut resp = Json(page.incidents).into_response();
    let h = resp.headers_mut();
    if let Some(n) = page.total {
        if let Ok(v) = header::HeaderValue::from_str(&n.to_string()) {
            h.insert("x-total-count", v);
        }
    }
    if let Some(next) = page.next {
        let mut q: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes())
            .filter(|(k, _)| k != "after")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        q.push(("after".into(), next.to_string()));
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(q)
            .finish();
        let link = format!("</api/v1/incidents?{query}>; rel=\"next\"");
        if let Ok(v) = header::HeaderValue::from_str(&link) {
            h.insert(header::LINK, v);
        }
        if let Ok(v) = header::HeaderValue::from_str(&next.to_string()) {
            h.insert("x-next-cursor", v);
        }
    }
    resp
}

/// The list filter from the query; every given parameter must name a
/// known value (an empty one is refused, not ignored), and an unknown
/// parameter is refused (a typo would otherwise list everything).
fn filter(raw: &str) -> Result<ListFilter, String> {
    let mut f = ListFilter {
        limit: 100,
        ..ListFilter::default()
    };
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        let (k, v) = (k.as_ref(), v.trim());
        if v.is_empty() {
            return Err(format!(
                "{k}: empty value; give one or leave the parameter out"
            ));
        }
        let time = |v: &str| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| format!("{k}: {v:?} is not an RFC 3339 time ({e})"))
        };
        match k {
            "status" => {
                f.status = Some(Status::parse(v).ok_or_else(|| {
                    format!("status: unknown value {v:?}; expected open, acknowledged, resolved or closed")
                })?)
            }
            "priority" => {
                f.priority = Some(
                    Priority::parse(&v.to_ascii_uppercase())
                        .ok_or_else(|| format!("priority: unknown value {v:?}; expected P1..P5"))?,
                )
            }
            "category" => {
                if !CATEGORIES.contains(&v) {
                    return Err(format!(
                        "category: unknown value {v:?}; expected one of {}",
                        CATEGORIES.join(", ")
                    ));
                }
                f.category = Some(v.to_string());
            }
            "limit" => {
                f.limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        format!("limit: {v:?} is not a number between 1 and {MAX_LIMIT}")
                    })?
            }
            "match" => f.matchers.extend(matcher::parse(v).map_err(|e| {
                format!("match: {v:?}: {} (example: cluster=\"eu-1\")", e.message)
            })?),
            "created_after" => f.created_after = Some(time(v)?),
            "created_before" => f.created_before = Some(time(v)?),
            "after" => {
                f.after = Some(IncidentKey::parse(v).ok_or_else(|| {
                    format!("after: {v:?} is not an incident id (the X-Next-Cursor of the previous page)")
                })?)
            }
            "sort" => {
                f.oldest_first = match v {
                    "newest" | "-created_at" => false,
                    "oldest" | "created_at" => true,
                    other => {
                        return Err(format!(
                            "sort: unknown value {other:?}; expected newest or oldest"
                        ))
                    }
                }
            }
            other => {
                return Err(format!(
                    "unknown parameter {other:?}; expected status, priority, category, match, created_after, created_before, sort, limit or after"
                ))
            }
        }
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
    if DESK_ACTIONS.contains(&action.as_str()) {
        return desk(s, id, action, actor, body).await;
    }
    let Some(op) = Op::parse(&action) else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "unknown action {action:?}; expected ack, assign, notes, resolve, close, reopen, merge, link, split or priority"
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
    answer(s.handle.op(key, op, req).await, StatusCode::OK)
}

/// The answer to a lifecycle or service-desk request.
fn answer(r: Result<Incident, OpFailure>, ok: StatusCode) -> Response {
    match r {
        Ok(inc) => (ok, Json(inc)).into_response(),
        Err(OpFailure::Op(OpError::NotFound(id))) => {
            error(StatusCode::NOT_FOUND, format!("no incident {id}"))
        }
        Err(OpFailure::Op(OpError::Transition(t))) => match t {
            TransitionError::BadRequest(m) => error(StatusCode::BAD_REQUEST, m),
            illegal => error(StatusCode::CONFLICT, illegal),
        },
        Err(OpFailure::Op(OpError::Conflict(m))) => error(StatusCode::CONFLICT, m),
        Err(OpFailure::Pipeline(e)) => unavailable(&e),
    }
}

/// The service-desk actions on an incident.
const DESK_ACTIONS: [&str; 4] = ["merge", "link", "split", "priority"];

/// Who acts: the token's name (with the body's `by` as whom it was done
/// for), else the body's `by`, else `api`.
fn actor_name(actor: Option<Extension<Actor>>, by: Option<&str>) -> String {
    let by = by.map(str::trim).filter(|b| !b.is_empty());
    match (actor, by) {
        (Some(Extension(Actor(name))), Some(b)) if b != name => {
            format!("{name} (on behalf of {b})")
        }
        (Some(Extension(Actor(name))), _) => name,
        (None, Some(b)) => b.to_string(),
        (None, None) => "api".into(),
    }
}

fn body_of(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Box<Response>> {
    body.map_err(|rej| Box::new(error(rej.status(), rej.body_text())))
}

/// `POST /api/v1/incidents/{id}/{merge|link|split|priority}`.
async fn desk(
    s: AppState,
    id: String,
    action: String,
    actor: Option<Extension<Actor>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let key = match parse_id(&id) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    let body = match body_of(body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let op = match action.as_str() {
        "merge" => json_body(&body).map(DeskOp::Merge),
        "link" => json_body(&body).map(DeskOp::Link),
        "split" => json_body(&body).map(DeskOp::Split),
        _ => json_body(&body).map(DeskOp::Priority),
    };
    let op = match op {
        Ok(op) => op,
        Err(r) => return *r,
    };
    let by = actor_name(actor, op.by());
    let ok = match op {
        DeskOp::Split(_) => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    answer(s.handle.desk(Some(key), op, by).await, ok)
}

/// `POST /api/v1/incidents`: a person opens an incident (service desk).
pub async fn open(
    State(s): State<AppState>,
    actor: Option<Extension<Actor>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body_of(body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let m: ManualIncident = match json_body(&body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let by = actor_name(actor, m.by.as_deref());
    answer(
        s.handle.desk(None, DeskOp::Open(m), by).await,
        StatusCode::CREATED,
    )
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
