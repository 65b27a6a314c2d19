//! Database targets: the MySQL family (MySQL, MariaDB, TiDB, TDSQL; Doris and StarRocks speak
//! the same protocol) and PostgreSQL.
//!
//! ```text
//!  plan target section ─► conn::SqlTarget ─► one writer::SqlWriter per sink worker
//!                                               │ batches (netted by key in upsert mode)
//!                                               ▼
//!                                            I/O task on the shared runtime, own session:
//!                                            statements from encode (literals, bulk rows)
//! ```
//!
//! `read` is the target as `ferry verify` reads it.
//!
//! Upsert mode writes multi-row `INSERT … ON DUPLICATE KEY UPDATE` / `INSERT … ON CONFLICT …
//! DO UPDATE` and deletes by key in batches; batches of 64 rows or more take the bulk path
//! (`LOAD DATA LOCAL INFILE … REPLACE`, or `COPY` into a staging table and one merge). Append
//! mode inserts every change as a new row (`LOAD DATA` / `COPY` for large batches).
//! Exactly-once: one target transaction per worker and epoch, committed with the worker's row
//! in the progress table; a restart skips the epochs that row covers.

pub mod conn;
pub mod encode;
pub mod read;
pub mod writer;

pub use conn::{MysqlTargetConfig, PostgresTargetConfig, SqlTarget};
pub use writer::SqlWriter;

pub mod ddl;

use crate::catalog::create::{ensure_on_run, AdminError, TableAdmin};
use crate::connector::{PreparedSink, SchemaApplier, SinkConnector, SinkWriter, WriterCtx};
use crate::plan::{Compiled, Section, TargetConfig};
use crate::runtime::{sink_runtime, TaskError};
use conn::{Db, DbError};
use serde_json::Value as Json;
use std::sync::Arc;

impl TargetConfig for SqlTarget {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn describe(&self) -> String {
        let family = match self.dialect {
            encode::Dialect::Mysql => "MySQL-family database",
            encode::Dialect::Postgres => "PostgreSQL database",
        };
        format!("{family} at {}", self.addr)
    }

    fn identity(&self) -> String {
        // PostgreSQL tables are named schema.table within the URL's database.
        match self.pg_database() {
            Some(db) => format!("{}/{db}", self.describe()),
            None => self.describe(),
        }
    }
}

/// The database sink connector: the MySQL family and PostgreSQL.
#[derive(Debug)]
pub struct Sql;

fn target(plan: &Compiled) -> Arc<SqlTarget> {
    let t = plan.plan.target.config_as::<SqlTarget>().expect("a database target's config");
    Arc::new(t.clone())
}

/// A target error at the start of a run: a connection problem restarts the task, anything
/// else (a missing privilege, a refused statement) stops it.
fn start_failure(e: DbError) -> TaskError {
    match e {
        DbError::Transient(m) => TaskError::transient(format!("target: {m}")),
        other => TaskError::definite(format!("target: {other}")),
    }
}

impl SinkConnector for Sql {
    fn types(&self) -> &'static [&'static str] {
        &["mysql", "mariadb", "tidb", "tdsql", "doris", "starrocks", "postgres", "postgresql"]
    }

    fn parse(&self, kind: &str, section: &Json, at: &mut Section<'_, '_>) -> Option<Arc<dyn TargetConfig>> {
        // `None`: no url; the error shows one of the kind's form.
        let (built, example) = if matches!(kind, "postgres" | "postgresql") {
            let c: PostgresTargetConfig = at.parse(section)?;
            ((!c.url.is_empty()).then(|| SqlTarget::postgres(&c)), "postgres://user@host:port/database")
        } else {
            let c: MysqlTargetConfig = at.parse(section)?;
            ((!c.url.is_empty()).then(|| SqlTarget::mysql(&c)), "mysql://user@host:port")
        };
        match built {
            None => {
                at.error("", format!("missing required key `url`: {example}"));
                None
            }
            Some(Ok(t)) => Some(Arc::new(t)),
            Some(Err(e)) => {
                at.error("url", e);
                None
            }
        }
    }

    /// Checks the target before the workers start: it is reachable, the progress table exists
    /// (created if missing), every table with a fixed target name exists (created when missing,
    /// by the plan's `target_tables` strategy: many of them beside the load, see
    /// `catalog::create`); a `--from-scratch` run (or a task with no state yet) forgets the
    /// task's progress rows.
    fn prepare(&self, plan: &Compiled, from_scratch: bool, fresh: bool) -> Result<PreparedSink, TaskError> {
        let t = target(plan);
        let rt = sink_runtime();
        let mut db = rt.block_on(t.connect()).map_err(start_failure)?;
        rt.block_on(t.ensure_progress_table(&mut db)).map_err(start_failure)?;
        if from_scratch || fresh {
            rt.block_on(t.forget(&mut db, &plan.plan.settings.task)).map_err(start_failure)?;
        }
        let mut admin = SqlAdmin { target: t, db };
        let (missing, creating) = ensure_on_run(plan, &mut admin).map_err(TaskError::from)?;
        if !missing.is_empty() {
            let them = if missing.len() == 1 { "it" } else { "them" };
            return Err(TaskError::definite(format!(
                "target: the target has no table {}: create {them} first (`ferry create-tables PLAN`; the plan's \
                 `target_tables` strategy for {them} is not `create` on run)",
                missing.join(", ")
            )));
        }
        Ok(PreparedSink { creating })
    }

    fn writer(&self, cx: &WriterCtx) -> Result<Box<dyn SinkWriter>, TaskError> {
        Ok(Box::new(SqlWriter::new(cx, target(&cx.plan)).map_err(TaskError::transient)?))
    }

    fn schema_applier(&self, cx: &WriterCtx) -> Result<Option<Box<dyn SchemaApplier>>, TaskError> {
        let a = ddl::DdlApplier::new(cx.plan.clone(), target(&cx.plan), cx.state.clone(), cx.stops.clone())
            .map_err(TaskError::transient)?
            .waiting_for(cx.creating.clone());
        Ok(Some(Box::new(a)))
    }

    fn admin(&self, plan: &Compiled) -> Result<Option<Box<dyn TableAdmin>>, String> {
        let t = target(plan);
        let db = sink_runtime().block_on(t.connect()).map_err(|e| format!("target: {e}"))?;
        Ok(Some(Box::new(SqlAdmin { target: t, db })))
    }

    fn replays_dirty(&self) -> bool {
        true
    }

    fn verify_reader(&self, plan: &Compiled) -> Result<Box<dyn crate::connector::verify::TableReader>, String> {
        Ok(Box::new(read::reader(&target(plan))?))
    }
}

/// A session on a database target for the catalog.
struct SqlAdmin {
    target: Arc<SqlTarget>,
    db: Db,
}

fn admin_error(e: DbError) -> AdminError {
    match e {
        DbError::Transient(m) => AdminError::Unreachable(m),
        DbError::Row(m) | DbError::Fatal(m) => AdminError::Refused(m),
    }
}

impl TableAdmin for SqlAdmin {
    fn table_exists(&mut self, database: &str, table: &str) -> Result<bool, AdminError> {
        sink_runtime().block_on(self.target.table_exists(&mut self.db, database, table)).map_err(admin_error)
    }

    fn execute(&mut self, statement: &str) -> Result<(), AdminError> {
        sink_runtime().block_on(self.db.exec(statement)).map_err(admin_error)
    }

    fn tables_exist(&mut self, tables: &[(&str, &str)]) -> Result<Vec<bool>, AdminError> {
        let (target, db) = (&self.target, &mut self.db);
        sink_runtime().block_on(target.tables_exist(db, tables)).map_err(admin_error)
    }

    fn another(&self) -> Option<Box<dyn TableAdmin + Send>> {
        let db = sink_runtime().block_on(self.target.connect()).ok()?;
        Some(Box::new(SqlAdmin { target: self.target.clone(), db }))
    }

    fn execute_all(&mut self, statements: &[&str]) -> Result<(), AdminError> {
        // PostgreSQL runs a multi-statement query in one round trip (and one transaction:
        // a table and its comments are created together or not at all).
        if self.target.dialect == encode::Dialect::Postgres && statements.len() > 1 {
            return self.execute(&statements.join(";\n"));
        }
        statements.iter().try_for_each(|s| self.execute(s))
    }
}
