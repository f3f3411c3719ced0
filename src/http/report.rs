//! The Markdown incident report.
//!
//! Input: an incident with its alerts and timeline. Output: a Markdown
//! document with ID, dates, reporter, occurrence and recovery, summary,
//! impact, cause, timeline, workaround, permanent fix and people involved.
//! Pure formatting; fields nobody has filled in say so instead of vanishing.

use std::collections::BTreeSet;
use std::fmt::Write;

use chrono::{DateTime, Utc};

use crate::model::{AlertRecord, Incident, TimelineEntry, SYSTEM};

const AFFECTED: [&str; 7] = [
    "service",
    "job",
    "namespace",
    "cluster",
    "instance",
    "pod",
    "team",
];

fn ts(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "—".into())
}

fn dur(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let secs = (to - from).num_seconds().max(0) as u64;
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Renders the report.
pub fn render(
    inc: &Incident,
    alerts: &[AlertRecord],
    timeline: &[TimelineEntry],
    now: DateTime<Utc>,
) -> String {
    let mut md = String::new();
    let unset = "_not recorded yet_";
    // Writing to a String cannot fail.
    let _ = writeln!(md, "# Incident report {}: {}\n", inc.id, inc.title);
    let _ = writeln!(md, "| field | value |\n|---|---|");
    let _ = writeln!(md, "| ID | {} |", inc.id);
    let _ = writeln!(md, "| Report date | {} |", ts(Some(now)));
    let reporter = alerts
        .iter()
        .map(|a| a.alert.source.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        md,
        "| Reporter | {SYSTEM} (monitoring: {}) |",
        if reporter.is_empty() {
            "—"
        } else {
            &reporter
        }
    );
    let _ = writeln!(md, "| Status | {} |", inc.status);
    let _ = writeln!(
        md,
        "| Priority | {} (impact {} × urgency {}) |",
        inc.priority,
        inc.impact.as_str(),
        inc.urgency.as_str()
    );
    let _ = writeln!(md, "| Category | {} |", inc.category);
    let _ = writeln!(md, "| Occurred at | {} |", ts(Some(inc.occurred_at)));
    let _ = writeln!(md, "| Detected at | {} |", ts(Some(inc.created_at)));
    let _ = writeln!(md, "| Acknowledged at | {} |", ts(inc.acknowledged_at));
    let _ = writeln!(md, "| Recovered at | {} |", ts(inc.resolved_at));
    let _ = writeln!(md, "| Closed at | {} |", ts(inc.closed_at));
    if !inc.external_refs.is_empty() {
        let refs: Vec<String> = inc
            .external_refs
            .iter()
            .map(|(action, r)| cell(&format!("{action}: {r}")))
            .collect();
        let _ = writeln!(md, "| External references | {} |", refs.join(", "));
    }
    let end = inc.resolved_at.unwrap_or(now);
    let _ = writeln!(
        md,
        "| Downtime | {}{} |",
        dur(inc.occurred_at, end),
        if inc.resolved_at.is_none() {
            " (ongoing)"
        } else {
            ""
        }
    );
    let sla = if inc.sla.breached {
        let mut kinds = Vec::new();
        if inc.sla.acknowledge_breached {
            kinds.push("acknowledge");
        }
        if inc.sla.resolve_breached {
            kinds.push("resolve");
        }
        format!("breached ({})", kinds.join(", "))
    } else {
        "met so far".into()
    };
    let _ = writeln!(
        md,
        "| SLA | {sla}; acknowledge by {}, resolve by {} |",
        ts(Some(inc.sla.acknowledge_by)),
        ts(Some(inc.sla.resolve_by))
    );
    let _ = writeln!(
        md,
        "| Assignee | {} |",
        inc.assignee.as_deref().unwrap_or("—")
    );

    let _ = writeln!(md, "\n## Summary\n");
    let _ = writeln!(md, "{}", inc.title);
    for a in alerts {
        let text = a
            .alert
            .annotations
            .get("summary")
            .or_else(|| a.alert.annotations.get("description"))
            .or_else(|| a.alert.annotations.get("message"));
        if let Some(t) = text {
            let _ = writeln!(
                md,
                "\n- {}: {}",
                a.alert.labels.get("alertname").unwrap_or("alert"),
                t
            );
        }
    }

    let _ = writeln!(md, "\n## Impact\n");
    let _ = writeln!(
        md,
        "- Alerts: {} ({} still firing)",
        inc.alert_count, inc.firing_count
    );
    for label in AFFECTED {
        let values: BTreeSet<&str> = alerts
            .iter()
            .filter_map(|a| a.alert.labels.get(label))
            .collect();
        if !values.is_empty() {
            let list: Vec<&str> = values.into_iter().take(20).collect();
            let _ = writeln!(md, "- {label}: {}", list.join(", "));
        }
    }
    let _ = writeln!(
        md,
        "- Correlation: rule `{}`, group `{}`",
        inc.rule, inc.group_key
    );

    let _ = writeln!(md, "\n## Cause\n");
    let _ = writeln!(md, "{}", inc.root_cause.as_deref().unwrap_or(unset));

    let _ = writeln!(md, "\n## Timeline\n");
    let _ = writeln!(md, "| time | who | what |\n|---|---|---|");
    for e in timeline {
        let _ = writeln!(
            md,
            "| {} | {} | {}: {} |",
            ts(Some(e.at)),
            cell(&e.by),
            e.kind,
            cell(&e.message)
        );
    }

    let _ = writeln!(md, "\n## Workaround\n");
    let _ = writeln!(md, "{}", inc.workaround.as_deref().unwrap_or(unset));

    let _ = writeln!(md, "\n## Permanent fix\n");
    let _ = writeln!(
        md,
        "{}",
        if inc.root_cause.is_some() {
            "Root cause recorded above; track the permanent fix in problem management."
        } else {
            "_to be decided in problem management_"
        }
    );

    let _ = writeln!(md, "\n## People involved\n");
    let mut people: BTreeSet<&str> = timeline
        .iter()
        .map(|e| e.by.as_str())
        .filter(|b| *b != SYSTEM)
        .collect();
    if let Some(a) = inc.assignee.as_deref() {
        people.insert(a);
    }
    if let Some(t) = inc.team.as_deref() {
        let _ = writeln!(md, "Owning team: {t}\n");
    }
    for p in &inc.pages {
        people.insert(p.person.as_str());
    }
    if people.is_empty() {
        let _ = writeln!(md, "{unset}");
    } else {
        for p in people {
            let mut roles = Vec::new();
            let paged: Vec<String> = inc
                .pages
                .iter()
                .filter(|x| x.person == p)
                .map(|x| {
                    format!(
                        "{} ({}, level {})",
                        ts(Some(x.at)),
                        x.channels.join(", "),
                        x.level
                    )
                })
                .collect();
            if !paged.is_empty() {
                roles.push(format!("paged {}", paged.join("; ")));
            }
            if inc.acknowledged_by.as_deref() == Some(p) {
                roles.push(format!("acknowledged {}", ts(inc.acknowledged_at)));
            }
            if inc.resolved_by.as_deref() == Some(p) {
                roles.push(format!("resolved {}", ts(inc.resolved_at)));
            }
            if inc.assignee.as_deref() == Some(p) {
                roles.push("assignee".into());
            }
            if roles.is_empty() {
                let _ = writeln!(md, "- {p}");
            } else {
                let _ = writeln!(md, "- {p}: {}", roles.join("; "));
            }
        }
    }
    md
}
