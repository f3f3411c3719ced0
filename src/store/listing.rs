//! The listing index: what `GET /api/v1/incidents` filters on, kept so a
//! filter never decodes a full incident row.
//!
//! Contract: for every stored incident, `incident_list_rows` holds a small
//! postcard row ([`ListRow`]: creation time, status, priority, category,
//! common labels) and `incidents_by_label` holds one key `("name=value",
//! incident)` per common label. [`index`] is called for every incident a
//! commit writes and keeps both exact (it reads the previous row to remove
//! labels the incident lost); [`unindex`] for every incident a commit drops.
//! [`backfill`] builds both for incidents an older release stored, once,
//! when the store opens. Readers (`read::list_page`) pick the narrowest of
//! the status index, one label index range and the row range, and check
//! the other filters on the small rows.
//!
//! Postcard writes `Status` and `Priority` by variant index: their
//! variants are append-only (as for the alert rows).
//!
//! Label names cannot contain `=` (Prometheus names are
//! `[a-zA-Z_][a-zA-Z0-9_]*`), so `name=value` is unambiguous.

use std::collections::HashSet;
use std::time::Instant;

use chrono::{DateTime, Utc};
use redb::{ReadableTable, ReadableTableMetadata, Table, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::error::StoreError;
use super::row::{from_ts, read_json, ts, RowError, Ts};
use super::schema::{BY_LABEL, INCIDENTS, LIST_ROWS};
use crate::model::{Incident, Labels, Priority, Status};

/// First byte of a list row.
const LIST_V1: u8 = 1;

/// What the listing filters on, per incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct ListRow {
    created: Ts,
    status: Status,
    priority: Priority,
    category: String,
    labels: Labels,
}

impl ListRow {
    pub(super) fn of(inc: &Incident) -> ListRow {
        ListRow {
            created: ts(inc.created_at),
            status: inc.status,
            priority: inc.priority,
            category: inc.category.clone(),
            labels: inc.labels.clone(),
        }
    }

    pub(super) fn created_at(&self) -> Result<DateTime<Utc>, RowError> {
        from_ts(self.created)
    }

    pub(super) fn status(&self) -> Status {
        self.status
    }

    pub(super) fn priority(&self) -> Priority {
        self.priority
    }

    pub(super) fn category(&self) -> &str {
        &self.category
    }

    pub(super) fn labels(&self) -> &Labels {
        &self.labels
    }

    fn encode(&self) -> Vec<u8> {
        // Serializing into a growable vector fails only on an allocation
        // failure, which aborts anyway.
        postcard::to_extend(self, vec![LIST_V1]).unwrap_or_default()
    }

    pub(super) fn decode(b: &[u8]) -> Result<ListRow, StoreError> {
        let corrupt = |source| StoreError::Corrupt {
            table: "incident_list_rows",
            source,
        };
        match b.split_first() {
            None => Err(corrupt(RowError::Empty)),
            Some((&LIST_V1, rest)) => {
                postcard::from_bytes(rest).map_err(|e| corrupt(RowError::Postcard(e)))
            }
            Some((&other, _)) => Err(corrupt(RowError::UnknownFormat(other))),
        }
    }
}

/// The label index key of one label.
pub(super) fn pair(name: &str, value: &str) -> String {
    format!("{name}={value}")
}

type Rows<'t> = Table<'t, u64, &'static [u8]>;
type ByLabel<'t> = Table<'t, (&'static str, u64), ()>;

/// Brings the list row and label keys of `inc` up to date.
pub(super) fn index(
    rows: &mut Rows,
    by_label: &mut ByLabel,
    inc: &Incident,
) -> Result<(), StoreError> {
    let k = inc.id.0;
    let new = ListRow::of(inc);
    let old = match rows.get(k)? {
        Some(v) => Some(ListRow::decode(v.value())?),
        None => None,
    };
    if old.as_ref() == Some(&new) {
        return Ok(());
    }
    rows.insert(k, new.encode().as_slice())?;
    let had: HashSet<(&str, &str)> = old
        .as_ref()
        .map(|o| o.labels.iter().collect())
        .unwrap_or_default();
    let has: HashSet<(&str, &str)> = new.labels.iter().collect();
    for (n, v) in had.difference(&has) {
        by_label.remove((pair(n, v).as_str(), k))?;
    }
    for (n, v) in has.difference(&had) {
        by_label.insert((pair(n, v).as_str(), k), ())?;
    }
    Ok(())
}

/// Forgets a dropped incident.
pub(super) fn unindex(rows: &mut Rows, by_label: &mut ByLabel, k: u64) -> Result<(), StoreError> {
    let old = match rows.remove(k)? {
        Some(v) => ListRow::decode(v.value())?,
        None => return Ok(()),
    };
    for (n, v) in old.labels.iter() {
        by_label.remove((pair(n, v).as_str(), k))?;
    }
    Ok(())
}

/// Indexes every stored incident that has no list row yet (a store an
/// earlier release wrote). One pass, once: afterwards every commit keeps
/// the index.
pub(super) fn backfill(tx: &WriteTransaction) -> Result<(), StoreError> {
    let incidents = tx.open_table(INCIDENTS)?;
    let mut rows = tx.open_table(LIST_ROWS)?;
    let total = incidents.len()?;
    if rows.len()? >= total {
        return Ok(());
    }
    let mut by_label = tx.open_table(BY_LABEL)?;
    let started = Instant::now();
    tracing::info!(
        incidents = total,
        "building the listing index (once, for incidents an earlier release stored)"
    );
    for row in incidents.iter()? {
        let (k, v) = row?;
        if rows.get(k.value())?.is_some() {
            continue;
        }
        let inc: Incident = read_json("incidents", v.value())?;
        index(&mut rows, &mut by_label, &inc)?;
    }
    tracing::info!(incidents = total, took = ?started.elapsed(), "listing index built");
    Ok(())
}
