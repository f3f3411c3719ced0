//! Durable state in one embedded redb file.
//!
//! Input: [`Batch`]es (the engine's change set plus Kafka positions and homes), each committed in one write
//! transaction (durable on return: redb fsyncs on commit). Output: the live
//! snapshot at start (every incident that is not closed, with its alerts, the
//! last incident id and the rolling MTTA/MTTR samples), and read-only views
//! for the API, which read concurrently with the writer (MVCC).
//!
//! Tables: `incidents` (key → JSON), `alerts` ((incident, fingerprint) →
//! postcard, see [`row`]; JSON rows of earlier versions still read),
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

//!
//! Opening: a missing file is a new database; an empty (zero-length) file
//! or one redb cannot read is refused with what was found, never treated as
//! new. A file of the releases before redb 4 (file format v2) is upgraded in
//! place, a copy kept as `incidentd.redb.v2-backup` until the next start.
//! After a failed commit (a full disk, an I/O error) the handle is unhealthy:
//! the writer reopens the file ([`Store::reopen`]) and reloads what is
//! committed, and readers get [`StoreError::Unavailable`] meanwhile.
//!
//! Layout: `schema` (tables), [`row`] (codecs), `seen` (the repeat
//! rows and their log), `listing` (the listing index: list rows and labels),
//! `upgrade` (from file format v2), [`write`](mod@write) (commit), [`read`] (snapshot
//! and views), [`maintenance`] (integrity check, backup, retention).

pub mod error;
mod listing;
pub mod read;
pub mod row;
mod schema;
mod seen;
pub mod write;

pub mod maintenance;
mod upgrade;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use redb::Database;

use crate::config::DEFAULT_STORE_CACHE_MB;
use crate::model::IncidentKey;
use schema::*;
use seen::fold_log;

pub use error::StoreError;
pub use read::{FullIncident, ListFilter, ListPage, Snapshot, TimelineAfter};
pub use write::Batch;

/// The database file's name in the data directory.
pub const FILE: &str = "incidentd.redb";
/// The copy of a file-format-v2 database kept across its upgrade.
pub const V2_BACKUP: &str = "incidentd.redb.v2-backup";

/// What a reopen writes to prove the file takes writes again.
const PROBE_BYTES: usize = 1 << 20;

/// The database handle; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    cache_mb: usize,
    /// `None` while the file is being reopened.
    db: RwLock<Option<Arc<Database>>>,
    /// Next `seen_log` key and the log's size in bytes. Only the writer
    /// commits, so the lock is uncontended.
    log: Mutex<(u64, u64)>,
    /// Incidents parked by the Kafka changelog: their partition is not
    /// assigned here (yet), so listings leave them out.
    parked: RwLock<HashSet<u64>>,
    /// Why the last commit failed, until one succeeds again.
    failure: RwLock<Option<String>>,
}

/// Whether the store can commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Healthy,
    /// The last commit failed with this error; writes are refused until the
    /// file is reopened.
    Failing(String),
}

impl Store {
    /// Opens (or creates) `DIR/incidentd.redb` with the default page cache.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_with_cache(dir, DEFAULT_STORE_CACHE_MB)
    }

    /// Opens (or creates) `DIR/incidentd.redb` with a page cache of
    /// `cache_mb` MiB (see the module contract for what it refuses).
    pub fn open_with_cache(dir: &Path, cache_mb: usize) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(FILE);
        let upgraded = path.with_file_name(V2_BACKUP).exists();
        let db = open_file(&path, cache_mb, true)?;
        let store = Store {
            inner: Arc::new(Inner {
                path,
                cache_mb,
                db: RwLock::new(Some(Arc::new(db))),
                log: Mutex::new((0, 0)),
                parked: RwLock::default(),
                failure: RwLock::new(None),
            }),
        };
        store.prepare()?;
        if upgraded {
            drop_v2_backup(&store.inner.path);
        }
        Ok(store)
    }

    /// Creates the tables (so readers never see "table does not exist")
    /// and folds what a previous run left in the repeat log.
    fn prepare(&self) -> Result<(), StoreError> {
        let tx = self.db()?.begin_write()?;
        tx.open_table(INCIDENTS)?;
        tx.open_table(ALERTS)?;
        tx.open_table(ALERT_SEEN)?;
        tx.open_table(ACTIVITY)?;
        tx.open_table(TIMELINE)?;
        tx.open_table(OPEN)?;
        tx.open_table(BY_STATUS)?;
        tx.open_table(SUPPRESSED)?;
        tx.open_table(SILENCES)?;
        tx.open_table(HEARTBEATS)?;
        tx.open_table(OVERRIDES)?;
        tx.open_table(ACTION_JOBS)?;
        tx.open_table(KAFKA_POSITIONS)?;
        tx.open_table(HOMES)?;
        tx.open_table(SEEN_LOG)?;
        tx.open_table(LIST_ROWS)?;
        tx.open_table(BY_LABEL)?;
        upgrade::unstash(&tx)?;
        listing::backfill(&tx)?;
        fold_log(&tx)?;
        tx.commit()?;
        *self.inner.log.lock() = (0, 0);
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The open database, or `Unavailable` while it is being reopened.
    fn db(&self) -> Result<Arc<Database>, StoreError> {
        self.inner.db.read().clone().ok_or(StoreError::Unavailable)
    }

    /// Whether the store can commit (see [`Store::failed`]).
    pub fn health(&self) -> Health {
        match self.inner.failure.read().clone() {
            None => Health::Healthy,
            Some(reason) => Health::Failing(reason),
        }
    }

    /// Marks the store unhealthy after a failed commit.
    pub fn failed(&self, reason: String) {
        *self.inner.failure.write() = Some(reason);
    }

    /// Closes the file and opens it again (after an I/O error redb refuses
    /// every further write until then), waiting up to 5 s for readers to
    /// let go of the old handle, then writes a 1 MiB probe ([`Store::probe`]).
    /// Healthy again on success.
    pub fn reopen(&self) -> Result<(), StoreError> {
        self.replace_handle()?;
        let proved = self.prepare().and_then(|()| self.probe(PROBE_BYTES));
        if let Err(e) = proved {
            // The failure latches in this handle; readers get a fresh one
            // (reads work on a full disk).
            if let Err(again) = self.replace_handle() {
                tracing::warn!(error = %again, "cannot reopen the database for readers");
            }
            return Err(e);
        }
        *self.inner.failure.write() = None;
        Ok(())
    }

    /// Drops the open handle (waiting for readers, see [`Store::reopen`])
    /// and opens the file again.
    fn replace_handle(&self) -> Result<(), StoreError> {
        let old = self.inner.db.write().take();
        if let Some(mut old) = old {
            let until = Instant::now() + Duration::from_secs(5);
            loop {
                match Arc::try_unwrap(old) {
                    Ok(db) => {
                        drop(db);
                        break;
                    }
                    Err(still) if Instant::now() < until => {
                        old = still;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(still) => {
                        *self.inner.db.write() = Some(still);
                        return Err(StoreError::Busy);
                    }
                }
            }
        }
        let db = open_file(&self.inner.path, self.inner.cache_mb, false)?;
        *self.inner.db.write() = Some(Arc::new(db));
        Ok(())
    }

    /// Proves the file takes writes again: commits `bytes` of scratch data
    /// and then deletes it (two commits). Healing uses it so a store on a
    /// still-full disk is not reported healthy by a reopen that wrote
    /// nothing.
    pub fn probe(&self, bytes: usize) -> Result<(), StoreError> {
        let db = self.db()?;
        let scratch = vec![0u8; bytes];
        let tx = db.begin_write()?;
        tx.open_table(PROBE)?.insert(0, scratch.as_slice())?;
        tx.commit()?;
        let tx = db.begin_write()?;
        tx.open_table(PROBE)?.remove(0)?;
        tx.commit()?;
        Ok(())
    }

    /// Leaves these incidents out of listings (parked: another instance
    /// may own them now).
    pub fn park(&self, keys: impl IntoIterator<Item = IncidentKey>) {
        self.inner
            .parked
            .write()
            .extend(keys.into_iter().map(|k| k.0));
    }

    /// Lists an incident again (its partition was assigned here).
    pub fn unpark(&self, key: IncidentKey) {
        self.inner.parked.write().remove(&key.0);
    }
}

/// Opens the file with redb, refusing an empty or damaged one and
/// upgrading a file-format-v2 one when `upgrade` (see the module
/// contract); without it a v2 file is [`StoreError::NeedsUpgrade`].
fn open_file(path: &Path, cache_mb: usize, upgrade: bool) -> Result<Database, StoreError> {
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.len() == 0 {
            return Err(StoreError::Empty {
                path: path.to_path_buf(),
            });
        }
    }
    let open_err = |source| StoreError::Open {
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    match create(path, cache_mb)? {
        Ok(db) => Ok(db),
        Err(redb::DatabaseError::UpgradeRequired(version)) if upgrade => {
            upgrade::upgrade_v2(path, version)?;
            create(path, cache_mb)?.map_err(open_err)
        }
        Err(redb::DatabaseError::UpgradeRequired(version)) => Err(StoreError::NeedsUpgrade {
            path: path.to_path_buf(),
            version,
        }),
        Err(source) => Err(open_err(source)),
    }
}

/// After a successful start, the copy kept across an upgrade goes.
fn drop_v2_backup(path: &Path) {
    let backup = path.with_file_name(V2_BACKUP);
    if backup.exists() {
        match std::fs::remove_file(&backup) {
            Ok(()) => {
                tracing::info!(backup = %backup.display(), "the copy kept across the database upgrade is removed: this start succeeded without it")
            }
            Err(e) => {
                tracing::warn!(backup = %backup.display(), error = %e, "cannot remove the copy kept across the database upgrade")
            }
        }
    }
}

/// redb's open, with a panic on a damaged file turned into an error.
fn create(
    path: &Path,
    cache_mb: usize,
) -> Result<Result<Database, redb::DatabaseError>, StoreError> {
    // redb calls the callback only when the file was not closed cleanly
    // (a crash, SIGKILL, power loss) and it has to repair it first.
    let repairing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let started = std::time::Instant::now();
    let builder = || {
        let flag = repairing.clone();
        redb::Builder::new()
            .set_cache_size(cache_mb.max(1) << 20)
            .set_repair_callback(move |_| {
                flag.store(true, std::sync::atomic::Ordering::Relaxed);
            })
            .create(path)
    };
    let db = std::panic::catch_unwind(std::panic::AssertUnwindSafe(builder)).map_err(|panic| {
        StoreError::Damaged {
            path: path.to_path_buf(),
            message: panic_message(&panic),
        }
    })?;
    if repairing.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            db = %path.display(),
            seconds = started.elapsed().as_secs_f64(),
            ok = db.is_ok(),
            "the database was not closed cleanly (crash or kill); redb checked and repaired it before the start"
        );
    }
    Ok(db)
}

/// The text of a caught panic.
pub fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

#[cfg(test)]
mod tests;
