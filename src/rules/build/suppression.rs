//! Building the suppression and policy sections: `inhibit`,
//! `maintenance`, `flapping` and `problems`.

use marked_yaml::{Node, Spanned};
use serde::Deserialize;

use super::raw::{
    parse_days, RawFlapping, RawInhibit, RawMaintenance, RawProblems, RawSlot, Section,
};
use super::{clean_serde_message, Builder};
use crate::rules::suppress::{InhibitRule, MaintenanceWindow, Schedule, WeeklySlot};

impl Builder {
    pub(super) fn inhibit_section(&mut self, node: &Node) {
        for (raw, span, at) in self.items::<RawInhibit>(node, "inhibit") {
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
                    at: at.clone(),
                });
            }
        }
    }

    pub(super) fn maintenance_section(&mut self, node: &Node) {
        for (raw, span, at) in self.items::<RawMaintenance>(node, "maintenance") {
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
                    at: at.clone(),
                });
            }
        }
    }

    pub(super) fn timestamp(
        &mut self,
        raw: &Spanned<String>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
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

    pub(super) fn slot(&mut self, raw: &RawSlot) -> Option<WeeklySlot> {
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
    pub(super) fn single<T: for<'de> Deserialize<'de>>(
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

    pub(super) fn flapping_section(
        &mut self,
        key: &marked_yaml::types::MarkedScalarNode,
        node: &Node,
    ) {
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

    pub(super) fn problems_section(
        &mut self,
        key: &marked_yaml::types::MarkedScalarNode,
        node: &Node,
    ) {
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
}
