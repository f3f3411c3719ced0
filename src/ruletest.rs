//! `incidentd rules test`: unit tests for rule files, like `promtool test rules`.
//!
//! Input: YAML test files. Output: for each failing test
//! `FAILED: <file>: <test name>` and, per failing evaluation time, what was
//! expected and what the engine produced; then `SUCCESS` or the number of
//! failures. Exit code ([`run_paths`]): 0 every test passed, 1 a test failed
//! or the rules under test do not compile (their errors are printed with
//! `file:line:column`), 2 a test file (or a rule file it names) cannot be
//! read or is not a valid test file (errors with `file:line:column`).
//! Contract: each test runs on a fresh in-memory engine and a virtual clock;
//! nothing is read besides the test and rule files, nothing is written.
//!
//! # Test file format
//!
//! ```yaml
//! # Rules under test, relative to this file: a list of files …
//! rule_files: [../default.yaml]
//! # … or (instead) a directory, loaded like `serve --rules DIR`:
//! # rule_dir: ..
//! evaluation_interval: 1m        # tick step; default 1m
//! start: 2026-01-05T00:00:00Z    # time 0; default 2026-01-05T00:00:00Z (a Monday)
//! close_after: 24h               # resolved incidents close after this; default 24h
//! tests:
//!   - name: node down becomes a P3 hardware incident
//!     start: 2026-01-11T01:50:00Z  # optional: this test's time 0 (overrides the file's)
//!     input:                     # alerts, at times relative to `start`
//!       - at: 0m
//!         labels: {alertname: InstanceDown, instance: "web-1:9100", severity: critical}
//!         annotations: {summary: web-1 is down}   # optional
//!         status: firing         # default firing; `resolved` resolves it
//!         every: 1m              # optional: resend every 1m …
//!         until: 10m             # … up to and including 10m (needs `every`)
//!       - at: 15m
//!         labels: {alertname: InstanceDown, instance: "web-1:9100", severity: critical}
//!         status: resolved
//!     silences:                  # optional: silences as created over the API
//!       - matchers: ['instance="db-1:9100"']   # Alertmanager matcher syntax
//!         from: 0m               # default 0m
//!         until: 1h
//!     expect:
//!       - at: 2m
//!         incidents:             # every incident that exists at 2m
//!           - rule: node-down
//!             group_key: 'node-down{instance="web-1:9100"}'
//!             category: hardware
//!             priority: P3
//!             status: open
//!             alert_count: 1
//!         suppressed:            # optional: alerts kept out of incidents
//!           - labels: {alertname: InstanceDown, instance: "db-1:9100"}
//!             reason: silence    # silence | inhibit | maintenance
//! ```
//!
//! Times (`at`, `every`, `until`, `from`) are durations such as `0`, `90s`,
//! `5m`, `1h30m`; label and annotation values are strings (quote values
//! like `"9100"` or `"true"` if the distinction matters to you; unquoted
//! scalars are read as their text).
//!
//! Semantics:
//! - The virtual clock starts at `start` (default a fixed Monday, so weekly
//!   maintenance windows are testable; give `start` — per file or per test
//!   — to test other days). Silences are created at time 0 (a silence with
//!   a later `from` is pending until then).
//! - Evaluation times are every multiple of `evaluation_interval` up to the
//!   last input or expectation, plus every input and expectation time. At
//!   each, in order: the inputs of that time are ingested as one batch (in
//!   file order), the engine ticks (timers, expiry, suppression re-checks),
//!   then the expectations of that time are checked. A firing input carries
//!   `startsAt` = its first `at` and no `endsAt` (it fires until resolved);
//!   a resolved input carries `endsAt` = its time.
//! - `incidents` lists every incident that exists at that time, closed
//!   ones included; omitting it (or `[]`) expects none. Each expected
//!   incident gives any of `id`, `rule`, `group_key`, `category`,
//!   `priority`, `status`, `impact`, `urgency`, `alert_count`,
//!   `firing_count`, `title` (exact) and `labels` (the incident's common
//!   labels must include these); only the fields given are compared. The
//!   lists are compared as sets: each expectation must be matched by its
//!   own incident, and incidents no expectation matched are reported as
//!   unexpected.
//! - `suppressed`, when given, lists every alert being kept out of
//!   incidents at that time, compared the same way: `labels` is a subset
//!   match, `reason` (`silence`, `inhibit`, `maintenance`) and `by` (the
//!   inhibit rule or maintenance window name, or silence id) are optional.
//!   Omitted, suppressed alerts are not checked.
//!
//! Failure output, per failing expectation time: the expected and the
//! actual incidents (one line each: `id rule group_key category priority
//! status alerts=N`), each expectation no incident matched (with the
//! closest incident and the fields that differ), and each unexpected
//! incident; likewise for suppressed alerts.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use marked_yaml::Spanned;
use serde::Deserialize;

use crate::alert::{Alert, AlertStatus, Labels, Source};
use crate::engine::Settings;
use crate::incident::{Incident, Status};
use crate::matcher;
use crate::replay::Harness;
use crate::rules::{Level, Priority, RuleSet, CATEGORIES};
use crate::suppress::{Reason, Silence, SuppressedAlert};

/// Default time 0: 2026-01-05T00:00:00Z, a Monday.
pub const DEFAULT_START: &str = "2026-01-05T00:00:00Z";
const DEFAULT_START_UNIX: i64 = 1_767_571_200;

/// Most evaluation steps or resends one test may take.
const MAX_STEPS: u64 = 1_000_000;

fn default_start() -> DateTime<Utc> {
    // A constant in range; `unwrap_or_default` is never taken (unit-tested).
    DateTime::from_timestamp(DEFAULT_START_UNIX, 0).unwrap_or_default()
}

/// A test file that cannot be used: every problem, one per line, each with
/// `file:line:column` where known.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct BrokenFile(pub Vec<String>);

/// Where the rules under test come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RulesRef {
    Files(Vec<PathBuf>),
    Dir(PathBuf),
}

/// A validated test file.
#[derive(Debug, Clone)]
pub struct TestFile {
    pub path: PathBuf,
    pub rules: RulesRef,
    pub interval: Duration,
    pub start: DateTime<Utc>,
    pub close_after: Duration,
    pub tests: Vec<TestCase>,
}

#[derive(Debug, Clone)]
pub struct TestCase {
    pub name: String,
    /// Overrides the file's `start`.
    pub start: Option<DateTime<Utc>>,
    pub inputs: Vec<Input>,
    pub silences: Vec<SilenceSpec>,
    pub expects: Vec<Expect>,
}

/// An alert sent at `at` (and every `every` up to `until`).
#[derive(Debug, Clone)]
pub struct Input {
    pub at: Duration,
    pub labels: Labels,
    pub annotations: Labels,
    pub status: AlertStatus,
    pub every: Option<Duration>,
    pub until: Duration,
}

#[derive(Debug, Clone)]
pub struct SilenceSpec {
    pub matchers: Vec<String>,
    pub from: Duration,
    pub until: Duration,
    pub comment: String,
}

#[derive(Debug, Clone)]
pub struct Expect {
    pub at: Duration,
    pub incidents: Vec<ExpIncident>,
    pub suppressed: Option<Vec<ExpSuppressed>>,
}

/// An expected incident; `None` fields are not compared.
#[derive(Debug, Clone, Default)]
pub struct ExpIncident {
    pub id: Option<String>,
    pub rule: Option<String>,
    pub group_key: Option<String>,
    pub category: Option<String>,
    pub priority: Option<Priority>,
    pub status: Option<Status>,
    pub impact: Option<Level>,
    pub urgency: Option<Level>,
    pub alert_count: Option<u32>,
    pub firing_count: Option<u32>,
    pub title: Option<String>,
    pub labels: Option<Labels>,
}

/// An expected suppressed alert.
#[derive(Debug, Clone, Default)]
pub struct ExpSuppressed {
    pub labels: Labels,
    pub reason: Option<Reason>,
    pub by: Option<String>,
}

// ---------------------------------------------------------------------------
// Raw, position-carrying YAML forms.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule_files: Vec<Spanned<String>>,
    #[serde(default)]
    rule_dir: Option<Spanned<String>>,
    #[serde(default)]
    evaluation_interval: Option<Spanned<String>>,
    #[serde(default)]
    start: Option<Spanned<String>>,
    #[serde(default)]
    close_after: Option<Spanned<String>>,
    tests: Vec<RawTest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    name: Spanned<String>,
    #[serde(default)]
    start: Option<Spanned<String>>,
    #[serde(default)]
    input: Vec<RawInput>,
    #[serde(default)]
    silences: Vec<RawSilence>,
    #[serde(default)]
    expect: Vec<RawExpect>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    at: Spanned<String>,
    labels: Labels,
    #[serde(default)]
    annotations: Labels,
    #[serde(default)]
    status: Option<Spanned<String>>,
    #[serde(default)]
    every: Option<Spanned<String>>,
    #[serde(default)]
    until: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSilence {
    matchers: Vec<Spanned<String>>,
    #[serde(default)]
    from: Option<Spanned<String>>,
    until: Spanned<String>,
    #[serde(default)]
    comment: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    at: Spanned<String>,
    #[serde(default)]
    incidents: Vec<RawExpIncident>,
    #[serde(default)]
    suppressed: Option<Vec<RawExpSuppressed>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpIncident {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    group_key: Option<String>,
    #[serde(default)]
    category: Option<Spanned<String>>,
    #[serde(default)]
    priority: Option<Spanned<String>>,
    #[serde(default)]
    status: Option<Spanned<String>>,
    #[serde(default)]
    impact: Option<Spanned<String>>,
    #[serde(default)]
    urgency: Option<Spanned<String>>,
    #[serde(default)]
    alert_count: Option<u32>,
    #[serde(default)]
    firing_count: Option<u32>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    labels: Option<Labels>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpSuppressed {
    labels: Labels,
    #[serde(default)]
    reason: Option<Spanned<String>>,
    #[serde(default)]
    by: Option<String>,
}

/// Collects problems with positions.
struct Checker<'a> {
    file: &'a str,
    errors: Vec<String>,
}

impl Checker<'_> {
    fn err(&mut self, span: &marked_yaml::Span, message: impl std::fmt::Display) {
        match span.start() {
            Some(m) => self.errors.push(format!(
                "{}:{}:{}: {message}",
                self.file,
                m.line(),
                m.column()
            )),
            None => self.errors.push(format!("{}: {message}", self.file)),
        }
    }

    fn duration(&mut self, raw: &Spanned<String>, what: &str) -> Option<Duration> {
        let s = raw.as_str().trim();
        if s == "0" {
            return Some(Duration::ZERO);
        }
        match humantime::parse_duration(s) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(
                    raw.span(),
                    format!("{what}: bad duration {s:?}: {e} (examples: 0, 30s, 5m, 1h30m)"),
                );
                None
            }
        }
    }

    fn time(&mut self, raw: &Spanned<String>, what: &str) -> Option<DateTime<Utc>> {
        match DateTime::parse_from_rfc3339(raw.as_str().trim()) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(e) => {
                self.err(
                    raw.span(),
                    format!(
                        "{what}: bad time {:?}: {e} (RFC 3339, e.g. {DEFAULT_START})",
                        raw.as_str()
                    ),
                );
                None
            }
        }
    }

    fn positive(&mut self, raw: &Spanned<String>, what: &str) -> Option<Duration> {
        let d = self.duration(raw, what)?;
        if d.is_zero() {
            self.err(raw.span(), format!("{what}: must be greater than zero"));
            return None;
        }
        Some(d)
    }

    fn parsed<T>(
        &mut self,
        raw: &Option<Spanned<String>>,
        what: &str,
        expected: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let raw = raw.as_ref()?;
        let v = parse(raw.as_str());
        if v.is_none() {
            self.err(
                raw.span(),
                format!(
                    "{what}: unknown value {:?}; expected {expected}",
                    raw.as_str()
                ),
            );
        }
        v
    }
}

fn parse_level(s: &str) -> Option<Level> {
    Level::ALL.into_iter().find(|l| l.as_str() == s)
}

fn parse_reason(s: &str) -> Option<Reason> {
    [Reason::Silence, Reason::Inhibit, Reason::Maintenance]
        .into_iter()
        .find(|r| r.as_str() == s)
}

fn yaml_error(file: &str, e: &marked_yaml::LoadError) -> String {
    use marked_yaml::LoadError::*;
    let (marker, message) = match e {
        TopLevelMustBeMapping(m) => (Some(*m), "a test file must be a mapping".to_string()),
        TopLevelMustBeSequence(m) => (Some(*m), "expected a list".to_string()),
        UnexpectedAnchor(m) => (
            Some(*m),
            "YAML anchors and aliases are not supported".to_string(),
        ),
        MappingKeyMustBeScalar(m) => (Some(*m), "mapping keys must be plain strings".to_string()),
        UnexpectedTag(m) => (Some(*m), "YAML tags are not supported".to_string()),
        ScanError(m, s) => (Some(*m), format!("YAML syntax error: {}", s.info())),
        DuplicateKey(inner) => (
            inner.key.span().start().copied(),
            format!("duplicate key {:?}", inner.prev_key.as_str()),
        ),
    };
    match marker {
        Some(m) => format!("{file}:{}:{}: {message}", m.line(), m.column()),
        None => format!("{file}: {message}"),
    }
}

/// Reads and validates a test file.
pub fn load(path: &Path) -> Result<TestFile, BrokenFile> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BrokenFile(vec![format!("{}: cannot read: {e}", path.display())]))?;
    parse(path, &text)
}

/// Validates test file text; `path` names it in errors and anchors
/// relative rule paths.
pub fn parse(path: &Path, text: &str) -> Result<TestFile, BrokenFile> {
    let name = path.display().to_string();
    let options = marked_yaml::LoaderOptions::default().error_on_duplicate_keys(true);
    let node = marked_yaml::parse_yaml_with_options(0, text, options)
        .map_err(|e| BrokenFile(vec![yaml_error(&name, &e)]))?;
    let raw: RawFile = marked_yaml::from_node(&node).map_err(|e| {
        let at = e
            .start_mark()
            .map(|m| format!("{name}:{}:{}", m.line(), m.column()))
            .unwrap_or_else(|| name.clone());
        let msg = match e.path().map(str::to_string) {
            Some(p) => format!("{at}: {p}: {}", e.into_inner()),
            None => format!("{at}: {}", e.into_inner()),
        };
        BrokenFile(vec![msg])
    })?;
    let mut c = Checker {
        file: &name,
        errors: Vec::new(),
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let rules = match (&raw.rule_files[..], &raw.rule_dir) {
        ([], None) => {
            c.errors.push(format!(
                "{name}: give the rules under test: `rule_files: [...]` or `rule_dir: DIR` (relative to this file)"
            ));
            RulesRef::Files(Vec::new())
        }
        ([first, ..], Some(_)) => {
            c.err(
                first.span(),
                "give either `rule_files` or `rule_dir`, not both",
            );
            RulesRef::Files(Vec::new())
        }
        (files, None) => {
            let mut out = Vec::new();
            for f in files {
                let p = base.join(f.as_str());
                if !p.is_file() {
                    c.err(
                        f.span(),
                        format!("rule file {} does not exist", p.display()),
                    );
                }
                out.push(p);
            }
            RulesRef::Files(out)
        }
        ([], Some(d)) => {
            let p = base.join(d.as_str());
            if !p.is_dir() {
                c.err(
                    d.span(),
                    format!("rule directory {} does not exist", p.display()),
                );
            }
            RulesRef::Dir(p)
        }
    };
    let interval = raw
        .evaluation_interval
        .as_ref()
        .and_then(|r| c.positive(r, "evaluation_interval"))
        .unwrap_or(Duration::from_secs(60));
    let close_after = raw
        .close_after
        .as_ref()
        .and_then(|r| c.positive(r, "close_after"))
        .unwrap_or(crate::config::IncidentSettings::default().close_after);
    let start = raw
        .start
        .as_ref()
        .and_then(|s| c.time(s, "start"))
        .unwrap_or_else(default_start);
    if raw.tests.is_empty() {
        c.errors.push(format!("{name}: `tests` is empty"));
    }
    let mut tests = Vec::new();
    let mut names: BTreeSet<String> = BTreeSet::new();
    for t in &raw.tests {
        if t.name.trim().is_empty() {
            c.err(t.name.span(), "test name must not be empty");
        } else if !names.insert(t.name.to_string()) {
            c.err(
                t.name.span(),
                format!("duplicate test name {:?}", t.name.as_str()),
            );
        }
        tests.push(test_case(&mut c, t, interval));
    }
    if !c.errors.is_empty() {
        return Err(BrokenFile(c.errors));
    }
    Ok(TestFile {
        path: path.to_path_buf(),
        rules,
        interval,
        start,
        close_after,
        tests,
    })
}

fn test_case(c: &mut Checker<'_>, t: &RawTest, interval: Duration) -> TestCase {
    let mut inputs = Vec::new();
    for i in &t.input {
        let at = c.duration(&i.at, "at").unwrap_or_default();
        let status = c
            .parsed(&i.status, "status", "firing or resolved", |s| match s {
                "firing" => Some(AlertStatus::Firing),
                "resolved" => Some(AlertStatus::Resolved),
                _ => None,
            })
            .unwrap_or(AlertStatus::Firing);
        let labels: Labels = i.labels.iter().filter(|(_, v)| !v.is_empty()).collect();
        if labels.is_empty() {
            c.err(
                i.at.span(),
                "input: `labels` needs at least one label with a non-empty value",
            );
        }
        let every = i.every.as_ref().and_then(|e| c.positive(e, "every"));
        let until = match (&i.every, &i.until) {
            (None, Some(u)) => {
                c.err(u.span(), "until: only with `every` (resend until)");
                at
            }
            (Some(_), None) => {
                if let Some(e) = &i.every {
                    c.err(e.span(), "every: needs `until` (the last resend time)");
                }
                at
            }
            (_, Some(u)) => match c.duration(u, "until") {
                Some(d) if d < at => {
                    c.err(u.span(), "until: must not be before `at`");
                    at
                }
                Some(d) => d,
                None => at,
            },
            (None, None) => at,
        };
        if let (Some(e), Some(raw)) = (every, &i.every) {
            if (until - at).as_nanos() / e.as_nanos() > u128::from(MAX_STEPS) {
                c.err(raw.span(), format!("every: more than {MAX_STEPS} resends"));
            }
        }
        inputs.push(Input {
            at,
            labels,
            annotations: i.annotations.clone(),
            status,
            every,
            until,
        });
    }
    let mut silences = Vec::new();
    for s in &t.silences {
        let from = s
            .from
            .as_ref()
            .and_then(|f| c.duration(f, "from"))
            .unwrap_or_default();
        let until = c.duration(&s.until, "until").unwrap_or_default();
        if until <= from {
            c.err(s.until.span(), "until: must be after `from`");
        }
        let mut ok = true;
        for m in &s.matchers {
            if let Err(e) = matcher::parse(m.as_str()) {
                ok = false;
                c.err(m.span(), format!("bad matcher {:?}: {e}", m.as_str()));
            }
        }
        let matchers: Vec<String> = s.matchers.iter().map(|m| m.to_string()).collect();
        if ok {
            let mut probe = silence(&matchers, Utc::now(), Utc::now(), "");
            if let Err(e) = probe.compile() {
                match s.matchers.first() {
                    Some(m) => c.err(m.span(), e),
                    None => c.err(s.until.span(), e),
                }
            }
        }
        silences.push(SilenceSpec {
            matchers,
            from,
            until,
            comment: s.comment.clone().unwrap_or_default(),
        });
    }
    let mut expects = Vec::new();
    for e in &t.expect {
        let at = c.duration(&e.at, "at").unwrap_or_default();
        let incidents = e
            .incidents
            .iter()
            .map(|i| ExpIncident {
                id: i.id.clone(),
                rule: i.rule.clone(),
                group_key: i.group_key.clone(),
                category: c.parsed(&i.category, "category", &CATEGORIES.join(", "), |s| {
                    CATEGORIES.contains(&s).then(|| s.to_string())
                }),
                priority: c.parsed(&i.priority, "priority", "P1 .. P5", Priority::parse),
                status: c.parsed(
                    &i.status,
                    "status",
                    "open, acknowledged, resolved or closed",
                    Status::parse,
                ),
                impact: c.parsed(&i.impact, "impact", "high, medium or low", parse_level),
                urgency: c.parsed(&i.urgency, "urgency", "high, medium or low", parse_level),
                alert_count: i.alert_count,
                firing_count: i.firing_count,
                title: i.title.clone(),
                labels: i.labels.clone(),
            })
            .collect();
        let suppressed = e.suppressed.as_ref().map(|list| {
            list.iter()
                .map(|s| ExpSuppressed {
                    labels: s.labels.clone(),
                    reason: c.parsed(
                        &s.reason,
                        "reason",
                        "silence, inhibit or maintenance",
                        parse_reason,
                    ),
                    by: s.by.clone(),
                })
                .collect()
        });
        expects.push(Expect {
            at,
            incidents,
            suppressed,
        });
    }
    let end = inputs
        .iter()
        .map(|i| i.until)
        .chain(expects.iter().map(|e| e.at))
        .max()
        .unwrap_or_default();
    if end.as_nanos() / interval.as_nanos() > u128::from(MAX_STEPS) {
        c.err(
            t.name.span(),
            format!("test spans more than {MAX_STEPS} evaluation steps; raise evaluation_interval"),
        );
    }
    if expects.is_empty() {
        c.err(t.name.span(), "test has no `expect`");
    }
    TestCase {
        name: t.name.to_string(),
        start: t.start.as_ref().and_then(|s| c.time(s, "start")),
        inputs,
        silences,
        expects,
    }
}

fn silence(
    matchers: &[String],
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    comment: &str,
) -> Silence {
    Silence {
        id: String::new(),
        matchers: matchers.to_vec(),
        starts_at: from,
        ends_at: until,
        comment: comment.to_string(),
        created_by: "rules test".into(),
        created_at: from,
        compiled: Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// Running.

/// The result of one test.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub name: String,
    /// Readable failure report (empty when the test passed).
    pub failures: Vec<String>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Compiles the rules a test file names.
pub fn load_rules(file: &TestFile) -> Result<RuleSet, crate::rules::RulesError> {
    match &file.rules {
        RulesRef::Dir(d) => RuleSet::load_dir(d),
        RulesRef::Files(files) => {
            let mut sources = Vec::new();
            for f in files {
                match std::fs::read_to_string(f) {
                    Ok(t) => sources.push((f.display().to_string(), t)),
                    Err(e) => {
                        return Err(crate::rules::RulesError(vec![crate::rules::RuleError {
                            pos: None,
                            message: format!("{}: cannot read: {e}", f.display()),
                        }]))
                    }
                }
            }
            let origin = files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            RuleSet::from_sources(&sources, &origin)
        }
    }
}

fn abs(start: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    // Durations were bounded at load (MAX_STEPS × interval); saturate anyway.
    start + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn fmt_at(d: Duration) -> String {
    if d.is_zero() {
        "0s".into()
    } else {
        humantime::format_duration(d).to_string()
    }
}

/// Runs one test on a fresh engine.
pub fn run_case(file: &TestFile, tc: &TestCase, rules: Arc<RuleSet>) -> CaseResult {
    let mut h = Harness::new(
        rules,
        Settings {
            close_after: file.close_after,
            id_slot: None,
        },
    );
    let mut failures = Vec::new();
    let t0 = tc.start.unwrap_or(file.start);
    for s in &tc.silences {
        let spec = silence(&s.matchers, abs(t0, s.from), abs(t0, s.until), &s.comment);
        if let Err(e) = h.add_silence(spec, t0) {
            failures.push(format!(
                "  silence {:?} rejected by the engine: {e}",
                s.matchers
            ));
        }
    }
    // Every send: (time, input index); stable order keeps file order per time.
    let mut sends: Vec<(Duration, usize)> = Vec::new();
    for (n, i) in tc.inputs.iter().enumerate() {
        let mut t = i.at;
        loop {
            sends.push((t, n));
            match i.every {
                Some(e) if t + e <= i.until => t += e,
                _ => break,
            }
        }
    }
    sends.sort_by_key(|(t, _)| *t);
    let end = sends
        .iter()
        .map(|(t, _)| *t)
        .chain(tc.expects.iter().map(|e| e.at))
        .max()
        .unwrap_or_default();
    let mut times: BTreeSet<Duration> = sends.iter().map(|(t, _)| *t).collect();
    times.extend(tc.expects.iter().map(|e| e.at));
    let mut g = Duration::ZERO;
    while g <= end {
        times.insert(g);
        g += file.interval;
    }
    let mut next = 0usize;
    for t in times {
        let now = abs(t0, t);
        let mut batch = Vec::new();
        while next < sends.len() && sends[next].0 == t {
            let i = &tc.inputs[sends[next].1];
            next += 1;
            let (starts, ends) = match i.status {
                AlertStatus::Firing => (Some(abs(t0, i.at)), None),
                AlertStatus::Resolved => (None, Some(now)),
            };
            // Labels were checked non-empty at load, so `new` returns Some.
            if let Some(a) = Alert::new(
                i.labels.clone(),
                i.annotations.clone(),
                Some(i.status),
                starts,
                ends,
                String::new(),
                Source::Replay,
                None,
                now,
            ) {
                batch.push(a);
            }
        }
        if !batch.is_empty() {
            h.ingest(batch, now);
        }
        h.tick(now);
        for e in tc.expects.iter().filter(|e| e.at == t) {
            let lines = check(e, &h);
            if !lines.is_empty() {
                failures.push(format!("  at {} ({}):", fmt_at(t), now.to_rfc3339()));
                failures.extend(lines);
            }
        }
    }
    CaseResult {
        name: tc.name.clone(),
        failures,
    }
}

/// One-line summary of an incident.
pub fn incident_line(i: &Incident) -> String {
    format!(
        "{} {} {} {} {} {} alerts={}",
        i.id, i.rule, i.group_key, i.category, i.priority, i.status, i.alert_count
    )
}

fn fmt_labels(l: &Labels) -> String {
    let inner: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

fn suppressed_line(s: &SuppressedAlert) -> String {
    format!(
        "{} reason={} by={}",
        fmt_labels(&s.labels),
        s.suppression.reason,
        s.suppression.by
    )
}

impl ExpIncident {
    /// The fields that differ from `i` ("field: expected X, got Y").
    pub fn diff(&self, i: &Incident) -> Vec<String> {
        let mut out = Vec::new();
        let mut cmp = |field: &str, want: Option<String>, got: String| {
            if let Some(w) = want {
                if w != got {
                    out.push(format!("{field}: expected {w}, got {got}"));
                }
            }
        };
        cmp("id", self.id.clone(), i.id.to_string());
        cmp("rule", self.rule.clone(), i.rule.clone());
        cmp("group_key", self.group_key.clone(), i.group_key.clone());
        cmp("category", self.category.clone(), i.category.clone());
        cmp(
            "priority",
            self.priority.map(|p| p.to_string()),
            i.priority.to_string(),
        );
        cmp(
            "status",
            self.status.map(|s| s.to_string()),
            i.status.to_string(),
        );
        cmp(
            "impact",
            self.impact.map(|l| l.as_str().into()),
            i.impact.as_str().into(),
        );
        cmp(
            "urgency",
            self.urgency.map(|l| l.as_str().into()),
            i.urgency.as_str().into(),
        );
        cmp(
            "alert_count",
            self.alert_count.map(|n| n.to_string()),
            i.alert_count.to_string(),
        );
        cmp(
            "firing_count",
            self.firing_count.map(|n| n.to_string()),
            i.firing_count.to_string(),
        );
        cmp(
            "title",
            self.title.as_ref().map(|t| format!("{t:?}")),
            format!("{:?}", i.title),
        );
        if let Some(want) = &self.labels {
            if !subset(want, &i.labels) {
                out.push(format!(
                    "labels: expected to include {}, got {}",
                    fmt_labels(want),
                    fmt_labels(&i.labels)
                ));
            }
        }
        out
    }

    /// The fields given, as one line.
    pub fn line(&self) -> String {
        let mut parts = Vec::new();
        let mut add = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                parts.push(format!("{k}={v}"));
            }
        };
        add("id", self.id.clone());
        add("rule", self.rule.clone());
        add("group_key", self.group_key.clone());
        add("category", self.category.clone());
        add("priority", self.priority.map(|p| p.to_string()));
        add("status", self.status.map(|s| s.to_string()));
        add("impact", self.impact.map(|l| l.as_str().into()));
        add("urgency", self.urgency.map(|l| l.as_str().into()));
        add("alerts", self.alert_count.map(|n| n.to_string()));
        add("firing", self.firing_count.map(|n| n.to_string()));
        add("title", self.title.as_ref().map(|t| format!("{t:?}")));
        add("labels", self.labels.as_ref().map(fmt_labels));
        if parts.is_empty() {
            "(any incident)".into()
        } else {
            parts.join(" ")
        }
    }
}

impl ExpSuppressed {
    fn diff(&self, s: &SuppressedAlert) -> Vec<String> {
        let mut out = Vec::new();
        if !subset(&self.labels, &s.labels) {
            out.push(format!(
                "labels: expected to include {}, got {}",
                fmt_labels(&self.labels),
                fmt_labels(&s.labels)
            ));
        }
        if let Some(r) = self.reason {
            if r != s.suppression.reason {
                out.push(format!(
                    "reason: expected {r}, got {}",
                    s.suppression.reason
                ));
            }
        }
        if let Some(b) = &self.by {
            if *b != s.suppression.by {
                out.push(format!("by: expected {b}, got {}", s.suppression.by));
            }
        }
        out
    }

    fn line(&self) -> String {
        let mut s = fmt_labels(&self.labels);
        if let Some(r) = self.reason {
            s.push_str(&format!(" reason={r}"));
        }
        if let Some(b) = &self.by {
            s.push_str(&format!(" by={b}"));
        }
        s
    }
}

fn subset(want: &Labels, got: &Labels) -> bool {
    want.iter().all(|(k, v)| got.get(k) == Some(v))
}

/// Maximum bipartite matching of expectations to actuals: for each
/// expectation, the actual it got (if any).
fn assign(fits: &[Vec<usize>], actuals: usize) -> Vec<Option<usize>> {
    fn augment(
        e: usize,
        fits: &[Vec<usize>],
        seen: &mut [bool],
        owner: &mut [Option<usize>],
    ) -> bool {
        for &a in &fits[e] {
            if seen[a] {
                continue;
            }
            seen[a] = true;
            if owner[a].is_none_or(|o| augment(o, fits, seen, owner)) {
                owner[a] = Some(e);
                return true;
            }
        }
        false
    }
    let mut owner: Vec<Option<usize>> = vec![None; actuals];
    for e in 0..fits.len() {
        let mut seen = vec![false; actuals];
        augment(e, fits, &mut seen, &mut owner);
    }
    let mut got = vec![None; fits.len()];
    for (a, o) in owner.iter().enumerate() {
        if let Some(e) = o {
            got[*e] = Some(a);
        }
    }
    got
}

/// Compares one set: returns failure lines (empty when it matches).
fn compare_set<E, A>(
    what: &str,
    expected: &[E],
    actual: &[&A],
    diff: impl Fn(&E, &A) -> Vec<String>,
    exp_line: impl Fn(&E) -> String,
    act_line: impl Fn(&A) -> String,
) -> Vec<String> {
    let fits: Vec<Vec<usize>> = expected
        .iter()
        .map(|e| {
            (0..actual.len())
                .filter(|&a| diff(e, actual[a]).is_empty())
                .collect()
        })
        .collect();
    let got = assign(&fits, actual.len());
    let used: BTreeSet<usize> = got.iter().flatten().copied().collect();
    let missing: Vec<usize> = (0..expected.len()).filter(|&e| got[e].is_none()).collect();
    let unexpected: Vec<usize> = (0..actual.len()).filter(|a| !used.contains(a)).collect();
    if missing.is_empty() && unexpected.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    out.push(format!("    expected {what}:"));
    if expected.is_empty() {
        out.push("      (none)".into());
    }
    for e in expected {
        out.push(format!("      {}", exp_line(e)));
    }
    out.push(format!("    got {what}:"));
    if actual.is_empty() {
        out.push("      (none)".into());
    }
    for a in actual {
        out.push(format!("      {}", act_line(a)));
    }
    for e in missing {
        out.push(format!("    missing: {}", exp_line(&expected[e])));
        // The closest actual: fewest differing fields, unmatched ones first.
        let closest = (0..actual.len())
            .map(|a| (diff(&expected[e], actual[a]), used.contains(&a), a))
            .min_by_key(|(d, u, a)| (d.len(), *u, *a));
        match closest {
            Some((d, _, a)) if !d.is_empty() => out.push(format!(
                "      closest: {} ({})",
                act_line(actual[a]),
                d.join("; ")
            )),
            Some((_, _, a)) => out.push(format!(
                "      closest: {} (matches, but another expectation took it)",
                act_line(actual[a])
            )),
            None => {}
        }
    }
    for a in unexpected {
        out.push(format!("    unexpected: {}", act_line(actual[a])));
    }
    out
}

fn check(e: &Expect, h: &Harness) -> Vec<String> {
    let incidents: Vec<&Incident> = h.incidents().collect();
    let mut out = compare_set(
        "incidents",
        &e.incidents,
        &incidents,
        |x, i| x.diff(i),
        ExpIncident::line,
        incident_line,
    );
    if let Some(sup) = &e.suppressed {
        let mut actual: Vec<&SuppressedAlert> = h.suppressed().collect();
        actual.sort_by(|a, b| a.labels.cmp(&b.labels));
        out.extend(compare_set(
            "suppressed alerts",
            sup,
            &actual,
            |x, s| x.diff(s),
            ExpSuppressed::line,
            suppressed_line,
        ));
    }
    out
}

/// Runs every test of a loaded file; `Err` holds rule compile errors.
pub fn run_file(file: &TestFile) -> Result<Vec<CaseResult>, crate::rules::RulesError> {
    let rules = Arc::new(load_rules(file)?);
    Ok(file
        .tests
        .iter()
        .map(|tc| run_case(file, tc, rules.clone()))
        .collect())
}

/// `incidentd rules test FILE...`: runs every file, reports to `out`
/// (results) and `err` (broken files, rule errors); returns the exit code.
pub fn run_paths(
    paths: &[PathBuf],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<u8> {
    let (mut tests, mut failed, mut broken, mut bad_rules) = (0usize, 0usize, 0usize, 0usize);
    for path in paths {
        let name = path.display();
        let file = match load(path) {
            Ok(f) => f,
            Err(e) => {
                broken += 1;
                writeln!(err, "{e}")?;
                writeln!(
                    out,
                    "BROKEN: {name}: not a valid test file (see errors above)"
                )?;
                continue;
            }
        };
        let results = match run_file(&file) {
            Ok(r) => r,
            Err(e) => {
                bad_rules += 1;
                tests += file.tests.len();
                failed += file.tests.len();
                writeln!(err, "{e}")?;
                writeln!(
                    out,
                    "FAILED: {name}: the rules under test do not compile ({} error(s) above)",
                    e.0.len()
                )?;
                continue;
            }
        };
        let mut file_failed = 0;
        for r in &results {
            tests += 1;
            if !r.passed() {
                failed += 1;
                file_failed += 1;
                writeln!(out, "FAILED: {name}: {}", r.name)?;
                for l in &r.failures {
                    writeln!(out, "{l}")?;
                }
            }
        }
        writeln!(
            out,
            "{name}: {} test(s), {} passed, {file_failed} failed",
            results.len(),
            results.len() - file_failed
        )?;
    }
    if broken == 0 && failed == 0 {
        writeln!(out, "SUCCESS: {tests} test(s) passed")?;
        return Ok(0);
    }
    let mut parts = Vec::new();
    if failed > 0 {
        parts.push(format!("{failed} of {tests} test(s) failed"));
    }
    if bad_rules > 0 {
        parts.push(format!(
            "{bad_rules} file(s) with rules that do not compile"
        ));
    }
    if broken > 0 {
        parts.push(format!("{broken} broken test file(s)"));
    }
    writeln!(out, "FAILED: {}", parts.join(", "))?;
    Ok(if broken > 0 { 2 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;

    fn rules_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules")
    }

    fn parse_str(text: &str) -> Result<TestFile, BrokenFile> {
        parse(&rules_dir().join("tests").join("inline.yaml"), text)
    }

    fn run_str(text: &str) -> Vec<CaseResult> {
        let f = parse_str(text).expect("valid test file");
        run_file(&f).expect("rules compile")
    }

    #[test]
    fn default_start_is_a_monday() {
        let s = default_start();
        assert_eq!(s.to_rfc3339(), "2026-01-05T00:00:00+00:00");
        assert_eq!(s.weekday(), chrono::Weekday::Mon);
        assert_eq!(
            DateTime::parse_from_rfc3339(DEFAULT_START).map(|t| t.with_timezone(&Utc)),
            Ok(s)
        );
    }

    const NODE: &str = r#"
rule_files: [../default.yaml]
tests:
  - name: node down
    input:
      - at: 0m
        labels: {alertname: InstanceDown, instance: "web-1:9100", severity: critical}
        every: 1m
        until: 4m
      - at: 5m
        labels: {alertname: InstanceDown, instance: "web-1:9100", severity: critical}
        status: resolved
    expect:
      - at: 2m
        incidents:
          - rule: node-down
            group_key: 'node-down{instance="web-1:9100"}'
            category: hardware
            priority: PRIO
            status: open
            alert_count: 1
      - at: 5m
        incidents:
          - {rule: node-down, status: resolved, firing_count: 0}
"#;

    #[test]
    fn passing_and_failing() {
        let r = run_str(&NODE.replace("PRIO", "P3"));
        assert!(r[0].passed(), "{:#?}", r[0].failures);
        let r = run_str(&NODE.replace("PRIO", "P1"));
        let text = r[0].failures.join("\n");
        assert!(
            text.contains("at 2m (2026-01-05T00:02:00+00:00):"),
            "{text}"
        );
        assert!(text.contains("missing: rule=node-down"), "{text}");
        assert!(text.contains("priority: expected P1, got P3"), "{text}");
        assert!(
            text.contains(
                "unexpected: INC-20260105-0001 node-down node-down{instance=\"web-1:9100\"} hardware P3 open alerts=1"
            ),
            "{text}"
        );
        assert!(!text.contains("at 5m"), "only the failing time: {text}");
    }

    #[test]
    fn unexpected_incident_when_none_expected() {
        let r = run_str(
            r#"
rule_files: [../default.yaml]
tests:
  - name: t
    input:
      - {at: 0, labels: {alertname: Foo}}
    expect:
      - at: 1m
"#,
        );
        let text = r[0].failures.join("\n");
        assert!(
            text.contains("unexpected: INC-20260105-0001 per-alertname"),
            "{text}"
        );
    }

    #[test]
    fn silences_suppress_and_expire() {
        let r = run_str(
            r#"
rule_files: [../default.yaml]
tests:
  - name: silenced then not
    silences:
      - matchers: ['instance="db-1:9100"']
        until: 10m
    input:
      - at: 1m
        labels: {alertname: InstanceDown, instance: "db-1:9100", severity: critical}
        every: 1m
        until: 20m
    expect:
      - at: 5m
        incidents: []
        suppressed:
          - labels: {instance: "db-1:9100"}
            reason: silence
      - at: 11m
        incidents:
          - {rule: node-down, status: open}
        suppressed: []
"#,
        );
        assert!(r[0].passed(), "{:#?}", r[0].failures);
    }

    #[test]
    fn set_matching_needs_one_incident_each() {
        let r = run_str(
            r#"
rule_files: [../default.yaml]
tests:
  - name: two expectations, one incident
    input:
      - {at: 0, labels: {alertname: InstanceDown, instance: a}}
    expect:
      - at: 0
        incidents:
          - {rule: node-down}
          - {category: hardware}
"#,
        );
        let text = r[0].failures.join("\n");
        assert!(
            text.contains("matches, but another expectation took it"),
            "{text}"
        );
    }

    #[test]
    fn broken_files_name_line_and_column() {
        let e = parse_str("tests:\n  - name: x\n    input:\n      - at: 5x\n        labels: {a: b}\n    expect: [{at: 0}]\nrule_files: [../default.yaml]\n").unwrap_err();
        assert!(e.0[0].ends_with("inline.yaml:4:13: at: bad duration \"5x\": unknown time unit \"x\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations) (examples: 0, 30s, 5m, 1h30m)"), "{e}");
        let e = parse_str("rule_files: [../default.yaml]\ntests:\n  - name: x\n    bogus: 1\n")
            .unwrap_err();
        assert!(
            e.0[0].contains("inline.yaml:4:5: tests[0].bogus: Unknown field `bogus`"),
            "{e}"
        );
        let e = parse_str("tests: [\n").unwrap_err();
        assert!(e.0[0].contains("inline.yaml:2:1: YAML syntax error"), "{e}");
        let e = parse_str("rule_files: [nope.yaml]\ntests:\n  - name: x\n    expect:\n      - at: 0\n        incidents: [{priority: P9, status: fixed}]\n").unwrap_err();
        let all = e.to_string();
        assert!(all.contains("inline.yaml:1:14: rule file"), "{all}");
        assert!(
            all.contains("inline.yaml:6:32: priority: unknown value \"P9\""),
            "{all}"
        );
        assert!(all.contains("status: unknown value \"fixed\""), "{all}");
        let e = parse_str("rule_dir: ..\ntests:\n  - name: x\n    silences:\n      - matchers: ['a=~\".*\"']\n        until: 1h\n    expect: [{at: 0}]\n").unwrap_err();
        assert!(e.to_string().contains("inline.yaml:5:20: matchers"), "{e}");
    }

    #[test]
    fn set_assignment() {
        // e0 fits a0 or a1, e1 only a0: both must be matched.
        assert_eq!(assign(&[vec![0, 1], vec![0]], 2), vec![Some(1), Some(0)]);
        assert_eq!(assign(&[vec![0], vec![0]], 1), vec![Some(0), None]);
    }
}
