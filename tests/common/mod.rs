//! Shared harness for integration tests: the real server in-process on an
//! ephemeral port with a temp data dir, and small HTTP helpers; child
//! processes and their logs ([`procs`]); where the real components are
//! ([`tools`]); the real binary and Prometheus as processes, and a webhook
//! sink ([`serve`]).
#![allow(dead_code)]

pub mod browser;
pub mod procs;
pub mod serve;
pub mod tools;

use std::path::{Path, PathBuf};
use std::time::Duration;

use incidentd::config::Config;
use incidentd::daemon::Server;
use incidentd::rules::Source as RulesSource;
use serde_json::{json, Value};
use tokio::sync::oneshot;

pub struct Daemon {
    pub base: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    pub http: reqwest::Client,
}

impl Daemon {
    pub async fn start(data: &Path, rules: RulesSource, tweak: impl FnOnce(&mut Config)) -> Daemon {
        let mut config = Config {
            data_dir: data.to_path_buf(),
            ..Config::default()
        };
        config.pipeline.tick_interval = Duration::from_millis(100);
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
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

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.expect("server task");
    }

    pub async fn post(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
            headers,
        )
    }

    pub async fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, v, _) = self.post(path, body.to_string()).await;
        (s, v)
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let (s, body) = self.get(path).await;
        assert_eq!(s, 200, "GET {path}: {body}");
        serde_json::from_str(&body).expect("json")
    }

    pub async fn incidents(&self) -> Vec<Value> {
        self.get_json("/api/v1/incidents")
            .await
            .as_array()
            .cloned()
            .expect("array")
    }
}

pub fn shipped_rules() -> RulesSource {
    RulesSource::Dir(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/rules")))
}

pub fn v2_alert(name: &str, extra: &[(&str, &str)]) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert("alertname".into(), json!(name));
    for (k, v) in extra {
        labels.insert((*k).into(), json!(v));
    }
    json!({"labels": labels, "annotations": {"summary": format!("{name} fired")}, "generatorURL": "http://prometheus/graph"})
}

/// Polls until `f` is true (bounded); for state that timers change.
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}
