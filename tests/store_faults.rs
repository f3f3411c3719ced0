//! The real binary's store under faults: a disk that fills up and frees
//! again (a tmpfs), damaged database files, `db check`, retention, and an
//! online backup taken under write load and then restored.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::procs::wait_for;
use common::serve::{command, Serve};
use serde_json::{json, Value};

/// A tmpfs of `mib` MiB mounted at `dir`, unmounted on drop.
struct Tmpfs {
    dir: std::path::PathBuf,
}

impl Tmpfs {
    /// Mounts, or says why not. Only root (or a user with CAP_SYS_ADMIN) can.
    fn mount(dir: &Path, mib: u32) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Tmpfs {
                dir: dir.to_path_buf(),
            })
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Fills the filesystem of `dir` until ENOSPC; answers the filler file.
fn fill(dir: &Path) -> std::path::PathBuf {
    use std::io::Write as _;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("filler");
    let chunk = vec![0u8; 64 << 10];
    loop {
        if let Err(e) = f.write_all(&chunk).and_then(|()| f.flush()) {
            assert_eq!(e.raw_os_error(), Some(28), "filling stops at ENOSPC: {e}");
            // Whatever fits of a smaller write, so no page is left.
            for size in [4096usize, 512, 1] {
                while f.write_all(&chunk[..size]).and_then(|()| f.flush()).is_ok() {}
            }
            return path;
        }
    }
}

/// `n` alerts with a 2 KB annotation each, all new (`tag` makes them unique).
fn big_alerts(tag: &str, n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| {
                json!({"labels": {"alertname": format!("Disk{tag}"), "instance": format!("{tag}-{i}")},
                       "annotations": {"summary": "x".repeat(2000)}})
            })
            .collect(),
    )
}

async fn open_incidents(d: &Serve) -> (usize, f64) {
    let c = reqwest::Client::new();
    let mut listed = 0;
    for status in ["open", "acknowledged"] {
        let v: Value = c
            .get(d.url(&format!("/api/v1/incidents?status={status}&limit=10000")))
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        listed += v.as_array().expect("array").len();
    }
    let mut gauge = 0.0;
    for p in ["P1", "P2", "P3", "P4", "P5"] {
        gauge += d
            .metric(&format!("incidentd_incidents_open{{priority=\"{p}\"}}"))
            .await
            .expect("gauge");
    }
    (listed, gauge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_truthfully_and_heals_when_space_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("mnt");
    let _tmpfs = match Tmpfs::mount(&mnt, 24) {
        Ok(t) => t,
        Err(why) if std::env::var_os("INCIDENTD_TEST_NO_MOUNT").is_some() => {
            // scripts/test sets this only after saying so loudly.
            eprintln!("SKIPPED: cannot mount a tmpfs to fill ({why}); INCIDENTD_TEST_NO_MOUNT is set");
            return;
        }
        Err(why) => panic!(
            "cannot mount a tmpfs for the disk-full test ({why}); run as root, or set INCIDENTD_TEST_NO_MOUNT=1 to skip it knowingly"
        ),
    };
    let d = Serve::configured("diskfull", dir.path(), &mnt.join("data"), "").await;
    let http = reqwest::Client::new();
    let post = |body: Value| http.post(d.url("/api/v2/alerts")).json(&body).send();
    let r = post(big_alerts("before", 50)).await.expect("answer");
    assert_eq!(r.status(), 200);

    let filler = fill(&mnt);
    // New alerts until a commit fails: 503, nothing stored.
    let mut refused = None;
    for round in 0..200 {
        let r = post(big_alerts(&format!("full{round}"), 50))
            .await
            .expect("answer");
        if r.status() == 503 {
            refused = Some(r.text().await.expect("body"));
            break;
        }
        assert_eq!(r.status(), 200);
    }
    let refused = refused.expect("a full disk refuses a write");
    assert!(refused.contains("No space left"), "{refused}");

    // While full: writes 503, reads still answer, ready says why, the
    // store is unhealthy, and the gauge counts only what is stored.
    let r = post(big_alerts("during", 50)).await.expect("answer");
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let ready = http.get(d.url("/-/ready")).send().await.expect("ready");
    assert_eq!(ready.status(), 503);
    let why = ready.text().await.expect("text");
    assert!(
        why.contains("store cannot commit") && why.contains("No space left"),
        "{why}"
    );
    let healthy = http.get(d.url("/-/healthy")).send().await.expect("healthy");
    assert_eq!(
        healthy.status(),
        200,
        "the process is alive: liveness stays 200"
    );
    assert_eq!(d.metric("incidentd_store_healthy").await, Some(0.0));
    let (listed, gauge) = open_incidents(&d).await;
    assert_eq!(
        listed as f64, gauge,
        "incidentd_incidents_open counts only committed incidents"
    );

    // Space returns: ingest recovers within 30 s, without a restart.
    std::fs::remove_file(&filler).expect("free space");
    let started = Instant::now();
    wait_for(
        "ingest to recover",
        &[&d.proc],
        Duration::from_secs(30),
        || {
            let r = post(big_alerts("after", 5));
            async move {
                match r.await {
                    Ok(r) if r.status() == 200 => Ok(()),
                    Ok(r) => Err(format!("HTTP {}", r.status())),
                    Err(e) => Err(e.to_string()),
                }
            }
        },
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(30));
    let ready = http.get(d.url("/-/ready")).send().await.expect("ready");
    assert_eq!(ready.status(), 200);
    assert_eq!(d.metric("incidentd_store_healthy").await, Some(1.0));
    let (listed, gauge) = open_incidents(&d).await;
    assert_eq!(listed as f64, gauge, "after the heal too");
    assert!(
        d.proc.log_text().contains("the store commits again"),
        "the heal is logged"
    );
    d.stop().await;
}

/// Runs the binary to completion (bounded); answers exit code and output.
fn run(args: &[&str], dir: &Path) -> (Option<i32>, String) {
    let mut cmd = command();
    cmd.args(args).current_dir(dir);
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run incidentd");
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() > until {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_database_files_are_refused_with_a_clear_error_and_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A real database with incidents in it.
    let good = dir.path().join("good");
    let d = Serve::configured("writer", dir.path(), &good, "").await;
    let r = reqwest::Client::new()
        .post(d.url("/api/v2/alerts"))
        .json(&big_alerts("x", 40))
        .send()
        .await
        .expect("seed");
    assert_eq!(r.status(), 200);
    d.stop().await;
    let file = good.join("incidentd.redb");
    let bytes = std::fs::read(&file).expect("read db");
    let (code, out) = run(
        &["db", "check", "--data-dir", good.to_str().expect("utf-8")],
        dir.path(),
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("alerts: 40 rows") && out.contains("OK:"),
        "{out}"
    );

    // (case, file contents, what the error says)
    let mut garbage = bytes.clone();
    let mut seed = 1u64;
    let mut off = 8192;
    while off < garbage.len() {
        for b in &mut garbage[off..(off + 4096).min(bytes.len())] {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (seed >> 33) as u8;
        }
        off += 3 * 4096;
    }
    let mut no_magic = bytes.clone();
    no_magic[..4096].fill(0);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "is empty (0 bytes)"),
        ("truncated", bytes[..bytes.len() / 2].to_vec(), "truncated"),
        ("garbage pages", garbage, "damaged"),
        ("header zeroed", no_magic, "Not a redb database"),
        (
            "text file",
            b"hello, not a database\n".to_vec(),
            "incidentd.redb",
        ),
    ];
    for (case, contents, says) in cases {
        let data = dir.path().join(case.replace(' ', "-"));
        std::fs::create_dir_all(&data).expect("mkdir");
        std::fs::write(data.join("incidentd.redb"), &contents).expect("write");
        let port = common::tools::free_port().to_string();
        let (code, out) = run(
            &[
                "serve",
                "--data-dir",
                data.to_str().expect("utf-8"),
                "--listen",
                &format!("127.0.0.1:{port}"),
            ],
            dir.path(),
        );
        assert_eq!(code, Some(1), "{case}: serve exits 1\n{out}");
        assert!(out.contains(says), "{case}: the error says {says:?}\n{out}");
        assert_eq!(
            std::fs::read(data.join("incidentd.redb"))
                .expect("still there")
                .len(),
            contents.len(),
            "{case}: the file is left as it was"
        );
        let (code, out) = run(
            &["db", "check", "--data-dir", data.to_str().expect("utf-8")],
            dir.path(),
        );
        assert_eq!(code, Some(1), "{case}: db check exits 1\n{out}");
    }
    // A missing file is a new database.
    let fresh = dir.path().join("fresh");
    let d = Serve::configured("fresh", dir.path(), &fresh, "").await;
    assert!(fresh.join("incidentd.redb").exists());
    d.stop().await;
    // db check on a directory without a database says so.
    let (code, out) = run(
        &[
            "db",
            "check",
            "--data-dir",
            dir.path().join("nowhere").to_str().expect("utf-8"),
        ],
        dir.path(),
    );
    assert_eq!(code, Some(1));
    assert!(out.contains("no database at"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_closed_incidents_finished_jobs_and_expired_silences() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Serve::configured(
        "retention",
        dir.path(),
        &dir.path().join("data"),
        "incidents:\n  close_after: 1s\nretention:\n  closed_incidents: 2s\n  finished_jobs: 2s\n  expired_silences: 1s\n  interval: 1s\n  batch: 2\n",
    )
    .await;
    let http = reqwest::Client::new();
    let alerts: Vec<Value> = (0..5)
        .map(|i| json!({"labels": {"alertname": format!("Gone{i}"), "instance": format!("h{i}")}}))
        .collect();
    let r = http
        .post(d.url("/api/v2/alerts"))
        .json(&alerts)
        .send()
        .await
        .expect("fire");
    assert_eq!(r.status(), 200);
    let keep = json!([{"labels": {"alertname": "Stays", "instance": "k"}}]);
    let r = http
        .post(d.url("/api/v2/alerts"))
        .json(&keep)
        .send()
        .await
        .expect("fire");
    assert_eq!(r.status(), 200);
    let resolved: Vec<Value> = (0..5)
        .map(|i| json!({"labels": {"alertname": format!("Gone{i}"), "instance": format!("h{i}")}, "endsAt": "2020-01-01T00:00:00Z"}))
        .collect();
    let r = http
        .post(d.url("/api/v2/alerts"))
        .json(&resolved)
        .send()
        .await
        .expect("resolve");
    assert_eq!(r.status(), 200);
    let s =
        json!({"matchers": ["x=\"y\""], "comment": "short", "createdBy": "t", "duration": "1s"});
    let r = http
        .post(d.url("/api/v1/silences"))
        .json(&s)
        .send()
        .await
        .expect("silence");
    assert_eq!(r.status(), 200);

    // Closed after 1 s, deleted 2 s later, two per pass.
    wait_for(
        "retention to delete the closed incidents",
        &[&d.proc],
        Duration::from_secs(40),
        || {
            let c = http.clone();
            let url = d.url("/api/v1/incidents?limit=100");
            async move {
                let v: Value = c
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?
                    .json()
                    .await
                    .map_err(|e| e.to_string())?;
                let names: Vec<String> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|i| i["title"].to_string())
                    .collect();
                if names.len() == 1 {
                    Ok(())
                } else {
                    Err(format!("{} incidents left: {names:?}", names.len()))
                }
            }
        },
    )
    .await;
    let left: Value = http
        .get(d.url("/api/v1/incidents"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(left[0]["status"], "open", "the open incident stays: {left}");
    wait_for(
        "the expired silence to go",
        &[&d.proc],
        Duration::from_secs(20),
        || {
            let c = http.clone();
            let url = d.url("/api/v1/silences");
            async move {
                let v: Value = c
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?
                    .json()
                    .await
                    .map_err(|e| e.to_string())?;
                if v.as_array().is_some_and(|a| a.is_empty()) {
                    Ok(())
                } else {
                    Err(v.to_string())
                }
            }
        },
    )
    .await;
    assert_eq!(
        d.metric("incidentd_retention_deleted_total{kind=\"incidents\"}")
            .await,
        Some(5.0)
    );
    assert_eq!(
        d.metric("incidentd_retention_deleted_total{kind=\"silences\"}")
            .await,
        Some(1.0)
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_backup_under_write_load_restores_to_a_working_daemon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens.yml");
    // Admin and ingest tokens (secrets are their SHA-256 in the file).
    let (admin, admin_entry) =
        incidentd::http::auth::new_token("ops", incidentd::http::auth::Role::Admin).expect("token");
    let (ingest, ingest_entry) =
        incidentd::http::auth::new_token("am", incidentd::http::auth::Role::Ingest).expect("token");
    std::fs::write(&tokens, format!("tokens:\n{admin_entry}{ingest_entry}")).expect("tokens");
    let d = Serve::configured(
        "primary",
        dir.path(),
        &dir.path().join("data"),
        &format!("auth:\n  tokens_file: {}\n", tokens.display()),
    )
    .await;
    let http = reqwest::Client::new();
    // Writers keep going during the backup.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (http, url, ingest, stop, acked) = (
            http.clone(),
            d.url("/api/v2/alerts"),
            ingest.clone(),
            stop.clone(),
            acked.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut round = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let alerts: Vec<Value> = (0..200)
                    .map(|i| json!({"labels": {"alertname": "Load", "instance": format!("w{w}-{}", (round * 200 + i) % 3000)}}))
                    .collect();
                round += 1;
                let r = http.post(&url).bearer_auth(&ingest).json(&alerts).send().await.expect("write");
                assert_eq!(r.status(), 200);
                acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before: Value = http
        .get(d.url("/api/v1/incidents?limit=10000"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let copy = dir.path().join("backup.redb");
    // Without the admin role: refused.
    let (code, out) = run(
        &[
            "backup",
            "--to",
            copy.to_str().expect("utf-8"),
            "--url",
            &d.base,
            "--token",
            &ingest,
        ],
        dir.path(),
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("403"), "{out}");
    let (code, out) = run(
        &[
            "backup",
            "--to",
            copy.to_str().expect("utf-8"),
            "--url",
            &d.base,
            "--token",
            &admin,
        ],
        dir.path(),
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("wrote"), "{out}");
    let during = acked.load(std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }
    assert!(
        during > 0 && acked.load(std::sync::atomic::Ordering::Relaxed) > during,
        "writes went on around the backup"
    );
    // Nothing left behind next to the database (and the key that signs
    // acknowledgement links), and the target exists once.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("data"))
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .filter(|n| n != "ack-link.key")
        .collect();
    assert_eq!(
        leftovers,
        vec![std::ffi::OsString::from("incidentd.redb")],
        "{leftovers:?}"
    );
    let (code, out) = run(
        &[
            "backup",
            "--to",
            copy.to_str().expect("utf-8"),
            "--url",
            &d.base,
            "--token",
            &admin,
        ],
        dir.path(),
    );
    assert_eq!(
        code,
        Some(1),
        "an existing target is not overwritten: {out}"
    );
    d.stop().await;

    // Restore: copy into place in a new data dir, check, start.
    let restored = dir.path().join("restored");
    std::fs::create_dir_all(&restored).expect("mkdir");
    std::fs::copy(&copy, restored.join("incidentd.redb")).expect("copy into place");
    let (code, out) = run(
        &[
            "db",
            "check",
            "--data-dir",
            restored.to_str().expect("utf-8"),
        ],
        dir.path(),
    );
    assert_eq!(code, Some(0), "{out}");
    let r = Serve::configured("restored", dir.path(), &restored, "").await;
    let after: Value = http
        .get(r.url("/api/v1/incidents?limit=10000"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let ids = |v: &Value| -> std::collections::BTreeSet<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|i| i["id"].as_str().expect("id").to_string())
            .collect()
    };
    assert!(
        ids(&before).is_subset(&ids(&after)),
        "every incident listed before the backup is in the restored copy"
    );
    // The restored daemon takes writes.
    let w = http
        .post(r.url("/api/v2/alerts"))
        .json(&json!([{"labels": {"alertname": "AfterRestore", "instance": "x"}}]))
        .send()
        .await
        .expect("write");
    assert_eq!(w.status(), 200);
    r.stop().await;

    // Offline backup from the stopped primary's data dir.
    let offline = dir.path().join("offline.redb");
    let (code, out) = run(
        &[
            "backup",
            "--to",
            offline.to_str().expect("utf-8"),
            "--data-dir",
            dir.path().join("data").to_str().expect("utf-8"),
        ],
        dir.path(),
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(offline.exists());
}

/// Issue 20, target 4: a start after `kill -9` has redb repair the file,
/// says so in the log with the seconds it took, and keeps every
/// acknowledged alert; a start after a clean stop does not repair.
#[tokio::test]
async fn a_start_after_kill_9_repairs_the_file_says_so_and_keeps_what_was_acknowledged() {
    const REPAIRED: &str = "the database was not closed cleanly";
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let d = Serve::configured("crash-1", dir.path(), &data, "").await;
    let alerts: Vec<Value> = (0..50)
        .map(|i| json!({"labels": {"alertname": "CrashKept", "instance": format!("h{i}")}}))
        .collect();
    d.post("/api/v2/alerts", &json!(alerts)).await;
    assert!(
        !d.proc.log_text().contains(REPAIRED),
        "a new file needs no repair"
    );
    d.proc.signal("KILL");
    d.proc.wait_exit(Duration::from_secs(10)).await;

    let d = Serve::configured("crash-2", dir.path(), &data, "").await;
    let log = d.proc.log_text();
    let line = log
        .lines()
        .find(|l| l.contains(REPAIRED))
        .unwrap_or_else(|| panic!("the start after kill -9 logs the repair:\n{log}"));
    assert!(line.contains("seconds="), "with its duration: {line}");
    let incidents = d
        .get("/api/v1/incidents?match=alertname%3D%22CrashKept%22")
        .await;
    let alert_count: u64 = incidents
        .as_array()
        .expect("list")
        .iter()
        .map(|i| i["alert_count"].as_u64().expect("alert_count"))
        .sum();
    assert_eq!(
        alert_count, 50,
        "every acknowledged alert is back: {incidents}"
    );
    d.stop().await;

    let d = Serve::configured("crash-3", dir.path(), &data, "").await;
    assert!(
        !d.proc.log_text().contains(REPAIRED),
        "after a clean stop the file needs no repair:\n{}",
        d.proc.log_tail()
    );
    d.stop().await;
}
