//! The incident board: server-rendered HTML pages for people, at `/`.
//!
//! Contract:
//! - Pages: the board (`/`: active incidents grouped by priority, with
//!   filters, counts and SLA clocks), an incident (`/incidents/{id}`:
//!   source, major incident and grouped ones, relations, merge, priority
//!   override, the service-desk fields, alerts, timeline, similar past
//!   incidents, the rendered report and the operator's forms: lifecycle,
//!   merge, link, priority override), the service desk's form to open an
//!   incident (`/incidents/new`, posted to `/incidents`), silences
//!   (`/silences`, `/silences/new` with a preview of the firing alerts a
//!   silence would match), suppressed alerts (`/suppressed`) and the login
//!   (`/login`).
//! - The pages read the same store views as the JSON API and change state
//!   only through the writer pipeline ([`crate::pipeline::Handle`]), like
//!   the API's handlers; a form's answer comes after the commit.
//! - Every form post redirects (303) back to its page with a message on
//!   success; a refusal (a 409 conflict, a 400, a 404) renders the page
//!   again with the message and the status, never a bare error.
//! - A form posted with the session cookie must carry the session's CSRF
//!   token ([`Via::Session`]); one authenticated by a header needs none;
//!   one with neither is refused (403). Cross-site posts are refused by
//!   the guard before that ([`super::auth`]).
//! - The stylesheet and script are embedded in the binary (no CDN); pages
//!   send a `Content-Security-Policy` that allows only them.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::{DateTime, Utc};
use minijinja::Environment;
use serde::Serialize;
use serde_json::{json, Value};

use super::auth::{Actor, Auth, CallerRole, Denied, Role, Via};
use super::silences::{MatcherSpec, NewSilence};
use super::{read, AppState};
use crate::engine::OpError;
use crate::model::json::to_value;
use crate::model::{
    matcher, DeskOp, Incident, IncidentKey, Labels, Level, LinkRequest, ManualIncident,
    MergeRequest, Op, OpRequest, Priority, PriorityRequest, RelationKind, SilenceState,
    SplitRequest, Status, TransitionError, CATEGORIES,
};
use crate::pipeline::{OpFailure, SilenceError, SilenceOp};
use crate::store::ListFilter;

/// The embedded stylesheet.
pub const CSS: &str = include_str!("assets/board.css");
/// The embedded script.
pub const JS: &str = include_str!("assets/board.js");

pub mod oncall;

const TEMPLATES: [(&str, &str); 14] = [
    ("base.html", include_str!("templates/base.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("board.html", include_str!("templates/board.html")),
    ("incident.html", include_str!("templates/incident.html")),
    (
        "incident_new.html",
        include_str!("templates/incident_new.html"),
    ),
    ("silences.html", include_str!("templates/silences.html")),
    (
        "silence_new.html",
        include_str!("templates/silence_new.html"),
    ),
    ("suppressed.html", include_str!("templates/suppressed.html")),
    ("login.html", include_str!("templates/login.html")),
    ("error.html", include_str!("templates/error.html")),
    ("oncall.html", include_str!("templates/oncall.html")),
    ("schedule.html", include_str!("templates/schedule.html")),
    ("ack.html", include_str!("templates/ack.html")),
    ("pages.html", include_str!("templates/pages.html")),
];

/// The templates, compiled once. A template that does not compile is
/// logged and left out (its pages then answer 500; a unit test renders
/// every page, so this cannot ship).
static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in TEMPLATES {
        if let Err(e) = env.add_template(name, source) {
            tracing::error!(template = name, error = %e, "board template does not compile");
        }
    }
    env
});

/// Most incidents read per status for the board list.
const BOARD_READ: usize = 1000;
/// Most incidents shown on the board.
const BOARD_SHOW: usize = 500;

/// `GET /assets/board.css`
pub async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

/// `GET /assets/board.js`
pub async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// What every page knows about its viewer.
struct Viewer {
    actor: Option<String>,
    /// May act on incidents and silences (no tokens, or operator and up).
    operator: bool,
    auth: bool,
    csrf: Option<String>,
    /// A new session cookie to set (auth off, first visit).
    set_cookie: Option<String>,
}

impl Viewer {
    fn new(
        auth: &Auth,
        parts: (Option<Extension<Actor>>, Option<Extension<CallerRole>>),
        via: Option<Extension<Via>>,
    ) -> Viewer {
        let (actor, role) = parts;
        let actor = actor.map(|Extension(Actor(a))| a);
        let operator =
            !auth.enabled() || role.is_some_and(|Extension(CallerRole(r))| r >= Role::Operator);
        match via.map(|Extension(v)| v) {
            Some(Via::Session { csrf }) => Viewer {
                actor,
                operator,
                auth: auth.enabled(),
                csrf: Some(csrf),
                set_cookie: None,
            },
            Some(Via::Header) => Viewer {
                actor,
                operator,
                auth: auth.enabled(),
                csrf: None,
                set_cookie: None,
            },
            Some(Via::Nothing) | None => {
                // Without tokens the board still needs a cookie for its
                // CSRF tokens: a random one, keyed (no server state).
                let value = Auth::new_cookie_value();
                Viewer {
                    actor,
                    operator,
                    auth: auth.enabled(),
                    csrf: Some(auth.csrf_for(&value)),
                    set_cookie: Some(auth.cookie_header(&value)),
                }
            }
        }
    }
}

/// Renders a page; `ctx` is merged over what every page gets.
fn page(
    status: StatusCode,
    template: &str,
    viewer: &Viewer,
    page_name: &str,
    title: &str,
    ctx: Value,
) -> Response {
    let mut base = json!({
        "page": page_name,
        "title": title,
        "actor": viewer.actor,
        "auth": viewer.auth,
        "csrf": viewer.csrf,
        "operator": viewer.operator,
    });
    if let (Some(b), Value::Object(extra)) = (base.as_object_mut(), ctx) {
        b.extend(extra);
    }
    let body = ENV.get_template(template).and_then(|t| t.render(&base));
    let (status, body) = match body {
        Ok(b) => (status, b),
        Err(e) => {
            tracing::error!(template, error = %e, "board page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the page {template} failed to render (logged)"),
            )
        }
    };
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(c) = &viewer.set_cookie {
        if let Ok(v) = HeaderValue::from_str(c) {
            h.insert(header::SET_COOKIE, v);
        }
    }
    r
}

/// A page that only says what went wrong.
fn error_page(status: StatusCode, viewer: &Viewer, message: &str) -> Response {
    page(
        status,
        "error.html",
        viewer,
        "error",
        message,
        json!({"problem": message}),
    )
}

/// 303 to `to`.
fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// The guard's refusal of a board route: the login page (401) for a
/// caller without credentials, else a page saying why.
pub fn refused(d: Denied, target: &str) -> Response {
    let viewer = Viewer {
        actor: None,
        operator: false,
        auth: true,
        csrf: None,
        set_cookie: None,
    };
    match d {
        Denied::NoCredentials | Denied::BadCredentials => {
            let mut r = page(
                StatusCode::UNAUTHORIZED,
                "login.html",
                &viewer,
                "login",
                "Log in",
                json!({"next": safe_next(target)}),
            );
            // Bearer only: a Basic challenge would make the browser ask
            // for a password in its own dialog instead of this page.
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="incidentd""#),
            );
            r
        }
        Denied::Forbidden => error_page(
            StatusCode::FORBIDDEN,
            &viewer,
            "Your token's role does not allow this (working incidents and silences needs an operator token).",
        ),
        Denied::CrossSite => error_page(
            StatusCode::FORBIDDEN,
            &viewer,
            "Cross-site request refused: this form must be sent from the board's own pages.",
        ),
        Denied::ContentType => error_page(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &viewer,
            "This form takes application/x-www-form-urlencoded.",
        ),
    }
}

/// Where to go after logging in: a path of this site, else the board.
fn safe_next(next: &str) -> String {
    if next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\") {
        if next.starts_with("/login") || next.starts_with("/logout") {
            "/".into()
        } else {
            next.to_string()
        }
    } else {
        "/".into()
    }
}

/// The query string or form body as name → value (the last one wins).
fn fields(raw: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(raw).into_owned().collect()
}

/// A form's CSRF check (see the module contract).
fn csrf_ok(via: &Option<Extension<Via>>, form: &HashMap<String, String>) -> bool {
    match via.as_ref().map(|Extension(v)| v) {
        Some(Via::Header) => true,
        Some(Via::Session { csrf }) => form.get("csrf").is_some_and(|given| {
            subtle::ConstantTimeEq::ct_eq(given.as_bytes(), csrf.as_bytes()).into()
        }),
        Some(Via::Nothing) | None => false,
    }
}

const CSRF_REFUSED: &str =
    "This form's session token is missing or stale (a restart ends sessions): reload the page and send it again.";

fn fmt_span(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m", s / 60)
    } else if s < 48 * 3600 {
        format!("{}h {}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}d {}h", s / 86400, (s % 86400) / 3600)
    }
}

/// The SLA clock of an incident: the deadline that matters now, what it
/// is for, whether it was missed, and a text for it.
#[derive(Serialize)]
struct SlaClock {
    deadline: Option<String>,
    what: &'static str,
    breached: bool,
    text: String,
}

fn sla_clock(i: &Incident, now: DateTime<Utc>) -> SlaClock {
    let (deadline, what, breached) = match i.status {
        Status::Open => (
            Some(i.sla.acknowledge_by),
            "acknowledge",
            i.sla.acknowledge_breached || now > i.sla.acknowledge_by,
        ),
        Status::Acknowledged => (
            Some(i.sla.resolve_by),
            "resolve",
            i.sla.resolve_breached || now > i.sla.resolve_by,
        ),
        Status::Resolved | Status::Closed => (None, "", i.sla.breached),
    };
    let text = match deadline {
        Some(d) if breached => format!("{what} SLA breached {} ago", fmt_span(now - d)),
        Some(d) => format!("{} to {what}", fmt_span(d - now)),
        None if breached => "SLA breached".into(),
        None => "SLA met".into(),
    };
    SlaClock {
        deadline: deadline.map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        what,
        breached,
        text,
    }
}

/// The board's filters as given.
#[derive(Default, Serialize)]
struct BoardFilter {
    status: String,
    priority: String,
    category: String,
    labels: String,
    q: String,
}

/// `GET /`: the board.
pub async fn board(
    State(s): State<AppState>,
    RawQuery(q): RawQuery,
    actor: Option<Extension<Actor>>,
    role: Option<Extension<CallerRole>>,
    via: Option<Extension<Via>>,
) -> Response {
    let viewer = Viewer::new(&s.reload.auth, (actor, role), via);
    let given = fields(q.unwrap_or_default().as_bytes());
    let get = |k: &str| {
        given
            .get(k)
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let f = BoardFilter {
        status: Some(get("status"))
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "active".into()),
        priority: get("priority").to_ascii_uppercase(),
        category: get("category"),
        labels: get("labels"),
        q: get("q"),
    };
    let mut problems = Vec::new();
    let statuses: Vec<Status> = match f.status.as_str() {
        "active" => vec![Status::Open, Status::Acknowledged],
        v => match Status::parse(v) {
            Some(st) => vec![st],
            None => {
                problems.push(format!(
                    "status {v:?} is not one of active, open, acknowledged, resolved, closed"
                ));
                vec![Status::Open, Status::Acknowledged]
            }
        },
    };
    let priority = match f.priority.as_str() {
        "" => None,
        v => match Priority::parse(v) {
            Some(p) => Some(p),
            None => {
                problems.push(format!("priority {v:?} is not one of P1..P5"));
                None
            }
        },
    };
    let category = match f.category.as_str() {
        "" => None,
        v if CATEGORIES.contains(&v) => Some(v.to_string()),
        v => {
            problems.push(format!(
                "category {v:?} is not one of {}",
                CATEGORIES.join(", ")
            ));
            None
        }
    };
    let matchers = match f.labels.as_str() {
        "" => Vec::new(),
        text => match matcher::parse(text) {
            Ok(m) => m,
            Err(e) => {
                problems.push(format!("labels: {e}"));
                Vec::new()
            }
        },
    };
    // Each status through the store's status index, newest first, at most
    // BOARD_READ each: never every incident.
    let filters: Vec<ListFilter> = statuses
        .iter()
        .map(|st| ListFilter {
            status: Some(*st),
            priority,
            category: category.clone(),
            limit: BOARD_READ,
            ..ListFilter::default()
        })
        .collect();
    let read_all = read(&s.store, move |store| {
        let mut out = Vec::new();
        let mut full = false;
        for f in &filters {
            let got = store.list(f)?;
            full |= got.len() >= f.limit;
            out.extend(got);
        }
        Ok((out, full))
    })
    .await;
    let (mut incidents, mut truncated) = match read_all {
        Ok(v) => v,
        Err(r) => return r,
    };
    let needle = f.q.to_lowercase();
    incidents.retain(|i| {
        matcher::all_match(&matchers, &i.labels) && (needle.is_empty() || text_matches(i, &needle))
    });
    incidents.sort_by_key(|i| std::cmp::Reverse(i.created_at));
    if incidents.len() > BOARD_SHOW {
        incidents.truncate(BOARD_SHOW);
        truncated = true;
    }
    let now = Utc::now();
    let mut counts = [0usize; 5];
    let mut groups: Vec<Vec<Value>> = vec![Vec::new(); 5];
    for i in &incidents {
        counts[i.priority.idx()] += 1;
        let clock = sla_clock(i, now);
        groups[i.priority.idx()].push(json!({
            "id": i.id.to_string(),
            "title": i.title,
            "status": i.status,
            "category": i.category,
            "created_at": i.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "age": fmt_span(now - i.created_at),
            "alert_count": i.alert_count,
            "firing_count": i.firing_count,
            "assignee": i.assignee,
            "sla_deadline": clock.deadline,
            "sla_what": clock.what,
            "sla_breached": clock.breached,
            "sla_text": clock.text,
        }));
    }
    let groups: Vec<Value> = Priority::ALL
        .iter()
        .zip(groups)
        .filter(|(_, list)| !list.is_empty())
        .map(|(p, list)| json!({"priority": p.as_str(), "incidents": list}))
        .collect();
    let counts: Vec<Value> = Priority::ALL
        .iter()
        .map(|p| json!({"priority": p.as_str(), "count": counts[p.idx()]}))
        .collect();
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    page(
        status,
        "board.html",
        &viewer,
        "board",
        "Board",
        json!({
            "live": true,
            "f": f,
            "categories": CATEGORIES,
            "counts": counts,
            "groups": groups,
            "total": incidents.len(),
            "truncated": truncated,
            "problem": (!problems.is_empty()).then(|| problems.join("; ")),
        }),
    )
}

/// The text search: id, title, assignee, category and label values.
fn text_matches(i: &Incident, needle: &str) -> bool {
    let hit = |s: &str| s.to_lowercase().contains(needle);
    hit(&i.id.to_string())
        || hit(&i.title)
        || hit(&i.category)
        || i.assignee.as_deref().is_some_and(hit)
        || i.labels.iter().any(|(k, v)| hit(k) || hit(v))
}

/// `GET /incidents/{id}`
pub async fn incident(
    State(s): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    actor: Option<Extension<Actor>>,
    role: Option<Extension<CallerRole>>,
    via: Option<Extension<Via>>,
) -> Response {
    let viewer = Viewer::new(&s.reload.auth, (actor, role), via);
    let given = fields(q.unwrap_or_default().as_bytes());
    let flash = given.get("done").map(|d| done_message(d));
    incident_page(&s, &viewer, &id, StatusCode::OK, flash, None).await
}

fn done_message(d: &str) -> String {
    match d {
        "ack" => "Acknowledged.".into(),
        "assign" => "Assigned.".into(),
        "notes" => "Note added.".into(),
        "resolve" => "Resolved.".into(),
        "close" => "Closed.".into(),
        "reopen" => "Reopened.".into(),
        "open" => "Incident opened.".into(),
        "merge" => "Merged: this incident is closed, its alerts and timeline moved.".into(),
        "link" => "Linked.".into(),
        "split" => {
            "Opened by a split: these alerts left the incident named in the timeline.".into()
        }
        "priority" => "Priority overridden.".into(),
        "priority-cleared" => "Priority override cleared: the rules decide again.".into(),
        _ => "Done.".into(),
    }
}

async fn incident_page(
    s: &AppState,
    viewer: &Viewer,
    id: &str,
    status: StatusCode,
    flash: Option<String>,
    problem: Option<String>,
) -> Response {
    let Some(key) = IncidentKey::parse(id) else {
        return error_page(
            StatusCode::NOT_FOUND,
            viewer,
            "No such incident (ids look like INC-20261123-0001).",
        );
    };
    let full = match read(&s.store, move |store| store.incident_full(key)).await {
        Ok(Some(f)) => f,
        Ok(None) => {
            return error_page(
                StatusCode::NOT_FOUND,
                viewer,
                &format!("No incident {key}."),
            )
        }
        Err(r) => return r,
    };
    let (inc, alerts, timeline) = full;
    let now = Utc::now();
    let similar = super::incidents::similar_details(&s.store, &inc.similar).await;
    let report_html = markdown(&super::report::render(&inc, &alerts, &timeline, now));
    let alerts: Vec<Value> = alerts
        .iter()
        .map(|a| {
            let labels: Vec<String> = a
                .alert
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect();
            let link = form_urlencoded::Serializer::new(String::new())
                .append_pair("matchers", &labels.join("\n"))
                .append_pair("comment", &format!("{}: ", inc.id))
                .finish();
            let t = to_value(&a.alert);
            json!({
                "status": a.alert.status,
                "flapping": a.flapping,
                "labels": a.alert.labels,
                "summary": a.alert.annotations.get("summary").or_else(|| a.alert.annotations.get("description")),
                "fingerprint": t.get("fingerprint"),
                "starts_at": a.alert.starts_at,
                "last_seen_at": a.alert.last_seen_at,
                "occurrences": a.occurrences,
                "repeats": a.alert.repeat_count,
                "silence_link": format!("/silences/new?{link}"),
            })
        })
        .collect();
    let can_operate = viewer.operator;
    let relations: Vec<Value> = inc
        .relations
        .iter()
        .map(|r| {
            json!({
                "to": r.to.to_string(),
                "relation": r.relation.as_str(),
                "text": relation_text(r.relation),
                "by": r.by,
                "at": to_value(&r.at),
            })
        })
        .collect();
    page(
        status,
        "incident.html",
        viewer,
        "incident",
        &format!("{} {}", inc.id, inc.title),
        json!({
            "live": true,
            "incident_id": inc.id.to_string(),
            "i": to_value(&inc),
            "relations": relations,
            "relation_kinds": RELATION_CHOICES
                .iter()
                .map(|k| json!({"value": k.as_str(), "text": relation_text(*k)}))
                .collect::<Vec<_>>(),
            "priorities": Priority::ALL.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            "levels": Level::ALL.iter().map(|l| l.as_str()).collect::<Vec<_>>(),
            "sla": sla_clock(&inc, now),
            "alerts": alerts,
            "timeline": to_value(&timeline),
            "similar": similar,
            "report_html": report_html,
            "can_operate": can_operate,
            "flash": flash,
            "problem": problem,
        }),
    )
}

/// Markdown to HTML; raw HTML in the source (alert labels and notes come
/// from outside) is shown as text, never passed through.
fn markdown(md: &str) -> String {
    use pulldown_cmark::{Event, Options, Parser};
    let parser = Parser::new_ext(md, Options::ENABLE_TABLES).map(|e| match e {
        Event::Html(t) | Event::InlineHtml(t) => Event::Text(t),
        other => other,
    });
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, parser);
    out
}

/// `POST /incidents/{id}/{action}`: ack, assign, notes, resolve, close,
/// reopen from the incident page's forms.
pub async fn operate(
    State(s): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    actor: Option<Extension<Actor>>,
    role: Option<Extension<CallerRole>>,
    via: Option<Extension<Via>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let form = match &body {
        Ok(b) => fields(b),
        Err(_) => HashMap::new(),
    };
    let ok = csrf_ok(&via, &form);
    let viewer = Viewer::new(&s.reload.auth, (actor.clone(), role), via);
    if let Err(rej) = body {
        return error_page(rej.status(), &viewer, &rej.body_text());
    }
    if !ok {
        return error_page(StatusCode::FORBIDDEN, &viewer, CSRF_REFUSED);
    }
    if DESK_ACTIONS.contains(&action.as_str()) {
        let by = board_actor(actor, &form);
        return desk(&s, &viewer, &id, &action, by, &form).await;
    }
    let Some(op) = Op::parse(&action) else {
        return error_page(
            StatusCode::NOT_FOUND,
            &viewer,
            &format!(
                "Unknown action {action:?}: expected ack, assign, notes, resolve, close, reopen, merge, link, split or priority."
            ),
        );
    };
    let Some(key) = IncidentKey::parse(&id) else {
        return error_page(StatusCode::NOT_FOUND, &viewer, "No such incident.");
    };
    let text = |k: &str| {
        form.get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let mut req = OpRequest {
        by: text("by"),
        note: text("note"),
        assignee: text("assignee"),
        workaround: text("workaround"),
        root_cause: text("root_cause"),
        on_behalf_of: None,
    };
    match actor {
        Some(Extension(Actor(name))) => req.by = Some(name),
        None if req.by.is_none() => req.by = Some("board".into()),
        None => {}
    }
    let problem = match s.handle.op(key, op, req).await {
        Ok(_) => return see_other(&format!("/incidents/{key}?done={action}")),
        Err(OpFailure::Op(OpError::NotFound(id))) => {
            return error_page(
                StatusCode::NOT_FOUND,
                &viewer,
                &format!("No incident {id}."),
            )
        }
        Err(OpFailure::Op(OpError::Transition(TransitionError::BadRequest(m)))) => {
            (StatusCode::BAD_REQUEST, m)
        }
        Err(OpFailure::Op(OpError::Transition(illegal))) => {
            (StatusCode::CONFLICT, illegal.to_string())
        }
        Err(OpFailure::Op(OpError::Conflict(m))) => (StatusCode::CONFLICT, m),
        Err(OpFailure::Pipeline(e)) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    incident_page(&s, &viewer, &id, problem.0, None, Some(problem.1)).await
}

/// The service-desk actions of the incident page's forms.
const DESK_ACTIONS: [&str; 4] = ["merge", "link", "split", "priority"];

/// The prefix of the split form's checkboxes: `split.<fingerprint>`.
const SPLIT_BOX: &str = "split.";

/// The relations the link form offers, seen from this incident.
const RELATION_CHOICES: [RelationKind; 3] = [
    RelationKind::CausedBy,
    RelationKind::Causes,
    RelationKind::Related,
];

/// A relation as the page says it ("this incident … INC-…").
fn relation_text(r: RelationKind) -> &'static str {
    match r {
        RelationKind::CausedBy => "caused by",
        RelationKind::Causes => "causes",
        RelationKind::Related => "related to",
    }
}

/// Who acts on a service-desk form: the session's or token's name, else
/// the form's `by` (no tokens), else `board`.
fn board_actor(actor: Option<Extension<Actor>>, form: &HashMap<String, String>) -> String {
    match actor {
        Some(Extension(Actor(name))) => name,
        None => form
            .get("by")
            .map(|b| b.trim())
            .filter(|b| !b.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| "board".into()),
    }
}

/// How a refused request shows on a page: its status and message.
fn refusal(e: OpFailure) -> (StatusCode, String) {
    match e {
        OpFailure::Op(OpError::NotFound(id)) => {
            (StatusCode::NOT_FOUND, format!("No incident {id}."))
        }
        OpFailure::Op(OpError::Transition(TransitionError::BadRequest(m))) => {
            (StatusCode::BAD_REQUEST, m)
        }
        OpFailure::Op(OpError::Transition(illegal)) => (StatusCode::CONFLICT, illegal.to_string()),
        OpFailure::Op(OpError::Conflict(m)) => (StatusCode::CONFLICT, m),
        OpFailure::Pipeline(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// A form field, trimmed; empty counts as not given.
fn given(form: &HashMap<String, String>, k: &str) -> Option<String> {
    form.get(k)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// An impact or urgency field: empty is "not given".
fn level_field(form: &HashMap<String, String>, k: &str) -> Result<Option<Level>, String> {
    match given(form, k) {
        None => Ok(None),
        Some(v) => Level::parse(&v.to_ascii_lowercase())
            .map(Some)
            .ok_or_else(|| format!("{k}: {v:?} is not one of high, medium, low")),
    }
}

/// An incident id field (`INC-…`, any case).
fn key_field(form: &HashMap<String, String>, k: &str) -> Result<IncidentKey, String> {
    let v = given(form, k)
        .ok_or_else(|| format!("{k}: name an incident (ids look like INC-20261123-0001)"))?;
    IncidentKey::parse(&v.to_ascii_uppercase()).ok_or_else(|| {
        format!("{k}: {v:?} is not an incident id (ids look like INC-20261123-0001)")
    })
}

/// A service-desk form as the request the API takes, and the `done`
/// message of its success; `Err` names the field that is wrong.
fn desk_request(
    action: &str,
    form: &HashMap<String, String>,
) -> Result<(DeskOp, &'static str), String> {
    match action {
        "merge" => Ok((
            DeskOp::Merge(MergeRequest {
                into: key_field(form, "into")?,
                by: None,
            }),
            "merge",
        )),
        "split" => {
            let mut alerts: Vec<String> = form
                .iter()
                .filter(|(k, v)| k.starts_with(SPLIT_BOX) && !v.is_empty())
                .map(|(k, _)| k[SPLIT_BOX.len()..].to_string())
                .collect();
            if alerts.is_empty() {
                return Err("split: tick the alerts that leave for the new incident".into());
            }
            alerts.sort();
            Ok((
                DeskOp::Split(SplitRequest {
                    alerts,
                    title: given(form, "title"),
                    by: None,
                }),
                "split",
            ))
        }
        "link" => {
            let to = key_field(form, "to")?;
            let v = given(form, "relation").unwrap_or_default();
            let relation = RelationKind::parse(&v).ok_or_else(|| {
                format!("relation: {v:?} is not one of caused_by, causes, related")
            })?;
            Ok((
                DeskOp::Link(LinkRequest {
                    to,
                    relation,
                    by: None,
                }),
                "link",
            ))
        }
        _ => {
            let clear = given(form, "clear").is_some_and(|v| v != "0" && v != "false");
            let priority = match given(form, "priority") {
                None => None,
                Some(v) => Some(
                    Priority::parse(&v.to_ascii_uppercase())
                        .ok_or_else(|| format!("priority: {v:?} is not one of P1..P5"))?,
                ),
            };
            let req = PriorityRequest {
                impact: level_field(form, "impact")?,
                urgency: level_field(form, "urgency")?,
                priority,
                reason: given(form, "reason"),
                clear,
                by: None,
            };
            let done = if clear {
                "priority-cleared"
            } else {
                "priority"
            };
            Ok((DeskOp::Priority(req), done))
        }
    }
}

/// `POST /incidents/{id}/{merge|link|split|priority}`: through the writer
/// pipeline as the API's requests; a refusal is a message on the page. A
/// split lands on the new incident's page.
async fn desk(
    s: &AppState,
    viewer: &Viewer,
    id: &str,
    action: &str,
    by: String,
    form: &HashMap<String, String>,
) -> Response {
    let Some(key) = IncidentKey::parse(id) else {
        return error_page(StatusCode::NOT_FOUND, viewer, "No such incident.");
    };
    let (op, done) = match desk_request(action, form) {
        Ok(x) => x,
        Err(m) => {
            return incident_page(s, viewer, id, StatusCode::BAD_REQUEST, None, Some(m)).await
        }
    };
    match s.handle.desk(Some(key), op, by).await {
        Ok(new) if done == "split" => see_other(&format!("/incidents/{}?done=split", new.id)),
        Ok(_) => see_other(&format!("/incidents/{key}?done={done}")),
        Err(e) => {
            let (status, m) = refusal(e);
            incident_page(s, viewer, id, status, None, Some(m)).await
        }
    }
}

/// `GET /incidents/new`: the service desk's form to open an incident.
pub async fn new_incident(
    State(s): State<AppState>,
    actor: Option<Extension<Actor>>,
    role: Option<Extension<CallerRole>>,
    via: Option<Extension<Via>>,
) -> Response {
    let viewer = Viewer::new(&s.reload.auth, (actor, role), via);
    new_incident_page(&viewer, StatusCode::OK, &HashMap::new(), None)
}

fn new_incident_page(
    viewer: &Viewer,
    status: StatusCode,
    form: &HashMap<String, String>,
    problem: Option<String>,
) -> Response {
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    page(
        status,
        "incident_new.html",
        viewer,
        "new-incident",
        "Open an incident",
        json!({
            "form": {
                "title": get("title"),
                "description": get("description"),
                "category": given(form, "category").unwrap_or_else(|| "other".into()),
                "impact": get("impact"),
                "urgency": get("urgency"),
                "reporter": get("reporter"),
                "contact": get("contact"),
                "service": get("service"),
                "occurred_at_local": get("occurred_at_local"),
                "labels": get("labels"),
            },
            "categories": CATEGORIES,
            "levels": Level::ALL.iter().map(|l| l.as_str()).collect::<Vec<_>>(),
            "can_operate": viewer.operator,
            "problem": problem,
        }),
    )
}

/// The new-incident form as the API's body.
fn manual_incident(form: &HashMap<String, String>) -> Result<ManualIncident, String> {
    Ok(ManualIncident {
        title: form.get("title").cloned().unwrap_or_default(),
        description: given(form, "description"),
        category: given(form, "category"),
        impact: level_field(form, "impact")?,
        urgency: level_field(form, "urgency")?,
        reporter: given(form, "reporter"),
        contact: given(form, "contact"),
        service: given(form, "service"),
        occurred_at: occurred_at(form)?,
        labels: label_lines(form)?,
        ..ManualIncident::default()
    })
}

/// When the problem began: the instant the page's script computed from
/// the local time typed (`occurred_at`), else that local time read as UTC.
fn occurred_at(form: &HashMap<String, String>) -> Result<Option<DateTime<Utc>>, String> {
    if let Some(v) = given(form, "occurred_at") {
        return DateTime::parse_from_rfc3339(&v)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| format!("occurred_at: {v:?} is not an RFC 3339 time: {e}"));
    }
    let Some(v) = given(form, "occurred_at_local") else {
        return Ok(None);
    };
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(&v, f).ok())
        .map(|t| Some(t.and_utc()))
        .ok_or_else(|| format!("began at: {v:?} is not a date and time like 2026-12-02T09:30"))
}

/// The labels field: one `name=value` a line (quotes around the value
/// optional); names as Prometheus allows.
fn label_lines(form: &HashMap<String, String>) -> Result<Labels, String> {
    let mut pairs = Vec::new();
    for (n, line) in form
        .get("labels")
        .map(String::as_str)
        .unwrap_or("")
        .lines()
        .enumerate()
    {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(format!(
                "labels, line {}: {line:?} is not name=value",
                n + 1
            ));
        };
        let k = k.trim();
        let valid = k
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
        if k.is_empty() || !valid {
            return Err(format!(
                "labels, line {}: {k:?} is not a label name (letters, digits and _, not starting with a digit)",
                n + 1
            ));
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|x| x.strip_suffix('"'))
            .unwrap_or(v);
        pairs.push((k.to_string(), v.to_string()));
    }
    Ok(pairs.into_iter().collect())
}

/// `POST /incidents`: opens the form's incident (service desk) through
/// the writer pipeline, then to its page.
pub async fn open_incident(
    State(s): State<AppState>,
    actor: Option<Extension<Actor>>,
    role: Option<Extension<CallerRole>>,
    via: Option<Extension<Via>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let form = match &body {
        Ok(b) => fields(b),
        Err(_) => HashMap::new(),
    };
    let ok = csrf_ok(&via, &form);
    let viewer = Viewer::new(&s.reload.auth, (actor.clone(), role), via);
    if let Err(rej) = body {
        return error_page(rej.status(), &viewer, &rej.body_text());
    }
    if !ok {
        return error_page(StatusCode::FORBIDDEN, &viewer, CSRF_REFUSED);
    }
    let m = match manual_incident(&form) {
        Ok(m) => m,
        Err(e) => return new_incident_page(&viewer, StatusCode::BAD_REQUEST, &form, Some(e)),
    };
    let by = board_actor(actor, &form);
    match s.handle.desk(None, DeskOp::Open(m), by).await {
        Ok(inc) => see_other(&format!("/incidents/{}?done=open", inc.id)),
        Err(e) => {
            let (status, m) = refusal(e);
            new_incident_page(&viewer, status, &form, Some(m))
        }
    }
}

/// `GET /silences`
pub async fn silences(
    State(s): State<AppState>,
    RawQuery(q): RawQuery,
    actor: Option<Extension<Actor>>,
    role: Option<Extension<CallerRole>>,
    via: Option<Extension<Via>>,
) -> Response {
    let viewer = Viewer::new(&s.reload.auth, (actor, role), via);
    let given = fields(q.unwrap_or_default().as_bytes());
    silences_page(
        &s,
        &viewer,
        StatusCode::OK,
        given.get("done").cloned(),
        None,
    )
    .await
}

async fn silences_page(
    s: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    flash: Option<String>,
    problem: Option<String>,
) -> Response {
    let mut list = match read(&s.store, |store| store.silences()).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let now = Utc::now();
    let rank = |st: SilenceState| match st {
        SilenceState::Active => 0,
        SilenceState::Pending => 1,
        SilenceState::Expired => 2,
    };
    list.sort_by(|a, b| {
        rank(a.state(now))
            .cmp(&rank(b.state(now)))
            .then(b.ends_at.cmp(&a.ends_at))
    });
    let rows: Vec<Value> = list
        .iter()
        .map(|x| {
            let mut v = to_value(x);
            if let Some(o) = v.as_object_mut() {
                o.insert("state".into(), json!(x.state(now).as_str()));
            }
            v
        })
        .collect();
    page(
        status,
        "silences.html",
        viewer,
        "silences",
        "Silences",
        json!({
            "silences": rows,
            "can_operate": viewer.operator,
            "flash": flash,
            "problem": problem,
        }),
    )
}

/// `GET /silences/new?matchers=…`: the form, prefilled, with a preview.
pub async fn new_silence(
    State(s): State<AppState>,
    RawQuery(q): RawQuery,
    actor: Option<Extension<Actor>>,
    role: Option<Extension<CallerRole>>,
    via: Option<Extension<Via>>,
) -> Response {
    let viewer = Viewer::new(&s.reload.auth, (actor, role), via);
    let form = fields(q.unwrap_or_default().as_bytes());
    new_silence_page(&s, &viewer, StatusCode::OK, &form, None).await
}

async fn new_silence_page(
    s: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    form: &HashMap<String, String>,
    problem: Option<String>,
) -> Response {
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let matchers_text = get("matchers");
    let duration = Some(get("duration"))
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| "2h".into());
    let mut problem = problem;
    let mut status = status;
    let preview = if matchers_text.trim().is_empty() {
        None
    } else {
        match parse_matchers(&matchers_text) {
            Ok(matchers) => {
                let firing = match read(&s.store, |store| store.firing_alerts()).await {
                    Ok(f) => f,
                    Err(r) => return r,
                };
                let mut count = 0usize;
                let mut shown = Vec::new();
                for (inc, alerts) in &firing {
                    for a in alerts {
                        if matcher::all_match(&matchers, &a.alert.labels) {
                            count += 1;
                            if shown.len() < 100 {
                                let labels: Vec<String> = a
                                    .alert
                                    .labels
                                    .iter()
                                    .map(|(k, v)| format!("{k}={v:?}"))
                                    .collect();
                                shown.push(json!({
                                    "incident": inc.id.to_string(),
                                    "labels": format!("{{{}}}", labels.join(", ")),
                                }));
                            }
                        }
                    }
                }
                Some(json!({"count": count, "alerts": shown}))
            }
            Err(e) => {
                problem.get_or_insert(e);
                status = StatusCode::BAD_REQUEST;
                None
            }
        }
    };
    let can_operate = viewer.operator;
    page(
        status,
        "silence_new.html",
        viewer,
        "silences",
        "New silence",
        json!({
            "form": {"matchers": matchers_text, "duration": duration, "comment": get("comment")},
            "preview": preview,
            "can_operate": can_operate,
            "problem": problem,
        }),
    )
}

/// Matchers one per line (a line may also hold several, comma-separated).
fn parse_matchers(text: &str) -> Result<Vec<matcher::Matcher>, String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        out.extend(matcher::parse(line).map_err(|e| format!("matcher {line:?}: {e}"))?);
    }
    Ok(out)
}

/// `POST /silences`: preview (`do=preview`) or create (`do=create`).
pub async fn create_silence(
    State(s): State<AppState>,
    actor: Option<Extension<Actor>>,
    role: Option<Extension<CallerRole>>,
    via: Option<Extension<Via>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let form = match &body {
        Ok(b) => fields(b),
        Err(_) => HashMap::new(),
    };
    let ok = csrf_ok(&via, &form);
    let viewer = Viewer::new(&s.reload.auth, (actor.clone(), role), via);
    if let Err(rej) = body {
        return error_page(rej.status(), &viewer, &rej.body_text());
    }
    if !ok {
        return error_page(StatusCode::FORBIDDEN, &viewer, CSRF_REFUSED);
    }
    if form.get("do").map(String::as_str) != Some("create") {
        return new_silence_page(&s, &viewer, StatusCode::OK, &form, None).await;
    }
    let get = |k: &str| {
        form.get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let matchers: Vec<MatcherSpec> = get("matchers")
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| MatcherSpec::Text(l.to_string()))
        .collect();
    if let Err(e) = parse_matchers(&get("matchers").unwrap_or_default()) {
        return new_silence_page(&s, &viewer, StatusCode::BAD_REQUEST, &form, Some(e)).await;
    }
    let req = NewSilence {
        matchers,
        starts_at: None,
        ends_at: None,
        duration: Some(get("duration").unwrap_or_else(|| "2h".into())),
        comment: get("comment"),
        created_by: get("by").or_else(|| (!s.reload.auth.enabled()).then(|| "board".into())),
        id: None,
    };
    match super::silences::create_silence(&s, actor.map(|Extension(a)| a), req).await {
        Ok(sil) => see_other(&format!(
            "/silences?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("done", &format!("Silence {} created.", sil.id))
                .finish()
        )),
        Err(r) => {
            let (status, message) = message_of(r).await;
            new_silence_page(&s, &viewer, status, &form, Some(message)).await
        }
    }
}

/// The status and `error` message of an API answer.
async fn message_of(r: Response) -> (StatusCode, String) {
    let status = r.status();
    let body = axum::body::to_bytes(r.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let message = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    (status, message)
}

/// `POST /silences/{id}/expire`
pub async fn expire_silence(
    State(s): State<AppState>,
    Path(id): Path<String>,
    actor: Option<Extension<Actor>>,
    role: Option<Extension<CallerRole>>,
    via: Option<Extension<Via>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let form = match &body {
        Ok(b) => fields(b),
        Err(_) => HashMap::new(),
    };
    let ok = csrf_ok(&via, &form);
    let viewer = Viewer::new(&s.reload.auth, (actor, role), via);
    if !ok {
        return error_page(StatusCode::FORBIDDEN, &viewer, CSRF_REFUSED);
    }
    match s.handle.silence(SilenceOp::Expire(id.clone())).await {
        Ok(_) => see_other(&format!(
            "/silences?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("done", &format!("Silence {id} expired."))
                .finish()
        )),
        Err(e) => {
            let status = match e {
                SilenceError::Invalid(_) => StatusCode::BAD_REQUEST,
                SilenceError::NotFound(_) => StatusCode::NOT_FOUND,
                SilenceError::Pipeline(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            let message = match &e {
                SilenceError::NotFound(id) => format!("No silence {id}."),
                other => other.to_string(),
            };
            silences_page(&s, &viewer, status, None, Some(message)).await
        }
    }
}

/// `GET /suppressed`
pub async fn suppressed(
    State(s): State<AppState>,
    actor: Option<Extension<Actor>>,
    role: Option<Extension<CallerRole>>,
    via: Option<Extension<Via>>,
) -> Response {
    let viewer = Viewer::new(&s.reload.auth, (actor, role), via);
    let list = match read(&s.store, |store| store.suppressed()).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let rows: Vec<Value> = list
        .iter()
        .map(|x| {
            json!({
                "labels": x.alert.labels,
                "reason": x.suppression.reason.past_tense(),
                "by": x.suppression.by,
                "inhibited_by": x.suppression.inhibited_by,
                "starts_at": x.alert.starts_at,
                "last_seen_at": x.alert.last_seen_at,
            })
        })
        .collect();
    page(
        StatusCode::OK,
        "suppressed.html",
        &viewer,
        "suppressed",
        "Suppressed alerts",
        json!({"alerts": rows}),
    )
}

/// `GET /login`
pub async fn login_page(
    State(s): State<AppState>,
    RawQuery(q): RawQuery,
    actor: Option<Extension<Actor>>,
) -> Response {
    let given = fields(q.unwrap_or_default().as_bytes());
    let next = safe_next(given.get("next").map(String::as_str).unwrap_or("/"));
    if !s.reload.auth.enabled() || actor.is_some() {
        return see_other(&next);
    }
    let viewer = Viewer {
        actor: None,
        operator: false,
        auth: true,
        csrf: None,
        set_cookie: None,
    };
    page(
        StatusCode::OK,
        "login.html",
        &viewer,
        "login",
        "Log in",
        json!({"next": next}),
    )
}

/// `POST /login`: a token's secret for a session cookie.
pub async fn login(State(s): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    let form = body.map(|b| fields(&b)).unwrap_or_default();
    let next = safe_next(form.get("next").map(String::as_str).unwrap_or("/"));
    let auth = &s.reload.auth;
    if !auth.enabled() {
        return see_other(&next);
    }
    let secret = form.get("token").map(|t| t.trim()).unwrap_or("");
    match auth.login(secret) {
        Some((cookie, identity)) => {
            tracing::info!(name = %identity.name, role = %identity.role, "board login");
            let mut r = see_other(&next);
            if let Ok(v) = HeaderValue::from_str(&auth.cookie_header(&cookie)) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        None => {
            s.metrics
                .http_requests_denied
                .with_label_values(&[Denied::BadCredentials.as_str()])
                .inc();
            let viewer = Viewer {
                actor: None,
                operator: false,
                auth: true,
                csrf: None,
                set_cookie: None,
            };
            page(
                StatusCode::UNAUTHORIZED,
                "login.html",
                &viewer,
                "login",
                "Log in",
                json!({"next": next, "problem": "That token is not known."}),
            )
        }
    }
}

/// `POST /logout`: ends the session and clears the cookie.
pub async fn logout(State(s): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let auth = &s.reload.auth;
    if let Some(c) = super::auth::session_cookie(&headers) {
        auth.logout(&c);
    }
    let mut r = see_other(if auth.enabled() { "/login" } else { "/" });
    if let Ok(v) = HeaderValue::from_str(&auth.cookie_header("")) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles_and_the_assets_stay_small() {
        for (name, _) in TEMPLATES {
            assert!(ENV.get_template(name).is_ok(), "{name}");
        }
        assert!(CSS.len() + JS.len() < 300 * 1024);
    }

    #[test]
    fn markdown_shows_raw_html_as_text() {
        let html = markdown("# T\n\n<script>alert(1)</script> and <b>x</b>\n");
        assert!(html.contains("<h1>T</h1>"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next("/incidents/INC-1?x=1"), "/incidents/INC-1?x=1");
        assert_eq!(safe_next("//evil.example/"), "/");
        assert_eq!(safe_next("https://evil.example/"), "/");
        assert_eq!(safe_next("/\\evil.example"), "/");
        assert_eq!(safe_next("/login"), "/");
    }
}
