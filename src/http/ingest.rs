//! The ingest endpoints, shared by `serve` (alerts go to the pipeline) and
//! `forward` (alerts go to Kafka): one route table and one handler, with
//! the destination behind the [`Intake`] trait.
//!
//! Contract: the body is refused with 413 beyond `limits.max_body_bytes`
//! (from `Content-Length`, before it is read), with 400 naming what and
//! where when it does not parse (nothing of it is stored), with 408 when
//! it does not arrive within `http.body_timeout`, and with 503 and
//! `Retry-After` when the destination cannot take it now: before the body
//! is read when the queued bytes are at their bound, after parsing when
//! the queued alerts are (see [`crate::pipeline::admission`]). Every refusal is counted in
//! `incidentd_requests_rejected_total{source,reason}`. A PagerDuty event is
//! answered 202 with its `dedup_key`, as PagerDuty does; the other formats
//! 200 with what the destination reports.

use std::future::Future;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Request, State};
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
use crate::pipeline::{PipelineError, Ticket};

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
    /// Admits a body of `bytes` before it is read; the ticket is held until
    /// the answer. `None`: this destination does not bound its queue.
    fn admit(&self, _bytes: usize) -> Result<Option<Ticket>, PipelineError> {
        Ok(None)
    }
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

/// The one ingest handler: admission, body, parse, destination, answer.
async fn handle<S: Intake>(State(s): State<S>, format: Format, request: Request) -> Response {
    let started = Instant::now();
    let source = format.source();
    let reject = |reason: &str| {
        s.metrics()
            .requests_rejected
            .with_label_values(&[source.as_str(), reason])
            .inc();
    };
    let max = s.limits().max_body_bytes;
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than the limit of {max} bytes (limits.max_body_bytes)"),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        reject("too_large");
        return too_large();
    }
    // Without a length, the most it may be is reserved until it is read.
    let mut ticket = match s.admit(declared.unwrap_or(max)) {
        Ok(t) => t,
        Err(e) => {
            reject("overloaded");
            discard_body(request, max).await;
            return unavailable(&e);
        }
    };
    let body = match axum::body::to_bytes(request.into_body(), max).await {
        Ok(b) => b,
        Err(e) => {
            let (reason, response) = body_error(e, too_large);
            reject(reason);
            return response;
        }
    };
    if let Some(t) = &mut ticket {
        t.shrink_bytes(body.len());
    }
    let payload = match ingest::parse(format, &body, s.limits(), Utc::now()) {
        Ok(p) => p,
        Err(e) => {
            reject("invalid");
            return error(StatusCode::BAD_REQUEST, e);
        }
    };
    if let Some(t) = &mut ticket {
        if let Err(e) = t.add_alerts(payload.alerts.len()) {
            reject("overloaded");
            return unavailable(&e);
        }
    }
    let pagerduty = payload.pagerduty.clone();
    let answer = s.accept(source, body, payload, started).await;
    drop(ticket);
    match answer {
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

/// Reads a refused request's body and throws it away, so the client, which
/// may still be sending it, reads the answer instead of a reset
/// connection; memory stays flat. A client that waits for `100 Continue`
/// never sends the body, so nothing is read then.
async fn discard_body(request: Request, max: usize) {
    use http_body_util::BodyExt as _;
    let expects_continue = request
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        return;
    }
    let mut body = request.into_body();
    let mut read = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            read += data.len();
            if read > max {
                return;
            }
        }
    }
}

/// A body that could not be read: past the size limit (413), past the
/// body timeout (408) or cut off (400); with the rejection reason.
fn body_error(e: axum::Error, too_large: impl Fn() -> Response) -> (&'static str, Response) {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return ("too_large", too_large());
        }
        if err.is::<super::serve::BodyTimeout>() {
            return ("invalid", error(StatusCode::REQUEST_TIMEOUT, err));
        }
        source = err.source();
    }
    (
        "invalid",
        error(
            StatusCode::BAD_REQUEST,
            format!("request body could not be read: {e}"),
        ),
    )
}

impl Intake for AppState {
    fn limits(&self) -> &Limits {
        &self.limits
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn admit(&self, bytes: usize) -> Result<Option<Ticket>, PipelineError> {
        self.handle.admit(bytes).map(Some)
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
                if summary.heartbeats > 0 {
                    fields.insert("heartbeats".into(), json!(summary.heartbeats));
                }
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
