//! `webhook` actions: the incident event as JSON (or a Slack-style text, or
//! a rendered body) to an HTTP endpoint.
//!
//! Contract: the URL may come from an environment variable, and secret
//! header values always do; neither appears in a result message (error
//! texts have the URL replaced by `<url>`). A non-2xx answer is a failure,
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

/// Sends the incident event (a preset or the rendered body) to the URL.
pub async fn send(
    client: &reqwest::Client,
    rules: &RuleSet,
    w: &WebhookDef,
    job: &Job,
) -> (AttemptOutcome, String) {
    let url = match (&w.url, &w.url_env) {
        (Some(u), _) => u.clone(),
        (None, Some(var)) => match std::env::var(var) {
            Ok(u) if !u.is_empty() => u,
            _ => {
                return (
                    AttemptOutcome::Failure,
                    format!("environment variable {var} (url_env) is not set"),
                )
            }
        },
        (None, None) => return (AttemptOutcome::Failure, "no url".into()),
    };
    let body = match &w.body_template {
        Some(t) => match super::render_body(rules, t, job) {
            Ok(b) => b,
            Err(failed) => return failed,
        },
        None => match w.preset {
            Preset::Json => job.payload.to_string(),
            Preset::Slack => serde_json::json!({ "text": slack_text(&job.payload) }).to_string(),
        },
    };
    let mut req = client
        .request(method(w.method), &url)
        .timeout(w.timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    for (k, v) in &w.headers {
        req = req.header(k, v);
    }
    for (k, var) in &w.secret_headers {
        match std::env::var(var) {
            Ok(v) => req = req.header(k, v),
            Err(_) => {
                return (
                    AttemptOutcome::Failure,
                    format!("environment variable {var} for header {k} is not set"),
                )
            }
        }
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            if status.is_success() {
                (AttemptOutcome::Success, format!("HTTP {}", status.as_u16()))
            } else {
                let text = resp.text().await.unwrap_or_default();
                (
                    AttemptOutcome::Failure,
                    format!("HTTP {}: {}", status.as_u16(), truncate(&text, 200)),
                )
            }
        }
        Err(e) if e.is_timeout() => (
            AttemptOutcome::Timeout,
            format!("timed out after {}", humantime::format_duration(w.timeout)),
        ),
        Err(e) => (
            AttemptOutcome::Failure,
            format!("request failed: {}", redact_url(&e.to_string(), &url)),
        ),
    }
}

/// Error texts can contain the URL (which may carry a token): hide it.
fn redact_url(msg: &str, url: &str) -> String {
    msg.replace(url, "<url>")
}

fn truncate(s: &str, max: usize) -> String {
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
