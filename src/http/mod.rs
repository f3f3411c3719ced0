//! The HTTP surface: ingest endpoints, the incident and silence API, the
//! report, metrics and health.
//!
//! Input: HTTP requests. Output: JSON (errors are `{"status":"error",
//! "error": "..."}` with a message naming what and where), Markdown reports
//! and the Prometheus text format. Ingest answers 200 only after the alerts
//! are committed; a full queue or a failed commit answers 503 with
//! `Retry-After`; bad input answers 400/413 and touches nothing.
//!
//! Layout: [`ingest`] (the ingest routes, shared with `forward`, and the
//! one ingest handler), [`incidents`] (list, show, lifecycle operations),
//! [`silences`] (silences and suppressed alerts), [`admin`] (metrics,
//! health, reload, backup), [`report`] (the Markdown incident report),
//! [`rules`] (explaining an alert's path through the loaded rules),
//! [`alertmanager`] (the Alertmanager API v2 subset for amtool and
//! Grafana), [`openapi`] (the OpenAPI description of all of it), [`board`]
//! (the HTML incident board at `/`), [`events`] (the Server-Sent Events
//! stream of incident changes).

pub mod admin;
pub mod alertmanager;
pub mod auth;
pub mod board;
pub mod events;
pub mod heartbeats;
pub mod incidents;
pub mod ingest;
pub mod oncall;
pub mod openapi;
pub mod report;
pub mod rules;
pub mod serve;
pub mod silences;
pub mod tls;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::config::Limits;
use crate::metrics::Metrics;
use crate::pipeline::{Handle, PipelineError};
use crate::store::{Health, Store, StoreError};

/// Shared by every handler of `serve`.
#[derive(Clone)]
pub struct AppState {
    pub handle: Handle,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<Limits>,
    pub ready: Arc<AtomicBool>,
    pub reload: admin::Reload,
    /// When the daemon started (`/api/v2/status` uptime).
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// Committed changes, for the event stream.
    pub events: crate::pipeline::events::EventBus,
    /// The rules in force (people and schedules for the on-call pages).
    pub rules: tokio::sync::watch::Receiver<Arc<crate::rules::RuleSet>>,
    /// Signs and checks acknowledgement links.
    pub ack_key: Arc<crate::model::ack_link::AckKey>,
}

/// All routes of `serve`.
pub fn router(state: AppState) -> Router {
    let max_body = state.limits.max_body_bytes;
    let app = ingest::routes::<AppState>()
        .route(
            "/api/v1/incidents",
            get(incidents::list).post(incidents::open),
        )
        .route("/api/v1/incidents/{id}", get(incidents::show))
        .route("/api/v1/incidents/{id}/report", get(incidents::report))
        .route("/api/v1/incidents/{id}/{action}", post(incidents::operate))
        .route(
            "/api/v1/silences",
            get(silences::list).post(silences::create),
        )
        .route(
            "/api/v1/silences/{id}",
            get(silences::show).delete(silences::expire),
        )
        .route("/api/v1/alerts/suppressed", get(silences::suppressed))
        .route("/api/v1/oncall", get(oncall::oncall))
        .route("/api/v1/schedules/{name}", get(oncall::schedule))
        .route(
            "/api/v1/schedules/{name}/overrides",
            post(oncall::add_override),
        )
        .route(
            "/api/v1/schedules/{name}/overrides/{id}",
            delete(oncall::remove_override),
        )
        .route("/oncall", get(board::oncall::oncall))
        .route("/schedules/{name}", get(board::oncall::schedule))
        .route(
            "/schedules/{name}/overrides",
            post(board::oncall::add_override),
        )
        .route(
            "/schedules/{name}/overrides/{id}/remove",
            post(board::oncall::remove_override),
        )
        .route(
            "/ack/{token}",
            get(board::oncall::ack_page).post(board::oncall::ack),
        )
        .route("/api/v1/heartbeats/{name}", post(heartbeats::ping))
        .route("/api/v1/openapi.json", get(openapi::serve))
        .route("/api/v2/alerts", get(alertmanager::alerts))
        .route("/api/v2/alerts/groups", get(alertmanager::alert_groups))
        .route(
            "/api/v2/silences",
            get(alertmanager::silences).post(alertmanager::create),
        )
        .route(
            "/api/v2/silence/{id}",
            get(alertmanager::silence).delete(alertmanager::expire),
        )
        .route("/api/v2/status", get(alertmanager::status))
        .route("/api/v1/rules/explain", post(rules::explain))
        .route("/api/v1/events", get(events::stream))
        .route("/", get(board::board))
        .route("/incidents", post(board::open_incident))
        .route("/incidents/new", get(board::new_incident))
        .route("/incidents/{id}", get(board::incident))
        .route("/incidents/{id}/{action}", post(board::operate))
        .route(
            "/silences",
            get(board::silences).post(board::create_silence),
        )
        .route("/silences/new", get(board::new_silence))
        .route("/silences/{id}/expire", post(board::expire_silence))
        .route("/suppressed", get(board::suppressed))
        .route("/login", get(board::login_page).post(board::login))
        .route("/logout", post(board::logout))
        .route("/assets/board.css", get(board::css))
        .route("/assets/board.js", get(board::js))
        .route("/-/ready", get(admin::ready))
        .route("/-/reload", post(admin::reload))
        .route("/-/backup", post(admin::backup));
    let auth = state.reload.auth.clone();
    let metrics = state.metrics.clone();
    finish(app, max_body, auth, metrics).with_state(state)
}

/// What every router shares: the role and cross-site checks on every
/// route ([`auth::guard`]), 404 and 405 as JSON errors, the request body
/// limit, and a 500 (counted in `incidentd_http_handler_panics_total`)
/// for a handler that panics, instead of a connection closed without an
/// answer.
pub fn finish<S: Clone + Send + Sync + 'static>(
    app: Router<S>,
    max_body: usize,
    auth: Arc<auth::Auth>,
    metrics: Arc<Metrics>,
) -> Router<S> {
    app.route_layer(axum::middleware::from_fn_with_state(auth, auth::guard))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this endpoint",
            )
        })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            move |panic: Box<dyn std::any::Any + Send>| {
                metrics.http_panics.inc();
                let message = crate::store::panic_message(&panic);
                tracing::error!(panic = %message, "an HTTP handler panicked; answered 500");
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error: the handler failed (logged and counted in incidentd_http_handler_panics_total)",
                )
            },
        ))
}

/// The JSON error answer every endpoint uses.
pub fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (
        status,
        Json(json!({"status": "error", "error": message.to_string()})),
    )
        .into_response()
}

/// 503 with `Retry-After` for work the pipeline could not take.
pub fn unavailable(e: &PipelineError) -> Response {
    let retry = match e {
        PipelineError::Overloaded => "1",
        PipelineError::Unavailable(_) | PipelineError::ShuttingDown => "5",
    };
    with_retry_after(error(StatusCode::SERVICE_UNAVAILABLE, e), retry)
}

/// Adds `Retry-After: seconds` to an answer.
pub fn with_retry_after(mut r: Response, seconds: &'static str) -> Response {
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static(seconds));
    r
}

/// A JSON request body, or a 400 naming the JSON path of the problem.
pub fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Box<Response>> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("request body: {path}: {}", e.into_inner()),
        ))
    })
}

/// A store read on the blocking pool. While the store is failing or being
/// reopened a failed read is a 503 with `Retry-After` (the data is there,
/// the handle is not); otherwise a 500.
pub async fn read<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response> {
    let s = store.clone();
    match tokio::task::spawn_blocking(move || f(&s)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            let transient = matches!(e, StoreError::Unavailable | StoreError::Busy)
                || store.health() != Health::Healthy;
            if transient {
                Err(with_retry_after(
                    error(StatusCode::SERVICE_UNAVAILABLE, e),
                    "5",
                ))
            } else {
                Err(error(StatusCode::INTERNAL_SERVER_ERROR, e))
            }
        }
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e)),
    }
}
