//! Fuzz run of the ingest parsers: for each format (Alertmanager v2,
//! webhook v4, generic, PagerDuty v2) `--cases N` payloads (default
//! 1,000,000) made by mutating valid ones (bytes flipped, cut, repeated;
//! values swapped for NUL, control characters, huge numbers, deep nesting,
//! wrong types, far dates), each parsed with the daemon's limits. A case
//! fails if the parser panics, if it accepts an alert that breaks the
//! ingest rules (an empty or control-character label name, a NUL in a
//! value, no label with a value), if it refuses without a message, or if
//! the same bytes parse differently twice. Every 50th accepted payload also
//! goes through a real engine, which must not panic either.
//!
//! Run: `cargo bench --bench fuzz -- [--cases N] [--seed S]`. Under
//! `cargo test --benches` it does 2,000 cases per format. Not part of CI:
//! a full run takes minutes (see benches/README.md).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use incidentd::config::Limits;
use incidentd::engine::{Engine, Settings};
use incidentd::ingest::{self, Format};
use incidentd::rules::RuleSet;

thread_local! {
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, catching a panic without printing it.
fn quiet<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    QUIET.with(|q| q.set(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    r
}

/// xorshift64*: fast, seedable, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const SEEDS_V2: &[&str] = &[
    r#"[{"labels":{"alertname":"HighCPU","instance":"web-1:9100","severity":"critical"},"annotations":{"summary":"CPU high"},"startsAt":"2026-12-02T10:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus/graph"}]"#,
    r#"[{"labels":{"alertname":"DiskFull","device":"/dev/sda1"},"status":"resolved","endsAt":"2026-12-02T10:05:00Z"},{"labels":{"alertname":"Up"}}]"#,
];
const SEEDS_WEBHOOK: &[&str] = &[
    r#"{"version":"4","groupKey":"{}:{alertname=\"X\"}","status":"firing","receiver":"incidentd","groupLabels":{"alertname":"X"},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://am","alerts":[{"status":"firing","labels":{"alertname":"X","instance":"a"},"annotations":{"summary":"s"},"startsAt":"2026-12-02T10:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"abc"}]}"#,
];
const SEEDS_GENERIC: &[&str] = &[
    r#"{"labels":{"alertname":"Generic","service":"checkout"},"annotations":{"summary":"down"},"status":"firing","source":"nagios"}"#,
    r#"[{"labels":{"alertname":"G1"}},{"labels":{"alertname":"G2"},"status":"resolved"}]"#,
];
const SEEDS_PAGERDUTY: &[&str] = &[
    r#"{"routing_key":"R0123456789","event_action":"trigger","dedup_key":"d1","payload":{"summary":"DB down","source":"db-1","severity":"critical","component":"postgres","group":"prod","class":"availability","custom_details":{"a":"b"}}}"#,
    r#"{"routing_key":"R0123456789","event_action":"resolve","dedup_key":"d1"}"#,
];

/// Values that have broken parsers before, or might.
const NASTY: &[&str] = &[
    "\"\"",
    "\"\\u0000\"",
    "\"a\\u0000b\"",
    "\"\\u0007\\u001b\\n\\t\"",
    "\"\\ud800\"",
    "\"💥\"",
    "null",
    "true",
    "0",
    "-1",
    "1e999",
    "-0.0",
    "18446744073709551616",
    "[]",
    "{}",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    "\"+262143-12-31T23:59:59Z\"",
    "\"-262143-01-01T00:00:00Z\"",
    "\"9999-99-99T99:99:99Z\"",
    "\"2026-12-02T10:00:00+25:00\"",
    "{\"\":\"x\"}",
    "{\"a\\u0001\":\"x\"}",
    "{\"a\":\"x\\u0000\"}",
    "\"firing\"",
    "\"resolved\"",
    "\"acknowledge\"",
];

/// One mutation of `seed`.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..=rng.below(3) {
        match rng.below(8) {
            // Flip a byte.
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
            // Cut.
            1 if !b.is_empty() => {
                let i = rng.below(b.len());
                b.truncate(i);
            }
            // Repeat a slice.
            2 if b.len() > 2 => {
                let i = rng.below(b.len() - 1);
                let j = i + 1 + rng.below((b.len() - i).min(64));
                let piece = b[i..j.min(b.len())].to_vec();
                b.splice(i..i, piece);
            }
            // Swap a JSON value (after a colon) for a nasty one.
            3..=5 => {
                let colons: Vec<usize> = b
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c == b':')
                    .map(|(i, _)| i)
                    .collect();
                if colons.is_empty() {
                    continue;
                }
                let at = *rng.pick(&colons) + 1;
                let end = value_end(&b, at);
                let nasty = rng.pick(NASTY).as_bytes().to_vec();
                b.splice(at..end, nasty);
            }
            // Swap a key for a nasty name.
            6 => {
                let quotes: Vec<usize> = b
                    .windows(2)
                    .enumerate()
                    .filter(|(_, w)| w == b"\":")
                    .map(|(i, _)| i)
                    .collect();
                if quotes.is_empty() {
                    continue;
                }
                let end = *rng.pick(&quotes);
                let Some(start) = b[..end].iter().rposition(|c| *c == b'"') else {
                    continue;
                };
                let name = rng.pick(&["", "\\u0000", "a\\u0007", "é", "__name__", "alertname"]);
                b.splice(start + 1..end, name.bytes());
            }
            // Random bytes.
            _ => {
                let n = rng.below(16);
                let at = rng.below(b.len() + 1);
                let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                b.splice(at..at, junk);
            }
        }
    }
    b
}

/// Where the JSON value starting at `at` ends (roughly: up to the next
/// `,` `}` `]` outside a string).
fn value_end(b: &[u8], at: usize) -> usize {
    let mut depth = 0i32;
    let mut in_str = false;
    let mut i = at;
    while i < b.len() {
        let c = b[i];
        if in_str {
            if c == b'\\' {
                i += 1;
            } else if c == b'"' {
                in_str = false;
            }
        } else {
            match c {
                b'"' => in_str = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth == 0 => return i,
                b'}' | b']' => depth -= 1,
                b',' if depth == 0 => return i,
                _ => {}
            }
        }
        i += 1;
    }
    b.len()
}

/// What a run found.
#[derive(Default)]
struct Tally {
    cases: u64,
    accepted: u64,
    refused: u64,
    through_engine: u64,
    failures: Vec<String>,
}

fn check_alerts(p: &ingest::Payload) -> Result<(), String> {
    for a in &p.alerts {
        let mut has_value = false;
        for (k, v) in a.labels.iter() {
            if k.is_empty() || k.chars().any(char::is_control) {
                return Err(format!("accepted a bad label name {k:?}"));
            }
            if v.contains('\0') {
                return Err(format!("accepted a NUL in the value of {k:?}"));
            }
            has_value |= !v.is_empty();
        }
        if !has_value {
            return Err("accepted an alert without a label value".into());
        }
    }
    Ok(())
}

fn run(format: Format, seeds: &[&str], cases: u64, rng: &mut Rng, tally: &mut Tally) {
    let limits = Limits::default();
    let now = Utc::now();
    let mut engine = Engine::new(
        Arc::new(RuleSet::builtin().expect("built-in rules")),
        Settings {
            close_after: Duration::from_secs(3600),
            id_slot: None,
        },
    );
    for _ in 0..cases {
        let seed = *rng.pick(seeds);
        let body = mutate(rng, seed.as_bytes());
        tally.cases += 1;
        let first = quiet(|| ingest::parse(format, &body, &limits, now));
        let second = quiet(|| ingest::parse(format, &body, &limits, now));
        let shown = || String::from_utf8_lossy(&body[..body.len().min(400)]).into_owned();
        match (first, second) {
            (Err(_), _) | (_, Err(_)) => tally
                .failures
                .push(format!("{format:?}: the parser panicked on {}", shown())),
            (Ok(Ok(p)), Ok(Ok(q))) => {
                tally.accepted += 1;
                if let Err(why) = check_alerts(&p) {
                    tally
                        .failures
                        .push(format!("{format:?}: {why}: {}", shown()));
                }
                if p.alerts.len() != q.alerts.len()
                    || p.alerts
                        .iter()
                        .zip(&q.alerts)
                        .any(|(a, b)| a.fingerprint != b.fingerprint)
                {
                    tally
                        .failures
                        .push(format!("{format:?}: two parses differ: {}", shown()));
                }
                if tally.accepted % 50 == 0 {
                    tally.through_engine += 1;
                    let r = quiet(|| {
                        engine.ingest(p.alerts, now);
                        engine.discard_changes();
                    });
                    if r.is_err() {
                        tally
                            .failures
                            .push(format!("{format:?}: the engine panicked on {}", shown()));
                    }
                }
            }
            (Ok(Err(e)), Ok(Err(_))) => {
                tally.refused += 1;
                if e.to_string().trim().is_empty() {
                    tally.failures.push(format!(
                        "{format:?}: refused without a message: {}",
                        shown()
                    ));
                }
            }
            _ => tally.failures.push(format!(
                "{format:?}: accepted once, refused once: {}",
                shown()
            )),
        }
    }
}

fn arg(args: &[String], name: &str) -> Option<u64> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let cases = if bench {
        arg(&args, "--cases").unwrap_or(1_000_000)
    } else {
        2_000
    };
    let seed = arg(&args, "--seed").unwrap_or(0x1DC1_DE17);
    // Panics inside `quiet` are caught and counted; their default report
    // would flood the output. Any other panic is reported as usual.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !QUIET.with(|q| q.get()) {
            default_hook(info);
        }
    }));
    let mut failed = 0;
    for (format, seeds) in [
        (Format::AlertmanagerV2, SEEDS_V2),
        (Format::WebhookV4, SEEDS_WEBHOOK),
        (Format::Generic, SEEDS_GENERIC),
        (Format::PagerDutyV2, SEEDS_PAGERDUTY),
    ] {
        let mut rng = Rng(seed);
        let mut tally = Tally::default();
        let started = Instant::now();
        run(format, seeds, cases, &mut rng, &mut tally);
        println!(
            "{format:?}: {} cases in {:.1} s, {} accepted, {} refused, {} through the engine, {} failures",
            tally.cases,
            started.elapsed().as_secs_f64(),
            tally.accepted,
            tally.refused,
            tally.through_engine,
            tally.failures.len()
        );
        for f in tally.failures.iter().take(10) {
            println!("  FAIL {f}");
        }
        failed += tally.failures.len();
    }
    if failed > 0 {
        eprintln!("fuzz: {failed} failing case(s)");
        std::process::exit(1);
    }
}
