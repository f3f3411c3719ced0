//! Building the incident sections: `correlate`, `classify`, `prioritize`
//! (urgency, impact, blast radius, defaults, matrix) and `sla`.

use std::sync::Arc;
use std::time::Duration;

use marked_yaml::{Node, Spanned};

use super::raw::{RawClassify, RawCorrelate, RawLevelRule, RawSla};
use super::{clean_serde_message, Builder};
use crate::model::{Level, Priority, CATEGORIES};
use crate::rules::correlate::{CorrelateRule, GroupBy};
use crate::rules::error::Pos;
use crate::rules::origin::Origin;
use crate::rules::prioritize::{BlastRadius, SlaTarget};

impl Builder {
    pub(super) fn correlate_section(&mut self, node: &Node) {
        for (raw, span, at) in self.items::<RawCorrelate>(node, "correlate") {
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
            let mut origin = Origin {
                name: Some(name.clone()),
                at: at.clone(),
                fields: Vec::new(),
            };
            for g in &raw.group_by {
                if g.as_str() == "..." {
                    all = true;
                } else if g.as_str().is_empty() {
                    self.err(g.span(), "group_by: empty label name");
                } else {
                    group.push(g.as_str().to_string());
                    if let Some(p) = self.pos_of(g.span()) {
                        origin.fields.push((format!("group_by.{}", g.as_str()), p));
                    }
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
            if let Some(t) = &raw.team {
                self.people_ref(super::people::RefKind::Team, t);
            }
            let team = raw.team.as_ref().map(|t| t.as_str().trim().to_string());
            if let (Some(matchers), Some(window), false) = (matchers, window, duplicate) {
                self.correlate.push_from(
                    matchers,
                    CorrelateRule {
                        name,
                        group_by,
                        window,
                        title,
                        team,
                    },
                    origin,
                );
            }
        }
    }

    pub(super) fn classify_section(&mut self, node: &Node) {
        for (raw, _, at) in self.items::<RawClassify>(node, "classify") {
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
            if let Some(t) = &raw.team {
                self.people_ref(super::people::RefKind::Team, t);
            }
            if let Some(m) = matchers {
                let origin = self.origin(raw.name.as_ref(), at.clone());
                self.classify.push_from(m, cat.to_string(), origin);
                self.classify_teams
                    .push(raw.team.as_ref().map(|t| t.as_str().trim().to_string()));
            }
        }
    }

    pub(super) fn prioritize_section(&mut self, node: &Node) {
        let Some(map) = node.as_mapping() else {
            self.err(node.span(), "`prioritize` must be a mapping (urgency, impact, default_impact, default_urgency, matrix)");
            return;
        };
        for (key, value) in map.iter() {
            match key.as_str() {
                "urgency" => {
                    for (raw, span, at) in self.items::<RawLevelRule>(value, "prioritize.urgency") {
                        if raw.impact.is_some() || raw.distinct.is_some() || raw.at_least.is_some() || !raw.rules.is_empty() {
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
                            let origin = self.origin(raw.name.as_ref(), at.clone());
                            self.prioritize.urgency.push_from(m, level, origin);
                        }
                    }
                }
                "impact" => {
                    for (raw, span, at) in self.items::<RawLevelRule>(value, "prioritize.impact") {
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
                                for r in &raw.rules {
                                    if let Some(p) = self.pos_of(r.span()) {
                                        self.blast_rule_refs.push((r.as_str().to_string(), p));
                                    }
                                }
                                if let (Some(level), Some(m)) = (level, m) {
                                    let mut origin = self.origin(raw.name.as_ref(), at.clone());
                                    if let Some(p) = self.pos_of(label.span()) {
                                        origin.fields.push(("distinct".into(), p));
                                    }
                                    self.prioritize.blast_radius.push(BlastRadius {
                                        matchers: m,
                                        label: label.as_str().to_string(),
                                        at_least: **n,
                                        impact: level,
                                        rules: raw.rules.iter().map(|r| r.as_str().to_string()).collect(),
                                        origin,
                                    });
                                }
                            }
                            (None, None) => {
                                if !raw.rules.is_empty() {
                                    self.err(&span, "prioritize.impact: `rules` (which correlate rules' incidents it applies to) is for blast-radius rules, with `distinct` and `at_least`");
                                    continue;
                                }
                                if let (Some(level), Some(m)) = (level, m) {
                                    let origin = self.origin(raw.name.as_ref(), at.clone());
                                    self.prioritize.impact.push_from(m, level, origin);
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

    pub(super) fn matrix(&mut self, key: &marked_yaml::types::MarkedScalarNode, value: &Node) {
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

    pub(super) fn sla_section(&mut self, node: &Node) {
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
}
