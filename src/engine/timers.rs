//! Time-driven transitions: alert expiry, flapping that settles, SLA
//! breaches, escalation steps and the auto-close of quiet resolved
//! incidents, all at an explicit `now`. A tick examines only the incidents
//! whose wake is due (see the `wakes` module), then wakes each again for
//! what is left ahead of it.

use chrono::{DateTime, Utc};

use super::events::Event;
use super::{chrono_dur, secs, Engine};
use crate::model::{
    AlertRecord, AlertStatus, IncidentKey, SlaKind, Status, TimelineKind, Trigger, SYSTEM,
};
use crate::rules::prioritize::Flapping;

impl Engine {
    /// Time-driven transitions: alert expiry (`endsAt` passed), SLA breaches,
    /// escalation, auto-close of quiet resolved incidents.
    pub fn tick(&mut self, now: DateTime<Utc>) {
        self.check_heartbeats(now);
        // Silences and maintenance windows that ended, inhibitors that stopped.
        self.recheck_suppressed(now);
        self.schedule_changed();
        let due = self.wakes.due(now);
        let close_after = chrono_dur(self.settings.close_after);
        let flap = self.rules.flapping;
        let mut expired = Vec::new();
        let mut ack_breach = Vec::new();
        let mut res_breach = Vec::new();
        let mut close = Vec::new();
        let mut settled = Vec::new();
        for key in &due {
            let Some(l) = self.live.incidents.get_mut(key) else {
                continue;
            };
            let mut any_flapping = false;
            for (fp, r) in l.alerts.iter_mut() {
                if r.alert.status == AlertStatus::Firing
                    && r.alert.ends_at.is_some_and(|e| e <= now)
                {
                    expired.push((*key, *fp, r.alert.ends_at.unwrap_or(now)));
                }
                if r.flapping {
                    if settle(r, now, &flap) {
                        settled.push((*key, *fp, r.name()));
                    } else {
                        any_flapping = true;
                    }
                }
            }
            if !any_flapping
                && l.incident.status.is_active()
                && l.incident.firing_count == 0
                && settled.iter().any(|(k, _, _)| k == key)
            {
                // Held open only by flapping; it has settled now.
                settled.push((*key, 0, String::new()));
            }
            let i = &l.incident;
            if i.status == Status::Open
                && i.acknowledged_at.is_none()
                && !i.sla.acknowledge_breached
                && now > i.sla.acknowledge_by
            {
                ack_breach.push(*key);
            }
            if i.status.is_active() && !i.sla.resolve_breached && now > i.sla.resolve_by {
                res_breach.push(*key);
            }
            if i.status == Status::Resolved
                && i.firing_count == 0
                && i.resolved_at.is_some_and(|r| now - r >= close_after)
            {
                close.push(*key);
            }
        }
        for (key, fp, name) in settled {
            if name.is_empty() {
                self.auto_resolve(key, now, "alerts stopped flapping; all alerts resolved");
            } else {
                self.dirty.alerts.insert((key, fp));
                self.note(
                    key,
                    now,
                    TimelineKind::FlappingStopped,
                    SYSTEM,
                    format!("alert {name} stopped flapping"),
                );
            }
        }
        for (key, fp, end) in expired {
            self.resolve_alert(
                key,
                fp,
                end,
                now,
                "expired (endsAt passed without a refresh)",
            );
        }
        for key in ack_breach {
            self.breach(key, now, SlaKind::Acknowledge);
        }
        for key in res_breach {
            self.breach(key, now, SlaKind::Resolve);
        }
        self.escalate(now, &due);
        self.release_held(now);
        self.settle_parents(now);
        for key in close {
            if let Some(l) = self.live.incidents.get_mut(&key) {
                if l.incident.status != Status::Resolved {
                    continue;
                }
                l.incident.status = Status::Closed;
                l.incident.closed_at = Some(now);
                self.dirty.closed.push(key);
                self.dirty.events.push(Event::Closed);
                let after = humantime::format_duration(self.settings.close_after);
                self.note(
                    key,
                    now,
                    TimelineKind::Closed,
                    SYSTEM,
                    format!("closed after {after} without a new alert"),
                );
                let n = self.reopen_count(key);
                self.fire(key, Trigger::Closed, &n, now);
            }
        }
        for key in due {
            self.schedule(key);
        }
    }

    pub(super) fn breach(&mut self, key: IncidentKey, now: DateTime<Utc>, kind: SlaKind) {
        let Some(l) = self.live.incidents.get_mut(&key) else {
            return;
        };
        if l.incident.parent.is_some() {
            // Grouped: the major incident's SLA is the one that counts.
            return;
        }
        let s = &mut l.incident.sla;
        let (flag, deadline) = match kind {
            SlaKind::Acknowledge => (&mut s.acknowledge_breached, s.acknowledge_by),
            SlaKind::Resolve => (&mut s.resolve_breached, s.resolve_by),
        };
        if *flag {
            return;
        }
        *flag = true;
        s.breached = true;
        let p = l.incident.priority;
        self.dirty
            .events
            .push(Event::SlaBreached { priority: p, kind });
        self.note(
            key,
            now,
            TimelineKind::SlaBreached,
            SYSTEM,
            format!(
                "{p} {kind} target missed (deadline {})",
                deadline.to_rfc3339()
            ),
        );
        self.fire(key, Trigger::SlaBreached, kind.as_str(), now);
    }

    pub(super) fn check_resolve_breach(&mut self, key: IncidentKey, now: DateTime<Utc>) {
        if self
            .live
            .incidents
            .get(&key)
            .is_some_and(|l| now > l.incident.sla.resolve_by)
        {
            self.breach(key, now, SlaKind::Resolve);
        }
    }

    /// Resolves an active incident on the daemon's own authority.
    pub(super) fn auto_resolve(&mut self, key: IncidentKey, now: DateTime<Utc>, why: &str) {
        let Some(l) = self.live.incidents.get_mut(&key) else {
            return;
        };
        if !l.incident.status.is_active() {
            return;
        }
        l.incident.status = Status::Resolved;
        l.incident.resolved_at = Some(now);
        l.incident.resolved_by = Some(SYSTEM.to_string());
        let ev = Event::Resolved {
            priority: l.incident.priority,
            category: l.incident.category.clone(),
            seconds: secs(now - l.incident.created_at),
        };
        self.history.rolling.observe(&l.incident);
        self.dirty.events.push(ev);
        self.check_resolve_breach(key, now);
        self.note(key, now, TimelineKind::Resolved, SYSTEM, why.to_string());
        let n = self.reopen_count(key);
        self.fire(key, Trigger::Resolved, &n, now);
    }

    pub(super) fn note_flapping(&mut self, key: IncidentKey, name: &str, now: DateTime<Utc>) {
        let f = self.rules.flapping;
        let what = if f.keep_open {
            "the incident stays open until it settles"
        } else {
            "the incident follows it anyway (flapping.keep_open: false)"
        };
        self.note(
            key,
            now,
            TimelineKind::Flapping,
            SYSTEM,
            format!(
                "alert {name} is flapping: more than {} state changes within {}; {what}",
                f.max_changes,
                humantime::format_duration(f.window)
            ),
        );
    }
}

/// Records a state change; true if the alert just started flapping.
pub(super) fn record_change(rec: &mut AlertRecord, now: DateTime<Utc>, f: &Flapping) -> bool {
    let from = now - chrono_dur(f.window);
    rec.changes.retain(|t| *t >= from);
    rec.changes.push(now);
    while rec.changes.len() > f.max_changes + 1 {
        rec.changes.remove(0);
    }
    let was = rec.flapping;
    rec.flapping = rec.changes.len() > f.max_changes;
    !was && rec.flapping
}

/// Forgets changes older than the window; true if the alert stopped flapping.
pub(super) fn settle(rec: &mut AlertRecord, now: DateTime<Utc>, f: &Flapping) -> bool {
    let from = now - chrono_dur(f.window);
    rec.changes.retain(|t| *t >= from);
    let was = rec.flapping;
    rec.flapping = rec.changes.len() > f.max_changes;
    was && !rec.flapping
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::engine::testkit::*;
    use crate::engine::*;

    use crate::model::*;

    #[test]
    fn tick_records_sla_breaches_once_and_closes_quiet_incidents() {
        let mut e = NODES.engine();
        let Outcome::Created(k) = e.ingest_one(firing(A), NODES.t(0)) else {
            panic!()
        };
        e.take_changes();
        e.tick(NODES.t(59));
        assert!(e.take_changes().is_empty());
        e.tick(NODES.t(61));
        e.tick(NODES.t(62));
        let ws = e.take_changes();
        assert_eq!(
            ws.events,
            vec![Event::SlaBreached {
                priority: Priority::P3,
                kind: SlaKind::Acknowledge
            }]
        );
        let i = inc(&e, k);
        assert!(i.sla.breached && i.sla.acknowledge_breached && !i.sla.resolve_breached);
        e.ingest_one(resolved(A), NODES.t(70));
        e.take_changes();
        e.tick(NODES.t(70 + 59));
        assert_eq!(inc(&e, k).status, Status::Resolved);
        e.tick(NODES.t(70 + 60));
        let ws = e.take_changes();
        assert!(ws
            .incidents
            .iter()
            .any(|i| i.id == k && i.status == Status::Closed));
        assert!(e.live(k).is_none(), "closed incidents leave memory");
        // After closing, the same alert opens a new incident.
        assert!(matches!(e.ingest_one(firing(A), NODES.t(200)), Outcome::Created(k2) if k2 != k));
    }

    #[test]
    fn tick_expires_alerts_whose_ends_at_passed() {
        let mut e = NODES.engine();
        let mut a = firing(A);
        a.ends_at = Some(NODES.t(4));
        let Outcome::Created(k) = e.ingest_one(a, NODES.t(0)) else {
            panic!()
        };
        e.tick(NODES.t(3));
        assert_eq!(inc(&e, k).firing_count, 1);
        e.tick(NODES.t(5));
        let i = inc(&e, k);
        assert_eq!((i.firing_count, i.status), (0, Status::Resolved));
    }

    #[test]
    fn flapping_alert_keeps_its_incident_open() {
        let mut e = SUPPRESSION.engine();
        let a = [("alertname", "Flappy"), ("instance", "f")];
        let Outcome::Created(k) = e.ingest_one(alert(&a, AlertStatus::Firing), SUPPRESSION.t(0))
        else {
            panic!()
        };
        // Changes: resolve(1), fire(2), resolve(3), fire(4) → flapping after the 4th change.
        e.ingest_one(alert(&a, AlertStatus::Resolved), SUPPRESSION.t(1));
        assert_eq!(e.live(k).expect("live").incident.status, Status::Resolved);
        e.ingest_one(alert(&a, AlertStatus::Firing), SUPPRESSION.t(2));
        e.ingest_one(alert(&a, AlertStatus::Resolved), SUPPRESSION.t(3));
        e.ingest_one(alert(&a, AlertStatus::Firing), SUPPRESSION.t(4));
        assert!(e.live(k).expect("live").alerts.values().all(|r| r.flapping));
        e.take_changes();
        // Now a resolve keeps the incident open instead of resolving it.
        e.ingest_one(alert(&a, AlertStatus::Resolved), SUPPRESSION.t(5));
        let i = e.live(k).expect("live").incident.clone();
        assert_eq!((i.status, i.firing_count), (Status::Open, 0));
        let ws = e.take_changes();
        assert!(ws.events.contains(&Event::Suppressed {
            reason: Reason::Flapping,
        }));
        // Further cycles neither reopen nor resolve.
        e.ingest_one(alert(&a, AlertStatus::Firing), SUPPRESSION.t(6));
        e.ingest_one(alert(&a, AlertStatus::Resolved), SUPPRESSION.t(7));
        let i = e.live(k).expect("live").incident.clone();
        assert_eq!((i.status, i.reopen_count), (Status::Open, 2));
        e.take_changes();
        // Quiet for the window: it settles and the incident resolves.
        e.tick(SUPPRESSION.t(7 + 31));
        let i = e.live(k).expect("live").incident.clone();
        assert_eq!(i.status, Status::Resolved);
        let ws = e.take_changes();
        let kinds: Vec<_> = ws
            .timeline
            .iter()
            .map(|(_, _, t)| t.kind.as_str())
            .collect();
        assert_eq!(kinds, vec!["flapping_stopped", "resolved"]);
        assert_eq!(
            i.reopen_count, 2,
            "reopened before flapping was detected, never after"
        );
    }
}
