//! Compiled action and escalation definitions (the `actions` and
//! `escalations` sections).
//!
//! Contract: what to run and when, never how: the executor (the `actions`
//! adapter) runs these; the engine decides when. Webhook secrets are named
//! by environment variable, never held here.

use std::path::PathBuf;
use std::time::Duration;

use super::error::Pos;
use crate::model::matcher::Matcher;
use crate::model::{Incident, Priority, TrackedAlert, Trigger};

/// A compiled action from the `actions` section.
#[derive(Debug, Clone)]
pub struct ActionDef {
    pub name: String,
    pub on: Vec<Trigger>,
    pub matchers: Vec<Matcher>,
    /// Empty: any priority.
    pub priorities: Vec<Priority>,
    /// Empty: any category.
    pub categories: Vec<String>,
    pub kind: ActionKind,
    /// Attempts after the first one.
    pub retries: u32,
    /// Delay before the first retry; doubles each time (plus jitter).
    pub backoff: Duration,
    /// At most this many runs per group key within the period.
    pub rate_limit: Option<(u32, Duration)>,
    /// Where it was written.
    pub at: Option<Pos>,
}

/// Every action kind, as [`ActionDef::kind_name`] names it.
pub const ACTION_KINDS: [&str; 7] = [
    "webhook",
    "exec",
    "kafka",
    "email",
    "pagerduty",
    "redmine",
    "alertmanager",
];

impl ActionDef {
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            ActionKind::Webhook(_) => "webhook",
            ActionKind::Exec(_) => "exec",
            ActionKind::Kafka(_) => "kafka",
            ActionKind::Email(_) => "email",
            ActionKind::PagerDuty(_) => "pagerduty",
            ActionKind::Redmine(_) => "redmine",
            ActionKind::Alertmanager(_) => "alertmanager",
        }
    }
}

#[derive(Debug, Clone)]
pub enum ActionKind {
    Webhook(WebhookDef),
    Exec(ExecDef),
    Kafka(KafkaActionDef),
    Email(EmailDef),
    PagerDuty(PagerDutyDef),
    Redmine(RedmineDef),
    Alertmanager(AlertmanagerDef),
}

/// An `alertmanager` action: silence sync with one Alertmanager.
#[derive(Debug, Clone)]
pub struct AlertmanagerDef {
    pub url: Target,
    /// How long a silence lasts unless the incident ends it first.
    pub duration: Duration,
    pub timeout: Duration,
}

/// Where an HTTP target is: a URL in the rules, or an environment variable
/// holding it (read at send time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Url(String),
    Env(String),
}

impl Target {
    pub fn resolve(&self) -> Result<String, String> {
        match self {
            Target::Url(u) => Ok(u.clone()),
            Target::Env(var) => match std::env::var(var) {
                Ok(u) if !u.trim().is_empty() => Ok(u.trim().to_string()),
                _ => Err(format!("environment variable {var} (url_env) is not set")),
            },
        }
    }
}

/// A `redmine` action: one Redmine issue per incident.
#[derive(Debug, Clone)]
pub struct RedmineDef {
    pub url: Target,
    pub api_key: Secret,
    pub project: String,
    /// Redmine priority ids for P1..P5.
    pub priorities: [u32; 5],
    pub trackers: Vec<(String, u32)>,
    pub category_field_id: Option<u32>,
    pub status_acknowledged: u32,
    pub status_resolved: u32,
    pub status_closed: u32,
    pub status_reopened: u32,
    /// Names of the compiled subject and description templates.
    pub subject: String,
    pub description: String,
    pub timeout: Duration,
}

/// An `email` action: a mail through the daemon's `smtp` server. Each part
/// is the name of a compiled template.
#[derive(Debug, Clone)]
pub struct EmailDef {
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub timeout: Duration,
}

/// Where a secret comes from: never the rule file itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    /// An environment variable of the daemon, read at send time.
    Env(String),
    /// A file, read at send time (surrounding whitespace trimmed).
    File(PathBuf),
}

impl Secret {
    /// The secret's value, or what is missing (naming the variable or
    /// file, never a value).
    pub fn read(&self) -> Result<String, String> {
        match self {
            Secret::Env(var) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
                _ => Err(format!("environment variable {var} is not set")),
            },
            Secret::File(path) => match std::fs::read_to_string(path) {
                Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
                Ok(_) => Err(format!("secret file {} is empty", path.display())),
                Err(e) => Err(format!("secret file {}: {e}", path.display())),
            },
        }
    }
}

/// The PagerDuty Events API v2 endpoint.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// A `pagerduty` action: Events API v2, `dedup_key` = the incident id.
#[derive(Debug, Clone)]
pub struct PagerDutyDef {
    pub routing_key: Secret,
    pub url: String,
    /// Name of the compiled summary template.
    pub summary: String,
    pub timeout: Duration,
}

/// Which record key a `kafka` action uses: all events of one incident (or
/// one group) land on one partition, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaKey {
    Incident,
    GroupKey,
}

/// A `kafka` action: produce the incident event to a topic (`acks=all`).
#[derive(Debug, Clone)]
pub struct KafkaActionDef {
    pub topic: String,
    /// Unset: the daemon's `kafka.brokers` (and its client `options`).
    pub brokers: Option<String>,
    pub key: KafkaKey,
    /// Name of the compiled body template; unset: the event as JSON.
    pub body_template: Option<String>,
    pub timeout: Duration,
}

/// The HTTP methods a webhook may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Post,
    Put,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
        }
    }
}

/// Body presets for webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// The whole incident event as JSON.
    Json,
    /// A Slack Block Kit message (with a `text` fallback) for Slack
    /// incoming webhooks.
    Slack,
    /// A Microsoft Teams (Workflows) message with an Adaptive Card.
    Teams,
}

#[derive(Debug, Clone)]
pub struct WebhookDef {
    /// Literal URL, or read from `url_env` at send time.
    pub url: Option<String>,
    pub url_env: Option<String>,
    pub method: HttpMethod,
    pub preset: Preset,
    /// Name of the compiled body template, if any (overrides the preset).
    pub body_template: Option<String>,
    /// The body's media type; a JSON one is escaped and must parse.
    pub content_type: String,
    /// Name of the compiled URL template when the URL has `{{ … }}`.
    pub url_template: Option<String>,
    /// JSON pointer into a successful response, stored as the incident's
    /// `external_refs.<action>`.
    pub capture: Option<String>,
    /// Header name → name of its compiled value template.
    pub headers: Vec<(String, String)>,
    /// Header name → environment variable holding its value.
    pub secret_headers: Vec<(String, String)>,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct ExecDef {
    pub command: PathBuf,
    pub args: Vec<String>,
    pub timeout: Duration,
    pub max_output: usize,
}

/// An `escalations` policy: levels reached while nobody acknowledges, or as
/// the resolve deadline approaches.
#[derive(Debug, Clone)]
pub struct EscalationPolicy {
    pub name: String,
    pub matchers: Vec<Matcher>,
    pub priorities: Vec<Priority>,
    pub levels: Vec<EscalationLevel>,
    /// Where it was written.
    pub at: Option<Pos>,
}

#[derive(Debug, Clone)]
pub struct EscalationLevel {
    pub when: LevelWhen,
    pub actions: Vec<String>,
    pub assignee: Option<String>,
    /// Whom to page (`people.yaml`), through their contact points.
    pub target: Option<PageTarget>,
    /// What happens when the target has nobody to page.
    pub fallback: Fallback,
    /// Pages again this many times while nobody acknowledges and the next
    /// level has not come, every `repeat_every`.
    pub repeat: u32,
    pub repeat_every: Duration,
}

/// Whom an escalation level pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageTarget {
    /// Whoever is on call in a schedule, or a team's first schedule.
    Oncall(String),
    /// Whoever is on call for the incident's team (`oncall: $team`).
    OwningTeam,
    Person(String),
    /// Every member of a team.
    Team(String),
    /// The person on call after the one the last level paged through a
    /// schedule (or after the owning team's current one).
    NextOncall,
}

impl PageTarget {
    /// As the timeline and pages name it.
    pub fn describe(&self) -> String {
        match self {
            PageTarget::Oncall(s) => format!("oncall {s}"),
            PageTarget::OwningTeam => "oncall $team".into(),
            PageTarget::Person(p) => format!("person {p}"),
            PageTarget::Team(t) => format!("team {t}"),
            PageTarget::NextOncall => "next_oncall".into(),
        }
    }
}

/// What a level does when its target has nobody on call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    /// Reach the next level at once (the default); at the last level the
    /// timeline says nobody could be paged.
    NextLevel,
    /// Page this person instead.
    Person(String),
    /// Look again at every tick for this long, then the next level.
    Wait(Duration),
}

impl Fallback {
    pub fn describe(&self) -> String {
        match self {
            Fallback::NextLevel => "next_level".into(),
            Fallback::Person(p) => format!("person {p}"),
            Fallback::Wait(d) => format!("wait {}", humantime::format_duration(*d)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LevelWhen {
    /// This long after creation while still unacknowledged.
    Unacknowledged(Duration),
    /// This fraction of the priority's resolve target has passed, unresolved.
    ResolveProgress(f64),
}

/// Most alerts an event lists.
pub const EVENT_ALERTS: usize = 50;

/// The incident event that `body` templates, `preset: json` and exec's
/// stdin see: `trigger`, `incident`, `alerts` (up to [`EVENT_ALERTS`]) and
/// `links` under `base_url`. The engine builds jobs with it, and rule
/// validation renders every body template against a sample of it.
pub fn event<'a>(
    trigger: Trigger,
    incident: &Incident,
    alerts: impl Iterator<Item = &'a TrackedAlert>,
    base_url: &str,
) -> serde_json::Value {
    let alerts: Vec<serde_json::Value> = alerts
        .take(EVENT_ALERTS)
        .map(|a| {
            serde_json::json!({
                "fingerprint": crate::model::fingerprint::to_hex(a.fingerprint),
                "labels": a.labels, "annotations": a.annotations, "status": a.status,
                "starts_at": a.starts_at, "generator_url": a.generator_url,
            })
        })
        .collect();
    let id = incident.id.to_string();
    serde_json::json!({
        "trigger": trigger.as_str(),
        "incident": incident,
        "alerts": alerts,
        "links": {
            "incident": format!("{base_url}/api/v1/incidents/{id}"),
            "report": format!("{base_url}/api/v1/incidents/{id}/report"),
        },
    })
}
