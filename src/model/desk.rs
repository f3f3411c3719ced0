//! Service-desk requests: what a person asks of incidents beyond the
//! lifecycle (see [`super::Op`]): open one by hand, merge two, link two,
//! split alerts off into a new one, override the priority.
//!
//! Contract: these are plain data as the API receives them (serde names
//! are the JSON fields); the engine validates and applies them, and on an
//! error changes nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::incident::{IncidentKey, RelationKind};
use super::labels::Labels;
use super::priority::{Level, Priority};

/// `POST /api/v1/incidents`: an incident reported by a person (a phone
/// call, an email, a user request).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ManualIncident {
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    /// One of the categories (default `other`).
    #[serde(default)]
    pub category: Option<String>,
    /// high, medium or low (default: the rules' `default_impact`).
    #[serde(default)]
    pub impact: Option<Level>,
    /// high, medium or low (default: the rules' `default_urgency`).
    #[serde(default)]
    pub urgency: Option<Level>,
    /// Who reported it (default: the caller).
    #[serde(default)]
    pub reporter: Option<String>,
    /// How to reach the reporter.
    #[serde(default)]
    pub contact: Option<String>,
    /// The affected service.
    #[serde(default)]
    pub service: Option<String>,
    /// When the problem began (default: now).
    #[serde(default)]
    pub occurred_at: Option<DateTime<Utc>>,
    /// Labels for actions, escalation policies and filters.
    #[serde(default)]
    pub labels: Labels,
    /// Who opened it (default: the caller's token name).
    #[serde(default)]
    pub by: Option<String>,
}

/// `POST …/merge`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// The incident that takes this one's alerts and timeline.
    pub into: IncidentKey,
    #[serde(default)]
    pub by: Option<String>,
}

/// `POST …/link`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    pub to: IncidentKey,
    /// `caused_by`, `causes` or `related`, seen from this incident.
    pub relation: RelationKind,
    #[serde(default)]
    pub by: Option<String>,
}

/// `POST …/split`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitRequest {
    /// Fingerprints (16 hex digits) of the alerts that leave.
    pub alerts: Vec<String>,
    /// Title of the new incident (default: the old title with "(split)").
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub by: Option<String>,
}

/// `POST …/priority`: a person's priority, winning over the rules until
/// cleared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriorityRequest {
    #[serde(default)]
    pub impact: Option<Level>,
    #[serde(default)]
    pub urgency: Option<Level>,
    /// P1..P5; with impact/urgency omitted they keep their values.
    #[serde(default)]
    pub priority: Option<Priority>,
    /// Why (required to set, recorded on the timeline).
    #[serde(default)]
    pub reason: Option<String>,
    /// Remove the override: the rules decide again.
    #[serde(default)]
    pub clear: bool,
    #[serde(default)]
    pub by: Option<String>,
}

/// A service-desk request on an incident (or, for `Open`, a new one).
#[derive(Debug, Clone, PartialEq)]
pub enum DeskOp {
    Open(ManualIncident),
    Merge(MergeRequest),
    Link(LinkRequest),
    Split(SplitRequest),
    Priority(PriorityRequest),
}

impl DeskOp {
    /// The actor named in the body, if any.
    pub fn by(&self) -> Option<&str> {
        match self {
            DeskOp::Open(r) => r.by.as_deref(),
            DeskOp::Merge(r) => r.by.as_deref(),
            DeskOp::Link(r) => r.by.as_deref(),
            DeskOp::Split(r) => r.by.as_deref(),
            DeskOp::Priority(r) => r.by.as_deref(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            DeskOp::Open(_) => "open",
            DeskOp::Merge(_) => "merge",
            DeskOp::Link(_) => "link",
            DeskOp::Split(_) => "split",
            DeskOp::Priority(_) => "priority",
        }
    }
}
