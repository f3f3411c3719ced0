//! Safe templates and the built-in notifiers against real receivers: JSON
//! bodies under hostile alert content, Slack and Teams payloads on a real
//! HTTP sink, email through a real SMTP server (aiosmtpd, from the Debian
//! package python3-aiosmtpd, with STARTTLS and AUTH) with its MIME parsed
//! here, and PagerDuty Events v2 into a second incidentd's `/v2/enqueue`.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Uri};
use axum::Router;
use common::procs::{wait_for, Proc};
use common::tools::{free_port, require_binary};
use common::Daemon;
use incidentd::rules::Source as RulesSource;
use serde_json::{json, Value};

/// What alert content can hold: quotes, backslashes, line breaks, a JSON
/// injection attempt, markup, template syntax, a CRLF header injection.
const HOSTILE: &str =
    "x\", \"priority\": \"P1\", \"injected\": \"yes \\ \n\ttab </td><script>alert(1)</script> {{ 7*7 }} \r\nBcc: evil@example.com";

/// A real HTTP server on loopback that answers 200 and records every
/// request (path, headers, body).
struct Sink {
    url: String,
    seen: Arc<Mutex<Vec<(String, HeaderMap, String)>>>,
}

impl Sink {
    async fn start() -> Sink {
        let seen: Arc<Mutex<Vec<(String, HeaderMap, String)>>> = Arc::default();
        let s = seen.clone();
        let app = Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let s = s.clone();
            async move {
                s.lock().expect("lock").push((
                    uri.path().to_string(),
                    headers,
                    String::from_utf8_lossy(&body).into_owned(),
                ));
                "ok"
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind sink");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Sink {
            url: format!("http://{addr}"),
            seen,
        }
    }

    fn requests(&self, path: &str) -> Vec<(HeaderMap, String)> {
        self.seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, h, b)| (h.clone(), b.clone()))
            .collect()
    }
}

fn rules_dir(yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("rules dir");
    std::fs::write(dir.path().join("rules.yaml"), yaml).expect("write rules");
    dir
}

async fn timeline(d: &Daemon, id: &str) -> Vec<String> {
    d.get_json(&format!("/api/v1/incidents/{id}")).await["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e["kind"].as_str().unwrap_or(""),
                e["message"].as_str().unwrap_or("")
            )
        })
        .collect()
}

async fn post_alert(d: &Daemon, alert: Value) -> String {
    let (s, body) = d.post_json("/api/v1/alerts", alert).await;
    assert_eq!(s, 200, "{body}");
    body["created"][0]
        .as_str()
        .or(body["updated"][0].as_str())
        .unwrap_or_default()
        .to_string()
}

/// The hostile alert: every label and annotation the templates read holds
/// [`HOSTILE`].
fn hostile_alert() -> Value {
    json!({
        "labels": {"alertname": "Hostile", "service": HOSTILE, "severity": "critical", "env": "prod"},
        "annotations": {"summary": HOSTILE, "note": HOSTILE},
    })
}

const PRIORITY: &str = r#"
correlate:
  - name: hostile
    match: ['alertname="Hostile"']
    group_by: [alertname]
    title: "{{ labels.alertname }} on {{ labels.service }}"
prioritize:
  urgency:
    - match: ['severity="critical"']
      urgency: high
  impact:
    - match: ['env="prod"']
      impact: high
  default_impact: low
  default_urgency: low
"#;

async fn wait_action(d: &Daemon, id: &str, action: &str, trigger: &str) -> String {
    let prefix = format!("action: action {action} ");
    for _ in 0..200 {
        if let Some(l) = timeline(d, id)
            .await
            .into_iter()
            .find(|l| l.starts_with(&prefix) && l.contains(&format!(" for {trigger} ")))
        {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "no {action} attempt for {trigger} on the timeline: {:#?}",
        timeline(d, id).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bodies_and_headers_stay_well_formed_under_hostile_alert_content() {
    let sink = Sink::start().await;
    let rules = rules_dir(&format!(
        r#"{PRIORITY}actions:
  - name: ticket
    on: [opened]
    webhook:
      url: {url}/ticket
      headers: {{X-Incident: "{{{{ incident.id }}}}"}}
      body: '{{"summary": {{{{ incident.title }}}}, "note": {{{{ alerts[0].annotations.note }}}}, "labels": {{{{ incident.labels|tojson }}}}, "count": {{{{ incident.alert_count }}}}}}'
  - name: header-injection
    on: [opened]
    retries: 0
    webhook:
      url: {url}/header
      headers: {{X-Service: "{{{{ incident.labels.service }}}}"}}
  - name: p1-only-json
    on: [opened]
    retries: 0
    webhook:
      url: {url}/broken
      body: '{{% if incident.priority == "P1" %}}{{"broken": {{% else %}}{{"fine": true}}{{% endif %}}'
"#,
        url = sink.url
    ));
    let data = tempfile::tempdir().expect("data");
    let d = Daemon::start(
        data.path(),
        RulesSource::Dir(rules.path().to_path_buf()),
        |_| {},
    )
    .await;
    let id = post_alert(&d, hostile_alert()).await;
    let ok = wait_action(&d, &id, "ticket", "opened").await;
    assert!(ok.contains("success: HTTP 200"), "{ok}");

    // The JSON body parses, has exactly its four keys, and carries the
    // hostile text as data.
    let reqs = sink.requests("/ticket");
    assert_eq!(reqs.len(), 1);
    let (headers, body) = &reqs[0];
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["count", "labels", "note", "summary"], "{body}");
    assert_eq!(v["note"], HOSTILE);
    assert_eq!(v["summary"], format!("Hostile on {HOSTILE}"));
    assert_eq!(v["labels"]["service"], HOSTILE);
    assert_eq!(v["count"], 1);
    assert_eq!(headers["x-incident"], id.as_str());
    assert_eq!(
        headers["content-type"], "application/json",
        "JSON bodies are declared JSON"
    );

    // A header whose value would carry a line break (a header injection)
    // is a failure, and nothing is sent.
    let fail = wait_action(&d, &id, "header-injection", "opened").await;
    assert!(
        fail.contains("failure: header X-Service: the rendered value is not a valid header value"),
        "{fail}"
    );
    assert!(sink.requests("/header").is_empty());

    // A body that renders as invalid JSON for this incident is a failure,
    // recorded as such, and nothing reaches the sink.
    let broken = wait_action(&d, &id, "p1-only-json", "opened").await;
    assert!(
        broken.contains("failure: the rendered body is not valid JSON"),
        "{broken}"
    );
    assert!(sink.requests("/broken").is_empty());
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_and_teams_presets_send_their_documented_shapes() {
    let sink = Sink::start().await;
    let rules = rules_dir(&format!(
        "{PRIORITY}actions:\n  - name: slack\n    on: [opened]\n    webhook:\n      url: {url}/slack\n      preset: slack\n  - name: teams\n    on: [opened]\n    webhook:\n      url: {url}/teams\n      preset: teams\n",
        url = sink.url
    ));
    let data = tempfile::tempdir().expect("data");
    let d = Daemon::start(
        data.path(),
        RulesSource::Dir(rules.path().to_path_buf()),
        |_| {},
    )
    .await;
    let id = post_alert(&d, hostile_alert()).await;
    for a in ["slack", "teams"] {
        let l = wait_action(&d, &id, a, "opened").await;
        assert!(l.contains("success: HTTP 200"), "{l}");
    }
    let link = format!("{}/api/v1/incidents/{id}", d.base);

    // Slack: Block Kit (https://api.slack.com/reference/block-kit/blocks)
    // with a `text` fallback.
    let (_, body) = &sink.requests("/slack")[0];
    let v: Value = serde_json::from_str(body).expect("slack JSON");
    assert!(v["text"]
        .as_str()
        .expect("text")
        .starts_with(&format!("[P1] {id} Hostile on")));
    let blocks = v["blocks"].as_array().expect("blocks");
    let types: Vec<&str> = blocks
        .iter()
        .map(|b| b["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(types, ["header", "section", "section", "actions"], "{body}");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert!(
        blocks[0]["text"]["text"]
            .as_str()
            .expect("header")
            .chars()
            .count()
            <= 150
    );
    let fields: Vec<&str> = blocks[1]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| {
            assert_eq!(f["type"], "mrkdwn");
            f["text"].as_str().unwrap_or("")
        })
        .collect();
    assert!(fields.contains(&"*Priority*\nP1"), "{fields:?}");
    assert!(
        fields.iter().any(|f| f.starts_with("*Resolve by*\n20")),
        "{fields:?}"
    );
    let alerts = blocks[2]["text"]["text"].as_str().expect("alerts");
    assert!(alerts.contains("[firing] Hostile: x\""), "{alerts}");
    assert!(
        !alerts.contains("<script>") && alerts.contains("&lt;script&gt;"),
        "alert text cannot make Slack links or mentions: {alerts}"
    );
    let buttons = blocks[3]["elements"].as_array().expect("buttons");
    assert_eq!(buttons[0]["type"], "button");
    assert_eq!(buttons[0]["url"], link.as_str());
    assert_eq!(buttons[1]["url"], format!("{link}/report"));

    // Teams: a Workflows webhook message carrying one Adaptive Card
    // (https://learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using).
    let (headers, body) = &sink.requests("/teams")[0];
    assert_eq!(headers["content-type"], "application/json");
    let v: Value = serde_json::from_str(body).expect("teams JSON");
    assert_eq!(v["type"], "message");
    let att = &v["attachments"][0];
    assert_eq!(
        att["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert!(att["contentUrl"].is_null());
    let card = &att["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.4");
    assert_eq!(
        card["$schema"],
        "http://adaptivecards.io/schemas/adaptive-card.json"
    );
    assert_eq!(card["body"][0]["type"], "TextBlock");
    assert_eq!(
        card["body"][0]["text"],
        format!("[P1] Hostile on {HOSTILE}"),
        "alert text is data in a JSON string"
    );
    let facts = card["body"][2]["facts"].as_array().expect("facts");
    assert!(
        facts.contains(&json!({"title": "Priority", "value": "P1"})),
        "{facts:?}"
    );
    assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
    assert_eq!(card["actions"][0]["url"], link.as_str());
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_events_follow_the_incident_into_a_real_events_v2_receiver() {
    // The receiver: a second incidentd, whose /v2/enqueue implements the
    // Events API v2; and a recording sink for the exact payloads.
    let receiver_data = tempfile::tempdir().expect("data");
    let receiver = Daemon::start(receiver_data.path(), common::shipped_rules(), |_| {}).await;
    let sink = Sink::start().await;
    let key_file = tempfile::NamedTempFile::new().expect("key file");
    std::fs::write(key_file.path(), "R0UT1NGKEY-from-file\n").expect("write key");
    std::env::set_var("INCIDENTD_TEST_PD_KEY", "R0UT1NGKEY-s3cret");
    let rules = rules_dir(&format!(
        "{PRIORITY}actions:\n  - name: pagerduty\n    on: [opened, acknowledged, resolved]\n    pagerduty:\n      routing_key_env: INCIDENTD_TEST_PD_KEY\n      url: {}/v2/enqueue\n  - name: pd-recorded\n    on: [opened, acknowledged, resolved]\n    pagerduty:\n      routing_key_file: {}\n      url: {}/pd\n",
        receiver.base,
        key_file.path().display(),
        sink.url
    ));
    let data = tempfile::tempdir().expect("data");
    let d = Daemon::start(
        data.path(),
        RulesSource::Dir(rules.path().to_path_buf()),
        |_| {},
    )
    .await;
    let id = post_alert(&d, hostile_alert()).await;
    let l = wait_action(&d, &id, "pagerduty", "opened").await;
    assert!(l.contains("success: PagerDuty trigger: HTTP 202"), "{l}");

    // The receiver opened an incident from the trigger, keyed by our id.
    let theirs = receiver.incidents().await;
    assert_eq!(theirs.len(), 1, "{theirs:#?}");
    assert_eq!(theirs[0]["labels"]["dedup_key"], id.as_str());
    assert_eq!(theirs[0]["labels"]["severity"], "critical");
    assert_eq!(theirs[0]["status"], "open");
    let their_id = theirs[0]["id"].as_str().expect("id").to_string();

    let (s, _) = d
        .post_json(
            &format!("/api/v1/incidents/{id}/ack"),
            json!({"by": "alice"}),
        )
        .await;
    assert_eq!(s, 200);
    let l = wait_action(&d, &id, "pagerduty", "acknowledged").await;
    assert!(
        l.contains("success: PagerDuty acknowledge: HTTP 202"),
        "{l}"
    );
    let (s, _) = d
        .post_json(
            &format!("/api/v1/incidents/{id}/resolve"),
            json!({"by": "alice"}),
        )
        .await;
    assert_eq!(s, 200);
    let l = wait_action(&d, &id, "pagerduty", "resolved").await;
    assert!(l.contains("success: PagerDuty resolve: HTTP 202"), "{l}");
    let theirs = receiver
        .get_json(&format!("/api/v1/incidents/{their_id}"))
        .await;
    assert_eq!(theirs["status"], "resolved", "{theirs:#?}");

    // The payloads, as PagerDuty documents them
    // (https://developer.pagerduty.com/docs/send-alert-event).
    wait_action(&d, &id, "pd-recorded", "resolved").await;
    let events: Vec<Value> = sink
        .requests("/pd")
        .iter()
        .map(|(_, b)| serde_json::from_str(b).expect("JSON"))
        .collect();
    assert_eq!(events.len(), 3);
    let trigger = &events[0];
    assert_eq!(trigger["routing_key"], "R0UT1NGKEY-from-file");
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["dedup_key"], id.as_str());
    let p = &trigger["payload"];
    assert_eq!(p["summary"], format!("[P1] Hostile on {HOSTILE}"));
    assert_eq!(p["severity"], "critical");
    assert_eq!(p["source"], HOSTILE, "the service label names the source");
    assert_eq!(p["class"], "other");
    assert_eq!(p["group"], "hostile");
    assert!(p["timestamp"].as_str().is_some_and(|t| t.starts_with("20")));
    assert_eq!(p["custom_details"]["priority"], "P1");
    assert_eq!(
        trigger["links"][0]["href"],
        format!("{}/api/v1/incidents/{id}", d.base)
    );
    for (e, action) in events[1..].iter().zip(["acknowledge", "resolve"]) {
        assert_eq!(
            e,
            &json!({"routing_key": "R0UT1NGKEY-from-file", "event_action": action, "dedup_key": id})
        );
    }
    // The routing keys never reach the timeline, the API or the metrics.
    let everything = d.get(&format!("/api/v1/incidents/{id}")).await.1 + &d.get("/metrics").await.1;
    assert!(!everything.contains("R0UT1NGKEY"), "{everything}");
    d.stop().await;
    receiver.stop().await;
}

/// A real SMTP server: aiosmtpd (Debian python3-aiosmtpd) requiring
/// STARTTLS and AUTH, delivering into a maildir.
struct Smtp {
    port: u16,
    maildir: std::path::PathBuf,
    ca_pem: String,
    _proc: Proc,
}

const SMTP_SERVER: &str = r#"
import signal, ssl, sys
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

port, maildir, cert, key, user, password = sys.argv[1:7]

def authenticate(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login.decode() == user
          and auth_data.password.decode() == password)
    return AuthResult(success=ok, handled=False)

tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
tls.load_cert_chain(cert, key)
controller = Controller(Mailbox(maildir), hostname="127.0.0.1", port=int(port),
                        server_hostname="localhost", tls_context=tls,
                        require_starttls=True, authenticator=authenticate,
                        auth_required=True, auth_require_tls=True,
                        ready_timeout=10)
controller.start()
print("ready", flush=True)
signal.sigwait([signal.SIGTERM, signal.SIGINT])
controller.stop()
"#;

impl Smtp {
    async fn start(dir: &Path) -> Smtp {
        // Debian's python3 (with python3-aiosmtpd), also when another
        // python3 comes first on PATH.
        let candidates = [
            std::path::PathBuf::from("/usr/bin/python3"),
            require_binary("python3", "python3-aiosmtpd"),
        ];
        let python = candidates
            .iter()
            .find(|p| {
                std::process::Command::new(p)
                    .args(["-c", "import aiosmtpd"])
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .cloned()
            .unwrap_or_else(|| {
                panic!(
                    "the SMTP server aiosmtpd is missing (no python3 of {candidates:?} imports it): \
                     install the Debian package python3-aiosmtpd (scripts/test does this)"
                )
            });
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let ca_key = KeyPair::generate().expect("key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "test mail CA");
        let ca_cert = ca.self_signed(&ca_key).expect("CA");
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec!["localhost".to_string()])
            .expect("params")
            .signed_by(&key, &ca_cert, &ca_key)
            .expect("server cert");
        std::fs::write(dir.join("smtp.crt"), cert.pem()).expect("cert");
        std::fs::write(dir.join("smtp.key"), key.serialize_pem()).expect("key");
        std::fs::write(dir.join("smtp_server.py"), SMTP_SERVER).expect("script");
        let maildir = dir.join("maildir");
        let port = free_port();
        let mut cmd = std::process::Command::new(python);
        cmd.arg(dir.join("smtp_server.py"))
            .arg(port.to_string())
            .arg(&maildir)
            .arg(dir.join("smtp.crt"))
            .arg(dir.join("smtp.key"))
            .args(["incidentd", "m4il-s3cret"]);
        let proc = Proc::spawn("aiosmtpd", cmd, dir);
        wait_for(
            "aiosmtpd ready",
            &[&proc],
            Duration::from_secs(20),
            || async {
                if proc.log_text().contains("ready") {
                    Ok(())
                } else {
                    Err("not ready yet".to_string())
                }
            },
        )
        .await;
        Smtp {
            port,
            maildir,
            ca_pem: ca_cert.pem(),
            _proc: proc,
        }
    }

    /// The delivered messages, raw.
    fn messages(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) {
                for e in entries.flatten() {
                    out.push(std::fs::read(e.path()).expect("read mail"));
                }
            }
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_goes_through_a_real_smtp_server_with_starttls_and_auth() {
    let dir = tempfile::tempdir().expect("dir");
    let smtp = Smtp::start(dir.path()).await;
    std::fs::write(dir.path().join("ca.pem"), &smtp.ca_pem).expect("ca");
    std::fs::write(dir.path().join("smtp-password"), "m4il-s3cret\n").expect("password");
    let rules = rules_dir(&format!(
        "{PRIORITY}actions:\n  - name: mail-oncall\n    on: [opened]\n    email:\n      to: [\"On call <oncall@example.com>\"]\n      cc: [lead@example.com]\n"
    ));
    let data = tempfile::tempdir().expect("data");
    let (port, ca) = (smtp.port, dir.path().join("ca.pem"));
    let password = dir.path().join("smtp-password");
    let d = Daemon::start(
        data.path(),
        RulesSource::Dir(rules.path().to_path_buf()),
        move |c| {
            c.smtp = Some(
                serde_yaml_ng::from_str(&format!(
                    "{{host: localhost, port: {port}, tls: starttls, from: 'incidentd <incidentd@example.com>', username: incidentd, password_file: {}, ca_file: {}}}",
                    password.display(),
                    ca.display()
                ))
                .expect("smtp config"),
            );
        },
    )
    .await;
    let id = post_alert(&d, hostile_alert()).await;
    let l = wait_action(&d, &id, "mail-oncall", "opened").await;
    assert!(l.contains("success: SMTP 250"), "{l}");
    assert!(l.contains("oncall@example.com"), "{l}");
    assert!(!l.contains("m4il-s3cret"));

    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    let mail = mailparse::parse_mail(&mails[0]).expect("MIME");
    use mailparse::MailHeaderMap;
    let h = &mail.headers;
    assert_eq!(
        h.get_first_value("From").as_deref(),
        Some("incidentd <incidentd@example.com>")
    );
    assert_eq!(
        h.get_first_value("To").as_deref(),
        Some("\"On call\" <oncall@example.com>")
    );
    assert_eq!(h.get_first_value("Cc").as_deref(), Some("lead@example.com"));
    assert!(h.get_first_value("Bcc").is_none(), "no header injection");
    let subject = h.get_first_value("Subject").expect("subject");
    assert!(
        subject.starts_with(&format!("[P1] {id} Hostile on x\"")),
        "{subject}"
    );
    assert!(subject.ends_with("(opened)"), "{subject}");
    assert!(!subject.contains('\n'));
    assert_eq!(mail.ctype.mimetype, "multipart/alternative");
    let text = mail
        .subparts
        .iter()
        .find(|p| p.ctype.mimetype == "text/plain")
        .expect("text part");
    let html = mail
        .subparts
        .iter()
        .find(|p| p.ctype.mimetype == "text/html")
        .expect("html part");
    let text = text.get_body().expect("text");
    for want in [
        format!("{id}: Hostile on"),
        "Priority: P1 (impact high, urgency high)".to_string(),
        "Acknowledge by: 20".to_string(),
        "Resolve by: 20".to_string(),
        "- [firing] Hostile: x\"".to_string(),
        format!("Incident: {}/api/v1/incidents/{id}", d.base),
    ] {
        assert!(text.contains(&want), "{want:?} not in\n{text}");
    }
    let html = html.get_body().expect("html");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "{html}"
    );
    assert!(
        !html.contains("<script>"),
        "alert content is escaped in HTML: {html}"
    );
    // minijinja's HTML escaping also writes `/` as `&#x2f;`, which an
    // attribute decodes back.
    assert!(
        html.replace("&#x2f;", "/")
            .contains(&format!("<a href=\"{}/api/v1/incidents/{id}\">", d.base)),
        "{html}"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_failures_are_recorded_and_name_what_is_wrong() {
    let dir = tempfile::tempdir().expect("dir");
    let smtp = Smtp::start(dir.path()).await;
    std::fs::write(dir.path().join("ca.pem"), &smtp.ca_pem).expect("ca");
    std::env::set_var("INCIDENTD_TEST_SMTP_WRONG", "wrong-password");
    let rules = rules_dir(&format!(
        "{PRIORITY}actions:\n  - name: mail\n    on: [opened]\n    retries: 0\n    email:\n      to: [oncall@example.com]\n"
    ));
    let data = tempfile::tempdir().expect("data");
    let (port, ca) = (smtp.port, dir.path().join("ca.pem"));
    let d = Daemon::start(
        data.path(),
        RulesSource::Dir(rules.path().to_path_buf()),
        move |c| {
            c.smtp = Some(
                serde_yaml_ng::from_str(&format!(
                    "{{host: localhost, port: {port}, from: incidentd@example.com, username: incidentd, password_env: INCIDENTD_TEST_SMTP_WRONG, ca_file: {}}}",
                    ca.display()
                ))
                .expect("smtp config"),
            );
        },
    )
    .await;
    let id = post_alert(&d, hostile_alert()).await;
    let l = wait_action(&d, &id, "mail", "opened").await;
    assert!(l.contains("failure: SMTP localhost:"), "{l}");
    assert!(l.contains("535"), "the server's refusal: {l}");
    assert!(!l.contains("wrong-password"));
    assert!(smtp.messages().is_empty());
    let m = d.get("/metrics").await.1;
    assert!(
        m.contains("incidentd_actions_total{action=\"mail\",outcome=\"failure\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("incidentd_actions_by_kind_total{kind=\"email\",outcome=\"failure\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("incidentd_actions_by_kind_total{kind=\"pagerduty\",outcome=\"success\"} 0"),
        "every kind's series exists from the start: {m}"
    );
    d.stop().await;
}
