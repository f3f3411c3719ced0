//! `POST /api/v1/heartbeats/{name}`: a ping for a heartbeat of the rules
//! (a cron job's "I ran"), the same signal as a matching alert.
//!
//! Contract: 200 with the heartbeat and the ping's time once it is
//! durable; 404 when the rules define no heartbeat of that name;
//! 503 when the pipeline cannot take it. The body is ignored.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{error, unavailable, AppState};

pub async fn ping(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    if name.is_empty() || name.len() > 256 {
        return error(StatusCode::NOT_FOUND, format!("no heartbeat {name:?}"));
    }
    match s.handle.heartbeat(name.clone()).await {
        Ok(Some(at)) => Json(serde_json::json!({
            "status": "success",
            "heartbeat": name,
            "last_seen": at,
        }))
        .into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("no heartbeat {name:?} in the rules' `heartbeats` section"),
        ),
        Err(e) => unavailable(&e),
    }
}
