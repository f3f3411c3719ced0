//! Suppression data: why an alert was kept out of incidents, the alerts
//! kept out, and the silences people create.
//!
//! Contract: a suppressed alert is stored, visible and counted, but opens
//! no incident; [`Suppression`] says why and what caused it. A [`Silence`]
//! is matcher text (Alertmanager syntax) plus a time span; it mutes only
//! while active, and one whose every matcher also matches an empty label is
//! refused (it would mute everything). Stored as JSON: the serialized names
//! are part of that format.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::alert::TrackedAlert;
use super::labels::Labels;
use super::matcher::{self, Matcher};

/// Why an alert was suppressed; also the `reason` label of
/// `incidentd_alerts_suppressed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    Silence,
    Inhibit,
    Maintenance,
    /// A flapping alert's state change that neither resolved nor reopened
    /// its incident. Counted, never stored as a suppression.
    Flapping,
}

impl Reason {
    pub const ALL: [Reason; 4] = [
        Reason::Silence,
        Reason::Inhibit,
        Reason::Maintenance,
        Reason::Flapping,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Silence => "silence",
            Reason::Inhibit => "inhibit",
            Reason::Maintenance => "maintenance",
            Reason::Flapping => "flapping",
        }
    }

    /// How a timeline says it: "no longer silenced".
    pub fn past_tense(self) -> &'static str {
        match self {
            Reason::Silence => "silenced",
            Reason::Inhibit => "inhibited",
            Reason::Maintenance => "in maintenance",
            Reason::Flapping => "flapping",
        }
    }

    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What suppressed an alert: the reason and its cause (a silence id, a
/// maintenance window name, or the inhibit rule and inhibiting alert).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Suppression {
    pub reason: Reason,
    /// Silence id, maintenance window name, or inhibit rule name.
    pub by: String,
    /// For inhibition: the fingerprint of the inhibiting alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inhibited_by: Option<String>,
}

/// A firing alert kept out of incidents, with its latest state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SuppressedAlert {
    #[serde(flatten)]
    pub alert: TrackedAlert,
    pub suppression: Suppression,
}

/// A silence created over the API.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Silence {
    pub id: String,
    /// Matcher text, Alertmanager syntax (`name="value"`, `=~`, ...).
    pub matchers: Vec<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub comment: String,
    pub created_by: String,
    /// Who `created_by` acted for, when an authenticated caller named
    /// someone else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(skip)]
    pub compiled: Vec<Matcher>,
}

impl Silence {
    /// Compiles the matcher text (after loading from the store or the API).
    pub fn compile(&mut self) -> Result<(), InvalidSilence> {
        let mut out = Vec::new();
        for (i, m) in self.matchers.iter().enumerate() {
            let parsed = matcher::parse(m)
                .map_err(|e| InvalidSilence(format!("matchers[{i}]: {}", e.message)))?;
            out.extend(parsed);
        }
        if out.is_empty() {
            return Err(InvalidSilence(
                "matchers: a silence needs at least one matcher".into(),
            ));
        }
        if out.iter().all(|m| m.matches_value("")) {
            return Err(InvalidSilence("matchers: every matcher also matches an empty label, so the silence would mute every alert; add one that needs a value".into()));
        }
        self.compiled = out;
        Ok(())
    }

    pub fn state(&self, now: DateTime<Utc>) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now < self.ends_at {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }

    pub fn mutes(&self, labels: &Labels, now: DateTime<Utc>) -> bool {
        self.state(now) == SilenceState::Active && matcher::all_match(&self.compiled, labels)
    }
}

/// Where a silence stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    Pending,
    Active,
    Expired,
}

impl SilenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

/// Why a silence cannot be used: what is wrong, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSilence(pub String);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::labels::labels;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("valid time")
    }

    #[test]
    fn silences_have_states_and_refuse_to_match_everything() {
        let mut s = Silence {
            id: "s1".into(),
            matchers: vec![r#"service="db""#.into()],
            starts_at: at("2026-11-23T10:00:00Z"),
            ends_at: at("2026-11-23T11:00:00Z"),
            comment: "upgrade".into(),
            created_by: "alice".into(),
            on_behalf_of: None,
            created_at: at("2026-11-23T09:00:00Z"),
            compiled: vec![],
        };
        s.compile().expect("valid");
        let db = labels(&[("service", "db")]);
        assert_eq!(s.state(at("2026-11-23T09:59:00Z")), SilenceState::Pending);
        assert!(!s.mutes(&db, at("2026-11-23T09:59:00Z")));
        assert!(s.mutes(&db, at("2026-11-23T10:30:00Z")));
        assert!(!s.mutes(&db, at("2026-11-23T11:00:00Z")));
        s.matchers = vec![r#"service=~".*""#.into()];
        assert!(s
            .compile()
            .unwrap_err()
            .0
            .contains("would mute every alert"));
    }
}
