//! Throughput of the engine core: datagen → null and datagen → files, with 1 and 2 workers,
//! through the router, a row filter and a function field; next to the raw limit of the same
//! machine in the same run (the generator alone on one thread, no dataflow).
//!
//! `cargo bench --bench throughput` prints one line per case: changes/s, changes/s per worker,
//! MB/s written (files), and the case's peak resident memory. Every case runs in a child
//! process of its own so its peak memory is its own. `FERRY_BENCH_CHANGES` scales the runs.

mod common;

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
    let p = ferry::connectors::load("bench.yaml", &text).unwrap();
    let cat = ferry::plan::discover(&p).unwrap();
    let compiled = ferry::plan::compile(p, &cat).unwrap();
    let start = Instant::now();
    let s = run(
        compiled,
        RunOptions { workers: Some(workers), hosts: vec![], process: 0, from_scratch: true, progress: false },
    )
    .unwrap();
    let secs = start.elapsed().as_secs_f64();
    let bytes = dir_bytes(&dir.path().join("out"));
    // One machine-readable line for the parent: rows, seconds, bytes, peak MiB, CPU seconds.
    println!("{} {secs} {bytes} {} {}", s.rows_in, peak_rss_mib(), cpu_seconds());
}

/// User + system CPU seconds of this process so far (fields 14 and 15 of /proc/self/stat).
fn cpu_seconds() -> f64 {
    let st = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = st.rfind(") ").map_or("", |i| &st[i + 2..]);
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11..13).map_or(0.0, |v| v.iter().filter_map(|x| x.parse::<f64>().ok()).sum()) / 100.0
}

/// One case's result.
struct Run {
    rows: u64,
    secs: f64,
    bytes: u64,
    peak: f64,
    cpu: f64,
}

fn run_case(case: &str) -> Option<Run> {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(&exe).env("FERRY_BENCH_CASE", case).output().unwrap();
    if !out.status.success() {
        eprintln!("{case} failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = text.split_whitespace().collect();
    Some(Run {
        rows: f.first()?.parse().ok()?,
        secs: f.get(1)?.parse().ok()?,
        bytes: f.get(2)?.parse().ok()?,
        peak: f.get(3)?.parse().ok()?,
        cpu: f.get(4)?.parse().ok()?,
    })
}

/// The raw limit: the generator alone, one thread, rows dropped as they come: changes, seconds.
fn raw_limit() -> (u64, f64) {
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
    (n, start.elapsed().as_secs_f64())
}

fn main() {
    if let Ok(case) = std::env::var("FERRY_BENCH_CASE") {
        child(&case);
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds = std::env::var("FERRY_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3usize).max(1);
    println!(
        "ferry throughput (datagen, 2 databases × 3 keyed tables, filter + function field): {} changes \
         generated, the 3/4 in those tables measured (half of that into files); median of {rounds} \
         interleaved rounds; × = rate ÷ the generator alone",
        changes()
    );
    let cases = ["null-1", "null-2", "files-1", "files-2"];
    let mut gen: Vec<(u64, f64)> = Vec::new();
    let mut runs: Vec<Vec<Run>> = cases.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        gen.push(raw_limit());
        for (case, r) in cases.iter().zip(runs.iter_mut()) {
            r.extend(run_case(case));
        }
    }
    gen.sort_by(|a, b| a.1.total_cmp(&b.1));
    let (gen_n, gen_secs) = gen[gen.len() / 2];
    let gen_rate = gen_n as f64 / gen_secs;
    println!(
        "{:<10} {gen_n:>10} changes {gen_secs:>6.2}s {gen_rate:>10.0} changes/s   (the generator alone, 1 thread, no dataflow)",
        "raw-gen",
    );
    for (case, mut r) in cases.iter().zip(runs) {
        if r.is_empty() {
            continue;
        }
        let peak = r.iter().map(|r| r.peak).fold(0.0, f64::max);
        r.sort_by(|a, b| a.secs.total_cmp(&b.secs));
        let m = &r[r.len() / 2];
        let workers: f64 = case[case.len() - 1..].parse().unwrap();
        let rate = m.rows as f64 / m.secs;
        println!(
            "{case:<10} {:>10} changes {:>6.2}s {rate:>10.0} changes/s {:>10.0} /worker {:>5.2}× {:>7.1} MB/s \
             {peak:>7.1} MiB peak {:>6.2} cpu s/M changes",
            m.rows,
            m.secs,
            rate / workers,
            rate / gen_rate,
            m.bytes as f64 / m.secs / 1e6,
            m.cpu / (m.rows as f64 / 1e6),
        );
        common::summary([
            &format!("engine: datagen → {} (filter + function field)", case.replace('-', ", workers: ")),
            &format!("{rate:.0}"),
            &format!("{:.1}", m.bytes as f64 / m.secs / 1e6),
            &format!("{:.2}", rate / gen_rate),
            "the generator alone",
            "",
            &format!("{:.2}", m.cpu / (m.rows as f64 / 1e6)),
            &format!("{peak:.0}"),
            &format!("{:.0} per worker", rate / workers),
        ]);
    }
}
