//! The datagen source operator.
//!
//! Partition `p` (one generator stream per table shard) is read by worker `p mod peers`. The
//! operator emits whole transactions stamped with its open epoch; when the checkpoint interval
//! has passed (or, when replaying after a restart, when the recorded boundary is reached) it
//! closes the epoch through [`crate::checkpoint::Epochs`]. An exhausted bounded source closes
//! its last epoch and drops its capability, which lets the run end once everything is
//! committed; a savepoint stop does the same at the next epoch end.

use super::{DatagenConfig, ShardGen};
use crate::checkpoint::Next;
use crate::connector::SourceCtx;
use ferry_operators::Change;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, StreamVec};

/// Changes emitted per activation before yielding to other operators.
const BATCH: usize = 4096;

/// Builds the datagen source for this worker.
pub fn datagen<'s>(scope: Scope<'s, u64>, cx: &SourceCtx, cfg: DatagenConfig) -> StreamVec<'s, u64, Change> {
    let index = scope.index();
    let peers = scope.peers();
    let (plan, restore, metrics, failure) = (cx.plan.clone(), &cx.restore, cx.metrics.clone(), cx.failure.clone());
    let mut epochs = cx.epochs(index, peers);
    let interval = Duration::from_millis(plan.plan.checkpoint_ms);
    // The generator's catalog (every table), and the selected tables' ids in the plan.
    let full = super::catalog(&cfg);
    let shards = cfg.shards_per_table;
    let mut gens: Vec<(ShardGen, u32)> = Vec::new();
    for (plan_id, schema) in plan.catalog.tables.iter().enumerate() {
        let full_id =
            full.iter().position(|t| t.name == schema.name).expect("selected table is in the generator's catalog");
        for shard in 0..shards {
            let g = ShardGen::new(&cfg, &full, full_id as u32, shard)
                .with_spare_columns(plan.tables[plan_id].transform.spare_columns());
            if g.partition() as usize % peers == index {
                gens.push((g, plan_id as u32));
            }
        }
    }
    for (g, _) in gens.iter_mut() {
        if let Some(off) = restore.manifest.offsets.get(&g.partition()).and_then(|v| v.as_u64()) {
            g.skip_to(off);
        }
    }
    let start_epoch = restore.start_epoch();
    let total_partitions = (plan.catalog.tables.len() as u64 * shards as u64).max(1);
    let rate = cfg.rate.map(|r| r as f64 * gens.len() as f64 / total_partitions as f64);

    source(scope, "Datagen", move |cap, info| {
        let activator = scope.activator_for(info.address);
        let mut cap = Some(cap);
        if let Some(c) = cap.as_mut() {
            c.downgrade(&start_epoch);
        }
        if gens.is_empty() {
            cap = None;
        }
        metrics.epoch.fetch_max(start_epoch, Ordering::Relaxed);
        metrics.note_source_time(crate::runtime::now_micros());
        let mut deadline = Instant::now() + interval;
        let started = Instant::now();
        let mut emitted_here: u64 = 0;
        let mut rr = 0usize;
        let mut buf: Vec<Change> = Vec::with_capacity(BATCH);
        move |output| {
            let Some(c) = cap.as_mut() else { return };
            let epoch = *c.time();
            let target: Option<std::collections::BTreeMap<u32, u64>> = epochs
                .replaying(epoch)
                .map(|b| b.offsets.iter().filter_map(|(k, v)| Some((*k, v.as_u64()?))).collect());
            let mut produced = 0usize;
            let mut wait: Option<Duration> = None;
            {
                let mut session = output.session(&*c);
                let n = gens.len();
                let mut idle_rounds = 0;
                while produced < BATCH && idle_rounds < n {
                    let (g, table) = &mut gens[rr % n];
                    rr += 1;
                    let allowed = match &target {
                        Some(t) => g.emitted() < t.get(&g.partition()).copied().unwrap_or(g.emitted()),
                        None => !g.is_exhausted(),
                    };
                    if !allowed || g.is_exhausted() {
                        idle_rounds += 1;
                        continue;
                    }
                    if let Some(r) = rate {
                        let due = (r * started.elapsed().as_secs_f64()) as u64;
                        if emitted_here >= due {
                            wait = Some(Duration::from_secs_f64(
                                ((emitted_here + 1) as f64 / r - started.elapsed().as_secs_f64()).max(0.001),
                            ));
                            break;
                        }
                    }
                    idle_rounds = 0;
                    let before = buf.len();
                    if g.next_transaction(&mut buf) {
                        for ch in &mut buf[before..] {
                            ch.table = *table;
                        }
                        let k = buf.len() - before;
                        produced += k;
                        emitted_here += k as u64;
                    }
                    if buf.len() >= 1024 {
                        session.give_container(&mut buf);
                        // The container left with its buffer: size the next one at once.
                        buf.reserve(1024 + 64);
                    }
                }
                if !buf.is_empty() {
                    session.give_container(&mut buf);
                }
            }
            metrics.rows_in.fetch_add(produced as u64, Ordering::Relaxed);
            let exhausted = gens.iter().all(|(g, _)| g.is_exhausted());
            let reached = match &target {
                Some(t) => gens.iter().all(|(g, _)| t.get(&g.partition()).is_none_or(|&o| g.emitted() >= o)),
                None => false,
            };
            let close =
                if target.is_some() { reached } else { exhausted || Instant::now() >= deadline || epochs.stop_due() };
            if close {
                let done = exhausted && !epochs.replays_after_this();
                let offsets = gens.iter().map(|(g, _)| (g.partition(), g.emitted().into())).collect();
                match epochs.close(epoch, offsets, done) {
                    Ok(Next::Open(next)) => {
                        c.downgrade(&next);
                        metrics.open_epoch(next);
                        // Generated changes carry made-up commit times; the generator is
                        // never behind itself.
                        metrics.note_source_time(crate::runtime::now_micros());
                        deadline = Instant::now() + interval;
                    }
                    Ok(Next::End) => {
                        cap = None;
                        return;
                    }
                    Err(e) => {
                        // The capability stays: no epoch passes without its record.
                        failure.report(e);
                        return;
                    }
                }
            }
            match wait {
                Some(w) => activator.activate_after(
                    w.min(deadline.saturating_duration_since(Instant::now())).max(Duration::from_millis(1)),
                ),
                None if produced == 0 && target.is_none() => {
                    activator.activate_after(deadline.saturating_duration_since(Instant::now()))
                }
                None => activator.activate(),
            }
        }
    })
}
