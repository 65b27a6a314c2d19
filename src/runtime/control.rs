//! Stopping a running task from outside (`ferry run` on SIGTERM or Ctrl-C, the task handle).
//!
//! - [`StopMode::Savepoint`]: every source closes its open epoch at its next transaction
//!   boundary, records it, and ends instead of opening the next one; the sinks commit
//!   everything up to there and the coordinator writes a manifest marked as a savepoint. The
//!   next run resumes from it: no gap, no duplicate.
//! - [`StopMode::Cancel`]: the workers drop the dataflow now; the next run resumes from the last
//!   checkpoint (replaying the recorded epochs after it, so exactly-once still holds).

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

/// How to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// At the next epoch boundary, with everything up to it committed.
    Savepoint,
    /// Now; the next run resumes from the last checkpoint.
    Cancel,
}

/// The stop request of one process's run, read by sources and the worker loop.
#[derive(Debug, Clone, Default)]
pub struct RunControl {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// 0: run; 1: savepoint; 2: cancel.
    stop: AtomicU8,
    /// A source ended because of a savepoint request (not because it was exhausted).
    stopped_early: AtomicBool,
}

impl RunControl {
    /// Asks the run to stop; a cancel overrides a savepoint asked before it.
    pub fn request(&self, mode: StopMode) {
        let v = match mode {
            StopMode::Savepoint => 1,
            StopMode::Cancel => 2,
        };
        self.inner.stop.fetch_max(v, Ordering::SeqCst);
    }

    /// The stop asked for, if any.
    pub fn requested(&self) -> Option<StopMode> {
        match self.inner.stop.load(Ordering::SeqCst) {
            0 => None,
            1 => Some(StopMode::Savepoint),
            _ => Some(StopMode::Cancel),
        }
    }

    /// Whether sources must end at their next epoch boundary.
    pub fn stopping(&self) -> bool {
        self.requested().is_some()
    }

    /// Whether the workers must drop the dataflow now.
    pub fn cancelled(&self) -> bool {
        self.requested() == Some(StopMode::Cancel)
    }

    /// A source calls this when it ends for a stop request: the run then ends as a savepoint,
    /// not as finished.
    pub fn mark_stopped_early(&self) {
        self.inner.stopped_early.store(true, Ordering::SeqCst);
    }

    /// Whether a source ended for a stop request.
    pub fn stopped_early(&self) -> bool {
        self.inner.stopped_early.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_overrides_savepoint_and_not_the_other_way() {
        let c = RunControl::default();
        assert_eq!(c.requested(), None);
        c.request(StopMode::Savepoint);
        assert!(c.stopping() && !c.cancelled());
        c.request(StopMode::Cancel);
        c.request(StopMode::Savepoint);
        assert!(c.cancelled());
    }
}
