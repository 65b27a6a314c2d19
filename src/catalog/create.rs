//! Creating target tables (F5.2, F5.4): per table a strategy — missing: `create` | `skip`;
//! present: `use-existing` | `drop-and-recreate` — carried out table by table, each with its
//! own outcome (one failure does not stop the others), the failures kept in the state store
//! (`<task>/catalog/create-failed.json`) so `--retry-failed` runs only those.
//!
//! `ferry run` calls [`ensure_on_run`]: missing tables whose strategy is `create` are created
//! (unless `target_tables.create_on_run: false`); it never drops. A few are created before the
//! workers start; many (a whole database of small tables) are created by two sessions of their
//! own *beside* the load, in the plan's table order, and a writer waits for a table's creation
//! before it writes the table's first batch ([`Creating`]):
//!
//! ```text
//!  ensure_on_run ─► schemas/databases, then ─┬─ session A: tables 0, 2, 4 … ─┐ mark each created,
//!                                            └─ session B: tables 1, 3, 5 … ─┘ wake the waiters
//!  writer I/O task: batch of table t ─► Creating::ready(t) ─► write      (a failure fails the run)
//! ```
//!
//! The target is reached through a [`TableAdmin`], which its connector gives
//! (`crate::connector::SinkConnector::admin`): the catalog knows no connector.

use super::ddl::{self, TableDdl};
use super::DdlDialect;
use crate::plan::config::{ExistingTable, MissingTable};
use crate::plan::Compiled;
use crate::plan::Settings;
use serde::Serialize;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Why a target statement failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AdminError {
    /// The connection failed or was lost: nothing more can be done now.
    #[error("{0}")]
    Unreachable(String),
    /// The target refused the statement (a table's own outcome).
    #[error("{0}")]
    Refused(String),
}

/// Creating the target tables failed: a connection problem restarts the task, a refused
/// statement stops it.
impl From<AdminError> for crate::runtime::TaskError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Unreachable(m) => Self::transient(format!("target: {m}")),
            AdminError::Refused(m) => Self::definite(format!("target: {m}")),
        }
    }
}

/// A connection to a target that has tables: what the catalog asks of it.
pub trait TableAdmin {
    /// Whether `database.table` exists (for PostgreSQL the database is the schema).
    fn table_exists(&mut self, database: &str, table: &str) -> Result<bool, AdminError>;
    /// Runs one DDL statement.
    fn execute(&mut self, statement: &str) -> Result<(), AdminError>;
    /// Whether each `(database, table)` exists; a target that can answer for many tables in
    /// one round trip does (a whole-database plan has thousands).
    fn tables_exist(&mut self, tables: &[(&str, &str)]) -> Result<Vec<bool>, AdminError> {
        tables.iter().map(|(d, t)| self.table_exists(d, t)).collect()
    }
    /// Runs one table's DDL statements in order; a target that can send them in one round
    /// trip does.
    fn execute_all(&mut self, statements: &[&str]) -> Result<(), AdminError> {
        statements.iter().try_for_each(|s| self.execute(s))
    }
    /// A second session on the same target, for creating many tables two at a time (`None`:
    /// this target takes one session).
    fn another(&self) -> Option<Box<dyn TableAdmin + Send>> {
        None
    }
}

/// Tables created in two sessions (beside the load, where the run allows it) when there are
/// at least this many: a server spends about a millisecond (PostgreSQL) to two (MariaDB) on
/// each, and two sessions create a third faster.
const PARALLEL_CREATE_MIN: usize = 32;

/// What became of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "error", rename_all = "kebab-case")]
pub enum Outcome {
    /// Created (it was missing).
    Created,
    /// Dropped and created anew.
    Recreated,
    /// It exists and is used as it is.
    Existing,
    /// Missing, left missing (`skip`).
    Skipped,
    /// The target refused a statement: its message.
    Failed(String),
}

/// One table's line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Source `db.table`.
    pub source: String,
    /// Target `db.table`.
    pub target: String,
    /// What happened.
    pub outcome: Outcome,
}

/// Errors that stop `create-tables` as a whole.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The target cannot be reached or the session fails.
    #[error("target: {0}")]
    Target(String),
    /// Tables would be dropped and `--yes` was not given.
    #[error("{} existing target tables would be dropped and created anew (strategy drop-and-recreate): {}. Run again with --yes to do it", .0.len(), .0.join(", "))]
    NeedsYes(Vec<String>),
    /// The state store cannot be used.
    #[error("state store: {0}")]
    State(String),
    /// The plan's target has no tables.
    #[error("{0}")]
    NoTables(String),
}

/// The strategies of a source table.
pub fn strategies(settings: &Settings, source: &str) -> (MissingTable, ExistingTable) {
    let t = &settings.target_tables;
    let o = t.table(source);
    (o.and_then(|o| o.missing).unwrap_or(t.missing), o.and_then(|o| o.existing).unwrap_or(t.existing))
}

/// Runs a table's DDL; a `CREATE DATABASE/SCHEMA IF NOT EXISTS` already run for an earlier
/// table (`namespaces`) is not sent again.
fn run_ddl(db: &mut dyn TableAdmin, ddl: &TableDdl, namespaces: &mut HashSet<String>) -> Result<(), AdminError> {
    let statements: Vec<&str> = ddl
        .statements
        .iter()
        .filter(|s| !(ddl.file.is_none() && namespaces.contains(s.as_str())))
        .map(String::as_str)
        .collect();
    db.execute_all(&statements)?;
    if ddl.file.is_none() {
        if let Some(first) = ddl.statements.first().filter(|s| is_namespace(s)) {
            namespaces.insert(first.clone());
        }
    }
    Ok(())
}

fn drop_table(d: DdlDialect, ddl: &TableDdl) -> String {
    format!("DROP TABLE {}", d.qualified(&ddl.database, &ddl.table))
}

/// Options of `ferry create-tables`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CreateOptions {
    /// Drop tables whose strategy is `drop-and-recreate`.
    pub yes: bool,
    /// Only the tables that failed last time.
    pub retry_failed: bool,
}

/// `ferry create-tables`: every selected table by its strategy (or only last time's failures),
/// through the target's `admin` connection (`None`: a target without tables).
pub fn create_tables(
    plan: &Compiled,
    admin: Option<&mut dyn TableAdmin>,
    opts: CreateOptions,
) -> Result<Vec<Report>, CreateError> {
    let (Some(db), Some(dialect)) = (admin, DdlDialect::of_plan(plan)) else {
        return Err(CreateError::NoTables(
            "this plan's target has no tables to create (files and null targets make their own output)".into(),
        ));
    };
    let settings = &plan.plan.settings;
    let store = settings.state_store().map_err(|e| CreateError::State(e.to_string()))?;
    let state = crate::state::TaskState::new(store, &settings.task);
    let only: Option<Vec<String>> = if opts.retry_failed {
        Some(state.create_failures().map_err(|e| CreateError::State(e.to_string()))?)
    } else {
        None
    };
    let mut ddls = Vec::new();
    let mut reports = Vec::new();
    for (id, s) in plan.catalog.tables.iter().enumerate() {
        let name = s.name.to_string();
        if only.as_ref().is_some_and(|o| !o.contains(&name)) {
            continue;
        }
        match ddl::table_ddl(plan, id as u32, dialect) {
            Ok(d) => ddls.push(d),
            Err(e) => {
                reports.push(Report { source: name, target: "?".into(), outcome: Outcome::Failed(e.to_string()) })
            }
        }
    }
    let te = |e: AdminError| CreateError::Target(e.to_string());
    let result = (|| {
        let names: Vec<(&str, &str)> = ddls.iter().map(|d| (d.database.as_str(), d.table.as_str())).collect();
        let exists = db.tables_exist(&names).map_err(te)?;
        let mut namespaces = HashSet::new();
        let to_drop: Vec<String> = ddls
            .iter()
            .zip(&exists)
            .filter(|(d, e)| **e && strategies(settings, &d.source).1 == ExistingTable::DropAndRecreate)
            .map(|(d, _)| format!("{}.{}", d.database, d.table))
            .collect();
        if !to_drop.is_empty() && !opts.yes {
            return Err(CreateError::NeedsYes(to_drop));
        }
        for (d, exists) in ddls.iter().zip(exists) {
            let (missing, existing) = strategies(settings, &d.source);
            let outcome = match (exists, missing, existing) {
                (false, MissingTable::Skip, _) => Outcome::Skipped,
                (false, MissingTable::Create, _) => match run_ddl(db, d, &mut namespaces) {
                    Ok(()) => Outcome::Created,
                    Err(e) => failed(e)?,
                },
                (true, _, ExistingTable::UseExisting) => Outcome::Existing,
                (true, _, ExistingTable::DropAndRecreate) => {
                    match db.execute(&drop_table(dialect, d)).and_then(|()| run_ddl(db, d, &mut namespaces)) {
                        Ok(()) => Outcome::Recreated,
                        Err(e) => failed(e)?,
                    }
                }
            };
            reports.push(Report { source: d.source.clone(), target: format!("{}.{}", d.database, d.table), outcome });
        }
        Ok(())
    })();
    result?;
    let failures: Vec<String> =
        reports.iter().filter(|r| matches!(r.outcome, Outcome::Failed(_))).map(|r| r.source.clone()).collect();
    state.write_create_failures(&failures).map_err(|e| CreateError::State(e.to_string()))?;
    reports.sort_by(|a, b| a.source.cmp(&b.source));
    Ok(reports)
}

/// A statement error is the table's outcome; a lost connection stops everything.
fn failed(e: AdminError) -> Result<Outcome, CreateError> {
    match e {
        AdminError::Unreachable(m) => Err(CreateError::Target(m)),
        AdminError::Refused(m) => Ok(Outcome::Failed(m)),
    }
}

/// Before a run: creates the missing target tables whose strategy is `create` (when
/// `target_tables.create_on_run`); returns the missing ones it did not create. At least
/// `PARALLEL_CREATE_MIN` of them, when two more sessions open, are created by those two
/// (those of a plan's own DDL file before, by this one): beside the load when every other
/// table exists or is created, and the returned [`Creating`] says when each is there (a run
/// that cannot load beside it, a cluster's, waits for all of them with [`Creating::wait`]);
/// otherwise before this returns.
pub fn ensure_on_run(
    plan: &Compiled,
    db: &mut dyn TableAdmin,
) -> Result<(Vec<String>, Option<Arc<Creating>>), AdminError> {
    let settings = &plan.plan.settings;
    let dialect = DdlDialect::of_plan(plan);
    let mut missing = Vec::new();
    let named: Vec<(usize, (&str, &str))> = plan
        .tables
        .iter()
        .enumerate()
        .filter_map(|(id, tp)| tp.static_names.as_ref().map(|(d, t)| (id, (d.as_str(), t.as_str()))))
        .collect();
    let names: Vec<(&str, &str)> = named.iter().map(|(_, n)| *n).collect();
    let exists = db.tables_exist(&names)?;
    let mut to_create = Vec::new();
    for (&(id, (d, t)), exists) in named.iter().zip(exists) {
        let s = plan.catalog.get(id as u32);
        if exists {
            continue;
        }
        let create =
            settings.target_tables.create_on_run && strategies(settings, &s.name.to_string()).0 == MissingTable::Create;
        match (create, dialect) {
            (true, Some(dialect)) => {
                let ddl = ddl::table_ddl(plan, id as u32, dialect).map_err(|e| AdminError::Refused(e.to_string()))?;
                to_create.push(ToCreate { id: id as u32, name: format!("{d}.{t}"), ddl });
            }
            _ => missing.push(format!("{d}.{t}")),
        }
    }
    let mut namespaces = HashSet::new();
    let sessions =
        if to_create.len() >= PARALLEL_CREATE_MIN { db.another().and_then(|a| Some((a, db.another()?))) } else { None };
    let Some((a, b)) = sessions else {
        create_each(db, &to_create, &mut namespaces, None)?;
        return Ok((missing, None));
    };
    // Databases/schemas first, once each; then the tables alternately in two sessions.
    for t in &to_create {
        if let Some(first) = t.ddl.statements.first().filter(|s| is_namespace(s)) {
            if t.ddl.file.is_none() && namespaces.insert(first.clone()) {
                db.execute(first)?;
            }
        }
    }
    // A table of the plan's own DDL file may lock another (a foreign key's parent) that a
    // writer's open transaction holds: those are created before the workers.
    let (own, generated): (Vec<ToCreate>, Vec<ToCreate>) = to_create.into_iter().partition(|t| t.ddl.file.is_some());
    create_each(db, &own, &mut namespaces, None)?;
    let creating = Creating::start(plan.tables.len(), generated, [a, b], namespaces)?;
    if !missing.is_empty() {
        // The run ends here (a table is missing that it may not create): not beside a load.
        let created = creating.wait(None);
        creating.finish();
        created?;
        return Ok((missing, None));
    }
    Ok((missing, Some(creating)))
}

/// A missing table to create: its plan table id, target name and DDL.
struct ToCreate {
    id: u32,
    name: String,
    ddl: TableDdl,
}

/// Target tables being created beside the load, in two sessions of their own (see the module
/// doc): who writes a table waits for it with [`Creating::ready`] (async) or
/// [`Creating::wait`]; the run ends them with [`Creating::finish`].
pub struct Creating {
    /// Per plan table id: still to be created (false for every table not being created).
    pending: Vec<AtomicBool>,
    /// Tables still to be created.
    left: AtomicUsize,
    /// The first failure; once set, tables not created yet never will be.
    failure: OnceLock<AdminError>,
    /// Set by [`Creating::finish`]: the sessions create no further table.
    stop: AtomicBool,
    /// Wakes the waiters after each table and on a failure.
    woken: tokio::sync::Notify,
    sessions: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Creating {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Creating").field("left", &self.left.load(Ordering::Relaxed)).finish_non_exhaustive()
    }
}

impl Creating {
    /// Starts the two sessions on `tables` (in the plan's order, alternately); `namespaces`:
    /// the schemas/databases already created.
    fn start(
        n_tables: usize,
        tables: Vec<ToCreate>,
        sessions: [Box<dyn TableAdmin + Send>; 2],
        namespaces: HashSet<String>,
    ) -> Result<Arc<Creating>, AdminError> {
        let pending: Vec<AtomicBool> = (0..n_tables).map(|_| AtomicBool::new(false)).collect();
        for t in &tables {
            pending[t.id as usize].store(true, Ordering::Relaxed);
        }
        let creating = Arc::new(Creating {
            pending,
            left: AtomicUsize::new(tables.len()),
            failure: OnceLock::new(),
            stop: AtomicBool::new(false),
            woken: tokio::sync::Notify::new(),
            sessions: Mutex::new(Vec::new()),
        });
        tracing::info!(tables = tables.len(), "creating the missing target tables beside the load, in two sessions");
        let tables = Arc::new(tables);
        for (k, mut session) in sessions.into_iter().enumerate() {
            let (shared, tables, mut namespaces) = (creating.clone(), tables.clone(), namespaces.clone());
            let spawned = std::thread::Builder::new().name("ferry-create".into()).spawn(move || {
                let mine = tables.iter().skip(k).step_by(2);
                // A panic (a bug) must not leave the writers waiting for its tables.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    create_each(session.as_mut(), mine, &mut namespaces, Some(&shared))
                }))
                .unwrap_or_else(|_| Err(AdminError::Refused("a table creation session failed (a bug)".into())));
                if let Err(e) = result {
                    tracing::warn!(error = %e, "creating the target tables failed");
                    shared.fail(e);
                }
            });
            match spawned {
                Ok(h) => creating.sessions.lock().unwrap_or_else(|e| e.into_inner()).push(h),
                Err(e) => {
                    creating.finish();
                    return Err(AdminError::Unreachable(format!("cannot start a table creation session: {e}")));
                }
            }
        }
        Ok(creating)
    }

    /// Notes that table `id` exists now.
    fn created(&self, id: u32) {
        self.pending[id as usize].store(false, Ordering::Release);
        self.left.fetch_sub(1, Ordering::AcqRel);
        self.wake();
    }

    fn fail(&self, e: AdminError) {
        let _ = self.failure.set(e);
        self.wake();
    }

    fn wake(&self) {
        self.woken.notify_waiters();
    }

    /// Whether table `id` (`None`: every table) exists: `Ok(false)` while it is being created,
    /// the failure once creating it cannot succeed.
    pub fn is_ready(&self, id: Option<u32>) -> Result<bool, AdminError> {
        let done = match id {
            Some(id) => !self.pending.get(id as usize).is_some_and(|p| p.load(Ordering::Acquire)),
            None => self.left.load(Ordering::Acquire) == 0,
        };
        match self.failure.get() {
            Some(e) if !done => Err(e.clone()),
            _ => Ok(done),
        }
    }

    /// The failure that ended the creation, if any (a table a writer never waits for, one
    /// without rows, fails the run all the same).
    pub fn failure(&self) -> Option<AdminError> {
        self.failure.get().cloned()
    }

    /// Waits until table `id` (`None`: every table) exists, or creating it failed.
    pub async fn ready(&self, id: Option<u32>) -> Result<(), AdminError> {
        loop {
            let woken = self.woken.notified();
            tokio::pin!(woken);
            // Registered before the check: a table created in between still wakes it.
            woken.as_mut().enable();
            if self.is_ready(id)? {
                return Ok(());
            }
            woken.await;
        }
    }

    /// [`Creating::ready`] for a thread outside the async runtimes.
    pub fn wait(&self, id: Option<u32>) -> Result<(), AdminError> {
        crate::runtime::sink_runtime().block_on(self.ready(id))
    }

    /// Ends the creation: the sessions create no further table (waiters of the tables left
    /// get an error) and are closed before this returns.
    pub fn finish(&self) {
        self.stop.store(true, Ordering::Release);
        let handles = std::mem::take(&mut *self.sessions.lock().unwrap_or_else(|e| e.into_inner()));
        for h in handles {
            let _ = h.join();
        }
        if self.left.load(Ordering::Acquire) > 0 {
            self.fail(AdminError::Unreachable("the run ended before its target tables were created".into()));
        }
    }
}

/// Whether a DDL statement creates a database or schema.
fn is_namespace(statement: &str) -> bool {
    statement.starts_with("CREATE SCHEMA IF NOT EXISTS ") || statement.starts_with("CREATE DATABASE IF NOT EXISTS ")
}

/// Creates each table in one session, in order; the first failure ends it. With `creating`,
/// each table is marked created, and a [`Creating::finish`] stops the session between tables.
fn create_each<'a>(
    db: &mut dyn TableAdmin,
    tables: impl IntoIterator<Item = &'a ToCreate>,
    namespaces: &mut HashSet<String>,
    creating: Option<&Creating>,
) -> Result<(), AdminError> {
    for t in tables {
        if creating.is_some_and(|c| c.stop.load(Ordering::Acquire) || c.failure.get().is_some()) {
            return Ok(());
        }
        if let Some(d) = creating.and(crate::runtime::fault::Fault::CreateDelay.delay()) {
            // Tests: a kill lands while the tables are created.
            std::thread::sleep(d);
        }
        run_ddl(db, &t.ddl, namespaces).map_err(|e| match e {
            AdminError::Refused(m) => AdminError::Refused(format!("creating target table {}: {m}", t.name)),
            other => other,
        })?;
        tracing::info!(table = %t.name, "created the missing target table");
        if let Some(c) = creating {
            c.created(t.id);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A session that records the statements it runs, refuses the one naming `refuse`, panics
    /// on the one naming `panic_on`, and takes `pause` for each.
    #[derive(Clone, Default)]
    struct Session {
        ran: Arc<Mutex<Vec<String>>>,
        refuse: Option<&'static str>,
        panic_on: Option<&'static str>,
        pause: Duration,
    }

    impl TableAdmin for Session {
        fn table_exists(&mut self, _database: &str, _table: &str) -> Result<bool, AdminError> {
            Ok(false)
        }
        fn execute(&mut self, statement: &str) -> Result<(), AdminError> {
            std::thread::sleep(self.pause);
            let names = |t: Option<&str>| t.is_some_and(|t| statement.contains(&format!(".{t} ")));
            assert!(!names(self.panic_on), "a bug in a creation session");
            if names(self.refuse) {
                return Err(AdminError::Refused("relation already exists".into()));
            }
            self.ran.lock().unwrap().push(statement.to_string());
            Ok(())
        }
    }

    fn tables(n: u32) -> Vec<ToCreate> {
        (0..n)
            .map(|i| ToCreate {
                id: i,
                name: format!("d.t{i}"),
                ddl: TableDdl {
                    source: format!("s.t{i}"),
                    database: "d".into(),
                    table: format!("t{i}"),
                    statements: vec![format!("CREATE TABLE d.t{i} (id int)")],
                    file: None,
                    columns: Vec::new(),
                },
            })
            .collect()
    }

    fn start(n: u32, s: &Session) -> Arc<Creating> {
        let sessions: [Box<dyn TableAdmin + Send>; 2] = [Box::new(s.clone()), Box::new(s.clone())];
        Creating::start(n as usize + 3, tables(n), sessions, HashSet::new()).expect("started")
    }

    #[test]
    fn every_table_is_ready_once_its_session_created_it_and_tables_not_being_created_are_ready_at_once() {
        let s = Session { pause: Duration::from_millis(1), ..Session::default() };
        let c = start(40, &s);
        // Ids 40..43 are the plan's tables that existed already.
        assert!(c.is_ready(Some(41)).unwrap());
        crate::runtime::sink_runtime().block_on(c.ready(Some(39))).unwrap();
        c.wait(None).unwrap();
        assert!((0..43).all(|id| c.is_ready(Some(id)).unwrap()));
        assert_eq!(s.ran.lock().unwrap().len(), 40);
        c.finish();
        assert!(c.failure().is_none(), "{:?}", c.failure());
    }

    #[test]
    fn a_refused_table_fails_its_waiters_and_every_wait_for_all_but_not_the_tables_created_before() {
        let s = Session { refuse: Some("t7"), ..Session::default() };
        let c = start(40, &s);
        let e = c.wait(Some(7)).unwrap_err();
        assert!(matches!(&e, AdminError::Refused(m) if m.contains("creating target table d.t7")), "{e:?}");
        assert!(c.wait(None).is_err());
        let e = crate::runtime::sink_runtime().block_on(c.ready(Some(39))).unwrap_err();
        assert!(matches!(e, AdminError::Refused(_)), "{e:?}");
        c.finish();
        let ran = s.ran.lock().unwrap().clone();
        assert!(ran.iter().any(|r| r.contains(".t5 ")), "t5 comes before t7 in the same session: {ran:?}");
        assert!(c.is_ready(Some(5)).unwrap(), "a table created before the failure stays ready");
        assert!(!ran.iter().any(|r| r.contains(".t39 ")), "the sessions stop at a failure: {ran:?}");
    }

    #[test]
    fn a_session_that_panics_fails_the_creation_instead_of_leaving_its_waiters_waiting() {
        let s = Session { panic_on: Some("t3"), ..Session::default() };
        let c = start(40, &s);
        let e = c.wait(Some(3)).unwrap_err();
        assert!(matches!(&e, AdminError::Refused(m) if m.contains("a bug")), "{e:?}");
        c.finish();
    }

    #[test]
    fn finish_stops_the_sessions_between_tables_and_the_tables_left_fail_their_waiters() {
        let s = Session { pause: Duration::from_millis(5), ..Session::default() };
        let c = start(400, &s);
        c.finish();
        let created = s.ran.lock().unwrap().len();
        assert!(created < 400, "finish returned after all {created} tables");
        let e = c.wait(None).unwrap_err();
        assert!(matches!(e, AdminError::Unreachable(_)), "{e:?}");
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(s.ran.lock().unwrap().len(), created, "no table is created after finish returned");
    }
}
