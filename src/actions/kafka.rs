//! `kafka` actions: the incident event produced to a topic (`acks=all`),
//! keyed by incident or group so one incident's events stay in order.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use rdkafka::producer::FutureProducer;

use crate::config::KafkaConfig;
use crate::model::{AttemptOutcome, Job};
use crate::rules::actions::{KafkaActionDef, KafkaKey};
use crate::rules::RuleSet;

/// One producer per broker list, made on first use and shared by jobs.
#[derive(Clone, Default)]
pub struct Producers {
    by_brokers: Arc<Mutex<BTreeMap<String, FutureProducer>>>,
}

impl Producers {
    pub(super) fn get(
        &self,
        brokers: &str,
        base: Option<&KafkaConfig>,
    ) -> Result<FutureProducer, String> {
        let mut map = self.by_brokers.lock();
        if let Some(p) = map.get(brokers) {
            return Ok(p.clone());
        }
        // The daemon's client settings (security, sasl), with the action's
        // own brokers.
        let mut c = match base {
            Some(k) => crate::kafka::client_config(k),
            None => rdkafka::ClientConfig::new(),
        };
        c.set("bootstrap.servers", brokers);
        c.set("acks", "all");
        let p: FutureProducer = c
            .create()
            .map_err(|e| format!("cannot create a Kafka producer for {brokers}: {e}"))?;
        map.insert(brokers.to_string(), p.clone());
        Ok(p)
    }
}

/// Produces the incident event (or its rendered body) to the action's topic.
pub async fn produce(
    producers: &Producers,
    base: Option<&KafkaConfig>,
    rules: &RuleSet,
    k: &KafkaActionDef,
    job: &Job,
) -> (AttemptOutcome, String) {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::FutureRecord;
    let Some(brokers) = k.brokers.as_deref().or(base.map(|c| c.brokers.as_str())) else {
        return (
            AttemptOutcome::Failure,
            "no brokers: set `brokers` on the action or the daemon's kafka.brokers".into(),
        );
    };
    let producer = match producers.get(brokers, base) {
        Ok(p) => p,
        Err(e) => return (AttemptOutcome::Failure, e),
    };
    let body = match &k.body_template {
        Some(t) => match super::render_body(rules, t, job) {
            Ok(b) => b,
            Err(failed) => return failed,
        },
        None => job.payload.to_string(),
    };
    let key = match k.key {
        KafkaKey::Incident => job.incident.to_string(),
        KafkaKey::GroupKey => job.payload["incident"]["group_key"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    };
    let incident = job.incident.to_string();
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "incidentd-trigger",
            value: Some(job.trigger.as_str()),
        })
        .insert(Header {
            key: "incidentd-incident",
            value: Some(incident.as_str()),
        })
        .insert(Header {
            key: "incidentd-job",
            value: Some(job.key.as_str()),
        });
    let record = FutureRecord::to(&k.topic)
        .key(&key)
        .payload(&body)
        .headers(headers);
    match tokio::time::timeout(k.timeout, producer.send(record, k.timeout)).await {
        Ok(Ok(delivery)) => (
            AttemptOutcome::Success,
            format!(
                "produced to {}[{}] at offset {}",
                k.topic, delivery.partition, delivery.offset
            ),
        ),
        Ok(Err((e, _))) => (
            AttemptOutcome::Failure,
            format!("producing to {} failed: {e}", k.topic),
        ),
        Err(_) => (
            AttemptOutcome::Timeout,
            format!("producing to {} timed out after {:?}", k.topic, k.timeout),
        ),
    }
}
