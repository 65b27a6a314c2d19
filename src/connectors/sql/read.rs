//! A database target as `ferry verify` reads it: a table's rows in a key range, decoded into
//! the record model by the target table's plan schema (the MySQL family with the MySQL source's
//! own decoding, PostgreSQL from `COPY … TO STDOUT` with the PostgreSQL source's), and the
//! statements of `repair.sql` (the writer's upsert and delete forms).

use super::conn::{Db, DbError, SqlTarget};
use super::encode::Dialect;
use crate::connector::verify::{Digest, DigestColumn, KeyRange, ReadError, TableReader};
use crate::connectors::mysql::digest;
use crate::connectors::mysql::snapshot::{select_chunk, Chunk};
use crate::connectors::postgres::snapshot::copy_rows;
use crate::connectors::postgres::verify::range_conds;
use ferry_operators::schema::TableSchema;
use ferry_operators::{ColumnType, Row, Value};
use mysql_async::prelude::Queryable;
use std::collections::HashMap;

/// PostgreSQL session settings whose text forms the decoder reads.
const PG_TEXT: &str = "SET DateStyle = ISO; SET IntervalStyle = postgres; SET extra_float_digits = 3; \
                       SET bytea_output = hex; SET TimeZone = UTC";

/// One session on the target.
pub struct SqlReader {
    /// The runtime of this reader's session (its own: see [`crate::runtime::own_runtime`]).
    rt: tokio::runtime::Runtime,
    dialect: Dialect,
    db: Db,
    /// Whether a MySQL-family server computes range digests (asked once).
    digests: Option<bool>,
    /// Per target table (`db.table`), its columns' character sets (MySQL family, for digests).
    charsets: HashMap<String, Vec<Option<String>>>,
}

/// Opens a reader on the target.
pub fn reader(target: &SqlTarget) -> Result<SqlReader, String> {
    let rt = crate::runtime::own_runtime().map_err(|e| format!("target: {e}"))?;
    let mut db = rt.block_on(target.connect()).map_err(|e| format!("target: {e}"))?;
    if target.dialect == Dialect::Postgres {
        rt.block_on(db.exec(PG_TEXT)).map_err(|e| format!("target: {e}"))?;
    }
    let digests = (target.dialect == Dialect::Postgres).then_some(false);
    Ok(SqlReader { rt, dialect: target.dialect, db, digests, charsets: HashMap::new() })
}

fn read_error(e: DbError) -> ReadError {
    match e {
        DbError::Transient(m) => ReadError::Unavailable(format!("target: {m}")),
        DbError::Row(m) | DbError::Fatal(m) => ReadError::Table(format!("target: {m}")),
    }
}

/// The schema a PostgreSQL target table is read with: its plan schema, except unsigned integers,
/// which the target may hold in a wider type (`numeric(20,0)` for `BIGINT UNSIGNED`): read as
/// decimals, whose canonical text is the same number's; and times, which the target holds as
/// `time` or (`target_tables.postgres.time: interval`) as `interval`: read as intervals, whose
/// canonical text in a time column is the time's.
fn pg_read_schema(schema: &TableSchema) -> TableSchema {
    let mut s = schema.clone();
    for c in &mut s.columns {
        match c.ty {
            ColumnType::Int { unsigned: true, .. } => c.ty = ColumnType::Decimal { precision: 20, scale: 0 },
            ColumnType::Time { .. } => c.ty = ColumnType::Interval,
            _ => {}
        }
    }
    s
}

impl SqlReader {
    fn pg_rows(&mut self, schema: &TableSchema, range: &KeyRange) -> Result<Vec<Row>, ReadError> {
        let d = self.dialect;
        let mut cols = String::new();
        for (i, c) in schema.columns.iter().enumerate() {
            if i > 0 {
                cols.push_str(", ");
            }
            d.ident(&c.name, &mut cols);
        }
        let mut keys = String::new();
        for (i, &k) in schema.row_key().iter().enumerate() {
            if i > 0 {
                keys.push_str(", ");
            }
            d.ident(&schema.columns[k].name, &mut keys);
        }
        let table = d.qualified(&schema.name.database, &schema.name.table);
        let mut sql = format!("SELECT {cols} FROM {table}");
        let conds = range_conds(schema, range)?;
        if !conds.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
        if !keys.is_empty() {
            sql.push_str(&format!(" ORDER BY {keys}"));
        }
        let Db::Pg(client) = &self.db else { unreachable!("a PostgreSQL session") };
        let read = pg_read_schema(schema);
        let mut rows = Vec::new();
        self.rt.block_on(async {
            let stream =
                client.copy_out(&format!("COPY ({sql}) TO STDOUT")).await.map_err(|e| read_error(DbError::pg(e)))?;
            copy_rows(stream, &read, &format!("target {table}"), &mut |b| {
                rows.extend(b);
                true
            })
            .await
            .map_err(|e| ReadError::classify(e.is_transient(), format!("target: {e}")))
        })?;
        Ok(rows)
    }
}

impl TableReader for SqlReader {
    fn rows(&mut self, schema: &TableSchema, range: &KeyRange) -> Result<Vec<Row>, ReadError> {
        match &mut self.db {
            Db::My(conn) => {
                // The session reads results in utf8mb4 (`SET names`): every text column decodes as it.
                let charsets = vec![None; schema.columns.len()];
                let chunk = Chunk { id: 0, table: 0, lower: range.lower.clone(), upper: range.upper.clone() };
                let mut rows = Vec::new();
                self.rt
                    .block_on(select_chunk(conn, &chunk, schema, &charsets, |b| rows.extend(b)))
                    .map_err(|e| ReadError::classify(e.is_transient(), format!("target: {e}")))?;
                Ok(rows)
            }
            Db::Pg(_) => self.pg_rows(schema, range),
        }
    }

    fn digest(
        &mut self,
        schema: &TableSchema,
        columns: &[DigestColumn],
        range: &KeyRange,
    ) -> Result<Option<Digest>, ReadError> {
        let rt = &self.rt;
        let conn = match &mut self.db {
            Db::My(conn) => conn,
            Db::Pg(client) => {
                let table = self.dialect.qualified(&schema.name.database, &schema.name.table);
                let q = crate::connectors::postgres::digest::select(
                    schema,
                    &table,
                    columns.iter().map(|c| c.index),
                    &range_conds(schema, range)?,
                );
                return rt
                    .block_on(crate::connectors::postgres::digest::copy_digest(client, &q, columns))
                    .map(Some)
                    .map_err(|e| ReadError::classify(e.is_transient(), format!("target: {e}")));
            }
        };
        if !rt.block_on(digest::supported(conn, &mut self.digests)) {
            return Ok(None);
        }
        let name = schema.name.to_string();
        if !self.charsets.contains_key(&name) {
            let found: Vec<(String, Option<String>)> = rt
                .block_on(conn.exec(
                    "SELECT COLUMN_NAME, CHARACTER_SET_NAME FROM information_schema.COLUMNS \
                     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                    (&schema.name.database, &schema.name.table),
                ))
                .map_err(|e| ReadError::Unavailable(format!("target: the columns of {name}: {e}")))?;
            let by_name: HashMap<String, Option<String>> = found.into_iter().collect();
            let sets = schema.columns.iter().map(|c| by_name.get(&c.name).cloned().flatten()).collect();
            self.charsets.insert(name.clone(), sets);
        }
        let chunk = Chunk { id: 0, table: 0, lower: range.lower.clone(), upper: range.upper.clone() };
        let r = rt.block_on(digest::chunk_digest(conn, schema, columns, &self.charsets[&name], &chunk));
        digest::answer(r, &mut self.digests, &format!("target {name}"))
    }

    fn upsert_sql(&self, schema: &TableSchema, row: &[Value]) -> Option<String> {
        let n = &schema.name;
        Some(match super::writer::repair_upsert(self.dialect, &n.database, &n.table, schema, row) {
            Ok(s) => s,
            Err(e) => format!("-- {n}: the row cannot be written as SQL: {e}"),
        })
    }

    fn delete_sql(&self, schema: &TableSchema, key: &[Value]) -> Option<String> {
        let n = &schema.name;
        let mut row = vec![Value::Null; schema.columns.len()];
        for (&k, v) in schema.row_key().iter().zip(key) {
            row[k] = v.clone();
        }
        Some(match super::writer::repair_delete(self.dialect, &n.database, &n.table, schema, &row) {
            Ok(s) => s,
            Err(e) => format!("-- {n}: the key cannot be written as SQL: {e}"),
        })
    }
}
