//! The checkpoint protocol, in one place: every source closes its epochs through [`Epochs`], the
//! coordinator ([`Coordinator`], worker 0) turns committed epochs into manifests, and
//! [`Restore`] is where a run starts again. No connector writes a boundary record itself.
//!
//! ```text
//!  source worker                       sinks                        worker 0
//!  ─────────────                       ─────                        ────────
//!  Epochs::close(e, offsets)           commit(e) once their         Coordinator::poll(frontier)
//!   1. boundary record of e  ─durable─► input frontier passed e ──►  frontier passed e: merge the
//!   2. → Next(e+1): downgrade                                         boundaries ≤ e into the
//!      → End: drop capability                                         manifest of e, drop them
//!
//!  restart: Restore::load → newest manifest + the boundary records after it; a source resumes
//!  from the manifest's offsets and replays each recorded epoch up to its recorded boundary
//!  (Epochs::replaying), so a replayed epoch holds exactly what it held before the crash.
//! ```
//!
//! A savepoint stop ([`crate::runtime::StopMode::Savepoint`]) is an epoch close like any other
//! that ends the source instead of opening the next epoch; the manifest written when the
//! frontier empties is then marked `savepoint` instead of `finished`.

use crate::runtime::fault::Fault;
use crate::runtime::{now_micros, RunControl, TaskError};
use crate::state::{Boundary, Manifest, Offsets, StateError, TaskState};
use std::collections::{BTreeMap, VecDeque};

/// Errors of a restore point that cannot be used as asked.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The epochs in flight were recorded by another worker count.
    #[error(
        "the last run stopped with {0} workers in total and had epochs in flight; restart it once with {0} workers \
         so they are replayed exactly, then change the worker count"
    )]
    Peers(usize),
}

/// Where the run resumes: the newest manifest and the recorded boundaries after it.
#[derive(Debug, Clone)]
pub struct Restore {
    /// The newest manifest (default: nothing committed yet).
    pub manifest: Manifest,
    /// Boundary records of epochs after the manifest (to replay), every worker's.
    pub boundaries: Vec<Boundary>,
}

impl Restore {
    /// Reads the restore point of a run with `peers` workers in total.
    pub fn load(state: &TaskState, peers: usize, exactly_once: bool) -> Result<Restore, RestoreError> {
        let manifest = state.latest_manifest()?.unwrap_or_default();
        let mut boundaries = state.boundaries_after(manifest.epoch)?;
        if let Some(b) = boundaries.iter().find(|b| b.peers != peers) {
            if exactly_once {
                return Err(RestoreError::Peers(b.peers));
            }
            boundaries.clear();
        }
        Ok(Restore { manifest, boundaries })
    }

    /// The highest epoch recorded before the restart.
    pub fn replay_upto(&self) -> u64 {
        self.boundaries.iter().map(|b| b.epoch).max().unwrap_or(self.manifest.epoch)
    }

    /// The first epoch of the run.
    pub fn start_epoch(&self) -> u64 {
        self.manifest.epoch + 1
    }
}

/// What a source does after closing an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Open this epoch: downgrade the capabilities to it.
    Open(u64),
    /// End: drop the capabilities (exhausted, or stopped at a savepoint).
    End,
}

/// One source worker's side of the protocol: its replay queue and its epoch closes.
#[derive(Debug)]
pub struct Epochs {
    state: TaskState,
    /// The worker whose partitions these are (a source read by one worker passes that one).
    worker: usize,
    peers: usize,
    replay: VecDeque<Boundary>,
    control: RunControl,
}

impl Epochs {
    /// The epochs of `worker`'s partitions in a run of `peers` workers, restored from `restore`.
    pub fn new(state: TaskState, restore: &Restore, worker: usize, peers: usize, control: RunControl) -> Self {
        let replay = restore.boundaries.iter().filter(|b| b.worker == worker).cloned().collect();
        Epochs { state, worker, peers, replay, control }
    }

    /// Only the recorded epochs of the partitions `keep` takes: for a worker that runs two
    /// sources of its own (the MySQL snapshot's chunks and the binlog on worker 0), each
    /// replays the records of its partitions (their epochs never overlap).
    pub fn for_partitions(mut self, keep: impl Fn(u32) -> bool) -> Self {
        self.replay.retain(|b| b.offsets.keys().any(|&p| keep(p)));
        self
    }

    /// The recorded boundary of `epoch` when this run replays it.
    pub fn replaying(&self, epoch: u64) -> Option<&Boundary> {
        self.replay.front().filter(|b| b.epoch == epoch)
    }

    /// Every recorded boundary still to replay, oldest first.
    pub fn to_replay(&self) -> impl Iterator<Item = &Boundary> {
        self.replay.iter()
    }

    /// Whether more recorded epochs follow the one being replayed.
    pub fn replays_after_this(&self) -> bool {
        self.replay.len() > 1
    }

    /// Whether the source should close its open epoch at its next transaction boundary to
    /// stop (a savepoint was asked and no recorded epoch is left to replay).
    pub fn stop_due(&self) -> bool {
        self.control.stopping() && self.replay.is_empty()
    }

    /// Records `offsets` for the replayed `epoch` in place of its recorded ones: a source that
    /// read the epoch's chunks again as they are now, where not every sink worker had
    /// committed the epoch (see `connector::snapshot`). The record is overwritten whole by its one writer,
    /// before any sink can commit the epoch (the source has not closed it yet).
    pub fn rerecord(&mut self, epoch: u64, offsets: Offsets) -> Result<(), TaskError> {
        let Some(b) = self.replay.front_mut().filter(|b| b.epoch == epoch) else { return Ok(()) };
        b.offsets = offsets;
        self.state
            .write_boundary(b)
            .map_err(|e| TaskError::transient(format!("cannot record the end of epoch {epoch} again: {e}")))
    }

    /// Closes `epoch` with this worker's `offsets` at its end: records the boundary (a replayed
    /// epoch's record is stored already, identical), and only then says what comes next.
    /// `exhausted`: every partition of this worker has ended. A savepoint request ends the
    /// source here once no recorded epoch is left to replay.
    pub fn close(&mut self, epoch: u64, offsets: Offsets, exhausted: bool) -> Result<Next, TaskError> {
        if let Some(b) = self.replay.front().filter(|b| b.epoch < epoch) {
            // A replayed epoch holds what it held only if every recorded one is closed in turn.
            return Err(TaskError::definite(format!(
                "worker {} closes epoch {epoch} while its recorded epoch {} was not replayed: the replay is out of step \
                 (exactly-once cannot hold); start the task again with --from-scratch",
                self.worker, b.epoch
            )));
        }
        if self.replaying(epoch).is_some() {
            self.replay.pop_front();
        } else {
            let record = Boundary { epoch, worker: self.worker, peers: self.peers, offsets, done: exhausted };
            self.state
                .write_boundary(&record)
                .map_err(|e| TaskError::transient(format!("cannot record the end of epoch {epoch}: {e}")))?;
        }
        if exhausted {
            return Ok(Next::End);
        }
        if self.stop_due() {
            self.control.mark_stopped_early();
            tracing::info!(worker = self.worker, epoch, "source stopped at the savepoint");
            return Ok(Next::End);
        }
        Ok(Next::Open(epoch + 1))
    }

    /// Ends the source without an epoch of its own to close (it had not started, e.g. the
    /// binlog reader waiting for the snapshot): only a stop request does that.
    pub fn end_unstarted(&self) {
        self.control.mark_stopped_early();
    }
}

/// Worker 0's checkpoint coordinator: writes the manifest of every epoch the probe after the
/// sinks has passed.
#[derive(Debug)]
pub struct Coordinator {
    state: TaskState,
    manifest: Manifest,
    peers: usize,
    versions: BTreeMap<String, u32>,
    last_frontier: Option<Option<u64>>,
    control: RunControl,
    metrics: Option<std::sync::Arc<crate::runtime::Metrics>>,
}

impl Coordinator {
    /// The coordinator of a run of `peers` workers; `versions`: each table's schema version.
    pub fn new(
        state: TaskState,
        restore: &Restore,
        peers: usize,
        versions: BTreeMap<String, u32>,
        control: RunControl,
    ) -> Self {
        Coordinator {
            state,
            manifest: restore.manifest.clone(),
            peers,
            versions,
            last_frontier: None,
            control,
            metrics: None,
        }
    }

    /// Counts each checkpoint's epochs in `metrics` (their close-to-checkpoint times).
    pub fn with_metrics(mut self, metrics: std::sync::Arc<crate::runtime::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The newest manifest written (or restored).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Called with the probe's frontier (`None`: empty, everything committed).
    pub fn poll(&mut self, frontier: Option<u64>) -> Result<(), StateError> {
        if self.last_frontier == Some(frontier) {
            return Ok(());
        }
        self.last_frontier = Some(frontier);
        let upto = match frontier {
            Some(0) => return Ok(()),
            Some(f) => f - 1,
            None => u64::MAX,
        };
        if upto <= self.manifest.epoch && frontier.is_some() {
            return Ok(());
        }
        let records: Vec<Boundary> =
            self.state.boundaries_after(self.manifest.epoch)?.into_iter().filter(|b| b.epoch <= upto).collect();
        let mut offsets: Offsets = self.manifest.offsets.clone();
        let mut epoch = self.manifest.epoch;
        for b in &records {
            offsets.extend(b.offsets.iter().map(|(k, v)| (*k, v.clone())));
            epoch = epoch.max(b.epoch);
        }
        if frontier.is_some() {
            epoch = upto;
        }
        // The frontier empties when every source ended: exhausted (finished), or at a savepoint.
        let ended = frontier.is_none();
        let savepoint = ended && self.control.stopped_early();
        let finished = ended && !savepoint;
        if let Some(delay) = Fault::ManifestDelay.delay() {
            // Widen the window in which sinks have committed epochs the newest manifest does
            // not cover yet.
            std::thread::sleep(delay);
        }
        if epoch == self.manifest.epoch
            && offsets == self.manifest.offsets
            && finished == self.manifest.finished
            && savepoint == self.manifest.savepoint
        {
            return Ok(());
        }
        let m = Manifest {
            epoch,
            peers: self.peers,
            offsets,
            schema_versions: self.versions.clone(),
            finished,
            savepoint,
            written_micros: now_micros(),
        };
        self.state.write_manifest(&m)?;
        self.state.drop_boundaries_upto(epoch)?;
        if let Some(metrics) = &self.metrics {
            metrics.committed(epoch);
        }
        tracing::debug!(epoch, savepoint, "checkpoint written");
        self.manifest = m;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::StopMode;
    use crate::store::Store;

    fn state() -> (tempfile::TempDir, TaskState) {
        let dir = tempfile::tempdir().unwrap();
        let st = TaskState::new(Store::open_local(dir.path().to_str().unwrap()).unwrap(), "t");
        (dir, st)
    }

    #[test]
    fn a_boundary_is_recorded_before_the_next_epoch_opens_and_replays_are_not_recorded_again() {
        let (_d, st) = state();
        let control = RunControl::default();
        let mut e = Epochs::new(st.clone(), &Restore::load(&st, 1, true).unwrap(), 0, 1, control.clone());
        assert_eq!(e.close(1, [(0, 5.into())].into(), false).unwrap(), Next::Open(2));
        assert_eq!(st.boundaries_after(0).unwrap().len(), 1);
        // A restart replays epoch 1 up to its record and does not write it again.
        let restore = Restore::load(&st, 1, true).unwrap();
        let mut again = Epochs::new(st.clone(), &restore, 0, 1, control);
        assert_eq!(again.replaying(1).map(|b| b.offsets[&0].clone()), Some(5.into()));
        st.drop_boundaries_upto(1).unwrap();
        assert_eq!(again.close(1, Offsets::new(), false).unwrap(), Next::Open(2));
        assert!(st.boundaries_after(0).unwrap().is_empty(), "a replayed epoch's record is not written again");
    }

    #[test]
    fn a_savepoint_ends_the_source_after_its_replays_and_the_manifest_says_so() {
        let (_d, st) = state();
        let control = RunControl::default();
        let restore = Restore::load(&st, 1, true).unwrap();
        let mut e = Epochs::new(st.clone(), &restore, 0, 1, control.clone());
        control.request(StopMode::Savepoint);
        assert_eq!(e.close(1, [(0, 9.into())].into(), false).unwrap(), Next::End);
        let mut c = Coordinator::new(st.clone(), &restore, 1, BTreeMap::new(), control);
        c.poll(None).unwrap();
        let m = st.latest_manifest().unwrap().unwrap();
        assert!(m.savepoint && !m.finished, "{m:?}");
        assert_eq!((m.epoch, m.offsets[&0].clone()), (1, 9.into()));
    }

    #[test]
    fn an_exhausted_source_ends_the_run_as_finished() {
        let (_d, st) = state();
        let control = RunControl::default();
        let restore = Restore::load(&st, 1, true).unwrap();
        let mut e = Epochs::new(st.clone(), &restore, 0, 1, control.clone());
        assert_eq!(e.close(1, [(0, 3.into())].into(), true).unwrap(), Next::End);
        let mut c = Coordinator::new(st.clone(), &restore, 1, BTreeMap::new(), control);
        c.poll(None).unwrap();
        let m = st.latest_manifest().unwrap().unwrap();
        assert!(m.finished && !m.savepoint);
    }
}
