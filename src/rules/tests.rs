//! Rule compilation: every error with its position, and the compiled parts.

use super::actions::{ActionKind, KafkaKey};
use super::correlate::TitleContext;
use super::prioritize::DEFAULT_SLA;
use super::*;
use crate::model::labels::labels;
use crate::model::{Level, Priority};
use std::time::Duration;

fn compile(text: &str) -> Result<RuleSet, RulesError> {
    RuleSet::from_sources(&[("r.yaml".into(), text.into())], "test")
}

fn errors(text: &str) -> Vec<String> {
    compile(text)
        .expect_err("should be invalid")
        .0
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn kafka_actions_are_validated() {
    let ok = compile(
        "actions:\n  - name: events\n    on: [opened]\n    kafka:\n      topic: incident-events\n      key: group_key\n      brokers: k1:9092\n",
    )
    .expect("valid");
    let ActionKind::Kafka(k) = &ok.actions[0].kind else {
        panic!("not a kafka action: {:?}", ok.actions[0].kind)
    };
    assert_eq!(
        (k.topic.as_str(), k.brokers.as_deref(), k.key),
        ("incident-events", Some("k1:9092"), KafkaKey::GroupKey)
    );
    assert_eq!(ok.actions[0].kind_name(), "kafka");
    let e = errors(
        "actions:\n  - name: a\n    on: [opened]\n    kafka:\n      topic: 'bad topic'\n      key: labels\n  - name: b\n    on: [opened]\n    kafka: {topic: t}\n    webhook: {url: 'http://x'}\n",
    );
    assert!(
        e.iter()
            .any(|m| m.starts_with("r.yaml:5:") && m.contains("kafka topic \"bad topic\"")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.starts_with("r.yaml:6:") && m.contains("expected incident or group_key")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.contains("exactly one of `webhook`, `exec`, `kafka`, `email`, `pagerduty`, `redmine` or `alertmanager`")),
        "{e:?}"
    );
}

#[test]
fn json_bodies_are_escaped_checked_and_tojson_exists() {
    let ok = compile(
        "actions:\n  - name: t\n    on: [opened]\n    webhook:\n      url: http://x\n      body: '{\"s\": {{ incident.title }}, \"l\": {{ incident.labels|tojson }}}'\n",
    )
    .expect("valid");
    let ActionKind::Webhook(w) = &ok.actions[0].kind else {
        panic!("not a webhook")
    };
    let name = w.body_template.as_deref().expect("body");
    assert!(RuleSet::is_json_template(name));
    let ctx = serde_json::json!({"incident": {"title": "a\"b\n", "labels": {"k": "}\""}}});
    let out = ok.render(name, &ctx).expect("renders");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).expect("JSON"),
        serde_json::json!({"s": "a\"b\n", "l": {"k": "}\""}})
    );

    // The README's old pattern: quoting a value that is already a JSON
    // string breaks the body on the sample, with a hint.
    let e = errors(
        "actions:\n  - name: t\n    on: [opened]\n    webhook:\n      url: http://x\n      body: '{\"s\": \"{{ incident.title }}\"}'\n",
    );
    assert!(
        e[0].starts_with("r.yaml:6:13: JSON body template fails on a sample incident event: the rendered body is not valid JSON")
            && e[0].contains("not \"{{ incident.title }}\""),
        "{e:?}"
    );
    // A text body (content_type) is neither escaped nor checked.
    compile(
        "actions:\n  - name: t\n    on: [opened]\n    webhook:\n      url: http://x\n      content_type: text/plain\n      body: 'title: \"{{ incident.title }}\"'\n",
    )
    .expect("a text body");
}

#[test]
fn template_errors_are_placed_inside_the_template() {
    // Unknown filter on the third line of a block scalar: reported at that
    // line of the file.
    let e = errors(
        "actions:\n  - name: t\n    on: [opened]\n    webhook:\n      url: http://x\n      body: |\n        {\"a\": 1,\n         \"b\": {{ incident.title|nosuchfilter }}}\n",
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("r.yaml:8:1: "), "{e:?}");
    assert!(e[0].contains("unknown filter"), "{e:?}");
    // An attribute the incident does not have, in a header.
    let e = errors(
        "actions:\n  - name: t\n    on: [opened]\n    webhook:\n      url: http://x\n      headers: {X-Id: '{{ incident.nope.deeper }}'}\n",
    );
    assert!(
        e[0].starts_with("r.yaml:6:") && e[0].contains("header template fails on a sample"),
        "{e:?}"
    );
    // Mail parts and PagerDuty summaries are templates too.
    let e = errors(
        "actions:\n  - name: m\n    on: [opened]\n    email:\n      to: [a@example.com]\n      subject: '{{ incident.title|bogus }}'\n  - name: p\n    on: [opened]\n    pagerduty:\n      routing_key_env: PD\n      summary: '{{ nope.x }}'\n",
    );
    assert!(
        e.iter()
            .any(|m| m.starts_with("r.yaml:6:") && m.contains("unknown filter")),
        "{e:?}"
    );
    assert!(e.iter().any(|m| m.starts_with("r.yaml:11:")), "{e:?}");
}

#[test]
fn notifier_actions_are_validated() {
    let ok = compile(
        "actions:\n  - name: m\n    on: [opened]\n    email:\n      to: ['On call <oncall@example.com>']\n  - name: p\n    on: [opened, acknowledged, resolved]\n    pagerduty:\n      routing_key_file: /etc/incidentd/pd-key\n",
    )
    .expect("valid");
    assert_eq!(ok.actions[0].kind_name(), "email");
    let ActionKind::PagerDuty(p) = &ok.actions[1].kind else {
        panic!("not pagerduty")
    };
    assert_eq!(p.url, actions::PAGERDUTY_EVENTS_URL);
    assert_eq!(
        p.routing_key,
        actions::Secret::File("/etc/incidentd/pd-key".into())
    );
    let e = errors(
        "actions:\n  - name: m\n    on: [opened]\n    email:\n      to: ['not an address']\n  - name: p\n    on: [opened]\n    pagerduty:\n      url: ftp://x\n  - name: w\n    on: [opened]\n    webhook:\n      url: http://x\n      preset: teams\n      content_type: text/plain\n",
    );
    assert!(
        e.iter()
            .any(|m| m.starts_with("r.yaml:5:") && m.contains("bad address \"not an address\"")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.contains("routing_key: give exactly one of `routing_key_env`")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.starts_with("r.yaml:9:") && m.contains("must start with http")),
        "{e:?}"
    );
    assert!(e.iter().any(|m| m.contains("presets send JSON")), "{e:?}");
}

#[test]
fn shipped_rules_compile() {
    let r = RuleSet::builtin().expect("built-in rules are valid");
    assert!(r.correlate.len() >= 5);
    let l = labels(&[
        ("alertname", "KubePodCrashLooping"),
        ("namespace", "shop"),
        ("severity", "critical"),
        ("env", "prod"),
    ]);
    assert_eq!(r.correlate_rule(&l).name, "kube-workload");
    assert_eq!(r.category(&l), "software");
    let (i, u) = r.prioritize.assess(&l);
    assert_eq!(r.prioritize.priority(i, u), Priority::P2);
}

#[test]
fn every_error_is_reported_with_its_position() {
    let e = errors(
        "correlate:\n  - name: a\n    match: ['x=~\"(\"']\n  - name: a\n  - name: b\n    window: soon\n  - name: c\n    grup_by: [x]\nclassify:\n  - match: []\n    category: hardwear\nextra: 1\n",
    );
    assert_eq!(e.len(), 6, "{e:#?}");
    // A duplicate's own problems are still reported.
    let e2 = errors("correlate:\n  - name: a\n  - name: a\n    match: ['x=~\"(\"']\n");
    assert_eq!(e2.len(), 2, "{e2:#?}");
    assert!(
        e[0].starts_with("r.yaml:3:13: bad matcher") && e[0].contains("invalid regex"),
        "{}",
        e[0]
    );
    assert!(
        e[1].starts_with(
            "r.yaml:4:11: duplicate correlate rule name \"a\" (first defined at r.yaml:2:11)"
        ),
        "{}",
        e[1]
    );
    assert!(
        e[2].starts_with("r.yaml:6:13: bad duration \"soon\""),
        "{}",
        e[2]
    );
    assert!(
        e[3].starts_with("r.yaml:8:5: correlate: grup_by: Unknown field `grup_by`"),
        "{}",
        e[3]
    );
    assert!(
        e[4].starts_with("r.yaml:11:15: unknown category \"hardwear\""),
        "{}",
        e[4]
    );
    assert!(
        e[5].starts_with("r.yaml:12:1: unknown section `extra`"),
        "{}",
        e[5]
    );
}

#[test]
fn yaml_syntax_errors_have_positions() {
    let e = errors("correlate:\n  - name: a\n   bad: [\n");
    assert!(e[0].starts_with("r.yaml:"), "{}", e[0]);
    let e = errors("correlate: []\ncorrelate: []\n");
    assert!(e[0].contains("duplicate key \"correlate\""), "{}", e[0]);
}

#[test]
fn matrix_gaps_and_bad_cells() {
    let e = errors("prioritize:\n  matrix:\n    high: {high: P1, medium: P2, low: P3}\n    medium: {high: P2, medium: P9, low: P4}\n");
    assert!(
        e.iter().any(|m| m.contains("a cell must be one of P1")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.contains("missing cells") && m.contains("impact=low urgency=high")),
        "{e:?}"
    );
    let ok = compile("prioritize:\n  matrix:\n    high: {high: P1, medium: P1, low: P1}\n    medium: {high: P2, medium: P2, low: P2}\n    low: {high: P5, medium: P5, low: P5}\n").expect("full matrix");
    assert_eq!(
        ok.prioritize.priority(Level::Low, Level::High),
        Priority::P5
    );
}

#[test]
fn sla_and_defaults_are_validated() {
    let e = errors("sla:\n  P0: {acknowledge: 1m, resolve: 1h}\n  P1: {acknowledge: 2h, resolve: 1h}\n  P2: {acknowledge: 1m}\nprioritize:\n  default_impact: huge\n");
    assert!(
        e.iter().any(|m| m.contains("unknown priority \"P0\"")),
        "{e:?}"
    );
    assert!(
        e.iter().any(|m| m.contains("acknowledge target is longer")),
        "{e:?}"
    );
    assert!(
        e.iter().any(|m| m.contains("missing field `resolve`")),
        "{e:?}"
    );
    assert!(
        e.iter().any(|m| m.contains("unknown impact \"huge\"")),
        "{e:?}"
    );
    let r = compile("sla:\n  P2: {acknowledge: 1m, resolve: 1h}\n").expect("valid");
    assert_eq!(r.sla[1].acknowledge, Duration::from_secs(60));
    assert_eq!(r.sla[0], DEFAULT_SLA[0]);
}

#[test]
fn duplicates_across_files_name_both_places() {
    let r = RuleSet::from_sources(
        &[
            (
                "a.yaml".into(),
                "correlate:\n  - name: x\nsla:\n  P1: {acknowledge: 1m, resolve: 1h}\n".into(),
            ),
            (
                "b.yaml".into(),
                "correlate:\n  - name: x\nsla:\n  P1: {acknowledge: 1m, resolve: 1h}\n".into(),
            ),
        ],
        "t",
    );
    let e: Vec<String> = r
        .expect_err("dupes")
        .0
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        e.iter().any(|m| m.starts_with(
            "b.yaml:2:11: duplicate correlate rule name \"x\" (first defined at a.yaml:2:11)"
        )),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.starts_with("b.yaml:4:3: sla: P1 is defined twice (first at a.yaml:4:3)")),
        "{e:?}"
    );
}

#[test]
fn first_match_respects_file_order_across_the_index() {
    let r = compile(
        "classify:\n  - match: ['severity=\"x\"']\n    category: network\n  - match: ['alertname=\"A\"']\n    category: hardware\n  - match: ['alertname=~\"A|B\"']\n    category: security\n",
    )
    .expect("valid");
    assert_eq!(
        r.category(&labels(&[("alertname", "A"), ("severity", "x")])),
        "network"
    );
    assert_eq!(r.category(&labels(&[("alertname", "A")])), "hardware");
    assert_eq!(r.category(&labels(&[("alertname", "B")])), "security");
    assert_eq!(r.category(&labels(&[("alertname", "C")])), "other");
}

#[test]
fn group_keys_and_titles() {
    let r = compile("correlate:\n  - name: web\n    group_by: [service, region]\n    title: \"{{ labels.service }} in {{ group_labels.region }}\"\n  - name: all\n    match: ['x=\"1\"']\n    group_by: [\"...\"]\n").expect("valid");
    let l = labels(&[("alertname", "Down"), ("service", "cart"), ("region", "eu")]);
    let rule = r.correlate_rule(&l);
    assert_eq!(rule.group_key(&l), r#"web{region="eu",service="cart"}"#);
    let gl = rule.group_labels(&l);
    let title = r.render_title(
        rule,
        &TitleContext {
            labels: &l,
            annotations: &Labels::new(),
            group_labels: &gl,
            rule: &rule.name,
        },
    );
    assert_eq!(title, "cart in eu");
    let e = errors("correlate:\n  - name: t\n    title: \"{{ labels.x \"\n");
    assert!(
        e[0].starts_with("r.yaml:3:12: bad title template"),
        "{}",
        e[0]
    );
}

#[test]
fn suppression_sections_are_validated() {
    let e = errors(concat!(
        "inhibit:\n",
        "  - name: i\n    source: ['a=\"1\"']\n",
        "maintenance:\n",
        "  - name: m1\n    match: ['env=\"x\"']\n    weekly:\n      - days: [funday]\n        start: \"25:00\"\n        end: \"02:00\"\n    time_zone: Mars/Olympus\n",
        "  - name: m2\n    match: ['env=\"x\"']\n    start: 2026-01-01T00:00:00Z\n    end: 2025-01-01T00:00:00Z\n",
        "  - name: m3\n    start: 2026-01-01T00:00:00Z\n    end: 2026-01-02T00:00:00Z\n",
        "  - name: m1\n    match: ['env=\"y\"']\n    start: 2026-01-01T00:00:00Z\n    end: 2026-01-02T00:00:00Z\n    weekly:\n      - start: \"01:00\"\n        end: \"02:00\"\n",
        "flapping:\n  max_changes: 1\n  window: often\n",
        "problems:\n  recurrence: 1\n",
    ));
    let has = |s: &str| assert!(e.iter().any(|m| m.contains(s)), "missing {s:?} in {e:#?}");
    has("r.yaml:2:9: inhibit: a rule needs both `source` and `target`");
    has("unknown day \"funday\"");
    has("bad time \"25:00\"");
    has("unknown time zone \"Mars/Olympus\"");
    has("maintenance: `end` must be after `start`");
    has("maintenance: a window needs `match`");
    has("duplicate maintenance window name \"m1\"");
    has("flapping: max_changes must be at least 2");
    has("bad duration \"often\"");
    has("problems: recurrence must be at least 2");
    let ok = compile("maintenance:\n  - name: w\n    match: ['env=\"staging\"']\n    weekly:\n      - days: [weekend]\n        start: \"22:00\"\n        end: \"06:00\"\n    time_zone: Asia/Tokyo\n").expect("valid");
    assert_eq!(ok.maintenance.len(), 1);
}

#[test]
fn fallback_rule_when_nothing_matches() {
    let r =
        compile("correlate:\n  - name: only-x\n    match: ['alertname=\"X\"']\n").expect("valid");
    let l = labels(&[("alertname", "Y"), ("instance", "i")]);
    let rule = r.correlate_rule(&l);
    assert_eq!(rule.name, "default");
    assert_eq!(rule.group_key(&l), r#"default{alertname="Y"}"#);
}
