//! The MySQL/MariaDB source operators: a parallel chunked snapshot on every worker, then the
//! binlog on worker 0, joined without a gap or a duplicate.
//!
//! ```text
//!  every worker                                   worker 0
//!  ┌────────────────────────────┐   done(epoch,  ┌──────────────────────────────────────────┐
//!  │ Snapshot: chunks id≡w mod N│── positions) ─►│ Binlog: capability follows the snapshot's │
//!  │  I/O task reads a chunk in │   (exchange    │  frontier; once every snapshot worker is  │
//!  │  one consistent-snapshot   │    to 0)       │  done, starts at the lowest chunk position│
//!  │  transaction → rows + P(c) │                │  in an epoch after every snapshot epoch   │
//!  └─────────────┬──────────────┘                └───────────────────┬──────────────────────┘
//!                │ changes (Insert)                                  │ changes
//!                └────────────────────────────► concat ◄─────────────┘
//!                                                                    + schema events (DDL),
//!                                                                      a second output
//! ```
//!
//! - A chunk's rows never span two epochs: a snapshot worker closes its epoch only between
//!   chunks, recording `{chunk: {done, pos: P(c)}}` in its boundary record.
//! - The handoff rule: a binlog transaction that began before `P(c)` is already in chunk `c`'s
//!   rows and is skipped for keys in `c`; later ones are applied. Keys are placed in chunks by
//!   exact comparison in the key's order ([`KeyOrder`]: integers, temporal types, decimals,
//!   binary strings, text in a binary UTF-8 collation bytewise, text in other collations by the
//!   server's sort keys, fetched for chunk bounds at start and for rows in the snapshot window
//!   by the reader task); for a key of unknown order the transactions between the lowest and
//!   the highest chunk position are applied to every key (harmless in upsert mode, since row
//!   images are full; documented for append mode).
//! - A replayed epoch re-reads its chunks but keeps their recorded positions; the binlog replays
//!   by recorded positions, so its epochs are identical.
//! - I/O runs on the shared tokio runtime; rows reach the operator through bounded channels and
//!   wake it with an activator, so memory stays bounded whatever the table size.

use super::SourceCtx;
use crate::checkpoint::Next;
use crate::connectors::mysql::binlog::{BinlogEvent, BinlogPos, BinlogReader, StartFrom};
use crate::connectors::mysql::snapshot::{read_chunk, weights, Chunk, WeighedColumn};
use crate::plan::Compiled;
use crate::runtime::fault::Fault;
use crate::runtime::{io_runtime, TaskError};
use crate::state::TaskState;
use ferry_operators::{Change, Op, Position, Row, SchemaChangeKind, SchemaEvent, TableId, Value};
use serde::Deserialize;
use serde_json::json;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Concat;
use timely::dataflow::{Scope, StreamVec};

/// Everything the MySQL operators need, prepared by the engine before the dataflow starts.
#[derive(Clone)]
pub struct MysqlRun {
    /// Connection options (session set up for exact reads).
    pub opts: mysql_async::Opts,
    /// Replication server id.
    pub server_id: u32,
    /// The snapshot's chunks (empty in `incremental` mode).
    pub chunks: Arc<Vec<Chunk>>,
    /// Per selected table, per column, the character set.
    pub charsets: Arc<Vec<Vec<Option<String>>>>,
    /// Per selected table, per column, the collation (text columns): it decides whether a
    /// text key's order can be reproduced for the snapshot/binlog handoff.
    pub collations: Arc<Vec<Vec<Option<String>>>>,
    /// Per selected table, its key columns ordered by the server's sort keys
    /// ([`KeyOrder::Weight`]), in key order; empty for other tables.
    pub weighed: Arc<Vec<Vec<WeighedColumn>>>,
    /// Per chunk of such a table, the sort keys of its lower bound's weighed columns.
    pub bound_weights: Arc<HashMap<u32, Vec<Option<Vec<u8>>>>>,
    /// Where the binlog starts when no checkpoint says otherwise and there is no snapshot.
    pub initial: Option<StartFrom>,
    /// Stop once the binlog reaches this position (bounded runs: tests, catch-up benchmarks).
    pub stop_at: Option<BinlogPos>,
    /// Heartbeat period of the replication connection.
    pub heartbeat: Duration,
}

/// A decoded binlog event, its server time (seconds), after a commit the GTID position, and
/// for rows of a table whose column names changed since the last rows sent, the new names.
/// Rows events of a table with [`KeyOrder::Weight`] key columns in the snapshot window also
/// carry, per row change, the sort keys of its before and after images.
type Event = (BinlogEvent, u32, Option<String>, Option<Vec<String>>, Option<Vec<[ImageWeights; 2]>>);

/// A binlog reader task's message: an event, or why the stream stopped.
type EventMsg = Result<Event, TaskError>;

/// What a finished snapshot worker tells the binlog reader.
type Done = (u64, Vec<(u32, BinlogPos)>);

enum SnapMsg {
    Rows(u32, Vec<Row>),
    ChunkDone(u32, BinlogPos),
    Failed(TaskError),
}

/// A source error as the run's failure: connection problems restart the task, settings and
/// grants stop it.
fn source_failure(e: crate::connectors::mysql::discover::SourceError) -> TaskError {
    if e.is_transient() {
        TaskError::transient(format!("snapshot: {e}"))
    } else {
        TaskError::definite(format!("snapshot: {e}"))
    }
}

fn chunk_offset(pos: &BinlogPos) -> serde_json::Value {
    json!({ "done": true, "file": pos.file, "pos": pos.pos })
}

/// The binlog position in a stored offset (`{"file", "pos", ...}`).
fn offset_pos(v: &serde_json::Value) -> Option<BinlogPos> {
    BinlogPos::deserialize(v).ok()
}

fn parse_chunk_offset(v: &serde_json::Value) -> Option<BinlogPos> {
    v.get("done")?.as_bool()?.then(|| offset_pos(v)).flatten()
}

/// `(file number, offset)` of a position: a compact, ordered key for the per-row handoff check
/// and the metadata position.
fn pos_key(p: &BinlogPos) -> PosKey {
    (p.file_index().unwrap_or(0) as u32, p.pos)
}

/// A binlog error as the run's failure: a lost connection or a server going away restarts the
/// task from its checkpoint; a purged position, a refusal or an undecodable event stops it.
fn binlog_failure(e: crate::connectors::mysql::binlog::BinlogError) -> TaskError {
    if e.is_transient() {
        TaskError::transient(format!("binlog: {e}"))
    } else {
        TaskError::definite(format!("binlog: {e}"))
    }
}

/// Builds the MySQL source for this worker: snapshot (all workers) then binlog (worker 0).
/// Returns the row changes and the schema events of the binlog's DDL statements.
pub fn mysql_source<'s>(
    scope: Scope<'s, u64>,
    cx: &SourceCtx,
    run: MysqlRun,
) -> (StreamVec<'s, u64, Change>, StreamVec<'s, u64, SchemaEvent>) {
    let (snap_changes, done) = snapshot(scope, cx, run.clone());
    let (bin, schema) = binlog(scope, done, cx, run);
    (snap_changes.concat(bin), schema)
}

fn snapshot<'s>(
    scope: Scope<'s, u64>,
    cx: &SourceCtx,
    run: MysqlRun,
) -> (StreamVec<'s, u64, Change>, StreamVec<'s, u64, Done>) {
    let index = scope.index();
    let peers = scope.peers();
    let (plan, restore, metrics, failure) = (cx.plan.clone(), &cx.restore, cx.metrics.clone(), cx.failure.clone());
    // Snapshot chunks are partitions 1.. (chunk id + 1); the binlog is partition 0.
    let mut epochs = cx.epochs(index, peers).for_partitions(|p| p > 0);
    let interval = Duration::from_millis(plan.plan.checkpoint_ms);
    let start_epoch = restore.start_epoch();
    // Chunks already done before the restore point, with their positions.
    let mut positions: Vec<(u32, BinlogPos)> = Vec::new();
    for c in run.chunks.iter() {
        if let Some(p) = restore.manifest.offsets.get(&(c.id + 1)).and_then(parse_chunk_offset) {
            positions.push((c.id, p));
        }
    }
    // Epochs to replay: the chunks each recorded, in order, with their recorded positions.
    let mut replay: VecDeque<(u64, Vec<(u32, BinlogPos)>)> = VecDeque::new();
    for b in epochs.to_replay() {
        let chunks: Vec<(u32, BinlogPos)> = b
            .offsets
            .iter()
            .filter(|(k, _)| **k > 0)
            .filter_map(|(k, v)| parse_chunk_offset(v).map(|p| (k - 1, p)))
            .collect();
        if !chunks.is_empty() {
            replay.push_back((b.epoch, chunks));
        }
    }
    let done_ids: std::collections::HashSet<u32> = positions.iter().map(|(c, _)| *c).collect();
    let replay_ids: Vec<u32> = replay.iter().flat_map(|(_, cs)| cs.iter().map(|(c, _)| *c)).collect();
    let mut order: Vec<u32> = replay_ids.clone();
    order.extend(
        run.chunks
            .iter()
            .filter(|c| c.id as usize % peers == index && !done_ids.contains(&c.id) && !replay_ids.contains(&c.id))
            .filter(|c| c.table != crate::connectors::mysql::snapshot::UNSELECTED)
            .map(|c| c.id),
    );

    let mut builder = OperatorBuilder::new("MysqlSnapshot".into(), scope);
    let info = builder.operator_info();
    let (out_changes, changes) = builder.new_output::<Vec<Change>>();
    let (out_done, done) = builder.new_output::<Vec<Done>>();
    let mut out_changes: OutputBuilder<u64, CapacityContainerBuilder<Vec<Change>>> = OutputBuilder::from(out_changes);
    let mut out_done: OutputBuilder<u64, CapacityContainerBuilder<Vec<Done>>> = OutputBuilder::from(out_done);
    let activator = scope.worker().sync_activator_for(info.address.to_vec());
    // Reschedules the operator itself when it closed an epoch with messages left in the channel:
    // the reader's activations for them were spent by the activation that stopped reading.
    let again = scope.activator_for(info.address.clone());

    builder.build(move |mut caps| {
        let mut cap_done = caps.pop();
        let mut cap = caps.pop();
        for c in cap.iter_mut().chain(cap_done.iter_mut()) {
            c.downgrade(&start_epoch);
        }
        // Start the reader task for this worker's chunks.
        let (tx, rx): (_, Receiver<SnapMsg>) = sync_channel(8);
        if !order.is_empty() {
            let chunks = run.chunks.clone();
            let plan = plan.clone();
            let opts = run.opts.clone();
            let charsets = run.charsets.clone();
            let order = order.clone();
            io_runtime().spawn(async move {
                let send = |m: SnapMsg| {
                    let ok = tx.send(m).is_ok();
                    let _ = activator.activate();
                    ok
                };
                let mut conn = match crate::connectors::mysql::discover::connect(&opts).await {
                    Ok(c) => c,
                    Err(e) => {
                        send(SnapMsg::Failed(source_failure(e)));
                        return;
                    }
                };
                // Fault injection for crash tests: slow each chunk down so a kill lands mid-snapshot.
                let delay = Fault::ChunkDelay.delay();
                for id in order {
                    if let Some(d) = delay {
                        tokio::time::sleep(d).await;
                    }
                    let chunk = &chunks[id as usize];
                    if chunk.table == crate::connectors::mysql::snapshot::UNSELECTED {
                        // A replayed epoch's chunk of a table no longer selected: nothing to
                        // read (the epoch keeps the chunk's recorded position).
                        if !send(SnapMsg::ChunkDone(id, BinlogPos::default())) {
                            return;
                        }
                        continue;
                    }
                    let schema = plan.catalog.get(chunk.table);
                    let cs = &charsets[chunk.table as usize];
                    let mut alive = true;
                    let r = read_chunk(&mut conn, chunk, schema, cs, |rows| {
                        // Blocks this I/O thread when the operator lags: memory stays bounded.
                        alive &= send(SnapMsg::Rows(id, rows));
                    })
                    .await;
                    match r {
                        Ok(pos) if alive => {
                            if !send(SnapMsg::ChunkDone(id, pos)) {
                                return;
                            }
                        }
                        Ok(_) => return,
                        Err(e) => {
                            send(SnapMsg::Failed(source_failure(e)));
                            return;
                        }
                    }
                }
            });
        }
        let mut remaining: usize = order.len();
        let mut in_epoch: Vec<(u32, BinlogPos)> = Vec::new();
        let mut deadline = Instant::now() + interval;
        let mut seqs: HashMap<u32, u64> = HashMap::new();
        let mut failed = false;
        move |_frontiers| {
            let Some(c) = cap.as_mut() else { return };
            if failed {
                return;
            }
            let epoch = *c.time();
            let mut produced = 0u64;
            let mut close = false;
            {
                let mut out = out_changes.activate();
                let mut session = out.session(&*c);
                // Snapshot rows carry the time they were read as their event time.
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros() as i64);
                loop {
                    match rx.try_recv() {
                        Ok(SnapMsg::Rows(id, rows)) => {
                            let table = run.chunks[id as usize].table;
                            let seq = seqs.entry(id).or_insert(0);
                            for row in rows {
                                session.give(Change {
                                    table,
                                    op: Op::Insert,
                                    before: None,
                                    after: Some(row),
                                    pos: Position::Seq { partition: id + 1, seq: *seq },
                                    commit_micros: now,
                                    schema: None,
                                });
                                *seq += 1;
                                produced += 1;
                            }
                        }
                        Ok(SnapMsg::ChunkDone(id, pos)) => {
                            remaining -= 1;
                            // A replayed chunk keeps the position it was first recorded with.
                            let recorded = replay
                                .front()
                                .filter(|(e, _)| *e == epoch)
                                .and_then(|(_, cs)| cs.iter().find(|(c, _)| *c == id).map(|(_, p)| p.clone()));
                            in_epoch.push((id, recorded.unwrap_or(pos)));
                            close = match replay.front() {
                                Some((e, cs)) if *e == epoch => {
                                    cs.iter().all(|(c, _)| in_epoch.iter().any(|(d, _)| d == c))
                                }
                                _ => remaining == 0 || Instant::now() >= deadline || epochs.stop_due(),
                            };
                            if close {
                                break;
                            }
                        }
                        Ok(SnapMsg::Failed(e)) => {
                            failed = true;
                            failure.report(e);
                            break;
                        }
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => break,
                    }
                }
            }
            metrics.rows_in.fetch_add(produced, Ordering::Relaxed);
            if failed {
                // The capabilities stay: no epoch passes without its record.
                return;
            }
            if close {
                let offsets = in_epoch.iter().map(|(id, p)| (id + 1, chunk_offset(p))).collect();
                if replay.front().is_some_and(|(e, _)| *e == epoch) {
                    replay.pop_front();
                }
                let next = match epochs.close(epoch, offsets, remaining == 0) {
                    Ok(next) => next,
                    Err(e) => {
                        failed = true;
                        failure.report(e);
                        return;
                    }
                };
                positions.append(&mut in_epoch);
                deadline = Instant::now() + interval;
                let Next::Open(next) = next else {
                    if remaining == 0 {
                        finish(&mut cap, &mut cap_done, &mut out_done, epoch, &mut positions);
                    } else {
                        // Stopped at a savepoint: the binlog does not start either.
                        cap = None;
                        cap_done = None;
                    }
                    return;
                };
                again.activate();
                c.downgrade(&next);
                if let Some(d) = cap_done.as_mut() {
                    d.downgrade(&next);
                }
                metrics.epoch.fetch_max(next, Ordering::Relaxed);
            }
            if remaining == 0 && order.is_empty() {
                finish(&mut cap, &mut cap_done, &mut out_done, epoch, &mut positions);
            }
        }
    });
    (changes, done)
}

/// A snapshot worker is done: tell worker 0 its last epoch and every chunk position it knows,
/// then release its capabilities.
fn finish(
    cap: &mut Option<timely::dataflow::operators::Capability<u64>>,
    cap_done: &mut Option<timely::dataflow::operators::Capability<u64>>,
    out_done: &mut OutputBuilder<u64, CapacityContainerBuilder<Vec<Done>>>,
    epoch: u64,
    positions: &mut Vec<(u32, BinlogPos)>,
) {
    if let Some(d) = cap_done.as_ref() {
        let mut out = out_done.activate();
        out.session(d).give((epoch, std::mem::take(positions)));
    }
    *cap = None;
    *cap_done = None;
}

/// A binlog position as `(file number, offset)`, ordered.
type PosKey = (u32, u64);

/// Per selected table: how binlog rows find their chunk.
struct ChunkIndex {
    /// (lower bound, position) of the table's chunks sorted by bound, when every key column
    /// orders in a way ferry reproduces ([`KeyOrder`]); `None` for other keys.
    ranges: Option<Vec<(Option<Vec<KeyPart>>, PosKey)>>,
    /// The highest chunk position of the table (the window in which other keys are always
    /// applied ends here).
    max_pos: PosKey,
    key: Vec<usize>,
    /// How each key column orders.
    orders: Vec<KeyOrder>,
    /// The position of a table read as one chunk: every row of it is in that chunk, whatever
    /// its key (or none).
    single: Option<PosKey>,
}

/// How a key column's values order on the server, when ferry can reproduce it exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyOrder {
    /// Integers and temporal values: as integers.
    Int,
    /// Exact decimals: numerically.
    Decimal,
    /// Binary strings, and text in a binary `NO PAD` collation of UTF-8 or ASCII: bytewise.
    Bytes,
    /// Text in a binary `PAD SPACE` collation (`utf8mb4_bin`, …): bytewise, as if the shorter
    /// value were padded with spaces.
    PadBytes,
    /// Text in any other collation: the server's sort key (`WEIGHT_STRING`, of the value
    /// padded to the column's length in a `PAD SPACE` collation), bytewise. Chunk bounds get
    /// theirs at start, binlog rows in the snapshot window from the reader task.
    Weight,
}

/// The order of a key column of type `ty` in `collation`; `None` when ferry cannot reproduce
/// it (text without a known collation, and types without an order here).
pub(crate) fn key_order(ty: &ferry_operators::ColumnType, collation: Option<&str>) -> Option<KeyOrder> {
    use ferry_operators::ColumnType as T;
    match ty {
        T::Int { .. } | T::Year | T::Date | T::Time { .. } | T::DateTime { .. } | T::Timestamp { .. } => {
            Some(KeyOrder::Int)
        }
        T::Decimal { .. } => Some(KeyOrder::Decimal),
        T::Bytes { .. } => Some(KeyOrder::Bytes),
        T::String { .. } => {
            let c = collation?.to_ascii_lowercase();
            let (charset, rest) = c.split_once('_')?;
            // UTF-8 bytes order like code points, which is how these collations compare.
            let utf8 = matches!(charset, "utf8mb4" | "utf8mb3" | "utf8" | "ascii");
            match rest {
                "bin" if utf8 => Some(KeyOrder::PadBytes),
                "nopad_bin" if utf8 => Some(KeyOrder::Bytes),
                _ => Some(KeyOrder::Weight),
            }
        }
        _ => None,
    }
}

/// One key column's value in a form whose `Ord` is the server's order for its column (values
/// of one column always take the same variant).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum KeyPart {
    Int(i128),
    Decimal(DecimalKey),
    Bytes(Vec<u8>),
    Pad(PadKey),
}

/// An exact decimal ordered numerically: sign, then the integer digits without leading zeros,
/// then the fraction digits without trailing zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DecimalKey {
    negative: bool,
    int: String,
    frac: String,
}

impl DecimalKey {
    fn parse(s: &str) -> Option<DecimalKey> {
        let (negative, body) = match s.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (int, frac) = (int.trim_start_matches('0').to_string(), frac.trim_end_matches('0').to_string());
        // Zero has no sign.
        let negative = negative && !(int.is_empty() && frac.is_empty());
        Some(DecimalKey { negative, int, frac })
    }

    fn magnitude_cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.cmp(&other.int))
            .then_with(|| self.frac.cmp(&other.frac))
    }
}

impl Ord for DecimalKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self.negative, other.negative) {
            (false, false) => self.magnitude_cmp(other),
            (true, true) => other.magnitude_cmp(self),
            (a, _) => {
                if a {
                    std::cmp::Ordering::Less
                } else {
                    std::cmp::Ordering::Greater
                }
            }
        }
    }
}

impl PartialOrd for DecimalKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Bytes compared as if the shorter were padded with spaces (a `PAD SPACE` collation of UTF-8
/// text).
#[derive(Debug, Clone)]
struct PadKey(Vec<u8>);

impl Ord for PadKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let (a, b) = (&self.0, &other.0);
        let n = a.len().min(b.len());
        a[..n].cmp(&b[..n]).then_with(|| {
            // The longer one's rest against spaces: its first non-space byte decides.
            let rest_vs_spaces =
                |r: &[u8]| r.iter().find(|&&x| x != b' ').map_or(std::cmp::Ordering::Equal, |x| x.cmp(&b' '));
            if a.len() >= b.len() {
                rest_vs_spaces(&a[n..])
            } else {
                rest_vs_spaces(&b[n..]).reverse()
            }
        })
    }
}

impl PartialOrd for PadKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PadKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for PadKey {}

/// A key value as an integer with the same order as the server's, when there is one.
fn as_i128(v: &Value) -> Option<i128> {
    match v {
        Value::Int(i) => Some(*i as i128),
        Value::UInt(u) => Some(*u as i128),
        Value::Year(y) => Some(*y as i128),
        Value::Time(t) | Value::Timestamp(t) => Some(*t as i128),
        Value::Date(d) => d.to_days().map(i128::from),
        Value::DateTime(dt) => dt.to_epoch_micros().map(i128::from),
        _ => None,
    }
}

fn key_part(v: &Value, order: KeyOrder) -> Option<KeyPart> {
    match (order, v) {
        (KeyOrder::Int, v) => as_i128(v).map(KeyPart::Int),
        (KeyOrder::Decimal, Value::Decimal(d)) => DecimalKey::parse(d).map(KeyPart::Decimal),
        (KeyOrder::Bytes, Value::Bytes(b)) => Some(KeyPart::Bytes(b.clone())),
        (KeyOrder::Bytes, Value::Text(t)) => Some(KeyPart::Bytes(t.as_bytes().to_vec())),
        (KeyOrder::PadBytes, Value::Text(t)) => Some(KeyPart::Pad(PadKey(t.as_bytes().to_vec()))),
        _ => None,
    }
}

/// The key of `row`; `weights` are the server's sort keys of its [`KeyOrder::Weight`] columns,
/// in key order (no key without them).
fn key_of(
    row: &[Value],
    key: &[usize],
    orders: &[KeyOrder],
    weights: Option<&[Option<Vec<u8>>]>,
) -> Option<Vec<KeyPart>> {
    let mut weights = weights.map(|w| w.iter());
    key.iter()
        .zip(orders)
        .map(|(&k, &o)| match o {
            KeyOrder::Weight => weights.as_mut()?.next()?.clone().map(KeyPart::Bytes),
            o => row.get(k).and_then(|v| key_part(v, o)),
        })
        .collect()
}

/// The server's sort keys of one row image's [`KeyOrder::Weight`] key columns.
type ImageWeights = Option<Vec<Option<Vec<u8>>>>;

impl ChunkIndex {
    /// Whether a transaction that began at `start` is already in the snapshot rows of `row`.
    fn in_snapshot(&self, row: &[Value], weights: Option<&[Option<Vec<u8>>]>, start: PosKey) -> bool {
        if let Some(p) = self.single {
            return start < p;
        }
        let Some(ranges) = &self.ranges else { return false };
        let Some(v) = key_of(row, &self.key, &self.orders, weights) else { return false };
        let i = ranges.partition_point(|(lo, _)| lo.as_ref().is_none_or(|lo| *lo <= v));
        start < ranges[i.saturating_sub(1)].1
    }
}

fn binlog<'s>(
    scope: Scope<'s, u64>,
    done: StreamVec<'s, u64, Done>,
    cx: &SourceCtx,
    run: MysqlRun,
) -> (StreamVec<'s, u64, Change>, StreamVec<'s, u64, SchemaEvent>) {
    let index = scope.index();
    let peers = scope.peers();
    let (plan, state, metrics, failure) = (cx.plan.clone(), cx.state.clone(), cx.metrics.clone(), cx.failure.clone());
    // The binlog is partition 0, read by worker 0.
    let mut epochs = cx.epochs(0, peers).for_partitions(|p| p == 0);
    let interval = Duration::from_millis(plan.plan.checkpoint_ms);
    let resume: Option<BinlogPos> = cx.restore.manifest.offsets.get(&0).and_then(offset_pos);
    let tables: HashMap<(String, String), TableId> = plan
        .catalog
        .tables
        .iter()
        .enumerate()
        .map(|(i, t)| ((t.name.database.clone(), t.name.table.clone()), i as TableId))
        .collect();
    // `operations: {skip: [ddl]}` keeps schema events from the sinks (they still drive renames).
    let deliver_ddl = !plan.plan.raw.operations.skip.contains(&crate::plan::config::OpKind::Ddl);
    let mut builder = OperatorBuilder::new("MysqlBinlog".into(), scope);
    let info = builder.operator_info();
    let mut input = builder.new_input(done, Exchange::new(|_| 0u64));
    let (out_rows, rows) = builder.new_output::<Vec<Change>>();
    let (out_schema, schema_events) = builder.new_output::<Vec<SchemaEvent>>();
    let mut out_rows: OutputBuilder<u64, CapacityContainerBuilder<Vec<Change>>> = OutputBuilder::from(out_rows);
    let mut out_schema: OutputBuilder<u64, CapacityContainerBuilder<Vec<SchemaEvent>>> =
        OutputBuilder::from(out_schema);
    builder.build(
        move |mut caps| {
            let activator = scope.worker().sync_activator_for(info.address.to_vec());
            // The schema output's capability moves with the rows' one.
            let mut cap_schema = caps.pop().filter(|_| index == 0);
            let mut cap = caps.pop().filter(|_| index == 0);
            let mut last_snapshot_epoch = 0u64;
            let mut chunk_positions: Vec<(u32, BinlogPos)> = Vec::new();
            let mut rx: Option<Receiver<Vec<EventMsg>>> = None;
            // Events received in a batch but not yet handled (a batch may span an epoch end).
            let mut queued: std::vec::IntoIter<EventMsg> = Vec::new().into_iter();
            let mut failed = false;
            let mut gtid: Option<String> = None;
            let mut evolved: HashMap<TableId, Arc<ferry_operators::TableSchema>> = HashMap::new();
            // Renamed columns per table: current name → the name the plan knows.
            let mut aliases: HashMap<TableId, HashMap<String, String>> = HashMap::new();
            let mut deadline = Instant::now() + interval;
            let mut txn_start: Option<BinlogPos> = None;
            let mut index_by_table: Vec<ChunkIndex> = Vec::new();
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
                    // Follow the snapshot so checkpoints advance while it runs.
                    if let Some(f) = frontier.frontier().first() {
                        if f > c.time() {
                            c.downgrade(f);
                            cs.downgrade(f);
                        }
                        return;
                    }
                    if epochs.stop_due() {
                        // Stopped at a savepoint before the binlog started: the next run starts
                        // it (or finishes the snapshot first).
                        epochs.end_unstarted();
                        cap = None;
                        cap_schema = None;
                        return;
                    }
                    // Every snapshot worker is done: start in an epoch after all their epochs.
                    let next = (last_snapshot_epoch + 1).max(*c.time());
                    c.downgrade(&next);
                    cs.downgrade(&next);
                    index_by_table =
                        build_index(&plan, &run.chunks, &chunk_positions, &run.collations, &run.bound_weights);
                    let from = match (&resume, chunk_positions.iter().min_by(|a, b| a.1.cmp(&b.1))) {
                        (Some(p), _) => StartFrom::Position(p.clone()),
                        (None, Some((_, p))) => StartFrom::Position(p.clone()),
                        (None, None) => match &run.initial {
                            Some(s) => s.clone(),
                            None => {
                                // Nothing to stream from (a snapshot of no rows and no start): done.
                                cap = None;
                                cap_schema = None;
                                return;
                            }
                        },
                    };
                    if let StartFrom::Position(p) = &from {
                        txn_start = Some(p.clone());
                    }
                    let (tx, r) = sync_channel(16);
                    rx = Some(r);
                    let opts = run.opts.clone();
                    let server_id = run.server_id;
                let heartbeat = run.heartbeat;
                    let act = activator.clone();
                    let hints: Vec<(String, String, Vec<ferry_operators::Column>)> = plan
                        .catalog
                        .tables
                        .iter()
                        .map(|t| (t.name.database.clone(), t.name.table.clone(), t.columns.clone()))
                        .collect();
                    let selected: std::collections::HashSet<(String, String)> = tables.keys().cloned().collect();
                    // Tables whose rows in the snapshot window need the server's sort keys,
                    // and where that window ends.
                    let weigh: HashMap<(String, String), Vec<WeighedColumn>> = plan
                        .catalog
                        .tables
                        .iter()
                        .enumerate()
                        .filter(|(t, _)| !run.weighed[*t].is_empty() && index_by_table[*t].ranges.is_some())
                        .map(|(t, s)| ((s.name.database.clone(), s.name.table.clone()), run.weighed[t].clone()))
                        .collect();
                    let window_end: PosKey = index_by_table.iter().map(|i| i.max_pos).max().unwrap_or((0, 0));
                    let mut io_start: PosKey = txn_start.as_ref().map(pos_key).unwrap_or((0, 0));
                    let weigh_opts = run.opts.clone();
                    io_runtime().spawn(async move {
                        let mut weigh_conn: Option<mysql_async::Conn> = None;
                        let mut reader = match BinlogReader::connect_with_heartbeat(opts, server_id, from, heartbeat).await {
                            Ok(mut r) => {
                                // Discovery knows what the binlog does not say (MariaDB JSON, INET).
                                for (db, t, cols) in hints {
                                    r.set_schema(&db, &t, cols);
                                }
                                r.set_table_filter(move |db, t| selected.contains(&(db.to_string(), t.to_string())));
                                r
                            }
                            Err(e) => {
                                let _ = tx.send(vec![Err(binlog_failure(e))]);
                                let _ = act.activate();
                                return;
                            }
                        };
                        let mut last_names: HashMap<(String, String), Vec<String>> = HashMap::new();
                        // Events go in batches, one activation each: a batch ends at every
                        // event that is not a row change (a commit, DDL, heartbeat, rotation,
                        // error), so nothing waits in it while the source is idle, or after
                        // BATCH events inside a big transaction.
                        const BATCH: usize = 64;
                        let mut batch = Vec::with_capacity(BATCH);
                        loop {
                            let ev = reader.next().await;
                            let stop = !matches!(ev, Ok(Some(_)));
                            // Sort keys of rows in the snapshot window whose key order only the
                            // server knows.
                            let mut row_weights = None;
                            if let Ok(Some(BinlogEvent::Rows { database, table, changes })) = &ev {
                                let key = (database.clone(), table.clone());
                                if let (Some(cols), true) = (weigh.get(&key), io_start < window_end) {
                                    match weigh_rows(&mut weigh_conn, &weigh_opts, cols, changes).await {
                                        Ok(w) => row_weights = Some(w),
                                        Err(e) => {
                                            let why = format!("binlog: sort keys of {database}.{table}: {e}");
                                            let _ = tx.send(vec![Err(TaskError::transient(why))]);
                                            let _ = act.activate();
                                            return;
                                        }
                                    }
                                }
                            }
                            if let Ok(Some(next)) = ev.as_ref().map(|e| e.as_ref().and_then(BinlogEvent::next_position)) {
                                io_start = pos_key(next);
                            }
                            let msg = match ev {
                                Ok(Some(e)) => {
                                    // The GTID position after a transaction, for the checkpoint.
                                    let g = matches!(e, BinlogEvent::Commit { .. }).then(|| reader.gtid_position()).flatten();
                                    // Column names from the table map, sent when they change.
                                    let names = match &e {
                                        BinlogEvent::Rows { database, table, .. } => {
                                            let key = (database.clone(), table.clone());
                                            match reader.columns(database, table) {
                                                Some(n) if last_names.get(&key) != Some(&n) => {
                                                    last_names.insert(key, n.clone());
                                                    Some(n)
                                                }
                                                _ => None,
                                            }
                                        }
                                        _ => None,
                                    };
                                    Ok((e, reader.event_time(), g, names, row_weights))
                                }
                                // The server closed the stream (shut down, or the
                                // connection was killed): start again from the checkpoint.
                                Ok(None) => Err(TaskError::transient("binlog: the server ended the binlog stream")),
                                Err(e) => Err(binlog_failure(e)),
                            };
                            let boundary = msg.as_ref().map_or(true, |m| m.0.next_position().is_some());
                            batch.push(msg);
                            if !boundary && batch.len() < BATCH {
                                continue;
                            }
                            if tx.send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))).is_err() {
                                return;
                            }
                            let _ = act.activate();
                            if stop {
                                return;
                            }
                        }
                    });
                }
                let epoch = *c.time();
                let rx = rx.as_ref().expect("started");
                let mut produced = 0u64;
                let mut close_at: Option<BinlogPos> = None;
                let mut finished = false;
                let mut schema_out: Vec<SchemaEvent> = Vec::new();
                let mut fatal: Option<TaskError> = None;
                {
                    let mut output = out_rows.activate();
                    let mut session = output.session(&*c);
                    'events: for _ in 0..4096 {
                        if queued.len() == 0 {
                            match rx.try_recv() {
                                Ok(batch) => queued = batch.into_iter(),
                                Err(_) => break,
                            }
                        }
                        let (ev, event_time, ev_gtid, ev_names, ev_weights) = match queued.next() {
                            Some(Ok(ev)) => ev,
                            Some(Err(e)) => {
                                fatal = Some(e);
                                break;
                            }
                            None => break,
                        };
                        if ev_gtid.is_some() {
                            gtid = ev_gtid;
                        }
                        match ev {
                            BinlogEvent::Begin { .. } => {}
                            BinlogEvent::Rows { database, table, changes } => {
                                let Some(&tid) = tables.get(&(database, table)) else { continue };
                                let start = txn_start.as_ref().map(pos_key).unwrap_or((0, 0));
                                let position = Position::Binlog { file: start.0, pos: start.1 };
                                let idx = &index_by_table[tid as usize];
                                let base = plan.catalog.get(tid);
                                if let Some(names) = ev_names {
                                    // A renamed column keeps its original name, so it keeps
                                    // flowing into the same target column (the one the run
                                    // started with: after a restart the new name is the column).
                                    let names: Vec<String> = match aliases.get(&tid) {
                                        Some(a) => names
                                            .iter()
                                            .map(|n| match a.get(n) {
                                                Some(orig) if !names.contains(orig) && base.column_index(orig).is_some() => {
                                                    orig.clone()
                                                }
                                                _ => n.clone(),
                                            })
                                            .collect(),
                                        None => names,
                                    };
                                    let current = evolved.get(&tid).map(|s| s.as_ref()).unwrap_or(base);
                                    let same = |s: &ferry_operators::TableSchema| s.columns.iter().map(|c| &c.name).eq(names.iter());
                                    if same(base) {
                                        evolved.remove(&tid);
                                    } else if !same(current) {
                                        let next = evolve_schema(base, current, &names);
                                        tracing::info!(table = %base.name, version = next.version, "the table's columns changed");
                                        evolved.insert(tid, Arc::new(next));
                                    }
                                }
                                let row_schema = evolved.get(&tid).cloned();
                                let schema = row_schema.as_deref().unwrap_or(base);
                                let width = schema.columns.len();
                                for (i, (op, before, after)) in changes.into_iter().enumerate() {
                                    let w = ev_weights.as_ref().map(|w| &w[i]);
                                    if before.as_ref().or(after.as_ref()).is_some_and(|r| r.len() != width) {
                                        // The table map and the row disagree: never write a row
                                        // under the wrong columns.
                                        fatal = Some(TaskError::definite(format!(
                                            "binlog: table {} at {}: {} values in a row, {} columns in its table map",
                                            schema.name,
                                            txn_start.as_ref().map(|p| p.to_string()).unwrap_or_default(),
                                            before.as_ref().or(after.as_ref()).map_or(0, |r| r.len()),
                                            width
                                        )));
                                        break 'events;
                                    }
                                    let change = Change {
                                        table: tid,
                                        op,
                                        before,
                                        after,
                                        pos: position.clone(),
                                        commit_micros: event_time as i64 * 1_000_000,
                                        schema: row_schema.clone(),
                                    };
                                    // A key-changing update touches two keys, possibly in two chunks:
                                    // each half is checked against its own chunk.
                                    let (first, second) = change.split_key_change(schema);
                                    // The sort keys of each half's image (before for a delete).
                                    let image_weights = |c: &Change| {
                                        w.and_then(|w| w[usize::from(c.op != Op::Delete)].as_deref())
                                    };
                                    for c in std::iter::once(first).chain(second) {
                                        if start < idx.max_pos && idx.in_snapshot(c.image(), image_weights(&c), start) {
                                            continue;
                                        }
                                        session.give(c);
                                        produced += 1;
                                    }
                                }
                            }
                            ev @ (BinlogEvent::Commit { .. }
                            | BinlogEvent::Ddl { .. }
                            | BinlogEvent::Heartbeat { .. }
                            | BinlogEvent::Rotate { .. }) => {
                                // A DDL always ends the epoch: rows before and after a schema
                                // change never share one.
                                let is_ddl = matches!(ev, BinlogEvent::Ddl { .. });
                                if let BinlogEvent::Ddl { database, sql, .. } = &ev {
                                    let start = txn_start.as_ref().map(pos_key).unwrap_or((0, 0));
                                    for change in crate::connectors::mysql::ddl::parse(database, sql) {
                                        if let (SchemaChangeKind::CreateTable, Some((db, t))) = (&change.kind, &change.table) {
                                            if !tables.contains_key(&(db.clone(), t.clone())) && plan.selects(&format!("{db}.{t}")) {
                                                let name = format!("{db}.{t}");
                                                match new_table(&plan, &state, epoch, &name, &crate::secrets::redact(sql)) {
                                                    // The run ends with this epoch and starts again with the table.
                                                    Ok(end) => finished |= end,
                                                    Err(e) => {
                                                        fatal = Some(e);
                                                        break 'events;
                                                    }
                                                }
                                            }
                                        }
                                        let Some(&tid) = change.table.as_ref().and_then(|t| tables.get(t)) else { continue };
                                        tracing::info!(table = %plan.catalog.get(tid).name, change = ?change.kind, "schema change");
                                        if let SchemaChangeKind::RenameColumn { from, to } = &change.kind {
                                            let a = aliases.entry(tid).or_default();
                                            let orig = a.remove(from).unwrap_or_else(|| from.clone());
                                            a.insert(to.clone(), orig);
                                        }
                                        if !deliver_ddl {
                                            continue;
                                        }
                                        schema_out.push(SchemaEvent {
                                            table: tid,
                                            change: change.kind,
                                            // Passwords in a statement (`CONNECTION='mysql://u:p@…'`)
                                            // never reach logs, files or the state store.
                                            statement: crate::secrets::redact(sql),
                                            pos: Position::Binlog { file: start.0, pos: start.1 },
                                            commit_micros: event_time as i64 * 1_000_000,
                                        });
                                    }
                                }
                                let next = ev.next_position().expect("matched above").clone();
                                txn_start = Some(next.clone());
                                let recorded =
                                    epochs.replaying(epoch).and_then(|b| offset_pos(b.offsets.get(&0)?));
                                let due = match recorded {
                                    Some(p) => next >= p,
                                    None => is_ddl || Instant::now() >= deadline || epochs.stop_due(),
                                };
                                if run.stop_at.as_ref().is_some_and(|s| next >= *s) {
                                    finished = true;
                                }
                                if due || finished {
                                    close_at = Some(next);
                                    break;
                                }
                            }
                        }
                    }
                }
                metrics.rows_in.fetch_add(produced, Ordering::Relaxed);
                if let Some(e) = fatal {
                    // The capabilities stay: the epoch is never committed; the run ends.
                    failed = true;
                    failure.report(e);
                    return;
                }
                if !schema_out.is_empty() {
                    // In the epoch the statement ends: after its rows, before later ones.
                    out_schema.activate().session(&*cs).give_iterator(schema_out.drain(..));
                }
                if let Some(p) = &close_at {
                    let offsets = [(0, json!({ "file": p.file, "pos": p.pos, "gtid": gtid }))].into();
                    deadline = Instant::now() + interval;
                    match epochs.close(epoch, offsets, finished) {
                        Ok(Next::Open(next)) => {
                            c.downgrade(&next);
                            cs.downgrade(&next);
                            metrics.epoch.fetch_max(next, Ordering::Relaxed);
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
                if produced > 0 || close_at.is_some() {
                    let _ = activator.activate();
                }
            }
        },
    );
    (rows, schema_events)
}

/// The server's sort keys of the weighed key columns of every row image of one rows event,
/// in one query on a connection of their own (opened on first use).
async fn weigh_rows(
    conn: &mut Option<mysql_async::Conn>,
    opts: &mysql_async::Opts,
    cols: &[WeighedColumn],
    changes: &[crate::connectors::mysql::binlog::RowChange],
) -> Result<Vec<[ImageWeights; 2]>, String> {
    if conn.is_none() {
        *conn = Some(crate::connectors::mysql::discover::connect(opts).await.map_err(|e| e.to_string())?);
    }
    let c = conn.as_mut().expect("connected");
    let mut values = Vec::new();
    for (_, before, after) in changes {
        for row in [before, after].into_iter().flatten() {
            for wc in cols {
                values.push((row.get(wc.column).unwrap_or(&Value::Null), wc));
            }
        }
    }
    let mut got = weights(c, &values).await.map_err(|e| e.to_string())?.into_iter();
    let mut take = |row: &Option<Row>| row.as_ref().map(|_| got.by_ref().take(cols.len()).collect::<Vec<_>>());
    Ok(changes.iter().map(|(_, b, a)| [take(b), take(a)]).collect())
}

/// A `CREATE TABLE` of a table the selection takes, at `epoch`, by the plan's policy: `true`
/// when the run must end with this epoch to start again with the table (`auto`: recorded in
/// the state store first, so every process sees why the run ended); `log` warns, `ignore`
/// does nothing, `error` fails the run.
fn new_table(plan: &Compiled, state: &TaskState, epoch: u64, name: &str, statement: &str) -> Result<bool, TaskError> {
    use crate::plan::config::DdlPolicy;
    match plan.plan.raw.schema_changes.policy_for(&SchemaChangeKind::CreateTable) {
        DdlPolicy::Auto => {
            tracing::info!(
                table = name,
                epoch,
                "a new table matches the selection: the run ends here and starts again with it"
            );
            let mut rec = state.new_tables().ok().flatten().filter(|r| r.epoch == epoch).unwrap_or_default();
            rec.epoch = epoch;
            rec.tables.push(name.to_string());
            state
                .write_new_tables(&rec)
                .map_err(|e| TaskError::transient(format!("cannot record the new table {name}: {e}")))?;
            Ok(true)
        }
        DdlPolicy::Ignore => Ok(false),
        DdlPolicy::Log => {
            tracing::warn!(
                table = name,
                statement,
                "a new table matches the selection and is not copied (schema_changes policy: log)"
            );
            Ok(false)
        }
        DdlPolicy::Error => Err(TaskError::definite(format!(
            "new table {name} refused by the schema_changes policy `error`: {statement}"
        ))),
    }
}

/// The schema of rows whose table map names `names`: known columns keep their type and
/// nullability (from the latest schema, else the discovered one), new ones are nullable with
/// an unknown type; keys are kept when all their columns remain.
fn evolve_schema(
    base: &ferry_operators::TableSchema,
    current: &ferry_operators::TableSchema,
    names: &[String],
) -> ferry_operators::TableSchema {
    use ferry_operators::{Column, ColumnType};
    let columns: Vec<Column> = names
        .iter()
        .map(|n| {
            current
                .column_index(n)
                .map(|i| current.columns[i].clone())
                .or_else(|| base.column_index(n).map(|i| base.columns[i].clone()))
                .unwrap_or_else(|| Column::new(n.clone(), ColumnType::Other { name: "unknown".into() }, true))
        })
        .collect();
    let map = |key: &[usize]| -> Option<Vec<usize>> {
        key.iter().map(|&i| names.iter().position(|n| n.eq_ignore_ascii_case(&base.columns[i].name))).collect()
    };
    ferry_operators::TableSchema {
        name: base.name.clone(),
        primary_key: map(&base.primary_key).unwrap_or_default(),
        unique_keys: base.unique_keys.iter().filter_map(|k| map(k)).collect(),
        columns,
        version: current.version + 1,
    }
}

fn build_index(
    plan: &Compiled,
    chunks: &[Chunk],
    positions: &[(u32, BinlogPos)],
    collations: &[Vec<Option<String>>],
    bound_weights: &HashMap<u32, Vec<Option<Vec<u8>>>>,
) -> Vec<ChunkIndex> {
    let pos: BTreeMap<u32, PosKey> = positions.iter().map(|(c, p)| (*c, pos_key(p))).collect();
    plan.catalog
        .tables
        .iter()
        .enumerate()
        .map(|(t, schema)| {
            let mine: Vec<&Chunk> = chunks.iter().filter(|c| c.table as usize == t).collect();
            let max_pos = mine.iter().filter_map(|c| pos.get(&c.id)).max().copied().unwrap_or((0, 0));
            let key = schema.row_key().to_vec();
            let orders: Option<Vec<KeyOrder>> = key
                .iter()
                .map(|&k| {
                    let collation = collations.get(t).and_then(|c| c.get(k)).and_then(|c| c.as_deref());
                    key_order(&schema.columns[k].ty, collation)
                })
                .collect();
            let orders = orders.unwrap_or_default();
            let bounds: Option<Vec<(Option<Vec<KeyPart>>, PosKey)>> = mine
                .iter()
                .map(|c| {
                    let lower = match &c.lower {
                        None => None,
                        Some(l) => Some(key_of(
                            l,
                            &(0..l.len()).collect::<Vec<_>>(),
                            &orders,
                            bound_weights.get(&c.id).map(Vec::as_slice),
                        )?),
                    };
                    Some((lower, pos.get(&c.id).copied().unwrap_or((0, 0))))
                })
                .collect();
            let ranges = bounds.filter(|_| !key.is_empty() && orders.len() == key.len()).map(|mut r| {
                r.sort_by(|a, b| a.0.cmp(&b.0));
                r
            });
            let single = (mine.len() == 1).then(|| pos.get(&mine[0].id).copied().unwrap_or((0, 0)));
            ChunkIndex { ranges, max_pos, key, orders, single }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_operators::ColumnType;
    use proptest::prelude::*;

    fn dec(units: i64, scale: u32) -> String {
        // `units` / 10^scale as text, with a few redundant zeros on both sides.
        let neg = units < 0;
        let digits = format!("{:0>width$}", units.unsigned_abs(), width = scale as usize + 1);
        let (int, frac) = digits.split_at(digits.len() - scale as usize);
        format!("{}00{int}.{frac}00", if neg { "-" } else { "" })
    }

    proptest! {
        #[test]
        fn decimal_keys_order_like_their_numbers(a in -10_000_000i64..10_000_000, b in -10_000_000i64..10_000_000, sa in 0u32..5, sb in 0u32..5) {
            let (x, y) = (DecimalKey::parse(&dec(a, sa)).unwrap(), DecimalKey::parse(&dec(b, sb)).unwrap());
            // Compare a / 10^sa with b / 10^sb exactly, on a common scale.
            let want = (a as i128 * 10i128.pow(sb)).cmp(&(b as i128 * 10i128.pow(sa)));
            prop_assert_eq!(x.cmp(&y), want, "{} vs {}", dec(a, sa), dec(b, sb));
        }

        #[test]
        fn pad_keys_order_like_space_padded_bytes(a in "[ -~\t]{0,6}", b in "[ -~\t]{0,6}") {
            let n = a.len().max(b.len());
            let pad = |s: &str| format!("{s:<n$}");
            let key = |s: &str| PadKey(s.as_bytes().to_vec());
            prop_assert_eq!(key(&a).cmp(&key(&b)), pad(&a).cmp(&pad(&b)));
        }
    }

    #[test]
    fn zero_has_no_sign_and_malformed_decimals_have_no_key() {
        assert_eq!(DecimalKey::parse("-0.000"), DecimalKey::parse("0"));
        assert!(DecimalKey::parse("-0.5").unwrap() < DecimalKey::parse("0").unwrap());
        assert!(DecimalKey::parse("1e5").is_none());
        assert!(DecimalKey::parse("-").is_none());
    }

    #[test]
    fn binary_utf8_collations_order_text_keys_bytewise_and_the_others_by_server_sort_keys() {
        let text = ColumnType::String { max_chars: Some(10), fixed: false };
        assert_eq!(key_order(&text, Some("utf8mb4_bin")), Some(KeyOrder::PadBytes));
        assert_eq!(key_order(&text, Some("utf8mb4_nopad_bin")), Some(KeyOrder::Bytes));
        assert_eq!(key_order(&text, Some("ascii_bin")), Some(KeyOrder::PadBytes));
        assert_eq!(key_order(&text, Some("utf8mb4_general_ci")), Some(KeyOrder::Weight));
        assert_eq!(
            key_order(&text, Some("latin1_bin")),
            Some(KeyOrder::Weight),
            "latin1 bytes do not order like code points"
        );
        assert_eq!(key_order(&text, None), None);
        assert_eq!(key_order(&ColumnType::Decimal { precision: 10, scale: 2 }, None), Some(KeyOrder::Decimal));
    }
}
