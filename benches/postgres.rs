//! PostgreSQL source benchmarks, side by side with the raw limits of the same machine in the
//! same run, against the private test servers (`scripts/servers start`, then export what it
//! prints); the source is the `ferry_src` database:
//!
//! - snapshot into `null` of a sysbench-like table (id, k, c CHAR(120), pad CHAR(60)), 1 and 2
//!   workers, vs `psql -c "\copy (SELECT * FROM …) TO '/dev/null'"`;
//! - full load into MariaDB vs the pipe `psql \copy … TO STDOUT | mariadb LOAD DATA LOCAL
//!   INFILE '/dev/stdin'` into an identical table;
//! - streaming catch-up of `FERRY_BENCH_CDC_ROWS` inserts, then as many updates, into `null`,
//!   vs `pg_recvlogical --plugin=test_decoding` to `/dev/null` over the same WAL range (each
//!   round makes both slots before the writes);
//! - optionally, peak memory of a snapshot of a larger table (`FERRY_BENCH_PG_BIG_ROWS`).
//!
//! Sizes: `FERRY_BENCH_ROWS` (2,000,000), `FERRY_BENCH_CDC_ROWS` (1,000,000),
//! `FERRY_BENCH_PG_BIG_ROWS` (0: skipped); `FERRY_BENCH_ROUNDS` (3) interleaved rounds,
//! medians printed. The snapshot tables are created once and reused by later runs.

mod common;

use common::*;
use std::process::Command;

fn src_url() -> String {
    std::env::var("FERRY_TEST_PG_SOURCE_URL").unwrap_or_else(|_| {
        eprintln!("FERRY_TEST_PG_SOURCE_URL is not set: run `scripts/servers start` and export what it prints");
        std::process::exit(1)
    })
}

/// `psql` on the source database.
fn src_psql(q: &str) -> String {
    let out = Command::new("psql")
        .env("PGOPTIONS", "-c client_min_messages=warning")
        .args([
            "-qAt",
            "-h",
            "127.0.0.1",
            "-p",
            &pg_port(),
            "-U",
            "postgres",
            "-d",
            "ferry_src",
            "-v",
            "ON_ERROR_STOP=1",
        ])
        .args(["-c", q])
        .output()
        .unwrap();
    assert!(out.status.success(), "psql: {q}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `bench.<name>` on the source with `rows` rows (kept when it has them already).
fn ensure_pg_table(name: &str, rows: u64) {
    src_psql("CREATE SCHEMA IF NOT EXISTS bench");
    let have = src_psql(&format!("SELECT count(*) FROM pg_class WHERE oid = to_regclass('bench.{name}')"));
    if have == "1" && src_psql(&format!("SELECT count(*) FROM bench.{name}")) == rows.to_string() {
        return;
    }
    src_psql(&format!("DROP TABLE IF EXISTS bench.{name}; CREATE TABLE bench.{name} {PG_TABLE}"));
    src_psql(&format!(
        "INSERT INTO bench.{name} SELECT g, ((g::bigint * 7919) % 1000000)::int, md5(g::text) || repeat('-', 88), md5((g + 1)::text) || \
         repeat('x', 28) FROM generate_series(1, {rows}) g; ANALYZE bench.{name}"
    ));
}

fn plan(task: &str, include: &str, target: &str, extra: &str) -> String {
    format!(
        "task: {task}\nsource:\n  type: postgres\n  url: {}\n  bounded: true\n  chunk_rows: 50000\n{extra}\
         target:\n{target}tables:\n  include: ['{include}']\nruntime:\n  checkpoint_interval: 1s\n  batch_rows: 10000\n",
        src_url()
    )
}

fn psql_copy_out(table: &str) -> impl FnMut() -> (f64, f64) + '_ {
    move || {
        let mut raw = Command::new("psql");
        raw.args(["-h", "127.0.0.1", "-p", &pg_port(), "-U", "postgres", "-d", "ferry_src"]);
        raw.args(["-c", &format!("\\copy (SELECT * FROM bench.{table}) TO '/dev/null'")]);
        timed(raw)
    }
}

/// Bytes of the table's `COPY` text.
fn copy_bytes(table: &str) -> u64 {
    let out = src_psql(&format!("SELECT sum(octet_length(t::text) - 1)::bigint FROM bench.{table} t"));
    out.parse().unwrap_or_else(|e| panic!("the COPY bytes of bench.{table}: {out:?}: {e}"))
}

fn snapshot_case(rounds: usize, rows: u64) {
    ensure_pg_table("pg_sbtest", rows);
    set_row_bytes(copy_bytes("pg_sbtest") as f64 / rows as f64);
    // The slots are dropped after each run: no WAL kept for them.
    let null = plan("bench_pg_snap", "bench\\.pg_sbtest", "  type: null\n", "");
    let drop_slot = || {
        src_psql(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'ferry_bench_pg%' \
             AND NOT active",
        )
    };
    let mut raw = psql_copy_out("pg_sbtest");
    let r = interleaved(
        rounds,
        &mut [
            &mut raw,
            &mut || {
                let t = ferry_run(&null, 1);
                drop_slot();
                t
            },
            &mut || {
                let t = ferry_run(&null, 2);
                drop_slot();
                t
            },
        ],
    );
    let raw_rate = rows as f64 / r[0].0;
    line("raw: psql \\copy (SELECT *) TO /dev/null", rows, r[0].0, r[0].1, None, &r[0].2);
    for (w, (secs, peak, cpu)) in [1, 2].iter().zip(&r[1..]) {
        line(&format!("ferry PostgreSQL snapshot → null, {w} worker(s)"), rows, *secs, *peak, Some(raw_rate), cpu);
    }
}

fn full_load_case(rounds: usize, rows: u64) {
    let maria_table = "bench.pg_load";
    let create = format!(
        "CREATE DATABASE IF NOT EXISTS bench; DROP TABLE IF EXISTS {maria_table}; CREATE TABLE {maria_table} \
         (id int PRIMARY KEY, k int NOT NULL, c char(120) NOT NULL, pad char(60) NOT NULL)"
    );
    let pipe = || {
        sql_batch(&create);
        let mut cmd = Command::new("bash");
        cmd.args([
            "-o",
            "pipefail",
            "-c",
            &format!(
                "psql -h 127.0.0.1 -p {} -U postgres -d ferry_src -c \"\\copy (SELECT * FROM bench.pg_sbtest) TO STDOUT\" | \
                 mariadb --local-infile=1 -h127.0.0.1 -P{} -uroot -e \"LOAD DATA LOCAL INFILE '/dev/stdin' INTO TABLE \
                 {maria_table}\"",
                pg_port(),
                port()
            ),
        ]);
        timed(cmd)
    };
    let target = format!("  type: mariadb\n  url: {}\n", url());
    let load = plan("bench_pg_load", "bench\\.pg_sbtest", &target, "")
        + "route:\n  database: bench\n  table: pg_load\nsemantics: exactly-once\n";
    let ferry = || {
        sql_batch(&create);
        let t = ferry_run(&load, 2);
        src_psql(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'ferry_bench_pg_load' \
             AND NOT active",
        );
        t
    };
    let (mut pipe, mut ferry) = (pipe, ferry);
    let r = interleaved(rounds, &mut [&mut pipe, &mut ferry]);
    let raw_rate = rows as f64 / r[0].0;
    line("pipe: psql \\copy | mariadb LOAD DATA", rows, r[0].0, r[0].1, None, &r[0].2);
    line("ferry PostgreSQL → MariaDB full load, 2 workers", rows, r[1].0, r[1].1, Some(raw_rate), &r[1].2);
}

/// One catch-up round: both slots made, then `rows` inserts (or updates of them), then each
/// consumer timed over the same range.
fn stream_case(rounds: usize, rows: u64) {
    src_psql(&format!(
        "CREATE SCHEMA IF NOT EXISTS bench; DROP TABLE IF EXISTS bench.pg_cdc; CREATE TABLE bench.pg_cdc {PG_TABLE}"
    ));
    src_psql(
        "DROP PUBLICATION IF EXISTS ferry_bench_pg_cdc; CREATE PUBLICATION ferry_bench_pg_cdc FOR TABLE bench.pg_cdc",
    );
    for what in ["inserts", "updates"] {
        let mut samples: Vec<Vec<(f64, f64, Cpu)>> = vec![Vec::new(), Vec::new()];
        let mut bytes = 0u64;
        for _ in 0..rounds {
            for s in ["ferry_bench_pg_cdc", "bench_td"] {
                src_psql(&format!(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{s}'"
                ));
            }
            if what == "updates" {
                src_psql(&format!(
                    "TRUNCATE bench.pg_cdc; INSERT INTO bench.pg_cdc SELECT g, g, md5(g::text), 'p' FROM generate_series(1, {rows}) g"
                ));
            } else {
                src_psql("TRUNCATE bench.pg_cdc");
            }
            let start =
                src_psql("SELECT lsn FROM pg_create_logical_replication_slot('ferry_bench_pg_cdc', 'pgoutput')");
            src_psql("SELECT pg_create_logical_replication_slot('bench_td', 'test_decoding')");
            let before = src_psql("SELECT (pg_current_wal_lsn() - '0/0')::bigint").parse::<u64>().unwrap();
            if what == "updates" {
                src_psql("UPDATE bench.pg_cdc SET k = k + 1, pad = 'q'");
            } else {
                src_psql(&format!(
                    "INSERT INTO bench.pg_cdc SELECT g, g, md5(g::text), 'p' FROM generate_series(1, {rows}) g"
                ));
            }
            let end = src_psql("SELECT pg_current_wal_insert_lsn()");
            bytes = src_psql("SELECT (pg_current_wal_lsn() - '0/0')::bigint").parse::<u64>().unwrap() - before;
            let mut raw = Command::new("pg_recvlogical");
            raw.args(["-h", "127.0.0.1", "-p", &pg_port(), "-U", "postgres", "-d", "ferry_src", "--slot", "bench_td"]);
            raw.args(["--start", "--no-loop", "-f", "/dev/null", "--endpos", &end]);
            let (secs, peak) = timed(raw);
            samples[0].push((secs, peak, last_cpu()));
            let cdc = plan(
                "bench_pg_cdc",
                "bench\\.pg_cdc",
                "  type: null\n",
                &format!("  start:\n    from: lsn\n    lsn: '{start}'\n  heartbeat_interval: 100ms\n"),
            ) + "mode: incremental\n";
            let (secs, peak) = ferry_run(&cdc, 1);
            samples[1].push((secs, peak, last_cpu()));
        }
        set_row_bytes(bytes as f64 / rows as f64);
        let med: Vec<(f64, f64, Cpu)> = samples
            .into_iter()
            .map(|mut v| {
                let peak = v.iter().map(|r| r.1).fold(0.0, f64::max);
                v.sort_by(|a, b| a.0.total_cmp(&b.0));
                let mid = v.swap_remove(v.len() / 2);
                (mid.0, peak, mid.2)
            })
            .collect();
        let raw_rate = rows as f64 / med[0].0;
        line(&format!("raw: pg_recvlogical test_decoding ({what})"), rows, med[0].0, med[0].1, None, &med[0].2);
        line(&format!("ferry PostgreSQL stream → null ({what})"), rows, med[1].0, med[1].1, Some(raw_rate), &med[1].2);
    }
    for s in ["ferry_bench_pg_cdc", "bench_td"] {
        src_psql(&format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{s}'"
        ));
    }
}

fn main() {
    let rounds = env_u64("FERRY_BENCH_ROUNDS", 3) as usize;
    let rows = env_u64("FERRY_BENCH_ROWS", 2_000_000);
    let cdc = env_u64("FERRY_BENCH_CDC_ROWS", 1_000_000);
    let big = env_u64("FERRY_BENCH_PG_BIG_ROWS", 0);
    snapshot_case(rounds, rows);
    full_load_case(rounds, rows);
    stream_case(rounds, cdc);
    if big > 0 {
        ensure_pg_table("pg_big", big);
        set_row_bytes(copy_bytes("pg_big") as f64 / big as f64);
        let null = plan("bench_pg_big", "bench\\.pg_big", "  type: null\n", "");
        let (secs, peak) = ferry_run(&null, 2);
        src_psql("SELECT pg_drop_replication_slot('ferry_bench_pg_big')");
        line("ferry PostgreSQL snapshot → null, 2 workers (big)", big, secs, peak, None, &last_cpu());
    }
}
