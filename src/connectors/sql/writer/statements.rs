//! The statements a batch becomes, per dialect: multi-row upserts (`INSERT … ON DUPLICATE KEY
//! UPDATE` / `ON CONFLICT … DO UPDATE`), deletes by key, plain inserts, and the bulk paths
//! (`LOAD DATA LOCAL INFILE` text, `COPY` text into the table or a staging table + merge).

use super::*;
use std::borrow::Cow;

/// A statement the task runs.
pub(super) enum Stmt {
    Sql(String),
    /// MySQL family: `LOAD DATA LOCAL INFILE` (replace rows with equal keys when set).
    Load {
        data: Vec<u8>,
        replace: bool,
    },
    /// PostgreSQL: `COPY` straight into the table.
    Copy(Vec<u8>),
    /// PostgreSQL: `COPY` into a staging table, then one `INSERT … SELECT … ON CONFLICT`.
    Merge(Vec<u8>),
    /// PostgreSQL, insert-only upserts (the snapshot): a plain `COPY` into the table; if a key
    /// exists already, rolled back and done as [`Stmt::Merge`].
    CopyOrMerge(Vec<u8>),
}

/// PostgreSQL upsert of bulk rows: `COPY` into the session's staging table, one
/// `INSERT … SELECT … ON CONFLICT`, then empty the staging table.
pub(super) async fn merge(db: &mut Db, d: Dialect, t: &TargetTable, data: Vec<u8>) -> Result<(), DbError> {
    let stage = db.staging(&t.qname).await?;
    db.copy_in(&stage, &t.cols, data).await?;
    let mut sql = format!("INSERT INTO {} ({}) SELECT {} FROM {stage} ", t.qname, t.cols, t.cols);
    on_conflict(d, t, &mut sql);
    db.exec(&sql).await?;
    db.exec(&format!("TRUNCATE {stage}")).await
}

/// `ON CONFLICT (key) DO UPDATE SET …` (PostgreSQL) or `ON DUPLICATE KEY UPDATE …` (MySQL).
fn on_conflict(d: Dialect, t: &TargetTable, sql: &mut String) {
    let non_key: Vec<&str> =
        t.schema.columns.iter().enumerate().filter(|(i, _)| !t.key.contains(i)).map(|(_, c)| c.name.as_str()).collect();
    match d {
        Dialect::Mysql => {
            sql.push_str(" ON DUPLICATE KEY UPDATE ");
            let cols: Vec<&str> =
                if non_key.is_empty() { vec![t.schema.columns[t.key[0]].name.as_str()] } else { non_key };
            for (i, c) in cols.iter().enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                d.ident(c, sql);
                sql.push_str("=VALUES(");
                d.ident(c, sql);
                sql.push(')');
            }
        }
        Dialect::Postgres => {
            sql.push_str(" ON CONFLICT (");
            for (i, &k) in t.key.iter().enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                d.ident(&t.schema.columns[k].name, sql);
            }
            if non_key.is_empty() {
                sql.push_str(") DO NOTHING");
                return;
            }
            sql.push_str(") DO UPDATE SET ");
            for (i, c) in non_key.iter().enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                d.ident(c, sql);
                sql.push_str("=EXCLUDED.");
                d.ident(c, sql);
            }
        }
    }
}

/// Column `i`'s value `v` as the target takes it: through the column's type-choice rule
/// (PostgreSQL), which may change or refuse it.
fn fixed<'a>(t: &TargetTable, i: usize, v: &'a Value) -> Result<Cow<'a, Value>, EncodeError> {
    let Some(rule) = t.rules.get(i).copied().flatten() else { return Ok(Cow::Borrowed(v)) };
    match rule.apply(&t.schema.columns[i].name, v) {
        Ok(None) => Ok(Cow::Borrowed(v)),
        Ok(Some(x)) => Ok(Cow::Owned(x)),
        Err(e) => Err(EncodeError(e.to_string())),
    }
}

/// `(v, v, …)` of the columns `cols` of `row`.
fn row_values(
    d: Dialect,
    t: &TargetTable,
    row: &[Value],
    cols: impl Iterator<Item = usize>,
    out: &mut String,
) -> Result<(), EncodeError> {
    out.push('(');
    for (n, i) in cols.enumerate() {
        if n > 0 {
            out.push(',');
        }
        d.literal(fixed(t, i, &row[i])?.as_ref(), out)?;
    }
    out.push(')');
    Ok(())
}

/// Statements of the form `head item,item,… tail`, each cut once it reaches [`MAX_STATEMENT`].
fn chunked<R>(
    rows: &[R],
    head: &str,
    mut item: impl FnMut(&R, &mut String) -> Result<(), EncodeError>,
    tail: impl Fn(&mut String),
    out: &mut Vec<Stmt>,
) -> Result<(), EncodeError> {
    let mut sql = String::new();
    for row in rows {
        if sql.is_empty() {
            sql.push_str(head);
        } else {
            sql.push(',');
        }
        item(row, &mut sql)?;
        if sql.len() >= MAX_STATEMENT {
            tail(&mut sql);
            out.push(Stmt::Sql(std::mem::take(&mut sql)));
        }
    }
    if !sql.is_empty() {
        tail(&mut sql);
        out.push(Stmt::Sql(sql));
    }
    Ok(())
}

/// `INSERT INTO t (cols) VALUES …` statements for `rows` (with the upsert clause when asked).
fn inserts(
    d: Dialect,
    t: &TargetTable,
    rows: &[&[Value]],
    upsert: bool,
    out: &mut Vec<Stmt>,
) -> Result<(), EncodeError> {
    let head = format!("INSERT INTO {} ({}) VALUES ", t.qname, t.cols);
    let tail = |sql: &mut String| {
        if upsert {
            on_conflict(d, t, sql)
        }
    };
    chunked(rows, &head, |row, sql| row_values(d, t, row, 0..row.len(), sql), tail, out)
}

/// `DELETE … WHERE key IN (…)` statements for the keys of `rows`.
fn deletes(d: Dialect, t: &TargetTable, rows: &[&[Value]], out: &mut Vec<Stmt>) -> Result<(), EncodeError> {
    let mut head = format!("DELETE FROM {} WHERE (", t.qname);
    for (i, &k) in t.key.iter().enumerate() {
        if i > 0 {
            head.push(',');
        }
        d.ident(&t.schema.columns[k].name, &mut head);
    }
    head.push_str(") IN (");
    let item = |row: &&[Value], sql: &mut String| {
        if let [k] = t.key[..] {
            d.literal(fixed(t, k, &row[k])?.as_ref(), sql)
        } else {
            row_values(d, t, row, t.key.iter().copied(), sql)
        }
    };
    chunked(rows, &head, item, |sql| sql.push(')'), out)
}

fn bulk_data(d: Dialect, t: &TargetTable, rows: &[&[Value]]) -> Result<Vec<u8>, EncodeError> {
    let mut data = Vec::with_capacity(rows.len() * 64);
    for row in rows {
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                data.push(b'\t');
            }
            d.bulk_field(fixed(t, i, v)?.as_ref(), &mut data)?;
        }
        data.push(b'\n');
    }
    Ok(data)
}

/// Statements that write whole rows: the bulk path for large batches, else multi-row INSERTs
/// (with the upsert clause when `upsert`).
#[allow(clippy::too_many_arguments)]
fn rows_out(
    d: Dialect,
    t: &TargetTable,
    rows: &[&[Value]],
    upsert: bool,
    inserts_only: bool,
    bulk: bool,
    out: &mut Vec<Stmt>,
) -> Result<(), EncodeError> {
    if !bulk || rows.len() < BULK_MIN_ROWS {
        return inserts(d, t, rows, upsert, out);
    }
    let data = bulk_data(d, t, rows)?;
    out.push(match (d, upsert) {
        (Dialect::Mysql, replace) => Stmt::Load { data, replace },
        (Dialect::Postgres, false) => Stmt::Copy(data),
        (Dialect::Postgres, true) if inserts_only && !t.merge_only.load(Ordering::Relaxed) => Stmt::CopyOrMerge(data),
        (Dialect::Postgres, true) => Stmt::Merge(data),
    });
    Ok(())
}

/// The statements that write `rows` (already ordered) to `t`.
pub(super) fn build(
    d: Dialect,
    upsert: bool,
    bulk: bool,
    t: &TargetTable,
    rows: &[Change],
) -> Result<Vec<Stmt>, EncodeError> {
    let mut out = Vec::new();
    let bulk = bulk && t.bulk;
    if !upsert || t.key.is_empty() {
        // Append: every change is a new row. (The plan check refuses upsert for keyless tables.)
        let images: Vec<&[Value]> = rows.iter().map(|c| c.image().as_slice()).collect();
        rows_out(d, t, &images, false, true, bulk, &mut out)?;
        return Ok(out);
    }
    let split = rows.iter().position(|c| c.op != Op::Delete).unwrap_or(rows.len());
    let dels: Vec<&[Value]> = rows[..split].iter().map(|c| c.image().as_slice()).collect();
    let ups: Vec<&[Value]> = rows[split..].iter().map(|c| c.image().as_slice()).collect();
    deletes(d, t, &dels, &mut out)?;
    let inserts_only = rows[split..].iter().all(|c| c.op == Op::Insert);
    rows_out(d, t, &ups, true, inserts_only, bulk, &mut out)?;
    Ok(out)
}

/// The upsert that makes the target row with `row`'s key equal `row` (`ferry verify`'s
/// `repair.sql`): the same statement form the writer uses.
pub fn repair_upsert(
    d: Dialect,
    db: &str,
    table: &str,
    schema: &TableSchema,
    row: &[Value],
) -> Result<String, EncodeError> {
    repair(d, db, table, schema, |t, out| inserts(d, t, &[row], true, out))
}

/// The delete of the target row whose key columns hold `row`'s values (`repair.sql`).
pub fn repair_delete(
    d: Dialect,
    db: &str,
    table: &str,
    schema: &TableSchema,
    row: &[Value],
) -> Result<String, EncodeError> {
    repair(d, db, table, schema, |t, out| deletes(d, t, &[row], out))
}

/// The statements `build` makes for one table, as text.
fn repair(
    d: Dialect,
    db: &str,
    table: &str,
    schema: &TableSchema,
    build: impl FnOnce(&TargetTable, &mut Vec<Stmt>) -> Result<(), EncodeError>,
) -> Result<String, EncodeError> {
    let t = TargetTable::new(d, 0, db, table, Arc::new(schema.clone()));
    let mut out = Vec::new();
    build(&t, &mut out)?;
    let sql: Vec<String> = out
        .into_iter()
        .filter_map(|s| match s {
            Stmt::Sql(s) => Some(s),
            _ => None,
        })
        .collect();
    Ok(sql.join(";\n"))
}
