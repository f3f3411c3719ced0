//! The ingest endpoints, shared by `serve` (alerts go to the pipeline) and
//! `forward` (alerts go to Kafka): one route table and one handler, with
//! the destination behind the [`Intake`] trait.
//!
//! Contract: the body is refused with 413 beyond `limits.max_body_bytes`,
//! with 400 naming what and where when it does not parse (nothing of it is
//! stored), and with 503 and `Retry-After` when the destination cannot
//! take it now. Every refusal is counted in
//! `incidentd_requests_rejected_total{source,reason}`. A PagerDuty event is
//! answered 202 with its `dedup_key`, as PagerDuty does; the other formats
//! 200 with what the destination reports.

use std::future::Future;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde_json::{json, Map, Value};

use super::{error, unavailable, with_retry_after, AppState};
use crate::config::Limits;
use crate::ingest::{self, Format, Payload};
use crate::metrics::Metrics;
use crate::model::Source;

/// Why a destination did not take a payload.
pub struct Refused {
    /// The `reason` label of `incidentd_requests_rejected_total`.
    pub reason: &'static str,
    /// The answer (a 503 with `Retry-After`).
    pub response: Response,
}

/// Where accepted alerts go.
pub trait Intake: Clone + Send + Sync + 'static {
    fn limits(&self) -> &Limits;
    fn metrics(&self) -> &Metrics;
    /// Takes a parsed payload durably; answers the fields of the success
    /// body. `body` is the request as received (forwarders pass PagerDuty
    /// events on unchanged); `started` is when the request arrived.
    fn accept(
        &self,
        source: Source,
        body: Bytes,
        payload: Payload,
        started: Instant,
    ) -> impl Future<Output = Result<Map<String, Value>, Refused>> + Send;
}

/// The ingest routes, `/metrics` and `/-/healthy`, for any destination.
pub fn routes<S: Intake>() -> Router<S> {
    Router::new()
        .route(
            "/api/v2/alerts",
            post(|s: State<S>, b| handle(s, Format::AlertmanagerV2, b)),
        )
        .route(
            "/api/v1/webhook/alertmanager",
            post(|s: State<S>, b| handle(s, Format::WebhookV4, b)),
        )
        .route(
            "/api/v1/alerts",
            post(|s: State<S>, b| handle(s, Format::Generic, b)),
        )
        .route(
            "/v2/enqueue",
            post(|s: State<S>, b| handle(s, Format::PagerDutyV2, b)),
        )
        .route("/metrics", get(metrics::<S>))
        .route("/-/healthy", get(|| async { "OK\n" }))
}

async fn metrics<S: Intake>(State(s): State<S>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics().render(),
    )
        .into_response()
}

/// The one ingest handler: body, parse, destination, answer.
async fn handle<S: Intake>(
    State(s): State<S>,
    format: Format,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let source = format.source();
    let reject = |reason: &str| {
        s.metrics()
            .requests_rejected
            .with_label_values(&[source.as_str(), reason])
            .inc();
    };
    let body = match body {
        Ok(b) => b,
        Err(rej) if rej.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            reject("too_large");
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body is larger than the limit of {} bytes (limits.max_body_bytes)",
                    s.limits().max_body_bytes
                ),
            );
        }
        Err(rej) => {
            reject("invalid");
            return error(rej.status(), rej.body_text());
        }
    };
    let payload = match ingest::parse(format, &body, s.limits(), Utc::now()) {
        Ok(p) => p,
        Err(e) => {
            reject("invalid");
            return error(StatusCode::BAD_REQUEST, e);
        }
    };
    let pagerduty = payload.pagerduty.clone();
    match s.accept(source, body, payload, started).await {
        Ok(fields) => match pagerduty {
            Some(keys) => (
                StatusCode::ACCEPTED,
                Json(json!({
                    "status": "success",
                    "message": "Event processed",
                    "dedup_key": keys.dedup_key,
                })),
            )
                .into_response(),
            None => {
                let mut answer = Map::new();
                answer.insert("status".into(), json!("success"));
                answer.extend(fields);
                Json(Value::Object(answer)).into_response()
            }
        },
        Err(r) => {
            reject(r.reason);
            r.response
        }
    }
}

impl Intake for AppState {
    fn limits(&self) -> &Limits {
        &self.limits
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    async fn accept(
        &self,
        source: Source,
        _body: Bytes,
        payload: Payload,
        started: Instant,
    ) -> Result<Map<String, Value>, Refused> {
        let mut fields = Map::new();
        if payload.alerts.is_empty() {
            fields.insert("accepted".into(), json!(0));
            return Ok(fields);
        }
        match self.handle.ingest(source, payload.alerts).await {
            Ok(summary) => {
                self.metrics
                    .ingest_batch_duration
                    .with_label_values(&[source.as_str()])
                    .observe(started.elapsed().as_secs_f64());
                fields.insert("accepted".into(), json!(summary.accepted));
                fields.insert("created".into(), json!(summary.created));
                fields.insert("updated".into(), json!(summary.updated));
                fields.insert("deduplicated".into(), json!(summary.deduplicated));
                fields.insert("ignored".into(), json!(summary.ignored));
                fields.insert("suppressed".into(), json!(summary.suppressed));
                Ok(fields)
            }
            Err(e) => Err(Refused {
                reason: match e {
                    crate::pipeline::PipelineError::Overloaded => "overloaded",
                    _ => "unavailable",
                },
                response: unavailable(&e),
            }),
        }
    }
}

/// A 503 for a destination that is down, with `Retry-After: 5`.
pub fn refused_unavailable(message: impl std::fmt::Display) -> Refused {
    Refused {
        reason: "unavailable",
        response: with_retry_after(error(StatusCode::SERVICE_UNAVAILABLE, message), "5"),
    }
}
