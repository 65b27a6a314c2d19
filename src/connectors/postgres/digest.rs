//! Range digests (`crate::connector::digest` defines them) of a PostgreSQL table, for the
//! PostgreSQL source and target alike: PostgreSQL has no CRC function to compute them itself,
//! so the range's digested columns are read with `COPY (SELECT …) TO STDOUT` and hashed from
//! their text fields as they arrive — no row is decoded into values or kept.
//!
//! ```text
//!  COPY (SELECT c1, c2 … FROM t WHERE range) ─► line ─► fields ─► digest bytes ─► CRC-32, CRC-32C
//!                                                      (\N → "N", escapes undone, char(n)'s padding trimmed)
//! ```
//!
//! An integer's text (`int2`…`int8`, the `numeric(20,0)` of an unsigned integer) is its decimal
//! form; a text's is its UTF-8 (the session's client encoding).

use super::discover::PgSourceError;
use super::snapshot::{copy_lines, ident, split_fields, unescape};
use crate::connector::digest::{self, Digest, DigestColumn, DigestText};
use ferry_operators::schema::TableSchema;

/// `SELECT` of the columns `columns` (indexes) of `schema`'s table `from` (quoted), with
/// `conds` (SQL conditions, joined by `AND`).
pub fn select(schema: &TableSchema, from: &str, columns: impl Iterator<Item = usize>, conds: &[String]) -> String {
    let cols: Vec<String> = columns.map(|i| ident(&schema.columns[i].name)).collect();
    let mut q = format!("SELECT {} FROM {from}", cols.join(", "));
    if !conds.is_empty() {
        q.push_str(&format!(" WHERE {}", conds.join(" AND ")));
    }
    q
}

/// The digest of the rows a `COPY` of [`select`] sends.
pub async fn copy_digest(
    client: &tokio_postgres::Client,
    select: &str,
    columns: &[DigestColumn],
) -> Result<Digest, PgSourceError> {
    let stream = client.copy_out(&format!("COPY ({select}) TO STDOUT")).await.map_err(PgSourceError::from_pg)?;
    let mut d = Digest { rows: 0, sum: 0 };
    let (mut buf, mut scratch) = (Vec::new(), Vec::new());
    copy_lines(stream, |line| {
        buf.clear();
        let mut fields = 0;
        for (raw, c) in split_fields(line).zip(columns) {
            fields += 1;
            if raw == b"\\N" {
                digest::push_null(&mut buf);
                continue;
            }
            let bytes = if memchr::memchr(b'\\', raw).is_none() {
                raw
            } else {
                unescape(raw, &mut scratch).map_err(PgSourceError::Precondition)?;
                scratch.as_slice()
            };
            let text = std::str::from_utf8(bytes)
                .map_err(|_| PgSourceError::Precondition("a digested field that is not UTF-8".into()))?;
            match c.text {
                DigestText::Integer => digest::push_integer(text, &mut buf),
                DigestText::Text { latin1, trim } => digest::push_text(text, latin1, trim, &mut buf),
            }
        }
        if fields != columns.len() {
            return Err(PgSourceError::Precondition(format!(
                "a digested row of {fields} fields, {} columns",
                columns.len()
            )));
        }
        d.rows += 1;
        d.sum += u128::from(digest::hash(&buf));
        Ok(true)
    })
    .await?;
    Ok(d)
}
