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
    let tx = store.db().expect("open").begin_write().expect("tx");
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
    assert_eq!(alerts.first(), Some(&**rec));
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
        let before = store.inner.log.lock().0;
        store.commit(&ws.into()).expect("commit");
        if store.inner.log.lock().0 < before {
            busy_folds += 1;
        }
        if round <= 6 && store.fold_if_due().expect("fold") {
            idle_folds += 1;
            assert_eq!(*store.inner.log.lock(), (0, 0));
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

#[test]
fn retention_deletes_what_is_past_its_time_in_batches_with_a_controlled_clock() {
    use crate::engine::ChangeSet;
    use crate::model::{Job, JobState, Silence, Trigger};
    use maintenance::Retention;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let day = chrono::Duration::days(1);
    let t0: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().expect("time");
    let mut e = engine();
    // Five incidents closed on day 1, one closed on day 20, one open.
    let mut keys = Vec::new();
    for i in 0..7 {
        let out = e.ingest(vec![alert(&format!("R{i}"), AlertStatus::Firing)], t0);
        let crate::engine::Outcome::Created(k) = out[0] else {
            panic!("created: {out:?}")
        };
        keys.push(k);
    }
    for (i, k) in keys.iter().enumerate().take(6) {
        let at = if i < 5 { t0 + day } else { t0 + day * 20 };
        e.apply_op(*k, Op::Resolve, &OpRequest::default(), at, |_| None)
            .expect("resolve");
        e.apply_op(*k, Op::Close, &OpRequest::default(), at, |_| None)
            .expect("close");
    }
    store.commit(&e.take_changes().into()).expect("commit");
    // Jobs: finished old, pending old, finished new, one of a closed incident.
    let job = |key: &str, incident: IncidentKey, state: JobState, at: DateTime<Utc>| Job {
        key: key.into(),
        incident,
        action: "page".into(),
        trigger: Trigger::Opened,
        created_at: at,
        state,
        attempts: 1,
        last_result: None,
        payload: serde_json::Value::Null,
        not_before: None,
    };
    let open = keys[6];
    let silence = |id: &str, ends: DateTime<Utc>| Silence {
        id: id.into(),
        matchers: vec!["a=\"b\"".into()],
        starts_at: t0,
        ends_at: ends,
        comment: "c".into(),
        created_by: "t".into(),
        on_behalf_of: None,
        created_at: t0,
        compiled: Vec::new(),
    };
    let changes = ChangeSet {
        jobs: vec![
            job(
                &format!("{open}/page/opened/1"),
                open,
                JobState::Succeeded,
                t0,
            ),
            job(
                &format!("{open}/page/opened/2"),
                open,
                JobState::Pending,
                t0,
            ),
            job(
                &format!("{open}/page/opened/3"),
                open,
                JobState::Failed,
                t0 + day * 40,
            ),
            job(
                &format!("{}/page/opened/1", keys[0]),
                keys[0],
                JobState::Pending,
                t0,
            ),
        ],
        silences: vec![silence("old", t0 + day), silence("new", t0 + day * 45)],
        ..ChangeSet::default()
    };
    store.commit(&changes.into()).expect("commit");

    let policy = Retention {
        closed_incidents: std::time::Duration::from_secs(10 * 86400),
        finished_jobs: std::time::Duration::from_secs(10 * 86400),
        expired_silences: std::time::Duration::from_secs(10 * 86400),
        batch: 2,
    };
    // Day 5: nothing is old enough.
    let d = store.retention(t0 + day * 5, &policy).expect("retention");
    assert_eq!(d, maintenance::Deleted::default());
    // Day 15: the five closed on day 1 go, two per pass; the job of a
    // deleted incident goes with it; the old finished job and the old
    // silence go; the pending job stays.
    let mut total = maintenance::Deleted::default();
    for _ in 0..10 {
        let d = store.retention(t0 + day * 15, &policy).expect("retention");
        assert!(d.incidents <= 2 && d.jobs <= 2 && d.silences <= 2, "{d:?}");
        total.incidents += d.incidents;
        total.jobs += d.jobs;
        total.silences += d.silences;
        if !d.more(policy.batch) {
            break;
        }
    }
    assert_eq!(
        total,
        maintenance::Deleted {
            incidents: 5,
            jobs: 1,
            silences: 1
        }
    );
    for k in &keys[..5] {
        assert!(
            store.incident_full(*k).expect("read").is_none(),
            "{k} deleted"
        );
    }
    assert!(
        store.incident_full(keys[5]).expect("read").is_some(),
        "closed on day 20: kept"
    );
    assert!(
        store.incident_full(open).expect("read").is_some(),
        "open: kept"
    );
    let closed = store
        .list(&ListFilter {
            status: Some(Status::Closed),
            limit: 100,
            ..ListFilter::default()
        })
        .expect("list");
    assert_eq!(
        closed.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![keys[5]]
    );
    let jobs: Vec<String> = store
        .read_all::<_, Job>(ACTION_JOBS, "action_jobs")
        .expect("jobs")
        .into_iter()
        .map(|j| j.key)
        .collect();
    assert_eq!(
        jobs,
        vec![
            format!("{open}/page/opened/2"),
            format!("{open}/page/opened/3")
        ],
        "pending and recent jobs stay"
    );
    let silences: Vec<String> = store
        .silences()
        .expect("silences")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(silences, vec!["new".to_string()]);
}

#[test]
fn a_v2_file_is_upgraded_with_its_tuple_tables_and_kept_as_a_copy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(FILE);
    {
        let db = redb2::Database::create(&path).expect("redb 2 file");
        let tx = db.begin_write().expect("tx");
        {
            let mut pos = tx
                .open_table(redb2::TableDefinition::<(&str, i32), i64>::new(
                    "kafka_positions",
                ))
                .expect("positions");
            pos.insert(("alerts", 3), 42).expect("insert");
            let mut homes = tx
                .open_table(redb2::TableDefinition::<u64, (&str, i32)>::new(
                    "incident_home",
                ))
                .expect("homes");
            homes.insert(7, ("alerts", 3)).expect("insert");
            let mut open = tx
                .open_table(redb2::TableDefinition::<u64, &str>::new("open_incidents"))
                .expect("open");
            open.insert(7, "g").expect("insert");
            let mut by_status = tx
                .open_table(redb2::TableDefinition::<(&str, u64), ()>::new(
                    "incidents_by_status",
                ))
                .expect("by status");
            by_status.insert(("open", 7), ()).expect("insert");
        }
        tx.commit().expect("commit");
    }
    let original = std::fs::read(&path).expect("read");
    let store = Store::open(dir.path()).expect("upgraded");
    assert_eq!(
        std::fs::read(dir.path().join(V2_BACKUP)).expect("copy kept"),
        original
    );
    let positions = store.kafka_positions().expect("positions");
    assert_eq!(positions.len(), 1);
    assert_eq!(
        (
            positions[0].topic.as_str(),
            positions[0].partition,
            positions[0].offset
        ),
        ("alerts", 3, 42)
    );
    let homes = store.homes().expect("homes");
    assert_eq!(homes.len(), 1);
    assert_eq!(homes[0].0, IncidentKey(7));
    assert_eq!(
        (homes[0].1.topic.as_str(), homes[0].1.partition),
        ("alerts", 3)
    );
    let tx = redb::ReadableDatabase::begin_read(&*store.db().expect("db")).expect("read");
    let by_status = tx.open_table(BY_STATUS).expect("index");
    assert!(by_status.get(("open", 7)).expect("get").is_some());
    drop(by_status);
    drop(tx);
    drop(store);
    // The next start keeps the data and drops the copy.
    let store = Store::open(dir.path()).expect("second start");
    assert!(!dir.path().join(V2_BACKUP).exists());
    assert_eq!(store.kafka_positions().expect("positions").len(), 1);
}

/// An incident row as the listing test writes it.
fn listed_incident(key: IncidentKey, pairs: &[(&str, &str)]) -> crate::model::Incident {
    let at = now();
    let sla = crate::model::Sla {
        acknowledge_by: at,
        resolve_by: at,
        breached: false,
        acknowledge_breached: false,
        resolve_breached: false,
    };
    crate::model::Incident {
        labels: labels(pairs),
        ..crate::model::Incident::new(key, at, sla)
    }
}

fn keys_matching(store: &Store, text: &str) -> (Vec<IncidentKey>, Option<u64>) {
    let page = store
        .list_page(
            &ListFilter {
                limit: 100,
                matchers: crate::model::matcher::parse(text).expect("matcher"),
                ..ListFilter::default()
            },
            true,
        )
        .expect("list");
    (page.incidents.iter().map(|i| i.id).collect(), page.total)
}

#[test]
fn the_label_index_follows_labels_lost_and_gained_drops_and_an_old_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (IncidentKey::new(20261202, 1), IncidentKey::new(20261202, 2));
    {
        let store = Store::open(dir.path()).expect("open");
        let write = |incs: Vec<crate::model::Incident>, dropped: Vec<IncidentKey>| {
            let changes = crate::engine::ChangeSet {
                reindex: incs.iter().map(|i| i.id).collect(),
                incidents: incs,
                dropped,
                ..Default::default()
            };
            store.commit(&Batch::from(changes)).expect("commit");
        };
        write(
            vec![
                listed_incident(a, &[("cluster", "c1"), ("node", "n1")]),
                listed_incident(b, &[("cluster", "c1"), ("node", "n2")]),
            ],
            vec![],
        );
        assert_eq!(
            keys_matching(&store, r#"cluster="c1""#),
            (vec![b, a], Some(2))
        );
        assert_eq!(keys_matching(&store, r#"node="n1""#), (vec![a], Some(1)));
        // `a` loses `node` (an alert without it joined) and gains `zone`
        // (a split recomputes the labels).
        write(
            vec![listed_incident(a, &[("cluster", "c1"), ("zone", "z")])],
            vec![],
        );
        assert_eq!(keys_matching(&store, r#"node="n1""#), (vec![], Some(0)));
        assert_eq!(keys_matching(&store, r#"zone="z""#), (vec![a], Some(1)));
        // Matchers the index cannot answer are checked on the list rows.
        assert_eq!(
            keys_matching(&store, r#"cluster="c1",node=~"n.*""#),
            (vec![b], Some(1))
        );
        assert_eq!(
            keys_matching(&store, r#"cluster="c1",node="""#),
            (vec![a], Some(1))
        );
        // A dropped incident leaves the index.
        write(vec![], vec![b]);
        assert_eq!(keys_matching(&store, r#"cluster="c1""#), (vec![a], Some(1)));
        // An earlier release's store: incidents without the index.
        let tx = store.db().expect("db").begin_write().expect("tx");
        tx.delete_table(LIST_ROWS).expect("drop rows");
        tx.delete_table(BY_LABEL).expect("drop index");
        tx.commit().expect("commit");
    }
    let store = Store::open(dir.path()).expect("reopen builds the index");
    assert_eq!(keys_matching(&store, r#"zone="z""#), (vec![a], Some(1)));
    assert_eq!(keys_matching(&store, r#"cluster="c1""#), (vec![a], Some(1)));
}

/// A storm adds nothing to the repeat log: an alert's first write has no
/// small row, nor has an incident an alert opened. So that no stale small row can lie over a record that comes
/// back, a commit that removes alert rows folds the log first; what every
/// reader sees is the same before and after.
#[test]
fn a_new_alert_has_no_small_row_and_a_removal_folds_the_log_first() {
    use crate::model::{DeskOp, SplitRequest};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let mut e = engine();
    let t0 = now();
    let two = |status| {
        ["h1", "h2"]
            .iter()
            .map(|h| {
                let mut a = alert("Split", status);
                a.labels.insert("instance".into(), (*h).into());
                a.fingerprint = crate::model::fingerprint::fingerprint(&a.labels);
                a
            })
            .collect::<Vec<_>>()
    };
    e.ingest(two(AlertStatus::Firing), t0);
    let ws = e.take_changes();
    assert_eq!((ws.alerts.len(), ws.seen.len()), (2, 0), "{ws:?}");
    assert!(
        ws.activity.is_empty(),
        "a new incident's row has its activity"
    );
    store.commit(&ws.into()).expect("commit");
    // Repeats go to the log.
    for s in 1..=3 {
        e.ingest(two(AlertStatus::Firing), t0 + chrono::Duration::seconds(s));
        let ws = e.take_changes();
        assert_eq!(ws.seen.len(), 2);
        store.commit(&ws.into()).expect("commit");
    }
    assert!(store.inner.log.lock().1 > 0, "repeats are in the log");
    let key = store.list(&ListFilter::default()).expect("list")[0].id;
    let counts = |store: &Store| -> Vec<u64> {
        let live = store.load_live(key).expect("read").expect("stored");
        live.alerts.values().map(|r| r.alert.repeat_count).collect()
    };
    assert_eq!(counts(&store), vec![3, 3]);
    // Split one alert off: the commit removes its row from `key`.
    let fp = crate::model::fingerprint::to_hex(two(AlertStatus::Firing)[1].fingerprint);
    e.desk(
        Some(key),
        DeskOp::Split(SplitRequest {
            alerts: vec![fp],
            title: None,
            by: None,
        }),
        "ann",
        t0 + chrono::Duration::seconds(10),
        Vec::new(),
        |_| None,
    )
    .expect("split");
    let ws = e.take_changes();
    assert_eq!(ws.removed_alerts.len(), 1);
    store.commit(&ws.into()).expect("commit");
    assert_eq!(
        *store.inner.log.lock(),
        (0, 0),
        "the removal folded the log"
    );
    assert_eq!(counts(&store), vec![3]);
    drop(store);
    let store = Store::open(dir.path()).expect("reopen");
    let snap = store.load(now(), Duration::from_secs(3600)).expect("load");
    let mut repeats: Vec<u64> = snap
        .live
        .iter()
        .flat_map(|l| l.alerts.values().map(|r| r.alert.repeat_count))
        .collect();
    repeats.sort();
    assert_eq!(repeats, vec![3, 3], "both alerts, in their two incidents");
}
