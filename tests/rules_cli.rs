//! CLI tests: the real `incidentd` binary running `rules test`, `rules
//! check` and `replay` as an SRE (or CI) would, in a temporary working
//! directory, checking exit codes, output and that nothing is written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the binary in `cwd`.
fn run(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_incidentd"))
        .args(args)
        .current_dir(cwd)
        .env_remove("INCIDENTD_RULES")
        .output()
        .expect("binary runs");
    (
        status.code().expect("exited, not killed"),
        String::from_utf8(stdout).expect("utf-8 stdout"),
        String::from_utf8(stderr).expect("utf-8 stderr"),
    )
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Entries of a directory, sorted (to show nothing was written).
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn shipped_rule_tests_pass() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = repo().join("rules/tests/default_test.yaml");
    let (code, out, err) = run(tmp.path(), &["rules", "test", path_str(&file)]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("SUCCESS"), "{out}");
    assert!(!out.contains("FAILED"), "{out}");
    assert!(entries(tmp.path()).is_empty(), "nothing written");
}

#[test]
fn failing_test_prints_expected_and_got() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rules = repo().join("rules/default.yaml");
    let file = tmp.path().join("failing_test.yaml");
    std::fs::write(
        &file,
        format!(
            r#"rule_files: ["{}"]
tests:
  - name: passes
    input:
      - {{at: 0m, labels: {{alertname: InstanceDown, instance: "web-1:9100", severity: critical}}}}
    expect:
      - at: 1m
        incidents: [{{rule: node-down, priority: P3}}]
  - name: node down is wrongly expected as P1
    input:
      - {{at: 0m, labels: {{alertname: InstanceDown, instance: "web-1:9100", severity: critical}}}}
    expect:
      - at: 2m
        incidents:
          - {{rule: node-down, category: hardware, priority: P1}}
"#,
            path_str(&rules)
        ),
    )
    .expect("write");
    let (code, out, err) = run(tmp.path(), &["rules", "test", "failing_test.yaml"]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("FAILED: failing_test.yaml: node down is wrongly expected as P1"),
        "{out}"
    );
    assert!(!out.contains("FAILED: failing_test.yaml: passes"), "{out}");
    assert!(out.contains("at 2m (2026-01-05T00:02:00+00:00):"), "{out}");
    assert!(
        out.contains("expected incidents:\n      rule=node-down category=hardware priority=P1"),
        "{out}"
    );
    assert!(
        out.contains(
            "got incidents:\n      INC-20260105-0001 node-down node-down{instance=\"web-1:9100\"} hardware P3 open alerts=1"
        ),
        "{out}"
    );
    // Per field, the expected value above the one it got.
    assert!(out.contains("    incidents: expected 1, got 1\n"), "{out}");
    assert!(
        out.contains(
            "      closest: INC-20260105-0001 node-down node-down{instance=\"web-1:9100\"} hardware P3 open alerts=1\n        priority: expected P1\n                  got      P3\n"
        ),
        "{out}"
    );
    assert!(out.contains("1 of 2 test(s) failed"), "{out}");
}

#[test]
fn broken_test_file_exits_2_with_position() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rules = repo().join("rules/default.yaml");
    std::fs::write(
        tmp.path().join("broken_test.yaml"),
        format!(
            "rule_files: [\"{}\"]\ntests:\n  - name: bad time\n    input:\n      - at: soon\n        labels: {{alertname: X}}\n    expect: [{{at: 0}}]\n",
            path_str(&rules)
        ),
    )
    .expect("write");
    std::fs::write(tmp.path().join("syntax_test.yaml"), "tests: [\n").expect("write");
    let (code, out, err) = run(
        tmp.path(),
        &["rules", "test", "broken_test.yaml", "syntax_test.yaml"],
    );
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("broken_test.yaml:5:13: at: bad duration \"soon\""),
        "{err}"
    );
    assert!(
        err.contains("syntax_test.yaml:2:1: YAML syntax error"),
        "{err}"
    );
    assert!(out.contains("2 broken test file(s)"), "{out}");
}

#[test]
fn rule_test_with_rules_that_do_not_compile_fails() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(tmp.path().join("rules")).expect("mkdir");
    std::fs::write(
        tmp.path().join("rules/bad.yaml"),
        "correlate:\n  - name: x\n    window: forever\n",
    )
    .expect("write");
    std::fs::write(
        tmp.path().join("t.yaml"),
        "rule_dir: rules\ntests:\n  - name: t\n    expect: [{at: 0}]\n",
    )
    .expect("write");
    let (code, out, err) = run(tmp.path(), &["rules", "test", "t.yaml"]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("bad.yaml:3:13:"), "{err}");
    assert!(out.contains("the rules under test do not compile"), "{out}");
}

#[test]
fn rules_check_names_file_line_and_column() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("rules");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(
        dir.join("broken.yaml"),
        "correlate:\n  - name: a\n    match: ['alertname=~\"(\"']\n",
    )
    .expect("write");
    let (code, out, err) = run(tmp.path(), &["rules", "check", "rules"]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("rules/broken.yaml:3:13: bad matcher"), "{err}");
}

#[test]
fn replay_of_the_recorded_outage() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = repo().join("tests/data/recorded_alerts.jsonl");
    let rules = repo().join("rules");
    let (code, out, err) = run(
        tmp.path(),
        &[
            "replay",
            path_str(&data),
            "--rules",
            path_str(&rules),
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 0, "stderr:\n{err}");
    let r: Value = serde_json::from_str(&out).expect("JSON report");
    assert_eq!(r["lines"]["read"], 262);
    assert_eq!(r["lines"]["skipped"], 0);
    let s = &r["summary"];
    // Expected from rules/default.yaml (see the comments in this test):
    // P1 KubeAPIErrorBudgetBurn (impact high by name, critical);
    // P2 InstanceDown web-3 (prod, critical), HTTPCheckFailed (prod,
    //    critical), NodeFilesystemAlmostOutOfSpace (prod, critical);
    // P3 NodeFilesystemSpaceFillingUp, NodeMemoryHighUtilization,
    //    crashloops in shop (2 pods, one incident) and payments,
    //    KubeDeploymentReplicasMismatch (all prod, warning), TargetDown
    //    (P4, raised to P3 by 3 distinct instances). Watchdog is a
    //    heartbeat: it keeps coming, so no incident.
    assert_eq!(s["incidents"], 10);
    assert_eq!(
        s["by_priority"],
        serde_json::json!({"P1": 1, "P2": 3, "P3": 6, "P4": 0, "P5": 0})
    );
    assert_eq!(
        s["by_category"],
        serde_json::json!({"account": 0, "hardware": 4, "network": 0, "other": 0,
                           "performance": 1, "security": 0, "software": 5})
    );
    assert_eq!(
        s["by_status"],
        serde_json::json!({"acknowledged": 0, "closed": 0, "open": 0, "resolved": 10})
    );
    let a = &r["alerts"];
    assert_eq!(a["alerts_received"], 846);
    assert_eq!(a["incidents_created"], 10);
    // BlackboxProbeFailed on web-3 while InstanceDown fires for it.
    assert_eq!(
        a["suppressed"],
        serde_json::json!({"flapping": 0, "inhibit": 1, "maintenance": 0, "silence": 0})
    );
    // Prometheus resends the probe's resolve for 15 minutes; the first one
    // ends the suppression, the other 15 are for an alert never in an incident.
    assert_eq!(a["ignored"], 15);
    // web-3 came back and died again within the 2h window; TargetDown's
    // priority rose with the third instance.
    assert_eq!(a["reopened"], 1);
    assert_eq!(a["priority_raised"], 1);
    let by_group = |g: &str| -> Value {
        r["incidents"]
            .as_array()
            .expect("array")
            .iter()
            .find(|i| i["group_key"] == g)
            .cloned()
            .unwrap_or_else(|| panic!("no incident {g}"))
    };
    let crash = by_group("kube-workload{alertname=\"KubePodCrashLooping\",namespace=\"shop\"}");
    assert_eq!(
        (
            &crash["priority"],
            &crash["category"],
            &crash["alert_count"]
        ),
        (
            &Value::from("P3"),
            &Value::from("software"),
            &Value::from(2)
        )
    );
    let targets = by_group("target-down{job=\"api\",namespace=\"shop\"}");
    assert_eq!(targets["alert_count"], 3);
    assert_eq!(targets["priority"], "P3");
    assert_eq!(
        by_group("node-down{instance=\"web-3:9100\"}")["priority"],
        "P2"
    );
    assert!(
        r["incidents"]
            .as_array()
            .expect("array")
            .iter()
            .all(|i| !i["group_key"].as_str().unwrap_or("").contains("Watchdog")),
        "Watchdog is a heartbeat and opens no incident"
    );
    assert!(
        entries(tmp.path()).is_empty(),
        "replay wrote into its working directory: {:?}",
        entries(tmp.path())
    );

    // The text form says the same for people.
    let (code, text, err) = run(
        tmp.path(),
        &["replay", path_str(&data), "--rules", path_str(&rules)],
    );
    assert_eq!(code, 0, "stderr:\n{err}");
    assert!(text.contains("incidents created: 10"), "{text}");
    assert!(
        text.contains("by priority: P1 1, P2 3, P3 6, P4 0, P5 0"),
        "{text}"
    );
    assert!(
        text.contains("INC-20260310-0010 P1 performance resolved     rule=kube-control-plane"),
        "{text}"
    );
    assert!(
        text.contains("ticked every 1m up to 2026-03-10T11:01:00+00:00"),
        "{text}"
    );
    assert!(!tmp.path().join("data").exists(), "no data dir");
}

#[test]
fn replay_reports_bad_lines_and_uses_local_rules() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // ./rules exists: replay uses it, like serve.
    std::fs::create_dir(tmp.path().join("rules")).expect("mkdir");
    std::fs::write(
        tmp.path().join("rules/r.yaml"),
        "correlate:\n  - name: everything\n    group_by: [team]\n",
    )
    .expect("write");
    std::fs::write(
        tmp.path().join("stream.jsonl"),
        concat!(
            r#"{"at":"2026-02-01T10:00:00Z","payload":[{"labels":{"alertname":"A","team":"x"}},{"labels":{"alertname":"B","team":"x"}}]}"#,
            "\n",
            "{\"at\": \"2026-02-01T10:01:00Z\", \"payload\": [\n",
            "\n",
            r#"{"at":"2026-02-01T10:02:00Z","payload":[{"labels":{}}]}"#,
            "\n",
            r#"{"labels":{"alertname":"C","team":"y"},"startsAt":"2026-02-01T10:03:00Z"}"#,
            "\n",
        ),
    )
    .expect("write");
    let (code, out, err) = run(tmp.path(), &["replay", "stream.jsonl"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("rules: ./rules"), "{out}");
    assert!(
        out.contains("lines: 4 read, 2 replayed, 2 skipped"),
        "{out}"
    );
    assert!(out.contains("  line 2: invalid JSON"), "{out}");
    assert!(
        out.contains("  line 4: alert array: [0].labels: an alert needs at least one label"),
        "{out}"
    );
    assert!(
        out.contains("rule=everything group=everything{team=\"x\"} alerts=2"),
        "{out}"
    );
    assert!(out.contains("incidents created: 2"), "{out}");
    assert_eq!(
        entries(tmp.path()),
        vec!["rules".to_string(), "stream.jsonl".to_string()],
        "nothing written"
    );

    let (code, _, err) = run(tmp.path(), &["replay", "missing.jsonl"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read missing.jsonl"), "{err}");
}

#[test]
fn failing_test_diffs_group_key_count_and_suppression_reason() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rules = repo().join("rules/default.yaml");
    std::fs::write(
        tmp.path().join("t.yaml"),
        format!(
            r#"rule_files: ["{}"]
tests:
  - name: wrong group and reason
    input:
      - {{at: 0m, labels: {{alertname: InstanceDown, instance: "web-2:9100", severity: critical}}}}
      - {{at: 0m, labels: {{alertname: NodeFilesystemSpaceFillingUp, instance: "web-2:9100", severity: warning}}}}
    expect:
      - at: 1m
        incidents:
          - {{group_key: 'node-down{{instance="web-1:9100"}}', category: hardware}}
          - {{rule: node-resources}}
        suppressed:
          - {{labels: {{instance: "web-2:9100"}}, reason: silence}}
"#,
            path_str(&rules)
        ),
    )
    .expect("write");
    let (code, out, err) = run(tmp.path(), &["rules", "test", "t.yaml"]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("    incidents: expected 2, got 1\n"), "{out}");
    assert!(
        out.contains(
            "        group_key: expected node-down{instance=\"web-1:9100\"}\n                   got      node-down{instance=\"web-2:9100\"}\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("    suppressed alerts: expected 1, got 1\n"),
        "{out}"
    );
    assert!(
        out.contains("        reason: expected silence\n                got      inhibit\n"),
        "{out}"
    );
}

/// A rule directory in `dir` with one file.
fn rule_dir(dir: &Path, text: &str) -> PathBuf {
    let d = dir.join("rules");
    std::fs::create_dir_all(&d).expect("mkdir");
    std::fs::write(d.join("10-team.yaml"), text).expect("write");
    d
}

#[test]
fn strict_check_fails_on_a_dead_rule_and_the_shipped_rules_pass() {
    let tmp = tempfile::tempdir().expect("tempdir");
    rule_dir(
        tmp.path(),
        "correlate:\n  - name: kube\n    match: ['alertname=~\"Kube.*\"']\n    group_by: [namespace]\n  - name: kube-pods\n    match: ['alertname=~\"KubePod.*\"']\n    group_by: [namespace, pod]\n",
    );
    let (code, out, err) = run(tmp.path(), &["rules", "check", "rules"]);
    assert_eq!(code, 0, "warnings alone pass without --strict: {err}");
    assert!(out.contains("(1 warning(s))"), "{out}");
    let (code, _, err) = run(tmp.path(), &["rules", "check", "--strict", "rules"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("rules/10-team.yaml:5:5: warning: correlate rule kube-pods can never apply: correlate rule kube (rules/10-team.yaml:2:5) comes first and matches every alert this one matches"),
        "{err}"
    );
    assert!(
        err.contains("FAILED: 1 warning(s), and --strict fails on warnings"),
        "{err}"
    );

    let (code, out, err) = run(
        tmp.path(),
        &[
            "rules",
            "check",
            "--strict",
            path_str(&repo().join("rules")),
        ],
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn a_template_that_fails_at_run_time_is_an_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    rule_dir(
        tmp.path(),
        "correlate:\n  - name: web\n    title: \"{{ labels | to_json }}\"\n",
    );
    let (code, _, err) = run(tmp.path(), &["rules", "check", "rules"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("rules/10-team.yaml:3:12: title template fails on a sample alert: unknown filter: filter to_json is unknown"),
        "{err}"
    );
    // `tojson` exists, in titles and bodies alike.
    rule_dir(
        tmp.path(),
        "correlate:\n  - name: web\n    title: \"{{ labels | tojson }}\"\nactions:\n  - name: t\n    on: [opened]\n    webhook:\n      url: http://127.0.0.1:1/\n      body: '{\"labels\": {{ incident.labels | tojson }}}'\n",
    );
    let (code, out, err) = run(tmp.path(), &["rules", "check", "rules"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    // An unknown filter in a block-scalar body is reported at its line.
    rule_dir(
        tmp.path(),
        "actions:\n  - name: t\n    on: [opened]\n    webhook:\n      url: http://127.0.0.1:1/\n      body: |\n        {\"a\": {{ incident.id }},\n         \"b\": {{ incident.title | shout }}}\n",
    );
    let (code, _, err) = run(tmp.path(), &["rules", "check", "rules"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("rules/10-team.yaml:8:1: JSON body template fails on a sample incident event: unknown filter: filter shout is unknown"),
        "{err}"
    );
}

#[test]
fn coverage_of_the_shipped_tests_is_complete() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tests = repo().join("rules/tests");
    let files = [
        tests.join("default_test.yaml"),
        tests.join("routing_test.yaml"),
    ];
    let (code, out, err) = run(
        tmp.path(),
        &[
            "rules",
            "test",
            "--min-coverage",
            "100",
            path_str(&files[0]),
            path_str(&files[1]),
        ],
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("  correlate: 8/8\n"), "{out}");
    assert!(out.contains("    [x] node-down  "), "{out}");
    assert!(out.contains("total: 43/43 rules covered (100.0%)"), "{out}");
    // One file alone leaves rules uncovered: named, and below the minimum.
    let (code, out, _) = run(
        tmp.path(),
        &["rules", "test", "--min-coverage", "90", path_str(&files[0])],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("    [ ] certificates  "), "{out}");
    assert!(out.contains("is 60.5%, below --min-coverage 90%"), "{out}");
}

#[test]
fn explain_against_rule_files_in_text_and_json() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rules = repo().join("rules");
    std::fs::write(
        tmp.path().join("alert.json"),
        r#"[{"labels": {"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": "api-1",
                       "env": "prod", "severity": "critical"}}]"#,
    )
    .expect("write");
    let (code, out, err) = run(
        tmp.path(),
        &[
            "rules",
            "explain",
            "--rules",
            path_str(&rules),
            "alert.json",
        ],
    );
    assert_eq!(code, 0, "stderr:\n{err}");
    for want in [
        "state: rule files only",
        "alert 1 of 1: KubePodCrashLooping {alertname=\"KubePodCrashLooping\", env=\"prod\", namespace=\"shop\", pod=\"api-1\", severity=\"critical\"} (firing)",
        "result       opens: opens a new incident of group kube-workload{alertname=\"KubePodCrashLooping\",namespace=\"shop\"}",
        "  1. suppression: none applies",
        "critical-mutes-warning (",
        "no, not a target: severity=\"warning\" fails: severity is \"critical\"",
        "  2. correlate: kube-workload (",
        "target-down (",
        "alertname=\"TargetDown\" fails: alertname is \"KubePodCrashLooping\"",
        "title      KubePodCrashLooping in namespace shop",
        "  3. classify: software",
        "  4. priority: P2 = impact medium × urgency high (the matrix cell)",
        "  5. sla: P2: acknowledge within 30m",
        "  6. on opened:",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    // JSON, from standard input, at a Sunday 03:00 inside the patching window.
    let mut child = Command::new(env!("CARGO_BIN_EXE_incidentd"))
        .args([
            "rules",
            "explain",
            "--rules",
            path_str(&rules),
            "--at",
            "2026-01-11T03:00:00Z",
            "-o",
            "json",
        ])
        .current_dir(tmp.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(br#"{"labels": {"alertname": "InstanceDown", "instance": "db-1:9100", "severity": "critical", "maintenance_window": "weekly-patching"}}"#)
            .expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc["live_state"], false);
    assert_eq!(doc["at"], "2026-01-11T03:00:00Z");
    let e = &doc["alerts"][0];
    assert_eq!(e["result"]["kind"], "suppressed");
    assert_eq!(
        e["suppression"]["maintenance"][0]["rule"]["name"],
        "weekly-patching"
    );
    assert_eq!(e["suppression"]["maintenance"][0]["applies"], true);
    assert_eq!(
        e["correlate"]["group_key"],
        "node-down{instance=\"db-1:9100\"}"
    );
    assert_eq!(e["priority"]["priority"], "P3");
    assert!(
        entries(tmp.path()) == vec!["alert.json".to_string()],
        "nothing written"
    );

    // Not an alert payload: exit 1, saying where.
    std::fs::write(tmp.path().join("bad.json"), r#"{"labels": "x"}"#).expect("write");
    let (code, _, err) = run(
        tmp.path(),
        &["rules", "explain", "--rules", path_str(&rules), "bad.json"],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("the input is not an alert payload: labels: invalid type"),
        "{err}"
    );
}

/// A recorded cluster outage (rack power loss: 12 nodes of `prod-eu`, the
/// shop namespace's targets, pods crash-looping on dead nodes) replayed
/// through the shipped rules: the storm and relate rules turn 18 incidents
/// to work into 5. README.md ("How incidentd decides") quotes these figures.
#[test]
fn replay_of_the_recorded_storm_shows_the_reduction() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = repo().join("tests/data/recorded_storm.jsonl");
    let rules = repo().join("rules");
    let args = ["replay", path_str(&data), "--rules", path_str(&rules)];
    let (code, text, err) = run(tmp.path(), &args);
    assert_eq!(code, 0, "stderr:\n{err}");
    assert!(
        text.contains(
            "storms: 2 major incident(s) over 15 grouped incident(s): 5 incident(s) to work instead of 18"
        ),
        "{text}"
    );
    assert!(
        text.contains("relations: 2 incident(s) linked to their cause"),
        "{text}"
    );
    let mut json_args = args.to_vec();
    json_args.extend(["--format", "json"]);
    let (code, out, err) = run(tmp.path(), &json_args);
    assert_eq!(code, 0, "stderr:\n{err}");
    let r: Value = serde_json::from_str(&out).expect("JSON report");
    let s = &r["summary"];
    assert_eq!(
        (
            s["incidents"].as_u64(),
            s["major"].as_u64(),
            s["grouped"].as_u64(),
            s["to_work"].as_u64()
        ),
        (Some(20), Some(2), Some(15), Some(5))
    );
    let incidents = r["incidents"].as_array().expect("incidents");
    let major: Vec<&Value> = incidents
        .iter()
        .filter(|i| i["children"].as_u64() > Some(0))
        .collect();
    // Twelve nodes of one cluster: one P1 (blast radius 12 instances).
    let cluster = major
        .iter()
        .find(|i| i["rule"] == "cluster-outage")
        .expect("cluster storm");
    assert_eq!(cluster["priority"], "P1");
    assert_eq!(cluster["children"], 12);
    assert_eq!(cluster["title"], "Cluster prod-eu: 12 nodes down");
    // Three jobs of the shop namespace: one P2.
    let shop = major
        .iter()
        .find(|i| i["rule"] == "namespace-outage")
        .expect("namespace storm");
    assert_eq!(
        (shop["priority"].as_str(), shop["children"].as_u64()),
        (Some("P2"), Some(3))
    );
    // The crash-looping pods link to the dead node they ran on.
    let linked: Vec<&Value> = incidents
        .iter()
        .filter(|i| i["caused_by"].as_array().is_some_and(|c| !c.is_empty()))
        .collect();
    assert_eq!(linked.len(), 2);
    assert!(linked.iter().all(|i| i["rule"] == "kube-workload"));
}
