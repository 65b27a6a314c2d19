//! `ferry verify` benchmark, side by side in one run on the private test servers: the
//! sysbench-like table of `FERRY_BENCH_ROWS` rows (default 2,000,000) in MariaDB and its copy
//! in PostgreSQL (loaded by the `COPY` pipe), compared
//!
//! - by reading both tables whole at once — `mariadb --quick -N -e 'SELECT * …' > /dev/null` and
//!   `psql -c '\copy (SELECT * …) to /dev/null'` in parallel: the raw limit;
//! - by `ferry verify` (2 workers, the tables equal: exit 0);
//! - by the peer `reladiff` (PyPI, the maintained data-diff fork; `scripts/bench` installs it
//!   into `target/venv`; `-j 2`-like parallelism is its default thread pool), same key and
//!   columns.
//!
//! Each case is measured in `FERRY_BENCH_ROUNDS` (default 3) interleaved rounds, medians printed.

mod common;

use common::*;
use std::process::Command;

fn bash(script: &str) -> Command {
    let mut c = Command::new("bash");
    c.args(["-o", "pipefail", "-c", script]);
    c
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rows = env_u64("FERRY_BENCH_ROWS", 2_000_000);
    let rounds = env_u64("FERRY_BENCH_ROUNDS", 3) as usize;
    println!(
        "ferry verify: MariaDB 127.0.0.1:{} bench.sbtest1 vs its PostgreSQL 127.0.0.1:{} copy, {rows} rows; median of \
         {rounds} interleaved rounds; MB/s as the rows' SELECT * text",
        port(),
        pg_port()
    );
    ensure_table("sbtest1", rows);
    set_row_bytes(text_bytes("SELECT * FROM bench.sbtest1") as f64 / rows as f64);
    psql("CREATE SCHEMA IF NOT EXISTS bench_verify");
    let copied = Command::new("psql")
        .args(["-At", "-h", "127.0.0.1", "-p", &pg_port(), "-U", "postgres", "-c"])
        .arg("SELECT count(*) FROM bench_verify.sbtest1")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if copied.as_deref() != Some(&rows.to_string()) {
        psql(&format!("DROP TABLE IF EXISTS bench_verify.sbtest1; CREATE TABLE bench_verify.sbtest1 {PG_TABLE}"));
        let load = format!(
            "mariadb --quick -N -h127.0.0.1 -P{} -uroot -e 'SELECT id, k, c, pad FROM bench.sbtest1' | \
             psql -q -h 127.0.0.1 -p {} -U postgres -c '\\copy bench_verify.sbtest1 from stdin'",
            port(),
            pg_port()
        );
        timed(bash(&load));
        psql("VACUUM ANALYZE bench_verify.sbtest1");
    }
    let raw = format!(
        "mariadb --quick -N -h127.0.0.1 -P{} -uroot -e 'SELECT * FROM bench.sbtest1' > /dev/null & \
         psql -q -h 127.0.0.1 -p {} -U postgres -c '\\copy (SELECT * FROM bench_verify.sbtest1) to /dev/null' & wait -n && wait -n",
        port(),
        pg_port()
    );
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.yaml");
    std::fs::write(
        &plan,
        format!(
            "task: bench_verify\nsource:\n  type: mariadb\n  url: {}\ntarget:\n  type: postgres\n  url: {}\n\
             tables:\n  include: ['bench\\.sbtest1']\nroute:\n  database: bench_verify\nverify:\n  chunk_rows: 50000\n",
            url(),
            pg_url()
        ),
    )
    .unwrap();
    let verify = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
        c.current_dir(dir.path()).args(["verify", "-q", "-w", "2", plan.to_str().unwrap()]);
        timed(c)
    };
    let venv = std::env::var("FERRY_BENCH_VENV").unwrap_or_else(|_| "target/venv".into());
    let reladiff = std::path::Path::new(&venv).join("bin/reladiff");
    let peer = reladiff.exists().then(|| {
        format!(
            "{} mysql://root@127.0.0.1:{}/bench sbtest1 postgresql://postgres@127.0.0.1:{}/postgres bench_verify.sbtest1 \
             -k id -c k -c c -c pad -s",
            reladiff.display(),
            port(),
            pg_port()
        )
    });
    let mut cases: Vec<Box<dyn FnMut() -> (f64, f64)>> = vec![Box::new(|| timed(bash(&raw))), Box::new(verify)];
    if let Some(p) = &peer {
        let p = p.clone();
        cases.push(Box::new(move || timed(bash(&p))));
    }
    let mut refs: Vec<&mut dyn FnMut() -> (f64, f64)> = cases.iter_mut().map(|b| b.as_mut() as _).collect();
    let r = interleaved(rounds, &mut refs);
    let limit = rows as f64 / r[0].0;
    line("raw: SELECT * of both tables, in parallel", rows, r[0].0, r[0].1, None, &r[0].2);
    line("ferry verify MariaDB vs PostgreSQL, 2 workers", rows, r[1].0, r[1].1, Some(limit), &r[1].2);
    match peer {
        Some(_) => {
            line("peer: reladiff MariaDB vs PostgreSQL", rows, r[2].0, r[2].1, Some(limit), &r[2].2);
            peer_ratio("ferry verify ÷ reladiff", r[2].0 / r[1].0);
        }
        None => println!("reladiff: not installed (scripts/bench installs it into target/venv) — skipped"),
    }
}
