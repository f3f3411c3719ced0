//! Incidents about incidents: major incidents over storms (parent and
//! children), cause and symptom links from relate rules, and the pages
//! both hold back.
//!
//! Contract:
//! - When an incident opens and a live major incident of one of its storm
//!   rules has the same storm key, it joins it as a child. Otherwise it
//!   counts toward its storm keys; the `at_least`-th member within
//!   `within` opens a parent (source `storm`) over every counted member.
//!   A child records `grouped into INC-…`, the parent `INC-… grouped in`.
//! - A child runs no actions, escalations or SLA breaches of its own; its
//!   counts, activity and blast radius roll up into the parent, which alone
//!   pages. When the parent is acknowledged or resolved its active children
//!   follow; a child still firing when the parent resolves is named on
//!   both timelines. The parent resolves itself once every child is
//!   resolved, and reopens when a child does.
//! - When an incident of a relate rule's symptom rule opens while a live
//!   cause incident agrees on the `on` labels (or the other way round),
//!   both record the link. The symptom's jobs are held for the rule's
//!   `delay`, then dropped if the cause was acknowledged, else run.
//! - Jobs of a storm member are held for the storm's `hold` from its
//!   creation, and dropped if it was grouped by then.
//!
//! The indexes here are rebuilt from the live incidents on restore and
//! adoption; stale entries (incidents that left memory) are skipped on
//! use.

use std::collections::{BTreeSet, VecDeque};

use chrono::{DateTime, Utc};

use super::events::Event;
use super::{chrono_dur, Engine, HashMap, Live};
use crate::model::{
    Incident, IncidentKey, IncidentSource, JobState, Op, OpRequest, Relation, RelationKind, Status,
    TimelineKind, Trigger, SYSTEM,
};

/// Storm and relate indexes over the live incidents.
#[derive(Default)]
pub(super) struct Storms {
    /// Storm key → its live major incident.
    parents: HashMap<String, IncidentKey>,
    /// Storm key → members without a parent yet, oldest first.
    recent: HashMap<String, VecDeque<(IncidentKey, DateTime<Utc>)>>,
    /// Parents whose children changed since they were last settled.
    pub(super) touched: BTreeSet<IncidentKey>,
    /// Relate join key → live incidents of the rule's cause rule …
    causes: HashMap<String, Vec<IncidentKey>>,
    /// … and of its symptom rule.
    symptoms: HashMap<String, Vec<IncidentKey>>,
}

impl Engine {
    /// The major incident an incident is grouped into.
    pub fn parent_of(&self, key: IncidentKey) -> Option<IncidentKey> {
        self.live.incidents.get(&key)?.incident.parent
    }

    /// Until when an incident's new jobs are held: its storms' `hold` while
    /// it has no parent, and its relate causes' `delay`.
    pub(super) fn hold_until(&self, l: &Live) -> Option<DateTime<Utc>> {
        let i = &l.incident;
        let mut until: Option<DateTime<Utc>> = None;
        let mut later = |t: DateTime<Utc>| {
            if until.is_none_or(|u| t > u) {
                until = Some(t);
            }
        };
        if i.parent.is_none() && i.source == IncidentSource::Alerts {
            for (_, s) in self.rules.storms_of(&i.rule) {
                if !s.hold.is_zero() && s.key(&i.labels).is_some() {
                    later(i.created_at + chrono_dur(s.hold));
                }
            }
        }
        for r in &i.relations {
            if r.relation != RelationKind::CausedBy {
                continue;
            }
            if let Some(rule) = self.rules.relate.iter().find(|x| x.name == r.by) {
                if !rule.delay.is_zero() {
                    later(i.created_at + chrono_dur(rule.delay));
                }
            }
        }
        until
    }

    /// Held jobs whose time came: dropped when their incident was grouped
    /// or its cause acknowledged, else handed to the executor.
    pub(super) fn release_held(&mut self, now: DateTime<Utc>) {
        let due: Vec<String> = self
            .jobs
            .held
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for job_key in due {
            self.jobs.held.remove(&job_key);
            let Some(job) = self.jobs.by_key.get(&job_key) else {
                continue;
            };
            if job.state != JobState::Held {
                continue;
            }
            let (key, action, trigger) = (job.incident, job.action.clone(), job.trigger);
            let why = self.drop_reason(key);
            let Some(job) = self.jobs.by_key.get_mut(&job_key) else {
                continue;
            };
            self.dirty.jobs.insert(job_key.clone());
            self.dirty.events.push(Event::ActionHeld {
                action: action.clone(),
                outcome: if why.is_some() { "dropped" } else { "released" },
            });
            match why {
                Some(why) => {
                    job.state = JobState::Dropped;
                    job.last_result = Some(why.clone());
                    self.note(
                        key,
                        now,
                        TimelineKind::Action,
                        SYSTEM,
                        format!("action {action} for {} not run: {why}", trigger.as_str()),
                    );
                }
                None => {
                    job.state = JobState::Pending;
                    self.dirty.new_jobs.push(job_key);
                }
            }
        }
    }

    /// Why a held job of `key` is not to run, if it is not.
    fn drop_reason(&self, key: IncidentKey) -> Option<String> {
        let l = self.live.incidents.get(&key)?;
        if let Some(p) = l.incident.parent {
            return Some(format!("grouped into {p}, which pages instead"));
        }
        for r in &l.incident.relations {
            if r.relation != RelationKind::CausedBy {
                continue;
            }
            let handled = self.live.incidents.get(&r.to).is_none_or(|c| {
                c.incident.acknowledged_at.is_some() || !c.incident.status.is_active()
            });
            if handled {
                return Some(format!(
                    "its cause {} was acknowledged or resolved within the relate delay ({})",
                    r.to, r.by
                ));
            }
        }
        None
    }

    /// A new alert-driven incident: links it to causes and symptoms, and
    /// groups it into a major incident (or opens one). Runs before its
    /// `opened` trigger, so a grouped incident never pages.
    pub(super) fn on_created(&mut self, key: IncidentKey, now: DateTime<Utc>) {
        self.relate_new(key, now);
        self.storm_new(key, now);
    }

    fn relate_new(&mut self, key: IncidentKey, now: DateTime<Utc>) {
        let rules = self.rules.clone();
        let Some(l) = self.live.incidents.get(&key) else {
            return;
        };
        let (rule, labels) = (l.incident.rule.clone(), l.incident.labels.clone());
        let mut links = Vec::new();
        for r in &rules.relate {
            if r.symptom == rule {
                if let Some(jk) = r.symptom_key(&labels) {
                    self.storms
                        .symptoms
                        .entry(jk.clone())
                        .or_default()
                        .push(key);
                    for c in self.storms.causes.get(&jk).into_iter().flatten() {
                        if self.is_active(*c) && *c != key {
                            links.push((*c, key, r.name.clone()));
                        }
                    }
                }
            }
            if r.cause == rule {
                if let Some(jk) = r.cause_key(&labels) {
                    self.storms.causes.entry(jk.clone()).or_default().push(key);
                    for s in self.storms.symptoms.get(&jk).into_iter().flatten() {
                        if self.is_active(*s) && *s != key {
                            links.push((key, *s, r.name.clone()));
                        }
                    }
                }
            }
        }
        for (cause, symptom, by) in links {
            self.link(symptom, cause, RelationKind::CausedBy, &by, now);
        }
    }

    fn is_active(&self, key: IncidentKey) -> bool {
        self.live
            .incidents
            .get(&key)
            .is_some_and(|l| l.incident.status.is_active())
    }

    /// Records a relation on both incidents (both must be in memory).
    /// False when either is missing or the relation exists already.
    pub(super) fn link(
        &mut self,
        from: IncidentKey,
        to: IncidentKey,
        relation: RelationKind,
        by: &str,
        now: DateTime<Utc>,
    ) -> bool {
        if from == to || !self.live.incidents.contains_key(&to) {
            return false;
        }
        let Some(l) = self.live.incidents.get_mut(&from) else {
            return false;
        };
        if l.incident.relations.iter().any(|r| r.to == to) {
            return false;
        }
        l.incident.relations.push(Relation {
            to,
            relation,
            by: by.to_string(),
            at: now,
        });
        if let Some(o) = self.live.incidents.get_mut(&to) {
            o.incident.relations.retain(|r| r.to != from);
            o.incident.relations.push(Relation {
                to: from,
                relation: relation.inverse(),
                by: by.to_string(),
                at: now,
            });
        }
        let what = |r: RelationKind, other: IncidentKey| match r {
            RelationKind::CausedBy => format!("caused by {other}"),
            RelationKind::Causes => format!("causes {other}"),
            RelationKind::Related => format!("related to {other}"),
        };
        let (who, via) = match self.rules.relate.iter().any(|r| r.name == by) {
            true => (SYSTEM, format!(" (relate rule {by})")),
            false => (by, String::new()),
        };
        self.note(
            from,
            now,
            TimelineKind::Linked,
            who,
            format!("{}{via}", what(relation, to)),
        );
        self.note(
            to,
            now,
            TimelineKind::Linked,
            who,
            format!("{}{via}", what(relation.inverse(), from)),
        );
        true
    }

    fn storm_new(&mut self, key: IncidentKey, now: DateTime<Utc>) {
        let rules = self.rules.clone();
        let Some(l) = self.live.incidents.get(&key) else {
            return;
        };
        if l.incident.parent.is_some() || l.incident.source != IncidentSource::Alerts {
            return;
        }
        let (rule, labels) = (l.incident.rule.clone(), l.incident.labels.clone());
        for (idx, storm) in rules.storms_of(&rule) {
            let Some(skey) = storm.key(&labels) else {
                continue;
            };
            let within = chrono_dur(storm.within);
            if let Some(p) = self.storms.parents.get(&skey).copied() {
                let takes = self.live.incidents.get(&p).is_some_and(|pl| {
                    pl.incident.status != Status::Closed
                        && now - pl.incident.last_activity_at <= within
                });
                if takes {
                    self.attach(p, key, now);
                    return;
                }
                self.storms.parents.remove(&skey);
            }
            let live = &self.live.incidents;
            let q = self.storms.recent.entry(skey.clone()).or_default();
            q.retain(|(k, t)| {
                now - *t <= within
                    && live.get(k).is_some_and(|l| {
                        l.incident.parent.is_none() && l.incident.status.is_active()
                    })
            });
            q.push_back((key, now));
            if q.len() >= storm.at_least {
                let members: Vec<IncidentKey> = q.drain(..).map(|(k, _)| k).collect();
                self.storms.recent.remove(&skey);
                self.open_parent(idx, skey, members, now);
                return;
            }
        }
    }

    /// Opens the major incident of storm rule `idx` over `members`.
    fn open_parent(
        &mut self,
        idx: usize,
        skey: String,
        members: Vec<IncidentKey>,
        now: DateTime<Utc>,
    ) {
        let rules = self.rules.clone();
        let Some(storm) = rules.storms.get(idx) else {
            return;
        };
        let firsts: Vec<&Incident> = members
            .iter()
            .filter_map(|k| self.live.incidents.get(k).map(|l| &l.incident))
            .collect();
        let Some(first) = firsts.first() else {
            return;
        };
        let mut labels = first.labels.clone();
        for i in &firsts[1..] {
            labels.retain(|k, v| i.labels.get(k) == Some(v));
        }
        let by = storm.by_labels(&labels).unwrap_or_default();
        let top = firsts
            .iter()
            .min_by_key(|i| (i.priority, i.impact))
            .map(|i| (i.priority, i.impact, i.urgency, i.category.clone()));
        let occurred = firsts.iter().map(|i| i.occurred_at).min();
        let Some((priority, impact, urgency, category)) = top else {
            return;
        };
        let title = rules.storm_title(storm, &labels, members.len());
        let pkey = self.next_key(now);
        let incident = Incident {
            title,
            priority,
            impact,
            urgency,
            category: category.clone(),
            rule: storm.name.clone(),
            group_key: skey.clone(),
            labels,
            occurred_at: occurred.unwrap_or(now).min(now),
            source: IncidentSource::Storm,
            ..Incident::new(pkey, now, self.sla_for(priority, now))
        };
        self.live.incidents.insert(
            pkey,
            Box::new(Live {
                incident,
                alerts: Default::default(),
            }),
        );
        self.storms.parents.insert(skey.clone(), pkey);
        self.dirty.events.push(Event::Created {
            priority,
            category: category.clone(),
        });
        let by_text: Vec<String> = by.iter().map(|(k, v)| format!("{k}={v}")).collect();
        self.note(
            pkey,
            now,
            TimelineKind::Created,
            SYSTEM,
            format!(
                "opened by storm rule {}: {} incidents of {} with {} within {}",
                storm.name,
                members.len(),
                storm.rules.join(", "),
                by_text.join(", "),
                humantime::format_duration(storm.within)
            ),
        );
        for m in members {
            self.attach(pkey, m, now);
        }
        // The rules' priority over every child's alerts and the blast
        // radius across them, before anything pages.
        if let Some((p, i, u, blast)) = self.rule_priority(pkey) {
            if p < priority {
                let why = blast
                    .map(|w| format!(" (blast radius: {w})"))
                    .unwrap_or_default();
                let sla = self.sla_for(p, now);
                if let Some(l) = self.live.incidents.get_mut(&pkey) {
                    l.incident.priority = p;
                    l.incident.impact = i;
                    l.incident.urgency = u;
                    l.incident.sla = sla;
                }
                self.note(
                    pkey,
                    now,
                    TimelineKind::PriorityChanged,
                    SYSTEM,
                    format!(
                        "priority {p} across its children: impact {} × urgency {}{why}",
                        i.as_str(),
                        u.as_str()
                    ),
                );
            }
        }
        self.settle_parents(now);
        self.fire(pkey, Trigger::Opened, "0", now);
    }

    /// Groups `child` into the major incident `parent`.
    fn attach(&mut self, parent: IncidentKey, child: IncidentKey, now: DateTime<Utc>) {
        let rules = self.rules.clone();
        let Some(c) = self.live.incidents.get_mut(&child) else {
            return;
        };
        if c.incident.parent.is_some() {
            return;
        }
        c.incident.parent = Some(parent);
        let title = c.incident.title.clone();
        let records: Vec<_> = c.alerts.values().cloned().collect();
        let reopen;
        {
            let Some(p) = self.live.incidents.get_mut(&parent) else {
                return;
            };
            p.incident.children.push(child);
            reopen = p.incident.status == Status::Resolved;
        }
        if let Some(agg) = self.live.aggregates.get_mut(&parent) {
            for r in &records {
                agg.add(&rules, r);
            }
        }
        // Its held pages will not be sent: say so now.
        let held: Vec<String> = self
            .jobs
            .held
            .keys()
            .filter(|k| {
                self.jobs
                    .by_key
                    .get(*k)
                    .is_some_and(|j| j.incident == child)
            })
            .cloned()
            .collect();
        for k in held {
            self.jobs.held.remove(&k);
            if let Some(j) = self.jobs.by_key.get_mut(&k) {
                j.state = JobState::Dropped;
                j.last_result = Some(format!("grouped into {parent}, which pages instead"));
                self.dirty.events.push(Event::ActionHeld {
                    action: j.action.clone(),
                    outcome: "dropped",
                });
                let msg = format!(
                    "action {} for {} not run: grouped into {parent}, which pages instead",
                    j.action,
                    j.trigger.as_str()
                );
                self.dirty.jobs.insert(k);
                self.note(child, now, TimelineKind::Action, SYSTEM, msg);
            }
        }
        self.note(
            child,
            now,
            TimelineKind::Grouped,
            SYSTEM,
            format!("grouped into {parent}; the major incident pages and escalates"),
        );
        self.note(
            parent,
            now,
            TimelineKind::Grouped,
            SYSTEM,
            format!("{child} grouped in: {title}"),
        );
        self.storms.touched.insert(parent);
        if reopen {
            self.settle_parents(now);
        }
    }

    /// Rolls the children's counts and activity up into each touched
    /// parent; resolves a parent whose children are all resolved, reopens
    /// one whose child is active again, and re-prioritises it.
    pub(super) fn settle_parents(&mut self, now: DateTime<Utc>) {
        while let Some(parent) = self.storms.touched.pop_first() {
            let Some(p) = self.live.incidents.get(&parent) else {
                continue;
            };
            let (mut alerts, mut firing, mut active) = (0u32, 0u32, 0usize);
            let mut last = p.incident.last_activity_at;
            for c in &p.incident.children {
                if let Some(cl) = self.live.incidents.get(c) {
                    alerts += cl.incident.alert_count;
                    firing += cl.incident.firing_count;
                    last = last.max(cl.incident.last_activity_at);
                    if cl.incident.status.is_active() {
                        active += 1;
                    }
                }
            }
            let status = p.incident.status;
            // The title counts the children (a template's `count`).
            let title = self
                .rules
                .storms
                .iter()
                .find(|s| s.name == p.incident.rule && p.incident.source == IncidentSource::Storm)
                .map(|s| {
                    self.rules
                        .storm_title(s, &p.incident.labels, p.incident.children.len())
                });
            if let Some(p) = self.live.incidents.get_mut(&parent) {
                p.incident.alert_count = alerts;
                p.incident.firing_count = firing;
                p.incident.last_activity_at = last;
                if let Some(t) = title {
                    p.incident.title = t;
                }
            }
            self.dirty.incidents.insert(parent);
            if status.is_active() && active == 0 && firing == 0 {
                self.auto_resolve(parent, now, "every grouped incident resolved");
            } else if status == Status::Resolved && active > 0 {
                if let Some(p) = self.live.incidents.get_mut(&parent) {
                    p.incident.reopen(now);
                    self.history.rolling.observe(&p.incident);
                }
                self.dirty.events.push(Event::Reopened);
                self.note(
                    parent,
                    now,
                    TimelineKind::Reopened,
                    SYSTEM,
                    "a grouped incident is active again".into(),
                );
                let n = self.reopen_count(parent);
                self.fire(parent, Trigger::Reopened, &n, now);
            }
            self.reprioritize(parent, now);
        }
    }

    /// After a person acknowledged or resolved a major incident: its active
    /// children follow. A child still firing after the parent resolved is
    /// named on both timelines (it stays visible, and resolves itself when
    /// its alerts do).
    pub(super) fn cascade(
        &mut self,
        parent: IncidentKey,
        op: Op,
        req: &OpRequest,
        now: DateTime<Utc>,
    ) {
        let Some(p) = self.live.incidents.get(&parent) else {
            return;
        };
        let children = p.incident.children.clone();
        let mut still_firing = Vec::new();
        for c in children {
            let Some(cl) = self.live.incidents.get_mut(&c) else {
                continue;
            };
            let applies = match op {
                Op::Ack => cl.incident.status == Status::Open,
                Op::Resolve => cl.incident.status.is_active(),
                _ => false,
            };
            if !applies {
                continue;
            }
            let firing = cl.incident.firing_count;
            let Ok(entry) = cl.incident.apply(op, req, now) else {
                continue;
            };
            self.history.rolling.observe(&cl.incident);
            let msg = format!("{} (with major incident {parent})", entry.message);
            self.note(c, now, entry.kind, &entry.by, msg);
            if op == Op::Resolve && firing > 0 {
                still_firing.push((c, firing));
            }
        }
        for (c, n) in still_firing {
            let msg = format!(
                "{c} still has {n} firing alert(s) after the major incident resolved; it resolves when they do, or by hand"
            );
            self.note(c, now, TimelineKind::Note, SYSTEM, msg.clone());
            self.note(parent, now, TimelineKind::Note, SYSTEM, msg);
        }
    }

    /// Points the storm and relate indexes at an incident coming into
    /// memory (restore, adoption).
    pub(super) fn index_storms(&mut self, i: &Incident) {
        if i.status == Status::Closed {
            return;
        }
        if i.source == IncidentSource::Storm {
            self.storms.parents.insert(i.group_key.clone(), i.id);
        } else if i.parent.is_none() && i.status.is_active() {
            for (_, s) in self.rules.storms_of(&i.rule) {
                if let Some(k) = s.key(&i.labels) {
                    let q = self.storms.recent.entry(k).or_default();
                    let at = q.partition_point(|(_, t)| *t <= i.created_at);
                    q.insert(at, (i.id, i.created_at));
                }
            }
        }
        for r in &self.rules.relate {
            if r.cause == i.rule {
                if let Some(k) = r.cause_key(&i.labels) {
                    self.storms.causes.entry(k).or_default().push(i.id);
                }
            }
            if r.symptom == i.rule {
                if let Some(k) = r.symptom_key(&i.labels) {
                    self.storms.symptoms.entry(k).or_default().push(i.id);
                }
            }
        }
    }

    /// Forgets an incident leaving memory in the storm and relate indexes.
    pub(super) fn unindex_storms(&mut self, i: &Incident) {
        if self.storms.parents.get(&i.group_key) == Some(&i.id) {
            self.storms.parents.remove(&i.group_key);
        }
        for r in &self.rules.relate {
            for (map, k) in [
                (&mut self.storms.causes, r.cause_key(&i.labels)),
                (&mut self.storms.symptoms, r.symptom_key(&i.labels)),
            ] {
                if let Some(k) = k {
                    if let Some(v) = map.get_mut(&k) {
                        v.retain(|x| *x != i.id);
                        if v.is_empty() {
                            map.remove(&k);
                        }
                    }
                }
            }
        }
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

    /// Three nodes of one cluster within seconds: one parent, one page.
    fn storm_of_three(e: &mut Engine) -> (IncidentKey, Vec<IncidentKey>) {
        let kids: Vec<IncidentKey> = ["n1", "n2", "n3"]
            .iter()
            .enumerate()
            .map(|(i, n)| created(e.ingest_one(node_down("eu", n), secs_after(&STORMS, i as i64))))
            .collect();
        let parent = inc(e, kids[0]).parent.expect("grouped");
        (parent, kids)
    }

    #[test]
    fn a_storm_becomes_one_major_incident_that_alone_pages() {
        let mut e = STORMS.engine();
        let (p, kids) = storm_of_three(&mut e);
        e.settle_parents(secs_after(&STORMS, 2));
        let parent = inc(&e, p);
        assert_eq!(parent.source, IncidentSource::Storm);
        assert_eq!(parent.children, kids);
        assert_eq!(parent.title, "eu: 3 nodes down");
        assert_eq!(parent.rule, "cluster-outage");
        // Each node alone is low × high = P3; three instances across the
        // children make the blast radius medium: P2.
        assert_eq!(
            (parent.priority, parent.impact),
            (Priority::P2, Level::Medium)
        );
        assert_eq!((parent.alert_count, parent.firing_count), (3, 3));
        for k in &kids {
            let c = inc(&e, *k);
            assert_eq!(c.parent, Some(p));
            assert_eq!(c.priority, Priority::P3);
        }
        let ws = e.take_changes();
        // One page: the parent's. The first two children's pages were held
        // and are dropped; the third was grouped before it could page.
        assert_eq!(job_names(&ws), vec!["page:opened"]);
        assert_eq!(ws.dispatch[0].incident, p);
        let dropped = ws
            .jobs
            .iter()
            .filter(|j| j.state == JobState::Dropped)
            .count();
        assert_eq!(dropped, 2);
        let dropped_events = ws
            .events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Event::ActionHeld {
                        outcome: "dropped",
                        ..
                    }
                )
            })
            .count();
        assert_eq!(dropped_events, 2, "counted for the metric");
        assert!(kinds(&ws, kids[0]).contains(&"grouped".to_string()));
        assert_eq!(kinds(&ws, p).iter().filter(|k| *k == "grouped").count(), 3);
        // Nothing more pages when the hold passes.
        e.tick(secs_after(&STORMS, 60));
        assert!(e.take_changes().dispatch.is_empty());
        // A fourth node joins the live parent, silently.
        let k4 = created(e.ingest(vec![node_down("eu", "n4")], secs_after(&STORMS, 70))[0]);
        assert_eq!(inc(&e, k4).parent, Some(p));
        assert_eq!(inc(&e, p).alert_count, 4);
        assert!(e.take_changes().dispatch.is_empty());
        // Another cluster is another storm.
        let other = created(e.ingest_one(node_down("us", "m1"), secs_after(&STORMS, 71)));
        assert_eq!(inc(&e, other).parent, None);
    }

    #[test]
    fn a_lone_incident_pages_once_the_hold_passes() {
        let mut e = STORMS.engine();
        let k = created(e.ingest_one(node_down("eu", "n1"), secs_after(&STORMS, 0)));
        let ws = e.take_changes();
        assert!(ws.dispatch.is_empty());
        assert_eq!(ws.jobs[0].state, JobState::Held);
        assert_eq!(ws.jobs[0].not_before, Some(secs_after(&STORMS, 30)));
        e.tick(secs_after(&STORMS, 29));
        assert!(e.take_changes().dispatch.is_empty());
        e.tick(secs_after(&STORMS, 30));
        let ws = e.take_changes();
        assert_eq!(job_names(&ws), vec!["page:opened"]);
        assert_eq!(ws.dispatch[0].incident, k);
        assert!(ws.events.contains(&Event::ActionHeld {
            action: "page".into(),
            outcome: "released",
        }));
        // Two more nodes after the storm window: no storm.
        e.ingest_one(node_down("eu", "n2"), STORMS.t(6));
        e.ingest_one(node_down("eu", "n3"), STORMS.t(12));
        assert!(e.live_incidents().all(|l| l.incident.parent.is_none()));
    }

    #[test]
    fn the_parent_leads_ack_and_resolve_and_follows_its_children() {
        let mut e = STORMS.engine();
        let (p, kids) = storm_of_three(&mut e);
        e.apply_op(p, Op::Ack, &req("ann"), STORMS.t(1), no_load)
            .expect("ack");
        for k in &kids {
            let c = inc(&e, *k);
            assert_eq!(c.status, Status::Acknowledged);
            assert_eq!(c.acknowledged_by.as_deref(), Some("ann"));
        }
        // Every child's alert resolves: the parent resolves itself.
        for (i, n) in ["n1", "n2", "n3"].iter().enumerate() {
            let mut a = node_down("eu", n);
            a.status = AlertStatus::Resolved;
            e.ingest_one(a, STORMS.t(2 + i as i64));
            e.settle_parents(STORMS.t(2 + i as i64));
        }
        assert_eq!(inc(&e, p).status, Status::Resolved);
        assert_eq!(inc(&e, p).resolved_by.as_deref(), Some(SYSTEM));
        // One fires again: the child reopens, and so does the parent.
        e.ingest(vec![node_down("eu", "n2")], STORMS.t(10));
        assert_eq!(inc(&e, kids[1]).status, Status::Open);
        assert_eq!(inc(&e, p).status, Status::Open);
        assert_eq!(inc(&e, p).firing_count, 1);
        e.take_changes();
        // A person resolves the parent while n2 still fires: the child
        // resolves with it and the still-firing alert is named on both.
        e.apply_op(p, Op::Resolve, &req("ann"), STORMS.t(11), no_load)
            .expect("resolve");
        assert_eq!(inc(&e, kids[1]).status, Status::Resolved);
        let ws = e.take_changes();
        let still = |k: IncidentKey| {
            ws.timeline
                .iter()
                .any(|(key, _, t)| *key == k && t.message.contains("still has 1 firing alert"))
        };
        assert!(still(p) && still(kids[1]));
    }

    #[test]
    fn children_neither_escalate_nor_breach_and_the_parent_does() {
        let mut e = STORMS.engine();
        let (p, kids) = storm_of_three(&mut e);
        e.take_changes();
        // P3 acknowledge target is 4h by default; P2 30m.
        e.tick(STORMS.t(24 * 60));
        let ws = e.take_changes();
        assert!(kinds(&ws, p).contains(&"sla_breached".to_string()));
        for k in kids {
            assert!(!kinds(&ws, k).contains(&"sla_breached".to_string()));
            assert!(!inc(&e, k).sla.breached);
        }
    }

    #[test]
    fn parents_children_and_held_pages_survive_a_restart() {
        let mut e = STORMS.engine();
        let (p, _) = storm_of_three(&mut e);
        let lone = created(e.ingest_one(node_down("us", "m1"), secs_after(&STORMS, 3)));
        let ws = e.take_changes();
        let live: Vec<Live> = e.live_incidents().cloned().collect();
        let mut r = Engine::restore(
            e.rules().clone(),
            Settings {
                close_after: Duration::from_secs(3600),
                id_slot: None,
            },
            live,
            Restored {
                last_key: Some(lone),
                jobs: ws.jobs.clone(),
                ..Restored::default()
            },
        );
        let k4 = created(r.ingest(vec![node_down("eu", "n4")], secs_after(&STORMS, 10))[0]);
        assert_eq!(inc(&r, k4).parent, Some(p));
        assert_eq!(inc(&r, p).children.len(), 4);
        assert!(r.take_changes().dispatch.is_empty());
        // The lone incident's held page is still due after the restart.
        r.tick(secs_after(&STORMS, 40));
        let ws = r.take_changes();
        assert_eq!(job_names(&ws), vec!["page:opened"]);
        assert_eq!(ws.dispatch[0].incident, lone);
    }

    #[test]
    fn a_storm_handed_over_to_another_instance_moves_parent_and_children_together() {
        let mut a = STORMS.engine();
        let (p, kids) = storm_of_three(&mut a);
        a.take_changes();
        let moving: Vec<Live> = a.live_incidents().cloned().collect();
        // Instance B adopts the partition: parent and children arrive.
        let mut b = STORMS.engine();
        for l in moving {
            assert_eq!(b.adopt(l, Vec::new()), Adoption::Adopted);
        }
        for k in [p].iter().chain(&kids) {
            assert!(a.hand_over(*k));
        }
        assert_eq!(a.live_incidents().count(), 0);
        b.take_changes();
        // On B the storm goes on: a fourth node joins the adopted parent,
        // silently, and acknowledging the parent acknowledges every child.
        let k4 = created(b.ingest(vec![node_down("eu", "n4")], secs_after(&STORMS, 20))[0]);
        assert_eq!(inc(&b, k4).parent, Some(p));
        assert_eq!(inc(&b, p).children.len(), 4);
        assert!(b.take_changes().dispatch.is_empty());
        b.apply_op(p, Op::Ack, &req("ann"), secs_after(&STORMS, 30), no_load)
            .expect("ack");
        assert!(kids
            .iter()
            .chain([&k4])
            .all(|k| inc(&b, *k).status == Status::Acknowledged));
    }

    fn pod_crash(node: &str) -> Alert {
        firing(&[
            ("alertname", "PodCrash"),
            ("namespace", "shop"),
            ("node", node),
            ("severity", "critical"),
        ])
    }

    #[test]
    fn a_symptom_links_to_its_cause_and_its_page_waits_for_the_cause() {
        let mut e = STORMS.engine();
        let cause = created(e.ingest_one(node_down("eu", "n1"), STORMS.t(0)));
        let symptom = created(e.ingest_one(pod_crash("n1"), STORMS.t(1)));
        let unrelated = created(e.ingest_one(pod_crash("n9"), STORMS.t(1)));
        let s = inc(&e, symptom);
        assert_eq!(s.relations.len(), 1);
        assert_eq!(
            (s.relations[0].to, s.relations[0].relation),
            (cause, RelationKind::CausedBy)
        );
        assert_eq!(inc(&e, cause).relations[0].relation, RelationKind::Causes);
        assert!(inc(&e, unrelated).relations.is_empty());
        let ws = e.take_changes();
        assert!(kinds(&ws, symptom).contains(&"linked".to_string()));
        assert!(kinds(&ws, cause).contains(&"linked".to_string()));
        // The unrelated workload pages at once; the symptom waits 2m.
        assert_eq!(ws.dispatch.len(), 1);
        assert_eq!(ws.dispatch[0].incident, unrelated);
        // The cause is acknowledged within the delay: the symptom's page
        // is dropped, and says why.
        e.apply_op(cause, Op::Ack, &req("ann"), STORMS.t(2), no_load)
            .expect("ack");
        e.tick(STORMS.t(3) + chrono::Duration::seconds(1));
        let ws = e.take_changes();
        let dispatched: Vec<IncidentKey> = ws.dispatch.iter().map(|j| j.incident).collect();
        assert!(!dispatched.contains(&symptom), "{dispatched:?}");
        assert!(ws
            .timeline
            .iter()
            .any(|(k, _, t)| *k == symptom && t.message.contains("not run: its cause")));
    }

    #[test]
    fn a_symptom_whose_cause_stays_unacknowledged_pages_after_the_delay() {
        let mut e = STORMS.engine();
        e.ingest_one(node_down("eu", "n1"), STORMS.t(0));
        let symptom = created(e.ingest_one(pod_crash("n1"), STORMS.t(1)));
        e.take_changes();
        e.tick(STORMS.t(3) + chrono::Duration::seconds(1));
        let ws = e.take_changes();
        assert!(ws.dispatch.iter().any(|j| j.incident == symptom));
    }

    #[test]
    fn a_cause_arriving_after_its_symptom_still_links() {
        let mut e = STORMS.engine();
        let symptom = created(e.ingest_one(pod_crash("n1"), STORMS.t(0)));
        let cause = created(e.ingest_one(node_down("eu", "n1"), STORMS.t(1)));
        assert_eq!(inc(&e, symptom).relations[0].to, cause);
        assert_eq!(inc(&e, cause).relations[0].relation, RelationKind::Causes);
    }
}
