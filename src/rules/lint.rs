//! The warnings of `rules check --strict`: rule files that load but cannot
//! do what their author meant.
//!
//! Input: a compiled [`RuleSet`]. Output: every warning, each at the
//! `file:line:column` of the rule (or field) it is about, sorted by
//! position. Nothing here fails a load; `rules check` prints the warnings
//! and `--strict` turns them into exit code 1. Checked:
//!
//! - **dead rules**: in a first-match list (`correlate`, `classify`,
//!   `prioritize.urgency`, `prioritize.impact`, `escalations`), a rule that
//!   an earlier rule always wins over, because every alert this one
//!   matches also matches the earlier one;
//! - **blast radius that cannot count**: a blast-radius rule counting a
//!   label that a correlate rule in its scope groups by, so in that rule's
//!   incidents the count is always 1;
//! - **fragile groups**: a `group_by` label that the rule's matchers do not
//!   require and that is not among the labels alerts commonly carry
//!   ([`COMMON_LABELS`]), so alerts without it share one group;
//! - **actions and escalation policies that never run**: limited to
//!   priorities the matrix never gives or categories no rule gives, or
//!   listening only to `escalated` with no escalation policy to fire it,
//!   or named only by levels of policies that never apply.
//!
//! The reasoning about matchers is sound but not complete: a warning means
//! the problem is certain (for label values without line breaks); a rule
//! without a warning may still be dead, e.g. when two earlier rules
//! together cover it. Regexes are compared through their literal
//! prefixes: `alertname=~"Kube.*"` covers `alertname=~"KubePod.*|KubeJob"`.

use std::collections::BTreeSet;

use regex_syntax::hir::literal::Extractor;
use regex_syntax::hir::{Class, Hir, HirKind};

use super::correlate::GroupBy;
use super::error::{Pos, RuleError};
use super::origin::Origin;
use super::RuleSet;
use crate::model::matcher::{Matcher, Op};
use crate::model::{Priority, Trigger, CATEGORIES};

/// Labels Prometheus, node_exporter, kube-state-metrics and common alerting
/// rules put on most alerts; grouping by them needs no matcher.
pub const COMMON_LABELS: &[&str] = &[
    "alertname",
    "severity",
    "instance",
    "job",
    "namespace",
    "pod",
    "container",
    "node",
    "service",
    "env",
    "environment",
    "cluster",
    "region",
    "zone",
    "team",
    "app",
    "deployment",
    "statefulset",
    "daemonset",
    "job_name",
    "endpoint",
    "device",
    "mountpoint",
];

/// Every warning for `rules`, sorted by position.
pub fn lint(rules: &RuleSet) -> Vec<RuleError> {
    let mut out = Vec::new();
    dead_rules(rules, &mut out);
    blast_radius(rules, &mut out);
    group_by(rules, &mut out);
    never_run(rules, &mut out);
    out.sort_by(|a, b| {
        let key = |e: &RuleError| e.pos.as_ref().map(|p| (p.file.clone(), p.line, p.column));
        key(a).cmp(&key(b))
    });
    out
}

fn warn(out: &mut Vec<RuleError>, pos: Option<&Pos>, message: String) {
    out.push(RuleError {
        pos: pos.cloned(),
        message,
    });
}

fn at(o: &Origin) -> String {
    match &o.at {
        Some(p) => format!(" ({p})"),
        None => String::new(),
    }
}

/// One rule of a first-match list, as the dead-rule check sees it.
struct Entry<'a> {
    matchers: &'a [Matcher],
    /// Escalation policies also filter on priority; empty: any.
    priorities: &'a [Priority],
    origin: &'a Origin,
    label: String,
}

fn dead_rules(rules: &RuleSet, out: &mut Vec<RuleError>) {
    let lists: [(&str, Vec<Entry<'_>>); 4] = [
        (
            "correlate rule",
            rules
                .correlate
                .entries()
                .enumerate()
                .map(|(i, (m, r, o))| Entry {
                    matchers: m,
                    priorities: &[],
                    origin: o,
                    label: if r.name.is_empty() {
                        o.label(i)
                    } else {
                        r.name.clone()
                    },
                })
                .collect(),
        ),
        (
            "classify rule",
            first_match_entries(rules.classify.entries()),
        ),
        (
            "prioritize.urgency rule",
            first_match_entries(rules.prioritize.urgency.entries()),
        ),
        (
            "prioritize.impact rule",
            first_match_entries(rules.prioritize.impact.entries()),
        ),
    ];
    let escalation_origins: Vec<Origin> = rules
        .escalations
        .iter()
        .map(|p| Origin {
            name: Some(p.name.clone()),
            at: p.at.clone(),
            fields: Vec::new(),
        })
        .collect();
    let escalations: Vec<Entry<'_>> = rules
        .escalations
        .iter()
        .zip(&escalation_origins)
        .map(|(p, o)| Entry {
            matchers: &p.matchers,
            priorities: &p.priorities,
            origin: o,
            label: p.name.clone(),
        })
        .collect();
    for (what, list) in lists
        .iter()
        .chain(std::iter::once(&("escalation policy", escalations)))
    {
        for (j, later) in list.iter().enumerate() {
            if let Some(earlier) = list[..j].iter().find(|e| covers(e, later)) {
                let why = if earlier.matchers.is_empty() && earlier.priorities.is_empty() {
                    "matches every alert".to_string()
                } else {
                    "matches every alert this one matches".to_string()
                };
                warn(
                    out,
                    later.origin.at.as_ref(),
                    format!(
                        "{what} {} can never apply: {what} {}{} comes first and {why}",
                        later.label,
                        earlier.label,
                        at(earlier.origin)
                    ),
                );
            }
        }
    }
}

fn first_match_entries<'a, T: 'a>(
    entries: impl Iterator<Item = (&'a [Matcher], &'a T, &'a Origin)>,
) -> Vec<Entry<'a>> {
    entries
        .enumerate()
        .map(|(i, (m, _, o))| Entry {
            matchers: m,
            priorities: &[],
            origin: o,
            label: o.label(i),
        })
        .collect()
}

/// True if `earlier` takes every alert `later` would take.
fn covers(earlier: &Entry<'_>, later: &Entry<'_>) -> bool {
    let priorities = earlier.priorities.is_empty()
        || (!later.priorities.is_empty()
            && later
                .priorities
                .iter()
                .all(|p| earlier.priorities.contains(p)));
    priorities && earlier.matchers.iter().all(|m| implied(later.matchers, m))
}

fn blast_radius(rules: &RuleSet, out: &mut Vec<RuleError>) {
    let fallback = rules.fallback.clone();
    let fallback_origin = Origin::default();
    let fallback_entry: Vec<(&[Matcher], _, &Origin)> = if rules.fallback_reachable() {
        vec![(&[][..], &fallback, &fallback_origin)]
    } else {
        Vec::new()
    };
    for (i, b) in rules.prioritize.blast_radius.iter().enumerate() {
        if b.at_least < 2 {
            continue;
        }
        let grouping: Vec<String> = rules
            .correlate
            .entries()
            .chain(fallback_entry.iter().copied())
            .filter(|(matchers, c, _)| {
                b.applies_to(&c.name)
                    && !disjoint(&b.matchers, matchers)
                    && match &c.group_by {
                        GroupBy::All => true,
                        GroupBy::Labels(names) => names.contains(&b.label),
                    }
            })
            .map(|(_, c, o)| format!("{}{}", c.name, at(o)))
            .collect();
        if grouping.is_empty() {
            continue;
        }
        let (rules_word, verb) = if grouping.len() == 1 {
            ("rule", "groups")
        } else {
            ("rules", "group")
        };
        warn(
            out,
            b.origin.field("distinct"),
            format!(
                "blast-radius rule {} counts distinct `{}` values, but correlate {rules_word} {} {verb} by `{}`: each of their incidents holds one value, so the count never reaches {} there; limit the rule with `rules:` to correlate rules that group wider, or count another label",
                b.origin.label(i),
                b.label,
                grouping.join(", "),
                b.label,
                b.at_least
            ),
        );
    }
}

fn group_by(rules: &RuleSet, out: &mut Vec<RuleError>) {
    for (matchers, c, o) in rules.correlate.entries() {
        let GroupBy::Labels(names) = &c.group_by else {
            continue;
        };
        for l in names {
            let required = matchers
                .iter()
                .any(|m| &m.name == l && !m.matches_value(""));
            let key = format!("group_by.{l}");
            let written = o.fields.iter().any(|(k, _)| *k == key);
            if required || !written || COMMON_LABELS.contains(&l.as_str()) {
                continue;
            }
            warn(
                out,
                o.field(&key),
                format!(
                    "correlate rule {}: group_by label `{l}` is not required by the rule's matchers and is not a label alerts commonly carry, so every alert without it lands in one group; add a matcher such as '{l}=~\".+\"', or group by another label",
                    c.name
                ),
            );
        }
    }
}

fn never_run(rules: &RuleSet, out: &mut Vec<RuleError>) {
    let m = &rules.prioritize.matrix;
    let priorities: BTreeSet<Priority> = m.iter().flatten().copied().collect();
    let mut categories: BTreeSet<&str> = rules.classify.iter().map(|(_, c)| c.as_str()).collect();
    if rules.classify.iter().all(|(m, _)| !m.is_empty()) {
        categories.insert("other");
    }
    let gives = |ps: &[Priority]| ps.is_empty() || ps.iter().any(|p| priorities.contains(p));
    let names = |ps: &[Priority]| {
        ps.iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    // Policies that can apply: some priority they take is reachable and no
    // earlier policy takes all their incidents.
    let mut live = Vec::new();
    for (j, p) in rules.escalations.iter().enumerate() {
        if !gives(&p.priorities) {
            warn(
                out,
                p.at.as_ref(),
                format!(
                    "escalation policy {} never applies: it is limited to {}, which the matrix never gives",
                    p.name,
                    names(&p.priorities)
                ),
            );
            continue;
        }
        let shadowed = rules.escalations[..j].iter().any(|e| {
            (e.priorities.is_empty()
                || (!p.priorities.is_empty()
                    && p.priorities.iter().all(|x| e.priorities.contains(x))))
                && e.matchers.iter().all(|m| implied(&p.matchers, m))
        });
        if !shadowed {
            live.push(p);
        }
    }
    for a in &rules.actions {
        let why = if !gives(&a.priorities) {
            Some(format!(
                "it is limited to {}, which the matrix never gives",
                names(&a.priorities)
            ))
        } else if !a.categories.is_empty()
            && a.categories
                .iter()
                .all(|c| !categories.contains(c.as_str()))
        {
            Some(format!(
                "it is limited to the categories {}, which no classify rule gives (known: {})",
                a.categories.join(", "),
                CATEGORIES.join(", ")
            ))
        } else {
            let by_trigger =
                a.on.iter()
                    .any(|t| *t != Trigger::Escalated || !live.is_empty());
            // A `contacts` action runs for the pages of levels that page.
            let contact = crate::rules::people::Channel::ALL
                .iter()
                .any(|c| rules.people.contacts.action(*c) == Some(a.name.as_str()));
            let by_level = live.iter().any(|p| {
                p.levels
                    .iter()
                    .any(|l| l.actions.contains(&a.name) || (contact && l.target.is_some()))
            });
            match (by_trigger, by_level, a.on.is_empty()) {
                (false, false, true) => Some(
                    "it has no `on` triggers and only escalation policies that never apply name it"
                        .to_string(),
                ),
                (false, false, false) => Some(
                    "it runs only on `escalated`, and no escalation policy can escalate an incident"
                        .to_string(),
                ),
                _ => None,
            }
        };
        if let Some(why) = why {
            warn(
                out,
                a.at.as_ref(),
                format!("action {} never runs: {why}", a.name),
            );
        }
    }
}

// ---------------------------------------------------------------------------
// What matchers imply.

/// True if every label set satisfying all of `given` satisfies `m`.
pub(crate) fn implied(given: &[Matcher], m: &Matcher) -> bool {
    let mut on = given.iter().filter(|g| g.name == m.name).peekable();
    if on.peek().is_none() {
        // The label is unconstrained (any value, or missing = "").
        return universal(m);
    }
    on.any(|g| implies(g, m))
}

/// True if every value `g` accepts, `m` accepts.
fn implies(g: &Matcher, m: &Matcher) -> bool {
    if (g.op == m.op && g.value == m.value) || universal(m) {
        return true;
    }
    if m.op == Op::NotEq {
        return !g.matches_value(&m.value);
    }
    if let Some(values) = finite(g) {
        return values.iter().all(|v| m.matches_value(v));
    }
    if g.op == Op::Re && m.op == Op::Re {
        if non_empty(m) && !g.matches_value("") {
            return true;
        }
        if let (Some(lits), Some(branches)) = (literals(&g.value), universal_prefixes(&m.value)) {
            return lits.iter().all(|(l, exact)| {
                (*exact && m.matches_value(l)) || branches.iter().any(|b| l.starts_with(b.as_str()))
            });
        }
    }
    false
}

/// True if no label set can satisfy both lists: some label is limited to a
/// finite set of values on one side, none of which the other side accepts.
pub(crate) fn disjoint(a: &[Matcher], b: &[Matcher]) -> bool {
    let all: Vec<&Matcher> = a.iter().chain(b).collect();
    all.iter().any(|m| {
        finite(m).is_some_and(|values| {
            values.iter().all(|v| {
                all.iter()
                    .filter(|x| x.name == m.name)
                    .any(|x| !x.matches_value(v))
            })
        })
    })
}

/// The values a matcher accepts, when they are a finite set: `="v"`, or
/// `=~` over an alternation of literals.
fn finite(m: &Matcher) -> Option<Vec<String>> {
    match m.op {
        Op::Eq => Some(vec![m.value.clone()]),
        Op::Re => {
            let lits = literals(&m.value)?;
            lits.iter()
                .all(|(_, exact)| *exact)
                .then(|| lits.into_iter().map(|(l, _)| l).collect())
        }
        Op::NotEq | Op::NotRe => None,
    }
}

/// True if the matcher accepts every value (`=~".*"`).
fn universal(m: &Matcher) -> bool {
    m.op == Op::Re && universal_prefixes(&m.value).is_some_and(|p| p.iter().any(String::is_empty))
}

/// True if the matcher accepts every non-empty value (`=~".+"`).
fn non_empty(m: &Matcher) -> bool {
    m.op == Op::Re && matches!(m.value.as_str(), ".+" | "(.+)" | "(?:.+)")
}

/// Literal prefixes every match of `re` starts with, each marked exact
/// when the match is that literal and nothing more; `None` when there is
/// no finite set of them.
fn literals(re: &str) -> Option<Vec<(String, bool)>> {
    let hir = regex_syntax::Parser::new().parse(re).ok()?;
    let seq = Extractor::new().extract(&hir);
    seq.literals()?
        .iter()
        .map(|l| {
            String::from_utf8(l.as_bytes().to_vec())
                .ok()
                .map(|s| (s, l.is_exact()))
        })
        .collect()
}

/// Prefixes P such that `re` accepts every value starting with P (without
/// line breaks): the branches written `P.*`.
fn universal_prefixes(re: &str) -> Option<Vec<String>> {
    let hir = regex_syntax::Parser::new().parse(re).ok()?;
    let mut out = Vec::new();
    collect_prefixes(&hir, String::new(), &mut out);
    Some(out)
}

fn collect_prefixes(h: &Hir, prefix: String, out: &mut Vec<String>) {
    match h.kind() {
        HirKind::Capture(c) => collect_prefixes(&c.sub, prefix, out),
        HirKind::Alternation(branches) => {
            for b in branches {
                collect_prefixes(b, prefix.clone(), out);
            }
        }
        HirKind::Repetition(r) if r.min == 0 && r.max.is_none() && any_char(&r.sub) => {
            out.push(prefix)
        }
        HirKind::Concat(items) => {
            let mut p = prefix;
            for (k, item) in items.iter().enumerate() {
                match item.kind() {
                    HirKind::Literal(l) => match std::str::from_utf8(&l.0) {
                        Ok(s) => p.push_str(s),
                        Err(_) => return,
                    },
                    _ if k + 1 == items.len() => {
                        collect_prefixes(item, p, out);
                        return;
                    }
                    _ => return,
                }
            }
        }
        _ => {}
    }
}

/// `.` (any character but a line break) or `(?s:.)`.
fn any_char(h: &Hir) -> bool {
    let HirKind::Class(Class::Unicode(c)) = h.kind() else {
        return false;
    };
    let r: Vec<(u32, u32)> = c
        .ranges()
        .iter()
        .map(|r| (u32::from(r.start()), u32::from(r.end())))
        .collect();
    r == [(0, 0x10FFFF)] || r == [(0, 9), (11, 0x10FFFF)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::matcher::parse;

    fn m(text: &str) -> Vec<Matcher> {
        parse(text).expect("valid matcher")
    }

    fn implies_all(given: &str, m_text: &str) -> bool {
        m(m_text).iter().all(|x| implied(&m(given), x))
    }

    #[test]
    fn implication_of_matchers() {
        assert!(implies_all(
            r#"alertname="KubePodCrashLooping""#,
            r#"alertname=~"Kube.*""#
        ));
        assert!(implies_all(
            r#"alertname=~"KubePod.*|KubeJobFailed""#,
            r#"alertname=~"Kube.*|Etcd.*""#
        ));
        assert!(!implies_all(
            r#"alertname=~"KubePod.*|Etcd""#,
            r#"alertname=~"Kube.*""#
        ));
        assert!(implies_all(r#"alertname=~"A|B""#, r#"alertname=~"A|B|C""#));
        assert!(!implies_all(
            r#"alertname=~"A|B|D""#,
            r#"alertname=~"A|B|C""#
        ));
        assert!(implies_all(
            r#"severity="critical""#,
            r#"severity!="warning""#
        ));
        assert!(implies_all(r#"team=~".+""#, r#"team!="""#));
        assert!(implies_all(r#"team="db""#, r#"team=~".+""#));
        // Unconstrained labels only imply matchers that take anything.
        assert!(implies_all(r#"a="1""#, r#"b=~".*""#));
        assert!(!implies_all(r#"a="1""#, r#"b!="x""#));
        assert!(!implies_all(r#"env=~"prod.*""#, r#"env="prod""#));
    }

    #[test]
    fn disjoint_matchers() {
        assert!(disjoint(&m(r#"alertname="A""#), &m(r#"alertname=~"B|C""#)));
        assert!(!disjoint(&m(r#"alertname="A""#), &m(r#"alertname=~"A.*""#)));
        assert!(!disjoint(&m(r#"env="prod""#), &m(r#"alertname="A""#)));
        assert!(disjoint(&m(r#"env="prod""#), &m(r#"env!="prod""#)));
    }

    fn warnings(yaml: &str) -> Vec<String> {
        let rules = RuleSet::from_sources(&[("r.yaml".into(), yaml.into())], "test")
            .expect("rules compile");
        lint(&rules).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn dead_rules_are_named_with_the_rule_that_wins() {
        let w = warnings(
            r#"
correlate:
  - name: kube
    match: ['alertname=~"Kube.*"']
  - name: pods
    match: ['alertname=~"KubePod.*"', 'severity="critical"']
  - name: rest
  - name: never
    match: ['alertname="X"']
classify:
  - match: ['alertname=~"Disk.*"']
    category: hardware
  - name: smart disks
    match: ['alertname="DiskSmartFailing"']
    category: hardware
"#,
        );
        assert_eq!(w.len(), 3, "{w:#?}");
        assert!(w[0].starts_with("r.yaml:5:5: correlate rule pods can never apply: correlate rule kube (r.yaml:3:5) comes first and matches every alert this one matches"), "{w:#?}");
        assert!(w[1].starts_with("r.yaml:8:5: correlate rule never can never apply: correlate rule rest (r.yaml:7:5) comes first and matches every alert"), "{w:#?}");
        assert!(w[2].starts_with("r.yaml:13:5: classify rule smart disks can never apply: classify rule #1 (r.yaml:11:5)"), "{w:#?}");
    }

    #[test]
    fn blast_radius_over_a_grouped_label_and_fragile_groups() {
        let w = warnings(
            r#"
correlate:
  - name: node
    match: ['alertname="NodeDown"']
    group_by: [instance]
  - name: svc
    group_by: [service, shard]
prioritize:
  impact:
    - distinct: instance
      at_least: 3
      impact: high
    - distinct: instance
      at_least: 3
      impact: high
      rules: [svc]
"#,
        );
        assert_eq!(w.len(), 2, "{w:#?}");
        assert!(
            w[0].contains(
                "r.yaml:7:25: correlate rule svc: group_by label `shard` is not required"
            ),
            "{w:#?}"
        );
        assert!(w[1].contains("r.yaml:10:17: blast-radius rule #1 counts distinct `instance` values, but correlate rule node (r.yaml:3:5) groups by `instance`"), "{w:#?}");
    }

    #[test]
    fn actions_and_policies_that_never_run() {
        let w = warnings(
            r#"
prioritize:
  matrix:
    high:   {high: P2, medium: P2, low: P3}
    medium: {high: P2, medium: P3, low: P4}
    low:    {high: P3, medium: P4, low: P5}
actions:
  - name: page
    on: [opened]
    priority: [P1]
    webhook: {url: "http://127.0.0.1:1/"}
  - name: on-escalation
    on: [escalated]
    webhook: {url: "http://127.0.0.1:1/"}
  - name: security-only
    on: [opened]
    category: [security]
    webhook: {url: "http://127.0.0.1:1/"}
"#,
        );
        assert_eq!(w.len(), 3, "{w:#?}");
        assert!(
            w[0].contains(
                "action page never runs: it is limited to P1, which the matrix never gives"
            ),
            "{w:#?}"
        );
        assert!(
            w[1].contains("action on-escalation never runs: it runs only on `escalated`"),
            "{w:#?}"
        );
        assert!(
            w[2].contains(
                "action security-only never runs: it is limited to the categories security"
            ),
            "{w:#?}"
        );
    }

    #[test]
    fn the_shipped_rules_have_no_warnings() {
        let rules = RuleSet::builtin().expect("built-in rules compile");
        let w: Vec<String> = lint(&rules).iter().map(ToString::to_string).collect();
        assert!(w.is_empty(), "{w:#?}");
    }
}
