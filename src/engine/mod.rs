//! The engine: compiles a checked plan into one timely dataflow per worker and runs it.
//!
//! ```text
//!  source (datagen partitions p ≡ worker mod peers)        epochs close every checkpoint
//!    │  Change stamped with the open epoch                   interval, at transaction
//!    ▼                                                       boundaries; the boundary is
//!  transform (same worker: op filter, key split,             recorded before the epoch closes
//!    │        row filter, projection, metadata)
//!    ▼  exchange by hash(table, key)
//!  sink (writer per worker; commit(e) once the input frontier passed e)
//!    │  holds a capability per uncommitted epoch
//!    ▼
//!  probe ──► coordinator (worker 0): frontier passed e ⇒ write manifest e
//! ```
//!
//! Worker 0 is the coordinator: it watches the probe after the sinks and writes the checkpoint
//! manifest of every epoch the frontier passes (see [`crate::state`]). The run ends when every
//! source is exhausted and its last epoch is committed.

pub(crate) mod dataflow;

pub use dataflow::mysql::io_runtime;
use dataflow::mysql::MysqlRun;

use crate::plan::config::Semantics;
use crate::plan::{Compiled, SourceSpec, TargetSpec};
use crate::sinks::files::{FilesOptions, FilesWriter};
use crate::sinks::null::NullWriter;
use crate::sinks::sql::{SqlContext, SqlWriter};
use crate::sinks::SinkWriter;
use crate::sinks::TableStops;
use crate::state::{Boundary, Manifest, Offsets, RunStatus, StateError, TaskState};
use crate::store::Store;
use dataflow::{sink, source, transform, DirtyArchive, Metrics};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::Probe;
use timely::dataflow::ProbeHandle;

/// How to run: workers and cluster shape, restore policy, terminal output.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Worker threads in this process (overrides the plan's `runtime.workers` when set).
    pub workers: Option<usize>,
    /// Addresses (`host:port`) of every process of a cluster, in process order; empty: one process.
    pub hosts: Vec<String>,
    /// This process's index in `hosts`.
    pub process: usize,
    /// Discard the task's state (and the files target's output) before starting.
    pub from_scratch: bool,
    /// Print the live progress line.
    pub progress: bool,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// Changes read from the source by this process.
    pub rows_in: u64,
    /// Changes written to the target by this process.
    pub rows_out: u64,
    /// Rows sent to the dirty-data archive by this process.
    pub dirty: u64,
    /// The last committed epoch.
    pub epoch: u64,
    /// Whether the sources were exhausted (bounded run finished).
    pub finished: bool,
    /// Where the output is.
    pub output: String,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Per target table (`db.table`) rows written by this process.
    pub tables: Vec<(String, u64)>,
}

/// Engine errors: everything that stops a run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The restore point cannot be used as asked.
    #[error("{0}")]
    Restore(String),
    /// The source cannot be read.
    #[error("source: {0}")]
    Source(String),
    /// timely could not start (bad cluster addresses, ports in use).
    #[error("cannot start the workers: {0}")]
    Start(String),
    /// A worker failed.
    #[error("worker failed: {0}")]
    Worker(String),
    /// The target cannot be written (at the start of a run).
    #[error("target: {0}")]
    Target(String),
    /// The dirty-data archive's location cannot be read at the start of a run (no such bucket,
    /// bad credentials, unreachable endpoint).
    #[error("the dirty-data archive at {location} cannot be used ({reason}): check errors.dirty_archive and the plan's s3 section")]
    Archive {
        /// The location (`errors.dirty_archive`).
        location: String,
        /// The store's error.
        reason: String,
    },
    /// The run failed more often than `errors.max_restarts` allows.
    #[error("the task failed after {restarts} restarts (errors.max_restarts); last error: {last}")]
    Failed {
        /// Restarts made.
        restarts: u32,
        /// The last error.
        last: String,
    },
}

/// Where the run resumes: the newest manifest and the recorded boundaries after it.
#[derive(Debug, Clone)]
pub(crate) struct Restore {
    pub manifest: Manifest,
    pub boundaries: Vec<Boundary>,
}

impl Restore {
    fn load(state: &TaskState, peers: usize, exactly_once: bool) -> Result<Restore, EngineError> {
        let manifest = state.latest_manifest()?.unwrap_or_default();
        let mut boundaries = state.boundaries_after(manifest.epoch)?;
        if let Some(b) = boundaries.iter().find(|b| b.peers != peers) {
            if exactly_once {
                return Err(EngineError::Restore(format!(
                    "the last run stopped with {} workers in total and had epochs in flight; restart it once with \
                     {} workers so they are replayed exactly, then change the worker count",
                    b.peers, b.peers
                )));
            }
            boundaries.clear();
        }
        Ok(Restore { manifest, boundaries })
    }

    /// The highest epoch recorded before the restart.
    pub fn replay_upto(&self) -> u64 {
        self.boundaries.iter().map(|b| b.epoch).max().unwrap_or(self.manifest.epoch)
    }
}

fn output_description(plan: &Compiled) -> String {
    match &plan.plan.target {
        TargetSpec::Files(f) => format!("files under {}", f.path),
        TargetSpec::Null => "null (discarded)".into(),
        TargetSpec::Sql(t) => format!(
            "{} at {}",
            match t.dialect {
                crate::sinks::sql::encode::Dialect::Mysql => "MySQL-family database",
                crate::sinks::sql::encode::Dialect::Postgres => "PostgreSQL database",
            },
            t.addr
        ),
    }
}

fn now_micros() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
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
    let source = crate::plan::discover(&compiled.plan.source).map_err(|e| EngineError::Source(e.to_string()))?;
    let next = crate::plan::compile(compiled.plan.clone(), &source)
        .map_err(|e| EngineError::Source(format!("the plan with the new tables {}: {e}", rec.tables.join(", "))))?;
    Ok(Some(next))
}

/// Column renames per selected table, and per table the columns it still lacks after drops,
/// from the schema changes the target took in earlier runs.
type DdlHistory = (std::collections::HashMap<ferry_operators::TableId, Vec<(String, String)>>, Vec<Vec<String>>);

/// The schema changes the target took in earlier runs, as the writers and the transform
/// need them.
fn ddl_history(state: &TaskState, compiled: &Compiled) -> Result<DdlHistory, EngineError> {
    let applied = state.ddl_applied()?;
    let mut renames = std::collections::HashMap::new();
    let mut dropped = Vec::new();
    for t in 0..compiled.catalog.tables.len() {
        let name = compiled.catalog.get(t as _).name.to_string();
        let r = applied.renames(&name);
        if !r.is_empty() {
            renames.insert(t as ferry_operators::TableId, r);
        }
        // Only at-least-once rewrites rows of epochs before a DDL that ran (exactly-once
        // skips them), so only there must replayed rows not bring a dropped column back.
        let replays_rows = compiled.plan.raw.semantics == Semantics::AtLeastOnce;
        let follows = compiled.plan.raw.schema_changes.follows_drops();
        dropped.push(if replays_rows && follows { applied.dropped(&name) } else { Vec::new() });
    }
    Ok((renames, dropped))
}

/// Whether a restart may fix the error (not a bad restore point, not a bad cluster setup).
fn restartable(e: &EngineError) -> bool {
    !matches!(e, EngineError::Restore(_) | EngineError::Start(_) | EngineError::Target(_) | EngineError::Archive { .. })
}

/// Runs a compiled plan to completion (bounded sources) or until killed, restarting it from
/// its last checkpoint after a failure, up to the plan's `errors.max_restarts` times (F9.4),
/// with backoff 1 s, 2 s, 4 s … 30 s. The run's state (`running`, `restarting`, `finished`,
/// `failed`) is kept in `<task>/status.json`.
pub fn run(compiled: Compiled, opts: RunOptions) -> Result<RunSummary, EngineError> {
    let mut compiled = compiled;
    let max = compiled.plan.raw.errors.max_restarts;
    let state = TaskState::new(Store::open_local(&compiled.plan.raw.runtime.state)?, &compiled.plan.raw.task);
    probe_dirty_archive(&compiled.plan.raw, &state)?;
    let mut restarts: u32 = 0;
    let mut opts = opts;
    let mut status = RunStatus { state: "running".into(), ..Default::default() };
    loop {
        if opts.process == 0 && !opts.from_scratch {
            status.updated_micros = now_micros();
            state.write_status(&status)?;
        }
        // The epoch this run starts from: a new-tables record at or before it is an old one.
        let started_at = state.latest_manifest()?.map_or(0, |m| m.epoch);
        let result = run_once(compiled.clone(), opts.clone());
        if opts.from_scratch && opts.process == 0 {
            // The state was discarded by this attempt: a restart resumes, it does not discard again.
            opts.from_scratch = false;
        }
        match result {
            Ok(summary) => {
                // Only process 0 knows the run finished: the others ask the state store.
                if summary.finished || opts.process != 0 {
                    if let Some(next) = with_new_tables(&compiled, &state, started_at, opts.process != 0)? {
                        compiled = next;
                        continue;
                    }
                }
                status.state = if summary.finished { "finished" } else { "stopped" }.into();
                status.updated_micros = now_micros();
                if opts.process == 0 {
                    state.write_status(&status)?;
                }
                return Ok(summary);
            }
            Err(e) => {
                let msg = crate::secrets::redact(&e.to_string());
                status.last_error = Some(msg.clone());
                let allowed = max < 0 || (restarts as i64) < max as i64;
                if !restartable(&e) || !allowed {
                    status.state = "failed".into();
                    status.updated_micros = now_micros();
                    if opts.process == 0 {
                        let _ = state.write_status(&status);
                    }
                    if restartable(&e) && max != 0 {
                        return Err(EngineError::Failed { restarts, last: msg });
                    }
                    return Err(e);
                }
                restarts += 1;
                status.restarts = restarts;
                status.state = "restarting".into();
                status.updated_micros = now_micros();
                if opts.process == 0 {
                    let _ = state.write_status(&status);
                }
                let delay = Duration::from_secs(1u64 << (restarts - 1).min(5)).min(Duration::from_secs(30));
                tracing::warn!(
                    restart = restarts,
                    max_restarts = max,
                    error = %msg,
                    "the run failed; restarting from the last checkpoint in {}s",
                    delay.as_secs()
                );
                std::thread::sleep(delay);
            }
        }
    }
}

/// Where the task's dirty-data archive is kept (F9.3): `errors.dirty_archive` (a local
/// directory or `s3://bucket/prefix`), by default the state store; the archive's objects are
/// under `<task>/dirty/` there, replayed ones under `<task>/dirty-replayed/`.
pub fn dirty_archive(raw: &crate::plan::config::PlanFile, state: &TaskState) -> Result<TaskState, EngineError> {
    let Some(location) = &raw.errors.dirty_archive else {
        return Ok(state.clone());
    };
    let store = Store::open(location, &raw.s3).map_err(|e| EngineError::Archive {
        location: location.clone(),
        reason: crate::secrets::redact(&e.to_string()),
    })?;
    Ok(TaskState::new(store, &raw.task))
}

/// The archive's files, oldest first: `<task>/dirty/*.jsonl` (other objects, such as the
/// "folder" markers some S3 tools create, are not archive files).
pub fn archive_files(archive: &TaskState) -> Result<Vec<String>, EngineError> {
    let mut files = archive.store().list(&archive.path("dirty"))?;
    files.retain(|f| f.ends_with(".jsonl"));
    Ok(files)
}

/// Lists the dirty-data archive's location once before a task runs, so a bucket that does not
/// exist or refuses the credentials stops the task at once (not after its restarts); nothing
/// to check when the archive is the state store or dirty rows are dropped.
fn probe_dirty_archive(raw: &crate::plan::config::PlanFile, state: &TaskState) -> Result<(), EngineError> {
    let (Some(location), crate::plan::config::DirtyMode::Archive) = (&raw.errors.dirty_archive, raw.errors.dirty)
    else {
        return Ok(());
    };
    let archive = dirty_archive(raw, state)?;
    archive.store().list(&archive.path("dirty")).map_err(|e| EngineError::Archive {
        location: location.clone(),
        reason: crate::secrets::redact(&e.to_string()),
    })?;
    Ok(())
}

/// Runs a compiled plan once: to completion (bounded sources), until killed, or until it fails.
fn run_once(compiled: Compiled, opts: RunOptions) -> Result<RunSummary, EngineError> {
    let started = Instant::now();
    let raw = &compiled.plan.raw;
    let workers = opts.workers.unwrap_or(raw.runtime.workers).max(1);
    let store = Store::open_local(&raw.runtime.state)?;
    let state = TaskState::new(store, &raw.task);
    let dirty_state = dirty_archive(raw, &state)?;
    let out_store = match &compiled.plan.target {
        TargetSpec::Files(f) => Some(Store::open_local(&f.path)?),
        TargetSpec::Null | TargetSpec::Sql(_) => None,
    };
    if opts.process == 0 {
        if opts.from_scratch {
            let n = state.discard()?;
            tracing::info!(objects = n, "discarded the task's state");
            if raw.errors.dirty_archive.is_some() {
                // An archive kept elsewhere goes too: its rows belong to the discarded run (a
                // replay would land them on top of the new one's).
                let n = dirty_state.store().delete_prefix(&dirty_state.path("dirty"))?;
                tracing::info!(objects = n, "discarded the task's dirty-data archive");
            }
            if let Some(out) = &out_store {
                for t in &compiled.tables {
                    let dir = match &t.static_names {
                        Some((d, tb)) => format!("{d}/{tb}"),
                        None => continue,
                    };
                    out.delete_prefix(&dir)?;
                }
                out.delete_prefix(".staging")?;
            }
        }
        state.save_plan(&compiled.plan.text)?;
        if let TargetSpec::Sql(t) = &compiled.plan.target {
            // A task with no checkpoint and no epoch boundary has committed nothing: progress
            // rows of an earlier task of the same name (whose state is gone) must not skip
            // this one's epochs.
            let fresh = state.latest_manifest()?.is_none() && state.boundaries_after(0)?.is_empty();
            prepare_sql_target(t, &compiled, opts.from_scratch || fresh)?;
        }
    }
    let stops = Arc::new(TableStops::load(&state, &compiled.catalog)?);
    let (renames, dropped) = ddl_history(&state, &compiled)?;
    let mut compiled = compiled;
    compiled.ddl_dropped = dropped;
    let mysql = match &compiled.plan.source {
        SourceSpec::Mysql(cfg) => Some(prepare_mysql(cfg, &compiled, &state, opts.process)?),
        SourceSpec::Datagen(_) => None,
    };
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
    let metrics = Arc::new(Metrics::new(compiled.tables.len()));
    let plan = Arc::new(compiled);
    let run_id = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let summary = Arc::new(Mutex::new(RunSummary { output: output_description(&plan), ..Default::default() }));
    let failure: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let status =
        (opts.progress && opts.process == 0).then(|| dataflow::spawn_status_line(metrics.clone(), table_names.clone()));

    let guards = {
        let (plan, state, metrics, summary, failure) =
            (plan.clone(), state.clone(), metrics.clone(), summary.clone(), failure.clone());
        let keep_dirty = plan.plan.raw.errors.dirty == crate::plan::config::DirtyMode::Archive;
        let dirty_state = dirty_state.clone();
        timely::execute(config, move |worker| {
            let index = worker.index();
            let peers = worker.peers();
            let exactly_once = plan.plan.raw.semantics == Semantics::ExactlyOnce;
            let result = (|| -> Result<(), EngineError> {
                let restore = Restore::load(&state, peers, exactly_once)?;
                let dirty = DirtyArchive::new(dirty_state.clone(), index, run_id, keep_dirty);
                let writer: Box<dyn SinkWriter> = match (&plan.plan.target, &out_store) {
                    (TargetSpec::Sql(t), _) => Box::new(
                        SqlWriter::new(SqlContext {
                            plan: plan.clone(),
                            target: t.clone(),
                            worker: index,
                            dirty: dirty.clone(),
                            metrics: metrics.clone(),
                            stops: stops.clone(),
                            policy: plan.plan.raw.errors.write_error,
                            semantics: plan.plan.raw.semantics,
                            renames: renames.clone(),
                        })
                        .map_err(|e| EngineError::Worker(e.to_string()))?,
                    ),
                    (TargetSpec::Files(_), Some(out)) => Box::new(
                        FilesWriter::new(
                            plan.clone(),
                            out.clone(),
                            state.clone(),
                            FilesOptions {
                                worker: index,
                                run: run_id,
                                batch_rows: plan.plan.raw.runtime.batch_rows,
                                replay_upto: restore.replay_upto(),
                            },
                        )
                        .map_err(|e| EngineError::Worker(e.to_string()))?,
                    ),
                    _ => Box::new(NullWriter),
                };
                let skip_upto = writer.committed();
                let applier = match &plan.plan.target {
                    TargetSpec::Sql(t) if writer.takes_ddl() && index == 0 => Some(
                        dataflow::ddl::DdlApplier::new(plan.clone(), t.clone(), state.clone(), stops.clone())
                            .map_err(EngineError::Worker)?,
                    ),
                    _ => None,
                };
                let probe = ProbeHandle::new();
                let failure_flag = failure.clone();
                worker.dataflow::<u64, _, _>(|scope| {
                    let (changes, schema) = match &plan.plan.source {
                        SourceSpec::Datagen(cfg) => (
                            source::datagen(scope, plan.clone(), cfg.clone(), state.clone(), &restore, metrics.clone()),
                            timely::dataflow::operators::generic::operator::empty(scope),
                        ),
                        SourceSpec::Mysql(_) => dataflow::mysql::mysql_source(
                            scope,
                            plan.clone(),
                            mysql.clone().expect("prepared"),
                            state.clone(),
                            &restore,
                            metrics.clone(),
                        ),
                    };
                    let transformed = transform::transform(changes, plan.clone(), dirty.clone(), metrics.clone());
                    let to_apply = sink::sink(
                        transformed,
                        schema.broadcast(),
                        plan.clone(),
                        writer,
                        skip_upto,
                        dirty,
                        metrics.clone(),
                        failure_flag.clone(),
                        probe.clone(),
                    );
                    dataflow::ddl::ddl(to_apply, applier, failure_flag).probe_with(&probe);
                });
                let mut coordinator = (index == 0).then(|| Coordinator::new(state.clone(), &restore, peers, &plan));
                while worker.step_or_park(Some(Duration::from_millis(20))) {
                    if let Some(c) = coordinator.as_mut() {
                        c.poll(probe.with_frontier(|f| f.first().copied()))?;
                    }
                    if failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                        // Operators still hold capabilities: drop the dataflow, or timely
                        // would keep stepping it after this closure returns.
                        for id in worker.installed_dataflows() {
                            worker.drop_dataflow(id);
                        }
                        break;
                    }
                }
                if let Some(c) = coordinator.as_mut() {
                    if failure.lock().map(|f| f.is_none()).unwrap_or(false) {
                        c.poll(None)?;
                    }
                    let mut s = summary.lock().expect("summary");
                    s.epoch = c.manifest.epoch;
                    s.finished = c.manifest.finished;
                }
                Ok(())
            })();
            if let Err(e) = result {
                let mut f = failure.lock().unwrap_or_else(|e| e.into_inner());
                f.get_or_insert_with(|| e.to_string());
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
            let mut f = failure.lock().unwrap_or_else(|e| e.into_inner());
            f.get_or_insert(e);
        }
    }
    if let Some(f) = failure.lock().unwrap_or_else(|e| e.into_inner()).take() {
        return Err(EngineError::Worker(f));
    }
    let mut s = summary.lock().expect("summary").clone();
    s.rows_in = metrics.rows_in.load(Ordering::Relaxed);
    s.rows_out = metrics.rows_out.load(Ordering::Relaxed);
    s.dirty = metrics.dirty.load(Ordering::Relaxed);
    s.elapsed = started.elapsed();
    s.tables = table_names.into_iter().zip(metrics.per_table.iter().map(|c| c.load(Ordering::Relaxed))).collect();
    Ok(s)
}

/// Checks a database target before the workers start: it is reachable, the progress table
/// exists (created if missing), every table with a fixed target name exists (created when
/// missing, by the plan's `target_tables` strategy); a `--from-scratch`
/// run (or a task with no state yet) forgets the task's progress rows.
fn prepare_sql_target(
    t: &crate::sinks::sql::SqlTarget,
    plan: &Compiled,
    from_scratch: bool,
) -> Result<(), EngineError> {
    let task = &plan.plan.raw.task;
    crate::sinks::sql::writer::sink_runtime().block_on(async {
        let te = |e: crate::sinks::sql::conn::DbError| match e {
            crate::sinks::sql::conn::DbError::Transient(m) => EngineError::Worker(format!("target: {m}")),
            other => EngineError::Target(other.to_string()),
        };
        let mut db = t.connect().await.map_err(te)?;
        t.ensure_progress_table(&mut db).await.map_err(te)?;
        if from_scratch {
            t.forget(&mut db, task).await.map_err(te)?;
        }
        let missing = crate::catalog::create::ensure_on_run(plan, t, &mut db).await.map_err(te)?;
        if !missing.is_empty() {
            return Err(EngineError::Target(format!(
                "the target has no table {}: create {} first (`ferry create-tables PLAN`; the plan's \
                 `target_tables` strategy for {} is not `create` on run)",
                missing.join(", "),
                if missing.len() == 1 { "it" } else { "them" },
                if missing.len() == 1 { "it" } else { "them" }
            )));
        }
        Ok(())
    })
}

/// The snapshot's chunk plan as stored: chunks name their table by its index in `tables`.
#[derive(serde::Serialize, serde::Deserialize)]
struct ChunkPlan {
    /// The selected tables when the plan was made, `db.table`.
    tables: Vec<String>,
    /// The chunks.
    chunks: Vec<crate::connectors::mysql::snapshot::Chunk>,
}

/// Prepares a MySQL run: connection options, the snapshot's chunk plan (made once by process 0
/// and kept in the state store, so every process and every restart reads the same chunks),
/// the initial binlog position for `incremental` mode, and the stop position of bounded runs.
fn prepare_mysql(
    cfg: &crate::connectors::mysql::config::MysqlSourceConfig,
    plan: &Compiled,
    state: &TaskState,
    process: usize,
) -> Result<MysqlRun, EngineError> {
    use crate::connectors::mysql::binlog::{BinlogPos, StartFrom};
    use crate::connectors::mysql::config::StartFrom as From;
    use crate::connectors::mysql::{discover as d, snapshot};
    use crate::plan::config::ReadMode;
    let src = |e: d::SourceError| EngineError::Source(e.to_string());
    let opts = d::opts(cfg).map_err(src)?;
    let server_id = cfg.server_id_for(&plan.plan.raw.task);
    let chunks_path = state.path("source/chunks.json");
    let start_path = state.path("source/start.json");
    let full = plan.plan.raw.mode == ReadMode::FullIncremental && cfg.start.from == From::Default;
    let rt = io_runtime();
    let (chunks, initial, stop_at, weighed, bound_weights) = rt.block_on(async {
        let mut conn = d::connect(&opts).await.map_err(src)?;
        let stop_at = if cfg.bounded { Some(snapshot::current_position(&mut conn).await.map_err(src)?) } else { None };
        let mut chunks: Vec<snapshot::Chunk> = Vec::new();
        // The plan names its tables: a later start may select more or fewer (a table created
        // since), and chunks follow their table's place in the current catalog.
        // Chunks are found by id, so every chunk keeps its place; one of a table the plan no
        // longer selects is marked and never read. (A plan of an earlier version is a bare
        // list, made for the same catalog.)
        let read_chunks = |b: &[u8]| -> Result<Vec<snapshot::Chunk>, EngineError> {
            let bad = |e: serde_json::Error| EngineError::Restore(format!("{chunks_path}: {e}"));
            let saved: ChunkPlan = match serde_json::from_slice::<ChunkPlan>(b) {
                Ok(p) => p,
                Err(_) => ChunkPlan {
                    tables: plan.catalog.tables.iter().map(|t| t.name.to_string()).collect(),
                    chunks: serde_json::from_slice(b).map_err(bad)?,
                },
            };
            let now: std::collections::HashMap<String, u32> =
                plan.catalog.tables.iter().enumerate().map(|(i, t)| (t.name.to_string(), i as u32)).collect();
            Ok(saved
                .chunks
                .into_iter()
                .map(|mut c| {
                    let name = saved.tables.get(c.table as usize);
                    c.table = name.and_then(|n| now.get(n)).copied().unwrap_or(snapshot::UNSELECTED);
                    c
                })
                .collect())
        };
        if full {
            match state.store().get(&chunks_path)? {
                Some(b) => chunks = read_chunks(&b)?,
                None if process == 0 => {
                    for (t, schema) in plan.catalog.tables.iter().enumerate() {
                        let first = chunks.len() as u32;
                        chunks.extend(
                            snapshot::plan_table(&mut conn, t as u32, schema, &plan.charsets[t], cfg.chunk_rows, first)
                                .await
                                .map_err(src)?,
                        );
                    }
                    let saved = ChunkPlan {
                        tables: plan.catalog.tables.iter().map(|t| t.name.to_string()).collect(),
                        chunks: chunks.clone(),
                    };
                    state.store().put(&chunks_path, serde_json::to_vec(&saved).expect("chunks serialize"))?;
                }
                None => {
                    // Another process plans; wait for its plan.
                    let started = Instant::now();
                    loop {
                        if let Some(b) = state.store().get(&chunks_path)? {
                            chunks = read_chunks(&b)?;
                            break;
                        }
                        if started.elapsed() > Duration::from_secs(600) {
                            return Err(EngineError::Restore(
                                "process 0 did not write the snapshot's chunk plan within 10 minutes".into(),
                            ));
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }
        let initial: Option<StartFrom> = match state.store().get(&start_path)? {
            Some(b) => {
                Some(serde_json::from_slice(&b).map_err(|e| EngineError::Restore(format!("{start_path}: {e}")))?)
            }
            None => {
                let s = match cfg.start.from {
                    From::Default | From::Latest => {
                        Some(StartFrom::Position(snapshot::current_position(&mut conn).await.map_err(src)?))
                    }
                    From::Position => Some(StartFrom::Position(BinlogPos {
                        file: cfg.start.file.clone().unwrap_or_default(),
                        pos: cfg.start.position.unwrap_or(4),
                    })),
                    From::Gtid => Some(StartFrom::MariaGtid(cfg.start.gtid.clone().unwrap_or_default())),
                    From::Timestamp => {
                        let offset = crate::connectors::mysql::config::parse_offset(&cfg.time_zone)
                            .map_err(EngineError::Source)?;
                        let at = crate::connectors::mysql::start::parse_local_time(
                            cfg.start.timestamp.as_deref().unwrap_or(""),
                            offset,
                        )
                        .map_err(EngineError::Source)?;
                        // A probe connection with its own server id, apart from the stream's.
                        let p = crate::connectors::mysql::start::position_at(&opts, server_id.wrapping_add(1000), at)
                            .await
                            .map_err(src)?;
                        tracing::info!(position = %p, "start position for the timestamp");
                        Some(StartFrom::Position(p))
                    }
                };
                if process == 0 {
                    if let Some(s) = &s {
                        state.store().put(&start_path, serde_json::to_vec(s).expect("start serializes"))?;
                    }
                }
                s
            }
        };
        // Text keys in collations only the server can order: the sort keys of chunk bounds.
        let weighed = weighed_columns(plan);
        let mut bound_weights = std::collections::HashMap::new();
        for c in &chunks {
            let (cols, Some(lower)) = (&weighed[c.table as usize], &c.lower) else { continue };
            if cols.is_empty() {
                continue;
            }
            let key = plan.catalog.tables[c.table as usize].row_key();
            let values: Vec<_> = cols
                .iter()
                .filter_map(|wc| Some((lower.get(key.iter().position(|&k| k == wc.column)?)?, wc)))
                .collect();
            let w =
                snapshot::weights(&mut conn, &values).await.map_err(|e| src(d::SourceError::Server(e.to_string())))?;
            bound_weights.insert(c.id, w);
        }
        let _ = conn.disconnect().await;
        Ok::<_, EngineError>((chunks, initial, stop_at, weighed, bound_weights))
    })?;
    Ok(MysqlRun {
        opts,
        server_id,
        chunks: Arc::new(chunks),
        charsets: Arc::new(plan.charsets.clone()),
        collations: Arc::new(plan.collations.clone()),
        weighed: Arc::new(weighed),
        bound_weights: Arc::new(bound_weights),
        initial,
        stop_at,
        heartbeat: Duration::from_millis(crate::plan::config::parse_duration_ms(&cfg.heartbeat).unwrap_or(1000)),
    })
}

/// Per selected table, its key columns whose order only the server knows (text in a collation
/// ferry does not reproduce), in key order. A table with such a column of unknown length in a
/// `PAD SPACE` collation gets none (its key order stays unknown: the safe fallback).
fn weighed_columns(plan: &Compiled) -> Vec<Vec<crate::connectors::mysql::snapshot::WeighedColumn>> {
    use crate::connectors::mysql::snapshot::WeighedColumn;
    use dataflow::mysql::{key_order, KeyOrder};
    let column = |t: usize, k: usize| -> Option<Option<WeighedColumn>> {
        let schema = &plan.catalog.tables[t];
        let collation = plan.collations.get(t)?.get(k)?.clone()?;
        if key_order(&schema.columns[k].ty, Some(&collation)) != Some(KeyOrder::Weight) {
            return Some(None);
        }
        let charset = plan.charsets.get(t)?.get(k)?.clone()?;
        // MariaDB's `*_nopad_*` and MySQL's `*_0900_*` collations do not pad.
        let lower = collation.to_ascii_lowercase();
        let width = if lower.contains("_nopad_") || lower.contains("_0900_") {
            None
        } else {
            match schema.columns[k].ty {
                ferry_operators::ColumnType::String { max_chars: Some(n), .. } => Some(n),
                _ => return None,
            }
        };
        Some(Some(WeighedColumn { column: k, charset, collation, width }))
    };
    plan.catalog
        .tables
        .iter()
        .enumerate()
        .map(|(t, schema)| {
            let cols: Option<Vec<Option<WeighedColumn>>> = schema.row_key().iter().map(|&k| column(t, k)).collect();
            cols.map(|c| c.into_iter().flatten().collect()).unwrap_or_default()
        })
        .collect()
}

/// Worker 0's checkpoint coordinator.
struct Coordinator {
    state: TaskState,
    manifest: Manifest,
    peers: usize,
    versions: std::collections::BTreeMap<String, u32>,
    last_frontier: Option<Option<u64>>,
    fault_delay: Option<Duration>,
}

impl Coordinator {
    fn new(state: TaskState, restore: &Restore, peers: usize, plan: &Compiled) -> Self {
        let versions = plan.catalog.tables.iter().map(|t| (t.name.to_string(), t.version)).collect();
        let fault_delay =
            std::env::var("FERRY_FAULT_MANIFEST_DELAY_MS").ok().and_then(|v| v.parse().ok()).map(Duration::from_millis);
        Coordinator { state, manifest: restore.manifest.clone(), peers, versions, last_frontier: None, fault_delay }
    }

    /// Called with the probe's frontier (`None`: empty, everything committed).
    fn poll(&mut self, frontier: Option<u64>) -> Result<(), EngineError> {
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
        let finished = frontier.is_none();
        if let Some(delay) = self.fault_delay {
            // Fault injection for crash tests: widen the window in which sinks have committed
            // epochs the newest manifest does not cover yet.
            std::thread::sleep(delay);
        }
        if epoch == self.manifest.epoch && offsets == self.manifest.offsets && finished == self.manifest.finished {
            return Ok(());
        }
        let m = Manifest {
            epoch,
            peers: self.peers,
            offsets,
            schema_versions: self.versions.clone(),
            finished,
            written_micros: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as i64),
        };
        self.state.write_manifest(&m)?;
        self.state.drop_boundaries_upto(epoch)?;
        tracing::debug!(epoch, "checkpoint written");
        self.manifest = m;
        Ok(())
    }
}

/// What `ferry dirty replay` did.
#[derive(Debug, Clone, Default)]
pub struct ReplaySummary {
    /// Archive files read (and moved to `dirty-replayed/`).
    pub files: usize,
    /// Rows read from them.
    pub rows: usize,
    /// Rows written to the target.
    pub written: u64,
    /// Rows that failed again (archived anew with their new reason).
    pub failed_again: u64,
    /// Tables whose `partial-stop` was lifted.
    pub unstopped: usize,
}

/// Re-applies the task's dirty-data archive to its database target (F9.3), after the cause
/// was fixed: rows refused by the transform go through the plan's transform again, rows
/// refused by the target are written again, in archive order (per key, source order). Rows
/// that fail again go to a new archive file with their new reason; the replayed files move
/// to `<task>/dirty-replayed/`, and every `partial-stop` of the task is lifted when no row
/// failed again. Run it while
/// the task is stopped: a stopped table's archived changes must land before its later ones.
pub fn replay_dirty(compiled: Compiled) -> Result<ReplaySummary, EngineError> {
    use ferry_operators::transform::Context;
    let raw = &compiled.plan.raw;
    let TargetSpec::Sql(target) = &compiled.plan.target else {
        return Err(EngineError::Target(
            "replay writes to database targets; a files or null target's archive is read with `ferry dirty show`"
                .into(),
        ));
    };
    let state = TaskState::new(Store::open_local(&raw.runtime.state)?, &raw.task);
    let archive = dirty_archive(raw, &state)?;
    let files = archive_files(&archive)?;
    let mut summary = ReplaySummary { files: files.len(), ..Default::default() };
    if files.is_empty() {
        return Ok(summary);
    }
    let run_id = now_micros() as u64 / 1000;
    let metrics = Arc::new(Metrics::new(compiled.tables.len()));
    let dirty = DirtyArchive::new(archive.clone(), 0, run_id, true);
    let plan = Arc::new(compiled.clone());
    let mut writer = SqlWriter::new(SqlContext {
        plan: plan.clone(),
        target: target.clone(),
        worker: 0,
        dirty: dirty.clone(),
        metrics: metrics.clone(),
        stops: Arc::new(TableStops::default()),
        policy: crate::plan::config::WriteErrorPolicy::Ignore,
        semantics: Semantics::AtLeastOnce,
        renames: ddl_history(&state, &compiled)?.0,
    })
    .map_err(|e| EngineError::Worker(e.to_string()))?;
    let cx = Context { datasource: &plan.plan.source_name, now_micros: now_micros() };
    let (mut out, mut failed) = (Vec::new(), Vec::new());
    let write = |writer: &mut SqlWriter, c: ferry_operators::Change| match writer.write(1, c.table, &c) {
        Ok(()) => Ok(()),
        Err(crate::sinks::SinkError::Definite(reason)) => {
            metrics.dirty.fetch_add(1, Ordering::Relaxed);
            dirty.record("sink", &plan.catalog.get(c.table).name.to_string(), &c, &reason);
            Ok(())
        }
        Err(e) => Err(EngineError::Worker(e.to_string())),
    };
    for f in &files {
        let data = archive.store().get(f)?.unwrap_or_default();
        for (n, line) in String::from_utf8_lossy(&data).lines().enumerate() {
            let bad = |why: String| EngineError::Restore(format!("{f}:{}: {why}", n + 1));
            let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
            let table = v["table"].as_str().unwrap_or_default();
            let Some(id) = plan.catalog.tables.iter().position(|t| t.name.to_string() == table) else {
                return Err(bad(format!("table {table} is not selected by the plan any more")));
            };
            let mut c: ferry_operators::Change =
                serde_json::from_value(v["change"].clone()).map_err(|e| bad(format!("no replayable change: {e}")))?;
            c.table = id as ferry_operators::TableId;
            summary.rows += 1;
            if v["stage"].as_str() == Some("transform") {
                let schema = c.schema.clone();
                let source = schema.as_deref().unwrap_or(plan.catalog.get(c.table));
                plan.table(c.table).transform.apply(c, source, &cx, &mut out, &mut failed);
                for (e, c) in failed.drain(..) {
                    metrics.dirty.fetch_add(1, Ordering::Relaxed);
                    dirty.record("transform", table, &c, &e.to_string());
                }
                for c in out.drain(..) {
                    write(&mut writer, c)?;
                }
            } else {
                write(&mut writer, c)?;
            }
        }
    }
    writer.commit(1).map_err(|e| EngineError::Worker(e.to_string()))?;
    drop(writer);
    dirty.flush()?;
    for f in &files {
        let to = f.replacen("/dirty/", "/dirty-replayed/", 1);
        archive.store().rename(f, &to)?;
    }
    summary.failed_again = metrics.dirty.load(Ordering::Relaxed);
    // A stop stays while rows of the table failed again: its later changes must keep waiting
    // behind them in the archive.
    if summary.failed_again == 0 {
        summary.unstopped = TableStops::clear(&state)?;
    }
    summary.written = summary.rows as u64 - summary.failed_again.min(summary.rows as u64);
    Ok(summary)
}
