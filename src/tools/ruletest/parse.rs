//! Reading a rule test file: YAML → validated test cases, every problem
//! with `file:line:column` (see the [file format](super)).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use marked_yaml::Spanned;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;

use crate::model::matcher;
use crate::model::{AlertStatus, Labels, Level, Priority, Reason, Silence, Status, CATEGORIES};

/// Default time 0: 2026-01-05T00:00:00Z, a Monday.
pub const DEFAULT_START: &str = "2026-01-05T00:00:00Z";
pub(super) const DEFAULT_START_UNIX: i64 = 1_767_571_200;

/// Most evaluation steps or resends one test may take.
pub(super) const MAX_STEPS: u64 = 1_000_000;

pub(super) fn default_start() -> DateTime<Utc> {
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
    /// Schedule (or team) → who must be on call (`None`: nobody).
    pub oncall: std::collections::BTreeMap<String, Option<String>>,
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
// Raw, position-carrying YAML forms. They also describe the test file
// format in `rules/test-schema.json` ([`schema`]).

/// A rule test file (`incidentd rules test`).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "incidentd rule test file")]
pub(super) struct RawFile {
    /// Rule files under test, relative to this file.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    rule_files: Vec<Spanned<String>>,
    /// Or: a rule directory, loaded like `serve --rules DIR`.
    #[serde(default)]
    #[schemars(with = "String")]
    rule_dir: Option<Spanned<String>>,
    /// Tick step (default 1m).
    #[serde(default)]
    #[schemars(schema_with = "duration")]
    evaluation_interval: Option<Spanned<String>>,
    /// Time 0, RFC 3339 (default 2026-01-05T00:00:00Z, a Monday).
    #[serde(default)]
    #[schemars(with = "String")]
    start: Option<Spanned<String>>,
    /// Resolved incidents close after this (default 24h).
    #[serde(default)]
    #[schemars(schema_with = "duration")]
    close_after: Option<Spanned<String>>,
    #[schemars(length(min = 1))]
    tests: Vec<RawTest>,
}

/// One test: alerts in, expected incidents out.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTest {
    #[schemars(with = "String", length(min = 1))]
    name: Spanned<String>,
    /// This test's time 0 (overrides the file's).
    #[serde(default)]
    #[schemars(with = "String")]
    start: Option<Spanned<String>>,
    /// Alerts, at times relative to `start`.
    #[serde(default)]
    input: Vec<RawInput>,
    /// Silences as created over the API.
    #[serde(default)]
    silences: Vec<RawSilence>,
    #[schemars(length(min = 1))]
    expect: Vec<RawExpect>,
}

/// An alert sent at `at` (and every `every` up to `until`).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInput {
    #[schemars(schema_with = "duration")]
    at: Spanned<String>,
    #[schemars(schema_with = "label_map")]
    labels: Labels,
    #[serde(default)]
    #[schemars(schema_with = "label_map")]
    annotations: Labels,
    /// firing (default) or resolved.
    #[serde(default)]
    #[schemars(schema_with = "alert_status")]
    status: Option<Spanned<String>>,
    /// Resend every so long …
    #[serde(default)]
    #[schemars(schema_with = "duration")]
    every: Option<Spanned<String>>,
    /// … up to and including this time (needs `every`).
    #[serde(default)]
    #[schemars(schema_with = "duration")]
    until: Option<Spanned<String>>,
}

/// A silence, active from `from` (default 0) until `until`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSilence {
    /// Alertmanager matchers.
    #[schemars(with = "Vec<String>", length(min = 1))]
    matchers: Vec<Spanned<String>>,
    #[serde(default)]
    #[schemars(schema_with = "duration")]
    from: Option<Spanned<String>>,
    #[schemars(schema_with = "duration")]
    until: Spanned<String>,
    #[serde(default)]
    comment: Option<String>,
}

/// What must exist at `at`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExpect {
    #[schemars(schema_with = "duration")]
    at: Spanned<String>,
    /// Every incident that exists then, closed ones included.
    #[serde(default)]
    incidents: Vec<RawExpIncident>,
    /// Every alert kept out of incidents then (left out: not checked).
    #[serde(default)]
    suppressed: Option<Vec<RawExpSuppressed>>,
    /// Schedule (or team) → who is on call then (`null`: nobody).
    #[serde(default)]
    oncall: std::collections::BTreeMap<String, Option<String>>,
}

/// An expected incident; only the fields given are compared.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExpIncident {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    group_key: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "category")]
    category: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(schema_with = "priority")]
    priority: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(schema_with = "status")]
    status: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(schema_with = "level")]
    impact: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(schema_with = "level")]
    urgency: Option<Spanned<String>>,
    #[serde(default)]
    alert_count: Option<u32>,
    #[serde(default)]
    firing_count: Option<u32>,
    /// Exact.
    #[serde(default)]
    title: Option<String>,
    /// The incident's common labels must include these.
    #[serde(default)]
    #[schemars(schema_with = "label_map")]
    labels: Option<Labels>,
}

/// An expected suppressed alert.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExpSuppressed {
    /// The alert's labels must include these.
    #[schemars(schema_with = "label_map")]
    labels: Labels,
    #[serde(default)]
    #[schemars(schema_with = "reason")]
    reason: Option<Spanned<String>>,
    /// The inhibit rule, maintenance window or silence id.
    #[serde(default)]
    by: Option<String>,
}

fn enum_of(values: &[&str]) -> Schema {
    json_schema!({"type": "string", "enum": values})
}

fn duration(_: &mut SchemaGenerator) -> Schema {
    let zero_or_duration = format!(r"^\s*0\s*$|{}", crate::rules::schema::DURATION_PATTERN);
    json_schema!({"type": "string", "pattern": zero_or_duration, "description": "0, 90s, 5m, 1h30m"})
}

fn label_map(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}})
}

fn alert_status(_: &mut SchemaGenerator) -> Schema {
    enum_of(&["firing", "resolved"])
}

fn category(_: &mut SchemaGenerator) -> Schema {
    enum_of(&CATEGORIES)
}

fn priority(_: &mut SchemaGenerator) -> Schema {
    enum_of(&["P1", "P2", "P3", "P4", "P5"])
}

fn status(_: &mut SchemaGenerator) -> Schema {
    enum_of(&["open", "acknowledged", "resolved", "closed"])
}

fn level(_: &mut SchemaGenerator) -> Schema {
    enum_of(&["high", "medium", "low"])
}

fn reason(_: &mut SchemaGenerator) -> Schema {
    enum_of(&["silence", "inhibit", "maintenance"])
}

/// The JSON Schema of a test file, shipped as `rules/test-schema.json`.
pub fn schema() -> serde_json::Value {
    schemars::generate::SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<RawFile>()
        .to_value()
}

/// Collects problems with positions.
pub(super) struct Checker<'a> {
    file: &'a str,
    errors: Vec<String>,
}

impl Checker<'_> {
    pub(super) fn err(&mut self, span: &marked_yaml::Span, message: impl std::fmt::Display) {
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

    pub(super) fn duration(&mut self, raw: &Spanned<String>, what: &str) -> Option<Duration> {
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

    pub(super) fn time(&mut self, raw: &Spanned<String>, what: &str) -> Option<DateTime<Utc>> {
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

    pub(super) fn positive(&mut self, raw: &Spanned<String>, what: &str) -> Option<Duration> {
        let d = self.duration(raw, what)?;
        if d.is_zero() {
            self.err(raw.span(), format!("{what}: must be greater than zero"));
            return None;
        }
        Some(d)
    }

    pub(super) fn parsed<T>(
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

pub(super) fn parse_level(s: &str) -> Option<Level> {
    Level::ALL.into_iter().find(|l| l.as_str() == s)
}

pub(super) fn parse_reason(s: &str) -> Option<Reason> {
    [Reason::Silence, Reason::Inhibit, Reason::Maintenance]
        .into_iter()
        .find(|r| r.as_str() == s)
}

pub(super) fn yaml_error(file: &str, e: &marked_yaml::LoadError) -> String {
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

pub(super) fn test_case(c: &mut Checker<'_>, t: &RawTest, interval: Duration) -> TestCase {
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
            // YAML `null` and `~` arrive as text: nobody.
            oncall: e
                .oncall
                .iter()
                .map(|(k, v)| {
                    let who = v.clone().filter(|p| !matches!(p.trim(), "null" | "~" | ""));
                    (k.clone(), who)
                })
                .collect(),
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

pub(super) fn silence(
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
        on_behalf_of: None,
        created_at: from,
        compiled: Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// Running.
