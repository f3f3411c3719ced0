//! The silence API (create, list, show, expire) in incidentd's own shape
//! and Alertmanager's (matchers as text or as objects, camelCase times),
//! and the alerts currently kept out of incidents.
//!
//! Contract: a silence needs matchers, a reason (`comment`) and an author
//! (`createdBy`), and an end in the future (`endsAt` or `duration`); one
//! that would mute every alert is refused with 400.

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
enum MatcherSpec {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSilence {
    matchers: Vec<MatcherSpec>,
    #[serde(default, rename = "startsAt", alias = "starts_at")]
    starts_at: Option<chrono::DateTime<Utc>>,
    #[serde(default, rename = "endsAt", alias = "ends_at")]
    ends_at: Option<chrono::DateTime<Utc>>,
    /// Alternative to `endsAt`: a humantime duration such as `2h`.
    #[serde(default)]
    duration: Option<String>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default, rename = "createdBy", alias = "created_by")]
    created_by: Option<String>,
    /// Alertmanager clients send an id when updating; a new silence is made.
    #[serde(default)]
    #[allow(dead_code)]
    id: Option<String>,
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
            "startsAt: {} is more than {MAX_SILENCE_YEARS} years ahead",
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
        _ => return Err("give exactly one of endsAt or duration".into()),
    };
    if ends_at > latest {
        return Err(format!(
            "endsAt: {} is more than {MAX_SILENCE_YEARS} years ahead",
            ends_at.to_rfc3339()
        ));
    }
    Ok((starts_at, ends_at))
}

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
    let now = Utc::now();
    let (starts_at, ends_at) = match window(&req, now) {
        Ok(w) => w,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
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
        (Some(Extension(Actor(name))), given) => {
            let other = given.filter(|g| *g != name);
            (name, other)
        }
        (None, Some(given)) => (given, None),
        (None, None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "createdBy: say who creates the silence",
            )
        }
    };
    let Some(comment) = text(&req.comment) else {
        return error(
            StatusCode::BAD_REQUEST,
            "comment: say why (a change ticket, a reason)",
        );
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
    match s.handle.silence(SilenceOp::Create(Box::new(silence))).await {
        Ok(sil) => (
            StatusCode::OK,
            Json(json!({"silenceID": sil.id, "silence": silence_json(&sil, now)})),
        )
            .into_response(),
        Err(SilenceError::Invalid(m)) => error(StatusCode::BAD_REQUEST, m),
        Err(SilenceError::NotFound(id)) => error(StatusCode::NOT_FOUND, format!("no silence {id}")),
        Err(SilenceError::Pipeline(e)) => unavailable(&e),
    }
}

pub async fn expire(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.handle.silence(SilenceOp::Expire(id)).await {
        Ok(sil) => Json(silence_json(&sil, Utc::now())).into_response(),
        Err(SilenceError::NotFound(id)) => error(StatusCode::NOT_FOUND, format!("no silence {id}")),
        Err(SilenceError::Invalid(m)) => error(StatusCode::BAD_REQUEST, m),
        Err(SilenceError::Pipeline(e)) => unavailable(&e),
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
