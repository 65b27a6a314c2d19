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
