//! `POST /api/v1/rules/explain` and `incidentd rules explain --url`
//! against a real daemon (in-process, ephemeral port, temp data dir, the
//! shipped rules, API tokens): the explanation sees the daemon's live
//! state (open incidents for joins and blast radius, silences), needs the
//! viewer role, and the CLI sends its token as `Authorization: Bearer`.
mod common;

use std::process::Command;

use common::Daemon;
use incidentd::http::auth::digest_hex;
use serde_json::{json, Value};

const INGEST: &str = "s-ingest-explain-0123456789";
const VIEWER: &str = "s-viewer-explain-0123456789";
const OPERATOR: &str = "s-operator-explain-0123456789";

async fn start(dir: &std::path::Path) -> Daemon {
    let tokens = format!(
        "tokens:\n  - {{name: prometheus, role: ingest, sha256: {}}}\n  - {{name: grafana, role: viewer, sha256: {}}}\n  - {{name: alice, role: operator, sha256: {}}}\n",
        digest_hex(INGEST),
        digest_hex(VIEWER),
        digest_hex(OPERATOR)
    );
    let file = dir.join("tokens.yaml");
    std::fs::write(&file, tokens).expect("tokens file");
    Daemon::start(&dir.join("data"), common::shipped_rules(), |c| {
        c.auth.tokens_file = Some(file);
    })
    .await
}

async fn post(d: &Daemon, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut r = d
        .http
        .post(format!("{}{path}", d.base))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn target_down(instance: &str) -> Value {
    json!({"labels": {"alertname": "TargetDown", "job": "api", "namespace": "shop",
                      "instance": instance, "severity": "warning"}})
}

/// Runs the real binary (blocking, off the runtime the daemon runs on).
async fn cli(args: Vec<String>, env: Vec<(&'static str, String)>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_incidentd"))
            .args(&args)
            .env_remove("INCIDENTD_URL")
            .env_remove("INCIDENTD_TOKEN")
            .envs(env)
            .output()
            .expect("binary runs");
        (
            out.status.code().expect("exited"),
            String::from_utf8(out.stdout).expect("utf-8"),
            String::from_utf8(out.stderr).expect("utf-8"),
        )
    })
    .await
    .expect("join")
}

#[tokio::test]
async fn explains_against_live_incidents_and_silences_for_viewers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = start(dir.path()).await;
    // Two targets of one job are down: one P4 incident.
    let (s, body) = post(
        &d,
        "/api/v1/alerts",
        Some(INGEST),
        &json!([target_down("10.0.0.1:8080"), target_down("10.0.0.2:8080")]),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let incident = body["created"][0].as_str().expect("created").to_string();

    // Why would a third target be P3? It joins, and the blast radius
    // counts three instances.
    let (s, r) = post(
        &d,
        "/api/v1/rules/explain",
        Some(VIEWER),
        &target_down("10.0.0.3:8080"),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["live_state"], true);
    let e = &r["alerts"][0];
    assert_eq!(e["result"]["kind"], "joins", "{e:#}");
    assert_eq!(e["result"]["incident"], incident.as_str());
    assert_eq!(e["correlate"]["rule"]["name"], "target-down");
    assert_eq!(
        e["correlate"]["group_key"],
        "target-down{job=\"api\",namespace=\"shop\"}"
    );
    let medium = &e["blast_radius"][1];
    assert_eq!(
        (&medium["distinct"], &medium["reached"]),
        (&json!(3), &json!(true)),
        "{medium:#}"
    );
    assert_eq!(e["priority"]["priority"], "P3");
    assert_eq!(e["priority"]["raised_by"]["name"], "#2");
    // Explaining changed nothing: still two alerts in the incident.
    let list: Value = d
        .http
        .get(format!("{}/api/v1/incidents", d.base))
        .bearer_auth(VIEWER)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    assert_eq!(list[0]["alert_count"], 2, "{list}");
    assert_eq!(list[0]["priority"], "P4", "{list}");

    // A silence the operator set keeps a node's alert out.
    let (s, body) = post(
        &d,
        "/api/v1/silences",
        Some(OPERATOR),
        &json!({"matchers": ["instance=\"db-9:9100\""], "duration": "1h", "comment": "disk swap", "createdBy": "alice"}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let down = json!({"labels": {"alertname": "InstanceDown", "instance": "db-9:9100", "severity": "critical"}});
    let (s, r) = post(&d, "/api/v1/rules/explain", Some(VIEWER), &down).await;
    assert_eq!(s, 200, "{r}");
    let e = &r["alerts"][0];
    assert_eq!(e["result"]["kind"], "suppressed");
    assert_eq!(e["suppression"]["suppressed_by"], "silence");
    assert_eq!(e["suppression"]["silences"][0]["applies"], true);
    assert!(e["suppression"]["silences"][0]["why"]
        .as_str()
        .is_some_and(|w| w.contains("disk swap")));

    // Roles, content type, and bad input.
    let (s, _) = post(&d, "/api/v1/rules/explain", Some(INGEST), &down).await;
    assert_eq!(s, 403);
    let (s, _) = post(&d, "/api/v1/rules/explain", None, &down).await;
    assert_eq!(s, 401);
    let (s, body) = post(
        &d,
        "/api/v1/rules/explain",
        Some(VIEWER),
        &json!({"labels": {}}),
    )
    .await;
    assert_eq!(s, 400, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|m| m.contains("labels")),
        "{body}"
    );
    let r = d
        .http
        .post(format!("{}/api/v1/rules/explain", d.base))
        .bearer_auth(VIEWER)
        .header("content-type", "text/plain")
        .body(down.to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 415);

    // The CLI asks the same daemon, with its token as a bearer token.
    let file = dir.path().join("alert.json");
    std::fs::write(&file, target_down("10.0.0.3:8080").to_string()).expect("write");
    let path = file.to_str().expect("utf-8").to_string();
    let (code, out, err) = cli(
        vec![
            "rules".into(),
            "explain".into(),
            "--url".into(),
            d.base.clone(),
            "--token".into(),
            VIEWER.into(),
            path.clone(),
        ],
        vec![],
    )
    .await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("state: the daemon's live silences"), "{out}");
    assert!(
        out.contains(&format!("result       joins: joins {incident}")),
        "{out}"
    );
    assert!(
        out.contains("4. priority: P3 = impact medium × urgency medium"),
        "{out}"
    );
    // INCIDENTD_URL and INCIDENTD_TOKEN; JSON out is the endpoint's document.
    let (code, out, err) = cli(
        vec![
            "rules".into(),
            "explain".into(),
            "-o".into(),
            "json".into(),
            path.clone(),
        ],
        vec![
            ("INCIDENTD_URL", d.base.clone()),
            ("INCIDENTD_TOKEN", VIEWER.into()),
        ],
    )
    .await;
    assert_eq!(code, 0, "stderr:\n{err}");
    let doc: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(doc["alerts"][0]["priority"]["priority"], "P3");
    // Without a token the daemon refuses, and the CLI says so.
    let (code, _, err) = cli(
        vec![
            "rules".into(),
            "explain".into(),
            "--url".into(),
            d.base.clone(),
            path,
        ],
        vec![],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("401"), "{err}");
    d.stop().await;
}
