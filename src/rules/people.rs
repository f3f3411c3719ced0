//! People, teams and on-call schedules (the `people`, `teams` and
//! `contacts` sections, usually in `people.yaml`), compiled, and who is on
//! call when.
//!
//! Input: the compiled sections and the overrides people added (from the
//! store). Output: who covers a schedule at an instant ([`Schedule::at`]),
//! its shifts over a span with the gaps nobody covers
//! ([`Schedule::render`]), and who comes next ([`Schedule::next_after`]).
//!
//! Semantics: a layer rotates through its participants in order, handing
//! over every day (`daily`) or every seven days (`weekly`, on the weekday
//! of `start`) at `handoff`, local time in the layer's time zone; the
//! rotation runs backwards from `start` too, so a layer always has someone
//! except outside its `restrictions` (weekly slots, local time). Later
//! layers win where they have someone (follow-the-sun: one restricted
//! layer per region); an override wins over every layer (the newest of
//! overlapping ones). Handoffs and restriction edges are local times: a
//! local time a DST change skips moves to the first valid time after it;
//! one it repeats takes the first. The time zone library (chrono-tz, the
//! bundled IANA database) does every offset computation.

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::error::Pos;
use super::suppress::WeeklySlot;
use crate::model::Override;

/// The widest span [`Schedule::render`] renders.
pub const MAX_RENDER_DAYS: i64 = 400;

/// How far [`Schedule::next_after`] looks ahead.
const NEXT_HORIZON_DAYS: i64 = 62;

/// People, teams and schedules; empty when no rule file has them.
#[derive(Debug, Clone, Default)]
pub struct People {
    pub persons: Vec<Person>,
    pub teams: Vec<Team>,
    pub schedules: Vec<Schedule>,
    pub contacts: Contacts,
}

impl People {
    pub fn person(&self, name: &str) -> Option<&Person> {
        self.persons.iter().find(|p| p.name == name)
    }

    pub fn team(&self, name: &str) -> Option<&Team> {
        self.teams.iter().find(|t| t.name == name)
    }

    pub fn schedule(&self, name: &str) -> Option<&Schedule> {
        self.schedules.iter().find(|s| s.name == name)
    }

    /// The schedule an `oncall:` target names: a schedule, else a team's
    /// first schedule.
    pub fn schedule_for(&self, name: &str) -> Option<&Schedule> {
        self.schedule(name).or_else(|| {
            self.team(name)
                .and_then(|t| t.schedules.first())
                .and_then(|s| self.schedule(s))
        })
    }

    pub fn is_empty(&self) -> bool {
        self.persons.is_empty() && self.teams.is_empty()
    }
}

/// A contact point kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Chat,
    Webhook,
    Phone,
}

impl Channel {
    pub const ALL: [Channel; 4] = [
        Channel::Email,
        Channel::Chat,
        Channel::Webhook,
        Channel::Phone,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Chat => "chat",
            Channel::Webhook => "webhook",
            Channel::Phone => "phone",
        }
    }
}

/// A person who can be paged.
#[derive(Debug, Clone, Serialize)]
pub struct Person {
    pub name: String,
    #[serde(serialize_with = "tz_name")]
    pub time_zone: Tz,
    pub email: Option<String>,
    /// A chat handle (`@alice`, a Slack member id).
    pub chat: Option<String>,
    /// A URL that receives the page as JSON.
    pub webhook: Option<String>,
    pub phone: Option<String>,
    #[serde(skip)]
    pub at: Option<Pos>,
}

impl Person {
    /// The address of one contact point, if the person has it.
    pub fn contact(&self, c: Channel) -> Option<&str> {
        match c {
            Channel::Email => self.email.as_deref(),
            Channel::Chat => self.chat.as_deref(),
            Channel::Webhook => self.webhook.as_deref(),
            Channel::Phone => self.phone.as_deref(),
        }
    }
}

fn tz_name<S: serde::Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

/// Which action reaches each contact point kind (`contacts`).
#[derive(Debug, Clone, Default)]
pub struct Contacts {
    pub email: Option<String>,
    pub chat: Option<String>,
    pub webhook: Option<String>,
    pub phone: Option<String>,
    pub at: Option<Pos>,
}

impl Contacts {
    pub fn action(&self, c: Channel) -> Option<&str> {
        match c {
            Channel::Email => self.email.as_deref(),
            Channel::Chat => self.chat.as_deref(),
            Channel::Webhook => self.webhook.as_deref(),
            Channel::Phone => self.phone.as_deref(),
        }
    }
}

/// A team: its members and schedules (the first is its primary rota).
#[derive(Debug, Clone, Serialize)]
pub struct Team {
    pub name: String,
    pub members: Vec<String>,
    pub schedules: Vec<String>,
    #[serde(skip)]
    pub at: Option<Pos>,
}

/// An on-call schedule: layers of rotations, later layers on top.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    pub team: String,
    pub time_zone: Tz,
    pub layers: Vec<Layer>,
    pub at: Option<Pos>,
}

/// How often a layer hands over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    Daily,
    Weekly,
}

impl Rotation {
    pub fn days(self) -> i64 {
        match self {
            Rotation::Daily => 1,
            Rotation::Weekly => 7,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Rotation::Daily => "daily",
            Rotation::Weekly => "weekly",
        }
    }
}

/// One rotation of a schedule.
#[derive(Debug, Clone)]
pub struct Layer {
    pub name: String,
    pub time_zone: Tz,
    pub rotation: Rotation,
    /// Local time of the handoff.
    pub handoff: NaiveTime,
    /// The local date of a handoff to the first participant.
    pub start: NaiveDate,
    pub participants: Vec<String>,
    /// Empty: always on. Else only within these weekly slots (local time).
    pub restrictions: Vec<WeeklySlot>,
}

/// A span of time and who covers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Shift {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub person: String,
    /// The layer that gives it; unset for an override.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// The override that gives it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub override_id: Option<String>,
}

/// A span nobody covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Gap {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// Shifts and gaps that together tile the rendered span, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Rendered {
    pub shifts: Vec<Shift>,
    pub gaps: Vec<Gap>,
}

/// Who covers an instant, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cover {
    pub person: String,
    pub layer: Option<String>,
    pub override_id: Option<String>,
}

/// The instant of local `date` `time` in `tz`: a skipped local time moves
/// to the first valid time after it, a repeated one takes the earlier.
pub fn local_instant(tz: &Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let naive = date.and_time(time);
    if let Some(t) = tz.from_local_datetime(&naive).earliest() {
        return t.with_timezone(&Utc);
    }
    // In a DST gap: the zone's offsets tell where the gap ends.
    for minutes in (1..=24 * 60).step_by(1) {
        let later = naive + chrono::Duration::minutes(minutes);
        if let Some(t) = tz.from_local_datetime(&later).earliest() {
            return t.with_timezone(&Utc);
        }
    }
    naive.and_utc()
}

fn add_days(d: NaiveDate, n: i64) -> NaiveDate {
    if n >= 0 {
        d.checked_add_days(Days::new(n as u64)).unwrap_or(d)
    } else {
        d.checked_sub_days(Days::new(n.unsigned_abs())).unwrap_or(d)
    }
}

impl Layer {
    /// The start of shift `k` (shift 0 starts at `start`'s handoff).
    pub fn boundary(&self, k: i64) -> DateTime<Utc> {
        local_instant(
            &self.time_zone,
            add_days(self.start, k.saturating_mul(self.rotation.days())),
            self.handoff,
        )
    }

    /// The shift `t` falls in.
    pub fn shift_index(&self, t: DateTime<Utc>) -> i64 {
        let local = t.with_timezone(&self.time_zone).date_naive();
        let mut k = (local - self.start)
            .num_days()
            .div_euclid(self.rotation.days());
        while self.boundary(k) > t {
            k -= 1;
        }
        while self.boundary(k + 1) <= t {
            k += 1;
        }
        k
    }

    /// Who holds shift `k`.
    pub fn participant(&self, k: i64) -> &str {
        let n = self.participants.len().max(1) as i64;
        self.participants
            .get(k.rem_euclid(n) as usize)
            .map(String::as_str)
            .unwrap_or("")
    }

    /// The restriction windows that start on local `date`.
    fn windows(
        &self,
        date: NaiveDate,
    ) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_ {
        self.restrictions
            .iter()
            .filter(move |r| r.days.contains(&date.weekday()))
            .map(move |r| {
                let start = local_instant(&self.time_zone, date, r.start);
                let end_date = if r.end > r.start {
                    date
                } else {
                    add_days(date, 1)
                };
                (start, local_instant(&self.time_zone, end_date, r.end))
            })
    }

    /// Whether the restrictions let the layer cover `t`.
    pub fn open_at(&self, t: DateTime<Utc>) -> bool {
        if self.restrictions.is_empty() {
            return true;
        }
        let day = t.with_timezone(&self.time_zone).date_naive();
        [add_days(day, -1), day]
            .into_iter()
            .any(|d| self.windows(d).any(|(s, e)| s <= t && t < e))
    }

    /// Who this layer has on call at `t` (none outside its restrictions).
    pub fn at(&self, t: DateTime<Utc>) -> Option<&str> {
        if self.participants.is_empty() || !self.open_at(t) {
            return None;
        }
        Some(self.participant(self.shift_index(t)))
    }

    /// Every instant within `(from, to)` where this layer may change hands.
    fn edges(&self, from: DateTime<Utc>, to: DateTime<Utc>, out: &mut Vec<DateTime<Utc>>) {
        let first = add_days(from.with_timezone(&self.time_zone).date_naive(), -2);
        let last = add_days(to.with_timezone(&self.time_zone).date_naive(), 2);
        let mut d = first;
        while d <= last {
            if (d - self.start).num_days().rem_euclid(self.rotation.days()) == 0 {
                out.push(local_instant(&self.time_zone, d, self.handoff));
            }
            for (s, e) in self.windows(d) {
                out.push(s);
                out.push(e);
            }
            d = add_days(d, 1);
        }
    }

    /// This layer alone over `[from, to)`: its shifts and the gaps its
    /// restrictions leave.
    pub fn render(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Rendered {
        let mut edges = Vec::new();
        self.edges(from, to, &mut edges);
        tile(edges, from, to, |t| {
            self.at(t).map(|p| Cover {
                person: p.to_string(),
                layer: Some(self.name.clone()),
                override_id: None,
            })
        })
    }
}

impl Schedule {
    fn overrides<'a>(&'a self, all: &'a [Override]) -> impl Iterator<Item = &'a Override> + 'a {
        all.iter()
            .filter(move |o| o.schedule == self.name && o.removed_at.is_none())
    }

    /// Who covers the schedule at `t`: an override (the newest), else the
    /// last layer that has someone.
    pub fn at(&self, t: DateTime<Utc>, overrides: &[Override]) -> Option<Cover> {
        if let Some(o) = self
            .overrides(overrides)
            .filter(|o| o.covers(t))
            .max_by_key(|o| (o.created_at, o.id.clone()))
        {
            return Some(Cover {
                person: o.person.clone(),
                layer: None,
                override_id: Some(o.id.clone()),
            });
        }
        self.layers.iter().rev().find_map(|l| {
            l.at(t).map(|p| Cover {
                person: p.to_string(),
                layer: Some(l.name.clone()),
                override_id: None,
            })
        })
    }

    /// The shifts of `[from, to)` (at most [`MAX_RENDER_DAYS`] from
    /// `from`) and the gaps nobody covers.
    pub fn render(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        overrides: &[Override],
    ) -> Rendered {
        let to = to.min(from + chrono::Duration::days(MAX_RENDER_DAYS));
        let mut edges = Vec::new();
        for l in &self.layers {
            l.edges(from, to, &mut edges);
        }
        for o in self.overrides(overrides) {
            edges.push(o.starts_at);
            edges.push(o.ends_at);
        }
        tile(edges, from, to, |t| self.at(t, overrides))
    }

    /// The first person after `t` who is not the one on call at `t`, and
    /// when their shift starts (within two months).
    pub fn next_after(
        &self,
        t: DateTime<Utc>,
        overrides: &[Override],
    ) -> Option<(String, DateTime<Utc>)> {
        let now = self.at(t, overrides).map(|c| c.person);
        self.render(t, t + chrono::Duration::days(NEXT_HORIZON_DAYS), overrides)
            .shifts
            .into_iter()
            .find(|s| Some(&s.person) != now.as_ref())
            .map(|s| (s.person, s.start))
    }
}

/// Cuts `[from, to)` at `edges`, asks `who` at the start of each piece
/// (nothing changes within one), and merges neighbours with the same cover.
fn tile(
    mut edges: Vec<DateTime<Utc>>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    who: impl Fn(DateTime<Utc>) -> Option<Cover>,
) -> Rendered {
    let mut out = Rendered::default();
    if to <= from {
        return out;
    }
    edges.retain(|e| *e > from && *e < to);
    edges.push(from);
    edges.push(to);
    edges.sort();
    edges.dedup();
    for w in edges.windows(2) {
        let (start, end) = (w[0], w[1]);
        match who(start) {
            Some(c) => match out.shifts.last_mut() {
                Some(last)
                    if last.end == start
                        && last.person == c.person
                        && last.layer == c.layer
                        && last.override_id == c.override_id =>
                {
                    last.end = end;
                }
                _ => out.shifts.push(Shift {
                    start,
                    end,
                    person: c.person,
                    layer: c.layer,
                    override_id: c.override_id,
                }),
            },
            None => match out.gaps.last_mut() {
                Some(last) if last.end == start => last.end = end,
                _ => out.gaps.push(Gap { start, end }),
            },
        }
    }
    out
}

#[cfg(test)]
mod tests;
