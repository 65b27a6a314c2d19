//! The database writer of one sink worker, and the I/O task that owns its connection.
//!
//! ```text
//!  timely worker (SqlWriter)            tokio: encoding stage          tokio: I/O task (own session)
//!  write(e, change) ─► batch per table  order + build statements ─►   BEGIN (exactly-once: once per epoch)
//!                      upsert: netted   (one built batch waits)       SAVEPOINT b
//!                      append: every                                  deletes; upserts | LOAD DATA | COPY
//!                      full ⇒ send ──Cmd::Batch──►                    row error ⇒ ROLLBACK TO b, row by row,
//!  commit(e) ──────────────────────Cmd::Commit──►  (in order) ──►       each rejected row per the policy
//!     the reply comes back later                                      progress row (exactly-once); COMMIT
//! ```
//!
//! The worker encodes nothing: batches move to the encoding stage, which orders them and builds
//! their statements while the session runs the previous batch's, so reading, encoding and
//! writing overlap. Per key, changes arrive in source order (the sink stage exchanges by key and
//! feeds epochs in order); within a batch a key's changes are netted to the last one, and
//! deletes run before upserts.
//!
//! PostgreSQL, exactly-once: a batch that is one `COPY` leaves it open, and the next batches
//! of the same table go into it (up to 64k rows, then a new one) with no round trip of their
//! own; anything else, or the commit, ends it. A row the server rejects fails the whole `COPY`:
//! it rolls back to its savepoint and its batches are written again one by one.
//!
//! Errors: a row the target rejects is handled by the write-error policy; a lost connection,
//! a deadlock or a fatal error fails the run (the supervisor restarts it from the last
//! checkpoint, within `max_restarts`).

use super::conn::{Db, DbError, SqlTarget};
use super::encode::{Dialect, EncodeError};
use crate::catalog::create::{AdminError, Creating};
use crate::catalog::types::{plan_value_rules, ValueRule};
use crate::connector::{SinkError, SinkWriter, TableStops, WriterCtx};
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
/// Tables with a batch open at once, at most: a new one sends the longest-open batch first.
/// A snapshot of thousands of small tables writes as it reads instead of all at the commit
/// (and holds at most this many partial batches). The rows held across a worker's batches are
/// bounded too, by `batch_rows` (see [`SqlWriter::write_owned`]).
const MAX_OPEN_BATCHES: usize = 128;

mod io;
mod statements;

pub use statements::{repair_delete, repair_upsert};

use io::IoTask;

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
    /// Per column, the rule of the plan's type choices its values go through (PostgreSQL;
    /// empty: none).
    rules: Vec<Option<ValueRule>>,
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
            rules: Vec::new(),
        }
    }

    /// With the PostgreSQL type-choice rules of `plan` for its columns.
    fn with_rules(mut self, plan: &Compiled) -> TargetTable {
        self.rules = plan_value_rules(plan, &self.schema);
        self
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
    fn new(table: Arc<TargetTable>, netting: bool) -> Batch {
        Batch { table, rows: Vec::new(), slots: HashMap::new(), overflow: Vec::new(), live: 0, netting }
    }

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

/// A target table made for a change's schema (`None`: the plan's).
type SeenTable = (Option<Arc<TableSchema>>, Arc<TargetTable>);

/// A database sink worker's writer.
pub struct SqlWriter {
    plan: Arc<Compiled>,
    dialect: Dialect,
    upsert: bool,
    exactly_once: bool,
    batch_rows: usize,
    /// Per table and schema version: the change's schema it was made for and the target table.
    tables: HashMap<(TableId, u32), SeenTable>,
    batches: HashMap<String, Batch>,
    /// The tables of `batches` in the order their batches opened (may name sent ones).
    opened: std::collections::VecDeque<String>,
    /// Rows held in `batches`, all tables together.
    held: usize,
    tx: Option<tokio::sync::mpsc::Sender<Cmd>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Tells the I/O task to start no further statement (see `Drop`).
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// Disconnected when the I/O task has ended.
    ended: std::sync::mpsc::Receiver<()>,
    failed: Arc<Failed>,
    committed: u64,
    /// Commits sent and not answered yet, oldest first.
    replies: std::collections::VecDeque<(u64, std::sync::mpsc::Receiver<Result<(), String>>)>,
    /// Column renames the target took (`from`, `to`), per table, in order: a row's column
    /// keeps its name from the start of the run, the target's has the new one.
    renames: HashMap<TableId, Vec<(String, String)>>,
    /// Target tables still being created beside the load: the I/O task waits for a table
    /// before its first batch; a failure to create one fails the run at the next commit.
    creating: Option<Arc<Creating>>,
}

impl SqlWriter {
    /// Connects to `target` (and, exactly-once, reads this worker's committed epoch) and
    /// starts the I/O task; the semantics and policy are `cx`'s (a replay writes at-least-once).
    pub fn new(cx: &WriterCtx, target: Arc<SqlTarget>) -> Result<SqlWriter, SinkError> {
        let rt = sink_runtime();
        let exactly_once = cx.semantics == Semantics::ExactlyOnce;
        let task_name = cx.plan.plan.settings.task.clone();
        let (db, committed) = rt
            .block_on(async {
                let mut db = target.connect().await?;
                let committed = if exactly_once { target.committed(&mut db, &task_name, cx.worker).await? } else { 0 };
                Ok::<_, DbError>((db, committed))
            })
            .map_err(|e| SinkError::Restart(e.to_string()))?;
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let failed = Arc::new(Failed::default());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (ended_tx, ended) = std::sync::mpsc::sync_channel(1);
        let io = IoTask {
            db: Some(db),
            target: target.clone(),
            in_txn: false,
            begin_pending: false,
            exactly_once,
            upsert: cx.plan.plan.settings.write_mode == WriteMode::Upsert,
            policy: cx.policy,
            task: task_name,
            worker: cx.worker,
            plan: cx.plan.clone(),
            dirty: cx.dirty.clone(),
            metrics: cx.metrics.clone(),
            stops: cx.stops.clone(),
            failed: failed.clone(),
            charsets: HashMap::new(),
            stop: stop.clone(),
            _ended: ended_tx,
            copy: None,
            creating: cx.creating.clone(),
        };
        let task = rt.spawn(io.run(rx));
        Ok(SqlWriter {
            dialect: target.dialect,
            upsert: cx.plan.plan.settings.write_mode == WriteMode::Upsert,
            batch_rows: cx.plan.plan.settings.runtime.batch_rows,
            plan: cx.plan.clone(),
            exactly_once,
            tables: HashMap::new(),
            batches: HashMap::new(),
            opened: std::collections::VecDeque::new(),
            held: 0,
            tx: Some(tx),
            task: Some(task),
            stop,
            ended,
            failed,
            committed,
            replies: std::collections::VecDeque::new(),
            renames: cx.renames.clone(),
            creating: cx.creating.clone(),
        })
    }

    fn target_for(&mut self, table: TableId, change: &Change) -> Result<Arc<TargetTable>, SinkError> {
        let tp = self.plan.table(table);
        let version = change.schema.as_ref().map_or(0, |s| s.version);
        if tp.static_names.is_some() {
            if let Some((seen, t)) = self.tables.get(&(table, version)) {
                // The same schema (one `Arc` while streaming); rows of a replay bring their
                // own copies, which may be of another run with the same version number.
                let same = match (&change.schema, seen) {
                    (Some(s), Some(seen)) => Arc::ptr_eq(s, seen) || s == seen,
                    (None, None) => true,
                    _ => false,
                };
                if same {
                    return Ok(t.clone());
                }
            }
        }
        let seen = change.schema.clone();
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
        let t = Arc::new(TargetTable::new(self.dialect, table, &db, &tb, schema).with_rules(&self.plan));
        if tp.static_names.is_some() {
            self.tables.insert((table, version), (seen, t.clone()));
        }
        Ok(t)
    }

    fn send(&mut self, cmd: Cmd) -> Result<(), SinkError> {
        let tx = self.tx.as_ref().expect("open until drop");
        if tx.blocking_send(cmd).is_err() {
            return Err(self.stopped());
        }
        Ok(())
    }

    /// The I/O task stopped: why.
    fn stopped(&self) -> SinkError {
        self.failure(self.failed.get().unwrap_or_else(|| "the target writer stopped".into()))
    }

    /// A failure of the I/O task (`msg`): the run restarts, unless a target table could not
    /// be created (a statement the target refuses fails it for good).
    fn failure(&self, msg: String) -> SinkError {
        match self.creation_failed() {
            Some(fatal @ SinkError::Fatal(_)) => fatal,
            _ => SinkError::Restart(msg),
        }
    }

    /// A failed creation of a target table beside the load: refused, the run fails for good;
    /// a lost session, it restarts.
    fn creation_failed(&self) -> Option<SinkError> {
        self.creating.as_ref()?.failure().map(|e| match e {
            AdminError::Refused(m) => SinkError::Fatal(format!("target: {m}")),
            AdminError::Unreachable(m) => SinkError::Restart(format!("target: {m}")),
        })
    }

    /// A commit fails at once when a target table could not be created (one no row went to
    /// yet included).
    fn check_creation(&self) -> Result<(), SinkError> {
        self.creation_failed().map_or(Ok(()), Err)
    }

    fn flush_all(&mut self) -> Result<(), SinkError> {
        let names: Vec<String> = self.batches.iter().filter(|(_, b)| b.live > 0).map(|(k, _)| k.clone()).collect();
        for n in names {
            let b = self.batches.get_mut(&n).expect("listed");
            let cmd = Cmd::Batch { table: b.table.clone(), rows: b.take() };
            self.send(cmd)?;
        }
        self.batches.clear();
        self.opened.clear();
        self.held = 0;
        Ok(())
    }

    /// Sends the longest-open batch (if it still holds rows).
    fn send_oldest(&mut self) -> Result<(), SinkError> {
        let Some(name) = self.opened.pop_front() else { return Ok(()) };
        if let Some(mut b) = self.batches.remove(&name) {
            if b.live > 0 {
                self.held -= b.live;
                let cmd = Cmd::Batch { table: b.table.clone(), rows: b.take() };
                self.send(cmd)?;
            }
        }
        Ok(())
    }

    /// Before a table's batch opens: with [`MAX_OPEN_BATCHES`] open, sends the longest-open
    /// one.
    fn make_room(&mut self) -> Result<(), SinkError> {
        while self.batches.len() >= MAX_OPEN_BATCHES && !self.opened.is_empty() {
            self.send_oldest()?;
        }
        Ok(())
    }
}

/// How long a dropped writer waits for the statement its I/O task is running.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(30);

impl Drop for SqlWriter {
    /// The I/O task finishes the statement it runs (a `COMMIT` sent is answered) and starts no
    /// other; the drop waits for that. A run that fails and starts again in this process must
    /// not read this worker's committed epoch while a commit of the old run is still on its way:
    /// it would replay an epoch that commit then writes too.
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.tx.take();
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = self.ended.recv_timeout(DRAIN) {
            tracing::warn!("the target writer did not finish its statement within {}s; abandoning it", DRAIN.as_secs());
            if let Some(t) = self.task.take() {
                t.abort();
            }
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
            return Err((self.failure(msg), change));
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
                self.held -= old.live;
                let cmd = Cmd::Batch { table: old.table.clone(), rows: old.take() };
                if let Err(e) = self.send(cmd) {
                    return Err((e, change));
                }
                self.batches.entry(t.qname.clone()).or_insert_with(|| Batch::new(t.clone(), netting))
            }
            None => {
                if let Err(e) = self.make_room() {
                    return Err((e, change));
                }
                self.opened.push_back(t.qname.clone());
                self.batches.entry(t.qname.clone()).or_insert_with(|| Batch::new(t.clone(), netting))
            }
        };
        let before = b.live;
        b.push(change);
        self.held = self.held + b.live - before;
        if b.live >= batch_rows {
            self.held -= b.live;
            let cmd = Cmd::Batch { table: b.table.clone(), rows: b.take() };
            // The change is in the batch: a failed send is reported by the next call or commit.
            if let Err(e) = self.send(cmd) {
                self.failed.set(e.to_string());
            }
        }
        // Many tables' small batches together hold at most `batch_rows` rows: the oldest go
        // first, so a snapshot of many small tables writes while it reads.
        while self.held >= batch_rows && !self.opened.is_empty() {
            if let Err(e) = self.send_oldest() {
                self.failed.set(e.to_string());
                break;
            }
        }
        Ok(())
    }

    fn commit(&mut self, epoch: u64) -> Result<(), SinkError> {
        self.check_creation()?;
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
            Ok(Err(e)) => Err(self.failure(e)),
            Err(_) => Err(self.stopped()),
        }
    }

    fn start_commit(&mut self, epoch: u64) -> Result<(), SinkError> {
        self.check_creation()?;
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
                Ok(Err(e)) => return Err(self.failure(e)),
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return Err(self.stopped()),
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

#[cfg(test)]
mod tests {
    use super::statements::{build, Stmt};
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
        let mut b = Batch::new(t, true);
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
        let mut b = Batch::new(t, true);
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
