//! MySQL/MariaDB source benchmarks, side by side with the raw limits of the same machine in the
//! same run, against the private test server (`scripts/servers start`, then export what it
//! prints):
//!
//! - snapshot of a sysbench-like table (id, k, c CHAR(120), pad CHAR(60)) into `null`, 1 and 2
//!   workers, vs `mariadb --quick -e 'SELECT * …' > /dev/null`;
//! - binlog catch-up of the same rows (decode into `null`) vs
//!   `mariadb-binlog --read-from-remote-server -v > /dev/null` over the same binlog range;
//! - peak memory of a snapshot of a larger table.
//!
//! `FERRY_BENCH_ROWS` (default 2,000,000) and `FERRY_BENCH_BIG_ROWS` (default 10,000,000; 0 to
//! skip) size the tables. Tables are created once and reused by later runs.

mod common;

use common::*;
use std::process::Command;

fn snapshot_plan(table: &str) -> String {
    format!(
        "task: bench_snap\nsource:\n  type: mariadb\n  url: {}\n  bounded: true\n  heartbeat: 100ms\n  chunk_rows: 20000\n\
         target:\n  type: null\ntables:\n  include: ['bench\\.{table}']\nruntime:\n  checkpoint_interval: 1s\n",
        url()
    )
}

fn binlog_plan(from: &(String, u64)) -> String {
    format!(
        "task: bench_binlog\nmode: incremental\nsource:\n  type: mariadb\n  url: {}\n  bounded: true\n  heartbeat: 100ms\n  \
         start:\n    from: position\n    file: {}\n    position: {}\ntarget:\n  type: null\ntables:\n  include: ['bench\\.sbtest_binlog']\n\
         runtime:\n  checkpoint_interval: 1s\n",
        url(),
        from.0,
        from.1
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rows = env_u64("FERRY_BENCH_ROWS", 2_000_000);
    let big = env_u64("FERRY_BENCH_BIG_ROWS", 10_000_000);
    // Rounds per measurement (medians are printed).
    let rounds = env_u64("FERRY_BENCH_ROUNDS", 3) as usize;
    println!(
        "ferry MySQL source, MariaDB at 127.0.0.1:{}, sysbench-like rows (id, k, c CHAR(120), pad CHAR(60)); \
         median of {rounds} interleaved rounds",
        port()
    );
    ensure_table("sbtest1", rows);

    // Snapshot vs the raw read rate.
    let raw_select = || {
        let mut raw = Command::new("mariadb");
        raw.args(["--quick", "-h127.0.0.1", &format!("-P{}", port()), "-uroot", "-e", "SELECT * FROM bench.sbtest1"]);
        timed(raw)
    };
    let plan = snapshot_plan("sbtest1");
    let r = interleaved(rounds, &mut [&mut { raw_select }, &mut || ferry_run(&plan, 1), &mut || ferry_run(&plan, 2)]);
    let raw_rate = rows as f64 / r[0].0;
    line("raw: mariadb --quick SELECT * > /dev/null", rows, r[0].0, r[0].1, None, &r[0].2);
    for (w, (secs, peak, cpu)) in [1, 2].into_iter().zip(&r[1..]) {
        line(&format!("ferry snapshot → null, {w} worker(s)"), rows, *secs, *peak, Some(raw_rate), cpu);
    }

    // Binlog: load the rows again into a fresh table, then decode that binlog range.
    sql("DROP TABLE IF EXISTS bench.sbtest_binlog");
    let (from, to) = ensure_table("sbtest_binlog", rows).expect("a fresh table is loaded");
    let files: Vec<String> = sql("SHOW BINARY LOGS")
        .iter()
        .map(|r| r.get::<String, _>(0).unwrap())
        .filter(|f| *f >= from.0 && *f <= to.0)
        .collect();
    let raw_binlog = || {
        let mut raw = Command::new("mariadb-binlog");
        raw.args([
            "--read-from-remote-server",
            "-h127.0.0.1",
            &format!("-P{}", port()),
            "-uroot",
            "-v",
            &format!("--start-position={}", from.1),
        ]);
        raw.args(&files);
        timed(raw)
    };
    let plan = binlog_plan(&from);
    let r = interleaved(rounds, &mut [&mut { raw_binlog }, &mut || ferry_run(&plan, 1)]);
    let raw_rate = rows as f64 / r[0].0;
    line("raw: mariadb-binlog -v > /dev/null", rows, r[0].0, r[0].1, None, &r[0].2);
    line("ferry binlog catch-up → null", rows, r[1].0, r[1].1, Some(raw_rate), &r[1].2);

    // Peak memory of a big snapshot.
    if big > 0 {
        ensure_table("sbtest_big", big);
        let (secs, peak) = ferry_run(&snapshot_plan("sbtest_big"), 2);
        line("ferry snapshot → null, 2 workers (big table)", big, secs, peak, None, &last_cpu());
    }
}
