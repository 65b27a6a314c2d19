//! MariaDB helpers for integration tests: the private test server's URL (scripts/servers),
//! running SQL, reading a table back through ferry's own decoder.
#![allow(dead_code)]

use ferry::connectors::mysql::config::MysqlSourceConfig;
use ferry::connectors::mysql::{discover, snapshot};
use ferry_operators::{Row, TableSchema};
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
    ferry::engine::io_runtime().block_on(async {
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
    ferry::engine::io_runtime().block_on(async {
        let mut conn = discover::connect(&opts).await.unwrap();
        let found = discover::discover(&mut conn).await.unwrap();
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
    let mut x = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("workload seed {x}");
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
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
