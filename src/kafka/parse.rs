//! Kafka messages to alerts: the payload formats of [`crate::ingest`],
//! detected per message or fixed per topic, and the reasons a message is
//! refused.

use chrono::{DateTime, Utc};

use crate::config::{KafkaFormat, Limits};
use crate::ingest::{self, Format};
use crate::model::{Alert, Source};

/// A message that will not become alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The `reason` label: `empty`, `too_large` or `invalid`.
    pub reason: &'static str,
    pub message: String,
}

/// Parses one message payload of `topic` into alerts tagged [`Source::Kafka`].
pub fn parse_message(
    format: KafkaFormat,
    payload: Option<&[u8]>,
    limits: &Limits,
    now: DateTime<Utc>,
) -> Result<Vec<Alert>, Rejection> {
    let Some(payload) = payload.filter(|p| !p.is_empty()) else {
        return Err(Rejection {
            reason: "empty",
            message: "message has no payload".into(),
        });
    };
    if payload.len() > limits.max_body_bytes {
        return Err(Rejection {
            reason: "too_large",
            message: format!(
                "payload is {} bytes, larger than limits.max_body_bytes ({})",
                payload.len(),
                limits.max_body_bytes
            ),
        });
    }
    let format = match format {
        KafkaFormat::Auto => ingest::detect(payload),
        KafkaFormat::AlertmanagerV2 => Format::AlertmanagerV2,
        KafkaFormat::WebhookV4 => Format::WebhookV4,
        KafkaFormat::Generic => Format::Generic,
        KafkaFormat::PagerdutyV2 => Format::PagerDutyV2,
    };
    let mut alerts = ingest::parse(format, payload, limits, now)
        .map_err(|e| Rejection {
            reason: "invalid",
            message: e.to_string(),
        })?
        .alerts;
    for a in &mut alerts {
        a.source = Source::Kafka;
    }
    Ok(alerts)
}

/// Lag of one partition: high watermark minus the first offset not yet
/// durably stored (the stored offset, else the committed one, else the
/// consumer's position). `None` while the high watermark is unknown.
pub fn partition_lag(hi: i64, stored: i64, committed: i64, app: i64, next: i64) -> Option<i64> {
    if hi < 0 {
        return None;
    }
    let position = [stored, committed, app, next]
        .into_iter()
        .find(|o| *o >= 0)?;
    Some((hi - position).max(0))
}

#[cfg(test)]
#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-23T12:00:00Z".parse().expect("valid")
    }

    #[test]
    fn messages_parse_with_kafka_source_or_are_rejected_with_a_reason() {
        let limits = Limits::default();
        let a = parse_message(
            KafkaFormat::Auto,
            Some(br#"{"version":"4","alerts":[{"labels":{"alertname":"A"}},{"labels":{"alertname":"B"}}]}"#),
            &limits,
            now(),
        )
        .expect("valid");
        assert_eq!(a.len(), 2);
        assert!(a.iter().all(|a| a.source == Source::Kafka));
        let pd = parse_message(
            KafkaFormat::Auto,
            Some(br#"{"routing_key":"r","event_action":"resolve","dedup_key":"k"}"#),
            &limits,
            now(),
        )
        .expect("valid");
        assert_eq!(pd[0].status, crate::model::AlertStatus::Resolved);

        let r = parse_message(KafkaFormat::Auto, None, &limits, now()).unwrap_err();
        assert_eq!(r.reason, "empty");
        let r = parse_message(KafkaFormat::Auto, Some(b"{oops"), &limits, now()).unwrap_err();
        assert_eq!(r.reason, "invalid");
        assert!(
            r.message.starts_with("invalid JSON at line 1"),
            "{}",
            r.message
        );
        // A fixed format is not second-guessed.
        let r = parse_message(
            KafkaFormat::WebhookV4,
            Some(br#"[{"labels":{"a":"b"}}]"#),
            &limits,
            now(),
        )
        .unwrap_err();
        assert_eq!(r.reason, "invalid");
        let small = Limits {
            max_body_bytes: 4,
            ..Limits::default()
        };
        let r = parse_message(KafkaFormat::Auto, Some(b"[{}, {}]"), &small, now()).unwrap_err();
        assert_eq!(r.reason, "too_large");
    }

    #[test]
    fn lag_uses_the_durable_position() {
        // hi, stored, committed, app, next
        assert_eq!(partition_lag(-1, 5, 5, 5, 5), None);
        assert_eq!(partition_lag(10, 7, 3, 9, 10), Some(3));
        assert_eq!(partition_lag(10, -1001, 4, 9, 10), Some(6));
        assert_eq!(partition_lag(10, -1001, -1001, -1001, 0), Some(10));
        assert_eq!(partition_lag(10, -1001, -1001, -1001, -1001), None);
        assert_eq!(partition_lag(3, 5, -1, -1, -1), Some(0));
    }
}
