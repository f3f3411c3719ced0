//! The OpenAPI 3.1 description of the whole HTTP API of `serve`, served at
//! `GET /api/v1/openapi.json` and kept in `docs/openapi.json`.
//!
//! Contract: every route of [`super::router`] (the table
//! [`super::auth::ROUTES`]) has an operation here and nothing else does
//! (`tests/openapi.rs` checks both ways, validates real answers against
//! the schemas, and checks `docs/openapi.json` is this output). Schemas
//! come from the types the handlers answer with (`utoipa::ToSchema` on
//! the model and on [`super::alertmanager`]); the operations of handlers
//! that answer built JSON are described by the documentation-only
//! functions below. Each operation says the role it needs
//! (`x-incidentd-role`, from `ROUTES`). The description is public: it
//! holds nothing that is not in the README, so the route is open.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, PathItem};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

use super::alertmanager as am;
use super::auth::{Access, ROUTES};
use crate::metrics::VERSION;
use crate::model::{
    AlertRecord, Incident, IncidentKey, Labels, LinkRequest, ManualIncident, MergeRequest,
    OpRequest, Priority, PriorityRequest, Silence, SilenceState, SplitRequest, SuppressedAlert,
    TimelineEntry,
};

/// Every error answer: `{"status": "error", "error": "what and where"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always `error`.
    pub status: String,
    /// What went wrong and where (a JSON path, a parameter, a state).
    pub error: String,
}

/// What an ingest endpoint answers once the alerts are durable.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestAnswer {
    /// Always `success`.
    pub status: String,
    /// Alerts taken (all of them).
    pub accepted: usize,
    /// Incidents opened.
    pub created: Option<Vec<IncidentKey>>,
    /// Incidents the alerts joined or resolved.
    pub updated: Option<Vec<IncidentKey>>,
    /// Repeats of a known state.
    pub deduplicated: Option<usize>,
    /// Alerts that changed nothing (a resolve for an unknown alert).
    pub ignored: Option<usize>,
    /// Alerts kept out of incidents (silence, inhibition, maintenance).
    pub suppressed: Option<usize>,
    /// Heartbeat signals (they refresh a heartbeat and open nothing).
    pub heartbeats: Option<usize>,
}

/// What `POST /v2/enqueue` answers (as PagerDuty does).
#[derive(Debug, Serialize, ToSchema)]
pub struct EnqueueAnswer {
    pub status: String,
    pub message: String,
    pub dedup_key: String,
}

/// An alert as Prometheus posts it (Alertmanager's `postableAlert`).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // describes a request body
#[schema(as = PostableAlert)]
pub struct PostableAlertDoc {
    labels: Labels,
    annotations: Option<Labels>,
    #[schema(rename = "startsAt")]
    starts_at: Option<DateTime<Utc>>,
    #[schema(rename = "endsAt")]
    ends_at: Option<DateTime<Utc>>,
    #[schema(rename = "generatorURL")]
    generator_url: Option<String>,
}

/// Alertmanager's webhook payload, version 4 (unknown fields ignored).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // describes a request body
#[schema(as = WebhookPayload)]
pub struct WebhookDoc {
    version: Option<String>,
    status: Option<String>,
    alerts: Vec<WebhookAlertDoc>,
}

/// One alert of a webhook payload.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // describes a request body
#[schema(as = WebhookAlert)]
pub struct WebhookAlertDoc {
    /// `firing` or `resolved`.
    status: Option<String>,
    labels: Labels,
    annotations: Option<Labels>,
    #[schema(rename = "startsAt")]
    starts_at: Option<DateTime<Utc>>,
    #[schema(rename = "endsAt")]
    ends_at: Option<DateTime<Utc>>,
    #[schema(rename = "generatorURL")]
    generator_url: Option<String>,
    fingerprint: Option<String>,
}

/// A generic alert: one object, or an array of them.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // describes a request body
#[schema(as = GenericAlert)]
pub struct GenericAlertDoc {
    labels: Labels,
    annotations: Option<Labels>,
    /// `firing` (default) or `resolved`.
    status: Option<String>,
    #[schema(rename = "startsAt")]
    starts_at: Option<DateTime<Utc>>,
    #[schema(rename = "endsAt")]
    ends_at: Option<DateTime<Utc>>,
    /// The sender's name for itself.
    source: Option<String>,
}

/// A PagerDuty Events API v2 event.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // describes a request body
#[schema(as = PagerDutyEvent)]
pub struct PagerDutyDoc {
    routing_key: String,
    /// `trigger`, `acknowledge` or `resolve`.
    event_action: String,
    dedup_key: Option<String>,
    /// Required for `trigger`: `summary`, `source`, `severity`, ...
    payload: Option<serde_json::Value>,
}

/// A past incident like this one, with what resolved it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimilarIncident {
    pub id: IncidentKey,
    pub title: String,
    pub status: crate::model::Status,
    pub priority: Priority,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub workaround: Option<String>,
    pub root_cause: Option<String>,
}

/// One incident with its alerts, timeline and similar past incidents.
#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentDetail {
    #[serde(flatten)]
    pub incident: Incident,
    pub alerts: Vec<AlertRecord>,
    pub timeline: Vec<TimelineEntry>,
    pub similar_incidents: Vec<SimilarIncident>,
}

/// A silence in incidentd's shape, with its state now.
#[derive(Debug, Serialize, ToSchema)]
pub struct SilenceView {
    #[serde(flatten)]
    pub silence: Silence,
    pub state: SilenceState,
}

/// A silence to create, in incidentd's shape (`startsAt`, `endsAt`,
/// `createdBy` are also taken, and matchers as Alertmanager objects).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // describes a request body
#[schema(as = NewSilence)]
pub struct NewSilenceDoc {
    /// Matcher text, Alertmanager syntax: `service="db"`, `instance=~"db-.*"`.
    matchers: Vec<String>,
    /// Default: now.
    starts_at: Option<DateTime<Utc>>,
    /// Give this or `duration`.
    ends_at: Option<DateTime<Utc>>,
    /// A duration such as `2h`, instead of `ends_at`.
    duration: Option<String>,
    /// Why (a change ticket).
    comment: String,
    /// Who; with tokens, the token's name is the author and this who it
    /// was done for.
    created_by: Option<String>,
}

/// What `POST /api/v1/silences` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct SilenceCreatedV1 {
    pub silence_id: String,
    /// The same id under its name before 0.2 (deprecated).
    #[serde(rename = "silenceID")]
    pub silence_id_compat: String,
    pub silence: SilenceView,
}

/// What a reload did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReloadAnswer {
    /// `success`, or `error` when any part failed (that part kept its
    /// previous state).
    pub status: String,
    /// Summary of the rules now active, when they reloaded.
    pub rules: Option<String>,
    /// Identities in the tokens file, when there is one.
    pub tokens: Option<usize>,
    pub error: Option<String>,
}

/// Query of the incident list.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // describes the query
pub struct ListQueryDoc {
    /// `open`, `acknowledged`, `resolved` or `closed`.
    status: Option<String>,
    /// `P1`..`P5`.
    priority: Option<String>,
    category: Option<String>,
    /// Label matchers on the incident's common labels, repeatable, all must
    /// match: `match=cluster="eu-1"`.
    #[param(rename = "match")]
    r#match: Option<Vec<String>>,
    /// Created at or after this RFC 3339 instant.
    created_after: Option<String>,
    /// Created before this RFC 3339 instant.
    created_before: Option<String>,
    /// `newest` (default) or `oldest` first.
    sort: Option<String>,
    /// 1..10000, default 100.
    limit: Option<usize>,
    /// The cursor: the previous page's `X-Next-Cursor` (the `Link` header
    /// with `rel="next"` carries the whole next URL).
    after: Option<String>,
}

/// The body of an incident action: a lifecycle request (ack, assign,
/// notes, resolve, close, reopen) or a service-desk request (merge, link,
/// split, priority).
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum ActionBodyDoc {
    Lifecycle(OpRequest),
    Merge(MergeRequest),
    Link(LinkRequest),
    Split(SplitRequest),
    Priority(PriorityRequest),
}

#[utoipa::path(post, path = "/api/v2/alerts", tag = "ingest",
    request_body = Vec<PostableAlertDoc>,
    responses((status = 200, description = "Durable", body = IngestAnswer),
              (status = 400, description = "Invalid payload (names the JSON path)", body = ErrorBody),
              (status = 408, description = "Body not received within http.body_timeout", body = ErrorBody),
              (status = 413, description = "Larger than limits.max_body_bytes", body = ErrorBody),
              (status = 503, description = "Admission full (queued alerts or bytes) or storage failing; Retry-After", body = ErrorBody)))]
#[allow(dead_code)]
fn ingest_alertmanager_v2() {}

#[utoipa::path(post, path = "/api/v1/webhook/alertmanager", tag = "ingest",
    request_body = WebhookDoc,
    responses((status = 200, description = "Durable", body = IngestAnswer),
              (status = 400, description = "Invalid payload", body = ErrorBody),
              (status = 413, description = "Too large", body = ErrorBody),
              (status = 503, description = "Retry later", body = ErrorBody)))]
#[allow(dead_code)]
fn ingest_webhook() {}

#[utoipa::path(post, path = "/api/v1/alerts", tag = "ingest",
    request_body = GenericAlertDoc,
    responses((status = 200, description = "Durable", body = IngestAnswer),
              (status = 400, description = "Invalid payload", body = ErrorBody),
              (status = 413, description = "Too large", body = ErrorBody),
              (status = 503, description = "Retry later", body = ErrorBody)))]
#[allow(dead_code)]
fn ingest_generic() {}

#[utoipa::path(post, path = "/v2/enqueue", tag = "ingest",
    request_body = PagerDutyDoc,
    responses((status = 202, description = "Durable", body = EnqueueAnswer),
              (status = 400, description = "Invalid event", body = ErrorBody),
              (status = 413, description = "Too large", body = ErrorBody),
              (status = 503, description = "Retry later", body = ErrorBody)))]
#[allow(dead_code)]
fn ingest_pagerduty() {}

#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents",
    params(ListQueryDoc),
    responses((status = 200, description = "One page of incidents", body = Vec<Incident>,
               headers(("X-Total-Count" = u64, description = "Every incident the filters match; absent when counting would read more than 20,000 rows"),
                       ("X-Next-Cursor" = String, description = "Give as `after` for the next page; absent on the last"),
                       ("Link" = String, description = "`<next page URL>; rel=\"next\"`"))),
              (status = 400, description = "Invalid filter", body = ErrorBody)))]
#[allow(dead_code)]
fn incidents_list() {}

#[utoipa::path(post, path = "/api/v1/incidents", tag = "incidents",
    request_body(content = ManualIncident, description = "An incident reported by a person; `by` is replaced by the token's name when tokens are on"),
    responses((status = 201, description = "The new incident (source manual), durable", body = Incident),
              (status = 400, description = "Invalid body", body = ErrorBody),
              (status = 503, description = "Retry later", body = ErrorBody)))]
#[allow(dead_code)]
fn incidents_open() {}

#[utoipa::path(get, path = "/api/v1/incidents/{id}", tag = "incidents",
    params(("id" = String, Path, description = "INC-YYYYMMDD-NNNN")),
    responses((status = 200, description = "The incident", body = IncidentDetail),
              (status = 404, description = "No such incident", body = ErrorBody)))]
#[allow(dead_code)]
fn incidents_show() {}

#[utoipa::path(get, path = "/api/v1/incidents/{id}/report", tag = "incidents",
    params(("id" = String, Path, description = "INC-YYYYMMDD-NNNN")),
    responses((status = 200, description = "The ITIL incident report", body = String, content_type = "text/markdown"),
              (status = 404, description = "No such incident", body = ErrorBody)))]
#[allow(dead_code)]
fn incidents_report() {}

#[utoipa::path(post, path = "/api/v1/incidents/{id}/{action}", tag = "incidents",
    params(("id" = String, Path, description = "INC-YYYYMMDD-NNNN"),
           ("action" = String, Path, description = "ack, assign, notes, resolve, close, reopen (lifecycle), merge, link, split or priority (service desk)")),
    request_body(content = ActionBodyDoc, description = "Optional for lifecycle actions; `by` is replaced by the token's name when tokens are on"),
    responses((status = 200, description = "The incident after the change (durable); for merge, the target", body = Incident),
              (status = 201, description = "split: the new incident", body = Incident),
              (status = 400, description = "Invalid body", body = ErrorBody),
              (status = 404, description = "No such incident or action", body = ErrorBody),
              (status = 409, description = "Illegal transition", body = ErrorBody),
              (status = 503, description = "Retry later", body = ErrorBody)))]
#[allow(dead_code)]
fn incidents_operate() {}

#[utoipa::path(get, path = "/api/v1/silences", tag = "silences",
    responses((status = 200, description = "Every silence", body = Vec<SilenceView>)))]
#[allow(dead_code)]
fn silences_list() {}

#[utoipa::path(post, path = "/api/v1/silences", tag = "silences",
    request_body = NewSilenceDoc,
    responses((status = 200, description = "Created (durable)", body = SilenceCreatedV1),
              (status = 400, description = "Invalid silence", body = ErrorBody),
              (status = 503, description = "Retry later", body = ErrorBody)))]
#[allow(dead_code)]
fn silences_create() {}

#[utoipa::path(get, path = "/api/v1/silences/{id}", tag = "silences",
    params(("id" = String, Path, description = "Silence id")),
    responses((status = 200, description = "The silence", body = SilenceView),
              (status = 404, description = "No such silence", body = ErrorBody)))]
#[allow(dead_code)]
fn silences_show() {}

#[utoipa::path(delete, path = "/api/v1/silences/{id}", tag = "silences",
    params(("id" = String, Path, description = "Silence id")),
    responses((status = 200, description = "Expired now (durable)", body = SilenceView),
              (status = 404, description = "No such silence", body = ErrorBody),
              (status = 503, description = "Retry later", body = ErrorBody)))]
#[allow(dead_code)]
fn silences_expire() {}

#[utoipa::path(get, path = "/api/v1/oncall", tag = "oncall",
    params(("at" = Option<String>, Query, description = "RFC 3339 instant (default now)")),
    responses((status = 200, description = "Who is on call for each team's schedules", body = super::oncall::OnCallAnswer),
              (status = 400, description = "Bad `at`", body = ErrorBody)))]
#[allow(dead_code)]
fn oncall_now() {}

#[utoipa::path(get, path = "/api/v1/schedules/{name}", tag = "oncall",
    params(("name" = String, Path, description = "Schedule name; with the suffix `.ics` the answer is an iCalendar feed (text/calendar, default span a week back to two months ahead)"),
           ("from" = Option<String>, Query, description = "RFC 3339 (default now)"),
           ("to" = Option<String>, Query, description = "RFC 3339 (default 7 days after `from`; at most 400 days)")),
    responses((status = 200, description = "The shifts and the gaps nobody covers", body = super::oncall::ScheduleAnswer),
              (status = 400, description = "Bad span", body = ErrorBody),
              (status = 404, description = "No such schedule", body = ErrorBody)))]
#[allow(dead_code)]
fn schedule_show() {}

/// What the override endpoints answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct OverrideAnswer {
    #[schema(rename = "override")]
    pub r#override: crate::model::Override,
}

#[utoipa::path(post, path = "/api/v1/schedules/{name}/overrides", tag = "oncall",
    params(("name" = String, Path, description = "Schedule name")),
    request_body = super::oncall::NewOverride,
    responses((status = 201, description = "Added (durable)", body = OverrideAnswer),
              (status = 400, description = "Invalid override (span, unknown person)", body = ErrorBody),
              (status = 404, description = "No such schedule", body = ErrorBody),
              (status = 503, description = "Retry later", body = ErrorBody)))]
#[allow(dead_code)]
fn override_add() {}

#[utoipa::path(delete, path = "/api/v1/schedules/{name}/overrides/{id}", tag = "oncall",
    params(("name" = String, Path, description = "Schedule name"), ("id" = String, Path, description = "Override id")),
    responses((status = 200, description = "Removed (durable)", body = OverrideAnswer),
              (status = 404, description = "No such override", body = ErrorBody),
              (status = 503, description = "Retry later", body = ErrorBody)))]
#[allow(dead_code)]
fn override_remove() {}

#[utoipa::path(get, path = "/oncall", tag = "board",
    responses((status = 200, description = "Who is on call for each team", body = String, content_type = "text/html")))]
#[allow(dead_code)]
fn board_oncall() {}

#[utoipa::path(get, path = "/schedules/{name}", tag = "board",
    params(("name" = String, Path, description = "Schedule name"),
           ("from" = Option<String>, Query, description = "RFC 3339 (default now)"),
           ("days" = Option<i64>, Query, description = "Days shown (default 14, at most 90)")),
    responses((status = 200, description = "Shifts in the schedule's time zone, gaps, overrides and the override form", body = String, content_type = "text/html"),
              (status = 404, description = "No such schedule", body = String, content_type = "text/html")))]
#[allow(dead_code)]
fn board_schedule() {}

#[utoipa::path(post, path = "/schedules/{name}/overrides", tag = "board",
    params(("name" = String, Path, description = "Schedule name")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`person`, `starts_at` (RFC 3339), `duration` (e.g. 8h), `csrf`, `by` (without tokens)"),
    responses((status = 303, description = "Added (durable); to the schedule's page"),
              (status = 400, description = "The page with the problem", body = String, content_type = "text/html"),
              (status = 403, description = "Missing or stale CSRF token", body = String, content_type = "text/html"),
              (status = 404, description = "No such schedule", body = String, content_type = "text/html")))]
#[allow(dead_code)]
fn board_override_add() {}

#[utoipa::path(post, path = "/schedules/{name}/overrides/{id}/remove", tag = "board",
    params(("name" = String, Path, description = "Schedule name"), ("id" = String, Path, description = "Override id")),
    responses((status = 303, description = "Removed (durable); to the schedule's page"),
              (status = 403, description = "Missing or stale CSRF token", body = String, content_type = "text/html"),
              (status = 404, description = "No such schedule or override", body = String, content_type = "text/html")))]
#[allow(dead_code)]
fn board_override_remove() {}

#[utoipa::path(get, path = "/ack/{token}", tag = "board",
    params(("token" = String, Path, description = "The signed token of a page's acknowledgement link")),
    responses((status = 200, description = "The incident and a button to acknowledge as the person paged; changes nothing", body = String, content_type = "text/html"),
              (status = 400, description = "Malformed link", body = String, content_type = "text/html"),
              (status = 403, description = "Bad signature", body = String, content_type = "text/html"),
              (status = 410, description = "Expired link", body = String, content_type = "text/html")))]
#[allow(dead_code)]
fn board_ack_page() {}

#[utoipa::path(post, path = "/ack/{token}", tag = "board",
    params(("token" = String, Path, description = "The signed token of a page's acknowledgement link")),
    responses((status = 200, description = "Acknowledged (durable) as the person the link names", body = String, content_type = "text/html"),
              (status = 400, description = "Malformed link", body = String, content_type = "text/html"),
              (status = 403, description = "Bad signature, or a cross-site post", body = String, content_type = "text/html"),
              (status = 409, description = "Not open any more (already acknowledged, resolved)", body = String, content_type = "text/html"),
              (status = 410, description = "Expired link", body = String, content_type = "text/html")))]
#[allow(dead_code)]
fn board_ack() {}

/// What `POST /api/v1/heartbeats/{name}` answers once the ping is durable.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeartbeatAnswer {
    /// Always `success`.
    pub status: String,
    pub heartbeat: String,
    /// The ping's time: the heartbeat's last signal.
    pub last_seen: DateTime<Utc>,
}

#[utoipa::path(post, path = "/api/v1/heartbeats/{name}", tag = "ingest",
    params(("name" = String, Path, description = "A heartbeat of the rules' `heartbeats` section")),
    responses((status = 200, description = "Refreshed (durable)", body = HeartbeatAnswer),
              (status = 404, description = "No heartbeat of that name", body = ErrorBody),
              (status = 503, description = "Retry later", body = ErrorBody)))]
#[allow(dead_code)]
fn heartbeat_ping() {}

#[utoipa::path(get, path = "/api/v1/alerts/suppressed", tag = "silences",
    responses((status = 200, description = "Firing alerts kept out of incidents, and why", body = Vec<SuppressedAlert>)))]
#[allow(dead_code)]
fn alerts_suppressed() {}

#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "This description", body = Object)))]
#[allow(dead_code)]
fn openapi_json() {}

#[utoipa::path(post, path = "/-/reload", tag = "operations",
    responses((status = 200, description = "Rules, tokens and TLS files re-read", body = ReloadAnswer),
              (status = 400, description = "A part failed and kept its previous state", body = ReloadAnswer)))]
#[allow(dead_code)]
fn reload() {}

#[utoipa::path(post, path = "/api/v1/rules/explain", tag = "rules",
    request_body(content = serde_json::Value, description = "Any ingest payload (Alertmanager v2 array, webhook v4, generic alert or array, PagerDuty event), at most 100 alerts; explained, never ingested"),
    responses((status = 200, description = "Each alert's path through the loaded rules and live state: the document `incidentd rules explain -o json` prints (see rules/README.md, Debugging rules)", body = serde_json::Value),
              (status = 400, description = "Not a payload, no alert, or more than 100 alerts", body = ErrorBody),
              (status = 413, description = "Larger than limits.max_body_bytes", body = ErrorBody),
              (status = 503, description = "The writer cannot answer now; Retry-After", body = ErrorBody)))]
#[allow(dead_code)]
fn rules_explain() {}

#[utoipa::path(post, path = "/-/backup", tag = "operations",
    responses((status = 200, description = "A consistent copy of the database: a redb file to put in place as incidentd.redb (header x-incidentd-backup-rows: rows copied)", body = Vec<u8>, content_type = "application/octet-stream"),
              (status = 503, description = "The copy could not be written (e.g. no space in the data dir)", body = ErrorBody)))]
#[allow(dead_code)]
fn backup() {}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition 0.0.4", body = String, content_type = "text/plain")))]
#[allow(dead_code)]
fn metrics() {}

#[utoipa::path(get, path = "/-/healthy", tag = "operations",
    responses((status = 200, description = "The process runs", body = String, content_type = "text/plain")))]
#[allow(dead_code)]
fn healthy() {}

#[utoipa::path(get, path = "/-/ready", tag = "operations",
    responses((status = 200, description = "State restored, serving, the store commits", body = String, content_type = "text/plain"),
              (status = 503, description = "Starting, shutting down, or the store cannot commit (the reason follows)", body = String, content_type = "text/plain")))]
#[allow(dead_code)]
fn ready() {}

#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    params(("Last-Event-ID" = Option<String>, Header, description = "Resume after this event (the `id` of the last event received)")),
    responses((status = 200, description = "Server-Sent Events: one `data:` line of JSON per incident change, with `id:` `INC-YYYYMMDD-NNNN:seq` (see the README, Event stream)", body = String, content_type = "text/event-stream")))]
#[allow(dead_code)]
fn events() {}

#[utoipa::path(get, path = "/", tag = "board",
    params(("status" = Option<String>, Query, description = "active (default: open and acknowledged), open, acknowledged, resolved or closed"),
           ("priority" = Option<String>, Query, description = "P1..P5"),
           ("category" = Option<String>, Query, description = "A category"),
           ("labels" = Option<String>, Query, description = "Label matchers on the incident's shared labels: `service=\"db\", env=~\"prod.*\"`"),
           ("q" = Option<String>, Query, description = "Text in the id, title, category, assignee or labels")),
    responses((status = 200, description = "The board: active incidents by priority", body = String, content_type = "text/html"),
              (status = 400, description = "The board, with the filter's problem", body = String, content_type = "text/html"),
              (status = 401, description = "The login page (tokens on, no session)", body = String, content_type = "text/html")))]
#[allow(dead_code)]
fn board_page() {}

#[utoipa::path(get, path = "/incidents/{id}", tag = "board",
    params(("id" = String, Path, description = "INC-YYYYMMDD-NNNN")),
    responses((status = 200, description = "The incident page", body = String, content_type = "text/html"),
              (status = 401, description = "The login page", body = String, content_type = "text/html"),
              (status = 404, description = "No such incident", body = String, content_type = "text/html")))]
#[allow(dead_code)]
fn board_incident() {}

#[utoipa::path(post, path = "/incidents/{id}/{action}", tag = "board",
    params(("id" = String, Path, description = "INC-YYYYMMDD-NNNN"),
           ("action" = String, Path, description = "ack, assign, notes, resolve, close or reopen (lifecycle); merge, link or priority (service desk)")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "Form fields `csrf` (with the session cookie), `by` (without tokens), and per action: `note`, `assignee`, `workaround`, `root_cause` (lifecycle); `into` (merge); `to` and `relation`: caused_by, causes or related (link); `priority` (P1..P5) or `impact`/`urgency` (high, medium, low) with a `reason`, or `clear=1` (priority)"),
    responses((status = 303, description = "Done (durable); back to the incident page"),
              (status = 400, description = "The incident page with the problem (e.g. a priority override without a reason)", body = String, content_type = "text/html"),
              (status = 403, description = "Missing or stale CSRF token, or a cross-site post", body = String, content_type = "text/html"),
              (status = 404, description = "No such incident or action", body = String, content_type = "text/html"),
              (status = 409, description = "Illegal transition or a conflict (e.g. merging into a closed incident): the incident page with the message", body = String, content_type = "text/html"),
              (status = 415, description = "Not a form", body = String, content_type = "text/html"),
              (status = 503, description = "Retry later", body = String, content_type = "text/html")))]
#[allow(dead_code)]
fn board_operate() {}

#[utoipa::path(get, path = "/incidents/new", tag = "board",
    responses((status = 200, description = "The service desk's form to open an incident", body = String, content_type = "text/html"),
              (status = 401, description = "The login page", body = String, content_type = "text/html")))]
#[allow(dead_code)]
fn board_incident_new() {}

#[utoipa::path(post, path = "/incidents", tag = "board",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`title` (required), `description`, `category`, `impact` and `urgency` (high, medium, low; empty: the rules' defaults), `reporter`, `contact`, `service`; `csrf` (with the session cookie), `by` (without tokens). The same request as `POST /api/v1/incidents`"),
    responses((status = 303, description = "Opened (durable); to the new incident's page"),
              (status = 400, description = "The form with the problem", body = String, content_type = "text/html"),
              (status = 403, description = "Missing or stale CSRF token, or a cross-site post", body = String, content_type = "text/html"),
              (status = 415, description = "Not a form", body = String, content_type = "text/html"),
              (status = 503, description = "Retry later: the form again", body = String, content_type = "text/html")))]
#[allow(dead_code)]
fn board_incident_open() {}

#[utoipa::path(get, path = "/silences", tag = "board",
    responses((status = 200, description = "Silences, active first", body = String, content_type = "text/html"),
              (status = 401, description = "The login page", body = String, content_type = "text/html")))]
#[allow(dead_code)]
fn board_silences() {}

#[utoipa::path(post, path = "/silences", tag = "board",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`matchers` (one per line), `duration`, `comment`, `csrf`, `by` (without tokens), and `do`: `preview` or `create`"),
    responses((status = 200, description = "The preview: firing alerts the silence would match", body = String, content_type = "text/html"),
              (status = 303, description = "Created (durable); to the silences page"),
              (status = 400, description = "The form with the problem", body = String, content_type = "text/html"),
              (status = 403, description = "Missing or stale CSRF token", body = String, content_type = "text/html"),
              (status = 415, description = "Not a form", body = String, content_type = "text/html")))]
#[allow(dead_code)]
fn board_silence_create() {}

#[utoipa::path(get, path = "/silences/new", tag = "board",
    params(("matchers" = Option<String>, Query, description = "Prefill: matchers, one per line"),
           ("duration" = Option<String>, Query, description = "Prefill: duration"),
           ("comment" = Option<String>, Query, description = "Prefill: comment")),
    responses((status = 200, description = "The form, with a preview when matchers are given", body = String, content_type = "text/html"),
              (status = 400, description = "The form with the matchers' problem", body = String, content_type = "text/html")))]
#[allow(dead_code)]
fn board_silence_new() {}

#[utoipa::path(post, path = "/silences/{id}/expire", tag = "board",
    params(("id" = String, Path, description = "Silence id")),
    responses((status = 303, description = "Expired (durable); to the silences page"),
              (status = 403, description = "Missing or stale CSRF token", body = String, content_type = "text/html"),
              (status = 404, description = "No such silence", body = String, content_type = "text/html")))]
#[allow(dead_code)]
fn board_silence_expire() {}

#[utoipa::path(get, path = "/suppressed", tag = "board",
    responses((status = 200, description = "Alerts kept out of incidents, and why", body = String, content_type = "text/html")))]
#[allow(dead_code)]
fn board_suppressed() {}

#[utoipa::path(get, path = "/login", tag = "board",
    responses((status = 200, description = "The login form", body = String, content_type = "text/html"),
              (status = 303, description = "Tokens off or already logged in: to `next`")))]
#[allow(dead_code)]
fn board_login_page() {}

#[utoipa::path(post, path = "/login", tag = "board",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`token`: an API token's secret; `next`: where to go"),
    responses((status = 303, description = "Logged in: an HttpOnly, SameSite=Strict session cookie, and to `next`"),
              (status = 401, description = "Unknown token: the form again", body = String, content_type = "text/html"),
              (status = 415, description = "Not a form", body = String, content_type = "text/html")))]
#[allow(dead_code)]
fn board_login() {}

#[utoipa::path(post, path = "/logout", tag = "board",
    responses((status = 303, description = "The session ended and its cookie cleared")))]
#[allow(dead_code)]
fn board_logout() {}

#[utoipa::path(get, path = "/assets/board.css", tag = "board",
    responses((status = 200, description = "The board's stylesheet (embedded)", body = String, content_type = "text/css")))]
#[allow(dead_code)]
fn board_css() {}

#[utoipa::path(get, path = "/assets/board.js", tag = "board",
    responses((status = 200, description = "The board's script (embedded)", body = String, content_type = "text/javascript")))]
#[allow(dead_code)]
fn board_js() {}

/// The description, before the roles and version are filled in.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "incidentd",
        description = "Turns monitoring alerts into managed ITIL incidents. Ingest speaks Alertmanager's, its webhook's and PagerDuty's formats; `/api/v2` also serves the Alertmanager API subset that amtool and Grafana read. With a tokens file every request needs `Authorization: Bearer <secret>` (or basic auth) and the role named by `x-incidentd-role`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        ingest_alertmanager_v2, ingest_webhook, ingest_generic, ingest_pagerduty, heartbeat_ping,
        incidents_list, incidents_open, incidents_show, incidents_report, incidents_operate,
        silences_list, silences_create, silences_show, silences_expire, alerts_suppressed,
        am::alerts, am::alert_groups, am::silences, am::create, am::silence, am::expire, am::status,
        openapi_json, reload, backup, metrics, healthy, ready, rules_explain, events,
        board_page, board_incident, board_operate, board_incident_new, board_incident_open,
        board_silences, board_silence_create,
        board_silence_new, board_silence_expire, board_suppressed, board_login_page,
        board_login, board_logout, board_css, board_js,
        oncall_now, schedule_show, override_add, override_remove,
        board_oncall, board_schedule, board_override_add, board_override_remove,
        board_ack_page, board_ack,
    ),
    components(schemas(ErrorBody)),
    modifiers(&Roles),
    tags(
        (name = "ingest", description = "Alerts in; 200 only after they are durable"),
        (name = "incidents", description = "Incidents and their lifecycle"),
        (name = "silences", description = "incidentd's silences and the alerts kept out of incidents"),
        (name = "alertmanager", description = "The Alertmanager API v2 subset (amtool, Grafana)"),
        (name = "rules", description = "Explaining an alert's path through the loaded rules"),
        (name = "operations", description = "Metrics, health, reload, online backup, this description"),
        (name = "events", description = "Incident changes as Server-Sent Events"),
        (name = "oncall", description = "Who is on call, schedules and their overrides (people.yaml)"),
        (name = "board", description = "The incident board: HTML pages and forms for people (not an API; listed so every route is described)"),
    )
)]
struct ApiDoc;

/// Adds each operation's role from [`ROUTES`] and the bearer scheme.
struct Roles;

impl Modify for Roles {
    fn modify(&self, doc: &mut Document) {
        doc.info.version = VERSION.to_string();
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        for (method, path, access, _) in ROUTES {
            let Some(item) = doc.paths.paths.get_mut(*path) else {
                continue;
            };
            let Some(op) = operation(item, method) else {
                continue;
            };
            let role = match access {
                Access::Open => "none".to_string(),
                Access::Role(r) => r.to_string(),
            };
            let ext = ExtensionsBuilder::new()
                .add("x-incidentd-role", role)
                .build();
            match &mut op.extensions {
                Some(e) => e.merge(ext),
                None => op.extensions = Some(ext),
            }
            if matches!(access, Access::Role(_)) {
                op.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
                    "token",
                    Vec::<String>::new(),
                )]);
            }
        }
    }
}

fn operation<'a>(
    item: &'a mut PathItem,
    method: &str,
) -> Option<&'a mut utoipa::openapi::path::Operation> {
    match method {
        "GET" => item.get.as_mut(),
        "POST" => item.post.as_mut(),
        "DELETE" => item.delete.as_mut(),
        "PUT" => item.put.as_mut(),
        "PATCH" => item.patch.as_mut(),
        _ => None,
    }
}

/// The whole description.
pub fn document() -> Document {
    ApiDoc::openapi()
}

/// The description as pretty JSON, as `docs/openapi.json` holds it.
pub fn json() -> String {
    // Serializing plain data into a string cannot fail; an empty answer
    // would only come from a bug, and the tests compare the output.
    document().to_pretty_json().unwrap_or_default() + "\n"
}

/// `GET /api/v1/openapi.json`.
pub async fn serve() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], json()).into_response()
}
