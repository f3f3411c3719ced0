//! The YAML builder: rule files → validated, compiled [`RuleSet`].
//!
//! Input: rule files as `(name, text)`. Output: a [`RuleSet`], or every
//! problem found, each at `file:line:column`. Each section is deserialized
//! item by item (see [`raw`]), so one bad item does not hide the errors in
//! the next; names that must be unique are checked across files; references
//! between sections (escalation levels naming actions) are checked once
//! every file is read; templates are compiled last.

mod actions;
mod incidents;
mod people;
mod raw;
pub(super) mod schema;
mod storms;
mod suppression;
mod templates;

pub(super) use templates::JSON as JSON_TEMPLATE;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use marked_yaml::{Node, Spanned};
use serde::Deserialize;

use super::correlate::CorrelateRule;
use super::error::{Pos, RuleError, RulesError};
use super::first_match::FirstMatch;
use super::origin::Origin;
use super::prioritize::{Flapping, Prioritize, Problems, SlaTarget, DEFAULT_SLA};
use super::{RuleSet, SettingsAt, SECTIONS};
use crate::model::matcher::{self, Matcher};
use crate::model::Level;
use crate::rules::actions::{ActionDef, EscalationPolicy};
use crate::rules::suppress::{InhibitRule, MaintenanceWindow};
use raw::Section;

#[derive(Default)]
pub(super) struct Builder {
    errors: Vec<RuleError>,
    actions: Vec<ActionDef>,
    action_names: HashMap<String, Pos>,
    escalations: Vec<EscalationPolicy>,
    escalation_names: HashMap<String, Pos>,
    heartbeats: Vec<crate::rules::heartbeats::HeartbeatDef>,
    heartbeat_names: HashMap<String, Pos>,
    /// Action names escalation levels refer to, checked when all files are read.
    action_refs: Vec<(String, Pos)>,
    /// Actions without `on`: only escalation levels can run them.
    triggerless: Vec<(String, Pos)>,
    /// Correlate rule names blast-radius rules are scoped to, checked when
    /// all files are read.
    blast_rule_refs: Vec<(String, Pos)>,
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
    storms: Vec<crate::rules::storms::StormRule>,
    storm_names: HashMap<String, Pos>,
    relate: Vec<crate::rules::storms::RelateRule>,
    relate_names: HashMap<String, Pos>,
    /// (section, correlate rule name) storm and relate rules refer to.
    storm_rule_refs: Vec<(String, String, Pos)>,
    /// Each file's text, to place errors inside block-scalar templates.
    texts: Vec<String>,
    /// The team of each classify rule, in the order of `classify`.
    classify_teams: Vec<Option<String>>,
    people: crate::rules::people::People,
    people_names: people::PeopleNames,
    /// Email actions without `to` and webhooks without a URL: only a
    /// `contacts` action may be (the paged person's address is used).
    needs_contact: Vec<(String, Pos, &'static str)>,
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

    /// A rule's origin: its optional `name` and where its item starts.
    fn origin(&self, name: Option<&Spanned<String>>, at: Option<Pos>) -> Origin {
        Origin {
            name: name.map(|n| n.as_str().trim().to_string()),
            at,
            fields: Vec::new(),
        }
    }

    fn err(&mut self, span: &marked_yaml::Span, message: impl Into<String>) {
        let pos = self.pos_of(span);
        self.errors.push(RuleError {
            pos,
            message: message.into(),
        });
    }

    /// Where line `line` of the template written at `pos` is in its file.
    fn template_pos(&self, pos: &Pos, line: Option<usize>) -> Pos {
        let Some(line) = line else {
            return pos.clone();
        };
        let block = self
            .files
            .iter()
            .position(|f| *f == pos.file)
            .and_then(|i| self.texts.get(i))
            .and_then(|t| t.lines().nth(pos.line.saturating_sub(1)))
            .and_then(|l| l.get(pos.column.saturating_sub(1)..))
            .is_some_and(|rest| rest.starts_with('|') || rest.starts_with('>'));
        templates::at_line(pos, line, block)
    }

    pub(super) fn file(&mut self, index: usize, file: Arc<str>, text: &str) {
        self.files.push(file.clone());
        self.texts.push(text.to_string());
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
                "storms" => self.storms_section(value),
                "relate" => self.relate_section(value),
                "heartbeats" => self.heartbeats_section(value),
                "people" => self.people_section(value),
                "teams" => self.teams_section(value),
                "contacts" => self.contacts_section(key, value),
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

    /// Deserializes each item of a list section separately; with each, its
    /// span (for errors about the item) and where it starts (its first key,
    /// for the tools that name rules).
    fn items<T: for<'de> Deserialize<'de>>(
        &mut self,
        node: &Node,
        section: &str,
    ) -> Vec<(T, marked_yaml::Span, Option<Pos>)> {
        let Some(seq) = node.as_sequence() else {
            self.err(node.span(), format!("`{section}` must be a list"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in seq.iter() {
            match marked_yaml::from_node::<T>(item) {
                Ok(v) => {
                    let first_key = item
                        .as_mapping()
                        .and_then(|m| m.keys().next())
                        .map(|k| *k.span())
                        .unwrap_or(*item.span());
                    out.push((v, *item.span(), self.pos_of(&first_key)));
                }
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
            Section::Heartbeat => &mut self.heartbeat_names,
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

    pub(super) fn finish(mut self, origin: &str) -> Result<RuleSet, RulesError> {
        self.check_people_refs();
        for (name, pos, message) in std::mem::take(&mut self.needs_contact) {
            if !self.contact_action(&name) {
                self.errors.push(RuleError {
                    pos: Some(pos),
                    message: message.into(),
                });
            }
        }
        for (name, pos) in std::mem::take(&mut self.triggerless) {
            if !self.action_refs.iter().any(|(n, _)| *n == name) && !self.contact_action(&name) {
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
        let known: Vec<String> = self
            .correlate
            .iter()
            .map(|(_, r)| r.name.clone())
            .chain(std::iter::once(CorrelateRule::fallback().name))
            .collect();
        self.check_storm_refs(&known);
        let storm_names: Vec<String> = self.storms.iter().map(|s| s.name.clone()).collect();
        for (name, pos) in std::mem::take(&mut self.blast_rule_refs) {
            if !known.contains(&name) && !storm_names.contains(&name) {
                self.errors.push(RuleError {
                    pos: Some(pos),
                    message: format!(
                        "prioritize.impact: rules: no correlate or storm rule is named {name:?}; expected one of {}",
                        known.iter().chain(&storm_names).cloned().collect::<Vec<_>>().join(", ")
                    ),
                });
            }
        }
        let mut env = templates::environment();
        let templates = std::mem::take(&mut self.templates);
        for (name, source, pos) in &templates {
            if let Err(e) = env.add_template_owned(name.clone(), source.clone()) {
                self.errors.push(RuleError {
                    pos: Some(self.template_pos(pos, e.line())),
                    message: format!("bad {} template: {e}", templates::kind(name)),
                });
            } else if let Err(e) = templates::try_sample(&env, name) {
                self.errors.push(RuleError {
                    pos: Some(self.template_pos(pos, e.line)),
                    message: format!(
                        "{} template fails on a sample {}: {}",
                        templates::kind(name),
                        if name.starts_with("correlate/") {
                            "alert"
                        } else if name.starts_with("storm/") {
                            "storm"
                        } else {
                            "incident event"
                        },
                        e.message
                    ),
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
        let settings_at = SettingsAt {
            sla: self
                .sla
                .iter()
                .map(|s| s.as_ref().map(|(_, p)| p.clone()))
                .collect(),
            flapping: self.flapping_at,
            problems: self.problems_at,
            matrix: self.matrix_at,
        };
        Ok(RuleSet {
            settings_at,
            actions: self.actions,
            escalations: self.escalations,
            heartbeats: self.heartbeats,
            inhibit: self.inhibit,
            maintenance: self.maintenance,
            flapping: self.flapping,
            problems: self.problems,
            correlate: self.correlate,
            fallback: CorrelateRule::fallback(),
            classify: self.classify,
            classify_teams: self.classify_teams,
            people: Arc::new(self.people),
            prioritize: self.prioritize,
            sla,
            storms: self.storms,
            relate: self.relate,
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
