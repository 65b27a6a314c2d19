//! The snapshot (full) phase: each selected table is split into key-range chunks once, at the
//! task's first start (the chunk plan is kept in the state store, so a restart reads the same
//! chunks); workers read chunks in parallel. With `handoff: server-snapshot` (MariaDB) each
//! chunk is read in its own short consistent-snapshot transaction that records the binlog
//! position the chunk's rows are consistent with (below); with `handoff: watermark` the read is
//! one `SELECT` between two binlog positions, see `watermark`.
//!
//! ```text
//!  plan_chunks (process 0, once):   SELECT key FROM t WHERE key > last ORDER BY key LIMIT 1 OFFSET n-1
//!                                   → boundaries b1 < b2 < ... ; chunks (-∞,b1) [b1,b2) ... [bk,+∞)
//!  read_chunk (any worker):         START TRANSACTION WITH CONSISTENT SNAPSHOT
//!                                   SHOW STATUS LIKE 'binlog_snapshot_%'   → position P(chunk)
//!                                   SELECT cols FROM t WHERE key >= lo AND key < hi ORDER BY key   (streamed)
//!                                   COMMIT
//!                                   (a worker's consecutive whole-table chunks — small tables —
//!                                   share one transaction and its position, up to
//!                                   [`SHARED_SNAPSHOT_TABLES`] tables)
//!  select_chunk:                    the SELECT alone (the watermark handoff's read)
//! ```
//!
//! No table lock is taken; InnoDB's consistent read holds no locks. A change in the binlog at
//! position p to a key in chunk c is already in the chunk's rows when p ≤ P(c), and must be
//! applied when p > P(c): that is the handoff rule the change stream uses.

use super::binlog::BinlogPos;
use super::discover::SourceError;
use super::types::snapshot_value;
use ferry_operators::schema::TableSchema;
use ferry_operators::{Row, TableId, Value};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use serde::{Deserialize, Serialize};

/// One key range of one table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// Chunk number in the plan (also its partition number).
    pub id: u32,
    /// The table (an index into the compiled plan's catalog).
    pub table: TableId,
    /// Inclusive lower bound of the key, `None`: unbounded.
    pub lower: Option<Vec<Value>>,
    /// Exclusive upper bound of the key, `None`: unbounded.
    pub upper: Option<Vec<Value>>,
}

/// At most this many whole small tables are read in one consistent-snapshot transaction.
pub const SHARED_SNAPSHOT_TABLES: usize = 64;

/// The table of a chunk whose table the plan no longer selects (a later start's catalog lacks
/// it): the chunk keeps its place (chunks are found by id) and is never read.
pub const UNSELECTED: TableId = TableId::MAX;

/// Quotes an identifier for MySQL.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A value as a query parameter.
pub fn param(v: &Value) -> mysql_async::Value {
    use mysql_async::Value as M;
    match v {
        Value::Null => M::NULL,
        Value::Bool(b) => M::Int(*b as i64),
        Value::Int(i) => M::Int(*i),
        Value::UInt(u) => M::UInt(*u),
        Value::Float(f) => M::Float(*f),
        Value::Double(f) => M::Double(*f),
        Value::Year(y) => M::UInt(*y as u64),
        Value::Bytes(b) | Value::Bit { bytes: b, .. } => M::Bytes(b.clone()),
        other => M::Bytes(other.to_string().into_bytes()),
    }
}

fn key_cols(schema: &TableSchema) -> String {
    schema.row_key().iter().map(|&i| ident(&schema.columns[i].name)).collect::<Vec<_>>().join(", ")
}

/// `(k1, k2) > (?, ?)`-style comparison.
pub(crate) fn key_cmp(schema: &TableSchema, op: &str) -> String {
    let n = schema.row_key().len();
    let params = vec!["?"; n].join(", ");
    format!("({}) {op} ({params})", key_cols(schema))
}

/// Splits a table into chunks of about `chunk_rows` rows by walking its key index. Keyless
/// tables are one chunk.
pub async fn plan_table(
    conn: &mut Conn,
    table: TableId,
    schema: &TableSchema,
    charsets: &[Option<String>],
    chunk_rows: u64,
    first_id: u32,
    first_probe: Option<Option<Vec<Value>>>,
) -> Result<Vec<Chunk>, SourceError> {
    let err = |e: mysql_async::Error| SourceError::Server(format!("planning chunks of {}: {e}", schema.name));
    if !schema.has_key() {
        return Ok(vec![Chunk { id: first_id, table, lower: None, upper: None }]);
    }
    let from = format!("{}.{}", ident(&schema.name.database), ident(&schema.name.table));
    let keys = key_cols(schema);
    let key_schema: Vec<_> =
        schema.row_key().iter().map(|&i| (schema.columns[i].clone(), charsets.get(i).cloned().flatten())).collect();
    let mut bounds: Vec<Vec<Value>> = Vec::new();
    // The first probe asked already (with other tables', by `first_probes`).
    match first_probe {
        Some(None) => return Ok(vec![Chunk { id: first_id, table, lower: None, upper: None }]),
        Some(Some(b)) => bounds.push(b),
        None => {}
    }
    loop {
        let (sql, params): (String, Vec<mysql_async::Value>) = match bounds.last() {
            None => (format!("SELECT {keys} FROM {from} ORDER BY {keys} LIMIT 1 OFFSET {}", chunk_rows), vec![]),
            Some(last) => (
                format!(
                    "SELECT {keys} FROM {from} WHERE {} ORDER BY {keys} LIMIT 1 OFFSET {}",
                    key_cmp(schema, ">="),
                    chunk_rows
                ),
                last.iter().map(param).collect(),
            ),
        };
        // The first probe has no parameter: a text query, one round trip (most tables of a
        // whole database end there, with one chunk).
        let row: Option<mysql_async::Row> = if params.is_empty() {
            conn.query_first(sql).await.map_err(err)?
        } else {
            conn.exec_first(sql, params).await.map_err(err)?
        };
        let Some(row) = row else { break };
        let key: Vec<Value> = row
            .unwrap()
            .into_iter()
            .zip(&key_schema)
            .map(|(v, (c, cs))| snapshot_value(v, c, cs.as_deref()).map_err(|e| SourceError::Server(e.to_string())))
            .collect::<Result<_, _>>()?;
        bounds.push(key);
    }
    let mut chunks = Vec::with_capacity(bounds.len() + 1);
    let mut lower = None;
    for b in bounds {
        chunks.push(Chunk { id: first_id + chunks.len() as u32, table, lower: lower.take(), upper: Some(b.clone()) });
        lower = Some(b);
    }
    chunks.push(Chunk { id: first_id + chunks.len() as u32, table, lower, upper: None });
    Ok(chunks)
}

/// Which of `tables` the server's statistics put well under a chunk (estimated rows under a
/// quarter of `chunk_rows`): those are planned as one chunk without a probe. A probe opens the
/// table, and a server of thousands of tables (more than its definition cache holds) takes
/// most of a millisecond for each; the statistics come in one query. InnoDB keeps its row
/// count up to date as rows are written, so the estimate is close; a table larger than its
/// estimate is still read whole and correctly, only as one chunk. A table without an estimate
/// is probed.
pub async fn estimated_small(
    conn: &mut Conn,
    tables: &[&TableSchema],
    chunk_rows: u64,
) -> Result<Vec<bool>, SourceError> {
    let err = |e: mysql_async::Error| SourceError::Server(format!("reading table statistics: {e}"));
    let mut dbs: Vec<&str> = tables.iter().map(|t| t.name.database.as_str()).collect();
    dbs.sort_unstable();
    dbs.dedup();
    let mut estimates = std::collections::HashMap::new();
    for group in dbs.chunks(PROBES_PER_QUERY) {
        let rows: Vec<(String, String, Option<u64>)> = conn
            .query(format!(
                "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ({})",
                super::discover::sql_list(group)
            ))
            .await
            .map_err(err)?;
        estimates.extend(rows.into_iter().filter_map(|(d, t, n)| Some(((d, t), n?))));
    }
    Ok(tables
        .iter()
        .map(|t| {
            let key = (t.name.database.clone(), t.name.table.clone());
            estimates.get(&key).is_some_and(|&n| n < chunk_rows / 4)
        })
        .collect())
}

/// Tables whose first probes go in one query (one round trip, one result set each).
const PROBES_PER_QUERY: usize = 100;

/// The first probe of [`plan_table`] (the key `chunk_rows` rows in; `None`: the table is one
/// chunk) of each keyed table of `tables`, [`PROBES_PER_QUERY`] tables per round trip: most
/// tables of a whole database are smaller than a chunk and need no other query.
pub async fn first_probes(
    conn: &mut Conn,
    tables: &[(&TableSchema, &[Option<String>])],
    chunk_rows: u64,
) -> Result<Vec<Option<Vec<Value>>>, SourceError> {
    let mut out = Vec::with_capacity(tables.len());
    for group in tables.chunks(PROBES_PER_QUERY) {
        let sql: String = group
            .iter()
            .map(|(schema, _)| {
                let from = format!("{}.{}", ident(&schema.name.database), ident(&schema.name.table));
                let keys = key_cols(schema);
                format!("SELECT {keys} FROM {from} ORDER BY {keys} LIMIT 1 OFFSET {chunk_rows};")
            })
            .collect();
        let err = |e: mysql_async::Error| {
            let first = group.first().map(|(s, _)| s.name.to_string()).unwrap_or_default();
            SourceError::Server(format!("planning chunks of {first} and {} more: {e}", group.len() - 1))
        };
        let mut result = conn.query_iter(sql).await.map_err(err)?;
        for (schema, charsets) in group {
            let rows: Vec<mysql_async::Row> = result.collect().await.map_err(err)?;
            let Some(row) = rows.into_iter().next() else {
                out.push(None);
                continue;
            };
            let key: Vec<Value> = row
                .unwrap()
                .into_iter()
                .zip(schema.row_key())
                .map(|(v, &i)| {
                    let cs = charsets.get(i).cloned().flatten();
                    snapshot_value(v, &schema.columns[i], cs.as_deref()).map_err(|e| SourceError::Server(e.to_string()))
                })
                .collect::<Result<_, _>>()?;
            out.push(Some(key));
        }
        result.drop_result().await.map_err(err)?;
    }
    Ok(out)
}

/// Where the binlog stands: `SHOW MASTER STATUS` (`SHOW BINARY LOG STATUS` on MySQL 8.4 and
/// later, which removed the older statement).
pub async fn current_position(conn: &mut Conn) -> Result<BinlogPos, SourceError> {
    let row: Option<mysql_async::Row> = match conn.query_first("SHOW MASTER STATUS").await {
        Ok(r) => r,
        // 1064: a syntax error, the statement is gone from this server.
        Err(mysql_async::Error::Server(e)) if e.code == 1064 => {
            conn.query_first("SHOW BINARY LOG STATUS").await.map_err(|e| SourceError::Server(e.to_string()))?
        }
        Err(e) => return Err(SourceError::Server(e.to_string())),
    };
    let row =
        row.ok_or_else(|| SourceError::Precondition("SHOW MASTER STATUS is empty: binary logging is off".into()))?;
    let file: String = row.get(0).unwrap_or_default();
    let pos: u64 = row.get(1).unwrap_or_default();
    Ok(BinlogPos { file, pos })
}

/// Reads one chunk in a consistent-snapshot transaction; calls `emit` with batches of rows and
/// returns the binlog position the rows are consistent with.
pub async fn read_chunk(
    conn: &mut Conn,
    chunk: &Chunk,
    schema: &TableSchema,
    charsets: &[Option<String>],
    emit: impl FnMut(Vec<Row>),
) -> Result<BinlogPos, SourceError> {
    let pos = begin_snapshot(conn).await?;
    select_chunk(conn, chunk, schema, charsets, emit).await?;
    end_snapshot(conn).await?;
    Ok(pos)
}

/// Opens a consistent-snapshot transaction and returns the binlog position its reads are
/// consistent with (several whole small tables may be read in one: they share the position).
pub async fn begin_snapshot(conn: &mut Conn) -> Result<BinlogPos, SourceError> {
    let err = |e: mysql_async::Error| SourceError::Server(format!("opening a consistent snapshot: {e}"));
    conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY").await.map_err(err)?;
    let status: Vec<(String, String)> = conn.query("SHOW STATUS LIKE 'binlog_snapshot_%'").await.map_err(err)?;
    let file = status.iter().find(|(k, _)| k.eq_ignore_ascii_case("binlog_snapshot_file")).map(|(_, v)| v.clone());
    let pos = status
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("binlog_snapshot_position"))
        .and_then(|(_, v)| v.parse().ok());
    let (Some(file), Some(pos)) = (file, pos) else {
        let _ = conn.query_drop("ROLLBACK").await;
        return Err(SourceError::Precondition(
            "the server does not report binlog_snapshot_file/position (a MariaDB feature): use `handoff: watermark` \
             (the default on MySQL)"
                .into(),
        ));
    };
    Ok(BinlogPos { file, pos })
}

/// Ends the transaction [`begin_snapshot`] opened.
pub async fn end_snapshot(conn: &mut Conn) -> Result<(), SourceError> {
    conn.query_drop("COMMIT").await.map_err(|e| SourceError::Server(format!("ending a consistent snapshot: {e}")))
}

/// Reads one chunk's rows with one `SELECT` (a single consistent read, in the session's
/// transaction if one is open), in key order; calls `emit` with batches of rows.
pub async fn select_chunk(
    conn: &mut Conn,
    chunk: &Chunk,
    schema: &TableSchema,
    charsets: &[Option<String>],
    mut emit: impl FnMut(Vec<Row>),
) -> Result<(), SourceError> {
    let err = |e: mysql_async::Error| SourceError::Server(format!("reading {} chunk {}: {e}", schema.name, chunk.id));
    let cols = schema.columns.iter().map(|c| ident(&c.name)).collect::<Vec<_>>().join(", ");
    let from = format!("{}.{}", ident(&schema.name.database), ident(&schema.name.table));
    let mut conds = Vec::new();
    let mut params: Vec<mysql_async::Value> = Vec::new();
    if let Some(lo) = &chunk.lower {
        conds.push(key_cmp(schema, ">="));
        params.extend(lo.iter().map(param));
    }
    if let Some(hi) = &chunk.upper {
        conds.push(key_cmp(schema, "<"));
        params.extend(hi.iter().map(param));
    }
    let mut sql = format!("SELECT {cols} FROM {from}");
    if !conds.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conds.join(" AND "));
    }
    if schema.has_key() {
        sql.push_str(&format!(" ORDER BY {}", key_cols(schema)));
    }
    // A chunk without bounds (a table of one chunk: small, or without a key) is one text
    // query: a statement of its own would take a prepare and a close round trip per table.
    let failure = if params.is_empty() {
        let result = conn.query_iter(sql).await.map_err(err)?;
        decode_rows(result, schema, charsets, &mut emit).await.map_err(err)?
    } else {
        let result = conn.exec_iter(sql, params).await.map_err(err)?;
        decode_rows(result, schema, charsets, &mut emit).await.map_err(err)?
    };
    if let Some(f) = failure {
        return Err(SourceError::Server(format!("{} chunk {}: {f}", schema.name, chunk.id)));
    }
    Ok(())
}

/// Decodes a chunk's result rows (text or binary protocol) in batches of 1024 to `emit`;
/// `Ok(Some(why))` for a value that does not decode.
async fn decode_rows<P: mysql_async::prelude::Protocol>(
    mut result: mysql_async::QueryResult<'_, '_, P>,
    schema: &TableSchema,
    charsets: &[Option<String>],
    emit: &mut impl FnMut(Vec<Row>),
) -> Result<Option<String>, mysql_async::Error> {
    let mut batch = Vec::with_capacity(1024);
    let mut failure = None;
    result
        .for_each(|row| {
            if failure.is_some() {
                return;
            }
            let values = row.unwrap();
            let mut out = Vec::with_capacity(values.len());
            for ((v, c), cs) in values.into_iter().zip(&schema.columns).zip(charsets) {
                match snapshot_value(v, c, cs.as_deref()) {
                    Ok(x) => out.push(x),
                    Err(e) => {
                        failure = Some(e.to_string());
                        return;
                    }
                }
            }
            batch.push(out);
            if batch.len() == 1024 {
                emit(std::mem::take(&mut batch));
            }
        })
        .await?;
    result.drop_result().await?;
    if failure.is_none() && !batch.is_empty() {
        emit(batch);
    }
    Ok(failure)
}

/// A text key column whose order only the server knows (a case- or accent-insensitive
/// collation): its index in the table, character set and collation.
#[derive(Debug, Clone)]
pub struct WeighedColumn {
    /// Column index in the table.
    pub column: usize,
    /// Character set name.
    pub charset: String,
    /// Collation name.
    pub collation: String,
    /// For a `PAD SPACE` collation, the column's length in characters: sort keys are taken of
    /// the value padded with spaces to that length (`WEIGHT_STRING(… AS CHAR(n))`), so they
    /// compare bytewise as the collation compares values, at every level; `None` for a
    /// `NO PAD` collation (sort keys of the value as it is).
    pub width: Option<u32>,
}

/// The server's sort keys (`WEIGHT_STRING`) of `values`, each in its column's collation: their
/// bytewise order is the collation's order. A query per 500 values; `None` values (NULL) have
/// no key.
pub async fn weights(
    conn: &mut Conn,
    values: &[(&Value, &WeighedColumn)],
) -> Result<Vec<Option<Vec<u8>>>, mysql_async::Error> {
    let safe = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let mut out = Vec::with_capacity(values.len());
    for part in values.chunks(500) {
        let mut sql = String::from("SELECT ");
        let mut params = Vec::with_capacity(part.len());
        for (i, (v, c)) in part.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            if matches!(v, Value::Null) || !safe(&c.charset) || !safe(&c.collation) {
                sql.push_str("NULL");
                continue;
            }
            let width = c.width.map(|n| format!(" AS CHAR({n})")).unwrap_or_default();
            sql.push_str(&format!("WEIGHT_STRING(CONVERT(? USING {}) COLLATE {}{width})", c.charset, c.collation));
            params.push(param(v));
        }
        let row: Option<mysql_async::Row> = conn.exec_first(sql, params).await?;
        let mut row = row.expect("a SELECT without FROM returns one row");
        out.extend((0..part.len()).map(|i| row.take::<Option<Vec<u8>>, _>(i).flatten()));
    }
    Ok(out)
}

/// The server's sort keys of one row image's key columns ordered by sort keys (`KeyOrder::Weight`).
pub(super) type ImageWeights = Option<Vec<Option<Vec<u8>>>>;

/// The server's sort keys of the weighed key columns `cols` of each change's before and after
/// image (`None` for an absent image), in as few queries as [`weights`] makes.
pub async fn image_weights(
    conn: &mut Conn,
    cols: &[WeighedColumn],
    changes: &[super::binlog::RowChange],
) -> Result<Vec<[ImageWeights; 2]>, mysql_async::Error> {
    let values: Vec<(&Value, &WeighedColumn)> = changes
        .iter()
        .flat_map(|(_, b, a)| [b, a].into_iter().flatten())
        .flat_map(|row| cols.iter().map(move |wc| (row.get(wc.column).unwrap_or(&Value::Null), wc)))
        .collect();
    let mut got = weights(conn, &values).await?.into_iter();
    let mut take = |row: &Option<Row>| row.as_ref().map(|_| got.by_ref().take(cols.len()).collect::<Vec<_>>());
    Ok(changes.iter().map(|(_, b, a)| [take(b), take(a)]).collect())
}
