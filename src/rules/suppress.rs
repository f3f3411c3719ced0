//! Suppression rules: inhibition and maintenance windows, and the check
//! that decides whether a firing alert opens an incident or is kept out.
//!
//! Input: an alert's labels, the clock, the silences created over the API,
//! the maintenance windows and inhibit rules from the rule files, and the
//! set of firing alerts that can inhibit others ([`InhibitIndex`]). Output:
//! `Some(Suppression)` naming the reason and what caused it, or `None`.
//! Order of checks: maintenance, silence, inhibition (the first that
//! applies is reported). Semantics follow Alertmanager: matchers anchored,
//! a missing label is "", inhibition needs equal values of the `equal`
//! labels (missing on both sides counts as equal), and an alert that
//! matches both the source and the target side of a rule is not inhibited
//! by another such alert.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Datelike, NaiveTime, TimeZone, Utc, Weekday};

use super::error::Pos;
use crate::model::fingerprint;
use crate::model::matcher::{self, Matcher};
use crate::model::{Labels, Reason, Silence, Suppression};

/// A compiled `inhibit` rule.
#[derive(Debug, Clone)]
pub struct InhibitRule {
    pub name: String,
    pub source: Vec<Matcher>,
    pub target: Vec<Matcher>,
    pub equal: Vec<String>,
    /// Where it was written.
    pub at: Option<Pos>,
}

impl InhibitRule {
    /// A 64-bit hash of the values of the `equal` labels (missing labels
    /// count as ""), each with its length so no two lists of values run
    /// together. Sources are indexed by it, as Alertmanager's inhibitor
    /// indexes them by a fingerprint of those labels: a string key per
    /// source cost two heap blocks per firing source alert.
    pub fn equal_hash(&self, labels: &Labels) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = foldhash::quality::FixedState::with_seed(0x0001_dc1d_e17d).build_hasher();
        for l in &self.equal {
            let v = labels.get(l).unwrap_or("");
            h.write_usize(v.len());
            h.write(v.as_bytes());
        }
        h.finish()
    }
}

/// When a maintenance window is open.
#[derive(Debug, Clone)]
pub enum Schedule {
    Once {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    Weekly {
        tz: chrono_tz::Tz,
        slots: Vec<WeeklySlot>,
    },
}

/// A weekly slot in local time; `end <= start` means it runs past midnight.
#[derive(Debug, Clone)]
pub struct WeeklySlot {
    pub days: Vec<Weekday>,
    pub start: NaiveTime,
    pub end: NaiveTime,
}

/// A compiled `maintenance` window (change management).
#[derive(Debug, Clone)]
pub struct MaintenanceWindow {
    pub name: String,
    pub matchers: Vec<Matcher>,
    pub schedule: Schedule,
    /// Where it was written.
    pub at: Option<Pos>,
}

impl Schedule {
    /// The schedule as a person reads it: `2026-11-23T14:00:00+00:00 to
    /// …` or `weekly sun 02:00-04:00 (UTC)`.
    pub fn describe(&self) -> String {
        match self {
            Schedule::Once { start, end } => {
                format!("{} to {}", start.to_rfc3339(), end.to_rfc3339())
            }
            Schedule::Weekly { tz, slots } => {
                let parts: Vec<String> = slots
                    .iter()
                    .map(|s| {
                        let days: Vec<String> = s
                            .days
                            .iter()
                            .map(|d| d.to_string().to_ascii_lowercase())
                            .collect();
                        format!(
                            "{} {}-{}",
                            days.join(","),
                            s.start.format("%H:%M"),
                            s.end.format("%H:%M")
                        )
                    })
                    .collect();
                format!("weekly {} ({tz})", parts.join("; "))
            }
        }
    }
}

impl MaintenanceWindow {
    pub fn active(&self, now: DateTime<Utc>) -> bool {
        match &self.schedule {
            Schedule::Once { start, end } => *start <= now && now < *end,
            Schedule::Weekly { tz, slots } => {
                let local = tz.from_utc_datetime(&now.naive_utc());
                let (day, time) = (local.weekday(), local.time());
                slots.iter().any(|s| {
                    if s.start < s.end {
                        s.days.contains(&day) && s.start <= time && time < s.end
                    } else {
                        (s.days.contains(&day) && time >= s.start)
                            || (s.days.contains(&day.pred()) && time < s.end)
                    }
                })
            }
        }
    }

    pub fn covers(&self, labels: &Labels, now: DateTime<Utc>) -> bool {
        self.active(now) && matcher::all_match(&self.matchers, labels)
    }
}

/// Firing alerts that can inhibit others, indexed per rule and `equal` key.
/// Per key: sources that do not match the rule's target side, and sources
/// that match both sides (which only inhibit alerts that are pure targets).
#[derive(Debug, Default, Clone)]
pub struct InhibitIndex {
    /// (rule, hash of the `equal` values) → its sources.
    sources: HashMap<(usize, u64), Members>,
    /// Source fingerprint → the keys it is under.
    of_alert: HashMap<u64, Vec<(usize, u64)>>,
}

/// The sources under one key. Most keys have one (an `equal` list that
/// names the instance gives every source its own key), so one source is
/// held inline and two sets only once there are more.
#[derive(Debug, Clone)]
enum Members {
    /// One source; `both`: it matches the target side too.
    One { fp: u64, both: bool },
    /// (pure sources, two-sided ones).
    Many(Box<(HashSet<u64>, HashSet<u64>)>),
}

impl Members {
    fn insert(&mut self, fp: u64, both: bool) {
        match self {
            Members::One { fp: f, both: b } if *f == fp => *b = both,
            Members::One { fp: f, both: b } => {
                let mut sets: (HashSet<u64>, HashSet<u64>) = Default::default();
                for (x, two) in [(*f, *b), (fp, both)] {
                    if two {
                        sets.1.insert(x)
                    } else {
                        sets.0.insert(x)
                    };
                }
                *self = Members::Many(Box::new(sets));
            }
            Members::Many(sets) => {
                if both {
                    sets.1.insert(fp);
                } else {
                    sets.0.insert(fp);
                }
            }
        }
    }

    /// Removes a source; true when none is left.
    fn remove(&mut self, fp: u64) -> bool {
        match self {
            Members::One { fp: f, .. } => *f == fp,
            Members::Many(sets) => {
                sets.0.remove(&fp);
                sets.1.remove(&fp);
                sets.0.is_empty() && sets.1.is_empty()
            }
        }
    }

    /// A source other than `fp`: a pure one first, then (unless the
    /// target is itself two-sided) a two-sided one.
    fn other_than(&self, fp: u64, two_sided: bool) -> Option<u64> {
        match self {
            Members::One { fp: s, both } => (*s != fp && (!*both || !two_sided)).then_some(*s),
            Members::Many(sets) => sets
                .0
                .iter()
                .find(|s| **s != fp)
                .or_else(|| {
                    if two_sided {
                        None
                    } else {
                        sets.1.iter().find(|s| **s != fp)
                    }
                })
                .copied(),
        }
    }
}

impl InhibitIndex {
    /// Registers a firing alert as a potential source.
    pub fn add(&mut self, rules: &[InhibitRule], fp: u64, labels: &Labels) {
        if self.of_alert.contains_key(&fp) {
            return;
        }
        let mut keys = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            if matcher::all_match(&r.source, labels) {
                let key = (i, r.equal_hash(labels));
                let both = matcher::all_match(&r.target, labels);
                match self.sources.entry(key) {
                    std::collections::hash_map::Entry::Occupied(mut o) => {
                        o.get_mut().insert(fp, both)
                    }
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(Members::One { fp, both });
                    }
                }
                keys.push(key);
            }
        }
        if !keys.is_empty() {
            self.of_alert.insert(fp, keys);
        }
    }

    /// Removes an alert that stopped firing; true if it was a source.
    pub fn remove(&mut self, fp: u64) -> bool {
        let Some(keys) = self.of_alert.remove(&fp) else {
            return false;
        };
        for key in keys {
            if self.sources.get_mut(&key).is_some_and(|m| m.remove(fp)) {
                self.sources.remove(&key);
            }
        }
        true
    }

    pub fn clear(&mut self) {
        self.sources.clear();
        self.of_alert.clear();
    }

    /// The first rule that inhibits an alert, with the inhibiting alert.
    pub fn inhibitor(
        &self,
        rules: &[InhibitRule],
        fp: u64,
        labels: &Labels,
    ) -> Option<(usize, u64)> {
        rules
            .iter()
            .enumerate()
            .filter(|(_, r)| matcher::all_match(&r.target, labels))
            .find_map(|(i, r)| self.source_for(i, r, fp, labels).map(|src| (i, src)))
    }

    /// A firing alert that inhibits this target alert under rule `i` (`r`),
    /// if any; the caller has checked that the alert is a target of `r`.
    pub fn source_for(&self, i: usize, r: &InhibitRule, fp: u64, labels: &Labels) -> Option<u64> {
        let members = self.sources.get(&(i, r.equal_hash(labels)))?;
        members.other_than(fp, matcher::all_match(&r.source, labels))
    }
}

/// Checks maintenance windows, then silences, then inhibition.
pub fn check(
    maintenance: &[MaintenanceWindow],
    silences: &BTreeMap<String, Silence>,
    inhibit_rules: &[InhibitRule],
    index: &InhibitIndex,
    fp: u64,
    labels: &Labels,
    now: DateTime<Utc>,
) -> Option<Suppression> {
    if let Some(w) = maintenance.iter().find(|w| w.covers(labels, now)) {
        return Some(Suppression {
            reason: Reason::Maintenance,
            by: w.name.clone(),
            inhibited_by: None,
        });
    }
    if let Some(s) = silences.values().find(|s| s.mutes(labels, now)) {
        return Some(Suppression {
            reason: Reason::Silence,
            by: s.id.clone(),
            inhibited_by: None,
        });
    }
    index
        .inhibitor(inhibit_rules, fp, labels)
        .map(|(i, src)| Suppression {
            reason: Reason::Inhibit,
            by: inhibit_rules[i].name.clone(),
            inhibited_by: Some(fingerprint::to_hex(src)),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fingerprint::fingerprint;
    use crate::model::labels::labels;
    use crate::model::matcher;

    fn rule(src: &str, tgt: &str, equal: &[&str]) -> InhibitRule {
        InhibitRule {
            name: "r".into(),
            source: matcher::parse(src).expect("valid"),
            target: matcher::parse(tgt).expect("valid"),
            equal: equal.iter().map(|s| s.to_string()).collect(),
            at: None,
        }
    }

    proptest::proptest! {
        /// The index answers as a plain list of firing sources would, as
        /// sources come and go under shared and separate keys (one source
        /// held inline, more in sets), for pure and two-sided alerts.
        #[test]
        fn inhibit_index_matches_a_list_of_sources(
            ops in proptest::collection::vec((0u8..12, 0u8..3, 0u8..3, proptest::bool::ANY), 1..60),
        ) {
            // page: pure source; critical: source and target; warning: pure target.
            let rules = vec![rule(r#"severity=~"page|critical""#, r#"severity=~"critical|warning""#, &["g"])];
            let sev = ["page", "critical", "warning"];
            let alert = |n: u8, g: u8, s: u8| labels(&[("n", &n.to_string()), ("g", &g.to_string()), ("severity", sev[s as usize])]);
            let mut idx = InhibitIndex::default();
            let mut firing: BTreeMap<u64, Labels> = BTreeMap::new();
            for (n, g, s, add) in ops {
                let l = alert(n, g, s);
                let fp = fingerprint(&l);
                if add && s != 2 {
                    idx.add(&rules, fp, &l);
                    firing.entry(fp).or_insert(l);
                } else {
                    proptest::prop_assert_eq!(idx.remove(fp), firing.remove(&fp).is_some());
                }
                for tn in 0..3u8 {
                    for tg in 0..3u8 {
                        for ts in 1..3u8 {
                            let t = alert(tn, tg, ts);
                            let tfp = fingerprint(&t);
                            let two_sided = ts == 1;
                            let expect = firing.iter().any(|(sfp, sl)| {
                                *sfp != tfp && sl.get("g") == t.get("g")
                                    && (sl.get("severity") == Some("page") || !two_sided)
                            });
                            proptest::prop_assert_eq!(idx.inhibitor(&rules, tfp, &t).is_some(), expect);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn equal_values_hash_apart_unless_equal() {
        let r = rule(
            r#"severity="critical""#,
            r#"severity="warning""#,
            &["a", "b"],
        );
        let h = |p: &[(&str, &str)]| r.equal_hash(&labels(p));
        assert_eq!(
            h(&[("a", "x"), ("b", "y"), ("c", "1")]),
            h(&[("a", "x"), ("b", "y")])
        );
        // Values do not run together across labels.
        assert_ne!(h(&[("a", "xy"), ("b", "z")]), h(&[("a", "x"), ("b", "yz")]));
        assert_ne!(
            h(&[("a", "x\u{ff}"), ("b", "")]),
            h(&[("a", "x"), ("b", "\u{ff}")])
        );
        // A missing label is "", on both sides.
        assert_eq!(h(&[("a", "x")]), h(&[("a", "x"), ("b", "")]));
        assert_ne!(h(&[("a", "x")]), h(&[("b", "x")]));
    }

    #[test]
    fn inhibition_needs_equal_labels() {
        let rules = vec![rule(
            r#"severity="critical""#,
            r#"severity="warning""#,
            &["cluster"],
        )];
        let mut idx = InhibitIndex::default();
        let src = labels(&[
            ("alertname", "Down"),
            ("severity", "critical"),
            ("cluster", "eu"),
        ]);
        idx.add(&rules, fingerprint(&src), &src);
        let same = labels(&[
            ("alertname", "Slow"),
            ("severity", "warning"),
            ("cluster", "eu"),
        ]);
        let other = labels(&[
            ("alertname", "Slow"),
            ("severity", "warning"),
            ("cluster", "us"),
        ]);
        assert_eq!(
            idx.inhibitor(&rules, fingerprint(&same), &same),
            Some((0, fingerprint(&src)))
        );
        assert_eq!(idx.inhibitor(&rules, fingerprint(&other), &other), None);
        assert!(idx.remove(fingerprint(&src)));
        assert_eq!(idx.inhibitor(&rules, fingerprint(&same), &same), None);
    }

    #[test]
    fn missing_equal_labels_on_both_sides_count_as_equal() {
        let rules = vec![rule(
            r#"severity="critical""#,
            r#"severity="warning""#,
            &["zone"],
        )];
        let mut idx = InhibitIndex::default();
        let src = labels(&[("alertname", "A"), ("severity", "critical")]);
        idx.add(&rules, 1, &src);
        let tgt = labels(&[("alertname", "B"), ("severity", "warning")]);
        assert!(idx.inhibitor(&rules, 2, &tgt).is_some());
    }

    #[test]
    fn an_alert_matching_both_sides_is_not_inhibited_by_another_such_alert() {
        // Source and target both match alertname=~"X.*".
        let rules = vec![rule(r#"alertname=~"X.*""#, r#"alertname=~"X.*""#, &[])];
        let mut idx = InhibitIndex::default();
        let a = labels(&[("alertname", "X1")]);
        let b = labels(&[("alertname", "X2")]);
        idx.add(&rules, 1, &a);
        idx.add(&rules, 2, &b);
        assert_eq!(idx.inhibitor(&rules, 1, &a), None);
        assert_eq!(idx.inhibitor(&rules, 2, &b), None);
        // A pure target is inhibited by a two-sided source.
        let rules2 = vec![rule(r#"alertname=~"X.*""#, r#"team="db""#, &[])];
        let mut idx2 = InhibitIndex::default();
        idx2.add(&rules2, 1, &labels(&[("alertname", "X1"), ("team", "db")]));
        assert_eq!(
            idx2.inhibitor(&rules2, 3, &labels(&[("alertname", "Y"), ("team", "db")])),
            Some((0, 1))
        );
    }

    #[test]
    fn an_alert_does_not_inhibit_itself() {
        let rules = vec![rule(r#"a="1""#, r#"b="2""#, &[])];
        let mut idx = InhibitIndex::default();
        let l = labels(&[("a", "1"), ("b", "2")]);
        idx.add(&rules, 7, &l);
        assert_eq!(idx.inhibitor(&rules, 7, &l), None);
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("valid time")
    }

    #[test]
    fn weekly_windows_in_a_time_zone_including_past_midnight() {
        let w = MaintenanceWindow {
            name: "patching".into(),
            matchers: matcher::parse(r#"env="staging""#).expect("valid"),
            schedule: Schedule::Weekly {
                tz: chrono_tz::Europe::Berlin,
                slots: vec![WeeklySlot {
                    days: vec![Weekday::Sat],
                    start: NaiveTime::from_hms_opt(23, 0, 0).expect("valid"),
                    end: NaiveTime::from_hms_opt(2, 0, 0).expect("valid"),
                }],
            },
            at: None,
        };
        // 2026-11-28 is a Saturday; Berlin is UTC+1 in November.
        assert!(!w.active(at("2026-11-28T21:59:00Z")));
        assert!(w.active(at("2026-11-28T22:00:00Z")));
        assert!(
            w.active(at("2026-11-29T00:59:00Z")),
            "Sunday 01:59 local is still inside"
        );
        assert!(!w.active(at("2026-11-29T01:00:00Z")));
        let staging = labels(&[("env", "staging")]);
        assert!(w.covers(&staging, at("2026-11-28T23:00:00Z")));
        assert!(!w.covers(&labels(&[("env", "prod")]), at("2026-11-28T23:00:00Z")));
    }
}
