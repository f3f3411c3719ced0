//! The store against a real redb file in a temp dir: commit, restore,
//! the repeat rows and their log, hand-over deletes, format compatibility.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::seen::{decode_seen, encode_seen};
use super::*;
use crate::engine::{Engine, Settings};
use crate::model::labels::labels;
use crate::model::{
    Alert, AlertSeen, AlertStatus, Home, IncidentKey, Op, OpRequest, Source, Status,
};
use crate::rules::RuleSet;

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn alert(name: &str, status: AlertStatus) -> Alert {
    Alert::new(
        labels(&[("alertname", name), ("severity", "critical")]),
        Default::default(),
        Some(status),
        None,
        None,
        String::new(),
        Source::Generic,
        None,
        now(),
    )
    .expect("labels")
}

fn engine() -> Engine {
    Engine::new(
        Arc::new(RuleSet::builtin().expect("rules")),
        Settings {
            close_after: Duration::from_secs(0),
            id_slot: None,
        },
    )
}

#[test]
fn commit_then_load_restores_live_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let mut e = engine();
    e.ingest(
        vec![
            alert("A", AlertStatus::Firing),
            alert("B", AlertStatus::Firing),
        ],
        now(),
    );
    store.commit(&e.take_changes().into()).expect("commit");
    let listed = store
        .list(&ListFilter {
            limit: 10,
            ..ListFilter::default()
        })
        .expect("list");
    assert_eq!(listed.len(), 2);
    let a = listed
        .iter()
        .find(|i| i.title.starts_with('A'))
        .expect("A")
        .id;
    e.apply_op(a, Op::Ack, &OpRequest::default(), now(), |_| None)
        .expect("ack");
    store.commit(&e.take_changes().into()).expect("commit");
    drop(store);

    let store = Store::open(dir.path()).expect("reopen");
    let snap = store.load(now(), Duration::from_secs(3600)).expect("load");
    assert_eq!(snap.live.len(), 2);
    assert_eq!(snap.incidents_total, 2);
    assert!(snap.restored.last_key.is_some());
    let (inc, alerts, timeline) = store.incident_full(a).expect("read").expect("exists");
    assert_eq!(inc.status, Status::Acknowledged);
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        timeline.iter().map(|t| t.kind.as_str()).collect::<Vec<_>>(),
        vec!["created", "acknowledged"]
    );
    let acked = store
        .list(&ListFilter {
            status: Some(Status::Acknowledged),
            limit: 10,
            ..ListFilter::default()
        })
        .expect("list");
    assert_eq!(acked.iter().map(|i| i.id).collect::<Vec<_>>(), vec![a]);
    assert!(store
        .list(&ListFilter {
            status: Some(Status::Open),
            limit: 10,
            ..ListFilter::default()
        })
        .expect("list")
        .iter()
        .all(|i| i.id != a));
}

#[test]
fn alert_rows_an_earlier_version_wrote_as_json_still_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let mut e = engine();
    e.ingest(vec![alert("A", AlertStatus::Firing)], now());
    store.commit(&e.take_changes().into()).expect("commit");
    let live = e.live_incidents().next().expect("one incident").clone();
    let (fp, rec) = live.alerts.iter().next().expect("one alert");
    // Rewrite the row as the JSON earlier versions stored.
    let tx = store.db.begin_write().expect("tx");
    tx.open_table(ALERTS)
        .expect("table")
        .insert(
            (live.incident.id.0, *fp),
            crate::model::json::to_vec(rec).as_slice(),
        )
        .expect("insert");
    tx.commit().expect("commit");
    drop(store);

    let store = Store::open(dir.path()).expect("reopen");
    let snap = store.load(now(), Duration::from_secs(3600)).expect("load");
    assert_eq!(snap.live.len(), 1);
    assert_eq!(snap.live[0].alerts.get(fp), Some(rec));
    let (_, alerts, _) = store
        .incident_full(live.incident.id)
        .expect("read")
        .expect("exists");
    assert_eq!(alerts.first(), Some(rec));
}

#[test]
fn homes_are_kept_for_live_incidents_and_handed_over_ones_are_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let mut e = engine();
    let out = e.ingest(
        vec![
            alert("A", AlertStatus::Firing),
            alert("B", AlertStatus::Firing),
        ],
        now(),
    );
    let keys: Vec<IncidentKey> = out
        .iter()
        .filter_map(|o| match o {
            crate::engine::Outcome::Created(k) => Some(*k),
            _ => None,
        })
        .collect();
    let home = |p| Home {
        topic: "alerts".into(),
        partition: p,
    };
    let mut batch = Batch::from(e.take_changes());
    batch.homes = vec![(keys[0], Some(home(0))), (keys[1], Some(home(1)))];
    store.commit(&batch).expect("commit");
    let mut homes = store.homes().expect("homes");
    homes.sort();
    assert_eq!(homes, vec![(keys[0], home(0)), (keys[1], home(1))]);
    // A repeat lands in the log; the hand-over must delete under it too.
    e.ingest(vec![alert("A", AlertStatus::Firing)], now());
    store.commit(&e.take_changes().into()).expect("commit");

    assert!(e.hand_over(keys[0]));
    store.commit(&e.take_changes().into()).expect("commit");
    assert!(store.incident(keys[0]).expect("read").is_none());
    assert!(store.incident_full(keys[0]).expect("read").is_none());
    let listed = store
        .list(&ListFilter {
            limit: 10,
            ..ListFilter::default()
        })
        .expect("list");
    assert_eq!(
        listed.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![keys[1]]
    );
    assert_eq!(store.homes().expect("homes"), vec![(keys[1], home(1))]);
    drop(store);
    let store = Store::open(dir.path()).expect("reopen");
    let snap = store.load(now(), Duration::from_secs(3600)).expect("load");
    assert_eq!(
        snap.live.iter().map(|l| l.incident.id).collect::<Vec<_>>(),
        vec![keys[1]],
        "the handed-over incident does not come back at restart"
    );
}

#[test]
fn closed_incidents_leave_the_live_set_but_stay_readable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let mut e = engine();
    e.ingest(vec![alert("A", AlertStatus::Firing)], now());
    e.ingest(vec![alert("A", AlertStatus::Resolved)], now());
    e.tick(now() + chrono::Duration::seconds(1));
    let ws = e.take_changes();
    assert!(ws.incidents.iter().any(|i| i.status == Status::Closed));
    store.commit(&ws.into()).expect("commit");
    let snap = store.load(now(), Duration::from_secs(3600)).expect("load");
    assert!(snap.live.is_empty());
    let closed = store
        .list(&ListFilter {
            status: Some(Status::Closed),
            limit: 10,
            ..ListFilter::default()
        })
        .expect("list");
    assert_eq!(closed.len(), 1);
    // The MTTR sample survives in the snapshot.
    let mut rolling = snap.restored.rolling;
    let means = rolling.means(now(), Duration::from_secs(3600));
    assert!(means[1].iter().any(Option::is_some));
}

#[test]
fn a_plain_repeat_writes_only_the_small_rows_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let mut e = engine();
    let t0 = now();
    e.ingest(vec![alert("A", AlertStatus::Firing)], t0);
    store.commit(&e.take_changes().into()).expect("commit");
    let t1 = t0 + chrono::Duration::seconds(60);
    let mut again = alert("A", AlertStatus::Firing);
    again.ends_at = Some(t1 + chrono::Duration::seconds(240));
    e.ingest(vec![again], t1);
    let ws = e.take_changes();
    assert!(ws.alerts.is_empty() && ws.incidents.is_empty(), "{ws:?}");
    assert_eq!((ws.seen.len(), ws.activity.len()), (1, 1));
    store.commit(&ws.into()).expect("commit");
    drop(store);

    let store = Store::open(dir.path()).expect("reopen");
    let snap = store.load(now(), Duration::from_secs(3600)).expect("load");
    let live = &snap.live[0];
    assert_eq!(live.incident.last_activity_at, t1);
    let rec = live.alerts.values().next().expect("alert");
    assert_eq!(rec.alert.repeat_count, 1);
    assert_eq!(rec.alert.last_seen_at, t1);
    assert_eq!(rec.alert.ends_at, Some(t1 + chrono::Duration::seconds(240)));
    let (inc, alerts, _) = store
        .incident_full(live.incident.id)
        .expect("read")
        .expect("exists");
    assert_eq!(inc.last_activity_at, t1);
    assert_eq!(alerts[0].seen(), rec.seen());
    let listed = store
        .list(&ListFilter {
            limit: 1,
            ..ListFilter::default()
        })
        .expect("list");
    assert_eq!(listed[0].last_activity_at, t1);
}

#[test]
fn repeats_read_the_same_before_and_after_the_log_is_folded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let mut e = engine();
    let t0 = now();
    let batch = |n: usize| -> Vec<Alert> {
        (0..n)
            .map(|i| alert(&format!("A{}", i % 7), AlertStatus::Firing))
            .enumerate()
            .map(|(i, mut a)| {
                a.labels.insert("instance".into(), format!("h{i}"));
                a.fingerprint = crate::model::fingerprint::fingerprint(&a.labels);
                a
            })
            .collect()
    };
    e.ingest(batch(5000), t0);
    store.commit(&e.take_changes().into()).expect("commit");
    let key = store
        .list(&ListFilter {
            limit: 1,
            ..ListFilter::default()
        })
        .expect("list")[0]
        .id;
    // Each round is a ~250 KB log entry. For the first 6 rounds the
    // writer is idle after each commit and folds past 1 MiB on its own;
    // then it is busy, and the commit itself folds past 2 MiB.
    let (mut idle_folds, mut busy_folds) = (0, 0);
    const ROUNDS: i64 = 16;
    for round in 1..=ROUNDS {
        let t = t0 + chrono::Duration::seconds(round * 60);
        e.ingest(batch(5000), t);
        let ws = e.take_changes();
        assert_eq!(ws.seen.len(), 5000);
        let before = store.log.lock().0;
        store.commit(&ws.into()).expect("commit");
        if store.log.lock().0 < before {
            busy_folds += 1;
        }
        if round <= 6 && store.fold_if_due().expect("fold") {
            idle_folds += 1;
            assert_eq!(*store.log.lock(), (0, 0));
        }
        let (inc, alerts, _) = store.incident_full(key).expect("read").expect("exists");
        assert_eq!(inc.last_activity_at, t, "round {round}");
        assert!(alerts
            .iter()
            .all(|a| a.alert.last_seen_at == t && a.alert.repeat_count == round as u64));
    }
    assert_eq!((idle_folds, busy_folds), (1, 1), "folds while idle, busy");
    drop(store);
    let store = Store::open(dir.path()).expect("reopen");
    let last = t0 + chrono::Duration::seconds(ROUNDS * 60);
    let snap = store.load(now(), Duration::from_secs(3600)).expect("load");
    assert!(snap
        .live
        .iter()
        .all(|l| l.incident.last_activity_at == last));
    assert!(snap
        .live
        .iter()
        .flat_map(|l| l.alerts.values())
        .all(|a| a.alert.last_seen_at == last && a.alert.repeat_count == ROUNDS as u64));
}

#[test]
fn seen_rows_round_trip_and_reject_bad_lengths() {
    let s = AlertSeen {
        last_seen_at: now(),
        ends_at: None,
        repeat_count: 7,
    };
    assert_eq!(decode_seen(&encode_seen(&s)).expect("decode"), s);
    let far = AlertSeen {
        ends_at: DateTime::from_timestamp(253_402_300_799, 999_999_999),
        ..s
    };
    assert_eq!(decode_seen(&encode_seen(&far)).expect("decode"), far);
    let e = decode_seen(&[0; 5]).expect_err("short").to_string();
    assert!(e.contains("alert_seen") && e.contains("5 bytes"), "{e}");
}

#[test]
fn second_open_of_the_same_file_fails_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _first = Store::open(dir.path()).expect("open");
    let e = Store::open(dir.path()).err().expect("locked").to_string();
    assert!(e.contains("cannot open database"), "{e}");
}
