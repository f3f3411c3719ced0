//! The ticket lifecycle against a real Redmine (Debian packages `redmine`
//! and `redmine-sqlite`, prepared once by `scripts/redmine-test-setup`,
//! cached under ~/.cache/incidentd-test/redmine, served by WEBrick on a
//! free port from a copy of the prepared database): an incident creates an
//! issue, its id is stored on the incident (surviving a restart), and
//! acknowledge, resolve and close update the same issue. Also a generic
//! webhook that captures a ticket id and uses it in a later URL.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Method, Uri};
use axum::Router;
use common::procs::{wait_for, Proc};
use common::tools::{free_port, http_client, require_binary};
use common::{eventually, Daemon};
use incidentd::rules::Source as RulesSource;
use serde_json::{json, Value};

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

fn rules_dir(yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("rules dir");
    std::fs::write(dir.path().join("rules.yaml"), yaml).expect("write rules");
    dir
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

/// Waits for the action's attempt for `trigger` to succeed; fails with the
/// timeline when it does not within the bound.
async fn succeeded(d: &Daemon, id: &str, action: &str, trigger: &str) -> String {
    let prefix = format!("action: action {action} ");
    for _ in 0..240 {
        let tl = timeline(d, id).await;
        if let Some(l) = tl.iter().find(|l| {
            l.starts_with(&prefix)
                && l.contains(&format!(" for {trigger} "))
                && l.contains(": success: ")
        }) {
            return l.clone();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "{action} for {trigger} did not succeed: {:#?}",
        timeline(d, id).await
    );
}

/// The real Redmine, from the prepared database.
struct Redmine {
    base: String,
    key: String,
    http: reqwest::Client,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

impl Redmine {
    async fn start() -> Redmine {
        let cache = std::env::var_os("INCIDENTD_TEST_CACHE")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/incidentd-test"))
            })
            .expect("HOME")
            .join("redmine");
        for f in ["prepared.sqlite3", "api-key", "serve.rb"] {
            assert!(
                cache.join(f).is_file(),
                "Redmine is not prepared ({} is missing): install the Debian packages redmine and \
                 redmine-sqlite and run scripts/redmine-test-setup (scripts/test does both)",
                cache.join(f).display()
            );
        }
        let ruby = require_binary("ruby", "redmine");
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("redmine.sqlite3");
        std::fs::copy(cache.join("prepared.sqlite3"), &db).expect("copy the prepared database");
        let key = std::fs::read_to_string(cache.join("api-key"))
            .expect("api key")
            .trim()
            .to_string();
        let port = free_port();
        let mut cmd = std::process::Command::new(ruby);
        cmd.arg(cache.join("serve.rb"))
            .arg(port.to_string())
            .current_dir("/usr/share/redmine")
            .env("REDMINE_INSTANCE", "incidentd-test")
            .env("INCIDENTD_REDMINE_DB", &db)
            .env("RAILS_ENV", "production");
        let proc = Proc::spawn("redmine", cmd, dir.path());
        let base = format!("http://127.0.0.1:{port}");
        let http = http_client();
        wait_for(
            "Redmine answers its REST API",
            &[&proc],
            Duration::from_secs(180),
            || {
                let (http, url, key) = (
                    http.clone(),
                    format!("{base}/projects/ops.json"),
                    key.clone(),
                );
                async move {
                    match http.get(&url).header("X-Redmine-API-Key", key).send().await {
                        Ok(r) if r.status().is_success() => Ok(()),
                        Ok(r) => Err(format!("HTTP {}", r.status())),
                        Err(e) => Err(e.to_string()),
                    }
                }
            },
        )
        .await;
        Redmine {
            base,
            key,
            http,
            _proc: proc,
            _dir: dir,
        }
    }

    async fn issue(&self, id: &str) -> Value {
        let r = self
            .http
            .get(format!("{}/issues/{id}.json?include=journals", self.base))
            .header("X-Redmine-API-Key", &self.key)
            .send()
            .await
            .expect("GET issue");
        assert!(r.status().is_success(), "GET issue {id}: {}", r.status());
        r.json::<Value>().await.expect("JSON")["issue"].clone()
    }

    async fn notes(&self, id: &str) -> Vec<String> {
        self.issue(id).await["journals"]
            .as_array()
            .map(|j| j.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|j| j["notes"].as_str().map(str::to_string))
            .filter(|n| !n.is_empty())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redmine_issue_follows_the_incident_from_open_to_close() {
    let redmine = Redmine::start().await;
    std::env::set_var("INCIDENTD_TEST_REDMINE_KEY", &redmine.key);
    let rules = rules_dir(&format!(
        "{PRIORITY}actions:\n  - name: redmine\n    on: [opened, acknowledged, priority_changed, noted, resolved, closed]\n    backoff: 200ms\n    redmine:\n      url: {}\n      api_key_env: INCIDENTD_TEST_REDMINE_KEY\n      project: ops\n      trackers: {{other: 3}}\n",
        redmine.base
    ));
    let data = tempfile::tempdir().expect("data");
    let start = |data: PathBuf, rules: PathBuf| async move {
        Daemon::start(&data, RulesSource::Dir(rules), |_| {}).await
    };
    let d = start(data.path().to_path_buf(), rules.path().to_path_buf()).await;
    let (s, body) = d
        .post_json(
            "/api/v1/alerts",
            json!({"labels": {"alertname": "CheckoutDown", "severity": "critical", "env": "prod"},
                   "annotations": {"summary": "checkout answers 503"}}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let id = body["created"][0].as_str().expect("id").to_string();
    let created = succeeded(&d, &id, "redmine", "opened").await;
    assert!(
        created.contains("Redmine create issue: HTTP 201: issue #"),
        "{created}"
    );

    // The issue id is stored with the incident and shown by the API and the
    // report.
    let inc = d.get_json(&format!("/api/v1/incidents/{id}")).await;
    let issue_id = inc["external_refs"]["redmine"]
        .as_str()
        .unwrap_or_else(|| panic!("no external_refs.redmine: {inc:#}"))
        .to_string();
    let report = d.get(&format!("/api/v1/incidents/{id}/report")).await.1;
    assert!(
        report.contains(&format!("| External references | redmine: {issue_id} |")),
        "{report}"
    );
    // And by the board's incident page.
    let (s, page) = d.get(&format!("/incidents/{id}")).await;
    assert_eq!(s, 200);
    assert!(
        page.contains(&format!("<code>redmine</code>: {issue_id}")),
        "the board shows the ticket"
    );
    let issue = redmine.issue(&issue_id).await;
    assert_eq!(
        issue["subject"],
        format!("[P1] {id} CheckoutDown: checkout answers 503")
    );
    assert_eq!(
        issue["priority"]["name"], "Immediate",
        "P1 maps to Immediate"
    );
    assert_eq!(
        issue["tracker"]["name"], "Support",
        "category other → tracker 3"
    );
    assert_eq!(issue["status"]["name"], "New");
    let description = issue["description"].as_str().expect("description");
    assert!(
        description.contains("Priority: P1 (impact high, urgency high)"),
        "{description}"
    );
    assert!(
        description.contains("- [firing] CheckoutDown: checkout answers 503"),
        "{description}"
    );
    assert!(
        description.contains(&format!("/api/v1/incidents/{id}")),
        "{description}"
    );

    // A restart: the reference comes back from the store.
    d.stop().await;
    let d = start(data.path().to_path_buf(), rules.path().to_path_buf()).await;

    let (s, _) = d
        .post_json(
            &format!("/api/v1/incidents/{id}/ack"),
            json!({"by": "alice"}),
        )
        .await;
    assert_eq!(s, 200);
    let l = succeeded(&d, &id, "redmine", "acknowledged").await;
    assert!(
        l.contains(&format!("Redmine update issue #{issue_id}: HTTP 204")),
        "{l}"
    );
    let issue = redmine.issue(&issue_id).await;
    assert_eq!(issue["status"]["name"], "In Progress");
    let notes = redmine.notes(&issue_id).await;
    assert!(
        notes[0].starts_with("Acknowledged in incidentd by alice."),
        "{notes:?}"
    );

    // A person's note becomes a journal entry, with who wrote it.
    let (s, _) = d
        .post_json(
            &format!("/api/v1/incidents/{id}/notes"),
            json!({"by": "bob", "note": "pool size raised to 200 on the standby"}),
        )
        .await;
    assert_eq!(s, 200);
    succeeded(&d, &id, "redmine", "noted").await;
    let notes = redmine.notes(&issue_id).await;
    assert!(
        notes.iter().any(|n| n.starts_with("Note from bob: ")
            && n.contains("pool size raised to 200 on the standby")),
        "{notes:?}"
    );

    let (s, _) = d
        .post_json(
            &format!("/api/v1/incidents/{id}/resolve"),
            json!({"by": "alice", "workaround": "failed over to the standby", "root_cause": "connection pool exhausted"}),
        )
        .await;
    assert_eq!(s, 200);
    succeeded(&d, &id, "redmine", "resolved").await;
    let issue = redmine.issue(&issue_id).await;
    assert_eq!(issue["status"]["name"], "Resolved");
    let notes = redmine.notes(&issue_id).await;
    let resolved = notes.last().expect("a note");
    assert!(
        resolved.starts_with("Resolved in incidentd by alice."),
        "{resolved}"
    );
    assert!(
        resolved.contains("Workaround: failed over to the standby"),
        "{resolved}"
    );
    assert!(
        resolved.contains("Root cause: connection pool exhausted"),
        "{resolved}"
    );

    let (s, _) = d
        .post_json(
            &format!("/api/v1/incidents/{id}/close"),
            json!({"by": "alice"}),
        )
        .await;
    assert_eq!(s, 200);
    succeeded(&d, &id, "redmine", "closed").await;
    let issue = redmine.issue(&issue_id).await;
    assert_eq!(issue["status"]["name"], "Closed");
    assert_eq!(issue["status"]["is_closed"], true);
    // One issue for the one incident, and the key nowhere in incidentd.
    let all = d.get(&format!("/api/v1/incidents/{id}")).await.1 + &d.get("/metrics").await.1;
    assert!(!all.contains(&redmine.key));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_captures_a_ticket_id_and_later_runs_use_it() {
    // A tiny ticket system: POST /tickets answers {"ticket": {"key": "OPS-7"}};
    // everything is recorded.
    let seen: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    let s = seen.clone();
    let app = Router::new().fallback(move |method: Method, uri: Uri, body: Bytes| {
        let s = s.clone();
        async move {
            s.lock().expect("lock").push((
                method.to_string(),
                uri.path().to_string(),
                String::from_utf8_lossy(&body).into_owned(),
            ));
            axum::Json(json!({"ticket": {"key": "OPS-7", "id": 7}}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let rules = rules_dir(&format!(
        r#"{PRIORITY}actions:
  - name: ticket
    on: [opened]
    webhook:
      url: {url}/tickets
      body: '{{"title": {{{{ incident.title }}}}}}'
      capture: /ticket/key
  - name: ticket-comment
    on: [acknowledged, resolved]
    backoff: 100ms
    webhook:
      url: '{url}/tickets/{{{{ incident.external_refs.ticket }}}}/comments'
      body: '{{"comment": {{{{ trigger ~ " by " ~ (incident.acknowledged_by or "?") }}}}}}'
"#
    ));
    let data = tempfile::tempdir().expect("data");
    let d = Daemon::start(
        data.path(),
        RulesSource::Dir(rules.path().to_path_buf()),
        |_| {},
    )
    .await;
    let (s, body) = d
        .post_json(
            "/api/v1/alerts",
            json!({"labels": {"alertname": "DiskFull"}}),
        )
        .await;
    assert_eq!(s, 200);
    let id = body["created"][0].as_str().expect("id").to_string();
    succeeded(&d, &id, "ticket", "opened").await;
    eventually("the captured reference", || async {
        d.get_json(&format!("/api/v1/incidents/{id}")).await["external_refs"]["ticket"] == "OPS-7"
    })
    .await;
    let tl = timeline(&d, &id).await;
    assert!(
        tl.iter().any(|l| l == "action: action ticket captured external reference \"OPS-7\" (external_refs.ticket)"),
        "{tl:#?}"
    );
    let (s, _) = d
        .post_json(&format!("/api/v1/incidents/{id}/ack"), json!({"by": "bob"}))
        .await;
    assert_eq!(s, 200);
    succeeded(&d, &id, "ticket-comment", "acknowledged").await;
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen[0].0, "POST");
    assert_eq!(seen[0].1, "/tickets");
    assert_eq!(seen[1].1, "/tickets/OPS-7/comments");
    assert_eq!(
        serde_json::from_str::<Value>(&seen[1].2).expect("JSON"),
        json!({"comment": "acknowledged by bob"})
    );
    d.stop().await;
}
