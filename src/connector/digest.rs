//! Range digests (what `ferry verify` compares before rows): a key range's row count and the exact sum of 64-bit row hashes, defined so
//! that a server can compute them itself and ferry can compute the same number from rows it
//! read — so a range that is equal on both sides costs one aggregate query on a side that can
//! hash (MariaDB ≥ 10.8) instead of sending every row.
//!
//! ```text
//!  row ─► bytes: per compared column  NULL → "N"
//!                                     integer → <decimal> ","
//!                                     text → <byte length> ":" <text bytes>
//!      ─► hash: CRC-32 (IEEE) of the bytes << 32 | CRC-32C (Castagnoli) of the bytes
//!  range ─► (rows, Σ hash as u128)
//! ```
//!
//! The column encoding is self-delimiting (an integer ends at its comma, a text's length comes
//! first, `N` starts no integer or length), so two rows
//! have the same bytes only when every compared value has the same text. Texts: integers in
//! decimal; text in UTF-8, or in MySQL's latin1 when the source column is latin1 (its server
//! hashes the stored bytes without converting them), without trailing spaces where the target
//! column is fixed-width. Only columns of those kinds, copied unchanged from the source, take
//! part (`crate::verify` decides which units qualify); everything else is compared from rows.
//! A side computes its digest where it is cheapest: on a MariaDB server
//! (`connectors::mysql::digest`), from PostgreSQL's `COPY` text without decoding values
//! (`connectors::postgres::digest`), else from decoded rows ([`of_rows`]).
//!
//! A digest is a shortcut for "equal", never a verdict of "different": when the two digests of a
//! range differ, the range is read and compared row by row as before, so a value whose text a
//! server writes differently from ferry costs time, not a false difference.

use ferry_operators::{Row, Value};

/// How one compared column's value enters a range digest (this module defines the
/// bytes; a reader that computes digests on its server writes the same bytes in SQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestText {
    /// An integer of any width and sign: its decimal text.
    Integer,
    /// Text: its bytes in UTF-8, or (`latin1`) in MySQL's latin1 (Windows-1252), without
    /// trailing spaces when `trim` (a fixed-width target column pads).
    Text {
        /// The bytes of MySQL's latin1 instead of UTF-8.
        latin1: bool,
        /// Trailing spaces removed first.
        trim: bool,
    },
}

/// A compared column of a range digest: its index in the read schema and its text form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestColumn {
    /// The column's index in the schema the side is read with.
    pub index: usize,
    /// How its value enters the row's bytes.
    pub text: DigestText,
}

/// A key range's digest: its row count and the exact sum of its rows' 64-bit hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digest {
    /// Rows in the range.
    pub rows: u64,
    /// The sum of the rows' hashes (no wrap-around).
    pub sum: u128,
}

/// How text stored in a MySQL-family character set enters a digest as it is: `Some(false)`
/// UTF-8 (utf8mb4, utf8mb3, ascii), `Some(true)` latin1, `None` another set.
pub fn stored_text(charset: &str) -> Option<bool> {
    match charset.to_ascii_lowercase().as_str() {
        "utf8mb4" | "utf8mb3" | "utf8" | "ascii" => Some(false),
        "latin1" => Some(true),
        _ => None,
    }
}

/// Appends a NULL's digest bytes.
pub fn push_null(out: &mut Vec<u8>) {
    out.push(b'N');
}

/// Appends an integer's digest bytes, from its decimal text.
pub fn push_integer(decimal: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(decimal.as_bytes());
    out.push(b',');
}

fn with_len(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(bytes.len()).as_bytes());
    out.push(b':');
    out.extend_from_slice(bytes);
}

/// Appends a text's digest bytes (`latin1`, `trim`: see [`DigestText::Text`]).
pub fn push_text(s: &str, latin1: bool, trim: bool, out: &mut Vec<u8>) {
    let s = if trim { s.trim_end_matches(' ') } else { s };
    if !latin1 || s.is_ascii() {
        return with_len(s.as_bytes(), out);
    }
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(s);
    if unmappable {
        // No latin1 server holds this text: bytes no server writes ("U…" never starts a
        // column there), so the ranges differ and are compared row by row.
        out.push(b'U');
        with_len(s.as_bytes(), out);
    } else {
        with_len(&bytes, out);
    }
}

/// Appends `v`'s digest bytes (see the module doc) to `out`.
fn push_value(v: &Value, text: DigestText, out: &mut Vec<u8>) {
    match (v, text) {
        (Value::Null, _) => push_null(out),
        (Value::Int(i), DigestText::Integer) => push_integer(itoa::Buffer::new().format(*i), out),
        (Value::UInt(u), DigestText::Integer) => push_integer(itoa::Buffer::new().format(*u), out),
        // An unsigned integer a PostgreSQL target holds as numeric(20,0).
        (Value::Decimal(d), DigestText::Integer) => push_integer(d.trim(), out),
        (Value::Text(s), DigestText::Text { latin1, trim }) => push_text(s, latin1, trim, out),
        // A value of another kind than the column's: never equal to a server's bytes.
        (other, _) => {
            out.push(b'X');
            with_len(other.to_string().as_bytes(), out);
        }
    }
}

/// The 64-bit hash of one row's digest bytes.
pub fn hash(bytes: &[u8]) -> u64 {
    (u64::from(crc32fast::hash(bytes)) << 32) | u64::from(crc32c::crc32c(bytes))
}

/// The 64-bit hash of one row's digest bytes, built in `buf`.
pub fn row_hash(row: &Row, columns: &[DigestColumn], buf: &mut Vec<u8>) -> u64 {
    buf.clear();
    for c in columns {
        push_value(&row[c.index], c.text, buf);
    }
    hash(buf)
}

/// The digest of `rows` over `columns` (indexes into the rows).
pub fn of_rows(rows: &[Row], columns: &[DigestColumn]) -> Digest {
    let mut buf = Vec::new();
    let sum = rows.iter().map(|r| u128::from(row_hash(r, columns, &mut buf))).sum();
    Digest { rows: rows.len() as u64, sum }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(texts: &[DigestText]) -> Vec<DigestColumn> {
        texts.iter().enumerate().map(|(index, &text)| DigestColumn { index, text }).collect()
    }

    const TEXT: DigestText = DigestText::Text { latin1: false, trim: false };

    #[test]
    fn a_row_hash_is_the_two_crcs_of_the_self_delimited_texts() {
        let row = vec![Value::Int(42), Value::Null, Value::Text("héllo".into())];
        let mut buf = Vec::new();
        let h = row_hash(&row, &cols(&[DigestText::Integer, TEXT, TEXT]), &mut buf);
        assert_eq!(buf, b"42,N6:h\xc3\xa9llo");
        assert_eq!(h >> 32, u64::from(crc32fast::hash(b"42,N6:h\xc3\xa9llo")));
        assert_eq!(h & 0xffff_ffff, u64::from(crc32c::crc32c(b"42,N6:h\xc3\xa9llo")));
    }

    #[test]
    fn moving_text_between_columns_changes_the_hash() {
        let c = cols(&[TEXT, TEXT]);
        let mut buf = Vec::new();
        let a = row_hash(&vec![Value::Text("ab".into()), Value::Text("c".into())], &c, &mut buf);
        let b = row_hash(&vec![Value::Text("a".into()), Value::Text("bc".into())], &c, &mut buf);
        let n = row_hash(&vec![Value::Null, Value::Text("N".into())], &c, &mut buf);
        let e = row_hash(&vec![Value::Text(String::new()), Value::Text("N".into())], &c, &mut buf);
        assert_ne!(a, b);
        assert_ne!(n, e, "NULL and the empty text differ");
    }

    #[test]
    fn latin1_text_is_hashed_in_latin1_and_trimmed_where_the_target_pads() {
        let mut buf = Vec::new();
        let t = DigestText::Text { latin1: true, trim: true };
        row_hash(&vec![Value::Text("é€  ".into())], &cols(&[t]), &mut buf);
        assert_eq!(buf, b"2:\xe9\x80");
        row_hash(&vec![Value::Text("ā".into())], &cols(&[t]), &mut buf);
        assert_eq!(buf, b"U2:\xc4\x81", "text latin1 cannot hold never matches a server's bytes");
    }

    #[test]
    fn unsigned_integers_read_as_decimals_hash_as_the_integer() {
        let c = cols(&[DigestText::Integer]);
        let mut buf = Vec::new();
        let a = row_hash(&vec![Value::UInt(18446744073709551615)], &c, &mut buf);
        let b = row_hash(&vec![Value::Decimal("18446744073709551615".into())], &c, &mut buf);
        assert_eq!(a, b);
    }

    #[test]
    fn a_digest_does_not_depend_on_row_order() {
        let c = cols(&[DigestText::Integer]);
        let rows: Vec<Row> = (0..100).map(|i| vec![Value::Int(i)]).collect();
        let mut rev = rows.clone();
        rev.reverse();
        assert_eq!(of_rows(&rows, &c), of_rows(&rev, &c));
        assert_ne!(of_rows(&rows, &c), of_rows(&rows[1..], &c));
    }
}
