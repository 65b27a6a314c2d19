//! Schema changes on a database target (`schema_changes` policy `auto`), run by the engine's
//! DDL stage on worker 0, each once every sink worker has committed the rows of
//! its epoch; it holds the epoch until the DDL ran and was recorded, and the sink stage writes
//! no row of a later epoch before that (the engine's sink stage).
//!
//! ```text
//!  sink output (events, exchanged to worker 0)
//!      │  input frontier passed e ⇔ every sink worker committed e
//!      ▼
//!  for each event of e: target columns ─► catalog::alter ─► statements ─► run
//!      │                                  (none if the target has it)
//!      ▼
//!  <task>/ddl/applied.json (epoch e, the change, the statements) ─► release e
//! ```
//!
//! Crash safety: exactly-once, a DDL recorded as applied is never run again (a replayed
//! epoch's event is skipped, as its rows are); one that ran but was not recorded yields no
//! statement the second time (the target has the change), except `TRUNCATE`, which runs again
//! — harmless, because no row of a later epoch was written before the record. At-least-once
//! rewrites a replayed epoch's rows, so its DDL runs again after them. A change the target cannot take is handled
//! by the write-error policy: `ignore` warns and goes on, `partial-stop` stops the table,
//! `restart` fails the run.

use super::conn::{Db, DbError, SqlTarget};
use crate::catalog::create::Creating;
use crate::catalog::{alter, DdlDialect};
use crate::connector::{SchemaApplier, TableStops};
use crate::plan::config::WriteErrorPolicy;
use crate::plan::Compiled;
use crate::runtime::fault::Fault;
use crate::runtime::{sink_runtime, TaskError};
use crate::state::{AppliedChange, AppliedDdl, TaskState};
use ferry_operators::SchemaEvent;
use std::sync::Arc;
use std::time::Duration;

/// Runs schema changes on a database target.
pub struct DdlApplier {
    plan: Arc<Compiled>,
    target: Arc<SqlTarget>,
    dialect: DdlDialect,
    state: TaskState,
    stops: Arc<TableStops>,
    db: Option<Db>,
    applied: AppliedDdl,
    /// Exactly-once: a recorded epoch's DDL is not run again (its rows and the rows after it
    /// are not written again either). At-least-once rewrites a replayed epoch's rows, so its
    /// DDL runs again after them (a no-op where the target has the change; `TRUNCATE` again).
    exactly_once: bool,
    /// Target tables still being created beside the load: a table's change waits for it.
    creating: Option<Arc<Creating>>,
}

/// Why a change did not reach the target.
enum Refusal {
    /// The target cannot take it (the write-error policy decides).
    Cannot(String),
    /// The run cannot go on (target down after retries, state store failing).
    Fail(String),
}

impl DdlApplier {
    /// An applier for `target`, with what earlier runs applied.
    pub fn new(
        plan: Arc<Compiled>,
        target: Arc<SqlTarget>,
        state: TaskState,
        stops: Arc<TableStops>,
    ) -> Result<DdlApplier, String> {
        let dialect = DdlDialect::of_plan(&plan).ok_or("the target has no DDL dialect")?;
        let applied = state.ddl_applied().map_err(|e| format!("schema changes applied so far: {e}"))?;
        let exactly_once = plan.plan.settings.semantics == crate::plan::config::Semantics::ExactlyOnce;
        Ok(DdlApplier { plan, target, dialect, state, stops, db: None, applied, exactly_once, creating: None })
    }

    /// With the tables being created beside the load, if any.
    pub fn waiting_for(mut self, creating: Option<Arc<Creating>>) -> DdlApplier {
        self.creating = creating;
        self
    }

    async fn session(&mut self) -> Result<&mut Db, DbError> {
        if self.db.is_none() {
            self.db = Some(self.target.connect().await?);
        }
        Ok(self.db.as_mut().expect("connected"))
    }

    /// Runs one event's statements; the statements run (empty: the target had it).
    fn run(&mut self, db_name: &str, table: &str, event: &SchemaEvent) -> Result<Vec<String>, Refusal> {
        let tp = self.plan.table(event.table);
        let target = self.target.clone();
        let key: Vec<String> =
            tp.target_schema.row_key().iter().map(|&i| tp.target_schema.columns[i].name.clone()).collect();
        let keep = self.plan.plan.settings.schema_changes.keep_dropped_columns;
        let dialect = self.dialect;
        let pg = self.plan.plan.settings.target_tables.postgres;
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=5 {
            let result = sink_runtime().block_on(async {
                let db = self.session().await?;
                let current = target.columns(db, db_name, table).await?;
                if current.is_empty() {
                    return Ok(Err(format!("the target has no table {db_name}.{table}")));
                }
                let a = match alter::alter(dialect, db_name, table, &key, &event.change, &current, keep, &pg) {
                    Ok(a) => a,
                    Err(e) => return Ok(Err(e)),
                };
                for l in &a.losses {
                    tracing::warn!(table = %format!("{db_name}.{table}"), loss = %l.what, "schema change: type loss");
                }
                for st in &a.statements {
                    tracing::info!(statement = %st, "schema change applied to the target");
                    db.exec(st).await?;
                }
                Ok::<_, DbError>(Ok(a.statements))
            });
            match result {
                Ok(Ok(statements)) => return Ok(statements),
                Ok(Err(reason)) => return Err(Refusal::Cannot(reason)),
                Err(DbError::Transient(e)) if attempt < 5 => {
                    tracing::warn!(attempt, error = %crate::secrets::redact(&e), "schema change failed, retrying");
                    self.db = None;
                    std::thread::sleep(delay);
                    delay *= 2;
                }
                Err(DbError::Transient(e)) => return Err(Refusal::Fail(e)),
                Err(DbError::Row(e) | DbError::Fatal(e)) => return Err(Refusal::Cannot(e)),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Applies the events of `epoch` (skipped when an earlier run recorded them) and records
    /// them; an error fails the run.
    pub fn apply(&mut self, epoch: u64, events: &[SchemaEvent]) -> Result<(), String> {
        if self.exactly_once && epoch <= self.applied.epoch {
            return Ok(());
        }
        for event in events {
            let source = self.plan.catalog.get(event.table).name.to_string();
            if self.stops.reason(event.table).is_some() {
                tracing::warn!(table = %source, statement = %event.statement, "schema change not applied: the table is stopped");
                continue;
            }
            let tp = self.plan.table(event.table);
            let Some((db, table)) = tp.static_names.clone() else {
                tracing::warn!(table = %source, statement = %event.statement, "schema change not applied: the table's target name depends on its rows");
                continue;
            };
            match self.run(&db, &table, event) {
                Ok(statements) => {
                    if !statements.is_empty() && Fault::DdlCrash.armed() {
                        // Tests: die as kill -9 would, after the DDL and before its record.
                        std::process::abort();
                    }
                    let known = self
                        .applied
                        .changes
                        .iter()
                        .any(|c| c.epoch == epoch && c.table == source && c.change == event.change);
                    if !known {
                        self.applied.changes.push(AppliedChange {
                            epoch,
                            table: source,
                            change: event.change.clone(),
                            statements,
                        });
                    }
                }
                Err(Refusal::Fail(e)) => return Err(format!("schema change of {source} ({}): {e}", event.statement)),
                Err(Refusal::Cannot(reason)) => {
                    let msg = format!(
                        "the target cannot take the schema change of {source} at {} ({}): {reason}",
                        event.pos, event.statement
                    );
                    match self.plan.plan.settings.errors.write_error {
                        WriteErrorPolicy::Ignore => {
                            tracing::warn!("{} (write_error: ignore; rows go on)", crate::secrets::redact(&msg))
                        }
                        WriteErrorPolicy::PartialStop => self.stops.stop(event.table, &source, &msg),
                        WriteErrorPolicy::Restart => return Err(msg),
                    }
                }
            }
        }
        self.applied.epoch = self.applied.epoch.max(epoch);
        self.state.write_ddl_applied(&self.applied).map_err(|e| format!("recording a schema change: {e}"))
    }
}

impl SchemaApplier for DdlApplier {
    fn apply(&mut self, epoch: u64, events: &[SchemaEvent]) -> Result<(), TaskError> {
        // A table still being created beside the load is waited for; one the target refused
        // to create fails the run for good.
        if let Some(c) = &self.creating {
            events.iter().try_for_each(|e| c.wait(Some(e.table))).map_err(TaskError::from)?;
        }
        DdlApplier::apply(self, epoch, events).map_err(TaskError::transient)
    }
}
