//! `exec` actions: a program run with a fixed argument list, never through
//! a shell; incident data reaches it only as environment variables
//! (`INCIDENT_*`) and JSON on stdin. Output is captured up to a limit, and a
//! program past its timeout is killed.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::model::{AttemptOutcome, Job};
use crate::rules::actions::ExecDef;

/// Environment for `exec`: `INCIDENT_*` plus `INCIDENT_LABEL_<NAME>`.
pub fn exec_env(payload: &serde_json::Value) -> BTreeMap<String, String> {
    let i = &payload["incident"];
    let mut env = BTreeMap::new();
    let s = |v: &serde_json::Value| {
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string())
    };
    for (var, field) in [
        ("INCIDENT_ID", "id"),
        ("INCIDENT_TITLE", "title"),
        ("INCIDENT_STATUS", "status"),
        ("INCIDENT_PRIORITY", "priority"),
        ("INCIDENT_CATEGORY", "category"),
        ("INCIDENT_RULE", "rule"),
        ("INCIDENT_GROUP_KEY", "group_key"),
        ("INCIDENT_ESCALATION_LEVEL", "escalation_level"),
    ] {
        env.insert(var.to_string(), s(&i[field]));
    }
    env.insert("INCIDENT_TRIGGER".into(), s(&payload["trigger"]));
    env.insert("INCIDENT_URL".into(), s(&payload["links"]["incident"]));
    if let Some(labels) = i["labels"].as_object() {
        for (k, v) in labels {
            let name: String = k
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            env.insert(format!("INCIDENT_LABEL_{name}"), s(v));
        }
    }
    env
}

/// Runs the program with the incident in its environment and on stdin.
pub async fn run(e: &ExecDef, job: &Job) -> (AttemptOutcome, String) {
    let mut cmd = tokio::process::Command::new(&e.command);
    cmd.args(&e.args)
        .envs(exec_env(&job.payload))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(err) => {
            return (
                AttemptOutcome::Failure,
                format!("cannot start {}: {err}", e.command.display()),
            )
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let input = job.payload.to_string();
        tokio::spawn(async move {
            // A program that does not read stdin closes the pipe; that is fine.
            let _ = stdin.write_all(input.as_bytes()).await;
        });
    }
    let out = child
        .stdout
        .take()
        .map(|s| tokio::spawn(capture(s, e.max_output)));
    let err = child
        .stderr
        .take()
        .map(|s| tokio::spawn(capture(s, e.max_output)));
    let status = tokio::time::timeout(e.timeout, child.wait()).await;
    let (outcome, head) = match status {
        Ok(Ok(st)) if st.success() => (AttemptOutcome::Success, "exit 0".to_string()),
        Ok(Ok(st)) => (
            AttemptOutcome::Failure,
            match st.code() {
                Some(c) => format!("exit {c}"),
                None => "killed by a signal".to_string(),
            },
        ),
        Ok(Err(err)) => (AttemptOutcome::Failure, format!("wait failed: {err}")),
        Err(_) => {
            let _ = child.kill().await;
            (
                AttemptOutcome::Timeout,
                format!(
                    "timed out after {}; killed",
                    humantime::format_duration(e.timeout)
                ),
            )
        }
    };
    let collect = |h: Option<tokio::task::JoinHandle<String>>| async move {
        match h {
            Some(h) => tokio::time::timeout(Duration::from_secs(2), h)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default(),
            None => String::new(),
        }
    };
    let stdout = collect(out).await;
    let stderr = collect(err).await;
    let mut msg = head;
    if !stdout.trim().is_empty() {
        msg.push_str(&format!("; stdout: {}", stdout.trim_end()));
    }
    if !stderr.trim().is_empty() {
        msg.push_str(&format!("; stderr: {}", stderr.trim_end()));
    }
    (outcome, msg)
}

/// Reads a stream to its end, keeping at most `max` bytes.
async fn capture(mut r: impl AsyncRead + Unpin, max: usize) -> String {
    let mut kept = Vec::new();
    let mut total = 0usize;
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                total += n;
                let room = max.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    let mut s = String::from_utf8_lossy(&kept).into_owned();
    if total > kept.len() {
        s.push_str(&format!("… ({} more bytes not kept)", total - kept.len()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_carries_incident_and_sanitized_labels() {
        let p = serde_json::json!({"trigger": "opened", "links": {"incident": "http://x/api/v1/incidents/INC-1"},
            "incident": {"id": "INC-20261123-0001", "priority": "P1", "labels": {"alertname": "A", "k8s.io/app": "$(rm -rf /)"}}});
        let env = exec_env(&p);
        assert_eq!(env["INCIDENT_ID"], "INC-20261123-0001");
        assert_eq!(env["INCIDENT_TRIGGER"], "opened");
        assert_eq!(env["INCIDENT_LABEL_K8S_IO_APP"], "$(rm -rf /)");
    }

    #[tokio::test]
    async fn capture_keeps_a_bounded_prefix() {
        let data = vec![b'x'; 10_000];
        let s = capture(&data[..], 100).await;
        assert!(s.starts_with(&"x".repeat(100)));
        assert!(s.ends_with("(9900 more bytes not kept)"));
    }
}
