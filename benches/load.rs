//! Load harness: starts the real `incidentd` binary (release) on a temp data
//! dir, drives `POST /api/v2/alerts` with N concurrent clients, and prints
//! accepted alerts/s, ack latency percentiles, time until every incident is
//! visible in the API, and the daemon's peak RSS. `--vs-alertmanager` runs
//! the same load against a local `prometheus-alertmanager` in the same run.
//! `--kafka` instead fills a topic on a local `tansu` broker and times how
//! fast the daemon consumes it (durably: offsets stored after the commit).
//!
//! Run: `cargo bench --bench load -- [options]` (see `--help`). Every
//! request loop is bounded by `--duration`; traffic goes to 127.0.0.1 only.

mod common;

use common::{free_port, peak_rss_mb, rss_mb, serve, tansu_binary, Proc};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const HELP: &str = "options:
  --concurrency N      concurrent clients (default 8)
  --batch N            alerts per request (default 100)
  --distinct N         distinct alerts (label sets) cycled through (default 10000)
  --resolved PCT       share of alerts sent as resolved, 0-100 (default 0)
  --duration SECS      how long to send (default 10)
  --rate N             offered alerts/s in total (default: as fast as possible)
  --warmup             send every distinct alert once before measuring, so the
                       measured run is repeats (steady state) rather than creation
  --queue-capacity N   incidentd's pipeline.queue_capacity (requests waiting for
                       the writer; default: the daemon's 1024). Smaller than
                       --concurrency shows the overload answer (503 + Retry-After)
  --store-cache-mb N   incidentd's pipeline.store_cache_mb (redb page cache;
                       default: the daemon's 64)
  --probe              also send a one-alert request every 100 ms and print its
                       answers and latency (what a small sender sees under load)
  --vs-alertmanager    also run the same load against prometheus-alertmanager
  --kafka              Kafka instead of HTTP (with --storm: storm bodies): produce --messages messages of --batch
                       alerts to a topic of --partitions partitions on a local tansu
                       broker, start incidentd on it, time until all are consumed
  --messages N         Kafka messages to produce (default 2000)
  --partitions N       partitions of the Kafka topic (default 4)
  --kafka-option K=V   librdkafka property for incidentd's consumer (repeatable)
  --kafka-changelog    with --kafka: also hand-over state to alerts-changelog
                       (kafka.changelog on), to measure what it costs
  --storm              a storm of first sightings: every alert of every request is
                       one never seen before (a unique instance), spread over
                       --incidents groups of --alertnames alertnames. The bodies are
                       built before the clock starts (--distinct of them in all,
                       default 2,000,000); each is sent once, and the run ends at
                       --duration or when they are used up
  --alertnames N       with --storm: distinct alertnames (default 8)
  --incidents N        with --storm: incidents the alerts form (default 1000); an
                       incident is one (alertname, namespace) of the shipped
                       per-alertname rule
  --live N             memory with N live alerts: send N distinct firing alerts to
                       each daemon once (concurrently), then re-send them for
                       --duration, and print the steady RSS (after the re-sends)
                       next to the peak";

#[derive(Clone, Debug)]
struct Opts {
    concurrency: usize,
    batch: usize,
    distinct: usize,
    resolved_pct: u32,
    duration: Duration,
    rate: Option<u64>,
    queue_capacity: Option<u64>,
    store_cache_mb: Option<u64>,
    warmup: bool,
    probe: bool,
    vs_alertmanager: bool,
    kafka: bool,
    messages: usize,
    partitions: usize,
    kafka_options: Vec<String>,
    kafka_changelog: bool,
    storm: bool,
    alertnames: usize,
    incidents: usize,
    live: Option<usize>,
    /// Under `cargo test`: the one-second smoke run (which also sends a
    /// small storm to prove `--storm` works).
    smoke: bool,
}

fn opts() -> Opts {
    let mut o = Opts {
        concurrency: 8,
        batch: 100,
        distinct: 10_000,
        resolved_pct: 0,
        duration: Duration::from_secs(10),
        rate: None,
        queue_capacity: None,
        store_cache_mb: None,
        warmup: false,
        probe: false,
        vs_alertmanager: false,
        kafka: false,
        messages: 2000,
        partitions: 4,
        kafka_options: Vec::new(),
        kafka_changelog: false,
        storm: false,
        alertnames: 8,
        incidents: 1000,
        live: None,
        smoke: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs benches without `--bench`: a short
        // smoke run that proves the harness and the daemon work together.
        o.concurrency = 2;
        o.distinct = 1000;
        o.resolved_pct = 10;
        o.duration = Duration::from_secs(1);
        o.smoke = true;
        return o;
    }
    let mut i = 0;
    let num = |i: usize| -> u64 {
        args.get(i + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                eprintln!("{} needs a number\n{HELP}", args[i]);
                std::process::exit(2)
            })
    };
    while i < args.len() {
        match args[i].as_str() {
            "--concurrency" => o.concurrency = num(i) as usize,
            "--batch" => o.batch = num(i) as usize,
            "--distinct" => o.distinct = num(i) as usize,
            "--resolved" => o.resolved_pct = num(i) as u32,
            "--duration" => o.duration = Duration::from_secs(num(i)),
            "--rate" => o.rate = Some(num(i)),
            "--queue-capacity" => o.queue_capacity = Some(num(i)),
            "--store-cache-mb" => o.store_cache_mb = Some(num(i)),
            "--vs-alertmanager" => {
                o.vs_alertmanager = true;
                i += 1;
                continue;
            }
            "--warmup" => {
                o.warmup = true;
                i += 1;
                continue;
            }
            "--probe" => {
                o.probe = true;
                i += 1;
                continue;
            }
            "--kafka" => {
                o.kafka = true;
                i += 1;
                continue;
            }
            "--storm" => {
                o.storm = true;
                i += 1;
                continue;
            }
            "--alertnames" => o.alertnames = num(i).max(1) as usize,
            "--incidents" => o.incidents = num(i).max(1) as usize,
            "--live" => o.live = Some(num(i) as usize),
            "--kafka-changelog" => {
                o.kafka_changelog = true;
                i += 1;
                continue;
            }
            "--messages" => o.messages = num(i) as usize,
            "--kafka-option" => {
                o.kafka_options
                    .push(args.get(i + 1).cloned().unwrap_or_default());
                i += 2;
                continue;
            }
            "--partitions" => o.partitions = num(i) as usize,
            "--bench" => {
                i += 1;
                continue;
            }
            "--help" | "-h" => {
                println!("{HELP}");
                std::process::exit(0)
            }
            other => {
                eprintln!("unknown option {other}\n{HELP}");
                std::process::exit(2)
            }
        }
        i += 2;
    }
    if o.storm && !args.iter().any(|a| a == "--distinct") {
        o.distinct = 2_000_000;
    }
    if let Some(n) = o.live {
        o.distinct = n;
        o.warmup = true;
    }
    o
}

async fn wait_ready(client: &reqwest::Client, url: &str) {
    for _ in 0..200 {
        if client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never became ready");
}

/// Pre-built request bodies: `distinct` alerts in batches, some resolved.
fn bodies(o: &Opts) -> Vec<String> {
    let ends_future = "2099-01-01T00:00:00Z";
    let ends_past = "2020-01-01T00:01:00Z";
    let n_bodies = (o.distinct / o.batch).max(1);
    (0..n_bodies)
        .map(|b| {
            let alerts: Vec<String> = (0..o.batch)
                .map(|k| {
                    let i = (b * o.batch + k) % o.distinct;
                    let resolved = (i as u32 * 37 % 100) < o.resolved_pct;
                    format!(
                        r#"{{"labels":{{"alertname":"LoadAlert{}","instance":"host-{}:9100","job":"node","severity":"{}","namespace":"ns-{}"}},"annotations":{{"summary":"load test alert {i}"}},"startsAt":"2020-01-01T00:00:00Z","endsAt":"{}","generatorURL":"http://prometheus/graph"}}"#,
                        i % 200,
                        i,
                        if i % 10 == 0 { "critical" } else { "warning" },
                        i % 50,
                        if resolved { ends_past } else { ends_future }
                    )
                })
                .collect();
            format!("[{}]", alerts.join(","))
        })
        .collect()
}

/// Storm bodies: `distinct` alerts never seen before (a unique instance
/// each), in requests of `batch`, over `incidents` (alertname, namespace)
/// groups of `alertnames` alertnames. Alert `i` goes to group `i % incidents`,
/// so every request touches up to `batch` incidents, as a real storm does.
fn storm_bodies(o: &Opts) -> Vec<String> {
    let n_bodies = (o.distinct / o.batch).max(1);
    (0..n_bodies)
        .map(|b| {
            let alerts: Vec<String> = (0..o.batch)
                .map(|k| {
                    let i = b * o.batch + k;
                    let g = i % o.incidents;
                    format!(
                        r#"{{"labels":{{"alertname":"StormAlert{}","instance":"storm-{i}:9100","job":"storm","severity":"{}","namespace":"storm-ns-{g}"}},"annotations":{{"summary":"storm alert {i}"}},"startsAt":"2020-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z","generatorURL":"http://prometheus/graph"}}"#,
                        g % o.alertnames,
                        if g % 10 == 0 { "critical" } else { "warning" },
                    )
                })
                .collect();
            format!("[{}]", alerts.join(","))
        })
        .collect()
}

struct Result {
    alerts_per_s: f64,
    /// Alerts sent (accepted or not) per second.
    offered_per_s: f64,
    /// The one-alert probe: answers (2xx, 503, other) and latencies.
    probe: Option<Probe>,
    requests: u64,
    errors: u64,
    rejected: u64,
    /// Rejections that carried a `Retry-After` header.
    retry_after: u64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

struct Probe {
    ok: u64,
    refused: u64,
    other: u64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

/// One-alert requests every 100 ms until `stop`.
async fn probe(client: reqwest::Client, url: String, stop: Arc<AtomicBool>) -> Probe {
    let (mut ok, mut refused, mut other) = (0, 0, 0);
    let mut l = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let body = format!(r#"[{{"labels":{{"alertname":"Probe","instance":"probe-{n}"}}}}]"#);
        n += 1;
        let t = Instant::now();
        let r = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        match r {
            Ok(r) if r.status().is_success() => ok += 1,
            Ok(r) if r.status().as_u16() == 503 => refused += 1,
            _ => other += 1,
        }
        l.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    l.sort();
    let pct = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Probe {
        ok,
        refused,
        other,
        p50: pct(0.5),
        p99: pct(0.99),
        max: l.last().copied().unwrap_or_default(),
    }
}

/// Sends every body once, `concurrency` requests at a time (the warm-up of
/// `--warmup` and `--live`). Panics on a refused request: a warm-up that
/// lost alerts would measure the wrong thing.
async fn send_all_once(
    client: &reqwest::Client,
    url: &str,
    bodies: &Arc<Vec<String>>,
    concurrency: usize,
) {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, bodies, next) = (
            client.clone(),
            url.to_string(),
            bodies.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(body) = bodies.get(k) else { break };
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .expect("warm-up request");
                assert!(r.status().is_success(), "warm-up: HTTP {}", r.status());
                let _ = r.bytes().await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("warm-up task");
    }
}

async fn drive(url: String, o: &Opts, bodies: Arc<Vec<String>>) -> Result {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(o.concurrency)
        .build()
        .expect("client");
    if o.warmup {
        let t = Instant::now();
        send_all_once(&client, &url, &bodies, o.concurrency).await;
        println!(
            "warm-up        {} alerts sent once in {:.1} s",
            bodies.len() * o.batch,
            t.elapsed().as_secs_f64()
        );
    }
    // --storm: each body is sent once, in order, across all clients.
    let once = o.storm.then(|| Arc::new(AtomicU64::new(0)));
    let finished = Arc::new(Mutex::new(None::<Instant>));
    let accepted = Arc::new(AtomicU64::new(0));
    let offered = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let retry_after = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    // With --rate, each client sends one request per interval.
    let interval = o.rate.map(|r| {
        let per_client = (r as f64 / o.concurrency as f64 / o.batch as f64).max(0.001);
        Duration::from_secs_f64(1.0 / per_client)
    });
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..o.concurrency {
        let (client, url, bodies) = (client.clone(), url.clone(), bodies.clone());
        let offered = offered.clone();
        let (accepted, errors, rejected, retry_after, latencies, stop) = (
            accepted.clone(),
            errors.clone(),
            rejected.clone(),
            retry_after.clone(),
            latencies.clone(),
            stop.clone(),
        );
        let batch = o.batch as u64;
        let concurrency = o.concurrency;
        let (once, finished) = (once.clone(), finished.clone());
        tasks.push(tokio::spawn(async move {
            let mut k = c;
            // Spread the clients over the interval: an offered rate is a
            // steady stream, not all clients firing in the same instant.
            let mut next = Instant::now()
                + interval.map_or(Duration::ZERO, |iv| {
                    iv.mul_f64(c as f64 / concurrency as f64)
                });
            let mut local = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Some(iv) = interval {
                    let now = Instant::now();
                    if next > now {
                        tokio::time::sleep(next - now).await;
                    }
                    next += iv;
                }
                let body = match &once {
                    Some(next) => {
                        let Some(b) = bodies.get(next.fetch_add(1, Ordering::Relaxed) as usize)
                        else {
                            // Used up: the run ends when the last client does.
                            *finished.lock().expect("lock") = Some(Instant::now());
                            break;
                        };
                        b.clone()
                    }
                    None => bodies[k % bodies.len()].clone(),
                };
                k += 1;
                offered.fetch_add(batch, Ordering::Relaxed);
                let t = Instant::now();
                match client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        local.push(t.elapsed());
                        accepted.fetch_add(batch, Ordering::Relaxed);
                    }
                    Ok(r) if r.status().as_u16() == 429 || r.status().as_u16() == 503 => {
                        rejected.fetch_add(1, Ordering::Relaxed);
                        if r.headers().contains_key("retry-after") {
                            retry_after.fetch_add(1, Ordering::Relaxed);
                        }
                        let _ = r.bytes().await;
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies.lock().expect("lock").extend(local);
        }));
    }
    let prober = o
        .probe
        .then(|| tokio::spawn(probe(reqwest::Client::new(), url.clone(), stop.clone())));
    // Ends at --duration, or earlier when every --storm body is sent.
    let deadline = tokio::time::sleep(o.duration);
    tokio::pin!(deadline);
    let mut all = std::pin::pin!(futures_util::future::join_all(tasks));
    tokio::select! {
        _ = &mut deadline => {
            stop.store(true, Ordering::Relaxed);
            all.await;
        }
        _ = &mut all => {}
    }
    stop.store(true, Ordering::Relaxed);
    let probe = match prober {
        Some(p) => p.await.ok(),
        None => None,
    };
    let ended = finished.lock().expect("lock").unwrap_or_else(Instant::now);
    let elapsed = ended.duration_since(started).as_secs_f64();
    let mut l = std::mem::take(&mut *latencies.lock().expect("lock"));
    l.sort();
    let pct = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Result {
        alerts_per_s: accepted.load(Ordering::Relaxed) as f64 / elapsed,
        offered_per_s: offered.load(Ordering::Relaxed) as f64 / elapsed,
        probe,
        requests: l.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        rejected: rejected.load(Ordering::Relaxed),
        retry_after: retry_after.load(Ordering::Relaxed),
        p50: pct(0.50),
        p99: pct(0.99),
        max: l.last().copied().unwrap_or_default(),
    }
}

fn print(name: &str, r: &Result, rss: f64) {
    println!(
        "{name:<14} {:>10.0} alerts/s  requests {:>7}  503/429 {:>5} (Retry-After {:>5})  errors {:>4}  ack p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  peak RSS {:>7.1} MB",
        r.alerts_per_s,
        r.requests,
        r.rejected,
        r.retry_after,
        r.errors,
        r.p50.as_secs_f64() * 1e3,
        r.p99.as_secs_f64() * 1e3,
        r.max.as_secs_f64() * 1e3,
        rss
    );
    println!(
        "{name:<14} offered {:.0} alerts/s ({:.1}x what was accepted)",
        r.offered_per_s,
        r.offered_per_s / r.alerts_per_s.max(1.0)
    );
    if let Some(p) = &r.probe {
        println!(
            "{name:<14} probe (1 alert every 100 ms): 2xx {}  503 {}  other {}  latency p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            p.ok,
            p.refused,
            p.other,
            p.p50.as_secs_f64() * 1e3,
            p.p99.as_secs_f64() * 1e3,
            p.max.as_secs_f64() * 1e3
        );
    }
}

#[tokio::main]
async fn main() {
    let o = opts();
    if o.kafka {
        kafka_run(&o).await;
        return;
    }
    println!(
        "load: concurrency {} batch {} distinct {} resolved {}% duration {:?} rate {} queue capacity {} warm-up {} ({} cores)",
        o.concurrency,
        o.batch,
        o.distinct,
        o.resolved_pct,
        o.duration,
        o.rate
            .map(|r| format!("{r}/s"))
            .unwrap_or_else(|| "max".into()),
        o.queue_capacity
            .map(|q| q.to_string())
            .unwrap_or_else(|| "default".into()),
        if o.warmup { "yes" } else { "no" },
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    if o.storm {
        println!(
            "storm: {} never-seen alerts in requests of {}, over {} incidents of {} alertnames",
            o.distinct, o.batch, o.incidents, o.alertnames
        );
    }
    let built = Instant::now();
    let bodies = Arc::new(if o.storm {
        storm_bodies(&o)
    } else {
        bodies(&o)
    });
    if o.storm || o.live.is_some() {
        println!(
            "bodies         {} built in {:.1} s, {:.0} MB",
            bodies.len(),
            built.elapsed().as_secs_f64(),
            bodies.iter().map(|b| b.len()).sum::<usize>() as f64 / 1e6
        );
    }
    let data = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut cmd = serve(port, data.path());
    cmd.arg("--rules")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/rules"));
    let mut pipeline = String::new();
    if let Some(q) = o.queue_capacity {
        pipeline += &format!("  queue_capacity: {q}\n");
    }
    if let Some(mb) = o.store_cache_mb {
        pipeline += &format!("  store_cache_mb: {mb}\n");
    }
    if !pipeline.is_empty() {
        let config = data.path().join("load.yaml");
        std::fs::write(&config, format!("pipeline:\n{pipeline}")).expect("config");
        cmd.arg("--config").arg(&config);
    }
    let child = cmd.spawn().expect("start incidentd");
    let pid = child.id();
    let daemon = Proc(child);
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&client, &format!("{base}/-/ready")).await;
    let r = drive(format!("{base}/api/v2/alerts"), &o, bodies.clone()).await;
    let steady = rss_mb(pid);
    // Acknowledged means committed; the API must show every incident at once.
    let t = Instant::now();
    let metrics = metrics_text(&client, &base).await;
    let created = metric_sum(&metrics, "incidentd_incidents_created_total");
    let listed = client
        .get(format!("{base}/api/v1/incidents?limit=10000"))
        .send()
        .await
        .expect("list")
        .json::<Vec<serde_json::Value>>()
        .await
        .map(|v| v.len())
        .unwrap_or(0);
    let visible = t.elapsed();
    let rss = peak_rss_mb(pid);
    print("incidentd", &r, rss);
    if o.live.is_some() {
        println!(
            "incidentd      steady RSS {steady:.1} MB with {} live alerts ({:.0} bytes an alert)",
            o.distinct,
            steady * 1e6 / o.distinct as f64
        );
    }
    let sample = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let commits = sample("incidentd_store_commit_duration_seconds_count");
    let commit_s = sample("incidentd_store_commit_duration_seconds_sum");
    let received = metric_sum(&metrics, "incidentd_alerts_received_total");
    println!(
        "incidentd      {commits} store commits, {:.0} alerts a commit, {:.2} ms a commit (mean)",
        received / commits,
        commit_s / commits * 1e3
    );
    println!(
        "incidentd      {created} incidents created; {listed} listed {:.1} ms after the last ack (limit 10000)",
        visible.as_secs_f64() * 1e3
    );
    if o.smoke {
        smoke_storm(&client, &base, &o, created).await;
    }
    drop(daemon);

    if o.vs_alertmanager {
        let am_port = free_port();
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("am.yml");
        std::fs::write(
            &cfg,
            "route:\n  receiver: none\nreceivers:\n  - name: none\n",
        )
        .expect("am config");
        let child = Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.path={}", dir.path().display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus-alertmanager (apt-get install prometheus-alertmanager)");
        let am_pid = child.id();
        let am = Proc(child);
        let am_base = format!("http://127.0.0.1:{am_port}");
        wait_ready(&client, &format!("{am_base}/-/ready")).await;
        let ra = drive(format!("{am_base}/api/v2/alerts"), &o, bodies.clone()).await;
        let am_steady = rss_mb(am_pid);
        let am_rss = peak_rss_mb(am_pid);
        print("alertmanager", &ra, am_rss);
        if o.live.is_some() {
            println!(
                "alertmanager   steady RSS {am_steady:.1} MB with {} live alerts ({:.0} bytes an alert)",
                o.distinct,
                am_steady * 1e6 / o.distinct as f64
            );
            println!(
                "ratio          incidentd/alertmanager steady RSS {:.2}x",
                steady / am_steady
            );
        }
        drop(am);
        println!(
            "ratio          incidentd/alertmanager throughput {:.2}x, p99 latency {:.2}x, peak RSS {:.2}x",
            r.alerts_per_s / ra.alerts_per_s,
            r.p99.as_secs_f64() / ra.p99.as_secs_f64(),
            rss / am_rss
        );
    }
}

/// The smoke run's storm: 2,000 never-seen alerts over 20 incidents, sent
/// once each; every one must be accepted and the 20 incidents created.
async fn smoke_storm(client: &reqwest::Client, base: &str, o: &Opts, created_before: f64) {
    let storm = Opts {
        storm: true,
        distinct: 2000,
        incidents: 20,
        alertnames: 4,
        warmup: false,
        duration: Duration::from_secs(30),
        ..o.clone()
    };
    let bodies = Arc::new(storm_bodies(&storm));
    let r = drive(format!("{base}/api/v2/alerts"), &storm, bodies).await;
    assert_eq!(r.errors + r.rejected, 0, "storm: every request accepted");
    assert_eq!(r.requests, 20, "storm: each of the 20 bodies sent once");
    let metrics = metrics_text(client, base).await;
    let created = metric_sum(&metrics, "incidentd_incidents_created_total");
    assert_eq!(
        created - created_before,
        20.0,
        "storm: one incident per group"
    );
    print("storm smoke", &r, 0.0);
}

/// The daemon's `/metrics` text (empty when it cannot be read).
async fn metrics_text(client: &reqwest::Client, base: &str) -> String {
    client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default()
}

/// Sum of every sample of `name` in a Prometheus text exposition.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// Fills a topic, then times incidentd consuming all of it.
async fn kafka_run(o: &Opts) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::ClientConfig;
    let tmp = tempfile::tempdir().expect("tempdir");
    let tansu = tansu_binary();
    let kport = free_port();
    let url = format!("tcp://127.0.0.1:{kport}");
    let broker = Proc(
        Command::new(&tansu)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu"),
    );
    let addr = format!("127.0.0.1:{kport}");
    let mut created = false;
    for _ in 0..100 {
        let out = Command::new(&tansu)
            .args([
                "topic",
                "create",
                "alerts",
                "--partitions",
                &o.partitions.to_string(),
            ])
            .args(["--broker", &url])
            .output()
            .expect("tansu topic create");
        if out.status.success() {
            created = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(created, "could not create the topic on tansu");
    if o.kafka_changelog {
        let out = Command::new(&tansu)
            .args([
                "topic",
                "create",
                "alerts-changelog",
                "--partitions",
                &o.partitions.to_string(),
                "--config",
                "cleanup.policy=compact",
            ])
            .args(["--broker", &url])
            .output()
            .expect("tansu topic create");
        assert!(out.status.success(), "could not create alerts-changelog");
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let bodies = if o.storm { storm_bodies(o) } else { bodies(o) };
    let t = Instant::now();
    let mut pending = Vec::new();
    for i in 0..o.messages {
        let body = bodies[i % bodies.len()].clone();
        let key = format!("k{}", i % 64);
        let p = producer.clone();
        pending.push(tokio::spawn(async move {
            p.send(
                FutureRecord::to("alerts").key(&key).payload(&body),
                Duration::from_secs(30),
            )
            .await
            .is_ok()
        }));
    }
    let mut produced = 0usize;
    for p in pending {
        if p.await.unwrap_or(false) {
            produced += 1;
        }
    }
    assert_eq!(produced, o.messages, "not every message was produced");
    let total = (o.messages * o.batch) as f64;
    println!(
        "kafka: produced {} messages of {} alerts ({total} alerts) to {} partitions in {:.1} s",
        o.messages,
        o.batch,
        o.partitions,
        t.elapsed().as_secs_f64()
    );

    let data = tmp.path().join("data");
    let config = tmp.path().join("kafka.yaml");
    let options: String = o
        .kafka_options
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| format!("    {k}: \"{v}\"\n"))
        .collect();
    std::fs::write(
        &config,
        format!(
            "kafka:\n{}  options:\n    client.id: incidentd-load\n{options}",
            if o.kafka_changelog {
                "  changelog: true\n  instance: 0\n"
            } else {
                ""
            }
        ),
    )
    .expect("config");
    let port = free_port();
    let started = Instant::now();
    let child = serve(port, &data)
        .arg("--rules")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/rules"))
        .args([
            "--kafka-brokers",
            &addr,
            "--kafka-topic",
            "alerts",
            "--kafka-group",
            "load",
        ])
        .arg("--config")
        .arg(&config)
        .spawn()
        .expect("start incidentd");
    let pid = child.id();
    let daemon = Proc(child);
    let client = reqwest::Client::new();
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let mut first: Option<Instant> = None;
    let deadline = Duration::from_secs(600);
    let done = loop {
        assert!(
            started.elapsed() < deadline,
            "not consumed within {deadline:?}"
        );
        let text = match client.get(&metrics_url).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let received = metric_sum(&text, "incidentd_alerts_received_total");
        if received > 0.0 && first.is_none() {
            first = Some(Instant::now());
        }
        if received >= total {
            break Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let first = first.unwrap_or(started);
    let secs = done.duration_since(first).as_secs_f64().max(1e-3);
    println!(
        "incidentd      {:>10.0} alerts/s consumed durably from Kafka ({total} alerts in {secs:.2} s from the first stored batch; {:.2} s after start); peak RSS {:.1} MB",
        total / secs,
        done.duration_since(started).as_secs_f64(),
        peak_rss_mb(pid)
    );
    if o.kafka_changelog {
        // Repeat-only changes go out on the next tick: wait for one.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let text = match client.get(&metrics_url).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        println!(
            "changelog: {} records delivered, {} failed; {} incidents open",
            metric_sum(
                &text,
                "incidentd_kafka_changelog_records_total{outcome=\"delivered\"}"
            ),
            metric_sum(
                &text,
                "incidentd_kafka_changelog_records_total{outcome=\"failed\"}"
            ),
            metric_sum(&text, "incidentd_incidents_open"),
        );
    }
    // The daemon goes first, so it does not log the broker vanishing.
    drop(daemon);
    drop(broker);
}
