//! `POST /api/v1/rules/explain`: an alert's path through the daemon's
//! loaded rules and live state (viewer role).
//!
//! Contract: the body is any ingest payload (Alertmanager v2 alerts, a
//! webhook v4 payload, generic alerts, a PagerDuty event), recognised as
//! Kafka messages are; it is explained, never ingested. Answers 200 with
//! the [`Report`](crate::engine::explain::Report) as JSON (the document
//! `incidentd rules explain -o json` prints), 400 naming what and where
//! when the body does not parse, holds no alert or more than
//! [`MAX_ALERTS`], 413 beyond
//! `limits.max_body_bytes`, 503 with `Retry-After` when the writer cannot
//! answer.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;

use super::{error, unavailable, AppState};
use crate::ingest;

/// Most alerts one request may ask about: each explanation runs on the
/// writer thread, between ingest batches.
pub const MAX_ALERTS: usize = 100;

pub async fn explain(State(s): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rej) => return error(rej.status(), rej.body_text()),
    };
    let format = ingest::detect(&body);
    let payload = match ingest::parse(format, &body, &s.limits, Utc::now()) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    if payload.alerts.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "the payload holds no alert to explain",
        );
    }
    if payload.alerts.len() > MAX_ALERTS {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "{} alerts in one request; explain at most {MAX_ALERTS} at a time",
                payload.alerts.len()
            ),
        );
    }
    match s.handle.explain(payload.alerts).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => unavailable(&e),
    }
}
