//! `incidentd incidents ...` and `incidentd silences ...` against a real
//! daemon (the binary, on an ephemeral port): every command, in table and
//! JSON output (parsed), and the exit codes and stderr of refusals (409,
//! 404, 400, 401, 403) and of an unreachable daemon.
mod common;

use std::process::Output;

use common::serve::{command, Serve};
use incidentd::http::auth::digest_hex;
use serde_json::{json, Value};

/// Runs `incidentd <args>` against `url` (given as INCIDENTD_URL).
async fn cli(url: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = command();
    cmd.env("INCIDENTD_URL", url)
        .env("USER", "tester")
        .args(args);
    if let Some(t) = token {
        cmd.env("INCIDENTD_TOKEN", t);
    }
    let mut cmd = tokio::process::Command::from(cmd);
    tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
        .await
        .expect("the command ends within a minute")
        .expect("the command runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs and requires success; the stdout.
async fn ok(url: &str, token: Option<&str>, args: &[&str]) -> String {
    let o = cli(url, token, args).await;
    assert!(
        o.status.success(),
        "incidentd {args:?} failed ({}): {}",
        o.status,
        stderr(&o)
    );
    stdout(&o)
}

/// Runs with `-o json`; the parsed output.
async fn ok_json(url: &str, token: Option<&str>, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let out = ok(url, token, &all).await;
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
}

/// Runs and requires exit code 1 with `needle` on stderr.
async fn fails(url: &str, token: Option<&str>, args: &[&str], needle: &str) {
    let o = cli(url, token, args).await;
    assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
    assert!(
        stderr(&o).contains(needle),
        "{args:?}: stderr lacks {needle:?}: {}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty(), "{args:?}: nothing on stdout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_works_an_incident_from_open_to_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Serve::configured("cli", dir.path(), &dir.path().join("data"), "").await;
    let url = d.base.as_str();
    let made = d
        .post(
            "/api/v2/alerts",
            &json!([
                {"labels": {"alertname": "DatabaseDown", "service": "db", "severity": "critical"},
                 "annotations": {"summary": "primary database unreachable"}},
                {"labels": {"alertname": "DiskAlmostFull", "instance": "web-1", "severity": "warning"}}
            ]),
        )
        .await;
    let id = made["created"][0].as_str().expect("id").to_string();
    let other = made["created"][1].as_str().expect("id").to_string();

    // list: a table, and JSON with filters.
    let table = ok(url, None, &["incidents", "list"]).await;
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("SLA"),
        "{table}"
    );
    assert!(table.contains(&id) && table.contains(&other), "{table}");
    assert!(table.contains("to ack"), "the SLA clock: {table}");
    let list = ok_json(url, None, &["incidents", "list", "--status", "open"]).await;
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    let p = list[0]["priority"].as_str().expect("priority").to_string();
    let only = ok_json(
        url,
        None,
        &["incidents", "list", "--priority", &p, "--limit", "1"],
    )
    .await;
    assert_eq!(only.as_array().map(Vec::len), Some(1), "{only}");
    assert_eq!(only[0]["priority"], p.as_str());

    // show
    let text = ok(url, None, &["incidents", "show", &id]).await;
    assert!(
        text.contains("primary database unreachable") || text.contains("DatabaseDown"),
        "{text}"
    );
    assert!(
        text.contains("timeline:") && text.contains("alerts (1):"),
        "{text}"
    );
    let full = ok_json(url, None, &["incidents", "show", &id]).await;
    assert_eq!(full["id"], id.as_str());
    assert_eq!(full["alerts"].as_array().map(Vec::len), Some(1));

    // ack, assign, note, resolve, close, reopen.
    let out = ok(url, None, &["incidents", "ack", &id, "--note", "looking"]).await;
    assert_eq!(out, format!("{id} is acknowledged\n"));
    let v = ok_json(url, None, &["incidents", "assign", &id, "--to", "bob"]).await;
    assert_eq!(v["assignee"], "bob");
    assert_eq!(v["acknowledged_by"], "tester", "$USER acts without a token");
    ok(
        url,
        None,
        &[
            "incidents",
            "note",
            &id,
            "--note",
            "failing over",
            "--by",
            "carol",
        ],
    )
    .await;
    let v = ok_json(
        url,
        None,
        &[
            "incidents",
            "resolve",
            &id,
            "--workaround",
            "failover",
            "--root-cause",
            "disk",
        ],
    )
    .await;
    assert_eq!(v["status"], "resolved");
    assert_eq!(v["workaround"], "failover");
    assert_eq!(v["root_cause"], "disk");
    let out = ok(url, None, &["incidents", "close", &id]).await;
    assert_eq!(out, format!("{id} is closed, assigned to bob\n"));
    let v = ok_json(
        url,
        None,
        &["incidents", "reopen", &id, "--note", "it is back"],
    )
    .await;
    assert_eq!(v["status"], "open");
    let full = ok_json(url, None, &["incidents", "show", &id]).await;
    let people: Vec<(&str, &str)> = full["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter(|e| e["by"] != "incidentd")
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or(""),
                e["by"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        people,
        [
            ("acknowledged", "tester"),
            ("assigned", "tester"),
            ("note", "carol"),
            ("resolved", "tester"),
            ("closed", "tester"),
            ("reopened", "tester")
        ],
        "{full}"
    );

    // Refusals: the server's message on stderr, exit 1.
    fails(url, None, &["incidents", "close", &other], "409").await;
    fails(
        url,
        None,
        &["incidents", "close", &other],
        "only a resolved incident",
    )
    .await;
    fails(
        url,
        None,
        &["incidents", "show", "INC-20000101-0001"],
        "404",
    )
    .await;
    fails(url, None, &["incidents", "ack", "nonsense"], "no incident").await;
    fails(
        url,
        None,
        &["incidents", "list", "--status", "sleeping"],
        "status: unknown value",
    )
    .await;
    fails(
        "http://127.0.0.1:9",
        None,
        &["incidents", "list"],
        "cannot reach",
    )
    .await;

    // Silences: add, list, expire.
    let sid = ok(
        url,
        None,
        &[
            "silences",
            "add",
            "alertname=\"DiskAlmostFull\"",
            "instance=~\"web-.*\"",
            "--duration",
            "2h",
            "--comment",
            "CHG-7",
        ],
    )
    .await;
    let sid = sid.trim().to_string();
    assert!(!sid.is_empty());
    let table = ok(url, None, &["silences", "list"]).await;
    assert!(
        table.contains(&sid) && table.contains("active") && table.contains("CHG-7"),
        "{table}"
    );
    let list = ok_json(url, None, &["silences", "list"]).await;
    assert_eq!(
        list[0]["matchers"],
        json!(["alertname=\"DiskAlmostFull\"", "instance=~\"web-.*\""])
    );
    assert_eq!(list[0]["created_by"], "tester");
    let next = d
        .post(
            "/api/v2/alerts",
            &json!([{"labels": {"alertname": "DiskAlmostFull", "instance": "web-2"}}]),
        )
        .await;
    assert_eq!(next["suppressed"], 1, "{next}");
    let v = ok_json(url, None, &["silences", "expire", &sid]).await;
    assert_eq!(v["state"], "expired");
    fails(url, None, &["silences", "expire", "SIL-none"], "404").await;
    fails(
        url,
        None,
        &[
            "silences",
            "add",
            "alertname=\"X\"",
            "--duration",
            "11y",
            "--comment",
            "c",
        ],
        "10 years",
    )
    .await;
    fails(
        url,
        None,
        &[
            "silences",
            "add",
            "alertname==",
            "--duration",
            "1h",
            "--comment",
            "c",
        ],
        "400",
    )
    .await;
    let o = cli(
        url,
        None,
        &["silences", "add", "--duration", "1h", "--comment", "c"],
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "a usage error: {}", stderr(&o));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_the_token_acts_and_refusals_exit_non_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens.yaml");
    std::fs::write(
        &tokens,
        format!(
            "tokens:\n  - name: oncall-alice\n    role: operator\n    sha256: {}\n  - name: grafana\n    role: viewer\n    sha256: {}\n  - name: am\n    role: ingest\n    sha256: {}\n",
            digest_hex("s-op"),
            digest_hex("s-view"),
            digest_hex("s-ingest")
        ),
    )
    .expect("tokens");
    let config = format!("auth:\n  tokens_file: {}\n", tokens.display());
    let d = Serve::configured("cli-auth", dir.path(), &dir.path().join("data"), &config).await;
    let url = d.base.as_str();
    let r = common::tools::http_client()
        .post(d.url("/api/v2/alerts"))
        .bearer_auth("s-ingest")
        .json(&json!([{"labels": {"alertname": "CacheDown", "severity": "critical"}}]))
        .send()
        .await
        .expect("post");
    let made: Value = r.json().await.expect("json");
    let id = made["created"][0].as_str().expect("id").to_string();
    fails(url, None, &["incidents", "list"], "401").await;
    fails(
        url,
        Some("wrong"),
        &["incidents", "list"],
        "authentication required",
    )
    .await;
    fails(url, Some("s-view"), &["incidents", "ack", &id], "403").await;
    let list = ok_json(url, Some("s-view"), &["incidents", "list"]).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    // --token wins over the environment.
    let v = ok_json(
        url,
        Some("wrong"),
        &["incidents", "ack", &id, "--token", "s-op"],
    )
    .await;
    assert_eq!(
        v["acknowledged_by"], "oncall-alice",
        "the token's name, not $USER"
    );
    let sid = ok(
        url,
        Some("s-op"),
        &[
            "silences",
            "add",
            "alertname=\"CacheDown\"",
            "--duration",
            "30m",
            "--comment",
            "maintenance",
        ],
    )
    .await;
    let list = ok_json(url, Some("s-view"), &["silences", "list"]).await;
    assert_eq!(list[0]["id"], sid.trim());
    assert_eq!(list[0]["created_by"], "oncall-alice");
    d.stop().await;
}

/// The service desk from a terminal: open by hand, list by label, link,
/// merge, split and override the priority; refusals exit 1 with the
/// server's message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_desk_agent_works_from_the_terminal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Serve::configured("cli-desk", dir.path(), &dir.path().join("data"), "").await;
    let url = d.base.as_str();
    let opened = ok_json(
        url,
        None,
        &[
            "incidents",
            "open",
            "Payroll portal refuses logins",
            "--category",
            "account",
            "--impact",
            "medium",
            "--urgency",
            "high",
            "--reporter",
            "Aiko (HR)",
            "--contact",
            "ext. 4411",
            "--service",
            "payroll",
            "--label",
            "team=identity",
        ],
    )
    .await;
    assert_eq!(opened["source"], "manual");
    assert_eq!(opened["priority"], "P2");
    assert_eq!(opened["labels"]["team"], "identity");
    let manual = opened["id"].as_str().expect("id").to_string();
    let text = ok(url, None, &["incidents", "open", "Printer on floor 3 jams"]).await;
    assert!(text.contains("Printer on floor 3 jams"), "{text}");
    let other = text.split_whitespace().next().expect("id").to_string();
    // Listing by label finds the first only.
    let listed = ok_json(
        url,
        None,
        &["incidents", "list", "--match", "team=\"identity\""],
    )
    .await;
    let ids: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert_eq!(ids, vec![manual.as_str()]);
    // Link, then merge the second into the first.
    let linked = ok_json(
        url,
        None,
        &[
            "incidents",
            "link",
            &other,
            "--to",
            &manual,
            "--relation",
            "related",
        ],
    )
    .await;
    assert_eq!(linked["relations"][0]["to"], manual.as_str());
    let merged = ok_json(
        url,
        None,
        &["incidents", "merge", &other, "--into", &manual],
    )
    .await;
    assert_eq!(merged["id"], manual.as_str());
    let gone = ok_json(url, None, &["incidents", "show", &other]).await;
    assert_eq!(gone["merged_into"], manual.as_str());
    // Priority by hand, with a reason; without one it is refused.
    fails(
        url,
        None,
        &["incidents", "priority", &manual, "--set", "P1"],
        "reason",
    )
    .await;
    let text = ok(
        url,
        None,
        &[
            "incidents",
            "priority",
            &manual,
            "--set",
            "p1",
            "--reason",
            "payday: everyone is affected",
        ],
    )
    .await;
    assert!(
        text.contains("P1") && text.contains("priority set by hand: payday"),
        "{text}"
    );
    let cleared = ok_json(url, None, &["incidents", "priority", &manual, "--clear"]).await;
    assert!(cleared["priority_override"].is_null());
    // Split needs alerts the incident has.
    fails(
        url,
        None,
        &["incidents", "split", &manual, "0123456789abcdef"],
        "has no alert",
    )
    .await;
    fails(
        url,
        None,
        &["incidents", "merge", &other, "--into", &manual],
        "closed",
    )
    .await;
    d.stop().await;
}
