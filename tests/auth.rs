//! Safe to expose: tokens with roles on every endpoint, the caller's name
//! in the audit trail, no cross-site writes, TLS with client certificates
//! and rotation, secure by default. A real server in-process on an
//! ephemeral port (TLS included) and the real binary for startup.
mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{v2_alert, Daemon};
use incidentd::config::TlsConfig;
use incidentd::http::auth::{digest_hex, Access, Body, Role, ROUTES};
use serde_json::{json, Value};

/// One secret per role, and the tokens file naming them.
const SECRETS: [(&str, Role, &str); 4] = [
    (
        "alertmanager-prod",
        Role::Ingest,
        "s-ingest-0123456789abcdef",
    ),
    ("grafana", Role::Viewer, "s-viewer-0123456789abcdef"),
    (
        "oncall-alice",
        Role::Operator,
        "s-operator-0123456789abcdef",
    ),
    ("ops-admin", Role::Admin, "s-admin-0123456789abcdef"),
];

fn secret(role: Role) -> &'static str {
    SECRETS
        .iter()
        .find(|(_, r, _)| *r == role)
        .map(|(_, _, s)| *s)
        .expect("a secret per role")
}

fn tokens_yaml(extra: &str) -> String {
    let mut y = String::from("tokens:\n");
    for (name, role, secret) in SECRETS {
        y.push_str(&format!(
            "  - name: {name}\n    role: {role}\n    sha256: {}\n",
            digest_hex(secret)
        ));
    }
    y.push_str(extra);
    y
}

async fn start(
    dir: &Path,
    tokens: &str,
    tweak: impl FnOnce(&mut incidentd::config::Config),
) -> Daemon {
    let file = dir.join("tokens.yaml");
    std::fs::write(&file, tokens).expect("tokens file");
    Daemon::start(&dir.join("data"), common::shipped_rules(), |c| {
        c.auth.tokens_file = Some(file);
        tweak(c);
    })
    .await
}

/// A request as a given caller: `None` sends no credentials.
async fn call(
    d: &Daemon,
    method: &str,
    path: &str,
    who: Option<&str>,
    body: Option<Value>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut r = d.http.request(method, format!("{}{path}", d.base));
    if let Some(secret) = who {
        r = r.bearer_auth(secret);
    }
    if let Some(b) = body {
        r = r
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = r.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    if path == "/api/v1/events" && status == 200 {
        // The event stream does not end; its head is the answer.
        return (status, Value::Null, headers);
    }
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        headers,
    )
}

/// A board form post as a given caller.
async fn call_form(
    d: &Daemon,
    path: &str,
    who: Option<&str>,
    form: &str,
) -> (u16, Value, reqwest::header::HeaderMap) {
    // The form's own answer: a 303 is not followed.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut r = http
        .post(format!("{}{path}", d.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string());
    if let Some(secret) = who {
        r = r.bearer_auth(secret);
    }
    let resp = r.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    (status, Value::String(text), headers)
}

/// A concrete request for a route of the table.
fn request_for(method: &str, route: &str, incident: &str) -> (String, Option<Value>) {
    let path = route.replace("{id}", incident).replace("{action}", "notes");
    let path = if route == "/api/v1/silences/{id}" || route == "/silences/{id}/expire" {
        path.replace(incident, "SIL-none")
    } else {
        path
    };
    let body = match (method, route) {
        ("POST", "/api/v2/alerts") => Some(json!([v2_alert("Matrix", &[])])),
        ("POST", "/api/v1/webhook/alertmanager") => Some(json!({"version": "4", "alerts": []})),
        ("POST", "/api/v1/alerts") => Some(json!([])),
        ("POST", "/v2/enqueue") => {
            Some(json!({"routing_key": "r", "event_action": "acknowledge", "dedup_key": "k"}))
        }
        ("POST", "/api/v1/incidents/{id}/{action}") => Some(json!({"note": "matrix"})),
        ("POST", "/api/v1/rules/explain") => Some(json!({"labels": {"alertname": "Matrix"}})),
        ("POST", "/api/v1/silences") => Some(
            json!({"matchers": ["alertname=\"Nothing\""], "duration": "1h", "comment": "matrix", "createdBy": "t"}),
        ),
        _ => None,
    };
    (path, body)
}

#[tokio::test]
async fn every_endpoint_against_no_token_a_bad_token_and_each_role() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = start(dir.path(), &tokens_yaml(""), |_| {}).await;
    let (status, body, _) = call(
        &d,
        "POST",
        "/api/v2/alerts",
        Some(secret(Role::Ingest)),
        Some(json!([v2_alert("Seed", &[])])),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let incident = body["created"][0].as_str().expect("created").to_string();

    let callers: Vec<(&str, Option<&str>, Option<Role>)> = vec![
        ("no token", None, None),
        ("a bad token", Some("not-a-token"), None),
        ("ingest", Some(secret(Role::Ingest)), Some(Role::Ingest)),
        ("viewer", Some(secret(Role::Viewer)), Some(Role::Viewer)),
        (
            "operator",
            Some(secret(Role::Operator)),
            Some(Role::Operator),
        ),
        ("admin", Some(secret(Role::Admin)), Some(Role::Admin)),
    ];
    for (method, route, access, kind) in ROUTES {
        for (who, token, role) in &callers {
            let (path, body) = request_for(method, route, &incident);
            let (status, answer, headers) = if *kind == Body::Form {
                // The board's forms: a form body (with a token in the
                // header, no CSRF token is needed).
                let form = match *route {
                    "/login" => format!("token={}", token.unwrap_or("")),
                    _ => "note=matrix&do=preview&matchers=alertname%3D%22Matrix%22".to_string(),
                };
                call_form(&d, &path, *token, &form).await
            } else {
                call(&d, method, &path, *token, body).await
            };
            let what = format!("{method} {route} as {who}: {status} {answer}");
            let board = incidentd::http::auth::is_board(route);
            match (access, role) {
                (Access::Open, _) if *route == "/login" && *method == "POST" => {
                    // Logging in is open; a token that is not known is refused.
                    let want = if role.is_some() { 303 } else { 401 };
                    assert_eq!(status, want, "{what}");
                }
                (Access::Role(_), None) if board => {
                    // The board answers with its login page.
                    assert_eq!(status, 401, "{what}");
                    assert!(
                        answer
                            .as_str()
                            .is_some_and(|a| a.contains(r#"name="token""#)),
                        "{what}: the login form"
                    );
                    assert!(
                        headers.get("www-authenticate").is_some_and(
                            |h| h.to_str().unwrap_or("") == r#"Bearer realm="incidentd""#
                        ),
                        "{what}: WWW-Authenticate without Basic (no browser password dialog)"
                    );
                }
                (Access::Open, _) => {
                    assert_ne!(status, 401, "{what}");
                    assert_ne!(status, 403, "{what}");
                }
                (Access::Role(_), None) => {
                    assert_eq!(status, 401, "{what}");
                    assert!(
                        headers
                            .get("www-authenticate")
                            .is_some_and(|h| h.to_str().unwrap_or("").contains("Bearer")),
                        "{what}: WWW-Authenticate"
                    );
                    // Missing and unknown tokens get the very same answer.
                    assert_eq!(
                        answer["error"],
                        "authentication required: send an API token as `Authorization: Bearer <token>` (or as the basic-auth password)",
                        "{what}"
                    );
                }
                (Access::Role(needed), Some(have)) if have < needed => {
                    assert_eq!(status, 403, "{what}");
                }
                (Access::Role(_), Some(_)) => {
                    assert!(status != 401 && status != 403, "{what}");
                    assert!(status < 500, "{what}");
                }
            }
        }
    }
    d.stop().await;
}

#[tokio::test]
async fn basic_auth_carries_the_token_as_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = start(dir.path(), &tokens_yaml(""), |_| {}).await;
    let r = d
        .http
        .get(format!("{}/api/v1/incidents", d.base))
        .basic_auth("anyone", Some(secret(Role::Viewer)))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 200);
    let r = d
        .http
        .get(format!("{}/api/v1/incidents", d.base))
        .basic_auth("anyone", Some("wrong"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 401);
    d.stop().await;
}

#[tokio::test]
async fn the_audit_trail_names_the_token_and_who_it_acted_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = start(dir.path(), &tokens_yaml(""), |_| {}).await;
    let (_, body, _) = call(
        &d,
        "POST",
        "/api/v2/alerts",
        Some(secret(Role::Ingest)),
        Some(json!([v2_alert("Audit", &[("severity", "critical")])])),
    )
    .await;
    let id = body["created"][0].as_str().expect("created").to_string();
    let op = secret(Role::Operator);
    let (s, acked, _) = call(
        &d,
        "POST",
        &format!("/api/v1/incidents/{id}/ack"),
        Some(op),
        Some(json!({"by": "bob", "note": "on it"})),
    )
    .await;
    assert_eq!(s, 200, "{acked}");
    assert_eq!(acked["acknowledged_by"], "oncall-alice");
    let (s, _, _) = call(
        &d,
        "POST",
        &format!("/api/v1/incidents/{id}/resolve"),
        Some(op),
        Some(json!({"by": "oncall-alice", "workaround": "restart"})),
    )
    .await;
    assert_eq!(s, 200);
    let (_, full, _) = call(
        &d,
        "GET",
        &format!("/api/v1/incidents/{id}"),
        Some(op),
        None,
    )
    .await;
    assert_eq!(full["resolved_by"], "oncall-alice");
    let people: Vec<(String, String)> = full["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter(|e| e["by"] != "incidentd")
        .map(|e| {
            (
                e["by"].as_str().unwrap_or("").to_string(),
                e["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        people,
        vec![
            (
                "oncall-alice".to_string(),
                "acknowledged: on it (on behalf of bob)".to_string()
            ),
            (
                "oncall-alice".to_string(),
                "resolved; workaround: restart".to_string()
            ),
        ],
        "the same name as the token adds no \"on behalf of\""
    );
    let (s, created, _) = call(
        &d,
        "POST",
        "/api/v1/silences",
        Some(op),
        Some(json!({"matchers": ["service=\"db\""], "duration": "1h", "comment": "upgrade", "createdBy": "carol"})),
    )
    .await;
    assert_eq!(s, 200, "{created}");
    assert_eq!(created["silence"]["created_by"], "oncall-alice");
    assert_eq!(created["silence"]["on_behalf_of"], "carol");
    d.stop().await;
}

#[tokio::test]
async fn cross_site_and_non_json_writes_are_refused_with_or_without_tokens() {
    for with_tokens in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = if with_tokens {
            start(dir.path(), &tokens_yaml(""), |_| {}).await
        } else {
            Daemon::start(&dir.path().join("data"), common::shipped_rules(), |_| {}).await
        };
        let auth = |r: reqwest::RequestBuilder| {
            if with_tokens {
                r.bearer_auth(secret(Role::Admin))
            } else {
                r
            }
        };
        let silence = r#"{"matchers":["alertname=~\".+\""],"duration":"8760h","comment":"x","createdBy":"evil"}"#;
        let attempts: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
            (
                "the reported attack: text/plain from another origin",
                d.http
                    .post(format!("{}/api/v1/silences", d.base))
                    .header("content-type", "text/plain")
                    .header("origin", "http://evil.example")
                    .body(silence),
                403,
            ),
            (
                "JSON from another origin",
                d.http
                    .post(format!("{}/api/v1/silences", d.base))
                    .header("content-type", "application/json")
                    .header("origin", "http://evil.example")
                    .body(silence),
                403,
            ),
            (
                "Sec-Fetch-Site: cross-site",
                d.http
                    .post(format!("{}/api/v1/silences", d.base))
                    .header("content-type", "application/json")
                    .header("sec-fetch-site", "cross-site")
                    .body(silence),
                403,
            ),
            (
                "text/plain without Origin",
                d.http
                    .post(format!("{}/api/v1/silences", d.base))
                    .header("content-type", "text/plain")
                    .body(silence),
                415,
            ),
            (
                "an HTML form",
                d.http
                    .post(format!("{}/api/v1/silences", d.base))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("matchers=alertname%3D~%22.%2B%22&duration=8760h&comment=x"),
                415,
            ),
            (
                "an HTML form against an ingest endpoint",
                d.http
                    .post(format!("{}/api/v2/alerts", d.base))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(r#"[{"labels":{"alertname":"Fake"}}]"#),
                415,
            ),
            (
                "a cross-site ingest",
                d.http
                    .post(format!("{}/api/v2/alerts", d.base))
                    .header("content-type", "application/json")
                    .header("origin", "https://evil.example")
                    .body(r#"[{"labels":{"alertname":"Fake"}}]"#),
                403,
            ),
        ];
        for (what, req, want) in attempts {
            let r = auth(req).send().await.expect("request");
            assert_eq!(r.status().as_u16(), want, "{what} (tokens: {with_tokens})");
            assert!(
                r.headers().get("access-control-allow-origin").is_none(),
                "no CORS headers"
            );
        }
        // Nothing of it was stored; a same-origin JSON request works.
        let list = auth(d.http.get(format!("{}/api/v1/silences", d.base)))
            .send()
            .await
            .expect("request");
        assert_eq!(list.json::<Value>().await.expect("json"), json!([]));
        let list = auth(d.http.get(format!("{}/api/v1/incidents", d.base)))
            .send()
            .await
            .expect("request");
        assert_eq!(list.json::<Value>().await.expect("json"), json!([]));
        let host = d.base.trim_start_matches("http://").to_string();
        let ok = auth(
            d.http
                .post(format!("{}/api/v1/silences", d.base))
                .header("content-type", "application/json")
                .header("origin", format!("http://{host}"))
                .body(r#"{"matchers":["service=\"db\""],"duration":"1h","comment":"x","createdBy":"me"}"#),
        )
        .send()
        .await
        .expect("request");
        assert_eq!(ok.status().as_u16(), 200, "same origin");
        let metrics = d.get("/metrics").await.1;
        for (reason, n) in [("cross_site", 4), ("content_type", 3)] {
            assert!(
                metrics.contains(&format!(
                    "incidentd_http_requests_denied_total{{reason=\"{reason}\"}} {n}"
                )),
                "{reason}: {metrics}"
            );
        }
        d.stop().await;
    }
}

#[tokio::test]
async fn refused_requests_leave_the_store_unchanged_and_are_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = start(dir.path(), &tokens_yaml(""), |c| {
        c.auth.protect_metrics = true
    })
    .await;
    let viewer = secret(Role::Viewer);
    for who in [None, Some("bad")] {
        let (s, _, _) = call(
            &d,
            "POST",
            "/api/v2/alerts",
            who,
            Some(json!([v2_alert("Refused", &[])])),
        )
        .await;
        assert_eq!(s, 401);
    }
    // Roles are cumulative (a viewer may ingest), so a silence is what an
    // ingest or viewer token may not create.
    for who in [None, Some("bad"), Some(secret(Role::Ingest)), Some(viewer)] {
        let (s, _, _) = call(
            &d,
            "POST",
            "/api/v1/silences",
            who,
            Some(json!({"matchers": ["a=\"b\""], "duration": "1h", "comment": "x", "createdBy": "y"})),
        )
        .await;
        assert!(s == 401 || s == 403, "{s}");
    }
    // protect_metrics: /metrics needs a viewer token too.
    assert_eq!(d.get("/metrics").await.0, 401);
    let (s, metrics, _) = call(&d, "GET", "/metrics", Some(viewer), None).await;
    assert_eq!(s, 200);
    let metrics = metrics.as_str().expect("text").to_string();
    for (reason, n) in [
        ("no_credentials", 3),
        ("bad_credentials", 2),
        ("forbidden", 2),
    ] {
        assert!(
            metrics.contains(&format!(
                "incidentd_http_requests_denied_total{{reason=\"{reason}\"}} {n}"
            )),
            "{reason}: {metrics}"
        );
    }
    let (_, list, _) = call(&d, "GET", "/api/v1/incidents", Some(viewer), None).await;
    assert_eq!(list, json!([]));
    let (_, list, _) = call(&d, "GET", "/api/v1/silences", Some(viewer), None).await;
    assert_eq!(list, json!([]));
    d.stop().await;
}

#[tokio::test]
async fn the_tokens_file_is_reread_on_reload_and_a_broken_one_keeps_the_old_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = start(dir.path(), &tokens_yaml(""), |_| {}).await;
    let admin = secret(Role::Admin);
    let newcomer = "s-newcomer-0123456789abcdef";
    assert_eq!(
        call(&d, "GET", "/api/v1/incidents", Some(newcomer), None)
            .await
            .0,
        401
    );
    std::fs::write(
        dir.path().join("tokens.yaml"),
        tokens_yaml(&format!(
            "  - name: newcomer\n    role: viewer\n    sha256: {}\n",
            digest_hex(newcomer)
        )),
    )
    .expect("rewrite");
    let (s, body, _) = call(&d, "POST", "/-/reload", Some(admin), None).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["tokens"], 5);
    assert_eq!(
        call(&d, "GET", "/api/v1/incidents", Some(newcomer), None)
            .await
            .0,
        200
    );
    std::fs::write(dir.path().join("tokens.yaml"), "tokens: [oops").expect("rewrite");
    let (s, body, _) = call(&d, "POST", "/-/reload", Some(admin), None).await;
    assert_eq!(s, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap_or("").contains("tokens.yaml"),
        "{body}"
    );
    assert_eq!(
        call(&d, "GET", "/api/v1/incidents", Some(newcomer), None)
            .await
            .0,
        200,
        "the previous tokens stay"
    );
    d.stop().await;
}

/// The daemon binary with `args`, until it exits or `wait` passes.
fn run_binary(args: &[&str], wait: Duration) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_incidentd"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start incidentd");
    let until = std::time::Instant::now() + wait;
    let code = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status.code();
        }
        if std::time::Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    (code, err)
}

#[test]
fn without_tokens_a_non_loopback_address_is_refused_unless_insecure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8");
    let (code, err) = run_binary(
        &["serve", "--listen", "0.0.0.0:0", "--data-dir", data],
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("refusing to listen on 0.0.0.0:"), "{err}");
    assert!(err.contains("without API tokens"), "{err}");
    assert!(err.contains("incidentd token new"), "says how: {err}");
    let (code, err) = run_binary(
        &[
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--data-dir",
            data,
            "--insecure-no-auth",
        ],
        Duration::from_secs(3),
    );
    assert_eq!(code, None, "it serves: {err}");
    assert!(
        err.contains("serving without API tokens on a non-loopback address"),
        "{err}"
    );
}

#[test]
fn token_new_prints_a_secret_and_the_entry_that_matches_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_incidentd"))
        .args(["token", "new", "--name", "grafana", "--role", "viewer"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let secret = text
        .lines()
        .find(|l| l.starts_with("inc_"))
        .expect("a secret line");
    assert!(secret.len() >= 40, "at least 128 bits: {secret}");
    let entry = text.split("under `tokens:`:\n").nth(1).expect("the entry");
    let tokens =
        incidentd::http::auth::Tokens::parse(&format!("tokens:\n{entry}")).expect("parses");
    let id = tokens.check(secret).expect("the secret matches its entry");
    assert_eq!((id.name.as_str(), id.role), ("grafana", Role::Viewer));
    let bad = Command::new(env!("CARGO_BIN_EXE_incidentd"))
        .args(["token", "new", "--name", "x", "--role", "root"])
        .output()
        .expect("run");
    assert!(!bad.status.success());
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
    client_pem: String,
}

fn pki(ca_name: &str) -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    };
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let key = KeyPair::generate().expect("key");
    let server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("params")
        .signed_by(&key, &ca_cert, &ca_key)
        .expect("server cert");
    let client_key = KeyPair::generate().expect("key");
    let mut client = CertificateParams::new(Vec::<String>::new()).expect("params");
    client
        .distinguished_name
        .push(DnType::CommonName, "prometheus-scraper");
    client
        .distinguished_name
        .push(DnType::OrganizationName, "ops");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client
        .signed_by(&client_key, &ca_cert, &ca_key)
        .expect("client cert");
    Pki {
        ca_pem: ca_cert.pem(),
        cert_pem: server.pem(),
        key_pem: key.serialize_pem(),
        client_pem: format!("{}{}", client_cert.pem(), client_key.serialize_pem()),
    }
}

fn tls_client(ca_pem: &str, identity: Option<&str>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA"));
    if let Some(pem) = identity {
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"));
    }
    b.build().expect("client")
}

#[tokio::test]
async fn tls_with_client_certificates_and_a_certificate_rotation_under_a_connected_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = pki("first CA");
    let (cert, key, ca) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("ca.pem"),
    );
    std::fs::write(&cert, &first.cert_pem).expect("write");
    std::fs::write(&key, &first.key_pem).expect("write");
    std::fs::write(&ca, &first.ca_pem).expect("write");
    let tokens = tokens_yaml("certificates:\n  - subject: CN=prometheus-scraper, O=ops\n    name: prometheus-scraper\n    role: viewer\n");
    let d = start(dir.path(), &tokens, |c| {
        c.tls = Some(TlsConfig {
            cert_file: cert.clone(),
            key_file: key.clone(),
            client_ca_file: Some(ca.clone()),
        });
    })
    .await;
    let base = d.base.replace("http://", "https://");
    let client = tls_client(&first.ca_pem, None);
    let r = client
        .get(format!("{base}/api/v1/incidents"))
        .bearer_auth(secret(Role::Viewer))
        .send()
        .await
        .expect("https with a token");
    assert_eq!(r.status().as_u16(), 200);
    let r = client
        .get(format!("{base}/api/v1/incidents"))
        .send()
        .await
        .expect("https");
    assert_eq!(r.status().as_u16(), 401, "TLS alone is no identity");
    let with_cert = tls_client(&first.ca_pem, Some(&first.client_pem));
    let r = with_cert
        .get(format!("{base}/api/v1/incidents"))
        .send()
        .await
        .expect("https with a client certificate");
    assert_eq!(
        r.status().as_u16(),
        200,
        "the certificate stands in for a token"
    );
    let r = with_cert
        .post(format!("{base}/api/v1/silences"))
        .json(&json!({"matchers": ["a=\"b\""], "duration": "1h", "comment": "x"}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 403, "with the mapped role only");

    // Rotate to a certificate of another CA while `client` holds a
    // keep-alive connection: that connection keeps working, new ones get
    // the new certificate.
    let second = pki("second CA");
    std::fs::write(&cert, &second.cert_pem).expect("write");
    std::fs::write(&key, &second.key_pem).expect("write");
    std::fs::write(&ca, &second.ca_pem).expect("write");
    let r = client
        .post(format!("{base}/-/reload"))
        .bearer_auth(secret(Role::Admin))
        .send()
        .await
        .expect("reload over the old connection");
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    let r = client
        .get(format!("{base}/api/v1/incidents"))
        .bearer_auth(secret(Role::Viewer))
        .send()
        .await
        .expect("the connected client goes on");
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        tls_client(&first.ca_pem, None)
            .get(format!("{base}/-/healthy"))
            .send()
            .await
            .is_err(),
        "a new connection is served the new certificate"
    );
    let r = tls_client(&second.ca_pem, None)
        .get(format!("{base}/-/healthy"))
        .send()
        .await
        .expect("the new CA verifies it");
    assert_eq!(r.status().as_u16(), 200);
    d.stop().await;
}
