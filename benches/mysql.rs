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

use mysql_async::prelude::Queryable;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn url() -> String {
    std::env::var("FERRY_TEST_MYSQL_URL").unwrap_or_else(|_| {
        eprintln!("FERRY_TEST_MYSQL_URL is not set: run `scripts/servers start` and export what it prints");
        std::process::exit(1)
    })
}

fn port() -> String {
    url().rsplit(':').next().unwrap_or("33306").to_string()
}

fn sql(q: &str) -> Vec<mysql_async::Row> {
    let opts = mysql_async::Opts::from_url(&url()).unwrap();
    ferry::engine::io_runtime().block_on(async {
        let mut c = mysql_async::Conn::new(opts).await.unwrap();
        let r = c.query(q).await.unwrap_or_else(|e| panic!("{q}: {e}"));
        c.disconnect().await.unwrap();
        r
    })
}

fn master() -> (String, u64) {
    let r = &sql("SHOW MASTER STATUS")[0];
    (r.get(0).unwrap(), r.get(1).unwrap())
}

/// Creates `bench.<name>` with `rows` rows unless it already has them; returns the binlog range
/// the load wrote when it (re)loaded.
fn ensure_table(name: &str, rows: u64) -> Option<((String, u64), (String, u64))> {
    sql("CREATE DATABASE IF NOT EXISTS bench");
    let have: Vec<mysql_async::Row> = sql(&format!(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='bench' AND TABLE_NAME='{name}'"
    ));
    if have[0].get::<u64, _>(0).unwrap() == 1 {
        let n: u64 = sql(&format!("SELECT COUNT(*) FROM bench.{name}"))[0].get(0).unwrap();
        if n == rows {
            return None;
        }
    }
    sql(&format!("DROP TABLE IF EXISTS bench.{name}"));
    sql(&format!(
        "CREATE TABLE bench.{name} (id INT PRIMARY KEY, k INT NOT NULL, c CHAR(120) NOT NULL, pad CHAR(60) NOT NULL)"
    ));
    let start = master();
    let step = 200_000;
    let mut lo = 1;
    while lo <= rows {
        let hi = (lo + step - 1).min(rows);
        sql(&format!(
            "INSERT INTO bench.{name} SELECT seq, seq * 7919 % {rows}, \
             CONCAT(LPAD(seq, 11, '0'), '-', REPEAT(SUBSTR(MD5(seq), 1, 10), 10)), REPEAT(SUBSTR(MD5(seq), 1, 12), 4) \
             FROM bench.seq_{lo}_to_{hi}"
        ));
        lo = hi + 1;
    }
    Some((start, master()))
}

/// Runs a command, returning wall seconds and the peak resident memory (MiB) seen in /proc.
fn timed(mut cmd: Command) -> (f64, f64) {
    let start = Instant::now();
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut peak = 0.0f64;
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{}/status", child.id())) {
            if let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            {
                peak = peak.max(kb / 1024.0);
            }
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let secs = start.elapsed().as_secs_f64();
    if !status.success() {
        let mut err = String::new();
        use std::io::Read;
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        panic!("{cmd:?} failed: {err}");
    }
    (secs, peak)
}

fn ferry_run(plan: &str, workers: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("plan.yaml");
    std::fs::write(&p, plan).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.current_dir(dir.path()).args(["run", "-q", "-w", &workers.to_string(), p.to_str().unwrap()]);
    timed(cmd)
}

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

fn line(name: &str, rows: u64, secs: f64, peak: f64, base: Option<f64>) {
    let rate = rows as f64 / secs;
    let ratio = base.map(|b| format!("{:>6.2}×", rate / b)).unwrap_or_default();
    println!("{name:<44} {rows:>10} rows {secs:>7.2}s {rate:>12.0} rows/s {ratio:>8} {peak:>8.1} MiB peak");
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rows = env_u64("FERRY_BENCH_ROWS", 2_000_000);
    let big = env_u64("FERRY_BENCH_BIG_ROWS", 10_000_000);
    println!(
        "ferry MySQL source, MariaDB at 127.0.0.1:{}, sysbench-like rows (id, k, c CHAR(120), pad CHAR(60))",
        port()
    );
    ensure_table("sbtest1", rows);

    // Snapshot vs the raw read rate.
    let mut raw = Command::new("mariadb");
    raw.args(["--quick", "-h127.0.0.1", &format!("-P{}", port()), "-uroot", "-e", "SELECT * FROM bench.sbtest1"]);
    let (secs, peak) = timed(raw);
    let raw_rate = rows as f64 / secs;
    line("raw: mariadb --quick SELECT * > /dev/null", rows, secs, peak, None);
    for w in [1, 2] {
        let (secs, peak) = ferry_run(&snapshot_plan("sbtest1"), w);
        line(&format!("ferry snapshot → null, {w} worker(s)"), rows, secs, peak, Some(raw_rate));
    }

    // Binlog: load the rows again into a fresh table, then decode that binlog range.
    sql("DROP TABLE IF EXISTS bench.sbtest_binlog");
    let (from, to) = ensure_table("sbtest_binlog", rows).expect("a fresh table is loaded");
    let files: Vec<String> = sql("SHOW BINARY LOGS")
        .iter()
        .map(|r| r.get::<String, _>(0).unwrap())
        .filter(|f| *f >= from.0 && *f <= to.0)
        .collect();
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
    let (secs, peak) = timed(raw);
    let raw_rate = rows as f64 / secs;
    line("raw: mariadb-binlog -v > /dev/null", rows, secs, peak, None);
    let (secs, peak) = ferry_run(&binlog_plan(&from), 1);
    line("ferry binlog catch-up → null", rows, secs, peak, Some(raw_rate));

    // Peak memory of a big snapshot.
    if big > 0 {
        ensure_table("sbtest_big", big);
        let (secs, peak) = ferry_run(&snapshot_plan("sbtest_big"), 2);
        line("ferry snapshot → null, 2 workers (big table)", big, secs, peak, None);
    }
}
