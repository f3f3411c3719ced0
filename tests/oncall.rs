//! People, schedules and escalation to people on the real daemon: a real
//! HTTP sink receives each person's webhook page, the signed ack link is
//! opened and confirmed as a person would, the daemon restarts in the
//! middle of an escalation, nobody on call falls back, and the on-call
//! API, calendar feed, overrides (API and CLI) and reloads work.
//!
//! Escalation levels are seconds apart on the real clock (the daemon ticks
//! every 100 ms in tests), as in `tests/actions.rs`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::Path as AxPath;
use axum::routing::post;
use axum::Router;
use common::{eventually, Daemon};
use incidentd::rules::Source as RulesSource;
use serde_json::{json, Value};

/// Receives pages at `/{person}` and keeps them in order.
struct Pager {
    base: String,
    got: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Pager {
    async fn start() -> Pager {
        let got: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let g = got.clone();
        let app = Router::new().route(
            "/{person}",
            post(move |AxPath(person): AxPath<String>, body: Bytes| {
                let g = g.clone();
                async move {
                    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    g.lock().expect("lock").push((person, v));
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Pager {
            base: format!("http://{addr}"),
            got,
        }
    }

    fn to(&self, person: &str) -> Vec<Value> {
        self.got
            .lock()
            .expect("lock")
            .iter()
            .filter(|(p, _)| p == person)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn all(&self) -> Vec<String> {
        self.got
            .lock()
            .expect("lock")
            .iter()
            .map(|(p, _)| p.clone())
            .collect()
    }
}

/// people.yaml: alice holds `primary`, bob `secondary`, carol is the
/// fallback; `quiet` covers one hour that is never now.
fn people_yaml(pager: &Pager, primary: &str) -> String {
    let now = chrono::Utc::now();
    let away = |h: i64| {
        (now + chrono::Duration::hours(h))
            .format("%H:00")
            .to_string()
    };
    format!(
        r#"people:
  - {{name: alice, time_zone: Europe/Berlin, webhook: "{p}/alice"}}
  - {{name: bob, time_zone: America/New_York, webhook: "{p}/bob"}}
  - {{name: carol, webhook: "{p}/carol"}}
  - {{name: dave, webhook: "{p}/dave"}}
teams:
  - name: dba
    members: [alice, bob]
    schedules:
      - name: primary
        time_zone: Europe/Berlin
        layers:
          - {{rotation: daily, handoff: "09:00", start: 2026-01-05, participants: [{primary}]}}
      - name: secondary
        layers:
          - {{rotation: weekly, start: 2026-01-05, participants: [bob]}}
      - name: quiet
        layers:
          - rotation: daily
            start: 2026-01-05
            participants: [alice]
            restrictions: [{{start: "{a}", end: "{b}"}}]
contacts:
  webhook: page
"#,
        p = pager.base,
        a = away(6),
        b = away(7),
    )
}

const RULES: &str = r#"
correlate:
  - name: db
    match: ['service="db"']
    group_by: [alertname]
    team: dba
actions:
  - name: page
    webhook: {}
escalations:
  - name: db
    match: ['service="db"', 'alertname!~"Quiet.*"']
    levels:
      - after: 1s
        oncall: primary
      - after: 3s
        oncall: secondary
      - after: 8s
        person: carol
  - name: quiet
    match: ['alertname="QuietFallback"']
    levels:
      - after: 1s
        oncall: quiet
        fallback: person carol
  - name: quiet-last
    match: ['alertname="QuietLast"']
    levels:
      - after: 1s
        oncall: quiet
"#;

fn rules_dir(pager: &Pager) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("rules dir");
    std::fs::write(dir.path().join("rules.yaml"), RULES).expect("rules");
    std::fs::write(dir.path().join("people.yaml"), people_yaml(pager, "alice")).expect("people");
    dir
}

async fn post_alert(d: &Daemon, name: &str) -> String {
    let (s, body) = d
        .post_json(
            "/api/v1/alerts",
            json!({"labels": {"alertname": name, "service": "db"}}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    body["created"][0].as_str().expect("created").to_string()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_paged_then_secondary_acks_through_the_signed_link_and_nothing_more_is_sent() {
    let pager = Pager::start().await;
    let rules = rules_dir(&pager);
    let data = tempfile::tempdir().expect("data");
    let d = Daemon::start(data.path(), RulesSource::Dir(rules.path().into()), |_| {}).await;
    let id = post_alert(&d, "DbDown").await;
    assert_eq!(
        d.get_json(&format!("/api/v1/incidents/{id}")).await["team"],
        "dba"
    );
    eventually("alice paged", || async { pager.to("alice").len() == 1 }).await;
    let page = &pager.to("alice")[0]["page"];
    assert_eq!(page["person"]["name"], "alice");
    assert_eq!(page["channel"], "webhook");
    assert!(page["ack_url"]
        .as_str()
        .is_some_and(|u| u.starts_with(&format!("{}/ack/", d.base))));
    assert_eq!(
        d.get_json(&format!("/api/v1/incidents/{id}")).await["assignee"],
        "alice"
    );
    // Nobody acknowledges: bob is paged.
    eventually("bob paged", || async { pager.to("bob").len() == 1 }).await;
    let ack_url = pager.to("bob")[0]["page"]["ack_url"]
        .as_str()
        .expect("ack url")
        .to_string();
    let path = ack_url.trim_start_matches(&d.base).to_string();
    // Opening the link shows a confirmation and changes nothing.
    let (s, html) = d.get(&path).await;
    assert_eq!(s, 200, "{html}");
    assert!(html.contains("Acknowledge as bob"), "{html}");
    assert_eq!(
        d.get_json(&format!("/api/v1/incidents/{id}")).await["status"],
        "open"
    );
    // A tampered link and a cross-site post are refused.
    let (s, _) = d.get(&format!("{path}x")).await;
    assert_eq!(s, 403);
    let r = d
        .http
        .post(&ack_url)
        .header("origin", "http://evil.example")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(
        d.get_json(&format!("/api/v1/incidents/{id}")).await["status"],
        "open"
    );
    // The click: no token, acknowledged as bob.
    let r = d.http.post(&ack_url).send().await.expect("post");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r
        .text()
        .await
        .expect("body")
        .contains("acknowledged as bob"));
    let i = d.get_json(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(
        (i["status"].as_str(), i["acknowledged_by"].as_str()),
        (Some("acknowledged"), Some("bob"))
    );
    let pages = i["pages"].as_array().expect("pages");
    assert_eq!(pages.len(), 2);
    assert!(pages[0]["acknowledged_at"].is_null() && pages[1]["acknowledged_at"].is_string());
    // Past the third level's time: nothing more is sent.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(pager.all(), vec!["alice", "bob"]);
    let tl = timeline(&d, &id).await;
    assert!(
        tl.contains(
            &"paged: paged alice (oncall primary, level 1) by webhook; assigned to alice"
                .to_string()
        ),
        "{tl:#?}"
    );
    assert!(
        tl.contains(
            &"paged: paged bob (oncall secondary, level 2) by webhook; assigned to bob".to_string()
        ),
        "{tl:#?}"
    );
    assert!(tl.iter().any(|l| l.starts_with("action: action page (webhook) for escalated paging bob by webhook attempt 1/4: success")), "{tl:#?}");
    // Acknowledging again through the link says so, and changes nothing.
    let r = d.http.post(&ack_url).send().await.expect("post");
    assert_eq!(r.status().as_u16(), 409);
    // Who was paged, in the CLI, the report and the metrics.
    let out = common::serve::command()
        .env("INCIDENTD_URL", &d.base)
        .args(["incidents", "show", &id])
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("  team          dba\n"), "{text}");
    assert!(text.contains("\npaged:\n"), "{text}");
    assert!(
        text.contains(" alice by webhook (level 1, oncall primary)\n"),
        "{text}"
    );
    assert!(
        text.contains(" bob by webhook (level 2, oncall secondary), acknowledged "),
        "{text}"
    );
    let (_, report) = d.get(&format!("/api/v1/incidents/{id}/report")).await;
    assert!(report.contains("- bob: paged "), "{report}");
    assert!(report.contains("acknowledged "), "{report}");
    let (_, metrics) = d.get("/metrics").await;
    assert!(
        metrics.contains(r#"incidentd_pages_total{outcome="paged",team="dba"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"incidentd_team_acknowledge_duration_seconds_count{team="dba"} 1"#),
        "{metrics}"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_escalation_pages_nobody_twice_and_skips_nobody() {
    let pager = Pager::start().await;
    let rules = rules_dir(&pager);
    let data = tempfile::tempdir().expect("data");
    let d = Daemon::start(data.path(), RulesSource::Dir(rules.path().into()), |_| {}).await;
    let id = post_alert(&d, "DbDown").await;
    eventually("alice paged", || async { pager.to("alice").len() == 1 }).await;
    d.stop().await;
    let d = Daemon::start(data.path(), RulesSource::Dir(rules.path().into()), |_| {}).await;
    eventually("bob paged after the restart", || async {
        pager.to("bob").len() == 1
    })
    .await;
    // The link signed before the restart still works (same key file; the
    // daemon came back on another port).
    let ack_url = pager.to("alice")[0]["page"]["ack_url"]
        .as_str()
        .expect("url")
        .to_string();
    let path = &ack_url[ack_url.find("/ack/").expect("path")..];
    let r = d
        .http
        .post(format!("{}{path}", d.base))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(pager.all(), vec!["alice", "bob"], "once each, carol never");
    assert_eq!(
        d.get_json(&format!("/api/v1/incidents/{id}")).await["acknowledged_by"],
        "alice"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_on_call_falls_back_to_a_person_or_says_nobody_was_paged() {
    let pager = Pager::start().await;
    let rules = rules_dir(&pager);
    let data = tempfile::tempdir().expect("data");
    let d = Daemon::start(data.path(), RulesSource::Dir(rules.path().into()), |_| {}).await;
    let fb = post_alert(&d, "QuietFallback").await;
    let last = post_alert(&d, "QuietLast").await;
    eventually("carol paged as the fallback", || async {
        pager.to("carol").len() == 1
    })
    .await;
    assert_eq!(
        pager.to("carol")[0]["page"]["via"],
        "fallback person carol (nobody on call for oncall quiet)"
    );
    eventually("nobody paged is on the timeline", || async {
        timeline(&d, &last).await.contains(
            &"paged: level 1: nobody on call for oncall quiet and no level follows: nobody was paged".to_string(),
        )
    })
    .await;
    assert_eq!(
        d.get_json(&format!("/api/v1/incidents/{fb}")).await["assignee"],
        "carol"
    );
    let (_, metrics) = d.get("/metrics").await;
    assert!(
        metrics.contains(r#"incidentd_pages_total{outcome="nobody",team="dba"} 1"#),
        "{metrics}"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oncall_api_calendar_overrides_cli_and_reload() {
    let pager = Pager::start().await;
    let rules = rules_dir(&pager);
    let data = tempfile::tempdir().expect("data");
    let d = Daemon::start(data.path(), RulesSource::Dir(rules.path().into()), |_| {}).await;
    let now = d.get_json("/api/v1/oncall").await;
    let dba = &now["teams"][0];
    assert_eq!(dba["team"], "dba");
    assert_eq!(dba["schedules"][0]["schedule"], "primary");
    assert_eq!(dba["schedules"][0]["person"], "alice");
    assert!(
        dba["schedules"][2]["person"].is_null(),
        "quiet has a gap now: {now}"
    );
    // A week of primary: alice every day, handoffs at 09:00 Berlin.
    let s = d
        .get_json("/api/v1/schedules/primary?from=2026-03-27T00:00:00Z&to=2026-03-31T00:00:00Z")
        .await;
    assert_eq!(s["time_zone"], "Europe/Berlin");
    assert_eq!(s["shifts"].as_array().map(Vec::len), Some(1), "{s}");
    assert_eq!(s["gaps"], json!([]));
    // The calendar feed.
    let r = d
        .http
        .get(format!("{}/api/v1/schedules/primary.ics", d.base))
        .send()
        .await
        .expect("ics");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/calendar"));
    let cal = r.text().await.expect("body");
    assert!(
        cal.starts_with("BEGIN:VCALENDAR\r\n") && cal.contains("SUMMARY:On call: alice (primary)"),
        "{cal}"
    );
    // An override through the API: dave covers primary for an hour.
    let start = chrono::Utc::now() - chrono::Duration::minutes(1);
    let (st, v) = d
        .post_json(
            "/api/v1/schedules/primary/overrides",
            json!({"person": "dave", "starts_at": start.to_rfc3339(), "duration": "1h", "created_by": "ops"}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let oid = v["override"]["id"].as_str().expect("id").to_string();
    assert_eq!(
        d.get_json("/api/v1/oncall").await["teams"][0]["schedules"][0]["person"],
        "dave"
    );
    let (st, v) = d
        .post_json(
            "/api/v1/schedules/primary/overrides",
            json!({"person": "nobody-known", "starts_at": start.to_rfc3339(), "duration": "1h", "created_by": "ops"}),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    // The CLI shows it, removes it, and adds one of its own.
    let cli = |args: Vec<String>| {
        let mut cmd = common::serve::command();
        cmd.env("INCIDENTD_URL", &d.base)
            .env("USER", "tester")
            .args(args);
        cmd.output().expect("runs")
    };
    let out = cli(vec!["oncall".into()]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && text.contains("primary") && text.contains("dave"),
        "{text}"
    );
    let out = cli(vec![
        "schedules".into(),
        "remove-override".into(),
        "primary".into(),
        oid.clone(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        d.get_json("/api/v1/oncall").await["teams"][0]["schedules"][0]["person"],
        "alice"
    );
    let out = cli(vec![
        "schedules".into(),
        "override".into(),
        "primary".into(),
        "carol".into(),
        "--duration".into(),
        "2h".into(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(vec!["schedules".into(), "show".into(), "primary".into()]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("carol") && text.contains("override ovr-"),
        "{text}"
    );
    // Overrides survive a restart.
    d.stop().await;
    let d = Daemon::start(data.path(), RulesSource::Dir(rules.path().into()), |_| {}).await;
    assert_eq!(
        d.get_json("/api/v1/oncall").await["teams"][0]["schedules"][0]["person"],
        "carol"
    );
    // people.yaml reloads with the rules; a broken one is refused with its position.
    std::fs::write(rules.path().join("people.yaml"), people_yaml(&pager, "zed")).expect("write");
    let (st, v) = d.post_json("/-/reload", json!({})).await;
    assert_ne!(st, 200, "{v}");
    assert!(v.to_string().contains("people.yaml:13:"), "{v}");
    std::fs::write(
        rules.path().join("people.yaml"),
        people_yaml(&pager, "dave"),
    )
    .expect("write");
    let (st, v) = d.post_json("/-/reload", json!({})).await;
    assert_eq!(st, 200, "{v}");
    let s = d
        .get_json("/api/v1/schedules/primary?from=2026-03-27T00:00:00Z&to=2026-03-28T00:00:00Z")
        .await;
    assert_eq!(s["shifts"][0]["person"], "dave");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_test_asserts_who_is_on_call_at_an_instant() {
    let pager = Pager::start().await;
    let rules = rules_dir(&pager);
    let tests = rules.path().join("tests");
    std::fs::create_dir_all(&tests).expect("tests dir");
    let file = tests.join("oncall.yaml");
    let run = |yaml: &str| {
        std::fs::write(&file, yaml).expect("write");
        let out = common::serve::command()
            .args(["rules", "test"])
            .arg(&file)
            .output()
            .expect("runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (code, out) = run(
        "rule_dir: ..\ntests:\n  - name: the rota\n    start: 2026-03-29T12:00:00Z\n    expect:\n      - at: 0m\n        oncall: {primary: alice, secondary: bob, dba: alice}\n",
    );
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = run(
        "rule_dir: ..\ntests:\n  - name: wrong\n    start: 2026-03-29T12:00:00Z\n    expect:\n      - at: 0m\n        oncall: {primary: bob, secondary: null, nope: bob}\n",
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("oncall primary: expected bob, got alice"),
        "{out}"
    );
    assert!(
        out.contains("oncall secondary: expected nobody, got bob"),
        "{out}"
    );
    assert!(
        out.contains("oncall: no schedule or team \"nope\""),
        "{out}"
    );
}
