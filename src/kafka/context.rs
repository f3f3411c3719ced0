//! The consumer's context: the callbacks librdkafka runs while the
//! consumer is polled (rebalances, statistics, commit results), and the
//! partition state they keep for the consume loop.
//!
//! Contract: on revocation the changelog stops producing for the revoked
//! partitions and is flushed before their offsets are committed; on
//! assignment, with the changelog on, the partitions stay paused until
//! their incidents are restored. Lag is exported for assigned partitions
//! only.

use std::collections::BTreeSet;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, TopicPartitionList};

use super::changelog::Changelog;
use super::partition_lag;
use super::CHANGELOG_FLUSH_TIMEOUT;
use crate::metrics::Metrics;
use crate::model::Home;

pub(crate) type TopicPartition = (String, i32);

/// Appends `n` alerts of partition `tp` to the runs (merging with the last).
pub(crate) fn add_run(runs: &mut Vec<(Home, usize)>, tp: &TopicPartition, n: usize) {
    match runs.last_mut() {
        Some((h, count)) if h.topic == tp.0 && h.partition == tp.1 => *count += n,
        _ => runs.push((home(tp), n)),
    }
}

/// Callbacks librdkafka runs while the consumer is polled (inside `recv`).
pub struct Context {
    pub(crate) metrics: Arc<Metrics>,
    /// Partitions currently assigned to this member.
    pub(crate) assigned: Mutex<BTreeSet<TopicPartition>>,
    /// The changelog, when incident state is handed over.
    pub(crate) changelog: Option<Arc<Changelog>>,
    /// Assigned partitions kept paused until their changelog is restored.
    pub(crate) restoring: Mutex<BTreeSet<TopicPartition>>,
    /// Revoked partitions whose incidents are still to be let go.
    pub(crate) revoked: Mutex<Vec<TopicPartition>>,
    /// Wakes the consume loop when there is hand-over work.
    pub(crate) wake: tokio::sync::Notify,
}

impl Context {
    pub(crate) fn assigned(&self) -> MutexGuard<'_, BTreeSet<TopicPartition>> {
        self.assigned.lock()
    }

    pub(crate) fn has_handover_work(&self) -> bool {
        !self.revoked.lock().is_empty()
            || self
                .restoring
                .lock()
                .iter()
                .any(|tp| self.assigned().contains(tp))
    }
}

pub(crate) fn home((topic, partition): &TopicPartition) -> Home {
    Home {
        topic: topic.clone(),
        partition: *partition,
    }
}

pub(crate) fn partitions(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

pub(crate) fn is_no_offset(e: &RdError) -> bool {
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
                let mut restoring = self.restoring.lock();
                for tp in &revoked {
                    restoring.remove(tp);
                }
                self.revoked.lock().extend(revoked.iter().cloned());
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
                    self.restoring.lock().extend(added.iter().cloned());
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
