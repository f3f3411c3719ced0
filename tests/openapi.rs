//! The OpenAPI description (`GET /api/v1/openapi.json`, `docs/openapi.json`):
//! - it describes every route of the route table (`ROUTES`, which the
//!   router and `tests/auth.rs` agree with) and nothing else, and each
//!   documented operation reaches a handler of the running server;
//! - real answers of every endpoint, driven through a scenario on a real
//!   server, validate against the schemas it gives for their status;
//! - `docs/openapi.json` is what the code generates (to refresh it after
//!   an API change: `UPDATE_OPENAPI=1 cargo test --test openapi`).

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::{shipped_rules, Daemon};
use incidentd::http::auth::ROUTES;
use serde_json::{json, Value};

fn served_doc() -> Value {
    serde_json::from_str(&incidentd::http::openapi::json()).expect("the description is JSON")
}

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

#[test]
fn every_route_is_described_and_nothing_else() {
    let doc = served_doc();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut described = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                described.insert((m.to_uppercase(), path.clone()));
                assert!(
                    op["x-incidentd-role"].is_string(),
                    "{m} {path} names its role"
                );
                assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
            }
        }
    }
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _, _)| (m.to_string(), p.to_string()))
        .collect();
    let undocumented: Vec<_> = routes.difference(&described).collect();
    let unrouted: Vec<_> = described.difference(&routes).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routes without a description: {undocumented:?}\ndescribed but not routed: {unrouted:?}"
    );
}

#[test]
fn docs_openapi_json_is_current() {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"));
    let generated = incidentd::http::openapi::json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("write docs/openapi.json");
    }
    let kept = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        kept == generated,
        "docs/openapi.json is stale: the API changed. Refresh it with \
         `UPDATE_OPENAPI=1 cargo test --test openapi` and commit it."
    );
}

/// Validates answers against the description's schemas.
struct Checker {
    doc: Value,
    checked: BTreeSet<(String, String, u16)>,
}

impl Checker {
    /// The JSON Schema of the answer to `method path` with `status`.
    fn schema(&self, method: &str, path: &str, status: u16) -> Option<Value> {
        let op = &self.doc["paths"][path][method.to_lowercase()];
        assert!(op.is_object(), "{method} {path} is not described");
        let resp = &op["responses"][status.to_string()];
        assert!(
            resp.is_object(),
            "{method} {path} answered {status}, which the description does not list: {}",
            op["responses"]
        );
        let schema = resp["content"]["application/json"]["schema"].clone();
        (!schema.is_null()).then(|| {
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "components": self.doc["components"],
                "allOf": [schema],
            })
        })
    }

    /// Sends the request, checks the answer's status is documented and its
    /// JSON body validates; returns the status and body.
    async fn call(
        &mut self,
        d: &Daemon,
        method: &str,
        template: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", d.base);
        let mut req = match method {
            "GET" => d.http.get(&url),
            "POST" => d.http.post(&url),
            "DELETE" => d.http.delete(&url),
            m => panic!("method {m}"),
        };
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = req.send().await.expect("request");
        self.answer(method, template, path, r).await
    }

    /// Sends a board form; like [`Checker::call`].
    async fn call_form(
        &mut self,
        d: &Daemon,
        template: &str,
        path: &str,
        cookie: Option<&str>,
        form: &str,
    ) -> (u16, Value) {
        // The form's own answer (a 303 is not followed).
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let mut req = http
            .post(format!("{}{path}", d.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_string());
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let r = req.send().await.expect("request");
        self.answer("POST", template, path, r).await
    }

    /// Checks an answer: its status is documented, its JSON validates.
    async fn answer(
        &mut self,
        method: &str,
        template: &str,
        path: &str,
        r: reqwest::Response,
    ) -> (u16, Value) {
        let status = r.status().as_u16();
        if template == "/api/v1/events" {
            // A stream that does not end: its status and type are the answer.
            let ct = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            assert!(ct.starts_with("text/event-stream"), "{ct}");
            self.schema(method, template, status);
            self.checked
                .insert((method.to_string(), template.to_string(), status));
            return (status, Value::Null);
        }
        let is_json = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let text = r.text().await.expect("body");
        let value: Value = if is_json {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{method} {path}: bad JSON {e}: {text}"))
        } else {
            Value::String(text.clone())
        };
        if let Some(schema) = self.schema(method, template, status) {
            assert!(is_json, "{method} {path} {status} should be JSON: {text}");
            let v = jsonschema::validator_for(&schema)
                .unwrap_or_else(|e| panic!("schema of {method} {template} {status}: {e}"));
            let errors: Vec<String> = v
                .iter_errors(&value)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(
                errors.is_empty(),
                "{method} {path} {status} does not match its schema:\n{}\nanswer: {value:#}",
                errors.join("\n")
            );
        }
        self.checked
            .insert((method.to_string(), template.to_string(), status));
        (status, value)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_answers_match_their_schemas() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Daemon::start(dir.path(), shipped_rules(), |_| {}).await;
    let mut c = Checker {
        doc: served_doc(),
        checked: BTreeSet::new(),
    };
    // The description served is the one generated.
    let (s, served) = c
        .call(
            &d,
            "GET",
            "/api/v1/openapi.json",
            "/api/v1/openapi.json",
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(served, c.doc);

    // Ingest, every format.
    let pod = |p: &str| {
        json!({"labels": {"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": p,
                          "severity": "critical", "env": "prod"},
               "annotations": {"summary": "crash"}, "generatorURL": "http://prometheus/graph"})
    };
    let (s, created) = c
        .call(
            &d,
            "POST",
            "/api/v2/alerts",
            "/api/v2/alerts",
            Some(json!([pod("a"), pod("b")])),
        )
        .await;
    assert_eq!(s, 200, "{created}");
    let id = created["created"][0]
        .as_str()
        .expect("incident")
        .to_string();
    c.call(
        &d,
        "POST",
        "/api/v2/alerts",
        "/api/v2/alerts",
        Some(json!([{"labels": {}}])),
    )
    .await;
    c.call(
        &d,
        "POST",
        "/api/v1/webhook/alertmanager",
        "/api/v1/webhook/alertmanager",
        Some(json!({"version": "4", "status": "firing", "alerts": [
            {"status": "firing", "labels": {"alertname": "HostDown", "instance": "h1", "severity": "critical"},
             "annotations": {}, "startsAt": "2026-11-23T10:00:00Z"}]})),
    )
    .await;
    c.call(
        &d,
        "POST",
        "/api/v1/alerts",
        "/api/v1/alerts",
        Some(
            json!({"labels": {"alertname": "BackupFailed", "host": "db-1", "severity": "warning"}}),
        ),
    )
    .await;
    let (s, _) = c
        .call(
            &d,
            "POST",
            "/v2/enqueue",
            "/v2/enqueue",
            Some(
                json!({"routing_key": "k", "event_action": "trigger", "dedup_key": "d1",
                        "payload": {"summary": "disk", "source": "db-1", "severity": "error"}}),
            ),
        )
        .await;
    assert_eq!(s, 202);

    // Incidents.
    let t = "/api/v1/incidents";
    c.call(&d, "GET", t, t, None).await;
    c.call(&d, "GET", t, "/api/v1/incidents?status=bogus", None)
        .await;
    let t = "/api/v1/incidents/{id}";
    let (s, full) = c
        .call(&d, "GET", t, &format!("/api/v1/incidents/{id}"), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(full["alerts"].as_array().map(Vec::len), Some(2));
    // The schemas are strict enough to catch a wrong answer.
    let schema = c.schema("GET", t, 200).expect("a JSON schema");
    let v = jsonschema::validator_for(&schema).expect("schema compiles");
    for broken in [
        ("id", json!(7)),
        ("priority", json!("P9")),
        ("alerts", json!([{"fingerprint": "x"}])),
        ("sla", Value::Null),
    ] {
        let mut wrong = full.clone();
        wrong[broken.0] = broken.1.clone();
        assert!(!v.is_valid(&wrong), "{broken:?} passes the schema");
    }
    c.call(&d, "GET", t, "/api/v1/incidents/INC-20000101-0001", None)
        .await;
    let t = "/api/v1/incidents/{id}/report";
    let (s, report) = c
        .call(
            &d,
            "GET",
            t,
            &format!("/api/v1/incidents/{id}/report"),
            None,
        )
        .await;
    assert!(
        s == 200
            && report
                .as_str()
                .is_some_and(|r| r.starts_with("# Incident report"))
    );
    let t = "/api/v1/incidents/{id}/{action}";
    let op = |a: &str| format!("/api/v1/incidents/{id}/{a}");
    c.call(&d, "POST", t, &op("ack"), Some(json!({"by": "alice"})))
        .await;
    c.call(
        &d,
        "POST",
        t,
        &op("notes"),
        Some(json!({"by": "bob", "note": "n"})),
    )
    .await;
    let (s, _) = c
        .call(&d, "POST", t, &op("close"), Some(json!({"by": "alice"})))
        .await;
    assert_eq!(s, 409);
    c.call(&d, "POST", t, &op("resolve"), Some(json!({"by": "alice"})))
        .await;
    c.call(&d, "POST", t, &op("nope"), Some(json!({}))).await;
    // The service desk: open by hand, then link, override, split, merge.
    let (s, manual) = c
        .call(
            &d,
            "POST",
            "/api/v1/incidents",
            "/api/v1/incidents",
            Some(json!({"title": "Mail is slow", "impact": "low", "urgency": "high", "reporter": "desk"})),
        )
        .await;
    assert_eq!(s, 201);
    c.call(
        &d,
        "POST",
        "/api/v1/incidents",
        "/api/v1/incidents",
        Some(json!({"title": ""})),
    )
    .await;
    let mid = manual["id"].as_str().expect("id").to_string();
    let mop = |a: &str| format!("/api/v1/incidents/{mid}/{a}");
    let (s, _) = c
        .call(
            &d,
            "POST",
            t,
            &mop("link"),
            Some(json!({"to": id, "relation": "related"})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = c
        .call(
            &d,
            "POST",
            t,
            &mop("priority"),
            Some(json!({"priority": "P2", "reason": "VIP"})),
        )
        .await;
    assert_eq!(s, 200);
    c.call(
        &d,
        "POST",
        t,
        &mop("priority"),
        Some(json!({"priority": "P2"})),
    )
    .await;
    let fp = full["alerts"][0]["fingerprint"]
        .as_str()
        .expect("fp")
        .to_string();
    let (s, split) = c
        .call(&d, "POST", t, &op("split"), Some(json!({"alerts": [fp]})))
        .await;
    assert_eq!(s, 201);
    let (s, _) = c
        .call(
            &d,
            "POST",
            t,
            &mop("merge"),
            Some(json!({"into": split["id"]})),
        )
        .await;
    assert_eq!(s, 200);
    c.call(&d, "POST", t, &op("assign"), Some(json!({"colour": "red"})))
        .await;

    // Silences, incidentd's shape.
    let t = "/api/v1/silences";
    let (s, made) = c
        .call(
            &d,
            "POST",
            t,
            t,
            Some(
                json!({"matchers": ["alertname=\"DiskSlow\""], "duration": "1h",
                        "created_by": "alice", "comment": "CHG-1"}),
            ),
        )
        .await;
    assert_eq!(s, 200, "{made}");
    let sil = made["silence_id"].as_str().expect("id").to_string();
    c.call(
        &d,
        "POST",
        t,
        t,
        Some(json!({"matchers": [], "duration": "1h"})),
    )
    .await;
    c.call(&d, "GET", t, t, None).await;
    let t = "/api/v1/silences/{id}";
    c.call(&d, "GET", t, &format!("/api/v1/silences/{sil}"), None)
        .await;
    c.call(&d, "GET", t, "/api/v1/silences/SIL-none", None)
        .await;
    // The shipped rules' Watchdog heartbeat, and a name no rule has.
    let hb = "/api/v1/heartbeats/{name}";
    c.call(&d, "POST", hb, "/api/v1/heartbeats/Watchdog", None)
        .await;
    c.call(&d, "POST", hb, "/api/v1/heartbeats/none", None)
        .await;
    c.call(
        &d,
        "POST",
        "/api/v2/alerts",
        "/api/v2/alerts",
        Some(json!([{"labels": {"alertname": "DiskSlow"}}])),
    )
    .await;
    let (_, sup) = c
        .call(
            &d,
            "GET",
            "/api/v1/alerts/suppressed",
            "/api/v1/alerts/suppressed",
            None,
        )
        .await;
    assert_eq!(sup.as_array().map(Vec::len), Some(1), "{sup}");
    c.call(&d, "DELETE", t, &format!("/api/v1/silences/{sil}"), None)
        .await;
    c.call(&d, "DELETE", t, "/api/v1/silences/SIL-none", None)
        .await;

    // The Alertmanager subset.
    let t = "/api/v2/silences";
    let (_, am_made) = c
        .call(
            &d,
            "POST",
            t,
            t,
            Some(json!({"matchers": [{"name": "service", "value": "db", "isRegex": false, "isEqual": true}],
                        "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2030-01-01T00:00:00Z",
                        "createdBy": "amtool", "comment": "am"})),
        )
        .await;
    let am_id = am_made["silenceID"]
        .as_str()
        .expect("silenceID")
        .to_string();
    c.call(&d, "POST", t, t, Some(json!({"matchers": [{"name": "a", "value": ".*", "isRegex": true}],
                                         "endsAt": "2030-01-01T00:00:00Z", "createdBy": "x", "comment": "y"})))
        .await;
    c.call(&d, "GET", t, t, None).await;
    c.call(
        &d,
        "GET",
        t,
        "/api/v2/silences?filter=service%3D%22db%22",
        None,
    )
    .await;
    c.call(&d, "GET", t, "/api/v2/silences?filter=%7B", None)
        .await;
    let t = "/api/v2/silence/{id}";
    c.call(&d, "GET", t, &format!("/api/v2/silence/{am_id}"), None)
        .await;
    c.call(&d, "GET", t, "/api/v2/silence/SIL-none", None).await;
    c.call(&d, "DELETE", t, &format!("/api/v2/silence/{am_id}"), None)
        .await;
    c.call(&d, "DELETE", t, "/api/v2/silence/SIL-none", None)
        .await;
    let t = "/api/v2/alerts";
    let (_, alerts) = c.call(&d, "GET", t, t, None).await;
    assert!(alerts.as_array().is_some_and(|a| a.len() >= 4), "{alerts}");
    c.call(
        &d,
        "GET",
        t,
        "/api/v2/alerts?filter=alertname%3D~%22Kube.%2A%22&silenced=false",
        None,
    )
    .await;
    c.call(&d, "GET", t, "/api/v2/alerts?active=maybe", None)
        .await;
    let t = "/api/v2/alerts/groups";
    c.call(&d, "GET", t, t, None).await;
    c.call(&d, "GET", t, "/api/v2/alerts/groups?filter=%7Bbroken", None)
        .await;
    c.call(&d, "GET", "/api/v2/status", "/api/v2/status", None)
        .await;

    // Rules.
    let t = "/api/v1/rules/explain";
    let (s, _) = c
        .call(
            &d,
            "POST",
            t,
            t,
            Some(json!([{"labels": {"alertname": "HighCPU", "instance": "web-1"}}])),
        )
        .await;
    assert_eq!(s, 200);
    c.call(&d, "POST", t, t, Some(json!({"nope": 1}))).await;

    // Operations.
    c.call(&d, "POST", "/-/reload", "/-/reload", None).await;
    let (s, _) = c.call(&d, "POST", "/-/backup", "/-/backup", None).await;
    assert_eq!(s, 200, "the backup answers the database file");
    for p in ["/metrics", "/-/healthy", "/-/ready"] {
        let (s, _) = c.call(&d, "GET", p, p, None).await;
        assert_eq!(s, 200, "{p}");
    }

    // The event stream, and the board's pages and forms (HTML: their
    // statuses must be documented; there is no JSON schema to check).
    c.call(&d, "GET", "/api/v1/events", "/api/v1/events", None)
        .await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let first = http
        .get(format!("{}/", d.base))
        .send()
        .await
        .expect("board");
    let cookie = first
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string();
    let page = first.text().await.expect("page");
    assert!(page.contains("class=\"row\""), "the board lists: {page}");
    c.call(&d, "GET", "/", "/", None).await;
    c.call(&d, "GET", "/", "/?priority=P9", None).await;
    let t = "/incidents/{id}";
    let (s, page) = c
        .call(&d, "GET", t, &format!("/incidents/{id}"), None)
        .await;
    assert_eq!(s, 200);
    c.call(&d, "GET", t, "/incidents/INC-20000101-0001", None)
        .await;
    let incident_page = http
        .get(format!("{}/incidents/{id}", d.base))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("page");
    let csrf = incident_page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a CSRF token in the forms")
        .to_string();
    assert!(page.as_str().is_some_and(|p| p.contains("Timeline")));
    let t = "/incidents/{id}/{action}";
    let (s, _) = c
        .call_form(
            &d,
            t,
            &format!("/incidents/{id}/notes"),
            Some(&cookie),
            &format!("csrf={csrf}&note=n&by=bob"),
        )
        .await;
    assert_eq!(s, 303);
    let (s, _) = c
        .call_form(
            &d,
            t,
            &format!("/incidents/{id}/ack"),
            Some(&cookie),
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(s, 409, "acknowledging a resolved incident");
    let (s, _) = c
        .call_form(
            &d,
            t,
            &format!("/incidents/{id}/notes"),
            Some(&cookie),
            "csrf=forged&note=n",
        )
        .await;
    assert_eq!(s, 403);
    c.call_form(
        &d,
        t,
        &format!("/incidents/{id}/nope"),
        Some(&cookie),
        &format!("csrf={csrf}"),
    )
    .await;
    // The service desk's forms: open an incident by hand, override a
    // priority (a reason is required), merge into a closed incident (409).
    let (s, _) = c
        .call(&d, "GET", "/incidents/new", "/incidents/new", None)
        .await;
    assert_eq!(s, 200);
    let (s, _) = c
        .call_form(
            &d,
            "/incidents",
            "/incidents",
            Some(&cookie),
            &format!("csrf={csrf}&title=Printer+on+fire&category=hardware&impact=high&urgency=low&reporter=Kim&by=desk"),
        )
        .await;
    assert_eq!(s, 303);
    let (s, _) = c
        .call_form(
            &d,
            "/incidents",
            "/incidents",
            Some(&cookie),
            &format!("csrf={csrf}&title=&category=hardware"),
        )
        .await;
    assert_eq!(s, 400, "a title is required");
    let split_id = split["id"].as_str().expect("split id").to_string();
    let (s, page) = c
        .call_form(
            &d,
            t,
            &format!("/incidents/{split_id}/priority"),
            Some(&cookie),
            &format!("csrf={csrf}&priority=P1&reason="),
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        page.as_str().is_some_and(|p| p.contains("reason: say why")),
        "{page}"
    );
    let (s, _) = c
        .call_form(
            &d,
            t,
            &format!("/incidents/{split_id}/priority"),
            Some(&cookie),
            &format!("csrf={csrf}&priority=P1&reason=VIP"),
        )
        .await;
    assert_eq!(s, 303);
    let (s, _) = c
        .call_form(
            &d,
            t,
            &format!("/incidents/{split_id}/merge"),
            Some(&cookie),
            &format!("csrf={csrf}&into={mid}"),
        )
        .await;
    assert_eq!(s, 409, "merging into a closed incident");
    c.call(&d, "GET", "/silences", "/silences", None).await;
    let t = "/silences/new";
    c.call(
        &d,
        "GET",
        t,
        "/silences/new?matchers=alertname%3D%22KubePodCrashLooping%22",
        None,
    )
    .await;
    c.call(&d, "GET", t, "/silences/new?matchers=%7B", None)
        .await;
    let (s, _) = c
        .call_form(&d, "/silences", "/silences", Some(&cookie),
            &format!("csrf={csrf}&do=create&matchers=alertname%3D%22Board%22&duration=1h&comment=c&by=bob"))
        .await;
    assert_eq!(s, 303);
    c.call_form(
        &d,
        "/silences",
        "/silences",
        Some(&cookie),
        &format!("csrf={csrf}&do=preview&matchers=alertname%3D%22Board%22"),
    )
    .await;
    c.call_form(
        &d,
        "/silences",
        "/silences",
        Some(&cookie),
        &format!("csrf={csrf}&do=create&matchers=%7B&duration=1h&comment=c"),
    )
    .await;
    let (_, silences) = c
        .call(&d, "GET", "/api/v1/silences", "/api/v1/silences", None)
        .await;
    let board_silence = silences
        .as_array()
        .and_then(|l| l.iter().find(|x| x["comment"] == "c"))
        .and_then(|x| x["id"].as_str())
        .expect("the board's silence")
        .to_string();
    let t = "/silences/{id}/expire";
    let (s, _) = c
        .call_form(
            &d,
            t,
            &format!("/silences/{board_silence}/expire"),
            Some(&cookie),
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(s, 303);
    c.call_form(
        &d,
        t,
        "/silences/SIL-none/expire",
        Some(&cookie),
        &format!("csrf={csrf}"),
    )
    .await;
    c.call(&d, "GET", "/suppressed", "/suppressed", None).await;
    c.call(&d, "GET", "/login", "/login", None).await;
    c.call_form(&d, "/login", "/login", None, "token=x").await;
    c.call_form(&d, "/logout", "/logout", Some(&cookie), "")
        .await;
    for p in ["/assets/board.css", "/assets/board.js"] {
        let (s, _) = c.call(&d, "GET", p, p, None).await;
        assert_eq!(s, 200, "{p}");
    }

    // On call: the shipped rules have no people (tests/oncall.rs has them).
    let (s, v) = c
        .call(&d, "GET", "/api/v1/oncall", "/api/v1/oncall", None)
        .await;
    assert_eq!((s, &v["teams"]), (200, &json!([])));
    let t = "/api/v1/schedules/{name}";
    let (s, _) = c.call(&d, "GET", t, "/api/v1/schedules/none", None).await;
    assert_eq!(s, 404);
    let (s, _) = c
        .call(&d, "GET", t, "/api/v1/schedules/none?from=yesterday", None)
        .await;
    assert_eq!(s, 400);
    let t = "/api/v1/schedules/{name}/overrides";
    let (s, _) = c
        .call(&d, "POST", t, "/api/v1/schedules/none/overrides",
            Some(json!({"person": "ana", "starts_at": "2026-12-01T00:00:00Z", "duration": "1h", "created_by": "x"})))
        .await;
    assert_eq!(s, 404);
    let t = "/api/v1/schedules/{name}/overrides/{id}";
    let (s, _) = c
        .call(
            &d,
            "DELETE",
            t,
            "/api/v1/schedules/none/overrides/ovr-1",
            None,
        )
        .await;
    assert_eq!(s, 404);
    c.call(&d, "GET", "/oncall", "/oncall", None).await;
    c.call(&d, "GET", "/schedules/{name}", "/schedules/none", None)
        .await;
    c.call_form(
        &d,
        "/schedules/{name}/overrides",
        "/schedules/none/overrides",
        Some(&cookie),
        &format!("csrf={csrf}&person=ana&duration=1h&by=bob"),
    )
    .await;
    c.call_form(
        &d,
        "/schedules/{name}/overrides/{id}/remove",
        "/schedules/none/overrides/ovr-1/remove",
        Some(&cookie),
        &format!("csrf={csrf}"),
    )
    .await;
    let (s, _) = c
        .call(&d, "GET", "/ack/{token}", "/ack/not-a-token", None)
        .await;
    assert_eq!(s, 400);
    let (s, _) = c
        .call_form(&d, "/ack/{token}", "/ack/not-a-token", None, "")
        .await;
    assert_eq!(s, 400);

    // Every documented operation was exercised.
    let exercised: BTreeSet<(String, String)> = c
        .checked
        .iter()
        .map(|(m, p, _)| (m.clone(), p.clone()))
        .collect();
    let missing: Vec<_> = ROUTES
        .iter()
        .map(|(m, p, _, _)| (m.to_string(), p.to_string()))
        .filter(|r| !exercised.contains(r))
        .collect();
    assert!(missing.is_empty(), "not exercised: {missing:?}");
    d.stop().await;
}
