//! The synchronous heart of the pipeline: dedup → correlate → classify and
//! prioritise → lifecycle, over in-memory state, with no I/O.
//!
//! Input: batches of normalized [`Alert`]s, lifecycle requests, and clock
//! ticks, each with an explicit `now` (so tests control time). Output: the
//! mutated live state plus a [`WriteSet`] (what the store must commit) and
//! [`Event`]s (what metrics must count), taken with [`Engine::take_changes`].
//!
//! Live state holds every incident that is not closed, with its alerts; a
//! fingerprint index points each alert at the incident holding its current
//! occurrence, and a group index points each group key at its newest live
//! incident. Closed incidents leave memory once their final state is in the
//! write set. Invariants: `firing_count` equals the firing alerts of an
//! incident; `alert_count` its distinct fingerprints; an incident's priority
//! is the highest its alerts (and blast radius) give and never drops.

use std::collections::{BTreeMap, BTreeSet};

/// The engine's maps sit on the hot path of every alert: foldhash is several
/// times faster than SipHash and still seeded per process.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};

use crate::actions::{ActionDef, AttemptResult, Job, JobState, LevelWhen, Trigger};
use crate::alert::{Alert, AlertStatus, Source};
use crate::incident::{
    AlertRecord, AlertSeen, Incident, IncidentKey, Op, OpRequest, Sla, Status, TimelineEntry,
    TransitionError, SYSTEM,
};
use crate::matcher;
use crate::rules::{Level, Priority, RuleSet, TitleContext};
use crate::suppress::{self, InhibitIndex, Reason, Silence, SuppressedAlert};

/// An incident in memory with its alerts.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    pub incident: Incident,
    pub alerts: BTreeMap<u64, AlertRecord>,
}

/// Something metrics count; produced by the engine, consumed after commit.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Deduplicated,
    Created {
        priority: Priority,
        category: String,
    },
    Acknowledged {
        priority: Priority,
        seconds: f64,
    },
    Resolved {
        priority: Priority,
        category: String,
        seconds: f64,
    },
    SlaBreached {
        priority: Priority,
        kind: &'static str,
    },
    PriorityChanged {
        from: Priority,
        to: Priority,
    },
    Reopened,
    Closed,
    /// An alert kept out of incidents (silence, inhibit, maintenance), or a
    /// state change of a flapping alert that did not resolve or reopen.
    Suppressed {
        reason: &'static str,
    },
    ProblemCandidate,
    Escalated {
        policy: String,
        level: u32,
    },
}

/// What one alert did to the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Opened a new incident.
    Created(IncidentKey),
    /// Joined (or re-fired in) an existing incident.
    Joined(IncidentKey),
    /// A repeat notification that changed nothing but counters.
    Deduplicated(IncidentKey),
    /// Resolved a firing alert.
    Resolved(IncidentKey),
    /// A resolved notification for an alert incidentd never saw firing.
    Ignored,
    /// Kept out of incidents (or a notification about such an alert).
    Suppressed(Reason),
}

/// Everything the store must write for the changes since the last take.
#[derive(Debug, Default, Clone)]
pub struct WriteSet {
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
    /// Action jobs to store (new or changed) …
    pub jobs: Vec<Job>,
    /// … and the new pending ones to hand to the executor after the commit.
    pub dispatch: Vec<Job>,
    /// Incidents whose status changed (or that are new): the store updates
    /// its status indexes only for these.
    pub reindex: Vec<IncidentKey>,
    /// Kafka offsets the alerts of this write set came up to (set by the
    /// pipeline, not the engine).
    pub kafka_positions: Vec<crate::store::KafkaPosition>,
    /// Incidents that closed in this write set, with the fingerprints of
    /// their alerts (the changelog writes a tombstone for each).
    pub closed: Vec<(IncidentKey, Vec<u64>)>,
    /// Incidents handed over to another instance: deleted from the store
    /// after everything else in this write set.
    pub dropped: Vec<IncidentKey>,
    /// Incidents replaced by a newer copy: their alerts and timeline are
    /// deleted before this write set writes the new ones.
    pub replaced: Vec<IncidentKey>,
    /// The Kafka partition each incident belongs to (`None`: forget it);
    /// set by the pipeline, not the engine.
    pub homes: Vec<(IncidentKey, Option<crate::store::Home>)>,
}

impl WriteSet {
    pub fn is_empty(&self) -> bool {
        self.incidents.is_empty()
            && self.alerts.is_empty()
            && self.seen.is_empty()
            && self.activity.is_empty()
            && self.timeline.is_empty()
            && self.suppressed.is_empty()
            && self.unsuppressed.is_empty()
            && self.silences.is_empty()
            && self.jobs.is_empty()
            && self.kafka_positions.is_empty()
            && self.dropped.is_empty()
            && self.replaced.is_empty()
            && self.homes.is_empty()
    }
}

/// A past incident, as similarity and recurrence need it.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub key: IncidentKey,
    pub group_key: String,
    pub rule: String,
    pub labels: crate::alert::Labels,
    pub created_at: DateTime<Utc>,
}

/// How many recent incidents per rule are kept for label-overlap similarity.
const RECENT_PER_RULE: usize = 256;
/// Most `similar` ids on an incident.
const MAX_SIMILAR: usize = 5;

/// Rolling samples for the MTTA/MTTR gauges, one per incident.
#[derive(Debug, Default, Clone)]
pub struct Rolling {
    acknowledge: BTreeMap<IncidentKey, (DateTime<Utc>, Priority, f64)>,
    resolve: BTreeMap<IncidentKey, (DateTime<Utc>, Priority, f64)>,
}

impl Rolling {
    /// Records the samples an incident's current state gives.
    pub fn observe(&mut self, inc: &Incident) {
        match inc.acknowledged_at {
            Some(at) => {
                self.acknowledge
                    .insert(inc.id, (at, inc.priority, secs(at - inc.created_at)));
            }
            None => {
                self.acknowledge.remove(&inc.id);
            }
        }
        match inc.resolved_at {
            Some(at) => {
                self.resolve
                    .insert(inc.id, (at, inc.priority, secs(at - inc.created_at)));
            }
            None => {
                self.resolve.remove(&inc.id);
            }
        }
    }

    /// Mean acknowledge and resolve seconds per priority over `window`
    /// ending at `now`; `None` where no incident falls in the window.
    pub fn means(&mut self, now: DateTime<Utc>, window: Duration) -> [[Option<f64>; 5]; 2] {
        let start = now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
        let mut out = [[None; 5]; 2];
        for (i, map) in [&mut self.acknowledge, &mut self.resolve]
            .into_iter()
            .enumerate()
        {
            map.retain(|_, (at, _, _)| *at >= start);
            let mut sum = [0.0f64; 5];
            let mut n = [0u32; 5];
            for (_, p, s) in map.values() {
                sum[p.idx()] += s;
                n[p.idx()] += 1;
            }
            for p in 0..5 {
                if n[p] > 0 {
                    out[i][p] = Some(sum[p] / f64::from(n[p]));
                }
            }
        }
        out
    }
}

fn secs(d: chrono::Duration) -> f64 {
    d.num_milliseconds().max(0) as f64 / 1000.0
}

fn chrono_dur(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Lifecycle settings the engine needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub close_after: Duration,
    /// With several instances: this instance's slot (0..100); every id it
    /// opens ends in it (`INC-20261123-0103` is slot 3's second id that
    /// day), so ids opened by different instances never collide.
    pub id_slot: Option<u32>,
}

/// Why a lifecycle request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    #[error("no incident {0}")]
    NotFound(String),
    #[error(transparent)]
    Transition(#[from] TransitionError),
}

/// The live state and the rules it runs on.
pub struct Engine {
    rules: Arc<RuleSet>,
    settings: Settings,
    incidents: HashMap<IncidentKey, Live>,
    active: HashMap<u64, IncidentKey>,
    groups: HashMap<String, IncidentKey>,
    last_key: Option<IncidentKey>,
    rolling: Rolling,
    dirty_incidents: BTreeSet<IncidentKey>,
    dirty_alerts: BTreeSet<(IncidentKey, u64)>,
    /// Only the repeat counters / last activity changed (see [`AlertSeen`]).
    touched_incidents: BTreeSet<IncidentKey>,
    touched_alerts: BTreeSet<(IncidentKey, u64)>,
    timeline: Vec<(IncidentKey, u32, TimelineEntry)>,
    events: Vec<Event>,
    closed: Vec<IncidentKey>,
    /// Derived per-incident counts for prioritisation; rebuilt lazily.
    aggregates: HashMap<IncidentKey, Aggregates>,
    silences: std::collections::BTreeMap<String, Silence>,
    suppressed: HashMap<u64, SuppressedAlert>,
    inhibit: InhibitIndex,
    /// An inhibiting alert stopped firing: re-check suppressed alerts.
    sources_changed: bool,
    dirty_suppressed: BTreeSet<u64>,
    dirty_silences: BTreeSet<String>,
    history: HashMap<String, std::collections::VecDeque<(IncidentKey, DateTime<Utc>)>>,
    recent_by_rule:
        HashMap<String, std::collections::VecDeque<(IncidentKey, crate::alert::Labels)>>,
    /// Action jobs of live incidents, and every pending job.
    jobs: HashMap<String, Job>,
    dirty_jobs: BTreeSet<String>,
    new_jobs: Vec<String>,
    /// Runs per (action, group key) for rate limits.
    rate: HashMap<(String, String), std::collections::VecDeque<DateTime<Utc>>>,
    /// Base URL for links in action payloads.
    external_url: String,
    /// The status each live incident has in the store's indexes.
    indexed_status: HashMap<IncidentKey, Status>,
    /// See [`Settings::id_slot`].
    id_slot: Option<u32>,
    /// Handed over since the last take (see [`Engine::hand_over`]).
    dropped: Vec<IncidentKey>,
    /// Replaced by a newer copy since the last take (see [`Engine::adopt`]).
    replaced: Vec<IncidentKey>,
}

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

/// How many instances incident ids can tell apart ([`Engine::set_id_slot`]).
pub const ID_SLOTS: u32 = 100;

/// What [`Engine::restore`] starts from besides live incidents.
#[derive(Debug, Default)]
pub struct Restored {
    pub last_key: Option<IncidentKey>,
    pub rolling: Rolling,
    pub suppressed: Vec<SuppressedAlert>,
    pub silences: Vec<Silence>,
    /// Past incidents, oldest first.
    pub history: Vec<HistoryEntry>,
    /// Stored action jobs (of live incidents, and every pending one).
    pub jobs: Vec<Job>,
}

/// Counts that make re-prioritisation independent of an incident's size.
#[derive(Debug, Clone)]
struct Aggregates {
    /// Alerts per (impact, urgency).
    levels: [[u32; 3]; 3],
    /// Per blast-radius rule: the distinct values of its label, up to the
    /// rule's `at_least` (priority never drops, so more changes nothing;
    /// without the cap an incident over 100,000 hosts kept every name).
    distinct: Vec<std::collections::HashSet<String>>,
}

impl Aggregates {
    fn new(blast_rules: usize) -> Aggregates {
        Aggregates {
            levels: [[0; 3]; 3],
            distinct: vec![Default::default(); blast_rules],
        }
    }

    fn add(&mut self, rules: &RuleSet, r: &AlertRecord) {
        self.levels[r.impact as usize][r.urgency as usize] += 1;
        for (br, values) in rules
            .prioritize
            .blast_radius
            .iter()
            .zip(self.distinct.iter_mut())
        {
            if values.len() >= br.at_least {
                continue;
            }
            if let Some(v) = r.labels.get(&br.label) {
                if !values.contains(v) && matcher::all_match(&br.matchers, &r.labels) {
                    values.insert(v.to_string());
                }
            }
        }
    }
}

impl Engine {
    pub fn new(rules: Arc<RuleSet>, settings: Settings) -> Engine {
        let id_slot = settings.id_slot.map(|s| s % ID_SLOTS);
        Engine {
            rules,
            settings,
            incidents: HashMap::default(),
            active: HashMap::default(),
            groups: HashMap::default(),
            last_key: None,
            rolling: Rolling::default(),
            dirty_incidents: BTreeSet::new(),
            dirty_alerts: BTreeSet::new(),
            touched_incidents: BTreeSet::new(),
            touched_alerts: BTreeSet::new(),
            timeline: Vec::new(),
            events: Vec::new(),
            closed: Vec::new(),
            aggregates: HashMap::default(),
            silences: Default::default(),
            suppressed: HashMap::default(),
            inhibit: InhibitIndex::default(),
            sources_changed: false,
            dirty_suppressed: BTreeSet::new(),
            dirty_silences: BTreeSet::new(),
            history: HashMap::default(),
            recent_by_rule: HashMap::default(),
            jobs: HashMap::default(),
            dirty_jobs: BTreeSet::new(),
            new_jobs: Vec::new(),
            rate: HashMap::default(),
            external_url: "http://127.0.0.1:9095".into(),
            indexed_status: HashMap::default(),
            id_slot,
            dropped: Vec::new(),
            replaced: Vec::new(),
        }
    }

    /// Takes over an incident another instance owned (from the Kafka
    /// changelog), with the timeline entries it had. An incident this engine
    /// already holds live is replaced only when the changelog's copy is
    /// newer (more timeline entries, or as many and later activity): this
    /// instance may have crashed before the partition moved, and come back
    /// with an old copy. Its alerts take over their fingerprints unless a
    /// live incident here saw them later.
    pub fn adopt(&mut self, live: Live, timeline: Vec<(u32, TimelineEntry)>) -> Adoption {
        let key = live.incident.id;
        if live.incident.status == Status::Closed {
            return Adoption::Kept;
        }
        let mut outcome = Adoption::Adopted;
        if let Some(local) = self.incidents.get(&key) {
            if live.incident.version() <= local.incident.version() {
                return Adoption::Kept;
            }
            self.park(key);
            self.replaced.push(key);
            outcome = Adoption::Replaced;
        }
        self.index(&live);
        for fp in live.alerts.keys() {
            self.dirty_alerts.insert((key, *fp));
        }
        for (seq, entry) in timeline {
            self.timeline.push((key, seq, entry));
        }
        self.aggregates.remove(&key);
        self.indexed_status.remove(&key);
        self.dirty_incidents.insert(key);
        self.incidents.insert(key, live);
        outcome
    }

    /// Takes an incident out of memory without touching the store (its
    /// partition is not assigned here yet; see the Kafka changelog).
    pub fn park(&mut self, key: IncidentKey) {
        self.dirty_incidents.remove(&key);
        self.touched_incidents.remove(&key);
        self.dirty_alerts.retain(|(k, _)| *k != key);
        self.touched_alerts.retain(|(k, _)| *k != key);
        self.evict(key);
    }

    /// Brings a parked incident back into memory exactly as the store holds
    /// it (nothing to write). False when it is already live.
    pub fn resume(&mut self, live: Live) -> bool {
        let key = live.incident.id;
        if self.incidents.contains_key(&key) {
            return false;
        }
        self.index(&live);
        self.indexed_status.insert(key, live.incident.status);
        self.incidents.insert(key, live);
        true
    }

    /// Points the group and fingerprint indexes at an incident coming into
    /// memory: its group if it is the newest, each alert unless a live
    /// incident saw it later.
    fn index(&mut self, live: &Live) {
        let key = live.incident.id;
        let g = self
            .groups
            .entry(live.incident.group_key.clone())
            .or_insert(key);
        if key > *g {
            *g = key;
        }
        let rules = self.rules.clone();
        for (fp, rec) in &live.alerts {
            let newer = match self.active.get(fp) {
                Some(other) => self
                    .incidents
                    .get(other)
                    .and_then(|l| l.alerts.get(fp))
                    .is_none_or(|o| o.last_seen_at < rec.last_seen_at),
                None => true,
            };
            if newer {
                self.active.insert(*fp, key);
                if rec.status == AlertStatus::Firing {
                    self.inhibit.add(&rules.inhibit, *fp, &rec.labels);
                    self.sources_changed = true;
                }
            }
        }
    }

    /// Lets go of a live incident whose partition moved to another
    /// instance: it leaves memory, and the next write set deletes it from
    /// the store (its state lives on in the changelog and at the new owner).
    /// Returns false for an incident that is not live here.
    pub fn hand_over(&mut self, key: IncidentKey) -> bool {
        if !self.incidents.contains_key(&key) {
            return false;
        }
        self.park(key);
        self.dropped.push(key);
        true
    }

    /// Rebuilds the live state from what the store holds.
    pub fn restore(
        rules: Arc<RuleSet>,
        settings: Settings,
        live: Vec<Live>,
        restored: Restored,
    ) -> Engine {
        let mut e = Engine::new(rules, settings);
        e.last_key = restored.last_key;
        e.rolling = restored.rolling;
        // Sized up front: growing maps of a million alerts rehashes them
        // over and over, and a restart is on the clock.
        e.incidents.reserve(live.len());
        e.active.reserve(live.iter().map(|l| l.alerts.len()).sum());
        let rules = e.rules.clone();
        for l in live {
            let key = l.incident.id;
            let g = e.groups.entry(l.incident.group_key.clone()).or_insert(key);
            if key > *g {
                *g = key;
            }
            // An alert in two incidents (it resolved in one and fired again
            // into another) points at the one that saw it last; its state
            // there decides whether it is an inhibit source. One pass over
            // the alerts for both: with a million of them, a second pass
            // was most of the time this takes.
            for (fp, rec) in &l.alerts {
                match e.active.entry(*fp) {
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(key);
                    }
                    std::collections::hash_map::Entry::Occupied(mut o) => {
                        let other = *o.get();
                        let seen = e.incidents.get(&other).and_then(|x| x.alerts.get(fp));
                        if seen.is_some_and(|r| (rec.last_seen_at, key) < (r.last_seen_at, other)) {
                            continue;
                        }
                        o.insert(key);
                        e.inhibit.remove(*fp);
                    }
                }
                if rec.status == AlertStatus::Firing {
                    e.inhibit.add(&rules.inhibit, *fp, &rec.labels);
                }
            }
            e.indexed_status.insert(key, l.incident.status);
            e.incidents.insert(key, l);
        }
        for s in restored.suppressed {
            e.suppressed.insert(s.fingerprint, s);
        }
        for mut s in restored.silences {
            match s.compile() {
                Ok(()) => {
                    e.silences.insert(s.id.clone(), s);
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
            e.jobs.insert(j.key.clone(), j);
        }
        e.add_suppressed_sources();
        e
    }

    fn remember(&mut self, h: HistoryEntry) {
        self.history
            .entry(h.group_key)
            .or_default()
            .push_back((h.key, h.created_at));
        let recent = self.recent_by_rule.entry(h.rule).or_default();
        recent.push_back((h.key, h.labels));
        if recent.len() > RECENT_PER_RULE {
            recent.pop_front();
        }
    }

    /// Every firing alert (in incidents and suppressed) as an inhibit source.
    fn rebuild_inhibit_index(&mut self) {
        self.inhibit.clear();
        let rules = self.rules.clone();
        // Incident by incident, in memory order, rather than a random
        // incident lookup per entry of the fingerprint index. (A restart
        // builds the same sources in its one pass; see `restore`.)
        for (key, l) in &self.incidents {
            for (fp, rec) in &l.alerts {
                if rec.status == AlertStatus::Firing && self.active.get(fp) == Some(key) {
                    self.inhibit.add(&rules.inhibit, *fp, &rec.labels);
                }
            }
        }
        self.add_suppressed_sources();
    }

    /// Suppressed firing alerts are inhibit sources too.
    fn add_suppressed_sources(&mut self) {
        for s in self.suppressed.values() {
            self.inhibit
                .add(&self.rules.inhibit, s.fingerprint, &s.labels);
        }
        self.sources_changed = true;
    }

    /// Base URL used for links in action payloads (`config.external_url`).
    pub fn set_external_url(&mut self, url: &str) {
        self.external_url = url.trim_end_matches('/').to_string();
    }

    /// Pending jobs, to resume after a restart.
    pub fn pending_jobs(&self) -> Vec<Job> {
        let mut v: Vec<Job> = self
            .jobs
            .values()
            .filter(|j| j.state == JobState::Pending)
            .cloned()
            .collect();
        v.sort_by_key(|j| j.created_at);
        v
    }

    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// Swaps the rules; live incidents keep their group keys.
    pub fn set_rules(&mut self, rules: Arc<RuleSet>) {
        self.rules = rules;
        self.aggregates.clear();
        self.rebuild_inhibit_index();
    }

    pub fn live(&self, key: IncidentKey) -> Option<&Live> {
        self.incidents.get(&key)
    }

    pub fn live_incidents(&self) -> impl Iterator<Item = &Live> {
        self.incidents.values()
    }

    /// Open or acknowledged incidents per priority.
    pub fn open_by_priority(&self) -> [u64; 5] {
        let mut out = [0u64; 5];
        for l in self.incidents.values() {
            if l.incident.status.is_active() {
                out[l.incident.priority.idx()] += 1;
            }
        }
        out
    }

    pub fn rolling_means(&mut self, now: DateTime<Utc>, window: Duration) -> [[Option<f64>; 5]; 2] {
        self.rolling.means(now, window)
    }

    /// Adds a silence (compiled here); it mutes alerts that arrive later.
    pub fn add_silence(&mut self, mut s: Silence, now: DateTime<Utc>) -> Result<Silence, String> {
        s.compile()?;
        if s.ends_at <= s.starts_at {
            return Err("endsAt: must be after startsAt".into());
        }
        if s.ends_at <= now {
            return Err("endsAt: must be in the future".into());
        }
        let mut id = format!("SIL-{:x}", now.timestamp_nanos_opt().unwrap_or_default());
        while self.silences.contains_key(&id) {
            id.push('x');
        }
        s.id = id.clone();
        s.created_at = now;
        self.dirty_silences.insert(id.clone());
        self.silences.insert(id, s.clone());
        Ok(s)
    }

    /// Ends a silence now; alerts it muted are processed as new on the next tick.
    pub fn expire_silence(&mut self, id: &str, now: DateTime<Utc>) -> Option<Silence> {
        let s = self.silences.get_mut(id)?;
        if s.ends_at > now {
            s.ends_at = now;
            if s.starts_at > now {
                s.starts_at = now;
            }
            self.dirty_silences.insert(id.to_string());
        }
        Some(s.clone())
    }

    pub fn silences(&self) -> impl Iterator<Item = &Silence> {
        self.silences.values()
    }

    pub fn suppressed_alerts(&self) -> impl Iterator<Item = &SuppressedAlert> {
        self.suppressed.values()
    }

    /// Takes everything changed since the last call; closed incidents leave memory.
    pub fn take_changes(&mut self) -> WriteSet {
        let mut ws = WriteSet {
            incidents: Vec::with_capacity(self.dirty_incidents.len()),
            alerts: Vec::with_capacity(self.dirty_alerts.len()),
            timeline: std::mem::take(&mut self.timeline),
            events: std::mem::take(&mut self.events),
            ..WriteSet::default()
        };
        let touched = std::mem::take(&mut self.touched_alerts);
        for (key, fp) in std::mem::take(&mut self.dirty_alerts) {
            if let Some(rec) = self.incidents.get(&key).and_then(|l| l.alerts.get(&fp)) {
                if !touched.contains(&(key, fp)) {
                    ws.seen.push((key, fp, rec.seen()));
                }
                ws.alerts.push((key, rec.clone()));
            }
        }
        for (key, fp) in touched {
            if let Some(rec) = self.incidents.get(&key).and_then(|l| l.alerts.get(&fp)) {
                ws.seen.push((key, fp, rec.seen()));
            }
        }
        let touched = std::mem::take(&mut self.touched_incidents);
        for key in std::mem::take(&mut self.dirty_incidents) {
            if let Some(l) = self.incidents.get(&key) {
                if self.indexed_status.insert(key, l.incident.status) != Some(l.incident.status) {
                    ws.reindex.push(key);
                }
                if !touched.contains(&key) {
                    ws.activity.push((key, l.incident.last_activity_at));
                }
                ws.incidents.push(l.incident.clone());
            }
        }
        for key in touched {
            if let Some(l) = self.incidents.get(&key) {
                ws.activity.push((key, l.incident.last_activity_at));
            }
        }
        for fp in std::mem::take(&mut self.dirty_suppressed) {
            match self.suppressed.get(&fp) {
                Some(s) => ws.suppressed.push(s.clone()),
                None => ws.unsuppressed.push(fp),
            }
        }
        for id in std::mem::take(&mut self.dirty_silences) {
            if let Some(s) = self.silences.get(&id) {
                ws.silences.push(s.clone());
            }
        }
        for k in std::mem::take(&mut self.dirty_jobs) {
            if let Some(j) = self.jobs.get(&k) {
                ws.jobs.push(j.clone());
            }
        }
        for k in std::mem::take(&mut self.new_jobs) {
            if let Some(j) = self.jobs.get(&k).filter(|j| j.state == JobState::Pending) {
                ws.dispatch.push(j.clone());
            }
        }
        for key in std::mem::take(&mut self.closed) {
            if let Some(l) = self
                .incidents
                .get(&key)
                .filter(|l| l.incident.status == Status::Closed)
            {
                ws.closed.push((key, l.alerts.keys().copied().collect()));
                self.evict(key);
            }
        }
        ws.dropped = std::mem::take(&mut self.dropped);
        ws.replaced = std::mem::take(&mut self.replaced);
        ws
    }

    /// Drops pending changes (after a failed commit the caller reloads).
    pub fn discard_changes(&mut self) {
        self.dirty_jobs.clear();
        self.new_jobs.clear();
        self.dirty_suppressed.clear();
        self.dirty_silences.clear();
        self.dirty_incidents.clear();
        self.dirty_alerts.clear();
        self.touched_incidents.clear();
        self.touched_alerts.clear();
        self.timeline.clear();
        self.events.clear();
        self.closed.clear();
        self.dropped.clear();
        self.replaced.clear();
    }

    fn evict(&mut self, key: IncidentKey) {
        self.aggregates.remove(&key);
        self.indexed_status.remove(&key);
        self.jobs
            .retain(|_, j| j.incident != key || j.state == JobState::Pending);
        if let Some(l) = self.incidents.remove(&key) {
            if self.groups.get(&l.incident.group_key) == Some(&key) {
                self.groups.remove(&l.incident.group_key);
            }
            for fp in l.alerts.keys() {
                if self.active.get(fp) == Some(&key) {
                    self.active.remove(fp);
                    if self.inhibit.remove(*fp) {
                        self.sources_changed = true;
                    }
                }
            }
        }
    }

    fn note(&mut self, key: IncidentKey, at: DateTime<Utc>, kind: &str, by: &str, message: String) {
        if let Some(l) = self.incidents.get_mut(&key) {
            let seq = l.incident.timeline_len;
            l.incident.timeline_len += 1;
            self.timeline.push((
                key,
                seq,
                TimelineEntry {
                    at,
                    kind: kind.to_string(),
                    by: by.to_string(),
                    message,
                },
            ));
            self.dirty_incidents.insert(key);
        }
    }

    /// Runs a batch of alerts through dedup and correlation.
    pub fn ingest(&mut self, alerts: Vec<Alert>, now: DateTime<Utc>) -> Vec<Outcome> {
        // Every firing alert of the batch can inhibit the others, whatever
        // their order in the batch (Alertmanager sees them all at once).
        for a in alerts.iter().filter(|a| a.status == AlertStatus::Firing) {
            self.inhibit
                .add(&self.rules.inhibit, a.fingerprint, &a.labels);
        }
        let out = alerts
            .into_iter()
            .map(|a| self.ingest_one(a, now))
            .collect();
        if self.sources_changed {
            self.recheck_suppressed(now);
        }
        out
    }

    /// One alert: dedup against its current occurrence, else correlate.
    pub fn ingest_one(&mut self, a: Alert, now: DateTime<Utc>) -> Outcome {
        let fp = a.fingerprint;
        if self.suppressed.contains_key(&fp) {
            if let Some(o) = self.suppressed_notification(&a, now) {
                return o;
            }
        }
        if let Some(key) = self.active.get(&fp).copied() {
            let Some(rec) = self.incidents.get(&key).and_then(|l| l.alerts.get(&fp)) else {
                // Index and state disagree: trust the state and start over.
                self.active.remove(&fp);
                return self.ingest_one(a, now);
            };
            match (rec.status, a.status) {
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
                        .is_some_and(|s| rec.ends_at.is_some_and(|end| s < end)) =>
                {
                    // Started before the occurrence we already saw end: a
                    // replay (Kafka redelivery, client retry), not a re-fire.
                    self.repeat(key, &a, now);
                    return Outcome::Deduplicated(key);
                }
                (AlertStatus::Resolved, AlertStatus::Firing) => {
                    // A new occurrence: re-fire here if the incident can still take it.
                    let rule = self.rules.correlate_rule(&a.labels);
                    let gk = rule.group_key(&a.labels);
                    let window = rule.window;
                    if self.joinable(key, &gk, window, now)
                        && self.suppression(fp, &a.labels, now).is_none()
                    {
                        self.add_alert(key, a, now);
                        return Outcome::Joined(key);
                    }
                    self.active.remove(&fp);
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
    fn route_new(&mut self, a: Alert, now: DateTime<Utc>) -> Outcome {
        if let Some(s) = self.suppression(a.fingerprint, &a.labels, now) {
            return self.suppress(a, s, now);
        }
        let rule = self.rules.correlate_rule(&a.labels).clone();
        let gk = rule.group_key(&a.labels);
        if let Some(key) = self.groups.get(&gk).copied() {
            if self.joinable(key, &gk, rule.window, now) {
                self.add_alert(key, a, now);
                return Outcome::Joined(key);
            }
        }
        let key = self.create(a, &rule, gk, now);
        Outcome::Created(key)
    }

    fn suppression(
        &self,
        fp: u64,
        labels: &crate::alert::Labels,
        now: DateTime<Utc>,
    ) -> Option<suppress::Suppression> {
        suppress::check(
            &self.rules.maintenance,
            &self.silences,
            &self.rules.inhibit,
            &self.inhibit,
            fp,
            labels,
            now,
        )
    }

    fn suppress(&mut self, a: Alert, s: suppress::Suppression, now: DateTime<Utc>) -> Outcome {
        let reason = s.reason;
        self.inhibit
            .add(&self.rules.inhibit, a.fingerprint, &a.labels);
        self.events.push(Event::Suppressed {
            reason: reason.as_str(),
        });
        self.dirty_suppressed.insert(a.fingerprint);
        self.suppressed.insert(
            a.fingerprint,
            SuppressedAlert {
                fingerprint: a.fingerprint,
                labels: a.labels,
                annotations: a.annotations,
                status: AlertStatus::Firing,
                starts_at: a.starts_at.unwrap_or(now),
                ends_at: a.ends_at,
                generator_url: a.generator_url,
                source: a.source,
                first_seen_at: now,
                last_seen_at: now,
                repeat_count: 0,
                suppression: s,
            },
        );
        Outcome::Suppressed(reason)
    }

    /// A notification about a suppressed alert. `None` means it is no longer
    /// suppressed and must be processed as new.
    fn suppressed_notification(&mut self, a: &Alert, now: DateTime<Utc>) -> Option<Outcome> {
        let fp = a.fingerprint;
        if a.status == AlertStatus::Resolved {
            let s = self.suppressed.remove(&fp)?;
            self.dirty_suppressed.insert(fp);
            if self.inhibit.remove(fp) {
                self.sources_changed = true;
            }
            return Some(Outcome::Suppressed(s.suppression.reason));
        }
        match self.suppression(fp, &a.labels, now) {
            Some(s) => {
                let rec = self.suppressed.get_mut(&fp)?;
                rec.repeat_count += 1;
                rec.last_seen_at = now;
                rec.annotations.clone_from(&a.annotations);
                rec.ends_at = a.ends_at;
                let reason = s.reason;
                rec.suppression = s;
                self.dirty_suppressed.insert(fp);
                self.events.push(Event::Deduplicated);
                Some(Outcome::Suppressed(reason))
            }
            None => {
                self.suppressed.remove(&fp);
                self.dirty_suppressed.insert(fp);
                self.inhibit.remove(fp);
                None
            }
        }
    }

    /// Suppressed alerts whose silence, window or inhibiting alert is gone
    /// are processed as new firing alerts.
    fn recheck_suppressed(&mut self, now: DateTime<Utc>) {
        self.sources_changed = false;
        let fps: Vec<u64> = self.suppressed.keys().copied().collect();
        for fp in fps {
            let Some(s) = self.suppressed.get(&fp) else {
                continue;
            };
            if s.ends_at.is_some_and(|e| e <= now) {
                // Expired without a refresh: it stopped firing.
                self.suppressed.remove(&fp);
                self.dirty_suppressed.insert(fp);
                if self.inhibit.remove(fp) {
                    self.sources_changed = true;
                }
                continue;
            }
            if self.suppression(fp, &s.labels, now).is_some() {
                continue;
            }
            let Some(s) = self.suppressed.remove(&fp) else {
                continue;
            };
            self.dirty_suppressed.insert(fp);
            self.inhibit.remove(fp);
            let alert = Alert {
                fingerprint: fp,
                labels: s.labels,
                annotations: s.annotations,
                status: AlertStatus::Firing,
                starts_at: Some(s.starts_at),
                ends_at: s.ends_at,
                generator_url: s.generator_url,
                source: s.source,
                origin: None,
            };
            let outcome = self.route_new(alert, now);
            if let Outcome::Created(k) | Outcome::Joined(k) = outcome {
                self.note(
                    k,
                    now,
                    "unsuppressed",
                    SYSTEM,
                    format!(
                        "alert [{}] no longer {} ({}); processed as new",
                        crate::fingerprint::to_hex(fp),
                        past_tense(s.suppression.reason),
                        s.suppression.by
                    ),
                );
            }
        }
        if self.sources_changed {
            // Un-suppressing may have removed further sources; settle next time.
            self.sources_changed = false;
        }
    }

    fn joinable(&self, key: IncidentKey, gk: &str, window: Duration, now: DateTime<Utc>) -> bool {
        self.incidents.get(&key).is_some_and(|l| {
            l.incident.status != Status::Closed
                && l.incident.group_key == gk
                && now - l.incident.last_activity_at <= chrono_dur(window)
        })
    }

    fn repeat(&mut self, key: IncidentKey, a: &Alert, now: DateTime<Utc>) {
        if let Some(l) = self.incidents.get_mut(&key) {
            if let Some(rec) = l.alerts.get_mut(&a.fingerprint) {
                rec.repeat_count += 1;
                rec.last_seen_at = now;
                let mut full = false;
                if a.status == AlertStatus::Firing {
                    if rec.annotations != a.annotations {
                        rec.annotations.clone_from(&a.annotations);
                        full = true;
                    }
                    rec.ends_at = a.ends_at;
                    if !a.generator_url.is_empty() && rec.generator_url != a.generator_url {
                        rec.generator_url.clone_from(&a.generator_url);
                        full = true;
                    }
                    l.incident.last_activity_at = now;
                }
                // A plain repeat only moves the counters: the store writes
                // them as a small row instead of the whole record.
                if full {
                    self.dirty_alerts.insert((key, a.fingerprint));
                } else {
                    self.touched_alerts.insert((key, a.fingerprint));
                }
            }
            self.touched_incidents.insert(key);
            self.events.push(Event::Deduplicated);
        }
    }

    fn resolve_alert(
        &mut self,
        key: IncidentKey,
        fp: u64,
        end: DateTime<Utc>,
        now: DateTime<Utc>,
        how: &str,
    ) {
        let flap = self.rules.flapping;
        let Some(l) = self.incidents.get_mut(&key) else {
            return;
        };
        let Some(rec) = l.alerts.get_mut(&fp) else {
            return;
        };
        if rec.status != AlertStatus::Firing {
            return;
        }
        rec.status = AlertStatus::Resolved;
        rec.ends_at = Some(end);
        rec.last_seen_at = now;
        let became_flapping = record_change(rec, now, &flap);
        let flapping = rec.flapping;
        let name = alert_name(rec);
        l.incident.firing_count = l.incident.firing_count.saturating_sub(1);
        l.incident.last_activity_at = now;
        let all_quiet = l.incident.firing_count == 0;
        let any_flapping = l.alerts.values().any(|r| r.flapping);
        self.dirty_alerts.insert((key, fp));
        if self.active.get(&fp) == Some(&key) && self.inhibit.remove(fp) {
            self.sources_changed = true;
        }
        self.note(
            key,
            now,
            "alert_resolved",
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
                self.events.push(Event::Suppressed { reason: "flapping" });
            }
            return;
        }
        self.auto_resolve(key, now, "all alerts resolved");
    }

    fn note_flapping(&mut self, key: IncidentKey, name: &str, now: DateTime<Utc>) {
        let f = self.rules.flapping;
        let what = if f.keep_open {
            "the incident stays open until it settles"
        } else {
            "the incident follows it anyway (flapping.keep_open: false)"
        };
        self.note(
            key,
            now,
            "flapping",
            SYSTEM,
            format!(
                "alert {name} is flapping: more than {} state changes within {}; {what}",
                f.max_changes,
                humantime::format_duration(f.window)
            ),
        );
    }

    /// Resolves an active incident on the daemon's own authority.
    fn auto_resolve(&mut self, key: IncidentKey, now: DateTime<Utc>, why: &str) {
        let Some(l) = self.incidents.get_mut(&key) else {
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
        self.rolling.observe(&l.incident);
        self.events.push(ev);
        self.check_resolve_breach(key, now);
        self.note(key, now, "resolved", SYSTEM, why.to_string());
        let n = self.reopen_count(key);
        self.fire(key, Trigger::Resolved, &n, now);
    }

    fn record_for(&self, a: &Alert, now: DateTime<Utc>) -> AlertRecord {
        let (impact, urgency) = self.rules.prioritize.assess(&a.labels);
        AlertRecord {
            fingerprint: a.fingerprint,
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            status: AlertStatus::Firing,
            starts_at: a.starts_at.unwrap_or(now),
            ends_at: a.ends_at,
            generator_url: a.generator_url.clone(),
            source: a.source,
            first_seen_at: now,
            last_seen_at: now,
            repeat_count: 0,
            occurrences: 1,
            impact,
            urgency,
            priority: self.rules.prioritize.priority(impact, urgency),
            category: self.rules.category(&a.labels).to_string(),
            changes: Vec::new(),
            flapping: false,
            origin: a.origin.clone(),
        }
    }

    fn next_key(&mut self, now: DateTime<Utc>) -> IncidentKey {
        let date = now.year() as u32 * 10_000 + now.month() * 100 + now.day();
        let (date, mut seq) = match self.last_key {
            Some(k) if k.date() >= date => (k.date(), k.seq() + 1),
            _ => (date, 1),
        };
        if let Some(slot) = self.id_slot {
            // The next sequence number at or after `seq` that ends in the slot.
            let n = u64::from(ID_SLOTS);
            seq += (u64::from(slot) + n - seq % n) % n;
        }
        let key = IncidentKey::new(date, seq);
        self.last_key = Some(key);
        key
    }

    fn create(
        &mut self,
        a: Alert,
        rule: &crate::rules::CorrelateRule,
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
        let sla_t = self.rules.sla[rec.priority.idx()];
        let incident = Incident {
            id: key,
            title,
            status: Status::Open,
            priority: rec.priority,
            impact: rec.impact,
            urgency: rec.urgency,
            category: rec.category.clone(),
            rule: rule.name.clone(),
            group_key: gk.clone(),
            labels: a.labels.clone(),
            alert_count: 1,
            firing_count: 1,
            created_at: now,
            acknowledged_at: None,
            resolved_at: None,
            closed_at: None,
            last_activity_at: now,
            assignee: None,
            acknowledged_by: None,
            resolved_by: None,
            workaround: None,
            root_cause: None,
            escalation_level: 0,
            sla: Sla {
                acknowledge_by: now + chrono_dur(sla_t.acknowledge),
                resolve_by: now + chrono_dur(sla_t.resolve),
                breached: false,
                acknowledge_breached: false,
                resolve_breached: false,
            },
            similar: Vec::new(),
            problem_candidate: false,
            reopen_count: 0,
            occurred_at: rec.starts_at.min(now),
            timeline_len: 0,
        };
        let msg = format!(
            "opened by alert {} from {}: {} (impact {} × urgency {}), category {}, rule {}",
            alert_name(&rec),
            source_name(a.source),
            rec.priority,
            rec.impact.as_str(),
            rec.urgency.as_str(),
            rec.category,
            rule.name
        );
        let priority = rec.priority;
        let category = rec.category.clone();
        let mut incident = incident;
        incident.similar = self
            .similar_to(&gk, &rule.name, &a.labels)
            .iter()
            .map(ToString::to_string)
            .collect();
        // Recurrence of this group key within the problem window.
        let problems = self.rules.problems;
        let from = now - chrono_dur(problems.within);
        let hist = self.history.entry(gk.clone()).or_default();
        while hist.front().is_some_and(|(_, t)| *t < from) {
            hist.pop_front();
        }
        let recurrences = hist.len() + 1;
        incident.problem_candidate = recurrences >= problems.recurrence;
        let problem = incident.problem_candidate;
        self.inhibit
            .add(&self.rules.inhibit, a.fingerprint, &a.labels);
        let mut alerts = BTreeMap::new();
        alerts.insert(a.fingerprint, rec);
        self.incidents.insert(key, Live { incident, alerts });
        self.active.insert(a.fingerprint, key);
        self.groups.insert(gk.clone(), key);
        self.dirty_alerts.insert((key, a.fingerprint));
        self.events.push(Event::Created { priority, category });
        self.note(key, now, "created", SYSTEM, msg);
        self.fire(key, Trigger::Opened, "0", now);
        if problem {
            self.events.push(Event::ProblemCandidate);
            self.note(
                key,
                now,
                "problem_candidate",
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

    /// Past incidents like a new one: same group key first (newest first),
    /// then the same rule with the most labels in common (Jaccard ≥ 0.5).
    fn similar_to(&self, gk: &str, rule: &str, labels: &crate::alert::Labels) -> Vec<IncidentKey> {
        let mut out: Vec<IncidentKey> = self
            .history
            .get(gk)
            .map(|h| h.iter().rev().map(|(k, _)| *k).take(MAX_SIMILAR).collect())
            .unwrap_or_default();
        if out.len() < MAX_SIMILAR {
            if let Some(recent) = self.recent_by_rule.get(rule) {
                let mut scored: Vec<(f64, IncidentKey)> = recent
                    .iter()
                    .filter(|(k, _)| !out.contains(k))
                    .map(|(k, l)| (jaccard(l, labels), *k))
                    .filter(|(s, _)| *s >= 0.5)
                    .collect();
                scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));
                let room = MAX_SIMILAR - out.len();
                out.extend(scored.into_iter().take(room).map(|(_, k)| k));
            }
        }
        out
    }

    fn add_alert(&mut self, key: IncidentKey, a: Alert, now: DateTime<Utc>) {
        let fresh = self.record_for(&a, now);
        let mut became_flapping = false;
        self.inhibit
            .add(&self.rules.inhibit, a.fingerprint, &a.labels);
        let Some(l) = self.incidents.get_mut(&key) else {
            return;
        };
        let fp = a.fingerprint;
        let (kind, msg) = match l.alerts.get_mut(&fp) {
            Some(rec) => {
                rec.status = AlertStatus::Firing;
                if record_change(rec, now, &self.rules.flapping) {
                    became_flapping = true;
                }
                rec.occurrences += 1;
                rec.starts_at = a.starts_at.unwrap_or(now);
                rec.ends_at = a.ends_at;
                rec.last_seen_at = now;
                rec.annotations = a.annotations.clone();
                (
                    "alert_refired",
                    format!(
                        "alert {} fired again (occurrence {})",
                        alert_name(rec),
                        rec.occurrences
                    ),
                )
            }
            None => {
                let msg = format!("alert {} added ({})", alert_name(&fresh), fresh.priority);
                l.incident.labels.retain(|k, v| a.labels.get(k) == Some(v));
                if let Some(agg) = self.aggregates.get_mut(&key) {
                    agg.add(&self.rules, &fresh);
                }
                l.alerts.insert(fp, fresh);
                ("alert_added", msg)
            }
        };
        l.incident.alert_count = l.alerts.len() as u32;
        l.incident.firing_count += 1;
        l.incident.last_activity_at = now;
        if let Some(rec) = l.alerts.get(&fp) {
            l.incident.occurred_at = l.incident.occurred_at.min(rec.starts_at);
        }
        let reopen = l.incident.status == Status::Resolved;
        let flapping = l.alerts.get(&fp).is_some_and(|r| r.flapping);
        self.active.insert(fp, key);
        self.dirty_alerts.insert((key, fp));
        self.note(key, now, kind, SYSTEM, msg);
        if became_flapping {
            let name = self
                .incidents
                .get(&key)
                .and_then(|l| l.alerts.get(&fp))
                .map(alert_name)
                .unwrap_or_default();
            self.note_flapping(key, &name, now);
        }
        if flapping && !reopen {
            self.events.push(Event::Suppressed { reason: "flapping" });
        }
        if kind == "alert_added" {
            self.fire(
                key,
                Trigger::AlertAdded,
                &crate::fingerprint::to_hex(fp),
                now,
            );
        }
        if reopen {
            if let Some(l) = self.incidents.get_mut(&key) {
                l.incident.reopen(now);
                self.rolling.observe(&l.incident);
            }
            self.events.push(Event::Reopened);
            self.note(
                key,
                now,
                "reopened",
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
    fn release_foreign_alerts(&mut self, key: IncidentKey, now: DateTime<Utc>) {
        let Some(l) = self.incidents.get_mut(&key) else {
            return;
        };
        let mut notes = Vec::new();
        for (fp, r) in l.alerts.iter_mut() {
            if r.status != AlertStatus::Firing || self.active.get(fp) == Some(&key) {
                continue;
            }
            let owner = self
                .active
                .get(fp)
                .map(|k| format!("tracked by {k}"))
                .unwrap_or_else(|| "no longer tracked here".into());
            r.status = AlertStatus::Resolved;
            r.ends_at = Some(now);
            l.incident.firing_count = l.incident.firing_count.saturating_sub(1);
            self.dirty_alerts.insert((key, *fp));
            notes.push(format!(
                "alert {} is {owner}; resolve this incident by hand",
                alert_name(r)
            ));
        }
        for n in notes {
            self.note(key, now, "alert_released", SYSTEM, n);
        }
    }

    fn reopen_count(&self, key: IncidentKey) -> String {
        self.incidents
            .get(&key)
            .map(|l| l.incident.reopen_count.to_string())
            .unwrap_or_default()
    }

    /// The incident's aggregates, computed from its alerts on first use and
    /// maintained per added alert afterwards.
    fn aggregates(&mut self, key: IncidentKey) -> Option<&mut Aggregates> {
        if !self.aggregates.contains_key(&key) {
            let l = self.incidents.get(&key)?;
            let mut agg = Aggregates::new(self.rules.prioritize.blast_radius.len());
            for r in l.alerts.values() {
                agg.add(&self.rules, r);
            }
            self.aggregates.insert(key, agg);
        }
        self.aggregates.get_mut(&key)
    }

    /// Recomputes priority from the alerts and blast-radius rules; raises
    /// only. O(1) in the number of alerts: works on the aggregates.
    fn reprioritize(&mut self, key: IncidentKey, now: DateTime<Utc>) {
        let rules = self.rules.clone();
        let Some(agg) = self.aggregates(key) else {
            return;
        };
        let mut blast: Option<(Level, String)> = None;
        for (br, values) in rules.prioritize.blast_radius.iter().zip(&agg.distinct) {
            if values.len() >= br.at_least && blast.as_ref().is_none_or(|(lv, _)| br.impact < *lv) {
                blast = Some((
                    br.impact,
                    format!("{} distinct {} values", values.len(), br.label),
                ));
            }
        }
        let mut best: Option<(Priority, Level, Level)> = None;
        for i in Level::ALL {
            for u in Level::ALL {
                if agg.levels[i as usize][u as usize] == 0 {
                    continue;
                }
                let impact = match &blast {
                    Some((b, _)) if *b < i => *b,
                    _ => i,
                };
                let p = rules.prioritize.priority(impact, u);
                if best.is_none_or(|(bp, bi, _)| p < bp || (p == bp && impact < bi)) {
                    best = Some((p, impact, u));
                }
            }
        }
        let Some(l) = self.incidents.get_mut(&key) else {
            return;
        };
        let Some((p, impact, urgency)) = best else {
            return;
        };
        let old = l.incident.priority;
        if p >= old && !(p == old && impact < l.incident.impact) {
            return;
        }
        l.incident.priority = p;
        l.incident.impact = impact;
        l.incident.urgency = urgency;
        let t = rules.sla[p.idx()];
        l.incident.sla.acknowledge_by = l.incident.created_at + chrono_dur(t.acknowledge);
        l.incident.sla.resolve_by = l.incident.created_at + chrono_dur(t.resolve);
        if p == old {
            return;
        }
        let why = match &blast {
            Some((b, what)) if *b == impact => format!(" (blast radius: {what})"),
            _ => String::new(),
        };
        self.events
            .push(Event::PriorityChanged { from: old, to: p });
        self.note(
            key,
            now,
            "priority_changed",
            SYSTEM,
            format!(
                "priority {old} → {p}: impact {} × urgency {}{why}",
                impact.as_str(),
                urgency.as_str()
            ),
        );
        self.fire(key, Trigger::PriorityChanged, p.as_str(), now);
    }

    /// Creates jobs for the actions that listen to `trigger` and match the
    /// incident. `occurrence` tells repeated triggers apart (an alert's
    /// fingerprint, a level, a reopen count) so each runs once.
    fn fire(&mut self, key: IncidentKey, trigger: Trigger, occurrence: &str, now: DateTime<Utc>) {
        let rules = self.rules.clone();
        let Some(l) = self.incidents.get(&key) else {
            return;
        };
        let matching: Vec<&ActionDef> = rules
            .actions
            .iter()
            .filter(|a| a.on.contains(&trigger) && action_applies(a, &l.incident))
            .collect();
        for a in matching {
            self.enqueue(key, a, trigger, occurrence, now);
        }
    }

    fn enqueue(
        &mut self,
        key: IncidentKey,
        a: &ActionDef,
        trigger: Trigger,
        occurrence: &str,
        now: DateTime<Utc>,
    ) {
        let job_key = format!("{key}/{}/{}/{occurrence}", a.name, trigger.as_str());
        if self.jobs.contains_key(&job_key) {
            return;
        }
        let Some(l) = self.incidents.get(&key) else {
            return;
        };
        let mut state = JobState::Pending;
        if let Some((max, per)) = a.rate_limit {
            let q = self
                .rate
                .entry((a.name.clone(), l.incident.group_key.clone()))
                .or_default();
            let from = now - chrono_dur(per);
            while q.front().is_some_and(|t| *t < from) {
                q.pop_front();
            }
            if q.len() >= max as usize {
                state = JobState::RateLimited;
            } else {
                q.push_back(now);
            }
        }
        let payload = self.payload(l, trigger);
        let job = Job {
            key: job_key.clone(),
            incident: key,
            action: a.name.clone(),
            trigger,
            created_at: now,
            state,
            attempts: 0,
            last_result: None,
            payload,
        };
        self.jobs.insert(job_key.clone(), job);
        self.dirty_jobs.insert(job_key.clone());
        if state == JobState::Pending {
            self.new_jobs.push(job_key);
        } else if let Some((max, per)) = a.rate_limit {
            self.note(
                key,
                now,
                "action",
                SYSTEM,
                format!(
                    "action {} not run for {}: rate limit of {max} per {} for this group reached",
                    a.name,
                    trigger.as_str(),
                    humantime::format_duration(per)
                ),
            );
        }
    }

    /// The incident event actions see (templates, exec env and stdin).
    fn payload(&self, l: &Live, trigger: Trigger) -> serde_json::Value {
        let alerts: Vec<serde_json::Value> = l
            .alerts
            .values()
            .take(50)
            .map(|r| {
                serde_json::json!({
                    "fingerprint": crate::fingerprint::to_hex(r.fingerprint),
                    "labels": r.labels, "annotations": r.annotations, "status": r.status,
                    "starts_at": r.starts_at, "generator_url": r.generator_url,
                })
            })
            .collect();
        let id = l.incident.id.to_string();
        serde_json::json!({
            "trigger": trigger.as_str(),
            "incident": l.incident,
            "alerts": alerts,
            "links": {
                "incident": format!("{}/api/v1/incidents/{id}", self.external_url),
                "report": format!("{}/api/v1/incidents/{id}/report", self.external_url),
            },
        })
    }

    /// Records one attempt's result on the job and the incident timeline.
    /// `load` brings back a closed incident so its timeline can be written.
    pub fn record_action_result(
        &mut self,
        r: AttemptResult,
        now: DateTime<Utc>,
        load: impl FnOnce(IncidentKey) -> Option<Live>,
    ) {
        let rules = self.rules.clone();
        let Some(job) = self.jobs.get_mut(&r.job_key) else {
            tracing::warn!(job = %r.job_key, "result for an unknown action job");
            return;
        };
        job.attempts = r.attempt;
        job.last_result = Some(r.message.clone());
        job.state = match (r.outcome, r.retry_in) {
            (crate::actions::Outcome::Success, _) => JobState::Succeeded,
            (_, Some(_)) => JobState::Pending,
            (_, None) => {
                if r.message.contains("actions.allow_exec: false") {
                    JobState::Disabled
                } else {
                    JobState::Failed
                }
            }
        };
        let (key, name, trigger) = (job.incident, job.action.clone(), job.trigger);
        self.dirty_jobs.insert(r.job_key.clone());
        let def = rules.actions.iter().find(|a| a.name == name);
        let max = def.map(|d| d.retries + 1).unwrap_or(r.attempt);
        let kind = def.map(ActionDef::kind_name).unwrap_or("action");
        let mut msg = format!(
            "action {name} ({kind}) for {} attempt {}/{max}: {}: {}",
            trigger.as_str(),
            r.attempt,
            r.outcome.as_str(),
            r.message
        );
        if let Some(d) = r.retry_in {
            msg.push_str(&format!(
                "; retrying in {}",
                humantime::format_duration(Duration::from_millis(d.as_millis() as u64))
            ));
        }
        let loaded = !self.incidents.contains_key(&key);
        if loaded {
            match load(key) {
                Some(l) => {
                    self.incidents.insert(key, l);
                }
                None => return,
            }
        }
        self.note(key, now, "action", SYSTEM, msg);
        if loaded
            && self
                .incidents
                .get(&key)
                .is_some_and(|l| l.incident.status == Status::Closed)
        {
            self.closed.push(key);
        }
    }

    /// Escalation steps that are due: levels after `after` unacknowledged,
    /// or once `resolve_progress` of the resolve target has passed.
    fn escalate(&mut self, now: DateTime<Utc>) {
        let rules = self.rules.clone();
        if rules.escalations.is_empty() {
            return;
        }
        let mut steps = Vec::new();
        for (key, l) in &self.incidents {
            let i = &l.incident;
            if !i.status.is_active() {
                continue;
            }
            let Some(policy) = rules.escalations.iter().find(|p| {
                (p.priorities.is_empty() || p.priorities.contains(&i.priority))
                    && matcher::all_match(&p.matchers, &i.labels)
            }) else {
                continue;
            };
            let resolve_target = rules.sla[i.priority.idx()].resolve;
            for (idx, level) in policy.levels.iter().enumerate() {
                let n = idx as u32 + 1;
                if n <= i.escalation_level {
                    continue;
                }
                let due = match level.when {
                    LevelWhen::Unacknowledged(after) => {
                        i.status == Status::Open && now - i.created_at >= chrono_dur(after)
                    }
                    LevelWhen::ResolveProgress(f) => {
                        now - i.created_at >= chrono_dur(resolve_target.mul_f64(f))
                    }
                };
                if due {
                    let why = match level.when {
                        LevelWhen::Unacknowledged(after) => {
                            format!("unacknowledged for {}", humantime::format_duration(after))
                        }
                        LevelWhen::ResolveProgress(f) => format!(
                            "{:.0}% of the {} resolve target has passed",
                            f * 100.0,
                            humantime::format_duration(resolve_target)
                        ),
                    };
                    steps.push((*key, policy.name.clone(), n, level.clone(), why));
                }
            }
        }
        for (key, policy, n, level, why) in steps {
            let Some(l) = self.incidents.get_mut(&key) else {
                continue;
            };
            if n <= l.incident.escalation_level {
                continue;
            }
            l.incident.escalation_level = n;
            let mut msg = format!("escalated to level {n} (policy {policy}): {why}");
            if let Some(a) = &level.assignee {
                l.incident.assignee = Some(a.clone());
                msg.push_str(&format!("; assigned to {a}"));
            }
            self.events.push(Event::Escalated {
                policy: policy.clone(),
                level: n,
            });
            self.note(key, now, "escalated", SYSTEM, msg);
            let occurrence = format!("level{n}");
            self.fire(key, Trigger::Escalated, &occurrence, now);
            for name in &level.actions {
                if let Some(a) = rules.actions.iter().find(|a| &a.name == name) {
                    self.enqueue(key, a, Trigger::Escalated, &occurrence, now);
                }
            }
        }
    }

    /// Time-driven transitions: alert expiry (`endsAt` passed), SLA breaches,
    /// auto-close of quiet resolved incidents.
    pub fn tick(&mut self, now: DateTime<Utc>) {
        // Silences and maintenance windows that ended, inhibitors that stopped.
        self.recheck_suppressed(now);
        let close_after = chrono_dur(self.settings.close_after);
        let flap = self.rules.flapping;
        let mut expired = Vec::new();
        let mut ack_breach = Vec::new();
        let mut res_breach = Vec::new();
        let mut close = Vec::new();
        let mut settled = Vec::new();
        for (key, l) in self.incidents.iter_mut() {
            let mut any_flapping = false;
            for (fp, r) in l.alerts.iter_mut() {
                if r.status == AlertStatus::Firing && r.ends_at.is_some_and(|e| e <= now) {
                    expired.push((*key, *fp, r.ends_at.unwrap_or(now)));
                }
                if r.flapping {
                    if settle(r, now, &flap) {
                        settled.push((*key, *fp, alert_name(r)));
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
                self.dirty_alerts.insert((key, fp));
                self.note(
                    key,
                    now,
                    "flapping_stopped",
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
            self.breach(key, now, "acknowledge");
        }
        for key in res_breach {
            self.breach(key, now, "resolve");
        }
        self.escalate(now);
        for key in close {
            if let Some(l) = self.incidents.get_mut(&key) {
                if l.incident.status != Status::Resolved {
                    continue;
                }
                l.incident.status = Status::Closed;
                l.incident.closed_at = Some(now);
                self.closed.push(key);
                self.events.push(Event::Closed);
                let after = humantime::format_duration(self.settings.close_after);
                self.note(
                    key,
                    now,
                    "closed",
                    SYSTEM,
                    format!("closed after {after} without a new alert"),
                );
                let n = self.reopen_count(key);
                self.fire(key, Trigger::Closed, &n, now);
            }
        }
    }

    fn breach(&mut self, key: IncidentKey, now: DateTime<Utc>, kind: &'static str) {
        let Some(l) = self.incidents.get_mut(&key) else {
            return;
        };
        let s = &mut l.incident.sla;
        let (flag, deadline) = match kind {
            "acknowledge" => (&mut s.acknowledge_breached, s.acknowledge_by),
            _ => (&mut s.resolve_breached, s.resolve_by),
        };
        if *flag {
            return;
        }
        *flag = true;
        s.breached = true;
        let p = l.incident.priority;
        self.events.push(Event::SlaBreached { priority: p, kind });
        self.note(
            key,
            now,
            "sla_breached",
            SYSTEM,
            format!(
                "{p} {kind} target missed (deadline {})",
                deadline.to_rfc3339()
            ),
        );
        self.fire(key, Trigger::SlaBreached, kind, now);
    }

    fn check_resolve_breach(&mut self, key: IncidentKey, now: DateTime<Utc>) {
        if self
            .incidents
            .get(&key)
            .is_some_and(|l| now > l.incident.sla.resolve_by)
        {
            self.breach(key, now, "resolve");
        }
    }

    /// A person's lifecycle request. `load` fetches a closed incident from the
    /// store (closed incidents are not in memory). On error nothing changed.
    pub fn apply_op(
        &mut self,
        key: IncidentKey,
        op: Op,
        req: &OpRequest,
        now: DateTime<Utc>,
        load: impl FnOnce(IncidentKey) -> Option<Live>,
    ) -> Result<Incident, OpError> {
        let loaded = match self.incidents.entry(key) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(load(key).ok_or_else(|| OpError::NotFound(key.to_string()))?);
                true
            }
        };
        let result = {
            let Some(l) = self.incidents.get_mut(&key) else {
                return Err(OpError::NotFound(key.to_string()));
            };
            l.incident.apply(op, req, now)
        };
        let entry = match result {
            Ok(e) => e,
            Err(e) => {
                if loaded {
                    self.incidents.remove(&key);
                }
                return Err(e.into());
            }
        };
        self.note(key, now, &entry.kind, &entry.by, entry.message);
        let Some(l) = self.incidents.get_mut(&key) else {
            return Err(OpError::NotFound(key.to_string()));
        };
        self.rolling.observe(&l.incident);
        let (p, cat, created) = (
            l.incident.priority,
            l.incident.category.clone(),
            l.incident.created_at,
        );
        match op {
            Op::Ack => {
                self.events.push(Event::Acknowledged {
                    priority: p,
                    seconds: secs(now - created),
                });
                if self
                    .incidents
                    .get(&key)
                    .is_some_and(|l| now > l.incident.sla.acknowledge_by)
                {
                    self.breach(key, now, "acknowledge");
                }
                let n = self.reopen_count(key);
                self.fire(key, Trigger::Acknowledged, &n, now);
            }
            Op::Resolve => {
                self.events.push(Event::Resolved {
                    priority: p,
                    category: cat,
                    seconds: secs(now - created),
                });
                self.check_resolve_breach(key, now);
                let n = self.reopen_count(key);
                self.fire(key, Trigger::Resolved, &n, now);
            }
            Op::Close => {
                self.events.push(Event::Closed);
                self.closed.push(key);
                let n = self.reopen_count(key);
                self.fire(key, Trigger::Closed, &n, now);
            }
            Op::Reopen => {
                self.events.push(Event::Reopened);
                if let Some(l) = self.incidents.get(&key) {
                    self.groups
                        .entry(l.incident.group_key.clone())
                        .or_insert(key);
                }
                self.release_foreign_alerts(key, now);
                let n = self.reopen_count(key);
                self.fire(key, Trigger::Reopened, &n, now);
            }
            Op::Assign | Op::Note => {
                if loaded {
                    // Still closed: write it back, then leave memory again.
                    self.closed.push(key);
                }
            }
        }
        self.dirty_incidents.insert(key);
        self.incidents
            .get(&key)
            .map(|l| l.incident.clone())
            .ok_or_else(|| OpError::NotFound(key.to_string()))
    }
}

fn action_applies(a: &ActionDef, i: &Incident) -> bool {
    (a.priorities.is_empty() || a.priorities.contains(&i.priority))
        && (a.categories.is_empty() || a.categories.contains(&i.category))
        && matcher::all_match(&a.matchers, &i.labels)
}

/// Shared label pairs over all label pairs.
fn jaccard(a: &crate::alert::Labels, b: &crate::alert::Labels) -> f64 {
    // Both are sorted by name: one merge walk.
    let (mut x, mut y) = (a.iter().peekable(), b.iter().peekable());
    let mut common = 0;
    while let (Some((ka, va)), Some((kb, vb))) = (x.peek(), y.peek()) {
        match ka.cmp(kb) {
            std::cmp::Ordering::Less => {
                x.next();
            }
            std::cmp::Ordering::Greater => {
                y.next();
            }
            std::cmp::Ordering::Equal => {
                common += usize::from(va == vb);
                x.next();
                y.next();
            }
        }
    }
    let union = a.len() + b.len() - common;
    if union == 0 {
        0.0
    } else {
        common as f64 / union as f64
    }
}

/// Records a state change; true if the alert just started flapping.
fn record_change(rec: &mut AlertRecord, now: DateTime<Utc>, f: &crate::rules::Flapping) -> bool {
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
fn settle(rec: &mut AlertRecord, now: DateTime<Utc>, f: &crate::rules::Flapping) -> bool {
    let from = now - chrono_dur(f.window);
    rec.changes.retain(|t| *t >= from);
    let was = rec.flapping;
    rec.flapping = rec.changes.len() > f.max_changes;
    was && !rec.flapping
}

fn past_tense(r: Reason) -> &'static str {
    match r {
        Reason::Silence => "silenced",
        Reason::Inhibit => "inhibited",
        Reason::Maintenance => "in maintenance",
    }
}

fn alert_name(r: &AlertRecord) -> String {
    let name = r.labels.get("alertname").unwrap_or("alert");
    format!("{name} [{}]", crate::fingerprint::to_hex(r.fingerprint))
}

fn source_name(s: Source) -> &'static str {
    s.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::labels;

    const RULES: &str = r#"
correlate:
  - name: node
    match: ['alertname="NodeDown"']
    group_by: [cluster]
    window: 30m
    title: "{{ labels.cluster }} nodes down"
classify:
  - match: ['alertname="NodeDown"']
    category: hardware
prioritize:
  urgency:
    - match: ['severity="critical"']
      urgency: high
    - match: ['severity="info"']
      urgency: low
  impact:
    - match: ['env="prod"']
      impact: high
    - distinct: instance
      at_least: 3
      impact: medium
  default_impact: low
  default_urgency: medium
sla:
  P1: {acknowledge: 5m, resolve: 1h}
  P3: {acknowledge: 1h, resolve: 8h}
"#;

    fn engine() -> Engine {
        let rules =
            RuleSet::from_sources(&[("t.yaml".into(), RULES.into())], "test").expect("valid rules");
        Engine::new(
            Arc::new(rules),
            Settings {
                close_after: Duration::from_secs(3600),
                id_slot: None,
            },
        )
    }

    fn t(min: i64) -> DateTime<Utc> {
        "2026-11-23T10:00:00Z"
            .parse::<DateTime<Utc>>()
            .expect("valid")
            + chrono::Duration::minutes(min)
    }

    fn alert(pairs: &[(&str, &str)], status: AlertStatus) -> Alert {
        Alert::new(
            labels(pairs),
            Default::default(),
            Some(status),
            None,
            None,
            String::new(),
            Source::Generic,
            None,
            t(0),
        )
        .expect("non-empty labels")
    }

    fn firing(pairs: &[(&str, &str)]) -> Alert {
        alert(pairs, AlertStatus::Firing)
    }

    fn resolved(pairs: &[(&str, &str)]) -> Alert {
        alert(pairs, AlertStatus::Resolved)
    }

    fn inc(e: &Engine, k: IncidentKey) -> Incident {
        e.live(k).expect("live").incident.clone()
    }

    fn kinds(ws: &WriteSet, k: IncidentKey) -> Vec<String> {
        ws.timeline
            .iter()
            .filter(|(key, _, _)| *key == k)
            .map(|(_, _, e)| e.kind.clone())
            .collect()
    }

    const A: &[(&str, &str)] = &[
        ("alertname", "NodeDown"),
        ("cluster", "eu"),
        ("instance", "a"),
        ("severity", "critical"),
    ];
    const B: &[(&str, &str)] = &[
        ("alertname", "NodeDown"),
        ("cluster", "eu"),
        ("instance", "b"),
        ("severity", "critical"),
    ];

    #[test]
    fn first_alert_creates_incident_with_rule_category_priority_sla() {
        let mut e = engine();
        let Outcome::Created(k) = e.ingest_one(firing(A), t(0)) else {
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
        assert_eq!(i.sla.acknowledge_by, t(60));
        assert_eq!(i.sla.resolve_by, t(8 * 60));
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

    fn engine_in_slot(slot: u32) -> Engine {
        let mut e = engine();
        e.id_slot = Some(slot);
        e
    }

    #[test]
    fn ids_of_an_instance_end_in_its_slot() {
        let mut a = engine_in_slot(1);
        let mut b = engine_in_slot(0);
        let ids = |e: &mut Engine| -> Vec<String> {
            (0..3).map(|_| e.next_key(t(0)).to_string()).collect()
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
        a.last_key = Some(IncidentKey::new(20261123, 957));
        assert_eq!(a.next_key(t(0)).to_string(), "INC-20261123-1001");
        // A new day starts over.
        assert_eq!(a.next_key(t(24 * 60)).to_string(), "INC-20261124-0001");
    }

    #[test]
    fn adopted_incidents_take_new_alerts_and_handed_over_ones_leave() {
        let mut old = engine_in_slot(1);
        let Outcome::Created(k) = old.ingest_one(firing(A), t(0)) else {
            panic!()
        };
        old.take_changes();
        let live = old.live(k).expect("live").clone();
        let timeline = vec![(
            0,
            TimelineEntry {
                at: t(0),
                kind: "created".into(),
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
        assert_eq!(new.ingest_one(firing(A), t(1)), Outcome::Deduplicated(k));
        assert_eq!(new.ingest_one(firing(B), t(2)), Outcome::Joined(k));
        assert_eq!(inc(&new, k).alert_count, 2);
        // A closed incident is not adopted.
        let mut closed = live.clone();
        closed.incident.id = IncidentKey::new(20261123, 201);
        closed.incident.status = Status::Closed;
        assert_eq!(new.adopt(closed, Vec::new()), Adoption::Kept);

        // The old owner lets it go: out of memory, dropped from the store,
        // and the next alert of the group opens a new incident there.
        old.ingest_one(firing(A), t(1));
        assert!(old.hand_over(k));
        assert!(!old.hand_over(k));
        assert!(old.live(k).is_none());
        let ws = old.take_changes();
        assert_eq!(ws.dropped, vec![k]);
        assert!(
            ws.incidents.is_empty() && ws.alerts.is_empty() && ws.seen.is_empty(),
            "nothing of a handed-over incident is written back"
        );
        assert!(matches!(old.ingest_one(firing(B), t(3)), Outcome::Created(k2) if k2 != k));
    }

    #[test]
    fn a_newer_changelog_copy_replaces_a_stale_live_one() {
        // x crashed holding k; y adopted k and moved on; k comes back to x.
        let mut x = engine_in_slot(1);
        let Outcome::Created(k) = x.ingest_one(firing(A), t(0)) else {
            panic!()
        };
        x.take_changes();
        let stale = x.live(k).expect("live").clone();
        let mut y = engine_in_slot(2);
        assert_eq!(y.adopt(stale.clone(), Vec::new()), Adoption::Adopted);
        assert_eq!(y.ingest_one(firing(B), t(1)), Outcome::Joined(k));
        let newer = y.live(k).expect("live").clone();

        assert_eq!(x.adopt(stale, Vec::new()), Adoption::Kept);
        assert_eq!(x.adopt(newer, Vec::new()), Adoption::Replaced);
        assert_eq!(inc(&x, k).alert_count, 2);
        let ws = x.take_changes();
        assert_eq!(ws.replaced, vec![k]);
        assert_eq!(ws.alerts.len(), 2, "every alert of the new copy is written");
        // Both alerts now repeat into k.
        assert_eq!(x.ingest_one(firing(B), t(2)), Outcome::Deduplicated(k));
        assert_eq!(x.ingest_one(firing(A), t(2)), Outcome::Deduplicated(k));
    }

    #[test]
    fn repeats_are_deduplicated_and_counted() {
        let mut e = engine();
        let Outcome::Created(k) = e.ingest_one(firing(A), t(0)) else {
            panic!()
        };
        assert_eq!(e.ingest_one(firing(A), t(1)), Outcome::Deduplicated(k));
        assert_eq!(e.ingest_one(firing(A), t(2)), Outcome::Deduplicated(k));
        let l = e.live(k).expect("live");
        let rec = l.alerts.values().next().expect("one alert");
        assert_eq!(rec.repeat_count, 2);
        assert_eq!(rec.last_seen_at, t(2));
        assert_eq!(l.incident.alert_count, 1);
        assert_eq!(l.incident.last_activity_at, t(2));
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
        let mut e = engine();
        let Outcome::Created(k) = e.ingest_one(firing(A), t(0)) else {
            panic!()
        };
        assert_eq!(e.ingest_one(firing(B), t(20)), Outcome::Joined(k));
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
        assert!(matches!(e.ingest_one(firing(&other), t(21)), Outcome::Created(k2) if k2 != k));
    }

    #[test]
    fn a_quiet_incident_past_the_window_does_not_take_new_alerts() {
        let mut e = engine();
        let Outcome::Created(k) = e.ingest_one(firing(A), t(0)) else {
            panic!()
        };
        // 31 minutes without activity: the 30m window has passed.
        let Outcome::Created(k2) = e.ingest_one(firing(B), t(31)) else {
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
        assert_eq!(e.ingest_one(firing(&c), t(32)), Outcome::Joined(k2));
    }

    #[test]
    fn repeats_keep_the_window_open() {
        let mut e = engine();
        let Outcome::Created(k) = e.ingest_one(firing(A), t(0)) else {
            panic!()
        };
        for m in [20, 40, 60] {
            e.ingest_one(firing(A), t(m));
        }
        assert_eq!(e.ingest_one(firing(B), t(80)), Outcome::Joined(k));
    }

    #[test]
    fn resolving_every_alert_resolves_the_incident_and_refire_reopens_it() {
        let mut e = engine();
        let Outcome::Created(k) = e.ingest_one(firing(A), t(0)) else {
            panic!()
        };
        e.ingest_one(firing(B), t(1));
        assert_eq!(e.ingest_one(resolved(A), t(5)), Outcome::Resolved(k));
        assert_eq!(inc(&e, k).status, Status::Open);
        assert_eq!(inc(&e, k).firing_count, 1);
        e.ingest_one(resolved(B), t(10));
        let i = inc(&e, k);
        assert_eq!(
            (i.status, i.firing_count, i.resolved_at),
            (Status::Resolved, 0, Some(t(10)))
        );
        assert_eq!(i.resolved_by.as_deref(), Some(SYSTEM));
        // A duplicate resolve changes nothing.
        assert_eq!(e.ingest_one(resolved(B), t(11)), Outcome::Deduplicated(k));
        let ws = e.take_changes();
        assert!(ws
            .events
            .iter()
            .any(|ev| matches!(ev, Event::Resolved { seconds, .. } if *seconds == 600.0)));
        // Re-fire within the window: same incident, reopened, occurrence 2.
        assert_eq!(e.ingest_one(firing(A), t(20)), Outcome::Joined(k));
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
        assert_eq!((rec.status, rec.occurrences), (AlertStatus::Firing, 2));
        let ws = e.take_changes();
        assert_eq!(kinds(&ws, k), vec!["alert_refired", "reopened"]);
    }

    #[test]
    fn replayed_firing_resolved_pair_changes_nothing() {
        let mut e = engine();
        let mut fire = firing(A);
        fire.starts_at = Some(t(0));
        let mut res = resolved(A);
        res.starts_at = Some(t(0));
        res.ends_at = Some(t(5));
        let Outcome::Created(k) = e.ingest_one(fire.clone(), t(1)) else {
            panic!()
        };
        e.ingest_one(res.clone(), t(6));
        e.take_changes();
        // The same two notifications again (a redelivery).
        assert_eq!(e.ingest_one(fire, t(7)), Outcome::Deduplicated(k));
        assert_eq!(e.ingest_one(res, t(7)), Outcome::Deduplicated(k));
        let i = e.live(k).expect("live").incident.clone();
        assert_eq!((i.status, i.reopen_count), (Status::Resolved, 0));
        let ws = e.take_changes();
        assert!(!ws
            .events
            .iter()
            .any(|ev| matches!(ev, Event::Resolved { .. } | Event::Reopened)));
        // A real re-fire starts after the end: a new occurrence.
        let mut again = firing(A);
        again.starts_at = Some(t(8));
        assert_eq!(e.ingest_one(again, t(8)), Outcome::Joined(k));
    }

    #[test]
    fn refire_after_the_window_is_a_new_incident() {
        let mut e = engine();
        let Outcome::Created(k) = e.ingest_one(firing(A), t(0)) else {
            panic!()
        };
        e.ingest_one(resolved(A), t(5));
        let Outcome::Created(k2) = e.ingest_one(firing(A), t(50)) else {
            panic!("expected new incident")
        };
        assert_ne!(k, k2);
        // The old incident still holds its resolved occurrence.
        assert_eq!(inc(&e, k).status, Status::Resolved);
        // And the fingerprint now follows the new incident.
        assert_eq!(e.ingest_one(firing(A), t(51)), Outcome::Deduplicated(k2));
    }

    #[test]
    fn resolved_alert_never_seen_firing_is_ignored() {
        let mut e = engine();
        assert_eq!(e.ingest_one(resolved(A), t(0)), Outcome::Ignored);
        assert!(e.take_changes().is_empty());
    }

    #[test]
    fn seed_matrix() {
        let p = crate::rules::Prioritize::default();
        use Level::*;
        use Priority::*;
        let want = [
            (High, High, P1),
            (High, Medium, P2),
            (High, Low, P3),
            (Medium, High, P2),
            (Medium, Medium, P3),
            (Medium, Low, P4),
            (Low, High, P3),
            (Low, Medium, P4),
            (Low, Low, P5),
        ];
        for (i, u, pr) in want {
            assert_eq!(p.priority(i, u), pr, "impact {i:?} urgency {u:?}");
        }
    }

    #[test]
    fn incident_takes_the_highest_priority_and_records_the_change() {
        let mut e = engine();
        let low = [
            ("alertname", "NodeDown"),
            ("cluster", "eu"),
            ("instance", "a"),
            ("severity", "info"),
        ];
        let Outcome::Created(k) = e.ingest_one(firing(&low), t(0)) else {
            panic!()
        };
        assert_eq!(inc(&e, k).priority, Priority::P5);
        e.take_changes();
        let prod = [
            ("alertname", "NodeDown"),
            ("cluster", "eu"),
            ("instance", "b"),
            ("severity", "critical"),
            ("env", "prod"),
        ];
        e.ingest_one(firing(&prod), t(1));
        let i = inc(&e, k);
        assert_eq!(
            (i.priority, i.impact, i.urgency),
            (Priority::P1, Level::High, Level::High)
        );
        // SLA follows the new priority, from creation.
        assert_eq!(i.sla.acknowledge_by, t(5));
        let ws = e.take_changes();
        assert_eq!(kinds(&ws, k), vec!["alert_added", "priority_changed"]);
        assert!(ws.events.contains(&Event::PriorityChanged {
            from: Priority::P5,
            to: Priority::P1
        }));
        // A lower-priority alert later does not lower it.
        let info = [
            ("alertname", "NodeDown"),
            ("cluster", "eu"),
            ("instance", "c"),
            ("severity", "info"),
        ];
        e.ingest_one(firing(&info), t(2));
        assert_eq!(inc(&e, k).priority, Priority::P1);
    }

    #[test]
    fn blast_radius_raises_impact_as_the_incident_spreads() {
        let mut e = engine();
        fn mk(i: &str) -> Vec<(&str, &str)> {
            vec![
                ("alertname", "NodeDown"),
                ("cluster", "eu"),
                ("instance", i),
            ]
        }
        let Outcome::Created(k) = e.ingest_one(firing(&mk("a")), t(0)) else {
            panic!()
        };
        // low impact × medium urgency.
        assert_eq!(inc(&e, k).priority, Priority::P4);
        e.ingest_one(firing(&mk("b")), t(1));
        assert_eq!(inc(&e, k).priority, Priority::P4);
        e.ingest_one(firing(&mk("c")), t(2));
        let i = inc(&e, k);
        assert_eq!((i.priority, i.impact), (Priority::P3, Level::Medium));
        let ws = e.take_changes();
        let msg = ws
            .timeline
            .iter()
            .find(|(_, _, e)| e.kind == "priority_changed")
            .map(|(_, _, e)| e.message.clone());
        assert!(msg.is_some_and(|m| m.contains("blast radius: 3 distinct instance values")));
        // Past `at_least` the values are not kept: a wide incident does not
        // hold every host name, and its priority stays where it went.
        for (n, host) in ["d", "e", "f"].into_iter().enumerate() {
            e.ingest_one(firing(&mk(host)), t(3 + n as i64));
        }
        assert_eq!(inc(&e, k).priority, Priority::P3);
        assert_eq!(inc(&e, k).alert_count, 6);
        assert_eq!(e.aggregates[&k].distinct[0].len(), 3);
    }

    fn req(by: &str) -> OpRequest {
        OpRequest {
            by: Some(by.into()),
            ..OpRequest::default()
        }
    }

    fn no_load(_: IncidentKey) -> Option<Live> {
        None
    }

    #[test]
    fn lifecycle_transitions_and_conflicts() {
        let mut e = engine();
        let Outcome::Created(k) = e.ingest_one(firing(A), t(0)) else {
            panic!()
        };
        // Close before resolve is illegal.
        let err = e
            .apply_op(k, Op::Close, &req("bob"), t(1), no_load)
            .unwrap_err();
        assert!(
            matches!(
                err,
                OpError::Transition(TransitionError::Illegal {
                    status: Status::Open,
                    ..
                })
            ),
            "{err}"
        );
        let i = e
            .apply_op(k, Op::Ack, &req("alice"), t(3), no_load)
            .expect("ack");
        assert_eq!(
            (i.status, i.acknowledged_at, i.acknowledged_by.as_deref()),
            (Status::Acknowledged, Some(t(3)), Some("alice"))
        );
        assert!(e
            .apply_op(k, Op::Ack, &req("alice"), t(4), no_load)
            .is_err());
        let assign = OpRequest {
            by: Some("alice".into()),
            assignee: Some("db-team".into()),
            ..OpRequest::default()
        };
        assert_eq!(
            e.apply_op(k, Op::Assign, &assign, t(5), no_load)
                .expect("assign")
                .assignee
                .as_deref(),
            Some("db-team")
        );
        let bad = e
            .apply_op(k, Op::Note, &req("alice"), t(5), no_load)
            .unwrap_err();
        assert!(matches!(
            bad,
            OpError::Transition(TransitionError::BadRequest(_))
        ));
        let res = OpRequest {
            by: Some("alice".into()),
            workaround: Some("failover".into()),
            root_cause: Some("disk".into()),
            ..OpRequest::default()
        };
        let i = e
            .apply_op(k, Op::Resolve, &res, t(10), no_load)
            .expect("resolve");
        assert_eq!(
            (i.status, i.workaround.as_deref(), i.root_cause.as_deref()),
            (Status::Resolved, Some("failover"), Some("disk"))
        );
        let i = e
            .apply_op(k, Op::Close, &req("alice"), t(11), no_load)
            .expect("close");
        assert_eq!(i.status, Status::Closed);
        let ws = e.take_changes();
        assert_eq!(
            kinds(&ws, k),
            vec!["created", "acknowledged", "assigned", "resolved", "closed"]
        );
        assert!(ws
            .timeline
            .iter()
            .filter(|(_, _, e)| e.kind != "created")
            .all(|(_, _, e)| e.by == "alice"));
        assert!(ws.events.contains(&Event::Acknowledged {
            priority: Priority::P3,
            seconds: 180.0
        }));
        // Closed incidents leave memory; unknown ids are not found.
        assert!(e.live(k).is_none());
        assert!(matches!(
            e.apply_op(k, Op::Reopen, &req("x"), t(12), no_load),
            Err(OpError::NotFound(_))
        ));
        // A closed incident can be reopened when the store provides it.
        let stored = ws
            .incidents
            .iter()
            .find(|i| i.id == k)
            .cloned()
            .expect("written");
        let i = e
            .apply_op(k, Op::Reopen, &req("carol"), t(13), |_| {
                Some(Live {
                    incident: stored,
                    alerts: Default::default(),
                })
            })
            .expect("reopen");
        assert_eq!(
            (i.status, i.closed_at, i.reopen_count),
            (Status::Open, None, 1)
        );
    }

    #[test]
    fn tick_records_sla_breaches_once_and_closes_quiet_incidents() {
        let mut e = engine();
        let Outcome::Created(k) = e.ingest_one(firing(A), t(0)) else {
            panic!()
        };
        e.take_changes();
        e.tick(t(59));
        assert!(e.take_changes().is_empty());
        e.tick(t(61));
        e.tick(t(62));
        let ws = e.take_changes();
        assert_eq!(
            ws.events,
            vec![Event::SlaBreached {
                priority: Priority::P3,
                kind: "acknowledge"
            }]
        );
        let i = inc(&e, k);
        assert!(i.sla.breached && i.sla.acknowledge_breached && !i.sla.resolve_breached);
        e.ingest_one(resolved(A), t(70));
        e.take_changes();
        e.tick(t(70 + 59));
        assert_eq!(inc(&e, k).status, Status::Resolved);
        e.tick(t(70 + 60));
        let ws = e.take_changes();
        assert!(ws
            .incidents
            .iter()
            .any(|i| i.id == k && i.status == Status::Closed));
        assert!(e.live(k).is_none(), "closed incidents leave memory");
        // After closing, the same alert opens a new incident.
        assert!(matches!(e.ingest_one(firing(A), t(200)), Outcome::Created(k2) if k2 != k));
    }

    #[test]
    fn reopening_an_acknowledged_incident_is_no_acknowledge_breach() {
        let mut e = engine();
        let Outcome::Created(k) = e.ingest_one(firing(A), t(0)) else {
            panic!()
        };
        e.apply_op(k, Op::Ack, &req("a"), t(5), no_load)
            .expect("ack");
        e.apply_op(k, Op::Resolve, &req("a"), t(6), no_load)
            .expect("resolve");
        e.apply_op(k, Op::Reopen, &req("a"), t(90), no_load)
            .expect("reopen");
        e.tick(t(91));
        assert!(!e.live(k).expect("live").incident.sla.acknowledge_breached);
    }

    #[test]
    fn reopened_closed_incident_releases_alerts_another_incident_tracks() {
        let mut e = engine();
        let Outcome::Created(k1) = e.ingest_one(firing(A), t(0)) else {
            panic!()
        };
        e.apply_op(k1, Op::Resolve, &req("a"), t(1), no_load)
            .expect("resolve");
        e.apply_op(k1, Op::Close, &req("a"), t(2), no_load)
            .expect("close");
        let ws = e.take_changes();
        // Still firing: the next notification opens a new incident.
        let Outcome::Created(k2) = e.ingest_one(firing(A), t(3)) else {
            panic!("new incident")
        };
        let stored = ws
            .incidents
            .iter()
            .find(|i| i.id == k1)
            .cloned()
            .expect("written");
        let alerts = ws
            .alerts
            .iter()
            .filter(|(k, _)| *k == k1)
            .map(|(_, r)| (r.fingerprint, r.clone()))
            .collect();
        e.apply_op(k1, Op::Reopen, &req("b"), t(4), |_| {
            Some(Live {
                incident: stored,
                alerts,
            })
        })
        .expect("reopen");
        let i1 = e.live(k1).expect("live").incident.clone();
        assert_eq!((i1.status, i1.firing_count), (Status::Open, 0));
        // The alert resolves once, in the incident that tracks it.
        assert_eq!(e.ingest_one(resolved(A), t(5)), Outcome::Resolved(k2));
        assert_eq!(e.live(k2).expect("live").incident.status, Status::Resolved);
        let ws = e.take_changes();
        assert!(ws.timeline.iter().any(|(k, _, t)| *k == k1
            && t.kind == "alert_released"
            && t.message.contains(&format!("tracked by {k2}"))));
    }

    #[test]
    fn tick_expires_alerts_whose_ends_at_passed() {
        let mut e = engine();
        let mut a = firing(A);
        a.ends_at = Some(t(4));
        let Outcome::Created(k) = e.ingest_one(a, t(0)) else {
            panic!()
        };
        e.tick(t(3));
        assert_eq!(inc(&e, k).firing_count, 1);
        e.tick(t(5));
        let i = inc(&e, k);
        assert_eq!((i.firing_count, i.status), (0, Status::Resolved));
    }

    #[test]
    fn ids_restart_each_day_and_continue_after_restore() {
        let mut e = engine();
        let Outcome::Created(k1) = e.ingest_one(firing(A), t(0)) else {
            panic!()
        };
        let next_day = t(24 * 60);
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
        assert_eq!(r.ingest_one(firing(A), t(10)), Outcome::Deduplicated(k1));
        assert_eq!(r.ingest_one(firing(B), t(11)), Outcome::Joined(k1));
        let Outcome::Created(k3) = r.ingest_one(firing(&[("alertname", "Y")]), next_day) else {
            panic!()
        };
        assert_eq!(k3.to_string(), "INC-20261124-0002");
    }

    #[test]
    fn rolling_means_per_priority_within_the_window() {
        let mut e = engine();
        let Outcome::Created(k) = e.ingest_one(firing(A), t(0)) else {
            panic!()
        };
        e.apply_op(k, Op::Ack, &req("a"), t(10), no_load)
            .expect("ack");
        e.ingest_one(resolved(A), t(30));
        let m = e.rolling_means(t(31), Duration::from_secs(3600));
        assert_eq!(m[0][Priority::P3.idx()], Some(600.0));
        assert_eq!(m[1][Priority::P3.idx()], Some(1800.0));
        assert_eq!(m[0][Priority::P1.idx()], None);
        // Outside the window the samples are gone.
        let m = e.rolling_means(t(31 + 120), Duration::from_secs(3600));
        assert_eq!(m[1][Priority::P3.idx()], None);
    }
}

#[cfg(test)]
mod suppression_tests {
    use super::*;
    use crate::rules::labels;

    const RULES: &str = r#"
correlate:
  - name: by-instance
    group_by: [alertname, instance]
    window: 1h
inhibit:
  - name: down-mutes-warnings
    source: ['alertname="NodeDown"']
    target: ['severity="warning"']
    equal: [instance]
maintenance:
  - name: db-upgrade
    match: ['service="db"']
    start: 2026-11-23T10:00:00Z
    end: 2026-11-23T11:00:00Z
flapping:
  max_changes: 3
  window: 30m
problems:
  recurrence: 3
  within: 1d
"#;

    fn engine() -> Engine {
        let rules = RuleSet::from_sources(&[("t.yaml".into(), RULES.into())], "t").expect("valid");
        Engine::new(
            Arc::new(rules),
            Settings {
                close_after: Duration::from_secs(60),
                id_slot: None,
            },
        )
    }

    fn t(min: i64) -> DateTime<Utc> {
        "2026-11-23T09:00:00Z"
            .parse::<DateTime<Utc>>()
            .expect("valid")
            + chrono::Duration::minutes(min)
    }

    fn alert(pairs: &[(&str, &str)], status: AlertStatus) -> Alert {
        Alert::new(
            labels(pairs),
            Default::default(),
            Some(status),
            None,
            None,
            String::new(),
            Source::Generic,
            None,
            t(0),
        )
        .expect("labels")
    }

    const DOWN: &[(&str, &str)] = &[
        ("alertname", "NodeDown"),
        ("instance", "a"),
        ("severity", "critical"),
    ];
    const DISK: &[(&str, &str)] = &[
        ("alertname", "DiskSlow"),
        ("instance", "a"),
        ("severity", "warning"),
    ];
    const DISK_B: &[(&str, &str)] = &[
        ("alertname", "DiskSlow"),
        ("instance", "b"),
        ("severity", "warning"),
    ];

    #[test]
    fn a_restored_engine_still_inhibits_and_its_newest_copy_of_an_alert_counts() {
        let mut e = engine();
        let Outcome::Created(first) = e.ingest_one(alert(DOWN, AlertStatus::Firing), t(0)) else {
            panic!()
        };
        // The source resolves and fires again later into a new incident: its
        // fingerprint is in two live incidents, resolved in the older.
        e.ingest_one(alert(DOWN, AlertStatus::Resolved), t(1));
        let Outcome::Created(second) = e.ingest_one(alert(DOWN, AlertStatus::Firing), t(200))
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
                r.active.get(&alert(DOWN, AlertStatus::Firing).fingerprint),
                Some(&second)
            );
            assert_eq!(
                r.ingest_one(alert(DISK, AlertStatus::Firing), t(201)),
                Outcome::Suppressed(Reason::Inhibit),
                "the restored firing source inhibits"
            );
            assert!(matches!(
                r.ingest_one(alert(DISK_B, AlertStatus::Firing), t(201)),
                Outcome::Created(_)
            ));
        }
    }

    #[test]
    fn inhibited_alert_is_stored_then_processed_as_new_when_the_source_resolves() {
        let mut e = engine();
        assert!(matches!(
            e.ingest_one(alert(DOWN, AlertStatus::Firing), t(0)),
            Outcome::Created(_)
        ));
        assert_eq!(
            e.ingest(vec![alert(DISK, AlertStatus::Firing)], t(1)),
            vec![Outcome::Suppressed(Reason::Inhibit)]
        );
        // Another instance is not inhibited.
        assert!(matches!(
            e.ingest_one(alert(DISK_B, AlertStatus::Firing), t(1)),
            Outcome::Created(_)
        ));
        let s: Vec<_> = e.suppressed_alerts().collect();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].suppression.by, "down-mutes-warnings");
        assert_eq!(
            s[0].suppression.inhibited_by.as_deref(),
            Some(crate::fingerprint::to_hex(alert(DOWN, AlertStatus::Firing).fingerprint).as_str())
        );
        let ws = e.take_changes();
        assert_eq!(ws.suppressed.len(), 1);
        assert!(ws.events.contains(&Event::Suppressed { reason: "inhibit" }));
        // Repeats stay suppressed.
        assert_eq!(
            e.ingest_one(alert(DISK, AlertStatus::Firing), t(2)),
            Outcome::Suppressed(Reason::Inhibit)
        );
        // The source resolves: the still-firing target becomes an incident.
        let out = e.ingest(vec![alert(DOWN, AlertStatus::Resolved)], t(3));
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
        assert!(
            ws.timeline
                .iter()
                .any(|(_, _, t)| t.kind == "unsuppressed"
                    && t.message.contains("no longer inhibited"))
        );
    }

    #[test]
    fn inhibition_does_not_depend_on_order_within_a_batch() {
        let mut e = engine();
        let out = e.ingest(
            vec![
                alert(DISK, AlertStatus::Firing),
                alert(DOWN, AlertStatus::Firing),
            ],
            t(0),
        );
        assert_eq!(out[0], Outcome::Suppressed(Reason::Inhibit));
        assert!(matches!(out[1], Outcome::Created(_)));
    }

    #[test]
    fn suppressed_alert_that_resolves_leaves_quietly() {
        let mut e = engine();
        e.ingest_one(alert(DOWN, AlertStatus::Firing), t(0));
        e.ingest_one(alert(DISK, AlertStatus::Firing), t(1));
        e.take_changes();
        assert_eq!(
            e.ingest_one(alert(DISK, AlertStatus::Resolved), t(2)),
            Outcome::Suppressed(Reason::Inhibit)
        );
        e.ingest(vec![alert(DOWN, AlertStatus::Resolved)], t(3));
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
        let mut e = engine();
        let db = [("alertname", "DbSlow"), ("service", "db")];
        // Before the window: an incident.
        assert!(matches!(
            e.ingest_one(alert(&db, AlertStatus::Firing), t(30)),
            Outcome::Created(_)
        ));
        let db2 = [("alertname", "DbLag"), ("service", "db")];
        assert_eq!(
            e.ingest_one(alert(&db2, AlertStatus::Firing), t(61)),
            Outcome::Suppressed(Reason::Maintenance)
        );
        assert_eq!(
            e.suppressed_alerts()
                .next()
                .map(|s| s.suppression.by.as_str()),
            Some("db-upgrade")
        );
        e.tick(t(119));
        assert_eq!(e.suppressed_alerts().count(), 1);
        // The window ends at 11:00: the tick processes the alert as new.
        e.take_changes();
        e.tick(t(121));
        assert_eq!(e.suppressed_alerts().count(), 0);
        let ws = e.take_changes();
        assert!(ws
            .events
            .iter()
            .any(|ev| matches!(ev, Event::Created { .. })));
    }

    #[test]
    fn silences_mute_new_alerts_until_expired() {
        let mut e = engine();
        let s = Silence {
            id: String::new(),
            matchers: vec![r#"instance="c""#.into()],
            starts_at: t(0),
            ends_at: t(120),
            comment: "reboot".into(),
            created_by: "alice".into(),
            created_at: t(0),
            compiled: vec![],
        };
        let s = e.add_silence(s, t(0)).expect("valid");
        assert!(s.id.starts_with("SIL-"));
        let c = [("alertname", "X"), ("instance", "c")];
        assert_eq!(
            e.ingest_one(alert(&c, AlertStatus::Firing), t(1)),
            Outcome::Suppressed(Reason::Silence)
        );
        assert_eq!(e.take_changes().silences.len(), 1);
        let expired = e.expire_silence(&s.id, t(5)).expect("exists");
        assert_eq!(expired.ends_at, t(5));
        e.tick(t(6));
        let ws = e.take_changes();
        assert!(
            ws.events
                .iter()
                .any(|ev| matches!(ev, Event::Created { .. })),
            "{:?}",
            ws.events
        );
        assert!(e.expire_silence("nope", t(6)).is_none());
        let bad = Silence {
            matchers: vec![r#"x=~".*""#.into()],
            ..s
        };
        assert!(e
            .add_silence(bad, t(7))
            .unwrap_err()
            .contains("would mute every alert"));
    }

    #[test]
    fn flapping_alert_keeps_its_incident_open() {
        let mut e = engine();
        let a = [("alertname", "Flappy"), ("instance", "f")];
        let Outcome::Created(k) = e.ingest_one(alert(&a, AlertStatus::Firing), t(0)) else {
            panic!()
        };
        // Changes: resolve(1), fire(2), resolve(3), fire(4) → flapping after the 4th change.
        e.ingest_one(alert(&a, AlertStatus::Resolved), t(1));
        assert_eq!(e.live(k).expect("live").incident.status, Status::Resolved);
        e.ingest_one(alert(&a, AlertStatus::Firing), t(2));
        e.ingest_one(alert(&a, AlertStatus::Resolved), t(3));
        e.ingest_one(alert(&a, AlertStatus::Firing), t(4));
        assert!(e.live(k).expect("live").alerts.values().all(|r| r.flapping));
        e.take_changes();
        // Now a resolve keeps the incident open instead of resolving it.
        e.ingest_one(alert(&a, AlertStatus::Resolved), t(5));
        let i = e.live(k).expect("live").incident.clone();
        assert_eq!((i.status, i.firing_count), (Status::Open, 0));
        let ws = e.take_changes();
        assert!(ws
            .events
            .contains(&Event::Suppressed { reason: "flapping" }));
        // Further cycles neither reopen nor resolve.
        e.ingest_one(alert(&a, AlertStatus::Firing), t(6));
        e.ingest_one(alert(&a, AlertStatus::Resolved), t(7));
        let i = e.live(k).expect("live").incident.clone();
        assert_eq!((i.status, i.reopen_count), (Status::Open, 2));
        e.take_changes();
        // Quiet for the window: it settles and the incident resolves.
        e.tick(t(7 + 31));
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

    #[test]
    fn recurring_group_becomes_a_problem_candidate_with_similar_incidents() {
        let mut e = engine();
        let a = [("alertname", "OOM"), ("instance", "p"), ("team", "x")];
        let mut keys = Vec::new();
        for round in 0..3 {
            let base = round * 120;
            let Outcome::Created(k) = e.ingest_one(alert(&a, AlertStatus::Firing), t(base)) else {
                panic!("round {round}")
            };
            e.ingest_one(alert(&a, AlertStatus::Resolved), t(base + 1));
            e.tick(t(base + 3));
            keys.push(k);
        }
        let ws = e.take_changes();
        let third = ws
            .incidents
            .iter()
            .find(|i| i.id == keys[2])
            .expect("third");
        assert!(third.problem_candidate);
        assert_eq!(
            third.similar,
            vec![keys[1].to_string(), keys[0].to_string()]
        );
        assert!(
            !ws.incidents
                .iter()
                .find(|i| i.id == keys[1])
                .expect("second")
                .problem_candidate
        );
        assert_eq!(
            ws.events
                .iter()
                .filter(|e| **e == Event::ProblemCandidate)
                .count(),
            1
        );
        // Label overlap: the same rule, another instance, most labels shared.
        let other = [("alertname", "OOM"), ("instance", "q"), ("team", "x")];
        let Outcome::Created(k) = e.ingest_one(alert(&other, AlertStatus::Firing), t(400)) else {
            panic!()
        };
        let sim = &e.live(k).expect("live").incident.similar;
        assert!(sim.contains(&keys[2].to_string()), "{sim:?}");
    }
}

#[cfg(test)]
mod action_tests {
    use super::*;
    use crate::actions::{Outcome as AttemptOutcome, Trigger};
    use crate::rules::labels;

    const RULES: &str = r#"
correlate:
  - name: svc
    group_by: [service]
prioritize:
  urgency:
    - match: ['severity="critical"']
      urgency: high
  impact:
    - match: ['env="prod"']
      impact: high
sla:
  P1: {acknowledge: 10m, resolve: 100m}
actions:
  - name: chat
    on: [opened, escalated, resolved]
    priority: [P1]
    webhook: {url: "http://127.0.0.1:1/hook", preset: slack}
  - name: runbook
    on: [alert_added]
    match: ['service="web"']
    exec: {command: /bin/true}
    rate_limit: {max: 2, per: 1h}
  - name: page-manager
    webhook: {url: "http://127.0.0.1:1/page"}
escalations:
  - name: p1
    priority: [P1]
    levels:
      - after: 5m
        assignee: secondary
      - after: 15m
        actions: [page-manager]
      - resolve_progress: "80%"
        assignee: management
"#;

    fn engine() -> Engine {
        let rules = RuleSet::from_sources(&[("t.yaml".into(), RULES.into())], "t").expect("valid");
        Engine::new(
            Arc::new(rules),
            Settings {
                close_after: Duration::from_secs(3600),
                id_slot: None,
            },
        )
    }

    fn t(min: i64) -> DateTime<Utc> {
        "2026-11-23T09:00:00Z"
            .parse::<DateTime<Utc>>()
            .expect("valid")
            + chrono::Duration::minutes(min)
    }

    fn alert(pairs: &[(&str, &str)]) -> Alert {
        Alert::new(
            labels(pairs),
            Default::default(),
            Some(AlertStatus::Firing),
            None,
            None,
            String::new(),
            Source::Generic,
            None,
            t(0),
        )
        .expect("labels")
    }

    const P1: &[(&str, &str)] = &[
        ("alertname", "Down"),
        ("service", "web"),
        ("severity", "critical"),
        ("env", "prod"),
    ];

    fn job_names(ws: &WriteSet) -> Vec<String> {
        ws.dispatch
            .iter()
            .map(|j| format!("{}:{}", j.action, j.trigger.as_str()))
            .collect()
    }

    #[test]
    fn triggers_create_jobs_for_matching_actions_once() {
        let mut e = engine();
        let Outcome::Created(k) = e.ingest_one(alert(P1), t(0)) else {
            panic!()
        };
        let ws = e.take_changes();
        assert_eq!(job_names(&ws), vec!["chat:opened"]);
        let job = &ws.dispatch[0];
        assert_eq!(job.key, format!("{k}/chat/opened/0"));
        assert_eq!(job.payload["incident"]["priority"], "P1");
        assert!(job.payload["links"]["incident"]
            .as_str()
            .is_some_and(|l| l.ends_with(&format!("/api/v1/incidents/{k}"))));
        // A P4 incident runs no chat action.
        let low = [("alertname", "Low"), ("service", "batch")];
        e.ingest_one(alert(&low), t(1));
        assert!(e.take_changes().dispatch.is_empty());
        // alert_added with rate limit 2 per hour per group.
        for (i, inst) in ["a", "b", "c"].iter().enumerate() {
            let mut l = P1.to_vec();
            l.push(("instance", inst));
            e.ingest_one(alert(&l), t(2 + i as i64));
        }
        let ws = e.take_changes();
        assert_eq!(
            job_names(&ws),
            vec!["runbook:alert_added", "runbook:alert_added"]
        );
        assert!(ws.jobs.iter().any(|j| j.state == JobState::RateLimited));
        assert!(ws
            .timeline
            .iter()
            .any(|(_, _, t)| t.message.contains("rate limit of 2 per 1h")));
    }

    #[test]
    fn attempts_land_on_the_timeline_and_settle_the_job() {
        let mut e = engine();
        e.ingest_one(alert(P1), t(0));
        let ws = e.take_changes();
        let key = ws.dispatch[0].key.clone();
        e.record_action_result(
            AttemptResult {
                job_key: key.clone(),
                attempt: 1,
                outcome: AttemptOutcome::Failure,
                message: "HTTP 500".into(),
                retry_in: Some(Duration::from_secs(1)),
            },
            t(1),
            |_| None,
        );
        e.record_action_result(
            AttemptResult {
                job_key: key.clone(),
                attempt: 2,
                outcome: AttemptOutcome::Success,
                message: "HTTP 200".into(),
                retry_in: None,
            },
            t(2),
            |_| None,
        );
        let ws = e.take_changes();
        let msgs: Vec<&str> = ws
            .timeline
            .iter()
            .map(|(_, _, t)| t.message.as_str())
            .collect();
        assert_eq!(
            msgs,
            vec![
                "action chat (webhook) for opened attempt 1/4: failure: HTTP 500; retrying in 1s",
                "action chat (webhook) for opened attempt 2/4: success: HTTP 200",
            ]
        );
        assert_eq!(
            ws.jobs.last().map(|j| (j.state, j.attempts)),
            Some((JobState::Succeeded, 2))
        );
        assert!(e.pending_jobs().is_empty());
    }

    #[test]
    fn unacknowledged_p1_escalates_through_levels_and_ack_stops_it() {
        let mut e = engine();
        let Outcome::Created(k) = e.ingest_one(alert(P1), t(0)) else {
            panic!()
        };
        e.take_changes();
        e.tick(t(4));
        assert_eq!(e.live(k).expect("live").incident.escalation_level, 0);
        e.tick(t(5));
        let i = e.live(k).expect("live").incident.clone();
        assert_eq!(
            (i.escalation_level, i.assignee.as_deref()),
            (1, Some("secondary"))
        );
        let ws = e.take_changes();
        assert_eq!(job_names(&ws), vec!["chat:escalated"]);
        assert!(ws.events.contains(&Event::Escalated {
            policy: "p1".into(),
            level: 1
        }));
        e.tick(t(15));
        let ws = e.take_changes();
        assert_eq!(e.live(k).expect("live").incident.escalation_level, 2);
        assert_eq!(
            job_names(&ws),
            vec!["chat:escalated", "page-manager:escalated"]
        );
        // Acknowledged: no more acknowledgement-based levels, but the SLA-based one still comes.
        e.apply_op(k, Op::Ack, &OpRequest::default(), t(20), |_| None)
            .expect("ack");
        e.take_changes();
        e.tick(t(79));
        assert_eq!(e.live(k).expect("live").incident.escalation_level, 2);
        e.tick(t(80));
        let i = e.live(k).expect("live").incident.clone();
        assert_eq!(
            (i.escalation_level, i.assignee.as_deref()),
            (3, Some("management"))
        );
        let ws = e.take_changes();
        assert!(ws.timeline.iter().any(|(_, _, t)| t
            .message
            .contains("80% of the 1h 40m resolve target has passed")));
    }

    #[test]
    fn acknowledged_before_the_first_level_never_escalates() {
        let mut e = engine();
        let Outcome::Created(k) = e.ingest_one(alert(P1), t(0)) else {
            panic!()
        };
        e.apply_op(k, Op::Ack, &OpRequest::default(), t(1), |_| None)
            .expect("ack");
        e.tick(t(30));
        assert_eq!(e.live(k).expect("live").incident.escalation_level, 0);
        // Resolution stops everything, including SLA-based levels.
        e.apply_op(k, Op::Resolve, &OpRequest::default(), t(31), |_| None)
            .expect("resolve");
        e.tick(t(95));
        assert_eq!(e.live(k).expect("live").incident.escalation_level, 0);
        let ws = e.take_changes();
        assert!(job_names(&ws).contains(&"chat:resolved".to_string()));
    }

    #[test]
    fn restart_mid_policy_resumes_at_the_right_level_without_rerunning_jobs() {
        let mut e = engine();
        let Outcome::Created(k) = e.ingest_one(alert(P1), t(0)) else {
            panic!()
        };
        e.tick(t(6));
        let ws = e.take_changes();
        // "Restart": rebuild from what the store would hold.
        let live: Vec<Live> = e.live_incidents().cloned().collect();
        let mut r = Engine::restore(
            e.rules().clone(),
            Settings {
                close_after: Duration::from_secs(3600),
                id_slot: None,
            },
            live,
            Restored {
                jobs: ws.jobs.clone(),
                ..Restored::default()
            },
        );
        assert_eq!(r.pending_jobs().len(), 2, "opened and level-1 jobs resume");
        r.tick(t(7));
        assert!(r.take_changes().dispatch.is_empty(), "no level runs twice");
        r.tick(t(16));
        assert_eq!(r.live(k).expect("live").incident.escalation_level, 2);
        assert_eq!(
            job_names(&r.take_changes()),
            vec!["chat:escalated", "page-manager:escalated"]
        );
        let _ = Trigger::Opened;
    }
}
