//! Operating endpoints: readiness, reloads and online backup (health and
//! metrics are part of the shared ingest routes).
//!
//! A reload (SIGHUP or `POST /-/reload`) re-reads every part; each part
//! that fails keeps its previous state. Its result is exported as
//! `incidentd_config_last_reload_successful` (0 when any part failed) and
//! `incidentd_config_last_reload_success_timestamp_seconds`.
//!
//! `POST /-/backup` answers a consistent copy of the database as the body
//! (`application/octet-stream`, a redb file ready to put in place as
//! `incidentd.redb`). The copy is first written next to the database, in a
//! file unlinked as soon as it is open, so nothing is left behind if the
//! transfer or the daemon stops halfway.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tokio::io::AsyncReadExt as _;

use super::auth::Auth;
use super::tls::Tls;
use super::{error, AppState};
use crate::metrics::Metrics;
use crate::pipeline::Reloader;
use crate::store::maintenance::Backup;
use crate::store::Health;

/// 200 once the state is restored and while the store commits; 503 with
/// the reason otherwise (starting, shutting down, or the store failing).
pub async fn ready(State(s): State<AppState>) -> Response {
    if !s.ready.load(Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response();
    }
    match s.store.health() {
        Health::Healthy => "OK\n".into_response(),
        Health::Failing(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the store cannot commit: {reason}\n"),
        )
            .into_response(),
    }
}

pub async fn reload(State(s): State<AppState>) -> Response {
    let r = s.reload.all().await;
    let mut body = json!({"status": "success", "rules": r.rules, "tokens": r.tokens});
    if r.errors.is_empty() {
        return Json(body).into_response();
    }
    body["status"] = json!("error");
    body["error"] = json!(format!(
        "reload failed, the previous configuration of each failed part is still active:\n{}",
        r.errors.join("\n")
    ));
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

pub async fn backup(State(s): State<AppState>) -> Response {
    let store = s.store.clone();
    let made = tokio::task::spawn_blocking(move || -> Result<(std::fs::File, Backup), String> {
        let dir = store.path().parent().unwrap_or(std::path::Path::new("."));
        let tmp = dir.join(format!(
            ".backup-{}-{}.redb",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        let made = store.backup_to(&tmp).map_err(|e| e.to_string())?;
        let file = std::fs::File::open(&tmp).map_err(|e| format!("{}: {e}", tmp.display()));
        // Unlinked while open: the data stays readable until the answer
        // is sent, and a crash leaves no file.
        let _ = std::fs::remove_file(&tmp);
        Ok((file?, made))
    })
    .await;
    let (file, made) = match made {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("backup failed: {e}"),
            )
        }
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("backup failed: {e}"),
            )
        }
    };
    tracing::info!(rows = made.rows, bytes = made.bytes, "online backup taken");
    let file = tokio::fs::File::from_std(file);
    let chunks = futures_util::stream::try_unfold(file, |mut file| async move {
        let mut buf = vec![0u8; 256 << 10];
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok::<_, std::io::Error>(None);
        }
        buf.truncate(n);
        Ok(Some((axum::body::Bytes::from(buf), file)))
    });
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, made.bytes.to_string()),
            (
                header::HeaderName::from_static("x-incidentd-backup-rows"),
                made.rows.to_string(),
            ),
        ],
        axum::body::Body::from_stream(chunks),
    )
        .into_response()
}

/// What a reload re-reads: the rules, the tokens file and the TLS files.
#[derive(Clone)]
pub struct Reload {
    pub rules: Reloader,
    pub auth: Arc<Auth>,
    pub tls: Option<Arc<Tls>>,
    /// Where the reload status is exported.
    pub metrics: Arc<Metrics>,
}

/// What a reload did; each part that failed kept its previous state.
#[derive(Debug, Default)]
pub struct Reloaded {
    /// The new rules' summary.
    pub rules: Option<String>,
    /// How many identities the tokens file now holds.
    pub tokens: Option<usize>,
    pub errors: Vec<String>,
}

impl Reload {
    /// Re-reads every part (SIGHUP, `POST /-/reload`).
    pub async fn all(&self) -> Reloaded {
        let mut out = Reloaded::default();
        match self.auth.reload() {
            Ok(n) => out.tokens = n,
            Err(e) => out.errors.push(e.to_string()),
        }
        if let Some(tls) = &self.tls {
            if let Err(e) = tls.reload() {
                out.errors.push(e.to_string());
            }
        }
        match self.rules.reload().await {
            Ok(summary) => out.rules = Some(summary),
            Err(e) => out.errors.push(format!("rules:\n{e}")),
        }
        self.metrics
            .config_loaded(out.errors.is_empty(), chrono::Utc::now());
        out
    }
}
