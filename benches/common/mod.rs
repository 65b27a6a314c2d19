//! Helpers shared by the benchmarks that use the private test servers: SQL on the MariaDB
//! test server, the sysbench-like table, timing a child process with its peak memory and the
//! CPU seconds it, the MariaDB servers and everything else on the machine spent, and the result
//! line.
#![allow(dead_code)]

use mysql_async::prelude::Queryable;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub fn url() -> String {
    std::env::var("FERRY_TEST_MYSQL_URL").unwrap_or_else(|_| {
        eprintln!("FERRY_TEST_MYSQL_URL is not set: run `scripts/servers start` and export what it prints");
        std::process::exit(1)
    })
}

pub fn port() -> String {
    url().rsplit(':').next().unwrap_or("33306").to_string()
}

pub fn sql(q: &str) -> Vec<mysql_async::Row> {
    let opts = mysql_async::Opts::from_url(&url()).unwrap();
    ferry::runtime::io_runtime().block_on(async {
        let mut c = mysql_async::Conn::new(opts).await.unwrap();
        let r = c.query(q).await.unwrap_or_else(|e| panic!("{q}: {e}"));
        c.disconnect().await.unwrap();
        r
    })
}

pub fn master() -> (String, u64) {
    let r = &sql("SHOW MASTER STATUS")[0];
    (r.get(0).unwrap(), r.get(1).unwrap())
}

/// Creates `bench.<name>` with `rows` rows unless it already has them; returns the binlog range
/// the load wrote when it (re)loaded.
pub fn ensure_table(name: &str, rows: u64) -> Option<((String, u64), (String, u64))> {
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
    fill(
        "bench",
        name,
        rows,
        &format!(
            "seq, seq * 7919 % {rows}, CONCAT(LPAD(seq, 11, '0'), '-', REPEAT(SUBSTR(MD5(seq), 1, 10), 10)), \
             REPEAT(SUBSTR(MD5(seq), 1, 12), 4)"
        ),
    );
    Some((start, master()))
}

pub fn pg_url() -> String {
    std::env::var("FERRY_TEST_PG_URL").unwrap_or_else(|_| {
        eprintln!("FERRY_TEST_PG_URL is not set: run `scripts/servers start` and export what it prints");
        std::process::exit(1)
    })
}

pub fn pg_port() -> String {
    pg_url().rsplit(':').next().and_then(|p| p.split('/').next()).unwrap_or("55432").to_string()
}

pub fn psql(q: &str) {
    let st = Command::new("psql")
        .env("PGOPTIONS", "-c client_min_messages=warning")
        .args(["-q", "-h", "127.0.0.1", "-p", &pg_port(), "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-c", q])
        .status()
        .unwrap();
    assert!(st.success(), "psql: {q}");
}

pub const PG_TABLE: &str = "(id int PRIMARY KEY, k int NOT NULL, c char(120) NOT NULL, pad char(60) NOT NULL)";

/// Runs several statements in one round trip.
pub fn sql_batch(statements: &str) {
    let opts = mysql_async::Opts::from_url(&url()).unwrap();
    ferry::runtime::io_runtime().block_on(async {
        let mut c = mysql_async::Conn::new(opts).await.unwrap();
        c.query_drop(statements).await.unwrap_or_else(|e| panic!("{}…: {e}", &statements[..statements.len().min(200)]));
        c.disconnect().await.unwrap();
    })
}

fn table_rows(db: &str, table: &str) -> Option<u64> {
    let have = sql(&format!(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='{db}' AND TABLE_NAME='{table}'"
    ));
    (have[0].get::<u64, _>(0) == Some(1)).then(|| sql(&format!("SELECT COUNT(*) FROM {db}.{table}"))[0].get(0).unwrap())
}

/// Fills `db.table` from the MariaDB sequence engine in 200k-row statements: `select` is the
/// SELECT list over `seq`.
fn fill(db: &str, table: &str, rows: u64, select: &str) {
    for (lo, hi) in ranges(rows, 200_000) {
        sql(&format!("INSERT INTO {db}.{table} SELECT {select} FROM bench.seq_{lo}_to_{hi}"));
    }
}

/// `1..=rows` in consecutive inclusive ranges of at most `step`.
fn ranges(rows: u64, step: u64) -> impl Iterator<Item = (u64, u64)> {
    (1..=rows).step_by(step as usize).map(move |lo| (lo, (lo + step - 1).min(rows)))
}

/// The all-types table `bench.alltypes` (every MariaDB type family, some NULLs), `rows` rows.
pub fn ensure_alltypes(rows: u64) {
    sql("CREATE DATABASE IF NOT EXISTS bench");
    if table_rows("bench", "alltypes") == Some(rows) {
        return;
    }
    sql("DROP TABLE IF EXISTS bench.alltypes");
    sql("CREATE TABLE bench.alltypes (id INT PRIMARY KEY, ti TINYINT, si SMALLINT UNSIGNED, mi MEDIUMINT, \
         bi BIGINT, ubi BIGINT UNSIGNED, f FLOAT, d DOUBLE, dec1 DECIMAL(20,6), dec2 DECIMAL(65,30), c CHAR(10), \
         vc VARCHAR(100), tx TEXT, bin BINARY(16), vb VARBINARY(64), bl BLOB, dt DATE, tm TIME(3), dtm DATETIME(6), \
         ts TIMESTAMP(6) NULL, yr YEAR, js JSON, en ENUM('a','b','c'), st SET('x','y','z'), bt BIT(12), bo BOOLEAN)");
    fill(
        "bench",
        "alltypes",
        rows,
        "seq, CAST(seq % 256 AS SIGNED) - 128, seq % 65536, CAST(seq % 8388608 AS SIGNED) - 4194304, \
         CAST(seq AS SIGNED) * 1000003 - 5000000000, 18446744073709551615 - seq, seq / 7, seq * 1.000001e0 / 3, \
         seq / 11, CONCAT(seq, '.', LPAD(seq % 1000000, 30, '0')), LPAD(seq, 10, 'x'), \
         IF(seq % 10 = 0, NULL, CONCAT('name-', MD5(seq))), REPEAT(MD5(seq), 4), UNHEX(MD5(seq)), UNHEX(SHA1(seq)), \
         UNHEX(REPEAT(MD5(seq), 2)), DATE_ADD('2000-01-01', INTERVAL seq % 10000 DAY), \
         SEC_TO_TIME(CAST(seq % 300000 AS SIGNED) - 150000 + 0.125), \
         TIMESTAMPADD(MICROSECOND, seq * 1234567, '2001-01-01 00:00:00'), FROM_UNIXTIME(1000000000 + seq + 0.25), \
         1901 + seq % 255, JSON_OBJECT('id', seq, 'tag', MD5(seq)), ELT(1 + seq % 3, 'a', 'b', 'c'), \
         ELT(1 + seq % 4, 'x', 'y,z', '', 'x,y,z'), seq % 4096, seq % 2",
    );
}

/// `tables` sysbench-like tables of `rows` rows each in the database `bench_many`.
pub fn ensure_many(tables: u32, rows: u64) {
    ensure_many_in("bench_many", tables, rows)
}

/// `tables` sysbench-like tables `t000`, `t001`, … of `rows` rows each in the database `db`.
pub fn ensure_many_in(db: &str, tables: u32, rows: u64) {
    sql("CREATE DATABASE IF NOT EXISTS bench");
    let n: u64 =
        sql(&format!("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='{db}'"))[0].get(0).unwrap();
    if n == tables as u64 && table_rows(db, &format!("t{:03}", tables - 1)) == Some(rows) {
        return;
    }
    sql(&format!("DROP DATABASE IF EXISTS {db}"));
    sql(&format!("CREATE DATABASE {db}"));
    let mut batch = String::new();
    for t in 0..tables {
        batch.push_str(&format!(
            "CREATE TABLE {db}.t{t:03} (id INT PRIMARY KEY, k INT NOT NULL, c CHAR(120) NOT NULL, pad CHAR(60) NOT NULL);\
             INSERT INTO {db}.t{t:03} SELECT seq, seq * 7919 % {rows}, CONCAT(LPAD(seq, 11, '0'), '-', REPEAT(SUBSTR(MD5(seq + {t}), 1, 10), 10)), \
             REPEAT(SUBSTR(MD5(seq), 1, 12), 4) FROM bench.seq_1_to_{rows};"
        ));
    }
    sql_batch(&batch);
}

/// The binlog ranges of the change-stream dataset: `bench.sbtest_cdc` loaded afresh with `rows`
/// inserts (in their own binlog files), then `on_inserts(range)` runs, then every row is
/// updated (10k-row transactions, new binlog files) and `on_updates(range)` runs.
pub fn with_cdc(
    rows: u64,
    on_inserts: impl FnOnce((String, u64), (String, u64)),
    on_updates: impl FnOnce((String, u64), (String, u64)),
) {
    sql("DROP TABLE IF EXISTS bench.sbtest_cdc");
    sql("FLUSH BINARY LOGS");
    let (from, to) = ensure_table("sbtest_cdc", rows).expect("a fresh table is loaded");
    on_inserts(from, to);
    sql("FLUSH BINARY LOGS");
    let from = master();
    for (lo, hi) in ranges(rows, 10_000) {
        sql(&format!(
            "UPDATE bench.sbtest_cdc SET k = k + 1, c = CONCAT(LPAD(id, 11, '0'), '-', REPEAT(SUBSTR(MD5(id + 1), 1, 10), 10)) \
             WHERE id BETWEEN {lo} AND {hi}"
        ));
    }
    on_updates(from, master());
}

/// The binlog files from `from`'s to `to`'s.
pub fn binlog_files(from: &(String, u64), to: &(String, u64)) -> Vec<String> {
    sql("SHOW BINARY LOGS")
        .iter()
        .map(|r| r.get::<String, _>(0).unwrap())
        .filter(|f| *f >= from.0 && *f <= to.0)
        .collect()
}

/// CPU seconds spent on the machine during a measurement: all of it (from /proc/stat) and by
/// process name (summed over every process seen while sampling /proc every 50 ms, so a process
/// that ends loses at most its last 50 ms).
#[derive(Debug, Clone, Default)]
pub struct Cpu {
    /// Busy seconds of all CPUs.
    pub total: f64,
    /// Seconds by process name, largest first.
    pub by_name: Vec<(String, f64)>,
    /// Exact seconds of the measured command itself (its process and the children it waited
    /// for), from this process's `cutime + cstime` across reaping it.
    pub command: f64,
}

impl std::fmt::Display for Cpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cpu {:>5.1}s", self.total)?;
        for (i, (name, secs)) in self.by_name.iter().take(4).enumerate() {
            write!(f, "{}{name} {secs:.1}", if i == 0 { " (" } else { ", " })?;
        }
        if !self.by_name.is_empty() {
            write!(f, ")")?;
        }
        Ok(())
    }
}

/// USER_HZ, 100 on every Linux this runs on.
const TICKS: f64 = 100.0;

fn machine_busy() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    // cpu user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
    stat.lines().next().map_or(0.0, |l| {
        l.split_whitespace()
            .skip(1)
            .take(8)
            .enumerate()
            .filter(|(i, _)| *i != 3 && *i != 4)
            .filter_map(|(_, v)| v.parse::<f64>().ok())
            .sum::<f64>()
    }) / TICKS
}

/// One process as `/proc/<pid>/stat` shows it.
#[derive(Debug, Clone)]
struct Proc {
    name: String,
    ppid: u32,
    /// CPU seconds so far (utime + stime).
    cpu: f64,
}

/// Every process, by pid.
fn processes() -> std::collections::HashMap<u32, Proc> {
    let mut out = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(st) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        let (Some(open), Some(close)) = (st.find('('), st.rfind(") ")) else { continue };
        let name = st[open + 1..close].to_string();
        let f: Vec<&str> = st[close + 2..].split_whitespace().collect();
        // Counted from the state field: ppid is 1; utime and stime (fields 14 and 15) are 11, 12.
        let Some(ppid) = f.get(1).and_then(|p| p.parse().ok()) else { continue };
        let cpu = f.get(11..13).map_or(0.0, |v| v.iter().filter_map(|x| x.parse::<f64>().ok()).sum()) / TICKS;
        out.insert(pid, Proc { name, ppid, cpu });
    }
    out
}

/// Samples the machine's processes while a measurement runs.
struct CpuMeter {
    busy0: f64,
    first: std::collections::HashMap<u32, Proc>,
    last: std::collections::HashMap<u32, Proc>,
}

impl CpuMeter {
    fn start() -> Self {
        let first = processes();
        CpuMeter { busy0: machine_busy(), last: first.clone(), first }
    }

    /// Takes a sample of [`processes`].
    fn sample(&mut self, procs: &std::collections::HashMap<u32, Proc>) {
        self.last.extend(procs.iter().map(|(pid, p)| (*pid, p.clone())));
    }

    fn finish(mut self) -> Cpu {
        self.sample(&processes());
        let mut by: std::collections::BTreeMap<String, f64> = Default::default();
        for (pid, p) in &self.last {
            let before = self.first.get(pid).filter(|f| f.name == p.name).map_or(0.0, |f| f.cpu);
            *by.entry(p.name.clone()).or_default() += p.cpu - before;
        }
        let mut by_name: Vec<(String, f64)> = by.into_iter().filter(|(_, s)| *s >= 0.05).collect();
        by_name.sort_by(|a, b| b.1.total_cmp(&a.1));
        Cpu { total: machine_busy() - self.busy0, by_name, command: 0.0 }
    }
}

thread_local! {
    static LAST_CPU: std::cell::RefCell<Cpu> = std::cell::RefCell::new(Cpu::default());
}

/// The CPU seconds of the last [`timed`] run.
pub fn last_cpu() -> Cpu {
    LAST_CPU.with(|c| c.borrow().clone())
}

/// CPU seconds of this process's children that it has waited for (`cutime + cstime`).
fn reaped_children_cpu() -> f64 {
    let st = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = st.rfind(") ").map_or("", |i| &st[i + 2..]).split_whitespace().collect();
    // cutime and cstime are fields 16 and 17 of stat: 13 and 14 counted from the state field.
    f.get(13..15).map_or(0.0, |v| v.iter().filter_map(|x| x.parse::<f64>().ok()).sum()) / TICKS
}

/// Peak resident memory (MiB) of `root` and every process below it in `procs` (a pipeline's
/// `bash` and its commands), summed: each process's own peak, as /proc shows it now.
fn tree_peak_mib(root: u32, procs: &std::collections::HashMap<u32, Proc>) -> f64 {
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(procs.iter().filter(|(_, c)| c.ppid == p).map(|(pid, _)| *pid));
        i += 1;
    }
    tree.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .sum::<f64>()
        / 1024.0
}

/// Runs a command, returning wall seconds and the peak resident memory (MiB) of its process
/// tree seen in /proc; the CPU seconds spent meanwhile are kept for [`last_cpu`].
pub fn timed(cmd: Command) -> (f64, f64) {
    try_timed(cmd).unwrap_or_else(|e| panic!("{e}"))
}

/// [`timed`], answering a failed command with its standard error instead of a panic.
pub fn try_timed(mut cmd: Command) -> Result<(f64, f64), String> {
    let mut meter = CpuMeter::start();
    let mut polls = 0u32;
    let reaped = reaped_children_cpu();
    let start = Instant::now();
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut peak = 0.0f64;
    let status = loop {
        // Every 50 ms one read of all of /proc serves the CPU meter and the whole tree's
        // memory; in between, the command itself.
        if polls.is_multiple_of(2) {
            let procs = processes();
            meter.sample(&procs);
            peak = peak.max(tree_peak_mib(child.id(), &procs));
        } else {
            peak = peak.max(tree_peak_mib(child.id(), &Default::default()));
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        std::thread::sleep(Duration::from_millis(25));
        polls += 1;
    };
    let secs = start.elapsed().as_secs_f64();
    let mut cpu = meter.finish();
    cpu.command = reaped_children_cpu() - reaped;
    LAST_CPU.with(|c| *c.borrow_mut() = cpu);
    if !status.success() {
        let mut err = String::new();
        use std::io::Read;
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        return Err(format!("{cmd:?} failed: {err}"));
    }
    Ok((secs, peak))
}

thread_local! {
    /// Bytes per row of the dataset being measured (its `SELECT *` text), for MB/s.
    static ROW_BYTES: std::cell::Cell<f64> = const { std::cell::Cell::new(0.0) };
    /// The raw limit the next ratios divide by.
    static LIMIT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Sets the dataset's bytes per row (as `SELECT *` text) for the MB/s of the next lines.
pub fn set_row_bytes(bytes_per_row: f64) {
    ROW_BYTES.with(|b| b.set(bytes_per_row));
}

/// Appends one row to the run's summary (`FERRY_BENCH_SUMMARY`, tab-separated: case, rows/s,
/// MB/s, × limit, limit, ÷ peer, ferry CPU s per million rows, peak MiB, note), which
/// `scripts/bench` turns into the results table.
pub fn summary(fields: [&str; 9]) {
    let Ok(path) = std::env::var("FERRY_BENCH_SUMMARY") else { return };
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    writeln!(f, "{}", fields.join("\t")).unwrap();
}

/// Prints a result line: rows/s, MB/s (as text), the ratio to `base` rows/s, peak memory and
/// CPU seconds; a line without `base` whose name starts with `raw:` or `pipe:` becomes the
/// limit of the following ratios. Also adds the line to the summary.
pub fn line(name: &str, rows: u64, secs: f64, peak: f64, base: Option<f64>, cpu: &Cpu) {
    let rate = rows as f64 / secs;
    let mb = rate * ROW_BYTES.with(|b| b.get()) / 1e6;
    let ratio = base.map(|b| format!("{:>6.2}×", rate / b)).unwrap_or_default();
    println!(
        "{name:<48} {rows:>9} rows {secs:>7.2}s {rate:>10.0} rows/s {mb:>7.1} MB/s {ratio:>8} {peak:>7.1} MiB peak \
         {cpu}"
    );
    if base.is_none() && (name.starts_with("raw:") || name.starts_with("pipe:")) {
        LIMIT.with(|l| *l.borrow_mut() = name.split_once(": ").map_or(name, |x| x.1).to_string());
    }
    let limit = if base.is_some() { LIMIT.with(|l| l.borrow().clone()) } else { String::new() };
    // A ferry line's command is the `ferry` binary itself (see `ferry_run`).
    let per_m =
        if name.starts_with("ferry") { format!("{:.2}", cpu.command / (rows as f64 / 1e6)) } else { String::new() };
    summary([
        name,
        &format!("{rate:.0}"),
        &format!("{mb:.1}"),
        &base.map(|b| format!("{:.2}", rate / b)).unwrap_or_default(),
        &limit,
        "",
        &per_m,
        &format!("{peak:.0}"),
        "",
    ]);
}

/// Prints and records ferry's rate divided by a peer's.
pub fn peer_ratio(what: &str, ratio: f64) {
    println!("{what}: {ratio:.2}×");
    summary([what, "", "", "", "", &format!("{ratio:.2}"), "", "", ""]);
}

/// Makes `name` the limit the next ratio lines name (as a `raw:`/`pipe:` line does), for lines
/// whose ratio is to an earlier limit than the last one printed.
pub fn set_limit(name: &str) {
    LIMIT.with(|l| *l.borrow_mut() = name.to_string());
}

/// Bytes of `SELECT <cols> FROM <from>` as the `mariadb` client prints it (tab-separated text).
pub fn text_bytes(query: &str) -> u64 {
    // The query goes through a file: thousands of tables' SELECTs exceed an argument's limit.
    let file = query_file(query);
    let out = Command::new("bash")
        .args([
            "-o",
            "pipefail",
            "-c",
            &format!("mariadb --quick -N -h127.0.0.1 -P{} -uroot < {} | wc -c", port(), file.path().display()),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{query}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// `query` in a temporary file, for a client's standard input.
pub fn query_file(query: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut f, query.as_bytes()).unwrap();
    f
}

/// Runs every measurement `rounds` times, interleaved (a shared machine's speed drifts over a
/// run, so a raw limit and ferry are measured side by side in each round), and returns per
/// measurement the median seconds, the highest peak MiB and the CPU seconds of the median run.
pub fn interleaved(rounds: usize, runs: &mut [&mut dyn FnMut() -> (f64, f64)]) -> Vec<(f64, f64, Cpu)> {
    let mut all: Vec<Vec<(f64, f64, Cpu)>> = vec![Vec::new(); runs.len()];
    for _ in 0..rounds {
        for (i, run) in runs.iter_mut().enumerate() {
            let (secs, peak) = run();
            all[i].push((secs, peak, last_cpu()));
        }
    }
    all.into_iter()
        .map(|mut v| {
            let peak = v.iter().map(|r| r.1).fold(0.0, f64::max);
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mid = v.swap_remove(v.len() / 2);
            (mid.0, peak, mid.2)
        })
        .collect()
}

/// Runs `ferry run -q -w <workers>` on `plan` in a fresh directory: wall seconds and peak MiB.
pub fn ferry_run(plan: &str, workers: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("plan.yaml");
    std::fs::write(&p, plan).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.current_dir(dir.path()).args(["run", "-q", "-w", &workers.to_string(), p.to_str().unwrap()]);
    timed(cmd)
}
