//! Target outage (F9.4): the target server is stopped for 20 s mid-stream and started again;
//! the task restarts by itself from its last checkpoint (within `max_restarts`) and ends equal
//! to the source. With `max_restarts: 0` the same outage ends the task `failed`.
//!
//! Each target is a server instance of its own (a MariaDB: scripts/servers
//! outage-stop|outage-start; a PostgreSQL: pg-outage-stop|pg-outage-start), so the other tests'
//! servers stay up.

mod common;

use common::sql::{expected, Target};
use common::*;
use ferry::connectors::datagen::{catalog, expected_state, DatagenConfig};
use std::process::Command;
use std::time::{Duration, Instant};

const TABLES: &str = r"shop_0\.(orders|order_items|accounts)";

fn selected(name: &str) -> bool {
    regex::Regex::new(&format!("^{TABLES}$")).unwrap().is_match(name)
}

fn config() -> DatagenConfig {
    DatagenConfig {
        seed: 23,
        databases: 1,
        tables_per_database: 5,
        changes: Some(60_000),
        rate: Some(6_000),
        initial_rows: 200,
        ..DatagenConfig::default()
    }
}

fn servers(cmd: &str) {
    let st = Command::new(format!("{}/scripts/servers", env!("CARGO_MANIFEST_DIR"))).arg(cmd).status().unwrap();
    assert!(st.success(), "scripts/servers {cmd}");
}

fn plan(target: Target, task: &str, db: &str, max_restarts: i32) -> String {
    let c = config();
    format!(
        "task: {task}\nsource:\n  type: datagen\n  seed: {}\n  databases: 1\n  tables_per_database: 5\n  changes: {}\n  \
         rate: {}\n  initial_rows: {}\ntarget:\n{}tables:\n  include: ['{TABLES}']\nsemantics: exactly-once\n\
         route:\n  database: {db}\nerrors:\n  max_restarts: {max_restarts}\n\
         runtime:\n  workers: 2\n  checkpoint_interval: 200ms\n  state: ./state\n",
        c.seed,
        c.changes.unwrap(),
        c.rate.unwrap(),
        c.initial_rows,
        target.plan_section()
    )
}

fn prepare(t: Target, db: &str) {
    t.fresh_namespace(db);
    for s in catalog(&config()).iter().filter(|s| selected(&s.name.to_string())) {
        t.create_table(db, &s.name.table, s);
    }
}

/// The PostgreSQL outage instance serves a target test and a source test: one at a time.
static PG_OUTAGE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Both cases share the target's one outage instance, so they run one after the other.
fn a_20s_outage_is_survived_by_restarts_and_fails_the_task_without_them(target: Target) {
    let _one_at_a_time = (target == Target::PgOutage).then(|| PG_OUTAGE.lock().unwrap_or_else(|p| p.into_inner()));
    let (stop, start) = match target {
        Target::Outage => ("outage-stop", "outage-start"),
        Target::PgOutage => ("pg-outage-stop", "pg-outage-start"),
        other => unreachable!("{other:?} is not an outage target"),
    };
    // Recovers within max_restarts.
    let db = "outage_ok";
    prepare(target, db);
    let dir = workdir();
    let p = write_plan(dir.path(), "plan.yaml", &plan(target, "outage-ok", db, 10));
    let mut run = KillOnDrop(ferry().current_dir(dir.path()).args(["run", "-q", &p]).spawn().unwrap());
    std::thread::sleep(Duration::from_secs(3));
    assert!(run.0.try_wait().unwrap().is_none(), "the run should still be going when the target stops");
    servers(stop);
    let stopped = Instant::now();
    std::thread::sleep(Duration::from_secs(20));
    servers(start);
    let status = run.0.wait().unwrap();
    assert!(status.success(), "the run did not recover: {status}");
    assert!(stopped.elapsed() > Duration::from_secs(20));
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("state/outage-ok/status.json")).unwrap()).unwrap();
    assert_eq!(st["state"], "finished", "{st}");
    assert!(st["restarts"].as_u64().unwrap() >= 1, "{st}");
    assert!(st["last_error"].as_str().unwrap().contains("target"), "{st}");
    for (s, rows) in expected_state(&config()) {
        if !selected(&s.name.to_string()) {
            continue;
        }
        let got = target.rows(db, &s.name.table, &s);
        assert!(got == expected(&s, &rows), "{} differs from the generator's state after the outage", s.name);
    }

    // max_restarts: 0 — the first failure ends the task.
    let db = "outage_fail";
    prepare(target, db);
    let p = write_plan(dir.path(), "fail.yaml", &plan(target, "outage-fail", db, 0));
    let mut run = KillOnDrop(ferry().current_dir(dir.path()).args(["run", "-q", &p]).spawn().unwrap());
    std::thread::sleep(Duration::from_secs(2));
    servers(stop);
    let started = Instant::now();
    let status = loop {
        if let Some(s) = run.0.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the run did not fail without restarts");
        std::thread::sleep(Duration::from_millis(100));
    };
    servers(start);
    assert!(!status.success());
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("state/outage-fail/status.json")).unwrap()).unwrap();
    assert_eq!(st["state"], "failed", "{st}");
    assert_eq!(st["restarts"], 0, "{st}");
}

#[test]
fn a_20s_mariadb_target_outage_is_survived_by_restarts_and_fails_the_task_without_them() {
    a_20s_outage_is_survived_by_restarts_and_fails_the_task_without_them(Target::Outage);
}

#[test]
fn a_20s_postgres_target_outage_is_survived_by_restarts_and_fails_the_task_without_them() {
    a_20s_outage_is_survived_by_restarts_and_fails_the_task_without_them(Target::PgOutage);
}

/// Statements on the PostgreSQL outage instance (here a source).
fn pg_outage_exec(sqls: &[&str]) {
    ferry::runtime::io_runtime().block_on(async {
        let c = common::sql::pg_client_at(&Target::PgOutage.pg_url()).await;
        for s in sqls {
            c.batch_execute(s).await.unwrap_or_else(|e| panic!("{s}: {e:?}"));
        }
    })
}

#[test]
fn a_postgres_source_restart_is_survived_by_restarts_and_the_target_ends_equal() {
    let _one_at_a_time = PG_OUTAGE.lock().unwrap_or_else(|p| p.into_inner());
    let (ns, dst, task) = ("src_outage", "pg_src_outage_t", "pg-src-outage");
    pg_outage_exec(&[
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'ferry_pg_src_outage'",
        "DROP PUBLICATION IF EXISTS ferry_pg_src_outage",
        &format!("DROP SCHEMA IF EXISTS {ns} CASCADE"),
        &format!("CREATE SCHEMA {ns}"),
        &format!("CREATE TABLE {ns}.t (id int PRIMARY KEY, v int)"),
        &format!("INSERT INTO {ns}.t SELECT g, g FROM generate_series(1, 1000) g"),
    ]);
    Target::Maria.fresh_namespace(dst);
    let dir = workdir();
    let text = format!(
        "task: {task}\nsource:\n  type: postgres\n  url: {}\n  heartbeat_interval: 1s\ntarget:\n{}\
         tables:\n  include: ['{ns}\\..*']\nsemantics: exactly-once\nroute:\n  database: {dst}\n\
         errors:\n  max_restarts: 20\nruntime:\n  checkpoint_interval: 200ms\n  state: ./state\n",
        Target::PgOutage.pg_url(),
        Target::Maria.plan_section()
    );
    let p = write_plan(dir.path(), "plan.yaml", &text);
    let mut run = KillOnDrop(ferry().current_dir(dir.path()).args(["run", "-q", &p]).spawn().unwrap());
    let schema = ferry_operators::TableSchema {
        name: ferry_operators::TableName::new(dst, "t"),
        columns: vec![
            ferry_operators::Column::new("id", ferry_operators::ColumnType::Int { bits: 32, unsigned: false }, false),
            ferry_operators::Column::new("v", ferry_operators::ColumnType::Int { bits: 32, unsigned: false }, true),
        ],
        primary_key: vec![0],
        unique_keys: vec![],
        version: 1,
    };
    let mut rows = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let have = if Target::Maria.columns(dst, "t").is_empty() {
                0
            } else {
                Target::Maria.rows(dst, "t", &schema).len()
            };
            if have == n {
                return;
            }
            assert!(run.0.try_wait().unwrap().is_none(), "the run ended");
            assert!(Instant::now() < deadline, "the target has {have} rows, not {n}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    rows(1000);
    pg_outage_exec(&[&format!("INSERT INTO {ns}.t SELECT g, g FROM generate_series(1001, 1500) g")]);
    rows(1500);
    // The source server goes away (its sessions, the replication one too, are terminated).
    servers("pg-outage-stop");
    std::thread::sleep(Duration::from_secs(5));
    servers("pg-outage-start");
    pg_outage_exec(&[
        &format!("INSERT INTO {ns}.t SELECT g, g FROM generate_series(1501, 2000) g"),
        &format!("UPDATE {ns}.t SET v = -v WHERE id % 3 = 0"),
        &format!("DELETE FROM {ns}.t WHERE id % 10 = 0"),
    ]);
    rows(1800);
    let got = Target::Maria.rows(dst, "t", &schema);
    let want: Vec<Vec<ferry_operators::Value>> = (1..=2000i64)
        .filter(|i| i % 10 != 0)
        .map(|i| vec![ferry_operators::Value::Int(i), ferry_operators::Value::Int(if i % 3 == 0 { -i } else { i })])
        .collect();
    assert!(got == expected(&schema, &want), "the target differs from the source after the outage");
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(format!("state/{task}/status.json"))).unwrap()).unwrap();
    assert!(st["restarts"].as_u64().unwrap() >= 1, "{st}");
}

#[test]
fn a_postgres_source_without_logical_wal_fails_check_and_run_with_the_statement_that_fixes_it() {
    let _one_at_a_time = PG_OUTAGE.lock().unwrap_or_else(|p| p.into_inner());
    // The outage instance, restarted with wal_level=replica for this test only (a server with
    // logical slots refuses to start so: they go first).
    pg_outage_exec(&["SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active"]);
    servers("pg-outage-stop");
    let st = Command::new(format!("{}/scripts/servers", env!("CARGO_MANIFEST_DIR")))
        .env("FERRY_PG_WAL_LEVEL", "replica")
        .arg("pg-outage-start")
        .status()
        .unwrap();
    assert!(st.success(), "scripts/servers pg-outage-start with wal_level=replica");
    let restore = || {
        servers("pg-outage-stop");
        servers("pg-outage-start");
    };
    let result = std::panic::catch_unwind(|| {
        pg_outage_exec(&["DROP SCHEMA IF EXISTS walcheck CASCADE; CREATE SCHEMA walcheck; CREATE TABLE walcheck.t (id int PRIMARY KEY)"]);
        let dir = workdir();
        let text = format!(
            "task: pg-walcheck\nsource:\n  type: postgres\n  url: {}\ntarget:\n  type: \"null\"\n\
             tables:\n  include: ['walcheck\\..*']\nruntime:\n  state: ./state\n",
            Target::PgOutage.pg_url()
        );
        let p = write_plan(dir.path(), "plan.yaml", &text);
        for cmd in ["check", "run"] {
            let out = run_in(dir.path(), &[cmd, &p]);
            assert!(!out.status.success(), "`ferry {cmd}` passed on wal_level=replica");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("wal_level is `replica`") && err.contains("ALTER SYSTEM SET wal_level = logical;"),
                "`ferry {cmd}` does not name wal_level and its fix: {err}"
            );
        }
    });
    restore();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
