//! The normalized alert every source produces, and the part of it that
//! incidentd keeps for every alert it tracks.
//!
//! Input: whatever an ingest source parsed. Output: an [`Alert`] with
//! non-empty labels (empty values dropped), UTC timestamps, an explicit
//! firing/resolved status and its Alertmanager-compatible fingerprint.
//! Invariant: an `Alert` is never built with an empty label set.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::fingerprint::fingerprint;
use super::labels::Labels;

/// Firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// Where an alert came from; also the `source` label of ingest metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `POST /api/v2/alerts` (Prometheus, or anything speaking Alertmanager's API).
    AlertmanagerApi,
    /// `POST /api/v1/webhook/alertmanager` (Alertmanager webhook v4).
    AlertmanagerWebhook,
    /// `POST /api/v1/alerts`.
    Generic,
    /// Replayed from a recording (`incidentd replay`, `rules test`).
    Replay,
    /// `POST /v2/enqueue` (PagerDuty Events API v2).
    #[serde(rename = "pagerduty")]
    PagerDuty,
    /// A Kafka topic.
    Kafka,
}

impl Source {
    pub const ALL: [Source; 6] = [
        Source::AlertmanagerApi,
        Source::AlertmanagerWebhook,
        Source::Generic,
        Source::Replay,
        Source::PagerDuty,
        Source::Kafka,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::AlertmanagerApi => "alertmanager_api",
            Source::AlertmanagerWebhook => "alertmanager_webhook",
            Source::Generic => "generic",
            Source::Replay => "replay",
            Source::PagerDuty => "pagerduty",
            Source::Kafka => "kafka",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert after normalization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub fingerprint: u64,
    pub labels: Labels,
    pub annotations: Labels,
    pub status: AlertStatus,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub generator_url: String,
    pub source: Source,
    /// Free-form origin given by the sender (generic API `source` field).
    pub origin: Option<String>,
}

impl Alert {
    /// Builds an alert: drops empty label values, derives the status when the
    /// sender gave none (resolved iff `ends_at` is set and not after `now`),
    /// and computes the fingerprint. Returns `None` for an empty label set.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        mut labels: Labels,
        annotations: Labels,
        status: Option<AlertStatus>,
        starts_at: Option<DateTime<Utc>>,
        ends_at: Option<DateTime<Utc>>,
        generator_url: String,
        source: Source,
        origin: Option<String>,
        now: DateTime<Utc>,
    ) -> Option<Alert> {
        labels.retain(|_, v| !v.is_empty());
        if labels.is_empty() {
            return None;
        }
        let status = status.unwrap_or(match ends_at {
            Some(end) if end <= now => AlertStatus::Resolved,
            _ => AlertStatus::Firing,
        });
        Some(Alert {
            fingerprint: fingerprint(&labels),
            labels,
            annotations,
            status,
            starts_at,
            ends_at,
            generator_url,
            source,
            origin,
        })
    }

    pub fn alertname(&self) -> &str {
        self.labels.get("alertname").unwrap_or("")
    }
}

/// What incidentd keeps of every alert it tracks, in an incident or kept
/// out of one (suppressed): its identity, labels and latest state, and
/// when it was seen. [`super::incident::AlertRecord`] and
/// [`super::suppression::SuppressedAlert`] both start with these fields
/// (flattened, so their JSON is unchanged).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrackedAlert {
    /// Alertmanager's fingerprint of the labels, 16 hex digits.
    #[serde(with = "super::fingerprint::hex")]
    #[schema(value_type = String)]
    pub fingerprint: u64,
    pub labels: Labels,
    pub annotations: Labels,
    pub status: AlertStatus,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    // Shared between the alerts of one rule (see the `intern` module).
    #[schema(value_type = String)]
    pub generator_url: Arc<str>,
    pub source: Source,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// Notifications of this alert that changed nothing (deduplicated).
    pub repeat_count: u64,
}

impl TrackedAlert {
    /// A firing alert first seen at `now` (`startsAt` defaults to it), with
    /// its `generator_url` as a shared copy (see the `intern` module).
    pub fn first_seen(a: &Alert, generator_url: Arc<str>, now: DateTime<Utc>) -> TrackedAlert {
        TrackedAlert {
            fingerprint: a.fingerprint,
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            status: AlertStatus::Firing,
            starts_at: a.starts_at.unwrap_or(now),
            ends_at: a.ends_at,
            generator_url,
            source: a.source,
            first_seen_at: now,
            last_seen_at: now,
            repeat_count: 0,
        }
    }

    pub fn alertname(&self) -> &str {
        self.labels.get("alertname").unwrap_or("")
    }
}
