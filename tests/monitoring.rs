//! What a user gets when they monitor incidentd: a real Prometheus scrapes
//! the real binary with the shipped mixin (`deploy/prometheus/rules.yml`,
//! `alerts.yml`) loaded, a scenario runs (alerts from three senders, a
//! repeat, a silence, ack, resolve, an SLA breach, an escalation, an action
//! delivered to a real local webhook), and then **every query of every
//! panel** of `deploy/grafana/incidentd.json`, with its template variables
//! substituted the way Grafana's Prometheus data source does, returns data
//! from that Prometheus. The standard metrics (`incidentd_build_info`,
//! `process_*`, the reload status, series at zero) are checked on the same
//! daemon.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use common::procs::{self, Proc};
use common::serve::{Prometheus, Serve, Sink, DEADLINE};
use common::tools::http_client;
use serde_json::{json, Value};

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The shipped rules with a 2 s acknowledge target for P4, a webhook action
/// on every new incident, and an escalation of P4 incidents after 1 s.
fn scenario_rules(dir: &Path, sink: &str) {
    let shipped = std::fs::read_to_string(repo("rules/default.yaml")).expect("rules/default.yaml");
    let fast = shipped.replace(
        "P4: {acknowledge: 8h, resolve: 72h}",
        "P4: {acknowledge: 2s, resolve: 72h}",
    );
    assert_ne!(
        fast, shipped,
        "the shipped P4 SLA line moved; update this test"
    );
    std::fs::create_dir_all(dir).expect("mkdir rules");
    std::fs::write(dir.join("default.yaml"), fast).expect("write rules");
    std::fs::write(
        dir.join("zz-actions.yaml"),
        format!(
            "actions:\n  - name: notify\n    on: [opened]\n    webhook:\n      url: {sink}\n  - name: page\n    webhook: {{}}\n\
             escalations:\n  - name: slow-p4\n    priority: [P4]\n    levels:\n      - after: 1s\n        assignee: secondary\n        person: ops\n"
        ),
    )
    .expect("write actions");
    // A person to page (through the sink) and alice's team, so the
    // paging and time-to-acknowledge panels have data.
    std::fs::write(
        dir.join("zz-people.yaml"),
        format!(
            "people:\n  - {{name: ops, webhook: \"{sink}\"}}\n  - {{name: alice}}\n\
             teams:\n  - name: ops\n    members: [ops, alice]\ncontacts:\n  webhook: page\n"
        ),
    )
    .expect("write people");
}

/// How Grafana's Prometheus data source writes a multi-value variable into
/// a query: each value regex-escaped, one value alone, several as `(a|b)`.
fn grafana_regex(values: &[String]) -> String {
    let escaped: Vec<String> = values
        .iter()
        .map(|v| {
            let mut out = String::new();
            for c in v.chars() {
                if "\\^$*+?.()|{}[]".contains(c) {
                    out.push_str("\\\\");
                }
                out.push(c);
            }
            out
        })
        .collect();
    match escaped.as_slice() {
        [one] => one.clone(),
        many => format!("({})", many.join("|")),
    }
}

/// A variable's values as Grafana's `label_values(metric, label)` finds them.
async fn label_values(prom: &Prometheus, query: &str) -> Vec<String> {
    let inner = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not a label_values query: {query}"));
    let (metric, label) = inner.rsplit_once(',').expect("label_values(metric, label)");
    let mut values: Vec<String> = prom
        .query(&format!("group by ({}) ({})", label.trim(), metric.trim()))
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .iter()
        .filter_map(|s| s["metric"][label.trim()].as_str().map(str::to_string))
        .collect();
    values.sort();
    values.dedup();
    values
}

/// Substitutes the dashboard's variables into `expr`, in Grafana's way.
fn substitute(expr: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = expr.to_string();
    // Longest names first, so `$__rate_interval` is not read as `$__rate`.
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in names {
        out = out.replace(&format!("${{{name}}}"), &vars[name]);
        out = out.replace(&format!("${name}"), &vars[name]);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_dashboard_panel_has_data_and_the_mixin_loads() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start().await;
    let rules = tmp.path().join("rules");
    scenario_rules(&rules, &sink.url);
    let inc = Serve::start(
        "incidentd",
        tmp.path(),
        &tmp.path().join("data"),
        &rules,
        &[],
    )
    .await;

    let prom = Prometheus::start(
        tmp.path(),
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n  - {}\n\
             scrape_configs:\n  - job_name: incidentd\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            repo("deploy/prometheus/rules.yml").display(),
            repo("deploy/prometheus/alerts.yml").display(),
            inc.port
        ),
    )
    .await;
    let procs: [&Proc; 2] = [&inc.proc, &prom.proc];

    // The scenario. Two crash-looping pods: one P2 incident (alertmanager_api).
    let pod = |p: &str| {
        json!({"labels": {"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": p,
                          "severity": "critical", "env": "prod"},
               "annotations": {"summary": format!("pod {p} crash looping")}})
    };
    let created = inc
        .post("/api/v2/alerts", &json!([pod("api-1"), pod("api-2")]))
        .await;
    let p2 = created["created"][0]
        .as_str()
        .expect("a P2 incident")
        .to_string();
    // The repeat Prometheus sends: deduplicated.
    let again = inc.post("/api/v2/alerts", &json!([pod("api-1")])).await;
    assert_eq!(again["deduplicated"], 1, "{again}");
    // A generic P4 alert: the webhook action, the escalation, the SLA breach.
    let backup = inc
        .post(
            "/api/v1/alerts",
            &json!({"labels": {"alertname": "BackupFailed", "host": "db-1", "severity": "warning"}}),
        )
        .await;
    let p4 = backup["created"][0]
        .as_str()
        .expect("a P4 incident")
        .to_string();
    // A silence, and an alert it keeps out of incidents.
    inc.post(
        "/api/v1/silences",
        &json!({"matchers": ["alertname=\"DiskSlow\""], "duration": "1h",
                "created_by": "alice", "comment": "CHG-1: disks"}),
    )
    .await;
    let silenced = inc
        .post(
            "/api/v1/webhook/alertmanager",
            &json!({"version": "4", "status": "firing", "alerts": [
                {"status": "firing", "labels": {"alertname": "DiskSlow", "instance": "db-2"},
                 "annotations": {}, "startsAt": Utc::now().to_rfc3339()}]}),
        )
        .await;
    assert_eq!(silenced["suppressed"], 1, "{silenced}");
    // Acknowledge and resolve the P2 incident.
    tokio::time::sleep(Duration::from_millis(300)).await;
    inc.post(
        &format!("/api/v1/incidents/{p2}/ack"),
        &json!({"by": "alice"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    inc.post(
        &format!("/api/v1/incidents/{p2}/resolve"),
        &json!({"by": "alice"}),
    )
    .await;

    // incidentd did what the scenario needs.
    procs::wait_for(
        "the P4 breach, escalation and action",
        &procs,
        DEADLINE,
        || {
            let (inc, sink, p4) = (&inc, &sink, &p4);
            async move {
                let i =
                    common::serve::get_json(&inc.url(&format!("/api/v1/incidents/{p4}"))).await?;
                if i["sla"]["acknowledge_breached"] == true
                    && i["escalation_level"].as_u64() >= Some(1)
                    && sink.count() >= 2
                {
                    Ok(())
                } else {
                    Err(format!(
                        "sla {}, escalation_level {}, webhook requests {}",
                        i["sla"],
                        i["escalation_level"],
                        sink.count()
                    ))
                }
            }
        },
    )
    .await;

    // Prometheus has scraped the end state, and a few samples after it so
    // every rate() window holds two points.
    procs::wait_for("Prometheus to see the scenario", &procs, DEADLINE, || {
        let prom = &prom;
        async move {
            let checks = [
                "sum(incidentd_sla_breaches_total)",
                "sum(incidentd_actions_total{outcome=\"success\"})",
                "sum(incidentd_incident_resolve_duration_seconds_count)",
                "sum(incidentd_incident_acknowledge_duration_seconds_count)",
                "sum(incidentd_escalations_total)",
                "sum(incidentd_alerts_suppressed_total{reason=\"silence\"})",
            ];
            for c in checks {
                match prom.scalar(c).await {
                    Some(v) if v > 0.0 => {}
                    other => return Err(format!("{c} = {other:?}")),
                }
            }
            Ok(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The dashboard, as a user imports it.
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("deploy/grafana/incidentd.json")).expect("dashboard"),
    )
    .expect("the dashboard is JSON");
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    vars.insert("__rate_interval".into(), "1m".into());
    vars.insert("__interval".into(), "15s".into());
    vars.insert("__range".into(), "6h".into());
    let templating = dash["templating"]["list"]
        .as_array()
        .expect("templating.list");
    assert!(
        templating.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "a $datasource variable of type prometheus"
    );
    for v in templating {
        let name = v["name"].as_str().expect("variable name").to_string();
        match v["type"].as_str() {
            Some("datasource") => {}
            Some("query") => {
                let q = substitute(
                    v["query"]["query"]
                        .as_str()
                        .or(v["query"].as_str())
                        .expect("query"),
                    &vars,
                );
                let values = label_values(&prom, &q).await;
                assert!(!values.is_empty(), "variable ${name} ({q}) has no values");
                vars.insert(name, grafana_regex(&values));
            }
            Some("custom") => {
                let current = v["current"]["value"]
                    .as_str()
                    .expect("custom current value");
                vars.insert(name, current.to_string());
            }
            other => panic!("variable ${name}: unexpected type {other:?}"),
        }
    }

    let mut panels = 0;
    let mut failures = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for p in dash["panels"].as_array().expect("panels") {
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "duplicate panel id {}",
            p["id"]
        );
        assert!(
            p["gridPos"]["w"].as_u64().is_some(),
            "panel {} has a gridPos",
            p["title"]
        );
        if p["type"] == "row" {
            continue;
        }
        panels += 1;
        let title = p["title"].as_str().unwrap_or("?");
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "panel {title} uses $datasource"
        );
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title} has queries");
        for t in targets {
            let expr = substitute(t["expr"].as_str().expect("expr"), &vars);
            assert!(
                !expr.contains('$'),
                "panel {title}: unsubstituted variable in {expr}"
            );
            match prom.query(&expr).await {
                Ok(r) if !r.is_empty() => {}
                Ok(_) => failures.push(format!("{title}: no data now for {expr}")),
                Err(e) => failures.push(format!("{title}: {e}")),
            }
            if p["type"] == "timeseries" {
                match prom.query_range(&expr, 60, 5).await {
                    Ok(r) if !r.is_empty() => {}
                    Ok(_) => {
                        failures.push(format!("{title}: no data over the last minute for {expr}"))
                    }
                    Err(e) => failures.push(format!("{title}: {e}")),
                }
            }
        }
    }
    assert!(panels >= 15, "the dashboard has {panels} panels");
    if !failures.is_empty() {
        panic!("{}\n{}", failures.join("\n"), procs::logs(&procs));
    }

    // The mixin: every rule loaded and evaluates, the recording rules have data.
    let rules = common::serve::get_json(&format!("{}/api/v1/rules", prom.base))
        .await
        .expect("rules API");
    let mut names = Vec::new();
    for g in rules["data"]["groups"].as_array().expect("groups") {
        for r in g["rules"].as_array().expect("rules") {
            assert_eq!(
                r["health"], "ok",
                "rule {} does not evaluate: {}",
                r["name"], r["lastError"]
            );
            names.push(r["name"].as_str().unwrap_or("").to_string());
        }
    }
    for want in [
        "IncidentdDown",
        "IncidentdStoreNotHealthy",
        "IncidentdIngestRejecting",
        "IncidentdQueueSaturated",
        "IncidentdActionsFailing",
        "IncidentdKafkaLagGrowing",
        "IncidentdConfigReloadFailed",
        "IncidentdSLABreachRateHigh",
        "priority:incidentd_mtta_seconds:mean1h",
        "priority:incidentd_mttr_seconds:mean1h",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "rule {want} is loaded: {names:?}"
        );
    }
    procs::wait_for("the recording rules to have data", &procs, DEADLINE, || {
        let prom = &prom;
        async move {
            for r in [
                "priority:incidentd_mtta_seconds:mean1h",
                "priority:incidentd_mttr_seconds:mean1d",
            ] {
                match prom.query(r).await {
                    Ok(v) if !v.is_empty() => {}
                    other => return Err(format!("{r}: {other:?}")),
                }
            }
            Ok(())
        }
    })
    .await;
}

/// The standard metrics a user greps for, on the real binary: build info,
/// process metrics, the reload status (updated by a failed and a good
/// reload), and series that start at zero.
#[tokio::test(flavor = "multi_thread")]
async fn standard_metrics_and_reload_status() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start().await;
    let rules = tmp.path().join("rules");
    scenario_rules(&rules, &sink.url);
    let inc = Serve::start(
        "incidentd",
        tmp.path(),
        &tmp.path().join("data"),
        &rules,
        &[],
    )
    .await;
    let c = http_client();
    let metrics = || async {
        c.get(inc.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("body")
    };
    let m = metrics().await;
    let line = |m: &str, prefix: &str| -> Option<String> {
        m.lines()
            .find(|l| l.starts_with(prefix))
            .map(str::to_string)
    };
    let build = line(&m, "incidentd_build_info{").expect("incidentd_build_info");
    assert!(
        build.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))),
        "{build}"
    );
    assert!(
        build.contains("revision=\"") && build.ends_with(" 1"),
        "{build}"
    );
    for p in [
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
        "process_open_fds ",
        "process_start_time_seconds ",
    ] {
        assert!(line(&m, p).is_some(), "{p} in /metrics");
    }
    // Series that exist before their first event.
    for zero in [
        "incidentd_actions_total{action=\"notify\",outcome=\"failure\"} 0",
        "incidentd_actions_total{action=\"notify\",outcome=\"success\"} 0",
        "incidentd_actions_total{action=\"notify\",outcome=\"timeout\"} 0",
        "incidentd_escalations_total{level=\"1\",policy=\"slow-p4\"} 0",
        "incidentd_requests_rejected_total{reason=\"overloaded\",source=\"alertmanager_api\"} 0",
        "incidentd_alerts_suppressed_total{reason=\"maintenance\"} 0",
        "incidentd_sla_breaches_total{kind=\"resolve\",priority=\"P1\"} 0",
        "incidentd_incident_resolve_duration_seconds_count{category=\"network\",priority=\"P5\"} 0",
        "incidentd_alerts_received_total{source=\"pagerduty\"} 0",
        "incidentd_http_requests_denied_total{reason=\"forbidden\"} 0",
        "incidentd_pipeline_queue_length 0",
    ] {
        assert!(m.lines().any(|l| l == zero), "{zero} in /metrics:\n{m}");
    }
    assert_eq!(
        line(&m, "incidentd_config_last_reload_successful ").as_deref(),
        Some("incidentd_config_last_reload_successful 1")
    );
    let started: f64 = line(
        &m,
        "incidentd_config_last_reload_success_timestamp_seconds ",
    )
    .and_then(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
    .expect("reload timestamp");
    let now = Utc::now().timestamp() as f64;
    assert!(
        (now - 120.0..=now + 1.0).contains(&started),
        "{started} vs {now}"
    );

    // A broken rule file: the reload fails, the status says so, the time stays.
    std::fs::write(
        rules.join("zz-broken.yaml"),
        "correlate: [\n  - name: broken\n",
    )
    .expect("write");
    let r = c.post(inc.url("/-/reload")).send().await.expect("reload");
    assert_eq!(r.status(), 400);
    let m = metrics().await;
    assert_eq!(
        line(&m, "incidentd_config_last_reload_successful ").as_deref(),
        Some("incidentd_config_last_reload_successful 0")
    );
    let after: f64 = line(
        &m,
        "incidentd_config_last_reload_success_timestamp_seconds ",
    )
    .and_then(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
    .expect("reload timestamp");
    assert_eq!(
        after, started,
        "a failed reload keeps the last success time"
    );
    // Fixed, and reloaded by SIGHUP as systemd's ExecReload does.
    std::fs::remove_file(rules.join("zz-broken.yaml")).expect("rm");
    inc.proc.signal("HUP");
    procs::wait_for(
        "the SIGHUP reload to succeed",
        &[&inc.proc],
        DEADLINE,
        || {
            let metrics = &metrics;
            async move {
                let m = metrics().await;
                if m.lines()
                    .any(|l| l == "incidentd_config_last_reload_successful 1")
                {
                    Ok(())
                } else {
                    Err("reload status still 0".to_string())
                }
            }
        },
    )
    .await;
    // promtool accepts the whole exposition.
    let promtool = common::tools::require_binary("promtool", "prometheus");
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(metrics().await.as_bytes())
        .expect("write metrics");
    let out = child.wait_with_output().expect("promtool output");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
