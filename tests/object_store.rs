//! Object storage end to end, on the S3-compatible test server: a 2-process cluster whose
//! processes share nothing but the S3 state store and the S3 files target (each runs in a
//! working directory of its own), and the all-types table written as Parquet, read back by an
//! independent reader (pyarrow) value by value, type by type.

mod common;

use common::mysql::{exec, fresh_db, main_url, read_table};
use common::*;
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The source rows as the files sink writes them, sorted.
fn source_lines(db: &str, table: &str) -> Vec<String> {
    let (schema, rows) = read_table(db, table);
    let mut want: Vec<String> = rows.iter().map(|r| row_json(&schema, r).to_string()).collect();
    want.sort();
    want
}

#[test]
fn a_two_process_cluster_with_separate_directories_shares_only_the_s3_state_and_target() {
    let db = "s3_cluster";
    fresh_db(db);
    exec(&[
        &format!("USE {db}"),
        &format!("CREATE TABLE {db}.items (id BIGINT PRIMARY KEY, v BIGINT NOT NULL, s VARCHAR(40))"),
        &format!("INSERT INTO {db}.items SELECT seq, seq, CONCAT('row ', seq) FROM seq_1_to_60000"),
    ]);
    let bucket = s3::prefix("cluster");
    let plan = format!(
        "task: s3-cluster\nsource:\n  type: mariadb\n  url: {}\n  chunk_rows: 3000\n  heartbeat: 200ms\n\
         target:\n  type: files\n  path: {}\ntables:\n  include: ['{db}\\.items']\n\
         semantics: exactly-once\nwrite_mode: upsert\n\
         runtime:\n  workers: 1\n  checkpoint_interval: 200ms\n  state: {}\n  cluster_timeout: 60s\n{}",
        main_url(),
        s3::url(&bucket, "out"),
        s3::url(&bucket, "state"),
        s3::section()
    );
    let hosts: String = (0..2).map(|_| format!("127.0.0.1:{}\n", free_port())).collect();
    let dirs = [workdir(), workdir()];
    let mut procs: Vec<KillOnDrop> = Vec::new();
    for (p, d) in dirs.iter().enumerate() {
        let plan_path = write_plan(d.path(), "plan.yaml", &plan);
        let hostfile = write_plan(d.path(), "hosts.txt", &hosts);
        let log = std::fs::File::create(d.path().join("ferry.log")).unwrap();
        let child = ferry()
            .current_dir(d.path())
            .args(["run", "-q", "--hostfile", &hostfile, "--process", &p.to_string(), &plan_path])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        procs.push(KillOnDrop(child));
    }
    let logs = || {
        dirs.iter()
            .enumerate()
            .map(|(p, d)| {
                format!("--- process {p}:\n{}", std::fs::read_to_string(d.path().join("ferry.log")).unwrap_or_default())
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let out = s3::disk(&bucket, "out");
    let target = || {
        let (schema, _) = read_table(db, "items");
        let mut got = materialize_upsert(&committed_lines(&out, db, "items"), &schema.key_names());
        got.sort();
        got
    };
    // The snapshot, then changes while streaming.
    let await_equal = |procs: &mut Vec<KillOnDrop>, what: &str| {
        let start = Instant::now();
        loop {
            let want = source_lines(db, "items");
            let got = target();
            if got == want {
                break;
            }
            for (p, c) in procs.iter_mut().enumerate() {
                if let Some(st) = c.0.try_wait().unwrap() {
                    panic!("process {p} ended ({st}) {what}\n{}", logs());
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "{what}: the target has {} rows, the source {}\n{}",
                got.len(),
                want.len(),
                logs()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    await_equal(&mut procs, "after the snapshot");
    exec(&[
        &format!("USE {db}"),
        &format!("UPDATE {db}.items SET v = v * 10 WHERE id % 7 = 0"),
        &format!("DELETE FROM {db}.items WHERE id % 11 = 0"),
        &format!("INSERT INTO {db}.items SELECT 100000 + seq, seq, 'late' FROM seq_1_to_2000"),
        &format!("UPDATE {db}.items SET id = id + 500000 WHERE id BETWEEN 10 AND 20"),
    ]);
    await_equal(&mut procs, "after the changes");
    // Both processes wrote parts: the work was shared, through S3 only.
    let parts = std::fs::read_dir(out.join(db).join("items")).unwrap().count();
    let writers: std::collections::BTreeSet<String> = std::fs::read_dir(out.join("_committed/s3-cluster"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().split("-w").nth(1).unwrap_or("").to_string())
        .collect();
    assert!(parts > 0 && writers.len() == 2, "commit manifests of workers {writers:?}");
    for (p, d) in dirs.iter().enumerate() {
        let (took, status) = sigterm_and_wait(&mut procs[p].0);
        assert!(status.success(), "process {p} stopped with {status} after {took:?}\n{}", logs());
        // Nothing of the task's state or output is in a working directory.
        let local: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !["plan.yaml", "hosts.txt", "ferry.log"].contains(&n.as_str()))
            .collect();
        assert!(local.is_empty(), "process {p} wrote {local:?} into its working directory");
    }
    let status: Json =
        serde_json::from_slice(&std::fs::read(s3::disk(&bucket, "state/s3-cluster/status.json")).unwrap()).unwrap();
    assert_eq!(status["state"], "stopped", "{status}");
    assert!(s3::disk(&bucket, "state/s3-cluster/status.1.json").exists(), "process 1's status is in the S3 state");
    assert_eq!(target(), source_lines(db, "items"));
}

/// Reads Parquet files with pyarrow and prints, per file, the Arrow type and the Parquet
/// logical type of each column and the rows, values in a form JSON keeps exactly.
const PYARROW_READER: &str = r#"
import sys, json, decimal, datetime
import pyarrow.parquet as pq

def conv(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, bytes):
        return {"hex": v.hex()}
    if isinstance(v, decimal.Decimal):
        return {"dec": str(v)}
    if isinstance(v, datetime.timedelta):
        return {"us": v // datetime.timedelta(microseconds=1)}
    if isinstance(v, (datetime.datetime, datetime.date)):
        return {"iso": v.isoformat()}
    if isinstance(v, float):
        return {"float": repr(v)}
    return v

for path in sys.argv[1:]:
    f = pq.ParquetFile(path)
    t = f.read()
    print(json.dumps({
        "file": path,
        "types": {fld.name: str(fld.type) for fld in t.schema},
        "logical": {f.schema.column(i).name: str(f.schema.column(i).logical_type) for i in range(len(f.schema))},
        "rows": [{k: conv(v) for k, v in r.items()} for r in t.to_pylist()],
    }))
"#;

fn pyarrow_read(files: &[std::path::PathBuf]) -> Vec<Json> {
    let python = std::env::var("FERRY_TEST_PYTHON")
        .expect("FERRY_TEST_PYTHON (a python with pyarrow): run through scripts/test");
    let out = std::process::Command::new(python).arg("-c").arg(PYARROW_READER).args(files).output().unwrap();
    assert!(out.status.success(), "pyarrow: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn the_all_types_table_as_parquet_on_s3_reads_back_identical_with_pyarrow() {
    let db = "s3_parquet";
    fresh_db(db);
    let cols = "id INT PRIMARY KEY, ti TINYINT, tu TINYINT UNSIGNED, bi BIGINT, bu BIGINT UNSIGNED, \
                f FLOAT, d DOUBLE, dec65 DECIMAL(65,30), dec10 DECIMAL(10,2), s VARCHAR(50) CHARACTER SET utf8mb4, \
                l VARCHAR(20) CHARACTER SET latin1, vb VARBINARY(20), bl BLOB, dt DATE, tm TIME(6), \
                dtm DATETIME(6), ts TIMESTAMP(6) NULL, j JSON, e ENUM('a','b','c'), st SET('x','y','z'), \
                b1 BIT(1), b64 BIT(64), y YEAR, n INT NULL";
    let values = |id: i32, date: &str| {
        format!(
            "({id}, -128, 255, -9223372036854775808, 18446744073709551615, 3.5, -1.7976931348623157e308, \
             '-99999999999999999999999999999999999.999999999999999999999999999999', -12345678.91, 'emoji 🦀 \"q\" \\\\ ', \
             'caf\u{e9} \u{20ac}', X'FF00FE', X'00', '{date}', '-838:59:59.000000', '9999-12-31 23:59:59.999999', \
             '2038-01-19 03:14:07.999999', '{{\"k\": [1, 2]}}', 'b', 'x,z', b'1', b'1111111111111111111111111111111111111111111111111111111111111111', \
             2155, NULL)"
        )
    };
    let nulls = |id: i32| format!("({id}{})", ", NULL".repeat(23));
    exec(&[
        "SET SESSION sql_mode = ''",
        &format!("CREATE TABLE {db}.t ({cols})"),
        &format!(
            "SET SESSION sql_mode = ''; INSERT INTO {db}.t VALUES {}, {}, {}",
            values(1, "2024-02-29"),
            nulls(2),
            values(3, "0000-00-00")
        ),
    ]);
    let bucket = s3::prefix("parquet");
    let dir = workdir();
    let plan = format!(
        "task: s3-parquet\nsource:\n  type: mariadb\n  url: {}\n  bounded: true\n\
         target:\n  type: files\n  path: {}\n  format: parquet\ntables:\n  include: ['{db}\\.t']\n\
         semantics: exactly-once\nwrite_mode: upsert\nruntime:\n  state: {}\n{}",
        main_url(),
        s3::url(&bucket, "out"),
        s3::url(&bucket, "state"),
        s3::section()
    );
    let p = write_plan(dir.path(), "plan.yaml", &plan);
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    // Through the binlog: the same row again, a delete, a zero date again.
    exec(&[&format!(
        "SET SESSION sql_mode = ''; INSERT INTO {db}.t VALUES {}, {}; DELETE FROM {db}.t WHERE id = 2",
        values(4, "2024-02-29"),
        values(5, "0000-00-00")
    )]);
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    // A schema change: later rows go to files with the new schema.
    exec(&[
        &format!("ALTER TABLE {db}.t ADD COLUMN extra INT DEFAULT 7"),
        &format!("INSERT INTO {db}.t (id, dt) VALUES (6, '2024-01-01')"),
    ]);
    ok(&run_in(dir.path(), &["run", "-q", &p]));

    let out = s3::disk(&bucket, "out");
    let files: Vec<std::path::PathBuf> = committed_files(&out, db, "t").iter().map(|f| out.join(f)).collect();
    assert!(files.len() >= 3 && files.iter().all(|f| f.extension().is_some_and(|e| e == "parquet")), "{files:?}");
    let read = pyarrow_read(&files);
    let types = json!({
        "id": "int32", "ti": "int8", "tu": "uint8", "bi": "int64", "bu": "uint64", "f": "float", "d": "double",
        "dec65": "decimal256(65, 30)", "dec10": "decimal128(10, 2)", "s": "string", "l": "string", "vb": "binary",
        "bl": "binary", "dt": "date32[day]", "tm": "duration[us]", "dtm": "timestamp[us]", "ts": "timestamp[us, tz=UTC]",
        "e": "string", "st": "string", "b1": "uint64", "b64": "uint64", "y": "int16", "n": "int32", "__deleted": "bool"
    });
    let full = |id: i64| {
        json!({
            "id": id, "ti": -128, "tu": 255, "bi": -9223372036854775808i64, "bu": 18446744073709551615u64,
            "f": {"float": "3.5"}, "d": {"float": "-1.7976931348623157e+308"},
            "dec65": {"dec": "-99999999999999999999999999999999999.999999999999999999999999999999"},
            "dec10": {"dec": "-12345678.91"},
            "s": "emoji 🦀 \"q\" \\ ", "l": "caf\u{e9} \u{20ac}", "vb": {"hex": "ff00fe"}, "bl": {"hex": "00"},
            "dt": {"iso": "2024-02-29"}, "tm": {"us": -3_020_399_000_000i64},
            "dtm": {"iso": "9999-12-31T23:59:59.999999"}, "ts": {"iso": "2038-01-19T03:14:07.999999+00:00"},
            "j": "{\"k\": [1, 2]}", "e": "b", "st": "x,z", "b1": 1, "b64": 18446744073709551615u64, "y": 2155,
            "n": null, "__deleted": false
        })
    };
    let (with_extra, read): (Vec<Json>, Vec<Json>) =
        read.into_iter().partition(|f| f["types"].as_object().unwrap().contains_key("extra"));
    assert_eq!(with_extra.len(), 1, "one file after the schema change");
    let after = &with_extra[0];
    assert_eq!(after["types"]["extra"], "int32");
    let rows6 = after["rows"].as_array().unwrap();
    assert_eq!(rows6.len(), 1, "{after}");
    assert_eq!(
        (&rows6[0]["id"], &rows6[0]["extra"], &rows6[0]["dt"]),
        (&json!(6), &json!(7), &json!({"iso": "2024-01-01"}))
    );
    let mut rows: Vec<Json> = Vec::new();
    for f in &read {
        for (col, ty) in types.as_object().unwrap() {
            assert_eq!(&f["types"][col], ty, "{}: column {col}", f["file"]);
        }
        // JSON is a string annotated JSON; the other annotations keep unsigned and zone apart.
        assert!(f["types"]["j"].as_str().unwrap().contains("json"), "{}", f["types"]["j"]);
        assert_eq!(f["logical"]["j"], "JSON", "{}", f["logical"]);
        assert_eq!(f["logical"]["bu"], "Int(bitWidth=64, isSigned=false)", "{}", f["logical"]);
        assert_eq!(f["logical"]["dec65"], "Decimal(precision=65, scale=30)", "{}", f["logical"]);
        assert!(f["logical"]["ts"].as_str().unwrap().contains("isAdjustedToUTC=true"), "{}", f["logical"]);
        assert!(f["logical"]["dtm"].as_str().unwrap().contains("isAdjustedToUTC=false"), "{}", f["logical"]);
        rows.extend(f["rows"].as_array().unwrap().iter().cloned());
    }
    let mut all_null = json!({"id": 2, "__deleted": false});
    for c in types.as_object().unwrap().keys().chain(["j".to_string()].iter()) {
        if c != "id" && c != "__deleted" {
            all_null[c] = Json::Null;
        }
    }
    let mut deleted = all_null.clone();
    deleted["__deleted"] = json!(true);
    // In file order: the snapshot (1, 2), then the binlog's insert of 4 and delete of 2; the
    // zero dates (3, 5) are dirty data.
    let mut by_id: BTreeMap<i64, Vec<Json>> = BTreeMap::new();
    for r in &rows {
        by_id.entry(r["id"].as_i64().unwrap()).or_default().push(r.clone());
    }
    assert_eq!(by_id.keys().copied().collect::<Vec<_>>(), vec![1, 2, 4], "{rows:#?}");
    assert_eq!(by_id[&1], vec![full(1)]);
    assert_eq!(by_id[&4], vec![full(4)]);
    assert_eq!(by_id[&2], vec![all_null, deleted]);
    // The dirty archive (in the S3 state) has both zero-date rows with the reason.
    let dirty_dir = s3::disk(&bucket, "state/s3-parquet/dirty");
    let dirty: String = std::fs::read_dir(&dirty_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dirty_dir.display()))
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    let lines: Vec<Json> = dirty.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{dirty}");
    for l in &lines {
        let text = l.to_string();
        assert!(text.contains("column `dt`") && text.contains("0000-00-00") && text.contains("Date32"), "{text}");
    }
    // The source keeps the zero-date rows the target could not take.
    let (_, src) = read_table(db, "t");
    assert_eq!(src.len(), 5, "rows 1, 3, 4, 5 and 6 are left in the source");
}

#[test]
fn a_conditional_put_on_s3_creates_an_object_once() {
    let bucket = common::s3::prefix("putnew");
    let var = |k: &str| std::env::var(k).unwrap();
    let s3 = ferry::store::S3Config {
        endpoint: Some(var("FERRY_TEST_S3_ENDPOINT")),
        region: Some("us-east-1".into()),
        access_key_id: Some(var("FERRY_TEST_S3_KEY")),
        secret_access_key: Some(var("FERRY_TEST_S3_SECRET")),
        virtual_hosted_style: false,
    };
    let store = ferry::store::Store::open(&common::s3::url(&bucket, "p"), &s3).unwrap();
    assert!(store.put_new("v/1.yaml", "first").unwrap());
    assert!(!store.put_new("v/1.yaml", "second").unwrap(), "a second create of one object must fail");
    assert_eq!(store.get("v/1.yaml").unwrap().unwrap(), bytes::Bytes::from("first"));
}
