//! PostgreSQL-source helpers: statements on the source database (`ferry_src` on the private
//! PostgreSQL), and a source table read back as canonical row texts, independent of ferry's
//! own decoding, to compare with a target ([`super::sql::Target::rows`]).
#![allow(dead_code)]

use super::sql::canon_rows;
use ferry_operators::TableSchema;

/// The source database's URL (superuser).
pub fn src_url() -> String {
    super::mysql::url("FERRY_TEST_PG_SOURCE_URL")
}

/// The source database's URL as the least-privilege replication role.
pub fn repl_url() -> String {
    super::mysql::url("FERRY_TEST_PG_REPL_URL")
}

/// Runs statements on the source database, in order.
pub fn src_exec(sqls: &[&str]) {
    ferry::runtime::io_runtime().block_on(async {
        let c = super::sql::pg_client_at(&src_url()).await;
        for s in sqls {
            c.batch_execute(s).await.unwrap_or_else(|e| panic!("{s}: {e:?}"));
        }
    })
}

/// One value from the source database.
pub fn src_query_one(sql: &str) -> Option<String> {
    super::sql::pg_text_rows(&src_url(), sql).into_iter().next().and_then(|r| r.into_iter().next().flatten())
}

/// Drops and creates the source schema `ns`.
pub fn fresh_src_schema(ns: &str) {
    src_exec(&[&format!("DROP SCHEMA IF EXISTS \"{ns}\" CASCADE"), &format!("CREATE SCHEMA \"{ns}\"")]);
}

/// Drops the task's slot and publication if an earlier run of the test left them.
pub fn forget_slot(task: &str) {
    let name = format!("ferry_{}", task.replace('-', "_"));
    src_exec(&[
        &format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{name}' AND NOT active"
        ),
        &format!("DROP PUBLICATION IF EXISTS {name}"),
    ]);
}

/// Every row of `ns.table` on the source as canonical texts (columns of `schema`), sorted.
pub fn src_rows(ns: &str, table: &str, schema: &TableSchema) -> Vec<String> {
    let cols: Vec<String> = schema.columns.iter().map(|c| format!("\"{}\"", c.name)).collect();
    let sql = format!("SELECT {} FROM \"{ns}\".\"{table}\"", cols.join(","));
    canon_rows(super::sql::pg_text_rows(&src_url(), &sql), schema)
}
