//! `incidentd forward`: the HTTP receivers of `serve`, producing into Kafka
//! instead of processing locally — the front door of the multi-instance
//! setup (docs/scaling.md).
//!
//! Input: the ingest endpoints of [`crate::http::ingest`] (`/api/v2/alerts`,
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

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use chrono::{SecondsFormat, Utc};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Map, Value};

use crate::config::Limits;
use crate::http::ingest::{refused_unavailable, Intake, Refused};
use crate::ingest::Payload;
use crate::metrics::Metrics;
use crate::model::{Alert, Source};
use crate::rules::RuleSet;

/// Header naming the HTTP source of forwarded alerts (informational).
pub const SOURCE_HEADER: &str = "incidentd-source";

/// Why a message did not reach the broker.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("{0}")]
    Kafka(#[source] RdError),
    #[error("producer dropped the message")]
    Dropped,
}

/// The forwarder's state: the producer and the rules that give group keys.
#[derive(Clone)]
pub struct Forwarder {
    pub producer: FutureProducer,
    pub topic: Arc<str>,
    pub rules: Arc<RuleSet>,
    pub limits: Arc<Limits>,
    pub metrics: Arc<Metrics>,
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

impl Intake for Forwarder {
    fn limits(&self) -> &Limits {
        &self.limits
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    async fn accept(
        &self,
        source: Source,
        body: Bytes,
        payload: Payload,
        _started: Instant,
    ) -> Result<Map<String, Value>, Refused> {
        let accepted = payload.alerts.len();
        let messages = match &payload.pagerduty {
            // Forwarded as it came, keyed by the service's routing key: a
            // resolve carries only `dedup_key`, so its group is unknown.
            Some(keys) if accepted > 0 => vec![Keyed {
                key: keys.routing_key.clone(),
                payload: body.to_vec(),
            }],
            Some(_) => Vec::new(),
            None => group_messages(&self.rules, &payload.alerts),
        };
        let count = messages.len();
        if let Err(e) = produce(self, source.as_str(), messages).await {
            return Err(refused_unavailable(format!(
                "kafka topic {:?}: {e}; retry later",
                self.topic
            )));
        }
        self.metrics
            .alerts_received
            .with_label_values(&[source.as_str()])
            .inc_by(accepted as u64);
        let mut fields = Map::new();
        fields.insert("accepted".into(), json!(accepted));
        fields.insert("messages".into(), json!(count));
        fields.insert("topic".into(), json!(&*self.topic));
        Ok(fields)
    }
}

/// Enqueues every message, then waits for each acknowledgement.
async fn produce(s: &Forwarder, source: &str, messages: Vec<Keyed>) -> Result<(), ProduceError> {
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
            Err((e, _)) => return Err(ProduceError::Kafka(e)),
        }
    }
    for delivery in pending {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(ProduceError::Kafka(e)),
            Err(_) => return Err(ProduceError::Dropped),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{self, Format};

    #[test]
    fn alerts_are_grouped_by_correlation_key_and_read_back_unchanged() {
        let rules = RuleSet::builtin().expect("built-in rules");
        let now = "2026-11-23T12:00:00Z".parse().expect("valid");
        let body = br#"[
            {"labels":{"alertname":"HostDown","instance":"a:9100","job":"node"},"annotations":{"summary":"a"},"startsAt":"2026-11-23T11:00:00Z"},
            {"labels":{"alertname":"HostDown","instance":"b:9100","job":"node"},"status":"resolved","source":"nagios"},
            {"labels":{"alertname":"HostDown","instance":"a:9100","job":"node","severity":"page"}}
        ]"#;
        let alerts = ingest::parse(Format::Generic, body, &Limits::default(), now)
            .expect("valid")
            .alerts;
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
                    .expect("forwarded messages parse")
                    .alerts,
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
