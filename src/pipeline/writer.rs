//! The writer thread: the one owner of the engine and the store's write
//! side.
//!
//! Contract: commands waiting in the queue are drained together (up to
//! `pipeline.max_batch_alerts` alerts) and run through the engine one by
//! one; their changes are committed in one transaction; only then are the
//! replies sent, the metrics counted, the jobs dispatched and the changes
//! replicated. A failed commit answers every request of the batch with an
//! error and rebuilds the live state from the store.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};

use super::handover::Gone;
use super::ports::{Dispatch, Replication};
use super::{Command, Handle, IngestSummary, OpFailure, PipelineError, SilenceError, SilenceOp};
use crate::config::PipelineSettings;
use crate::engine::{Engine, Event, OpError, Outcome, Settings};
use crate::metrics::Metrics;
use crate::model::{Direction, Home, Incident, IncidentKey, Job, KafkaPosition, Silence, Source};
use crate::rules::RuleSet;
use crate::store::{Batch, Store, StoreError};

/// Everything the writer owns.
pub struct Writer {
    pub engine: Engine,
    /// Where new action jobs go after their commit; `None` runs no actions.
    pub dispatcher: Option<Box<dyn Dispatch>>,
    /// Rule swaps are published here for the action executor.
    pub rules_tx: Option<watch::Sender<Arc<RuleSet>>>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub settings: PipelineSettings,
    pub engine_settings: Settings,
    pub metrics_window: Duration,
    /// Incident state replicated for other instances (the Kafka
    /// changelog), when on.
    pub replication: Option<Box<dyn Replication>>,
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

/// A reply held back until the batch's commit.
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
        Direction,
        usize,
    ),
    Flushed(oneshot::Sender<Result<(), PipelineError>>),
    Explain(
        oneshot::Sender<Result<crate::engine::explain::Report, PipelineError>>,
        Box<crate::engine::explain::Report>,
    ),
}

impl Reply {
    /// The batch is durable: answer, counting what was received.
    fn succeed(self, metrics: &Metrics) {
        match self {
            Reply::Ingest(tx, source, summary) => {
                metrics
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
                metrics
                    .kafka_handovers
                    .with_label_values(&[direction.as_str()])
                    .inc_by(n as u64);
                let _ = tx.send(Ok(n));
            }
            Reply::Flushed(tx) => {
                let _ = tx.send(Ok(()));
            }
            Reply::Explain(tx, r) => {
                let _ = tx.send(Ok(*r));
            }
        }
    }

    /// The commit failed: nothing of the batch was stored. A request that
    /// was refused anyway keeps its own answer.
    fn fail(self, err: &PipelineError) {
        match self {
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
            Reply::Explain(tx, _) => {
                let _ = tx.send(Err(err.clone()));
            }
        }
    }
}

/// What one batch gathers while its commands run, until the commit.
#[derive(Default)]
struct Pending {
    replies: Vec<Reply>,
    ticked: bool,
    flush: bool,
    positions: Vec<KafkaPosition>,
    homes: Vec<(IncidentKey, Option<Home>)>,
    /// Parked incidents to delete (closed elsewhere) or whose rows a newer
    /// changelog copy replaces.
    gone: Gone,
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

    /// Runs a batch of commands, commits their changes, then answers.
    fn process(&mut self, commands: Vec<Command>) {
        let now = Utc::now();
        let mut p = Pending::default();
        for cmd in commands {
            self.apply(cmd, now, &mut p);
        }
        let mut batch = Batch {
            changes: self.engine.take_changes(),
            kafka_positions: p.positions,
            homes: p.homes,
        };
        batch.changes.dropped.append(&mut p.gone.dropped);
        batch.changes.replaced.append(&mut p.gone.replaced);
        if let Some(r) = &mut self.replication {
            r.prepare(&mut batch);
        }
        match self.commit(&batch) {
            Ok(()) => {
                self.after_commit(batch, p.flush || p.ticked, p.ticked);
                for r in p.replies {
                    r.succeed(&self.metrics);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store commit failed; answering 503 and reloading state from the store");
                self.metrics.store_commit_failures.inc();
                let err = PipelineError::Unavailable(Arc::new(e));
                for r in p.replies {
                    r.fail(&err);
                }
                self.reload_state();
            }
        }
    }

    /// One command through the engine; its reply waits for the commit.
    fn apply(&mut self, cmd: Command, now: DateTime<Utc>, p: &mut Pending) {
        match cmd {
            Command::Ingest {
                source,
                alerts,
                mut positions,
                homes: runs,
                reply,
            } => {
                p.positions.append(&mut positions);
                let outcomes = self.engine.ingest(alerts, now);
                if let Some(r) = &mut self.replication {
                    let mut outcomes = outcomes.iter();
                    for (home, n) in &runs {
                        for o in outcomes.by_ref().take(*n) {
                            if let Outcome::Created(k)
                            | Outcome::Joined(k)
                            | Outcome::Deduplicated(k)
                            | Outcome::Resolved(k) = o
                            {
                                r.settle(*k, home, &mut p.homes);
                            }
                        }
                    }
                }
                let summary = IngestSummary::from_outcomes(&outcomes);
                p.replies.push(Reply::Ingest(reply, source, summary));
            }
            Command::Op {
                key,
                op,
                req,
                reply,
            } => {
                let store = &self.store;
                let r = self
                    .engine
                    .apply_op(key, op, &req, now, |k| match store.load_live(k) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(incident = %k, error = %e, "cannot load incident");
                            None
                        }
                    });
                p.replies.push(Reply::Op(reply, Box::new(r)));
            }
            Command::Rules { rules, reply } => {
                if let Some(tx) = &self.rules_tx {
                    tx.send_replace(rules.clone());
                }
                self.engine.set_rules(rules);
                p.replies.push(Reply::Rules(reply));
            }
            Command::Silence { op, reply } => {
                let r = match op {
                    SilenceOp::Create(s) => self.engine.add_silence(*s, now).map_err(Into::into),
                    SilenceOp::Expire(id) => self
                        .engine
                        .expire_silence(&id, now)
                        .ok_or(SilenceError::NotFound(id)),
                };
                p.replies.push(Reply::Silence(reply, r));
            }
            Command::ActionResult(r) => {
                let store = &self.store;
                self.engine
                    .record_action_result(r, now, |k| store.load_live(k).ok().flatten());
            }
            Command::Explain { alerts, reply } => {
                let r = self.engine.explain(&alerts, now);
                p.replies.push(Reply::Explain(reply, Box::new(r)));
            }
            Command::Tick => {
                if !p.ticked {
                    self.engine.tick(now);
                    p.ticked = true;
                }
            }
            Command::Adopt {
                home,
                restore,
                reply,
            } => {
                let n = self.adopt(&home, restore, &mut p.homes, &mut p.gone);
                p.replies.push(Reply::Handover(reply, Direction::In, n));
            }
            Command::Release { homes, reply } => {
                let mut n = 0;
                if let Some(r) = &self.replication {
                    for k in r.incidents_of(&homes) {
                        if self.engine.hand_over(k) {
                            n += 1;
                        }
                    }
                }
                p.replies.push(Reply::Handover(reply, Direction::Out, n));
            }
            Command::FlushChangelog { reply } => {
                p.flush = true;
                p.replies.push(Reply::Flushed(reply));
            }
        }
    }

    fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let r = self.store.commit(batch);
        self.metrics
            .store_commit_duration
            .observe(started.elapsed().as_secs_f64());
        r
    }

    /// The batch is durable: replicate it, count it, run its jobs.
    fn after_commit(&mut self, batch: Batch, replicate_pending: bool, ticked: bool) {
        if let Some(r) = &mut self.replication {
            // Queued before anyone hears of the commit, so a flush after an
            // acknowledgement covers these records.
            r.committed(&batch);
            if replicate_pending {
                r.produce_pending(&self.engine, &self.store);
            }
        }
        let changes = batch.changes;
        self.metrics.record(&changes.events);
        self.dispatch(changes.dispatch);
        let changed_state = changes
            .events
            .iter()
            .any(|e| !matches!(e, Event::Deduplicated));
        if changed_state || ticked {
            self.refresh_gauges();
        }
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
                if let Some(r) = &mut self.replication {
                    match self.store.homes() {
                        Ok(h) => {
                            // Parked incidents came back with the reload:
                            // out of memory again.
                            let parked = r.parked();
                            for k in &parked {
                                self.engine.park(*k);
                            }
                            self.store.park(parked);
                            let engine = &self.engine;
                            r.reset(h, &|k| engine.live(k).is_some());
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
