//! The service desk over HTTP, as an agent would use it: open incidents by
//! hand, merge, link, split and re-prioritise them, and page through the
//! list with filters. The real server on an ephemeral port, a real redb
//! file in a temp dir, the shipped rules.

mod common;

use common::{shipped_rules, v2_alert, Daemon};
use serde_json::{json, Value};

async fn alert(d: &Daemon, name: &str, labels: &[(&str, &str)]) -> String {
    let (s, body) = d
        .post_json("/api/v2/alerts", json!([v2_alert(name, labels)]))
        .await;
    assert_eq!(s, 200, "{body}");
    body["created"][0]
        .as_str()
        .or_else(|| body["updated"][0].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no incident in {body}"))
}

/// Sends an alert that is already firing (a repeat).
async fn resend(d: &Daemon, name: &str, labels: &[(&str, &str)]) {
    let (s, body) = d
        .post_json("/api/v2/alerts", json!([v2_alert(name, labels)]))
        .await;
    assert_eq!((s, body["deduplicated"].as_u64()), (200, Some(1)), "{body}");
}

/// The repeat count of an incident's alert named `name`.
async fn repeats(d: &Daemon, id: &str, name: &str) -> Option<u64> {
    let inc = d.get_json(&format!("/api/v1/incidents/{id}")).await;
    inc["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["labels"]["alertname"] == name)
        .and_then(|a| a["repeat_count"].as_u64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_opens_merges_links_splits_and_reprioritises() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Daemon::start(dir.path(), shipped_rules(), |_| {}).await;

    // A phone call: the payroll portal refuses logins.
    let (s, manual) = d
        .post_json(
            "/api/v1/incidents",
            json!({"title": "Payroll portal refuses logins", "description": "Since 09:10 every user gets 'invalid session'",
                   "category": "account", "impact": "medium", "urgency": "high", "reporter": "Aiko (HR)",
                   "contact": "ext. 4411", "service": "payroll", "labels": {"team": "identity"}, "by": "desk-1"}),
        )
        .await;
    assert_eq!(s, 201, "{manual}");
    assert_eq!(manual["source"], "manual");
    assert_eq!(manual["priority"], "P2", "medium × high from the matrix");
    assert_eq!(manual["reporter"], "Aiko (HR)");
    assert_eq!(manual["service"], "payroll");
    assert_eq!(manual["alert_count"], 0);
    let mid = manual["id"].as_str().expect("id").to_string();
    let shown = d.get_json(&format!("/api/v1/incidents/{mid}")).await;
    assert_eq!(shown["timeline"][0]["kind"], "created");
    assert_eq!(shown["timeline"][0]["by"], "desk-1");
    // It has the same lifecycle.
    let (s, acked) = d
        .post_json(
            &format!("/api/v1/incidents/{mid}/ack"),
            json!({"by": "ann"}),
        )
        .await;
    assert_eq!((s, acked["status"].as_str()), (200, Some("acknowledged")));
    // Bad input names the field.
    let (s, e) = d
        .post_json("/api/v1/incidents", json!({"title": " ", "impact": "high"}))
        .await;
    assert_eq!(s, 400);
    assert!(
        e["error"].as_str().is_some_and(|m| m.contains("title")),
        "{e}"
    );
    let (s, e) = d
        .post_json("/api/v1/incidents", json!({"title": "x", "impact": "huge"}))
        .await;
    assert_eq!(s, 400);
    assert!(
        e["error"].as_str().is_some_and(|m| m.contains("impact")),
        "{e}"
    );

    // Two alert incidents that turn out to be one outage: merge.
    let a = alert(
        &d,
        "HTTPCheckFailed",
        &[("service", "payroll"), ("severity", "warning")],
    )
    .await;
    let b = alert(
        &d,
        "LoginErrorsHigh",
        &[("service", "payroll"), ("severity", "critical")],
    )
    .await;
    assert_ne!(a, b);
    let (s, merged) = d
        .post_json(
            &format!("/api/v1/incidents/{a}/merge"),
            json!({"into": b, "by": "ann"}),
        )
        .await;
    assert_eq!(s, 200, "{merged}");
    assert_eq!(merged["id"], b.as_str());
    assert_eq!(merged["alert_count"], 2);
    let gone = d.get_json(&format!("/api/v1/incidents/{a}")).await;
    assert_eq!(gone["status"], "closed");
    assert_eq!(gone["merged_into"], b.as_str());
    let target = d.get_json(&format!("/api/v1/incidents/{b}")).await;
    let texts: Vec<String> = target["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|t| t["message"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        texts
            .iter()
            .any(|m| m.starts_with(&format!("[from {a}] opened by alert"))),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|m| m.contains(&format!("{a} merged in"))),
        "{texts:?}"
    );
    // The merged alert now deduplicates into the target.
    resend(
        &d,
        "HTTPCheckFailed",
        &[("service", "payroll"), ("severity", "warning")],
    )
    .await;
    assert_eq!(repeats(&d, &b, "HTTPCheckFailed").await, Some(1));
    // Merging a closed incident is a conflict, not a crash.
    let (s, e) = d
        .post_json(&format!("/api/v1/incidents/{a}/merge"), json!({"into": b}))
        .await;
    assert_eq!(s, 409, "{e}");

    // The manual report and the alert incident are the same problem: link.
    let (s, linked) = d
        .post_json(
            &format!("/api/v1/incidents/{mid}/link"),
            json!({"to": b, "relation": "caused_by", "by": "ann"}),
        )
        .await;
    assert_eq!(s, 200, "{linked}");
    assert_eq!(linked["relations"][0]["to"], b.as_str());
    assert_eq!(linked["relations"][0]["relation"], "caused_by");
    let other = d.get_json(&format!("/api/v1/incidents/{b}")).await;
    assert_eq!(other["relations"][0]["relation"], "causes");
    assert!(other["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .any(|t| t["kind"] == "linked"));
    let (s, _) = d
        .post_json(
            &format!("/api/v1/incidents/{mid}/link"),
            json!({"to": b, "relation": "sideways"}),
        )
        .await;
    assert_eq!(s, 400);

    // Split: one alert of the merged incident is its own problem after all.
    let fps: Vec<(String, String)> = other["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .map(|a| {
            (
                a["fingerprint"].as_str().unwrap_or("").to_string(),
                a["labels"]["alertname"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let (fp, _) = fps
        .iter()
        .find(|(_, n)| n == "HTTPCheckFailed")
        .expect("HTTPCheckFailed alert")
        .clone();
    let (s, split) = d
        .post_json(
            &format!("/api/v1/incidents/{b}/split"),
            json!({"alerts": [fp], "title": "Health check of payroll", "by": "ann"}),
        )
        .await;
    assert_eq!(s, 201, "{split}");
    assert_eq!(split["title"], "Health check of payroll");
    assert_eq!(split["alert_count"], 1);
    let new_id = split["id"].as_str().expect("id").to_string();
    let left = d.get_json(&format!("/api/v1/incidents/{b}")).await;
    assert_eq!(left["alert_count"], 1);
    assert_eq!(left["alerts"].as_array().map(Vec::len), Some(1));
    // The split alert follows its new incident.
    resend(
        &d,
        "HTTPCheckFailed",
        &[("service", "payroll"), ("severity", "warning")],
    )
    .await;
    assert_eq!(repeats(&d, &new_id, "HTTPCheckFailed").await, Some(2));
    assert_eq!(repeats(&d, &b, "HTTPCheckFailed").await, None);
    let (s, e) = d
        .post_json(
            &format!("/api/v1/incidents/{b}/split"),
            json!({"alerts": ["zz"]}),
        )
        .await;
    assert_eq!(s, 400, "{e}");

    // Override: the business says this is P1, with a reason.
    let before = d.get_json(&format!("/api/v1/incidents/{b}")).await;
    let (s, e) = d
        .post_json(
            &format!("/api/v1/incidents/{b}/priority"),
            json!({"priority": "P1"}),
        )
        .await;
    assert_eq!(s, 400, "a reason is required: {e}");
    let (s, over) = d
        .post_json(
            &format!("/api/v1/incidents/{b}/priority"),
            json!({"priority": "P1", "reason": "payday: every employee affected", "by": "duty-manager"}),
        )
        .await;
    assert_eq!(s, 200, "{over}");
    assert_eq!(over["priority"], "P1");
    assert_eq!(
        over["priority_override"]["reason"],
        "payday: every employee affected"
    );
    // SLA deadlines follow P1 (15m to acknowledge), counted from creation.
    let created =
        chrono::DateTime::parse_from_rfc3339(over["created_at"].as_str().expect("t")).expect("t");
    let ack_by =
        chrono::DateTime::parse_from_rfc3339(over["sla"]["acknowledge_by"].as_str().expect("t"))
            .expect("t");
    assert_eq!((ack_by - created).num_minutes(), 15);
    assert_ne!(
        before["sla"]["acknowledge_by"],
        over["sla"]["acknowledge_by"]
    );
    // Clearing lets the rules decide again.
    let (s, cleared) = d
        .post_json(
            &format!("/api/v1/incidents/{b}/priority"),
            json!({"clear": true, "reason": "payday is over"}),
        )
        .await;
    assert_eq!(s, 200, "{cleared}");
    assert_eq!(cleared["priority"], before["priority"]);
    assert!(cleared["priority_override"].is_null());
    let kinds: Vec<Value> = d.get_json(&format!("/api/v1/incidents/{b}")).await["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|t| t["kind"].clone())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "priority_overridden").count(),
        2
    );
    // The report carries the service desk's work.
    let (s, report) = d.get(&format!("/api/v1/incidents/{b}/report")).await;
    assert_eq!(s, 200);
    assert!(report.contains("set by hand"), "{report}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_pages_with_a_cursor_filters_by_labels_and_time_and_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Daemon::start(dir.path(), shipped_rules(), |_| {}).await;
    for i in 0..7 {
        let cluster = if i % 2 == 0 { "eu-1" } else { "us-1" };
        let (s, _) = d
            .post_json(
                "/api/v1/incidents",
                json!({"title": format!("ticket {i}"), "labels": {"cluster": cluster}}),
            )
            .await;
        assert_eq!(s, 201);
    }
    let page = |q: &'static str| {
        let http = d.http.clone();
        let url = format!("{}/api/v1/incidents{q}", d.base);
        async move {
            let r = http.get(url).send().await.expect("GET");
            let status = r.status().as_u16();
            let h = r.headers().clone();
            let body: Value = r.json().await.expect("json");
            (status, h, body)
        }
    };
    let header = |h: &reqwest::header::HeaderMap, n: &str| {
        h.get(n).and_then(|v| v.to_str().ok()).map(str::to_string)
    };
    let (s, h, first) = page("?limit=3").await;
    assert_eq!(s, 200);
    assert_eq!(header(&h, "x-total-count").as_deref(), Some("7"));
    let ids: Vec<&str> = first
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let cursor = header(&h, "x-next-cursor").expect("a next page");
    assert_eq!(cursor, ids[2]);
    let link = header(&h, "link").expect("Link");
    assert!(link.ends_with("rel=\"next\""), "{link}");
    // Follow the Link header to the end.
    let mut seen: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    let mut next = Some(link);
    while let Some(l) = next {
        let path = l
            .trim_start_matches('<')
            .split('>')
            .next()
            .expect("url")
            .to_string();
        let r = d
            .http
            .get(format!("{}{path}", d.base))
            .send()
            .await
            .expect("GET");
        next = header(r.headers(), "link");
        let body: Value = r.json().await.expect("json");
        seen.extend(
            body.as_array()
                .expect("array")
                .iter()
                .filter_map(|i| i["id"].as_str().map(str::to_string)),
        );
    }
    assert_eq!(seen.len(), 7, "{seen:?}");
    let mut dedup = seen.clone();
    dedup.dedup();
    assert_eq!(dedup, seen);
    // Oldest first.
    let (_, _, oldest) = page("?sort=oldest&limit=1").await;
    assert_eq!(oldest[0]["title"], "ticket 0");
    // Label matchers.
    let (_, h, eu) = page("?match=cluster%3D%22eu-1%22").await;
    assert_eq!(eu.as_array().map(Vec::len), Some(4));
    assert_eq!(header(&h, "x-total-count").as_deref(), Some("4"));
    let (_, _, none) = page("?match=cluster%3D~%22ap-.%2A%22").await;
    assert_eq!(none.as_array().map(Vec::len), Some(0));
    // Time ranges.
    let (_, _, future) = page("?created_after=2999-01-01T00:00:00Z").await;
    assert_eq!(future.as_array().map(Vec::len), Some(0));
    let (_, h, past) =
        page("?created_after=2000-01-01T00:00:00Z&created_before=2999-01-01T00:00:00Z&limit=2")
            .await;
    assert_eq!(past.as_array().map(Vec::len), Some(2));
    assert_eq!(header(&h, "x-total-count").as_deref(), Some("7"));
    // Mistakes are 400s that say what is wrong.
    for (q, what) in [
        ("?match=cluster", "match"),
        ("?created_after=yesterday", "created_after"),
        ("?sort=sideways", "sort"),
        ("?after=INC-1", "after"),
        ("?clustr=eu", "unknown parameter"),
    ] {
        let (s, _, body) = page(q).await;
        assert_eq!(s, 400, "{q}");
        assert!(
            body["error"].as_str().is_some_and(|m| m.contains(what)),
            "{q}: {body}"
        );
    }
    d.stop().await;
}
