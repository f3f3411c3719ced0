//! The alert shape Alertmanager's v2 API, its webhook (version 4) and the
//! generic API share, and its normalization into [`Alert`]s.
//!
//! Contract: labels and annotations within [`Limits`]; `status` firing,
//! resolved or unset (derived from `endsAt`); timestamps RFC 3339, with
//! Alertmanager's zero time meaning unset; `endsAt` not before `startsAt`.
//! Each error names the alert's JSON path.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

use super::IngestError;
use crate::config::Limits;
use crate::model::{Alert, AlertStatus, Labels, Source};

pub(super) fn normalize_all(
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

pub(super) fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

#[derive(Deserialize)]
pub(super) struct RawWebhook {
    #[serde(default)]
    pub(super) version: Option<String>,
    pub(super) alerts: Vec<RawAlert>,
}

/// The union of the alert fields of all three formats.
#[derive(Deserialize)]
pub(super) struct RawAlert {
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
pub(super) fn timestamp<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
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

pub(super) fn check_map(map: &Labels, max_entries: usize, max_value: usize) -> Result<(), String> {
    if map.len() > max_entries {
        return Err(format!("{} entries (limit {max_entries})", map.len()));
    }
    for (k, v) in map {
        if k.is_empty() {
            return Err("empty name".into());
        }
        // Alertmanager's rules since 0.27: any UTF-8 name, but not empty
        // and no control characters.
        if let Some(c) = k.chars().find(|c| c.is_control()) {
            return Err(format!(
                "name {k:?} contains the control character {c:?}; names may be any UTF-8 text without control characters"
            ));
        }
        // A NUL cannot pass into an exec action's environment or arguments.
        if v.contains('\0') {
            return Err(format!("value of {k:?} contains a NUL byte"));
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
pub(super) const MAX_NAME_BYTES: usize = 1024;
