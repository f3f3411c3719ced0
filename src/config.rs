//! Daemon configuration: the embedded defaults, an optional YAML file, and
//! command-line / `INCIDENTD_*` overrides.
//!
//! Input: `--config FILE` (YAML, unknown keys rejected) and flag overrides.
//! Output: one validated [`Config`]. Every field has a default, so `serve`
//! with no file runs. Doc comments on the fields are the user documentation
//! (see the README's configuration section).

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

/// Queueing between the HTTP handlers and the single store writer.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSettings {
    /// Requests waiting for the writer; beyond this, ingest answers 503 with `Retry-After`.
    pub queue_capacity: usize,
    /// Most alerts committed in one write transaction (group commit).
    pub max_batch_alerts: usize,
    /// How often time-driven transitions run (auto-close, SLA breaches, expiry).
    #[serde(with = "duration")]
    pub tick_interval: Duration,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            queue_capacity: 1024,
            max_batch_alerts: 20_000,
            tick_interval: Duration::from_secs(1),
        }
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
        if self.pipeline.max_batch_alerts == 0 {
            problems.push("pipeline.max_batch_alerts must be > 0");
        }
        if self.pipeline.tick_interval.is_zero() {
            problems.push("pipeline.tick_interval must be > 0");
        }
        if self.incidents.metrics_window.is_zero() {
            problems.push("incidents.metrics_window must be > 0");
        }
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
}
