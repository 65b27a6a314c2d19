//! MariaDB → MariaDB and MariaDB → PostgreSQL, full + incremental under a concurrent
//! workload (bulk insert, updates, deletes, primary-key changes, multi-statement
//! transactions): the target ends row-by-row equal to the source.

mod common;

use common::mysql::*;
use common::sql::{expected, Target};
use common::*;

fn full_and_incremental_under_writes_end_equal(target: Target, semantics: &str) {
    let tag = target.tag();
    let (src, dst) = (format!("e2e_src_{tag}"), format!("e2e_dst_{tag}"));
    items_and_pairs(&src);
    target.fresh_namespace(&dst);
    for t in ["items", "pairs"] {
        let (schema, _) = read_table(&src, t);
        target.create_table(&dst, t, &schema);
    }
    let dir = workdir();
    let text = format!(
        "task: e2e-{tag}\nsource:\n  type: mariadb\n  url: {}\n  bounded: true\n  chunk_rows: 2000\n\
         target:\n{}tables:\n  include: ['{src}\\..*']\nsemantics: {semantics}\nroute:\n  database: {dst}\n\
         runtime:\n  workers: 2\n  checkpoint_interval: 200ms\n  state: ./state\n",
        main_url(),
        target.plan_section()
    );
    let p = write_plan(dir.path(), "plan.yaml", &text);
    let writer = std::thread::spawn({
        let src = src.clone();
        move || items_workload(&src, 50_000, "'new''s'")
    });
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    writer.join().unwrap();
    // The first run stopped where the binlog stood when it started; catch up with the rest.
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    for t in ["items", "pairs"] {
        let (schema, rows) = read_table(&src, t);
        let want = expected(&schema, &rows);
        let got = target.rows(&dst, t, &schema);
        assert_eq!(got.len(), want.len(), "{dst}.{t}: rows in the target vs the source");
        let diff = got.iter().zip(&want).find(|(g, w)| g != w);
        assert!(got == want, "{dst}.{t} differs from the source; first: {diff:?}");
    }
}

#[test]
fn mariadb_to_mariadb_full_and_incremental_under_writes_ends_equal() {
    full_and_incremental_under_writes_end_equal(Target::Maria, "exactly-once");
}

#[test]
fn mariadb_to_postgres_full_and_incremental_under_writes_ends_equal() {
    full_and_incremental_under_writes_end_equal(Target::Pg, "at-least-once");
}

/// 40 missing target tables (more than the 32 that make ferry create them in two sessions of
/// their own beside the load), in two target databases, six of them without rows: every one is
/// created with its columns and filled, in one run without a restart (a restart would create
/// what the first start missed), the empty ones too (no writer waits for them).
fn many_missing_tables_are_created_in_two_sessions_and_filled(target: Target) {
    let tag = target.tag();
    let (src, other) = (format!("e2e_many_{tag}"), format!("e2e_many_{tag}_b"));
    let dst = |db: &str| format!("{db}_t");
    fresh_db(&src);
    fresh_db(&other);
    let db_of = |t: u32| if t.is_multiple_of(5) { other.clone() } else { src.clone() };
    let mut ddl = vec![format!("USE {src}")];
    for t in 0..40 {
        let db = db_of(t);
        ddl.push(format!("CREATE TABLE {db}.t{t} (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL)"));
        if t % 7 != 3 {
            ddl.push(format!("INSERT INTO {db}.t{t} SELECT seq, CONCAT('v', seq + {t}) FROM seq_1_to_{}", 10 + t));
        }
    }
    exec(&ddl.iter().map(String::as_str).collect::<Vec<_>>());
    target.fresh_namespace(&dst(&src));
    target.fresh_namespace(&dst(&other));
    let dir = workdir();
    let text = format!(
        "task: e2e-many-{tag}\nsource:\n  type: mariadb\n  url: {}\n  bounded: true\n\
         target:\n{}tables:\n  include: ['{src}\\..*', '{other}\\..*']\nsemantics: exactly-once\n\
         route:\n  database: '${{db_name_di_src}}_t'\nruntime:\n  workers: 2\n  state: ./state\nerrors:\n  max_restarts: 0\n",
        main_url(),
        target.plan_section()
    );
    let p = write_plan(dir.path(), "plan.yaml", &text);
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    for t in 0..40 {
        let (db, table) = (db_of(t), format!("t{t}"));
        let (schema, rows) = read_table(&db, &table);
        assert_eq!(target.columns(&dst(&db), &table), ["id", "v"], "{db}.{table}: the created table's columns");
        assert_eq!(target.rows(&dst(&db), &table, &schema), expected(&schema, &rows), "{db}.{table}");
        assert_eq!(rows.is_empty(), t % 7 == 3, "{db}.{table}: the tables without rows");
    }
}

/// A missing table the target refuses to create, among 40 created beside the load (a
/// PostgreSQL sequence holds its name, which `information_schema.tables` does not list): the
/// run fails for good, without a restart, naming the table and the target's reason.
#[test]
fn a_table_the_target_refuses_to_create_beside_the_load_fails_the_run_naming_it() {
    let target = Target::Pg;
    let (src, dst) = ("e2e_refused_pg", "e2e_refused_pg_t");
    fresh_db(src);
    let mut ddl = vec![format!("USE {src}")];
    for t in 0..40 {
        ddl.push(format!("CREATE TABLE t{t} (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL)"));
        ddl.push(format!("INSERT INTO t{t} SELECT seq, CONCAT('v', seq) FROM seq_1_to_20"));
    }
    exec(&ddl.iter().map(String::as_str).collect::<Vec<_>>());
    target.fresh_namespace(dst);
    target.exec(&[format!("CREATE SEQUENCE {dst}.t25")]);
    let dir = workdir();
    let text = format!(
        "task: e2e-refused-pg\nsource:\n  type: mariadb\n  url: {}\n  bounded: true\n\
         target:\n{}tables:\n  include: ['{src}\\..*']\nsemantics: exactly-once\n\
         route:\n  database: {dst}\nruntime:\n  workers: 2\n  state: ./state\nerrors:\n  max_restarts: 3\n",
        main_url(),
        target.plan_section()
    );
    let p = write_plan(dir.path(), "plan.yaml", &text);
    let out = run_in(dir.path(), &["run", "-q", &p]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a table the target cannot create must fail the run: {err}");
    assert!(err.contains(&format!("creating target table {dst}.t25")) && err.contains("already exists"), "{err}");
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("state/e2e-refused-pg/status.json")).unwrap()).unwrap();
    assert_eq!(st["restarts"], 0, "a refused statement is not retried: {st}");
}

#[test]
fn many_missing_tables_are_created_in_two_sessions_and_filled_in_mariadb() {
    many_missing_tables_are_created_in_two_sessions_and_filled(Target::Maria);
}

#[test]
fn many_missing_tables_are_created_in_two_sessions_and_filled_in_postgres() {
    many_missing_tables_are_created_in_two_sessions_and_filled(Target::Pg);
}
