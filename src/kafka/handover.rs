//! Partitions moving between instances: the incidents of revoked
//! partitions are let go, and those of newly assigned partitions restored
//! from their changelog before the partition is read.

use rdkafka::consumer::Consumer;
use rdkafka::TopicPartitionList;

use super::batch::Inflight;
use super::context::{home, TopicPartition};
use super::source::{KafkaSource, Stopped};
use super::FIRST_BACKOFF;
use crate::model::Home;
use crate::pipeline::PipelineError;

impl KafkaSource {
    /// Lets go of the incidents of revoked partitions, then restores the
    /// incidents of newly assigned ones from their changelog and resumes
    /// them. The batch in flight finishes first, so its alerts land before
    /// the incidents they touched are let go.
    pub(crate) async fn hand_over(&self, inflight: &mut Option<Inflight>) -> Result<(), Stopped> {
        if let Some(f) = inflight.take() {
            self.finish(f).await?;
        }
        let ctx = self.consumer.context();
        let Some(log) = ctx.changelog.clone() else {
            return Ok(());
        };
        let revoked: Vec<Home> = std::mem::take(&mut *ctx.revoked.lock())
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
        let pending: Vec<TopicPartition> = ctx.restoring.lock().iter().cloned().collect();
        for tp in pending {
            if !ctx.assigned().contains(&tp) {
                ctx.restoring.lock().remove(&tp);
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
            ctx.restoring.lock().remove(&tp);
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
}
