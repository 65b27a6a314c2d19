//! The DDL stage: on worker 0, after the sinks, it hands the schema changes a target follows
//! (`schema_changes` policy `auto`) to the target's [`SchemaApplier`] once every sink worker has
//! committed the rows of their epoch; it holds the epoch until the applier is done, and the sink
//! stage writes no row of a later epoch before that (see [`super::sink`]). Targets that take no
//! DDL have no applier: the stage then only forwards progress.
//!
//! ```text
//!  sink output (events, exchanged to worker 0)
//!      │  input frontier passed e ⇔ every sink worker committed e
//!      ▼
//!  SchemaApplier::apply(e, events)  (database targets: `connectors::sql::ddl`)
//!      ▼
//!  release e
//! ```

use crate::connector::SchemaApplier;
use crate::runtime::Failure;
use ferry_operators::SchemaEvent;
use std::collections::BTreeMap;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;

/// Builds the DDL stage over the sink stage's output; `applier` is `None` on targets that take
/// no DDL (the stage then only forwards progress).
pub fn ddl<'s>(
    events: StreamVec<'s, u64, SchemaEvent>,
    mut applier: Option<Box<dyn SchemaApplier>>,
    failure: Failure,
) -> StreamVec<'s, u64, ()> {
    let pact = Exchange::new(|_: &SchemaEvent| 0u64);
    events.unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(pact, "Ddl", move |_cap, _info| {
        let mut held: BTreeMap<u64, (Capability<u64>, Vec<SchemaEvent>)> = BTreeMap::new();
        let mut failed = false;
        move |(input, frontier), output| {
            let port = output.output_index();
            input.for_each(|cap, data| {
                let Some(&e) = cap.least() else { return };
                if let std::collections::btree_map::Entry::Vacant(v) = held.entry(e) {
                    let Some(c) = cap.retain_least(port) else { return };
                    v.insert((c, Vec::new()));
                }
                held.get_mut(&e).expect("held").1.append(data);
            });
            while let Some(entry) = held.first_entry().filter(|_| !failed) {
                if frontier.less_equal(entry.key()) {
                    break;
                }
                let (epoch, (cap, events)) = entry.remove_entry();
                let Some(a) = applier.as_mut() else { continue };
                if let Err(e) = a.apply(epoch, &events) {
                    // The epoch stays held: no sink writes a row after a DDL that did not run.
                    held.insert(epoch, (cap, events));
                    failed = true;
                    failure.report(e);
                    return;
                }
            }
        }
    })
}
