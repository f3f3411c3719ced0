//! Micro benchmarks of the pipeline stages: payload parse (Alertmanager v2,
//! webhook v4, a Kafka message), fingerprint, rule matching at 10/100/1,000
//! rules, the engine's dedup/correlate step, and durable store commits of
//! new alerts and of repeats. Figures and commands: benches/README.md.
//! Linked with mimalloc, the allocator the daemon runs with.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use incidentd::config::Limits;
use incidentd::engine::{Engine, Settings};
use incidentd::ingest::{self, Format};
use incidentd::model::fingerprint::fingerprint;
use incidentd::model::Labels;
use incidentd::rules::RuleSet;
use incidentd::store::Store;

/// The daemon's allocator (src/main.rs), so the figures are the daemon's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn v2_body(n: usize, offset: usize) -> String {
    let alerts: Vec<String> = (0..n)
        .map(|i| {
            let i = i + offset;
            format!(
                r#"{{"labels":{{"alertname":"Alert{}","instance":"host-{}:9100","job":"node","severity":"warning","namespace":"ns-{}"}},"annotations":{{"summary":"something on host-{} is wrong","runbook_url":"https://runbooks/x"}},"startsAt":"2026-11-23T10:00:00Z","endsAt":"2099-11-23T10:04:00Z","generatorURL":"http://prometheus:9090/graph?g0.expr=up"}}"#,
                i % 50,
                i,
                i % 20,
                i
            )
        })
        .collect();
    format!("[{}]", alerts.join(","))
}

fn webhook_body(n: usize) -> String {
    let alerts: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"status":"firing","labels":{{"alertname":"Alert{}","instance":"host-{i}:9100","severity":"critical"}},"annotations":{{"summary":"s"}},"startsAt":"2026-11-23T10:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"0"}}"#,
                i % 50
            )
        })
        .collect();
    format!(
        r#"{{"version":"4","groupKey":"{{}}:{{}}","status":"firing","receiver":"r","groupLabels":{{}},"commonLabels":{{}},"commonAnnotations":{{}},"externalURL":"http://am","alerts":[{}]}}"#,
        alerts.join(",")
    )
}

fn parse(c: &mut Criterion) {
    let limits = Limits::default();
    let mut g = c.benchmark_group("parse");
    let v2 = v2_body(100, 0);
    g.throughput(Throughput::Elements(100));
    g.bench_function("v2_100_alerts", |b| {
        b.iter(|| {
            ingest::parse(
                Format::AlertmanagerV2,
                black_box(v2.as_bytes()),
                &limits,
                Utc::now(),
            )
            .map(|p| p.alerts.len())
        })
    });
    let wh = webhook_body(100);
    g.bench_function("webhook_v4_100_alerts", |b| {
        b.iter(|| {
            ingest::parse(
                Format::WebhookV4,
                black_box(wh.as_bytes()),
                &limits,
                Utc::now(),
            )
            .map(|p| p.alerts.len())
        })
    });
    // A Kafka message: the format detected from the payload (`auto`, the
    // default per topic), then parsed, as the Kafka source does.
    g.bench_function("kafka_message_auto_100_alerts", |b| {
        b.iter(|| {
            incidentd::kafka::parse_message(
                incidentd::config::KafkaFormat::Auto,
                Some(black_box(v2.as_bytes())),
                &limits,
                Utc::now(),
            )
            .map(|p| p.len())
            .map_err(|r| r.message)
        })
    });
    g.finish();
}

fn fingerprints(c: &mut Criterion) {
    let labels: Labels = [
        ("alertname", "NodeFilesystemSpaceFillingUp"),
        ("instance", "host-17:9100"),
        ("job", "node"),
        ("mountpoint", "/var"),
        ("severity", "warning"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    c.bench_function("fingerprint_5_labels", |b| {
        b.iter(|| fingerprint(black_box(&labels)))
    });
}

/// N correlate rules: 80% `alertname="…"`, 20% `alertname=~"…"`, plus a
/// catch-all; the same shape at every size, so only N changes.
fn rule_file(n: usize) -> String {
    let mut s = String::from("correlate:\n");
    for i in 0..n {
        if i % 5 == 4 {
            s.push_str(&format!(
                "  - name: re{i}\n    match: ['alertname=~\"Regex{i}(Warning|Critical)?\"', 'severity=~\"warning|critical\"']\n    group_by: [instance]\n"
            ));
        } else {
            s.push_str(&format!(
                "  - name: r{i}\n    match: ['alertname=\"Exact{i}\"', 'severity!=\"info\"']\n    group_by: [instance]\n"
            ));
        }
    }
    s.push_str("  - name: catch-all\n    group_by: [alertname]\nclassify:\n");
    for i in 0..n {
        s.push_str(&format!(
            "  - match: ['alertname=\"Exact{i}\"']\n    category: software\n"
        ));
    }
    s
}

fn rule_matching(c: &mut Criterion) {
    let mut g = c.benchmark_group("rules_first_match");
    for n in [10usize, 100, 1000] {
        let rules = RuleSet::from_sources(&[("bench.yaml".into(), rule_file(n))], "bench")
            .expect("valid rules");
        // A mix of alerts: exact hits, regex hits and misses, spread over the whole rule list.
        let alerts: Vec<Labels> = (0..64)
            .map(|k| {
                let i = (k * 7919) % n;
                let name = match k % 3 {
                    0 => format!("Exact{}", i - (i % 5 == 4) as usize),
                    1 => format!("Regex{}Critical", (i / 5) * 5 + 4),
                    _ => format!("Unknown{k}"),
                };
                [
                    ("alertname", name.as_str()),
                    ("instance", "h:9100"),
                    ("severity", "critical"),
                ]
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
            })
            .collect();
        g.throughput(Throughput::Elements(alerts.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &alerts, |b, alerts| {
            b.iter(|| {
                let mut found = 0usize;
                for l in alerts {
                    found += rules.correlate_rule(l).name.len();
                    found += rules.category(l).len();
                }
                found
            })
        });
    }
    g.finish();
}

fn engine_step(c: &mut Criterion) {
    let rules = Arc::new(RuleSet::builtin().expect("rules"));
    let limits = Limits::default();
    let now = Utc::now();
    // 10,000 distinct alerts in batches of 100; the bench replays them, so
    // after the first pass every alert is a dedup hit on a live incident.
    let batches: Vec<_> = (0..100)
        .map(|b| {
            ingest::parse(
                Format::AlertmanagerV2,
                v2_body(100, b * 100).as_bytes(),
                &limits,
                now,
            )
            .expect("valid")
            .alerts
        })
        .collect();
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(100));
    g.bench_function("ingest_100_new_alerts", |b| {
        b.iter_batched(
            || {
                Engine::new(
                    rules.clone(),
                    Settings {
                        close_after: Duration::from_secs(3600),
                        id_slot: None,
                    },
                )
            },
            |mut e| {
                e.ingest(batches[0].clone(), now);
                e.take_changes().alerts.len()
            },
            criterion::BatchSize::SmallInput,
        )
    });
    let mut warm = Engine::new(
        rules.clone(),
        Settings {
            close_after: Duration::from_secs(3600),
            id_slot: None,
        },
    );
    for batch in &batches {
        warm.ingest(batch.clone(), now);
    }
    warm.take_changes();
    let mut k = 0usize;
    g.bench_function("ingest_100_repeats_10k_live_alerts", |b| {
        b.iter(|| {
            k = (k + 1) % batches.len();
            warm.ingest(batches[k].clone(), now);
            warm.take_changes().alerts.len()
        })
    });
    g.finish();
}

/// Alerts that each open an incident of their own (distinct alertnames,
/// no labels a storm rule groups by).
fn distinct_incidents_body(n: usize, offset: usize) -> String {
    let alerts: Vec<String> = (0..n)
        .map(|i| {
            let i = i + offset;
            format!(
                r#"{{"labels":{{"alertname":"Problem{i}","instance":"host-{i}:9100","severity":"warning"}},"annotations":{{"summary":"problem {i}"}},"startsAt":"2026-11-23T10:00:00Z","endsAt":"2099-11-23T10:04:00Z"}}"#
            )
        })
        .collect();
    format!("[{}]", alerts.join(","))
}

/// Issue 20, target 3: a tick with nothing due, and 100 new alerts, with
/// 1,000 and with 100,000 open incidents. The tick visits only incidents
/// whose wake is due, so its cost should not follow the open count.
fn engine_at_scale(c: &mut Criterion) {
    let rules = Arc::new(RuleSet::builtin().expect("rules"));
    let limits = Limits::default();
    let now = Utc::now();
    let parse = |n: usize, offset: usize| {
        ingest::parse(
            Format::AlertmanagerV2,
            distinct_incidents_body(n, offset).as_bytes(),
            &limits,
            now,
        )
        .expect("valid")
        .alerts
    };
    let mut g = c.benchmark_group("engine_open");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(4));
    for open in [1_000usize, 100_000] {
        let mut e = Engine::new(
            rules.clone(),
            Settings {
                close_after: Duration::from_secs(3600),
                id_slot: None,
            },
        );
        for chunk in 0..open / 1000 {
            e.ingest(parse(1000, chunk * 1000), now);
            e.take_changes();
        }
        assert_eq!(e.live_incidents().count(), open, "one incident per alert");
        let mut t = now;
        g.bench_with_input(BenchmarkId::new("tick_nothing_due", open), &open, |b, _| {
            b.iter(|| {
                t += chrono::Duration::microseconds(1);
                e.tick(t);
                e.take_changes().is_empty()
            })
        });
        let mut next = open;
        g.throughput(Throughput::Elements(100));
        g.bench_with_input(
            BenchmarkId::new("ingest_100_new_alerts", open),
            &open,
            |b, _| {
                b.iter_custom(|iters| {
                    let mut took = Duration::ZERO;
                    for _ in 0..iters {
                        let batch = parse(100, next);
                        next += 100;
                        let started = std::time::Instant::now();
                        e.ingest(batch, now);
                        let ws = e.take_changes();
                        took += started.elapsed();
                        // Keep the open count where it was (not timed).
                        for i in &ws.incidents {
                            e.hand_over(i.id);
                        }
                        e.take_changes();
                    }
                    took
                })
            },
        );
        g.throughput(Throughput::Elements(1));
    }
    g.finish();
}

fn store_commit(c: &mut Criterion) {
    let rules = Arc::new(RuleSet::builtin().expect("rules"));
    let limits = Limits::default();
    let now = Utc::now();
    let mut g = c.benchmark_group("store_commit_durable");
    g.sample_size(20);
    for n in [100usize, 1000] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let mut e = Engine::new(
            rules.clone(),
            Settings {
                close_after: Duration::from_secs(3600),
                id_slot: None,
            },
        );
        let mut offset = 0usize;
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                let alerts = ingest::parse(
                    Format::AlertmanagerV2,
                    v2_body(n, offset).as_bytes(),
                    &limits,
                    now,
                )
                .expect("valid")
                .alerts;
                offset += n;
                e.ingest(alerts, now);
                store.commit(&e.take_changes().into()).expect("commit")
            })
        });
    }
    g.finish();
}

/// The steady state: the same 1,000 live alerts notified again, committed
/// durably (the small repeat rows and the log, no JSON rows).
fn store_commit_repeats(c: &mut Criterion) {
    let rules = Arc::new(RuleSet::builtin().expect("rules"));
    let limits = Limits::default();
    let now = Utc::now();
    let mut g = c.benchmark_group("store_commit_durable_repeats");
    g.sample_size(20);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let mut e = Engine::new(
        rules,
        Settings {
            close_after: Duration::from_secs(3600),
            id_slot: None,
        },
    );
    let body = v2_body(1000, 0);
    let alerts = ingest::parse(Format::AlertmanagerV2, body.as_bytes(), &limits, now)
        .expect("valid")
        .alerts;
    e.ingest(alerts, now);
    store.commit(&e.take_changes().into()).expect("commit");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("1000", |b| {
        b.iter(|| {
            let alerts = ingest::parse(Format::AlertmanagerV2, body.as_bytes(), &limits, now)
                .expect("valid")
                .alerts;
            e.ingest(alerts, now);
            store.commit(&e.take_changes().into()).expect("commit")
        })
    });
    g.finish();
}

/// Issue 20: what one durable redb commit costs by the pages it dirties,
/// apart from incidentd. A table of 300,000 rows of 250 bytes (about the
/// alert rows of a storm); each commit inserts `n` new rows either at the
/// end of the key space (a handful of pages) or at random keys (about one
/// leaf page each), as the alert rows of a storm over many incidents do.
fn redb_pages(c: &mut Criterion) {
    use redb::{Database, Durability, TableDefinition};
    const T: TableDefinition<u64, &[u8]> = TableDefinition::new("rows");
    let mut g = c.benchmark_group("redb_commit_pages");
    g.sample_size(20);
    let value = [7u8; 250];
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::create(dir.path().join("pages.redb")).expect("db");
    {
        let mut tx = db.begin_write().expect("tx");
        tx.set_durability(Durability::None).expect("durability");
        {
            let mut t = tx.open_table(T).expect("table");
            for k in 0..300_000u64 {
                // Spread over the key space so random keys land between them.
                t.insert(k << 32, value.as_slice()).expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    let mut seq = 300_000u64 << 32;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for n in [400u64, 4000] {
        g.throughput(Throughput::Elements(n));
        g.bench_with_input(BenchmarkId::new("sequential", n), &n, |b, &n| {
            b.iter(|| {
                let tx = db.begin_write().expect("tx");
                {
                    let mut t = tx.open_table(T).expect("table");
                    for _ in 0..n {
                        seq += 1;
                        t.insert(seq, value.as_slice()).expect("insert");
                    }
                }
                tx.commit().expect("commit")
            })
        });
        g.bench_with_input(BenchmarkId::new("random", n), &n, |b, &n| {
            b.iter(|| {
                let tx = db.begin_write().expect("tx");
                {
                    let mut t = tx.open_table(T).expect("table");
                    for _ in 0..n {
                        // xorshift: keys anywhere below the sequential ones.
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        t.insert(rng % (300_000u64 << 32), value.as_slice())
                            .expect("insert");
                    }
                }
                tx.commit().expect("commit")
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    redb_pages,
    parse,
    fingerprints,
    rule_matching,
    engine_step,
    engine_at_scale,
    store_commit,
    store_commit_repeats
);
criterion_main!(benches);
