//! Continuous verification (`verify.continuous: true`): a running task verifies itself in the
//! background, on process 0, on a thread of its own with its own sessions.
//!
//! ```text
//!  every `interval` (from the start of the previous pass; at once when a pass took longer):
//!    a full sweep when `full_sweep_interval` has passed since the last one (the first pass is
//!    one), else the chunks holding a key the task's stream changed since the previous pass
//!    (verify::touched) and every chunk of a table the previous pass found different (its
//!    difference stands, for `--last` and the alert rules, until a pass finds it equal)
//!    verify(those chunks, ≤ max_rows_per_second, re-reads as the task moves)
//!       ──► <state>/<task>/verify/last.json     the newest pass: kind, time, summary, differences
//!       └─► <state>/<task>/verify/events.jsonl   one line per persisting difference
//!       └─► the log (warn)                          found (the alert rules' input)
//! ```
//!
//! A difference is reported only after the re-reads of [`super::verify`] (the task's checkpoint
//! passed the source's position and the source row held still), so a pass over a running task
//! reports what persists. A corruption of a chunk the task then changes is found by the next
//! pass; a corruption of a chunk nothing changes, by the next full sweep.

use super::{touched, verify, RangeFilter, Report, VerifyOptions};
use crate::connector::verify::KeyRange;
use crate::plan::config::parse_duration_ms;
use crate::plan::Compiled;
use crate::state::TaskState;
use ferry_operators::TableId;
use serde_json::json;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The background verifier of a running task; stops (and is joined) when dropped.
pub struct Continuous {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Continuous {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the background verifier when the plan asks for it (`None` otherwise).
pub fn start(plan: &Compiled, state: &TaskState) -> Option<Continuous> {
    let cfg = &plan.plan.settings.verify;
    if !cfg.continuous {
        return None;
    }
    let interval = Duration::from_millis(parse_duration_ms(&cfg.interval).expect("checked interval"));
    let stop = Arc::new(AtomicBool::new(false));
    let (plan, state, flag) = (plan.clone(), state.clone(), stop.clone());
    let thread = std::thread::Builder::new()
        .name("ferry-verify".into())
        .spawn(move || sweeps(&plan, &state, interval, flag))
        .expect("the verify thread starts");
    Some(Continuous { stop, thread: Some(thread) })
}

fn sweeps(plan: &Compiled, state: &TaskState, interval: Duration, stop: Arc<AtomicBool>) {
    let cfg = &plan.plan.settings.verify;
    let full_every = Duration::from_millis(parse_duration_ms(&cfg.full_sweep_interval).expect("checked interval"));
    touched::enable();
    let mut next = Instant::now() + interval;
    let mut next_full = next;
    let mut sweep = 0u64;
    // Source tables the newest pass found different.
    let mut differing: Arc<HashSet<TableId>> = Arc::default();
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() < next {
            std::thread::sleep((next - Instant::now()).min(Duration::from_millis(100)));
            continue;
        }
        let started = Instant::now();
        next = started + interval;
        let changed = Arc::new(touched::take());
        let full = started >= next_full;
        let only: Option<RangeFilter> = if full {
            None
        } else if changed.is_empty() && differing.is_empty() {
            continue;
        } else {
            // The changed chunks, and every chunk of a table the previous pass found different
            // (so its result stands until a pass finds it equal again).
            let (changed, differing) = (changed.clone(), differing.clone());
            Some(Arc::new(move |sources: &[TableId], range: &KeyRange| {
                sources.iter().any(|t| {
                    differing.contains(t)
                        || changed.get(t).is_some_and(|k| k.any_in(range.lower.as_deref(), range.upper.as_deref()))
                })
            }))
        };
        let opts = VerifyOptions {
            workers: 1,
            max_rows_per_second: cfg.max_rows_per_second,
            only,
            // A stopping task does not wait for a pass to end.
            cancel: Some(stop.clone()),
            ..VerifyOptions::default()
        };
        sweep += 1;
        match verify(plan, state, &opts) {
            Ok(report) => {
                record(state, sweep, full, &report);
                if full {
                    // Only a sweep that ended: one that failed is tried again at the next pass.
                    next_full = started + full_every;
                }
                let ids = |pick: &dyn Fn(&super::TableReport) -> bool| -> HashSet<TableId> {
                    let names: HashSet<&String> =
                        report.tables.iter().filter(|t| pick(t)).flat_map(|t| &t.sources).collect();
                    (0..plan.catalog.tables.len() as TableId)
                        .filter(|&id| names.contains(&plan.catalog.get(id).name.to_string()))
                        .collect()
                };
                differing = Arc::new(ids(&|t| t.differs()));
                // Keys still unsettled (the task had not caught up) are looked at again next
                // pass: the keys this pass took, or the whole table.
                let unsettled = ids(&|t| t.unsettled > 0);
                if !unsettled.is_empty() {
                    touched::give_back(
                        unsettled
                            .into_iter()
                            .map(|t| (t, changed.get(&t).cloned().unwrap_or(touched::Keys::All)))
                            .collect(),
                    );
                }
            }
            Err(e) => {
                // The changed keys wait for the next pass.
                touched::give_back(Arc::unwrap_or_clone(changed));
                tracing::warn!(sweep, error = %crate::secrets::redact(&e.to_string()), "background verification failed; the next pass tries again")
            }
        }
    }
}

/// The newest background sweep's result as `verify/last.json` holds it (`None`: no sweep yet),
/// with its summary table for the terminal.
pub fn last(state: &TaskState) -> Result<Option<(serde_json::Value, String)>, String> {
    let Some(bytes) = state.store().get(&state.path("verify/last.json")).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let last: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| format!("verify/last.json: {e}"))?;
    let tables: Vec<super::TableReport> =
        serde_json::from_value(last["tables"].clone()).map_err(|e| format!("verify/last.json: {e}"))?;
    let report = Report { tables, seconds: last["seconds"].as_f64().unwrap_or(0.0), ..Report::default() };
    Ok(Some((last, report.summary())))
}

/// Writes a pass's result (`full`: a full sweep) to the state store and logs what differs.
fn record(state: &TaskState, sweep: u64, full: bool, report: &Report) {
    let now = crate::runtime::now_micros();
    let last = json!({
        "sweep": sweep,
        "pass": if full { "full" } else { "changed" },
        "finished_micros": now,
        "seconds": report.seconds,
        "equal": !report.differs(),
        "tables": report.tables,
        "diffs": report.diffs.iter().take(100).collect::<Vec<_>>(),
        "missing": report.missing.iter().take(100).collect::<Vec<_>>(),
        "extra": report.extra.iter().take(100).collect::<Vec<_>>(),
    });
    let store = state.store();
    if let Err(e) = store.put(&state.path("verify/last.json"), serde_json::to_vec_pretty(&last).unwrap_or_default()) {
        tracing::warn!(error = %e, "cannot write the background verification's result");
    }
    if !report.differs() {
        return;
    }
    let mut events =
        store.get(&state.path("verify/events.jsonl")).ok().flatten().map(|b| b.to_vec()).unwrap_or_default();
    for t in report.tables.iter().filter(|t| t.differs()) {
        tracing::warn!(
            table = %t.table,
            different = t.different,
            missing = t.only_source,
            extra = t.only_target,
            "background verification: the target differs from the source (details in verify/last.json)"
        );
        let line = json!({
            "event": "verify_difference", "sweep": sweep, "micros": now, "table": t.table,
            "different": t.different, "only_source": t.only_source, "only_target": t.only_target,
        });
        events.extend_from_slice(line.to_string().as_bytes());
        events.push(b'\n');
    }
    if let Err(e) = store.put(&state.path("verify/events.jsonl"), events) {
        tracing::warn!(error = %e, "cannot write the background verification's events");
    }
}
