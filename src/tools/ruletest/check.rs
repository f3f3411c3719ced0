//! Checking a test case's expectations against what the engine produced:
//! expected and actual incidents (and suppressed alerts) matched as sets,
//! with the counts, and for each miss the closest candidate and, per
//! differing field, the expected value above the one it got.

use std::collections::BTreeSet;

use crate::model::{Incident, Labels, SuppressedAlert};
use crate::tools::replay::Harness;

use super::parse::*;

/// One-line summary of an incident.
pub fn incident_line(i: &Incident) -> String {
    format!(
        "{} {} {} {} {} {} alerts={}",
        i.id, i.rule, i.group_key, i.category, i.priority, i.status, i.alert_count
    )
}

pub(super) fn fmt_labels(l: &Labels) -> String {
    let inner: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

pub(super) fn suppressed_line(s: &SuppressedAlert) -> String {
    format!(
        "{} reason={} by={}",
        fmt_labels(&s.alert.labels),
        s.suppression.reason,
        s.suppression.by
    )
}

/// One field an expectation gives that the actual value does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDiff {
    pub field: &'static str,
    pub expected: String,
    pub got: String,
}

impl FieldDiff {
    /// `field: expected X, got Y`, on one line.
    pub fn line(&self) -> String {
        format!(
            "{}: expected {}, got {}",
            self.field, self.expected, self.got
        )
    }
}

/// The diffs as an aligned block: each field's expected value above the
/// value it got, so long values (group keys, labels) compare by eye.
fn diff_block(diffs: &[FieldDiff], indent: &str) -> Vec<String> {
    let w = diffs.iter().map(|d| d.field.len()).max().unwrap_or(0) + 1;
    let mut out = Vec::new();
    for d in diffs {
        out.push(format!(
            "{indent}{:<w$} expected {}",
            format!("{}:", d.field),
            d.expected
        ));
        out.push(format!("{indent}{:<w$} got      {}", "", d.got));
    }
    out
}

impl ExpIncident {
    /// The fields that differ from `i`.
    pub fn diff(&self, i: &Incident) -> Vec<FieldDiff> {
        let mut out = Vec::new();
        let mut cmp = |field: &'static str, want: Option<String>, got: String| {
            if let Some(w) = want {
                if w != got {
                    out.push(FieldDiff {
                        field,
                        expected: w,
                        got,
                    });
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
                out.push(FieldDiff {
                    field: "labels",
                    expected: format!("to include {}", fmt_labels(want)),
                    got: fmt_labels(&i.labels),
                });
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
    pub(super) fn diff(&self, s: &SuppressedAlert) -> Vec<FieldDiff> {
        let mut out = Vec::new();
        if !subset(&self.labels, &s.alert.labels) {
            out.push(FieldDiff {
                field: "labels",
                expected: format!("to include {}", fmt_labels(&self.labels)),
                got: fmt_labels(&s.alert.labels),
            });
        }
        if let Some(r) = self.reason {
            if r != s.suppression.reason {
                out.push(FieldDiff {
                    field: "reason",
                    expected: r.to_string(),
                    got: s.suppression.reason.to_string(),
                });
            }
        }
        if let Some(b) = &self.by {
            if *b != s.suppression.by {
                out.push(FieldDiff {
                    field: "by",
                    expected: b.clone(),
                    got: s.suppression.by.clone(),
                });
            }
        }
        out
    }

    pub(super) fn line(&self) -> String {
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

pub(super) fn subset(want: &Labels, got: &Labels) -> bool {
    want.iter().all(|(k, v)| got.get(k) == Some(v))
}

/// Maximum bipartite matching of expectations to actuals: for each
/// expectation, the actual it got (if any).
pub(super) fn assign(fits: &[Vec<usize>], actuals: usize) -> Vec<Option<usize>> {
    pub(super) fn augment(
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
pub(super) fn compare_set<E, A>(
    what: &str,
    expected: &[E],
    actual: &[&A],
    diff: impl Fn(&E, &A) -> Vec<FieldDiff>,
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
    out.push(format!(
        "    {what}: expected {}, got {}",
        expected.len(),
        actual.len()
    ));
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
            Some((d, _, a)) if !d.is_empty() => {
                out.push(format!("      closest: {}", act_line(actual[a])));
                out.extend(diff_block(&d, "        "));
            }
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

pub(super) fn check(e: &Expect, h: &Harness, now: chrono::DateTime<chrono::Utc>) -> Vec<String> {
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
        actual.sort_by(|a, b| a.alert.labels.cmp(&b.alert.labels));
        out.extend(compare_set(
            "suppressed alerts",
            sup,
            &actual,
            |x, s| x.diff(s),
            ExpSuppressed::line,
            suppressed_line,
        ));
    }
    for (name, want) in &e.oncall {
        let show = |p: &Option<String>| p.clone().unwrap_or_else(|| "nobody".into());
        match h.oncall(name, now) {
            None => out.push(format!(
                "    oncall: no schedule or team {name:?} in the rules' people.yaml"
            )),
            Some(got) if got != *want => out.push(format!(
                "    oncall {name}: expected {}, got {}",
                show(want),
                show(&got)
            )),
            Some(_) => {}
        }
    }
    out
}
