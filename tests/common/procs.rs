//! Child processes for the end-to-end tests (tests/e2e.rs, tests/kafka.rs):
//! a guard that kills and reaps its process on drop and keeps its output in
//! a log file, bounded polling that fails with every process's log, and a
//! free loopback port.
#![allow(dead_code)] // each test file uses a different subset

use std::fmt::Write as _;
use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often [`wait_for`] checks again.
pub const POLL: Duration = Duration::from_millis(250);
/// How much of a process's log failure messages show.
const LOG_TAIL_BYTES: usize = 6000;

/// A child process that is killed and reaped when dropped.
pub struct Proc {
    pub name: String,
    child: Mutex<Child>,
    log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdin closed and stdout + stderr appended to `<dir>/<name>.log`.
    pub fn spawn(name: &str, mut cmd: Command, dir: &Path) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let out =
            File::create(&log).unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone log handle {}: {e}", log.display()));
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc {
            name: name.to_string(),
            child: Mutex::new(child),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.lock().id()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Child> {
        // A poisoned lock only means another assertion panicked; the child is still there.
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&self) -> Option<ExitStatus> {
        self.lock().try_wait().ok().flatten()
    }

    /// The last part of the process's output.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log.display()));
        let start = text.len().saturating_sub(LOG_TAIL_BYTES);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        let cut = if start > 0 {
            "…(earlier output cut)\n"
        } else {
            ""
        };
        format!(
            "----- {} output ({}) -----\n{cut}{}\n----- end of {} output -----",
            self.name,
            self.log.display(),
            &text[start..],
            self.name
        )
    }

    /// Sends SIGTERM (through `/bin/sh`, whose `kill` builtin exists even without procps).
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.pid().to_string();
        let status = Command::new("/bin/sh")
            .args(["-c", &format!("kill -{sig} \"$1\""), "sh", &pid])
            .status()
            .expect("cannot run sh to send a signal");
        assert!(status.success(), "kill -{sig} {pid} failed: {status}");
    }

    pub fn log_text(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Waits (bounded) for the process to exit on its own.
    pub async fn wait_exit(&self, within: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            if start.elapsed() > within {
                panic!(
                    "{} (pid {}) did not exit within {within:?}\n{}",
                    self.name,
                    self.pid(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

/// Polls `check` every [`POLL`] until it yields `Ok(value)` or `deadline`
/// passes. `Err(observation)` means "not yet" and is kept for the failure
/// message. Any process in `procs` exiting early fails at once.
pub async fn wait_for<T, F, Fut>(what: &str, procs: &[&Proc], deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        let last = match check().await {
            Ok(v) => return v,
            Err(observation) => observation,
        };
        for p in procs {
            if let Some(status) = p.exited() {
                panic!(
                    "{} exited ({status}) while waiting for {what}; last observation: {last}\n{}",
                    p.name,
                    logs(procs)
                );
            }
        }
        if start.elapsed() > deadline {
            panic!(
                "timed out after {deadline:?} waiting for {what}; last observation: {last}\n{}",
                logs(procs)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

pub fn logs(procs: &[&Proc]) -> String {
    let mut out = String::new();
    for p in procs {
        let _ = writeln!(out, "{}", p.log_tail());
    }
    out
}
