//! The binlog operator (worker 0): follows the snapshot's frontier while it runs, then reads
//! the binlog from the lowest chunk position, applies the handoff rule, follows schema changes
//! from the table maps and DDL statements, and closes its epochs at commits, heartbeats and DDL.

use super::binlog::{BinlogEvent, BinlogPos, BinlogReader, StartFrom};
use super::handoff::{build_index, pos_key, ChunkIndex, ImageWeights, PosKey};
use super::run::{binlog_failure, offset_pos, Done, EventMsg, MysqlRun};
use super::snapshot::{image_weights, WeighedColumn};
use crate::checkpoint::Next;
use crate::connector::SourceCtx;
use crate::runtime::{io_runtime, TaskError};
use ferry_operators::{Change, Op, Position, SchemaChangeKind, SchemaEvent, TableId};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::{Scope, StreamVec};

/// Events one activation of the stream operator handles at most.
const BUDGET: usize = 4096;

pub(super) fn binlog<'s>(
    scope: Scope<'s, u64>,
    done: StreamVec<'s, u64, Done>,
    cx: &SourceCtx,
    run: MysqlRun,
) -> (StreamVec<'s, u64, Change>, StreamVec<'s, u64, SchemaEvent>) {
    let index = scope.index();
    let peers = scope.peers();
    let (plan, state, metrics, failure) = (cx.plan.clone(), cx.state.clone(), cx.metrics.clone(), cx.failure.clone());
    // The binlog is partition 0, read by worker 0.
    let mut epochs = cx.epochs(0, peers).for_partitions(|p| p == 0);
    let interval = Duration::from_millis(plan.plan.checkpoint_ms);
    let resume: Option<BinlogPos> = cx.restore.manifest.offsets.get(&0).and_then(offset_pos);
    let tables: HashMap<(String, String), TableId> = plan.catalog.ids_by_db_table();
    // The selected tables' names in lower case, to tell which statements leave them alone.
    let folded: std::collections::HashSet<(String, String)> =
        tables.keys().map(|(d, t)| (d.to_lowercase(), t.to_lowercase())).collect();
    // `operations: {skip: [ddl]}` keeps schema events from the sinks (they still drive renames).
    let deliver_ddl = plan.plan.settings.delivers_ddl();
    let mut builder = OperatorBuilder::new("MysqlBinlog".into(), scope);
    let info = builder.operator_info();
    let mut input = builder.new_input(done, Exchange::new(|_| 0u64));
    let (out_rows, rows) = builder.new_output::<Vec<Change>>();
    let (out_schema, schema_events) = builder.new_output::<Vec<SchemaEvent>>();
    let mut out_rows: OutputBuilder<u64, CapacityContainerBuilder<Vec<Change>>> = OutputBuilder::from(out_rows);
    let mut out_schema: OutputBuilder<u64, CapacityContainerBuilder<Vec<SchemaEvent>>> =
        OutputBuilder::from(out_schema);
    builder.build(
        move |mut caps| {
            let activator = scope.worker().sync_activator_for(info.address.to_vec());
            // The schema output's capability moves with the rows' one.
            let mut cap_schema = caps.pop().filter(|_| index == 0);
            let mut cap = caps.pop().filter(|_| index == 0);
            let mut last_snapshot_epoch = 0u64;
            let mut chunk_positions: Vec<(u32, BinlogPos)> = Vec::new();
            let mut rx: Option<Receiver<Vec<EventMsg>>> = None;
            // Events received in a batch but not yet handled (a batch may span an epoch end).
            let mut queued: std::vec::IntoIter<EventMsg> = Vec::new().into_iter();
            let mut failed = false;
            let mut gtid: Option<String> = None;
            let mut evolved: HashMap<TableId, Arc<ferry_operators::TableSchema>> = HashMap::new();
            // Renamed columns per table: current name → the name the plan knows.
            let mut aliases: HashMap<TableId, HashMap<String, String>> = HashMap::new();
            let mut deadline = Instant::now() + interval;
            let mut txn_start: Option<BinlogPos> = None;
            let mut index_by_table: Vec<ChunkIndex> = Vec::new();
            move |frontiers| {
                let frontier = &frontiers[0];
                input.for_each(|_cap, data| {
                    for (e, ps) in data.drain(..) {
                        last_snapshot_epoch = last_snapshot_epoch.max(e);
                        chunk_positions.extend(ps);
                    }
                });
                let (Some(c), Some(cs)) = (cap.as_mut(), cap_schema.as_mut()) else { return };
                if failed {
                    return;
                }
                if rx.is_none() {
                    // Follow the snapshot so checkpoints advance while it runs.
                    if let Some(f) = frontier.frontier().first() {
                        if f > c.time() {
                            c.downgrade(f);
                            cs.downgrade(f);
                        }
                        return;
                    }
                    if epochs.stop_due() {
                        // Stopped at a savepoint before the binlog started: the next run starts
                        // it (or finishes the snapshot first).
                        epochs.end_unstarted();
                        cap = None;
                        cap_schema = None;
                        return;
                    }
                    // Every snapshot worker is done: start in an epoch after all their epochs.
                    let first_recorded = epochs.to_replay().next().map(|b| b.epoch);
                    let next = match crate::connector::snapshot::stream_start_epoch(last_snapshot_epoch, *c.time(), first_recorded) {
                        Ok(n) => n,
                        Err(e) => {
                            failed = true;
                            failure.report(e);
                            return;
                        }
                    };
                    c.downgrade(&next);
                    cs.downgrade(&next);
                    index_by_table =
                        build_index(&plan, &run.chunks, &chunk_positions, &run.collations, &run.bound_weights);
                    let from = match (&resume, chunk_positions.iter().min_by(|a, b| a.1.cmp(&b.1))) {
                        (Some(p), _) => StartFrom::Position(p.clone()),
                        (None, Some((_, p))) => StartFrom::Position(p.clone()),
                        (None, None) => match &run.initial {
                            Some(s) => s.clone(),
                            None => {
                                // Nothing to stream from (a snapshot of no rows and no start): done.
                                cap = None;
                                cap_schema = None;
                                return;
                            }
                        },
                    };
                    if let StartFrom::Position(p) = &from {
                        txn_start = Some(p.clone());
                    }
                    tracing::debug!(epoch = next, last_snapshot_epoch, from = ?from, "the binlog starts");
                    let (tx, r) = sync_channel(16);
                    rx = Some(r);
                    let opts = run.opts.clone();
                    let server_id = run.server_id;
                let heartbeat = run.heartbeat;
                    let act = activator.clone();
                    let hints: Vec<(String, String, Vec<ferry_operators::Column>)> = plan
                        .catalog
                        .tables
                        .iter()
                        .map(|t| (t.name.database.clone(), t.name.table.clone(), t.columns.clone()))
                        .collect();
                    let selected: std::collections::HashSet<(String, String)> = tables.keys().cloned().collect();
                    // Tables whose rows in the snapshot window need the server's sort keys,
                    // and where that window ends.
                    let weigh: HashMap<(String, String), Vec<WeighedColumn>> = plan
                        .catalog
                        .tables
                        .iter()
                        .enumerate()
                        .filter(|(t, _)| !run.weighed[*t].is_empty() && index_by_table[*t].ranges.is_some())
                        .map(|(t, s)| ((s.name.database.clone(), s.name.table.clone()), run.weighed[t].clone()))
                        .collect();
                    let window_end: PosKey = index_by_table.iter().map(|i| i.max_pos).max().unwrap_or((0, 0));
                    let mut io_start: PosKey = txn_start.as_ref().map(pos_key).unwrap_or((0, 0));
                    let weigh_opts = run.opts.clone();
                    io_runtime().spawn(async move {
                        let mut weigh_conn: Option<mysql_async::Conn> = None;
                        let mut reader = match BinlogReader::connect_with_heartbeat(opts, server_id, from, heartbeat).await {
                            Ok(mut r) => {
                                // Discovery knows what the binlog does not say (MariaDB JSON, INET).
                                for (db, t, cols) in hints {
                                    r.set_schema(&db, &t, cols);
                                }
                                r.set_table_filter(move |db, t| selected.contains(&(db.to_string(), t.to_string())));
                                r
                            }
                            Err(e) => {
                                let _ = tx.send(vec![Err(binlog_failure(e))]);
                                let _ = act.activate();
                                return;
                            }
                        };
                        let mut last_names: HashMap<(String, String), Vec<String>> = HashMap::new();
                        // Events go in batches, one activation each: a batch ends at every
                        // event that is not a row change (a commit, DDL, heartbeat, rotation,
                        // error), so nothing waits in it while the source is idle, or after
                        // BATCH events inside a big transaction.
                        const BATCH: usize = 64;
                        let mut batch = Vec::with_capacity(BATCH);
                        loop {
                            let ev = reader.next().await;
                            let stop = !matches!(ev, Ok(Some(_)));
                            // Sort keys of rows in the snapshot window whose key order only the
                            // server knows.
                            let mut row_weights = None;
                            if let Ok(Some(BinlogEvent::Rows { database, table, changes })) = &ev {
                                let key = (database.clone(), table.clone());
                                if let (Some(cols), true) = (weigh.get(&key), io_start < window_end) {
                                    match weigh_rows(&mut weigh_conn, &weigh_opts, cols, changes).await {
                                        Ok(w) => row_weights = Some(w),
                                        Err(e) => {
                                            let why = format!("binlog: sort keys of {database}.{table}: {e}");
                                            let _ = tx.send(vec![Err(TaskError::transient(why))]);
                                            let _ = act.activate();
                                            return;
                                        }
                                    }
                                }
                            }
                            if let Ok(Some(next)) = ev.as_ref().map(|e| e.as_ref().and_then(BinlogEvent::next_position)) {
                                io_start = pos_key(next);
                            }
                            let msg = match ev {
                                Ok(Some(e)) => {
                                    // The GTID position after a transaction, for the checkpoint.
                                    let g = matches!(e, BinlogEvent::Commit { .. }).then(|| reader.gtid_position()).flatten();
                                    // Column names from the table map, sent when they change.
                                    let names = match &e {
                                        BinlogEvent::Rows { database, table, .. } => {
                                            let key = (database.clone(), table.clone());
                                            match reader.columns(database, table) {
                                                Some(n) if last_names.get(&key) != Some(&n) => {
                                                    last_names.insert(key, n.clone());
                                                    Some(n)
                                                }
                                                _ => None,
                                            }
                                        }
                                        _ => None,
                                    };
                                    Ok((e, reader.event_time(), g, names, row_weights))
                                }
                                // The server closed the stream (shut down, or the
                                // connection was killed): start again from the checkpoint.
                                Ok(None) => Err(TaskError::transient("binlog: the server ended the binlog stream")),
                                Err(e) => Err(binlog_failure(e)),
                            };
                            let boundary = msg.as_ref().map_or(true, |m| m.0.next_position().is_some());
                            batch.push(msg);
                            if !boundary && batch.len() < BATCH {
                                continue;
                            }
                            if tx.send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))).is_err() {
                                return;
                            }
                            let _ = act.activate();
                            if stop {
                                return;
                            }
                        }
                    });
                }
                let epoch = *c.time();
                let rx = rx.as_ref().expect("started");
                let mut produced = 0u64;
                let mut close_at: Option<BinlogPos> = None;
                let mut finished = false;
                let mut schema_out: Vec<SchemaEvent> = Vec::new();
                // Events handled in this activation: at the budget, the operator schedules itself
                // again (skipped rows produce nothing, and the reader's wake-up was spent).
                let mut handled = 0usize;
                let mut fatal: Option<TaskError> = None;
                {
                    let mut output = out_rows.activate();
                    let mut session = output.session(&*c);
                    'events: for _ in 0..BUDGET {
                        handled += 1;
                        if queued.len() == 0 {
                            match rx.try_recv() {
                                Ok(batch) => queued = batch.into_iter(),
                                Err(_) => break,
                            }
                        }
                        let (ev, event_time, ev_gtid, ev_names, ev_weights) = match queued.next() {
                            Some(Ok(ev)) => ev,
                            Some(Err(e)) => {
                                fatal = Some(e);
                                break;
                            }
                            None => break,
                        };
                        if ev_gtid.is_some() {
                            gtid = ev_gtid;
                        }
                        match ev {
                            BinlogEvent::Begin { .. } => {}
                            BinlogEvent::Rows { database, table, changes } => {
                                let Some(&tid) = tables.get(&(database, table)) else { continue };
                                let start = txn_start.as_ref().map(pos_key).unwrap_or((0, 0));
                                let position = Position::Binlog { file: start.0, pos: start.1 };
                                let idx = &index_by_table[tid as usize];
                                let base = plan.catalog.get(tid);
                                if let Some(names) = ev_names {
                                    // A renamed column keeps its original name, so it keeps
                                    // flowing into the same target column (the one the run
                                    // started with: after a restart the new name is the column).
                                    let names: Vec<String> = match aliases.get(&tid) {
                                        Some(a) => names
                                            .iter()
                                            .map(|n| match a.get(n) {
                                                Some(orig) if !names.contains(orig) && base.column_index(orig).is_some() => {
                                                    orig.clone()
                                                }
                                                _ => n.clone(),
                                            })
                                            .collect(),
                                        None => names,
                                    };
                                    let current = evolved.get(&tid).map(|s| s.as_ref()).unwrap_or(base);
                                    let same = |s: &ferry_operators::TableSchema| s.columns.iter().map(|c| &c.name).eq(names.iter());
                                    if same(base) {
                                        evolved.remove(&tid);
                                    } else if !same(current) {
                                        let next = evolve_schema(base, current, &names);
                                        tracing::info!(table = %base.name, version = next.version, "the table's columns changed");
                                        evolved.insert(tid, Arc::new(next));
                                    }
                                }
                                let row_schema = evolved.get(&tid).cloned();
                                let schema = row_schema.as_deref().unwrap_or(base);
                                let width = schema.columns.len();
                                for (i, (op, before, after)) in changes.into_iter().enumerate() {
                                    let w = ev_weights.as_ref().map(|w| &w[i]);
                                    if before.as_ref().or(after.as_ref()).is_some_and(|r| r.len() != width) {
                                        // The table map and the row disagree: never write a row
                                        // under the wrong columns.
                                        fatal = Some(TaskError::definite(format!(
                                            "binlog: table {} at {}: {} values in a row, {} columns in its table map",
                                            schema.name,
                                            txn_start.as_ref().map(|p| p.to_string()).unwrap_or_default(),
                                            before.as_ref().or(after.as_ref()).map_or(0, |r| r.len()),
                                            width
                                        )));
                                        break 'events;
                                    }
                                    let change = Change {
                                        table: tid,
                                        op,
                                        before,
                                        after,
                                        pos: position.clone(),
                                        commit_micros: event_time as i64 * 1_000_000,
                                        schema: row_schema.clone(),
                                    };
                                    // A key-changing update touches two keys, possibly in two chunks:
                                    // each half is checked against its own chunk.
                                    let (first, second) = change.split_key_change(schema);
                                    // The sort keys of each half's image (before for a delete).
                                    let image_weights = |c: &Change| {
                                        w.and_then(|w| w[usize::from(c.op != Op::Delete)].as_deref())
                                    };
                                    for c in std::iter::once(first).chain(second) {
                                        if start < idx.max_pos && idx.in_snapshot(c.image(), image_weights(&c), start) {
                                            continue;
                                        }
                                        session.give(c);
                                        produced += 1;
                                    }
                                }
                            }
                            ev @ (BinlogEvent::Commit { .. }
                            | BinlogEvent::Ddl { .. }
                            | BinlogEvent::Heartbeat { .. }
                            | BinlogEvent::Rotate { .. }
                            | BinlogEvent::Position { .. }) => {
                                // A DDL that may touch a selected table ends the epoch: rows
                                // before and after a schema change never share one. One that
                                // only names tables outside the selection does not (a server
                                // creating thousands of other tables would otherwise write a
                                // checkpoint per statement).
                                let mut is_ddl = false;
                                if matches!(ev, BinlogEvent::Heartbeat { .. }) {
                                    // The server sends one only when it has nothing else to
                                    // send: the reader is at the source's end now.
                                    metrics.note_source_time(crate::runtime::now_micros());
                                } else if event_time > 0 {
                                    // Any transaction's end (also of tables not selected: a
                                    // busy server sends no heartbeats) is read progress.
                                    metrics.note_source_time(i64::from(event_time) * 1_000_000);
                                }
                                if let BinlogEvent::Ddl { database, sql, .. } = &ev {
                                    let start = txn_start.as_ref().map(pos_key).unwrap_or((0, 0));
                                    // Names compared without case: a server may ignore it.
                                    let selected = |db: &str, t: &str| {
                                        folded.contains(&(db.to_lowercase(), t.to_lowercase()))
                                            || plan.selects(&format!("{db}.{t}"))
                                    };
                                    let holds_selected = |db: &str| {
                                        let db = db.to_lowercase();
                                        folded.iter().any(|(d, _)| *d == db)
                                    };
                                    let (changes, foreign) = crate::connectors::mysql::ddl::parse_foreign(
                                        database,
                                        sql,
                                        &selected,
                                        &holds_selected,
                                    );
                                    is_ddl = !foreign;
                                    for change in changes {
                                        if let (SchemaChangeKind::CreateTable, Some((db, t))) = (&change.kind, &change.table) {
                                            if !tables.contains_key(&(db.clone(), t.clone())) && plan.selects(&format!("{db}.{t}")) {
                                                let name = format!("{db}.{t}");
                                                match crate::connector::source::new_table(&plan, &state, epoch, &name, &crate::secrets::redact(sql)) {
                                                    // The run ends with this epoch and starts again with the table.
                                                    Ok(end) => finished |= end,
                                                    Err(e) => {
                                                        fatal = Some(e);
                                                        break 'events;
                                                    }
                                                }
                                            }
                                        }
                                        let Some(&tid) = change.table.as_ref().and_then(|t| tables.get(t)) else { continue };
                                        tracing::info!(table = %plan.catalog.get(tid).name, change = ?change.kind, "schema change");
                                        if let SchemaChangeKind::RenameColumn { from, to } = &change.kind {
                                            let a = aliases.entry(tid).or_default();
                                            let orig = a.remove(from).unwrap_or_else(|| from.clone());
                                            a.insert(to.clone(), orig);
                                        }
                                        if !deliver_ddl {
                                            continue;
                                        }
                                        schema_out.push(SchemaEvent {
                                            table: tid,
                                            change: change.kind,
                                            // Passwords in a statement (`CONNECTION='mysql://u:p@…'`)
                                            // never reach logs, files or the state store.
                                            statement: crate::secrets::redact(sql),
                                            pos: Position::Binlog { file: start.0, pos: start.1 },
                                            commit_micros: event_time as i64 * 1_000_000,
                                        });
                                    }
                                }
                                let next = ev.next_position().expect("matched above").clone();
                                txn_start = Some(next.clone());
                                let recorded =
                                    epochs.replaying(epoch).and_then(|b| offset_pos(b.offsets.get(&0)?));
                                let due = match recorded {
                                    Some(p) => next >= p,
                                    None => is_ddl || Instant::now() >= deadline || epochs.stop_due(),
                                };
                                if run.stop_at.as_ref().is_some_and(|s| next >= *s) {
                                    finished = true;
                                }
                                if due || finished {
                                    close_at = Some(next);
                                    break;
                                }
                            }
                        }
                    }
                }
                metrics.rows_in.fetch_add(produced, Ordering::Relaxed);
                if let Some(e) = fatal {
                    // The capabilities stay: the epoch is never committed; the run ends.
                    failed = true;
                    failure.report(e);
                    return;
                }
                if !schema_out.is_empty() {
                    // In the epoch the statement ends: after its rows, before later ones.
                    out_schema.activate().session(&*cs).give_iterator(schema_out.drain(..));
                }
                if let Some(p) = &close_at {
                    let offsets = [(0, json!({ "file": p.file, "pos": p.pos, "gtid": gtid }))].into();
                    deadline = Instant::now() + interval;
                    match epochs.close(epoch, offsets, finished) {
                        Ok(Next::Open(next)) => {
                            c.downgrade(&next);
                            cs.downgrade(&next);
                            metrics.open_epoch(next);
                        }
                        Ok(Next::End) => {
                            cap = None;
                            cap_schema = None;
                            return;
                        }
                        Err(e) => {
                            failed = true;
                            failure.report(e);
                            return;
                        }
                    }
                }
                if produced > 0 || close_at.is_some() || handled >= BUDGET {
                    let _ = activator.activate();
                }
            }
        },
    );
    (rows, schema_events)
}

/// The server's sort keys of the weighed key columns of every row image of one rows event,
/// in one query on a connection of their own (opened on first use).
async fn weigh_rows(
    conn: &mut Option<mysql_async::Conn>,
    opts: &mysql_async::Opts,
    cols: &[WeighedColumn],
    changes: &[crate::connectors::mysql::binlog::RowChange],
) -> Result<Vec<[ImageWeights; 2]>, String> {
    if conn.is_none() {
        *conn = Some(crate::connectors::mysql::discover::connect(opts).await.map_err(|e| e.to_string())?);
    }
    let c = conn.as_mut().expect("connected");
    image_weights(c, cols, changes).await.map_err(|e| e.to_string())
}

/// The schema of rows whose table map names `names`: known columns keep their type and
/// nullability (from the latest schema, else the discovered one), new ones are nullable with
/// an unknown type; keys are kept when all their columns remain.
fn evolve_schema(
    base: &ferry_operators::TableSchema,
    current: &ferry_operators::TableSchema,
    names: &[String],
) -> ferry_operators::TableSchema {
    use ferry_operators::{Column, ColumnType};
    let columns: Vec<Column> = names
        .iter()
        .map(|n| {
            current
                .column_index(n)
                .map(|i| current.columns[i].clone())
                .or_else(|| base.column_index(n).map(|i| base.columns[i].clone()))
                .unwrap_or_else(|| Column::new(n.clone(), ColumnType::Other { name: "unknown".into() }, true))
        })
        .collect();
    let map = |key: &[usize]| -> Option<Vec<usize>> {
        key.iter().map(|&i| names.iter().position(|n| n.eq_ignore_ascii_case(&base.columns[i].name))).collect()
    };
    ferry_operators::TableSchema {
        name: base.name.clone(),
        primary_key: map(&base.primary_key).unwrap_or_default(),
        unique_keys: base.unique_keys.iter().filter_map(|k| map(k)).collect(),
        columns,
        version: current.version + 1,
    }
}
