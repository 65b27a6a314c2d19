//! MySQL/MariaDB decoding against a live server: every type through a snapshot (binary protocol,
//! `types::snapshot_value`) and through the binlog (`binlog::BinlogReader`) must give identical
//! values; transactions, updates, deletes, DDL mid-stream, big transactions and GTID resumes.
//!
//! Needs the private test server: `scripts/servers start` and export the
//! `FERRY_TEST_MYSQL_URL` it prints. Each test works in its own `dec_*` database.

mod common;

use common::mysql::{ALL_TYPES, MAX_ROW, MIN_ROW, NULL_ROW, ZERO_ROW};
use ferry::connectors::mysql::binlog::{BinlogError, BinlogEvent, BinlogPos, BinlogReader, RowChange, StartFrom};
use ferry::connectors::mysql::types::{parse_column_type, snapshot_value};
use ferry_operators::change::{Op, Row};
use ferry_operators::schema::{Column, ColumnType};
use ferry_operators::value::{Date, DateTime, Value};
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder};
use std::time::{Duration, Instant};

fn url() -> String {
    match std::env::var("FERRY_TEST_MYSQL_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => panic!("FERRY_TEST_MYSQL_URL is not set: run scripts/servers start and export FERRY_TEST_MYSQL_URL"),
    }
}

fn opts() -> Opts {
    Opts::from_url(&url()).expect("FERRY_TEST_MYSQL_URL is a mysql:// URL")
}

/// A replica server id unique to this process and test (the server itself is id 1).
fn server_id(n: u32) -> u32 {
    100_000 + (std::process::id() % 100_000) * 16 + n
}

/// A connection whose default database is `db`, in UTC, reading raw column bytes.
async fn conn_in(db: &str) -> Conn {
    let mut c = Conn::new(opts()).await.expect("connect to the test server");
    c.query_drop(format!("CREATE DATABASE IF NOT EXISTS `{db}`")).await.unwrap();
    c.disconnect().await.unwrap();
    let o = OptsBuilder::from_opts(opts()).db_name(Some(db)).init(vec![
        "SET time_zone = '+00:00'",
        "SET character_set_results = NULL",
        "SET sql_mode = 'STRICT_TRANS_TABLES'",
    ]);
    Conn::new(o).await.expect("connect to the test database")
}

async fn fresh_db(db: &str) -> Conn {
    let mut c = Conn::new(opts()).await.expect("connect to the test server");
    c.query_drop(format!("DROP DATABASE IF EXISTS `{db}`")).await.unwrap();
    c.disconnect().await.unwrap();
    conn_in(db).await
}

async fn master_pos(c: &mut Conn) -> BinlogPos {
    let row: mysql_async::Row = c.query_first("SHOW MASTER STATUS").await.unwrap().expect("binlog is on");
    let file: String = row.get(0).unwrap();
    let pos: u64 = row.get(1).unwrap();
    BinlogPos::new(file, pos)
}

/// Discovery as the source does it: columns, types and charsets from information_schema, JSON
/// from MariaDB's `json_valid` check constraint.
async fn discover(c: &mut Conn, db: &str, table: &str) -> Vec<(Column, Option<String>)> {
    let cols: Vec<(String, String, String, Option<String>, String)> = c
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_SET_NAME, IS_NULLABLE FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await
        .unwrap();
    let checks: Vec<String> = c
        .exec(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
            (db, table),
        )
        .await
        .unwrap();
    cols.into_iter()
        .map(|(name, dt, ct, cs, nullable)| {
            let json = checks.iter().any(|k| k.replace('`', "") == format!("json_valid({name})"));
            let ty = parse_column_type(if json { "json" } else { &dt }, &ct, cs.as_deref()).unwrap();
            (Column::new(name, ty, nullable == "YES"), cs)
        })
        .collect()
}

/// Reads a table with a prepared SELECT (binary protocol) through `snapshot_value`.
async fn snapshot(c: &mut Conn, table: &str, cols: &[(Column, Option<String>)]) -> Vec<Row> {
    let rows: Vec<mysql_async::Row> = c.exec(format!("SELECT * FROM `{table}` ORDER BY 1"), ()).await.unwrap();
    rows.into_iter()
        .map(|r| {
            r.unwrap()
                .into_iter()
                .zip(cols)
                .map(|(v, (col, cs))| snapshot_value(v, col, cs.as_deref()).unwrap())
                .collect()
        })
        .collect()
}

/// One transaction as read from the binlog, reduced to what the tests look at.
#[derive(Debug, Default)]
struct Txn {
    begin_gtid: Option<String>,
    commit_gtid: Option<String>,
    commit_next: Option<BinlogPos>,
    rows: Vec<(String, Vec<RowChange>)>,
}

/// What a test read from the binlog for its own database.
#[derive(Debug, Default)]
struct Read {
    txns: Vec<Txn>,
    ddl: Vec<String>,
    /// The order of our events: `B`egin, `R`ows, `C`ommit, `D`dl.
    shape: String,
}

/// Starts a reader for database `db` only, with hints for `tables`.
async fn reader(db: &str, id: u32, from: StartFrom, hints: Vec<(&str, Vec<Column>)>) -> BinlogReader {
    let mut r = BinlogReader::connect(opts(), server_id(id), from.clone())
        .await
        .unwrap_or_else(|e| panic!("binlog reader connects at {from:?}: {e}"));
    let owned = db.to_string();
    r.set_table_filter(move |d, _| d == owned);
    for (t, cols) in hints {
        r.set_schema(db, t, cols);
    }
    r
}

/// Reads until the commit of the transaction that wrote table `marker` of `db`.
async fn read_until_marker(r: &mut BinlogReader, db: &str, marker: &str) -> Read {
    let mut out = Read::default();
    let mut cur: Option<Txn> = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = tokio::time::timeout(left, r.next())
            .await
            .expect("the binlog delivered the marker within 120 s")
            .expect("binlog reads without error")
            .expect("the stream does not end");
        match ev {
            BinlogEvent::Begin { gtid } => cur = Some(Txn { begin_gtid: gtid, ..Txn::default() }),
            BinlogEvent::Rows { database, table, changes } => {
                assert_eq!(database, db, "the table filter keeps other databases out");
                cur.get_or_insert_with(Txn::default).rows.push((table, changes));
            }
            BinlogEvent::Commit { next, gtid } => {
                if let Some(mut t) = cur.take() {
                    if t.rows.is_empty() {
                        continue;
                    }
                    t.commit_gtid = gtid;
                    t.commit_next = Some(next);
                    out.shape.push('B');
                    out.shape.extend(t.rows.iter().map(|_| 'R'));
                    out.shape.push('C');
                    let done = t.rows.iter().any(|(tb, _)| tb == marker);
                    out.txns.push(t);
                    if done {
                        return out;
                    }
                }
            }
            BinlogEvent::Ddl { database, sql, .. } => {
                if database == db {
                    out.shape.push('D');
                    out.ddl.push(sql);
                }
            }
            BinlogEvent::Heartbeat { .. } | BinlogEvent::Rotate { .. } | BinlogEvent::Position { .. } => {}
        }
    }
}

fn all_rows(read: &Read, table: &str) -> Vec<RowChange> {
    read.txns.iter().flat_map(|t| &t.rows).filter(|(tb, _)| tb == table).flat_map(|(_, c)| c.clone()).collect()
}

fn col_index(cols: &[(Column, Option<String>)], name: &str) -> usize {
    cols.iter().position(|(c, _)| c.name == name).unwrap_or_else(|| panic!("column {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_types_decode_identically_through_snapshot_and_binlog() {
    let db = "dec_all_types";
    let mut c = fresh_db(db).await;
    c.query_drop(ALL_TYPES).await.unwrap();
    c.query_drop("CREATE TABLE marker (id INT PRIMARY KEY)").await.unwrap();
    let start = master_pos(&mut c).await;
    c.query_drop(MIN_ROW).await.unwrap();
    c.query_drop(MAX_ROW).await.unwrap();
    c.query_drop(NULL_ROW).await.unwrap();
    c.query_drop("SET SESSION sql_mode = ''").await.unwrap();
    c.query_drop(ZERO_ROW).await.unwrap();
    c.query_drop("INSERT INTO marker VALUES (1)").await.unwrap();

    let cols = discover(&mut c, db, "all_types").await;
    assert_eq!(cols[col_index(&cols, "js")].0.ty, ColumnType::Json);
    let snap = snapshot(&mut c, "all_types", &cols).await;
    assert_eq!(snap.len(), 4);

    let hints = vec![("all_types", cols.iter().map(|(c, _)| c.clone()).collect())];
    let mut r = reader(db, 1, StartFrom::Position(start), hints).await;
    let read = read_until_marker(&mut r, db, "marker").await;
    let binlog: Vec<Row> = all_rows(&read, "all_types")
        .into_iter()
        .map(|(op, before, after)| {
            assert_eq!(op, Op::Insert);
            assert!(before.is_none());
            after.unwrap()
        })
        .collect();
    assert_eq!(binlog.len(), 4);
    for (s, b) in snap.iter().zip(&binlog) {
        assert_eq!(s.len(), b.len());
        for (i, (sv, bv)) in s.iter().zip(b).enumerate() {
            assert_eq!(sv, bv, "column {} of row id {:?}: snapshot vs binlog", cols[i].0.name, s[0]);
        }
    }

    // Spelled out: what both paths must give.
    let v = |row: usize, name: &str| snap[row][col_index(&cols, name)].clone();
    let text = |s: &str| Value::Text(s.to_string());
    assert_eq!(v(0, "ti"), Value::Int(-128));
    assert_eq!(v(0, "b1"), Value::Int(-128));
    assert_eq!(v(0, "bi"), Value::Int(i64::MIN));
    assert_eq!(v(1, "biu"), Value::UInt(u64::MAX));
    assert_eq!(v(1, "miu"), Value::UInt(16_777_215));
    assert_eq!(v(0, "mi"), Value::Int(-8_388_608));
    assert_eq!(v(0, "after_year"), Value::UInt(4_294_967_295));
    assert_eq!(v(0, "yr"), Value::Year(1901));
    assert_eq!(v(1, "yr"), Value::Year(2155));
    assert_eq!(v(3, "yr"), Value::Year(0));
    assert_eq!(v(0, "d"), Value::Decimal("-99999999999999999999999999999999999.999999999999999999999999999999".into()));
    assert_eq!(v(0, "d2"), Value::Decimal("-12.50".into()));
    assert_eq!(v(3, "d"), Value::Decimal("0.000000000000000000000000000000".into()));
    assert_eq!(v(0, "tm"), Value::Time(-(838 * 3600 + 59 * 60 + 59) * 1_000_000));
    assert_eq!(v(0, "tm2"), Value::Time(-1_500_000));
    assert_eq!(v(0, "tm6"), Value::Time(-((12 * 3600 + 34 * 60 + 56) * 1_000_000 + 789_012)));
    assert_eq!(v(1, "tm6"), Value::Time((838 * 3600 + 59 * 60 + 58) * 1_000_000 + 999_999));
    assert_eq!(v(1, "dtm6"), Value::DateTime(DateTime { date: Date::new(9999, 12, 31), micros: 86_400_000_000 - 1 }));
    assert_eq!(v(3, "dt"), Value::Date(Date::new(0, 0, 0)));
    assert_eq!(v(3, "dtm"), Value::DateTime(DateTime { date: Date::new(2020, 0, 15), micros: 36_000_000_000 }));
    assert_eq!(v(0, "ts"), Value::Timestamp(1_000_000));
    assert_eq!(v(1, "ts"), Value::Timestamp(2_147_483_647_999_999));
    assert_eq!(v(3, "ts"), Value::Timestamp(0), "the zero TIMESTAMP");
    assert_eq!(v(1, "bit64"), Value::Bit { width: 64, bytes: vec![0xff; 8] });
    assert_eq!(v(1, "bit10"), Value::Bit { width: 10, bytes: vec![0x03, 0xff] });
    assert_eq!(v(0, "bit1"), Value::Bit { width: 1, bytes: vec![0] });
    assert_eq!(v(1, "st"), Value::Set("a,b,d".into()));
    assert_eq!(v(0, "st"), Value::Set(String::new()));
    assert_eq!(v(1, "e"), Value::Enum("large".into()));
    assert_eq!(v(3, "e"), Value::Enum(String::new()), "invalid ENUM value under sql_mode=''");
    assert_eq!(v(1, "el"), Value::Enum("€".into()));
    assert_eq!(v(1, "sl"), Value::Set("ä,€,z".into()));
    assert_eq!(v(0, "vc"), text("😀 four-byte"));
    assert_eq!(v(0, "l1"), text("café €"));
    assert_eq!(v(1, "l1t"), text(&"€".repeat(1000)));
    assert_eq!(v(0, "bin"), Value::Bytes(vec![0, 0xff, 0, 0, 0, 0, 0, 0]));
    assert_eq!(v(1, "bin"), Value::Bytes(b"abc\0\0\0\0\0".to_vec()));
    assert_eq!(v(1, "vb"), Value::Bytes(vec![0xc3, 0x28, 0xff]));
    assert_eq!(v(1, "bl"), Value::Bytes([0u8, 0xff].repeat(50_000)));
    assert_eq!(v(0, "js"), Value::Json(r#"{"a": [1, 2.5, "x"], "b": null}"#.into()));
    assert_eq!(v(0, "ip6"), text("::ffff:1.2.3.4"));
    assert_eq!(v(1, "ip6"), text("2001:db8::1"));
    assert_eq!(v(1, "ip4"), text("255.255.255.255"));
    assert_eq!(v(1, "db"), Value::Double(f64::MAX));
    assert!(snap[2][1..].iter().all(|x| *x == Value::Null), "the NULL row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_carry_both_images_and_deletes_the_before_image() {
    let db = "dec_update_delete";
    let mut c = fresh_db(db).await;
    c.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20), n BIGINT UNSIGNED)").await.unwrap();
    c.query_drop("CREATE TABLE marker (id INT PRIMARY KEY)").await.unwrap();
    let start = master_pos(&mut c).await;
    c.query_drop("INSERT INTO t VALUES (1, 'a', 10), (2, 'b', NULL)").await.unwrap();
    c.query_drop("UPDATE t SET v = 'a2', n = n + 1 WHERE id = 1").await.unwrap();
    c.query_drop("UPDATE t SET id = 3 WHERE id = 2").await.unwrap();
    c.query_drop("DELETE FROM t WHERE id = 3").await.unwrap();
    c.query_drop("INSERT INTO marker VALUES (1)").await.unwrap();

    let mut r = reader(db, 2, StartFrom::Position(start), vec![]).await;
    let read = read_until_marker(&mut r, db, "marker").await;
    let rows = all_rows(&read, "t");
    let row = |id: i64, v: &str, n: Option<u64>| {
        Some(vec![Value::Int(id), Value::Text(v.into()), n.map_or(Value::Null, Value::UInt)])
    };
    assert_eq!(
        rows,
        vec![
            (Op::Insert, None, row(1, "a", Some(10))),
            (Op::Insert, None, row(2, "b", None)),
            (Op::Update, row(1, "a", Some(10)), row(1, "a2", Some(11))),
            (Op::Update, row(2, "b", None), row(3, "b", None)),
            (Op::Delete, row(3, "b", None), None),
        ]
    );
    assert_eq!(r.columns(db, "t"), Some(vec!["id".to_string(), "v".to_string(), "n".to_string()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_statement_transaction_is_begin_rows_commit_with_one_gtid() {
    let db = "dec_transaction";
    let mut c = fresh_db(db).await;
    c.query_drop("CREATE TABLE a (id INT PRIMARY KEY, v INT)").await.unwrap();
    c.query_drop("CREATE TABLE b (id INT PRIMARY KEY)").await.unwrap();
    let start = master_pos(&mut c).await;
    let mut tx = c.start_transaction(Default::default()).await.unwrap();
    tx.query_drop("INSERT INTO a VALUES (1, 1), (2, 2)").await.unwrap();
    tx.query_drop("UPDATE a SET v = 20 WHERE id = 2").await.unwrap();
    tx.query_drop("INSERT INTO b VALUES (7)").await.unwrap();
    tx.commit().await.unwrap();

    let mut r = reader(db, 3, StartFrom::Position(start.clone()), vec![]).await;
    let read = read_until_marker(&mut r, db, "b").await;
    assert_eq!(read.shape, "BRRRC", "one transaction: Begin, three row events, Commit");
    let t = &read.txns[0];
    assert_eq!(t.rows.iter().map(|(tb, _)| tb.as_str()).collect::<Vec<_>>(), ["a", "a", "b"]);
    let gtid = t.begin_gtid.clone().expect("MariaDB transactions carry a GTID");
    assert_eq!(t.commit_gtid.as_deref(), Some(gtid.as_str()));
    assert!(gtid.starts_with("0-1-"), "domain 0, server 1: {gtid}");
    let next = t.commit_next.clone().unwrap();
    assert!(next > start, "{next} > {start}");
    assert!(r.gtid_position().unwrap().contains(&gtid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_by_gtid_or_commit_position_starts_after_that_transaction() {
    let db = "dec_resume";
    let mut c = fresh_db(db).await;
    c.query_drop("CREATE TABLE t (id INT PRIMARY KEY)").await.unwrap();
    c.query_drop("CREATE TABLE marker (id INT PRIMARY KEY)").await.unwrap();
    let start = master_pos(&mut c).await;
    c.query_drop("INSERT INTO marker VALUES (1)").await.unwrap();
    c.query_drop("INSERT INTO t VALUES (2)").await.unwrap();
    c.query_drop("INSERT INTO marker VALUES (3)").await.unwrap();

    let mut r = reader(db, 4, StartFrom::Position(start), vec![]).await;
    let first = read_until_marker(&mut r, db, "marker").await;
    let commit = first.txns.last().unwrap().commit_next.clone().unwrap();
    let gtid = r.gtid_position().expect("MariaDB GTID position");
    drop(r);

    for (i, from) in [StartFrom::MariaGtid(gtid.clone()), StartFrom::Position(commit.clone())].into_iter().enumerate() {
        let mut r = reader(db, 5 + i as u32, from.clone(), vec![]).await;
        let read = read_until_marker(&mut r, db, "marker").await;
        let ids: Vec<_> =
            read.txns.iter().flat_map(|t| &t.rows).map(|(tb, ch)| (tb.clone(), ch[0].2.clone())).collect();
        assert_eq!(
            ids,
            vec![("t".into(), Some(vec![Value::Int(2)])), ("marker".into(), Some(vec![Value::Int(3)]))],
            "resumed from {from:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_table_add_column_mid_stream_yields_ddl_and_rows_after_it_have_the_new_column() {
    let db = "dec_alter";
    let mut c = fresh_db(db).await;
    c.query_drop("CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(10))").await.unwrap();
    c.query_drop("CREATE TABLE marker (id INT PRIMARY KEY)").await.unwrap();
    let start = master_pos(&mut c).await;
    c.query_drop("INSERT INTO t VALUES (1, 'before')").await.unwrap();
    c.query_drop("ALTER TABLE t ADD COLUMN b DECIMAL(6,3) NOT NULL DEFAULT 1.5").await.unwrap();
    c.query_drop("INSERT INTO t VALUES (2, 'after', -2.25)").await.unwrap();
    c.query_drop("UPDATE t SET a = 'changed' WHERE id = 1").await.unwrap();
    c.query_drop("INSERT INTO marker VALUES (1)").await.unwrap();

    let mut r = reader(db, 7, StartFrom::Position(start), vec![]).await;
    let read = read_until_marker(&mut r, db, "marker").await;
    assert_eq!(read.shape, "BRCDBRCBRCBRC");
    assert!(read.ddl[0].contains("ADD COLUMN b"), "{:?}", read.ddl);
    let rows = all_rows(&read, "t");
    let dec = |s: &str| Value::Decimal(s.into());
    assert_eq!(rows[0].2, Some(vec![Value::Int(1), Value::Text("before".into())]));
    assert_eq!(rows[1].2, Some(vec![Value::Int(2), Value::Text("after".into()), dec("-2.250")]));
    assert_eq!(rows[2].1, Some(vec![Value::Int(1), Value::Text("before".into()), dec("1.500")]));
    assert_eq!(rows[2].2, Some(vec![Value::Int(1), Value::Text("changed".into()), dec("1.500")]));
    assert_eq!(r.columns(db, "t").unwrap(), ["id", "a", "b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100k_row_transaction_decodes_completely() {
    let db = "dec_big_txn";
    let mut c = fresh_db(db).await;
    c.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))").await.unwrap();
    let start = master_pos(&mut c).await;
    c.query_drop("INSERT INTO t SELECT seq, CONCAT('row ', seq) FROM seq_1_to_100000").await.unwrap();

    let mut r = reader(db, 9, StartFrom::Position(start), vec![]).await;
    let read = read_until_marker(&mut r, db, "t").await;
    assert_eq!(read.txns.len(), 1, "one transaction");
    let rows = all_rows(&read, "t");
    assert_eq!(rows.len(), 100_000);
    for (i, (op, before, after)) in rows.iter().enumerate() {
        let id = i as i64 + 1;
        assert_eq!((*op, before), (Op::Insert, &None));
        assert_eq!(after.as_ref().unwrap(), &vec![Value::Int(id), Value::Text(format!("row {id}"))]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decode_rate_of_200k_simple_rows() {
    let db = "dec_rate";
    let mut c = fresh_db(db).await;
    c.query_drop("CREATE TABLE t (id INT PRIMARY KEY, k INT, c CHAR(60), pad CHAR(40), at DATETIME(6))").await.unwrap();
    c.query_drop("CREATE TABLE marker (id INT PRIMARY KEY)").await.unwrap();
    let start = master_pos(&mut c).await;
    for chunk in 0..4 {
        c.query_drop(format!(
            "INSERT INTO t SELECT seq, seq % 1000, REPEAT(CHAR(97 + seq % 26), 60), 'padding-padding-padding', \
             '2024-01-01 00:00:00.5' + INTERVAL seq SECOND FROM seq_{}_to_{}",
            chunk * 50_000 + 1,
            (chunk + 1) * 50_000
        ))
        .await
        .unwrap();
    }
    c.query_drop("INSERT INTO marker VALUES (1)").await.unwrap();

    let mut r = reader(db, 10, StartFrom::Position(start), vec![]).await;
    let t0 = Instant::now();
    let read = read_until_marker(&mut r, db, "marker").await;
    let secs = t0.elapsed().as_secs_f64();
    let n = all_rows(&read, "t").len();
    assert_eq!(n, 200_000);
    println!("binlog decode: {n} rows in {secs:.3} s = {:.0} rows/s (stream + decode, one reader)", n as f64 / secs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purged_start_position_is_an_error_naming_the_earliest_available() {
    let mut c = Conn::new(opts()).await.unwrap();
    let first: mysql_async::Row = c.query_first("SHOW BINARY LOGS").await.unwrap().unwrap();
    let first: String = first.get(0).unwrap();
    let base = first.rsplit_once('.').unwrap().0;
    let requested = BinlogPos::new(format!("{base}.000000"), 4);
    match BinlogReader::connect(opts(), server_id(11), StartFrom::Position(requested)).await {
        Err(BinlogError::PositionPurged { requested, earliest }) => {
            assert_eq!(requested, format!("{base}.000000:4"));
            assert_eq!(earliest, format!("{first}:4"));
        }
        Err(e) => panic!("expected PositionPurged, got {e}"),
        Ok(_) => panic!("expected PositionPurged, the reader connected"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_stream_sends_heartbeats_with_the_current_position() {
    let mut c = Conn::new(opts()).await.unwrap();
    let start = master_pos(&mut c).await;
    let mut r = BinlogReader::connect_with_heartbeat(
        opts(),
        server_id(12),
        StartFrom::Position(start.clone()),
        Duration::from_millis(200),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = tokio::time::timeout(left, r.next()).await.expect("a heartbeat within 60 s").unwrap().unwrap();
        if let BinlogEvent::Heartbeat { next } = ev {
            assert!(next >= start, "{next} >= {start}");
            assert_eq!(&next, r.position());
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_rotation_the_new_files_header_says_where_the_reader_is_without_a_heartbeat() {
    let mut c = Conn::new(opts()).await.unwrap();
    let start = master_pos(&mut c).await;
    // No heartbeat for an hour: only the new file's header can tell where the reader is.
    let mut r = BinlogReader::connect_with_heartbeat(
        opts(),
        server_id(13),
        StartFrom::Position(start.clone()),
        Duration::from_secs(3600),
    )
    .await
    .unwrap();
    c.query_drop("FLUSH BINARY LOGS").await.unwrap();
    let new_file = master_pos(&mut c).await.file;
    assert_ne!(new_file, start.file);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev =
            tokio::time::timeout(left, r.next()).await.expect("the new file's header within 60 s").unwrap().unwrap();
        let Some(next) = ev.next_position().filter(|n| n.file == new_file && n.pos > 4) else { continue };
        // Other tests may write meanwhile, but the header comes before their transactions.
        assert!(matches!(ev, BinlogEvent::Position { .. }), "the first position in the new file came from {ev:?}");
        assert_eq!(next, r.position());
        break;
    }
}
