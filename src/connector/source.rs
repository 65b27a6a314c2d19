//! What a source connector's operators are built with.

use crate::checkpoint::{Epochs, Restore};
use crate::plan::Compiled;
use crate::runtime::{DirtyArchive, Failure, Metrics, RunControl, TaskError};
use crate::state::TaskState;
use ferry_operators::SchemaChangeKind;
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
    /// The worker's dirty archive: what a source cannot read as a change (a Kafka message
    /// that is not JSON) is kept here with its place and the reason.
    pub dirty: DirtyArchive,
    /// The last epoch this worker's sink writer committed before the run: it skips the
    /// replayed epochs up to it ([`crate::connector::SinkWriter::committed`]; 0 when none, and
    /// in at-least-once runs).
    pub sink_skips_upto: u64,
}

impl SourceCtx {
    /// The epochs of `worker`'s partitions (checkpoint protocol: boundary records, replays,
    /// savepoint stops).
    pub fn epochs(&self, worker: usize, peers: usize) -> Epochs {
        Epochs::new(self.state.clone(), &self.restore, worker, peers, self.control.clone())
    }
}

/// A new table the selection takes (a `CREATE TABLE`, or one that appeared in the source's
/// catalog), seen in `epoch`, by the plan's policy: `true`
/// when the run must end with this epoch to start again with the table (`auto`: recorded in
/// the state store first, so every process sees why the run ended); `log` warns, `ignore`
/// does nothing, `error` fails the run.
pub fn new_table(
    plan: &Compiled,
    state: &TaskState,
    epoch: u64,
    name: &str,
    statement: &str,
) -> Result<bool, TaskError> {
    use crate::plan::config::DdlPolicy;
    match plan.plan.settings.schema_changes.policy_for(&SchemaChangeKind::CreateTable) {
        DdlPolicy::Auto => {
            tracing::info!(
                table = name,
                epoch,
                "a new table matches the selection: the run ends here and starts again with it"
            );
            let mut rec = state.new_tables().ok().flatten().filter(|r| r.epoch == epoch).unwrap_or_default();
            rec.epoch = epoch;
            rec.tables.push(name.to_string());
            state
                .write_new_tables(&rec)
                .map_err(|e| TaskError::transient(format!("cannot record the new table {name}: {e}")))?;
            Ok(true)
        }
        DdlPolicy::Ignore => Ok(false),
        DdlPolicy::Log => {
            tracing::warn!(
                table = name,
                statement,
                "a new table matches the selection and is not copied (schema_changes policy: log)"
            );
            Ok(false)
        }
        DdlPolicy::Error => Err(TaskError::definite(format!(
            "new table {name} refused by the schema_changes policy `error`: {statement}"
        ))),
    }
}
