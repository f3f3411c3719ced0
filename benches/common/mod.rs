//! Helpers the benchmark binaries share: a child-process guard, a free
//! loopback port, the `incidentd serve` command line, memory figures from
//! /proc, and where `tansu` is.

#![allow(dead_code)] // each benchmark uses a different subset

#[path = "../../tests/common/tools.rs"]
mod tools;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Stops and reaps the child on drop: SIGTERM first, so a daemon shuts
/// down cleanly (a killed incidentd leaves a redb file that the next start
/// must repair, which skews a restart measured on a `--keep` dir), then
/// SIGKILL after 10 s.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let term = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        if term.is_ok_and(|s| s.success()) {
            let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while std::time::Instant::now() < until {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `incidentd serve` on `127.0.0.1:PORT` over `data`, logging warnings
/// only, stdout discarded; callers add what their run needs.
pub fn serve(port: u16, data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_incidentd"));
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data)
        .env("INCIDENTD_LOG", "warn")
        .stdout(Stdio::null());
    cmd
}

pub use tools::free_port;

/// A `/proc/PID/status` field in kB (`VmHWM` peak, `VmRSS` now), as MB.
fn status_mb(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

pub fn peak_rss_mb(pid: u32) -> f64 {
    status_mb(pid, "VmHWM:")
}

pub fn rss_mb(pid: u32) -> f64 {
    status_mb(pid, "VmRSS:")
}

/// `tansu` on PATH or in cargo's bin directory (the tests' locator).
pub fn tansu_binary() -> PathBuf {
    tools::tansu()
}
