//! The HTTP surface: ingest endpoints, the incident API, metrics, health.
//!
//! Input: HTTP requests. Output: JSON (errors are `{"status":"error",
//! "error": "..."}` with a message naming what and where), Markdown reports
//! and the Prometheus text format. Ingest answers 200 only after the alerts
//! are committed; a full queue or a failed commit answers 503 with
//! `Retry-After`; bad input answers 400/413 and touches nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use crate::config::Limits;
use crate::incident::{IncidentKey, Op, OpRequest, Status};
use crate::ingest::{self, Format};
use crate::metrics::Metrics;
use crate::pipeline::{Handle, OpFailure, PipelineError, SilenceError, SilenceOp};
use crate::rules::Priority;
use crate::server::Reloader;
use crate::store::{ListFilter, Store};
use crate::suppress::Silence;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub handle: Handle,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<Limits>,
    pub ready: Arc<AtomicBool>,
    pub reloader: Reloader,
}

/// All routes.
pub fn router(state: AppState) -> Router {
    let max_body = state.limits.max_body_bytes;
    Router::new()
        .route("/api/v2/alerts", post(ingest_v2))
        .route("/api/v1/webhook/alertmanager", post(ingest_webhook))
        .route("/api/v1/alerts", post(ingest_generic))
        .route("/v2/enqueue", post(ingest_pagerduty))
        .route("/api/v1/incidents", get(list_incidents))
        .route("/api/v1/incidents/{id}", get(get_incident))
        .route("/api/v1/incidents/{id}/report", get(report))
        .route("/api/v1/incidents/{id}/{action}", post(incident_op))
        .route("/api/v1/silences", get(list_silences).post(create_silence))
        .route(
            "/api/v1/silences/{id}",
            get(get_silence).delete(expire_silence),
        )
        .route("/api/v1/alerts/suppressed", get(list_suppressed))
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(|| async { "OK\n" }))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this endpoint",
            )
        })
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// The JSON error answer every endpoint uses.
pub(crate) fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (
        status,
        Json(json!({"status": "error", "error": message.to_string()})),
    )
        .into_response()
}

fn unavailable(e: &PipelineError) -> Response {
    let (status, retry) = match e {
        PipelineError::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "1"),
        PipelineError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "5"),
        PipelineError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "5"),
    };
    let mut r = error(status, e);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static(retry));
    r
}

async fn ingest_v2(State(s): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    ingest(s, Format::AlertmanagerV2, body).await
}

async fn ingest_webhook(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    ingest(s, Format::WebhookV4, body).await
}

async fn ingest_generic(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    ingest(s, Format::Generic, body).await
}

/// PagerDuty Events API v2: 202 with the event's `dedup_key` once durable.
async fn ingest_pagerduty(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    ingest(s, Format::PagerDutyV2, body).await
}

/// An ingest request's body, or the answer that refuses it (413 naming the
/// limit, or the extractor's 4xx), counted in `requests_rejected_total`.
pub(crate) fn ingest_body(
    body: Result<Bytes, BytesRejection>,
    source: crate::alert::Source,
    limits: &Limits,
    metrics: &Metrics,
) -> Result<Bytes, Box<Response>> {
    let reject = |reason: &str| {
        metrics
            .requests_rejected
            .with_label_values(&[source.as_str(), reason])
            .inc();
    };
    match body {
        Ok(b) => Ok(b),
        Err(rej) if rej.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            reject("too_large");
            Err(Box::new(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body is larger than the limit of {} bytes (limits.max_body_bytes)",
                    limits.max_body_bytes
                ),
            )))
        }
        Err(rej) => {
            reject("invalid");
            Err(Box::new(error(rej.status(), rej.body_text())))
        }
    }
}

async fn ingest(s: AppState, format: Format, body: Result<Bytes, BytesRejection>) -> Response {
    let started = Instant::now();
    let source = format.source();
    let reject = |reason: &str| {
        s.metrics
            .requests_rejected
            .with_label_values(&[source.as_str(), reason])
            .inc();
    };
    let body = match ingest_body(body, source, &s.limits, &s.metrics) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let parsed = if format == Format::PagerDutyV2 {
        ingest::pagerduty_event(&body, &s.limits, Utc::now()).map(|e| (Some(e.dedup_key), e.alerts))
    } else {
        ingest::parse(format, &body, &s.limits, Utc::now()).map(|a| (None, a))
    };
    let (dedup_key, alerts) = match parsed {
        Ok(p) => p,
        Err(e) => {
            reject("invalid");
            return error(StatusCode::BAD_REQUEST, e);
        }
    };
    let pagerduty_accepted = |dedup_key: String| {
        (
            StatusCode::ACCEPTED,
            Json(
                json!({"status": "success", "message": "Event processed", "dedup_key": dedup_key}),
            ),
        )
            .into_response()
    };
    if alerts.is_empty() {
        if let Some(k) = dedup_key {
            return pagerduty_accepted(k);
        }
        return Json(json!({"status": "success", "accepted": 0})).into_response();
    }
    match s.handle.ingest(source, alerts).await {
        Ok(summary) => {
            s.metrics
                .ingest_batch_duration
                .with_label_values(&[source.as_str()])
                .observe(started.elapsed().as_secs_f64());
            if let Some(k) = dedup_key {
                return pagerduty_accepted(k);
            }
            Json(json!({
                "status": "success",
                "accepted": summary.accepted,
                "created": summary.created,
                "updated": summary.updated,
                "deduplicated": summary.deduplicated,
                "ignored": summary.ignored,
                "suppressed": summary.suppressed,
            }))
            .into_response()
        }
        Err(e) => {
            reject(match e {
                PipelineError::Overloaded => "overloaded",
                _ => "unavailable",
            });
            unavailable(&e)
        }
    }
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    priority: Option<String>,
    category: Option<String>,
    limit: Option<String>,
}

const MAX_LIMIT: usize = 10_000;

async fn list_incidents(
    State(s): State<AppState>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let mut f = ListFilter {
        limit: 100,
        ..ListFilter::default()
    };
    if let Some(v) = q.status.as_deref().filter(|v| !v.is_empty()) {
        match Status::parse(v) {
            Some(st) => f.status = Some(st),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!(
                    "status: unknown value {v:?}; expected open, acknowledged, resolved or closed"
                ),
                )
            }
        }
    }
    if let Some(v) = q.priority.as_deref().filter(|v| !v.is_empty()) {
        match Priority::parse(&v.to_ascii_uppercase()) {
            Some(p) => f.priority = Some(p),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("priority: unknown value {v:?}; expected P1..P5"),
                )
            }
        }
    }
    if let Some(v) = q.category.as_deref().filter(|v| !v.is_empty()) {
        f.category = Some(v.to_string());
    }
    if let Some(v) = q.limit.as_deref().filter(|v| !v.is_empty()) {
        match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => f.limit = n,
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("limit: {v:?} is not a number between 1 and {MAX_LIMIT}"),
                )
            }
        }
    }
    let store = s.store.clone();
    match tokio::task::spawn_blocking(move || store.list(&f)).await {
        Ok(Ok(list)) => Json(list).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

fn parse_id(id: &str) -> Result<IncidentKey, Box<Response>> {
    IncidentKey::parse(id).ok_or_else(|| {
        Box::new(error(
            StatusCode::NOT_FOUND,
            format!("no incident {id:?} (ids look like INC-20261123-0001)"),
        ))
    })
}

async fn get_incident(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let key = match parse_id(&id) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    let store = s.store.clone();
    match tokio::task::spawn_blocking(move || store.incident_full(key)).await {
        Ok(Ok(Some((inc, alerts, timeline)))) => {
            let similar = similar_details(&s.store, &inc.similar).await;
            let mut v = serde_json::to_value(&inc).unwrap_or_default();
            if let Some(obj) = v.as_object_mut() {
                obj.insert(
                    "alerts".into(),
                    serde_json::to_value(&alerts).unwrap_or_default(),
                );
                obj.insert(
                    "timeline".into(),
                    serde_json::to_value(&timeline).unwrap_or_default(),
                );
                obj.insert("similar_incidents".into(), similar);
            }
            Json(v).into_response()
        }
        Ok(Ok(None)) => error(StatusCode::NOT_FOUND, format!("no incident {id}")),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn report(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let key = match parse_id(&id) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    let store = s.store.clone();
    match tokio::task::spawn_blocking(move || store.incident_full(key)).await {
        Ok(Ok(Some((inc, alerts, timeline)))) => (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            crate::report::render(&inc, &alerts, &timeline, Utc::now()),
        )
            .into_response(),
        Ok(Ok(None)) => error(StatusCode::NOT_FOUND, format!("no incident {id}")),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn incident_op(
    State(s): State<AppState>,
    Path((id, action)): Path<(String, String)>,
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
    let req: OpRequest = if body.iter().all(u8::is_ascii_whitespace) {
        OpRequest::default()
    } else {
        let mut de = serde_json::Deserializer::from_slice(&body);
        match serde_path_to_error::deserialize(&mut de) {
            Ok(r) => r,
            Err(e) => {
                let path = e.path().to_string();
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("request body: {path}: {}", e.into_inner()),
                );
            }
        }
    };
    match s.handle.op(key, op, req).await {
        Ok(inc) => Json(inc).into_response(),
        Err(OpFailure::Op(crate::engine::OpError::NotFound(id))) => {
            error(StatusCode::NOT_FOUND, format!("no incident {id}"))
        }
        Err(OpFailure::Op(crate::engine::OpError::Transition(t))) => match t {
            crate::incident::TransitionError::BadRequest(m) => error(StatusCode::BAD_REQUEST, m),
            illegal => error(StatusCode::CONFLICT, illegal),
        },
        Err(OpFailure::Pipeline(e)) => unavailable(&e),
    }
}

async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

async fn ready(State(s): State<AppState>) -> Response {
    if s.ready.load(Ordering::Acquire) {
        "OK\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn reload(State(s): State<AppState>) -> Response {
    match s.reloader.reload().await {
        Ok(summary) => Json(json!({"status": "success", "rules": summary})).into_response(),
        Err(e) => error(
            StatusCode::BAD_REQUEST,
            format!("reload failed, previous rules still active:\n{e}"),
        ),
    }
}

/// The `similar` incidents with what resolved them (knowledge base at first response).
async fn similar_details(store: &Store, ids: &[String]) -> serde_json::Value {
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

/// A matcher as text (`name="value"`) or as Alertmanager's API object.
#[derive(Deserialize)]
#[serde(untagged)]
enum MatcherSpec {
    Text(String),
    Object {
        name: String,
        value: String,
        #[serde(rename = "isRegex", alias = "is_regex", default)]
        is_regex: bool,
        #[serde(rename = "isEqual", alias = "is_equal", default = "yes")]
        is_equal: bool,
    },
}

fn yes() -> bool {
    true
}

impl MatcherSpec {
    fn text(&self) -> String {
        match self {
            MatcherSpec::Text(t) => t.clone(),
            MatcherSpec::Object {
                name,
                value,
                is_regex,
                is_equal,
            } => {
                let op = match (is_regex, is_equal) {
                    (false, true) => "=",
                    (false, false) => "!=",
                    (true, true) => "=~",
                    (true, false) => "!~",
                };
                format!("{name}{op}{value:?}")
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSilence {
    matchers: Vec<MatcherSpec>,
    #[serde(default, rename = "startsAt", alias = "starts_at")]
    starts_at: Option<chrono::DateTime<Utc>>,
    #[serde(default, rename = "endsAt", alias = "ends_at")]
    ends_at: Option<chrono::DateTime<Utc>>,
    /// Alternative to `endsAt`: a humantime duration such as `2h`.
    #[serde(default)]
    duration: Option<String>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default, rename = "createdBy", alias = "created_by")]
    created_by: Option<String>,
    /// Alertmanager clients send an id when updating; a new silence is made.
    #[serde(default)]
    #[allow(dead_code)]
    id: Option<String>,
}

fn silence_json(s: &Silence, now: chrono::DateTime<Utc>) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("state".into(), json!(s.state(now)));
    }
    v
}

async fn create_silence(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rej) => return error(rej.status(), rej.body_text()),
    };
    let mut de = serde_json::Deserializer::from_slice(&body);
    let req: NewSilence = match serde_path_to_error::deserialize(&mut de) {
        Ok(r) => r,
        Err(e) => {
            let path = e.path().to_string();
            return error(
                StatusCode::BAD_REQUEST,
                format!("request body: {path}: {}", e.into_inner()),
            );
        }
    };
    let now = Utc::now();
    let starts_at = req.starts_at.unwrap_or(now).max(now);
    let ends_at = match (req.ends_at, req.duration.as_deref()) {
        (Some(e), None) => e,
        (None, Some(d)) => match humantime::parse_duration(d) {
            Ok(d) => starts_at + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX),
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("duration: {e}")),
        },
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "give exactly one of endsAt or duration",
            )
        }
    };
    // Both are required and must say something.
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
    };
    let Some(created_by) = text(&req.created_by) else {
        return error(
            StatusCode::BAD_REQUEST,
            "createdBy: say who creates the silence",
        );
    };
    let Some(comment) = text(&req.comment) else {
        return error(
            StatusCode::BAD_REQUEST,
            "comment: say why (a change ticket, a reason)",
        );
    };
    let silence = Silence {
        id: String::new(),
        matchers: req.matchers.iter().map(MatcherSpec::text).collect(),
        starts_at,
        ends_at,
        comment,
        created_by,
        created_at: now,
        compiled: Vec::new(),
    };
    match s.handle.silence(SilenceOp::Create(Box::new(silence))).await {
        Ok(sil) => (
            StatusCode::OK,
            Json(json!({"silenceID": sil.id, "silence": silence_json(&sil, now)})),
        )
            .into_response(),
        Err(SilenceError::Invalid(m)) => error(StatusCode::BAD_REQUEST, m),
        Err(SilenceError::NotFound(id)) => error(StatusCode::NOT_FOUND, format!("no silence {id}")),
        Err(SilenceError::Pipeline(e)) => unavailable(&e),
    }
}

async fn expire_silence(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.handle.silence(SilenceOp::Expire(id)).await {
        Ok(sil) => Json(silence_json(&sil, Utc::now())).into_response(),
        Err(SilenceError::NotFound(id)) => error(StatusCode::NOT_FOUND, format!("no silence {id}")),
        Err(SilenceError::Invalid(m)) => error(StatusCode::BAD_REQUEST, m),
        Err(SilenceError::Pipeline(e)) => unavailable(&e),
    }
}

async fn list_silences(State(s): State<AppState>) -> Response {
    let store = s.store.clone();
    match tokio::task::spawn_blocking(move || store.silences()).await {
        Ok(Ok(list)) => {
            let now = Utc::now();
            Json(
                list.iter()
                    .map(|x| silence_json(x, now))
                    .collect::<Vec<_>>(),
            )
            .into_response()
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn get_silence(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let store = s.store.clone();
    match tokio::task::spawn_blocking(move || store.silences()).await {
        Ok(Ok(list)) => match list.iter().find(|x| x.id == id) {
            Some(x) => Json(silence_json(x, Utc::now())).into_response(),
            None => error(StatusCode::NOT_FOUND, format!("no silence {id}")),
        },
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn list_suppressed(State(s): State<AppState>) -> Response {
    let store = s.store.clone();
    match tokio::task::spawn_blocking(move || store.suppressed()).await {
        Ok(Ok(list)) => Json(list).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}
