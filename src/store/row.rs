//! Row codecs: the binary row format of stored alert records (table
//! `alerts`), and the JSON the other tables hold.
//!
//! Contract: [`encode_alert`] writes a tag byte ([`POSTCARD_V1`]) and the
//! record in postcard, timestamps as seconds and nanoseconds, labels and
//! annotations as length-prefixed maps. [`decode_alert`] reads that, and
//! also the JSON rows earlier versions wrote (they start with `{`), so an
//! existing data directory needs no migration: old rows are rewritten in
//! the new format whenever their alert changes. Anything else is an error
//! naming what was found, never a panic.
//!
//! Why: a restart decodes every alert of every open incident, and JSON
//! (RFC 3339 timestamps, hex fingerprints, field names) was about 70% of
//! that time. Postcard writes the enums by variant index, so the order of
//! the variants of `AlertStatus`, `Source`, `Level` and `Priority` is part
//! of this format: add variants at the end only. A test pins the bytes.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::StoreError;
use crate::model::{AlertRecord, AlertStatus, Labels, Level, Priority, Source, TrackedAlert};

/// First byte of a postcard alert row. JSON rows begin with `{`.
pub const POSTCARD_V1: u8 = 1;

/// A timestamp as stored: seconds since the epoch and nanoseconds.
pub(crate) type Ts = (i64, u32);

pub(crate) fn ts(t: DateTime<Utc>) -> Ts {
    (t.timestamp(), t.timestamp_subsec_nanos())
}

pub(crate) fn from_ts((secs, nanos): Ts) -> Result<DateTime<Utc>, RowError> {
    DateTime::from_timestamp(secs, nanos).ok_or(RowError::Timestamp { secs, nanos })
}

/// Why a stored row does not decode.
#[derive(Debug, thiserror::Error)]
pub enum RowError {
    #[error("empty row")]
    Empty,
    #[error("unknown row format (first byte {0:#04x})")]
    UnknownFormat(u8),
    #[error("postcard row: {0}")]
    Postcard(#[source] postcard::Error),
    #[error("JSON row: {0}")]
    Json(#[source] serde_json::Error),
    #[error("timestamp {secs}.{nanos:09} out of range")]
    Timestamp { secs: i64, nanos: u32 },
    #[error("row of {len} bytes, expected {expected}")]
    Length { len: usize, expected: usize },
    #[error("entry of {0} bytes is truncated")]
    Truncated(usize),
}

/// A JSON row of `table`.
pub(super) fn read_json<T: serde::de::DeserializeOwned>(
    table: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        table,
        source: RowError::Json(e),
    })
}

/// An alert row.
pub(super) fn read_alert(bytes: &[u8]) -> Result<AlertRecord, StoreError> {
    decode_alert(bytes).map_err(|source| StoreError::Corrupt {
        table: "alerts",
        source,
    })
}

/// A stored timestamp of `table`.
pub(super) fn read_ts(table: &'static str, t: Ts) -> Result<DateTime<Utc>, StoreError> {
    from_ts(t).map_err(|source| StoreError::Corrupt { table, source })
}

/// [`AlertRecord`] as the row holds it, field for field. Label sets are
/// borrowed when writing and owned when reading.
#[derive(Serialize, Deserialize)]
struct AlertRow<'a> {
    fingerprint: u64,
    labels: Cow<'a, Labels>,
    annotations: Cow<'a, Labels>,
    status: AlertStatus,
    starts_at: Ts,
    ends_at: Option<Ts>,
    generator_url: &'a str,
    source: Source,
    first_seen_at: Ts,
    last_seen_at: Ts,
    repeat_count: u64,
    occurrences: u32,
    impact: Level,
    urgency: Level,
    priority: Priority,
    category: &'a str,
    changes: Vec<Ts>,
    flapping: bool,
    origin: Option<&'a str>,
}

/// The row for a record.
pub fn encode_alert(r: &AlertRecord) -> Vec<u8> {
    let a = &r.alert;
    let row = AlertRow {
        fingerprint: a.fingerprint,
        labels: Cow::Borrowed(&a.labels),
        annotations: Cow::Borrowed(&a.annotations),
        status: a.status,
        starts_at: ts(a.starts_at),
        ends_at: a.ends_at.map(ts),
        generator_url: &a.generator_url,
        source: a.source,
        first_seen_at: ts(a.first_seen_at),
        last_seen_at: ts(a.last_seen_at),
        repeat_count: a.repeat_count,
        occurrences: r.occurrences,
        impact: r.impact,
        urgency: r.urgency,
        priority: r.priority,
        category: &r.category,
        changes: r.changes.iter().copied().map(ts).collect(),
        flapping: r.flapping,
        origin: r.origin.as_deref().map(String::as_str),
    };
    // Serializing into a growable vector fails only on an allocation
    // failure, which aborts anyway.
    postcard::to_extend(&row, vec![POSTCARD_V1]).unwrap_or_default()
}

/// The record in a row, whichever format wrote it.
pub fn decode_alert(bytes: &[u8]) -> Result<AlertRecord, RowError> {
    match bytes.first() {
        Some(&POSTCARD_V1) => {
            let row: AlertRow<'_> =
                postcard::from_bytes(&bytes[1..]).map_err(RowError::Postcard)?;
            Ok(AlertRecord {
                alert: TrackedAlert {
                    fingerprint: row.fingerprint,
                    labels: row.labels.into_owned(),
                    annotations: row.annotations.into_owned(),
                    status: row.status,
                    starts_at: from_ts(row.starts_at)?,
                    ends_at: row.ends_at.map(from_ts).transpose()?,
                    generator_url: row.generator_url.into(),
                    source: row.source,
                    first_seen_at: from_ts(row.first_seen_at)?,
                    last_seen_at: from_ts(row.last_seen_at)?,
                    repeat_count: row.repeat_count,
                },
                occurrences: row.occurrences,
                impact: row.impact,
                urgency: row.urgency,
                priority: row.priority,
                category: row.category.into(),
                changes: row
                    .changes
                    .into_iter()
                    .map(from_ts)
                    .collect::<Result<_, _>>()?,
                flapping: row.flapping,
                origin: row.origin.map(|o| Box::new(o.to_string())),
            })
        }
        Some(b'{') => serde_json::from_slice(bytes).map_err(RowError::Json),
        Some(b) => Err(RowError::UnknownFormat(*b)),
        None => Err(RowError::Empty),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(secs: i64, nanos: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, nanos).expect("valid")
    }

    fn record() -> AlertRecord {
        AlertRecord {
            alert: TrackedAlert {
                fingerprint: 0x0123_4567_89ab_cdef,
                labels: Labels::build([("alertname", "DiskFull"), ("instance", "db1")]),
                annotations: Labels::build([("summary", "disk full")]),
                status: AlertStatus::Firing,
                starts_at: at(1_700_000_000, 5),
                ends_at: None,
                generator_url: "http://prom/graph".into(),
                source: Source::AlertmanagerApi,
                first_seen_at: at(1_700_000_001, 0),
                last_seen_at: at(1_700_000_002, 999_999_999),
                repeat_count: 3,
            },
            occurrences: 1,
            impact: Level::High,
            urgency: Level::Medium,
            priority: Priority::P2,
            category: "storage".into(),
            changes: thin_vec::thin_vec![at(1_700_000_001, 0)],
            flapping: false,
            origin: None,
        }
    }

    /// The bytes of a known record. A change here means rows already on
    /// disk would no longer decode: add a new tag instead.
    #[test]
    fn the_row_format_is_pinned() {
        let bytes = encode_alert(&record());
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "01ef9bafcdf8acd191010209616c6572746e616d65084469736b4675\
             6c6c08696e7374616e636503646231010773756d6d61727909646973\
             6b2066756c6c0080c49fd50c050011687474703a2f2f70726f6d2f67\
             726170680082c49fd50c0084c49fd50cff93ebdc0303010001010773\
             746f726167650182c49fd50c000000"
        );
        assert_eq!(decode_alert(&bytes).expect("decodes"), record());
    }

    #[test]
    fn json_rows_of_earlier_versions_still_decode() {
        let r = record();
        let json = serde_json::to_vec(&r).expect("json");
        assert_eq!(decode_alert(&json).expect("decodes"), r);
    }

    #[test]
    fn bad_rows_are_errors_not_panics() {
        let err = |b: &[u8]| decode_alert(b).expect_err("not a row").to_string();
        assert_eq!(err(b""), "empty row");
        assert!(err(b"\x07abc").contains("0x07"));
        let mut truncated = encode_alert(&record());
        truncated.truncate(20);
        assert!(err(&truncated).starts_with("postcard row"));
        assert!(err(b"{\"fingerprint\":1}").starts_with("JSON row"));
    }

    proptest! {
        #[test]
        fn any_record_round_trips(
            labels in proptest::collection::vec(("[a-z_]{1,8}", ".{0,12}"), 1..6),
            url in ".{0,20}",
            category in "[a-z]{0,8}",
            origin in proptest::option::of(".{0,8}"),
            secs in -62_000_000_000i64..250_000_000_000,
            nanos in 0u32..1_000_000_000,
            ends in proptest::option::of(0i64..4_000_000_000),
            repeat in any::<u64>(),
            flapping in any::<bool>(),
        ) {
            let mut r = record();
            r.alert.labels = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            r.alert.generator_url = url.into();
            r.category = category.into();
            r.origin = origin.map(Box::new);
            r.alert.starts_at = at(secs, nanos);
            r.alert.ends_at = ends.map(|s| at(s, 0));
            r.alert.repeat_count = repeat;
            r.flapping = flapping;
            r.changes = std::iter::repeat_n(at(secs, nanos), (repeat % 4) as usize).collect();
            prop_assert_eq!(decode_alert(&encode_alert(&r)).expect("decodes"), r);
        }
    }
}
