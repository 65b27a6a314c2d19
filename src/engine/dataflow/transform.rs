//! The transform stage: applies each table's compiled [`ferry_operators::transform::Transform`]
//! on the worker that read the change (no exchange), so filters drop rows before they cross
//! the network. Rows whose functions fail go to the dirty archive with the reason. Stream
//! changes' keys are noted here for continuous verification (`verify::touched`).

use crate::plan::Compiled;
use crate::runtime::{DirtyArchive, Failure, Metrics, TaskError};
use ferry_operators::transform::Context;
use ferry_operators::transform::Transform;
use ferry_operators::{Change, TableId, TableSchema};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

/// Transforms every change into its target shape.
pub fn transform<'s>(
    input: StreamVec<'s, u64, Change>,
    plan: Arc<Compiled>,
    dirty: DirtyArchive,
    metrics: Arc<Metrics>,
    failure: Failure,
) -> StreamVec<'s, u64, Change> {
    let identity = plan
        .tables
        .iter()
        .all(|t| t.transform.identity && t.transform.filter.is_none() && t.transform.ops == Default::default());
    input.unary(Pipeline, "Transform", move |_cap, _info| {
        let mut out: Vec<Change> = Vec::new();
        let mut failed = Vec::new();
        // Transforms compiled for changed source schemas, by (table, version).
        let mut evolved: HashMap<(TableId, u32), (Transform, Arc<TableSchema>)> = HashMap::new();
        // After a failure, the epoch it happened in is held here, so it is never committed.
        let mut held = None;
        move |input, output| {
            input.for_each(|cap, data| {
                if held.is_some() {
                    data.clear();
                    return;
                }
                // The fast path passes changes through untouched, so it must not see an update
                // that changes the row key: that one is split into a delete and an insert.
                let key_change = |c: &Change| {
                    c.op == ferry_operators::Op::Update && {
                        let (b, a) = (c.before.as_deref().unwrap_or(&[]), c.after.as_deref().unwrap_or(&[]));
                        plan.catalog.get(c.table).row_key().iter().any(|&i| b.get(i) != a.get(i))
                    }
                };
                if let Some(t) = data.iter().map(|c| c.commit_micros).max() {
                    metrics.note_source_time(t);
                }
                // The keys continuous verification re-verifies next (only when it is on).
                crate::verify::touched::note(data, |t| plan.catalog.get(t));
                if identity && data.iter().all(|c| c.schema.is_none() && !key_change(c)) {
                    output.session(&cap).give_container(data);
                    return;
                }
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros() as i64);
                let cx = Context { datasource: &plan.plan.source_name, now_micros: now };
                // Sized once: `out` leaves with its container, and regrowing it by doubling
                // costs copies and fresh pages on every batch.
                out.reserve(data.len());
                for c in data.drain(..) {
                    let table = c.table;
                    let before = out.len();
                    match c.schema.clone() {
                        None => {
                            plan.table(table).transform.apply(c, plan.catalog.get(table), &cx, &mut out, &mut failed)
                        }
                        Some(source) => {
                            let key = (table, source.version);
                            let (t, target) = match evolved.entry(key) {
                                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                                std::collections::hash_map::Entry::Vacant(v) => match plan.evolve(table, &source) {
                                    Ok((t, target)) => v.insert((t, Arc::new(target))),
                                    // A filter or function that no longer compiles cannot go on.
                                    Err(e) => {
                                        failure.report(TaskError::definite(e));
                                        held = cap.retain_least(output.output_index());
                                        out.clear();
                                        break;
                                    }
                                },
                            };
                            t.apply(c, &source, &cx, &mut out, &mut failed);
                            for o in &mut out[before..] {
                                o.schema = Some(target.clone());
                            }
                        }
                    }
                    for (e, c) in failed.drain(..) {
                        metrics.dirty.fetch_add(1, Ordering::Relaxed);
                        dirty.record("transform", &plan.catalog.get(table).name.to_string(), &c, &e.to_string());
                    }
                }
                output.session(&cap).give_container(&mut out);
            });
        }
    })
}
