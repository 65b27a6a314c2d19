//! `ferry dirty replay`: the dirty-data archive re-applied to a database target.

use super::{archive_files, ddl_history, dirty_archive, EngineError};
use crate::connector::{SinkError, SinkWriter, TableStops, WriterCtx};
use crate::plan::config::Semantics;
use crate::plan::Compiled;
use crate::runtime::{now_micros, DirtyArchive, Metrics, TaskError};
use crate::state::TaskState;
use std::sync::atomic::Ordering;
use std::sync::Arc;

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
    let settings = &compiled.plan.settings;
    let sink = crate::connectors::registry()
        .sink(&compiled.plan.target.kind)
        .expect("the plan's target was parsed by its connector");
    if !sink.replays_dirty() {
        return Err(EngineError::Target(
            "replay writes to database targets; a files or null target's archive is read with `ferry dirty show`"
                .into(),
        ));
    };
    let state = TaskState::new(settings.state_store()?, &settings.task);
    let archive = dirty_archive(settings, &state)?;
    let files = archive_files(&archive)?;
    let mut summary = ReplaySummary { files: files.len(), ..Default::default() };
    if files.is_empty() {
        return Ok(summary);
    }
    let run_id = now_micros() as u64 / 1000;
    let metrics = Arc::new(Metrics::new(compiled.tables.len()));
    let dirty = DirtyArchive::new(archive.clone(), 0, run_id, true);
    let plan = Arc::new(compiled.clone());
    let mut writer = sink.writer(&WriterCtx {
        plan: plan.clone(),
        worker: 0,
        run: run_id,
        state: state.clone(),
        dirty: dirty.clone(),
        metrics: metrics.clone(),
        stops: Arc::new(TableStops::default()),
        policy: crate::plan::config::WriteErrorPolicy::Ignore,
        semantics: Semantics::AtLeastOnce,
        renames: ddl_history(&state, &compiled)?.0,
        replay_upto: 0,
        creating: None,
    })?;
    let cx = Context { datasource: &plan.plan.source_name, now_micros: now_micros() };
    let (mut out, mut failed) = (Vec::new(), Vec::new());
    let write = |writer: &mut Box<dyn SinkWriter>, c: ferry_operators::Change| match writer.write(1, c.table, &c) {
        Ok(()) => Ok(()),
        Err(SinkError::Definite(reason)) => {
            metrics.dirty.fetch_add(1, Ordering::Relaxed);
            dirty.record("sink", &plan.catalog.get(c.table).name.to_string(), &c, &reason);
            Ok(())
        }
        Err(e) => Err(EngineError::Run(TaskError::transient(e))),
    };
    for f in &files {
        let data = archive.store().get(f)?.unwrap_or_default();
        for (n, line) in String::from_utf8_lossy(&data).lines().enumerate() {
            let bad = |why: String| EngineError::Restore(format!("{f}:{}: {why}", n + 1));
            let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
            if v.get("change").is_none() && v.get("input").is_some() {
                // Source input that was no change (a Kafka message that is not JSON): shown
                // by `ferry dirty show`, nothing to write.
                continue;
            }
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
    writer.commit(1).map_err(TaskError::transient)?;
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
