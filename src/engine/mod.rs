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
//! manifest of every epoch the frontier passes (see [`crate::checkpoint`]). The run ends when
//! every source is exhausted and its last epoch is committed, or at a savepoint stop.
//!
//! - [`task`]: the task's lifecycle (start, restarts with backoff, stop, status).
//! - `run`: one run: preparation, the dataflow on every worker, the worker loop.
//! - `replay`: `ferry dirty replay`.

pub(crate) mod dataflow;
mod replay;
mod run;
mod task;

pub use replay::{replay_dirty, ReplaySummary};
pub use task::{run, Task, TaskHandle};

use crate::plan::config::Semantics;
use crate::plan::{Compiled, TargetSpec};
use crate::runtime::{io_runtime, TaskError};
use crate::state::{StateError, TaskState};
use crate::store::Store;
use dataflow::mysql::MysqlRun;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// The run failed: transient (the task restarts) or definite (it stops).
    #[error("{0}")]
    Run(#[from] TaskError),
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

pub(crate) fn output_description(plan: &Compiled) -> String {
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

/// Column renames per selected table, and per table the columns it still lacks after drops,
/// from the schema changes the target took in earlier runs.
type DdlHistory = (std::collections::HashMap<ferry_operators::TableId, Vec<(String, String)>>, Vec<Vec<String>>);

/// The schema changes the target took in earlier runs, as the writers and the transform
/// need them.
pub(crate) fn ddl_history(state: &TaskState, compiled: &Compiled) -> Result<DdlHistory, EngineError> {
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
pub(crate) fn probe_dirty_archive(raw: &crate::plan::config::PlanFile, state: &TaskState) -> Result<(), EngineError> {
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
pub(crate) fn prepare_mysql(
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
