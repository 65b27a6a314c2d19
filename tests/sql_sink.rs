//! Database targets fed by the generator: datagen → MariaDB and datagen → PostgreSQL, in both
//! write modes and both semantics. Upsert must end equal to the generator's final state;
//! append must hold exactly the change log (every change's row and operation, once).

mod common;

use common::sql::{append_schema, expected, Target};
use common::{all_changes, change_image, ok, run_in, workdir, write_plan};
use ferry::connectors::datagen::{catalog, DatagenConfig};
use ferry_operators::Value;

const TABLES: &str = r"shop_0\.(orders|order_items|accounts)";

fn selected(name: &str) -> bool {
    regex::Regex::new(&format!("^{TABLES}$")).unwrap().is_match(name)
}

fn cfg() -> DatagenConfig {
    DatagenConfig {
        seed: 11,
        databases: 1,
        tables_per_database: 5,
        initial_rows: 300,
        changes: Some(12_000),
        ..DatagenConfig::default()
    }
}

fn plan(task: &str, target: Target, prefix: &str, semantics: &str, mode: &str) -> String {
    let c = cfg();
    let meta = if mode == "append" { "metadata:\n  - column: _op\n    field: op_type\n" } else { "" };
    format!(
        "task: {task}\nsource:\n  type: datagen\n  seed: {}\n  databases: 1\n  tables_per_database: 5\n  initial_rows: {}\n  changes: {}\n  rate: 20000\n\
         target:\n{}tables:\n  include: ['{TABLES}']\nsemantics: {semantics}\nwrite_mode: {mode}\n\
         route:\n  database: \"{prefix}_${{db_name_di_src}}\"\n{meta}\
         runtime:\n  workers: 2\n  checkpoint_interval: 100ms\n  batch_rows: 700\n  state: ./state\n",
        c.seed,
        c.initial_rows,
        c.changes.unwrap(),
        target.plan_section()
    )
}

/// Runs one combination and checks the target.
fn check(target: Target, semantics: &str, mode: &str) {
    let tag = format!("{}_{}_{}", target.tag(), if semantics == "exactly-once" { "eo" } else { "alo" }, mode);
    let prefix = format!("sink_{tag}");
    let db = format!("{prefix}_shop_0");
    target.fresh_namespace(&db);
    let cat = catalog(&cfg());
    for s in cat.iter().filter(|s| selected(&s.name.to_string())) {
        let schema = if mode == "append" { append_schema(s) } else { s.clone() };
        target.create_table(&db, &s.name.table, &schema);
    }
    let dir = workdir();
    let p = write_plan(dir.path(), "plan.yaml", &plan(&format!("sink-{tag}"), target, &prefix, semantics, mode));
    ok(&run_in(dir.path(), &["run", "-q", "--from-scratch", &p]));
    if mode == "upsert" {
        for (s, rows) in ferry::connectors::datagen::expected_state(&cfg()) {
            if !selected(&s.name.to_string()) {
                continue;
            }
            let got = target.rows(&db, &s.name.table, &s);
            let want = expected(&s, &rows);
            assert_eq!(got.len(), want.len(), "{tag}: row count of {}", s.name);
            let diff = got.iter().zip(&want).find(|(g, w)| g != w);
            assert!(got == want, "{tag}: {} differs from the generator's final state, first: {diff:?}", s.name);
        }
    } else {
        for (name, (s, changes)) in all_changes(&cfg(), selected) {
            let a = append_schema(&s);
            let rows: Vec<Vec<Value>> = changes
                .iter()
                .map(|c| {
                    let mut r = change_image(c).to_vec();
                    r.push(Value::Text(c.op.as_str().to_string()));
                    r
                })
                .collect();
            let got = target.rows(&db, &s.name.table, &a);
            let want = expected(&a, &rows);
            assert_eq!(got.len(), want.len(), "{tag}: change count of {name}");
            let diff = got.iter().zip(&want).find(|(g, w)| g != w);
            assert!(got == want, "{tag}: {name} is not the change log, first: {diff:?}");
        }
    }
}

#[test]
fn datagen_to_mariadb_upsert_ends_equal_to_the_generator_state_in_both_semantics() {
    check(Target::Maria, "exactly-once", "upsert");
    check(Target::Maria, "at-least-once", "upsert");
}

#[test]
fn datagen_to_mariadb_append_holds_exactly_the_change_log_in_both_semantics() {
    check(Target::Maria, "exactly-once", "append");
    check(Target::Maria, "at-least-once", "append");
}

#[test]
fn datagen_to_postgres_upsert_ends_equal_to_the_generator_state_in_both_semantics() {
    check(Target::Pg, "exactly-once", "upsert");
    check(Target::Pg, "at-least-once", "upsert");
}

#[test]
fn datagen_to_postgres_append_holds_exactly_the_change_log_in_both_semantics() {
    check(Target::Pg, "exactly-once", "append");
    check(Target::Pg, "at-least-once", "append");
}
