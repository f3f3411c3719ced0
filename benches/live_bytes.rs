//! Memory of the live state, per alert: the bytes the engine asks the
//! allocator for to hold `--alerts` live alerts of the load harness's
//! shape (five labels, a summary, 200 incidents under the shipped rules),
//! counted by a wrapping global allocator, with the allocations. These are
//! requested bytes, before the allocator rounds them up to its size
//! classes; `cargo bench --bench load -- --live N` measures the RSS.
//!
//! Run: `cargo bench --bench live_bytes -- [--alerts N]` (default
//! 100,000). Under `cargo test` it is a 10,000-alert run that checks every
//! alert is live and the figure stays in its range.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use incidentd::engine::{Engine, Settings};
use incidentd::ingest::{parse, Format};
use incidentd::rules::RuleSet;

/// The system allocator, counting what is live.
struct Counting;

static BYTES: AtomicIsize = AtomicIsize::new(0);
static BLOCKS: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed straight to the system allocator; the
// counters are only arithmetic on the sizes it was given.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        BYTES.fetch_add(l.size() as isize, Ordering::Relaxed);
        BLOCKS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as the caller promised for `l`.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        BYTES.fetch_sub(l.size() as isize, Ordering::Relaxed);
        BLOCKS.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` with `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        BYTES.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` with `l`.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn counters() -> (isize, isize) {
    (
        BYTES.load(Ordering::Relaxed),
        BLOCKS.load(Ordering::Relaxed),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let n: usize = args
        .iter()
        .position(|a| a == "--alerts")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 100_000 } else { 10_000 });
    let rules_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let rules = RuleSet::load_dir(&rules_dir).expect("shipped rules");
    let mut engine = Engine::new(
        Arc::new(rules),
        Settings {
            close_after: std::time::Duration::from_secs(3600),
            id_slot: None,
        },
    );
    let now = chrono::Utc::now();
    let limits = incidentd::config::Limits::default();
    let before = counters();
    for b in 0..n.div_ceil(100) {
        let alerts: Vec<String> = (b * 100..((b + 1) * 100).min(n))
            .map(|i| {
                // The load harness's `--live` alert (benches/load.rs).
                format!(
                    r#"{{"labels":{{"alertname":"LoadAlert{}","instance":"host-{i}:9100","job":"node","severity":"{}","namespace":"ns-{}"}},"annotations":{{"summary":"load test alert {i}"}},"startsAt":"2020-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z","generatorURL":"http://prometheus/graph"}}"#,
                    i % 200,
                    if i % 10 == 0 { "critical" } else { "warning" },
                    i % 50
                )
            })
            .collect();
        let body = format!("[{}]", alerts.join(","));
        let payload =
            parse(Format::AlertmanagerV2, body.as_bytes(), &limits, now).expect("valid body");
        engine.ingest(payload.alerts, now);
        // What the writer would commit, then drop.
        drop(engine.take_changes());
    }
    let after = counters();
    let live: usize = engine.live_incidents().map(|l| l.alerts.len()).sum();
    let bytes = (after.0 - before.0) as f64 / n as f64;
    let blocks = (after.1 - before.1) as f64 / n as f64;
    println!(
        "live_bytes: {n} live alerts in {} incidents: {bytes:.0} bytes requested an alert, {blocks:.1} allocations an alert",
        engine.live_incidents().count()
    );
    assert_eq!(live, n, "every alert is live");
    if !bench {
        // 374 at 49c035e; far above it means a field or index grew.
        assert!(bytes < 500.0, "{bytes:.0} bytes an alert");
    }
}
