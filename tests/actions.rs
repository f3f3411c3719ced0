//! Actions and escalations end to end: a real HTTP sink server, real
//! scripts, the real daemon in-process.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use common::{eventually, Daemon};
use incidentd::rules::Source as RulesSource;
use serde_json::{json, Value};

/// What the sink does with each request, in order; the last repeats.
#[derive(Clone, Copy)]
enum Reply {
    Status(u16),
    Hang,
}

#[derive(Default)]
struct Seen {
    requests: Vec<(Instant, HeaderMap, String)>,
    hanging: bool,
}

struct Sink {
    url: String,
    seen: Arc<Mutex<Seen>>,
    release: Arc<tokio::sync::Notify>,
}

impl Sink {
    async fn start(script: Vec<Reply>) -> Sink {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let release = Arc::new(tokio::sync::Notify::new());
        let (s, r) = (seen.clone(), release.clone());
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: Bytes| {
                let (seen, release, script) = (s.clone(), r.clone(), script.clone());
                async move {
                    let n = {
                        let mut g = seen.lock().expect("lock");
                        g.requests.push((
                            Instant::now(),
                            headers,
                            String::from_utf8_lossy(&body).into_owned(),
                        ));
                        g.requests.len()
                    };
                    let reply = script
                        .get(n - 1)
                        .or(script.last())
                        .copied()
                        .unwrap_or(Reply::Status(200));
                    match reply {
                        Reply::Status(c) => StatusCode::from_u16(c).unwrap_or(StatusCode::OK),
                        Reply::Hang => {
                            seen.lock().expect("lock").hanging = true;
                            release.notified().await;
                            seen.lock().expect("lock").hanging = false;
                            StatusCode::OK
                        }
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind sink");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Sink {
            url: format!("http://{addr}/hook"),
            seen,
            release,
        }
    }

    fn count(&self) -> usize {
        self.seen.lock().expect("lock").requests.len()
    }

    fn bodies(&self) -> Vec<Value> {
        self.seen
            .lock()
            .expect("lock")
            .requests
            .iter()
            .map(|(_, _, b)| serde_json::from_str(b).unwrap_or(Value::Null))
            .collect()
    }
}

fn rules_dir(yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("rules dir");
    std::fs::write(dir.path().join("rules.yaml"), yaml).expect("write rules");
    dir
}

const PRIORITY: &str = r#"
prioritize:
  urgency:
    - match: ['severity="critical"']
      urgency: high
  impact:
    - match: ['env="prod"']
      impact: high
  default_impact: low
  default_urgency: low
"#;

async fn timeline(d: &Daemon, id: &str) -> Vec<String> {
    d.get_json(&format!("/api/v1/incidents/{id}")).await["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e["kind"].as_str().unwrap_or(""),
                e["message"].as_str().unwrap_or("")
            )
        })
        .collect()
}

async fn post_alert(d: &Daemon, labels: Value) -> String {
    let (s, body) = d
        .post_json("/api/v1/alerts", json!({ "labels": labels }))
        .await;
    assert_eq!(s, 200, "{body}");
    body["created"][0]
        .as_str()
        .or(body["updated"][0].as_str())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_webhook_gets_p1_incidents_and_not_p4() {
    let sink = Sink::start(vec![Reply::Status(200)]).await;
    std::env::set_var("INCIDENTD_TEST_CHAT_TOKEN", "Bearer s3cret-token");
    let rules = rules_dir(&format!(
        "{PRIORITY}actions:\n  - name: chat\n    on: [opened]\n    priority: [P1]\n    webhook:\n      url: {}\n      preset: slack\n      secret_headers: {{Authorization: INCIDENTD_TEST_CHAT_TOKEN}}\n",
        sink.url
    ));
    let data = tempfile::tempdir().expect("data");
    let d = Daemon::start(
        data.path(),
        RulesSource::Dir(rules.path().to_path_buf()),
        |_| {},
    )
    .await;
    let p4 = post_alert(&d, json!({"alertname": "BatchSlow"})).await;
    let p1 = post_alert(
        &d,
        json!({"alertname": "CheckoutDown", "severity": "critical", "env": "prod"}),
    )
    .await;
    eventually("the P1 webhook", || async { sink.count() >= 1 }).await;
    eventually("the attempt on the timeline", || async {
        timeline(&d, &p1)
            .await
            .iter()
            .any(|l| l.starts_with("action:"))
    })
    .await;
    assert_eq!(sink.count(), 1, "only the P1 incident is posted");
    let body = &sink.bodies()[0];
    let text = body["text"].as_str().expect("slack text");
    assert!(
        text.starts_with(&format!("[P1] {p1} CheckoutDown")),
        "{text}"
    );
    assert!(text.contains(&format!("/api/v1/incidents/{p1}")), "{text}");
    let auth = sink.seen.lock().expect("lock").requests[0]
        .1
        .get("authorization")
        .map(|v| v.to_str().unwrap_or("").to_string());
    assert_eq!(auth.as_deref(), Some("Bearer s3cret-token"));
    let tl = timeline(&d, &p1).await;
    assert!(
        tl.iter().any(|l| l.starts_with(
            "action: action chat (webhook) for opened attempt 1/4: success: HTTP 200"
        )),
        "{tl:#?}"
    );
    assert!(timeline(&d, &p4)
        .await
        .iter()
        .all(|l| !l.starts_with("action:")));
    let full = d.get("/api/v1/incidents").await.1 + &d.get("/metrics").await.1;
    assert!(
        !full.contains("s3cret"),
        "secrets never reach the API or metrics"
    );
    let (_, metrics) = d.get("/metrics").await;
    assert!(
        metrics.contains(r#"incidentd_actions_total{action="chat",outcome="success"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"incidentd_action_duration_seconds_count{action="chat"} 1"#));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_sink_gets_retries_with_growing_gaps() {
    let sink = Sink::start(vec![
        Reply::Status(500),
        Reply::Status(500),
        Reply::Status(200),
    ])
    .await;
    let rules = rules_dir(&format!(
        "actions:\n  - name: notify\n    on: [opened]\n    retries: 3\n    backoff: 200ms\n    webhook: {{url: \"{}\"}}\n",
        sink.url
    ));
    let data = tempfile::tempdir().expect("data");
    let d = Daemon::start(
        data.path(),
        RulesSource::Dir(rules.path().to_path_buf()),
        |_| {},
    )
    .await;
    let id = post_alert(&d, json!({"alertname": "Flaky"})).await;
    eventually("three attempts", || async {
        timeline(&d, &id)
            .await
            .iter()
            .any(|l| l.contains("attempt 3/4: success"))
    })
    .await;
    let times: Vec<Instant> = sink
        .seen
        .lock()
        .expect("lock")
        .requests
        .iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(times.len(), 3);
    let (g1, g2) = (times[1] - times[0], times[2] - times[1]);
    assert!(g2 > g1, "gaps grow: {g1:?} then {g2:?}");
    // The default json preset carries the incident.
    assert_eq!(sink.bodies()[0]["incident"]["id"], id.as_str());
    assert_eq!(sink.bodies()[0]["trigger"], "opened");
    let tl = timeline(&d, &id).await;
    assert!(
        tl.iter()
            .any(|l| l.contains("attempt 1/4: failure: HTTP 500") && l.contains("retrying in")),
        "{tl:#?}"
    );
    let (_, metrics) = d.get("/metrics").await;
    assert!(
        metrics.contains(r#"incidentd_actions_total{action="notify",outcome="failure"} 2"#),
        "{metrics}"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_sink_times_out_while_ingest_keeps_flowing() {
    let sink = Sink::start(vec![Reply::Hang]).await;
    let rules = rules_dir(&format!(
        "actions:\n  - name: slow\n    on: [opened]\n    match: ['alertname=\"First\"']\n    retries: 0\n    webhook: {{url: \"{}\", timeout: 2s}}\n",
        sink.url
    ));
    let data = tempfile::tempdir().expect("data");
    let d = Daemon::start(
        data.path(),
        RulesSource::Dir(rules.path().to_path_buf()),
        |_| {},
    )
    .await;
    let id = post_alert(&d, json!({"alertname": "First"})).await;
    eventually("the sink to hang", || async {
        sink.seen.lock().expect("lock").hanging
    })
    .await;
    // While the action hangs, ingest answers as usual.
    for i in 0..20 {
        let (s, _) = d
            .post_json(
                "/api/v1/alerts",
                json!({"labels": {"alertname": "Other", "n": i.to_string()}}),
            )
            .await;
        assert_eq!(s, 200);
    }
    assert!(
        sink.seen.lock().expect("lock").hanging,
        "all of that happened while the sink was hanging"
    );
    eventually("the timeout", || async {
        timeline(&d, &id)
            .await
            .iter()
            .any(|l| l.contains("attempt 1/1: timeout: timed out after 2s"))
    })
    .await;
    sink.release.notify_waiters();
    let (_, metrics) = d.get("/metrics").await;
    assert!(
        metrics.contains(r#"incidentd_actions_total{action="slow",outcome="timeout"} 1"#),
        "{metrics}"
    );
    d.stop().await;
}

fn script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/bash\n{body}\n")).expect("write script");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runbook_gets_env_and_stdin_and_metacharacters_stay_data() {
    let work = tempfile::tempdir().expect("work");
    let w = work.path().display().to_string();
    let sh = script(
        work.path(),
        "runbook.sh",
        &format!("printf '%s' \"$INCIDENT_ID\" > {w}/id\nprintf '%s' \"$INCIDENT_LABEL_CMD\" > {w}/cmd\ncat > {w}/stdin.json\necho \"restarted $INCIDENT_LABEL_SERVICE\"\necho warn >&2"),
    );
    let rules = rules_dir(&format!(
        "correlate:\n  - name: svc\n    group_by: [service]\nactions:\n  - name: restart\n    on: [opened]\n    match: ['service=\"nginx\"']\n    exec:\n      command: {}\n      args: [\"--force\"]\n      timeout: 10s\n",
        sh.display()
    ));
    let data = tempfile::tempdir().expect("data");
    let d = Daemon::start(
        data.path(),
        RulesSource::Dir(rules.path().to_path_buf()),
        |_| {},
    )
    .await;
    let evil = format!("$(touch {w}/pwned); `touch {w}/pwned2`; echo hi | tee {w}/pwned3 && \"quoted\" 'single' ;|&<>");
    let id = post_alert(
        &d,
        json!({"alertname": "NginxDown", "service": "nginx", "cmd": evil}),
    )
    .await;
    eventually("the runbook result", || async {
        timeline(&d, &id)
            .await
            .iter()
            .any(|l| l.contains("action restart (exec)"))
    })
    .await;
    let tl = timeline(&d, &id).await;
    let line = tl
        .iter()
        .find(|l| l.contains("action restart (exec)"))
        .cloned()
        .unwrap_or_default();
    assert!(
        line.contains("attempt 1/4: success: exit 0; stdout: restarted nginx; stderr: warn"),
        "{line}"
    );
    assert_eq!(
        std::fs::read_to_string(work.path().join("id")).expect("id"),
        id
    );
    assert_eq!(
        std::fs::read_to_string(work.path().join("cmd")).expect("cmd"),
        evil,
        "labels arrive verbatim"
    );
    for f in ["pwned", "pwned2", "pwned3"] {
        assert!(
            !work.path().join(f).exists(),
            "{f}: alert data must never run"
        );
    }
    let stdin: Value = serde_json::from_str(
        &std::fs::read_to_string(work.path().join("stdin.json")).expect("stdin"),
    )
    .expect("stdin is JSON");
    assert_eq!(stdin["incident"]["id"], id.as_str());
    assert_eq!(stdin["alerts"][0]["labels"]["cmd"], evil.as_str());
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_past_its_timeout_is_killed_and_recorded() {
    let work = tempfile::tempdir().expect("work");
    let w = work.path().display().to_string();
    let sh = script(
        work.path(),
        "slow.sh",
        &format!("sleep 30\ntouch {w}/finished"),
    );
    let rules = rules_dir(&format!(
        "actions:\n  - name: slow\n    on: [opened]\n    retries: 0\n    exec: {{command: {}, timeout: 1s}}\n",
        sh.display()
    ));
    let data = tempfile::tempdir().expect("data");
    let d = Daemon::start(
        data.path(),
        RulesSource::Dir(rules.path().to_path_buf()),
        |_| {},
    )
    .await;
    let id = post_alert(&d, json!({"alertname": "Sleepy"})).await;
    eventually("the timeout", || async {
        timeline(&d, &id)
            .await
            .iter()
            .any(|l| l.contains("timeout: timed out after 1s; killed"))
    })
    .await;
    assert!(!work.path().join("finished").exists());
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_can_be_disabled_by_config() {
    let rules =
        rules_dir("actions:\n  - name: r\n    on: [opened]\n    exec: {command: /bin/true}\n");
    let data = tempfile::tempdir().expect("data");
    let d = Daemon::start(
        data.path(),
        RulesSource::Dir(rules.path().to_path_buf()),
        |c| c.actions.allow_exec = false,
    )
    .await;
    let id = post_alert(&d, json!({"alertname": "X"})).await;
    eventually("the refusal", || async {
        timeline(&d, &id)
            .await
            .iter()
            .any(|l| l.contains("exec actions are disabled by configuration"))
    })
    .await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_steps_and_resumes_at_the_right_level_after_a_restart() {
    let sink = Sink::start(vec![Reply::Status(200)]).await;
    let rules = rules_dir(&format!(
        "{PRIORITY}actions:\n  - name: page-manager\n    webhook: {{url: \"{}\"}}\nescalations:\n  - name: p1\n    priority: [P1]\n    levels:\n      - after: 1s\n        assignee: secondary\n      - after: 4s\n        actions: [page-manager]\n",
        sink.url
    ));
    let data = tempfile::tempdir().expect("data");
    let d = Daemon::start(
        data.path(),
        RulesSource::Dir(rules.path().to_path_buf()),
        |_| {},
    )
    .await;
    let id = post_alert(
        &d,
        json!({"alertname": "Down", "severity": "critical", "env": "prod"}),
    )
    .await;
    eventually("level 1", || async {
        d.get_json(&format!("/api/v1/incidents/{id}")).await["escalation_level"] == 1
    })
    .await;
    assert_eq!(
        d.get_json(&format!("/api/v1/incidents/{id}")).await["assignee"],
        "secondary"
    );
    assert_eq!(sink.count(), 0);
    d.stop().await;

    let d = Daemon::start(
        data.path(),
        RulesSource::Dir(rules.path().to_path_buf()),
        |_| {},
    )
    .await;
    eventually("level 2 after the restart", || async {
        d.get_json(&format!("/api/v1/incidents/{id}")).await["escalation_level"] == 2
    })
    .await;
    eventually("the manager page", || async { sink.count() == 1 }).await;
    let tl = timeline(&d, &id).await;
    assert_eq!(
        tl.iter()
            .filter(|l| l.starts_with("escalated: escalated to level 1"))
            .count(),
        1,
        "{tl:#?}"
    );
    assert_eq!(
        tl.iter()
            .filter(|l| l.starts_with("escalated: escalated to level 2"))
            .count(),
        1,
        "{tl:#?}"
    );
    // Acknowledging a fresh P1 before its first level stops escalation.
    let id2 = post_alert(
        &d,
        json!({"alertname": "Down2", "severity": "critical", "env": "prod"}),
    )
    .await;
    d.post_json(
        &format!("/api/v1/incidents/{id2}/ack"),
        json!({"by": "alice"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        d.get_json(&format!("/api/v1/incidents/{id2}")).await["escalation_level"],
        0
    );
    let (_, metrics) = d.get("/metrics").await;
    assert!(
        metrics.contains(r#"incidentd_escalations_total{level="2",policy="p1"} 1"#),
        "{metrics}"
    );
    d.stop().await;
}
