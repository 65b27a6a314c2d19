//! Database-target benchmarks, side by side with the machine's pipe limits in the same run,
//! on the private test servers (`scripts/servers start`, then export what it prints):
//!
//! - full load of a sysbench-like table (id, k, c CHAR(120), pad CHAR(60)) of `FERRY_BENCH_ROWS`
//!   rows (default 2,000,000) MariaDB → PostgreSQL: ferry (1 and 2 workers, exactly-once,
//!   upsert: bulk COPY + merge) vs `mariadb --quick -N -e 'SELECT …' | psql -c '\copy … from
//!   stdin'`, and vs the peer `pgloader` (Debian package `pgloader`);
//! - the same MariaDB → MariaDB (utf8mb4): ferry (1 and 2 workers, exactly-once, upsert: bulk
//!   LOAD DATA … REPLACE) vs
//!   `mariadb --quick -N -e 'SELECT …' | mariadb -e "LOAD DATA LOCAL INFILE '/dev/stdin' …"`,
//!   and vs the peer `mydumper` + `myloader` (2 threads each, 200k-row chunks; Debian package
//!   `mydumper`), with `myloader -e`: like the pipe and ferry it then writes the binlog (by
//!   default it turns the binlog off for its sessions, which no CDC source can afford);
//! - many small tables (`FERRY_BENCH_TABLES`, default 200, × 1,000 rows, and
//!   `FERRY_BENCH_SMALL_TABLES`, default 5,000, × 200 rows) → PostgreSQL and → MariaDB, 2
//!   workers, target tables created by ferry, vs reading as many rows of one table (the ratio),
//!   reading the same tables with `mariadb`, writing as many rows into one table through each
//!   target's pipe (the bound of any many-table load), the per-table pipe (each target's
//!   client, two sessions, creating every table and loading it from a file dumped beforehand:
//!   what the target server alone spends per table), and the peers on the same database:
//!   `pgloader` (given a 4 GiB heap: its default runs out on thousands of tables; a failure is
//!   reported with its reason) and `mydumper` + `myloader`;
//! - end-to-end latency, source commit to target write, at 1k and 5k rows/s (each row carries
//!   its source commit time in microseconds; PostgreSQL stamps the time ferry's transaction
//!   wrote it, which commits right after — before a reader can see it): p50, p99, max.
//!
//! `FERRY_BENCH_ONLY=pg,mariadb,many,latency` (any of them) runs only those parts. Each case is
//! measured in `FERRY_BENCH_ROUNDS` (default 3) interleaved rounds, medians printed.

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

const MY_TABLE: &str = "(id INT PRIMARY KEY, k INT NOT NULL, c CHAR(120) NOT NULL, pad CHAR(60) NOT NULL)";

fn bash(script: &str) -> Command {
    let mut c = Command::new("bash");
    c.args(["-o", "pipefail", "-c", script]);
    c
}

fn plan(task: &str, include: &str, target: &str, extra: &str) -> String {
    format!(
        "task: {task}\n{extra}source:\n  type: mariadb\n  url: {}\n  bounded: true\n  heartbeat: 100ms\n  chunk_rows: 20000\n\
         target:\n{target}tables:\n  include: ['{include}']\nsemantics: exactly-once\n\
         runtime:\n  checkpoint_interval: 1s\n  batch_rows: 10000\n",
        url()
    )
}

/// `pgloader` copying the MariaDB database `db` (only the tables named `only` matches, when
/// given) into the PostgreSQL schema `into`, creating the tables, 2 workers.
fn pgloader(db: &str, only: Option<&str>, into: &str) -> Result<(f64, f64), String> {
    let dir = tempfile::tempdir().unwrap();
    let load = dir.path().join("load.cmd");
    let only = only.map(|t| format!("INCLUDING ONLY TABLE NAMES MATCHING '{t}'\n")).unwrap_or_default();
    std::fs::write(
        &load,
        format!(
            "LOAD DATABASE FROM mysql://root@127.0.0.1:{}/{db} INTO postgresql://postgres@127.0.0.1:{}/postgres\n\
             WITH include drop, create tables, create indexes, reset sequences, workers = 2, concurrency = 1\n\
             {only}ALTER SCHEMA '{db}' RENAME TO '{into}';\n",
            port(),
            pg_port()
        ),
    )
    .unwrap();
    let mut c = Command::new("pgloader");
    // The default heap (its Lisp's dynamic space) runs out on thousands of tables.
    c.args(["--dynamic-space-size", "4096"]).arg(&load);
    try_timed(c)
}

/// `mydumper` + `myloader` copying the MariaDB database `db` (only `table`, when given) into
/// the database `into`: 2 threads each, 200k-row chunks, with `myloader -e`: like the pipe and
/// ferry it then writes the binlog (by default it turns the binlog off for its sessions, which
/// no CDC source can afford).
/// A failed copy is tried once more (myloader's two sessions can deadlock on the server and
/// give up); a second failure is the result.
fn mydumper(db: &str, table: Option<&str>, into: &str) -> Result<(f64, f64), String> {
    let once = || {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        sql(&format!("DROP DATABASE IF EXISTS {into}"));
        let table = table.map(|t| format!("-T {t}")).unwrap_or_default();
        let script = format!(
            "mydumper -h 127.0.0.1 -P {p} -u root -B {db} {table} -r 200000 -t 2 -o {d}/dump && \
             myloader -h 127.0.0.1 -P {p} -u root -d {d}/dump -s {db} -B {into} -t 2 -o -e",
            p = port()
        );
        try_timed(bash(&script))
    };
    once().or_else(|e| {
        println!("(mydumper + myloader failed, once more: {})", why(&e));
        once()
    })
}

/// `ANALYZE` of the PostgreSQL schema's tables `t000`, `t001`, … (untimed, right after a case
/// loaded them): otherwise autovacuum analyzes each new table while the next case runs (3.8 s
/// of postgres CPU beside a 5,000-table MariaDB load in one run), a cost of the previous case.
fn analyze_tables(schema: &str, n_tables: u32) {
    let names: Vec<String> = (0..n_tables).map(|t| format!("{schema}.t{t:03}")).collect();
    for part in names.chunks(500) {
        psql(&format!("ANALYZE {}", part.join(", ")));
    }
}

/// Each of the `n_tables` tables `t000`, `t001`, … of the MariaDB database `db` (of
/// `per_table` rows each) dumped into `dir/tNNN.tsv` by `mariadb --quick -N -B`, untimed: the
/// input of the per-table pipe, which then costs the target alone. `query` selects them all,
/// in that order.
fn dump_tables(db: &str, query: &str, n_tables: u32, per_table: u64, dir: &std::path::Path) {
    let file = query_file(query);
    let out = Command::new("mariadb")
        .args(["--quick", "-N", "-B", "-h127.0.0.1", &format!("-P{}", port()), "-uroot"])
        .stdin(std::fs::File::open(file.path()).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "dumping {db}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.split_inclusive('\n');
    for t in 0..n_tables {
        let rows: String = lines.by_ref().take(per_table as usize).collect();
        assert_eq!(rows.lines().count() as u64, per_table, "{db}.t{t:03} dumped short");
        std::fs::write(dir.join(format!("t{t:03}.tsv")), rows).unwrap();
    }
    assert!(lines.next().is_none(), "{db} holds more rows than {n_tables} × {per_table}");
}

/// The per-table pipe of a many-table load: two client sessions (`client`, given a script
/// on stdin) each create half of the `n_tables` tables and load each from its dumped file
/// (`statements(t)`: table `t`'s statements); timed. What the target server alone spends on
/// creating and loading that many tables, with no reading and no engine.
fn per_table_pipe(
    client: &str,
    n_tables: u32,
    dir: &std::path::Path,
    name: &str,
    statements: impl Fn(u32) -> String,
) -> (f64, f64) {
    let half = n_tables.div_ceil(2);
    let mut scripts = Vec::new();
    for (i, range) in [(0..half), (half..n_tables)].into_iter().enumerate() {
        let script = dir.join(format!("{name}-{i}.sql"));
        std::fs::write(&script, range.map(&statements).collect::<String>()).unwrap();
        scripts.push(script.display().to_string());
    }
    timed(bash(&format!(
        "{client} < {} & first=$!; {client} < {}; second=$?; wait $first && [ $second = 0 ]",
        scripts[0], scripts[1]
    )))
}

/// Drops a PostgreSQL schema of thousands of tables: in one `DROP SCHEMA` they outgrow the
/// server's lock table (max_locks_per_transaction), so 500 tables per transaction first.
fn drop_pg_schema(schema: &str) {
    psql(&format!(
        "DO $$ DECLARE r record; i int := 0; BEGIN \
         FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = '{schema}' LOOP \
         EXECUTE format('DROP TABLE {schema}.%I', r.tablename); i := i + 1; \
         IF i % 500 = 0 THEN COMMIT; END IF; END LOOP; END $$"
    ));
    psql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
}

/// Drops what earlier runs left of the many-table targets (ferry's and the peers', named
/// after the source database `db`), then lets the deleted files age. Each round writes into
/// names of its own and nothing is dropped between rounds: on ext4 without a journal (this
/// machine's disk) the kernel reuses no inode freed in the last 60 s (360 s while its
/// inode-table block is unwritten), and every file created scans past each of them, so
/// creating 5,000 tables right after dropping as many cost PostgreSQL several seconds in
/// `openat` alone (38% of its CPU in a profile) — a cost of the benchmark's own drop, not of
/// the load. After the drop, `sync` and 61 s.
fn drop_many_leftovers(dbs: &[&str]) {
    let started = Instant::now();
    for db in dbs {
        let schemas =
            psql_value(&format!("SELECT nspname FROM pg_namespace WHERE nspname = '{db}' OR nspname LIKE '{db}\\_%'"));
        for schema in schemas.lines().filter(|l| !l.is_empty()) {
            drop_pg_schema(schema);
        }
        let dbs =
            sql(&format!("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '{db}\\_%'"));
        for row in dbs {
            let name: String = row.get(0).unwrap();
            sql(&format!("DROP DATABASE IF EXISTS `{name}`"));
        }
    }
    let _ = Command::new("sync").status();
    println!(
        "(many tables: earlier targets dropped in {:.0} s; waiting 61 s for their freed inodes to age)",
        started.elapsed().as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(61));
}

/// Whether a peer's command is installed.
fn installed(command: &str) -> bool {
    Command::new(command).arg("--version").output().is_ok_and(|o| o.status.success())
}

/// The median of `rounds` runs of a peer: seconds, peak MiB, CPU; or the first run's failure.
fn peer_median(rounds: usize, mut run: impl FnMut() -> Result<(f64, f64), String>) -> Result<(f64, f64, Cpu), String> {
    let mut peer = Vec::new();
    for _ in 0..rounds {
        let (secs, peak) = run()?;
        peer.push((secs, peak, last_cpu()));
    }
    peer.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(peer.swap_remove(peer.len() / 2))
}

/// A peer that failed: its line says why, in the output and in the summary.
fn peer_failed(name: &str, failure: &str) {
    let why = why(failure);
    println!("{name}: failed — {why}");
    summary([name, "", "", "", "", "", "", "", &format!("failed: {why}")]);
}

/// The lines of a peer's failure that say why (its ERROR/FATAL lines and their hints).
fn why(failure: &str) -> String {
    let lines: Vec<&str> = failure
        .lines()
        .filter(|l| ["ERROR", "FATAL", "HINT", "CRITICAL", "Heap exhausted"].iter().any(|w| l.contains(w)))
        .map(|l| {
            // pgloader's ` ERROR ` / ` FATAL `, myloader's glib `** (myloader:PID): CRITICAL **: time: `.
            let l = l.split_once(" ERROR ").or(l.split_once(" FATAL ")).map_or(l, |x| x.1);
            l.split_once("CRITICAL **: ").map_or(l, |x| x.1.split_once(": ").map_or(x.1, |y| y.1)).trim()
        })
        .collect();
    if lines.is_empty() {
        failure.lines().last().unwrap_or("").to_string()
    } else {
        lines.join("; ")
    }
}

fn psql_value(q: &str) -> String {
    let out = Command::new("psql")
        .args(["-At", "-h", "127.0.0.1", "-p", &pg_port(), "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-c", q])
        .output()
        .unwrap();
    assert!(out.status.success(), "psql: {q}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One latency round: ferry streams `bench.latency` into PostgreSQL while rows are inserted
/// at `rate` rows/s for `secs` seconds (a multi-row INSERT every 10 ms); returns the source
/// commit → target write delays in ms: p50, p99, max.
fn latency_round(rate: u64, secs: u64) -> (f64, f64, f64) {
    sql("DROP TABLE IF EXISTS bench.latency");
    sql("CREATE TABLE bench.latency (id BIGINT PRIMARY KEY, ts_us BIGINT NOT NULL, pad CHAR(60) NOT NULL)");
    psql(
        "CREATE SCHEMA IF NOT EXISTS bench; DROP TABLE IF EXISTS bench.latency; \
         CREATE TABLE bench.latency (id bigint PRIMARY KEY, ts_us bigint NOT NULL, pad char(60) NOT NULL, \
         seen_us bigint DEFAULT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)",
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("plan.yaml");
    std::fs::write(
        &p,
        format!(
            "task: bench_latency\nmode: incremental\nsource:\n  type: mariadb\n  url: {}\n  heartbeat: 100ms\n\
             target:\n  type: postgres\n  url: {}\ntables:\n  include: ['bench\\.latency']\nsemantics: exactly-once\n\
             runtime:\n  checkpoint_interval: 100ms\n",
            url(),
            pg_url()
        ),
    )
    .unwrap();
    let mut ferry = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .current_dir(dir.path())
        .args(["run", "-q", p.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let seen = |q: &str| psql_value(q).parse::<u64>().unwrap_or(0);
    let rows = rate * secs;
    let per_batch = (rate / 100).max(1);
    let opts = mysql_async::Opts::from_url(&url()).unwrap();
    ferry::runtime::io_runtime().block_on(async {
        use mysql_async::prelude::Queryable;
        let mut c = mysql_async::Conn::new(opts).await.unwrap();
        // Streaming starts at the binlog's end when ferry starts: a probe row tells when.
        let waited = Instant::now();
        for probe in 1.. {
            c.query_drop(format!("INSERT INTO bench.latency VALUES (-{probe}, 0, 'probe')")).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            if seen("SELECT count(*) FROM bench.latency WHERE id < 0") > 0 {
                break;
            }
            assert!(waited.elapsed() < Duration::from_secs(60), "ferry did not start streaming");
        }
        let start = tokio::time::Instant::now();
        let mut id = 1;
        for k in 0.. {
            if id > rows {
                break;
            }
            tokio::time::sleep_until(start + Duration::from_millis(10 * k)).await;
            let values: Vec<String> = (id..(id + per_batch).min(rows + 1))
                .map(|i| format!("({i}, CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED), 'heartbeat')"))
                .collect();
            id += values.len() as u64;
            c.query_drop(format!("INSERT INTO bench.latency VALUES {}", values.join(","))).await.unwrap();
        }
        c.disconnect().await.unwrap();
    });
    let waited = Instant::now();
    while seen("SELECT count(*) FROM bench.latency WHERE id > 0") < rows {
        assert!(waited.elapsed() < Duration::from_secs(120), "not every row reached PostgreSQL");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = ferry.kill();
    let _ = ferry.wait();
    let stats = psql_value(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY seen_us - ts_us) / 1000, \
         percentile_cont(0.99) WITHIN GROUP (ORDER BY seen_us - ts_us) / 1000, max(seen_us - ts_us) / 1000.0 \
         FROM bench.latency WHERE id > 0",
    );
    let v: Vec<f64> = stats.split('|').map(|x| x.parse().unwrap()).collect();
    (v[0], v[1], v[2])
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rows = env_u64("FERRY_BENCH_ROWS", 2_000_000);
    let tables = env_u64("FERRY_BENCH_TABLES", 200) as u32;
    let rounds = env_u64("FERRY_BENCH_ROUNDS", 3) as usize;
    println!(
        "ferry database targets: MariaDB 127.0.0.1:{} → PostgreSQL 127.0.0.1:{} / MariaDB; median of {rounds} \
         interleaved rounds; MB/s as the rows' SELECT * text",
        port(),
        pg_port()
    );
    let only = std::env::var("FERRY_BENCH_ONLY").unwrap_or_default();
    let want = |part: &str| only.is_empty() || only.split(',').any(|o| o.trim() == part);
    ensure_table("sbtest1", rows);
    set_row_bytes(text_bytes("SELECT * FROM bench.sbtest1") as f64 / rows as f64);
    let select =
        format!("mariadb --quick -N -h127.0.0.1 -P{} -uroot -e 'SELECT id, k, c, pad FROM bench.sbtest1'", port());
    let pg = format!("psql -q -h 127.0.0.1 -p {} -U postgres", pg_port());
    let my = format!("mariadb --local-infile=1 -h127.0.0.1 -P{} -uroot", port());

    // MariaDB → PostgreSQL.
    if want("pg") {
        psql("CREATE SCHEMA IF NOT EXISTS bench");
        let target = format!("  type: postgres\n  url: {}\n", pg_url());
        let fresh =
            |table: &str| psql(&format!("DROP TABLE IF EXISTS bench.{table}; CREATE TABLE bench.{table} {PG_TABLE}"));
        let pipe = format!("{select} | {pg} -c '\\copy bench.sbtest1_raw from stdin'");
        let eo = plan("bench_pg", "bench\\.sbtest1", &target, "");
        let r = interleaved(
            rounds,
            &mut [
                &mut || {
                    fresh("sbtest1_raw");
                    timed(bash(&pipe))
                },
                &mut || {
                    fresh("sbtest1");
                    ferry_run(&eo, 1)
                },
                &mut || {
                    fresh("sbtest1");
                    ferry_run(&eo, 2)
                },
            ],
        );
        let raw = rows as f64 / r[0].0;
        line("pipe: mariadb --quick | psql \\copy", rows, r[0].0, r[0].1, None, &r[0].2);
        for (w, m) in [(1, &r[1]), (2, &r[2])] {
            line(&format!("ferry → PostgreSQL, {w} worker(s), exactly-once"), rows, m.0, m.1, Some(raw), &m.2);
        }
        if installed("pgloader") {
            let (secs, peak, cpu) = peer_median(rounds, || {
                let r = pgloader("bench", Some("sbtest1"), "bench_pgloader");
                let copied = psql_value("SELECT count(*) FROM bench_pgloader.sbtest1");
                assert_eq!(copied, rows.to_string(), "pgloader did not copy the {rows} rows");
                r
            })
            .unwrap();
            line("peer: pgloader (2 workers)", rows, secs, peak, Some(raw), &cpu);
            peer_ratio("ferry → PostgreSQL (2 workers) ÷ pgloader", secs / r[2].0);
        } else {
            println!("pgloader: not installed (apt-get install pgloader) — skipped");
        }
    }

    // MariaDB → MariaDB (utf8mb4).
    if want("mariadb") {
        let target = format!("  type: mariadb\n  url: {}\n", url());
        let db = "bench_dst8";
        sql(&format!("CREATE DATABASE IF NOT EXISTS {db} CHARACTER SET utf8mb4"));
        let fresh = || {
            sql(&format!("DROP TABLE IF EXISTS {db}.sbtest1"));
            sql(&format!("CREATE TABLE {db}.sbtest1 {MY_TABLE}"));
        };
        let pipe = format!("{select} | {my} -e \"LOAD DATA LOCAL INFILE '/dev/stdin' INTO TABLE {db}.sbtest1\"");
        let eo = plan("bench_my", "bench\\.sbtest1", &target, &format!("route:\n  database: {db}\n"));
        let r = interleaved(
            rounds,
            &mut [
                &mut || {
                    fresh();
                    timed(bash(&pipe))
                },
                &mut || {
                    fresh();
                    ferry_run(&eo, 1)
                },
                &mut || {
                    fresh();
                    ferry_run(&eo, 2)
                },
            ],
        );
        let raw = rows as f64 / r[0].0;
        line("pipe: mariadb --quick | LOAD DATA LOCAL", rows, r[0].0, r[0].1, None, &r[0].2);
        for (w, m) in [(1, &r[1]), (2, &r[2])] {
            line(&format!("ferry → MariaDB, {w} worker(s), exactly-once"), rows, m.0, m.1, Some(raw), &m.2);
        }
        if installed("mydumper") {
            let name = "peer: mydumper + myloader (2 threads, 200k-row chunks, binlog on)";
            let peer = peer_median(rounds, || {
                let r = mydumper("bench", Some("sbtest1"), "bench_mydumper")?;
                let loaded = sql("SELECT COUNT(*) FROM bench_mydumper.sbtest1")[0].get::<u64, _>(0) == Some(rows);
                assert!(loaded, "mydumper + myloader did not copy the {rows} rows");
                Ok(r)
            });
            match peer {
                Ok((secs, peak, cpu)) => {
                    line(name, rows, secs, peak, Some(raw), &cpu);
                    peer_ratio("ferry → MariaDB (2 workers) ÷ mydumper + myloader", secs / r[2].0);
                }
                Err(e) => peer_failed(name, &e),
            }
        } else {
            println!("mydumper: not installed (apt-get install mydumper) — skipped");
        }
    }

    // Many small tables → PostgreSQL and → MariaDB (ferry creates the target tables), next to
    // reading the same tables, and reading as many rows of one table.
    let small = env_u64("FERRY_BENCH_SMALL_TABLES", 5000) as u32;
    if want("many") && (tables > 0 || small > 0) {
        drop_many_leftovers(&["bench_many", "bench_small"]);
    }
    for (db, n_tables, per_table) in [("bench_many", tables, 1000u64), ("bench_small", small, 200)] {
        if n_tables == 0 || !want("many") {
            continue;
        }
        ensure_many_in(db, n_tables, per_table);
        let n = n_tables as u64 * per_table;
        let query: String = (0..n_tables).map(|t| format!("SELECT * FROM {db}.t{t:03};")).collect();
        set_row_bytes(text_bytes(&query) as f64 / n as f64);
        let pg_target = format!("  type: postgres\n  url: {}\n", pg_url());
        let my_target = format!("  type: mariadb\n  url: {}\n", url());
        // Every round writes into a schema / database of its own (see drop_many_leftovers).
        let (mut pg_round, mut my_round) = (0, 0);
        let route = |into: &str| format!("route:\n  database: {into}\n");
        let to_pg = |into: &str| plan(&format!("{db}_pg"), &format!("{db}\\..*"), &pg_target, &route(into));
        let to_my = |into: &str| plan(&format!("{db}_my"), &format!("{db}\\..*"), &my_target, &route(into));
        let (q, one) = (query.clone(), format!("SELECT * FROM bench.sbtest1 LIMIT {n}"));
        let select_n = format!(
            "mariadb --quick -N -h127.0.0.1 -P{} -uroot -e 'SELECT id, k, c, pad FROM bench.sbtest1 LIMIT {n}'",
            port()
        );
        let raw_read = |q: &str| {
            let file = query_file(q);
            let mut raw = Command::new("mariadb");
            raw.args(["--quick", "-h127.0.0.1", &format!("-P{}", port()), "-uroot"]);
            raw.stdin(std::fs::File::open(file.path()).unwrap());
            timed(raw)
        };
        let dumped = tempfile::tempdir().unwrap();
        dump_tables(db, &query, n_tables, per_table, dumped.path());
        let (mut pg_pipe_round, mut my_pipe_round) = (0, 0);
        let r = interleaved(
            rounds,
            &mut [
                &mut || raw_read(&q),
                &mut || raw_read(&one),
                &mut || {
                    pg_round += 1;
                    let into = format!("{db}_pg{pg_round}");
                    let r = ferry_run(&to_pg(&into), 2);
                    analyze_tables(&into, n_tables);
                    r
                },
                &mut || {
                    my_round += 1;
                    ferry_run(&to_my(&format!("{db}_t{my_round}")), 2)
                },
                // What writing as many rows into one table costs each target (the bound of any
                // many-table load: see the ratios printed below).
                &mut || {
                    psql(&format!(
                        "CREATE SCHEMA IF NOT EXISTS bench; DROP TABLE IF EXISTS bench.many_pipe; \
                         CREATE TABLE bench.many_pipe {PG_TABLE}"
                    ));
                    timed(bash(&format!("{select_n} | {pg} -c '\\copy bench.many_pipe from stdin'")))
                },
                &mut || {
                    sql("CREATE DATABASE IF NOT EXISTS bench_dst8 CHARACTER SET utf8mb4");
                    sql("DROP TABLE IF EXISTS bench_dst8.many_pipe");
                    sql(&format!("CREATE TABLE bench_dst8.many_pipe {MY_TABLE}"));
                    timed(bash(&format!(
                        "{select_n} | {my} -e \"LOAD DATA LOCAL INFILE '/dev/stdin' INTO TABLE bench_dst8.many_pipe\""
                    )))
                },
                // The per-table pipe: the target alone creating and loading the same tables
                // from files dumped beforehand, two sessions (names of its own each round).
                &mut || {
                    pg_pipe_round += 1;
                    let schema = format!("{db}_fl{pg_pipe_round}");
                    psql(&format!("CREATE SCHEMA {schema}"));
                    let dir = dumped.path().display().to_string();
                    let r = per_table_pipe(
                        &format!("{pg} -v ON_ERROR_STOP=1"),
                        n_tables,
                        dumped.path(),
                        &schema,
                        |t| {
                            format!(
                                "CREATE TABLE {schema}.t{t:03} {PG_TABLE};\n\\copy {schema}.t{t:03} from '{dir}/t{t:03}.tsv'\n"
                            )
                        },
                    );
                    analyze_tables(&schema, n_tables);
                    r
                },
                &mut || {
                    my_pipe_round += 1;
                    let into = format!("{db}_fm{my_pipe_round}");
                    sql(&format!("CREATE DATABASE {into} CHARACTER SET utf8mb4"));
                    let dir = dumped.path().display().to_string();
                    per_table_pipe(&my, n_tables, dumped.path(), &into, |t| {
                        format!(
                            "CREATE TABLE {into}.t{t:03} {MY_TABLE};\n\
                             LOAD DATA LOCAL INFILE '{dir}/t{t:03}.tsv' INTO TABLE {into}.t{t:03};\n"
                        )
                    })
                },
            ],
        );
        line(&format!("read: mariadb --quick SELECT * ({n_tables} tables)"), n, r[0].0, r[0].1, None, &r[0].2);
        line(&format!("raw: mariadb --quick SELECT * ({n} rows of one table)"), n, r[1].0, r[1].1, None, &r[1].2);
        let one_rate = n as f64 / r[1].0;
        let size = format!("{n_tables} tables × {per_table} rows, 2 workers, creating them");
        line(&format!("ferry → PostgreSQL, {size}"), n, r[2].0, r[2].1, Some(one_rate), &r[2].2);
        line(&format!("ferry → MariaDB, {size}"), n, r[3].0, r[3].1, Some(one_rate), &r[3].2);
        println!(
            "  (÷ reading the same {n_tables} tables: PostgreSQL {:.2}×, MariaDB {:.2}×)",
            r[0].0 / r[2].0,
            r[0].0 / r[3].0
        );
        line(&format!("pipe: mariadb | psql \\copy ({n} rows of one table)"), n, r[4].0, r[4].1, None, &r[4].2);
        line(&format!("ferry → PostgreSQL, {n_tables} tables"), n, r[2].0, r[2].1, Some(n as f64 / r[4].0), &r[2].2);
        line(&format!("pipe: mariadb | LOAD DATA LOCAL ({n} rows of one table)"), n, r[5].0, r[5].1, None, &r[5].2);
        line(&format!("ferry → MariaDB, {n_tables} tables"), n, r[3].0, r[3].1, Some(n as f64 / r[5].0), &r[3].2);
        let each = format!("{n_tables} tables, CREATE TABLE + load from a dumped file each, 2 sessions");
        // Named `pipe:` so that the next ferry line's ratio is to it (in the summary too).
        line(&format!("pipe: psql \\copy per table, {each}"), n, r[6].0, r[6].1, None, &r[6].2);
        let ours = |target: &str| format!("ferry → {target}, {n_tables} tables, to the per-table pipe");
        line(&ours("PostgreSQL"), n, r[2].0, r[2].1, Some(n as f64 / r[6].0), &r[2].2);
        line(&format!("pipe: mariadb LOAD DATA LOCAL per table, {each}"), n, r[7].0, r[7].1, None, &r[7].2);
        line(&ours("MariaDB"), n, r[3].0, r[3].1, Some(n as f64 / r[7].0), &r[3].2);
        for (target, ours, pipe) in [("PostgreSQL", r[2].0, r[6].0), ("MariaDB", r[3].0, r[7].0)] {
            println!(
                "  ({target}: the per-table pipe alone runs at {:.2}× the one-table read; ferry takes {:.2} s more)",
                r[1].0 / pipe,
                ours - pipe
            );
        }
        // The peers' ratios are to the one-table read, like the first ferry lines'.
        set_limit(&format!("mariadb --quick SELECT * ({n} rows of one table)"));
        let last = format!("t{:03}", n_tables - 1);
        for round in 1..=rounds {
            let (pg_last, my_last) = (format!("{db}_fl{round}.{last}"), format!("{db}_fm{round}.{last}"));
            assert_eq!(psql_value(&format!("SELECT count(*) FROM {pg_last}")), per_table.to_string(), "{pg_last}");
            let loaded: u64 = sql(&format!("SELECT COUNT(*) FROM {my_last}"))[0].get(0).unwrap();
            assert_eq!(loaded, per_table, "{my_last}");
        }
        let pg_tables = |schema: &str| {
            psql_value(&format!("SELECT count(*) FROM information_schema.tables WHERE table_schema = '{schema}'"))
        };
        for r in 1..=rounds {
            assert_eq!(
                pg_tables(&format!("{db}_pg{r}")),
                n_tables.to_string(),
                "ferry did not create every PostgreSQL table"
            );
        }
        let my_tables = |db: &str| -> u64 {
            sql(&format!("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='{db}'"))[0].get(0).unwrap()
        };
        for r in 1..=rounds {
            assert_eq!(my_tables(&format!("{db}_t{r}")), n_tables as u64, "ferry did not create every MariaDB table");
        }
        // The peers too write each round into names of their own.
        if installed("pgloader") {
            let name = format!("peer: pgloader, {n_tables} tables (2 workers)");
            let mut round = 0;
            let peer = peer_median(rounds, || {
                round += 1;
                let peer_schema = format!("{db}_pgloader{round}");
                let r = pgloader(db, None, &peer_schema)?;
                // A peer that ends without error but short of the data failed all the same.
                let created = pg_tables(&peer_schema);
                if created != n_tables.to_string() {
                    return Err(format!("pgloader ended without error but created {created} of {n_tables} tables"));
                }
                analyze_tables(&peer_schema, n_tables);
                let last = format!("{peer_schema}.t{:03}", n_tables - 1);
                let loaded = psql_value(&format!("SELECT count(*) FROM {last}"));
                if loaded != per_table.to_string() {
                    return Err(format!(
                        "pgloader ended without error but loaded {loaded} of {per_table} rows into {last}"
                    ));
                }
                Ok(r)
            });
            match peer {
                Ok((secs, peak, cpu)) => {
                    line(&name, n, secs, peak, Some(one_rate), &cpu);
                    peer_ratio(&format!("ferry → PostgreSQL ({n_tables} tables) ÷ pgloader"), secs / r[2].0);
                }
                Err(e) => peer_failed(&name, &e),
            }
        }
        if installed("mydumper") {
            let name = format!("peer: mydumper + myloader, {n_tables} tables (2 threads)");
            let mut round = 0;
            let peer = peer_median(rounds, || {
                round += 1;
                let into = format!("{db}_mydumper{round}");
                let r = mydumper(db, None, &into)?;
                let created = my_tables(&into);
                if created != n_tables as u64 {
                    return Err(format!("mydumper + myloader created {created} of {n_tables} tables"));
                }
                let last = format!("{into}.t{:03}", n_tables - 1);
                let loaded: u64 = sql(&format!("SELECT COUNT(*) FROM {last}"))[0].get(0).unwrap();
                if loaded != per_table {
                    return Err(format!("mydumper + myloader loaded {loaded} of {per_table} rows into {last}"));
                }
                Ok(r)
            });
            match peer {
                Ok((secs, peak, cpu)) => {
                    line(&name, n, secs, peak, Some(one_rate), &cpu);
                    peer_ratio(&format!("ferry → MariaDB ({n_tables} tables) ÷ mydumper + myloader"), secs / r[3].0);
                }
                Err(e) => peer_failed(&name, &e),
            }
        }
    }

    // End-to-end latency.
    if want("latency") {
        let secs = env_u64("FERRY_BENCH_LATENCY_SECS", 5);
        for rate in [1000, 5000] {
            let mut runs: Vec<(f64, f64, f64)> = (0..rounds).map(|_| latency_round(rate, secs)).collect();
            let median = |f: fn(&(f64, f64, f64)) -> f64, runs: &mut Vec<(f64, f64, f64)>| {
                runs.sort_by(|a, b| f(a).total_cmp(&f(b)));
                f(&runs[runs.len() / 2])
            };
            let p50 = median(|r| r.0, &mut runs);
            let p99 = median(|r| r.1, &mut runs);
            let max = median(|r| r.2, &mut runs);
            let name = format!("latency: commit → PostgreSQL write at {}k rows/s", rate / 1000);
            println!(
                "{name:<48} {:>9} rows   p50 {p50:>6.1} ms   p99 {p99:>6.1} ms   max {max:>6.1} ms   \
                 (exactly-once, 100 ms checkpoints)",
                rate * secs
            );
            summary([
                &name,
                &rate.to_string(),
                "",
                "",
                "",
                "",
                "",
                "",
                &format!("p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms"),
            ]);
        }
    }
}
