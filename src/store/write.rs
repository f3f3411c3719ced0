//! Writes: one [`Batch`] (the engine's change set, plus the Kafka positions
//! and partition homes the pipeline adds) in one durable transaction.
//!
//! Contract: [`Store::commit`] returns only after redb's commit (an fsync);
//! on error nothing of the batch is visible, and the caller rebuilds its
//! live state from the store. Full rows go to their tables; the repeat
//! rows go to `seen_log` (see the `seen` module).

use std::collections::HashSet;

use super::error::StoreError;
use super::listing;
use super::row::encode_alert;
use super::schema::*;
use super::seen::{encode_log, fold_log, FOLD_BYTES, FOLD_BYTES_BUSY};
use super::Store;
use crate::engine::ChangeSet;
use crate::model::json::to_vec;
use crate::model::{Home, IncidentKey, KafkaPosition, Status};

/// One write transaction's worth of changes.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    /// What the engine changed.
    pub changes: ChangeSet,
    /// Kafka offsets the alerts of this batch came up to.
    pub kafka_positions: Vec<KafkaPosition>,
    /// The Kafka partition each incident belongs to (`None`: forget it).
    pub homes: Vec<(IncidentKey, Option<Home>)>,
}

impl From<ChangeSet> for Batch {
    fn from(changes: ChangeSet) -> Batch {
        Batch {
            changes,
            ..Batch::default()
        }
    }
}

impl Batch {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.kafka_positions.is_empty() && self.homes.is_empty()
    }
}

impl Store {
    /// Folds the repeat log into its tables in a transaction of its own when
    /// it has grown past 1 MiB; true if it did. The writer calls this when
    /// its queue is empty, so the fold (tens of milliseconds with many live
    /// alerts) is not paid by a request waiting for its commit. Nothing
    /// acknowledged depends on it: on failure the log stays as it was.
    pub fn fold_if_due(&self) -> Result<bool, StoreError> {
        let mut log_state = self.inner.log.lock();
        if log_state.1 <= FOLD_BYTES {
            return Ok(false);
        }
        let tx = self.db()?.begin_write()?;
        fold_log(&tx)?;
        tx.commit()?;
        *log_state = (0, 0);
        Ok(true)
    }

    /// Commits a write set in one durable transaction.
    pub fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        let ws = &batch.changes;
        let tx = self.db()?.begin_write()?;
        let mut log_state = self.inner.log.lock();
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
        // A record's first write has no small row (see `seen`), so no
        // stale one may outlive the rows it belonged to: a commit that
        // removes alert rows folds the log first (rare: split, merge,
        // hand-over, a replaced copy), and then removes table rows.
        if !ws.replaced.is_empty() || !ws.removed_alerts.is_empty() || !ws.dropped.is_empty() {
            fold_log(&tx)?;
            (next, bytes) = (0, 0);
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
        if !ws.removed_alerts.is_empty() {
            let mut alerts = tx.open_table(ALERTS)?;
            let mut seen = tx.open_table(ALERT_SEEN)?;
            for (key, fp) in &ws.removed_alerts {
                alerts.remove((key.0, *fp))?;
                seen.remove((key.0, *fp))?;
            }
        }
        {
            let mut incidents = tx.open_table(INCIDENTS)?;
            let mut open = tx.open_table(OPEN)?;
            let mut by_status = tx.open_table(BY_STATUS)?;
            let mut list_rows = tx.open_table(LIST_ROWS)?;
            let mut by_label = tx.open_table(BY_LABEL)?;
            let reindex: HashSet<IncidentKey> = ws.reindex.iter().copied().collect();
            for inc in &ws.incidents {
                let k = inc.id.0;
                incidents.insert(k, to_vec(inc).as_slice())?;
                listing::index(&mut list_rows, &mut by_label, inc)?;
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
                alerts.insert((key.0, rec.alert.fingerprint), encode_alert(rec).as_slice())?;
            }

            let mut timeline = tx.open_table(TIMELINE)?;
            for (key, seq, entry) in &ws.timeline {
                timeline.insert((key.0, *seq), to_vec(entry).as_slice())?;
            }
            let mut suppressed = tx.open_table(SUPPRESSED)?;
            for s in &ws.suppressed {
                suppressed.insert(s.alert.fingerprint, to_vec(s).as_slice())?;
            }
            for fp in &ws.unsuppressed {
                suppressed.remove(*fp)?;
            }
            let mut silences = tx.open_table(SILENCES)?;
            for s in &ws.silences {
                silences.insert(s.id.as_str(), to_vec(s).as_slice())?;
            }
            let mut heartbeats = tx.open_table(HEARTBEATS)?;
            for (name, at) in &ws.heartbeats {
                heartbeats.insert(name.as_str(), to_vec(at).as_slice())?;
            }
            let mut overrides = tx.open_table(OVERRIDES)?;
            for o in &ws.overrides {
                overrides.insert(o.id.as_str(), to_vec(o).as_slice())?;
            }
            let mut jobs = tx.open_table(ACTION_JOBS)?;
            for j in &ws.jobs {
                jobs.insert(j.key.as_str(), to_vec(j).as_slice())?;
            }
            let mut positions = tx.open_table(KAFKA_POSITIONS)?;
            for p in &batch.kafka_positions {
                positions.insert((p.topic.as_str(), p.partition), p.offset)?;
            }
            let mut homes = tx.open_table(HOMES)?;
            for (key, home) in &batch.homes {
                match home {
                    Some(h) => homes.insert(key.0, (h.topic.as_str(), h.partition))?,
                    None => homes.remove(key.0)?,
                };
            }
            for key in &ws.dropped {
                let k = key.0;
                incidents.remove(k)?;
                listing::unindex(&mut list_rows, &mut by_label, k)?;
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
}
