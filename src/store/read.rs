//! Reads: the live snapshot a restart starts from, and the views the API
//! reads concurrently with the writer (MVCC).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::error::StoreError;
use super::row::read_json;
use super::schema::*;
use super::seen::{Hot, Want, ALL};
use super::Store;
use crate::engine::{HistoryEntry, Live, Restored};
use crate::model::matcher::{self, Matcher};
use crate::model::{
    AlertRecord, AlertStatus, Home, Incident, IncidentKey, Job, JobState, KafkaPosition, Priority,
    Silence, Status, SuppressedAlert, TimelineEntry,
};

/// How far back past incidents are loaded for similarity and recurrence.
const HISTORY_DAYS: i64 = 30;
/// Most past incidents loaded for similarity and recurrence.
const HISTORY_MAX: usize = 100_000;

/// What the engine starts from.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub live: Vec<Live>,
    pub restored: Restored,
    pub incidents_total: u64,
}

/// An incident with its alerts and timeline.
pub type FullIncident = (Incident, Vec<AlertRecord>, Vec<TimelineEntry>);

/// Timeline entries after a given one (see [`Store::timeline_after`]).
#[derive(Debug, Default)]
pub struct TimelineAfter {
    pub entries: Vec<(IncidentKey, u32, TimelineEntry)>,
    /// The incidents the entries belong to, as stored now.
    pub incidents: Vec<Incident>,
    /// More entries followed than the limit.
    pub truncated: bool,
}

/// Filters for listing incidents.
#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    pub status: Option<Status>,
    pub priority: Option<Priority>,
    pub category: Option<String>,
    pub limit: usize,
    /// Label matchers on the incident's common labels; all must match.
    pub matchers: Vec<Matcher>,
    /// Created at or after / before these instants.
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    /// The cursor: the last incident of the previous page.
    pub after: Option<IncidentKey>,
    /// Oldest first (default: newest first).
    pub oldest_first: bool,
}

/// One page of the incident list.
#[derive(Debug, Default, Clone)]
pub struct ListPage {
    pub incidents: Vec<Incident>,
    /// The cursor of the next page, when there is one.
    pub next: Option<IncidentKey>,
    /// Every incident the filters match (all pages); `None` when counting
    /// would mean reading more than [`COUNT_SCAN_LIMIT`] rows.
    pub total: Option<u64>,
}

/// Rows a filtered total may read; past it the total is left out.
pub const COUNT_SCAN_LIMIT: u64 = 20_000;

impl ListFilter {
    fn keeps(&self, inc: &Incident) -> bool {
        self.priority.is_none_or(|p| inc.priority == p)
            && self.category.as_deref().is_none_or(|c| inc.category == c)
            && self.status.is_none_or(|s| inc.status == s)
            && self.created_after.is_none_or(|t| inc.created_at >= t)
            && self.created_before.is_none_or(|t| inc.created_at < t)
            && matcher::all_match(&self.matchers, &inc.labels)
    }

    /// Whether only row content (not the key) can reject a row.
    fn decodes(&self) -> bool {
        self.priority.is_some()
            || self.category.is_some()
            || !self.matchers.is_empty()
            || self.created_after.is_some()
            || self.created_before.is_some()
    }

    /// The key range the time bounds and the cursor allow.
    fn key_range(&self) -> Option<(u64, u64)> {
        let day = |t: DateTime<Utc>| {
            IncidentKey::new(
                t.year().max(0) as u32 * 10_000 + t.month() * 100 + t.day(),
                0,
            )
            .0
        };
        let mut lo = self.created_after.map(day).unwrap_or(0);
        let mut hi = self
            .created_before
            .map(|t| day(t) + 99_999_999)
            .unwrap_or(u64::MAX);
        if let Some(a) = self.after {
            if self.oldest_first {
                lo = lo.max(a.0.checked_add(1)?);
            } else {
                hi = hi.min(a.0.checked_sub(1)?);
            }
        }
        (lo <= hi).then_some((lo, hi))
    }
}

impl Store {
    /// Loads what the engine needs to resume: live incidents with alerts,
    /// the newest id, and MTTA/MTTR samples inside `window` before `now`.
    pub fn load(&self, now: DateTime<Utc>, window: Duration) -> Result<Snapshot, StoreError> {
        let tx = self.db()?.begin_read()?;
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
                .push(read_json("suppressed_alerts", row?.1.value())?);
        }
        for row in tx.open_table(HEARTBEATS)?.iter()? {
            let (name, at) = row?;
            let at: chrono::DateTime<chrono::Utc> = read_json("heartbeats", at.value())?;
            snap.restored
                .heartbeats
                .push((name.value().to_string(), at));
        }
        snap.restored.overrides = self.read_all(OVERRIDES, "schedule_overrides")?;
        let forget_before = now - chrono::Duration::days(7);
        for row in tx.open_table(SILENCES)?.iter()? {
            let s: Silence = read_json("silences", row?.1.value())?;
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
                let mut incident: Incident = read_json("incidents", v.value())?;
                hot.incident(&mut incident)?;
                let alerts = hot.alerts(&alerts, key)?;
                out.push(Live {
                    incident,
                    alerts: alerts
                        .into_iter()
                        .map(|a| (a.alert.fingerprint, a))
                        .collect(),
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
                let live = r.join().map_err(|_| StoreError::RestorePanicked)??;
                snap.live.extend(live);
            }
            Ok::<(), StoreError>(())
        })?;
        // The scan below reads every recent incident; the live ones are
        // decoded already.
        let live_at: HashMap<u64, usize> = snap
            .live
            .iter()
            .enumerate()
            .map(|(i, l)| (l.incident.id.0, i))
            .collect();
        let start = now - crate::model::wall(window);
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
                    decoded = read_json::<Incident>("incidents", v.value())?;
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
        let live: HashSet<IncidentKey> = snap.live.iter().map(|l| l.incident.id).collect();
        for row in tx.open_table(ACTION_JOBS)?.iter()? {
            let job: Job = read_json("action_jobs", row?.1.value())?;
            if live.contains(&job.incident) || job.state == JobState::Pending {
                snap.restored.jobs.push(job);
            }
        }
        Ok(snap)
    }

    /// One incident as stored.
    pub fn incident(&self, key: IncidentKey) -> Result<Option<Incident>, StoreError> {
        let tx = self.db()?.begin_read()?;
        Ok(read_incident(&tx, key, false)?.map(|(inc, _)| inc))
    }

    /// An incident with its alerts and timeline.
    pub fn incident_full(&self, key: IncidentKey) -> Result<Option<FullIncident>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let Some((inc, hot)) = read_incident(&tx, key, true)? else {
            return Ok(None);
        };
        let alerts = hot.alerts(&tx.open_table(ALERTS)?, key.0)?;
        let tl_t = tx.open_table(TIMELINE)?;
        let mut timeline = Vec::new();
        for row in tl_t.range((key.0, 0)..=(key.0, u32::MAX))? {
            timeline.push(read_json("timeline", row?.1.value())?);
        }
        Ok(Some((inc, alerts, timeline)))
    }

    /// A closed incident brought back into memory (for reopen, notes).
    pub fn load_live(&self, key: IncidentKey) -> Result<Option<Live>, StoreError> {
        Ok(self.incident_full(key)?.map(|(incident, alerts, _)| Live {
            incident,
            alerts: alerts
                .into_iter()
                .map(|a| (a.alert.fingerprint, a))
                .collect(),
        }))
    }

    /// The partition of every live incident that has one.
    pub fn homes(&self) -> Result<Vec<(IncidentKey, Home)>, StoreError> {
        let tx = self.db()?.begin_read()?;
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
        let tx = self.db()?.begin_read()?;
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
        self.read_all(SILENCES, "silences")
    }

    /// Every schedule override, removed ones included.
    pub fn overrides(&self) -> Result<Vec<crate::model::Override>, StoreError> {
        self.read_all(OVERRIDES, "schedule_overrides")
    }

    /// Alerts currently kept out of incidents.
    pub fn suppressed(&self) -> Result<Vec<SuppressedAlert>, StoreError> {
        self.read_all(SUPPRESSED, "suppressed_alerts")
    }

    /// Every live (open or acknowledged) incident with its alerts that
    /// still fire, oldest incident first; parked ones are left out. For
    /// the Alertmanager-compatible alert list.
    pub fn firing_alerts(&self) -> Result<Vec<(Incident, Vec<AlertRecord>)>, StoreError> {
        let parked = self.inner.parked.read().clone();
        let tx = self.db()?.begin_read()?;
        let incidents = tx.open_table(INCIDENTS)?;
        let alerts = tx.open_table(ALERTS)?;
        let hot = Hot::open(&tx, ALL)?;
        let mut out = Vec::new();
        for row in tx.open_table(OPEN)?.iter()? {
            let key = row?.0.value();
            if parked.contains(&key) {
                continue;
            }
            let Some(v) = incidents.get(key)? else {
                continue;
            };
            let mut inc: Incident = read_json("incidents", v.value())?;
            hot.incident(&mut inc)?;
            let mut firing = hot.alerts(&alerts, key)?;
            firing.retain(|a| a.alert.status == AlertStatus::Firing);
            if !firing.is_empty() {
                out.push((inc, firing));
            }
        }
        Ok(out)
    }

    /// Incidents newest first, filtered; parked ones are left out.
    pub fn list(&self, f: &ListFilter) -> Result<Vec<Incident>, StoreError> {
        Ok(self.list_page(f, false)?.incidents)
    }

    /// One page of incidents (newest or oldest first) and the cursor of
    /// the next; with `count`, the total the filters match over every page:
    /// from the indexes when only status (or nothing) filters, else by
    /// reading up to [`COUNT_SCAN_LIMIT`] rows. Parked ones are left out.
    pub fn list_page(&self, f: &ListFilter, count: bool) -> Result<ListPage, StoreError> {
        let parked = self.inner.parked.read().clone();
        let tx = self.db()?.begin_read()?;
        let incidents = tx.open_table(INCIDENTS)?;
        let by_status = tx.open_table(BY_STATUS)?;
        let hot = Hot::open(
            &tx,
            Want {
                incident: None,
                alerts: false,
            },
        )?;
        let mut page = ListPage::default();
        let limit = f.limit.max(1);
        // Calls `each` with matching rows in list order until it says stop
        // or `max_read` rows were read; answers whether it read them all.
        let walk = |f: &ListFilter,
                    max_read: u64,
                    each: &mut dyn FnMut(Incident) -> Result<bool, StoreError>|
         -> Result<bool, StoreError> {
            let Some((lo, hi)) = f.key_range() else {
                return Ok(true);
            };
            let mut read = 0u64;
            let mut complete = true;
            let mut one = |key: u64, bytes: &[u8]| -> Result<bool, StoreError> {
                if parked.contains(&key) {
                    return Ok(true);
                }
                if read >= max_read {
                    complete = false;
                    return Ok(false);
                }
                read += 1;
                let inc: Incident = read_json("incidents", bytes)?;
                if !f.keeps(&inc) {
                    return Ok(true);
                }
                each(inc)
            };
            if let Some(status) = f.status {
                let rows = by_status.range((status.as_str(), lo)..=(status.as_str(), hi))?;
                let rows: Box<dyn Iterator<Item = _>> = if f.oldest_first {
                    Box::new(rows)
                } else {
                    Box::new(rows.rev())
                };
                for row in rows {
                    let key = row?.0.value().1;
                    if let Some(v) = incidents.get(key)? {
                        if !one(key, v.value())? {
                            break;
                        }
                    }
                }
            } else {
                let rows = incidents.range(lo..=hi)?;
                let rows: Box<dyn Iterator<Item = _>> = if f.oldest_first {
                    Box::new(rows)
                } else {
                    Box::new(rows.rev())
                };
                for row in rows {
                    let (k, v) = row?;
                    if !one(k.value(), v.value())? {
                        break;
                    }
                }
            }
            Ok(complete)
        };
        walk(f, u64::MAX, &mut |mut inc| {
            if page.incidents.len() < limit {
                hot.incident(&mut inc)?;
                page.incidents.push(inc);
                Ok(true)
            } else {
                // One more match: there is a next page.
                page.next = page.incidents.last().map(|i| i.id);
                Ok(false)
            }
        })?;
        if !count {
            return Ok(page);
        }
        page.total = if !f.decodes() {
            Some(match f.status {
                // Every incident not closed is in the open table: closed
                // ones are the rest, counted without a walk.
                Some(Status::Closed) => {
                    incidents.len()?.saturating_sub(tx.open_table(OPEN)?.len()?)
                }
                Some(status) => {
                    let mut n = 0u64;
                    for row in
                        by_status.range((status.as_str(), 0u64)..=(status.as_str(), u64::MAX))?
                    {
                        if !parked.contains(&row?.0.value().1) {
                            n += 1;
                        }
                    }
                    n
                }
                None => incidents.len()?.saturating_sub(parked.len() as u64),
            })
        } else {
            let all = ListFilter {
                after: None,
                ..f.clone()
            };
            let mut n = 0u64;
            let complete = walk(&all, COUNT_SCAN_LIMIT, &mut |_| {
                n += 1;
                Ok(true)
            })?;
            complete.then_some(n)
        };
        Ok(page)
    }

    /// The timeline entries written at or after the entry `(key, seq)`
    /// (other than it and its incident's earlier ones), oldest first, at
    /// most `limit`; `None` when that entry is not stored. Reads the whole
    /// timeline table: for resuming an event stream after a restart, not
    /// for every request.
    pub fn timeline_after(
        &self,
        key: IncidentKey,
        seq: u32,
        limit: usize,
    ) -> Result<Option<TimelineAfter>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let table = tx.open_table(TIMELINE)?;
        let Some(row) = table.get((key.0, seq))? else {
            return Ok(None);
        };
        let since: TimelineEntry = read_json("timeline", row.value())?;
        let mut entries = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            let (k, n) = k.value();
            if k == key.0 && n <= seq {
                continue;
            }
            let entry: TimelineEntry = read_json("timeline", v.value())?;
            if entry.at >= since.at {
                entries.push((IncidentKey(k), n, entry));
            }
        }
        entries.sort_by_key(|a| (a.2.at, a.0, a.1));
        let truncated = entries.len() > limit;
        entries.truncate(limit);
        let keys: std::collections::BTreeSet<IncidentKey> = entries.iter().map(|e| e.0).collect();
        let mut incidents = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some((inc, _)) = read_incident(&tx, k, false)? {
                incidents.push(inc);
            }
        }
        Ok(Some(TimelineAfter {
            entries,
            incidents,
            truncated,
        }))
    }

    /// Every row of a JSON table.
    pub(super) fn read_all<K: redb::Key + 'static, T: serde::de::DeserializeOwned>(
        &self,
        table: TableDefinition<'static, K, &'static [u8]>,
        name: &'static str,
    ) -> Result<Vec<T>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let mut out = Vec::new();
        for row in tx.open_table(table)?.iter()? {
            out.push(read_json(name, row?.1.value())?);
        }
        Ok(out)
    }
}

/// An incident's row with its repeat rows laid over it, and those repeat
/// rows (with its alerts' too when `alerts`).
fn read_incident(
    tx: &redb::ReadTransaction,
    key: IncidentKey,
    alerts: bool,
) -> Result<Option<(Incident, Hot)>, StoreError> {
    let t = tx.open_table(INCIDENTS)?;
    let Some(v) = t.get(key.0)? else {
        return Ok(None);
    };
    let mut inc: Incident = read_json("incidents", v.value())?;
    let hot = Hot::open(
        tx,
        Want {
            incident: Some(key.0),
            alerts,
        },
    )?;
    hot.incident(&mut inc)?;
    Ok(Some((inc, hot)))
}
