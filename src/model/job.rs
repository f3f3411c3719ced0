//! The data half of actions: triggers, action jobs and attempt results.
//!
//! Contract: a [`Job`] is one run of one action for one trigger of one
//! incident; its key (`incident/action/trigger/occurrence`) makes the same
//! trigger run once, also across a restart. Jobs are stored as JSON: the
//! serialized names of [`Trigger`] and [`JobState`] are part of that format.
//! The executor reports each attempt back as an [`AttemptResult`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::incident::IncidentKey;

/// Incident events that can start actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Opened,
    PriorityChanged,
    AlertAdded,
    Acknowledged,
    Escalated,
    SlaBreached,
    Resolved,
    Reopened,
    Closed,
    /// A person added a note (the job's payload carries it as `note`).
    Noted,
}

impl Trigger {
    pub const ALL: [Trigger; 10] = [
        Trigger::Opened,
        Trigger::PriorityChanged,
        Trigger::AlertAdded,
        Trigger::Acknowledged,
        Trigger::Escalated,
        Trigger::SlaBreached,
        Trigger::Resolved,
        Trigger::Reopened,
        Trigger::Closed,
        Trigger::Noted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Opened => "opened",
            Trigger::PriorityChanged => "priority_changed",
            Trigger::AlertAdded => "alert_added",
            Trigger::Acknowledged => "acknowledged",
            Trigger::Escalated => "escalated",
            Trigger::SlaBreached => "sla_breached",
            Trigger::Resolved => "resolved",
            Trigger::Reopened => "reopened",
            Trigger::Closed => "closed",
            Trigger::Noted => "noted",
        }
    }

    pub fn parse(s: &str) -> Option<Trigger> {
        Trigger::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Pending,
    Succeeded,
    Failed,
    RateLimited,
    Disabled,
    /// Waiting until `not_before`: for a storm to form (storm `hold`) or a
    /// cause to be acknowledged (relate `delay`). Then it runs or is
    /// dropped.
    Held,
    /// Never run: its incident was grouped into a major incident, or its
    /// cause was acknowledged, while it was held.
    Dropped,
}

/// One run of one action for one trigger of one incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// `incident/action/trigger/occurrence`: unique per run-worthy event.
    pub key: String,
    pub incident: IncidentKey,
    pub action: String,
    pub trigger: Trigger,
    pub created_at: DateTime<Utc>,
    pub state: JobState,
    pub attempts: u32,
    pub last_result: Option<String>,
    /// The incident event at trigger time: what templates, env and stdin see.
    pub payload: serde_json::Value,
    /// A held job runs (or is dropped) at this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
}

/// The result of one attempt, reported back to the writer.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptResult {
    pub job_key: String,
    pub attempt: u32,
    pub outcome: AttemptOutcome,
    /// Human-readable, safe for the timeline (no secrets).
    pub message: String,
    /// Set when another attempt follows after this delay.
    pub retry_in: Option<Duration>,
    /// The action is turned off by configuration (`actions.allow_exec:
    /// false`): the job will never run, which is not a failure of it.
    pub disabled: bool,
    /// What the action's `capture` took from a successful response (a
    /// ticket id): stored as the incident's `external_refs.<action>`.
    pub captured: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Success,
    Failure,
    Timeout,
}

impl AttemptOutcome {
    pub const ALL: [AttemptOutcome; 3] = [
        AttemptOutcome::Success,
        AttemptOutcome::Failure,
        AttemptOutcome::Timeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Success => "success",
            AttemptOutcome::Failure => "failure",
            AttemptOutcome::Timeout => "timeout",
        }
    }
}
