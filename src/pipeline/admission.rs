//! Admission: how much ingest work may wait for the writer, counted in
//! alerts and in request-body bytes rather than in requests.
//!
//! Contract: an HTTP ingest request takes a [`Ticket`] for its body's
//! declared length before the body is read, and adds its alerts once they
//! are parsed. Either would pass its bound (`pipeline.max_queued_bytes`,
//! `pipeline.max_queued_alerts`): the request is refused at once with
//! [`PipelineError::Overloaded`] (503 and `Retry-After`), so a small
//! request never waits behind more work than the writer clears in well
//! under a second, and memory held by waiting bodies stays bounded. The
//! ticket gives its share back when dropped: after the answer, or when the
//! client goes away. One request larger than a bound is still admitted
//! when nothing else waits, so a single maximal request always goes
//! through.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::PipelineError;

/// The shared counters.
#[derive(Debug)]
pub struct Admission {
    alerts: AtomicUsize,
    bytes: AtomicUsize,
    max_alerts: usize,
    max_bytes: usize,
}

/// A request's share of the bounds, given back on drop.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    alerts: usize,
    bytes: usize,
}

impl Admission {
    pub fn new(max_alerts: usize, max_bytes: usize) -> Arc<Admission> {
        Arc::new(Admission {
            alerts: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            max_alerts,
            max_bytes,
        })
    }

    /// Admits a body of `bytes`, or refuses it (see the module contract).
    pub fn admit(self: &Arc<Self>, bytes: usize) -> Result<Ticket, PipelineError> {
        take(&self.bytes, bytes, self.max_bytes)?;
        Ok(Ticket {
            admission: self.clone(),
            alerts: 0,
            bytes,
        })
    }

    /// Alerts and bytes currently admitted.
    pub fn queued(&self) -> (usize, usize) {
        (
            self.alerts.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// Adds `n` to `counter` unless that passes `max` while something else is
/// counted.
fn take(counter: &AtomicUsize, n: usize, max: usize) -> Result<(), PipelineError> {
    let mut current = counter.load(Ordering::Relaxed);
    loop {
        let next = current.saturating_add(n);
        if current > 0 && next > max {
            return Err(PipelineError::Overloaded);
        }
        match counter.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return Ok(()),
            Err(seen) => current = seen,
        }
    }
}

impl Ticket {
    /// Counts the request's parsed alerts, or refuses them.
    pub fn add_alerts(&mut self, n: usize) -> Result<(), PipelineError> {
        take(&self.admission.alerts, n, self.admission.max_alerts)?;
        self.alerts += n;
        Ok(())
    }

    /// The body turned out smaller than reserved (no `Content-Length`).
    pub fn shrink_bytes(&mut self, actual: usize) {
        if actual < self.bytes {
            self.admission
                .bytes
                .fetch_sub(self.bytes - actual, Ordering::AcqRel);
            self.bytes = actual;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission
            .alerts
            .fetch_sub(self.alerts, Ordering::AcqRel);
        self.admission.bytes.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_alerts_and_bytes_and_gives_back_on_drop() {
        let a = Admission::new(100, 1000);
        let mut t1 = a.admit(600).expect("first body");
        assert!(a.admit(500).is_err(), "600 + 500 bytes pass the bound");
        let t2 = a.admit(400).expect("600 + 400 fits");
        t1.add_alerts(80).expect("80 alerts");
        let mut t3 = a.admit(0).expect("no bytes");
        assert!(t3.add_alerts(30).is_err(), "80 + 30 alerts pass the bound");
        t3.add_alerts(20).expect("80 + 20 fits");
        assert_eq!(a.queued(), (100, 1000));
        drop(t1);
        drop(t2);
        drop(t3);
        assert_eq!(a.queued(), (0, 0));
        // One request beyond a bound goes through when nothing waits.
        let mut big = a.admit(5000).expect("alone");
        big.add_alerts(500).expect("alone");
        big.shrink_bytes(10);
        assert_eq!(a.queued(), (500, 10));
    }
}
