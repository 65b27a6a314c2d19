//! Graceful stop of a database task: a MariaDB → PostgreSQL run under writes gets SIGTERM; it
//! exits within one checkpoint interval plus a few seconds, `status.json` says `stopped` with
//! its position, and a second run finishes with the target equal to the source. The target is
//! an exactly-once append log, replayed strictly: per key, in write order, no insert of a
//! present key, no update or delete of an absent one — a gap or a duplicate across the stop
//! fails it. (The datagen case is in `crash.rs`.)

mod common;

use common::mysql::{exec, fresh_db, main_url};
use common::sql::{fresh_pg_append_log, pg_append_log, replay_strictly, Target};
use common::*;
use mysql_async::prelude::Queryable;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DB: &str = "stop_pg";

/// `(id, v)` of every source row, by id.
fn source_rows() -> Vec<(i64, i64)> {
    let opts = mysql_async::Opts::from_url(&main_url()).unwrap();
    ferry::runtime::io_runtime().block_on(async {
        let mut c = mysql_async::Conn::new(opts).await.unwrap();
        let r = c.query(format!("SELECT id, v FROM {DB}.items ORDER BY id")).await.unwrap();
        c.disconnect().await.unwrap();
        r
    })
}

#[test]
fn sigterm_stops_a_mariadb_to_postgres_run_at_a_savepoint_and_the_next_run_ends_equal_without_gap_or_duplicate() {
    fresh_db(DB);
    exec(&[
        &format!("USE {DB}"),
        &format!("CREATE TABLE {DB}.items (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)"),
        &format!("INSERT INTO {DB}.items SELECT seq, seq FROM seq_1_to_20000"),
    ]);
    fresh_pg_append_log(DB);
    let dir = workdir();
    let text = format!(
        "task: stop-pg\nsource:\n  type: mariadb\n  url: {}\n  chunk_rows: 1000\n  heartbeat: 200ms\n  bounded: false\n\
         target:\n  type: postgres\n  url: {}\ntables:\n  include: ['{DB}\\.items']\n\
         semantics: exactly-once\nwrite_mode: append\nmetadata:\n  - {{column: _op, field: op_type}}\n\
         runtime:\n  workers: 2\n  checkpoint_interval: 300ms\n  state: ./state\n",
        main_url(),
        Target::Pg.pg_url()
    );
    let p = write_plan(dir.path(), "plan.yaml", &text);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0i64;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                exec(&[
                    &format!("INSERT INTO {DB}.items VALUES ({}, 0)", 100_000 + i),
                    &format!("UPDATE {DB}.items SET v = v + 1 WHERE id = {}", 1 + (i * 37) % 20_000),
                    &format!("DELETE FROM {DB}.items WHERE id = {}", 5 + i * 7),
                ]);
                std::thread::sleep(Duration::from_millis(2));
            }
            i
        })
    };
    let mut run = KillOnDrop(ferry().current_dir(dir.path()).args(["run", "-q", &p]).spawn().unwrap());
    let start = Instant::now();
    // Streaming: the snapshot is in and changes flow.
    while pg_append_log(DB).iter().filter(|r| r.2 != "insert").count() < 50 {
        assert!(start.elapsed() < Duration::from_secs(60), "no changes reached the target");
        assert!(run.0.try_wait().unwrap().is_none(), "the run ended before the stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (took, status) = sigterm_and_wait(&mut run.0);
    assert!(status.success(), "a savepoint stop exits 0, got {status}");
    assert!(took < Duration::from_secs(5), "the stop took {took:?} (checkpoint interval 300 ms)");
    let st = status_json(&dir.path().join("state"), "stop-pg");
    assert_eq!(st["state"], "stopped", "{st}");
    assert!(st["epoch"].as_u64().unwrap() > 0, "{st}");
    let binlog = &st["position"]["0"];
    assert!(binlog["file"].is_string() && binlog["pos"].as_u64().is_some(), "the binlog position: {st}");
    // Nothing is written after the stop, while the source keeps changing.
    let at_stop = pg_append_log(DB).len();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let writes = writer.join().unwrap();
    assert!(writes > 20, "only {writes} write rounds");
    assert_eq!(pg_append_log(DB).len(), at_stop, "rows were written after the stop");
    // The next run resumes from the savepoint and ends at the source's current position.
    std::fs::write(&p, with_handoff(&text.replace("bounded: false", "bounded: true"))).unwrap();
    let stdout = ok(&run_in(dir.path(), &["run", "-q", &p]));
    assert!(stdout.starts_with("done:"), "{stdout}");
    let state = replay_strictly(&pg_append_log(DB));
    let got: Vec<(i64, i64)> = state.into_iter().collect();
    assert_eq!(got, source_rows(), "the target's final state differs from the source");
}
