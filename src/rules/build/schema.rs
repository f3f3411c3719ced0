//! The JSON Schema of a rule file, generated from the types the builder
//! reads ([`super::raw`]) plus the section structure below, for the
//! sections the builder walks by hand (`prioritize`, `sla`).
//!
//! The schema accepts what the builder accepts, with these values checked
//! as far as a schema can: names non-empty, durations in humantime syntax,
//! categories, levels, priorities, triggers, days and presets from their
//! fixed lists, minimums, and "exactly one of" choices. What needs the
//! whole set (matcher syntax, unique names, references between sections,
//! templates) is left to `incidentd rules check`.

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;

use super::raw::*;
use crate::model::{Trigger, CATEGORIES};
use crate::rules::schema::DURATION_PATTERN;

/// A rule file: a mapping of sections, each optional.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "incidentd rule file")]
#[allow(dead_code)]
pub(super) struct RuleFile {
    /// Which incident an alert belongs to; first match wins.
    #[serde(default)]
    correlate: Vec<RawCorrelate>,
    /// The category of an alert; first match wins, else `other`.
    #[serde(default)]
    classify: Vec<RawClassify>,
    /// Priority = impact × urgency, looked up in the matrix.
    #[serde(default)]
    prioritize: Option<Prioritize>,
    /// Acknowledge and resolve targets per priority.
    #[serde(default)]
    sla: Option<Sla>,
    /// While a source alert fires, matching targets open no incident.
    #[serde(default)]
    inhibit: Vec<RawInhibit>,
    /// Planned work: matching alerts open no incident while a window is open.
    #[serde(default)]
    maintenance: Vec<RawMaintenance>,
    #[serde(default)]
    flapping: Option<RawFlapping>,
    #[serde(default)]
    problems: Option<RawProblems>,
    /// Automated first response.
    #[serde(default)]
    actions: Vec<RawAction>,
    /// Raise an incident's escalation level while nobody acknowledges it.
    #[serde(default)]
    escalations: Vec<RawEscalation>,
    /// Many incidents sharing label values become one major incident.
    #[serde(default)]
    storms: Vec<RawStorm>,
    /// Incidents of one rule explain incidents of another.
    #[serde(default)]
    relate: Vec<RawRelate>,
    /// Dead man's switches: signals that must keep coming.
    #[serde(default)]
    heartbeats: Vec<RawHeartbeat>,
    /// People who can be paged, with their contact points.
    #[serde(default)]
    people: Vec<super::people::RawPerson>,
    /// Teams: members and on-call schedules.
    #[serde(default)]
    teams: Vec<super::people::RawTeam>,
    /// Which action reaches each kind of contact point.
    #[serde(default)]
    contacts: Option<super::people::RawContacts>,
}

/// The `prioritize` section.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Prioritize {
    /// How much business is stopped right now; first match wins.
    #[serde(default)]
    urgency: Vec<UrgencyRule>,
    /// How widely it affects users: plain rules (first match wins) and
    /// blast-radius rules (all checked).
    #[serde(default)]
    impact: Vec<ImpactRule>,
    /// Impact when no plain impact rule matches (default medium).
    #[serde(default)]
    #[schemars(schema_with = "level")]
    default_impact: Option<String>,
    /// Urgency when no urgency rule matches (default medium).
    #[serde(default)]
    #[schemars(schema_with = "level")]
    default_urgency: Option<String>,
    /// impact → urgency → P1..P5; all 9 cells.
    #[serde(default)]
    matrix: Option<Matrix>,
}

/// An urgency rule.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(super) struct UrgencyRule {
    /// Free text for the reader.
    #[serde(default)]
    name: Option<String>,
    /// Alertmanager matchers; omitted: every alert.
    #[serde(default, rename = "match")]
    #[schemars(schema_with = "matchers")]
    matchers: Vec<String>,
    #[schemars(schema_with = "level")]
    urgency: String,
}

/// An impact rule: plain, or blast radius.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub(super) enum ImpactRule {
    Plain(PlainImpact),
    BlastRadius(BlastImpact),
}

/// A plain impact rule: the impact of the alerts it matches.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(super) struct PlainImpact {
    /// Free text for the reader.
    #[serde(default)]
    name: Option<String>,
    /// Alertmanager matchers; omitted: every alert.
    #[serde(default, rename = "match")]
    #[schemars(schema_with = "matchers")]
    matchers: Vec<String>,
    #[schemars(schema_with = "level")]
    impact: String,
}

/// A blast-radius rule: once an incident's alerts (matching `match`) carry
/// `at_least` distinct values of `distinct`, its alerts get this impact.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(super) struct BlastImpact {
    /// Free text for the reader.
    #[serde(default)]
    name: Option<String>,
    /// Which of the incident's alerts count; omitted: all.
    #[serde(default, rename = "match")]
    #[schemars(schema_with = "matchers")]
    matchers: Vec<String>,
    /// The label whose distinct values are counted.
    #[schemars(length(min = 1))]
    distinct: String,
    #[schemars(range(min = 1))]
    at_least: usize,
    #[schemars(schema_with = "level")]
    impact: String,
    /// Only in incidents of these correlate rules; omitted: every incident.
    #[serde(default)]
    rules: Vec<String>,
}

/// impact → urgency → priority.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Matrix {
    high: MatrixRow,
    medium: MatrixRow,
    low: MatrixRow,
}

/// urgency → priority.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct MatrixRow {
    #[schemars(schema_with = "priority")]
    high: String,
    #[schemars(schema_with = "priority")]
    medium: String,
    #[schemars(schema_with = "priority")]
    low: String,
}

/// Targets per priority; priorities left out keep the built-in targets.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Sla {
    #[serde(default, rename = "P1")]
    p1: Option<RawSla>,
    #[serde(default, rename = "P2")]
    p2: Option<RawSla>,
    #[serde(default, rename = "P3")]
    p3: Option<RawSla>,
    #[serde(default, rename = "P4")]
    p4: Option<RawSla>,
    #[serde(default, rename = "P5")]
    p5: Option<RawSla>,
}

/// The schema of a rule file, JSON Schema draft 7 (what editors support best).
pub(crate) fn rule_file() -> Schema {
    schemars::generate::SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<RuleFile>()
}

// ---------------------------------------------------------------------------
// Value rules, used by `schema_with` and `transform` in `raw`.

fn enum_of<'a>(values: impl IntoIterator<Item = &'a str>) -> Schema {
    let v: Vec<&str> = values.into_iter().collect();
    json_schema!({"type": "string", "enum": v})
}

pub(crate) fn name(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "minLength": 1, "pattern": r"\S"})
}

pub(crate) fn matchers(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": {"type": "string"},
        "description": "Alertmanager matchers, e.g. 'severity=~\"critical|page\"'; every one must match",
    })
}

pub(crate) fn matchers_required(g: &mut SchemaGenerator) -> Schema {
    let mut s = matchers(g);
    s.insert("minItems".into(), 1.into());
    s
}

pub(crate) fn label_names(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "array", "items": {"type": "string", "minLength": 1}})
}

pub(crate) fn duration(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": DURATION_PATTERN,
        "description": "A duration: 30s, 15m, 4h, 7d, 1h30m",
    })
}

pub(crate) fn category(_: &mut SchemaGenerator) -> Schema {
    enum_of(CATEGORIES)
}

pub(crate) fn categories(g: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "array", "items": category(g)})
}

pub(crate) fn level(_: &mut SchemaGenerator) -> Schema {
    enum_of(["high", "medium", "low"])
}

pub(crate) fn priority(_: &mut SchemaGenerator) -> Schema {
    enum_of(["P1", "P2", "P3", "P4", "P5"])
}

pub(crate) fn priorities(g: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "array", "items": priority(g)})
}

pub(crate) fn triggers(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "array", "items": enum_of(Trigger::ALL.map(Trigger::as_str))})
}

pub(crate) fn days(_: &mut SchemaGenerator) -> Schema {
    let names = [
        "mon",
        "tue",
        "wed",
        "thu",
        "fri",
        "sat",
        "sun",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "weekdays",
        "weekend",
        "weekends",
        "daily",
        "everyday",
    ];
    json_schema!({"type": "array", "items": enum_of(names)})
}

pub(crate) fn hh_mm(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "pattern": r"^[0-9]{1,2}:[0-9]{2}$", "description": "HH:MM, 24h"})
}

pub(crate) fn timestamp(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$",
        "description": "RFC 3339 with its offset, e.g. 2026-11-23T14:00:00Z",
    })
}

pub(crate) fn percent(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*%\s*$", "description": "e.g. \"80%\""})
}

pub(crate) fn url(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "pattern": "^https?://"})
}

pub(crate) fn http_method(_: &mut SchemaGenerator) -> Schema {
    enum_of(["POST", "PUT", "post", "put", "Post", "Put"])
}

pub(crate) fn preset(_: &mut SchemaGenerator) -> Schema {
    enum_of(["json", "slack", "teams"])
}

pub(crate) fn kafka_key(_: &mut SchemaGenerator) -> Schema {
    enum_of(["incident", "group_key"])
}

pub(crate) fn kafka_topic(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "pattern": "^[a-zA-Z0-9._-]{1,249}$"})
}

/// `oneOf`, each alternative requiring one of `fields`.
fn exactly_one_of(schema: &mut Schema, fields: &[&str]) {
    let alternatives: Vec<serde_json::Value> = fields
        .iter()
        .map(|f| serde_json::json!({"required": [f]}))
        .collect();
    schema.insert("oneOf".into(), alternatives.into());
}

pub(crate) fn exactly_one_action_kind(schema: &mut Schema) {
    // The fields of an action that say what it does: exactly one is given.
    exactly_one_of(schema, &crate::rules::actions::ACTION_KINDS);
}

pub(crate) fn redmine_required(schema: &mut Schema) {
    schema.insert("required".into(), serde_json::json!(["project"]));
    schema.insert(
        "allOf".into(),
        serde_json::json!([
            {"oneOf": [{"required": ["url"]}, {"required": ["url_env"]}]},
            {"oneOf": [{"required": ["api_key_env"]}, {"required": ["api_key_file"]}]},
        ]),
    );
}

pub(crate) fn json_pointer(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "pattern": "^(/[^/]*)+$", "description": "a JSON pointer, e.g. /issue/id"})
}

pub(crate) fn exactly_one_of_routing_key(schema: &mut Schema) {
    exactly_one_of(schema, &["routing_key_env", "routing_key_file"]);
}

pub(crate) fn exactly_one_of_url_url_env(schema: &mut Schema) {
    exactly_one_of(schema, &["url", "url_env"]);
}

/// A webhook names its URL once (`url` or `url_env`), or not at all in a
/// `contacts.webhook` action (the paged person's webhook).
pub(crate) fn at_most_one_of_url_url_env(schema: &mut Schema) {
    schema.insert(
        "not".into(),
        serde_json::json!({"required": ["url", "url_env"]}),
    );
}

pub(crate) fn exactly_one_of_after_resolve_progress(schema: &mut Schema) {
    exactly_one_of(schema, &["after", "resolve_progress"]);
}

pub(crate) fn require_source_and_target(schema: &mut Schema) {
    schema.insert("required".into(), serde_json::json!(["source", "target"]));
}

pub(crate) fn one_off_or_weekly(schema: &mut Schema) {
    schema.insert("required".into(), serde_json::json!(["name", "match"]));
    schema.insert(
        "oneOf".into(),
        serde_json::json!([
            {"required": ["start", "end"],
             "not": {"anyOf": [{"required": ["weekly"]}, {"required": ["time_zone"]}]}},
            {"required": ["weekly"], "properties": {"weekly": {"minItems": 1}},
             "not": {"anyOf": [{"required": ["start"]}, {"required": ["end"]}]}},
        ]),
    );
}
