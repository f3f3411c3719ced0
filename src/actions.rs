//! Automated first response: action definitions, action jobs, and the
//! executor that runs them outside the ingest path.
//!
//! Input: [`Job`]s the engine creates when an incident trigger fires
//! (`opened`, `priority_changed`, `alert_added`, `acknowledged`,
//! `escalated`, `sla_breached`, `resolved`, `reopened`, `closed`) and a
//! matching action exists. Output: HTTP requests (`webhook`), processes
//! (`exec`) and Kafka records (`kafka`), each attempt's result sent back to the writer so it lands on
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
//! on stdin; its output is captured up to a limit. Secret header values come
//! from environment variables and never reach the timeline or the logs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::incident::IncidentKey;
use crate::matcher::Matcher;
use crate::metrics::Metrics;
use crate::pipeline::WeakHandle;
use crate::rules::{Priority, RuleSet};

/// Incident events that can start actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Opened,
    PriorityChanged,
    AlertAdded,
    Acknowledged,
    Escalated,
    SlaBreached,
    Resolved,
    Reopened,
    Closed,
}

impl Trigger {
    pub const ALL: [Trigger; 9] = [
        Trigger::Opened,
        Trigger::PriorityChanged,
        Trigger::AlertAdded,
        Trigger::Acknowledged,
        Trigger::Escalated,
        Trigger::SlaBreached,
        Trigger::Resolved,
        Trigger::Reopened,
        Trigger::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Opened => "opened",
            Trigger::PriorityChanged => "priority_changed",
            Trigger::AlertAdded => "alert_added",
            Trigger::Acknowledged => "acknowledged",
            Trigger::Escalated => "escalated",
            Trigger::SlaBreached => "sla_breached",
            Trigger::Resolved => "resolved",
            Trigger::Reopened => "reopened",
            Trigger::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Trigger> {
        Trigger::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

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
    pub method: reqwest::Method,
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

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Pending,
    Succeeded,
    Failed,
    RateLimited,
    Disabled,
}

/// One run of one action for one trigger of one incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// `incident/action/trigger/occurrence`: unique per run-worthy event.
    pub key: String,
    pub incident: IncidentKey,
    pub action: String,
    pub trigger: Trigger,
    pub created_at: DateTime<Utc>,
    pub state: JobState,
    pub attempts: u32,
    pub last_result: Option<String>,
    /// The incident event at trigger time: what templates, env and stdin see.
    pub payload: serde_json::Value,
}

/// The result of one attempt, reported back to the writer.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptResult {
    pub job_key: String,
    pub attempt: u32,
    pub outcome: Outcome,
    /// Human-readable, safe for the timeline (no secrets).
    pub message: String,
    /// Set when another attempt follows after this delay.
    pub retry_in: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Timeout,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Timeout => "timeout",
        }
    }
}

/// Executor settings (from the daemon config).
#[derive(Debug, Clone)]
pub struct ExecutorSettings {
    pub workers: usize,
    pub queue_capacity: usize,
    pub allow_exec: bool,
    /// The daemon's `kafka` section: default brokers and client options
    /// for `kafka` actions.
    pub kafka: Option<crate::config::KafkaConfig>,
}

/// One producer per broker list, made on first use and shared by jobs.
#[derive(Clone, Default)]
struct Producers {
    by_brokers: Arc<std::sync::Mutex<BTreeMap<String, rdkafka::producer::FutureProducer>>>,
}

impl Producers {
    fn get(
        &self,
        brokers: &str,
        base: Option<&crate::config::KafkaConfig>,
    ) -> Result<rdkafka::producer::FutureProducer, String> {
        // A poisoned lock only means another job panicked mid-insert; the
        // map itself is still usable.
        let mut map = self
            .by_brokers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(p) = map.get(brokers) {
            return Ok(p.clone());
        }
        let mut c = rdkafka::ClientConfig::new();
        if let Some(k) = base {
            for (key, value) in &k.options {
                c.set(key, value);
            }
        }
        c.set("bootstrap.servers", brokers);
        c.set("acks", "all");
        let p: rdkafka::producer::FutureProducer = c
            .create()
            .map_err(|e| format!("cannot create a Kafka producer for {brokers}: {e}"))?;
        map.insert(brokers.to_string(), p.clone());
        Ok(p)
    }
}

/// Sends jobs to the executor; cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    tx: mpsc::Sender<Job>,
}

impl Dispatcher {
    /// Queues a job; `false` if the queue is full (the job stays pending in
    /// the store and runs after the next restart).
    pub fn dispatch(&self, job: Job) -> bool {
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
        producers: Producers::default(),
        kafka: settings.kafka.clone().map(Arc::new),
    };
    tokio::spawn(async move {
        while let Some(job) = rx.recv().await {
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
    producers: Producers,
    kafka: Option<Arc<crate::config::KafkaConfig>>,
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
                outcome: Outcome::Failure,
                message: format!(
                    "action {:?} no longer exists in the rules; not run",
                    job.action
                ),
                retry_in: None,
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
            let (outcome, message) = match &def.kind {
                ActionKind::Webhook(w) => webhook(&sinks.http, &rules, &def, w, &job).await,
                ActionKind::Kafka(k) => kafka(&sinks, &rules, k, &job).await,
                ActionKind::Exec(e) if allow_exec => exec(e, &job).await,
                ActionKind::Exec(_) => (
                    Outcome::Failure,
                    "exec actions are disabled by configuration (actions.allow_exec: false)"
                        .to_string(),
                ),
            };
            let elapsed = started.elapsed();
            metrics
                .action_duration
                .with_label_values(&[&def.name])
                .observe(elapsed.as_secs_f64());
            metrics
                .actions_total
                .with_label_values(&[&def.name, outcome.as_str()])
                .inc();
            (outcome, format!("{message} ({} ms)", elapsed.as_millis()))
        };
        let (outcome, message) = outcome;
        let give_up = outcome == Outcome::Success
            || attempt >= max_attempts
            || (!allow_exec && matches!(def.kind, ActionKind::Exec(_)));
        let retry_in = (!give_up).then(|| backoff(def.backoff, attempt));
        let delivered = report(
            &results,
            AttemptResult {
                job_key: job.key.clone(),
                attempt,
                outcome,
                message,
                retry_in,
            },
        )
        .await;
        match retry_in {
            Some(d) if delivered => tokio::time::sleep(d).await,
            _ => return,
        }
        attempt += 1;
    }
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

async fn kafka(sinks: &Sinks, rules: &RuleSet, k: &KafkaActionDef, job: &Job) -> (Outcome, String) {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::FutureRecord;
    let Some(brokers) = k
        .brokers
        .as_deref()
        .or(sinks.kafka.as_deref().map(|c| c.brokers.as_str()))
    else {
        return (
            Outcome::Failure,
            "no brokers: set `brokers` on the action or the daemon's kafka.brokers".into(),
        );
    };
    let producer = match sinks.producers.get(brokers, sinks.kafka.as_deref()) {
        Ok(p) => p,
        Err(e) => return (Outcome::Failure, e),
    };
    let body = match &k.body_template {
        Some(t) => match rules.render(t, &job.payload) {
            Ok(b) => b,
            Err(e) => return (Outcome::Failure, format!("body template failed: {e}")),
        },
        None => job.payload.to_string(),
    };
    let key = match k.key {
        KafkaKey::Incident => job.incident.to_string(),
        KafkaKey::GroupKey => job.payload["incident"]["group_key"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    };
    let incident = job.incident.to_string();
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "incidentd-trigger",
            value: Some(job.trigger.as_str()),
        })
        .insert(Header {
            key: "incidentd-incident",
            value: Some(incident.as_str()),
        })
        .insert(Header {
            key: "incidentd-job",
            value: Some(job.key.as_str()),
        });
    let record = FutureRecord::to(&k.topic)
        .key(&key)
        .payload(&body)
        .headers(headers);
    match tokio::time::timeout(k.timeout, producer.send(record, k.timeout)).await {
        Ok(Ok(delivery)) => (
            Outcome::Success,
            format!(
                "produced to {}[{}] at offset {}",
                k.topic, delivery.partition, delivery.offset
            ),
        ),
        Ok(Err((e, _))) => (
            Outcome::Failure,
            format!("producing to {} failed: {e}", k.topic),
        ),
        Err(_) => (
            Outcome::Timeout,
            format!("producing to {} timed out after {:?}", k.topic, k.timeout),
        ),
    }
}

async fn webhook(
    client: &reqwest::Client,
    rules: &RuleSet,
    def: &ActionDef,
    w: &WebhookDef,
    job: &Job,
) -> (Outcome, String) {
    let url = match (&w.url, &w.url_env) {
        (Some(u), _) => u.clone(),
        (None, Some(var)) => match std::env::var(var) {
            Ok(u) if !u.is_empty() => u,
            _ => {
                return (
                    Outcome::Failure,
                    format!("environment variable {var} (url_env) is not set"),
                )
            }
        },
        (None, None) => return (Outcome::Failure, "no url".into()),
    };
    let body = match &w.body_template {
        Some(t) => match rules.render(t, &job.payload) {
            Ok(b) => b,
            Err(e) => return (Outcome::Failure, format!("body template failed: {e}")),
        },
        None => match w.preset {
            Preset::Json => job.payload.to_string(),
            Preset::Slack => serde_json::json!({ "text": slack_text(&job.payload) }).to_string(),
        },
    };
    let mut req = client
        .request(w.method.clone(), &url)
        .timeout(w.timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    for (k, v) in &w.headers {
        req = req.header(k, v);
    }
    for (k, var) in &w.secret_headers {
        match std::env::var(var) {
            Ok(v) => req = req.header(k, v),
            Err(_) => {
                return (
                    Outcome::Failure,
                    format!("environment variable {var} for header {k} is not set"),
                )
            }
        }
    }
    let _ = def;
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            if status.is_success() {
                (Outcome::Success, format!("HTTP {}", status.as_u16()))
            } else {
                let text = resp.text().await.unwrap_or_default();
                (
                    Outcome::Failure,
                    format!("HTTP {}: {}", status.as_u16(), truncate(&text, 200)),
                )
            }
        }
        Err(e) if e.is_timeout() => (
            Outcome::Timeout,
            format!("timed out after {}", humantime::format_duration(w.timeout)),
        ),
        Err(e) => (
            Outcome::Failure,
            format!("request failed: {}", redact_url(&e.to_string(), &url)),
        ),
    }
}

/// Error texts can contain the URL (which may carry a token): hide it.
fn redact_url(msg: &str, url: &str) -> String {
    msg.replace(url, "<url>")
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// One line for chat: `[P1] INC-… title (status, trigger) link`.
pub fn slack_text(payload: &serde_json::Value) -> String {
    let i = &payload["incident"];
    format!(
        "[{}] {} {} ({}: {}) {}",
        i["priority"].as_str().unwrap_or("?"),
        i["id"].as_str().unwrap_or("?"),
        i["title"].as_str().unwrap_or(""),
        payload["trigger"].as_str().unwrap_or(""),
        i["status"].as_str().unwrap_or(""),
        payload["links"]["incident"].as_str().unwrap_or("")
    )
}

/// Environment for `exec`: `INCIDENT_*` plus `INCIDENT_LABEL_<NAME>`.
pub fn exec_env(payload: &serde_json::Value) -> BTreeMap<String, String> {
    let i = &payload["incident"];
    let mut env = BTreeMap::new();
    let s = |v: &serde_json::Value| {
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string())
    };
    for (var, field) in [
        ("INCIDENT_ID", "id"),
        ("INCIDENT_TITLE", "title"),
        ("INCIDENT_STATUS", "status"),
        ("INCIDENT_PRIORITY", "priority"),
        ("INCIDENT_CATEGORY", "category"),
        ("INCIDENT_RULE", "rule"),
        ("INCIDENT_GROUP_KEY", "group_key"),
        ("INCIDENT_ESCALATION_LEVEL", "escalation_level"),
    ] {
        env.insert(var.to_string(), s(&i[field]));
    }
    env.insert("INCIDENT_TRIGGER".into(), s(&payload["trigger"]));
    env.insert("INCIDENT_URL".into(), s(&payload["links"]["incident"]));
    if let Some(labels) = i["labels"].as_object() {
        for (k, v) in labels {
            let name: String = k
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            env.insert(format!("INCIDENT_LABEL_{name}"), s(v));
        }
    }
    env
}

async fn exec(e: &ExecDef, job: &Job) -> (Outcome, String) {
    let mut cmd = tokio::process::Command::new(&e.command);
    cmd.args(&e.args)
        .envs(exec_env(&job.payload))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(err) => {
            return (
                Outcome::Failure,
                format!("cannot start {}: {err}", e.command.display()),
            )
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let input = job.payload.to_string();
        tokio::spawn(async move {
            // A program that does not read stdin closes the pipe; that is fine.
            let _ = stdin.write_all(input.as_bytes()).await;
        });
    }
    let out = child
        .stdout
        .take()
        .map(|s| tokio::spawn(capture(s, e.max_output)));
    let err = child
        .stderr
        .take()
        .map(|s| tokio::spawn(capture(s, e.max_output)));
    let status = tokio::time::timeout(e.timeout, child.wait()).await;
    let (outcome, head) = match status {
        Ok(Ok(st)) if st.success() => (Outcome::Success, "exit 0".to_string()),
        Ok(Ok(st)) => (
            Outcome::Failure,
            match st.code() {
                Some(c) => format!("exit {c}"),
                None => "killed by a signal".to_string(),
            },
        ),
        Ok(Err(err)) => (Outcome::Failure, format!("wait failed: {err}")),
        Err(_) => {
            let _ = child.kill().await;
            (
                Outcome::Timeout,
                format!(
                    "timed out after {}; killed",
                    humantime::format_duration(e.timeout)
                ),
            )
        }
    };
    let collect = |h: Option<tokio::task::JoinHandle<String>>| async move {
        match h {
            Some(h) => tokio::time::timeout(Duration::from_secs(2), h)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default(),
            None => String::new(),
        }
    };
    let stdout = collect(out).await;
    let stderr = collect(err).await;
    let mut msg = head;
    if !stdout.trim().is_empty() {
        msg.push_str(&format!("; stdout: {}", stdout.trim_end()));
    }
    if !stderr.trim().is_empty() {
        msg.push_str(&format!("; stderr: {}", stderr.trim_end()));
    }
    (outcome, msg)
}

/// Reads a stream to its end, keeping at most `max` bytes.
async fn capture(mut r: impl AsyncRead + Unpin, max: usize) -> String {
    let mut kept = Vec::new();
    let mut total = 0usize;
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                total += n;
                let room = max.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    let mut s = String::from_utf8_lossy(&kept).into_owned();
    if total > kept.len() {
        s.push_str(&format!("… ({} more bytes not kept)", total - kept.len()));
    }
    s
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

    #[test]
    fn env_carries_incident_and_sanitized_labels() {
        let p = serde_json::json!({"trigger": "opened", "links": {"incident": "http://x/api/v1/incidents/INC-1"},
            "incident": {"id": "INC-20261123-0001", "priority": "P1", "labels": {"alertname": "A", "k8s.io/app": "$(rm -rf /)"}}});
        let env = exec_env(&p);
        assert_eq!(env["INCIDENT_ID"], "INC-20261123-0001");
        assert_eq!(env["INCIDENT_TRIGGER"], "opened");
        assert_eq!(env["INCIDENT_LABEL_K8S_IO_APP"], "$(rm -rf /)");
    }

    #[tokio::test]
    async fn capture_keeps_a_bounded_prefix() {
        let data = vec![b'x'; 10_000];
        let s = capture(&data[..], 100).await;
        assert!(s.starts_with(&"x".repeat(100)));
        assert!(s.ends_with("(9900 more bytes not kept)"));
    }
}
