//! MariaDB helpers for integration tests: the private test server's URL (scripts/servers),
//! running SQL, reading a table back through ferry's own decoder.
#![allow(dead_code)]

use ferry::connectors::mysql::config::MysqlSourceConfig;
use ferry::connectors::mysql::{discover, snapshot};
use ferry::plan::Wanted;
use ferry_operators::{Row, TableName, TableSchema};
use mysql_async::prelude::Queryable;

/// The private test server's URL; the suite's script exports it.
pub fn url(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: run the suite with scripts/test, or `scripts/servers start` and export what it prints"
        )
    })
}

/// The main test server (binlog ROW/FULL).
pub fn main_url() -> String {
    url("FERRY_TEST_MYSQL_URL")
}

/// Runs statements on the main server, in order.
pub fn exec(sqls: &[&str]) {
    exec_at(&main_url(), sqls)
}

/// Runs statements on the server at `url`, in order.
pub fn exec_at(url: &str, sqls: &[&str]) {
    let opts = mysql_async::Opts::from_url(url).unwrap();
    ferry::runtime::io_runtime().block_on(async {
        let mut conn = mysql_async::Conn::new(opts).await.unwrap();
        for s in sqls {
            conn.query_drop(*s).await.unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        conn.disconnect().await.unwrap();
    })
}

/// A fresh database on the main server.
pub fn fresh_db(name: &str) {
    exec(&[&format!("DROP DATABASE IF EXISTS `{name}`"), &format!("CREATE DATABASE `{name}`")]);
}

/// Every row of `db.table` now, decoded as ferry decodes a snapshot, with its schema.
pub fn read_table(db: &str, table: &str) -> (TableSchema, Vec<Row>) {
    let cfg = MysqlSourceConfig { url: main_url(), ..Default::default() };
    let opts = discover::opts(&cfg).unwrap();
    ferry::runtime::io_runtime().block_on(async {
        let mut conn = discover::connect(&opts).await.unwrap();
        let found = discover::discover(
            &mut conn,
            Wanted::new(&|t: &TableName| t.database == db && t.table == table, &|d: &str| d == db),
        )
        .await
        .unwrap();
        let i = found
            .catalog
            .tables
            .iter()
            .position(|t| t.name.database == db && t.name.table == table)
            .expect("table exists");
        let schema = found.catalog.tables[i].clone();
        let chunk = snapshot::Chunk { id: 0, table: 0, lower: None, upper: None };
        let mut rows = Vec::new();
        snapshot::read_chunk(&mut conn, &chunk, &schema, &found.charsets[i], |b| rows.extend(b)).await.unwrap();
        conn.disconnect().await.unwrap();
        (schema, rows)
    })
}

/// A fresh `db` with `items` (20,000 rows, BIGINT key) and `pairs` (5,000 rows, composite key).
pub fn items_and_pairs(db: &str) {
    fresh_db(db);
    exec(&[
        &format!("USE {db}"),
        &format!("CREATE TABLE {db}.items (id BIGINT PRIMARY KEY, k INT NOT NULL, c VARCHAR(120), pad CHAR(60))"),
        &format!("CREATE TABLE {db}.pairs (a INT, b VARCHAR(10), v INT, PRIMARY KEY (a, b))"),
        &format!("INSERT INTO {db}.items SELECT seq, seq % 1000, CONCAT('item-', seq), 'pad' FROM seq_1_to_20000"),
        &format!("INSERT INTO {db}.pairs SELECT seq % 100, CONCAT('b', seq), seq FROM seq_1_to_5000"),
    ]);
}

/// A workload on [`items_and_pairs`]: one `bulk_rows`-row insert transaction, then 300 rounds
/// of random updates, inserts (their `c` is `new_c`, SQL-quoted), deletes, primary-key changes
/// and multi-statement transactions; the random seed is printed.
pub fn items_workload(db: &str, bulk_rows: u64, new_c: &str) {
    exec(&[
        &format!("USE {db}"),
        &format!("INSERT INTO {db}.items SELECT 300000 + seq, seq % 7, 'bulk', 'b' FROM seq_1_to_{bulk_rows}"),
    ]);
    let mut rnd = super::seeded_rng("workload");
    let mut stmts: Vec<String> = Vec::new();
    for i in 0..300u64 {
        let id = 1 + rnd() % 20000;
        stmts.push(format!("UPDATE {db}.items SET k = k + 1, c = 'upd-{i}' WHERE id = {id}"));
        stmts.push(format!("INSERT INTO {db}.items VALUES ({}, 1, {new_c}, 'x')", 100_000 + i));
        if i % 3 == 0 {
            stmts.push(format!("DELETE FROM {db}.items WHERE id = {}", 1 + rnd() % 20000));
        }
        if i % 5 == 0 {
            // A primary-key change and a multi-statement transaction.
            stmts.push(format!(
                "BEGIN; UPDATE {db}.items SET id = {} WHERE id = {}; UPDATE {db}.pairs SET v = v + 1 WHERE a = {}; COMMIT",
                200_000 + i,
                2 + rnd() % 20000,
                rnd() % 100
            ));
        }
    }
    for chunk in stmts.chunks(20) {
        exec(&chunk.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

/// An all-types table (every MariaDB type family, edge-value rows below).
pub const ALL_TYPES: &str = "CREATE TABLE all_types (
    id INT PRIMARY KEY,
    ti TINYINT NULL, tiu TINYINT UNSIGNED NULL, si SMALLINT NULL, siu SMALLINT UNSIGNED NULL,
    mi MEDIUMINT NULL, miu MEDIUMINT UNSIGNED NULL, i INT NULL, iu INT UNSIGNED NULL,
    bi BIGINT NULL, biu BIGINT UNSIGNED NULL, b1 TINYINT(1) NULL,
    yr YEAR NULL, after_year INT UNSIGNED NULL,
    d DECIMAL(65,30) NULL, d2 DECIMAL(10,2) NULL, d0 DECIMAL(5,0) UNSIGNED NULL,
    f FLOAT NULL, db DOUBLE NULL,
    dt DATE NULL, tm TIME NULL, tm2 TIME(2) NULL, tm6 TIME(6) NULL,
    dtm DATETIME NULL, dtm6 DATETIME(6) NULL,
    ts TIMESTAMP(6) NULL DEFAULT NULL, ts0 TIMESTAMP NULL DEFAULT NULL,
    bit1 BIT(1) NULL, bit64 BIT(64) NULL, bit10 BIT(10) NULL,
    e ENUM('small','medium','large') NULL, st SET('a','b','c','d') NULL,
    pt POINT NULL,
    c CHAR(10) CHARACTER SET utf8mb4 NULL, vc VARCHAR(100) CHARACTER SET utf8mb4 NULL,
    l1 VARCHAR(50) CHARACTER SET latin1 NULL, l1t TEXT CHARACTER SET latin1 NULL,
    bin BINARY(8) NULL, vb VARBINARY(50) NULL, bl MEDIUMBLOB NULL, tx MEDIUMTEXT NULL, js JSON NULL,
    el ENUM('é','€') CHARACTER SET latin1 NULL, sl SET('ä','€','z') CHARACTER SET latin1 NULL,
    ip6 INET6 NULL, ip4 INET4 NULL
) DEFAULT CHARSET = utf8mb4";

/// Shared by the decode and catalog tests.
pub const MIN_ROW: &str = "INSERT INTO all_types VALUES (1,
    -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0, -128,
    1901, 4294967295,
    '-99999999999999999999999999999999999.999999999999999999999999999999', -12.5, 0,
    -3.40282e38, -1.7976931348623157e308,
    '1000-01-01', '-838:59:59', '-00:00:01.50', '-12:34:56.789012',
    '1000-01-01 00:00:00', '1000-01-01 00:00:00.000000',
    '1970-01-01 00:00:01.000000', '1970-01-01 00:00:01',
    b'0', b'0', b'1',
    'small', '',
    ST_GeomFromText('POINT(1 2)'),
    'x', '😀 four-byte', 'café €', '€uro é', x'00ff', x'ff00fe80', x'000102', 'plain', '{\"a\": [1, 2.5, \"x\"], \"b\": null}',
    'é', '€,z',
    '::ffff:1.2.3.4', '10.0.0.1')";

/// Shared by the decode and catalog tests.
pub const MAX_ROW: &str = "INSERT INTO all_types VALUES (2,
    127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615, 127,
    2155, 0,
    '99999999999999999999999999999999999.999999999999999999999999999999', 99999999.99, 99999,
    3.40282e38, 1.7976931348623157e308,
    '9999-12-31', '838:59:59', '838:59:58.99', '838:59:58.999999',
    '9999-12-31 23:59:59', '9999-12-31 23:59:59.999999',
    '2038-01-19 03:14:07.999999', '2038-01-19 03:14:07',
    b'1', b'1111111111111111111111111111111111111111111111111111111111111111', b'1111111111',
    'large', 'a,b,d',
    NULL,
    'fixed', 'ünïcödé ✓ 𝄞', 'ÀÉÎÕÜ', REPEAT('€', 1000), 'abc', x'c328ff', REPEAT(x'00ff', 50000), REPEAT('ж', 30000), '[]',
    '€', 'ä,€,z',
    '2001:db8::1', '255.255.255.255')";

/// Shared by the decode and catalog tests.
pub const NULL_ROW: &str = "INSERT INTO all_types (id) VALUES (3)";

/// Shared by the decode and catalog tests.
pub const ZERO_ROW: &str = "INSERT INTO all_types (id, yr, d, d2, dt, tm, dtm, dtm6, ts, ts0, e, f, db) VALUES (4,
    0, 0, 0, '0000-00-00', '00:00:00', '2020-00-15 10:00:00', '0000-00-00 00:00:00.000000',
    '0000-00-00 00:00:00', '0000-00-00 00:00:00', 'nope', 0, -0.0)";
