//! Storm and relate rules: incidents about incidents.
//!
//! A [`StormRule`] says "when at least `at_least` incidents of these
//! correlate rules open within `within` and share the values of the `by`
//! labels, open one major (parent) incident over them". Its key is
//! `storm{label="value",...}`, over every `by` label (an incident missing
//! one is no member). Member incidents' pages wait `hold` so that a storm
//! forming within it pages once, from the parent.
//!
//! A [`RelateRule`] says "an incident of rule `cause` explains incidents of
//! rule `symptom` whose labels agree on `on`"; each `on` pair names the
//! cause's label and the symptom's label (the same name when written
//! once). The symptom's pages wait `delay` and are dropped when the cause
//! is acknowledged by then.

use std::time::Duration;

use serde::Serialize;

use crate::model::Labels;

use super::origin::Origin;

/// A compiled `storms` rule.
#[derive(Debug, Clone)]
pub struct StormRule {
    pub name: String,
    /// Correlate rules whose incidents count.
    pub rules: Vec<String>,
    /// Labels the member incidents share (their common labels).
    pub by: Vec<String>,
    pub at_least: usize,
    pub within: Duration,
    /// How long a member incident's pages wait for a storm to form.
    pub hold: Duration,
    /// Name of the compiled title template, if any.
    pub title: Option<String>,
    pub origin: Origin,
}

impl StormRule {
    /// Whether incidents of the correlate rule `rule` count.
    pub fn covers(&self, rule: &str) -> bool {
        self.rules.iter().any(|r| r == rule)
    }

    /// The `by` labels with their values, if the incident has every one.
    pub fn by_labels(&self, labels: &Labels) -> Option<Labels> {
        let mut out = Labels::default();
        for n in &self.by {
            out.insert(n.clone(), labels.get(n)?.to_string());
        }
        Some(out)
    }

    /// `storm{label="value",...}` for an incident's common labels, if it
    /// has every `by` label.
    pub fn key(&self, labels: &Labels) -> Option<String> {
        let by = self.by_labels(labels)?;
        let mut key = format!("{}{{", self.name);
        for (i, (k, v)) in by.iter().enumerate() {
            if i > 0 {
                key.push(',');
            }
            key.push_str(&format!("{k}={v:?}"));
        }
        key.push('}');
        Some(key)
    }
}

/// What a storm title template sees.
#[derive(Serialize)]
pub struct StormTitleContext<'a> {
    /// The `by` labels and their values.
    pub labels: &'a Labels,
    pub group_labels: &'a Labels,
    pub rule: &'a str,
    /// Member incidents when the parent opens.
    pub count: usize,
}

/// The title of a major incident without a template.
pub fn default_storm_title(ctx: &StormTitleContext<'_>) -> String {
    let by: Vec<String> = ctx
        .group_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "Major incident {}: {} incidents ({})",
        ctx.rule,
        ctx.count,
        by.join(", ")
    )
}

/// A compiled `relate` rule.
#[derive(Debug, Clone)]
pub struct RelateRule {
    pub name: String,
    /// Correlate rule of the explaining incident.
    pub cause: String,
    /// Correlate rule of the explained incidents.
    pub symptom: String,
    /// (cause label, symptom label) pairs whose values must be equal.
    pub on: Vec<(String, String)>,
    /// How long the symptom's pages wait for the cause's acknowledgement.
    pub delay: Duration,
    pub origin: Origin,
}

impl RelateRule {
    fn key(&self, labels: &Labels, pick: impl Fn(&(String, String)) -> &str) -> Option<String> {
        let mut key = self.name.clone();
        for pair in &self.on {
            key.push('\u{1f}');
            key.push_str(labels.get(pick(pair))?);
        }
        Some(key)
    }

    /// The join key of a cause incident's common labels.
    pub fn cause_key(&self, labels: &Labels) -> Option<String> {
        self.key(labels, |(c, _)| c)
    }

    /// The join key of a symptom incident's common labels.
    pub fn symptom_key(&self, labels: &Labels) -> Option<String> {
        self.key(labels, |(_, s)| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().copied().collect()
    }

    #[test]
    fn storm_keys_need_every_by_label() {
        let s = StormRule {
            name: "cluster-outage".into(),
            rules: vec!["node-down".into()],
            by: vec!["cluster".into()],
            at_least: 3,
            within: Duration::from_secs(300),
            hold: Duration::from_secs(30),
            title: None,
            origin: Origin::default(),
        };
        assert_eq!(
            s.key(&labels(&[("cluster", "eu"), ("instance", "a")]))
                .as_deref(),
            Some(r#"cluster-outage{cluster="eu"}"#)
        );
        assert_eq!(s.key(&labels(&[("instance", "a")])), None);
        assert!(s.covers("node-down") && !s.covers("other"));
    }

    #[test]
    fn relate_keys_pair_cause_and_symptom_labels() {
        let r = RelateRule {
            name: "r".into(),
            cause: "node-down".into(),
            symptom: "kube-workload".into(),
            on: vec![
                ("node".into(), "node".into()),
                ("instance".into(), "host".into()),
            ],
            delay: Duration::from_secs(60),
            origin: Origin::default(),
        };
        let cause = labels(&[("node", "n1"), ("instance", "h1")]);
        let symptom = labels(&[("node", "n1"), ("host", "h1")]);
        assert_eq!(r.cause_key(&cause), r.symptom_key(&symptom));
        assert!(r.cause_key(&cause).is_some());
        assert_eq!(r.symptom_key(&cause), None);
    }
}
