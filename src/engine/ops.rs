//! Operator requests: a person's ack, assign, note, resolve, close or
//! reopen, applied through the incident state machine (on error nothing
//! changed), with its metrics events and triggers.

use chrono::{DateTime, Utc};

use super::events::Event;
use super::{secs, Engine, Live, OpError};
use crate::model::{Incident, IncidentKey, Op, OpRequest, SlaKind, Trigger};

impl Engine {
    /// A person's lifecycle request. `load` fetches a closed incident from the
    /// store (closed incidents are not in memory). On error nothing changed.
    pub fn apply_op(
        &mut self,
        key: IncidentKey,
        op: Op,
        req: &OpRequest,
        now: DateTime<Utc>,
        load: impl FnOnce(IncidentKey) -> Option<Live>,
    ) -> Result<Incident, OpError> {
        let loaded = match self.live.incidents.entry(key) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(Box::new(
                    load(key).ok_or_else(|| OpError::NotFound(key.to_string()))?,
                ));
                true
            }
        };
        let result = {
            let Some(l) = self.live.incidents.get_mut(&key) else {
                return Err(OpError::NotFound(key.to_string()));
            };
            l.incident.apply(op, req, now)
        };
        let entry = match result {
            Ok(e) => e,
            Err(e) => {
                if loaded {
                    self.live.incidents.remove(&key);
                }
                return Err(e.into());
            }
        };
        let note = (op == Op::Note).then(|| (entry.by.clone(), entry.message.clone()));
        let acked_by = (op == Op::Ack).then(|| entry.by.clone());
        let seq = self
            .live
            .incidents
            .get(&key)
            .map(|l| l.incident.timeline_len)
            .unwrap_or_default();
        self.note(key, now, entry.kind, &entry.by, entry.message);
        let Some(l) = self.live.incidents.get_mut(&key) else {
            return Err(OpError::NotFound(key.to_string()));
        };
        self.history.rolling.observe(&l.incident);
        let (p, cat, created) = (
            l.incident.priority,
            l.incident.category.clone(),
            l.incident.created_at,
        );
        match op {
            Op::Ack => {
                self.dirty.events.push(Event::Acknowledged {
                    priority: p,
                    seconds: secs(now - created),
                });
                if self
                    .live
                    .incidents
                    .get(&key)
                    .is_some_and(|l| now > l.incident.sla.acknowledge_by)
                {
                    self.breach(key, now, SlaKind::Acknowledge);
                }
                if let Some(by) = &acked_by {
                    self.pages_acknowledged(key, by, now);
                }
                let n = self.reopen_count(key);
                self.fire(key, Trigger::Acknowledged, &n, now);
            }
            Op::Resolve => {
                self.dirty.events.push(Event::Resolved {
                    priority: p,
                    category: cat,
                    seconds: secs(now - created),
                });
                self.check_resolve_breach(key, now);
                let n = self.reopen_count(key);
                self.fire(key, Trigger::Resolved, &n, now);
            }
            Op::Close => {
                self.dirty.events.push(Event::Closed);
                self.dirty.closed.push(key);
                let n = self.reopen_count(key);
                self.fire(key, Trigger::Closed, &n, now);
            }
            Op::Reopen => {
                self.dirty.events.push(Event::Reopened);
                if let Some(l) = self.live.incidents.get(&key) {
                    self.live
                        .groups
                        .entry(l.incident.group_key.clone())
                        .or_insert(key);
                }
                self.release_foreign_alerts(key, now);
                let n = self.reopen_count(key);
                self.fire(key, Trigger::Reopened, &n, now);
            }
            Op::Note => {
                if let Some((by, message)) = note {
                    let before = self.dirty.new_jobs.len();
                    self.fire(key, Trigger::Noted, &seq.to_string(), now);
                    // The note itself goes with the job (tickets add it as
                    // a journal entry).
                    let new: Vec<String> = self.dirty.new_jobs[before..].to_vec();
                    for k in new {
                        if let Some(j) = self.jobs.by_key.get_mut(&k) {
                            j.payload["note"] = serde_json::json!({"by": by, "message": message});
                        }
                    }
                }
                if loaded {
                    self.dirty.closed.push(key);
                }
            }
            Op::Assign => {
                if loaded {
                    // Still closed: write it back, then leave memory again.
                    self.dirty.closed.push(key);
                }
            }
        }
        self.dirty.incidents.insert(key);
        if matches!(op, Op::Ack | Op::Resolve) {
            self.cascade(key, op, req, now);
        }
        self.settle_parents(now);
        self.live
            .incidents
            .get(&key)
            .map(|l| l.incident.clone())
            .ok_or_else(|| OpError::NotFound(key.to_string()))
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::engine::testkit::*;
    use crate::engine::*;

    use crate::model::*;

    #[test]
    fn lifecycle_transitions_and_conflicts() {
        let mut e = NODES.engine();
        let Outcome::Created(k) = e.ingest_one(firing(A), NODES.t(0)) else {
            panic!()
        };
        // Close before resolve is illegal.
        let err = e
            .apply_op(k, Op::Close, &req("bob"), NODES.t(1), no_load)
            .unwrap_err();
        assert!(
            matches!(
                err,
                OpError::Transition(TransitionError::Illegal {
                    status: Status::Open,
                    ..
                })
            ),
            "{err}"
        );
        let i = e
            .apply_op(k, Op::Ack, &req("alice"), NODES.t(3), no_load)
            .expect("ack");
        assert_eq!(
            (i.status, i.acknowledged_at, i.acknowledged_by.as_deref()),
            (Status::Acknowledged, Some(NODES.t(3)), Some("alice"))
        );
        assert!(e
            .apply_op(k, Op::Ack, &req("alice"), NODES.t(4), no_load)
            .is_err());
        let assign = OpRequest {
            by: Some("alice".into()),
            assignee: Some("db-team".into()),
            ..OpRequest::default()
        };
        assert_eq!(
            e.apply_op(k, Op::Assign, &assign, NODES.t(5), no_load)
                .expect("assign")
                .assignee
                .as_deref(),
            Some("db-team")
        );
        let bad = e
            .apply_op(k, Op::Note, &req("alice"), NODES.t(5), no_load)
            .unwrap_err();
        assert!(matches!(
            bad,
            OpError::Transition(TransitionError::BadRequest(_))
        ));
        let res = OpRequest {
            by: Some("alice".into()),
            workaround: Some("failover".into()),
            root_cause: Some("disk".into()),
            ..OpRequest::default()
        };
        let i = e
            .apply_op(k, Op::Resolve, &res, NODES.t(10), no_load)
            .expect("resolve");
        assert_eq!(
            (i.status, i.workaround.as_deref(), i.root_cause.as_deref()),
            (Status::Resolved, Some("failover"), Some("disk"))
        );
        let i = e
            .apply_op(k, Op::Close, &req("alice"), NODES.t(11), no_load)
            .expect("close");
        assert_eq!(i.status, Status::Closed);
        let ws = e.take_changes();
        assert_eq!(
            kinds(&ws, k),
            vec!["created", "acknowledged", "assigned", "resolved", "closed"]
        );
        assert!(ws
            .timeline
            .iter()
            .filter(|(_, _, e)| e.kind != TimelineKind::Created)
            .all(|(_, _, e)| e.by == "alice"));
        assert!(ws.events.contains(&Event::Acknowledged {
            priority: Priority::P3,
            seconds: 180.0
        }));
        // Closed incidents leave memory; unknown ids are not found.
        assert!(e.live(k).is_none());
        assert!(matches!(
            e.apply_op(k, Op::Reopen, &req("x"), NODES.t(12), no_load),
            Err(OpError::NotFound(_))
        ));
        // A closed incident can be reopened when the store provides it.
        let stored = ws
            .incidents
            .iter()
            .find(|i| i.id == k)
            .cloned()
            .expect("written");
        let i = e
            .apply_op(k, Op::Reopen, &req("carol"), NODES.t(13), |_| {
                Some(Live {
                    incident: stored,
                    alerts: Default::default(),
                })
            })
            .expect("reopen");
        assert_eq!(
            (i.status, i.closed_at, i.reopen_count),
            (Status::Open, None, 1)
        );
    }

    #[test]
    fn reopening_an_acknowledged_incident_is_no_acknowledge_breach() {
        let mut e = NODES.engine();
        let Outcome::Created(k) = e.ingest_one(firing(A), NODES.t(0)) else {
            panic!()
        };
        e.apply_op(k, Op::Ack, &req("a"), NODES.t(5), no_load)
            .expect("ack");
        e.apply_op(k, Op::Resolve, &req("a"), NODES.t(6), no_load)
            .expect("resolve");
        e.apply_op(k, Op::Reopen, &req("a"), NODES.t(90), no_load)
            .expect("reopen");
        e.tick(NODES.t(91));
        assert!(!e.live(k).expect("live").incident.sla.acknowledge_breached);
    }

    #[test]
    fn reopened_closed_incident_releases_alerts_another_incident_tracks() {
        let mut e = NODES.engine();
        let Outcome::Created(k1) = e.ingest_one(firing(A), NODES.t(0)) else {
            panic!()
        };
        e.apply_op(k1, Op::Resolve, &req("a"), NODES.t(1), no_load)
            .expect("resolve");
        e.apply_op(k1, Op::Close, &req("a"), NODES.t(2), no_load)
            .expect("close");
        let ws = e.take_changes();
        // Still firing: the next notification opens a new incident.
        let Outcome::Created(k2) = e.ingest_one(firing(A), NODES.t(3)) else {
            panic!("new incident")
        };
        let stored = ws
            .incidents
            .iter()
            .find(|i| i.id == k1)
            .cloned()
            .expect("written");
        let alerts = ws
            .alerts
            .iter()
            .filter(|(k, _)| *k == k1)
            .map(|(_, r)| (r.alert.fingerprint, Box::new(r.clone())))
            .collect();
        e.apply_op(k1, Op::Reopen, &req("b"), NODES.t(4), |_| {
            Some(Live {
                incident: stored,
                alerts,
            })
        })
        .expect("reopen");
        let i1 = e.live(k1).expect("live").incident.clone();
        assert_eq!((i1.status, i1.firing_count), (Status::Open, 0));
        // The alert resolves once, in the incident that tracks it.
        assert_eq!(e.ingest_one(resolved(A), NODES.t(5)), Outcome::Resolved(k2));
        assert_eq!(e.live(k2).expect("live").incident.status, Status::Resolved);
        let ws = e.take_changes();
        assert!(ws.timeline.iter().any(|(k, _, t)| *k == k1
            && t.kind == TimelineKind::AlertReleased
            && t.message.contains(&format!("tracked by {k2}"))));
    }
}
