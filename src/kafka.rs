//! The Kafka source: a consumer group member that turns messages into
//! alerts with the same durability promise as HTTP.
//!
//! Input: messages from the configured topics (payload formats of
//! [`crate::ingest`], detected per message or fixed per topic). Output:
//! alerts handed to the pipeline with [`Source::Kafka`]; offsets stored and
//! committed only after [`Handle::ingest`] answered `Ok`, i.e. after the
//! write transaction holding the alerts committed. The last offset per
//! partition is stored in that same transaction (`kafka_positions`), so a
//! message redelivered after a crash or rebalance whose alerts this store
//! already holds is skipped: every message is counted once. (A partition
//! whose high watermark is not past the stored offset was re-created or
//! truncated; its stored offset is dropped instead of skipping.)
//!
//! Rejects: messages without payload (`empty`), larger than
//! `limits.max_body_bytes` (`too_large`) or that do not parse (`invalid`).
//! Such a message is produced to `kafka.dead_letter_topic` when one is set
//! (same key, payload and headers, plus `incidentd-error` and the source
//! topic/partition/offset) and then committed like any other, so it never
//! blocks its partition; it is always counted in
//! `incidentd_kafka_messages_rejected_total{topic,reason}`.
//!
//! Invariants: an offset is stored only after every message before it in its
//! partition was ingested or dead-lettered; `enable.auto.commit` and
//! `enable.auto.offset.store` are off; a partition revoked while a batch was
//! being collected is not processed here (its new owner reads it). While the
//! pipeline answers `Overloaded` or `Unavailable`, every assigned partition is
//! paused and the same batch retried with capped exponential backoff, so
//! memory stays bounded by one batch plus librdkafka's prefetch limit. Lag
//! (`incidentd_kafka_consumer_lag`) is exported for assigned partitions only.
//!
//! With `kafka.changelog` on ([`crate::changelog`]): an assigned partition
//! stays paused until its incidents are restored from its changelog
//! partition; a revoked one stops being written to the changelog, which is
//! flushed before the offsets are committed, and its incidents are then let
//! go; offsets are committed only after the changelog is delivered.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use serde::de::IgnoredAny;
use serde::Deserialize;
use tokio::sync::watch;

use crate::alert::{Alert, Source};
use crate::changelog::Changelog;
use crate::config::{KafkaConfig, KafkaFormat, Limits, StartFrom};
use crate::ingest::{self, Format};
use crate::metrics::Metrics;
use crate::pipeline::{Handle, PipelineError};
use crate::store::Home;

/// Header carrying the parse error on a dead-lettered message.
pub const ERROR_HEADER: &str = "incidentd-error";
/// Headers naming where a dead-lettered message came from.
pub const SOURCE_TOPIC_HEADER: &str = "incidentd-source-topic";
pub const SOURCE_PARTITION_HEADER: &str = "incidentd-source-partition";
pub const SOURCE_OFFSET_HEADER: &str = "incidentd-source-offset";

/// First pause after an overloaded or failed ingest; doubles up to
/// `kafka.max_retry_backoff`.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// How long a dead-letter produce may wait in the producer queue and for
/// the broker's acknowledgement.
const PRODUCE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long offsets wait for the changelog to be delivered.
const CHANGELOG_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the Kafka source could not start.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("kafka: cannot create the consumer (brokers {brokers:?}, group {group:?}): {source}")]
    Consumer {
        brokers: String,
        group: String,
        source: Box<RdError>,
    },
    #[error("kafka: cannot subscribe to topics {topics:?}: {source}")]
    Subscribe {
        topics: Vec<String>,
        source: Box<RdError>,
    },
    #[error(
        "kafka: cannot create the producer for topic {topic:?} (brokers {brokers:?}): {source}"
    )]
    Producer {
        topic: String,
        brokers: String,
        source: Box<RdError>,
    },
}

/// The base client settings shared by consumer and producers: brokers and
/// the user's extra properties.
pub fn client_config(k: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers);
    for (key, value) in &k.options {
        c.set(key, value);
    }
    c
}

/// A producer that waits for every in-sync replica (`acks=all`).
pub fn producer(k: &KafkaConfig, topic: &str) -> Result<FutureProducer, KafkaError> {
    let mut c = client_config(k);
    c.set("acks", "all");
    c.set(
        "message.timeout.ms",
        PRODUCE_TIMEOUT.as_millis().to_string(),
    );
    c.create().map_err(|source| KafkaError::Producer {
        topic: topic.to_string(),
        brokers: k.brokers.clone(),
        source: Box::new(source),
    })
}

/// Which format a message in an `auto` topic is: an array is generic /
/// Alertmanager v2 alerts; an object with `event_action` a PagerDuty event,
/// with `alerts` a webhook payload, else one generic alert. Anything else is
/// handed to the generic parser, whose error then names the problem.
pub fn detect(payload: &[u8]) -> Format {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        alerts: Option<IgnoredAny>,
        #[serde(default)]
        event_action: Option<IgnoredAny>,
    }
    let first = payload.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Format::Generic;
    }
    match serde_json::from_slice::<Probe>(payload) {
        Ok(p) if p.event_action.is_some() => Format::PagerDutyV2,
        Ok(p) if p.alerts.is_some() => Format::WebhookV4,
        _ => Format::Generic,
    }
}

/// A message that will not become alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The `reason` label: `empty`, `too_large` or `invalid`.
    pub reason: &'static str,
    pub message: String,
}

/// Parses one message payload of `topic` into alerts tagged [`Source::Kafka`].
pub fn parse_message(
    format: KafkaFormat,
    payload: Option<&[u8]>,
    limits: &Limits,
    now: DateTime<Utc>,
) -> Result<Vec<Alert>, Rejection> {
    let Some(payload) = payload.filter(|p| !p.is_empty()) else {
        return Err(Rejection {
            reason: "empty",
            message: "message has no payload".into(),
        });
    };
    if payload.len() > limits.max_body_bytes {
        return Err(Rejection {
            reason: "too_large",
            message: format!(
                "payload is {} bytes, larger than limits.max_body_bytes ({})",
                payload.len(),
                limits.max_body_bytes
            ),
        });
    }
    let format = match format {
        KafkaFormat::Auto => detect(payload),
        KafkaFormat::AlertmanagerV2 => Format::AlertmanagerV2,
        KafkaFormat::WebhookV4 => Format::WebhookV4,
        KafkaFormat::Generic => Format::Generic,
        KafkaFormat::PagerdutyV2 => Format::PagerDutyV2,
    };
    let mut alerts = ingest::parse(format, payload, limits, now).map_err(|e| Rejection {
        reason: "invalid",
        message: e.to_string(),
    })?;
    for a in &mut alerts {
        a.source = Source::Kafka;
    }
    Ok(alerts)
}

/// Lag of one partition: high watermark minus the first offset not yet
/// durably stored (the stored offset, else the committed one, else the
/// consumer's position). `None` while the high watermark is unknown.
pub fn partition_lag(hi: i64, stored: i64, committed: i64, app: i64, next: i64) -> Option<i64> {
    if hi < 0 {
        return None;
    }
    let position = [stored, committed, app, next]
        .into_iter()
        .find(|o| *o >= 0)?;
    Some((hi - position).max(0))
}

type TopicPartition = (String, i32);

/// Appends `n` alerts of partition `tp` to the runs (merging with the last).
fn add_run(runs: &mut Vec<(Home, usize)>, tp: &TopicPartition, n: usize) {
    match runs.last_mut() {
        Some((h, count)) if h.topic == tp.0 && h.partition == tp.1 => *count += n,
        _ => runs.push((home(tp), n)),
    }
}

/// A poisoned lock only means a thread panicked while holding it; the
/// maps behind these locks are always left consistent.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Callbacks librdkafka runs while the consumer is polled (inside `recv`).
struct Context {
    metrics: Arc<Metrics>,
    /// Partitions currently assigned to this member.
    assigned: Mutex<BTreeSet<TopicPartition>>,
    /// The changelog, when incident state is handed over.
    changelog: Option<Arc<Changelog>>,
    /// Assigned partitions kept paused until their changelog is restored.
    restoring: Mutex<BTreeSet<TopicPartition>>,
    /// Revoked partitions whose incidents are still to be let go.
    revoked: Mutex<Vec<TopicPartition>>,
    /// Wakes the consume loop when there is hand-over work.
    wake: tokio::sync::Notify,
}

impl Context {
    fn assigned(&self) -> std::sync::MutexGuard<'_, BTreeSet<TopicPartition>> {
        // A poisoned lock means a callback panicked; the set is still usable.
        self.assigned.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn has_handover_work(&self) -> bool {
        !lock(&self.revoked).is_empty()
            || lock(&self.restoring)
                .iter()
                .any(|tp| self.assigned().contains(tp))
    }
}

fn home((topic, partition): &TopicPartition) -> Home {
    Home {
        topic: topic.clone(),
        partition: *partition,
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

fn is_no_offset(e: &RdError) -> bool {
    matches!(e, RdError::ConsumerCommit(RDKafkaErrorCode::NoOffset))
}

impl ClientContext for Context {
    fn stats(&self, stats: Statistics) {
        let assigned = self.assigned().clone();
        for (topic, t) in &stats.topics {
            for (id, p) in &t.partitions {
                if !assigned.contains(&(topic.clone(), *id)) {
                    continue;
                }
                if let Some(lag) = partition_lag(
                    p.hi_offset,
                    p.stored_offset,
                    p.committed_offset,
                    p.app_offset,
                    p.next_offset,
                ) {
                    self.metrics
                        .kafka_consumer_lag
                        .with_label_values(&[topic.as_str(), &id.to_string()])
                        .set(lag);
                }
            }
        }
    }

    fn error(&self, error: RdError, reason: &str) {
        // librdkafka retries by itself; nothing acknowledged is at risk.
        tracing::warn!(error = %error, reason, "kafka client error");
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            // Every stored offset's alerts are durable (offsets are stored
            // after the commit): hand them over, after the changelog holds
            // their state. A changelog that cannot be flushed leaves the
            // offsets uncommitted: the new owner replays those messages.
            let revoked = partitions(tpl);
            let flushed = match &self.changelog {
                Some(log) => {
                    // Nothing more is produced for them, then what was is
                    // delivered.
                    log.disown(&revoked.iter().map(home).collect::<Vec<_>>());
                    log.flush(CHANGELOG_FLUSH_TIMEOUT)
                }
                None => Ok(()),
            };
            match flushed {
                Ok(()) => {
                    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                        if !is_no_offset(&e) {
                            tracing::warn!(error = %e, "kafka: committing offsets before revocation failed; the new owner replays them");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "kafka: changelog not flushed before revocation; offsets left uncommitted, the new owner replays them")
                }
            }
            if self.changelog.is_some() {
                let mut restoring = lock(&self.restoring);
                for tp in &revoked {
                    restoring.remove(tp);
                }
                lock(&self.revoked).extend(revoked.iter().cloned());
                self.wake.notify_one();
            }
            let mut assigned = self.assigned();
            for (topic, partition) in &revoked {
                assigned.remove(&(topic.clone(), *partition));
                let _ = self
                    .metrics
                    .kafka_consumer_lag
                    .remove_label_values(&[topic.as_str(), &partition.to_string()]);
            }
            tracing::info!(partitions = ?revoked, "kafka partitions revoked");
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let added = partitions(tpl);
                if let Some(log) = self.changelog.as_ref().filter(|_| !added.is_empty()) {
                    log.own(added.iter().map(home));
                    // Not a message is read before the partition's incidents
                    // are restored from its changelog.
                    if let Err(e) = consumer.pause(tpl) {
                        tracing::warn!(error = %e, "kafka: cannot pause assigned partitions for the changelog restore");
                    }
                    lock(&self.restoring).extend(added.iter().cloned());
                    self.wake.notify_one();
                }
                self.assigned().extend(added.iter().cloned());
                tracing::info!(partitions = ?added, "kafka partitions assigned");
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "kafka rebalance failed"),
        }
    }

    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, _: &TopicPartitionList) {
        if let Err(e) = result {
            if !is_no_offset(&e) {
                tracing::warn!(error = %e, "kafka offset commit failed; it is retried with the next commit");
            }
        }
    }
}

/// The shutdown signal was seen; the current batch was not acknowledged.
struct Stopped;

/// A consumer group member feeding the pipeline. Build with
/// [`KafkaSource::new`], drive with [`KafkaSource::run`].
pub struct KafkaSource {
    consumer: Arc<StreamConsumer<Context>>,
    dead_letter: Option<(String, FutureProducer)>,
    handle: Handle,
    metrics: Arc<Metrics>,
    limits: Arc<Limits>,
    config: KafkaConfig,
    /// The last offset per partition whose alerts are in this store.
    stored: Mutex<BTreeMap<TopicPartition, i64>>,
    /// Partitions whose stored offset was checked against the broker's
    /// high watermark since start.
    checked: Mutex<BTreeSet<TopicPartition>>,
}

impl KafkaSource {
    /// Creates the consumer (and the dead-letter producer) and subscribes.
    /// Connecting happens in the background; a broker that is down delays
    /// consumption but not startup.
    pub fn new(
        config: &KafkaConfig,
        limits: Arc<Limits>,
        handle: Handle,
        metrics: Arc<Metrics>,
        stored: Vec<crate::store::KafkaPosition>,
        changelog: Option<Arc<Changelog>>,
    ) -> Result<KafkaSource, KafkaError> {
        let mut c = client_config(config);
        c.set("group.id", &config.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set(
                "auto.offset.reset",
                match config.start_from {
                    StartFrom::Earliest => "earliest",
                    StartFrom::Latest => "latest",
                },
            )
            .set(
                "statistics.interval.ms",
                config.lag_interval.as_millis().to_string(),
            );
        // librdkafka's 500 ms default lets a broker that waits out the whole
        // fetch window (tansu does) cap throughput; `options` can override.
        if !config.options.contains_key("fetch.wait.max.ms") {
            c.set("fetch.wait.max.ms", "100");
        }
        let context = Context {
            metrics: metrics.clone(),
            assigned: Mutex::new(BTreeSet::new()),
            changelog,
            restoring: Mutex::new(BTreeSet::new()),
            revoked: Mutex::new(Vec::new()),
            wake: tokio::sync::Notify::new(),
        };
        let consumer: StreamConsumer<Context> =
            c.create_with_context(context)
                .map_err(|source| KafkaError::Consumer {
                    brokers: config.brokers.clone(),
                    group: config.group.clone(),
                    source: Box::new(source),
                })?;
        let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|source| KafkaError::Subscribe {
                topics: config.topics.clone(),
                source: Box::new(source),
            })?;
        let dead_letter = match &config.dead_letter_topic {
            Some(t) => Some((t.clone(), producer(config, t)?)),
            None => None,
        };
        tracing::info!(
            brokers = %config.brokers,
            group = %config.group,
            topics = ?config.topics,
            dead_letter_topic = ?config.dead_letter_topic,
            "kafka source subscribed"
        );
        Ok(KafkaSource {
            consumer: Arc::new(consumer),
            dead_letter,
            handle,
            metrics,
            limits,
            config: config.clone(),
            stored: Mutex::new(
                stored
                    .into_iter()
                    .map(|p| ((p.topic, p.partition), p.offset))
                    .collect(),
            ),
            checked: Mutex::new(BTreeSet::new()),
        })
    }

    /// True when the alerts of the message at `offset` are already in the
    /// store (it is a redelivery after a crash or rebalance).
    async fn already_stored(&self, tp: &TopicPartition, offset: i64) -> bool {
        let stored = lock(&self.stored).get(tp).copied();
        let Some(last) = stored.filter(|last| offset <= *last) else {
            return false;
        };
        if lock(&self.checked).contains(tp) {
            return true;
        }
        let (consumer, topic, partition) = (self.consumer.clone(), tp.0.clone(), tp.1);
        let hw = tokio::task::spawn_blocking(move || {
            consumer.fetch_watermarks(&topic, partition, Duration::from_secs(10))
        })
        .await;
        match hw {
            Ok(Ok((_, high))) if high > last => {
                lock(&self.checked).insert(tp.clone());
                true
            }
            Ok(Ok((_, high))) => {
                tracing::warn!(topic = %tp.0, partition = tp.1, stored = last, high_watermark = high,
                    "the partition ends before the offset stored for it: it was re-created or truncated; consuming it anew");
                lock(&self.stored).remove(tp);
                lock(&self.checked).insert(tp.clone());
                false
            }
            // Unsure: rather count a message twice than skip one.
            Ok(Err(e)) => {
                tracing::warn!(topic = %tp.0, partition = tp.1, error = %e,
                    "cannot read the high watermark; not skipping redelivered messages this time");
                false
            }
            Err(_) => false,
        }
    }

    /// Consumes until `stop` turns true (or its sender is gone), then commits
    /// what is stored and leaves the group.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut commit_tick = tokio::time::interval(self.config.commit_interval);
        commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // One batch may be in the pipeline while the next one is parsed.
        let mut inflight: Option<Inflight> = None;
        let handover = self.consumer.context().changelog.is_some();
        while !*stop.borrow() {
            if handover && self.consumer.context().has_handover_work() {
                if self.hand_over(&mut inflight).await.is_err() {
                    break;
                }
                continue;
            }
            if inflight.is_some() {
                // Nothing more fetched yet: finish the batch in flight first,
                // so its offsets do not wait for the next message.
                match tokio::time::timeout(Duration::ZERO, self.consumer.recv()).await {
                    Ok(m) => {
                        if self
                            .handle_message(m, &mut stop, &mut inflight)
                            .await
                            .is_err()
                        {
                            break;
                        }
                        continue;
                    }
                    Err(_) => {
                        if let Some(f) = inflight.take() {
                            if self.finish(f).await.is_err() {
                                break;
                            }
                        }
                        continue;
                    }
                }
            }
            let first = tokio::select! {
                biased;
                changed = stop.changed() => {
                    if changed.is_err() { break }
                    continue;
                }
                _ = commit_tick.tick() => {
                    // Commits what was stored since the last commit; with
                    // nothing new this is a local no-op (NoOffset), and a
                    // failed commit is simply retried on the next tick.
                    self.commit(CommitMode::Async).await;
                    continue;
                }
                _ = self.consumer.context().wake.notified(), if handover => continue,
                m = self.consumer.recv() => m,
            };
            if self
                .handle_message(first, &mut stop, &mut inflight)
                .await
                .is_err()
            {
                break;
            }
        }
        if let Some(f) = inflight.take() {
            // A stop while it was in the pipeline leaves its offsets unstored.
            let _ = self.finish(f).await;
        }
        self.commit(CommitMode::Sync).await;
        tracing::info!("kafka source stopping: offsets committed, leaving the group");
        // Dropping the consumer closes it, which blocks on the group leave.
        let consumer = self.consumer;
        let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
    }

    async fn handle_message(
        &self,
        m: Result<rdkafka::message::BorrowedMessage<'_>, RdError>,
        stop: &mut watch::Receiver<bool>,
        inflight: &mut Option<Inflight>,
    ) -> Result<(), Stopped> {
        let first = match m {
            Ok(m) => m.detach(),
            Err(e) => {
                tracing::warn!(error = %e, "kafka consume error");
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Ok(());
            }
        };
        let batch = self.collect(first).await;
        self.process(batch, stop, inflight).await
    }

    /// The first message plus whatever is already fetched, up to the batch
    /// limits, without waiting.
    async fn collect(&self, first: OwnedMessage) -> Vec<OwnedMessage> {
        let mut bytes = first.payload().map_or(0, <[u8]>::len);
        let mut batch = vec![first];
        while batch.len() < self.config.max_batch_messages && bytes < self.limits.max_body_bytes {
            // A zero timeout polls `recv` once: only what is already queued.
            match tokio::time::timeout(Duration::ZERO, self.consumer.recv()).await {
                Ok(Ok(m)) => {
                    bytes += m.payload().map_or(0, <[u8]>::len);
                    batch.push(m.detach());
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "kafka consume error");
                    break;
                }
                Err(_) => break,
            }
        }
        batch
    }

    /// Parses a batch (dead-lettering what does not parse), then waits for
    /// the batch in flight, then hands this one to the pipeline. Offsets are
    /// stored in batch order, each after its alerts are durable.
    async fn process(
        &self,
        batch: Vec<OwnedMessage>,
        stop: &mut watch::Receiver<bool>,
        inflight: &mut Option<Inflight>,
    ) -> Result<(), Stopped> {
        let started = Instant::now();
        let now = Utc::now();
        let assigned = self.consumer.context().assigned().clone();
        let mut alerts = Vec::new();
        let mut homes = Vec::new();
        let mut rejected = Vec::new();
        let mut last: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        let mut skipped = 0usize;
        // Messages whose alerts go to the pipeline, kept (not copied) in
        // case a failed commit needs them parsed again.
        let mut parsed = vec![false; batch.len()];
        for (i, m) in batch.iter().enumerate() {
            let tp = (m.topic().to_string(), m.partition());
            if !assigned.contains(&tp) {
                tracing::debug!(topic = %tp.0, partition = tp.1, offset = m.offset(), "partition revoked meanwhile; left to its new owner");
                continue;
            }
            if self.already_stored(&tp, m.offset()).await {
                skipped += 1;
                last.insert(tp, m.offset());
                continue;
            }
            let format = self.config.format_of(m.topic());
            match parse_message(format, m.payload(), &self.limits, now) {
                Ok(mut a) => {
                    add_run(&mut homes, &tp, a.len());
                    alerts.append(&mut a);
                    parsed[i] = true;
                }
                Err(r) => rejected.push((m, r)),
            }
            last.insert(tp, m.offset());
        }
        if skipped > 0 {
            tracing::info!(
                messages = skipped,
                "skipped redelivered kafka messages whose alerts are already stored"
            );
        }
        let rejected_any = !rejected.is_empty();
        for (m, r) in rejected {
            self.reject(m, &r, stop).await?;
        }
        if let Some(f) = inflight.take() {
            self.finish(f).await?;
        }
        if last.is_empty() {
            return Ok(());
        }
        // Positions move forward only: a batch of skipped messages leaves
        // the stored offsets as they are.
        let positions: Vec<crate::store::KafkaPosition> = {
            let stored = lock(&self.stored);
            last.iter()
                .filter(|(tp, o)| stored.get(*tp).is_none_or(|s| *o > s))
                .map(|((topic, partition), offset)| crate::store::KafkaPosition {
                    topic: topic.clone(),
                    partition: *partition,
                    offset: *offset,
                })
                .collect()
        };
        let any_alerts = !alerts.is_empty();
        let task = if any_alerts || (rejected_any && !positions.is_empty()) {
            let messages = batch
                .into_iter()
                .zip(parsed)
                .filter(|(_, p)| *p)
                .map(|(m, _)| (self.config.format_of(m.topic()), m))
                .collect();
            let ingest = Ingest {
                handle: self.handle.clone(),
                consumer: self.consumer.clone(),
                metrics: self.metrics.clone(),
                max_backoff: self.config.max_retry_backoff,
                messages,
                limits: self.limits.clone(),
            };
            let stop = stop.clone();
            let positions = positions.clone();
            Some(tokio::spawn(async move {
                ingest.run((alerts, homes), positions, stop).await
            }))
        } else {
            None
        };
        *inflight = Some(Inflight {
            task,
            last,
            positions,
            started,
            any_alerts,
        });
        Ok(())
    }

    /// Waits until a batch's alerts are durable, then stores its offsets.
    async fn finish(&self, f: Inflight) -> Result<(), Stopped> {
        if let Some(task) = f.task {
            match task.await {
                Ok(Ok(())) => {}
                _ => return Err(Stopped),
            }
            let mut stored = lock(&self.stored);
            for p in f.positions {
                stored.insert((p.topic, p.partition), p.offset);
            }
        }
        if f.any_alerts {
            self.metrics
                .ingest_batch_duration
                .with_label_values(&[Source::Kafka.as_str()])
                .observe(f.started.elapsed().as_secs_f64());
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in &f.last {
            // The committed offset is the next one to read.
            if let Err(e) = tpl.add_partition_offset(topic, *partition, Offset::Offset(offset + 1))
            {
                tracing::warn!(topic = %topic, partition, error = %e, "kafka: cannot build offset list");
            }
        }
        if let Err(e) = self.consumer.store_offsets(&tpl) {
            tracing::warn!(error = %e, "kafka: storing offsets failed; these messages will be replayed and deduplicated");
        }
        Ok(())
    }

    /// Lets go of the incidents of revoked partitions, then restores the
    /// incidents of newly assigned ones from their changelog and resumes
    /// them. The batch in flight finishes first, so its alerts land before
    /// the incidents they touched are let go.
    async fn hand_over(&self, inflight: &mut Option<Inflight>) -> Result<(), Stopped> {
        if let Some(f) = inflight.take() {
            self.finish(f).await?;
        }
        let ctx = self.consumer.context();
        let Some(log) = ctx.changelog.clone() else {
            return Ok(());
        };
        let revoked: Vec<Home> = std::mem::take(&mut *lock(&ctx.revoked))
            .iter()
            .map(home)
            .collect();
        if !revoked.is_empty() {
            let names: Vec<String> = revoked.iter().map(Home::to_string).collect();
            match self.handle.release(revoked).await {
                Ok(n) => {
                    tracing::info!(partitions = ?names, incidents = n, "incidents of revoked partitions let go to their new owner")
                }
                Err(PipelineError::ShuttingDown) => return Err(Stopped),
                Err(e) => {
                    tracing::error!(partitions = ?names, error = %e, "cannot let go of the incidents of revoked partitions; they stay here too")
                }
            }
        }
        let pending: Vec<TopicPartition> = lock(&ctx.restoring).iter().cloned().collect();
        for tp in pending {
            if !ctx.assigned().contains(&tp) {
                lock(&ctx.restoring).remove(&tp);
                continue;
            }
            let h = home(&tp);
            let read = {
                let (log, h) = (log.clone(), h.clone());
                tokio::task::spawn_blocking(move || log.read_partition(&h))
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()))
            };
            match read {
                Ok(restore) => {
                    let found = restore.incidents.len();
                    match self.handle.adopt(h.clone(), restore).await {
                        Ok(n) => {
                            tracing::info!(topic = %h.topic, partition = h.partition, found, adopted = n,
                            "incidents restored from the changelog")
                        }
                        Err(PipelineError::ShuttingDown) => return Err(Stopped),
                        Err(e) => {
                            // Retried on the next pass: the partition stays paused.
                            tracing::error!(topic = %h.topic, partition = h.partition, error = %e, "cannot adopt changelog incidents; retrying");
                            tokio::time::sleep(FIRST_BACKOFF * 20).await;
                            continue;
                        }
                    }
                }
                Err(e) => tracing::error!(topic = %h.topic, partition = h.partition, error = %e,
                    "cannot read the changelog; the partition starts without its incidents"),
            }
            lock(&ctx.restoring).remove(&tp);
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&tp.0, tp.1);
            if ctx.assigned().contains(&tp) {
                if let Err(e) = self.consumer.resume(&tpl) {
                    tracing::warn!(topic = %tp.0, partition = tp.1, error = %e, "kafka: cannot resume a restored partition");
                }
            }
        }
        Ok(())
    }

    /// Dead-letters (when configured) and counts a message that will not
    /// become alerts. A dead-letter produce that fails is retried: skipping
    /// it would lose the message.
    async fn reject(
        &self,
        m: &OwnedMessage,
        r: &Rejection,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), Stopped> {
        let (topic, partition, offset) = (m.topic(), m.partition(), m.offset());
        if let Some((dlq, producer)) = &self.dead_letter {
            let mut backoff = FIRST_BACKOFF;
            loop {
                let mut headers = OwnedHeaders::new();
                if let Some(h) = m.headers() {
                    for h in h.iter() {
                        headers = headers.insert(Header {
                            key: h.key,
                            value: h.value,
                        });
                    }
                }
                let (p, o) = (partition.to_string(), offset.to_string());
                for (key, value) in [
                    (ERROR_HEADER, r.message.as_str()),
                    (SOURCE_TOPIC_HEADER, topic),
                    (SOURCE_PARTITION_HEADER, p.as_str()),
                    (SOURCE_OFFSET_HEADER, o.as_str()),
                ] {
                    headers = headers.insert(Header {
                        key,
                        value: Some(value),
                    });
                }
                let mut record = FutureRecord::<[u8], [u8]>::to(dlq).headers(headers);
                if let Some(k) = m.key() {
                    record = record.key(k);
                }
                if let Some(p) = m.payload() {
                    record = record.payload(p);
                }
                let sent = tokio::select! {
                    s = producer.send(record, PRODUCE_TIMEOUT) => s,
                    _ = stop.changed() => return Err(Stopped),
                };
                match sent {
                    Ok(_) => break,
                    Err((e, _)) => {
                        tracing::warn!(topic, partition, offset, dead_letter_topic = %dlq, error = %e,
                            "cannot produce to the dead-letter topic; retrying (the partition waits)");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = stop.changed() => return Err(Stopped),
                        }
                        backoff = (backoff * 2).min(self.config.max_retry_backoff);
                    }
                }
            }
            tracing::warn!(topic, partition, offset, reason = r.reason, error = %r.message,
                dead_letter_topic = %dlq, "kafka message rejected; sent to the dead-letter topic");
        } else {
            tracing::warn!(
                topic,
                partition,
                offset,
                reason = r.reason,
                error = %r.message,
                "kafka message rejected and skipped (no kafka.dead_letter_topic configured)"
            );
        }
        self.metrics
            .kafka_messages_rejected
            .with_label_values(&[topic, r.reason])
            .inc();
        Ok(())
    }

    /// Commits the stored offsets; with the changelog on, only once every
    /// changelog record produced so far is delivered.
    async fn commit(&self, mode: CommitMode) {
        if let Some(log) = self.consumer.context().changelog.clone() {
            if let Err(e) = self.handle.flush_changelog().await {
                tracing::warn!(error = %e, "changelog not flushed; offsets stay uncommitted until the next try");
                return;
            }
            let flushed = tokio::task::spawn_blocking(move || log.flush(CHANGELOG_FLUSH_TIMEOUT))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            if let Err(e) = flushed {
                tracing::warn!(error = %e, "changelog not delivered; offsets stay uncommitted until the next try");
                return;
            }
        }
        if let Err(e) = self.consumer.commit_consumer_state(mode) {
            if !is_no_offset(&e) {
                tracing::warn!(error = %e, "kafka offset commit failed; it is retried with the next commit");
            }
        }
    }
}

/// A batch handed to the pipeline, not yet known to be durable.
struct Inflight {
    /// `None` when the batch had nothing to store (only skipped messages).
    task: Option<tokio::task::JoinHandle<Result<(), Stopped>>>,
    /// Last offset per partition, stored for commit once durable.
    last: BTreeMap<TopicPartition, i64>,
    positions: Vec<crate::store::KafkaPosition>,
    started: Instant,
    any_alerts: bool,
}

/// What handing one batch to the pipeline needs; runs as its own task so
/// the next batch is parsed meanwhile.
struct Ingest {
    handle: Handle,
    consumer: Arc<StreamConsumer<Context>>,
    metrics: Arc<Metrics>,
    max_backoff: Duration,
    /// The messages the alerts were parsed from.
    messages: Vec<(KafkaFormat, OwnedMessage)>,
    limits: Arc<Limits>,
}

impl Ingest {
    /// The alerts (and their partitions) again, after a failed commit
    /// consumed the first parse.
    fn reparse(&self) -> (Vec<Alert>, Vec<(Home, usize)>) {
        let now = Utc::now();
        let mut alerts = Vec::new();
        let mut homes = Vec::new();
        for (format, m) in &self.messages {
            let mut a = parse_message(*format, m.payload(), &self.limits, now).unwrap_or_default();
            add_run(&mut homes, &(m.topic().to_string(), m.partition()), a.len());
            alerts.append(&mut a);
        }
        (alerts, homes)
    }

    /// Hands alerts to the pipeline until they are durable, pausing every
    /// assigned partition while the pipeline cannot take them.
    async fn run(
        self,
        alerts: (Vec<Alert>, Vec<(Home, usize)>),
        positions: Vec<crate::store::KafkaPosition>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), Stopped> {
        let mut backoff = FIRST_BACKOFF;
        let mut paused: Option<TopicPartitionList> = None;
        let mut alerts = Some(alerts);
        let result = loop {
            let attempt = match self.handle.reserve() {
                Ok(permit) => {
                    // The writer drops the alerts when their commit fails
                    // (`Unavailable`): parse them again for the next try.
                    let (batch, homes) = alerts.take().unwrap_or_else(|| self.reparse());
                    permit.ingest_kafka(batch, positions.clone(), homes).await
                }
                Err(e) => Err(e),
            };
            match attempt {
                Ok(_) => break Ok(()),
                Err(PipelineError::ShuttingDown) => break Err(Stopped),
                Err(e) => {
                    let reason = match e {
                        PipelineError::Overloaded => "overloaded",
                        _ => "unavailable",
                    };
                    self.metrics
                        .requests_rejected
                        .with_label_values(&[Source::Kafka.as_str(), reason])
                        .inc();
                    if paused.is_none() {
                        tracing::warn!(error = %e, "pipeline cannot take kafka alerts; pausing partitions and retrying");
                        match self.consumer.assignment() {
                            Ok(tpl) => {
                                if let Err(e) = self.consumer.pause(&tpl) {
                                    tracing::warn!(error = %e, "kafka: cannot pause partitions");
                                }
                                paused = Some(tpl);
                            }
                            Err(e) => tracing::warn!(error = %e, "kafka: cannot read assignment"),
                        }
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => break Err(Stopped),
                    }
                    backoff = (backoff * 2).min(self.max_backoff);
                }
            }
        };
        if let Some(mut tpl) = paused {
            // Partitions waiting for their changelog restore stay paused.
            let restoring = lock(&self.consumer.context().restoring).clone();
            if !restoring.is_empty() {
                let mut keep = TopicPartitionList::new();
                for e in tpl.elements() {
                    if !restoring.contains(&(e.topic().to_string(), e.partition())) {
                        keep.add_partition(e.topic(), e.partition());
                    }
                }
                tpl = keep;
            }
            if let Err(e) = self.consumer.resume(&tpl) {
                tracing::warn!(error = %e, "kafka: cannot resume partitions");
            } else if result.is_ok() {
                tracing::info!("pipeline took the kafka alerts; partitions resumed");
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-23T12:00:00Z".parse().expect("valid")
    }

    #[test]
    fn formats_are_detected() {
        assert_eq!(detect(br#"[{"labels":{"a":"b"}}]"#), Format::Generic);
        assert_eq!(
            detect(br#" {"version":"4","alerts":[]}"#),
            Format::WebhookV4
        );
        assert_eq!(
            detect(br#"{"routing_key":"r","event_action":"trigger"}"#),
            Format::PagerDutyV2
        );
        assert_eq!(detect(br#"{"labels":{"a":"b"}}"#), Format::Generic);
        assert_eq!(detect(b"not json"), Format::Generic);
    }

    #[test]
    fn messages_parse_with_kafka_source_or_are_rejected_with_a_reason() {
        let limits = Limits::default();
        let a = parse_message(
            KafkaFormat::Auto,
            Some(br#"{"version":"4","alerts":[{"labels":{"alertname":"A"}},{"labels":{"alertname":"B"}}]}"#),
            &limits,
            now(),
        )
        .expect("valid");
        assert_eq!(a.len(), 2);
        assert!(a.iter().all(|a| a.source == Source::Kafka));
        let pd = parse_message(
            KafkaFormat::Auto,
            Some(br#"{"routing_key":"r","event_action":"resolve","dedup_key":"k"}"#),
            &limits,
            now(),
        )
        .expect("valid");
        assert_eq!(pd[0].status, crate::alert::AlertStatus::Resolved);

        let r = parse_message(KafkaFormat::Auto, None, &limits, now()).unwrap_err();
        assert_eq!(r.reason, "empty");
        let r = parse_message(KafkaFormat::Auto, Some(b"{oops"), &limits, now()).unwrap_err();
        assert_eq!(r.reason, "invalid");
        assert!(
            r.message.starts_with("invalid JSON at line 1"),
            "{}",
            r.message
        );
        // A fixed format is not second-guessed.
        let r = parse_message(
            KafkaFormat::WebhookV4,
            Some(br#"[{"labels":{"a":"b"}}]"#),
            &limits,
            now(),
        )
        .unwrap_err();
        assert_eq!(r.reason, "invalid");
        let small = Limits {
            max_body_bytes: 4,
            ..Limits::default()
        };
        let r = parse_message(KafkaFormat::Auto, Some(b"[{}, {}]"), &small, now()).unwrap_err();
        assert_eq!(r.reason, "too_large");
    }

    #[test]
    fn lag_uses_the_durable_position() {
        // hi, stored, committed, app, next
        assert_eq!(partition_lag(-1, 5, 5, 5, 5), None);
        assert_eq!(partition_lag(10, 7, 3, 9, 10), Some(3));
        assert_eq!(partition_lag(10, -1001, 4, 9, 10), Some(6));
        assert_eq!(partition_lag(10, -1001, -1001, -1001, 0), Some(10));
        assert_eq!(partition_lag(10, -1001, -1001, -1001, -1001), None);
        assert_eq!(partition_lag(3, 5, -1, -1, -1), Some(0));
    }
}
