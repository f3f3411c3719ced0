//! The pipeline's ports: what it calls out to, as small traits that the
//! adapters implement without the pipeline knowing them.
//!
//! - [`Replication`]: incident state written for other instances, so a
//!   partition's incidents can move with it. The Kafka changelog
//!   implements it.
//! - [`Dispatch`]: committed action jobs handed to the executor. The
//!   action executor implements it.

use crate::engine::{Engine, Live};
use crate::model::{Home, IncidentKey, Job, TimelineEntry};
use crate::store::{Batch, Store};

/// An incident adopted from another instance: its state and timeline.
pub type Adopted = (Live, Vec<(u32, TimelineEntry)>);

/// What a partition's replicated state holds: its live incidents, and the
/// incidents its last owner closed.
#[derive(Debug, Default)]
pub struct Restore {
    pub incidents: Vec<Adopted>,
    pub closed: Vec<IncidentKey>,
}

/// Incident state replicated for other instances. Every call comes from
/// the writer thread, in commit order.
pub trait Replication: Send {
    /// Gives an incident its partition (if it has none yet); the batch
    /// stores it through `homes`.
    fn settle(
        &mut self,
        key: IncidentKey,
        home: &Home,
        homes: &mut Vec<(IncidentKey, Option<Home>)>,
    );

    /// The incidents this instance parked for a partition just assigned.
    fn unpark(&mut self, home: &Home) -> Vec<IncidentKey>;

    /// Every parked incident (kept out of memory).
    fn parked(&self) -> Vec<IncidentKey>;

    /// The live incidents that belong to one of `homes`.
    fn incidents_of(&self, homes: &[Home]) -> Vec<IncidentKey>;

    /// Before the commit: closed and handed-over incidents lose their home.
    fn prepare(&mut self, batch: &mut Batch);

    /// After the commit: replicates what it wrote.
    fn committed(&mut self, batch: &Batch);

    /// Replicates what waits: failed records again, and the repeat-only
    /// changes when their interval has passed.
    fn produce_pending(&mut self, engine: &Engine, store: &Store);

    /// The live state was reloaded from the store: start over from its
    /// homes (`live`: the incidents now in memory; the others stay parked).
    fn reset(&mut self, homes: Vec<(IncidentKey, Home)>, live: &dyn Fn(IncidentKey) -> bool);
}

/// Where committed action jobs go.
pub trait Dispatch: Send {
    /// Queues a job; `false` if the queue is full (the job stays pending in
    /// the store and runs after the next restart).
    fn dispatch(&self, job: Job) -> bool;
}
