//! The sink stage: receives changes exchanged by `(table, key)`, hands them to the worker's
//! [`SinkWriter`], and holds a capability for every epoch it has data for until the input
//! frontier has passed that epoch and the writer has committed it. The probe after this
//! operator therefore passes epoch `e` only when every worker has committed `e`.
//!
//! Schema events come on a second input, each to one worker (by table); a worker hands them to
//! its writer once every change of their epoch was written, before the epoch commits.

use super::{DirtyArchive, Metrics};
use crate::plan::config::DdlPolicy;
use crate::plan::Compiled;
use crate::sinks::{SinkError, SinkWriter};
use ferry_operators::{Change, SchemaEvent};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Capability, InputCapability};
use timely::dataflow::StreamVec;
use timely::progress::frontier::MutableAntichain;

/// Retries a transient sink error a few times with backoff before failing the run.
fn with_retry(what: &str, mut f: impl FnMut() -> Result<(), SinkError>) -> Result<(), String> {
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=5 {
        match f() {
            Ok(()) => return Ok(()),
            Err(SinkError::Restart(e)) => return Err(format!("{what}: {e}")),
            Err(SinkError::Transient(e)) if attempt < 5 => {
                tracing::warn!(attempt, error = %crate::secrets::redact(&e), "{what} failed, retrying");
                std::thread::sleep(delay);
                delay *= 2;
            }
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
    unreachable!("the last attempt returns")
}

/// Builds the sink stage.
#[allow(clippy::too_many_arguments)]
pub fn sink<'s>(
    input: StreamVec<'s, u64, Change>,
    schema: StreamVec<'s, u64, SchemaEvent>,
    plan: Arc<Compiled>,
    mut writer: Box<dyn SinkWriter>,
    skip_upto: u64,
    dirty: DirtyArchive,
    metrics: Arc<Metrics>,
    failure: Arc<Mutex<Option<String>>>,
) -> StreamVec<'s, u64, ()> {
    let route = plan.clone();
    let pact = Exchange::new(move |c: &Change| c.route_hash(&route.table(c.table).target_schema));
    let scope = input.scope();
    let schema_pact = Exchange::new(|e: &SchemaEvent| e.table as u64);
    input.binary_frontier::<_, CapacityContainerBuilder<Vec<()>>, _, _, _, _>(schema, pact, schema_pact, "Sink", move |_cap, info| {
        let mut pending: BTreeMap<u64, Capability<u64>> = BTreeMap::new();
        // Epochs whose commit has started but not finished (writers that commit later).
        let mut committing: BTreeMap<u64, Capability<u64>> = BTreeMap::new();
        let activator = scope.activator_for(info.address);
        // Per-table counts kept locally and published once per activation: the shared
        // counters sit on few cache lines, which workers must not fight over per row.
        let mut counts = vec![0u64; plan.tables.len()];
        let flush = dirty.clone();
        let fail = move |msg: String| {
            let mut f = failure.lock().unwrap_or_else(|e| e.into_inner());
            f.get_or_insert(msg);
        };
        // Data of epochs after the oldest open one waits here: a sink applies epochs in order
        // (one key's snapshot row and binlog change may come from different workers).
        // Containers are kept whole (taken, not copied).
        let mut stash: BTreeMap<u64, Vec<Vec<Change>>> = BTreeMap::new();
        let mut schema_stash: BTreeMap<u64, Vec<SchemaEvent>> = BTreeMap::new();
        let names = plan.clone();
        let mut write = move |epoch: u64, data: Vec<Vec<Change>>, writer: &mut Box<dyn SinkWriter>| -> Result<(), String> {
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
                    Err((SinkError::Restart(e), _)) => return Err(e),
                }
            }
            metrics.rows_out.fetch_add(written, Ordering::Relaxed);
            for (t, n) in counts.iter_mut().enumerate().filter(|(_, n)| **n > 0) {
                metrics.per_table[t].fetch_add(std::mem::take(n), Ordering::Relaxed);
            }
            Ok(())
        };
        move |(input, rows_frontier), (schema_input, schema_frontier), output| {
            let port = output.output_index();
            schema_input.for_each(|cap, data| {
                match hold(&mut pending, &cap, port, skip_upto) {
                    Some(epoch) => schema_stash.entry(epoch).or_default().append(data),
                    None => data.clear(),
                }
            });
            let frontier = Frontiers(rows_frontier, schema_frontier);
            input.for_each(|cap, data| {
                match hold(&mut pending, &cap, port, skip_upto) {
                    Some(epoch) => stash.entry(epoch).or_default().push(std::mem::take(data)),
                    None => data.clear(),
                }
            });
            // Oldest epoch first: write what has arrived; commit it once the frontier passed
            // it; stop at the first epoch still open (later ones wait in the stash).
            while let Some((&e, _)) = pending.iter().next() {
                if frontier.less_than(&e) {
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
                for event in schema_stash.remove(&e).unwrap_or_default() {
                    let table = names.catalog.get(event.table).name.to_string();
                    match names.plan.raw.schema_changes.policy_for(&event.change) {
                        DdlPolicy::Auto => {
                            tracing::info!(table, change = ?event.change, statement = %event.statement, epoch = e, "schema change reached the sink");
                            if let Err(err) = with_retry("schema change", || writer.schema_change(e, &event)) {
                                fail(err);
                                return;
                            }
                        }
                        DdlPolicy::Ignore => {}
                        DdlPolicy::Log => {
                            tracing::warn!(table, statement = %event.statement, position = %event.pos, "schema change not applied to the target (schema_changes policy: log)");
                        }
                        DdlPolicy::Error => {
                            fail(format!(
                                "schema change of {table} at {} refused by the schema_changes policy `error`: {}",
                                event.pos, event.statement
                            ));
                            return;
                        }
                    }
                }
                if let Err(err) = flush.flush() {
                    fail(format!("dirty archive: {err}"));
                    return;
                }
                if writer.commits_later() {
                    if let Err(err) = writer.start_commit(e) {
                        fail(format!("commit: {err}"));
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
                    fail(format!("dirty archive: {err}"));
                    return;
                }
                pending.remove(&e);
            }
            if !committing.is_empty() {
                match writer.committed_upto() {
                    Ok(Some(done)) => committing.retain(|&e, _| e > done),
                    Ok(None) => {}
                    Err(err) => {
                        fail(format!("commit: {err}"));
                        return;
                    }
                }
                if !committing.is_empty() {
                    // Look again shortly: the writer's I/O task answers from another thread.
                    activator.activate_after(Duration::from_millis(1));
                }
            }
        }
    })
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
