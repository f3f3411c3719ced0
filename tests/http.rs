//! Integration tests: the real server on an ephemeral port with a temp data
//! dir, driven over HTTP as a user would.

mod common;

use std::time::Duration;

use common::{eventually, shipped_rules, v2_alert, Daemon};
use incidentd::config::Config;
use incidentd::daemon::Server;
use incidentd::rules::Source as RulesSource;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_become_prioritised_incidents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Daemon::start(dir.path(), shipped_rules(), |_| {}).await;

    // Prometheus-style v2 array: two pods of one namespace → one incident.
    let (s, body) = d
        .post_json(
            "/api/v2/alerts",
            json!([
                v2_alert(
                    "KubePodCrashLooping",
                    &[
                        ("namespace", "shop"),
                        ("pod", "cart-1"),
                        ("severity", "critical"),
                        ("env", "prod")
                    ]
                ),
                v2_alert(
                    "KubePodCrashLooping",
                    &[
                        ("namespace", "shop"),
                        ("pod", "cart-2"),
                        ("severity", "critical"),
                        ("env", "prod")
                    ]
                ),
            ]),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["created"].as_array().map(Vec::len), Some(1));

    // Alertmanager webhook v4: a node down.
    let webhook = json!({
        "version": "4", "status": "firing", "receiver": "incidentd", "groupKey": "{}:{}",
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am", "truncatedAlerts": 0,
        "alerts": [{"status": "firing", "labels": {"alertname": "InstanceDown", "instance": "db-1:9100", "severity": "critical"},
                    "annotations": {}, "startsAt": "2026-11-23T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "", "fingerprint": "abc"}]
    });
    let (s, body) = d.post_json("/api/v1/webhook/alertmanager", webhook).await;
    assert_eq!(s, 200, "{body}");

    // Generic single object.
    let (s, body) = d
        .post_json("/api/v1/alerts", json!({"labels": {"alertname": "LoginFailuresHigh", "service": "sso", "severity": "warning"}, "source": "custom-monitor"}))
        .await;
    assert_eq!(s, 200, "{body}");

    let list = d.incidents().await;
    assert_eq!(list.len(), 3);
    let by_rule = |rule: &str| {
        list.iter()
            .find(|i| i["rule"] == rule)
            .cloned()
            .unwrap_or_else(|| panic!("no incident for {rule}: {list:#?}"))
    };
    let kube = by_rule("kube-workload");
    assert_eq!(kube["priority"], "P2");
    assert_eq!(kube["impact"], "medium");
    assert_eq!(kube["urgency"], "high");
    assert_eq!(kube["category"], "software");
    assert_eq!(kube["alert_count"], 2);
    assert_eq!(kube["firing_count"], 2);
    assert_eq!(kube["status"], "open");
    assert_eq!(kube["title"], "KubePodCrashLooping in namespace shop");
    assert!(kube["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("INC-") && id.len() == 17));
    let node = by_rule("node-down");
    assert_eq!(
        (node["priority"].as_str(), node["category"].as_str()),
        (Some("P3"), Some("hardware"))
    );
    assert_eq!(node["occurred_at"], "2026-11-23T10:00:00Z");
    let sso = by_rule("per-alertname");
    assert_eq!(
        (sso["priority"].as_str(), sso["category"].as_str()),
        (Some("P4"), Some("account"))
    );

    // Filters.
    let p2 = d.get_json("/api/v1/incidents?priority=P2").await;
    assert_eq!(p2.as_array().map(Vec::len), Some(1));
    let hw = d
        .get_json("/api/v1/incidents?category=hardware&status=open")
        .await;
    assert_eq!(hw[0]["rule"], "node-down");
    let one = d.get_json("/api/v1/incidents?limit=1").await;
    assert_eq!(one.as_array().map(Vec::len), Some(1));
    let (s, body) = d.get("/api/v1/incidents?priority=P7").await;
    assert_eq!(s, 400);
    assert!(body.contains("priority: unknown value"), "{body}");

    // One incident with alerts and timeline.
    let id = kube["id"].as_str().expect("id");
    let full = d.get_json(&format!("/api/v1/incidents/{id}")).await;
    let alerts = full["alerts"].as_array().expect("alerts");
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0]["source"], "alertmanager_api");
    assert_eq!(alerts[0]["fingerprint"].as_str().map(str::len), Some(16));
    let kinds: Vec<&str> = full["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds, vec!["created", "alert_added"]);

    // Metrics show the incidents.
    let (_, metrics) = d.get("/metrics").await;
    assert!(
        metrics.contains(r#"incidentd_incidents_open{priority="P2"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"incidentd_alerts_received_total{source="alertmanager_api"} 2"#));
    assert!(metrics.contains(r#"incidentd_alerts_received_total{source="alertmanager_webhook"} 1"#));
    assert!(metrics
        .contains(r#"incidentd_incidents_created_total{category="software",priority="P2"} 1"#));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_resolve_and_refire_over_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Daemon::start(dir.path(), shipped_rules(), |_| {}).await;
    let a = v2_alert(
        "HighErrorRate",
        &[("service", "api"), ("severity", "critical")],
    );
    for _ in 0..3 {
        assert_eq!(
            d.post_json("/api/v2/alerts", json!([a.clone()])).await.0,
            200
        );
    }
    let list = d.incidents().await;
    assert_eq!(list.len(), 1);
    let id = list[0]["id"].as_str().expect("id").to_string();
    let full = d.get_json(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(full["alerts"][0]["repeat_count"], 2);

    // Resolve through endsAt in the past (how Prometheus resolves).
    let mut resolved = a.clone();
    resolved["endsAt"] = json!("2020-01-01T00:00:00Z");
    resolved["startsAt"] = json!("2019-12-31T00:00:00Z");
    assert_eq!(
        d.post_json("/api/v2/alerts", json!([resolved])).await.0,
        200
    );
    let full = d.get_json(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(full["status"], "resolved");
    assert_eq!(full["resolved_by"], "incidentd");
    assert_eq!(full["firing_count"], 0);

    // Fires again within the window: the same incident reopens.
    assert_eq!(d.post_json("/api/v2/alerts", json!([a])).await.0, 200);
    let full = d.get_json(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(full["status"], "open");
    assert_eq!(full["reopen_count"], 1);
    assert_eq!(full["alerts"][0]["occurrences"], 2);
    assert_eq!(d.incidents().await.len(), 1);
    let (_, metrics) = d.get("/metrics").await;
    assert!(
        metrics.contains("incidentd_alerts_deduplicated_total 2"),
        "{metrics}"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_over_http_with_conflicts_and_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Daemon::start(dir.path(), shipped_rules(), |_| {}).await;
    d.post_json(
        "/api/v2/alerts",
        json!([v2_alert(
            "InstanceDown",
            &[("instance", "web-1"), ("severity", "critical")]
        )]),
    )
    .await;
    let id = d.incidents().await[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let op = |action: &str| format!("/api/v1/incidents/{id}/{action}");

    let (s, body) = d.post_json(&op("close"), json!({"by": "alice"})).await;
    assert_eq!(s, 409);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("is open; only a resolved incident can be closed")),
        "{body}"
    );
    let (s, body) = d
        .post_json(&op("ack"), json!({"by": "alice", "note": "looking"}))
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["status"], "acknowledged");
    assert_eq!(body["acknowledged_by"], "alice");
    let (s, _) = d.post_json(&op("ack"), json!({"by": "alice"})).await;
    assert_eq!(s, 409);
    let (s, body) = d
        .post_json(
            &op("assign"),
            json!({"by": "alice", "assignee": "infra-team"}),
        )
        .await;
    assert_eq!((s, body["assignee"].as_str()), (200, Some("infra-team")));
    let (s, body) = d.post_json(&op("assign"), json!({"by": "alice"})).await;
    assert_eq!(s, 400, "{body}");
    let (s, _) = d
        .post_json(
            &op("notes"),
            json!({"by": "bob", "note": "disk full on /var"}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, body) = d.post_json(&op("resolve"), json!({"by": "bob", "workaround": "cleaned /var/log", "root_cause": "log rotation disabled"})).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        (body["status"].as_str(), body["workaround"].as_str()),
        (Some("resolved"), Some("cleaned /var/log"))
    );
    let (s, _) = d.post_json(&op("close"), json!({"by": "alice"})).await;
    assert_eq!(s, 200);
    let (s, body) = d
        .post_json(
            &op("notes"),
            json!({"by": "carol", "note": "postmortem scheduled"}),
        )
        .await;
    assert_eq!(s, 200, "notes on a closed incident: {body}");
    let (s, body) = d
        .post_json(&op("reopen"), json!({"by": "carol", "note": "it is back"}))
        .await;
    assert_eq!((s, body["status"].as_str()), (200, Some("open")), "{body}");

    let full = d.get_json(&format!("/api/v1/incidents/{id}")).await;
    let tl: Vec<(String, String)> = full["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or("").to_string(),
                e["by"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let want = [
        ("created", "incidentd"),
        ("acknowledged", "alice"),
        ("assigned", "alice"),
        ("note", "bob"),
        ("resolved", "bob"),
        ("closed", "alice"),
        ("note", "carol"),
        ("reopened", "carol"),
        // Closing released the still-firing alert; the reopened incident says so.
        ("alert_released", "incidentd"),
    ];
    assert_eq!(
        tl,
        want.iter()
            .map(|(k, b)| (k.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    );
    assert!(full["timeline"]
        .as_array()
        .expect("tl")
        .iter()
        .all(|e| e["at"].as_str().is_some()));

    // Errors: unknown id, bad id, unknown action, bad body.
    let (s, _) = d
        .post_json("/api/v1/incidents/INC-20200101-0001/ack", json!({}))
        .await;
    assert_eq!(s, 404);
    let (s, _) = d.get("/api/v1/incidents/nope").await;
    assert_eq!(s, 404);
    let (s, _) = d.post_json(&op("explode"), json!({})).await;
    assert_eq!(s, 404);
    let (s, body, _) = d.post(&op("notes"), r#"{"by": 5}"#).await;
    assert_eq!(s, 400);
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("by")),
        "{body}"
    );

    let (s, md) = d.get(&format!("/api/v1/incidents/{id}/report")).await;
    assert_eq!(s, 200);
    for section in [
        "# Incident report",
        "| ID |",
        "## Summary",
        "## Impact",
        "## Cause",
        "log rotation disabled",
        "## Timeline",
        "## Workaround",
        "cleaned /var/log",
        "## People involved",
        "- alice",
        "- bob",
    ] {
        assert!(md.contains(section), "report lacks {section:?}:\n{md}");
    }
    let (_, metrics) = d.get("/metrics").await;
    assert!(
        metrics
            .contains(r#"incidentd_incident_acknowledge_duration_seconds_count{priority="P3"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(
        r#"incidentd_incident_resolve_duration_seconds_count{category="hardware",priority="P3"} 1"#
    ));
    assert!(
        !metrics.contains(r#"incidentd_mttr_seconds{priority="P3"}"#),
        "reopened: no longer resolved"
    );
    assert!(metrics.contains(r#"incidentd_mtta_seconds{priority="P3"}"#));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_incidents_and_correlation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Daemon::start(dir.path(), shipped_rules(), |_| {}).await;
    let a = v2_alert(
        "TargetDown",
        &[("job", "api"), ("instance", "a"), ("severity", "warning")],
    );
    d.post_json("/api/v2/alerts", json!([a.clone()])).await;
    let before = d.incidents().await;
    let id = before[0]["id"].as_str().expect("id").to_string();
    d.post_json(
        &format!("/api/v1/incidents/{id}/ack"),
        json!({"by": "alice"}),
    )
    .await;
    d.stop().await;

    let d = Daemon::start(dir.path(), shipped_rules(), |_| {}).await;
    let after = d.incidents().await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["id"], id.as_str());
    assert_eq!(after[0]["status"], "acknowledged");
    // The same alert is deduplicated, a new instance of the job joins.
    d.post_json("/api/v2/alerts", json!([a])).await;
    let b = v2_alert(
        "TargetDown",
        &[("job", "api"), ("instance", "b"), ("severity", "warning")],
    );
    let (_, body) = d.post_json("/api/v2/alerts", json!([b])).await;
    assert_eq!(body["updated"][0], id.as_str(), "{body}");
    let full = d.get_json(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(full["alert_count"], 2);
    let first = full["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .find(|a| a["labels"]["instance"] == "a")
        .cloned()
        .expect("alert a");
    assert_eq!(first["repeat_count"], 1);
    // New incidents continue the day's sequence.
    let (_, body) = d
        .post_json("/api/v1/alerts", json!({"labels": {"alertname": "Other"}}))
        .await;
    let new_id = body["created"][0].as_str().expect("created");
    assert!(new_id > id.as_str(), "{new_id} after {id}");
    let (_, metrics) = d.get("/metrics").await;
    assert!(
        metrics.contains(r#"incidentd_mtta_seconds{priority="P4"}"#),
        "MTTA gauge survives restart:\n{metrics}"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_with_a_message_and_harms_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Daemon::start(dir.path(), shipped_rules(), |c| {
        c.limits.max_body_bytes = 4096
    })
    .await;
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "/api/v2/alerts",
            b"[{\"labels\": {\"a\": \"b\"}".to_vec(),
            400,
            "invalid JSON at line 1",
        ),
        ("/api/v2/alerts", b"not json".to_vec(), 400, "invalid JSON"),
        (
            "/api/v2/alerts",
            br#"{"labels": {"a": "b"}}"#.to_vec(),
            400,
            "expected a sequence",
        ),
        (
            "/api/v2/alerts",
            br#"[{"labels": {"a": 1}}]"#.to_vec(),
            400,
            "[0].labels.a: invalid type: integer",
        ),
        (
            "/api/v2/alerts",
            br#"[{"labels": {}}]"#.to_vec(),
            400,
            "[0].labels: an alert needs at least one label",
        ),
        (
            "/api/v2/alerts",
            br#"[{"labels": {"a": ""}}]"#.to_vec(),
            400,
            "at least one label with a non-empty value",
        ),
        (
            "/api/v2/alerts",
            br#"[{"labels": {"a": "b"}, "startsAt": "last tuesday"}]"#.to_vec(),
            400,
            "[0].startsAt: invalid RFC 3339 timestamp",
        ),
        (
            "/api/v2/alerts",
            b"[{\"labels\": {\"a\": \"\xff\xfe\"}}]".to_vec(),
            400,
            "not valid UTF-8 (first bad byte at offset 19)",
        ),
        ("/api/v2/alerts", Vec::new(), 400, "request body is empty"),
        (
            "/api/v1/webhook/alertmanager",
            br#"{"version": "4"}"#.to_vec(),
            400,
            "missing field `alerts`",
        ),
        (
            "/api/v1/webhook/alertmanager",
            br#"{"alerts": [{"labels": {"a": "b"}, "status": "burning"}]}"#.to_vec(),
            400,
            "alerts[0].status: unknown status",
        ),
        (
            "/api/v1/alerts",
            br#"{"labels": {"a": "b"}, "endsAt": 5}"#.to_vec(),
            400,
            "endsAt: invalid type",
        ),
        (
            "/api/v1/alerts",
            format!(r#"[{{"labels": {{"a": "{}"}}}}]"#, "x".repeat(5000)).into_bytes(),
            413,
            "larger than the limit of 4096 bytes",
        ),
    ];
    for (path, body, want, msg) in cases {
        let (s, v, _) = d.post(path, body.clone()).await;
        assert_eq!(s, want, "{path} {:?} → {v}", String::from_utf8_lossy(&body));
        let err = v["error"].as_str().unwrap_or_default();
        assert!(err.contains(msg), "{path}: expected {msg:?} in {err:?}");
    }
    // One bad alert rejects the whole request: nothing from it is stored.
    let (s, _) = d
        .post_json(
            "/api/v2/alerts",
            json!([{"labels": {"alertname": "Good"}}, {"labels": {}}]),
        )
        .await;
    assert_eq!(s, 400);
    assert!(d.incidents().await.is_empty());
    // The daemon is unharmed.
    let (s, _) = d
        .post_json("/api/v2/alerts", json!([{"labels": {"alertname": "Good"}}]))
        .await;
    assert_eq!(s, 200);
    assert_eq!(d.incidents().await.len(), 1);
    let (_, metrics) = d.get("/metrics").await;
    assert!(
        metrics.contains(
            r#"incidentd_requests_rejected_total{reason="too_large",source="generic"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(r#"incidentd_alerts_received_total{source="alertmanager_api"} 1"#));
    assert_eq!(d.get("/-/healthy").await.0, 200);
    assert_eq!(d.get("/-/ready").await.0, 200);
    assert_eq!(d.get("/nope").await.0, 404);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_auto_close_and_breach_sla() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = tempfile::tempdir().expect("rules dir");
    std::fs::write(
        rules.path().join("r.yaml"),
        "sla:\n  P4: {acknowledge: 1s, resolve: 2s}\nprioritize:\n  default_impact: low\n  default_urgency: medium\n",
    )
    .expect("write rules");
    let d = Daemon::start(
        dir.path(),
        RulesSource::Dir(rules.path().to_path_buf()),
        |c| {
            c.incidents.close_after = Duration::from_millis(300);
        },
    )
    .await;
    d.post_json("/api/v1/alerts", json!({"labels": {"alertname": "Slow"}}))
        .await;
    let id = d.incidents().await[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    eventually("SLA breach", || async {
        let i = d.get_json(&format!("/api/v1/incidents/{id}")).await;
        i["sla"]["breached"] == true && i["sla"]["resolve_breached"] == true
    })
    .await;
    let (_, metrics) = d.get("/metrics").await;
    assert!(
        metrics.contains(r#"incidentd_sla_breaches_total{kind="acknowledge",priority="P4"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"incidentd_sla_breaches_total{kind="resolve",priority="P4"} 1"#));
    d.post_json(
        "/api/v1/alerts",
        json!({"labels": {"alertname": "Slow"}, "status": "resolved"}),
    )
    .await;
    eventually("auto-close", || async {
        d.get_json(&format!("/api/v1/incidents/{id}")).await["status"] == "closed"
    })
    .await;
    let full = d.get_json(&format!("/api/v1/incidents/{id}")).await;
    let kinds: Vec<&str> = full["timeline"]
        .as_array()
        .expect("tl")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "created",
            "sla_breached",
            "sla_breached",
            "alert_resolved",
            "resolved",
            "closed"
        ]
    );
    // After closing, the alert makes a new incident.
    d.post_json("/api/v1/alerts", json!({"labels": {"alertname": "Slow"}}))
        .await;
    assert_eq!(d.incidents().await.len(), 2);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_rules_or_keeps_the_old_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = tempfile::tempdir().expect("rules dir");
    let file = rules.path().join("r.yaml");
    std::fs::write(
        &file,
        "classify:\n  - match: ['alertname=\"A\"']\n    category: network\n",
    )
    .expect("write");
    let d = Daemon::start(
        dir.path(),
        RulesSource::Dir(rules.path().to_path_buf()),
        |_| {},
    )
    .await;
    d.post_json(
        "/api/v1/alerts",
        json!({"labels": {"alertname": "A", "n": "1"}}),
    )
    .await;

    std::fs::write(
        &file,
        "classify:\n  - match: ['alertname=\"A\"']\n    category: nettwork\n",
    )
    .expect("write");
    let (s, body) = d.post_json("/-/reload", json!({})).await;
    assert_eq!(s, 400);
    let err = body["error"].as_str().expect("error");
    assert!(
        err.contains("previous configuration of each failed part is still active")
            && err.contains("r.yaml:3:15: unknown category \"nettwork\""),
        "{err}"
    );

    std::fs::write(&file, "correlate:\n  - name: by-n\n    group_by: [n]\nclassify:\n  - match: ['alertname=\"B\"']\n    category: security\n").expect("write");
    let (s, body) = d.post_json("/-/reload", json!({})).await;
    assert_eq!(s, 200, "{body}");
    d.post_json(
        "/api/v1/alerts",
        json!({"labels": {"alertname": "B", "n": "2"}}),
    )
    .await;
    let list = d.incidents().await;
    assert_eq!(list[0]["category"], "security");
    assert_eq!(list[0]["rule"], "by-n");
    // The incident made under the old rules keeps its group key and category.
    assert_eq!(list[1]["category"], "network");
    assert_eq!(list[1]["group_key"], r#"default{alertname="A"}"#);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_rules_prevent_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = tempfile::tempdir().expect("rules dir");
    std::fs::write(
        rules.path().join("r.yaml"),
        "correlate:\n  - name: x\n    window: forever\n",
    )
    .expect("write");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let cfg = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    let err = Server::start(cfg, RulesSource::Dir(rules.path().to_path_buf()), listener)
        .await
        .err()
        .expect("must fail");
    assert!(
        err.to_string()
            .contains("r.yaml:3:13: bad duration \"forever\""),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inhibition_with_the_shipped_rules_over_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Daemon::start(dir.path(), shipped_rules(), |_| {}).await;
    let down = v2_alert(
        "InstanceDown",
        &[("instance", "db-1:9100"), ("severity", "critical")],
    );
    let disk = v2_alert(
        "NodeFilesystemAlmostOutOfSpace",
        &[
            ("instance", "db-1:9100"),
            ("severity", "warning"),
            ("mountpoint", "/"),
        ],
    );
    d.post_json("/api/v2/alerts", json!([down.clone()])).await;
    let (s, body) = d.post_json("/api/v2/alerts", json!([disk])).await;
    assert_eq!((s, body["suppressed"].as_u64()), (200, Some(1)), "{body}");
    assert_eq!(
        d.incidents().await.len(),
        1,
        "the warning opened no incident"
    );
    let suppressed = d.get_json("/api/v1/alerts/suppressed").await;
    let s0 = &suppressed[0];
    assert_eq!(s0["labels"]["alertname"], "NodeFilesystemAlmostOutOfSpace");
    assert_eq!(s0["suppression"]["reason"], "inhibit");
    assert_eq!(s0["suppression"]["by"], "node-down-mutes-its-warnings");
    assert_eq!(
        s0["suppression"]["inhibited_by"].as_str().map(str::len),
        Some(16)
    );
    let (_, metrics) = d.get("/metrics").await;
    assert!(
        metrics.contains(r#"incidentd_alerts_suppressed_total{reason="inhibit"} 1"#),
        "{metrics}"
    );

    // The node comes back while the disk warning still fires: it becomes an incident.
    let mut resolved = down;
    resolved["startsAt"] = json!("2020-01-01T00:00:00Z");
    resolved["endsAt"] = json!("2020-01-01T00:01:00Z");
    d.post_json("/api/v2/alerts", json!([resolved])).await;
    let list = d.incidents().await;
    assert_eq!(list.len(), 2, "{list:#?}");
    assert_eq!(list[0]["rule"], "node-resources");
    assert_eq!(
        d.get_json("/api/v1/alerts/suppressed")
            .await
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_api_mutes_survives_restart_and_expires() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Daemon::start(dir.path(), shipped_rules(), |_| {}).await;
    // Alertmanager-style matcher objects and the camelCase names, still
    // taken for compatibility; the answer is in snake_case.
    let (s, body) = d
        .post_json(
            "/api/v1/silences",
            json!({"matchers": [{"name": "service", "value": "billing", "isRegex": false}], "duration": "2h",
                   "comment": "CHG-1234 database migration", "createdBy": "alice"}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let id = body["silence_id"].as_str().expect("id").to_string();
    assert_eq!(body["silenceID"], id, "the old name of the id stays");
    assert_eq!(body["silence"]["state"], "active");
    assert_eq!(body["silence"]["created_by"], "alice");
    assert!(body["silence"]["ends_at"].is_string(), "{body}");
    let (_, body) = d
        .post_json(
            "/api/v1/alerts",
            json!({"labels": {"alertname": "BillingDown", "service": "billing"}}),
        )
        .await;
    assert_eq!(body["suppressed"], 1, "{body}");
    assert!(d.incidents().await.is_empty());
    let sup = d.get_json("/api/v1/alerts/suppressed").await;
    assert_eq!(
        (
            sup[0]["suppression"]["reason"].as_str(),
            sup[0]["suppression"]["by"].as_str()
        ),
        (Some("silence"), Some(id.as_str()))
    );

    // Bad silences are refused with the reason.
    for (bad, msg) in [
        (
            json!({"matchers": ["service=~\".*\""], "duration": "1h", "comment": "c", "createdBy": "a"}),
            "would mute every alert",
        ),
        (
            json!({"matchers": ["service=\"x\""], "comment": "c", "createdBy": "a"}),
            "ends_at or duration",
        ),
        (
            json!({"matchers": ["service=\"x\""], "duration": "1h", "createdBy": "a"}),
            "comment",
        ),
        (
            json!({"matchers": ["service=~\"(\""], "duration": "1h", "comment": "c", "createdBy": "a"}),
            "invalid regex",
        ),
        (
            json!({"matchers": ["a=\"b\""], "duration": "1h", "comment": "c", "createdBy": "a", "colour": "red"}),
            "unknown field `colour`",
        ),
    ] {
        let (s, body) = d.post_json("/api/v1/silences", bad).await;
        assert_eq!(s, 400, "{body}");
        assert!(
            body["error"].as_str().is_some_and(|e| e.contains(msg)),
            "{msg}: {body}"
        );
    }

    d.stop().await;
    let d = Daemon::start(dir.path(), shipped_rules(), |_| {}).await;
    let silences = d.get_json("/api/v1/silences").await;
    assert_eq!(silences.as_array().map(Vec::len), Some(1));
    assert_eq!(
        d.get_json(&format!("/api/v1/silences/{id}")).await["created_by"],
        "alice"
    );
    // Still muting after the restart.
    let (_, body) = d
        .post_json(
            "/api/v1/alerts",
            json!({"labels": {"alertname": "BillingSlow", "service": "billing"}}),
        )
        .await;
    assert_eq!(body["suppressed"], 1, "{body}");

    // Expire it: the muted, still-firing alerts become incidents.
    let r = d
        .http
        .delete(format!("{}/api/v1/silences/{id}", d.base))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status().as_u16(), 200);
    eventually("silenced alerts processed as new", || async {
        d.incidents().await.len() == 2
    })
    .await;
    assert_eq!(
        d.get_json(&format!("/api/v1/silences/{id}")).await["state"],
        "expired"
    );
    let r = d
        .http
        .delete(format!("{}/api/v1/silences/SIL-nope", d.base))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status().as_u16(), 404);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recurring_incidents_show_similar_ones_with_their_resolution() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Daemon::start(dir.path(), shipped_rules(), |c| {
        c.incidents.close_after = Duration::from_millis(1)
    })
    .await;
    let alert = json!({"labels": {"alertname": "CacheEvictions", "service": "cache"}});
    let mut resolved = alert.clone();
    resolved["status"] = json!("resolved");
    let mut ids = Vec::new();
    for round in 0..3 {
        let (_, body) = d.post_json("/api/v1/alerts", alert.clone()).await;
        let id = body["created"][0]
            .as_str()
            .unwrap_or_else(|| panic!("round {round}: {body}"))
            .to_string();
        if round == 0 {
            d.post_json(&format!("/api/v1/incidents/{id}/resolve"), json!({"by": "bob", "workaround": "flushed the cache", "root_cause": "TTL too long"})).await;
        }
        d.post_json("/api/v1/alerts", resolved.clone()).await;
        eventually("closed", || async {
            d.get_json(&format!("/api/v1/incidents/{id}")).await["status"] == "closed"
        })
        .await;
        ids.push(id);
    }
    let third = d.get_json(&format!("/api/v1/incidents/{}", ids[2])).await;
    assert_eq!(third["problem_candidate"], true);
    assert_eq!(third["similar"], json!([ids[1], ids[0]]));
    let first = third["similar_incidents"]
        .as_array()
        .expect("details")
        .iter()
        .find(|s| s["id"] == ids[0].as_str())
        .cloned()
        .expect("first");
    assert_eq!(
        (first["workaround"].as_str(), first["root_cause"].as_str()),
        (Some("flushed the cache"), Some("TTL too long"))
    );
    let (_, metrics) = d.get("/metrics").await;
    assert!(
        metrics.contains("incidentd_problem_candidates_total 1"),
        "{metrics}"
    );
    d.stop().await;
}
