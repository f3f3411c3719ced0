//! The Kafka source against librdkafka's in-process mock cluster (speaks the
//! real protocol, needs no broker process): the fast check that runs with
//! every `cargo test`. The real-broker tests are in tests/kafka.rs.

mod common;

use std::time::Duration;

use common::{shipped_rules, Daemon};
use incidentd::config::KafkaConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::{json, Value};

/// Polls `check` (bounded) until it returns `Ok`; `Err` is the last observation.
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let mut last = String::new();
    for _ in 0..300 {
        match check().await {
            Ok(v) => return v,
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}; last observation: {last}");
}

fn metric(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_cluster_messages_become_incidents_and_bad_ones_are_counted() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("alerts", 2, 1).expect("create topic");
    let brokers = cluster.bootstrap_servers();

    let dir = tempfile::tempdir().expect("tempdir");
    let d = Daemon::start(dir.path(), shipped_rules(), |config| {
        config.kafka = Some(KafkaConfig {
            brokers: brokers.clone(),
            topics: vec!["alerts".into()],
            group: "mock".into(),
            commit_interval: Duration::from_millis(100),
            lag_interval: Duration::from_millis(100),
            ..KafkaConfig::default()
        });
    })
    .await;
    let base = d.base.clone();

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("producer");
    let messages: Vec<(&str, Option<String>)> = vec![
        (
            "k1",
            Some(json!({"labels": {"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": "a"}}).to_string()),
        ),
        ("k2", Some("this is not an alert".into())),
        (
            "k3",
            Some(json!({"version": "4", "alerts": [
                {"status": "firing", "labels": {"alertname": "NodeFilesystemAlmostOutOfSpace", "instance": "db1:9100", "severity": "warning"}},
                {"status": "firing", "labels": {"alertname": "NodeFilesystemAlmostOutOfSpace", "instance": "db1:9100", "severity": "warning", "mountpoint": "/var"}}
            ]}).to_string()),
        ),
        ("k4", None),
    ];
    for (key, payload) in &messages {
        let mut record = FutureRecord::<str, str>::to("alerts").key(key);
        if let Some(p) = payload {
            record = record.payload(p);
        }
        producer
            .send(record, Duration::from_secs(10))
            .await
            .expect("produce");
    }

    let http = reqwest::Client::new();
    let text = wait_for("3 kafka alerts, 2 rejections and the lag gauge", || {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let text = http
                .get(format!("{base}/metrics"))
                .send()
                .await
                .map_err(|e| e.to_string())?
                .text()
                .await
                .map_err(|e| e.to_string())?;
            let received = metric(&text, "incidentd_alerts_received_total{source=\"kafka\"} ");
            let invalid = metric(
                &text,
                "incidentd_kafka_messages_rejected_total{reason=\"invalid\",topic=\"alerts\"} ",
            );
            let empty = metric(
                &text,
                "incidentd_kafka_messages_rejected_total{reason=\"empty\",topic=\"alerts\"} ",
            );
            // The lag gauge comes with librdkafka's next statistics callback.
            if (received, invalid, empty) == (Some(3.0), Some(1.0), Some(1.0))
                && text.contains("incidentd_kafka_consumer_lag{")
            {
                Ok(text)
            } else {
                Err(format!(
                    "received {received:?}, invalid {invalid:?}, empty {empty:?}, lag gauge {}",
                    text.contains("incidentd_kafka_consumer_lag{")
                ))
            }
        }
    })
    .await;
    assert!(
        text.contains("incidentd_kafka_consumer_lag{"),
        "lag gauge missing:\n{text}"
    );
    let incidents: Value = http
        .get(format!("{base}/api/v1/incidents"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = incidents
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|i| i["labels"]["alertname"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "{incidents}");
    assert!(names.contains(&"KubePodCrashLooping"), "{names:?}");
    assert!(
        names.contains(&"NodeFilesystemAlmostOutOfSpace"),
        "{names:?}"
    );

    tokio::time::timeout(Duration::from_secs(30), d.stop())
        .await
        .expect("server stops within 30s");
}

/// With a writer queue of one and HTTP clients competing for it, the Kafka
/// source keeps being refused (`Overloaded`); it pauses, retries the same
/// batch and loses nothing: every produced alert is received exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_pauses_and_retries_without_losing_messages() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("alerts", 2, 1).expect("create topic");
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Daemon::start(dir.path(), shipped_rules(), |config| {
        config.pipeline.queue_capacity = 1;
        config.kafka = Some(KafkaConfig {
            brokers: brokers.clone(),
            topics: vec!["alerts".into()],
            group: "overload".into(),
            max_batch_messages: 1,
            max_retry_backoff: Duration::from_millis(20),
            lag_interval: Duration::from_millis(100),
            ..KafkaConfig::default()
        });
    })
    .await;
    let base = d.base.clone();

    const MESSAGES: usize = 150;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("producer");
    for i in 0..MESSAGES {
        let body = json!({"labels": {"alertname": "KubePodCrashLooping",
            "namespace": format!("ns{}", i % 5), "pod": format!("p{i}")}})
        .to_string();
        producer
            .send(
                FutureRecord::<str, str>::to("alerts")
                    .key(&format!("ns{}", i % 5))
                    .payload(&body),
                Duration::from_secs(10),
            )
            .await
            .expect("produce");
    }
    // Competing HTTP senders, bounded in count; 503s are expected.
    let http = reqwest::Client::new();
    let mut senders = Vec::new();
    for t in 0..4 {
        let (http, base) = (http.clone(), base.clone());
        senders.push(tokio::spawn(async move {
            for i in 0..60 {
                let _ = http
                    .post(format!("{base}/api/v1/alerts"))
                    .json(&json!({"labels": {"alertname": "HostDown", "instance": format!("h{t}-{i}")}}))
                    .send()
                    .await;
            }
        }));
    }
    for s in senders {
        s.await.expect("sender");
    }
    let text = wait_for("every kafka alert received once", || {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let text = http
                .get(format!("{base}/metrics"))
                .send()
                .await
                .map_err(|e| e.to_string())?
                .text()
                .await
                .map_err(|e| e.to_string())?;
            let received = metric(&text, "incidentd_alerts_received_total{source=\"kafka\"} ");
            let lagging = text
                .lines()
                .filter(|l| l.starts_with("incidentd_kafka_consumer_lag{"))
                .any(|l| !l.ends_with(" 0"));
            if received == Some(MESSAGES as f64) && !lagging {
                Ok(text)
            } else {
                Err(format!("received {received:?}, lagging {lagging}"))
            }
        }
    })
    .await;
    assert_eq!(
        metric(&text, "incidentd_alerts_deduplicated_total "),
        Some(0.0),
        "nothing was ingested twice"
    );
    eprintln!(
        "kafka ingests refused while overloaded: {:?}",
        metric(
            &text,
            "incidentd_requests_rejected_total{reason=\"overloaded\",source=\"kafka\"} "
        )
    );
    tokio::time::timeout(Duration::from_secs(30), d.stop())
        .await
        .expect("server stops within 30s");
}
