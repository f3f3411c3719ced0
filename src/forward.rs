//! `incidentd forward`: the HTTP receivers of `serve`, producing into Kafka
//! instead of processing locally — the front door of the multi-instance
//! setup (docs/scaling.md).
//!
//! Input: the ingest endpoints of [`crate::api`] (`/api/v2/alerts`,
//! `/api/v1/webhook/alertmanager`, `/api/v1/alerts`, `/v2/enqueue`).
//! Output: Kafka messages in the single topic of `kafka.topics`. The alerts
//! of a request are grouped by correlation group key, computed with the same
//! rules the consumers use (`RuleSet::correlate_rule(labels).group_key`), and
//! each group becomes one message of generic alerts keyed by that group key,
//! so every alert of a group lands on one partition and so on one consumer.
//! PagerDuty events are forwarded as they came, keyed by `routing_key`: a
//! resolve carries only `dedup_key`, so its group is unknown, and the routing
//! key keeps a service's trigger and resolve on one partition.
//!
//! Answers 200 (202 for PagerDuty) only after the broker acknowledged every
//! message of the request (`acks=all`); otherwise 503 with `Retry-After` —
//! a retry may duplicate the groups already produced, which the consumer's
//! dedup absorbs. Rejects what `serve` rejects (400/413, nothing produced).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{SecondsFormat, Utc};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::alert::Alert;
use crate::api::error;
use crate::config::{Config, Limits};
use crate::ingest::{self, Format};
use crate::metrics::Metrics;
use crate::rules::RuleSet;
use crate::server::{summarize, RulesSource};

/// Header naming the HTTP source of forwarded alerts (informational).
pub const SOURCE_HEADER: &str = "incidentd-source";
/// How long shutdown waits for queued messages to be delivered.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the forwarder could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("forward needs a kafka section (or --kafka-brokers and --kafka-topic)")]
    NoKafka,
    #[error("forward produces into exactly one topic; kafka.topics has {0:?}")]
    Topics(Vec<String>),
    #[error("invalid rules:\n{0}")]
    Rules(#[from] crate::rules::RulesError),
    #[error(transparent)]
    Kafka(#[from] crate::kafka::KafkaError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

#[derive(Clone)]
struct Forwarder {
    producer: FutureProducer,
    topic: Arc<str>,
    rules: Arc<RuleSet>,
    limits: Arc<Limits>,
    metrics: Arc<Metrics>,
}

/// One Kafka message: key and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyed {
    pub key: String,
    pub payload: Vec<u8>,
}

/// Groups alerts by correlation group key (first appearance order) and
/// renders each group as a generic-alert JSON array.
pub fn group_messages(rules: &RuleSet, alerts: &[Alert]) -> Vec<Keyed> {
    let mut groups: Vec<(String, Vec<Value>)> = Vec::new();
    for a in alerts {
        let key = rules.correlate_rule(&a.labels).group_key(&a.labels);
        let item = generic_json(a);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, items)) => items.push(item),
            None => groups.push((key, vec![item])),
        }
    }
    groups
        .into_iter()
        .map(|(key, items)| Keyed {
            key,
            payload: Value::Array(items).to_string().into_bytes(),
        })
        .collect()
}

/// An alert as the generic format reads it back, status made explicit.
fn generic_json(a: &Alert) -> Value {
    let ts = |t: Option<chrono::DateTime<Utc>>| {
        t.map(|t| Value::String(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)))
            .unwrap_or(Value::Null)
    };
    let mut v = json!({
        "labels": a.labels,
        "annotations": a.annotations,
        "status": a.status.as_str(),
        "startsAt": ts(a.starts_at),
        "endsAt": ts(a.ends_at),
        "generatorURL": a.generator_url,
    });
    if let (Some(origin), Some(o)) = (&a.origin, v.as_object_mut()) {
        o.insert("source".into(), Value::String(origin.clone()));
    }
    v
}

/// Runs the forwarder until `shutdown` completes, then flushes the producer.
pub async fn run(
    config: Config,
    rules: RulesSource,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ForwardError> {
    config.validate()?;
    let kafka = config.kafka.as_ref().ok_or(ForwardError::NoKafka)?;
    let [topic] = kafka.topics.as_slice() else {
        return Err(ForwardError::Topics(kafka.topics.clone()));
    };
    let rules = Arc::new(rules.load()?);
    tracing::info!(rules = %summarize(&rules), "rules loaded (group keys)");
    let producer = crate::kafka::producer(kafka, topic)?;
    let fwd = Forwarder {
        producer: producer.clone(),
        topic: Arc::from(topic.as_str()),
        rules,
        limits: Arc::new(config.limits.clone()),
        metrics: Arc::new(Metrics::new()),
    };
    let max_body = config.limits.max_body_bytes;
    let app = Router::new()
        .route(
            "/api/v2/alerts",
            post(|s: State<Forwarder>, b| forward(s, Format::AlertmanagerV2, b)),
        )
        .route(
            "/api/v1/webhook/alertmanager",
            post(|s: State<Forwarder>, b| forward(s, Format::WebhookV4, b)),
        )
        .route(
            "/api/v1/alerts",
            post(|s: State<Forwarder>, b| forward(s, Format::Generic, b)),
        )
        .route(
            "/v2/enqueue",
            post(|s: State<Forwarder>, b| forward(s, Format::PagerDutyV2, b)),
        )
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(|| async { "OK\n" }))
        .route("/-/ready", get(|| async { "OK\n" }))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(fwd);
    tracing::info!(listen = %listener.local_addr()?, topic = %topic, brokers = %kafka.brokers, "forwarding to kafka");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: intake stopped, flushing the producer");
        })
        .await?;
    let flushed = tokio::task::spawn_blocking(move || producer.flush(FLUSH_TIMEOUT))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    if let Err(e) = flushed {
        tracing::warn!(error = %e, "kafka producer flush incomplete at shutdown");
    }
    Ok(())
}

async fn metrics(State(s): State<Forwarder>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

async fn forward(
    State(s): State<Forwarder>,
    format: Format,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let source = format.source();
    let reject = |reason: &str| {
        s.metrics
            .requests_rejected
            .with_label_values(&[source.as_str(), reason])
            .inc();
    };
    let body = match crate::api::ingest_body(body, source, &s.limits, &s.metrics) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let now = Utc::now();
    let (messages, accepted, dedup_key) = if format == Format::PagerDutyV2 {
        match ingest::pagerduty_event(&body, &s.limits, now) {
            Ok(e) => {
                // The routing key is a string field of a valid event.
                let key = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["routing_key"].as_str().map(str::to_string))
                    .unwrap_or_default();
                let n = e.alerts.len();
                let msgs = if n == 0 {
                    Vec::new()
                } else {
                    vec![Keyed {
                        key,
                        payload: body.to_vec(),
                    }]
                };
                (msgs, n, Some(e.dedup_key))
            }
            Err(e) => {
                reject("invalid");
                return error(StatusCode::BAD_REQUEST, e);
            }
        }
    } else {
        match ingest::parse(format, &body, &s.limits, now) {
            Ok(alerts) => (group_messages(&s.rules, &alerts), alerts.len(), None),
            Err(e) => {
                reject("invalid");
                return error(StatusCode::BAD_REQUEST, e);
            }
        }
    };
    let count = messages.len();
    if let Err(e) = produce(&s, source.as_str(), messages).await {
        reject("unavailable");
        let mut r = error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("kafka topic {:?}: {e}; retry later", s.topic),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return r;
    }
    s.metrics
        .alerts_received
        .with_label_values(&[source.as_str()])
        .inc_by(accepted as u64);
    match dedup_key {
        Some(k) => (
            StatusCode::ACCEPTED,
            Json(json!({"status": "success", "message": "Event processed", "dedup_key": k})),
        )
            .into_response(),
        None => Json(json!({
            "status": "success",
            "accepted": accepted,
            "messages": count,
            "topic": &*s.topic,
        }))
        .into_response(),
    }
}

/// Enqueues every message, then waits for each acknowledgement.
async fn produce(s: &Forwarder, source: &str, messages: Vec<Keyed>) -> Result<(), String> {
    let mut pending = Vec::with_capacity(messages.len());
    for m in &messages {
        let headers = OwnedHeaders::new().insert(Header {
            key: SOURCE_HEADER,
            value: Some(source),
        });
        let record = FutureRecord::to(&s.topic)
            .key(m.key.as_bytes())
            .payload(m.payload.as_slice())
            .headers(headers);
        match s.producer.send_result(record) {
            Ok(delivery) => pending.push(delivery),
            Err((e, _)) => return Err(e.to_string()),
        }
    }
    for delivery in pending {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(e.to_string()),
            Err(_) => return Err("producer dropped the message".into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Limits;

    #[test]
    fn alerts_are_grouped_by_correlation_key_and_read_back_unchanged() {
        let rules = RuleSet::builtin().expect("built-in rules");
        let now = "2026-11-23T12:00:00Z".parse().expect("valid");
        let body = br#"[
            {"labels":{"alertname":"HostDown","instance":"a:9100","job":"node"},"annotations":{"summary":"a"},"startsAt":"2026-11-23T11:00:00Z"},
            {"labels":{"alertname":"HostDown","instance":"b:9100","job":"node"},"status":"resolved","source":"nagios"},
            {"labels":{"alertname":"HostDown","instance":"a:9100","job":"node","severity":"page"}}
        ]"#;
        let alerts = ingest::parse(Format::Generic, body, &Limits::default(), now).expect("valid");
        let msgs = group_messages(&rules, &alerts);
        let mut want: Vec<String> = Vec::new();
        for a in &alerts {
            let k = rules.correlate_rule(&a.labels).group_key(&a.labels);
            if !want.contains(&k) {
                want.push(k);
            }
        }
        assert_eq!(msgs.iter().map(|m| m.key.clone()).collect::<Vec<_>>(), want);
        let mut back = Vec::new();
        for m in &msgs {
            back.extend(
                ingest::parse(Format::Generic, &m.payload, &Limits::default(), now)
                    .expect("forwarded messages parse"),
            );
        }
        assert_eq!(back.len(), alerts.len());
        for a in &alerts {
            let b = back
                .iter()
                .find(|b| b.fingerprint == a.fingerprint && b.status == a.status)
                .expect("every alert arrives");
            assert_eq!(b.labels, a.labels);
            assert_eq!(b.annotations, a.annotations);
            assert_eq!(b.starts_at, a.starts_at);
            assert_eq!(b.origin, a.origin);
        }
    }
}
