//! The task service under load: `ferry serve` with `FERRY_BENCH_SERVICE_TASKS` (default 20)
//! datagen → files tasks running at once on this machine (each generating
//! `FERRY_BENCH_SERVICE_RATE`, default 5,000, changes per second), while one client asks the
//! API what a console asks — `GET /api/tasks`, `GET /api/tasks/{task}`, `GET /metrics` — back
//! to back for `FERRY_BENCH_SERVICE_SECONDS` (default 20). Prints the latency percentiles per
//! route and overall (target: p99 under 100 ms), the rows the tasks wrote per second, and the
//! service's and the runs' peak memory.

use ferry::service::client::call;
use std::io::BufRead;
use std::time::{Duration, Instant};

mod common;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Peak resident memory of a process (VmHWM), MiB.
fn peak_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let tasks = common::env_u64("FERRY_BENCH_SERVICE_TASKS", 20);
    let rate = common::env_u64("FERRY_BENCH_SERVICE_RATE", 5_000);
    let secs = common::env_u64("FERRY_BENCH_SERVICE_SECONDS", 20);
    println!(
        "ferry serve: {tasks} datagen → files tasks at {rate} changes/s each on {} core(s); the API asked back to \
         back for {secs}s",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("svc");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["serve", "--listen", "127.0.0.1:0", "--state"])
        .arg(&state)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.split_whitespace().find(|w| w.starts_with("http://")).expect("the address").to_string();
    let token = std::fs::read_to_string(state.join("token")).unwrap();
    let api = |method: &str, path: &str, body: &str| {
        call(&base, Some(&token), method, path, &[], body.as_bytes()).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    };
    let names: Vec<String> = (0..tasks).map(|i| format!("load-{i:02}")).collect();
    for (i, name) in names.iter().enumerate() {
        let plan = format!(
            "task: {name}\nsource:\n  type: datagen\n  seed: {i}\n  databases: 1\n  tables_per_database: 2\n  \
             initial_rows: 1000\n  changes: 1000000000\n  rate: {rate}\ntarget:\n  type: files\n  path: ./out\n\
             tables:\n  include: ['.*\\.(customers|orders)']\n"
        );
        assert_eq!(api("POST", "/api/tasks", &plan).status, 201);
        assert_eq!(api("POST", &format!("/api/tasks/{name}/start"), "").status, 200);
    }
    // Every run up and writing.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v = api("GET", "/api/tasks", "").json();
        let writing = v["tasks"].as_array().unwrap().iter().filter(|t| t["rows_out"].as_u64().unwrap_or(0) > 0).count();
        if writing == names.len() {
            break;
        }
        assert!(Instant::now() < deadline, "only {writing} of {} tasks write", names.len());
        std::thread::sleep(Duration::from_millis(200));
    }
    let rows = |v: &serde_json::Value| -> u64 {
        v["tasks"].as_array().unwrap().iter().map(|t| t["rows_out"].as_u64().unwrap_or(0)).sum()
    };
    let first = rows(&api("GET", "/api/tasks", "").json());
    let started = Instant::now();
    let mut lat: [(String, Vec<f64>); 3] = [
        ("GET /api/tasks".into(), Vec::new()),
        ("GET /api/tasks/{task}".into(), Vec::new()),
        ("GET /metrics".into(), Vec::new()),
    ];
    let mut i = 0usize;
    while started.elapsed() < Duration::from_secs(secs) {
        let which = i % 3;
        let path = match which {
            0 => "/api/tasks".to_string(),
            1 => format!("/api/tasks/{}", names[i / 3 % names.len()]),
            _ => "/metrics".to_string(),
        };
        let t = Instant::now();
        let r = api("GET", &path, "");
        lat[which].1.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        i += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let last = rows(&api("GET", "/api/tasks", "").json());
    let mut all: Vec<f64> = Vec::new();
    for (route, l) in lat.iter_mut() {
        l.sort_by(|a, b| a.total_cmp(b));
        all.extend_from_slice(l);
        println!(
            "{route:<24} {:>6} requests  p50 {:>6.1} ms  p95 {:>6.1} ms  p99 {:>6.1} ms  max {:>6.1} ms",
            l.len(),
            percentile(l, 0.5),
            percentile(l, 0.95),
            percentile(l, 0.99),
            l.last().copied().unwrap_or(f64::NAN)
        );
    }
    all.sort_by(|a, b| a.total_cmp(b));
    let p99 = percentile(&all, 0.99);
    // The runs' peaks: the children of the service.
    let service_pid = child.id();
    let mut runs_peak = 0.0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid =
            stat.rsplit(')').next().and_then(|r| r.split_whitespace().nth(1)).and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(service_pid) {
            runs_peak += peak_mib(pid);
        }
    }
    let service_peak = peak_mib(service_pid);
    let rate_out = (last - first) as f64 / elapsed;
    println!(
        "all routes: {} requests, p50 {:.1} ms, p99 {p99:.1} ms (target < 100 ms) {}; the {tasks} tasks wrote \
         {rate_out:.0} rows/s; peak memory: service {service_peak:.1} MiB, runs {runs_peak:.0} MiB together",
        all.len(),
        percentile(&all, 0.5),
        if p99 < 100.0 { "held" } else { "MISSED" }
    );
    common::summary([
        &format!("service: {tasks} datagen tasks, API p99 ms"),
        &format!("{rate_out:.0}"),
        "",
        "",
        "",
        "",
        "",
        &format!("{service_peak:.0}"),
        &format!("API p99 {p99:.1} ms, p50 {:.1} ms over {} requests", percentile(&all, 0.5), all.len()),
    ]);
    let _ = child.kill();
    let _ = child.wait();
}
