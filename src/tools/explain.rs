//! `incidentd rules explain`: one alert's path through the rules, for
//! people.
//!
//! Input: an ingest payload (any format the HTTP API takes, recognised as
//! Kafka messages are) and either compiled rules ([`local`]: rule files
//! alone, at a chosen time) or a [`Report`] a daemon answered
//! (`POST /api/v1/rules/explain`). Output: the report as text
//! ([`render_text`]): per alert, its fingerprint and result, then the steps
//! in the engine's order, each rule checked with the matcher that failed.
//! Nothing is written; the engine is not touched.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::config::Limits;
use crate::engine::explain::{self, miss_text, Check, Decision, Report, RuleRef, Skipped};
use crate::ingest::{self, IngestError};
use crate::model::{Alert, Labels};
use crate::rules::RuleSet;

/// Why a payload cannot be explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("the input is not an alert payload: {0}")]
    Payload(#[from] IngestError),
    #[error("the payload holds no alert to explain")]
    Empty,
}

/// The alerts of a payload, as the daemon would parse them at `now`.
pub fn alerts(input: &[u8], now: DateTime<Utc>) -> Result<Vec<Alert>, ExplainError> {
    let format = ingest::detect(input);
    let payload = ingest::parse(format, input, &Limits::default(), now)?;
    if payload.alerts.is_empty() {
        return Err(ExplainError::Empty);
    }
    Ok(payload.alerts)
}

/// Explains a payload against rule files alone, at `at`.
pub fn local(rules: &RuleSet, input: &[u8], at: DateTime<Utc>) -> Result<Report, ExplainError> {
    Ok(explain::explain(rules, &alerts(input, at)?, at))
}

/// Text of at most `n` characters, cut with `…`.
fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn labels_text(l: &Labels) -> String {
    let parts: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", parts.join(", "))
}

fn rule_text(r: &RuleRef) -> String {
    match &r.at {
        Some(at) => format!("{} ({at})", r.name),
        None => r.name.clone(),
    }
}

/// `label  first line` then continuation lines aligned under it.
fn lines(out: &mut String, label: &str, items: &[String]) {
    let pad = " ".repeat(label.len());
    for (i, item) in items.iter().enumerate() {
        let head = if i == 0 { label } else { pad.as_str() };
        out.push_str(&format!("     {head}  {item}\n"));
    }
}

fn skipped_lines(s: &[Skipped]) -> Vec<String> {
    s.iter()
        .map(|s| {
            format!(
                "{}: {}",
                rule_text(&s.rule),
                short(&miss_text(&s.failed), 110)
            )
        })
        .collect()
}

fn check_lines(checks: &[Check], none: &str) -> Vec<String> {
    if checks.is_empty() {
        return vec![none.to_string()];
    }
    checks
        .iter()
        .map(|c| {
            format!(
                "{}: {}, {}",
                rule_text(&c.rule),
                if c.applies { "APPLIES" } else { "no" },
                short(&c.why, 140)
            )
        })
        .collect()
}

fn decision(out: &mut String, label: &str, d: &Decision) {
    let by = match (&d.rule, &d.fallback) {
        (Some(r), _) => format!("{}, by {}", d.value, rule_text(r)),
        (None, Some(f)) => format!("{} ({f})", d.value),
        (None, None) => d.value.clone(),
    };
    lines(out, label, &[by]);
    if !d.skipped.is_empty() {
        lines(
            out,
            &format!("{:>w$}", "skipped", w = label.len()),
            &skipped_lines(&d.skipped),
        );
    }
}

/// The report as people read it.
pub fn render_text(r: &Report) -> String {
    let mut out = String::new();
    out.push_str(&format!("rules: {}\n", r.rules));
    if r.live_state {
        out.push_str("state: the daemon's live silences, firing alerts and open incidents\n");
    } else {
        out.push_str(
            "state: rule files only (no silences, no open incidents; --url asks a running daemon)\n",
        );
    }
    out.push_str(&format!(
        "at: {}\n",
        r.at.to_rfc3339_opts(SecondsFormat::Secs, true)
    ));
    let n = r.alerts.len();
    for (i, e) in r.alerts.iter().enumerate() {
        out.push_str(&format!(
            "\nalert {} of {n}: {} {} ({})\n",
            i + 1,
            if e.alertname.is_empty() {
                "(no alertname)"
            } else {
                &e.alertname
            },
            labels_text(&e.labels),
            match e.status {
                crate::model::AlertStatus::Firing => "firing",
                crate::model::AlertStatus::Resolved => "resolved",
            }
        ));
        out.push_str(&format!("  fingerprint  {}\n", e.fingerprint));
        out.push_str(&format!(
            "  result       {}: {}\n",
            e.result.kind, e.result.message
        ));

        let s = &e.suppression;
        out.push_str(&format!(
            "  1. suppression: {}\n",
            match &s.suppressed_by {
                Some(by) => format!("suppressed by {by}"),
                None => "none applies".into(),
            }
        ));
        lines(
            &mut out,
            "maintenance",
            &check_lines(&s.maintenance, "none defined"),
        );
        let no_silences = if r.live_state {
            "none active"
        } else {
            "not checked: silences live in the daemon (--url)"
        };
        lines(
            &mut out,
            "silences   ",
            &check_lines(&s.silences, no_silences),
        );
        lines(
            &mut out,
            "inhibit    ",
            &check_lines(&s.inhibit, "none defined"),
        );

        let c = &e.correlate;
        out.push_str(&format!("  2. correlate: {}\n", rule_text(&c.rule)));
        if !c.skipped.is_empty() {
            lines(&mut out, "skipped  ", &skipped_lines(&c.skipped));
        }
        lines(
            &mut out,
            "group_by ",
            &[format!("{} (window {})", c.group_by.join(", "), c.window)],
        );
        lines(&mut out, "group key", std::slice::from_ref(&c.group_key));
        lines(&mut out, "title    ", std::slice::from_ref(&c.title));
        if let Some(k) = &c.joins {
            lines(
                &mut out,
                "incident ",
                &[format!("joins {k} (live, within the window)")],
            );
        }

        out.push_str(&format!("  3. classify: {}\n", e.classify.value));
        decision(&mut out, "category", &e.classify);

        let p = &e.priority;
        out.push_str(&format!(
            "  4. priority: {} = impact {} × urgency {} (the matrix cell)\n",
            p.priority,
            p.impact.as_str(),
            p.urgency.as_str()
        ));
        decision(&mut out, "urgency", &e.urgency);
        decision(&mut out, "impact ", &e.impact);
        let blast: Vec<String> = e
            .blast_radius
            .iter()
            .map(|b| {
                format!(
                    "{}: {} distinct {} → {}: {}",
                    rule_text(&b.rule),
                    b.at_least,
                    b.label,
                    b.impact.as_str(),
                    b.why
                )
            })
            .collect();
        let blast = if blast.is_empty() {
            vec!["none defined".to_string()]
        } else {
            blast
        };
        lines(&mut out, "blast radius", &blast);
        if let Some(r) = &p.raised_by {
            lines(
                &mut out,
                "raised by   ",
                &[format!("{} (impact {})", rule_text(r), p.impact.as_str())],
            );
        }
        if let Some(ip) = p.incident_priority {
            lines(
                &mut out,
                "incident    ",
                &[format!(
                    "{ip} (an incident takes the highest priority of its alerts)"
                )],
            );
        }

        let sla = &e.sla;
        out.push_str(&format!(
            "  5. sla: {}: acknowledge within {} (by {}), resolve within {} (by {}); {}\n",
            sla.priority,
            sla.acknowledge,
            sla.acknowledge_by
                .to_rfc3339_opts(SecondsFormat::Secs, true),
            sla.resolve,
            sla.resolve_by.to_rfc3339_opts(SecondsFormat::Secs, true),
            match &sla.at {
                Some(at) => format!("targets from {at}"),
                None => "built-in targets".into(),
            }
        ));

        out.push_str("  6. on opened:\n");
        let actions: Vec<String> = e
            .on_opened
            .actions
            .iter()
            .map(|a| {
                format!(
                    "{}: {}",
                    rule_text(&a.rule),
                    if a.runs {
                        "RUNS".to_string()
                    } else {
                        format!("no, {}", a.why)
                    }
                )
            })
            .collect();
        let actions = if actions.is_empty() {
            vec!["none defined".to_string()]
        } else {
            actions
        };
        lines(&mut out, "actions   ", &actions);
        let esc = &e.on_opened.escalation;
        let mut esc_lines: Vec<String> = esc
            .skipped
            .iter()
            .map(|s| format!("{}: no, {}", rule_text(&s.rule), s.why))
            .collect();
        match &esc.policy {
            Some(p) => {
                esc_lines.push(format!("{}: APPLIES", rule_text(p)));
                for l in &esc.levels {
                    let mut what = Vec::new();
                    if let Some(a) = &l.assignee {
                        what.push(format!("assign {a}"));
                    }
                    if !l.actions.is_empty() {
                        what.push(format!("run {}", l.actions.join(", ")));
                    }
                    esc_lines.push(format!(
                        "  level {}: {} (due {}){}",
                        l.level,
                        l.when,
                        l.due_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                        if what.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", what.join(", "))
                        }
                    ));
                }
            }
            None if esc.skipped.is_empty() => esc_lines.push("no escalation policy defined".into()),
            None => esc_lines.push("no policy applies".into()),
        }
        lines(&mut out, "escalation", &esc_lines);
    }
    out
}
