//! The repeat rows: what a plain repeat changes (last seen, ends at, repeat
//! count; an incident's last activity), kept apart from the full rows.
//!
//! Contract: a repeat is durable without rewriting its full rows. Every
//! write of a record also writes its small row, except the first write of
//! an alert new to its incident or of an incident an alert opened (the
//! record carries the same fields), and
//! every read lays the small row, where there is one, over the record. No
//! small row outlives its record where the record can come back: a commit
//! that removes alert rows (split, merge, hand-over, a replaced copy)
//! folds the log before it removes them. Commits append their small rows as one packed
//! entry to `seen_log`; the log is folded into `alert_seen` /
//! `incident_activity` when it grows (see [`super::Store::fold_if_due`]),
//! and readers lay the log over those tables.

use chrono::{DateTime, Utc};
use redb::ReadableTable;

use super::error::StoreError;
use super::row::{read_alert, read_ts, ts, RowError};
use super::schema::{ACTIVITY, ALERT_SEEN, SEEN_LOG};
use crate::model::{AlertRecord, AlertSeen, Incident, IncidentKey};

/// Fold the log into `alert_seen` / `incident_activity` beyond this size,
/// when the writer has nothing queued ([`Store::fold_if_due`]). Larger
/// means rarer (each fold rewrites most pages of `alert_seen`) but a longer
/// log for readers to scan.
pub(super) const FOLD_BYTES: u64 = 1024 * 1024;
/// Fold inside the next commit beyond this size, for a writer that is never
/// idle: readers scan the whole log, so it must stay bounded.
pub(super) const FOLD_BYTES_BUSY: u64 = 2 * 1024 * 1024;
/// Marks "no end" in an `alert_seen` row.
pub(super) const NO_END: u32 = u32::MAX;
pub(super) const SEEN_LEN: usize = 32;

pub(super) fn encode_seen(s: &AlertSeen) -> [u8; SEEN_LEN] {
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

pub(super) fn decode_seen(b: &[u8]) -> Result<AlertSeen, StoreError> {
    const T: &str = "alert_seen";
    let b: &[u8; SEEN_LEN] = b.try_into().map_err(|_| StoreError::Corrupt {
        table: T,
        source: RowError::Length {
            len: b.len(),
            expected: SEEN_LEN,
        },
    })?;
    // The slices below have the exact widths of their integer types.
    let i64_at = |i: usize| i64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
    let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or_default());
    let en = u32_at(20);
    Ok(AlertSeen {
        last_seen_at: read_ts(T, (i64_at(0), u32_at(8)))?,
        ends_at: if en == NO_END {
            None
        } else {
            Some(read_ts(T, (i64_at(12), en))?)
        },
        repeat_count: u64::from_le_bytes(b[24..32].try_into().unwrap_or_default()),
    })
}

pub(super) const LOG_SEEN_LEN: usize = 16 + SEEN_LEN;
pub(super) const LOG_ACTIVITY_LEN: usize = 8 + 12;

/// One `seen_log` entry: the small rows of one commit.
pub(super) fn encode_log(
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
pub(super) struct LogRows {
    pub(super) seen: std::collections::HashMap<(u64, u64), [u8; SEEN_LEN]>,
    pub(super) activity: std::collections::HashMap<u64, (i64, u32)>,
}

/// Which log rows a reader needs.
#[derive(Clone, Copy)]
pub(super) struct Want {
    /// Only this incident's rows.
    pub(super) incident: Option<u64>,
    /// Alert rows too (not only incident activity).
    pub(super) alerts: bool,
}

pub(super) const ALL: Want = Want {
    incident: None,
    alerts: true,
};

impl LogRows {
    pub(super) fn add(&mut self, b: &[u8], want: Want) -> Result<(), StoreError> {
        let bad = || StoreError::Corrupt {
            table: "seen_log",
            source: RowError::Truncated(b.len()),
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

    pub(super) fn read(
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
pub(super) struct Hot {
    pub(super) log: LogRows,
    pub(super) seen: redb::ReadOnlyTable<(u64, u64), &'static [u8]>,
    pub(super) activity: redb::ReadOnlyTable<u64, (i64, u32)>,
}

impl Hot {
    pub(super) fn open(tx: &redb::ReadTransaction, want: Want) -> Result<Hot, StoreError> {
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
    pub(super) fn alerts(
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
            let mut rec = read_alert(v.value())?;
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
    pub(super) fn incident(&self, inc: &mut Incident) -> Result<(), StoreError> {
        let at = match self.log.activity.get(&inc.id.0) {
            Some(at) => Some(*at),
            None => self.activity.get(inc.id.0)?.map(|v| v.value()),
        };
        if let Some(at) = at {
            inc.last_activity_at = read_ts("incident_activity", at)?;
        }
        Ok(())
    }
}

/// Moves every log entry into `alert_seen` / `incident_activity` (in key
/// order) and empties the log, inside the caller's transaction.
pub(super) fn fold_log(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
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
