//! Rule files: YAML as SREs write it → one validated, compiled [`RuleSet`].
//!
//! Input: every `*.yaml`/`*.yml` file directly in a rule directory (sorted by
//! name), or the built-in default set. Output: a [`RuleSet`] whose matchers,
//! regexes and title templates are compiled once; the hot path only looks
//! things up. Validation gathers *every* problem (unknown field, bad regex,
//! bad duration, duplicate rule name, unknown category, matrix gaps, ...),
//! each with `file:line:column`, before failing.
//!
//! Sections (lists are evaluated in file order, first match wins):
//! `correlate`, `classify`, `prioritize`, `sla`. The format is documented in
//! `rules/README.md`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use marked_yaml::{Node, Spanned};
use serde::{Deserialize, Serialize};

use crate::actions::{
    ActionDef, ActionKind, EscalationLevel, EscalationPolicy, ExecDef, KafkaActionDef, KafkaKey,
    LevelWhen, Preset, Trigger, WebhookDef,
};
use crate::alert::Labels;
use crate::matcher::{self, Matcher};
use crate::suppress::{InhibitRule, MaintenanceWindow, Schedule, WeeklySlot};

/// The rules shipped in `rules/default.yaml`, used when no rule directory exists.
pub const BUILTIN: &str = include_str!("../rules/default.yaml");

/// The sections a rule file may have.
pub const SECTIONS: [&str; 10] = [
    "correlate",
    "classify",
    "prioritize",
    "sla",
    "inhibit",
    "maintenance",
    "flapping",
    "problems",
    "actions",
    "escalations",
];

/// Incident categories (seed 003's list plus `other`).
pub const CATEGORIES: [&str; 7] = [
    "hardware",
    "software",
    "network",
    "account",
    "performance",
    "security",
    "other",
];

/// ITIL levels for impact and urgency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    High,
    Medium,
    Low,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::High, Level::Medium, Level::Low];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::High => "high",
            Level::Medium => "medium",
            Level::Low => "low",
        }
    }

    fn parse(s: &str) -> Option<Level> {
        match s {
            "high" => Some(Level::High),
            "medium" => Some(Level::Medium),
            "low" => Some(Level::Low),
            _ => None,
        }
    }

    fn idx(self) -> usize {
        self as usize
    }
}

/// P1 (most urgent) .. P5. `Ord` puts P1 first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Priority {
    P1,
    P2,
    P3,
    P4,
    P5,
}

impl Priority {
    pub const ALL: [Priority; 5] = [
        Priority::P1,
        Priority::P2,
        Priority::P3,
        Priority::P4,
        Priority::P5,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::P1 => "P1",
            Priority::P2 => "P2",
            Priority::P3 => "P3",
            Priority::P4 => "P4",
            Priority::P5 => "P5",
        }
    }

    pub fn parse(s: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.as_str() == s)
    }

    pub fn idx(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where something was written: `file:line:column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pos {
    pub file: Arc<str>,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One validation problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub pos: Option<Pos>,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pos {
            Some(p) => write!(f, "{p}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Every problem found in a rule set, one per line when displayed.
#[derive(Debug, Clone, thiserror::Error)]
pub struct RulesError(pub Vec<RuleError>);

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A first-match-wins list, indexed so a lookup checks only the rules that
/// can match instead of scanning every regex: rules with `alertname="X"` sit
/// in a hash map, rules with `alertname=~"re"` in one [`RegexSet`] evaluated
/// once per lookup, and only rules without a positive `alertname` matcher
/// are checked for every alert. File order still decides among candidates.
///
/// [`RegexSet`]: regex::RegexSet
#[derive(Debug, Clone)]
pub struct FirstMatch<T> {
    rules: Vec<(Vec<Matcher>, T)>,
    by_alertname: HashMap<String, Vec<usize>>,
    by_regex: Vec<usize>,
    regex_set: Option<regex::RegexSet>,
    unindexed: Vec<usize>,
}

impl<T> Default for FirstMatch<T> {
    fn default() -> Self {
        FirstMatch {
            rules: Vec::new(),
            by_alertname: HashMap::new(),
            by_regex: Vec::new(),
            regex_set: None,
            unindexed: Vec::new(),
        }
    }
}

impl<T> FirstMatch<T> {
    fn push(&mut self, matchers: Vec<Matcher>, value: T) {
        let i = self.rules.len();
        let on_name = matchers.iter().find(|m| {
            m.name == "alertname" && (m.exact_value().is_some() || m.regex_source().is_some())
        });
        match on_name {
            Some(m) if m.exact_value().is_some() => self
                .by_alertname
                .entry(m.value.clone())
                .or_default()
                .push(i),
            Some(_) => self.by_regex.push(i),
            None => self.unindexed.push(i),
        }
        self.rules.push((matchers, value));
        self.regex_set = None;
    }

    /// Builds the regex set; called once after the last `push`.
    fn seal(&mut self) {
        let patterns: Vec<String> = self
            .by_regex
            .iter()
            .filter_map(|&i| {
                self.rules[i]
                    .0
                    .iter()
                    .find(|m| m.name == "alertname" && m.regex_source().is_some())
                    .and_then(Matcher::regex_source)
                    .map(|re| format!("^(?:{re})$"))
            })
            .collect();
        // Each pattern already compiled on its own, so the set compiles too;
        // if it ever did not, lookups fall back to checking those rules.
        self.regex_set = regex::RegexSet::new(patterns).ok();
    }

    /// The first rule (in file order) whose matchers all match.
    pub fn first(&self, labels: &Labels) -> Option<&T> {
        let name = labels.get("alertname").unwrap_or("");
        let exact: &[usize] = self
            .by_alertname
            .get(name)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let check = |i: usize| {
            let (matchers, value) = &self.rules[i];
            matcher::all_match(matchers, labels).then_some(value)
        };
        let regex_hits: Vec<usize> = match &self.regex_set {
            Some(set) => set.matches(name).iter().map(|p| self.by_regex[p]).collect(),
            None => self.by_regex.clone(),
        };
        if regex_hits.is_empty() {
            return merge2(exact, &self.unindexed).find_map(check);
        }
        let mut all: Vec<usize> =
            Vec::with_capacity(exact.len() + regex_hits.len() + self.unindexed.len());
        all.extend_from_slice(exact);
        all.extend_from_slice(&regex_hits);
        all.extend_from_slice(&self.unindexed);
        all.sort_unstable();
        all.into_iter().find_map(check)
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &(Vec<Matcher>, T)> {
        self.rules.iter()
    }
}

/// Merges two ascending index lists into one ascending sequence.
fn merge2<'a>(a: &'a [usize], b: &'a [usize]) -> impl Iterator<Item = usize> + 'a {
    let (mut a, mut b) = (a.iter().copied().peekable(), b.iter().copied().peekable());
    std::iter::from_fn(move || match (a.peek().copied(), b.peek().copied()) {
        (Some(x), Some(y)) if x < y => a.next(),
        (Some(_), Some(_)) => b.next(),
        (Some(_), None) => a.next(),
        (None, _) => b.next(),
    })
}

/// How a correlate rule builds its group key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// These labels (missing ones count as "").
    Labels(Vec<String>),
    /// Every label: one incident per distinct alert (`group_by: ["..."]`).
    All,
}

/// A compiled `correlate` rule.
#[derive(Debug, Clone)]
pub struct CorrelateRule {
    pub name: String,
    pub group_by: GroupBy,
    pub window: Duration,
    /// Name of the compiled title template, if the rule has one.
    pub title: Option<String>,
}

impl CorrelateRule {
    /// The implicit rule for alerts no `correlate` rule matches.
    pub fn fallback() -> CorrelateRule {
        CorrelateRule {
            name: "default".into(),
            group_by: GroupBy::Labels(vec!["alertname".into()]),
            window: Duration::from_secs(3600),
            title: None,
        }
    }

    /// The labels this rule groups on, with their values from `labels`.
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        match &self.group_by {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => names
                .iter()
                .filter_map(|n| labels.get(n).map(|v| (n.as_str(), v)))
                .collect(),
        }
    }

    /// `rule{a="x",b="y"}`: stable, readable, unique per rule and group.
    pub fn group_key(&self, labels: &Labels) -> String {
        let mut key = String::with_capacity(64);
        key.push_str(&self.name);
        key.push('{');
        for (i, (k, v)) in self.group_labels(labels).iter().enumerate() {
            if i > 0 {
                key.push(',');
            }
            key.push_str(k);
            key.push('=');
            key.push_str(&format!("{v:?}"));
        }
        key.push('}');
        key
    }
}

/// An incident-level impact rule: impact rises with the number of distinct
/// values of a label among the incident's alerts ("blast radius").
#[derive(Debug, Clone)]
pub struct BlastRadius {
    pub matchers: Vec<Matcher>,
    pub label: String,
    pub at_least: usize,
    pub impact: Level,
}

/// The compiled `prioritize` section.
#[derive(Debug, Clone)]
pub struct Prioritize {
    pub urgency: FirstMatch<Level>,
    pub impact: FirstMatch<Level>,
    pub blast_radius: Vec<BlastRadius>,
    pub default_impact: Level,
    pub default_urgency: Level,
    /// `matrix[impact][urgency]`.
    pub matrix: [[Priority; 3]; 3],
}

/// Seed 003's matrix.
pub const SEED_MATRIX: [[Priority; 3]; 3] = [
    [Priority::P1, Priority::P2, Priority::P3],
    [Priority::P2, Priority::P3, Priority::P4],
    [Priority::P3, Priority::P4, Priority::P5],
];

impl Default for Prioritize {
    fn default() -> Self {
        Prioritize {
            urgency: FirstMatch::default(),
            impact: FirstMatch::default(),
            blast_radius: Vec::new(),
            default_impact: Level::Medium,
            default_urgency: Level::Medium,
            matrix: SEED_MATRIX,
        }
    }
}

impl Prioritize {
    pub fn priority(&self, impact: Level, urgency: Level) -> Priority {
        self.matrix[impact.idx()][urgency.idx()]
    }

    /// Impact and urgency of a single alert.
    pub fn assess(&self, labels: &Labels) -> (Level, Level) {
        let impact = self
            .impact
            .first(labels)
            .copied()
            .unwrap_or(self.default_impact);
        let urgency = self
            .urgency
            .first(labels)
            .copied()
            .unwrap_or(self.default_urgency);
        (impact, urgency)
    }
}

/// Response and recovery targets for one priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaTarget {
    pub acknowledge: Duration,
    pub resolve: Duration,
}

/// Built-in targets, used for priorities the rules leave out.
pub const DEFAULT_SLA: [SlaTarget; 5] = [
    SlaTarget {
        acknowledge: Duration::from_secs(15 * 60),
        resolve: Duration::from_secs(4 * 3600),
    },
    SlaTarget {
        acknowledge: Duration::from_secs(30 * 60),
        resolve: Duration::from_secs(8 * 3600),
    },
    SlaTarget {
        acknowledge: Duration::from_secs(2 * 3600),
        resolve: Duration::from_secs(24 * 3600),
    },
    SlaTarget {
        acknowledge: Duration::from_secs(8 * 3600),
        resolve: Duration::from_secs(3 * 24 * 3600),
    },
    SlaTarget {
        acknowledge: Duration::from_secs(24 * 3600),
        resolve: Duration::from_secs(7 * 24 * 3600),
    },
];

/// Flap detection: an alert that changes state more than `max_changes`
/// times within `window` is flapping; with `keep_open` its incident stays
/// open instead of resolving and reopening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flapping {
    pub max_changes: usize,
    pub window: Duration,
    pub keep_open: bool,
}

impl Default for Flapping {
    fn default() -> Self {
        Flapping {
            max_changes: 4,
            window: Duration::from_secs(3600),
            keep_open: true,
        }
    }
}

/// Problem candidates: a group key with `recurrence` incidents within
/// `within` is flagged for problem management.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Problems {
    pub recurrence: usize,
    pub within: Duration,
}

impl Default for Problems {
    fn default() -> Self {
        Problems {
            recurrence: 3,
            within: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Everything the engine needs from the rule files, compiled.
pub struct RuleSet {
    pub actions: Vec<ActionDef>,
    pub escalations: Vec<EscalationPolicy>,
    pub inhibit: Vec<InhibitRule>,
    pub maintenance: Vec<MaintenanceWindow>,
    pub flapping: Flapping,
    pub problems: Problems,
    pub correlate: FirstMatch<CorrelateRule>,
    pub fallback: CorrelateRule,
    pub classify: FirstMatch<String>,
    pub prioritize: Prioritize,
    pub sla: [SlaTarget; 5],
    /// Where the rules came from (a directory, or `built-in`).
    pub origin: String,
    templates: minijinja::Environment<'static>,
}

impl fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleSet")
            .field("origin", &self.origin)
            .field("correlate", &self.correlate.len())
            .field("classify", &self.classify.len())
            .finish()
    }
}

impl RuleSet {
    /// The built-in default rules.
    pub fn builtin() -> Result<RuleSet, RulesError> {
        RuleSet::from_sources(
            &[("built-in:rules/default.yaml".into(), BUILTIN.into())],
            "built-in",
        )
    }

    /// Loads every `*.yaml` / `*.yml` directly inside `dir`, sorted by name.
    pub fn load_dir(dir: &Path) -> Result<RuleSet, RulesError> {
        let files = rule_files(dir)?;
        let mut sources = Vec::with_capacity(files.len());
        let mut errors = Vec::new();
        for f in files {
            match std::fs::read_to_string(&f) {
                Ok(text) => sources.push((f.display().to_string(), text)),
                Err(e) => errors.push(RuleError {
                    pos: None,
                    message: format!("{}: cannot read: {e}", f.display()),
                }),
            }
        }
        if !errors.is_empty() {
            return Err(RulesError(errors));
        }
        RuleSet::from_sources(&sources, &dir.display().to_string())
    }

    /// Compiles rule files given as `(name, text)`; gathers every error.
    pub fn from_sources(sources: &[(String, String)], origin: &str) -> Result<RuleSet, RulesError> {
        let mut b = Builder::default();
        for (i, (name, text)) in sources.iter().enumerate() {
            let file: Arc<str> = Arc::from(name.as_str());
            b.file(i, file, text);
        }
        b.finish(origin)
    }

    /// The correlate rule for an alert (the fallback when none matches).
    pub fn correlate_rule(&self, labels: &Labels) -> &CorrelateRule {
        self.correlate.first(labels).unwrap_or(&self.fallback)
    }

    /// Category of an alert; `other` when no rule matches.
    pub fn category(&self, labels: &Labels) -> &str {
        self.classify
            .first(labels)
            .map(String::as_str)
            .unwrap_or("other")
    }

    /// Renders a compiled template (action bodies) with any serializable context.
    pub fn render(&self, name: &str, ctx: &impl Serialize) -> Result<String, String> {
        let t = self
            .templates
            .get_template(name)
            .map_err(|e| e.to_string())?;
        t.render(ctx).map_err(|e| e.to_string())
    }

    /// Renders a rule's title template; falls back to a plain title.
    pub fn render_title(&self, rule: &CorrelateRule, ctx: &TitleContext<'_>) -> String {
        if let Some(name) = &rule.title {
            if let Ok(t) = self.templates.get_template(name) {
                match t.render(ctx) {
                    Ok(s) if !s.trim().is_empty() => return s.trim().to_string(),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(rule = %rule.name, error = %e, "title template failed; using the default title")
                    }
                }
            }
        }
        default_title(ctx)
    }
}

/// What a title template sees.
#[derive(Serialize)]
pub struct TitleContext<'a> {
    pub labels: &'a Labels,
    pub annotations: &'a Labels,
    pub group_labels: &'a Labels,
    pub rule: &'a str,
}

fn default_title(ctx: &TitleContext<'_>) -> String {
    let name = ctx.labels.get("alertname").unwrap_or("alert");
    let rest: Vec<String> = ctx
        .group_labels
        .iter()
        .filter(|(k, _)| *k != "alertname")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if let Some(summary) = ctx.annotations.get("summary") {
        if summary == name {
            return name.to_string();
        }
        return format!("{name}: {summary}");
    }
    if rest.is_empty() {
        name.to_string()
    } else {
        format!("{name} ({})", rest.join(", "))
    }
}

/// Rule files directly inside `dir`, sorted by name.
pub fn rule_files(dir: &Path) -> Result<Vec<PathBuf>, RulesError> {
    let rd = std::fs::read_dir(dir).map_err(|e| {
        RulesError(vec![RuleError {
            pos: None,
            message: format!("{}: cannot read rule directory: {e}", dir.display()),
        }])
    })?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml") | Some("yml")
                )
        })
        .collect();
    files.sort();
    Ok(files)
}

// ---------------------------------------------------------------------------
// Raw, position-carrying forms of each section, deserialized item by item so
// one bad item does not hide the errors in the next.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCorrelate {
    name: Spanned<String>,
    #[serde(default, rename = "match")]
    matchers: Vec<Spanned<String>>,
    #[serde(default)]
    group_by: Vec<Spanned<String>>,
    #[serde(default)]
    window: Option<Spanned<String>>,
    #[serde(default)]
    title: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClassify {
    /// Free text for the reader; not used by the engine.
    #[serde(default)]
    #[allow(dead_code)]
    name: Option<Spanned<String>>,
    #[serde(rename = "match")]
    matchers: Vec<Spanned<String>>,
    category: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLevelRule {
    /// Free text for the reader; not used by the engine.
    #[serde(default)]
    #[allow(dead_code)]
    name: Option<Spanned<String>>,
    #[serde(default, rename = "match")]
    matchers: Vec<Spanned<String>>,
    #[serde(default)]
    urgency: Option<Spanned<String>>,
    #[serde(default)]
    impact: Option<Spanned<String>>,
    /// Blast radius: count distinct values of this label in the incident.
    #[serde(default)]
    distinct: Option<Spanned<String>>,
    #[serde(default)]
    at_least: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSla {
    acknowledge: Spanned<String>,
    resolve: Spanned<String>,
}

#[derive(Clone, Copy)]
enum Section {
    Inhibit,
    Maintenance,
    Action,
    Escalation,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    name: Spanned<String>,
    #[serde(default)]
    on: Vec<Spanned<String>>,
    #[serde(default, rename = "match")]
    matchers: Vec<Spanned<String>>,
    #[serde(default)]
    priority: Vec<Spanned<String>>,
    #[serde(default)]
    category: Vec<Spanned<String>>,
    #[serde(default)]
    webhook: Option<RawWebhook>,
    #[serde(default)]
    exec: Option<RawExec>,
    #[serde(default)]
    kafka: Option<RawKafkaAction>,
    #[serde(default)]
    retries: Option<u32>,
    #[serde(default)]
    backoff: Option<Spanned<String>>,
    #[serde(default)]
    rate_limit: Option<RawRateLimit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    #[serde(default)]
    url: Option<Spanned<String>>,
    #[serde(default)]
    url_env: Option<Spanned<String>>,
    #[serde(default)]
    method: Option<Spanned<String>>,
    #[serde(default)]
    preset: Option<Spanned<String>>,
    #[serde(default)]
    body: Option<Spanned<String>>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    secret_headers: BTreeMap<String, String>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExec {
    command: Spanned<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    max_output: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKafkaAction {
    topic: Spanned<String>,
    #[serde(default)]
    brokers: Option<Spanned<String>>,
    #[serde(default)]
    key: Option<Spanned<String>>,
    #[serde(default)]
    body: Option<Spanned<String>>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    max: u32,
    per: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEscalation {
    name: Spanned<String>,
    #[serde(default, rename = "match")]
    matchers: Vec<Spanned<String>>,
    #[serde(default)]
    priority: Vec<Spanned<String>>,
    levels: Vec<RawLevel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLevel {
    /// Since creation, while unacknowledged.
    #[serde(default)]
    after: Option<Spanned<String>>,
    /// Share of the resolve target that has passed, e.g. "80%".
    #[serde(default)]
    resolve_progress: Option<Spanned<String>>,
    #[serde(default)]
    actions: Vec<Spanned<String>>,
    #[serde(default)]
    assignee: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInhibit {
    #[serde(default)]
    name: Option<Spanned<String>>,
    #[serde(default)]
    source: Vec<Spanned<String>>,
    #[serde(default)]
    target: Vec<Spanned<String>>,
    #[serde(default)]
    equal: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMaintenance {
    name: Spanned<String>,
    #[serde(default, rename = "match")]
    matchers: Vec<Spanned<String>>,
    #[serde(default)]
    start: Option<Spanned<String>>,
    #[serde(default)]
    end: Option<Spanned<String>>,
    #[serde(default)]
    weekly: Vec<RawSlot>,
    #[serde(default)]
    time_zone: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlot {
    #[serde(default)]
    days: Vec<Spanned<String>>,
    start: Spanned<String>,
    end: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlapping {
    #[serde(default)]
    max_changes: Option<Spanned<usize>>,
    #[serde(default)]
    window: Option<Spanned<String>>,
    #[serde(default)]
    keep_open: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProblems {
    #[serde(default)]
    recurrence: Option<Spanned<usize>>,
    #[serde(default)]
    within: Option<Spanned<String>>,
}

fn parse_days(s: &str) -> Option<Vec<chrono::Weekday>> {
    use chrono::Weekday::*;
    let one = |d: &str| -> Option<chrono::Weekday> {
        Some(match d {
            "mon" | "monday" => Mon,
            "tue" | "tuesday" => Tue,
            "wed" | "wednesday" => Wed,
            "thu" | "thursday" => Thu,
            "fri" | "friday" => Fri,
            "sat" | "saturday" => Sat,
            "sun" | "sunday" => Sun,
            _ => return None,
        })
    };
    let s = s.trim().to_ascii_lowercase();
    match s.as_str() {
        "daily" | "everyday" => Some(vec![Mon, Tue, Wed, Thu, Fri, Sat, Sun]),
        "weekdays" => Some(vec![Mon, Tue, Wed, Thu, Fri]),
        "weekend" | "weekends" => Some(vec![Sat, Sun]),
        _ => one(&s).map(|d| vec![d]),
    }
}

#[derive(Default)]
struct Builder {
    errors: Vec<RuleError>,
    actions: Vec<ActionDef>,
    action_names: HashMap<String, Pos>,
    escalations: Vec<EscalationPolicy>,
    escalation_names: HashMap<String, Pos>,
    /// Action names escalation levels refer to, checked when all files are read.
    action_refs: Vec<(String, Pos)>,
    /// Actions without `on`: only escalation levels can run them.
    triggerless: Vec<(String, Pos)>,
    inhibit: Vec<InhibitRule>,
    inhibit_names: HashMap<String, Pos>,
    maintenance: Vec<MaintenanceWindow>,
    maintenance_names: HashMap<String, Pos>,
    flapping: Flapping,
    flapping_at: Option<Pos>,
    problems: Problems,
    problems_at: Option<Pos>,
    correlate: FirstMatch<CorrelateRule>,
    correlate_names: HashMap<String, Pos>,
    classify: FirstMatch<String>,
    prioritize: Prioritize,
    default_impact_at: Option<Pos>,
    default_urgency_at: Option<Pos>,
    matrix_at: Option<Pos>,
    sla: [Option<(SlaTarget, Pos)>; 5],
    templates: Vec<(String, String, Pos)>,
    files: Vec<Arc<str>>,
}

impl Builder {
    fn pos_of(&self, span: &marked_yaml::Span) -> Option<Pos> {
        span.start().map(|m| Pos {
            file: self
                .files
                .get(m.source())
                .cloned()
                .unwrap_or_else(|| Arc::from("?")),
            line: m.line(),
            column: m.column(),
        })
    }

    fn err(&mut self, span: &marked_yaml::Span, message: impl Into<String>) {
        let pos = self.pos_of(span);
        self.errors.push(RuleError {
            pos,
            message: message.into(),
        });
    }

    fn file(&mut self, index: usize, file: Arc<str>, text: &str) {
        self.files.push(file.clone());
        if text.trim().is_empty() {
            return;
        }
        let options = marked_yaml::LoaderOptions::default().error_on_duplicate_keys(true);
        let root = match marked_yaml::parse_yaml_with_options(index, text, options) {
            Ok(n) => n,
            Err(e) => {
                self.errors.push(load_error(&file, &e));
                return;
            }
        };
        let Some(map) = root.as_mapping() else {
            self.err(
                root.span(),
                "a rule file must be a mapping of sections (correlate, classify, prioritize, sla)",
            );
            return;
        };
        for (key, value) in map.iter() {
            match key.as_str() {
                "correlate" => self.correlate_section(value),
                "classify" => self.classify_section(value),
                "prioritize" => self.prioritize_section(value),
                "sla" => self.sla_section(value),
                "inhibit" => self.inhibit_section(value),
                "maintenance" => self.maintenance_section(value),
                "flapping" => self.flapping_section(key, value),
                "problems" => self.problems_section(key, value),
                "actions" => self.actions_section(value),
                "escalations" => self.escalations_section(value),
                other => self.err(
                    key.span(),
                    format!(
                        "unknown section `{other}`; expected one of {}",
                        SECTIONS.join(", ")
                    ),
                ),
            }
        }
    }

    /// Deserializes each item of a list section separately.
    fn items<T: for<'de> Deserialize<'de>>(
        &mut self,
        node: &Node,
        section: &str,
    ) -> Vec<(T, marked_yaml::Span)> {
        let Some(seq) = node.as_sequence() else {
            self.err(node.span(), format!("`{section}` must be a list"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in seq.iter() {
            match marked_yaml::from_node::<T>(item) {
                Ok(v) => out.push((v, *item.span())),
                Err(e) => {
                    let span = e
                        .start_mark()
                        .map(marked_yaml::Span::new_start)
                        .unwrap_or(*item.span());
                    let msg = match e.path().map(str::to_string) {
                        Some(p) => format!("{section}: {p}: {}", e.into_inner()),
                        None => format!("{section}: {}", e.into_inner()),
                    };
                    self.err(&span, clean_serde_message(&msg));
                }
            }
        }
        out
    }

    fn matchers(&mut self, raw: &[Spanned<String>]) -> Option<Vec<Matcher>> {
        let mut out = Vec::new();
        let mut ok = true;
        for m in raw {
            match matcher::parse(m.as_str()) {
                Ok(ms) => out.extend(ms),
                Err(e) => {
                    ok = false;
                    self.err(
                        m.span(),
                        format!("bad matcher {:?}: {}", m.as_str(), e.message),
                    );
                }
            }
        }
        ok.then_some(out)
    }

    fn duration(&mut self, raw: &Spanned<String>) -> Option<Duration> {
        match humantime::parse_duration(raw.as_str()) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                self.err(
                    raw.span(),
                    format!("duration {:?} must be greater than zero", raw.as_str()),
                );
                None
            }
            Err(e) => {
                self.err(
                    raw.span(),
                    format!(
                        "bad duration {:?}: {e} (examples: 30s, 15m, 4h, 7d)",
                        raw.as_str()
                    ),
                );
                None
            }
        }
    }

    fn level(&mut self, raw: &Spanned<String>, what: &str) -> Option<Level> {
        let l = Level::parse(raw.as_str());
        if l.is_none() {
            self.err(
                raw.span(),
                format!(
                    "unknown {what} {:?}; expected high, medium or low",
                    raw.as_str()
                ),
            );
        }
        l
    }

    fn correlate_section(&mut self, node: &Node) {
        for (raw, span) in self.items::<RawCorrelate>(node, "correlate") {
            let name = raw.name.as_str().trim().to_string();
            if name.is_empty() {
                self.err(raw.name.span(), "correlate: rule name must not be empty");
                continue;
            }
            let here = self.pos_of(raw.name.span());
            // A duplicate is reported, and the rest of the rule still checked.
            let duplicate = match self.correlate_names.get(&name) {
                Some(prev) => {
                    let msg =
                        format!("duplicate correlate rule name {name:?} (first defined at {prev})");
                    self.err(raw.name.span(), msg);
                    true
                }
                None => false,
            };
            if let (Some(p), false) = (here.clone(), duplicate) {
                self.correlate_names.insert(name.clone(), p);
            }
            let matchers = self.matchers(&raw.matchers);
            let window = match &raw.window {
                Some(w) => self.duration(w),
                None => Some(Duration::from_secs(3600)),
            };
            let mut group = Vec::new();
            let mut all = false;
            for g in &raw.group_by {
                if g.as_str() == "..." {
                    all = true;
                } else if g.as_str().is_empty() {
                    self.err(g.span(), "group_by: empty label name");
                } else {
                    group.push(g.as_str().to_string());
                }
            }
            if all && !group.is_empty() {
                self.err(
                    &span,
                    "group_by: \"...\" (all labels) cannot be combined with label names",
                );
            }
            let group_by = if all {
                GroupBy::All
            } else {
                if group.is_empty() {
                    group.push("alertname".into());
                }
                GroupBy::Labels(group)
            };
            let title = raw.title.as_ref().map(|t| {
                let tname = format!("correlate/{name}");
                self.templates.push((
                    tname.clone(),
                    t.as_str().to_string(),
                    self.pos_of(t.span()).unwrap_or(Pos {
                        file: Arc::from("?"),
                        line: 0,
                        column: 0,
                    }),
                ));
                tname
            });
            if let (Some(matchers), Some(window), false) = (matchers, window, duplicate) {
                self.correlate.push(
                    matchers,
                    CorrelateRule {
                        name,
                        group_by,
                        window,
                        title,
                    },
                );
            }
        }
    }

    fn classify_section(&mut self, node: &Node) {
        for (raw, _) in self.items::<RawClassify>(node, "classify") {
            let matchers = self.matchers(&raw.matchers);
            let cat = raw.category.as_str();
            if !CATEGORIES.contains(&cat) {
                self.err(
                    raw.category.span(),
                    format!(
                        "unknown category {cat:?}; expected one of {}",
                        CATEGORIES.join(", ")
                    ),
                );
                continue;
            }
            if let Some(m) = matchers {
                self.classify.push(m, cat.to_string());
            }
        }
    }

    fn prioritize_section(&mut self, node: &Node) {
        let Some(map) = node.as_mapping() else {
            self.err(node.span(), "`prioritize` must be a mapping (urgency, impact, default_impact, default_urgency, matrix)");
            return;
        };
        for (key, value) in map.iter() {
            match key.as_str() {
                "urgency" => {
                    for (raw, span) in self.items::<RawLevelRule>(value, "prioritize.urgency") {
                        if raw.impact.is_some() || raw.distinct.is_some() || raw.at_least.is_some() {
                            self.err(&span, "prioritize.urgency: a rule sets only `urgency` (impact and blast radius go under prioritize.impact)");
                            continue;
                        }
                        let Some(u) = &raw.urgency else {
                            self.err(&span, "prioritize.urgency: missing field `urgency`");
                            continue;
                        };
                        let level = self.level(u, "urgency");
                        let m = self.matchers(&raw.matchers);
                        if let (Some(level), Some(m)) = (level, m) {
                            self.prioritize.urgency.push(m, level);
                        }
                    }
                }
                "impact" => {
                    for (raw, span) in self.items::<RawLevelRule>(value, "prioritize.impact") {
                        if raw.urgency.is_some() {
                            self.err(&span, "prioritize.impact: a rule sets only `impact` (urgency goes under prioritize.urgency)");
                            continue;
                        }
                        let Some(i) = &raw.impact else {
                            self.err(&span, "prioritize.impact: missing field `impact`");
                            continue;
                        };
                        let level = self.level(i, "impact");
                        let m = self.matchers(&raw.matchers);
                        match (&raw.distinct, &raw.at_least) {
                            (Some(label), Some(n)) => {
                                if **n == 0 {
                                    self.err(n.span(), "prioritize.impact: at_least must be at least 1");
                                    continue;
                                }
                                if let (Some(level), Some(m)) = (level, m) {
                                    self.prioritize.blast_radius.push(BlastRadius {
                                        matchers: m,
                                        label: label.as_str().to_string(),
                                        at_least: **n,
                                        impact: level,
                                    });
                                }
                            }
                            (None, None) => {
                                if let (Some(level), Some(m)) = (level, m) {
                                    self.prioritize.impact.push(m, level);
                                }
                            }
                            _ => self.err(&span, "prioritize.impact: `distinct` and `at_least` go together (blast radius)"),
                        }
                    }
                }
                "default_impact" | "default_urgency" => {
                    let which = key.as_str().to_string();
                    let Some(s) = value.as_scalar() else {
                        self.err(value.span(), format!("`{which}` must be high, medium or low"));
                        continue;
                    };
                    let spanned = Spanned::new(*s.span(), s.as_str().to_string());
                    let here = self.pos_of(key.span());
                    let prev = if which == "default_impact" { &mut self.default_impact_at } else { &mut self.default_urgency_at };
                    if let Some(p) = prev.clone() {
                        self.err(key.span(), format!("`prioritize.{which}` is set twice (first at {p})"));
                        continue;
                    }
                    *prev = here;
                    if let Some(l) = self.level(&spanned, &which.replace("default_", "")) {
                        if which == "default_impact" {
                            self.prioritize.default_impact = l;
                        } else {
                            self.prioritize.default_urgency = l;
                        }
                    }
                }
                "matrix" => self.matrix(key, value),
                other => self.err(
                    key.span(),
                    format!("unknown field `{other}` in prioritize; expected one of urgency, impact, default_impact, default_urgency, matrix"),
                ),
            }
        }
    }

    fn matrix(&mut self, key: &marked_yaml::types::MarkedScalarNode, value: &Node) {
        if let Some(p) = self.matrix_at.clone() {
            self.err(
                key.span(),
                format!("`prioritize.matrix` is set twice (first at {p})"),
            );
            return;
        }
        self.matrix_at = self.pos_of(key.span());
        let Some(rows) = value.as_mapping() else {
            self.err(value.span(), "`matrix` maps impact (high, medium, low) to urgency (high, medium, low) to a priority P1..P5");
            return;
        };
        let mut cells: [[Option<Priority>; 3]; 3] = [[None; 3]; 3];
        for (ik, row) in rows.iter() {
            let Some(impact) = Level::parse(ik.as_str()) else {
                self.err(
                    ik.span(),
                    format!(
                        "matrix: unknown impact {:?}; expected high, medium or low",
                        ik.as_str()
                    ),
                );
                continue;
            };
            let Some(cols) = row.as_mapping() else {
                self.err(
                    row.span(),
                    "matrix: each impact maps urgency (high, medium, low) to a priority",
                );
                continue;
            };
            for (uk, cell) in cols.iter() {
                let Some(urgency) = Level::parse(uk.as_str()) else {
                    self.err(
                        uk.span(),
                        format!(
                            "matrix: unknown urgency {:?}; expected high, medium or low",
                            uk.as_str()
                        ),
                    );
                    continue;
                };
                match cell.as_scalar().and_then(|s| Priority::parse(s.as_str())) {
                    Some(p) => cells[impact.idx()][urgency.idx()] = Some(p),
                    None => self.err(
                        cell.span(),
                        "matrix: a cell must be one of P1, P2, P3, P4, P5",
                    ),
                }
            }
        }
        let mut gaps = Vec::new();
        for i in Level::ALL {
            for u in Level::ALL {
                match cells[i.idx()][u.idx()] {
                    Some(p) => self.prioritize.matrix[i.idx()][u.idx()] = p,
                    None => gaps.push(format!("impact={} urgency={}", i.as_str(), u.as_str())),
                }
            }
        }
        if !gaps.is_empty() {
            self.err(
                value.span(),
                format!("matrix: missing cells {}", gaps.join(", ")),
            );
        }
    }

    fn sla_section(&mut self, node: &Node) {
        let Some(map) = node.as_mapping() else {
            self.err(
                node.span(),
                "`sla` maps a priority (P1..P5) to {acknowledge, resolve}",
            );
            return;
        };
        for (key, value) in map.iter() {
            let Some(p) = Priority::parse(key.as_str()) else {
                self.err(
                    key.span(),
                    format!("sla: unknown priority {:?}; expected P1..P5", key.as_str()),
                );
                continue;
            };
            if let Some((_, prev)) = &self.sla[p.idx()] {
                let msg = format!("sla: {p} is defined twice (first at {prev})");
                self.err(key.span(), msg);
                continue;
            }
            let raw: RawSla = match marked_yaml::from_node(value) {
                Ok(r) => r,
                Err(e) => {
                    let span = e
                        .start_mark()
                        .map(marked_yaml::Span::new_start)
                        .unwrap_or(*value.span());
                    self.err(
                        &span,
                        clean_serde_message(&format!("sla.{p}: {}", e.into_inner())),
                    );
                    continue;
                }
            };
            let ack = self.duration(&raw.acknowledge);
            let res = self.duration(&raw.resolve);
            if let (Some(acknowledge), Some(resolve)) = (ack, res) {
                if acknowledge > resolve {
                    self.err(
                        raw.acknowledge.span(),
                        format!("sla.{p}: acknowledge target is longer than the resolve target"),
                    );
                }
                if let Some(pos) = self.pos_of(key.span()) {
                    self.sla[p.idx()] = Some((
                        SlaTarget {
                            acknowledge,
                            resolve,
                        },
                        pos,
                    ));
                }
            }
        }
    }

    fn unique_name(
        &mut self,
        which: &str,
        name: &Spanned<String>,
        seen: Section,
    ) -> Option<String> {
        let n = name.as_str().trim().to_string();
        if n.is_empty() {
            self.err(name.span(), format!("{which}: name must not be empty"));
            return None;
        }
        let here = self.pos_of(name.span());
        let map = match seen {
            Section::Inhibit => &mut self.inhibit_names,
            Section::Maintenance => &mut self.maintenance_names,
            Section::Action => &mut self.action_names,
            Section::Escalation => &mut self.escalation_names,
        };
        if let Some(prev) = map.get(&n) {
            let msg = format!("duplicate {which} name {n:?} (first defined at {prev})");
            self.err(name.span(), msg);
            return None;
        }
        if let Some(p) = here {
            map.insert(n.clone(), p);
        }
        Some(n)
    }

    fn inhibit_section(&mut self, node: &Node) {
        for (raw, span) in self.items::<RawInhibit>(node, "inhibit") {
            let name = match &raw.name {
                Some(n) => self.unique_name("inhibit rule", n, Section::Inhibit),
                None => Some(format!("inhibit-{}", self.inhibit.len() + 1)),
            };
            if raw.source.is_empty() || raw.target.is_empty() {
                self.err(
                    &span,
                    "inhibit: a rule needs both `source` and `target` matchers",
                );
                continue;
            }
            let source = self.matchers(&raw.source);
            let target = self.matchers(&raw.target);
            if let (Some(name), Some(source), Some(target)) = (name, source, target) {
                self.inhibit.push(InhibitRule {
                    name,
                    source,
                    target,
                    equal: raw.equal.iter().map(|e| e.as_str().to_string()).collect(),
                });
            }
        }
    }

    fn maintenance_section(&mut self, node: &Node) {
        for (raw, span) in self.items::<RawMaintenance>(node, "maintenance") {
            let name = self.unique_name("maintenance window", &raw.name, Section::Maintenance);
            if raw.matchers.is_empty() {
                self.err(&span, "maintenance: a window needs `match` (use a matcher such as env=\"staging\"; an empty list would mute everything)");
                continue;
            }
            let matchers = self.matchers(&raw.matchers);
            let schedule = match (&raw.start, &raw.end, raw.weekly.is_empty()) {
                (Some(s), Some(e), true) => {
                    if raw.time_zone.is_some() {
                        self.err(&span, "maintenance: `time_zone` applies to `weekly` windows; one-off `start`/`end` are RFC 3339 with their own offset");
                    }
                    let start = self.timestamp(s);
                    let end = self.timestamp(e);
                    match (start, end) {
                        (Some(start), Some(end)) if end > start => {
                            Some(Schedule::Once { start, end })
                        }
                        (Some(_), Some(_)) => {
                            self.err(e.span(), "maintenance: `end` must be after `start`");
                            None
                        }
                        _ => None,
                    }
                }
                (None, None, false) => {
                    let tz = match &raw.time_zone {
                        None => Some(chrono_tz::Tz::UTC),
                        Some(t) => match t.as_str().parse::<chrono_tz::Tz>() {
                            Ok(tz) => Some(tz),
                            Err(_) => {
                                self.err(t.span(), format!("unknown time zone {:?} (use an IANA name such as Europe/Berlin or UTC)", t.as_str()));
                                None
                            }
                        },
                    };
                    let mut slots = Vec::new();
                    let mut ok = true;
                    for slot in &raw.weekly {
                        match self.slot(slot) {
                            Some(s) => slots.push(s),
                            None => ok = false,
                        }
                    }
                    match (tz, ok) {
                        (Some(tz), true) => Some(Schedule::Weekly { tz, slots }),
                        _ => None,
                    }
                }
                _ => {
                    self.err(&span, "maintenance: give either `start` and `end` (one-off) or `weekly` (recurring), not both or neither");
                    None
                }
            };
            if let (Some(name), Some(matchers), Some(schedule)) = (name, matchers, schedule) {
                self.maintenance.push(MaintenanceWindow {
                    name,
                    matchers,
                    schedule,
                });
            }
        }
    }

    fn timestamp(&mut self, raw: &Spanned<String>) -> Option<chrono::DateTime<chrono::Utc>> {
        match chrono::DateTime::parse_from_rfc3339(raw.as_str()) {
            Ok(t) => Some(t.with_timezone(&chrono::Utc)),
            Err(e) => {
                self.err(
                    raw.span(),
                    format!(
                        "bad timestamp {:?}: {e} (RFC 3339, e.g. 2026-12-01T02:00:00+01:00)",
                        raw.as_str()
                    ),
                );
                None
            }
        }
    }

    fn slot(&mut self, raw: &RawSlot) -> Option<WeeklySlot> {
        let mut days = Vec::new();
        let mut ok = true;
        for d in &raw.days {
            match parse_days(d.as_str()) {
                Some(ds) => days.extend(ds),
                None => {
                    self.err(d.span(), format!("unknown day {:?}; use mon..sun, monday..sunday, weekdays, weekend or daily", d.as_str()));
                    ok = false;
                }
            }
        }
        if raw.days.is_empty() {
            days.extend(parse_days("daily").unwrap_or_default());
        }
        let mut time =
            |t: &Spanned<String>| match chrono::NaiveTime::parse_from_str(t.as_str(), "%H:%M") {
                Ok(v) => Some(v),
                Err(_) => {
                    self.err(
                        t.span(),
                        format!("bad time {:?}; expected HH:MM (24h)", t.as_str()),
                    );
                    None
                }
            };
        let start = time(&raw.start);
        let end = time(&raw.end);
        match (start, end, ok) {
            (Some(start), Some(end), true) => Some(WeeklySlot { days, start, end }),
            _ => None,
        }
    }

    /// A section that is a single mapping (not a list): reports a second
    /// definition, then deserializes it, reporting errors with positions.
    fn single<T: for<'de> Deserialize<'de>>(
        &mut self,
        section: &str,
        key: &marked_yaml::types::MarkedScalarNode,
        node: &Node,
    ) -> Option<T> {
        let here = self.pos_of(key.span());
        let seen = match section {
            "flapping" => &mut self.flapping_at,
            _ => &mut self.problems_at,
        };
        if let Some(p) = seen.clone() {
            self.err(
                key.span(),
                format!("`{section}` is set twice (first at {p})"),
            );
            return None;
        }
        *seen = here;
        match marked_yaml::from_node(node) {
            Ok(r) => Some(r),
            Err(e) => {
                let span = e
                    .start_mark()
                    .map(marked_yaml::Span::new_start)
                    .unwrap_or(*node.span());
                self.err(
                    &span,
                    clean_serde_message(&format!("{section}: {}", e.into_inner())),
                );
                None
            }
        }
    }

    fn flapping_section(&mut self, key: &marked_yaml::types::MarkedScalarNode, node: &Node) {
        let Some(raw) = self.single::<RawFlapping>("flapping", key, node) else {
            return;
        };
        if let Some(n) = &raw.max_changes {
            if **n < 2 {
                self.err(n.span(), "flapping: max_changes must be at least 2");
            } else {
                self.flapping.max_changes = **n;
            }
        }
        if let Some(w) = &raw.window {
            if let Some(d) = self.duration(w) {
                self.flapping.window = d;
            }
        }
        if let Some(k) = raw.keep_open {
            self.flapping.keep_open = k;
        }
    }

    fn problems_section(&mut self, key: &marked_yaml::types::MarkedScalarNode, node: &Node) {
        let Some(raw) = self.single::<RawProblems>("problems", key, node) else {
            return;
        };
        if let Some(n) = &raw.recurrence {
            if **n < 2 {
                self.err(n.span(), "problems: recurrence must be at least 2");
            } else {
                self.problems.recurrence = **n;
            }
        }
        if let Some(w) = &raw.within {
            if let Some(d) = self.duration(w) {
                self.problems.within = d;
            }
        }
    }

    fn priorities(&mut self, raw: &[Spanned<String>]) -> Vec<Priority> {
        let mut out = Vec::new();
        for p in raw {
            match Priority::parse(p.as_str()) {
                Some(p) => out.push(p),
                None => self.err(
                    p.span(),
                    format!("unknown priority {:?}; expected P1..P5", p.as_str()),
                ),
            }
        }
        out
    }

    fn actions_section(&mut self, node: &Node) {
        for (raw, span) in self.items::<RawAction>(node, "actions") {
            let name = self.unique_name("action", &raw.name, Section::Action);
            let mut on = Vec::new();
            for t in &raw.on {
                match Trigger::parse(t.as_str()) {
                    Some(tr) => on.push(tr),
                    None => self.err(
                        t.span(),
                        format!(
                            "unknown trigger {:?}; expected one of {}",
                            t.as_str(),
                            Trigger::ALL.map(Trigger::as_str).join(", ")
                        ),
                    ),
                }
            }
            let matchers = self.matchers(&raw.matchers);
            let priorities = self.priorities(&raw.priority);
            let mut categories = Vec::new();
            for c in &raw.category {
                if CATEGORIES.contains(&c.as_str()) {
                    categories.push(c.as_str().to_string());
                } else {
                    self.err(
                        c.span(),
                        format!(
                            "unknown category {:?}; expected one of {}",
                            c.as_str(),
                            CATEGORIES.join(", ")
                        ),
                    );
                }
            }
            let backoff = match &raw.backoff {
                Some(b) => self.duration(b),
                None => Some(Duration::from_secs(1)),
            };
            let rate_limit = match &raw.rate_limit {
                Some(rl) if rl.max == 0 => {
                    self.err(rl.per.span(), "rate_limit.max must be at least 1");
                    None
                }
                Some(rl) => self
                    .duration(&rl.per)
                    .map(|d| Some((rl.max, d)))
                    .unwrap_or(None),
                None => None,
            };
            let kind = match (&raw.webhook, &raw.exec, &raw.kafka) {
                (Some(w), None, None) => self
                    .webhook(w, name.as_deref().unwrap_or("?"), &span)
                    .map(ActionKind::Webhook),
                (None, Some(e), None) => self.exec(e).map(ActionKind::Exec),
                (None, None, Some(k)) => self
                    .kafka_action(k, name.as_deref().unwrap_or("?"))
                    .map(ActionKind::Kafka),
                _ => {
                    self.err(
                        &span,
                        "actions: give exactly one of `webhook`, `exec` or `kafka`",
                    );
                    None
                }
            };
            if raw.on.is_empty() {
                if let Some(p) = self.pos_of(&span) {
                    self.triggerless.push((name.clone().unwrap_or_default(), p));
                }
            }
            if let (Some(name), Some(matchers), Some(kind), Some(backoff)) =
                (name, matchers, kind, backoff)
            {
                self.actions.push(ActionDef {
                    name,
                    on,
                    matchers,
                    priorities,
                    categories,
                    kind,
                    retries: raw.retries.unwrap_or(3),
                    backoff,
                    rate_limit,
                });
            }
        }
    }

    /// One of `options` by name; unset means the first. Anything else is
    /// an error naming the choices (and clears `ok`).
    fn choice<T: Copy>(
        &mut self,
        value: Option<&Spanned<String>>,
        what: &str,
        options: &[(&str, T)],
        ok: &mut bool,
    ) -> T {
        let default = options[0].1;
        let Some(v) = value else { return default };
        if let Some((_, t)) = options.iter().find(|(name, _)| *name == v.as_str()) {
            return *t;
        }
        let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
        self.err(
            v.span(),
            format!("{what} {:?}: expected {}", v.as_str(), names.join(" or ")),
        );
        *ok = false;
        default
    }

    /// Registers an action's `body` template (compiled with the others).
    fn body_template(&mut self, body: Option<&Spanned<String>>, action: &str) -> Option<String> {
        let b = body?;
        let tname = format!("action/{action}");
        let pos = self.pos_of(b.span()).unwrap_or(Pos {
            file: Arc::from("?"),
            line: 0,
            column: 0,
        });
        self.templates
            .push((tname.clone(), b.as_str().to_string(), pos));
        Some(tname)
    }

    /// A duration field with a default; `None` after reporting a bad one.
    fn timeout_or(&mut self, t: Option<&Spanned<String>>, default: Duration) -> Option<Duration> {
        match t {
            Some(t) => self.duration(t),
            None => Some(default),
        }
    }

    fn kafka_action(&mut self, k: &RawKafkaAction, action: &str) -> Option<KafkaActionDef> {
        let mut ok = true;
        let topic = k.topic.as_str();
        if topic.is_empty()
            || topic.len() > 249
            || !topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            self.err(
                k.topic.span(),
                format!("kafka topic {topic:?}: use 1-249 characters of a-z A-Z 0-9 . _ -"),
            );
            ok = false;
        }
        let key = self.choice(
            k.key.as_ref(),
            "kafka key",
            &[
                ("incident", KafkaKey::Incident),
                ("group_key", KafkaKey::GroupKey),
            ],
            &mut ok,
        );
        let body_template = self.body_template(k.body.as_ref(), action);
        let timeout = self.timeout_or(k.timeout.as_ref(), Duration::from_secs(10))?;
        ok.then(|| KafkaActionDef {
            topic: topic.to_string(),
            brokers: k.brokers.as_ref().map(|b| b.as_str().to_string()),
            key,
            body_template,
            timeout,
        })
    }

    fn webhook(
        &mut self,
        w: &RawWebhook,
        action: &str,
        span: &marked_yaml::Span,
    ) -> Option<WebhookDef> {
        let mut ok = true;
        match (&w.url, &w.url_env) {
            (Some(u), None) => {
                if !(u.as_str().starts_with("http://") || u.as_str().starts_with("https://")) {
                    self.err(
                        u.span(),
                        format!(
                            "webhook url {:?} must start with http:// or https://",
                            u.as_str()
                        ),
                    );
                    ok = false;
                }
            }
            (None, Some(_)) => {}
            _ => {
                self.err(span, "webhook: give exactly one of `url` or `url_env` (the environment variable holding the URL)");
                ok = false;
            }
        }
        let method = match w.method.as_ref().map(|m| m.as_str().to_ascii_uppercase()) {
            None => reqwest::Method::POST,
            Some(m) if m == "POST" => reqwest::Method::POST,
            Some(m) if m == "PUT" => reqwest::Method::PUT,
            Some(m) => {
                if let Some(raw) = &w.method {
                    self.err(
                        raw.span(),
                        format!("webhook method {m:?}: expected POST or PUT"),
                    );
                }
                ok = false;
                reqwest::Method::POST
            }
        };
        let preset = self.choice(
            w.preset.as_ref(),
            "webhook preset",
            &[("json", Preset::Json), ("slack", Preset::Slack)],
            &mut ok,
        );
        let body_template = self.body_template(w.body.as_ref(), action);
        let timeout = self.timeout_or(w.timeout.as_ref(), Duration::from_secs(10))?;
        ok.then(|| WebhookDef {
            url: w.url.as_ref().map(|u| u.as_str().to_string()),
            url_env: w.url_env.as_ref().map(|u| u.as_str().to_string()),
            method,
            preset,
            body_template,
            headers: w
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            secret_headers: w
                .secret_headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            timeout,
        })
    }

    fn exec(&mut self, e: &RawExec) -> Option<ExecDef> {
        let command = e.command.as_str();
        if command.is_empty()
            || command.contains(char::is_whitespace) && !std::path::Path::new(command).exists()
        {
            self.err(e.command.span(), format!("exec command {command:?} is one program path; put its arguments in `args` (no shell is used)"));
            return None;
        }
        let timeout = self.timeout_or(e.timeout.as_ref(), Duration::from_secs(30))?;
        Some(ExecDef {
            command: PathBuf::from(command),
            args: e.args.clone(),
            timeout,
            max_output: e.max_output.unwrap_or(16 * 1024),
        })
    }

    fn escalations_section(&mut self, node: &Node) {
        for (raw, span) in self.items::<RawEscalation>(node, "escalations") {
            let name = self.unique_name("escalation policy", &raw.name, Section::Escalation);
            let matchers = self.matchers(&raw.matchers);
            let priorities = self.priorities(&raw.priority);
            if raw.levels.is_empty() {
                self.err(&span, "escalations: a policy needs at least one level");
                continue;
            }
            let mut levels = Vec::new();
            let mut ok = true;
            for l in &raw.levels {
                let when = match (&l.after, &l.resolve_progress) {
                    (Some(a), None) => self.duration(a).map(LevelWhen::Unacknowledged),
                    (None, Some(p)) => {
                        let text = p.as_str().trim();
                        let parsed = text
                            .strip_suffix('%')
                            .and_then(|n| n.trim().parse::<f64>().ok());
                        match parsed {
                            Some(v) if v > 0.0 && v <= 100.0 => {
                                Some(LevelWhen::ResolveProgress(v / 100.0))
                            }
                            _ => {
                                self.err(p.span(), format!("resolve_progress {text:?}: expected a percentage such as \"80%\""));
                                None
                            }
                        }
                    }
                    _ => {
                        self.err(&span, "escalations: each level needs exactly one of `after` (unacknowledged for) or `resolve_progress` (e.g. \"80%\")");
                        None
                    }
                };
                for a in &l.actions {
                    if let Some(pos) = self.pos_of(a.span()) {
                        self.action_refs.push((a.as_str().to_string(), pos));
                    }
                }
                match when {
                    Some(when) => levels.push(EscalationLevel {
                        when,
                        actions: l.actions.iter().map(|a| a.as_str().to_string()).collect(),
                        assignee: l.assignee.clone(),
                    }),
                    None => ok = false,
                }
            }
            if let (Some(name), Some(matchers), true) = (name, matchers, ok) {
                self.escalations.push(EscalationPolicy {
                    name,
                    matchers,
                    priorities,
                    levels,
                });
            }
        }
    }

    fn finish(mut self, origin: &str) -> Result<RuleSet, RulesError> {
        for (name, pos) in std::mem::take(&mut self.triggerless) {
            if !self.action_refs.iter().any(|(n, _)| *n == name) {
                self.errors.push(RuleError {
                    pos: Some(pos),
                    message: format!("action {name:?} has no `on` triggers and no escalation level names it, so it would never run"),
                });
            }
        }
        for (name, pos) in std::mem::take(&mut self.action_refs) {
            if !self.action_names.contains_key(&name) {
                self.errors.push(RuleError {
                    pos: Some(pos),
                    message: format!(
                        "escalation level names action {name:?}, which no `actions` entry defines"
                    ),
                });
            }
        }
        let mut env = minijinja::Environment::new();
        for (name, source, pos) in std::mem::take(&mut self.templates) {
            if let Err(e) = env.add_template_owned(name, source) {
                self.errors.push(RuleError {
                    pos: Some(pos),
                    message: format!("bad title template: {e}"),
                });
            }
        }
        if !self.errors.is_empty() {
            self.errors.sort_by(|a, b| {
                let key =
                    |e: &RuleError| e.pos.as_ref().map(|p| (p.file.clone(), p.line, p.column));
                key(a).cmp(&key(b))
            });
            return Err(RulesError(self.errors));
        }
        self.correlate.seal();
        self.classify.seal();
        self.prioritize.urgency.seal();
        self.prioritize.impact.seal();
        let mut sla = DEFAULT_SLA;
        for (i, s) in self.sla.iter().enumerate() {
            if let Some((t, _)) = s {
                sla[i] = *t;
            }
        }
        Ok(RuleSet {
            actions: self.actions,
            escalations: self.escalations,
            inhibit: self.inhibit,
            maintenance: self.maintenance,
            flapping: self.flapping,
            problems: self.problems,
            correlate: self.correlate,
            fallback: CorrelateRule::fallback(),
            classify: self.classify,
            prioritize: self.prioritize,
            sla,
            origin: origin.to_string(),
            templates: env,
        })
    }
}

fn load_error(file: &str, e: &marked_yaml::LoadError) -> RuleError {
    use marked_yaml::LoadError::*;
    let (marker, message) = match e {
        TopLevelMustBeMapping(m) => (
            Some(*m),
            "a rule file must be a mapping of sections".to_string(),
        ),
        TopLevelMustBeSequence(m) => (Some(*m), "expected a list".to_string()),
        UnexpectedAnchor(m) => (
            Some(*m),
            "YAML anchors and aliases are not supported in rule files".to_string(),
        ),
        MappingKeyMustBeScalar(m) => (Some(*m), "mapping keys must be plain strings".to_string()),
        UnexpectedTag(m) => (
            Some(*m),
            "YAML tags are not supported in rule files".to_string(),
        ),
        ScanError(m, s) => (Some(*m), format!("YAML syntax error: {}", s.info())),
        DuplicateKey(inner) => (
            inner.key.span().start().copied(),
            format!(
                "duplicate key {:?} (first at line {})",
                inner.prev_key.as_str(),
                inner.prev_key.span().start().map(|m| m.line()).unwrap_or(0)
            ),
        ),
    };
    RuleError {
        pos: marker.map(|m| Pos {
            file: Arc::from(file),
            line: m.line(),
            column: m.column(),
        }),
        message,
    }
}

fn clean_serde_message(msg: &str) -> String {
    msg.replace("__marked_yaml__spanned__inner", "")
        .replace(".:", ":")
}

/// Convenience for tests and tools: label set from pairs.
pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
                .any(|m| m.contains("exactly one of `webhook`, `exec` or `kafka`")),
            "{e:?}"
        );
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
            e.iter().any(
                |m| m.starts_with("b.yaml:4:3: sla: P1 is defined twice (first at a.yaml:4:3)")
            ),
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
        let r = compile("correlate:\n  - name: only-x\n    match: ['alertname=\"X\"']\n")
            .expect("valid");
        let l = labels(&[("alertname", "Y"), ("instance", "i")]);
        let rule = r.correlate_rule(&l);
        assert_eq!(rule.name, "default");
        assert_eq!(rule.group_key(&l), r#"default{alertname="Y"}"#);
    }
}

#[cfg(test)]
mod index_tests {
    use super::*;
    use proptest::prelude::*;

    /// The index must give exactly what a plain in-order scan gives.
    fn scan<'a>(fm: &'a FirstMatch<usize>, l: &Labels) -> Option<&'a usize> {
        fm.iter()
            .find(|(m, _)| matcher::all_match(m, l))
            .map(|(_, v)| v)
    }

    proptest! {
        #[test]
        fn index_agrees_with_a_linear_scan(
            rules in proptest::collection::vec((0usize..4, 0usize..6, 0usize..3), 1..40),
            name in 0usize..6, sev in 0usize..3,
        ) {
            let names = ["A", "B", "C", "AB", "BC", "X"];
            let sevs = ["critical", "warning", "info"];
            let mut fm = FirstMatch::default();
            for (i, (kind, n, s)) in rules.iter().enumerate() {
                let text = match kind {
                    0 => format!("alertname=\"{}\"", names[*n]),
                    1 => format!("alertname=~\"{}.*\"", names[*n]),
                    2 => format!("severity=\"{}\"", sevs[*s]),
                    _ => format!("alertname=~\"{}|X\", severity!=\"{}\"", names[*n], sevs[*s]),
                };
                fm.push(matcher::parse(&text).expect("valid"), i);
            }
            fm.seal();
            let l = labels(&[("alertname", names[name]), ("severity", sevs[sev])]);
            prop_assert_eq!(fm.first(&l), scan(&fm, &l));
        }
    }
}
