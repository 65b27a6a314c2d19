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

/// `text` with the state store and the files target on the S3-compatible test server, under
/// `prefix`.
fn on_s3(text: &str, prefix: &str) -> String {
    text.replace("path: ./out", &format!("path: {}", s3::url(prefix, "out")))
        .replace("runtime:\n", &format!("runtime:\n  state: {}\n", s3::url(prefix, "state")))
        + &s3::section()
}

#[test]
fn exactly_once_append_survives_five_sigkills_without_gap_or_duplicate() {
    exactly_once_append_survives_five_sigkills(None);
}

#[test]
fn with_state_and_files_on_s3_exactly_once_append_survives_five_sigkills() {
    exactly_once_append_survives_five_sigkills(Some(&s3::prefix("crash")));
}

/// `s3`: the prefix on the S3-compatible server that holds the state and the output (read
/// through the commit manifests, as a reader of committed data reads it).
fn exactly_once_append_survives_five_sigkills(s3: Option<&str>) {
    let dir = workdir();
    let text = plan("exactly-once", "append");
    let text = match s3 {
        Some(prefix) => on_s3(&text, prefix),
        None => text,
    };
    let plan_path = write_plan(dir.path(), "plan.yaml", &text);
    let kills = run_with_kills(dir.path(), &plan_path, &[("FERRY_FAULT_MANIFEST_DELAY_MS", "400")]);
    assert!(kills >= 3, "only {kills} kills hit a running engine; the test needs a longer run");
    let expected = all_changes(&config(), selected);
    let mut total = 0;
    for (name, (schema, changes)) in &expected {
        let (db, table) = name.split_once('.').unwrap();
        let lines = match s3 {
            Some(prefix) => committed_lines(&s3::disk(prefix, "out"), db, table),
            None => table_lines(&dir.path().join("out"), db, table),
        };
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

/// A small run on S3 (state and files), 2 workers, exactly-once append.
fn small_config() -> DatagenConfig {
    DatagenConfig {
        seed: 23,
        databases: 1,
        tables_per_database: 3,
        changes: Some(1_500),
        rate: Some(15_000),
        initial_rows: 40,
        ..DatagenConfig::default()
    }
}

#[test]
fn with_state_and_files_on_s3_a_crash_before_any_one_store_write_loses_and_repeats_nothing() {
    // The n-th object write or delete of the run (boundary records, parts, commit manifests,
    // sink progress, checkpoint manifests, status; deletes of old records) aborts the process
    // before it happens, for n = 1, 2, … until a run has fewer writes than n. After each
    // crash the committed output holds no change twice and nothing unknown; a restart ends
    // with every change exactly once.
    let cfg = small_config();
    let expected = all_changes(&cfg, selected);
    let dir = workdir();
    let text = "task: crash-points\nsource:\n  type: datagen\n  seed: 23\n  databases: 1\n  tables_per_database: 3\n  \
         changes: 1500\n  rate: 15000\n  initial_rows: 40\ntarget:\n  type: files\n  path: ./out\ntables:\n  exclude: ['.*\\.events']\n\
         semantics: exactly-once\nwrite_mode: append\nmetadata:\n  - {column: _op, field: op_type}\n  - {column: _pos, field: position}\n\
         runtime:\n  workers: 2\n  checkpoint_interval: 40ms\n  batch_rows: 200\n".to_string();
    // One run aborted by `fault` (a FERRY_FAULT_STORE_CRASH value) in a fresh prefix: checks
    // the committed view after the crash, then a restart's exactly-once output. Returns the
    // write it crashed before, or None when the run ended without reaching it.
    let round = |label: &str, fault: &str| -> Option<String> {
        let prefix = s3::prefix(&format!("points-{label}"));
        let plan_path = write_plan(dir.path(), &format!("plan-{label}.yaml"), &on_s3(&text, &prefix));
        let out = ferry()
            .current_dir(dir.path())
            .env("FERRY_FAULT_STORE_CRASH", fault)
            .args(["run", "-q", &plan_path])
            .output()
            .unwrap();
        let n = fault.split(':').next().unwrap_or(fault);
        let crashed = !out.status.success();
        let mut point = None;
        if crashed {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let needle = format!("aborting before store write {n} (");
            let at = stderr.find(&needle).unwrap_or_else(|| panic!("run {label} failed otherwise: {stderr}"));
            point = Some(stderr[at + needle.len()..].lines().next().unwrap_or("").to_string());
        }
        let root = s3::disk(&prefix, "out");
        for (name, (schema, changes)) in &expected {
            let (db, table) = name.split_once('.').unwrap();
            let known: std::collections::HashSet<String> = changes.iter().map(|c| change_line(schema, c)).collect();
            let got: Vec<String> = committed_lines(&root, db, table).iter().map(|l| l.to_string()).collect();
            let distinct: std::collections::HashSet<&String> = got.iter().collect();
            assert_eq!(distinct.len(), got.len(), "crash at write {label}: {name} has a committed line twice");
            assert!(got.iter().all(|l| known.contains(l)), "crash at write {label}: {name} has an unknown line");
        }
        if !crashed {
            return None;
        }
        ok(&run_in(dir.path(), &["run", "-q", &plan_path]));
        for (name, (schema, changes)) in &expected {
            let (db, table) = name.split_once('.').unwrap();
            let mut want: Vec<String> = changes.iter().map(|c| change_line(schema, c)).collect();
            let mut got: Vec<String> = committed_lines(&root, db, table).iter().map(|l| l.to_string()).collect();
            want.sort();
            got.sort();
            assert_eq!(got.len(), want.len(), "crash at write {label}, then a restart: {name} line count");
            assert!(got == want, "crash at write {label}, then a restart: {name} differs from the generator's changes");
        }
        point
    };
    let mut n = 1;
    let mut points: Vec<String> = Vec::new();
    while let Some(point) = round(&n.to_string(), &n.to_string()) {
        points.push(point);
        n += 1;
        assert!(n < 1000, "runs kept crashing");
    }
    eprintln!("a run makes {} store writes; a crash before each one was survived", n - 1);
    assert!(n > 20, "a run made only {} store writes", n - 1);
    // Every kind of write of the protocol was a crash point. Which write comes n-th depends on
    // the workers' timing: a kind the sweep missed gets a crash before its first write.
    for kind in ["/epochs/", "/checkpoints/", "/sinks/files/", "_committed/", ".jsonl", "/status.json"] {
        if !points.iter().any(|p| p.contains(kind)) {
            let label = format!("first-{}", kind.trim_matches(|c: char| !c.is_ascii_alphanumeric()));
            let point = round(&label, &format!("1:{kind}")).unwrap_or_else(|| panic!("no write of {kind} in a run"));
            assert!(point.contains(kind), "the crash before the first write of {kind} was at {point}");
            points.push(point);
        }
    }
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
