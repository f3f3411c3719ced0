//! Kafka end to end, against a real broker process: `tansu` (an Apache
//! Kafka-compatible broker; `scripts/test` installs it with `cargo install
//! tansu --features dynostore --locked`). Each test starts its own broker
//! with in-memory storage on an ephemeral loopback port, the real
//! `incidentd` binary with its own temp data dir, and an rdkafka client as
//! the separate producer; everything is driven and observed as a user would
//! (HTTP API, /metrics, the broker's committed offsets and topics).
//!
//! Every child process is owned by a [`Proc`] guard that kills and reaps it
//! on drop. Waits poll with a bound and fail with every process's log; no
//! assertion depends on timing.

mod common;

use common::procs::{self, logs, Proc, POLL};
use common::tools::{free_port, http_client as client, tansu};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use incidentd::model::Labels;
use incidentd::rules::RuleSet;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{json, Value};
use tempfile::TempDir;

/// Upper bound for any awaited state (group joins wait for session timeouts).
const DEADLINE: Duration = Duration::from_secs(90);

/// The tests run one at a time: each starts a broker and up to four
/// daemons, which on a 2-core machine is enough load for one test.
static SERIAL: Mutex<()> = Mutex::new(());

/// Holds [`SERIAL`] for the rest of the test. Each test has its own runtime
/// on its own thread, so blocking on the lock (and holding the guard across
/// awaits) only makes the tests wait for each other.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Polls `check` until `Ok`, failing after [`DEADLINE`] or when a process dies.
/// [`procs::wait_for`] with this file's [`DEADLINE`].
async fn wait_for<T, F, Fut>(what: &str, procs: &[&Proc], check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    procs::wait_for(what, procs, DEADLINE, check).await
}

// ---------------------------------------------------------------------------
// The broker
// ---------------------------------------------------------------------------

struct Broker {
    proc: Proc,
    addr: String,
    tansu: PathBuf,
}

impl Broker {
    async fn start(dir: &Path) -> Broker {
        let tansu = tansu();
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let mut cmd = Command::new(&tansu);
        cmd.args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", "memory://tansu/"])
        .env("RUST_LOG", "warn");
        let b = Broker {
            proc: Proc::spawn("tansu", cmd, dir),
            addr: format!("127.0.0.1:{port}"),
            tansu,
        };
        let addr = b.addr.clone();
        wait_for("the broker to answer metadata requests", &[&b.proc], || {
            let addr = addr.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    let c: BaseConsumer = ClientConfig::new()
                        .set("bootstrap.servers", &addr)
                        .create()
                        .map_err(|e| e.to_string())?;
                    c.fetch_metadata(None, Duration::from_secs(2))
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| e.to_string())?
            }
        })
        .await;
        b
    }

    fn create_topic(&self, name: &str, partitions: u32) {
        self.create_topic_with(name, partitions, &[]);
    }

    /// A topic with settings (`--config key=value`).
    fn create_topic_with(&self, name: &str, partitions: u32, config: &[&str]) {
        let mut cmd = Command::new(&self.tansu);
        cmd.args([
            "topic",
            "create",
            name,
            "--partitions",
            &partitions.to_string(),
        ])
        .args(["--broker", &format!("tcp://{}", self.addr)]);
        for c in config {
            cmd.args(["--config", c]);
        }
        let out = cmd.output().expect("run tansu topic create");
        assert!(
            out.status.success(),
            "tansu topic create {name}: {}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn producer(&self) -> FutureProducer {
        ClientConfig::new()
            .set("bootstrap.servers", &self.addr)
            .set("acks", "all")
            .create()
            .expect("producer")
    }

    /// The group's committed offset per partition (`None`: nothing committed).
    async fn committed(&self, group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
        let (addr, group, topic) = (self.addr.clone(), group.to_string(), topic.to_string());
        tokio::task::spawn_blocking(move || {
            let c: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &addr)
                .set("group.id", &group)
                .create()
                .expect("consumer");
            let mut tpl = TopicPartitionList::new();
            for p in 0..partitions {
                tpl.add_partition(&topic, p);
            }
            let got = c
                .committed_offsets(tpl, Duration::from_secs(10))
                .expect("committed offsets");
            (0..partitions)
                .map(
                    |p| match got.find_partition(&topic, p).map(|e| e.offset()) {
                        Some(Offset::Offset(o)) => Some(o),
                        _ => None,
                    },
                )
                .collect()
        })
        .await
        .expect("join")
    }

    /// High watermark per partition.
    async fn high_watermarks(&self, topic: &str, partitions: i32) -> Vec<i64> {
        let (addr, topic) = (self.addr.clone(), topic.to_string());
        tokio::task::spawn_blocking(move || {
            let c: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &addr)
                .create()
                .expect("consumer");
            (0..partitions)
                .map(|p| {
                    c.fetch_watermarks(&topic, p, Duration::from_secs(10))
                        .expect("watermarks")
                        .1
                })
                .collect()
        })
        .await
        .expect("join")
    }

    /// Reads every message of a topic from the start (a fresh group), until
    /// `want` messages arrived.
    async fn read(&self, topic: &str, want: usize, procs: &[&Proc]) -> Vec<OwnedMessage> {
        let (addr, topic) = (self.addr.clone(), topic.to_string());
        let c: rdkafka::consumer::StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &addr)
            .set("group.id", format!("reader-{}", free_port()))
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("consumer");
        c.subscribe(&[&topic]).expect("subscribe");
        let mut got = Vec::new();
        let start = Instant::now();
        while got.len() < want {
            if start.elapsed() > DEADLINE {
                panic!(
                    "read only {} of {want} messages from {topic}\n{}",
                    got.len(),
                    logs(procs)
                );
            }
            if let Ok(Ok(m)) = tokio::time::timeout(POLL, c.recv()).await {
                got.push(m.detach());
            }
        }
        got
    }
}

async fn produce(p: &FutureProducer, topic: &str, key: &str, payload: &str) {
    produce_with(p, topic, key, Some(payload), OwnedHeaders::new()).await
}

async fn produce_with(
    p: &FutureProducer,
    topic: &str,
    key: &str,
    payload: Option<&str>,
    headers: OwnedHeaders,
) {
    produce_to(p, topic, None, key, payload, headers).await
}

/// Produces to a given partition (`None`: the key decides).
async fn produce_to(
    p: &FutureProducer,
    topic: &str,
    partition: Option<i32>,
    key: &str,
    payload: Option<&str>,
    headers: OwnedHeaders,
) {
    let mut record = FutureRecord::<str, str>::to(topic)
        .key(key)
        .headers(headers);
    if let Some(partition) = partition {
        record = record.partition(partition);
    }
    if let Some(payload) = payload {
        record = record.payload(payload);
    }
    p.send(record, Duration::from_secs(30))
        .await
        .unwrap_or_else(|(e, _)| panic!("produce to {topic}: {e}"));
}

// ---------------------------------------------------------------------------
// incidentd
// ---------------------------------------------------------------------------

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

fn rules() -> RuleSet {
    RuleSet::load_dir(&rules_dir()).expect("shipped rules load")
}

/// The message key incidentd's forwarder would use: the correlation group key.
fn group_key(rules: &RuleSet, labels: &Value) -> String {
    let labels: Labels = serde_json::from_value(labels.clone()).expect("labels");
    rules.correlate_rule(&labels).group_key(&labels)
}

struct Incidentd {
    proc: Proc,
    base: String,
}

/// Settings for the `kafka` section of the daemon's config file.
struct KafkaSettings<'a> {
    topics: &'a [&'a str],
    group: &'a str,
    commit_interval: &'a str,
    dead_letter_topic: Option<&'a str>,
    /// Rules directory instead of the shipped `rules/`.
    rules: Option<&'a Path>,
    /// `kafka.changelog` on, with this `kafka.instance`.
    changelog_instance: Option<u32>,
}

impl<'a> KafkaSettings<'a> {
    /// With the changelog hand-over on, as instance `instance`.
    fn with_changelog(topics: &'a [&'a str], group: &'a str, instance: u32) -> Self {
        KafkaSettings {
            changelog_instance: Some(instance),
            ..KafkaSettings::new(topics, group)
        }
    }

    fn new(topic: &'a [&'a str], group: &'a str) -> Self {
        KafkaSettings {
            topics: topic,
            group,
            commit_interval: "200ms",
            dead_letter_topic: None,
            rules: None,
            changelog_instance: None,
        }
    }
}

impl Incidentd {
    /// `incidentd serve` with the Kafka flags; the config file carries the
    /// timing knobs (short session timeout so a killed member's partitions
    /// move on quickly). `kafka: None` runs without Kafka.
    async fn start(
        name: &str,
        data: &Path,
        dir: &Path,
        broker: &Broker,
        kafka: Option<&KafkaSettings<'_>>,
    ) -> Incidentd {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_incidentd"));
        cmd.arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(data)
            .arg("--rules")
            .arg(
                kafka
                    .and_then(|k| k.rules)
                    .map_or_else(rules_dir, Path::to_path_buf),
            )
            .current_dir(dir)
            .env("INCIDENTD_LOG", "info,librdkafka=warn")
            .env("NO_COLOR", "1");
        for var in [
            "INCIDENTD_CONFIG",
            "INCIDENTD_KAFKA_BROKERS",
            "INCIDENTD_KAFKA_TOPIC",
            "INCIDENTD_KAFKA_GROUP",
        ] {
            cmd.env_remove(var);
        }
        if let Some(k) = kafka {
            let config = dir.join(format!("{name}.yaml"));
            let mut yaml = format!(
                "pipeline:\n  tick_interval: 100ms\nkafka:\n  commit_interval: {}\n  lag_interval: 200ms\n  options:\n    session.timeout.ms: \"6000\"\n    heartbeat.interval.ms: \"500\"\n",
                k.commit_interval
            );
            if let Some(d) = k.dead_letter_topic {
                let _ = writeln!(yaml, "  dead_letter_topic: {d}");
            }
            if let Some(i) = k.changelog_instance {
                let _ = writeln!(yaml, "  changelog: true\n  instance: {i}");
            }
            std::fs::write(&config, yaml).expect("write config");
            cmd.arg("--config").arg(&config);
            cmd.args(["--kafka-brokers", &broker.addr]);
            for t in k.topics {
                cmd.args(["--kafka-topic", t]);
            }
            cmd.args(["--kafka-group", k.group]);
        }
        let d = Incidentd {
            proc: Proc::spawn(name, cmd, dir),
            base: format!("http://127.0.0.1:{port}"),
        };
        let url = format!("{}/-/ready", d.base);
        wait_for(
            &format!("{name} /-/ready"),
            &[&d.proc, &broker.proc],
            || {
                let url = url.clone();
                async move {
                    match client().get(&url).send().await {
                        Ok(r) if r.status().is_success() => Ok(()),
                        Ok(r) => Err(format!("HTTP {}", r.status())),
                        Err(e) => Err(e.to_string()),
                    }
                }
            },
        )
        .await;
        d
    }

    async fn metrics(&self) -> Result<Metrics, String> {
        let text = client()
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .text()
            .await
            .map_err(|e| e.to_string())?;
        Ok(Metrics(text))
    }

    /// One incident with its alerts and timeline.
    async fn incident(&self, id: &str) -> Result<Value, String> {
        client()
            .get(format!("{}/api/v1/incidents/{id}", self.base))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())
    }

    /// Acknowledges an incident as `by`; panics unless it succeeds.
    async fn ack(&self, id: &str, by: &str) {
        let r = client()
            .post(format!("{}/api/v1/incidents/{id}/ack", self.base))
            .json(&json!({ "by": by }))
            .send()
            .await
            .expect("ack");
        assert!(r.status().is_success(), "ack {id}: {}", r.status());
    }

    async fn incidents(&self) -> Result<Vec<Value>, String> {
        let v: Value = client()
            .get(format!("{}/api/v1/incidents?limit=1000", self.base))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        v.as_array()
            .cloned()
            .ok_or_else(|| format!("not an array: {v}"))
    }
}

/// A /metrics scrape.
struct Metrics(String);

impl Metrics {
    /// Every sample of `name` with its labels.
    fn samples(&self, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let mut out = Vec::new();
        for line in self.0.lines() {
            let Some(rest) = line.strip_prefix(name) else {
                continue;
            };
            let (labels, value) = match rest.strip_prefix('{') {
                Some(r) => match r.split_once("} ") {
                    Some((l, v)) => (l, v),
                    None => continue,
                },
                None => match rest.strip_prefix(' ') {
                    Some(v) => ("", v),
                    None => continue,
                },
            };
            let mut map = BTreeMap::new();
            for pair in labels.split(',').filter(|p| !p.is_empty()) {
                if let Some((k, v)) = pair.split_once('=') {
                    map.insert(k.to_string(), v.trim_matches('"').to_string());
                }
            }
            if let Ok(v) = value.trim().parse() {
                out.push((map, v));
            }
        }
        out
    }

    /// The sample of `name` whose labels include `labels` (0 when absent).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples(name)
            .into_iter()
            .filter(|(l, _)| {
                labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(v))
            })
            .map(|(_, v)| v)
            .sum()
    }

    fn kafka_received(&self) -> f64 {
        self.get("incidentd_alerts_received_total", &[("source", "kafka")])
    }

    /// Lag per partition of `topic`, for the partitions this member owns.
    fn lag(&self, topic: &str) -> BTreeMap<i32, f64> {
        self.samples("incidentd_kafka_consumer_lag")
            .into_iter()
            .filter(|(l, _)| l.get("topic").map(String::as_str) == Some(topic))
            .filter_map(|(l, v)| Some((l.get("partition")?.parse().ok()?, v)))
            .collect()
    }
}

/// Waits until the daemon has taken `received` alerts from Kafka and owns
/// `partitions` of `topic`, all caught up (lag 0).
async fn wait_caught_up(
    d: &Incidentd,
    topic: &str,
    received: f64,
    partitions: Option<&BTreeSet<i32>>,
    procs: &[&Proc],
) -> Metrics {
    wait_for(
        &format!("{} to consume {received} alerts and catch up", d.proc.name),
        procs,
        || async {
            let m = d.metrics().await?;
            let lag = m.lag(topic);
            let owned: BTreeSet<i32> = lag.keys().copied().collect();
            let ok = m.kafka_received() == received
                && !lag.is_empty()
                && lag.values().all(|v| *v == 0.0)
                && partitions.is_none_or(|p| *p == owned);
            if ok {
                Ok(m)
            } else {
                Err(format!("received {}, lag {lag:?}", m.kafka_received()))
            }
        },
    )
    .await
}

fn disk_alert(host: usize, mount: &str) -> Value {
    json!({
        "labels": {
            "alertname": "NodeFilesystemAlmostOutOfSpace",
            "instance": format!("host{host}:9100"),
            "mountpoint": mount,
            "severity": "warning",
            "job": "node"
        },
        "annotations": {"summary": format!("{mount} on host{host} almost full")},
        "status": "firing"
    })
}

/// The kinds of an incident's timeline entries, in order.
fn timeline_kinds(full: &Value) -> Vec<String> {
    full["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|e| e["kind"].as_str().map(str::to_string))
        .collect()
}

/// What identifies an incident's outcome across daemons.
fn summary(i: &Value) -> String {
    format!(
        "{} alerts={} firing={} status={} priority={} category={}",
        i["group_key"],
        i["alert_count"],
        i["firing_count"],
        i["status"],
        i["priority"],
        i["category"]
    )
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// Messages in every detected format, produced by a separate client, become
/// incidents; offsets are committed while running and on SIGTERM, so a
/// restart replays nothing.
#[tokio::test(flavor = "multi_thread")]
#[allow(clippy::await_holding_lock)] // see serial()
async fn produced_alerts_become_incidents_and_offsets_are_committed() {
    let _serial = serial();
    let tmp = TempDir::new().expect("tempdir");
    let broker = Broker::start(tmp.path()).await;
    broker.create_topic("alerts", 3);
    let rules = rules();
    let p = broker.producer();

    // Six hosts, two filesystems each: one incident per host.
    let mut sent = 0.0;
    for host in 0..6 {
        let (a, b) = (disk_alert(host, "/"), disk_alert(host, "/var"));
        let key = group_key(&rules, &a["labels"]);
        match host % 3 {
            0 => {
                // generic, one alert object per message
                produce(&p, "alerts", &key, &a.to_string()).await;
                produce(&p, "alerts", &key, &b.to_string()).await;
            }
            1 => {
                let webhook = json!({"version": "4", "status": "firing", "receiver": "kafka",
                    "groupLabels": {}, "commonLabels": {}, "alerts": [a, b]});
                produce(&p, "alerts", &key, &webhook.to_string()).await;
            }
            _ => {
                // Alertmanager v2 array (no status field)
                let strip = |mut v: Value| {
                    v.as_object_mut().map(|o| o.remove("status"));
                    v
                };
                produce(&p, "alerts", &key, &json!([strip(a), strip(b)]).to_string()).await;
            }
        }
        sent += 2.0;
    }
    // A PagerDuty event on the same topic.
    produce(
        &p,
        "alerts",
        "R1",
        &json!({"routing_key": "R1", "event_action": "trigger",
        "dedup_key": "db-repl", "payload": {"summary": "Replication broken on db9",
        "source": "db9", "severity": "critical"}})
        .to_string(),
    )
    .await;
    sent += 1.0;

    let data = tmp.path().join("data");
    let settings = KafkaSettings::new(&["alerts"], "g1");
    let d = Incidentd::start("incidentd", &data, tmp.path(), &broker, Some(&settings)).await;
    let procs = [&d.proc, &broker.proc];
    let all: BTreeSet<i32> = (0..3).collect();
    let m = wait_caught_up(&d, "alerts", sent, Some(&all), &procs).await;
    let incidents = d.incidents().await.expect("incidents");
    assert_eq!(incidents.len(), 7, "{incidents:#?}");
    for i in &incidents {
        let want = if i["labels"]["alertname"] == "NodeFilesystemAlmostOutOfSpace" {
            2
        } else {
            1
        };
        assert_eq!(i["alert_count"], want, "{i}");
    }
    assert_eq!(m.get("incidentd_alerts_deduplicated_total", &[]), 0.0);

    // Committed while running (commit_interval 200ms) ...
    let hw = broker.high_watermarks("alerts", 3).await;
    wait_for(
        "offsets committed up to the high watermarks",
        &procs,
        || async {
            let c = broker.committed("g1", "alerts", 3).await;
            let want: Vec<Option<i64>> = hw.iter().map(|h| Some(*h)).collect();
            if c == want {
                Ok(())
            } else {
                Err(format!("committed {c:?}, high watermarks {hw:?}"))
            }
        },
    )
    .await;
    // ... and a graceful stop leaves nothing to replay.
    d.proc.signal("TERM");
    assert!(
        d.proc.wait_exit(DEADLINE).await.success(),
        "{}",
        d.proc.log_tail()
    );

    let extra = disk_alert(7, "/");
    produce(
        &p,
        "alerts",
        &group_key(&rules, &extra["labels"]),
        &extra.to_string(),
    )
    .await;
    let d = Incidentd::start("incidentd-2", &data, tmp.path(), &broker, Some(&settings)).await;
    let procs = [&d.proc, &broker.proc];
    let m = wait_caught_up(&d, "alerts", 1.0, Some(&all), &procs).await;
    assert_eq!(m.get("incidentd_alerts_deduplicated_total", &[]), 0.0);
    assert_eq!(d.incidents().await.expect("incidents").len(), 8);
}

/// kill -9 after the alerts are durable but before their offsets are
/// committed: the restart gets every message again, knows from the offsets
/// stored with the alerts that they are already stored and skips them (no
/// alert counted twice, no incident created or changed), and afterwards the
/// offsets are committed.
#[tokio::test(flavor = "multi_thread")]
#[allow(clippy::await_holding_lock)] // see serial()
async fn kill_between_store_and_commit_replays_into_dedup() {
    let _serial = serial();
    let tmp = TempDir::new().expect("tempdir");
    let broker = Broker::start(tmp.path()).await;
    broker.create_topic("alerts", 2);
    let rules = rules();
    let p = broker.producer();
    for host in 0..4 {
        for mount in ["/", "/var"] {
            let a = disk_alert(host, mount);
            produce(
                &p,
                "alerts",
                &group_key(&rules, &a["labels"]),
                &a.to_string(),
            )
            .await;
        }
    }
    let data = tmp.path().join("data");
    let mut settings = KafkaSettings::new(&["alerts"], "g2");
    settings.commit_interval = "1h"; // nothing is committed before the kill
    let d = Incidentd::start("incidentd", &data, tmp.path(), &broker, Some(&settings)).await;
    let procs = [&d.proc, &broker.proc];
    wait_caught_up(&d, "alerts", 8.0, None, &procs).await;
    let before = d.incidents().await.expect("incidents");
    assert_eq!(before.len(), 4, "{before:#?}");
    assert_eq!(
        broker.committed("g2", "alerts", 2).await,
        vec![None, None],
        "the kill must come between store and commit"
    );
    d.proc.signal("KILL");
    d.proc.wait_exit(DEADLINE).await;

    let d = Incidentd::start("incidentd-2", &data, tmp.path(), &broker, Some(&settings)).await;
    let procs = [&d.proc, &broker.proc];
    let all: BTreeSet<i32> = (0..2).collect();
    let m = wait_caught_up(&d, "alerts", 0.0, Some(&all), &procs).await;
    assert_eq!(
        m.kafka_received(),
        0.0,
        "a redelivered message counted again"
    );
    assert_eq!(m.get("incidentd_alerts_deduplicated_total", &[]), 0.0);
    assert_eq!(m.get("incidentd_incidents_created_total", &[]), 0.0);
    assert!(
        d.proc
            .log_tail()
            .contains("skipped redelivered kafka messages whose alerts are already stored"),
        "{}",
        d.proc.log_tail()
    );
    let after = d.incidents().await.expect("incidents");
    let ids = |v: &[Value]| -> Vec<String> {
        let mut s: Vec<String> = v
            .iter()
            .map(|i| format!("{} {}", i["id"], summary(i)))
            .collect();
        s.sort();
        s
    };
    assert_eq!(ids(&after), ids(&before), "replay changed the incidents");

    d.proc.signal("TERM");
    assert!(
        d.proc.wait_exit(DEADLINE).await.success(),
        "{}",
        d.proc.log_tail()
    );
    let hw = broker.high_watermarks("alerts", 2).await;
    assert_eq!(
        broker.committed("g2", "alerts", 2).await,
        hw.iter().map(|h| Some(*h)).collect::<Vec<_>>(),
        "a graceful stop commits what is durable"
    );
}

/// A message that does not parse goes to the dead-letter topic with the
/// error in a header and its key, payload and headers intact; the messages
/// after it on the same partition still become incidents.
#[tokio::test(flavor = "multi_thread")]
#[allow(clippy::await_holding_lock)] // see serial()
async fn poison_message_goes_to_the_dead_letter_topic_and_the_partition_flows() {
    let _serial = serial();
    let tmp = TempDir::new().expect("tempdir");
    let broker = Broker::start(tmp.path()).await;
    broker.create_topic("alerts", 1);
    broker.create_topic("alerts-dlq", 1);
    let p = broker.producer();
    produce(&p, "alerts", "a", &disk_alert(1, "/").to_string()).await;
    let poison = r#"{"labels": {"alertname": 42}}"#;
    let headers = OwnedHeaders::new().insert(Header {
        key: "trace-id",
        value: Some("7f3a"),
    });
    produce_with(&p, "alerts", "bad-key", Some(poison), headers).await;
    produce(&p, "alerts", "b", &disk_alert(2, "/").to_string()).await;

    let mut settings = KafkaSettings::new(&["alerts"], "g3");
    settings.dead_letter_topic = Some("alerts-dlq");
    let d = Incidentd::start(
        "incidentd",
        &tmp.path().join("data"),
        tmp.path(),
        &broker,
        Some(&settings),
    )
    .await;
    let procs = [&d.proc, &broker.proc];
    let m = wait_caught_up(&d, "alerts", 2.0, None, &procs).await;
    assert_eq!(
        m.get(
            "incidentd_kafka_messages_rejected_total",
            &[("topic", "alerts"), ("reason", "invalid")]
        ),
        1.0
    );
    assert_eq!(d.incidents().await.expect("incidents").len(), 2);

    let dead = broker.read("alerts-dlq", 1, &procs).await;
    assert_eq!(dead.len(), 1);
    let m = &dead[0];
    assert_eq!(m.key(), Some(&b"bad-key"[..]));
    assert_eq!(m.payload(), Some(poison.as_bytes()));
    let headers: BTreeMap<String, String> = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    (
                        h.key.to_string(),
                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let error = headers
        .get("incidentd-error")
        .map(String::as_str)
        .unwrap_or("");
    assert!(
        error.starts_with("[0].labels.alertname: invalid type")
            || error.starts_with("labels.alertname"),
        "{headers:?}"
    );
    assert_eq!(headers.get("trace-id").map(String::as_str), Some("7f3a"));
    assert_eq!(
        headers.get("incidentd-source-topic").map(String::as_str),
        Some("alerts")
    );
    assert_eq!(
        headers.get("incidentd-source-offset").map(String::as_str),
        Some("1")
    );
    wait_for("the poison message's offset committed", &procs, || async {
        match broker.committed("g3", "alerts", 1).await[0] {
            Some(3) => Ok(()),
            c => Err(format!("committed {c:?}")),
        }
    })
    .await;
}

/// The scale-out path: HTTP into `incidentd forward`, which keys each alert
/// group onto a partition; two daemons in one group split the partitions
/// and together hold exactly the incidents one daemon (its own group) holds.
#[tokio::test(flavor = "multi_thread")]
#[allow(clippy::await_holding_lock)] // see serial()
async fn two_daemons_split_partitions_and_match_one_daemon() {
    let _serial = serial();
    let tmp = TempDir::new().expect("tempdir");
    let broker = Broker::start(tmp.path()).await;
    broker.create_topic("alerts", 4);

    let pair = KafkaSettings::new(&["alerts"], "pair");
    let solo = KafkaSettings::new(&["alerts"], "solo");
    let a = Incidentd::start(
        "incidentd-a",
        &tmp.path().join("a"),
        tmp.path(),
        &broker,
        Some(&pair),
    )
    .await;
    let b = Incidentd::start(
        "incidentd-b",
        &tmp.path().join("b"),
        tmp.path(),
        &broker,
        Some(&pair),
    )
    .await;
    let s = Incidentd::start(
        "incidentd-solo",
        &tmp.path().join("s"),
        tmp.path(),
        &broker,
        Some(&solo),
    )
    .await;
    let procs = [&a.proc, &b.proc, &s.proc, &broker.proc];
    wait_for("a and b to split the 4 partitions", &procs, || async {
        let (pa, pb) = (
            a.metrics().await?.lag("alerts"),
            b.metrics().await?.lag("alerts"),
        );
        let (ka, kb): (BTreeSet<i32>, BTreeSet<i32>) =
            (pa.keys().copied().collect(), pb.keys().copied().collect());
        let union: BTreeSet<i32> = ka.union(&kb).copied().collect();
        if !ka.is_empty() && !kb.is_empty() && ka.is_disjoint(&kb) && union.len() == 4 {
            Ok(())
        } else {
            Err(format!("a owns {ka:?}, b owns {kb:?}"))
        }
    })
    .await;

    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_incidentd"));
    cmd.arg("forward")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--rules")
        .arg(rules_dir())
        .args(["--kafka-brokers", &broker.addr, "--kafka-topic", "alerts"])
        .env_remove("INCIDENTD_CONFIG")
        .env("INCIDENTD_LOG", "info")
        .env("NO_COLOR", "1");
    let fwd = Proc::spawn("forward", cmd, tmp.path());
    let base = format!("http://127.0.0.1:{port}");
    let procs = [&a.proc, &b.proc, &s.proc, &broker.proc, &fwd];
    wait_for("forward /-/ready", &procs, || async {
        client()
            .get(format!("{base}/-/ready"))
            .send()
            .await
            .map_err(|e| e.to_string())
            .map(|_| ())
    })
    .await;

    // 12 hosts with two filesystems, pods in 3 namespaces, in a few requests
    // that each mix groups, plus a PagerDuty trigger/resolve pair.
    let mut total = 0.0;
    for chunk in 0..3 {
        let mut alerts = Vec::new();
        for host in (chunk * 4)..(chunk * 4 + 4) {
            alerts.push(disk_alert(host, "/"));
            alerts.push(disk_alert(host, "/var"));
        }
        for ns in ["shop", "search", "billing"] {
            alerts.push(
                json!({"labels": {"alertname": "KubePodCrashLooping", "namespace": ns,
                "pod": format!("{ns}-{chunk}"), "severity": "warning"}, "status": "firing"}),
            );
        }
        total += alerts.len() as f64;
        let r = client()
            .post(format!("{base}/api/v1/webhook/alertmanager"))
            .json(&json!({"version": "4", "status": "firing", "alerts": alerts}))
            .send()
            .await
            .expect("POST to forward");
        let status = r.status();
        let body: Value = r.json().await.expect("json");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["accepted"], 11);
        assert_eq!(
            body["messages"], 7,
            "4 host groups + 3 namespace groups: {body}"
        );
    }
    for action in ["trigger", "resolve"] {
        let r = client()
            .post(format!("{base}/v2/enqueue"))
            .json(&json!({"routing_key": "R1", "event_action": action, "dedup_key": "db-repl",
                "payload": {"summary": "Replication broken", "source": "db9", "severity": "critical"}}))
            .send()
            .await
            .expect("POST to forward");
        assert_eq!(r.status(), 202);
        total += 1.0;
    }

    wait_for(
        "every alert consumed by the pair and by solo",
        &procs,
        || async {
            let (ma, mb, ms) = (a.metrics().await?, b.metrics().await?, s.metrics().await?);
            let pair = ma.kafka_received() + mb.kafka_received();
            let lagging = [&ma, &mb, &ms]
                .iter()
                .any(|m| m.lag("alerts").values().any(|v| *v != 0.0));
            if pair == total && ms.kafka_received() == total && !lagging {
                Ok(())
            } else {
                Err(format!(
                    "pair {pair}, solo {}, want {total}",
                    ms.kafka_received()
                ))
            }
        },
    )
    .await;
    let (ia, ib, is) = (
        a.incidents().await.expect("a"),
        b.incidents().await.expect("b"),
        s.incidents().await.expect("solo"),
    );
    assert!(
        !ia.is_empty() && !ib.is_empty(),
        "both members hold incidents: a {} b {}",
        ia.len(),
        ib.len()
    );
    let keys = |v: &[Value]| -> BTreeSet<String> {
        v.iter().map(|i| i["group_key"].to_string()).collect()
    };
    assert!(
        keys(&ia).is_disjoint(&keys(&ib)),
        "a group is split between members"
    );
    let mut together: Vec<String> = ia.iter().chain(&ib).map(summary).collect();
    let mut alone: Vec<String> = is.iter().map(summary).collect();
    together.sort();
    alone.sort();
    assert_eq!(
        alone.len(),
        16,
        "12 hosts + 3 namespaces + 1 PagerDuty: {alone:#?}"
    );
    assert_eq!(together, alone);
}

/// Hand-over without shared state: the new owner of a partition ignores a
/// resolve for an alert it never saw, and opens its own incident for what
/// still fires in that group; the old owner's copy expires at its alerts'
/// endsAt, as any alert that stops being refreshed does.
#[tokio::test(flavor = "multi_thread")]
#[allow(clippy::await_holding_lock)] // see serial()
async fn new_owner_of_a_partition_starts_fresh_and_the_old_copy_expires() {
    let _serial = serial();
    let tmp = TempDir::new().expect("tempdir");
    let broker = Broker::start(tmp.path()).await;
    broker.create_topic("alerts", 1);
    let rules = rules();
    let p = broker.producer();
    let settings = KafkaSettings::new(&["alerts"], "g5");

    let ends = chrono::Utc::now() + chrono::Duration::seconds(20);
    let mut x = disk_alert(1, "/");
    x["endsAt"] = json!(ends.to_rfc3339());
    let key = group_key(&rules, &x["labels"]);
    produce(&p, "alerts", &key, &x.to_string()).await;
    let a_data = tmp.path().join("a");
    let a = Incidentd::start("incidentd-a", &a_data, tmp.path(), &broker, Some(&settings)).await;
    wait_caught_up(&a, "alerts", 1.0, None, &[&a.proc, &broker.proc]).await;
    let old = a.incidents().await.expect("incidents");
    assert_eq!(old.len(), 1);
    a.proc.signal("TERM");
    assert!(a.proc.wait_exit(DEADLINE).await.success());

    // b takes the partition over.
    let b = Incidentd::start(
        "incidentd-b",
        &tmp.path().join("b"),
        tmp.path(),
        &broker,
        Some(&settings),
    )
    .await;
    let procs = [&b.proc, &broker.proc];
    let mut resolved = disk_alert(1, "/");
    resolved["status"] = json!("resolved");
    produce(&p, "alerts", &key, &resolved.to_string()).await;
    wait_caught_up(&b, "alerts", 1.0, None, &procs).await;
    assert!(
        b.incidents().await.expect("incidents").is_empty(),
        "a resolve never opens an incident"
    );
    let y = disk_alert(1, "/var");
    produce(&p, "alerts", &key, &y.to_string()).await;
    wait_caught_up(&b, "alerts", 2.0, None, &procs).await;
    let fresh = b.incidents().await.expect("incidents");
    assert_eq!(fresh.len(), 1);
    assert_eq!(fresh[0]["group_key"], old[0]["group_key"]);
    assert_eq!(fresh[0]["alert_count"], 1, "only what b saw: {}", fresh[0]);

    // a's copy, without Kafka, resolves once x's endsAt passes.
    let a = Incidentd::start("incidentd-a-alone", &a_data, tmp.path(), &broker, None).await;
    let id = old[0]["id"].as_str().expect("id").to_string();
    wait_for("the old owner's incident to expire", &[&a.proc], || async {
        let list = a.incidents().await?;
        let i = list.iter().find(|i| i["id"] == id.as_str()).ok_or("gone")?;
        if i["firing_count"] == 0 {
            Ok(())
        } else {
            Err(i.to_string())
        }
    })
    .await;
}

/// Item 5 with the changelog: when a partition moves, its live incidents
/// move with it (same id, acknowledgement, alerts and timeline), the old
/// owner lets them go, new alerts of the group join the moved incident, and
/// moving back brings the newer state home.
#[tokio::test(flavor = "multi_thread")]
#[allow(clippy::await_holding_lock)] // see serial()
async fn changelog_hands_incidents_over_when_partitions_move() {
    let _serial = serial();
    let tmp = TempDir::new().expect("tempdir");
    let broker = Broker::start(tmp.path()).await;
    broker.create_topic("alerts", 2);
    broker.create_topic_with("alerts-changelog", 2, &["cleanup.policy=compact"]);
    let p = broker.producer();
    let sa = KafkaSettings::with_changelog(&["alerts"], "handover", 1);
    let sb = KafkaSettings::with_changelog(&["alerts"], "handover", 2);

    let a = Incidentd::start(
        "incidentd-a",
        &tmp.path().join("a"),
        tmp.path(),
        &broker,
        Some(&sa),
    )
    .await;
    // Host 0's disk alerts on partition 0, host 1's on partition 1.
    for part in 0..2 {
        let x = disk_alert(part, "/");
        produce_to(
            &p,
            "alerts",
            Some(part as i32),
            "k",
            Some(&x.to_string()),
            OwnedHeaders::new(),
        )
        .await;
    }
    let all: BTreeSet<i32> = [0, 1].into();
    wait_caught_up(&a, "alerts", 2.0, Some(&all), &[&a.proc, &broker.proc]).await;
    let before = a.incidents().await.expect("incidents");
    assert_eq!(before.len(), 2, "{before:#?}");
    for i in &before {
        let id = i["id"].as_str().expect("id");
        assert!(id.ends_with("01"), "ids of instance 1 end in 01: {id}");
    }
    let by_host = |list: &[Value], host: usize| -> Option<Value> {
        list.iter()
            .find(|i| {
                i["group_key"]
                    .as_str()
                    .is_some_and(|g| g.contains(&format!("host{host}:")))
            })
            .cloned()
    };
    for host in 0..2 {
        let id = by_host(&before, host).expect("incident per host")["id"]
            .as_str()
            .expect("id")
            .to_string();
        a.ack(&id, &format!("alice{host}")).await;
    }

    // b joins: one partition moves to it, with its incident.
    let b = Incidentd::start(
        "incidentd-b",
        &tmp.path().join("b"),
        tmp.path(),
        &broker,
        Some(&sb),
    )
    .await;
    let procs = [&a.proc, &b.proc, &broker.proc];
    let (moved, moved_host) =
        wait_for("b to take a partition and its incident", &procs, || async {
            let owned: Vec<i32> = b.metrics().await?.lag("alerts").keys().copied().collect();
            let kept: Vec<i32> = a.metrics().await?.lag("alerts").keys().copied().collect();
            let (ib, ia) = (b.incidents().await?, a.incidents().await?);
            match (owned.as_slice(), kept.as_slice()) {
                ([p], [_]) if ib.len() == 1 && ia.len() == 1 => Ok((ib[0].clone(), *p as usize)),
                _ => Err(format!(
                    "b owns {owned:?} with {} incidents, a owns {kept:?} with {}",
                    ib.len(),
                    ia.len()
                )),
            }
        })
        .await;
    let original = by_host(&before, moved_host).expect("moved incident existed on a");
    assert_eq!(moved["id"], original["id"], "same id after the move");
    assert_eq!(moved["group_key"], original["group_key"]);
    assert_eq!(moved["status"], "acknowledged");
    assert_eq!(
        moved["acknowledged_by"],
        format!("alice{moved_host}").as_str()
    );
    assert_eq!(moved["alert_count"], 1);
    let id = moved["id"].as_str().expect("id").to_string();
    let full = b.incident(&id).await.expect("incident");
    let kinds = timeline_kinds(&full);
    assert!(
        kinds.iter().any(|k| k == "created") && kinds.iter().any(|k| k == "acknowledged"),
        "timeline moved too: {kinds:?}\n{}",
        logs(&procs)
    );
    assert_eq!(full["alerts"][0]["labels"]["mountpoint"], "/");
    let kept = a.incidents().await.expect("a");
    assert!(
        kept.iter().all(|i| i["id"] != id.as_str()),
        "a let the moved incident go: {kept:#?}"
    );
    let (ma, mb) = (a.metrics().await.expect("a"), b.metrics().await.expect("b"));
    assert_eq!(
        ma.get(
            "incidentd_kafka_incidents_handed_over_total",
            &[("direction", "out")]
        ),
        1.0
    );
    assert_eq!(
        mb.get(
            "incidentd_kafka_incidents_handed_over_total",
            &[("direction", "in")]
        ),
        1.0
    );
    assert_eq!(
        mb.get(
            "incidentd_kafka_changelog_records_total",
            &[("outcome", "failed")]
        ),
        0.0
    );

    // A new alert of the group joins the moved incident at b.
    let y = disk_alert(moved_host, "/var");
    produce_to(
        &p,
        "alerts",
        Some(moved_host as i32),
        "k",
        Some(&y.to_string()),
        OwnedHeaders::new(),
    )
    .await;
    wait_for(
        "the new alert to join the moved incident",
        &procs,
        || async {
            let ib = b.incidents().await?;
            match ib.as_slice() {
                [i] if i["id"] == id.as_str() && i["alert_count"] == 2 => Ok(()),
                _ => Err(format!("{ib:#?}")),
            }
        },
    )
    .await;

    // b leaves: the partition and the newer state come back to a.
    b.proc.signal("TERM");
    assert!(b.proc.wait_exit(DEADLINE).await.success());
    let procs = [&a.proc, &broker.proc];
    wait_for(
        "a to take the incident back with b's changes",
        &procs,
        || async {
            let ia = a.incidents().await?;
            let back = ia.iter().find(|i| i["id"] == id.as_str());
            match back {
                Some(i)
                    if ia.len() == 2 && i["alert_count"] == 2 && i["status"] == "acknowledged" =>
                {
                    Ok(())
                }
                _ => Err(format!("{ia:#?}")),
            }
        },
    )
    .await;
}

/// Item 5, crash: an instance killed while owning an incident comes back
/// with its old copy; when the partition returns, the newer state from the
/// changelog (written by the instance that took over) replaces it.
#[tokio::test(flavor = "multi_thread")]
#[allow(clippy::await_holding_lock)] // see serial()
async fn changelog_state_replaces_a_stale_copy_after_a_crash() {
    let _serial = serial();
    let tmp = TempDir::new().expect("tempdir");
    let broker = Broker::start(tmp.path()).await;
    broker.create_topic("alerts", 1);
    broker.create_topic_with("alerts-changelog", 1, &["cleanup.policy=compact"]);
    let p = broker.producer();
    let sa = KafkaSettings::with_changelog(&["alerts"], "crash", 1);
    let sb = KafkaSettings::with_changelog(&["alerts"], "crash", 2);
    let a_data = tmp.path().join("a");

    let a = Incidentd::start("incidentd-a", &a_data, tmp.path(), &broker, Some(&sa)).await;
    produce(&p, "alerts", "k", &disk_alert(0, "/").to_string()).await;
    wait_caught_up(&a, "alerts", 1.0, None, &[&a.proc, &broker.proc]).await;
    // Incident, alert and timeline entry are in the changelog.
    wait_for(
        "a's changelog records delivered",
        &[&a.proc, &broker.proc],
        || async {
            let m = a.metrics().await?;
            let n = m.get(
                "incidentd_kafka_changelog_records_total",
                &[("outcome", "delivered")],
            );
            if n >= 3.0 {
                Ok(())
            } else {
                Err(format!("{n} delivered"))
            }
        },
    )
    .await;
    let id = a.incidents().await.expect("incidents")[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    a.proc.signal("KILL");
    let _ = a.proc.wait_exit(DEADLINE).await;

    // b takes over once a's session expires, and moves the incident on.
    let b = Incidentd::start(
        "incidentd-b",
        &tmp.path().join("b"),
        tmp.path(),
        &broker,
        Some(&sb),
    )
    .await;
    let procs = [&b.proc, &broker.proc];
    wait_for("b to adopt the incident", &procs, || async {
        let ib = b.incidents().await?;
        match ib.as_slice() {
            [i] if i["id"] == id.as_str() => Ok(()),
            _ => Err(format!("{ib:#?}")),
        }
    })
    .await;
    produce(&p, "alerts", "k", &disk_alert(0, "/var").to_string()).await;
    wait_for("the new alert to join at b", &procs, || async {
        let ib = b.incidents().await?;
        match ib.as_slice() {
            [i] if i["alert_count"] == 2 => Ok(()),
            _ => Err(format!("{ib:#?}")),
        }
    })
    .await;
    b.ack(&id, "bob").await;

    // a restarts with its stale copy (1 alert, open); b leaves.
    let a = Incidentd::start("incidentd-a2", &a_data, tmp.path(), &broker, Some(&sa)).await;
    assert!(
        a.incidents().await.expect("incidents").is_empty(),
        "a's copy is parked (not listed) while b owns the partition"
    );
    let stale = a.incident(&id).await.expect("incident");
    assert_eq!(stale["alert_count"], 1, "a's own copy is the old one");
    b.proc.signal("TERM");
    assert!(b.proc.wait_exit(DEADLINE).await.success());
    let procs = [&a.proc, &broker.proc];
    wait_for(
        "a to replace its stale copy with b's state",
        &procs,
        || async {
            let ia = a.incidents().await?;
            match ia.as_slice() {
                [i] if i["id"] == id.as_str()
                    && i["alert_count"] == 2
                    && i["status"] == "acknowledged"
                    && i["acknowledged_by"] == "bob" =>
                {
                    Ok(())
                }
                _ => Err(format!("{ia:#?}")),
            }
        },
    )
    .await;
    let full = a.incident(&id).await.expect("incident");
    assert_eq!(full["alerts"].as_array().map(Vec::len), Some(2), "{full}");
    let kinds = timeline_kinds(&full);
    assert!(kinds.iter().any(|k| k == "acknowledged"), "{kinds:?}");
    // A plain restart of the only member: its own copy is as new as the
    // changelog's, so it resumes as it is; a new alert of the group and a
    // repeat both join it.
    a.proc.signal("TERM");
    assert!(a.proc.wait_exit(DEADLINE).await.success());
    let a = Incidentd::start("incidentd-a3", &a_data, tmp.path(), &broker, Some(&sa)).await;
    let procs = [&a.proc, &broker.proc];
    produce(&p, "alerts", "k", &disk_alert(0, "/").to_string()).await;
    produce(&p, "alerts", "k", &disk_alert(0, "/home").to_string()).await;
    wait_for("the repeat and the new alert to join", &procs, || async {
        let m = a.metrics().await?;
        let ia = a.incidents().await?;
        match ia.as_slice() {
            [i] if i["id"] == id.as_str()
                && i["alert_count"] == 3
                && i["acknowledged_by"] == "bob"
                && m.kafka_received() == 2.0 =>
            {
                Ok(())
            }
            _ => Err(format!("received {}, {ia:#?}", m.kafka_received())),
        }
    })
    .await;
    let m = a.metrics().await.expect("metrics");
    assert_eq!(
        m.get(
            "incidentd_kafka_incidents_handed_over_total",
            &[("direction", "in")]
        ),
        0.0,
        "its own copy resumed; nothing was adopted"
    );
}

/// Item 6: a `kafka` action produces incident events to a topic, keyed by
/// incident id, with the trigger in a header, using the daemon's brokers.
#[tokio::test(flavor = "multi_thread")]
#[allow(clippy::await_holding_lock)] // see serial()
async fn kafka_action_produces_incident_events_to_a_topic() {
    let _serial = serial();
    let tmp = TempDir::new().expect("tempdir");
    let broker = Broker::start(tmp.path()).await;
    broker.create_topic("alerts", 1);
    broker.create_topic("incident-events", 1);
    let rules = tmp.path().join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    std::fs::copy(rules_dir().join("default.yaml"), rules.join("default.yaml"))
        .expect("copy default rules");
    std::fs::write(
        rules.join("events.yaml"),
        "actions:\n  - name: incident-events\n    on: [opened, acknowledged]\n    kafka:\n      topic: incident-events\n",
    )
    .expect("write events.yaml");

    let mut settings = KafkaSettings::new(&["alerts"], "g-events");
    settings.rules = Some(&rules);
    let d = Incidentd::start(
        "incidentd",
        &tmp.path().join("data"),
        tmp.path(),
        &broker,
        Some(&settings),
    )
    .await;
    let procs = [&d.proc, &broker.proc];
    let p = broker.producer();
    produce(&p, "alerts", "a", &disk_alert(1, "/").to_string()).await;
    wait_caught_up(&d, "alerts", 1.0, None, &procs).await;
    let incidents = d.incidents().await.expect("incidents");
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    let id = incidents[0]["id"].as_str().expect("id").to_string();
    // Acknowledge after the `opened` record is out, so the order is known.
    wait_for("the opened event produced", &procs, || produced(&d, &id, 1)).await;
    d.ack(&id, "alice").await;

    let got = broker.read("incident-events", 2, &procs).await;
    let events: Vec<(String, String, Value)> = got
        .iter()
        .map(|m| {
            let trigger = m
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == "incidentd-trigger"))
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
            let body: Value =
                serde_json::from_slice(m.payload().unwrap_or_default()).expect("JSON value");
            (key, trigger, body)
        })
        .collect();
    assert_eq!(
        events
            .iter()
            .map(|(k, t, _)| (k.as_str(), t.as_str()))
            .collect::<Vec<_>>(),
        vec![(id.as_str(), "opened"), (id.as_str(), "acknowledged")]
    );
    assert_eq!(events[0].2["trigger"], "opened");
    assert_eq!(events[0].2["incident"]["id"], id.as_str());
    assert_eq!(events[1].2["incident"]["status"], "acknowledged");
    assert_eq!(events[1].2["incident"]["acknowledged_by"], "alice");
    assert!(events[0].2["alerts"][0]["labels"]["mountpoint"] == "/");

    // Each delivery is on the timeline and in the action metrics.
    wait_for("both deliveries on the timeline", &procs, || {
        produced(&d, &id, 2)
    })
    .await;
    let m = d.metrics().await.expect("metrics");
    assert_eq!(
        m.get(
            "incidentd_actions_total",
            &[("action", "incident-events"), ("outcome", "success")]
        ),
        2.0
    );
}

/// Ok once the incident's timeline notes `want` records produced by the
/// `incident-events` action.
async fn produced(d: &Incidentd, id: &str, want: usize) -> Result<(), String> {
    let v = d.incident(id).await?;
    let messages: Vec<&str> = v["timeline"]
        .as_array()
        .map(|t| t.iter().filter_map(|e| e["message"].as_str()).collect())
        .unwrap_or_default();
    let n = messages
        .iter()
        .filter(|m| m.contains("produced to incident-events[0] at offset"))
        .count();
    if n == want {
        Ok(())
    } else {
        Err(format!("{n} deliveries on the timeline: {messages:?}"))
    }
}
