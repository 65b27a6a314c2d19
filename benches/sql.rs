//! Database-target benchmarks, side by side with the machine's pipe limits in the same run,
//! on a sysbench-like table (id, k, c CHAR(120), pad CHAR(60)) of `FERRY_BENCH_ROWS` rows
//! (default 2,000,000) on the private test servers (`scripts/servers start`, then export what
//! it prints):
//!
//! - full load MariaDB → PostgreSQL: ferry (1 and 2 workers, upsert, bulk COPY + merge) vs
//!   `mariadb --quick -N -e 'SELECT …' | psql -c '\copy … from stdin'`, and vs `pgloader` when
//!   it is installed (Debian package `pgloader`);
//! - full load MariaDB → MariaDB into a latin1 and a utf8mb4 database: ferry (2 workers, upsert,
//!   bulk LOAD DATA … REPLACE) vs
//!   `mariadb --quick -N -e 'SELECT …' | mariadb -e "LOAD DATA LOCAL INFILE '/dev/stdin' …"`;
//! - full load MariaDB → MariaDB by the peer `mydumper` + `myloader` (2 threads each, 200k-row
//!   chunks) when it
//!   is installed (Debian package `mydumper`), next to ferry's exactly-once run into utf8mb4;
//! - change-stream catch-up of `FERRY_BENCH_CDC_ROWS` binlog rows (default 1,000,000) into
//!   PostgreSQL.
//!
//! `FERRY_BENCH_ONLY=pg,mariadb,cdc` (any of them) runs only those parts. The full loads are
//! measured in `FERRY_BENCH_ROUNDS` (default 3) interleaved rounds, medians printed.

mod common;

use common::*;
use std::process::Command;

fn pg_url() -> String {
    std::env::var("FERRY_TEST_PG_URL").unwrap_or_else(|_| {
        eprintln!("FERRY_TEST_PG_URL is not set: run `scripts/servers start` and export what it prints");
        std::process::exit(1)
    })
}

fn pg_port() -> String {
    pg_url().rsplit(':').next().and_then(|p| p.split('/').next()).unwrap_or("55432").to_string()
}

fn psql(q: &str) {
    let st = Command::new("psql")
        .args(["-q", "-h", "127.0.0.1", "-p", &pg_port(), "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-c", q])
        .status()
        .unwrap();
    assert!(st.success(), "psql: {q}");
}

const PG_TABLE: &str = "(id int PRIMARY KEY, k int NOT NULL, c char(120) NOT NULL, pad char(60) NOT NULL)";
const MY_TABLE: &str = "(id INT PRIMARY KEY, k INT NOT NULL, c CHAR(120) NOT NULL, pad CHAR(60) NOT NULL)";

fn bash(script: &str) -> Command {
    let mut c = Command::new("bash");
    c.args(["-o", "pipefail", "-c", script]);
    c
}

fn plan(task: &str, table: &str, target: &str, extra: &str) -> String {
    format!(
        "task: {task}\n{extra}source:\n  type: mariadb\n  url: {}\n  bounded: true\n  heartbeat: 100ms\n  chunk_rows: 20000\n\
         target:\n{target}tables:\n  include: ['bench\\.{table}']\nruntime:\n  checkpoint_interval: 1s\n  batch_rows: 10000\n",
        url()
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rows = env_u64("FERRY_BENCH_ROWS", 2_000_000);
    let cdc_rows = env_u64("FERRY_BENCH_CDC_ROWS", 1_000_000);
    let rounds = env_u64("FERRY_BENCH_ROUNDS", 3) as usize;
    println!(
        "ferry database targets: MariaDB 127.0.0.1:{} → PostgreSQL 127.0.0.1:{} / MariaDB, sysbench-like rows",
        port(),
        pg_port()
    );
    ensure_table("sbtest1", rows);
    let select =
        format!("mariadb --quick -N -h127.0.0.1 -P{} -uroot -e 'SELECT id, k, c, pad FROM bench.sbtest1'", port());
    let pg = format!("psql -q -h 127.0.0.1 -p {} -U postgres", pg_port());
    let my = format!("mariadb --local-infile=1 -h127.0.0.1 -P{} -uroot", port());

    let only = std::env::var("FERRY_BENCH_ONLY").unwrap_or_default();
    let want = |part: &str| only.is_empty() || only.split(',').any(|o| o.trim() == part);

    // MariaDB → PostgreSQL.
    if want("pg") {
        psql("CREATE SCHEMA IF NOT EXISTS bench");
        let target = format!("  type: postgres\n  url: {}\n", pg_url());
        let fresh =
            |table: &str| psql(&format!("DROP TABLE IF EXISTS bench.{table}; CREATE TABLE bench.{table} {PG_TABLE}"));
        let pipe = format!("{select} | {pg} -c '\\copy bench.sbtest1_raw from stdin'");
        let alo = plan("bench_pg", "sbtest1", &target, "");
        let eo = plan("bench_pg", "sbtest1", &target, "semantics: exactly-once\n");
        let r = interleaved(
            rounds,
            &mut [
                &mut || {
                    fresh("sbtest1_raw");
                    timed(bash(&pipe))
                },
                &mut || {
                    fresh("sbtest1");
                    ferry_run(&alo, 1)
                },
                &mut || {
                    fresh("sbtest1");
                    ferry_run(&eo, 1)
                },
                &mut || {
                    fresh("sbtest1");
                    ferry_run(&alo, 2)
                },
                &mut || {
                    fresh("sbtest1");
                    ferry_run(&eo, 2)
                },
            ],
        );
        let raw = rows as f64 / r[0].0;
        line("pipe: mariadb --quick | psql \\copy", rows, r[0].0, r[0].1, None, &r[0].2);
        for (name, m) in [
            ("1 worker, upsert, at-least-once", &r[1]),
            ("1 worker, upsert, exactly-once", &r[2]),
            ("2 workers, upsert, at-least-once", &r[3]),
            ("2 workers, upsert, exactly-once", &r[4]),
        ] {
            line(&format!("ferry → PostgreSQL, {name}"), rows, m.0, m.1, Some(raw), &m.2);
        }
        if Command::new("pgloader").arg("--version").output().is_ok_and(|o| o.status.success()) {
            let dir = tempfile::tempdir().unwrap();
            let load = dir.path().join("load.cmd");
            std::fs::write(
                &load,
                format!(
                "LOAD DATABASE FROM mysql://root@127.0.0.1:{}/bench INTO postgresql://postgres@127.0.0.1:{}/postgres\n\
                 WITH include drop, create tables, create indexes, reset sequences, workers = 2, concurrency = 1\n\
                 INCLUDING ONLY TABLE NAMES MATCHING 'sbtest1'\nALTER SCHEMA 'bench' RENAME TO 'bench_pgloader';\n",
                port(),
                pg_port()
            ),
            )
            .unwrap();
            let mut c = Command::new("pgloader");
            c.arg(&load);
            let (secs, peak) = timed(c);
            line("peer: pgloader (2 workers)", rows, secs, peak, Some(raw), &last_cpu());
            let ferry_rate = rows as f64 / r[4].0;
            println!(
                "ferry → PostgreSQL (2 workers, exactly-once) ÷ pgloader: {:.2}×",
                ferry_rate * secs / rows as f64
            );
        } else {
            println!("pgloader: not installed (apt-get install pgloader) — skipped");
        }
    }

    // MariaDB → MariaDB, into a latin1 and into a utf8mb4 database (ferry sends UTF-8: the
    // server converts for latin1 columns, not for utf8mb4 ones; the pipe the other way round).
    let target = format!("  type: mariadb\n  url: {}\n", url());
    let parts: &[(&str, &str)] =
        if want("mariadb") { &[("latin1", "bench_dst"), ("utf8mb4", "bench_dst8")] } else { &[] };
    // ferry's rate into the utf8mb4 database (2 workers, exactly-once), for the peer's ratio.
    let mut ferry_utf8 = None;
    for &(charset, db) in parts {
        sql(&format!("CREATE DATABASE IF NOT EXISTS {db} CHARACTER SET {charset}"));
        let fresh = || {
            sql(&format!("DROP TABLE IF EXISTS {db}.sbtest1"));
            sql(&format!("CREATE TABLE {db}.sbtest1 {MY_TABLE}"));
        };
        let pipe = format!("{select} | {my} -e \"LOAD DATA LOCAL INFILE '/dev/stdin' INTO TABLE {db}.sbtest1\"");
        let route = format!("route:\n  database: {db}\n");
        let alo = plan("bench_my", "sbtest1", &target, &route);
        let eo = plan("bench_my", "sbtest1", &target, &format!("semantics: exactly-once\n{route}"));
        let r = interleaved(
            rounds,
            &mut [
                &mut || {
                    fresh();
                    timed(bash(&pipe))
                },
                &mut || {
                    fresh();
                    ferry_run(&alo, 2)
                },
                &mut || {
                    fresh();
                    ferry_run(&eo, 2)
                },
            ],
        );
        let raw = rows as f64 / r[0].0;
        line(&format!("pipe: mariadb --quick | LOAD DATA LOCAL ({charset})"), rows, r[0].0, r[0].1, None, &r[0].2);
        for (name, m) in [("at-least-once", &r[1]), ("exactly-once", &r[2])] {
            line(&format!("ferry → MariaDB ({charset}), 2 workers, upsert, {name}"), rows, m.0, m.1, Some(raw), &m.2);
        }
        if charset == "utf8mb4" {
            ferry_utf8 = Some((rows as f64 / r[2].0, raw));
        }
    }
    if let Some((ferry_rate, raw)) = ferry_utf8 {
        if Command::new("mydumper").arg("--version").output().is_ok_and(|o| o.status.success()) {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path().display();
            let mut peer = Vec::new();
            for _ in 0..rounds {
                sql("DROP DATABASE IF EXISTS bench_mydumper");
                let script = format!(
                    "rm -rf {d}/dump && mydumper -h 127.0.0.1 -P {p} -u root -B bench -T sbtest1 -r 200000 -t 2 -o {d}/dump && \
                     myloader -h 127.0.0.1 -P {p} -u root -d {d}/dump -s bench -B bench_mydumper -t 2 -o",
                    p = port()
                );
                let (secs, peak) = timed(bash(&script));
                let loaded = sql(
                    "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'bench_mydumper' AND TABLE_NAME = 'sbtest1'",
                )[0]
                .get::<u64, _>(0)
                    == Some(1)
                    && sql("SELECT COUNT(*) FROM bench_mydumper.sbtest1")[0].get::<u64, _>(0) == Some(rows);
                assert!(loaded, "mydumper + myloader did not copy the {rows} rows");
                peer.push((secs, peak, last_cpu()));
            }
            peer.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (secs, peak, cpu) = &peer[peer.len() / 2];
            line("peer: mydumper + myloader (2 threads, 200k-row chunks)", rows, *secs, *peak, Some(raw), cpu);
            println!(
                "ferry → MariaDB (utf8mb4, exactly-once) ÷ mydumper + myloader: {:.2}×",
                ferry_rate * secs / rows as f64
            );
        } else {
            println!("mydumper: not installed (apt-get install mydumper) — skipped");
        }
    }

    // Change-stream catch-up into PostgreSQL.
    if cdc_rows > 0 && want("cdc") {
        sql("DROP TABLE IF EXISTS bench.sbtest_cdc");
        let (from, _) = ensure_table("sbtest_cdc", cdc_rows).expect("a fresh table is loaded");
        psql(&format!("DROP TABLE IF EXISTS bench.sbtest_cdc; CREATE TABLE bench.sbtest_cdc {PG_TABLE}"));
        let extra = "mode: incremental\n";
        let target = format!("  type: postgres\n  url: {}\n", pg_url());
        let text = plan("bench_cdc", "sbtest_cdc", &target, extra).replace(
            "  chunk_rows: 20000\n",
            &format!("  start:\n    from: position\n    file: {}\n    position: {}\n", from.0, from.1),
        );
        let (secs, peak) = ferry_run(&text, 2);
        line("ferry binlog catch-up → PostgreSQL, 2 workers", cdc_rows, secs, peak, None, &last_cpu());
    }
}
