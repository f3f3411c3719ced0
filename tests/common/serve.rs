//! The real `incidentd serve` binary as a child process on a free loopback
//! port, with its data in a given directory, and the real Prometheus next
//! to it; plus a webhook sink that counts what it receives. For the tests
//! of what incidentd ships for the Prometheus world (tests/monitoring.rs,
//! tests/amtool.rs, tests/openapi.rs).
#![allow(dead_code)] // each test file uses a different subset

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::procs::{self, Proc};
use super::tools::{free_port, http_client, require_binary};

/// Upper bound for any awaited state.
pub const DEADLINE: Duration = Duration::from_secs(90);

/// A running `incidentd serve`.
pub struct Serve {
    pub proc: Proc,
    pub base: String,
    pub port: u16,
}

/// A command for the binary without the `INCIDENTD_*` variables that would
/// change what it does.
pub fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_incidentd"));
    cmd.env_remove("INCIDENTD_CONFIG")
        .env_remove("INCIDENTD_LISTEN")
        .env_remove("INCIDENTD_DATA_DIR")
        .env_remove("INCIDENTD_RULES")
        .env_remove("INCIDENTD_AUTH_TOKENS")
        .env_remove("INCIDENTD_URL")
        .env_remove("INCIDENTD_TOKEN")
        .env("INCIDENTD_LOG", "info")
        .env("NO_COLOR", "1");
    cmd
}

impl Serve {
    /// Starts the binary with `--rules rules` and `args`, its database in
    /// `data`, its log in `<dir>/<name>.log`; returns once `/-/ready` is OK.
    pub async fn start(name: &str, dir: &Path, data: &Path, rules: &Path, args: &[&str]) -> Serve {
        let port = free_port();
        let mut cmd = command();
        cmd.arg("serve")
            .args(args)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data)
            .arg("--rules")
            .arg(rules)
            .current_dir(dir);
        let s = Serve {
            proc: Proc::spawn(name, cmd, dir),
            base: format!("http://127.0.0.1:{port}"),
            port,
        };
        let c = http_client();
        let url = s.url("/-/ready");
        procs::wait_for("incidentd /-/ready", &[&s.proc], DEADLINE, || {
            let (c, url) = (c.clone(), url.clone());
            async move {
                match c.get(&url).send().await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("HTTP {}", r.status())),
                    Err(e) => Err(e.to_string()),
                }
            }
        })
        .await;
        s
    }

    /// Like [`Serve::start`] with the shipped rules and `config` (YAML,
    /// may be empty) as the config file `<dir>/<name>.yml`.
    pub async fn configured(name: &str, dir: &Path, data: &Path, config: &str) -> Serve {
        let file = dir.join(format!("{name}.yml"));
        std::fs::write(&file, config).expect("write config");
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let file = file.to_str().expect("utf-8 path").to_string();
        Serve::start(name, dir, data, &rules, &["--config", &file]).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// One sample of `/metrics`: the value of the series named exactly
    /// `series` (with its labels, in the order the exposition has them).
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = http_client()
            .get(self.url("/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// SIGTERM, then requires a clean exit.
    pub async fn stop(self) {
        self.proc.sigterm();
        let status = self.proc.wait_exit(DEADLINE).await;
        assert!(
            status.success(),
            "incidentd exited with {status}\n{}",
            self.proc.log_tail()
        );
    }

    /// POSTs JSON and requires a 2xx; the decoded answer.
    pub async fn post(&self, path: &str, body: &Value) -> Value {
        let r = http_client()
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}\n{}", self.proc.log_tail()));
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "POST {path}: HTTP {status}: {text}\n{}",
            self.proc.log_tail()
        );
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }

    /// GETs JSON and requires a 200.
    pub async fn get(&self, path: &str) -> Value {
        get_json(&self.url(path))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", self.proc.log_tail()))
    }
}

/// GET and decode JSON; `Err` describes what came back.
pub async fn get_json(url: &str) -> Result<Value, String> {
    let r = http_client()
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = r.status();
    let text = r.text().await.map_err(|e| format!("GET {url}: {e}"))?;
    if !status.is_success() {
        return Err(format!("GET {url}: HTTP {status}: {text}"));
    }
    serde_json::from_str(&text).map_err(|e| format!("GET {url}: not JSON ({e}): {text}"))
}

/// A real Prometheus on a free port, its TSDB in `<dir>/prometheus-data`,
/// configured by `config` (prometheus.yml text).
pub struct Prometheus {
    pub proc: Proc,
    pub base: String,
}

impl Prometheus {
    pub async fn start(dir: &Path, config: &str) -> Prometheus {
        let bin = require_binary("prometheus", "prometheus");
        let port = free_port();
        let file = dir.join("prometheus.yml");
        std::fs::write(&file, config).expect("write prometheus.yml");
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prometheus-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .current_dir(dir);
        let p = Prometheus {
            proc: Proc::spawn("prometheus", cmd, dir),
            base: format!("http://127.0.0.1:{port}"),
        };
        let url = format!("{}/-/ready", p.base);
        let c = http_client();
        procs::wait_for("Prometheus /-/ready", &[&p.proc], DEADLINE, || {
            let (c, url) = (c.clone(), url.clone());
            async move {
                match c.get(&url).send().await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("HTTP {}", r.status())),
                    Err(e) => Err(e.to_string()),
                }
            }
        })
        .await;
        p
    }

    /// An instant query's `data.result`, or what went wrong.
    pub async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.base),
            &[("query", expr)],
        )
        .map_err(|e| e.to_string())?;
        let v = get_json(url.as_str()).await?;
        result(v)
    }

    /// A range query over the last `seconds`, one point per `step` seconds.
    pub async fn query_range(
        &self,
        expr: &str,
        seconds: i64,
        step: u32,
    ) -> Result<Vec<Value>, String> {
        let end = chrono::Utc::now().timestamp();
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query_range", self.base),
            &[
                ("query", expr.to_string()),
                ("start", (end - seconds).to_string()),
                ("end", end.to_string()),
                ("step", step.to_string()),
            ],
        )
        .map_err(|e| e.to_string())?;
        let v = get_json(url.as_str()).await?;
        result(v)
    }

    /// The value of a one-series instant query, if there is one.
    pub async fn scalar(&self, expr: &str) -> Option<f64> {
        let r = self.query(expr).await.ok()?;
        r.first()?["value"][1].as_str()?.parse().ok()
    }
}

fn result(v: Value) -> Result<Vec<Value>, String> {
    if v["status"] != "success" {
        return Err(format!("query failed: {v}"));
    }
    v["data"]["result"]
        .as_array()
        .cloned()
        .ok_or_else(|| format!("no result array: {v}"))
}

/// A webhook receiver on a free loopback port that answers 200 and counts
/// the requests it got.
pub struct Sink {
    pub url: String,
    pub received: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Sink {
    pub async fn start() -> Sink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the sink");
        let addr = listener.local_addr().expect("sink address");
        let received = Arc::new(AtomicUsize::new(0));
        let count = received.clone();
        let app = axum::Router::new().fallback(move || {
            let count = count.clone();
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Sink {
            url: format!("http://{addr}/hook"),
            received,
            task,
        }
    }

    pub fn count(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}
