//! The consume loop: a consumer group member that turns messages into
//! alerts with the same durability promise as HTTP (see the [module
//! contract](super)).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use parking_lot::Mutex;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use super::batch::{Inflight, Ingest};
use super::changelog::Changelog;
use super::context::{add_run, is_no_offset, Context, TopicPartition};
use super::parse::{parse_message, Rejection};
use super::*;
use crate::config::{KafkaConfig, Limits, StartFrom};
use crate::metrics::Metrics;
use crate::model::{KafkaPosition, Source};
use crate::pipeline::Handle;

/// The shutdown signal was seen; the current batch was not acknowledged.
pub(crate) struct Stopped;

/// A consumer group member feeding the pipeline. Build with
/// [`KafkaSource::new`], drive with [`KafkaSource::run`].
pub struct KafkaSource {
    pub(crate) consumer: Arc<StreamConsumer<Context>>,
    pub(crate) dead_letter: Option<(String, FutureProducer)>,
    pub(crate) handle: Handle,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) limits: Arc<Limits>,
    pub(crate) config: KafkaConfig,
    /// The last offset per partition whose alerts are in this store.
    pub(crate) stored: Mutex<BTreeMap<TopicPartition, i64>>,
    /// Partitions whose stored offset was checked against the broker's
    /// high watermark since start.
    pub(crate) checked: Mutex<BTreeSet<TopicPartition>>,
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
        stored: Vec<KafkaPosition>,
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
    pub(crate) async fn already_stored(&self, tp: &TopicPartition, offset: i64) -> bool {
        let stored = self.stored.lock().get(tp).copied();
        let Some(last) = stored.filter(|last| offset <= *last) else {
            return false;
        };
        if self.checked.lock().contains(tp) {
            return true;
        }
        let (consumer, topic, partition) = (self.consumer.clone(), tp.0.clone(), tp.1);
        let hw = tokio::task::spawn_blocking(move || {
            consumer.fetch_watermarks(&topic, partition, Duration::from_secs(10))
        })
        .await;
        match hw {
            Ok(Ok((_, high))) if high > last => {
                self.checked.lock().insert(tp.clone());
                true
            }
            Ok(Ok((_, high))) => {
                tracing::warn!(topic = %tp.0, partition = tp.1, stored = last, high_watermark = high,
                    "the partition ends before the offset stored for it: it was re-created or truncated; consuming it anew");
                self.stored.lock().remove(tp);
                self.checked.lock().insert(tp.clone());
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

    pub(crate) async fn handle_message(
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
    pub(crate) async fn collect(&self, first: OwnedMessage) -> Vec<OwnedMessage> {
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
    pub(crate) async fn process(
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
        let positions: Vec<KafkaPosition> = {
            let stored = self.stored.lock();
            last.iter()
                .filter(|(tp, o)| stored.get(*tp).is_none_or(|s| *o > s))
                .map(|((topic, partition), offset)| KafkaPosition {
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
    pub(crate) async fn finish(&self, f: Inflight) -> Result<(), Stopped> {
        if let Some(task) = f.task {
            match task.await {
                Ok(Ok(())) => {}
                _ => return Err(Stopped),
            }
            let mut stored = self.stored.lock();
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

    /// Dead-letters (when configured) and counts a message that will not
    /// become alerts. A dead-letter produce that fails is retried: skipping
    /// it would lose the message.
    pub(crate) async fn reject(
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
    pub(crate) async fn commit(&self, mode: CommitMode) {
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
