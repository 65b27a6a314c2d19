//! Crash safety of the database targets: exactly-once + append into MariaDB and PostgreSQL,
//! the engine killed with SIGKILL at 5 random moments and restarted; the target ends with
//! every change exactly once (each row carries its source position, so a duplicate or a gap
//! shows).

mod common;

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
