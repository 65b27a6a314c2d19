//! Every kind of plan error is refused before anything runs, with file:line:column, the key
//! and how to fix it; `check` reports all errors at once; secrets never show in errors.

use ferry::plan;

const BASE_SOURCE: &str = "source:\n  type: datagen\n  changes: 100\n";
const BASE_TARGET: &str = "target:\n  type: files\n  path: ./out\n";

fn plan_text(extra: &str) -> String {
    format!("task: t\n{BASE_SOURCE}{BASE_TARGET}tables:\n  exclude: ['.*\\.events']\n{extra}")
}

/// Loads and compiles; returns the rendered errors (empty when the plan is fine).
fn errors(text: &str) -> Vec<String> {
    match ferry::connectors::load("p.yaml", text) {
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        Ok(p) => {
            let cat = plan::discover(&p).unwrap();
            match plan::compile(p, &cat) {
                Ok(_) => Vec::new(),
                Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
            }
        }
    }
}

#[test]
fn a_correct_plan_has_no_errors() {
    assert_eq!(errors(&plan_text("")), Vec::<String>::new());
}

#[test]
fn each_plan_error_names_its_line_column_key_and_fix() {
    // (case, plan text, the one error expected: its prefix `p.yaml:L:C: ` and a part of the message)
    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("yaml syntax", "task: t\nsource: [1, 2\n".into(), "p.yaml:3:1: ", "YAML syntax"),
        (
            "duplicate key",
            format!("task: t\ntask: u\n{BASE_SOURCE}{BASE_TARGET}"),
            "p.yaml:2:1: ",
            "duplicate key `task`",
        ),
        (
            "unknown top-level key",
            plan_text("semantic: exactly-once\n"),
            "p.yaml:10:1: `semantic`: ",
            "unknown key `semantic`: remove it or fix its spelling",
        ),
        (
            "unknown nested key",
            plan_text("runtime:\n  worker: 2\n"),
            "p.yaml:11:3: `runtime.worker`: ",
            "unknown key `worker`",
        ),
        ("verify interval", plan_text("verify:\n  interval: soon\n"), "p.yaml:11:13: `verify.interval`: ", "soon"),
        (
            "verify full sweep interval",
            plan_text("verify:\n  full_sweep_interval: later\n"),
            "p.yaml:11:24: `verify.full_sweep_interval`: ",
            "later",
        ),
        (
            "verify table pattern",
            plan_text("verify:\n  tables:\n    - tables: 'shop\\.(orders'\n"),
            "p.yaml:12:15: `verify.tables[0].tables`: ",
            "regular expression",
        ),
        (
            "verify chunk rows",
            plan_text("verify:\n  chunk_rows: 0\n"),
            "p.yaml:11:15: `verify.chunk_rows`: ",
            "at least 1",
        ),
        (
            "wrong type",
            plan_text("runtime:\n  workers: two\n"),
            "p.yaml:11:12: `runtime.workers`: ",
            "invalid type: string \"two\"",
        ),
        (
            "bad enum value",
            plan_text("semantics: exactly_once\n"),
            "p.yaml:10:12: `semantics`: ",
            "unknown variant `exactly_once`, expected `at-least-once` or `exactly-once`",
        ),
        (
            "bad PostgreSQL type choice",
            plan_text("target_tables:\n  postgres:\n    zero_dates: epoch\n"),
            "p.yaml:12:17: `target_tables.postgres.zero_dates`: ",
            "unknown variant `epoch`, expected one of `refuse`, `null`, `infinity`",
        ),
        ("missing required key", format!("{BASE_SOURCE}{BASE_TARGET}"), "p.yaml:1:1: ", "missing required key `task`"),
        (
            "missing connector type",
            "task: t\nsource:\n  seed: 1\ntarget:\n  type: null\n".into(),
            "p.yaml:2:1: `source`: ",
            "missing required key `type`",
        ),
        (
            "unknown source type",
            "task: t\nsource:\n  type: oracle\ntarget:\n  type: null\n".into(),
            "p.yaml:3:9: `source.type`: ",
            "unknown source type `oracle`",
        ),
        (
            "planned target type",
            "task: t\nsource:\n  type: datagen\ntarget:\n  type: s3\n".into(),
            "p.yaml:5:9: `target.type`: ",
            "not in this build yet",
        ),
        (
            "a files target's size bound that is not a size",
            "task: t\nsource:\n  type: datagen\ntarget:\n  type: files\n  path: ./out\n  max_file_bytes: 64 megs\n"
                .into(),
            "p.yaml:4:1: `target`: ",
            "`64 megs` is not a size; write e.g. 64MiB",
        ),
        (
            "a files target on S3 without a bucket",
            "task: t\nsource:\n  type: datagen\ntarget:\n  type: files\n  path: s3:///out\n".into(),
            "p.yaml:4:1: `target`: ",
            "names no bucket: write s3://<bucket>/<prefix>",
        ),
        (
            "an unknown file format",
            "task: t\nsource:\n  type: datagen\ntarget:\n  type: files\n  path: ./out\n  format: orc\n".into(),
            "p.yaml:7:11: `target.format`: ",
            "unknown variant `orc`",
        ),
        (
            "kafka source without its brokers",
            "task: t\nsource:\n  type: kafka\n  format: json\n  topics: [t]\ntarget:\n  type: null\n".into(),
            "p.yaml:2:1: `source`: ",
            "`brokers` is required",
        ),
        (
            "postgres source without its url",
            "task: t\nsource:\n  type: postgres\ntarget:\n  type: null\n".into(),
            "p.yaml:2:1: `source`: ",
            "missing `url`: e.g. `url: postgres://",
        ),
        (
            "unknown target type",
            "task: t\nsource:\n  type: datagen\ntarget:\n  type: parquet\n".into(),
            "p.yaml:5:9: `target.type`: ",
            "unknown target type `parquet`",
        ),
        (
            "unknown connector key",
            "task: t\nsource:\n  type: datagen\n  sed: 1\ntarget:\n  type: null\n".into(),
            "p.yaml:4:3: `source.sed`: ",
            "unknown key `sed`",
        ),
        (
            "connector validation",
            "task: t\nsource:\n  type: datagen\n  databases: 0\ntarget:\n  type: null\n".into(),
            "p.yaml:2:1: `source`: ",
            "databases must be",
        ),
        ("bad task name", plan_text("").replace("task: t", "task: 'a b'"), "p.yaml:1:7: `task`: ", "letters, digits"),
        (
            "bad duration",
            plan_text("runtime:\n  checkpoint_interval: 1 fortnight\n"),
            "p.yaml:11:24: `runtime.checkpoint_interval`: ",
            "unknown unit `fortnight`",
        ),
        (
            "a cluster timeout too short to wait for anyone",
            plan_text("runtime:\n  cluster_timeout: 200ms\n"),
            "p.yaml:11:20: `runtime.cluster_timeout`: ",
            "at least 1s",
        ),
        (
            "zero workers",
            plan_text("runtime:\n  workers: 0\n"),
            "p.yaml:11:12: `runtime.workers`: ",
            "workers must be 1..=256",
        ),
        (
            "bad include regex",
            plan_text("").replace("exclude: ['.*\\.events']", "exclude: ['(']"),
            "p.yaml:9:13: `tables.exclude[0]`: ",
            "bad regular expression `(`",
        ),
        (
            "no table selected",
            plan_text("").replace("exclude: ['.*\\.events']", "include: ['nothing']"),
            "p.yaml:8:1: `tables`: ",
            "no source table matches",
        ),
        (
            "unclosed template",
            plan_text("route:\n  table: 'x_${table_name_di_src'\n"),
            "p.yaml:11:13: `route.table`: ",
            "unclosed `${`",
        ),
        (
            "unknown template variable",
            plan_text("route:\n  table: '${tabel_name_di_src}_x'\n"),
            "p.yaml:11:11: `route.table`: ",
            "unknown variable `${tabel_name_di_src}`",
        ),
        (
            "empty resolved name",
            plan_text("route:\n  database: ''\n"),
            "p.yaml:11:13: `route.database`: ",
            "the name is empty",
        ),
        (
            "illegal resolved name",
            plan_text("route:\n  table: 'a/${table_name_di_src}'\n"),
            "p.yaml:11:10: `route.table`: ",
            "contains the character '/'",
        ),
        ("two tables one target", plan_text("route:\n  table: same\n"), "p.yaml:10:1: `route`: ", "both map to"),
        (
            "bad filter syntax",
            plan_text("transforms:\n  - tables: 'shop_0\\.orders'\n    filter: amount >> 3\n"),
            "p.yaml:12:21: `transforms[0].filter`: ",
            "bad filter for table shop_0.orders",
        ),
        (
            "unknown filter column",
            plan_text("transforms:\n  - tables: 'shop_0\\.orders'\n    filter: \"amont > 3\"\n"),
            "p.yaml:12:14: `transforms[0].filter`: ",
            "amont",
        ),
        (
            "bad literal in filter",
            plan_text("transforms:\n  - tables: 'shop_0\\.orders'\n    filter: \"created_at > '2024-13-01'\"\n"),
            "p.yaml:12:27: `transforms[0].filter`: ",
            "2024-13-01",
        ),
        (
            "bad function field",
            plan_text("transforms:\n  - tables: 'shop_0\\.orders'\n    add:\n      x: \"nosuch(id)\"\n"),
            "p.yaml:13:11: `transforms[0].add.x`: ",
            "nosuch",
        ),
        (
            "unknown dropped column",
            plan_text("transforms:\n  - tables: 'shop_0\\.orders'\n    drop: [nope]\n"),
            "p.yaml:12:12: `transforms[0].drop[0]`: ",
            "has no column `nope`",
        ),
        (
            "duplicate target column",
            plan_text("transforms:\n  - tables: 'shop_0\\.orders'\n    rename: {note: status}\n"),
            "p.yaml:12:14: `transforms[0].rename.note`: ",
            "target column `status` appears twice",
        ),
        (
            "missing env var",
            plan_text("").replace("./out", "'${env:FERRY_TEST_NOT_SET_ANYWHERE}'"),
            "p.yaml:7:9: `target.path`: ",
            "environment variable `FERRY_TEST_NOT_SET_ANYWHERE` is not set",
        ),
        (
            "keyless table with upsert",
            plan_text("").replace("exclude: ['.*\\.events']", "include: ['shop_0\\.events']"),
            "p.yaml:1:1: `write_mode`: ",
            "table shop_0.events: no primary key or unique index",
        ),
        (
            "keyless table with exactly-once",
            plan_text("write_mode: append\nsemantics: exactly-once\n")
                .replace("exclude: ['.*\\.events']", "include: ['shop_0\\.events']"),
            "p.yaml:11:12: `semantics`: ",
            "no primary key or unique index; exactly-once needs one",
        ),
    ];
    let mut failures = Vec::new();
    for (case, text, prefix, part) in &cases {
        let errs = errors(text);
        let hit = errs.iter().any(|e| e.starts_with(prefix) && e.contains(part));
        if !hit {
            failures.push(format!("{case}: expected `{prefix}…{part}…`, got {errs:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn keyless_table_runs_with_at_least_once_and_append() {
    let text = plan_text("write_mode: append\n").replace("exclude: ['.*\\.events']", "include: ['shop_0\\.events']");
    assert_eq!(errors(&text), Vec::<String>::new());
}

#[test]
fn check_reports_every_error_at_once() {
    let text = plan_text("semantics: sometimes\nruntime:\n  workers: 0\n  checkpoint_interval: soon\n");
    let errs = errors(&text);
    assert!(errs.len() >= 3, "{errs:#?}");
}

#[test]
fn secrets_from_the_environment_never_show_in_errors() {
    std::env::set_var("FERRY_TEST_SECRET_SEED", "hunter2-not-a-number");
    let text = "task: t\nsource:\n  type: datagen\n  seed: ${env:FERRY_TEST_SECRET_SEED}\ntarget:\n  type: null\n";
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].starts_with("p.yaml:4:9: `source.seed`: "), "{}", errs[0]);
    assert!(!errs[0].contains("hunter2"), "secret leaked: {}", errs[0]);
    assert!(errs[0].contains("****"), "{}", errs[0]);
}

#[test]
fn check_command_exits_1_and_prints_locations() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.yaml");
    std::fs::write(&p, plan_text("semantics: sometimes\n")).unwrap();
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_ferry")).args(["check", p.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:10:12: `semantics`: unknown variant `sometimes`"), "{err}");
}
