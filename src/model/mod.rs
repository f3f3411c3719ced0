//! Plain domain types: what an alert, an incident, a silence and an action
//! job are, with no I/O and no dependency on any other incidentd module.
//!
//! Everything above the model (rules, engine, store, pipeline, adapters)
//! speaks in these types. Their serialized forms are the API's and the
//! store's: field names, enum names and (for postcard rows) variant order
//! are part of those formats and change only by appending. The types the
//! API answers with derive `utoipa::ToSchema`: the OpenAPI description
//! (`docs/openapi.json`) takes their schemas from them.

pub mod ack_link;
pub mod alert;
pub mod desk;
pub mod fingerprint;
pub mod incident;
pub mod intern;
pub mod job;
pub mod json;
pub mod labels;
pub mod matcher;
pub mod oncall;
pub mod ownership;
pub mod priority;
pub mod suppression;
pub mod timeline;

pub use alert::{Alert, AlertStatus, Source, TrackedAlert};
pub use desk::{DeskOp, LinkRequest, ManualIncident, MergeRequest, PriorityRequest, SplitRequest};
pub use incident::{
    AlertRecord, AlertSeen, Incident, IncidentKey, IncidentSource, Op, OpRequest, PriorityOverride,
    Relation, RelationKind, Sla, Status, TransitionError, ID_SLOTS, SYSTEM,
};
pub use job::{AttemptOutcome, AttemptResult, Job, JobState, Trigger};
pub use labels::Labels;
pub use oncall::{InvalidOverride, Override, Page, PageWait};
pub use ownership::{Direction, Home, KafkaPosition};
pub use priority::{Level, Priority, CATEGORIES};
pub use suppression::{Reason, Silence, SilenceState, SuppressedAlert, Suppression};
pub use timeline::{SlaKind, TimelineEntry, TimelineKind};

/// Longest span a configured duration counts for on the wall clock.
const MAX_WALL_SPAN: std::time::Duration = std::time::Duration::from_secs(1000 * 366 * 86400);

/// A configured duration on the wall clock, capped at 1,000 years, so
/// that adding it to or subtracting it from a time of this era never
/// overflows (chrono panics on overflow).
pub fn wall(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d.min(MAX_WALL_SPAN)).unwrap_or(chrono::Duration::zero())
}
