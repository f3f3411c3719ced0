//! Heartbeats (dead man's switches): signals that must keep coming.
//!
//! Contract: an alert matching a heartbeat (or a ping by name) refreshes
//! it and opens no incident. A heartbeat is armed by its first signal;
//! once armed, `expect_every + grace` without a signal raises the alert
//! `HeartbeatMissing{heartbeat="<name>"}` ("no heartbeat from … since …"),
//! which opens an incident of the heartbeat's category and priority through
//! the normal path (silences and maintenance apply); the next signal
//! resolves that alert, and so the incident. The last signal of each
//! heartbeat is stored with the other changes. After a start or restore the
//! window counts from the later of the last signal and the start, so a
//! restart never fakes a missing heartbeat.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};

use super::{chrono_dur, Engine, Outcome};
use crate::model::{Alert, AlertStatus, Labels, Level, Priority, Source};
use crate::rules::heartbeats::{HeartbeatDef, MISSING_ALERTNAME};

/// Heartbeat state: the last signal of each (armed) heartbeat.
#[derive(Debug, Default)]
pub(super) struct Heartbeats {
    pub(super) last_seen: BTreeMap<String, DateTime<Utc>>,
    /// When this engine began watching (its first tick).
    pub(super) watching_since: Option<DateTime<Utc>>,
}

/// The alert a missing heartbeat raises (firing), or ends (resolved).
fn missing_alert(
    name: &str,
    since: DateTime<Utc>,
    firing: bool,
    now: DateTime<Utc>,
) -> Option<Alert> {
    let labels: Labels = [("alertname", MISSING_ALERTNAME), ("heartbeat", name)]
        .into_iter()
        .collect();
    let since_text = since.to_rfc3339_opts(SecondsFormat::Secs, true);
    let annotations: Labels = [(
        "summary",
        format!("no heartbeat from {name} since {since_text}").as_str(),
    )]
    .into_iter()
    .collect();
    Alert::new(
        labels,
        annotations,
        Some(if firing {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        }),
        Some(since),
        (!firing).then_some(now),
        String::new(),
        Source::Generic,
        None,
        now,
    )
}

impl Engine {
    /// The heartbeat an incoming alert is the signal of.
    pub(super) fn heartbeat_of(&self, labels: &Labels) -> Option<String> {
        self.rules
            .heartbeats
            .iter()
            .find(|h| h.matches(labels))
            .map(|h| h.name.clone())
    }

    /// The heartbeat whose missing alert has these labels.
    pub(super) fn missing_heartbeat(&self, labels: &Labels) -> Option<&HeartbeatDef> {
        if labels.get("alertname") != Some(MISSING_ALERTNAME) {
            return None;
        }
        let name = labels.get("heartbeat")?;
        self.rules.heartbeats.iter().find(|h| h.name == name)
    }

    /// Impact and urgency for a missing heartbeat's priority: a matrix cell
    /// that gives it, so re-prioritisation keeps it.
    pub(super) fn heartbeat_levels(&self, p: Priority) -> Option<(Level, Level)> {
        Level::ALL.into_iter().find_map(|i| {
            Level::ALL
                .into_iter()
                .find(|u| self.rules.prioritize.priority(i, *u) == p)
                .map(|u| (i, u))
        })
    }

    /// The last signal of each armed heartbeat.
    pub fn heartbeats(&self) -> &BTreeMap<String, DateTime<Utc>> {
        &self.heartbeats.last_seen
    }

    /// A signal from heartbeat `name` (a matching alert, or a ping):
    /// refreshes it and resolves its missing alert. `false`: no heartbeat
    /// has that name.
    pub fn beat(&mut self, name: &str, now: DateTime<Utc>) -> bool {
        if !self.rules.heartbeats.iter().any(|h| h.name == name) {
            return false;
        }
        let last = self.heartbeats.last_seen.insert(name.to_string(), now);
        self.dirty.heartbeats.insert(name.to_string());
        if let Some(a) = missing_alert(name, last.unwrap_or(now), false, now) {
            if self.missing_is_firing(a.fingerprint) {
                self.ingest_one(a, now);
            }
        }
        true
    }

    fn missing_is_firing(&self, fp: u64) -> bool {
        self.live
            .active
            .get(&fp)
            .and_then(|k| self.live.incidents.get(k))
            .and_then(|l| l.alerts.get(&fp))
            .is_some_and(|r| r.alert.status == AlertStatus::Firing)
    }

    /// Restores the stored last signals (before the first tick).
    pub fn restore_heartbeats(
        &mut self,
        last_seen: impl IntoIterator<Item = (String, DateTime<Utc>)>,
    ) {
        self.heartbeats.last_seen.extend(last_seen);
    }

    /// Raises the missing alert of every armed heartbeat whose window has
    /// passed. Called from the tick.
    pub(super) fn check_heartbeats(&mut self, now: DateTime<Utc>) {
        let since = *self.heartbeats.watching_since.get_or_insert(now);
        let rules = self.rules.clone();
        for h in &rules.heartbeats {
            let Some(last) = self.heartbeats.last_seen.get(&h.name).copied() else {
                continue;
            };
            if now - last.max(since) < chrono_dur(h.deadline()) {
                continue;
            }
            let Some(a) = missing_alert(&h.name, last, true, now) else {
                continue;
            };
            if self.missing_is_firing(a.fingerprint) {
                continue;
            }
            if let Outcome::Created(key) = self.ingest_one(a, now) {
                tracing::warn!(heartbeat = %h.name, incident = %key, "heartbeat missing");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::super::handover::Restored;
    use super::super::testkit::{firing, Fixture};
    use super::super::{Engine, Outcome, Settings};
    use crate::model::{Priority, Status};

    const HB: Fixture = Fixture {
        rules: r#"
heartbeats:
  - name: watchdog
    match: ['alertname="Watchdog"']
    expect_every: 1m
    grace: 2m
    category: software
    priority: P1
  - name: nightly-backup
    expect_every: 24h
"#,
        close_after: Duration::from_secs(3600),
        start: "2026-11-23T10:00:00Z",
    };

    fn missing(e: &Engine) -> Vec<(String, Status, Priority, String)> {
        e.live_incidents()
            .filter(|l| l.incident.labels.get("alertname") == Some("HeartbeatMissing"))
            .map(|l| {
                (
                    l.incident.title.clone(),
                    l.incident.status,
                    l.incident.priority,
                    l.incident.category.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn a_missing_heartbeat_opens_an_incident_that_its_return_resolves() {
        let mut e = HB.engine();
        // Not armed before its first signal: nothing, however long.
        e.tick(HB.t(0));
        e.tick(HB.t(30));
        assert!(missing(&e).is_empty());
        // Signals refresh it and open nothing.
        assert_eq!(
            e.ingest_one(firing(&[("alertname", "Watchdog")]), HB.t(30)),
            Outcome::Heartbeat
        );
        let ws = e.take_changes();
        assert_eq!(ws.heartbeats, vec![("watchdog".to_string(), HB.t(30))]);
        assert!(ws.incidents.is_empty());
        e.tick(HB.t(32));
        assert!(missing(&e).is_empty(), "within expect_every + grace");
        e.tick(HB.t(33));
        let m = missing(&e);
        assert_eq!(
            m,
            vec![(
                "HeartbeatMissing: no heartbeat from watchdog since 2026-11-23T10:30:00Z"
                    .to_string(),
                Status::Open,
                Priority::P1,
                "software".to_string()
            )]
        );
        // Further ticks do not pile up.
        e.tick(HB.t(40));
        assert_eq!(missing(&e).len(), 1);
        // The signal returns: resolved.
        e.ingest_one(firing(&[("alertname", "Watchdog")]), HB.t(41));
        assert_eq!(missing(&e)[0].1, Status::Resolved);
        // A ping works like an alert; unknown names are refused.
        assert!(e.beat("nightly-backup", HB.t(42)));
        assert!(!e.beat("nope", HB.t(42)));
    }

    #[test]
    fn a_restart_keeps_the_state_and_never_fakes_a_missing_heartbeat() {
        let mut e = HB.engine();
        e.tick(HB.t(0));
        e.ingest_one(firing(&[("alertname", "Watchdog")]), HB.t(1));
        let stored = e.take_changes().heartbeats;
        // Down from 1m to 60m: far past the window, but the restarted
        // engine counts the window from its start.
        let mut e = Engine::restore(
            Arc::new(
                crate::rules::RuleSet::from_sources(&[("t.yaml".into(), HB.rules.into())], "test")
                    .expect("rules"),
            ),
            Settings {
                close_after: HB.close_after,
                id_slot: None,
            },
            Vec::new(),
            Restored {
                heartbeats: stored,
                ..Restored::default()
            },
        );
        assert_eq!(e.heartbeats().get("watchdog"), Some(&HB.t(1)));
        e.tick(HB.t(60));
        e.tick(HB.t(62));
        assert!(
            missing(&e).is_empty(),
            "a restart is not a missing heartbeat"
        );
        // Still silent a whole window after the start: missing, since 1m.
        e.tick(HB.t(63));
        let m = missing(&e);
        assert_eq!(m.len(), 1);
        assert!(m[0].0.ends_with("since 2026-11-23T10:01:00Z"), "{m:?}");
    }
}
