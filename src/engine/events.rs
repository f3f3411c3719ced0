//! What metrics count: the engine says what happened, and the pipeline
//! counts it once the change that holds it is durable.

use crate::model::{Priority, Reason, SlaKind};

/// Something metrics count; produced by the engine, consumed after commit.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Deduplicated,
    Created {
        priority: Priority,
        category: String,
    },
    Acknowledged {
        priority: Priority,
        seconds: f64,
    },
    Resolved {
        priority: Priority,
        category: String,
        seconds: f64,
    },
    SlaBreached {
        priority: Priority,
        kind: SlaKind,
    },
    PriorityChanged {
        from: Priority,
        to: Priority,
    },
    Reopened,
    Closed,
    /// An alert kept out of incidents (silence, inhibit, maintenance), or a
    /// state change of a flapping alert that did not resolve or reopen.
    Suppressed {
        reason: Reason,
    },
    ProblemCandidate,
    Escalated {
        policy: String,
        level: u32,
    },
    /// A level paged someone (`paged`), or found nobody (`waiting`,
    /// `next_level`, `nobody`); `team` empty when none is known.
    Paged {
        team: String,
        outcome: &'static str,
    },
    /// An incident with a team was acknowledged this long after it opened.
    TeamAcknowledged {
        team: String,
        seconds: f64,
    },
    /// An action run held back (a storm's child, a relation's symptom), and
    /// what became of it: `held`, then `released` or `dropped`.
    ActionHeld {
        action: String,
        outcome: &'static str,
    },
}
