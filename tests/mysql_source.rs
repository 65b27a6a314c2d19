//! The MySQL/MariaDB source against the private test servers: precondition errors, discovery,
//! the chunked snapshot joined to the binlog under a concurrent workload, the key rule.

mod common;

use common::mysql::*;
use common::*;
use ferry::plan::Wanted;
use ferry_operators::TableName;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::Path;

fn plan(db: &str, url: &str, extra_source: &str, rest: &str) -> String {
    format!(
        "task: t_{db}\nsource:\n  type: mariadb\n  url: {url}\n  bounded: true\n  chunk_rows: 500\n{extra_source}\
         target:\n  type: files\n  path: ./out\ntables:\n  include: ['{db}\\..*']\n{rest}\
         runtime:\n  workers: 2\n  checkpoint_interval: 200ms\n"
    )
}

fn check(dir: &Path, text: &str) -> (Option<i32>, String) {
    let p = write_plan(dir, "plan.yaml", text);
    let out = run_in(dir, &["check", &p]);
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn preconditions_are_checked_with_one_line_errors_that_say_what_to_change() {
    let dir = workdir();
    exec(&["CREATE DATABASE IF NOT EXISTS pre_ok", "CREATE TABLE IF NOT EXISTS pre_ok.t (id INT PRIMARY KEY)"]);
    let cases = [
        (url("FERRY_TEST_MYSQL_NOLOG_URL"), "binary logging is off: set log_bin=ON"),
        (url("FERRY_TEST_MYSQL_MIXED_URL"), "binlog_format is MIXED: set binlog_format=ROW"),
        ("mysql://root@127.0.0.1:1".to_string(), "cannot reach the MySQL server at 127.0.0.1:1"),
        (main_url().replace("root@", "root:wrong-pass-123@"), "the MySQL server refused user `root`"),
    ];
    for (u, want) in cases {
        let (code, err) = check(dir.path(), &plan("pre_ok", &u, "", ""));
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains(want), "expected `{want}` in:\n{err}");
        assert!(err.contains("plan.yaml:4:8: `source.url`") || err.contains("`source.password`"), "{err}");
        assert!(!err.contains("wrong-pass-123"), "password leaked: {err}");
    }
    // Missing grants.
    exec(&[
        "DROP USER IF EXISTS 'ferry_nogrant'@'%'",
        "CREATE USER 'ferry_nogrant'@'%' IDENTIFIED BY 'pw-nogrant-1'",
        "GRANT SELECT ON *.* TO 'ferry_nogrant'@'%'",
    ]);
    std::env::set_var("FERRY_TEST_NOGRANT_PW", "pw-nogrant-1");
    let u = main_url().replace("root@", "ferry_nogrant@");
    let (code, err) = check(dir.path(), &plan("pre_ok", &u, "  password: ${env:FERRY_TEST_NOGRANT_PW}\n", ""));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("user `ferry_nogrant` lacks REPLICATION SLAVE, REPLICATION CLIENT: GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'ferry_nogrant'@'%'"), "{err}");
}

#[test]
fn a_table_without_key_is_refused_in_exactly_once_or_upsert_and_runs_in_at_least_once_append() {
    let dir = workdir();
    fresh_db("nokey_rule");
    exec(&[
        "CREATE TABLE nokey_rule.logs (msg VARCHAR(20), at INT)",
        "INSERT INTO nokey_rule.logs VALUES ('a', 1), ('a', 1), ('b', 2)",
    ]);
    let (code, err) =
        check(dir.path(), &plan("nokey_rule", &main_url(), "", "semantics: exactly-once\nwrite_mode: append\n"));
    assert_eq!(code, Some(1));
    assert!(err.contains("table nokey_rule.logs: no primary key or unique index; exactly-once needs one"), "{err}");
    let (code, err) = check(dir.path(), &plan("nokey_rule", &main_url(), "", ""));
    assert_eq!(code, Some(1));
    assert!(err.contains("table nokey_rule.logs: no primary key or unique index; upsert needs one"), "{err}");
    let p = write_plan(dir.path(), "plan.yaml", &plan("nokey_rule", &main_url(), "", "write_mode: append\n"));
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    let mut got: Vec<String> =
        table_lines(&dir.path().join("out"), "nokey_rule", "logs").iter().map(Json::to_string).collect();
    got.sort();
    assert_eq!(got, vec![r#"{"msg":"a","at":1}"#, r#"{"msg":"a","at":1}"#, r#"{"msg":"b","at":2}"#]);
}

/// Materializes upsert-mode output per table and compares it with the source, row by row.
fn assert_target_equals_source(out: &Path, db: &str, tables: &[&str]) {
    for t in tables {
        let (schema, rows) = read_table(db, t);
        let mut want: Vec<String> = rows.iter().map(|r| row_json(&schema, r).to_string()).collect();
        want.sort();
        let lines = table_lines(out, db, t);
        let got = materialize_upsert(&lines, &schema.key_names());
        let got_set: BTreeMap<&String, ()> = got.iter().map(|g| (g, ())).collect();
        let missing: Vec<&String> = want.iter().filter(|w| !got_set.contains_key(w)).take(3).collect();
        assert_eq!(
            got.len(),
            want.len(),
            "{db}.{t}: {} rows in the target, {} in the source; e.g. missing {missing:?}",
            got.len(),
            want.len()
        );
        assert!(got == want, "{db}.{t}: rows differ; e.g. missing {missing:?}");
    }
}

#[test]
fn snapshot_then_binlog_under_concurrent_writes_ends_equal_to_the_source() {
    let dir = workdir();
    let db = "e2e_concurrent";
    items_and_pairs(db);
    let text = plan(db, &main_url(), "", "semantics: exactly-once\n");
    let p = write_plan(dir.path(), "plan.yaml", &text);
    // A writer changes rows while the snapshot and the stream run.
    let writer = std::thread::spawn({
        let db = db.to_string();
        // A 100k-row transaction, then random single and multi-statement transactions.
        move || items_workload(&db, 100_000, "'new'")
    });
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    writer.join().unwrap();
    // The first run stopped where the binlog stood when it started; catch up with the rest.
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    assert_target_equals_source(&dir.path().join("out"), db, &["items", "pairs"]);
}

#[test]
fn watermark_handoff_merges_changes_made_while_chunks_are_read_and_ends_equal_to_the_source() {
    let dir = workdir();
    let db = "e2e_watermark";
    items_and_pairs(db);
    let text = plan(db, &main_url(), "  handoff: watermark\n", "semantics: exactly-once\n");
    let p = write_plan(dir.path(), "plan.yaml", &text);
    let writer = std::thread::spawn({
        let db = db.to_string();
        move || items_workload(&db, 20_000, "'new'")
    });
    // Slowed chunk reads: the writer's changes land between the watermarks.
    let out = ferry()
        .current_dir(dir.path())
        .env("FERRY_FAULT_CHUNK_DELAY_MS", "30")
        .env("FERRY_LOG", "ferry::connectors::mysql::watermark=debug")
        .args(["run", &p])
        .output()
        .unwrap();
    ok(&out);
    writer.join().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("merged the window"), "no chunk read overlapped a change: the test did not test the merge");
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    assert_target_equals_source(&dir.path().join("out"), db, &["items", "pairs"]);
}

#[test]
fn sigkill_during_snapshot_and_during_streaming_then_restart_ends_equal_without_rereading_finished_chunks() {
    sigkill_during_snapshot_and_streaming(false);
}

#[test]
fn with_state_and_files_on_s3_sigkill_during_snapshot_and_streaming_ends_equal_without_a_chunk_twice() {
    sigkill_during_snapshot_and_streaming(true);
}

/// Kills during the snapshot and while streaming, exactly-once append; `on_s3`: the state
/// store and the files target on the S3-compatible server, the output read as a reader of
/// committed data reads it (through the commit manifests).
fn sigkill_during_snapshot_and_streaming(on_s3: bool) {
    let dir = workdir();
    let db = if on_s3 { "e2e_crash_s3" } else { "e2e_crash" };
    let prefix = common::s3::prefix("mysql-crash");
    let lines_of = |table: &str| {
        if on_s3 {
            committed_lines(&common::s3::disk(&prefix, "out"), db, table)
        } else {
            table_lines(&dir.path().join("out"), db, table)
        }
    };
    fresh_db(db);
    exec(&[
        &format!("USE {db}"),
        &format!("CREATE TABLE {db}.big (id INT PRIMARY KEY, v INT NOT NULL, s VARCHAR(64))"),
        &format!("INSERT INTO {db}.big SELECT seq, seq, REPEAT('x', 40) FROM seq_1_to_400000"),
    ]);
    // Small chunks and an append log with positions: a chunk read twice would show its rows twice.
    let text = plan(
        db,
        &main_url(),
        "",
        "semantics: exactly-once\nwrite_mode: append\nmetadata:\n  - {column: _op, field: op_type}\n  - {column: _pos, field: position}\n",
    )
    .replace("bounded: true", "bounded: false");
    let text = if on_s3 {
        text.replace("path: ./out", &format!("path: {}", common::s3::url(&prefix, "out")))
            .replace("runtime:\n", &format!("runtime:\n  state: {}\n", common::s3::url(&prefix, "state")))
            + &common::s3::section()
    } else {
        text
    };
    let p = write_plan(dir.path(), "plan.yaml", &text);
    // Kill during the snapshot.
    // Each chunk read is slowed down (fault injection), so the kill lands mid-snapshot.
    let mut child = KillOnDrop(
        ferry().current_dir(dir.path()).env("FERRY_FAULT_CHUNK_DELAY_MS", "5").args(["run", "-q", &p]).spawn().unwrap(),
    );
    // Kill as soon as the first epoch of snapshot rows is committed.
    let start = std::time::Instant::now();
    while lines_of("big").is_empty() && start.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let lines_at_kill = lines_of("big").len();
    // Restart, let the snapshot finish and the stream start, change rows, kill again.
    let mut child = KillOnDrop(ferry().current_dir(dir.path()).args(["run", "-q", &p]).spawn().unwrap());
    let start = std::time::Instant::now();
    while lines_of("big").len() < 400_000 && start.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    exec(&[
        &format!("UPDATE {db}.big SET v = v + 1 WHERE id <= 1000"),
        &format!("DELETE FROM {db}.big WHERE id > 399000"),
        &format!("INSERT INTO {db}.big VALUES (900001, 1, 'late')"),
    ]);
    std::thread::sleep(std::time::Duration::from_millis(700));
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    // Finish with a bounded run.
    std::fs::write(&p, with_handoff(&text.replace("bounded: false", "bounded: true"))).unwrap();
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    let lines = lines_of("big");
    assert!(
        lines_at_kill > 0 && lines_at_kill < 400_000,
        "the first kill came after the snapshot ({lines_at_kill} lines); the test needs a bigger table"
    );
    // Applying the log in order gives the source, and no line is there twice (no chunk was
    // read into the output twice).
    let (schema, rows) = read_table(db, "big");
    let mut want: Vec<String> = rows.iter().map(|r| row_json(&schema, r).to_string()).collect();
    want.sort();
    let got = replay_append_log(&lines);
    assert_eq!(got.len(), want.len());
    assert!(got == want, "target differs from source");
}

fn ids(dir: &Path, db: &str, table: &str) -> Vec<i64> {
    let mut v: Vec<i64> = table_lines(&dir.join("out"), db, table).iter().map(|l| l["id"].as_i64().unwrap()).collect();
    v.sort();
    v
}

#[test]
fn incremental_mode_starts_at_the_latest_position_without_a_snapshot() {
    let dir = workdir();
    let db = "start_latest";
    fresh_db(db);
    exec(&[
        &format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)"),
        &format!("INSERT INTO {db}.t VALUES (1, 1), (2, 2)"),
    ]);
    let p = write_plan(dir.path(), "plan.yaml", &plan(db, &main_url(), "", "mode: incremental\n"));
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    assert!(ids(dir.path(), db, "t").is_empty(), "existing rows were read");
    exec(&[&format!("INSERT INTO {db}.t VALUES (3, 3)"), &format!("UPDATE {db}.t SET v = 9 WHERE id = 1")]);
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    assert_eq!(ids(dir.path(), db, "t"), vec![1, 3]);
}

#[test]
fn start_from_a_timestamp_skips_the_snapshot_and_older_changes_or_starts_at_the_earliest() {
    // Starting at the earliest binlog replays every earlier run's history: a database name of
    // its own keeps this run's rows apart.
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let db_name = format!("start_time_{stamp}");
    let db = db_name.as_str();
    fresh_db(db);
    exec(&[&format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)"), &format!("INSERT INTO {db}.t VALUES (1, 1)")]);
    // The binlog keeps whole seconds: let the second of the first insert pass.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let dt = ferry_operators::value::DateTime::from_epoch_micros(now * 1_000_000);
    let at = format!(
        "{} {:02}:{:02}:{:02}",
        dt.date,
        dt.micros / 3_600_000_000,
        dt.micros / 60_000_000 % 60,
        dt.micros / 1_000_000 % 60
    );
    exec(&[&format!("INSERT INTO {db}.t VALUES (2, 2)")]);
    for (when, want) in [(at.as_str(), vec![2]), ("2000-01-01 00:00:00", vec![1, 2])] {
        let dir = workdir();
        let src = format!("  start:\n    from: timestamp\n    timestamp: '{when}'\n");
        let p = write_plan(dir.path(), "plan.yaml", &plan(db, &main_url(), &src, "write_mode: append\n"));
        ok(&run_in(dir.path(), &["run", "-q", &p]));
        assert_eq!(ids(dir.path(), db, "t"), want, "start at {when}");
    }
}

#[test]
fn an_unavailable_start_position_is_an_error_naming_the_earliest_one() {
    let dir = workdir();
    let db = "start_gone";
    fresh_db(db);
    exec(&[&format!("CREATE TABLE {db}.t (id INT PRIMARY KEY)")]);
    let src = "  start:\n    from: position\n    file: mysql-bin.000000\n    position: 4\n";
    let p = write_plan(dir.path(), "plan.yaml", &plan(db, &main_url(), src, ""));
    let out = run_in(dir.path(), &["run", "-q", &p]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mysql-bin.000000") && err.contains("earliest available"), "{err}");
}

#[test]
fn an_all_types_row_arrives_identical_through_snapshot_and_binlog() {
    let dir = workdir();
    let db = "e2e_types";
    fresh_db(db);
    let cols = "id INT PRIMARY KEY, ti TINYINT, tu TINYINT UNSIGNED, bi BIGINT, bu BIGINT UNSIGNED, \
                f FLOAT, d DOUBLE, dec65 DECIMAL(65,30), s VARCHAR(50) CHARACTER SET utf8mb4, \
                l VARCHAR(20) CHARACTER SET latin1, vb VARBINARY(20), bl BLOB, dt DATE, tm TIME(6), \
                dtm DATETIME(6), ts TIMESTAMP(6) NULL, j JSON, e ENUM('a','b','c'), st SET('x','y','z'), \
                b1 BIT(1), b64 BIT(64), y YEAR, n INT NULL";
    let values = |id: i32| {
        format!(
            "({id}, -128, 255, -9223372036854775808, 18446744073709551615, 3.5, -1.7976931348623157e308, \
             '-99999999999999999999999999999999999.999999999999999999999999999999', 'emoji 🦀 \"q\" \\\\ ', \
             'caf\u{e9} \u{20ac}', X'FF00FE', X'00', '0000-00-00', '-838:59:59.000000', '9999-12-31 23:59:59.999999', \
             '2038-01-19 03:14:07.999999', '{{\"k\": [1, 2]}}', 'b', 'x,z', b'1', b'1111111111111111111111111111111111111111111111111111111111111111', \
             2155, NULL)"
        )
    };
    exec(&[
        "SET SESSION sql_mode = ''",
        &format!("CREATE TABLE {db}.t ({cols})"),
        &format!("SET SESSION sql_mode = ''; INSERT INTO {db}.t VALUES {}", values(1)),
    ]);
    let p = write_plan(dir.path(), "plan.yaml", &plan(db, &main_url(), "", ""));
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    exec(&[&format!("SET SESSION sql_mode = ''; INSERT INTO {db}.t VALUES {}", values(2))]);
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    let lines = table_lines(&dir.path().join("out"), db, "t");
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let strip = |l: &Json| {
        let mut l = l.clone();
        l.as_object_mut().unwrap().shift_remove("id");
        l
    };
    assert_eq!(strip(&lines[0]), strip(&lines[1]), "snapshot and binlog encodings differ");
    assert_eq!(lines[0]["bu"], serde_json::json!(18446744073709551615u64));
    assert_eq!(lines[0]["dec65"], "-99999999999999999999999999999999999.999999999999999999999999999999");
    assert_eq!(lines[0]["l"], "caf\u{e9} \u{20ac}");
    assert_eq!(lines[0]["tm"], "-838:59:59");
    assert_eq!(lines[0]["dt"], "0000-00-00");
    assert_eq!(lines[0]["b64"], "1".repeat(64));
    assert_target_equals_source(&dir.path().join("out"), db, &["t"]);
}

#[test]
fn columns_added_and_dropped_mid_stream_are_followed_and_rows_on_both_sides_decode() {
    let dir = workdir();
    let db = "e2e_ddl";
    fresh_db(db);
    exec(&[
        &format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, a INT, b VARCHAR(10))"),
        &format!("INSERT INTO {db}.t VALUES (1, 1, 'one'), (2, 2, 'two'), (3, 3, 'three')"),
    ]);
    let p = write_plan(dir.path(), "plan.yaml", &plan(db, &main_url(), "", "semantics: exactly-once\n"));
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    exec(&[
        &format!("INSERT INTO {db}.t VALUES (4, 4, 'four')"),
        &format!("ALTER TABLE {db}.t ADD COLUMN c INT DEFAULT 7"),
        &format!("INSERT INTO {db}.t VALUES (5, 5, 'five', 9)"),
        &format!("UPDATE {db}.t SET c = 1 WHERE id = 1"),
        &format!("ALTER TABLE {db}.t DROP COLUMN b"),
        &format!("INSERT INTO {db}.t VALUES (6, 6, 6)"),
        &format!("UPDATE {db}.t SET a = 20 WHERE id = 2"),
        &format!("DELETE FROM {db}.t WHERE id = 3"),
    ]);
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    let lines = table_lines(&dir.path().join("out"), db, "t");
    // Rows written after ADD COLUMN carry it; rows after DROP COLUMN no longer carry the
    // dropped one (policy `auto`).
    let five = lines.iter().find(|l| l["id"] == 5).expect("row 5");
    assert_eq!((&five["b"], &five["c"]), (&Json::from("five"), &Json::from(9)), "{five}");
    let six = lines.iter().find(|l| l["id"] == 6).expect("row 6");
    assert_eq!((six.get("b"), &six["c"]), (None, &Json::from(6)), "{six}");
    // Both schema changes reached the sink, in order with the rows: after the rows written
    // before each statement, before the rows written after it.
    let out = dir.path().join("out");
    let events = schema_events(&out);
    let kinds: Vec<(String, Json)> =
        events.iter().map(|(_, e)| (e["table"].as_str().unwrap().to_string(), e["change"].clone())).collect();
    assert_eq!(
        kinds,
        vec![
            (
                format!("{db}.t"),
                serde_json::json!({"kind": "add_column", "column": "c", "spec": {"ty": "INT", "not_null": false, "default": "7"}})
            ),
            (format!("{db}.t"), serde_json::json!({"kind": "drop_column", "column": "b"})),
        ]
    );
    assert!(events[0].1["statement"].as_str().unwrap().contains("ADD COLUMN c"), "{}", events[0].1);
    let (add, drop) = (events[0].0, events[1].0);
    let epoch_of = |id: i64| row_epoch(&out, db, "t", id);
    assert!(
        epoch_of(4) <= add && add < epoch_of(5),
        "ADD COLUMN at epoch {add}, rows 4 and 5 at {} and {}",
        epoch_of(4),
        epoch_of(5)
    );
    assert!(
        epoch_of(5) <= drop && drop < epoch_of(6),
        "DROP COLUMN at epoch {drop}, rows 5 and 6 at {} and {}",
        epoch_of(5),
        epoch_of(6)
    );
    // The final state, on the source's columns (a column missing from an older line is NULL).
    let (schema, rows) = read_table(db, "t");
    let mut want: Vec<String> = rows.iter().map(|r| row_json(&schema, r).to_string()).collect();
    want.sort();
    let mut got: Vec<String> = materialize_upsert(&lines, &["id"])
        .iter()
        .map(|r| {
            let j: Json = serde_json::from_str(r).unwrap();
            let o: serde_json::Map<String, Json> = schema
                .columns
                .iter()
                .map(|c| (c.name.clone(), j.get(&c.name).cloned().unwrap_or(Json::Null)))
                .collect();
            Json::Object(o).to_string()
        })
        .collect();
    got.sort();
    // Row 4 was written before the column existed: its `c` reads NULL here, 7 at the source.
    let want: Vec<String> = want
        .into_iter()
        .map(|w| if w.contains("\"id\":4,") { w.replace("\"c\":7", "\"c\":null") } else { w })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn exactly_once_append_log_of_snapshot_and_binlog_replays_strictly_for_integer_composite_decimal_and_text_keys() {
    let dir = workdir();
    let db = "e2e_strict";
    fresh_db(db);
    exec(&[
        &format!("USE {db}"),
        &format!("CREATE TABLE {db}.one (id BIGINT PRIMARY KEY, v INT)"),
        &format!("CREATE TABLE {db}.two (a INT, b INT, v INT, PRIMARY KEY (a, b))"),
        &format!("INSERT INTO {db}.one SELECT seq, seq FROM seq_1_to_30000"),
        &format!("INSERT INTO {db}.two SELECT seq % 50, seq, seq FROM seq_1_to_30000"),
        // Text keys in a binary collation (mixed case and punctuation order bytewise) and
        // negative and fractional decimal keys.
        &format!("CREATE TABLE {db}.three (k VARCHAR(20) COLLATE utf8mb4_bin PRIMARY KEY, v INT)"),
        &format!("CREATE TABLE {db}.four (d DECIMAL(12,3) PRIMARY KEY, v INT)"),
        &format!("INSERT INTO {db}.three SELECT CONCAT(CHAR(65 + seq % 58), seq), seq FROM seq_1_to_30000"),
        &format!(
            "INSERT INTO {db}.four SELECT CAST(seq AS SIGNED) - 15000 + (seq % 7) * 0.125, seq FROM seq_1_to_30000"
        ),
        // The same text keys in a case-insensitive collation, whose order only the server knows.
        &format!("CREATE TABLE {db}.five (k VARCHAR(20) COLLATE utf8mb4_general_ci PRIMARY KEY, v INT)"),
        &format!("INSERT INTO {db}.five SELECT k, v FROM {db}.three"),
        // A multi-level (accent- and case-sensitive) collation, with keys that end in spaces.
        &format!("CREATE TABLE {db}.six (k VARCHAR(20) COLLATE utf8mb4_uca1400_as_cs PRIMARY KEY, v INT)"),
        &format!("INSERT INTO {db}.six SELECT IF(seq % 3 = 0, CONCAT(k, ' '), k), v FROM {db}.three JOIN seq_1_to_30000 ON v = seq"),
    ]);
    let text = plan(
        db,
        &main_url(),
        "",
        "semantics: exactly-once\nwrite_mode: append\nmetadata:\n  - {column: _op, field: op_type}\n",
    );
    let p = write_plan(dir.path(), "plan.yaml", &text);
    let writer = std::thread::spawn(move || {
        for i in 0..200i64 {
            exec(&[
                &format!("INSERT INTO {db}.one VALUES ({}, 0)", 100_000 + i),
                &format!("DELETE FROM {db}.one WHERE id = {}", 1 + i * 97),
                &format!("UPDATE {db}.one SET v = v + 1 WHERE id = {}", 2 + i * 89),
                &format!("INSERT INTO {db}.two VALUES ({}, {}, 0)", i % 50, 100_000 + i),
                &format!("DELETE FROM {db}.two WHERE b = {}", 1 + i * 113),
                &format!("INSERT INTO {db}.three VALUES (CONCAT(CHAR(65 + {i} % 58), 'n', {i}), 0)"),
                &format!("DELETE FROM {db}.three WHERE k = CONCAT(CHAR(65 + {x} % 58), {x})", x = 1 + i * 97),
                &format!("UPDATE {db}.three SET v = v + 1 WHERE k = CONCAT(CHAR(65 + {x} % 58), {x})", x = 2 + i * 89),
                &format!("INSERT INTO {db}.four VALUES ({}.5, 0)", 100_000 + i),
                &format!("DELETE FROM {db}.four WHERE d = {x} - 15000 + ({x} % 7) * 0.125", x = 1 + i * 97),
                &format!("UPDATE {db}.four SET v = v + 1 WHERE d = {x} - 15000 + ({x} % 7) * 0.125", x = 2 + i * 89),
                &format!("INSERT INTO {db}.five VALUES (CONCAT(CHAR(65 + {i} % 58), 'n', {i}), 0)"),
                &format!("DELETE FROM {db}.five WHERE k = CONCAT(CHAR(65 + {x} % 58), {x})", x = 1 + i * 97),
                &format!("UPDATE {db}.five SET v = v + 1 WHERE k = CONCAT(CHAR(65 + {x} % 58), {x})", x = 2 + i * 89),
                &format!("INSERT INTO {db}.six VALUES (CONCAT(CHAR(65 + {i} % 58), 'n', {i}, ' '), 0)"),
                &format!("DELETE FROM {db}.six WHERE v = {x}", x = 1 + i * 97),
                &format!("UPDATE {db}.six SET v = v + 100000 WHERE v = {x}", x = 2 + i * 89),
            ]);
        }
    });
    // Slow chunk reads so the writes land while chunks are read.
    let out = ferry()
        .current_dir(dir.path())
        .env("FERRY_FAULT_CHUNK_DELAY_MS", "20")
        .args(["run", "-q", &p])
        .output()
        .unwrap();
    ok(&out);
    writer.join().unwrap();
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    for (t, key) in [
        ("one", vec!["id"]),
        ("two", vec!["a", "b"]),
        ("three", vec!["k"]),
        ("four", vec!["d"]),
        ("five", vec!["k"]),
        ("six", vec!["k"]),
    ] {
        let lines = table_lines(&dir.path().join("out"), db, t);
        let mut state: BTreeMap<String, Json> = BTreeMap::new();
        for l in &lines {
            let k: String = key.iter().map(|c| l[*c].to_string()).collect::<Vec<_>>().join("|");
            let mut row = l.clone();
            let op = row.as_object_mut().unwrap().shift_remove("_op").unwrap();
            match op.as_str().unwrap() {
                "insert" => assert!(
                    state.insert(k.clone(), row).is_none(),
                    "{t}: insert of a present key {k}: a change applied twice"
                ),
                "update" => assert!(state.insert(k.clone(), row).is_some(), "{t}: update of an absent key {k}"),
                _ => assert!(state.remove(&k).is_some(), "{t}: delete of an absent key {k}: a change applied twice"),
            }
        }
        let (schema, rows) = read_table(db, t);
        let mut want: Vec<String> = rows.iter().map(|r| row_json(&schema, r).to_string()).collect();
        want.sort();
        let mut got: Vec<String> = state.values().map(Json::to_string).collect();
        got.sort();
        assert!(got == want, "{t}: final state differs ({} vs {} rows)", got.len(), want.len());
    }
}

#[test]
fn a_renamed_source_column_keeps_flowing_into_its_target_column_and_skipped_ddl_reaches_no_sink() {
    let dir = workdir();
    let db = "e2e_rename";
    fresh_db(db);
    exec(&[
        &format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, price INT)"),
        &format!("INSERT INTO {db}.t VALUES (1, 10)"),
    ]);
    // Schema events are kept from the sink (`skip: [ddl]`); the rename is followed all the same.
    let text = plan(
        db,
        &main_url(),
        "",
        "semantics: exactly-once\noperations:\n  skip: [ddl]\ntransforms:\n  - tables: '.*'\n    filter: 'price > 0'\n",
    )
    .replace("bounded: true", "bounded: false");
    let p = write_plan(dir.path(), "plan.yaml", &text);
    let mut child = KillOnDrop(ferry().current_dir(dir.path()).args(["run", "-q", &p]).spawn().unwrap());
    let out = dir.path().join("out");
    let wait_for = |n: usize| {
        let start = std::time::Instant::now();
        while materialize_upsert(&table_lines(&out, db, "t"), &["id"]).len() < n && start.elapsed().as_secs() < 30 {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    wait_for(1);
    exec(&[
        &format!("ALTER TABLE {db}.t RENAME COLUMN price TO cost"),
        &format!("UPDATE {db}.t SET cost = 11 WHERE id = 1"),
        &format!("INSERT INTO {db}.t VALUES (2, 20)"),
    ]);
    wait_for(2);
    child.0.kill().unwrap();
    let rows = materialize_upsert(&table_lines(&out, db, "t"), &["id"]);
    assert_eq!(rows, vec![r#"{"id":1,"price":11}"#.to_string(), r#"{"id":2,"price":20}"#.to_string()]);
    assert!(schema_events(&out).is_empty(), "a skipped DDL reached the sink: {:?}", schema_events(&out));
}

#[test]
fn ddl_of_tables_outside_the_selection_does_not_end_an_epoch_and_ddl_of_a_selected_one_does() {
    let dir = workdir();
    let db = "ddl_foreign";
    let other = "ddl_foreign_other";
    fresh_db(db);
    fresh_db(other);
    exec(&[&format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)")]);
    // Checkpoints far apart: only statements end the epochs of this bounded run.
    let text = plan(db, &main_url(), "", "mode: incremental\nsemantics: exactly-once\n")
        .replace("checkpoint_interval: 200ms", "checkpoint_interval: 1h");
    let p = write_plan(dir.path(), "plan.yaml", &text);
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    let mut statements = vec![format!("INSERT INTO {db}.t VALUES (1, 1)")];
    for i in 0..100 {
        statements.push(format!("CREATE TABLE {other}.a{i} (id INT PRIMARY KEY)"));
        statements.push(format!("ALTER TABLE {other}.a{i} ADD COLUMN note TEXT"));
        statements.push(format!("INSERT INTO {other}.a{i} VALUES (1, 'x')"));
    }
    statements.push(format!("INSERT INTO {db}.t VALUES (2, 2)"));
    statements.push(format!("ALTER TABLE {db}.t ADD COLUMN c INT"));
    statements.push(format!("INSERT INTO {db}.t VALUES (3, 3, 3)"));
    exec(&statements.iter().map(String::as_str).collect::<Vec<_>>());
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    let out = dir.path().join("out");
    let (e1, e2, e3) = (row_epoch(&out, db, "t", 1), row_epoch(&out, db, "t", 2), row_epoch(&out, db, "t", 3));
    // Tests running beside this one may end a few epochs with statements of their own (a
    // grant, a drop of a database); the other database's 200 statements end none.
    assert!(e2 - e1 < 20, "the other database's 200 statements split the epoch {} times", e2 - e1);
    assert!(e3 > e2, "the selected table's ALTER did not end the epoch: {e2} then {e3}");
}

/// The schema change events a files target received, in file order, with their epochs.
fn schema_events(out: &std::path::Path) -> Vec<(u64, Json)> {
    let mut files: Vec<_> = std::fs::read_dir(out.join("_schema_changes"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    let mut events = Vec::new();
    for f in files {
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        let epoch: u64 = name[1..11].parse().unwrap();
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            let e: Json = serde_json::from_str(line).unwrap();
            assert_eq!(e["epoch"], epoch, "{name}: {line}");
            events.push((epoch, e));
        }
    }
    events
}

/// The epoch of the (exactly-once) part file that holds the last line of row `id`.
fn row_epoch(out: &std::path::Path, db: &str, table: &str, id: i64) -> u64 {
    let mut files: Vec<_> = std::fs::read_dir(out.join(db).join(table)).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut found = None;
    for f in files {
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            let l: Json = serde_json::from_str(line).unwrap();
            if l["id"] == id {
                found = Some(name[1..11].parse().unwrap());
            }
        }
    }
    found.unwrap_or_else(|| panic!("row {id} not written"))
}

#[test]
fn discovery_describes_only_the_databases_holding_selected_tables() {
    fresh_db("disc_keep");
    fresh_db("disc_other");
    exec(&[
        "CREATE TABLE disc_keep.a (id INT PRIMARY KEY, v INT)",
        "CREATE TABLE disc_keep.b (id INT PRIMARY KEY)",
        "CREATE VIEW disc_keep.va AS SELECT id FROM disc_keep.a",
        "CREATE TABLE disc_other.a (id INT PRIMARY KEY, w TEXT)",
    ]);
    use ferry::connectors::mysql::discover;
    let cfg = ferry::connectors::mysql::config::MysqlSourceConfig { url: main_url(), ..Default::default() };
    let opts = discover::opts(&cfg).unwrap();
    let found = ferry::runtime::io_runtime().block_on(async {
        let mut conn = discover::connect(&opts).await.unwrap();
        // Wants disc_keep.a and (by name) the view; not disc_keep.b, nor anything else.
        let everywhere = |_: &str| true;
        let wanted = |t: &TableName| t.database == "disc_keep" && t.table != "b";
        discover::discover(&mut conn, Wanted::new(&wanted, &everywhere)).await.unwrap()
    });
    let names: Vec<String> = found.catalog.tables.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, ["disc_keep.a"], "a view is no table, and unwanted tables are left out");
    let a = &found.catalog.tables[0];
    assert_eq!(a.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["id", "v"]);
    assert_eq!(a.key_names(), ["id"]);
    assert_eq!(found.charsets.len(), 1);
    assert_eq!(found.details.len(), 1);
    // Nothing wanted: nothing described, and no error (the plan reports the empty selection).
    let none = ferry::runtime::io_runtime().block_on(async {
        let mut conn = discover::connect(&opts).await.unwrap();
        discover::discover(&mut conn, Wanted::new(&|_: &TableName| false, &|_: &str| true)).await.unwrap()
    });
    assert!(none.catalog.tables.is_empty());
    // Databases the selection cannot reach are not listed at all: every table wanted, but
    // only `disc_keep` may hold one.
    let kept = ferry::runtime::io_runtime().block_on(async {
        let mut conn = discover::connect(&opts).await.unwrap();
        discover::discover(&mut conn, Wanted::new(&|_: &TableName| true, &|db: &str| db == "disc_keep")).await.unwrap()
    });
    let names: Vec<String> = kept.catalog.tables.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, ["disc_keep.a", "disc_keep.b"], "only the reachable database is listed");
    let none = ferry::runtime::io_runtime().block_on(async {
        let mut conn = discover::connect(&opts).await.unwrap();
        discover::discover(&mut conn, Wanted::new(&|_: &TableName| true, &|_: &str| false)).await.unwrap()
    });
    assert!(none.catalog.tables.is_empty(), "no reachable database: nothing listed");
}

/// Applies an append log with `_op` and `_pos` (the source position) in order: the rows left,
/// as JSON text, sorted; panics on a line seen twice (a change delivered twice).
fn replay_append_log(lines: &[Json]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut state: BTreeMap<String, Json> = BTreeMap::new();
    for l in lines {
        let key = (l["_pos"].as_str().unwrap().to_string(), l["id"].to_string(), l["_op"].to_string());
        assert!(seen.insert(key), "line twice: {l}");
        let mut row = l.clone();
        let o = row.as_object_mut().unwrap();
        let op = o.shift_remove("_op").unwrap();
        o.shift_remove("_pos");
        let id = row["id"].to_string();
        if op == "delete" {
            state.remove(&id);
        } else {
            state.insert(id, row);
        }
    }
    let mut got: Vec<String> = state.values().map(Json::to_string).collect();
    got.sort();
    got
}

#[test]
fn many_small_tables_read_in_shared_snapshots_under_concurrent_writes_end_equal_without_a_change_twice() {
    // 150 tables of 20 rows: each is planned as one chunk without a probe, and a worker reads
    // up to 64 of them in one consistent snapshot, all at its binlog position.
    let dir = workdir();
    let db = "e2e_small_tables";
    let n_tables = 150;
    fresh_db(db);
    let mut ddl = vec![format!("USE {db}")];
    for t in 0..n_tables {
        ddl.push(format!("CREATE TABLE {db}.t{t} (id INT PRIMARY KEY, v INT NOT NULL)"));
        ddl.push(format!("INSERT INTO {db}.t{t} SELECT seq, seq FROM seq_1_to_20"));
    }
    exec(&ddl.iter().map(String::as_str).collect::<Vec<_>>());
    let text = with_handoff(&plan(
        db,
        &main_url(),
        "",
        "semantics: exactly-once\nwrite_mode: append\nmetadata:\n  - {column: _op, field: op_type}\n  - {column: _pos, field: position}\n",
    ));
    let p = write_plan(dir.path(), "plan.yaml", &text);
    // Updates, inserts and deletes over every table while the (slowed) snapshot reads them.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let mut rng = seeded_rng("small tables workload");
            let opts = mysql_async::Opts::from_url(&main_url()).unwrap();
            ferry::runtime::io_runtime().block_on(async {
                use mysql_async::prelude::Queryable;
                let mut conn = mysql_async::Conn::new(opts).await.unwrap();
                let mut done = 0u64;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) && done < 20_000 {
                    let t = rng() % n_tables;
                    let id = 1 + rng() % 40;
                    let sql = match rng() % 3 {
                        0 => format!("UPDATE {db}.t{t} SET v = v + 1 WHERE id = {id}"),
                        1 => format!("INSERT INTO {db}.t{t} VALUES ({id}, {done}) ON DUPLICATE KEY UPDATE v = -v"),
                        _ => format!("DELETE FROM {db}.t{t} WHERE id = {id}"),
                    };
                    conn.query_drop(sql).await.unwrap();
                    done += 1;
                }
                conn.disconnect().await.unwrap();
                done
            })
        }
    });
    let first = ferry()
        .current_dir(dir.path())
        .env("FERRY_FAULT_CHUNK_DELAY_MS", "10")
        .args(["run", "-q", &p])
        .output()
        .unwrap();
    ok(&first);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let writes = writer.join().unwrap();
    assert!(writes > 50, "only {writes} writes ran during the snapshot: the test did not test concurrency");
    // The first run ended where the binlog stood when it started; catch up with the rest.
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    for t in 0..n_tables {
        let table = format!("t{t}");
        let (schema, rows) = read_table(db, &table);
        let mut want: Vec<String> = rows.iter().map(|r| row_json(&schema, r).to_string()).collect();
        want.sort();
        let got = replay_append_log(&table_lines(&dir.path().join("out"), db, &table));
        assert_eq!(got, want, "{db}.{table}: the replayed log differs from the source");
    }
}
