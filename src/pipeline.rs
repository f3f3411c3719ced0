//! The async shell around the engine: one writer thread owns the engine and
//! the store; everything else talks to it through a bounded queue.
//!
//! Input: [`Command`]s (alert batches, lifecycle requests, rule swaps, clock
//! ticks). Output: a reply per command, sent only after the write
//! transaction holding its effects has committed — the acknowledgement *is*
//! the durability ticket. Commands waiting in the queue are drained together
//! into one transaction (group commit). A full queue answers
//! [`PipelineError::Overloaded`] at once instead of growing memory. If a
//! commit fails, every request in it is answered with an error and the live
//! state is rebuilt from the store, so memory never runs ahead of disk.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{mpsc, oneshot};

use crate::actions::{AttemptResult, Dispatcher, Job};
use crate::alert::{Alert, Source};
use crate::changelog::ChangelogWriter;
use crate::config::PipelineSettings;
use crate::engine::Live;
use crate::engine::{Adoption, Engine, OpError, Outcome, Settings};
use crate::incident::{Incident, IncidentKey, Op, OpRequest};
use crate::metrics::Metrics;
use crate::rules::RuleSet;
use crate::store::{Home, Store};
use crate::suppress::Silence;

/// Why an ingest or lifecycle request was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PipelineError {
    #[error("ingest queue is full; retry later")]
    Overloaded,
    #[error("storage failed, nothing from this request was stored: {0}")]
    Unavailable(String),
    #[error("shutting down")]
    ShuttingDown,
}

/// A lifecycle request's failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpFailure {
    #[error(transparent)]
    Op(#[from] OpError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// What an accepted ingest request did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestSummary {
    pub accepted: usize,
    pub created: Vec<IncidentKey>,
    pub updated: Vec<IncidentKey>,
    pub deduplicated: usize,
    pub ignored: usize,
    pub suppressed: usize,
}

impl IngestSummary {
    fn from_outcomes(outcomes: &[Outcome]) -> IngestSummary {
        let mut s = IngestSummary {
            accepted: outcomes.len(),
            ..IngestSummary::default()
        };
        for o in outcomes {
            match *o {
                Outcome::Created(k) => s.created.push(k),
                Outcome::Joined(k) | Outcome::Resolved(k) => {
                    if !s.updated.contains(&k) && !s.created.contains(&k) {
                        s.updated.push(k);
                    }
                }
                Outcome::Deduplicated(_) => s.deduplicated += 1,
                Outcome::Ignored => s.ignored += 1,
                Outcome::Suppressed(_) => s.suppressed += 1,
            }
        }
        s
    }
}

/// Work for the writer.
pub enum Command {
    Ingest {
        source: Source,
        alerts: Vec<Alert>,
        /// Kafka: the last offset per partition these alerts came up to,
        /// stored in the same transaction (see [`IngestPermit::ingest_kafka`]).
        positions: Vec<crate::store::KafkaPosition>,
        /// Kafka: the partition of each run of alerts, in order (partition,
        /// number of alerts), for the changelog.
        homes: Vec<(Home, usize)>,
        reply: oneshot::Sender<Result<IngestSummary, PipelineError>>,
    },
    /// Incidents read from the changelog of a partition just assigned.
    Adopt {
        home: Home,
        restore: crate::changelog::Restore,
        reply: oneshot::Sender<Result<usize, PipelineError>>,
    },
    /// Partitions revoked: let their incidents go.
    Release {
        homes: Vec<Home>,
        reply: oneshot::Sender<Result<usize, PipelineError>>,
    },
    /// Produce the changelog's pending repeat-only changes now.
    FlushChangelog {
        reply: oneshot::Sender<Result<(), PipelineError>>,
    },
    Op {
        key: IncidentKey,
        op: Op,
        req: OpRequest,
        reply: oneshot::Sender<Result<Incident, OpFailure>>,
    },
    Rules {
        rules: Arc<RuleSet>,
        reply: oneshot::Sender<()>,
    },
    Silence {
        op: SilenceOp,
        reply: oneshot::Sender<Result<Silence, SilenceError>>,
    },
    ActionResult(AttemptResult),
    Tick,
}

/// A reserved place in the writer's queue (see [`Handle::reserve`]).
pub struct IngestPermit<'a>(mpsc::Permit<'a, Command>);

impl IngestPermit<'_> {
    /// Hands alerts to the writer and waits until they are durable.
    pub async fn ingest(
        self,
        source: Source,
        alerts: Vec<Alert>,
    ) -> Result<IngestSummary, PipelineError> {
        self.send_ingest(source, alerts, Vec::new(), Vec::new())
            .await
    }

    async fn send_ingest(
        self,
        source: Source,
        alerts: Vec<Alert>,
        positions: Vec<crate::store::KafkaPosition>,
        homes: Vec<(Home, usize)>,
    ) -> Result<IngestSummary, PipelineError> {
        let (reply, rx) = oneshot::channel();
        self.0.send(Command::Ingest {
            source,
            alerts,
            positions,
            homes,
            reply,
        });
        rx.await.map_err(|_| PipelineError::ShuttingDown)?
    }

    /// Like [`IngestPermit::ingest`] for Kafka messages: `positions` (the
    /// last offset per partition of the messages the alerts came from)
    /// commit in the same transaction as the alerts, so after a crash the
    /// source knows exactly which redelivered messages are already stored.
    /// `homes` names the partition of each run of alerts, in order, so the
    /// incidents they touch belong to it (changelog).
    pub async fn ingest_kafka(
        self,
        alerts: Vec<Alert>,
        positions: Vec<crate::store::KafkaPosition>,
        homes: Vec<(Home, usize)>,
    ) -> Result<IngestSummary, PipelineError> {
        self.send_ingest(Source::Kafka, alerts, positions, homes)
            .await
    }
}

/// Silence changes; they go through the writer like everything else.
pub enum SilenceOp {
    Create(Box<Silence>),
    Expire(String),
}

/// Why a silence change failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    #[error("{0}")]
    Invalid(String),
    #[error("no silence {0}")]
    NotFound(String),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

impl Command {
    fn weight(&self) -> usize {
        match self {
            Command::Ingest { alerts, .. } => alerts.len().max(1),
            _ => 1,
        }
    }
}

/// The sending side; cheap to clone. The writer stops when every handle is gone.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Command>,
}

/// A handle that does not keep the writer alive (for background tasks
/// such as the SIGHUP listener, which must not block shutdown).
#[derive(Clone)]
pub struct WeakHandle {
    tx: mpsc::WeakSender<Command>,
}

impl WeakHandle {
    pub fn upgrade(&self) -> Option<Handle> {
        self.tx.upgrade().map(|tx| Handle { tx })
    }
}

impl Handle {
    pub fn downgrade(&self) -> WeakHandle {
        WeakHandle {
            tx: self.tx.downgrade(),
        }
    }

    /// Queues alerts and waits until they are durable.
    pub async fn ingest(
        &self,
        source: Source,
        alerts: Vec<Alert>,
    ) -> Result<IngestSummary, PipelineError> {
        self.reserve()?.ingest(source, alerts).await
    }

    /// Adopts the live incidents of a partition's changelog; answers how
    /// many were adopted once they are durable.
    pub async fn adopt(
        &self,
        home: Home,
        restore: crate::changelog::Restore,
    ) -> Result<usize, PipelineError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Adopt {
            home,
            restore,
            reply,
        })
        .await?;
        rx.await.map_err(|_| PipelineError::ShuttingDown)?
    }

    /// Lets go of the incidents of revoked partitions; answers how many.
    pub async fn release(&self, homes: Vec<Home>) -> Result<usize, PipelineError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Release { homes, reply }).await?;
        rx.await.map_err(|_| PipelineError::ShuttingDown)?
    }

    /// Produces the changelog's pending changes (then flush the producer).
    pub async fn flush_changelog(&self) -> Result<(), PipelineError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::FlushChangelog { reply }).await?;
        rx.await.map_err(|_| PipelineError::ShuttingDown)?
    }

    async fn send(&self, c: Command) -> Result<(), PipelineError> {
        self.tx
            .send(c)
            .await
            .map_err(|_| PipelineError::ShuttingDown)
    }

    /// A place in the writer's queue, or `Overloaded` / `ShuttingDown`
    /// without handing anything over: a caller that retries (Kafka) keeps
    /// its alerts instead of copying them for every attempt.
    pub fn reserve(&self) -> Result<IngestPermit<'_>, PipelineError> {
        self.tx
            .try_reserve()
            .map(IngestPermit)
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(()) => PipelineError::Overloaded,
                mpsc::error::TrySendError::Closed(()) => PipelineError::ShuttingDown,
            })
    }
    /// Applies a lifecycle request and waits until it is durable.
    pub async fn op(
        &self,
        key: IncidentKey,
        op: Op,
        req: OpRequest,
    ) -> Result<Incident, OpFailure> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Op {
                key,
                op,
                req,
                reply,
            })
            .await
            .map_err(|_| PipelineError::ShuttingDown)?;
        rx.await.map_err(|_| PipelineError::ShuttingDown)?
    }

    /// Creates or expires a silence and waits until that is durable.
    pub async fn silence(&self, op: SilenceOp) -> Result<Silence, SilenceError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Silence { op, reply })
            .await
            .map_err(|_| PipelineError::ShuttingDown)?;
        rx.await.map_err(|_| PipelineError::ShuttingDown)?
    }

    /// Reports an action attempt; it lands on the timeline with the next commit.
    pub async fn action_result(&self, r: AttemptResult) -> Result<(), PipelineError> {
        self.tx
            .send(Command::ActionResult(r))
            .await
            .map_err(|_| PipelineError::ShuttingDown)
    }

    /// Swaps the rules between two batches.
    pub async fn set_rules(&self, rules: Arc<RuleSet>) -> Result<(), PipelineError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Rules { rules, reply })
            .await
            .map_err(|_| PipelineError::ShuttingDown)?;
        rx.await.map_err(|_| PipelineError::ShuttingDown)
    }
}

/// Parked incidents an adoption deletes or replaces.
#[derive(Default)]
struct Gone {
    dropped: Vec<IncidentKey>,
    replaced: Vec<IncidentKey>,
}

/// Everything the writer owns.
pub struct Writer {
    pub engine: Engine,
    /// Where new action jobs go after their commit; `None` runs no actions.
    pub dispatcher: Option<Dispatcher>,
    /// Rule swaps are published here for the action executor.
    pub rules_tx: Option<tokio::sync::watch::Sender<Arc<RuleSet>>>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub settings: PipelineSettings,
    pub engine_settings: Settings,
    pub metrics_window: Duration,
    /// Kafka changelog hand-over, when on.
    pub changelog: Option<ChangelogWriter>,
}

/// Starts the writer thread and the ticker; returns the handle and the thread.
pub fn spawn(mut writer: Writer) -> std::io::Result<(Handle, JoinHandle<()>)> {
    // The gauges hold the restored state before anything can scrape them:
    // after a restart, /metrics never shows zero open incidents.
    writer.refresh_gauges();
    let (tx, rx) = mpsc::channel(writer.settings.queue_capacity);
    let tick = writer.settings.tick_interval;
    let weak = tx.downgrade();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let Some(tx) = weak.upgrade() else { break };
            // A full queue means the writer is busy; the next tick will do.
            let _ = tx.try_send(Command::Tick);
        }
    });
    let join = std::thread::Builder::new()
        .name("incidentd-writer".into())
        .spawn(move || writer.run(rx))?;
    Ok((Handle { tx }, join))
}

enum Reply {
    Ingest(
        oneshot::Sender<Result<IngestSummary, PipelineError>>,
        Source,
        IngestSummary,
    ),
    Op(
        oneshot::Sender<Result<Incident, OpFailure>>,
        Box<Result<Incident, OpError>>,
    ),
    Rules(oneshot::Sender<()>),
    Silence(
        oneshot::Sender<Result<Silence, SilenceError>>,
        Result<Silence, SilenceError>,
    ),
    /// Adopted (in) or released (out) incidents.
    Handover(
        oneshot::Sender<Result<usize, PipelineError>>,
        &'static str,
        usize,
    ),
    Flushed(oneshot::Sender<Result<(), PipelineError>>),
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        // Jobs that were pending when the daemon stopped run again now.
        let pending = self.engine.pending_jobs();
        if !pending.is_empty() {
            tracing::info!(jobs = pending.len(), "resuming pending actions");
        }
        self.dispatch(pending);
        while let Some(first) = rx.blocking_recv() {
            let mut weight = first.weight();
            let mut batch = vec![first];
            while weight < self.settings.max_batch_alerts {
                match rx.try_recv() {
                    Ok(c) => {
                        weight += c.weight();
                        batch.push(c);
                    }
                    Err(_) => break,
                }
            }
            self.process(batch);
            if rx.is_empty() {
                self.fold_when_idle();
            }
        }
        tracing::debug!("writer stopped: every sender is gone");
    }

    fn process(&mut self, batch: Vec<Command>) {
        let now = Utc::now();
        let mut replies = Vec::with_capacity(batch.len());
        let mut ticked = false;
        let mut flush = false;
        let mut positions = Vec::new();
        let mut homes = Vec::new();
        // Parked incidents to delete (closed elsewhere) or whose rows a
        // newer changelog copy replaces.
        let mut gone = Gone::default();
        for cmd in batch {
            match cmd {
                Command::Ingest {
                    source,
                    alerts,
                    positions: mut p,
                    homes: runs,
                    reply,
                } => {
                    positions.append(&mut p);
                    let outcomes = self.engine.ingest(alerts, now);
                    if let Some(c) = &mut self.changelog {
                        let mut outcomes = outcomes.iter();
                        for (home, n) in &runs {
                            for o in outcomes.by_ref().take(*n) {
                                if let Outcome::Created(k)
                                | Outcome::Joined(k)
                                | Outcome::Deduplicated(k)
                                | Outcome::Resolved(k) = o
                                {
                                    c.settle(*k, home, &mut homes);
                                }
                            }
                        }
                    }
                    replies.push(Reply::Ingest(
                        reply,
                        source,
                        IngestSummary::from_outcomes(&outcomes),
                    ));
                }
                Command::Op {
                    key,
                    op,
                    req,
                    reply,
                } => {
                    let store = &self.store;
                    let r = self.engine.apply_op(key, op, &req, now, |k| {
                        match store.load_live(k) {
                            Ok(l) => l,
                            Err(e) => {
                                tracing::error!(incident = %k, error = %e, "cannot load incident");
                                None
                            }
                        }
                    });
                    replies.push(Reply::Op(reply, Box::new(r)));
                }
                Command::Rules { rules, reply } => {
                    if let Some(tx) = &self.rules_tx {
                        tx.send_replace(rules.clone());
                    }
                    self.engine.set_rules(rules);
                    replies.push(Reply::Rules(reply));
                }
                Command::Silence { op, reply } => {
                    let r = match op {
                        SilenceOp::Create(s) => self
                            .engine
                            .add_silence(*s, now)
                            .map_err(SilenceError::Invalid),
                        SilenceOp::Expire(id) => self
                            .engine
                            .expire_silence(&id, now)
                            .ok_or(SilenceError::NotFound(id)),
                    };
                    replies.push(Reply::Silence(reply, r));
                }
                Command::ActionResult(r) => {
                    let store = &self.store;
                    self.engine
                        .record_action_result(r, now, |k| store.load_live(k).ok().flatten());
                }
                Command::Tick => {
                    if !ticked {
                        self.engine.tick(now);
                        ticked = true;
                    }
                }
                Command::Adopt {
                    home,
                    restore,
                    reply,
                } => {
                    let n = self.adopt(&home, restore, &mut homes, &mut gone);
                    replies.push(Reply::Handover(reply, "in", n));
                }
                Command::Release { homes: gone, reply } => {
                    let mut n = 0;
                    if let Some(c) = &self.changelog {
                        for k in c.incidents_of(&gone) {
                            if self.engine.hand_over(k) {
                                n += 1;
                            }
                        }
                    }
                    replies.push(Reply::Handover(reply, "out", n));
                }
                Command::FlushChangelog { reply } => {
                    flush = true;
                    replies.push(Reply::Flushed(reply));
                }
            }
        }
        let mut ws = self.engine.take_changes();
        ws.kafka_positions = positions;
        ws.homes = homes;
        ws.dropped.append(&mut gone.dropped);
        ws.replaced.append(&mut gone.replaced);
        if let Some(c) = &mut self.changelog {
            c.prepare(&mut ws);
        }
        let result = if ws.is_empty() {
            Ok(())
        } else {
            let started = Instant::now();
            let r = self.store.commit(&ws);
            self.metrics
                .store_commit_duration
                .observe(started.elapsed().as_secs_f64());
            r
        };
        match result {
            Ok(()) => {
                if let Some(c) = &mut self.changelog {
                    // Queued before anyone hears of the commit, so a flush
                    // after an acknowledgement covers these records.
                    c.committed(&ws);
                    if flush || ticked {
                        c.produce_pending(&self.engine, &self.store);
                    }
                }
                self.metrics.record(&ws.events);
                self.dispatch(ws.dispatch);
                let changed_state = ws
                    .events
                    .iter()
                    .any(|e| !matches!(e, crate::engine::Event::Deduplicated));
                if changed_state || ticked {
                    self.refresh_gauges();
                }
                for r in replies {
                    match r {
                        Reply::Ingest(tx, source, summary) => {
                            self.metrics
                                .alerts_received
                                .with_label_values(&[source.as_str()])
                                .inc_by(summary.accepted as u64);
                            let _ = tx.send(Ok(summary));
                        }
                        Reply::Op(tx, r) => {
                            let _ = tx.send((*r).map_err(OpFailure::from));
                        }
                        Reply::Rules(tx) => {
                            let _ = tx.send(());
                        }
                        Reply::Silence(tx, r) => {
                            let _ = tx.send(r);
                        }
                        Reply::Handover(tx, direction, n) => {
                            self.metrics
                                .kafka_handovers
                                .with_label_values(&[direction])
                                .inc_by(n as u64);
                            let _ = tx.send(Ok(n));
                        }
                        Reply::Flushed(tx) => {
                            let _ = tx.send(Ok(()));
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store commit failed; answering 503 and reloading state from the store");
                self.metrics.store_commit_failures.inc();
                let err = PipelineError::Unavailable(e.to_string());
                for r in replies {
                    match r {
                        Reply::Ingest(tx, _, _) => {
                            let _ = tx.send(Err(err.clone()));
                        }
                        Reply::Op(tx, r) => {
                            let _ = tx.send(match *r {
                                Ok(_) => Err(OpFailure::Pipeline(err.clone())),
                                Err(e) => Err(OpFailure::Op(e)),
                            });
                        }
                        Reply::Rules(tx) => {
                            let _ = tx.send(());
                        }
                        Reply::Silence(tx, r) => {
                            let _ = tx.send(match r {
                                Ok(_) => Err(SilenceError::Pipeline(err.clone())),
                                Err(e) => Err(e),
                            });
                        }
                        Reply::Handover(tx, _, _) => {
                            let _ = tx.send(Err(err.clone()));
                        }
                        Reply::Flushed(tx) => {
                            let _ = tx.send(Err(err.clone()));
                        }
                    }
                }
                self.reload_state();
            }
        }
    }

    /// Takes a changelog partition's incidents in, against this instance's
    /// own copies: the newer of the two wins (see [`Engine::adopt`]).
    /// Parked copies (held at start) come back as they are when the
    /// changelog has nothing newer, or are deleted when the changelog says
    /// they closed. An id the store holds for another incident (two
    /// instances sharing a number) is skipped with a warning.
    fn adopt(
        &mut self,
        home: &Home,
        restore: crate::changelog::Restore,
        homes: &mut Vec<(IncidentKey, Option<Home>)>,
        gone: &mut Gone,
    ) -> usize {
        let Some(c) = &mut self.changelog else {
            return 0;
        };
        let mut from_log: std::collections::BTreeMap<IncidentKey, crate::changelog::Adopted> =
            restore
                .incidents
                .into_iter()
                .map(|a| (a.0.incident.id, a))
                .collect();
        let mut n = 0;
        // What happened to this instance's parked copies, for the log.
        let (mut resumed, mut replaced, mut ours, mut deleted) = (0, 0, 0, 0);
        for k in c.unpark(home) {
            // Listed again whatever happens below (deleted ones are gone).
            self.store.unpark(k);
            let local = match self.store.incident_full(k) {
                Ok(Some(l)) => l,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(incident = %k, error = %e, "cannot read a parked incident; the changelog decides");
                    continue;
                }
            };
            let (inc, alerts, timeline) = local;
            let live = Live {
                incident: inc,
                alerts: alerts.into_iter().map(|a| (a.fingerprint, a)).collect(),
            };
            match from_log.remove(&k) {
                Some(remote) if remote.0.incident.version() > live.incident.version() => {
                    gone.replaced.push(k);
                    if self.engine.adopt(remote.0, remote.1) == Adoption::Adopted {
                        n += 1;
                        replaced += 1;
                    }
                }
                Some(remote) if remote.0.incident.version() == live.incident.version() => {
                    self.engine.resume(live);
                    resumed += 1;
                }
                None if restore.closed.contains(&k) => {
                    tracing::info!(incident = %k, "closed by the partition's last owner; deleting this instance's old copy");
                    gone.dropped.push(k);
                    deleted += 1;
                    continue;
                }
                // Ours is newer, or the changelog never got it (not
                // delivered before this instance stopped): ours, produced
                // to the changelog in full.
                Some(_) | None => {
                    let timeline = timeline
                        .into_iter()
                        .enumerate()
                        .map(|(i, e)| (i as u32, e))
                        .collect();
                    self.engine.adopt(live, timeline);
                    ours += 1;
                }
            }
            c.settle(k, home, homes);
        }
        if resumed + replaced + ours + deleted > 0 {
            tracing::info!(partition = %home, resumed, replaced_by_newer = replaced, ours_newer = ours, deleted_closed_elsewhere = deleted,
                "this instance's parked incidents of the partition, against its changelog");
        }
        for (k, (live, timeline)) in from_log {
            if self.engine.live(k).is_some() {
                c.settle(k, home, homes);
                if self.engine.adopt(live, timeline) == Adoption::Replaced {
                    tracing::info!(incident = %k, "the changelog's copy is newer than this instance's; replaced");
                    n += 1;
                }
                continue;
            }
            match self.store.incident(k) {
                Ok(None) => {}
                Ok(Some(local)) => {
                    tracing::warn!(incident = %k, local_group = %local.group_key, changelog_group = %live.incident.group_key,
                        "changelog incident not adopted: this store already has that id (do two instances share kafka.instance?)");
                    continue;
                }
                Err(e) => {
                    tracing::error!(incident = %k, error = %e, "changelog incident not adopted: cannot read the store");
                    continue;
                }
            }
            if self.engine.adopt(live, timeline) == Adoption::Adopted {
                c.settle(k, home, homes);
                n += 1;
            }
        }
        n
    }

    /// Hands committed pending jobs to the executor.
    pub fn dispatch(&self, jobs: Vec<Job>) {
        let Some(d) = &self.dispatcher else { return };
        for job in jobs {
            let key = job.key.clone();
            if !d.dispatch(job) {
                tracing::warn!(job = %key, "action queue full; the job stays pending and runs after a restart");
            }
        }
    }

    fn reload_state(&mut self) {
        self.engine.discard_changes();
        match self.store.load(Utc::now(), self.metrics_window) {
            Ok(snap) => {
                self.engine = Engine::restore(
                    self.engine.rules().clone(),
                    self.engine_settings.clone(),
                    snap.live,
                    snap.restored,
                );
                if let Some(c) = &mut self.changelog {
                    match self.store.homes() {
                        Ok(h) => {
                            // Parked incidents came back with the reload:
                            // out of memory again.
                            let parked = c.parked_keys();
                            for k in &parked {
                                self.engine.park(*k);
                            }
                            self.store.park(parked);
                            let engine = &self.engine;
                            c.reset(h, &|k| engine.live(k).is_some());
                        }
                        Err(e) => tracing::error!(error = %e, "cannot reload incident homes"),
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot reload state from the store"),
        }
    }

    /// Folds the repeat log while nothing waits (see [`Store::fold_if_due`]).
    fn fold_when_idle(&mut self) {
        match self.store.fold_if_due() {
            Ok(true) => tracing::debug!("repeat log folded while idle"),
            Ok(false) => {}
            // The log stays; the next idle moment or commit folds it.
            Err(e) => tracing::warn!(error = %e, "folding the repeat log failed"),
        }
    }

    fn refresh_gauges(&mut self) {
        let means = self.engine.rolling_means(Utc::now(), self.metrics_window);
        self.metrics
            .set_state(self.engine.open_by_priority(), means);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertStatus;
    use crate::changelog::{Changelog, ChangelogWriter, Restore};
    use crate::config::KafkaConfig;
    use crate::rules::labels;

    fn alert(instance: &str) -> Alert {
        Alert::new(
            labels(&[
                ("alertname", "HostDown"),
                ("instance", instance),
                ("severity", "critical"),
            ]),
            Default::default(),
            Some(AlertStatus::Firing),
            None,
            None,
            String::new(),
            Source::Kafka,
            None,
            Utc::now(),
        )
        .expect("labels")
    }

    fn p0() -> Home {
        Home {
            topic: "alerts".into(),
            partition: 0,
        }
    }

    /// A writer as `serve` builds it with the changelog on, over `dir`; no
    /// broker is needed while no partition is owned (nothing is produced).
    fn start(dir: &std::path::Path) -> (Handle, std::thread::JoinHandle<()>, Store) {
        let store = Store::open(dir).expect("open");
        let metrics = Arc::new(Metrics::new());
        let config = KafkaConfig {
            brokers: "127.0.0.1:9".into(),
            topics: vec!["alerts".into()],
            changelog: true,
            instance: Some(1),
            ..KafkaConfig::default()
        };
        let log = Arc::new(Changelog::new(&config, metrics.clone()).expect("producer"));
        let mut w =
            ChangelogWriter::new(log, Duration::from_secs(10), store.homes().expect("homes"));
        let parked = w.park_all();
        let mut snap = store
            .load(Utc::now(), Duration::from_secs(3600))
            .expect("load");
        snap.live.retain(|l| !parked.contains(&l.incident.id));
        store.park(parked);
        let settings = Settings {
            close_after: Duration::from_secs(3600),
            id_slot: Some(1),
        };
        let engine = Engine::restore(
            Arc::new(RuleSet::builtin().expect("rules")),
            settings.clone(),
            snap.live,
            snap.restored,
        );
        let (handle, join) = spawn(Writer {
            engine,
            dispatcher: None,
            rules_tx: None,
            store: store.clone(),
            metrics,
            settings: PipelineSettings::default(),
            engine_settings: settings,
            metrics_window: Duration::from_secs(3600),
            changelog: Some(w),
        })
        .expect("writer");
        (handle, join, store)
    }

    async fn ingest(h: &Handle, instance: &str) -> IngestSummary {
        h.reserve()
            .expect("room")
            .ingest_kafka(vec![alert(instance)], Vec::new(), vec![(p0(), 1)])
            .await
            .expect("ingest")
    }

    #[tokio::test]
    async fn parked_copies_are_deleted_when_closed_elsewhere_and_resume_otherwise() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (h, join, _) = start(dir.path());
        let closed_elsewhere = ingest(&h, "db1:9100").await.created[0];
        let never_delivered = ingest(&h, "db2:9100").await.created[0];
        drop(h);
        join.join().expect("writer");

        // Restart: both are parked; the store still has them, but lists
        // neither (the partition may be another instance's by now).
        let (h, join, store) = start(dir.path());
        assert!(store.incident(closed_elsewhere).expect("read").is_some());
        let listed = |store: &Store| -> Vec<IncidentKey> {
            store
                .list(&crate::store::ListFilter {
                    limit: 10,
                    ..Default::default()
                })
                .expect("list")
                .iter()
                .map(|i| i.id)
                .collect()
        };
        assert!(listed(&store).is_empty());
        let n = h
            .adopt(
                p0(),
                Restore {
                    incidents: Vec::new(),
                    closed: vec![closed_elsewhere],
                },
            )
            .await
            .expect("adopt");
        assert_eq!(n, 0, "nothing came from another instance");
        assert_eq!(listed(&store), vec![never_delivered], "listed again");
        assert!(
            store.incident(closed_elsewhere).expect("read").is_none(),
            "closed by the partition's last owner: the old copy is deleted"
        );
        // The other one is back in memory: its alert repeats into it.
        let s = ingest(&h, "db2:9100").await;
        assert_eq!((s.deduplicated, s.created.len()), (1, 0), "{s:?}");
        let s = ingest(&h, "db1:9100").await;
        assert!(
            s.created.len() == 1 && s.created[0] != closed_elsewhere,
            "the deleted incident's alert opens a new one: {s:?}"
        );
        assert_eq!(
            store.homes().expect("homes").len(),
            2,
            "{never_delivered} and the new incident belong to the partition"
        );
        drop(h);
        join.join().expect("writer");
    }
}
