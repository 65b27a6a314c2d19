//! The engine: compiles a checked plan into one timely dataflow per worker and runs it.
//!
//! ```text
//!  source (datagen partitions p ≡ worker mod peers)        epochs close every checkpoint
//!    │  Change stamped with the open epoch                   interval, at transaction
//!    ▼                                                       boundaries; the boundary is
//!  transform (same worker: op filter, key split,             recorded before the epoch closes
//!    │        row filter, projection, metadata)
//!    ▼  exchange by hash(table, key)
//!  sink (writer per worker; commit(e) once the input frontier passed e)
//!    │  holds a capability per uncommitted epoch
//!    ▼
//!  probe ──► coordinator (worker 0): frontier passed e ⇒ write manifest e
//! ```
//!
//! Worker 0 is the coordinator: it watches the probe after the sinks and writes the checkpoint
//! manifest of every epoch the frontier passes (see [`crate::checkpoint`]). The run ends when
//! every source is exhausted and its last epoch is committed, or at a savepoint stop.
//!
//! - [`task`]: the task's lifecycle (start, restarts with backoff, stop, status).
//! - [`cluster`]: a cluster's connections, its run identity, losing and regaining a peer.
//! - `run`: one run: preparation, the dataflow on every worker, the worker loop.
//! - `replay`: `ferry dirty replay`.

pub mod cluster;
pub(crate) mod dataflow;
mod replay;
mod run;
mod task;

pub use replay::{replay_dirty, ReplaySummary};
pub use task::{run, MetricsFile, Stopper, Task, TaskHandle};

use crate::plan::config::Semantics;
use crate::plan::Compiled;
use crate::runtime::TaskError;
use crate::state::{StateError, TaskState};
use crate::store::Store;
use std::time::Duration;

/// How to run: workers and cluster shape, restore policy, terminal output.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Worker threads in this process (overrides the plan's `runtime.workers` when set).
    pub workers: Option<usize>,
    /// Addresses (`host:port`) of every process of a cluster, in process order; empty: one process.
    pub hosts: Vec<String>,
    /// This process's index in `hosts`.
    pub process: usize,
    /// Discard the task's state (and the files target's output) before starting.
    pub from_scratch: bool,
    /// Print the live progress line.
    pub progress: bool,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// Changes read from the source by this process.
    pub rows_in: u64,
    /// Changes written to the target by this process.
    pub rows_out: u64,
    /// Rows sent to the dirty-data archive by this process.
    pub dirty: u64,
    /// The last committed epoch.
    pub epoch: u64,
    /// Whether the sources were exhausted (bounded run finished).
    pub finished: bool,
    /// Where the output is.
    pub output: String,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Per target table (`db.table`) rows written by this process.
    pub tables: Vec<(String, u64)>,
}

/// Engine errors: everything that stops a run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The restore point cannot be used as asked.
    #[error("{0}")]
    Restore(String),
    /// The source cannot be read.
    #[error("source: {0}")]
    Source(String),
    /// timely could not start its workers.
    #[error("cannot start the workers: {0}")]
    Start(String),
    /// The cluster could not form, or lost a process (see [`cluster::ClusterError`]).
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    /// The run failed: transient (the task restarts) or definite (it stops).
    #[error(transparent)]
    Run(#[from] TaskError),
    /// The target cannot be written (at the start of a run).
    #[error("target: {0}")]
    Target(String),
    /// The dirty-data archive's location cannot be read at the start of a run (no such bucket,
    /// bad credentials, unreachable endpoint).
    #[error("the dirty-data archive at {location} cannot be used ({reason}): check errors.dirty_archive and the plan's s3 section")]
    Archive {
        /// The location (`errors.dirty_archive`).
        location: String,
        /// The store's error.
        reason: String,
    },
    /// The state store cannot be used (a bucket that does not exist, bad credentials, an
    /// unreachable endpoint).
    #[error("the state store at {location} cannot be used ({reason}): check runtime.state and the plan's s3 section")]
    StateStore {
        /// The location (`runtime.state`).
        location: String,
        /// The store's error.
        reason: String,
    },
    /// The run failed more often than `errors.max_restarts` allows.
    #[error("the task failed after {restarts} restarts (errors.max_restarts); last error: {last}")]
    Failed {
        /// Restarts made.
        restarts: u32,
        /// The last error.
        last: String,
    },
}

/// Column renames per selected table, and per table the columns it still lacks after drops,
/// from the schema changes the target took in earlier runs.
type DdlHistory = (std::collections::HashMap<ferry_operators::TableId, Vec<(String, String)>>, Vec<Vec<String>>);

/// The schema changes the target took in earlier runs, as the writers and the transform
/// need them.
pub(crate) fn ddl_history(state: &TaskState, compiled: &Compiled) -> Result<DdlHistory, EngineError> {
    let applied = state.ddl_applied()?;
    let mut renames = std::collections::HashMap::new();
    let mut dropped = Vec::new();
    for t in 0..compiled.catalog.tables.len() {
        let name = compiled.catalog.get(t as _).name.to_string();
        let r = applied.renames(&name);
        if !r.is_empty() {
            renames.insert(t as ferry_operators::TableId, r);
        }
        // Only at-least-once rewrites rows of epochs before a DDL that ran (exactly-once
        // skips them), so only there must replayed rows not bring a dropped column back.
        let replays_rows = compiled.plan.settings.semantics == Semantics::AtLeastOnce;
        let follows = compiled.plan.settings.schema_changes.follows_drops();
        dropped.push(if replays_rows && follows { applied.dropped(&name) } else { Vec::new() });
    }
    Ok((renames, dropped))
}

/// Where the task's dirty-data archive is kept (F9.3): `errors.dirty_archive` (a local
/// directory or `s3://bucket/prefix`), by default the state store; the archive's objects are
/// under `<task>/dirty/` there, replayed ones under `<task>/dirty-replayed/`.
pub fn dirty_archive(settings: &crate::plan::Settings, state: &TaskState) -> Result<TaskState, EngineError> {
    let Some(location) = &settings.errors.dirty_archive else {
        return Ok(state.clone());
    };
    let store = Store::open(location, &settings.s3).map_err(|e| EngineError::Archive {
        location: location.clone(),
        reason: crate::secrets::redact(&e.to_string()),
    })?;
    Ok(TaskState::new(store, &settings.task))
}

/// The archive's files, oldest first: `<task>/dirty/*.jsonl` (other objects, such as the
/// "folder" markers some S3 tools create, are not archive files).
pub fn archive_files(archive: &TaskState) -> Result<Vec<String>, EngineError> {
    let mut files = archive.store().list(&archive.path("dirty"))?;
    files.retain(|f| f.ends_with(".jsonl"));
    Ok(files)
}

/// Opens the task's state and lists it once, so a state store that cannot be used stops the
/// task at once with an error naming the setting (not after its restarts).
pub(crate) fn open_state(settings: &crate::plan::Settings) -> Result<TaskState, EngineError> {
    let bad = |e: &dyn std::fmt::Display| EngineError::StateStore {
        location: crate::secrets::redact(&settings.runtime.state),
        reason: crate::secrets::redact(&e.to_string()),
    };
    let state = TaskState::new(settings.state_store().map_err(|e| bad(&e))?, &settings.task);
    state.store().list(&state.path("checkpoints")).map_err(|e| bad(&e))?;
    Ok(state)
}

/// Lists the dirty-data archive's location once before a task runs, so a bucket that does not
/// exist or refuses the credentials stops the task at once (not after its restarts); nothing
/// to check when the archive is the state store or dirty rows are dropped.
pub(crate) fn probe_dirty_archive(settings: &crate::plan::Settings, state: &TaskState) -> Result<(), EngineError> {
    let (Some(location), crate::plan::config::DirtyMode::Archive) =
        (&settings.errors.dirty_archive, settings.errors.dirty)
    else {
        return Ok(());
    };
    let archive = dirty_archive(settings, state)?;
    archive.store().list(&archive.path("dirty")).map_err(|e| EngineError::Archive {
        location: location.clone(),
        reason: crate::secrets::redact(&e.to_string()),
    })?;
    Ok(())
}
