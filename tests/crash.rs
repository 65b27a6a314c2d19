//! Crash safety: a bounded datagen run killed with SIGKILL at 5 random moments and restarted
//! each time ends with output equal to the generator's changes — exactly once in exactly-once
//! mode, and with only replay duplicates (which an upsert by key removes) in at-least-once.

mod common;

use common::*;
use ferry::connectors::datagen::DatagenConfig;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const CHANGES: u64 = 240_000;

fn config() -> DatagenConfig {
    DatagenConfig {
        seed: 11,
        databases: 1,
        tables_per_database: 5,
        changes: Some(CHANGES),
        rate: Some(60_000),
        initial_rows: 500,
        ..DatagenConfig::default()
    }
}

fn plan(semantics: &str, write_mode: &str) -> String {
    format!(
        "task: crash\nsource:\n  type: datagen\n  seed: 11\n  databases: 1\n  tables_per_database: 5\n  changes: {CHANGES}\n  \
         rate: 60000\n  initial_rows: 500\ntarget:\n  type: files\n  path: ./out\ntables:\n  exclude: ['.*\\.events']\n\
         semantics: {semantics}\nwrite_mode: {write_mode}\nmetadata:\n  - {{column: _op, field: op_type}}\n  - {{column: _pos, field: position}}\n\
         runtime:\n  workers: 2\n  checkpoint_interval: 150ms\n  batch_rows: 2000\n"
    )
}

fn selected(name: &str) -> bool {
    !name.ends_with(".events")
}

/// The line an append-mode change with `_op` and `_pos` metadata columns becomes.
fn change_line(schema: &ferry_operators::TableSchema, c: &ferry_operators::Change) -> String {
    let mut j = row_json(schema, change_image(c));
    let o = j.as_object_mut().unwrap();
    o.insert("_op".into(), Json::String(c.op.as_str().into()));
    o.insert("_pos".into(), Json::String(c.pos.to_string()));
    j.to_string()
}

fn key_of(line: &Json, key: &[&str]) -> String {
    key.iter().map(|k| line[*k].to_string()).collect::<Vec<_>>().join("|")
}

fn seq_of(line: &Json) -> u64 {
    line["_pos"].as_str().unwrap().split(':').nth(1).unwrap().parse().unwrap()
}

#[test]
fn exactly_once_append_survives_five_sigkills_without_gap_or_duplicate() {
    let dir = workdir();
    let plan_path = write_plan(dir.path(), "plan.yaml", &plan("exactly-once", "append"));
    let kills = run_with_kills(dir.path(), &plan_path, &[("FERRY_FAULT_MANIFEST_DELAY_MS", "400")]);
    assert!(kills >= 3, "only {kills} kills hit a running engine; the test needs a longer run");
    let expected = all_changes(&config(), selected);
    let mut total = 0;
    for (name, (schema, changes)) in &expected {
        let (db, table) = name.split_once('.').unwrap();
        let lines = table_lines(&dir.path().join("out"), db, table);
        // The exact multiset of change lines: nothing missing, nothing twice.
        let mut want: Vec<String> = changes.iter().map(|c| change_line(schema, c)).collect();
        let mut got: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        want.sort();
        got.sort();
        assert_eq!(got.len(), want.len(), "{name}: line count");
        assert!(got == want, "{name}: output differs from the generator's changes");
        // Per key, file-name order is source order.
        let key = schema.key_names();
        let mut last: BTreeMap<String, u64> = BTreeMap::new();
        for l in &lines {
            let (k, s) = (key_of(l, &key), seq_of(l));
            if let Some(prev) = last.insert(k.clone(), s) {
                assert!(prev <= s, "{name}: key {k} went from seq {prev} back to {s}");
            }
        }
        total += got.len();
    }
    assert!(total as u64 >= CHANGES / 2, "too few lines: {total}");
}

#[test]
fn at_least_once_upsert_after_five_sigkills_has_only_duplicates_an_upsert_removes() {
    let dir = workdir();
    let plan_path = write_plan(dir.path(), "plan.yaml", &plan("at-least-once", "upsert"));
    let kills = run_with_kills(dir.path(), &plan_path, &[("FERRY_FAULT_MANIFEST_DELAY_MS", "400")]);
    assert!(kills >= 3, "only {kills} kills hit a running engine");
    let changes = all_changes(&config(), selected);
    for (name, (schema, changes)) in &changes {
        let (db, table) = name.split_once('.').unwrap();
        let lines = table_lines(&dir.path().join("out"), db, table);
        // Every line is one of the generator's changes (a replay at worst), none invented.
        let known: std::collections::HashSet<String> = changes.iter().map(|c| change_line(schema, c)).collect();
        for l in &lines {
            let mut l = l.clone();
            l.as_object_mut().unwrap().shift_remove("__deleted");
            assert!(known.contains(&l.to_string()), "{name}: unknown line {l}");
        }
        assert!(lines.len() >= changes.len(), "{name}: {} lines for {} changes", lines.len(), changes.len());
        // Upserting by key gives the generator's final state.
        let mut got = materialize_upsert(&lines, &schema.key_names());
        for r in got.iter_mut() {
            let mut j: Json = serde_json::from_str(r).unwrap();
            let o = j.as_object_mut().unwrap();
            o.shift_remove("_op");
            o.shift_remove("_pos");
            *r = j.to_string();
        }
        got.sort();
        let want = &expected_rows(&config(), |n| n == name)[name];
        assert_eq!(got.len(), want.len(), "{name}: row count");
        assert!(&got == want, "{name}: final state differs");
    }
}

#[test]
fn sigterm_stops_at_a_savepoint_and_the_next_run_resumes_without_gap_or_duplicate() {
    let dir = workdir();
    // Slower than the crash runs: the first run is stopped well before its end.
    let text = plan("exactly-once", "append").replace("rate: 60000", "rate: 20000");
    let plan_path = write_plan(dir.path(), "plan.yaml", &text);
    let mut guard = KillOnDrop(ferry().current_dir(dir.path()).args(["run", "-q", &plan_path]).spawn().unwrap());
    // Wait for the first committed checkpoint, then ask for a stop.
    let start = Instant::now();
    while !dir.path().join(".ferry/crash/checkpoints").exists() {
        assert!(start.elapsed() < Duration::from_secs(30), "no checkpoint after 30 s");
        assert!(guard.0.try_wait().unwrap().is_none(), "the run ended before the stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let (took, status) = sigterm_and_wait(&mut guard.0);
    assert!(status.success(), "a savepoint stop exits 0, got {status}");
    // One checkpoint interval (150 ms) plus the time to commit what is in flight.
    assert!(took < Duration::from_secs(5), "the stop took {took:?}");
    let st = status_json(&dir.path().join(".ferry"), "crash");
    assert_eq!(st["state"], "stopped", "{st}");
    let epoch = st["epoch"].as_u64().unwrap();
    assert!(epoch > 0 && !st["position"].as_object().unwrap().is_empty(), "{st}");
    // The savepoint's manifest is the newest, marked as such; no epoch is in flight.
    let manifest: Json = serde_json::from_slice(
        &std::fs::read(dir.path().join(format!(".ferry/crash/checkpoints/{epoch:020}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!((manifest["savepoint"].as_bool(), manifest["finished"].as_bool()), (Some(true), Some(false)));
    assert!(
        !dir.path().join(".ferry/crash/epochs").exists() || {
            std::fs::read_dir(dir.path().join(".ferry/crash/epochs")).unwrap().next().is_none()
        }
    );
    let written: usize = all_changes(&config(), selected)
        .keys()
        .map(|n| {
            let (db, t) = n.split_once('.').unwrap();
            table_lines(&dir.path().join("out"), db, t).len()
        })
        .sum();
    assert!(written > 0 && (written as u64) < CHANGES, "the stop came mid-run: {written} lines");
    // The next run resumes from the savepoint and ends with every change exactly once.
    let stdout = ok(&run_in(dir.path(), &["run", "-q", &plan_path]));
    assert!(stdout.starts_with("done:"), "{stdout}");
    assert_eq!(status_json(&dir.path().join(".ferry"), "crash")["state"], "finished");
    for (name, (schema, changes)) in &all_changes(&config(), selected) {
        let (db, table) = name.split_once('.').unwrap();
        let mut want: Vec<String> = changes.iter().map(|c| change_line(schema, c)).collect();
        let mut got: Vec<String> =
            table_lines(&dir.path().join("out"), db, table).iter().map(|l| l.to_string()).collect();
        want.sort();
        got.sort();
        assert_eq!(got.len(), want.len(), "{name}: line count");
        assert!(got == want, "{name}: output differs from the generator's changes");
    }
}
