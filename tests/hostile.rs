//! The real binary against hostile clients: heads and bodies trickled in,
//! idle keep-alive connections, more connections than allowed, a slow
//! client during shutdown, overload by large bodies, and edge values sent
//! to every endpoint. Every test talks to `incidentd serve` over TCP.

mod common;

use std::time::{Duration, Instant};

use common::serve::Serve;
use incidentd::http::auth::{Body, ROUTES};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SHORT_TIMEOUTS: &str = "http:
  header_timeout: 1s
  body_timeout: 2s
  idle_timeout: 2s
  max_connections: 20
";

/// How a raw connection ended.
#[derive(Debug)]
struct Ended {
    /// What the server sent before closing.
    answer: String,
    /// Whether it closed within the bound.
    closed: bool,
}

/// Writes `first`, then one byte of `trickle` every 200 ms (cycling), until
/// the server closes the connection or `bound` passes.
async fn trickle(port: u16, first: &[u8], trickle: &[u8], bound: Duration) -> Ended {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    wr.write_all(first).await.expect("write the start");
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    });
    let started = Instant::now();
    let mut i = 0;
    while !reader.is_finished() && started.elapsed() < bound {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if !trickle.is_empty()
            && wr
                .write_all(&trickle[i % trickle.len()..][..1])
                .await
                .is_err()
        {
            break;
        }
        i += 1;
    }
    // Reset or EOF: give the reader a moment to see it.
    let got = tokio::time::timeout(Duration::from_secs(2), reader).await;
    match got {
        Ok(Ok(bytes)) => Ended {
            answer: String::from_utf8_lossy(&bytes).into_owned(),
            closed: true,
        },
        _ => Ended {
            answer: String::new(),
            closed: false,
        },
    }
}

/// A connection that made one request and now sits idle.
async fn idle_connection(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.expect("answer");
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    s
}

/// Whether the server closed `s` within `bound`.
async fn closed_within(s: &mut TcpStream, bound: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(bound, s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

async fn healthy_within(d: &Serve, bound: Duration) -> Result<(), String> {
    let c = reqwest::Client::builder()
        .timeout(bound)
        .build()
        .expect("client");
    match c.get(d.url("/-/healthy")).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("HTTP {}", r.status())),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_cut_off_while_health_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Serve::configured("slow", dir.path(), &dir.path().join("data"), SHORT_TIMEOUTS).await;

    // Ten heads trickled in byte by byte, at once: each is cut off near
    // the 1 s header timeout, and health answers meanwhile.
    let heads: Vec<_> = (0..10)
        .map(|_| {
            tokio::spawn(trickle(
                d.port,
                b"GET /-/healthy HTTP/1.1\r\n",
                b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
                Duration::from_secs(15),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    healthy_within(&d, Duration::from_secs(5))
        .await
        .expect("health answers while heads trickle in");
    for h in heads {
        let ended = h.await.expect("trickle task");
        assert!(
            ended.closed,
            "a trickled head was still open after 15 s (header_timeout 1 s)"
        );
        assert!(
            !ended.answer.contains("200 OK"),
            "a head never finished, so nothing was served: {}",
            ended.answer
        );
    }

    // A body trickled in: 408 with the setting named, then closed.
    let ended = trickle(
        d.port,
        b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n[",
        b" ",
        Duration::from_secs(15),
    )
    .await;
    assert!(ended.closed, "a trickled body was still open after 15 s");
    assert!(
        ended.answer.starts_with("HTTP/1.1 408") && ended.answer.contains("http.body_timeout"),
        "a body past its timeout is answered 408 naming the setting: {}",
        ended.answer
    );

    // An idle keep-alive connection is closed after the idle timeout.
    let mut idle = idle_connection(d.port).await;
    assert!(
        closed_within(&mut idle, Duration::from_secs(15)).await,
        "an idle keep-alive connection stayed open 15 s (idle_timeout 2 s)"
    );

    // Every connection slot held by an idle client: the idle ones are
    // closed for a new client, long before their idle timeout.
    let d2 = Serve::configured(
        "full",
        dir.path(),
        &dir.path().join("data2"),
        "http:\n  idle_timeout: 300s\n  max_connections: 20\n",
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(idle_connection(d2.port).await);
    }
    healthy_within(&d2, Duration::from_secs(10))
        .await
        .expect("health answers with every slot held by idle connections");
    let mut closed = 0;
    for s in &mut held {
        if closed_within(s, Duration::from_millis(200)).await {
            closed += 1;
        }
    }
    assert!(
        closed > 0,
        "idle connections were closed to make room (idle_timeout is 300 s)"
    );
    d2.stop().await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_does_not_hold_up_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Serve::configured(
        "shutdown",
        dir.path(),
        &dir.path().join("data"),
        "shutdown_timeout: 2s\nhttp:\n  body_timeout: 300s\n  idle_timeout: 300s\n",
    )
    .await;
    let port = d.port;
    let slow = tokio::spawn(async move {
        trickle(
            port,
            b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n[",
            b" ",
            Duration::from_secs(60),
        )
        .await
    });
    let _idle = idle_connection(d.port).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    d.proc.sigterm();
    let status = d.proc.wait_exit(Duration::from_secs(30)).await;
    let took = started.elapsed();
    assert!(
        status.success(),
        "clean exit: {status}\n{}",
        d.proc.log_tail()
    );
    // The bound is shutdown_timeout (2 s) plus the writer's drain; a slow
    // client used to keep the process up for 40 s and more.
    assert!(
        took < Duration::from_secs(15),
        "shutdown took {took:?} with shutdown_timeout 2s"
    );
    assert!(slow.await.expect("slow task").closed);
}

/// A body of exactly `len` bytes: one alert, padded with whitespace.
fn padded_body(name: &str, len: usize) -> Vec<u8> {
    let mut b = json!([{"labels": {"alertname": name, "instance": "pad"}}])
        .to_string()
        .into_bytes();
    assert!(b.len() <= len);
    b.resize(len, b' ');
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_counts_bytes_before_reading_and_alerts_after_parsing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Serve::configured(
        "admission",
        dir.path(),
        &dir.path().join("data"),
        "pipeline:\n  max_queued_alerts: 3000\n  max_queued_bytes: 200000\nhttp:\n  body_timeout: 30s\n",
    )
    .await;
    let http = reqwest::Client::new();

    // A client declares 150,000 bytes and sends half: its reservation holds.
    let big = padded_body("Big", 150_000);
    let mut holder = TcpStream::connect(("127.0.0.1", d.port))
        .await
        .expect("connect");
    holder
        .write_all(
            format!(
                "POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                big.len()
            )
            .as_bytes(),
        )
        .await
        .expect("head");
    holder.write_all(&big[..75_000]).await.expect("half");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A small request still fits beside it.
    let small = http
        .post(d.url("/api/v2/alerts"))
        .header("content-type", "application/json")
        .body(padded_body("Small", 200))
        .send()
        .await
        .expect("small");
    assert_eq!(small.status(), 200);
    // 60,000 more bytes do not: 503 at once, before the body is read.
    let refused = http
        .post(d.url("/api/v2/alerts"))
        .header("content-type", "application/json")
        .body(padded_body("Refused", 60_000))
        .send()
        .await
        .expect("refused");
    assert_eq!(refused.status(), 503);
    assert_eq!(
        refused
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let text = refused.text().await.expect("body");
    assert!(text.contains("retry"), "{text}");

    // The held request completes and is stored; then the bytes are free.
    holder.write_all(&big[75_000..]).await.expect("rest");
    let mut answer = vec![0u8; 2048];
    let n = holder.read(&mut answer).await.expect("answer");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let again = http
        .post(d.url("/api/v2/alerts"))
        .header("content-type", "application/json")
        .body(padded_body("Refused", 60_000))
        .send()
        .await
        .expect("again");
    assert_eq!(again.status(), 200);

    // Overload by large bodies: 24 clients keep 2,000-alert bodies coming
    // against a bound of 3,000 queued alerts. Some are refused at once
    // with Retry-After; a one-alert probe always gets an answer; and the
    // alerts counted as received are exactly those acknowledged.
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(4);
    let mut clients = Vec::new();
    for c in 0..24 {
        let (http, url) = (http.clone(), d.url("/api/v2/alerts"));
        let (acked, refused) = (acked.clone(), refused.clone());
        clients.push(tokio::spawn(async move {
            let mut round = 0;
            while Instant::now() < until {
                let alerts: Vec<Value> = (0..2000)
                    .map(|i| json!({"labels": {"alertname": "Flood", "instance": format!("c{c}-r{round}-{i}")}}))
                    .collect();
                round += 1;
                let r = http
                    .post(&url)
                    .json(&alerts)
                    .send()
                    .await
                    .expect("flood request");
                match r.status().as_u16() {
                    200 => {
                        let v: Value = r.json().await.expect("json");
                        acked.fetch_add(v["accepted"].as_u64().expect("accepted"), std::sync::atomic::Ordering::Relaxed);
                    }
                    503 => {
                        assert!(r.headers().contains_key("retry-after"));
                        refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    s => panic!("unexpected {s}: {}", r.text().await.unwrap_or_default()),
                }
            }
        }));
    }
    let mut probes = 0;
    while Instant::now() < until {
        let r = http
            .post(d.url("/api/v2/alerts"))
            .json(&json!([{"labels": {"alertname": "Probe", "instance": format!("p{probes}")}}]))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("the probe gets an answer");
        let status = r.status().as_u16();
        assert!(status == 200 || status == 503, "probe answered {status}");
        if status == 200 {
            acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        probes += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for c in clients {
        c.await.expect("client");
    }
    assert!(
        refused.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "24 x 2,000 alerts against a bound of 3,000 were refused at least once"
    );
    let received = d
        .metric("incidentd_alerts_received_total{source=\"alertmanager_api\"}")
        .await
        .expect("metric");
    // Before the flood: Small, Big and Refused (one alert each).
    let before = 3.0;
    assert_eq!(
        received - before,
        acked.load(std::sync::atomic::Ordering::Relaxed) as f64,
        "alerts counted as received are exactly the acknowledged ones"
    );
    let overloaded = d
        .metric(
            "incidentd_requests_rejected_total{reason=\"overloaded\",source=\"alertmanager_api\"}",
        )
        .await
        .expect("rejected metric");
    assert!(overloaded >= 1.0);
    d.stop().await;
}

/// A request with an edge value for each path parameter and body.
fn edge_requests(route: &str) -> Vec<(String, Option<String>)> {
    let ids = [
        "INC-99999999-99999999",
        "INC-00000000-0000",
        "INC-2026",
        "%00",
        "%F0%9F%92%A5",
        "..%2F..%2Fetc%2Fpasswd",
        &"9".repeat(300),
        "-1",
    ];
    let bodies = [
        None,
        Some(String::new()),
        Some("null".into()),
        Some("[]".into()),
        Some("{}".into()),
        Some("\"\\u0000\"".into()),
        Some(json!({"by": "x".repeat(100_000), "note": "\u{0}", "assignee": "\u{1F4A5}"}).to_string()),
        Some(json!({"matchers": ["alertname=="], "comment": "c", "createdBy": "x", "duration": "1000000y"}).to_string()),
        Some(json!({"matchers": ["a=\"b\""], "comment": "c", "createdBy": "x", "endsAt": "+262143-12-31T23:59:59Z"}).to_string()),
        Some(json!({"matchers": ["a=\"b\""], "comment": "c", "createdBy": "x", "startsAt": "9999-12-31T23:59:59Z", "duration": "1h"}).to_string()),
        Some(json!([{"labels": {"": "x"}}]).to_string()),
        Some(json!([{"labels": {"a\u{7}": "x"}}]).to_string()),
        Some(json!([{"labels": {"a": "x\u{0}y"}}]).to_string()),
        Some(json!([{"labels": {"a": "x"}, "startsAt": "-262143-01-01T00:00:00Z", "endsAt": "+262143-12-31T23:59:59Z"}]).to_string()),
        Some(json!({"routing_key": "k", "event_action": "trigger", "payload": {"summary": "s", "source": "s", "severity": "critical", "timestamp": "+262143-12-31T23:59:59Z"}}).to_string()),
        Some("[".repeat(100_000)),
        Some("{\"alerts\": 1e999}".into()),
    ];
    let mut out = Vec::new();
    let paths: Vec<String> = if route.contains('{') {
        ids.iter()
            .map(|id| route.replace("{id}", id).replace("{action}", "acknowledge"))
            .chain(["resolve", "nope", "%00"].iter().map(|a| {
                route
                    .replace("{id}", "INC-20261202-0001")
                    .replace("{action}", a)
            }))
            .collect()
    } else {
        vec![
            route.to_string(),
            format!("{route}?limit="),
            format!("{route}?limit=-1&status=%00&category=nope&priority=P9"),
        ]
    };
    for p in paths {
        for b in &bodies {
            out.push((p.clone(), b.clone()));
        }
    }
    out
}

/// Form bodies with edge values for the board's forms.
fn edge_forms() -> Vec<String> {
    vec![
        String::new(),
        "csrf=&note=%00".into(),
        "%%%%&&&==".into(),
        format!("note={}", "x".repeat(100_000)),
        "do=create&matchers=alertname%3D%3D&duration=1000000y&comment=c".into(),
        "do=create&matchers=a%3D%22b%22&duration=-1h".into(),
        "do=preview&matchers=%7B%7B%7B".into(),
        "token=%F0%9F%92%A5&next=%2F%2Fevil.example".into(),
        "assignee=%00&workaround=%E2%80%AE&root_cause=".into(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_takes_edge_values_without_a_5xx_or_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Serve::configured("edges", dir.path(), &dir.path().join("data"), "").await;
    // A fresh connection per request: a body sent to an endpoint that does
    // not read it closes its connection after the answer.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    // One incident to act on.
    let r = http
        .post(d.url("/api/v2/alerts"))
        .json(&json!([{"labels": {"alertname": "Edge", "instance": "a"}}]))
        .send()
        .await
        .expect("seed");
    assert_eq!(r.status(), 200);
    // A board session, so edge forms get past the CSRF check.
    let seeded = r.json::<Value>().await.expect("seed answer");
    let seeded = seeded["created"][0].as_str().expect("an incident");
    let page = http
        .get(d.url(&format!("/incidents/{seeded}")))
        .send()
        .await
        .expect("board");
    let cookie = page
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .to_string();
    let html = page.text().await.unwrap_or_default();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
        .to_string();
    let mut sent = 0;
    for (method, route, _, kind) in ROUTES {
        if *route == "/-/backup" {
            continue; // Answers the database file; covered in store_faults.rs.
        }
        for (path, body) in edge_requests(route) {
            let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
            let mut req = http.request(method.clone(), d.url(&path));
            if let Some(b) = body {
                req = req.header("content-type", "application/json").body(b);
            }
            let r = req.send().await.unwrap_or_else(|e| {
                panic!("{method} {path}: no answer ({e})\n{}", d.proc.log_tail())
            });
            let status = r.status().as_u16();
            // The event stream does not end: its status is the answer.
            let text = if *route == "/api/v1/events" {
                String::new()
            } else {
                r.text().await.unwrap_or_default()
            };
            assert!(
                status < 500,
                "{method} {path} answered {status}: {}",
                text.chars().take(300).collect::<String>()
            );
            sent += 1;
        }
        if *kind == Body::Form {
            // The board's forms, given forms with edge values.
            for (path, _) in edge_requests(route).into_iter().step_by(17) {
                for form in edge_forms() {
                    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
                    let r = http
                        .request(method.clone(), d.url(&path))
                        .header("content-type", "application/x-www-form-urlencoded")
                        .header("cookie", &cookie)
                        .body(format!("csrf={csrf}&{form}"))
                        .send()
                        .await
                        .unwrap_or_else(|e| {
                            panic!("{method} {path}: no answer ({e})\n{}", d.proc.log_tail())
                        });
                    let status = r.status().as_u16();
                    let text = r.text().await.unwrap_or_default();
                    assert!(
                        status < 500,
                        "{method} {path} form {form:?} answered {status}: {}",
                        text.chars().take(300).collect::<String>()
                    );
                    sent += 1;
                }
            }
        }
    }
    assert!(sent > 200, "sent {sent} requests");
    assert_eq!(
        d.metric("incidentd_http_handler_panics_total").await,
        Some(0.0),
        "no handler panicked\n{}",
        d.proc.log_tail()
    );
    assert!(d.proc.exited().is_none(), "still running");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_values_that_used_to_get_through_are_refused_with_400() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Serve::configured("validate", dir.path(), &dir.path().join("data"), "").await;
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        http.post(d.url(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let silence = |extra: Value| {
        let mut s =
            json!({"matchers": ["service=\"db\""], "comment": "upgrade", "createdBy": "alice"});
        for (k, v) in extra.as_object().expect("object") {
            s[k] = v.clone();
        }
        s
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/api/v1/silences",
            silence(json!({"duration": "1000000y"})),
            "years",
        ),
        (
            "/api/v1/silences",
            silence(json!({"duration": "11y"})),
            "10 years",
        ),
        (
            "/api/v1/silences",
            silence(json!({"endsAt": "2099-01-01T00:00:00Z"})),
            "10 years",
        ),
        (
            "/api/v1/silences",
            silence(json!({"startsAt": "2090-01-01T00:00:00Z", "duration": "1h"})),
            "10 years",
        ),
        (
            "/api/v1/silences",
            silence(json!({"duration": "1h", "matchers": ["alertname=="]})),
            "matchers[0]",
        ),
        (
            "/api/v1/silences",
            silence(json!({"duration": "1h", "matchers": ["alertname=~~x"]})),
            "matchers[0]",
        ),
        (
            "/api/v2/alerts",
            json!([{"labels": {"": "x"}}]),
            "empty name",
        ),
        (
            "/api/v2/alerts",
            json!([{"labels": {"alert\nname": "x"}}]),
            "control character",
        ),
        (
            "/api/v2/alerts",
            json!([{"labels": {"a": "x\u{0}y"}}]),
            "NUL",
        ),
        ("/api/v1/alerts", json!({"labels": {"a": "x\u{0}y"}}), "NUL"),
        (
            "/api/v1/webhook/alertmanager",
            json!({"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": {"a\u{1b}": "x"}}]}),
            "control character",
        ),
    ];
    for (path, body, says) in cases {
        let r = post(path, body.clone()).await.expect("answer");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        assert_eq!(status, 400, "{path} {body}: {text}");
        assert!(
            text.contains(says),
            "{path} {body}: {text} should say {says:?}"
        );
    }
    // A silence within ten years is fine; so are UTF-8 label names.
    let r = post("/api/v1/silences", silence(json!({"duration": "9y"})))
        .await
        .expect("answer");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let r = post(
        "/api/v2/alerts",
        json!([{"labels": {"alertname": "Utf8", "サービス": "決済"}}]),
    )
    .await
    .expect("answer");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    for q in [
        "?category=nope",
        "?limit=",
        "?status=",
        "?priority=",
        "?category=",
        "?limit=0",
        "?limit=x",
    ] {
        let r = http
            .get(d.url(&format!("/api/v1/incidents{q}")))
            .send()
            .await
            .expect("answer");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        assert_eq!(status, 400, "{q}: {text}");
    }
    let r = http
        .get(d.url("/api/v1/incidents?category=hardware&limit=5"))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    d.stop().await;
}
