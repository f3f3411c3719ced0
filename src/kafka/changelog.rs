//! Incident state hand-over between instances through compacted Kafka
//! changelog topics (the Kafka Streams way).
//!
//! Contract. With `kafka.changelog` on, every live incident whose alerts
//! came from partition P of topic T has a *home* (T, P), and its state is
//! written to partition P of `T-changelog` (see
//! [`crate::config::changelog_topic`]) as one record per key:
//!
//! | key | value |
//! |---|---|
//! | `INC-…` | the incident (JSON, as the API shows it) |
//! | `INC-…/a/<fingerprint>` | one alert record (JSON) |
//! | `INC-…/t/<seq>` | one timeline entry (JSON) |
//!
//! A null value (tombstone) deletes a key: every key of an incident gets
//! one when it closes, so compaction keeps only live incidents. Records of
//! one incident go to one partition in commit order (`acks=all`,
//! idempotent producer). Full rows are produced right after the redb
//! commit that wrote them; changes a plain repeat makes (last seen, ends
//! at, repeat count, last activity) are produced every
//! `kafka.changelog_interval`, from memory, latest state only.
//!
//! Ordering with offsets: the Kafka source commits offsets only after
//! [`Changelog::flush`] saw every record produced so far delivered, so an
//! instance that takes a partition over finds in the changelog every state
//! change of every message whose offset was committed, and replays the rest.
//! A record that fails is produced again in full (from the store) before the
//! next flush can succeed.
//!
//! Only partitions assigned to this instance are written, so a stale copy
//! held elsewhere never overwrites the owner's state. At start every
//! incident with a home is parked (in the store, out of memory) until its
//! partition is assigned here. On assignment the owner reads the changelog
//! partition to its end ([`read_partition`]) and, before it reads the
//! alert partition, takes the newer of each incident's two copies (a
//! tombstone deletes a parked copy); on revocation the old owner flushes,
//! commits, and then lets the partition's incidents go (memory and store).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::{client_config, KafkaError};
use crate::config::{changelog_topic, KafkaConfig};
use crate::engine::{Engine, Live};
use crate::metrics::Metrics;
use crate::model::json::to_vec as json;
use crate::model::{AlertRecord, Home, Incident, IncidentKey, Status, TimelineEntry};
use crate::pipeline::{Adopted, Replication, Restore};
use crate::store::{Batch, Store};

/// How long a produce may wait for the broker before it counts as failed.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the changelog partition to be read to its end.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to wait for more records once the high watermark is reached.
const TAIL_WAIT: Duration = Duration::from_millis(200);

fn incident_key(k: IncidentKey) -> String {
    k.to_string()
}

fn alert_key(k: IncidentKey, fp: u64) -> String {
    format!("{k}/a/{}", crate::model::fingerprint::to_hex(fp))
}

fn timeline_key(k: IncidentKey, seq: u32) -> String {
    format!("{k}/t/{seq:010}")
}

/// The incident a record key belongs to.
fn key_incident(key: &[u8]) -> Option<IncidentKey> {
    let key = std::str::from_utf8(key).ok()?;
    IncidentKey::parse(key.split('/').next()?)
}

/// Delivery reports: counts, and remembers which incidents lost a record.
struct Reports {
    metrics: Arc<Metrics>,
    failed: Mutex<BTreeSet<IncidentKey>>,
    /// Failures since the last [`Changelog::flush`].
    failures: AtomicU64,
}

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self
                .metrics
                .kafka_changelog_records
                .with_label_values(&["delivered"])
                .inc(),
            Err((e, m)) => {
                self.metrics
                    .kafka_changelog_records
                    .with_label_values(&["failed"])
                    .inc();
                self.failures.fetch_add(1, Ordering::SeqCst);
                let inc = m.key().and_then(key_incident);
                tracing::warn!(topic = m.topic(), partition = m.partition(), incident = ?inc.map(|k| k.to_string()), error = %e,
                    "changelog record not delivered; the incident is produced again in full");
                if let Some(k) = inc {
                    self.failed.lock().insert(k);
                }
            }
        }
    }
}

/// The changelog producer, shared by the writer (which produces) and the
/// Kafka source (which flushes before it commits offsets).
pub struct Changelog {
    producer: ThreadedProducer<Reports>,
    config: KafkaConfig,
    /// Partitions this instance owns: only their incidents are produced,
    /// so a stale copy here can never overwrite the owner's state.
    owned: Mutex<BTreeSet<Home>>,
}

impl Changelog {
    pub fn new(k: &KafkaConfig, metrics: Arc<Metrics>) -> Result<Changelog, KafkaError> {
        let mut c = client_config(k);
        c.set("acks", "all")
            .set("enable.idempotence", "true")
            .set(
                "message.timeout.ms",
                DELIVERY_TIMEOUT.as_millis().to_string(),
            )
            .set("linger.ms", "5");
        let producer = c
            .create_with_context(Reports {
                metrics,
                failed: Mutex::new(BTreeSet::new()),
                failures: AtomicU64::new(0),
            })
            .map_err(|source| KafkaError::Producer {
                topic: "<topic>-changelog".into(),
                brokers: k.brokers.clone(),
                source: Box::new(source),
            })?;
        Ok(Changelog {
            producer,
            config: k.clone(),
            owned: Mutex::new(BTreeSet::new()),
        })
    }

    fn owned(&self) -> MutexGuard<'_, BTreeSet<Home>> {
        self.owned.lock()
    }

    /// Partitions assigned to this instance (their incidents may be produced).
    pub fn own(&self, homes: impl IntoIterator<Item = Home>) {
        self.owned().extend(homes);
    }

    /// Partitions revoked: nothing more is produced for them.
    pub fn disown(&self, homes: &[Home]) {
        let mut owned = self.owned();
        for h in homes {
            owned.remove(h);
        }
    }

    /// Queues one record (`None`: a tombstone). A full local queue waits
    /// for the broker instead of dropping the record.
    fn send(&self, home: &Home, key: &str, value: Option<&[u8]>) {
        if !self.owned().contains(home) {
            return;
        }
        let topic = changelog_topic(&home.topic);
        let mut record = BaseRecord::to(&topic).key(key).partition(home.partition);
        if let Some(v) = value {
            record = record.payload(v);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((RdError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => {
                    self.reports().failures.fetch_add(1, Ordering::SeqCst);
                    if let Some(k) = key_incident(key.as_bytes()) {
                        self.take_failed_lock().insert(k);
                    }
                    tracing::warn!(topic = %topic, partition = home.partition, key, error = %e,
                        "cannot queue a changelog record; the incident is produced again in full");
                    return;
                }
            }
        }
    }

    fn reports(&self) -> &Reports {
        self.producer.context()
    }

    fn take_failed_lock(&self) -> MutexGuard<'_, BTreeSet<IncidentKey>> {
        self.reports().failed.lock()
    }

    /// Waits until every queued record is delivered. `Err` when one failed
    /// since the last flush (offsets must then not be committed yet).
    /// Blocking: call from a blocking context.
    pub fn flush(&self, timeout: Duration) -> Result<(), String> {
        self.producer
            .flush(timeout)
            .map_err(|e| format!("changelog flush: {e}"))?;
        match self.reports().failures.swap(0, Ordering::SeqCst) {
            0 => Ok(()),
            n => Err(format!("{n} changelog records were not delivered")),
        }
    }

    /// Reads `home`'s changelog partition to its end and assembles the live
    /// incidents in it. Blocking.
    pub fn read_partition(&self, home: &Home) -> Result<Restore, String> {
        read_partition(&self.config, home)
    }
}

/// Reads one changelog partition from the beginning to its high watermark
/// (latest value per key wins; tombstones delete). Blocking.
pub fn read_partition(k: &KafkaConfig, home: &Home) -> Result<Restore, String> {
    let topic = changelog_topic(&home.topic);
    let mut c = client_config(k);
    c.set("group.id", format!("{}-changelog-reader", k.group))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true");
    let consumer: BaseConsumer = c
        .create()
        .map_err(|e| format!("changelog reader for {topic}: {e}"))?;
    let (low, high) = consumer
        .fetch_watermarks(&topic, home.partition, Duration::from_secs(10))
        .map_err(|e| {
            format!(
                "changelog topic {topic:?} partition {}: {e} (create it compacted, with as many partitions as {:?})",
                home.partition, home.topic
            )
        })?;
    let mut latest: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut tombstoned: BTreeSet<String> = BTreeSet::new();
    if high > low {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, home.partition, Offset::Offset(low))
            .map_err(|e| e.to_string())?;
        consumer.assign(&tpl).map_err(|e| e.to_string())?;
        let started = Instant::now();
        let mut at_end = false;
        loop {
            if started.elapsed() > READ_TIMEOUT {
                return Err(format!(
                    "changelog topic {topic:?} partition {}: not read to offset {high} within {READ_TIMEOUT:?}",
                    home.partition
                ));
            }
            // Past the high watermark, take only what is already fetched:
            // some brokers (tansu 0.6) report the watermark of a batch's
            // first record, so the rest of that batch lies beyond it.
            let wait = if at_end {
                TAIL_WAIT
            } else {
                Duration::from_millis(500)
            };
            let Some(m) = consumer.poll(wait) else {
                if at_end {
                    break;
                }
                continue;
            };
            let m = match m {
                Ok(m) => m,
                // The end, even when compaction removed the records just
                // before the watermark.
                Err(RdError::PartitionEOF(_)) => {
                    at_end = true;
                    continue;
                }
                Err(e) => return Err(format!("changelog topic {topic:?}: {e}")),
            };
            if let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) {
                match m.payload() {
                    Some(v) => {
                        tombstoned.remove(key);
                        latest.insert(key.to_string(), v.to_vec());
                    }
                    None => {
                        latest.remove(key);
                        if !key.contains('/') {
                            tombstoned.insert(key.to_string());
                        }
                    }
                }
            }
            at_end |= m.offset() + 1 >= high;
        }
    }
    let incidents = assemble(latest).map_err(|e| {
        format!(
            "changelog topic {topic:?} partition {}: {e}",
            home.partition
        )
    })?;
    Ok(Restore {
        incidents,
        closed: tombstoned
            .iter()
            .filter_map(|k| IncidentKey::parse(k))
            .collect(),
    })
}

/// Turns the latest record per key into live incidents. Alert and timeline
/// records without their incident record (a partly compacted tail) are
/// left out; a record that does not decode is an error naming its key.
pub fn assemble(latest: BTreeMap<String, Vec<u8>>) -> Result<Vec<Adopted>, String> {
    let mut incidents: BTreeMap<String, Adopted> = BTreeMap::new();
    let mut parts = Vec::new();
    for (key, value) in latest {
        match key.split_once('/') {
            None => {
                let inc: Incident =
                    serde_json::from_slice(&value).map_err(|e| format!("record {key:?}: {e}"))?;
                if inc.status != Status::Closed {
                    incidents.insert(
                        key,
                        (
                            Live {
                                incident: inc,
                                alerts: BTreeMap::new(),
                            },
                            Vec::new(),
                        ),
                    );
                }
            }
            Some((id, rest)) => parts.push((id.to_string(), rest.to_string(), key, value)),
        }
    }
    for (id, rest, key, value) in parts {
        let Some((live, timeline)) = incidents.get_mut(&id) else {
            continue;
        };
        let bad = |e: String| format!("record {key:?}: {e}");
        match rest.split_once('/') {
            Some(("a", _)) => {
                let rec: AlertRecord =
                    serde_json::from_slice(&value).map_err(|e| bad(e.to_string()))?;
                live.alerts.insert(rec.alert.fingerprint, Box::new(rec));
            }
            Some(("t", seq)) => {
                let seq: u32 = seq.parse().map_err(|_| bad("bad sequence".into()))?;
                let entry: TimelineEntry =
                    serde_json::from_slice(&value).map_err(|e| bad(e.to_string()))?;
                timeline.push((seq, entry));
            }
            _ => return Err(bad("unknown record kind".into())),
        }
    }
    Ok(incidents.into_values().collect())
}

/// The writer's side: which partition each live incident belongs to, and
/// the repeat-only changes not produced yet.
pub struct ChangelogWriter {
    log: Arc<Changelog>,
    /// How often repeat-only changes are produced (`kafka.changelog_interval`).
    interval: Duration,
    last_repeats: Instant,
    homes: HashMap<IncidentKey, Home>,
    /// Incidents the store held live at start, out of memory until their
    /// partition is assigned here (see [`ChangelogWriter::park_all`]).
    parked: HashMap<Home, Vec<IncidentKey>>,
    pending_alerts: BTreeSet<(IncidentKey, u64)>,
    pending_incidents: BTreeSet<IncidentKey>,
}

impl ChangelogWriter {
    pub fn new(
        log: Arc<Changelog>,
        interval: Duration,
        homes: Vec<(IncidentKey, Home)>,
    ) -> ChangelogWriter {
        ChangelogWriter {
            log,
            interval,
            last_repeats: Instant::now(),
            homes: homes.into_iter().collect(),
            parked: HashMap::new(),
            pending_alerts: BTreeSet::new(),
            pending_incidents: BTreeSet::new(),
        }
    }

    /// At start, every incident with a home is parked: it stays in the
    /// store but not in memory, so it neither ticks nor counts, until its
    /// partition is assigned here and the changelog says which copy is
    /// newest. (Its partition may belong to another instance by now.)
    /// Returns the parked keys, for the caller to keep out of the engine.
    pub fn park_all(&mut self) -> BTreeSet<IncidentKey> {
        let mut out = BTreeSet::new();
        for (k, h) in self.homes.drain() {
            out.insert(k);
            self.parked.entry(h).or_default().push(k);
        }
        out
    }

    fn forget(&mut self, k: IncidentKey) {
        self.pending_incidents.remove(&k);
        self.pending_alerts.retain(|(i, _)| *i != k);
    }
}

impl Replication for ChangelogWriter {
    /// Gives an incident a home (if it has none yet); the write set stores it.
    fn settle(
        &mut self,
        k: IncidentKey,
        home: &Home,
        ws_homes: &mut Vec<(IncidentKey, Option<Home>)>,
    ) {
        if let std::collections::hash_map::Entry::Vacant(e) = self.homes.entry(k) {
            e.insert(home.clone());
            ws_homes.push((k, Some(home.clone())));
        }
    }

    /// The parked incidents of a partition just assigned.
    fn unpark(&mut self, home: &Home) -> Vec<IncidentKey> {
        self.parked.remove(home).unwrap_or_default()
    }

    /// Every parked incident (kept out of memory).
    fn parked(&self) -> Vec<IncidentKey> {
        self.parked.values().flatten().copied().collect()
    }

    /// The live incidents that belong to one of `homes`.
    fn incidents_of(&self, homes: &[Home]) -> Vec<IncidentKey> {
        self.homes
            .iter()
            .filter(|(_, h)| homes.contains(h))
            .map(|(k, _)| *k)
            .collect()
    }

    /// Before the commit: closed and handed-over incidents lose their home.
    fn prepare(&mut self, batch: &mut Batch) {
        for (k, _) in &batch.changes.closed {
            if self.homes.contains_key(k) {
                batch.homes.push((*k, None));
            }
        }
    }

    /// After a successful commit: produces the full rows it wrote and the
    /// tombstones of closed incidents; remembers repeat-only changes.
    fn committed(&mut self, batch: &Batch) {
        let ws = &batch.changes;
        if self.homes.is_empty() {
            // No incident belongs to a partition (HTTP-only traffic, or
            // before the first assignment): nothing to produce or forget.
            return;
        }
        let full_alerts: BTreeSet<(IncidentKey, u64)> = ws
            .alerts
            .iter()
            .map(|(k, r)| (*k, r.alert.fingerprint))
            .collect();
        let full_incidents: BTreeSet<IncidentKey> = ws.incidents.iter().map(|i| i.id).collect();
        for inc in &ws.incidents {
            if let Some(h) = self.homes.get(&inc.id) {
                self.log.send(h, &incident_key(inc.id), Some(&json(inc)));
                self.pending_incidents.remove(&inc.id);
            }
        }
        for (k, rec) in &ws.alerts {
            if let Some(h) = self.homes.get(k) {
                let fp = rec.alert.fingerprint;
                self.log.send(h, &alert_key(*k, fp), Some(&json(rec)));
                self.pending_alerts.remove(&(*k, fp));
            }
        }
        for (k, fp) in &ws.removed_alerts {
            if let Some(h) = self.homes.get(k) {
                self.log.send(h, &alert_key(*k, *fp), None);
            }
        }
        for (k, seq, entry) in &ws.timeline {
            if let Some(h) = self.homes.get(k) {
                self.log
                    .send(h, &timeline_key(*k, *seq), Some(&json(entry)));
            }
        }
        for (k, fp, _) in &ws.seen {
            if self.homes.contains_key(k) && !full_alerts.contains(&(*k, *fp)) {
                self.pending_alerts.insert((*k, *fp));
            }
        }
        for (k, _) in &ws.activity {
            if self.homes.contains_key(k) && !full_incidents.contains(k) {
                self.pending_incidents.insert(*k);
            }
        }
        for (k, fps) in &ws.closed {
            let Some(h) = self.homes.remove(k) else {
                continue;
            };
            let timeline_len = ws
                .incidents
                .iter()
                .find(|i| i.id == *k)
                .map_or(0, |i| i.timeline_len);
            for fp in fps {
                self.log.send(&h, &alert_key(*k, *fp), None);
            }
            for seq in 0..timeline_len {
                self.log.send(&h, &timeline_key(*k, seq), None);
            }
            self.log.send(&h, &incident_key(*k), None);
            self.forget(*k);
        }
        for k in &ws.dropped {
            self.homes.remove(k);
            self.forget(*k);
        }
    }

    /// Produces every incident a failed record belonged to (in full, from
    /// the store), and, once per interval, the repeat-only changes (latest
    /// state, from memory).
    fn produce_pending(&mut self, engine: &Engine, store: &Store) {
        let failed = std::mem::take(&mut *self.log.take_failed_lock());
        for k in failed {
            let Some(h) = self.homes.get(&k) else {
                continue;
            };
            match store.incident_full(k) {
                Ok(Some((inc, alerts, timeline))) => {
                    for (seq, entry) in timeline.iter().enumerate() {
                        self.log
                            .send(h, &timeline_key(k, seq as u32), Some(&json(entry)));
                    }
                    for rec in &alerts {
                        let fp = rec.alert.fingerprint;
                        self.log.send(h, &alert_key(k, fp), Some(&json(rec)));
                    }
                    self.log.send(h, &incident_key(k), Some(&json(&inc)));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(incident = %k, error = %e, "cannot read an incident to produce it to the changelog again");
                    self.log.take_failed_lock().insert(k);
                    self.log.reports().failures.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        if self.last_repeats.elapsed() < self.interval {
            return;
        }
        self.last_repeats = Instant::now();
        for (k, fp) in std::mem::take(&mut self.pending_alerts) {
            let (Some(h), Some(rec)) = (
                self.homes.get(&k),
                engine.live(k).and_then(|l| l.alerts.get(&fp)),
            ) else {
                continue;
            };
            self.log.send(h, &alert_key(k, fp), Some(&json(rec)));
        }
        for k in std::mem::take(&mut self.pending_incidents) {
            let (Some(h), Some(l)) = (self.homes.get(&k), engine.live(k)) else {
                continue;
            };
            self.log.send(h, &incident_key(k), Some(&json(&l.incident)));
        }
    }

    /// Replaces the homes after the live state was reloaded from the store
    /// (`live`: the incidents now in memory; the others stay parked).
    fn reset(&mut self, homes: Vec<(IncidentKey, Home)>, live: &dyn Fn(IncidentKey) -> bool) {
        self.homes.clear();
        self.parked.clear();
        for (k, h) in homes {
            if live(k) {
                self.homes.insert(k, h);
            } else {
                self.parked.entry(h).or_default().push(k);
            }
        }
        self.pending_alerts.clear();
        self.pending_incidents.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TimelineKind;

    #[test]
    fn record_keys_name_their_incident() {
        let k = IncidentKey::new(20261123, 103);
        assert_eq!(incident_key(k), "INC-20261123-0103");
        assert_eq!(alert_key(k, 0xab), "INC-20261123-0103/a/00000000000000ab");
        assert_eq!(timeline_key(k, 7), "INC-20261123-0103/t/0000000007");
        for key in [incident_key(k), alert_key(k, 1), timeline_key(k, 2)] {
            assert_eq!(key_incident(key.as_bytes()), Some(k));
        }
        assert_eq!(key_incident(b"garbage"), None);
    }

    fn incident(id: IncidentKey, status: Status) -> Vec<u8> {
        let now = chrono::Utc::now();
        let v = serde_json::json!({
            "id": id.to_string(), "title": "t", "status": status, "priority": "P3",
            "impact": "low", "urgency": "medium", "category": "other", "rule": "r",
            "group_key": "g", "labels": {}, "alert_count": 1, "firing_count": 1,
            "created_at": now, "last_activity_at": now, "escalation_level": 0,
            "sla": {"acknowledge_by": now, "resolve_by": now, "breached": false},
            "similar": [], "problem_candidate": false, "reopen_count": 0,
            "occurred_at": now, "timeline_len": 1
        });
        let parsed: Incident = serde_json::from_value(v).expect("incident JSON");
        json(&parsed)
    }

    #[test]
    fn assembling_keeps_the_latest_live_incidents_only() {
        let (live, closed, gone) = (
            IncidentKey::new(20261123, 1),
            IncidentKey::new(20261123, 101),
            IncidentKey::new(20261123, 201),
        );
        let entry = |kind: TimelineKind| {
            json(&TimelineEntry {
                at: chrono::Utc::now(),
                kind,
                by: "system".into(),
                message: String::new(),
            })
        };
        let mut latest = BTreeMap::new();
        latest.insert(incident_key(live), incident(live, Status::Acknowledged));
        latest.insert(timeline_key(live, 0), entry(TimelineKind::Created));
        latest.insert(timeline_key(live, 1), entry(TimelineKind::Acknowledged));
        latest.insert(incident_key(closed), incident(closed, Status::Closed));
        // Only a timeline record left of an incident whose record was
        // tombstoned (compaction keeps the latest per key).
        latest.insert(timeline_key(gone, 0), entry(TimelineKind::Created));
        let got = assemble(latest.clone()).expect("assembles");
        assert_eq!(got.len(), 1, "closed and tombstoned incidents are not live");
        let (l, timeline) = &got[0];
        assert_eq!(l.incident.id, live);
        assert_eq!(l.incident.status, Status::Acknowledged);
        let kinds: Vec<(u32, &str)> = timeline
            .iter()
            .map(|(s, e)| (*s, e.kind.as_str()))
            .collect();
        assert_eq!(kinds, [(0, "created"), (1, "acknowledged")]);

        latest.insert(alert_key(live, 7), b"{not json".to_vec());
        let err = assemble(latest).expect_err("bad record");
        assert!(
            err.contains("INC-20261123-0001/a/0000000000000007"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod writer_tests {
    //! The changelog as the writer drives it, with no broker: nothing is
    //! produced while no partition is owned.
    use std::time::Duration;

    use chrono::Utc;

    use super::*;
    use crate::config::PipelineSettings;
    use crate::engine::Settings;
    use crate::model::labels::labels;
    use crate::model::{Alert, AlertStatus, Source};
    use crate::pipeline::{spawn, Handle, IngestSummary, Writer};
    use crate::rules::RuleSet;

    fn alert(instance: &str) -> Alert {
        Alert::new(
            labels(&[
                ("alertname", "HostDown"),
                ("instance", instance),
                ("severity", "critical"),
            ]),
            Default::default(),
            Some(AlertStatus::Firing),
            None,
            None,
            String::new(),
            Source::Kafka,
            None,
            Utc::now(),
        )
        .expect("labels")
    }

    fn p0() -> Home {
        Home {
            topic: "alerts".into(),
            partition: 0,
        }
    }

    /// A writer as `serve` builds it with the changelog on, over `dir`; no
    /// broker is needed while no partition is owned (nothing is produced).
    fn start(dir: &std::path::Path) -> (Handle, std::thread::JoinHandle<()>, Store) {
        let store = Store::open(dir).expect("open");
        let metrics = Arc::new(Metrics::new());
        let config = KafkaConfig {
            brokers: "127.0.0.1:9".into(),
            topics: vec!["alerts".into()],
            changelog: true,
            instance: Some(1),
            ..KafkaConfig::default()
        };
        let log = Arc::new(Changelog::new(&config, metrics.clone()).expect("producer"));
        let mut w =
            ChangelogWriter::new(log, Duration::from_secs(10), store.homes().expect("homes"));
        let parked = w.park_all();
        let mut snap = store
            .load(Utc::now(), Duration::from_secs(3600))
            .expect("load");
        snap.live.retain(|l| !parked.contains(&l.incident.id));
        store.park(parked);
        let settings = Settings {
            close_after: Duration::from_secs(3600),
            id_slot: Some(1),
        };
        let engine = Engine::restore(
            Arc::new(RuleSet::builtin().expect("rules")),
            settings.clone(),
            snap.live,
            snap.restored,
        );
        let (handle, join) = spawn(Writer {
            engine,
            dispatcher: None,
            rules_tx: None,
            store: store.clone(),
            metrics,
            settings: PipelineSettings::default(),
            engine_settings: settings,
            metrics_window: Duration::from_secs(3600),
            replication: Some(Box::new(w)),
            retention: Default::default(),
            events: None,
        })
        .expect("writer");
        (handle, join, store)
    }

    async fn ingest(h: &Handle, instance: &str) -> IngestSummary {
        h.reserve()
            .expect("room")
            .ingest_kafka(vec![alert(instance)], Vec::new(), vec![(p0(), 1)])
            .await
            .expect("ingest")
    }

    #[tokio::test]
    async fn parked_copies_are_deleted_when_closed_elsewhere_and_resume_otherwise() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (h, join, _) = start(dir.path());
        let closed_elsewhere = ingest(&h, "db1:9100").await.created[0];
        let never_delivered = ingest(&h, "db2:9100").await.created[0];
        drop(h);
        join.join().expect("writer");

        // Restart: both are parked; the store still has them, but lists
        // neither (the partition may be another instance's by now).
        let (h, join, store) = start(dir.path());
        assert!(store.incident(closed_elsewhere).expect("read").is_some());
        let listed = |store: &Store| -> Vec<IncidentKey> {
            store
                .list(&crate::store::ListFilter {
                    limit: 10,
                    ..Default::default()
                })
                .expect("list")
                .iter()
                .map(|i| i.id)
                .collect()
        };
        assert!(listed(&store).is_empty());
        let n = h
            .adopt(
                p0(),
                Restore {
                    incidents: Vec::new(),
                    closed: vec![closed_elsewhere],
                },
            )
            .await
            .expect("adopt");
        assert_eq!(n, 0, "nothing came from another instance");
        assert_eq!(listed(&store), vec![never_delivered], "listed again");
        assert!(
            store.incident(closed_elsewhere).expect("read").is_none(),
            "closed by the partition's last owner: the old copy is deleted"
        );
        // The other one is back in memory: its alert repeats into it.
        let s = ingest(&h, "db2:9100").await;
        assert_eq!((s.deduplicated, s.created.len()), (1, 0), "{s:?}");
        let s = ingest(&h, "db1:9100").await;
        assert!(
            s.created.len() == 1 && s.created[0] != closed_elsewhere,
            "the deleted incident's alert opens a new one: {s:?}"
        );
        assert_eq!(
            store.homes().expect("homes").len(),
            2,
            "{never_delivered} and the new incident belong to the partition"
        );
        drop(h);
        join.join().expect("writer");
    }
}
