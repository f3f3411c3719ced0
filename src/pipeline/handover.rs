//! Adopting a partition's incidents when it is assigned here: the
//! changelog's copies against this instance's parked ones, the newer of
//! each winning (see [`Engine::adopt`](crate::engine::Engine::adopt)).

use std::collections::BTreeMap;

use super::ports::{Adopted, Restore};
use super::writer::Writer;
use crate::engine::{Adoption, Live};
use crate::model::{Home, IncidentKey};

/// Parked incidents an adoption deletes or replaces.
#[derive(Default)]
pub(super) struct Gone {
    pub(super) dropped: Vec<IncidentKey>,
    pub(super) replaced: Vec<IncidentKey>,
}

impl Writer {
    /// Takes a changelog partition's incidents in, against this instance's
    /// own copies: the newer of the two wins (see [`Engine::adopt`]).
    /// Parked copies (held at start) come back as they are when the
    /// changelog has nothing newer, or are deleted when the changelog says
    /// they closed. An id the store holds for another incident (two
    /// instances sharing a number) is skipped with a warning.
    pub(super) fn adopt(
        &mut self,
        home: &Home,
        restore: Restore,
        homes: &mut Vec<(IncidentKey, Option<Home>)>,
        gone: &mut Gone,
    ) -> usize {
        let Some(c) = &mut self.replication else {
            return 0;
        };
        let mut from_log: BTreeMap<IncidentKey, Adopted> = restore
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
                alerts: alerts
                    .into_iter()
                    .map(|a| (a.alert.fingerprint, Box::new(a)))
                    .collect(),
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
}
