//! The Kafka source: a consumer group member that turns messages into
//! alerts with the same durability promise as HTTP.
//!
//! Input: messages from the configured topics (payload formats of
//! [`crate::ingest`], detected per message or fixed per topic). Output:
//! alerts handed to the pipeline with [`Source::Kafka`](crate::model::Source::Kafka); offsets stored and
//! committed only after the pipeline answered `Ok`, i.e. after the
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
//! With `kafka.changelog` on ([`changelog`]): an assigned partition
//! stays paused until its incidents are restored from its changelog
//! partition; a revoked one stops being written to the changelog, which is
//! flushed before the offsets are committed, and its incidents are then let
//!
//! Layout: [`source`] (the consume loop), [`batch`] (one batch on its way
//! to the pipeline), [`context`] (librdkafka's callbacks: rebalances,
//! statistics), [`handover`] (partitions moving), [`parse`] (messages to
//! alerts), [`changelog`] (incident state for other instances), [`forward`]
//! (HTTP receivers producing into the topic).

pub mod batch;
pub mod changelog;
pub mod context;
pub mod forward;
pub mod handover;
pub mod parse;
pub mod source;

use std::time::Duration;

use rdkafka::error::KafkaError as RdError;
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;

use crate::config::KafkaConfig;

pub use parse::{parse_message, partition_lag, Rejection};
pub use source::KafkaSource;

/// Header carrying the parse error on a dead-lettered message.
pub const ERROR_HEADER: &str = "incidentd-error";
/// Headers naming where a dead-lettered message came from.
pub const SOURCE_TOPIC_HEADER: &str = "incidentd-source-topic";
pub const SOURCE_PARTITION_HEADER: &str = "incidentd-source-partition";
pub const SOURCE_OFFSET_HEADER: &str = "incidentd-source-offset";

/// First pause after an overloaded or failed ingest; doubles up to
/// `kafka.max_retry_backoff`.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// How long a dead-letter produce may wait in the producer queue and for
/// the broker's acknowledgement.
pub(crate) const PRODUCE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long offsets wait for the changelog to be delivered.
pub(crate) const CHANGELOG_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

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

/// The base client settings every consumer and producer starts from:
/// brokers and the user's extra properties. Built here once.
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
