//! The snapshot's chunks: planning (key ranges of a leading integer key column, else the
//! whole table) and reading one chunk under an exported snapshot with `COPY … TO STDOUT`
//! (text), decoded by [`super::types::decode`] like the stream's values.
//!
//! A whole-table chunk of a big table (no integer key to range over) is read in `ctid` page
//! ranges ([`page_ranges`], [`ctid_query`]: TID range scans, PostgreSQL 14+) by several
//! sessions at once, all under the same exported snapshot, and stays one chunk: one point and
//! one restart unit (a row without a key cannot be told from its twin, so parts read under two
//! snapshots could not be joined exactly; an update moves a row to another page).

use super::discover::PgSourceError;
use super::types::decode;
use crate::connector::snapshot::ChunkPosition;
use ferry_operators::{ColumnType, Row, TableSchema, Value};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_postgres::Client;

/// One chunk: a key range of a table (`lower` inclusive, `upper` exclusive, `None`: open), or
/// the whole table when both are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// The chunk's id: its place in the plan.
    pub id: u32,
    /// The table's index in the catalog ([`UNSELECTED`]: a table the plan no longer selects).
    pub table: u32,
    /// Lower bound of the range column.
    pub lower: Option<i64>,
    /// Upper bound of the range column.
    pub upper: Option<i64>,
}

/// A chunk's point: the consistent point of the snapshot it was read under; for a chunk of
/// a replayed epoch that some sink workers had committed and others not, also the point of
/// its new read and the workers that hold the first read's rows (bit `w` for worker `w`;
/// [`ChunkPosition::read_again`]). Both are recorded: every later run's stream keeps
/// telling the two groups apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Point(pub u64, pub Option<(u64, u32)>);

impl ChunkPosition for Point {
    /// pgoutput carries no before images under the default replica identity: a replayed
    /// chunk's rows cannot be turned back to its recorded point.
    const READ_AS_RECORDED: bool = false;

    fn to_offset(&self) -> serde_json::Value {
        match self.1 {
            None => json!({ "done": true, "lsn": self.0 }),
            Some((again, first)) => json!({ "done": true, "lsn": self.0, "again": again, "first_read": first }),
        }
    }

    fn from_offset(v: &serde_json::Value) -> Option<Self> {
        if v.get("done")?.as_bool() != Some(true) {
            return None;
        }
        let first = |v: &serde_json::Value| u32::try_from(v.get("first_read")?.as_u64()?).ok();
        let again = v.get("again").and_then(|a| Some((a.as_u64()?, first(v)?)));
        Some(Point(v.get("lsn")?.as_u64()?, again))
    }

    /// The stream tells the groups apart: a change between the two points goes only to the
    /// workers with the first read's rows (`Position::LsnFor`). A chunk split so before keeps
    /// its first group; one whose group changed since (a worker took the in-between read and
    /// committed it: three reads to tell apart) cannot.
    fn read_again(self, new: Self, first: u32) -> Option<Self> {
        match self.1 {
            Some((_, group)) if group != first => None,
            _ => Some(Point(self.0, Some((new.0, first)))),
        }
    }
}

/// The table index of a chunk whose table the current plan does not select.
pub const UNSELECTED: u32 = u32::MAX;

/// The column a table's chunks are ranges of: the first key column, when it is an integer.
pub fn range_column(schema: &TableSchema) -> Option<usize> {
    let first = *schema.row_key().first()?;
    matches!(schema.columns[first].ty, ColumnType::Int { .. }).then_some(first)
}

/// A double-quoted identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."table"`.
pub fn qualified(schema: &TableSchema) -> String {
    format!("{}.{}", ident(schema.name.schema.as_deref().unwrap_or("public")), ident(&schema.name.table))
}

/// Plans the chunks of table `t`, ids from `first`: about `chunk_rows` rows each by the
/// server's row estimate, evenly over the range column's span.
pub async fn plan_table(
    c: &Client,
    t: u32,
    schema: &TableSchema,
    chunk_rows: u64,
    first: u32,
) -> Result<Vec<Chunk>, PgSourceError> {
    let whole = vec![Chunk { id: first, table: t, lower: None, upper: None }];
    let Some(k) = range_column(schema) else { return Ok(whole) };
    let col = ident(&schema.columns[k].name);
    let q = qualified(schema);
    let row = c
        .query_one(
            &format!(
                "SELECT min({col})::int8, max({col})::int8, \
                 (SELECT reltuples FROM pg_class WHERE oid = '{}'::regclass)::int8 FROM {q}",
                q.replace('\'', "''")
            ),
            &[],
        )
        .await
        .map_err(PgSourceError::from_pg)?;
    let (Some(lo), Some(hi), mut estimate) =
        (row.get::<_, Option<i64>>(0), row.get::<_, Option<i64>>(1), row.get::<_, i64>(2))
    else {
        return Ok(whole);
    };
    if estimate <= 0 {
        // Never analyzed (`reltuples` is -1): count once.
        let n = c.query_one(&format!("SELECT count(*) FROM {q}"), &[]).await.map_err(PgSourceError::from_pg)?;
        estimate = n.get(0);
    }
    let n = (estimate.max(0) as u64).div_ceil(chunk_rows.max(1)).clamp(1, 100_000);
    if n <= 1 || hi <= lo {
        return Ok(whole);
    }
    let span = (hi as i128 - lo as i128 + 1) as u128;
    let step = span.div_ceil(n as u128).max(1);
    let mut bounds: Vec<i64> = Vec::new();
    let mut b = lo as i128 + step as i128;
    while b <= hi as i128 {
        bounds.push(b as i64);
        b += step as i128;
    }
    let mut chunks = Vec::with_capacity(bounds.len() + 1);
    let mut lower = None;
    for (i, &u) in bounds.iter().enumerate() {
        chunks.push(Chunk { id: first + i as u32, table: t, lower, upper: Some(u) });
        lower = Some(u);
    }
    chunks.push(Chunk { id: first + bounds.len() as u32, table: t, lower, upper: None });
    Ok(chunks)
}

/// `SELECT <every column> FROM "schema"."table"`.
fn select_all(schema: &TableSchema) -> String {
    let cols: Vec<String> = schema.columns.iter().map(|c| ident(&c.name)).collect();
    format!("SELECT {} FROM {}", cols.join(", "), qualified(schema))
}

/// Pages a `ctid` range holds at the least: a table under twice this many is read by one query.
pub const MIN_RANGE_PAGES: u64 = 32;

/// A range of heap pages: first page (inclusive) and end page (exclusive); `None`: open.
pub type PageRange = (Option<u64>, Option<u64>);

/// The `ctid` ranges a whole-table read of a table of `pages` pages is split into for
/// `sessions` sessions: up to four per session (a session that is done early takes the next
/// one), at least [`MIN_RANGE_PAGES`] each, together covering every page: the first range is
/// open below, the last open above (the table may have grown since its size was read).
pub fn page_ranges(pages: u64, sessions: usize) -> Vec<PageRange> {
    let parts = (pages / MIN_RANGE_PAGES).clamp(1, sessions.max(1) as u64 * 4);
    if parts <= 1 || sessions <= 1 {
        return vec![(None, None)];
    }
    let step = pages.div_ceil(parts);
    let mut out = Vec::with_capacity(parts as usize);
    let (mut lower, mut bound) = (None, step);
    while bound < pages {
        out.push((lower, Some(bound)));
        lower = Some(bound);
        bound += step;
    }
    out.push((lower, None));
    out
}

/// The `SELECT` of the rows of one `ctid` page range of `schema`'s table (a TID range scan).
pub fn ctid_query(schema: &TableSchema, range: PageRange) -> String {
    let tid = |page: u64| format!("'({page},0)'::tid");
    select_range(schema, "ctid", range.0.map(tid), range.1.map(tid))
}

/// [`select_all`] of the rows whose `expr` is at or above `lower` and below `upper` (SQL
/// literals; `None`: open).
fn select_range(schema: &TableSchema, expr: &str, lower: Option<String>, upper: Option<String>) -> String {
    let conds: Vec<String> = [lower.map(|l| format!("{expr} >= {l}")), upper.map(|u| format!("{expr} < {u}"))]
        .into_iter()
        .flatten()
        .collect();
    let mut q = select_all(schema);
    if !conds.is_empty() {
        q.push_str(&format!(" WHERE {}", conds.join(" AND ")));
    }
    q
}

/// The table's size in pages now (a range read's plan: pages added later fall in its last,
/// open range) and its file node (a rewrite — `VACUUM FULL`, `CLUSTER`, `TRUNCATE` — gives
/// it a new one, and its rows other `ctid`s).
pub async fn table_pages(c: &Client, schema: &TableSchema) -> Result<(u64, i64), PgSourceError> {
    let row = c
        .query_one(
            "SELECT pg_relation_size($1::text::regclass, 'main') / current_setting('block_size')::int8, \
             pg_relation_filenode($1::text::regclass)::int8",
            &[&qualified(schema)],
        )
        .await
        .map_err(PgSourceError::from_pg)?;
    Ok((row.get::<_, i64>(0).max(0) as u64, row.get::<_, Option<i64>>(1).unwrap_or(0)))
}

/// Whether `chunk` is a whole table (no key range).
pub fn is_whole(chunk: &Chunk) -> bool {
    chunk.lower.is_none() && chunk.upper.is_none()
}

/// The chunk's `SELECT`.
pub fn chunk_query(chunk: &Chunk, schema: &TableSchema) -> String {
    match range_column(schema) {
        Some(k) => select_range(
            schema,
            &ident(&schema.columns[k].name),
            chunk.lower.map(|l| l.to_string()),
            chunk.upper.map(|u| u.to_string()),
        ),
        None => select_all(schema),
    }
}

/// Reads one chunk under the exported snapshot `snapshot`, handing rows to `emit` in batches
/// (memory stays bounded whatever the chunk's size).
pub async fn read_chunk(
    c: &mut Client,
    snapshot: &str,
    chunk: &Chunk,
    schema: &TableSchema,
    emit: impl FnMut(Vec<Row>) -> bool,
) -> Result<(), PgSourceError> {
    read_query(c, snapshot, &chunk_query(chunk, schema), schema, &format!("chunk {}", chunk.id), None, emit).await
}

/// Reads the rows of `query` (columns of `schema`) under the exported snapshot `snapshot`,
/// handing them to `emit` in batches; `what` names the read in errors. `file`: the table's
/// file node the read must have seen (checked after the `COPY`, while its lock is held): a
/// `ctid` range read after a rewrite would see rows at other places than the ranges read
/// before it (a transient error: the chunk is read again).
pub async fn read_query(
    c: &mut Client,
    snapshot: &str,
    query: &str,
    schema: &TableSchema,
    what: &str,
    file: Option<i64>,
    mut emit: impl FnMut(Vec<Row>) -> bool,
) -> Result<(), PgSourceError> {
    let err = PgSourceError::from_pg;
    let tx = c
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(err)?;
    tx.batch_execute(&format!("SET TRANSACTION SNAPSHOT '{snapshot}'")).await.map_err(err)?;
    let stream = tx.copy_out(&format!("COPY ({query}) TO STDOUT")).await.map_err(err)?;
    if copy_rows(stream, schema, what, &mut emit).await? {
        if let Some(file) = file {
            let row = tx
                .query_one("SELECT pg_relation_filenode($1::text::regclass)::int8", &[&qualified(schema)])
                .await
                .map_err(err)?;
            if row.get::<_, Option<i64>>(0) != Some(file) {
                return Err(PgSourceError::Server(format!(
                    "{}: the table was rewritten (VACUUM FULL, CLUSTER, TRUNCATE…) while its ctid ranges were read; \
                     it is read again",
                    schema.name
                )));
            }
        }
        tx.commit().await.map_err(err)?;
    }
    Ok(())
}

/// Calls `line` with every line of a `COPY … TO STDOUT` text stream (without its newline);
/// `Ok(false)` from it stops the read early (and is returned).
pub async fn copy_lines(
    stream: tokio_postgres::CopyOutStream,
    mut line: impl FnMut(&[u8]) -> Result<bool, PgSourceError>,
) -> Result<bool, PgSourceError> {
    futures::pin_mut!(stream);
    let mut partial: Vec<u8> = Vec::new();
    while let Some(buf) = stream.next().await {
        let buf = buf.map_err(PgSourceError::from_pg)?;
        let mut data: &[u8] = &buf;
        while let Some(nl) = memchr::memchr(b'\n', data) {
            let whole = if partial.is_empty() {
                &data[..nl]
            } else {
                partial.extend_from_slice(&data[..nl]);
                partial.as_slice()
            };
            if !line(whole)? {
                return Ok(false);
            }
            partial.clear();
            data = &data[nl + 1..];
        }
        partial.extend_from_slice(data);
    }
    Ok(true)
}

/// Decodes the rows of a `COPY … TO STDOUT` (text) of `schema`'s columns, handing them to
/// `emit` in batches of 1024; `false` when `emit` asked to stop. `what` names the read in errors.
pub async fn copy_rows(
    stream: tokio_postgres::CopyOutStream,
    schema: &TableSchema,
    what: &str,
    emit: &mut impl FnMut(Vec<Row>) -> bool,
) -> Result<bool, PgSourceError> {
    let mut rows: Vec<Row> = Vec::with_capacity(1024);
    let whole = copy_lines(stream, |line| {
        rows.push(
            parse_row(line, schema)
                .map_err(|e| PgSourceError::Precondition(format!("{}: a row of {what}: {e}", schema.name)))?,
        );
        Ok(rows.len() < 1024 || emit(std::mem::replace(&mut rows, Vec::with_capacity(1024))))
    })
    .await?;
    if whole && !rows.is_empty() {
        emit(rows);
    }
    Ok(whole)
}

/// One `COPY` text line as a row of `schema`: fields without escapes are decoded straight
/// from the line, the others through one reused buffer.
pub fn parse_row(line: &[u8], schema: &TableSchema) -> Result<Row, String> {
    let n = schema.columns.len();
    let mut row = Vec::with_capacity(n);
    let mut scratch = Vec::new();
    let mut fields = 0;
    for raw in split_fields(line) {
        fields += 1;
        let Some(col) = schema.columns.get(fields - 1) else { continue };
        if raw == b"\\N" {
            row.push(Value::Null);
            continue;
        }
        let bytes = if memchr::memchr(b'\\', raw).is_none() {
            raw
        } else {
            unescape(raw, &mut scratch)?;
            scratch.as_slice()
        };
        let text = std::str::from_utf8(bytes).map_err(|_| format!("column {}: a field that is not UTF-8", col.name))?;
        row.push(decode(&col.ty, text).map_err(|e| format!("column {}: {e}", col.name))?);
    }
    if fields != n {
        return Err(format!("{fields} fields, {n} columns"));
    }
    Ok(row)
}

/// The tab-separated fields of a `COPY` text line, still escaped.
pub(crate) fn split_fields(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(line);
    std::iter::from_fn(move || {
        let r = rest?;
        match memchr::memchr(b'\t', r) {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// Splits a `COPY` text line into fields: tab-separated, `\N` for NULL, backslash escapes.
pub fn copy_fields(line: &[u8]) -> Result<Vec<Option<String>>, String> {
    let mut out = Vec::new();
    for raw in split_fields(line) {
        if raw == b"\\N" {
            out.push(None);
            continue;
        }
        let mut v = Vec::with_capacity(raw.len());
        unescape(raw, &mut v)?;
        out.push(Some(String::from_utf8(v).map_err(|_| "a field that is not UTF-8".to_string())?));
    }
    Ok(out)
}

/// One field's bytes with the `COPY` text escapes undone, into `v` (cleared first).
pub(crate) fn unescape(raw: &[u8], v: &mut Vec<u8>) -> Result<(), String> {
    v.clear();
    let mut i = 0;
    while i < raw.len() {
        let Some(at) = memchr::memchr(b'\\', &raw[i..]) else {
            v.extend_from_slice(&raw[i..]);
            break;
        };
        v.extend_from_slice(&raw[i..i + at]);
        i += at;
        let e = *raw.get(i + 1).ok_or("a field ends in a lone backslash")?;
        i += 2;
        v.push(match e {
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 11,
            b'0'..=b'7' => {
                let mut n = u32::from(e - b'0');
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            n = n * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                n as u8
            }
            b'x' => {
                let mut n = 0u32;
                let mut digits = 0;
                while digits < 2 {
                    match raw.get(i).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            n = n * 16 + d;
                            i += 1;
                            digits += 1;
                        }
                        None => break,
                    }
                }
                n as u8
            }
            other => other,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_operators::schema::{Column, TableName};
    use proptest::prelude::*;

    #[test]
    fn a_split_chunks_two_reads_and_first_group_are_recorded_and_kept_over_later_restarts() {
        let plain = Point(100, None);
        assert_eq!(Point::from_offset(&plain.to_offset()), Some(plain));
        // Workers 0 and 2 hold the read at 100; the others get the read at 180.
        let split = plain.read_again(Point(180, None), 0b101).unwrap();
        assert_eq!(split, Point(100, Some((180, 0b101))));
        assert_eq!(Point::from_offset(&split.to_offset()), Some(split));
        // Still split the same way at a later restart: the others' read is the newest.
        assert_eq!(split.read_again(Point(250, None), 0b101), Some(Point(100, Some((250, 0b101)))));
        // Worker 1 took the read at 180 meanwhile: three groups, not told apart.
        assert_eq!(split.read_again(Point(250, None), 0b111), None);
        assert_eq!(Point::from_offset(&json!({ "done": false })), None);
    }

    /// `COPY … TO` text escaping, as the server writes it.
    fn escape(s: &str) -> String {
        s.chars()
            .map(|c| match c {
                '\\' => "\\\\".to_string(),
                '\t' => "\\t".to_string(),
                '\n' => "\\n".to_string(),
                '\r' => "\\r".to_string(),
                '\u{8}' => "\\b".to_string(),
                '\u{c}' => "\\f".to_string(),
                '\u{b}' => "\\v".to_string(),
                c => c.to_string(),
            })
            .collect()
    }

    proptest! {
        #[test]
        fn copy_fields_read_back_what_the_server_escaped(fields in proptest::collection::vec(proptest::option::of("\\PC{0,10}|[\\\\\t\n\r]{0,4}"), 1..6)) {
            let line: Vec<String> = fields.iter().map(|f| f.as_deref().map_or("\\N".to_string(), escape)).collect();
            prop_assert_eq!(copy_fields(line.join("\t").as_bytes()), Ok(fields));
        }
    }

    proptest! {
        #[test]
        fn parse_row_reads_text_fields_as_copy_fields_does(fields in proptest::collection::vec(proptest::option::of("\\PC{0,10}|[\\\\\t\n\r]{0,4}"), 1..6)) {
            let line: Vec<String> = fields.iter().map(|f| f.as_deref().map_or("\\N".to_string(), escape)).collect();
            let schema = TableSchema {
                name: TableName { database: "d".into(), schema: Some("s".into()), table: "t".into() },
                columns: (0..fields.len())
                    .map(|i| Column::new(format!("c{i}"), ColumnType::String { max_chars: None, fixed: false }, true))
                    .collect(),
                primary_key: vec![],
                unique_keys: vec![],
                version: 1,
            };
            let want: Row = fields.iter().map(|f| f.clone().map_or(Value::Null, Value::Text)).collect();
            prop_assert_eq!(parse_row(line.join("\t").as_bytes(), &schema), Ok(want));
        }
    }

    #[test]
    fn parse_row_counts_fields_against_columns() {
        let schema = TableSchema {
            name: TableName { database: "d".into(), schema: Some("s".into()), table: "t".into() },
            columns: vec![Column::new("id", ColumnType::Int { bits: 64, unsigned: false }, false)],
            primary_key: vec![0],
            unique_keys: vec![],
            version: 1,
        };
        assert_eq!(parse_row(b"7", &schema), Ok(vec![Value::Int(7)]));
        assert_eq!(parse_row(b"7\tx", &schema), Err("2 fields, 1 columns".to_string()));
        assert!(parse_row(b"x", &schema).unwrap_err().contains("column id"));
    }

    #[test]
    fn octal_and_hex_escapes_decode() {
        assert_eq!(copy_fields(b"a\\101\\x42"), Ok(vec![Some("aAB".to_string())]));
        assert!(copy_fields(b"a\\").is_err());
    }

    #[test]
    fn chunk_queries_cover_their_range_and_nothing_else() {
        let schema = TableSchema {
            name: TableName { database: "d".into(), schema: Some("s".into()), table: "t".into() },
            columns: vec![
                Column::new("id", ColumnType::Int { bits: 64, unsigned: false }, false),
                Column::new("v", ColumnType::String { max_chars: None, fixed: false }, true),
            ],
            primary_key: vec![0],
            unique_keys: vec![],
            version: 1,
        };
        let c = Chunk { id: 0, table: 0, lower: Some(10), upper: Some(20) };
        assert_eq!(
            chunk_query(&c, &schema),
            "SELECT \"id\", \"v\" FROM \"s\".\"t\" WHERE \"id\" >= 10 AND \"id\" < 20"
        );
        let open = Chunk { lower: None, upper: None, ..c };
        assert_eq!(chunk_query(&open, &schema), "SELECT \"id\", \"v\" FROM \"s\".\"t\"");
        assert_eq!(
            ctid_query(&schema, (Some(32), Some(64))),
            "SELECT \"id\", \"v\" FROM \"s\".\"t\" WHERE ctid >= '(32,0)'::tid AND ctid < '(64,0)'::tid"
        );
        assert_eq!(
            ctid_query(&schema, (None, Some(8))),
            "SELECT \"id\", \"v\" FROM \"s\".\"t\" WHERE ctid < '(8,0)'::tid"
        );
    }

    #[test]
    fn small_tables_and_single_sessions_read_in_one_range() {
        assert_eq!(page_ranges(0, 4), vec![(None, None)]);
        assert_eq!(page_ranges(2 * MIN_RANGE_PAGES - 1, 4), vec![(None, None)]);
        assert_eq!(page_ranges(1_000_000, 1), vec![(None, None)]);
        assert_eq!(
            page_ranges(2 * MIN_RANGE_PAGES, 2),
            vec![(None, Some(MIN_RANGE_PAGES)), (Some(MIN_RANGE_PAGES), None)]
        );
    }

    proptest! {
        #[test]
        fn page_ranges_cover_every_page_once_from_open_start_to_open_end(pages in 0u64..5_000_000, sessions in 1usize..16) {
            let r = page_ranges(pages, sessions);
            prop_assert!(r.len() <= sessions * 4);
            prop_assert_eq!(r[0].0, None);
            prop_assert_eq!(r[r.len() - 1].1, None);
            for w in r.windows(2) {
                // Adjacent: each range ends where the next begins, and holds pages.
                prop_assert_eq!(w[0].1, w[1].0);
                prop_assert!(w[0].1.unwrap() > w[0].0.unwrap_or(0));
            }
            if r.len() > 1 {
                let last = r[r.len() - 1].0.unwrap();
                prop_assert!(last < pages, "the last range starts inside the table");
                let smallest = r.windows(2).map(|w| w[0].1.unwrap() - w[0].0.unwrap_or(0)).min().unwrap();
                prop_assert!(smallest >= MIN_RANGE_PAGES);
            }
        }
    }
}
