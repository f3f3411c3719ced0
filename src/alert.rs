//! The normalized alert every source produces.
//!
//! Input: whatever an ingest source parsed. Output: an [`Alert`] with
//! non-empty labels (empty values dropped), UTC timestamps, an explicit
//! firing/resolved status and its Alertmanager-compatible fingerprint.
//! Invariant: an `Alert` is never built with an empty label set.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::fingerprint::fingerprint;

/// Labels and annotations: name → value, sorted by name (iteration order
/// is the fingerprint order), names unique.
///
/// One sorted vector instead of a `BTreeMap`: an alert's handful of labels
/// costs its pairs, not a 544-byte B-tree node per map, which was most of
/// the memory a live alert took. Lookups are binary searches. Serialized
/// as a JSON object, exactly like the map it replaced.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    pub fn new() -> Labels {
        Labels(Vec::new())
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(name))
    }

    pub fn get(&self, name: &str) -> Option<&String> {
        self.find(name).ok().map(|i| &self.0[i].1)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Sets a value; returns the one it replaced.
    pub fn insert(&mut self, name: String, value: String) -> Option<String> {
        match self.find(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (name, value));
                None
            }
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.find(name).ok().map(|i| self.0.remove(i).1)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&String, &mut String) -> bool) {
        self.0.retain_mut(|(k, v)| keep(k, v));
    }

    pub fn iter(
        &self,
    ) -> impl DoubleEndedIterator<Item = (&String, &String)> + ExactSizeIterator + Clone {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator + Clone {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator + Clone {
        self.0.iter().map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Builds from pairs in any order; a later duplicate name wins (as a
    /// map insert would). The vector is trimmed to its length.
    fn from_pairs(mut pairs: Vec<(String, String)>) -> Labels {
        if !pairs.is_sorted_by(|a, b| a.0 < b.0) {
            // Stable: of equal names, the last given ends up last, and
            // moves its value into the one entry kept.
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            pairs.dedup_by(|later, kept| {
                let same = later.0 == kept.0;
                if same {
                    std::mem::swap(&mut later.1, &mut kept.1);
                }
                same
            });
        }
        pairs.shrink_to_fit();
        Labels(pairs)
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl FromIterator<(String, String)> for Labels {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Labels {
        Labels::from_pairs(iter.into_iter().collect())
    }
}

impl Extend<(String, String)> for Labels {
    fn extend<I: IntoIterator<Item = (String, String)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl IntoIterator for Labels {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = (&'a String, &'a String);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, String)>,
        fn(&'a (String, String)) -> (&'a String, &'a String),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl std::ops::Index<&str> for Labels {
    type Output = String;
    /// Panics when the name is absent, like a map's index.
    fn index(&self, name: &str) -> &String {
        match self.get(name) {
            Some(v) => v,
            None => panic!("no label {name:?}"),
        }
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(m: BTreeMap<String, String>) -> Labels {
        // A map iterates sorted and unique: no sort needed.
        Labels::from_pairs(m.into_iter().collect())
    }
}

impl Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Labels, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Labels;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Labels, A::Error> {
                // Most label sets fit: one allocation, trimmed once.
                let mut pairs = Vec::with_capacity(m.size_hint().unwrap_or(8));
                while let Some(pair) = m.next_entry::<String, String>()? {
                    pairs.push(pair);
                }
                Ok(Labels::from_pairs(pairs))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// Firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// Where an alert came from; also the `source` label of ingest metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `POST /api/v2/alerts` (Prometheus, or anything speaking Alertmanager's API).
    AlertmanagerApi,
    /// `POST /api/v1/webhook/alertmanager` (Alertmanager webhook v4).
    AlertmanagerWebhook,
    /// `POST /api/v1/alerts`.
    Generic,
    /// Replayed from a recording (`incidentd replay`, `rules test`).
    Replay,
    /// `POST /v2/enqueue` (PagerDuty Events API v2).
    #[serde(rename = "pagerduty")]
    PagerDuty,
    /// A Kafka topic.
    Kafka,
}

impl Source {
    pub const ALL: [Source; 6] = [
        Source::AlertmanagerApi,
        Source::AlertmanagerWebhook,
        Source::Generic,
        Source::Replay,
        Source::PagerDuty,
        Source::Kafka,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::AlertmanagerApi => "alertmanager_api",
            Source::AlertmanagerWebhook => "alertmanager_webhook",
            Source::Generic => "generic",
            Source::Replay => "replay",
            Source::PagerDuty => "pagerduty",
            Source::Kafka => "kafka",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert after normalization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub fingerprint: u64,
    pub labels: Labels,
    pub annotations: Labels,
    pub status: AlertStatus,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub generator_url: String,
    pub source: Source,
    /// Free-form origin given by the sender (generic API `source` field).
    pub origin: Option<String>,
}

impl Alert {
    /// Builds an alert: drops empty label values, derives the status when the
    /// sender gave none (resolved iff `ends_at` is set and not after `now`),
    /// and computes the fingerprint. Returns `None` for an empty label set.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        mut labels: Labels,
        annotations: Labels,
        status: Option<AlertStatus>,
        starts_at: Option<DateTime<Utc>>,
        ends_at: Option<DateTime<Utc>>,
        generator_url: String,
        source: Source,
        origin: Option<String>,
        now: DateTime<Utc>,
    ) -> Option<Alert> {
        labels.retain(|_, v| !v.is_empty());
        if labels.is_empty() {
            return None;
        }
        let status = status.unwrap_or(match ends_at {
            Some(end) if end <= now => AlertStatus::Resolved,
            _ => AlertStatus::Firing,
        });
        Some(Alert {
            fingerprint: fingerprint(&labels),
            labels,
            annotations,
            status,
            starts_at,
            ends_at,
            generator_url,
            source,
            origin,
        })
    }

    pub fn alertname(&self) -> &str {
        self.labels
            .get("alertname")
            .map(String::as_str)
            .unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn labels_behave_like_the_sorted_map_they_replace() {
        let input = pairs(&[
            ("job", "node"),
            ("alertname", "A"),
            ("job", "api"),
            ("env", ""),
        ]);
        let l: Labels = input.clone().into_iter().collect();
        let m: BTreeMap<String, String> = input.into_iter().collect();
        assert_eq!(
            l,
            Labels::from(m.clone()),
            "a later duplicate wins, as in a map"
        );
        assert_eq!(
            l.iter().collect::<Vec<_>>(),
            m.iter().collect::<Vec<_>>(),
            "sorted by name"
        );
        assert_eq!(l.get("job").map(String::as_str), Some("api"));
        assert_eq!(&l["alertname"], "A");
        assert!(l.contains_key("env") && !l.contains_key("nope"));

        let mut l = l;
        assert_eq!(l.insert("instance".into(), "x".into()), None);
        assert_eq!(l.insert("job".into(), "db".into()), Some("api".into()));
        assert_eq!(l.remove("env"), Some(String::new()));
        l.retain(|k, _| k != "instance");
        assert_eq!(
            l.keys().map(String::as_str).collect::<Vec<_>>(),
            ["alertname", "job"]
        );
        l.extend(pairs(&[("a", "1")]));
        assert_eq!(l.keys().next().map(String::as_str), Some("a"));
        assert_eq!(
            format!("{l:?}"),
            r#"{"a": "1", "alertname": "A", "job": "db"}"#
        );
    }

    #[test]
    fn labels_serialize_as_the_map_did() {
        let m: BTreeMap<String, String> = pairs(&[("b", "2"), ("a", "1")]).into_iter().collect();
        let l = Labels::from(m.clone());
        assert_eq!(
            serde_json::to_string(&l).expect("json"),
            serde_json::to_string(&m).expect("json")
        );
        // Any order in, sorted and unique out; non-strings are refused.
        let back: Labels = serde_json::from_str(r#"{"b":"2","a":"0","a":"1"}"#).expect("labels");
        assert_eq!(back, l);
        assert!(serde_json::from_str::<Labels>(r#"{"a":1}"#).is_err());
        assert!(serde_json::from_str::<Labels>(r#"["a"]"#).is_err());
        let yaml: Labels = serde_yaml_ng::from_str("b: '2'\na: '1'\n").expect("yaml");
        assert_eq!(yaml, l);
    }
}
