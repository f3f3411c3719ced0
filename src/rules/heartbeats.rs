//! Compiled heartbeats (the `heartbeats` section): dead man's switches.
//!
//! Contract: a heartbeat names the signal that must keep coming (alerts
//! matching its matchers, or pings by name) and what to open when it stops:
//! after `expect_every + grace` without a signal, an incident of its
//! category and priority. The engine keeps the state; this is the
//! definition.

use std::time::Duration;

use super::error::Pos;
use crate::model::matcher::{self, Matcher};
use crate::model::{Labels, Priority};

/// `alertname` of the alert a missing heartbeat raises (with the label
/// `heartbeat` naming it).
pub const MISSING_ALERTNAME: &str = "HeartbeatMissing";

#[derive(Debug, Clone)]
pub struct HeartbeatDef {
    pub name: String,
    /// Empty: only pings refresh it.
    pub matchers: Vec<Matcher>,
    pub expect_every: Duration,
    pub grace: Duration,
    pub category: String,
    pub priority: Priority,
    /// Where it was written.
    pub at: Option<Pos>,
}

impl HeartbeatDef {
    /// Whether an alert with these labels is this heartbeat's signal.
    pub fn matches(&self, labels: &Labels) -> bool {
        !self.matchers.is_empty()
            && labels.get("alertname") != Some(MISSING_ALERTNAME)
            && matcher::all_match(&self.matchers, labels)
    }

    /// How long without a signal before the heartbeat is missing.
    pub fn deadline(&self) -> Duration {
        self.expect_every.saturating_add(self.grace)
    }
}
