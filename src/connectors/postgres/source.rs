//! The PostgreSQL source operators: a parallel chunked snapshot on every worker, then logical
//! replication on worker 0, joined without a gap or a duplicate.
//!
//! ```text
//!  every worker                                    worker 0
//!  ┌─────────────────────────────┐  done(epoch,   ┌──────────────────────────────────────────┐
//!  │ Snapshot: chunks id≡w mod N │── positions) ─►│ Stream: follows the snapshot's frontier;  │
//!  │  I/O task: a temporary slot │  (exchange     │  then START_REPLICATION from the slot's   │
//!  │  exports a snapshot at P;   │   to 0)        │  start; a transaction that committed      │
//!  │  COPY each chunk under it   │                │  before P(c) is skipped for keys of c     │
//!  └──────────────┬──────────────┘                └───────────────────┬──────────────────────┘
//!                 │ changes (Insert)                                  │ changes, schema events
//!                 └──────────────────────────► concat ◄───────────────┘
//! ```
//!
//! - The snapshot's point of a reader is the consistent point of the temporary slot that
//!   exported it: transactions that committed before it are in the snapshot, later ones come
//!   from the task's slot, which starts at or before every reader's point. Each chunk records
//!   its reader's point `P(c)`; the stream skips, for keys of chunk `c`, transactions whose
//!   commit ends at or before `P(c)`. Chunks are key ranges of an integer column (or whole
//!   tables), so a key's chunk is exact.
//! - A restart re-reads unfinished chunks under a new snapshot (a new point); replayed epochs
//!   keep their recorded points, as the MySQL source does.
//! - A chunk's rows never span two epochs; memory stays bounded (bounded channels, `COPY`
//!   streamed in batches).

use super::prepare::PgRun;
use super::snapshot::{read_chunk, UNSELECTED};
use super::stream::{self, Done};
use crate::checkpoint::Next;
use crate::connector::SourceCtx;
use crate::runtime::fault::Fault;
use crate::runtime::{io_runtime, TaskError};
use ferry_operators::{Change, Op, Position, Row, SchemaEvent};
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, TryRecvError};
use std::time::{Duration, Instant};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Concat;
use timely::dataflow::{Scope, StreamVec};

/// Builds the PostgreSQL source for this worker: snapshot (all workers) then the stream
/// (worker 0).
pub fn postgres_source<'s>(
    scope: Scope<'s, u64>,
    cx: &SourceCtx,
    run: PgRun,
) -> (StreamVec<'s, u64, Change>, StreamVec<'s, u64, SchemaEvent>) {
    let (snap, done) = snapshot(scope, cx, run.clone());
    let (rows, schema) = stream::stream(scope, done, cx, run);
    (snap.concat(rows), schema)
}

enum SnapMsg {
    Rows(u32, Vec<Row>),
    ChunkDone(u32, u64),
    Failed(TaskError),
}

/// A chunk's offset: done, at the reader's snapshot point.
pub(super) fn chunk_offset(lsn: u64) -> serde_json::Value {
    json!({ "done": true, "lsn": lsn })
}

/// The point of a done chunk in a stored offset.
pub(super) fn parse_chunk_offset(v: &serde_json::Value) -> Option<u64> {
    v.get("done")?.as_bool()?.then(|| v.get("lsn")?.as_u64()).flatten()
}

fn failure(e: super::discover::PgSourceError) -> TaskError {
    if e.is_transient() {
        TaskError::transient(format!("snapshot: {e}"))
    } else {
        TaskError::definite(format!("snapshot: {e}"))
    }
}

fn snapshot<'s>(
    scope: Scope<'s, u64>,
    cx: &SourceCtx,
    run: PgRun,
) -> (StreamVec<'s, u64, Change>, StreamVec<'s, u64, Done>) {
    let index = scope.index();
    let peers = scope.peers();
    let (plan, restore, metrics, failure_slot) = (cx.plan.clone(), &cx.restore, cx.metrics.clone(), cx.failure.clone());
    // Snapshot chunks are partitions 1.. (chunk id + 1); the stream is partition 0.
    let mut epochs = cx.epochs(index, peers).for_partitions(|p| p > 0);
    let interval = Duration::from_millis(plan.plan.checkpoint_ms);
    let start_epoch = restore.start_epoch();
    let mut positions: Vec<(u32, u64)> = Vec::new();
    for c in run.chunks.iter() {
        if let Some(p) = restore.manifest.offsets.get(&(c.id + 1)).and_then(parse_chunk_offset) {
            positions.push((c.id, p));
        }
    }
    let mut replay: VecDeque<(u64, Vec<(u32, u64)>)> = VecDeque::new();
    for b in epochs.to_replay() {
        let chunks: Vec<(u32, u64)> = b
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
            .filter(|c| c.table != UNSELECTED)
            .map(|c| c.id),
    );

    let mut builder = OperatorBuilder::new("PostgresSnapshot".into(), scope);
    let info = builder.operator_info();
    let (out_changes, changes) = builder.new_output::<Vec<Change>>();
    let (out_done, done) = builder.new_output::<Vec<Done>>();
    let mut out_changes: OutputBuilder<u64, CapacityContainerBuilder<Vec<Change>>> = OutputBuilder::from(out_changes);
    let mut out_done: OutputBuilder<u64, CapacityContainerBuilder<Vec<Done>>> = OutputBuilder::from(out_done);
    let activator = scope.worker().sync_activator_for(info.address.to_vec());
    let again = scope.activator_for(info.address.clone());

    builder.build(move |mut caps| {
        let mut cap_done = caps.pop();
        let mut cap = caps.pop();
        for c in cap.iter_mut().chain(cap_done.iter_mut()) {
            c.downgrade(&start_epoch);
        }
        let (tx, rx): (_, Receiver<SnapMsg>) = sync_channel(8);
        if !order.is_empty() {
            let chunks = run.chunks.clone();
            let plan = plan.clone();
            let ep = run.endpoint.clone();
            let order = order.clone();
            // A temporary slot per reader, unique on the server.
            let temp = temp_slot_name(&run.slot, index);
            io_runtime().spawn(async move {
                let send = |m: SnapMsg| {
                    let ok = tx.send(m).is_ok();
                    let _ = activator.activate();
                    ok
                };
                let exported = match super::slot::export(&ep, &temp).await {
                    Ok(e) => e,
                    Err(e) => {
                        send(SnapMsg::Failed(failure(e)));
                        return;
                    }
                };
                tracing::debug!(worker = index, point = %super::config::format_lsn(exported.lsn), "snapshot exported");
                let mut conn = match super::discover::connect(&ep).await {
                    Ok(c) => c,
                    Err(e) => {
                        send(SnapMsg::Failed(failure(e)));
                        return;
                    }
                };
                let delay = Fault::ChunkDelay.delay();
                for id in order {
                    if let Some(d) = delay {
                        tokio::time::sleep(d).await;
                    }
                    let chunk = &chunks[id as usize];
                    if chunk.table == UNSELECTED {
                        if !send(SnapMsg::ChunkDone(id, 0)) {
                            return;
                        }
                        continue;
                    }
                    let schema = plan.catalog.get(chunk.table);
                    let mut alive = true;
                    let r = read_chunk(&mut conn, &exported.name, chunk, schema, |rows| {
                        alive &= send(SnapMsg::Rows(id, rows));
                        alive
                    })
                    .await;
                    match r {
                        Ok(()) if alive => {
                            if !send(SnapMsg::ChunkDone(id, exported.lsn)) {
                                return;
                            }
                        }
                        Ok(()) => return,
                        Err(e) => {
                            send(SnapMsg::Failed(failure(e)));
                            return;
                        }
                    }
                }
                drop(exported);
            });
        }
        let mut remaining: usize = order.len();
        let mut in_epoch: Vec<(u32, u64)> = Vec::new();
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
                let now = crate::runtime::now_micros();
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
                            let recorded = replay
                                .front()
                                .filter(|(e, _)| *e == epoch)
                                .and_then(|(_, cs)| cs.iter().find(|(c, _)| *c == id).map(|(_, p)| *p));
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
                            failure_slot.report(e);
                            break;
                        }
                        Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
                    }
                }
            }
            metrics.rows_in.fetch_add(produced, Ordering::Relaxed);
            if failed {
                return;
            }
            if close {
                let offsets = in_epoch.iter().map(|(id, p)| (id + 1, chunk_offset(*p))).collect();
                if replay.front().is_some_and(|(e, _)| *e == epoch) {
                    replay.pop_front();
                }
                let next = match epochs.close(epoch, offsets, remaining == 0) {
                    Ok(next) => next,
                    Err(e) => {
                        failed = true;
                        failure_slot.report(e);
                        return;
                    }
                };
                positions.append(&mut in_epoch);
                deadline = Instant::now() + interval;
                let Next::Open(next) = next else {
                    if remaining == 0 {
                        finish(&mut cap, &mut cap_done, &mut out_done, epoch, &mut positions);
                    } else {
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

/// `<slot>_r<pid>_<worker>`, at most 63 bytes: a reader's temporary slot.
fn temp_slot_name(slot: &str, worker: usize) -> String {
    let suffix = format!("_r{}_{worker}", std::process::id());
    let keep = 63usize.saturating_sub(suffix.len()).min(slot.len());
    format!("{}{suffix}", &slot[..keep])
}

fn finish(
    cap: &mut Option<timely::dataflow::operators::Capability<u64>>,
    cap_done: &mut Option<timely::dataflow::operators::Capability<u64>>,
    out_done: &mut OutputBuilder<u64, CapacityContainerBuilder<Vec<Done>>>,
    epoch: u64,
    positions: &mut Vec<(u32, u64)>,
) {
    if let Some(d) = cap_done.as_ref() {
        let mut out = out_done.activate();
        out.session(d).give((epoch, std::mem::take(positions)));
    }
    *cap = None;
    *cap_done = None;
}
