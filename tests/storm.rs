//! An alert storm end to end: fifty nodes of one cluster go down, the real
//! Alertmanager sends them to the real `incidentd` binary over its
//! webhook, and the shipped rules turn them into one major incident with
//! fifty children that pages once (a real HTTP sink counts the pages).
//! Alertmanager comes from the Debian package `prometheus-alertmanager`
//! (installed by `scripts/test`); the test fails if it is missing.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::procs::{self, Proc};
use common::serve::{get_json, Serve, Sink, DEADLINE};
use common::tools::{free_port, require_binary};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_nodes_down_through_alertmanager_page_once() {
    let am_bin = require_binary("prometheus-alertmanager", "prometheus-alertmanager");
    let tmp = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start().await;
    // The shipped rules plus one page on every opened incident.
    let rules = tmp.path().join("rules");
    std::fs::create_dir_all(&rules).expect("mkdir");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/default.yaml"),
        rules.join("default.yaml"),
    )
    .expect("copy the shipped rules");
    std::fs::write(
        rules.join("page.yaml"),
        format!(
            "actions:\n  - name: page\n    on: [opened]\n    webhook: {{url: \"{}\"}}\n",
            sink.url
        ),
    )
    .expect("write page.yaml");
    let inc = Serve::start(
        "incidentd",
        tmp.path(),
        &tmp.path().join("data"),
        &rules,
        &[],
    )
    .await;

    let am_port = free_port();
    let am_data = tmp.path().join("am-data");
    std::fs::create_dir_all(&am_data).expect("mkdir");
    let am_config = tmp.path().join("alertmanager.yml");
    std::fs::write(
        &am_config,
        format!(
            "route:\n  receiver: incidentd\n  group_by: [alertname, cluster]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: incidentd\n    webhook_configs:\n      - url: {}\n        send_resolved: true\n        max_alerts: 0\n",
            inc.url("/api/v1/webhook/alertmanager")
        ),
    )
    .expect("write alertmanager.yml");
    let mut cmd = Command::new(&am_bin);
    cmd.arg(format!("--config.file={}", am_config.display()))
        .arg(format!("--storage.path={}", am_data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
        .arg("--cluster.listen-address=");
    let am = Proc::spawn("alertmanager", cmd, tmp.path());
    let am_base = format!("http://127.0.0.1:{am_port}");
    let c = reqwest::Client::new();
    procs::wait_for("Alertmanager /-/ready", &[&am, &inc.proc], DEADLINE, || {
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

    // A rack loses power: 50 nodes of cluster prod-eu.
    let alerts: Vec<Value> = (1..=50)
        .map(|i| {
            json!({"labels": {"alertname": "InstanceDown", "cluster": "prod-eu", "job": "node",
                              "instance": format!("node-{i:02}:9100"), "severity": "critical"},
                   "annotations": {"summary": format!("node-{i:02} is unreachable")}})
        })
        .collect();
    let r = c
        .post(format!("{am_base}/api/v2/alerts"))
        .json(&alerts)
        .send()
        .await
        .expect("post to Alertmanager");
    assert!(r.status().is_success(), "Alertmanager said {}", r.status());

    let procs = [&inc.proc, &am];
    let list_url = inc.url("/api/v1/incidents?limit=1000");
    let incidents: Vec<Value> = procs::wait_for(
        "one major incident over 50 node incidents",
        &procs,
        DEADLINE,
        || {
            let url = list_url.clone();
            async move {
                let list = get_json(&url).await?;
                let list = list.as_array().cloned().unwrap_or_default();
                let majors: Vec<&Value> = list.iter().filter(|i| i["source"] == "storm").collect();
                match majors.first() {
                    Some(m)
                        if majors.len() == 1
                            && m["children"].as_array().map(Vec::len) == Some(50) =>
                    {
                        Ok(list.clone())
                    }
                    _ => Err(format!("{} incidents, {} major", list.len(), majors.len())),
                }
            }
        },
    )
    .await;
    assert_eq!(incidents.len(), 51, "50 children and their parent");
    let parent = incidents
        .iter()
        .find(|i| i["source"] == "storm")
        .expect("the major incident");
    let pid = parent["id"].as_str().expect("id").to_string();
    // Fifty instances across the children: blast radius high, urgency
    // high (critical): P1.
    assert_eq!(parent["priority"], "P1", "{parent}");
    assert_eq!(parent["alert_count"], 50);
    assert_eq!(parent["title"], "Cluster prod-eu: 50 nodes down");
    for child in incidents.iter().filter(|i| i["source"] == "alerts") {
        assert_eq!(child["parent"], pid.as_str(), "{child}");
        assert_eq!(child["rule"], "node-down");
    }

    // One page: the parent's. Held pages of the first children were dropped
    // when the storm formed, and say so on their timelines.
    procs::wait_for("the parent's page", &procs, DEADLINE, || async {
        if sink.count() >= 1 {
            Ok(())
        } else {
            Err("no page yet".to_string())
        }
    })
    .await;
    let first_child = incidents
        .iter()
        .filter(|i| i["source"] == "alerts")
        .min_by_key(|i| i["id"].as_str().map(str::to_string))
        .expect("a child");
    let full = get_json(&inc.url(&format!(
        "/api/v1/incidents/{}",
        first_child["id"].as_str().expect("id")
    )))
    .await
    .expect("child");
    let notes: Vec<&str> = full["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|t| t["message"].as_str())
        .collect();
    assert!(
        notes
            .iter()
            .any(|m| m.starts_with(&format!("grouped into {pid}"))),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|m| m.contains("not run: grouped into")),
        "{notes:?}"
    );
    // Past the storm's 30s hold nothing else pages.
    tokio::time::sleep(Duration::from_secs(32)).await;
    assert_eq!(sink.count(), 1, "pages sent");
    assert_eq!(
        inc.metric("incidentd_actions_total{action=\"page\",outcome=\"success\"}")
            .await,
        Some(1.0)
    );
    // The children's held pages are counted, and every one was dropped.
    let held = inc
        .metric("incidentd_actions_held_total{action=\"page\",outcome=\"held\"}")
        .await
        .unwrap_or(0.0);
    let dropped = inc
        .metric("incidentd_actions_held_total{action=\"page\",outcome=\"dropped\"}")
        .await
        .unwrap_or(0.0);
    let released = inc
        .metric("incidentd_actions_held_total{action=\"page\",outcome=\"released\"}")
        .await
        .unwrap_or(0.0);
    assert!(held >= 1.0, "held pages counted: {held}");
    assert_eq!((dropped, released), (held, 0.0), "held {held}");

    // Acknowledging the parent acknowledges every child.
    let acked = inc
        .post(
            &format!("/api/v1/incidents/{pid}/ack"),
            &json!({"by": "oncall"}),
        )
        .await;
    assert_eq!(acked["status"], "acknowledged");
    let list = get_json(&inc.url("/api/v1/incidents?status=acknowledged&limit=1000"))
        .await
        .expect("list");
    assert_eq!(list.as_array().map(Vec::len), Some(51));
    am.sigterm();
    inc.stop().await;
}
