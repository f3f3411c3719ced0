//! Daemon configuration: the embedded defaults, an optional YAML file, and
//! command-line / `INCIDENTD_*` overrides.
//!
//! Input: `--config FILE` (YAML, unknown keys rejected) and flag overrides.
//! Output: one validated [`Config`]. Every field has a default, so `serve`
//! with no file runs. Doc comments on the fields are the user documentation
//! (see the README's configuration section).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// Everything `serve` needs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Directory holding the redb database (`incidentd.redb`); created if missing.
    pub data_dir: PathBuf,
    /// Rule directory. Unset: `./rules` if it exists, else the built-in rules.
    pub rules_dir: Option<PathBuf>,
    /// Bounds on what one request may carry.
    pub limits: Limits,
    /// Incident lifecycle settings.
    pub incidents: IncidentSettings,
    /// Queueing and batching between HTTP and the store.
    pub pipeline: PipelineSettings,
    /// Action execution (webhook and exec actions from the rule files).
    pub actions: ActionSettings,
    /// Base URL people and tools reach incidentd at, for links in action
    /// payloads. Unset: `http://<listen>`.
    pub external_url: Option<String>,
    /// How long shutdown waits for in-flight work before giving up.
    #[serde(with = "duration")]
    pub shutdown_timeout: Duration,
    /// Kafka source (`serve`) and target (`forward`); unset means no Kafka.
    /// See docs/scaling.md.
    pub kafka: Option<KafkaConfig>,
    /// The mail server `email` actions send through; unset: email actions
    /// fail (recorded on the timeline) until it is configured.
    pub smtp: Option<SmtpConfig>,
    /// Who may call the HTTP API (see the README, "Running on a network").
    pub auth: AuthConfig,
    /// TLS for the HTTP listener; unset means plain HTTP.
    pub tls: Option<TlsConfig>,
    /// Connection limits and timeouts of the HTTP listener.
    pub http: HttpSettings,
    /// How long finished things are kept (see docs/operations.md).
    pub retention: RetentionSettings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 9095)),
            data_dir: PathBuf::from("./data"),
            rules_dir: None,
            limits: Limits::default(),
            incidents: IncidentSettings::default(),
            pipeline: PipelineSettings::default(),
            actions: ActionSettings::default(),
            external_url: None,
            shutdown_timeout: Duration::from_secs(30),
            kafka: None,
            smtp: None,
            auth: AuthConfig::default(),
            tls: None,
            http: HttpSettings::default(),
            retention: RetentionSettings::default(),
        }
    }
}

/// What is deleted, and when. Deletion runs in small batches when the
/// writer is idle, never on the ingest path; every deleted row is counted
/// in `incidentd_retention_deleted_total{kind}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSettings {
    /// Closed incidents, with their alerts, timeline and action jobs, this
    /// long after they closed.
    #[serde(with = "duration")]
    pub closed_incidents: Duration,
    /// Finished action jobs (succeeded, failed, rate-limited, disabled) of
    /// incidents still kept, this long after they were created.
    #[serde(with = "duration")]
    pub finished_jobs: Duration,
    /// Silences this long after they ended.
    #[serde(with = "duration")]
    pub expired_silences: Duration,
    /// How often a retention pass runs (sooner while a pass finds more than
    /// one batch to delete).
    #[serde(with = "duration")]
    pub interval: Duration,
    /// Most rows of each kind deleted in one transaction.
    pub batch: usize,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            closed_incidents: Duration::from_secs(400 * 86400),
            finished_jobs: Duration::from_secs(30 * 86400),
            expired_silences: Duration::from_secs(30 * 86400),
            interval: Duration::from_secs(600),
            batch: 500,
        }
    }
}

/// API tokens. Without a tokens file every caller may do everything, which
/// `serve` allows only on a loopback address (or with `insecure_no_auth`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// YAML file listing the tokens (`tokens: [{name, role, sha256}]`) and
    /// client certificate subjects (`certificates: [{subject, name, role}]`);
    /// re-read on SIGHUP and `POST /-/reload` (`--auth-tokens`).
    pub tokens_file: Option<PathBuf>,
    /// Also require a `viewer` token for `/metrics`, `/-/healthy` and
    /// `/-/ready`.
    pub protect_metrics: bool,
    /// Listen on a non-loopback address without tokens (logs a warning at
    /// start and every hour; `--insecure-no-auth`).
    pub insecure_no_auth: bool,
}

/// TLS certificate and key, PEM; re-read on SIGHUP and `POST /-/reload`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain, leaf first (`--tls-cert`).
    pub cert_file: PathBuf,
    /// Its private key (`--tls-key`).
    pub key_file: PathBuf,
    /// CA that client certificates are verified against; a verified
    /// certificate's subject can stand in for a token (tokens file
    /// `certificates`). Clients without a certificate still use tokens.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

/// The HTTP listener's bounds: a slow or idle client holds a connection for
/// at most these times, and never more than `max_connections` are open.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// A request's headers must arrive within this time of their first byte.
    #[serde(with = "duration")]
    pub header_timeout: Duration,
    /// A request's body must arrive within this time of the request.
    #[serde(with = "duration")]
    pub body_timeout: Duration,
    /// An idle keep-alive connection is closed after this time.
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// Most connections open at once (kept under the open-files limit).
    pub max_connections: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
        }
    }
}

/// How actions run. They never run on the ingest path.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionSettings {
    /// Action attempts running at the same time.
    pub workers: usize,
    /// Jobs waiting for a worker; beyond this a job stays pending in the
    /// store and runs after the next restart.
    pub queue_capacity: usize,
    /// `false` refuses every `exec` action (recorded as disabled).
    pub allow_exec: bool,
}

impl Default for ActionSettings {
    fn default() -> Self {
        ActionSettings {
            workers: 8,
            queue_capacity: 10_000,
            allow_exec: true,
        }
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which must succeed
    /// (submission, port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption (a local relay only: credentials would go in clear).
    None,
}

/// The SMTP server `email` actions send through. The password comes from
/// an environment variable or a file, never from this file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Server host name (also the name its certificate must carry).
    pub host: String,
    /// Default: 587 with `starttls`, 465 with `tls`, 25 with `none`.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: SmtpTls,
    /// Sender address, e.g. `incidentd <incidentd@example.com>`.
    pub from: String,
    /// User for SMTP AUTH; unset: no authentication.
    #[serde(default)]
    pub username: Option<String>,
    /// Environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Extra CA certificate (PEM) the server's certificate may chain to,
    /// besides the public roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Per attempt.
    #[serde(default = "smtp_timeout", with = "duration")]
    pub timeout: Duration,
}

fn smtp_timeout() -> Duration {
    Duration::from_secs(30)
}

impl SmtpConfig {
    /// The port: given, or the usual one for the TLS mode.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        })
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.host.trim().is_empty() {
            p.push("smtp.host must not be empty".to_string());
        }
        if self.from.parse::<lettre::message::Mailbox>().is_err() {
            p.push(format!("smtp.from {:?} is not a mail address", self.from));
        }
        if self.password_env.is_some() && self.password_file.is_some() {
            p.push("smtp: give at most one of password_env and password_file".to_string());
        }
        if (self.password_env.is_some() || self.password_file.is_some()) && self.username.is_none()
        {
            p.push("smtp: a password needs smtp.username".to_string());
        }
        p
    }
}

/// Request limits; anything beyond answers 413 or 400 naming the limit.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Most alerts in one request.
    pub max_alerts_per_request: usize,
    /// Most labels (and, separately, annotations) on one alert.
    pub max_labels: usize,
    /// Longest label value in bytes.
    pub max_label_value_bytes: usize,
    /// Longest annotation value in bytes.
    pub max_annotation_value_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 4 * 1024 * 1024,
            max_alerts_per_request: 10_000,
            max_labels: 128,
            max_label_value_bytes: 16 * 1024,
            max_annotation_value_bytes: 64 * 1024,
        }
    }
}

/// Lifecycle timers.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentSettings {
    /// A resolved incident whose alerts stay quiet this long is closed.
    #[serde(with = "duration")]
    pub close_after: Duration,
    /// Window of the rolling `incidentd_mtta_seconds` / `incidentd_mttr_seconds` gauges.
    #[serde(with = "duration")]
    pub metrics_window: Duration,
}

impl Default for IncidentSettings {
    fn default() -> Self {
        IncidentSettings {
            close_after: Duration::from_secs(24 * 3600),
            metrics_window: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// redb's own default page cache (1 GiB) caches every page a restart
/// reads: with a million stored alerts that is most of the daemon's memory.
/// 16 MiB measured as fast as 64 (ingest and restart) with 50 MB less peak
/// RSS at 100,000 live alerts; see benches/README.md.
pub const DEFAULT_STORE_CACHE_MB: usize = 16;

/// Queueing between the HTTP handlers and the single store writer.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSettings {
    /// Requests waiting for the writer; beyond this, ingest answers 503 with `Retry-After`.
    pub queue_capacity: usize,
    /// Alerts of HTTP ingest requests admitted and not yet answered; beyond
    /// this a request is answered 503 with `Retry-After` at once. Bounds how
    /// long any request waits behind others (the writer clears the default
    /// in well under a second; see benches/README.md).
    pub max_queued_alerts: usize,
    /// Request-body bytes of HTTP ingest requests admitted and not yet
    /// answered, counted from `Content-Length` before the body is read;
    /// beyond this, 503 at once. Bounds the memory waiting requests hold.
    pub max_queued_bytes: usize,
    /// Most alerts committed in one write transaction (group commit).
    pub max_batch_alerts: usize,
    /// How often time-driven transitions run (auto-close, SLA breaches, expiry).
    #[serde(with = "duration")]
    pub tick_interval: Duration,
    /// redb's page cache in MiB. Bounds the daemon's memory beyond its live
    /// state; pages not cached are read from the file (the OS caches them).
    pub store_cache_mb: usize,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            queue_capacity: 1024,
            max_queued_alerts: 10_000,
            max_queued_bytes: 64 << 20,
            max_batch_alerts: 20_000,
            tick_interval: Duration::from_secs(1),
            store_cache_mb: DEFAULT_STORE_CACHE_MB,
        }
    }
}

/// The `kafka` section. `serve` consumes `topics` as one consumer group and
/// commits a message's offset only after its alerts are committed to the
/// database; `forward` produces into the single topic in `topics`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port[,host:port...]` (`--kafka-brokers`).
    pub brokers: String,
    /// Topics to consume (`--kafka-topic`, repeatable).
    pub topics: Vec<String>,
    /// Consumer group id (`--kafka-group`); the instances of one group split
    /// the partitions between them.
    pub group: String,
    /// Payload format per topic: `auto` (the default: detected per message),
    /// `alertmanager_v2`, `webhook_v4`, `generic` or `pagerduty_v2`.
    pub formats: BTreeMap<String, KafkaFormat>,
    /// Topic that receives messages which cannot be parsed: same key and
    /// payload, the error in header `incidentd-error`. Unset: such messages
    /// are logged, counted in `incidentd_kafka_messages_rejected_total` and
    /// skipped.
    pub dead_letter_topic: Option<String>,
    /// Where a group without committed offsets starts: `earliest` or `latest`.
    pub start_from: StartFrom,
    /// How often the offsets of durably stored messages are committed. A
    /// crash replays at most this much; dedup absorbs the replay.
    #[serde(with = "duration")]
    pub commit_interval: Duration,
    /// How often `incidentd_kafka_consumer_lag` is refreshed.
    #[serde(with = "duration")]
    pub lag_interval: Duration,
    /// Most messages stored in one write transaction.
    pub max_batch_messages: usize,
    /// Longest pause between retries while the pipeline is overloaded or
    /// storage fails (partitions stay paused meanwhile).
    #[serde(with = "duration")]
    pub max_retry_backoff: Duration,
    /// Hand incident state over when a partition moves to another instance:
    /// each incident that came from a partition is written to the same
    /// partition of `<topic>-changelog` (a compacted topic), and the
    /// instance a partition moves to restores those incidents before it
    /// reads the partition. Needs `instance`.
    pub changelog: bool,
    /// How often the changes plain repeats make (last seen, ends at, repeat
    /// count, last activity) go to the changelog, latest state only.
    /// Everything else goes right after its commit.
    #[serde(with = "duration")]
    pub changelog_interval: Duration,
    /// This instance's number in the group, 0 to 99, unique per instance:
    /// the incident ids it opens end in it, so ids never collide when
    /// incidents move between instances.
    pub instance: Option<u32>,
    /// Extra librdkafka properties, e.g. `security.protocol`, `sasl.*`,
    /// `ssl.*`, `session.timeout.ms`. The ones that carry the delivery
    /// guarantee (`enable.auto.commit`, `enable.auto.offset.store`,
    /// `group.id`, `bootstrap.servers`) cannot be set here.
    pub options: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: String::new(),
            topics: Vec::new(),
            group: "incidentd".into(),
            formats: BTreeMap::new(),
            dead_letter_topic: None,
            start_from: StartFrom::Earliest,
            commit_interval: Duration::from_secs(1),
            lag_interval: Duration::from_secs(10),
            max_batch_messages: 500,
            max_retry_backoff: Duration::from_secs(5),
            changelog: false,
            changelog_interval: Duration::from_secs(10),
            instance: None,
            options: BTreeMap::new(),
        }
    }
}

/// How a Kafka topic's messages are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaFormat {
    /// An object with `alerts` is a webhook v4 payload, one with
    /// `event_action` a PagerDuty v2 event, any other object one generic
    /// alert, an array generic / Alertmanager v2 alerts.
    #[default]
    Auto,
    AlertmanagerV2,
    WebhookV4,
    Generic,
    PagerdutyV2,
}

/// `auto.offset.reset` for a group that has no committed offset yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StartFrom {
    Earliest,
    Latest,
}

/// librdkafka properties that `kafka.options` must not override.
pub const KAFKA_RESERVED_OPTIONS: [&str; 4] = [
    "enable.auto.commit",
    "enable.auto.offset.store",
    "group.id",
    "bootstrap.servers",
];

/// The compacted topic holding the incident state of `topic`'s partitions.
pub fn changelog_topic(topic: &str) -> String {
    format!("{topic}-changelog")
}

impl KafkaConfig {
    /// Every problem with this section, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.brokers.trim().is_empty() {
            p.push("kafka.brokers must be set (host:port,...)".to_string());
        }
        if self.topics.is_empty() {
            p.push("kafka.topics must name at least one topic".to_string());
        }
        if self.topics.iter().any(|t| t.trim().is_empty()) {
            p.push("kafka.topics: a topic name is empty".to_string());
        }
        if self.group.trim().is_empty() {
            p.push("kafka.group must not be empty".to_string());
        }
        for t in self.formats.keys() {
            if !self.topics.contains(t) {
                p.push(format!(
                    "kafka.formats.{t}: {t:?} is not one of kafka.topics {:?}",
                    self.topics
                ));
            }
        }
        if let Some(d) = &self.dead_letter_topic {
            if d.trim().is_empty() {
                p.push("kafka.dead_letter_topic must not be empty when set".to_string());
            } else if self.topics.contains(d) {
                p.push(format!(
                    "kafka.dead_letter_topic {d:?} is also consumed (kafka.topics); rejected messages would loop"
                ));
            }
        }
        if self.commit_interval.is_zero() {
            p.push("kafka.commit_interval must be > 0".to_string());
        }
        if self.lag_interval < Duration::from_millis(10) {
            p.push("kafka.lag_interval must be at least 10ms".to_string());
        }
        if self.max_batch_messages == 0 {
            p.push("kafka.max_batch_messages must be > 0".to_string());
        }
        if self.max_retry_backoff.is_zero() {
            p.push("kafka.max_retry_backoff must be > 0".to_string());
        }
        if self.changelog_interval.is_zero() {
            p.push("kafka.changelog_interval must be > 0".to_string());
        }
        if let Some(i) = self.instance.filter(|i| *i >= crate::model::ID_SLOTS) {
            p.push(format!(
                "kafka.instance must be between 0 and {}, got {i}",
                crate::model::ID_SLOTS - 1
            ));
        }
        if self.changelog && self.instance.is_none() {
            p.push(
                "kafka.changelog needs kafka.instance (0-99, unique per instance) so incident ids opened by different instances never collide"
                    .to_string(),
            );
        }
        for t in &self.topics {
            if self.changelog && self.topics.contains(&changelog_topic(t)) {
                p.push(format!(
                    "kafka.topics: {:?} is the changelog of {t:?} and cannot be consumed as alerts",
                    changelog_topic(t)
                ));
            }
        }
        for k in self.options.keys() {
            if KAFKA_RESERVED_OPTIONS.contains(&k.as_str()) {
                p.push(format!(
                    "kafka.options.{k} cannot be set: incidentd manages it (use kafka.brokers / kafka.group)"
                ));
            }
        }
        p
    }

    /// The configured format of `topic`.
    pub fn format_of(&self, topic: &str) -> KafkaFormat {
        self.formats.get(topic).copied().unwrap_or_default()
    }
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads a YAML config file; unknown keys are errors with line and column.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let cfg: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_yaml_ng::from_str(&text).map_err(|e| ConfigError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?
        };
        Ok(cfg)
    }

    /// Checks cross-field constraints; reports every problem at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.limits.max_body_bytes == 0 {
            problems.push("limits.max_body_bytes must be > 0");
        }
        if self.limits.max_alerts_per_request == 0 {
            problems.push("limits.max_alerts_per_request must be > 0");
        }
        if self.pipeline.queue_capacity == 0 {
            problems.push("pipeline.queue_capacity must be > 0");
        }
        if self.pipeline.max_queued_alerts == 0 || self.pipeline.max_queued_bytes == 0 {
            problems.push("pipeline.max_queued_alerts and pipeline.max_queued_bytes must be > 0");
        }
        if self.pipeline.max_batch_alerts == 0 {
            problems.push("pipeline.max_batch_alerts must be > 0");
        }
        if self.pipeline.tick_interval.is_zero() {
            problems.push("pipeline.tick_interval must be > 0");
        }
        if self.incidents.metrics_window.is_zero() {
            problems.push("incidents.metrics_window must be > 0");
        }
        if self.http.header_timeout.is_zero()
            || self.http.body_timeout.is_zero()
            || self.http.idle_timeout.is_zero()
        {
            problems.push("http timeouts must be > 0");
        }
        if self.http.max_connections == 0 {
            problems.push("http.max_connections must be > 0");
        }
        let kafka_problems = self
            .kafka
            .as_ref()
            .map(KafkaConfig::problems)
            .unwrap_or_default();
        problems.extend(kafka_problems.iter().map(String::as_str));
        let smtp_problems = self
            .smtp
            .as_ref()
            .map(SmtpConfig::problems)
            .unwrap_or_default();
        problems.extend(smtp_problems.iter().map(String::as_str));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems.join("; ")))
        }
    }
}

/// Durations as humantime strings (`90s`, `15m`, `4h`, `7d`).
pub mod duration {
    use super::*;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {s:?}: {e} (examples: 30s, 15m, 4h, 7d)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_embedded_default() {
        let c = Config::default();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9095");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        c.validate().expect("defaults are valid");
    }

    #[test]
    fn file_overrides_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.yaml");
        std::fs::write(
            &path,
            "listen: 0.0.0.0:1234\nincidents:\n  close_after: 10m\n",
        )
        .expect("write");
        let c = Config::from_file(&path).expect("valid");
        assert_eq!(c.listen.port(), 1234);
        assert_eq!(c.incidents.close_after, Duration::from_secs(600));
        std::fs::write(&path, "listen: 0.0.0.0:1234\nlisten_port: 3\n").expect("write");
        let e = Config::from_file(&path).unwrap_err().to_string();
        assert!(
            e.contains("unknown field `listen_port`") && e.contains("line 2"),
            "{e}"
        );
        std::fs::write(&path, "incidents:\n  close_after: soon\n").expect("write");
        let e = Config::from_file(&path).unwrap_err().to_string();
        assert!(e.contains("invalid duration \"soon\""), "{e}");
    }

    #[test]
    fn kafka_section_parses_and_reports_every_problem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.yaml");
        std::fs::write(
            &path,
            "kafka:\n  brokers: k1:9092,k2:9092\n  topics: [alerts, pd]\n  formats:\n    pd: pagerduty_v2\n  dead_letter_topic: alerts-dlq\n  commit_interval: 500ms\n  options:\n    security.protocol: SASL_SSL\n",
        )
        .expect("write");
        let c = Config::from_file(&path).expect("valid");
        c.validate().expect("valid");
        let k = c.kafka.expect("kafka section");
        assert_eq!(k.group, "incidentd");
        assert_eq!(k.format_of("pd"), KafkaFormat::PagerdutyV2);
        assert_eq!(k.format_of("alerts"), KafkaFormat::Auto);
        assert_eq!(k.commit_interval, Duration::from_millis(500));

        std::fs::write(&path, "kafka:\n  brokers: k\n  topic: [a]\n").expect("write");
        let e = Config::from_file(&path).unwrap_err().to_string();
        assert!(e.contains("unknown field `topic`"), "{e}");

        // Every problem of a config file, as one message.
        let problems = |yaml: &str| {
            std::fs::write(&path, yaml).expect("write");
            Config::from_file(&path)
                .expect("parses")
                .validate()
                .unwrap_err()
                .to_string()
        };
        let e = problems(
            "kafka:\n  topics: [a]\n  formats:\n    b: generic\n  dead_letter_topic: a\n  options:\n    enable.auto.commit: 'true'\n",
        );
        for want in [
            "kafka.brokers must be set",
            "kafka.formats.b",
            "kafka.dead_letter_topic \"a\" is also consumed",
            "kafka.options.enable.auto.commit cannot be set",
        ] {
            assert!(e.contains(want), "{want:?} missing in {e}");
        }
        let e = problems("kafka:\n  brokers: k\n  topics: [a, a-changelog]\n  changelog: true\n");
        for want in [
            "kafka.changelog needs kafka.instance",
            "\"a-changelog\" is the changelog of \"a\"",
        ] {
            assert!(e.contains(want), "{want:?} missing in {e}");
        }
        let e = problems("kafka:\n  brokers: k\n  topics: [a]\n  instance: 100\n");
        assert!(
            e.contains("kafka.instance must be between 0 and 99, got 100"),
            "{e}"
        );
        std::fs::write(
            &path,
            "kafka:\n  brokers: k\n  topics: [a]\n  changelog: true\n  instance: 7\n",
        )
        .expect("write");
        let k = Config::from_file(&path)
            .expect("valid")
            .kafka
            .expect("kafka");
        assert!(k.changelog);
        assert_eq!(k.instance, Some(7));
        assert_eq!(changelog_topic("a"), "a-changelog");
    }
}
