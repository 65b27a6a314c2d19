//! Source outage (F9.4): while a MariaDB → MariaDB task streams under writes, the source server
//! is shut down cleanly for ~10 s and started again, (separately) killed with SIGKILL and
//! started again, and (separately) its binlog connection is killed (a lost connection). The task says `restarting` and why in `status.json`, restarts with backoff
//! within `max_restarts`, resumes from its checkpoint once the server is back, and the target
//! ends equal to the source (exactly-once).
//!
//! The source is a MariaDB instance of its own (scripts/servers source-stop|source-kill|
//! source-start), so the other tests' servers stay up; the target is the main test server.

mod common;

use common::mysql::{exec_at, main_url, url};
use common::*;
use mysql_async::prelude::Queryable;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn servers(cmd: &str) {
    let st = Command::new(format!("{}/scripts/servers", env!("CARGO_MANIFEST_DIR"))).arg(cmd).status().unwrap();
    assert!(st.success(), "scripts/servers {cmd}");
}

fn source_url() -> String {
    url("FERRY_TEST_MYSQL_SOURCE_URL")
}

/// `(id, v, s)` of every row, by id (none while the table does not exist yet).
fn rows(url: &str, db: &str) -> Vec<(i64, i64, String)> {
    let opts = mysql_async::Opts::from_url(url).unwrap();
    ferry::runtime::io_runtime().block_on(async {
        let mut conn = mysql_async::Conn::new(opts).await.unwrap();
        let r = conn.query(format!("SELECT id, v, s FROM `{db}`.items ORDER BY id")).await.unwrap_or_default();
        conn.disconnect().await.unwrap();
        r
    })
}

/// Writes to the source until told to stop: inserts, updates and deletes in small
/// transactions; while the server is down it waits and reconnects. Returns the transactions
/// committed.
fn writer(db: String, stop: Arc<AtomicBool>, committed: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let opts = mysql_async::Opts::from_url(&source_url()).unwrap();
        ferry::runtime::io_runtime().block_on(async {
            let mut n: i64 = 0;
            let mut conn: Option<mysql_async::Conn> = None;
            while !stop.load(Ordering::SeqCst) {
                if conn.is_none() {
                    match mysql_async::Conn::new(opts.clone()).await {
                        Ok(c) => conn = Some(c),
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    }
                }
                let c = conn.as_mut().unwrap();
                n += 1;
                let id = 10_000 + n;
                let sql = format!(
                    "START TRANSACTION; INSERT INTO `{db}`.items VALUES ({id}, {n}, 'new-{n}'); \
                     UPDATE `{db}`.items SET v = v + 1, s = CONCAT('upd-', {n}) WHERE id = {}; \
                     DELETE FROM `{db}`.items WHERE id = {}; COMMIT",
                    1 + n % 2000,
                    2001 + n % 1000
                );
                match c.query_drop(sql).await {
                    Ok(()) => {
                        committed.fetch_add(1, Ordering::SeqCst);
                    }
                    // The server went away: the transaction is lost or rolled back; reconnect.
                    Err(_) => conn = None,
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    })
}

fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn outage_is_survived(db: &str, down: &str) {
    exec_at(
        &source_url(),
        &[
            &format!("DROP DATABASE IF EXISTS `{db}`"),
            &format!("CREATE DATABASE `{db}`"),
            &format!("USE `{db}`"),
            &format!("CREATE TABLE `{db}`.items (id BIGINT PRIMARY KEY, v BIGINT NOT NULL, s VARCHAR(40))"),
            &format!("INSERT INTO `{db}`.items SELECT seq, seq, CONCAT('row-', seq) FROM seq_1_to_3000"),
        ],
    );
    exec_at(&main_url(), &[&format!("DROP DATABASE IF EXISTS `{db}`"), &format!("CREATE DATABASE `{db}`")]);
    let dir = workdir();
    let task = db.replace('_', "-");
    let plan = format!(
        "task: {task}\nsource:\n  type: mariadb\n  url: {}\n  chunk_rows: 500\n  heartbeat: 200ms\ntarget:\n  type: mariadb\n  url: {}\n\
         tables:\n  include: ['{db}\\.items']\nsemantics: exactly-once\nerrors:\n  max_restarts: 20\n\
         runtime:\n  workers: 2\n  checkpoint_interval: 200ms\n  state: ./state\n",
        source_url(),
        main_url()
    );
    let p = write_plan(dir.path(), "plan.yaml", &plan);
    let mut run = KillOnDrop(ferry().current_dir(dir.path()).args(["run", "-q", &p]).spawn().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let w = writer(db.to_string(), stop.clone(), committed.clone());
    // Streaming: the snapshot is in and changes flow.
    wait_for("the snapshot reaches the target", Duration::from_secs(60), || {
        rows(&main_url(), db).len() >= 2500 && committed.load(Ordering::SeqCst) > 50
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(run.0.try_wait().unwrap().is_none(), "the run should still be going when the source goes down");
    let went_down = Instant::now();
    if down == "connection" {
        kill_binlog_connections();
    } else {
        servers(down);
    }
    wait_for("status.json says restarting", Duration::from_secs(20), || {
        std::fs::read(dir.path().join(format!("state/{task}/status.json")))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|s| s["state"] == "restarting")
    });
    let st = status_json(&dir.path().join("state"), &task);
    let why = st["last_error"].as_str().unwrap_or_default().to_string();
    assert!(!why.is_empty(), "restarting without a reason: {st}");
    assert!(st["restarts"].as_u64().unwrap() >= 1, "{st}");
    if down != "connection" {
        std::thread::sleep(Duration::from_secs(10).saturating_sub(went_down.elapsed()));
        assert!(run.0.try_wait().unwrap().is_none(), "the run ended while the source was down");
        servers("source-start");
    }
    // Writes go on for a while after the server is back, then stop.
    let before = committed.load(Ordering::SeqCst);
    wait_for("writes resume on the source", Duration::from_secs(30), || {
        committed.load(Ordering::SeqCst) > before + 100
    });
    stop.store(true, Ordering::SeqCst);
    w.join().unwrap();
    let want = rows(&source_url(), db);
    wait_for("the target catches up with the source", Duration::from_secs(90), || rows(&main_url(), db) == want);
    let st = status_json(&dir.path().join("state"), &task);
    assert_eq!(st["state"], "running", "{st}");
    let (_, status) = sigterm_and_wait(&mut run.0);
    assert!(status.success(), "{status}");
    assert_eq!(status_json(&dir.path().join("state"), &task)["state"], "stopped");
    // Nothing more arrives after the stop, and nothing was written twice (the target's primary
    // key would refuse a second insert only in append mode: compare the rows themselves).
    assert_eq!(rows(&main_url(), db), want, "rows after the stop");
    eprintln!("{db}: the source went down with `{down}`; restart cause: {why}");
}

/// A lost network connection, as the server sees it: the binlog dump connections are killed.
fn kill_binlog_connections() {
    let opts = mysql_async::Opts::from_url(&source_url()).unwrap();
    ferry::runtime::io_runtime().block_on(async {
        let mut conn = mysql_async::Conn::new(opts).await.unwrap();
        let ids: Vec<u64> = conn
            .query("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'")
            .await
            .unwrap();
        assert!(!ids.is_empty(), "no binlog dump connection to kill");
        for id in ids {
            conn.query_drop(format!("KILL CONNECTION {id}")).await.unwrap();
        }
        conn.disconnect().await.unwrap();
    })
}

/// The outages share the one source instance, so they run one after the other.
#[test]
fn the_task_restarts_through_a_clean_shutdown_a_sigkill_and_a_lost_connection_and_ends_equal() {
    outage_is_survived("src_outage_clean", "source-stop");
    outage_is_survived("src_outage_kill", "source-kill");
    outage_is_survived("src_outage_conn", "connection");
}
