//! The in-place upgrade of a database written by the releases before
//! redb 4 (redb 2.x, file format v2).
//!
//! Contract: [`upgrade_v2`] copies the file to `incidentd.redb.v2-backup`
//! (unless a copy is already there), then, with redb 2 on the file itself:
//! moves the rows of the tables whose key or value is a variable-width tuple
//! (`incidents_by_status`, `kafka_positions`, `incident_home`; redb 3
//! changed how those tuples are encoded and redb 4 cannot read the old
//! form) into a stash table with a neutral encoding, deleting the old
//! tables, in one transaction; then converts the file format. The first
//! write transaction of the new store ([`unstash`], run by `prepare`)
//! writes the stashed rows back in the new encoding and drops the stash.
//! Every step is idempotent, so a crash at any point resumes on the next
//! start; the copy is removed after the next successful start.

use std::path::Path;
use std::time::Instant;

use redb::{ReadableTable as _, ReadableTableMetadata as _};
use redb2::{ReadableTable as _, ReadableTableMetadata as _};
use serde::{Deserialize, Serialize};

use super::error::StoreError;
use super::schema::{BY_STATUS, HOMES, KAFKA_POSITIONS};
use super::{panic_message, V2_BACKUP};

/// A row of a tuple table, encoded (postcard) the same in both versions.
#[derive(Serialize, Deserialize)]
enum Stashed {
    ByStatus(String, u64),
    Position(String, i32, i64),
    Home(u64, String, i32),
}

const STASH: &str = "v2_upgrade_stash";
const STASH2: redb2::TableDefinition<u64, &[u8]> = redb2::TableDefinition::new(STASH);
const STASH4: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new(STASH);
const BY_STATUS2: redb2::TableDefinition<(&str, u64), ()> =
    redb2::TableDefinition::new("incidents_by_status");
const POSITIONS2: redb2::TableDefinition<(&str, i32), i64> =
    redb2::TableDefinition::new("kafka_positions");
const HOMES2: redb2::TableDefinition<u64, (&str, i32)> =
    redb2::TableDefinition::new("incident_home");

/// Upgrades a database of the releases before redb 4 in place (see the
/// module contract).
pub(super) fn upgrade_v2(path: &Path, version: u8) -> Result<(), StoreError> {
    let backup = path.with_file_name(V2_BACKUP);
    let upgrade_err = |message: String| StoreError::Upgrade {
        path: path.to_path_buf(),
        message,
    };
    if !backup.exists() {
        std::fs::copy(path, &backup)
            .map_err(|e| upgrade_err(format!("cannot copy it to {}: {e}", backup.display())))?;
    }
    tracing::info!(db = %path.display(), file_format = version, backup = %backup.display(),
        "upgrading the database written by an earlier release to the current file format; the original is kept until the next start");
    let started = Instant::now();
    let mut old = std::panic::catch_unwind(|| redb2::Database::open(path))
        .map_err(|p| upgrade_err(panic_message(&p)))?
        .map_err(|e| upgrade_err(e.to_string()))?;
    let stashed = stash(&old).map_err(|e| upgrade_err(format!("moving the tuple tables: {e}")))?;
    old.upgrade().map_err(|e| upgrade_err(e.to_string()))?;
    drop(old);
    tracing::info!(db = %path.display(), stashed_rows = stashed, seconds = started.elapsed().as_secs_f64(), "database file format upgraded");
    Ok(())
}

/// Moves the tuple tables' rows into the stash, in one redb 2 transaction;
/// answers how many rows moved.
fn stash(db: &redb2::Database) -> Result<u64, String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let tx = db.begin_write().map_err(|x| e(&x))?;
    let mut rows = Vec::new();
    if let Ok(t) = tx.open_table(BY_STATUS2) {
        for row in t.iter().map_err(|x| e(&x))? {
            let (k, _) = row.map_err(|x| e(&x))?;
            let (status, key) = k.value();
            rows.push(Stashed::ByStatus(status.to_string(), key));
        }
    }
    if let Ok(t) = tx.open_table(POSITIONS2) {
        for row in t.iter().map_err(|x| e(&x))? {
            let (k, v) = row.map_err(|x| e(&x))?;
            let (topic, partition) = k.value();
            rows.push(Stashed::Position(topic.to_string(), partition, v.value()));
        }
    }
    if let Ok(t) = tx.open_table(HOMES2) {
        for row in t.iter().map_err(|x| e(&x))? {
            let (k, v) = row.map_err(|x| e(&x))?;
            let (topic, partition) = v.value();
            rows.push(Stashed::Home(k.value(), topic.to_string(), partition));
        }
    }
    {
        let mut stash = tx.open_table(STASH2).map_err(|x| e(&x))?;
        let start = stash.len().map_err(|x| e(&x))?;
        for (i, row) in rows.iter().enumerate() {
            let bytes = postcard::to_stdvec(row).map_err(|x| e(&x))?;
            stash
                .insert(start + i as u64, bytes.as_slice())
                .map_err(|x| e(&x))?;
        }
    }
    tx.delete_table(BY_STATUS2).map_err(|x| e(&x))?;
    tx.delete_table(POSITIONS2).map_err(|x| e(&x))?;
    tx.delete_table(HOMES2).map_err(|x| e(&x))?;
    tx.commit().map_err(|x| e(&x))?;
    Ok(rows.len() as u64)
}

/// Writes stashed rows back in the current encoding and drops the stash
/// (nothing to do without one).
pub(super) fn unstash(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    let rows = {
        let stash = tx.open_table(STASH4)?;
        if stash.is_empty()? {
            drop(stash);
            tx.delete_table(STASH4)?;
            return Ok(());
        }
        let mut by_status = tx.open_table(BY_STATUS)?;
        let mut positions = tx.open_table(KAFKA_POSITIONS)?;
        let mut homes = tx.open_table(HOMES)?;
        let mut rows = 0u64;
        for row in stash.iter()? {
            let (_, v) = row?;
            let row: Stashed =
                postcard::from_bytes(v.value()).map_err(|e| StoreError::Upgrade {
                    path: Default::default(),
                    message: format!("a stashed row does not decode: {e}"),
                })?;
            match row {
                Stashed::ByStatus(status, key) => {
                    by_status.insert((status.as_str(), key), ())?;
                }
                Stashed::Position(topic, partition, offset) => {
                    positions.insert((topic.as_str(), partition), offset)?;
                }
                Stashed::Home(key, topic, partition) => {
                    homes.insert(key, (topic.as_str(), partition))?;
                }
            }
            rows += 1;
        }
        rows
    };
    tx.delete_table(STASH4)?;
    tracing::info!(
        rows,
        "rows of the upgraded tuple tables rewritten in the current encoding"
    );
    Ok(())
}
