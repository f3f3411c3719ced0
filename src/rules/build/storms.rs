//! Building the `storms` and `relate` sections. Names are unique per
//! section; the correlate rules they name are checked once every file is
//! read (in [`Builder::check_storm_refs`]).

use std::sync::Arc;
use std::time::Duration;

use marked_yaml::{Node, Spanned};

use super::raw::{RawRelate, RawStorm};
use super::Builder;
use crate::rules::error::{Pos, RuleError};
use crate::rules::origin::Origin;
use crate::rules::storms::{RelateRule, StormRule};

impl Builder {
    /// A duration that may be zero ("0s": no wait).
    fn wait(&mut self, raw: Option<&Spanned<String>>, default: Duration) -> Option<Duration> {
        let Some(raw) = raw else {
            return Some(default);
        };
        match humantime::parse_duration(raw.as_str()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(
                    raw.span(),
                    format!(
                        "bad duration {:?}: {e} (examples: 0s, 30s, 2m)",
                        raw.as_str()
                    ),
                );
                None
            }
        }
    }

    fn section_name(&mut self, which: &str, name: &Spanned<String>) -> Option<String> {
        let n = name.as_str().trim().to_string();
        if n.is_empty() {
            self.err(name.span(), format!("{which}: name must not be empty"));
            return None;
        }
        let seen = if which == "storms" {
            &mut self.storm_names
        } else {
            &mut self.relate_names
        };
        if let Some(prev) = seen.get(&n) {
            let msg = format!("duplicate {which} name {n:?} (first defined at {prev})");
            self.err(name.span(), msg);
            return None;
        }
        if let Some(p) = self.pos_of(name.span()) {
            let seen = if which == "storms" {
                &mut self.storm_names
            } else {
                &mut self.relate_names
            };
            seen.insert(n.clone(), p);
        }
        Some(n)
    }

    fn rule_ref(&mut self, which: &str, r: &Spanned<String>) -> String {
        if let Some(p) = self.pos_of(r.span()) {
            self.storm_rule_refs
                .push((which.to_string(), r.as_str().to_string(), p));
        }
        r.as_str().to_string()
    }

    pub(super) fn storms_section(&mut self, node: &Node) {
        for (raw, span, at) in self.items::<RawStorm>(node, "storms") {
            let name = self.section_name("storms", &raw.name);
            if raw.rules.is_empty() {
                self.err(
                    &span,
                    "storms: `rules` must name at least one correlate rule",
                );
            }
            if raw.by.is_empty() {
                self.err(&span, "storms: `by` must name at least one label");
            }
            if raw.by.iter().any(|b| b.as_str().trim().is_empty()) {
                self.err(&span, "storms: by: empty label name");
            }
            if *raw.at_least < 2 {
                self.err(
                    raw.at_least.span(),
                    "storms: at_least must be at least 2 (one incident is no storm)",
                );
            }
            let rules: Vec<String> = raw
                .rules
                .iter()
                .map(|r| self.rule_ref("storms", r))
                .collect();
            let within = self.duration(&raw.within);
            let hold = self.wait(raw.hold.as_ref(), Duration::from_secs(30));
            let Some(name) = name else { continue };
            let title = raw.title.as_ref().map(|t| {
                let tname = format!("storm/{name}");
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
            if let (Some(within), Some(hold)) = (within, hold) {
                self.storms.push(StormRule {
                    name: name.clone(),
                    rules,
                    by: raw
                        .by
                        .iter()
                        .map(|b| b.as_str().trim().to_string())
                        .collect(),
                    at_least: (*raw.at_least).max(2),
                    within,
                    hold,
                    title,
                    origin: Origin {
                        name: Some(name),
                        at,
                        fields: Vec::new(),
                    },
                });
            }
        }
    }

    pub(super) fn relate_section(&mut self, node: &Node) {
        for (raw, span, at) in self.items::<RawRelate>(node, "relate") {
            let name = self.section_name("relate", &raw.name);
            let cause = self.rule_ref("relate", &raw.cause);
            let symptom = self.rule_ref("relate", &raw.symptom);
            if raw.on.is_empty() {
                self.err(&span, "relate: `on` must name at least one label");
            }
            let mut on = Vec::new();
            for o in &raw.on {
                let text = o.as_str().trim();
                let (c, s) = text.split_once('=').unwrap_or((text, text));
                let (c, s) = (c.trim(), s.trim());
                if c.is_empty() || s.is_empty() {
                    self.err(
                        o.span(),
                        format!(
                            "relate: on: {text:?}: expected `label` or `cause_label=symptom_label`"
                        ),
                    );
                    continue;
                }
                on.push((c.to_string(), s.to_string()));
            }
            let delay = self.wait(raw.delay.as_ref(), Duration::from_secs(120));
            if let (Some(name), Some(delay)) = (name, delay) {
                self.relate.push(RelateRule {
                    name: name.clone(),
                    cause,
                    symptom,
                    on,
                    delay,
                    origin: Origin {
                        name: Some(name),
                        at,
                        fields: Vec::new(),
                    },
                });
            }
        }
    }

    /// Storm and relate rules name correlate rules that exist.
    pub(super) fn check_storm_refs(&mut self, known: &[String]) {
        for (section, name, pos) in std::mem::take(&mut self.storm_rule_refs) {
            if !known.contains(&name) {
                self.errors.push(RuleError {
                    pos: Some(pos),
                    message: format!(
                        "{section}: no correlate rule is named {name:?}; expected one of {}",
                        known.join(", ")
                    ),
                });
            }
        }
    }
}
