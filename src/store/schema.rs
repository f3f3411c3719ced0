//! The redb tables, as `const` definitions: names and key/value types are
//! the file format (a rename is a migration).

use redb::TableDefinition;

use crate::model::Status;

pub(super) const INCIDENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("incidents");
pub(super) const ALERTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("alerts");
pub(super) const TIMELINE: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("timeline");
pub(super) const ALERT_SEEN: TableDefinition<(u64, u64), &[u8]> =
    TableDefinition::new("alert_seen");
pub(super) const ACTIVITY: TableDefinition<u64, (i64, u32)> =
    TableDefinition::new("incident_activity");
pub(super) const SEEN_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("seen_log");

pub(super) const KAFKA_POSITIONS: TableDefinition<(&str, i32), i64> =
    TableDefinition::new("kafka_positions");
pub(super) const HOMES: TableDefinition<u64, (&str, i32)> = TableDefinition::new("incident_home");
pub(super) const OPEN: TableDefinition<u64, &str> = TableDefinition::new("open_incidents");
pub(super) const BY_STATUS: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("incidents_by_status");
pub(super) const SUPPRESSED: TableDefinition<u64, &[u8]> =
    TableDefinition::new("suppressed_alerts");
pub(super) const SILENCES: TableDefinition<&str, &[u8]> = TableDefinition::new("silences");
pub(super) const ACTION_JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("action_jobs");
/// Incident → its list row (see the `listing` module).
pub(super) const LIST_ROWS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("incident_list_rows");
/// `("name=value", incident)` for every common label of every incident.
pub(super) const BY_LABEL: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("incidents_by_label");
/// Heartbeat name → its last signal (JSON timestamp).
pub(super) const HEARTBEATS: TableDefinition<&str, &[u8]> = TableDefinition::new("heartbeats");
/// Override id → a schedule override (JSON), removed ones included.
pub(super) const OVERRIDES: TableDefinition<&str, &[u8]> =
    TableDefinition::new("schedule_overrides");
/// Scratch space for [`Store::probe`](super::Store::probe); empty between probes.
pub(super) const PROBE: TableDefinition<u8, &[u8]> = TableDefinition::new("write_probe");

/// Every status, for the `incidents_by_status` index.
pub(super) const STATUSES: [Status; 4] = [
    Status::Open,
    Status::Acknowledged,
    Status::Resolved,
    Status::Closed,
];
