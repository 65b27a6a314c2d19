//! The chunked snapshot operator that database sources share: every worker reads its share of
//! the chunks (id ≡ worker mod peers) on an I/O task of the connector's, emits their rows as
//! inserts, closes epochs only between chunks (each chunk recorded with the position its rows
//! are exact at), replays recorded epochs with their recorded positions, and once done tells
//! the stream operator (worker 0) every chunk's position.
//!
//! ```text
//!  connector's reader task ──Rows(chunk, rows) / Done(chunk, P) / Failed──► ChunkedSnapshot
//!   (bounded channel + activator:                                          │ changes (Insert)
//!    memory stays bounded)                                                 │ done(epoch, [(chunk, P)])
//!                                                                          ▼   → the stream operator
//!  every worker's sink: the epoch it committed before the run ──broadcast──► (which replayed
//!                                                                            epochs record a new read)
//! ```
//!
//! Partitions: chunk `c` is partition `c + 1` of the checkpoint (partition 0 is the stream).

use super::SourceCtx;
use crate::checkpoint::Next;
use crate::runtime::TaskError;
use ferry_operators::{Change, Op, Position, Row};
use serde_json::Value as Json;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::time::{Duration, Instant};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Capability, ToStream};
use timely::dataflow::{Scope, StreamVec};
use timely::scheduling::SyncActivator;

/// A chunk's position: where its rows are exact, as the checkpoint stores it.
pub trait ChunkPosition: Clone + Send + 'static {
    /// Whether a replayed chunk's reader sends its rows as they were at the recorded
    /// position (the MySQL source turns them back with the binlog's before images); `false`:
    /// as they are now, exact at the position its `Done` gives (see [`chunked_snapshot`]).
    const READ_AS_RECORDED: bool = true;
    /// The position of a chunk of a replayed epoch that the sink workers in `first` (bit `w`
    /// for worker `w`) had committed, with this recorded position (their rows), and the
    /// others had not (`new`, the new read's position: theirs), for a reader that reads as
    /// now and whose stream can tell the two groups apart; `None` when it cannot (the
    /// recorded position is kept, and the others can get the changes between the reads
    /// twice).
    fn read_again(self, new: Self, first: u32) -> Option<Self> {
        let _ = (new, first);
        None
    }
    /// The offset of a done chunk (`{"done": true, …}`).
    fn to_offset(&self) -> Json;
    /// The position of a done chunk's offset (`None`: not a done chunk's).
    fn from_offset(v: &Json) -> Option<Self>;
}

/// The chunks an epoch's offsets record as done, with their positions (partition `c + 1` is
/// chunk `c`; partition 0, the stream's, and offsets of unfinished chunks are passed over).
pub fn done_chunks<P: ChunkPosition>(offsets: &crate::state::Offsets) -> impl Iterator<Item = (u32, P)> + '_ {
    offsets.iter().filter(|(k, _)| **k > 0).filter_map(|(k, v)| P::from_offset(v).map(|p| (k - 1, p)))
}

/// What a reader task sends the operator.
pub enum ChunkMsg<P> {
    /// Rows of a chunk, in order.
    Rows(u32, Vec<Row>),
    /// The chunk is read; its rows are exact at this position.
    Done(u32, P),
    /// Reading failed: the run's failure.
    Failed(TaskError),
}

/// What a finished snapshot worker tells the stream: its last epoch and every chunk position
/// it knows.
pub type Done<P> = (u64, Vec<(u32, P)>);

/// The reader's side: sends a message and wakes the operator; `false` once the operator is
/// gone (the reader then stops).
#[derive(Clone)]
pub struct ChunkSender<P> {
    tx: SyncSender<ChunkMsg<P>>,
    activator: SyncActivator,
}

impl<P> ChunkSender<P> {
    /// Sends `m`, blocking while the operator lags (memory stays bounded).
    pub fn send(&self, m: ChunkMsg<P>) -> bool {
        let ok = self.tx.send(m).is_ok();
        let _ = self.activator.activate();
        ok
    }

    /// After chunk `id`'s read: its position, or its failure (`fail` classifies it). `alive`:
    /// every batch of its rows was taken. Returns whether to read on.
    pub fn chunk_read<E>(&self, id: u32, read: Result<P, E>, alive: bool, fail: impl FnOnce(E) -> TaskError) -> bool {
        match read {
            Ok(pos) if alive => self.send(ChunkMsg::Done(id, pos)),
            Ok(_) => false,
            Err(e) => {
                self.send(ChunkMsg::Failed(fail(e)));
                false
            }
        }
    }
}

/// Waits before a chunk's read when the crash tests ask for it (`FERRY_FAULT_CHUNK_DELAY_MS`:
/// a kill then lands mid-snapshot).
pub async fn pause_before_chunk() {
    if let Some(d) = crate::runtime::fault::Fault::ChunkDelay.delay() {
        tokio::time::sleep(d).await;
    }
}

/// Builds the snapshot of this worker. `chunks`: `(chunk id, table)` of every chunk, in id
/// order; chunks whose table is `None` are not selected any more (a replayed epoch's such
/// chunk is done at once with `unselected`'s position). `start` spawns the reader task for the
/// chunk ids it is given, in that order, each with the position a replayed epoch recorded for
/// it (a reader that can should send the chunk's rows as they were there: the binlog replays
/// from that position; called once, only when there is a chunk).
///
/// A replayed epoch keeps its recorded positions, so that it holds what it held for the sink
/// workers that had committed it (they skip it and go on from those positions). A reader that
/// cannot turn rows back (`P::READ_AS_RECORDED == false`) sends them as they are now; where no
/// sink worker had committed the epoch (exactly-once; every worker's sink tells the others
/// through a broadcast what it skips, [`SourceCtx::sink_skips_upto`], before any chunk is
/// done) the epoch records the new read's positions instead (its boundary record rewritten),
/// so the stream skips what that read saw. Where some had and some had not, the chunks keep
/// both ([`ChunkPosition::read_again`]: the stream sends the changes between the two reads to
/// the committers only); a reader that cannot keep both keeps the recorded positions, and an
/// append target can get those changes twice (a warning says so).
pub fn chunked_snapshot<'s, P: ChunkPosition>(
    scope: Scope<'s, u64>,
    cx: &SourceCtx,
    name: &str,
    chunks: Vec<(u32, Option<u32>)>,
    start: impl FnOnce(Vec<(u32, Option<P>)>, ChunkSender<P>) + 'static,
) -> (StreamVec<'s, u64, Change>, StreamVec<'s, u64, Done<P>>) {
    let index = scope.index();
    let peers = scope.peers();
    let (restore, metrics, failure) = (&cx.restore, cx.metrics.clone(), cx.failure.clone());
    let mut epochs = cx.epochs(index, peers).for_partitions(|p| p > 0);
    let interval = Duration::from_millis(cx.plan.plan.checkpoint_ms);
    let start_epoch = restore.start_epoch();
    let tables: HashMap<u32, Option<u32>> = chunks.iter().copied().collect();
    // Chunks done before the restore point, with their positions.
    let mut positions: Vec<(u32, P)> = chunks
        .iter()
        .filter_map(|(id, _)| restore.manifest.offsets.get(&(id + 1)).and_then(P::from_offset).map(|p| (*id, p)))
        .collect();
    // Epochs to replay: the chunks each recorded, in order, with their recorded positions.
    let mut replay: VecDeque<(u64, Vec<(u32, P)>)> = VecDeque::new();
    for b in epochs.to_replay() {
        let done: Vec<(u32, P)> = done_chunks(&b.offsets).collect();
        if !done.is_empty() {
            replay.push_back((b.epoch, done));
        }
    }
    // Whether a replayed epoch's chunks may record their new read (see above): decided once
    // every worker's sink said which epoch it committed before the run.
    let exactly_once = cx.plan.plan.settings.semantics == crate::plan::config::Semantics::ExactlyOnce;
    let reads_now = !P::READ_AS_RECORDED && exactly_once && !replay.is_empty();
    let mut new_reads: Option<(HashSet<u64>, HashMap<u64, u32>)> = (!reads_now).then(Default::default);
    let mut skips: Vec<(usize, u64)> = Vec::with_capacity(peers);
    let skips_upto: StreamVec<'s, u64, (usize, u64)> = vec![(index, cx.sink_skips_upto)].to_stream(scope);
    let skips_upto = skips_upto.broadcast();
    let done_ids: HashSet<u32> = positions.iter().map(|(c, _)| *c).collect();
    if index == 0 {
        for (id, t) in &chunks {
            if let Some(t) = t {
                metrics.plan_chunks(*t as usize, 1, u64::from(done_ids.contains(id)));
            }
        }
    }
    let mut order: Vec<u32> = replay.iter().flat_map(|(_, cs)| cs.iter().map(|(c, _)| *c)).collect();
    let replayed: HashSet<u32> = order.iter().copied().collect();
    order.extend(
        chunks
            .iter()
            .filter(|(id, t)| *id as usize % peers == index && t.is_some())
            .filter(|(id, _)| !done_ids.contains(id) && !replayed.contains(id))
            .map(|(id, _)| *id),
    );

    let mut builder = OperatorBuilder::new(name.into(), scope);
    let info = builder.operator_info();
    let (out_changes, changes) = builder.new_output::<Vec<Change>>();
    let (out_done, done) = builder.new_output::<Vec<Done<P>>>();
    let mut out_changes: OutputBuilder<u64, CapacityContainerBuilder<Vec<Change>>> = OutputBuilder::from(out_changes);
    let mut out_done: OutputBuilder<u64, CapacityContainerBuilder<Vec<Done<P>>>> = OutputBuilder::from(out_done);
    // After the outputs and connected to none: the answers hold nothing back.
    let mut skips_in = builder.new_input_connection(skips_upto, Pipeline, std::iter::empty());
    let activator = scope.worker().sync_activator_for(info.address.to_vec());
    // Reschedules the operator itself when it closed an epoch with messages left in the
    // channel: the reader's activations for them were spent by the activation that stopped.
    let again = scope.activator_for(info.address.clone());

    builder.build(move |mut caps| {
        let mut cap_done = caps.pop();
        let mut cap = caps.pop();
        for c in cap.iter_mut().chain(cap_done.iter_mut()) {
            c.downgrade(&start_epoch);
        }
        let (tx, rx): (_, Receiver<ChunkMsg<P>>) = sync_channel(8);
        if !order.is_empty() {
            let recorded: HashMap<u32, P> = replay.iter().flat_map(|(_, cs)| cs.iter().cloned()).collect();
            let with_positions = order.iter().map(|id| (*id, recorded.get(id).cloned())).collect();
            start(with_positions, ChunkSender { tx, activator });
        }
        let mut remaining: usize = order.len();
        let mut in_epoch: Vec<(u32, P)> = Vec::new();
        let mut deadline = Instant::now() + interval;
        let mut seqs: HashMap<u32, u64> = HashMap::new();
        let mut failed = false;
        move |frontiers| {
            skips_in.for_each(|_, data| skips.append(data));
            let Some(c) = cap.as_mut() else { return };
            if failed {
                return;
            }
            let Some(new_reads) = new_reads.as_ref() else {
                if frontiers[0].frontier().is_empty() {
                    new_reads = Some(epochs_read_again(&replay, &skips));
                    again.activate();
                }
                // Until then the reader waits on its channel.
                return;
            };
            let epoch = *c.time();
            let mut produced = 0u64;
            let mut close = false;
            {
                let mut out = out_changes.activate();
                let mut session = out.session(&*c);
                // Snapshot rows carry the time they were read as their event time.
                let now = crate::runtime::now_micros();
                loop {
                    match rx.try_recv() {
                        Ok(ChunkMsg::Rows(id, rows)) => {
                            let Some(Some(table)) = tables.get(&id).copied() else { continue };
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
                        Ok(ChunkMsg::Done(id, pos)) => {
                            remaining -= 1;
                            if let Some(Some(t)) = tables.get(&id) {
                                metrics.chunk_done(*t as usize);
                            }
                            // A replayed chunk keeps the position it was first recorded with
                            // (unless its epoch records the new read: see above).
                            let recorded = replay
                                .front()
                                .filter(|(e, _)| *e == epoch && !new_reads.0.contains(e))
                                .and_then(|(_, cs)| cs.iter().find(|(c, _)| *c == id).map(|(_, p)| p.clone()));
                            let position = match recorded {
                                Some(r) => match new_reads.1.get(&epoch) {
                                    Some(&first) => r.clone().read_again(pos, first).unwrap_or_else(|| {
                                        tracing::warn!(
                                            epoch,
                                            chunk = id,
                                            "a replayed chunk's rows are held by three reads' groups of sink workers; \
                                             it keeps its recorded position: an append target can get the \
                                             changes between the reads twice"
                                        );
                                        r
                                    }),
                                    None => r,
                                },
                                None => pos,
                            };
                            in_epoch.push((id, position));
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
                        Ok(ChunkMsg::Failed(e)) => {
                            failed = true;
                            failure.report(e);
                            break;
                        }
                        Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
                    }
                }
            }
            metrics.rows_in.fetch_add(produced, Ordering::Relaxed);
            if failed {
                // The capabilities stay: no epoch passes without its record.
                return;
            }
            if close {
                let offsets: crate::state::Offsets = in_epoch.iter().map(|(id, p)| (id + 1, p.to_offset())).collect();
                if replay.front().is_some_and(|(e, _)| *e == epoch) {
                    replay.pop_front();
                    if new_reads.0.contains(&epoch) || new_reads.1.contains_key(&epoch) {
                        tracing::info!(
                            epoch,
                            chunks = in_epoch.len(),
                            "replayed epoch: its chunks, read again, record the new read"
                        );
                        if let Err(e) = epochs.rerecord(epoch, offsets.clone()) {
                            failed = true;
                            failure.report(e);
                            return;
                        }
                    }
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
                        // Stopped at a savepoint: the stream does not start either.
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
                metrics.open_epoch(next);
            }
            if remaining == 0 && order.is_empty() {
                finish(&mut cap, &mut cap_done, &mut out_done, epoch, &mut positions);
            }
        }
    });
    (changes, done)
}

/// Which replayed epochs (`replay`, with their chunks) record their chunks' new read: those
/// no sink worker committed before the run (`skips`: `(worker, epoch it committed)` of every
/// worker), and those some committed and others not (split: with the committers' bits, bit `w`
/// for worker `w`; the chunks then keep both reads, [`ChunkPosition::read_again`]). A split
/// over more than 32 workers keeps its recorded positions (a warning).
fn epochs_read_again<P>(
    replay: &VecDeque<(u64, Vec<(u32, P)>)>,
    skips: &[(usize, u64)],
) -> (HashSet<u64>, HashMap<u64, u32>) {
    let (mut new, mut split) = (HashSet::new(), HashMap::new());
    for (e, cs) in replay {
        let first: Vec<usize> = skips.iter().filter(|(_, c)| c >= e).map(|(w, _)| *w).collect();
        if first.is_empty() {
            new.insert(*e);
        } else if first.len() < skips.len() {
            if skips.len() > 32 {
                tracing::warn!(
                    epoch = e,
                    chunks = cs.len(),
                    "some of the {} sink workers had committed this replayed epoch and others had not: with more than \
                     32 workers its chunks keep their recorded points, and an append target can get the changes \
                     between the two reads twice",
                    skips.len()
                );
                continue;
            }
            tracing::info!(
                epoch = e,
                chunks = cs.len(),
                "{} of {} sink workers had committed this replayed epoch: its chunks are read again for the others",
                first.len(),
                skips.len()
            );
            split.insert(*e, first.iter().fold(0u32, |m, w| m | 1 << w));
        }
    }
    (new, split)
}

/// The epoch a change stream starts in once every snapshot worker is done: after every
/// snapshot epoch (`last_snapshot_epoch`, never before `current`, the stream's capability) —
/// unless the run replays recorded epochs of the stream (`first_recorded`): then exactly at
/// the first of them, so each replayed epoch holds what it held (a snapshot worker with
/// nothing left to read ends in the run's first epoch, which may be the stream's first
/// recorded one; it wrote no row there). A recorded epoch before `current` cannot be
/// replayed in step: the run fails rather than write epochs out of step.
pub fn stream_start_epoch(
    last_snapshot_epoch: u64,
    current: u64,
    first_recorded: Option<u64>,
) -> Result<u64, TaskError> {
    match first_recorded {
        Some(r) if r >= current => Ok(r),
        Some(r) => Err(TaskError::definite(format!(
            "the change stream must replay its recorded epoch {r} but the snapshot ran to epoch {current}: the replay \
             would be out of step; start the task again with --from-scratch"
        ))),
        None => Ok((last_snapshot_epoch + 1).max(current)),
    }
}

/// A snapshot worker is done: tell worker 0 its last epoch and every chunk position it knows,
/// then release its capabilities.
fn finish<P: Clone + 'static>(
    cap: &mut Option<Capability<u64>>,
    cap_done: &mut Option<Capability<u64>>,
    out_done: &mut OutputBuilder<u64, CapacityContainerBuilder<Vec<Done<P>>>>,
    epoch: u64,
    positions: &mut Vec<(u32, P)>,
) {
    if let Some(d) = cap_done.as_ref() {
        let mut out = out_done.activate();
        out.session(d).give((epoch, std::mem::take(positions)));
    }
    *cap = None;
    *cap_done = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_starts_after_the_snapshot_or_exactly_at_its_first_recorded_epoch() {
        assert_eq!(stream_start_epoch(7, 5, None), Ok(8));
        assert_eq!(stream_start_epoch(7, 9, None), Ok(9));
        // Replaying: the recorded epoch, even when a snapshot worker with nothing left to
        // read ended in it (the run's first epoch).
        assert_eq!(stream_start_epoch(8, 8, Some(8)), Ok(8));
        assert_eq!(stream_start_epoch(3, 4, Some(9)), Ok(9));
        assert!(stream_start_epoch(8, 9, Some(8)).is_err());
    }
}
