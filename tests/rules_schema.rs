//! The editor schemas (`rules/schema.json`, `rules/test-schema.json`) as
//! an editor uses them: every shipped rule and test file and every YAML
//! example in rules/README.md validates; a corpus of broken rule files is
//! refused by the schema *and* by the rule loader; the shipped schemas are
//! what the code generates (`incidentd rules schema [--tests]`).

use std::path::{Path, PathBuf};

use incidentd::rules::{schema, RuleSet};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn json_file(p: &Path) -> Value {
    serde_json::from_str(&read(p)).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// YAML as the editor's language server sees it: plain JSON data.
fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("YAML: {e}\n{text}"))
}

fn validator(file: &str) -> jsonschema::Validator {
    jsonschema::validator_for(&json_file(&repo().join(file))).expect("a valid JSON Schema")
}

/// Every problem the schema finds, one per line (empty when valid).
fn problems(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    v.sort();
    v
}

#[test]
fn the_shipped_schemas_are_current() {
    assert_eq!(
        read(&repo().join("rules/schema.json")),
        schema::rule_file_text(),
        "rules/schema.json is stale: run `incidentd rules schema > rules/schema.json`"
    );
    assert_eq!(
        read(&repo().join("rules/test-schema.json")),
        schema::pretty(&incidentd::tools::ruletest::parse::schema()),
        "rules/test-schema.json is stale: run `incidentd rules schema --tests > rules/test-schema.json`"
    );
}

#[test]
fn every_shipped_rule_and_test_file_validates_and_names_its_schema() {
    let rules = validator("rules/schema.json");
    let tests = validator("rules/test-schema.json");
    let mut checked = 0;
    for (dir, v, comment) in [
        (
            "rules",
            &rules,
            "# yaml-language-server: $schema=./schema.json",
        ),
        (
            "rules/tests",
            &tests,
            "# yaml-language-server: $schema=../test-schema.json",
        ),
    ] {
        for f in yaml_files(&repo().join(dir)) {
            let text = read(&f);
            assert!(
                text.starts_with(comment),
                "{} does not start with `{comment}`",
                f.display()
            );
            let p = problems(v, &yaml(&text));
            assert!(p.is_empty(), "{}:\n{}", f.display(), p.join("\n"));
            checked += 1;
        }
    }
    // Rule files the tests ship as data are rule files too.
    for f in yaml_files(&repo().join("tests/data/db-4fb4df3/rules")) {
        let p = problems(&rules, &yaml(&read(&f)));
        assert!(p.is_empty(), "{}:\n{}", f.display(), p.join("\n"));
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} files found");
}

/// The fenced ```yaml blocks of a Markdown file (indented ones too), with
/// the line each starts at.
fn yaml_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, usize, String)> = None;
    for (n, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match &mut current {
            None if trimmed.starts_with("```yaml") => {
                current = Some((n + 1, indent, String::new()))
            }
            Some((start, _, text)) if trimmed.starts_with("```") => {
                out.push((*start, std::mem::take(text)));
                current = None;
            }
            Some((_, ind, text)) => {
                text.push_str(line.get(*ind..).unwrap_or(""));
                text.push('\n');
            }
            None => {}
        }
    }
    out
}

#[test]
fn every_yaml_example_in_the_rules_readme_validates() {
    let rules = validator("rules/schema.json");
    let tests = validator("rules/test-schema.json");
    let blocks = yaml_blocks(&read(&repo().join("rules/README.md")));
    assert!(blocks.len() >= 10, "found only {} examples", blocks.len());
    for (line, text) in blocks {
        let doc = yaml(&text);
        let (v, what) = if doc.get("tests").is_some() {
            (&tests, "test file")
        } else {
            (&rules, "rule file")
        };
        let p = problems(v, &doc);
        assert!(
            p.is_empty(),
            "rules/README.md:{line}: the example is not a valid {what}:\n{}\n{text}",
            p.join("\n")
        );
    }
}

/// Broken rule files: each must be refused by the loader and the schema.
const INVALID: &[(&str, &str)] = &[
    ("unknown section", "corelate:\n  - name: a\n"),
    ("unknown field", "correlate:\n  - name: a\n    group: [x]\n"),
    ("missing name", "correlate:\n  - match: ['a=\"b\"']\n"),
    ("empty name", "correlate:\n  - name: ''\n"),
    ("bad duration", "correlate:\n  - name: a\n    window: 5 fortnights\n"),
    ("section not a list", "correlate: {name: a}\n"),
    ("unknown category", "classify:\n  - match: ['a=\"b\"']\n    category: latency\n"),
    ("classify without match", "classify:\n  - category: hardware\n"),
    ("unknown urgency", "prioritize:\n  urgency:\n    - urgency: urgent\n"),
    ("urgency rule without urgency", "prioritize:\n  urgency:\n    - match: ['a=\"b\"']\n"),
    ("impact on an urgency rule", "prioritize:\n  urgency:\n    - urgency: high\n      impact: high\n"),
    ("blast radius without at_least", "prioritize:\n  impact:\n    - distinct: instance\n      impact: high\n"),
    ("at_least 0", "prioritize:\n  impact:\n    - distinct: instance\n      at_least: 0\n      impact: high\n"),
    ("rules on a plain impact rule", "prioritize:\n  impact:\n    - impact: high\n      rules: [x]\n"),
    ("unknown default", "prioritize:\n  default_impact: huge\n"),
    ("unknown prioritize key", "prioritize:\n  urgencies: []\n"),
    ("matrix cell", "prioritize:\n  matrix:\n    high: {high: P0, medium: P2, low: P3}\n    medium: {high: P2, medium: P3, low: P4}\n    low: {high: P3, medium: P4, low: P5}\n"),
    ("matrix missing a row", "prioritize:\n  matrix:\n    high: {high: P1, medium: P2, low: P3}\n"),
    ("sla priority", "sla:\n  P6: {acknowledge: 1h, resolve: 2h}\n"),
    ("sla without resolve", "sla:\n  P1: {acknowledge: 1h}\n"),
    ("inhibit without target", "inhibit:\n  - source: ['a=\"b\"']\n"),
    ("maintenance without match", "maintenance:\n  - name: w\n    weekly: [{start: '01:00', end: '02:00'}]\n"),
    ("maintenance both kinds", "maintenance:\n  - name: w\n    match: ['a=\"b\"']\n    start: 2026-01-01T00:00:00Z\n    end: 2026-01-02T00:00:00Z\n    weekly: [{start: '01:00', end: '02:00'}]\n"),
    ("maintenance neither kind", "maintenance:\n  - name: w\n    match: ['a=\"b\"']\n"),
    ("bad day", "maintenance:\n  - name: w\n    match: ['a=\"b\"']\n    weekly: [{days: [funday], start: '01:00', end: '02:00'}]\n"),
    ("bad time", "maintenance:\n  - name: w\n    match: ['a=\"b\"']\n    weekly: [{start: 'noon', end: '02:00'}]\n"),
    ("flapping max_changes 1", "flapping:\n  max_changes: 1\n"),
    ("problems recurrence 1", "problems:\n  recurrence: 1\n"),
    ("unknown trigger", "actions:\n  - name: a\n    on: [created]\n    webhook: {url: 'http://127.0.0.1:1/'}\n"),
    ("webhook and exec", "actions:\n  - name: a\n    on: [opened]\n    webhook: {url: 'http://127.0.0.1:1/'}\n    exec: {command: /bin/true}\n"),
    ("no kind", "actions:\n  - name: a\n    on: [opened]\n"),
    ("webhook url scheme", "actions:\n  - name: a\n    on: [opened]\n    webhook: {url: 'ftp://x/'}\n"),
    ("webhook url and url_env", "actions:\n  - name: a\n    on: [opened]\n    webhook: {url: 'http://x/', url_env: X}\n"),
    ("preset", "actions:\n  - name: a\n    on: [opened]\n    webhook: {url: 'http://x/', preset: discord}\n"),
    ("capture not a pointer", "actions:\n  - name: a\n    on: [opened]\n    webhook: {url: 'http://x/', capture: issue.id}\n"),
    ("webhook and pagerduty", "actions:\n  - name: a\n    on: [opened]\n    webhook: {url: 'http://x/'}\n    pagerduty: {routing_key_env: K}\n"),
    ("pagerduty without a routing key", "actions:\n  - name: a\n    on: [opened]\n    pagerduty: {url: 'http://x/'}\n"),
    ("pagerduty with both routing keys", "actions:\n  - name: a\n    on: [opened]\n    pagerduty: {routing_key_env: K, routing_key_file: /k}\n"),
    ("redmine without project", "actions:\n  - name: a\n    on: [opened]\n    redmine: {url: 'http://x/', api_key_env: K}\n"),
    ("redmine without api key", "actions:\n  - name: a\n    on: [opened]\n    redmine: {url: 'http://x/', project: ops}\n"),
    ("alertmanager without url", "actions:\n  - name: a\n    on: [acknowledged]\n    alertmanager: {duration: 1h}\n"),
    ("action priority", "actions:\n  - name: a\n    on: [opened]\n    priority: [P0]\n    webhook: {url: 'http://x/'}\n"),
    ("kafka key", "actions:\n  - name: a\n    on: [opened]\n    kafka: {topic: t, key: alert}\n"),
    ("escalation without levels", "escalations:\n  - name: e\n    levels: []\n"),
    ("level with after and resolve_progress", "escalations:\n  - name: e\n    levels: [{after: 5m, resolve_progress: '80%', assignee: x}]\n"),
    ("resolve_progress", "escalations:\n  - name: e\n    levels: [{resolve_progress: 'most'}]\n"),
];

/// Broken only given the other sections (what the schema of one file
/// cannot know): an email action without recipients, or a webhook without
/// a URL, is fine as a `contacts` action (it reaches the paged person),
/// so the schema accepts them and the loader refuses them elsewhere.
const LOADER_ONLY: &[(&str, &str)] = &[
    (
        "email without to",
        "actions:\n  - name: a\n    on: [opened]\n    email: {subject: x}\n",
    ),
    (
        "email with no recipient",
        "actions:\n  - name: a\n    on: [opened]\n    email: {to: []}\n",
    ),
    (
        "webhook without url",
        "actions:\n  - name: a\n    on: [opened]\n    webhook: {}\n",
    ),
];

#[test]
fn what_needs_the_contacts_section_is_left_to_the_loader() {
    let v = validator("rules/schema.json");
    for (what, text) in LOADER_ONLY {
        let loaded = RuleSet::from_sources(&[("broken.yaml".into(), (*text).into())], "test");
        assert!(loaded.is_err(), "{what}: the loader accepts\n{text}");
        assert!(
            problems(&v, &yaml(text)).is_empty(),
            "{what}: the schema refuses\n{text}"
        );
        let as_contact = format!("{text}contacts:\n  email: a\n  webhook: a\n");
        assert!(
            RuleSet::from_sources(&[("c.yaml".into(), as_contact.clone())], "test").is_ok(),
            "{what}: refused as a contacts action\n{as_contact}"
        );
    }
}

#[test]
fn schema_and_loader_refuse_the_same_broken_files() {
    let v = validator("rules/schema.json");
    for (what, text) in INVALID {
        let loaded = RuleSet::from_sources(&[("broken.yaml".into(), (*text).into())], "test");
        assert!(loaded.is_err(), "{what}: the loader accepts\n{text}");
        assert!(
            !problems(&v, &yaml(text)).is_empty(),
            "{what}: the schema accepts\n{text}"
        );
    }
    // And both accept a file using every section.
    let good = read(&repo().join("rules/default.yaml"));
    assert!(RuleSet::from_sources(&[("d.yaml".into(), good.clone())], "test").is_ok());
    assert!(problems(&v, &yaml(&good)).is_empty());
}
