//! Bad rows lose nothing: a row whose function fails goes to the dirty-data archive with its
//! reason, the others go on, and `ferry dirty list|show` shows exactly those rows.

mod common;

use common::*;
use ferry::connectors::datagen::DatagenConfig;

#[test]
fn rows_whose_function_fails_are_archived_with_the_reason_and_listed() {
    let dir = workdir();
    let plan = "task: dirty\nsource:\n  type: datagen\n  seed: 9\n  databases: 1\n  tables_per_database: 2\n  changes: 20000\n\
                target:\n  type: files\n  path: ./out\nwrite_mode: upsert\ntransforms:\n  - tables: '.*\\.orders'\n    add:\n      \
                x: \"if(id % 10 = 0, cast(concat('x', id) AS SIGNED), 0)\"\n";
    let p = write_plan(dir.path(), "plan.yaml", plan);
    let out = ok(&run_in(dir.path(), &["run", "-q", &p]));
    let cfg =
        DatagenConfig { seed: 9, databases: 1, tables_per_database: 2, changes: Some(20_000), ..Default::default() };
    let changes = all_changes(&cfg, |n| n == "shop_0.orders");
    let (schema, list) = &changes["shop_0.orders"];
    let id = schema.column_index("id").unwrap();
    let bad =
        list.iter().filter(|c| matches!(change_image(c)[id], ferry_operators::Value::Int(v) if v % 10 == 0)).count();
    assert!(bad > 50, "the test needs bad rows ({bad})");
    assert!(out.contains(&format!(", {bad} dirty,")), "expected {bad} dirty rows: {out}");
    // No bad row reached the target.
    for l in table_lines(&dir.path().join("out"), "shop_0", "orders") {
        assert_ne!(l["id"].as_i64().unwrap() % 10, 0, "{l}");
    }
    let listed = ok(&run_in(dir.path(), &["dirty", "list", &p]));
    let total: usize =
        listed.lines().filter_map(|l| l.split(": ").nth(1)?.strip_suffix(" rows")?.parse::<usize>().ok()).sum();
    assert_eq!(total, bad, "{listed}");
    assert!(listed.contains("shop_0.orders"), "{listed}");
    let shown = ok(&run_in(dir.path(), &["dirty", "show", "--limit", "5", &p]));
    assert_eq!(shown.lines().count(), 5);
    for line in shown.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["table"], "shop_0.orders");
        assert!(v["reason"].as_str().unwrap().to_ascii_lowercase().contains("cast"), "{v}");
        assert!(v["position"].as_str().unwrap().contains(':'), "{v}");
    }
}
