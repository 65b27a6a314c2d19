//! The task's state in the state store: epoch boundary records, checkpoint manifests and sink
//! progress. Layout under `<state root>/<task>/`:
//!
//! ```text
//! plan.yaml                              the plan as written (secrets as ${env:NAME})
//! epochs/<epoch>/src-<worker>.json       a source worker's offsets at the end of an epoch
//! checkpoints/<epoch>.json               manifest: every source offset once <epoch> is committed
//! sinks/<sink>/w<worker>.json            the last epoch a sink worker committed (exactly-once)
//! dirty/<run>-w<worker>-<n>.jsonl        rows that could not be transformed or written
//! dirty-replayed/...                     archive files `ferry dirty replay` has re-applied
//! stopped/<db.table>.json                tables stopped by `write_error: partial-stop`
//! ddl/applied.json                       schema changes a database target took (policy auto)
//! source/chunks.json, source/start.json  MySQL: the snapshot's chunk plan, the binlog start
//! source/new-tables.json                 new tables a run ended for (CREATE TABLE, policy auto)
//! catalog/create-failed.json             tables `ferry create-tables` failed to create
//! status.json                            the run's state (running, restarting, stopping, stopped,
//!                                        finished, failed), its committed epoch and position
//! status.<p>.json                        the same, of cluster process p ≥ 1 (process 0 writes
//!                                        status.json), with the peers it waits for
//! ```
//!
//! Protocol (see ARCHITECTURE.md): a source writes its boundary record *before* it lets the
//! epoch close, so once the frontier has passed an epoch its boundaries are durable. A restart
//! resumes from the newest manifest and replays later epochs with their recorded boundaries, so
//! a replayed epoch holds exactly the changes it held before the crash, and an exactly-once sink
//! can skip the epochs it already committed.

use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Offsets of source partitions, by partition number: each source decides what its offset is
/// (datagen: changes emitted, a number; a snapshot chunk: done and its binlog position; the
/// binlog: file, position and GTID), as JSON so the state store stays readable.
pub type Offsets = BTreeMap<u32, serde_json::Value>;

/// A source worker's position at the end of one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Boundary {
    /// The epoch that ends here.
    pub epoch: u64,
    /// The source worker.
    pub worker: usize,
    /// Number of workers of the run that wrote it.
    pub peers: usize,
    /// Offsets of the worker's partitions at the end of the epoch.
    pub offsets: Offsets,
    /// The worker's partitions were all exhausted at this point.
    pub done: bool,
}

/// A checkpoint manifest: every change up to and including `epoch` is durably in the target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The committed epoch.
    pub epoch: u64,
    /// Workers of the run that wrote it.
    pub peers: usize,
    /// Every source partition's offset after `epoch`.
    pub offsets: Offsets,
    /// Schema version of every table, by `db.table`.
    pub schema_versions: BTreeMap<String, u32>,
    /// All sources were exhausted (bounded run finished).
    pub finished: bool,
    /// The run ended here on a savepoint stop: the next run resumes from this manifest.
    #[serde(default)]
    pub savepoint: bool,
    /// Wall-clock time the manifest was written, microseconds since the epoch.
    pub written_micros: i64,
}

/// Where a task's run is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Reading and writing.
    #[default]
    Running,
    /// Failed; starts again from its last checkpoint after a backoff.
    Restarting,
    /// A stop was asked: closing at the next epoch boundary.
    Stopping,
    /// Stopped on request; the next run resumes from `epoch`.
    Stopped,
    /// A bounded source was read to its end and everything committed.
    Finished,
    /// Ended by an error a restart cannot fix, or past `errors.max_restarts`.
    Failed,
}

impl RunState {
    /// The state's name as `status.json` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Restarting => "restarting",
            RunState::Stopping => "stopping",
            RunState::Stopped => "stopped",
            RunState::Finished => "finished",
            RunState::Failed => "failed",
        }
    }
}

/// The state of a task's run, as `ferry` last wrote it (`<task>/status.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStatus {
    /// Where the run is.
    pub state: RunState,
    /// Restarts in this run so far.
    pub restarts: u32,
    /// The error that caused the last restart or the failure (secrets masked).
    pub last_error: Option<String>,
    /// When this was written, microseconds since the Unix epoch.
    pub updated_micros: i64,
    /// The newest committed epoch (the checkpoint a next run resumes after).
    #[serde(default)]
    pub epoch: u64,
    /// The source position at that epoch: every partition's offset, as in its manifest.
    #[serde(default)]
    pub position: Offsets,
    /// A cluster's process: this process's index and the peers it waits for (none for a
    /// single-process run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStatus>,
}

/// Where a cluster process is in forming the cluster with its peers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// This process's index (its line in the hostfile, from 0).
    pub process: usize,
    /// The peers it waits for, as `<index> (<host:port>)`; empty once the cluster is formed.
    pub waiting_for: Vec<String>,
    /// Since when it waits, microseconds since the Unix epoch (0 when it does not).
    pub waiting_since_micros: i64,
}

/// The status object of process `process` under the task's folder.
fn status_file(process: usize) -> String {
    if process == 0 {
        "status.json".into()
    } else {
        format!("status.{process}.json")
    }
}

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The store failed (transient: retry or restart).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A state object is not what this build writes.
    #[error("state object {path} is unreadable ({source}); run with --from-scratch to discard the task's state")]
    Corrupt {
        /// The object.
        path: String,
        /// The parse error.
        source: serde_json::Error,
    },
}

/// One task's state.
#[derive(Clone, Debug)]
pub struct TaskState {
    store: Store,
    task: String,
}

/// The epoch of a boundary record's path (`.../epochs/<epoch>/src-<worker>.json`).
fn epoch_of(path: &str) -> Option<u64> {
    path.rsplit('/').nth(1).and_then(|e| e.parse().ok())
}

fn epoch_key(e: u64) -> String {
    format!("{e:020}")
}

impl TaskState {
    /// The state of `task` in `store`.
    pub fn new(store: Store, task: &str) -> Self {
        TaskState { store, task: task.to_string() }
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Path of an object of this task.
    pub fn path(&self, rest: &str) -> String {
        format!("{}/{rest}", self.task)
    }

    fn read<T: for<'de> Deserialize<'de>>(&self, path: &str) -> Result<Option<T>, StateError> {
        match self.store.get(path)? {
            None => Ok(None),
            Some(b) => {
                serde_json::from_slice(&b).map(Some).map_err(|source| StateError::Corrupt { path: path.into(), source })
            }
        }
    }

    fn write<T: Serialize>(&self, path: &str, v: &T) -> Result<(), StateError> {
        let bytes = serde_json::to_vec_pretty(v).expect("state serializes");
        Ok(self.store.put(path, bytes)?)
    }

    /// The source tables whose target table `ferry create-tables` failed to create last time.
    pub fn create_failures(&self) -> Result<Vec<String>, StateError> {
        Ok(self.read(&self.path("catalog/create-failed.json"))?.unwrap_or_default())
    }

    /// Records the source tables whose target table failed to be created (empty: none).
    pub fn write_create_failures(&self, tables: &[String]) -> Result<(), StateError> {
        self.write(&self.path("catalog/create-failed.json"), &tables)
    }

    /// The schema changes a database target has taken (`schema_changes` policy `auto`), in
    /// order: a replayed epoch's change is not applied twice, and renames stay known after a
    /// restart.
    pub fn ddl_applied(&self) -> Result<AppliedDdl, StateError> {
        Ok(self.read(&self.path("ddl/applied.json"))?.unwrap_or_default())
    }

    /// Records the schema changes a database target has taken.
    pub fn write_ddl_applied(&self, applied: &AppliedDdl) -> Result<(), StateError> {
        self.write(&self.path("ddl/applied.json"), applied)
    }

    /// The new source tables a run ended for (policy `auto` for `CREATE TABLE`), if any.
    pub fn new_tables(&self) -> Result<Option<NewTables>, StateError> {
        self.read(&self.path("source/new-tables.json"))
    }

    /// Records the new source tables a run ends for.
    pub fn write_new_tables(&self, rec: &NewTables) -> Result<(), StateError> {
        self.write(&self.path("source/new-tables.json"), rec)
    }

    /// Deletes all of the task's state.
    pub fn discard(&self) -> Result<usize, StateError> {
        Ok(self.store.delete_prefix(&self.task)?)
    }

    /// Saves the plan text as written.
    pub fn save_plan(&self, text: &str) -> Result<(), StateError> {
        Ok(self.store.put(&self.path("plan.yaml"), text.to_string())?)
    }

    /// Records a source worker's boundary.
    pub fn write_boundary(&self, b: &Boundary) -> Result<(), StateError> {
        self.write(&self.path(&format!("epochs/{}/src-{:04}.json", epoch_key(b.epoch), b.worker)), b)
    }

    /// All boundary records after `after`, in epoch order.
    pub fn boundaries_after(&self, after: u64) -> Result<Vec<Boundary>, StateError> {
        let mut out = Vec::new();
        for p in self.store.list(&self.path("epochs"))? {
            if epoch_of(&p).is_some_and(|e| e > after) {
                if let Some(b) = self.read::<Boundary>(&p)? {
                    out.push(b);
                }
            }
        }
        out.sort_by_key(|b| (b.epoch, b.worker));
        Ok(out)
    }

    /// Removes boundary records up to and including `upto`.
    pub fn drop_boundaries_upto(&self, upto: u64) -> Result<(), StateError> {
        for p in self.store.list(&self.path("epochs"))? {
            if epoch_of(&p).is_some_and(|e| e <= upto) {
                self.store.delete(&p)?;
            }
        }
        Ok(())
    }

    /// The newest manifest, if any.
    pub fn latest_manifest(&self) -> Result<Option<Manifest>, StateError> {
        let all = self.store.list(&self.path("checkpoints"))?;
        match all.last() {
            Some(p) => self.read(p),
            None => Ok(None),
        }
    }

    /// Writes a manifest and keeps only the newest three.
    pub fn write_manifest(&self, m: &Manifest) -> Result<(), StateError> {
        self.write(&self.path(&format!("checkpoints/{}.json", epoch_key(m.epoch))), m)?;
        let all = self.store.list(&self.path("checkpoints"))?;
        for old in all.iter().rev().skip(3) {
            self.store.delete(old)?;
        }
        Ok(())
    }

    /// Records the run's state (`status.json`; a cluster process p ≥ 1 writes `status.<p>.json`).
    pub fn write_status(&self, status: &RunStatus) -> Result<(), StateError> {
        let process = status.cluster.as_ref().map_or(0, |c| c.process);
        self.write(&self.path(&status_file(process)), status)
    }

    /// The state of cluster process `process` (≥ 1) as last recorded.
    pub fn process_status(&self, process: usize) -> Result<Option<RunStatus>, StateError> {
        self.read(&self.path(&status_file(process)))
    }

    /// The run's state as last recorded.
    pub fn status(&self) -> Result<Option<RunStatus>, StateError> {
        self.read(&self.path("status.json"))
    }

    /// The last epoch a sink worker committed (0: none).
    pub fn sink_progress(&self, sink: &str, worker: usize) -> Result<u64, StateError> {
        #[derive(Deserialize)]
        struct P {
            epoch: u64,
        }
        Ok(self.read::<P>(&self.path(&format!("sinks/{sink}/w{worker:04}.json")))?.map_or(0, |p| p.epoch))
    }

    /// Records that a sink worker committed `epoch`.
    pub fn write_sink_progress(&self, sink: &str, worker: usize, epoch: u64) -> Result<(), StateError> {
        self.write(&self.path(&format!("sinks/{sink}/w{worker:04}.json")), &serde_json::json!({ "epoch": epoch }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_manifests_and_progress_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let st = TaskState::new(Store::open_local(dir.path().to_str().unwrap()).unwrap(), "t");
        for e in 1..=4 {
            st.write_boundary(&Boundary {
                epoch: e,
                worker: 0,
                peers: 1,
                offsets: [(0, serde_json::json!(e * 10))].into(),
                done: false,
            })
            .unwrap();
        }
        assert_eq!(st.boundaries_after(2).unwrap().iter().map(|b| b.epoch).collect::<Vec<_>>(), vec![3, 4]);
        st.drop_boundaries_upto(3).unwrap();
        assert_eq!(st.boundaries_after(0).unwrap().len(), 1);
        assert!(st.latest_manifest().unwrap().is_none());
        for e in 1..=5 {
            st.write_manifest(&Manifest { epoch: e, peers: 1, ..Default::default() }).unwrap();
        }
        assert_eq!(st.latest_manifest().unwrap().unwrap().epoch, 5);
        assert_eq!(st.store().list(&st.path("checkpoints")).unwrap().len(), 3);
        assert_eq!(st.sink_progress("files", 1).unwrap(), 0);
        st.write_sink_progress("files", 1, 9).unwrap();
        assert_eq!(st.sink_progress("files", 1).unwrap(), 9);
    }
}

/// The schema changes a database target has taken, oldest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppliedDdl {
    /// The last epoch whose schema changes were all applied (0: none).
    pub epoch: u64,
    /// Every applied change.
    pub changes: Vec<AppliedChange>,
}

/// One schema change a database target has taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppliedChange {
    /// The epoch the change ended.
    pub epoch: u64,
    /// The source table, `db.table`.
    pub table: String,
    /// What changed.
    pub change: ferry_operators::SchemaChangeKind,
    /// The statements run on the target (none: it had the change already).
    pub statements: Vec<String>,
}

impl AppliedDdl {
    /// The columns of `table` (`db.table`) dropped and not added again, in order.
    pub fn dropped(&self, table: &str) -> Vec<String> {
        use ferry_operators::SchemaChangeKind as K;
        let mut out: Vec<String> = Vec::new();
        for c in self.changes.iter().filter(|c| c.table == table) {
            match &c.change {
                K::DropColumn { column } => out.push(column.clone()),
                K::AddColumn { column, .. } => out.retain(|d| !d.eq_ignore_ascii_case(column)),
                _ => {}
            }
        }
        out
    }

    /// The column renames applied to `table` (`db.table`), in order: `(from, to)`.
    pub fn renames(&self, table: &str) -> Vec<(String, String)> {
        self.changes
            .iter()
            .filter(|c| c.table == table)
            .filter_map(|c| match &c.change {
                ferry_operators::SchemaChangeKind::RenameColumn { from, to } => Some((from.clone(), to.clone())),
                _ => None,
            })
            .collect()
    }
}

/// The new source tables a run ended for: the run's last epoch ends at their `CREATE TABLE`,
/// and the next one starts with them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NewTables {
    /// The epoch the statement ended.
    pub epoch: u64,
    /// The tables, `db.table`.
    pub tables: Vec<String>,
}
