//! Rule files: YAML as SREs write it → one validated, compiled [`RuleSet`].
//!
//! Input: every `*.yaml`/`*.yml` file directly in a rule directory (sorted by
//! name), or the built-in default set. Output: a [`RuleSet`] whose matchers,
//! regexes and templates are compiled once; the hot path only looks things
//! up. Validation gathers *every* problem (unknown field, bad regex, bad
//! duration, duplicate rule name, unknown category, matrix gaps, ...), each
//! with `file:line:column`, before failing.
//!
//! Sections ([`SECTIONS`]; lists are evaluated in file order, first match
//! wins): `correlate`, `classify`, `prioritize`, `sla`, `inhibit`,
//! `maintenance`, `flapping`, `problems`, `actions`, `escalations`,
//! `storms`, `relate`, `heartbeats`. The
//! format is documented in `rules/README.md`.
//!
//! Layout: `build` turns YAML into the compiled parts: [`correlate`]
//! (group keys, titles), [`prioritize`] (levels, matrix, SLA, flapping,
//! problems), [`suppress`] (inhibition, maintenance windows, the
//! suppression check), [`actions`] (actions and escalations), [`storms`]
//! (storm and relate rules), each list
//! indexed by [`first_match`] and each rule carrying its [`origin`] (name
//! and `file:line:column`). For rule authors: [`lint`] (the warnings of
//! `rules check --strict`) and [`schema`] (the JSON Schema editors use,
//! `rules/schema.json`).

pub mod actions;
mod build;
pub mod correlate;
pub mod error;
pub mod first_match;
pub mod heartbeats;
pub mod lint;
pub mod origin;
pub mod people;
pub mod prioritize;
pub mod schema;
pub mod storms;
pub mod suppress;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::model::Labels;
use actions::{ActionDef, EscalationPolicy};
use correlate::{default_title, CorrelateRule, TitleContext};
use first_match::FirstMatch;
use prioritize::{Flapping, Prioritize, Problems, SlaTarget};
use storms::{default_storm_title, RelateRule, StormRule, StormTitleContext};
use suppress::{InhibitRule, MaintenanceWindow};

pub use error::{Pos, RuleError, RulesError};
pub use origin::Origin;

/// The rules shipped in `rules/default.yaml`, used when no rule directory exists.
pub const BUILTIN: &str = include_str!("../../rules/default.yaml");

/// The sections a rule file may have.
pub const SECTIONS: [&str; 16] = [
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
    "storms",
    "relate",
    "heartbeats",
    "people",
    "teams",
    "contacts",
];

/// Everything the engine needs from the rule files, compiled.
pub struct RuleSet {
    pub actions: Vec<ActionDef>,
    pub escalations: Vec<EscalationPolicy>,
    pub heartbeats: Vec<heartbeats::HeartbeatDef>,
    pub inhibit: Vec<InhibitRule>,
    pub maintenance: Vec<MaintenanceWindow>,
    pub flapping: Flapping,
    pub problems: Problems,
    pub correlate: FirstMatch<CorrelateRule>,
    pub fallback: CorrelateRule,
    pub classify: FirstMatch<String>,
    /// The `team` of each classify rule, by position in `classify`.
    pub classify_teams: Vec<Option<String>>,
    /// People, teams, schedules and contact actions (`people.yaml`).
    pub people: Arc<people::People>,
    pub prioritize: Prioritize,
    pub sla: [SlaTarget; 5],
    /// Major incidents over storms of incidents (`storms`).
    pub storms: Vec<StormRule>,
    /// Cause and symptom links between incidents (`relate`).
    pub relate: Vec<RelateRule>,
    /// Where the rules came from (a directory, or `built-in`).
    pub origin: String,
    /// Where the single settings were written (unset: built-in defaults).
    pub settings_at: SettingsAt,
    templates: minijinja::Environment<'static>,
}

/// Where the single settings of the rule files were written; `None` where
/// the built-in default applies.
#[derive(Debug, Clone, Default)]
pub struct SettingsAt {
    /// Per priority, P1..P5.
    pub sla: Vec<Option<Pos>>,
    pub flapping: Option<Pos>,
    pub problems: Option<Pos>,
    pub matrix: Option<Pos>,
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
        let mut b = build::Builder::default();
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

    /// True when no `correlate` rule matches every alert, so the implicit
    /// `default` rule can be reached.
    pub fn fallback_reachable(&self) -> bool {
        self.correlate.iter().all(|(m, _)| !m.is_empty())
    }

    /// Category of an alert; `other` when no rule matches.
    pub fn category(&self, labels: &Labels) -> &str {
        self.classify
            .first(labels)
            .map(String::as_str)
            .unwrap_or("other")
    }

    /// The owning team of an incident opened by an alert with `labels`
    /// under correlate rule `rule`: the rule's `team`, else the first
    /// matching classify rule's.
    pub fn team_of(&self, rule: &CorrelateRule, labels: &Labels) -> Option<String> {
        rule.team.clone().or_else(|| {
            self.classify
                .first_index(labels)
                .and_then(|i| self.classify_teams.get(i).cloned().flatten())
        })
    }

    /// Renders a compiled template (action bodies) with any serializable context.
    pub fn render(&self, name: &str, ctx: &impl Serialize) -> Result<String, minijinja::Error> {
        self.templates.get_template(name)?.render(ctx)
    }

    /// Renders a template where an undefined value is an error (a URL
    /// naming a ticket reference not captured yet must not be sent).
    pub fn render_strict(
        &self,
        name: &str,
        ctx: &impl Serialize,
    ) -> Result<String, minijinja::Error> {
        let mut env = self.templates.clone();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.get_template(name)?.render(ctx)
    }

    /// Whether the compiled template `name` is a JSON body (JSON-escaped;
    /// its output must parse).
    pub fn is_json_template(name: &str) -> bool {
        name.starts_with(build::JSON_TEMPLATE)
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

    /// Renders a storm rule's title template; falls back to a plain title.
    pub fn render_storm_title(&self, rule: &StormRule, ctx: &StormTitleContext<'_>) -> String {
        if let Some(name) = &rule.title {
            if let Ok(t) = self.templates.get_template(name) {
                match t.render(ctx) {
                    Ok(s) if !s.trim().is_empty() => return s.trim().to_string(),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(rule = %rule.name, error = %e, "storm title template failed; using the default title")
                    }
                }
            }
        }
        default_storm_title(ctx)
    }

    /// A major incident's title from its common labels and child count.
    pub fn storm_title(&self, rule: &StormRule, common: &Labels, count: usize) -> String {
        let by = rule.by_labels(common).unwrap_or_default();
        self.render_storm_title(
            rule,
            &StormTitleContext {
                labels: &by,
                group_labels: &by,
                rule: &rule.name,
                count,
            },
        )
    }

    /// The storm rules incidents of the correlate rule `rule` count for.
    pub fn storms_of<'a>(
        &'a self,
        rule: &'a str,
    ) -> impl Iterator<Item = (usize, &'a StormRule)> + 'a {
        self.storms
            .iter()
            .enumerate()
            .filter(move |(_, s)| s.covers(rule))
    }

    /// One line naming where the rules came from and how many of each.
    pub fn summary(&self) -> String {
        format!(
            "{}: {} correlate, {} classify, {} urgency, {} impact, {} blast-radius, {} inhibit rules, {} maintenance windows, {} storm and {} relate rules",
            self.origin,
            self.correlate.len(),
            self.classify.len(),
            self.prioritize.urgency.len(),
            self.prioritize.impact.len(),
            self.prioritize.blast_radius.len(),
            self.inhibit.len(),
            self.maintenance.len(),
            self.storms.len(),
            self.relate.len()
        )
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

/// Where the rules come from; a reload re-reads the same place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Dir(PathBuf),
    Builtin,
}

impl Source {
    /// `--rules DIR` if given, else `./rules` if it exists, else built-in.
    pub fn resolve(explicit: Option<PathBuf>) -> Source {
        match explicit {
            Some(d) => Source::Dir(d),
            None if Path::new("./rules").is_dir() => Source::Dir(PathBuf::from("./rules")),
            None => Source::Builtin,
        }
    }

    pub fn load(&self) -> Result<RuleSet, RulesError> {
        match self {
            Source::Dir(d) => RuleSet::load_dir(d),
            Source::Builtin => RuleSet::builtin(),
        }
    }
}

#[cfg(test)]
mod tests;
