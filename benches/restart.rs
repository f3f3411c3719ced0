//! Restart benchmark: fills a temp data dir with `--alerts` alerts in
//! `--incidents` open incidents (through the real engine and store), then
//! starts the release `incidentd serve` on it and prints the time from
//! spawn until `/-/ready` answers 200, and the daemon's RSS once ready.
//! `--open PCT` incidents stay open (default 100, the worst case: every
//! alert of an open incident is loaded into memory); the rest are resolved
//! and closed, so only their history entries are read.
//!
//! Run: `cargo bench --bench restart -- [--alerts N] [--incidents N] [--open PCT] [--keep DIR]`
//! (defaults 1,000,000, 100,000 and 100). Under `cargo test` it does a small
//! smoke run (10,000 alerts) that proves the restore works. `--keep DIR`
//! fills DIR instead of a temp dir and leaves it there.

mod common;

use common::{free_port, rss_mb, serve, Proc};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use incidentd::engine::{Engine, Settings};
use incidentd::model::labels::labels;
use incidentd::model::{Alert, AlertStatus, Source};
use incidentd::rules::RuleSet;
use incidentd::store::Store;

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse().unwrap_or_else(|_| {
                eprintln!("{name} needs a number");
                std::process::exit(2)
            })
        })
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let (n_alerts, n_incidents) = if bench {
        (
            arg(&args, "--alerts", 1_000_000),
            arg(&args, "--incidents", 100_000),
        )
    } else {
        (10_000, 1_000)
    };
    let open_pct = if bench {
        arg(&args, "--open", 100).min(100)
    } else {
        50
    };
    let per_incident = (n_alerts / n_incidents.max(1)).max(1);
    let n_open = n_alerts.div_ceil(per_incident) * open_pct / 100;
    // `--keep DIR`: fill DIR (new or empty) instead of a temp dir and leave
    // it, to start `incidentd serve --data-dir DIR` on it by hand.
    let keep = args
        .iter()
        .position(|a| a == "--keep")
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from);
    let temp = tempfile::tempdir().expect("tempdir");
    let dir_path = keep.clone().unwrap_or_else(|| temp.path().to_path_buf());

    let t = Instant::now();
    {
        let store = Store::open(&dir_path).expect("store");
        let mut engine = Engine::new(
            Arc::new(RuleSet::builtin().expect("rules")),
            Settings {
                close_after: Duration::from_secs(3600),
                id_slot: None,
            },
        );
        let now = Utc::now();
        let mut chunk = Vec::with_capacity(10_000);
        let mut resolved = Vec::new();
        for i in 0..n_alerts {
            let name = format!("Restart{}", i / per_incident);
            let instance = format!("host-{i}:9100");
            let alert = |status| {
                Alert::new(
                    labels(&[
                        ("alertname", name.as_str()),
                        ("instance", instance.as_str()),
                        ("job", "node"),
                        ("severity", if i % 10 == 0 { "critical" } else { "warning" }),
                        ("namespace", "restart"),
                    ]),
                    labels(&[("summary", "restart benchmark alert")]),
                    Some(status),
                    None,
                    None,
                    String::new(),
                    Source::Generic,
                    None,
                    now,
                )
                .expect("valid labels")
            };
            chunk.push(alert(AlertStatus::Firing));
            if i / per_incident >= n_open {
                resolved.push(alert(AlertStatus::Resolved));
            }
            if chunk.len() == 10_000 || i + 1 == n_alerts {
                engine.ingest(std::mem::take(&mut chunk), now);
                engine.ingest(std::mem::take(&mut resolved), now);
                store.commit(&engine.take_changes().into()).expect("commit");
            }
        }
        // Resolved incidents close after `close_after`.
        engine.tick(now + chrono::Duration::hours(2));
        store.commit(&engine.take_changes().into()).expect("commit");
    }
    let size = std::fs::metadata(dir_path.join("incidentd.redb"))
        .map(|m| m.len() as f64 / 1e6)
        .unwrap_or(f64::NAN);
    println!(
        "restart: stored {n_alerts} alerts in {} incidents, {n_open} of them open, in {:.1} s ({size:.0} MB file)",
        n_alerts.div_ceil(per_incident),
        t.elapsed().as_secs_f64()
    );

    let port = free_port();
    let started = Instant::now();
    let child = serve(port, &dir_path).spawn().expect("start incidentd");
    let pid = child.id();
    let _daemon = Proc(child);
    let url = format!("http://127.0.0.1:{port}/-/ready");
    let ready = loop {
        if started.elapsed() > Duration::from_secs(300) {
            panic!("incidentd not ready after 300 s");
        }
        let ok = std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .and_then(|mut s| {
                use std::io::{Read, Write};
                s.write_all(b"GET /-/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .ok()?;
                let mut head = [0u8; 12];
                s.read_exact(&mut head).ok()?;
                Some(head.ends_with(b"200"))
            })
            .unwrap_or(false);
        if ok {
            break started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    println!(
        "restart: {url} answered 200 after {:.2} s; RSS {:.0} MB",
        ready.as_secs_f64(),
        rss_mb(pid)
    );
    // What was restored is what was stored: every open incident counts in
    // the open gauge, and the listing (up to its 10,000 cap) shows them
    // with all their alerts.
    let metrics = get(port, "/metrics");
    let open_gauge: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("incidentd_incidents_open{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(
        open_gauge as usize, n_open,
        "open incidents after the restart"
    );
    let limit = n_open.clamp(1, 10_000);
    let body = get(
        port,
        &format!("/api/v1/incidents?status=open&limit={limit}"),
    );
    let listed: Vec<serde_json::Value> = serde_json::from_str(&body).expect("incident list");
    assert_eq!(listed.len(), n_open.min(limit), "open incidents listed");
    assert!(listed.iter().all(|i| i["alert_count"] == per_incident));
}

/// The body of a GET on the daemon (HTTP/1.0: the daemon closes after it).
fn get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("response");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    body.to_string()
}
