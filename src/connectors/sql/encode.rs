//! Value encoders of the database targets: SQL literals for each dialect, and the text row
//! formats of the bulk paths (`LOAD DATA` for the MySQL family, `COPY … FROM STDIN` text for
//! PostgreSQL). A value a dialect cannot hold (NaN in MySQL, a NUL character in PostgreSQL
//! text) is an [`EncodeError`]: the row's own problem, so it becomes dirty data.

use ferry_operators::value::{format_time, format_timestamp, Date, DateTime};
use ferry_operators::Value;
use std::fmt::Write;

/// The SQL dialect of a database target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// MySQL, MariaDB and the servers that speak their protocol.
    Mysql,
    /// PostgreSQL.
    Postgres,
}

/// A value the target cannot hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EncodeError(pub String);

impl Dialect {
    /// Quotes an identifier.
    pub fn ident(self, name: &str, out: &mut String) {
        match self {
            Dialect::Mysql => {
                out.push('`');
                out.push_str(&name.replace('`', "``"));
                out.push('`');
            }
            Dialect::Postgres => {
                out.push('"');
                out.push_str(&name.replace('"', "\"\""));
                out.push('"');
            }
        }
    }

    /// `db.table`, quoted.
    pub fn qualified(self, db: &str, table: &str) -> String {
        let mut s = String::new();
        self.ident(db, &mut s);
        s.push('.');
        self.ident(table, &mut s);
        s
    }

    /// Appends `v` as a SQL literal.
    pub fn literal(self, v: &Value, out: &mut String) -> Result<(), EncodeError> {
        match self {
            Dialect::Mysql => mysql_literal(v, out),
            Dialect::Postgres => pg_literal(v, out),
        }
    }

    /// Appends `v` as one field of the bulk path's text format (tab-separated, backslash
    /// escapes, `\N` for NULL: the same rules for `LOAD DATA` and `COPY` text).
    pub fn bulk_field(self, v: &Value, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match v {
            Value::Null => {
                out.extend_from_slice(b"\\N");
                return Ok(());
            }
            Value::Int(i) => {
                out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes());
                return Ok(());
            }
            Value::UInt(u) => {
                out.extend_from_slice(itoa::Buffer::new().format(*u).as_bytes());
                return Ok(());
            }
            Value::Text(s) | Value::Enum(s) | Value::Set(s) | Value::Json(s) => {
                let start = out.len();
                if escape_bulk(s.as_bytes(), out) && self == Dialect::Postgres {
                    out.truncate(start);
                    return Err(EncodeError("PostgreSQL text cannot hold the NUL character (U+0000)".into()));
                }
                return Ok(());
            }
            _ => {}
        }
        match (self, v) {
            (Dialect::Postgres, Value::Bytes(b)) => {
                // bytea hex input; the backslash itself is escaped in COPY text.
                out.extend_from_slice(b"\\\\x");
                hex(b, out);
                return Ok(());
            }
            (Dialect::Postgres, Value::Bool(b)) => {
                out.extend_from_slice(if *b { b"t" } else { b"f" });
                return Ok(());
            }
            _ => {}
        }
        let mut s = String::new();
        self.text(v, &mut s)?;
        escape_bulk(s.as_bytes(), out);
        Ok(())
    }

    /// The value's text form as this dialect reads it from a string (not quoted, not escaped).
    fn text(self, v: &Value, out: &mut String) -> Result<(), EncodeError> {
        match v {
            Value::Null => unreachable!("NULL has no text form"),
            Value::Bool(b) => out.push_str(match (self, b) {
                (Dialect::Mysql, true) => "1",
                (Dialect::Mysql, false) => "0",
                (Dialect::Postgres, true) => "true",
                (Dialect::Postgres, false) => "false",
            }),
            Value::Float(f) => float(self, *f as f64, &format!("{f:?}"), out)?,
            Value::Double(f) => float(self, *f, &format!("{f:?}"), out)?,
            Value::Decimal(d) => {
                if self == Dialect::Mysql && ferry_operators::value::decimal_special(d).is_some() {
                    return Err(EncodeError(format!("the MySQL family has no decimal `{d}`")));
                }
                out.push_str(d)
            }
            Value::Text(s) | Value::Json(s) | Value::Enum(s) | Value::Set(s) => {
                if self == Dialect::Postgres && s.contains('\0') {
                    return Err(EncodeError("PostgreSQL text cannot hold the NUL character (U+0000)".into()));
                }
                out.push_str(s)
            }
            Value::Bytes(b) => match self {
                Dialect::Mysql => out.push_str(&String::from_utf8_lossy(b)),
                Dialect::Postgres => {
                    out.push_str("\\x");
                    let mut h = Vec::with_capacity(b.len() * 2);
                    hex(b, &mut h);
                    out.push_str(std::str::from_utf8(&h).expect("hex is ASCII"));
                }
            },
            Value::Date(d) => {
                if self == Dialect::Mysql && d.is_infinite() {
                    return Err(EncodeError(format!("the MySQL family has no date `{d}`")));
                }
                match bc(self, d) {
                    Some(year) => {
                        let _ = write!(out, "{} BC", Date { year, ..*d });
                    }
                    None => {
                        let _ = write!(out, "{d}");
                    }
                }
            }
            Value::Time(t) => {
                let _ = format_time(*t, out);
            }
            Value::DateTime(dt) => {
                if self == Dialect::Mysql && dt.date.is_infinite() {
                    return Err(EncodeError(format!("the MySQL family has no datetime `{dt}`")));
                }
                match bc(self, &dt.date) {
                    Some(year) => {
                        let _ = write!(out, "{} BC", DateTime { date: Date { year, ..dt.date }, ..*dt });
                    }
                    None => {
                        let _ = write!(out, "{dt}");
                    }
                }
            }
            Value::Timestamp(t) => match self {
                // MySQL's zero TIMESTAMP is stored as 0 seconds (1970-01-01 00:00:00 UTC is
                // outside TIMESTAMP's range), so 0 can only be the zero timestamp.
                Dialect::Mysql if *t == 0 => out.push_str("0000-00-00 00:00:00"),
                // The session's time zone is UTC: a civil UTC time is the instant.
                Dialect::Mysql => {
                    let dt = DateTime::from_epoch_micros(*t);
                    if dt.date.is_infinite() {
                        return Err(EncodeError("the MySQL family has no infinite timestamp".into()));
                    }
                    let _ = write!(out, "{dt}");
                }
                Dialect::Postgres => {
                    let dt = DateTime::from_epoch_micros(*t);
                    match bc(self, &dt.date) {
                        // PostgreSQL reads years before 1 AD as `… BC`, not as negative years.
                        Some(year) => {
                            let _ = write!(out, "{}+00 BC", DateTime { date: Date { year, ..dt.date }, ..dt });
                        }
                        None => {
                            let _ = format_timestamp(*t, out);
                        }
                    }
                }
            },
            Value::Int(_)
            | Value::UInt(_)
            | Value::Year(_)
            | Value::Bit { .. }
            | Value::Interval(_)
            | Value::Uuid(_)
            | Value::Array(_) => {
                let _ = write!(out, "{v}");
            }
        }
        Ok(())
    }
}

/// For PostgreSQL, a finite date before 1 AD as its BC year (astronomical year 0 is 1 BC).
fn bc(d: Dialect, date: &Date) -> Option<i32> {
    (d == Dialect::Postgres && date.year <= 0 && !date.is_infinite()).then(|| 1 - date.year)
}

fn float(d: Dialect, f: f64, repr: &str, out: &mut String) -> Result<(), EncodeError> {
    if f.is_finite() {
        out.push_str(repr);
        return Ok(());
    }
    match d {
        Dialect::Mysql => Err(EncodeError(format!("the MySQL family has no floating-point `{f}`"))),
        Dialect::Postgres => {
            out.push_str(if f.is_nan() {
                "NaN"
            } else if f > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            });
            Ok(())
        }
    }
}

fn hex(b: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for x in b {
        out.push(HEX[(x >> 4) as usize]);
        out.push(HEX[(x & 15) as usize]);
    }
}

/// Appends `b` escaped for a bulk-load text field (backslash, tab, newline, carriage return
/// and NUL as backslash escapes); returns whether `b` held a NUL byte. Runs of plain bytes are
/// copied whole: eight bytes at a time are tested for a byte below 0x0E (tab, newline, CR and
/// NUL are) or equal to a backslash, and only a word with one is looked at byte by byte.
fn escape_bulk(b: &[u8], out: &mut Vec<u8>) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    out.reserve(b.len());
    let mut nul = false;
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if let Some(word) = b.get(i..i + 8) {
            let x = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            let below = x.wrapping_sub(ONES * 0x0E) & !x & HIGH;
            let y = x ^ (ONES * u64::from(b'\\'));
            let backslash = y.wrapping_sub(ONES) & !y & HIGH;
            if below | backslash == 0 {
                i += 8;
                continue;
            }
        }
        let end = (i + 8).min(b.len());
        for (j, &c) in b.iter().enumerate().take(end).skip(i) {
            let esc: &[u8] = match c {
                b'\\' => b"\\\\",
                b'\t' => b"\\t",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                0 => {
                    nul = true;
                    b"\\0"
                }
                _ => continue,
            };
            out.extend_from_slice(&b[copied..j]);
            out.extend_from_slice(esc);
            copied = j + 1;
        }
        i = end;
    }
    out.extend_from_slice(&b[copied..]);
    nul
}

fn mysql_literal(v: &Value, out: &mut String) -> Result<(), EncodeError> {
    match v {
        Value::Null => out.push_str("NULL"),
        Value::Bool(_) | Value::Int(_) | Value::UInt(_) | Value::Year(_) | Value::Float(_) | Value::Double(_) => {
            Dialect::Mysql.text(v, out)?
        }
        Value::Decimal(_) => Dialect::Mysql.text(v, out)?,
        Value::Bytes(b) if b.is_empty() => out.push_str("''"),
        Value::Bytes(b) => {
            out.push_str("X'");
            let mut h = Vec::with_capacity(b.len() * 2);
            hex(b, &mut h);
            out.push_str(std::str::from_utf8(&h).expect("hex is ASCII"));
            out.push('\'');
        }
        Value::Bit { .. } => {
            let _ = write!(out, "b'{v}'");
        }
        _ => {
            let mut s = String::new();
            Dialect::Mysql.text(v, &mut s)?;
            out.reserve(s.len() + 2);
            out.push('\'');
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\'' => out.push_str("\\'"),
                    '\0' => out.push_str("\\0"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\x1a' => out.push_str("\\Z"),
                    c => out.push(c),
                }
            }
            out.push('\'');
        }
    }
    Ok(())
}

fn pg_literal(v: &Value, out: &mut String) -> Result<(), EncodeError> {
    match v {
        Value::Null => out.push_str("NULL"),
        _ => {
            // Every value as an untyped string literal: PostgreSQL reads it with the target
            // column's input function, so one encoding serves every column type.
            let mut s = String::new();
            Dialect::Postgres.text(v, &mut s)?;
            out.reserve(s.len() + 2);
            out.push('\'');
            for c in s.chars() {
                if c == '\'' {
                    out.push('\'');
                }
                out.push(c);
            }
            out.push('\'');
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lit(d: Dialect, v: &Value) -> String {
        let mut s = String::new();
        d.literal(v, &mut s).unwrap();
        s
    }

    #[test]
    fn mysql_literals_escape_quotes_backslashes_and_control_characters() {
        assert_eq!(lit(Dialect::Mysql, &Value::Text("a'b\\c\n\0".into())), "'a\\'b\\\\c\\n\\0'");
        assert_eq!(lit(Dialect::Mysql, &Value::Bytes(vec![0, 255])), "X'00ff'");
        assert_eq!(lit(Dialect::Mysql, &Value::Int(-5)), "-5");
        assert_eq!(lit(Dialect::Mysql, &Value::Null), "NULL");
        assert_eq!(lit(Dialect::Mysql, &Value::Timestamp(1_000_000)), "'1970-01-01 00:00:01'");
        assert_eq!(lit(Dialect::Mysql, &Value::Timestamp(0)), "'0000-00-00 00:00:00'");
        assert!(Dialect::Mysql.literal(&Value::Double(f64::NAN), &mut String::new()).is_err());
        assert!(Dialect::Mysql.literal(&Value::Decimal("NaN".into()), &mut String::new()).is_err());
    }

    #[test]
    fn postgres_reads_years_before_1_ad_as_bc() {
        use ferry_operators::value::{Date, DateTime};
        let d = Date::new(-43, 3, 15);
        assert_eq!(lit(Dialect::Postgres, &Value::Date(d)), "'0044-03-15 BC'");
        assert_eq!(
            lit(Dialect::Postgres, &Value::DateTime(DateTime { date: d, micros: 1 })),
            "'0044-03-15 00:00:00.000001 BC'"
        );
        let t = DateTime { date: Date::new(0, 1, 1), micros: 0 }.to_epoch_micros().unwrap();
        assert_eq!(lit(Dialect::Postgres, &Value::Timestamp(t)), "'0001-01-01 00:00:00+00 BC'");
        assert_eq!(lit(Dialect::Postgres, &Value::Date(Date::new(1, 1, 1))), "'0001-01-01'");
        assert_eq!(lit(Dialect::Postgres, &Value::Date(Date::NEG_INFINITY)), "'-infinity'");
    }

    #[test]
    fn postgres_literals_are_untyped_strings_with_doubled_quotes() {
        assert_eq!(lit(Dialect::Postgres, &Value::Text("it's".into())), "'it''s'");
        assert_eq!(lit(Dialect::Postgres, &Value::Bytes(vec![1, 171])), "'\\x01ab'");
        assert_eq!(lit(Dialect::Postgres, &Value::Double(f64::INFINITY)), "'Infinity'");
        assert_eq!(lit(Dialect::Postgres, &Value::Timestamp(0)), "'1970-01-01T00:00:00Z'");
        assert!(Dialect::Postgres.literal(&Value::Text("a\0".into()), &mut String::new()).is_err());
    }

    #[test]
    fn bulk_fields_escape_separators_and_mark_null() {
        let mut out = Vec::new();
        Dialect::Postgres.bulk_field(&Value::Text("a\tb\\".into()), &mut out).unwrap();
        assert_eq!(out, b"a\\tb\\\\");
        out.clear();
        Dialect::Mysql.bulk_field(&Value::Null, &mut out).unwrap();
        assert_eq!(out, b"\\N");
        out.clear();
        Dialect::Postgres.bulk_field(&Value::Bytes(vec![0xde, 0xad]), &mut out).unwrap();
        assert_eq!(out, b"\\\\xdead");
    }

    /// Reads a MySQL single-quoted literal back (the server's rules for the escapes we write).
    fn unquote_mysql(s: &str) -> String {
        let inner = &s[1..s.len() - 1];
        let mut out = String::new();
        let mut it = inner.chars();
        while let Some(c) = it.next() {
            if c == '\\' {
                match it.next().unwrap() {
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    '0' => out.push('\0'),
                    'Z' => out.push('\x1a'),
                    o => out.push(o),
                }
            } else {
                assert_ne!(c, '\'', "an unescaped quote inside {s:?}");
                out.push(c);
            }
        }
        out
    }

    proptest! {
        #[test]
        fn mysql_text_literals_read_back_to_the_same_string(s in "\\PC*|[\\\\'\"\\n\\r\\x00\\x1a]{0,8}") {
            let l = lit(Dialect::Mysql, &Value::Text(s.clone()));
            prop_assert_eq!(unquote_mysql(&l), s);
        }

        #[test]
        fn postgres_text_literals_read_back_to_the_same_string(s in "[^\\x00]*") {
            let l = lit(Dialect::Postgres, &Value::Text(s.clone()));
            let inner = &l[1..l.len() - 1];
            prop_assert_eq!(inner.replace("''", "'"), s);
            prop_assert!(!inner.replace("''", "").contains('\''));
        }

        #[test]
        fn bulk_text_escapes_read_back_to_the_same_bytes(
            b in proptest::collection::vec(prop_oneof![4 => any::<u8>(), 1 => Just(b'\\'), 1 => Just(0u8), 1 => 9u8..14], 0..80)
        ) {
            let mut out = b"x".to_vec();
            let nul = escape_bulk(&b, &mut out);
            prop_assert_eq!(nul, b.contains(&0));
            let mut back = Vec::new();
            let mut it = out[1..].iter();
            while let Some(&c) = it.next() {
                prop_assert!(!matches!(c, b'\t' | b'\n' | b'\r' | 0));
                if c != b'\\' {
                    back.push(c);
                    continue;
                }
                back.push(match it.next() {
                    Some(b't') => b'\t',
                    Some(b'n') => b'\n',
                    Some(b'r') => b'\r',
                    Some(b'0') => 0,
                    Some(b'\\') => b'\\',
                    other => return Err(TestCaseError::fail(format!("bad escape {other:?}"))),
                });
            }
            prop_assert_eq!(back, b);
        }

        #[test]
        fn bulk_fields_never_contain_raw_separators(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut out = Vec::new();
            Dialect::Mysql.bulk_field(&Value::Bytes(b), &mut out).unwrap();
            prop_assert!(!out.contains(&b'\t') && !out.contains(&b'\n'));
        }
    }
}
