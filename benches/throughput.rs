//! Throughput of the engine core: datagen → null and datagen → files, with 1 and 2 workers,
//! through the router, a row filter and a function field; next to the raw limit of the same
//! machine in the same run (the generator alone on one thread, no dataflow).
//!
//! `cargo bench --bench throughput` prints one line per case: changes/s, changes/s per worker,
//! MB/s written (files), and the case's peak resident memory. Every case runs in a child
//! process of its own so its peak memory is its own. `FERRY_BENCH_CHANGES` scales the runs.

use ferry::connectors::datagen::{catalog, DatagenConfig, ShardGen};
use ferry::engine::{run, RunOptions};
use std::process::Command;
use std::time::Instant;

fn changes() -> u64 {
    std::env::var("FERRY_BENCH_CHANGES").ok().and_then(|v| v.parse().ok()).unwrap_or(4_000_000)
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let m = e.metadata().unwrap();
            n += if m.is_dir() { dir_bytes(&e.path()) } else { m.len() };
        }
    }
    n
}

fn plan(target: &str, n: u64) -> String {
    format!(
        "task: bench\nsource:\n  type: datagen\n  seed: 3\n  databases: 2\n  tables_per_database: 4\n  changes: {n}\n\
         target:\n{target}\ntables:\n  exclude: ['.*\\.events']\nsemantics: exactly-once\nwrite_mode: upsert\n\
         transforms:\n\
           - {{tables: '.*\\.customers', filter: \"id >= 10\", add: {{tag: \"upper(country)\"}}}}\n\
           - {{tables: '.*\\.orders', filter: \"status != 'cancelled'\", add: {{tag: \"upper(status)\"}}}}\n\
           - {{tables: '.*\\.order_items', filter: \"qty > 1\", add: {{tag: \"upper(sku)\"}}}}\n\
         runtime:\n  checkpoint_interval: 1s\n  batch_rows: 20000\n"
    )
}

/// Runs one case in this (child) process and prints its result line.
fn child(case: &str) {
    let (target, workers) = match case {
        "null-1" => ("  type: null", 1),
        "null-2" => ("  type: null", 2),
        "files-1" => ("  type: files\n  path: ./out", 1),
        "files-2" => ("  type: files\n  path: ./out", 2),
        _ => panic!("unknown case {case}"),
    };
    let n = if case.starts_with("files") { changes() / 2 } else { changes() };
    let dir = tempfile::tempdir().unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    let text = plan(target, n);
    let p = ferry::plan::load("bench.yaml", &text).unwrap();
    let cat = ferry::plan::discover(&p.source).unwrap();
    let compiled = ferry::plan::compile(p, &cat).unwrap();
    let start = Instant::now();
    let s = run(
        compiled,
        RunOptions { workers: Some(workers), hosts: vec![], process: 0, from_scratch: true, progress: false },
    )
    .unwrap();
    let secs = start.elapsed().as_secs_f64();
    let bytes = dir_bytes(&dir.path().join("out"));
    let rate = s.rows_in as f64 / secs;
    println!(
        "{case:<10} {:>10} changes {:>7.2}s {:>10.0} changes/s {:>10.0} /worker {:>8.1} MB/s {:>8.1} MiB peak",
        s.rows_in,
        secs,
        rate,
        rate / workers as f64,
        bytes as f64 / secs / 1e6,
        peak_rss_mib()
    );
}

/// The raw limit: the generator alone, one thread, rows dropped as they come.
fn raw_limit() {
    let cfg = DatagenConfig {
        seed: 3,
        databases: 2,
        tables_per_database: 4,
        changes: Some(changes()),
        ..DatagenConfig::default()
    };
    let cat = catalog(&cfg);
    let start = Instant::now();
    let mut n = 0u64;
    let mut buf = Vec::new();
    for (t, s) in cat.iter().enumerate().filter(|(_, s)| !s.name.table.starts_with("events")) {
        let _ = s;
        for shard in 0..cfg.shards_per_table {
            let mut g = ShardGen::new(&cfg, &cat, t as u32, shard);
            while g.next_transaction(&mut buf) {
                n += buf.len() as u64;
                buf.clear();
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{:<10} {n:>10} changes {secs:>7.2}s {:>10.0} changes/s   (generator only, 1 thread)",
        "raw-gen",
        n as f64 / secs
    );
}

fn main() {
    if let Ok(case) = std::env::var("FERRY_BENCH_CASE") {
        child(&case);
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!(
        "ferry throughput (datagen, 2 databases × 3 keyed tables, filter + function field), {} changes",
        changes()
    );
    raw_limit();
    let exe = std::env::current_exe().unwrap();
    for case in ["null-1", "null-2", "files-1", "files-2"] {
        let out = Command::new(&exe).env("FERRY_BENCH_CASE", case).output().unwrap();
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            eprintln!("{case} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}
