//! A source table `items (id, v)` copied into a PostgreSQL exactly-once append log
//! (`common::sql::fresh_pg_append_log`) under a random workload: the cluster and service tests.

use super::mysql::{exec, fresh_db, main_url};
use super::seeded_rng;
use super::sql::fresh_pg_append_log;
use mysql_async::prelude::Queryable;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `(id, v)` of every source row.
pub fn source_rows(db: &str) -> BTreeMap<i64, i64> {
    let opts = mysql_async::Opts::from_url(&main_url()).unwrap();
    ferry::runtime::io_runtime().block_on(async {
        let mut c = mysql_async::Conn::new(opts).await.unwrap();
        let r: Vec<(i64, i64)> = c.query(format!("SELECT id, v FROM {db}.items")).await.unwrap();
        c.disconnect().await.unwrap();
        r.into_iter().collect()
    })
}

/// A random workload on `db.items` until `stop`: updates and inserts with values no other
/// change has (so a change in the log twice is visible), deletes, primary-key changes and
/// multi-statement transactions. Returns the rounds it ran.
pub fn workload(db: String, rows: u64, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut rnd = seeded_rng("workload");
        let opts = mysql_async::Opts::from_url(&main_url()).unwrap();
        ferry::runtime::io_runtime().block_on(async {
            let mut c = mysql_async::Conn::new(opts).await.unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let uniq = 1_000_000 + i;
                let mut sql = vec![
                    format!("UPDATE {db}.items SET v = {uniq} WHERE id = {}", 1 + rnd() % rows),
                    format!("INSERT INTO {db}.items VALUES ({}, {uniq})", 10_000_000 + i),
                    format!("DELETE FROM {db}.items WHERE id = {}", 1 + rnd() % rows),
                ];
                if i.is_multiple_of(7) {
                    sql.push(format!("UPDATE {db}.items SET id = {} WHERE id = {}", 20_000_000 + i, 1 + rnd() % rows));
                }
                if i.is_multiple_of(5) {
                    sql.push(format!(
                        "BEGIN; UPDATE {db}.items SET v = {} WHERE id = {}; INSERT INTO {db}.items VALUES ({}, {}); COMMIT",
                        5_000_000 + i,
                        1 + rnd() % rows,
                        30_000_000 + i,
                        5_000_000 + i
                    ));
                }
                for s in sql {
                    c.query_drop(s).await.unwrap();
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            c.disconnect().await.unwrap();
            i
        })
    })
}

/// A fresh `db.items (id, v)` of `rows` rows and a fresh append log for it.
pub fn fresh_source(db: &str, rows: u64) {
    fresh_db(db);
    exec(&[
        &format!("USE {db}"),
        &format!("CREATE TABLE {db}.items (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)"),
        &format!("INSERT INTO {db}.items SELECT seq, seq FROM seq_1_to_{rows}"),
    ]);
    fresh_pg_append_log(db);
}
