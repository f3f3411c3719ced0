//! The `people`, `teams` and `contacts` sections (usually the rule
//! directory's `people.yaml`): YAML → [`People`], every problem at
//! `file:line:column`.
//!
//! Names must be unique (people, teams, schedules), time zones IANA names,
//! members and participants people defined somewhere in the rule files,
//! and `contacts` actions defined in `actions`; references are checked once
//! every file is read ([`Builder::check_people_refs`]).

use std::collections::HashMap;

use marked_yaml::{Node, Spanned};
use schemars::JsonSchema;
use serde::Deserialize;

use super::raw::RawSlot;
use super::schema as s;
use super::Builder;
use crate::rules::error::{Pos, RuleError};
use crate::rules::people::{Contacts, Layer, Person, Rotation, Schedule, Team};

/// A person who can be paged.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPerson {
    /// Unique; what `person:` targets, participants and members name.
    #[schemars(schema_with = "s::name")]
    pub(super) name: Spanned<String>,
    /// IANA time zone (default UTC); the board shows their shifts in it.
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) time_zone: Option<Spanned<String>>,
    /// Mail address (the `contacts.email` action sends to it).
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) email: Option<Spanned<String>>,
    /// Chat handle (`@alice`), for the `contacts.chat` action's templates.
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) chat: Option<Spanned<String>>,
    /// A URL that receives the page (the `contacts.webhook` action).
    #[serde(default)]
    #[schemars(schema_with = "s::url")]
    pub(super) webhook: Option<Spanned<String>>,
    /// Phone number, for an SMS or voice gateway (`contacts.phone`).
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) phone: Option<Spanned<String>>,
}

/// A team: members and on-call schedules (the first is its primary rota).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTeam {
    /// Unique; what rules' `team`, `oncall:` and `team:` targets name.
    #[schemars(schema_with = "s::name")]
    pub(super) name: Spanned<String>,
    /// People of the team (`team:` pages them all).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub(super) members: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) schedules: Vec<RawSchedule>,
}

/// An on-call schedule: layers of rotations, later layers on top.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSchedule {
    /// Unique across teams; `oncall:` and the API name it.
    #[schemars(schema_with = "s::name")]
    pub(super) name: Spanned<String>,
    /// IANA time zone of its layers (default UTC).
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) time_zone: Option<Spanned<String>>,
    #[schemars(length(min = 1))]
    pub(super) layers: Vec<RawLayer>,
}

/// One rotation.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLayer {
    /// Shown on shifts (default `layer-N`).
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) name: Option<Spanned<String>>,
    /// `daily` or `weekly` (handover on the weekday of `start`).
    #[schemars(with = "RotationName")]
    pub(super) rotation: Spanned<String>,
    /// Local handoff time, HH:MM (default 09:00).
    #[serde(default)]
    #[schemars(schema_with = "s::hh_mm")]
    pub(super) handoff: Option<Spanned<String>>,
    /// A local date (YYYY-MM-DD) on which the first participant takes over.
    #[schemars(with = "String")]
    pub(super) start: Spanned<String>,
    /// People, in rotation order.
    #[schemars(with = "Vec<String>", length(min = 1))]
    pub(super) participants: Vec<Spanned<String>>,
    /// Only within these weekly slots (local time); nobody outside them.
    #[serde(default)]
    pub(super) restrictions: Vec<RawSlot>,
    /// IANA time zone of this layer (default the schedule's); one
    /// restricted layer per region makes follow-the-sun.
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) time_zone: Option<Spanned<String>>,
}

#[derive(JsonSchema)]
#[allow(dead_code)]
#[serde(rename_all = "snake_case")]
enum RotationName {
    Daily,
    Weekly,
}

/// Which action reaches each kind of contact point; the action's
/// templates see the page as `page` (person, channel, address, ack_url).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawContacts {
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) email: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) chat: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) webhook: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) phone: Option<Spanned<String>>,
}

/// Names of people, teams and schedules, and references to check.
#[derive(Default)]
pub(super) struct PeopleNames {
    persons: HashMap<String, Pos>,
    teams: HashMap<String, Pos>,
    schedules: HashMap<String, Pos>,
    /// (kind, name, where): a person, team, schedule (or team) named.
    pub(super) refs: Vec<(RefKind, String, Pos)>,
    contacts_at: Option<Pos>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum RefKind {
    Person,
    Team,
    /// A schedule, or a team (its first schedule).
    Oncall,
    Action,
}

impl Builder {
    pub(super) fn tz(
        &mut self,
        raw: Option<&Spanned<String>>,
        default: chrono_tz::Tz,
    ) -> Option<chrono_tz::Tz> {
        match raw {
            None => Some(default),
            Some(t) => match t.as_str().trim().parse::<chrono_tz::Tz>() {
                Ok(tz) => Some(tz),
                Err(_) => {
                    self.err(
                        t.span(),
                        format!(
                            "unknown time zone {:?} (use an IANA name such as Europe/Berlin or UTC)",
                            t.as_str()
                        ),
                    );
                    None
                }
            },
        }
    }

    fn people_name(&mut self, which: &str, name: &Spanned<String>) -> Option<String> {
        let n = name.as_str().trim().to_string();
        let valid = !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            self.err(
                name.span(),
                format!("{which} name {n:?}: use letters, digits, '-', '_' or '.'"),
            );
            return None;
        }
        let here = self.pos_of(name.span());
        let names = &mut self.people_names;
        let map = match which {
            "person" => &mut names.persons,
            "team" => &mut names.teams,
            _ => &mut names.schedules,
        };
        if let Some(prev) = map.get(&n) {
            let msg = format!("duplicate {which} name {n:?} (first defined at {prev})");
            self.err(name.span(), msg);
            return None;
        }
        if let Some(p) = here {
            map.insert(n.clone(), p);
        }
        Some(n)
    }

    pub(super) fn people_ref(&mut self, kind: RefKind, name: &Spanned<String>) {
        if let Some(pos) = self.pos_of(name.span()) {
            self.people_names
                .refs
                .push((kind, name.as_str().trim().to_string(), pos));
        }
    }

    pub(super) fn people_section(&mut self, node: &Node) {
        for (raw, _, at) in self.items::<RawPerson>(node, "people") {
            let name = self.people_name("person", &raw.name);
            let tz = self.tz(raw.time_zone.as_ref(), chrono_tz::Tz::UTC);
            let text = |v: &Option<Spanned<String>>| {
                v.as_ref()
                    .map(|s| s.as_str().trim().to_string())
                    .filter(|s| !s.is_empty())
            };
            if let Some(e) = &raw.email {
                if !e.as_str().contains('@') {
                    self.err(
                        e.span(),
                        format!("email {:?} is not a mail address", e.as_str()),
                    );
                }
            }
            if let Some(w) = &raw.webhook {
                let u = w.as_str().trim();
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    self.err(
                        w.span(),
                        format!("webhook {u:?}: expected an http:// or https:// URL"),
                    );
                }
            }
            if let (Some(name), Some(tz)) = (name, tz) {
                self.people.persons.push(Person {
                    name,
                    time_zone: tz,
                    email: text(&raw.email),
                    chat: text(&raw.chat),
                    webhook: text(&raw.webhook),
                    phone: text(&raw.phone),
                    at,
                });
            }
        }
    }

    pub(super) fn teams_section(&mut self, node: &Node) {
        for (raw, _, at) in self.items::<RawTeam>(node, "teams") {
            let name = self.people_name("team", &raw.name);
            for m in &raw.members {
                self.people_ref(RefKind::Person, m);
            }
            let mut schedules = Vec::new();
            for rs in &raw.schedules {
                if let (Some(team), Some(s)) = (name.clone(), self.schedule(rs)) {
                    schedules.push(s.name.clone());
                    self.people.schedules.push(Schedule { team, ..s });
                }
            }
            if let Some(name) = name {
                self.people.teams.push(Team {
                    name,
                    members: raw
                        .members
                        .iter()
                        .map(|m| m.as_str().trim().to_string())
                        .collect(),
                    schedules,
                    at,
                });
            }
        }
    }

    fn schedule(&mut self, raw: &RawSchedule) -> Option<Schedule> {
        let name = self.people_name("schedule", &raw.name);
        let tz = self.tz(raw.time_zone.as_ref(), chrono_tz::Tz::UTC);
        if raw.layers.is_empty() {
            self.err(raw.name.span(), "a schedule needs at least one layer");
            return None;
        }
        let mut layers = Vec::new();
        let mut ok = true;
        for (i, l) in raw.layers.iter().enumerate() {
            match self.layer(i, l, tz.unwrap_or(chrono_tz::Tz::UTC)) {
                Some(l) => layers.push(l),
                None => ok = false,
            }
        }
        let at = self.pos_of(raw.name.span());
        match (name, tz, ok) {
            (Some(name), Some(time_zone), true) => Some(Schedule {
                name,
                team: String::new(),
                time_zone,
                layers,
                at,
            }),
            _ => None,
        }
    }

    fn layer(&mut self, i: usize, raw: &RawLayer, default_tz: chrono_tz::Tz) -> Option<Layer> {
        let tz = self.tz(raw.time_zone.as_ref(), default_tz);
        let rotation = match raw.rotation.as_str().trim() {
            "daily" => Some(Rotation::Daily),
            "weekly" => Some(Rotation::Weekly),
            other => {
                self.err(
                    raw.rotation.span(),
                    format!("unknown rotation {other:?}; expected daily or weekly"),
                );
                None
            }
        };
        let handoff = match &raw.handoff {
            None => chrono::NaiveTime::from_hms_opt(9, 0, 0),
            Some(h) => match chrono::NaiveTime::parse_from_str(h.as_str().trim(), "%H:%M") {
                Ok(t) => Some(t),
                Err(_) => {
                    self.err(
                        h.span(),
                        format!("bad handoff {:?}; expected HH:MM (24h)", h.as_str()),
                    );
                    None
                }
            },
        };
        let start = match chrono::NaiveDate::parse_from_str(raw.start.as_str().trim(), "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                self.err(
                    raw.start.span(),
                    format!(
                        "bad start {:?}; expected a date YYYY-MM-DD",
                        raw.start.as_str()
                    ),
                );
                None
            }
        };
        if raw.participants.is_empty() {
            self.err(
                raw.rotation.span(),
                "a layer needs at least one participant",
            );
        }
        for p in &raw.participants {
            self.people_ref(RefKind::Person, p);
        }
        let mut restrictions = Vec::new();
        let mut ok = !raw.participants.is_empty();
        for r in &raw.restrictions {
            match self.slot(r) {
                Some(s) => restrictions.push(s),
                None => ok = false,
            }
        }
        match (tz, rotation, handoff, start, ok) {
            (Some(time_zone), Some(rotation), Some(handoff), Some(start), true) => Some(Layer {
                name: raw
                    .name
                    .as_ref()
                    .map(|n| n.as_str().trim().to_string())
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| format!("layer-{}", i + 1)),
                time_zone,
                rotation,
                handoff,
                start,
                participants: raw
                    .participants
                    .iter()
                    .map(|p| p.as_str().trim().to_string())
                    .collect(),
                restrictions,
            }),
            _ => None,
        }
    }

    pub(super) fn contacts_section(
        &mut self,
        key: &marked_yaml::types::MarkedScalarNode,
        node: &Node,
    ) {
        let here = self.pos_of(key.span());
        if let Some(p) = self.people_names.contacts_at.clone() {
            self.err(
                key.span(),
                format!("`contacts` is set twice (first at {p})"),
            );
            return;
        }
        self.people_names.contacts_at = here.clone();
        let raw: RawContacts = match marked_yaml::from_node(node) {
            Ok(r) => r,
            Err(e) => {
                let span = e
                    .start_mark()
                    .map(marked_yaml::Span::new_start)
                    .unwrap_or(*node.span());
                self.err(
                    &span,
                    super::clean_serde_message(&format!("contacts: {}", e.into_inner())),
                );
                return;
            }
        };
        let name = |v: &Option<Spanned<String>>, b: &mut Builder| {
            v.as_ref().map(|s| {
                b.people_ref(RefKind::Action, s);
                s.as_str().trim().to_string()
            })
        };
        let contacts = Contacts {
            email: name(&raw.email, self),
            chat: name(&raw.chat, self),
            webhook: name(&raw.webhook, self),
            phone: name(&raw.phone, self),
            at: here,
        };
        self.people.contacts = contacts;
    }

    /// References to people, teams, schedules and contact actions, once
    /// every file is read.
    pub(super) fn check_people_refs(&mut self) {
        let refs = std::mem::take(&mut self.people_names.refs);
        for (kind, name, pos) in refs {
            let n = &self.people_names;
            let (ok, what) = match kind {
                RefKind::Person => (n.persons.contains_key(&name), "no `people` entry is named"),
                RefKind::Team => (n.teams.contains_key(&name), "no `teams` entry is named"),
                RefKind::Oncall => (
                    n.schedules.contains_key(&name) || n.teams.contains_key(&name),
                    "no schedule or team is named",
                ),
                RefKind::Action => (
                    self.action_names.contains_key(&name),
                    "no `actions` entry is named",
                ),
            };
            if !ok {
                self.errors.push(RuleError {
                    pos: Some(pos),
                    message: format!("{what} {name:?}"),
                });
            }
        }
    }

    /// Whether a `contacts` entry names this action (so it needs no `on`).
    pub(super) fn contact_action(&self, name: &str) -> bool {
        [
            &self.people.contacts.email,
            &self.people.contacts.chat,
            &self.people.contacts.webhook,
            &self.people.contacts.phone,
        ]
        .iter()
        .any(|a| a.as_deref() == Some(name))
    }
}
