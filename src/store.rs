//! Durable state in one embedded redb file.
//!
//! Input: [`WriteSet`]s from the engine, each committed in one write
//! transaction (durable on return: redb fsyncs on commit). Output: the live
//! snapshot at start (every incident that is not closed, with its alerts, the
//! last incident id and the rolling MTTA/MTTR samples), and read-only views
//! for the API, which read concurrently with the writer (MVCC).
//!
//! Tables: `incidents` (key → JSON), `alerts` ((incident, fingerprint) →
//! postcard, see [`crate::row`]; JSON rows of earlier versions still read),
//! `timeline` ((incident, seq) → JSON), `open_incidents` (key → group
//! key; every incident that is not closed), `incidents_by_status`
//! ((status, key) → ()). Alert rows are the bulk of the file and of a
//! restart's decoding, hence binary; the rest stays JSON, inspectable.
//!
//! Two small binary tables carry what a plain repeat changes, so a repeat
//! is durable without rewriting its full rows: `alert_seen` ((incident,
//! fingerprint) → last seen, ends at, repeat count) and `incident_activity`
//! (key → last activity). Every write of a record also writes its small row,
//! and every read lays the small row over the record. Commits do not touch
//! those tables directly: each appends its small rows as one packed entry to
//! `seen_log` (a sequential append, instead of rewriting a page for every
//! randomly placed row). Once the log passes 1 MiB the writer folds it into
//! the two tables when its queue is empty ([`Store::fold_if_due`]), or a
//! commit does past 2 MiB if the writer is never idle. Readers lay the log
//! over the tables; opening the database folds whatever a previous run left
//! in it.
//!
//! `kafka_positions` ((topic, partition) → offset) holds the last Kafka
//! offset whose alerts are stored, written in the same transaction as them.
//! With the Kafka changelog on, `incident_home` (key → (topic, partition))
//! names the partition a live incident belongs to; an incident handed over
//! to another instance is deleted from every incident table (rows it left
//! in `seen_log` fold into orphan small rows that nothing reads).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::engine::{HistoryEntry, Live, Restored, WriteSet};
use crate::incident::{AlertRecord, AlertSeen, Incident, IncidentKey, Status, TimelineEntry};
use crate::row::ts;
use crate::suppress::{Silence, SuppressedAlert};

const INCIDENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("incidents");
const ALERTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("alerts");
const TIMELINE: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("timeline");
const ALERT_SEEN: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("alert_seen");
const ACTIVITY: TableDefinition<u64, (i64, u32)> = TableDefinition::new("incident_activity");
const SEEN_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("seen_log");

/// Fold the log into `alert_seen` / `incident_activity` beyond this size,
/// when the writer has nothing queued ([`Store::fold_if_due`]). Larger
/// means rarer (each fold rewrites most pages of `alert_seen`) but a longer
/// log for readers to scan.
const FOLD_BYTES: u64 = 1024 * 1024;
/// Fold inside the next commit beyond this size, for a writer that is never
/// idle: readers scan the whole log, so it must stay bounded.
const FOLD_BYTES_BUSY: u64 = 2 * 1024 * 1024;
const KAFKA_POSITIONS: TableDefinition<(&str, i32), i64> = TableDefinition::new("kafka_positions");
const HOMES: TableDefinition<u64, (&str, i32)> = TableDefinition::new("incident_home");
const OPEN: TableDefinition<u64, &str> = TableDefinition::new("open_incidents");
const BY_STATUS: TableDefinition<(&str, u64), ()> = TableDefinition::new("incidents_by_status");
const SUPPRESSED: TableDefinition<u64, &[u8]> = TableDefinition::new("suppressed_alerts");
const SILENCES: TableDefinition<&str, &[u8]> = TableDefinition::new("silences");
const ACTION_JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("action_jobs");

/// How far back past incidents are loaded for similarity and recurrence.
const HISTORY_DAYS: i64 = 30;
/// Most past incidents loaded for similarity and recurrence.
const HISTORY_MAX: usize = 100_000;

const STATUSES: [Status; 4] = [
    Status::Open,
    Status::Acknowledged,
    Status::Resolved,
    Status::Closed,
];

/// Storage failures. The daemon treats any of them as "not durable".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        source: redb::DatabaseError,
    },
    #[error("database: {0}")]
    Db(String),
    #[error("corrupt record in table {table}: {message}")]
    Corrupt {
        table: &'static str,
        message: String,
    },
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.to_string())
            }
        }
    )*};
}
db_err!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// What the engine starts from.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub live: Vec<Live>,
    pub restored: Restored,
    pub incidents_total: u64,
}

/// A Kafka topic, partition and the last offset whose alerts are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaPosition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// The Kafka partition an incident's alerts come from: the instance that
/// owns the partition owns the incident.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Home {
    pub topic: String,
    pub partition: i32,
}

impl std::fmt::Display for Home {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.topic, self.partition)
    }
}

/// An incident with its alerts and timeline.
pub type FullIncident = (Incident, Vec<AlertRecord>, Vec<TimelineEntry>);

/// Filters for listing incidents.
#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    pub status: Option<Status>,
    pub priority: Option<crate::rules::Priority>,
    pub category: Option<String>,
    pub limit: usize,
}

/// The database handle; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    path: PathBuf,
    /// Next `seen_log` key and the log's size in bytes. Only the writer
    /// commits, so the lock is uncontended.
    log: Arc<std::sync::Mutex<(u64, u64)>>,
    /// Incidents parked by the Kafka changelog (see
    /// [`crate::changelog::ChangelogWriter::park_all`]): their partition is
    /// not assigned here (yet), so listings leave them out.
    parked: Arc<std::sync::RwLock<std::collections::HashSet<u64>>>,
}

fn decode<T: serde::de::DeserializeOwned>(
    table: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        table,
        message: e.to_string(),
    })
}

fn decode_alert(bytes: &[u8]) -> Result<AlertRecord, StoreError> {
    crate::row::decode_alert(bytes).map_err(|message| StoreError::Corrupt {
        table: "alerts",
        message,
    })
}

fn from_ts(table: &'static str, t: crate::row::Ts) -> Result<DateTime<Utc>, StoreError> {
    crate::row::from_ts(t).map_err(|message| StoreError::Corrupt { table, message })
}

/// Marks "no end" in an `alert_seen` row.
const NO_END: u32 = u32::MAX;
const SEEN_LEN: usize = 32;

fn encode_seen(s: &AlertSeen) -> [u8; SEEN_LEN] {
    let mut b = [0u8; SEEN_LEN];
    let (ls, ln) = ts(s.last_seen_at);
    let (es, en) = s.ends_at.map_or((0, NO_END), ts);
    b[0..8].copy_from_slice(&ls.to_le_bytes());
    b[8..12].copy_from_slice(&ln.to_le_bytes());
    b[12..20].copy_from_slice(&es.to_le_bytes());
    b[20..24].copy_from_slice(&en.to_le_bytes());
    b[24..32].copy_from_slice(&s.repeat_count.to_le_bytes());
    b
}

fn decode_seen(b: &[u8]) -> Result<AlertSeen, StoreError> {
    const T: &str = "alert_seen";
    let b: &[u8; SEEN_LEN] = b.try_into().map_err(|_| StoreError::Corrupt {
        table: T,
        message: format!("row of {} bytes, expected {SEEN_LEN}", b.len()),
    })?;
    // The slices below have the exact widths of their integer types.
    let i64_at = |i: usize| i64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
    let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or_default());
    let en = u32_at(20);
    Ok(AlertSeen {
        last_seen_at: from_ts(T, (i64_at(0), u32_at(8)))?,
        ends_at: if en == NO_END {
            None
        } else {
            Some(from_ts(T, (i64_at(12), en))?)
        },
        repeat_count: u64::from_le_bytes(b[24..32].try_into().unwrap_or_default()),
    })
}

const LOG_SEEN_LEN: usize = 16 + SEEN_LEN;
const LOG_ACTIVITY_LEN: usize = 8 + 12;

/// One `seen_log` entry: the small rows of one commit.
fn encode_log(
    seen: &[(IncidentKey, u64, AlertSeen)],
    activity: &[(IncidentKey, DateTime<Utc>)],
) -> Vec<u8> {
    let mut b =
        Vec::with_capacity(8 + seen.len() * LOG_SEEN_LEN + activity.len() * LOG_ACTIVITY_LEN);
    b.extend_from_slice(&(seen.len() as u32).to_le_bytes());
    for (key, fp, s) in seen {
        b.extend_from_slice(&key.0.to_le_bytes());
        b.extend_from_slice(&fp.to_le_bytes());
        b.extend_from_slice(&encode_seen(s));
    }
    b.extend_from_slice(&(activity.len() as u32).to_le_bytes());
    for (key, at) in activity {
        let (secs, nanos) = ts(*at);
        b.extend_from_slice(&key.0.to_le_bytes());
        b.extend_from_slice(&secs.to_le_bytes());
        b.extend_from_slice(&nanos.to_le_bytes());
    }
    b
}

/// Decoded small rows; later entries replace earlier ones.
#[derive(Default)]
struct LogRows {
    seen: std::collections::HashMap<(u64, u64), [u8; SEEN_LEN]>,
    activity: std::collections::HashMap<u64, (i64, u32)>,
}

/// Which log rows a reader needs.
#[derive(Clone, Copy)]
struct Want {
    /// Only this incident's rows.
    incident: Option<u64>,
    /// Alert rows too (not only incident activity).
    alerts: bool,
}

const ALL: Want = Want {
    incident: None,
    alerts: true,
};

impl LogRows {
    fn add(&mut self, b: &[u8], want: Want) -> Result<(), StoreError> {
        let bad = || StoreError::Corrupt {
            table: "seen_log",
            message: format!("entry of {} bytes is truncated", b.len()),
        };
        let u32_at = |i: usize| -> Result<u32, StoreError> {
            Ok(u32::from_le_bytes(
                b.get(i..i + 4)
                    .ok_or_else(bad)?
                    .try_into()
                    .map_err(|_| bad())?,
            ))
        };
        let u64_at = |i: usize| -> Result<u64, StoreError> {
            Ok(u64::from_le_bytes(
                b.get(i..i + 8)
                    .ok_or_else(bad)?
                    .try_into()
                    .map_err(|_| bad())?,
            ))
        };
        let n = u32_at(0)? as usize;
        let mut i = 4;
        let keep = |inc: u64| want.incident.is_none_or(|k| k == inc);
        if !want.alerts {
            i += n * LOG_SEEN_LEN;
        }
        for _ in 0..if want.alerts { n } else { 0 } {
            if !keep(u64_at(i)?) {
                i += LOG_SEEN_LEN;
                continue;
            }
            let row: [u8; SEEN_LEN] = b
                .get(i + 16..i + LOG_SEEN_LEN)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?;
            self.seen.insert((u64_at(i)?, u64_at(i + 8)?), row);
            i += LOG_SEEN_LEN;
        }
        let n = u32_at(i)? as usize;
        i += 4;
        for _ in 0..n {
            if !keep(u64_at(i)?) {
                i += LOG_ACTIVITY_LEN;
                continue;
            }
            let secs = u64_at(i + 8)? as i64;
            self.activity.insert(u64_at(i)?, (secs, u32_at(i + 16)?));
            i += LOG_ACTIVITY_LEN;
        }
        Ok(())
    }

    fn read(
        log: &impl ReadableTable<u64, &'static [u8]>,
        want: Want,
    ) -> Result<LogRows, StoreError> {
        let mut rows = LogRows::default();
        for row in log.iter()? {
            rows.add(row?.1.value(), want)?;
        }
        Ok(rows)
    }
}

/// The small rows as a reader sees them: the log over the tables.
struct Hot {
    log: LogRows,
    seen: redb::ReadOnlyTable<(u64, u64), &'static [u8]>,
    activity: redb::ReadOnlyTable<u64, (i64, u32)>,
}

impl Hot {
    fn open(tx: &redb::ReadTransaction, want: Want) -> Result<Hot, StoreError> {
        Ok(Hot {
            log: LogRows::read(&tx.open_table(SEEN_LOG)?, want)?,
            seen: tx.open_table(ALERT_SEEN)?,
            activity: tx.open_table(ACTIVITY)?,
        })
    }

    /// An incident's alert records, in fingerprint order, each with its
    /// small repeat row laid over it. Both tables are keyed (incident,
    /// fingerprint), so the `alert_seen` rows are walked alongside the
    /// records instead of looked up one by one.
    fn alerts(
        &self,
        records: &impl ReadableTable<(u64, u64), &'static [u8]>,
        key: u64,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        let mut out = Vec::new();
        let mut seen = self.seen.range((key, 0)..=(key, u64::MAX))?;
        let mut next_seen = seen.next().transpose()?;
        for row in records.range((key, 0)..=(key, u64::MAX))? {
            let (k, v) = row?;
            let fp = k.value().1;
            while next_seen.as_ref().is_some_and(|(s, _)| s.value().1 < fp) {
                next_seen = seen.next().transpose()?;
            }
            let mut rec = decode_alert(v.value())?;
            if let Some(logged) = self.log.seen.get(&(key, fp)) {
                rec.apply_seen(decode_seen(logged)?);
            } else if let Some((_, row)) = next_seen.as_ref().filter(|(s, _)| s.value().1 == fp) {
                rec.apply_seen(decode_seen(row.value())?);
            }
            out.push(rec);
        }
        Ok(out)
    }

    /// Lays the small activity row over a decoded incident.
    fn incident(&self, inc: &mut Incident) -> Result<(), StoreError> {
        let at = match self.log.activity.get(&inc.id.0) {
            Some(at) => Some(*at),
            None => self.activity.get(inc.id.0)?.map(|v| v.value()),
        };
        if let Some(at) = at {
            inc.last_activity_at = from_ts("incident_activity", at)?;
        }
        Ok(())
    }
}

/// Moves every log entry into `alert_seen` / `incident_activity` (in key
/// order) and empties the log, inside the caller's transaction.
fn fold_log(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    let mut log = tx.open_table(SEEN_LOG)?;
    let rows = LogRows::read(&log, ALL)?;
    let mut seen = tx.open_table(ALERT_SEEN)?;
    let mut ordered: Vec<_> = rows.seen.into_iter().collect();
    ordered.sort_unstable_by_key(|(k, _)| *k);
    for (k, row) in ordered {
        seen.insert(k, row.as_slice())?;
    }
    let mut activity = tx.open_table(ACTIVITY)?;
    let mut ordered: Vec<_> = rows.activity.into_iter().collect();
    ordered.sort_unstable_by_key(|(k, _)| *k);
    for (k, at) in ordered {
        activity.insert(k, at)?;
    }
    log.retain(|_, _| false)?;
    Ok(())
}

fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    // Serializing our own plain structs to JSON cannot fail (no maps with
    // non-string keys, no failing Serialize impls).
    serde_json::to_vec(v).unwrap_or_default()
}

/// redb's own default (1 GiB) caches every page a restart reads: with a
/// million stored alerts that is most of the daemon's memory. 16 MiB
/// measured as fast as 64 (ingest and restart) with 50 MB less peak RSS at
/// 100,000 live alerts; see benches/README.md.
pub const DEFAULT_CACHE_MB: usize = 16;

impl Store {
    /// Opens (or creates) `DIR/incidentd.redb` with the default page cache.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_with_cache(dir, DEFAULT_CACHE_MB)
    }

    /// Opens (or creates) `DIR/incidentd.redb` with a page cache of `cache_mb` MiB.
    pub fn open_with_cache(dir: &Path, cache_mb: usize) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("incidentd.redb");
        let db = redb::Builder::new()
            .set_cache_size(cache_mb.max(1) << 20)
            .create(&path)
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        let store = Store {
            db: Arc::new(db),
            path,
            log: Arc::new(std::sync::Mutex::new((0, 0))),
            parked: Arc::default(),
        };
        // Create the tables so readers never see "table does not exist".
        let tx = store.db.begin_write()?;
        tx.open_table(INCIDENTS)?;
        tx.open_table(ALERTS)?;
        tx.open_table(ALERT_SEEN)?;
        tx.open_table(ACTIVITY)?;
        tx.open_table(TIMELINE)?;
        tx.open_table(OPEN)?;
        tx.open_table(BY_STATUS)?;
        tx.open_table(SUPPRESSED)?;
        tx.open_table(SILENCES)?;
        tx.open_table(ACTION_JOBS)?;
        tx.open_table(KAFKA_POSITIONS)?;
        tx.open_table(HOMES)?;
        tx.open_table(SEEN_LOG)?;
        // Start with an empty log: what a previous run appended goes into
        // the tables now.
        fold_log(&tx)?;
        tx.commit()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Folds the repeat log into its tables in a transaction of its own when
    /// it has grown past 1 MiB; true if it did. The writer calls this when
    /// its queue is empty, so the fold (tens of milliseconds with many live
    /// alerts) is not paid by a request waiting for its commit. Nothing
    /// acknowledged depends on it: on failure the log stays as it was.
    pub fn fold_if_due(&self) -> Result<bool, StoreError> {
        let mut log_state = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if log_state.1 <= FOLD_BYTES {
            return Ok(false);
        }
        let tx = self.db.begin_write()?;
        fold_log(&tx)?;
        tx.commit()?;
        *log_state = (0, 0);
        Ok(true)
    }

    /// Commits a write set in one durable transaction.
    pub fn commit(&self, ws: &WriteSet) -> Result<(), StoreError> {
        let tx = self.db.begin_write()?;
        let mut log_state = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (mut next, mut bytes) = *log_state;
        if !ws.seen.is_empty() || !ws.activity.is_empty() {
            let entry = encode_log(&ws.seen, &ws.activity);
            tx.open_table(SEEN_LOG)?.insert(next, entry.as_slice())?;
            next += 1;
            bytes += entry.len() as u64;
            if bytes > FOLD_BYTES_BUSY {
                fold_log(&tx)?;
                (next, bytes) = (0, 0);
            }
        }
        for key in &ws.replaced {
            let k = key.0;
            tx.open_table(ALERTS)?
                .retain_in((k, 0)..=(k, u64::MAX), |_, _| false)?;
            tx.open_table(TIMELINE)?
                .retain_in((k, 0)..=(k, u32::MAX), |_, _| false)?;
            tx.open_table(ALERT_SEEN)?
                .retain_in((k, 0)..=(k, u64::MAX), |_, _| false)?;
        }
        {
            let mut incidents = tx.open_table(INCIDENTS)?;
            let mut open = tx.open_table(OPEN)?;
            let mut by_status = tx.open_table(BY_STATUS)?;
            let reindex: std::collections::HashSet<IncidentKey> =
                ws.reindex.iter().copied().collect();
            for inc in &ws.incidents {
                let k = inc.id.0;
                incidents.insert(k, encode(inc).as_slice())?;
                if !reindex.contains(&inc.id) {
                    continue;
                }
                if inc.status == Status::Closed {
                    open.remove(k)?;
                } else {
                    open.insert(k, inc.group_key.as_str())?;
                }
                for s in STATUSES {
                    if s != inc.status {
                        by_status.remove((s.as_str(), k))?;
                    }
                }
                by_status.insert((inc.status.as_str(), k), ())?;
            }
            let mut alerts = tx.open_table(ALERTS)?;
            for (key, rec) in &ws.alerts {
                alerts.insert(
                    (key.0, rec.fingerprint),
                    crate::row::encode_alert(rec).as_slice(),
                )?;
            }

            let mut timeline = tx.open_table(TIMELINE)?;
            for (key, seq, entry) in &ws.timeline {
                timeline.insert((key.0, *seq), encode(entry).as_slice())?;
            }
            let mut suppressed = tx.open_table(SUPPRESSED)?;
            for s in &ws.suppressed {
                suppressed.insert(s.fingerprint, encode(s).as_slice())?;
            }
            for fp in &ws.unsuppressed {
                suppressed.remove(*fp)?;
            }
            let mut silences = tx.open_table(SILENCES)?;
            for s in &ws.silences {
                silences.insert(s.id.as_str(), encode(s).as_slice())?;
            }
            let mut jobs = tx.open_table(ACTION_JOBS)?;
            for j in &ws.jobs {
                jobs.insert(j.key.as_str(), encode(j).as_slice())?;
            }
            let mut positions = tx.open_table(KAFKA_POSITIONS)?;
            for p in &ws.kafka_positions {
                positions.insert((p.topic.as_str(), p.partition), p.offset)?;
            }
            let mut homes = tx.open_table(HOMES)?;
            for (key, home) in &ws.homes {
                match home {
                    Some(h) => homes.insert(key.0, (h.topic.as_str(), h.partition))?,
                    None => homes.remove(key.0)?,
                };
            }
            for key in &ws.dropped {
                let k = key.0;
                incidents.remove(k)?;
                open.remove(k)?;
                homes.remove(k)?;
                for s in STATUSES {
                    by_status.remove((s.as_str(), k))?;
                }
                alerts.retain_in((k, 0)..=(k, u64::MAX), |_, _| false)?;
                timeline.retain_in((k, 0)..=(k, u32::MAX), |_, _| false)?;
                tx.open_table(ALERT_SEEN)?
                    .retain_in((k, 0)..=(k, u64::MAX), |_, _| false)?;
                tx.open_table(ACTIVITY)?.remove(k)?;
            }
        }
        tx.commit()?;
        *log_state = (next, bytes);
        Ok(())
    }

    /// Loads what the engine needs to resume: live incidents with alerts,
    /// the newest id, and MTTA/MTTR samples inside `window` before `now`.
    pub fn load(&self, now: DateTime<Utc>, window: Duration) -> Result<Snapshot, StoreError> {
        let tx = self.db.begin_read()?;
        let incidents = tx.open_table(INCIDENTS)?;
        let alerts = tx.open_table(ALERTS)?;
        let hot = Hot::open(&tx, ALL)?;
        let open = tx.open_table(OPEN)?;
        let mut snap = Snapshot {
            incidents_total: incidents.len()?,
            ..Snapshot::default()
        };
        snap.restored.last_key = incidents.last()?.map(|(k, _)| IncidentKey(k.value()));
        for row in tx.open_table(SUPPRESSED)?.iter()? {
            snap.restored
                .suppressed
                .push(decode("suppressed_alerts", row?.1.value())?);
        }
        let forget_before = now - chrono::Duration::days(7);
        for row in tx.open_table(SILENCES)?.iter()? {
            let s: Silence = decode("silences", row?.1.value())?;
            if s.ends_at >= forget_before {
                snap.restored.silences.push(s);
            }
        }
        // Decoding the live incidents and their alerts is most of a
        // restart: spread it over the cores, each thread a run of keys.
        let open_keys = open
            .iter()?
            .map(|row| row.map(|(k, _)| k.value()))
            .collect::<Result<Vec<u64>, _>>()?;
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(open_keys.len().div_ceil(1000).max(1));
        let run = open_keys.len().div_ceil(threads).max(1);
        let load_run = |keys: &[u64]| -> Result<Vec<Live>, StoreError> {
            let mut out = Vec::with_capacity(keys.len());
            for &key in keys {
                let Some(v) = incidents.get(key)? else {
                    continue;
                };
                let mut incident: Incident = decode("incidents", v.value())?;
                hot.incident(&mut incident)?;
                let alerts = hot.alerts(&alerts, key)?;
                out.push(Live {
                    incident,
                    alerts: alerts.into_iter().map(|a| (a.fingerprint, a)).collect(),
                });
            }
            Ok(out)
        };
        std::thread::scope(|s| {
            let runs: Vec<_> = open_keys
                .chunks(run)
                .map(|keys| s.spawn(|| load_run(keys)))
                .collect();
            for r in runs {
                let live = r
                    .join()
                    .map_err(|_| StoreError::Db("a restore thread panicked".into()))??;
                snap.live.extend(live);
            }
            Ok::<(), StoreError>(())
        })?;
        // The scan below reads every recent incident; the live ones are
        // decoded already.
        let live_at: std::collections::HashMap<u64, usize> = snap
            .live
            .iter()
            .enumerate()
            .map(|(i, l)| (l.incident.id.0, i))
            .collect();
        let start = now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
        // Incidents created before the window can still have been acknowledged
        // or resolved inside it; scan newest first and stop well before.
        let horizon = start - chrono::Duration::days(90);
        let history_from = now - chrono::Duration::days(HISTORY_DAYS);
        for row in incidents.iter()?.rev() {
            let (k, v) = row?;
            let decoded;
            let inc: &Incident = match live_at.get(&k.value()) {
                Some(&i) => &snap.live[i].incident,
                None => {
                    decoded = decode::<Incident>("incidents", v.value())?;
                    &decoded
                }
            };
            if inc.created_at < horizon && inc.created_at < history_from {
                break;
            }
            if inc.acknowledged_at.is_some_and(|t| t >= start)
                || inc.resolved_at.is_some_and(|t| t >= start)
            {
                snap.restored.rolling.observe(inc);
            }
            if inc.created_at >= history_from && snap.restored.history.len() < HISTORY_MAX {
                snap.restored.history.push(HistoryEntry {
                    key: inc.id,
                    group_key: inc.group_key.clone(),
                    rule: inc.rule.clone(),
                    labels: inc.labels.clone(),
                    created_at: inc.created_at,
                });
            }
        }
        snap.restored.history.reverse();
        let live: std::collections::HashSet<IncidentKey> =
            snap.live.iter().map(|l| l.incident.id).collect();
        for row in tx.open_table(ACTION_JOBS)?.iter()? {
            let job: crate::actions::Job = decode("action_jobs", row?.1.value())?;
            if live.contains(&job.incident) || job.state == crate::actions::JobState::Pending {
                snap.restored.jobs.push(job);
            }
        }
        Ok(snap)
    }

    /// One incident as stored.
    pub fn incident(&self, key: IncidentKey) -> Result<Option<Incident>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(INCIDENTS)?;
        let Some(v) = t.get(key.0)? else {
            return Ok(None);
        };
        let mut inc: Incident = decode("incidents", v.value())?;
        Hot::open(
            &tx,
            Want {
                incident: Some(key.0),
                alerts: false,
            },
        )?
        .incident(&mut inc)?;
        Ok(Some(inc))
    }

    /// An incident with its alerts and timeline.
    pub fn incident_full(&self, key: IncidentKey) -> Result<Option<FullIncident>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(INCIDENTS)?;
        let Some(v) = t.get(key.0)? else {
            return Ok(None);
        };
        let mut inc: Incident = decode("incidents", v.value())?;
        let hot = Hot::open(
            &tx,
            Want {
                incident: Some(key.0),
                alerts: true,
            },
        )?;
        hot.incident(&mut inc)?;
        let alerts = hot.alerts(&tx.open_table(ALERTS)?, key.0)?;
        let tl_t = tx.open_table(TIMELINE)?;
        let mut timeline = Vec::new();
        for row in tl_t.range((key.0, 0)..=(key.0, u32::MAX))? {
            timeline.push(decode("timeline", row?.1.value())?);
        }
        Ok(Some((inc, alerts, timeline)))
    }

    /// A closed incident brought back into memory (for reopen, notes).
    pub fn load_live(&self, key: IncidentKey) -> Result<Option<Live>, StoreError> {
        Ok(self.incident_full(key)?.map(|(incident, alerts, _)| Live {
            incident,
            alerts: alerts.into_iter().map(|a| (a.fingerprint, a)).collect(),
        }))
    }

    /// The partition of every live incident that has one.
    pub fn homes(&self) -> Result<Vec<(IncidentKey, Home)>, StoreError> {
        let tx = self.db.begin_read()?;
        let open = tx.open_table(OPEN)?;
        let mut out = Vec::new();
        for row in tx.open_table(HOMES)?.iter()? {
            let (k, v) = row?;
            if open.get(k.value())?.is_some() {
                let (topic, partition) = v.value();
                out.push((
                    IncidentKey(k.value()),
                    Home {
                        topic: topic.to_string(),
                        partition,
                    },
                ));
            }
        }
        Ok(out)
    }

    /// The last stored Kafka offset of every partition this store has seen.
    pub fn kafka_positions(&self) -> Result<Vec<KafkaPosition>, StoreError> {
        let tx = self.db.begin_read()?;
        let mut out = Vec::new();
        for row in tx.open_table(KAFKA_POSITIONS)?.iter()? {
            let (k, v) = row?;
            let (topic, partition) = k.value();
            out.push(KafkaPosition {
                topic: topic.to_string(),
                partition,
                offset: v.value(),
            });
        }
        Ok(out)
    }

    /// Every stored silence (active, pending and expired).
    pub fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        let tx = self.db.begin_read()?;
        let mut out = Vec::new();
        for row in tx.open_table(SILENCES)?.iter()? {
            out.push(decode("silences", row?.1.value())?);
        }
        Ok(out)
    }

    /// Alerts currently kept out of incidents.
    pub fn suppressed(&self) -> Result<Vec<SuppressedAlert>, StoreError> {
        let tx = self.db.begin_read()?;
        let mut out = Vec::new();
        for row in tx.open_table(SUPPRESSED)?.iter()? {
            out.push(decode("suppressed_alerts", row?.1.value())?);
        }
        Ok(out)
    }

    /// Leaves these incidents out of listings (parked: another instance
    /// may own them now).
    pub fn park(&self, keys: impl IntoIterator<Item = IncidentKey>) {
        self.parked
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(keys.into_iter().map(|k| k.0));
    }

    /// Lists an incident again (its partition was assigned here).
    pub fn unpark(&self, key: IncidentKey) {
        self.parked
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&key.0);
    }

    /// Incidents newest first, filtered; parked ones are left out.
    pub fn list(&self, f: &ListFilter) -> Result<Vec<Incident>, StoreError> {
        let parked = self
            .parked
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let tx = self.db.begin_read()?;
        let incidents = tx.open_table(INCIDENTS)?;
        let hot = Hot::open(
            &tx,
            Want {
                incident: None,
                alerts: false,
            },
        )?;
        let mut out = Vec::new();
        let keep = |inc: &Incident| {
            f.priority.is_none_or(|p| inc.priority == p)
                && f.category.as_deref().is_none_or(|c| inc.category == c)
                && f.status.is_none_or(|s| inc.status == s)
        };
        if let Some(status) = f.status {
            let by_status = tx.open_table(BY_STATUS)?;
            let range = (status.as_str(), 0u64)..=(status.as_str(), u64::MAX);
            for row in by_status.range(range)?.rev() {
                let (k, _) = row?;
                let key = k.value().1;
                if parked.contains(&key) {
                    continue;
                }
                if let Some(v) = incidents.get(key)? {
                    let mut inc: Incident = decode("incidents", v.value())?;
                    if keep(&inc) {
                        hot.incident(&mut inc)?;
                        out.push(inc);
                        if out.len() >= f.limit {
                            break;
                        }
                    }
                }
            }
        } else {
            for row in incidents.iter()?.rev() {
                let (k, v) = row?;
                if parked.contains(&k.value()) {
                    continue;
                }
                let mut inc: Incident = decode("incidents", v.value())?;
                if keep(&inc) {
                    hot.incident(&mut inc)?;
                    out.push(inc);
                    if out.len() >= f.limit {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Alert, AlertStatus, Source};
    use crate::engine::{Engine, Settings};
    use crate::incident::{Op, OpRequest};
    use crate::rules::{labels, RuleSet};

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
        store.commit(&e.take_changes()).expect("commit");
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
        store.commit(&e.take_changes()).expect("commit");
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
        store.commit(&e.take_changes()).expect("commit");
        let live = e.live_incidents().next().expect("one incident").clone();
        let (fp, rec) = live.alerts.iter().next().expect("one alert");
        // Rewrite the row as the JSON earlier versions stored.
        let tx = store.db.begin_write().expect("tx");
        tx.open_table(ALERTS)
            .expect("table")
            .insert((live.incident.id.0, *fp), encode(rec).as_slice())
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
        let mut ws = e.take_changes();
        ws.homes = vec![(keys[0], Some(home(0))), (keys[1], Some(home(1)))];
        store.commit(&ws).expect("commit");
        let mut homes = store.homes().expect("homes");
        homes.sort();
        assert_eq!(homes, vec![(keys[0], home(0)), (keys[1], home(1))]);
        // A repeat lands in the log; the hand-over must delete under it too.
        e.ingest(vec![alert("A", AlertStatus::Firing)], now());
        store.commit(&e.take_changes()).expect("commit");

        assert!(e.hand_over(keys[0]));
        store.commit(&e.take_changes()).expect("commit");
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
        store.commit(&ws).expect("commit");
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
        store.commit(&e.take_changes()).expect("commit");
        let t1 = t0 + chrono::Duration::seconds(60);
        let mut again = alert("A", AlertStatus::Firing);
        again.ends_at = Some(t1 + chrono::Duration::seconds(240));
        e.ingest(vec![again], t1);
        let ws = e.take_changes();
        assert!(ws.alerts.is_empty() && ws.incidents.is_empty(), "{ws:?}");
        assert_eq!((ws.seen.len(), ws.activity.len()), (1, 1));
        store.commit(&ws).expect("commit");
        drop(store);

        let store = Store::open(dir.path()).expect("reopen");
        let snap = store.load(now(), Duration::from_secs(3600)).expect("load");
        let live = &snap.live[0];
        assert_eq!(live.incident.last_activity_at, t1);
        let rec = live.alerts.values().next().expect("alert");
        assert_eq!(rec.repeat_count, 1);
        assert_eq!(rec.last_seen_at, t1);
        assert_eq!(rec.ends_at, Some(t1 + chrono::Duration::seconds(240)));
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
                    a.fingerprint = crate::fingerprint::fingerprint(&a.labels);
                    a
                })
                .collect()
        };
        e.ingest(batch(5000), t0);
        store.commit(&e.take_changes()).expect("commit");
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
            let before = store.log.lock().expect("lock").0;
            store.commit(&ws).expect("commit");
            if store.log.lock().expect("lock").0 < before {
                busy_folds += 1;
            }
            if round <= 6 && store.fold_if_due().expect("fold") {
                idle_folds += 1;
                assert_eq!(*store.log.lock().expect("lock"), (0, 0));
            }
            let (inc, alerts, _) = store.incident_full(key).expect("read").expect("exists");
            assert_eq!(inc.last_activity_at, t, "round {round}");
            assert!(alerts
                .iter()
                .all(|a| a.last_seen_at == t && a.repeat_count == round as u64));
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
            .all(|a| a.last_seen_at == last && a.repeat_count == ROUNDS as u64));
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
}
