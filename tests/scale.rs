//! Scale: the same plan run with 1 worker, 4 workers and as a 2-process cluster on localhost
//! produces identical output (the same change lines per table, and the generator's final state).

mod common;

use common::*;
use ferry::connectors::datagen::DatagenConfig;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::Path;

fn config() -> DatagenConfig {
    DatagenConfig {
        seed: 5,
        databases: 2,
        tables_per_database: 5,
        changes: Some(60_000),
        initial_rows: 200,
        ..Default::default()
    }
}

const PLAN: &str = "task: scale\nsource:\n  type: datagen\n  seed: 5\n  databases: 2\n  tables_per_database: 5\n  changes: 60000\n  initial_rows: 200\n\
target:\n  type: files\n  path: ./out\ntables:\n  exclude: ['.*\\.events']\nsemantics: exactly-once\nwrite_mode: upsert\n\
metadata:\n  - {column: _pos, field: position}\nruntime:\n  checkpoint_interval: 100ms\n  batch_rows: 1000\n";

/// Per table, the sorted change lines; also checks that applying them in file order gives the
/// generator's final state.
fn output(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let want = expected_rows(&config(), |n| !n.ends_with(".events"));
    let cat = ferry::connectors::datagen::catalog(&config());
    let mut out = BTreeMap::new();
    for (name, want_rows) in want {
        let schema = cat.iter().find(|s| s.name.to_string() == name).unwrap();
        let (db, t) = name.split_once('.').unwrap();
        let in_order = table_lines(&dir.join("out"), db, t);
        let mut got = materialize_upsert(&in_order, &schema.key_names());
        for r in got.iter_mut() {
            let mut j: Json = serde_json::from_str(r).unwrap();
            j.as_object_mut().unwrap().shift_remove("_pos");
            *r = j.to_string();
        }
        got.sort();
        assert!(
            got == want_rows,
            "{name}: final state differs from the generator's ({} vs {} rows)",
            got.len(),
            want_rows.len()
        );
        let mut lines: Vec<String> = in_order.iter().map(Json::to_string).collect();
        lines.sort();
        out.insert(name, lines);
    }
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn one_worker_four_workers_and_two_processes_write_identical_output() {
    let mut results = Vec::new();
    for w in ["1", "4"] {
        let dir = workdir();
        let plan = write_plan(dir.path(), "plan.yaml", PLAN);
        ok(&run_in(dir.path(), &["run", "-q", "-w", w, &plan]));
        results.push((format!("-w {w}"), output(dir.path())));
    }
    {
        let dir = workdir();
        let plan = write_plan(dir.path(), "plan.yaml", PLAN);
        let hosts = format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port());
        let hostfile = write_plan(dir.path(), "hosts.txt", &hosts);
        let mut p1 = KillOnDrop(
            ferry()
                .current_dir(dir.path())
                .args(["run", "-q", "-w", "2", "--hostfile", &hostfile, "--process", "1", &plan])
                .spawn()
                .unwrap(),
        );
        let p0 = run_in(dir.path(), &["run", "-q", "-w", "2", "--hostfile", &hostfile, "--process", "0", &plan]);
        assert!(p1.0.wait().unwrap().success(), "process 1 failed");
        ok(&p0);
        results.push(("2 processes × 2 workers".into(), output(dir.path())));
    }
    let (first_name, first) = &results[0];
    assert!(first.values().map(Vec::len).sum::<usize>() > 10_000, "too little output");
    for (name, r) in &results[1..] {
        assert!(r == first, "{name} differs from {first_name}");
    }
}
