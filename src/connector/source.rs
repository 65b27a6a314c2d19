//! What a source connector's operators are built with.

use crate::checkpoint::{Epochs, Restore};
use crate::plan::Compiled;
use crate::runtime::{Failure, Metrics, RunControl};
use crate::state::TaskState;
use std::sync::Arc;

/// What every source operator of a run needs: the compiled plan, the state store, where the run
/// resumes, the process's metrics, the stop request and the failure slot.
#[derive(Clone)]
pub struct SourceCtx {
    /// The compiled plan.
    pub plan: Arc<Compiled>,
    /// The task's state.
    pub state: TaskState,
    /// Where the run resumes.
    pub restore: Restore,
    /// The process's counters.
    pub metrics: Arc<Metrics>,
    /// The stop request.
    pub control: RunControl,
    /// The run's failure slot.
    pub failure: Failure,
}

impl SourceCtx {
    /// The epochs of `worker`'s partitions (checkpoint protocol: boundary records, replays,
    /// savepoint stops).
    pub fn epochs(&self, worker: usize, peers: usize) -> Epochs {
        Epochs::new(self.state.clone(), &self.restore, worker, peers, self.control.clone())
    }
}
