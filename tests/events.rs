//! `GET /api/v1/events` against the real binary: one event per incident
//! change, after the commit; `Last-Event-ID` resumes from memory and,
//! after a restart, from the stored timeline; an unknown id gets a
//! `reset`; a stream outlives the idle timeout; a client that never reads
//! does not hold up ingest; streams end at shutdown, well within
//! `shutdown_timeout`.
mod common;

use std::time::{Duration, Instant};

use common::serve::Serve;
use common::tools::http_client;
use serde_json::{json, Value};

/// One server-sent event.
#[derive(Debug, Clone, Default)]
struct Sse {
    event: Option<String>,
    id: Option<String>,
    data: String,
}

impl Sse {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{e}: {}", self.data))
    }
}

/// Reads events from a streaming answer.
struct Stream {
    resp: reqwest::Response,
    buf: String,
}

impl Stream {
    async fn open(base: &str, last: Option<&str>) -> Stream {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let mut r = http.get(format!("{base}/api/v1/events"));
        if let Some(id) = last {
            r = r.header("last-event-id", id);
        }
        let resp = r.send().await.expect("events");
        assert_eq!(resp.status().as_u16(), 200);
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        Stream {
            resp,
            buf: String::new(),
        }
    }

    /// The next event within `within`; `None` when the stream ended.
    async fn next(&mut self, within: Duration) -> Option<Sse> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut ev = Sse::default();
                let mut any = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("data:") {
                        if any {
                            ev.data.push('\n');
                        }
                        ev.data.push_str(v.trim_start());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("id:") {
                        ev.id = Some(v.trim_start().to_string());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        ev.event = Some(v.trim_start().to_string());
                    }
                }
                if any {
                    return Some(ev);
                }
                continue; // a keep-alive comment
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.resp.chunk()).await {
                Err(_) => panic!("no event within {within:?}; got so far: {:?}", self.buf),
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None)) | Ok(Err(_)) => return None,
            }
        }
    }

    /// Events until one whose kind is `kind`.
    async fn until(&mut self, kind: &str) -> Vec<Sse> {
        let mut seen = Vec::new();
        loop {
            let ev = self
                .next(Duration::from_secs(10))
                .await
                .expect("the stream is open");
            let done = ev.event.is_none() && ev.json()["kind"] == kind;
            seen.push(ev);
            if done {
                return seen;
            }
        }
    }
}

fn alert(name: &str, instance: &str) -> Value {
    json!([{"labels": {"alertname": name, "instance": instance, "severity": "critical"},
            "annotations": {"summary": format!("{name} on {instance}")}}])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_stream_and_resume_from_memory_and_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = "http:\n  idle_timeout: 1s\n";
    let d = Serve::configured("events", dir.path(), &data, config).await;
    let mut s = Stream::open(&d.base, None).await;
    let made = d.post("/api/v2/alerts", &alert("DbDown", "db-1")).await;
    let id = made["created"][0].as_str().expect("id").to_string();
    let created = s.until("created").await;
    let ev = created.last().expect("created");
    assert_eq!(ev.id.as_deref(), Some(format!("{id}:0").as_str()));
    let v = ev.json();
    assert_eq!(v["incident"]["id"], id.as_str());
    assert_eq!(v["incident"]["status"], "open");
    assert_eq!(v["by"], "incidentd");

    // Quiet for longer than the idle timeout: the stream stays open.
    tokio::time::sleep(Duration::from_secs(3)).await;
    d.post(
        &format!("/api/v1/incidents/{id}/ack"),
        &json!({"by": "alice", "note": "on it"}),
    )
    .await;
    let acked = s.until("acknowledged").await;
    let ack = acked.last().expect("ack").clone();
    assert_eq!(ack.json()["by"], "alice");
    assert_eq!(ack.json()["incident"]["status"], "acknowledged");
    drop(s);

    // Missed while away: a note and a new alert; resumed from memory.
    d.post(
        &format!("/api/v1/incidents/{id}/notes"),
        &json!({"by": "bob", "note": "failing over"}),
    )
    .await;
    d.post("/api/v2/alerts", &alert("DbDown", "db-2")).await;
    let last = ack.id.clone().expect("an id");
    let ack_seq: u32 = last
        .rsplit_once(':')
        .and_then(|(_, n)| n.parse().ok())
        .expect("INC-...:seq");
    let note_id = format!("{id}:{}", ack_seq + 1);
    let mut again = Stream::open(&d.base, Some(&last)).await;
    let missed = again.until("note").await;
    assert_eq!(
        missed.first().and_then(|e| e.id.clone()),
        Some(note_id.clone()),
        "{missed:?}"
    );
    assert_eq!(
        missed.last().expect("note").json()["message"],
        "failing over"
    );
    drop(again);

    // After a restart: from the stored timeline.
    d.stop().await;
    let d = Serve::configured("events2", dir.path(), &data, config).await;
    let mut after = Stream::open(&d.base, Some(&last)).await;
    let replayed = after.until("note").await;
    assert!(
        replayed.iter().all(|e| e.event.is_none()),
        "no reset: {replayed:?}"
    );
    assert_eq!(replayed.last().and_then(|e| e.id.clone()), Some(note_id));
    // A later change arrives live after the replay.
    d.post(
        &format!("/api/v1/incidents/{id}/resolve"),
        &json!({"by": "alice"}),
    )
    .await;
    let resolved = after.until("resolved").await;
    assert_eq!(
        resolved.last().expect("resolved").json()["incident"]["status"],
        "resolved"
    );

    // An id it cannot resume from: a reset, then the live events.
    let mut unknown = Stream::open(&d.base, Some("INC-20000101-0001:7")).await;
    let first = unknown
        .next(Duration::from_secs(10))
        .await
        .expect("an event");
    assert_eq!(first.event.as_deref(), Some("reset"), "{first:?}");
    let mut garbage = Stream::open(&d.base, Some("garbage")).await;
    let first = garbage
        .next(Duration::from_secs(10))
        .await
        .expect("an event");
    assert_eq!(first.event.as_deref(), Some("reset"), "{first:?}");
    drop(unknown);
    drop(garbage);

    // Shutdown ends open streams: the daemon exits long before its
    // shutdown_timeout (30s), and the stream sees its end.
    let started = Instant::now();
    d.proc.sigterm();
    let status = d.proc.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "{}", d.proc.log_tail());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?} with a stream open",
        started.elapsed()
    );
    assert!(after.next(Duration::from_secs(5)).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_does_not_hold_up_ingest() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Serve::configured("slow", dir.path(), &dir.path().join("data"), "").await;
    // Subscribes and never reads a byte.
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", d.port))
        .await
        .expect("connect");
    sock.write_all(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    let http = http_client();
    let started = Instant::now();
    // Thousands of events (each alert opens an incident) with long titles.
    for batch in 0..20 {
        let alerts: Vec<Value> = (0..250)
            .map(|i| {
                json!({"labels": {"alertname": format!("Load{batch}x{i}"), "instance": "x".repeat(200)},
                       "annotations": {"summary": "y".repeat(500)}})
            })
            .collect();
        let r = http
            .post(d.url("/api/v2/alerts"))
            .json(&alerts)
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "ingest took {:?}",
        started.elapsed()
    );
    // A reading client still gets the next event promptly.
    let mut s = Stream::open(&d.base, None).await;
    d.post("/api/v2/alerts", &alert("AfterLoad", "z")).await;
    let got = s.until("created").await;
    assert!(got.last().is_some_and(|e| e.json()["incident"]["title"]
        .as_str()
        .unwrap_or("")
        .contains("AfterLoad")));
    drop(sock);
    d.stop().await;
}
