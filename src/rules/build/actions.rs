//! Building the response sections: `actions` (webhook, exec, kafka,
//! email, pagerduty) and `escalations`.
//!
//! Every template an action has (bodies, headers, mail parts, summaries,
//! the built-in defaults included) is registered here under a name that
//! says how it is escaped (see `templates`), and compiled and tried on a
//! sample with the others.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use marked_yaml::{Node, Spanned};

use super::raw::{
    RawAction, RawAlertmanager, RawEmail, RawEscalation, RawExec, RawHeartbeat, RawKafkaAction,
    RawPagerDuty, RawRedmine, RawWebhook, Section,
};
use super::Builder;
use crate::model::{Priority, Trigger, CATEGORIES};
use crate::rules::actions::{
    ActionDef, ActionKind, AlertmanagerDef, EmailDef, EscalationLevel, EscalationPolicy, ExecDef,
    Fallback, HttpMethod, KafkaActionDef, KafkaKey, LevelWhen, PageTarget, PagerDutyDef, Preset,
    RedmineDef, Secret, Target, WebhookDef, PAGERDUTY_EVENTS_URL,
};

/// The default mail subject.
const EMAIL_SUBJECT: &str =
    "[{{ incident.priority }}] {{ incident.id }} {{ incident.title }} ({{ trigger }})";

/// The default plain-text mail: priority, status, SLA deadlines, alerts, link.
const EMAIL_TEXT: &str = "\
{{ incident.id }}: {{ incident.title }}
Event: {{ trigger }}
Priority: {{ incident.priority }} (impact {{ incident.impact }}, urgency {{ incident.urgency }})
Status: {{ incident.status }}
Category: {{ incident.category }}
{% if incident.assignee %}Assignee: {{ incident.assignee }}
{% endif %}Acknowledge by: {{ incident.sla.acknowledge_by }}
Resolve by: {{ incident.sla.resolve_by }}{% if incident.sla.breached %} (SLA breached){% endif %}

Alerts ({{ incident.alert_count }}, {{ incident.firing_count }} firing):
{% for a in alerts %}- [{{ a.status }}] {{ a.labels.alertname }}{% if a.annotations.summary %}: {{ a.annotations.summary }}{% endif %}
{% endfor %}
Incident: {{ links.incident }}
Report: {{ links.report }}
";

/// The default HTML mail (HTML-escaped): the same content as the text.
const EMAIL_HTML: &str = "\
<html><body>
<h2>[{{ incident.priority }}] {{ incident.id }}: {{ incident.title }}</h2>
<table>
<tr><th align=\"left\">Event</th><td>{{ trigger }}</td></tr>
<tr><th align=\"left\">Priority</th><td>{{ incident.priority }} (impact {{ incident.impact }}, urgency {{ incident.urgency }})</td></tr>
<tr><th align=\"left\">Status</th><td>{{ incident.status }}</td></tr>
<tr><th align=\"left\">Category</th><td>{{ incident.category }}</td></tr>
{% if incident.assignee %}<tr><th align=\"left\">Assignee</th><td>{{ incident.assignee }}</td></tr>
{% endif %}<tr><th align=\"left\">Acknowledge by</th><td>{{ incident.sla.acknowledge_by }}</td></tr>
<tr><th align=\"left\">Resolve by</th><td>{{ incident.sla.resolve_by }}{% if incident.sla.breached %} (SLA breached){% endif %}</td></tr>
</table>
<h3>Alerts ({{ incident.alert_count }}, {{ incident.firing_count }} firing)</h3>
<ul>
{% for a in alerts %}<li>[{{ a.status }}] {{ a.labels.alertname }}{% if a.annotations.summary %}: {{ a.annotations.summary }}{% endif %}</li>
{% endfor %}</ul>
<p><a href=\"{{ links.incident }}\">Open the incident</a> · <a href=\"{{ links.report }}\">Report</a></p>
</body></html>
";

/// The default Redmine subject (Redmine allows 255 characters).
const REDMINE_SUBJECT: &str = "[{{ incident.priority }}] {{ incident.id }} {{ incident.title }}";

/// The default PagerDuty summary (PagerDuty allows 1024 characters).
const PAGERDUTY_SUMMARY: &str = "[{{ incident.priority }}] {{ incident.title }}";

/// Whether a media type is JSON (`application/json`, `…+json`).
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}
use crate::rules::error::Pos;

impl Builder {
    pub(super) fn priorities(&mut self, raw: &[Spanned<String>]) -> Vec<Priority> {
        let mut out = Vec::new();
        for p in raw {
            match Priority::parse(p.as_str()) {
                Some(p) => out.push(p),
                None => self.err(
                    p.span(),
                    format!("unknown priority {:?}; expected P1..P5", p.as_str()),
                ),
            }
        }
        out
    }

    pub(super) fn actions_section(&mut self, node: &Node) {
        for (raw, span, at) in self.items::<RawAction>(node, "actions") {
            let name = self.unique_name("action", &raw.name, Section::Action);
            let mut on = Vec::new();
            for t in &raw.on {
                match Trigger::parse(t.as_str()) {
                    Some(tr) => on.push(tr),
                    None => self.err(
                        t.span(),
                        format!(
                            "unknown trigger {:?}; expected one of {}",
                            t.as_str(),
                            Trigger::ALL.map(Trigger::as_str).join(", ")
                        ),
                    ),
                }
            }
            let matchers = self.matchers(&raw.matchers);
            let priorities = self.priorities(&raw.priority);
            let mut categories = Vec::new();
            for c in &raw.category {
                if CATEGORIES.contains(&c.as_str()) {
                    categories.push(c.as_str().to_string());
                } else {
                    self.err(
                        c.span(),
                        format!(
                            "unknown category {:?}; expected one of {}",
                            c.as_str(),
                            CATEGORIES.join(", ")
                        ),
                    );
                }
            }
            let backoff = match &raw.backoff {
                Some(b) => self.duration(b),
                None => Some(Duration::from_secs(1)),
            };
            let rate_limit = match &raw.rate_limit {
                Some(rl) if rl.max == 0 => {
                    self.err(rl.per.span(), "rate_limit.max must be at least 1");
                    None
                }
                Some(rl) => self
                    .duration(&rl.per)
                    .map(|d| Some((rl.max, d)))
                    .unwrap_or(None),
                None => None,
            };
            let given = [
                raw.webhook.is_some(),
                raw.exec.is_some(),
                raw.kafka.is_some(),
                raw.email.is_some(),
                raw.pagerduty.is_some(),
                raw.redmine.is_some(),
                raw.alertmanager.is_some(),
            ];
            let action = name.as_deref().unwrap_or("?");
            let kind = if given.iter().filter(|g| **g).count() != 1 {
                self.err(
                    &span,
                    "actions: give exactly one of `webhook`, `exec`, `kafka`, `email`, `pagerduty`, `redmine` or `alertmanager`",
                );
                None
            } else if let Some(w) = &raw.webhook {
                self.webhook(w, action, &span).map(ActionKind::Webhook)
            } else if let Some(e) = &raw.exec {
                self.exec(e).map(ActionKind::Exec)
            } else if let Some(k) = &raw.kafka {
                self.kafka_action(k, action).map(ActionKind::Kafka)
            } else if let Some(m) = &raw.email {
                self.email(m, action, &span).map(ActionKind::Email)
            } else if let Some(p) = &raw.pagerduty {
                self.pagerduty(p, action, &span).map(ActionKind::PagerDuty)
            } else if let Some(r) = &raw.redmine {
                self.redmine(r, action, &span).map(ActionKind::Redmine)
            } else if let Some(a) = &raw.alertmanager {
                self.alertmanager(a, &span).map(ActionKind::Alertmanager)
            } else {
                None
            };
            if raw.on.is_empty() {
                if let Some(p) = self.pos_of(&span) {
                    self.triggerless.push((name.clone().unwrap_or_default(), p));
                }
            }
            if let (Some(name), Some(matchers), Some(kind), Some(backoff)) =
                (name, matchers, kind, backoff)
            {
                self.actions.push(ActionDef {
                    name,
                    on,
                    matchers,
                    priorities,
                    categories,
                    kind,
                    retries: raw.retries.unwrap_or(3),
                    backoff,
                    rate_limit,
                    at: at.clone(),
                });
            }
        }
    }

    /// One of `options` by name; unset means the first. Anything else is
    /// an error naming the choices (and clears `ok`).
    pub(super) fn choice<T: Copy>(
        &mut self,
        value: Option<&Spanned<String>>,
        what: &str,
        options: &[(&str, T)],
        ok: &mut bool,
    ) -> T {
        let default = options[0].1;
        let Some(v) = value else { return default };
        if let Some((_, t)) = options.iter().find(|(name, _)| *name == v.as_str()) {
            return *t;
        }
        let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
        self.err(
            v.span(),
            format!("{what} {:?}: expected {}", v.as_str(), names.join(" or ")),
        );
        *ok = false;
        default
    }

    /// Registers an action's `body` template (compiled with the others):
    /// JSON-escaped and checked when `json`.
    pub(super) fn body_template(
        &mut self,
        body: Option<&Spanned<String>>,
        action: &str,
        json: bool,
    ) -> Option<String> {
        let b = body?;
        let prefix = if json { "json" } else { "text" };
        Some(self.template(format!("{prefix}/action/{action}"), b))
    }

    /// Registers one template written at `source`'s position under `name`.
    pub(super) fn template(&mut self, name: String, source: &Spanned<String>) -> String {
        let pos = self.pos_of(source.span()).unwrap_or(Pos {
            file: Arc::from("?"),
            line: 0,
            column: 0,
        });
        self.templates
            .push((name.clone(), source.as_str().to_string(), pos));
        name
    }

    /// Registers a template given in the rules, or else a built-in default
    /// (placed at the action, `span`).
    fn template_or(
        &mut self,
        name: String,
        given: Option<&Spanned<String>>,
        default: &str,
        span: &marked_yaml::Span,
    ) -> String {
        match given {
            Some(t) => self.template(name, t),
            None => {
                let t = Spanned::new(*span, default.to_string());
                self.template(name, &t)
            }
        }
    }

    /// A secret's source: exactly one of an environment variable or a file.
    fn secret(
        &mut self,
        env: Option<&Spanned<String>>,
        file: Option<&Spanned<String>>,
        what: &str,
        span: &marked_yaml::Span,
    ) -> Option<Secret> {
        match (env, file) {
            (Some(v), None) if !v.as_str().trim().is_empty() => {
                Some(Secret::Env(v.as_str().trim().to_string()))
            }
            (None, Some(f)) if !f.as_str().trim().is_empty() => {
                Some(Secret::File(PathBuf::from(f.as_str().trim())))
            }
            _ => {
                self.err(
                    span,
                    format!("{what}: give exactly one of `{what}_env` (an environment variable) or `{what}_file` (a file): never the secret itself"),
                );
                None
            }
        }
    }

    pub(super) fn email(
        &mut self,
        m: &RawEmail,
        action: &str,
        span: &marked_yaml::Span,
    ) -> Option<EmailDef> {
        let mut ok = true;
        if m.to.is_empty() {
            // Fine for a `contacts.email` action (it mails the paged
            // person); checked once every file is read.
            if let Some(p) = self.pos_of(span) {
                self.needs_contact.push((action.to_string(), p, "email: `to` needs at least one address (only a `contacts.email` action, which mails the paged person, may leave it out)"));
            }
        }
        let mut addresses = |list: &[Spanned<String>], b: &mut Builder| -> Vec<String> {
            let mut out = Vec::new();
            for a in list {
                match a.as_str().parse::<lettre::message::Mailbox>() {
                    Ok(_) => out.push(a.as_str().to_string()),
                    Err(e) => {
                        b.err(
                            a.span(),
                            format!("email: bad address {:?}: {e}", a.as_str()),
                        );
                        ok = false;
                    }
                }
            }
            out
        };
        let to = addresses(&m.to, self);
        let cc = addresses(&m.cc, self);
        let subject = self.template_or(
            format!("text/action/{action}/subject"),
            m.subject.as_ref(),
            EMAIL_SUBJECT,
            span,
        );
        let text = self.template_or(
            format!("text/action/{action}/text"),
            m.text.as_ref(),
            EMAIL_TEXT,
            span,
        );
        let html = self.template_or(
            format!("html/action/{action}/html"),
            m.html.as_ref(),
            EMAIL_HTML,
            span,
        );
        let timeout = self.timeout_or(m.timeout.as_ref(), Duration::from_secs(30))?;
        ok.then_some(EmailDef {
            to,
            cc,
            subject,
            text,
            html,
            timeout,
        })
    }

    /// An HTTP target: exactly one of `url` (http or https) and `url_env`.
    fn target(
        &mut self,
        url: Option<&Spanned<String>>,
        env: Option<&Spanned<String>>,
        what: &str,
        span: &marked_yaml::Span,
    ) -> Option<Target> {
        match (url, env) {
            (Some(u), None) => {
                if u.as_str().starts_with("http://") || u.as_str().starts_with("https://") {
                    Some(Target::Url(u.as_str().trim_end_matches('/').to_string()))
                } else {
                    self.err(
                        u.span(),
                        format!(
                            "{what} url {:?} must start with http:// or https://",
                            u.as_str()
                        ),
                    );
                    None
                }
            }
            (None, Some(v)) if !v.as_str().trim().is_empty() => {
                Some(Target::Env(v.as_str().trim().to_string()))
            }
            _ => {
                self.err(
                    span,
                    format!("{what}: give exactly one of `url` or `url_env` (the environment variable holding the URL)"),
                );
                None
            }
        }
    }

    pub(super) fn alertmanager(
        &mut self,
        a: &RawAlertmanager,
        span: &marked_yaml::Span,
    ) -> Option<AlertmanagerDef> {
        let url = self.target(a.url.as_ref(), a.url_env.as_ref(), "alertmanager", span);
        let duration = self.timeout_or(a.duration.as_ref(), Duration::from_secs(24 * 3600));
        let timeout = self.timeout_or(a.timeout.as_ref(), Duration::from_secs(10));
        Some(AlertmanagerDef {
            url: url?,
            duration: duration?,
            timeout: timeout?,
        })
    }

    pub(super) fn redmine(
        &mut self,
        r: &RawRedmine,
        action: &str,
        span: &marked_yaml::Span,
    ) -> Option<RedmineDef> {
        let mut ok = true;
        let url = self.target(r.url.as_ref(), r.url_env.as_ref(), "redmine", span);
        let api_key = self.secret(
            r.api_key_env.as_ref(),
            r.api_key_file.as_ref(),
            "api_key",
            span,
        );
        let project = r.project.as_str().trim().to_string();
        if project.is_empty() || project.contains(['/', '?', '#', ' ']) {
            self.err(
                r.project.span(),
                format!("redmine project {project:?}: give the project's identifier or id"),
            );
            ok = false;
        }
        let mut priorities = [5, 4, 3, 2, 1];
        for (p, id) in &r.priorities {
            match Priority::parse(p) {
                Some(p) => priorities[p.idx()] = *id,
                None => {
                    self.err(
                        r.project.span(),
                        format!("redmine priorities: unknown priority {p:?}; expected P1..P5"),
                    );
                    ok = false;
                }
            }
        }
        let mut trackers = Vec::new();
        for (c, id) in &r.trackers {
            if CATEGORIES.contains(&c.as_str()) {
                trackers.push((c.clone(), *id));
            } else {
                self.err(
                    span,
                    format!(
                        "redmine trackers: unknown category {c:?}; expected one of {}",
                        CATEGORIES.join(", ")
                    ),
                );
                ok = false;
            }
        }
        let st = r.statuses.as_ref();
        let subject = self.template_or(
            format!("text/action/{action}/subject"),
            r.subject.as_ref(),
            REDMINE_SUBJECT,
            span,
        );
        let description = self.template_or(
            format!("text/action/{action}/description"),
            r.description.as_ref(),
            EMAIL_TEXT,
            span,
        );
        let timeout = self.timeout_or(r.timeout.as_ref(), Duration::from_secs(10))?;
        let (url, api_key) = (url?, api_key?);
        ok.then(|| RedmineDef {
            url,
            api_key,
            project,
            priorities,
            trackers,
            category_field_id: r.category_field_id,
            status_acknowledged: st.and_then(|s| s.acknowledged).unwrap_or(2),
            status_resolved: st.and_then(|s| s.resolved).unwrap_or(3),
            status_closed: st.and_then(|s| s.closed).unwrap_or(5),
            status_reopened: st.and_then(|s| s.reopened).unwrap_or(1),
            subject,
            description,
            timeout,
        })
    }

    pub(super) fn pagerduty(
        &mut self,
        p: &RawPagerDuty,
        action: &str,
        span: &marked_yaml::Span,
    ) -> Option<PagerDutyDef> {
        let routing_key = self.secret(
            p.routing_key_env.as_ref(),
            p.routing_key_file.as_ref(),
            "routing_key",
            span,
        );
        let url = match &p.url {
            Some(u)
                if !(u.as_str().starts_with("http://") || u.as_str().starts_with("https://")) =>
            {
                self.err(
                    u.span(),
                    format!(
                        "pagerduty url {:?} must start with http:// or https://",
                        u.as_str()
                    ),
                );
                None
            }
            Some(u) => Some(u.as_str().to_string()),
            None => Some(PAGERDUTY_EVENTS_URL.to_string()),
        };
        let summary = self.template_or(
            format!("text/action/{action}/summary"),
            p.summary.as_ref(),
            PAGERDUTY_SUMMARY,
            span,
        );
        let timeout = self.timeout_or(p.timeout.as_ref(), Duration::from_secs(10))?;
        Some(PagerDutyDef {
            routing_key: routing_key?,
            url: url?,
            summary,
            timeout,
        })
    }

    /// A duration field with a default; `None` after reporting a bad one.
    pub(super) fn timeout_or(
        &mut self,
        t: Option<&Spanned<String>>,
        default: Duration,
    ) -> Option<Duration> {
        match t {
            Some(t) => self.duration(t),
            None => Some(default),
        }
    }

    pub(super) fn kafka_action(
        &mut self,
        k: &RawKafkaAction,
        action: &str,
    ) -> Option<KafkaActionDef> {
        let mut ok = true;
        let topic = k.topic.as_str();
        if topic.is_empty()
            || topic.len() > 249
            || !topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            self.err(
                k.topic.span(),
                format!("kafka topic {topic:?}: use 1-249 characters of a-z A-Z 0-9 . _ -"),
            );
            ok = false;
        }
        let key = self.choice(
            k.key.as_ref(),
            "kafka key",
            &[
                ("incident", KafkaKey::Incident),
                ("group_key", KafkaKey::GroupKey),
            ],
            &mut ok,
        );
        let body_template = self.body_template(k.body.as_ref(), action, true);
        let timeout = self.timeout_or(k.timeout.as_ref(), Duration::from_secs(10))?;
        ok.then(|| KafkaActionDef {
            topic: topic.to_string(),
            brokers: k.brokers.as_ref().map(|b| b.as_str().to_string()),
            key,
            body_template,
            timeout,
        })
    }

    pub(super) fn webhook(
        &mut self,
        w: &RawWebhook,
        action: &str,
        span: &marked_yaml::Span,
    ) -> Option<WebhookDef> {
        let mut ok = true;
        match (&w.url, &w.url_env) {
            (Some(u), None) => {
                if !(u.as_str().starts_with("http://") || u.as_str().starts_with("https://")) {
                    self.err(
                        u.span(),
                        format!(
                            "webhook url {:?} must start with http:// or https://",
                            u.as_str()
                        ),
                    );
                    ok = false;
                }
            }
            (None, Some(_)) => {}
            (None, None) => {
                // Fine for a `contacts.webhook` action (it posts to the paged
                // person's webhook); checked once every file is read.
                if let Some(p) = self.pos_of(span) {
                    self.needs_contact.push((action.to_string(), p, "webhook: give exactly one of `url` or `url_env` (the environment variable holding the URL); only a `contacts.webhook` action, which posts to the paged person's webhook, may leave both out"));
                }
            }
            _ => {
                self.err(span, "webhook: give exactly one of `url` or `url_env` (the environment variable holding the URL)");
                ok = false;
            }
        }
        let method = match w.method.as_ref().map(|m| m.as_str().to_ascii_uppercase()) {
            None => HttpMethod::Post,
            Some(m) if m == "POST" => HttpMethod::Post,
            Some(m) if m == "PUT" => HttpMethod::Put,
            Some(m) => {
                if let Some(raw) = &w.method {
                    self.err(
                        raw.span(),
                        format!("webhook method {m:?}: expected POST or PUT"),
                    );
                }
                ok = false;
                HttpMethod::Post
            }
        };
        let preset = self.choice(
            w.preset.as_ref(),
            "webhook preset",
            &[
                ("json", Preset::Json),
                ("slack", Preset::Slack),
                ("teams", Preset::Teams),
            ],
            &mut ok,
        );
        let content_type = match &w.content_type {
            Some(c) if c.as_str().trim().is_empty() || c.as_str().contains(['\r', '\n']) => {
                self.err(
                    c.span(),
                    "webhook content_type must be one media type, such as text/plain",
                );
                ok = false;
                String::new()
            }
            Some(c) => c.as_str().trim().to_string(),
            None => "application/json".to_string(),
        };
        if w.preset.is_some() && !is_json(&content_type) {
            if let Some(c) = &w.content_type {
                self.err(
                    c.span(),
                    "webhook presets send JSON: content_type must be a JSON type with a preset",
                );
                ok = false;
            }
        }
        let body_template = self.body_template(w.body.as_ref(), action, is_json(&content_type));
        let url_template = match &w.url {
            Some(u) if u.as_str().contains("{{") || u.as_str().contains("{%") => {
                Some(self.template(format!("url/action/{action}"), u))
            }
            _ => None,
        };
        let capture = match &w.capture {
            Some(c) if !c.as_str().starts_with('/') => {
                self.err(
                    c.span(),
                    format!(
                        "webhook capture {:?} must be a JSON pointer such as /issue/id",
                        c.as_str()
                    ),
                );
                ok = false;
                None
            }
            Some(c) => Some(c.as_str().to_string()),
            None => None,
        };
        let mut headers = Vec::new();
        for (k, v) in &w.headers {
            if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
                self.err(
                    v.span(),
                    format!("webhook header name {k:?} is not a valid HTTP header name"),
                );
                ok = false;
                continue;
            }
            let tname = self.template(format!("text/action/{action}/header/{k}"), v);
            headers.push((k.clone(), tname));
        }
        let timeout = self.timeout_or(w.timeout.as_ref(), Duration::from_secs(10))?;
        ok.then(|| WebhookDef {
            url: w.url.as_ref().map(|u| u.as_str().to_string()),
            url_env: w.url_env.as_ref().map(|u| u.as_str().to_string()),
            method,
            preset,
            body_template,
            content_type,
            url_template,
            capture,
            headers,
            secret_headers: w
                .secret_headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            timeout,
        })
    }

    pub(super) fn exec(&mut self, e: &RawExec) -> Option<ExecDef> {
        let command = e.command.as_str();
        if command.is_empty()
            || command.contains(char::is_whitespace) && !std::path::Path::new(command).exists()
        {
            self.err(e.command.span(), format!("exec command {command:?} is one program path; put its arguments in `args` (no shell is used)"));
            return None;
        }
        let timeout = self.timeout_or(e.timeout.as_ref(), Duration::from_secs(30))?;
        Some(ExecDef {
            command: PathBuf::from(command),
            args: e.args.clone(),
            timeout,
            max_output: e.max_output.unwrap_or(16 * 1024),
        })
    }

    pub(super) fn heartbeats_section(&mut self, node: &Node) {
        for (raw, _span, at) in self.items::<RawHeartbeat>(node, "heartbeats") {
            let name = self.unique_name("heartbeat", &raw.name, Section::Heartbeat);
            if let Some(n) = &name {
                if !n
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                {
                    self.err(
                        raw.name.span(),
                        format!("heartbeat name {n:?}: use a-z A-Z 0-9 . _ - (it is part of the ping URL)"),
                    );
                    continue;
                }
            }
            let matchers = self.matchers(&raw.matchers);
            let every = self.duration(&raw.expect_every);
            let grace = self.timeout_or(raw.grace.as_ref(), Duration::from_secs(60));
            let category = match &raw.category {
                Some(c) if CATEGORIES.contains(&c.as_str()) => Some(c.as_str().to_string()),
                Some(c) => {
                    self.err(
                        c.span(),
                        format!(
                            "unknown category {:?}; expected one of {}",
                            c.as_str(),
                            CATEGORIES.join(", ")
                        ),
                    );
                    None
                }
                None => Some("other".to_string()),
            };
            let priority = match &raw.priority {
                Some(p) => {
                    let parsed = self.priorities(std::slice::from_ref(p));
                    parsed.first().copied()
                }
                None => Some(Priority::P2),
            };
            if let (
                Some(name),
                Some(matchers),
                Some(expect_every),
                Some(grace),
                Some(category),
                Some(priority),
            ) = (name, matchers, every, grace, category, priority)
            {
                self.heartbeats
                    .push(crate::rules::heartbeats::HeartbeatDef {
                        name,
                        matchers,
                        expect_every,
                        grace,
                        category,
                        priority,
                        at: at.clone(),
                    });
            }
        }
    }

    pub(super) fn escalations_section(&mut self, node: &Node) {
        for (raw, span, at) in self.items::<RawEscalation>(node, "escalations") {
            let name = self.unique_name("escalation policy", &raw.name, Section::Escalation);
            let matchers = self.matchers(&raw.matchers);
            let priorities = self.priorities(&raw.priority);
            if raw.levels.is_empty() {
                self.err(&span, "escalations: a policy needs at least one level");
                continue;
            }
            let mut levels = Vec::new();
            let mut ok = true;
            for l in &raw.levels {
                let when = match (&l.after, &l.resolve_progress) {
                    (Some(a), None) => self.duration(a).map(LevelWhen::Unacknowledged),
                    (None, Some(p)) => {
                        let text = p.as_str().trim();
                        let parsed = text
                            .strip_suffix('%')
                            .and_then(|n| n.trim().parse::<f64>().ok());
                        match parsed {
                            Some(v) if v > 0.0 && v <= 100.0 => {
                                Some(LevelWhen::ResolveProgress(v / 100.0))
                            }
                            _ => {
                                self.err(p.span(), format!("resolve_progress {text:?}: expected a percentage such as \"80%\""));
                                None
                            }
                        }
                    }
                    _ => {
                        self.err(&span, "escalations: each level needs exactly one of `after` (unacknowledged for) or `resolve_progress` (e.g. \"80%\")");
                        None
                    }
                };
                for a in &l.actions {
                    if let Some(pos) = self.pos_of(a.span()) {
                        self.action_refs.push((a.as_str().to_string(), pos));
                    }
                }
                let paging = self.level_paging(l, &span);
                match (when, paging) {
                    (Some(when), Some((target, fallback, repeat, repeat_every))) => {
                        levels.push(EscalationLevel {
                            when,
                            actions: l.actions.iter().map(|a| a.as_str().to_string()).collect(),
                            assignee: l.assignee.clone(),
                            target,
                            fallback,
                            repeat,
                            repeat_every,
                        })
                    }
                    _ => ok = false,
                }
            }
            if let (Some(name), Some(matchers), true) = (name, matchers, ok) {
                self.escalations.push(EscalationPolicy {
                    name,
                    matchers,
                    priorities,
                    levels,
                    at: at.clone(),
                });
            }
        }
    }

    /// A level's page target, fallback and repeats.
    #[allow(clippy::type_complexity)]
    fn level_paging(
        &mut self,
        l: &super::raw::RawLevel,
        span: &marked_yaml::Span,
    ) -> Option<(Option<PageTarget>, Fallback, u32, std::time::Duration)> {
        use super::people::RefKind;
        let mut targets = Vec::new();
        if let Some(o) = &l.oncall {
            if o.as_str().trim() == "$team" {
                targets.push(PageTarget::OwningTeam);
            } else {
                self.people_ref(RefKind::Oncall, o);
                targets.push(PageTarget::Oncall(o.as_str().trim().to_string()));
            }
        }
        if let Some(p) = &l.person {
            self.people_ref(RefKind::Person, p);
            targets.push(PageTarget::Person(p.as_str().trim().to_string()));
        }
        if let Some(t) = &l.team {
            self.people_ref(RefKind::Team, t);
            targets.push(PageTarget::Team(t.as_str().trim().to_string()));
        }
        if l.next_oncall == Some(true) {
            targets.push(PageTarget::NextOncall);
        }
        if targets.len() > 1 {
            self.err(
                span,
                "escalations: a level pages at most one of `oncall`, `person`, `team` or `next_oncall`",
            );
            return None;
        }
        let fallback = match &l.fallback {
            None => Fallback::NextLevel,
            Some(f) => {
                let text = f.as_str().trim();
                let (word, rest) = text.split_once(' ').unwrap_or((text, ""));
                match (word, rest.trim()) {
                    ("next_level", "") => Fallback::NextLevel,
                    ("person", name) if !name.is_empty() => {
                        if let Some(pos) = self.pos_of(f.span()) {
                            self.people_names
                                .refs
                                .push((RefKind::Person, name.to_string(), pos));
                        }
                        Fallback::Person(name.to_string())
                    }
                    ("wait", d) if !d.is_empty() => match humantime::parse_duration(d) {
                        Ok(d) if !d.is_zero() => Fallback::Wait(d),
                        _ => {
                            self.err(
                                f.span(),
                                format!("fallback {text:?}: bad duration {d:?} (examples: 5m, 1h)"),
                            );
                            return None;
                        }
                    },
                    _ => {
                        self.err(f.span(), format!("fallback {text:?}: expected `next_level`, `person NAME` or `wait DURATION`"));
                        return None;
                    }
                }
            }
        };
        if targets.is_empty() && (l.fallback.is_some() || l.repeat.is_some()) {
            self.err(
                span,
                "escalations: `fallback` and `repeat` apply to a level that pages (`oncall`, `person`, `team` or `next_oncall`)",
            );
            return None;
        }
        let repeat_every = match &l.repeat_every {
            None => std::time::Duration::from_secs(300),
            Some(d) => self.duration(d)?,
        };
        Some((targets.pop(), fallback, l.repeat.unwrap_or(0), repeat_every))
    }
}
