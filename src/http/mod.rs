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
//! health, reload), [`report`] (the Markdown incident report), [`rules`]
//! (explaining an alert's path through the loaded rules).

pub mod admin;
pub mod auth;
pub mod incidents;
pub mod ingest;
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
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::config::Limits;
use crate::metrics::Metrics;
use crate::pipeline::{Handle, PipelineError};
use crate::store::Store;

/// Shared by every handler of `serve`.
#[derive(Clone)]
pub struct AppState {
    pub handle: Handle,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<Limits>,
    pub ready: Arc<AtomicBool>,
    pub reload: admin::Reload,
}

/// All routes of `serve`.
pub fn router(state: AppState) -> Router {
    let max_body = state.limits.max_body_bytes;
    let app = ingest::routes::<AppState>()
        .route("/api/v1/incidents", get(incidents::list))
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
        .route("/api/v1/rules/explain", post(rules::explain))
        .route("/-/ready", get(admin::ready))
        .route("/-/reload", post(admin::reload));
    let auth = state.reload.auth.clone();
    finish(app, max_body, auth).with_state(state)
}

/// What every router shares: the role and cross-site checks on every
/// route ([`auth::guard`]), 404 and 405 as JSON errors, and the request
/// body limit.
pub fn finish<S: Clone + Send + Sync + 'static>(
    app: Router<S>,
    max_body: usize,
    auth: Arc<auth::Auth>,
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

/// A store read on the blocking pool, its failure as a 500.
pub async fn read<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e)),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e)),
    }
}
