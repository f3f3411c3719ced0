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

impl ActionDef {
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            ActionKind::Webhook(_) => "webhook",
            ActionKind::Exec(_) => "exec",
            ActionKind::Kafka(_) => "kafka",
        }
    }
}

#[derive(Debug, Clone)]
pub enum ActionKind {
    Webhook(WebhookDef),
    Exec(ExecDef),
    Kafka(KafkaActionDef),
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
    /// `{"text": "..."}` for Slack-compatible incoming webhooks.
    Slack,
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
