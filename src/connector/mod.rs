//! The connector seam: what the engine asks of a source and of a sink, and nothing else. Every
//! connector is one folder under `crate::connectors` implementing these traits, plus one line in
//! its registry.
//!
//! ```text
//!  plan section ──SourceConnector::parse──► SourceConfig ──discover──► catalog
//!        (plan::load, via the registry)          │
//!                                                ▼ process 0 … N, before the workers
//!                                     SourceConnector::prepare ──► PreparedSource
//!                                                                    │ every worker
//!                                                                    ▼
//!                                     PreparedSource::build(scope, SourceCtx) ──► changes, schema events
//!                                                                    (epochs closed through checkpoint::Epochs)
//!
//!  plan section ──SinkConnector::parse──► TargetConfig
//!                     SinkConnector::prepare (process 0: reachability, progress table, tables)
//!                                   ──► PreparedSink (tables still being created beside the load)
//!                     SinkConnector::writer  (every worker: a SinkWriter, commits per epoch)
//!                     SinkConnector::schema_applier (worker 0, targets that take DDL)
//!                     SinkConnector::admin   (create-tables, preview: a TableAdmin)
//!
//!  ferry verify:      SourceConnector::verify_reader / SinkConnector::verify_reader → TableReader
//! ```

pub mod digest;
pub mod sink;
pub mod snapshot;
pub mod source;
pub mod verify;

pub use sink::{target_names, SinkError, SinkWriter, StopRecord, TableStops};
pub use source::SourceCtx;

use crate::catalog::create::{Creating, TableAdmin};
use crate::plan::config::{Semantics, WriteErrorPolicy};
use crate::plan::{Compiled, Section, SourceConfig, TargetConfig};
use crate::runtime::{DirtyArchive, Metrics, TaskError};
use crate::state::TaskState;
use ferry_operators::{Change, SchemaEvent, TableId};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::Arc;
use timely::dataflow::{Scope, StreamVec};

/// A source connector: one per source type family (`mysql`/`mariadb`, `datagen`).
pub trait SourceConnector: Sync {
    /// The `source.type` values it serves.
    fn types(&self) -> &'static [&'static str];
    /// Parses and validates its plan section (errors located through `at`).
    fn parse(&self, kind: &str, section: &Json, at: &mut Section<'_, '_>) -> Option<Arc<dyn SourceConfig>>;
    /// Prepares a run, on every process before the workers start: what every worker's
    /// operators are then built from (MySQL: the snapshot's chunk plan, made once by process 0
    /// and kept in the state store; the start position).
    fn prepare(&self, cx: &SourcePrepare<'_>) -> Result<Arc<dyn PreparedSource>, TaskError>;
    /// A session that reads the source's tables for `ferry verify`; an error when this source
    /// cannot be read for it (the message says why).
    fn verify_reader(&self, plan: &Compiled) -> Result<Box<dyn verify::TableReader>, String> {
        let _ = plan;
        Err(format!("`ferry verify` does not read a `{}` source", self.types()[0]))
    }
}

/// What a source's preparation sees.
pub struct SourcePrepare<'a> {
    /// The compiled plan (its source section is this connector's).
    pub plan: &'a Compiled,
    /// The task's state.
    pub state: &'a TaskState,
    /// This process's index in a cluster.
    pub process: usize,
    /// This process's workers.
    pub workers: usize,
}

/// A prepared source: builds its operators into each worker's dataflow.
pub trait PreparedSource: Send + Sync {
    /// This worker's operators: the row changes and the schema events (DDL) of the source,
    /// every epoch closed through [`crate::checkpoint::Epochs`].
    fn build<'s>(
        &self,
        scope: Scope<'s, u64>,
        cx: &SourceCtx,
    ) -> (StreamVec<'s, u64, Change>, StreamVec<'s, u64, SchemaEvent>);
}

/// A sink connector: one per target type family.
pub trait SinkConnector: Sync {
    /// The `target.type` values it serves.
    fn types(&self) -> &'static [&'static str];
    /// Parses and validates its plan section (errors located through `at`).
    fn parse(&self, kind: &str, section: &Json, at: &mut Section<'_, '_>) -> Option<Arc<dyn TargetConfig>>;
    /// Prepares the target on process 0 before the workers start: `from_scratch` discards what
    /// an earlier run of the task wrote (its output, its progress); `fresh`: the task has no
    /// state yet (progress of an earlier task of the same name must not skip its epochs).
    fn prepare(&self, plan: &Compiled, from_scratch: bool, fresh: bool) -> Result<PreparedSink, TaskError>;
    /// One worker's writer.
    fn writer(&self, cx: &WriterCtx) -> Result<Box<dyn SinkWriter>, TaskError>;
    /// The DDL stage's applier on worker 0, for targets that take schema changes as DDL of
    /// their own ([`SinkWriter::takes_ddl`]).
    fn schema_applier(&self, cx: &WriterCtx) -> Result<Option<Box<dyn SchemaApplier>>, TaskError> {
        let _ = cx;
        Ok(None)
    }
    /// A connection that checks and creates target tables (`preview`, `create-tables`, `run`);
    /// `None` for targets without tables of their own.
    fn admin(&self, plan: &Compiled) -> Result<Option<Box<dyn TableAdmin>>, String> {
        let _ = plan;
        Ok(None)
    }
    /// A session that reads the target's tables for `ferry verify` (by their target names).
    fn verify_reader(&self, plan: &Compiled) -> Result<Box<dyn verify::TableReader>, String> {
        let _ = plan;
        Err(format!("`ferry verify` does not read a `{}` target", self.types()[0]))
    }
    /// Whether the target takes `ferry dirty replay` (database targets).
    fn replays_dirty(&self) -> bool {
        false
    }
}

/// What a sink's preparation leaves the run.
#[derive(Debug, Default)]
pub struct PreparedSink {
    /// Target tables still being created beside the load: writers wait for a table's
    /// creation before they write it, and the run ends the creation when it ends.
    pub creating: Option<Arc<Creating>>,
}

/// What a sink worker's writer is made with.
#[derive(Clone)]
pub struct WriterCtx {
    /// The compiled plan.
    pub plan: Arc<Compiled>,
    /// The worker.
    pub worker: usize,
    /// This run's id (its start in ms): names at-least-once files so a replay sorts after.
    pub run: u64,
    /// The task's state.
    pub state: TaskState,
    /// The worker's dirty archive.
    pub dirty: DirtyArchive,
    /// The process's counters.
    pub metrics: Arc<Metrics>,
    /// Tables stopped by `partial-stop`.
    pub stops: Arc<TableStops>,
    /// What a row the target refuses does.
    pub policy: WriteErrorPolicy,
    /// Delivery semantics.
    pub semantics: Semantics,
    /// Column renames the target took in earlier runs, per table: (old name, new name).
    pub renames: HashMap<TableId, Vec<(String, String)>>,
    /// The highest epoch recorded before the restart (replays up to it).
    pub replay_upto: u64,
    /// Target tables still being created beside the load ([`PreparedSink::creating`]).
    pub creating: Option<Arc<Creating>>,
}

/// Runs the schema changes a target follows, on worker 0's DDL stage, once every sink worker
/// committed the rows of their epoch (see `engine::dataflow::ddl`).
pub trait SchemaApplier {
    /// Applies the events of `epoch`; an error keeps the epoch held and fails the run.
    fn apply(&mut self, epoch: u64, events: &[SchemaEvent]) -> Result<(), TaskError>;
}
