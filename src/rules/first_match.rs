//! First-match-wins rule lists, indexed by `alertname`.
//!
//! Input: rules (matchers and a value) in file order. Output: the value of
//! the first rule whose matchers all match a label set, exactly as a linear
//! scan in file order would find it (a proptest holds the two together),
//! while checking only the rules that can match.

use std::collections::HashMap;

use super::origin::Origin;
use crate::model::matcher::{self, Matcher};
use crate::model::Labels;

/// A first-match-wins list, indexed so a lookup checks only the rules that
/// can match instead of scanning every regex: rules with `alertname="X"` sit
/// in a hash map, rules with `alertname=~"re"` in one [`RegexSet`] evaluated
/// once per lookup, and only rules without a positive `alertname` matcher
/// are checked for every alert. File order still decides among candidates.
///
/// [`RegexSet`]: regex::RegexSet
#[derive(Debug, Clone)]
pub struct FirstMatch<T> {
    rules: Vec<(Vec<Matcher>, T)>,
    /// Where each rule was written (same order as `rules`).
    origins: Vec<Origin>,
    by_alertname: HashMap<String, Vec<usize>>,
    by_regex: Vec<usize>,
    regex_set: Option<regex::RegexSet>,
    unindexed: Vec<usize>,
}

impl<T> Default for FirstMatch<T> {
    fn default() -> Self {
        FirstMatch {
            rules: Vec::new(),
            origins: Vec::new(),
            by_alertname: HashMap::new(),
            by_regex: Vec::new(),
            regex_set: None,
            unindexed: Vec::new(),
        }
    }
}

impl<T> FirstMatch<T> {
    #[cfg(test)]
    pub(crate) fn push(&mut self, matchers: Vec<Matcher>, value: T) {
        self.push_from(matchers, value, Origin::default());
    }

    /// Appends a rule with where it was written.
    pub(crate) fn push_from(&mut self, matchers: Vec<Matcher>, value: T, origin: Origin) {
        let i = self.rules.len();
        let on_name = matchers.iter().find(|m| {
            m.name == "alertname" && (m.exact_value().is_some() || m.regex_source().is_some())
        });
        match on_name {
            Some(m) if m.exact_value().is_some() => self
                .by_alertname
                .entry(m.value.clone())
                .or_default()
                .push(i),
            Some(_) => self.by_regex.push(i),
            None => self.unindexed.push(i),
        }
        self.rules.push((matchers, value));
        self.origins.push(origin);
        self.regex_set = None;
    }

    /// Builds the regex set; called once after the last `push`.
    pub(crate) fn seal(&mut self) {
        let patterns: Vec<String> = self
            .by_regex
            .iter()
            .filter_map(|&i| {
                self.rules[i]
                    .0
                    .iter()
                    .find(|m| m.name == "alertname" && m.regex_source().is_some())
                    .and_then(Matcher::regex_source)
                    .map(|re| format!("^(?:{re})$"))
            })
            .collect();
        // Each pattern already compiled on its own, so the set compiles too;
        // if it ever did not, lookups fall back to checking those rules.
        self.regex_set = regex::RegexSet::new(patterns).ok();
    }

    /// The first rule (in file order) whose matchers all match.
    pub fn first(&self, labels: &Labels) -> Option<&T> {
        self.first_index(labels).map(|i| &self.rules[i].1)
    }

    /// The position in the list of the first rule that matches.
    pub fn first_index(&self, labels: &Labels) -> Option<usize> {
        let name = labels.get("alertname").unwrap_or("");
        let exact: &[usize] = self
            .by_alertname
            .get(name)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let check = |i: usize| matcher::all_match(&self.rules[i].0, labels).then_some(i);
        let regex_hits: Vec<usize> = match &self.regex_set {
            Some(set) => set.matches(name).iter().map(|p| self.by_regex[p]).collect(),
            None => self.by_regex.clone(),
        };
        if regex_hits.is_empty() {
            return merge2(exact, &self.unindexed).find_map(check);
        }
        let mut all: Vec<usize> =
            Vec::with_capacity(exact.len() + regex_hits.len() + self.unindexed.len());
        all.extend_from_slice(exact);
        all.extend_from_slice(&regex_hits);
        all.extend_from_slice(&self.unindexed);
        all.sort_unstable();
        all.into_iter().find_map(check)
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &(Vec<Matcher>, T)> {
        self.rules.iter()
    }

    /// Every rule in file order with where it was written.
    pub fn entries(&self) -> impl Iterator<Item = (&[Matcher], &T, &Origin)> {
        self.rules
            .iter()
            .zip(&self.origins)
            .map(|((m, v), o)| (m.as_slice(), v, o))
    }
}

/// Merges two ascending index lists into one ascending sequence.
fn merge2<'a>(a: &'a [usize], b: &'a [usize]) -> impl Iterator<Item = usize> + 'a {
    let (mut a, mut b) = (a.iter().copied().peekable(), b.iter().copied().peekable());
    std::iter::from_fn(move || match (a.peek().copied(), b.peek().copied()) {
        (Some(x), Some(y)) if x < y => a.next(),
        (Some(_), Some(_)) => b.next(),
        (Some(_), None) => a.next(),
        (None, _) => b.next(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::labels::labels;
    use proptest::prelude::*;

    /// The index must give exactly what a plain in-order scan gives.
    fn scan<'a>(fm: &'a FirstMatch<usize>, l: &Labels) -> Option<&'a usize> {
        fm.iter()
            .find(|(m, _)| matcher::all_match(m, l))
            .map(|(_, v)| v)
    }

    proptest! {
        #[test]
        fn index_agrees_with_a_linear_scan(
            rules in proptest::collection::vec((0usize..4, 0usize..6, 0usize..3), 1..40),
            name in 0usize..6, sev in 0usize..3,
        ) {
            let names = ["A", "B", "C", "AB", "BC", "X"];
            let sevs = ["critical", "warning", "info"];
            let mut fm = FirstMatch::default();
            for (i, (kind, n, s)) in rules.iter().enumerate() {
                let text = match kind {
                    0 => format!("alertname=\"{}\"", names[*n]),
                    1 => format!("alertname=~\"{}.*\"", names[*n]),
                    2 => format!("severity=\"{}\"", sevs[*s]),
                    _ => format!("alertname=~\"{}|X\", severity!=\"{}\"", names[*n], sevs[*s]),
                };
                fm.push(matcher::parse(&text).expect("valid"), i);
            }
            fm.seal();
            let l = labels(&[("alertname", names[name]), ("severity", sevs[sev])]);
            prop_assert_eq!(fm.first(&l), scan(&fm, &l));
        }
    }
}
