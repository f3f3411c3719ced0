//! On-call data: schedule overrides people add, and the pages an incident
//! sent (who was notified, how, when, and whether they acknowledged).
//!
//! Contract: an [`Override`] is a span `[starts_at, ends_at)` during which
//! one person covers a schedule, whatever its layers say; it is stored as
//! JSON (table `overrides`) and survives restarts. A [`Page`] is one
//! notification of one person at one escalation level (and repeat); the
//! incident keeps them in order. Pure data: no I/O, no clock.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Why an override was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid override: {0}")]
pub struct InvalidOverride(pub String);

/// A person covering a schedule for a span of time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Override {
    pub id: String,
    pub schedule: String,
    /// Who is on call instead during the span.
    pub person: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// Set when someone removed it; a removed override covers nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_at: Option<DateTime<Utc>>,
}

impl Override {
    /// Whether it covers instant `t`.
    pub fn covers(&self, t: DateTime<Utc>) -> bool {
        self.removed_at.is_none() && self.starts_at <= t && t < self.ends_at
    }

    /// Checks the span (not the names: those need the rules).
    pub fn validate(&self) -> Result<(), InvalidOverride> {
        if self.ends_at <= self.starts_at {
            return Err(InvalidOverride(format!(
                "ends_at ({}) must be after starts_at ({})",
                self.ends_at.to_rfc3339(),
                self.starts_at.to_rfc3339()
            )));
        }
        if self.ends_at - self.starts_at > chrono::Duration::days(366) {
            return Err(InvalidOverride("an override spans at most 366 days".into()));
        }
        if self.person.trim().is_empty() {
            return Err(InvalidOverride("person must not be empty".into()));
        }
        Ok(())
    }
}

/// One notification of one person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page {
    pub person: String,
    /// The team the page was for (the target's team, else the incident's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// The escalation level that paged.
    pub level: u32,
    /// 0 for the first page of the level, then 1, 2, … (`repeat`).
    #[serde(default)]
    pub repeat: u32,
    /// What the level targeted, as written (`oncall db-primary`,
    /// `person alice`, `team dba`, `next_oncall`, `fallback person bob`).
    pub via: String,
    /// The contact points used (`email`, `chat`, `webhook`, `phone`).
    pub channels: Vec<String>,
    pub at: DateTime<Utc>,
    /// When this person acknowledged the incident (any way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<DateTime<Utc>>,
}

/// How an incident's escalation waits for someone to come on call
/// (fallback `wait`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PageWait {
    pub level: u32,
    /// When the level found nobody.
    pub from: DateTime<Utc>,
    /// Until then the level looks again at every tick; after, the next
    /// level is reached.
    pub until: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_covers_its_half_open_span_until_removed() {
        let t = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).expect("time");
        let mut o = Override {
            id: "o1".into(),
            schedule: "db".into(),
            person: "alice".into(),
            starts_at: t(0),
            ends_at: t(10),
            created_by: "bob".into(),
            created_at: t(0),
            removed_at: None,
        };
        assert!(o.covers(t(0)) && o.covers(t(9)) && !o.covers(t(10)));
        assert!(o.validate().is_ok());
        o.removed_at = Some(t(1));
        assert!(!o.covers(t(5)));
        o.ends_at = t(0);
        assert!(o.validate().is_err());
    }
}
