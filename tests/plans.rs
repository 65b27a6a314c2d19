//! Every plan in `plans/` runs: the MySQL example against the private test server (the demo
//! has its own test, tests/demo.rs).

mod common;

use common::mysql::*;
use common::*;

#[test]
fn the_mysql_example_plan_checks_and_runs_against_a_real_server() {
    let dir = workdir();
    exec(&[
        "DROP DATABASE IF EXISTS shop",
        "CREATE DATABASE shop",
        "CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(20))",
        "INSERT INTO shop.items VALUES (1, 'pen'), (2, 'ink')",
    ]);
    let plan = format!("{}/plans/mysql-to-files.yaml", env!("CARGO_MANIFEST_DIR"));
    let run = |args: &[&str]| {
        ferry()
            .current_dir(dir.path())
            .env("FERRY_MYSQL_URL", main_url())
            .env("FERRY_MYSQL_PASSWORD", "")
            .args(args)
            .output()
            .unwrap()
    };
    let checked = ok(&run(&["check", &plan]));
    assert!(checked.contains("shop.items → shop.items"), "{checked}");
    ok(&run(&["run", "-q", &plan]));
    let rows = materialize_upsert(&table_lines(&dir.path().join("out/mysql"), "shop", "items"), &["id"]);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows[0].contains(r#""name":"pen""#) && rows[0].contains(r#""_op":"insert""#), "{rows:?}");
}
