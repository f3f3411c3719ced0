//! The writer thread: the one owner of the engine and the store's write
//! side.
//!
//! Contract: commands waiting in the queue are drained together (up to
//! `pipeline.max_batch_alerts` alerts) and run through the engine one by
//! one; their changes are committed in one transaction; only then are the
//! replies sent, the metrics counted, the jobs dispatched and the changes
//! replicated. A failed commit answers every request of the batch with an
//! error, marks the store unhealthy and heals it: the file is reopened and
//! the live state rebuilt from what is committed, at once and then with a
//! backoff of 1 s doubling to 10 s. Until that succeeds every command that
//! would write is refused with [`PipelineError::Unavailable`] (action
//! results are held and applied after the heal), and the gauges keep the
//! last committed state. When the queue is empty the writer folds the repeat
//! log and runs retention, one bounded batch at a time.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::RetentionSettings;
use crate::model::AttemptResult;
use crate::store::maintenance::Retention;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};

use super::handover::Gone;
use super::ports::{Dispatch, Replication};
use super::{
    Command, Handle, IngestSummary, OpFailure, OverrideError, OverrideOp, PipelineError,
    SilenceError, SilenceOp,
};
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
    /// How long finished things are kept.
    pub retention: RetentionSettings,
    /// Committed changes for the event stream, when anyone may listen.
    pub events: Option<super::events::EventBus>,
}

/// The store could not commit; the writer heals it before writing again.
struct Healing {
    since: Instant,
    reason: String,
    next: Instant,
    backoff: Duration,
    /// Action results that arrived meanwhile, applied after the heal.
    held: Vec<AttemptResult>,
}

/// Most action results held while the store heals; beyond this a result
/// is dropped (its job stays pending and runs again after a restart).
const MAX_HELD_RESULTS: usize = 100_000;
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(10);

/// When retention runs next: after a pass that filled its batch, at the
/// next idle moment a second later; otherwise after `retention.interval`.
struct RetentionClock {
    next: Instant,
}

/// Starts the writer thread and the ticker; returns the handle and the thread.
pub fn spawn(mut writer: Writer) -> std::io::Result<(Handle, JoinHandle<()>)> {
    // The gauges hold the restored state before anything can scrape them:
    // after a restart, /metrics never shows zero open incidents.
    writer.refresh_gauges();
    start_rules_at_zero(&writer.metrics, writer.engine.rules());
    let (tx, rx) = mpsc::channel(writer.settings.queue_capacity);
    writer
        .metrics
        .queue_capacity
        .set(i64::try_from(rx.max_capacity()).unwrap_or(i64::MAX));
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
    let admission = super::Admission::new(
        writer.settings.max_queued_alerts,
        writer.settings.max_queued_bytes,
    );
    let join = std::thread::Builder::new()
        .name("incidentd-writer".into())
        .spawn(move || writer.run(rx))?;
    Ok((Handle { tx, admission }, join))
}

/// The rules' actions and escalation levels, exported at zero.
fn start_rules_at_zero(metrics: &Metrics, rules: &RuleSet) {
    metrics.start_rules_at_zero(
        rules.actions.iter().map(|a| a.name.as_str()),
        rules
            .escalations
            .iter()
            .map(|e| (e.name.as_str(), e.levels.len())),
    );
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
    Override(
        oneshot::Sender<Result<crate::model::Override, OverrideError>>,
        Result<crate::model::Override, OverrideError>,
    ),
    /// Adopted (in) or released (out) incidents.
    Handover(
        oneshot::Sender<Result<usize, PipelineError>>,
        Direction,
        usize,
    ),
    Flushed(oneshot::Sender<Result<(), PipelineError>>),
    Heartbeat(
        oneshot::Sender<Result<Option<DateTime<Utc>>, PipelineError>>,
        Option<DateTime<Utc>>,
    ),
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
            Reply::Override(tx, r) => {
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
            Reply::Heartbeat(tx, at) => {
                let _ = tx.send(Ok(at));
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
            Reply::Override(tx, r) => {
                let _ = tx.send(match r {
                    Ok(_) => Err(OverrideError::Pipeline(err.clone())),
                    Err(e) => Err(e),
                });
            }
            Reply::Handover(tx, _, _) => {
                let _ = tx.send(Err(err.clone()));
            }
            Reply::Flushed(tx) => {
                let _ = tx.send(Err(err.clone()));
            }
            Reply::Heartbeat(tx, _) => {
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
        self.metrics.store_healthy.set(1);
        let mut healing: Option<Healing> = None;
        let mut retention = RetentionClock {
            next: Instant::now() + Duration::from_secs(10),
        };
        while let Some(first) = rx.blocking_recv() {
            let waiting =
                |rx: &mpsc::Receiver<Command>| i64::try_from(rx.len()).unwrap_or(i64::MAX);
            self.metrics.queue_length.set(waiting(&rx) + 1);
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
            self.metrics.queue_length.set(waiting(&rx));
            if healing.as_ref().is_some_and(|h| Instant::now() >= h.next) {
                healing = self.heal(healing);
            }
            if let Some(h) = &mut healing {
                self.refuse(batch, h);
                continue;
            }
            if let Err(reason) = self.process(batch) {
                healing = self.heal(Some(Healing {
                    since: Instant::now(),
                    reason,
                    next: Instant::now(),
                    backoff: FIRST_RETRY,
                    held: Vec::new(),
                }));
                continue;
            }
            if rx.is_empty() {
                self.fold_when_idle();
            }
            if rx.is_empty() && Instant::now() >= retention.next {
                retention.next = Instant::now() + self.retain();
            }
        }
        tracing::debug!("writer stopped: every sender is gone");
    }

    /// Reopens the store and reloads the live state from it; answers the
    /// healing state still in force if that failed.
    fn heal(&mut self, healing: Option<Healing>) -> Option<Healing> {
        let mut h = healing?;
        let healed = self
            .store
            .reopen()
            .map_err(|e| e.to_string())
            .and_then(|()| self.reload_state());
        match healed {
            Ok(()) => {
                self.metrics.store_healthy.set(1);
                self.refresh_gauges();
                tracing::info!(
                    seconds = h.since.elapsed().as_secs_f64(),
                    "the store commits again; live state reloaded from what is committed"
                );
                let now = Utc::now();
                let store = &self.store;
                for r in h.held.drain(..) {
                    self.engine
                        .record_action_result(r, now, |k| store.load_live(k).ok().flatten());
                }
                None
            }
            Err(e) => {
                let reason = if e.contains(&h.reason) || h.reason.contains(&e) {
                    h.reason.clone()
                } else {
                    format!("{}; reopening failed: {e}", h.reason)
                };
                self.store.failed(reason);
                self.metrics.store_healthy.set(0);
                tracing::warn!(error = %e, retry_in = ?h.backoff, "the store cannot be reopened yet; writes are refused meanwhile");
                h.next = Instant::now() + h.backoff;
                h.backoff = (h.backoff * 2).min(MAX_RETRY);
                Some(h)
            }
        }
    }

    /// Answers a batch while the store heals: nothing that writes is taken.
    fn refuse(&mut self, commands: Vec<Command>, h: &mut Healing) {
        let err = PipelineError::Unavailable(Arc::new(StoreError::Failing {
            reason: h.reason.clone(),
        }));
        for cmd in commands {
            match cmd {
                Command::Ingest { reply, .. } => {
                    let _ = reply.send(Err(err.clone()));
                }
                Command::Op { reply, .. } => {
                    let _ = reply.send(Err(OpFailure::Pipeline(err.clone())));
                }
                Command::Override { reply, .. } => {
                    let _ = reply.send(Err(OverrideError::Pipeline(err.clone())));
                }
                Command::Silence { reply, .. } => {
                    let _ = reply.send(Err(SilenceError::Pipeline(err.clone())));
                }
                Command::Adopt { reply, .. } | Command::Release { reply, .. } => {
                    let _ = reply.send(Err(err.clone()));
                }
                Command::FlushChangelog { reply } => {
                    let _ = reply.send(Err(err.clone()));
                }
                Command::Heartbeat { reply, .. } => {
                    let _ = reply.send(Err(err.clone()));
                }
                // The live state may hold what was never committed until
                // the heal reloads it: no explanation from it meanwhile.
                Command::Explain { reply, .. } => {
                    let _ = reply.send(Err(err.clone()));
                }
                Command::Desk { reply, .. } => {
                    let _ = reply.send(Err(OpFailure::Pipeline(err.clone())));
                }
                Command::Rules { rules, reply } => {
                    // Not stored: the swap takes effect now and survives the reload.
                    if let Some(tx) = &self.rules_tx {
                        tx.send_replace(rules.clone());
                    }
                    self.engine.set_rules(rules);
                    let _ = reply.send(());
                }
                Command::ActionResult(r) => {
                    if h.held.len() < MAX_HELD_RESULTS {
                        h.held.push(r);
                    } else {
                        tracing::warn!(job = %r.job_key, "action result dropped while the store heals; the job runs again after a restart");
                    }
                }
                Command::Tick => {}
            }
        }
    }

    /// One retention pass when idle; answers when to run the next.
    fn retain(&mut self) -> Duration {
        let r = &self.retention;
        let policy = Retention {
            closed_incidents: r.closed_incidents,
            finished_jobs: r.finished_jobs,
            expired_silences: r.expired_silences,
            batch: r.batch,
        };
        match self.store.retention(Utc::now(), &policy) {
            Ok(d) => {
                for (kind, n) in [
                    ("incidents", d.incidents),
                    ("action_jobs", d.jobs),
                    ("silences", d.silences),
                ] {
                    self.metrics
                        .retention_deleted
                        .with_label_values(&[kind])
                        .inc_by(n);
                }
                if d.incidents + d.jobs + d.silences > 0 {
                    tracing::info!(
                        incidents = d.incidents,
                        action_jobs = d.jobs,
                        silences = d.silences,
                        "retention deleted what was past its time"
                    );
                }
                if d.more(r.batch) {
                    Duration::from_secs(1)
                } else {
                    r.interval
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention failed; it runs again later");
                r.interval
            }
        }
    }

    /// Runs a batch of commands, commits their changes, then answers; on a
    /// failed commit answers the error and returns its text.
    fn process(&mut self, commands: Vec<Command>) -> Result<(), String> {
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
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "store commit failed; answering 503, reopening the store and reloading state from it");
                self.metrics.store_commit_failures.inc();
                self.metrics.store_healthy.set(0);
                let reason = e.to_string();
                self.store.failed(reason.clone());
                self.engine.discard_changes();
                let err = PipelineError::Unavailable(Arc::new(e));
                for r in p.replies {
                    r.fail(&err);
                }
                Err(reason)
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
                if reply.is_closed() {
                    // The client left before its turn: never acknowledged,
                    // so not stored (its sender retries).
                    self.metrics
                        .requests_rejected
                        .with_label_values(&[source.as_str(), "client_gone"])
                        .inc();
                    return;
                }
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
                                // A major incident lives with the partition
                                // of the child that opened it.
                                if let Some(parent) = self.engine.parent_of(*k) {
                                    r.settle(parent, home, &mut p.homes);
                                }
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
            Command::Desk { key, op, by, reply } => {
                let store = &self.store;
                // A merge copies the source's stored timeline.
                let moved = match (&op, key) {
                    (crate::model::DeskOp::Merge(_), Some(k)) => match store.incident_full(k) {
                        Ok(Some((_, _, t))) => t,
                        Ok(None) => Vec::new(),
                        Err(e) => {
                            tracing::error!(incident = %k, error = %e, "cannot read the timeline to merge");
                            Vec::new()
                        }
                    },
                    _ => Vec::new(),
                };
                let r = self
                    .engine
                    .desk(key, op, &by, now, moved, |k| match store.load_live(k) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(incident = %k, error = %e, "cannot load incident");
                            None
                        }
                    });
                p.replies.push(Reply::Op(reply, Box::new(r)));
            }
            Command::Rules { rules, reply } => {
                start_rules_at_zero(&self.metrics, &rules);
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
            Command::Override { op, reply } => {
                let r = match op {
                    OverrideOp::Add(o) => self.engine.add_override(*o, now).map_err(Into::into),
                    OverrideOp::Remove { schedule, id } => self
                        .engine
                        .remove_override(&schedule, &id, now)
                        .ok_or(OverrideError::NotFound { schedule, id }),
                };
                p.replies.push(Reply::Override(reply, r));
            }
            Command::ActionResult(r) => {
                let store = &self.store;
                self.engine
                    .record_action_result(r, now, |k| store.load_live(k).ok().flatten());
            }
            Command::Heartbeat { name, reply } => {
                let known = self.engine.beat(&name, now);
                p.replies
                    .push(Reply::Heartbeat(reply, known.then_some(now)));
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
        if let Some(bus) = &self.events {
            bus.publish(&changes);
        }
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

    /// Rebuilds the engine from what is committed.
    fn reload_state(&mut self) -> Result<(), String> {
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
                        Err(e) => return Err(format!("cannot reload incident homes: {e}")),
                    }
                }
                Ok(())
            }
            Err(e) => Err(format!("cannot reload state from the store: {e}")),
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
    use crate::model::labels::labels;
    use crate::model::Alert;
    use crate::store::ListFilter;

    fn alert(name: &str) -> Alert {
        Alert::new(
            labels(&[("alertname", name), ("severity", "critical")]),
            Default::default(),
            None,
            None,
            None,
            String::new(),
            Source::Generic,
            None,
            Utc::now(),
        )
        .expect("labels")
    }

    fn start(dir: &std::path::Path) -> (Handle, JoinHandle<()>, Store, Arc<Metrics>) {
        let store = Store::open(dir).expect("store");
        let settings = Settings {
            close_after: Duration::from_secs(3600),
            id_slot: None,
        };
        let metrics = Arc::new(Metrics::new());
        let engine = Engine::new(
            Arc::new(RuleSet::builtin().expect("rules")),
            settings.clone(),
        );
        let (handle, join) = spawn(Writer {
            engine,
            dispatcher: None,
            rules_tx: None,
            store: store.clone(),
            metrics: metrics.clone(),
            settings: PipelineSettings::default(),
            engine_settings: settings,
            metrics_window: Duration::from_secs(3600),
            replication: None,
            retention: Default::default(),
            events: None,
        })
        .expect("writer");
        (handle, join, store, metrics)
    }

    #[tokio::test]
    async fn a_request_whose_client_left_before_its_turn_is_not_stored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (h, join, store, metrics) = start(dir.path());
        // The client is gone (its receiver dropped) before the writer
        // gets to the request.
        let (reply, rx) = oneshot::channel();
        drop(rx);
        h.tx.send(Command::Ingest {
            source: Source::Generic,
            alerts: vec![alert("Gone")],
            positions: Vec::new(),
            homes: Vec::new(),
            reply,
        })
        .await
        .expect("queued");
        let kept = h
            .ingest(Source::Generic, vec![alert("Kept")])
            .await
            .expect("stored");
        assert_eq!(kept.created.len(), 1);
        let listed = store
            .list(&ListFilter {
                limit: 10,
                ..ListFilter::default()
            })
            .expect("list");
        assert_eq!(
            listed
                .iter()
                .map(|i| i.title.clone())
                .collect::<Vec<_>>()
                .len(),
            1,
            "only the request someone waited for: {listed:?}"
        );
        assert!(listed[0].title.contains("Kept"), "{listed:?}");
        assert_eq!(
            metrics
                .requests_rejected
                .with_label_values(&["generic", "client_gone"])
                .get(),
            1
        );
        drop(h);
        join.join().expect("writer");
    }
}
