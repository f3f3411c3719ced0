//! Hand-over and restore: incidents coming into memory (restart, Kafka
//! changelog adoption, parked incidents resuming) and leaving it (handed
//! over to another instance, parked).
//!
//! Contract: an incident coming in points its group key at itself if it is
//! the newest of its group, and each of its alerts at itself unless a live
//! incident saw that alert later; a firing alert it holds becomes an
//! inhibit source. An incident leaving memory here is never written back.

use std::collections::hash_map::Entry;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::history::{HistoryEntry, Rolling};
use super::{Engine, Live, Settings};
use crate::model::{
    AlertRecord, AlertStatus, IncidentKey, Job, JobState, Silence, Status, SuppressedAlert,
    TimelineEntry,
};
use crate::rules::RuleSet;

/// What [`Engine::adopt`] did with an incident from the changelog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adoption {
    /// New here: adopted.
    Adopted,
    /// Held here in an older state: replaced by the changelog's.
    Replaced,
    /// Held here at least as new (or closed in the changelog): unchanged.
    Kept,
}

/// What [`Engine::restore`] starts from besides live incidents.
#[derive(Debug, Default)]
pub struct Restored {
    pub last_key: Option<IncidentKey>,
    pub rolling: Rolling,
    pub suppressed: Vec<SuppressedAlert>,
    pub silences: Vec<Silence>,
    /// Heartbeats' last signals.
    pub heartbeats: Vec<(String, DateTime<Utc>)>,
    /// Past incidents, oldest first.
    pub history: Vec<HistoryEntry>,
    /// Stored action jobs (of live incidents, and every pending one).
    pub jobs: Vec<Job>,
    /// Schedule overrides (removed ones included).
    pub overrides: Vec<crate::model::Override>,
}

impl Engine {
    /// Takes over an incident another instance owned (from the Kafka
    /// changelog), with the timeline entries it had. An incident this engine
    /// already holds live is replaced only when the changelog's copy is
    /// newer (more timeline entries, or as many and later activity): this
    /// instance may have crashed before the partition moved, and come back
    /// with an old copy. Its alerts take over their fingerprints unless a
    /// live incident here saw them later.
    pub fn adopt(&mut self, mut live: Live, timeline: Vec<(u32, TimelineEntry)>) -> Adoption {
        let key = live.incident.id;
        if live.incident.status == Status::Closed {
            return Adoption::Kept;
        }
        for rec in live.alerts.values_mut() {
            self.share_strings(rec);
        }
        let mut outcome = Adoption::Adopted;
        if let Some(local) = self.live.incidents.get(&key) {
            if live.incident.version() <= local.incident.version() {
                return Adoption::Kept;
            }
            self.park(key);
            self.dirty.replaced.push(key);
            outcome = Adoption::Replaced;
        }
        self.index(&live);
        for fp in live.alerts.keys() {
            self.dirty.alerts.insert((key, *fp));
        }
        for (seq, entry) in timeline {
            self.dirty.timeline.push((key, seq, entry));
        }
        self.live.aggregates.remove(&key);
        self.live.indexed.remove(key);
        self.dirty.incidents.insert(key);
        self.live.incidents.insert(key, Box::new(live));
        outcome
    }

    /// Takes an incident out of memory without touching the store (its
    /// partition is not assigned here yet; see the Kafka changelog).
    pub fn park(&mut self, key: IncidentKey) {
        self.dirty.incidents.remove(&key);
        self.dirty.touched_incidents.remove(&key);
        self.dirty.alerts.retain(|(k, _)| *k != key);
        self.dirty.touched_alerts.retain(|(k, _)| *k != key);
        self.evict(key);
    }

    /// Brings a parked incident back into memory exactly as the store holds
    /// it (nothing to write). False when it is already live.
    pub fn resume(&mut self, live: Live) -> bool {
        let key = live.incident.id;
        if self.live.incidents.contains_key(&key) {
            return false;
        }
        self.index(&live);
        self.live
            .indexed
            .set(key, live.incident.status, live.incident.priority);
        self.live.incidents.insert(key, Box::new(live));
        self.schedule(key);
        true
    }

    /// Points the group and fingerprint indexes at an incident coming into
    /// memory: its group if it is the newest, each alert unless a live
    /// incident saw it later.
    pub(super) fn index(&mut self, live: &Live) {
        let key = live.incident.id;
        self.index_storms(&live.incident);
        self.live.claim_group(&live.incident.group_key, key);
        let rules = self.rules.clone();
        for (fp, rec) in &live.alerts {
            let newer = match self.live.active.get(fp) {
                Some(other) => self
                    .live
                    .incidents
                    .get(other)
                    .and_then(|l| l.alerts.get(fp))
                    .is_none_or(|o| o.alert.last_seen_at < rec.alert.last_seen_at),
                None => true,
            };
            if newer {
                self.live.active.insert(*fp, key);
                if rec.alert.status == AlertStatus::Firing {
                    self.suppress
                        .inhibit
                        .add(&rules.inhibit, *fp, &rec.alert.labels);
                    self.suppress.sources_changed = true;
                }
            }
        }
    }

    /// Lets go of a live incident whose partition moved to another
    /// instance: it leaves memory, and the next write set deletes it from
    /// the store (its state lives on in the changelog and at the new owner).
    /// Returns false for an incident that is not live here.
    pub fn hand_over(&mut self, key: IncidentKey) -> bool {
        if !self.live.incidents.contains_key(&key) {
            return false;
        }
        self.park(key);
        self.dirty.dropped.push(key);
        true
    }

    /// A record read back (from the store or another instance) shares the
    /// strings live alerts repeat, as a record the engine built does.
    fn share_strings(&mut self, rec: &mut AlertRecord) {
        rec.alert.generator_url = self.strings.get(&rec.alert.generator_url);
        rec.category = self.strings.get(&rec.category);
    }

    /// Rebuilds the live state from what the store holds.
    pub fn restore(
        rules: Arc<RuleSet>,
        settings: Settings,
        live: Vec<Live>,
        restored: Restored,
    ) -> Engine {
        let mut e = Engine::new(rules, settings);
        e.ids.last = restored.last_key;
        e.overrides = restored.overrides;
        e.history.rolling = restored.rolling;
        // Sized up front: growing maps of a million alerts rehashes them
        // over and over, and a restart is on the clock.
        e.live.incidents.reserve(live.len());
        e.live
            .active
            .reserve(live.iter().map(|l| l.alerts.len()).sum());
        let rules = e.rules.clone();
        for mut l in live {
            let key = l.incident.id;
            e.live.claim_group(&l.incident.group_key, key);
            // An alert in two incidents (it resolved in one and fired again
            // into another) points at the one that saw it last; its state
            // there decides whether it is an inhibit source. One pass over
            // the alerts for both: with a million of them, a second pass
            // was most of the time this takes.
            for (fp, rec) in l.alerts.iter_mut() {
                e.share_strings(rec);
                match e.live.active.entry(*fp) {
                    Entry::Vacant(v) => {
                        v.insert(key);
                    }
                    Entry::Occupied(mut o) => {
                        let other = *o.get();
                        let seen = e.live.incidents.get(&other).and_then(|x| x.alerts.get(fp));
                        if seen.is_some_and(|r| {
                            (rec.alert.last_seen_at, key) < (r.alert.last_seen_at, other)
                        }) {
                            continue;
                        }
                        o.insert(key);
                        e.suppress.inhibit.remove(*fp);
                    }
                }
                if rec.alert.status == AlertStatus::Firing {
                    e.suppress
                        .inhibit
                        .add(&rules.inhibit, *fp, &rec.alert.labels);
                }
            }
            e.live
                .indexed
                .set(key, l.incident.status, l.incident.priority);
            e.index_storms(&l.incident);
            e.live.incidents.insert(key, Box::new(l));
        }
        for s in restored.suppressed {
            e.suppress.alerts.insert(s.alert.fingerprint, s);
        }
        e.restore_heartbeats(restored.heartbeats);
        for mut s in restored.silences {
            match s.compile() {
                Ok(()) => {
                    e.suppress.silences.insert(s.id.clone(), s);
                }
                Err(err) => {
                    tracing::warn!(silence = %s.id, error = %err, "stored silence no longer compiles; ignored")
                }
            }
        }
        for h in restored.history {
            e.remember(h);
        }
        for j in restored.jobs {
            if let (JobState::Held, Some(t)) = (j.state, j.not_before) {
                e.jobs.held.insert(j.key.clone(), t);
            }
            e.jobs.by_key.insert(j.key.clone(), j);
        }
        e.add_suppressed_sources();
        e.schedule_all();
        e
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
    fn adopted_incidents_take_new_alerts_and_handed_over_ones_leave() {
        let mut old = engine_in_slot(1);
        let Outcome::Created(k) = old.ingest_one(firing(A), NODES.t(0)) else {
            panic!()
        };
        old.take_changes();
        let live = old.live(k).expect("live").clone();
        let timeline = vec![(
            0,
            TimelineEntry {
                at: NODES.t(0),
                kind: TimelineKind::Created,
                by: SYSTEM.into(),
                message: "opened".into(),
            },
        )];

        let mut new = engine_in_slot(2);
        assert_eq!(new.adopt(live.clone(), timeline.clone()), Adoption::Adopted);
        assert_eq!(
            new.adopt(live.clone(), timeline),
            Adoption::Kept,
            "the same state is already live here"
        );
        let ws = new.take_changes();
        assert_eq!(ws.incidents.len(), 1, "the adopted incident is written");
        assert_eq!(ws.alerts.len(), 1);
        assert_eq!(ws.reindex, vec![k], "and indexed as open");
        assert_eq!(kinds(&ws, k), vec!["created"]);
        // Its alert repeats into it, and its group takes new alerts.
        assert_eq!(
            new.ingest_one(firing(A), NODES.t(1)),
            Outcome::Deduplicated(k)
        );
        assert_eq!(new.ingest_one(firing(B), NODES.t(2)), Outcome::Joined(k));
        assert_eq!(inc(&new, k).alert_count, 2);
        // A closed incident is not adopted.
        let mut closed = live.clone();
        closed.incident.id = IncidentKey::new(20261123, 201);
        closed.incident.status = Status::Closed;
        assert_eq!(new.adopt(closed, Vec::new()), Adoption::Kept);

        // The old owner lets it go: out of memory, dropped from the store,
        // and the next alert of the group opens a new incident there.
        old.ingest_one(firing(A), NODES.t(1));
        assert!(old.hand_over(k));
        assert!(!old.hand_over(k));
        assert!(old.live(k).is_none());
        let ws = old.take_changes();
        assert_eq!(ws.dropped, vec![k]);
        assert!(
            ws.incidents.is_empty() && ws.alerts.is_empty() && ws.seen.is_empty(),
            "nothing of a handed-over incident is written back"
        );
        assert!(matches!(old.ingest_one(firing(B), NODES.t(3)), Outcome::Created(k2) if k2 != k));
    }

    #[test]
    fn a_newer_changelog_copy_replaces_a_stale_live_one() {
        // x crashed holding k; y adopted k and moved on; k comes back to x.
        let mut x = engine_in_slot(1);
        let Outcome::Created(k) = x.ingest_one(firing(A), NODES.t(0)) else {
            panic!()
        };
        x.take_changes();
        let stale = x.live(k).expect("live").clone();
        let mut y = engine_in_slot(2);
        assert_eq!(y.adopt(stale.clone(), Vec::new()), Adoption::Adopted);
        assert_eq!(y.ingest_one(firing(B), NODES.t(1)), Outcome::Joined(k));
        let newer = y.live(k).expect("live").clone();

        assert_eq!(x.adopt(stale, Vec::new()), Adoption::Kept);
        assert_eq!(x.adopt(newer, Vec::new()), Adoption::Replaced);
        assert_eq!(inc(&x, k).alert_count, 2);
        let ws = x.take_changes();
        assert_eq!(ws.replaced, vec![k]);
        assert_eq!(ws.alerts.len(), 2, "every alert of the new copy is written");
        // Both alerts now repeat into k.
        assert_eq!(
            x.ingest_one(firing(B), NODES.t(2)),
            Outcome::Deduplicated(k)
        );
        assert_eq!(
            x.ingest_one(firing(A), NODES.t(2)),
            Outcome::Deduplicated(k)
        );
    }

    #[test]
    fn a_restored_engine_still_inhibits_and_its_newest_copy_of_an_alert_counts() {
        let mut e = SUPPRESSION.engine();
        let Outcome::Created(first) =
            e.ingest_one(alert(DOWN, AlertStatus::Firing), SUPPRESSION.t(0))
        else {
            panic!()
        };
        // The source resolves and fires again later into a new incident: its
        // fingerprint is in two live incidents, resolved in the older.
        e.ingest_one(alert(DOWN, AlertStatus::Resolved), SUPPRESSION.t(1));
        let Outcome::Created(second) =
            e.ingest_one(alert(DOWN, AlertStatus::Firing), SUPPRESSION.t(200))
        else {
            panic!()
        };
        assert_ne!(first, second);
        let mut live: Vec<Live> = e.live_incidents().cloned().collect();
        assert_eq!(live.len(), 2);
        for order in [false, true] {
            // Either order of the incidents restores the same index.
            if order {
                live.reverse();
            }
            let mut r = Engine::restore(
                e.rules().clone(),
                Settings {
                    close_after: Duration::from_secs(60),
                    id_slot: None,
                },
                live.clone(),
                Restored::default(),
            );
            assert_eq!(
                r.live
                    .active
                    .get(&alert(DOWN, AlertStatus::Firing).fingerprint),
                Some(&second)
            );
            assert_eq!(
                r.ingest_one(alert(DISK, AlertStatus::Firing), SUPPRESSION.t(201)),
                Outcome::Suppressed(Reason::Inhibit),
                "the restored firing source inhibits"
            );
            assert!(matches!(
                r.ingest_one(alert(DISK_B, AlertStatus::Firing), SUPPRESSION.t(201)),
                Outcome::Created(_)
            ));
        }
    }
}
