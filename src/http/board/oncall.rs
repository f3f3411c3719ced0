//! The board's on-call pages: who is on call (`/oncall`), a schedule's
//! shifts with its overrides and the form to add one
//! (`/schedules/{name}`), and the page an acknowledgement link opens
//! (`/ack/{token}`).
//!
//! Contract: like the rest of the board (see the parent module): the
//! pages read the rules in force and the store; forms change state only
//! through the writer and redirect after the commit. Opening an
//! acknowledgement link changes nothing: it shows the incident and one
//! button; the button's post acknowledges as the person the link was
//! signed for, with no token (the signature is the credential; the guard
//! still refuses a cross-site post).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};

use super::{csrf_ok, error_page, fields, page, read, see_other, Viewer, CSRF_REFUSED};
use crate::http::auth::{Actor, CallerRole, Via};
use crate::http::oncall::{new_override, render, teams_on_call, time_param, NewOverride};
use crate::http::AppState;
use crate::model::ack_link::AckLinkError;
use crate::model::{Op, OpRequest};
use crate::pipeline::{OverrideError, OverrideOp};

/// Local time in `tz`, as people read it.
fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%a %Y-%m-%d %H:%M %Z")
        .to_string()
}

/// `GET /oncall`
pub async fn oncall(
    State(s): State<AppState>,
    actor: Option<Extension<Actor>>,
    role: Option<Extension<CallerRole>>,
    via: Option<Extension<Via>>,
) -> Response {
    let viewer = Viewer::new(&s.reload.auth, (actor, role), via);
    let overrides = match read(&s.store, |st| st.overrides()).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let rules = s.rules.borrow().clone();
    let now = Utc::now();
    let teams: Vec<Value> = teams_on_call(&rules.people, now, &overrides)
        .into_iter()
        .map(|t| {
            let schedules: Vec<Value> = t
                .schedules
                .iter()
                .map(|o| {
                    let tz = rules
                        .people
                        .schedule(&o.schedule)
                        .map(|s| s.time_zone)
                        .unwrap_or(Tz::UTC);
                    json!({
                        "name": o.schedule,
                        "person": o.person,
                        "until": o.until.map(|t| local(t, tz)),
                        "next": o.next,
                        "next_at": o.next_at.map(|t| local(t, tz)),
                        "override": o.override_id.is_some(),
                    })
                })
                .collect();
            json!({"team": t.team, "members": t.members, "schedules": schedules})
        })
        .collect();
    page(
        StatusCode::OK,
        "oncall.html",
        &viewer,
        "oncall",
        "On call",
        json!({"teams": teams, "now": now.to_rfc3339()}),
    )
}

/// `GET /schedules/{name}?from=&days=`
pub async fn schedule(
    State(s): State<AppState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    actor: Option<Extension<Actor>>,
    role: Option<Extension<CallerRole>>,
    via: Option<Extension<Via>>,
) -> Response {
    let viewer = Viewer::new(&s.reload.auth, (actor, role), via);
    let q = fields(q.unwrap_or_default().as_bytes());
    schedule_page(
        &s,
        &viewer,
        &name,
        &q,
        StatusCode::OK,
        q.get("done").cloned(),
        None,
    )
    .await
}

async fn schedule_page(
    s: &AppState,
    viewer: &Viewer,
    name: &str,
    q: &std::collections::HashMap<String, String>,
    status: StatusCode,
    flash: Option<String>,
    problem: Option<String>,
) -> Response {
    let from = match time_param(q, "from") {
        Ok(f) => f,
        Err(m) => return error_page(StatusCode::BAD_REQUEST, viewer, &m),
    };
    let days = q
        .get("days")
        .and_then(|d| d.parse::<i64>().ok())
        .unwrap_or(14)
        .clamp(1, 90);
    let from = from.unwrap_or_else(Utc::now);
    let answer = match render(s, name, Some(from), Some(from + Duration::days(days)), days).await {
        Ok(a) => a,
        Err(_) => {
            return error_page(
                StatusCode::NOT_FOUND,
                viewer,
                &format!("No schedule {name:?} in the rules in force."),
            )
        }
    };
    let rules = s.rules.borrow().clone();
    let tz: Tz = answer.time_zone.parse().unwrap_or(Tz::UTC);
    let shifts: Vec<Value> = answer
        .rendered
        .shifts
        .iter()
        .map(|x| {
            json!({
                "person": x.person,
                "start": local(x.start, tz),
                "end": local(x.end, tz),
                "start_utc": x.start.to_rfc3339(),
                "hours": format!("{:.1}", (x.end - x.start).num_minutes() as f64 / 60.0),
                "layer": x.layer,
                "override_id": x.override_id,
            })
        })
        .collect();
    let gaps: Vec<Value> = answer
        .rendered
        .gaps
        .iter()
        .map(|g| json!({"start": local(g.start, tz), "end": local(g.end, tz)}))
        .collect();
    let overrides: Vec<Value> = answer
        .overrides
        .iter()
        .map(|o| {
            json!({
                "id": o.id, "person": o.person, "start": local(o.starts_at, tz),
                "end": local(o.ends_at, tz), "created_by": o.created_by,
            })
        })
        .collect();
    let people: Vec<String> = rules
        .people
        .persons
        .iter()
        .map(|p| p.name.clone())
        .collect();
    page(
        status,
        "schedule.html",
        viewer,
        "oncall",
        &format!("Schedule {}", answer.name),
        json!({
            "schedule": {"name": answer.name, "team": answer.team, "time_zone": answer.time_zone, "layers": answer.layers},
            "shifts": shifts, "gaps": gaps, "overrides": overrides, "people": people,
            "days": days, "can_operate": viewer.operator,
            "default_start": Utc::now().format("%Y-%m-%dT%H:%M:00Z").to_string(),
            "flash": flash, "problem": problem,
        }),
    )
}

fn done(name: &str, message: &str) -> Response {
    see_other(&format!(
        "/schedules/{name}?{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("done", message)
            .finish()
    ))
}

fn override_status(e: &OverrideError) -> StatusCode {
    match e {
        OverrideError::Invalid(_) => StatusCode::BAD_REQUEST,
        OverrideError::NotFound { .. } => StatusCode::NOT_FOUND,
        OverrideError::Pipeline(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// `POST /schedules/{name}/overrides`: `person`, `starts_at` (RFC 3339),
/// `duration` (e.g. `8h`), `csrf`, `by` (without tokens).
pub async fn add_override(
    State(s): State<AppState>,
    Path(name): Path<String>,
    actor: Option<Extension<Actor>>,
    role: Option<Extension<CallerRole>>,
    via: Option<Extension<Via>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let form = match &body {
        Ok(b) => fields(b),
        Err(_) => Default::default(),
    };
    let ok = csrf_ok(&via, &form);
    let who = actor.clone().map(|Extension(a)| a);
    let viewer = Viewer::new(&s.reload.auth, (actor, role), via);
    if !ok {
        return error_page(StatusCode::FORBIDDEN, &viewer, CSRF_REFUSED);
    }
    let q = Default::default();
    let starts_at = match time_param(&form, "starts_at") {
        Ok(Some(t)) => t,
        Ok(None) => Utc::now(),
        Err(m) => {
            return schedule_page(
                &s,
                &viewer,
                &name,
                &q,
                StatusCode::BAD_REQUEST,
                None,
                Some(m),
            )
            .await
        }
    };
    let req = NewOverride {
        person: form.get("person").cloned().unwrap_or_default(),
        starts_at,
        ends_at: None,
        duration: Some(form.get("duration").cloned().unwrap_or_else(|| "8h".into())),
        created_by: form.get("by").cloned(),
    };
    let o = match new_override(&name, &req, who) {
        Ok(o) => o,
        Err(m) => {
            return schedule_page(
                &s,
                &viewer,
                &name,
                &q,
                StatusCode::BAD_REQUEST,
                None,
                Some(m),
            )
            .await
        }
    };
    match s.handle.override_op(OverrideOp::Add(Box::new(o))).await {
        Ok(o) => done(
            &name,
            &format!(
                "Override {}: {} covers {name} from {} to {}.",
                o.id,
                o.person,
                o.starts_at.to_rfc3339(),
                o.ends_at.to_rfc3339()
            ),
        ),
        Err(e) => {
            schedule_page(
                &s,
                &viewer,
                &name,
                &q,
                override_status(&e),
                None,
                Some(e.to_string()),
            )
            .await
        }
    }
}

/// `POST /schedules/{name}/overrides/{id}/remove`
pub async fn remove_override(
    State(s): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    actor: Option<Extension<Actor>>,
    role: Option<Extension<CallerRole>>,
    via: Option<Extension<Via>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let form = match &body {
        Ok(b) => fields(b),
        Err(_) => Default::default(),
    };
    let ok = csrf_ok(&via, &form);
    let viewer = Viewer::new(&s.reload.auth, (actor, role), via);
    if !ok {
        return error_page(StatusCode::FORBIDDEN, &viewer, CSRF_REFUSED);
    }
    match s
        .handle
        .override_op(OverrideOp::Remove {
            schedule: name.clone(),
            id: id.clone(),
        })
        .await
    {
        Ok(_) => done(&name, &format!("Override {id} removed.")),
        Err(e) => {
            let q = Default::default();
            schedule_page(
                &s,
                &viewer,
                &name,
                &q,
                override_status(&e),
                None,
                Some(e.to_string()),
            )
            .await
        }
    }
}

fn link_status(e: &AckLinkError) -> StatusCode {
    match e {
        AckLinkError::Malformed => StatusCode::BAD_REQUEST,
        AckLinkError::BadSignature => StatusCode::FORBIDDEN,
        AckLinkError::Expired(_) => StatusCode::GONE,
    }
}

/// `GET /ack/{token}`: the incident and one button; changes nothing.
pub async fn ack_page(
    State(s): State<AppState>,
    Path(token): Path<String>,
    actor: Option<Extension<Actor>>,
    role: Option<Extension<CallerRole>>,
    via: Option<Extension<Via>>,
) -> Response {
    let viewer = Viewer::new(&s.reload.auth, (actor, role), via);
    let claim = match s.ack_key.verify(&token, Utc::now()) {
        Ok(c) => c,
        Err(e) => return error_page(link_status(&e), &viewer, &e.to_string()),
    };
    let key = claim.incident;
    let incident = match read(&s.store, move |st| st.incident(key)).await {
        Ok(Some(i)) => i,
        Ok(None) => {
            return error_page(
                StatusCode::NOT_FOUND,
                &viewer,
                &format!("No incident {key}."),
            )
        }
        Err(r) => return r,
    };
    page(
        StatusCode::OK,
        "ack.html",
        &viewer,
        "ack",
        &format!("Acknowledge {}", incident.id),
        json!({
            "incident": incident, "person": claim.person, "token": token,
            "expires_at": claim.expires_at.to_rfc3339(),
            "open": incident.status == crate::model::Status::Open,
        }),
    )
}

/// `POST /ack/{token}`: acknowledges as the person the link names.
pub async fn ack(
    State(s): State<AppState>,
    Path(token): Path<String>,
    actor: Option<Extension<Actor>>,
    role: Option<Extension<CallerRole>>,
    via: Option<Extension<Via>>,
) -> Response {
    let viewer = Viewer::new(&s.reload.auth, (actor, role), via);
    let claim = match s.ack_key.verify(&token, Utc::now()) {
        Ok(c) => c,
        Err(e) => return error_page(link_status(&e), &viewer, &e.to_string()),
    };
    let req = OpRequest {
        by: Some(claim.person.clone()),
        ..OpRequest::default()
    };
    let (status, message) = match s.handle.op(claim.incident, Op::Ack, req).await {
        Ok(i) => (
            StatusCode::OK,
            format!(
                "{} acknowledged as {}. Escalation stops.",
                i.id, claim.person
            ),
        ),
        Err(crate::pipeline::OpFailure::Op(crate::engine::OpError::NotFound(id))) => {
            (StatusCode::NOT_FOUND, format!("No incident {id}."))
        }
        Err(crate::pipeline::OpFailure::Op(e)) => (
            StatusCode::CONFLICT,
            format!("{} was not acknowledged: {e}", claim.incident),
        ),
        Err(crate::pipeline::OpFailure::Pipeline(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Not acknowledged, try again: {e}"),
        ),
    };
    let key = claim.incident;
    let incident = read(&s.store, move |st| st.incident(key))
        .await
        .ok()
        .flatten();
    let ok = status == StatusCode::OK;
    page(
        status,
        "ack.html",
        &viewer,
        "ack",
        &format!("Acknowledge {key}"),
        json!({
            "incident": incident, "person": claim.person, "token": token,
            "done": ok, "flash": ok.then_some(message.clone()),
            "problem": (!ok).then_some(message),
        }),
    )
}
