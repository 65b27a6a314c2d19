//! JSON encoding of values, as written by the `files` sink and the dirty-data archive.
//!
//! | kind | JSON |
//! |---|---|
//! | NULL | `null` |
//! | bool | `true`/`false` |
//! | int, uint, year | number (exact: 64-bit integers are written in full) |
//! | float, double | number; NaN and ±infinity as the strings `"NaN"`, `"Infinity"`, `"-Infinity"` |
//! | decimal | string with the exact digits, e.g. `"12.340"` |
//! | text, enum, set | string (`set`: members comma-separated, as MySQL writes them) |
//! | bytes | string, standard base64 |
//! | date | `"YYYY-MM-DD"` (zero dates kept: `"0000-00-00"`) |
//! | time | `"[-]HH:MM:SS[.ffffff]"`, hours may exceed 24 |
//! | datetime | `"YYYY-MM-DD HH:MM:SS[.ffffff]"` |
//! | timestamp | `"YYYY-MM-DDTHH:MM:SS[.ffffff]Z"` (UTC) |
//! | json | the document itself, embedded |
//! | bit | string of `0`/`1`, one per bit |

use crate::value::Value;
use std::io::Write as _;

/// Appends the JSON string literal for `s`.
pub fn write_str(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        match esc {
            Some(e) => out.extend_from_slice(e),
            None => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64(bytes: &[u8], out: &mut Vec<u8>) {
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        out.push(B64[(n >> 18) as usize & 63]);
        out.push(B64[(n >> 12) as usize & 63]);
        out.push(if c.len() > 1 { B64[(n >> 6) as usize & 63] } else { b'=' });
        out.push(if c.len() > 2 { B64[n as usize & 63] } else { b'=' });
    }
}

fn write_display(v: &Value, out: &mut Vec<u8>) {
    let s = v.to_string();
    write_str(&s, out)
}

/// Appends the JSON encoding of one value.
pub fn write_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Year(y) => {
            let _ = write!(out, "{y}");
        }
        // `{:?}` is the shortest text that reads back to the same bits, with an exponent for
        // very large or small values (Display would print 309 digits for f64::MAX).
        Value::Float(f) => write_float(*f as f64, f.is_finite(), &format!("{f:?}"), out),
        Value::Double(f) => write_float(*f, f.is_finite(), &format!("{f:?}"), out),
        Value::Decimal(s) | Value::Text(s) | Value::Enum(s) | Value::Set(s) => write_str(s, out),
        Value::Bytes(b) => {
            out.push(b'"');
            base64(b, out);
            out.push(b'"');
        }
        Value::Json(s) => {
            if serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok() {
                out.extend_from_slice(s.as_bytes())
            } else {
                write_str(s, out)
            }
        }
        Value::Date(_) | Value::Time(_) | Value::DateTime(_) | Value::Timestamp(_) | Value::Bit { .. } => {
            write_display(v, out)
        }
    }
}

fn write_float(f: f64, finite: bool, text: &str, out: &mut Vec<u8>) {
    if finite {
        out.extend_from_slice(text.as_bytes());
    } else if f.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if f > 0.0 {
        out.extend_from_slice(b"\"Infinity\"");
    } else {
        out.extend_from_slice(b"\"-Infinity\"");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{Date, DateTime};

    fn enc(v: &Value) -> String {
        let mut out = Vec::new();
        write_value(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_kind_encodes_to_valid_json() {
        let values = vec![
            Value::Null,
            Value::Int(i64::MIN),
            Value::UInt(u64::MAX),
            Value::Double(f64::NAN),
            Value::Float(1.5),
            Value::Decimal("-12.3400".into()),
            Value::Text("a\"b\\c\n\u{1}😀".into()),
            Value::Bytes(vec![0xff, 0, 1]),
            Value::Date(Date::new(0, 0, 0)),
            Value::Time(-1),
            Value::DateTime(DateTime { date: Date::new(2024, 2, 29), micros: 1 }),
            Value::Timestamp(-1),
            Value::Json("{\"a\":[1,2]}".into()),
            Value::Json("not json".into()),
            Value::Bit { width: 3, bytes: vec![5] },
            Value::Year(1901),
            Value::Double(f64::MIN),
            Value::Float(f32::MAX),
            Value::Double(5e-324),
        ];
        for v in &values {
            let s = enc(v);
            serde_json::from_str::<serde_json::Value>(&s).unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        assert_eq!(enc(&Value::UInt(u64::MAX)), "18446744073709551615");
        assert_eq!(enc(&Value::Double(f64::MIN)), "-1.7976931348623157e308");
        assert_eq!(enc(&Value::Float(0.1)), "0.1");
        assert_eq!(enc(&Value::Bytes(vec![0xff, 0, 1])), "\"/wAB\"");
        assert_eq!(enc(&Value::Timestamp(-1)), "\"1969-12-31T23:59:59.999999Z\"");
        assert_eq!(enc(&Value::Bit { width: 3, bytes: vec![5] }), "\"101\"");
    }
}
