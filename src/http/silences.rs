//! The silence API (create, list, show, expire) in incidentd's own shape,
//! and the alerts currently kept out of incidents.
//!
//! Contract: incidentd's shape spells every field in snake_case on input
//! and output (`starts_at`, `ends_at`, `created_by`, `comment`, `matchers`
//! as text), like the incident API. For compatibility the input also takes
//! the camelCase names (`startsAt`, `endsAt`, `createdBy`) and matchers as
//! Alertmanager's objects; the Alertmanager-shaped API is
//! [`super::alertmanager`], over the same silences. A silence needs
//! matchers, a reason (`comment`) and an author (`created_by`, or the
//! caller's token name), and an end in the future (`ends_at` or
//! `duration`); one that would mute every alert is refused with 400.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::auth::Actor;
use super::{error, json_body, read, unavailable, AppState};
use crate::model::json::to_value;
use crate::model::Silence;
use crate::pipeline::{SilenceError, SilenceOp};

/// A matcher as text (`name="value"`) or as Alertmanager's API object.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum MatcherSpec {
    Text(String),
    Object {
        name: String,
        value: String,
        #[serde(rename = "isRegex", alias = "is_regex", default)]
        is_regex: bool,
        #[serde(rename = "isEqual", alias = "is_equal", default = "yes")]
        is_equal: bool,
    },
}

fn yes() -> bool {
    true
}

impl MatcherSpec {
    fn text(&self) -> String {
        match self {
            MatcherSpec::Text(t) => t.clone(),
            MatcherSpec::Object {
                name,
                value,
                is_regex,
                is_equal,
            } => {
                let op = match (is_regex, is_equal) {
                    (false, true) => "=",
                    (false, false) => "!=",
                    (true, true) => "=~",
                    (true, false) => "!~",
                };
                format!("{name}{op}{value:?}")
            }
        }
    }
}

/// A silence to create: incidentd's snake_case names, or the camelCase
/// ones of Alertmanager's `postableSilence`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewSilence {
    pub(super) matchers: Vec<MatcherSpec>,
    #[serde(default, alias = "startsAt")]
    pub(super) starts_at: Option<chrono::DateTime<Utc>>,
    #[serde(default, alias = "endsAt")]
    pub(super) ends_at: Option<chrono::DateTime<Utc>>,
    /// Alternative to `ends_at`: a humantime duration such as `2h`.
    #[serde(default)]
    pub(super) duration: Option<String>,
    #[serde(default)]
    pub(super) comment: Option<String>,
    #[serde(default, alias = "createdBy")]
    pub(super) created_by: Option<String>,
    /// Alertmanager clients send the id of the silence they update: that
    /// silence is expired and the new one replaces it.
    #[serde(default)]
    pub(super) id: Option<String>,
}

fn silence_json(s: &Silence, now: chrono::DateTime<Utc>) -> serde_json::Value {
    let mut v = to_value(s);
    if let Some(o) = v.as_object_mut() {
        o.insert("state".into(), json!(s.state(now)));
    }
    v
}

/// Longest a silence may last, and latest it may start or end.
const MAX_SILENCE_YEARS: i32 = 10;

/// The silence's start and end, no later than [`MAX_SILENCE_YEARS`] from
/// now and computed without overflow.
fn window(
    req: &NewSilence,
    now: chrono::DateTime<Utc>,
) -> Result<(chrono::DateTime<Utc>, chrono::DateTime<Utc>), String> {
    let latest = now
        .checked_add_months(chrono::Months::new(12 * MAX_SILENCE_YEARS as u32))
        .unwrap_or(chrono::DateTime::<Utc>::MAX_UTC);
    let starts_at = req.starts_at.unwrap_or(now).max(now);
    if starts_at > latest {
        return Err(format!(
            "starts_at: {} is more than {MAX_SILENCE_YEARS} years ahead",
            starts_at.to_rfc3339()
        ));
    }
    let ends_at = match (req.ends_at, req.duration.as_deref()) {
        (Some(e), None) => e,
        (None, Some(d)) => {
            let d = humantime::parse_duration(d).map_err(|e| format!("duration: {d:?}: {e}"))?;
            chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| starts_at.checked_add_signed(d))
                .filter(|e| *e <= latest)
                .ok_or_else(|| {
                    format!("duration: ends more than {MAX_SILENCE_YEARS} years ahead")
                })?
        }
        _ => return Err("give exactly one of ends_at or duration".into()),
    };
    if ends_at > latest {
        return Err(format!(
            "ends_at: {} is more than {MAX_SILENCE_YEARS} years ahead",
            ends_at.to_rfc3339()
        ));
    }
    Ok((starts_at, ends_at))
}

/// `POST /api/v1/silences`: answers `{"silence_id", "silence"}` (and the
/// same id as `silenceID`, its name before 0.2, for older clients).
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
        Ok(sil) => (
            StatusCode::OK,
            Json(json!({
                "silence_id": sil.id,
                "silenceID": sil.id,
                "silence": silence_json(&sil, Utc::now()),
            })),
        )
            .into_response(),
        Err(r) => r,
    }
}

/// Creates a silence (expiring the one it replaces, when `id` names one)
/// and waits until it is durable; the error is the answer to give.
pub(super) async fn create_silence(
    s: &AppState,
    actor: Option<Actor>,
    req: NewSilence,
) -> Result<Silence, Response> {
    let now = Utc::now();
    let (starts_at, ends_at) = match window(&req, now) {
        Ok(w) => w,
        Err(message) => return Err(error(StatusCode::BAD_REQUEST, message)),
    };
    // Both are required and must say something.
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
    };
    // With tokens the token's name is the author; a different name given
    // is kept as who it was done for.
    let (created_by, on_behalf_of) = match (actor, text(&req.created_by)) {
        (Some(Actor(name)), given) => {
            let other = given.filter(|g| *g != name);
            (name, other)
        }
        (None, Some(given)) => (given, None),
        (None, None) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "created_by: say who creates the silence",
            ))
        }
    };
    let Some(comment) = text(&req.comment) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "comment: say why (a change ticket, a reason)",
        ));
    };
    let silence = Silence {
        id: String::new(),
        matchers: req.matchers.iter().map(MatcherSpec::text).collect(),
        starts_at,
        ends_at,
        comment,
        created_by,
        on_behalf_of,
        created_at: now,
        compiled: Vec::new(),
    };
    let created = s
        .handle
        .silence(SilenceOp::Create(Box::new(silence)))
        .await
        .map_err(|e| silence_error(&e))?;
    // Alertmanager's update: the new silence replaces the old one.
    if let Some(old) = req.id.as_deref().filter(|id| !id.is_empty()) {
        match s.handle.silence(SilenceOp::Expire(old.to_string())).await {
            Ok(_) | Err(SilenceError::NotFound(_)) => {}
            Err(e) => return Err(silence_error(&e)),
        }
    }
    Ok(created)
}

/// The answer for a failed silence change.
pub(super) fn silence_error(e: &SilenceError) -> Response {
    match e {
        SilenceError::Invalid(m) => error(StatusCode::BAD_REQUEST, m),
        SilenceError::NotFound(id) => error(StatusCode::NOT_FOUND, format!("no silence {id}")),
        SilenceError::Pipeline(e) => unavailable(e),
    }
}

pub async fn expire(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.handle.silence(SilenceOp::Expire(id)).await {
        Ok(sil) => Json(silence_json(&sil, Utc::now())).into_response(),
        Err(e) => silence_error(&e),
    }
}

pub async fn list(State(s): State<AppState>) -> Response {
    match read(&s.store, move |store| store.silences()).await {
        Ok(list) => {
            let now = Utc::now();
            Json(
                list.iter()
                    .map(|x| silence_json(x, now))
                    .collect::<Vec<_>>(),
            )
            .into_response()
        }
        Err(r) => r,
    }
}

pub async fn show(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match read(&s.store, move |store| store.silences()).await {
        Ok(list) => match list.iter().find(|x| x.id == id) {
            Some(x) => Json(silence_json(x, Utc::now())).into_response(),
            None => error(StatusCode::NOT_FOUND, format!("no silence {id}")),
        },
        Err(r) => r,
    }
}

pub async fn suppressed(State(s): State<AppState>) -> Response {
    match read(&s.store, move |store| store.suppressed()).await {
        Ok(list) => Json(list).into_response(),
        Err(r) => r,
    }
}
