//! Prioritisation and lifecycle policy compiled from the rules: urgency
//! and impact rules, blast radius, the impact × urgency matrix, SLA targets,
//! flap detection and problem candidates, each with its documented default.

use std::time::Duration;

use crate::model::matcher::Matcher;
use crate::model::{Labels, Level, Priority};

use super::first_match::FirstMatch;
use super::origin::Origin;

/// An incident-level impact rule: impact rises with the number of distinct
/// values of a label among the incident's alerts ("blast radius").
#[derive(Debug, Clone)]
pub struct BlastRadius {
    pub matchers: Vec<Matcher>,
    pub label: String,
    pub at_least: usize,
    pub impact: Level,
    /// Correlate rules whose incidents it applies to; empty: every incident.
    pub rules: Vec<String>,
    pub origin: Origin,
}

impl BlastRadius {
    /// True if the rule counts in incidents of the correlate rule `rule`.
    pub fn applies_to(&self, rule: &str) -> bool {
        self.rules.is_empty() || self.rules.iter().any(|r| r == rule)
    }
}

/// The compiled `prioritize` section.
#[derive(Debug, Clone)]
pub struct Prioritize {
    pub urgency: FirstMatch<Level>,
    pub impact: FirstMatch<Level>,
    pub blast_radius: Vec<BlastRadius>,
    pub default_impact: Level,
    pub default_urgency: Level,
    /// `matrix[impact][urgency]`.
    pub matrix: [[Priority; 3]; 3],
}

/// Seed 003's matrix.
pub const SEED_MATRIX: [[Priority; 3]; 3] = [
    [Priority::P1, Priority::P2, Priority::P3],
    [Priority::P2, Priority::P3, Priority::P4],
    [Priority::P3, Priority::P4, Priority::P5],
];

impl Default for Prioritize {
    fn default() -> Self {
        Prioritize {
            urgency: FirstMatch::default(),
            impact: FirstMatch::default(),
            blast_radius: Vec::new(),
            default_impact: Level::Medium,
            default_urgency: Level::Medium,
            matrix: SEED_MATRIX,
        }
    }
}

impl Prioritize {
    pub fn priority(&self, impact: Level, urgency: Level) -> Priority {
        self.matrix[impact.idx()][urgency.idx()]
    }

    /// Impact and urgency of a single alert.
    pub fn assess(&self, labels: &Labels) -> (Level, Level) {
        let impact = self
            .impact
            .first(labels)
            .copied()
            .unwrap_or(self.default_impact);
        let urgency = self
            .urgency
            .first(labels)
            .copied()
            .unwrap_or(self.default_urgency);
        (impact, urgency)
    }
}

/// Response and recovery targets for one priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaTarget {
    pub acknowledge: Duration,
    pub resolve: Duration,
}

/// Built-in targets, used for priorities the rules leave out.
pub const DEFAULT_SLA: [SlaTarget; 5] = [
    SlaTarget {
        acknowledge: Duration::from_secs(15 * 60),
        resolve: Duration::from_secs(4 * 3600),
    },
    SlaTarget {
        acknowledge: Duration::from_secs(30 * 60),
        resolve: Duration::from_secs(8 * 3600),
    },
    SlaTarget {
        acknowledge: Duration::from_secs(2 * 3600),
        resolve: Duration::from_secs(24 * 3600),
    },
    SlaTarget {
        acknowledge: Duration::from_secs(8 * 3600),
        resolve: Duration::from_secs(3 * 24 * 3600),
    },
    SlaTarget {
        acknowledge: Duration::from_secs(24 * 3600),
        resolve: Duration::from_secs(7 * 24 * 3600),
    },
];

/// Flap detection: an alert that changes state more than `max_changes`
/// times within `window` is flapping; with `keep_open` its incident stays
/// open instead of resolving and reopening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flapping {
    pub max_changes: usize,
    pub window: Duration,
    pub keep_open: bool,
}

impl Default for Flapping {
    fn default() -> Self {
        Flapping {
            max_changes: 4,
            window: Duration::from_secs(3600),
            keep_open: true,
        }
    }
}

/// Problem candidates: a group key with `recurrence` incidents within
/// `within` is flagged for problem management.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Problems {
    pub recurrence: usize,
    pub within: Duration,
}

impl Default for Problems {
    fn default() -> Self {
        Problems {
            recurrence: 3,
            within: Duration::from_secs(7 * 24 * 3600),
        }
    }
}
