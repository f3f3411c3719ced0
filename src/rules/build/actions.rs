//! Building the response sections: `actions` (webhook, exec, kafka) and
//! `escalations`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use marked_yaml::{Node, Spanned};

use super::raw::{RawAction, RawEscalation, RawExec, RawKafkaAction, RawWebhook, Section};
use super::Builder;
use crate::model::{Priority, Trigger, CATEGORIES};
use crate::rules::actions::{
    ActionDef, ActionKind, EscalationLevel, EscalationPolicy, ExecDef, HttpMethod, KafkaActionDef,
    KafkaKey, LevelWhen, Preset, WebhookDef,
};
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
            let kind = match (&raw.webhook, &raw.exec, &raw.kafka) {
                (Some(w), None, None) => self
                    .webhook(w, name.as_deref().unwrap_or("?"), &span)
                    .map(ActionKind::Webhook),
                (None, Some(e), None) => self.exec(e).map(ActionKind::Exec),
                (None, None, Some(k)) => self
                    .kafka_action(k, name.as_deref().unwrap_or("?"))
                    .map(ActionKind::Kafka),
                _ => {
                    self.err(
                        &span,
                        "actions: give exactly one of `webhook`, `exec` or `kafka`",
                    );
                    None
                }
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

    /// Registers an action's `body` template (compiled with the others).
    pub(super) fn body_template(
        &mut self,
        body: Option<&Spanned<String>>,
        action: &str,
    ) -> Option<String> {
        let b = body?;
        let tname = format!("action/{action}");
        let pos = self.pos_of(b.span()).unwrap_or(Pos {
            file: Arc::from("?"),
            line: 0,
            column: 0,
        });
        self.templates
            .push((tname.clone(), b.as_str().to_string(), pos));
        Some(tname)
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
        let body_template = self.body_template(k.body.as_ref(), action);
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
            &[("json", Preset::Json), ("slack", Preset::Slack)],
            &mut ok,
        );
        let body_template = self.body_template(w.body.as_ref(), action);
        let timeout = self.timeout_or(w.timeout.as_ref(), Duration::from_secs(10))?;
        ok.then(|| WebhookDef {
            url: w.url.as_ref().map(|u| u.as_str().to_string()),
            url_env: w.url_env.as_ref().map(|u| u.as_str().to_string()),
            method,
            preset,
            body_template,
            headers: w
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
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
                match when {
                    Some(when) => levels.push(EscalationLevel {
                        when,
                        actions: l.actions.iter().map(|a| a.as_str().to_string()).collect(),
                        assignee: l.assignee.clone(),
                    }),
                    None => ok = false,
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
}
