//! The sink stage: receives changes exchanged by `(table, key)`, hands them to the worker's
//! [`SinkWriter`], and holds a capability for every epoch it has data for until the input
//! frontier has passed that epoch and the writer has committed it. The probe after this
//! operator therefore passes epoch `e` only when every worker has committed `e`.
//!
//! Schema events come on a second input, to every worker (broadcast). Once every change of
//! their epoch was written, before the epoch commits, the policy decides: `auto` hands the
//! event to the worker's writer (every worker: a rename changes how later rows are written;
//! the table's owner worker, `table mod peers`: the writer's record of it), and for a target
//! that takes DDL the owner passes it on to the DDL stage ([`super::ddl`]). `log` warns and
//! `error` fails the run, once, on the owner.
//!
//! ```text
//!  rows ──exchange by key──►┐
//!                           ├─► Sink (per worker) ──events to apply──► Ddl (worker 0) ──► probe
//!  schema events ─broadcast►┘    │   ▲                                   ALTER once every sink
//!                                │   └── rows of epochs after a DDL's     committed the DDL's
//!                                │       epoch wait until the probe       epoch; releases it
//!                                ▼       has passed that epoch            when done
//!                              writer
//! ```
//!
//! So a DDL lands exactly between the rows before it and the rows after it: every worker has
//! committed the rows of its epoch when it runs, and none writes a row of a later epoch before
//! it has run.

use crate::connector::{SinkError, SinkWriter};
use crate::plan::config::DdlPolicy;
use crate::plan::Compiled;
use crate::runtime::{DirtyArchive, Failure, Metrics, TaskError};
use ferry_operators::{Change, Position, SchemaEvent};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Capability, InputCapability};
use timely::dataflow::ProbeHandle;
use timely::dataflow::StreamVec;
use timely::progress::frontier::MutableAntichain;

/// A sink error that ends the run (`what` failed): it restarts, unless the writer says a
/// restart cannot help.
fn run_failure(what: &str, err: SinkError) -> TaskError {
    match err {
        SinkError::Fatal(e) => TaskError::definite(format!("{what}: {e}")),
        other => TaskError::transient(format!("{what}: {other}")),
    }
}

/// Retries a transient sink error a few times with backoff before failing the run (a failure
/// the task restarts from).
fn with_retry(what: &str, mut f: impl FnMut() -> Result<(), SinkError>) -> Result<(), TaskError> {
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=5 {
        match f() {
            Ok(()) => return Ok(()),
            Err(SinkError::Transient(e)) if attempt < 5 => {
                tracing::warn!(attempt, error = %crate::secrets::redact(&e), "{what} failed, retrying");
                std::thread::sleep(delay);
                delay *= 2;
            }
            Err(e) => return Err(run_failure(what, e)),
        }
    }
    unreachable!("the last attempt returns")
}

/// Builds the sink stage. `schema` carries every schema event to every worker (broadcast);
/// `applied` probes the DDL stage: a DDL epoch is applied once it has passed that epoch.
/// The output carries the events the DDL stage applies.
#[allow(clippy::too_many_arguments)]
pub fn sink<'s>(
    input: StreamVec<'s, u64, Change>,
    schema: StreamVec<'s, u64, SchemaEvent>,
    plan: Arc<Compiled>,
    mut writer: Box<dyn SinkWriter>,
    skip_upto: u64,
    dirty: DirtyArchive,
    metrics: Arc<Metrics>,
    failure: Failure,
    applied: ProbeHandle<u64>,
) -> StreamVec<'s, u64, SchemaEvent> {
    let route = plan.clone();
    let pact = Exchange::new(move |c: &Change| c.route_hash(&route.table(c.table).target_schema));
    let scope = input.scope();
    let (index, peers) = (scope.index(), scope.peers());
    input.binary_frontier::<_, CapacityContainerBuilder<Vec<SchemaEvent>>, _, _, _, _>(
        schema,
        pact,
        Pipeline,
        "Sink",
        move |_cap, info| {
            let mut pending: BTreeMap<u64, Capability<u64>> = BTreeMap::new();
            // Epochs whose commit has started but not finished (writers that commit later).
            let mut committing: BTreeMap<u64, Capability<u64>> = BTreeMap::new();
            let activator = scope.activator_for(info.address);
            // Per-table counts kept locally and published once per activation: the shared
            // counters sit on few cache lines, which workers must not fight over per row.
            let mut counts = vec![0u64; plan.tables.len()];
            let flush = dirty.clone();
            let fail = move |e: TaskError| failure.report(e);
            // Data of epochs after the oldest open one waits here: a sink applies epochs in order
            // (one key's snapshot row and binlog change may come from different workers).
            // Containers are kept whole (taken, not copied).
            let mut stash: BTreeMap<u64, Vec<Vec<Change>>> = BTreeMap::new();
            let mut schema_stash: BTreeMap<u64, Vec<SchemaEvent>> = BTreeMap::new();
            // Epochs with a DDL the target takes: no row of a later epoch is written before the
            // DDL stage has passed them.
            let mut barriers: BTreeSet<u64> = BTreeSet::new();
            let takes_ddl = writer.takes_ddl();
            let names = plan.clone();
            let mut write =
                move |epoch: u64, data: Vec<Vec<Change>>, writer: &mut Box<dyn SinkWriter>| -> Result<(), TaskError> {
                    let mut written = 0u64;
                    for c in data.into_iter().flatten() {
                        let table = c.table as usize;
                        match writer.write_owned(epoch, c) {
                            Ok(()) => {
                                written += 1;
                                counts[table] += 1;
                            }
                            Err((SinkError::Definite(reason), c)) => {
                                metrics.dirty.fetch_add(1, Ordering::Relaxed);
                                dirty.record("sink", &plan.catalog.get(c.table).name.to_string(), &c, &reason);
                            }
                            Err((SinkError::Transient(first), c)) => {
                                tracing::warn!(error = %crate::secrets::redact(&first), "write failed, retrying");
                                match with_retry("write", || writer.write(epoch, c.table, &c)) {
                                    Ok(()) => written += 1,
                                    Err(e) => return Err(e),
                                }
                            }
                            Err((SinkError::Restart(e), _)) => return Err(TaskError::transient(e)),
                            Err((SinkError::Fatal(e), _)) => return Err(TaskError::definite(e)),
                        }
                    }
                    metrics.rows_out.fetch_add(written, Ordering::Relaxed);
                    for (t, n) in counts.iter_mut().enumerate().filter(|(_, n)| **n > 0) {
                        metrics.wrote(t, std::mem::take(n));
                    }
                    Ok(())
                };
            move |(input, rows_frontier), (schema_input, schema_frontier), output| {
                let port = output.output_index();
                let mut failed = None;
                schema_input.for_each(|cap, data| {
                    if let Some(epoch) = hold(&mut pending, &cap, port, skip_upto) {
                        schema_stash.entry(epoch).or_default().append(data);
                        return;
                    }
                    // An epoch this worker committed before the run: its rows are skipped, its
                    // schema changes still shape later rows (and a DDL the target may not have
                    // taken yet still goes to the DDL stage, which knows what it applied).
                    let Some(&epoch) = cap.least() else { return };
                    for event in data.drain(..) {
                        let owner = event.table as usize % peers == index;
                        match on_event(&names, &mut writer, epoch, event, owner, takes_ddl, &mut barriers, true) {
                            Ok(Some(event)) => {
                                if let Some(c) = cap.retain_least(port) {
                                    output.session(&c).give(event);
                                }
                            }
                            Ok(None) => {}
                            Err(err) => failed = Some(err),
                        }
                    }
                });
                if let Some(err) = failed {
                    fail(err);
                    return;
                }
                let frontier = Frontiers(rows_frontier, schema_frontier);
                input.for_each(|cap, data| match hold(&mut pending, &cap, port, skip_upto) {
                    Some(epoch) => {
                        settle(data, index);
                        stash.entry(epoch).or_default().push(std::mem::take(data))
                    }
                    None => data.clear(),
                });
                // Oldest epoch first: write what has arrived; commit it once the frontier passed
                // it; stop at the first epoch still open (later ones wait in the stash).
                while let Some((&e, _)) = pending.iter().next() {
                    if frontier.less_than(&e) {
                        break;
                    }
                    while let Some(&d) = barriers.first().filter(|&&d| d < e && !applied.less_equal(&d)) {
                        barriers.remove(&d);
                    }
                    if barriers.first().is_some_and(|&d| d < e) {
                        // The DDL of an earlier epoch has not run yet: look again shortly.
                        activator.activate_after(Duration::from_millis(1));
                        break;
                    }
                    if let Some(data) = stash.remove(&e) {
                        if let Err(err) = write(e, data, &mut writer) {
                            fail(err);
                            return;
                        }
                    }
                    if frontier.less_equal(&e) {
                        break;
                    }
                    let mut to_apply = Vec::new();
                    for event in schema_stash.remove(&e).unwrap_or_default() {
                        let owner = event.table as usize % peers == index;
                        match on_event(&names, &mut writer, e, event, owner, takes_ddl, &mut barriers, false) {
                            Ok(Some(event)) => to_apply.push(event),
                            Ok(None) => {}
                            Err(err) => {
                                fail(err);
                                return;
                            }
                        }
                    }
                    if !to_apply.is_empty() {
                        let cap = pending.get(&e).expect("held for the events");
                        output.session(cap).give_iterator(to_apply.drain(..));
                    }
                    if let Err(err) = flush.flush() {
                        fail(TaskError::transient(format!("dirty archive: {err}")));
                        return;
                    }
                    if writer.commits_later() {
                        if let Err(err) = writer.start_commit(e) {
                            fail(run_failure("commit", err));
                            return;
                        }
                        let cap = pending.remove(&e).expect("pending");
                        committing.insert(e, cap);
                        continue;
                    }
                    if let Err(err) = with_retry("commit", || writer.commit(e)) {
                        fail(err);
                        return;
                    }
                    if let Err(err) = flush.flush() {
                        fail(TaskError::transient(format!("dirty archive: {err}")));
                        return;
                    }
                    pending.remove(&e);
                }
                if !committing.is_empty() {
                    match writer.committed_upto() {
                        Ok(Some(done)) => committing.retain(|&e, _| e > done),
                        Ok(None) => {}
                        Err(err) => {
                            fail(run_failure("commit", err));
                            return;
                        }
                    }
                    if !committing.is_empty() {
                        // Look again shortly: the writer's I/O task answers from another thread.
                        activator.activate_after(Duration::from_millis(1));
                    }
                }
            }
        },
    )
}

/// One schema event at its epoch `e`, after the epoch's rows, on one worker (`owner`: the one
/// that logs and records it); `replayed`: an epoch committed before the run, whose event only
/// shapes later rows. `Ok(Some(event))`: the DDL stage must apply it.
#[allow(clippy::too_many_arguments)]
fn on_event(
    plan: &Compiled,
    writer: &mut Box<dyn SinkWriter>,
    e: u64,
    event: SchemaEvent,
    owner: bool,
    takes_ddl: bool,
    barriers: &mut BTreeSet<u64>,
    replayed: bool,
) -> Result<Option<SchemaEvent>, TaskError> {
    let table = plan.catalog.get(event.table).name.to_string();
    match plan.plan.settings.schema_changes.policy_for(&event.change) {
        DdlPolicy::Auto => {
            writer
                .follow_schema_change(e, &event)
                .map_err(|err| TaskError::transient(format!("schema change: {err}")))?;
            // The CREATE of a table the run already has (a restart after the statement
            // discovered it) needs no DDL; under `error` it fails again, as it should.
            use ferry_operators::SchemaChangeKind as K;
            let ddl = takes_ddl && !matches!(event.change, K::Other | K::CreateTable);
            if ddl {
                // Every worker waits for it before writing later epochs.
                barriers.insert(e);
            }
            if !owner {
                return Ok(None);
            }
            if !replayed {
                tracing::info!(table, change = ?event.change, statement = %event.statement, epoch = e, "schema change reached the sink");
                with_retry("schema change", || writer.schema_change(e, &event))?;
            }
            Ok(ddl.then_some(event))
        }
        _ if !owner || replayed => Ok(None),
        DdlPolicy::Ignore => Ok(None),
        DdlPolicy::Log => {
            tracing::warn!(table, statement = %event.statement, position = %event.pos, "schema change not applied to the target (schema_changes policy: log)");
            Ok(None)
        }
        DdlPolicy::Error => Err(TaskError::definite(format!(
            "schema change of {table} at {} refused by the schema_changes policy `error`: {}",
            event.pos, event.statement
        ))),
    }
}

/// The epoch of data that arrived under `cap`, with a capability for it held in `pending`;
/// `None` for a replay of an epoch this worker committed before the run (exactly-once), whose
/// data is dropped.
fn hold(
    pending: &mut BTreeMap<u64, Capability<u64>>,
    cap: &InputCapability<u64>,
    port: usize,
    skip_upto: u64,
) -> Option<u64> {
    let epoch = *cap.least()?;
    if epoch <= skip_upto {
        return None;
    }
    if let std::collections::btree_map::Entry::Vacant(v) = pending.entry(epoch) {
        v.insert(cap.retain_least(port)?);
    }
    Some(epoch)
}

/// Changes the source made for some sink workers only ([`Position::LsnFor`]): kept, as plain
/// ones, by those (`index` among them), dropped by the others.
fn settle(data: &mut Vec<Change>, index: usize) {
    if !data.iter().any(|c| matches!(c.pos, Position::LsnFor { .. })) {
        return;
    }
    let bit = 1u32.checked_shl(index as u32).unwrap_or(0);
    data.retain_mut(|c| match c.pos {
        Position::LsnFor { lsn, workers } if workers & bit != 0 => {
            c.pos = Position::Lsn { lsn };
            true
        }
        Position::LsnFor { .. } => false,
        _ => true,
    });
}

/// The frontiers of the sink's two inputs: an epoch is complete when both have passed it.
struct Frontiers<'a>(&'a MutableAntichain<u64>, &'a MutableAntichain<u64>);

impl Frontiers<'_> {
    fn less_than(&self, e: &u64) -> bool {
        self.0.less_than(e) || self.1.less_than(e)
    }

    fn less_equal(&self, e: &u64) -> bool {
        self.0.less_equal(e) || self.1.less_equal(e)
    }
}
