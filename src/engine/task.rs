//! A task's lifecycle: [`Task::start`] runs a compiled plan on a thread of its own and returns a
//! [`TaskHandle`] to stop it, read its state and its metrics; `ferry run` (and the task service
//! later) drive a task through it.
//!
//! ```text
//!            start                 failure (transient)             backoff 1 s, 2 s … 30 s
//!  running ───────► run_once ───────────────────────► restarting ─────────────┐
//!     ▲                │ │                                                     │
//!     └────────────────┼─┼─────────────────────────────────────────────────────┘
//!                      │ └─ stop(savepoint): sources end at their next epoch boundary,
//!                      │    everything committed, manifest marked savepoint ──► stopped
//!                      │    stop(cancel): dataflow dropped now ─────────────────► stopped
//!                      ├─ bounded sources exhausted ─────────────────────────────► finished
//!                      └─ definite failure, or past errors.max_restarts ─────────► failed
//! ```
//!
//! The state is kept in `<task>/status.json` (process 0; a cluster's process p ≥ 1 keeps
//! `status.<p>.json`) with the committed epoch and the source position of its manifest.
//!
//! In a cluster, a lost peer fails the run on every other process (see [`super::cluster`]):
//! each counts a restart, forms the cluster again without a backoff (state `restarting`, the
//! peers it waits for in its status), and once every process is back they all resume from the
//! last checkpoint. A peer that does not come back within `runtime.cluster_timeout` ends the
//! task `failed`, naming it.

use super::run::{run_once, ClusterCtx};
use super::{EngineError, RunOptions, RunSummary};
use crate::plan::Compiled;
use crate::runtime::{now_micros, Metrics, RunControl, StopMode};
use crate::state::{ClusterStatus, RunState, RunStatus, TaskState};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the task thread and its handle share.
#[derive(Debug, Default)]
struct Shared {
    status: Mutex<RunStatus>,
    metrics: Mutex<Option<Arc<Metrics>>>,
}

/// A running task.
#[derive(Debug)]
pub struct TaskHandle {
    control: RunControl,
    shared: Arc<Shared>,
    thread: std::thread::JoinHandle<Result<RunSummary, EngineError>>,
}

/// Starts tasks.
#[derive(Debug)]
pub struct Task;

impl Task {
    /// Starts `compiled` on a thread of its own.
    pub fn start(compiled: Compiled, opts: RunOptions) -> TaskHandle {
        let control = RunControl::default();
        let shared = Arc::new(Shared::default());
        let (c, s) = (control.clone(), shared.clone());
        let thread = std::thread::Builder::new()
            .name("ferry-task".into())
            .spawn(move || supervise(compiled, opts, c, s))
            .expect("the task thread starts");
        TaskHandle { control, shared, thread }
    }
}

/// Asks a running task to stop, from any thread (a signal handler's, a service's).
#[derive(Debug, Clone)]
pub struct Stopper {
    control: RunControl,
    shared: Arc<Shared>,
}

impl Stopper {
    /// Asks the task to stop (see [`StopMode`]); returns at once.
    pub fn stop(&self, mode: StopMode) {
        self.control.request(mode);
        let mut s = self.shared.status.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(s.state, RunState::Running | RunState::Restarting) {
            s.state = RunState::Stopping;
        }
    }
}

impl TaskHandle {
    /// Asks the task to stop (see [`StopMode`]); returns at once, [`TaskHandle::wait`] waits.
    pub fn stop(&self, mode: StopMode) {
        self.stopper().stop(mode)
    }

    /// A stopper for another thread.
    pub fn stopper(&self) -> Stopper {
        Stopper { control: self.control.clone(), shared: self.shared.clone() }
    }

    /// The task's state as of now.
    pub fn status(&self) -> RunStatus {
        self.shared.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The counters of the current run (none before the first run starts).
    pub fn metrics(&self) -> Option<Arc<Metrics>> {
        self.shared.metrics.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Writes the run's counters ([`crate::runtime::metrics::Published`]) with its state and
    /// restarts to `path` every second, and once more when the returned guard is dropped (a
    /// temporary file renamed over it: a reader never sees half of one).
    pub fn metrics_file(&self, path: std::path::PathBuf) -> MetricsFile {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (shared, flag) = (self.shared.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("ferry-metrics".into())
            .spawn(move || {
                let mut prev = None;
                loop {
                    let last = flag.load(std::sync::atomic::Ordering::Relaxed);
                    let metrics = shared.metrics.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    if let Some(m) = metrics {
                        let p = m.publish(prev.as_ref());
                        let status = shared.status.lock().unwrap_or_else(|p| p.into_inner()).clone();
                        let mut v = serde_json::to_value(&p).expect("metrics serialize");
                        v["state"] = serde_json::json!(status.state.as_str());
                        v["restarts"] = serde_json::json!(status.restarts);
                        let tmp = path.with_extension("json.tmp");
                        let written = std::fs::write(&tmp, v.to_string()).and_then(|_| std::fs::rename(&tmp, &path));
                        if let Err(e) = written {
                            tracing::warn!(file = %path.display(), error = %e, "cannot write the metrics file");
                        }
                        prev = Some(p);
                    }
                    if last {
                        return;
                    }
                    let until = Instant::now() + Duration::from_secs(1);
                    while Instant::now() < until && !flag.load(std::sync::atomic::Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })
            .expect("the metrics thread starts");
        MetricsFile { stop, thread: Some(thread) }
    }

    /// Whether the task has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for the task to end.
    pub fn wait(self) -> Result<RunSummary, EngineError> {
        self.thread.join().unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the task thread failed".into());
            Err(EngineError::Run(crate::runtime::TaskError::definite(msg)))
        })
    }
}

/// The metrics file's writer ([`TaskHandle::metrics_file`]): writes a last time and stops when
/// dropped.
#[derive(Debug)]
pub struct MetricsFile {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for MetricsFile {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs a compiled plan to completion (bounded sources) or until stopped; see [`Task`].
pub fn run(compiled: Compiled, opts: RunOptions) -> Result<RunSummary, EngineError> {
    Task::start(compiled, opts).wait()
}

/// Whether a restart may fix the error (not a bad restore point, not a bad cluster setup, not
/// a definite failure).
fn restartable(e: &EngineError) -> bool {
    match e {
        EngineError::Run(e) => e.is_transient(),
        EngineError::Cluster(e) => e.is_transient(),
        EngineError::Restore(_) | EngineError::Start(_) | EngineError::Target(_) | EngineError::Archive { .. } => false,
        _ => true,
    }
}

/// The task thread: runs the plan, restarting it from its last checkpoint after a failure,
/// up to the plan's `errors.max_restarts` times (F9.4), with backoff 1 s, 2 s, 4 s … 30 s.
fn supervise(
    compiled: Compiled,
    opts: RunOptions,
    control: RunControl,
    shared: Arc<Shared>,
) -> Result<RunSummary, EngineError> {
    let mut compiled = compiled;
    let max = compiled.plan.settings.errors.max_restarts;
    let state = super::open_state(&compiled.plan.settings)?;
    super::probe_dirty_archive(&compiled.plan.settings, &state)?;
    let mut restarts: u32 = 0;
    let mut opts = opts;
    let primary = opts.process == 0;
    let clustered = opts.hosts.len() > 1;
    let mut cluster = clustered.then(|| {
        super::cluster::quiet_timely_panics();
        let workers = opts.workers.unwrap_or(compiled.plan.settings.runtime.workers).max(1);
        (super::cluster::Identity::new(&compiled.plan.settings.task, &compiled.plan.text, &opts.hosts, workers), false)
    });
    // The background verifier (`verify.continuous`), on process 0; stops when the task ends.
    let _verifier = if primary { crate::verify::continuous::start(&compiled, &state) } else { None };
    // Writes the state (process 0 keeps status.json, a cluster's process p ≥ 1 status.<p>.json),
    // with the newest manifest's position and the peers a cluster process waits for.
    let process = opts.process;
    let publish_waiting = |st: RunState,
                           restarts: u32,
                           last_error: Option<String>,
                           write: bool,
                           waiting: (&[String], i64)|
     -> Result<(), EngineError> {
        let manifest = state.latest_manifest().ok().flatten().unwrap_or_default();
        let status = RunStatus {
            state: st,
            restarts,
            last_error,
            updated_micros: now_micros(),
            epoch: manifest.epoch,
            position: manifest.offsets,
            cluster: clustered.then(|| ClusterStatus {
                process,
                waiting_for: waiting.0.to_vec(),
                waiting_since_micros: waiting.1,
            }),
        };
        *shared.status.lock().unwrap_or_else(|p| p.into_inner()) = status.clone();
        if (primary || clustered) && write {
            state.write_status(&status)?;
        }
        Ok(())
    };
    let publish = |st: RunState, restarts: u32, last_error: Option<String>, write: bool| {
        publish_waiting(st, restarts, last_error, write, (&[], 0))
    };
    let mut last_error = None;
    loop {
        publish(RunState::Running, restarts, last_error.clone(), !opts.from_scratch)?;
        if control.stopping() {
            // Stopped while restarting: nothing is running, the checkpoint is the position.
            publish(RunState::Stopped, restarts, last_error, true)?;
            return Ok(RunSummary::default());
        }
        // The epoch this run starts from: a new-tables record at or before it is an old one.
        let started_at = state.latest_manifest()?.map_or(0, |m| m.epoch);
        let names = compiled
            .catalog
            .tables
            .iter()
            .zip(&compiled.tables)
            .map(|(s, t)| (s.name.to_string(), t.target_schema.name.to_string()))
            .collect();
        let metrics = Arc::new(Metrics::with_tables(names));
        *shared.metrics.lock().unwrap_or_else(|p| p.into_inner()) = Some(metrics.clone());
        let result = match cluster.as_mut() {
            Some((identity, established)) => {
                let (err, st) =
                    (last_error.clone(), if restarts > 0 { RunState::Restarting } else { RunState::Running });
                let mut cx = ClusterCtx {
                    identity: identity.clone(),
                    established: *established,
                    timeout: compiled.plan.settings.runtime.cluster_timeout(),
                    waiting: Box::new(|missing: &[String], since: i64| {
                        let st = if missing.is_empty() { RunState::Running } else { st };
                        if let Err(e) = publish_waiting(st, restarts, err.clone(), true, (missing, since)) {
                            tracing::warn!(error = %e, "cannot record the process's status");
                        }
                    }),
                };
                let r = run_once(compiled.clone(), opts.clone(), control.clone(), metrics, Some(&mut cx));
                *established = cx.established;
                r
            }
            None => run_once(compiled.clone(), opts.clone(), control.clone(), metrics, None),
        };
        if opts.from_scratch && primary {
            // The state was discarded by this attempt: a restart resumes, it does not discard again.
            opts.from_scratch = false;
        }
        match result {
            Ok(summary) => {
                // Only process 0 knows the run finished: the others ask the state store.
                if !control.stopping() && (summary.finished || !primary) {
                    if let Some(next) = with_new_tables(&compiled, &state, started_at, !primary)? {
                        compiled = next;
                        continue;
                    }
                }
                let end = if summary.finished { RunState::Finished } else { RunState::Stopped };
                publish(end, restarts, last_error, true)?;
                return Ok(summary);
            }
            Err(e) => {
                let msg = crate::secrets::redact(&e.to_string());
                last_error = Some(msg.clone());
                let allowed = max < 0 || (restarts as i64) < max as i64;
                if !restartable(&e) || !allowed {
                    let _ = publish(RunState::Failed, restarts, last_error, true);
                    if restartable(&e) && max != 0 {
                        return Err(EngineError::Failed { restarts, last: msg });
                    }
                    return Err(e);
                }
                restarts += 1;
                let _ = publish(RunState::Restarting, restarts, last_error.clone(), true);
                // A lost peer: no backoff, forming the cluster again is the wait (bounded by
                // runtime.cluster_timeout).
                let delay = if matches!(e, EngineError::Cluster(_)) {
                    Duration::ZERO
                } else {
                    Duration::from_secs(1u64 << (restarts - 1).min(5)).min(Duration::from_secs(30))
                };
                tracing::warn!(
                    restart = restarts,
                    max_restarts = max,
                    error = %msg,
                    "the run failed; restarting from the last checkpoint in {}s",
                    delay.as_secs()
                );
                // A stop ends the wait.
                let until = Instant::now() + delay;
                while Instant::now() < until && !control.stopping() {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
}

/// The plan compiled again, when the run that just finished ended for new tables (a
/// `CREATE TABLE` the selection takes, policy `auto`): its last epoch is the one the
/// statement ended, after `started_at`, the epoch the run started from. `wait`: a process
/// other than 0, which may end before process 0 has written the run's last manifest.
fn with_new_tables(
    compiled: &Compiled,
    state: &TaskState,
    started_at: u64,
    wait: bool,
) -> Result<Option<Compiled>, EngineError> {
    let Some(rec) = state.new_tables()?.filter(|r| r.epoch > started_at) else { return Ok(None) };
    let deadline = Instant::now() + Duration::from_secs(if wait { 60 } else { 0 });
    loop {
        let last = state.latest_manifest()?.map_or(0, |m| m.epoch);
        if last == rec.epoch {
            break;
        }
        if last > rec.epoch || Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    tracing::info!(tables = ?rec.tables, "starting again with the new tables");
    let source = crate::plan::discover(&compiled.plan).map_err(|e| EngineError::Source(e.to_string()))?;
    let next = crate::plan::compile(compiled.plan.clone(), &source)
        .map_err(|e| EngineError::Source(format!("the plan with the new tables {}: {e}", rec.tables.join(", "))))?;
    Ok(Some(next))
}
