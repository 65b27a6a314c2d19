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
//!   by recorded positions, so its epochs are identical.
//! - I/O runs on the shared tokio runtime; rows reach the operator through bounded channels and
//!   wake it with an activator, so memory stays bounded whatever the table size.

use super::binlog::BinlogPos;
use super::discover::SourceError;
use super::run::{chunk_offset, parse_chunk_offset, source_failure, Done, MysqlRun, SnapMsg};
use super::snapshot::read_chunk;
use super::watermark::{self, ChunkKeys, Watermarks};
use crate::checkpoint::Next;
use crate::connector::SourceCtx;
use crate::runtime::fault::Fault;
use crate::runtime::io_runtime;
use ferry_operators::{Change, Op, Position, SchemaEvent};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, TryRecvError};
use std::time::{Duration, Instant};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Concat;
use timely::dataflow::{Scope, StreamVec};

/// Builds the MySQL source for this worker: snapshot (all workers) then binlog (worker 0).
/// Returns the row changes and the schema events of the binlog's DDL statements.
pub fn mysql_source<'s>(
    scope: Scope<'s, u64>,
    cx: &SourceCtx,
    run: MysqlRun,
) -> (StreamVec<'s, u64, Change>, StreamVec<'s, u64, SchemaEvent>) {
    let (snap_changes, done) = snapshot(scope, cx, run.clone());
    let (bin, schema) = super::stream::binlog(scope, done, cx, run);
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
            let (collations, weighed, bound_weights) =
                (run.collations.clone(), run.weighed.clone(), run.bound_weights.clone());
            // The watermark handoff's window readers: a replication server id per worker.
            // (`server_id × 64 + 1 + worker`: apart from every task's stream id, 5400..=6399 by
            // default, and from other tasks' window readers.)
            let mut marks = run.watermark_start.clone().map(|start| {
                let id = run.server_id.wrapping_mul(64).wrapping_add(1 + index as u32);
                Watermarks::new(run.opts.clone(), id, run.watermark_lookback, start)
            });
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
                    let r = match marks.as_mut() {
                        None => {
                            read_chunk(&mut conn, chunk, schema, cs, |rows| {
                                // Blocks this I/O thread when the operator lags: memory stays bounded.
                                alive &= send(SnapMsg::Rows(id, rows));
                            })
                            .await
                        }
                        Some(marks) => {
                            let t = chunk.table as usize;
                            let upper_weights = chunk.upper.as_ref().and_then(|_| bound_weights.get(&(id + 1)));
                            let keys = ChunkKeys::new(
                                chunk,
                                schema,
                                &collations[t],
                                &weighed[t],
                                bound_weights.get(&id).map(Vec::as_slice),
                                upper_weights.map(Vec::as_slice),
                            );
                            match keys {
                                Err(e) => Err(SourceError::Precondition(e)),
                                Ok(keys) => watermark::read_chunk(&mut conn, marks, chunk, schema, cs, &keys)
                                    .await
                                    .map(|(rows, high)| {
                                        for part in rows.chunks(1024) {
                                            alive &= alive && send(SnapMsg::Rows(id, part.to_vec()));
                                        }
                                        high
                                    }),
                            }
                        }
                    };
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
