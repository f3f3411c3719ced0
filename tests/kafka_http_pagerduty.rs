//! `POST /v2/enqueue` (PagerDuty Events API v2) on the real server, on an
//! ephemeral port with a temp data dir: trigger, acknowledge and resolve as
//! a PagerDuty client sends them.

use std::path::PathBuf;
use std::time::Duration;

use incidentd::config::Config;
use incidentd::server::{RulesSource, Server};
use serde_json::{json, Value};
use tokio::sync::oneshot;

struct Daemon {
    base: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    http: reqwest::Client,
}

impl Daemon {
    async fn start(data: &std::path::Path) -> Daemon {
        let mut config = Config {
            data_dir: data.to_path_buf(),
            ..Config::default()
        };
        config.pipeline.tick_interval = Duration::from_millis(100);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let rules = RulesSource::Dir(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/rules")));
        let server = Server::start(config, rules, listener)
            .await
            .expect("server starts");
        let addr = server.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(async {
                    let _ = rx.await;
                })
                .await
                .expect("server runs");
        });
        Daemon {
            base: format!("http://{addr}"),
            stop: Some(tx),
            task,
            http: reqwest::Client::new(),
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.expect("server task");
    }

    async fn enqueue(&self, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/v2/enqueue", self.base))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get_json(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), 200, "GET {path}");
        r.json().await.expect("json")
    }

    async fn metric(&self, line_start: &str) -> f64 {
        let r = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("request");
        let text = r.text().await.expect("body");
        text.lines()
            .find_map(|l| l.strip_prefix(line_start))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no metric line {line_start:?} in\n{text}"))
    }
}

fn trigger(dedup_key: &str, summary: &str) -> Value {
    json!({
        "routing_key": "R0123456789abcdef0123456789abcd",
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "client": "Sample Monitoring Service",
        "payload": {
            "summary": summary,
            "source": "db1.example.com",
            "severity": "critical",
            "component": "postgres",
            "group": "prod-datapipe",
            "class": "disk",
            "custom_details": {"free space": "1%", "ping time": 1500}
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_events_open_and_resolve_an_incident() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Daemon::start(dir.path()).await;

    let (status, body) = d.enqueue(trigger("disk-db1", "Disk full on db1")).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body,
        json!({"status": "success", "message": "Event processed", "dedup_key": "disk-db1"})
    );
    let list = d.get_json("/api/v1/incidents").await;
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 1, "{list:?}");
    let inc = &list[0];
    assert_eq!(inc["labels"]["alertname"], "Disk full on db1");
    assert_eq!(inc["labels"]["severity"], "critical");
    assert_eq!(inc["firing_count"], 1);
    let id = inc["id"].as_str().expect("id").to_string();
    let full = d.get_json(&format!("/api/v1/incidents/{id}")).await;
    let alert = &full["alerts"][0];
    assert_eq!(alert["labels"]["source"], "db1.example.com");
    assert_eq!(alert["labels"]["class"], "disk");
    assert_eq!(alert["labels"]["dedup_key"], "disk-db1");
    assert!(alert["labels"].get("routing_key").is_none());
    assert_eq!(alert["annotations"]["free space"], "1%");
    assert_eq!(alert["annotations"]["ping time"], "1500");

    // A repeat with a new summary is the same alert (PagerDuty dedups by key).
    let (status, _) = d
        .enqueue(trigger("disk-db1", "Disk still full on db1"))
        .await;
    assert_eq!(status, 202);
    assert_eq!(d.metric("incidentd_alerts_deduplicated_total ").await, 1.0);

    // Acknowledge is accepted and changes nothing (incidentd acks itself).
    let (status, body) = d
        .enqueue(json!({"routing_key": "R0123456789abcdef0123456789abcd",
            "event_action": "acknowledge", "dedup_key": "disk-db1"}))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["dedup_key"], "disk-db1");
    let inc = d.get_json(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(inc["status"], "open");
    assert_eq!(inc["firing_count"], 1);

    // Resolve carries only the key, and resolves the alert it names.
    let (status, _) = d
        .enqueue(json!({"routing_key": "R0123456789abcdef0123456789abcd",
            "event_action": "resolve", "dedup_key": "disk-db1"}))
        .await;
    assert_eq!(status, 202);
    let inc = d.get_json(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(inc["firing_count"], 0, "{inc}");
    assert_eq!(
        d.metric("incidentd_alerts_received_total{source=\"pagerduty\"} ")
            .await,
        3.0
    );

    // A trigger without dedup_key gets one back, and the same one next time.
    let mut t = trigger("", "Replication lag on db2");
    t.as_object_mut().expect("object").remove("dedup_key");
    let (status, first) = d.enqueue(t.clone()).await;
    assert_eq!(status, 202);
    let (_, second) = d.enqueue(t).await;
    let key = first["dedup_key"].as_str().expect("dedup_key");
    assert_eq!(key.len(), 16, "{first}");
    assert_eq!(first["dedup_key"], second["dedup_key"]);

    // Bad events are 400 with the field named, and store nothing.
    let (status, body) = d
        .enqueue(json!({"routing_key": "R", "event_action": "resolve"}))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("dedup_key: required"),
        "{body}"
    );
    let (status, body) = d
        .enqueue(json!({"routing_key": "R", "event_action": "trigger",
            "payload": {"summary": "s", "source": "h", "severity": "sev1"}}))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("payload.severity"),
        "{body}"
    );
    assert_eq!(
        d.metric("incidentd_requests_rejected_total{reason=\"invalid\",source=\"pagerduty\"} ")
            .await,
        2.0
    );
    d.stop().await;
}
