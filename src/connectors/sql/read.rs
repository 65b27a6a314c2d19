//! A database target as `ferry verify` reads it: a table's rows in a key range, decoded into
//! the record model by the target table's plan schema (the MySQL family with the MySQL source's
//! own decoding, PostgreSQL from its text output with the PostgreSQL source's), and the
//! statements of `repair.sql` (the writer's upsert and delete forms).

use super::conn::{Db, DbError, SqlTarget};
use super::encode::Dialect;
use crate::connector::verify::{KeyRange, ReadError, TableReader};
use crate::connectors::mysql::snapshot::{select_chunk, Chunk};
use crate::connectors::postgres::types::decode;
use crate::runtime::sink_runtime;
use ferry_operators::schema::TableSchema;
use ferry_operators::{ColumnType, Row, Value};

/// PostgreSQL session settings whose text forms the decoder reads.
const PG_TEXT: &str = "SET DateStyle = ISO; SET IntervalStyle = postgres; SET extra_float_digits = 3; \
                       SET bytea_output = hex; SET TimeZone = UTC";

/// One session on the target.
pub struct SqlReader {
    dialect: Dialect,
    db: Db,
}

/// Opens a reader on the target.
pub fn reader(target: &SqlTarget) -> Result<SqlReader, String> {
    let mut db = sink_runtime().block_on(target.connect()).map_err(|e| format!("target: {e}"))?;
    if target.dialect == Dialect::Postgres {
        sink_runtime().block_on(db.exec(PG_TEXT)).map_err(|e| format!("target: {e}"))?;
    }
    Ok(SqlReader { dialect: target.dialect, db })
}

fn read_error(e: DbError) -> ReadError {
    match e {
        DbError::Transient(m) => ReadError::Unavailable(format!("target: {m}")),
        DbError::Row(m) | DbError::Fatal(m) => ReadError::Table(format!("target: {m}")),
    }
}

/// A value of a PostgreSQL target column written from a record-model column of type `ty` (the
/// target's type may be wider: unsigned integers in the next signed type or `numeric(20,0)`).
fn pg_value(ty: &ColumnType, text: &str) -> Result<Value, String> {
    match ty {
        ColumnType::Int { unsigned: true, .. } => {
            text.parse::<u64>().map(Value::UInt).map_err(|_| format!("`{text}` is not an unsigned integer"))
        }
        other => decode(other, text),
    }
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
        let mut conds = Vec::new();
        for (bound, op) in [(&range.lower, ">="), (&range.upper, "<")] {
            if let Some(b) = bound {
                let mut lit = String::new();
                for (i, v) in b.iter().enumerate() {
                    if i > 0 {
                        lit.push_str(", ");
                    }
                    d.literal(v, &mut lit).map_err(|e| ReadError::Table(format!("a key bound of {table}: {e}")))?;
                }
                conds.push(format!("({keys}) {op} ({lit})"));
            }
        }
        if !conds.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
        if !keys.is_empty() {
            sql.push_str(&format!(" ORDER BY {keys}"));
        }
        let Db::Pg(client) = &self.db else { unreachable!("a PostgreSQL session") };
        let messages = sink_runtime().block_on(client.simple_query(&sql)).map_err(|e| read_error(DbError::pg(e)))?;
        let mut rows = Vec::new();
        for m in messages {
            let tokio_postgres::SimpleQueryMessage::Row(r) = m else { continue };
            let mut row = Vec::with_capacity(schema.columns.len());
            for (i, c) in schema.columns.iter().enumerate() {
                row.push(match r.get(i) {
                    None => Value::Null,
                    Some(text) => pg_value(&c.ty, text)
                        .map_err(|e| ReadError::Table(format!("target {table} column `{}`: {e}", c.name)))?,
                });
            }
            rows.push(row);
        }
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
                sink_runtime().block_on(select_chunk(conn, &chunk, schema, &charsets, |b| rows.extend(b))).map_err(
                    |e| {
                        if e.is_transient() {
                            ReadError::Unavailable(format!("target: {e}"))
                        } else {
                            ReadError::Table(format!("target: {e}"))
                        }
                    },
                )?;
                Ok(rows)
            }
            Db::Pg(_) => self.pg_rows(schema, range),
        }
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
