//! The raw, position-carrying form of each rule file section, deserialized
//! item by item so one bad item does not hide the errors in the next.

use std::collections::BTreeMap;

use marked_yaml::Spanned;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCorrelate {
    pub(super) name: Spanned<String>,
    #[serde(default, rename = "match")]
    pub(super) matchers: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) group_by: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) window: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) title: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClassify {
    /// Free text for the reader; not used by the engine.
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) name: Option<Spanned<String>>,
    #[serde(rename = "match")]
    pub(super) matchers: Vec<Spanned<String>>,
    pub(super) category: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLevelRule {
    /// Free text for the reader; not used by the engine.
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) name: Option<Spanned<String>>,
    #[serde(default, rename = "match")]
    pub(super) matchers: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) urgency: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) impact: Option<Spanned<String>>,
    /// Blast radius: count distinct values of this label in the incident.
    #[serde(default)]
    pub(super) distinct: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) at_least: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSla {
    pub(super) acknowledge: Spanned<String>,
    pub(super) resolve: Spanned<String>,
}

#[derive(Clone, Copy)]
pub(super) enum Section {
    Inhibit,
    Maintenance,
    Action,
    Escalation,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAction {
    pub(super) name: Spanned<String>,
    #[serde(default)]
    pub(super) on: Vec<Spanned<String>>,
    #[serde(default, rename = "match")]
    pub(super) matchers: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) priority: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) category: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) webhook: Option<RawWebhook>,
    #[serde(default)]
    pub(super) exec: Option<RawExec>,
    #[serde(default)]
    pub(super) kafka: Option<RawKafkaAction>,
    #[serde(default)]
    pub(super) retries: Option<u32>,
    #[serde(default)]
    pub(super) backoff: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) rate_limit: Option<RawRateLimit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    #[serde(default)]
    pub(super) url: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) url_env: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) method: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) preset: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) body: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) headers: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) secret_headers: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExec {
    pub(super) command: Spanned<String>,
    #[serde(default)]
    pub(super) args: Vec<String>,
    #[serde(default)]
    pub(super) timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) max_output: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKafkaAction {
    pub(super) topic: Spanned<String>,
    #[serde(default)]
    pub(super) brokers: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) key: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) body: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRateLimit {
    pub(super) max: u32,
    pub(super) per: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEscalation {
    pub(super) name: Spanned<String>,
    #[serde(default, rename = "match")]
    pub(super) matchers: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) priority: Vec<Spanned<String>>,
    pub(super) levels: Vec<RawLevel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLevel {
    /// Since creation, while unacknowledged.
    #[serde(default)]
    pub(super) after: Option<Spanned<String>>,
    /// Share of the resolve target that has passed, e.g. "80%".
    #[serde(default)]
    pub(super) resolve_progress: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) actions: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) assignee: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInhibit {
    #[serde(default)]
    pub(super) name: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) source: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) target: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) equal: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMaintenance {
    pub(super) name: Spanned<String>,
    #[serde(default, rename = "match")]
    pub(super) matchers: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) start: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) end: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) weekly: Vec<RawSlot>,
    #[serde(default)]
    pub(super) time_zone: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSlot {
    #[serde(default)]
    pub(super) days: Vec<Spanned<String>>,
    pub(super) start: Spanned<String>,
    pub(super) end: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFlapping {
    #[serde(default)]
    pub(super) max_changes: Option<Spanned<usize>>,
    #[serde(default)]
    pub(super) window: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) keep_open: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProblems {
    #[serde(default)]
    pub(super) recurrence: Option<Spanned<usize>>,
    #[serde(default)]
    pub(super) within: Option<Spanned<String>>,
}

pub(super) fn parse_days(s: &str) -> Option<Vec<chrono::Weekday>> {
    use chrono::Weekday::*;
    let one = |d: &str| -> Option<chrono::Weekday> {
        Some(match d {
            "mon" | "monday" => Mon,
            "tue" | "tuesday" => Tue,
            "wed" | "wednesday" => Wed,
            "thu" | "thursday" => Thu,
            "fri" | "friday" => Fri,
            "sat" | "saturday" => Sat,
            "sun" | "sunday" => Sun,
            _ => return None,
        })
    };
    let s = s.trim().to_ascii_lowercase();
    match s.as_str() {
        "daily" | "everyday" => Some(vec![Mon, Tue, Wed, Thu, Fri, Sat, Sun]),
        "weekdays" => Some(vec![Mon, Tue, Wed, Thu, Fri]),
        "weekend" | "weekends" => Some(vec![Sat, Sun]),
        _ => one(&s).map(|d| vec![d]),
    }
}
