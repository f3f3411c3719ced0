//! Escalation to people: schedule overrides, and the pages an escalation
//! level sends to whoever its target names (`people.yaml`).
//!
//! Input: a level reached by [`Engine::escalate`], the clock, the rules'
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
            self.note_page(key, now, format!("level {n} repeat {repeat}: nobody to page for {what}"));
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
                    l.incident.page_wait = Some(PageWait { level: n, until });
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
                format!("level {n}: nobody on call for {what}; going on to level {}", n + 1),
            );
            self.page_event(team, "next_level");
            Paged::NextLevel
        } else {
            self.note_page(
                key,
                now,
                format!("level {n}: nobody on call for {what} and no level follows: nobody was paged"),
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
            let how: Vec<String> = channels.iter().map(|(c, _, _)| c.as_str().to_string()).collect();
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
    /// come on call.
    pub(super) fn page_again(&mut self, now: DateTime<Utc>) {
        let keys: Vec<IncidentKey> = self
            .live
            .incidents
            .iter()
            .filter(|(_, l)| {
                l.incident.status.is_active()
                    && l.incident.parent.is_none()
                    && l.incident.escalation_level > 0
                    && (l.incident.page_wait.is_some() || !l.incident.pages.is_empty())
            })
            .map(|(k, _)| *k)
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
                        self.reach_level(key, &policy, n + 1, format!("level {n} found nobody on call"), now);
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
                (Some(t.map_or(p.at, |t: DateTime<Utc>| t.max(p.at))), r.max(p.repeat))
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
    /// counts for the incident's team (or the team they were paged for).
    pub(super) fn pages_acknowledged(&mut self, key: IncidentKey, by: &str, now: DateTime<Utc>) {
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
        let seconds = super::secs(now - l.incident.created_at);
        if let Some(team) = team {
            self.dirty.events.push(Event::TeamAcknowledged { team, seconds });
        }
    }
}
