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
//!
//! The pipeline knows nothing of HTTP or Kafka: adapters call its
//! [`Handle`], and it calls out only through its [`ports`] (replication of
//! incident state, the action dispatcher). Layout: this file (the handle
//! and commands), [`writer`] (the writer thread), [`handover`] (adopting a
//! partition's incidents), [`ports`], [`reload`] (rule reloads), [`events`]
//! (the broadcast of committed changes behind the event stream).

pub mod admission;
pub mod events;
pub mod handover;
pub mod ports;
pub mod reload;
pub mod writer;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use crate::engine::{OpError, Outcome};
use crate::model::suppression::InvalidSilence;
use crate::model::{
    Alert, AttemptResult, DeskOp, Home, Incident, IncidentKey, KafkaPosition, Op, OpRequest,
    Silence, Source,
};
use crate::rules::RuleSet;
use crate::store::StoreError;

pub use admission::{Admission, Ticket};
pub use ports::{Adopted, Dispatch, Replication, Restore};
pub use reload::Reloader;
pub use writer::{spawn, Writer};

/// Why an ingest or lifecycle request was not acknowledged.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PipelineError {
    #[error("ingest queue is full; retry later")]
    Overloaded,
    #[error("storage failed, nothing from this request was stored: {0}")]
    Unavailable(#[source] Arc<StoreError>),
    #[error("shutting down")]
    ShuttingDown,
}

/// A lifecycle request's failure.
#[derive(Debug, Clone, thiserror::Error)]
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
    /// Heartbeat signals (they open no incident).
    #[serde(skip_serializing_if = "is_zero")]
    pub heartbeats: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl IngestSummary {
    pub(crate) fn from_outcomes(outcomes: &[Outcome]) -> IngestSummary {
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
                Outcome::Heartbeat => s.heartbeats += 1,
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
        positions: Vec<KafkaPosition>,
        /// Kafka: the partition of each run of alerts, in order (partition,
        /// number of alerts), for the changelog.
        homes: Vec<(Home, usize)>,
        reply: oneshot::Sender<Result<IngestSummary, PipelineError>>,
    },
    /// Incidents read from the changelog of a partition just assigned.
    Adopt {
        home: Home,
        restore: Restore,
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
    /// A service-desk request (open, merge, link, split, priority).
    Desk {
        key: Option<IncidentKey>,
        op: DeskOp,
        by: String,
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
    /// Add or remove a schedule override.
    Override {
        op: OverrideOp,
        reply: oneshot::Sender<Result<crate::model::Override, OverrideError>>,
    },
    ActionResult(AttemptResult),
    /// A heartbeat's ping: its time once durable, or `None` for an
    /// unknown heartbeat.
    Heartbeat {
        name: String,
        reply: oneshot::Sender<Result<Option<DateTime<Utc>>, PipelineError>>,
    },
    /// Explain alerts against the live state, changing nothing.
    Explain {
        alerts: Vec<Alert>,
        reply: oneshot::Sender<Result<crate::engine::explain::Report, PipelineError>>,
    },
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
        positions: Vec<KafkaPosition>,
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
        positions: Vec<KafkaPosition>,
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

/// Schedule override changes; they go through the writer too.
pub enum OverrideOp {
    Add(Box<crate::model::Override>),
    Remove { schedule: String, id: String },
}

/// Why an override change failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OverrideError {
    #[error(transparent)]
    Invalid(#[from] crate::model::InvalidOverride),
    #[error("no override {id} of schedule {schedule}")]
    NotFound { schedule: String, id: String },
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// Why a silence change failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SilenceError {
    #[error(transparent)]
    Invalid(#[from] InvalidSilence),
    #[error("no silence {0}")]
    NotFound(String),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

impl Command {
    pub(crate) fn weight(&self) -> usize {
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
    admission: Arc<Admission>,
}

/// A handle that does not keep the writer alive (for background tasks
/// such as the SIGHUP listener, which must not block shutdown).
#[derive(Clone)]
pub struct WeakHandle {
    tx: mpsc::WeakSender<Command>,
    admission: Arc<Admission>,
}

impl WeakHandle {
    pub fn upgrade(&self) -> Option<Handle> {
        self.tx.upgrade().map(|tx| Handle {
            tx,
            admission: self.admission.clone(),
        })
    }
}

impl Handle {
    pub fn downgrade(&self) -> WeakHandle {
        WeakHandle {
            tx: self.tx.downgrade(),
            admission: self.admission.clone(),
        }
    }

    /// Admits an ingest request's body before it is read (see [`admission`]).
    pub fn admit(&self, body_bytes: usize) -> Result<Ticket, PipelineError> {
        self.admission.admit(body_bytes)
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
    pub async fn adopt(&self, home: Home, restore: Restore) -> Result<usize, PipelineError> {
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

    /// Applies a service-desk request by `by` and waits until it is
    /// durable; answers the incident it is about (the new one for open
    /// and split, the target for merge).
    pub async fn desk(
        &self,
        key: Option<IncidentKey>,
        op: DeskOp,
        by: String,
    ) -> Result<Incident, OpFailure> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Desk { key, op, by, reply })
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

    /// Adds or removes a schedule override and waits until that is durable.
    pub async fn override_op(
        &self,
        op: OverrideOp,
    ) -> Result<crate::model::Override, OverrideError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Override { op, reply })
            .await
            .map_err(|_| PipelineError::ShuttingDown)?;
        rx.await.map_err(|_| PipelineError::ShuttingDown)?
    }

    /// A ping for heartbeat `name`; answers when it is durable (`None`: no
    /// heartbeat has that name).
    pub async fn heartbeat(&self, name: String) -> Result<Option<DateTime<Utc>>, PipelineError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Heartbeat { name, reply })
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

    /// Explains alerts against the live rules and state (silences, firing
    /// alerts, open incidents); nothing changes.
    pub async fn explain(
        &self,
        alerts: Vec<Alert>,
    ) -> Result<crate::engine::explain::Report, PipelineError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Explain { alerts, reply }).await?;
        rx.await.map_err(|_| PipelineError::ShuttingDown)?
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
