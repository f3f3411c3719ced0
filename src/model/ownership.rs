//! Partition ownership data: which Kafka partition an incident belongs to,
//! and how far each partition's alerts are stored.
//!
//! Contract: with several instances, the instance that owns a partition
//! owns the incidents whose [`Home`] it is. [`KafkaPosition`]s are stored in
//! the same transaction as the alerts they came with, so a redelivered
//! message whose alerts are already stored is recognised.

use std::fmt;

/// A Kafka topic, partition and the last offset whose alerts are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaPosition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// The Kafka partition an incident's alerts come from: the instance that
/// owns the partition owns the incident.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Home {
    pub topic: String,
    pub partition: i32,
}

impl fmt::Display for Home {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.topic, self.partition)
    }
}

/// Which way incidents moved with their partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Adopted from the changelog.
    In,
    /// Let go to the partition's new owner.
    Out,
}

impl Direction {
    pub const ALL: [Direction; 2] = [Direction::In, Direction::Out];

    /// Also the `direction` label of
    /// `incidentd_kafka_incidents_handed_over_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}
