//! The task service (`ferry serve`) over HTTP, against a real service process: the token, plan
//! submission with located errors, versions and the edit lock (If-Match: 200, stale 409,
//! missing 428, another holder 423), start strategies by state; MariaDB → PostgreSQL tasks
//! stopped with a savepoint and by cancel under writes, edited and resumed, ending equal to the
//! source with no change twice in an exactly-once append log; and a kill -9 of the service
//! with two running tasks, which both resume when it starts again.

mod common;

use common::items::{fresh_source, source_rows, workload};
use common::mysql::main_url;
use common::sql::{pg_append_log, replay_strictly, Target};
use common::*;
use ferry::service::client::{call, Reply};
use serde_json::Value as Json;
use std::io::BufRead;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running `ferry serve` on a free port, killed when dropped.
struct Served {
    child: KillOnDrop,
    base: String,
    token: String,
}

impl Served {
    /// Starts the service on `state` (its token file inside it) and waits for its address.
    fn start(state: &Path) -> Served {
        let mut child = ferry()
            .args(["serve", "--listen", "127.0.0.1:0", "--state"])
            .arg(state)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        let token = std::fs::read_to_string(state.join("token")).unwrap();
        Served { child: KillOnDrop(child), base, token }
    }

    fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        call(&self.base, Some(&self.token), method, path, headers, body.as_bytes()).unwrap()
    }

    fn get(&self, path: &str) -> Json {
        let r = self.call("GET", path, &[], "");
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        r.json()
    }

    fn post(&self, path: &str, body: &str) -> Reply {
        self.call("POST", path, &[], body)
    }

    /// Waits until the task is in `state` (at most `secs`), and returns its summary.
    fn wait_state(&self, task: &str, state: &str, secs: u64) -> Json {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let t = self.get(&format!("/api/tasks/{task}"));
            if t["state"] == state {
                return t;
            }
            assert!(Instant::now() < deadline, "task {task} did not become {state}: {t}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the task's run has committed an epoch past `epoch`.
    fn wait_epoch_past(&self, task: &str, epoch: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let t = self.get(&format!("/api/tasks/{task}"));
            let e = t["run"]["epoch"].as_u64().unwrap_or(0);
            if e > epoch {
                return e;
            }
            assert!(Instant::now() < deadline, "task {task} commits nothing past epoch {epoch}: {t}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// kill -9 of the service.
    fn kill(mut self) {
        self.child.0.kill().unwrap();
        self.child.0.wait().unwrap();
    }
}

fn datagen_plan(task: &str, changes: u64) -> String {
    format!(
        "task: {task}\nsource:\n  type: datagen\n  seed: 3\n  databases: 1\n  tables_per_database: 2\n  \
         initial_rows: 200\n  changes: {changes}\ntarget:\n  type: files\n  path: ./out\n\
         tables:\n  include: ['.*\\.(customers|orders)']\nsemantics: exactly-once\n"
    )
}

#[test]
fn the_api_keeps_versions_with_if_match_and_the_edit_lock_and_starts_by_state() {
    let dir = workdir();
    let svc = Served::start(&dir.path().join("svc"));
    // The token: everything but /healthz needs it.
    assert_eq!(call(&svc.base, None, "GET", "/healthz", &[], b"").unwrap().status, 200);
    assert_eq!(call(&svc.base, None, "GET", "/api/tasks", &[], b"").unwrap().status, 401);
    assert_eq!(call(&svc.base, Some("wrong"), "GET", "/api/tasks", &[], b"").unwrap().status, 401);

    // A bad plan: every error, located.
    let bad = svc.post("/api/tasks", "task: t1\nsource:\n  type: datagen\n  sed: 3\ntarget:\n  type: files\n");
    assert_eq!(bad.status, 400, "{}", bad.body);
    let errors = bad.json()["errors"].to_string();
    assert!(errors.contains("plan.yaml:4") && errors.contains("sed"), "{errors}");

    let v1 = datagen_plan("t1", 2000);
    let r = svc.post("/api/tasks", &v1);
    assert_eq!((r.status, r.json()["version"].as_u64()), (201, Some(1)), "{}", r.body);
    assert_eq!(svc.post("/api/tasks", &v1).status, 409);
    assert_eq!(svc.get("/api/tasks")["tasks"][0]["state"], "initialized");
    // The same through the command-line client.
    let client =
        |args: &[&str]| ferry().args(["task", "--url", &svc.base, "--token", &svc.token]).args(args).output().unwrap();
    let listed = ok(&client(&["list"]));
    assert!(listed.contains("t1") && listed.contains("initialized"), "{listed}");
    let refused = client(&["start", "t1", "--from", "savepoint"]);
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("(409)") && err.contains("allowed: default"), "{err}");

    // Versions: If-Match required, stale refused, the lock's holder only.
    let v2 = datagen_plan("t1", 3000);
    assert_eq!(svc.call("PUT", "/api/tasks/t1/plan", &[], &v2).status, 428);
    let r = svc.call("PUT", "/api/tasks/t1/plan", &[("If-Match", "1")], &v2);
    assert_eq!((r.status, r.json()["version"].as_u64()), (200, Some(2)), "{}", r.body);
    let stale = svc.call("PUT", "/api/tasks/t1/plan", &[("If-Match", "1")], &v2);
    assert_eq!((stale.status, stale.json()["version"].as_u64()), (409, Some(2)), "{}", stale.body);
    assert_eq!(svc.post("/api/tasks/t1/lock", r#"{"holder": "ann", "ttl_seconds": 60}"#).status, 200);
    assert_eq!(svc.post("/api/tasks/t1/lock", r#"{"holder": "bob", "ttl_seconds": 60}"#).status, 423);
    let v3 = datagen_plan("t1", 4000);
    let locked = svc.call("PUT", "/api/tasks/t1/plan", &[("If-Match", "2"), ("Ferry-Lock-Holder", "bob")], &v3);
    assert_eq!((locked.status, locked.json()["holder"].as_str()), (423, Some("ann")), "{}", locked.body);
    let r = svc.call("PUT", "/api/tasks/t1/plan", &[("If-Match", "2"), ("Ferry-Lock-Holder", "ann")], &v3);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(svc.call("DELETE", "/api/tasks/t1/lock", &[("Ferry-Lock-Holder", "bob")], "").status, 423);
    assert_eq!(svc.call("DELETE", "/api/tasks/t1/lock", &[("Ferry-Lock-Holder", "ann")], "").status, 200);
    assert_eq!(svc.get("/api/tasks/t1/versions")["versions"], serde_json::json!([1, 2, 3]));
    let first = svc.call("GET", "/api/tasks/t1/versions/1", &[], "");
    assert_eq!((first.status, first.body.as_str()), (200, v1.as_str()));

    // Starts by state: a never-run task only from the default position; it runs version 3 to
    // its end; a finished task cannot be resumed, only started over.
    let refused = svc.post("/api/tasks/t1/start", r#"{"from": "latest"}"#);
    assert_eq!((refused.status, refused.json()["allowed"].clone()), (409, serde_json::json!(["default"])));
    assert_eq!(svc.post("/api/tasks/t1/start", "").status, 200);
    let done = svc.wait_state("t1", "finished", 60);
    assert_eq!((done["run_version"].as_u64(), done["run"]["state"].as_str()), (Some(3), Some("finished")), "{done}");
    let states: Vec<&str> = done["history"].as_array().unwrap().iter().map(|h| h["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["initialized", "running", "finished"]);
    assert_eq!(svc.post("/api/tasks/t1/resume", "").status, 409);
    assert_eq!(svc.post("/api/tasks/t1/stop", "").status, 409);
    assert_eq!(svc.call("DELETE", "/api/tasks/t1", &[], "").status, 200);
    assert_eq!(svc.call("GET", "/api/tasks/t1", &[], "").status, 404);
}

fn pg_log_plan(task: &str, db: &str, interval: &str) -> String {
    format!(
        "task: {task}\nsource:\n  type: mariadb\n  url: {}\n  chunk_rows: 4000\n  heartbeat: 200ms\n\
         target:\n  type: postgres\n  url: {}\ntables:\n  include: ['{db}\\.items']\n\
         semantics: exactly-once\nwrite_mode: append\nmetadata:\n  - {{column: _op, field: op_type}}\n\
         runtime:\n  workers: 1\n  checkpoint_interval: {interval}\n",
        main_url(),
        Target::Pg.pg_url()
    )
}

/// Waits until the append log, replayed strictly, equals the source (the writer stopped).
fn assert_caught_up(db: &str) {
    let want = source_rows(db);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let log = pg_append_log(db);
        let got = replay_strictly(&log);
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{db}: the log ({} rows) never equals the source", log.len());
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn savepoint_and_cancel_stops_under_writes_resume_exactly_once_after_an_edit() {
    let db = "svc_stops";
    fresh_source(db, 20_000);
    let dir = workdir();
    let svc = Served::start(&dir.path().join("svc"));
    let task = "svc-stops";
    assert_eq!(svc.post("/api/tasks", &pg_log_plan(task, db, "300ms")).status, 201);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = workload(db.to_string(), 20_000, stop.clone());
    assert_eq!(svc.post(&format!("/api/tasks/{task}/start"), "").status, 200);
    let e = svc.wait_epoch_past(task, 3);

    // A savepoint stop under writes, an edit (stale one refused), a resume of the new version.
    assert_eq!(svc.post(&format!("/api/tasks/{task}/stop"), r#"{"mode": "savepoint"}"#).status, 202);
    let paused = svc.wait_state(task, "paused", 60);
    assert_eq!(paused["run"]["state"], "stopped", "{paused}");
    let edited = pg_log_plan(task, db, "200ms");
    let r = svc.call("PUT", &format!("/api/tasks/{task}/plan"), &[("If-Match", "1")], &edited);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(svc.call("PUT", &format!("/api/tasks/{task}/plan"), &[("If-Match", "1")], &edited).status, 409);
    assert_eq!(svc.post(&format!("/api/tasks/{task}/resume"), "").status, 200);
    let e = svc.wait_epoch_past(task, e + 3);
    assert_eq!(svc.get(&format!("/api/tasks/{task}"))["run_version"], 2);

    // A forced stop, then a resume from the last checkpoint.
    assert_eq!(svc.post(&format!("/api/tasks/{task}/stop"), r#"{"mode": "cancel"}"#).status, 202);
    svc.wait_state(task, "stopped", 60);
    let refused = svc.post(&format!("/api/tasks/{task}/start"), r#"{"from": "savepoint"}"#);
    assert_eq!((refused.status, refused.json()["allowed"].clone()), (409, serde_json::json!(["latest", "default"])));
    assert_eq!(svc.post(&format!("/api/tasks/{task}/resume"), "").status, 200);
    svc.wait_epoch_past(task, e);
    stop.store(true, Ordering::SeqCst);
    assert!(writer.join().unwrap() > 0);
    assert_caught_up(db);
    assert_eq!(svc.post(&format!("/api/tasks/{task}/stop"), "").status, 202);
    let t = svc.wait_state(task, "paused", 60);
    let states: Vec<&str> = t["history"].as_array().unwrap().iter().map(|h| h["state"].as_str().unwrap()).collect();
    assert_eq!(
        states,
        [
            "initialized",
            "running",
            "stopping",
            "paused",
            "running",
            "stopping",
            "stopped",
            "running",
            "stopping",
            "paused"
        ]
    );
}

#[test]
fn a_killed_service_resumes_its_two_running_tasks_and_both_end_equal() {
    let dir = workdir();
    let state = dir.path().join("svc");
    let dbs = ["svc_kill_a", "svc_kill_b"];
    let svc = Served::start(&state);
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for db in dbs {
        fresh_source(db, 20_000);
        let task = db.replace('_', "-");
        assert_eq!(svc.post("/api/tasks", &pg_log_plan(&task, db, "300ms")).status, 201);
        assert_eq!(svc.post(&format!("/api/tasks/{task}/start"), "").status, 200);
        writers.push(workload(db.to_string(), 20_000, stop.clone()));
    }
    let epochs: Vec<u64> = dbs.iter().map(|db| svc.wait_epoch_past(&db.replace('_', "-"), 2)).collect();
    let pids: Vec<u64> = dbs
        .iter()
        .map(|db| svc.get(&format!("/api/tasks/{}", db.replace('_', "-")))["run_pid"].as_u64().unwrap())
        .collect();
    svc.kill();
    // The runs die with the service.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| Path::new(&format!("/proc/{p}")).exists()) {
        assert!(Instant::now() < deadline, "a run outlived the killed service: {pids:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The runs died with the service; started again, it resumes both from their checkpoints.
    let svc = Served::start(&state);
    for (db, e) in dbs.iter().zip(epochs) {
        let task = db.replace('_', "-");
        let t = svc.get(&format!("/api/tasks/{task}"));
        assert_eq!(t["state"], "running", "{t}");
        svc.wait_epoch_past(&task, e + 2);
    }
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        assert!(w.join().unwrap() > 0);
    }
    for db in dbs {
        assert_caught_up(db);
    }
}
