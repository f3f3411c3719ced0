//! History and similarity: past incidents for "similar incidents" at first
//! response and problem candidates, and the rolling MTTA/MTTR samples.
//!
//! Contract: similar incidents are the same group key first (newest
//! first), then the same rule with the most labels in common (Jaccard
//! ≥ 0.5), at most five. The rolling means cover the metrics window and
//! survive restarts (rebuilt from the store).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{secs, Engine, HashMap};
use crate::model::{Incident, IncidentKey, Labels, Priority};

/// A past incident, as similarity and recurrence need it.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub key: IncidentKey,
    pub group_key: String,
    pub rule: String,
    pub labels: Labels,
    pub created_at: DateTime<Utc>,
}

/// How many recent incidents per rule are kept for label-overlap similarity.
const RECENT_PER_RULE: usize = 256;

/// Most `similar` ids on an incident.
const MAX_SIMILAR: usize = 5;

/// Rolling samples for the MTTA/MTTR gauges, one per incident.
#[derive(Debug, Default, Clone)]
pub struct Rolling {
    acknowledge: BTreeMap<IncidentKey, (DateTime<Utc>, Priority, f64)>,
    resolve: BTreeMap<IncidentKey, (DateTime<Utc>, Priority, f64)>,
}

impl Rolling {
    /// Records the samples an incident's current state gives.
    pub fn observe(&mut self, inc: &Incident) {
        match inc.acknowledged_at {
            Some(at) => {
                self.acknowledge
                    .insert(inc.id, (at, inc.priority, secs(at - inc.created_at)));
            }
            None => {
                self.acknowledge.remove(&inc.id);
            }
        }
        match inc.resolved_at {
            Some(at) => {
                self.resolve
                    .insert(inc.id, (at, inc.priority, secs(at - inc.created_at)));
            }
            None => {
                self.resolve.remove(&inc.id);
            }
        }
    }

    /// Mean acknowledge and resolve seconds per priority over `window`
    /// ending at `now`; `None` where no incident falls in the window.
    pub fn means(&mut self, now: DateTime<Utc>, window: Duration) -> [[Option<f64>; 5]; 2] {
        let start = now - crate::model::wall(window);
        let mut out = [[None; 5]; 2];
        for (i, map) in [&mut self.acknowledge, &mut self.resolve]
            .into_iter()
            .enumerate()
        {
            map.retain(|_, (at, _, _)| *at >= start);
            let mut sum = [0.0f64; 5];
            let mut n = [0u32; 5];
            for (_, p, s) in map.values() {
                sum[p.idx()] += s;
                n[p.idx()] += 1;
            }
            for p in 0..5 {
                if n[p] > 0 {
                    out[i][p] = Some(sum[p] / f64::from(n[p]));
                }
            }
        }
        out
    }
}

/// Past incidents by group key (recurrence, same-group similarity) and the
/// recent ones per rule (label similarity), and the rolling samples.
#[derive(Default)]
pub(super) struct History {
    pub(super) by_group: HashMap<String, VecDeque<(IncidentKey, DateTime<Utc>)>>,
    /// Each recent incident's label pairs as sorted hashes: a similarity
    /// check is then a merge walk over integers, not strings (it runs
    /// against up to [`RECENT_PER_RULE`] incidents for every new one).
    pub(super) recent_by_rule: HashMap<String, VecDeque<(IncidentKey, Vec<u64>)>>,
    pub(super) rolling: Rolling,
}

impl Engine {
    pub(super) fn remember(&mut self, h: HistoryEntry) {
        self.history
            .by_group
            .entry(h.group_key)
            .or_default()
            .push_back((h.key, h.created_at));
        let recent = self.history.recent_by_rule.entry(h.rule).or_default();
        recent.push_back((h.key, pair_hashes(&h.labels)));
        if recent.len() > RECENT_PER_RULE {
            recent.pop_front();
        }
    }

    /// Past incidents like a new one: same group key first (newest first),
    /// then the same rule with the most labels in common (Jaccard ≥ 0.5).
    pub(super) fn similar_to(&self, gk: &str, rule: &str, labels: &Labels) -> Vec<IncidentKey> {
        let mut out: Vec<IncidentKey> = self
            .history
            .by_group
            .get(gk)
            .map(|h| h.iter().rev().map(|(k, _)| *k).take(MAX_SIMILAR).collect())
            .unwrap_or_default();
        if out.len() < MAX_SIMILAR {
            if let Some(recent) = self.history.recent_by_rule.get(rule) {
                let mine = pair_hashes(labels);
                let mut scored: Vec<(f64, IncidentKey)> = recent
                    .iter()
                    .filter(|(k, _)| !out.contains(k))
                    .map(|(k, l)| (jaccard(l, &mine), *k))
                    .filter(|(s, _)| *s >= 0.5)
                    .collect();
                scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));
                let room = MAX_SIMILAR - out.len();
                out.extend(scored.into_iter().take(room).map(|(_, k)| k));
            }
        }
        out
    }
}

/// The label pairs of a set as sorted, distinct hashes (a collision of
/// two 64-bit pair hashes in one set only nudges a similarity score).
fn pair_hashes(labels: &Labels) -> Vec<u64> {
    use std::hash::BuildHasher;
    let h = foldhash::fast::FixedState::with_seed(0x1d_c1de_47d5);
    let mut v: Vec<u64> = labels.iter().map(|pair| h.hash_one(pair)).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Shared label pairs over all label pairs (both sorted).
fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    let (mut i, mut j, mut common) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let union = a.len() + b.len() - common;
    if union == 0 {
        0.0
    } else {
        common as f64 / union as f64
    }
}

#[cfg(test)]
mod tests {

    use std::time::Duration;

    use crate::engine::testkit::*;
    use crate::engine::*;

    use crate::model::*;

    #[test]
    fn label_similarity_counts_equal_pairs_over_all_pairs() {
        use super::{jaccard, pair_hashes};
        use crate::model::labels::labels;
        let a = pair_hashes(&labels(&[("a", "1"), ("b", "2"), ("c", "3")]));
        let same = pair_hashes(&labels(&[("c", "3"), ("b", "2"), ("a", "1")]));
        let half = pair_hashes(&labels(&[("a", "1"), ("b", "2"), ("c", "4")]));
        let other = pair_hashes(&labels(&[("a", "2"), ("x", "1")]));
        assert_eq!(jaccard(&a, &same), 1.0);
        // {a=1, b=2} shared of {a=1, b=2, c=3, c=4}: the value counts.
        assert_eq!(jaccard(&a, &half), 0.5);
        assert_eq!(jaccard(&a, &other), 0.0);
        assert_eq!(jaccard(&[], &[]), 0.0);
    }

    #[test]
    fn rolling_means_per_priority_within_the_window() {
        let mut e = NODES.engine();
        let Outcome::Created(k) = e.ingest_one(firing(A), NODES.t(0)) else {
            panic!()
        };
        e.apply_op(k, Op::Ack, &req("a"), NODES.t(10), no_load)
            .expect("ack");
        e.ingest_one(resolved(A), NODES.t(30));
        let m = e.rolling_means(NODES.t(31), Duration::from_secs(3600));
        assert_eq!(m[0][Priority::P3.idx()], Some(600.0));
        assert_eq!(m[1][Priority::P3.idx()], Some(1800.0));
        assert_eq!(m[0][Priority::P1.idx()], None);
        // Outside the window the samples are gone.
        let m = e.rolling_means(NODES.t(31 + 120), Duration::from_secs(3600));
        assert_eq!(m[1][Priority::P3.idx()], None);
    }

    #[test]
    fn recurring_group_becomes_a_problem_candidate_with_similar_incidents() {
        let mut e = SUPPRESSION.engine();
        let a = [("alertname", "OOM"), ("instance", "p"), ("team", "x")];
        let mut keys = Vec::new();
        for round in 0..3 {
            let base = round * 120;
            let Outcome::Created(k) =
                e.ingest_one(alert(&a, AlertStatus::Firing), SUPPRESSION.t(base))
            else {
                panic!("round {round}")
            };
            e.ingest_one(alert(&a, AlertStatus::Resolved), SUPPRESSION.t(base + 1));
            e.tick(SUPPRESSION.t(base + 3));
            keys.push(k);
        }
        let ws = e.take_changes();
        let third = ws
            .incidents
            .iter()
            .find(|i| i.id == keys[2])
            .expect("third");
        assert!(third.problem_candidate);
        assert_eq!(
            third.similar,
            vec![keys[1].to_string(), keys[0].to_string()]
        );
        assert!(
            !ws.incidents
                .iter()
                .find(|i| i.id == keys[1])
                .expect("second")
                .problem_candidate
        );
        assert_eq!(
            ws.events
                .iter()
                .filter(|e| **e == Event::ProblemCandidate)
                .count(),
            1
        );
        // Label overlap: the same rule, another instance, most labels shared.
        let other = [("alertname", "OOM"), ("instance", "q"), ("team", "x")];
        let Outcome::Created(k) =
            e.ingest_one(alert(&other, AlertStatus::Firing), SUPPRESSION.t(400))
        else {
            panic!()
        };
        let sim = &e.live(k).expect("live").incident.similar;
        assert!(sim.contains(&keys[2].to_string()), "{sim:?}");
    }
}
