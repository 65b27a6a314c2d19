//! Preparing a MySQL run, before the workers start: connection options, the snapshot's chunk
//! plan (made once by process 0 and kept in `<task>/source/chunks.json`, so every process and
//! every restart reads the same chunks), the initial binlog position for `incremental` mode
//! (`<task>/source/start.json`), the stop position of bounded runs, and the server's sort keys of
//! chunk bounds whose key order only the server knows.

use super::binlog::{BinlogPos, StartFrom};
use super::config::{Handoff, MysqlSourceConfig, StartFrom as From};
use super::run::MysqlRun;
use super::snapshot::WeighedColumn;
use super::{discover as d, snapshot};
use crate::plan::config::ReadMode;
use crate::plan::Compiled;
use crate::runtime::{io_runtime, TaskError};
use crate::state::TaskState;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The snapshot's chunk plan as stored: chunks name their table by its index in `tables`.
#[derive(serde::Serialize, serde::Deserialize)]
struct ChunkPlan {
    /// The selected tables when the plan was made, `db.table`.
    tables: Vec<String>,
    /// The chunks.
    chunks: Vec<snapshot::Chunk>,
    /// The handoff the chunks were planned for (absent in plans made before there was a
    /// choice: the server snapshot). A snapshot finishes with the handoff it started with.
    #[serde(default)]
    handoff: Option<Handoff>,
}

/// Prepares a MySQL run: connection options, the snapshot's chunk plan (made once by process 0
/// and kept in the state store, so every process and every restart reads the same chunks),
/// the initial binlog position for `incremental` mode, and the stop position of bounded runs.
pub fn prepare(
    cfg: &MysqlSourceConfig,
    plan: &Compiled,
    state: &TaskState,
    process: usize,
) -> Result<MysqlRun, TaskError> {
    let src = |e: d::SourceError| {
        if e.is_transient() {
            TaskError::transient(format!("source: {e}"))
        } else {
            TaskError::definite(format!("source: {e}"))
        }
    };
    let sto = |e: crate::store::StoreError| TaskError::transient(format!("state store: {e}"));
    let opts = d::opts(cfg).map_err(src)?;
    let server_id = cfg.server_id_for(&plan.plan.settings.task);
    let chunks_path = state.path("source/chunks.json");
    let start_path = state.path("source/start.json");
    let full = plan.plan.settings.mode == ReadMode::FullIncremental && cfg.start.from == From::Default;
    let rt = io_runtime();
    let weighed = weighed_columns(plan);
    let (chunks, initial, stop_at, bound_weights, handoff, watermark_start) = rt.block_on(async {
        let mut conn = d::connect(&opts).await.map_err(src)?;
        let version: Option<String> =
            mysql_async::prelude::Queryable::query_first(&mut conn, "SELECT VERSION()").await.unwrap_or_default();
        let mariadb = version.unwrap_or_default().to_ascii_lowercase().contains("mariadb");
        let mut handoff = match cfg.handoff {
            Handoff::Auto if mariadb => Handoff::ServerSnapshot,
            Handoff::Auto => Handoff::Watermark,
            h => h,
        };
        // Where the binlog stands before the chunk plan: the watermark handoff's first windows
        // start here.
        let prepared_at = (Instant::now(), snapshot::current_position(&mut conn).await.map_err(src)?);
        let stop_at = cfg.bounded.then(|| prepared_at.1.clone());
        let mut chunks: Vec<snapshot::Chunk> = Vec::new();
        // The plan names its tables: a later start may select more or fewer (a table created
        // since), and chunks follow their table's place in the current catalog.
        // Chunks are found by id, so every chunk keeps its place; one of a table the plan no
        // longer selects is marked and never read. (A plan of an earlier version is a bare
        // list, made for the same catalog.)
        let read_chunks = |b: &[u8]| -> Result<(Vec<snapshot::Chunk>, Handoff), TaskError> {
            let bad = |e: serde_json::Error| TaskError::definite(format!("{chunks_path}: {e}"));
            let saved: ChunkPlan = match serde_json::from_slice::<ChunkPlan>(b) {
                Ok(p) => p,
                Err(_) => ChunkPlan {
                    tables: plan.catalog.tables.iter().map(|t| t.name.to_string()).collect(),
                    chunks: serde_json::from_slice(b).map_err(bad)?,
                    handoff: None,
                },
            };
            let planned = saved.handoff.unwrap_or(Handoff::ServerSnapshot);
            let now: std::collections::HashMap<String, u32> =
                plan.catalog.tables.iter().enumerate().map(|(i, t)| (t.name.to_string(), i as u32)).collect();
            let chunks = saved
                .chunks
                .into_iter()
                .map(|mut c| {
                    let name = saved.tables.get(c.table as usize);
                    c.table = name.and_then(|n| now.get(n)).copied().unwrap_or(snapshot::UNSELECTED);
                    c
                })
                .collect();
            Ok((chunks, planned))
        };
        let planned_with = |planned: Handoff| {
            if planned != handoff {
                tracing::info!(
                    planned = ?planned,
                    configured = ?handoff,
                    "the snapshot continues with the handoff it started with"
                );
            }
            planned
        };
        if full {
            match state.store().get(&chunks_path).map_err(sto)? {
                Some(b) => {
                    let (c, h) = read_chunks(&b)?;
                    chunks = c;
                    handoff = planned_with(h);
                }
                None if process == 0 => {
                    // The first probe of every keyed table that needs one, many per round trip.
                    let keyed: Vec<usize> = (0..plan.catalog.tables.len())
                        .filter(|&t| {
                            plan.catalog.tables[t].has_key()
                                && (handoff != Handoff::Watermark || key_order_known(plan, t, &weighed[t]))
                        })
                        .collect();
                    // Tables the statistics put well under a chunk are one chunk, unprobed.
                    let schemas: Vec<&ferry_operators::TableSchema> =
                        keyed.iter().map(|&t| &plan.catalog.tables[t]).collect();
                    let small = snapshot::estimated_small(&mut conn, &schemas, cfg.chunk_rows).await.map_err(src)?;
                    let mut unprobed = Vec::new();
                    let mut probed = Vec::new();
                    for (t, is_small) in keyed.into_iter().zip(small) {
                        if is_small {
                            unprobed.push(t);
                        } else {
                            probed.push(t);
                        }
                    }
                    let probe_of: Vec<(&ferry_operators::TableSchema, &[Option<String>])> =
                        probed.iter().map(|&t| (&plan.catalog.tables[t], plan.charsets[t].as_slice())).collect();
                    let mut firsts: std::collections::HashMap<usize, Option<Vec<ferry_operators::Value>>> = probed
                        .iter()
                        .copied()
                        .zip(snapshot::first_probes(&mut conn, &probe_of, cfg.chunk_rows).await.map_err(src)?)
                        .chain(unprobed.into_iter().map(|t| (t, None)))
                        .collect();
                    for (t, schema) in plan.catalog.tables.iter().enumerate() {
                        let first = chunks.len() as u32;
                        if handoff == Handoff::Watermark && !key_order_known(plan, t, &weighed[t]) {
                            // The watermark merge places keys in chunks by their order: a key
                            // whose order ferry cannot reproduce is read as one chunk.
                            chunks.push(snapshot::Chunk { id: first, table: t as u32, lower: None, upper: None });
                            continue;
                        }
                        chunks.extend(
                            snapshot::plan_table(
                                &mut conn,
                                t as u32,
                                schema,
                                &plan.charsets[t],
                                cfg.chunk_rows,
                                first,
                                firsts.remove(&t),
                            )
                            .await
                            .map_err(src)?,
                        );
                    }
                    let saved = ChunkPlan {
                        tables: plan.catalog.tables.iter().map(|t| t.name.to_string()).collect(),
                        chunks: chunks.clone(),
                        handoff: Some(handoff),
                    };
                    state
                        .store()
                        .put(&chunks_path, serde_json::to_vec(&saved).expect("chunks serialize"))
                        .map_err(sto)?;
                }
                None => {
                    // Another process plans; wait for its plan.
                    let started = Instant::now();
                    loop {
                        if let Some(b) = state.store().get(&chunks_path).map_err(sto)? {
                            let (c, h) = read_chunks(&b)?;
                            chunks = c;
                            handoff = planned_with(h);
                            break;
                        }
                        if started.elapsed() > Duration::from_secs(600) {
                            return Err(TaskError::definite(
                                "process 0 did not write the snapshot's chunk plan within 10 minutes",
                            ));
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }
        let initial: Option<StartFrom> = match state.store().get(&start_path).map_err(sto)? {
            Some(b) => Some(serde_json::from_slice(&b).map_err(|e| TaskError::definite(format!("{start_path}: {e}")))?),
            None => {
                let s = match cfg.start.from {
                    From::Default | From::Latest => {
                        Some(StartFrom::Position(snapshot::current_position(&mut conn).await.map_err(src)?))
                    }
                    From::Position => Some(StartFrom::Position(BinlogPos {
                        file: cfg.start.file.clone().unwrap_or_default(),
                        pos: cfg.start.position.unwrap_or(4),
                    })),
                    From::Gtid => {
                        // MySQL GTID sets name UUIDs (`uuid:1-5`); MariaDB positions are `d-s-n`.
                        let g = cfg.start.gtid.clone().unwrap_or_default();
                        Some(if g.contains(':') { StartFrom::MysqlGtid(g) } else { StartFrom::MariaGtid(g) })
                    }
                    From::Timestamp => {
                        let offset = super::config::parse_offset(&cfg.time_zone).map_err(TaskError::definite)?;
                        let at = super::start::parse_local_time(cfg.start.timestamp.as_deref().unwrap_or(""), offset)
                            .map_err(TaskError::definite)?;
                        // A probe connection with its own server id, apart from the stream's.
                        let p =
                            super::start::position_at(&opts, server_id.wrapping_add(1000), at).await.map_err(src)?;
                        tracing::info!(position = %p, "start position for the timestamp");
                        Some(StartFrom::Position(p))
                    }
                };
                if process == 0 {
                    if let Some(s) = &s {
                        state
                            .store()
                            .put(&start_path, serde_json::to_vec(s).expect("start serializes"))
                            .map_err(sto)?;
                    }
                }
                s
            }
        };
        if handoff == Handoff::ServerSnapshot && !mariadb && !chunks.is_empty() {
            return Err(TaskError::definite(
                "source.handoff: server-snapshot needs a MariaDB server (binlog_snapshot_file/position); \
                 this server is MySQL: use `handoff: watermark` (or `auto`)",
            ));
        }
        // Text keys in collations only the server can order: the sort keys of chunk bounds.
        let mut bound_weights = std::collections::HashMap::new();
        for c in &chunks {
            let (Some(cols), Some(lower)) = (weighed.get(c.table as usize), &c.lower) else { continue };
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
        let watermark_start = (handoff == Handoff::Watermark).then_some(prepared_at);
        Ok::<_, TaskError>((chunks, initial, stop_at, bound_weights, handoff, watermark_start))
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
        handoff,
        watermark_start,
        watermark_lookback: Duration::from_millis(
            crate::plan::config::parse_duration_ms(&cfg.watermark_lookback).unwrap_or(1000),
        ),
        heartbeat: Duration::from_millis(crate::plan::config::parse_duration_ms(&cfg.heartbeat).unwrap_or(1000)),
    })
}

/// Whether every key column of table `t` orders in a way the handoff reproduces (a text key in
/// a collation only the server orders needs its sort keys, `weighed`).
fn key_order_known(plan: &Compiled, t: usize, weighed: &[WeighedColumn]) -> bool {
    use super::handoff::{key_order, KeyOrder};
    let schema = &plan.catalog.tables[t];
    let key = schema.row_key();
    !key.is_empty()
        && key.iter().all(|&k| {
            let collation = plan.collations.get(t).and_then(|c| c.get(k)).and_then(|c| c.as_deref());
            match key_order(&schema.columns[k].ty, collation) {
                Some(KeyOrder::Weight) => weighed.iter().any(|w| w.column == k),
                o => o.is_some(),
            }
        })
}

/// Per selected table, its key columns whose order only the server knows (text in a collation
/// ferry does not reproduce), in key order. A table with such a column of unknown length in a
/// `PAD SPACE` collation gets none (its key order stays unknown: the safe fallback).
fn weighed_columns(plan: &Compiled) -> Vec<Vec<snapshot::WeighedColumn>> {
    use super::handoff::{key_order, KeyOrder};
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
