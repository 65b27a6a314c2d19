//! The writer's I/O task: one session per worker on the sink runtime, turning batches into
//! statements and running them (a savepoint per batch; a rejected row found row by row and
//! handled by the write-error policy), committing epochs with the worker's progress row.

use super::statements::{build, merge, Stmt};
use super::*;
use crate::connectors::sql::conn::CopyStream;

pub(super) struct IoTask {
    pub(super) db: Option<Db>,
    pub(super) target: Arc<SqlTarget>,
    pub(super) in_txn: bool,
    /// A `BEGIN` not sent yet: it goes with the next statement, in the same round trip.
    pub(super) begin_pending: bool,
    pub(super) exactly_once: bool,
    pub(super) upsert: bool,
    pub(super) policy: WriteErrorPolicy,
    pub(super) task: String,
    pub(super) worker: usize,
    pub(super) plan: Arc<Compiled>,
    pub(super) dirty: DirtyArchive,
    pub(super) metrics: Arc<Metrics>,
    pub(super) stops: Arc<TableStops>,
    pub(super) failed: Arc<Failed>,
    /// `LOAD DATA` character set per target table (MySQL family).
    pub(super) charsets: HashMap<String, &'static str>,
    /// Set when the writer is dropped: no further statement starts.
    pub(super) stop: Arc<std::sync::atomic::AtomicBool>,
    /// Dropped with the task (its end, or its cancellation): the writer's drop waits for it.
    pub(super) _ended: std::sync::mpsc::SyncSender<()>,
    /// A `COPY` the next batches of the same table join (exactly-once, PostgreSQL).
    pub(super) copy: Option<OpenCopy>,
    /// Target tables still being created beside the load: a batch waits for its table.
    pub(super) creating: Option<Arc<Creating>>,
}

/// Rows an open `COPY` takes, at most, before it ends: they are kept until it ends, since a
/// rejected row rolls back all of them.
const COPY_SPAN_ROWS: usize = 64 * 1024;

/// A `COPY` left open after a batch: the next batches of its table go into it without a
/// round trip of their own, and the target's backend does not wait between them.
pub(super) struct OpenCopy {
    table: Arc<TargetTable>,
    stream: CopyStream,
    /// The batches sent into it: written again, batch by batch, if the `COPY` fails on a row.
    batches: Vec<Vec<Change>>,
    rows: usize,
    /// Insert-only upserts: a key that exists already turns the table to merging.
    or_merge: bool,
}

/// The `COPY` data of a batch that is one plain `COPY` (`Some((data, or_merge))`).
fn lone_copy(stmts: &mut Option<Vec<Stmt>>) -> Option<(Vec<u8>, bool)> {
    match stmts.as_deref() {
        Some([Stmt::Copy(_)]) | Some([Stmt::CopyOrMerge(_)]) => {}
        _ => return None,
    }
    match stmts.take()?.pop()? {
        Stmt::Copy(data) => Some((data, false)),
        Stmt::CopyOrMerge(data) => Some((data, true)),
        _ => None,
    }
}

/// A batch ordered for writing with its statements built (`None`: a value the target cannot
/// hold, which the row-by-row pass finds), or a commit: what the encoding stage hands on.
enum Step {
    Batch { table: Arc<TargetTable>, rows: Vec<Change>, stmts: Option<Vec<Stmt>> },
    Commit { epoch: u64, reply: std::sync::mpsc::SyncSender<Result<(), String>> },
}

/// The encoding stage: orders each batch and builds its statements while the session runs
/// the previous batch's (the target's backend then waits for no encoding between batches).
struct Encoder {
    dialect: super::Dialect,
    upsert: bool,
    bulk: bool,
    failed: Arc<Failed>,
}

impl Encoder {
    async fn run(self, mut rx: tokio::sync::mpsc::Receiver<Cmd>, tx: tokio::sync::mpsc::Sender<Step>) {
        while let Some(cmd) = rx.recv().await {
            let step = match cmd {
                Cmd::Batch { table, rows } => {
                    if self.failed.get().is_some() {
                        continue;
                    }
                    let rows = order(self.upsert, &table, rows);
                    let stmts = build(self.dialect, self.upsert, self.bulk, &table, &rows).ok();
                    Step::Batch { table, rows, stmts }
                }
                Cmd::Commit { epoch, reply } => Step::Commit { epoch, reply },
            };
            if tx.send(step).await.is_err() {
                break;
            }
        }
    }
}

/// Orders a batch for writing: upsert with a key: deletes, then upserts (keys are unique
/// after netting); otherwise: as they came.
fn order(upsert: bool, t: &TargetTable, rows: Vec<Change>) -> Vec<Change> {
    if upsert && !t.key.is_empty() {
        let (mut dels, ups): (Vec<Change>, Vec<Change>) = rows.into_iter().partition(|c| c.op == Op::Delete);
        dels.extend(ups);
        dels
    } else {
        rows
    }
}

impl IoTask {
    pub(super) async fn run(mut self, rx: tokio::sync::mpsc::Receiver<Cmd>) {
        // One built batch waits while the session runs another.
        let (tx, mut steps) = tokio::sync::mpsc::channel(1);
        let encoder = Encoder {
            dialect: self.target.dialect,
            upsert: self.upsert,
            bulk: self.target.bulk,
            failed: self.failed.clone(),
        };
        tokio::spawn(encoder.run(rx, tx));
        while let Some(step) = steps.recv().await {
            if self.stop.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            match step {
                Step::Batch { table, rows, stmts } => {
                    if self.failed.get().is_some() {
                        continue;
                    }
                    if let Err(e) = self.created(table.id).await {
                        self.failed.set(e);
                        continue;
                    }
                    if let Err(e) = self.batch(&table, rows, stmts).await {
                        self.fail(e);
                    }
                }
                Step::Commit { epoch, reply } => {
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

    /// Waits until table `id` exists, when it is being created beside the load (checking
    /// every 100 ms whether the writer was dropped meanwhile).
    async fn created(&self, id: TableId) -> Result<(), String> {
        let Some(c) = &self.creating else { return Ok(()) };
        loop {
            match tokio::time::timeout(std::time::Duration::from_millis(100), c.ready(Some(id))).await {
                Ok(r) => return r.map_err(|e| format!("target: {e}")),
                Err(_) if self.stop.load(std::sync::atomic::Ordering::SeqCst) => {
                    return Err("the target writer stopped".into())
                }
                Err(_) => {}
            }
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
        self.copy = None;
        self.db = None;
    }

    async fn db(&mut self) -> Result<&mut Db, DbError> {
        if self.db.is_none() {
            self.db = Some(self.target.connect().await?);
            self.copy = None;
            self.in_txn = false;
            self.begin_pending = false;
        }
        Ok(self.db.as_mut().expect("just set"))
    }

    /// Runs `sql`, after the pending `BEGIN` if there is one (one round trip: both dialects
    /// take several statements in one query).
    async fn exec(&mut self, sql: &str) -> Result<(), DbError> {
        let begin = std::mem::take(&mut self.begin_pending);
        let db = self.db().await?;
        if begin {
            db.exec(&format!("BEGIN; {sql}")).await
        } else {
            db.exec(sql).await
        }
    }

    /// A batch in the epoch's transaction (exactly-once) or in its own (at-least-once); the
    /// `BEGIN` goes with the batch's first statement.
    async fn batch(
        &mut self,
        t: &Arc<TargetTable>,
        rows: Vec<Change>,
        mut stmts: Option<Vec<Stmt>>,
    ) -> Result<(), DbError> {
        if self.exactly_once && self.stops.reason(t.id).is_none() {
            if let Some((data, or_merge)) = lone_copy(&mut stmts) {
                return self.copy_batch(t, rows, data, or_merge).await;
            }
        }
        self.end_copy().await?;
        if !self.exactly_once || !self.in_txn {
            self.db().await?;
            self.begin_pending = true;
            self.in_txn = true;
        }
        self.apply(t, rows, stmts).await?;
        if !self.exactly_once {
            self.in_txn = false;
            // Nothing ran (a stopped table's rows went to the archive): no transaction began.
            if !std::mem::take(&mut self.begin_pending) {
                self.exec("COMMIT").await?;
            }
        }
        Ok(())
    }

    /// A batch that is one `COPY` (exactly-once): into the open `COPY` of its table while it
    /// has room, else into a new one after the batch savepoint.
    async fn copy_batch(
        &mut self,
        t: &Arc<TargetTable>,
        rows: Vec<Change>,
        data: Vec<u8>,
        or_merge: bool,
    ) -> Result<(), DbError> {
        let joins = self.copy.as_ref().is_some_and(|c| {
            Arc::ptr_eq(&c.table, t) && c.or_merge == or_merge && c.rows + rows.len() <= COPY_SPAN_ROWS
        });
        if !joins {
            self.end_copy().await?;
            if !self.in_txn {
                self.db().await?;
                self.begin_pending = true;
                self.in_txn = true;
            }
            self.exec("SAVEPOINT ferry_batch").await?;
            let stream = self.db().await?.copy_open(&t.qname, &t.cols).await?;
            self.copy = Some(OpenCopy { table: t.clone(), stream, batches: Vec::new(), rows: 0, or_merge });
        }
        let open = self.copy.as_mut().expect("opened above");
        open.rows += rows.len();
        open.batches.push(rows);
        // A row the server rejects fails the `finish` (the server skips the rest of the data).
        open.stream.send(data).await
    }

    /// Ends the open `COPY`, if any: released on success; on a rejected row rolled back, and
    /// its batches written again one by one (an insert-only upsert merging from then on).
    async fn end_copy(&mut self) -> Result<(), DbError> {
        let Some(OpenCopy { table, stream, batches, or_merge, .. }) = self.copy.take() else {
            return Ok(());
        };
        match stream.finish().await {
            Ok(()) => self.exec("RELEASE SAVEPOINT ferry_batch").await,
            Err(DbError::Row(e)) => {
                tracing::debug!(table = %table.name, error = %e, batches = batches.len(), "COPY refused; writing its batches again");
                self.exec("ROLLBACK TO SAVEPOINT ferry_batch; RELEASE SAVEPOINT ferry_batch").await?;
                if or_merge {
                    table.merge_only.store(true, Ordering::Relaxed);
                }
                for rows in batches {
                    let stmts = build(self.target.dialect, self.upsert, self.target.bulk, &table, &rows).ok();
                    self.apply(&table, rows, stmts).await?;
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn commit(&mut self, epoch: u64) -> Result<(), DbError> {
        tracing::debug!(worker = self.worker, epoch, "committing");
        self.end_copy().await?;
        if self.exactly_once {
            // The archive first: its rows are kept before the epoch counts as written.
            self.flush_dirty()?;
            let begin = if self.in_txn && !self.begin_pending { "" } else { "BEGIN; " };
            self.begin_pending = false;
            let sql = self.target.progress_upsert(&self.task, self.worker, epoch);
            // A failed progress row ends the query before its COMMIT; the session is dropped.
            self.db().await?.exec(&format!("{begin}{sql}; COMMIT")).await?;
            self.in_txn = false;
        } else {
            self.flush_dirty()?;
        }
        Ok(())
    }

    fn flush_dirty(&self) -> Result<(), DbError> {
        self.dirty.flush().map_err(|e| DbError::Transient(format!("dirty archive: {e}")))
    }

    /// Writes a batch (`rows` ordered by [`order`], `stmts` built from them).
    async fn apply(
        &mut self,
        t: &Arc<TargetTable>,
        rows: Vec<Change>,
        stmts: Option<Vec<Stmt>>,
    ) -> Result<(), DbError> {
        if let Some(reason) = self.stops.reason(t.id) {
            for c in &rows {
                self.reject(t, c, &format!("table stopped (write_error: partial-stop): {reason}"), false)?;
            }
            return Ok(());
        }
        // A value the target cannot hold failed the build: the row-by-row pass finds it.
        if let Some(stmts) = stmts {
            self.exec("SAVEPOINT ferry_batch").await?;
            match self.run_stmts(t, stmts, Some("ferry_batch")).await {
                // At-least-once: the batch's COMMIT releases the savepoint.
                Ok(()) if !self.exactly_once => return Ok(()),
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
            match self.run_stmts(t, stmts, None).await {
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
        if c.schema.is_none() {
            // The row has this run's columns: a replay after a schema change (a column added
            // since) writes it under these, not under the plan's later ones.
            let mut c = c.clone();
            c.schema = Some(t.schema.clone());
            self.dirty.record("sink", &source, &c, &reason);
        } else {
            self.dirty.record("sink", &source, c, &reason);
        }
        Ok(())
    }

    /// Runs a batch's statements. `fresh`: the savepoint set just before them, which a
    /// first `COPY` that meets an existing key rolls back to (no savepoint of its own).
    async fn run_stmts(&mut self, t: &TargetTable, stmts: Vec<Stmt>, fresh: Option<&str>) -> Result<(), DbError> {
        let dialect = self.target.dialect;
        for (n, s) in stmts.into_iter().enumerate() {
            let fresh = fresh.filter(|_| n == 0);
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
                    match (charset, (charset == "latin1").then(|| crate::connectors::sql::conn::to_latin1(&data)).flatten()) {
                        ("latin1", Some(latin1)) => db.load_data(&t.qname, &t.cols, latin1, replace, "latin1").await?,
                        ("latin1", None) => db.load_data(&t.qname, &t.cols, data, replace, "utf8mb4").await?,
                        _ => db.load_data(&t.qname, &t.cols, data, replace, charset).await?,
                    }
                    self.charsets.insert(t.qname.clone(), charset);
                }
                Stmt::Copy(data) => db.copy_in(&t.qname, &t.cols, data).await?,
                Stmt::CopyOrMerge(data) => {
                    if fresh.is_none() {
                        db.exec("SAVEPOINT ferry_copy").await?;
                    }
                    match db.copy_in(&t.qname, &t.cols, data.clone()).await {
                        Ok(()) if fresh.is_some() => {}
                        Ok(()) => db.exec("RELEASE SAVEPOINT ferry_copy").await?,
                        Err(DbError::Row(e)) => {
                            tracing::debug!(table = %t.name, error = %e, "plain COPY refused; merging from now on");
                            db.exec(&format!("ROLLBACK TO SAVEPOINT {}", fresh.unwrap_or("ferry_copy"))).await?;
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
