//! Reloading the rules: read them again from where they came from, and swap
//! them in atomically between two batches, or keep the old ones.

use std::sync::Arc;

use super::WeakHandle;
use crate::rules::{RulesError, Source};

/// Why a reload did not happen; the previous rules stay active.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Rules(#[from] RulesError),
    #[error("shutting down")]
    ShuttingDown,
}

/// Re-reads the rules and swaps them in, or keeps the old ones.
#[derive(Clone)]
pub struct Reloader {
    source: Source,
    handle: WeakHandle,
}

impl Reloader {
    pub fn new(source: Source, handle: WeakHandle) -> Reloader {
        Reloader { source, handle }
    }

    /// Where the rules are read from, for people.
    pub fn describe(&self) -> String {
        match &self.source {
            Source::Dir(d) => format!("the directory {}", d.display()),
            Source::Builtin => "the built-in default rules".to_string(),
        }
    }

    /// Returns a one-line summary of the new rules, or every error found.
    pub async fn reload(&self) -> Result<String, ReloadError> {
        let source = self.source.clone();
        let rules = tokio::task::spawn_blocking(move || source.load())
            .await
            .map_err(|_| ReloadError::ShuttingDown)?
            .inspect_err(|e| {
                tracing::warn!(errors = %e, "rule reload failed; keeping the previous rules");
            })?;
        let summary = rules.summary();
        let handle = self.handle.upgrade().ok_or(ReloadError::ShuttingDown)?;
        handle
            .set_rules(Arc::new(rules))
            .await
            .map_err(|_| ReloadError::ShuttingDown)?;
        tracing::info!(rules = %summary, "rules reloaded");
        Ok(summary)
    }
}
