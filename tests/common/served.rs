//! The real `incidentd serve` binary as a child process: started on a free
//! port with a config file, awaited until `/-/ready`, stopped with SIGTERM.
#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::procs::{wait_for, Proc};
use super::tools::free_port;

/// A running `incidentd serve`.
pub struct Served {
    pub proc: Proc,
    pub base: String,
    pub port: u16,
    pub data_dir: PathBuf,
}

/// The binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_incidentd")
}

/// A command for the binary with the environment the tests control.
pub fn command() -> Command {
    let mut cmd = Command::new(binary());
    cmd.env_remove("INCIDENTD_CONFIG")
        .env_remove("INCIDENTD_LISTEN")
        .env_remove("INCIDENTD_DATA_DIR")
        .env_remove("INCIDENTD_RULES")
        .env_remove("INCIDENTD_URL")
        .env_remove("INCIDENTD_TOKEN")
        .env("INCIDENTD_LOG", "info")
        .env("NO_COLOR", "1");
    cmd
}

impl Served {
    /// Starts `serve` on `data_dir` with `config` (YAML, may be empty) and
    /// the shipped rules; logs go to `<dir>/<name>.log`.
    pub async fn start(name: &str, dir: &Path, data_dir: &Path, config: &str) -> Served {
        let s = Served::spawn(name, dir, data_dir, config);
        s.wait_ready().await;
        s
    }

    /// Starts `serve` without waiting for it.
    pub fn spawn(name: &str, dir: &Path, data_dir: &Path, config: &str) -> Served {
        let port = free_port();
        let config_file = dir.join(format!("{name}.yml"));
        std::fs::write(&config_file, config).expect("write config");
        let mut cmd = command();
        cmd.arg("serve")
            .arg("--config")
            .arg(&config_file)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--rules")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/rules"))
            .current_dir(dir);
        Served {
            proc: Proc::spawn(name, cmd, dir),
            base: format!("http://127.0.0.1:{port}"),
            port,
            data_dir: data_dir.to_path_buf(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn wait_ready(&self) {
        let c = reqwest::Client::new();
        let url = self.url("/-/ready");
        wait_for(
            "incidentd /-/ready",
            &[&self.proc],
            Duration::from_secs(60),
            || {
                let (c, url) = (c.clone(), url.clone());
                async move {
                    match c.get(&url).send().await {
                        Ok(r) if r.status().is_success() => Ok(()),
                        Ok(r) => Err(format!("HTTP {}", r.status())),
                        Err(e) => Err(e.to_string()),
                    }
                }
            },
        )
        .await;
    }

    /// One sample of `/metrics`: the value of the line starting with `series`.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = reqwest::get(self.url("/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// SIGTERM, then waits for the exit.
    pub async fn stop(self) {
        self.proc.sigterm();
        let status = self.proc.wait_exit(Duration::from_secs(60)).await;
        assert!(
            status.success(),
            "incidentd exited with {status}\n{}",
            self.proc.log_tail()
        );
    }
}
