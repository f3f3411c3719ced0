//! Prioritisation: an incident's impact, urgency and priority from its
//! alerts and the blast-radius rules, kept as counts so a re-prioritisation
//! costs the same for one alert or a hundred thousand. Priority only rises.

use chrono::{DateTime, Utc};

use super::events::Event;
use super::{chrono_dur, Engine};
use crate::model::matcher;
use crate::model::{AlertRecord, IncidentKey, Level, Priority, TimelineKind, Trigger, SYSTEM};
use crate::rules::RuleSet;

/// Counts that make re-prioritisation independent of an incident's size.
#[derive(Debug, Clone)]
pub(super) struct Aggregates {
    /// Alerts per (impact, urgency).
    levels: [[u32; 3]; 3],
    /// Per blast-radius rule: the distinct values of its label, up to the
    /// rule's `at_least` (priority never drops, so more changes nothing;
    /// without the cap an incident over 100,000 hosts kept every name).
    distinct: Vec<std::collections::HashSet<String>>,
    /// Per blast-radius rule: whether it applies to this incident's
    /// correlate rule (its `rules` scope).
    applies: Vec<bool>,
}

impl Aggregates {
    /// Empty counts for an incident of the correlate rule `rule`.
    pub(super) fn new(rules: &RuleSet, rule: &str) -> Aggregates {
        let blast = &rules.prioritize.blast_radius;
        Aggregates {
            levels: [[0; 3]; 3],
            distinct: vec![Default::default(); blast.len()],
            applies: blast.iter().map(|b| b.applies_to(rule)).collect(),
        }
    }

    pub(super) fn add(&mut self, rules: &RuleSet, r: &AlertRecord) {
        self.levels[r.impact as usize][r.urgency as usize] += 1;
        for ((br, values), applies) in rules
            .prioritize
            .blast_radius
            .iter()
            .zip(self.distinct.iter_mut())
            .zip(&self.applies)
        {
            if !applies || values.len() >= br.at_least {
                continue;
            }
            if let Some(v) = r.alert.labels.get(&br.label) {
                if !values.contains(v) && matcher::all_match(&br.matchers, &r.alert.labels) {
                    values.insert(v.to_string());
                }
            }
        }
    }
}

impl Engine {
    /// The incident's aggregates, computed from its alerts on first use and
    /// maintained per added alert afterwards. A major incident's are over
    /// its children's alerts.
    pub(super) fn aggregates(&mut self, key: IncidentKey) -> Option<&mut Aggregates> {
        if !self.live.aggregates.contains_key(&key) {
            let l = self.live.incidents.get(&key)?;
            let mut agg = Aggregates::new(&self.rules, &l.incident.rule);
            for r in l.alerts.values() {
                agg.add(&self.rules, r);
            }
            for c in &l.incident.children {
                if let Some(child) = self.live.incidents.get(c) {
                    for r in child.alerts.values() {
                        agg.add(&self.rules, r);
                    }
                }
            }
            self.live.aggregates.insert(key, agg);
        }
        self.live.aggregates.get_mut(&key)
    }

    /// The priority the rules give an incident now (its alerts' levels and
    /// the blast radius), with the blast-radius reason when it decided the
    /// impact. None for an incident without alerts.
    pub(super) fn rule_priority(
        &mut self,
        key: IncidentKey,
    ) -> Option<(Priority, Level, Level, Option<String>)> {
        let rules = self.rules.clone();
        let agg = self.aggregates(key)?;
        let mut blast: Option<(Level, String)> = None;
        for (br, values) in rules.prioritize.blast_radius.iter().zip(&agg.distinct) {
            if values.len() >= br.at_least && blast.as_ref().is_none_or(|(lv, _)| br.impact < *lv) {
                blast = Some((
                    br.impact,
                    format!("{} distinct {} values", values.len(), br.label),
                ));
            }
        }
        let mut best: Option<(Priority, Level, Level)> = None;
        for i in Level::ALL {
            for u in Level::ALL {
                if agg.levels[i as usize][u as usize] == 0 {
                    continue;
                }
                let impact = match &blast {
                    Some((b, _)) if *b < i => *b,
                    _ => i,
                };
                let p = rules.prioritize.priority(impact, u);
                if best.is_none_or(|(bp, bi, _)| p < bp || (p == bp && impact < bi)) {
                    best = Some((p, impact, u));
                }
            }
        }
        let (p, impact, urgency) = best?;
        let why = match blast {
            Some((b, what)) if b == impact => Some(what),
            _ => None,
        };
        Some((p, impact, urgency, why))
    }

    /// Recomputes priority from the alerts and blast-radius rules; raises
    /// only, and never over a person's override. O(1) in the number of
    /// alerts: works on the aggregates.
    pub(super) fn reprioritize(&mut self, key: IncidentKey, now: DateTime<Utc>) {
        if self
            .live
            .incidents
            .get(&key)
            .is_none_or(|l| l.incident.priority_override.is_some())
        {
            return;
        }
        let Some((p, impact, urgency, blast)) = self.rule_priority(key) else {
            return;
        };
        let Some(l) = self.live.incidents.get(&key) else {
            return;
        };
        let old = l.incident.priority;
        if p >= old && !(p == old && impact < l.incident.impact) {
            return;
        }
        let why = blast
            .map(|what| format!(" (blast radius: {what})"))
            .unwrap_or_default();
        self.set_priority(
            key,
            (p, impact, urgency),
            now,
            SYSTEM,
            format!(
                "priority {old} → {p}: impact {} × urgency {}{why}",
                impact.as_str(),
                urgency.as_str()
            ),
        );
    }

    /// Sets an incident's levels and moves its SLA deadlines to the new
    /// priority's targets, counted from creation. A changed priority is
    /// recorded (`message`) and runs `priority_changed` actions.
    pub(super) fn set_priority(
        &mut self,
        key: IncidentKey,
        (p, impact, urgency): (Priority, Level, Level),
        now: DateTime<Utc>,
        by: &str,
        message: String,
    ) {
        let rules = self.rules.clone();
        let Some(l) = self.live.incidents.get_mut(&key) else {
            return;
        };
        let old = l.incident.priority;
        l.incident.priority = p;
        l.incident.impact = impact;
        l.incident.urgency = urgency;
        let t = rules.sla[p.idx()];
        l.incident.sla.acknowledge_by = l.incident.created_at + chrono_dur(t.acknowledge);
        l.incident.sla.resolve_by = l.incident.created_at + chrono_dur(t.resolve);
        self.dirty.incidents.insert(key);
        if p == old && by == SYSTEM {
            return;
        }
        if p != old {
            self.dirty
                .events
                .push(Event::PriorityChanged { from: old, to: p });
        }
        let kind = if by == SYSTEM {
            TimelineKind::PriorityChanged
        } else {
            TimelineKind::PriorityOverridden
        };
        self.note(key, now, kind, by, message);
        if p != old {
            self.fire(key, Trigger::PriorityChanged, p.as_str(), now);
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::engine::testkit::*;
    use crate::engine::*;

    use crate::model::*;

    #[test]
    fn seed_matrix() {
        let p = crate::rules::prioritize::Prioritize::default();
        use Level::*;
        use Priority::*;
        let want = [
            (High, High, P1),
            (High, Medium, P2),
            (High, Low, P3),
            (Medium, High, P2),
            (Medium, Medium, P3),
            (Medium, Low, P4),
            (Low, High, P3),
            (Low, Medium, P4),
            (Low, Low, P5),
        ];
        for (i, u, pr) in want {
            assert_eq!(p.priority(i, u), pr, "impact {i:?} urgency {u:?}");
        }
    }

    #[test]
    fn incident_takes_the_highest_priority_and_records_the_change() {
        let mut e = NODES.engine();
        let low = [
            ("alertname", "NodeDown"),
            ("cluster", "eu"),
            ("instance", "a"),
            ("severity", "info"),
        ];
        let Outcome::Created(k) = e.ingest_one(firing(&low), NODES.t(0)) else {
            panic!()
        };
        assert_eq!(inc(&e, k).priority, Priority::P5);
        e.take_changes();
        let prod = [
            ("alertname", "NodeDown"),
            ("cluster", "eu"),
            ("instance", "b"),
            ("severity", "critical"),
            ("env", "prod"),
        ];
        e.ingest_one(firing(&prod), NODES.t(1));
        let i = inc(&e, k);
        assert_eq!(
            (i.priority, i.impact, i.urgency),
            (Priority::P1, Level::High, Level::High)
        );
        // SLA follows the new priority, from creation.
        assert_eq!(i.sla.acknowledge_by, NODES.t(5));
        let ws = e.take_changes();
        assert_eq!(kinds(&ws, k), vec!["alert_added", "priority_changed"]);
        assert!(ws.events.contains(&Event::PriorityChanged {
            from: Priority::P5,
            to: Priority::P1
        }));
        // A lower-priority alert later does not lower it.
        let info = [
            ("alertname", "NodeDown"),
            ("cluster", "eu"),
            ("instance", "c"),
            ("severity", "info"),
        ];
        e.ingest_one(firing(&info), NODES.t(2));
        assert_eq!(inc(&e, k).priority, Priority::P1);
    }

    #[test]
    fn blast_radius_raises_impact_as_the_incident_spreads() {
        let mut e = NODES.engine();
        fn mk(i: &str) -> Vec<(&str, &str)> {
            vec![
                ("alertname", "NodeDown"),
                ("cluster", "eu"),
                ("instance", i),
            ]
        }
        let Outcome::Created(k) = e.ingest_one(firing(&mk("a")), NODES.t(0)) else {
            panic!()
        };
        // low impact × medium urgency.
        assert_eq!(inc(&e, k).priority, Priority::P4);
        e.ingest_one(firing(&mk("b")), NODES.t(1));
        assert_eq!(inc(&e, k).priority, Priority::P4);
        e.ingest_one(firing(&mk("c")), NODES.t(2));
        let i = inc(&e, k);
        assert_eq!((i.priority, i.impact), (Priority::P3, Level::Medium));
        let ws = e.take_changes();
        let msg = ws
            .timeline
            .iter()
            .find(|(_, _, e)| e.kind == TimelineKind::PriorityChanged)
            .map(|(_, _, e)| e.message.clone());
        assert!(msg.is_some_and(|m| m.contains("blast radius: 3 distinct instance values")));
        // Past `at_least` the values are not kept: a wide incident does not
        // hold every host name, and its priority stays where it went.
        for (n, host) in ["d", "e", "f"].into_iter().enumerate() {
            e.ingest_one(firing(&mk(host)), NODES.t(3 + n as i64));
        }
        assert_eq!(inc(&e, k).priority, Priority::P3);
        assert_eq!(inc(&e, k).alert_count, 6);
        assert_eq!(e.live.aggregates[&k].distinct[0].len(), 3);
    }
}
