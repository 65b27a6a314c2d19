//! The PostgreSQL source operators: a parallel chunked snapshot on every worker, then logical
//! replication on worker 0, joined without a gap or a duplicate.
//!
//! ```text
//!  every worker                                    worker 0
//!  ┌─────────────────────────────┐  done(epoch,   ┌──────────────────────────────────────────┐
//!  │ Snapshot: chunks id≡w mod N │── positions) ─►│ Stream: follows the snapshot's frontier;  │
//!  │  I/O task: COPY each chunk  │  (exchange     │  then START_REPLICATION from the slot's   │
//!  │  under the process's        │   to 0)        │  start; a transaction that committed      │
//!  │  snapshot, exported at P    │                │  before P(c) is skipped for keys of c     │
//!  └──────────────┬──────────────┘                └───────────────────┬──────────────────────┘
//!                 │ changes (Insert)                                  │ changes, schema events
//!                 └──────────────────────────► concat ◄───────────────┘
//! ```
//!
//! - Each process exports one snapshot before its workers start (in `prepare`: a slot's
//!   export waits for every open transaction on the server, and this process's own target
//!   transaction on the same cluster would wait for the reader in turn). Its point is the
//!   consistent point of the temporary slot that exported it: transactions that committed
//!   before it are in the snapshot, later ones come from the task's slot, which starts at or
//!   before every process's point. Each chunk records
//!   its reader's point `P(c)`; the stream skips, for keys of chunk `c`, transactions whose
//!   commit ends at or before `P(c)`. Chunks are key ranges of an integer column (or whole
//!   tables), so a key's chunk is exact.
//! - A big whole-table chunk (a table without an integer key) is read in `ctid` page ranges
//!   by its worker's session and helper threads (up to the process's workers less one over
//!   all of its readers), all under the process's snapshot: one chunk, one point, read in
//!   parallel; each range checks that the table was not rewritten meanwhile.
//! - A restart re-reads unfinished chunks under a new snapshot (a new point); a replayed
//!   epoch's chunks are read again as they are now and record the new point where no sink
//!   worker had committed the epoch, both points (and who holds the first) where some had,
//!   else keep their recorded points (`connector::snapshot::chunked_snapshot`).
//! - A chunk's rows never span two epochs; memory stays bounded (bounded channels, `COPY`
//!   streamed in batches).

use super::prepare::PgRun;
use super::snapshot::{self as snap, read_chunk, PageRange, Point, UNSELECTED};
use super::stream;
use crate::connector::snapshot::{chunked_snapshot, pause_before_chunk, ChunkMsg, ChunkSender};
use crate::connector::SourceCtx;
use crate::runtime::TaskError;
use ferry_operators::{Change, SchemaEvent};
use timely::dataflow::operators::Concat;
use timely::dataflow::{Scope, StreamVec};

/// Builds the PostgreSQL source for this worker: snapshot (all workers) then the stream
/// (worker 0).
pub fn postgres_source<'s>(
    scope: Scope<'s, u64>,
    cx: &SourceCtx,
    run: PgRun,
) -> (StreamVec<'s, u64, Change>, StreamVec<'s, u64, SchemaEvent>) {
    let index = scope.index();
    let chunks = run.chunks.iter().map(|c| (c.id, (c.table != UNSELECTED).then_some(c.table))).collect();
    let reader_run = run.clone();
    let plan = cx.plan.clone();
    // This worker's handle on the process's exported snapshot (dropped here when the worker
    // has nothing to read).
    let exported = run.exported.lock().unwrap_or_else(|p| p.into_inner()).pop();
    let thread_failure = cx.failure.clone();
    let (snap, done) = chunked_snapshot(scope, cx, "PostgresSnapshot", chunks, move |order, tx| {
        // A thread of its own per worker: the session's socket task and the COPY parsing share it.
        // A replayed chunk is read as it is now (its recorded position is kept for the stream).
        let order = order.into_iter().map(|(id, _)| id).collect();
        let read = read_chunks(reader_run, plan, exported, order, tx);
        if let Err(e) = crate::runtime::run_on_own_thread(&format!("ferry-pg-snap-{index}"), read) {
            thread_failure.report(TaskError::transient(format!("snapshot: the reader's thread cannot start: {e}")));
        }
    });
    let (rows, schema) = stream::stream(scope, done, cx, run);
    (snap.concat(rows), schema)
}

fn failure(e: super::discover::PgSourceError) -> TaskError {
    if e.is_transient() {
        TaskError::transient(format!("snapshot: {e}"))
    } else {
        TaskError::definite(format!("snapshot: {e}"))
    }
}

/// A worker's reader task: reads its chunks with `COPY` under the process's exported snapshot
/// (held until the last reader is done).
async fn read_chunks(
    run: PgRun,
    plan: std::sync::Arc<crate::plan::Compiled>,
    exported: Option<std::sync::Arc<super::slot::Exported>>,
    order: Vec<u32>,
    tx: ChunkSender<Point>,
) {
    let mut conn = match super::discover::connect(&run.endpoint).await {
        Ok(c) => c,
        Err(e) => {
            tx.send(ChunkMsg::Failed(failure(e)));
            return;
        }
    };
    for id in order {
        pause_before_chunk().await;
        let chunk = &run.chunks[id as usize];
        if chunk.table == UNSELECTED {
            // A replayed epoch's chunk of a table no longer selected: nothing to read.
            if !tx.send(ChunkMsg::Done(id, Point(0, None))) {
                return;
            }
            continue;
        }
        let Some(exported) = &exported else {
            // `prepare` exports when a selected chunk is not done: it never gets here.
            let e = TaskError::transient("snapshot: a chunk to read, and no exported snapshot to read it under");
            tx.send(ChunkMsg::Failed(e));
            return;
        };
        let schema = plan.catalog.get(chunk.table);
        let mut alive = true;
        let r = if snap::is_whole(chunk) && run.sessions > 1 {
            read_in_ranges(&run, &mut conn, &exported.name, id, schema, &tx).await.map(|a| alive = a)
        } else {
            read_chunk(&mut conn, &exported.name, chunk, schema, |rows| {
                alive &= tx.send(ChunkMsg::Rows(id, rows));
                alive
            })
            .await
        };
        if !tx.chunk_read(id, r.map(|()| Point(exported.lsn, None)), alive, failure) {
            return;
        }
    }
    drop(exported);
}

/// Reads the whole-table chunk `id` in `ctid` page ranges: this session and helper threads
/// (each with its own session, as many as the process's budget gives: at most
/// `run.sessions - 1` over all of its workers) take ranges from one queue, all under the
/// exported snapshot `snapshot`, and send their rows as chunk `id`'s. Returns whether every
/// batch was taken (`false`: the operator is gone). A table under two ranges' worth of pages
/// is read by one query; a helper that cannot start or connect leaves its share to the others.
async fn read_in_ranges(
    run: &PgRun,
    conn: &mut tokio_postgres::Client,
    snapshot: &str,
    id: u32,
    schema: &ferry_operators::TableSchema,
    tx: &ChunkSender<Point>,
) -> Result<bool, super::discover::PgSourceError> {
    use super::discover::PgSourceError;
    use std::sync::atomic::Ordering::SeqCst;
    let (pages, file) = snap::table_pages(conn, schema).await?;
    let ranges = snap::page_ranges(pages, run.sessions);
    // One range is one `COPY`: nothing to line up with.
    let file = (ranges.len() > 1).then_some(file);
    // The helpers this read may open, given back when it is done.
    let mut taken = 0;
    let _ = run.helpers.fetch_update(SeqCst, SeqCst, |free| {
        taken = free.min(ranges.len() - 1);
        Some(free - taken)
    });
    struct GiveBack<'a>(&'a std::sync::atomic::AtomicUsize, usize);
    impl Drop for GiveBack<'_> {
        fn drop(&mut self) {
            self.0.fetch_add(self.1, SeqCst);
        }
    }
    let _give_back = GiveBack(&run.helpers, taken);
    if ranges.len() > 1 {
        tracing::info!(table = %schema.name, pages, ranges = ranges.len(), sessions = taken + 1,
            "a table without an integer key: read in ctid ranges under one snapshot");
    }
    let queue =
        std::sync::Arc::new(std::sync::Mutex::new(ranges.into_iter().collect::<std::collections::VecDeque<_>>()));
    let mut results = Vec::with_capacity(taken);
    for h in 0..taken {
        let (done, result) = tokio::sync::oneshot::channel();
        let (ep, snapshot, table, tx, queue) =
            (run.endpoint.clone(), snapshot.to_string(), schema.clone(), tx.clone(), queue.clone());
        let read = async move {
            let r = match super::discover::connect(&ep).await {
                Ok(mut c) => read_ranges(&mut c, &snapshot, &queue, id, &table, file, &tx).await,
                Err(e) => {
                    tracing::warn!(table = %table.name, error = %e, "a ctid range helper cannot connect; the other sessions read its share");
                    Ok(true)
                }
            };
            if r.is_err() {
                // The others stop after their current range.
                clear(&queue);
            }
            let _ = done.send(r);
        };
        if let Err(e) = crate::runtime::run_on_own_thread(&format!("ferry-pg-range-{id}-{h}"), read) {
            tracing::warn!(table = %schema.name, error = %e, "a ctid range helper's thread cannot start; the other sessions read its share");
            break;
        }
        results.push(result);
    }
    let mut outcome = read_ranges(conn, snapshot, &queue, id, schema, file, tx).await;
    if outcome.is_err() {
        clear(&queue);
    }
    // Every helper's rows are in the channel before the chunk is done.
    for r in results {
        let r = r.await.unwrap_or_else(|_| Err(PgSourceError::Server("a ctid range reader's thread ended".into())));
        outcome = match (outcome, r) {
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
            (Ok(a), Ok(b)) => Ok(a && b),
        };
    }
    outcome
}

/// Empties the queue of ranges: every session stops after its current range.
fn clear(queue: &std::sync::Mutex<std::collections::VecDeque<PageRange>>) {
    queue.lock().unwrap_or_else(|p| p.into_inner()).clear();
}

/// Reads `ctid` ranges of chunk `id` from `queue` until it is empty, each checked to have
/// seen the table's file node `file` (when given); `false` once the operator is gone.
async fn read_ranges(
    c: &mut tokio_postgres::Client,
    snapshot: &str,
    queue: &std::sync::Mutex<std::collections::VecDeque<PageRange>>,
    id: u32,
    schema: &ferry_operators::TableSchema,
    file: Option<i64>,
    tx: &ChunkSender<Point>,
) -> Result<bool, super::discover::PgSourceError> {
    loop {
        let Some(range) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front() else { return Ok(true) };
        pause_before_chunk().await;
        let mut alive = true;
        let what = format!("chunk {id} (pages {:?}..{:?})", range.0, range.1);
        snap::read_query(c, snapshot, &snap::ctid_query(schema, range), schema, &what, file, |rows| {
            alive &= tx.send(ChunkMsg::Rows(id, rows));
            alive
        })
        .await?;
        if !alive {
            clear(queue);
            return Ok(false);
        }
    }
}
