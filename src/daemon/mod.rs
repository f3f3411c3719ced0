//! Daemon lifecycle, the library half of the wiring: config → open store →
//! load rules → restore state → spawn the writer, the action executor and
//! the Kafka source → serve HTTP → on shutdown stop intake, drain, exit.
//! (`main.rs` parses the command line and calls this; [`forward`] is the
//! `forward` command's daemon.)
//!
//! Input: a [`Config`], where rules come from, a bound listener and a
//! shutdown future. Output: runs until the future completes, then returns
//! after every accepted request has been answered and the writer has
//! committed and stopped (or the shutdown deadline passed). `/-/ready` is
//! true only between "state restored" and "shutdown began".

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::Utc;
use tokio::net::TcpListener;

use crate::actions;
use crate::config::{Config, HttpSettings};
use crate::engine::{Engine, Settings};
use crate::http::auth::Auth;
use crate::http::tls::Tls;
use crate::http::{self, AppState};
use crate::kafka::changelog::{Changelog, ChangelogWriter};
use crate::kafka::{self, KafkaSource};
use crate::metrics::Metrics;
use crate::pipeline::{self, Reloader, Writer};
use crate::rules::{self, RulesError};
use crate::store::{Store, StoreError};
use http::admin::Reload;

pub mod forward;

/// Startup failures.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("invalid rules:\n{0}")]
    Rules(#[from] RulesError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Kafka(#[from] kafka::KafkaError),
    #[error(transparent)]
    Tokens(#[from] http::auth::TokensError),
    #[error(transparent)]
    Tls(#[from] http::tls::TlsError),
    #[error(
        "refusing to listen on {0} without API tokens: anyone who can reach it could resolve \
         incidents and add silences. Create tokens with `incidentd token new --name NAME --role ROLE`, \
         list them in a file given to --auth-tokens (README: \"Running on a network\"), or accept \
         the risk with --insecure-no-auth"
    )]
    Unprotected(SocketAddr),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The key that signs acknowledgement links: `ack-link.key` in the data
/// directory, 32 random bytes (hex), made on the first start (mode 0600).
pub fn ack_key(data_dir: &std::path::Path) -> Result<crate::model::ack_link::AckKey, ServerError> {
    use crate::model::ack_link::{AckKey, ACK_KEY_LEN};
    let path = data_dir.join("ack-link.key");
    let parse = |text: &str| -> Option<AckKey> {
        let text = text.trim();
        if text.len() != ACK_KEY_LEN * 2 {
            return None;
        }
        let mut bytes = [0u8; ACK_KEY_LEN];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(AckKey::from_bytes(bytes))
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text).ok_or_else(|| {
            ServerError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{}: expected {} hex digits (delete it to make a new key; links sent with the old one stop working)",
                    path.display(),
                    ACK_KEY_LEN * 2
                ),
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; ACK_KEY_LEN];
            getrandom::fill(&mut bytes)
                .map_err(|e| std::io::Error::other(format!("no randomness for the ack-link key: {e}")))?;
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            std::fs::create_dir_all(data_dir)?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut f = options.open(&path).map_err(|e| {
                std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
            })?;
            std::io::Write::write_all(&mut f, format!("{hex}\n").as_bytes())?;
            f.sync_all()?;
            tracing::info!(path = %path.display(), "made the key that signs acknowledgement links");
            Ok(AckKey::from_bytes(bytes))
        }
        Err(e) => Err(ServerError::Io(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", path.display()),
        ))),
    }
}

/// The HTTP listener's protection: who may call it, and its TLS.
pub struct Security {
    pub auth: Arc<Auth>,
    pub tls: Option<Arc<Tls>>,
    /// Listening beyond loopback without tokens (`--insecure-no-auth`):
    /// warned about at start and every hour.
    pub insecure: bool,
}

impl Security {
    /// Tokens, TLS and the secure-by-default rule: without a tokens file
    /// only a loopback address is served, unless `auth.insecure_no_auth`.
    pub fn new(
        config: &Config,
        listen: SocketAddr,
        metrics: &Arc<Metrics>,
    ) -> Result<Security, ServerError> {
        let external = config
            .external_url
            .as_deref()
            .and_then(|u| u.split_once("://"))
            .map(|(_, rest)| rest.split('/').next().unwrap_or(rest).to_string());
        let (auth, insecure) = match &config.auth.tokens_file {
            Some(f) => (
                Auth::from_file(f, config.auth.protect_metrics, metrics.clone())?,
                false,
            ),
            None if listen.ip().is_loopback() => (Auth::off(metrics.clone()), false),
            None if config.auth.insecure_no_auth => (Auth::off(metrics.clone()), true),
            None => return Err(ServerError::Unprotected(listen)),
        };
        // The board's session cookie is `Secure` when browsers reach
        // incidentd over TLS: its own, or a proxy's (an https external_url).
        let secure = config.tls.is_some()
            || config
                .external_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"));
        let auth = Arc::new(
            auth.with_origins(external.into_iter().collect())
                .with_secure_cookies(secure),
        );
        let tls = match &config.tls {
            Some(t) => Some(Arc::new(Tls::load(t)?)),
            None => None,
        };
        if insecure {
            warn_insecure(listen);
        }
        Ok(Security {
            auth,
            tls,
            insecure,
        })
    }

    /// Warns every hour while `insecure` (until the runtime stops).
    fn keep_warning(&self, listen: SocketAddr) {
        if !self.insecure {
            return;
        }
        tokio::spawn(async move {
            let mut hourly = tokio::time::interval(std::time::Duration::from_secs(3600));
            hourly.tick().await;
            loop {
                hourly.tick().await;
                warn_insecure(listen);
            }
        });
    }
}

fn warn_insecure(listen: SocketAddr) {
    tracing::warn!(listen = %listen, "serving without API tokens on a non-loopback address (--insecure-no-auth): anyone who can reach it can change incidents and silences");
}

/// A daemon that has restored its state and is ready to serve.
pub struct Server {
    listener: TcpListener,
    state: AppState,
    writer: std::thread::JoinHandle<()>,
    config: Config,
    kafka: Option<KafkaSource>,
    security: Security,
}

impl Server {
    /// Opens the store, compiles the rules, restores state, starts the writer.
    pub async fn start(
        config: Config,
        rules: rules::Source,
        listener: TcpListener,
    ) -> Result<Server, ServerError> {
        config.validate()?;
        let metrics = Arc::new(Metrics::new());
        let security = Security::new(&config, listener.local_addr()?, &metrics)?;
        let opening = std::time::Instant::now();
        let store = Store::open_with_cache(&config.data_dir, config.pipeline.store_cache_mb)?;
        tracing::info!(
            db = %store.path().display(),
            seconds = opening.elapsed().as_secs_f64(),
            "store opened"
        );
        let ruleset = Arc::new(rules.load()?);
        tracing::info!(rules = %ruleset.summary(), "rules loaded");
        let ack_key = Arc::new(ack_key(&config.data_dir)?);
        // The start is the first successful configuration load.
        metrics.config_loaded(true, Utc::now());
        let now = Utc::now();
        let loading = std::time::Instant::now();
        let snap = {
            let store = store.clone();
            let window = config.incidents.metrics_window;
            tokio::task::spawn_blocking(move || store.load(now, window))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))??
        };
        tracing::info!(
            live_incidents = snap.live.len(),
            stored_incidents = snap.incidents_total,
            db = %store.path().display(),
            seconds = loading.elapsed().as_secs_f64(),
            "state restored"
        );
        let settings = Settings {
            close_after: config.incidents.close_after,
            id_slot: config.kafka.as_ref().and_then(|k| k.instance),
        };
        let mut snap = snap;
        let (changelog, changelog_writer) = match &config.kafka {
            Some(k) if k.changelog => {
                let log = Arc::new(Changelog::new(k, metrics.clone())?);
                let mut w = ChangelogWriter::new(log.clone(), k.changelog_interval, store.homes()?);
                let parked = w.park_all();
                if !parked.is_empty() {
                    tracing::info!(
                        incidents = parked.len(),
                        "incidents of Kafka partitions parked until their partition is assigned here"
                    );
                }
                snap.live.retain(|l| !parked.contains(&l.incident.id));
                store.park(parked);
                (
                    Some(log),
                    Some(Box::new(w) as Box<dyn pipeline::Replication>),
                )
            }
            _ => (None, None),
        };
        let indexing = std::time::Instant::now();
        let mut engine = Engine::restore(ruleset, settings.clone(), snap.live, snap.restored);
        tracing::info!(
            seconds = indexing.elapsed().as_secs_f64(),
            "live state indexed"
        );
        let external = config.external_url.clone().unwrap_or_else(|| {
            format!(
                "http://{}",
                listener
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default()
            )
        });
        engine.set_external_url(&external);
        let (rules_tx, rules_rx) = tokio::sync::watch::channel(engine.rules().clone());
        let (dispatcher, jobs_rx) = actions::channel(config.actions.queue_capacity);
        let events = pipeline::events::EventBus::new();
        let (handle, writer) = pipeline::spawn(Writer {
            dispatcher: Some(Box::new(dispatcher)),
            rules_tx: Some(rules_tx),
            engine,
            store: store.clone(),
            metrics: metrics.clone(),
            settings: config.pipeline.clone(),
            engine_settings: settings,
            metrics_window: config.incidents.metrics_window,
            replication: changelog_writer,
            retention: config.retention.clone(),
            events: Some(events.clone()),
        })?;
        actions::spawn_executor(
            actions::ExecutorSettings {
                workers: config.actions.workers,
                queue_capacity: config.actions.queue_capacity,
                allow_exec: config.actions.allow_exec,
                kafka: config.kafka.clone(),
                smtp: config.smtp.clone(),
                ack: Some(actions::AckLinks {
                    key: ack_key.clone(),
                    base_url: external.clone(),
                }),
            },
            jobs_rx,
            rules_rx.clone(),
            handle.downgrade(),
            metrics.clone(),
        );
        let limits = Arc::new(config.limits.clone());
        let kafka = match &config.kafka {
            Some(k) => Some(KafkaSource::new(
                k,
                limits.clone(),
                handle.clone(),
                metrics.clone(),
                store.kafka_positions()?,
                changelog,
            )?),
            None => None,
        };
        let state = AppState {
            reload: Reload {
                rules: Reloader::new(rules, handle.downgrade()),
                auth: security.auth.clone(),
                tls: security.tls.clone(),
                metrics: metrics.clone(),
            },
            handle,
            store,
            metrics,
            started_at: Utc::now(),
            events,
            limits,
            ready: Arc::new(AtomicBool::new(false)),
            rules: rules_rx,
            ack_key,
        };
        Ok(Server {
            listener,
            state,
            writer,
            config,
            kafka,
            security,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Re-reads rules, tokens and TLS files (for SIGHUP).
    pub fn reloader(&self) -> Reload {
        self.state.reload.clone()
    }

    /// Serves until `shutdown` completes, then drains and stops the writer.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let Server {
            listener,
            state,
            writer,
            config,
            kafka,
            security,
        } = self;
        let ready = state.ready.clone();
        let events = state.events.clone();
        let app = http::router(state);
        let (stop_kafka, kafka_stopped) = tokio::sync::watch::channel(false);
        let kafka = kafka.map(|k| tokio::spawn(k.run(kafka_stopped)));
        ready.store(true, Ordering::Release);
        let listen = listener.local_addr()?;
        security.keep_warning(listen);
        tracing::info!(listen = %listen, tls = security.tls.is_some(), auth = security.auth.enabled(), "serving");
        let ready_off = ready.clone();
        // One deadline for the whole shutdown, from the signal on: the
        // HTTP drain, the Kafka source and the writer share it.
        let deadline = config.shutdown_timeout;
        let signalled = Arc::new(std::sync::OnceLock::new());
        let since = signalled.clone();
        http::serve::serve(
            listener,
            app,
            &HttpSettings {
                max_connections: http::serve::connection_limit(config.http.max_connections),
                ..config.http.clone()
            },
            security.tls.clone(),
            async move {
                shutdown.await;
                let _ = since.set(std::time::Instant::now());
                ready_off.store(false, Ordering::Release);
                let _ = stop_kafka.send(true);
                // Event streams end now, so their connections can close.
                events.close();
                tracing::info!("shutting down: intake stopped, draining");
            },
            deadline,
        )
        .await?;
        let left = || {
            deadline.saturating_sub(
                signalled
                    .get()
                    .map(std::time::Instant::elapsed)
                    .unwrap_or_default(),
            )
        };
        if let Some(task) = kafka {
            // It finishes its batch and commits; its Handle then goes too.
            if tokio::time::timeout(left(), task).await.is_err() {
                tracing::warn!(
                    ?deadline,
                    "kafka source did not stop before the shutdown deadline"
                );
            }
        }
        // The router (and with it every Handle) is gone: the writer drains and exits.
        let joined =
            tokio::time::timeout(left(), tokio::task::spawn_blocking(move || writer.join())).await;
        match joined {
            Ok(_) => tracing::info!("writer stopped; all acknowledged work is committed"),
            Err(_) => tracing::warn!(
                ?deadline,
                "writer did not stop before the shutdown deadline"
            ),
        }
        Ok(())
    }
}
