//! MySQL/MariaDB source benchmarks, side by side with the raw limits of the same machine in the
//! same run, against the private test servers (`scripts/servers start`, then export what it
//! prints):
//!
//! - snapshot into `null` of three datasets, vs `mariadb --quick -e 'SELECT * …' > /dev/null`:
//!   a sysbench-like table (id, k, c CHAR(120), pad CHAR(60)), 1 and 2 workers, with the
//!   server-snapshot handoff and with the watermark one; an all-types
//!   table (every MariaDB type family); 200 small tables (many tables, 1k rows each);
//! - binlog catch-up of `FERRY_BENCH_CDC_ROWS` inserts, then as many updates (full before and
//!   after images), into `null` and into PostgreSQL, vs
//!   `mariadb-binlog --read-from-remote-server -v > /dev/null` over the same binlog range, and
//!   the transfer alone (`mariadb-binlog --raw` into tmpfs: the floor of any binlog client);
//! - the binlog row decoder on its own: the same binlog files (saved with `mariadb-binlog
//!   --raw`) decoded in memory, rows/s (elements/s) and MB/s of binlog;
//! - optionally, peak memory of a snapshot of a larger table (`FERRY_BENCH_BIG_ROWS`).
//!
//! Sizes: `FERRY_BENCH_ROWS` (default 2,000,000), `FERRY_BENCH_ALLTYPES_ROWS` (1,000,000),
//! `FERRY_BENCH_TABLES` (200, of 1,000 rows), `FERRY_BENCH_CDC_ROWS` (1,000,000),
//! `FERRY_BENCH_BIG_ROWS` (0: skipped; 0 skips any of these cases). Tables other than the change-stream one are created once
//! and reused by later runs. `FERRY_BENCH_ROUNDS` (3) interleaved rounds, medians printed.

mod common;

use common::*;
use std::process::Command;
use std::time::Instant;

fn snapshot_plan(include: &str, handoff: &str) -> String {
    format!(
        "task: bench_snap\nsource:\n  type: mariadb\n  url: {}\n  bounded: true\n  heartbeat: 100ms\n  chunk_rows: 20000\n\
         \x20 handoff: {handoff}\ntarget:\n  type: null\ntables:\n  include: ['{include}']\nruntime:\n  checkpoint_interval: 1s\n",
        url()
    )
}

fn binlog_plan(from: &(String, u64), target: &str) -> String {
    format!(
        // The plan's defaults otherwise (heartbeat, checkpoint interval, batch size): a bounded
        // run ends when it has read up to its end position, not at a heartbeat.
        "task: bench_binlog\nmode: incremental\nsource:\n  type: mariadb\n  url: {}\n  bounded: true\n  \
         start:\n    from: position\n    file: {}\n    position: {}\ntarget:\n{target}tables:\n  include: ['bench\\.sbtest_cdc']\n\
         semantics: exactly-once\n",
        url(),
        from.0,
        from.1
    )
}

fn raw_select(query: &str) -> impl FnMut() -> (f64, f64) + '_ {
    move || {
        let mut raw = Command::new("mariadb");
        raw.args(["--quick", "-h127.0.0.1", &format!("-P{}", port()), "-uroot", "-e", query]);
        timed(raw)
    }
}

/// A snapshot case: the raw read of `query` next to ferry reading `include` with each of
/// `workers` (a number of workers and the handoff).
fn snapshot_case(rounds: usize, label: &str, rows: u64, query: &str, include: &str, workers: &[(usize, &str)]) {
    set_row_bytes(text_bytes(query) as f64 / rows as f64);
    let mut raw = raw_select(query);
    let mut runs: Vec<Box<dyn FnMut() -> (f64, f64)>> = vec![Box::new(&mut raw)];
    for &(w, handoff) in workers {
        let plan = snapshot_plan(include, handoff);
        runs.push(Box::new(move || ferry_run(&plan, w)));
    }
    let mut refs: Vec<&mut dyn FnMut() -> (f64, f64)> = runs.iter_mut().map(|r| r.as_mut() as _).collect();
    let r = interleaved(rounds, &mut refs);
    let raw_rate = rows as f64 / r[0].0;
    line(&format!("raw: mariadb --quick SELECT * ({label})"), rows, r[0].0, r[0].1, None, &r[0].2);
    for ((w, handoff), (secs, peak, cpu)) in workers.iter().zip(&r[1..]) {
        let how = if *handoff == "watermark" { ", watermark" } else { "" };
        line(&format!("ferry snapshot → null, {w} worker(s){how} ({label})"), rows, *secs, *peak, Some(raw_rate), cpu);
    }
}

/// The binlog part of one range: `mariadb-binlog -v`, ferry into null and into PostgreSQL, and
/// the decoder alone over the saved files. The PostgreSQL table starts empty for the inserts;
/// for the updates it starts with the rows the inserts left (kept in `bench.sbtest_cdc_base`),
/// so every update meets its row.
fn binlog_case(rounds: usize, what: &str, rows: u64, from: (String, u64), to: (String, u64)) {
    let updates = what == "updates";
    let files = binlog_files(&from, &to);
    let dir = tempfile::tempdir().unwrap();
    let raw_args = |raw: &mut Command| {
        raw.args(["--read-from-remote-server", "-h127.0.0.1", &format!("-P{}", port()), "-uroot"]);
    };
    let mut save = Command::new("mariadb-binlog");
    raw_args(&mut save);
    save.arg("--raw").arg(format!("--result-file={}/", dir.path().display())).args(&files);
    assert!(save.status().unwrap().success(), "mariadb-binlog --raw failed");
    let bytes: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(dir.path().join(f)).unwrap()).collect();
    let total: usize = bytes.iter().map(Vec::len).sum();
    set_row_bytes(total as f64 / rows as f64);

    let raw_binlog = || {
        let mut raw = Command::new("mariadb-binlog");
        raw_args(&mut raw);
        raw.args(["-v", &format!("--start-position={}", from.1), &format!("--stop-position={}", to.1)]);
        raw.args(&files);
        timed(raw)
    };
    // The transfer alone: the same files fetched raw into memory (tmpfs), nothing decoded or
    // printed: the floor any binlog client reaches on this machine. Whole files (`--raw`
    // takes no stop position): the range starts right after a rotation and ends at the
    // file's end, give or take the table's DDL.
    let transfer = || {
        let shm = std::path::Path::new("/dev/shm");
        let out = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
        let mut raw = Command::new("mariadb-binlog");
        raw_args(&mut raw);
        raw.arg("--raw").arg(format!("--result-file={}/", out.path().display())).args(&files);
        timed(raw)
    };
    let null = binlog_plan(&from, "  type: null\n");
    let pg = binlog_plan(&from, &format!("  type: postgres\n  url: {}\n", pg_url()));
    psql("CREATE SCHEMA IF NOT EXISTS bench");
    let r = interleaved(
        rounds,
        &mut [&mut { raw_binlog }, &mut || ferry_run(&null, 1), &mut { transfer }, &mut || {
            psql(&format!("DROP TABLE IF EXISTS bench.sbtest_cdc; CREATE TABLE bench.sbtest_cdc {PG_TABLE}"));
            if updates {
                psql("INSERT INTO bench.sbtest_cdc SELECT * FROM bench.sbtest_cdc_base");
            }
            ferry_run(&pg, 2)
        }],
    );
    if !updates {
        // The inserts' result, where the updates start from.
        psql(
            "DROP TABLE IF EXISTS bench.sbtest_cdc_base; CREATE TABLE bench.sbtest_cdc_base AS TABLE bench.sbtest_cdc",
        );
    }
    let raw_rate = rows as f64 / r[0].0;
    line(&format!("raw: mariadb-binlog -v > /dev/null ({what})"), rows, r[0].0, r[0].1, None, &r[0].2);
    line(&format!("ferry binlog catch-up → null, 1 worker ({what})"), rows, r[1].0, r[1].1, Some(raw_rate), &r[1].2);
    line(
        &format!("raw: binlog transfer only, mariadb-binlog --raw ({what})"),
        rows,
        r[2].0,
        r[2].1,
        Some(raw_rate),
        &r[2].2,
    );
    line(
        &format!("ferry binlog catch-up → PostgreSQL, 2 workers ({what})"),
        rows,
        r[3].0,
        r[3].1,
        Some(raw_rate),
        &r[3].2,
    );

    // The decoder alone, in memory (no network, no engine).
    let opts = mysql_async::Opts::from_url(&url()).unwrap();
    let mut times = Vec::new();
    let mut decoded = 0;
    for _ in 0..rounds.max(3) {
        let mut reader = ferry::runtime::io_runtime()
            .block_on(ferry::connectors::mysql::binlog::BinlogReader::offline(opts.clone()))
            .unwrap();
        let start = Instant::now();
        decoded = 0;
        for b in &bytes {
            decoded += reader.decode_file(b).unwrap();
        }
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let secs = times[times.len() / 2];
    assert!(decoded >= rows, "the saved binlog holds {decoded} row changes, expected at least {rows}");
    println!(
        "{:<48} {decoded:>9} rows {secs:>7.2}s {:>10.0} rows/s {:>7.1} MB/s   (elements/s; {:.1}× mariadb-binlog -v)",
        format!("micro: binlog row decode, in memory ({what})"),
        decoded as f64 / secs,
        total as f64 / secs / 1e6,
        decoded as f64 / secs / raw_rate
    );
    summary([
        &format!("micro: binlog row decode, in memory ({what})"),
        &format!("{:.0}", decoded as f64 / secs),
        &format!("{:.1}", total as f64 / secs / 1e6),
        &format!("{:.2}", decoded as f64 / secs / raw_rate),
        "mariadb-binlog -v",
        "",
        "",
        "",
        "decoder only, binlog MB/s",
    ]);
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rows = env_u64("FERRY_BENCH_ROWS", 2_000_000);
    let alltypes = env_u64("FERRY_BENCH_ALLTYPES_ROWS", 1_000_000);
    let tables = env_u64("FERRY_BENCH_TABLES", 200) as u32;
    let cdc_rows = env_u64("FERRY_BENCH_CDC_ROWS", 1_000_000);
    let big = env_u64("FERRY_BENCH_BIG_ROWS", 0);
    let rounds = env_u64("FERRY_BENCH_ROUNDS", 3) as usize;
    println!(
        "ferry MySQL source, MariaDB at 127.0.0.1:{}; median of {rounds} interleaved rounds; MB/s as the \
         rows' SELECT * text (binlog lines: as binlog bytes)",
        port()
    );

    if rows > 0 {
        ensure_table("sbtest1", rows);
        // The server-snapshot handoff (MariaDB's default) and the watermark one (MySQL's), same data.
        snapshot_case(
            rounds,
            "sysbench-like",
            rows,
            "SELECT * FROM bench.sbtest1",
            "bench\\.sbtest1",
            &[(1, "server-snapshot"), (2, "server-snapshot"), (1, "watermark"), (2, "watermark")],
        );
    }

    if alltypes > 0 {
        ensure_alltypes(alltypes);
        snapshot_case(
            rounds,
            "all types",
            alltypes,
            "SELECT * FROM bench.alltypes",
            "bench\\.alltypes",
            &[(2, "server-snapshot")],
        );
    }

    if tables > 0 {
        ensure_many(tables, 1000);
        let query: String = (0..tables).map(|t| format!("SELECT * FROM bench_many.t{t:03};")).collect();
        let label = format!("{tables} tables × 1k rows");
        snapshot_case(rounds, &label, tables as u64 * 1000, &query, "bench_many\\..*", &[(2, "server-snapshot")]);
    }

    if cdc_rows > 0 {
        with_cdc(
            cdc_rows,
            |from, to| binlog_case(rounds, "inserts", cdc_rows, from, to),
            |from, to| binlog_case(rounds, "updates", cdc_rows, from, to),
        );
    }

    // Peak memory of a big snapshot.
    if big > 0 {
        ensure_table("sbtest_big", big);
        let (secs, peak) = ferry_run(&snapshot_plan("bench\\.sbtest_big", "auto"), 2);
        line("ferry snapshot → null, 2 workers (big table)", big, secs, peak, None, &last_cpu());
    }
}
