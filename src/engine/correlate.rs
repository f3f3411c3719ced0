//! Dedup and correlation: what one alert does to the live state.
//!
//! Input: normalized alerts at `now`. A repeat of an alert's current state
//! only moves counters; a resolve resolves its alert (and the incident when
//! every alert is quiet); a firing alert that belongs to no incident is
//! suppressed, joins the live incident of its rule's group key within the
//! rule's window, or opens a new incident. Output: an [`Outcome`] per alert
//! and the changes recorded for the store.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};

use super::events::Event;
use super::history::HistoryEntry;
use super::timers::record_change;
use super::{chrono_dur, Engine, Live, Outcome};
use crate::model::Reason;
use crate::model::{
    Alert, AlertRecord, AlertStatus, Incident, IncidentKey, Priority, Sla, Status, TimelineKind,
    TrackedAlert, Trigger, ID_SLOTS, SYSTEM,
};
use crate::rules::correlate::{CorrelateRule, TitleContext};

impl Engine {
    /// Runs a batch of alerts through dedup and correlation.
    pub fn ingest(&mut self, alerts: Vec<Alert>, now: DateTime<Utc>) -> Vec<Outcome> {
        // Every firing alert of the batch can inhibit the others, whatever
        // their order in the batch (Alertmanager sees them all at once).
        for a in alerts.iter().filter(|a| a.status == AlertStatus::Firing) {
            self.suppress
                .inhibit
                .add(&self.rules.inhibit, a.fingerprint, &a.labels);
        }
        let out = alerts
            .into_iter()
            .map(|a| self.ingest_one(a, now))
            .collect();
        if self.suppress.sources_changed {
            self.recheck_suppressed(now);
        }
        self.settle_parents(now);
        out
    }

    /// One alert: dedup against its current occurrence, else correlate.
    pub fn ingest_one(&mut self, a: Alert, now: DateTime<Utc>) -> Outcome {
        if let Some(name) = self.heartbeat_of(&a.labels) {
            if a.status == AlertStatus::Firing {
                self.beat(&name, now);
            }
            return Outcome::Heartbeat;
        }
        let fp = a.fingerprint;
        if self.suppress.alerts.contains_key(&fp) {
            if let Some(o) = self.suppressed_notification(&a, now) {
                return o;
            }
        }
        if let Some(key) = self.live.active.get(&fp).copied() {
            let Some(rec) = self
                .live
                .incidents
                .get(&key)
                .and_then(|l| l.alerts.get(&fp))
            else {
                // Index and state disagree: trust the state and start over.
                self.live.active.remove(&fp);
                return self.ingest_one(a, now);
            };
            match (rec.alert.status, a.status) {
                (AlertStatus::Firing, AlertStatus::Firing)
                | (AlertStatus::Resolved, AlertStatus::Resolved) => {
                    self.repeat(key, &a, now);
                    return Outcome::Deduplicated(key);
                }
                (AlertStatus::Firing, AlertStatus::Resolved) => {
                    let end = a.ends_at.map(|e| e.min(now)).unwrap_or(now);
                    self.resolve_alert(key, fp, end, now, "resolved");
                    return Outcome::Resolved(key);
                }
                (AlertStatus::Resolved, AlertStatus::Firing)
                    if a.starts_at
                        .is_some_and(|s| rec.alert.ends_at.is_some_and(|end| s < end)) =>
                {
                    // Started before the occurrence we already saw end: a
                    // replay (Kafka redelivery, client retry), not a re-fire.
                    self.repeat(key, &a, now);
                    return Outcome::Deduplicated(key);
                }
                (AlertStatus::Resolved, AlertStatus::Firing) => {
                    // A new occurrence: re-fire here if the incident can still take it.
                    let rule = self.rules.correlate_rule(&a.labels);
                    let gk = self.group_key(rule, &a.labels);
                    let window = rule.window;
                    if self.joinable(key, &gk, window, now)
                        && self.suppression(fp, &a.labels, now).is_none()
                    {
                        self.add_alert(key, a, now);
                        return Outcome::Joined(key);
                    }
                    self.live.active.remove(&fp);
                }
            }
        }
        if a.status == AlertStatus::Resolved {
            return Outcome::Ignored;
        }
        self.route_new(a, now)
    }

    /// A firing alert that belongs to no incident: suppress it, or correlate
    /// it into an incident of its group, or open a new one.
    pub(super) fn route_new(&mut self, a: Alert, now: DateTime<Utc>) -> Outcome {
        if let Some(s) = self.suppression(a.fingerprint, &a.labels, now) {
            return self.suppress(a, s, now);
        }
        let rule = self.rules.correlate_rule(&a.labels).clone();
        let gk = self.group_key(&rule, &a.labels);
        if let Some(key) = self.live.groups.get(&gk).copied() {
            if self.joinable(key, &gk, rule.window, now) {
                self.add_alert(key, a, now);
                return Outcome::Joined(key);
            }
        }
        let key = self.create(a, &rule, gk, now);
        Outcome::Created(key)
    }

    /// The rule's group key; a missing heartbeat's alert is its own group.
    fn group_key(&self, rule: &CorrelateRule, labels: &crate::model::Labels) -> String {
        match self.missing_heartbeat(labels) {
            Some(h) => format!("{}{{heartbeat={:?}}}", rule.name, h.name),
            None => rule.group_key(labels),
        }
    }

    pub(super) fn joinable(
        &self,
        key: IncidentKey,
        gk: &str,
        window: Duration,
        now: DateTime<Utc>,
    ) -> bool {
        self.live.incidents.get(&key).is_some_and(|l| {
            l.incident.status != Status::Closed
                && l.incident.group_key == gk
                && now - l.incident.last_activity_at <= chrono_dur(window)
        })
    }

    pub(super) fn repeat(&mut self, key: IncidentKey, a: &Alert, now: DateTime<Utc>) {
        if let Some(l) = self.live.incidents.get_mut(&key) {
            if let Some(rec) = l.alerts.get_mut(&a.fingerprint) {
                rec.alert.repeat_count += 1;
                rec.alert.last_seen_at = now;
                let mut full = false;
                if a.status == AlertStatus::Firing {
                    if rec.alert.annotations != a.annotations {
                        rec.alert.annotations.clone_from(&a.annotations);
                        full = true;
                    }
                    rec.alert.ends_at = a.ends_at;
                    if !a.generator_url.is_empty() && *rec.alert.generator_url != *a.generator_url {
                        rec.alert.generator_url = self.strings.get(&a.generator_url);
                        full = true;
                    }
                    l.incident.last_activity_at = now;
                }
                // A plain repeat only moves the counters: the store writes
                // them as a small row instead of the whole record.
                if full {
                    self.dirty.alerts.insert((key, a.fingerprint));
                } else {
                    self.dirty.touched_alerts.insert((key, a.fingerprint));
                }
            }
            self.dirty.touched_incidents.insert(key);
            self.dirty.events.push(Event::Deduplicated);
        }
    }

    pub(super) fn resolve_alert(
        &mut self,
        key: IncidentKey,
        fp: u64,
        end: DateTime<Utc>,
        now: DateTime<Utc>,
        how: &str,
    ) {
        let flap = self.rules.flapping;
        let Some(l) = self.live.incidents.get_mut(&key) else {
            return;
        };
        let Some(rec) = l.alerts.get_mut(&fp) else {
            return;
        };
        if rec.alert.status != AlertStatus::Firing {
            return;
        }
        rec.alert.status = AlertStatus::Resolved;
        rec.alert.ends_at = Some(end);
        rec.alert.last_seen_at = now;
        let became_flapping = record_change(rec, now, &flap);
        let flapping = rec.flapping;
        let name = rec.name();
        l.incident.firing_count = l.incident.firing_count.saturating_sub(1);
        l.incident.last_activity_at = now;
        let all_quiet = l.incident.firing_count == 0;
        let any_flapping = l.alerts.values().any(|r| r.flapping);
        self.dirty.alerts.insert((key, fp));
        if self.live.active.get(&fp) == Some(&key) && self.suppress.inhibit.remove(fp) {
            self.suppress.sources_changed = true;
        }
        self.note(
            key,
            now,
            TimelineKind::AlertResolved,
            SYSTEM,
            format!("alert {name} {how}"),
        );
        if became_flapping {
            self.note_flapping(key, &name, now);
        }
        if !all_quiet {
            return;
        }
        if flap.keep_open && any_flapping {
            if flapping {
                self.dirty.events.push(Event::Suppressed {
                    reason: Reason::Flapping,
                });
            }
            return;
        }
        self.auto_resolve(key, now, "all alerts resolved");
    }

    pub(super) fn add_alert(&mut self, key: IncidentKey, a: Alert, now: DateTime<Utc>) {
        let fresh = self.record_for(&a, now);
        let mut became_flapping = false;
        self.suppress
            .inhibit
            .add(&self.rules.inhibit, a.fingerprint, &a.labels);
        let Some(l) = self.live.incidents.get_mut(&key) else {
            return;
        };
        let fp = a.fingerprint;
        let (kind, msg) = match l.alerts.get_mut(&fp) {
            Some(rec) => {
                rec.alert.status = AlertStatus::Firing;
                if record_change(rec, now, &self.rules.flapping) {
                    became_flapping = true;
                }
                rec.occurrences += 1;
                rec.alert.starts_at = a.starts_at.unwrap_or(now);
                rec.alert.ends_at = a.ends_at;
                rec.alert.last_seen_at = now;
                rec.alert.annotations = a.annotations.clone();
                (
                    TimelineKind::AlertRefired,
                    format!(
                        "alert {} fired again (occurrence {})",
                        rec.name(),
                        rec.occurrences
                    ),
                )
            }
            None => {
                let msg = format!("alert {} added ({})", fresh.name(), fresh.priority);
                l.incident.labels.retain(|k, v| a.labels.get(k) == Some(v));
                if let Some(agg) = self.live.aggregates.get_mut(&key) {
                    agg.add(&self.rules, &fresh);
                }
                if let Some(agg) = l
                    .incident
                    .parent
                    .and_then(|p| self.live.aggregates.get_mut(&p))
                {
                    agg.add(&self.rules, &fresh);
                }
                l.alerts.insert(fp, Box::new(fresh));
                self.dirty.new_alerts.insert((key, fp));
                (TimelineKind::AlertAdded, msg)
            }
        };
        l.incident.alert_count = l.alerts.len() as u32;
        l.incident.firing_count += 1;
        l.incident.last_activity_at = now;
        if let Some(rec) = l.alerts.get(&fp) {
            l.incident.occurred_at = l.incident.occurred_at.min(rec.alert.starts_at);
        }
        let reopen = l.incident.status == Status::Resolved;
        let flapping = l.alerts.get(&fp).is_some_and(|r| r.flapping);
        self.live.active.insert(fp, key);
        self.dirty.alerts.insert((key, fp));
        self.note(key, now, kind, SYSTEM, msg);
        if became_flapping {
            let name = self
                .live
                .incidents
                .get(&key)
                .and_then(|l| l.alerts.get(&fp))
                .map(|r| r.name())
                .unwrap_or_default();
            self.note_flapping(key, &name, now);
        }
        if flapping && !reopen {
            self.dirty.events.push(Event::Suppressed {
                reason: Reason::Flapping,
            });
        }
        if kind == TimelineKind::AlertAdded {
            self.fire(
                key,
                Trigger::AlertAdded,
                &crate::model::fingerprint::to_hex(fp),
                now,
            );
        }
        if reopen {
            if let Some(l) = self.live.incidents.get_mut(&key) {
                l.incident.reopen(now);
                self.history.rolling.observe(&l.incident);
            }
            self.dirty.events.push(Event::Reopened);
            self.note(
                key,
                now,
                TimelineKind::Reopened,
                SYSTEM,
                "an alert fired again within the correlation window".into(),
            );
            let n = self.reopen_count(key);
            self.fire(key, Trigger::Reopened, &n, now);
        }
        self.reprioritize(key, now);
    }

    /// After a person reopens a closed incident: alerts it still lists as
    /// firing but that another incident now tracks (or nothing does, since
    /// closing released them) stop counting here, so it cannot wait forever
    /// for a resolve that goes elsewhere. A person resolves it.
    pub(super) fn release_foreign_alerts(&mut self, key: IncidentKey, now: DateTime<Utc>) {
        let Some(l) = self.live.incidents.get_mut(&key) else {
            return;
        };
        let mut notes = Vec::new();
        for (fp, r) in l.alerts.iter_mut() {
            if r.alert.status != AlertStatus::Firing || self.live.active.get(fp) == Some(&key) {
                continue;
            }
            let owner = self
                .live
                .active
                .get(fp)
                .map(|k| format!("tracked by {k}"))
                .unwrap_or_else(|| "no longer tracked here".into());
            r.alert.status = AlertStatus::Resolved;
            r.alert.ends_at = Some(now);
            l.incident.firing_count = l.incident.firing_count.saturating_sub(1);
            self.dirty.alerts.insert((key, *fp));
            notes.push(format!(
                "alert {} is {owner}; resolve this incident by hand",
                r.name()
            ));
        }
        for n in notes {
            self.note(key, now, TimelineKind::AlertReleased, SYSTEM, n);
        }
    }

    pub(super) fn reopen_count(&self, key: IncidentKey) -> String {
        self.live
            .incidents
            .get(&key)
            .map(|l| l.incident.reopen_count.to_string())
            .unwrap_or_default()
    }

    pub(super) fn record_for(&mut self, a: &Alert, now: DateTime<Utc>) -> AlertRecord {
        let (mut impact, mut urgency) = self.rules.prioritize.assess(&a.labels);
        let mut priority = self.rules.prioritize.priority(impact, urgency);
        let mut category = self.strings.get(self.rules.category(&a.labels));
        let heartbeat = self
            .missing_heartbeat(&a.labels)
            .map(|h| (h.priority, h.category.clone()));
        if let Some((hb_priority, hb_category)) = heartbeat {
            // A missing heartbeat has the category and priority its rule gives.
            if let Some((i, u)) = self.heartbeat_levels(hb_priority) {
                (impact, urgency) = (i, u);
            }
            priority = hb_priority;
            category = self.strings.get(&hb_category);
        }
        let generator_url = self.strings.get(&a.generator_url);
        AlertRecord {
            alert: TrackedAlert::first_seen(a, generator_url, now),
            occurrences: 1,
            impact,
            urgency,
            priority,
            category,
            changes: thin_vec::ThinVec::new(),
            flapping: false,
            origin: a.origin.clone().map(Box::new),
        }
    }

    /// Fresh SLA deadlines for an incident of `priority` created at `now`.
    pub(super) fn sla_for(&self, priority: Priority, now: DateTime<Utc>) -> Sla {
        let t = self.rules.sla[priority.idx()];
        Sla {
            acknowledge_by: now + chrono_dur(t.acknowledge),
            resolve_by: now + chrono_dur(t.resolve),
            breached: false,
            acknowledge_breached: false,
            resolve_breached: false,
        }
    }

    pub(super) fn next_key(&mut self, now: DateTime<Utc>) -> IncidentKey {
        let date = now.year() as u32 * 10_000 + now.month() * 100 + now.day();
        let (date, mut seq) = match self.ids.last {
            Some(k) if k.date() >= date => (k.date(), k.seq() + 1),
            _ => (date, 1),
        };
        if let Some(slot) = self.ids.slot {
            // The next sequence number at or after `seq` that ends in the slot.
            let n = u64::from(ID_SLOTS);
            seq += (u64::from(slot) + n - seq % n) % n;
        }
        let key = IncidentKey::new(date, seq);
        self.ids.last = Some(key);
        key
    }

    pub(super) fn create(
        &mut self,
        a: Alert,
        rule: &CorrelateRule,
        gk: String,
        now: DateTime<Utc>,
    ) -> IncidentKey {
        let key = self.next_key(now);
        let rec = self.record_for(&a, now);
        let group_labels = rule.group_labels(&a.labels);
        let title = self.rules.render_title(
            rule,
            &TitleContext {
                labels: &a.labels,
                annotations: &a.annotations,
                group_labels: &group_labels,
                rule: &rule.name,
            },
        );
        let incident = Incident {
            title,
            priority: rec.priority,
            impact: rec.impact,
            urgency: rec.urgency,
            category: rec.category.to_string(),
            rule: rule.name.clone(),
            group_key: gk.clone(),
            labels: a.labels.clone(),
            alert_count: 1,
            firing_count: 1,
            occurred_at: rec.alert.starts_at.min(now),
            ..Incident::new(key, now, self.sla_for(rec.priority, now))
        };
        let msg = format!(
            "opened by alert {} from {}: {} (impact {} × urgency {}), category {}, rule {}",
            rec.name(),
            a.source.as_str(),
            rec.priority,
            rec.impact.as_str(),
            rec.urgency.as_str(),
            rec.category,
            rule.name
        );
        let priority = rec.priority;
        let category = rec.category.to_string();
        let mut incident = incident;
        incident.team = self.rules.team_of(rule, &a.labels);
        incident.similar = self
            .similar_to(&gk, &rule.name, &a.labels)
            .iter()
            .map(ToString::to_string)
            .collect();
        // Recurrence of this group key within the problem window.
        let problems = self.rules.problems;
        let from = now - chrono_dur(problems.within);
        let hist = self.history.by_group.entry(gk.clone()).or_default();
        while hist.front().is_some_and(|(_, t)| *t < from) {
            hist.pop_front();
        }
        let recurrences = hist.len() + 1;
        incident.problem_candidate = recurrences >= problems.recurrence;
        let problem = incident.problem_candidate;
        self.suppress
            .inhibit
            .add(&self.rules.inhibit, a.fingerprint, &a.labels);
        let mut alerts = BTreeMap::new();
        alerts.insert(a.fingerprint, Box::new(rec));
        self.live
            .incidents
            .insert(key, Box::new(Live { incident, alerts }));
        self.live.active.insert(a.fingerprint, key);
        self.live.groups.insert(gk.clone(), key);
        self.dirty.alerts.insert((key, a.fingerprint));
        self.dirty.new_alerts.insert((key, a.fingerprint));
        self.dirty.new_incidents.insert(key);
        self.dirty
            .events
            .push(Event::Created { priority, category });
        self.note(key, now, TimelineKind::Created, SYSTEM, msg);
        self.on_created(key, now);
        self.fire(key, Trigger::Opened, "0", now);
        if problem {
            self.dirty.events.push(Event::ProblemCandidate);
            self.note(
                key,
                now,
                TimelineKind::ProblemCandidate,
                SYSTEM,
                format!(
                    "problem candidate: {recurrences} incidents of group {gk} within {}; hand the recurring cause to problem management",
                    humantime::format_duration(problems.within)
                ),
            );
        }
        self.remember(HistoryEntry {
            key,
            group_key: gk,
            rule: rule.name.clone(),
            labels: a.labels,
            created_at: now,
        });
        // Blast-radius rules may already apply (at_least: 1).
        self.reprioritize(key, now);
        key
    }
}

#[cfg(test)]
mod tests {

    use std::time::Duration;

    use super::*;
    use crate::engine::testkit::*;
    use crate::engine::*;

    use crate::model::*;

    #[test]
    fn first_alert_creates_incident_with_rule_category_priority_sla() {
        let mut e = NODES.engine();
        let Outcome::Created(k) = e.ingest_one(firing(A), NODES.t(0)) else {
            panic!("expected created")
        };
        assert_eq!(k.to_string(), "INC-20261123-0001");
        let i = inc(&e, k);
        assert_eq!(i.title, "eu nodes down");
        assert_eq!(i.rule, "node");
        assert_eq!(i.group_key, r#"node{cluster="eu"}"#);
        assert_eq!(i.category, "hardware");
        assert_eq!(
            (i.impact, i.urgency, i.priority),
            (Level::Low, Level::High, Priority::P3)
        );
        assert_eq!(i.sla.acknowledge_by, NODES.t(60));
        assert_eq!(i.sla.resolve_by, NODES.t(8 * 60));
        assert_eq!(
            (i.alert_count, i.firing_count, i.status),
            (1, 1, Status::Open)
        );
        let ws = e.take_changes();
        assert_eq!(ws.incidents.len(), 1);
        assert_eq!(ws.alerts.len(), 1);
        assert_eq!(kinds(&ws, k), vec!["created"]);
        assert!(ws.events.contains(&Event::Created {
            priority: Priority::P3,
            category: "hardware".into()
        }));
    }

    #[test]
    fn ids_of_an_instance_end_in_its_slot() {
        let mut a = engine_in_slot(1);
        let mut b = engine_in_slot(0);
        let ids = |e: &mut Engine| -> Vec<String> {
            (0..3).map(|_| e.next_key(NODES.t(0)).to_string()).collect()
        };
        assert_eq!(
            ids(&mut a),
            [
                "INC-20261123-0001",
                "INC-20261123-0101",
                "INC-20261123-0201"
            ]
        );
        assert_eq!(
            ids(&mut b),
            [
                "INC-20261123-0100",
                "INC-20261123-0200",
                "INC-20261123-0300"
            ]
        );
        // After adopting a higher id from another instance, the next local
        // id is still this instance's own.
        a.ids.last = Some(IncidentKey::new(20261123, 957));
        assert_eq!(a.next_key(NODES.t(0)).to_string(), "INC-20261123-1001");
        // A new day starts over.
        assert_eq!(
            a.next_key(NODES.t(24 * 60)).to_string(),
            "INC-20261124-0001"
        );
    }

    #[test]
    fn repeats_are_deduplicated_and_counted() {
        let mut e = NODES.engine();
        let Outcome::Created(k) = e.ingest_one(firing(A), NODES.t(0)) else {
            panic!()
        };
        assert_eq!(
            e.ingest_one(firing(A), NODES.t(1)),
            Outcome::Deduplicated(k)
        );
        assert_eq!(
            e.ingest_one(firing(A), NODES.t(2)),
            Outcome::Deduplicated(k)
        );
        let l = e.live(k).expect("live");
        let rec = l.alerts.values().next().expect("one alert");
        assert_eq!(rec.alert.repeat_count, 2);
        assert_eq!(rec.alert.last_seen_at, NODES.t(2));
        assert_eq!(l.incident.alert_count, 1);
        assert_eq!(l.incident.last_activity_at, NODES.t(2));
        let ws = e.take_changes();
        assert_eq!(
            ws.events
                .iter()
                .filter(|e| **e == Event::Deduplicated)
                .count(),
            2
        );
    }

    #[test]
    fn alerts_of_one_group_join_within_the_window() {
        let mut e = NODES.engine();
        let Outcome::Created(k) = e.ingest_one(firing(A), NODES.t(0)) else {
            panic!()
        };
        assert_eq!(e.ingest_one(firing(B), NODES.t(20)), Outcome::Joined(k));
        let i = inc(&e, k);
        assert_eq!((i.alert_count, i.firing_count), (2, 2));
        // Common labels keep only what both alerts share.
        assert_eq!(i.labels.get("cluster"), Some("eu"));
        assert!(!i.labels.contains_key("instance"));
        // Another cluster is another group.
        let other = [
            ("alertname", "NodeDown"),
            ("cluster", "us"),
            ("instance", "x"),
        ];
        assert!(
            matches!(e.ingest_one(firing(&other), NODES.t(21)), Outcome::Created(k2) if k2 != k)
        );
    }

    #[test]
    fn a_quiet_incident_past_the_window_does_not_take_new_alerts() {
        let mut e = NODES.engine();
        let Outcome::Created(k) = e.ingest_one(firing(A), NODES.t(0)) else {
            panic!()
        };
        // 31 minutes without activity: the 30m window has passed.
        let Outcome::Created(k2) = e.ingest_one(firing(B), NODES.t(31)) else {
            panic!("expected a new incident")
        };
        assert_ne!(k, k2);
        assert_eq!(k2.to_string(), "INC-20261123-0002");
        // The new incident now owns the group key.
        let c = [
            ("alertname", "NodeDown"),
            ("cluster", "eu"),
            ("instance", "c"),
        ];
        assert_eq!(e.ingest_one(firing(&c), NODES.t(32)), Outcome::Joined(k2));
    }

    #[test]
    fn repeats_keep_the_window_open() {
        let mut e = NODES.engine();
        let Outcome::Created(k) = e.ingest_one(firing(A), NODES.t(0)) else {
            panic!()
        };
        for m in [20, 40, 60] {
            e.ingest_one(firing(A), NODES.t(m));
        }
        assert_eq!(e.ingest_one(firing(B), NODES.t(80)), Outcome::Joined(k));
    }

    #[test]
    fn resolving_every_alert_resolves_the_incident_and_refire_reopens_it() {
        let mut e = NODES.engine();
        let Outcome::Created(k) = e.ingest_one(firing(A), NODES.t(0)) else {
            panic!()
        };
        e.ingest_one(firing(B), NODES.t(1));
        assert_eq!(e.ingest_one(resolved(A), NODES.t(5)), Outcome::Resolved(k));
        assert_eq!(inc(&e, k).status, Status::Open);
        assert_eq!(inc(&e, k).firing_count, 1);
        e.ingest_one(resolved(B), NODES.t(10));
        let i = inc(&e, k);
        assert_eq!(
            (i.status, i.firing_count, i.resolved_at),
            (Status::Resolved, 0, Some(NODES.t(10)))
        );
        assert_eq!(i.resolved_by.as_deref(), Some(SYSTEM));
        // A duplicate resolve changes nothing.
        assert_eq!(
            e.ingest_one(resolved(B), NODES.t(11)),
            Outcome::Deduplicated(k)
        );
        let ws = e.take_changes();
        assert!(ws
            .events
            .iter()
            .any(|ev| matches!(ev, Event::Resolved { seconds, .. } if *seconds == 600.0)));
        // Re-fire within the window: same incident, reopened, occurrence 2.
        assert_eq!(e.ingest_one(firing(A), NODES.t(20)), Outcome::Joined(k));
        let l = e.live(k).expect("live");
        assert_eq!(
            (
                l.incident.status,
                l.incident.reopen_count,
                l.incident.firing_count
            ),
            (Status::Open, 1, 1)
        );
        assert_eq!(l.incident.resolved_at, None);
        let rec = l.alerts.get(&firing(A).fingerprint).expect("alert A");
        assert_eq!(
            (rec.alert.status, rec.occurrences),
            (AlertStatus::Firing, 2)
        );
        let ws = e.take_changes();
        assert_eq!(kinds(&ws, k), vec!["alert_refired", "reopened"]);
    }

    #[test]
    fn replayed_firing_resolved_pair_changes_nothing() {
        let mut e = NODES.engine();
        let mut fire = firing(A);
        fire.starts_at = Some(NODES.t(0));
        let mut res = resolved(A);
        res.starts_at = Some(NODES.t(0));
        res.ends_at = Some(NODES.t(5));
        let Outcome::Created(k) = e.ingest_one(fire.clone(), NODES.t(1)) else {
            panic!()
        };
        e.ingest_one(res.clone(), NODES.t(6));
        e.take_changes();
        // The same two notifications again (a redelivery).
        assert_eq!(e.ingest_one(fire, NODES.t(7)), Outcome::Deduplicated(k));
        assert_eq!(e.ingest_one(res, NODES.t(7)), Outcome::Deduplicated(k));
        let i = e.live(k).expect("live").incident.clone();
        assert_eq!((i.status, i.reopen_count), (Status::Resolved, 0));
        let ws = e.take_changes();
        assert!(!ws
            .events
            .iter()
            .any(|ev| matches!(ev, Event::Resolved { .. } | Event::Reopened)));
        // A real re-fire starts after the end: a new occurrence.
        let mut again = firing(A);
        again.starts_at = Some(NODES.t(8));
        assert_eq!(e.ingest_one(again, NODES.t(8)), Outcome::Joined(k));
    }

    #[test]
    fn refire_after_the_window_is_a_new_incident() {
        let mut e = NODES.engine();
        let Outcome::Created(k) = e.ingest_one(firing(A), NODES.t(0)) else {
            panic!()
        };
        e.ingest_one(resolved(A), NODES.t(5));
        let Outcome::Created(k2) = e.ingest_one(firing(A), NODES.t(50)) else {
            panic!("expected new incident")
        };
        assert_ne!(k, k2);
        // The old incident still holds its resolved occurrence.
        assert_eq!(inc(&e, k).status, Status::Resolved);
        // And the fingerprint now follows the new incident.
        assert_eq!(
            e.ingest_one(firing(A), NODES.t(51)),
            Outcome::Deduplicated(k2)
        );
    }

    #[test]
    fn resolved_alert_never_seen_firing_is_ignored() {
        let mut e = NODES.engine();
        assert_eq!(e.ingest_one(resolved(A), NODES.t(0)), Outcome::Ignored);
        assert!(e.take_changes().is_empty());
    }

    #[test]
    fn ids_restart_each_day_and_continue_after_restore() {
        let mut e = NODES.engine();
        let Outcome::Created(k1) = e.ingest_one(firing(A), NODES.t(0)) else {
            panic!()
        };
        let next_day = NODES.t(24 * 60);
        let other = [("alertname", "X")];
        let Outcome::Created(k2) = e.ingest_one(firing(&other), next_day) else {
            panic!()
        };
        assert_eq!(k1.to_string(), "INC-20261123-0001");
        assert_eq!(k2.to_string(), "INC-20261124-0001");
        let live: Vec<Live> = e.live_incidents().cloned().collect();
        let mut r = Engine::restore(
            e.rules().clone(),
            Settings {
                close_after: Duration::from_secs(60),
                id_slot: None,
            },
            live,
            Restored {
                last_key: Some(k2),
                ..Restored::default()
            },
        );
        // Restored state keeps correlating and deduplicating.
        assert_eq!(
            r.ingest_one(firing(A), NODES.t(10)),
            Outcome::Deduplicated(k1)
        );
        assert_eq!(r.ingest_one(firing(B), NODES.t(11)), Outcome::Joined(k1));
        let Outcome::Created(k3) = r.ingest_one(firing(&[("alertname", "Y")]), next_day) else {
            panic!()
        };
        assert_eq!(k3.to_string(), "INC-20261124-0002");
    }
}
