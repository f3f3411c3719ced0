//! `redmine` actions: one Redmine issue per incident, through Redmine's
//! REST API, following the incident's life.
//!
//! Contract: `opened` (and `reopened` when no issue exists) creates the
//! issue in the project, with the priority mapped, the category as tracker
//! and/or custom field, and the subject and description from templates; its
//! id is captured and stored as `external_refs.<action>` (through the
//! writer, like every result). Every later trigger adds a journal note
//! saying what happened, and sets what changed: the status on acknowledge,
//! resolve (with the workaround and root cause in the note), close and
//! reopen, the priority on a priority change. A trigger that needs the
//! issue before its id is known is a failure, retried (the creating run
//! may still be under way). The API key comes from an environment variable
//! or a file and never appears in a result message.

use serde_json::{json, Value};

use crate::model::{AttemptOutcome, Job, Trigger};
use crate::rules::actions::RedmineDef;
use crate::rules::RuleSet;

/// Redmine's limit on a subject, in characters.
const MAX_SUBJECT: usize = 255;

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// The journal note for a trigger: what happened in incidentd.
pub fn note(job: &Job) -> String {
    let p = &job.payload;
    let i = &p["incident"];
    let id = text(&i["id"]);
    let line = match job.trigger {
        Trigger::Opened => format!("Incident {id} opened in incidentd."),
        Trigger::Acknowledged => format!(
            "Acknowledged in incidentd by {}.",
            i["acknowledged_by"].as_str().unwrap_or("someone")
        ),
        Trigger::Escalated => {
            let mut s = format!("Escalated to level {}.", i["escalation_level"]);
            if let Some(a) = i["assignee"].as_str() {
                s.push_str(&format!(" Assigned to {a}."));
            }
            s
        }
        Trigger::PriorityChanged => format!(
            "Priority changed to {} (impact {}, urgency {}).",
            text(&i["priority"]),
            text(&i["impact"]),
            text(&i["urgency"])
        ),
        Trigger::AlertAdded => format!(
            "An alert joined: {} alerts, {} firing.",
            i["alert_count"], i["firing_count"]
        ),
        Trigger::SlaBreached => format!(
            "SLA breached (acknowledge by {}, resolve by {}).",
            text(&i["sla"]["acknowledge_by"]),
            text(&i["sla"]["resolve_by"])
        ),
        Trigger::Resolved => {
            let mut s = format!(
                "Resolved in incidentd by {}.",
                i["resolved_by"].as_str().unwrap_or("the alerts")
            );
            if let Some(w) = i["workaround"].as_str() {
                s.push_str(&format!("\n\nWorkaround: {w}"));
            }
            if let Some(c) = i["root_cause"].as_str() {
                s.push_str(&format!("\n\nRoot cause: {c}"));
            }
            s
        }
        Trigger::Reopened => format!(
            "Reopened in incidentd (reopened {} time(s)).",
            i["reopen_count"]
        ),
        Trigger::Closed => "Closed in incidentd.".to_string(),
        Trigger::Noted => format!(
            "Note from {}: {}",
            p["note"]["by"].as_str().unwrap_or("someone"),
            text(&p["note"]["message"])
        ),
    };
    format!(
        "{line}\n\nStatus: {}, priority {}. {}",
        text(&i["status"]),
        text(&i["priority"]),
        text(&p["links"]["incident"])
    )
}

/// The method, path and body of the request for `job`; `issue` is the
/// captured issue id, if any. `None`: the trigger needs an issue first.
pub fn request(
    def: &RedmineDef,
    job: &Job,
    issue: Option<&str>,
    subject: &str,
    description: &str,
) -> Option<(reqwest::Method, String, Value)> {
    let i = &job.payload["incident"];
    let priority =
        crate::model::Priority::parse(text(&i["priority"])).map(|p| def.priorities[p.idx()]);
    match issue {
        None if matches!(job.trigger, Trigger::Opened | Trigger::Reopened) => {
            let mut issue = json!({
                "project_id": def.project,
                "subject": subject.trim().chars().take(MAX_SUBJECT).collect::<String>(),
                "description": description,
            });
            if let Some(p) = priority {
                issue["priority_id"] = json!(p);
            }
            let category = text(&i["category"]);
            if let Some((_, t)) = def.trackers.iter().find(|(c, _)| c == category) {
                issue["tracker_id"] = json!(t);
            }
            if let Some(f) = def.category_field_id {
                issue["custom_fields"] = json!([{"id": f, "value": category}]);
            }
            Some((
                reqwest::Method::POST,
                "/issues.json".to_string(),
                json!({ "issue": issue }),
            ))
        }
        None => None,
        Some(id) => {
            let mut issue = json!({ "notes": note(job) });
            let status = match job.trigger {
                Trigger::Acknowledged => Some(def.status_acknowledged),
                Trigger::Resolved => Some(def.status_resolved),
                Trigger::Closed => Some(def.status_closed),
                Trigger::Reopened => Some(def.status_reopened),
                _ => None,
            };
            if let Some(s) = status {
                issue["status_id"] = json!(s);
            }
            if job.trigger == Trigger::PriorityChanged {
                if let Some(p) = priority {
                    issue["priority_id"] = json!(p);
                }
            }
            Some((
                reqwest::Method::PUT,
                format!("/issues/{id}.json"),
                json!({ "issue": issue }),
            ))
        }
    }
}

/// Creates or updates the incident's issue; on creation, the new issue's id
/// is the captured value.
pub async fn send(
    client: &reqwest::Client,
    rules: &RuleSet,
    def: &RedmineDef,
    name: &str,
    job: &Job,
) -> (AttemptOutcome, String, Option<String>) {
    let fail = |m: String| (AttemptOutcome::Failure, m, None);
    let base = match def.url.resolve() {
        Ok(u) => u.trim_end_matches('/').to_string(),
        Err(e) => return fail(e),
    };
    let key = match def.api_key.read() {
        Ok(k) => k,
        Err(e) => return fail(format!("API key: {e}")),
    };
    let issue = job.payload["incident"]["external_refs"][name]
        .as_str()
        .map(str::to_string);
    let (subject, description) = if issue.is_none() {
        let subject = match rules.render(&def.subject, &job.payload) {
            Ok(s) => s
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
            Err(e) => return fail(format!("subject template failed: {e}")),
        };
        match rules.render(&def.description, &job.payload) {
            Ok(d) => (subject, d),
            Err(e) => return fail(format!("description template failed: {e}")),
        }
    } else {
        (String::new(), String::new())
    };
    let Some((method, path, body)) = request(def, job, issue.as_deref(), &subject, &description)
    else {
        return fail(format!(
            "no Redmine issue for this incident yet (external_refs.{name} is not captured: the run that creates it has not succeeded)"
        ));
    };
    let verb = if method == reqwest::Method::POST {
        "create issue".to_string()
    } else {
        format!("update issue #{}", issue.as_deref().unwrap_or("?"))
    };
    let req = client
        .request(method, format!("{base}{path}"))
        .timeout(def.timeout)
        .header("X-Redmine-API-Key", key.as_str())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string());
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default().replace(&key, "<key>");
            if !status.is_success() {
                return fail(format!(
                    "Redmine {verb}: HTTP {}: {}",
                    status.as_u16(),
                    super::webhook::truncate(&body, 300)
                ));
            }
            if issue.is_some() {
                return (
                    AttemptOutcome::Success,
                    format!("Redmine {verb}: HTTP {}", status.as_u16()),
                    None,
                );
            }
            match super::webhook::capture(&body, "/issue/id") {
                Ok(id) => (
                    AttemptOutcome::Success,
                    format!("Redmine {verb}: HTTP {}: issue #{id}", status.as_u16()),
                    Some(id),
                ),
                Err(why) => (
                    AttemptOutcome::Success,
                    format!(
                        "Redmine {verb}: HTTP {}, but its id: {why}",
                        status.as_u16()
                    ),
                    None,
                ),
            }
        }
        Err(e) if e.is_timeout() => (
            AttemptOutcome::Timeout,
            format!(
                "Redmine {verb}: timed out after {}",
                humantime::format_duration(def.timeout)
            ),
            None,
        ),
        Err(e) => fail(format!(
            "Redmine {verb}: request failed: {}",
            e.to_string().replace(&base, "<url>")
        )),
    }
}
