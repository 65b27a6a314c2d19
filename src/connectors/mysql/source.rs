//! The MySQL/MariaDB source operators: a parallel chunked snapshot on every worker, then the
//! binlog on worker 0, joined without a gap or a duplicate.
//!
//! ```text
//!  every worker                                   worker 0
//!  ┌────────────────────────────┐   done(epoch,  ┌──────────────────────────────────────────┐
//!  │ Snapshot: chunks id≡w mod N│── positions) ─►│ Binlog: capability follows the snapshot's │
//!  │  I/O task reads a chunk    │   (exchange    │  frontier; once every snapshot worker is  │
//!  │  (server snapshot, or      │    to 0)       │  done, starts at the lowest chunk position│
//!  │  watermarks) → rows + P(c) │                │  in an epoch after every snapshot epoch   │
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
//!   exact comparison in the key's order ([`super::handoff::KeyOrder`]: integers, temporal types, decimals,
//!   binary strings, text in a binary UTF-8 collation bytewise, text in other collations by the
//!   server's sort keys, fetched for chunk bounds at start and for rows in the snapshot window
//!   by the reader task); for a key of unknown order the transactions between the lowest and
//!   the highest chunk position are applied to every key (harmless in upsert mode, since row
//!   images are full; documented for append mode).
//! - A replayed epoch re-reads its chunks but keeps their recorded positions; the binlog replays
//!   by recorded positions, so its epochs are identical. In an exactly-once run a replayed
//!   chunk's rows are turned back to its recorded position first ([`super::watermark::rewind`]:
//!   the binlog between the two undone), or the changes after it would arrive twice for the
//!   sink workers that had not committed that epoch.
//! - I/O runs on the shared tokio runtime; rows reach the operator through bounded channels and
//!   wake it with an activator, so memory stays bounded whatever the table size.

use super::binlog::BinlogPos;
use super::discover::SourceError;
use super::run::{source_failure, MysqlRun};
use super::snapshot::{begin_snapshot, end_snapshot, read_chunk, select_chunk, SHARED_SNAPSHOT_TABLES, UNSELECTED};
use super::watermark::{self, ChunkKeys, Watermarks};
use crate::connector::snapshot::{chunked_snapshot, pause_before_chunk, ChunkMsg, ChunkSender};
use crate::connector::SourceCtx;
use crate::runtime::io_runtime;
use ferry_operators::{Change, SchemaEvent};
use timely::dataflow::operators::Concat;
use timely::dataflow::{Scope, StreamVec};

/// Builds the MySQL source for this worker: snapshot (all workers) then binlog (worker 0).
/// Returns the row changes and the schema events of the binlog's DDL statements.
pub fn mysql_source<'s>(
    scope: Scope<'s, u64>,
    cx: &SourceCtx,
    run: MysqlRun,
) -> (StreamVec<'s, u64, Change>, StreamVec<'s, u64, SchemaEvent>) {
    let index = scope.index();
    let chunks = run.chunks.iter().map(|c| (c.id, (c.table != UNSELECTED).then_some(c.table))).collect();
    let (reader_run, plan) = (run.clone(), cx.plan.clone());
    let (snap_changes, done) = chunked_snapshot(scope, cx, "MysqlSnapshot", chunks, move |order, tx| {
        io_runtime().spawn(read_chunks(reader_run, plan, index, order, tx));
    });
    let (bin, schema) = super::stream::binlog(scope, done, cx, run);
    (snap_changes.concat(bin), schema)
}

/// A worker's reader task: its chunks in order, each in a consistent-snapshot transaction
/// (server snapshot) or between binlog watermarks; a replayed chunk of an exactly-once run
/// (with its recorded position) turned back to that position.
async fn read_chunks(
    run: MysqlRun,
    plan: std::sync::Arc<crate::plan::Compiled>,
    index: usize,
    order: Vec<(u32, Option<BinlogPos>)>,
    tx: ChunkSender<BinlogPos>,
) {
    // The watermark handoff's window readers: a replication server id per worker.
    // (`server_id × 64 + 1 + worker`: apart from every task's stream id, 5400..=6399 by
    // default, and from other tasks' window readers.)
    let window_id = run.server_id.wrapping_mul(64).wrapping_add(1 + index as u32);
    let mut marks = run
        .watermark_start
        .clone()
        .map(|start| Watermarks::new(run.opts.clone(), window_id, run.watermark_lookback, start));
    let exactly_once = plan.plan.settings.semantics == crate::plan::config::Semantics::ExactlyOnce;
    let mut conn = match super::discover::connect(&run.opts).await {
        Ok(c) => c,
        Err(e) => {
            tx.send(ChunkMsg::Failed(source_failure(e)));
            return;
        }
    };
    // The open consistent snapshot shared by whole small tables: its position and the tables
    // read in it so far.
    let mut shared: Option<(BinlogPos, usize)> = None;
    for (id, recorded) in order {
        pause_before_chunk().await;
        let chunk = &run.chunks[id as usize];
        // A whole table (one chunk) read afresh (not a replayed epoch's).
        let whole = marks.is_none()
            && chunk.lower.is_none()
            && chunk.upper.is_none()
            && chunk.table != UNSELECTED
            && recorded.is_none();
        if !whole && shared.take().is_some() {
            if let Err(e) = end_snapshot(&mut conn).await {
                tx.send(ChunkMsg::Failed(source_failure(e)));
                return;
            }
        }
        if chunk.table == UNSELECTED {
            // A replayed epoch's chunk of a table no longer selected: nothing to read (the
            // epoch keeps the chunk's recorded position).
            if !tx.send(ChunkMsg::Done(id, BinlogPos::default())) {
                return;
            }
            continue;
        }
        let schema = plan.catalog.get(chunk.table);
        let cs = &run.charsets[chunk.table as usize];
        let t = chunk.table as usize;
        let upper_weights = chunk.upper.as_ref().and_then(|_| run.bound_weights.get(&(id + 1)));
        let keys = || {
            ChunkKeys::new(
                chunk,
                schema,
                &run.collations[t],
                &run.weighed[t],
                run.bound_weights.get(&id).map(Vec::as_slice),
                upper_weights.map(Vec::as_slice),
            )
            .map_err(SourceError::Precondition)
        };
        let rewind_to = recorded.filter(|_| exactly_once);
        let mut alive = true;
        let r = match (marks.as_mut(), rewind_to) {
            // In the shared snapshot, so a database of
            // thousands of small tables does not open one transaction per table.
            (None, None) if whole => {
                let read = async {
                    let pos = match &mut shared {
                        Some((pos, n)) => {
                            *n += 1;
                            pos.clone()
                        }
                        None => {
                            let pos = begin_snapshot(&mut conn).await?;
                            shared = Some((pos.clone(), 1));
                            pos
                        }
                    };
                    select_chunk(&mut conn, chunk, schema, cs, |rows| alive &= tx.send(ChunkMsg::Rows(id, rows)))
                        .await?;
                    if shared.as_ref().is_some_and(|(_, n)| *n >= SHARED_SNAPSHOT_TABLES) {
                        shared = None;
                        end_snapshot(&mut conn).await?;
                    }
                    Ok(pos)
                };
                read.await
            }
            (None, None) => {
                read_chunk(&mut conn, chunk, schema, cs, |rows| {
                    // Blocks this I/O thread when the operator lags: memory stays bounded.
                    alive &= tx.send(ChunkMsg::Rows(id, rows));
                })
                .await
            }
            (marks, rewind_to) => {
                let read = async {
                    let keys = keys();
                    let (rows, now) = match marks {
                        Some(marks) => {
                            let keys = keys.as_ref().map_err(|e| SourceError::Precondition(e.to_string()))?;
                            watermark::read_chunk(&mut conn, marks, chunk, schema, cs, keys).await?
                        }
                        None => {
                            let mut rows = Vec::new();
                            let now = read_chunk(&mut conn, chunk, schema, cs, |b| rows.extend(b)).await?;
                            (rows, now)
                        }
                    };
                    let rows = match (&rewind_to, &keys) {
                        (Some(recorded), Ok(keys)) => {
                            let reader = (&run.opts, window_id);
                            watermark::rewind(&mut conn, reader, chunk, schema, keys, rows, (recorded, &now)).await?
                        }
                        (Some(_), Err(e)) => {
                            // A key whose order ferry cannot reproduce: which changed rows
                            // are the chunk's is unknown (as for its binlog handoff).
                            tracing::warn!(table = %schema.name, chunk = id, "a replayed chunk is read as it is now: {e}");
                            rows
                        }
                        (None, _) => rows,
                    };
                    Ok::<_, SourceError>((rows, now))
                };
                read.await.map(|(rows, now)| {
                    for part in rows.chunks(1024) {
                        alive &= alive && tx.send(ChunkMsg::Rows(id, part.to_vec()));
                    }
                    now
                })
            }
        };
        if !tx.chunk_read(id, r, alive, source_failure) {
            return;
        }
    }
    if shared.is_some() {
        if let Err(e) = end_snapshot(&mut conn).await {
            tx.send(ChunkMsg::Failed(source_failure(e)));
        }
    }
}
