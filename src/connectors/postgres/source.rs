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
//! - A restart re-reads unfinished chunks under a new snapshot (a new point); replayed epochs
//!   keep their recorded points, as the MySQL source does.
//! - A chunk's rows never span two epochs; memory stays bounded (bounded channels, `COPY`
//!   streamed in batches).

use super::prepare::PgRun;
use super::snapshot::{read_chunk, Point, UNSELECTED};
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
            if !tx.send(ChunkMsg::Done(id, Point(0))) {
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
        let r = read_chunk(&mut conn, &exported.name, chunk, schema, |rows| {
            alive &= tx.send(ChunkMsg::Rows(id, rows));
            alive
        })
        .await;
        if !tx.chunk_read(id, r.map(|()| Point(exported.lsn)), alive, failure) {
            return;
        }
    }
    drop(exported);
}
