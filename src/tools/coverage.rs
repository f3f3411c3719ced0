//! Rule coverage (`rules test --coverage`): which rules the tests
//! exercised.
//!
//! Input: the change sets an in-memory engine produced while tests ran
//! ([`Coverage::observe`]). Output: per section and per rule whether any
//! test exercised it ([`CoverageReport`]), and the share covered.
//! Exercised means the rule decided something: the correlate, classify,
//! urgency or impact rule an alert in an incident took; a blast-radius
//! rule that reached its threshold in an incident; an inhibit rule or
//! maintenance window that kept an alert out; an action that got a job; an
//! escalation policy that escalated an incident; an SLA target an incident
//! was held to; flapping detected; a problem candidate flagged. Settings
//! the rule files do not write (built-in SLA targets, default flapping)
//! are not counted.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

use crate::engine::{ChangeSet, Event};
use crate::model::{matcher, IncidentKey, Priority, Reason, TimelineKind};
use crate::rules::{Pos, RuleSet};

/// What the tests of one rule set exercised so far.
pub struct Coverage {
    rules: Arc<RuleSet>,
    correlate: Vec<u64>,
    classify: Vec<u64>,
    urgency: Vec<u64>,
    impact: Vec<u64>,
    blast: Vec<u64>,
    inhibit: Vec<u64>,
    maintenance: Vec<u64>,
    actions: Vec<u64>,
    escalations: Vec<u64>,
    sla: [u64; 5],
    flapping: u64,
    problems: u64,
    /// Per incident: its correlate rule and, per blast-radius rule, the
    /// distinct values seen (up to the rule's threshold).
    incidents: HashMap<IncidentKey, (String, Vec<HashSet<String>>)>,
}

impl Coverage {
    pub fn new(rules: Arc<RuleSet>) -> Coverage {
        let n = |len: usize| vec![0u64; len];
        Coverage {
            correlate: n(rules.correlate.len()),
            classify: n(rules.classify.len()),
            urgency: n(rules.prioritize.urgency.len()),
            impact: n(rules.prioritize.impact.len()),
            blast: n(rules.prioritize.blast_radius.len()),
            inhibit: n(rules.inhibit.len()),
            maintenance: n(rules.maintenance.len()),
            actions: n(rules.actions.len()),
            escalations: n(rules.escalations.len()),
            sla: [0; 5],
            flapping: 0,
            problems: 0,
            incidents: HashMap::new(),
            rules,
        }
    }

    /// The rules this coverage is about.
    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// Counts what one change set shows the rules doing.
    pub fn observe(&mut self, ws: &ChangeSet) {
        let rules = self.rules.clone();
        let blast = &rules.prioritize.blast_radius;
        for i in &ws.incidents {
            self.sla[i.priority.idx()] += 1;
            self.incidents
                .entry(i.id)
                .or_insert_with(|| (i.rule.clone(), vec![HashSet::new(); blast.len()]));
        }
        for (key, rec) in &ws.alerts {
            let labels = &rec.alert.labels;
            hit(&mut self.correlate, rules.correlate.first_index(labels));
            hit(&mut self.classify, rules.classify.first_index(labels));
            hit(
                &mut self.urgency,
                rules.prioritize.urgency.first_index(labels),
            );
            hit(
                &mut self.impact,
                rules.prioritize.impact.first_index(labels),
            );
            let Some((rule, seen)) = self.incidents.get_mut(key) else {
                continue;
            };
            for (i, b) in blast.iter().enumerate() {
                if !b.applies_to(rule) || !matcher::all_match(&b.matchers, labels) {
                    continue;
                }
                if let Some(v) = labels.get(&b.label) {
                    if seen[i].len() < b.at_least {
                        seen[i].insert(v.to_string());
                    }
                    if seen[i].len() >= b.at_least {
                        self.blast[i] += 1;
                    }
                }
            }
        }
        // A major incident's blast radius spans its children's alerts,
        // which were seen before it existed: its timeline names the count.
        for (key, _, t) in &ws.timeline {
            let Some((rule, _)) = self.incidents.get(key) else {
                continue;
            };
            if !rules.storms.iter().any(|s| &s.name == rule) {
                continue;
            }
            let Some(rest) = t.message.split("blast radius: ").nth(1) else {
                continue;
            };
            let mut words = rest.split_whitespace();
            let (Some(n), Some("distinct"), Some(label)) = (
                words.next().and_then(|n| n.parse::<usize>().ok()),
                words.next(),
                words.next(),
            ) else {
                continue;
            };
            for (i, b) in blast.iter().enumerate() {
                if b.label == label && b.applies_to(rule) && b.at_least <= n {
                    self.blast[i] += 1;
                }
            }
        }
        for s in &ws.suppressed {
            let by = &s.suppression.by;
            match s.suppression.reason {
                Reason::Inhibit => hit(
                    &mut self.inhibit,
                    rules.inhibit.iter().position(|r| &r.name == by),
                ),
                Reason::Maintenance => hit(
                    &mut self.maintenance,
                    rules.maintenance.iter().position(|w| &w.name == by),
                ),
                Reason::Silence | Reason::Flapping => {}
            }
        }
        for j in &ws.jobs {
            hit(
                &mut self.actions,
                rules.actions.iter().position(|a| a.name == j.action),
            );
        }
        for e in &ws.events {
            match e {
                Event::Escalated { policy, .. } => hit(
                    &mut self.escalations,
                    rules.escalations.iter().position(|p| &p.name == policy),
                ),
                Event::ProblemCandidate => self.problems += 1,
                _ => {}
            }
        }
        if ws
            .timeline
            .iter()
            .any(|(_, _, t)| t.kind == TimelineKind::Flapping)
        {
            self.flapping += 1;
        }
    }

    /// Adds what another run over the same rules exercised.
    pub fn merge(&mut self, other: &Coverage) {
        fn add(a: &mut [u64], b: &[u64]) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        add(&mut self.correlate, &other.correlate);
        add(&mut self.classify, &other.classify);
        add(&mut self.urgency, &other.urgency);
        add(&mut self.impact, &other.impact);
        add(&mut self.blast, &other.blast);
        add(&mut self.inhibit, &other.inhibit);
        add(&mut self.maintenance, &other.maintenance);
        add(&mut self.actions, &other.actions);
        add(&mut self.escalations, &other.escalations);
        add(&mut self.sla, &other.sla);
        self.flapping += other.flapping;
        self.problems += other.problems;
    }

    /// Per section, per rule: covered or not.
    pub fn report(&self) -> CoverageReport {
        let r = &self.rules;
        let item = |name: String, at: Option<&Pos>, hits: u64| Item {
            name,
            at: at.map(ToString::to_string),
            covered: hits > 0,
        };
        let mut sections = vec![
            Section {
                section: "correlate".into(),
                items: r
                    .correlate
                    .entries()
                    .zip(&self.correlate)
                    .map(|((_, c, o), h)| item(c.name.clone(), o.at.as_ref(), *h))
                    .collect(),
            },
            Section {
                section: "classify".into(),
                items: r
                    .classify
                    .entries()
                    .enumerate()
                    .zip(&self.classify)
                    .map(|((i, (_, c, o)), h)| {
                        item(format!("{} → {c}", o.label(i)), o.at.as_ref(), *h)
                    })
                    .collect(),
            },
            Section {
                section: "prioritize.urgency".into(),
                items: r
                    .prioritize
                    .urgency
                    .entries()
                    .enumerate()
                    .zip(&self.urgency)
                    .map(|((i, (_, l, o)), h)| {
                        item(
                            format!("{} → {}", o.label(i), l.as_str()),
                            o.at.as_ref(),
                            *h,
                        )
                    })
                    .collect(),
            },
            Section {
                section: "prioritize.impact".into(),
                items: r
                    .prioritize
                    .impact
                    .entries()
                    .enumerate()
                    .zip(&self.impact)
                    .map(|((i, (_, l, o)), h)| {
                        item(
                            format!("{} → {}", o.label(i), l.as_str()),
                            o.at.as_ref(),
                            *h,
                        )
                    })
                    .collect(),
            },
            Section {
                section: "prioritize.impact (blast radius)".into(),
                items: r
                    .prioritize
                    .blast_radius
                    .iter()
                    .enumerate()
                    .zip(&self.blast)
                    .map(|((i, b), h)| {
                        item(
                            format!(
                                "{}: {} distinct {} → {}",
                                b.origin.label(i),
                                b.at_least,
                                b.label,
                                b.impact.as_str()
                            ),
                            b.origin.at.as_ref(),
                            *h,
                        )
                    })
                    .collect(),
            },
            Section {
                section: "sla".into(),
                items: Priority::ALL
                    .iter()
                    .zip(&self.sla)
                    .filter_map(|(p, h)| {
                        let at = r.settings_at.sla.get(p.idx())?.as_ref()?;
                        Some(item(p.to_string(), Some(at), *h))
                    })
                    .collect(),
            },
            Section {
                section: "inhibit".into(),
                items: r
                    .inhibit
                    .iter()
                    .zip(&self.inhibit)
                    .map(|(x, h)| item(x.name.clone(), x.at.as_ref(), *h))
                    .collect(),
            },
            Section {
                section: "maintenance".into(),
                items: r
                    .maintenance
                    .iter()
                    .zip(&self.maintenance)
                    .map(|(x, h)| item(x.name.clone(), x.at.as_ref(), *h))
                    .collect(),
            },
        ];
        if let Some(at) = &r.settings_at.flapping {
            sections.push(Section {
                section: "flapping".into(),
                items: vec![item("flapping".into(), Some(at), self.flapping)],
            });
        }
        if let Some(at) = &r.settings_at.problems {
            sections.push(Section {
                section: "problems".into(),
                items: vec![item("problems".into(), Some(at), self.problems)],
            });
        }
        sections.push(Section {
            section: "actions".into(),
            items: r
                .actions
                .iter()
                .zip(&self.actions)
                .map(|(x, h)| item(x.name.clone(), x.at.as_ref(), *h))
                .collect(),
        });
        sections.push(Section {
            section: "escalations".into(),
            items: r
                .escalations
                .iter()
                .zip(&self.escalations)
                .map(|(x, h)| item(x.name.clone(), x.at.as_ref(), *h))
                .collect(),
        });
        sections.retain(|s| !s.items.is_empty());
        CoverageReport {
            rules: r.origin.clone(),
            sections,
        }
    }
}

fn hit(counts: &mut [u64], i: Option<usize>) {
    if let Some(c) = i.and_then(|i| counts.get_mut(i)) {
        *c += 1;
    }
}

/// Coverage of one rule set, per section and rule.
#[derive(Debug, Clone, Serialize)]
pub struct CoverageReport {
    pub rules: String,
    pub sections: Vec<Section>,
}

/// One section of the rule files.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    pub section: String,
    pub items: Vec<Item>,
}

/// One rule (or setting) and whether a test exercised it.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub name: String,
    pub at: Option<String>,
    pub covered: bool,
}

impl CoverageReport {
    pub fn covered(&self) -> usize {
        self.sections
            .iter()
            .flat_map(|s| &s.items)
            .filter(|i| i.covered)
            .count()
    }

    pub fn total(&self) -> usize {
        self.sections.iter().map(|s| s.items.len()).sum()
    }

    /// Share covered, in percent (100 for rules without any rule).
    pub fn percent(&self) -> f64 {
        match self.total() {
            0 => 100.0,
            t => self.covered() as f64 * 100.0 / t as f64,
        }
    }

    /// Per section `covered/total`, then every rule: `[x]` covered, `[ ]` not.
    pub fn render(&self) -> String {
        let mut out = format!("coverage of {}:\n", self.rules);
        for s in &self.sections {
            let c = s.items.iter().filter(|i| i.covered).count();
            out.push_str(&format!("  {}: {c}/{}\n", s.section, s.items.len()));
            for i in &s.items {
                out.push_str(&format!(
                    "    [{}] {}{}\n",
                    if i.covered { "x" } else { " " },
                    i.name,
                    i.at.as_ref().map(|a| format!("  {a}")).unwrap_or_default()
                ));
            }
        }
        out.push_str(&format!(
            "  total: {}/{} rules covered ({:.1}%)\n",
            self.covered(),
            self.total(),
            self.percent()
        ));
        out
    }
}
