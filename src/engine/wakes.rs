//! When each live incident next needs the clock: the timer heap that lets
//! [`Engine::tick`] visit only the incidents with something due, so a tick
//! costs what is due, not what is open.
//!
//! Contract: every live incident with a time-driven transition ahead (an
//! alert's `endsAt`, flapping that may settle, an SLA deadline, an
//! escalation level, the auto-close of a quiet resolved incident) has a
//! wake at or before that instant. Wakes are lazy: a change that moves a
//! deadline later leaves the earlier wake in place, and the incident is
//! re-examined then and woken again for what is left. Changes are picked
//! up from the dirty marks ([`Engine::schedule_changed`], run by `tick` and
//! `take_changes`); a new rule set or a restore schedules every incident.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use chrono::{DateTime, Utc};

use super::{chrono_dur, Engine, Live};
use crate::model::{matcher, AlertRecord, AlertStatus, IncidentKey, Status};
use crate::rules::actions::LevelWhen;
use crate::rules::prioritize::Flapping;
use crate::rules::RuleSet;

/// The pending wakes: a min-heap of (instant, incident), and the earliest
/// pending instant of each incident (heap entries that disagree with it
/// are stale and skipped).
#[derive(Default)]
pub(super) struct Wakes {
    heap: BinaryHeap<Reverse<(DateTime<Utc>, IncidentKey)>>,
    earliest: HashMap<IncidentKey, DateTime<Utc>>,
}

impl Wakes {
    /// Asks for a wake of `key` at `at`, unless one is pending as early.
    pub(super) fn at(&mut self, key: IncidentKey, at: DateTime<Utc>) {
        if self.earliest.get(&key).is_some_and(|t| *t <= at) {
            return;
        }
        self.earliest.insert(key, at);
        self.heap.push(Reverse((at, key)));
    }

    /// The incidents whose wake is due at `now` (each once), removed.
    pub(super) fn due(&mut self, now: DateTime<Utc>) -> Vec<IncidentKey> {
        let mut out = Vec::new();
        while let Some(Reverse((at, key))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            if self.earliest.get(&key) == Some(&at) {
                self.earliest.remove(&key);
                out.push(key);
            }
        }
        out
    }

    /// Forgets an incident that left memory (its heap entries go stale).
    pub(super) fn forget(&mut self, key: IncidentKey) {
        self.earliest.remove(&key);
    }

    pub(super) fn clear(&mut self) {
        self.heap.clear();
        self.earliest.clear();
    }

    /// Pending wakes (for tests and the bench).
    pub(super) fn len(&self) -> usize {
        self.earliest.len()
    }
}

/// When an alert next needs the clock: its `endsAt` while firing, the
/// moment its oldest change leaves the flapping window while flapping.
pub(super) fn alert_wake(r: &AlertRecord, flap: &Flapping) -> Option<DateTime<Utc>> {
    let expiry = (r.alert.status == AlertStatus::Firing)
        .then_some(r.alert.ends_at)
        .flatten();
    let settle = if r.flapping {
        r.changes.first().map(|t| *t + chrono_dur(flap.window))
    } else {
        None
    };
    [expiry, settle].into_iter().flatten().min()
}

/// When an incident (not its alerts) next needs the clock: SLA deadlines
/// not yet missed, the next escalation level, the auto-close.
pub(super) fn incident_wake(
    l: &Live,
    rules: &RuleSet,
    close_after: chrono::Duration,
) -> Option<DateTime<Utc>> {
    let i = &l.incident;
    let mut out: Option<DateTime<Utc>> = None;
    let mut at = |t: DateTime<Utc>| out = Some(out.map_or(t, |o| o.min(t)));
    // A grouped incident's SLA and escalation are its parent's.
    if i.parent.is_none() {
        if i.status == Status::Open && i.acknowledged_at.is_none() && !i.sla.acknowledge_breached {
            at(i.sla.acknowledge_by);
        }
        if i.status.is_active() && !i.sla.resolve_breached {
            at(i.sla.resolve_by);
        }
        if i.status.is_active() {
            let policy = rules.escalations.iter().find(|p| {
                (p.priorities.is_empty() || p.priorities.contains(&i.priority))
                    && matcher::all_match(&p.matchers, &i.labels)
            });
            if let Some(policy) = policy {
                let resolve_target = rules.sla[i.priority.idx()].resolve;
                for (idx, level) in policy.levels.iter().enumerate() {
                    if (idx as u32) < i.escalation_level {
                        continue;
                    }
                    match level.when {
                        LevelWhen::Unacknowledged(after) if i.status == Status::Open => {
                            at(i.created_at + chrono_dur(after))
                        }
                        LevelWhen::Unacknowledged(_) => {}
                        LevelWhen::ResolveProgress(f) => {
                            at(i.created_at + chrono_dur(resolve_target.mul_f64(f)))
                        }
                    }
                }
            }
        }
    }
    if let Some(t) = super::paging::paging_wake(i, rules) {
        at(t);
    }
    if i.status == Status::Resolved && i.firing_count == 0 {
        if let Some(r) = i.resolved_at {
            at(r + close_after);
        }
    }
    out
}

impl Engine {
    /// Wakes for everything marked changed since the last take: the
    /// incident's own deadlines for changed incidents, the alert's for
    /// changed alerts.
    pub(super) fn schedule_changed(&mut self) {
        let close_after = chrono_dur(self.settings.close_after);
        let flap = self.rules.flapping;
        let d = &self.dirty;
        for key in d.incidents.iter().chain(d.touched_incidents.iter()) {
            if let Some(l) = self.live.incidents.get(key) {
                if let Some(t) = incident_wake(l, &self.rules, close_after) {
                    self.wakes.at(*key, t);
                }
            }
        }
        for (key, fp) in d.alerts.iter().chain(d.touched_alerts.iter()) {
            if let Some(r) = self.live.incidents.get(key).and_then(|l| l.alerts.get(fp)) {
                if let Some(t) = alert_wake(r, &flap) {
                    self.wakes.at(*key, t);
                }
            }
        }
    }

    /// Wakes `key` for everything ahead of it (after it was examined).
    pub(super) fn schedule(&mut self, key: IncidentKey) {
        let close_after = chrono_dur(self.settings.close_after);
        let flap = self.rules.flapping;
        let Some(l) = self.live.incidents.get(&key) else {
            return;
        };
        let alerts = l.alerts.values().filter_map(|r| alert_wake(r, &flap));
        let next = incident_wake(l, &self.rules, close_after)
            .into_iter()
            .chain(alerts)
            .min();
        if let Some(t) = next {
            self.wakes.at(key, t);
        }
    }

    /// Schedules every live incident afresh (a restore, new rules).
    pub(super) fn schedule_all(&mut self) {
        self.wakes.clear();
        let keys: Vec<IncidentKey> = self.live.incidents.keys().copied().collect();
        for key in keys {
            self.schedule(key);
        }
    }

    /// Pending wakes: one per live incident with something ahead.
    pub fn pending_wakes(&self) -> usize {
        self.wakes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testkit::*;
    use crate::engine::Outcome;

    fn node(cluster: &str) -> [(&'static str, String); 3] {
        [
            ("alertname", "NodeDown".to_string()),
            ("cluster", cluster.to_string()),
            ("severity", "critical".to_string()),
        ]
    }

    fn firing_in(cluster: &str, ends_at: Option<DateTime<Utc>>) -> crate::model::Alert {
        let pairs = node(cluster);
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut a = firing(&pairs);
        a.ends_at = ends_at;
        a
    }

    #[test]
    fn every_open_incident_has_one_wake_and_a_quiet_tick_changes_nothing() {
        let mut e = NODES.engine();
        for c in 0..50 {
            e.ingest_one(firing_in(&format!("c{c}"), None), NODES.t(0));
        }
        e.take_changes();
        assert_eq!(e.pending_wakes(), 50, "each has its SLA deadlines ahead");
        e.tick(NODES.t(1));
        assert!(e.take_changes().is_empty(), "nothing is due a minute in");
        assert_eq!(e.pending_wakes(), 50);
    }

    #[test]
    fn a_refresh_that_moves_ends_at_later_is_seen_when_the_old_wake_comes() {
        let mut e = NODES.engine();
        let Outcome::Created(k) = e.ingest_one(firing_in("c1", Some(NODES.t(4))), NODES.t(0))
        else {
            panic!("created")
        };
        e.take_changes();
        // Re-sent before it expires, with a later end (as Alertmanager does).
        e.ingest_one(firing_in("c1", Some(NODES.t(10))), NODES.t(3));
        e.take_changes();
        e.tick(NODES.t(5));
        assert_eq!(inc(&e, k).firing_count, 1, "the old end no longer counts");
        e.tick(NODES.t(9));
        assert_eq!(inc(&e, k).firing_count, 1);
        e.tick(NODES.t(11));
        assert_eq!(inc(&e, k).firing_count, 0, "expired at the new end");
    }

    #[test]
    fn an_earlier_end_brings_the_wake_forward() {
        let mut e = NODES.engine();
        let Outcome::Created(k) = e.ingest_one(firing_in("c1", Some(NODES.t(50))), NODES.t(0))
        else {
            panic!("created")
        };
        // Without a take in between: the tick picks the change up itself.
        e.ingest_one(firing_in("c1", Some(NODES.t(2))), NODES.t(1));
        e.tick(NODES.t(3));
        assert_eq!(inc(&e, k).firing_count, 0);
    }

    #[test]
    fn a_breach_found_by_a_wake_is_recorded_once() {
        let mut e = NODES.engine();
        let Outcome::Created(k) = e.ingest_one(firing_in("c1", None), NODES.t(0)) else {
            panic!("created")
        };
        e.take_changes();
        let deadline = inc(&e, k).sla.acknowledge_by;
        // At the deadline exactly nothing is missed yet; just after, it is.
        e.tick(deadline);
        assert!(!inc(&e, k).sla.acknowledge_breached);
        for s in 1..5 {
            e.tick(deadline + chrono::Duration::seconds(s));
        }
        let ws = e.take_changes();
        let breaches = ws
            .timeline
            .iter()
            .filter(|(_, _, t)| t.kind == crate::model::TimelineKind::SlaBreached)
            .count();
        assert_eq!(breaches, 1, "{:?}", ws.timeline);
    }
}
