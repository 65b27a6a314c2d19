//! The writer side of a sink connector: the engine's sink operator calls a [`SinkWriter`] for
//! every change and commits each epoch once the input frontier has passed it; how a commit
//! becomes durable is the connector's business. Also here: target names from templates and
//! the tables a `partial-stop` stopped.
//!
//! ```text
//!  exchange by (table, key) ─► SinkOperator ─┬─ write(epoch, change)   at-least-once: flush as batches fill
//!                                            ├─ commit(epoch)          frontier passed epoch: make it durable,
//!                                            │                         exactly-once: publish + record progress
//!                                            └─ start_commit(epoch) +  the same, answered later (database
//!                                               committed_upto()       writers): the worker goes on meanwhile
//! ```

use crate::state::TaskState;
use ferry_operators::{Catalog, Change, SchemaEvent, TableId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

/// Errors a sink reports.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The target failed in a way a retry or restart may fix (I/O, connection).
    #[error("{0}")]
    Transient(String),
    /// A change cannot be written as it is (bad name, rejected value): dirty data.
    #[error("{0}")]
    Definite(String),
    /// The run cannot go on (connection lost mid-transaction, target down, a rejected row
    /// under `write_error: restart`): it ends, and the supervisor restarts it from the last
    /// checkpoint within `max_restarts`.
    #[error("{0}")]
    Restart(String),
    /// The run cannot go on and a restart cannot help: another process of the task took over
    /// (a Kafka producer fenced by a newer one with the same transactional id), or the target
    /// refused to create a table. The task ends failed, without restarts.
    #[error("{0}")]
    Fatal(String),
}

/// One sink worker's writer.
pub trait SinkWriter {
    /// The sink's name in the state store (`files`, `null`, ...).
    fn name(&self) -> &'static str;
    /// Writes (or buffers) one change of `table` in `epoch`.
    fn write(&mut self, epoch: u64, table: TableId, change: &Change) -> Result<(), SinkError>;
    /// Writes a change the caller gives away (a writer that keeps changes avoids a copy); on
    /// an error the change comes back.
    fn write_owned(&mut self, epoch: u64, change: Change) -> Result<(), (SinkError, Change)> {
        self.write(epoch, change.table, &change).map_err(|e| (e, change))
    }
    /// A schema change of a source table, after every change of `epoch` was written and
    /// before the epoch commits (a schema change always ends its epoch). The default only
    /// lets it pass: what a target does with a schema change is its DDL policy.
    fn schema_change(&mut self, epoch: u64, event: &SchemaEvent) -> Result<(), SinkError> {
        let _ = (epoch, event);
        Ok(())
    }
    /// A schema change the plan follows (policy `auto`), given to every sink worker after
    /// every change of `epoch` was written and before the epoch commits: a writer adjusts how
    /// it writes the table's later rows (a database writer: the renamed column's new name).
    fn follow_schema_change(&mut self, epoch: u64, event: &SchemaEvent) -> Result<(), SinkError> {
        let _ = (epoch, event);
        Ok(())
    }
    /// Whether the target takes followed schema changes as DDL of its own (database
    /// targets): the sink stage then writes no row of a later epoch until the DDL ran.
    fn takes_ddl(&self) -> bool {
        false
    }
    /// Everything of `epoch` has arrived: make it durable. Exactly-once sinks publish the epoch
    /// atomically with their progress here.
    fn commit(&mut self, epoch: u64) -> Result<(), SinkError>;
    /// Starts committing `epoch` (everything of it has been written); the default commits
    /// at once. A writer whose commits take a round trip returns at once and reports the
    /// commit later through [`SinkWriter::committed_upto`], so the worker goes on with the
    /// next epoch meanwhile.
    fn start_commit(&mut self, epoch: u64) -> Result<(), SinkError> {
        self.commit(epoch)
    }
    /// The highest epoch whose commit has finished among those started (`None`: none since
    /// the last call); an error if a commit failed.
    fn committed_upto(&mut self) -> Result<Option<u64>, SinkError> {
        Ok(None)
    }
    /// Whether commits finish later (see [`SinkWriter::start_commit`]).
    fn commits_later(&self) -> bool {
        false
    }
    /// The last epoch this worker committed before the run started (exactly-once sinks skip
    /// replayed epochs up to it); 0 if none.
    fn committed(&self) -> u64;
}

/// The target `(database, table)` of `change` of source `table`: the plan's static names, or
/// its templates rendered with the change's row (`schema` is the row's target schema).
pub fn target_names(
    plan: &crate::plan::Compiled,
    table: TableId,
    schema: &ferry_operators::TableSchema,
    change: &Change,
) -> Result<(String, String), SinkError> {
    use ferry_operators::template::{check_name, Names};
    let tp = plan.table(table);
    if let Some((d, t)) = &tp.static_names {
        return Ok((d.clone(), t.clone()));
    }
    let src = plan.catalog.get(table);
    let names = Names::of(&plan.plan.source_name, &src.name);
    // Record fields are the target row's columns (after renames and added columns).
    let row = Some((schema, change.image().as_slice()));
    let d = tp.database.render(&names, row).map_err(|e| SinkError::Definite(e.message))?;
    let t = tp.table.render(&names, row).map_err(|e| SinkError::Definite(e.message))?;
    for n in [&d, &t] {
        check_name(n).map_err(|why| SinkError::Definite(format!("target name from the template: {why}")))?;
    }
    Ok((d, t))
}

/// Tables stopped by the write-error policy `partial-stop`. A stop is kept in the state store
/// (`<task>/stopped/<db.table>.json`) so later runs keep the table stopped, archiving its
/// changes in order, until `ferry dirty replay` has re-applied them and lifts the stop.
#[derive(Debug, Default)]
pub struct TableStops {
    any: AtomicBool,
    tables: RwLock<HashMap<TableId, String>>,
    state: Option<TaskState>,
}

/// One stop as stored.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StopRecord {
    /// The source table, `db.table`.
    pub table: String,
    /// Why it stopped.
    pub reason: String,
    /// When, microseconds since the Unix epoch.
    pub since_micros: i64,
}

impl TableStops {
    /// The stops recorded in the task's state, for the tables of `catalog`.
    pub fn load(state: &TaskState, catalog: &Catalog) -> Result<TableStops, crate::state::StateError> {
        let mut tables = HashMap::new();
        for rec in Self::list(state)? {
            if let Some(id) = catalog.tables.iter().position(|t| t.name.to_string() == rec.table) {
                tables.insert(id as TableId, rec.reason);
            }
        }
        Ok(TableStops {
            any: AtomicBool::new(!tables.is_empty()),
            tables: RwLock::new(tables),
            state: Some(state.clone()),
        })
    }

    /// Every stop recorded in the task's state.
    pub fn list(state: &TaskState) -> Result<Vec<StopRecord>, crate::state::StateError> {
        let mut out = Vec::new();
        for path in state.store().list(&state.path("stopped"))? {
            if let Some(b) = state.store().get(&path)? {
                let rec: StopRecord = serde_json::from_slice(&b)
                    .map_err(|source| crate::state::StateError::Corrupt { path: path.clone(), source })?;
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// Lifts every stop (after a replay).
    pub fn clear(state: &TaskState) -> Result<usize, crate::state::StateError> {
        Ok(state.store().delete_prefix(&state.path("stopped"))?)
    }

    /// Why `table` is stopped, if it is.
    pub fn reason(&self, table: TableId) -> Option<String> {
        if !self.any.load(Ordering::Relaxed) {
            return None;
        }
        self.tables.read().unwrap_or_else(|e| e.into_inner()).get(&table).cloned()
    }

    /// Stops `table` (named `name`) for `reason`: logged, and kept in the state store.
    pub fn stop(&self, table: TableId, name: &str, reason: &str) {
        let mut t = self.tables.write().unwrap_or_else(|e| e.into_inner());
        if t.contains_key(&table) {
            return;
        }
        t.insert(table, reason.to_string());
        self.any.store(true, Ordering::Relaxed);
        tracing::error!(table = name, reason = %crate::secrets::redact(reason), "table stopped (write_error: partial-stop); its changes go to the dirty archive until `ferry dirty replay`");
        if let Some(state) = &self.state {
            let rec = StopRecord {
                table: name.to_string(),
                reason: crate::secrets::redact(reason),
                since_micros: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros() as i64),
            };
            let path = state.path(&format!("stopped/{name}.json"));
            if let Err(e) = state.store().put(&path, serde_json::to_vec_pretty(&rec).expect("serializes")) {
                tracing::error!(error = %e, "cannot record the stop in the state store");
            }
        }
    }
}
