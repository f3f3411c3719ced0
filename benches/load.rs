//! Load harness: starts the real `incidentd` binary (release) on a temp data
//! dir, drives `POST /api/v2/alerts` with N concurrent clients, and prints
//! accepted alerts/s, ack latency percentiles, time until every incident is
//! visible in the API, and the daemon's peak RSS. `--vs-alertmanager` runs
//! the same load against a local `prometheus-alertmanager` in the same run.
//!
//! Run: `cargo bench --bench load -- [options]` (see `--help`). Every
//! request loop is bounded by `--duration`; traffic goes to 127.0.0.1 only.

use std::process::{Child, Command, Stdio};
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
  --vs-alertmanager    also run the same load against prometheus-alertmanager";

#[derive(Clone, Debug)]
struct Opts {
    concurrency: usize,
    batch: usize,
    distinct: usize,
    resolved_pct: u32,
    duration: Duration,
    rate: Option<u64>,
    vs_alertmanager: bool,
}

fn opts() -> Opts {
    let mut o = Opts {
        concurrency: 8,
        batch: 100,
        distinct: 10_000,
        resolved_pct: 0,
        duration: Duration::from_secs(10),
        rate: None,
        vs_alertmanager: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs benches without `--bench`: a short
        // smoke run that proves the harness and the daemon work together.
        o.concurrency = 2;
        o.distinct = 1000;
        o.resolved_pct = 10;
        o.duration = Duration::from_secs(1);
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
            "--vs-alertmanager" => {
                o.vs_alertmanager = true;
                i += 1;
                continue;
            }
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
    o
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
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

struct Result {
    alerts_per_s: f64,
    requests: u64,
    errors: u64,
    rejected: u64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

async fn drive(url: String, o: &Opts) -> Result {
    let bodies = Arc::new(bodies(o));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(o.concurrency)
        .build()
        .expect("client");
    let accepted = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
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
        let (accepted, errors, rejected, latencies, stop) = (
            accepted.clone(),
            errors.clone(),
            rejected.clone(),
            latencies.clone(),
            stop.clone(),
        );
        let batch = o.batch as u64;
        let concurrency = o.concurrency;
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
                let body = bodies[k % bodies.len()].clone();
                k += 1;
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
    tokio::time::sleep(o.duration).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut l = std::mem::take(&mut *latencies.lock().expect("lock"));
    l.sort();
    let pct = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Result {
        alerts_per_s: accepted.load(Ordering::Relaxed) as f64 / elapsed,
        requests: l.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        rejected: rejected.load(Ordering::Relaxed),
        p50: pct(0.50),
        p99: pct(0.99),
        max: l.last().copied().unwrap_or_default(),
    }
}

fn print(name: &str, r: &Result, rss: f64) {
    println!(
        "{name:<14} {:>10.0} alerts/s  requests {:>7}  503/429 {:>5}  errors {:>4}  ack p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  peak RSS {:>7.1} MB",
        r.alerts_per_s,
        r.requests,
        r.rejected,
        r.errors,
        r.p50.as_secs_f64() * 1e3,
        r.p99.as_secs_f64() * 1e3,
        r.max.as_secs_f64() * 1e3,
        rss
    );
}

#[tokio::main]
async fn main() {
    let o = opts();
    println!(
        "load: concurrency {} batch {} distinct {} resolved {}% duration {:?} rate {} ({} cores)",
        o.concurrency,
        o.batch,
        o.distinct,
        o.resolved_pct,
        o.duration,
        o.rate
            .map(|r| format!("{r}/s"))
            .unwrap_or_else(|| "max".into()),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    let data = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_incidentd"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data.path())
        .arg("--rules")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/rules"))
        .env("INCIDENTD_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start incidentd");
    let pid = child.id();
    let daemon = Proc(child);
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&client, &format!("{base}/-/ready")).await;
    let r = drive(format!("{base}/api/v2/alerts"), &o).await;
    // Acknowledged means committed; the API must show every incident at once.
    let t = Instant::now();
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    let created: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("incidentd_incidents_created_total{"))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum();
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
    let received: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("incidentd_alerts_received_total{"))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum();
    println!(
        "incidentd      {commits} store commits, {:.0} alerts a commit, {:.2} ms a commit (mean)",
        received / commits,
        commit_s / commits * 1e3
    );
    println!(
        "incidentd      {created} incidents created; {listed} listed {:.1} ms after the last ack (limit 10000)",
        visible.as_secs_f64() * 1e3
    );
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
        let ra = drive(format!("{am_base}/api/v2/alerts"), &o).await;
        let am_rss = peak_rss_mb(am_pid);
        print("alertmanager", &ra, am_rss);
        drop(am);
        println!(
            "ratio          incidentd/alertmanager throughput {:.2}x, p99 latency {:.2}x, peak RSS {:.2}x",
            r.alerts_per_s / ra.alerts_per_s,
            r.p99.as_secs_f64() / ra.p99.as_secs_f64(),
            rss / am_rss
        );
    }
}
