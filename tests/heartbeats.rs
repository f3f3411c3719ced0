//! Heartbeats (dead man's switches) against the real daemon: pings over
//! HTTP and heartbeat alerts open nothing; silence opens an incident that
//! the next signal resolves; the state survives a restart, and a restart
//! never fakes a missing heartbeat. (The engine's own tests drive the same
//! logic with a controlled clock.)

mod common;

use std::time::{Duration, Instant};

use common::Daemon;
use incidentd::rules::Source as RulesSource;
use serde_json::{json, Value};

const RULES: &str = r#"
heartbeats:
  - name: nightly-backup
    expect_every: 1s
    grace: 1s
    category: software
    priority: P3
  - name: watchdog
    match: ['alertname="Watchdog"']
    expect_every: 2s
    grace: 1s
"#;

fn missing(incidents: &[Value], name: &str) -> Vec<Value> {
    incidents
        .iter()
        .filter(|i| {
            i["labels"]["alertname"] == "HeartbeatMissing" && i["labels"]["heartbeat"] == name
        })
        .cloned()
        .collect()
}

async fn wait_missing(d: &Daemon, name: &str, status: &str, within: Duration) -> Value {
    let start = Instant::now();
    loop {
        let all = d.incidents().await;
        if let Some(i) = missing(&all, name)
            .into_iter()
            .find(|i| i["status"] == status)
        {
            return i;
        }
        assert!(
            start.elapsed() < within,
            "no {status} incident for heartbeat {name} within {within:?}: {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_and_heartbeat_alerts_open_nothing_and_silence_opens_an_incident() {
    let rules = tempfile::tempdir().expect("rules");
    std::fs::write(rules.path().join("rules.yaml"), RULES).expect("write");
    let data = tempfile::tempdir().expect("data");
    let d = Daemon::start(
        data.path(),
        RulesSource::Dir(rules.path().to_path_buf()),
        |_| {},
    )
    .await;

    let (s, body) = d
        .post_json("/api/v1/heartbeats/nightly-backup", json!({}))
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["heartbeat"], "nightly-backup");
    assert!(
        body["last_seen"]
            .as_str()
            .is_some_and(|t| t.starts_with("20")),
        "{body}"
    );
    let (s, body) = d.post_json("/api/v1/heartbeats/no-such", json!({})).await;
    assert_eq!(s, 404, "{body}");
    assert!(body["error"]
        .as_str()
        .expect("error")
        .contains("no heartbeat \"no-such\""));

    let (s, body) = d
        .post_json(
            "/api/v1/alerts",
            json!({"labels": {"alertname": "Watchdog", "severity": "none"}}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["heartbeats"], 1, "{body}");
    assert!(
        body["created"].as_array().is_none_or(|c| c.is_empty()),
        "{body}"
    );
    assert!(d.incidents().await.is_empty());

    // No ping for longer than expect_every + grace: an incident.
    let inc = wait_missing(&d, "nightly-backup", "open", Duration::from_secs(10)).await;
    assert_eq!(inc["priority"], "P3");
    assert_eq!(inc["category"], "software");
    assert!(
        inc["title"]
            .as_str()
            .expect("title")
            .starts_with("HeartbeatMissing: no heartbeat from nightly-backup since 20"),
        "{inc}"
    );
    // The ping returns: resolved.
    let (s, _) = d
        .post_json("/api/v1/heartbeats/nightly-backup", json!({}))
        .await;
    assert_eq!(s, 200);
    wait_missing(&d, "nightly-backup", "resolved", Duration::from_secs(5)).await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_state_survives_a_restart_which_never_fakes_a_missing_heartbeat() {
    let rules = tempfile::tempdir().expect("rules");
    std::fs::write(rules.path().join("rules.yaml"), RULES).expect("write");
    let data = tempfile::tempdir().expect("data");
    let start = |data: std::path::PathBuf, rules: std::path::PathBuf| async move {
        Daemon::start(&data, RulesSource::Dir(rules), |_| {}).await
    };
    let d = start(data.path().to_path_buf(), rules.path().to_path_buf()).await;
    let (s, body) = d
        .post_json(
            "/api/v1/alerts",
            json!({"labels": {"alertname": "Watchdog"}}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (s, ping) = d
        .post_json("/api/v1/heartbeats/nightly-backup", json!({}))
        .await;
    assert_eq!(s, 200);
    d.stop().await;

    // Down for longer than both windows.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let d = start(data.path().to_path_buf(), rules.path().to_path_buf()).await;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let all = d.incidents().await;
    if started.elapsed() < Duration::from_secs(2) {
        assert!(
            missing(&all, "nightly-backup").is_empty() && missing(&all, "watchdog").is_empty(),
            "the restart alone made a heartbeat missing: {all:#?}"
        );
    }
    // A full window after the start without a signal: missing, since the
    // signal stored before the restart.
    let inc = wait_missing(&d, "watchdog", "open", Duration::from_secs(10)).await;
    let pinged = ping["last_seen"].as_str().expect("last_seen");
    let inc_nb = wait_missing(&d, "nightly-backup", "open", Duration::from_secs(10)).await;
    let since = |i: &Value| {
        i["title"]
            .as_str()
            .and_then(|t| t.split(" since ").nth(1))
            .map(str::to_string)
            .expect("since")
    };
    assert_eq!(
        since(&inc_nb),
        chrono::DateTime::parse_from_rfc3339(pinged)
            .expect("time")
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "the last signal before the restart: {inc_nb}"
    );
    assert!(since(&inc).starts_with("20"), "{inc}");
    d.stop().await;
}
