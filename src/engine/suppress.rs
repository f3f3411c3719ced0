//! Suppression in the engine: silences, maintenance windows and
//! inhibition keep a firing alert out of incidents (stored and counted with
//! the reason), and let it through as new once the cause is gone.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::events::Event;
use super::{Engine, HashMap, Outcome};
use crate::model::suppression::InvalidSilence;
use crate::model::{
    Alert, AlertStatus, Silence, SuppressedAlert, Suppression, TimelineKind, TrackedAlert, SYSTEM,
};
use crate::rules::suppress::{self, InhibitIndex};

/// What the engine knows about suppression: silences, the alerts kept out
/// of incidents, and the firing alerts that can inhibit others.
#[derive(Default)]
pub(super) struct Suppressions {
    pub(super) silences: BTreeMap<String, Silence>,
    pub(super) alerts: HashMap<u64, SuppressedAlert>,
    pub(super) inhibit: InhibitIndex,
    /// An inhibiting alert stopped firing: re-check suppressed alerts.
    pub(super) sources_changed: bool,
}

impl Engine {
    pub(super) fn suppression(
        &self,
        fp: u64,
        labels: &crate::model::Labels,
        now: DateTime<Utc>,
    ) -> Option<Suppression> {
        suppress::check(
            &self.rules.maintenance,
            &self.suppress.silences,
            &self.rules.inhibit,
            &self.suppress.inhibit,
            fp,
            labels,
            now,
        )
    }

    pub(super) fn suppress(&mut self, a: Alert, s: Suppression, now: DateTime<Utc>) -> Outcome {
        let reason = s.reason;
        self.suppress
            .inhibit
            .add(&self.rules.inhibit, a.fingerprint, &a.labels);
        self.dirty.events.push(Event::Suppressed { reason });
        self.dirty.suppressed.insert(a.fingerprint);
        self.suppress.alerts.insert(
            a.fingerprint,
            SuppressedAlert {
                alert: TrackedAlert::first_seen(&a, self.strings.get(&a.generator_url), now),
                suppression: s,
            },
        );
        Outcome::Suppressed(reason)
    }

    /// A notification about a suppressed alert. `None` means it is no longer
    /// suppressed and must be processed as new.
    pub(super) fn suppressed_notification(
        &mut self,
        a: &Alert,
        now: DateTime<Utc>,
    ) -> Option<Outcome> {
        let fp = a.fingerprint;
        if a.status == AlertStatus::Resolved {
            let s = self.suppress.alerts.remove(&fp)?;
            self.dirty.suppressed.insert(fp);
            if self.suppress.inhibit.remove(fp) {
                self.suppress.sources_changed = true;
            }
            return Some(Outcome::Suppressed(s.suppression.reason));
        }
        match self.suppression(fp, &a.labels, now) {
            Some(s) => {
                let rec = self.suppress.alerts.get_mut(&fp)?;
                rec.alert.repeat_count += 1;
                rec.alert.last_seen_at = now;
                rec.alert.annotations.clone_from(&a.annotations);
                rec.alert.ends_at = a.ends_at;
                let reason = s.reason;
                rec.suppression = s;
                self.dirty.suppressed.insert(fp);
                self.dirty.events.push(Event::Deduplicated);
                Some(Outcome::Suppressed(reason))
            }
            None => {
                self.suppress.alerts.remove(&fp);
                self.dirty.suppressed.insert(fp);
                self.suppress.inhibit.remove(fp);
                None
            }
        }
    }

    /// Suppressed alerts whose silence, window or inhibiting alert is gone
    /// are processed as new firing alerts.
    pub(super) fn recheck_suppressed(&mut self, now: DateTime<Utc>) {
        self.suppress.sources_changed = false;
        let fps: Vec<u64> = self.suppress.alerts.keys().copied().collect();
        for fp in fps {
            let Some(s) = self.suppress.alerts.get(&fp) else {
                continue;
            };
            if s.alert.ends_at.is_some_and(|e| e <= now) {
                // Expired without a refresh: it stopped firing.
                self.suppress.alerts.remove(&fp);
                self.dirty.suppressed.insert(fp);
                if self.suppress.inhibit.remove(fp) {
                    self.suppress.sources_changed = true;
                }
                continue;
            }
            if self.suppression(fp, &s.alert.labels, now).is_some() {
                continue;
            }
            let Some(s) = self.suppress.alerts.remove(&fp) else {
                continue;
            };
            self.dirty.suppressed.insert(fp);
            self.suppress.inhibit.remove(fp);
            let alert = Alert {
                fingerprint: fp,
                labels: s.alert.labels,
                annotations: s.alert.annotations,
                status: AlertStatus::Firing,
                starts_at: Some(s.alert.starts_at),
                ends_at: s.alert.ends_at,
                generator_url: s.alert.generator_url.to_string(),
                source: s.alert.source,
                origin: None,
            };
            let outcome = self.route_new(alert, now);
            if let Outcome::Created(k) | Outcome::Joined(k) = outcome {
                self.note(
                    k,
                    now,
                    TimelineKind::Unsuppressed,
                    SYSTEM,
                    format!(
                        "alert [{}] no longer {} ({}); processed as new",
                        crate::model::fingerprint::to_hex(fp),
                        s.suppression.reason.past_tense(),
                        s.suppression.by
                    ),
                );
            }
        }
        if self.suppress.sources_changed {
            // Un-suppressing may have removed further sources; settle next time.
            self.suppress.sources_changed = false;
        }
    }

    /// Adds a silence (compiled here); it mutes alerts that arrive later.
    pub fn add_silence(
        &mut self,
        mut s: Silence,
        now: DateTime<Utc>,
    ) -> Result<Silence, InvalidSilence> {
        s.compile()?;
        if s.ends_at <= s.starts_at {
            return Err(InvalidSilence("endsAt: must be after startsAt".into()));
        }
        if s.ends_at <= now {
            return Err(InvalidSilence("endsAt: must be in the future".into()));
        }
        let mut id = format!("SIL-{:x}", now.timestamp_nanos_opt().unwrap_or_default());
        while self.suppress.silences.contains_key(&id) {
            id.push('x');
        }
        s.id = id.clone();
        s.created_at = now;
        self.dirty.silences.insert(id.clone());
        self.suppress.silences.insert(id, s.clone());
        Ok(s)
    }

    /// Ends a silence now; alerts it muted are processed as new on the next tick.
    pub fn expire_silence(&mut self, id: &str, now: DateTime<Utc>) -> Option<Silence> {
        let s = self.suppress.silences.get_mut(id)?;
        if s.ends_at > now {
            s.ends_at = now;
            if s.starts_at > now {
                s.starts_at = now;
            }
            self.dirty.silences.insert(id.to_string());
        }
        Some(s.clone())
    }

    pub fn silences(&self) -> impl Iterator<Item = &Silence> {
        self.suppress.silences.values()
    }

    pub fn suppressed_alerts(&self) -> impl Iterator<Item = &SuppressedAlert> {
        self.suppress.alerts.values()
    }

    /// Every firing alert (in incidents and suppressed) as an inhibit source.
    pub(super) fn rebuild_inhibit_index(&mut self) {
        self.suppress.inhibit.clear();
        let rules = self.rules.clone();
        // Incident by incident, in memory order, rather than a random
        // incident lookup per entry of the fingerprint index. (A restart
        // builds the same sources in its one pass; see `restore`.)
        for (key, l) in &self.live.incidents {
            for (fp, rec) in &l.alerts {
                if rec.alert.status == AlertStatus::Firing && self.live.active.get(fp) == Some(key)
                {
                    self.suppress
                        .inhibit
                        .add(&rules.inhibit, *fp, &rec.alert.labels);
                }
            }
        }
        self.add_suppressed_sources();
    }

    /// Suppressed firing alerts are inhibit sources too.
    pub(super) fn add_suppressed_sources(&mut self) {
        for s in self.suppress.alerts.values() {
            self.suppress
                .inhibit
                .add(&self.rules.inhibit, s.alert.fingerprint, &s.alert.labels);
        }
        self.suppress.sources_changed = true;
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::engine::testkit::*;
    use crate::engine::*;

    use crate::model::*;

    #[test]
    fn inhibited_alert_is_stored_then_processed_as_new_when_the_source_resolves() {
        let mut e = SUPPRESSION.engine();
        assert!(matches!(
            e.ingest_one(alert(DOWN, AlertStatus::Firing), SUPPRESSION.t(0)),
            Outcome::Created(_)
        ));
        assert_eq!(
            e.ingest(vec![alert(DISK, AlertStatus::Firing)], SUPPRESSION.t(1)),
            vec![Outcome::Suppressed(Reason::Inhibit)]
        );
        // Another instance is not inhibited.
        assert!(matches!(
            e.ingest_one(alert(DISK_B, AlertStatus::Firing), SUPPRESSION.t(1)),
            Outcome::Created(_)
        ));
        let s: Vec<_> = e.suppressed_alerts().collect();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].suppression.by, "down-mutes-warnings");
        assert_eq!(
            s[0].suppression.inhibited_by.as_deref(),
            Some(
                crate::model::fingerprint::to_hex(alert(DOWN, AlertStatus::Firing).fingerprint)
                    .as_str()
            )
        );
        let ws = e.take_changes();
        assert_eq!(ws.suppressed.len(), 1);
        assert!(ws.events.contains(&Event::Suppressed {
            reason: Reason::Inhibit,
        }));
        // Repeats stay suppressed.
        assert_eq!(
            e.ingest_one(alert(DISK, AlertStatus::Firing), SUPPRESSION.t(2)),
            Outcome::Suppressed(Reason::Inhibit)
        );
        // The source resolves: the still-firing target becomes an incident.
        let out = e.ingest(vec![alert(DOWN, AlertStatus::Resolved)], SUPPRESSION.t(3));
        assert!(matches!(out[0], Outcome::Resolved(_)));
        assert_eq!(e.suppressed_alerts().count(), 0);
        let ws = e.take_changes();
        assert_eq!(ws.unsuppressed.len(), 1);
        let disk = ws.incidents.iter().find(|i| {
            i.rule == "by-instance"
                && i.labels.get("alertname") == Some("DiskSlow")
                && i.labels.get("instance") == Some("a")
        });
        assert!(
            disk.is_some(),
            "target processed as new: {:?}",
            ws.incidents
        );
        assert!(ws
            .timeline
            .iter()
            .any(|(_, _, t)| t.kind == TimelineKind::Unsuppressed
                && t.message.contains("no longer inhibited")));
    }

    #[test]
    fn inhibition_does_not_depend_on_order_within_a_batch() {
        let mut e = SUPPRESSION.engine();
        let out = e.ingest(
            vec![
                alert(DISK, AlertStatus::Firing),
                alert(DOWN, AlertStatus::Firing),
            ],
            SUPPRESSION.t(0),
        );
        assert_eq!(out[0], Outcome::Suppressed(Reason::Inhibit));
        assert!(matches!(out[1], Outcome::Created(_)));
    }

    #[test]
    fn suppressed_alert_that_resolves_leaves_quietly() {
        let mut e = SUPPRESSION.engine();
        e.ingest_one(alert(DOWN, AlertStatus::Firing), SUPPRESSION.t(0));
        e.ingest_one(alert(DISK, AlertStatus::Firing), SUPPRESSION.t(1));
        e.take_changes();
        assert_eq!(
            e.ingest_one(alert(DISK, AlertStatus::Resolved), SUPPRESSION.t(2)),
            Outcome::Suppressed(Reason::Inhibit)
        );
        e.ingest(vec![alert(DOWN, AlertStatus::Resolved)], SUPPRESSION.t(3));
        let ws = e.take_changes();
        assert_eq!(ws.unsuppressed.len(), 1);
        assert_eq!(
            ws.incidents
                .iter()
                .filter(|i| i.labels.get("alertname") == Some("DiskSlow"))
                .count(),
            0
        );
    }

    #[test]
    fn maintenance_window_suppresses_only_while_open() {
        let mut e = SUPPRESSION.engine();
        let db = [("alertname", "DbSlow"), ("service", "db")];
        // Before the window: an incident.
        assert!(matches!(
            e.ingest_one(alert(&db, AlertStatus::Firing), SUPPRESSION.t(30)),
            Outcome::Created(_)
        ));
        let db2 = [("alertname", "DbLag"), ("service", "db")];
        assert_eq!(
            e.ingest_one(alert(&db2, AlertStatus::Firing), SUPPRESSION.t(61)),
            Outcome::Suppressed(Reason::Maintenance)
        );
        assert_eq!(
            e.suppressed_alerts()
                .next()
                .map(|s| s.suppression.by.as_str()),
            Some("db-upgrade")
        );
        e.tick(SUPPRESSION.t(119));
        assert_eq!(e.suppressed_alerts().count(), 1);
        // The window ends at 11:00: the tick processes the alert as new.
        e.take_changes();
        e.tick(SUPPRESSION.t(121));
        assert_eq!(e.suppressed_alerts().count(), 0);
        let ws = e.take_changes();
        assert!(ws
            .events
            .iter()
            .any(|ev| matches!(ev, Event::Created { .. })));
    }

    #[test]
    fn silences_mute_new_alerts_until_expired() {
        let mut e = SUPPRESSION.engine();
        let s = Silence {
            id: String::new(),
            matchers: vec![r#"instance="c""#.into()],
            starts_at: SUPPRESSION.t(0),
            ends_at: SUPPRESSION.t(120),
            comment: "reboot".into(),
            created_by: "alice".into(),
            on_behalf_of: None,
            created_at: SUPPRESSION.t(0),
            compiled: vec![],
        };
        let s = e.add_silence(s, SUPPRESSION.t(0)).expect("valid");
        assert!(s.id.starts_with("SIL-"));
        let c = [("alertname", "X"), ("instance", "c")];
        assert_eq!(
            e.ingest_one(alert(&c, AlertStatus::Firing), SUPPRESSION.t(1)),
            Outcome::Suppressed(Reason::Silence)
        );
        assert_eq!(e.take_changes().silences.len(), 1);
        let expired = e.expire_silence(&s.id, SUPPRESSION.t(5)).expect("exists");
        assert_eq!(expired.ends_at, SUPPRESSION.t(5));
        e.tick(SUPPRESSION.t(6));
        let ws = e.take_changes();
        assert!(
            ws.events
                .iter()
                .any(|ev| matches!(ev, Event::Created { .. })),
            "{:?}",
            ws.events
        );
        assert!(e.expire_silence("nope", SUPPRESSION.t(6)).is_none());
        let bad = Silence {
            matchers: vec![r#"x=~".*""#.into()],
            ..s
        };
        assert!(e
            .add_silence(bad, SUPPRESSION.t(7))
            .unwrap_err()
            .0
            .contains("would mute every alert"));
    }
}
