//! Service-desk requests: a person opens an incident by hand, merges two
//! that turn out to be one, links two, splits alerts off into a new
//! incident, or overrides the priority with a reason.
//!
//! Contract: each request is checked first and changes nothing on an
//! error (400 for bad input, 404 for an unknown incident, 409 for a state
//! that does not allow it). Every change is on the timelines of every
//! incident it touches, with who made it.
//! - Open: source `manual`, priority from the matrix (impact × urgency,
//!   the rules' defaults when omitted), SLA, escalation and actions as for
//!   alert-driven incidents (`opened` fires).
//! - Merge: the source's alerts (with their fingerprints) and a copy of its
//!   timeline move into the target, and the source closes `merged into`
//!   the target. A resolved target with firing alerts moved in reopens.
//! - Link: a relation on both incidents (its inverse on the other).
//! - Split: the named alerts leave for a new incident of the same rule and
//!   category; both record it.
//! - Priority: the override wins over the rules until cleared; SLA
//!   deadlines move to the new priority's targets counted from creation
//!   (a breach already recorded stays recorded); a changed priority runs
//!   `priority_changed` actions. Clearing lets the rules decide again,
//!   which may lower the priority.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::events::Event;
use super::{Engine, Live, OpError};
use crate::model::{
    fingerprint, AlertStatus, DeskOp, Incident, IncidentKey, IncidentSource, ManualIncident,
    PriorityOverride, PriorityRequest, RelationKind, Status, TimelineEntry, TimelineKind,
    TransitionError, Trigger, CATEGORIES, SYSTEM,
};

fn bad(msg: impl Into<String>) -> OpError {
    OpError::Transition(TransitionError::BadRequest(msg.into()))
}

impl Engine {
    /// Applies a service-desk request. `key` is the incident it is about
    /// (none for `Open`); `moved` is the source's stored timeline for a
    /// merge; `load` brings a closed incident from the store.
    pub fn desk(
        &mut self,
        key: Option<IncidentKey>,
        op: DeskOp,
        by: &str,
        now: DateTime<Utc>,
        moved: Vec<TimelineEntry>,
        mut load: impl FnMut(IncidentKey) -> Option<Live>,
    ) -> Result<Incident, OpError> {
        // Merge, split and priority work on incidents that are not closed
        // (those are in memory); a closed one is a conflict, not unknown.
        let mut need: Vec<IncidentKey> = Vec::new();
        match (&op, key) {
            (DeskOp::Merge(m), Some(k)) => need.extend([k, m.into]),
            (DeskOp::Split(_) | DeskOp::Priority(_), Some(k)) => need.push(k),
            _ => {}
        }
        for k in need {
            if !self.live.incidents.contains_key(&k) {
                return Err(match load(k) {
                    Some(_) => OpError::Conflict(format!("{k} is closed; reopen it first")),
                    None => OpError::NotFound(k.to_string()),
                });
            }
        }
        let result = match (op, key) {
            (DeskOp::Open(m), _) => self.open_manual(m, by, now),
            (_, None) => Err(bad("no incident named")),
            (DeskOp::Merge(m), Some(k)) => self.merge(k, m.into, by, now, moved),
            (DeskOp::Link(l), Some(k)) => {
                let loaded_to = self.bring(l.to, &mut load)?;
                let loaded_from = match self.bring(k, &mut load) {
                    Ok(b) => b,
                    Err(e) => {
                        if loaded_to {
                            self.live.incidents.remove(&l.to);
                        }
                        return Err(e);
                    }
                };
                let r = if k == l.to {
                    Err(bad("an incident cannot be linked to itself"))
                } else if self.link(k, l.to, l.relation, by, now) {
                    Ok(k)
                } else {
                    Err(OpError::Conflict(format!(
                        "{k} is already linked to {}",
                        l.to
                    )))
                };
                // Closed incidents go back to the store once written.
                for (loaded, x) in [(loaded_from, k), (loaded_to, l.to)] {
                    if loaded {
                        if r.is_ok() {
                            self.dirty.closed.push(x);
                        } else {
                            self.live.incidents.remove(&x);
                        }
                    }
                }
                r
            }
            (DeskOp::Split(s), Some(k)) => self.split(k, &s.alerts, s.title, by, now),
            (DeskOp::Priority(p), Some(k)) => self.override_priority(k, p, by, now),
        };
        let key = result?;
        self.settle_parents(now);
        self.live
            .incidents
            .get(&key)
            .map(|l| l.incident.clone())
            .ok_or_else(|| OpError::NotFound(key.to_string()))
    }

    /// Puts an incident in memory (true if it had to be loaded: closed).
    fn bring(
        &mut self,
        key: IncidentKey,
        load: &mut impl FnMut(IncidentKey) -> Option<Live>,
    ) -> Result<bool, OpError> {
        if self.live.incidents.contains_key(&key) {
            return Ok(false);
        }
        let l = load(key).ok_or_else(|| OpError::NotFound(key.to_string()))?;
        self.live.incidents.insert(key, Box::new(l));
        Ok(true)
    }

    fn live_open(&self, key: IncidentKey, what: &str) -> Result<&Live, OpError> {
        let l = self
            .live
            .incidents
            .get(&key)
            .ok_or_else(|| OpError::NotFound(key.to_string()))?;
        if l.incident.status == Status::Closed {
            return Err(OpError::Conflict(format!("{key} is closed; {what}")));
        }
        Ok(l)
    }

    fn open_manual(
        &mut self,
        m: ManualIncident,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<IncidentKey, OpError> {
        let title = m.title.trim().to_string();
        if title.is_empty() {
            return Err(bad("title: must not be empty"));
        }
        let category = m.category.unwrap_or_else(|| "other".into());
        if !CATEGORIES.contains(&category.as_str()) {
            return Err(bad(format!(
                "category: unknown value {category:?}; expected one of {}",
                CATEGORIES.join(", ")
            )));
        }
        if m.occurred_at.is_some_and(|t| t > now) {
            return Err(bad("occurred_at: must not be in the future"));
        }
        let impact = m.impact.unwrap_or(self.rules.prioritize.default_impact);
        let urgency = m.urgency.unwrap_or(self.rules.prioritize.default_urgency);
        let priority = self.rules.prioritize.priority(impact, urgency);
        let key = self.next_key(now);
        let reporter = m
            .reporter
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| by.to_string());
        let incident = Incident {
            title,
            priority,
            impact,
            urgency,
            category: category.clone(),
            rule: "manual".into(),
            group_key: format!("manual{{id=\"{key}\"}}"),
            labels: m.labels,
            occurred_at: m.occurred_at.unwrap_or(now),
            source: IncidentSource::Manual,
            description: m.description.filter(|d| !d.trim().is_empty()),
            reporter: Some(reporter.clone()),
            contact: m.contact.filter(|c| !c.trim().is_empty()),
            service: m.service.filter(|s| !s.trim().is_empty()),
            ..Incident::new(key, now, self.sla_for(priority, now))
        };
        self.live.incidents.insert(
            key,
            Box::new(Live {
                incident,
                alerts: BTreeMap::new(),
            }),
        );
        self.dirty.events.push(Event::Created {
            priority,
            category: category.clone(),
        });
        self.note(
            key,
            now,
            TimelineKind::Created,
            by,
            format!(
                "opened by hand, reported by {reporter}: {priority} (impact {} × urgency {}), category {category}",
                impact.as_str(),
                urgency.as_str()
            ),
        );
        self.fire(key, Trigger::Opened, "0", now);
        Ok(key)
    }

    fn merge(
        &mut self,
        from: IncidentKey,
        into: IncidentKey,
        by: &str,
        now: DateTime<Utc>,
        moved: Vec<TimelineEntry>,
    ) -> Result<IncidentKey, OpError> {
        if from == into {
            return Err(bad("into: an incident cannot be merged into itself"));
        }
        let src = self.live_open(from, "only an incident that is not closed can be merged")?;
        if !src.incident.children.is_empty() {
            return Err(OpError::Conflict(format!(
                "{from} is a major incident with {} grouped incidents; merge another incident into it instead",
                src.incident.children.len()
            )));
        }
        self.live_open(into, "merge into an incident that is not closed")?;
        let src = self
            .live
            .incidents
            .get_mut(&from)
            .ok_or_else(|| OpError::NotFound(from.to_string()))?;
        let alerts = src.alerts.clone();
        let (title, firing) = (src.incident.title.clone(), src.incident.firing_count);
        // The source closes as merged; its rows stay as its history.
        let was_active = src.incident.status.is_active();
        src.incident.status = Status::Closed;
        src.incident.closed_at = Some(now);
        if src.incident.resolved_at.is_none() {
            src.incident.resolved_at = Some(now);
            src.incident.resolved_by = Some(by.to_string());
        }
        src.incident.merged_into = Some(into);
        src.incident.firing_count = 0;
        let parent = src.incident.parent.take();
        if let Some(p) = parent.and_then(|p| self.live.incidents.get_mut(&p)) {
            p.incident.children.retain(|c| *c != from);
            self.storms.touched.insert(p.incident.id);
        }
        let n = alerts.len();
        let mut firing_in = 0;
        {
            let Some(dst) = self.live.incidents.get_mut(&into) else {
                return Err(OpError::NotFound(into.to_string()));
            };
            for (fp, rec) in alerts {
                let active_here = self.live.active.get(&fp) == Some(&from);
                match dst.alerts.get(&fp) {
                    Some(existing) if existing.alert.last_seen_at >= rec.alert.last_seen_at => {}
                    _ => {
                        if active_here && rec.alert.status == AlertStatus::Firing {
                            firing_in += 1;
                        }
                        let was_firing = dst
                            .alerts
                            .get(&fp)
                            .is_some_and(|r| r.alert.status == AlertStatus::Firing);
                        if was_firing {
                            dst.incident.firing_count = dst.incident.firing_count.saturating_sub(1);
                        }
                        dst.incident
                            .labels
                            .retain(|k, v| rec.alert.labels.get(k) == Some(v));
                        dst.alerts.insert(fp, rec);
                        self.dirty.alerts.insert((into, fp));
                    }
                }
                if active_here {
                    self.live.active.insert(fp, into);
                }
            }
            dst.incident.alert_count = dst.alerts.len() as u32;
            dst.incident.firing_count += firing_in;
            dst.incident.last_activity_at = now;
            dst.incident.occurred_at = dst
                .alerts
                .values()
                .map(|r| r.alert.starts_at)
                .min()
                .unwrap_or(dst.incident.occurred_at)
                .min(dst.incident.occurred_at);
        }
        self.live.aggregates.remove(&into);
        if was_active {
            self.dirty.events.push(Event::Closed);
        }
        self.note(
            from,
            now,
            TimelineKind::Merged,
            by,
            format!("merged into {into}: its {n} alert(s) and timeline moved there; closed"),
        );
        for entry in moved {
            self.note(
                into,
                entry.at,
                entry.kind,
                &entry.by,
                format!("[from {from}] {}", entry.message),
            );
        }
        self.note(
            into,
            now,
            TimelineKind::Merged,
            by,
            format!("{from} merged in ({title}): {n} alert(s), {firing} firing"),
        );
        self.dirty.incidents.insert(from);
        self.dirty.closed.push(from);
        let reopen =
            self.live.incidents.get(&into).is_some_and(|l| {
                l.incident.status == Status::Resolved && l.incident.firing_count > 0
            });
        if reopen {
            if let Some(l) = self.live.incidents.get_mut(&into) {
                l.incident.reopen(now);
            }
            self.dirty.events.push(Event::Reopened);
            self.note(
                into,
                now,
                TimelineKind::Reopened,
                SYSTEM,
                format!("{from} merged in with firing alerts"),
            );
            let n = self.reopen_count(into);
            self.fire(into, Trigger::Reopened, &n, now);
        }
        self.reprioritize(into, now);
        Ok(into)
    }

    fn split(
        &mut self,
        from: IncidentKey,
        fps: &[String],
        title: Option<String>,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<IncidentKey, OpError> {
        if fps.is_empty() {
            return Err(bad("alerts: name at least one alert fingerprint"));
        }
        let src = self.live_open(from, "only an incident that is not closed can be split")?;
        let mut take = Vec::new();
        for (i, f) in fps.iter().enumerate() {
            let fp = fingerprint::from_hex(f).ok_or_else(|| {
                bad(format!(
                    "alerts[{i}]: {f:?} is not a fingerprint (16 hex digits)"
                ))
            })?;
            if !src.alerts.contains_key(&fp) {
                return Err(bad(format!("alerts[{i}]: {from} has no alert {f}")));
            }
            if !take.contains(&fp) {
                take.push(fp);
            }
        }
        if take.len() == src.alerts.len() {
            return Err(bad(format!(
                "alerts: that is every alert of {from}; leave at least one"
            )));
        }
        let key = self.next_key(now);
        let Some(src) = self.live.incidents.get_mut(&from) else {
            return Err(OpError::NotFound(from.to_string()));
        };
        let mut moved = BTreeMap::new();
        for fp in &take {
            if let Some(rec) = src.alerts.remove(fp) {
                if rec.alert.status == AlertStatus::Firing {
                    src.incident.firing_count = src.incident.firing_count.saturating_sub(1);
                }
                moved.insert(*fp, rec);
            }
        }
        src.incident.alert_count = src.alerts.len() as u32;
        let mut labels = src
            .alerts
            .values()
            .next()
            .map(|r| r.alert.labels.clone())
            .unwrap_or_default();
        for r in src.alerts.values() {
            labels.retain(|k, v| r.alert.labels.get(k) == Some(v));
        }
        src.incident.labels = labels;
        let old = src.incident.clone();
        let mut labels = moved
            .values()
            .next()
            .map(|r| r.alert.labels.clone())
            .unwrap_or_default();
        for r in moved.values() {
            labels.retain(|k, v| r.alert.labels.get(k) == Some(v));
        }
        let top = moved
            .values()
            .min_by_key(|r| (r.priority, r.impact))
            .map(|r| (r.priority, r.impact, r.urgency, r.category.to_string()));
        let Some((priority, impact, urgency, category)) = top else {
            return Err(bad("alerts: nothing to split"));
        };
        let firing = moved
            .values()
            .filter(|r| r.alert.status == AlertStatus::Firing)
            .count() as u32;
        let title = title
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| format!("{} (split from {from})", old.title));
        let incident = Incident {
            title,
            priority,
            impact,
            urgency,
            category: category.clone(),
            rule: old.rule.clone(),
            // Its own group: new alerts of the old group keep going to the
            // old incident.
            group_key: format!("{}#split-{key}", old.group_key),
            labels,
            alert_count: moved.len() as u32,
            firing_count: firing,
            occurred_at: moved
                .values()
                .map(|r| r.alert.starts_at)
                .min()
                .unwrap_or(now)
                .min(now),
            status: if firing == 0 {
                Status::Resolved
            } else {
                Status::Open
            },
            resolved_at: (firing == 0).then_some(now),
            resolved_by: (firing == 0).then(|| SYSTEM.to_string()),
            relations: Vec::new(),
            ..Incident::new(key, now, self.sla_for(priority, now))
        };
        for fp in moved.keys() {
            self.dirty.removed_alerts.push((from, *fp));
            self.dirty.alerts.insert((key, *fp));
            if self.live.active.get(fp) == Some(&from) {
                self.live.active.insert(*fp, key);
            }
        }
        let n = moved.len();
        self.live.incidents.insert(
            key,
            Box::new(Live {
                incident,
                alerts: moved,
            }),
        );
        self.live.aggregates.remove(&from);
        self.dirty
            .events
            .push(Event::Created { priority, category });
        self.note(
            key,
            now,
            TimelineKind::Created,
            by,
            format!("split from {from} with {n} alert(s)"),
        );
        self.note(
            from,
            now,
            TimelineKind::Split,
            by,
            format!("{n} alert(s) split off into {key}"),
        );
        self.link(key, from, RelationKind::Related, by, now);
        self.fire(key, Trigger::Opened, "0", now);
        if old.status.is_active() && old.firing_count == 0 && old.alert_count > 0 {
            self.auto_resolve(from, now, "every remaining alert is resolved");
        }
        Ok(key)
    }

    fn override_priority(
        &mut self,
        key: IncidentKey,
        p: PriorityRequest,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<IncidentKey, OpError> {
        let l = self.live_open(key, "reopen it to change its priority")?;
        let i = &l.incident;
        if p.clear {
            if p.priority.is_some() || p.impact.is_some() || p.urgency.is_some() {
                return Err(bad("clear: give either clear or a new priority, not both"));
            }
            if i.priority_override.is_none() {
                return Err(OpError::Conflict(format!(
                    "{key} has no priority override to clear"
                )));
            }
            let current = (i.priority, i.impact, i.urgency);
            if let Some(l) = self.live.incidents.get_mut(&key) {
                l.incident.priority_override = None;
            }
            let ruled = self.rule_priority(key).map(|(p, i, u, _)| (p, i, u));
            let levels = ruled.unwrap_or(current);
            let reason = p
                .reason
                .map(|r| format!(": {}", r.trim()))
                .unwrap_or_default();
            self.set_priority(
                key,
                levels,
                now,
                by,
                format!(
                    "priority override cleared{reason}; the rules decide again: {} (impact {} × urgency {})",
                    levels.0,
                    levels.1.as_str(),
                    levels.2.as_str()
                ),
            );
            return Ok(key);
        }
        let reason = p
            .reason
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .ok_or_else(|| bad("reason: say why the priority changes"))?;
        let (impact, urgency, priority) = match (p.priority, p.impact, p.urgency) {
            (None, None, None) => {
                return Err(bad(
                    "give priority (P1..P5), or impact and/or urgency (high, medium, low)",
                ))
            }
            (Some(pr), impact, urgency) => {
                (impact.unwrap_or(i.impact), urgency.unwrap_or(i.urgency), pr)
            }
            (None, impact, urgency) => {
                let (im, ur) = (impact.unwrap_or(i.impact), urgency.unwrap_or(i.urgency));
                (im, ur, self.rules.prioritize.priority(im, ur))
            }
        };
        let old = i.priority;
        if let Some(l) = self.live.incidents.get_mut(&key) {
            l.incident.priority_override = Some(PriorityOverride {
                priority,
                impact,
                urgency,
                reason: reason.clone(),
                by: by.to_string(),
                at: now,
            });
        }
        self.set_priority(
            key,
            (priority, impact, urgency),
            now,
            by,
            format!(
                "priority {old} → {priority} set by hand (impact {} × urgency {}): {reason}; SLA deadlines follow {priority}",
                impact.as_str(),
                urgency.as_str()
            ),
        );
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::testkit::*;
    use crate::engine::*;
    use crate::model::*;

    fn created(o: Outcome) -> IncidentKey {
        match o {
            Outcome::Created(k) => k,
            other => panic!("expected a new incident, got {other:?}"),
        }
    }

    fn desk(
        e: &mut Engine,
        key: Option<IncidentKey>,
        op: DeskOp,
        at: i64,
    ) -> Result<Incident, OpError> {
        e.desk(key, op, "ann", NODES.t(at), Vec::new(), no_load)
    }

    #[test]
    fn a_manual_incident_has_the_matrix_priority_sla_and_lifecycle() {
        let mut e = NODES.engine();
        let i = desk(
            &mut e,
            None,
            DeskOp::Open(ManualIncident {
                title: "VPN drops every hour".into(),
                impact: Some(Level::High),
                urgency: Some(Level::High),
                category: Some("network".into()),
                ..ManualIncident::default()
            }),
            0,
        )
        .expect("opened");
        assert_eq!(
            (i.source, i.priority),
            (IncidentSource::Manual, Priority::P1)
        );
        assert_eq!(i.reporter.as_deref(), Some("ann"));
        assert_eq!(i.sla.acknowledge_by, NODES.t(5));
        let ws = e.take_changes();
        assert_eq!(kinds(&ws, i.id), vec!["created"]);
        // Its SLA is watched like any other.
        e.tick(NODES.t(6));
        assert!(inc(&e, i.id).sla.acknowledge_breached);
        let bad = desk(
            &mut e,
            None,
            DeskOp::Open(ManualIncident {
                title: "x".into(),
                category: Some("weather".into()),
                ..ManualIncident::default()
            }),
            7,
        );
        assert!(
            matches!(bad, Err(OpError::Transition(TransitionError::BadRequest(m))) if m.contains("category"))
        );
    }

    #[test]
    fn merge_moves_alerts_and_their_fingerprints_and_survives_a_restart() {
        let mut e = NODES.engine();
        let a = created(e.ingest_one(firing(A), NODES.t(0)));
        let other = [
            ("alertname", "NodeDown"),
            ("cluster", "us"),
            ("instance", "x"),
        ];
        let b = created(e.ingest_one(firing(&other), NODES.t(1)));
        let into = desk(
            &mut e,
            Some(a),
            DeskOp::Merge(MergeRequest { into: b, by: None }),
            2,
        )
        .expect("merged");
        assert_eq!((into.id, into.alert_count, into.firing_count), (b, 2, 2));
        let ws = e.take_changes();
        let gone = ws
            .incidents
            .iter()
            .find(|i| i.id == a)
            .expect("source written");
        assert_eq!((gone.status, gone.merged_into), (Status::Closed, Some(b)));
        assert!(kinds(&ws, b).contains(&"merged".to_string()));
        assert!(e.live(a).is_none(), "the merged incident left memory");
        // A's alert repeats into B, also after a restart.
        assert_eq!(
            e.ingest_one(firing(A), NODES.t(3)),
            Outcome::Deduplicated(b)
        );
        let live: Vec<Live> = e.live_incidents().cloned().collect();
        let mut r = Engine::restore(
            e.rules().clone(),
            Settings {
                close_after: Duration::from_secs(3600),
                id_slot: None,
            },
            live,
            Restored {
                last_key: Some(b),
                ..Restored::default()
            },
        );
        assert_eq!(
            r.ingest_one(firing(A), NODES.t(4)),
            Outcome::Deduplicated(b)
        );
        // Resolving A's alert counts in B.
        assert_eq!(r.ingest_one(resolved(A), NODES.t(5)), Outcome::Resolved(b));
        assert_eq!(inc(&r, b).firing_count, 1);
    }

    #[test]
    fn split_opens_a_new_incident_with_the_named_alerts() {
        let mut e = NODES.engine();
        let k = created(e.ingest_one(firing(A), NODES.t(0)));
        e.ingest_one(firing(B), NODES.t(1));
        let fp = fingerprint::to_hex(firing(B).fingerprint);
        let new = desk(
            &mut e,
            Some(k),
            DeskOp::Split(SplitRequest {
                alerts: vec![fp],
                title: None,
                by: None,
            }),
            2,
        )
        .expect("split");
        assert_ne!(new.id, k);
        assert_eq!((new.alert_count, new.firing_count), (1, 1));
        assert_eq!(inc(&e, k).alert_count, 1);
        let ws = e.take_changes();
        assert_eq!(ws.removed_alerts, vec![(k, firing(B).fingerprint)]);
        assert_eq!(
            e.ingest_one(firing(B), NODES.t(3)),
            Outcome::Deduplicated(new.id)
        );
        // Every alert cannot leave.
        let all = vec![fingerprint::to_hex(firing(A).fingerprint)];
        let r = desk(
            &mut e,
            Some(k),
            DeskOp::Split(SplitRequest {
                alerts: all,
                title: None,
                by: None,
            }),
            4,
        );
        assert!(matches!(
            r,
            Err(OpError::Transition(TransitionError::BadRequest(_)))
        ));
    }

    #[test]
    fn an_override_wins_over_the_rules_until_cleared() {
        let mut e = NODES.engine();
        let low = [
            ("alertname", "NodeDown"),
            ("cluster", "eu"),
            ("instance", "a"),
            ("severity", "info"),
        ];
        let k = created(e.ingest_one(firing(&low), NODES.t(0)));
        assert_eq!(inc(&e, k).priority, Priority::P5);
        let i = desk(
            &mut e,
            Some(k),
            DeskOp::Priority(PriorityRequest {
                priority: Some(Priority::P3),
                reason: Some("the CFO's laptop".into()),
                ..PriorityRequest::default()
            }),
            1,
        )
        .expect("override");
        assert_eq!(i.priority, Priority::P3);
        assert_eq!(i.sla.acknowledge_by, NODES.t(60), "P3's 1h, from creation");
        let ws = e.take_changes();
        assert!(ws.events.contains(&Event::PriorityChanged {
            from: Priority::P5,
            to: Priority::P3
        }));
        // A critical prod alert would make it P1 by the rules: the override wins.
        let prod = [
            ("alertname", "NodeDown"),
            ("cluster", "eu"),
            ("instance", "b"),
            ("severity", "critical"),
            ("env", "prod"),
        ];
        e.ingest_one(firing(&prod), NODES.t(2));
        assert_eq!(inc(&e, k).priority, Priority::P3);
        // Cleared: the rules decide again.
        let i = desk(
            &mut e,
            Some(k),
            DeskOp::Priority(PriorityRequest {
                clear: true,
                ..PriorityRequest::default()
            }),
            3,
        )
        .expect("cleared");
        assert_eq!(i.priority, Priority::P1);
        assert!(i.priority_override.is_none());
        // Without a reason, nothing changes.
        let r = desk(
            &mut e,
            Some(k),
            DeskOp::Priority(PriorityRequest {
                priority: Some(Priority::P5),
                ..PriorityRequest::default()
            }),
            4,
        );
        assert!(r.is_err());
        assert_eq!(inc(&e, k).priority, Priority::P1);
    }

    /// The open-by-priority gauge is kept as incidents change (not by a
    /// walk over every live incident after each commit); it must agree
    /// with that walk through creation, override, resolve, reopen and close.
    #[test]
    fn open_by_priority_follows_every_change() {
        let mut e = NODES.engine();
        let walk = |e: &Engine| {
            let mut out = [0u64; 5];
            for i in e.live_incidents() {
                if i.incident.status.is_active() {
                    out[i.incident.priority.idx()] += 1;
                }
            }
            out
        };
        let check = |e: &mut Engine, what: &str| {
            e.take_changes();
            assert_eq!(e.open_by_priority(), walk(e), "{what}");
        };
        let a = created(e.ingest_one(firing(A), NODES.t(0)));
        check(&mut e, "created");
        let low = [
            ("alertname", "Other"),
            ("instance", "x"),
            ("severity", "info"),
        ];
        let b = created(e.ingest_one(firing(&low), NODES.t(1)));
        check(&mut e, "a second priority");
        desk(
            &mut e,
            Some(b),
            DeskOp::Priority(PriorityRequest {
                priority: Some(Priority::P1),
                reason: Some("vip".into()),
                ..PriorityRequest::default()
            }),
            2,
        )
        .expect("override");
        check(&mut e, "overridden");
        let req = OpRequest::default();
        e.apply_op(a, Op::Ack, &req, NODES.t(3), no_load)
            .expect("ack");
        check(&mut e, "acknowledged");
        e.apply_op(a, Op::Resolve, &req, NODES.t(4), no_load)
            .expect("resolve");
        check(&mut e, "resolved");
        e.apply_op(a, Op::Reopen, &req, NODES.t(5), no_load)
            .expect("reopen");
        check(&mut e, "reopened");
        e.apply_op(b, Op::Resolve, &req, NODES.t(6), no_load)
            .expect("resolve");
        e.apply_op(b, Op::Close, &req, NODES.t(7), no_load)
            .expect("close");
        check(&mut e, "closed");
        assert_eq!(e.open_by_priority().iter().sum::<u64>(), 1);
    }
}
