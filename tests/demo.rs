//! The README's first command: the demo plan runs with no server, writes the demo's tables to
//! local files, ends by itself, and a second run resumes, finds nothing new and changes nothing.

mod common;

use common::*;
use ferry::connectors::datagen::DatagenConfig;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::Path;

fn demo_plan() -> String {
    format!("{}/plans/demo.yaml", env!("CARGO_MANIFEST_DIR"))
}

fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(root).unwrap().display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn decimal(v: &Json) -> f64 {
    v.as_str().unwrap().parse().unwrap()
}

#[test]
fn demo_plan_runs_ends_by_itself_and_a_second_run_changes_nothing() {
    let dir = workdir();
    let first = ok(&run_in(dir.path(), &["run", "-q", &demo_plan()]));
    assert!(first.starts_with("done:"), "{first}");
    assert!(first.contains("files under ./out/demo"), "{first}");
    let out = dir.path().join("out/demo");
    let before = snapshot(&out);
    for db in ["shop_0", "shop_1"] {
        for t in ["customers", "orders", "order_items", "accounts"] {
            assert!(!table_lines(&out, db, t).is_empty(), "{db}.{t} is empty");
        }
        assert!(!out.join(db).join("events").exists(), "events is excluded");
    }
    let second = ok(&run_in(dir.path(), &["run", "-q", &demo_plan()]));
    assert!(second.contains(" 0 changes in, 0 rows out"), "{second}");
    assert!(before == snapshot(&out), "the second run changed the output");
}

#[test]
fn demo_transforms_filter_rename_add_and_metadata_hold_on_the_final_state() {
    let dir = workdir();
    ok(&run_in(dir.path(), &["run", "-q", &demo_plan()]));
    let out = dir.path().join("out/demo");
    let text = std::fs::read_to_string(demo_plan()).unwrap();
    let plan = ferry::connectors::load("demo.yaml", &text).unwrap();
    let cfg = plan.source.config_as::<DatagenConfig>().expect("the demo uses datagen");
    let expected = ferry::connectors::datagen::expected_state(cfg);
    for db in ["shop_0", "shop_1"] {
        // orders: the filter is applied as a view: the final state holds exactly the source rows
        // that pass it, whatever updates moved them in or out.
        let lines = table_lines(&out, db, "orders");
        let final_rows = materialize_upsert(&lines, &["id"]);
        let (schema, rows) = expected.iter().find(|(s, _)| s.name.to_string() == format!("{db}.orders")).unwrap();
        let mut want: Vec<String> = rows
            .iter()
            .map(|r| row_json(schema, r))
            .filter(|j| j["status"] != "cancelled" && decimal(&j["amount"]) >= 10.0)
            .map(|j| j["id"].to_string())
            .collect();
        want.sort();
        let mut got: Vec<String> = Vec::new();
        for r in &final_rows {
            let j: Json = serde_json::from_str(r).unwrap();
            assert!(j.get("note").is_none(), "note is dropped");
            let band = if decimal(&j["amount"]) >= 500.0 { "large" } else { "small" };
            assert_eq!(j["amount_band"], band, "{j}");
            assert_eq!(j["month"].as_str().unwrap(), &j["created_at"].as_str().unwrap()[..7], "{j}");
            assert!(j["_op"] == "insert" || j["_op"] == "update", "{j}");
            assert!(j["_event_time"].as_str().unwrap().ends_with('Z'), "{j}");
            got.push(j["id"].to_string());
        }
        got.sort();
        assert_eq!(got, want, "{db}.orders: final keys differ from the filtered source");
        // customers: renamed column and constant field.
        for l in table_lines(&out, db, "customers").iter().take(100) {
            assert!(l.get("name").is_none() && l.get("full_name").is_some(), "{l}");
            assert_eq!(l["region"], "eu");
        }
    }
}
