//! The synchronous heart of the pipeline: dedup → correlate → classify and
//! prioritise → lifecycle, over in-memory state, with no I/O.
//!
//! Input: batches of normalized [`Alert`](crate::model::Alert)s, lifecycle
//! requests, action results and clock ticks, each with an explicit `now` (so
//! tests control time). Output: the mutated live state plus a [`ChangeSet`]
//! (what the store must commit) carrying [`Event`]s (what metrics must
//! count), taken with [`Engine::take_changes`].
//!
//! Live state holds every incident that is not closed, with its alerts; a
//! fingerprint index points each alert at the incident holding its current
//! occurrence, and a group index points each group key at its newest live
//! incident. Closed incidents leave memory once their final state is in the
//! change set. Invariants: `firing_count` equals the firing alerts of an
//! incident; `alert_count` its distinct fingerprints; an incident's priority
//! is the highest its alerts (and blast radius) give and never drops.
//!
//! Layout, one seam a file, each an `impl Engine` block and the state it
//! owns: [`correlate`] (dedup and correlation), [`suppress`] (silences,
//! maintenance, inhibition), [`prioritize`] (priority and blast radius),
//! [`actions`] (action jobs and escalation), [`timers`] (tick, SLA, expiry,
//! flapping), [`heartbeats`] (dead man's switches), [`ops`] (a person's lifecycle requests), [`desk`]
//! (service-desk requests: open, merge, link, split, priority), [`storms`] (major
//! incidents, relations and held pages), [`handover`]
//! (restore, adoption, hand-over), [`history`] (similar incidents, rolling
//! MTTA/MTTR) and [`changes`] (the change set handed to the store). Beside
//! the path, [`explain`] tells an alert's path without taking it.

pub mod actions;
pub mod changes;
pub mod correlate;
pub mod desk;
pub mod events;
pub mod explain;
pub mod handover;
pub mod heartbeats;
pub mod history;
pub mod ops;
pub mod paging;
pub mod prioritize;
pub mod storms;
pub mod suppress;
pub mod timers;
mod wakes;

#[cfg(test)]
mod testkit;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::{
    AlertRecord, Incident, IncidentKey, Priority, Reason, Status, TransitionError, ID_SLOTS,
};
use crate::rules::RuleSet;

pub use changes::ChangeSet;
pub use events::Event;
pub use handover::{Adoption, Restored};
pub use history::{HistoryEntry, Rolling};

/// The engine's maps sit on the hot path of every alert: foldhash is several
/// times faster than SipHash and still seeded per process.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// An incident in memory with its alerts.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    pub incident: Incident,
    /// Boxed: the map's nodes are kept partly empty, and slack on a
    /// 16-byte entry costs far less than on a ~190-byte record.
    pub alerts: BTreeMap<u64, Box<AlertRecord>>,
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
    /// A heartbeat's signal: refreshed it, opened nothing.
    Heartbeat,
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
    /// The incidents' state does not allow it (409).
    #[error("{0}")]
    Conflict(String),
}

/// The live incidents and the indexes that find them.
#[derive(Default)]
struct LiveSet {
    /// Boxed: a `Live` is ~780 bytes, and a growing map moves every value
    /// when it resizes (a 64 ms stall of the writer at 65,000 incidents).
    incidents: HashMap<IncidentKey, Box<Live>>,
    /// Fingerprint → the incident holding the alert's current occurrence.
    active: HashMap<u64, IncidentKey>,
    /// Group key → its newest live incident.
    groups: HashMap<String, IncidentKey>,
    /// The status and priority each live incident has in the store's
    /// indexes, and the active ones per priority.
    indexed: Indexed,
    /// Derived per-incident counts for prioritisation; rebuilt lazily.
    aggregates: HashMap<IncidentKey, prioritize::Aggregates>,
}

impl LiveSet {
    /// Points a group key at `key` unless a newer incident holds it.
    fn claim_group(&mut self, group_key: &str, key: IncidentKey) {
        match self.groups.get_mut(group_key) {
            Some(g) if *g >= key => {}
            Some(g) => *g = key,
            None => {
                self.groups.insert(group_key.to_string(), key);
            }
        }
    }
}

/// Incident ids: the last one given out, and this instance's slot.
#[derive(Default)]
struct Ids {
    last: Option<IncidentKey>,
    /// See [`Settings::id_slot`].
    slot: Option<u32>,
}

/// The live state and the rules it runs on.
pub struct Engine {
    rules: Arc<RuleSet>,
    settings: Settings,
    /// Base URL for links in action payloads.
    external_url: String,
    live: LiveSet,
    ids: Ids,
    history: history::History,
    suppress: suppress::Suppressions,
    jobs: actions::Jobs,
    storms: storms::Storms,
    heartbeats: heartbeats::Heartbeats,
    /// Schedule overrides (removed ones too, so ids stay unique).
    overrides: Vec<crate::model::Override>,
    dirty: changes::Dirty,
    wakes: wakes::Wakes,
    /// Shared copies of the strings live alerts repeat (category,
    /// generator URL).
    strings: crate::model::intern::Interner,
}

impl Engine {
    pub fn new(rules: Arc<RuleSet>, settings: Settings) -> Engine {
        let slot = settings.id_slot.map(|s| s % ID_SLOTS);
        Engine {
            rules,
            settings,
            external_url: "http://127.0.0.1:9095".into(),
            live: LiveSet::default(),
            ids: Ids { last: None, slot },
            history: history::History::default(),
            suppress: suppress::Suppressions::default(),
            jobs: actions::Jobs::default(),
            storms: storms::Storms::default(),
            heartbeats: heartbeats::Heartbeats::default(),
            overrides: Vec::new(),
            dirty: changes::Dirty::default(),
            wakes: wakes::Wakes::default(),
            strings: Default::default(),
        }
    }

    /// Base URL used for links in action payloads (`config.external_url`).
    pub fn set_external_url(&mut self, url: &str) {
        self.external_url = url.trim_end_matches('/').to_string();
    }

    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// Swaps the rules; live incidents keep their group keys.
    pub fn set_rules(&mut self, rules: Arc<RuleSet>) {
        self.rules = rules;
        self.live.aggregates.clear();
        self.rebuild_inhibit_index();
        // Escalation policies, SLA targets and flapping windows may differ.
        self.schedule_all();
    }

    pub fn live(&self, key: IncidentKey) -> Option<&Live> {
        self.live.incidents.get(&key).map(|l| &**l)
    }

    pub fn live_incidents(&self) -> impl Iterator<Item = &Live> {
        self.live.incidents.values().map(|l| &**l)
    }

    /// Open or acknowledged incidents per priority.
    pub fn open_by_priority(&self) -> [u64; 5] {
        self.live.indexed.active
    }

    /// Mean acknowledge and resolve seconds per priority over `window`.
    pub fn rolling_means(&mut self, now: DateTime<Utc>, window: Duration) -> [[Option<f64>; 5]; 2] {
        self.history.rolling.means(now, window)
    }
}

/// The status and priority each live incident has in the store's indexes
/// (as of the last [`Engine::take_changes`]), with the count of active
/// ones per priority: the open-by-priority gauge after every commit,
/// without walking every live incident (issue 20).
#[derive(Default)]
struct Indexed {
    by_key: HashMap<IncidentKey, (Status, Priority)>,
    active: [u64; 5],
}

impl Indexed {
    /// Records an incident's status and priority; the status it had.
    fn set(&mut self, key: IncidentKey, status: Status, priority: Priority) -> Option<Status> {
        let old = self.by_key.insert(key, (status, priority));
        if let Some((s, p)) = old {
            if s.is_active() {
                self.active[p.idx()] = self.active[p.idx()].saturating_sub(1);
            }
        }
        if status.is_active() {
            self.active[priority.idx()] += 1;
        }
        old.map(|(s, _)| s)
    }

    fn remove(&mut self, key: IncidentKey) {
        if let Some((s, p)) = self.by_key.remove(&key) {
            if s.is_active() {
                self.active[p.idx()] = self.active[p.idx()].saturating_sub(1);
            }
        }
    }
}

/// Seconds of a duration, as metrics observe them.
fn secs(d: chrono::Duration) -> f64 {
    d.num_milliseconds().max(0) as f64 / 1000.0
}

/// A configured duration on the wall clock (capped: nothing overflows).
fn chrono_dur(d: Duration) -> chrono::Duration {
    crate::model::wall(d)
}
