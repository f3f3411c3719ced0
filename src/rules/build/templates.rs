//! Rendering each compiled template once against a sample, at load time,
//! so that what would only fail at run time (an unknown filter such as
//! `tojson`, an attribute of a missing value, a field the incident does not
//! have) is a validation error with the template's `file:line:column`.
//!
//! The sample is the real shape: a title sees `labels`, `annotations`,
//! `group_labels` and `rule`; a body sees the event the engine builds
//! ([`crate::rules::actions::event`]) for a sample incident. Label and
//! annotation maps answer every key (alerts carry any labels), so
//! `{{ labels.node or labels.instance }}` passes; everything else must
//! exist, under minijinja's semi-strict undefined behaviour (printing or
//! looking into a missing value fails; testing it in `if` does not).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use minijinja::value::{Enumerator, Object, Value};
use minijinja::{Environment, UndefinedBehavior};

use crate::model::{
    AlertStatus, Incident, IncidentKey, Labels, Level, Priority, Sla, Source, TrackedAlert, Trigger,
};
use crate::rules::actions::event;

/// Renders the template `name` of `env` against its sample.
pub(super) fn try_sample(env: &Environment<'static>, name: &str) -> Result<(), minijinja::Error> {
    let mut strict = env.clone();
    strict.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    let t = strict.get_template(name)?;
    let ctx = if name.starts_with("correlate/") {
        title_sample()
    } else if name.starts_with("storm/") {
        minijinja::context! {
            labels => any_labels(),
            group_labels => any_labels(),
            rule => "sample",
            count => 3,
        }
    } else {
        event_sample()
    };
    t.render(ctx).map(|_| ())
}

/// A label map that has every label: its value is the label's name.
#[derive(Debug)]
struct AnyLabels;

impl Object for AnyLabels {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        key.as_str().map(Value::from)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&["alertname", "instance", "severity"])
    }
}

fn any_labels() -> Value {
    Value::from_object(AnyLabels)
}

fn title_sample() -> Value {
    minijinja::context! {
        labels => any_labels(),
        annotations => any_labels(),
        group_labels => any_labels(),
        rule => "sample",
    }
}

/// A JSON value as a template value, with every `labels` and
/// `annotations` map answering any key.
fn with_any_labels(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Object(map) => Value::from_iter(map.iter().map(|(k, v)| {
            let v = if k == "labels" || k == "annotations" {
                any_labels()
            } else {
                with_any_labels(v)
            };
            (k.clone(), v)
        })),
        serde_json::Value::Array(items) => Value::from_iter(items.iter().map(with_any_labels)),
        other => Value::from_serialize(other),
    }
}

fn event_sample() -> Value {
    let t = DateTime::<Utc>::from_timestamp(1_767_571_200, 0).unwrap_or_default();
    let labels: Labels = [("alertname", "Sample")].into_iter().collect();
    let incident = Incident {
        title: "Sample".into(),
        priority: Priority::P3,
        impact: Level::Medium,
        urgency: Level::Medium,
        rule: "sample".into(),
        group_key: "sample{alertname=\"Sample\"}".into(),
        labels: labels.clone(),
        alert_count: 1,
        firing_count: 1,
        ..Incident::new(
            IncidentKey::new(20260105, 1),
            t,
            Sla {
                acknowledge_by: t,
                resolve_by: t,
                breached: false,
                acknowledge_breached: false,
                resolve_breached: false,
            },
        )
    };
    let alert = TrackedAlert {
        fingerprint: 0,
        labels: labels.clone(),
        annotations: labels,
        status: AlertStatus::Firing,
        starts_at: t,
        ends_at: None,
        generator_url: String::new(),
        source: Source::Generic,
        first_seen_at: t,
        last_seen_at: t,
        repeat_count: 0,
    };
    let e = event(
        Trigger::Opened,
        &incident,
        std::iter::once(&alert),
        "http://127.0.0.1:9095",
    );
    with_any_labels(&e)
}
