//! One batch on its way to the pipeline: it runs as its own task, so the
//! next batch is parsed meanwhile, and retries with capped backoff (every
//! assigned partition paused) while the pipeline cannot take it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::TopicPartitionList;
use tokio::sync::watch;

use super::context::{add_run, Context, TopicPartition};
use super::parse::parse_message;
use super::source::Stopped;
use super::FIRST_BACKOFF;
use crate::config::{KafkaFormat, Limits};
use crate::metrics::Metrics;
use crate::model::{Alert, Home, KafkaPosition, Source};
use crate::pipeline::{Handle, PipelineError};

/// A batch handed to the pipeline, not yet known to be durable.
pub(crate) struct Inflight {
    /// `None` when the batch had nothing to store (only skipped messages).
    pub(crate) task: Option<tokio::task::JoinHandle<Result<(), Stopped>>>,
    /// Last offset per partition, stored for commit once durable.
    pub(crate) last: BTreeMap<TopicPartition, i64>,
    pub(crate) positions: Vec<KafkaPosition>,
    pub(crate) started: Instant,
    pub(crate) any_alerts: bool,
}

/// What handing one batch to the pipeline needs; runs as its own task so
/// the next batch is parsed meanwhile.
pub(crate) struct Ingest {
    pub(crate) handle: Handle,
    pub(crate) consumer: Arc<StreamConsumer<Context>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) max_backoff: Duration,
    /// The messages the alerts were parsed from.
    pub(crate) messages: Vec<(KafkaFormat, OwnedMessage)>,
    pub(crate) limits: Arc<Limits>,
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
    pub(crate) async fn run(
        self,
        alerts: (Vec<Alert>, Vec<(Home, usize)>),
        positions: Vec<KafkaPosition>,
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
            let restoring = self.consumer.context().restoring.lock().clone();
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
