//! The change set: what the store must write for the changes since the
//! last take, and the dirty marks that gather it.
//!
//! Contract: every state change the engine makes is marked here as it
//! happens; [`Engine::take_changes`] turns the marks into a [`ChangeSet`]
//! of full rows (incidents, alert records, timeline entries, suppressed
//! alerts, silences, jobs), the small repeat rows, and the events metrics
//! count, and lets closed incidents leave memory. After a failed commit
//! [`Engine::discard_changes`] drops the marks; the caller reloads.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::events::Event;
use super::Engine;
use crate::model::{
    AlertRecord, AlertSeen, Incident, IncidentKey, Job, JobState, Silence, Status, SuppressedAlert,
    TimelineEntry, TimelineKind,
};

/// Everything the store must write for the changes since the last take.
#[derive(Debug, Default, Clone)]
pub struct ChangeSet {
    pub incidents: Vec<Incident>,
    pub alerts: Vec<(IncidentKey, AlertRecord)>,
    /// Repeat counters of every alert that changed, whether or not its full
    /// record is in `alerts` (the store reads these over the record).
    pub seen: Vec<(IncidentKey, u64, AlertSeen)>,
    /// Last activity of every incident that changed (read over the row).
    pub activity: Vec<(IncidentKey, DateTime<Utc>)>,
    pub timeline: Vec<(IncidentKey, u32, TimelineEntry)>,
    pub events: Vec<Event>,
    /// Suppressed alerts to write (still suppressed) …
    pub suppressed: Vec<SuppressedAlert>,
    /// … and to delete (resolved, or no longer suppressed).
    pub unsuppressed: Vec<u64>,
    pub silences: Vec<Silence>,
    /// Schedule overrides added or removed.
    pub overrides: Vec<crate::model::Override>,
    /// Heartbeats' last signals to store.
    pub heartbeats: Vec<(String, DateTime<Utc>)>,
    /// Action jobs to store (new or changed) …
    pub jobs: Vec<Job>,
    /// … and the new pending ones to hand to the executor after the commit.
    pub dispatch: Vec<Job>,
    /// Incidents whose status changed (or that are new): the store updates
    /// its status indexes only for these.
    pub reindex: Vec<IncidentKey>,
    /// Incidents that closed in this change set, with the fingerprints of
    /// their alerts (the changelog writes a tombstone for each).
    pub closed: Vec<(IncidentKey, Vec<u64>)>,
    /// Incidents handed over to another instance: deleted from the store
    /// after everything else in this change set.
    pub dropped: Vec<IncidentKey>,
    /// Incidents replaced by a newer copy: their alerts and timeline are
    /// deleted before this change set writes the new ones.
    pub replaced: Vec<IncidentKey>,
    /// Alerts that left an incident (split off into another): their rows
    /// there are deleted.
    pub removed_alerts: Vec<(IncidentKey, u64)>,
}

impl ChangeSet {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.incidents.is_empty()
            && self.alerts.is_empty()
            && self.seen.is_empty()
            && self.activity.is_empty()
            && self.timeline.is_empty()
            && self.suppressed.is_empty()
            && self.unsuppressed.is_empty()
            && self.silences.is_empty()
            && self.overrides.is_empty()
            && self.heartbeats.is_empty()
            && self.jobs.is_empty()
            && self.dropped.is_empty()
            && self.replaced.is_empty()
            && self.removed_alerts.is_empty()
    }
}

/// What changed since the last take, as marks on the live state.
#[derive(Default)]
pub(super) struct Dirty {
    pub(super) incidents: BTreeSet<IncidentKey>,
    pub(super) alerts: BTreeSet<(IncidentKey, u64)>,
    /// Only the repeat counters / last activity changed (see [`AlertSeen`]).
    pub(super) touched_incidents: BTreeSet<IncidentKey>,
    pub(super) touched_alerts: BTreeSet<(IncidentKey, u64)>,
    /// Alerts new to their incident: their record's first write carries
    /// the repeat fields itself, so no small row goes with it (the store
    /// keeps no stale small row where a record can reappear; see
    /// `store::seen`). A storm of new alerts then adds nothing to the
    /// repeat log, and no fold of it stalls a request.
    pub(super) new_alerts: BTreeSet<(IncidentKey, u64)>,
    /// Incidents opened by an alert since the last take: likewise, their
    /// first row carries the last activity, so no small row goes with it.
    pub(super) new_incidents: BTreeSet<IncidentKey>,
    pub(super) timeline: Vec<(IncidentKey, u32, TimelineEntry)>,
    pub(super) events: Vec<Event>,
    pub(super) closed: Vec<IncidentKey>,
    pub(super) suppressed: BTreeSet<u64>,
    pub(super) silences: BTreeSet<String>,
    pub(super) overrides: BTreeSet<String>,
    pub(super) heartbeats: BTreeSet<String>,
    pub(super) jobs: BTreeSet<String>,
    pub(super) new_jobs: Vec<String>,
    /// Handed over since the last take (see [`Engine::hand_over`]).
    pub(super) dropped: Vec<IncidentKey>,
    /// Replaced by a newer copy since the last take (see [`Engine::adopt`]).
    pub(super) replaced: Vec<IncidentKey>,
    /// Alerts that left an incident (split).
    pub(super) removed_alerts: Vec<(IncidentKey, u64)>,
}

impl Engine {
    /// Takes everything changed since the last call; closed incidents leave memory.
    pub fn take_changes(&mut self) -> ChangeSet {
        self.schedule_changed();
        let mut ws = ChangeSet {
            incidents: Vec::with_capacity(self.dirty.incidents.len()),
            alerts: Vec::with_capacity(self.dirty.alerts.len()),
            timeline: std::mem::take(&mut self.dirty.timeline),
            events: std::mem::take(&mut self.dirty.events),
            ..ChangeSet::default()
        };
        let touched = std::mem::take(&mut self.dirty.touched_alerts);
        let new = std::mem::take(&mut self.dirty.new_alerts);
        for (key, fp) in std::mem::take(&mut self.dirty.alerts) {
            if let Some(rec) = self
                .live
                .incidents
                .get(&key)
                .and_then(|l| l.alerts.get(&fp))
            {
                if !touched.contains(&(key, fp)) && !new.contains(&(key, fp)) {
                    ws.seen.push((key, fp, rec.seen()));
                }
                ws.alerts.push((key, AlertRecord::clone(rec)));
            }
        }
        for (key, fp) in touched {
            if let Some(rec) = self
                .live
                .incidents
                .get(&key)
                .and_then(|l| l.alerts.get(&fp))
            {
                ws.seen.push((key, fp, rec.seen()));
            }
        }
        let touched = std::mem::take(&mut self.dirty.touched_incidents);
        let opened = std::mem::take(&mut self.dirty.new_incidents);
        for key in std::mem::take(&mut self.dirty.incidents) {
            if let Some(l) = self.live.incidents.get(&key) {
                if self
                    .live
                    .indexed
                    .set(key, l.incident.status, l.incident.priority)
                    != Some(l.incident.status)
                {
                    ws.reindex.push(key);
                }
                if !touched.contains(&key) && !opened.contains(&key) {
                    ws.activity.push((key, l.incident.last_activity_at));
                }
                ws.incidents.push(l.incident.clone());
            }
        }
        for key in touched {
            if let Some(l) = self.live.incidents.get(&key) {
                ws.activity.push((key, l.incident.last_activity_at));
            }
        }
        for fp in std::mem::take(&mut self.dirty.suppressed) {
            match self.suppress.alerts.get(&fp) {
                Some(s) => ws.suppressed.push(s.clone()),
                None => ws.unsuppressed.push(fp),
            }
        }
        for name in std::mem::take(&mut self.dirty.heartbeats) {
            if let Some(t) = self.heartbeats.last_seen.get(&name) {
                ws.heartbeats.push((name, *t));
            }
        }
        for id in std::mem::take(&mut self.dirty.overrides) {
            if let Some(o) = self.overrides.iter().find(|o| o.id == id) {
                ws.overrides.push(o.clone());
            }
        }
        for id in std::mem::take(&mut self.dirty.silences) {
            if let Some(s) = self.suppress.silences.get(&id) {
                ws.silences.push(s.clone());
            }
        }
        for k in std::mem::take(&mut self.dirty.jobs) {
            if let Some(j) = self.jobs.by_key.get(&k) {
                ws.jobs.push(j.clone());
            }
        }
        for k in std::mem::take(&mut self.dirty.new_jobs) {
            if let Some(j) = self
                .jobs
                .by_key
                .get(&k)
                .filter(|j| j.state == JobState::Pending)
            {
                ws.dispatch.push(j.clone());
            }
        }
        for key in std::mem::take(&mut self.dirty.closed) {
            if let Some(l) = self
                .live
                .incidents
                .get(&key)
                .filter(|l| l.incident.status == Status::Closed)
            {
                ws.closed.push((key, l.alerts.keys().copied().collect()));
                self.evict(key);
            }
        }
        ws.dropped = std::mem::take(&mut self.dirty.dropped);
        ws.replaced = std::mem::take(&mut self.dirty.replaced);
        ws.removed_alerts = std::mem::take(&mut self.dirty.removed_alerts);
        ws
    }

    /// Drops pending changes (after a failed commit the caller reloads).
    pub fn discard_changes(&mut self) {
        self.dirty = Dirty::default();
    }

    /// Lets an incident leave memory (its final state is written).
    pub(super) fn evict(&mut self, key: IncidentKey) {
        self.wakes.forget(key);
        self.live.aggregates.remove(&key);
        self.live.indexed.remove(key);
        self.jobs
            .by_key
            .retain(|_, j| j.incident != key || j.state == JobState::Pending);
        if let Some(l) = self.live.incidents.remove(&key) {
            self.unindex_storms(&l.incident);
            if self.live.groups.get(&l.incident.group_key) == Some(&key) {
                self.live.groups.remove(&l.incident.group_key);
            }
            for fp in l.alerts.keys() {
                if self.live.active.get(fp) == Some(&key) {
                    self.live.active.remove(fp);
                    if self.suppress.inhibit.remove(*fp) {
                        self.suppress.sources_changed = true;
                    }
                }
            }
        }
    }

    /// Appends a timeline entry to a live incident.
    pub(super) fn note(
        &mut self,
        key: IncidentKey,
        at: DateTime<Utc>,
        kind: TimelineKind,
        by: &str,
        message: String,
    ) {
        if let Some(l) = self.live.incidents.get_mut(&key) {
            if let Some(p) = l.incident.parent {
                self.storms.touched.insert(p);
            }
            let seq = l.incident.timeline_len;
            l.incident.timeline_len += 1;
            self.dirty.timeline.push((
                key,
                seq,
                TimelineEntry {
                    at,
                    kind,
                    by: by.to_string(),
                    message,
                },
            ));
            self.dirty.incidents.insert(key);
        }
    }
}
