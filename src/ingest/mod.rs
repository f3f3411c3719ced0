//! Payload parsing and validation for every alert format, over HTTP and
//! Kafka alike.
//!
//! Input: a raw body and the format it claims to be ([`Format`]:
//! Alertmanager v2 postable alerts, Alertmanager webhook v4, generic JSON,
//! PagerDuty Events API v2), through one entry point, [`parse`]. Output: a
//! [`Payload`] of normalized [`Alert`]s, or one [`IngestError`] that names
//! the problem and where it is (byte offset for UTF-8, JSON path such as
//! `[3].labels.severity` for the rest). A request is all-or-nothing: one bad
//! alert rejects the whole request, so a sender never has to guess which
//! part was stored. Unknown fields are ignored; limits on label count and
//! sizes come from [`Limits`]. Nothing here does I/O.
//!
//! Layout: [`alertmanager`] (v2, webhook v4 and generic alerts share one
//! alert shape), [`pagerduty`] (events and their mapping), [`json`] (JSON
//! errors with their path).

pub mod alertmanager;
pub mod json;
pub mod pagerduty;

use chrono::{DateTime, Utc};
use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::config::Limits;
use crate::model::{Alert, Source};
use alertmanager::{normalize_all, RawAlert, RawWebhook};
use json::from_json;

pub use pagerduty::{pagerduty_event, PagerDutyAction, PagerDutyEvent};

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

    pub(crate) fn expected(self) -> &'static str {
        match self {
            Format::AlertmanagerV2 => "a JSON array of alerts",
            Format::WebhookV4 => "an Alertmanager webhook payload (version 4)",
            Format::Generic => "an alert object or an array of alerts",
            Format::PagerDutyV2 => "a PagerDuty Events API v2 event object",
        }
    }
}

/// A parsed body: its alerts, and for a PagerDuty event the keys that name
/// it (answered to the sender, and kept together on one partition).
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    pub alerts: Vec<Alert>,
    pub pagerduty: Option<PagerDutyKeys>,
}

/// The keys of a PagerDuty event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagerDutyKeys {
    /// The event's `dedup_key`, or the one derived for a trigger without.
    pub dedup_key: String,
    /// The integration key of the sending service (a secret: never stored).
    pub routing_key: String,
}

/// Parses and validates a body in `format`.
pub fn parse(
    format: Format,
    body: &[u8],
    limits: &Limits,
    now: DateTime<Utc>,
) -> Result<Payload, IngestError> {
    if format == Format::PagerDutyV2 {
        let e = pagerduty_event(body, limits, now)?;
        return Ok(Payload {
            alerts: e.alerts,
            pagerduty: Some(PagerDutyKeys {
                dedup_key: e.dedup_key,
                routing_key: e.routing_key,
            }),
        });
    }
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
    let alerts = match format {
        Format::AlertmanagerV2 => {
            let raw: Vec<RawAlert> = from_json(text)?;
            normalize_all(raw, "", source, limits, now)?
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
            normalize_all(raw.alerts, "alerts", source, limits, now)?
        }
        Format::Generic | Format::PagerDutyV2 => {
            let raw: Vec<RawAlert> = if trimmed.starts_with('[') {
                from_json(text)?
            } else {
                let one: RawAlert = from_json(text)?;
                vec![one]
            };
            let prefix = if trimmed.starts_with('[') { "" } else { "$" };
            normalize_all(raw, prefix, source, limits, now)?
        }
    };
    Ok(Payload {
        alerts,
        pagerduty: None,
    })
}

/// Which format a payload of unknown format (a Kafka message) is: an array
/// is generic / Alertmanager v2 alerts; an object with `event_action` a
/// PagerDuty event, with `alerts` a webhook payload, else one generic
/// alert. Anything else is handed to the generic parser, whose error then
/// names the problem.
pub fn detect(payload: &[u8]) -> Format {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        alerts: Option<IgnoredAny>,
        #[serde(default)]
        event_action: Option<IgnoredAny>,
    }
    let first = payload.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Format::Generic;
    }
    match serde_json::from_slice::<Probe>(payload) {
        Ok(p) if p.event_action.is_some() => Format::PagerDutyV2,
        Ok(p) if p.alerts.is_some() => Format::WebhookV4,
        _ => Format::Generic,
    }
}

#[cfg(test)]
mod tests;
