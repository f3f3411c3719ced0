//! Why an alert lands where it lands: the whole decision path of one alert
//! through the rules, as data (`incidentd rules explain`,
//! `POST /api/v1/rules/explain`, the board's "why P2?").
//!
//! Input: alerts (one ingest payload), the compiled [`RuleSet`], a time,
//! and optionally the live state of an [`Engine`] (silences, firing alerts
//! that can inhibit, open incidents to join). Output: a serializable
//! [`Report`] with one [`Explanation`] per alert, in the engine's order:
//! fingerprint and dedup; each maintenance window, silence and inhibit rule
//! checked and why it did or did not apply (the first matcher that failed);
//! the correlate rule (and the rules before it, with the matcher each
//! failed on), the group key and title; the classify rule; the urgency and
//! impact rules, the blast-radius rules and the matrix cell; the SLA
//! deadlines; the actions and escalation levels that would run on
//! `opened`.
//!
//! Contract: pure. Nothing here changes the engine, does I/O or reads the
//! clock. Each alert is explained as if it arrived alone, except that the
//! payload's firing alerts can inhibit one another (as in one ingest
//! batch). Every step is computed even when an earlier one stops the alert
//! (a suppressed alert still shows the incident it would have opened);
//! [`Explanation::result`] says what actually happens. The JSON field names
//! are a stable format: fields may be added, never renamed.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{chrono_dur, Engine};
use crate::model::matcher::{self, Matcher};
use crate::model::{
    fingerprint, Alert, AlertStatus, IncidentKey, Labels, Level, Priority, Silence, SilenceState,
    Trigger,
};
use crate::rules::actions::LevelWhen;
use crate::rules::correlate::{CorrelateRule, GroupBy, TitleContext};
use crate::rules::suppress::InhibitIndex;
use crate::rules::{Origin, Pos, RuleSet};

/// Explanations of every alert of a payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Where the rules came from (a directory, files, or `built-in`).
    pub rules: String,
    /// The time the rules were evaluated at.
    pub at: DateTime<Utc>,
    /// True when a running daemon explained it against its live state
    /// (silences, firing alerts, open incidents); false for rule files alone.
    pub live_state: bool,
    pub alerts: Vec<Explanation>,
}

/// One alert's path through the rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub alertname: String,
    pub labels: Labels,
    pub status: AlertStatus,
    pub fingerprint: String,
    /// What happens to the alert.
    pub result: Outcome,
    pub suppression: SuppressionStep,
    pub correlate: CorrelateStep,
    pub classify: Decision,
    pub urgency: Decision,
    pub impact: Decision,
    pub blast_radius: Vec<BlastCheck>,
    pub priority: PriorityStep,
    pub sla: SlaStep,
    pub on_opened: OnOpened,
}

/// What happens to the alert, in one word and one sentence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// `opens`, `joins`, `suppressed`, `deduplicated`, `resolves` or `ignored`.
    pub kind: String,
    /// The incident it joins, repeats into or resolves.
    pub incident: Option<String>,
    pub message: String,
}

/// A rule, as the explanation names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleRef {
    /// Its name, or `#N` (1-based) in its list; `default` for the implicit
    /// correlate rule.
    pub name: String,
    /// 1-based position in its list (0 for the implicit rule).
    pub index: usize,
    /// `file:line:column`, when written in a file.
    pub at: Option<String>,
}

/// The first matcher of a rule that an alert failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Miss {
    /// The matcher as written (`severity=~"critical|page"`).
    pub matcher: String,
    pub label: String,
    /// The alert's value; `None`: the alert has no such label.
    pub value: Option<String>,
}

/// A rule passed over because of a matcher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub rule: RuleRef,
    pub failed: Miss,
}

/// One maintenance window, silence or inhibit rule, checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub rule: RuleRef,
    pub applies: bool,
    pub why: String,
    /// The first matcher that failed, when that is why it did not apply.
    pub failed: Option<Miss>,
}

/// Maintenance windows, then silences, then inhibit rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuppressionStep {
    pub maintenance: Vec<Check>,
    pub silences: Vec<Check>,
    pub inhibit: Vec<Check>,
    /// The first check that applies: `maintenance`, `silence` or `inhibit`.
    pub suppressed_by: Option<String>,
}

/// The correlate rule and what it makes of the alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorrelateStep {
    pub rule: RuleRef,
    /// The rules before it, each with the matcher the alert failed.
    pub skipped: Vec<Skipped>,
    pub group_by: Vec<String>,
    pub group_key: String,
    pub window: String,
    /// The title an incident opened by this alert gets.
    pub title: String,
    /// The live incident of the group it would join, if any.
    pub joins: Option<String>,
}

/// A first-match decision: the rule that decided (none: the fallback).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub value: String,
    pub rule: Option<RuleRef>,
    pub skipped: Vec<Skipped>,
    /// Set when no rule matched: where the value came from.
    pub fallback: Option<String>,
}

/// One blast-radius rule, checked for the incident the alert would be in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlastCheck {
    pub rule: RuleRef,
    pub label: String,
    pub at_least: usize,
    pub impact: Level,
    /// Distinct values counted (the incident's alerts and this one).
    pub distinct: usize,
    pub reached: bool,
    pub why: String,
}

/// The matrix cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriorityStep {
    /// The alert's own impact, raised by a blast-radius rule if one reached.
    pub impact: Level,
    pub urgency: Level,
    pub priority: Priority,
    /// The blast-radius rule that raised the impact.
    pub raised_by: Option<RuleRef>,
    /// The incident it joins, and that incident's priority afterwards
    /// (an incident takes the highest priority of its alerts).
    pub incident_priority: Option<Priority>,
}

/// The SLA targets of the priority and the deadlines they give.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaStep {
    pub priority: Priority,
    pub acknowledge: String,
    pub resolve: String,
    pub acknowledge_by: DateTime<Utc>,
    pub resolve_by: DateTime<Utc>,
    /// Where the targets were written; `None`: built-in.
    pub at: Option<String>,
}

/// What an incident opened by this alert would start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnOpened {
    pub actions: Vec<ActionCheck>,
    pub escalation: EscalationStep,
}

/// An action: whether it runs on `opened`, and why (not).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionCheck {
    pub rule: RuleRef,
    pub runs: bool,
    pub why: String,
}

/// The escalation policy that would apply, and its levels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscalationStep {
    pub policy: Option<RuleRef>,
    /// Policies before it, and why they do not apply.
    pub skipped: Vec<ActionCheck>,
    pub levels: Vec<LevelStep>,
}

/// One escalation level: when it comes due, and what it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelStep {
    pub level: u32,
    pub when: String,
    /// When it is due if nobody acknowledges (or resolves) the incident.
    pub due_at: DateTime<Utc>,
    pub assignee: Option<String>,
    /// The level's own actions, then the actions on `escalated` that apply.
    pub actions: Vec<String>,
}

/// What of the engine's live state an explanation sees.
#[derive(Default, Clone, Copy)]
struct Live<'a> {
    engine: Option<&'a Engine>,
}

impl Engine {
    /// Explains a payload against the live state: silences, firing alerts
    /// that can inhibit, and open incidents. Changes nothing.
    pub fn explain(&self, alerts: &[Alert], now: DateTime<Utc>) -> Report {
        report(&self.rules, alerts, now, Live { engine: Some(self) })
    }
}

/// Explains a payload against the rules alone: no silences, no incidents;
/// only the payload's own firing alerts can inhibit.
pub fn explain(rules: &RuleSet, alerts: &[Alert], now: DateTime<Utc>) -> Report {
    report(rules, alerts, now, Live::default())
}

fn report(rules: &RuleSet, alerts: &[Alert], now: DateTime<Utc>, live: Live<'_>) -> Report {
    let mut batch = InhibitIndex::default();
    for a in alerts.iter().filter(|a| a.status == AlertStatus::Firing) {
        batch.add(&rules.inhibit, a.fingerprint, &a.labels);
    }
    Report {
        rules: rules.origin.clone(),
        at: now,
        live_state: live.engine.is_some(),
        alerts: alerts
            .iter()
            .map(|a| explain_one(rules, a, now, live, &batch))
            .collect(),
    }
}

fn pos_text(p: Option<&Pos>) -> Option<String> {
    p.map(ToString::to_string)
}

fn rule_ref(origin: &Origin, index: usize) -> RuleRef {
    RuleRef {
        name: origin.label(index),
        index: index + 1,
        at: pos_text(origin.at.as_ref()),
    }
}

fn named(name: &str, index: usize, at: Option<&Pos>) -> RuleRef {
    RuleRef {
        name: name.to_string(),
        index: index + 1,
        at: pos_text(at),
    }
}

/// The first matcher that fails on `labels`.
fn first_miss(matchers: &[Matcher], labels: &Labels) -> Option<Miss> {
    matchers.iter().find(|m| !m.matches(labels)).map(|m| Miss {
        matcher: m.to_string(),
        label: m.name.clone(),
        value: labels.get(&m.name).map(str::to_string),
    })
}

/// `severity="critical" fails: severity is "info"`.
pub fn miss_text(m: &Miss) -> String {
    match &m.value {
        Some(v) => format!("{} fails: {} is {v:?}", m.matcher, m.label),
        None => format!("{} fails: no {} label", m.matcher, m.label),
    }
}

fn human(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn explain_one(
    rules: &RuleSet,
    a: &Alert,
    now: DateTime<Utc>,
    live: Live<'_>,
    batch: &InhibitIndex,
) -> Explanation {
    let labels = &a.labels;
    let fp = a.fingerprint;
    let suppression = suppression(rules, a, now, live, batch);
    let (correlate, joins) = correlate(rules, a, now, live);
    let classify = first_match_decision(
        rules.classify.entries(),
        labels,
        |c| c.clone(),
        || ("other".into(), "no classify rule matched".into()),
    );
    let urgency = first_match_decision(
        rules.prioritize.urgency.entries(),
        labels,
        |l| l.as_str().to_string(),
        || {
            (
                rules.prioritize.default_urgency.as_str().to_string(),
                "no urgency rule matched: prioritize.default_urgency".into(),
            )
        },
    );
    let impact = first_match_decision(
        rules.prioritize.impact.entries(),
        labels,
        |l| l.as_str().to_string(),
        || {
            (
                rules.prioritize.default_impact.as_str().to_string(),
                "no impact rule matched: prioritize.default_impact".into(),
            )
        },
    );
    let (alert_impact, alert_urgency) = rules.prioritize.assess(labels);
    let joined = live.engine.zip(joins).and_then(|(e, k)| e.live(k));
    let rule_name = correlate.rule.name.clone();
    let blast_radius: Vec<BlastCheck> = rules
        .prioritize
        .blast_radius
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let mut values: HashSet<&str> = HashSet::new();
            if let Some(l) = joined {
                for r in l.alerts.values() {
                    if values.len() >= b.at_least {
                        break;
                    }
                    if matcher::all_match(&b.matchers, &r.alert.labels) {
                        if let Some(v) = r.alert.labels.get(&b.label) {
                            values.insert(v);
                        }
                    }
                }
            }
            let counted = matcher::all_match(&b.matchers, labels);
            if counted {
                if let Some(v) = labels.get(&b.label) {
                    values.insert(v);
                }
            }
            let applies = b.applies_to(&rule_name);
            let distinct = if applies { values.len() } else { 0 };
            let reached = applies && distinct >= b.at_least;
            let why = if !applies {
                format!(
                    "applies only to incidents of {} (this one: {rule_name})",
                    b.rules.join(", ")
                )
            } else if !counted {
                match first_miss(&b.matchers, labels) {
                    Some(m) => format!("this alert does not count: {}", miss_text(&m)),
                    None => "this alert does not count".into(),
                }
            } else {
                let of = if joined.is_some() {
                    "in the incident with this alert"
                } else {
                    "with this alert alone"
                };
                format!(
                    "{distinct} distinct {} value(s) {of}; {} at {}",
                    b.label,
                    if reached { "reached" } else { "not reached" },
                    b.at_least
                )
            };
            BlastCheck {
                rule: rule_ref(&b.origin, i),
                label: b.label.clone(),
                at_least: b.at_least,
                impact: b.impact,
                distinct,
                reached,
                why,
            }
        })
        .collect();
    // The highest impact among the blast-radius rules reached, if higher.
    let raised = blast_radius
        .iter()
        .filter(|b| b.reached && b.impact < alert_impact)
        .min_by_key(|b| b.impact)
        .map(|b| (b.impact, b.rule.clone()));
    let impact_level = raised.as_ref().map(|(l, _)| *l).unwrap_or(alert_impact);
    let p = rules.prioritize.priority(impact_level, alert_urgency);
    let incident_priority = joined.map(|l| l.incident.priority.min(p));
    let sla_priority = incident_priority.unwrap_or(p);
    let created = joined.map(|l| l.incident.created_at).unwrap_or(now);
    let target = rules.sla[sla_priority.idx()];
    let sla = SlaStep {
        priority: sla_priority,
        acknowledge: human(target.acknowledge),
        resolve: human(target.resolve),
        acknowledge_by: created + chrono_dur(target.acknowledge),
        resolve_by: created + chrono_dur(target.resolve),
        at: rules
            .settings_at
            .sla
            .get(sla_priority.idx())
            .and_then(|p| pos_text(p.as_ref())),
    };
    let on_opened = on_opened(rules, labels, p, &classify.value, now);
    let result = outcome(a, &suppression, &correlate, live);
    Explanation {
        alertname: labels.get("alertname").unwrap_or("").to_string(),
        labels: labels.clone(),
        status: a.status,
        fingerprint: fingerprint::to_hex(fp),
        result,
        suppression,
        correlate,
        classify,
        urgency,
        impact,
        blast_radius,
        priority: PriorityStep {
            impact: impact_level,
            urgency: alert_urgency,
            priority: p,
            raised_by: raised.map(|(_, r)| r),
            incident_priority,
        },
        sla,
        on_opened,
    }
}

fn outcome(
    a: &Alert,
    suppression: &SuppressionStep,
    correlate: &CorrelateStep,
    live: Live<'_>,
) -> Outcome {
    let mk = |kind: &str, incident: Option<String>, message: String| Outcome {
        kind: kind.into(),
        incident,
        message,
    };
    if let Some(e) = live.engine {
        if let Some(key) = e.live.active.get(&a.fingerprint) {
            let firing = e
                .live
                .incidents
                .get(key)
                .and_then(|l| l.alerts.get(&a.fingerprint))
                .is_some_and(|r| r.alert.status == AlertStatus::Firing);
            match (firing, a.status) {
                (true, AlertStatus::Firing) => {
                    return mk(
                        "deduplicated",
                        Some(key.to_string()),
                        format!("the alert already fires in {key}: this notification is a repeat and changes nothing but counters; the steps below are how it got there"),
                    )
                }
                (true, AlertStatus::Resolved) => {
                    return mk(
                        "resolves",
                        Some(key.to_string()),
                        format!("the alert fires in {key} and this notification resolves it"),
                    )
                }
                _ => {}
            }
        }
        if let Some(s) = e.suppress.alerts.get(&a.fingerprint) {
            return mk(
                "suppressed",
                None,
                format!(
                    "the alert is already kept out of incidents ({} by {}); it stays out while that lasts",
                    s.suppression.reason, s.suppression.by
                ),
            );
        }
    }
    if a.status == AlertStatus::Resolved {
        return mk(
            "ignored",
            None,
            "a resolved alert that no incident holds opens nothing; the steps below are what it would do while firing".into(),
        );
    }
    if let Some(by) = &suppression.suppressed_by {
        let c = suppression
            .maintenance
            .iter()
            .chain(&suppression.silences)
            .chain(&suppression.inhibit)
            .find(|c| c.applies);
        let name = c.map(|c| c.rule.name.clone()).unwrap_or_default();
        return mk(
            "suppressed",
            None,
            format!("kept out of incidents by {by} {name}; stored and listed at /api/v1/alerts/suppressed, it opens no incident (the steps below are what it would do otherwise)"),
        );
    }
    match &correlate.joins {
        Some(k) => mk(
            "joins",
            Some(k.clone()),
            format!(
                "joins {k}, the live incident of group {}",
                correlate.group_key
            ),
        ),
        None => mk(
            "opens",
            None,
            format!("opens a new incident of group {}", correlate.group_key),
        ),
    }
}

fn suppression(
    rules: &RuleSet,
    a: &Alert,
    now: DateTime<Utc>,
    live: Live<'_>,
    batch: &InhibitIndex,
) -> SuppressionStep {
    let labels = &a.labels;
    let maintenance: Vec<Check> = rules
        .maintenance
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let rule = named(&w.name, i, w.at.as_ref());
            let schedule = w.schedule.describe();
            match first_miss(&w.matchers, labels) {
                Some(m) => Check {
                    rule,
                    applies: false,
                    why: format!("does not match: {}", miss_text(&m)),
                    failed: Some(m),
                },
                None if w.active(now) => Check {
                    rule,
                    applies: true,
                    why: format!("matches and is open now ({schedule})"),
                    failed: None,
                },
                None => Check {
                    rule,
                    applies: false,
                    why: format!(
                        "matches, but is not open at {} ({schedule})",
                        now.to_rfc3339()
                    ),
                    failed: None,
                },
            }
        })
        .collect();
    let empty = BTreeMap::new();
    let silences: &BTreeMap<String, Silence> =
        live.engine.map(|e| &e.suppress.silences).unwrap_or(&empty);
    let silences: Vec<Check> = silences
        .values()
        .filter(|s| s.state(now) != SilenceState::Expired)
        .enumerate()
        .map(|(i, s)| {
            let rule = named(&s.id, i, None);
            let miss = first_miss(&s.compiled, labels);
            match (s.state(now), miss) {
                (_, Some(m)) => Check {
                    rule,
                    applies: false,
                    why: format!("does not match: {}", miss_text(&m)),
                    failed: Some(m),
                },
                (SilenceState::Active, None) => Check {
                    rule,
                    applies: true,
                    why: format!(
                        "matches and is active until {} ({}, by {})",
                        s.ends_at.to_rfc3339(),
                        s.comment,
                        s.created_by
                    ),
                    failed: None,
                },
                (_, None) => Check {
                    rule,
                    applies: false,
                    why: format!("matches, but starts only at {}", s.starts_at.to_rfc3339()),
                    failed: None,
                },
            }
        })
        .collect();
    let inhibit: Vec<Check> = rules
        .inhibit
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let rule = named(&r.name, i, r.at.as_ref());
            if let Some(m) = first_miss(&r.target, labels) {
                return Check {
                    rule,
                    applies: false,
                    why: format!("not a target: {}", miss_text(&m)),
                    failed: Some(m),
                };
            }
            let source = live
                .engine
                .and_then(|e| e.suppress.inhibit.source_for(i, r, a.fingerprint, labels))
                .or_else(|| batch.source_for(i, r, a.fingerprint, labels));
            let equal = if r.equal.is_empty() {
                String::new()
            } else {
                let vals: Vec<String> = r
                    .equal
                    .iter()
                    .map(|l| format!("{l}={:?}", labels.get(l).unwrap_or("")))
                    .collect();
                format!(" with {}", vals.join(", "))
            };
            match source {
                Some(src) => Check {
                    rule,
                    applies: true,
                    why: format!(
                        "a target, inhibited by the firing alert {}{equal}",
                        fingerprint::to_hex(src)
                    ),
                    failed: None,
                },
                None => {
                    let sources: Vec<String> = r.source.iter().map(ToString::to_string).collect();
                    let whose = if live.engine.is_some() {
                        "no firing alert"
                    } else {
                        "no firing alert in this payload (without --url, the daemon's firing alerts are not seen)"
                    };
                    Check {
                        rule,
                        applies: false,
                        why: format!(
                            "a target, but {whose} matches the source {{{}}}{equal}",
                            sources.join(", ")
                        ),
                        failed: None,
                    }
                }
            }
        })
        .collect();
    let suppressed_by = if maintenance.iter().any(|c| c.applies) {
        Some("maintenance")
    } else if silences.iter().any(|c| c.applies) {
        Some("silence")
    } else if inhibit.iter().any(|c| c.applies) {
        Some("inhibit")
    } else {
        None
    };
    SuppressionStep {
        maintenance,
        silences,
        inhibit,
        suppressed_by: suppressed_by.map(str::to_string),
    }
}

fn correlate(
    rules: &RuleSet,
    a: &Alert,
    now: DateTime<Utc>,
    live: Live<'_>,
) -> (CorrelateStep, Option<IncidentKey>) {
    let labels = &a.labels;
    let mut skipped = Vec::new();
    let mut chosen: Option<(RuleRef, &CorrelateRule)> = None;
    for (i, (matchers, r, o)) in rules.correlate.entries().enumerate() {
        match first_miss(matchers, labels) {
            Some(m) => skipped.push(Skipped {
                rule: rule_ref(o, i),
                failed: m,
            }),
            None => {
                chosen = Some((rule_ref(o, i), r));
                break;
            }
        }
    }
    let (rule, r) = chosen.unwrap_or_else(|| {
        (
            RuleRef {
                name: rules.fallback.name.clone(),
                index: 0,
                at: None,
            },
            &rules.fallback,
        )
    });
    let group_key = r.group_key(labels);
    let group_labels = r.group_labels(labels);
    let title = rules.render_title(
        r,
        &TitleContext {
            labels,
            annotations: &a.annotations,
            group_labels: &group_labels,
            rule: &r.name,
        },
    );
    let joins = live.engine.and_then(|e| {
        let key = *e.live.groups.get(&group_key)?;
        e.joinable(key, &group_key, r.window, now).then_some(key)
    });
    let step = CorrelateStep {
        rule,
        skipped,
        group_by: match &r.group_by {
            GroupBy::All => vec!["...".into()],
            GroupBy::Labels(l) => l.clone(),
        },
        group_key,
        window: human(r.window),
        title,
        joins: joins.map(|k| k.to_string()),
    };
    (step, joins)
}

fn first_match_decision<'a, T: 'a>(
    entries: impl Iterator<Item = (&'a [Matcher], &'a T, &'a Origin)>,
    labels: &Labels,
    value: impl Fn(&T) -> String,
    fallback: impl Fn() -> (String, String),
) -> Decision {
    let mut skipped = Vec::new();
    for (i, (matchers, v, o)) in entries.enumerate() {
        match first_miss(matchers, labels) {
            Some(m) => skipped.push(Skipped {
                rule: rule_ref(o, i),
                failed: m,
            }),
            None => {
                return Decision {
                    value: value(v),
                    rule: Some(rule_ref(o, i)),
                    skipped,
                    fallback: None,
                }
            }
        }
    }
    let (value, why) = fallback();
    Decision {
        value,
        rule: None,
        skipped,
        fallback: Some(why),
    }
}

fn on_opened(
    rules: &RuleSet,
    labels: &Labels,
    p: Priority,
    category: &str,
    now: DateTime<Utc>,
) -> OnOpened {
    let filters = |priorities: &[Priority],
                   categories: Option<&[String]>,
                   matchers: &[Matcher]|
     -> Option<String> {
        if !priorities.is_empty() && !priorities.contains(&p) {
            let ps: Vec<String> = priorities.iter().map(ToString::to_string).collect();
            return Some(format!("only for {} (this would be {p})", ps.join(", ")));
        }
        if let Some(cs) = categories {
            if !cs.is_empty() && !cs.iter().any(|c| c == category) {
                return Some(format!(
                    "only for categories {} (this would be {category})",
                    cs.join(", ")
                ));
            }
        }
        first_miss(matchers, labels).map(|m| format!("does not match: {}", miss_text(&m)))
    };
    let actions = rules
        .actions
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let rule = named(&a.name, i, a.at.as_ref());
            let why = if !a.on.contains(&Trigger::Opened) {
                Some(if a.on.is_empty() {
                    "no `on` triggers: only escalation levels that name it run it".to_string()
                } else {
                    let on: Vec<&str> = a.on.iter().map(|t| t.as_str()).collect();
                    format!("not on opened (on: {})", on.join(", "))
                })
            } else {
                filters(&a.priorities, Some(&a.categories), &a.matchers)
            };
            ActionCheck {
                rule,
                runs: why.is_none(),
                why: why.unwrap_or_else(|| format!("on opened, runs ({})", a.kind_name())),
            }
        })
        .collect();
    let mut skipped = Vec::new();
    let mut policy = None;
    for (i, e) in rules.escalations.iter().enumerate() {
        let rule = named(&e.name, i, e.at.as_ref());
        match filters(&e.priorities, None, &e.matchers) {
            Some(why) => skipped.push(ActionCheck {
                rule,
                runs: false,
                why,
            }),
            None => {
                policy = Some((rule, e));
                break;
            }
        }
    }
    let on_escalated: Vec<String> = rules
        .actions
        .iter()
        .filter(|a| {
            a.on.contains(&Trigger::Escalated)
                && filters(&a.priorities, Some(&a.categories), &a.matchers).is_none()
        })
        .map(|a| a.name.clone())
        .collect();
    let resolve = rules.sla[p.idx()].resolve;
    let levels = policy
        .as_ref()
        .map(|(_, e)| {
            e.levels
                .iter()
                .enumerate()
                .map(|(n, l)| {
                    let (when, after) = match l.when {
                        LevelWhen::Unacknowledged(d) => {
                            (format!("unacknowledged for {}", human(d)), d)
                        }
                        LevelWhen::ResolveProgress(f) => {
                            let d = resolve.mul_f64(f);
                            (
                                format!(
                                    "{:.0}% of the {} resolve target passed ({}), unresolved",
                                    f * 100.0,
                                    human(resolve),
                                    human(std::time::Duration::from_secs(d.as_secs()))
                                ),
                                d,
                            )
                        }
                    };
                    let mut actions = l.actions.clone();
                    for a in &on_escalated {
                        if !actions.contains(a) {
                            actions.push(a.clone());
                        }
                    }
                    LevelStep {
                        level: n as u32 + 1,
                        when,
                        due_at: now + chrono_dur(after),
                        assignee: l.assignee.clone(),
                        actions,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    OnOpened {
        actions,
        escalation: EscalationStep {
            policy: policy.map(|(r, _)| r),
            skipped,
            levels,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testkit::*;
    use crate::engine::Outcome as Done;

    fn builtin() -> RuleSet {
        RuleSet::builtin().expect("built-in rules")
    }

    #[test]
    fn a_crashloop_in_prod_is_p2_and_says_why() {
        let rules = builtin();
        let a = firing(&[
            ("alertname", "KubePodCrashLooping"),
            ("namespace", "shop"),
            ("pod", "api-1"),
            ("env", "prod"),
            ("severity", "critical"),
        ]);
        let now: DateTime<Utc> = "2026-01-05T10:00:00Z".parse().expect("time");
        let r = explain(&rules, &[a], now);
        assert!(!r.live_state);
        let e = &r.alerts[0];
        assert_eq!(e.result.kind, "opens");
        assert_eq!(e.correlate.rule.name, "kube-workload");
        let skipped: Vec<&str> = e
            .correlate
            .skipped
            .iter()
            .map(|s| s.rule.name.as_str())
            .collect();
        assert_eq!(skipped, ["node-down", "node-resources", "target-down"]);
        assert_eq!(e.correlate.skipped[0].failed.label, "alertname");
        assert_eq!(
            e.correlate.group_key,
            "kube-workload{alertname=\"KubePodCrashLooping\",namespace=\"shop\"}"
        );
        assert_eq!(e.correlate.title, "KubePodCrashLooping in namespace shop");
        assert_eq!(e.classify.value, "software");
        assert_eq!(e.urgency.value, "high");
        assert_eq!(e.impact.value, "medium");
        // The explicit impact labels and the API/etcd rule come first.
        assert_eq!(e.impact.skipped.len(), 4);
        assert_eq!(e.priority.priority, Priority::P2);
        assert_eq!(e.sla.acknowledge, "30m");
        assert!(e.suppression.suppressed_by.is_none());
        let critical = &e.suppression.inhibit[1];
        assert_eq!(critical.rule.name, "critical-mutes-warning");
        assert!(!critical.applies);
        assert_eq!(
            critical.failed.as_ref().map(|m| m.label.as_str()),
            Some("severity")
        );
        assert!(e.blast_radius.iter().all(|b| !b.reached));
        assert!(e.on_opened.actions.is_empty());
        assert!(e.on_opened.escalation.policy.is_none());
    }

    #[test]
    fn payload_alerts_inhibit_each_other_and_maintenance_is_timed() {
        let rules = builtin();
        let down = firing(&[
            ("alertname", "InstanceDown"),
            ("instance", "db-1:9100"),
            ("severity", "critical"),
            ("maintenance_window", "weekly-patching"),
        ]);
        let disk = firing(&[
            ("alertname", "NodeFilesystemSpaceFillingUp"),
            ("instance", "db-1:9100"),
            ("severity", "warning"),
        ]);
        // Sunday 03:00 UTC: inside the weekly patching window.
        let sunday: DateTime<Utc> = "2026-01-11T03:00:00Z".parse().expect("time");
        let r = explain(&rules, &[down.clone(), disk], sunday);
        let (d, w) = (&r.alerts[0], &r.alerts[1]);
        assert_eq!(d.result.kind, "suppressed");
        assert_eq!(d.suppression.suppressed_by.as_deref(), Some("maintenance"));
        assert!(
            d.suppression.maintenance[0]
                .why
                .contains("open now (weekly sun 02:00-04:00 (UTC))"),
            "{:?}",
            d.suppression.maintenance[0]
        );
        assert_eq!(w.suppression.suppressed_by.as_deref(), Some("inhibit"));
        assert!(
            w.suppression.inhibit[0].applies,
            "{:?}",
            w.suppression.inhibit[0]
        );
        // Monday: the window is closed; the node-down incident opens.
        let monday: DateTime<Utc> = "2026-01-12T03:00:00Z".parse().expect("time");
        let r = explain(&rules, &[down], monday);
        assert_eq!(r.alerts[0].result.kind, "opens");
        assert!(r.alerts[0].suppression.maintenance[0]
            .why
            .contains("is not open at"));
    }

    #[test]
    fn against_the_engine_a_third_node_joins_and_reaches_the_blast_radius() {
        let mut e = NODES.engine();
        let mk = |i: &str| {
            firing(&[
                ("alertname", "NodeDown"),
                ("cluster", "eu"),
                ("instance", i),
            ])
        };
        let Done::Created(k) = e.ingest_one(mk("a"), NODES.t(0)) else {
            panic!("created")
        };
        e.ingest_one(mk("b"), NODES.t(1));
        let r = e.explain(&[mk("c")], NODES.t(2));
        assert!(r.live_state);
        let x = &r.alerts[0];
        assert_eq!(x.result.kind, "joins");
        assert_eq!(x.result.incident, Some(k.to_string()));
        let b = &x.blast_radius[0];
        assert_eq!((b.distinct, b.reached), (3, true), "{b:?}");
        assert_eq!(x.priority.impact, Level::Medium);
        assert_eq!(
            x.priority.raised_by.as_ref().map(|r| r.name.as_str()),
            Some("#1")
        );
        // A repeat of a firing alert is deduplicated; nothing changed.
        let r = e.explain(&[mk("a")], NODES.t(3));
        assert_eq!(r.alerts[0].result.kind, "deduplicated");
        assert_eq!(inc(&e, k).alert_count, 2);
    }
}
