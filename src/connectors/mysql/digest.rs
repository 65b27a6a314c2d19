//! Range digests computed by a MariaDB server (`crate::connector::digest` defines them): one
//! aggregate query per key range instead of its rows, for the MySQL source and the MySQL-family
//! target alike.
//!
//! ```text
//!  SELECT COUNT(*), SUM((CRC32(…CRC32(CRC32(0, piece1), piece2)…) << 32) | CRC32C(…same…))
//!    FROM t WHERE key >= lower AND key < upper
//!  pieces of an integer column:  IFNULL(i, 'N'), IF(i IS NULL, '', ',')
//!  pieces of a text column:      IFNULL(LENGTH(x), 'N'), IF(x IS NULL, '', ':'), IFNULL(x, '')
//! ```
//!
//! The two CRCs are continued piece by piece (`CRC32(crc, expr)`, MariaDB 10.8 and later): no
//! row text is built (half the server's time of hashing a `CONCAT`), and
//! each column is hashed in its own character set: a latin1 column's stored bytes are hashed
//! as they are (no conversion per row); a column whose set is not the digest's is converted
//! (`CONVERT(… USING utf8mb4)`) when that loses nothing, else the server computes no digest
//! for it and ferry hashes its rows. Servers without the two-argument CRCs (MySQL, MariaDB before 10.8)
//! compute no digests; their rows are read as before.

use super::snapshot::{ident, key_cmp, param, Chunk};
use crate::connector::digest::stored_text;
use crate::connector::verify::{Digest, DigestColumn, DigestText, ReadError};
use ferry_operators::schema::{ColumnType, TableSchema};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// Whether the server computes `CRC32(crc, expr)` and `CRC32C(crc, expr)`, asked once per
/// reader (`known` keeps the answer).
pub async fn supported(conn: &mut Conn, known: &mut Option<bool>) -> bool {
    if known.is_none() {
        *known = Some(conn.query_drop("SELECT CRC32(1, 'a'), CRC32C(1, 'a')").await.is_ok());
    }
    *known == Some(true)
}

/// The SQL expressions whose texts, hashed one after the other, are one column's digest bytes
/// (see the module doc); `charset` is the column's own character set (`None`: unknown).
/// Every piece is NULL-safe whatever the catalog says of the column (`CRC32(crc, NULL)` is
/// NULL, which would leave the whole row out of the sum). `None` when the server cannot write
/// the column's bytes without loss: latin1 bytes of a column in another character set (its
/// conversion turns what latin1 lacks into `?`) — the side's rows are hashed in ferry instead.
pub fn column_pieces(schema: &TableSchema, c: &DigestColumn, charset: Option<&str>) -> Option<Vec<String>> {
    let col = &schema.columns[c.index];
    let name = ident(&col.name);
    Some(match c.text {
        DigestText::Integer => vec![format!("IFNULL({name}, 'N')"), format!("IF({name} IS NULL, '', ',')")],
        DigestText::Text { latin1, trim } => {
            let mut x = match charset.and_then(stored_text) {
                Some(own) if own == latin1 => name,
                _ if latin1 => return None,
                // Any character set converts to utf8mb4 without loss.
                _ => format!("CONVERT({name} USING utf8mb4)"),
            };
            // A CHAR column reads without its trailing spaces already (PAD SPACE).
            if trim && !matches!(col.ty, ColumnType::String { fixed: true, .. }) {
                x = format!("TRIM(TRAILING ' ' FROM {x})");
            }
            vec![format!("IFNULL(LENGTH({x}), 'N')"), format!("IF({x} IS NULL, '', ':')"), format!("IFNULL({x}, '')")]
        }
    })
}

/// The query of a range's digest, with its key-bound parameters (`None`: see
/// [`column_pieces`]).
fn query(
    schema: &TableSchema,
    columns: &[DigestColumn],
    charsets: &[Option<String>],
    chunk: &Chunk,
) -> Option<(String, Vec<mysql_async::Value>)> {
    let mut parts: Vec<String> = Vec::new();
    for c in columns {
        parts.extend(column_pieces(schema, c, charsets.get(c.index).and_then(|c| c.as_deref()))?);
    }
    let chain = |f: &str| parts.iter().fold("0".to_string(), |acc, p| format!("{f}({acc}, {p})"));
    let from = format!("{}.{}", ident(&schema.name.database), ident(&schema.name.table));
    let mut sql = format!(
        "SELECT COUNT(*), CAST(COALESCE(SUM(({} << 32) | {}), 0) AS CHAR) FROM {from}",
        chain("CRC32"),
        chain("CRC32C")
    );
    let mut conds = Vec::new();
    let mut params = Vec::new();
    for (bound, op) in [(&chunk.lower, ">="), (&chunk.upper, "<")] {
        if let Some(b) = bound {
            conds.push(key_cmp(schema, op));
            params.extend(b.iter().map(param));
        }
    }
    if !conds.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conds.join(" AND "));
    }
    Some((sql, params))
}

/// The server's digest of `chunk`'s rows over `columns` (`None`: it cannot write them without
/// loss, see [`column_pieces`]).
pub async fn chunk_digest(
    conn: &mut Conn,
    schema: &TableSchema,
    columns: &[DigestColumn],
    charsets: &[Option<String>],
    chunk: &Chunk,
) -> Result<Option<Digest>, mysql_async::Error> {
    let Some((sql, params)) = query(schema, columns, charsets, chunk) else { return Ok(None) };
    let row: Option<(u64, String)> =
        if params.is_empty() { conn.query_first(sql).await? } else { conn.exec_first(sql, params).await? };
    let (rows, sum) = row.unwrap_or((0, "0".into()));
    let sum = sum
        .parse()
        .map_err(|e| mysql_async::Error::Other(format!("a digest sum the server wrote as `{sum}`: {e}").into()))?;
    Ok(Some(Digest { rows, sum }))
}

/// A digest query's answer: a server that refuses the query (an error it returns, not a lost
/// session) computes no more digests in this reader, and its rows are read instead.
pub fn answer(
    r: Result<Option<Digest>, mysql_async::Error>,
    digests: &mut Option<bool>,
    table: &str,
) -> Result<Option<Digest>, ReadError> {
    match r {
        Ok(d) => Ok(d),
        Err(mysql_async::Error::Server(e)) => {
            tracing::warn!("{table}: the server computes no digest ({e}); reading its rows instead");
            *digests = Some(false);
            Ok(None)
        }
        Err(e) => Err(ReadError::Unavailable(format!("a digest of {table}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_operators::schema::{Column, TableName};

    fn schema() -> TableSchema {
        TableSchema {
            name: TableName::new("d", "t"),
            columns: vec![
                Column::new("i", ColumnType::Int { bits: 32, unsigned: false }, false),
                Column::new("s", ColumnType::String { max_chars: Some(9), fixed: false }, false),
            ],
            primary_key: vec![0],
            unique_keys: Vec::new(),
            version: 1,
        }
    }

    #[test]
    fn every_piece_is_null_safe_even_for_a_column_the_catalog_calls_not_null() {
        let s = schema();
        let int = column_pieces(&s, &DigestColumn { index: 0, text: DigestText::Integer }, None).unwrap();
        assert_eq!(int, ["IFNULL(`i`, 'N')", "IF(`i` IS NULL, '', ',')"]);
        let text = DigestText::Text { latin1: false, trim: false };
        let t = column_pieces(&s, &DigestColumn { index: 1, text }, Some("utf8mb4")).unwrap();
        assert_eq!(t, ["IFNULL(LENGTH(`s`), 'N')", "IF(`s` IS NULL, '', ':')", "IFNULL(`s`, '')"]);
    }

    #[test]
    fn a_column_is_converted_only_where_nothing_is_lost() {
        let s = schema();
        let c = |latin1, cs| {
            column_pieces(&s, &DigestColumn { index: 1, text: DigestText::Text { latin1, trim: false } }, cs)
        };
        assert!(c(true, Some("latin1")).unwrap()[2].contains("IFNULL(`s`, '')"), "latin1 bytes as stored");
        assert_eq!(c(true, Some("utf8mb4")), None, "utf8mb4 to latin1 turns what latin1 lacks into ?");
        assert_eq!(c(true, None), None);
        assert!(c(false, Some("latin1")).unwrap()[2].contains("CONVERT(`s` USING utf8mb4)"));
        assert!(c(false, Some("ascii")).unwrap()[2].contains("IFNULL(`s`, '')"));
    }
}
