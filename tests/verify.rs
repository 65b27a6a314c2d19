//! `ferry verify` against the private servers: equal after a run (MariaDB → MariaDB and →
//! PostgreSQL, the all-types table), each injected target fault reported exactly (key, column,
//! both values) and repaired by `repair.sql`; through a plan's filter, rename, dropped and
//! function columns; and while the task runs under writes (no false difference, a corruption
//! found).

mod common;

use common::mysql::{exec, fresh_db, main_url, ALL_TYPES, MAX_ROW, MIN_ROW, NULL_ROW};
use common::sql::Target;
use common::{ok, run_in, workdir, write_plan};
use serde_json::Value as Json;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

fn plan(task: &str, source_db: &str, target: Target, target_db: &str, bounded: bool, extra: &str) -> String {
    format!(
        "task: {task}\nsource:\n  type: mariadb\n  url: {}\n  bounded: {bounded}\ntarget:\n{}tables:\n  include: ['{source_db}\\..*']\n\
         route:\n  database: {target_db}\nsemantics: exactly-once\n\
         runtime:\n  workers: 2\n  checkpoint_interval: 200ms\n  state: ./state\n{extra}",
        main_url(),
        target.plan_section()
    )
}

/// Runs `ferry verify PLAN --output out` (plus `args`) in `dir`.
fn verify(dir: &Path, plan: &str, args: &[&str]) -> Output {
    let mut all = vec!["verify", "-q", plan, "--output", "out"];
    all.extend_from_slice(args);
    run_in(dir, &all)
}

fn lines_of(dir: &Path, file: &str) -> Vec<Json> {
    std::fs::read_to_string(dir.join("out").join(file))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{file}: {e}: {l}")))
        .collect()
}

/// The newest `ferry verify --output out`'s `summary.json`.
fn summary_of(dir: &Path) -> Json {
    serde_json::from_str(&std::fs::read_to_string(dir.join("out/summary.json")).unwrap()).unwrap()
}

fn show(out: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The source's all-types rows: edge values (with times a PostgreSQL `time` holds: it refuses
/// negative ones and 24 h or more, as the type-loss report says), NULLs and a row of in-range
/// values (5).
fn all_types_source(db: &str) {
    fresh_db(db);
    let min = MIN_ROW
        .replace("'-838:59:59', '-00:00:01.50', '-12:34:56.789012'", "'00:00:00', '00:00:00.01', '00:00:00.000001'");
    let max = MAX_ROW
        .replace("'838:59:59', '838:59:58.99', '838:59:58.999999'", "'23:59:59', '23:59:59.99', '23:59:59.999999'");
    let in_range = MIN_ROW
        .replace("VALUES (1,", "VALUES (5,")
        .replace("'-838:59:59', '-00:00:01.50', '-12:34:56.789012'", "'12:00:00', '00:00:01.50', '23:59:59.999999'");
    exec(&[&format!("USE {db}"), ALL_TYPES, &min, &max, NULL_ROW, &in_range]);
}

/// One changed value per type family on row 5, a deleted row (1), an extra row (100) and a
/// changed key (2 → 200), in the target's dialect.
fn faults(target: Target, db: &str) -> Vec<String> {
    let t = match target {
        Target::Maria | Target::Outage => format!("`{db}`.all_types"),
        _ => format!("\"{db}\".all_types"),
    };
    let (bits, bytes, json, ts) = match target.dialect() {
        ferry::connectors::sql::encode::Dialect::Mysql => {
            ("b'101'", "x'01'", "'{\"z\": 1}'", "'2001-01-01 00:00:00.5'")
        }
        ferry::connectors::sql::encode::Dialect::Postgres => {
            ("B'0000000101'", "'\\x01'::bytea", "'{\"z\": 1}'::json", "'2001-01-01 00:00:00.5+00'")
        }
    };
    vec![
        format!(
            "UPDATE {t} SET ti = ti + 1, biu = 7, d2 = 1.25, f = 2.5, db = 3.25, dt = '2001-01-01', \
             tm6 = '01:02:03.000004', dtm6 = '2001-01-01 00:00:00.000001', ts = {ts}, bit10 = {bits}, e = 'medium', \
             st = 'c', c = 'other', vc = 'changed', vb = {bytes}, js = {json}, yr = 1999 WHERE id = 5"
        ),
        format!("DELETE FROM {t} WHERE id = 1"),
        format!("INSERT INTO {t} (id, vc) VALUES (100, 'extra')"),
        format!("UPDATE {t} SET id = 200 WHERE id = 2"),
    ]
}

const CHANGED: &[&str] =
    &["ti", "biu", "d2", "f", "db", "dt", "tm6", "dtm6", "ts", "bit10", "e", "st", "c", "vc", "vb", "js", "yr"];

fn ids(v: &[Json]) -> BTreeSet<String> {
    v.iter().map(|l| l["key"]["id"].as_str().unwrap().to_string()).collect()
}

fn all_types_verify_reports_each_fault_and_repairs(target: Target) {
    let tag = target.tag();
    let (src, dst) = (format!("ver_at_src_{tag}"), format!("ver_at_dst_{tag}"));
    all_types_source(&src);
    target.fresh_namespace(&dst);
    let dir = workdir();
    let p = write_plan(dir.path(), "plan.yaml", &plan(&format!("ver-at-{tag}"), &src, target, &dst, true, ""));
    ok(&run_in(dir.path(), &["run", "-q", &p]));

    let first = verify(dir.path(), &p, &[]);
    assert_eq!(first.status.code(), Some(0), "a fresh copy verifies equal:\n{}", show(&first));
    assert!(show(&first).contains("EQUAL"), "{}", show(&first));

    target.exec(&faults(target, &dst));
    let found = verify(dir.path(), &p, &[]);
    assert_eq!(found.status.code(), Some(1), "{}", show(&found));
    let diffs = lines_of(dir.path(), "diff.jsonl");
    let columns: BTreeSet<&str> = diffs.iter().map(|d| d["column"].as_str().unwrap()).collect();
    assert_eq!(columns, CHANGED.iter().copied().collect(), "one line per changed column: {diffs:#?}");
    assert!(diffs.iter().all(|d| d["key"]["id"] == "5"), "{diffs:#?}");
    assert!(diffs.iter().all(|d| d["source"] != d["target"]), "{diffs:#?}");
    let vc = diffs.iter().find(|d| d["column"] == "vc").unwrap();
    assert_eq!((vc["source"].as_str(), vc["target"].as_str()), (Some("😀 four-byte"), Some("changed")));
    let missing = ids(&lines_of(dir.path(), "missing.jsonl"));
    let extra = ids(&lines_of(dir.path(), "extra.jsonl"));
    assert_eq!(missing, ["1", "2"].map(String::from).into(), "deleted row and the old key of the changed one");
    assert_eq!(extra, ["100", "200"].map(String::from).into(), "extra row and the new key of the changed one");
    let summary = summary_of(dir.path());
    let t = &summary["tables"][0];
    assert_eq!(
        (t["different"].as_u64(), t["only_source"].as_u64(), t["only_target"].as_u64()),
        (Some(1), Some(2), Some(2))
    );
    assert_eq!(t["equal"].as_u64(), Some(1), "row 3 (NULLs) is untouched: {t}");

    let repair = std::fs::read_to_string(dir.path().join("out/repair.sql")).unwrap();
    target.exec(&repair.split(";\n").filter(|s| !s.trim().is_empty()).map(String::from).collect::<Vec<_>>());
    let again = verify(dir.path(), &p, &[]);
    assert_eq!(again.status.code(), Some(0), "repair.sql makes the target equal:\n{repair}\n{}", show(&again));
}

#[test]
fn mariadb_to_mariadb_all_types_verify_reports_each_fault_exactly_and_repair_sql_fixes_it() {
    all_types_verify_reports_each_fault_and_repairs(Target::Maria);
}

#[test]
fn mariadb_to_postgres_all_types_verify_reports_each_fault_exactly_and_repair_sql_fixes_it() {
    all_types_verify_reports_each_fault_and_repairs(Target::Pg);
}

/// Per digested type, a table `(id, v)` and the values of its rows 1, 2, … (SQL literals of the
/// source): edge values, NULL, and texts that test the digest's encoding (empty, spaces,
/// digits and `N`, COPY's escapes, latin1's euro sign and C1 byte, four-byte UTF-8).
const DIGEST_GOLDEN: &[(&str, &str, &[&str])] = &[
    ("ti", "TINYINT", &["-128", "127", "0", "-1", "NULL"]),
    ("tu", "TINYINT UNSIGNED", &["0", "255", "NULL"]),
    ("si", "SMALLINT", &["-32768", "32767", "NULL"]),
    ("su", "SMALLINT UNSIGNED", &["0", "65535"]),
    ("mi", "MEDIUMINT", &["-8388608", "8388607", "NULL"]),
    ("mu", "MEDIUMINT UNSIGNED", &["0", "16777215"]),
    ("ii", "INT", &["-2147483648", "2147483647", "NULL"]),
    ("iu", "INT UNSIGNED", &["0", "4294967295"]),
    ("bi", "BIGINT", &["-9223372036854775808", "9223372036854775807", "NULL"]),
    ("bu", "BIGINT UNSIGNED", &["0", "18446744073709551615", "NULL"]),
    (
        "c_l1",
        "CHAR(12) CHARACTER SET latin1",
        &["''", "'a'", "'é€ '", "x'81'", "'N'", "'3:abc'", "'tab\\there'", "NULL"],
    ),
    (
        "v_l1",
        "VARCHAR(20) CHARACTER SET latin1",
        &["''", "' '", "'a  '", "'é€'", "x'81'", "'back\\\\slash'", "'line\\nbreak'", "NULL"],
    ),
    ("t_l1", "TEXT CHARACTER SET latin1", &["'ÿ'", "'x'", "NULL"]),
    ("c_u8", "CHAR(12) CHARACTER SET utf8mb4", &["''", "'ü'", "'😀 '", "'N'", "NULL"]),
    ("v_u8", "VARCHAR(20) CHARACTER SET utf8mb4", &["''", "'a  '", "'😀'", "'tab\\there'", "'1,2'", "NULL"]),
    ("t_u8", "TEXT CHARACTER SET utf8mb4", &["'日本語'", "''", "NULL"]),
    ("v_u3", "VARCHAR(20) CHARACTER SET utf8mb3", &["'ü'", "'x'"]),
    ("v_as", "VARCHAR(20) CHARACTER SET ascii", &["'plain'", "''", "NULL"]),
];

/// The golden test of range digests, per type: MariaDB's `CRC32`/`CRC32C` over its own bytes
/// equal the bytes ferry hashes for the same values read back from the target (MariaDB: its
/// server's digest of the converted column; PostgreSQL: ferry's from `COPY` text) — every
/// table is found equal *by digest*, not only equal; then one changed value per table is
/// found, as a difference of that row and column.
fn digest_golden(target: Target) {
    let tag = target.tag();
    let (src, dst) = (format!("ver_dg_src_{tag}"), format!("ver_dg_dst_{tag}"));
    fresh_db(&src);
    let mut sqls = vec![format!("USE {src}")];
    for (t, ty, values) in DIGEST_GOLDEN {
        sqls.push(format!("CREATE TABLE {t} (id INT PRIMARY KEY, v {ty} NULL)"));
        let rows: Vec<String> = values.iter().enumerate().map(|(i, v)| format!("({}, {v})", i + 1)).collect();
        sqls.push(format!("INSERT INTO {t} VALUES {}", rows.join(", ")));
    }
    exec(&sqls.iter().map(String::as_str).collect::<Vec<_>>());
    target.fresh_namespace(&dst);
    let dir = workdir();
    let p = write_plan(dir.path(), "plan.yaml", &plan(&format!("ver-dg-{tag}"), &src, target, &dst, true, ""));
    ok(&run_in(dir.path(), &["run", "-q", &p]));

    let first = verify(dir.path(), &p, &[]);
    assert_eq!(first.status.code(), Some(0), "{}", show(&first));
    let summary = summary_of(dir.path());
    for (t, _, values) in DIGEST_GOLDEN {
        let r = summary["tables"].as_array().unwrap().iter().find(|r| r["table"] == format!("{dst}.{t}")).unwrap();
        let n = values.len() as u64;
        assert_eq!(
            (r["equal"].as_u64(), r["equal_by_digest"].as_u64()),
            (Some(n), Some(n)),
            "{t}: the server's digest bytes are ferry's for every value: {r}"
        );
    }

    let q = |t: &str| match target {
        Target::Maria | Target::Outage => format!("`{dst}`.{t}"),
        _ => format!("\"{dst}\".{t}"),
    };
    let changes: Vec<String> = DIGEST_GOLDEN
        .iter()
        .map(|(t, ty, _)| {
            let v = if ty.contains("INT") { "1" } else { "'changed'" };
            format!("UPDATE {} SET v = {v} WHERE id = 2", q(t))
        })
        .collect();
    target.exec(&changes);
    let found = verify(dir.path(), &p, &[]);
    assert_eq!(found.status.code(), Some(1), "{}", show(&found));
    let diffs = lines_of(dir.path(), "diff.jsonl");
    let tables: BTreeSet<String> = diffs.iter().map(|d| d["table"].as_str().unwrap().to_string()).collect();
    let want: BTreeSet<String> = DIGEST_GOLDEN.iter().map(|(t, _, _)| format!("{dst}.{t}")).collect();
    assert_eq!(tables, want, "one changed value in every table: {diffs:#?}");
    assert_eq!(diffs.len(), DIGEST_GOLDEN.len(), "{diffs:#?}");
    assert!(diffs.iter().all(|d| d["key"]["id"] == "2" && d["column"] == "v"), "{diffs:#?}");
}

#[test]
fn range_digests_of_mariadb_and_postgres_agree_on_every_integer_and_text_value_and_find_a_change() {
    digest_golden(Target::Pg);
}

#[test]
fn range_digests_of_two_mariadb_servers_agree_across_character_sets_and_find_a_change() {
    digest_golden(Target::Maria);
}

/// A filter, a rename, a dropped column, a constant and a function column, a time-dependent
/// column: verify compares through them, and a target row the filter would have kept out is
/// found.
#[test]
fn verify_compares_through_the_plans_transform_and_finds_a_row_the_filter_excludes() {
    let (src, dst) = ("ver_tr_src", "ver_tr_dst");
    fresh_db(src);
    exec(&[
        &format!(
            "CREATE TABLE {src}.items (id INT PRIMARY KEY, qty INT NOT NULL, name VARCHAR(20), secret VARCHAR(20))"
        ),
        &format!("USE {src}"),
        "INSERT INTO items SELECT seq, seq % 7, CONCAT('n', seq), 'pw' FROM seq_1_to_3000",
    ]);
    let target = Target::Maria;
    target.fresh_namespace(dst);
    let extra = "transforms:\n  - tables: 'ver_tr_src\\.items'\n    filter: qty > 2\n    rename: {name: label}\n    drop: [secret]\n    \
                 add: {region: \"'eu'\", tag: \"concat(name, '-', qty)\", seen: 'now()'}\n\
                 verify:\n  chunk_rows: 500\n";
    let dir = workdir();
    let text = plan("ver-tr", src, target, dst, true, extra);
    let p = write_plan(dir.path(), "plan.yaml", &text);
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    let out = verify(dir.path(), &p, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let shown = show(&out);
    assert!(shown.contains("not compared: seen"), "the now() column is named: {shown}");
    let summary = summary_of(dir.path());
    let kept = (1..=3000).filter(|i| i % 7 > 2).count() as u64;
    assert_eq!(summary["tables"][0]["equal"].as_u64(), Some(kept), "{summary}");

    // A row the filter keeps out (qty 1), and a wrong function column.
    target.exec(&[
        format!(
            "INSERT INTO {dst}.items (id, qty, label, region, tag, seen) VALUES (5000, 1, 'x', 'eu', 'x-1', NOW())"
        ),
        format!("UPDATE {dst}.items SET tag = 'wrong' WHERE id = 3"),
    ]);
    let out = verify(dir.path(), &p, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert_eq!(ids(&lines_of(dir.path(), "extra.jsonl")), ["5000".to_string()].into());
    let diffs = lines_of(dir.path(), "diff.jsonl");
    assert_eq!(diffs.len(), 1, "{diffs:#?}");
    assert_eq!((diffs[0]["column"].as_str(), diffs[0]["source"].as_str()), (Some("tag"), Some("n3-3")));

    // `where` narrows both sides: the extra row (qty 1) is outside it, the wrong tag (qty 3) too.
    let narrowed = text.replace(
        "verify:\n  chunk_rows: 500\n",
        "verify:\n  chunk_rows: 500\n  tables:\n    - tables: '.*'\n      where: qty >= 4\n",
    );
    let q = write_plan(dir.path(), "narrow.yaml", &narrowed);
    let out = verify(dir.path(), &q, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    // A condition on a column the target does not have is a plan error naming the key.
    let bad = text.replace(
        "verify:\n  chunk_rows: 500\n",
        "verify:\n  tables:\n    - tables: '.*'\n      where: secret = 'pw'\n",
    );
    let b = write_plan(dir.path(), "bad.yaml", &bad);
    let out = verify(dir.path(), &b, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(show(&out).contains("verify.tables[0].where") && show(&out).contains("secret"), "{}", show(&out));
}

/// Kills the task if the test ends early.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// While the task runs and a workload keeps writing: five verifications in a row report no
/// difference, and a corruption of the target made meanwhile (on keys the workload leaves
/// alone) is found.
#[test]
fn verify_while_the_task_runs_under_writes_reports_no_false_difference_and_finds_a_corruption() {
    let (src, dst) = ("ver_live_src", "ver_live_dst");
    fresh_db(src);
    exec(&[
        &format!("CREATE TABLE {src}.acct (id INT PRIMARY KEY, balance BIGINT NOT NULL, note VARCHAR(40))"),
        &format!("USE {src}"),
        "INSERT INTO acct SELECT seq, 1000, 'start' FROM seq_1_to_20000",
    ]);
    let target = Target::Pg;
    target.fresh_namespace(dst);
    let dir = workdir();
    let p = write_plan(
        dir.path(),
        "plan.yaml",
        &plan("ver-live", src, target, dst, false, "verify:\n  chunk_rows: 4000\n"),
    );
    let task = common::ferry().current_dir(dir.path()).args(["run", "-q", &p]).spawn().unwrap();
    let mut task = KillOnDrop(task);
    // The snapshot is in once the target has every row (the table appears when the run creates it).
    let deadline = Instant::now() + Duration::from_secs(120);
    let count = format!("SELECT count(*) FROM \"{dst}\".acct");
    loop {
        let n: Option<i64> = ferry::runtime::io_runtime().block_on(async {
            let c = common::sql::pg_client_at(&target.pg_url()).await;
            c.query_one(count.as_str(), &[]).await.ok().map(|r| r.get(0))
        });
        if n == Some(20_000) {
            break;
        }
        assert!(Instant::now() < deadline, "the snapshot did not arrive");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Writes on ids 1..=10000 (transfers, inserts above 100000, deletes) until told to stop.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let a = 1 + (n * 7919) % 10_000;
                let b = 1 + (n * 104_729) % 10_000;
                exec(&[
                    "BEGIN",
                    &format!("UPDATE {src}.acct SET balance = balance - 1, note = 'moved {n}' WHERE id = {a}"),
                    &format!("UPDATE {src}.acct SET balance = balance + 1 WHERE id = {b}"),
                    &format!("INSERT INTO {src}.acct VALUES ({}, {n}, 'new')", 100_000 + n),
                    &format!("DELETE FROM {src}.acct WHERE id = {}", 100_000 + n / 2),
                    "COMMIT",
                ]);
            }
            n
        })
    };
    let mut rereads = 0;
    for _ in 0..5 {
        let out = verify(dir.path(), &p, &[]);
        assert_eq!(out.status.code(), Some(0), "a false difference while the task runs:\n{}", show(&out));
        let summary: Json =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/summary.json")).unwrap()).unwrap();
        rereads += summary["tables"][0]["rereads"].as_u64().unwrap();
    }
    // The first read of each side saw the target lag somewhere: the re-reads settled it.
    assert!(rereads > 0, "the verifications never met the target lagging behind the writes");
    target.exec(&[format!("UPDATE \"{dst}\".acct SET note = 'corrupt' WHERE id = 15000")]);
    let out = verify(dir.path(), &p, &[]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().unwrap();
    let _ = std::process::Command::new("kill").args(["-TERM", &task.0.id().to_string()]).status();
    let _ = task.0.wait();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let diffs = lines_of(dir.path(), "diff.jsonl");
    assert_eq!(diffs.len(), 1, "only the corruption: {diffs:#?}");
    assert_eq!((diffs[0]["key"]["id"].as_str(), diffs[0]["target"].as_str()), (Some("15000"), Some("corrupt")));
    assert!(written > 20, "the workload kept writing through the verifications ({written} transactions)");
}

/// Copies the all-types source `src` into a files target in `format` (exactly-once) and
/// checks that `ferry verify` finds it equal; returns the working directory and the plan.
fn files_copy_verified_equal(src: &str, format: &str) -> (tempfile::TempDir, String) {
    all_types_source(src);
    let dir = workdir();
    let text = format!(
        "task: ver-at-{format}\nsource:\n  type: mariadb\n  url: {}\n  bounded: true\ntarget:\n  type: files\n  path: ./out-files\n  format: {format}\n\
         tables:\n  include: ['{src}\\..*']\nsemantics: exactly-once\nruntime:\n  workers: 2\n  checkpoint_interval: 200ms\n  state: ./state\n",
        main_url()
    );
    let p = write_plan(dir.path(), "plan.yaml", &text);
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    let first = verify(dir.path(), &p, &[]);
    assert_eq!(first.status.code(), Some(0), "{}", show(&first));
    (dir, p)
}

/// MariaDB → files: equal after a run; a later file that changes row 5, deletes row 1 and adds
/// row 100 is reported exactly; without it the files verify equal again.
#[test]
fn mariadb_to_files_all_types_verify_reads_the_files_as_applied_in_name_order() {
    let src = "ver_at_src_f";
    let (dir, p) = files_copy_verified_equal(src, "jsonl");

    let table_dir = dir.path().join("out-files").join(src).join("all_types");
    let lines = common::table_lines(&dir.path().join("out-files"), src, "all_types");
    let mut row5 = lines.iter().find(|l| l["id"] == 5).unwrap().clone();
    row5["vc"] = Json::from("changed");
    row5["ti"] = Json::from(-127);
    let mut gone = lines.iter().find(|l| l["id"] == 1).unwrap().clone();
    gone["__deleted"] = Json::from(true);
    let mut extra = lines.iter().find(|l| l["id"] == 3).unwrap().clone();
    extra["id"] = Json::from(100);
    let injected = table_dir.join("zz-injected.jsonl");
    std::fs::write(&injected, format!("{row5}\n{gone}\n{extra}\n")).unwrap();
    // A file no commit manifest lists is not committed data: verify does not read it.
    let unlisted = verify(dir.path(), &p, &[]);
    assert_eq!(unlisted.status.code(), Some(0), "{}", show(&unlisted));
    // Committed, as a writer would commit it: listed by a manifest.
    let manifest = dir.path().join("out-files/_committed/ver-at-jsonl/e9999999999-w999.json");
    let files = serde_json::json!({"epoch": 9999999999u64, "worker": 999, "files": [format!("{src}/all_types/zz-injected.jsonl")]});
    std::fs::write(&manifest, files.to_string()).unwrap();
    let found = verify(dir.path(), &p, &[]);
    assert_eq!(found.status.code(), Some(1), "{}", show(&found));
    let diffs = lines_of(dir.path(), "diff.jsonl");
    let cols: BTreeSet<&str> = diffs.iter().map(|d| d["column"].as_str().unwrap()).collect();
    assert_eq!(cols, ["ti", "vc"].into(), "{diffs:#?}");
    assert_eq!(ids(&lines_of(dir.path(), "missing.jsonl")), ["1".to_string()].into());
    assert_eq!(ids(&lines_of(dir.path(), "extra.jsonl")), ["100".to_string()].into());
    std::fs::remove_file(injected).unwrap();
    std::fs::remove_file(manifest).unwrap();
    let again = verify(dir.path(), &p, &[]);
    assert_eq!(again.status.code(), Some(0), "{}", show(&again));
}

/// MariaDB → Parquet files: equal after a run (every type read back from Parquet); a value
/// changed and a row deleted in the source afterwards are reported exactly.
#[test]
fn mariadb_to_parquet_files_all_types_verify_reads_the_parquet_files_back() {
    let src = "ver_at_src_pq";
    let (dir, p) = files_copy_verified_equal(src, "parquet");
    exec(&[
        &format!("UPDATE {src}.all_types SET ti = -127 WHERE id = 5"),
        &format!("DELETE FROM {src}.all_types WHERE id = 1"),
    ]);
    let found = verify(dir.path(), &p, &[]);
    assert_eq!(found.status.code(), Some(1), "{}", show(&found));
    let diffs = lines_of(dir.path(), "diff.jsonl");
    let cols: BTreeSet<&str> = diffs.iter().map(|d| d["column"].as_str().unwrap()).collect();
    assert_eq!(cols, ["ti"].into(), "{diffs:#?}");
    assert!(lines_of(dir.path(), "missing.jsonl").is_empty());
    assert_eq!(ids(&lines_of(dir.path(), "extra.jsonl")), ["1".to_string()].into());
}

/// `verify.continuous`: the running task sweeps in the background; a corruption of a verified
/// chunk whose rows change afterwards is in `verify/events.jsonl` and `verify/last.json` within
/// two intervals, and sweeps before it found the copy equal.
#[test]
fn continuous_verification_finds_a_corruption_of_a_changed_chunk_within_two_intervals_reading_only_that_chunk() {
    let (src, dst) = ("ver_cont_src", "ver_cont_dst");
    fresh_db(src);
    exec(&[
        &format!("CREATE TABLE {src}.acct (id INT PRIMARY KEY, balance BIGINT NOT NULL)"),
        &format!("USE {src}"),
        "INSERT INTO acct SELECT seq, 1000 FROM seq_1_to_5000",
    ]);
    let target = Target::Maria;
    target.fresh_namespace(dst);
    let dir = workdir();
    let extra = "verify:\n  chunk_rows: 1000\n  continuous: true\n  interval: 2s\n  full_sweep_interval: 1h\n  \
                 max_rows_per_second: 0\n";
    let p = write_plan(dir.path(), "plan.yaml", &plan("ver-cont", src, target, dst, false, extra));
    let mut task = KillOnDrop(common::ferry().current_dir(dir.path()).args(["run", "-q", &p]).spawn().unwrap());
    let state = dir.path().join("state/ver-cont/verify");
    let read = |f: &str| std::fs::read_to_string(state.join(f)).ok();
    // A sweep that found the copy equal.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let last: Option<Json> = read("last.json").and_then(|t| serde_json::from_str(&t).ok());
        if last.as_ref().is_some_and(|l| l["equal"] == true && l["tables"][0]["equal"] == 5000) {
            break;
        }
        assert!(Instant::now() < deadline, "no equal sweep: {last:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(read("events.jsonl"), None, "no difference yet");
    let shown = run_in(dir.path(), &["verify", "--last", &p]);
    assert_eq!(shown.status.code(), Some(0), "{}", show(&shown));
    assert!(show(&shown).contains("EQUAL"), "{}", show(&shown));
    // Corrupt id 2500, then change the chunk's other rows at the source; corrupt id 4500 too,
    // in a chunk nothing changes: the passes between full sweeps (1 h) do not read it.
    target.exec(&[
        format!("UPDATE `{dst}`.acct SET balance = -1 WHERE id = 2500"),
        format!("UPDATE `{dst}`.acct SET balance = -1 WHERE id = 4500"),
    ]);
    exec(&[&format!("UPDATE {src}.acct SET balance = balance + 1 WHERE id BETWEEN 2400 AND 2450")]);
    let corrupted = Instant::now();
    let found = loop {
        let events = read("events.jsonl").unwrap_or_default();
        if !events.is_empty() {
            break events;
        }
        assert!(
            corrupted.elapsed() < Duration::from_secs(4) + Duration::from_secs(3),
            "not found within two intervals"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let event: Json = serde_json::from_str(found.lines().next().unwrap()).unwrap();
    assert_eq!((event["table"].as_str(), event["different"].as_u64()), (Some("ver_cont_dst.acct"), Some(1)), "{found}");
    let last: Json = serde_json::from_str(&read("last.json").unwrap()).unwrap();
    assert_eq!(last["pass"], "changed", "{last}");
    assert_eq!(last["diffs"].as_array().map(Vec::len), Some(1), "only the changed chunk was read: {last}");
    assert_eq!(last["tables"][0]["source_rows"], 1000, "one chunk: {last}");
    assert_eq!(last["diffs"][0]["key"]["id"], "2500", "{last}");
    assert_eq!((last["diffs"][0]["source"].as_str(), last["diffs"][0]["target"].as_str()), (Some("1000"), Some("-1")));
    // The next pass reads every chunk of the table found different: its difference stands (for
    // `--last` and the alert rules), now with the other corruption too.
    let deadline = Instant::now() + Duration::from_secs(10);
    let again = loop {
        let next: Json = serde_json::from_str(&read("last.json").unwrap()).unwrap();
        if next["sweep"].as_u64() > last["sweep"].as_u64() {
            break next;
        }
        assert!(Instant::now() < deadline, "no later pass: {next}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!((again["pass"].as_str(), again["equal"].as_bool()), (Some("changed"), Some(false)), "{again}");
    let ids: BTreeSet<&str> =
        again["diffs"].as_array().unwrap().iter().map(|d| d["key"]["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["2500", "4500"].into(), "{again}");
    // What a status command shows: the newest sweep, without reading the servers.
    let shown = run_in(dir.path(), &["verify", "--last", &p]);
    assert_eq!(shown.status.code(), Some(1), "{}", show(&shown));
    assert!(show(&shown).contains("ver_cont_dst.acct") && show(&shown).contains("DIFFERENT"), "{}", show(&shown));
    let _ = std::process::Command::new("kill").args(["-TERM", &task.0.id().to_string()]).status();
    let _ = task.0.wait();
}

/// A PostgreSQL source: equal after a run into MariaDB (numeric, timestamptz, bytea, jsonb,
/// boolean, date through their MariaDB forms), and a changed target value is found.
#[test]
fn postgres_source_verify_is_equal_after_a_run_and_finds_a_changed_value() {
    use common::pg::{forget_slot, fresh_src_schema, src_exec, src_url};
    let (ns, dst, task) = ("ver_pg_src", "ver_pg_dst", "ver-pg");
    fresh_src_schema(ns);
    forget_slot(task);
    src_exec(&[
        &format!(
            "CREATE TABLE {ns}.items (id int PRIMARY KEY, qty int, name text, price numeric(10,2), at timestamptz(6), \
             data bytea, doc jsonb, flag boolean, d date)"
        ),
        &format!(
            "INSERT INTO {ns}.items SELECT g, g % 9, 'n' || g, g * 1.5, '2026-01-01 00:00:00.25+00'::timestamptz + g * interval '1 minute', \
             decode(md5(g::text), 'hex'), jsonb_build_object('g', g, 'a', 'x'), g % 2 = 0, '2020-01-01'::date + g \
             FROM generate_series(1, 5000) g"
        ),
        // Integers and texts only: compared by digests (PostgreSQL's from COPY text, MariaDB's
        // on its server).
        &format!("CREATE TABLE {ns}.plain (id int PRIMARY KEY, n bigint, s text, c char(5), v varchar(10))"),
        &format!(
            "INSERT INTO {ns}.plain SELECT g, CASE WHEN g % 7 = 0 THEN NULL ELSE g::bigint * 1000003 END, 'ü\t' || g, \
             CASE WHEN g % 5 = 0 THEN NULL ELSE 'c' || (g % 10) END, repeat(' ', g % 3) FROM generate_series(1, 3000) g"
        ),
    ]);
    let target = Target::Maria;
    target.fresh_namespace(dst);
    let dir = workdir();
    let text = format!(
        "task: {task}\nsource:\n  type: postgres\n  url: {}\n  bounded: true\n  chunk_rows: 1000\ntarget:\n{}\
         tables:\n  include: ['{ns}\\.(items|plain)']\nroute:\n  database: {dst}\nsemantics: exactly-once\n\
         runtime:\n  workers: 2\n  checkpoint_interval: 200ms\n  state: ./state\nverify:\n  chunk_rows: 1000\n",
        src_url(),
        target.plan_section()
    );
    let p = write_plan(dir.path(), "plan.yaml", &text);
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    let first = verify(dir.path(), &p, &[]);
    assert_eq!(first.status.code(), Some(0), "{}", show(&first));
    let summary = summary_of(dir.path());
    let plain = summary["tables"].as_array().unwrap().iter().find(|r| r["table"] == format!("{dst}.plain")).unwrap();
    assert_eq!(plain["equal_by_digest"].as_u64(), Some(3000), "{plain}");
    target.exec(&[
        format!("UPDATE `{dst}`.items SET price = 0 WHERE id = 77"),
        format!("UPDATE `{dst}`.plain SET v = ' ' WHERE id = 9"),
    ]);
    let found = verify(dir.path(), &p, &[]);
    assert_eq!(found.status.code(), Some(1), "{}", show(&found));
    let mut diffs = lines_of(dir.path(), "diff.jsonl");
    diffs.sort_by_key(|d| d["table"].as_str().unwrap().to_string());
    assert_eq!(diffs.len(), 2, "{diffs:#?}");
    assert_eq!(
        (diffs[1]["table"].as_str(), diffs[1]["key"]["id"].as_str(), diffs[1]["column"].as_str()),
        (Some(&*format!("{dst}.plain")), Some("9"), Some("v")),
        "trailing spaces are compared in a VARCHAR"
    );
    assert_eq!(
        (
            diffs[0]["key"]["id"].as_str(),
            diffs[0]["column"].as_str(),
            diffs[0]["source"].as_str(),
            diffs[0]["target"].as_str()
        ),
        (Some("77"), Some("price"), Some("115.5"), Some("0"))
    );
    forget_slot(task);
}
