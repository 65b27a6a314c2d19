//! The database writer of one sink worker, and the I/O task that owns its connection.
//!
//! ```text
//!  timely worker (SqlWriter)                         tokio task (one per worker, own session)
//!  write(e, change) ─► batch per target table  ─Cmd::Batch─►  BEGIN (exactly-once: once per epoch)
//!                      upsert: netted by key                  SAVEPOINT b
//!                      append: every change                   deletes; upserts | LOAD DATA | COPY
//!                      full ⇒ send                            row error ⇒ ROLLBACK TO b, row by row,
//!  commit(e) ─────────────────────────────────── Cmd::Commit─►  each rejected row per the policy
//!     waits for the reply                                      progress row (exactly-once); COMMIT
//! ```
//!
//! The worker encodes nothing: batches move to the task, which builds the statements while the
//! worker goes on, so reading, transforming and writing overlap. Per key, changes arrive in
//! source order (the sink stage exchanges by key and feeds epochs in order); within a batch a
//! key's changes are netted to the last one, and deletes run before upserts.
//!
//! Errors: a row the target rejects is handled by the write-error policy; a lost connection,
//! a deadlock or a fatal error fails the run (the supervisor restarts it from the last
//! checkpoint, within `max_restarts`).

use super::conn::{Db, DbError, SqlTarget};
use super::encode::{Dialect, EncodeError};
use crate::connector::{SinkError, SinkWriter, TableStops};
use crate::plan::config::{Semantics, WriteErrorPolicy, WriteMode};
use crate::plan::Compiled;
use crate::runtime::{sink_runtime, DirtyArchive, Metrics};
use ferry_operators::value::StableHasher;
use ferry_operators::{Change, Op, SchemaChangeKind, SchemaEvent, TableId, TableSchema, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Statements grow up to about this many bytes before a new one starts (well under the 4 MiB
/// `max_allowed_packet` of older MySQL servers).
const MAX_STATEMENT: usize = 1 << 20;
/// Batches with fewer rows than this take plain statements even when bulk loading is on.
const BULK_MIN_ROWS: usize = 64;

/// One target table as the writer sees it.
#[derive(Debug)]
pub struct TargetTable {
    id: TableId,
    /// `db.table` for messages.
    name: String,
    /// Target database (PostgreSQL: schema) and table.
    db: String,
    table: String,
    /// Quoted, qualified name.
    qname: String,
    /// Quoted column list.
    cols: String,
    schema: Arc<TableSchema>,
    /// Row positions of the key (empty: keyless).
    key: Vec<usize>,
    /// The bulk path can carry every column.
    bulk: bool,
    /// PostgreSQL: a plain COPY of insert-only rows met an existing key; upserts of this table
    /// take the staging merge from now on.
    merge_only: AtomicBool,
}

impl TargetTable {
    fn new(d: Dialect, id: TableId, db: &str, table: &str, schema: Arc<TableSchema>) -> TargetTable {
        let mut cols = String::new();
        for (i, c) in schema.columns.iter().enumerate() {
            if i > 0 {
                cols.push(',');
            }
            d.ident(&c.name, &mut cols);
        }
        // LOAD DATA reads a BIT column's field as a string of bytes, not bits, and reads the
        // whole input in one character set (utf8mb4), which binary values are not.
        let bulk = d == Dialect::Postgres
            || !schema.columns.iter().any(|c| {
                matches!(c.ty, ferry_operators::ColumnType::Bit { .. } | ferry_operators::ColumnType::Bytes { .. })
            });
        TargetTable {
            id,
            name: format!("{db}.{table}"),
            db: db.to_string(),
            table: table.to_string(),
            qname: d.qualified(db, table),
            cols,
            key: schema.row_key().to_vec(),
            schema,
            bulk,
            merge_only: AtomicBool::new(false),
        }
    }
}

/// A failure of the I/O task, seen by the worker.
#[derive(Debug, Default)]
struct Failed {
    set: AtomicBool,
    msg: Mutex<Option<String>>,
}

impl Failed {
    fn set(&self, msg: String) {
        let mut m = self.msg.lock().unwrap_or_else(|e| e.into_inner());
        m.get_or_insert(msg);
        self.set.store(true, Ordering::Release);
    }
    fn get(&self) -> Option<String> {
        if !self.set.load(Ordering::Acquire) {
            return None;
        }
        self.msg.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

enum Cmd {
    Batch { table: Arc<TargetTable>, rows: Vec<Change> },
    Commit { epoch: u64, reply: std::sync::mpsc::SyncSender<Result<(), String>> },
}

struct Batch {
    table: Arc<TargetTable>,
    rows: Vec<Option<Change>>,
    slots: HashMap<u64, usize>,
    overflow: Vec<usize>,
    live: usize,
    netting: bool,
}

impl Batch {
    fn same_key(&self, i: usize, row: &[Value]) -> bool {
        self.rows[i].as_ref().is_some_and(|old| self.table.key.iter().all(|&k| old.image()[k] == row[k]))
    }

    /// Adds a change; with netting, an earlier change of the same key in this batch is
    /// dropped (the new one goes last). Keys whose hash collides with another live key's are
    /// kept in `overflow` and found by comparison.
    fn push(&mut self, c: Change) {
        if self.netting {
            let row = c.image();
            let mut h = StableHasher::default();
            self.table.key.iter().for_each(|&i| row[i].stable_hash(&mut h));
            let h = h.finish();
            let idx = self.rows.len();
            let earlier = match self.slots.get(&h).copied() {
                Some(i) if self.same_key(i, row) => {
                    self.slots.insert(h, idx);
                    Some(i)
                }
                Some(i) if self.rows[i].is_some() => {
                    let found = self.overflow.iter().position(|&j| self.same_key(j, row));
                    let earlier = found.map(|p| self.overflow.swap_remove(p));
                    self.overflow.push(idx);
                    earlier
                }
                _ => {
                    self.slots.insert(h, idx);
                    None
                }
            };
            if let Some(i) = earlier {
                self.rows[i] = None;
                self.live -= 1;
            }
        }
        self.rows.push(Some(c));
        self.live += 1;
    }

    fn take(&mut self) -> Vec<Change> {
        self.slots.clear();
        self.overflow.clear();
        self.live = 0;
        std::mem::take(&mut self.rows).into_iter().flatten().collect()
    }
}

/// Everything the I/O task and the worker share.
pub struct SqlContext {
    /// The compiled plan.
    pub plan: Arc<Compiled>,
    /// The target.
    pub target: Arc<SqlTarget>,
    /// This worker's index.
    pub worker: usize,
    /// The dirty-data archive.
    pub dirty: DirtyArchive,
    /// The run's counters.
    pub metrics: Arc<Metrics>,
    /// Stopped tables (write-error policy `partial-stop`).
    pub stops: Arc<TableStops>,
    /// The write-error policy.
    pub policy: WriteErrorPolicy,
    /// Semantics, overriding the plan's (replay writes at-least-once).
    pub semantics: Semantics,
    /// Column renames the target has taken in earlier runs, per table, in order.
    pub renames: HashMap<TableId, Vec<(String, String)>>,
}

/// A database sink worker's writer.
pub struct SqlWriter {
    plan: Arc<Compiled>,
    dialect: Dialect,
    upsert: bool,
    exactly_once: bool,
    batch_rows: usize,
    tables: HashMap<(TableId, u32), Arc<TargetTable>>,
    batches: HashMap<String, Batch>,
    tx: Option<tokio::sync::mpsc::Sender<Cmd>>,
    task: Option<tokio::task::JoinHandle<()>>,
    failed: Arc<Failed>,
    committed: u64,
    /// Commits sent and not answered yet, oldest first.
    replies: std::collections::VecDeque<(u64, std::sync::mpsc::Receiver<Result<(), String>>)>,
    /// Column renames the target took (`from`, `to`), per table, in order: a row's column
    /// keeps its name from the start of the run, the target's has the new one.
    renames: HashMap<TableId, Vec<(String, String)>>,
}

impl SqlWriter {
    /// Connects (and, exactly-once, reads this worker's committed epoch) and starts the I/O task.
    pub fn new(cx: SqlContext) -> Result<SqlWriter, SinkError> {
        let rt = sink_runtime();
        let exactly_once = cx.semantics == Semantics::ExactlyOnce;
        let task_name = cx.plan.plan.raw.task.clone();
        let (db, committed) = rt
            .block_on(async {
                let mut db = cx.target.connect().await?;
                let committed =
                    if exactly_once { cx.target.committed(&mut db, &task_name, cx.worker).await? } else { 0 };
                Ok::<_, DbError>((db, committed))
            })
            .map_err(|e| SinkError::Restart(e.to_string()))?;
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let failed = Arc::new(Failed::default());
        let io = IoTask {
            db: Some(db),
            target: cx.target.clone(),
            in_txn: false,
            exactly_once,
            upsert: cx.plan.plan.raw.write_mode == WriteMode::Upsert,
            policy: cx.policy,
            task: task_name,
            worker: cx.worker,
            plan: cx.plan.clone(),
            dirty: cx.dirty.clone(),
            metrics: cx.metrics.clone(),
            stops: cx.stops.clone(),
            failed: failed.clone(),
            charsets: HashMap::new(),
        };
        let task = rt.spawn(io.run(rx));
        Ok(SqlWriter {
            dialect: cx.target.dialect,
            upsert: cx.plan.plan.raw.write_mode == WriteMode::Upsert,
            batch_rows: cx.plan.plan.raw.runtime.batch_rows,
            plan: cx.plan,
            exactly_once,
            tables: HashMap::new(),
            batches: HashMap::new(),
            tx: Some(tx),
            task: Some(task),
            failed,
            committed,
            replies: std::collections::VecDeque::new(),
            renames: cx.renames,
        })
    }

    fn target_for(&mut self, table: TableId, change: &Change) -> Result<Arc<TargetTable>, SinkError> {
        let tp = self.plan.table(table);
        let version = change.schema.as_ref().map_or(0, |s| s.version);
        if tp.static_names.is_some() {
            if let Some(t) = self.tables.get(&(table, version)) {
                return Ok(t.clone());
            }
        }
        let mut schema = change.schema.clone().unwrap_or_else(|| Arc::new(tp.target_schema.clone()));
        if let Some(renames) = self.renames.get(&table) {
            let mut s = (*schema).clone();
            for (from, to) in renames {
                // A schema that has the new name already (the source's current one after a
                // restart, or a column added again under the old name) keeps its names.
                if s.column_index(to).is_some() {
                    continue;
                }
                if let Some(i) = s.column_index(from) {
                    s.columns[i].name.clone_from(to);
                }
            }
            schema = Arc::new(s);
        }
        let (db, tb) = crate::connector::target_names(&self.plan, table, &schema, change)?;
        let t = Arc::new(TargetTable::new(self.dialect, table, &db, &tb, schema));
        if tp.static_names.is_some() {
            self.tables.insert((table, version), t.clone());
        }
        Ok(t)
    }

    fn send(&mut self, cmd: Cmd) -> Result<(), SinkError> {
        let tx = self.tx.as_ref().expect("open until drop");
        if tx.blocking_send(cmd).is_err() {
            return Err(SinkError::Restart(self.failed.get().unwrap_or_else(|| "the target writer stopped".into())));
        }
        Ok(())
    }

    fn flush_all(&mut self) -> Result<(), SinkError> {
        let names: Vec<String> = self.batches.iter().filter(|(_, b)| b.live > 0).map(|(k, _)| k.clone()).collect();
        for n in names {
            let b = self.batches.get_mut(&n).expect("listed");
            let cmd = Cmd::Batch { table: b.table.clone(), rows: b.take() };
            self.send(cmd)?;
        }
        self.batches.clear();
        Ok(())
    }
}

impl Drop for SqlWriter {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl SinkWriter for SqlWriter {
    fn name(&self) -> &'static str {
        match self.dialect {
            Dialect::Mysql => "mysql",
            Dialect::Postgres => "postgres",
        }
    }

    fn write(&mut self, epoch: u64, _table: TableId, change: &Change) -> Result<(), SinkError> {
        self.write_owned(epoch, change.clone()).map_err(|(e, _)| e)
    }

    fn write_owned(&mut self, _epoch: u64, change: Change) -> Result<(), (SinkError, Change)> {
        let table = change.table;
        if let Some(msg) = self.failed.get() {
            return Err((SinkError::Restart(msg), change));
        }
        // A stopped table's changes still go through the batch and the I/O task, which
        // archives them: in order with the ones already on their way.
        let t = match self.target_for(table, &change) {
            Ok(t) => t,
            Err(e) => return Err((e, change)),
        };
        let netting = self.upsert && !t.key.is_empty();
        let batch_rows = self.batch_rows;
        let b = match self.batches.get_mut(&t.qname) {
            Some(b) if Arc::ptr_eq(&b.table.schema, &t.schema) || b.table.schema == t.schema => b,
            Some(_) => {
                // The table's schema changed mid-batch: send what was written with the old one.
                let mut old = self.batches.remove(&t.qname).expect("present");
                let cmd = Cmd::Batch { table: old.table.clone(), rows: old.take() };
                if let Err(e) = self.send(cmd) {
                    return Err((e, change));
                }
                self.batches.entry(t.qname.clone()).or_insert_with(|| Batch {
                    table: t.clone(),
                    rows: Vec::new(),
                    slots: HashMap::new(),
                    overflow: Vec::new(),
                    live: 0,
                    netting,
                })
            }
            None => self.batches.entry(t.qname.clone()).or_insert_with(|| Batch {
                table: t.clone(),
                rows: Vec::new(),
                slots: HashMap::new(),
                overflow: Vec::new(),
                live: 0,
                netting,
            }),
        };
        b.push(change);
        if b.live >= batch_rows {
            let cmd = Cmd::Batch { table: b.table.clone(), rows: b.take() };
            // The change is in the batch: a failed send is reported by the next call or commit.
            if let Err(e) = self.send(cmd) {
                self.failed.set(e.to_string());
            }
        }
        Ok(())
    }

    fn commit(&mut self, epoch: u64) -> Result<(), SinkError> {
        self.flush_all()?;
        let (reply, rx) = std::sync::mpsc::sync_channel(1);
        self.send(Cmd::Commit { epoch, reply })?;
        match rx.recv() {
            Ok(Ok(())) => {
                if self.exactly_once {
                    self.committed = self.committed.max(epoch);
                }
                Ok(())
            }
            Ok(Err(e)) => Err(SinkError::Restart(e)),
            Err(_) => Err(SinkError::Restart(self.failed.get().unwrap_or_else(|| "the target writer stopped".into()))),
        }
    }

    fn start_commit(&mut self, epoch: u64) -> Result<(), SinkError> {
        self.flush_all()?;
        let (reply, rx) = std::sync::mpsc::sync_channel(1);
        self.send(Cmd::Commit { epoch, reply })?;
        self.replies.push_back((epoch, rx));
        Ok(())
    }

    fn committed_upto(&mut self) -> Result<Option<u64>, SinkError> {
        let mut done = None;
        while let Some((epoch, rx)) = self.replies.front() {
            match rx.try_recv() {
                Ok(Ok(())) => {
                    done = Some(*epoch);
                    if self.exactly_once {
                        self.committed = self.committed.max(*epoch);
                    }
                    self.replies.pop_front();
                }
                Ok(Err(e)) => return Err(SinkError::Restart(e)),
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    return Err(SinkError::Restart(
                        self.failed.get().unwrap_or_else(|| "the target writer stopped".into()),
                    ))
                }
            }
        }
        Ok(done)
    }

    fn commits_later(&self) -> bool {
        true
    }

    fn follow_schema_change(&mut self, _epoch: u64, event: &SchemaEvent) -> Result<(), SinkError> {
        if let SchemaChangeKind::RenameColumn { from, to } = &event.change {
            self.renames.entry(event.table).or_default().push((from.clone(), to.clone()));
        }
        // Later rows get a fresh view of the table.
        self.tables.retain(|(t, _), _| *t != event.table);
        Ok(())
    }

    fn takes_ddl(&self) -> bool {
        true
    }

    fn committed(&self) -> u64 {
        if self.exactly_once {
            self.committed
        } else {
            0
        }
    }
}

/// A statement the task runs.
enum Stmt {
    Sql(String),
    /// MySQL family: `LOAD DATA LOCAL INFILE` (replace rows with equal keys when set).
    Load {
        data: Vec<u8>,
        replace: bool,
    },
    /// PostgreSQL: `COPY` straight into the table.
    Copy(Vec<u8>),
    /// PostgreSQL: `COPY` into a staging table, then one `INSERT … SELECT … ON CONFLICT`.
    Merge(Vec<u8>),
    /// PostgreSQL, insert-only upserts (the snapshot): a plain `COPY` into the table; if a key
    /// exists already, rolled back and done as [`Stmt::Merge`].
    CopyOrMerge(Vec<u8>),
}

struct IoTask {
    db: Option<Db>,
    target: Arc<SqlTarget>,
    in_txn: bool,
    exactly_once: bool,
    upsert: bool,
    policy: WriteErrorPolicy,
    task: String,
    worker: usize,
    plan: Arc<Compiled>,
    dirty: DirtyArchive,
    metrics: Arc<Metrics>,
    stops: Arc<TableStops>,
    failed: Arc<Failed>,
    /// `LOAD DATA` character set per target table (MySQL family).
    charsets: HashMap<String, &'static str>,
}

impl IoTask {
    async fn run(mut self, mut rx: tokio::sync::mpsc::Receiver<Cmd>) {
        while let Some(cmd) = rx.recv().await {
            match cmd {
                Cmd::Batch { table, rows } => {
                    if self.failed.get().is_some() {
                        continue;
                    }
                    if let Err(e) = self.batch(&table, rows).await {
                        self.fail(e);
                    }
                }
                Cmd::Commit { epoch, reply } => {
                    let r = match self.failed.get() {
                        Some(f) => Err(f),
                        None => match self.commit(epoch).await {
                            Ok(()) => Ok(()),
                            Err(e) => {
                                self.fail(e);
                                Err(self.failed.get().unwrap_or_default())
                            }
                        },
                    };
                    let _ = reply.send(r);
                }
            }
        }
        if let Some(Db::My(c)) = self.db.take() {
            let _ = c.disconnect().await;
        }
    }

    fn fail(&mut self, e: DbError) {
        let what = match &e {
            DbError::Transient(_) => "the target failed (a restart may fix it)",
            DbError::Fatal(_) => "the target refused the work",
            DbError::Row(_) => "the target rejected a row",
        };
        tracing::debug!(worker = self.worker, error = %e, "target writer failed");
        self.failed.set(format!("{what}: {e}"));
        self.db = None;
    }

    async fn db(&mut self) -> Result<&mut Db, DbError> {
        if self.db.is_none() {
            self.db = Some(self.target.connect().await?);
            self.in_txn = false;
        }
        Ok(self.db.as_mut().expect("just set"))
    }

    async fn exec(&mut self, sql: &str) -> Result<(), DbError> {
        self.db().await?.exec(sql).await
    }

    async fn batch(&mut self, t: &Arc<TargetTable>, rows: Vec<Change>) -> Result<(), DbError> {
        if self.exactly_once {
            if !self.in_txn {
                self.exec("BEGIN").await?;
                self.in_txn = true;
            }
        } else {
            self.exec("BEGIN").await?;
        }
        self.apply(t, rows).await?;
        if !self.exactly_once {
            self.exec("COMMIT").await?;
        }
        Ok(())
    }

    async fn commit(&mut self, epoch: u64) -> Result<(), DbError> {
        tracing::debug!(worker = self.worker, epoch, "committing");
        if self.exactly_once {
            if !self.in_txn {
                self.exec("BEGIN").await?;
            }
            let sql = self.target.progress_upsert(&self.task, self.worker, epoch);
            self.exec(&sql).await?;
            self.flush_dirty()?;
            self.exec("COMMIT").await?;
            self.in_txn = false;
        } else {
            self.flush_dirty()?;
        }
        Ok(())
    }

    fn flush_dirty(&self) -> Result<(), DbError> {
        self.dirty.flush().map_err(|e| DbError::Transient(format!("dirty archive: {e}")))
    }

    /// Orders a batch for writing: upsert with a key: deletes, then upserts (keys are unique
    /// after netting); otherwise: as they came.
    fn order(&self, t: &TargetTable, rows: Vec<Change>) -> Vec<Change> {
        if self.upsert && !t.key.is_empty() {
            let (mut dels, ups): (Vec<Change>, Vec<Change>) = rows.into_iter().partition(|c| c.op == Op::Delete);
            dels.extend(ups);
            dels
        } else {
            rows
        }
    }

    async fn apply(&mut self, t: &Arc<TargetTable>, rows: Vec<Change>) -> Result<(), DbError> {
        if let Some(reason) = self.stops.reason(t.id) {
            for c in &rows {
                self.reject(t, c, &format!("table stopped (write_error: partial-stop): {reason}"), false)?;
            }
            return Ok(());
        }
        let rows = self.order(t, rows);
        // A value the target cannot hold fails the build: the row-by-row pass finds it.
        let stmts = build(self.target.dialect, self.upsert, self.target.bulk, t, &rows).ok();
        if let Some(stmts) = stmts {
            self.exec("SAVEPOINT ferry_batch").await?;
            match self.run_stmts(t, stmts).await {
                Ok(()) => {
                    self.exec("RELEASE SAVEPOINT ferry_batch").await?;
                    return Ok(());
                }
                Err(DbError::Row(e)) => {
                    tracing::debug!(table = %t.name, error = %e, "batch rejected, writing it row by row");
                    self.exec("ROLLBACK TO SAVEPOINT ferry_batch").await?;
                    self.exec("RELEASE SAVEPOINT ferry_batch").await?;
                }
                Err(other) => return Err(other),
            }
        }
        for c in &rows {
            if self.stops.reason(t.id).is_some() {
                let reason = self.stops.reason(t.id).unwrap_or_default();
                self.reject(t, c, &format!("table stopped (write_error: partial-stop): {reason}"), false)?;
                continue;
            }
            let stmts = match build(self.target.dialect, self.upsert, false, t, std::slice::from_ref(c)) {
                Ok(s) => s,
                Err(e) => {
                    self.reject(t, c, &e.0, true)?;
                    continue;
                }
            };
            self.exec("SAVEPOINT ferry_row").await?;
            match self.run_stmts(t, stmts).await {
                Ok(()) => self.exec("RELEASE SAVEPOINT ferry_row").await?,
                Err(DbError::Row(e)) => {
                    self.exec("ROLLBACK TO SAVEPOINT ferry_row").await?;
                    self.reject(t, c, &e, true)?;
                }
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }

    /// A row the target rejected (or that follows a stop): per the write-error policy.
    fn reject(&mut self, t: &TargetTable, c: &Change, reason: &str, first: bool) -> Result<(), DbError> {
        let source = self.plan.catalog.get(t.id).name.to_string();
        if first {
            match self.policy {
                WriteErrorPolicy::Restart => {
                    return Err(DbError::Row(format!(
                        "{} rejected a row of {source} at {} (write_error: restart): {reason}",
                        t.name, c.pos
                    )));
                }
                WriteErrorPolicy::PartialStop => {
                    self.stops.stop(t.id, &source, &format!("{} rejected a row at {}: {reason}", t.name, c.pos));
                }
                WriteErrorPolicy::Ignore => {}
            }
        }
        self.metrics.dirty.fetch_add(1, Ordering::Relaxed);
        self.metrics.rows_out.fetch_sub(1, Ordering::Relaxed);
        let reason = if first { format!("{}: {reason}", t.name) } else { reason.to_string() };
        self.dirty.record("sink", &source, c, &reason);
        Ok(())
    }

    async fn run_stmts(&mut self, t: &TargetTable, stmts: Vec<Stmt>) -> Result<(), DbError> {
        let dialect = self.target.dialect;
        for s in stmts {
            let known = self.charsets.get(&t.qname).copied();
            let db = self.db().await?;
            match s {
                Stmt::Sql(sql) => db.exec(&sql).await.inspect_err(|e| {
                    tracing::debug!(error = %e, sql = %sql.chars().take(300).collect::<String>(), "statement failed")
                })?,
                Stmt::Load { data, replace } => {
                    let charset = match known {
                        Some(c) => c,
                        None => db.load_charset(&t.db, &t.table).await?,
                    };
                    match (charset, (charset == "latin1").then(|| super::conn::to_latin1(&data)).flatten()) {
                        ("latin1", Some(latin1)) => db.load_data(&t.qname, &t.cols, latin1, replace, "latin1").await?,
                        ("latin1", None) => db.load_data(&t.qname, &t.cols, data, replace, "utf8mb4").await?,
                        _ => db.load_data(&t.qname, &t.cols, data, replace, charset).await?,
                    }
                    self.charsets.insert(t.qname.clone(), charset);
                }
                Stmt::Copy(data) => db.copy_in(&t.qname, &t.cols, data).await?,
                Stmt::CopyOrMerge(data) => {
                    db.exec("SAVEPOINT ferry_copy").await?;
                    match db.copy_in(&t.qname, &t.cols, data.clone()).await {
                        Ok(()) => db.exec("RELEASE SAVEPOINT ferry_copy").await?,
                        Err(DbError::Row(e)) => {
                            tracing::debug!(table = %t.name, error = %e, "plain COPY refused; merging from now on");
                            db.exec("ROLLBACK TO SAVEPOINT ferry_copy").await?;
                            t.merge_only.store(true, Ordering::Relaxed);
                            merge(db, dialect, t, data).await?;
                        }
                        Err(e) => return Err(e),
                    }
                }
                Stmt::Merge(data) => merge(db, dialect, t, data).await?,
            }
        }
        Ok(())
    }
}

/// PostgreSQL upsert of bulk rows: `COPY` into the session's staging table, one
/// `INSERT … SELECT … ON CONFLICT`, then empty the staging table.
async fn merge(db: &mut Db, d: Dialect, t: &TargetTable, data: Vec<u8>) -> Result<(), DbError> {
    let stage = db.staging(&t.qname).await?;
    db.copy_in(&stage, &t.cols, data).await?;
    let mut sql = format!("INSERT INTO {} ({}) SELECT {} FROM {stage} ", t.qname, t.cols, t.cols);
    on_conflict(d, t, &mut sql);
    db.exec(&sql).await?;
    db.exec(&format!("TRUNCATE {stage}")).await
}

/// `ON CONFLICT (key) DO UPDATE SET …` (PostgreSQL) or `ON DUPLICATE KEY UPDATE …` (MySQL).
fn on_conflict(d: Dialect, t: &TargetTable, sql: &mut String) {
    let non_key: Vec<&str> =
        t.schema.columns.iter().enumerate().filter(|(i, _)| !t.key.contains(i)).map(|(_, c)| c.name.as_str()).collect();
    match d {
        Dialect::Mysql => {
            sql.push_str(" ON DUPLICATE KEY UPDATE ");
            let cols: Vec<&str> =
                if non_key.is_empty() { vec![t.schema.columns[t.key[0]].name.as_str()] } else { non_key };
            for (i, c) in cols.iter().enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                d.ident(c, sql);
                sql.push_str("=VALUES(");
                d.ident(c, sql);
                sql.push(')');
            }
        }
        Dialect::Postgres => {
            sql.push_str(" ON CONFLICT (");
            for (i, &k) in t.key.iter().enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                d.ident(&t.schema.columns[k].name, sql);
            }
            if non_key.is_empty() {
                sql.push_str(") DO NOTHING");
                return;
            }
            sql.push_str(") DO UPDATE SET ");
            for (i, c) in non_key.iter().enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                d.ident(c, sql);
                sql.push_str("=EXCLUDED.");
                d.ident(c, sql);
            }
        }
    }
}

fn row_values(d: Dialect, row: &[Value], out: &mut String) -> Result<(), EncodeError> {
    out.push('(');
    for (i, v) in row.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        d.literal(v, out)?;
    }
    out.push(')');
    Ok(())
}

/// Statements of the form `head item,item,… tail`, each cut once it reaches [`MAX_STATEMENT`].
fn chunked<R>(
    rows: &[R],
    head: &str,
    mut item: impl FnMut(&R, &mut String) -> Result<(), EncodeError>,
    tail: impl Fn(&mut String),
    out: &mut Vec<Stmt>,
) -> Result<(), EncodeError> {
    let mut sql = String::new();
    for row in rows {
        if sql.is_empty() {
            sql.push_str(head);
        } else {
            sql.push(',');
        }
        item(row, &mut sql)?;
        if sql.len() >= MAX_STATEMENT {
            tail(&mut sql);
            out.push(Stmt::Sql(std::mem::take(&mut sql)));
        }
    }
    if !sql.is_empty() {
        tail(&mut sql);
        out.push(Stmt::Sql(sql));
    }
    Ok(())
}

/// `INSERT INTO t (cols) VALUES …` statements for `rows` (with the upsert clause when asked).
fn inserts(
    d: Dialect,
    t: &TargetTable,
    rows: &[&[Value]],
    upsert: bool,
    out: &mut Vec<Stmt>,
) -> Result<(), EncodeError> {
    let head = format!("INSERT INTO {} ({}) VALUES ", t.qname, t.cols);
    let tail = |sql: &mut String| {
        if upsert {
            on_conflict(d, t, sql)
        }
    };
    chunked(rows, &head, |row, sql| row_values(d, row, sql), tail, out)
}

/// `DELETE … WHERE key IN (…)` statements for the keys of `rows`.
fn deletes(d: Dialect, t: &TargetTable, rows: &[&[Value]], out: &mut Vec<Stmt>) -> Result<(), EncodeError> {
    let mut head = format!("DELETE FROM {} WHERE (", t.qname);
    for (i, &k) in t.key.iter().enumerate() {
        if i > 0 {
            head.push(',');
        }
        d.ident(&t.schema.columns[k].name, &mut head);
    }
    head.push_str(") IN (");
    let item = |row: &&[Value], sql: &mut String| {
        if let [k] = t.key[..] {
            d.literal(&row[k], sql)
        } else {
            let key: Vec<Value> = t.key.iter().map(|&k| row[k].clone()).collect();
            row_values(d, &key, sql)
        }
    };
    chunked(rows, &head, item, |sql| sql.push(')'), out)
}

fn bulk_data(d: Dialect, rows: &[&[Value]]) -> Result<Vec<u8>, EncodeError> {
    let mut data = Vec::with_capacity(rows.len() * 64);
    for row in rows {
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                data.push(b'\t');
            }
            d.bulk_field(v, &mut data)?;
        }
        data.push(b'\n');
    }
    Ok(data)
}

/// Statements that write whole rows: the bulk path for large batches, else multi-row INSERTs
/// (with the upsert clause when `upsert`).
#[allow(clippy::too_many_arguments)]
fn rows_out(
    d: Dialect,
    t: &TargetTable,
    rows: &[&[Value]],
    upsert: bool,
    inserts_only: bool,
    bulk: bool,
    out: &mut Vec<Stmt>,
) -> Result<(), EncodeError> {
    if !bulk || rows.len() < BULK_MIN_ROWS {
        return inserts(d, t, rows, upsert, out);
    }
    let data = bulk_data(d, rows)?;
    out.push(match (d, upsert) {
        (Dialect::Mysql, replace) => Stmt::Load { data, replace },
        (Dialect::Postgres, false) => Stmt::Copy(data),
        (Dialect::Postgres, true) if inserts_only && !t.merge_only.load(Ordering::Relaxed) => Stmt::CopyOrMerge(data),
        (Dialect::Postgres, true) => Stmt::Merge(data),
    });
    Ok(())
}

/// The statements that write `rows` (already ordered) to `t`.
fn build(d: Dialect, upsert: bool, bulk: bool, t: &TargetTable, rows: &[Change]) -> Result<Vec<Stmt>, EncodeError> {
    let mut out = Vec::new();
    let bulk = bulk && t.bulk;
    if !upsert || t.key.is_empty() {
        // Append: every change is a new row. (The plan check refuses upsert for keyless tables.)
        let images: Vec<&[Value]> = rows.iter().map(|c| c.image().as_slice()).collect();
        rows_out(d, t, &images, false, true, bulk, &mut out)?;
        return Ok(out);
    }
    let split = rows.iter().position(|c| c.op != Op::Delete).unwrap_or(rows.len());
    let dels: Vec<&[Value]> = rows[..split].iter().map(|c| c.image().as_slice()).collect();
    let ups: Vec<&[Value]> = rows[split..].iter().map(|c| c.image().as_slice()).collect();
    deletes(d, t, &dels, &mut out)?;
    let inserts_only = rows[split..].iter().all(|c| c.op == Op::Insert);
    rows_out(d, t, &ups, true, inserts_only, bulk, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_operators::{Column, ColumnType, Position, TableName};

    fn table(d: Dialect, key: Vec<usize>) -> TargetTable {
        let schema = TableSchema {
            name: TableName::new("db", "t"),
            columns: vec![
                Column::new("id", ColumnType::Int { bits: 32, unsigned: false }, false),
                Column::new("name", ColumnType::String { max_chars: Some(10), fixed: false }, true),
            ],
            primary_key: key,
            unique_keys: vec![],
            version: 1,
        };
        TargetTable::new(d, 0, "db", "t", Arc::new(schema))
    }

    fn change(op: Op, id: i64, name: &str) -> Change {
        let row = vec![Value::Int(id), Value::Text(name.into())];
        let (before, after) = match op {
            Op::Insert => (None, Some(row)),
            Op::Delete => (Some(row), None),
            Op::Update => (Some(row.clone()), Some(row)),
        };
        Change { table: 0, op, before, after, pos: Position::None, commit_micros: 0, schema: None }
    }

    fn sql(stmts: Vec<Stmt>) -> Vec<String> {
        stmts
            .into_iter()
            .map(|s| match s {
                Stmt::Sql(s) => s,
                _ => "bulk".into(),
            })
            .collect()
    }

    #[test]
    fn upserts_delete_first_then_insert_with_the_conflict_clause() {
        let t = table(Dialect::Postgres, vec![0]);
        let rows = vec![change(Op::Delete, 1, "a"), change(Op::Insert, 2, "b'c")];
        let s = sql(build(Dialect::Postgres, true, false, &t, &rows).unwrap());
        assert_eq!(
            s,
            vec![
                "DELETE FROM \"db\".\"t\" WHERE (\"id\") IN ('1')".to_string(),
                "INSERT INTO \"db\".\"t\" (\"id\",\"name\") VALUES ('2','b''c') ON CONFLICT (\"id\") DO UPDATE SET \"name\"=EXCLUDED.\"name\"".to_string()
            ]
        );
        let t = table(Dialect::Mysql, vec![0]);
        let s = sql(build(Dialect::Mysql, true, false, &t, &rows[1..]).unwrap());
        assert_eq!(
            s,
            vec!["INSERT INTO `db`.`t` (`id`,`name`) VALUES (2,'b\\'c') ON DUPLICATE KEY UPDATE `name`=VALUES(`name`)"]
        );
    }

    #[test]
    fn netting_keeps_the_last_change_of_a_key_in_its_last_place() {
        let t = Arc::new(table(Dialect::Mysql, vec![0]));
        let mut b =
            Batch { table: t, rows: Vec::new(), slots: HashMap::new(), overflow: Vec::new(), live: 0, netting: true };
        b.push(change(Op::Insert, 1, "a"));
        b.push(change(Op::Insert, 2, "b"));
        b.push(change(Op::Update, 1, "a2"));
        b.push(change(Op::Delete, 2, "b"));
        assert_eq!(b.live, 2);
        let rows = b.take();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].op, rows[1].op), (Op::Update, Op::Delete));
        assert_eq!(rows[0].after.as_ref().unwrap()[1], Value::Text("a2".into()));
    }

    #[test]
    fn a_value_the_target_cannot_hold_fails_the_build() {
        let t = table(Dialect::Mysql, vec![0]);
        let mut c = change(Op::Insert, 1, "a");
        c.after.as_mut().unwrap()[1] = Value::Double(f64::NAN);
        assert!(build(Dialect::Mysql, true, false, &t, &[c]).is_err());
    }
}

#[cfg(test)]
mod netting_tests {
    use super::tests_support::*;
    use super::*;

    #[test]
    fn netting_leaves_one_change_per_key_over_many_similar_keys() {
        let t = Arc::new(text_key_table());
        let mut b =
            Batch { table: t, rows: Vec::new(), slots: HashMap::new(), overflow: Vec::new(), live: 0, netting: true };
        for round in 0..3 {
            for n in 0..20_000 {
                b.push(text_change(if round == 0 { Op::Insert } else { Op::Update }, &format!("acct_{n}")));
            }
        }
        let rows = b.take();
        assert_eq!(rows.len(), 20_000);
        let keys: std::collections::HashSet<String> = rows.iter().map(|c| c.image()[0].to_string()).collect();
        assert_eq!(keys.len(), 20_000);
        assert!(rows.iter().all(|c| c.op == Op::Update));
    }
}

#[cfg(test)]
mod tests_support {
    use super::*;
    use ferry_operators::{Column, ColumnType, Position, TableName};

    pub fn text_key_table() -> TargetTable {
        let schema = TableSchema {
            name: TableName::new("db", "t"),
            columns: vec![Column::new("login", ColumnType::String { max_chars: Some(64), fixed: false }, false)],
            primary_key: vec![],
            unique_keys: vec![vec![0]],
            version: 1,
        };
        TargetTable::new(Dialect::Postgres, 0, "db", "t", Arc::new(schema))
    }

    pub fn text_change(op: Op, key: &str) -> Change {
        let row = vec![Value::Text(key.into())];
        let (before, after) = match op {
            Op::Insert => (None, Some(row)),
            Op::Delete => (Some(row), None),
            Op::Update => (Some(row.clone()), Some(row)),
        };
        Change { table: 0, op, before, after, pos: Position::None, commit_micros: 0, schema: None }
    }
}
