//! `pagerduty` actions: PagerDuty Events API v2 events that follow the
//! incident.
//!
//! Contract: the `dedup_key` is the incident id, so every event of one
//! incident addresses one PagerDuty alert: `acknowledged` sends
//! `acknowledge`, `resolved` and `closed` send `resolve`, every other
//! trigger sends `trigger` (which updates the open alert). The event shape
//! is PagerDuty's documented one (`routing_key`, `event_action`,
//! `dedup_key`, and for a trigger `payload` with `summary` ≤ 1024
//! characters, `source`, `severity`, `timestamp`, `class`, `group`,
//! `custom_details`, plus `links` and `client`/`client_url`). The routing
//! key is read from its environment variable or file at send time and never
//! appears in a result message. A non-2xx answer is a failure, with PagerDuty's
//! error text.

use serde_json::{json, Value};

use crate::model::{AttemptOutcome, Job, Trigger};
use crate::rules::actions::PagerDutyDef;
use crate::rules::RuleSet;

/// PagerDuty's limit on `payload.summary`, in characters.
const MAX_SUMMARY: usize = 1024;

/// The Events API v2 `event_action` for a trigger.
pub fn event_action(trigger: Trigger) -> &'static str {
    match trigger {
        Trigger::Acknowledged => "acknowledge",
        Trigger::Resolved | Trigger::Closed => "resolve",
        // PagerDuty has no note event: a note re-sends the trigger (the
        // same dedup_key updates the alert's details there).
        _ => "trigger",
    }
}

/// PagerDuty's `severity` for an incident priority.
pub fn severity(priority: &str) -> &'static str {
    match priority {
        "P1" => "critical",
        "P2" => "error",
        "P3" => "warning",
        _ => "info",
    }
}

/// The event for `job`, with `summary` already rendered.
pub fn event(job: &Job, routing_key: &str, summary: &str) -> Value {
    let p = &job.payload;
    let i = &p["incident"];
    let dedup_key = i["id"].as_str().unwrap_or_default();
    let action = event_action(job.trigger);
    if action != "trigger" {
        return json!({
            "routing_key": routing_key,
            "event_action": action,
            "dedup_key": dedup_key,
        });
    }
    let summary: String = summary.trim().chars().take(MAX_SUMMARY).collect();
    let summary = if summary.is_empty() {
        dedup_key.to_string()
    } else {
        summary
    };
    let labels = &i["labels"];
    let source = ["instance", "host", "node", "service"]
        .iter()
        .find_map(|k| labels[*k].as_str().filter(|s| !s.is_empty()))
        .unwrap_or("incidentd");
    let mut payload = json!({
        "summary": summary,
        "source": source,
        "severity": severity(i["priority"].as_str().unwrap_or_default()),
        "timestamp": i["created_at"],
        "class": i["category"],
        "group": i["rule"],
        "custom_details": {
            "incident": dedup_key,
            "trigger": p["trigger"],
            "priority": i["priority"],
            "status": i["status"],
            "impact": i["impact"],
            "urgency": i["urgency"],
            "acknowledge_by": i["sla"]["acknowledge_by"],
            "resolve_by": i["sla"]["resolve_by"],
            "alert_count": i["alert_count"],
            "labels": labels,
        },
    });
    if let Some(service) = labels["service"].as_str() {
        payload["component"] = json!(service);
    }
    let link = p["links"]["incident"].as_str().unwrap_or_default();
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": payload,
        "client": "incidentd",
        "client_url": link,
        "links": [
            {"href": link, "text": format!("incidentd {dedup_key}")},
            {"href": p["links"]["report"], "text": "Incident report"},
        ],
    })
}

/// Sends the event for `job`.
pub async fn send(
    client: &reqwest::Client,
    rules: &RuleSet,
    def: &PagerDutyDef,
    job: &Job,
) -> (AttemptOutcome, String) {
    let routing_key = match def.routing_key.read() {
        Ok(k) => k,
        Err(e) => return (AttemptOutcome::Failure, format!("routing key: {e}")),
    };
    let summary = match rules.render(&def.summary, &job.payload) {
        Ok(s) => s,
        Err(e) => {
            return (
                AttemptOutcome::Failure,
                format!("summary template failed: {e}"),
            )
        }
    };
    let body = event(job, &routing_key, &summary);
    let action = event_action(job.trigger);
    let req = client
        .post(&def.url)
        .timeout(def.timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string());
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            let text = text.replace(&routing_key, "<routing_key>");
            if status.is_success() {
                (
                    AttemptOutcome::Success,
                    format!("PagerDuty {action}: HTTP {}", status.as_u16()),
                )
            } else {
                (
                    AttemptOutcome::Failure,
                    format!(
                        "PagerDuty {action}: HTTP {}: {}",
                        status.as_u16(),
                        super::webhook::truncate(&text, 200)
                    ),
                )
            }
        }
        Err(e) if e.is_timeout() => (
            AttemptOutcome::Timeout,
            format!(
                "PagerDuty {action}: timed out after {}",
                humantime::format_duration(def.timeout)
            ),
        ),
        Err(e) => (
            AttemptOutcome::Failure,
            format!("PagerDuty {action}: request failed: {e}"),
        ),
    }
}
