//! Automated first response: the executor that runs action jobs outside
//! the ingest path.
//!
//! Input: [`Job`]s the engine creates when an incident trigger fires
//! (`opened`, `priority_changed`, `alert_added`, `acknowledged`,
//! `escalated`, `sla_breached`, `resolved`, `reopened`, `closed`) and a
//! matching action exists, handed over after their commit. Output: HTTP
//! requests ([`webhook`], with the Slack and Teams presets), processes
//! ([`exec`]), Kafka records ([`kafka`]), mail ([`email`]), PagerDuty
//! events ([`pagerduty`]), Redmine issues ([`redmine`]) and Alertmanager
//! silences ([`alertmanager`]), each attempt's result sent back to the writer so it lands on
//! the incident timeline and in the store, and `incidentd_actions_total` /
//! `incidentd_action_duration_seconds`.
//!
//! Contract: jobs run on a bounded worker pool fed by a bounded queue, so a
//! slow or dead target never slows ingestion; failures retry with
//! exponential backoff and jitter up to `retries`; a job's key (incident,
//! action, trigger, occurrence) makes the same trigger run once per
//! incident, also across a restart; pending jobs are stored and resumed at
//! start. `exec` never goes through a shell: the program gets a fixed
//! argument list, and incident data only as environment variables and JSON
//! on stdin; its output is captured up to a limit. Secrets (header values,
//! SMTP passwords, routing and API keys) come from environment variables or
//! files and never reach the timeline or the logs. What an attempt captures
//! (a ticket or silence id) goes back with its result, through the writer,
//! onto the incident as `external_refs.<action>`; jobs created before the
//! capture see it too (the executor merges what it captured since start).

pub mod alertmanager;
pub mod email;
pub mod exec;
pub mod kafka;
pub mod pagerduty;
pub mod redmine;
pub mod webhook;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, Semaphore};

use crate::config::{KafkaConfig, SmtpConfig};
use crate::metrics::Metrics;
use crate::model::{AttemptOutcome, AttemptResult, Job};
use crate::pipeline::{Dispatch, WeakHandle};
use crate::rules::actions::ActionKind;
use crate::rules::RuleSet;

/// Executor settings (from the daemon config).
#[derive(Debug, Clone)]
pub struct ExecutorSettings {
    pub workers: usize,
    pub queue_capacity: usize,
    pub allow_exec: bool,
    /// The daemon's `kafka` section: default brokers and client options
    /// for `kafka` actions.
    pub kafka: Option<KafkaConfig>,
    /// The daemon's `smtp` section, for `email` actions.
    pub smtp: Option<SmtpConfig>,
    /// Signs the acknowledgement link of each page.
    pub ack: Option<AckLinks>,
}

/// How pages get their acknowledgement links.
#[derive(Debug, Clone)]
pub struct AckLinks {
    pub key: Arc<crate::model::ack_link::AckKey>,
    /// The daemon's external URL (links are `{base_url}/ack/{token}`).
    pub base_url: String,
}

impl AckLinks {
    /// Adds `page.ack_url` and `page.expires_at` to a page's payload; the
    /// link expires [`ACK_LINK_TTL`](crate::model::ack_link::ACK_LINK_TTL)
    /// after the job was created (the same link on every retry).
    pub fn stamp(&self, job: &mut Job) {
        use crate::model::ack_link::{AckClaim, ACK_LINK_TTL};
        let Some(person) = job
            .payload
            .pointer("/page/person/name")
            .and_then(|v| v.as_str())
            .map(str::to_string)
        else {
            return;
        };
        let expires_at = job.created_at + crate::model::wall(ACK_LINK_TTL);
        let token = self.key.sign(&AckClaim {
            incident: job.incident,
            person,
            expires_at,
        });
        let url = format!("{}/ack/{token}", self.base_url.trim_end_matches('/'));
        job.payload["page"]["ack_url"] = serde_json::Value::String(url);
        job.payload["page"]["expires_at"] = serde_json::Value::String(expires_at.to_rfc3339());
    }
}

/// Sends jobs to the executor; cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    tx: mpsc::Sender<Job>,
}

impl Dispatch for Dispatcher {
    fn dispatch(&self, job: Job) -> bool {
        self.tx.try_send(job).is_ok()
    }
}

/// The executor's queue: the writer holds the [`Dispatcher`], the executor
/// the receiving end.
pub fn channel(capacity: usize) -> (Dispatcher, mpsc::Receiver<Job>) {
    let (tx, rx) = mpsc::channel::<Job>(capacity.max(1));
    (Dispatcher { tx }, rx)
}

/// Starts the executor. Results go back through `results` (a weak handle,
/// so a running action never keeps the writer from shutting down).
pub fn spawn_executor(
    settings: ExecutorSettings,
    mut rx: mpsc::Receiver<Job>,
    rules: watch::Receiver<Arc<RuleSet>>,
    results: WeakHandle,
    metrics: Arc<Metrics>,
) {
    let permits = Arc::new(Semaphore::new(settings.workers.max(1)));
    let client = reqwest::Client::builder()
        .user_agent(concat!("incidentd/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default();
    let sinks = Sinks {
        http: client,
        producers: kafka::Producers::default(),
        kafka: settings.kafka.clone().map(Arc::new),
        smtp: settings.smtp.clone().map(Arc::new),
        refs: Arc::default(),
    };
    let ack = settings.ack.clone();
    tokio::spawn(async move {
        while let Some(mut job) = rx.recv().await {
            if let Some(a) = &ack {
                a.stamp(&mut job);
            }
            let permits = permits.clone();
            let rules = rules.borrow().clone();
            let results = results.clone();
            let metrics = metrics.clone();
            let sinks = sinks.clone();
            let allow_exec = settings.allow_exec;
            tokio::spawn(async move {
                run_job(job, rules, results, metrics, sinks, allow_exec, permits).await;
            });
        }
    });
}

/// Where actions go: the HTTP client and the Kafka producers.
#[derive(Clone)]
struct Sinks {
    http: reqwest::Client,
    producers: kafka::Producers,
    kafka: Option<Arc<KafkaConfig>>,
    smtp: Option<Arc<SmtpConfig>>,
    /// External references captured since start, by incident id: a job
    /// created before its incident's ticket id was captured still sees it.
    refs: Refs,
}

type Refs = Arc<parking_lot::Mutex<HashMap<String, BTreeMap<String, String>>>>;

/// `job`'s payload with the references captured since it was created.
fn with_refs(job: &Job, refs: &Refs) -> Job {
    let mut job = job.clone();
    let id = job.incident.to_string();
    if let Some(known) = refs.lock().get(&id) {
        let incident = &mut job.payload["incident"];
        if incident.is_object() {
            let map = incident
                .as_object_mut()
                .map(|o| o.entry("external_refs").or_insert(serde_json::json!({})));
            if let Some(serde_json::Value::Object(m)) = map {
                for (k, v) in known {
                    m.insert(k.clone(), serde_json::Value::String(v.clone()));
                }
            }
        }
    }
    job
}

async fn run_job(
    job: Job,
    rules: Arc<RuleSet>,
    results: WeakHandle,
    metrics: Arc<Metrics>,
    sinks: Sinks,
    allow_exec: bool,
    permits: Arc<Semaphore>,
) {
    let Some(def) = rules.actions.iter().find(|a| a.name == job.action).cloned() else {
        report(
            &results,
            AttemptResult {
                job_key: job.key.clone(),
                attempt: job.attempts + 1,
                outcome: AttemptOutcome::Failure,
                message: format!(
                    "action {:?} no longer exists in the rules; not run",
                    job.action
                ),
                retry_in: None,
                disabled: false,
                captured: None,
            },
        )
        .await;
        return;
    };
    let max_attempts = def.retries + 1;
    let mut attempt = job.attempts + 1;
    while attempt <= max_attempts {
        let outcome = {
            // The permit bounds concurrency; it is released during backoff.
            let Ok(_permit) = permits.acquire().await else {
                return;
            };
            let started = Instant::now();
            let job = with_refs(&job, &sinks.refs);
            let plain = |(o, m): (AttemptOutcome, String)| (o, m, None);
            let (outcome, message, captured) = match &def.kind {
                ActionKind::Webhook(w) => webhook::send(&sinks.http, &rules, w, &job).await,
                ActionKind::Redmine(r) => {
                    redmine::send(&sinks.http, &rules, r, &def.name, &job).await
                }
                ActionKind::Alertmanager(a) => {
                    alertmanager::send(&sinks.http, a, &def.name, &job).await
                }
                ActionKind::Kafka(k) => plain(
                    kafka::produce(&sinks.producers, sinks.kafka.as_deref(), &rules, k, &job).await,
                ),
                ActionKind::Email(m) => {
                    plain(email::send(sinks.smtp.as_deref(), &rules, m, &job).await)
                }
                ActionKind::PagerDuty(p) => {
                    plain(pagerduty::send(&sinks.http, &rules, p, &job).await)
                }
                ActionKind::Exec(e) if allow_exec => plain(exec::run(e, &job).await),
                ActionKind::Exec(_) => (
                    AttemptOutcome::Failure,
                    "exec actions are disabled by configuration (actions.allow_exec: false)"
                        .to_string(),
                    None,
                ),
            };
            if let Some(v) = &captured {
                sinks
                    .refs
                    .lock()
                    .entry(job.incident.to_string())
                    .or_default()
                    .insert(def.name.clone(), v.clone());
            }
            let elapsed = started.elapsed();
            metrics
                .action_duration
                .with_label_values(&[&def.name])
                .observe(elapsed.as_secs_f64());
            metrics
                .actions_total
                .with_label_values(&[&def.name, outcome.as_str()])
                .inc();
            metrics
                .actions_by_kind
                .with_label_values(&[def.kind_name(), outcome.as_str()])
                .inc();
            (
                outcome,
                format!("{message} ({} ms)", elapsed.as_millis()),
                captured,
            )
        };
        let (outcome, message, captured) = outcome;
        let disabled = !allow_exec && matches!(def.kind, ActionKind::Exec(_));
        let give_up = outcome == AttemptOutcome::Success || attempt >= max_attempts || disabled;
        let retry_in = (!give_up).then(|| backoff(def.backoff, attempt));
        let delivered = report(
            &results,
            AttemptResult {
                job_key: job.key.clone(),
                attempt,
                outcome,
                message,
                retry_in,
                disabled,
                captured,
            },
        )
        .await;
        match retry_in {
            Some(d) if delivered => tokio::time::sleep(d).await,
            _ => {
                if job.trigger == crate::model::Trigger::Closed {
                    // Jobs created from now on carry the stored references.
                    sinks.refs.lock().remove(&job.incident.to_string());
                }
                return;
            }
        }
        attempt += 1;
    }
}

/// An action's body template rendered with the job's payload; a template
/// that fails, or a JSON body that does not parse, is the attempt's
/// failure (nothing is sent).
fn render_body(
    rules: &RuleSet,
    template: &str,
    job: &Job,
) -> Result<String, (AttemptOutcome, String)> {
    let body = rules.render(template, &job.payload).map_err(|e| {
        (
            AttemptOutcome::Failure,
            format!("body template failed: {e}"),
        )
    })?;
    if RuleSet::is_json_template(template) {
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&body) {
            return Err((
                AttemptOutcome::Failure,
                format!("the rendered body is not valid JSON ({e}); not sent"),
            ));
        }
    }
    Ok(body)
}

/// `base * 2^(attempt-1)` plus up to 25% jitter, capped at 10 minutes.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = exp.mul_f64(f64::from(nanos % 1000) / 4000.0);
    (exp + jitter).min(Duration::from_secs(600))
}

async fn report(results: &WeakHandle, r: AttemptResult) -> bool {
    match results.upgrade() {
        Some(h) => h.action_result(r).await.is_ok(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let b = Duration::from_millis(100);
        let a1 = backoff(b, 1);
        let a3 = backoff(b, 3);
        assert!(a1 >= b && a1 <= b.mul_f64(1.25));
        assert!(a3 >= b * 4 && a3 <= (b * 4).mul_f64(1.25));
        assert_eq!(
            backoff(Duration::from_secs(100), 30),
            Duration::from_secs(600)
        );
    }
}
