//! Escalation to people: schedule overrides, and the pages an escalation
//! level sends to whoever its target names (`people.yaml`).
//!
//! Input: a level reached by the escalation timer (`Engine::tick`), the clock, the rules'
//! people and schedules and the overrides. Output: one action job per
//! person and contact point (the `contacts` action of that kind, its
//! payload the incident event plus `page`), a [`Page`] on the incident,
//! the assignee set to the person notified, a `paged` timeline entry
//! saying who and how, and a `Paged` event for metrics.
//!
//! Contract: nobody is dropped silently: when the target has nobody to
//! page, the level's fallback applies (a person, a wait, or the next
//! level) and the timeline says so; at the last level it says nobody was
//! paged. Repeats and waits are driven by the incident's stored pages and
//! `page_wait`, and each job's key names level, repeat, person and
//! channel, so a restart neither pages twice nor skips a page.

use chrono::{DateTime, Utc};

use super::events::Event;
use super::{chrono_dur, Engine};
use crate::model::{
    IncidentKey, InvalidOverride, Override, Page, PageWait, Status, TimelineKind, Trigger, SYSTEM,
};
use crate::rules::actions::{EscalationLevel, EscalationPolicy, Fallback, PageTarget};
use crate::rules::people::Channel;
use crate::rules::RuleSet;

/// What paging a level came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Paged {
    /// Someone was notified.
    Someone,
    /// Nobody yet; the level looks again until its wait ends.
    Waiting,
    /// Nobody; the next level is due at once.
    NextLevel,
    /// Nobody, and nothing follows.
    Nobody,
}

/// Who a target resolves to: (person, team, how they were found).
type Recipients = Vec<(String, Option<String>, String)>;

impl Engine {
    /// Every override, removed ones included.
    pub fn overrides(&self) -> &[Override] {
        &self.overrides
    }

    /// Adds an override; the schedule and the person must exist.
    pub fn add_override(
        &mut self,
        mut o: Override,
        now: DateTime<Utc>,
    ) -> Result<Override, InvalidOverride> {
        o.validate()?;
        let people = self.rules.people.clone();
        if people.schedule(&o.schedule).is_none() {
            return Err(InvalidOverride(format!("no schedule {:?}", o.schedule)));
        }
        if people.person(&o.person).is_none() {
            return Err(InvalidOverride(format!("no person {:?}", o.person)));
        }
        o.created_at = now;
        o.removed_at = None;
        let mut n = self.overrides.len() + 1;
        loop {
            let id = format!("ovr-{}-{n}", now.format("%Y%m%d%H%M%S"));
            if !self.overrides.iter().any(|x| x.id == id) {
                o.id = id;
                break;
            }
            n += 1;
        }
        self.overrides.push(o.clone());
        self.dirty.overrides.insert(o.id.clone());
        Ok(o)
    }

    /// Removes an override of `schedule`; `None` when there is no such
    /// (unremoved) override.
    pub fn remove_override(
        &mut self,
        schedule: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Option<Override> {
        let o = self
            .overrides
            .iter_mut()
            .find(|o| o.id == id && o.schedule == schedule && o.removed_at.is_none())?;
        o.removed_at = Some(now);
        self.dirty.overrides.insert(o.id.clone());
        Some(o.clone())
    }

    /// The escalation policy an incident follows.
    pub(super) fn policy_for(&self, key: IncidentKey) -> Option<EscalationPolicy> {
        let i = &self.live.incidents.get(&key)?.incident;
        self.rules
            .escalations
            .iter()
            .find(|p| {
                (p.priorities.is_empty() || p.priorities.contains(&i.priority))
                    && crate::model::matcher::all_match(&p.matchers, &i.labels)
            })
            .cloned()
    }

    /// Whom `target` names at `now`.
    fn recipients(&self, key: IncidentKey, target: &PageTarget, now: DateTime<Utc>) -> Recipients {
        let people = &self.rules.people;
        let Some(l) = self.live.incidents.get(&key) else {
            return Vec::new();
        };
        let team_of_person = |p: &str| {
            people
                .teams
                .iter()
                .find(|t| t.members.iter().any(|m| m == p))
                .map(|t| t.name.clone())
                .or_else(|| l.incident.team.clone())
        };
        let oncall = |name: &str, via: String| -> Recipients {
            people
                .schedule_for(name)
                .and_then(|s| {
                    s.at(now, &self.overrides)
                        .map(|c| (c.person, Some(s.team.clone()), via))
                })
                .into_iter()
                .collect()
        };
        match target {
            PageTarget::Oncall(name) => oncall(name, target.describe()),
            PageTarget::OwningTeam => match &l.incident.team {
                Some(t) => oncall(t, format!("oncall {t} (the incident's team)")),
                None => Vec::new(),
            },
            PageTarget::Person(p) => vec![(p.clone(), team_of_person(p), target.describe())],
            PageTarget::Team(t) => people
                .team(t)
                .map(|team| {
                    team.members
                        .iter()
                        .map(|m| (m.clone(), Some(t.clone()), target.describe()))
                        .collect()
                })
                .unwrap_or_default(),
            PageTarget::NextOncall => {
                // The schedule the last on-call page went through, else the
                // incident's team's.
                let schedule = l
                    .incident
                    .pages
                    .iter()
                    .rev()
                    .find_map(|p| p.via.strip_prefix("oncall "))
                    .map(|s| s.split(' ').next().unwrap_or(s).to_string())
                    .or_else(|| l.incident.team.clone());
                let Some(s) = schedule.as_deref().and_then(|n| people.schedule_for(n)) else {
                    return Vec::new();
                };
                let current = s.at(now, &self.overrides).map(|c| c.person);
                let last_paged = l.incident.pages.last().map(|p| p.person.clone());
                let after = current.filter(|c| Some(c) != last_paged.as_ref());
                // The one on call now, unless they were just paged; then who follows.
                match after {
                    Some(p) => vec![(p, Some(s.team.clone()), format!("next_oncall {}", s.name))],
                    None => s
                        .next_after(now, &self.overrides)
                        .map(|(p, _)| (p, Some(s.team.clone()), format!("next_oncall {}", s.name)))
                        .into_iter()
                        .collect(),
                }
            }
        }
    }

    /// Pages level `n` (repeat `repeat`) of `policy`; applies the
    /// fallback when nobody can be paged (a repeat has none: it notes
    /// nobody was on call and waits for the next repeat or level).
    pub(super) fn page_level(
        &mut self,
        key: IncidentKey,
        policy: &EscalationPolicy,
        n: u32,
        repeat: u32,
        now: DateTime<Utc>,
    ) -> Paged {
        let Some(level) = policy.levels.get(n as usize - 1) else {
            return Paged::Nobody;
        };
        let Some(target) = &level.target else {
            return Paged::Someone;
        };
        let found = self.recipients(key, target, now);
        if self.notify(key, level, n, repeat, &found, now) {
            if let Some(l) = self.live.incidents.get_mut(&key) {
                l.incident.page_wait = None;
            }
            return Paged::Someone;
        }
        let team = self.team_for(key, target);
        let what = target.describe();
        if repeat > 0 {
            self.note_page(
                key,
                now,
                format!("level {n} repeat {repeat}: nobody to page for {what}"),
            );
            self.page_event(&team, "nobody");
            return Paged::Nobody;
        }
        match &level.fallback {
            Fallback::Person(p) => {
                let via = format!("fallback person {p} (nobody on call for {what})");
                let people = self.rules.people.clone();
                let t = people
                    .teams
                    .iter()
                    .find(|t| t.members.iter().any(|m| m == p))
                    .map(|t| t.name.clone())
                    .or(team.clone());
                if self.notify(key, level, n, repeat, &[(p.clone(), t, via)], now) {
                    return Paged::Someone;
                }
                self.nobody_left(key, policy, n, &what, &team, now)
            }
            Fallback::Wait(d) => {
                let until = now + chrono_dur(*d);
                if let Some(l) = self.live.incidents.get_mut(&key) {
                    l.incident.page_wait = Some(PageWait {
                        level: n,
                        from: now,
                        until,
                    });
                }
                self.dirty.incidents.insert(key);
                self.note_page(
                    key,
                    now,
                    format!(
                        "level {n}: nobody on call for {what}; looking again until {} (fallback wait {})",
                        until.to_rfc3339(),
                        humantime::format_duration(*d)
                    ),
                );
                self.page_event(&team, "waiting");
                Paged::Waiting
            }
            Fallback::NextLevel => self.nobody_left(key, policy, n, &what, &team, now),
        }
    }

    /// Nobody to page at level `n`: the next level, or say nobody was paged.
    fn nobody_left(
        &mut self,
        key: IncidentKey,
        policy: &EscalationPolicy,
        n: u32,
        what: &str,
        team: &Option<String>,
        now: DateTime<Utc>,
    ) -> Paged {
        if (n as usize) < policy.levels.len() {
            self.note_page(
                key,
                now,
                format!(
                    "level {n}: nobody on call for {what}; going on to level {}",
                    n + 1
                ),
            );
            self.page_event(team, "next_level");
            Paged::NextLevel
        } else {
            self.note_page(
                key,
                now,
                format!(
                    "level {n}: nobody on call for {what} and no level follows: nobody was paged"
                ),
            );
            self.page_event(team, "nobody");
            Paged::Nobody
        }
    }

    fn team_for(&self, key: IncidentKey, target: &PageTarget) -> Option<String> {
        let people = &self.rules.people;
        match target {
            PageTarget::Oncall(n) => people.schedule_for(n).map(|s| s.team.clone()),
            PageTarget::Team(t) => Some(t.clone()),
            _ => None,
        }
        .or_else(|| {
            self.live
                .incidents
                .get(&key)
                .and_then(|l| l.incident.team.clone())
        })
    }

    fn page_event(&mut self, team: &Option<String>, outcome: &'static str) {
        self.dirty.events.push(Event::Paged {
            team: team.clone().unwrap_or_default(),
            outcome,
        });
    }

    fn note_page(&mut self, key: IncidentKey, now: DateTime<Utc>, msg: String) {
        self.dirty.incidents.insert(key);
        self.note(key, now, TimelineKind::Paged, SYSTEM, msg);
    }

    /// Sends the pages; false when none of `found` has a contact point a
    /// `contacts` action reaches.
    fn notify(
        &mut self,
        key: IncidentKey,
        level: &EscalationLevel,
        n: u32,
        repeat: u32,
        found: &[(String, Option<String>, String)],
        now: DateTime<Utc>,
    ) -> bool {
        let rules = self.rules.clone();
        let people = &rules.people;
        let mut any = false;
        for (name, team, via) in found {
            let Some(person) = people.person(name) else {
                continue;
            };
            let channels: Vec<(Channel, &str, &crate::rules::actions::ActionDef)> = Channel::ALL
                .into_iter()
                .filter_map(|c| {
                    let address = person.contact(c)?;
                    let action = people.contacts.action(c)?;
                    let def = rules.actions.iter().find(|a| a.name == action)?;
                    Some((c, address, def))
                })
                .collect();
            if channels.is_empty() {
                self.note_page(
                    key,
                    now,
                    format!("level {n}: {name} ({via}) has no contact point a `contacts` action reaches; not paged"),
                );
                continue;
            }
            for (c, address, def) in &channels {
                let occurrence = format!("level{n}.{repeat}/{name}/{}", c.as_str());
                let job_key = format!(
                    "{key}/{}/{}/{occurrence}",
                    def.name,
                    Trigger::Escalated.as_str()
                );
                self.enqueue(key, def, Trigger::Escalated, &occurrence, now);
                if let Some(job) = self.jobs.by_key.get_mut(&job_key) {
                    if job.payload.get("page").is_none() {
                        job.payload["page"] = serde_json::json!({
                            "person": person,
                            "channel": c.as_str(),
                            "address": address,
                            "level": n,
                            "repeat": repeat,
                            "via": via,
                            "team": team,
                        });
                    }
                }
            }
            let how: Vec<String> = channels
                .iter()
                .map(|(c, _, _)| c.as_str().to_string())
                .collect();
            let Some(l) = self.live.incidents.get_mut(&key) else {
                return any;
            };
            l.incident.pages.push(Page {
                person: name.clone(),
                team: team.clone(),
                level: n,
                repeat,
                via: via.clone(),
                channels: how.clone(),
                at: now,
                acknowledged_at: None,
            });
            if !any {
                l.incident.assignee = Some(name.clone());
            }
            self.dirty.incidents.insert(key);
            let again = if repeat > 0 {
                format!(" (repeat {repeat}/{})", level.repeat)
            } else {
                String::new()
            };
            self.note(
                key,
                now,
                TimelineKind::Paged,
                SYSTEM,
                format!(
                    "paged {name} ({via}, level {n}{again}) by {}; assigned to {name}",
                    how.join(", ")
                ),
            );
            self.page_event(team, "paged");
            any = true;
        }
        any
    }

    /// Repeats of the current level and levels waiting for someone to
    /// come on call, among the incidents due now (see [`paging_wake`]).
    pub(super) fn page_again(&mut self, now: DateTime<Utc>, due: &[IncidentKey]) {
        let keys: Vec<IncidentKey> = due
            .iter()
            .copied()
            .filter(|k| {
                self.live.incidents.get(k).is_some_and(|l| {
                    l.incident.status.is_active()
                        && l.incident.parent.is_none()
                        && l.incident.escalation_level > 0
                        && (l.incident.page_wait.is_some() || !l.incident.pages.is_empty())
                })
            })
            .collect();
        for key in keys {
            let Some(policy) = self.policy_for(key) else {
                continue;
            };
            let Some(l) = self.live.incidents.get(&key) else {
                continue;
            };
            let i = &l.incident;
            let n = i.escalation_level;
            let open = i.status == Status::Open;
            if let Some(w) = i.page_wait.clone() {
                if !open || w.level != n {
                    if let Some(l) = self.live.incidents.get_mut(&key) {
                        l.incident.page_wait = None;
                    }
                    self.dirty.incidents.insert(key);
                    continue;
                }
                let Some(target) = policy
                    .levels
                    .get(n as usize - 1)
                    .and_then(|lv| lv.target.clone())
                else {
                    continue;
                };
                let found = self.recipients(key, &target, now);
                let level = policy.levels[n as usize - 1].clone();
                if self.notify(key, &level, n, 0, &found, now) {
                    if let Some(l) = self.live.incidents.get_mut(&key) {
                        l.incident.page_wait = None;
                    }
                } else if now >= w.until {
                    if let Some(l) = self.live.incidents.get_mut(&key) {
                        l.incident.page_wait = None;
                    }
                    let team = self.team_for(key, &target);
                    let what = format!("{} within the wait", target.describe());
                    if self.nobody_left(key, &policy, n, &what, &team, now) == Paged::NextLevel {
                        self.reach_level(
                            key,
                            &policy,
                            n + 1,
                            format!("level {n} found nobody on call"),
                            now,
                        );
                    }
                }
                continue;
            }
            let Some(level) = policy.levels.get(n as usize - 1) else {
                continue;
            };
            if !open || level.target.is_none() || level.repeat == 0 {
                continue;
            }
            let of_level = i.pages.iter().filter(|p| p.level == n);
            let (last, done) = of_level.fold((None, 0u32), |(t, r), p| {
                (
                    Some(t.map_or(p.at, |t: DateTime<Utc>| t.max(p.at))),
                    r.max(p.repeat),
                )
            });
            let Some(last) = last else {
                continue;
            };
            if done < level.repeat && now - last >= chrono_dur(level.repeat_every) {
                self.page_level(key, &policy, n, done + 1, now);
            }
        }
    }

    /// A person acknowledged: their pages say so; the time to acknowledge
    /// counts for the incident's team, else the team they were paged for,
    /// else the team they are a member of.
    pub(super) fn pages_acknowledged(&mut self, key: IncidentKey, by: &str, now: DateTime<Utc>) {
        let people = self.rules.people.clone();
        let Some(l) = self.live.incidents.get_mut(&key) else {
            return;
        };
        let mut team = l.incident.team.clone();
        for p in l.incident.pages.iter_mut().filter(|p| p.person == by) {
            if p.acknowledged_at.is_none() {
                p.acknowledged_at = Some(now);
            }
            if team.is_none() {
                team = p.team.clone();
            }
        }
        l.incident.page_wait = None;
        let team = team.or_else(|| {
            people
                .teams
                .iter()
                .find(|t| t.members.iter().any(|m| m == by))
                .map(|t| t.name.clone())
        });
        let seconds = super::secs(now - l.incident.created_at);
        if let Some(team) = team {
            self.dirty
                .events
                .push(Event::TeamAcknowledged { team, seconds });
        }
    }
}

/// When an open incident's paging next needs the clock: the next repeat
/// of its current level, and while a level waits for someone to come on
/// call, the first shift of the target's schedule within the wait (by its
/// layers; an override added meanwhile is seen at the wait's end) and the
/// wait's end. For the timer heap (`wakes`).
pub(super) fn paging_wake(i: &crate::model::Incident, rules: &RuleSet) -> Option<DateTime<Utc>> {
    if i.status != Status::Open || i.escalation_level == 0 || i.parent.is_some() {
        return None;
    }
    let policy = rules.escalations.iter().find(|p| {
        (p.priorities.is_empty() || p.priorities.contains(&i.priority))
            && crate::model::matcher::all_match(&p.matchers, &i.labels)
    })?;
    let n = i.escalation_level;
    let level = policy.levels.get(n as usize - 1)?;
    let mut out: Option<DateTime<Utc>> = None;
    let mut at = |t: DateTime<Utc>| out = Some(out.map_or(t, |o: DateTime<Utc>| o.min(t)));
    if let Some(w) = i.page_wait.as_ref().filter(|w| w.level == n) {
        at(w.until);
        let schedule = match &level.target {
            Some(PageTarget::Oncall(s)) => Some(s.clone()),
            Some(PageTarget::OwningTeam) | Some(PageTarget::NextOncall) => i.team.clone(),
            _ => None,
        };
        if let Some(s) = schedule
            .as_deref()
            .and_then(|s| rules.people.schedule_for(s))
        {
            if let Some(first) = s.render(w.from, w.until, &[]).shifts.first() {
                at(first.start);
            }
        }
    }
    if level.target.is_some() && level.repeat > 0 {
        let of_level = i.pages.iter().filter(|p| p.level == n);
        let (last, done) = of_level.fold((None, 0u32), |(t, r), p| {
            (
                Some(t.map_or(p.at, |t: DateTime<Utc>| t.max(p.at))),
                r.max(p.repeat),
            )
        });
        if let (Some(last), true) = (last, done < level.repeat) {
            at(last + chrono_dur(level.repeat_every));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::testkit::*;
    use crate::engine::*;
    use crate::model::*;

    fn pages(e: &Engine, k: IncidentKey) -> Vec<(String, u32, u32, Vec<String>)> {
        inc(e, k)
            .pages
            .iter()
            .map(|p| (p.person.clone(), p.level, p.repeat, p.channels.clone()))
            .collect()
    }

    fn page_jobs(ws: &ChangeSet) -> Vec<String> {
        ws.dispatch
            .iter()
            .filter_map(|j| {
                let p = j.payload.get("page")?;
                Some(format!(
                    "{}:{}:{}",
                    j.action,
                    p["person"]["name"].as_str()?,
                    p["address"].as_str()?
                ))
            })
            .collect()
    }

    fn p(name: &str, level: u32, repeat: u32, ch: &[&str]) -> (String, u32, u32, Vec<String>) {
        (
            name.into(),
            level,
            repeat,
            ch.iter().map(|c| c.to_string()).collect(),
        )
    }

    #[test]
    fn levels_page_the_team_on_call_then_the_next_then_the_fallback_until_acknowledged() {
        let mut e = PAGING.engine();
        let Outcome::Created(k) = e.ingest_one(firing(&[("alertname", "DbDown")]), PAGING.t(0))
        else {
            panic!()
        };
        assert_eq!(inc(&e, k).team.as_deref(), Some("dba"));
        e.take_changes();
        e.tick(PAGING.t(5));
        let ws = e.take_changes();
        // ben holds dba-primary this week; he has only an email address.
        assert_eq!(page_jobs(&ws), vec!["page-mail:ben:ben@example.com"]);
        assert_eq!(pages(&e, k), vec![p("ben", 1, 0, &["email"])]);
        assert_eq!(inc(&e, k).assignee.as_deref(), Some("ben"));
        assert!(ws.timeline.iter().any(|(_, _, t)| t.kind == TimelineKind::Paged
            && t.message == "paged ben (oncall dba (the incident's team), level 1) by email; assigned to ben"));
        assert!(ws.events.contains(&Event::Paged {
            team: "dba".into(),
            outcome: "paged"
        }));
        // One repeat, 3 minutes later.
        e.tick(PAGING.t(7));
        assert!(e.take_changes().dispatch.is_empty());
        e.tick(PAGING.t(8));
        assert_eq!(
            page_jobs(&e.take_changes()),
            vec!["page-mail:ben:ben@example.com"]
        );
        e.tick(PAGING.t(9));
        assert!(
            e.take_changes().dispatch.is_empty(),
            "repeat: 1 pages once more"
        );
        // Level 2: the next person on call after ben is ana (next Monday).
        e.tick(PAGING.t(10));
        let ws = e.take_changes();
        assert_eq!(
            page_jobs(&ws),
            vec!["page-mail:ana:ana@example.com", "page-chat:ana:@ana"]
        );
        assert_eq!(inc(&e, k).assignee.as_deref(), Some("ana"));
        // Level 3: nobody on dba-night during the day: the fallback person.
        e.tick(PAGING.t(20));
        let ws = e.take_changes();
        assert_eq!(page_jobs(&ws), vec!["page-mail:boss:boss@example.com"]);
        assert!(ws.timeline.iter().any(|(_, _, t)| t.message.contains(
            "paged boss (fallback person boss (nobody on call for oncall dba-night), level 3)"
        )));
        // ana acknowledges: her page says so and nothing more is sent
        // until the SLA-based hierarchical level.
        let req = OpRequest {
            by: Some("ana".into()),
            ..OpRequest::default()
        };
        e.apply_op(k, Op::Ack, &req, PAGING.t(25), |_| None)
            .expect("ack");
        let ws = e.take_changes();
        assert!(ws.events.contains(&Event::TeamAcknowledged {
            team: "dba".into(),
            seconds: 25.0 * 60.0
        }));
        let acked: Vec<_> = inc(&e, k)
            .pages
            .iter()
            .filter(|p| p.acknowledged_at.is_some())
            .map(|p| p.person.clone())
            .collect();
        assert_eq!(acked, vec!["ana"]);
        e.tick(PAGING.t(79));
        assert!(e.take_changes().dispatch.is_empty());
        e.tick(PAGING.t(80));
        assert_eq!(
            page_jobs(&e.take_changes()),
            vec!["page-mail:boss:boss@example.com"],
            "80% of the resolve target: the managers' team"
        );
    }

    #[test]
    fn nobody_on_call_goes_on_to_the_next_level_or_waits_and_never_drops_silently() {
        let mut e = PAGING.engine();
        let Outcome::Created(k) = e.ingest_one(firing(&[("alertname", "NightOnly")]), PAGING.t(0))
        else {
            panic!()
        };
        e.tick(PAGING.t(1));
        let ws = e.take_changes();
        // Level 1 found nobody; level 2 (ana) was reached at once.
        assert_eq!(inc(&e, k).escalation_level, 2);
        assert_eq!(
            page_jobs(&ws),
            vec!["page-mail:ana:ana@example.com", "page-chat:ana:@ana"]
        );
        assert!(ws.timeline.iter().any(|(_, _, t)| t.message
            == "level 1: nobody on call for oncall dba-night; going on to level 2"));
        // A wait: nobody until the night starts (20:00 Berlin = 19:00Z).
        let Outcome::Created(w) = e.ingest_one(firing(&[("alertname", "Wait")]), PAGING.t(0))
        else {
            panic!()
        };
        e.take_changes();
        e.tick(PAGING.t(2));
        let ws = e.take_changes();
        assert!(page_jobs(&ws).is_empty());
        assert!(inc(&e, w).page_wait.is_some());
        assert!(ws.timeline.iter().any(|(_, _, t)| t
            .message
            .starts_with("level 1: nobody on call for oncall dba-night; looking again until")));
        assert!(ws.events.contains(&Event::Paged {
            team: "dba".into(),
            outcome: "waiting"
        }));
        e.tick(PAGING.t(8 * 60 + 59));
        assert!(page_jobs(&e.take_changes()).is_empty());
        e.tick(PAGING.t(9 * 60));
        let ws = e.take_changes();
        assert_eq!(page_jobs(&ws), vec!["page-hook:cy:http://127.0.0.1:1/cy"]);
        assert!(inc(&e, w).page_wait.is_none());
        assert_eq!(inc(&e, w).escalation_level, 1);
    }

    #[test]
    fn a_wait_that_ends_with_nobody_reaches_the_next_level_at_once() {
        let mut e = PAGING.engine();
        let Outcome::Created(k) = e.ingest_one(firing(&[("alertname", "ShortWait")]), PAGING.t(0))
        else {
            panic!()
        };
        e.tick(PAGING.t(1));
        e.take_changes();
        e.tick(PAGING.t(30));
        assert!(page_jobs(&e.take_changes()).is_empty());
        e.tick(PAGING.t(31));
        let ws = e.take_changes();
        assert_eq!(page_jobs(&ws), vec!["page-mail:boss:boss@example.com"]);
        assert_eq!(inc(&e, k).escalation_level, 2);
        assert!(ws.timeline.iter().any(|(_, _, t)| {
            t.message
            == "level 1: nobody on call for oncall dba-night within the wait; going on to level 2"
        }));
    }

    #[test]
    fn a_restart_mid_escalation_neither_pages_twice_nor_skips() {
        let mut e = PAGING.engine();
        let Outcome::Created(k) = e.ingest_one(firing(&[("alertname", "DbDown")]), PAGING.t(0))
        else {
            panic!()
        };
        e.tick(PAGING.t(5));
        let ws = e.take_changes();
        assert_eq!(page_jobs(&ws).len(), 1);
        let live: Vec<Live> = e.live_incidents().cloned().collect();
        let mut r = Engine::restore(
            e.rules().clone(),
            Settings {
                close_after: Duration::from_secs(86400),
                id_slot: None,
            },
            live,
            Restored {
                jobs: ws.jobs.clone(),
                ..Restored::default()
            },
        );
        // The level-1 page is still pending (not sent yet): it resumes once.
        assert_eq!(
            r.pending_jobs()
                .iter()
                .filter(|j| j.payload.get("page").is_some())
                .count(),
            1
        );
        r.tick(PAGING.t(6));
        assert!(r.take_changes().dispatch.is_empty(), "nobody paged twice");
        r.tick(PAGING.t(8));
        assert_eq!(
            page_jobs(&r.take_changes()),
            vec!["page-mail:ben:ben@example.com"],
            "the repeat still comes"
        );
        r.tick(PAGING.t(10));
        assert_eq!(
            pages(&r, k).last(),
            Some(&p("ana", 2, 0, &["email", "chat"]))
        );
    }

    #[test]
    fn overrides_cover_a_schedule_and_need_known_names() {
        let mut e = PAGING.engine();
        let o = |person: &str, schedule: &str| Override {
            id: String::new(),
            schedule: schedule.into(),
            person: person.into(),
            starts_at: PAGING.t(0),
            ends_at: PAGING.t(60),
            created_by: "t".into(),
            created_at: PAGING.t(0),
            removed_at: None,
        };
        assert!(e
            .add_override(o("zed", "dba-primary"), PAGING.t(0))
            .is_err());
        assert!(e.add_override(o("ana", "nope"), PAGING.t(0)).is_err());
        let added = e
            .add_override(o("ana", "dba-primary"), PAGING.t(0))
            .expect("add");
        assert_eq!(e.take_changes().overrides, vec![added.clone()]);
        let Outcome::Created(k) = e.ingest_one(firing(&[("alertname", "DbDown")]), PAGING.t(0))
        else {
            panic!()
        };
        e.tick(PAGING.t(5));
        assert_eq!(
            pages(&e, k)[0].0,
            "ana",
            "the override wins over ben's week"
        );
        assert!(e
            .remove_override("dba-primary", &added.id, PAGING.t(6))
            .is_some());
        assert!(e
            .remove_override("dba-primary", &added.id, PAGING.t(6))
            .is_none());
    }
}
