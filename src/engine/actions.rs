//! Action jobs and escalation: which actions an incident's triggers start
//! (once per trigger occurrence, within rate limits), the payload they see,
//! their results on the timeline, and the escalation levels that come due.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::events::Event;
use super::{chrono_dur, Engine, HashMap, Live};
use crate::model::matcher;
use crate::model::{
    AttemptOutcome, AttemptResult, Incident, IncidentKey, Job, JobState, Status, TimelineKind,
    Trigger, SYSTEM,
};
use crate::rules::actions::{ActionDef, EscalationPolicy, LevelWhen};

/// Action jobs of live incidents (and every pending one), and the recent
/// runs rate limits count.
#[derive(Default)]
pub(super) struct Jobs {
    pub(super) by_key: HashMap<String, Job>,
    /// Runs per (action, group key) for rate limits.
    pub(super) rate: HashMap<(String, String), VecDeque<DateTime<Utc>>>,
    /// Held jobs and when they run (see [`Engine::release_held`]).
    pub(super) held: BTreeMap<String, DateTime<Utc>>,
}

impl Engine {
    /// Pending jobs, to resume after a restart.
    pub fn pending_jobs(&self) -> Vec<Job> {
        let mut v: Vec<Job> = self
            .jobs
            .by_key
            .values()
            .filter(|j| j.state == JobState::Pending)
            .cloned()
            .collect();
        v.sort_by_key(|j| j.created_at);
        v
    }

    /// Creates jobs for the actions that listen to `trigger` and match the
    /// incident. `occurrence` tells repeated triggers apart (an alert's
    /// fingerprint, a level, a reopen count) so each runs once.
    pub(super) fn fire(
        &mut self,
        key: IncidentKey,
        trigger: Trigger,
        occurrence: &str,
        now: DateTime<Utc>,
    ) {
        let rules = self.rules.clone();
        let Some(l) = self.live.incidents.get(&key) else {
            return;
        };
        if l.incident
            .parent
            .is_some_and(|p| self.live.incidents.contains_key(&p))
        {
            // Grouped into a major incident: the parent alone runs actions
            // (once it has left memory, closed, the child is on its own).
            return;
        }
        let matching: Vec<&ActionDef> = rules
            .actions
            .iter()
            .filter(|a| a.on.contains(&trigger) && action_applies(a, &l.incident))
            .collect();
        for a in matching {
            self.enqueue(key, a, trigger, occurrence, now);
        }
    }

    pub(super) fn enqueue(
        &mut self,
        key: IncidentKey,
        a: &ActionDef,
        trigger: Trigger,
        occurrence: &str,
        now: DateTime<Utc>,
    ) {
        let job_key = format!("{key}/{}/{}/{occurrence}", a.name, trigger.as_str());
        if self.jobs.by_key.contains_key(&job_key) {
            return;
        }
        let Some(l) = self.live.incidents.get(&key) else {
            return;
        };
        let mut state = JobState::Pending;
        if let Some((max, per)) = a.rate_limit {
            let q = self
                .jobs
                .rate
                .entry((a.name.clone(), l.incident.group_key.clone()))
                .or_default();
            let from = now - chrono_dur(per);
            while q.front().is_some_and(|t| *t < from) {
                q.pop_front();
            }
            if q.len() >= max as usize {
                state = JobState::RateLimited;
            } else {
                q.push_back(now);
            }
        }
        let hold = match state {
            JobState::Pending => self.hold_until(l).filter(|t| *t > now),
            _ => None,
        };
        if hold.is_some() {
            state = JobState::Held;
            self.dirty.events.push(Event::ActionHeld {
                action: a.name.clone(),
                outcome: "held",
            });
        }
        let payload = self.payload(l, trigger);
        let job = Job {
            key: job_key.clone(),
            incident: key,
            action: a.name.clone(),
            trigger,
            created_at: now,
            state,
            attempts: 0,
            last_result: None,
            payload,
            not_before: hold,
        };
        self.jobs.by_key.insert(job_key.clone(), job);
        if let Some(t) = hold {
            self.jobs.held.insert(job_key.clone(), t);
        }
        self.dirty.jobs.insert(job_key.clone());
        if state == JobState::Pending {
            self.dirty.new_jobs.push(job_key);
        } else if let Some((max, per)) = a.rate_limit {
            self.note(
                key,
                now,
                TimelineKind::Action,
                SYSTEM,
                format!(
                    "action {} not run for {}: rate limit of {max} per {} for this group reached",
                    a.name,
                    trigger.as_str(),
                    humantime::format_duration(per)
                ),
            );
        }
    }

    /// The incident event actions see (templates, exec env and stdin).
    pub(super) fn payload(&self, l: &Live, trigger: Trigger) -> serde_json::Value {
        crate::rules::actions::event(
            trigger,
            &l.incident,
            l.alerts.values().map(|r| &r.alert),
            &self.external_url,
        )
    }

    /// Records one attempt's result on the job and the incident timeline.
    /// `load` brings back a closed incident so its timeline can be written.
    pub fn record_action_result(
        &mut self,
        r: AttemptResult,
        now: DateTime<Utc>,
        load: impl FnOnce(IncidentKey) -> Option<Live>,
    ) {
        let rules = self.rules.clone();
        let Some(job) = self.jobs.by_key.get_mut(&r.job_key) else {
            tracing::warn!(job = %r.job_key, "result for an unknown action job");
            return;
        };
        job.attempts = r.attempt;
        job.last_result = Some(r.message.clone());
        job.state = match (r.outcome, r.retry_in) {
            (AttemptOutcome::Success, _) => JobState::Succeeded,
            (_, Some(_)) => JobState::Pending,
            (_, None) if r.disabled => JobState::Disabled,
            (_, None) => JobState::Failed,
        };
        let (key, name, trigger) = (job.incident, job.action.clone(), job.trigger);
        // A page says whom it was for.
        let paging = job.payload.get("page").map(|p| {
            format!(
                " paging {} by {}",
                p["person"]["name"].as_str().unwrap_or("?"),
                p["channel"].as_str().unwrap_or("?")
            )
        });
        self.dirty.jobs.insert(r.job_key.clone());
        let def = rules.actions.iter().find(|a| a.name == name);
        let max = def.map(|d| d.retries + 1).unwrap_or(r.attempt);
        let kind = def.map(ActionDef::kind_name).unwrap_or("action");
        let mut msg = format!(
            "action {name} ({kind}) for {}{} attempt {}/{max}: {}: {}",
            trigger.as_str(),
            paging.unwrap_or_default(),
            r.attempt,
            r.outcome.as_str(),
            r.message
        );
        if let Some(d) = r.retry_in {
            msg.push_str(&format!(
                "; retrying in {}",
                humantime::format_duration(Duration::from_millis(d.as_millis() as u64))
            ));
        }
        let loaded = !self.live.incidents.contains_key(&key);
        if loaded {
            match load(key) {
                Some(l) => {
                    self.live.incidents.insert(key, Box::new(l));
                }
                None => return,
            }
        }
        self.note(key, now, TimelineKind::Action, SYSTEM, msg);
        if let Some(value) = r.captured {
            if let Some(l) = self.live.incidents.get_mut(&key) {
                if l.incident.external_refs.get(&name) != Some(&value) {
                    l.incident.external_refs.insert(name.clone(), value.clone());
                    self.note(
                        key,
                        now,
                        TimelineKind::Action,
                        SYSTEM,
                        format!("action {name} captured external reference {value:?} (external_refs.{name})"),
                    );
                }
            }
        }
        if loaded
            && self
                .live
                .incidents
                .get(&key)
                .is_some_and(|l| l.incident.status == Status::Closed)
        {
            self.dirty.closed.push(key);
        }
    }

    /// Escalation steps that are due: levels after `after` unacknowledged,
    /// or once `resolve_progress` of the resolve target has passed.
    pub(super) fn escalate(&mut self, now: DateTime<Utc>, keys: &[IncidentKey]) {
        let rules = self.rules.clone();
        if rules.escalations.is_empty() {
            return;
        }
        let mut steps = Vec::new();
        for key in keys {
            let Some(l) = self.live.incidents.get(key) else {
                continue;
            };
            let i = &l.incident;
            if !i.status.is_active() || i.parent.is_some() {
                continue;
            }
            let Some(policy) = rules.escalations.iter().find(|p| {
                (p.priorities.is_empty() || p.priorities.contains(&i.priority))
                    && matcher::all_match(&p.matchers, &i.labels)
            }) else {
                continue;
            };
            let resolve_target = rules.sla[i.priority.idx()].resolve;
            for (idx, level) in policy.levels.iter().enumerate() {
                let n = idx as u32 + 1;
                if n <= i.escalation_level {
                    continue;
                }
                let due = match level.when {
                    LevelWhen::Unacknowledged(after) => {
                        i.status == Status::Open && now - i.created_at >= chrono_dur(after)
                    }
                    LevelWhen::ResolveProgress(f) => {
                        now - i.created_at >= chrono_dur(resolve_target.mul_f64(f))
                    }
                };
                if due {
                    let why = match level.when {
                        LevelWhen::Unacknowledged(after) => {
                            format!("unacknowledged for {}", humantime::format_duration(after))
                        }
                        LevelWhen::ResolveProgress(f) => format!(
                            "{:.0}% of the {} resolve target has passed",
                            f * 100.0,
                            humantime::format_duration(resolve_target)
                        ),
                    };
                    steps.push((*key, policy.name.clone(), n, level.clone(), why));
                }
            }
        }
        for (key, policy, n, _level, why) in steps {
            if let Some(p) = rules.escalations.iter().find(|p| p.name == policy) {
                self.reach_level(key, p, n, why, now);
            }
        }
        self.page_again(now, keys);
    }

    /// Level `n` of `policy` is reached: the timeline, its actions, its
    /// pages; a level that found nobody on call may reach the next at once.
    pub(super) fn reach_level(
        &mut self,
        key: IncidentKey,
        policy: &EscalationPolicy,
        n: u32,
        why: String,
        now: DateTime<Utc>,
    ) {
        let rules = self.rules.clone();
        let Some(level) = policy.levels.get((n as usize).wrapping_sub(1)).cloned() else {
            return;
        };
        let Some(l) = self.live.incidents.get_mut(&key) else {
            return;
        };
        if n <= l.incident.escalation_level {
            return;
        }
        l.incident.escalation_level = n;
        l.incident.page_wait = None;
        let mut msg = format!("escalated to level {n} (policy {}): {why}", policy.name);
        if let Some(a) = &level.assignee {
            l.incident.assignee = Some(a.clone());
            msg.push_str(&format!("; assigned to {a}"));
        }
        self.dirty.events.push(Event::Escalated {
            policy: policy.name.clone(),
            level: n,
        });
        self.note(key, now, TimelineKind::Escalated, SYSTEM, msg);
        let occurrence = format!("level{n}");
        self.fire(key, Trigger::Escalated, &occurrence, now);
        for name in &level.actions {
            if let Some(a) = rules.actions.iter().find(|a| &a.name == name) {
                self.enqueue(key, a, Trigger::Escalated, &occurrence, now);
            }
        }
        if level.target.is_some()
            && self.page_level(key, policy, n, 0, now) == super::paging::Paged::NextLevel
        {
            self.reach_level(
                key,
                policy,
                n + 1,
                format!("level {n} found nobody on call"),
                now,
            );
        }
    }
}

fn action_applies(a: &ActionDef, i: &Incident) -> bool {
    (a.priorities.is_empty() || a.priorities.contains(&i.priority))
        && (a.categories.is_empty() || a.categories.contains(&i.category))
        && matcher::all_match(&a.matchers, &i.labels)
}

#[cfg(test)]
mod tests {

    use std::time::Duration;

    use super::*;
    use crate::engine::testkit::*;
    use crate::engine::*;

    use crate::model::*;

    #[test]
    fn triggers_create_jobs_for_matching_actions_once() {
        let mut e = ACTIONS.engine();
        let Outcome::Created(k) = e.ingest_one(firing(P1), ACTIONS.t(0)) else {
            panic!()
        };
        let ws = e.take_changes();
        assert_eq!(job_names(&ws), vec!["chat:opened"]);
        let job = &ws.dispatch[0];
        assert_eq!(job.key, format!("{k}/chat/opened/0"));
        assert_eq!(job.payload["incident"]["priority"], "P1");
        assert!(job.payload["links"]["incident"]
            .as_str()
            .is_some_and(|l| l.ends_with(&format!("/api/v1/incidents/{k}"))));
        // A P4 incident runs no chat action.
        let low = [("alertname", "Low"), ("service", "batch")];
        e.ingest_one(firing(&low), ACTIONS.t(1));
        assert!(e.take_changes().dispatch.is_empty());
        // alert_added with rate limit 2 per hour per group.
        for (i, inst) in ["a", "b", "c"].iter().enumerate() {
            let mut l = P1.to_vec();
            l.push(("instance", inst));
            e.ingest_one(firing(&l), ACTIONS.t(2 + i as i64));
        }
        let ws = e.take_changes();
        assert_eq!(
            job_names(&ws),
            vec!["runbook:alert_added", "runbook:alert_added"]
        );
        assert!(ws.jobs.iter().any(|j| j.state == JobState::RateLimited));
        assert!(ws
            .timeline
            .iter()
            .any(|(_, _, t)| t.message.contains("rate limit of 2 per 1h")));
    }

    #[test]
    fn attempts_land_on_the_timeline_and_settle_the_job() {
        let mut e = ACTIONS.engine();
        e.ingest_one(firing(P1), ACTIONS.t(0));
        let ws = e.take_changes();
        let key = ws.dispatch[0].key.clone();
        e.record_action_result(
            AttemptResult {
                job_key: key.clone(),
                attempt: 1,
                outcome: AttemptOutcome::Failure,
                message: "HTTP 500".into(),
                retry_in: Some(Duration::from_secs(1)),
                disabled: false,
                captured: None,
            },
            ACTIONS.t(1),
            |_| None,
        );
        e.record_action_result(
            AttemptResult {
                job_key: key.clone(),
                attempt: 2,
                outcome: AttemptOutcome::Success,
                message: "HTTP 200".into(),
                retry_in: None,
                disabled: false,
                captured: Some("4711".into()),
            },
            ACTIONS.t(2),
            |_| None,
        );
        let ws = e.take_changes();
        let msgs: Vec<&str> = ws
            .timeline
            .iter()
            .map(|(_, _, t)| t.message.as_str())
            .collect();
        assert_eq!(
            msgs,
            vec![
                "action chat (webhook) for opened attempt 1/4: failure: HTTP 500; retrying in 1s",
                "action chat (webhook) for opened attempt 2/4: success: HTTP 200",
                "action chat captured external reference \"4711\" (external_refs.chat)",
            ]
        );
        assert_eq!(
            ws.jobs.last().map(|j| (j.state, j.attempts)),
            Some((JobState::Succeeded, 2))
        );
        assert!(e.pending_jobs().is_empty());
        // The captured reference is on the incident, committed with it.
        let inc = ws.incidents.last().expect("the incident changed");
        assert_eq!(
            inc.external_refs.get("chat").map(String::as_str),
            Some("4711")
        );
    }

    #[test]
    fn unacknowledged_p1_escalates_through_levels_and_ack_stops_it() {
        let mut e = ACTIONS.engine();
        let Outcome::Created(k) = e.ingest_one(firing(P1), ACTIONS.t(0)) else {
            panic!()
        };
        e.take_changes();
        e.tick(ACTIONS.t(4));
        assert_eq!(e.live(k).expect("live").incident.escalation_level, 0);
        e.tick(ACTIONS.t(5));
        let i = e.live(k).expect("live").incident.clone();
        assert_eq!(
            (i.escalation_level, i.assignee.as_deref()),
            (1, Some("secondary"))
        );
        let ws = e.take_changes();
        assert_eq!(job_names(&ws), vec!["chat:escalated"]);
        assert!(ws.events.contains(&Event::Escalated {
            policy: "p1".into(),
            level: 1
        }));
        e.tick(ACTIONS.t(15));
        let ws = e.take_changes();
        assert_eq!(e.live(k).expect("live").incident.escalation_level, 2);
        assert_eq!(
            job_names(&ws),
            vec!["chat:escalated", "page-manager:escalated"]
        );
        // Acknowledged: no more acknowledgement-based levels, but the SLA-based one still comes.
        e.apply_op(k, Op::Ack, &OpRequest::default(), ACTIONS.t(20), |_| None)
            .expect("ack");
        e.take_changes();
        e.tick(ACTIONS.t(79));
        assert_eq!(e.live(k).expect("live").incident.escalation_level, 2);
        e.tick(ACTIONS.t(80));
        let i = e.live(k).expect("live").incident.clone();
        assert_eq!(
            (i.escalation_level, i.assignee.as_deref()),
            (3, Some("management"))
        );
        let ws = e.take_changes();
        assert!(ws.timeline.iter().any(|(_, _, t)| t
            .message
            .contains("80% of the 1h 40m resolve target has passed")));
    }

    #[test]
    fn acknowledged_before_the_first_level_never_escalates() {
        let mut e = ACTIONS.engine();
        let Outcome::Created(k) = e.ingest_one(firing(P1), ACTIONS.t(0)) else {
            panic!()
        };
        e.apply_op(k, Op::Ack, &OpRequest::default(), ACTIONS.t(1), |_| None)
            .expect("ack");
        e.tick(ACTIONS.t(30));
        assert_eq!(e.live(k).expect("live").incident.escalation_level, 0);
        // Resolution stops everything, including SLA-based levels.
        e.apply_op(k, Op::Resolve, &OpRequest::default(), ACTIONS.t(31), |_| {
            None
        })
        .expect("resolve");
        e.tick(ACTIONS.t(95));
        assert_eq!(e.live(k).expect("live").incident.escalation_level, 0);
        let ws = e.take_changes();
        assert!(job_names(&ws).contains(&"chat:resolved".to_string()));
    }

    #[test]
    fn restart_mid_policy_resumes_at_the_right_level_without_rerunning_jobs() {
        let mut e = ACTIONS.engine();
        let Outcome::Created(k) = e.ingest_one(firing(P1), ACTIONS.t(0)) else {
            panic!()
        };
        e.tick(ACTIONS.t(6));
        let ws = e.take_changes();
        // "Restart": rebuild from what the store would hold.
        let live: Vec<Live> = e.live_incidents().cloned().collect();
        let mut r = Engine::restore(
            e.rules().clone(),
            Settings {
                close_after: Duration::from_secs(3600),
                id_slot: None,
            },
            live,
            Restored {
                jobs: ws.jobs.clone(),
                ..Restored::default()
            },
        );
        assert_eq!(r.pending_jobs().len(), 2, "opened and level-1 jobs resume");
        r.tick(ACTIONS.t(7));
        assert!(r.take_changes().dispatch.is_empty(), "no level runs twice");
        r.tick(ACTIONS.t(16));
        assert_eq!(r.live(k).expect("live").incident.escalation_level, 2);
        assert_eq!(
            job_names(&r.take_changes()),
            vec!["chat:escalated", "page-manager:escalated"]
        );
        let _ = Trigger::Opened;
    }
}
