//! Keeping the database healthy over years: an integrity check of a
//! stopped database, a consistent backup of a running one, and retention.
//!
//! Contract:
//! - [`check`] opens a database nothing else holds, runs redb's integrity
//!   check (which repairs what it can) and decodes every stored row,
//!   reporting each table's row count and every row that does not decode.
//! - [`Store::backup_to`] copies every table as one read transaction sees
//!   it (a consistent snapshot; commits go on meanwhile) into a new file,
//!   written in chunks and renamed into place only when complete.
//! - [`Store::retention`] deletes, in one bounded batch per call, closed
//!   incidents (with their alerts, timeline and jobs) closed before a
//!   cutoff, finished action jobs and expired silences older than theirs.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::error::StoreError;
use super::row::{read_alert, read_json};
use super::schema::*;
use super::Store;
use crate::model::{
    Incident, IncidentKey, Job, JobState, Silence, Status, SuppressedAlert, TimelineEntry,
};

/// Rows written per transaction when copying.
const COPY_CHUNK: usize = 20_000;
/// Page cache of the copy being written.
const COPY_CACHE: usize = 32 << 20;

/// What [`check`] found.
#[derive(Debug, Default)]
pub struct Check {
    /// redb's integrity check had to repair the file.
    pub repaired: bool,
    /// Rows per table.
    pub tables: Vec<(&'static str, u64)>,
    /// Rows that do not decode, each with its table and key.
    pub problems: Vec<String>,
}

/// Checks the database in `dir`, which no running daemon may hold (see the
/// module contract). A redb panic on a damaged page is reported as
/// [`StoreError::Damaged`].
pub fn check(dir: &Path) -> Result<Check, StoreError> {
    let path = dir.join(super::FILE);
    if !path.exists() {
        return Err(StoreError::Missing { path });
    }
    std::panic::catch_unwind(|| check_file(&path)).unwrap_or_else(|panic| {
        Err(StoreError::Damaged {
            path: path.clone(),
            message: super::panic_message(&panic),
        })
    })
}

fn check_file(path: &Path) -> Result<Check, StoreError> {
    let path = path.to_path_buf();
    let mut db = super::open_file(&path, 16, false)?;
    let passed = db.check_integrity().map_err(|source| StoreError::Open {
        path: path.clone(),
        source: Box::new(source),
    })?;
    let mut out = Check {
        repaired: !passed,
        ..Check::default()
    };
    let tx = db.begin_read()?;
    out.tables
        .push(("incidents", tx.open_table(INCIDENTS)?.len()?));
    for row in tx.open_table(INCIDENTS)?.iter()? {
        let (k, v) = row?;
        if let Err(e) = read_json::<Incident>("incidents", v.value()) {
            out.problems
                .push(format!("{}: {e}", IncidentKey(k.value())));
        }
    }
    out.tables.push(("alerts", tx.open_table(ALERTS)?.len()?));
    for row in tx.open_table(ALERTS)?.iter()? {
        let (k, v) = row?;
        if let Err(e) = read_alert(v.value()) {
            let (inc, fp) = k.value();
            out.problems
                .push(format!("{} alert {fp:016x}: {e}", IncidentKey(inc)));
        }
    }
    out.tables
        .push(("timeline", tx.open_table(TIMELINE)?.len()?));
    for row in tx.open_table(TIMELINE)?.iter()? {
        let (k, v) = row?;
        if let Err(e) = read_json::<TimelineEntry>("timeline", v.value()) {
            let (inc, seq) = k.value();
            out.problems
                .push(format!("{} timeline {seq}: {e}", IncidentKey(inc)));
        }
    }
    out.tables
        .push(("silences", tx.open_table(SILENCES)?.len()?));
    for row in tx.open_table(SILENCES)?.iter()? {
        let (k, v) = row?;
        if let Err(e) = read_json::<Silence>("silences", v.value()) {
            out.problems.push(format!("silence {}: {e}", k.value()));
        }
    }
    out.tables
        .push(("action_jobs", tx.open_table(ACTION_JOBS)?.len()?));
    for row in tx.open_table(ACTION_JOBS)?.iter()? {
        let (k, v) = row?;
        if let Err(e) = read_json::<Job>("action_jobs", v.value()) {
            out.problems.push(format!("job {}: {e}", k.value()));
        }
    }
    out.tables
        .push(("suppressed_alerts", tx.open_table(SUPPRESSED)?.len()?));
    for row in tx.open_table(SUPPRESSED)?.iter()? {
        let (k, v) = row?;
        if let Err(e) = read_json::<SuppressedAlert>("suppressed_alerts", v.value()) {
            out.problems
                .push(format!("suppressed alert {:016x}: {e}", k.value()));
        }
    }
    Ok(out)
}

/// Copies one table from a read transaction into `dst`, committing every
/// [`COPY_CHUNK`] rows; answers the rows copied.
macro_rules! copy_table {
    ($rtx:expr, $dst:expr, $def:expr) => {{
        let src = $rtx.open_table($def)?;
        let mut rows = src.iter()?;
        let mut copied = 0u64;
        loop {
            let wtx = $dst.begin_write()?;
            let mut chunk = 0usize;
            {
                let mut table = wtx.open_table($def)?;
                while chunk < COPY_CHUNK {
                    let Some(row) = rows.next() else { break };
                    let (k, v) = row?;
                    table.insert(k.value(), v.value())?;
                    chunk += 1;
                }
            }
            wtx.commit()?;
            copied += chunk as u64;
            if chunk < COPY_CHUNK {
                break;
            }
        }
        copied
    }};
}

/// What a backup wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backup {
    pub rows: u64,
    pub bytes: u64,
}

impl Store {
    /// Writes a consistent copy of the database to `target`, which must not
    /// exist (see the module contract).
    pub fn backup_to(&self, target: &Path) -> Result<Backup, StoreError> {
        let exists = |path: &Path| StoreError::BackupTarget {
            path: path.to_path_buf(),
            message: "already exists; give a new file".into(),
        };
        if target.exists() {
            return Err(exists(target));
        }
        let partial = partial_name(target);
        let _ = std::fs::remove_file(&partial);
        // A small cache: the copy is written once, in order, and redb's
        // default (1 GiB) would keep most of it in memory.
        let dst = redb::Builder::new()
            .set_cache_size(COPY_CACHE)
            .create(&partial)
            .map_err(|source| StoreError::Open {
                path: partial.clone(),
                source: Box::new(source),
            })?;
        let rtx = self.db()?.begin_read()?;
        let copied = (|| -> Result<u64, StoreError> {
            let mut rows = 0;
            rows += copy_table!(rtx, dst, INCIDENTS);
            rows += copy_table!(rtx, dst, ALERTS);
            rows += copy_table!(rtx, dst, TIMELINE);
            rows += copy_table!(rtx, dst, ALERT_SEEN);
            rows += copy_table!(rtx, dst, ACTIVITY);
            rows += copy_table!(rtx, dst, SEEN_LOG);
            rows += copy_table!(rtx, dst, KAFKA_POSITIONS);
            rows += copy_table!(rtx, dst, HOMES);
            rows += copy_table!(rtx, dst, OPEN);
            rows += copy_table!(rtx, dst, BY_STATUS);
            rows += copy_table!(rtx, dst, LIST_ROWS);
            rows += copy_table!(rtx, dst, BY_LABEL);
            rows += copy_table!(rtx, dst, SUPPRESSED);
            rows += copy_table!(rtx, dst, SILENCES);
            rows += copy_table!(rtx, dst, HEARTBEATS);
            rows += copy_table!(rtx, dst, OVERRIDES);
            rows += copy_table!(rtx, dst, ACTION_JOBS);
            Ok(rows)
        })();
        drop(rtx);
        drop(dst);
        let rows = match copied {
            Ok(rows) => rows,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        };
        if target.exists() {
            let _ = std::fs::remove_file(&partial);
            return Err(exists(target));
        }
        std::fs::rename(&partial, target).map_err(|e| StoreError::BackupTarget {
            path: target.to_path_buf(),
            message: e.to_string(),
        })?;
        let bytes = std::fs::metadata(target).map(|m| m.len()).unwrap_or(0);
        Ok(Backup { rows, bytes })
    }
}

/// Where a backup is written before it is complete.
fn partial_name(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    target.with_file_name(name)
}

/// How long finished things are kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Closed incidents, from when they closed.
    pub closed_incidents: std::time::Duration,
    /// Succeeded, failed, rate-limited and disabled action jobs, from when
    /// they were created.
    pub finished_jobs: std::time::Duration,
    /// Silences, from when they ended.
    pub expired_silences: std::time::Duration,
    /// Most rows of each kind deleted per call.
    pub batch: usize,
}

/// What one retention pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    pub incidents: u64,
    pub jobs: u64,
    pub silences: u64,
}

impl Deleted {
    /// True when another pass has more to delete (a kind filled its batch).
    pub fn more(&self, batch: usize) -> bool {
        let b = batch as u64;
        self.incidents >= b || self.jobs >= b || self.silences >= b
    }
}

fn before(now: DateTime<Utc>, keep: std::time::Duration) -> DateTime<Utc> {
    now - crate::model::wall(keep)
}

impl Store {
    /// Deletes one batch of each kind past its retention (see the module
    /// contract), in one transaction.
    pub fn retention(&self, now: DateTime<Utc>, r: &Retention) -> Result<Deleted, StoreError> {
        let incidents_before = before(now, r.closed_incidents);
        let jobs_before = before(now, r.finished_jobs);
        let silences_before = before(now, r.expired_silences);
        let db = self.db()?;
        let tx = db.begin_write()?;
        let mut out = Deleted::default();
        {
            // Closed incidents in id (creation) order; one created after the
            // cutoff cannot have closed before it.
            let mut gone = Vec::new();
            {
                let by_status = tx.open_table(BY_STATUS)?;
                let incidents = tx.open_table(INCIDENTS)?;
                let closed = Status::Closed.as_str();
                for row in by_status.range((closed, 0u64)..=(closed, u64::MAX))? {
                    let (k, _) = row?;
                    let key = k.value().1;
                    let Some(v) = incidents.get(key)? else {
                        gone.push(key);
                        continue;
                    };
                    let inc: Incident = read_json("incidents", v.value())?;
                    if inc.created_at >= incidents_before || gone.len() >= r.batch {
                        break;
                    }
                    if inc.closed_at.is_some_and(|c| c < incidents_before) {
                        gone.push(key);
                    }
                }
            }
            let mut incidents = tx.open_table(INCIDENTS)?;
            let mut alerts = tx.open_table(ALERTS)?;
            let mut timeline = tx.open_table(TIMELINE)?;
            let mut seen = tx.open_table(ALERT_SEEN)?;
            let mut activity = tx.open_table(ACTIVITY)?;
            let mut by_status = tx.open_table(BY_STATUS)?;
            let mut homes = tx.open_table(HOMES)?;
            let mut jobs = tx.open_table(ACTION_JOBS)?;
            let mut list_rows = tx.open_table(LIST_ROWS)?;
            let mut by_label = tx.open_table(BY_LABEL)?;
            for &k in &gone {
                incidents.remove(k)?;
                super::listing::unindex(&mut list_rows, &mut by_label, k)?;
                alerts.retain_in((k, 0)..=(k, u64::MAX), |_, _| false)?;
                timeline.retain_in((k, 0)..=(k, u32::MAX), |_, _| false)?;
                seen.retain_in((k, 0)..=(k, u64::MAX), |_, _| false)?;
                activity.remove(k)?;
                by_status.remove((Status::Closed.as_str(), k))?;
                homes.remove(k)?;
                // A job key starts with its incident's id.
                let id = IncidentKey(k).to_string();
                let prefix = format!("{id}/");
                let end = format!("{id}0");
                jobs.retain_in(prefix.as_str()..end.as_str(), |_, _| false)?;
            }
            out.incidents = gone.len() as u64;
        }
        {
            let mut jobs = tx.open_table(ACTION_JOBS)?;
            let mut finished = Vec::new();
            for row in jobs.iter()? {
                let (k, v) = row?;
                let job: Job = read_json("action_jobs", v.value())?;
                if job.state != JobState::Pending && job.created_at < jobs_before {
                    finished.push(k.value().to_string());
                    if finished.len() >= r.batch {
                        break;
                    }
                }
            }
            for k in &finished {
                jobs.remove(k.as_str())?;
            }
            out.jobs = finished.len() as u64;
        }
        {
            let mut silences = tx.open_table(SILENCES)?;
            let mut expired = Vec::new();
            for row in silences.iter()? {
                let (k, v) = row?;
                let s: Silence = read_json("silences", v.value())?;
                if s.ends_at < silences_before {
                    expired.push(k.value().to_string());
                    if expired.len() >= r.batch {
                        break;
                    }
                }
            }
            for k in &expired {
                silences.remove(k.as_str())?;
            }
            out.silences = expired.len() as u64;
        }
        tx.commit()?;
        Ok(out)
    }
}
