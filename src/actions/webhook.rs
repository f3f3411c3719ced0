//! `webhook` actions: the incident event as JSON (or a Slack Block Kit
//! message, a Microsoft Teams Adaptive Card, or a rendered body) to an HTTP
//! endpoint.
//!
//! Contract: the URL may come from an environment variable, and secret
//! header values always do; neither appears in a result message (error
//! texts have the URL replaced by `<url>`). A body declared JSON (the
//! default `content_type`) was rendered with JSON escaping and must parse,
//! or the attempt fails without sending. A non-2xx answer is a failure,
//! with the start of its body.

use crate::model::{AttemptOutcome, Job};
use crate::rules::actions::{HttpMethod, Preset, WebhookDef};
use crate::rules::RuleSet;

fn method(m: HttpMethod) -> reqwest::Method {
    match m {
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Put => reqwest::Method::PUT,
    }
}

/// Sends the incident event (a preset or the rendered body) to the URL;
/// with `capture`, also what the pointer finds in a successful response.
pub async fn send(
    client: &reqwest::Client,
    rules: &RuleSet,
    w: &WebhookDef,
    job: &Job,
) -> (AttemptOutcome, String, Option<String>) {
    macro_rules! fail {
        ($e:expr) => {{
            let (o, m): (AttemptOutcome, String) = $e;
            return (o, m, None);
        }};
    }
    let url = match &w.url_template {
        Some(t) => match rules.render_strict(t, &job.payload) {
            Ok(u) => u.trim().to_string(),
            Err(e) => fail!((
                AttemptOutcome::Failure,
                format!("url template failed (an external reference not captured yet?): {e}")
            )),
        },
        None => match (&w.url, &w.url_env) {
            (Some(u), _) => u.clone(),
            (None, Some(var)) => match std::env::var(var) {
                Ok(u) if !u.is_empty() => u,
                _ => fail!((
                    AttemptOutcome::Failure,
                    format!("environment variable {var} (url_env) is not set"),
                )),
            },
            // A `contacts.webhook` action: the paged person's webhook.
            (None, None) => match job
                .payload
                .pointer("/page/address")
                .and_then(|a| a.as_str())
            {
                Some(u)
                    if job
                        .payload
                        .pointer("/page/channel")
                        .and_then(|c| c.as_str())
                        == Some("webhook") =>
                {
                    u.to_string()
                }
                _ => return (AttemptOutcome::Failure, "no url".into(), None),
            },
        },
    };
    let body = match &w.body_template {
        Some(t) => match super::render_body(rules, t, job) {
            Ok(b) => b,
            Err(failed) => fail!(failed),
        },
        None => match w.preset {
            Preset::Json => job.payload.to_string(),
            Preset::Slack => slack_blocks(&job.payload).to_string(),
            Preset::Teams => teams_card(&job.payload).to_string(),
        },
    };
    let mut req = client
        .request(method(w.method), &url)
        .timeout(w.timeout)
        .header(reqwest::header::CONTENT_TYPE, w.content_type.as_str())
        .body(body);
    for (k, t) in &w.headers {
        let value = match rules.render(t, &job.payload) {
            Ok(v) => v,
            Err(e) => fail!((
                AttemptOutcome::Failure,
                format!("header {k} template failed: {e}"),
            )),
        };
        match reqwest::header::HeaderValue::from_str(value.trim()) {
            Ok(v) => req = req.header(k, v),
            Err(_) => fail!((
                AttemptOutcome::Failure,
                format!("header {k}: the rendered value is not a valid header value (line breaks or control characters); not sent"),
            )),
        }
    }
    for (k, var) in &w.secret_headers {
        match std::env::var(var) {
            Ok(v) => req = req.header(k, v),
            Err(_) => fail!((
                AttemptOutcome::Failure,
                format!("environment variable {var} for header {k} is not set"),
            )),
        }
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            if status.is_success() {
                let ok = format!("HTTP {}", status.as_u16());
                match &w.capture {
                    None => (AttemptOutcome::Success, ok, None),
                    Some(pointer) => {
                        let text = resp.text().await.unwrap_or_default();
                        match capture(&text, pointer) {
                            Ok(v) => (AttemptOutcome::Success, ok, Some(v)),
                            // The request did its work (a ticket exists):
                            // not a failure to retry, but said.
                            Err(why) => (
                                AttemptOutcome::Success,
                                format!("{ok}; capture {pointer}: {why}"),
                                None,
                            ),
                        }
                    }
                }
            } else {
                let text = resp.text().await.unwrap_or_default();
                (
                    AttemptOutcome::Failure,
                    format!("HTTP {}: {}", status.as_u16(), truncate(&text, 200)),
                    None,
                )
            }
        }
        Err(e) if e.is_timeout() => (
            AttemptOutcome::Timeout,
            format!("timed out after {}", humantime::format_duration(w.timeout)),
            None,
        ),
        Err(e) => (
            AttemptOutcome::Failure,
            format!("request failed: {}", redact_url(&e.to_string(), &url)),
            None,
        ),
    }
}

/// The string or number at `pointer` in a JSON response.
pub fn capture(body: &str, pointer: &str) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("the response is not JSON ({e})"))?;
    match v.pointer(pointer) {
        Some(serde_json::Value::String(s)) if !s.is_empty() && s.len() <= 1024 => Ok(s.clone()),
        Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
        Some(other) => Err(format!(
            "found {}, not a string or number",
            truncate(&other.to_string(), 80)
        )),
        None => Err("not found in the response".to_string()),
    }
}

/// Error texts can contain the URL (which may carry a token): hide it.
fn redact_url(msg: &str, url: &str) -> String {
    msg.replace(url, "<url>")
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// One line for chat: `[P1] INC-… title (status, trigger) link`.
pub fn slack_text(payload: &serde_json::Value) -> String {
    let i = &payload["incident"];
    format!(
        "[{}] {} {} ({}: {}) {}",
        i["priority"].as_str().unwrap_or("?"),
        i["id"].as_str().unwrap_or("?"),
        i["title"].as_str().unwrap_or(""),
        payload["trigger"].as_str().unwrap_or(""),
        i["status"].as_str().unwrap_or(""),
        payload["links"]["incident"].as_str().unwrap_or("")
    )
}

fn text(v: &serde_json::Value) -> &str {
    v.as_str().unwrap_or("")
}

/// The incident's facts for chat cards: name and value.
fn facts(payload: &serde_json::Value) -> Vec<(&'static str, String)> {
    let i = &payload["incident"];
    let mut f = vec![
        ("Priority", text(&i["priority"]).to_string()),
        ("Status", text(&i["status"]).to_string()),
        ("Event", text(&payload["trigger"]).to_string()),
        ("Category", text(&i["category"]).to_string()),
        (
            "Alerts",
            format!("{} ({} firing)", i["alert_count"], i["firing_count"]),
        ),
        (
            "Acknowledge by",
            text(&i["sla"]["acknowledge_by"]).to_string(),
        ),
        ("Resolve by", text(&i["sla"]["resolve_by"]).to_string()),
    ];
    if i["sla"]["breached"].as_bool() == Some(true) {
        f.push(("SLA", "breached".to_string()));
    }
    if let Some(a) = i["assignee"].as_str() {
        f.push(("Assignee", a.to_string()));
    }
    f
}

/// Slack's mrkdwn escapes: `&`, `<` and `>` (so alert text cannot make
/// links or mentions).
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A Slack incoming-webhook message in Block Kit: a header, the facts
/// (priority, SLA…), up to 10 alerts, and buttons to the incident and its
/// report; `text` is the one-line fallback for notifications.
pub fn slack_blocks(payload: &serde_json::Value) -> serde_json::Value {
    let i = &payload["incident"];
    let header: String = format!(
        "[{}] {} {}",
        text(&i["priority"]),
        text(&i["id"]),
        text(&i["title"])
    )
    .chars()
    .take(150)
    .collect();
    let fields: Vec<serde_json::Value> = facts(payload)
        .into_iter()
        .take(10)
        .map(|(k, v)| serde_json::json!({"type": "mrkdwn", "text": format!("*{k}*\n{}", slack_escape(&v))}))
        .collect();
    let alerts: Vec<String> = payload["alerts"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .take(10)
        .map(|a| {
            let summary = text(&a["annotations"]["summary"]);
            format!(
                "• [{}] {}{}{}",
                text(&a["status"]),
                slack_escape(text(&a["labels"]["alertname"])),
                if summary.is_empty() { "" } else { ": " },
                slack_escape(summary)
            )
        })
        .collect();
    let mut blocks = vec![
        serde_json::json!({"type": "header", "text": {"type": "plain_text", "text": header}}),
        serde_json::json!({"type": "section", "fields": fields}),
    ];
    if !alerts.is_empty() {
        let list: String = alerts.join("\n").chars().take(3000).collect();
        blocks
            .push(serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": list}}));
    }
    let link = text(&payload["links"]["incident"]);
    let report = text(&payload["links"]["report"]);
    blocks.push(serde_json::json!({"type": "actions", "elements": [
        {"type": "button", "text": {"type": "plain_text", "text": "Open incident"}, "url": link, "action_id": "incident"},
        {"type": "button", "text": {"type": "plain_text", "text": "Report"}, "url": report, "action_id": "report"},
    ]}));
    serde_json::json!({"text": slack_text(payload), "blocks": blocks})
}

/// A Microsoft Teams message for a Workflows ("When a Teams webhook request
/// is received") webhook: one Adaptive Card (schema 1.4) with the title,
/// the facts, up to 10 alerts and buttons to the incident and its report.
pub fn teams_card(payload: &serde_json::Value) -> serde_json::Value {
    let i = &payload["incident"];
    let facts: Vec<serde_json::Value> = facts(payload)
        .into_iter()
        .map(|(k, v)| serde_json::json!({"title": k, "value": v}))
        .collect();
    let mut body = vec![
        serde_json::json!({"type": "TextBlock", "size": "Large", "weight": "Bolder", "wrap": true,
            "text": format!("[{}] {}", text(&i["priority"]), text(&i["title"]))}),
        serde_json::json!({"type": "TextBlock", "isSubtle": true, "spacing": "None", "wrap": true,
            "text": format!("{} · {}", text(&i["id"]), text(&payload["trigger"]))}),
        serde_json::json!({"type": "FactSet", "facts": facts}),
    ];
    for a in payload["alerts"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .take(10)
    {
        let summary = text(&a["annotations"]["summary"]);
        body.push(
            serde_json::json!({"type": "TextBlock", "wrap": true, "text": format!(
                "[{}] {}{}{}",
                text(&a["status"]),
                text(&a["labels"]["alertname"]),
                if summary.is_empty() { "" } else { ": " },
                summary
            )}),
        );
    }
    serde_json::json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "msteams": {"width": "Full"},
                "body": body,
                "actions": [
                    {"type": "Action.OpenUrl", "title": "Open incident", "url": text(&payload["links"]["incident"])},
                    {"type": "Action.OpenUrl", "title": "Report", "url": text(&payload["links"]["report"])},
                ],
            },
        }],
    })
}
