//! `email` actions: one mail (text and HTML alternatives) through the
//! daemon's `smtp` server, with lettre.
//!
//! Contract: STARTTLS (the default) must succeed, or nothing is sent; the
//! password is read from its environment variable or file at send time and
//! never appears in a result message. Subject, text and HTML come from the
//! action's templates (or the built-in defaults); a subject loses its line
//! breaks, so alert content cannot add headers. A refused recipient or any
//! SMTP error is the attempt's failure, with the server's answer.

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{SmtpConfig, SmtpTls};
use crate::model::{AttemptOutcome, Job};
use crate::rules::actions::{EmailDef, Secret};
use crate::rules::RuleSet;

/// Renders the mail and sends it.
pub async fn send(
    smtp: Option<&SmtpConfig>,
    rules: &RuleSet,
    def: &EmailDef,
    job: &Job,
) -> (AttemptOutcome, String) {
    let Some(smtp) = smtp else {
        return (
            AttemptOutcome::Failure,
            "no `smtp` section in the daemon config: email actions cannot send".into(),
        );
    };
    match build(smtp, rules, def, job) {
        Ok((message, transport)) => match transport.send(message).await {
            Ok(resp) => (
                AttemptOutcome::Success,
                format!(
                    "SMTP {}: sent to {}",
                    resp.code(),
                    recipients(def, job)
                        .iter()
                        .chain(&def.cc)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            Err(e) if e.is_timeout() => (
                AttemptOutcome::Timeout,
                format!(
                    "SMTP {}:{} timed out after {}",
                    smtp.host,
                    smtp.port(),
                    humantime::format_duration(def.timeout)
                ),
            ),
            Err(e) => (
                AttemptOutcome::Failure,
                format!("SMTP {}:{}: {e}", smtp.host, smtp.port()),
            ),
        },
        Err(message) => (AttemptOutcome::Failure, message),
    }
}

type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// `to`, or for a page by email the paged person's address.
fn recipients(def: &EmailDef, job: &Job) -> Vec<String> {
    let page = job
        .payload
        .pointer("/page/address")
        .filter(|_| {
            job.payload
                .pointer("/page/channel")
                .and_then(|c| c.as_str())
                == Some("email")
        })
        .and_then(|a| a.as_str());
    match page {
        Some(a) if def.to.is_empty() => vec![a.to_string()],
        _ => def.to.clone(),
    }
}

fn build(
    smtp: &SmtpConfig,
    rules: &RuleSet,
    def: &EmailDef,
    job: &Job,
) -> Result<(Message, Transport), String> {
    let render = |name: &str, what: &str| {
        rules
            .render(name, &job.payload)
            .map_err(|e| format!("{what} template failed: {e}"))
    };
    let subject: String = render(&def.subject, "subject")?
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = render(&def.text, "text")?;
    let html = render(&def.html, "html")?;
    let from: Mailbox = smtp
        .from
        .parse()
        .map_err(|e| format!("smtp.from {:?}: {e}", smtp.from))?;
    let mut builder = Message::builder().from(from).subject(subject.trim());
    let to = recipients(def, job);
    for (list, cc) in [(&to, false), (&def.cc, true)] {
        for a in list.iter() {
            let mb: Mailbox = a.parse().map_err(|e| format!("address {a:?}: {e}"))?;
            builder = if cc { builder.cc(mb) } else { builder.to(mb) };
        }
    }
    let message = builder
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(|e| format!("cannot build the mail: {e}"))?;

    let tls = if smtp.tls == SmtpTls::None {
        Tls::None
    } else {
        let mut params = TlsParameters::builder(smtp.host.clone());
        if let Some(ca) = &smtp.ca_file {
            let pem =
                std::fs::read(ca).map_err(|e| format!("smtp.ca_file {}: {e}", ca.display()))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| format!("smtp.ca_file {}: {e}", ca.display()))?;
            params = params.add_root_certificate(cert);
        }
        let params = params
            .build_rustls()
            .map_err(|e| format!("TLS settings for {}: {e}", smtp.host))?;
        if smtp.tls == SmtpTls::Tls {
            Tls::Wrapper(params)
        } else {
            Tls::Required(params)
        }
    };
    let mut transport = Transport::builder_dangerous(smtp.host.as_str())
        .port(smtp.port())
        .tls(tls)
        .timeout(Some(def.timeout.min(smtp.timeout)));
    if let Some(user) = &smtp.username {
        let secret = match (&smtp.password_env, &smtp.password_file) {
            (Some(var), _) => Some(Secret::Env(var.clone())),
            (None, Some(path)) => Some(Secret::File(path.clone())),
            (None, None) => None,
        };
        let password = match secret {
            Some(s) => s.read().map_err(|e| format!("smtp password: {e}"))?,
            None => String::new(),
        };
        transport = transport.credentials(Credentials::new(user.clone(), password));
    }
    Ok((message, transport.build()))
}
