//! `POST /v2/enqueue` (PagerDuty Events API v2) on the real server, on an
//! ephemeral port with a temp data dir: trigger, acknowledge and resolve as
//! a PagerDuty client sends them.

mod common;

use common::{shipped_rules, Daemon};
use serde_json::{json, Value};

/// The value of the first `/metrics` line that starts with `line_start`.
async fn metric(d: &Daemon, line_start: &str) -> f64 {
    let (_, text) = d.get("/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric line {line_start:?} in\n{text}"))
}

async fn enqueue(d: &Daemon, body: Value) -> (u16, Value) {
    d.post_json("/v2/enqueue", body).await
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
    let d = Daemon::start(dir.path(), shipped_rules(), |_| {}).await;

    let (status, body) = enqueue(&d, trigger("disk-db1", "Disk full on db1")).await;
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
    let (status, _) = enqueue(&d, trigger("disk-db1", "Disk still full on db1")).await;
    assert_eq!(status, 202);
    assert_eq!(
        metric(&d, "incidentd_alerts_deduplicated_total ").await,
        1.0
    );

    // Acknowledge is accepted and changes nothing (incidentd acks itself).
    let (status, body) = enqueue(
        &d,
        json!({"routing_key": "R0123456789abcdef0123456789abcd",
            "event_action": "acknowledge", "dedup_key": "disk-db1"}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["dedup_key"], "disk-db1");
    let inc = d.get_json(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(inc["status"], "open");
    assert_eq!(inc["firing_count"], 1);

    // Resolve carries only the key, and resolves the alert it names.
    let (status, _) = enqueue(
        &d,
        json!({"routing_key": "R0123456789abcdef0123456789abcd",
            "event_action": "resolve", "dedup_key": "disk-db1"}),
    )
    .await;
    assert_eq!(status, 202);
    let inc = d.get_json(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(inc["firing_count"], 0, "{inc}");
    assert_eq!(
        metric(&d, "incidentd_alerts_received_total{source=\"pagerduty\"} ").await,
        3.0
    );

    // A trigger without dedup_key gets one back, and the same one next time.
    let mut t = trigger("", "Replication lag on db2");
    t.as_object_mut().expect("object").remove("dedup_key");
    let (status, first) = enqueue(&d, t.clone()).await;
    assert_eq!(status, 202);
    let (_, second) = enqueue(&d, t).await;
    let key = first["dedup_key"].as_str().expect("dedup_key");
    assert_eq!(key.len(), 16, "{first}");
    assert_eq!(first["dedup_key"], second["dedup_key"]);

    // Bad events are 400 with the field named, and store nothing.
    let (status, body) = enqueue(&d, json!({"routing_key": "R", "event_action": "resolve"})).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("dedup_key: required"),
        "{body}"
    );
    let (status, body) = enqueue(
        &d,
        json!({"routing_key": "R", "event_action": "trigger",
            "payload": {"summary": "s", "source": "h", "severity": "sev1"}}),
    )
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
        metric(
            &d,
            "incidentd_requests_rejected_total{reason=\"invalid\",source=\"pagerduty\"} "
        )
        .await,
        2.0
    );
    d.stop().await;
}
