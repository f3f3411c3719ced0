//! Rendering each compiled template once against a sample, at load time,
//! so that what would only fail at run time (an unknown filter, an
//! attribute of a missing value, a field the incident does not have, a
//! JSON body that does not parse) is a validation error with the
//! template's `file:line:column`.
//!
//! Template names say what a template is: `correlate/<rule>` (a title),
//! `json/action/<action>…` (a body sent as JSON: rendered with JSON
//! auto-escaping, so every `{{ value }}` writes one complete JSON value and
//! no alert content can break or extend the structure; the result must
//! parse), `html/action/<action>…` (HTML mail: HTML escaping) and
//! `text/action/<action>…` (headers, mail subjects and texts, summaries:
//! no escaping). `tojson` is available everywhere.
//!
//! The sample is the real shape, with hostile content: a title sees
//! `labels`, `annotations`, `group_labels` and `rule`; a body sees the
//! event the engine builds ([`crate::rules::actions::event`]) for a sample
//! incident whose title, labels and annotations hold quotes, backslashes,
//! newlines and a JSON injection attempt. Label and annotation maps answer
//! every key (alerts carry any labels), so `{{ labels.node or
//! labels.instance }}` passes; everything else must exist, under
//! minijinja's semi-strict undefined behaviour (printing or looking into a
//! missing value fails; testing it in `if` does not).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use minijinja::value::{Enumerator, Object, Value};
use minijinja::{AutoEscape, Environment, UndefinedBehavior};

use crate::model::{
    AlertStatus, Incident, IncidentKey, Labels, Level, Priority, Sla, Source, TrackedAlert, Trigger,
};
use crate::rules::actions::event;
use crate::rules::error::Pos;

/// Prefix of templates rendered with JSON auto-escaping.
pub(crate) const JSON: &str = "json/";

/// The environment every rule template is compiled into: JSON
/// auto-escaping for `json/…` templates, none for the others.
pub(super) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|name| {
        if name.starts_with(JSON) {
            AutoEscape::Json
        } else if name.starts_with("html/") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env
}

/// What a template is, from its registered name (for messages).
pub(super) fn kind(name: &str) -> &'static str {
    if name.starts_with("correlate/") || name.starts_with("storm/") {
        "title"
    } else if name.starts_with(JSON) {
        "JSON body"
    } else if name.contains("/header/") {
        "header"
    } else if name.starts_with("html/") {
        "HTML"
    } else if name.starts_with("url/") {
        "URL"
    } else {
        "text"
    }
}

/// Why a template fails on its sample, and on which line of the template.
pub(super) struct SampleError {
    pub message: String,
    pub line: Option<usize>,
}

/// Renders the template `name` of `env` against its sample; a JSON body
/// must also parse.
pub(super) fn try_sample(env: &Environment<'static>, name: &str) -> Result<(), SampleError> {
    let mut strict = env.clone();
    strict.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    let failed = |e: minijinja::Error| SampleError {
        line: e.line(),
        message: e.to_string(),
    };
    let t = strict.get_template(name).map_err(failed)?;
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
    let out = t.render(ctx).map_err(failed)?;
    if name.starts_with(JSON) {
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&out) {
            let hint = if t.source().contains("\"{{") {
                "; with JSON escaping `{{ value }}` writes a whole JSON value, quotes included: \
                 write {\"summary\": {{ incident.title }}}, not \"{{ incident.title }}\" \
                 (join texts with `~`, or use `content_type` for a body that is not JSON)"
            } else {
                ""
            };
            return Err(SampleError {
                line: None,
                message: format!(
                    "the rendered body is not valid JSON ({e}): {}{hint}",
                    shorten(&out, 160)
                ),
            });
        }
    }
    Ok(())
}

fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Where line `line` (1-based) of a template starting at `pos` is: a block
/// scalar (`|` or `>`) starts on the line after its indicator.
pub(super) fn at_line(pos: &Pos, line: usize, block: bool) -> Pos {
    let offset = if block { line } else { line.saturating_sub(1) };
    if offset == 0 {
        return pos.clone();
    }
    Pos {
        file: pos.file.clone(),
        line: pos.line + offset,
        column: 1,
    }
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

/// Like [`AnyLabels`], but each value tries to break out of a JSON string.
#[derive(Debug)]
struct HostileLabels;

/// What every label and annotation of the event sample holds (after its
/// name).
pub(crate) const HOSTILE: &str = "\" \\ \n\t, \"injected\": \"yes\" </b> {{ x }}";

impl Object for HostileLabels {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        key.as_str().map(|k| Value::from(format!("{k}{HOSTILE}")))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&["alertname", "instance", "severity"])
    }
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
                Value::from_object(HostileLabels)
            } else if k == "external_refs" {
                // Every action may have captured a reference.
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
        title: format!("Sample{HOSTILE}"),
        timeline_len: 1,
        external_refs: [("ticket".to_string(), "4711".to_string())]
            .into_iter()
            .collect(),
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
        generator_url: "".into(),
        source: Source::Generic,
        first_seen_at: t,
        last_seen_at: t,
        repeat_count: 0,
    };
    let mut e = event(
        Trigger::Opened,
        &incident,
        std::iter::once(&alert),
        "http://127.0.0.1:9095",
    );
    // What a `contacts` action sees of the person it pages.
    e["page"] = serde_json::json!({
        "person": {"name": "sample", "time_zone": "UTC", "email": "sample@example.com",
                   "chat": "@sample", "webhook": "http://127.0.0.1/sample", "phone": "+10000000000"},
        "channel": "email", "address": "sample@example.com", "level": 1, "repeat": 0,
        "via": "oncall sample", "team": "sample",
        "ack_url": "http://127.0.0.1:9095/ack/sample", "expires_at": "2026-01-05T00:00:00Z",
    });
    with_any_labels(&e)
}
