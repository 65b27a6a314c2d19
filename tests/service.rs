//! The task service (`ferry serve`) over HTTP, against a real service process: the token, plan
//! submission with located errors, versions and the edit lock (If-Match: 200, stale 409,
//! missing 428, another holder 423), start strategies by state; MariaDB → PostgreSQL tasks
//! stopped with a savepoint and by cancel under writes, edited and resumed, ending equal to the
//! source with no change twice in an exactly-once append log; a kill -9 of the service
//! with two running tasks, which both resume when it starts again; the pre-submit checks (a
//! second task writing one table is an error naming the first); `/metrics` read by a
//! Prometheus text parser; alerts to a signed webhook, once per incident and once resolved.

mod common;

use common::items::{fresh_source, source_rows, workload};
use common::mysql::{exec, main_url};
use common::served::Served;
use common::sql::{pg_append_log, replay_strictly, Target};
use common::*;
use ferry::service::client::call;
use serde_json::Value as Json;
use std::io::BufRead;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    assert_eq!(
        (refused.status, refused.json()["allowed"].clone()),
        (409, serde_json::json!(["default", "timestamp", "position", "gtid", "lsn"]))
    );
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
    let checked = svc.post(&format!("/api/tasks/{task}/check"), "");
    assert_eq!((checked.status, checked.json()["ok"].as_bool()), (200, Some(true)), "{}", checked.body);
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
    assert_eq!(
        (refused.status, refused.json()["allowed"].clone()),
        (409, serde_json::json!(["latest", "default", "timestamp", "position", "gtid", "lsn"]))
    );
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
            "checking",
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

/// The samples of `/metrics`, parsed as Prometheus parses the text format.
fn scrape(svc: &Served) -> Vec<prometheus_parse::Sample> {
    let r = svc.call("GET", "/metrics", &[], "");
    assert_eq!(r.status, 200, "{}", r.body);
    let lines = r.body.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).expect("the Prometheus text format").samples
}

/// The value of `metric` with these labels (all given ones must match).
fn sample(samples: &[prometheus_parse::Sample], metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples.iter().find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))).map(|s| {
        match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        }
    })
}

#[test]
fn a_second_task_writing_a_table_fails_its_check_naming_the_first_and_metrics_parse_as_prometheus_text() {
    let db = "svc_check";
    fresh_source(db, 20_000);
    let dir = workdir();
    let svc = Served::start(&dir.path().join("svc"));
    let (a, b) = ("svc-check-a", "svc-check-b");
    assert_eq!(svc.post("/api/tasks", &pg_log_plan(a, db, "300ms")).status, 201);
    let checked = svc.post(&format!("/api/tasks/{a}/check"), "");
    let v = checked.json();
    assert_eq!((checked.status, v["ok"].as_bool()), (200, Some(true)), "{}", checked.body);
    let names: Vec<&str> = v["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    for want in
        ["plan", "source", "target", "primary-keys", "type-loss", "target-tables", "target-conflict", "resources"]
    {
        assert!(names.contains(&want), "no {want} check: {names:?}");
    }
    assert_eq!(svc.post(&format!("/api/tasks/{a}/start"), "").status, 200);

    // The second task writes the same PostgreSQL table: its check fails naming the first, and
    // it cannot start until a check passes.
    assert_eq!(svc.post("/api/tasks", &pg_log_plan(b, db, "300ms")).status, 201);
    let checked = svc.post(&format!("/api/tasks/{b}/check"), "");
    let v = checked.json();
    assert_eq!((v["ok"].as_bool(), v["state"].as_str()), (Some(false), Some("check-error")), "{v}");
    let by_name = |n: &str| v["checks"].as_array().unwrap().iter().find(|c| c["name"] == n).unwrap().clone();
    let conflict = by_name("target-conflict");
    assert_eq!(conflict["level"], "error", "{conflict}");
    assert!(conflict["message"].as_str().unwrap().contains(a), "{conflict}");
    let shared = by_name("source-shared");
    assert_eq!(shared["level"], "warning", "{shared}");
    assert!(shared["message"].as_str().unwrap().contains(a), "{shared}");
    assert_eq!(svc.post(&format!("/api/tasks/{b}/start"), "").status, 409);
    let out = ferry().args(["task", "--url", &svc.base, "--token", &svc.token, "check", b]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.lines().any(|l| l.starts_with("error") && l.contains("target-conflict") && l.contains(a)), "{text}");

    // Metrics: the token, then the text format with the first task's counters.
    assert_eq!(call(&svc.base, None, "GET", "/metrics", &[], b"").unwrap().status, 401);
    svc.wait_epoch_past(a, 2);
    let table = format!("{db}.items");
    let deadline = Instant::now() + Duration::from_secs(60);
    let samples = loop {
        let s = scrape(&svc);
        let remaining = sample(&s, "ferry_table_snapshot_chunks_remaining", &[("task", a), ("table", &table)]);
        if remaining == Some(0.0) && sample(&s, "ferry_task_epoch_commit_seconds_count", &[("task", a)]) > Some(0.0) {
            break s;
        }
        assert!(Instant::now() < deadline, "the snapshot of {a} never shows as read: {remaining:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let chunks = sample(&samples, "ferry_table_snapshot_chunks_total", &[("task", a), ("table", &table)]).unwrap();
    assert!(chunks >= 2.0, "20,000 rows in 4,000-row chunks: {chunks}");
    assert!(sample(&samples, "ferry_task_rows_written_total", &[("task", a)]).unwrap() >= 20_000.0);
    assert_eq!(sample(&samples, "ferry_task_state", &[("task", a), ("state", "running")]), Some(1.0));
    assert_eq!(sample(&samples, "ferry_task_state", &[("task", b), ("state", "check-error")]), Some(1.0));
    assert_eq!(sample(&samples, "ferry_task_snapshot", &[("task", a)]), Some(0.0));
    assert_eq!(sample(&samples, "ferry_task_workers", &[("task", a)]), Some(1.0));
    // The same in the task's summary, per table; an idle source (heartbeats every 200ms) is
    // not behind.
    std::thread::sleep(Duration::from_secs(3));
    let t = svc.get(&format!("/api/tasks/{a}"));
    assert_eq!(t["phase"], "streaming", "{t}");
    assert_eq!(
        (t["tables"][0]["source"].as_str(), t["tables"][0]["chunks_done"].as_f64()),
        (Some(&*table), Some(chunks))
    );
    let lag = t["lag_seconds"].as_f64().unwrap();
    // (Binlog event times are whole seconds: up to 1 s of it is their truncation.)
    assert!(lag < 2.5, "an idle source read to its end shows a lag of {lag}s");
    let lag = sample(&scrape(&svc), "ferry_task_source_lag_seconds", &[("task", a)]).unwrap();
    assert!(lag < 2.5, "{lag}");
}

/// A request's headers (lowercase names) and body.
type Received = (std::collections::HashMap<String, String>, String);

/// A webhook receiver: every request it got; answers 200.
struct Hook {
    url: String,
    got: Arc<std::sync::Mutex<Vec<Received>>>,
}

impl Hook {
    fn start() -> Hook {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let got: Arc<std::sync::Mutex<Vec<_>>> = Arc::default();
        let store = got.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut r = std::io::BufReader::new(conn.try_clone().unwrap());
                let mut headers = std::collections::HashMap::new();
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                loop {
                    line.clear();
                    r.read_line(&mut line).unwrap();
                    let l = line.trim_end();
                    if l.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = l.split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                    }
                }
                let n: usize = headers.get("content-length").map_or(0, |v| v.parse().unwrap());
                let mut body = vec![0; n];
                std::io::Read::read_exact(&mut r, &mut body).unwrap();
                store.lock().unwrap().push((headers, String::from_utf8(body).unwrap()));
                let _ = std::io::Write::write_all(
                    &mut conn,
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        Hook { url, got }
    }

    /// The bodies received so far, parsed.
    fn bodies(&self) -> Vec<Json> {
        self.got.lock().unwrap().iter().map(|(_, b)| serde_json::from_str(b).unwrap()).collect()
    }

    /// Waits until a body with this rule and event has come.
    fn wait(&self, rule: &str, event: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.bodies().iter().any(|b| b["rule"] == rule && b["event"] == event) {
            assert!(Instant::now() < deadline, "no `{rule}` {event} alert: {:?}", self.bodies());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn alerts_reach_a_signed_webhook_once_per_incident_and_once_resolved_for_lag_and_a_failure() {
    let db = "svc_alert";
    fresh_source(db, 5_000);
    let hook = Hook::start();
    let dir = workdir();
    let svc = Served::start(&dir.path().join("svc"));
    let task = "svc-alert";
    let plan = format!(
        "{}errors:\n  max_restarts: 0\nalerts:\n  webhook: {{url: '{}', secret: hook-secret, retries: 3}}\n  \
         rules:\n    - {{kind: lag, above: 2, for: 1s}}\n",
        pg_log_plan(task, db, "300ms"),
        hook.url
    );
    assert_eq!(svc.post("/api/tasks", &plan).status, 201);
    assert_eq!(svc.post(&format!("/api/tasks/{task}/start"), "").status, 200);
    svc.wait_epoch_past(task, 2);
    let deadline = Instant::now() + Duration::from_secs(30);
    while svc.get(&format!("/api/tasks/{task}"))["phase"] != "streaming" {
        assert!(Instant::now() < deadline, "the snapshot never ends");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Lag: the target table locked, a burst of changes waits; the lag rule fires once, and
    // resolves once the lock is gone and the run has caught up.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (locked_tx, locked) = std::sync::mpsc::channel::<()>();
    let locker = std::thread::spawn(move || {
        ferry::runtime::io_runtime().block_on(async {
            let c = common::sql::pg_client().await;
            c.batch_execute(&format!("BEGIN; LOCK TABLE \"{db}\".items IN ACCESS EXCLUSIVE MODE")).await.unwrap();
            locked_tx.send(()).unwrap();
            let _ = released.recv_timeout(Duration::from_secs(18));
            c.batch_execute("ROLLBACK").await.unwrap();
        })
    });
    locked.recv().unwrap();
    for i in 0..20 {
        exec(&[&format!("INSERT INTO {db}.items VALUES ({}, {i})", 9_000_000 + i)]);
    }
    hook.wait("lag > 2", "fired", 15);
    release.send(()).unwrap();
    locker.join().unwrap();
    hook.wait("lag > 2", "resolved", 60);

    // A failure past max_restarts (0): the target's sessions of this task terminated, and a
    // change for them to write.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut id = 9_100_000;
    while svc.get(&format!("/api/tasks/{task}"))["state"] != "failed" {
        common::sql::Target::Pg.exec(&[format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%{task}%' AND pid <> pg_backend_pid()"
        )]);
        id += 1;
        exec(&[&format!("INSERT INTO {db}.items VALUES ({id}, 1)")]);
        assert!(Instant::now() < deadline, "the task never failed");
        std::thread::sleep(Duration::from_millis(300));
    }
    hook.wait("failed", "fired", 30);
    assert_eq!(svc.post(&format!("/api/tasks/{task}/resume"), "").status, 200);
    hook.wait("failed", "resolved", 60);
    assert_caught_up(db);

    // Every incident resolves (the resumed run may be behind for a moment: the changes made
    // while it was failed wait for it, a lag incident of its own).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let alerts = svc.get(&format!("/api/tasks/{task}/alerts"));
        let list = alerts["alerts"].as_array().unwrap().clone();
        let delivered = |a: &Json| a["deliveries"].as_array().unwrap().iter().all(|d| d["delivered_micros"].is_i64());
        if list
            .iter()
            .all(|a| a["resolved_micros"].is_i64() && delivered(a) && a["deliveries"].as_array().unwrap().len() == 2)
        {
            break;
        }
        assert!(Instant::now() < deadline, "open or undelivered incidents: {alerts}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Each incident sent once fired and once resolved, in that order, each signed; the
    // failure exactly once.
    std::thread::sleep(Duration::from_secs(2));
    let got = hook.got.lock().unwrap().clone();
    let events = |rule: &str| -> Vec<String> {
        got.iter()
            .map(|(_, b)| serde_json::from_str::<Json>(b).unwrap())
            .filter(|b| b["rule"] == rule)
            .map(|b| b["event"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(events("failed"), ["fired", "resolved"]);
    let lag = events("lag > 2");
    assert!(lag.len() >= 2 && lag.len() % 2 == 0, "{lag:?}");
    assert!(lag.chunks(2).all(|p| p == ["fired", "resolved"]), "{lag:?}");
    let ids: std::collections::BTreeSet<&String> = got.iter().map(|(h, _)| &h["x-ferry-delivery"]).collect();
    assert_eq!(ids.len(), got.len(), "a delivery twice: {ids:?}");
    for (headers, body) in &got {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"hook-secret").unwrap();
        mac.update(body.as_bytes());
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(headers.get("x-ferry-signature"), Some(&format!("sha256={hex}")), "{body}");
    }
}

#[test]
fn by_phase_resources_read_the_snapshot_with_two_workers_then_stream_with_one_exactly_once() {
    let db = "svc_phase";
    fresh_source(db, 40_000);
    let dir = workdir();
    // Slow chunks: the snapshot phase lasts long enough to be seen.
    let svc = Served::start_with(&dir.path().join("svc"), &[("FERRY_FAULT_CHUNK_DELAY_MS", "300")]);
    let task = "svc-phase";
    let plan = pg_log_plan(task, db, "300ms").replace(
        "runtime:\n  workers: 1\n",
        "runtime:\n  resources: {mode: by-phase, snapshot_workers: 2, streaming_workers: 1}\n",
    );
    assert!(plan.contains("by-phase"), "{plan}");
    assert_eq!(svc.post("/api/tasks", &plan).status, 201);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = workload(db.to_string(), 40_000, stop.clone());
    assert_eq!(svc.post(&format!("/api/tasks/{task}/start"), "").status, 200);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = std::collections::BTreeSet::new();
    let t = loop {
        let t = svc.get(&format!("/api/tasks/{task}"));
        if let Some(w) = t["workers"].as_u64() {
            seen.insert((t["phase"].as_str().unwrap_or_default().to_string(), w));
        }
        let switched = t["history"].as_array().unwrap().iter().any(|h| h["state"] == "operating");
        if switched && t["state"] == "running" && t["workers"] == 1 && t["phase"] == "streaming" {
            break t;
        }
        assert!(Instant::now() < deadline, "no switch to the streaming workers: {t}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(seen.contains(&("snapshot".to_string(), 2)), "the snapshot ran with 2 workers: {seen:?}");
    let states: Vec<&str> = t["history"].as_array().unwrap().iter().map(|h| h["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["initialized", "running", "operating", "running"], "{t}");
    let note = t["history"][2]["note"].as_str().unwrap();
    assert!(note.contains("1 streaming worker(s) instead of 2"), "{note}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while sample(&scrape(&svc), "ferry_task_workers", &[("task", task)]) != Some(1.0) {
        assert!(Instant::now() < deadline, "the metrics never show 1 worker");
        std::thread::sleep(Duration::from_millis(200));
    }
    let e = svc.wait_epoch_past(task, t["run"]["epoch"].as_u64().unwrap_or(0) + 2);
    assert!(e > 0);
    stop.store(true, Ordering::SeqCst);
    assert!(writer.join().unwrap() > 0);
    assert_caught_up(db);
}

/// The source's current GTID position.
fn gtid_now() -> String {
    ferry::runtime::io_runtime().block_on(async {
        use mysql_async::prelude::Queryable;
        let mut c = mysql_async::Conn::new(mysql_async::Opts::from_url(&main_url()).unwrap()).await.unwrap();
        c.query_first::<String, _>("SELECT @@gtid_binlog_pos").await.unwrap().unwrap()
    })
}

#[test]
fn a_start_from_a_gtid_reads_only_the_changes_after_it_and_is_refused_while_running() {
    let db = "svc_gtid";
    fresh_source(db, 100);
    let at = gtid_now();
    exec(&[&format!("USE {db}"), &format!("INSERT INTO {db}.items SELECT seq, seq FROM seq_1000_to_1009")]);
    exec(&[&format!("UPDATE {db}.items SET v = 7 WHERE id = 1000")]);
    let dir = workdir();
    let svc = Served::start(&dir.path().join("svc"));
    let task = "svc-gtid";
    let plan = pg_log_plan(task, db, "300ms").replace("semantics:", "mode: incremental\nsemantics:");
    assert_eq!(svc.post("/api/tasks", &plan).status, 201);
    // A position the source cannot take is a 400 naming it.
    let bad = svc.post(&format!("/api/tasks/{task}/start"), r#"{"from": "lsn", "lsn": "0/1"}"#);
    assert_eq!(bad.status, 400, "{}", bad.body);
    let out = ferry()
        .args(["task", "--url", &svc.base, "--token", &svc.token, "start", task, "--from", "gtid", "--at", &at])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = pg_append_log(db);
        let ops: Vec<(i64, String)> = log.iter().map(|(id, _, op)| (*id, op.clone())).collect();
        let mut want: Vec<(i64, String)> = (1000..1010).map(|id| (id, "insert".to_string())).collect();
        want.push((1000, "update".to_string()));
        if ops == want {
            break;
        }
        assert!(Instant::now() < deadline, "the log holds {ops:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let t = svc.get(&format!("/api/tasks/{task}"));
    let note = t["history"].as_array().unwrap().last().unwrap()["note"].as_str().unwrap().to_string();
    assert!(note.contains("gtid") && note.contains(&at), "{note}");
    let refused = svc.post(&format!("/api/tasks/{task}/start"), &format!(r#"{{"from": "gtid", "gtid": "{at}"}}"#));
    assert_eq!(refused.status, 409, "{}", refused.body);
}

#[test]
fn a_service_with_its_state_on_s3_keeps_tasks_and_versions_there_and_resumes_after_a_kill() {
    let bucket = common::s3::prefix("svc");
    let state = common::s3::url(&bucket, "service");
    let dir = workdir();
    let work = dir.path().join("work");
    let var = |k: &str| std::env::var(k).unwrap();
    let env = [
        ("AWS_ENDPOINT_URL", var("FERRY_TEST_S3_ENDPOINT")),
        ("AWS_ACCESS_KEY_ID", var("FERRY_TEST_S3_KEY")),
        ("AWS_SECRET_ACCESS_KEY", var("FERRY_TEST_S3_SECRET")),
        ("AWS_REGION", "us-east-1".to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let start = || Served::start_at(&state, &["--work", work.to_str().unwrap()], &env, &work.join("token"));
    let svc = start();
    // A bounded task with two versions, and one that keeps running.
    assert_eq!(svc.post("/api/tasks", &datagen_plan("s3-done", 2000)).status, 201);
    let r = svc.call("PUT", "/api/tasks/s3-done/plan", &[("If-Match", "1")], &datagen_plan("s3-done", 3000));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        svc.call("PUT", "/api/tasks/s3-done/plan", &[("If-Match", "1")], &datagen_plan("s3-done", 9)).status,
        409
    );
    assert_eq!(svc.post("/api/tasks/s3-done/start", "").status, 200);
    svc.wait_state("s3-done", "finished", 60);
    let running = datagen_plan("s3-run", 100_000_000).replace("  changes:", "  rate: 2000\n  changes:");
    assert_eq!(svc.post("/api/tasks", &running).status, 201);
    assert_eq!(svc.post("/api/tasks/s3-run/start", "").status, 200);
    let e = svc.wait_epoch_past("s3-run", 1);
    svc.kill();

    // The records are objects of the bucket, not files of the work directory.
    let disk = common::s3::disk(&bucket, "service/tasks");
    for f in ["s3-done/task.json", "s3-done/versions/1.yaml", "s3-done/versions/2.yaml", "s3-run/task.json"] {
        assert!(disk.join(f).is_file(), "no object {f} under {}", disk.display());
    }
    assert!(!work.join("tasks/s3-done/task.json").exists());

    let svc = start();
    let t = svc.get("/api/tasks/s3-done");
    assert_eq!((t["state"].as_str(), t["version"].as_u64()), (Some("finished"), Some(2)), "{t}");
    assert_eq!(svc.get("/api/tasks/s3-done/versions")["versions"], serde_json::json!([1, 2]));
    let v1 = svc.call("GET", "/api/tasks/s3-done/versions/1", &[], "");
    assert_eq!(v1.body, datagen_plan("s3-done", 2000));
    assert_eq!(svc.get("/api/tasks/s3-run")["state"], "running");
    svc.wait_epoch_past("s3-run", e + 1);
    assert_eq!(svc.post("/api/tasks/s3-run/stop", r#"{"mode": "cancel"}"#).status, 202);
    svc.wait_state("s3-run", "stopped", 60);
    assert_eq!(svc.call("DELETE", "/api/tasks/s3-run", &[], "").status, 200);
    assert!(!disk.join("s3-run/task.json").exists());
}
