//! Correlate rules: which alerts share an incident (the group key) and
//! what the incident is called (the title).
//!
//! Contract: a group key is `rule{label="value",...}` over the rule's
//! `group_by` labels present on the alert, sorted by name; it is stable
//! across restarts and versions (stored on every incident). A title
//! template that fails or renders empty falls back to a plain title.

use std::time::Duration;

use serde::Serialize;

use crate::model::Labels;

/// How a correlate rule builds its group key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// These labels (missing ones count as "").
    Labels(Vec<String>),
    /// Every label: one incident per distinct alert (`group_by: ["..."]`).
    All,
}

/// A compiled `correlate` rule.
#[derive(Debug, Clone)]
pub struct CorrelateRule {
    pub name: String,
    pub group_by: GroupBy,
    pub window: Duration,
    /// Name of the compiled title template, if the rule has one.
    pub title: Option<String>,
    /// The owning team of its incidents.
    pub team: Option<String>,
}

impl CorrelateRule {
    /// The implicit rule for alerts no `correlate` rule matches.
    pub fn fallback() -> CorrelateRule {
        CorrelateRule {
            name: "default".into(),
            group_by: GroupBy::Labels(vec!["alertname".into()]),
            window: Duration::from_secs(3600),
            title: None,
            team: None,
        }
    }

    /// The labels this rule groups on, with their values from `labels`.
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        match &self.group_by {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => names
                .iter()
                .filter_map(|n| labels.get(n).map(|v| (n.as_str(), v)))
                .collect(),
        }
    }

    /// `rule{a="x",b="y"}`: stable, readable, unique per rule and group.
    pub fn group_key(&self, labels: &Labels) -> String {
        let mut key = String::with_capacity(64);
        key.push_str(&self.name);
        key.push('{');
        for (i, (k, v)) in self.group_labels(labels).iter().enumerate() {
            if i > 0 {
                key.push(',');
            }
            key.push_str(k);
            key.push('=');
            key.push_str(&format!("{v:?}"));
        }
        key.push('}');
        key
    }
}

/// What a title template sees.
#[derive(Serialize)]
pub struct TitleContext<'a> {
    pub labels: &'a Labels,
    pub annotations: &'a Labels,
    pub group_labels: &'a Labels,
    pub rule: &'a str,
}

pub(crate) fn default_title(ctx: &TitleContext<'_>) -> String {
    let name = ctx.labels.get("alertname").unwrap_or("alert");
    let rest: Vec<String> = ctx
        .group_labels
        .iter()
        .filter(|(k, _)| *k != "alertname")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if let Some(summary) = ctx.annotations.get("summary") {
        if summary == name {
            return name.to_string();
        }
        return format!("{name}: {summary}");
    }
    if rest.is_empty() {
        name.to_string()
    } else {
        format!("{name} ({})", rest.join(", "))
    }
}
