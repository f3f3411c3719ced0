//! The committed-change broadcast behind `GET /api/v1/events`.
//!
//! Contract:
//! - The writer publishes each committed batch's timeline entries, after
//!   the commit and never before: an event is something that is durable.
//!   One event per timeline entry (created, alert added, acknowledged,
//!   priority changed, escalated, SLA breached, note, ...), carrying the
//!   incident as it is after the batch.
//! - An event's id is `INC-YYYYMMDD-NNNN:seq`, the incident and the
//!   entry's place in its timeline: it names one stored timeline entry for
//!   good, so a client can resume from it after a restart too.
//! - Publishing costs the writer a clone per entry and per incident, not
//!   JSON: an event's JSON is rendered once, by the first reader
//!   ([`StreamEvent::data`]), off the writer thread. During an alert storm
//!   with nobody subscribed nothing is rendered at all.
//! - Publishing never blocks the writer: subscribers read a bounded
//!   broadcast channel; one that falls more than [`CHANNEL`] events behind
//!   loses them and is told so (it reloads), the writer never waits.
//! - The last [`RING`] events stay in memory for resuming; older ones are
//!   read from the store's timeline by the HTTP handler.
//! - [`EventBus::close`] (at shutdown) ends every subscription.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::{broadcast, watch};

use crate::engine::ChangeSet;
use crate::model::json::to_value;
use crate::model::{Incident, IncidentKey, TimelineEntry};

/// Events a subscriber may fall behind before it loses some.
pub const CHANNEL: usize = 4096;
/// Events kept in memory for `Last-Event-ID` resumes.
pub const RING: usize = 10_000;

/// One committed change, serialized once for every subscriber (by the
/// first one that reads it).
#[derive(Debug)]
pub struct StreamEvent {
    /// Order of publication in this process (for joining a replay and the
    /// live channel without duplicates).
    pub seq: u64,
    /// `INC-YYYYMMDD-NNNN:seq`.
    pub id: String,
    key: IncidentKey,
    entry_seq: u32,
    entry: TimelineEntry,
    /// The incident as it is after the batch, shared by the batch's events.
    incident: Option<Arc<Incident>>,
    data: OnceLock<String>,
}

impl StreamEvent {
    /// The JSON of the event (see the README, Event stream), rendered on
    /// first use.
    pub fn data(&self) -> &str {
        self.data.get_or_init(|| {
            event_json(
                self.key,
                self.entry_seq,
                &self.entry,
                self.incident.as_deref(),
            )
        })
    }
}

/// The event's id for a timeline entry.
pub fn event_id(key: IncidentKey, seq: u32) -> String {
    format!("{key}:{seq}")
}

/// Parses an event id back into the incident and timeline position.
pub fn parse_event_id(id: &str) -> Option<(IncidentKey, u32)> {
    let (key, seq) = id.trim().rsplit_once(':')?;
    Some((IncidentKey::parse(key)?, seq.parse().ok()?))
}

/// The JSON of one event.
pub fn event_json(
    key: IncidentKey,
    seq: u32,
    entry: &TimelineEntry,
    incident: Option<&Incident>,
) -> String {
    let incident = match incident {
        Some(i) => to_value(i),
        None => json!({"id": key}),
    };
    json!({
        "id": event_id(key, seq),
        "kind": entry.kind,
        "at": entry.at,
        "by": entry.by,
        "message": entry.message,
        "incident": incident,
    })
    .to_string()
}

struct Inner {
    tx: broadcast::Sender<Arc<StreamEvent>>,
    ring: Mutex<VecDeque<Arc<StreamEvent>>>,
    next: AtomicU64,
    closed: watch::Sender<bool>,
}

/// The broadcast of committed changes; cheap to clone.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new()
    }
}

/// A new subscription: the events to replay first, then the live ones.
pub struct Subscription {
    /// Events after the given id, when the id is still in memory.
    pub replay: Option<Vec<Arc<StreamEvent>>>,
    /// Live events; those with `seq` up to the replay's last are repeats.
    pub live: broadcast::Receiver<Arc<StreamEvent>>,
    /// Becomes true at shutdown.
    pub closed: watch::Receiver<bool>,
}

impl EventBus {
    pub fn new() -> EventBus {
        let (tx, _) = broadcast::channel(CHANNEL);
        let (closed, _) = watch::channel(false);
        EventBus {
            inner: Arc::new(Inner {
                tx,
                ring: Mutex::new(VecDeque::with_capacity(RING)),
                next: AtomicU64::new(1),
                closed,
            }),
        }
    }

    /// Publishes a committed change set (the writer calls this after the
    /// commit). Never blocks.
    pub fn publish(&self, changes: &ChangeSet) {
        if changes.timeline.is_empty() {
            return;
        }
        // The last copy of each incident in the batch, cloned once and
        // only for incidents that have an entry.
        let mut last: HashMap<IncidentKey, &Incident> = HashMap::new();
        for i in &changes.incidents {
            last.insert(i.id, i);
        }
        let mut shared: HashMap<IncidentKey, Arc<Incident>> = HashMap::new();
        let mut ring = self.inner.ring.lock();
        for (key, seq, entry) in &changes.timeline {
            let incident = last.get(key).map(|i| {
                shared
                    .entry(*key)
                    .or_insert_with(|| Arc::new((*i).clone()))
                    .clone()
            });
            let ev = Arc::new(StreamEvent {
                seq: self.inner.next.fetch_add(1, Ordering::Relaxed),
                id: event_id(*key, *seq),
                key: *key,
                entry_seq: *seq,
                entry: entry.clone(),
                incident,
                data: OnceLock::new(),
            });
            if ring.len() >= RING {
                ring.pop_front();
            }
            ring.push_back(ev.clone());
            // No subscriber is not an error.
            let _ = self.inner.tx.send(ev);
        }
    }

    /// Subscribes; with `after`, also the events after that id when it is
    /// still in memory (`replay: None` when it is not: read the store).
    pub fn subscribe(&self, after: Option<&str>) -> Subscription {
        // Subscribe while holding the ring: nothing is published between
        // the replay and the live channel.
        let ring = self.inner.ring.lock();
        let live = self.inner.tx.subscribe();
        let replay = after.and_then(|id| {
            let at = ring.iter().position(|e| e.id == id)?;
            Some(ring.iter().skip(at + 1).cloned().collect())
        });
        Subscription {
            replay,
            live,
            closed: self.inner.closed.subscribe(),
        }
    }

    /// Ends every subscription (shutdown).
    pub fn close(&self) {
        let _ = self.inner.closed.send(true);
    }

    /// Subscribers now.
    pub fn subscribers(&self) -> usize {
        self.inner.tx.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TimelineKind;

    fn entry(kind: TimelineKind) -> TimelineEntry {
        TimelineEntry {
            at: chrono::Utc::now(),
            kind,
            by: "alice".into(),
            message: "m".into(),
        }
    }

    #[test]
    fn ids_round_trip_and_replay_follows_the_id() {
        let key = IncidentKey::parse("INC-20261202-0007").expect("key");
        assert_eq!(event_id(key, 3), "INC-20261202-0007:3");
        assert_eq!(parse_event_id("INC-20261202-0007:3"), Some((key, 3)));
        assert_eq!(parse_event_id("nope"), None);
        let bus = EventBus::new();
        let changes = ChangeSet {
            timeline: vec![
                (key, 0, entry(TimelineKind::Created)),
                (key, 1, entry(TimelineKind::Acknowledged)),
                (key, 2, entry(TimelineKind::Note)),
            ],
            ..ChangeSet::default()
        };
        let mut sub = bus.subscribe(None);
        bus.publish(&changes);
        let first = sub.live.try_recv().expect("an event");
        assert_eq!(first.id, "INC-20261202-0007:0");
        let v: serde_json::Value = serde_json::from_str(first.data()).expect("json");
        assert_eq!(v["kind"], "created");
        let again = bus.subscribe(Some("INC-20261202-0007:0"));
        let ids: Vec<String> = again
            .replay
            .expect("in memory")
            .iter()
            .map(|e| e.id.clone())
            .collect();
        assert_eq!(ids, ["INC-20261202-0007:1", "INC-20261202-0007:2"]);
        assert!(bus.subscribe(Some("INC-20261202-0099:0")).replay.is_none());
    }

    #[test]
    fn a_slow_subscriber_lags_and_the_publisher_never_waits() {
        let key = IncidentKey::parse("INC-20261202-0001").expect("key");
        let bus = EventBus::new();
        let mut slow = bus.subscribe(None);
        let many = ChangeSet {
            timeline: (0..(CHANNEL as u32 + 10))
                .map(|i| (key, i, entry(TimelineKind::Note)))
                .collect(),
            ..ChangeSet::default()
        };
        bus.publish(&many);
        assert!(matches!(
            slow.live.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
    }
}
