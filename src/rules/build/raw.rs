//! The raw, position-carrying form of each rule file section, deserialized
//! item by item so one bad item does not hide the errors in the next.
//!
//! The same types describe the rule file format in `rules/schema.json`
//! (see [`super::schema`]): their doc comments are the editor's hover
//! text, and the `schemars` attributes give the value rules the builder
//! checks (names, durations, enums, minimums).

use std::collections::BTreeMap;

use marked_yaml::Spanned;
use schemars::JsonSchema;
use serde::Deserialize;

use super::schema as s;

/// A `correlate` rule: which incident an alert belongs to.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCorrelate {
    /// Unique name; the incident's `rule` and the start of its group key.
    #[schemars(schema_with = "s::name")]
    pub(super) name: Spanned<String>,
    /// Alertmanager matchers; all must match. Omitted: every alert.
    #[serde(default, rename = "match")]
    #[schemars(schema_with = "s::matchers")]
    pub(super) matchers: Vec<Spanned<String>>,
    /// Labels whose values form the group key (default `[alertname]`);
    /// `["..."]`: every label, one incident per distinct alert.
    #[serde(default)]
    #[schemars(schema_with = "s::label_names")]
    pub(super) group_by: Vec<Spanned<String>>,
    /// An alert joins its group's newest incident only within this long of
    /// the incident's last alert activity (default 1h).
    #[serde(default)]
    #[schemars(schema_with = "s::duration")]
    pub(super) window: Option<Spanned<String>>,
    /// minijinja template for the incident title: `labels`, `annotations`,
    /// `group_labels`, `rule`.
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) title: Option<Spanned<String>>,
    /// The owning team of its incidents (a `teams` entry).
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) team: Option<Spanned<String>>,
}

/// A `classify` rule: the category of the alerts it matches.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClassify {
    /// Free text for the reader; shown by the tools, not used by the engine.
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) name: Option<Spanned<String>>,
    /// Alertmanager matchers; all must match.
    #[serde(rename = "match")]
    #[schemars(schema_with = "s::matchers")]
    pub(super) matchers: Vec<Spanned<String>>,
    #[schemars(schema_with = "s::category")]
    pub(super) category: Spanned<String>,
    /// The owning team of the incidents it classifies, unless their
    /// correlate rule names one (a `teams` entry).
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) team: Option<Spanned<String>>,
}

/// A `prioritize.urgency` or `prioritize.impact` rule as the builder reads
/// it; the schema describes the two lists precisely with
/// [`super::schema::UrgencyRule`] and [`super::schema::ImpactRule`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLevelRule {
    /// Free text for the reader; shown by the tools, not used by the engine.
    #[serde(default)]
    pub(super) name: Option<Spanned<String>>,
    #[serde(default, rename = "match")]
    pub(super) matchers: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) urgency: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) impact: Option<Spanned<String>>,
    /// Blast radius: count distinct values of this label in the incident.
    #[serde(default)]
    pub(super) distinct: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) at_least: Option<Spanned<usize>>,
    /// Blast radius: the correlate rules whose incidents it applies to.
    #[serde(default)]
    pub(super) rules: Vec<Spanned<String>>,
}

/// Response and recovery targets for one priority.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSla {
    /// Creation → acknowledgement; not longer than `resolve`.
    #[schemars(schema_with = "s::duration")]
    pub(super) acknowledge: Spanned<String>,
    /// Creation → resolution.
    #[schemars(schema_with = "s::duration")]
    pub(super) resolve: Spanned<String>,
}

#[derive(Clone, Copy)]
pub(super) enum Section {
    Inhibit,
    Maintenance,
    Action,
    Escalation,
    Heartbeat,
}

/// A heartbeat (dead man's switch): matching alerts (or pings to
/// `POST /api/v1/heartbeats/<name>`) must keep coming; they open no
/// incident, and their absence does.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHeartbeat {
    /// Unique across files; also the ping URL's last part.
    #[schemars(schema_with = "s::name")]
    pub(super) name: Spanned<String>,
    /// Matchers on the alert's labels (e.g. `alertname="Watchdog"`);
    /// without, only pings refresh it.
    #[serde(default, rename = "match")]
    #[schemars(schema_with = "s::matchers")]
    pub(super) matchers: Vec<Spanned<String>>,
    /// How often the signal comes.
    #[schemars(schema_with = "s::duration")]
    pub(super) expect_every: Spanned<String>,
    /// Extra time before it counts as missing (default 1m).
    #[serde(default)]
    #[schemars(schema_with = "s::duration")]
    pub(super) grace: Option<Spanned<String>>,
    /// The category of the incident a missing heartbeat opens (default
    /// `other`).
    #[serde(default)]
    #[schemars(schema_with = "s::category")]
    pub(super) category: Option<Spanned<String>>,
    /// Its priority (default P2).
    #[serde(default)]
    #[schemars(schema_with = "s::priority")]
    pub(super) priority: Option<Spanned<String>>,
}

/// An action: a webhook call, a program run or a Kafka record when
/// something happens to an incident.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = s::exactly_one_action_kind)]
pub(super) struct RawAction {
    /// Unique across files.
    #[schemars(schema_with = "s::name")]
    pub(super) name: Spanned<String>,
    /// Triggers. Without `on`, only an escalation level that names the
    /// action runs it.
    #[serde(default)]
    #[schemars(schema_with = "s::triggers")]
    pub(super) on: Vec<Spanned<String>>,
    /// Matchers on the incident's common labels.
    #[serde(default, rename = "match")]
    #[schemars(schema_with = "s::matchers")]
    pub(super) matchers: Vec<Spanned<String>>,
    /// Only for these priorities (the incident's when the trigger fires).
    #[serde(default)]
    #[schemars(schema_with = "s::priorities")]
    pub(super) priority: Vec<Spanned<String>>,
    /// Only for these categories.
    #[serde(default)]
    #[schemars(schema_with = "s::categories")]
    pub(super) category: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) webhook: Option<RawWebhook>,
    #[serde(default)]
    pub(super) exec: Option<RawExec>,
    #[serde(default)]
    pub(super) kafka: Option<RawKafkaAction>,
    #[serde(default)]
    pub(super) email: Option<RawEmail>,
    #[serde(default)]
    pub(super) pagerduty: Option<RawPagerDuty>,
    #[serde(default)]
    pub(super) redmine: Option<RawRedmine>,
    #[serde(default)]
    pub(super) alertmanager: Option<RawAlertmanager>,
    /// Attempts after the first one (default 3).
    #[serde(default)]
    pub(super) retries: Option<u32>,
    /// Delay before the first retry, doubling each time (default 1s).
    #[serde(default)]
    #[schemars(schema_with = "s::duration")]
    pub(super) backoff: Option<Spanned<String>>,
    /// At most `max` runs per group key within `per`.
    #[serde(default)]
    pub(super) rate_limit: Option<RawRateLimit>,
}

/// Call a URL with the incident event.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = s::at_most_one_of_url_url_env)]
pub(super) struct RawWebhook {
    /// An http:// or https:// URL.
    #[serde(default)]
    #[schemars(schema_with = "s::url")]
    pub(super) url: Option<Spanned<String>>,
    /// The environment variable holding the URL (read at send time).
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) url_env: Option<Spanned<String>>,
    /// POST (default) or PUT.
    #[serde(default)]
    #[schemars(schema_with = "s::http_method")]
    pub(super) method: Option<Spanned<String>>,
    /// `json` (default): the event as the body; `slack`: a Slack message.
    #[serde(default)]
    #[schemars(schema_with = "s::preset")]
    pub(super) preset: Option<Spanned<String>>,
    /// minijinja template over the event, instead of the preset. Sent as
    /// JSON (the default `content_type`), it is rendered with JSON
    /// escaping: `{{ value }}` writes one whole JSON value.
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) body: Option<Spanned<String>>,
    /// A JSON pointer (`/issue/id`) into a successful JSON response: the
    /// value is stored on the incident as `external_refs.<action>`.
    #[serde(default)]
    #[schemars(schema_with = "s::json_pointer")]
    pub(super) capture: Option<Spanned<String>>,
    /// The body's media type (default `application/json`). A JSON type
    /// (`application/json`, `…+json`) escapes and checks the body.
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) content_type: Option<Spanned<String>>,
    /// Headers; values are minijinja templates over the event.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub(super) headers: BTreeMap<String, Spanned<String>>,
    /// Header name → environment variable holding its value.
    #[serde(default)]
    pub(super) secret_headers: BTreeMap<String, String>,
    /// Per attempt (default 10s).
    #[serde(default)]
    #[schemars(schema_with = "s::duration")]
    pub(super) timeout: Option<Spanned<String>>,
}

/// Send a mail through the daemon's `smtp` server.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEmail {
    /// Recipients (at least one, except in a `contacts.email` action,
    /// which mails the paged person).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub(super) to: Vec<Spanned<String>>,
    /// Copy recipients.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub(super) cc: Vec<Spanned<String>>,
    /// Subject template (default: `[P1] INC-… title (trigger)`).
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) subject: Option<Spanned<String>>,
    /// Plain-text body template (default: priority, status, SLA deadlines,
    /// the alerts and the link).
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) text: Option<Spanned<String>>,
    /// HTML body template, rendered with HTML escaping (default: the same
    /// content as the text body).
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) html: Option<Spanned<String>>,
    /// Per attempt (default 30s).
    #[serde(default)]
    #[schemars(schema_with = "s::duration")]
    pub(super) timeout: Option<Spanned<String>>,
}

/// PagerDuty Events API v2: trigger, acknowledge and resolve an alert whose
/// `dedup_key` is the incident id.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = s::exactly_one_of_routing_key)]
pub(super) struct RawPagerDuty {
    /// The environment variable holding the integration's routing key.
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) routing_key_env: Option<Spanned<String>>,
    /// A file holding the routing key (read at send time).
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) routing_key_file: Option<Spanned<String>>,
    /// Events API endpoint (default https://events.pagerduty.com/v2/enqueue).
    #[serde(default)]
    #[schemars(schema_with = "s::url")]
    pub(super) url: Option<Spanned<String>>,
    /// Summary template (default: `[P1] title`).
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) summary: Option<Spanned<String>>,
    /// Per attempt (default 10s).
    #[serde(default)]
    #[schemars(schema_with = "s::duration")]
    pub(super) timeout: Option<Spanned<String>>,
}

/// A Redmine issue that follows the incident: created when it opens,
/// journal notes on later triggers, resolved and closed with it.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = s::redmine_required)]
pub(super) struct RawRedmine {
    /// Redmine's base URL, e.g. https://redmine.example.com.
    #[serde(default)]
    #[schemars(schema_with = "s::url")]
    pub(super) url: Option<Spanned<String>>,
    /// The environment variable holding the base URL.
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) url_env: Option<Spanned<String>>,
    /// The environment variable holding the REST API key.
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) api_key_env: Option<Spanned<String>>,
    /// A file holding the REST API key.
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) api_key_file: Option<Spanned<String>>,
    /// The project's identifier (or numeric id).
    #[schemars(with = "String")]
    pub(super) project: Spanned<String>,
    /// Incident priority → Redmine priority id (default P1 5 Immediate,
    /// P2 4 Urgent, P3 3 High, P4 2 Normal, P5 1 Low).
    #[serde(default)]
    pub(super) priorities: BTreeMap<String, u32>,
    /// Incident category → tracker id (unset: the project's default).
    #[serde(default)]
    pub(super) trackers: BTreeMap<String, u32>,
    /// Id of an issue custom field that gets the category.
    #[serde(default)]
    pub(super) category_field_id: Option<u32>,
    /// Status ids set on acknowledge (default 2, In Progress), resolve
    /// (3, Resolved), close (5, Closed) and reopen (1, New).
    #[serde(default)]
    pub(super) statuses: Option<RawRedmineStatuses>,
    /// Subject template (default: `[P1] INC-… title`).
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) subject: Option<Spanned<String>>,
    /// Description template (default: priority, SLA, alerts, links).
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) description: Option<Spanned<String>>,
    /// Per attempt (default 10s).
    #[serde(default)]
    #[schemars(schema_with = "s::duration")]
    pub(super) timeout: Option<Spanned<String>>,
}

/// Alertmanager silence sync: acknowledging silences the incident's alerts
/// in Alertmanager; resolving, reopening or closing expires the silence.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = s::exactly_one_of_url_url_env)]
pub(super) struct RawAlertmanager {
    /// Alertmanager's base URL, e.g. http://alertmanager:9093.
    #[serde(default)]
    #[schemars(schema_with = "s::url")]
    pub(super) url: Option<Spanned<String>>,
    /// The environment variable holding the base URL.
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) url_env: Option<Spanned<String>>,
    /// How long a silence lasts unless the incident ends it (default 24h).
    #[serde(default)]
    #[schemars(schema_with = "s::duration")]
    pub(super) duration: Option<Spanned<String>>,
    /// Per attempt (default 10s).
    #[serde(default)]
    #[schemars(schema_with = "s::duration")]
    pub(super) timeout: Option<Spanned<String>>,
}

/// Redmine status ids for the incident's transitions.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRedmineStatuses {
    #[serde(default)]
    pub(super) acknowledged: Option<u32>,
    #[serde(default)]
    pub(super) resolved: Option<u32>,
    #[serde(default)]
    pub(super) closed: Option<u32>,
    #[serde(default)]
    pub(super) reopened: Option<u32>,
}

/// Run a program (no shell); the event arrives on stdin and as
/// `INCIDENT_*` environment variables.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExec {
    /// One program path; arguments go in `args`.
    #[schemars(schema_with = "s::name")]
    pub(super) command: Spanned<String>,
    /// Fixed arguments; alert data is never spliced in.
    #[serde(default)]
    pub(super) args: Vec<String>,
    /// The program is killed after this (default 30s).
    #[serde(default)]
    #[schemars(schema_with = "s::duration")]
    pub(super) timeout: Option<Spanned<String>>,
    /// Bytes of stdout and of stderr kept for the timeline (default 16384).
    #[serde(default)]
    pub(super) max_output: Option<usize>,
}

/// Produce the incident event to a Kafka topic.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKafkaAction {
    #[schemars(schema_with = "s::kafka_topic")]
    pub(super) topic: Spanned<String>,
    /// Bootstrap servers (default: the daemon's `kafka.brokers`).
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) brokers: Option<Spanned<String>>,
    /// Record key: `incident` (default) or `group_key`.
    #[serde(default)]
    #[schemars(schema_with = "s::kafka_key")]
    pub(super) key: Option<Spanned<String>>,
    /// minijinja template over the event, instead of the event JSON.
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) body: Option<Spanned<String>>,
    /// Per attempt (default 10s).
    #[serde(default)]
    #[schemars(schema_with = "s::duration")]
    pub(super) timeout: Option<Spanned<String>>,
}

/// At most `max` runs per group key within `per`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRateLimit {
    #[schemars(range(min = 1))]
    pub(super) max: u32,
    #[schemars(schema_with = "s::duration")]
    pub(super) per: Spanned<String>,
}

/// An escalation policy: levels reached while nobody acknowledges, or as
/// the resolve deadline approaches.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEscalation {
    /// Unique across files.
    #[schemars(schema_with = "s::name")]
    pub(super) name: Spanned<String>,
    /// Matchers on the incident's common labels.
    #[serde(default, rename = "match")]
    #[schemars(schema_with = "s::matchers")]
    pub(super) matchers: Vec<Spanned<String>>,
    /// Only for these priorities; empty: any.
    #[serde(default)]
    #[schemars(schema_with = "s::priorities")]
    pub(super) priority: Vec<Spanned<String>>,
    /// Level 1, 2, … in order.
    #[schemars(length(min = 1))]
    pub(super) levels: Vec<RawLevel>,
}

/// One escalation level: `after` or `resolve_progress`, and what to do.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = s::exactly_one_of_after_resolve_progress)]
pub(super) struct RawLevel {
    /// Reached when the incident is still unacknowledged this long after
    /// creation.
    #[serde(default)]
    #[schemars(schema_with = "s::duration")]
    pub(super) after: Option<Spanned<String>>,
    /// Reached when this share of the resolve target has passed, e.g. "80%".
    #[serde(default)]
    #[schemars(schema_with = "s::percent")]
    pub(super) resolve_progress: Option<Spanned<String>>,
    /// Actions to run at this level (they must exist in `actions`).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub(super) actions: Vec<Spanned<String>>,
    /// Set as the incident's assignee.
    #[serde(default)]
    pub(super) assignee: Option<String>,
    /// Page whoever is on call in this schedule (or team: its first
    /// schedule); `$team`: the incident's owning team.
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) oncall: Option<Spanned<String>>,
    /// Page this person.
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) person: Option<Spanned<String>>,
    /// Page every member of this team.
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) team: Option<Spanned<String>>,
    /// Page the person on call after the one paged before.
    #[serde(default)]
    pub(super) next_oncall: Option<bool>,
    /// When nobody is on call: `next_level` (default), `person NAME` or
    /// `wait DURATION`.
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) fallback: Option<Spanned<String>>,
    /// Page again this many times until someone acknowledges (default 0).
    #[serde(default)]
    pub(super) repeat: Option<u32>,
    /// Between repeats (default 5m).
    #[serde(default)]
    #[schemars(schema_with = "s::duration")]
    pub(super) repeat_every: Option<Spanned<String>>,
}

/// An inhibit rule: while a source alert fires, targets with the same
/// values of the `equal` labels open no incident.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = s::require_source_and_target)]
pub(super) struct RawInhibit {
    /// Unique; default `inhibit-N`. Shown as `by` on the suppressed alert.
    #[serde(default)]
    #[schemars(schema_with = "s::name")]
    pub(super) name: Option<Spanned<String>>,
    /// Matchers for the inhibiting alert.
    #[serde(default)]
    #[schemars(schema_with = "s::matchers_required")]
    pub(super) source: Vec<Spanned<String>>,
    /// Matchers for the inhibited alert.
    #[serde(default)]
    #[schemars(schema_with = "s::matchers_required")]
    pub(super) target: Vec<Spanned<String>>,
    /// Labels whose values must be equal on both.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub(super) equal: Vec<Spanned<String>>,
}

/// A maintenance window: matching alerts open no incident while it is open.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = s::one_off_or_weekly)]
pub(super) struct RawMaintenance {
    /// Unique. Shown as `by` on the suppressed alert.
    #[schemars(schema_with = "s::name")]
    pub(super) name: Spanned<String>,
    /// Matchers; required, since an empty list would mute everything.
    #[serde(default, rename = "match")]
    #[schemars(schema_with = "s::matchers_required")]
    pub(super) matchers: Vec<Spanned<String>>,
    /// One-off: RFC 3339 start.
    #[serde(default)]
    #[schemars(schema_with = "s::timestamp")]
    pub(super) start: Option<Spanned<String>>,
    /// One-off: RFC 3339 end, after `start`.
    #[serde(default)]
    #[schemars(schema_with = "s::timestamp")]
    pub(super) end: Option<Spanned<String>>,
    /// Recurring: weekly slots in local time.
    #[serde(default)]
    pub(super) weekly: Vec<RawSlot>,
    /// IANA time zone of `weekly` (default UTC).
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) time_zone: Option<Spanned<String>>,
}

/// A weekly slot: `days` (default every day) from `start` to `end`
/// (HH:MM, local time; an `end` not after `start` runs past midnight).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSlot {
    #[serde(default)]
    #[schemars(schema_with = "s::days")]
    pub(super) days: Vec<Spanned<String>>,
    #[schemars(schema_with = "s::hh_mm")]
    pub(super) start: Spanned<String>,
    #[schemars(schema_with = "s::hh_mm")]
    pub(super) end: Spanned<String>,
}

/// Flap detection (defaults apply when absent).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFlapping {
    /// More state changes than this within `window` is flapping (default 4).
    #[serde(default)]
    #[schemars(with = "usize", range(min = 2))]
    pub(super) max_changes: Option<Spanned<usize>>,
    /// Default 1h.
    #[serde(default)]
    #[schemars(schema_with = "s::duration")]
    pub(super) window: Option<Spanned<String>>,
    /// Keep a flapping incident open instead of resolving it (default true).
    #[serde(default)]
    pub(super) keep_open: Option<bool>,
}

/// Problem candidates (defaults apply when absent).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProblems {
    /// Incidents of one group key within `within` (default 3).
    #[serde(default)]
    #[schemars(with = "usize", range(min = 2))]
    pub(super) recurrence: Option<Spanned<usize>>,
    /// Default 7d.
    #[serde(default)]
    #[schemars(schema_with = "s::duration")]
    pub(super) within: Option<Spanned<String>>,
}

pub(super) fn parse_days(s: &str) -> Option<Vec<chrono::Weekday>> {
    use chrono::Weekday::*;
    let one = |d: &str| -> Option<chrono::Weekday> {
        Some(match d {
            "mon" | "monday" => Mon,
            "tue" | "tuesday" => Tue,
            "wed" | "wednesday" => Wed,
            "thu" | "thursday" => Thu,
            "fri" | "friday" => Fri,
            "sat" | "saturday" => Sat,
            "sun" | "sunday" => Sun,
            _ => return None,
        })
    };
    let s = s.trim().to_ascii_lowercase();
    match s.as_str() {
        "daily" | "everyday" => Some(vec![Mon, Tue, Wed, Thu, Fri, Sat, Sun]),
        "weekdays" => Some(vec![Mon, Tue, Wed, Thu, Fri]),
        "weekend" | "weekends" => Some(vec![Sat, Sun]),
        _ => one(&s).map(|d| vec![d]),
    }
}

/// A `storms` rule: many incidents of some rules sharing label values
/// within a time become one major (parent) incident.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStorm {
    /// Unique name; the parent incident's `rule` and the start of its key.
    #[schemars(schema_with = "s::name")]
    pub(super) name: Spanned<String>,
    /// Correlate rules whose incidents count (at least one).
    #[schemars(with = "Vec<String>")]
    pub(super) rules: Vec<Spanned<String>>,
    /// Labels the member incidents share, such as `cluster` or `zone`.
    #[schemars(schema_with = "s::label_names")]
    pub(super) by: Vec<Spanned<String>>,
    /// Member incidents that open a parent (at least 2).
    #[schemars(with = "usize", range(min = 2))]
    pub(super) at_least: Spanned<usize>,
    /// Members count when they open within this long of each other.
    #[schemars(schema_with = "s::duration")]
    pub(super) within: Spanned<String>,
    /// Members' pages wait this long for a storm to form (default 30s;
    /// "0s" pages at once).
    #[serde(default)]
    #[schemars(schema_with = "s::duration")]
    pub(super) hold: Option<Spanned<String>>,
    /// minijinja template for the parent's title: `labels` and
    /// `group_labels` (the `by` labels), `rule`, `count`.
    #[serde(default)]
    #[schemars(with = "String")]
    pub(super) title: Option<Spanned<String>>,
}

/// A `relate` rule: incidents of rule `cause` explain incidents of rule
/// `symptom` whose labels agree.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRelate {
    /// Unique name; shown on both timelines.
    #[schemars(schema_with = "s::name")]
    pub(super) name: Spanned<String>,
    /// Correlate rule of the explaining incident.
    #[schemars(with = "String")]
    pub(super) cause: Spanned<String>,
    /// Correlate rule of the explained incidents.
    #[schemars(with = "String")]
    pub(super) symptom: Spanned<String>,
    /// Labels whose values must be equal: `node`, or `instance=node` when
    /// the cause calls it `instance` and the symptom `node`.
    #[schemars(with = "Vec<String>")]
    pub(super) on: Vec<Spanned<String>>,
    /// The symptom's pages wait this long, and are dropped if the cause is
    /// acknowledged by then (default 2m; "0s" pages at once).
    #[serde(default)]
    #[schemars(schema_with = "s::duration")]
    pub(super) delay: Option<Spanned<String>>,
}
