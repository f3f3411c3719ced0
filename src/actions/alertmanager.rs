//! `alertmanager` actions: silence sync with an Alertmanager (API v2), so
//! that acknowledging in incidentd quiets Alertmanager's other receivers.
//!
//! Contract: `acknowledged` creates a silence whose matchers are the
//! incident's common labels (each `name="value"`, which every alert of the
//! incident carries), lasting the action's `duration`, created by the actor
//! with the incident's id and link in the comment; its id is captured as
//! `external_refs.<action>`. `resolved`, `reopened` and `closed` expire that
//! silence (an already expired or deleted one counts as done). Other
//! triggers do nothing. Failures are attempts like any other: retried and
//! on the timeline.

use chrono::{Duration as ChronoDuration, Utc};
use serde_json::{json, Value};

use crate::model::{AttemptOutcome, Job, Trigger};
use crate::rules::actions::AlertmanagerDef;

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// The silence `POST /api/v2/silences` gets for an acknowledged incident;
/// `None` when the incident has no common label to match on.
pub fn silence(def: &AlertmanagerDef, job: &Job) -> Option<Value> {
    let i = &job.payload["incident"];
    let matchers: Vec<Value> = i["labels"]
        .as_object()?
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|v| (k, v)))
        .map(|(k, v)| json!({"name": k, "value": v, "isRegex": false, "isEqual": true}))
        .collect();
    if matchers.is_empty() {
        return None;
    }
    let now = Utc::now();
    let ends =
        now + ChronoDuration::from_std(def.duration).unwrap_or_else(|_| ChronoDuration::hours(24));
    let by = i["acknowledged_by"].as_str().unwrap_or("incidentd");
    Some(json!({
        "matchers": matchers,
        "startsAt": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "endsAt": ends.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "createdBy": format!("{by} (incidentd)"),
        "comment": format!(
            "Acknowledged in incidentd by {by}: {} {} {}",
            text(&i["id"]),
            text(&i["title"]),
            text(&job.payload["links"]["incident"])
        ),
    }))
}

/// Creates or expires the incident's silence.
pub async fn send(
    client: &reqwest::Client,
    def: &AlertmanagerDef,
    name: &str,
    job: &Job,
) -> (AttemptOutcome, String, Option<String>) {
    let fail = |m: String| (AttemptOutcome::Failure, m, None);
    let base = match def.url.resolve() {
        Ok(u) => u.trim_end_matches('/').to_string(),
        Err(e) => return fail(e),
    };
    let timed_out = || {
        (
            AttemptOutcome::Timeout,
            format!(
                "Alertmanager: timed out after {}",
                humantime::format_duration(def.timeout)
            ),
            None,
        )
    };
    match job.trigger {
        Trigger::Acknowledged => {
            let Some(body) = silence(def, job) else {
                return fail("the incident has no common labels to silence its alerts by".into());
            };
            let req = client
                .post(format!("{base}/api/v2/silences"))
                .timeout(def.timeout)
                .json(&body);
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    if !status.is_success() {
                        return fail(format!(
                            "Alertmanager silence: HTTP {}: {}",
                            status.as_u16(),
                            super::webhook::truncate(&text, 300)
                        ));
                    }
                    match super::webhook::capture(&text, "/silenceID") {
                        Ok(id) => (
                            AttemptOutcome::Success,
                            format!(
                                "Alertmanager silence {id} until {} for {}",
                                body["endsAt"].as_str().unwrap_or("?"),
                                matchers_text(&body)
                            ),
                            Some(id),
                        ),
                        Err(why) => (
                            AttemptOutcome::Success,
                            format!(
                                "Alertmanager silence: HTTP {}, but its id: {why}",
                                status.as_u16()
                            ),
                            None,
                        ),
                    }
                }
                Err(e) if e.is_timeout() => timed_out(),
                Err(e) => fail(format!(
                    "Alertmanager silence: request failed: {}",
                    e.to_string().replace(&base, "<url>")
                )),
            }
        }
        Trigger::Resolved | Trigger::Reopened | Trigger::Closed => {
            let Some(id) = job.payload["incident"]["external_refs"][name].as_str() else {
                return (
                    AttemptOutcome::Success,
                    "no Alertmanager silence to expire".to_string(),
                    None,
                );
            };
            if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return fail(format!("stored silence id {id:?} is not a silence id"));
            }
            let req = client
                .delete(format!("{base}/api/v2/silence/{id}"))
                .timeout(def.timeout);
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    if status.is_success() {
                        (
                            AttemptOutcome::Success,
                            format!("Alertmanager silence {id} expired"),
                            None,
                        )
                    } else if status.as_u16() == 404 || text.contains("already expired") {
                        (
                            AttemptOutcome::Success,
                            format!("Alertmanager silence {id} was already expired or gone"),
                            None,
                        )
                    } else {
                        fail(format!(
                            "Alertmanager expire silence {id}: HTTP {}: {}",
                            status.as_u16(),
                            super::webhook::truncate(&text, 300)
                        ))
                    }
                }
                Err(e) if e.is_timeout() => timed_out(),
                Err(e) => fail(format!(
                    "Alertmanager expire silence {id}: request failed: {}",
                    e.to_string().replace(&base, "<url>")
                )),
            }
        }
        other => (
            AttemptOutcome::Success,
            format!(
                "nothing to do for {} (silences follow acknowledged, resolved, reopened and closed)",
                other.as_str()
            ),
            None,
        ),
    }
}

fn matchers_text(body: &Value) -> String {
    let parts: Vec<String> = body["matchers"]
        .as_array()
        .map(|m| m.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|m| format!("{}={:?}", text(&m["name"]), text(&m["value"])))
        .collect();
    format!("{{{}}}", parts.join(", "))
}
