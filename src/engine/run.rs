//! One run of a task: prepares the target and the source, forms the cluster (see
//! [`super::cluster`]), builds the dataflow on every worker (source → transform → exchange →
//! sink → DDL stage → probe), steps it until the sources end, a stop is asked or an operator
//! reports a failure, and says how it ended (a lost peer, a failure, a panic).

use super::cluster::{self, ClusterError, Formation, Identity};
use super::dataflow::{self, sink, transform};
use super::{ddl_history, dirty_archive, EngineError, RunOptions, RunSummary};
use crate::checkpoint::{Coordinator, Restore, RestoreError};
use crate::connector::{SourceCtx, SourcePrepare, TableStops, WriterCtx};
use crate::plan::config::Semantics;
use crate::plan::Compiled;
use crate::runtime::status_line::spawn_status_line;
use crate::runtime::{DirtyArchive, Failure, Metrics, RunControl, TaskError};
use crate::state::TaskState;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::Probe;
use timely::dataflow::ProbeHandle;

/// Told which peers a cluster process waits for, and since when (microseconds).
pub(super) type Waiting<'a> = Box<dyn FnMut(&[String], i64) + 'a>;

/// What a cluster process keeps from one run to the next (see [`cluster`]).
pub(super) struct ClusterCtx<'a> {
    /// The run's identity, the same on every process.
    pub identity: Identity,
    /// Whether this process formed the cluster before (it waits for a lost peer).
    pub established: bool,
    /// `runtime.cluster_timeout`.
    pub timeout: Duration,
    /// Told which peers this process waits for, and since when.
    pub waiting: Waiting<'a>,
}

/// Runs a compiled plan once: to completion (bounded sources), until stopped, or until it fails.
/// A cluster process (`cluster`, with more than one host) first forms the cluster.
pub(super) fn run_once(
    compiled: Compiled,
    opts: RunOptions,
    control: RunControl,
    metrics: Arc<Metrics>,
    cluster: Option<&mut ClusterCtx>,
) -> Result<RunSummary, EngineError> {
    let started = Instant::now();
    let settings = &compiled.plan.settings;
    let workers = opts.workers.unwrap_or(settings.runtime.workers).max(1);
    metrics.workers.store(workers as u64, std::sync::atomic::Ordering::Relaxed);
    let store = settings.state_store()?;
    let state = TaskState::new(store, &settings.task);
    let dirty_state = dirty_archive(settings, &state)?;
    let connectors = crate::connectors::registry();
    let source = connectors.source(&compiled.plan.source.kind).expect("the plan's source was parsed by its connector");
    let sink = connectors.sink(&compiled.plan.target.kind).expect("the plan's target was parsed by its connector");
    // Target tables being created beside the load (see `catalog::create`), ended with the run.
    let mut creating: Option<Creation> = None;
    if opts.process == 0 {
        if opts.from_scratch {
            let n = state.discard()?;
            tracing::info!(objects = n, "discarded the task's state");
            if settings.errors.dirty_archive.is_some() {
                // An archive kept elsewhere goes too: its rows belong to the discarded run (a
                // replay would land them on top of the new one's).
                let n = dirty_state.store().delete_prefix(&dirty_state.path("dirty"))?;
                tracing::info!(objects = n, "discarded the task's dirty-data archive");
            }
        }
        state.save_plan(&compiled.plan.text)?;
        // A task with no checkpoint and no epoch boundary has committed nothing: what an
        // earlier task of the same name left on the target (whose state is gone) must not
        // skip this one's epochs.
        let fresh = state.latest_manifest()?.is_none() && state.boundaries_after(0)?.is_empty();
        let prepared = sink.prepare(&compiled, opts.from_scratch, fresh)?;
        creating = prepared.creating.map(Creation);
        if let Some(c) = creating.as_ref().filter(|_| opts.hosts.len() > 1) {
            // A cluster's other processes write without asking process 0: every table first.
            c.0.wait(None).map_err(TaskError::from)?;
        }
    }
    let stops = Arc::new(TableStops::load(&state, &compiled.catalog)?);
    let (renames, dropped) = ddl_history(&state, &compiled)?;
    let mut compiled = compiled;
    compiled.ddl_dropped = dropped;
    let prepared = source.prepare(&SourcePrepare { plan: &compiled, state: &state, process: opts.process, workers })?;
    let table_names: Vec<String> = compiled.tables.iter().map(|t| t.target_schema.name.to_string()).collect();
    let plan = Arc::new(compiled);
    let run_id = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let summary = Arc::new(Mutex::new(RunSummary { output: plan.plan.target.config.describe(), ..Default::default() }));
    let failure = Failure::default();
    // A cluster forms here: every process waits for its peers (up to runtime.cluster_timeout).
    let (builders, others, mesh): (_, Box<dyn std::any::Any + Send>, _) = match cluster {
        Some(c) if opts.hosts.len() > 1 => {
            let formation = Formation {
                hosts: &opts.hosts,
                process: opts.process,
                identity: &c.identity,
                established: c.established,
                timeout: c.timeout,
                control: &control,
            };
            let mesh = match cluster::form(&formation, |missing, since| (c.waiting)(missing, since)) {
                Ok(m) => m,
                Err(ClusterError::Stopped) => {
                    return Ok(RunSummary { output: plan.plan.target.config.describe(), ..Default::default() })
                }
                Err(e) => return Err(EngineError::Cluster(e)),
            };
            c.established = true;
            let link = mesh.link();
            let (builders, comms) = mesh.into_timely(workers).map_err(EngineError::Cluster)?;
            (builders, Box::new(()), Some((link, comms)))
        }
        _ => {
            let config = if workers > 1 {
                timely::CommunicationConfig::Process(workers)
            } else {
                timely::CommunicationConfig::Thread
            };
            let (builders, others) = config.try_build().map_err(EngineError::Start)?;
            (builders, others, None)
        }
    };
    let status = (opts.progress && opts.process == 0).then(|| spawn_status_line(metrics.clone(), table_names.clone()));
    // Worker panics with their messages (a panic's payload is lost in timely's join).
    let panics: Arc<Mutex<Vec<String>>> = Arc::default();
    let (link, comms) = match mesh {
        Some((link, comms)) => (Some(link), Some(comms)),
        None => (None, None),
    };

    let guards = {
        let creating = creating.as_ref().map(|c| c.0.clone());
        let (plan, state, metrics, summary, failure) =
            (plan.clone(), state.clone(), metrics.clone(), summary.clone(), failure.clone());
        let keep_dirty = plan.plan.settings.errors.dirty == crate::plan::config::DirtyMode::Archive;
        let dirty_state = dirty_state.clone();
        let (link, panics, control) = (link.clone(), panics.clone(), control.clone());
        timely::execute::execute_from(builders, others, timely::WorkerConfig::default(), move |worker| {
            // A panic (a bug, or timely's reaction to a lost connection) is noted with its
            // message, the mesh torn down so the peers fail too, and the unwinding resumed (the
            // dataflow must not be stepped again).
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let index = worker.index();
                let peers = worker.peers();
                let exactly_once = plan.plan.settings.semantics == Semantics::ExactlyOnce;
                let result = (|| -> Result<(), EngineError> {
                    let restore = Restore::load(&state, peers, exactly_once).map_err(|e| match e {
                        RestoreError::State(e) => EngineError::State(e),
                        peers @ RestoreError::Peers(_) => EngineError::Restore(peers.to_string()),
                    })?;
                    let dirty = DirtyArchive::new(dirty_state.clone(), index, run_id, keep_dirty);
                    let wcx = WriterCtx {
                        plan: plan.clone(),
                        worker: index,
                        run: run_id,
                        state: state.clone(),
                        dirty: dirty.clone(),
                        metrics: metrics.clone(),
                        stops: stops.clone(),
                        policy: plan.plan.settings.errors.write_error,
                        semantics: plan.plan.settings.semantics,
                        renames: renames.clone(),
                        replay_upto: restore.replay_upto(),
                        creating: creating.clone(),
                    };
                    let writer = sink.writer(&wcx)?;
                    let skip_upto = writer.committed();
                    let applier = if writer.takes_ddl() && index == 0 { sink.schema_applier(&wcx)? } else { None };
                    let probe = ProbeHandle::new();
                    let cx = SourceCtx {
                        plan: plan.clone(),
                        state: state.clone(),
                        restore: restore.clone(),
                        metrics: metrics.clone(),
                        control: control.clone(),
                        failure: failure.clone(),
                        dirty: dirty.clone(),
                        sink_skips_upto: skip_upto,
                    };
                    worker.dataflow::<u64, _, _>(|scope| {
                        let (changes, schema) = prepared.build(scope, &cx);
                        let transformed = transform::transform(
                            changes,
                            plan.clone(),
                            dirty.clone(),
                            metrics.clone(),
                            failure.clone(),
                        );
                        let to_apply = sink::sink(
                            transformed,
                            schema.broadcast(),
                            plan.clone(),
                            writer,
                            skip_upto,
                            dirty,
                            metrics.clone(),
                            failure.clone(),
                            probe.clone(),
                        );
                        dataflow::ddl::ddl(to_apply, applier, failure.clone()).probe_with(&probe);
                    });
                    let versions = plan.catalog.tables.iter().map(|t| (t.name.to_string(), t.version)).collect();
                    let mut coordinator = (index == 0)
                        .then(|| Coordinator::new(state.clone(), &restore, peers, versions, control.clone()))
                        .map(|c| c.with_metrics(metrics.clone()));
                    while worker.step_or_park(Some(Duration::from_millis(20))) {
                        // A failure or a cancel first: no manifest may cover what a failed
                        // operator left out.
                        if failure.is_set() || control.cancelled() {
                            // The peers first (dropping a database writer may wait for its
                            // statement): their runs fail now, not after that.
                            if let Some(l) = &link {
                                l.teardown();
                            }
                            // Operators still hold capabilities: drop the dataflow, or timely
                            // would keep stepping it after this closure returns.
                            for id in worker.installed_dataflows() {
                                worker.drop_dataflow(id);
                            }
                            break;
                        }
                        if let Some(c) = coordinator.as_mut() {
                            c.poll(probe.with_frontier(|f| f.first().copied()))?;
                        }
                    }
                    if let Some(c) = coordinator.as_mut() {
                        if !failure.is_set() && !control.cancelled() {
                            c.poll(None)?;
                        }
                        let mut s = summary.lock().expect("summary");
                        s.epoch = c.manifest().epoch;
                        s.finished = c.manifest().finished;
                    }
                    Ok(())
                })();
                if let Err(e) = result {
                    failure.report(match e {
                        EngineError::Run(e) => e,
                        EngineError::Restore(m) => TaskError::definite(m),
                        other => TaskError::transient(other),
                    });
                }
            }));
            if failure.is_set() || control.cancelled() || outcome.is_err() {
                if let Err(p) = &outcome {
                    let msg = cluster::panic_text(p.as_ref());
                    // A panic after this process tore the mesh down is its consequence.
                    if !link.as_ref().is_some_and(|l| l.is_down()) {
                        panics.lock().unwrap_or_else(|e| e.into_inner()).push(msg);
                    }
                }
                if let Some(l) = &link {
                    l.teardown();
                }
            }
            if let Err(p) = outcome {
                std::panic::resume_unwind(p);
            }
        })
        .map_err(EngineError::Start)?
    };
    let joined = guards.join();
    if let Some(stop) = status {
        stop.stop();
    }
    let panicked = joined.iter().any(Result::is_err);
    let failed = failure.take();
    if let Some(l) = &link {
        if panicked || failed.is_some() || control.cancelled() {
            l.teardown();
        }
    }
    if let Some(c) = comms {
        cluster::drop_comms(c);
    }
    // How the run ended: a definite failure first, then a lost peer (whatever the workers
    // reported after it), then the run's own failure, then a panic.
    // Panics before this process tore the mesh down: a bug, or timely's reaction to a lost
    // connection (later ones are the teardown's consequences).
    let kept = panics.lock().unwrap_or_else(|e| e.into_inner()).first().cloned();
    // A peer's connection that ended counts only when it is what broke this run: the workers
    // panicked before any teardown of this process's (a peer that ended cleanly after the
    // run, or because this process failed first, is no loss).
    let lost = link.as_ref().and_then(|l| l.lost()).filter(|_| kept.is_some() || (failed.is_none() && panicked));
    match (failed, lost) {
        (Some(f @ TaskError::Definite(_)), _) => return Err(EngineError::Run(f)),
        (_, Some(lost)) => return Err(EngineError::Cluster(lost)),
        (Some(f), None) => return Err(EngineError::Run(f)),
        // A cancel tears the mesh down itself: the panics that follow are its own.
        (None, None) if panicked && !(control.cancelled() && kept.is_none()) => {
            return Err(EngineError::Run(match kept {
                Some(m) if cluster::is_communication_panic(&m) => {
                    TaskError::transient(format!("the cluster's communication failed: {m}"))
                }
                // A worker thread panicked: a bug, not a condition of the data or the servers.
                Some(m) => TaskError::definite(format!("a worker failed: {m}")),
                None if link.is_some() => TaskError::transient("the cluster's communication failed"),
                None => TaskError::definite("a worker failed"),
            }));
        }
        (None, None) => {}
    }
    if let Some(c) = creating.as_ref().filter(|_| !control.stopping()) {
        // A run that ended on its own leaves every table created (those without rows too); a
        // stopped one leaves the rest to the next run.
        c.0.wait(None).map_err(|e| EngineError::Run(e.into()))?;
    }
    let mut s = summary.lock().expect("summary").clone();
    s.rows_in = metrics.rows_in.load(Ordering::Relaxed);
    s.rows_out = metrics.rows_out.load(Ordering::Relaxed);
    s.dirty = metrics.dirty.load(Ordering::Relaxed);
    s.elapsed = started.elapsed();
    s.tables = table_names.into_iter().zip(metrics.per_table.iter().map(|c| c.load(Ordering::Relaxed))).collect();
    Ok(s)
}

/// The run's table creation beside the load: stopped (its sessions closed) when the run ends,
/// however it ends.
struct Creation(Arc<crate::catalog::create::Creating>);

impl Drop for Creation {
    fn drop(&mut self) {
        self.0.finish();
    }
}
