//! The incident board in a real browser: headless Chromium (Debian
//! `chromium`) over WebDriver (`chromium-driver`), against the real server
//! on an ephemeral loopback port. What a person sees and clicks:
//! - the board lists incidents posted over the API, grouped by priority,
//!   with local times (UTC on hover), and keyboard navigation opens one;
//! - an incident acknowledged by a click shows as acknowledged in the API,
//!   with the right actor; a conflict (409) is a message on the page;
//! - a silence created in the board suppresses the next matching alert;
//! - a service-desk agent opens an incident from the board's form, merges
//!   another incident into it and overrides its priority with a reason,
//!   each seen on the page and in the API; a refused request (merging into
//!   a closed incident, an override without a reason) is a message;
//! - an operator splits some of an incident's alerts off into a new
//!   incident by ticking them, and lands on the new incident; a split with
//!   nothing ticked is a message;
//! - a new alert appears on an open board without a reload (the event
//!   stream);
//! - with tokens on, the board refuses without a login and works after it;
//! - a phone-sized window shows the board without sideways scrolling.
//! - the schedule page shows shifts in the schedule's time zone and takes
//!   an override from its form; an acknowledgement link shows the incident
//!   and acknowledges as the paged person only after the confirming click.
//!
//! The screenshots in docs/img/ come from this browser:
//! `UPDATE_SCREENSHOTS=1 cargo test --test board screenshots` rewrites them.
//!
//! Each test holds one browser at a time (a lock) and ends within
//! [`BOUND`]; Chromium runs with `--headless=new --no-sandbox` on loopback.
mod common;

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use common::browser::Browser;
use common::{shipped_rules, v2_alert, Daemon};
use incidentd::http::auth::digest_hex;
use serde_json::{json, Value};

/// Longest one browser test may take.
const BOUND: Duration = Duration::from_secs(180);

/// One browser at a time: the machine has few cores.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn bounded(what: &str, f: impl Future<Output = ()>) {
    let _one = BROWSER.lock().await;
    if tokio::time::timeout(BOUND, f).await.is_err() {
        panic!("{what} did not finish within {BOUND:?}");
    }
}

fn alert(name: &str, labels: &[(&str, &str)], summary: &str) -> Value {
    let mut all = json!({"alertname": name});
    for (k, v) in labels {
        all[*k] = json!(v);
    }
    json!({"labels": all, "annotations": {"summary": summary}})
}

async fn post_alerts(d: &Daemon, alerts: Value) -> Value {
    let (s, body) = d.post_json("/api/v2/alerts", alerts).await;
    assert_eq!(s, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_lists_incidents_and_an_ack_by_click_shows_in_the_api() {
    bounded("board list and ack", async {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = Daemon::start(&dir.path().join("data"), shipped_rules(), |_| {}).await;
        let made = post_alerts(
            &d,
            json!([
                alert("DatabaseDown", &[("severity", "critical"), ("service", "db"), ("env", "prod")], "primary database unreachable"),
                alert("DiskAlmostFull", &[("severity", "warning"), ("instance", "web-1")], "disk 91% full"),
            ]),
        )
        .await;
        let ids: Vec<String> = made["created"]
            .as_array()
            .expect("created")
            .iter()
            .map(|v| v.as_str().expect("id").to_string())
            .collect();
        assert_eq!(ids.len(), 2, "{made}");
        let b = Browser::start(dir.path(), 1280, 900).await;
        b.goto(&format!("{}/", d.base)).await;
        b.wait_text("primary database unreachable", Duration::from_secs(10))
            .await;
        let html = b.source().await;
        for id in &ids {
            assert!(html.contains(id.as_str()), "{id} listed");
        }
        // Priorities carry a text label, not colour alone.
        let prios = b
            .script("return Array.from(document.querySelectorAll('#live h2 .prio')).map(e => e.textContent)")
            .await;
        assert!(
            prios.as_array().is_some_and(|p| !p.is_empty()
                && p.iter().all(|x| x.as_str().is_some_and(|t| t.starts_with('P')))),
            "{prios}"
        );
        // Filters: text search and label matchers narrow the list.
        b.goto(&format!("{}/?q=web-1", d.base)).await;
        let html = b.source().await;
        assert!(html.contains(&ids[1]) && !html.contains(&ids[0]), "search");
        b.goto(&format!("{}/?labels=service%3D%22db%22", d.base)).await;
        let html = b.source().await;
        assert!(html.contains(&ids[0]) && !html.contains(&ids[1]), "matchers");

        // Keyboard: j selects the first row, Enter opens it.
        b.goto(&format!("{}/", d.base)).await;
        b.find("tr.row").await;
        b.keys("j").await;
        b.keys("\u{E007}").await; // Enter
        b.wait_text("Timeline", Duration::from_secs(10)).await;
        let opened = b.url().await;
        assert!(
            ids.iter().any(|id| opened.ends_with(&format!("/incidents/{id}"))),
            "{opened}"
        );

        // Times: local (the browser runs in Asia/Kolkata), UTC on hover.
        b.goto(&format!("{}/incidents/{}", d.base, ids[0])).await;
        let t = b
            .script("const t = document.querySelector('time'); return [t.textContent, t.title, t.getAttribute('datetime')]")
            .await;
        let shown = t[0].as_str().unwrap_or("");
        let title = t[1].as_str().unwrap_or("");
        assert!(title.ends_with("UTC"), "{t}");
        assert!(!shown.ends_with("UTC") && !shown.is_empty(), "local time: {t}");
        assert_ne!(&shown[11..16], &title[11..16], "not the UTC clock: {t}");

        // Acknowledge by clicking, with a name for the timeline (no tokens).
        b.type_into("#byname", "alice").await;
        b.type_into("form[action$='/ack'] input[name=note]", "looking")
            .await;
        b.click("#ack").await;
        b.wait_text("Acknowledged.", Duration::from_secs(10)).await;
        let full = d.get_json(&format!("/api/v1/incidents/{}", ids[0])).await;
        assert_eq!(full["status"], "acknowledged", "{full}");
        assert_eq!(full["acknowledged_by"], "alice", "{full}");
        assert!(
            full["timeline"]
                .as_array()
                .expect("timeline")
                .iter()
                .any(|e| e["kind"] == "acknowledged" && e["by"] == "alice"),
            "{full}"
        );
        // Resolve with workaround and root cause, then close: open to closed.
        b.type_into("form[action$='/resolve'] textarea[name=workaround]", "failed over to the replica").await;
        b.type_into("form[action$='/resolve'] textarea[name=root_cause]", "disk controller").await;
        b.click("#resolve").await;
        b.wait_text("Resolved.", Duration::from_secs(10)).await;
        b.click("#close").await;
        b.wait_text("Closed.", Duration::from_secs(10)).await;
        let full = d.get_json(&format!("/api/v1/incidents/{}", ids[0])).await;
        assert_eq!(full["status"], "closed", "{full}");
        assert_eq!(full["workaround"], "failed over to the replica");
        assert_eq!(full["root_cause"], "disk controller");
        assert_eq!(full["resolved_by"], "alice");
        // The report is rendered, not shown as Markdown source.
        let report = b.text(".report article h1").await;
        assert!(report.starts_with("Incident report"), "{report}");

        // A conflict is a message: someone else acknowledges first.
        b.goto(&format!("{}/incidents/{}", d.base, ids[1])).await;
        let (s, _) = d
            .post_json(
                &format!("/api/v1/incidents/{}/ack", ids[1]),
                json!({"by": "bob"}),
            )
            .await;
        assert_eq!(s, 200);
        b.click("#ack").await;
        b.wait_text("only an open incident can be acknowledged", Duration::from_secs(10))
            .await;
        b.find("h1").await;
        b.quit().await;
        d.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_created_in_the_board_suppresses_the_next_matching_alert() {
    bounded("silence from the board", async {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = Daemon::start(&dir.path().join("data"), shipped_rules(), |_| {}).await;
        let made = post_alerts(
            &d,
            json!([alert(
                "NodeFilesystemFull",
                &[("instance", "db-1"), ("severity", "warning")],
                "fs full"
            )]),
        )
        .await;
        let id = made["created"][0].as_str().expect("id").to_string();
        let b = Browser::start(dir.path(), 1280, 900).await;
        b.goto(&format!("{}/incidents/{id}", d.base)).await;
        // Prefilled from the alert's labels.
        b.click("a[href^='/silences/new']").await;
        b.wait_text("Would silence 1 firing alert", Duration::from_secs(10))
            .await;
        let prefilled = b
            .script("return document.getElementById('matchers').value")
            .await;
        assert!(
            prefilled
                .as_str()
                .is_some_and(|m| m.contains(r#"alertname="NodeFilesystemFull""#)
                    && m.contains(r#"instance="db-1""#)),
            "{prefilled}"
        );
        // Widen it to every instance, preview, then create.
        b.script("document.getElementById('matchers').value = 'alertname=\"NodeFilesystemFull\"'")
            .await;
        // The preview answers with a new page that shows the same count:
        // wait for that page, not for the text the old one already has.
        b.mark_page().await;
        b.click("#preview").await;
        b.wait_new_page(Duration::from_secs(10)).await;
        b.wait_text("Would silence 1 firing alert", Duration::from_secs(10))
            .await;
        b.type_into("#comment", "CHG-42 disk migration").await;
        b.click("#create").await;
        b.wait_text("created.", Duration::from_secs(10)).await;
        let silences = d.get_json("/api/v1/silences").await;
        assert_eq!(silences.as_array().map(Vec::len), Some(1), "{silences}");
        assert!(silences[0]["comment"]
            .as_str()
            .is_some_and(|c| c.contains("CHG-42 disk migration")));
        // The next matching alert is kept out of incidents.
        let next = post_alerts(
            &d,
            json!([alert(
                "NodeFilesystemFull",
                &[("instance", "db-2"), ("severity", "warning")],
                "fs full"
            )]),
        )
        .await;
        assert_eq!(next["suppressed"], 1, "{next}");
        b.goto(&format!("{}/suppressed", d.base)).await;
        b.wait_text("db-2", Duration::from_secs(10)).await;
        assert!(b.text("table.suppressed tbody").await.contains("silenced"));
        // Expire it from the silences page.
        b.goto(&format!("{}/silences", d.base)).await;
        b.click("table.silences button[type=submit]").await;
        b.wait_text("expired.", Duration::from_secs(10)).await;
        let silences = d.get_json("/api/v1/silences").await;
        assert_eq!(silences[0]["state"], "expired", "{silences}");
        b.quit().await;
        d.stop().await;
    })
    .await;
}

/// The incident id of an incident page's URL.
fn id_in(url: &str) -> String {
    url.split("/incidents/")
        .nth(1)
        .and_then(|r| r.split(['?', '#']).next())
        .unwrap_or_else(|| panic!("not an incident page: {url}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_desk_agent_opens_merges_and_reprioritises_from_the_board() {
    bounded("service desk", async {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = Daemon::start(&dir.path().join("data"), shipped_rules(), |_| {}).await;
        // An incident opened by an alert: the same problem, seen by monitoring.
        let made = post_alerts(
            &d,
            json!([alert(
                "PayrollLoginErrors",
                &[("severity", "warning"), ("service", "payroll")],
                "login errors at 40%"
            )]),
        )
        .await;
        let by_alert = made["created"][0].as_str().expect("id").to_string();
        // And one that is closed already.
        let (s, closed) = d
            .post_json(
                "/api/v1/incidents",
                json!({"title": "Old printer jam", "by": "desk"}),
            )
            .await;
        assert_eq!(s, 201, "{closed}");
        let closed = closed["id"].as_str().expect("id").to_string();
        for op in ["resolve", "close"] {
            let (s, body) = d
                .post_json(
                    &format!("/api/v1/incidents/{closed}/{op}"),
                    json!({"by": "desk"}),
                )
                .await;
            assert_eq!(s, 200, "{op}: {body}");
        }

        let b = Browser::start(dir.path(), 1280, 900).await;
        b.goto(&format!("{}/", d.base)).await;
        b.type_into("#byname", "kim").await;
        // The header links to the form.
        b.click("#new-incident").await;
        b.wait_text("Open an incident", Duration::from_secs(10))
            .await;
        b.type_into("#title", "Payroll portal refuses logins").await;
        b.type_into("#description", "Since 09:00 nobody in HR can log in.")
            .await;
        b.click("#category option[value=account]").await;
        b.click("#impact option[value=medium]").await;
        b.click("#urgency option[value=high]").await;
        b.type_into("#reporter", "Aiko (HR)").await;
        b.type_into("#contact", "ext. 4411").await;
        b.type_into("#service", "payroll").await;
        // Began at 09:00 the browser's local time, yesterday; and labels.
        b.script("document.getElementById('occurred_at_local').value = '2026-12-01T09:00'")
            .await;
        let began = b
            .script("return new Date('2026-12-01T09:00').toISOString()")
            .await;
        let began =
            chrono::DateTime::parse_from_rfc3339(began.as_str().expect("iso")).expect("time");
        b.type_into("#labels", "team=hr-apps\nsite=\"tokyo\"").await;
        b.click("#open").await;
        b.wait_text("Incident opened.", Duration::from_secs(10))
            .await;
        let manual = id_in(&b.url().await);
        assert_eq!(b.text("#source").await, "manual");
        assert_eq!(b.text("#reporter").await, "Aiko (HR)");
        assert_eq!(b.text("#contact").await, "ext. 4411");
        assert_eq!(b.text("#service").await, "payroll");
        assert_eq!(
            b.text("#description").await,
            "Since 09:00 nobody in HR can log in."
        );
        assert!(b.text("h1").await.contains("Payroll portal refuses logins"));
        let full = d.get_json(&format!("/api/v1/incidents/{manual}")).await;
        assert_eq!(full["source"], "manual", "{full}");
        assert_eq!(full["title"], "Payroll portal refuses logins");
        assert_eq!(full["category"], "account");
        assert_eq!(
            (&full["impact"], &full["urgency"]),
            (&json!("medium"), &json!("high"))
        );
        assert_eq!(full["reporter"], "Aiko (HR)");
        assert_eq!(full["contact"], "ext. 4411");
        assert_eq!(full["service"], "payroll");
        assert_eq!(full["description"], "Since 09:00 nobody in HR can log in.");
        let occurred = chrono::DateTime::parse_from_rfc3339(
            full["occurred_at"].as_str().expect("occurred_at"),
        )
        .expect("time");
        assert_eq!(
            occurred, began,
            "began at, in the browser's time zone: {full}"
        );
        assert_eq!(full["labels"]["team"], "hr-apps", "{full}");
        assert_eq!(full["labels"]["site"], "tokyo", "{full}");
        assert!(
            full["timeline"]
                .as_array()
                .expect("timeline")
                .iter()
                .any(|e| e["kind"] == "created" && e["by"] == "kim"),
            "opened by the name in the header: {full}"
        );
        let prio = full["priority"].as_str().expect("priority").to_string();
        assert_ne!(prio, "P1", "the matrix, not the override yet: {full}");
        assert!(b.text("h1 .prio").await.contains(&prio));

        // Merge the alert's incident into it, from the alert's incident.
        b.goto(&format!("{}/incidents/{by_alert}", d.base)).await;
        b.type_into("#merge-into", &manual).await;
        b.click("#merge").await;
        b.wait_text("Merged: this incident is closed", Duration::from_secs(10))
            .await;
        assert!(b.text("#merged-into").await.contains(&manual));
        assert_eq!(b.text("#status").await, "closed");
        let merged = d.get_json(&format!("/api/v1/incidents/{by_alert}")).await;
        assert_eq!(merged["merged_into"], json!(manual), "{merged}");
        assert_eq!(merged["status"], "closed");
        let full = d.get_json(&format!("/api/v1/incidents/{manual}")).await;
        assert_eq!(full["alert_count"], 1, "the alert moved: {full}");
        assert!(
            full["timeline"]
                .as_array()
                .expect("timeline")
                .iter()
                .any(|e| e["kind"] == "merged" && e["by"] == "kim"),
            "{full}"
        );
        // The link on the merged incident leads to the target, with the alert.
        b.click("#merged-into a").await;
        b.wait_text("login errors at 40%", Duration::from_secs(10))
            .await;
        assert_eq!(id_in(&b.url().await), manual);

        // A refused merge (into a closed incident) is a message; nothing changes.
        b.type_into("#merge-into", &closed).await;
        b.click("#merge").await;
        b.wait_text("is closed; reopen it first", Duration::from_secs(10))
            .await;
        b.find("h1").await;
        let full = d.get_json(&format!("/api/v1/incidents/{manual}")).await;
        assert_eq!(full["merged_into"], Value::Null, "{full}");
        assert_ne!(full["status"], "closed", "{full}");

        // An override without a reason is refused (past the browser's own
        // check of the required field), with the engine's message.
        b.goto(&format!("{}/incidents/{manual}", d.base)).await;
        b.script("document.getElementById('override-reason').removeAttribute('required')")
            .await;
        b.click("#override-priority option[value=P1]").await;
        b.click("#override-set").await;
        b.wait_text(
            "reason: say why the priority changes",
            Duration::from_secs(10),
        )
        .await;
        let full = d.get_json(&format!("/api/v1/incidents/{manual}")).await;
        assert_eq!(full["priority_override"], Value::Null, "{full}");

        // Override with a reason.
        b.click("#override-priority option[value=P1]").await;
        b.type_into("#override-reason", "payday: every employee affected")
            .await;
        b.click("#override-set").await;
        b.wait_text("Priority overridden.", Duration::from_secs(10))
            .await;
        let shown = b.text("#override").await;
        assert!(
            shown.contains("P1")
                && shown.contains("payday: every employee affected")
                && shown.contains("kim"),
            "{shown}"
        );
        assert!(b.text("h1 .prio").await.contains("P1"));
        let full = d.get_json(&format!("/api/v1/incidents/{manual}")).await;
        assert_eq!(full["priority"], "P1", "{full}");
        assert_eq!(full["priority_override"]["priority"], "P1");
        assert_eq!(
            full["priority_override"]["reason"],
            "payday: every employee affected"
        );
        assert_eq!(full["priority_override"]["by"], "kim");

        // Link it to the closed one, then clear the override.
        b.click("#link-relation option[value=caused_by]").await;
        b.type_into("#link-to", &closed).await;
        b.click("#link").await;
        b.wait_text("Linked.", Duration::from_secs(10)).await;
        let rel = b.text("#related .relation-caused_by").await;
        assert!(
            rel.starts_with("Caused by") && rel.contains(&closed),
            "{rel}"
        );
        let other = d.get_json(&format!("/api/v1/incidents/{closed}")).await;
        assert_eq!(other["relations"][0]["relation"], "causes", "{other}");
        b.click("#override-clear").await;
        b.wait_text("Priority override cleared", Duration::from_secs(10))
            .await;
        let full = d.get_json(&format!("/api/v1/incidents/{manual}")).await;
        assert_eq!(full["priority_override"], Value::Null, "{full}");
        b.quit().await;
        d.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_splits_alerts_off_into_a_new_incident_from_the_board() {
    bounded("split", async {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = Daemon::start(&dir.path().join("data"), shipped_rules(), |_| {}).await;
        // Two alerts one rule groups together (alertname, service,
        // namespace) that turn out to be two problems.
        let made = post_alerts(
            &d,
            json!([
                alert(
                    "CheckoutErrors",
                    &[
                        ("service", "checkout"),
                        ("pod", "checkout-a"),
                        ("severity", "warning")
                    ],
                    "errors on pod a"
                ),
                alert(
                    "CheckoutErrors",
                    &[
                        ("service", "checkout"),
                        ("pod", "checkout-b"),
                        ("severity", "warning")
                    ],
                    "errors on pod b: its own disk is full"
                ),
            ]),
        )
        .await;
        let id = made["created"][0].as_str().expect("id").to_string();
        let full = d.get_json(&format!("/api/v1/incidents/{id}")).await;
        assert_eq!(full["alert_count"], 2, "{full}");
        let fp_b = full["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .find(|a| a["labels"]["pod"] == "checkout-b")
            .and_then(|a| a["fingerprint"].as_str())
            .expect("pod b's alert")
            .to_string();

        let b = Browser::start(dir.path(), 1280, 900).await;
        b.goto(&format!("{}/incidents/{id}", d.base)).await;
        b.type_into("#byname", "lee").await;
        // Nothing ticked: a message, nothing changes.
        b.click("#split").await;
        b.wait_text("tick the alerts that leave", Duration::from_secs(10))
            .await;
        let same = d.get_json(&format!("/api/v1/incidents/{id}")).await;
        assert_eq!(same["alert_count"], 2, "{same}");

        b.click(&format!("input[name='split.{fp_b}']")).await;
        b.type_into("#split-title", "Checkout pod b: disk full")
            .await;
        b.click("#split").await;
        b.wait_text("Opened by a split", Duration::from_secs(10))
            .await;
        let new = id_in(&b.url().await);
        assert_ne!(new, id, "lands on the new incident");
        assert!(b.text("h1").await.contains("Checkout pod b: disk full"));
        assert!(b.text("body").await.contains("its own disk is full"));
        let split = d.get_json(&format!("/api/v1/incidents/{new}")).await;
        assert_eq!(split["alert_count"], 1, "{split}");
        assert_eq!(split["alerts"][0]["fingerprint"], json!(fp_b), "{split}");
        assert!(
            split["timeline"]
                .as_array()
                .expect("timeline")
                .iter()
                .any(|e| e["by"] == "lee"),
            "split by the name in the header: {split}"
        );
        let old = d.get_json(&format!("/api/v1/incidents/{id}")).await;
        assert_eq!(old["alert_count"], 1, "{old}");
        assert_eq!(old["alerts"][0]["labels"]["pod"], "checkout-a", "{old}");
        // With one alert left there is nothing to split off.
        b.goto(&format!("{}/incidents/{id}", d.base)).await;
        b.find("h1").await;
        assert!(!b.text("body").await.contains("Split ticked alerts off"));
        b.quit().await;
        d.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_alert_appears_on_an_open_board_without_a_reload() {
    bounded("live board", async {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = Daemon::start(&dir.path().join("data"), shipped_rules(), |_| {}).await;
        post_alerts(&d, json!([v2_alert("FirstOne", &[("instance", "a")])])).await;
        let b = Browser::start(dir.path(), 1280, 900).await;
        b.goto(&format!("{}/", d.base)).await;
        b.wait_text("FirstOne", Duration::from_secs(10)).await;
        b.wait_text("● live", Duration::from_secs(10)).await;
        // A mark a reload would wipe.
        b.script("window.notReloaded = true").await;
        post_alerts(
            &d,
            json!([alert(
                "PaymentsLatencyHigh",
                &[("severity", "critical"), ("service", "payments")],
                "p99 over 2s"
            )]),
        )
        .await;
        b.wait_text("p99 over 2s", Duration::from_secs(15)).await;
        assert_eq!(
            b.script("return window.notReloaded === true").await,
            json!(true)
        );

        // An open incident page follows its incident: someone else's
        // acknowledgement and note show, and its actions change.
        let list = d.get_json("/api/v1/incidents").await;
        let id = list
            .as_array()
            .and_then(|l| {
                l.iter()
                    .find(|i| i["title"].as_str().unwrap_or("").contains("FirstOne"))
            })
            .and_then(|i| i["id"].as_str())
            .expect("FirstOne's incident")
            .to_string();
        b.goto(&format!("{}/incidents/{id}", d.base)).await;
        b.wait_text("● live", Duration::from_secs(10)).await;
        b.find("#ack").await;
        b.script("window.notReloaded = true").await;
        let (s, _) = d
            .post_json(
                &format!("/api/v1/incidents/{id}/ack"),
                json!({"by": "bob", "note": "taking it"}),
            )
            .await;
        assert_eq!(s, 200);
        b.wait_text("taking it", Duration::from_secs(15)).await;
        assert_eq!(b.text("#status").await, "acknowledged");
        let ack_gone = b
            .script("return document.getElementById('ack') === null")
            .await;
        assert_eq!(ack_gone, json!(true), "the acknowledge form is gone");
        assert_eq!(
            b.script("return window.notReloaded === true").await,
            json!(true)
        );
        b.quit().await;
        d.stop().await;
    })
    .await;
}

async fn start_with_tokens(dir: &Path) -> Daemon {
    let file = dir.join("tokens.yaml");
    std::fs::write(
        &file,
        format!(
            "tokens:\n  - name: oncall-alice\n    role: operator\n    sha256: {}\n  - name: grafana\n    role: viewer\n    sha256: {}\n",
            digest_hex("s-operator-board"),
            digest_hex("s-viewer-board")
        ),
    )
    .expect("tokens file");
    Daemon::start(&dir.join("data"), shipped_rules(), |c| {
        c.auth.tokens_file = Some(file)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_the_board_refuses_without_login_and_works_after_it() {
    bounded("login", async {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = start_with_tokens(dir.path()).await;
        let (s, made) = {
            let r = d
                .http
                .post(format!("{}/api/v2/alerts", d.base))
                .bearer_auth("s-operator-board")
                .json(&json!([alert(
                    "CacheDown",
                    &[("severity", "critical")],
                    "redis gone"
                )]))
                .send()
                .await
                .expect("post");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        };
        assert_eq!(s, 200, "{made}");
        let id = made["created"][0].as_str().expect("id").to_string();

        // Without a login: the login page, for every board page.
        let plain = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        for p in ["/", &format!("/incidents/{id}"), "/silences", "/suppressed"] {
            let r = plain
                .get(format!("{}{p}", d.base))
                .send()
                .await
                .expect("get");
            assert_eq!(r.status().as_u16(), 401, "{p}");
            assert!(r.text().await.expect("body").contains("Log in"), "{p}");
        }
        // A form posted without a session: the login, then the board (a
        // post cannot be repeated by a redirect).
        let r = plain
            .post(format!("{}/incidents/{id}/ack", d.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("note=x")
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), 401);
        assert!(r
            .text()
            .await
            .expect("body")
            .contains(r#"name="next" value="&#x2f;""#));
        // The cookie a login sets.
        let r = plain
            .post(format!("{}/login", d.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("token=s-viewer-board&next=%2F")
            .send()
            .await
            .expect("login");
        assert_eq!(r.status().as_u16(), 303);
        let cookie = r
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .expect("a cookie")
            .to_string();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        // A viewer may look but not act: no forms, and a post is refused.
        let session = cookie.split(';').next().expect("value").to_string();
        let page = plain
            .get(format!("{}/incidents/{id}", d.base))
            .header("cookie", &session)
            .send()
            .await
            .expect("page");
        assert_eq!(page.status().as_u16(), 200);
        let page = page.text().await.expect("page");
        assert!(
            page.contains("grafana") && !page.contains(r#"id="ack""#),
            "{page}"
        );
        let r = plain
            .post(format!("{}/incidents/{id}/ack", d.base))
            .header("cookie", &session)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("csrf=whatever")
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), 403);
        // The session cookie does not carry API writes.
        let r = plain
            .post(format!("{}/api/v1/incidents/{id}/ack", d.base))
            .header("cookie", &session)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), 401);

        let b = Browser::start(dir.path(), 1280, 900).await;
        b.goto(&format!("{}/incidents/{id}", d.base)).await;
        b.wait_text("Log in", Duration::from_secs(10)).await;
        b.type_into("#token", "not-a-token").await;
        b.click("#login").await;
        b.wait_text("That token is not known.", Duration::from_secs(10))
            .await;
        b.type_into("#token", "s-operator-board").await;
        b.click("#login").await;
        // Back where it was going, logged in.
        b.wait_text("oncall-alice", Duration::from_secs(10)).await;
        assert!(b.url().await.ends_with(&format!("/incidents/{id}")));
        let http_only = b.script("return document.cookie").await;
        assert_eq!(
            http_only,
            json!(""),
            "the session cookie is not readable by scripts"
        );
        b.click("#ack").await;
        b.wait_text("Acknowledged.", Duration::from_secs(10)).await;
        let full = d
            .http
            .get(format!("{}/api/v1/incidents/{id}", d.base))
            .bearer_auth("s-viewer-board")
            .send()
            .await
            .expect("get")
            .json::<Value>()
            .await
            .expect("json");
        assert_eq!(full["acknowledged_by"], "oncall-alice", "{full}");
        // The event stream works with the session too.
        b.wait_text("● live", Duration::from_secs(10)).await;
        // Logging out ends the session.
        b.click("header button.link").await;
        b.wait_text("Log in", Duration::from_secs(10)).await;
        b.goto(&format!("{}/", d.base)).await;
        b.wait_text("API token", Duration::from_secs(10)).await;
        b.quit().await;
        d.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshots_and_a_phone_sized_window() {
    bounded("screenshots", async {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = Daemon::start(&dir.path().join("data"), shipped_rules(), |_| {}).await;
        let made = post_alerts(
            &d,
            json!([
                alert(
                    "DatabaseDown",
                    &[
                        ("severity", "critical"),
                        ("service", "db"),
                        ("env", "prod"),
                        ("instance", "db-1")
                    ],
                    "primary database unreachable"
                ),
                alert(
                    "KubePodCrashLooping",
                    &[
                        ("severity", "critical"),
                        ("namespace", "shop"),
                        ("pod", "cart-7d9f"),
                        ("env", "prod")
                    ],
                    "cart pod restarting"
                ),
                alert(
                    "HighLatency",
                    &[("severity", "warning"), ("service", "search")],
                    "p99 latency 1.8s"
                ),
                alert(
                    "DiskAlmostFull",
                    &[("severity", "warning"), ("instance", "web-1")],
                    "disk 91% full"
                ),
                alert(
                    "CertificateExpiry",
                    &[("severity", "info"), ("instance", "api.example")],
                    "certificate expires in 20 days"
                ),
            ]),
        )
        .await;
        let id = made["created"][0].as_str().expect("id").to_string();
        let second = made["created"][1].as_str().expect("id").to_string();
        let (s, _) = d
            .post_json(
                &format!("/api/v1/incidents/{second}/ack"),
                json!({"by": "alice", "note": "restarting the cart deployment"}),
            )
            .await;
        assert_eq!(s, 200);
        let (s, _) = d
            .post_json(
                &format!("/api/v1/incidents/{id}/notes"),
                json!({"by": "bob", "note": "failover started"}),
            )
            .await;
        assert_eq!(s, 200);
        let b = Browser::start(dir.path(), 1280, 860).await;
        b.goto(&format!("{}/", d.base)).await;
        b.wait_text("primary database unreachable", Duration::from_secs(10))
            .await;
        let board = b.screenshot().await;
        b.goto(&format!("{}/incidents/{id}", d.base)).await;
        b.wait_text("failover started", Duration::from_secs(10))
            .await;
        let incident = b.screenshot().await;
        // A phone: no sideways scrolling, every incident still listed.
        b.resize(390, 844).await;
        b.goto(&format!("{}/", d.base)).await;
        b.wait_text("primary database unreachable", Duration::from_secs(10))
            .await;
        let fits = b
            .script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
            .await;
        assert_eq!(fits, json!(true), "no horizontal scroll on a phone");
        let phone = b.screenshot().await;
        for (name, png) in [
            ("board.png", &board),
            ("incident.png", &incident),
            ("board-phone.png", &phone),
        ] {
            assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
            let to = if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("docs/img")
                    .join(name)
            } else {
                dir.path().join(name)
            };
            std::fs::create_dir_all(to.parent().expect("dir")).expect("mkdir");
            std::fs::write(&to, png).expect("write screenshot");
        }
        b.quit().await;
        d.stop().await;
    })
    .await;
}

/// people.yaml for the on-call pages: alice holds `primary` every day.
const ONCALL_RULES: &str = r#"
correlate:
  - name: db
    match: ['service="db"']
    team: dba
people:
  - {name: alice, time_zone: Europe/Berlin, email: alice@example.com}
  - {name: bob, time_zone: America/New_York, email: bob@example.com}
teams:
  - name: dba
    members: [alice, bob]
    schedules:
      - name: primary
        time_zone: Europe/Berlin
        layers:
          - {rotation: daily, handoff: "09:00", start: 2026-01-05, participants: [alice]}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_page_takes_an_override_and_an_ack_link_confirms_before_acknowledging() {
    bounded("schedule page and ack link", async {
        let dir = tempfile::tempdir().expect("tempdir");
        let rules = dir.path().join("rules");
        std::fs::create_dir_all(&rules).expect("rules dir");
        std::fs::write(rules.join("people.yaml"), ONCALL_RULES).expect("people");
        let data = dir.path().join("data");
        let d = Daemon::start(&data, incidentd::rules::Source::Dir(rules.clone()), |_| {}).await;
        let b = Browser::start(dir.path(), 1280, 900).await;
        // Who is on call, then the schedule in its own time zone.
        b.goto(&format!("{}/oncall", d.base)).await;
        b.wait_text("alice", Duration::from_secs(10)).await;
        b.click("a[href='/schedules/primary']").await;
        b.wait_text("Shifts, next 14 days", Duration::from_secs(10))
            .await;
        assert!(b.text("main").await.contains("times in Europe/Berlin"));
        assert_eq!(
            b.text("table.shifts tbody tr td.shift-person").await,
            "alice"
        );
        assert!(b.source().await.contains("/api/v1/schedules/primary.ics"));
        // bob covers the next two hours.
        b.type_into("#byname", "carol").await;
        b.script("document.querySelector('#override-person').value = 'bob'; return true")
            .await;
        b.script("document.querySelector('#override-duration').value = '2h'; return true")
            .await;
        b.click("#override-add").await;
        b.wait_text("bob covers primary", Duration::from_secs(10))
            .await;
        assert_eq!(b.text("table.shifts tbody tr td.shift-person").await, "bob");
        let now = d.get_json("/api/v1/oncall").await;
        assert_eq!(now["teams"][0]["schedules"][0]["person"], "bob");

        // An acknowledgement link, signed with the key the daemon made.
        let made = post_alerts(
            &d,
            json!([alert("DbDown", &[("service", "db")], "db down")]),
        )
        .await;
        let id = made["created"][0].as_str().expect("id").to_string();
        let hex = std::fs::read_to_string(data.join("ack-link.key")).expect("key file");
        let mut key = [0u8; 32];
        for (i, k) in key.iter_mut().enumerate() {
            *k = u8::from_str_radix(&hex.trim()[2 * i..2 * i + 2], 16).expect("hex");
        }
        let token = incidentd::model::ack_link::AckKey::from_bytes(key).sign(
            &incidentd::model::ack_link::AckClaim {
                incident: incidentd::model::IncidentKey::parse(&id).expect("key"),
                person: "bob".into(),
                expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
            },
        );
        b.goto(&format!("{}/ack/{token}", d.base)).await;
        b.wait_text("You were paged as bob", Duration::from_secs(10))
            .await;
        assert_eq!(
            d.get_json(&format!("/api/v1/incidents/{id}")).await["status"],
            "open",
            "opening the link changes nothing"
        );
        b.click("#ack-confirm").await;
        b.wait_text("acknowledged as bob", Duration::from_secs(10))
            .await;
        let i = d.get_json(&format!("/api/v1/incidents/{id}")).await;
        assert_eq!(i["status"], "acknowledged");
        assert_eq!(i["acknowledged_by"], "bob");
        // Opening it again: nothing to do.
        b.goto(&format!("{}/ack/{token}", d.base)).await;
        b.wait_text("Nothing to do", Duration::from_secs(10)).await;
        b.quit().await;
        d.stop().await;
    })
    .await;
}
