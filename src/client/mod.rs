//! The command-line client of a running daemon: `incidentd incidents ...`
//! and `incidentd silences ...` over the HTTP API.
//!
//! Contract: every call is one API request; a 4xx/5xx answer becomes
//! [`ClientError::Status`] carrying the server's own error message (the
//! command prints it on stderr and exits non-zero). Output is either the
//! server's JSON as it came (`-o json`, for scripts) or a table for people
//! ([`incidents_table`], [`incident_text`], [`silences_table`]). Pure
//! formatting functions take the API's JSON, so they need no daemon to test.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method} {url} answered {status}: {message}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url}: the answer is not the JSON expected: {message}")]
    Decode { url: String, message: String },
}

/// A client of one daemon.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

/// Filters of `incidents list`.
#[derive(Debug, Default, Clone)]
pub struct ListOptions {
    pub status: Option<String>,
    pub priority: Option<String>,
    pub category: Option<String>,
    pub limit: Option<usize>,
    /// Label matchers (`cluster="eu-1"`), all must match.
    pub matchers: Vec<String>,
}

/// What `incidents ack|assign|note|resolve|close|reopen` sends.
#[derive(Debug, Default, Clone)]
pub struct OpOptions {
    pub by: Option<String>,
    pub note: Option<String>,
    pub assignee: Option<String>,
    pub workaround: Option<String>,
    pub root_cause: Option<String>,
}

/// What `silences add` sends.
#[derive(Debug, Default, Clone)]
pub struct NewSilence {
    pub matchers: Vec<String>,
    pub duration: String,
    pub comment: String,
    pub created_by: Option<String>,
}

impl Client {
    /// `base` like `http://127.0.0.1:9095`; `token` sent as a bearer token.
    pub fn new(http: reqwest::Client, base: &str, token: Option<String>) -> Client {
        Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
        }
    }

    async fn call(
        &self,
        method: &'static str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut r = match method {
            "POST" => self.http.post(&url),
            "DELETE" => self.http.delete(&url),
            _ => self.http.get(&url),
        };
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_string());
        }
        let resp = r.send().await.map_err(|source| ClientError::Unreachable {
            url: url.clone(),
            source,
        })?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: url.clone(),
                source,
            })?;
        let value: Option<Value> = serde_json::from_str(&text).ok();
        if !status.is_success() {
            let message = value
                .as_ref()
                .and_then(|v| v.get("error"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| text.trim().to_string());
            return Err(ClientError::Status {
                method,
                url,
                status: status.as_u16(),
                message,
            });
        }
        value.ok_or_else(|| ClientError::Decode {
            url,
            message: text.chars().take(200).collect(),
        })
    }

    pub async fn incidents(&self, o: &ListOptions) -> Result<Value, ClientError> {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("status", &o.status),
            ("priority", &o.priority),
            ("category", &o.category),
        ] {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
        if let Some(n) = o.limit {
            q.append_pair("limit", &n.to_string());
        }
        for m in &o.matchers {
            q.append_pair("match", m);
        }
        let q = q.finish();
        let path = if q.is_empty() {
            "/api/v1/incidents".to_string()
        } else {
            format!("/api/v1/incidents?{q}")
        };
        self.call("GET", &path, None).await
    }

    pub async fn incident(&self, id: &str) -> Result<Value, ClientError> {
        self.call("GET", &format!("/api/v1/incidents/{}", segment(id)), None)
            .await
    }

    /// `action`: ack, assign, notes, resolve, close or reopen.
    pub async fn operate(
        &self,
        id: &str,
        action: &str,
        o: &OpOptions,
    ) -> Result<Value, ClientError> {
        let mut body = serde_json::Map::new();
        for (k, v) in [
            ("by", &o.by),
            ("note", &o.note),
            ("assignee", &o.assignee),
            ("workaround", &o.workaround),
            ("root_cause", &o.root_cause),
        ] {
            if let Some(v) = v {
                body.insert(k.into(), json!(v));
            }
        }
        self.call(
            "POST",
            &format!("/api/v1/incidents/{}/{action}", segment(id)),
            Some(Value::Object(body)),
        )
        .await
    }

    /// `POST /api/v1/incidents`: opens an incident by hand; `body` is the
    /// `ManualIncident` JSON.
    pub async fn open_incident(&self, body: Value) -> Result<Value, ClientError> {
        self.call("POST", "/api/v1/incidents", Some(body)).await
    }

    /// A service-desk action on an incident (`merge`, `link`, `split`,
    /// `priority`) with its JSON body.
    pub async fn desk(&self, id: &str, action: &str, body: Value) -> Result<Value, ClientError> {
        self.call(
            "POST",
            &format!("/api/v1/incidents/{}/{action}", segment(id)),
            Some(body),
        )
        .await
    }

    pub async fn silences(&self) -> Result<Value, ClientError> {
        self.call("GET", "/api/v1/silences", None).await
    }

    pub async fn add_silence(&self, s: &NewSilence) -> Result<Value, ClientError> {
        let mut body = json!({
            "matchers": s.matchers,
            "duration": s.duration,
            "comment": s.comment,
        });
        if let Some(by) = &s.created_by {
            body["created_by"] = json!(by);
        }
        self.call("POST", "/api/v1/silences", Some(body)).await
    }

    pub async fn expire_silence(&self, id: &str) -> Result<Value, ClientError> {
        self.call("DELETE", &format!("/api/v1/silences/{}", segment(id)), None)
            .await
    }

    /// `GET /api/v1/oncall` (`at`: RFC 3339, default now).
    pub async fn oncall(&self, at: Option<&str>) -> Result<Value, ClientError> {
        let q = at
            .map(|a| format!("?at={}", segment(a)))
            .unwrap_or_default();
        self.call("GET", &format!("/api/v1/oncall{q}"), None).await
    }

    /// `GET /api/v1/schedules/{name}` over `[from, to)`.
    pub async fn schedule(
        &self,
        name: &str,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Value, ClientError> {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if let Some(f) = from {
            q.append_pair("from", f);
        }
        if let Some(t) = to {
            q.append_pair("to", t);
        }
        let q = q.finish();
        let path = format!("/api/v1/schedules/{}?{q}", segment(name));
        self.call("GET", &path, None).await
    }

    /// `POST /api/v1/schedules/{name}/overrides`
    pub async fn add_override(&self, schedule: &str, body: Value) -> Result<Value, ClientError> {
        let path = format!("/api/v1/schedules/{}/overrides", segment(schedule));
        self.call("POST", &path, Some(body)).await
    }

    /// `DELETE /api/v1/schedules/{name}/overrides/{id}`
    pub async fn remove_override(&self, schedule: &str, id: &str) -> Result<Value, ClientError> {
        let path = format!(
            "/api/v1/schedules/{}/overrides/{}",
            segment(schedule),
            segment(id)
        );
        self.call("DELETE", &path, None).await
    }
}

/// `oncall` as a table: team, schedule, who, until, next.
pub fn oncall_table(v: &Value) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    for t in v["teams"].as_array().into_iter().flatten() {
        for s in t["schedules"].as_array().into_iter().flatten() {
            rows.push(vec![
                str_of(t, "team").to_string(),
                str_of(s, "schedule").to_string(),
                s["person"].as_str().unwrap_or("(nobody)").to_string(),
                when(s, "until"),
                match (s["next"].as_str(), when(s, "next_at")) {
                    (Some(p), t) => format!("{p} at {t}"),
                    _ => String::new(),
                },
            ]);
        }
    }
    table(&["TEAM", "SCHEDULE", "ON CALL", "UNTIL", "NEXT"], &rows)
}

/// A schedule's shifts and gaps as a table.
pub fn schedule_table(v: &Value) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    for s in v["shifts"].as_array().into_iter().flatten() {
        let why = match (s["override_id"].as_str(), s["layer"].as_str()) {
            (Some(o), _) => format!("override {o}"),
            (None, Some(l)) => format!("layer {l}"),
            _ => String::new(),
        };
        rows.push(vec![
            when(s, "start"),
            when(s, "end"),
            str_of(s, "person").into(),
            why,
        ]);
    }
    for g in v["gaps"].as_array().into_iter().flatten() {
        rows.push(vec![
            when(g, "start"),
            when(g, "end"),
            "(nobody)".into(),
            "gap".into(),
        ]);
    }
    rows.sort();
    table(&["FROM", "TO", "ON CALL", "WHY"], &rows)
}

/// A path segment, percent-encoded.
fn segment(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn time_of(v: &Value, k: &str) -> Option<DateTime<Utc>> {
    v.get(k)
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// A time of the API's JSON as `2026-12-02 14:47:17 UTC`.
fn when(v: &Value, k: &str) -> String {
    time_of(v, k)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// A duration as `45s`, `12m`, `3h 5m`, `2d 4h`.
pub fn span(d: chrono::Duration) -> String {
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

/// The SLA clock of an incident's JSON: time left to the deadline that
/// matters now, or how long ago it was missed.
pub fn sla_text(i: &Value, now: DateTime<Utc>) -> String {
    let sla = &i["sla"];
    let (deadline, what, breached) = match str_of(i, "status") {
        "open" => (
            time_of(sla, "acknowledge_by"),
            "ack",
            sla["acknowledge_breached"].as_bool().unwrap_or(false),
        ),
        "acknowledged" => (
            time_of(sla, "resolve_by"),
            "resolve",
            sla["resolve_breached"].as_bool().unwrap_or(false),
        ),
        _ => {
            return if sla["breached"].as_bool().unwrap_or(false) {
                "breached".into()
            } else {
                "met".into()
            }
        }
    };
    match deadline {
        Some(d) if breached || now > d => format!("BREACHED {} ago ({what})", span(now - d)),
        Some(d) => format!("{} to {what}", span(d - now)),
        None => String::new(),
    }
}

/// Rows as an aligned text table.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: Vec<&str>| {
        let n = cells.len();
        for (i, (c, w)) in cells.into_iter().zip(&widths).enumerate() {
            if i + 1 == n {
                out.push_str(c);
            } else {
                let pad = w.saturating_sub(c.chars().count());
                let _ = write!(out, "{c}{}  ", " ".repeat(pad));
            }
        }
        out.push('\n');
    };
    line(&mut out, header.to_vec());
    for r in rows {
        line(&mut out, r.iter().map(String::as_str).collect());
    }
    out
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// `incidents list` as a table.
pub fn incidents_table(list: &Value, now: DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = list
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|i| {
            vec![
                str_of(i, "id").to_string(),
                str_of(i, "priority").to_string(),
                str_of(i, "status").to_string(),
                time_of(i, "created_at")
                    .map(|t| span(now - t))
                    .unwrap_or_default(),
                format!(
                    "{}/{}",
                    i["firing_count"].as_u64().unwrap_or(0),
                    i["alert_count"].as_u64().unwrap_or(0)
                ),
                i["assignee"].as_str().unwrap_or("-").to_string(),
                sla_text(i, now),
                group_text(i),
                cut(str_of(i, "title"), 70),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no incidents\n".into();
    }
    table(
        &[
            "ID", "PRIO", "STATUS", "AGE", "FIRING", "ASSIGNEE", "SLA", "GROUP", "TITLE",
        ],
        &rows,
    )
}

/// The GROUP column: a major incident's grouped count, the major incident
/// a grouped one belongs to, or what an incident was merged into.
fn group_text(i: &Value) -> String {
    let children = i["children"].as_array().map_or(0, Vec::len);
    if children > 0 {
        format!("major: {children} grouped")
    } else if let Some(p) = i["parent"].as_str() {
        format!("in {p}")
    } else if let Some(m) = i["merged_into"].as_str() {
        format!("merged into {m}")
    } else {
        "-".into()
    }
}

/// `incidents show`: the incident, its alerts and its timeline.
pub fn incident_text(i: &Value, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} [{}] {}",
        str_of(i, "id"),
        str_of(i, "priority"),
        str_of(i, "title")
    );
    let field = |out: &mut String, k: &str, v: String| {
        if !v.is_empty() {
            let _ = writeln!(out, "  {k:<13} {v}");
        }
    };
    field(&mut out, "status", str_of(i, "status").into());
    field(&mut out, "category", str_of(i, "category").into());
    field(&mut out, "team", str_of(i, "team").into());
    field(
        &mut out,
        "assignee",
        i["assignee"].as_str().unwrap_or("-").into(),
    );
    field(&mut out, "created", when(i, "created_at"));
    let by = |at: &str, by: &str| match (when(i, at), i[by].as_str()) {
        (t, _) if t.is_empty() => String::new(),
        (t, Some(b)) => format!("{t} by {b}"),
        (t, None) => t,
    };
    field(
        &mut out,
        "acknowledged",
        by("acknowledged_at", "acknowledged_by"),
    );
    field(&mut out, "resolved", by("resolved_at", "resolved_by"));
    field(&mut out, "closed", when(i, "closed_at"));
    field(&mut out, "sla", sla_text(i, now));
    field(&mut out, "workaround", str_of(i, "workaround").into());
    field(&mut out, "root cause", str_of(i, "root_cause").into());
    if let Some(alerts) = i["alerts"].as_array() {
        let _ = writeln!(out, "\nalerts ({}):", alerts.len());
        for a in alerts {
            let labels = a["labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<8} {}  {{{labels}}}",
                str_of(a, "status"),
                str_of(a, "fingerprint")
            );
        }
    }
    if let Some(pages) = i["pages"].as_array().filter(|p| !p.is_empty()) {
        let _ = writeln!(out, "\npaged:");
        for p in pages {
            let channels: Vec<&str> = p["channels"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let acked = match when(p, "acknowledged_at") {
                t if t.is_empty() => String::new(),
                t => format!(", acknowledged {t}"),
            };
            let _ = writeln!(
                out,
                "  {}  {} by {} (level {}, {}){acked}",
                when(p, "at"),
                str_of(p, "person"),
                channels.join(", "),
                p["level"].as_u64().unwrap_or(0),
                str_of(p, "via"),
            );
        }
    }
    if let Some(tl) = i["timeline"].as_array() {
        let _ = writeln!(out, "\ntimeline:");
        for e in tl {
            let _ = writeln!(
                out,
                "  {}  {:<16} {}: {}",
                when(e, "at"),
                str_of(e, "kind"),
                str_of(e, "by"),
                str_of(e, "message")
            );
        }
    }
    out
}

/// `silences list` as a table.
pub fn silences_table(list: &Value) -> String {
    let rows: Vec<Vec<String>> = list
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let matchers = s["matchers"]
                .as_array()
                .map(|m| {
                    m.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            vec![
                str_of(s, "id").to_string(),
                str_of(s, "state").to_string(),
                when(s, "ends_at"),
                str_of(s, "created_by").to_string(),
                matchers,
                cut(str_of(s, "comment"), 50),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no silences\n".into();
    }
    table(&["ID", "STATE", "ENDS", "BY", "MATCHERS", "COMMENT"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_show_the_sla_clock() {
        let now = DateTime::parse_from_rfc3339("2026-12-02T10:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let list = json!([
            {"id": "INC-20261202-0001", "priority": "P1", "status": "open", "title": "DB down",
             "created_at": "2026-12-02T09:50:00Z", "alert_count": 2, "firing_count": 1,
             "assignee": null, "sla": {"acknowledge_by": "2026-12-02T09:55:00Z", "resolve_by": "2026-12-02T13:50:00Z",
             "breached": true, "acknowledge_breached": true, "resolve_breached": false}},
            {"id": "INC-20261202-0002", "priority": "P3", "status": "acknowledged", "title": "slow",
             "parent": "INC-20261202-0001",
             "created_at": "2026-12-02T09:00:00Z", "alert_count": 1, "firing_count": 1,
             "assignee": "bob", "sla": {"acknowledge_by": "2026-12-02T10:00:00Z", "resolve_by": "2026-12-02T12:00:00Z",
             "breached": false, "acknowledge_breached": false, "resolve_breached": false}}
        ]);
        let t = incidents_table(&list, now);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("ID "), "{t}");
        assert!(lines[1].contains("BREACHED 5m ago (ack)"), "{t}");
        assert!(lines[2].contains("2h 0m to resolve"), "{t}");
        assert!(lines[2].contains("in INC-20261202-0001"), "{t}");
        assert!(lines[1].contains(" - "), "no group: {t}");
        assert_eq!(
            lines[1].find("P1"),
            lines[2].find("P3"),
            "columns align: {t}"
        );
        assert_eq!(incidents_table(&json!([]), now), "no incidents\n");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }
}
