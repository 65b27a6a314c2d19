//! JSON encoding of values, as written by the `files` sink and the dirty-data archive.
//!
//! | kind | JSON |
//! |---|---|
//! | NULL | `null` |
//! | bool | `true`/`false` |
//! | int, uint, year | number (exact: 64-bit integers are written in full) |
//! | float, double | number; NaN and ±infinity as the strings `"NaN"`, `"Infinity"`, `"-Infinity"` |
//! | decimal | string with the exact digits, e.g. `"12.340"`; PostgreSQL's `"NaN"`, `"Infinity"`, `"-Infinity"` as they are |
//! | text, enum, set | string (`set`: members comma-separated, as MySQL writes them) |
//! | bytes | string, standard base64 |
//! | date | `"YYYY-MM-DD"` (zero dates kept: `"0000-00-00"`) |
//! | time | `"[-]HH:MM:SS[.ffffff]"`, hours may exceed 24 |
//! | datetime | `"YYYY-MM-DD HH:MM:SS[.ffffff]"` |
//! | timestamp | `"YYYY-MM-DDTHH:MM:SS[.ffffff]Z"` (UTC) |
//! | json | the document itself, embedded |
//! | bit | string of `0`/`1`, one per bit |
//! | interval | string, ISO 8601 duration as PostgreSQL's `iso_8601` style writes it: `"P1Y2M3DT4H5M6.000007S"`; each part keeps its own sign (`"P-1M"`, `"P1DT-2H"`, `"PT-1.5S"`), zero is `"PT0S"`; years are 12 months, hours and minutes come from the microseconds, nothing else is normalized |
//! | uuid | string, lowercase and hyphenated: `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"` |
//! | array | array of the elements' encodings, nested per dimension: `[[1,2],[3,null]]` |
//!
//! Years in dates, date-times and timestamps have at least 4 digits and a `-` before negative
//! (astronomical) years: `"10000-01-01"`, `"-4712-01-01"` (4713 BC; year `0000` is 1 BC).
//! PostgreSQL's infinite dates, date-times, timestamps and intervals are `"infinity"` and
//! `"-infinity"`.

pub mod read;

pub use read::read_value;

use crate::value::{uuid_text, Value};
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
        Value::Interval(i) => {
            let mut s = String::with_capacity(24);
            let _ = i.write_iso(&mut s);
            write_str(&s, out)
        }
        Value::Uuid(u) => {
            out.push(b'"');
            out.extend_from_slice(&uuid_text(u));
            out.push(b'"');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
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
    use crate::value::{parse_uuid, Date, DateTime, Interval, TIMESTAMP_INFINITY};
    use proptest::prelude::*;

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

    #[test]
    fn postgresql_kinds_encode_to_exact_strings() {
        let uuid = parse_uuid("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11").unwrap();
        let hms = (4 * 3600 + 5 * 60 + 6) * 1_000_000 + 7;
        let cases = [
            (Value::Interval(Interval::new(14, 3, hms)), r#""P1Y2M3DT4H5M6.000007S""#),
            (Value::Interval(Interval::new(-1, 0, 0)), r#""P-1M""#),
            (Value::Interval(Interval::new(0, 1, -7_200_000_000)), r#""P1DT-2H""#),
            (Value::Interval(Interval::new(0, 0, -1_500_000)), r#""PT-1.5S""#),
            (Value::Interval(Interval::new(0, 0, 0)), r#""PT0S""#),
            (Value::Interval(Interval::INFINITY), r#""infinity""#),
            (Value::Uuid(uuid), r#""a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11""#),
            (Value::Array(vec![]), "[]"),
            (
                Value::Array(vec![
                    Value::Array(vec![Value::Int(1), Value::Null]),
                    Value::Array(vec![Value::Text("a\"b".into()), Value::Uuid(uuid)]),
                ]),
                r#"[[1,null],["a\"b","a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]]"#,
            ),
            (
                Value::Array(vec![Value::Json("{\"k\":[1]}".into()), Value::Decimal("NaN".into())]),
                r#"[{"k":[1]},"NaN"]"#,
            ),
            (Value::Decimal("-Infinity".into()), r#""-Infinity""#),
            (Value::Date(Date::new(10_000, 1, 1)), r#""10000-01-01""#),
            (Value::Date(Date::new(-4712, 1, 1)), r#""-4712-01-01""#),
            (Value::Date(Date::INFINITY), r#""infinity""#),
            (Value::DateTime(DateTime { date: Date::new(-1, 12, 31), micros: 1 }), r#""-0001-12-31 00:00:00.000001""#),
            (Value::Timestamp(TIMESTAMP_INFINITY), r#""infinity""#),
            (Value::Bit { width: 70, bytes: vec![0x20, 0, 0, 0, 0, 0, 0, 0, 1] }, &format!("\"1{}1\"", "0".repeat(68))),
        ];
        for (v, want) in &cases {
            assert_eq!(enc(v), *want, "{v:?}");
            serde_json::from_str::<serde_json::Value>(want).unwrap();
        }
    }

    /// What `serde_json` should read back from the encoding of a leaf of [`arb_nested_array`].
    fn expected(v: &Value) -> serde_json::Value {
        match v {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            Value::UInt(u) => (*u).into(),
            Value::Array(items) => items.iter().map(expected).collect(),
            Value::Json(s) => serde_json::from_str(s).unwrap(),
            Value::Interval(i) => {
                let mut s = String::new();
                i.write_iso(&mut s).unwrap();
                s.into()
            }
            other => other.to_string().into(),
        }
    }

    fn arb_nested_array() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            any::<u64>().prop_map(Value::UInt),
            "\\PC{0,8}".prop_map(Value::Text),
            "[\u{0}-\u{1f}\"\\\\]{0,4}".prop_map(Value::Text),
            any::<[u8; 16]>().prop_map(Value::Uuid),
            (any::<i32>(), any::<i32>(), any::<i64>()).prop_map(|(m, d, us)| Value::Interval(Interval::new(m, d, us))),
            prop_oneof![Just("NaN"), Just("Infinity"), Just("-12.50")].prop_map(|s| Value::Decimal(s.into())),
            Just(Value::Json("{\"a\":[1,{\"b\":null}]}".into())),
        ];
        prop::collection::vec(leaf, 0..6)
            .prop_map(Value::Array)
            .prop_recursive(4, 64, 5, |inner| prop::collection::vec(inner, 0..5).prop_map(Value::Array))
    }

    proptest! {
        #[test]
        fn nested_arrays_encode_to_json_that_parses_back_to_the_same_structure(v in arb_nested_array()) {
            let s = enc(&v);
            let parsed: serde_json::Value = serde_json::from_str(&s).map_err(|e| TestCaseError::fail(format!("{s}: {e}")))?;
            prop_assert_eq!(parsed, expected(&v));
        }
    }
}
