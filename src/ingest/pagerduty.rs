//! PagerDuty Events API v2: events from monitors that speak PagerDuty
//! (`POST /v2/enqueue`), mapped onto alerts (see [`pagerduty_event`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

use super::alertmanager::check_map;
use super::json::from_json;
use super::{Format, IngestError};
use crate::config::Limits;
use crate::model::fingerprint;
use crate::model::{Alert, AlertStatus, Labels, Source};

/// What a PagerDuty v2 event asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagerDutyAction {
    Trigger,
    Acknowledge,
    Resolve,
}

/// A parsed PagerDuty Events API v2 event.
#[derive(Debug, Clone, PartialEq)]
pub struct PagerDutyEvent {
    /// The event's `dedup_key`, or for a trigger without one the key derived
    /// from its labels (answered to the sender, as PagerDuty does).
    pub dedup_key: String,
    pub action: PagerDutyAction,
    /// One alert for trigger and resolve; none for acknowledge.
    pub alerts: Vec<Alert>,
    /// The sending service's integration key.
    pub routing_key: String,
}

/// PagerDuty's own limits on these fields.
const PD_MAX_DEDUP_KEY: usize = 255;
const PD_MAX_SUMMARY: usize = 1024;

#[derive(Deserialize)]
struct RawPagerDuty {
    routing_key: String,
    event_action: String,
    #[serde(default)]
    dedup_key: Option<String>,
    #[serde(default)]
    payload: Option<RawPagerDutyPayload>,
    #[serde(default)]
    client_url: Option<String>,
}

#[derive(Deserialize)]
struct RawPagerDutyPayload {
    summary: String,
    source: String,
    severity: String,
    #[serde(default, deserialize_with = "pd_timestamp")]
    timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    component: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    class: Option<String>,
    #[serde(default)]
    custom_details: Option<serde_json::Value>,
}

/// ISO 8601 as PagerDuty documents it: RFC 3339, or with a `+0000` offset.
fn pd_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    match s.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => DateTime::parse_from_rfc3339(s)
            .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| serde::de::Error::custom(format!("invalid timestamp {s:?}: {e}"))),
    }
}

/// Parses one PagerDuty Events API v2 event (`POST /v2/enqueue`).
///
/// Mapping: a `trigger` becomes a firing alert with the labels `alertname`
/// (`payload.summary`, or `payload.class` when the summary is empty),
/// `severity`, `source`, and when given `component`, `group`, `class`, plus
/// `dedup_key`; `payload.summary` is also the `summary` annotation and each
/// top-level `custom_details` entry becomes an annotation (non-strings as
/// JSON text). A `resolve` becomes a resolved alert. An `acknowledge` is
/// accepted and changes nothing: acknowledging is incidentd's own lifecycle
/// step (`POST /api/v1/incidents/{id}/ack`), not something a monitor decides.
///
/// PagerDuty identifies an alert by `routing_key` + `dedup_key`, and a
/// resolve carries nothing else, so the fingerprint of these alerts is the
/// Alertmanager fingerprint of `{dedup_key, routing_key}` rather than of the
/// stored labels; the routing key itself (an integration secret) is not
/// stored. A trigger without `dedup_key` gets the hex fingerprint of its
/// labels as key, so identical triggers deduplicate.
pub fn pagerduty_event(
    body: &[u8],
    limits: &Limits,
    now: DateTime<Utc>,
) -> Result<PagerDutyEvent, IngestError> {
    let text = std::str::from_utf8(body).map_err(|e| IngestError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    if text.trim().is_empty() {
        return Err(IngestError::Empty {
            expected: Format::PagerDutyV2.expected(),
        });
    }
    let raw: RawPagerDuty = from_json(text)?;
    let invalid = |path: &str, message: String| IngestError::Invalid {
        path: path.to_string(),
        message,
    };
    if raw.routing_key.trim().is_empty() {
        return Err(invalid("routing_key", "must not be empty".into()));
    }
    let action = match raw.event_action.as_str() {
        "trigger" => PagerDutyAction::Trigger,
        "acknowledge" => PagerDutyAction::Acknowledge,
        "resolve" => PagerDutyAction::Resolve,
        other => {
            return Err(invalid(
                "event_action",
                format!("unknown event_action {other:?}; expected \"trigger\", \"acknowledge\" or \"resolve\""),
            ))
        }
    };
    let given_key = raw.dedup_key.filter(|k| !k.is_empty());
    if let Some(k) = &given_key {
        if k.len() > PD_MAX_DEDUP_KEY {
            return Err(invalid(
                "dedup_key",
                format!("{} bytes (limit {PD_MAX_DEDUP_KEY})", k.len()),
            ));
        }
        if k.contains('\0') {
            return Err(invalid("dedup_key", "contains a NUL byte".into()));
        }
    }
    let identity = |dedup_key: &str| {
        let mut id = Labels::new();
        id.insert("dedup_key".into(), dedup_key.to_string());
        id.insert("routing_key".into(), raw.routing_key.clone());
        fingerprint::fingerprint(&id)
    };
    match action {
        PagerDutyAction::Acknowledge | PagerDutyAction::Resolve => {
            let Some(dedup_key) = given_key else {
                return Err(invalid(
                    "dedup_key",
                    format!("required for event_action {:?}", raw.event_action),
                ));
            };
            let alerts = if action == PagerDutyAction::Resolve {
                let mut labels = Labels::new();
                labels.insert("dedup_key".into(), dedup_key.clone());
                let mut a = Alert::new(
                    labels,
                    Labels::new(),
                    Some(AlertStatus::Resolved),
                    None,
                    None,
                    String::new(),
                    Source::PagerDuty,
                    None,
                    now,
                )
                .ok_or_else(|| invalid("dedup_key", "must not be empty".into()))?;
                a.fingerprint = identity(&dedup_key);
                vec![a]
            } else {
                Vec::new()
            };
            Ok(PagerDutyEvent {
                dedup_key,
                action,
                alerts,
                routing_key: raw.routing_key.clone(),
            })
        }
        PagerDutyAction::Trigger => {
            let Some(p) = raw.payload else {
                return Err(invalid(
                    "payload",
                    "required for event_action \"trigger\"".into(),
                ));
            };
            if p.summary.trim().is_empty() && p.class.as_deref().unwrap_or("").is_empty() {
                return Err(invalid("payload.summary", "must not be empty".into()));
            }
            if p.summary.len() > PD_MAX_SUMMARY {
                return Err(invalid(
                    "payload.summary",
                    format!("{} bytes (limit {PD_MAX_SUMMARY})", p.summary.len()),
                ));
            }
            if p.source.trim().is_empty() {
                return Err(invalid("payload.source", "must not be empty".into()));
            }
            if !matches!(
                p.severity.as_str(),
                "critical" | "error" | "warning" | "info"
            ) {
                return Err(invalid(
                    "payload.severity",
                    format!(
                        "unknown severity {:?}; expected critical, error, warning or info",
                        p.severity
                    ),
                ));
            }
            let mut labels = Labels::new();
            let alertname = if p.summary.trim().is_empty() {
                p.class.clone().unwrap_or_default()
            } else {
                p.summary.clone()
            };
            labels.insert("alertname".into(), alertname);
            labels.insert("severity".into(), p.severity);
            labels.insert("source".into(), p.source);
            for (name, value) in [
                ("component", p.component),
                ("group", p.group),
                ("class", p.class),
            ] {
                if let Some(v) = value.filter(|v| !v.is_empty()) {
                    labels.insert(name.into(), v);
                }
            }
            let dedup_key = match given_key {
                Some(k) => k,
                None => {
                    let mut l = labels.clone();
                    l.retain(|_, v| !v.is_empty());
                    fingerprint::to_hex(fingerprint::fingerprint(&l))
                }
            };
            labels.insert("dedup_key".into(), dedup_key.clone());
            check_map(&labels, limits.max_labels, limits.max_label_value_bytes)
                .map_err(|m| invalid("payload", format!("labels: {m}")))?;
            let mut annotations = Labels::new();
            match p.custom_details {
                None | Some(serde_json::Value::Null) => {}
                Some(serde_json::Value::Object(map)) => {
                    for (k, v) in map {
                        let text = match v {
                            serde_json::Value::String(s) => s,
                            other => other.to_string(),
                        };
                        annotations.insert(k, text);
                    }
                }
                Some(serde_json::Value::String(s)) => {
                    annotations.insert("custom_details".into(), s);
                }
                Some(other) => {
                    annotations.insert("custom_details".into(), other.to_string());
                }
            }
            annotations.insert("summary".into(), p.summary);
            check_map(
                &annotations,
                limits.max_labels,
                limits.max_annotation_value_bytes,
            )
            .map_err(|m| invalid("payload.custom_details", m))?;
            let mut a = Alert::new(
                labels,
                annotations,
                Some(AlertStatus::Firing),
                p.timestamp,
                None,
                raw.client_url.unwrap_or_default(),
                Source::PagerDuty,
                None,
                now,
            )
            .ok_or_else(|| invalid("payload", "no label with a non-empty value".into()))?;
            a.fingerprint = identity(&dedup_key);
            Ok(PagerDutyEvent {
                dedup_key,
                action,
                alerts: vec![a],
                routing_key: raw.routing_key.clone(),
            })
        }
    }
}
