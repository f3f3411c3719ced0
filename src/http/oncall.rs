//! The on-call API: who is on call now (`GET /api/v1/oncall`), a
//! schedule's shifts (`GET /api/v1/schedules/{name}`, and as an iCalendar
//! feed with the `.ics` suffix), and overrides (`POST` and `DELETE`
//! under `/api/v1/schedules/{name}/overrides`).
//!
//! Contract: schedules come from the rules in force (`people.yaml`),
//! overrides from the store (committed ones only); an override changes
//! only through the writer and is answered after its commit. Times are
//! RFC 3339 in and UTC out; a span is at most
//! [`crate::rules::people::MAX_RENDER_DAYS`] days.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::Actor;
use super::{error, json_body, read, unavailable, AppState};
use crate::model::Override;
use crate::pipeline::{OverrideError, OverrideOp};
use crate::rules::people::{People, Rendered, Schedule, MAX_RENDER_DAYS};

/// Who covers one schedule at an instant.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OnCallNow {
    pub schedule: String,
    /// Unset: nobody (the layers' restrictions leave a gap).
    pub person: Option<String>,
    /// When their shift ends (within two months).
    pub until: Option<DateTime<Utc>>,
    /// The layer that puts them on call; unset for an override.
    pub layer: Option<String>,
    pub override_id: Option<String>,
    /// Who comes next, and when.
    pub next: Option<String>,
    pub next_at: Option<DateTime<Utc>>,
}

/// One team and who is on call for it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TeamOnCall {
    pub team: String,
    pub members: Vec<String>,
    pub schedules: Vec<OnCallNow>,
}

/// What `GET /api/v1/oncall` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OnCallAnswer {
    pub at: DateTime<Utc>,
    pub teams: Vec<TeamOnCall>,
}

/// What `GET /api/v1/schedules/{name}` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduleAnswer {
    pub name: String,
    pub team: String,
    pub time_zone: String,
    pub layers: Vec<String>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    #[serde(flatten)]
    pub rendered: Rendered,
    /// Overrides that touch the span (removed ones left out).
    pub overrides: Vec<Override>,
}

/// An override to add.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOverride {
    /// Who covers the schedule.
    pub person: String,
    pub starts_at: DateTime<Utc>,
    /// Give `ends_at` or `duration` (humantime, e.g. `8h`).
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub duration: Option<String>,
    /// Without tokens: who adds it (with tokens, the token's name).
    #[serde(default)]
    pub created_by: Option<String>,
}

/// Who covers `s` at `at`, and who is next.
pub fn on_call(s: &Schedule, at: DateTime<Utc>, overrides: &[Override]) -> OnCallNow {
    let cover = s.at(at, overrides);
    let until = cover.as_ref().and_then(|_| {
        s.render(at, at + Duration::days(62), overrides)
            .shifts
            .first()
            .filter(|f| f.start == at)
            .map(|f| f.end)
    });
    let next = s.next_after(at, overrides);
    OnCallNow {
        schedule: s.name.clone(),
        until,
        layer: cover.as_ref().and_then(|c| c.layer.clone()),
        override_id: cover.as_ref().and_then(|c| c.override_id.clone()),
        person: cover.map(|c| c.person),
        next: next.as_ref().map(|(p, _)| p.clone()),
        next_at: next.map(|(_, t)| t),
    }
}

/// Every team with who is on call for each of its schedules.
pub fn teams_on_call(
    people: &People,
    at: DateTime<Utc>,
    overrides: &[Override],
) -> Vec<TeamOnCall> {
    people
        .teams
        .iter()
        .map(|t| TeamOnCall {
            team: t.name.clone(),
            members: t.members.clone(),
            schedules: t
                .schedules
                .iter()
                .filter_map(|n| people.schedule(n))
                .map(|s| on_call(s, at, overrides))
                .collect(),
        })
        .collect()
}

/// A query's `name` as an RFC 3339 time.
pub fn time_param(
    q: &std::collections::HashMap<String, String>,
    name: &str,
) -> Result<Option<DateTime<Utc>>, String> {
    match q.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => DateTime::parse_from_rfc3339(v)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| format!("{name}: {v:?} is not an RFC 3339 time ({e})")),
    }
}

fn query(raw: Option<String>) -> std::collections::HashMap<String, String> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// `GET /api/v1/oncall?at=`
pub async fn oncall(State(s): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let at = match time_param(&query(q), "at") {
        Ok(t) => t.unwrap_or_else(Utc::now),
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let overrides = match read(&s.store, |st| st.overrides()).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let rules = s.rules.borrow().clone();
    Json(OnCallAnswer {
        at,
        teams: teams_on_call(&rules.people, at, &overrides),
    })
    .into_response()
}

/// A schedule's shifts over `[from, to)` (defaults: now, 7 days).
pub async fn render(
    s: &AppState,
    name: &str,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    default_days: i64,
) -> Result<ScheduleAnswer, Response> {
    let rules = s.rules.borrow().clone();
    let Some(schedule) = rules.people.schedule(name) else {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("no schedule {name:?}"),
        ));
    };
    let from = from.unwrap_or_else(Utc::now);
    let to = to.unwrap_or(from + Duration::days(default_days));
    if to <= from {
        return Err(error(StatusCode::BAD_REQUEST, "to: must be after from"));
    }
    if to - from > Duration::days(MAX_RENDER_DAYS) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("to: at most {MAX_RENDER_DAYS} days after from"),
        ));
    }
    let overrides = read(&s.store, |st| st.overrides()).await?;
    let rendered = schedule.render(from, to, &overrides);
    Ok(ScheduleAnswer {
        name: schedule.name.clone(),
        team: schedule.team.clone(),
        time_zone: schedule.time_zone.name().to_string(),
        layers: schedule.layers.iter().map(|l| l.name.clone()).collect(),
        from,
        to,
        rendered,
        overrides: overrides
            .into_iter()
            .filter(|o| {
                o.schedule == schedule.name
                    && o.removed_at.is_none()
                    && o.starts_at < to
                    && o.ends_at > from
            })
            .collect(),
    })
}

/// `GET /api/v1/schedules/{name}?from=&to=`, or `{name}.ics`: the feed.
pub async fn schedule(
    State(s): State<AppState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query(q);
    let (from, to) = match (time_param(&q, "from"), time_param(&q, "to")) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(m), _) | (_, Err(m)) => return error(StatusCode::BAD_REQUEST, m),
    };
    if let Some(base) = name.strip_suffix(".ics") {
        // A feed: from a week back to two months ahead unless asked.
        let from = from.or_else(|| Some(Utc::now() - Duration::days(7)));
        return match render(&s, base, from, to, 67).await {
            Ok(a) => (
                [
                    (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                ics(&a, Utc::now()),
            )
                .into_response(),
            Err(r) => r,
        };
    }
    match render(&s, &name, from, to, 7).await {
        Ok(a) => Json(a).into_response(),
        Err(r) => r,
    }
}

/// Escapes an iCalendar TEXT value.
fn ics_text(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace(';', "\\;")
        .replace(',', "\\,")
        .replace('\n', "\\n")
}

/// Folds a content line at 75 octets (RFC 5545 3.1), on char boundaries.
fn fold(line: &str, out: &mut String) {
    let mut width = 0;
    for c in line.chars() {
        if width + c.len_utf8() > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += c.len_utf8();
    }
    out.push_str("\r\n");
}

/// The schedule's shifts as an iCalendar (RFC 5545) calendar, one event
/// per shift, times in UTC.
pub fn ics(a: &ScheduleAnswer, now: DateTime<Utc>) -> String {
    let t = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
    let mut out = String::new();
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_string(),
        "VERSION:2.0".into(),
        "PRODID:-//incidentd//on-call//EN".into(),
        "CALSCALE:GREGORIAN".into(),
        format!("X-WR-CALNAME:{}", ics_text(&format!("On call: {}", a.name))),
    ];
    for s in &a.rendered.shifts {
        let how = match (&s.layer, &s.override_id) {
            (_, Some(o)) => format!("override {o}"),
            (Some(l), None) => format!("layer {l}"),
            (None, None) => String::new(),
        };
        lines.extend([
            "BEGIN:VEVENT".to_string(),
            format!(
                "UID:{}-{}-{}@incidentd",
                a.name,
                s.start.timestamp(),
                s.person
            ),
            format!("DTSTAMP:{}", t(now)),
            format!("DTSTART:{}", t(s.start)),
            format!("DTEND:{}", t(s.end)),
            format!(
                "SUMMARY:{}",
                ics_text(&format!("On call: {} ({})", s.person, a.name))
            ),
            format!(
                "DESCRIPTION:{}",
                ics_text(&format!("team {}, {how}", a.team))
            ),
            "TRANSP:TRANSPARENT".into(),
            "END:VEVENT".into(),
        ]);
    }
    lines.push("END:VCALENDAR".into());
    for l in lines {
        fold(&l, &mut out);
    }
    out
}

/// The answer for an override change that failed.
pub fn override_error(e: &OverrideError) -> Response {
    match e {
        OverrideError::Invalid(i) => error(StatusCode::BAD_REQUEST, i),
        OverrideError::NotFound { .. } => error(StatusCode::NOT_FOUND, e),
        OverrideError::Pipeline(p) => unavailable(p),
    }
}

/// The override a request asks for (not yet checked against the rules).
pub fn new_override(
    schedule: &str,
    req: &NewOverride,
    actor: Option<Actor>,
) -> Result<Override, String> {
    let ends_at = match (req.ends_at, req.duration.as_deref()) {
        (Some(e), None) => e,
        (None, Some(d)) => {
            let d =
                humantime::parse_duration(d.trim()).map_err(|e| format!("duration: {d:?}: {e}"))?;
            req.starts_at + crate::model::wall(d)
        }
        _ => return Err("give exactly one of ends_at or duration".into()),
    };
    let created_by = match (actor, req.created_by.as_deref().map(str::trim)) {
        (Some(Actor(name)), _) => name,
        (None, Some(by)) if !by.is_empty() => by.to_string(),
        _ => return Err("created_by: say who adds the override".into()),
    };
    Ok(Override {
        id: String::new(),
        schedule: schedule.to_string(),
        person: req.person.trim().to_string(),
        starts_at: req.starts_at,
        ends_at,
        created_by,
        created_at: Utc::now(),
        removed_at: None,
    })
}

/// `POST /api/v1/schedules/{name}/overrides`: 201 with the override.
pub async fn add_override(
    State(s): State<AppState>,
    Path(name): Path<String>,
    actor: Option<Extension<Actor>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rej) => return error(rej.status(), rej.body_text()),
    };
    let req: NewOverride = match json_body(&body) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let o = match new_override(&name, &req, actor.map(|Extension(a)| a)) {
        Ok(o) => o,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    if s.rules.borrow().people.schedule(&name).is_none() {
        return error(StatusCode::NOT_FOUND, format!("no schedule {name:?}"));
    }
    match s.handle.override_op(OverrideOp::Add(Box::new(o))).await {
        Ok(o) => (StatusCode::CREATED, Json(json!({"override": o}))).into_response(),
        Err(e) => override_error(&e),
    }
}

/// `DELETE /api/v1/schedules/{name}/overrides/{id}`
pub async fn remove_override(
    State(s): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    match s
        .handle
        .override_op(OverrideOp::Remove { schedule: name, id })
        .await
    {
        Ok(o) => Json(json!({"override": o})).into_response(),
        Err(e) => override_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ics_escapes_folds_and_uses_crlf() {
        let t = |h: i64| DateTime::from_timestamp(1_800_000_000 + h * 3600, 0).expect("t");
        let a = ScheduleAnswer {
            name: "db".into(),
            team: "dba; ops".into(),
            time_zone: "UTC".into(),
            layers: vec!["main".into()],
            from: t(0),
            to: t(2),
            rendered: Rendered {
                shifts: vec![crate::rules::people::Shift {
                    start: t(0),
                    end: t(2),
                    person: "ana".into(),
                    layer: Some("main, with a very long name that goes past the line limit".into()),
                    override_id: None,
                }],
                gaps: Vec::new(),
            },
            overrides: Vec::new(),
        };
        let cal = ics(&a, t(0));
        assert!(cal.starts_with("BEGIN:VCALENDAR\r\n") && cal.ends_with("END:VCALENDAR\r\n"));
        assert!(cal.contains("DTSTART:20270115T080000Z\r\n"), "{cal}");
        assert!(cal.contains("team dba\\; ops\\, layer main\\,"), "{cal}");
        assert!(cal.split("\r\n").all(|l| l.len() <= 75));
    }
}
