//! Operating endpoints: readiness and rule reloads (health and metrics
//! are part of the shared ingest routes).

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{error, AppState};

pub async fn ready(State(s): State<AppState>) -> Response {
    if s.ready.load(Ordering::Acquire) {
        "OK\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

pub async fn reload(State(s): State<AppState>) -> Response {
    match s.reloader.reload().await {
        Ok(summary) => Json(json!({"status": "success", "rules": summary})).into_response(),
        Err(e) => error(
            StatusCode::BAD_REQUEST,
            format!("reload failed, previous rules still active:\n{e}"),
        ),
    }
}
