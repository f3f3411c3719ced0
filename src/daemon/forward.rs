//! `incidentd forward`: the HTTP receivers of `serve`, producing into Kafka
//! instead of processing locally (see [`crate::kafka::forward`] for what is
//! produced, and docs/scaling.md for the multi-instance setup).
//!
//! Contract: runs until the shutdown future completes, then flushes the
//! producer (at most 10 s), so every answered request's messages are
//! delivered or were refused.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use rdkafka::producer::Producer;
use tokio::net::TcpListener;

use super::Security;
use crate::config::{Config, HttpSettings};
use crate::http::{self, ingest};
use crate::kafka::{self, forward::Forwarder};
use crate::metrics::Metrics;
use crate::rules;

/// How long shutdown waits for queued messages to be delivered.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the forwarder could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("forward needs a kafka section (or --kafka-brokers and --kafka-topic)")]
    NoKafka,
    #[error("forward produces into exactly one topic; kafka.topics has {0:?}")]
    Topics(Vec<String>),
    #[error("invalid rules:\n{0}")]
    Rules(#[from] crate::rules::RulesError),
    #[error(transparent)]
    Kafka(#[from] kafka::KafkaError),
    #[error(transparent)]
    Server(#[from] super::ServerError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Runs the forwarder until `shutdown` completes, then flushes the producer.
pub async fn run(
    config: Config,
    rules: rules::Source,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ForwardError> {
    config.validate()?;
    let config_kafka = config.kafka.as_ref().ok_or(ForwardError::NoKafka)?;
    let [topic] = config_kafka.topics.as_slice() else {
        return Err(ForwardError::Topics(config_kafka.topics.clone()));
    };
    let rules = Arc::new(rules.load()?);
    tracing::info!(rules = %rules.summary(), "rules loaded (group keys)");
    let producer = kafka::producer(config_kafka, topic)?;
    let metrics = Arc::new(Metrics::new());
    // Loaded once; forward does not reload (IncidentdConfigReloadFailed
    // must not fire for it).
    metrics.config_loaded(true, chrono::Utc::now());
    let listen = listener.local_addr()?;
    let security = Security::new(&config, listen, &metrics)?;
    let fwd = Forwarder {
        producer: producer.clone(),
        topic: Arc::from(topic.as_str()),
        rules,
        limits: Arc::new(config.limits.clone()),
        metrics: metrics.clone(),
    };
    let max_body = config.limits.max_body_bytes;
    let routes = ingest::routes::<Forwarder>().route("/-/ready", get(|| async { "OK\n" }));
    let app = http::finish(routes, max_body, security.auth.clone(), metrics).with_state(fwd);
    security.keep_warning(listen);
    tracing::info!(listen = %listen, topic = %topic, brokers = %config_kafka.brokers, "forwarding to kafka");
    let settings = HttpSettings {
        max_connections: http::serve::connection_limit(config.http.max_connections),
        ..config.http.clone()
    };
    http::serve::serve(
        listener,
        app,
        &settings,
        security.tls.clone(),
        async move {
            shutdown.await;
            tracing::info!("shutting down: intake stopped, flushing the producer");
        },
        config.shutdown_timeout,
    )
    .await?;
    let flushed = tokio::task::spawn_blocking(move || producer.flush(FLUSH_TIMEOUT))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    if let Err(e) = flushed {
        tracing::warn!(error = %e, "kafka producer flush incomplete at shutdown");
    }
    Ok(())
}
