//! `incidentd replay`: backtesting rules against a recorded alert stream.
//!
//! Input: a JSON-lines file, one ingest payload per line, and a compiled
//! [`RuleSet`]. Each line is one of
//!
//! - an Alertmanager webhook v4 payload (an object with `alerts`),
//! - an Alertmanager v2 alert array (what Prometheus posts to
//!   `/api/v2/alerts`),
//! - a single generic alert object (`labels`, `annotations`, optional
//!   `status`, `startsAt`, `endsAt`, `source`),
//!
//! optionally wrapped as `{"at": "<RFC 3339>", "payload": <one of those>}`
//! to give the time it was received. Without a wrapper the receive time is
//! the latest of the payload's alert times — `endsAt` for an alert with
//! `"status": "resolved"`, else `startsAt` — or, if it has none, the
//! previous line's time. Virtual time never goes backwards: a line older
//! than the one before it is processed at the earlier line's time (and
//! counted as out of order). An alert without a `status` is resolved iff
//! its `endsAt` is not after the receive time, exactly as over HTTP; one
//! whose `endsAt` lies ahead resolves when that time passes.
//!
//! Output: a [`Report`]: every incident the rules would have made (final
//! state), counts per priority (the incident's final, highest priority) and
//! per category, and the alert counters the daemon's metrics would show
//! (received, deduplicated, suppressed by reason, incidents created).
//! Lines that do not parse are reported with their line number, skipped and
//! counted; they never stop the replay.
//!
//! Contract: a fresh [`Engine`] in memory; nothing is read or written
//! besides the input file (no data directory, no store). The engine ticks
//! on a virtual clock every `tick` (default 1m) from the first line's time
//! and, after the last line, once more up to one `tick` past it — so
//! timers further out (auto-close after `close_after`, SLA deadlines,
//! flapping settling) only show if the stream covers them.
//!
//! [`Harness`] — the engine plus a record of every incident it ever wrote
//! (closed incidents leave engine memory) and the event counters — is
//! shared with `rules test` ([`crate::tools::ruletest`]).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::config::Limits;
use crate::engine::{Engine, Event, Outcome, Settings};
use crate::ingest::{self, Format};
use crate::model::suppression::InvalidSilence;
use crate::model::{
    Alert, Incident, IncidentKey, Priority, Reason, Silence, Source, SuppressedAlert, CATEGORIES,
};
use crate::rules::RuleSet;
use crate::tools::coverage::Coverage;

/// What the engine did, counted like the daemon's metrics count it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Counts {
    /// Alerts handed to the engine (`incidentd_alerts_received_total`).
    pub alerts_received: u64,
    /// Repeat notifications that changed nothing (`…_deduplicated_total`).
    pub deduplicated: u64,
    /// Resolved notifications for alerts never seen firing.
    pub ignored: u64,
    /// Per reason (`silence`, `inhibit`, `maintenance`, `flapping`).
    pub suppressed: BTreeMap<String, u64>,
    pub incidents_created: u64,
    pub reopened: u64,
    pub priority_raised: u64,
    /// Action jobs handed to the executor (pages, webhooks, programs) …
    pub actions_run: u64,
    /// … and held back, then dropped (grouped into a major incident, or
    /// the cause acknowledged).
    pub actions_dropped: u64,
}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            alerts_received: 0,
            deduplicated: 0,
            ignored: 0,
            suppressed: Reason::ALL
                .iter()
                .map(|r| (r.as_str().to_string(), 0))
                .collect(),
            incidents_created: 0,
            reopened: 0,
            priority_raised: 0,
            actions_run: 0,
            actions_dropped: 0,
        }
    }
}

/// A fresh engine on a virtual clock, remembering every incident it wrote.
pub struct Harness {
    engine: Engine,
    incidents: BTreeMap<IncidentKey, Incident>,
    counts: Counts,
    /// What the rules did, when coverage is tracked.
    coverage: Option<Coverage>,
}

impl Harness {
    pub fn new(rules: Arc<RuleSet>, settings: Settings) -> Harness {
        Harness {
            engine: Engine::new(rules, settings),
            incidents: BTreeMap::new(),
            counts: Counts::default(),
            coverage: None,
        }
    }

    /// From now on, records which rules decide something.
    pub fn track_coverage(&mut self) {
        self.coverage = Some(Coverage::new(self.engine.rules().clone()));
    }

    /// The coverage recorded since [`Harness::track_coverage`].
    pub fn take_coverage(&mut self) -> Option<Coverage> {
        self.coverage.take()
    }

    /// Ingests one batch at `now`.
    pub fn ingest(&mut self, alerts: Vec<Alert>, now: DateTime<Utc>) {
        self.counts.alerts_received += alerts.len() as u64;
        for o in self.engine.ingest(alerts, now) {
            if o == Outcome::Ignored {
                self.counts.ignored += 1;
            }
        }
        self.absorb();
    }

    /// Runs the engine's time-driven transitions at `now`.
    pub fn tick(&mut self, now: DateTime<Utc>) {
        self.engine.tick(now);
        self.absorb();
    }

    /// Adds a silence as the API would.
    pub fn add_silence(
        &mut self,
        s: Silence,
        now: DateTime<Utc>,
    ) -> Result<Silence, InvalidSilence> {
        let r = self.engine.add_silence(s, now);
        self.absorb();
        r
    }

    /// Every incident written so far (closed ones included), by id.
    pub fn incidents(&self) -> impl Iterator<Item = &Incident> {
        self.incidents.values()
    }

    /// Who is on call at `now` in a schedule (or a team's first
    /// schedule): `None` when the rules have no such schedule or team,
    /// `Some(None)` when nobody is on call.
    pub fn oncall(&self, name: &str, now: DateTime<Utc>) -> Option<Option<String>> {
        let rules = self.engine.rules();
        let s = rules.people.schedule_for(name)?;
        Some(s.at(now, self.engine.overrides()).map(|c| c.person))
    }

    /// Alerts currently kept out of incidents.
    pub fn suppressed(&self) -> impl Iterator<Item = &SuppressedAlert> {
        self.engine.suppressed_alerts()
    }

    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    fn absorb(&mut self) {
        let ws = self.engine.take_changes();
        if let Some(c) = &mut self.coverage {
            c.observe(&ws);
        }
        self.counts.actions_run += ws.dispatch.len() as u64;
        self.counts.actions_dropped += ws
            .jobs
            .iter()
            .filter(|j| j.state == crate::model::JobState::Dropped)
            .count() as u64;
        for inc in ws.incidents {
            self.incidents.insert(inc.id, inc);
        }
        for e in ws.events {
            let c = &mut self.counts;
            match e {
                Event::Deduplicated => c.deduplicated += 1,
                Event::Created { .. } => c.incidents_created += 1,
                Event::Suppressed { reason } => {
                    *c.suppressed.entry(reason.to_string()).or_default() += 1
                }
                Event::Reopened => c.reopened += 1,
                Event::PriorityChanged { .. } => c.priority_raised += 1,
                _ => {}
            }
        }
    }
}

/// Replay settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Virtual tick interval.
    pub tick: Duration,
    /// Engine lifecycle settings (auto-close).
    pub settings: Settings,
    pub limits: Limits,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tick: Duration::from_secs(60),
            settings: Settings {
                close_after: crate::config::IncidentSettings::default().close_after,
                id_slot: None,
            },
            limits: Limits::default(),
        }
    }
}

/// One incident as the report shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IncidentLine {
    pub id: String,
    pub priority: Priority,
    pub category: String,
    pub status: String,
    pub rule: String,
    pub group_key: String,
    pub alert_count: u32,
    pub firing_count: u32,
    pub title: String,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// The major incident it is grouped into.
    pub parent: Option<String>,
    /// Grouped incidents (a major incident's).
    pub children: usize,
    /// Incidents that explain this one (relate rules, people).
    pub caused_by: Vec<String>,
}

impl From<&Incident> for IncidentLine {
    fn from(i: &Incident) -> Self {
        IncidentLine {
            id: i.id.to_string(),
            priority: i.priority,
            category: i.category.clone(),
            status: i.status.as_str().to_string(),
            rule: i.rule.clone(),
            group_key: i.group_key.clone(),
            alert_count: i.alert_count,
            firing_count: i.firing_count,
            title: i.title.clone(),
            created_at: i.created_at,
            resolved_at: i.resolved_at,
            parent: i.parent.map(|p| p.to_string()),
            children: i.children.len(),
            caused_by: i
                .relations
                .iter()
                .filter(|r| r.relation == crate::model::RelationKind::CausedBy)
                .map(|r| r.to.to_string())
                .collect(),
        }
    }
}

/// A line that was skipped.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub error: String,
}

/// Input line counts.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Lines {
    /// Non-blank lines read.
    pub read: usize,
    pub replayed: usize,
    pub skipped: usize,
    /// Lines older than the one before them (processed at that line's time).
    pub out_of_order: usize,
    pub errors: Vec<LineError>,
}

/// The virtual time the replay covered.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Span {
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
    /// The last tick: one tick interval after the last line.
    pub ticked_until: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ser_duration")]
    pub tick: Duration,
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

/// Incident totals.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub incidents: usize,
    /// By final priority; every priority present.
    pub by_priority: BTreeMap<String, usize>,
    /// By category; every known category present.
    pub by_category: BTreeMap<String, usize>,
    /// By final status.
    pub by_status: BTreeMap<String, usize>,
    /// Major incidents opened by storm rules …
    pub major: usize,
    /// … and the incidents grouped into them.
    pub grouped: usize,
    /// Incidents people work: every incident not grouped into another
    /// (without storm rules it would have been `incidents - major`).
    pub to_work: usize,
    /// Incidents linked to a cause (relate rules).
    pub linked: usize,
}

/// Everything `incidentd replay` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub rules: String,
    pub lines: Lines,
    pub time: Span,
    pub incidents: Vec<IncidentLine>,
    pub summary: Summary,
    pub alerts: Counts,
}

/// Replays the JSON lines in `path`. Errors only when the file cannot be
/// opened or read; bad lines are reported in the [`Report`].
pub fn replay_file(
    path: &Path,
    rules: Arc<RuleSet>,
    opts: &Options,
) -> Result<Report, std::io::Error> {
    let f = std::fs::File::open(path)?;
    replay(BufReader::new(f), rules, opts)
}

/// Replays JSON lines from `input`.
pub fn replay(
    input: impl Read,
    rules: Arc<RuleSet>,
    opts: &Options,
) -> Result<Report, std::io::Error> {
    let origin = rules.origin.clone();
    let tick = if opts.tick.is_zero() {
        Duration::from_secs(60)
    } else {
        opts.tick
    };
    let step = chrono::Duration::from_std(tick).unwrap_or(chrono::Duration::minutes(1));
    let mut h = Harness::new(rules, opts.settings.clone());
    let mut lines = Lines::default();
    let mut first: Option<DateTime<Utc>> = None;
    let mut last: Option<DateTime<Utc>> = None;
    let mut next_tick: Option<DateTime<Utc>> = None;
    let mut reader = BufReader::new(input);
    let mut buf = Vec::new();
    let mut n = 0usize;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        n += 1;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        lines.read += 1;
        let parsed = parse_line(&buf, last, &opts.limits);
        let (at, alerts) = match parsed {
            Ok(p) => p,
            Err(error) => {
                lines.skipped += 1;
                lines.errors.push(LineError { line: n, error });
                continue;
            }
        };
        let at = match last {
            Some(l) if at < l => {
                lines.out_of_order += 1;
                l
            }
            _ => at,
        };
        if first.is_none() {
            first = Some(at);
            next_tick = Some(at + step);
        }
        while let Some(t) = next_tick.filter(|t| *t <= at) {
            h.tick(t);
            next_tick = Some(t + step);
        }
        last = Some(at);
        lines.replayed += 1;
        h.ingest(alerts, at);
    }
    let mut ticked_until = None;
    if let Some(end) = last.map(|l| l + step) {
        while let Some(t) = next_tick.filter(|t| *t <= end) {
            h.tick(t);
            ticked_until = Some(t);
            next_tick = Some(t + step);
        }
    }
    let incidents: Vec<IncidentLine> = h.incidents().map(IncidentLine::from).collect();
    let summary = summarize(&incidents);
    Ok(Report {
        rules: origin,
        lines,
        time: Span {
            first,
            last,
            ticked_until,
            tick,
        },
        incidents,
        summary,
        alerts: h.counts().clone(),
    })
}

fn summarize(incidents: &[IncidentLine]) -> Summary {
    let mut by_priority: BTreeMap<String, usize> = Priority::ALL
        .iter()
        .map(|p| (p.as_str().to_string(), 0))
        .collect();
    let mut by_category: BTreeMap<String, usize> =
        CATEGORIES.iter().map(|c| (c.to_string(), 0)).collect();
    let mut by_status: BTreeMap<String, usize> = ["open", "acknowledged", "resolved", "closed"]
        .iter()
        .map(|s| (s.to_string(), 0))
        .collect();
    for i in incidents {
        *by_priority
            .entry(i.priority.as_str().to_string())
            .or_default() += 1;
        *by_category.entry(i.category.clone()).or_default() += 1;
        *by_status.entry(i.status.clone()).or_default() += 1;
    }
    Summary {
        incidents: incidents.len(),
        by_priority,
        by_category,
        by_status,
        major: incidents.iter().filter(|i| i.children > 0).count(),
        grouped: incidents.iter().filter(|i| i.parent.is_some()).count(),
        to_work: incidents.iter().filter(|i| i.parent.is_none()).count(),
        linked: incidents.iter().filter(|i| !i.caused_by.is_empty()).count(),
    }
}

/// One line → its receive time and alerts, or why it was skipped.
fn parse_line(
    raw: &[u8],
    prev: Option<DateTime<Utc>>,
    limits: &Limits,
) -> Result<(DateTime<Utc>, Vec<Alert>), String> {
    let text = std::str::from_utf8(raw)
        .map_err(|e| format!("not valid UTF-8 (byte {})", e.valid_up_to() + 1))?;
    let value: Value = serde_json::from_str(text).map_err(|e| {
        let msg = e.to_string();
        let msg = msg.rfind(" at line ").map_or(msg.as_str(), |i| &msg[..i]);
        format!("invalid JSON at column {}: {msg}", e.column())
    })?;
    let (at, payload) = match unwrap(&value)? {
        (Some(at), payload) => (at, payload),
        (None, payload) => {
            let at = payload_time(payload)
                .map(|t| prev.map_or(t, |p| p.max(t)))
                .or(prev)
                .ok_or(
                    "cannot tell when this was received: no {\"at\", \"payload\"} wrapper, \
                     no startsAt/endsAt and no earlier line",
                )?;
            (at, payload)
        }
    };
    let (format, what) = match payload {
        Value::Array(_) => (Format::AlertmanagerV2, "alert array"),
        Value::Object(m) if m.contains_key("alerts") => (Format::WebhookV4, "webhook payload"),
        Value::Object(_) => (Format::Generic, "alert"),
        _ => return Err(
            "expected a webhook payload (object with `alerts`), an alert array or an alert object"
                .into(),
        ),
    };
    // Re-serializing a parsed Value cannot fail (string keys only).
    let body = serde_json::to_vec(payload).map_err(|e| e.to_string())?;
    let mut alerts = ingest::parse(format, &body, limits, at)
        .map_err(|e| format!("{what}: {e}"))?
        .alerts;
    for a in &mut alerts {
        a.source = Source::Replay;
    }
    Ok((at, alerts))
}

/// Splits off the `{"at", "payload"}` wrapper if there is one.
fn unwrap(v: &Value) -> Result<(Option<DateTime<Utc>>, &Value), String> {
    let Some(m) = v.as_object() else {
        return Ok((None, v));
    };
    let Some(payload) = m.get("payload") else {
        return Ok((None, v));
    };
    if let Some(k) = m.keys().find(|k| *k != "at" && *k != "payload") {
        return Err(format!(
            "wrapper: unknown field `{k}`; expected {{\"at\": \"<RFC 3339>\", \"payload\": ...}}"
        ));
    }
    let at = m
        .get("at")
        .ok_or("wrapper: missing field `at` (the receive time, RFC 3339)")?;
    let at = at
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .ok_or_else(|| format!("wrapper: `at`: expected an RFC 3339 time, got {at}"))?;
    Ok((Some(at.with_timezone(&Utc)), payload))
}

/// The latest alert time in an unwrapped payload: `endsAt` of resolved
/// alerts, `startsAt` of the others; unset or zero times are ignored.
fn payload_time(payload: &Value) -> Option<DateTime<Utc>> {
    let alerts: Vec<&Value> = match payload {
        Value::Array(a) => a.iter().collect(),
        Value::Object(m) => match m.get("alerts") {
            Some(Value::Array(a)) => a.iter().collect(),
            _ => vec![payload],
        },
        _ => Vec::new(),
    };
    let time = |a: &Value, field: &str| {
        a.get(field)
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
            .filter(|t| t.timestamp() > -62_135_596_800)
    };
    alerts
        .into_iter()
        .filter_map(|a| {
            if a.get("status").and_then(Value::as_str) == Some("resolved") {
                time(a, "endsAt").or_else(|| time(a, "startsAt"))
            } else {
                time(a, "startsAt")
            }
        })
        .max()
}

/// The report as text for people.
pub fn render_text(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    // Writing to a String cannot fail; the results are ignored below.
    let _ = writeln!(s, "rules: {}", r.rules);
    let _ = writeln!(
        s,
        "lines: {} read, {} replayed, {} skipped{}",
        r.lines.read,
        r.lines.replayed,
        r.lines.skipped,
        if r.lines.out_of_order > 0 {
            format!(
                ", {} out of order (processed at the previous line's time)",
                r.lines.out_of_order
            )
        } else {
            String::new()
        }
    );
    for e in &r.lines.errors {
        let _ = writeln!(s, "  line {}: {}", e.line, e.error);
    }
    match (r.time.first, r.time.last, r.time.ticked_until) {
        (Some(f), Some(l), until) => {
            let _ = writeln!(
                s,
                "virtual time: {} .. {} (ticked every {} up to {}; later timers such as auto-close are not run)",
                f.to_rfc3339(),
                l.to_rfc3339(),
                humantime::format_duration(r.time.tick),
                until.unwrap_or(l).to_rfc3339()
            );
        }
        _ => {
            let _ = writeln!(s, "virtual time: no line replayed");
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "incidents:");
    if r.incidents.is_empty() {
        let _ = writeln!(s, "  (none)");
    }
    for i in &r.incidents {
        let mut extra = String::new();
        if let Some(p) = &i.parent {
            extra.push_str(&format!(" grouped_into={p}"));
        }
        if i.children > 0 {
            extra.push_str(&format!(" children={}", i.children));
        }
        if !i.caused_by.is_empty() {
            extra.push_str(&format!(" caused_by={}", i.caused_by.join(",")));
        }
        let _ = writeln!(
            s,
            "  {} {} {:<11} {:<12} rule={} group={} alerts={}{extra} title={:?}",
            i.id, i.priority, i.category, i.status, i.rule, i.group_key, i.alert_count, i.title
        );
    }
    let _ = writeln!(s);
    let join = |m: &BTreeMap<String, usize>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(s, "summary:");
    let _ = writeln!(s, "  incidents created: {}", r.summary.incidents);
    let _ = writeln!(s, "  by priority: {}", join(&r.summary.by_priority));
    let _ = writeln!(s, "  by category: {}", join(&r.summary.by_category));
    let _ = writeln!(s, "  by status: {}", join(&r.summary.by_status));
    let a = &r.alerts;
    let _ = writeln!(
        s,
        "  alerts: {} received, {} deduplicated, {} resolved-but-never-seen",
        a.alerts_received, a.deduplicated, a.ignored
    );
    let _ = writeln!(
        s,
        "  suppressed: {}",
        a.suppressed
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        s,
        "  reopened: {}, priority raised: {}",
        a.reopened, a.priority_raised
    );
    let m = &r.summary;
    let _ = writeln!(
        s,
        "  storms: {} major incident(s) over {} grouped incident(s): {} incident(s) to work instead of {}",
        m.major,
        m.grouped,
        m.to_work,
        m.incidents - m.major
    );
    let _ = writeln!(
        s,
        "  relations: {} incident(s) linked to their cause",
        m.linked
    );
    let _ = writeln!(
        s,
        "  actions: {} run, {} held back and dropped",
        a.actions_run, a.actions_dropped
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Arc<RuleSet> {
        Arc::new(RuleSet::builtin().expect("built-in rules compile"))
    }

    fn run(text: &str) -> Report {
        replay(text.as_bytes(), rules(), &Options::default()).expect("replays")
    }

    #[test]
    fn wrapped_formats_and_bad_lines() {
        let text = r#"{"at":"2026-01-05T10:00:00Z","payload":[{"labels":{"alertname":"InstanceDown","instance":"a:9100","severity":"critical"},"startsAt":"2026-01-05T09:59:00Z","endsAt":"2026-01-05T10:04:00Z"}]}
not json

{"at":"2026-01-05T10:01:00Z","payload":{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"InstanceDown","instance":"a:9100","severity":"critical"},"startsAt":"2026-01-05T09:59:00Z"}]}}
{"labels":{"alertname":"InstanceDown","instance":"a:9100","severity":"critical"},"status":"resolved","endsAt":"2026-01-05T10:05:00Z"}
{"at":"yesterday","payload":[]}
"#;
        let r = run(text);
        assert_eq!(r.lines.read, 5);
        assert_eq!(r.lines.replayed, 3);
        assert_eq!(r.lines.skipped, 2);
        assert_eq!(r.lines.errors[0].line, 2);
        assert!(r.lines.errors[0].error.starts_with("invalid JSON"));
        assert_eq!(r.lines.errors[1].line, 6);
        assert_eq!(r.incidents.len(), 1);
        let i = &r.incidents[0];
        assert_eq!(
            (i.priority, i.category.as_str()),
            (Priority::P3, "hardware")
        );
        assert_eq!(i.status, "resolved");
        assert_eq!(r.alerts.alerts_received, 3);
        assert_eq!(r.alerts.deduplicated, 1);
        assert_eq!(
            r.time.last,
            Some("2026-01-05T10:05:00Z".parse().expect("t"))
        );
        assert_eq!(
            r.time.ticked_until,
            Some("2026-01-05T10:06:00Z".parse().expect("t"))
        );
    }

    #[test]
    fn unwrapped_times_never_go_back() {
        let text = r#"{"labels":{"alertname":"X"},"startsAt":"2026-01-05T10:00:00Z"}
{"labels":{"alertname":"X"},"startsAt":"2026-01-05T09:00:00Z"}
{"labels":{"alertname":"Y"}}
"#;
        let r = run(text);
        assert_eq!(r.lines.replayed, 3);
        assert_eq!(r.lines.out_of_order, 0, "unwrapped lines clamp silently");
        assert_eq!(
            r.time.last,
            Some("2026-01-05T10:00:00Z".parse().expect("t"))
        );
        assert_eq!(r.incidents.len(), 2);
        let first = run(r#"{"labels":{"alertname":"Y"}}"#);
        assert_eq!(first.lines.skipped, 1);
        assert!(first.lines.errors[0].error.contains("cannot tell when"));
    }

    #[test]
    fn endsat_in_the_future_expires_on_a_tick() {
        let text = r#"{"at":"2026-01-05T10:00:00Z","payload":[{"labels":{"alertname":"InstanceDown","instance":"a"},"startsAt":"2026-01-05T10:00:00Z","endsAt":"2026-01-05T10:00:30Z"}]}"#;
        let r = run(text);
        assert_eq!(
            r.incidents[0].status, "resolved",
            "expired at the 10:01 tick"
        );
    }
}
