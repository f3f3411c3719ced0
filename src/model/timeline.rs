//! Timeline entries: what happened to an incident, who did it, when.
//!
//! Contract: [`TimelineKind`] serializes to the snake_case names the API,
//! the store and the changelog have always carried (`created`,
//! `alert_added`, `sla_breached`, …); a new kind is a new variant, never a
//! renamed one. [`SlaKind`] names the two SLA targets.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A timeline entry: what happened, who did it, when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    pub kind: TimelineKind,
    pub by: String,
    pub message: String,
}

/// What a timeline entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimelineKind {
    /// Opened by its first alert.
    Created,
    /// A new alert joined.
    AlertAdded,
    /// An alert of the incident fired again.
    AlertRefired,
    /// An alert resolved (or expired).
    AlertResolved,
    /// A reopened incident let go of an alert another incident tracks.
    AlertReleased,
    /// A suppressed alert was let through (its silence, window or
    /// inhibiting alert is gone).
    Unsuppressed,
    /// An alert started flapping.
    Flapping,
    /// An alert stopped flapping.
    FlappingStopped,
    PriorityChanged,
    /// The group key recurred often enough for problem management.
    ProblemCandidate,
    Acknowledged,
    Assigned,
    Note,
    Resolved,
    Closed,
    Reopened,
    Escalated,
    SlaBreached,
    /// An action attempt and its result (or why a held job did not run).
    Action,
    /// Grouped into a major incident (on the child), or a child grouped
    /// in (on the parent).
    Grouped,
    /// A relation to another incident was added (cause, symptom, related).
    Linked,
    /// Merged into another incident (on the merged one), or another
    /// incident's alerts and timeline moved in (on the target).
    Merged,
    /// Some alerts left for a new incident (on both).
    Split,
    /// A person set or cleared the priority by hand.
    PriorityOverridden,
    /// A person was notified (who, how, for which level), or nobody could
    /// be and the level's fallback applied.
    Paged,
}

impl TimelineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TimelineKind::Created => "created",
            TimelineKind::AlertAdded => "alert_added",
            TimelineKind::AlertRefired => "alert_refired",
            TimelineKind::AlertResolved => "alert_resolved",
            TimelineKind::AlertReleased => "alert_released",
            TimelineKind::Unsuppressed => "unsuppressed",
            TimelineKind::Flapping => "flapping",
            TimelineKind::FlappingStopped => "flapping_stopped",
            TimelineKind::PriorityChanged => "priority_changed",
            TimelineKind::ProblemCandidate => "problem_candidate",
            TimelineKind::Acknowledged => "acknowledged",
            TimelineKind::Assigned => "assigned",
            TimelineKind::Note => "note",
            TimelineKind::Resolved => "resolved",
            TimelineKind::Closed => "closed",
            TimelineKind::Reopened => "reopened",
            TimelineKind::Escalated => "escalated",
            TimelineKind::SlaBreached => "sla_breached",
            TimelineKind::Action => "action",
            TimelineKind::Grouped => "grouped",
            TimelineKind::Linked => "linked",
            TimelineKind::Merged => "merged",
            TimelineKind::Split => "split",
            TimelineKind::PriorityOverridden => "priority_overridden",
            TimelineKind::Paged => "paged",
        }
    }
}

impl fmt::Display for TimelineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The two SLA targets: first response and recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaKind {
    Acknowledge,
    Resolve,
}

impl SlaKind {
    pub const ALL: [SlaKind; 2] = [SlaKind::Acknowledge, SlaKind::Resolve];

    /// Also the `kind` label of `incidentd_sla_breaches_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            SlaKind::Acknowledge => "acknowledge",
            SlaKind::Resolve => "resolve",
        }
    }
}

impl fmt::Display for SlaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_serialize_as_their_names() {
        for k in [
            TimelineKind::Created,
            TimelineKind::AlertAdded,
            TimelineKind::AlertRefired,
            TimelineKind::AlertResolved,
            TimelineKind::AlertReleased,
            TimelineKind::Unsuppressed,
            TimelineKind::Flapping,
            TimelineKind::FlappingStopped,
            TimelineKind::PriorityChanged,
            TimelineKind::ProblemCandidate,
            TimelineKind::Acknowledged,
            TimelineKind::Assigned,
            TimelineKind::Note,
            TimelineKind::Resolved,
            TimelineKind::Closed,
            TimelineKind::Reopened,
            TimelineKind::Escalated,
            TimelineKind::SlaBreached,
            TimelineKind::Action,
        ] {
            let json = serde_json::to_string(&k).expect("json");
            assert_eq!(json, format!("\"{}\"", k.as_str()));
            assert_eq!(serde_json::from_str::<TimelineKind>(&json).ok(), Some(k));
        }
        for k in SlaKind::ALL {
            assert_eq!(serde_json::to_string(&k).expect("json"), format!("\"{k}\""));
        }
    }
}
