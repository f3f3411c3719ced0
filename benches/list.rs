//! Listing at scale: fills a temp data dir with `--incidents` stored
//! incidents (default 1,000,000; 1% open, 1% acknowledged, the rest
//! closed; labels `cluster` (10 values) and `team` (100 values)), written
//! through the real store, then times `Store::list_page` — what
//! `GET /api/v1/incidents` runs — for the queries the board and the CLI
//! send: each 30 times, printing the median and the slowest in ms.
//!
//! Run: `cargo bench --bench list -- [--incidents N]`. Under `cargo test`
//! it does a small smoke run (5,000 incidents, each query once) that
//! checks the answers.

use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use incidentd::engine::ChangeSet;
use incidentd::model::{matcher, Incident, IncidentKey, Labels, Priority, Sla, Status};
use incidentd::store::{Batch, ListFilter, Store};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let n: u64 = args
        .iter()
        .position(|a| a == "--incidents")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 1_000_000 } else { 5_000 });
    // Under `cargo test` (a debug build): one pass, to check the answers.
    let reps = if bench { 30 } else { 1 };
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let t0 = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("time");
    let started = Instant::now();
    let per_day: u64 = if bench { 5_000 } else { 1_000 };
    let mut batch = Vec::with_capacity(10_000);
    // Under `cargo test`: every incident, to check each answer against.
    let mut all: Vec<Incident> = Vec::new();
    for i in 0..n {
        let at = t0 + Duration::seconds((i * 86_400 / per_day) as i64);
        let date = (at.format("%Y%m%d").to_string())
            .parse::<u32>()
            .expect("date");
        let key = IncidentKey::new(date, i % per_day + 1);
        let status = match i % 100 {
            0 => Status::Open,
            1 => Status::Acknowledged,
            _ => Status::Closed,
        };
        let mut labels = Labels::default();
        labels.insert("alertname".into(), format!("Alert{}", i % 50));
        labels.insert("cluster".into(), format!("c{}", i % 10));
        labels.insert("team".into(), format!("t{}", i % 100));
        let sla = Sla {
            acknowledge_by: at,
            resolve_by: at,
            breached: false,
            acknowledge_breached: false,
            resolve_breached: false,
        };
        let inc = Incident {
            title: format!("incident {i}"),
            status,
            priority: Priority::ALL[(i % 5) as usize],
            labels,
            alert_count: 1,
            closed_at: (status == Status::Closed).then_some(at),
            ..Incident::new(key, at, sla)
        };
        if !bench {
            all.push(inc.clone());
        }
        batch.push(inc);
        if batch.len() == 10_000 || i + 1 == n {
            let changes = ChangeSet {
                reindex: batch.iter().map(|i| i.id).collect(),
                incidents: std::mem::take(&mut batch),
                ..ChangeSet::default()
            };
            store.commit(&Batch::from(changes)).expect("commit");
        }
    }
    eprintln!(
        "filled {n} incidents in {:.1} s; file {} MiB",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(store.path()).map_or(0, |m| m.len()) >> 20
    );

    let newest = store
        .list_page(
            &ListFilter {
                limit: 1,
                ..ListFilter::default()
            },
            false,
        )
        .expect("list");
    let deep = IncidentKey(newest.incidents[0].id.0 - 1);
    let queries: Vec<(&str, ListFilter)> = vec![
        (
            "first page, no filter (limit 100)",
            ListFilter {
                limit: 100,
                ..ListFilter::default()
            },
        ),
        (
            "status=open (limit 100)",
            ListFilter {
                limit: 100,
                status: Some(Status::Open),
                ..ListFilter::default()
            },
        ),
        (
            "status=closed (limit 100)",
            ListFilter {
                limit: 100,
                status: Some(Status::Closed),
                ..ListFilter::default()
            },
        ),
        (
            "cursor page after the newest (limit 100)",
            ListFilter {
                limit: 100,
                after: Some(deep),
                ..ListFilter::default()
            },
        ),
        (
            "cursor page, status=closed, team=\"t7\" (limit 100)",
            ListFilter {
                limit: 100,
                after: Some(deep),
                status: Some(Status::Closed),
                matchers: matcher::parse("team=\"t7\"").expect("matcher"),
                ..ListFilter::default()
            },
        ),
        (
            "oldest first (limit 100)",
            ListFilter {
                limit: 100,
                oldest_first: true,
                ..ListFilter::default()
            },
        ),
        (
            "match=team=\"t7\" (limit 100)",
            ListFilter {
                limit: 100,
                matchers: matcher::parse("team=\"t7\"").expect("matcher"),
                ..ListFilter::default()
            },
        ),
        (
            "status=open, match=cluster=\"c0\" (limit 100)",
            ListFilter {
                limit: 100,
                status: Some(Status::Open),
                matchers: matcher::parse("cluster=\"c0\"").expect("matcher"),
                ..ListFilter::default()
            },
        ),
        (
            "status=closed, match=team=\"t3\" (limit 100)",
            ListFilter {
                limit: 100,
                status: Some(Status::Closed),
                matchers: matcher::parse("team=\"t3\"").expect("matcher"),
                ..ListFilter::default()
            },
        ),
        (
            "status=acknowledged, cluster=\"c1\", team=\"t1\"",
            ListFilter {
                limit: 100,
                status: Some(Status::Acknowledged),
                matchers: matcher::parse("cluster=\"c1\",team=\"t1\"").expect("matcher"),
                ..ListFilter::default()
            },
        ),
        (
            "created in one day (limit 100)",
            ListFilter {
                limit: 100,
                created_after: Some(t0 + Duration::days(1)),
                created_before: Some(t0 + Duration::days(2)),
                ..ListFilter::default()
            },
        ),
        (
            "created in one day, match=team=\"t7\" (limit 100)",
            ListFilter {
                limit: 100,
                created_after: Some(t0 + Duration::days(1)),
                created_before: Some(t0 + Duration::days(2)),
                matchers: matcher::parse("team=\"t7\"").expect("matcher"),
                ..ListFilter::default()
            },
        ),
        (
            "match=team=~\"t1.\" (10%, a regex; limit 100)",
            ListFilter {
                limit: 100,
                matchers: matcher::parse("team=~\"t1.\"").expect("matcher"),
                ..ListFilter::default()
            },
        ),
        (
            "match=team=\"nobody\" (matches none)",
            ListFilter {
                limit: 100,
                matchers: matcher::parse("team=\"nobody\"").expect("matcher"),
                ..ListFilter::default()
            },
        ),
    ];
    println!("list over {n} stored incidents (Store::list_page, with X-Total-Count):");
    for (name, f) in &queries {
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..reps {
            let t = Instant::now();
            let page = store.list_page(f, true).expect("list");
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            last = Some(page);
        }
        times.sort_by(|a, b| a.total_cmp(b));
        let page = last.expect("ran");
        assert!(page.incidents.len() <= 100);
        if !bench {
            check(name, f, &page, &all);
        }
        println!(
            "  {name:<48} median {:>7.2} ms  max {:>7.2} ms  page {:>3}  total {}",
            times[times.len() / 2],
            times[times.len() - 1],
            page.incidents.len(),
            page.total
                .map(|t| t.to_string())
                .unwrap_or_else(|| "(not counted)".into())
        );
    }
}

/// Checks a page and its total against a filter applied to every incident.
fn check(name: &str, f: &ListFilter, page: &incidentd::store::ListPage, all: &[Incident]) {
    let mut want: Vec<&Incident> = all
        .iter()
        .filter(|i| {
            f.status.is_none_or(|s| i.status == s)
                && f.created_after.is_none_or(|t| i.created_at >= t)
                && f.created_before.is_none_or(|t| i.created_at < t)
                && matcher::all_match(&f.matchers, &i.labels)
                && f.after
                    .is_none_or(|a| if f.oldest_first { i.id > a } else { i.id < a })
        })
        .collect();
    let total = all
        .iter()
        .filter(|i| {
            f.status.is_none_or(|s| i.status == s)
                && f.created_after.is_none_or(|t| i.created_at >= t)
                && f.created_before.is_none_or(|t| i.created_at < t)
                && matcher::all_match(&f.matchers, &i.labels)
        })
        .count() as u64;
    want.sort_by_key(|i| i.id);
    if !f.oldest_first {
        want.reverse();
    }
    let got: Vec<IncidentKey> = page.incidents.iter().map(|i| i.id).collect();
    let want_ids: Vec<IncidentKey> = want.iter().take(f.limit).map(|i| i.id).collect();
    assert_eq!(got, want_ids, "{name}: the page");
    assert_eq!(page.total, Some(total), "{name}: the total");
    assert_eq!(
        page.next.is_some(),
        want.len() > f.limit,
        "{name}: whether there is a next page"
    );
}
