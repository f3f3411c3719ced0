//! The real `amtool` (Debian package `prometheus-alertmanager`) pointed at
//! the real incidentd binary with `--alertmanager.url`, as a user runs it:
//! `amtool alert query` (active, silenced, inhibited, filtered), `amtool
//! silence add`, `query`, `expire`, and the same silences seen through
//! incidentd's own API. Also: the Alertmanager and Prometheus snippets in
//! the README pass `amtool check-config` and `promtool check config`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::serve::Serve;
use common::tools::require_binary;
use serde_json::{json, Value};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs amtool against incidentd; its stdout, or a failure with stderr.
fn amtool(inc: &Serve, args: &[&str]) -> String {
    let out = Command::new(require_binary("amtool", "prometheus-alertmanager"))
        .arg(format!("--alertmanager.url={}", inc.base))
        .args(args)
        .env("HOME", "/nonexistent") // no ~/.config/amtool/config.yml
        .output()
        .expect("run amtool");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "amtool {args:?} failed ({}):\nstdout: {stdout}\nstderr: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        inc.proc.log_tail()
    );
    stdout
}

/// The first column of each row of amtool's table output (no header).
fn first_column(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn alert(name: &str, labels: &[(&str, &str)]) -> Value {
    let mut l = serde_json::Map::new();
    l.insert("alertname".into(), json!(name));
    for (k, v) in labels {
        l.insert((*k).into(), json!(v));
    }
    json!({"labels": l, "annotations": {"summary": format!("{name} summary")}})
}

#[tokio::test(flavor = "multi_thread")]
async fn amtool_lists_alerts_and_manages_silences() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let inc = Serve::start(
        "incidentd",
        tmp.path(),
        &tmp.path().join("data"),
        &repo("rules"),
        &[],
    )
    .await;

    // Two firing alerts in incidents; a warning inhibited by its critical
    // twin (the shipped `critical-mutes-warning` rule).
    inc.post(
        "/api/v2/alerts",
        &json!([
            alert(
                "KubePodCrashLooping",
                &[
                    ("namespace", "shop"),
                    ("pod", "api-1"),
                    ("severity", "critical")
                ]
            ),
            alert(
                "DiskAlmostFull",
                &[("instance", "db-1"), ("severity", "critical")]
            ),
        ]),
    )
    .await;
    let inhibited = inc
        .post(
            "/api/v2/alerts",
            &json!([alert(
                "DiskAlmostFull",
                &[("instance", "db-1"), ("severity", "warning")]
            )]),
        )
        .await;
    assert_eq!(inhibited["suppressed"], 1, "{inhibited}");

    // amtool alert query: the active alerts only, by default.
    let active = amtool(&inc, &["alert", "query"]);
    let mut names = first_column(&active);
    names.sort();
    assert_eq!(names, ["DiskAlmostFull", "KubePodCrashLooping"], "{active}");
    assert!(active.contains("KubePodCrashLooping summary"), "{active}");
    // A filter, as Alertmanager matchers.
    let filtered = amtool(&inc, &["alert", "query", "namespace=shop"]);
    assert_eq!(
        first_column(&filtered),
        ["KubePodCrashLooping"],
        "{filtered}"
    );
    // The inhibited one with --inhibited, and its state in JSON.
    let inh = amtool(&inc, &["alert", "query", "--inhibited", "-o", "json"]);
    let inh: Value = serde_json::from_str(&inh).expect("amtool JSON");
    let inh = inh.as_array().expect("array");
    assert_eq!(inh.len(), 1, "{inh:?}");
    assert_eq!(inh[0]["labels"]["severity"], "warning");
    assert_eq!(inh[0]["status"]["state"], "suppressed");
    assert_eq!(
        inh[0]["status"]["inhibitedBy"].as_array().map(Vec::len),
        Some(1)
    );

    // amtool silence add → an incidentd silence.
    let id = amtool(
        &inc,
        &[
            "silence",
            "add",
            "alertname=DiskSlow",
            "instance=~db-.*",
            "--duration=2h",
            "--author=alice",
            "--comment=CHG-1234: replacing disks",
        ],
    )
    .trim()
    .to_string();
    assert!(id.starts_with("SIL-"), "amtool printed the id: {id:?}");
    let native = inc.get(&format!("/api/v1/silences/{id}")).await;
    assert_eq!(native["created_by"], "alice", "{native}");
    assert_eq!(native["comment"], "CHG-1234: replacing disks");
    assert_eq!(native["state"], "active");
    assert_eq!(
        native["matchers"],
        json!(["alertname=\"DiskSlow\"", "instance=~\"db-.*\""])
    );
    // A matching alert is now kept out of incidents, and amtool says why.
    let muted = inc
        .post(
            "/api/v2/alerts",
            &json!([alert("DiskSlow", &[("instance", "db-2")])]),
        )
        .await;
    assert_eq!(muted["suppressed"], 1, "{muted}");
    let silenced = amtool(&inc, &["alert", "query", "--silenced"]);
    assert_eq!(first_column(&silenced), ["DiskSlow"], "{silenced}");
    let json_silenced: Value = serde_json::from_str(&amtool(
        &inc,
        &["alert", "query", "--silenced", "-o", "json"],
    ))
    .expect("JSON");
    assert_eq!(json_silenced[0]["status"]["silencedBy"], json!([id]));

    // amtool silence query: the silence, its matchers, author and comment.
    let listed = amtool(&inc, &["silence", "query"]);
    assert_eq!(first_column(&listed), [id.as_str()], "{listed}");
    assert!(listed.contains("alertname=\"DiskSlow\""), "{listed}");
    assert!(
        listed.contains("alice") && listed.contains("CHG-1234"),
        "{listed}"
    );
    assert_eq!(amtool(&inc, &["silence", "query", "-q"]).trim(), id);
    let by_matcher = amtool(&inc, &["silence", "query", "-q", "alertname=DiskSlow"]);
    assert_eq!(by_matcher.trim(), id);
    let other = amtool(&inc, &["silence", "query", "-q", "alertname=Other"]);
    assert_eq!(other.trim(), "", "a filter that matches no silence");

    // amtool silence expire: expired here and in incidentd's own API.
    amtool(&inc, &["silence", "expire", &id]);
    assert_eq!(amtool(&inc, &["silence", "query", "-q"]).trim(), "");
    let expired = amtool(&inc, &["silence", "query", "--expired", "-q"]);
    assert_eq!(expired.trim(), id);
    let native = inc.get(&format!("/api/v1/silences/{id}")).await;
    assert_eq!(native["state"], "expired", "{native}");

    // A silence made through incidentd's API is amtool's too.
    let made = inc
        .post(
            "/api/v1/silences",
            &json!({"matchers": ["service=\"db\""], "duration": "1h",
                    "created_by": "bob", "comment": "native"}),
        )
        .await;
    let native_id = made["silence_id"].as_str().expect("silence_id").to_string();
    assert_eq!(
        made["silenceID"], native_id,
        "the old name stays for older clients"
    );
    assert_eq!(amtool(&inc, &["silence", "query", "-q"]).trim(), native_id);

    // The status endpoint amtool and Grafana read.
    let status = inc.get("/api/v2/status").await;
    assert_eq!(status["versionInfo"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["cluster"]["status"], "disabled");
    let groups = inc
        .get("/api/v2/alerts/groups?active=true&silenced=false&inhibited=false")
        .await;
    let groups = groups.as_array().expect("groups");
    assert_eq!(groups.len(), 2, "one group per incident: {groups:?}");
    assert!(groups.iter().all(|g| g["receiver"]["name"] == "incidentd"));
}

/// The configuration snippets of the README, checked by the tools users
/// run: Alertmanager's with `amtool check-config` (a `receivers:` snippet
/// inside a route to its first receiver), Prometheus' with `promtool check
/// config` (with the mixin's files where the snippet loads them).
#[test]
fn readme_snippets_pass_amtool_and_promtool() {
    let readme = std::fs::read_to_string(repo("README.md")).expect("README.md");
    let tmp = tempfile::tempdir().expect("tempdir");
    // Where the README's Prometheus snippet loads the mixin from.
    let mixin = tmp.path().join("incidentd");
    std::fs::create_dir_all(&mixin).expect("mkdir");
    for f in ["alerts.yml", "rules.yml"] {
        std::fs::copy(repo(&format!("deploy/prometheus/{f}")), mixin.join(f)).expect("copy mixin");
    }
    let amtool = require_binary("amtool", "prometheus-alertmanager");
    let promtool = require_binary("promtool", "prometheus");
    let (mut am, mut prom) = (0, 0);
    // Each ```yaml block, dedented by its fence's indentation (blocks in
    // list items are indented).
    let mut blocks = Vec::new();
    let mut open: Option<(usize, Vec<String>)> = None;
    for line in readme.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match &mut open {
            None if trimmed == "```yaml" => open = Some((indent, Vec::new())),
            Some((i, lines)) if trimmed == "```" && indent == *i => {
                blocks.push(lines.join("\n") + "\n");
                open = None;
            }
            Some((i, lines)) => lines.push(line.get(*i..).unwrap_or("").to_string()),
            None => {}
        }
    }
    for block in &blocks {
        let top = |k: &str| block.lines().any(|l| l.starts_with(k));
        let (tool, args, text): (&PathBuf, &[&str], String) =
            if top("route:") || (top("receivers:") && block.contains("webhook_configs")) {
                am += 1;
                let text = if top("route:") {
                    block.to_string()
                } else {
                    let first = block
                        .lines()
                        .find_map(|l| l.trim().strip_prefix("- name: "))
                        .expect("a receiver name");
                    format!("route:\n  receiver: {first}\n{block}")
                };
                (&amtool, &["check-config"], text)
            } else if top("alerting:") || top("scrape_configs:") || top("rule_files:") {
                prom += 1;
                (&promtool, &["check", "config"], block.to_string())
            } else {
                continue;
            };
        let file = tmp.path().join(format!("snippet-{}.yml", am + prom));
        std::fs::write(&file, &text).expect("write snippet");
        let out = Command::new(tool)
            .args(args)
            .arg(&file)
            .output()
            .expect("run the checker");
        assert!(
            out.status.success(),
            "{} {args:?} rejects this README snippet:\n{text}\n{}{}",
            tool.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(am >= 2, "README Alertmanager snippets checked: {am}");
    assert!(prom >= 3, "README Prometheus snippets checked: {prom}");
}
