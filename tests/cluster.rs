//! A cluster survives the loss of one process. 2- and 3-process clusters (`--hostfile`, one
//! worker each) copy MariaDB into a PostgreSQL exactly-once append log under a random workload;
//! one process at a time is killed (SIGKILL), during the snapshot and while streaming, each in
//! turn, and started again alone with the same command. The others stay up and say in their
//! status that they wait for it; the cluster resumes. At the end the log, replayed strictly
//! (per key, in write order: no insert of a present key, no update or delete of an absent one),
//! equals the source, and no change is in it twice. A process that never comes back ends the
//! others `failed` after `runtime.cluster_timeout`, naming it; a process restarted with another
//! worker count is refused with a message that says what differs.

mod common;

use common::items::{fresh_source, source_rows, workload};
use common::mysql::main_url;
use common::sql::{pg_append_log, pg_client, replay_strictly, Target};
use common::*;
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Rows in the append log so far.
fn log_len(db: &str) -> i64 {
    ferry::runtime::io_runtime().block_on(async {
        let c = pg_client().await;
        c.query_one(&format!("SELECT count(*) FROM \"{db}\".items"), &[]).await.unwrap().get(0)
    })
}

/// The log replayed leniently (the final state it describes, whatever its faults).
fn replayed(db: &str) -> BTreeMap<i64, i64> {
    let mut state = BTreeMap::new();
    for (id, v, op) in pg_append_log(db) {
        if op == "delete" {
            state.remove(&id);
        } else {
            state.insert(id, v);
        }
    }
    state
}

/// The processes of one cluster, each started with the same plan and hostfile.
struct Cluster {
    dir: PathBuf,
    plan: String,
    hostfile: String,
    task: String,
    procs: Vec<Option<KillOnDrop>>,
}

impl Cluster {
    fn new(dir: &Path, task: &str, plan: &str, n: usize) -> Cluster {
        let hosts: String = (0..n).map(|_| format!("127.0.0.1:{}\n", free_port())).collect();
        Cluster {
            dir: dir.to_path_buf(),
            plan: write_plan(dir, "plan.yaml", plan),
            hostfile: write_plan(dir, "hosts.txt", &hosts),
            task: task.into(),
            procs: (0..n).map(|_| None).collect(),
        }
    }

    fn address(&self, p: usize) -> String {
        std::fs::read_to_string(&self.hostfile).unwrap().lines().nth(p).unwrap().to_string()
    }

    /// Starts process `p` (`extra` arguments before the plan); its log goes to `p<p>.log`.
    fn spawn(&self, p: usize, extra: &[&str]) -> std::process::Child {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(format!("p{p}.log"))).unwrap();
        let mut args = vec!["run".to_string(), "-q".into(), "--hostfile".into(), self.hostfile.clone()];
        args.extend(["--process".into(), p.to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(self.plan.clone());
        ferry()
            .current_dir(&self.dir)
            .env("FERRY_LOG", "info,ferry::connectors::mysql::watermark=debug")
            // A pause before each snapshot chunk: the snapshot lasts long enough for a kill.
            .env("FERRY_FAULT_CHUNK_DELAY_MS", "60")
            // Manifests lag the sinks' commits: a kill lands where a restart replays epochs
            // some sinks committed and others did not.
            .env("FERRY_FAULT_MANIFEST_DELAY_MS", "400")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    fn start(&mut self, p: usize) {
        self.procs[p] = Some(KillOnDrop(self.spawn(p, &[])));
    }

    fn kill(&mut self, p: usize) {
        let mut c = self.procs[p].take().expect("running");
        c.0.kill().unwrap(); // SIGKILL
        c.0.wait().unwrap();
    }

    /// Every process's log, for a failure message.
    fn logs(&self) -> String {
        (0..self.procs.len())
            .map(|p| {
                let text = std::fs::read_to_string(self.dir.join(format!("p{p}.log"))).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                format!("--- process {p}:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Asserts every started process still runs.
    fn assert_running(&mut self, when: &str) {
        for p in 0..self.procs.len() {
            if let Some(c) = self.procs[p].as_mut() {
                if let Some(st) = c.0.try_wait().unwrap() {
                    panic!("process {p} ended ({st}) {when}\n{}", self.logs());
                }
            }
        }
    }

    /// A wait's step: every started process still runs and the wait began less than `secs` ago;
    /// otherwise the test fails with `what` and the processes' logs.
    fn still_within(&mut self, start: Instant, secs: u64, what: &str) {
        self.assert_running(what);
        assert!(start.elapsed() < Duration::from_secs(secs), "{what}\n{}", self.logs());
    }

    /// Process `p`'s status file.
    fn status(&self, p: usize) -> Option<Json> {
        let file = if p == 0 { "status.json".to_string() } else { format!("status.{p}.json") };
        let bytes = std::fs::read(self.dir.join("state").join(&self.task).join(file)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Waits until every other process's status says it waits for `lost` to rejoin.
    fn await_waiting_for(&mut self, lost: usize) {
        let start = Instant::now();
        let needle = format!("process {lost} ({})", self.address(lost));
        for p in (0..self.procs.len()).filter(|&p| p != lost) {
            loop {
                let st = self.status(p);
                let waits = st.as_ref().is_some_and(|s| {
                    s["state"] == "restarting"
                        && s["cluster"]["waiting_for"]
                            .as_array()
                            .is_some_and(|w| w.iter().any(|x| x.as_str().is_some_and(|x| x.starts_with(&needle))))
                        && s["cluster"]["waiting_since_micros"].as_i64().is_some_and(|t| t > 0)
                });
                if waits {
                    break;
                }
                self.still_within(start, 20, &format!("process {p} does not say it waits for {needle}: {st:?}"));
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn plan(task: &str, db: &str, timeout: &str) -> String {
    with_handoff(&format!(
        "task: {task}\nsource:\n  type: mariadb\n  url: {}\n  chunk_rows: 4000\n  heartbeat: 200ms\n\
         target:\n  type: postgres\n  url: {}\ntables:\n  include: ['{db}\\.items']\n\
         semantics: exactly-once\nwrite_mode: append\nmetadata:\n  - {{column: _op, field: op_type}}\n\
         runtime:\n  workers: 1\n  checkpoint_interval: 300ms\n  state: ./state\n  cluster_timeout: {timeout}\n\
         errors:\n  max_restarts: 50\n",
        main_url(),
        Target::Pg.pg_url()
    ))
}

/// Kills one process at a time — twice during the snapshot, then while streaming, each in
/// turn — and restarts it alone; checks the target at the end. (`n = 1`: a single process,
/// killed and started again.)
fn one_process_at_a_time_is_lost_and_the_cluster_resumes(n: usize, rounds: usize) {
    let db = format!("cluster{n}");
    let task = format!("cluster-{n}");
    const ROWS: u64 = 300_000;
    fresh_source(&db, ROWS);
    let dir = workdir();
    let mut cluster = Cluster::new(dir.path(), &task, &plan(&task, &db, "60s"), n);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = workload(db.clone(), ROWS, stop.clone());
    for p in 0..n {
        cluster.start(p);
    }
    let mut mark = 0;
    for round in 0..rounds {
        let victim = (n - 1 + round) % n;
        let start = Instant::now();
        // The first two kills land in the snapshot, the others while streaming.
        let in_snapshot = round < 2;
        let due = |len: i64| if in_snapshot { len >= mark + 5_000 } else { len >= (ROWS as i64 + 300).max(mark + 300) };
        loop {
            let len = log_len(&db);
            if due(len) {
                break;
            }
            cluster.still_within(start, 90, &format!("no progress before kill {round} ({len} log rows)"));
            std::thread::sleep(Duration::from_millis(20));
        }
        cluster.kill(victim);
        let at_kill = log_len(&db);
        if in_snapshot {
            assert!(
                at_kill < ROWS as i64 - 2_000,
                "kill {round} must land in the snapshot ({at_kill} rows were in): the snapshot is too fast"
            );
        }
        eprintln!("round {round}: killed process {victim} at {at_kill} log rows");
        if n > 1 {
            cluster.await_waiting_for(victim);
        }
        if round == 1 && n > 1 {
            // Started again with another worker count: refused, saying what differs; the
            // others go on waiting for the right one.
            let out = cluster.spawn(victim, &["-w", "2"]).wait_with_output().unwrap();
            assert!(!out.status.success(), "a process of another run joined");
            let log = std::fs::read_to_string(dir.path().join(format!("p{victim}.log"))).unwrap();
            assert!(
                log.contains("are not the same run: workers per process")
                    && log.contains("start each with the same command"),
                "{log}"
            );
            cluster.await_waiting_for(victim);
        }
        cluster.start(victim);
        mark = log_len(&db).max(at_kill);
    }
    stop.store(true, Ordering::SeqCst);
    let rounds_written = writer.join().unwrap();
    assert!(rounds_written > 50, "only {rounds_written} workload rounds");
    // The cluster catches up with the source.
    let want = source_rows(&db);
    let start = Instant::now();
    while replayed(&db) != want {
        cluster.still_within(start, 90, "while the target catches up");
        std::thread::sleep(Duration::from_millis(500));
    }
    cluster.assert_running("at the end");
    for p in 0..n {
        let st = cluster.status(p).unwrap();
        assert_eq!(st["state"], "running", "process {p}: {st}");
        if n > 1 {
            assert!(st["cluster"]["waiting_for"].as_array().unwrap().is_empty(), "process {p}: {st}");
        }
    }
    for p in 0..n {
        cluster.kill(p);
    }
    // The processes' logs, kept for a look after a failure.
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cluster-{n}"));
    let _ = std::fs::remove_dir_all(&keep);
    std::fs::create_dir_all(&keep).unwrap();
    for p in 0..n {
        let _ = std::fs::copy(dir.path().join(format!("p{p}.log")), keep.join(format!("p{p}.log")));
    }
    let rewound: usize = (0..n)
        .map(|p| {
            std::fs::read_to_string(dir.path().join(format!("p{p}.log")))
                .unwrap()
                .matches("rewound a replayed chunk")
                .count()
        })
        .sum();
    eprintln!("replayed chunks turned back to their recorded positions: {rewound}");
    assert!(rewound > 0, "no kill made a restart replay a snapshot chunk: the test needs a longer snapshot");
    let log = pg_append_log(&db);
    let mut seen = HashSet::new();
    for row in &log {
        assert!(seen.insert(row), "a change is in the log twice: {row:?}");
    }
    assert_eq!(replay_strictly(&log), want, "the target's final state differs from the source");
}

/// One process alone (no cluster): the replayed snapshot chunks after a kill during the
/// snapshot must not bring the changes after their recorded positions twice.
#[test]
fn a_single_process_killed_during_the_snapshot_and_while_streaming_resumes_exactly_once() {
    one_process_at_a_time_is_lost_and_the_cluster_resumes(1, 3);
}

#[test]
fn a_two_process_cluster_loses_one_process_at_a_time_and_resumes_exactly_once() {
    one_process_at_a_time_is_lost_and_the_cluster_resumes(2, 5);
}

#[test]
fn a_three_process_cluster_loses_one_process_at_a_time_and_resumes_exactly_once() {
    one_process_at_a_time_is_lost_and_the_cluster_resumes(3, 6);
}

#[test]
fn a_process_that_never_comes_back_ends_the_others_failed_after_the_cluster_timeout_naming_it() {
    let db = "cluster_gone";
    let task = "cluster-gone";
    fresh_source(db, 20_000);
    let dir = workdir();
    let mut cluster = Cluster::new(dir.path(), task, &plan(task, db, "3s"), 3);
    for p in 0..3 {
        cluster.start(p);
    }
    let start = Instant::now();
    while log_len(db) < 20_000 {
        cluster.still_within(start, 60, "while the snapshot arrives, before the kill");
        std::thread::sleep(Duration::from_millis(50));
    }
    cluster.kill(2);
    let killed = Instant::now();
    let gone = format!("process 2 ({})", cluster.address(2));
    for p in 0..2 {
        let mut child = cluster.procs[p].take().unwrap();
        let status = loop {
            if let Some(s) = child.0.try_wait().unwrap() {
                break s;
            }
            assert!(killed.elapsed() < Duration::from_secs(40), "process {p} still waits\n{}", cluster.logs());
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(!status.success(), "process {p} ended {status}");
        let log = std::fs::read_to_string(dir.path().join(format!("p{p}.log"))).unwrap();
        let msg = format!("{gone} did not join the cluster within runtime.cluster_timeout (3s)");
        assert!(log.contains(&msg), "process {p}'s error does not name the missing process:\n{log}");
        let st = cluster.status(p).unwrap();
        assert_eq!(st["state"], "failed", "{st}");
        assert!(st["last_error"].as_str().unwrap().contains(&msg), "{st}");
    }
    assert!(killed.elapsed() >= Duration::from_secs(3), "ended before the timeout: {:?}", killed.elapsed());
}
