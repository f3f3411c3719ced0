//! The Alertmanager API v2 subset that amtool, karma and Grafana's
//! Alertmanager data source read and write: alerts and alert groups,
//! silences, status. Ingest (`POST /api/v2/alerts`) is [`super::ingest`].
//!
//! Input: Alertmanager's query parameters (`filter` matchers, repeated;
//! `active`, `silenced`, `inhibited`, `unprocessed`, each `true` unless
//! given `false`; `receiver` as an anchored regex) and its
//! `postableSilence`. Output: Alertmanager's JSON shapes (camelCase,
//! matchers as objects), over incidentd's own state:
//! - an alert is every firing alert incidentd tracks: in a live incident
//!   (`active`), or kept out of one (`suppressed`, with `silencedBy` the
//!   silence, `inhibitedBy` the inhibiting alert's fingerprint, or
//!   `mutedBy` the maintenance window). Resolved alerts are not listed,
//!   as in Alertmanager. Every alert has the one receiver `incidentd`;
//! - an alert group is a live incident (its common labels) or, for
//!   suppressed alerts, their `alertname`;
//! - silences are incidentd's own (`/api/v1/silences` shows the same
//!   ones); an update (`id` given) expires the old silence and creates a
//!   new one, and `DELETE` expires it.
//!
//! Invalid matchers answer 400 naming the parameter; nothing here panics.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::Actor;
use super::silences::{create_silence, silence_error, NewSilence};
use super::{error, json_body, read, AppState};
use crate::metrics::{REVISION, VERSION};
use crate::model::fingerprint::to_hex;
use crate::model::matcher::{self, Matcher, Op};
use crate::model::{Labels, Reason, Silence, SilenceState, SuppressedAlert, TrackedAlert};
use crate::pipeline::SilenceOp;

/// The one receiver every alert has.
pub const RECEIVER: &str = "incidentd";

/// A receiver.
#[derive(Debug, Serialize, ToSchema)]
pub struct Receiver {
    pub name: String,
}

/// Where an alert stands (`alertStatus`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GettableAlertStatus)]
pub struct AlertStatus {
    /// `active` (in an incident) or `suppressed` (kept out of one).
    #[schema(pattern = "^(unprocessed|active|suppressed)$")]
    pub state: String,
    /// Ids of the silences muting it.
    pub silenced_by: Vec<String>,
    /// Fingerprints of the alerts inhibiting it.
    pub inhibited_by: Vec<String>,
    /// Maintenance windows muting it (Alertmanager's time intervals).
    pub muted_by: Vec<String>,
}

/// An alert as Alertmanager lists it (`gettableAlert`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GettableAlert {
    #[schema(value_type = BTreeMap<String, String>)]
    pub labels: Labels,
    #[schema(value_type = BTreeMap<String, String>)]
    pub annotations: Labels,
    pub starts_at: DateTime<Utc>,
    /// When the sender said it ends; `0001-01-01T00:00:00Z` when it gave
    /// no end.
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    /// Alertmanager's fingerprint of the labels, 16 hex digits.
    pub fingerprint: String,
    /// When incidentd last heard of it.
    pub updated_at: DateTime<Utc>,
    pub receivers: Vec<Receiver>,
    pub status: AlertStatus,
}

/// A group of alerts (`alertGroup`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertGroup {
    /// The incident's common labels, or `alertname` for suppressed alerts.
    #[schema(value_type = BTreeMap<String, String>)]
    pub labels: Labels,
    pub receiver: Receiver,
    pub alerts: Vec<GettableAlert>,
}

/// A silence matcher as an object.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatcherObject {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    pub is_equal: bool,
}

/// A silence's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct SilenceStatus {
    #[schema(pattern = "^(expired|active|pending)$")]
    pub state: String,
}

/// A silence as Alertmanager lists it (`gettableSilence`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GettableSilence {
    pub id: String,
    pub status: SilenceStatus,
    pub updated_at: DateTime<Utc>,
    pub matchers: Vec<MatcherObject>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
}

/// What `POST /api/v2/silences` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct SilenceCreated {
    #[serde(rename = "silenceID")]
    pub silence_id: String,
}

/// A silence to create or update (`postableSilence`); incidentd also
/// takes its own field names here (see `POST /api/v1/silences`).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the request body; parsed as `NewSilence`
#[schema(as = PostableSilence)]
pub struct PostableSilenceDoc {
    /// The silence this one replaces (it is expired).
    pub id: Option<String>,
    pub matchers: Vec<PostableMatcher>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
}

/// A matcher of a postable silence.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the request body
pub struct PostableMatcher {
    pub name: String,
    pub value: String,
    #[schema(rename = "isRegex")]
    pub is_regex: bool,
    #[schema(rename = "isEqual")]
    pub is_equal: Option<bool>,
}

/// The cluster: incidentd runs no gossip cluster.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterStatus {
    /// Always `disabled`.
    pub status: String,
    pub peers: Vec<serde_json::Value>,
}

/// Build information, in Alertmanager's fields.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    pub version: String,
    pub revision: String,
    pub branch: String,
    pub build_user: String,
    pub build_date: String,
    /// incidentd is written in Rust: `none`.
    pub go_version: String,
}

/// The configuration: incidentd has no Alertmanager configuration; this
/// says where its rules come from.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusConfig {
    pub original: String,
}

/// What `GET /api/v2/status` answers (`alertmanagerStatus`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AlertmanagerStatus)]
pub struct Status {
    pub cluster: ClusterStatus,
    pub version_info: VersionInfo,
    pub config: StatusConfig,
    /// When this daemon started.
    pub uptime: DateTime<Utc>,
}

/// The query parameters of the alert lists.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query; parsed by `AlertQuery::parse`
pub struct AlertQueryDoc {
    /// Matchers the alerts' labels must satisfy (repeatable), e.g.
    /// `alertname="DiskFull"` or `{env="prod",team=~"db.*"}`.
    filter: Option<Vec<String>>,
    /// Include active alerts (default true).
    active: Option<bool>,
    /// Include silenced alerts (default true).
    silenced: Option<bool>,
    /// Include inhibited alerts (default true).
    inhibited: Option<bool>,
    /// Include unprocessed alerts (default true; incidentd has none).
    unprocessed: Option<bool>,
    /// A regex the receiver's name must match (every alert's is `incidentd`).
    receiver: Option<String>,
}

/// The query parameters of the silence list.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query
pub struct SilenceQueryDoc {
    /// Matchers a silence must contain (same name, operator and value).
    filter: Option<Vec<String>>,
}

/// Why a query of this API was refused (answered 400 with this text).
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("query parameter {param}: {value:?} is not true or false")]
    NotABool { param: String, value: String },
    #[error("query parameter {param}: {message}")]
    Invalid {
        param: &'static str,
        message: String,
    },
}

impl QueryError {
    fn answer(&self) -> Response {
        error(StatusCode::BAD_REQUEST, self)
    }
}

/// Parsed query parameters.
struct AlertQuery {
    filter: Vec<Matcher>,
    active: bool,
    silenced: bool,
    inhibited: bool,
    receiver_ok: bool,
}

impl AlertQuery {
    fn parse(raw: Option<&str>) -> Result<AlertQuery, QueryError> {
        let mut q = AlertQuery {
            filter: Vec::new(),
            active: true,
            silenced: true,
            inhibited: true,
            receiver_ok: true,
        };
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            let flag = |v: &str| match v {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                other => Err(QueryError::NotABool {
                    param: k.to_string(),
                    value: other.to_string(),
                }),
            };
            match &*k {
                "filter" => q.filter.extend(parse_filter(&v)?),
                "active" => q.active = flag(&v)?,
                "silenced" => q.silenced = flag(&v)?,
                "inhibited" => q.inhibited = flag(&v)?,
                // incidentd has no unprocessed alerts: nothing to leave out.
                "unprocessed" => {
                    flag(&v)?;
                }
                "receiver" => {
                    let m = Matcher::new("receiver", Op::Re, &v).map_err(|message| {
                        QueryError::Invalid {
                            param: "receiver",
                            message,
                        }
                    })?;
                    q.receiver_ok = m.matches_value(RECEIVER);
                }
                _ => {}
            }
        }
        Ok(q)
    }

    /// Whether an alert with these labels and this status is listed, by
    /// Alertmanager's rules.
    fn keeps(&self, labels: &Labels, status: &AlertStatus) -> bool {
        self.receiver_ok
            && (self.active || status.state != "active")
            && (self.silenced || status.silenced_by.is_empty())
            && (self.inhibited || status.inhibited_by.is_empty())
            && matcher::all_match(&self.filter, labels)
    }
}

fn parse_filter(text: &str) -> Result<Vec<Matcher>, QueryError> {
    matcher::parse(text).map_err(|e| QueryError::Invalid {
        param: "filter",
        message: e.to_string(),
    })
}

/// Alertmanager's "no end" time.
const NO_END: &str = "0001-01-01T00:00:00Z";

fn gettable(a: &TrackedAlert, status: AlertStatus) -> GettableAlert {
    GettableAlert {
        labels: a.labels.clone(),
        annotations: a.annotations.clone(),
        starts_at: a.starts_at,
        ends_at: a.ends_at.map_or_else(
            || NO_END.to_string(),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        ),
        generator_url: a.generator_url.to_string(),
        fingerprint: to_hex(a.fingerprint),
        updated_at: a.last_seen_at,
        receivers: vec![Receiver {
            name: RECEIVER.to_string(),
        }],
        status,
    }
}

fn active() -> AlertStatus {
    AlertStatus {
        state: "active".into(),
        silenced_by: Vec::new(),
        inhibited_by: Vec::new(),
        muted_by: Vec::new(),
    }
}

fn suppressed_status(s: &SuppressedAlert) -> AlertStatus {
    let mut st = AlertStatus {
        state: "suppressed".into(),
        ..active()
    };
    let by = s.suppression.by.clone();
    match s.suppression.reason {
        Reason::Silence => st.silenced_by.push(by),
        Reason::Inhibit => st
            .inhibited_by
            .push(s.suppression.inhibited_by.clone().unwrap_or(by)),
        Reason::Maintenance | Reason::Flapping => st.muted_by.push(by),
    }
    st
}

/// Every firing alert as groups: one per live incident, then one per
/// alertname of the suppressed ones.
async fn groups(s: &AppState, q: &AlertQuery) -> Result<Vec<AlertGroup>, Response> {
    let (live, suppressed) = read(&s.store, move |store| {
        Ok((store.firing_alerts()?, store.suppressed()?))
    })
    .await?;
    let mut out = Vec::new();
    for (incident, alerts) in live {
        let alerts: Vec<GettableAlert> = alerts
            .iter()
            .map(|a| (a, active()))
            .filter(|(a, st)| q.keeps(&a.alert.labels, st))
            .map(|(a, st)| gettable(&a.alert, st))
            .collect();
        if !alerts.is_empty() {
            out.push(AlertGroup {
                labels: incident.labels,
                receiver: Receiver {
                    name: RECEIVER.into(),
                },
                alerts,
            });
        }
    }
    let mut by_name: BTreeMap<String, Vec<GettableAlert>> = BTreeMap::new();
    for sa in suppressed
        .iter()
        .filter(|sa| sa.alert.status == crate::model::AlertStatus::Firing)
    {
        let st = suppressed_status(sa);
        if q.keeps(&sa.alert.labels, &st) {
            by_name
                .entry(sa.alert.alertname().to_string())
                .or_default()
                .push(gettable(&sa.alert, st));
        }
    }
    for (name, alerts) in by_name {
        let mut labels = Labels::default();
        if !name.is_empty() {
            labels.insert("alertname".to_string(), name);
        }
        out.push(AlertGroup {
            labels,
            receiver: Receiver {
                name: RECEIVER.into(),
            },
            alerts,
        });
    }
    Ok(out)
}

/// `GET /api/v2/alerts`
#[utoipa::path(get, path = "/api/v2/alerts", tag = "alertmanager",
    params(AlertQueryDoc),
    responses((status = 200, description = "Firing alerts", body = Vec<GettableAlert>),
              (status = 400, description = "Invalid filter", body = super::openapi::ErrorBody)))]
pub async fn alerts(State(s): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    let q = match AlertQuery::parse(raw.as_deref()) {
        Ok(q) => q,
        Err(e) => return e.answer(),
    };
    match groups(&s, &q).await {
        Ok(g) => Json(
            g.into_iter()
                .flat_map(|g| g.alerts)
                .collect::<Vec<GettableAlert>>(),
        )
        .into_response(),
        Err(r) => r,
    }
}

/// `GET /api/v2/alerts/groups`
#[utoipa::path(get, path = "/api/v2/alerts/groups", tag = "alertmanager",
    params(AlertQueryDoc),
    responses((status = 200, description = "Firing alerts by incident", body = Vec<AlertGroup>),
              (status = 400, description = "Invalid filter", body = super::openapi::ErrorBody)))]
pub async fn alert_groups(State(s): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    let q = match AlertQuery::parse(raw.as_deref()) {
        Ok(q) => q,
        Err(e) => return e.answer(),
    };
    match groups(&s, &q).await {
        Ok(g) => Json(g).into_response(),
        Err(r) => r,
    }
}

fn gettable_silence(s: &Silence, now: DateTime<Utc>) -> GettableSilence {
    let matchers = s
        .matchers
        .iter()
        .flat_map(|t| matcher::parse(t).unwrap_or_default())
        .map(|m| MatcherObject {
            is_regex: matches!(m.op, Op::Re | Op::NotRe),
            is_equal: matches!(m.op, Op::Eq | Op::Re),
            name: m.name,
            value: m.value,
        })
        .collect();
    let state = s.state(now);
    GettableSilence {
        id: s.id.clone(),
        status: SilenceStatus {
            state: state.as_str().to_string(),
        },
        // incidentd changes a silence only by expiring it.
        updated_at: if state == SilenceState::Expired {
            s.ends_at.max(s.created_at)
        } else {
            s.created_at
        },
        matchers,
        starts_at: s.starts_at,
        ends_at: s.ends_at,
        created_by: s.created_by.clone(),
        comment: s.comment.clone(),
    }
}

/// `GET /api/v2/silences`
#[utoipa::path(get, path = "/api/v2/silences", tag = "alertmanager",
    params(SilenceQueryDoc),
    responses((status = 200, description = "Every silence: active, then pending, then expired", body = Vec<GettableSilence>),
              (status = 400, description = "Invalid filter", body = super::openapi::ErrorBody)))]
pub async fn silences(State(s): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    let mut filter = Vec::new();
    for (k, v) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        if k == "filter" {
            match parse_filter(&v) {
                Ok(m) => filter.extend(m),
                Err(e) => return e.answer(),
            }
        }
    }
    let list = match read(&s.store, move |store| store.silences()).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let now = Utc::now();
    let mut out: Vec<GettableSilence> = list
        .iter()
        .map(|x| gettable_silence(x, now))
        .filter(|g| {
            filter.iter().all(|f| {
                g.matchers.iter().any(|m| {
                    m.name == f.name
                        && m.value == f.value
                        && m.is_regex == matches!(f.op, Op::Re | Op::NotRe)
                        && m.is_equal == matches!(f.op, Op::Eq | Op::Re)
                })
            })
        })
        .collect();
    // Alertmanager's order: active by end, pending by start, expired newest first.
    out.sort_by(|a, b| {
        let rank = |g: &GettableSilence| match g.status.state.as_str() {
            "active" => 0,
            "pending" => 1,
            _ => 2,
        };
        rank(a).cmp(&rank(b)).then_with(|| match rank(a) {
            0 => a.ends_at.cmp(&b.ends_at),
            1 => a.starts_at.cmp(&b.starts_at),
            _ => b.ends_at.cmp(&a.ends_at),
        })
    });
    Json(out).into_response()
}

/// `POST /api/v2/silences`
#[utoipa::path(post, path = "/api/v2/silences", tag = "alertmanager",
    request_body = PostableSilenceDoc,
    responses((status = 200, description = "Created (durable)", body = SilenceCreated),
              (status = 400, description = "Invalid silence", body = super::openapi::ErrorBody),
              (status = 503, description = "Cannot store it now", body = super::openapi::ErrorBody)))]
pub async fn create(
    State(s): State<AppState>,
    actor: Option<Extension<Actor>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rej) => return error(rej.status(), rej.body_text()),
    };
    let req: NewSilence = match json_body(&body) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    match create_silence(&s, actor.map(|Extension(a)| a), req).await {
        Ok(sil) => Json(SilenceCreated { silence_id: sil.id }).into_response(),
        Err(r) => r,
    }
}

/// `GET /api/v2/silence/{id}`
#[utoipa::path(get, path = "/api/v2/silence/{id}", tag = "alertmanager",
    params(("id" = String, Path, description = "Silence id")),
    responses((status = 200, description = "The silence", body = GettableSilence),
              (status = 404, description = "No such silence", body = super::openapi::ErrorBody)))]
pub async fn silence(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match read(&s.store, move |store| store.silences()).await {
        Ok(list) => match list.iter().find(|x| x.id == id) {
            Some(x) => Json(gettable_silence(x, Utc::now())).into_response(),
            None => error(StatusCode::NOT_FOUND, format!("no silence {id}")),
        },
        Err(r) => r,
    }
}

/// `DELETE /api/v2/silence/{id}`: expires it.
#[utoipa::path(delete, path = "/api/v2/silence/{id}", tag = "alertmanager",
    params(("id" = String, Path, description = "Silence id")),
    responses((status = 200, description = "Expired (durable); empty body"),
              (status = 404, description = "No such silence", body = super::openapi::ErrorBody),
              (status = 503, description = "Cannot store it now", body = super::openapi::ErrorBody)))]
pub async fn expire(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.handle.silence(SilenceOp::Expire(id)).await {
        Ok(_) => StatusCode::OK.into_response(),
        Err(e) => silence_error(&e),
    }
}

/// `GET /api/v2/status`
#[utoipa::path(get, path = "/api/v2/status", tag = "alertmanager",
    responses((status = 200, description = "Version and uptime", body = Status)))]
pub async fn status(State(s): State<AppState>) -> Response {
    Json(Status {
        cluster: ClusterStatus {
            status: "disabled".into(),
            peers: Vec::new(),
        },
        version_info: VersionInfo {
            version: VERSION.into(),
            revision: REVISION.into(),
            branch: String::new(),
            build_user: String::new(),
            build_date: String::new(),
            go_version: "none".into(),
        },
        config: StatusConfig {
            original: format!(
                "# incidentd {VERSION} has no Alertmanager configuration; its rules: {}\n",
                s.reload.rules.describe()
            ),
        },
        uptime: s.started_at,
    })
    .into_response()
}
