//! Rows the target rejects (F9.2, F9.3): MariaDB source rows that are too long for the target
//! column, NULL into NOT NULL, a duplicate unique key in append mode. With `ignore` the dirty
//! archive holds exactly those rows with the target's errors, the other tables are complete,
//! and `ferry dirty replay` writes them once the target is fixed; with `partial-stop` only the
//! failing table stops, its later rows wait in the archive, and replay completes it.

mod common;

use common::sql::Target;
use common::*;
use ferry_operators::{Column, ColumnType, TableName, TableSchema};
use std::path::Path;

fn col(name: &str, ty: ColumnType, nullable: bool) -> Column {
    Column::new(name, ty, nullable)
}

fn int() -> ColumnType {
    ColumnType::Int { bits: 32, unsigned: false }
}

fn varchar(n: u32) -> ColumnType {
    ColumnType::String { max_chars: Some(n), fixed: false }
}

fn people(name_len: u32, note_nullable: bool) -> TableSchema {
    TableSchema {
        name: TableName::new("x", "people"),
        columns: vec![
            col("id", int(), false),
            col("name", varchar(name_len), false),
            col("note", varchar(50), note_nullable),
        ],
        primary_key: vec![0],
        unique_keys: vec![],
        version: 1,
    }
}

fn other() -> TableSchema {
    TableSchema {
        name: TableName::new("x", "other"),
        columns: vec![col("id", int(), false), col("v", int(), true)],
        primary_key: vec![0],
        unique_keys: vec![],
        version: 1,
    }
}

/// Source database `db`: `people` with 60 rows of which ids 20, 33, 41 have 20-character names
/// and ids 45, 52 a NULL note; `other` with 200 clean rows.
fn source(db: &str) {
    mysql::fresh_db(db);
    let mut people = Vec::new();
    for id in 1..=60 {
        let name = if [20, 33, 41].contains(&id) { format!("'{}'", "n".repeat(20)) } else { format!("'p{id}'") };
        let note = if [45, 52].contains(&id) { "NULL".to_string() } else { format!("'note {id}'") };
        people.push(format!("({id}, {name}, {note})"));
    }
    let others: Vec<String> = (1..=200).map(|i| format!("({i}, {})", i * 7)).collect();
    mysql::exec(&[
        &format!("CREATE TABLE `{db}`.people (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, note VARCHAR(50) NULL)"),
        &format!("CREATE TABLE `{db}`.other (id INT PRIMARY KEY, v INT)"),
        &format!("INSERT INTO `{db}`.people VALUES {}", people.join(",")),
        &format!("INSERT INTO `{db}`.other VALUES {}", others.join(",")),
    ]);
}

fn plan(task: &str, src: &str, dst: &str, target: Target, policy: &str) -> String {
    format!(
        "task: {task}\nsource:\n  type: mariadb\n  url: {}\n  bounded: true\n  chunk_rows: 16\n\
         target:\n{}tables:\n  include: ['{src}\\..*']\nroute:\n  database: {dst}\n\
         errors:\n  write_error: {policy}\nruntime:\n  workers: 2\n  batch_rows: 25\n  state: ./state\n",
        mysql::main_url(),
        target.plan_section()
    )
}

/// Where a test's dirty archive goes: the state store, or a prefix in the private
/// S3-compatible server's bucket.
#[derive(Clone, Copy, PartialEq)]
enum Archive {
    State,
    S3,
}

impl Archive {
    /// `plan` (from [`plan`]) with this archive chosen: for S3, `errors.dirty_archive` and the
    /// `s3` section, the secret key from the environment as a user would write it.
    fn apply(self, plan: &str, prefix: &str) -> String {
        match self {
            Archive::State => plan.to_string(),
            Archive::S3 => {
                let bucket = mysql::url("FERRY_TEST_S3_BUCKET");
                plan.replace("errors:\n", &format!("errors:\n  dirty_archive: s3://{bucket}/{prefix}\n"))
                    + &format!(
                        "s3:\n  endpoint: {}\n  region: us-east-1\n  access_key_id: {}\n  \
                         secret_access_key: ${{env:FERRY_TEST_S3_SECRET}}\n",
                        mysql::url("FERRY_TEST_S3_ENDPOINT"),
                        mysql::url("FERRY_TEST_S3_KEY")
                    )
            }
        }
    }

    /// The archive's files (paths under the task), as the S3 server keeps them on its disk.
    fn s3_files(prefix: &str, task: &str, under: &str) -> Vec<String> {
        let root = Path::new(&mysql::url("FERRY_TEST_S3_DIR"))
            .join(mysql::url("FERRY_TEST_S3_BUCKET"))
            .join(prefix)
            .join(task)
            .join(under);
        let mut out: Vec<String> = std::fs::read_dir(&root)
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        out.sort();
        out
    }
}

/// The archived rows: (source table, id, reason).
fn dirty_rows(dir: &Path, plan: &str) -> Vec<(String, i64, String)> {
    let out = ok(&run_in(dir, &["dirty", "show", "--limit", "1000", plan]));
    let mut rows: Vec<(String, i64, String)> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["table"].as_str().unwrap().to_string(),
                v["row"][0].as_i64().unwrap(),
                v["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    rows.sort();
    rows
}

fn source_rows(db: &str, table: &str, schema: &TableSchema) -> Vec<String> {
    let (_, rows) = mysql::read_table(db, table);
    common::sql::expected(schema, &rows)
}

fn rejected_rows_are_archived_with_their_errors_and_replay_writes_them_after_the_fix(target: Target, archive: Archive) {
    let t = target.tag();
    let (src, dst) = (format!("errsrc_{t}"), format!("errdst_{t}"));
    source(&src);
    target.fresh_namespace(&dst);
    target.create_table(&dst, "people", &people(10, false));
    target.create_table(&dst, "other", &other());
    let dir = workdir();
    let task = format!("err-ignore-{t}");
    // A prefix of its own per run: the S3 server's files outlive a test's working directory.
    let prefix = format!("archive-{}", std::process::id());
    let text = archive.apply(&plan(&task, &src, &dst, target, "ignore"), &prefix);
    let p = write_plan(dir.path(), "plan.yaml", &text);
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    if archive == Archive::S3 {
        let files = Archive::s3_files(&prefix, &task, "dirty");
        assert!(!files.is_empty() && files.iter().all(|f| f.ends_with(".jsonl")), "{files:?}");
        assert!(!dir.path().join("state").join(&task).join("dirty").exists(), "the archive went to the state store");
    }

    let dirty = dirty_rows(dir.path(), &p);
    let ids: Vec<i64> = dirty.iter().map(|d| d.1).collect();
    assert_eq!(ids, vec![20, 33, 41, 45, 52], "{dirty:?}");
    let people_name = format!("{src}.people");
    assert!(dirty.iter().all(|d| d.0 == people_name), "{dirty:?}");
    let (long, null) = match target {
        Target::Maria | Target::Outage => ("Data too long", "cannot be null"),
        Target::Pg | Target::PgOutage => ("value too long", "null value"),
    };
    for d in &dirty {
        let want = if d.1 < 45 { long } else { null };
        assert!(d.2.contains(want) && d.2.contains(&format!("{dst}.people")), "{d:?}");
    }
    assert_eq!(target.rows(&dst, "people", &people(10, true)).len(), 55);
    assert_eq!(target.rows(&dst, "other", &other()), source_rows(&src, "other", &other()));

    // Fix the target, replay: now equal to the source.
    target.exec(&[match target {
        Target::Maria | Target::Outage => {
            format!("ALTER TABLE `{dst}`.people MODIFY name VARCHAR(50) NOT NULL, MODIFY note VARCHAR(50) NULL")
        }
        Target::Pg | Target::PgOutage => {
            format!("ALTER TABLE \"{dst}\".people ALTER COLUMN name TYPE varchar(50), ALTER COLUMN note DROP NOT NULL")
        }
    }]);
    let replayed = ok(&run_in(dir.path(), &["dirty", "replay", &p]));
    assert!(replayed.contains("replayed 5 rows") && replayed.contains("0 failed again"), "{replayed}");
    let full = people(50, true);
    assert_eq!(target.rows(&dst, "people", &full), source_rows(&src, "people", &full));
    let after = ok(&run_in(dir.path(), &["dirty", "list", &p]));
    assert!(after.contains("no dirty rows"), "{after}");
    if archive == Archive::S3 {
        assert!(Archive::s3_files(&prefix, &task, "dirty").is_empty());
        assert!(!Archive::s3_files(&prefix, &task, "dirty-replayed").is_empty());
    }
}

#[test]
fn mariadb_target_rejected_rows_are_archived_and_replayed() {
    rejected_rows_are_archived_with_their_errors_and_replay_writes_them_after_the_fix(Target::Maria, Archive::State);
}

/// The archive in an S3-compatible store (F9.3): written, listed, shown and replayed there.
#[test]
fn postgres_target_rejected_rows_are_archived_in_s3_and_replayed() {
    rejected_rows_are_archived_with_their_errors_and_replay_writes_them_after_the_fix(Target::Pg, Archive::S3);
}

#[test]
fn partial_stop_stops_only_the_failing_table_until_replay() {
    let target = Target::Maria;
    let (src, dst) = ("errsrc_stop", "errdst_stop");
    source(src);
    target.fresh_namespace(dst);
    target.create_table(dst, "people", &people(10, true));
    target.create_table(dst, "other", &other());
    let dir = workdir();
    let p = write_plan(dir.path(), "plan.yaml", &plan("err-stop", src, dst, target, "partial-stop"));
    ok(&run_in(dir.path(), &["run", "-q", &p]));

    // `other` is complete; `people` stopped at its first rejected row (id 20): later rows are
    // archived, none of them written.
    assert_eq!(target.rows(dst, "other", &other()), source_rows(src, "other", &other()));
    let written = target.rows(dst, "people", &people(10, true));
    assert!(written.len() < 60 - 5, "people should have stopped: {} rows written", written.len());
    let stop = std::fs::read_to_string(dir.path().join(format!("state/err-stop/stopped/{src}.people.json"))).unwrap();
    assert!(stop.contains("Data too long"), "{stop}");
    let dirty = dirty_rows(dir.path(), &p);
    assert!(dirty.iter().all(|d| d.0 == format!("{src}.people")), "{dirty:?}");
    assert_eq!(dirty.len() + written.len(), 60, "every people row is written or archived");

    // A second run keeps the table stopped (its changes would otherwise overtake the archive).
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    assert_eq!(target.rows(dst, "people", &people(10, true)).len(), written.len());

    target.exec(&[format!("ALTER TABLE `{dst}`.people MODIFY name VARCHAR(50) NOT NULL")]);
    let replayed = ok(&run_in(dir.path(), &["dirty", "replay", &p]));
    assert!(replayed.contains("1 stopped tables released"), "{replayed}");
    let full = people(50, true);
    assert_eq!(target.rows(dst, "people", &full), source_rows(src, "people", &full));
    assert!(!dir.path().join(format!("state/err-stop/stopped/{src}.people.json")).exists());
}

#[test]
fn duplicate_unique_keys_in_append_mode_go_to_the_archive() {
    let target = Target::Pg;
    let (src, dst) = ("errsrc_dup", "errdst_dup");
    mysql::fresh_db(src);
    let rows: Vec<String> = (1..=40).map(|i| format!("({i}, 'tag{}')", if i % 10 == 0 { 1 } else { i })).collect();
    mysql::exec(&[
        &format!("CREATE TABLE `{src}`.tags (id INT PRIMARY KEY, tag VARCHAR(20) NOT NULL)"),
        &format!("INSERT INTO `{src}`.tags VALUES {}", rows.join(",")),
    ]);
    target.fresh_namespace(dst);
    target.exec(&[format!("CREATE TABLE \"{dst}\".tags (id int, tag varchar(20) UNIQUE, _op text)")]);
    let dir = workdir();
    let text = plan("err-dup", src, dst, target, "ignore")
        .replace("route:", "write_mode: append\nmetadata:\n  - column: _op\n    field: op_type\nroute:");
    let p = write_plan(dir.path(), "plan.yaml", &text);
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    let dirty = dirty_rows(dir.path(), &p);
    // tag1 belongs to id 1 and to ids 10, 20, 30, 40: whichever of them the target got first
    // holds it; the other four are refused as duplicates.
    assert_eq!(dirty.len(), 4, "{dirty:?}");
    assert!(dirty.iter().all(|d| d.2.contains("duplicate key")), "{dirty:?}");
    let mut ids: Vec<i64> = dirty.iter().map(|d| d.1).collect();
    ids.sort();
    assert!(ids.iter().all(|i| [1, 10, 20, 30, 40].contains(i)), "{ids:?}");
    let schema = TableSchema {
        name: TableName::new(dst, "tags"),
        columns: vec![col("id", int(), true), col("tag", varchar(20), true), col("_op", varchar(10), true)],
        primary_key: vec![],
        unique_keys: vec![],
        version: 1,
    };
    assert_eq!(target.rows(dst, "tags", &schema).len(), 36);
}

#[test]
fn restart_policy_restarts_until_max_restarts_then_the_task_is_failed() {
    let target = Target::Maria;
    let (src, dst) = ("errsrc_restart", "errdst_restart");
    source(src);
    target.fresh_namespace(dst);
    target.create_table(dst, "people", &people(10, true));
    target.create_table(dst, "other", &other());
    let dir = workdir();
    let text = plan("err-restart", src, dst, target, "restart").replace("errors:\n", "errors:\n  max_restarts: 1\n");
    let p = write_plan(dir.path(), "plan.yaml", &text);
    let out = run_in(dir.path(), &["run", "-q", &p]);
    assert!(!out.status.success(), "a row that never writes must fail the task");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("after 1 restarts") && err.contains("write_error: restart"), "{err}");
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("state/err-restart/status.json")).unwrap()).unwrap();
    assert_eq!(st["state"], "failed", "{st}");
    assert_eq!(st["restarts"], 1, "{st}");
    // Nothing of the rejected row went to the archive: the policy is to retry, not to skip.
    let dirty = dirty_rows(dir.path(), &p);
    assert!(dirty.is_empty(), "{dirty:?}");
}

#[test]
fn postgres_bulk_batches_after_a_rejected_row_still_merge() {
    // The first bulk batch holds a bad row: its COPY and merge roll back to a savepoint (which
    // drops the session's staging table); later batches must recreate it.
    let target = Target::Pg;
    let (src, dst) = ("errsrc_bulk", "errdst_bulk");
    mysql::fresh_db(src);
    let rows: Vec<String> = (1..=400)
        .map(|id| {
            let name = if id == 10 { "n".repeat(20) } else { format!("p{id}") };
            format!("({id}, '{name}', 'note')")
        })
        .collect();
    mysql::exec(&[
        &format!("CREATE TABLE `{src}`.people (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, note VARCHAR(50) NULL)"),
        &format!("INSERT INTO `{src}`.people VALUES {}", rows.join(",")),
    ]);
    target.fresh_namespace(dst);
    target.create_table(dst, "people", &people(10, true));
    let dir = workdir();
    let text = plan("err-bulk", src, dst, target, "ignore")
        .replace("  chunk_rows: 16\n", "  chunk_rows: 1000\n")
        .replace("  workers: 2\n  batch_rows: 25\n", "  workers: 1\n  batch_rows: 100\n");
    let p = write_plan(dir.path(), "plan.yaml", &text);
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    let dirty = dirty_rows(dir.path(), &p);
    assert_eq!(dirty.iter().map(|d| d.1).collect::<Vec<_>>(), vec![10], "{dirty:?}");
    assert_eq!(target.rows(dst, "people", &people(10, true)).len(), 399);
}

#[test]
fn postgres_copy_spanning_batches_rolls_back_as_a_whole_and_archives_only_the_bad_rows() {
    // Exactly-once bulk batches of one table go into one open COPY; a row rejected in its
    // fourth batch fails the whole COPY: every batch of it is written again, and only the bad
    // rows reach the archive — in upsert (COPY, then merging) and in append mode (plain COPY).
    let target = Target::Pg;
    let src = "errsrc_span";
    mysql::fresh_db(src);
    let bad = [10, 350, 1999];
    let rows: Vec<String> = (1..=2000)
        .map(|id| {
            let name = if bad.contains(&id) { "n".repeat(20) } else { format!("p{id}") };
            format!("({id}, '{name}', 'note {id}')")
        })
        .collect();
    mysql::exec(&[
        &format!("CREATE TABLE `{src}`.people (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, note VARCHAR(50) NULL)"),
        &format!("INSERT INTO `{src}`.people VALUES {}", rows.join(",")),
    ]);
    let mut want = source_rows(src, "people", &people(10, true));
    want.retain(|r| !bad.iter().any(|b| r.starts_with(&format!("{b} | "))));
    assert_eq!(want.len(), 1997);
    for (mode, dst) in [("upsert", "errdst_span_up"), ("append", "errdst_span_app")] {
        target.fresh_namespace(dst);
        target.create_table(dst, "people", &people(10, true));
        let dir = workdir();
        let text = plan(&format!("err-span-{mode}"), src, dst, target, "ignore")
            .replace("  chunk_rows: 16\n", "  chunk_rows: 5000\n")
            .replace("  workers: 2\n  batch_rows: 25\n", "  workers: 1\n  batch_rows: 100\n")
            + &format!("semantics: exactly-once\nwrite_mode: {mode}\n");
        let p = write_plan(dir.path(), "plan.yaml", &text);
        ok(&run_in(dir.path(), &["run", "-q", &p]));
        let dirty = dirty_rows(dir.path(), &p);
        assert_eq!(dirty.iter().map(|d| d.1).collect::<Vec<_>>(), bad.to_vec(), "{mode}: {dirty:?}");
        assert_eq!(target.rows(dst, "people", &people(10, true)), want, "{mode}");
    }
}

#[test]
fn a_latin1_target_gets_western_text_exactly_and_refuses_rows_latin1_cannot_hold() {
    // Bulk batches into latin1 tables are transcoded by ferry; a batch with a character latin1
    // has not goes as utf8mb4, and the server refuses just that row.
    let target = Target::Maria;
    let (src, dst) = ("l1src", "l1dst");
    mysql::fresh_db(src);
    let rows: Vec<String> = (1..=300)
        .map(|id| if id == 77 { format!("({id}, 'smile 😀')") } else { format!("({id}, 'José Müller € {id}')") })
        .collect();
    mysql::exec(&[
        &format!("CREATE TABLE `{src}`.t (id INT PRIMARY KEY, s VARCHAR(50) NOT NULL) CHARACTER SET utf8mb4"),
        &format!("INSERT INTO `{src}`.t VALUES {}", rows.join(",")),
        &format!("DROP DATABASE IF EXISTS `{dst}`"),
        &format!("CREATE DATABASE `{dst}` CHARACTER SET latin1"),
        &format!("CREATE TABLE `{dst}`.t (id INT PRIMARY KEY, s VARCHAR(50) NOT NULL) CHARACTER SET latin1"),
    ]);
    let dir = workdir();
    let text = plan("latin1", src, dst, target, "ignore")
        .replace("  chunk_rows: 16\n", "  chunk_rows: 1000\n")
        .replace("  workers: 2\n  batch_rows: 25\n", "  workers: 1\n  batch_rows: 100\n");
    let p = write_plan(dir.path(), "plan.yaml", &text);
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    let dirty = dirty_rows(dir.path(), &p);
    assert_eq!(dirty.iter().map(|d| d.1).collect::<Vec<_>>(), vec![77], "{dirty:?}");
    let schema = TableSchema {
        name: TableName::new(dst, "t"),
        columns: vec![col("id", int(), false), col("s", varchar(50), false)],
        primary_key: vec![0],
        unique_keys: vec![],
        version: 1,
    };
    let mut want = source_rows(src, "t", &schema);
    want.retain(|r| !r.starts_with("77 |"));
    assert_eq!(target.rows(dst, "t", &schema), want);
}

/// A dirty archive that cannot be used (wrong secret key, missing bucket) stops the run before
/// it starts, says which setting to check, and never shows the secret.
#[test]
fn an_unusable_s3_archive_fails_the_run_at_once_without_showing_the_secret() {
    let dir = workdir();
    for (bucket, secret) in [("ferry-test", "not-the-secret-key"), ("no-such-bucket", "ferry-test-secret")] {
        let text = format!(
            "task: s3-bad\nsource:\n  type: datagen\n  changes: 100\nwrite_mode: append\ntarget:\n  type: \"null\"\n\
             errors:\n  dirty_archive: s3://{bucket}/x\ns3:\n  endpoint: {}\n  access_key_id: {}\n  \
             secret_access_key: ${{env:FERRY_TEST_BAD_SECRET}}\nruntime:\n  state: ./state\n",
            mysql::url("FERRY_TEST_S3_ENDPOINT"),
            mysql::url("FERRY_TEST_S3_KEY")
        );
        let p = write_plan(dir.path(), "plan.yaml", &text);
        let started = std::time::Instant::now();
        let out = ferry()
            .current_dir(dir.path())
            .env("FERRY_TEST_BAD_SECRET", secret)
            .args(["run", "-q", &p])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bucket}: {err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "no restarts for a bad archive");
        assert!(err.contains(&format!("s3://{bucket}/x")) && err.contains("errors.dirty_archive"), "{err}");
        assert!(!err.contains(secret), "{err}");
    }
}
