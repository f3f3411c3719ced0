//! Label sets: name → value pairs sorted by name, packed.
//!
//! Input: pairs in any order (a later duplicate name wins, as a map insert
//! would), or a JSON/YAML object of string values. Output: a [`Labels`]
//! that iterates sorted by name (the fingerprint order) and serializes as
//! a JSON object. Anything but string values is refused when
//! deserializing. Invariant: names are unique and sorted.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Labels and annotations: name → value, sorted by name (iteration order
/// is the fingerprint order), names unique.
///
/// Packed into one allocation: a live alert holds two of these (labels,
/// annotations), and most of what an alert costs in memory was its label
/// strings. A `Vec<(String, String)>` paid a 48-byte pair plus two heap
/// blocks per label; this pays one block with the text and, per name and
/// value, its end offset in the fewest base-128 digits that fit (two bytes
/// for any set under 16 KiB). The digits are bytes below 0x80, so the whole
/// block is a `str` and every name and value is sliced out of it without
/// re-checking UTF-8. Layout: width `w` (one byte, 1..=5), the pair count
/// in `w` digits, `2 × count` end offsets (relative to the text) in `w`
/// digits each, then `name0 value0 name1 value1 …`. The empty set is the
/// empty string (no allocation). Lookups are binary searches. Changing a
/// set rebuilds it (sets are built once and then read). Serialized as a
/// JSON object, like a map.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels {
    packed: Box<str>,
}

/// Digits of base 128 a number up to `max` needs (1..=5; five cover any
/// `u32`, and request bodies are capped far below that).
fn width(max: usize) -> usize {
    let mut w = 1;
    while w < 5 && max >> (7 * w) != 0 {
        w += 1;
    }
    w
}

/// Appends `n` in `w` base-128 digits, most significant first; each digit
/// is a byte below 0x80, so one ASCII `char`.
fn push_digits(out: &mut String, n: usize, w: usize) {
    for i in (0..w).rev() {
        out.push(char::from(((n >> (7 * i)) & 0x7f) as u8));
    }
}

impl Labels {
    pub fn new() -> Labels {
        Labels::default()
    }

    /// The digit width; 0 for the empty set.
    fn w(&self) -> usize {
        self.packed.as_bytes().first().map_or(0, |&w| w as usize)
    }

    /// The number `w` digits long at byte `at`.
    fn num(&self, at: usize, w: usize) -> usize {
        self.packed.as_bytes()[at..at + w]
            .iter()
            .fold(0, |n, &d| (n << 7) | d as usize)
    }

    /// The digit width and where the text starts, read once per lookup
    /// (every offset is relative to the text).
    fn header(&self) -> (usize, usize) {
        let w = self.w();
        (w, 1 + w + 2 * self.len() * w)
    }

    /// The end of the `j`th name or value, as an index into `packed`.
    fn end(&self, (w, text): (usize, usize), j: usize) -> usize {
        text + self.num(1 + w + j * w, w)
    }

    fn name_in(&self, h: (usize, usize), i: usize) -> &str {
        let start = if i == 0 { h.1 } else { self.end(h, 2 * i - 1) };
        &self.packed[start..self.end(h, 2 * i)]
    }

    fn value_in(&self, h: (usize, usize), i: usize) -> &str {
        &self.packed[self.end(h, 2 * i)..self.end(h, 2 * i + 1)]
    }

    fn name_at(&self, i: usize) -> &str {
        self.name_in(self.header(), i)
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        let h = self.header();
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.name_in(h, mid).cmp(name) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.find(name)
            .ok()
            .map(|i| self.value_in(self.header(), i))
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Sets a value; returns the one it replaced.
    pub fn insert(&mut self, name: String, value: String) -> Option<String> {
        let old = self.get(&name).map(str::to_string);
        let added = std::iter::once((name.as_str(), value.as_str()));
        *self = Labels::build(self.iter().chain(added));
        old
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        let old = self.get(name).map(str::to_string);
        if old.is_some() {
            self.retain(|k, _| k != name);
        }
        old
    }

    /// Keeps the pairs `keep` accepts (asked once per pair, in order);
    /// rebuilds only when one goes.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        let Some(first) = self.iter().position(|(k, v)| !keep(k, v)) else {
            return;
        };
        let rest = self.iter().skip(first + 1).filter(|(k, v)| keep(k, v));
        let kept: Vec<(&str, &str)> = self.iter().take(first).chain(rest).collect();
        *self = Labels::build(kept);
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter {
            labels: self,
            header: self.header(),
            range: 0..self.len(),
        }
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator + Clone {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator + Clone {
        self.iter().map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        match self.w() {
            0 => 0,
            w => self.num(1, w),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.packed.is_empty()
    }

    /// Builds from pairs in any order; a later duplicate name wins (as a
    /// map insert would).
    pub fn build<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Labels {
        let mut pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
        if !pairs.is_sorted_by(|a, b| a.0 < b.0) {
            // Stable: of equal names, the last given ends up last and its
            // value is the one kept.
            pairs.sort_by(|a, b| a.0.cmp(b.0));
            pairs.dedup_by(|later, kept| {
                let same = later.0 == kept.0;
                if same {
                    kept.1 = later.1;
                }
                same
            });
        }
        let mut text = String::with_capacity(pairs.iter().map(|(k, v)| k.len() + v.len()).sum());
        let mut ends = Vec::with_capacity(pairs.len() * 2);
        for (k, v) in pairs {
            text.push_str(k);
            ends.push(text.len());
            text.push_str(v);
            ends.push(text.len());
        }
        Labels::pack(&text, &ends)
    }

    /// One block from the text and the end offset of each name and value.
    fn pack(text: &str, ends: &[usize]) -> Labels {
        if ends.is_empty() {
            return Labels::default();
        }
        let n = ends.len() / 2;
        let w = width(text.len().max(n));
        let mut packed = String::with_capacity(1 + w + ends.len() * w + text.len());
        packed.push(char::from(w as u8));
        push_digits(&mut packed, n, w);
        for &e in ends {
            push_digits(&mut packed, e, w);
        }
        packed.push_str(text);
        Labels {
            packed: packed.into_boxed_str(),
        }
    }

    /// Packs text and ends as a deserializer appended them: kept as is
    /// when already sorted and unique (the common case), else rebuilt.
    fn from_parts(text: &str, ends: &[usize]) -> Labels {
        let raw = Labels::pack(text, ends);
        let sorted = (1..raw.len()).all(|i| raw.name_at(i - 1) < raw.name_at(i));
        if sorted {
            raw
        } else {
            Labels::build(raw.iter())
        }
    }
}

/// The pairs of a [`Labels`], sorted by name.
#[derive(Clone)]
pub struct Iter<'a> {
    labels: &'a Labels,
    header: (usize, usize),
    range: std::ops::Range<usize>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);
    fn next(&mut self) -> Option<Self::Item> {
        let i = self.range.next()?;
        Some((
            self.labels.name_in(self.header, i),
            self.labels.value_in(self.header, i),
        ))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.range.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let i = self.range.next_back()?;
        Some((
            self.labels.name_in(self.header, i),
            self.labels.value_in(self.header, i),
        ))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Labels) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Labels {
    /// Pair by pair, as the sorted map it replaced compared.
    fn cmp(&self, other: &Labels) -> std::cmp::Ordering {
        self.iter().cmp(other.iter())
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl FromIterator<(String, String)> for Labels {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Labels {
        let pairs: Vec<(String, String)> = iter.into_iter().collect();
        Labels::build(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for Labels {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(iter: I) -> Labels {
        Labels::build(iter)
    }
}

impl Extend<(String, String)> for Labels {
    fn extend<I: IntoIterator<Item = (String, String)>>(&mut self, iter: I) {
        let added: Vec<(String, String)> = iter.into_iter().collect();
        let added = added.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        *self = Labels::build(self.iter().chain(added));
    }
}

impl IntoIterator for Labels {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl std::ops::Index<&str> for Labels {
    type Output = str;
    /// Panics when the name is absent, like a map's index.
    fn index(&self, name: &str) -> &str {
        match self.get(name) {
            Some(v) => v,
            None => panic!("no label {name:?}"),
        }
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(m: BTreeMap<String, String>) -> Labels {
        Labels::build(m.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

/// In the OpenAPI description: an object of label names to string values.
impl utoipa::PartialSchema for Labels {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .additional_properties(Some(ObjectBuilder::new().schema_type(Type::String)))
            .description(Some("Label names and their values"))
            .into()
    }
}

impl utoipa::ToSchema for Labels {}

impl Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Labels, D::Error> {
        /// Appends one string to the text being packed: no allocation per
        /// name or value.
        struct Append<'b>(&'b mut String);
        impl<'de> serde::de::DeserializeSeed<'de> for Append<'_> {
            type Value = ();
            fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                d.deserialize_str(self)
            }
        }
        impl<'de> serde::de::Visitor<'de> for Append<'_> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
                self.0.push_str(v);
                Ok(())
            }
        }
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Labels;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Labels, A::Error> {
                let mut text = String::with_capacity(128);
                let mut ends = Vec::with_capacity(2 * m.size_hint().unwrap_or(8));
                while m.next_key_seed(Append(&mut text))?.is_some() {
                    ends.push(text.len());
                    m.next_value_seed(Append(&mut text))?;
                    ends.push(text.len());
                }
                Ok(Labels::from_parts(&text, &ends))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// A label set from literal pairs (tests, tools and examples).
pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::build(pairs.iter().copied())
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
            m.iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
            "sorted by name"
        );
        assert_eq!(l.get("job"), Some("api"));
        assert_eq!(&l["alertname"], "A");
        assert!(l.contains_key("env") && !l.contains_key("nope"));

        let mut l = l;
        assert_eq!(l.insert("instance".into(), "x".into()), None);
        assert_eq!(l.insert("job".into(), "db".into()), Some("api".into()));
        assert_eq!(l.remove("env"), Some(String::new()));
        l.retain(|k, _| k != "instance");
        assert_eq!(l.keys().collect::<Vec<_>>(), ["alertname", "job"]);
        l.extend(pairs(&[("a", "1")]));
        assert_eq!(l.keys().next(), Some("a"));
        assert_eq!(
            format!("{l:?}"),
            r#"{"a": "1", "alertname": "A", "job": "db"}"#
        );
    }

    proptest::proptest! {
        /// The packed set answers every question as a sorted map of the same
        /// pairs would: contents, lookups, edits and the JSON round trip.
        #[test]
        fn packed_labels_match_a_map_model(
            pairs in proptest::collection::vec(("[a-d]{0,3}", "[a-cé\\\\\"]{0,3}"), 0..12),
            edit in ("[a-e]{1,3}", "[x-z]{0,2}"),
        ) {
            let mut model: BTreeMap<String, String> = pairs.iter().cloned().collect();
            let mut l: Labels = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let as_model = |l: &Labels| -> Vec<(String, String)> {
                l.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
            };
            proptest::prop_assert_eq!(as_model(&l), model.clone().into_iter().collect::<Vec<_>>());
            proptest::prop_assert_eq!(l.len(), model.len());
            for (k, v) in &model {
                proptest::prop_assert_eq!(l.get(k), Some(v.as_str()));
            }
            proptest::prop_assert_eq!(l.get("zz"), None);
            let json = serde_json::to_string(&l).expect("json");
            proptest::prop_assert_eq!(&json, &serde_json::to_string(&model).expect("json"));
            let back: Labels = serde_json::from_str(&json).expect("labels");
            proptest::prop_assert_eq!(&back, &l);
            // The same pairs given in reverse, duplicates included: the
            // first given now wins, as a map insert in that order would.
            let rev: Labels = serde_json::from_str(&format!(
                "{{{}}}",
                pairs.iter().rev().map(|(k, v)| format!("{}:{}",
                    serde_json::to_string(k).expect("json"),
                    serde_json::to_string(v).expect("json"))).collect::<Vec<_>>().join(",")
            )).expect("labels");
            let rev_model: BTreeMap<String, String> = pairs.iter().rev().cloned().collect();
            proptest::prop_assert_eq!(as_model(&rev), rev_model.into_iter().collect::<Vec<_>>());

            let (k, v) = edit;
            proptest::prop_assert_eq!(l.insert(k.clone(), v.clone()), model.insert(k.clone(), v));
            proptest::prop_assert_eq!(as_model(&l), model.clone().into_iter().collect::<Vec<_>>());
            proptest::prop_assert_eq!(l.remove(&k), model.remove(&k));
            l.retain(|_, v| !v.is_empty());
            model.retain(|_, v| !v.is_empty());
            proptest::prop_assert_eq!(as_model(&l), model.into_iter().collect::<Vec<_>>());
        }
    }

    #[test]
    fn offsets_take_more_digits_as_the_text_grows() {
        // Widths change at 128 and 16,384 bytes of text (and count).
        for size in [0, 1, 60, 63, 64, 127, 128, 8_000, 16_383, 16_384, 40_000] {
            let long = "é".repeat(size / 2) + &"x".repeat(size % 2);
            let l = labels(&[("b", &long), ("a", "1"), ("c", "")]);
            assert_eq!(l.len(), 3, "size {size}");
            assert_eq!(l.get("b"), Some(long.as_str()), "size {size}");
            assert_eq!(l.get("a"), Some("1"));
            assert_eq!(l.get("c"), Some(""));
            assert_eq!(l.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
            let json = serde_json::to_string(&l).expect("json");
            assert_eq!(serde_json::from_str::<Labels>(&json).expect("labels"), l);
        }
        let many: Vec<(String, String)> = (0..200)
            .map(|i| (format!("n{i:03}"), i.to_string()))
            .collect();
        let l: Labels = many.clone().into_iter().collect();
        assert_eq!(l.len(), 200, "a count over 127 takes two digits");
        assert!(many.iter().all(|(k, v)| l.get(k) == Some(v.as_str())));
        assert!(Labels::new().is_empty() && Labels::new().get("a").is_none());
        assert_eq!(
            Labels::build([]),
            Labels::new(),
            "the empty set has one form"
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
