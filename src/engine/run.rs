//! One run of a task: prepares the target and the source, builds the dataflow on every worker
//! (source → transform → exchange → sink → DDL stage → probe), steps it until the sources end,
//! a stop is asked or an operator reports a failure, and says how it ended.

use super::dataflow::{self, sink, transform};
use super::{ddl_history, dirty_archive, EngineError, RunOptions, RunSummary};
use crate::checkpoint::{Coordinator, Restore, RestoreError};
use crate::connector::{SourceCtx, SourcePrepare, TableStops, WriterCtx};
use crate::plan::config::Semantics;
use crate::plan::Compiled;
use crate::runtime::status_line::spawn_status_line;
use crate::runtime::{DirtyArchive, Failure, Metrics, RunControl, TaskError};
use crate::state::TaskState;
use crate::store::Store;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::Probe;
use timely::dataflow::ProbeHandle;

/// Runs a compiled plan once: to completion (bounded sources), until stopped, or until it fails.
pub(super) fn run_once(
    compiled: Compiled,
    opts: RunOptions,
    control: RunControl,
    metrics: Arc<Metrics>,
) -> Result<RunSummary, EngineError> {
    let started = Instant::now();
    let settings = &compiled.plan.settings;
    let workers = opts.workers.unwrap_or(settings.runtime.workers).max(1);
    let store = Store::open_local(&settings.runtime.state)?;
    let state = TaskState::new(store, &settings.task);
    let dirty_state = dirty_archive(settings, &state)?;
    let connectors = crate::connectors::registry();
    let source = connectors.source(&compiled.plan.source.kind).expect("the plan's source was parsed by its connector");
    let sink = connectors.sink(&compiled.plan.target.kind).expect("the plan's target was parsed by its connector");
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
        sink.prepare(&compiled, opts.from_scratch, fresh)?;
    }
    let stops = Arc::new(TableStops::load(&state, &compiled.catalog)?);
    let (renames, dropped) = ddl_history(&state, &compiled)?;
    let mut compiled = compiled;
    compiled.ddl_dropped = dropped;
    let prepared = source.prepare(&SourcePrepare { plan: &compiled, state: &state, process: opts.process })?;
    let config = if opts.hosts.len() > 1 {
        timely::Config {
            communication: timely::CommunicationConfig::Cluster {
                threads: workers,
                process: opts.process,
                addresses: opts.hosts.clone(),
                report: false,
                zerocopy: false,
            },
            worker: timely::WorkerConfig::default(),
        }
    } else if workers > 1 {
        timely::Config::process(workers)
    } else {
        timely::Config::thread()
    };
    let table_names: Vec<String> = compiled.tables.iter().map(|t| t.target_schema.name.to_string()).collect();
    let plan = Arc::new(compiled);
    let run_id = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let summary = Arc::new(Mutex::new(RunSummary { output: plan.plan.target.config.describe(), ..Default::default() }));
    let failure = Failure::default();
    let status = (opts.progress && opts.process == 0).then(|| spawn_status_line(metrics.clone(), table_names.clone()));

    let guards = {
        let (plan, state, metrics, summary, failure) =
            (plan.clone(), state.clone(), metrics.clone(), summary.clone(), failure.clone());
        let keep_dirty = plan.plan.settings.errors.dirty == crate::plan::config::DirtyMode::Archive;
        let dirty_state = dirty_state.clone();
        timely::execute(config, move |worker| {
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
                };
                worker.dataflow::<u64, _, _>(|scope| {
                    let (changes, schema) = prepared.build(scope, &cx);
                    let transformed =
                        transform::transform(changes, plan.clone(), dirty.clone(), metrics.clone(), failure.clone());
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
                let mut coordinator =
                    (index == 0).then(|| Coordinator::new(state.clone(), &restore, peers, versions, control.clone()));
                while worker.step_or_park(Some(Duration::from_millis(20))) {
                    // A failure or a cancel first: no manifest may cover what a failed
                    // operator left out.
                    if failure.is_set() || control.cancelled() {
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
        })
        .map_err(EngineError::Start)?
    };
    let joined = guards.join();
    if let Some(stop) = status {
        stop.stop();
    }
    for r in joined {
        if let Err(e) = r {
            // A worker thread panicked: a bug, not a condition of the data or the servers.
            failure.report(TaskError::definite(format!("a worker failed: {e}")));
        }
    }
    if let Some(f) = failure.take() {
        return Err(EngineError::Run(f));
    }
    let mut s = summary.lock().expect("summary").clone();
    s.rows_in = metrics.rows_in.load(Ordering::Relaxed);
    s.rows_out = metrics.rows_out.load(Ordering::Relaxed);
    s.dirty = metrics.dirty.load(Ordering::Relaxed);
    s.elapsed = started.elapsed();
    s.tables = table_names.into_iter().zip(metrics.per_table.iter().map(|c| c.load(Ordering::Relaxed))).collect();
    Ok(s)
}
