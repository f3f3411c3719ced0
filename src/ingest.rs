//! Payload parsing and validation for every HTTP alert format.
//!
//! Input: a raw request body and the format it claims to be (Alertmanager v2
//! postable alerts, Alertmanager webhook v4, generic JSON, PagerDuty Events
//! API v2 — see [`pagerduty_event`] for its mapping). Output: normalized
//! [`Alert`]s, or one [`IngestError`] that names the problem and where it is
//! (byte offset for UTF-8, JSON path such as `[3].labels.severity` for the
//! rest). A request is all-or-nothing: one bad alert rejects the whole
//! request, so a sender never has to guess which part was stored. Unknown
//! fields are ignored; limits on label count and sizes come from [`Limits`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

use crate::alert::{Alert, AlertStatus, Labels, Source};
use crate::config::Limits;

/// Why a payload was rejected. Every variant maps to a 4xx answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IngestError {
    #[error("request body is not valid UTF-8 (first bad byte at offset {offset})")]
    NotUtf8 { offset: usize },
    #[error("request body is empty; expected {expected}")]
    Empty { expected: &'static str },
    #[error("invalid JSON at line {line} column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("too many alerts in one request: {count} (limit {limit})")]
    TooManyAlerts { count: usize, limit: usize },
}

/// The formats accepted over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    AlertmanagerV2,
    WebhookV4,
    Generic,
    /// PagerDuty Events API v2: one event object per body.
    PagerDutyV2,
}

impl Format {
    pub fn source(self) -> Source {
        match self {
            Format::AlertmanagerV2 => Source::AlertmanagerApi,
            Format::WebhookV4 => Source::AlertmanagerWebhook,
            Format::Generic => Source::Generic,
            Format::PagerDutyV2 => Source::PagerDuty,
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Format::AlertmanagerV2 => "a JSON array of alerts",
            Format::WebhookV4 => "an Alertmanager webhook payload (version 4)",
            Format::Generic => "an alert object or an array of alerts",
            Format::PagerDutyV2 => "a PagerDuty Events API v2 event object",
        }
    }
}

/// Parses and validates a body in `format`.
pub fn parse(
    format: Format,
    body: &[u8],
    limits: &Limits,
    now: DateTime<Utc>,
) -> Result<Vec<Alert>, IngestError> {
    let text = std::str::from_utf8(body).map_err(|e| IngestError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(IngestError::Empty {
            expected: format.expected(),
        });
    }
    let source = format.source();
    match format {
        Format::AlertmanagerV2 => {
            let raw: Vec<RawAlert> = from_json(text)?;
            normalize_all(raw, "", source, limits, now)
        }
        Format::WebhookV4 => {
            let raw: RawWebhook = from_json(text)?;
            if let Some(v) = raw.version.as_deref() {
                if v != "4" {
                    return Err(IngestError::Invalid {
                        path: "version".into(),
                        message: format!(
                            "unsupported webhook payload version {v:?}; expected \"4\""
                        ),
                    });
                }
            }
            normalize_all(raw.alerts, "alerts", source, limits, now)
        }
        Format::Generic => {
            let raw: Vec<RawAlert> = if trimmed.starts_with('[') {
                from_json(text)?
            } else {
                let one: RawAlert = from_json(text)?;
                vec![one]
            };
            let prefix = if trimmed.starts_with('[') { "" } else { "$" };
            normalize_all(raw, prefix, source, limits, now)
        }
        Format::PagerDutyV2 => pagerduty_event(body, limits, now).map(|e| e.alerts),
    }
}

fn from_json<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, IngestError> {
    // Good input takes the fast path; only a failure pays for parsing again
    // with path tracking, which names where the problem is.
    if let Ok(v) = serde_json::from_str(text) {
        return Ok(v);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            IngestError::Syntax {
                line: inner.line(),
                column: inner.column(),
                message: strip_position(&inner.to_string()),
            }
        } else {
            IngestError::Invalid {
                path: if path == "." { "$".into() } else { path },
                message: strip_position(&inner.to_string()),
            }
        }
    })?;
    de.end().map_err(|e| IngestError::Syntax {
        line: e.line(),
        column: e.column(),
        message: strip_position(&e.to_string()),
    })?;
    Ok(value)
}

/// serde_json appends " at line L column C"; the path or our own prefix says it better.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn normalize_all(
    raw: Vec<RawAlert>,
    prefix: &str,
    source: Source,
    limits: &Limits,
    now: DateTime<Utc>,
) -> Result<Vec<Alert>, IngestError> {
    if raw.len() > limits.max_alerts_per_request {
        return Err(IngestError::TooManyAlerts {
            count: raw.len(),
            limit: limits.max_alerts_per_request,
        });
    }
    raw.into_iter()
        .enumerate()
        .map(|(i, a)| {
            let path = if prefix == "$" {
                String::new()
            } else {
                format!("{prefix}[{i}]")
            };
            a.normalize(&path, source, limits, now)
        })
        .collect()
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

#[derive(Deserialize)]
struct RawWebhook {
    #[serde(default)]
    version: Option<String>,
    alerts: Vec<RawAlert>,
}

/// The union of the alert fields of all three formats.
#[derive(Deserialize)]
struct RawAlert {
    labels: Labels,
    #[serde(default)]
    annotations: Option<Labels>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default, rename = "startsAt", deserialize_with = "timestamp")]
    starts_at: Option<DateTime<Utc>>,
    #[serde(default, rename = "endsAt", deserialize_with = "timestamp")]
    ends_at: Option<DateTime<Utc>>,
    #[serde(default, rename = "generatorURL")]
    generator_url: Option<String>,
    #[serde(default)]
    source: Option<String>,
}

/// RFC 3339, or null/"" for unset. Alertmanager's zero time
/// (`0001-01-01T00:00:00Z`) also means unset.
fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    match s.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => {
            let t = DateTime::parse_from_rfc3339(s).map_err(|e| {
                serde::de::Error::custom(format!("invalid RFC 3339 timestamp {s:?}: {e}"))
            })?;
            let t = t.with_timezone(&Utc);
            if t.timestamp() <= -62_135_596_800 {
                Ok(None)
            } else {
                Ok(Some(t))
            }
        }
    }
}

impl RawAlert {
    fn normalize(
        self,
        path: &str,
        source: Source,
        limits: &Limits,
        now: DateTime<Utc>,
    ) -> Result<Alert, IngestError> {
        let invalid = |field: &str, message: String| IngestError::Invalid {
            path: join(path, field),
            message,
        };
        check_map(
            &self.labels,
            limits.max_labels,
            limits.max_label_value_bytes,
        )
        .map_err(|m| invalid("labels", m))?;
        let annotations = self.annotations.unwrap_or_default();
        check_map(
            &annotations,
            limits.max_labels,
            limits.max_annotation_value_bytes,
        )
        .map_err(|m| invalid("annotations", m))?;
        let status = match self.status.as_deref() {
            None | Some("") => None,
            Some("firing") => Some(AlertStatus::Firing),
            Some("resolved") => Some(AlertStatus::Resolved),
            Some(other) => {
                return Err(invalid(
                    "status",
                    format!("unknown status {other:?}; expected \"firing\" or \"resolved\""),
                ))
            }
        };
        if let (Some(s), Some(e)) = (self.starts_at, self.ends_at) {
            if e < s {
                return Err(invalid(
                    "endsAt",
                    format!(
                        "endsAt {} is before startsAt {}",
                        e.to_rfc3339(),
                        s.to_rfc3339()
                    ),
                ));
            }
        }
        let labels: Labels = self.labels;
        Alert::new(
            labels,
            annotations,
            status,
            self.starts_at,
            self.ends_at,
            self.generator_url.unwrap_or_default(),
            source,
            self.source,
            now,
        )
        .ok_or_else(|| {
            invalid(
                "labels",
                "an alert needs at least one label with a non-empty value".into(),
            )
        })
    }
}

fn check_map(map: &Labels, max_entries: usize, max_value: usize) -> Result<(), String> {
    if map.len() > max_entries {
        return Err(format!("{} entries (limit {max_entries})", map.len()));
    }
    for (k, v) in map {
        if k.is_empty() {
            return Err("empty name".into());
        }
        if k.len() > MAX_NAME_BYTES {
            return Err(format!(
                "name {:?}… is {} bytes (limit {MAX_NAME_BYTES})",
                k.chars().take(32).collect::<String>(),
                k.len()
            ));
        }
        if v.len() > max_value {
            return Err(format!(
                "value of {k:?} is {} bytes (limit {max_value})",
                v.len()
            ));
        }
    }
    Ok(())
}

/// Longest accepted label or annotation name.
const MAX_NAME_BYTES: usize = 1024;

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
    }
    let identity = |dedup_key: &str| {
        let mut id = Labels::new();
        id.insert("dedup_key".into(), dedup_key.to_string());
        id.insert("routing_key".into(), raw.routing_key.clone());
        crate::fingerprint::fingerprint(&id)
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
                    crate::fingerprint::to_hex(crate::fingerprint::fingerprint(&l))
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
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-23T12:00:00Z".parse().expect("valid")
    }

    fn p(format: Format, body: &str) -> Result<Vec<Alert>, IngestError> {
        parse(format, body.as_bytes(), &Limits::default(), now())
    }

    #[test]
    fn v2_array() {
        let a = p(
            Format::AlertmanagerV2,
            r#"[{"labels":{"alertname":"TestAlert","x":""},"annotations":{"summary":"s"},
                "startsAt":"2026-11-23T11:00:00Z","endsAt":"2026-11-23T13:00:00Z","generatorURL":"http://p"}]"#,
        )
        .expect("valid");
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].status, AlertStatus::Firing);
        assert_eq!(
            crate::fingerprint::to_hex(a[0].fingerprint),
            "dab43189276e5f48"
        );
        assert!(!a[0].labels.contains_key("x"));
    }

    #[test]
    fn v2_ends_at_in_past_is_resolved() {
        let a = p(
            Format::AlertmanagerV2,
            r#"[{"labels":{"alertname":"A"},"endsAt":"2026-11-23T11:59:00Z"}]"#,
        )
        .expect("valid");
        assert_eq!(a[0].status, AlertStatus::Resolved);
    }

    #[test]
    fn webhook_v4_with_unknown_fields_and_zero_ends_at() {
        let body = r#"{"version":"4","groupKey":"{}:{}","truncatedAlerts":0,"status":"firing","receiver":"r",
          "groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://am","extra":[1,2],
          "alerts":[{"status":"firing","labels":{"alertname":"A"},"annotations":{},
            "startsAt":"2026-11-23T11:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"x"}]}"#;
        let a = p(Format::WebhookV4, body).expect("valid");
        assert_eq!(a[0].status, AlertStatus::Firing);
        assert_eq!(a[0].ends_at, None);
    }

    #[test]
    fn generic_single_object() {
        let a = p(
            Format::Generic,
            r#"{"labels":{"alertname":"Disk"},"status":"resolved","source":"nagios"}"#,
        )
        .expect("valid");
        assert_eq!(a[0].status, AlertStatus::Resolved);
        assert_eq!(a[0].origin.as_deref(), Some("nagios"));
    }

    #[test]
    fn errors_name_the_place() {
        let e = p(
            Format::AlertmanagerV2,
            r#"[{"labels":{"a":"b"}},{"labels":{"a":1}}]"#,
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("[1].labels.a: invalid type"),
            "{e}"
        );
        let e = p(Format::AlertmanagerV2, r#"[{"labels":{}}]"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "[0].labels: an alert needs at least one label with a non-empty value"
        );
        let e = p(
            Format::AlertmanagerV2,
            r#"[{"labels":{"a":"b"},"startsAt":"yesterday"}]"#,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("[0].startsAt: invalid RFC 3339 timestamp \"yesterday\""),
            "{e}"
        );
        let e = p(
            Format::WebhookV4,
            r#"{"alerts":[{"labels":{"a":"b"},"status":"maybe"}]}"#,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("alerts[0].status: unknown status"),
            "{e}"
        );
        let e = p(Format::AlertmanagerV2, r#"[{"labels":{"a":"b"}"#).unwrap_err();
        assert!(matches!(e, IngestError::Syntax { line: 1, .. }), "{e}");
        let e = p(Format::AlertmanagerV2, r#"{"labels":{"a":"b"}}"#).unwrap_err();
        assert!(e.to_string().contains("expected a sequence"), "{e}");
        let e = p(Format::AlertmanagerV2, "").unwrap_err();
        assert!(matches!(e, IngestError::Empty { .. }));
        let e = p(Format::WebhookV4, r#"{"version":"3","alerts":[]}"#).unwrap_err();
        assert!(e.to_string().starts_with("version: unsupported"), "{e}");
        let e = p(Format::Generic, r#"{"annotations":{}}"#).unwrap_err();
        assert!(e.to_string().contains("missing field `labels`"), "{e}");
        let e = p(Format::AlertmanagerV2, r#"[{"labels":{"a":"b"},"startsAt":"2026-11-23T12:00:00Z","endsAt":"2026-11-23T11:00:00Z"}]"#).unwrap_err();
        assert!(e.to_string().starts_with("[0].endsAt: endsAt"), "{e}");
    }

    #[test]
    fn non_utf8_names_offset() {
        let e = parse(
            Format::AlertmanagerV2,
            b"[{\"labels\":{\"a\":\"\xff\"}}]",
            &Limits::default(),
            now(),
        )
        .unwrap_err();
        assert_eq!(e, IngestError::NotUtf8 { offset: 17 });
    }

    #[test]
    fn limits() {
        let limits = Limits {
            max_labels: 2,
            max_label_value_bytes: 4,
            max_alerts_per_request: 1,
            ..Limits::default()
        };
        let e = parse(
            Format::AlertmanagerV2,
            br#"[{"labels":{"a":"1","b":"2","c":"3"}}]"#,
            &limits,
            now(),
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("[0].labels: 3 entries (limit 2)"),
            "{e}"
        );
        let e = parse(
            Format::AlertmanagerV2,
            br#"[{"labels":{"a":"12345"}}]"#,
            &limits,
            now(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("limit 4"), "{e}");
        let e = parse(
            Format::AlertmanagerV2,
            br#"[{"labels":{"a":"1"}},{"labels":{"a":"2"}}]"#,
            &limits,
            now(),
        )
        .unwrap_err();
        assert!(matches!(
            e,
            IngestError::TooManyAlerts { count: 2, limit: 1 }
        ));
    }
    fn pd(body: &str) -> Result<PagerDutyEvent, IngestError> {
        pagerduty_event(body.as_bytes(), &Limits::default(), now())
    }

    #[test]
    fn pagerduty_trigger_maps_payload_to_labels() {
        let e = pd(
            r#"{"routing_key":"R0123","event_action":"trigger","dedup_key":"disk-db1",
            "client":"nagios","client_url":"http://nagios/db1",
            "payload":{"summary":"Disk full on db1","source":"db1","severity":"critical",
              "timestamp":"2026-11-23T11:42:58.315+0000","component":"postgres","group":"prod-db",
              "class":"disk","custom_details":{"free":"0%","mounts":["/","/var"]}},
            "images":[],"links":[]}"#,
        )
        .expect("valid");
        assert_eq!(e.action, PagerDutyAction::Trigger);
        assert_eq!(e.dedup_key, "disk-db1");
        let a = &e.alerts[0];
        assert_eq!(a.status, AlertStatus::Firing);
        assert_eq!(a.source, Source::PagerDuty);
        assert_eq!(a.alertname(), "Disk full on db1");
        for (k, v) in [
            ("severity", "critical"),
            ("source", "db1"),
            ("component", "postgres"),
            ("group", "prod-db"),
            ("class", "disk"),
            ("dedup_key", "disk-db1"),
        ] {
            assert_eq!(a.labels.get(k), Some(v), "label {k}");
        }
        assert!(
            !a.labels.contains_key("routing_key"),
            "the routing key is a secret"
        );
        assert_eq!(&a.annotations["summary"], "Disk full on db1");
        assert_eq!(&a.annotations["free"], "0%");
        assert_eq!(&a.annotations["mounts"], r#"["/","/var"]"#);
        assert_eq!(a.generator_url, "http://nagios/db1");
        assert_eq!(
            a.starts_at,
            Some("2026-11-23T11:42:58.315Z".parse().expect("valid"))
        );
    }

    #[test]
    fn pagerduty_resolve_matches_its_trigger() {
        let t = pd(
            r#"{"routing_key":"R1","event_action":"trigger","dedup_key":"k1",
            "payload":{"summary":"CPU at 93%","source":"web1","severity":"warning"}}"#,
        )
        .expect("valid");
        let t2 = pd(
            r#"{"routing_key":"R1","event_action":"trigger","dedup_key":"k1",
            "payload":{"summary":"CPU at 97%","source":"web1","severity":"warning"}}"#,
        )
        .expect("valid");
        let r =
            pd(r#"{"routing_key":"R1","event_action":"resolve","dedup_key":"k1"}"#).expect("valid");
        let other_service =
            pd(r#"{"routing_key":"R2","event_action":"resolve","dedup_key":"k1"}"#).expect("valid");
        assert_eq!(r.alerts[0].status, AlertStatus::Resolved);
        assert_eq!(t.alerts[0].fingerprint, r.alerts[0].fingerprint);
        assert_eq!(t.alerts[0].fingerprint, t2.alerts[0].fingerprint);
        assert_ne!(r.alerts[0].fingerprint, other_service.alerts[0].fingerprint);
        let ack = pd(r#"{"routing_key":"R1","event_action":"acknowledge","dedup_key":"k1"}"#)
            .expect("valid");
        assert_eq!(ack.action, PagerDutyAction::Acknowledge);
        assert!(ack.alerts.is_empty());
        assert_eq!(ack.dedup_key, "k1");
    }

    #[test]
    fn pagerduty_trigger_without_dedup_key_gets_a_stable_one() {
        let body = r#"{"routing_key":"R1","event_action":"trigger",
            "payload":{"summary":"s","source":"h","severity":"info"}}"#;
        let a = pd(body).expect("valid");
        let b = pd(body).expect("valid");
        assert_eq!(a.dedup_key.len(), 16);
        assert_eq!(a.dedup_key, b.dedup_key);
        assert_eq!(a.alerts[0].labels["dedup_key"], a.dedup_key);
        let via_parse = p(Format::PagerDutyV2, body).expect("valid");
        assert_eq!(via_parse, a.alerts);
    }

    #[test]
    fn pagerduty_errors_name_the_field() {
        let cases = [
            (
                r#"{"event_action":"trigger"}"#,
                "$: missing field `routing_key`",
            ),
            (
                r#"{"routing_key":"","event_action":"trigger"}"#,
                "routing_key: must not be empty",
            ),
            (
                r#"{"routing_key":"R","event_action":"escalate"}"#,
                "event_action: unknown event_action \"escalate\"",
            ),
            (
                r#"{"routing_key":"R","event_action":"resolve"}"#,
                "dedup_key: required for event_action \"resolve\"",
            ),
            (
                r#"{"routing_key":"R","event_action":"trigger"}"#,
                "payload: required",
            ),
            (
                r#"{"routing_key":"R","event_action":"trigger","payload":{"summary":"s","source":"h","severity":"fatal"}}"#,
                "payload.severity: unknown severity \"fatal\"",
            ),
            (
                r#"{"routing_key":"R","event_action":"trigger","payload":{"summary":"s","severity":"info"}}"#,
                "payload: missing field `source`",
            ),
            (
                r#"{"routing_key":"R","event_action":"trigger","payload":{"summary":"s","source":"h","severity":"info","timestamp":"noon"}}"#,
                "payload.timestamp: invalid timestamp \"noon\"",
            ),
        ];
        for (body, want) in cases {
            let e = pd(body).expect_err(body).to_string();
            assert!(e.starts_with(want), "{body}: got {e:?}, want {want:?}");
        }
    }
}
