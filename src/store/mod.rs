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
//! Layout: `schema` (tables), [`row`] (codecs), `seen` (the repeat
//! rows and their log), [`write`](mod@write) (commit), [`read`] (snapshot and views).

pub mod error;
pub mod read;
pub mod row;
mod schema;
mod seen;
pub mod write;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::config::DEFAULT_STORE_CACHE_MB;
use crate::model::IncidentKey;
use schema::*;
use seen::fold_log;

pub use error::StoreError;
pub use read::{FullIncident, ListFilter, Snapshot};
pub use write::Batch;

/// The database handle; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<redb::Database>,
    path: PathBuf,
    /// Next `seen_log` key and the log's size in bytes. Only the writer
    /// commits, so the lock is uncontended.
    log: Arc<Mutex<(u64, u64)>>,
    /// Incidents parked by the Kafka changelog: their partition is not
    /// assigned here (yet), so listings leave them out.
    parked: Arc<RwLock<HashSet<u64>>>,
}

impl Store {
    /// Opens (or creates) `DIR/incidentd.redb` with the default page cache.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_with_cache(dir, DEFAULT_STORE_CACHE_MB)
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
                source: Box::new(source),
            })?;
        let store = Store {
            db: Arc::new(db),
            path,
            log: Arc::new(Mutex::new((0, 0))),
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

    /// Leaves these incidents out of listings (parked: another instance
    /// may own them now).
    pub fn park(&self, keys: impl IntoIterator<Item = IncidentKey>) {
        self.parked.write().extend(keys.into_iter().map(|k| k.0));
    }

    /// Lists an incident again (its partition was assigned here).
    pub fn unpark(&self, key: IncidentKey) {
        self.parked.write().remove(&key.0);
    }
}

#[cfg(test)]
mod tests;
