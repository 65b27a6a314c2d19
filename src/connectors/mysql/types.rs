//! MySQL/MariaDB type knowledge in one place: column types from `information_schema`, text in
//! every server character set, and snapshot (binary-protocol) values into the record model.
//!
//! The binlog decoder ([`super::binlog`]) uses the same helpers ([`decode_text`],
//! [`timestamp_micros`], [`time_micros`], [`civil_micros`]), so a cell read by a snapshot and the
//! same cell read from the binlog become the same [`Value`].
//!
//! Conventions (shared with the binlog decoder):
//! - `TINYINT(1)` stays `Int { bits: 8 }`: it can hold -128..=127, so mapping it to a boolean would
//!   lose values.
//! - `TIMESTAMP` is an instant: the snapshot session runs with `time_zone = '+00:00'`, so its civil
//!   values are UTC. MySQL's zero `TIMESTAMP` (`0000-00-00 00:00:00`) is stored by the server as 0
//!   seconds and 1970-01-01 00:00:00 UTC is outside `TIMESTAMP`'s range, so the zero timestamp is
//!   `Value::Timestamp(0)` on both paths.
//! - `DATETIME`/`DATE` keep their civil fields, zero dates included.
//! - `DECIMAL` is canonical text with exactly the column's scale (trailing zeros kept).
//! - MariaDB reports `JSON` columns as `longtext` (with a `json_valid(col)` CHECK constraint):
//!   [`parse_column_type`] keeps them text unless the caller passes `data_type = "json"`, which
//!   discovery does when it finds that constraint.

use ferry_operators::schema::{Column, ColumnType};
use ferry_operators::value::{canonical_decimal, days_from_civil, Date, DateTime, Value};
use mysql_async::Value as MyValue;

/// A value that could not be turned into the record model.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The character set is not one ferry can decode.
    #[error(
        "unknown character set `{charset}`: ferry decodes utf8mb4, utf8mb3, ascii, latin1..latin7, cp125x, \
         koi8r/u, cp866, greek, hebrew, macroman, gbk, gb2312, gb18030, big5, sjis, cp932, ujis, eucjpms, \
         euckr, tis620, ucs2, utf16, utf16le and utf32"
    )]
    UnknownCharset {
        /// The server's character set name.
        charset: String,
    },
    /// The bytes are not valid text in their character set.
    #[error("bytes {preview} are not valid `{charset}` text")]
    InvalidText {
        /// The character set.
        charset: String,
        /// The first bytes, in hex.
        preview: String,
    },
    /// A column's value does not fit its type.
    #[error("column `{column}` ({ty}): {reason}; value {value}")]
    Value {
        /// Column name.
        column: String,
        /// The column's type, as SQL.
        ty: String,
        /// The value received, abbreviated.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

pub use crate::catalog::spelling::parse_column_type;

/// How to decode a character set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Charset {
    /// UTF-8 (utf8mb4, utf8mb3).
    Utf8,
    /// 7-bit ASCII.
    Ascii,
    /// MySQL's `utf32`: UTF-32 big-endian.
    Utf32,
    /// `latin5` (ISO-8859-9): C1 bytes are code points, the rest as windows-1254.
    Latin5,
    /// Anything encoding_rs decodes.
    Other(&'static encoding_rs::Encoding),
    /// `binary`: not text.
    Binary,
}

/// Looks up how to decode a MySQL/MariaDB character set name (case-insensitive).
pub(crate) fn charset_decoder(charset: &str) -> Option<Charset> {
    use encoding_rs as e;
    if charset.bytes().any(|b| b.is_ascii_uppercase()) {
        return charset_decoder(&charset.to_ascii_lowercase());
    }
    Some(match charset {
        "utf8mb4" | "utf8mb3" | "utf8" => Charset::Utf8,
        "ascii" => Charset::Ascii,
        "binary" => Charset::Binary,
        "utf32" => Charset::Utf32,
        "latin5" => Charset::Latin5,
        // MySQL's latin1 is Windows-1252 (0x80 is the euro sign); its five undefined bytes map to
        // the C1 code points, exactly as the WHATWG table encoding_rs implements.
        "latin1" => Charset::Other(e::WINDOWS_1252),
        "latin2" => Charset::Other(e::ISO_8859_2),
        "latin7" => Charset::Other(e::ISO_8859_13),
        "cp1250" => Charset::Other(e::WINDOWS_1250),
        "cp1251" => Charset::Other(e::WINDOWS_1251),
        "cp1256" => Charset::Other(e::WINDOWS_1256),
        "cp1257" => Charset::Other(e::WINDOWS_1257),
        "greek" => Charset::Other(e::ISO_8859_7),
        "hebrew" => Charset::Other(e::ISO_8859_8),
        "koi8r" => Charset::Other(e::KOI8_R),
        "koi8u" => Charset::Other(e::KOI8_U),
        "cp866" => Charset::Other(e::IBM866),
        "macroman" => Charset::Other(e::MACINTOSH),
        "gbk" | "gb2312" => Charset::Other(e::GBK),
        "gb18030" => Charset::Other(e::GB18030),
        "big5" => Charset::Other(e::BIG5),
        "sjis" | "cp932" => Charset::Other(e::SHIFT_JIS),
        "ujis" | "eucjpms" => Charset::Other(e::EUC_JP),
        "euckr" => Charset::Other(e::EUC_KR),
        "tis620" => Charset::Other(e::WINDOWS_874),
        "ucs2" | "utf16" => Charset::Other(e::UTF_16BE),
        "utf16le" => Charset::Other(e::UTF_16LE),
        _ => return None,
    })
}

/// Decodes text stored in a MySQL/MariaDB character set into UTF-8, strictly: bytes that are not
/// valid in the character set are an error, never replaced.
///
/// utf8mb4/utf8mb3/utf8 and ascii are checked, latin1 is Windows-1252 as in MySQL, the other
/// character sets go through `encoding_rs`. `binary` and unknown character sets are errors.
pub fn decode_text(bytes: Vec<u8>, charset: &str) -> Result<String, DecodeError> {
    let cs = charset_decoder(charset).ok_or_else(|| DecodeError::UnknownCharset { charset: charset.to_string() })?;
    decode_with(bytes, cs, charset)
}

/// [`decode_with`] for borrowed bytes: UTF-8 and ASCII-only text is copied once, without an
/// intermediate byte vector.
pub(crate) fn decode_slice(bytes: &[u8], cs: Charset, name: &str) -> Result<String, DecodeError> {
    let decoded = match cs {
        Charset::Utf8 => std::str::from_utf8(bytes).ok().map(str::to_owned),
        // Borrows ASCII-only input after one scan, so it is copied once.
        Charset::Other(enc) => enc.decode_without_bom_handling_and_without_replacement(bytes).map(|s| s.into_owned()),
        _ => None,
    };
    match decoded {
        Some(s) => Ok(s),
        None => decode_with(bytes.to_vec(), cs, name),
    }
}

pub(crate) fn decode_with(bytes: Vec<u8>, cs: Charset, name: &str) -> Result<String, DecodeError> {
    let invalid = |b: &[u8]| DecodeError::InvalidText { charset: name.to_string(), preview: hex_preview(b) };
    match cs {
        Charset::Utf8 => String::from_utf8(bytes).map_err(|e| invalid(e.as_bytes())),
        Charset::Ascii => {
            if bytes.is_ascii() {
                String::from_utf8(bytes).map_err(|e| invalid(e.as_bytes()))
            } else {
                Err(invalid(&bytes))
            }
        }
        Charset::Binary => Err(DecodeError::UnknownCharset { charset: "binary (binary data is not text)".into() }),
        Charset::Utf32 => {
            if !bytes.len().is_multiple_of(4) {
                return Err(invalid(&bytes));
            }
            bytes
                .chunks_exact(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect::<Option<String>>()
                .ok_or_else(|| invalid(&bytes))
        }
        Charset::Latin5 => {
            let mut s = String::with_capacity(bytes.len());
            for &b in &bytes {
                if (0x80..0xa0).contains(&b) {
                    s.push(char::from(b));
                } else {
                    let one = [b];
                    let (d, _) = encoding_rs::WINDOWS_1254.decode_without_bom_handling(&one);
                    s.push_str(&d);
                }
            }
            Ok(s)
        }
        Charset::Other(enc) => {
            if bytes.is_ascii() && enc.is_ascii_compatible() {
                return String::from_utf8(bytes).map_err(|e| invalid(e.as_bytes()));
            }
            match enc.decode_without_bom_handling_and_without_replacement(&bytes) {
                Some(s) => Ok(s.into_owned()),
                None => Err(invalid(&bytes)),
            }
        }
    }
}

fn hex_preview(b: &[u8]) -> String {
    let mut s: String = b.iter().take(32).map(|x| format!("{x:02x}")).collect();
    if b.len() > 32 {
        s.push_str(&format!("... ({} bytes)", b.len()));
    }
    format!("0x{s}")
}

/// Microseconds of a civil time of day / time span.
pub(crate) fn clock_micros(hours: u64, minutes: u64, seconds: u64, micros: u64) -> u64 {
    ((hours * 60 + minutes) * 60 + seconds) * 1_000_000 + micros
}

/// A signed `TIME` in microseconds from its parts (`hours` may exceed 24).
pub fn time_micros(negative: bool, hours: u64, minutes: u64, seconds: u64, micros: u64) -> i64 {
    let v = clock_micros(hours, minutes, seconds, micros) as i64;
    if negative {
        -v
    } else {
        v
    }
}

/// The instant of a civil UTC date-time, in microseconds since the Unix epoch; the zero date
/// (MySQL's zero `TIMESTAMP`) is 0.
pub fn timestamp_micros(year: u16, month: u8, day: u8, h: u8, m: u8, s: u8, us: u32) -> i64 {
    if month == 0 || day == 0 {
        return 0;
    }
    days_from_civil(year as i64, month as i64, day as i64) * 86_400_000_000
        + clock_micros(h as u64, m as u64, s as u64, us as u64) as i64
}

/// A civil date-time (zero dates kept).
pub fn civil_micros(year: u16, month: u8, day: u8, h: u8, m: u8, s: u8, us: u32) -> Value {
    Value::DateTime(DateTime {
        date: Date { year: year.into(), month, day },
        micros: clock_micros(h as u64, m as u64, s as u64, us as u64),
    })
}

/// A civil date (zero dates kept).
pub fn civil_date(year: u16, month: u8, day: u8) -> Value {
    Value::Date(Date { year: year.into(), month, day })
}

/// Turns one binary-protocol value of a snapshot (`exec_iter` on a prepared `SELECT`) into the
/// record model, exactly.
///
/// The session must run with `time_zone = '+00:00'` (so `TIMESTAMP` civil values are UTC) and
/// `character_set_results = NULL` (so text arrives as the column's own bytes). `charset` is the
/// column's `CHARACTER_SET_NAME`, used for character, ENUM and SET columns; `None` there means
/// utf8mb4 (right only for utf8mb4/utf8mb3/ascii columns under that session setting). Text-protocol values (`Bytes` holding the text form) are accepted
/// for every type too.
pub fn snapshot_value(v: MyValue, col: &Column, charset: Option<&str>) -> Result<Value, DecodeError> {
    if let MyValue::NULL = v {
        return Ok(Value::Null);
    }
    let err = |v: &MyValue, reason: &str| DecodeError::Value {
        column: col.name.clone(),
        ty: col.ty.sql_name(),
        value: abbreviate(v),
        reason: reason.to_string(),
    };
    let text = |bytes: Vec<u8>| -> Result<String, DecodeError> {
        decode_text(bytes, charset.unwrap_or("utf8mb4")).map_err(|e| DecodeError::Value {
            column: col.name.clone(),
            ty: col.ty.sql_name(),
            value: String::new(),
            reason: e.to_string(),
        })
    };
    match &col.ty {
        ColumnType::Bool => match v {
            MyValue::Int(i) => Ok(Value::Bool(i != 0)),
            MyValue::UInt(u) => Ok(Value::Bool(u != 0)),
            MyValue::Bytes(ref b) => match parse_i128(b) {
                Some(i) => Ok(Value::Bool(i != 0)),
                None => Err(err(&v, "not a boolean")),
            },
            _ => Err(err(&v, "not a boolean")),
        },
        ColumnType::Int { unsigned, .. } => {
            let n: i128 = match v {
                MyValue::Int(i) => i as i128,
                MyValue::UInt(u) => u as i128,
                MyValue::Bytes(ref b) => parse_i128(b).ok_or_else(|| err(&v, "not an integer"))?,
                _ => return Err(err(&v, "not an integer")),
            };
            if *unsigned {
                u64::try_from(n).map(Value::UInt).map_err(|_| err(&v, "out of range for an unsigned integer"))
            } else {
                i64::try_from(n).map(Value::Int).map_err(|_| err(&v, "out of range for a signed integer"))
            }
        }
        ColumnType::Float => match v {
            MyValue::Float(f) => Ok(Value::Float(f)),
            MyValue::Double(d) => Ok(Value::Float(d as f32)),
            MyValue::Bytes(ref b) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse().ok())
                .map(Value::Float)
                .ok_or_else(|| err(&v, "not a float")),
            _ => Err(err(&v, "not a float")),
        },
        ColumnType::Double => match v {
            MyValue::Double(d) => Ok(Value::Double(d)),
            MyValue::Float(f) => Ok(Value::Double(f as f64)),
            MyValue::Bytes(ref b) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse().ok())
                .map(Value::Double)
                .ok_or_else(|| err(&v, "not a double")),
            _ => Err(err(&v, "not a double")),
        },
        ColumnType::Decimal { .. } => match v {
            MyValue::Bytes(ref b) => std::str::from_utf8(b)
                .ok()
                .and_then(canonical_decimal)
                .map(Value::Decimal)
                .ok_or_else(|| err(&v, "not a decimal")),
            MyValue::Int(i) => Ok(Value::Decimal(i.to_string())),
            MyValue::UInt(u) => Ok(Value::Decimal(u.to_string())),
            _ => Err(err(&v, "not a decimal")),
        },
        ColumnType::String { .. } | ColumnType::Other { .. } => match v {
            MyValue::Bytes(b) => text(b).map(Value::Text),
            _ => Err(err(&v, "not text")),
        },
        ColumnType::Interval | ColumnType::Uuid | ColumnType::Array { .. } => {
            Err(err(&v, "not a MySQL/MariaDB column type"))
        }
        ColumnType::Json => match v {
            MyValue::Bytes(b) => text(b).map(Value::Json),
            _ => Err(err(&v, "not JSON text")),
        },
        ColumnType::Enum { .. } => match v {
            MyValue::Bytes(b) => text(b).map(Value::Enum),
            _ => Err(err(&v, "not an ENUM member")),
        },
        ColumnType::Set { .. } => match v {
            MyValue::Bytes(b) => text(b).map(Value::Set),
            _ => Err(err(&v, "not a SET value")),
        },
        ColumnType::Bytes { .. } => match v {
            MyValue::Bytes(b) => Ok(Value::Bytes(b)),
            _ => Err(err(&v, "not binary data")),
        },
        ColumnType::Bit { width } => {
            let nbytes = (*width as usize).div_ceil(8);
            if nbytes > 8 {
                return Err(err(&v, "BIT wider than 64"));
            }
            let bytes = match v {
                MyValue::Bytes(ref b) if b.len() <= nbytes => {
                    let mut out = vec![0u8; nbytes - b.len()];
                    out.extend_from_slice(b);
                    out
                }
                MyValue::UInt(u) => u.to_be_bytes()[8 - nbytes..].to_vec(),
                MyValue::Int(i) => (i as u64).to_be_bytes()[8 - nbytes..].to_vec(),
                _ => return Err(err(&v, "not a bit string of this width")),
            };
            Ok(Value::Bit { width: *width, bytes })
        }
        ColumnType::Year => match v {
            MyValue::Int(i) if (0..=9999).contains(&i) => Ok(Value::Year(i as u16)),
            MyValue::UInt(u) if u <= 9999 => Ok(Value::Year(u as u16)),
            MyValue::Bytes(ref b) => match parse_i128(b) {
                Some(y) if (0..=9999).contains(&y) => Ok(Value::Year(y as u16)),
                _ => Err(err(&v, "not a year")),
            },
            _ => Err(err(&v, "not a year")),
        },
        ColumnType::Date => match v {
            MyValue::Date(y, m, d, ..) => Ok(civil_date(y, m, d)),
            MyValue::Bytes(ref b) => {
                parse_datetime_text(b).map(|(y, m, d, ..)| civil_date(y, m, d)).ok_or_else(|| err(&v, "not a date"))
            }
            _ => Err(err(&v, "not a date")),
        },
        ColumnType::DateTime { .. } => match v {
            MyValue::Date(y, mo, d, h, mi, s, us) => Ok(civil_micros(y, mo, d, h, mi, s, us)),
            MyValue::Bytes(ref b) => parse_datetime_text(b)
                .map(|(y, mo, d, h, mi, s, us)| civil_micros(y, mo, d, h, mi, s, us))
                .ok_or_else(|| err(&v, "not a date-time")),
            _ => Err(err(&v, "not a date-time")),
        },
        ColumnType::Timestamp { .. } => match v {
            MyValue::Date(y, mo, d, h, mi, s, us) => Ok(Value::Timestamp(timestamp_micros(y, mo, d, h, mi, s, us))),
            MyValue::Bytes(ref b) => parse_datetime_text(b)
                .map(|(y, mo, d, h, mi, s, us)| Value::Timestamp(timestamp_micros(y, mo, d, h, mi, s, us)))
                .ok_or_else(|| err(&v, "not a timestamp")),
            _ => Err(err(&v, "not a timestamp")),
        },
        ColumnType::Time { .. } => match v {
            MyValue::Time(neg, days, h, m, s, us) => {
                Ok(Value::Time(time_micros(neg, days as u64 * 24 + h as u64, m as u64, s as u64, us as u64)))
            }
            MyValue::Bytes(ref b) => parse_time_text(b).map(Value::Time).ok_or_else(|| err(&v, "not a time")),
            _ => Err(err(&v, "not a time")),
        },
    }
}

fn abbreviate(v: &MyValue) -> String {
    let s = match v {
        MyValue::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => format!("{s:?}"),
            Err(_) => hex_preview(b),
        },
        other => format!("{other:?}"),
    };
    if s.len() > 80 {
        let cut = (0..=80).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        format!("{}...", &s[..cut])
    } else {
        s
    }
}

fn parse_i128(b: &[u8]) -> Option<i128> {
    std::str::from_utf8(b).ok()?.trim().parse().ok()
}

/// Parses `YYYY-MM-DD[ hh:mm:ss[.ffffff]]` (the text protocol's form).
fn parse_datetime_text(b: &[u8]) -> Option<(u16, u8, u8, u8, u8, u8, u32)> {
    let s = std::str::from_utf8(b).ok()?.trim();
    let (date, time) = s.split_once([' ', 'T']).unwrap_or((s, ""));
    let mut d = date.split('-');
    let y = d.next()?.parse().ok()?;
    let mo = d.next()?.parse().ok()?;
    let da = d.next()?.parse().ok()?;
    if time.is_empty() {
        return Some((y, mo, da, 0, 0, 0, 0));
    }
    let micros = parse_time_text(time.as_bytes())?;
    if !(0..86_400_000_000).contains(&micros) {
        return None;
    }
    let secs = micros / 1_000_000;
    Some((y, mo, da, (secs / 3600) as u8, (secs / 60 % 60) as u8, (secs % 60) as u8, (micros % 1_000_000) as u32))
}

/// Parses `[-]h+:mm:ss[.f{1,6}]` into signed microseconds.
fn parse_time_text(b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?.trim();
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let (hms, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut p = hms.split(':');
    let h: u64 = p.next()?.parse().ok()?;
    let m: u64 = p.next()?.parse().ok()?;
    let sec: u64 = p.next()?.parse().ok()?;
    if frac.len() > 6 || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let us: u64 = if frac.is_empty() { 0 } else { format!("{frac:0<6}").parse().ok()? };
    Some(time_micros(neg, h, m, sec, us))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(ty: ColumnType) -> Column {
        Column::new("c", ty, true)
    }

    #[test]
    fn column_types_cover_ints_decimals_strings_and_lists() {
        assert_eq!(
            parse_column_type("bigint", "bigint(20) unsigned", None),
            Ok(ColumnType::Int { bits: 64, unsigned: true })
        );
        assert_eq!(parse_column_type("tinyint", "tinyint(1)", None), Ok(ColumnType::Int { bits: 8, unsigned: false }));
        assert_eq!(
            parse_column_type("decimal", "decimal(65,30)", None),
            Ok(ColumnType::Decimal { precision: 65, scale: 30 })
        );
        assert_eq!(
            parse_column_type("varchar", "varchar(200)", Some("utf8mb4")),
            Ok(ColumnType::String { max_chars: Some(200), fixed: false })
        );
        assert_eq!(
            parse_column_type("varchar", "varchar(20)", Some("binary")),
            Ok(ColumnType::Bytes { max_len: Some(20), fixed: false })
        );
        assert_eq!(parse_column_type("datetime", "datetime(6)", None), Ok(ColumnType::DateTime { fsp: 6 }));
        assert_eq!(parse_column_type("timestamp", "timestamp", None), Ok(ColumnType::Timestamp { fsp: 0 }));
        assert_eq!(parse_column_type("year", "year(4)", None), Ok(ColumnType::Year));
        assert_eq!(parse_column_type("bit", "bit(64)", None), Ok(ColumnType::Bit { width: 64 }));
        assert_eq!(
            parse_column_type("enum", "enum('a','b''c','D e')", Some("utf8mb4")),
            Ok(ColumnType::Enum { values: vec!["a".into(), "b'c".into(), "D e".into()] })
        );
        assert_eq!(
            parse_column_type("set", "set('x','y')", Some("utf8mb4")),
            Ok(ColumnType::Set { values: vec!["x".into(), "y".into()] })
        );
        assert_eq!(
            parse_column_type("longtext", "longtext", Some("utf8mb4")),
            Ok(ColumnType::String { max_chars: None, fixed: false })
        );
        assert_eq!(parse_column_type("json", "longtext", Some("utf8mb4")), Ok(ColumnType::Json));
        assert!(parse_column_type("frobnicate", "frobnicate", None).unwrap_err().contains("frobnicate"));
    }

    #[test]
    fn latin1_is_windows_1252_and_text_decoding_is_strict() {
        assert_eq!(decode_text(vec![0x80, b'a', 0xe9], "latin1").unwrap(), "€aé");
        assert_eq!(decode_text(vec![0x81], "latin1").unwrap(), "\u{81}");
        assert_eq!(decode_text("😀".as_bytes().to_vec(), "utf8mb4").unwrap(), "😀");
        assert!(matches!(decode_text(vec![0xff, 0xfe], "utf8mb4"), Err(DecodeError::InvalidText { .. })));
        assert!(matches!(decode_text(vec![0x80], "ascii"), Err(DecodeError::InvalidText { .. })));
        assert!(matches!(decode_text(vec![b'a'], "klingon"), Err(DecodeError::UnknownCharset { .. })));
        assert_eq!(decode_text(vec![0xc4, 0xe3], "gbk").unwrap(), "你");
        assert_eq!(decode_text(vec![0, 0, 0x00, 0x41], "utf32").unwrap(), "A");
        assert_eq!(decode_text(vec![0x80], "latin5").unwrap(), "\u{80}");
    }

    #[test]
    fn snapshot_values_keep_sign_scale_zero_dates_and_negative_times() {
        let v = snapshot_value(
            MyValue::Bytes(b"-0012.500".to_vec()),
            &col(ColumnType::Decimal { precision: 10, scale: 3 }),
            None,
        );
        assert_eq!(v, Ok(Value::Decimal("-12.500".into())));
        let t = snapshot_value(MyValue::Time(true, 34, 22, 59, 59, 0), &col(ColumnType::Time { fsp: 0 }), None);
        assert_eq!(t, Ok(Value::Time(-(838 * 3600 + 59 * 60 + 59) * 1_000_000)));
        let z = snapshot_value(MyValue::Date(0, 0, 0, 0, 0, 0, 0), &col(ColumnType::DateTime { fsp: 0 }), None);
        assert_eq!(z, Ok(Value::DateTime(DateTime { date: Date { year: 0, month: 0, day: 0 }, micros: 0 })));
        let ts = snapshot_value(MyValue::Date(1970, 1, 1, 0, 0, 1, 5), &col(ColumnType::Timestamp { fsp: 6 }), None);
        assert_eq!(ts, Ok(Value::Timestamp(1_000_005)));
        let u = snapshot_value(MyValue::Int(-1), &col(ColumnType::Int { bits: 64, unsigned: true }), None);
        assert!(matches!(u, Err(DecodeError::Value { .. })));
        let bit = snapshot_value(MyValue::Bytes(vec![1]), &col(ColumnType::Bit { width: 9 }), None);
        assert_eq!(bit, Ok(Value::Bit { width: 9, bytes: vec![0, 1] }));
        let text = snapshot_value(
            MyValue::Bytes(vec![0xe9, 0x80]),
            &col(ColumnType::String { max_chars: None, fixed: false }),
            Some("latin1"),
        );
        assert_eq!(text, Ok(Value::Text("é€".into())));
        assert_eq!(parse_time_text(b"-838:59:59.5"), Some(-(838 * 3600 + 59 * 60 + 59) * 1_000_000 - 500_000));
    }
}
