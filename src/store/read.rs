//! Reads: the live snapshot a restart starts from, and the views the API
//! reads concurrently with the writer (MVCC).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::error::StoreError;
use super::listing::{self, ListRow};
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

/// List rows a filtered total may check; past it the total is left out.
pub const COUNT_SCAN_LIMIT: u64 = 40_000;
/// Index keys a total may count when no row needs checking.
const COUNT_KEYS_LIMIT: u64 = 1_000_000;
/// Keys counted per candidate when choosing what drives a listing.
const DRIVER_PROBE: u64 = 50_000;

/// Most keys of an index filter held as a set while listing.
const SET_LIMIT: usize = 500_000;

/// What drives a listing walk (see [`Store::list_page`]).
#[derive(Clone, Copy, PartialEq)]
enum Driver<'a> {
    Status(&'a str),
    Label(&'a str),
    Rows,
}

/// The length of a key range, counted up to [`DRIVER_PROBE`].
fn probe<I, T>(range: I) -> Result<u64, StoreError>
where
    I: Iterator<Item = Result<T, redb::StorageError>>,
{
    let mut n = 0;
    for r in range.take(DRIVER_PROBE as usize) {
        r?;
        n += 1;
    }
    Ok(n)
}

impl ListFilter {
    /// Whether a list row passes every filter.
    fn keeps_row(&self, r: &ListRow) -> Result<bool, StoreError> {
        let created = r.created_at().map_err(|source| StoreError::Corrupt {
            table: "incident_list_rows",
            source,
        })?;
        Ok(self.priority.is_none_or(|p| r.priority() == p)
            && self.category.as_deref().is_none_or(|c| r.category() == c)
            && self.status.is_none_or(|s| r.status() == s)
            && self.created_after.is_none_or(|t| created >= t)
            && self.created_before.is_none_or(|t| created < t)
            && matcher::all_match(&self.matchers, r.labels()))
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
                        .map(|a| (a.alert.fingerprint, Box::new(a)))
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
                .map(|a| (a.alert.fingerprint, Box::new(a)))
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
    /// the next; with `count`, the total the filters match over every page.
    /// Parked ones are left out.
    ///
    /// The walk is driven by the narrowest of: the status index, the label
    /// index range of one equality matcher, and the list rows of the key
    /// range the time bounds allow (see the `listing` module); the other
    /// filters are checked on the small list rows, and only the page's
    /// incidents are decoded. The total is the driver's length when it is
    /// the only filter, else counted by the walk while it reads at most
    /// [`COUNT_SCAN_LIMIT`] rows (left out past that).
    pub fn list_page(&self, f: &ListFilter, count: bool) -> Result<ListPage, StoreError> {
        let parked = self.inner.parked.read().clone();
        let tx = self.db()?.begin_read()?;
        let incidents = tx.open_table(INCIDENTS)?;
        let rows = tx.open_table(LIST_ROWS)?;
        let by_status = tx.open_table(BY_STATUS)?;
        let by_label = tx.open_table(BY_LABEL)?;
        let hot = Hot::open(
            &tx,
            Want {
                incident: None,
                alerts: false,
            },
        )?;
        let mut page = ListPage::default();
        let limit = f.limit.max(1);
        let Some((lo, hi)) = f.key_range() else {
            page.total = count.then_some(0);
            return Ok(page);
        };
        // The candidates for driving the walk, each a run of keys in key
        // order; the narrowest (counted up to DRIVER_PROBE) wins.
        let pairs: Vec<String> = f
            .matchers
            .iter()
            .filter(|m| m.op == matcher::Op::Eq && !m.value.is_empty())
            .map(|m| listing::pair(&m.name, &m.value))
            .collect();
        // Every index filter can drive; the narrowest does (each counted up
        // to DRIVER_PROBE when there is a choice).
        let mut index: Vec<Driver> = Vec::new();
        if let Some(s) = f.status {
            index.push(Driver::Status(s.as_str()));
        }
        let mut seen_pairs = HashSet::new();
        for p in &pairs {
            if seen_pairs.insert(p.as_str()) {
                index.push(Driver::Label(p.as_str()));
            }
        }
        let range_of = |d: Driver,
                        (lo, hi): (u64, u64)|
         -> Result<
            Box<dyn DoubleEndedIterator<Item = Result<u64, redb::StorageError>> + '_>,
            StoreError,
        > {
            Ok(match d {
                Driver::Status(s) => Box::new(
                    by_status
                        .range((s, lo)..=(s, hi))?
                        .map(|r| r.map(|(k, _)| k.value().1)),
                ),
                Driver::Label(p) => Box::new(
                    by_label
                        .range((p, lo)..=(p, hi))?
                        .map(|r| r.map(|(k, _)| k.value().1)),
                ),
                Driver::Rows => Box::new(rows.range(lo..=hi)?.map(|r| r.map(|(k, _)| k.value()))),
            })
        };
        let mut driver = Driver::Rows;
        if index.len() == 1 {
            driver = index[0];
        } else {
            let mut best = u64::MAX;
            for &d in &index {
                let n = probe(range_of(d, (lo, hi))?)?;
                if n < best {
                    (driver, best) = (d, n);
                }
            }
        }
        // The other index filters, as sets of keys where they are small
        // enough; what no set answers is checked on the list rows. Sets
        // span every page (the total counts over them all).
        let all_pages = ListFilter {
            after: None,
            ..f.clone()
        }
        .key_range()
        .unwrap_or((lo, hi));
        // (set, whether a key must be in it or out of it)
        let mut sets: Vec<(Vec<u64>, bool)> = Vec::new();
        let mut uncovered = false;
        let open_table = tx.open_table(OPEN)?;
        for &d in &index {
            if d == driver {
                continue;
            }
            // Closed is every incident not in the open table, which is
            // small: a key is closed when it is out of that.
            let (keys, member) = match d {
                Driver::Status(s) if s == Status::Closed.as_str() => (
                    Box::new(
                        open_table
                            .range(all_pages.0..=all_pages.1)?
                            .map(|r| r.map(|(k, _)| k.value())),
                    )
                        as Box<dyn Iterator<Item = Result<u64, redb::StorageError>>>,
                    false,
                ),
                d => (
                    Box::new(range_of(d, all_pages)?)
                        as Box<dyn Iterator<Item = Result<u64, redb::StorageError>>>,
                    true,
                ),
            };
            // Ranges run in key order: the set is sorted as read.
            let mut set = Vec::new();
            for k in keys {
                if set.len() >= SET_LIMIT {
                    uncovered = true;
                    break;
                }
                set.push(k?);
            }
            if set.len() < SET_LIMIT {
                sets.push((set, member));
            }
        }
        // Whether rows the driver yields need their list row checked.
        let checks = uncovered
            || f.priority.is_some()
            || f.category.is_some()
            || f.created_after.is_some()
            || f.created_before.is_some()
            || f.matchers.len() > pairs.len();
        // Calls `each` with the keys that match, in list order, until it
        // says stop or `max_read` keys were read; answers whether it read
        // them all.
        let walk = |(lo, hi): (u64, u64),
                    max_read: u64,
                    each: &mut dyn FnMut(u64) -> Result<bool, StoreError>|
         -> Result<bool, StoreError> {
            let mut read = 0u64;
            let mut complete = true;
            let mut one = |key: u64, row: Option<&[u8]>| -> Result<bool, StoreError> {
                if parked.contains(&key) {
                    return Ok(true);
                }
                if read >= max_read {
                    complete = false;
                    return Ok(false);
                }
                read += 1;
                if !sets
                    .iter()
                    .all(|(s, member)| s.binary_search(&key).is_ok() == *member)
                {
                    return Ok(true);
                }
                if checks {
                    let got;
                    let bytes = match row {
                        Some(b) => b,
                        None => match rows.get(key)? {
                            Some(v) => {
                                got = v;
                                got.value()
                            }
                            None => return Ok(true),
                        },
                    };
                    if !f.keeps_row(&ListRow::decode(bytes)?)? {
                        return Ok(true);
                    }
                }
                each(key)
            };
            macro_rules! drive {
                ($range:expr, |$k:ident, $v:ident| $key:expr, $row:expr) => {{
                    let range = $range;
                    let range: Box<dyn Iterator<Item = _>> = if f.oldest_first {
                        Box::new(range)
                    } else {
                        Box::new(range.rev())
                    };
                    for r in range {
                        let ($k, $v) = r?;
                        if !one($key, $row)? {
                            break;
                        }
                    }
                }};
            }
            match driver {
                Driver::Status(s) => {
                    drive!(
                        by_status.range((s, lo)..=(s, hi))?,
                        |k, _v| k.value().1,
                        None
                    )
                }
                Driver::Label(p) => {
                    drive!(
                        by_label.range((p, lo)..=(p, hi))?,
                        |k, _v| k.value().1,
                        None
                    )
                }
                Driver::Rows => {
                    drive!(rows.range(lo..=hi)?, |k, v| k.value(), Some(v.value()))
                }
            }
            Ok(complete)
        };
        walk((lo, hi), u64::MAX, &mut |key| {
            if page.incidents.len() >= limit {
                // One more match: there is a next page.
                page.next = page.incidents.last().map(|i| i.id);
                return Ok(false);
            }
            if let Some(v) = incidents.get(key)? {
                let mut inc: Incident = read_json("incidents", v.value())?;
                hot.incident(&mut inc)?;
                page.incidents.push(inc);
            }
            Ok(true)
        })?;
        if !count {
            return Ok(page);
        }
        // The count runs over every page: the cursor does not bound it.
        let (lo, hi) = all_pages;
        page.total = if !f.decodes() && (lo, hi) == (0, u64::MAX) {
            // The whole of one index, or of the table: counted without a walk
            // where the tables give it.
            Some(match f.status {
                // Every incident not closed is in the open table: closed
                // ones are the rest.
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
            let max = if checks {
                COUNT_SCAN_LIMIT
            } else {
                COUNT_KEYS_LIMIT
            };
            let mut n = 0u64;
            let complete = walk((lo, hi), max, &mut |_| {
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
