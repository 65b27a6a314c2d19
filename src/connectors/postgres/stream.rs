//! The replication operator (worker 0): follows the snapshot's frontier while it runs, then
//! streams the task's slot (pgoutput, text values) from the checkpoint's position (or the
//! slot's start), applies the handoff rule, turns changes of a table's shape (successive
//! Relation messages) into schema events, and closes its epochs at commits (a logical-message
//! heartbeat makes commits while the watched tables are idle). A keepalive's WAL position is
//! never a position: it can be ahead of transactions not yet sent.
//!
//! ```text
//!  reader thread (own runtime)                                operator (worker 0)
//!  START_REPLICATION ─► Begin · Relation · I/U/D/T · Commit ─► per transaction: [schema events]
//!   (events are held until the stream pauses for 1 ms or        Begin, rows (skipped for keys of a
//!    HOLD are in hand: one hand-over per burst; a shape          chunk read later), Commit → close?
//!    change before a transaction's rows goes ahead of it)
//!  every second: the newest manifest's position → the slot's confirmed position (acknowledged
//!  only once committed everywhere); every heartbeat_interval: pg_logical_emit_message
//! ```

use super::discover::{self as d, PgSourceError};
use super::pgoutput::{self, Cell, Control, Message, OldImage};
use super::prepare::PgRun;
use super::snapshot::{ident, qualified, range_column, Point};
use super::streamed::Streamed;
use super::types::{column_type, decode, PgType};
use super::wire::{Frame, Session, PG_EPOCH_MICROS};
use crate::checkpoint::Next;
use crate::connector::SourceCtx;
use crate::plan::Compiled;
use crate::runtime::{io_runtime, TaskError};
use crate::state::TaskState;
use ferry_operators::{
    Change, ColumnSpec, ColumnType, Op, Position, Row, SchemaChangeKind, SchemaEvent, TableId, TableSchema, Value,
};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::{Scope, StreamVec};

/// What a finished snapshot worker tells the stream: its last epoch, every chunk's point.
type Done = crate::connector::snapshot::Done<super::snapshot::Point>;

/// The reader hands events over in batches of at most this many (sooner when the stream
/// pauses); a change of a table's shape before a held transaction's first row is moved ahead
/// of its Begin, so it ends the epoch before the transaction.
const HOLD: usize = 16_384;

/// What the reader task hands the operator.
pub(super) enum Ev {
    /// A transaction begins; its commit record's LSN and commit time.
    Begin { commit_lsn: u64, micros: i64 },
    /// Row changes of one table, in the row schema (`None`: the discovered one).
    Rows { table: TableId, schema: Option<Arc<TableSchema>>, changes: Vec<(Op, Option<Row>, Option<Row>)> },
    /// Changes of tables' shapes, between transactions (they end the epoch).
    Schema(Vec<SchemaEvent>),
    /// The transaction ended; the stream resumes after `end_lsn`.
    Commit { end_lsn: u64 },
    /// Tables the selection takes that appeared in the source's catalog (between
    /// transactions): the plan's `CREATE TABLE` policy decides.
    NewTables(Vec<String>),
}

type EvMsg = Result<Ev, TaskError>;

fn stream_failure(e: PgSourceError) -> TaskError {
    if e.is_transient() {
        TaskError::transient(format!("replication: {e}"))
    } else {
        TaskError::definite(format!("replication: {e}"))
    }
}

/// Per selected table: the chunks' ranges and points, for the handoff rule.
struct ChunkIndex {
    /// The range column, when chunks are ranges.
    column: Option<usize>,
    /// (lower bound, point) sorted by bound; a table read as one chunk has one entry.
    ranges: Vec<(Option<i64>, Point)>,
}

/// What the handoff rule does with a change of a snapshot table.
#[derive(Debug, PartialEq, Eq)]
enum Handoff {
    /// Its chunk's read saw it: skipped.
    Skip,
    /// Applied by every sink worker.
    Apply,
    /// Applied only by these sink workers (bit `w` for worker `w`): its chunk (of a replayed
    /// epoch they had committed) was read again for the others after it.
    For(u32),
}

impl ChunkIndex {
    /// What becomes of a change of a transaction committed at `commit_lsn` to the row
    /// `image`: whether its chunk's read has it already.
    fn handoff(&self, image: &[Value], commit_lsn: u64) -> Handoff {
        if self.ranges.is_empty() {
            return Handoff::Apply;
        }
        let point = match self.column {
            None => self.ranges[0].1,
            Some(k) => {
                let key = match image.get(k) {
                    Some(Value::Int(v)) => *v,
                    _ => return Handoff::Apply,
                };
                // The last chunk whose lower bound is at or below the key.
                let i = self.ranges.partition_point(|(lo, _)| lo.is_none_or(|l| l <= key));
                self.ranges[i.saturating_sub(1)].1
            }
        };
        match point {
            Point(p, _) if commit_lsn < p => Handoff::Skip,
            Point(_, Some((again, workers))) if commit_lsn < again => Handoff::For(workers),
            _ => Handoff::Apply,
        }
    }
}

fn build_index(plan: &Compiled, run: &PgRun, positions: &[(u32, Point)]) -> Vec<ChunkIndex> {
    let mut index: Vec<ChunkIndex> =
        plan.catalog.tables.iter().map(|t| ChunkIndex { column: range_column(t), ranges: Vec::new() }).collect();
    let points: HashMap<u32, Point> = positions.iter().copied().collect();
    for c in run.chunks.iter() {
        let (Some(idx), Some(&p)) = (index.get_mut(c.table as usize), points.get(&c.id)) else { continue };
        idx.ranges.push((c.lower, p));
    }
    for idx in &mut index {
        idx.ranges.sort_by_key(|r| r.0);
        if idx.ranges.len() == 1 {
            // A table read as one chunk: every key is in it.
            idx.column = None;
        }
    }
    index
}

/// Events one activation of the stream operator handles at most.
const BUDGET: usize = 4096;

pub(super) fn stream<'s>(
    scope: Scope<'s, u64>,
    done: StreamVec<'s, u64, Done>,
    cx: &SourceCtx,
    run: PgRun,
) -> (StreamVec<'s, u64, Change>, StreamVec<'s, u64, SchemaEvent>) {
    let index = scope.index();
    let peers = scope.peers();
    let (plan, state, metrics, failure) = (cx.plan.clone(), cx.state.clone(), cx.metrics.clone(), cx.failure.clone());
    let mut epochs = cx.epochs(0, peers).for_partitions(|p| p == 0);
    let interval = Duration::from_millis(plan.plan.checkpoint_ms);
    let resume: Option<u64> = cx.restore.manifest.offsets.get(&0).and_then(|v| v.get("lsn")?.as_u64());
    let deliver_ddl = plan.plan.settings.delivers_ddl();
    let mut builder = OperatorBuilder::new("PostgresStream".into(), scope);
    let info = builder.operator_info();
    let mut input = builder.new_input(done, Exchange::new(|_| 0u64));
    let (out_rows, rows) = builder.new_output::<Vec<Change>>();
    let (out_schema, schema_events) = builder.new_output::<Vec<SchemaEvent>>();
    let mut out_rows: OutputBuilder<u64, CapacityContainerBuilder<Vec<Change>>> = OutputBuilder::from(out_rows);
    let mut out_schema: OutputBuilder<u64, CapacityContainerBuilder<Vec<SchemaEvent>>> =
        OutputBuilder::from(out_schema);
    builder.build(move |mut caps| {
        let activator = scope.worker().sync_activator_for(info.address.to_vec());
        let mut cap_schema = caps.pop().filter(|_| index == 0);
        let mut cap = caps.pop().filter(|_| index == 0);
        let mut last_snapshot_epoch = 0u64;
        let mut chunk_positions: Vec<(u32, Point)> = Vec::new();
        let mut rx: Option<Receiver<Vec<EvMsg>>> = None;
        let mut queued: std::vec::IntoIter<EvMsg> = Vec::new().into_iter();
        let mut failed = false;
        let mut deadline = Instant::now() + interval;
        let mut index_by_table: Vec<ChunkIndex> = Vec::new();
        let mut txn: Option<(u64, i64)> = None;
        let mut position: u64 = 0;
        move |frontiers| {
            let frontier = &frontiers[0];
            input.for_each(|_cap, data| {
                for (e, ps) in data.drain(..) {
                    last_snapshot_epoch = last_snapshot_epoch.max(e);
                    chunk_positions.extend(ps);
                }
            });
            let (Some(c), Some(cs)) = (cap.as_mut(), cap_schema.as_mut()) else { return };
            if failed {
                return;
            }
            if rx.is_none() {
                if let Some(f) = frontier.frontier().first() {
                    if f > c.time() {
                        c.downgrade(f);
                        cs.downgrade(f);
                    }
                    return;
                }
                if epochs.stop_due() {
                    epochs.end_unstarted();
                    cap = None;
                    cap_schema = None;
                    return;
                }
                let first_recorded = epochs.to_replay().next().map(|b| b.epoch);
                let next = match crate::connector::snapshot::stream_start_epoch(
                    last_snapshot_epoch,
                    *c.time(),
                    first_recorded,
                ) {
                    Ok(n) => n,
                    Err(e) => {
                        failed = true;
                        failure.report(e);
                        return;
                    }
                };
                c.downgrade(&next);
                cs.downgrade(&next);
                index_by_table = build_index(&plan, &run, &chunk_positions);
                let from = resume.unwrap_or(run.start);
                position = from;
                let (tx, r) = sync_channel(16);
                rx = Some(r);
                let reader = Reader::new(&plan, &run, state.clone(), from, tx, activator.clone());
                if let Err(e) = reader.spawn() {
                    failed = true;
                    failure.report(e);
                    return;
                }
            }
            let epoch = *c.time();
            let rx = rx.as_ref().expect("started");
            let mut produced = 0u64;
            let mut close_at: Option<u64> = None;
            let mut finished = false;
            let mut schema_out: Vec<SchemaEvent> = Vec::new();
            // Events handled in this activation: at the budget, the operator schedules itself
            // again (skipped rows produce nothing, and the reader's wake-up was spent).
            let mut handled = 0usize;
            let mut fatal: Option<TaskError> = None;
            {
                let mut output = out_rows.activate();
                let mut session = output.session(&*c);
                for _ in 0..BUDGET {
                    handled += 1;
                    if queued.len() == 0 {
                        match rx.try_recv() {
                            Ok(batch) => queued = batch.into_iter(),
                            Err(_) => break,
                        }
                    }
                    let ev = match queued.next() {
                        Some(Ok(ev)) => ev,
                        Some(Err(e)) => {
                            fatal = Some(e);
                            break;
                        }
                        None => break,
                    };
                    let boundary = match ev {
                        Ev::Begin { commit_lsn, micros } => {
                            // Heartbeats are transactions too: an idle source is not behind.
                            metrics.note_source_time(micros);
                            txn = Some((commit_lsn, micros));
                            None
                        }
                        Ev::Rows { table, schema, changes } => {
                            let (commit_lsn, micros) = txn.unwrap_or((position, 0));
                            let idx = &index_by_table[table as usize];
                            let row_schema = schema.as_deref().unwrap_or(plan.catalog.get(table));
                            for (op, before, after) in changes {
                                let change = Change {
                                    table,
                                    op,
                                    before,
                                    after,
                                    pos: Position::Lsn { lsn: commit_lsn },
                                    commit_micros: micros,
                                    schema: schema.clone(),
                                };
                                let (first, second) = change.split_key_change(row_schema);
                                for mut ch in std::iter::once(first).chain(second) {
                                    match idx.handoff(ch.image(), commit_lsn) {
                                        Handoff::Skip => continue,
                                        Handoff::Apply => {}
                                        Handoff::For(workers) => ch.pos = Position::LsnFor { lsn: commit_lsn, workers },
                                    }
                                    session.give(ch);
                                    produced += 1;
                                }
                            }
                            None
                        }
                        Ev::Schema(events) => {
                            if deliver_ddl {
                                schema_out.extend(events);
                            }
                            // A schema change always ends the epoch (between transactions).
                            Some((position, true))
                        }
                        Ev::Commit { end_lsn } => {
                            txn = None;
                            position = position.max(end_lsn);
                            Some((position, false))
                        }
                        Ev::NewTables(names) => {
                            let mut end = false;
                            for name in &names {
                                let why = "a new table in the source's catalog";
                                match crate::connector::source::new_table(&plan, &state, epoch, name, why) {
                                    Ok(e) => end |= e,
                                    Err(e) => {
                                        fatal = Some(e);
                                        break;
                                    }
                                }
                            }
                            if fatal.is_some() {
                                break;
                            }
                            // `auto`: the run ends with this epoch and starts again with them.
                            finished |= end;
                            end.then_some((position, false))
                        }
                    };
                    let Some((at, is_ddl)) = boundary else { continue };
                    let recorded = epochs.replaying(epoch).and_then(|b| b.offsets.get(&0)?.get("lsn")?.as_u64());
                    let due = match recorded {
                        Some(p) => at >= p,
                        None => is_ddl || Instant::now() >= deadline || epochs.stop_due(),
                    };
                    if run.stop_at.is_some_and(|s| at >= s) {
                        finished = true;
                    }
                    if due || finished {
                        close_at = Some(at);
                        break;
                    }
                }
            }
            metrics.rows_in.fetch_add(produced, Ordering::Relaxed);
            if let Some(e) = fatal {
                failed = true;
                failure.report(e);
                return;
            }
            if !schema_out.is_empty() {
                out_schema.activate().session(&*cs).give_iterator(schema_out.drain(..));
            }
            if let Some(p) = close_at {
                let offsets = [(0, json!({ "lsn": p, "text": super::config::format_lsn(p) }))].into();
                deadline = Instant::now() + interval;
                match epochs.close(epoch, offsets, finished) {
                    Ok(Next::Open(next)) => {
                        c.downgrade(&next);
                        cs.downgrade(&next);
                        metrics.open_epoch(next);
                    }
                    Ok(Next::End) => {
                        cap = None;
                        cap_schema = None;
                        return;
                    }
                    Err(e) => {
                        failed = true;
                        failure.report(e);
                        return;
                    }
                }
            }
            if produced > 0 || close_at.is_some() || handled >= BUDGET {
                let _ = activator.activate();
            }
        }
    });
    (rows, schema_events)
}

/// A column as the reader knows it: the name the stream sends, its type, pgoutput's type.
#[derive(Debug, Clone, PartialEq)]
struct LiveColumn {
    name: String,
    ty: ColumnType,
    sig: Option<(u32, i32)>,
}

/// What the reader tracks of one selected table.
struct LiveTable {
    columns: Vec<LiveColumn>,
    /// The row schema when it differs from the discovered one.
    evolved: Option<Arc<TableSchema>>,
    /// Current name → the name the run started with (renamed columns).
    aliases: HashMap<String, String>,
    /// Key column positions in `columns`, for the unchanged-TOAST lookup.
    key: Vec<usize>,
}

/// The standby status the reader owes the server: the acknowledged position, at least once a
/// second (also while a long replay or a full channel holds the loop), so that the server's
/// `wal_sender_timeout` never ends a session that is only busy.
struct Feedback {
    acked: u64,
    last: Instant,
}

impl Feedback {
    /// Sends the status now.
    async fn now(&mut self, client: &mut Session) -> Result<(), TaskError> {
        self.last = Instant::now();
        client.status(self.acked).await.map_err(stream_failure)
    }

    /// Sends the status if a second has passed since the last one.
    async fn keep(&mut self, client: &mut Session) -> Result<(), TaskError> {
        if self.last.elapsed() >= Duration::from_secs(1) {
            self.now(client).await?;
        }
        Ok(())
    }
}

/// The reader task: the replication session, decoding, schema tracking, acknowledgement and
/// heartbeats.
struct Reader {
    plan: Arc<Compiled>,
    run: PgRun,
    state: TaskState,
    from: u64,
    tx: SyncSender<Vec<EvMsg>>,
    act: timely::scheduling::SyncActivator,
    tables: HashMap<(String, String), TableId>,
    live: HashMap<TableId, LiveTable>,
    relations: HashMap<u32, TableId>,
    types: HashMap<(u32, i32), ColumnType>,
    lookup: Option<tokio_postgres::Client>,
}

impl Reader {
    fn new(
        plan: &Arc<Compiled>,
        run: &PgRun,
        state: TaskState,
        from: u64,
        tx: SyncSender<Vec<EvMsg>>,
        act: timely::scheduling::SyncActivator,
    ) -> Self {
        let tables = plan
            .catalog
            .tables
            .iter()
            .enumerate()
            .map(|(i, t)| ((t.name.schema.clone().unwrap_or_default(), t.name.table.clone()), i as TableId))
            .collect();
        let live = plan
            .catalog
            .tables
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let columns = t
                    .columns
                    .iter()
                    .map(|c| LiveColumn { name: c.name.clone(), ty: c.ty.clone(), sig: None })
                    .collect();
                let lt = LiveTable { columns, evolved: None, aliases: HashMap::new(), key: t.row_key().to_vec() };
                (i as TableId, lt)
            })
            .collect();
        Reader {
            plan: plan.clone(),
            run: run.clone(),
            state,
            from,
            tx,
            act,
            tables,
            live,
            relations: HashMap::new(),
            types: HashMap::new(),
            lookup: None,
        }
    }

    fn send(&self, batch: Vec<EvMsg>) -> bool {
        let ok = self.tx.send(batch).is_ok();
        let _ = self.act.activate();
        ok
    }

    /// Runs the reader on a thread of its own with a single-threaded runtime: it reads the
    /// replication session in line and decodes there, so no event crosses threads before it
    /// reaches the operator's channel.
    fn spawn(self) -> Result<(), TaskError> {
        crate::runtime::run_on_own_thread("ferry-pg-stream", self.run())
            .map_err(|e| TaskError::transient(format!("replication: the reader's thread cannot start: {e}")))
    }

    async fn run(mut self) {
        if let Err(e) = self.stream().await {
            self.send(vec![Err(e)]);
        }
    }

    /// Whether the operator still listens (it is gone when the run ended or restarted).
    fn listened(&self) -> bool {
        !matches!(self.tx.try_send(Vec::new()), Err(std::sync::mpsc::TrySendError::Disconnected(_)))
    }

    async fn stream(&mut self) -> Result<(), TaskError> {
        let ep = self.run.endpoint.clone();
        let c = d::connect(&ep).await.map_err(stream_failure)?;
        // The run before this one in the same process (one that ended for a new table) may
        // still hold the slot for a moment while its session closes.
        let mut info = super::slot::slot_info(&c, &self.run.slot).await.map_err(stream_failure)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while info.as_ref().is_some_and(|i| i.active) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            info = super::slot::slot_info(&c, &self.run.slot).await.map_err(stream_failure)?;
        }
        // A slot whose confirmed position passed the checkpoint's would skip what the target
        // never got: a gap.
        match info {
            None => {
                return Err(TaskError::definite(format!(
                    "replication: the task's slot `{}` is gone: start over with `ferry run --from-scratch`",
                    self.run.slot
                )))
            }
            Some(i) if self.from > 0 && i.confirmed > self.from => {
                return Err(TaskError::definite(format!(
                    "replication: slot `{}` was advanced to {} past the task's checkpoint {}: the changes between \
                     were never written to the target; start over with `ferry run --from-scratch`",
                    self.run.slot,
                    super::config::format_lsn(i.confirmed),
                    super::config::format_lsn(self.from)
                )))
            }
            Some(_) => {}
        }
        let mut client = Session::connect(&ep).await.map_err(stream_failure)?;
        client.start(&self.run.slot, self.from, &self.run.publication).await.map_err(stream_failure)?;
        let _heartbeat = self.run.heartbeat.map(|every| spawn_heartbeat(ep.clone(), every));
        let mut held: Vec<EvMsg> = Vec::new();
        // Row changes in the current transaction.
        let mut txn_rows = 0usize;
        let mut last_ack = Instant::now();
        let mut fb = Feedback { acked: self.from, last: Instant::now() };
        // Transactions streamed while open, and the one whose block is being received.
        let mut streamed = Streamed::default();
        let mut block: Option<u32> = None;
        // New tables are looked for when the plan would take them, and handed over between
        // transactions.
        let watch_new = !matches!(
            self.plan.plan.settings.schema_changes.policy_for(&SchemaChangeKind::CreateTable),
            crate::plan::config::DdlPolicy::Ignore
        );
        let (mut in_txn, mut pending_new, mut newest_oid) = (false, Vec::<String>::new(), 0u32);
        let undecodable = |e: String| TaskError::definite(format!("replication: an undecodable pgoutput message: {e}"));
        let spill_failed = |e: std::io::Error| {
            TaskError::transient(format!("replication: holding a large open transaction in a temporary file: {e}"))
        };
        loop {
            if last_ack.elapsed() >= Duration::from_secs(1) {
                last_ack = Instant::now();
                if watch_new {
                    pending_new.extend(self.new_tables(&mut newest_oid).await?);
                }
                // Acknowledge what every sink committed: the newest manifest's position (a
                // status every second also keeps the server's sender timeout away).
                if let Ok(Some(m)) = self.state.latest_manifest() {
                    if let Some(l) = m.offsets.get(&0).and_then(|v| v.get("lsn")?.as_u64()) {
                        fb.acked = fb.acked.max(l);
                    }
                }
                fb.now(&mut client).await?;
            }
            // New tables go between transactions (here, after a Commit or while idle).
            if !in_txn && !pending_new.is_empty() {
                held.push(Ok(Ev::NewTables(std::mem::take(&mut pending_new))));
            }
            // Events are held (whole transactions, several of them) until the stream pauses for
            // a millisecond or HOLD of them are in hand: one hand-over per burst, not per
            // transaction.
            let wait = if held.is_empty() { Duration::from_secs(1) } else { Duration::from_millis(1) };
            let frame = tokio::time::timeout(wait, client.recv()).await;
            if frame.is_err() && !held.is_empty() {
                if !self.hand_over(std::mem::take(&mut held), &mut client, &mut fb).await? {
                    return Ok(());
                }
                continue;
            }
            let data = match frame {
                Err(_) if self.listened() => continue,
                Err(_) => return Ok(()),
                Ok(Ok(Some(Frame::Data { data, .. }))) => data,
                Ok(Ok(Some(Frame::KeepAlive { reply }))) => {
                    if reply {
                        fb.now(&mut client).await?;
                    }
                    continue;
                }
                Ok(Ok(None)) => return Err(TaskError::transient("replication: the server ended the stream")),
                Ok(Err(e)) => return Err(stream_failure(e)),
            };
            match pgoutput::control(&data).map_err(undecodable)? {
                Control::Begin { final_lsn, micros } => {
                    in_txn = true;
                    held.push(Ok(Ev::Begin { commit_lsn: final_lsn, micros: micros + PG_EPOCH_MICROS }));
                }
                Control::Commit { end_lsn } => {
                    held.push(Ok(Ev::Commit { end_lsn }));
                    (txn_rows, in_txn) = (0, false);
                }
                Control::StreamStart { xid } => {
                    // What committed before the block goes now: a block can be long.
                    if !held.is_empty() && !self.hand_over(std::mem::take(&mut held), &mut client, &mut fb).await? {
                        return Ok(());
                    }
                    block = Some(xid);
                }
                Control::StreamStop => block = None,
                Control::StreamAbort { xid, subxid } => streamed.abort(xid, subxid),
                Control::StreamCommit { xid, commit_lsn, end_lsn, micros } => {
                    // The whole transaction, in the order it was streamed, as if it had come
                    // at its commit.
                    held.push(Ok(Ev::Begin { commit_lsn, micros: micros + PG_EPOCH_MICROS }));
                    let mut replay = streamed.commit(xid).map_err(spill_failed)?;
                    while let Some(data) = replay.next().map_err(spill_failed)? {
                        let msg = pgoutput::decode_streamed(&data).map_err(undecodable)?;
                        self.change(msg, &mut held, &mut txn_rows).await?;
                        if held.len() >= HOLD
                            && !self.hand_over(std::mem::take(&mut held), &mut client, &mut fb).await?
                        {
                            return Ok(());
                        }
                        // A long replay still tells the server the session is alive.
                        fb.keep(&mut client).await?;
                    }
                    held.push(Ok(Ev::Commit { end_lsn }));
                    txn_rows = 0;
                }
                Control::Change => match block {
                    Some(top) => {
                        if let Some(sub) = pgoutput::streamed_change(&data).map_err(undecodable)? {
                            streamed.push(top, sub, &data).map_err(spill_failed)?;
                        }
                    }
                    None => {
                        let msg = pgoutput::decode(&data).map_err(undecodable)?;
                        self.change(msg, &mut held, &mut txn_rows).await?;
                    }
                },
            }
            if held.len() >= HOLD && !self.hand_over(std::mem::take(&mut held), &mut client, &mut fb).await? {
                return Ok(());
            }
        }
    }

    /// Hands a batch to the operator, waiting while its channel is full (the status to the
    /// server kept up meanwhile); false when the operator is gone.
    async fn hand_over(&self, batch: Vec<EvMsg>, client: &mut Session, fb: &mut Feedback) -> Result<bool, TaskError> {
        let mut batch = batch;
        loop {
            match self.tx.try_send(batch) {
                Ok(()) => {
                    let _ = self.act.activate();
                    return Ok(true);
                }
                Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return Ok(false),
                Err(std::sync::mpsc::TrySendError::Full(b)) => {
                    batch = b;
                    let _ = self.act.activate();
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    fb.keep(client).await?;
                }
            }
        }
    }

    /// One message of a transaction into `held`: a shape change before the transaction's
    /// first row goes ahead of its Begin (between transactions).
    async fn change(&mut self, msg: Message, held: &mut Vec<EvMsg>, txn_rows: &mut usize) -> Result<(), TaskError> {
        for ev in self.on_message(msg).await? {
            match ev {
                Ev::Schema(s) if *txn_rows == 0 => {
                    let begin = held.iter().rposition(|e| matches!(e, Ok(Ev::Begin { .. })));
                    held.insert(begin.unwrap_or(held.len()), Ok(Ev::Schema(s)));
                }
                Ev::Schema(s) => {
                    tracing::warn!(
                        "a table's shape changed inside a transaction after {txn_rows} row changes: its schema \
                         events share the transaction's epoch"
                    );
                    held.push(Ok(Ev::Schema(s)));
                }
                Ev::Rows { changes, .. } if changes.is_empty() => {}
                other => {
                    if let Ev::Rows { changes, .. } = &other {
                        *txn_rows += changes.len();
                    }
                    held.push(Ok(other));
                }
            }
        }
        Ok(())
    }

    /// Tables created since the last look (`oid` above `newest`) that the selection takes and
    /// the run does not have, by name; `newest` moves up.
    async fn new_tables(&mut self, newest: &mut u32) -> Result<Vec<String>, TaskError> {
        let c = connected(&mut self.lookup, &self.run.endpoint).await?;
        let rows = c
            .query(
                "SELECT c.oid, n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.oid > $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' ORDER BY c.oid",
                &[&*newest],
            )
            .await
            .map_err(|e| stream_failure(PgSourceError::from_pg(e)))?;
        let mut out = Vec::new();
        for r in rows {
            let (oid, schema, table): (u32, String, String) = (r.get(0), r.get(1), r.get(2));
            *newest = (*newest).max(oid);
            if self.tables.contains_key(&(schema.clone(), table.clone())) {
                continue;
            }
            let name = ferry_operators::schema::TableName {
                database: self.run.endpoint.database.clone(),
                schema: Some(schema),
                table,
            };
            if self.plan.selects_table(&name) {
                out.push(name.to_string());
            }
        }
        Ok(out)
    }

    /// Turns one pgoutput message into events.
    async fn on_message(&mut self, msg: Message) -> Result<Vec<Ev>, TaskError> {
        match msg {
            Message::Relation(r) => {
                let Some(&tid) = self.tables.get(&(r.namespace.clone(), r.name.clone())) else {
                    return Ok(Vec::new());
                };
                self.relations.insert(r.id, tid);
                let mut columns = Vec::with_capacity(r.columns.len());
                for col in &r.columns {
                    let ty = self.resolve_type(col.type_oid, col.typmod).await?;
                    columns.push(LiveColumn { name: col.name.clone(), ty, sig: Some((col.type_oid, col.typmod)) });
                }
                let events = self.reshape(tid, columns).await?;
                Ok(if events.is_empty() { Vec::new() } else { vec![Ev::Schema(events)] })
            }
            Message::Insert { rel, new } => {
                let Some(&tid) = self.relations.get(&rel) else { return Ok(Vec::new()) };
                let after = self.row(tid, &new, None).await?;
                Ok(self.rows(tid, vec![(Op::Insert, None, after)]))
            }
            Message::Update { rel, old, new } => {
                let Some(&tid) = self.relations.get(&rel) else { return Ok(Vec::new()) };
                let old_row = match &old {
                    Some((_, cells)) => Some(self.cells(tid, cells)?),
                    None => None,
                };
                let before_full = matches!(old, Some((OldImage::Full, _)));
                let after = self.row(tid, &new, old_row.as_ref().filter(|_| before_full)).await?;
                let Some(after) = after else { return Ok(Vec::new()) };
                // Without an old image the key did not change: the new row's key is the old one.
                let before = match old_row {
                    Some(b) if before_full => b,
                    Some(key_only) => self.key_image(tid, &key_only),
                    None => self.key_image(tid, &after),
                };
                Ok(self.rows(tid, vec![(Op::Update, Some(before), Some(after))]))
            }
            Message::Delete { rel, old: (image, cells) } => {
                let Some(&tid) = self.relations.get(&rel) else { return Ok(Vec::new()) };
                let before = self.cells(tid, &cells)?;
                let before = if image == OldImage::Full { before } else { self.key_image(tid, &before) };
                Ok(self.rows(tid, vec![(Op::Delete, Some(before), None)]))
            }
            Message::Truncate { rels } => {
                let mut events = Vec::new();
                for rel in rels {
                    let Some(&tid) = self.relations.get(&rel) else { continue };
                    let name = &self.plan.catalog.get(tid).name;
                    events.push(SchemaEvent {
                        table: tid,
                        change: SchemaChangeKind::Truncate,
                        statement: format!(
                            "TRUNCATE {}.{}",
                            ident(name.schema.as_deref().unwrap_or("")),
                            ident(&name.table)
                        ),
                        pos: Position::None,
                        commit_micros: crate::runtime::now_micros(),
                    });
                }
                Ok(if events.is_empty() { Vec::new() } else { vec![Ev::Schema(events)] })
            }
            Message::Other(_) => Ok(Vec::new()),
        }
    }

    fn rows(&self, tid: TableId, changes: Vec<(Op, Option<Row>, Option<Row>)>) -> Vec<Ev> {
        let schema = self.live.get(&tid).and_then(|t| t.evolved.clone());
        vec![Ev::Rows { table: tid, schema, changes }]
    }

    /// A tuple's values in the table's current columns (unchanged TOAST cells stay `Null`
    /// here: only [`Reader::row`] fills them).
    fn cells(&self, tid: TableId, cells: &[Cell]) -> Result<Row, TaskError> {
        let t = &self.live[&tid];
        if cells.len() != t.columns.len() {
            return Err(TaskError::definite(format!(
                "replication: {}: {} values in a row, {} columns in its relation",
                self.plan.catalog.get(tid).name,
                cells.len(),
                t.columns.len()
            )));
        }
        cells
            .iter()
            .zip(&t.columns)
            .map(|(cell, col)| match cell {
                Cell::Null | Cell::Unchanged => Ok(Value::Null),
                Cell::Text(s) => decode(&col.ty, s).map_err(|e| {
                    TaskError::definite(format!(
                        "replication: {} column {}: {e}",
                        self.plan.catalog.get(tid).name,
                        col.name
                    ))
                }),
            })
            .collect()
    }

    /// A new row image: unchanged TOAST values come from the full old row (`REPLICA IDENTITY
    /// FULL`), else from the source's current row by key (`None`: the row is gone since; a
    /// later change removes or replaces it).
    async fn row(&mut self, tid: TableId, cells: &[Cell], old: Option<&Row>) -> Result<Option<Row>, TaskError> {
        let mut row = self.cells(tid, cells)?;
        let missing: Vec<usize> =
            cells.iter().enumerate().filter(|(_, c)| matches!(c, Cell::Unchanged)).map(|(i, _)| i).collect();
        if missing.is_empty() {
            return Ok(Some(row));
        }
        if let Some(old) = old {
            for &i in &missing {
                row[i] = old[i].clone();
            }
            return Ok(Some(row));
        }
        match self.current_values(tid, &row, &missing).await? {
            Some(values) => {
                for (i, v) in missing.into_iter().zip(values) {
                    row[i] = v;
                }
                Ok(Some(row))
            }
            None => Ok(None),
        }
    }

    /// The source's current values of columns `cols` of the row with `row`'s key.
    async fn current_values(
        &mut self,
        tid: TableId,
        row: &Row,
        cols: &[usize],
    ) -> Result<Option<Vec<Value>>, TaskError> {
        let t = &self.live[&tid];
        let schema = self.plan.catalog.get(tid);
        let mut conds = Vec::new();
        for &k in &t.key {
            let mut lit = String::new();
            let v = &row[k];
            if v.is_null() {
                return Ok(None);
            }
            crate::connectors::sql::encode::Dialect::Postgres
                .literal(v, &mut lit)
                .map_err(|e| TaskError::definite(format!("replication: a key of {}: {e}", schema.name)))?;
            conds.push(format!("{} = {lit}", ident(&t.columns[k].name)));
        }
        let select: Vec<String> = cols.iter().map(|&i| format!("{}::text", ident(&t.columns[i].name))).collect();
        let sql = format!("SELECT {} FROM {} WHERE {}", select.join(", "), qualified(schema), conds.join(" AND "));
        let client = connected(&mut self.lookup, &self.run.endpoint).await?;
        let found = client.query_opt(&sql, &[]).await.map_err(|e| stream_failure(PgSourceError::from_pg(e)))?;
        let Some(r) = found else { return Ok(None) };
        let mut out = Vec::with_capacity(cols.len());
        for (j, &i) in cols.iter().enumerate() {
            let text: Option<String> = r.get(j);
            out.push(match text {
                None => Value::Null,
                Some(s) => decode(&t.columns[i].ty, &s).map_err(TaskError::definite)?,
            });
        }
        Ok(Some(out))
    }

    /// A before image of only the key (`REPLICA IDENTITY DEFAULT`): the other columns `Null`.
    fn key_image(&self, tid: TableId, row: &Row) -> Row {
        let t = &self.live[&tid];
        row.iter().enumerate().map(|(i, v)| if t.key.contains(&i) { v.clone() } else { Value::Null }).collect()
    }

    /// The record-model type of a type OID and modifier (cached).
    async fn resolve_type(&mut self, oid: u32, typmod: i32) -> Result<ColumnType, TaskError> {
        if let Some(t) = self.types.get(&(oid, typmod)) {
            return Ok(t.clone());
        }
        let c = connected(&mut self.lookup, &self.run.endpoint).await?;
        let err = |e| stream_failure(PgSourceError::from_pg(e));
        let row = c
            .query_one(
                "SELECT bt.typname::text, bt.typtype::text, format_type(bt.oid, CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE $2 END), \
                   et.typname::text, et.typtype::text, format_type(et.oid, $2), et.oid, bt.oid \
                 FROM pg_type t \
                 JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
                 LEFT JOIN pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A' \
                 WHERE t.oid = $1",
                &[&oid, &typmod],
            )
            .await
            .map_err(err)?;
        let labels = |type_oid: Option<u32>| async move {
            match type_oid {
                Some(o) => c
                    .query("SELECT enumlabel::text FROM pg_enum WHERE enumtypid = $1 ORDER BY enumsortorder", &[&o])
                    .await
                    .map(|rs| rs.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>()),
                None => Ok(Vec::new()),
            }
        };
        let kind = |s: String| s.chars().next().unwrap_or('b');
        let element = match row.get::<_, Option<String>>(3) {
            Some(name) => Some(Box::new(PgType {
                name,
                formatted: row.get(5),
                kind: kind(row.get(4)),
                labels: labels(row.get(6)).await.map_err(err)?,
                element: None,
            })),
            None => None,
        };
        let pg = PgType {
            name: row.get(0),
            formatted: row.get(2),
            kind: kind(row.get(1)),
            labels: labels(Some(row.get(7))).await.map_err(err)?,
            element,
        };
        let ty = column_type(&pg);
        self.types.insert((oid, typmod), ty.clone());
        Ok(ty)
    }

    /// A Relation message's columns against what the reader knew: the schema events of the
    /// difference (renames — the same place, a new name —, drops, adds, type changes), and the
    /// new row schema.
    async fn reshape(&mut self, tid: TableId, columns: Vec<LiveColumn>) -> Result<Vec<SchemaEvent>, TaskError> {
        let base = self.plan.catalog.get(tid).clone();
        let t = self.live.get_mut(&tid).expect("selected");
        let old = std::mem::take(&mut t.columns);
        let same_names = old.len() == columns.len() && old.iter().zip(&columns).all(|(a, b)| a.name == b.name);
        let same_types = same_names && old.iter().zip(&columns).all(|(a, b)| a.ty == b.ty);
        if same_types {
            t.columns = columns;
            return Ok(Vec::new());
        }
        let mut kinds: Vec<SchemaChangeKind> = Vec::new();
        let has = |list: &[LiveColumn], n: &str| list.iter().any(|c| c.name == n);
        let mut renamed: Vec<(String, String)> = Vec::new();
        if old.len() == columns.len() {
            for (a, b) in old.iter().zip(&columns) {
                if a.name != b.name && !has(&columns, &a.name) && !has(&old, &b.name) {
                    renamed.push((a.name.clone(), b.name.clone()));
                }
            }
        }
        for (from, to) in &renamed {
            kinds.push(SchemaChangeKind::RenameColumn { from: from.clone(), to: to.clone() });
        }
        let was_renamed_from = |n: &str| renamed.iter().any(|(f, _)| f == n);
        let was_renamed_to = |n: &str| renamed.iter().any(|(_, to)| to == n);
        for a in &old {
            if !has(&columns, &a.name) && !was_renamed_from(&a.name) {
                kinds.push(SchemaChangeKind::DropColumn { column: a.name.clone() });
            }
        }
        let specs = self.column_specs(tid).await?;
        let t = self.live.get_mut(&tid).expect("selected");
        for b in &columns {
            let spec = || {
                let mut s = specs.get(&b.name).cloned().unwrap_or_default();
                s.column_type = Some(b.ty.clone());
                s
            };
            if !has(&old, &b.name) && !was_renamed_to(&b.name) {
                kinds.push(SchemaChangeKind::AddColumn { column: b.name.clone(), spec: spec() });
            } else if let Some(a) = old.iter().find(|a| a.name == b.name).or_else(|| {
                renamed.iter().find(|(_, to)| *to == b.name).and_then(|(f, _)| old.iter().find(|a| &a.name == f))
            }) {
                if a.ty != b.ty {
                    kinds.push(SchemaChangeKind::ModifyColumn { column: b.name.clone(), spec: spec() });
                }
            }
        }
        for (from, to) in &renamed {
            let orig = t.aliases.remove(from).unwrap_or_else(|| from.clone());
            t.aliases.insert(to.clone(), orig);
        }
        // The row schema: renamed columns keep the name the run started with (they flow into
        // the same target column), keys follow their columns.
        let names: Vec<String> =
            columns.iter().map(|c| t.aliases.get(&c.name).cloned().unwrap_or_else(|| c.name.clone())).collect();
        let evolved_cols: Vec<ferry_operators::Column> = columns
            .iter()
            .zip(&names)
            .map(|(c, n)| {
                let nullable = base.column_index(n).map(|i| base.columns[i].nullable).unwrap_or(true);
                ferry_operators::Column::new(n.clone(), c.ty.clone(), nullable)
            })
            .collect();
        let map = |key: &[usize]| -> Option<Vec<usize>> {
            key.iter().map(|&i| names.iter().position(|n| *n == base.columns[i].name)).collect()
        };
        let version = t.evolved.as_ref().map_or(base.version, |e| e.version) + 1;
        let next = TableSchema {
            name: base.name.clone(),
            primary_key: map(&base.primary_key).unwrap_or_default(),
            unique_keys: base.unique_keys.iter().filter_map(|k| map(k)).collect(),
            columns: evolved_cols,
            version,
        };
        let same_as_base = next.columns == base.columns;
        t.key = next.row_key().to_vec();
        t.evolved = (!same_as_base).then(|| Arc::new(next));
        t.columns = columns;
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        tracing::info!(table = %base.name, changes = ?kinds, "the table's shape changed");
        let now = crate::runtime::now_micros();
        Ok(kinds
            .into_iter()
            .map(|change| SchemaEvent {
                table: tid,
                statement: format!("(from pgoutput) {change:?} on {}", base.name),
                change,
                pos: Position::None,
                commit_micros: now,
            })
            .collect())
    }

    /// NOT NULL and defaults of the table's columns now, from `pg_catalog`.
    async fn column_specs(&mut self, tid: TableId) -> Result<HashMap<String, ColumnSpec>, TaskError> {
        let c = connected(&mut self.lookup, &self.run.endpoint).await?;
        let q = qualified(self.plan.catalog.get(tid));
        let rows = c
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(ad.adbin, ad.adrelid) \
                 FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
                 WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped",
                &[&q],
            )
            .await
            .map_err(|e| stream_failure(PgSourceError::from_pg(e)))?;
        Ok(rows
            .iter()
            .map(|r| {
                let spec = ColumnSpec { ty: r.get(1), not_null: r.get(2), default: r.get(3), ..ColumnSpec::default() };
                (r.get::<_, String>(0), spec)
            })
            .collect())
    }
}

/// The reader's session for catalog and row look-ups, opened on first use.
async fn connected<'a>(
    lookup: &'a mut Option<tokio_postgres::Client>,
    ep: &d::Endpoint,
) -> Result<&'a tokio_postgres::Client, TaskError> {
    if lookup.is_none() {
        *lookup = Some(d::connect(ep).await.map_err(stream_failure)?);
    }
    Ok(lookup.as_ref().expect("connected above"))
}

/// Writes a logical message every `every` so an idle source's stream still moves.
fn spawn_heartbeat(ep: d::Endpoint, every: Duration) -> HeartbeatGuard {
    let handle = io_runtime().spawn(async move {
        let mut client: Option<tokio_postgres::Client> = None;
        loop {
            tokio::time::sleep(every).await;
            if client.is_none() {
                client = d::connect(&ep).await.ok();
            }
            if let Some(c) = &client {
                if let Err(e) = c.batch_execute("SELECT pg_logical_emit_message(true, 'ferry_heartbeat', '')").await {
                    tracing::debug!(error = %crate::secrets::redact(&e.to_string()), "heartbeat failed");
                    client = None;
                }
            }
        }
    });
    HeartbeatGuard(handle)
}

/// Stops the heartbeat when the stream ends.
struct HeartbeatGuard(tokio::task::JoinHandle<()>);

impl Drop for HeartbeatGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_find_their_chunk_and_skip_only_transactions_the_chunk_read_saw() {
        let p = |lsn| Point(lsn, None);
        let idx = ChunkIndex { column: Some(0), ranges: vec![(None, p(100)), (Some(10), p(200)), (Some(20), p(300))] };
        let skip = |idx: &ChunkIndex, v: Value, lsn| idx.handoff(&[v], lsn) == Handoff::Skip;
        // Key 15 is in the chunk read at 200.
        assert!(skip(&idx, Value::Int(15), 150));
        assert!(!skip(&idx, Value::Int(15), 200));
        // Key 5 in the first chunk (100), key 25 in the last (300).
        assert!(!skip(&idx, Value::Int(5), 150));
        assert!(skip(&idx, Value::Int(25), 250));
        assert!(skip(&idx, Value::Int(i64::MIN), 99));
        let whole = ChunkIndex { column: None, ranges: vec![(None, p(50))] };
        assert!(skip(&whole, Value::Text("x".into()), 49));
        assert!(!skip(&whole, Value::Text("x".into()), 50));
        let none = ChunkIndex { column: None, ranges: vec![] };
        assert_eq!(none.handoff(&[Value::Int(1)], 0), Handoff::Apply);
    }

    #[test]
    fn changes_between_a_split_epochs_two_reads_go_only_to_the_workers_that_had_committed_it() {
        // Read at 100 for workers 0 and 2 (bits 0b101), again at 180 for the others.
        let idx = ChunkIndex { column: None, ranges: vec![(None, Point(100, Some((180, 0b101))))] };
        let at = |lsn| idx.handoff(&[Value::Int(1)], lsn);
        assert_eq!(at(99), Handoff::Skip);
        assert_eq!(at(100), Handoff::For(0b101));
        assert_eq!(at(179), Handoff::For(0b101));
        assert_eq!(at(180), Handoff::Apply);
    }
}
