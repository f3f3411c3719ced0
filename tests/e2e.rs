//! End-to-end tests: the real `incidentd` binary next to real Alertmanager,
//! Prometheus and promtool processes, all on ephemeral loopback ports with
//! their data in temporary directories.
//!
//! The external binaries (`prometheus`, `prometheus-alertmanager`,
//! `promtool`) must be on `PATH`; `scripts/test` installs them. A missing
//! binary fails the test with a message saying so — these tests never skip.
//!
//! Every child process is owned by a [`Proc`] guard that kills and reaps it
//! on drop, so nothing leaks even when an assertion panics. Each child's
//! stdout and stderr go to a log file in the test's temp dir; failure
//! messages include the tail of every log.

mod common;

use common::procs::{self, logs, Proc};
use common::tools::{free_port, http_client as client, require_binary};
use std::fs::File;
use std::future::Future;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};
use tempfile::TempDir;

/// Upper bound for any awaited state; the tests normally need a few seconds.
const DEADLINE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// [`procs::wait_for`] with this file's [`DEADLINE`].
async fn wait_for<T, F, Fut>(what: &str, procs: &[&Proc], check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    procs::wait_for(what, procs, DEADLINE, check).await
}

/// Fails with the message and every process's log.
#[track_caller]
fn fail(msg: String, procs: &[&Proc]) -> ! {
    panic!("{msg}\n{}", logs(procs))
}

/// Asserts a JSON field's value, printing the whole object and the logs on failure.
#[track_caller]
fn expect_field(obj: &Value, field: &str, want: Value, procs: &[&Proc]) {
    if obj[field] != want {
        fail(
            format!(
                "field `{field}`: expected {want}, got {}\nobject: {}",
                obj[field],
                serde_json::to_string_pretty(obj).unwrap_or_default()
            ),
            procs,
        );
    }
}

fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

// ---------------------------------------------------------------------------
// incidentd
// ---------------------------------------------------------------------------

/// A running `incidentd serve` with the shipped rules.
struct Incidentd {
    proc: Proc,
    base: String,
    port: u16,
}

impl Incidentd {
    /// Starts the daemon on a fresh port with its database in `data_dir`;
    /// the log goes to `<log_dir>/<name>.log`. Returns once `/-/ready` is OK.
    async fn start(name: &str, data_dir: &Path, log_dir: &Path) -> Incidentd {
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        Incidentd::start_with_rules(name, data_dir, log_dir, &rules).await
    }

    async fn start_with_rules(
        name: &str,
        data_dir: &Path,
        log_dir: &Path,
        rules: &Path,
    ) -> Incidentd {
        Incidentd::start_with_args(name, data_dir, log_dir, rules, &[]).await
    }

    /// Like [`Incidentd::start_with_rules`], with more `serve` arguments;
    /// `/-/ready` must stay open (no `auth.protect_metrics`).
    async fn start_with_args(
        name: &str,
        data_dir: &Path,
        log_dir: &Path,
        rules: &Path,
        args: &[&str],
    ) -> Incidentd {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_incidentd"));
        cmd.arg("serve")
            .args(args)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--rules")
            .arg(rules)
            .current_dir(log_dir)
            .env_remove("INCIDENTD_CONFIG")
            .env_remove("INCIDENTD_LISTEN")
            .env_remove("INCIDENTD_DATA_DIR")
            .env_remove("INCIDENTD_RULES")
            .env("INCIDENTD_LOG", "info")
            .env("NO_COLOR", "1");
        let d = Incidentd {
            proc: Proc::spawn(name, cmd, log_dir),
            base: format!("http://127.0.0.1:{port}"),
            port,
        };
        d.wait_ready().await;
        d
    }

    async fn wait_ready(&self) {
        let c = client();
        let url = self.url("/-/ready");
        wait_for("incidentd /-/ready", &[&self.proc], || {
            let (c, url) = (c.clone(), url.clone());
            async move {
                match c.get(&url).send().await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("HTTP {}", r.status())),
                    Err(e) => Err(e.to_string()),
                }
            }
        })
        .await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// GET and decode JSON; `Err` carries a description for polling.
async fn get_json(c: &reqwest::Client, url: &str) -> Result<Value, String> {
    let r = c
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = r.status();
    let text = r
        .text()
        .await
        .map_err(|e| format!("GET {url}: reading body: {e}"))?;
    if !status.is_success() {
        return Err(format!("GET {url}: HTTP {status}: {text}"));
    }
    serde_json::from_str(&text).map_err(|e| format!("GET {url}: not JSON ({e}): {text}"))
}

/// POST JSON, require 2xx, return the decoded answer.
async fn post_json(c: &reqwest::Client, url: &str, body: &Value, procs: &[&Proc]) -> Value {
    let r = match c.post(url).json(body).send().await {
        Ok(r) => r,
        Err(e) => fail(format!("POST {url}: {e}"), procs),
    };
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    if !status.is_success() {
        fail(
            format!("POST {url}: HTTP {status}: {text}\nrequest body: {body}"),
            procs,
        );
    }
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// Every incident whose common labels carry `alertname`.
async fn incidents_named(
    c: &reqwest::Client,
    d: &Incidentd,
    alertname: &str,
) -> Result<Vec<Value>, String> {
    let list = get_json(c, &d.url("/api/v1/incidents?limit=1000")).await?;
    let arr = list
        .as_array()
        .ok_or_else(|| format!("/api/v1/incidents is not an array: {list}"))?;
    Ok(arr
        .iter()
        .filter(|i| i["labels"]["alertname"] == alertname)
        .cloned()
        .collect())
}

// ---------------------------------------------------------------------------
// (a) Alertmanager → webhook → incidentd
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn alertmanager_webhook_creates_incident() {
    let am_bin = require_binary("prometheus-alertmanager", "prometheus-alertmanager");
    let tmp = TempDir::new().expect("tempdir");
    let data = tmp.path().join("incidentd-data");
    let am_data = tmp.path().join("alertmanager-data");
    std::fs::create_dir_all(&am_data).expect("mkdir");
    let inc = Incidentd::start("incidentd", &data, tmp.path()).await;

    let am_port = free_port();
    let am_config = tmp.path().join("alertmanager.yml");
    std::fs::write(
        &am_config,
        format!(
            r#"route:
  receiver: incidentd
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: incidentd
    webhook_configs:
      - url: http://127.0.0.1:{}/api/v1/webhook/alertmanager
        send_resolved: true
"#,
            inc.port
        ),
    )
    .expect("write alertmanager.yml");
    let mut cmd = Command::new(&am_bin);
    cmd.arg(format!("--config.file={}", am_config.display()))
        .arg(format!("--storage.path={}", am_data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
        .arg("--cluster.listen-address=")
        .arg("--log.level=debug")
        .current_dir(tmp.path());
    let am = Proc::spawn("alertmanager", cmd, tmp.path());
    let procs = [&inc.proc, &am];
    let am_base = format!("http://127.0.0.1:{am_port}");
    let c = client();

    wait_for("Alertmanager /-/ready", &procs, || {
        let (c, url) = (c.clone(), format!("{am_base}/-/ready"));
        async move {
            match c.get(&url).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("HTTP {}", r.status())),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await;

    let starts = rfc3339(Utc::now() - chrono::Duration::minutes(5));
    let alert = |pod: &str, ends_at: Option<String>| {
        let mut a = json!({
            "labels": {
                "alertname": "KubePodCrashLooping",
                "namespace": "shop",
                "pod": pod,
                "severity": "critical",
                "env": "prod",
            },
            "annotations": {"summary": format!("pod shop/{pod} is crash looping")},
            "startsAt": starts,
            "generatorURL": "http://prometheus.example/graph?g0.expr=up",
        });
        if let Some(e) = ends_at {
            a["endsAt"] = json!(e);
        }
        a
    };
    post_json(
        &c,
        &format!("{am_base}/api/v2/alerts"),
        &json!([
            alert("checkout-7d9f-abcde", None),
            alert("checkout-7d9f-fghij", None)
        ]),
        &procs,
    )
    .await;

    // Both pods' alerts correlate into one kube-workload incident. With the
    // shipped rules: env="prod" → impact medium, severity="critical" →
    // urgency high, matrix[medium][high] = P2; `.*Crash.*` / `Kube.*` →
    // category software.
    let incident = wait_for(
        "one incident with 2 alerts from the Alertmanager webhook",
        &procs,
        || {
            let c = c.clone();
            let inc = &inc;
            async move {
                let list = incidents_named(&c, inc, "KubePodCrashLooping").await?;
                match list.as_slice() {
                    [one] if one["alert_count"] == 2 => Ok(one.clone()),
                    _ => Err(format!("incidents so far: {}", Value::Array(list))),
                }
            }
        },
    )
    .await;
    let all = get_json(&c, &inc.url("/api/v1/incidents"))
        .await
        .unwrap_or_else(|e| fail(e, &procs));
    if all.as_array().map(Vec::len) != Some(1) {
        fail(
            format!("expected exactly one incident in total, got {all}"),
            &procs,
        );
    }
    for (field, want) in [
        ("rule", json!("kube-workload")),
        ("status", json!("open")),
        ("priority", json!("P2")),
        ("impact", json!("medium")),
        ("urgency", json!("high")),
        ("category", json!("software")),
        ("alert_count", json!(2)),
        ("firing_count", json!(2)),
        ("title", json!("KubePodCrashLooping in namespace shop")),
    ] {
        expect_field(&incident, field, want, &procs);
    }
    let id = incident["id"]
        .as_str()
        .expect("incident id is a string")
        .to_string();
    let full = get_json(&c, &inc.url(&format!("/api/v1/incidents/{id}")))
        .await
        .unwrap_or_else(|e| fail(e, &procs));
    let sources: Vec<&Value> = full["alerts"]
        .as_array()
        .map(|a| a.iter().map(|x| &x["source"]).collect())
        .unwrap_or_default();
    if sources.len() != 2 || sources.iter().any(|s| **s != "alertmanager_webhook") {
        fail(
            format!("expected 2 alerts with source alertmanager_webhook, got {full}"),
            &procs,
        );
    }

    // Resolve both alerts in Alertmanager; it sends a resolved notification.
    let ended = rfc3339(Utc::now() - chrono::Duration::seconds(1));
    post_json(
        &c,
        &format!("{am_base}/api/v2/alerts"),
        &json!([
            alert("checkout-7d9f-abcde", Some(ended.clone())),
            alert("checkout-7d9f-fghij", Some(ended))
        ]),
        &procs,
    )
    .await;
    let resolved = wait_for(
        "the incident to be resolved by Alertmanager's resolved notification",
        &procs,
        || {
            let (c, url) = (c.clone(), inc.url(&format!("/api/v1/incidents/{id}")));
            async move {
                let i = get_json(&c, &url).await?;
                if i["status"] == "resolved" {
                    Ok(i)
                } else {
                    Err(format!(
                        "status {}, firing_count {}",
                        i["status"], i["firing_count"]
                    ))
                }
            }
        },
    )
    .await;
    expect_field(&resolved, "firing_count", json!(0), &procs);
    expect_field(&resolved, "alert_count", json!(2), &procs);
    if resolved["resolved_at"].as_str().unwrap_or("").is_empty() {
        fail(
            format!("resolved incident has no resolved_at: {resolved}"),
            &procs,
        );
    }
}

// ---------------------------------------------------------------------------
// (b) Prometheus posting straight to incidentd as its Alertmanager
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_uses_incidentd_as_alertmanager() {
    let prom_bin = require_binary("prometheus", "prometheus");
    let tmp = TempDir::new().expect("tempdir");
    let data = tmp.path().join("incidentd-data");
    let tsdb = tmp.path().join("prometheus-data");
    let inc = Incidentd::start("incidentd", &data, tmp.path()).await;

    // No classify rule matches this name and no impact rule its labels:
    // per-alertname rule, category other, impact low (default) × urgency
    // high (severity critical) = P3.
    let alertname = "E2ECheckoutAlwaysOn";
    let rules = tmp.path().join("alerts.yml");
    std::fs::write(
        &rules,
        format!(
            r#"groups:
  - name: e2e
    rules:
      - alert: {alertname}
        expr: vector(1)
        for: 0s
        labels:
          severity: critical
          service: checkout
        annotations:
          summary: always firing, for the end-to-end test
"#
        ),
    )
    .expect("write alerts.yml");
    let prom_port = free_port();
    let config = tmp.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            r#"global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {}
alerting:
  alertmanagers:
    - api_version: v2
      static_configs:
        - targets: ["127.0.0.1:{}"]
"#,
            rules.display(),
            inc.port
        ),
    )
    .expect("write prometheus.yml");
    let mut cmd = Command::new(&prom_bin);
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", tsdb.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        // Resend firing alerts every second instead of every minute.
        .arg("--rules.alert.resend-delay=1s")
        .current_dir(tmp.path());
    let prom = Proc::spawn("prometheus", cmd, tmp.path());
    let procs = [&inc.proc, &prom];
    let c = client();

    let incident = wait_for(
        &format!("an incident for {alertname} from Prometheus"),
        &procs,
        || {
            let c = c.clone();
            let inc = &inc;
            async move {
                let list = incidents_named(&c, inc, alertname).await?;
                list.into_iter()
                    .next()
                    .ok_or_else(|| "no incident yet".to_string())
            }
        },
    )
    .await;
    for (field, want) in [
        ("rule", json!("per-alertname")),
        ("status", json!("open")),
        ("priority", json!("P3")),
        ("impact", json!("low")),
        ("urgency", json!("high")),
        ("category", json!("other")),
        ("alert_count", json!(1)),
    ] {
        expect_field(&incident, field, want, &procs);
    }
    if incident["labels"]["service"] != "checkout" || incident["labels"]["severity"] != "critical" {
        fail(
            format!("incident labels lack the rule's labels: {incident}"),
            &procs,
        );
    }
    let id = incident["id"]
        .as_str()
        .expect("incident id is a string")
        .to_string();
    let url = inc.url(&format!("/api/v1/incidents/{id}"));

    // Prometheus keeps resending the firing alert: every resend must be
    // deduplicated into the same alert of the same incident.
    let full = wait_for(
        "Prometheus resends to be deduplicated (repeat_count >= 2)",
        &procs,
        || {
            let (c, url) = (c.clone(), url.clone());
            async move {
                let i = get_json(&c, &url).await?;
                let repeats = i["alerts"][0]["repeat_count"].as_u64().unwrap_or(0);
                if repeats >= 2 {
                    Ok(i)
                } else {
                    Err(format!("repeat_count {repeats}: {i}"))
                }
            }
        },
    )
    .await;
    let alerts = full["alerts"].as_array().cloned().unwrap_or_default();
    if alerts.len() != 1 {
        fail(
            format!("expected exactly one alert in the incident, got {full}"),
            &procs,
        );
    }
    let a = &alerts[0];
    expect_field(a, "source", json!("alertmanager_api"), &procs);
    expect_field(a, "status", json!("firing"), &procs);
    if a["generator_url"].as_str().unwrap_or("").is_empty() {
        fail(format!("alert has no generator_url: {a}"), &procs);
    }
    if a["labels"]["alertname"] != alertname {
        fail(format!("alert labels: {a}"), &procs);
    }
    let list = incidents_named(&c, &inc, alertname)
        .await
        .unwrap_or_else(|e| fail(e, &procs));
    if list.len() != 1 {
        fail(
            format!(
                "expected one incident for {alertname} after resends, got {}",
                Value::Array(list)
            ),
            &procs,
        );
    }
    expect_field(&list[0], "id", json!(id), &procs);
    expect_field(&list[0], "alert_count", json!(1), &procs);
    expect_field(&list[0], "status", json!("open"), &procs);
}

// ---------------------------------------------------------------------------
// (c) /metrics passes promtool
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn metrics_pass_promtool() {
    let promtool = require_binary("promtool", "prometheus");
    let tmp = TempDir::new().expect("tempdir");
    let data = tmp.path().join("incidentd-data");
    let inc = Incidentd::start("incidentd", &data, tmp.path()).await;
    let procs = [&inc.proc];
    let c = client();

    let answer = post_json(
        &c,
        &inc.url("/api/v2/alerts"),
        &json!([{
            "labels": {"alertname": "E2EMetricsProbe", "severity": "critical", "env": "prod", "service": "metrics"},
            "annotations": {"summary": "metrics test"},
            "generatorURL": "http://prometheus.example/graph",
        }]),
        &procs,
    )
    .await;
    let id = answer["created"][0]
        .as_str()
        .unwrap_or_else(|| {
            fail(
                format!("ingest answer names no created incident: {answer}"),
                &procs,
            )
        })
        .to_string();
    let acked = post_json(
        &c,
        &inc.url(&format!("/api/v1/incidents/{id}/ack")),
        &json!({"by": "alice"}),
        &procs,
    )
    .await;
    expect_field(&acked, "status", json!("acknowledged"), &procs);
    expect_field(&acked, "acknowledged_by", json!("alice"), &procs);
    // impact medium (env=prod) × urgency high (severity=critical).
    expect_field(&acked, "priority", json!("P2"), &procs);

    let r = c
        .get(inc.url("/metrics"))
        .send()
        .await
        .unwrap_or_else(|e| fail(format!("GET /metrics: {e}"), &procs));
    if !r.status().is_success() {
        fail(format!("GET /metrics: HTTP {}", r.status()), &procs);
    }
    let text = r.text().await.expect("metrics body");
    let file = tmp.path().join("metrics.txt");
    std::fs::write(&file, &text).expect("write metrics.txt");

    let out = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(File::open(&file).expect("open metrics.txt"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", promtool.display()));
    if !out.status.success() {
        fail(
            format!(
                "`promtool check metrics` failed ({})\nstdout:\n{}\nstderr:\n{}\nmetrics:\n{text}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            &procs,
        );
    }
    for needle in [
        "incidentd_incidents_open{priority=\"P1\"}",
        "incidentd_incidents_open{priority=\"P2\"} 1",
        "incidentd_alerts_received_total",
        "incidentd_alerts_received_total{source=\"alertmanager_api\"} 1",
        "incidentd_incident_acknowledge_duration_seconds_bucket",
        "incidentd_incident_acknowledge_duration_seconds_count{priority=\"P2\"} 1",
        "incidentd_mtta_seconds",
        "incidentd_mtta_seconds{priority=\"P2\"}",
    ] {
        if !text.contains(needle) {
            fail(format!("/metrics lacks `{needle}`:\n{text}"), &procs);
        }
    }
}

// ---------------------------------------------------------------------------
// (d) SIGTERM drains; a restart keeps incidents and correlation state
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_and_restart_keeps_incidents() {
    let tmp = TempDir::new().expect("tempdir");
    let data = tmp.path().join("incidentd-data");
    let c = client();
    let alert = json!([{
        "labels": {"alertname": "E2ERestartProbe", "severity": "warning", "service": "billing", "instance": "billing-1:9100"},
        "annotations": {"summary": "restart test"},
        "startsAt": rfc3339(Utc::now() - chrono::Duration::minutes(1)),
    }]);

    let first = Incidentd::start("incidentd-1", &data, tmp.path()).await;
    let answer = post_json(&c, &first.url("/api/v2/alerts"), &alert, &[&first.proc]).await;
    let id = answer["created"][0]
        .as_str()
        .unwrap_or_else(|| {
            fail(
                format!("ingest answer names no created incident: {answer}"),
                &[&first.proc],
            )
        })
        .to_string();
    let before = get_json(&c, &first.url(&format!("/api/v1/incidents/{id}")))
        .await
        .unwrap_or_else(|e| fail(e, &[&first.proc]));

    first.proc.sigterm();
    let status = first.proc.wait_exit(Duration::from_secs(30)).await;
    if !status.success() {
        fail(
            format!("incidentd exited with {status} after SIGTERM; expected 0"),
            &[&first.proc],
        );
    }
    let first_log = first.proc.log_tail();
    drop(first);

    let second = Incidentd::start("incidentd-2", &data, tmp.path()).await;
    let procs = [&second.proc];
    let after = get_json(&c, &second.url(&format!("/api/v1/incidents/{id}")))
        .await
        .unwrap_or_else(|e| fail(format!("{e}\nfirst run:\n{first_log}"), &procs));
    for field in [
        "id",
        "title",
        "status",
        "priority",
        "rule",
        "group_key",
        "created_at",
        "alert_count",
    ] {
        expect_field(&after, field, before[field].clone(), &procs);
    }
    expect_field(&after, "status", json!("open"), &procs);

    // The same alert again: the restored fingerprint index deduplicates it.
    let again = post_json(&c, &second.url("/api/v2/alerts"), &alert, &procs).await;
    expect_field(&again, "deduplicated", json!(1), &procs);
    expect_field(&again, "created", json!([]), &procs);
    let full = get_json(&c, &second.url(&format!("/api/v1/incidents/{id}")))
        .await
        .unwrap_or_else(|e| fail(e, &procs));
    expect_field(&full, "alert_count", json!(1), &procs);
    expect_field(&full, "firing_count", json!(1), &procs);
    let alerts = full["alerts"].as_array().cloned().unwrap_or_default();
    if alerts.len() != 1 {
        fail(format!("expected one alert, got {full}"), &procs);
    }
    expect_field(&alerts[0], "repeat_count", json!(1), &procs);
    let list = get_json(&c, &second.url("/api/v1/incidents"))
        .await
        .unwrap_or_else(|e| fail(e, &procs));
    if list.as_array().map(Vec::len) != Some(1) || list[0]["id"] != id.as_str() {
        fail(
            format!("expected exactly incident {id}, got {list}"),
            &procs,
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_rules_and_keeps_old_ones_on_error() {
    let tmp = TempDir::new().expect("tempdir");
    let rules = tmp.path().join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    let file = rules.join("r.yaml");
    std::fs::write(
        &file,
        "classify:\n  - match: ['alertname=\"A\"']\n    category: network\n",
    )
    .expect("write");
    let d = Incidentd::start_with_rules(
        "incidentd-hup",
        &tmp.path().join("data"),
        tmp.path(),
        &rules,
    )
    .await;
    let c = client();
    let procs = [&d.proc];
    let post = |name: &str| json!([{"labels": {"alertname": name}}]);
    let category = |answer: Value| {
        let c = c.clone();
        let base = d.base.clone();
        async move {
            let id = answer["created"][0]
                .as_str()
                .or(answer["updated"][0].as_str())
                .unwrap_or_default()
                .to_string();
            get_json(&c, &format!("{base}/api/v1/incidents/{id}"))
                .await
                .map(|i| i["category"].clone())
        }
    };
    let a = post_json(&c, &d.url("/api/v2/alerts"), &post("A"), &procs).await;
    assert_eq!(
        category(a).await.unwrap_or_else(|e| fail(e, &procs)),
        json!("network")
    );

    std::fs::write(
        &file,
        "classify:\n  - match: ['alertname=~\"A|B\"']\n    category: security\n",
    )
    .expect("write");
    d.proc.signal("HUP");
    wait_for("the reload to be logged", &procs, || {
        let log = d.proc.log_text();
        async move {
            if log.contains("rules reloaded") {
                Ok(())
            } else {
                Err("not yet".to_string())
            }
        }
    })
    .await;
    let b = post_json(&c, &d.url("/api/v2/alerts"), &post("B"), &procs).await;
    assert_eq!(
        category(b).await.unwrap_or_else(|e| fail(e, &procs)),
        json!("security")
    );

    // A broken file: the error is logged with its position, the old rules keep serving.
    std::fs::write(
        &file,
        "classify:\n  - match: ['alertname=~\"(\"']\n    category: security\n",
    )
    .expect("write");
    d.proc.signal("HUP");
    wait_for("the failed reload to be logged", &procs, || {
        let log = d.proc.log_text();
        async move {
            if log.contains("SIGHUP reload failed") && log.contains("r.yaml:2:") {
                Ok(())
            } else {
                Err("not yet".to_string())
            }
        }
    })
    .await;
    let b2 = post_json(
        &c,
        &d.url("/api/v2/alerts"),
        &json!([{"labels": {"alertname": "B", "n": "2"}}]),
        &procs,
    )
    .await;
    let b2_answer = b2.to_string();
    assert_eq!(
        category(b2)
            .await
            .unwrap_or_else(|e| fail(format!("{e} (ingest answered {b2_answer})"), &procs)),
        json!("security")
    );
    assert!(d.proc.exited().is_none(), "the daemon keeps running");
}

// ---------------------------------------------------------------------------
// (f) The real senders with an ingest token
// ---------------------------------------------------------------------------

/// Alertmanager and Prometheus configured with incidentd's `ingest` token
/// deliver their alerts; the same configuration without the token gets 401
/// and stores nothing. Alertmanager sends the token as a bearer token,
/// Prometheus as a basic-auth password; both send `Content-Type:
/// application/json`, which the daemon requires of JSON bodies.
#[tokio::test(flavor = "multi_thread")]
async fn alertmanager_and_prometheus_deliver_with_the_ingest_token_and_not_without() {
    let am_bin = require_binary("prometheus-alertmanager", "prometheus-alertmanager");
    let prom_bin = require_binary("prometheus", "prometheus");
    let tmp = TempDir::new().expect("tempdir");
    let ingest = "s-ingest-e2e-0123456789abcdef";
    let viewer = "s-viewer-e2e-0123456789abcdef";
    let digest = |s: &str| incidentd::http::auth::digest_hex(s);
    let tokens = tmp.path().join("tokens.yaml");
    std::fs::write(
        &tokens,
        format!(
            "tokens:\n  - name: alertmanager-prod\n    role: ingest\n    sha256: {}\n  - name: grafana\n    role: viewer\n    sha256: {}\n",
            digest(ingest),
            digest(viewer)
        ),
    )
    .expect("tokens");
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let inc = Incidentd::start_with_args(
        "incidentd",
        &tmp.path().join("data"),
        tmp.path(),
        &rules,
        &["--auth-tokens", tokens.to_str().expect("utf-8")],
    )
    .await;

    let am_port = free_port();
    let am_config = tmp.path().join("alertmanager.yml");
    std::fs::write(
        &am_config,
        format!(
            r#"route:
  receiver: with-token
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - matchers: ['sender="no-token"']
      receiver: without-token
receivers:
  - name: with-token
    webhook_configs:
      - url: http://127.0.0.1:{port}/api/v1/webhook/alertmanager
        http_config:
          authorization:
            credentials: {ingest}
  - name: without-token
    webhook_configs:
      - url: http://127.0.0.1:{port}/api/v1/webhook/alertmanager
"#,
            port = inc.port
        ),
    )
    .expect("write alertmanager.yml");
    let mut cmd = Command::new(&am_bin);
    cmd.arg(format!("--config.file={}", am_config.display()))
        .arg(format!(
            "--storage.path={}",
            tmp.path().join("am-data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
        .arg("--cluster.listen-address=")
        .current_dir(tmp.path());
    let am = Proc::spawn("alertmanager", cmd, tmp.path());

    let prom_rules = tmp.path().join("alerts.yml");
    std::fs::write(
        &prom_rules,
        r#"groups:
  - name: e2e
    rules:
      - alert: E2EAuthenticatedProm
        expr: vector(1)
        labels: {severity: critical}
"#,
    )
    .expect("write alerts.yml");
    let prom_unauth_rules = tmp.path().join("alerts-unauth.yml");
    std::fs::write(
        &prom_unauth_rules,
        r#"groups:
  - name: e2e
    rules:
      - alert: E2EUnauthenticatedProm
        expr: vector(1)
        labels: {severity: critical}
"#,
    )
    .expect("write alerts-unauth.yml");
    let prometheus = |name: &str, rules: &Path, auth: &str| {
        let config = tmp.path().join(format!("{name}.yml"));
        std::fs::write(
            &config,
            format!(
                r#"global:
  evaluation_interval: 1s
rule_files:
  - {}
alerting:
  alertmanagers:
    - api_version: v2
{auth}      static_configs:
        - targets: ["127.0.0.1:{}"]
"#,
                rules.display(),
                inc.port
            ),
        )
        .expect("write prometheus config");
        let mut cmd = Command::new(&prom_bin);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                tmp.path().join(format!("{name}-tsdb")).display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
            .arg("--rules.alert.resend-delay=1s")
            .current_dir(tmp.path());
        Proc::spawn(name, cmd, tmp.path())
    };
    let prom = prometheus(
        "prometheus",
        &prom_rules,
        &format!("      basic_auth:\n        username: prometheus\n        password: {ingest}\n"),
    );
    let prom_unauth = prometheus("prometheus-no-token", &prom_unauth_rules, "");
    let procs = [&inc.proc, &am, &prom, &prom_unauth];
    let plain = client();
    wait_for("Alertmanager /-/ready", &procs, || {
        let (c, url) = (plain.clone(), format!("http://127.0.0.1:{am_port}/-/ready"));
        async move {
            match c.get(&url).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("HTTP {}", r.status())),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await;
    post_json(
        &plain,
        &format!("http://127.0.0.1:{am_port}/api/v2/alerts"),
        &json!([
            {"labels": {"alertname": "E2EAuthenticatedAm", "severity": "critical"}},
            {"labels": {"alertname": "E2EUnauthenticatedAm", "severity": "critical", "sender": "no-token"}}
        ]),
        &procs,
    )
    .await;

    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {viewer}").parse().expect("header"),
    );
    let reader = reqwest::Client::builder()
        .no_proxy()
        .default_headers(headers)
        .build()
        .expect("client");
    for name in ["E2EAuthenticatedAm", "E2EAuthenticatedProm"] {
        wait_for(&format!("an incident for {name}"), &procs, || {
            let (c, inc) = (reader.clone(), &inc);
            async move {
                let list = incidents_named(&c, inc, name).await?;
                if list.is_empty() {
                    Err("none yet".into())
                } else {
                    Ok(())
                }
            }
        })
        .await;
    }
    // The senders without the token have been refused by now (both retry
    // or resend every second), and nothing of theirs was stored.
    wait_for("both unauthenticated senders refused", &procs, || {
        let c = plain.clone();
        let url = inc.url("/metrics");
        async move {
            let text = c
                .get(&url)
                .send()
                .await
                .map_err(|e| e.to_string())?
                .text()
                .await
                .map_err(|e| e.to_string())?;
            let refused = text
                .lines()
                .find(|l| {
                    l.starts_with("incidentd_http_requests_denied_total{reason=\"no_credentials\"}")
                })
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
            if refused >= 2.0 {
                Ok(())
            } else {
                Err(format!("refused so far: {refused}"))
            }
        }
    })
    .await;
    for name in ["E2EUnauthenticatedAm", "E2EUnauthenticatedProm"] {
        let list = incidents_named(&reader, &inc, name)
            .await
            .unwrap_or_else(|e| fail(e, &procs));
        assert!(list.is_empty(), "{name} stored without a token: {list:?}");
    }
    let unauthorized = plain
        .get(inc.url("/api/v1/incidents"))
        .send()
        .await
        .expect("request");
    assert_eq!(unauthorized.status().as_u16(), 401);
    let log = std::fs::read_to_string(tmp.path().join("incidentd.log")).unwrap_or_default();
    assert!(
        log.contains("request refused") && log.contains("127.0.0.1:"),
        "refusals are logged with the remote address"
    );
    assert!(
        !log.contains(ingest) && !log.contains(viewer),
        "no secret reaches the log"
    );
}
