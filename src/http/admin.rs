//! Operating endpoints: readiness and rule reloads (health and metrics
//! are part of the shared ingest routes).
//!
//! A reload (SIGHUP or `POST /-/reload`) re-reads every part; each part
//! that fails keeps its previous state. Its result is exported as
//! `incidentd_config_last_reload_successful` (0 when any part failed) and
//! `incidentd_config_last_reload_success_timestamp_seconds`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::auth::Auth;
use super::tls::Tls;
use super::AppState;
use crate::metrics::Metrics;
use crate::pipeline::Reloader;

pub async fn ready(State(s): State<AppState>) -> Response {
    if s.ready.load(Ordering::Acquire) {
        "OK\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
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
