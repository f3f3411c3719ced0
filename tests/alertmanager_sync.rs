//! Alertmanager silence sync against the real Alertmanager (Debian package
//! prometheus-alertmanager) and the real amtool: Alertmanager notifies
//! incidentd and a second webhook receiver; acknowledging the incident in
//! incidentd silences its alerts there (amtool shows the silence) and the
//! second receiver stops hearing about them; resolving expires the silence.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::Router;
use chrono::Utc;
use common::procs::{wait_for, Proc};
use common::tools::{free_port, http_client, require_binary};
use common::Daemon;
use incidentd::rules::Source as RulesSource;
use serde_json::{json, Value};

fn amtool(am: &str, args: &[&str]) -> String {
    let out = Command::new(require_binary("amtool", "prometheus-alertmanager"))
        .arg(format!("--alertmanager.url={am}"))
        .args(args)
        .env("HOME", "/nonexistent")
        .output()
        .expect("run amtool");
    assert!(
        out.status.success(),
        "amtool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

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

async fn succeeded(d: &Daemon, id: &str, trigger: &str) -> String {
    for _ in 0..120 {
        if let Some(l) = timeline(d, id).await.into_iter().find(|l| {
            l.starts_with("action: action am-sync ")
                && l.contains(&format!(" for {trigger} "))
                && l.contains(": success: ")
        }) {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("am-sync for {trigger}: {:#?}", timeline(d, id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledging_silences_the_alerts_in_alertmanager_and_resolving_expires_it() {
    let am_bin = require_binary("prometheus-alertmanager", "prometheus-alertmanager");
    let tmp = tempfile::tempdir().expect("tmp");
    // The second receiver: a real HTTP sink counting notifications.
    let other: Arc<Mutex<Vec<Value>>> = Arc::default();
    let o = other.clone();
    let app = Router::new().fallback(move |body: Bytes| {
        let o = o.clone();
        async move {
            o.lock()
                .expect("lock")
                .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let other_url = format!("http://{}/other", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let am_port = free_port();
    let am = format!("http://127.0.0.1:{am_port}");
    let rules = tempfile::tempdir().expect("rules");
    std::fs::write(
        rules.path().join("rules.yaml"),
        format!("actions:\n  - name: am-sync\n    on: [acknowledged, resolved, reopened]\n    backoff: 200ms\n    alertmanager:\n      url: {am}\n      duration: 2h\n"),
    )
    .expect("rules");
    let data = tmp.path().join("data");
    let d = Daemon::start(&data, RulesSource::Dir(rules.path().to_path_buf()), |_| {}).await;

    std::fs::write(
        tmp.path().join("alertmanager.yml"),
        format!(
            r#"route:
  receiver: incidentd
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 2s
  routes:
    - receiver: incidentd
      continue: true
    - receiver: other
receivers:
  - name: incidentd
    webhook_configs:
      - url: {}/api/v1/webhook/alertmanager
        send_resolved: true
  - name: other
    webhook_configs:
      - url: {other_url}
"#,
            d.base
        ),
    )
    .expect("alertmanager.yml");
    std::fs::create_dir_all(tmp.path().join("am-data")).expect("mkdir");
    let mut cmd = Command::new(am_bin);
    cmd.arg(format!(
        "--config.file={}",
        tmp.path().join("alertmanager.yml").display()
    ))
    .arg(format!(
        "--storage.path={}",
        tmp.path().join("am-data").display()
    ))
    .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
    .arg("--cluster.listen-address=");
    let proc = Proc::spawn("alertmanager", cmd, tmp.path());
    let c = http_client();
    wait_for(
        "Alertmanager ready",
        &[&proc],
        Duration::from_secs(30),
        || {
            let (c, url) = (c.clone(), format!("{am}/-/ready"));
            async move {
                match c.get(&url).send().await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("HTTP {}", r.status())),
                    Err(e) => Err(e.to_string()),
                }
            }
        },
    )
    .await;
    let alert = json!([{
        "labels": {"alertname": "DiskFull", "instance": "db-1:9100", "severity": "critical"},
        "annotations": {"summary": "disk on db-1 is full"},
        "startsAt": Utc::now().to_rfc3339(),
    }]);
    let r = c
        .post(format!("{am}/api/v2/alerts"))
        .json(&alert)
        .send()
        .await
        .expect("post alert");
    assert!(r.status().is_success());

    // Alertmanager notifies both receivers, the second one repeatedly.
    let id = wait_for(
        "the incident from Alertmanager",
        &[&proc],
        Duration::from_secs(30),
        || {
            let d = &d;
            async move {
                match d.incidents().await.first() {
                    Some(i) => Ok(i["id"].as_str().unwrap_or_default().to_string()),
                    None => Err("no incident yet".to_string()),
                }
            }
        },
    )
    .await;
    wait_for(
        "repeated notifications to the other receiver",
        &[&proc],
        Duration::from_secs(30),
        || {
            let n = other.lock().expect("lock").len();
            async move {
                if n >= 2 {
                    Ok(())
                } else {
                    Err(format!("{n} notifications"))
                }
            }
        },
    )
    .await;

    let (s, _) = d
        .post_json(
            &format!("/api/v1/incidents/{id}/ack"),
            json!({"by": "alice"}),
        )
        .await;
    assert_eq!(s, 200);
    let l = succeeded(&d, &id, "acknowledged").await;
    assert!(l.contains("success: Alertmanager silence "), "{l}");
    let silence_id = d.get_json(&format!("/api/v1/incidents/{id}")).await["external_refs"]
        ["am-sync"]
        .as_str()
        .expect("the silence id is stored")
        .to_string();

    // amtool sees the silence, made by alice through incidentd.
    let q = amtool(&am, &["silence", "query", "-o", "json"]);
    let silences: Vec<Value> = serde_json::from_str(&q).expect("amtool JSON");
    assert_eq!(silences.len(), 1, "{q}");
    let s0 = &silences[0];
    assert_eq!(s0["id"], silence_id.as_str());
    assert_eq!(s0["createdBy"], "alice (incidentd)");
    assert!(
        s0["comment"].as_str().expect("comment").contains(&id),
        "{s0}"
    );
    assert!(
        s0["matchers"].as_array().expect("matchers").contains(
            &json!({"name": "instance", "value": "db-1:9100", "isRegex": false, "isEqual": true})
        ),
        "{s0}"
    );
    let q = amtool(&am, &["alert", "query", "--silenced"]);
    assert!(
        q.contains("DiskFull"),
        "amtool shows the alert as silenced: {q}"
    );

    // The other receiver hears no more about it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = other.lock().expect("lock").len();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = other.lock().expect("lock").len();
    assert_eq!(before, after, "notifications continued after the silence");

    // Resolving the incident expires the silence.
    let (s, _) = d
        .post_json(
            &format!("/api/v1/incidents/{id}/resolve"),
            json!({"by": "alice"}),
        )
        .await;
    assert_eq!(s, 200);
    let l = succeeded(&d, &id, "resolved").await;
    assert!(
        l.contains(&format!("Alertmanager silence {silence_id} expired")),
        "{l}"
    );
    let q = amtool(&am, &["silence", "query", "-q"]);
    assert!(q.trim().is_empty(), "no active silence is left: {q}");
    let q = amtool(&am, &["silence", "query", "--expired", "-q"]);
    assert!(q.contains(&silence_id), "{q}");
    // And the other receiver is notified again.
    wait_for(
        "notifications resume",
        &[&proc],
        Duration::from_secs(20),
        || {
            let n = other.lock().expect("lock").len();
            async move {
                if n > after {
                    Ok(())
                } else {
                    Err(format!("{n} notifications"))
                }
            }
        },
    )
    .await;
    d.stop().await;
}
