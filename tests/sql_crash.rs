//! Crash safety of the database targets: exactly-once + append into MariaDB and PostgreSQL,
//! the engine killed with SIGKILL at 5 random moments and restarted; the target ends with
//! every change exactly once (each row carries its source position, so a duplicate or a gap
//! shows). Also: SIGKILLs while the missing target tables are created beside the load.

mod common;

use common::mysql::{exec, fresh_db, main_url, read_table};
use common::sql::{append_schema, expected, Target};
use common::*;
use ferry::connectors::datagen::{catalog, DatagenConfig};
use ferry_operators::{Column, ColumnType, Value};

const CHANGES: u64 = 120_000;
const TABLES: &str = r"shop_0\.(orders|order_items|accounts)";

fn selected(name: &str) -> bool {
    regex::Regex::new(&format!("^{TABLES}$")).unwrap().is_match(name)
}

fn config() -> DatagenConfig {
    DatagenConfig {
        seed: 5,
        databases: 1,
        tables_per_database: 5,
        changes: Some(CHANGES),
        rate: Some(40_000),
        initial_rows: 500,
        ..DatagenConfig::default()
    }
}

fn with_pos(s: &ferry_operators::TableSchema) -> ferry_operators::TableSchema {
    let mut a = append_schema(s);
    a.columns.push(Column::new("_pos", ColumnType::String { max_chars: Some(40), fixed: false }, false));
    a
}

fn sigkills_leave_every_change_exactly_once(target: Target) {
    let tag = target.tag();
    let db = format!("crash_{tag}");
    target.fresh_namespace(&db);
    let cat = catalog(&config());
    for s in cat.iter().filter(|s| selected(&s.name.to_string())) {
        target.create_table(&db, &s.name.table, &with_pos(s));
    }
    let dir = workdir();
    let c = config();
    let text = format!(
        "task: crash-{tag}\nsource:\n  type: datagen\n  seed: {}\n  databases: 1\n  tables_per_database: 5\n  changes: {CHANGES}\n  \
         rate: 40000\n  initial_rows: {}\ntarget:\n{}tables:\n  include: ['{TABLES}']\n\
         semantics: exactly-once\nwrite_mode: append\nroute:\n  database: {db}\n\
         metadata:\n  - {{column: _op, field: op_type}}\n  - {{column: _pos, field: position}}\n\
         runtime:\n  workers: 2\n  checkpoint_interval: 150ms\n  batch_rows: 2000\n  state: ./state\n",
        c.seed,
        c.initial_rows,
        target.plan_section()
    );
    let p = write_plan(dir.path(), "plan.yaml", &text);
    let kills = run_with_kills(dir.path(), &p, &[("FERRY_FAULT_MANIFEST_DELAY_MS", "400")]);
    assert!(kills >= 3, "only {kills} kills hit a running engine; the test needs a longer run");
    for (name, (s, changes)) in all_changes(&config(), selected) {
        let a = with_pos(&s);
        let rows: Vec<Vec<Value>> = changes
            .iter()
            .map(|c| {
                let mut r = change_image(c).to_vec();
                r.push(Value::Text(c.op.as_str().to_string()));
                r.push(Value::Text(c.pos.to_string()));
                r
            })
            .collect();
        let got = target.rows(&db, &s.name.table, &a);
        let want = expected(&a, &rows);
        assert_eq!(got.len(), want.len(), "{name}: rows in the target vs changes ({kills} kills)");
        let diff = got.iter().zip(&want).find(|(g, w)| g != w);
        assert!(got == want, "{name}: not exactly the change log, first difference {diff:?}");
    }
}

#[test]
fn exactly_once_append_into_mariadb_survives_five_sigkills() {
    sigkills_leave_every_change_exactly_once(Target::Maria);
}

#[test]
fn exactly_once_append_into_postgres_survives_five_sigkills() {
    sigkills_leave_every_change_exactly_once(Target::Pg);
}

/// 120 missing target tables, created by two sessions beside the snapshot's load (slowed to
/// 8 ms a table), the engine killed with SIGKILL at 5 random moments (while tables are
/// created, while rows are written) and restarted: every table ends created, the empty ones too, and equal to the source.
fn sigkills_while_tables_are_created_beside_the_load_leave_every_table_equal(target: Target) {
    let tag = target.tag();
    let (src, dst) = (format!("crash_create_{tag}"), format!("crash_create_{tag}_t"));
    fresh_db(&src);
    let mut ddl = vec![format!("USE {src}")];
    for t in 0..120 {
        ddl.push(format!("CREATE TABLE t{t} (id INT PRIMARY KEY, v VARCHAR(40) NOT NULL, n BIGINT NULL)"));
        if t % 9 != 4 {
            ddl.push(format!(
                "INSERT INTO t{t} SELECT seq, CONCAT('row ', seq, ' of ', {t}), IF(seq % 7 = 0, NULL, seq * {t}) \
                 FROM seq_1_to_{}",
                300 + 10 * t
            ));
        }
    }
    exec(&ddl.iter().map(String::as_str).collect::<Vec<_>>());
    target.fresh_namespace(&dst);
    let dir = workdir();
    let text = format!(
        "task: crash-create-{tag}\nsource:\n  type: mariadb\n  url: {}\n  bounded: true\n  chunk_rows: 500\n\
         target:\n{}tables:\n  include: ['{src}\\..*']\nsemantics: exactly-once\nroute:\n  database: {dst}\n\
         runtime:\n  workers: 2\n  checkpoint_interval: 150ms\n  state: ./state\n",
        main_url(),
        target.plan_section()
    );
    let p = write_plan(dir.path(), "plan.yaml", &text);
    // 8 ms per table: the first run's two sessions take about half a second for the 120, so a
    // kill lands while they create tables as well as while rows are written.
    let env = [("FERRY_FAULT_MANIFEST_DELAY_MS", "400"), ("FERRY_FAULT_CREATE_DELAY_MS", "8")];
    let kills = run_with_kills(dir.path(), &p, &env);
    assert!(kills >= 1, "no kill hit a running engine; the test needs a longer run");
    for t in 0..120 {
        let table = format!("t{t}");
        let (schema, rows) = read_table(&src, &table);
        assert_eq!(rows.is_empty(), t % 9 == 4, "{src}.{table}: the tables without rows");
        assert_eq!(target.columns(&dst, &table), ["id", "v", "n"], "{dst}.{table}: created ({kills} kills)");
        let got = target.rows(&dst, &table, &schema);
        assert_eq!(got, expected(&schema, &rows), "{dst}.{table} vs the source ({kills} kills)");
    }
}

#[test]
fn sigkills_while_tables_are_created_beside_the_load_leave_every_mariadb_table_equal() {
    sigkills_while_tables_are_created_beside_the_load_leave_every_table_equal(Target::Maria);
}

#[test]
fn sigkills_while_tables_are_created_beside_the_load_leave_every_postgres_table_equal() {
    sigkills_while_tables_are_created_beside_the_load_leave_every_table_equal(Target::Pg);
}
