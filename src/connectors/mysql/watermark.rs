//! The watermark handoff (`handoff: watermark`): a chunk's rows joined to the binlog with no
//! lock and no server-specific statement, so it works on MySQL as on MariaDB.
//!
//! ```text
//!  per chunk, on the snapshot worker's connection:
//!   L  = SHOW MASTER STATUS                 (low watermark; the window starts at an older L,
//!                                            see below)
//!   rows = SELECT cols FROM t WHERE lo <= key < hi ORDER BY key     (one statement: one
//!                                            consistent read, at some binlog point S, L <= S <= H)
//!   H  = SHOW MASTER STATUS                 (high watermark)
//!   H > L:  a binlog reader of its own (server id × 64 + 1 + worker) reads (L', H] for this table;
//!           every change to a key inside [lo, hi) replaces that key's row by its newest image
//!           or removes it (a delete, or an update that moved the key out)
//!   emit the merged rows; the chunk's position is H
//! ```
//!
//! The merged rows are the chunk as of `H`: a key no change touched in the window holds its
//! value from before `L`, which the read saw; a touched key takes its last image in `(L, H]`
//! (row images are full, so replaying a change the read already saw changes nothing). From
//! there the binlog handoff is the server snapshot's one: a transaction that began before `H`
//! is in the chunk for its keys.
//!
//! - The read must see every transaction written to the binlog before the window's start. A
//!   transaction is in the binlog a moment before its commit is visible (between the binlog
//!   write and the engine commit: an fsync, or a semi-synchronous replica's acknowledgement),
//!   so the window starts at the newest low watermark measured at least `watermark_lookback`
//!   (default 1 s) before the read, and the first chunks' at the position the run was prepared
//!   at (before its chunk plan). Replaying more is harmless.
//! - Keys are compared in the server's order ([`super::handoff::KeyOrder`]); a table whose key
//!   order ferry cannot reproduce is read as one chunk in this handoff, its keys matched by
//!   exact value. Text keys in other collations are matched by the server's sort keys.
//! - A table without a key cannot take a replayed change twice safely (a duplicate row is not
//!   an overwrite): its chunk is read again until no change to it falls in the window.
//! - A schema change of the table in the window, or a row whose width differs from the
//!   schema's, reads the chunk again.

use super::binlog::{BinlogEvent, BinlogPos, BinlogReader, RowChange, StartFrom};
use super::discover::SourceError;
use super::handoff::{key_of, key_order, ImageWeights, KeyOrder, KeyPart};
use super::snapshot::{current_position, image_weights, select_chunk, weights, Chunk, WeighedColumn};
use ferry_operators::schema::TableSchema;
use ferry_operators::{Op, Row, Value};
use mysql_async::Conn;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Reads of one chunk before a table without a key that keeps changing (or a schema that keeps
/// changing) fails the run (transient: it starts again from its checkpoint).
const MAX_READS: usize = 8;

/// Heartbeat of a window reader: how soon it notices it has reached the high watermark when
/// no event of its own says so (a rotation between the watermarks).
const WINDOW_HEARTBEAT: Duration = Duration::from_millis(100);

/// One snapshot worker's watermark state.
pub(super) struct Watermarks {
    /// Connection options for the window readers.
    pub opts: mysql_async::Opts,
    /// The window readers' replication server id (distinct per worker).
    pub server_id: u32,
    /// How far back a window starts: at the newest low watermark measured at least this long
    /// before the read.
    lookback: Duration,
    /// Low watermarks measured so far (the oldest kept is the newest one at least `lookback`
    /// old), starting with the run's start position.
    lows: std::collections::VecDeque<(Instant, BinlogPos)>,
}

impl Watermarks {
    /// A worker's state; `server_id` must be its own; `start` is the binlog position measured
    /// when the run was prepared (before the chunk plan), the first chunks' window start.
    pub fn new(opts: mysql_async::Opts, server_id: u32, lookback: Duration, start: (Instant, BinlogPos)) -> Self {
        Watermarks { opts, server_id, lookback, lows: [start].into() }
    }

    /// Records the low watermark measured now and returns where this chunk's window starts:
    /// the newest low watermark at least `lookback` old, else the oldest known (the run's
    /// start), never after `now`.
    fn window_start(&mut self, now: BinlogPos) -> BinlogPos {
        let t = Instant::now();
        while self.lows.len() > 1 && t.duration_since(self.lows[1].0) >= self.lookback {
            self.lows.pop_front();
        }
        let start = self.lows.front().map(|(_, p)| p.clone()).filter(|p| *p < now).unwrap_or_else(|| now.clone());
        self.lows.push_back((t, now));
        start
    }
}

/// How a chunk's keys are compared: the table's key columns, each column's order (`None`:
/// unknown, the table is one chunk), its weighed columns and the chunk's bounds.
pub(super) struct ChunkKeys {
    key: Vec<usize>,
    orders: Vec<Option<KeyOrder>>,
    weighed: Vec<WeighedColumn>,
    lower: Option<Vec<KeyPart>>,
    upper: Option<Vec<KeyPart>>,
}

impl ChunkKeys {
    /// The keys of `chunk`; `collations` are the table's, `lower_weights`/`upper_weights` the
    /// server's sort keys of the bounds' weighed columns (from the chunk plan).
    pub fn new(
        chunk: &Chunk,
        schema: &TableSchema,
        collations: &[Option<String>],
        weighed: &[WeighedColumn],
        lower_weights: Option<&[Option<Vec<u8>>]>,
        upper_weights: Option<&[Option<Vec<u8>>]>,
    ) -> Result<ChunkKeys, String> {
        let key = schema.row_key().to_vec();
        let orders: Vec<Option<KeyOrder>> = key
            .iter()
            .map(|&k| match key_order(&schema.columns[k].ty, collations.get(k).and_then(|c| c.as_deref())) {
                Some(KeyOrder::Weight) if !weighed.iter().any(|w| w.column == k) => None,
                o => o,
            })
            .collect();
        let bound = |b: &Option<Vec<Value>>, w: Option<&[Option<Vec<u8>>]>| -> Result<Option<Vec<KeyPart>>, String> {
            let Some(b) = b else { return Ok(None) };
            let known: Option<Vec<KeyOrder>> = orders.iter().copied().collect();
            let known = known.ok_or("a chunk bound of a key whose order is unknown")?;
            key_of(b, &(0..b.len()).collect::<Vec<_>>(), &known, w)
                .map(Some)
                .ok_or_else(|| format!("chunk {} of {}: a bound without a comparable key", chunk.id, schema.name))
        };
        let lower = bound(&chunk.lower, lower_weights)?;
        let upper = bound(&chunk.upper, upper_weights)?;
        Ok(ChunkKeys { key, orders, weighed: weighed.to_vec(), lower, upper })
    }

    /// A row's key for matching: in the server's order where known; the exact value elsewhere
    /// (a table read as one chunk). `None` when a key value is missing (NULL).
    fn identity(&self, row: &[Value], weights: Option<&[Option<Vec<u8>>]>) -> Option<Vec<KeyPart>> {
        let mut weights = weights.map(|w| w.iter());
        self.key
            .iter()
            .zip(&self.orders)
            .map(|(&k, o)| {
                let v = row.get(k)?;
                match o {
                    Some(KeyOrder::Weight) => weights.as_mut()?.next()?.clone().map(KeyPart::Bytes),
                    Some(o) => key_of(std::slice::from_ref(v), &[0], &[*o], None).and_then(|mut p| p.pop()),
                    None if matches!(v, Value::Null) => None,
                    None => Some(KeyPart::Bytes(format!("{v:?}").into_bytes())),
                }
            })
            .collect()
    }

    fn contains(&self, key: &[KeyPart]) -> bool {
        self.lower.as_deref().is_none_or(|lo| lo <= key) && self.upper.as_deref().is_none_or(|hi| key < hi)
    }
}

/// Why a chunk is read again.
#[derive(Debug, PartialEq)]
pub(super) struct Reread(pub String);

/// The chunk's `rows` with the window's `changes` (in binlog order) merged in: rows of keys the
/// window touched replaced by their newest image or removed, new keys of the chunk added.
/// `row_weights`/`change_weights` are the server's sort keys of the weighed key columns (per
/// row; per change, of the before and after images), when the key has any.
pub(super) fn merge(
    keys: &ChunkKeys,
    rows: Vec<Row>,
    changes: &[RowChange],
    row_weights: Option<&[Vec<Option<Vec<u8>>>]>,
    change_weights: Option<&[[ImageWeights; 2]]>,
) -> Result<Vec<Row>, Reread> {
    if changes.is_empty() {
        return Ok(rows);
    }
    if keys.key.is_empty() {
        return Err(Reread("the table has no key and changed while its chunk was read".into()));
    }
    let mut latest: BTreeMap<Vec<KeyPart>, Option<Row>> = BTreeMap::new();
    for (i, (op, before, after)) in changes.iter().enumerate() {
        let w = |image: usize| change_weights.and_then(|c| c[i][image].as_deref());
        let id = |row: &Row, image: usize| {
            keys.identity(row, w(image))
                .ok_or_else(|| Reread("a changed row's key has no comparable value (NULL)".into()))
        };
        let before = match (op, before) {
            (Op::Update | Op::Delete, Some(b)) => Some(id(b, 0)?),
            _ => None,
        };
        let after = match (op, after) {
            (Op::Insert | Op::Update, Some(a)) => Some((id(a, 1)?, a)),
            _ => None,
        };
        if let Some(b) = before {
            let moved = after.as_ref().is_none_or(|(a, _)| *a != b);
            if moved && keys.contains(&b) {
                latest.insert(b, None);
            }
        }
        if let Some((a, row)) = after {
            if keys.contains(&a) {
                latest.insert(a, Some(row.clone()));
            }
        }
    }
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.into_iter().enumerate() {
        let w = row_weights.map(|w| w[i].as_slice());
        match keys.identity(&row, w).and_then(|k| latest.remove(&k)) {
            None => out.push(row),
            Some(Some(newest)) => out.push(newest),
            Some(None) => {}
        }
    }
    out.extend(latest.into_values().flatten());
    Ok(out)
}

/// Reads one chunk with the watermark handoff: its rows as of the high watermark, and that
/// watermark (the chunk's position for the binlog handoff).
pub(super) async fn read_chunk(
    conn: &mut Conn,
    marks: &mut Watermarks,
    chunk: &Chunk,
    schema: &TableSchema,
    charsets: &[Option<String>],
    keys: &ChunkKeys,
) -> Result<(Vec<Row>, BinlogPos), SourceError> {
    let mut why = String::new();
    for _ in 0..MAX_READS {
        let low = marks.window_start(current_position(conn).await?);
        let mut rows = Vec::new();
        select_chunk(conn, chunk, schema, charsets, |b| rows.extend(b)).await?;
        let high = current_position(conn).await?;
        if high <= low {
            return Ok((rows, high));
        }
        let changes = match window(&marks.opts, marks.server_id, &low, &high, schema).await? {
            Ok(c) => c,
            Err(Reread(r)) => {
                why = r;
                continue;
            }
        };
        if changes.is_empty() {
            return Ok((rows, high));
        }
        let (row_weights, change_weights) = if keys.weighed.is_empty() {
            (None, None)
        } else {
            sort_keys(conn, &keys.weighed, &rows, &changes).await?
        };
        match merge(keys, rows, &changes, row_weights.as_deref(), change_weights.as_deref()) {
            Ok(rows) => {
                tracing::debug!(table = %schema.name, chunk = chunk.id, changes = changes.len(), %low, %high, "merged the window");
                return Ok((rows, high));
            }
            Err(Reread(r)) => why = r,
        }
    }
    Err(SourceError::Server(format!(
        "{} chunk {}: {why}, in each of {MAX_READS} reads (watermark handoff); one read without it is needed: pause schema \
         changes (and, for a table without a key, writes) to the table for a moment, or use `handoff: server-snapshot` \
         on MariaDB",
        schema.name, chunk.id
    )))
}

/// The changes of `schema`'s table in `(low, high]`, in binlog order, read by a binlog reader of
/// the worker's own (`server_id`); `Err(Reread)` when the table's schema changed in the window.
async fn window(
    opts: &mysql_async::Opts,
    server_id: u32,
    low: &BinlogPos,
    high: &BinlogPos,
    schema: &TableSchema,
) -> Result<Result<Vec<RowChange>, Reread>, SourceError> {
    let fail = |e: super::binlog::BinlogError| {
        SourceError::Server(format!("reading the binlog window {low}..{high} of {}: {e}", schema.name))
    };
    let (db, table) = (schema.name.database.clone(), schema.name.table.clone());
    let mut reader = BinlogReader::connect_with_heartbeat(
        opts.clone(),
        server_id,
        StartFrom::Position(low.clone()),
        WINDOW_HEARTBEAT,
    )
    .await
    .map_err(fail)?;
    reader.set_schema(&db, &table, schema.columns.clone());
    let (fdb, ft) = (db.clone(), table.clone());
    reader.set_table_filter(move |d, t| d == fdb && t == ft);
    let width = schema.columns.len();
    let mut changes = Vec::new();
    let outcome = loop {
        // Every transaction up to `high` is complete, and none after it is read: the reader's
        // position is checked after each event, whichever event ended the transaction (an
        // `XA COMMIT` reports no commit of its own).
        if reader.position() >= high {
            break Ok(Ok(std::mem::take(&mut changes)));
        }
        let Some(ev) = reader.next().await.map_err(fail)? else {
            break Err(SourceError::Server(format!("the server ended the binlog window {low}..{high}")));
        };
        match &ev {
            BinlogEvent::Rows { changes: rows, .. } => {
                if rows.iter().any(|(_, b, a)| b.as_ref().or(a.as_ref()).is_some_and(|r| r.len() != width)) {
                    break Ok(Err(Reread("a row in the window has another width than the table's schema".into())));
                }
                changes.extend(rows.iter().cloned());
            }
            BinlogEvent::Ddl { database, sql, .. } => {
                let ours = super::ddl::parse(database, sql).iter().any(|c| match &c.table {
                    Some((d, t)) => *d == db && *t == table,
                    None => mentions(database, sql, &db, &table),
                });
                if ours {
                    break Ok(Err(Reread("the table's schema changed while its chunk was read".into())));
                }
            }
            BinlogEvent::Begin { .. }
            | BinlogEvent::Commit { .. }
            | BinlogEvent::Heartbeat { .. }
            | BinlogEvent::Rotate { .. }
            | BinlogEvent::Position { .. } => {}
        }
    };
    drop(reader);
    outcome
}

/// The chunk's `rows` as of `now` turned back into its rows as of `recorded` (an earlier
/// position): the window's changes undone, newest first. A replayed epoch must hold the rows
/// it held when it was first recorded, because the binlog replays from `recorded` for the
/// chunk's keys; rows read now already hold the changes after it, which would then arrive
/// twice (an exactly-once append log would show them twice, a delete would find no row).
///
/// Undoing is the watermark merge run backwards: the window's changes in reverse order, each
/// with its images swapped (an insert undone is a delete of its row, a delete undone an insert
/// of its before image, an update undone the update back to its before image), so every
/// touched key takes its oldest before image, or none.
pub(super) async fn rewind(
    conn: &mut Conn,
    (opts, server_id): (&mysql_async::Opts, u32),
    chunk: &Chunk,
    schema: &TableSchema,
    keys: &ChunkKeys,
    rows: Vec<Row>,
    (recorded, now): (&BinlogPos, &BinlogPos),
) -> Result<Vec<Row>, SourceError> {
    if now <= recorded {
        return Ok(rows);
    }
    let changes = match window(opts, server_id, recorded, now, schema).await? {
        Ok(c) => c,
        Err(Reread(why)) => {
            return Err(SourceError::Precondition(format!(
                "{} chunk {} must be read again as it was at {recorded} (a replayed epoch of an exactly-once run)                  and cannot be: {why} between {recorded} and {now}. Start the task again with --from-scratch",
                schema.name, chunk.id
            )))
        }
    };
    let undo = undo(changes);
    let (row_weights, change_weights) =
        if keys.weighed.is_empty() { (None, None) } else { sort_keys(conn, &keys.weighed, &rows, &undo).await? };
    let n = undo.len();
    let rows = merge(keys, rows, &undo, row_weights.as_deref(), change_weights.as_deref()).map_err(|Reread(why)| {
        SourceError::Precondition(format!(
            "{} chunk {} cannot be turned back to {recorded} for a replayed epoch: {why}",
            schema.name, chunk.id
        ))
    })?;
    tracing::debug!(table = %schema.name, chunk = chunk.id, changes = n, %recorded, %now, "rewound a replayed chunk");
    Ok(rows)
}

/// The changes that undo `changes`, in the order to apply them: newest first, images swapped.
fn undo(changes: Vec<RowChange>) -> Vec<RowChange> {
    changes
        .into_iter()
        .rev()
        .map(|(op, before, after)| {
            let op = match op {
                Op::Insert => Op::Delete,
                Op::Delete => Op::Insert,
                other => other,
            };
            (op, after, before)
        })
        .collect()
}

/// Whether a statement the DDL parser could not place on a table (`DROP DATABASE`,
/// `CREATE INDEX`, `GRANT`, syntax it does not know), run with `default_db` as its default
/// database, may touch `db`.`table`: it names the table qualified by `db`, or unqualified while
/// its default database is `db`, or it names `db` other than as the qualifier of another table.
/// Statements of other databases on a busy server must not make every chunk read again (and
/// while a window starts up to `watermark_lookback` back, each read again would meet the same
/// statement); names are compared without case, and a name in quotes (`'…'`) is a string.
fn mentions(default_db: &str, sql: &str, db: &str, table: &str) -> bool {
    let tokens = sql_tokens(sql);
    let name = |i: usize| match tokens.get(i) {
        Some(SqlToken::Name(n)) => Some(n.as_str()),
        _ => None,
    };
    let dot = |i: usize| matches!(tokens.get(i), Some(SqlToken::Dot));
    (0..tokens.len()).any(|i| {
        let Some(n) = name(i) else { return false };
        // `q.n`: n qualified by q.
        let qualifier = if i >= 2 && dot(i - 1) { name(i - 2) } else { None };
        let is_table = n.eq_ignore_ascii_case(table)
            && match qualifier {
                Some(q) => q.eq_ignore_ascii_case(db),
                None => default_db.eq_ignore_ascii_case(db),
            };
        let is_db = n.eq_ignore_ascii_case(db) && qualifier.is_none() && !(dot(i + 1) && name(i + 2).is_some());
        is_table || is_db
    })
}

/// A statement's tokens as [`mentions`] reads them.
#[derive(Debug, PartialEq)]
enum SqlToken {
    /// A name: a run of letters, digits, `_` and `$`, or a quoted identifier (`` `…` `` or
    /// `"…"`) without its quotes.
    Name(String),
    /// `.` between names.
    Dot,
}

/// The names and dots of `sql`; strings (`'…'`) and everything else are left out.
fn sql_tokens(sql: &str) -> Vec<SqlToken> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '`' | '"' | '\'' => {
                // Up to the closing quote; a doubled quote stands for itself.
                let mut text = String::new();
                while let Some(d) = chars.next() {
                    if d == c {
                        if chars.peek() == Some(&c) {
                            chars.next();
                        } else {
                            break;
                        }
                    } else if d == '\\' && c == '\'' {
                        chars.next();
                        continue;
                    }
                    text.push(d);
                }
                if c != '\'' {
                    out.push(SqlToken::Name(text));
                }
            }
            '.' => out.push(SqlToken::Dot),
            c if c.is_alphanumeric() || c == '_' || c == '$' => {
                let mut word = String::from(c);
                while let Some(&d) = chars.peek() {
                    if !(d.is_alphanumeric() || d == '_' || d == '$') {
                        break;
                    }
                    word.push(d);
                    chars.next();
                }
                out.push(SqlToken::Name(word));
            }
            _ => {}
        }
    }
    out
}

/// Per-row and per-change sort keys of the weighed key columns (see [`merge`]).
type SortKeys = (Option<Vec<Vec<Option<Vec<u8>>>>>, Option<Vec<[ImageWeights; 2]>>);

/// The server's sort keys of the weighed key columns of the chunk's rows and of the window's
/// row images ([`image_weights`], as the binlog operator takes them).
async fn sort_keys(
    conn: &mut Conn,
    cols: &[WeighedColumn],
    rows: &[Row],
    changes: &[RowChange],
) -> Result<SortKeys, SourceError> {
    let err = |e: mysql_async::Error| SourceError::Server(format!("sort keys for the watermark merge: {e}"));
    fn of<'a>(cols: &'a [WeighedColumn], row: &'a Row) -> Vec<(&'a Value, &'a WeighedColumn)> {
        cols.iter().map(|wc| (row.get(wc.column).unwrap_or(&Value::Null), wc)).collect()
    }
    let of = |row| of(cols, row);
    let values: Vec<_> = rows.iter().flat_map(of).collect();
    let flat = weights(conn, &values).await.map_err(err)?;
    let row_weights: Vec<Vec<Option<Vec<u8>>>> = flat.chunks(cols.len().max(1)).map(<[_]>::to_vec).collect();
    let change_weights = image_weights(conn, cols, changes).await.map_err(err)?;
    Ok((Some(row_weights), Some(change_weights)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_operators::schema::{Column, ColumnType, TableName};

    fn table() -> TableSchema {
        TableSchema {
            name: TableName::new("d", "t"),
            columns: vec![
                Column::new("id", ColumnType::Int { bits: 32, unsigned: false }, false),
                Column::new("v", ColumnType::String { max_chars: Some(10), fixed: false }, true),
            ],
            primary_key: vec![0],
            unique_keys: vec![],
            version: 0,
        }
    }

    fn row(id: i64, v: &str) -> Row {
        vec![Value::Int(id), Value::Text(v.into())]
    }

    fn keys(lower: Option<i64>, upper: Option<i64>) -> ChunkKeys {
        let chunk = Chunk {
            id: 0,
            table: 0,
            lower: lower.map(|l| vec![Value::Int(l)]),
            upper: upper.map(|u| vec![Value::Int(u)]),
        };
        ChunkKeys::new(&chunk, &table(), &[None, None], &[], None, None).unwrap()
    }

    #[test]
    fn only_statements_naming_the_database_or_the_table_make_a_chunk_read_again() {
        assert!(mentions("x", "DROP DATABASE `shop`", "shop", "t"));
        assert!(mentions("x", "alter table SHOP.T lock=none", "shop", "t"));
        assert!(!mentions("x", "DROP DATABASE IF EXISTS shop_2", "shop", "t"));
        assert!(!mentions("x", "CREATE DATABASE test_tmp", "shop", "t"));
        assert!(!mentions("x", "GRANT SELECT ON other.* TO 'u'@'%'", "shop", "orders"));
        assert!(mentions("x", "DROP DATABASE `my-shop`", "my-shop", "t"));
    }

    #[test]
    fn a_table_of_the_same_name_in_another_database_does_not_make_a_chunk_read_again() {
        // Qualified by another database, or unqualified under another default database.
        assert!(!mentions("other", "CREATE INDEX i ON t (a)", "shop", "t"));
        assert!(!mentions("shop", "CREATE INDEX i ON other.t (a)", "shop", "t"));
        assert!(!mentions("x", "CREATE INDEX i ON `other`.`t` (a)", "shop", "t"));
        // The database as the qualifier of another of its tables.
        assert!(!mentions("x", "CREATE INDEX i ON shop.u (a)", "shop", "t"));
        assert!(!mentions("x", "CREATE INDEX i ON `shop` . `u` (a)", "shop", "t"));
        // A string is no name.
        assert!(!mentions("other", "GRANT SELECT ON other.u TO 't'@'%'", "shop", "t"));
        assert!(!mentions("other", "SET PASSWORD FOR 'shop' = 'it''s t'", "shop", "t"));
        // Ours: unqualified under our default database, or qualified by ours, in any quoting.
        assert!(mentions("shop", "CREATE INDEX i ON t (a)", "shop", "t"));
        assert!(mentions("x", "CREATE INDEX i ON `shop`.`t` (a)", "shop", "t"));
        assert!(mentions("x", "CREATE INDEX i ON \"shop\".\"T\" (a)", "shop", "t"));
    }

    proptest::proptest! {
        #[test]
        fn a_statement_touches_the_table_exactly_when_it_names_it_in_its_database(
            db in "[a-z][a-z0-9_]{0,8}",
            other in "[a-z][a-z0-9_]{0,8}",
            table in "[a-z][a-z0-9_]{0,8}",
            quote in proptest::sample::select(vec!["", "`"]),
        ) {
            proptest::prop_assume!(db != other && db != table && other != table);
            // Names that are not also the statement's other words.
            let words = ["create", "index", "i", "on", "a"];
            proptest::prop_assume!([&db, &other, &table].iter().all(|n| !words.contains(&n.as_str())));
            let on = |d: &str| format!("CREATE INDEX i ON {quote}{d}{quote}.{quote}{table}{quote} (a)");
            proptest::prop_assert!(mentions(&other, &on(&db), &db, &table));
            proptest::prop_assert!(!mentions(&db, &on(&other), &db, &table));
            let bare = format!("CREATE INDEX i ON {quote}{table}{quote} (a)");
            proptest::prop_assert!(mentions(&db, &bare, &db, &table));
            proptest::prop_assert!(!mentions(&other, &bare, &db, &table));
        }
    }

    #[test]
    fn a_window_starts_at_the_newest_low_watermark_older_than_the_lookback_else_at_the_run_start() {
        let opts: mysql_async::Opts = mysql_async::OptsBuilder::default().into();
        let p = |n: u64| BinlogPos::new("b.000001", n);
        let run_start = (Instant::now(), p(100));
        // A long look-back: every window starts at the run's start.
        let mut m = Watermarks::new(opts.clone(), 1, Duration::from_secs(3600), run_start.clone());
        assert_eq!(m.window_start(p(200)), p(100));
        assert_eq!(m.window_start(p(300)), p(100));
        // None: the previous low watermark is old enough at once.
        let mut m = Watermarks::new(opts, 1, Duration::ZERO, run_start);
        assert_eq!(m.window_start(p(200)), p(100), "the first window starts at the run's start");
        assert_eq!(m.window_start(p(300)), p(200), "then at the previous low watermark");
        // Never after the position measured now.
        assert_eq!(m.window_start(p(250)), p(250));
    }

    /// A chunk `[10, 20)`'s rows read at a window's start and the window's changes.
    fn window_fixture() -> (Vec<Row>, Vec<RowChange>) {
        let rows = vec![row(10, "a"), row(11, "b"), row(12, "c"), row(13, "d")];
        let changes: Vec<RowChange> = vec![
            // Seen by the read already, replayed: no effect beyond its own image.
            (Op::Update, Some(row(10, "a0")), Some(row(10, "a"))),
            (Op::Update, Some(row(11, "b")), Some(row(11, "b1"))),
            (Op::Update, Some(row(11, "b1")), Some(row(11, "b2"))),
            (Op::Delete, Some(row(12, "c")), None),
            // Key moved out of the chunk: gone from it; moved in: added.
            (Op::Update, Some(row(13, "d")), Some(row(30, "d"))),
            (Op::Update, Some(row(5, "e")), Some(row(15, "e"))),
            // Outside the chunk: not its business.
            (Op::Insert, None, Some(row(25, "z"))),
            // Inserted, then deleted within the window.
            (Op::Insert, None, Some(row(16, "x"))),
            (Op::Delete, Some(row(16, "x")), None),
            // Deleted, then inserted again.
            (Op::Delete, Some(row(10, "a")), None),
            (Op::Insert, None, Some(row(10, "A"))),
        ];
        (rows, changes)
    }

    fn by_id(mut rows: Vec<Row>) -> Vec<Row> {
        rows.sort_by_key(|r| match r[0] {
            Value::Int(i) => i,
            _ => 0,
        });
        rows
    }

    #[test]
    fn window_changes_to_the_chunks_keys_take_their_newest_image_and_others_stay_out() {
        let (rows, changes) = window_fixture();
        let got = merge(&keys(Some(10), Some(20)), rows, &changes, None, None).unwrap();
        assert_eq!(by_id(got), vec![row(10, "A"), row(11, "b2"), row(15, "e")]);
    }

    #[test]
    fn undoing_a_window_turns_the_chunk_back_to_its_rows_before_it() {
        let k = keys(Some(10), Some(20));
        let (before, changes) = window_fixture();
        // The rows as a read after the window finds them ...
        let now = merge(&k, before, &changes, None, None).unwrap();
        // ... turned back: the rows before the window, key 10 as its first change found it.
        let back = merge(&k, now, &undo(changes), None, None).unwrap();
        assert_eq!(by_id(back), vec![row(10, "a0"), row(11, "b"), row(12, "c"), row(13, "d")]);
    }

    #[test]
    fn a_keyless_table_changed_in_the_window_is_read_again_and_unchanged_it_is_kept() {
        let mut t = table();
        t.primary_key.clear();
        let chunk = Chunk { id: 0, table: 0, lower: None, upper: None };
        let k = ChunkKeys::new(&chunk, &t, &[None, None], &[], None, None).unwrap();
        let rows = vec![row(1, "a"), row(1, "a")];
        assert_eq!(merge(&k, rows.clone(), &[], None, None), Ok(rows.clone()));
        let change = (Op::Insert, None, Some(row(1, "a")));
        assert!(merge(&k, rows, &[change], None, None).is_err());
    }

    #[test]
    fn an_unknown_key_order_matches_by_exact_value_in_a_one_chunk_table() {
        let mut t = table();
        t.columns[0].ty = ColumnType::Double;
        let chunk = Chunk { id: 0, table: 0, lower: None, upper: None };
        let k = ChunkKeys::new(&chunk, &t, &[None, None], &[], None, None).unwrap();
        let r = |x: f64, v: &str| vec![Value::Double(x), Value::Text(v.into())];
        let got = merge(
            &k,
            vec![r(0.5, "a"), r(1.5, "b")],
            &[(Op::Update, Some(r(0.5, "a")), Some(r(0.5, "z")))],
            None,
            None,
        )
        .unwrap();
        assert_eq!(got, vec![r(0.5, "z"), r(1.5, "b")]);
    }

    #[test]
    fn case_insensitive_keys_match_by_the_servers_sort_keys() {
        let mut t = table();
        t.columns[0].ty = ColumnType::String { max_chars: Some(10), fixed: false };
        t.columns[1].ty = ColumnType::Int { bits: 32, unsigned: false };
        let weighed = vec![WeighedColumn {
            column: 0,
            charset: "utf8mb4".into(),
            collation: "utf8mb4_general_ci".into(),
            width: None,
        }];
        let chunk = Chunk { id: 0, table: 0, lower: None, upper: None };
        let collations = [Some("utf8mb4_general_ci".to_string()), None];
        let k = ChunkKeys::new(&chunk, &t, &collations, &weighed, None, None).unwrap();
        let r = |s: &str, v: i64| vec![Value::Text(s.into()), Value::Int(v)];
        let w = |s: &str| vec![Some(s.to_ascii_uppercase().into_bytes())];
        // `abc` renamed to `ABC`: the same key in this collation.
        let got = merge(
            &k,
            vec![r("abc", 1)],
            &[(Op::Update, Some(r("abc", 1)), Some(r("ABC", 2)))],
            Some(&[w("abc")]),
            Some(&[[Some(w("abc")), Some(w("ABC"))]]),
        )
        .unwrap();
        assert_eq!(got, vec![r("ABC", 2)]);
    }
}
