//! Canonical values: one text per value that is equal on both sides exactly when the target
//! holds what the source row, through the plan's transform, says it must — whichever dialect
//! each side speaks and whichever record-model variant its decoder chose.
//!
//! | values | canonical text |
//! |---|---|
//! | NULL | none (JSON `null`) |
//! | booleans, integers of any width and sign, `YEAR` | decimal integer (`true` → `1`) |
//! | `FLOAT` / `REAL` | the shortest text that reads back as the same 32-bit float |
//! | `DOUBLE` | the shortest text that reads back as the same 64-bit float |
//! | `DECIMAL` / `numeric` | no leading zeros, no trailing fractional zeros (`1.50` → `1.5`, `-0.0` → `0`) |
//! | text, `ENUM`, `SET` | the text; a fixed-width `CHAR(n)` target column without its trailing spaces (PAD SPACE) |
//! | bytes | lowercase hex |
//! | `BIT(n)` | hex without leading zero bytes |
//! | `JSON` | re-serialized with object keys sorted, no spaces (a `jsonb` target reorders keys) |
//! | dates, times, date-times | `YYYY-MM-DD`, `[-]H:MM:SS.ffffff`, `YYYY-MM-DD HH:MM:SS.ffffff` |
//! | an interval of hours and less in a time column | the time's text (a PostgreSQL target holds MySQL `TIME` as `interval` by choice) |
//! | `TIMESTAMP` | the instant: microseconds since 1970-01-01 UTC |
//! | intervals, UUIDs, arrays | their PostgreSQL text form |
//!
//! A row's hash is a 64-bit SipHash of its compared columns' canonical texts ([`row_hash`],
//! written into one reused buffer); a chunk's checksum is the row count and the wrapping sum of
//! its rows' hashes, so it does not depend on row order.

use ferry_operators::{ColumnType, Value};
use std::hash::{DefaultHasher, Hasher};

/// The canonical text of `v` in a target column of type `ty`; `None` for NULL.
pub fn canon(v: &Value, ty: &ColumnType) -> Option<String> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => (if *b { "1" } else { "0" }).to_string(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Year(y) => y.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Double(d) => match ty {
            // A double written into a 32-bit column holds its 32-bit rounding.
            ColumnType::Float => (*d as f32).to_string(),
            _ => d.to_string(),
        },
        Value::Decimal(s) => decimal(s),
        Value::Text(s) | Value::Enum(s) | Value::Set(s) => match ty {
            ColumnType::String { fixed: true, .. } => s.trim_end_matches(' ').to_string(),
            _ => s.clone(),
        },
        Value::Bytes(b) => hex(b),
        Value::Bit { bytes, .. } => {
            let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
            hex(&bytes[first..])
        }
        Value::Json(s) => json(s),
        Value::Timestamp(us) => us.to_string(),
        // A time the target holds as an interval (a PostgreSQL target's choice).
        Value::Interval(iv) if matches!(ty, ColumnType::Time { .. }) && iv.months == 0 && iv.days == 0 => {
            return canon(&Value::Time(iv.micros), ty)
        }
        Value::Time(us) => {
            let sign = if *us < 0 { "-" } else { "" };
            let a = us.unsigned_abs();
            format!(
                "{sign}{}:{:02}:{:02}.{:06}",
                a / 3_600_000_000,
                a / 60_000_000 % 60,
                a / 1_000_000 % 60,
                a % 1_000_000
            )
        }
        other @ (Value::Date(_) | Value::DateTime(_)) => {
            let s = other.to_string();
            // Date-times always with six fractional digits, whatever the display trims.
            match (other, s.find('.')) {
                (Value::DateTime(_), None) => format!("{s}.000000"),
                (Value::DateTime(_), Some(dot)) => format!("{s:0<width$}", width = dot + 7),
                _ => s,
            }
        }
        other => other.to_string(),
    })
}

/// `DECIMAL` text without leading zeros, trailing fractional zeros or a negative zero.
pub fn decimal(s: &str) -> String {
    let s = s.trim();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let body = if frac.is_empty() { int.to_string() } else { format!("{int}.{frac}") };
    if neg && body != "0" {
        format!("-{body}")
    } else {
        body
    }
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

/// JSON text with sorted object keys and no spaces; text that is not JSON stays as it is.
pub fn json(s: &str) -> String {
    fn sorted(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let mut pairs: Vec<(String, serde_json::Value)> = m.into_iter().collect();
                pairs.sort_by(|a, b| a.0.cmp(&b.0));
                serde_json::Value::Object(pairs.into_iter().map(|(k, v)| (k, sorted(v))).collect())
            }
            serde_json::Value::Array(a) => serde_json::Value::Array(a.into_iter().map(sorted).collect()),
            other => other,
        }
    }
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(v) => sorted(v).to_string(),
        Err(_) => s.to_string(),
    }
}

/// Appends the canonical text of `v` (see [`canon`]) to `out` without allocating for the
/// common kinds; `false` for NULL (nothing appended).
pub fn write(v: &Value, ty: &ColumnType, out: &mut String) -> bool {
    use std::fmt::Write;
    match v {
        Value::Null => return false,
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Text(s) | Value::Enum(s) | Value::Set(s) => match ty {
            ColumnType::String { fixed: true, .. } => out.push_str(s.trim_end_matches(' ')),
            _ => out.push_str(s),
        },
        Value::Timestamp(us) => {
            let _ = write!(out, "{us}");
        }
        other => out.push_str(&canon(other, ty).unwrap_or_default()),
    }
    true
}

/// The hash of the canonical texts of a row's columns `cols` (types by column), with `buf` as
/// scratch space: SipHash with fixed keys, the same for both sides of one verification; chunk
/// checksums add these up, so the sum does not depend on row order.
pub fn row_hash(values: &[Value], types: &[&ColumnType], cols: &[usize], buf: &mut String) -> u64 {
    let mut h = DefaultHasher::new();
    for &i in cols {
        buf.clear();
        if write(&values[i], types[i], buf) {
            h.write_u8(1);
            h.write_u64(buf.len() as u64);
            h.write(buf.as_bytes());
        } else {
            h.write_u8(0);
        }
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn integers_of_every_width_and_sign_are_the_same_text() {
        let t = ColumnType::Int { bits: 64, unsigned: true };
        assert_eq!(canon(&Value::Int(7), &t), canon(&Value::UInt(7), &t));
        assert_eq!(canon(&Value::Year(2024), &ColumnType::Year), canon(&Value::Int(2024), &ColumnType::Year));
        assert_eq!(canon(&Value::Bool(true), &ColumnType::Bool), Some("1".into()));
        assert_eq!(canon(&Value::Null, &t), None);
    }

    #[test]
    fn decimals_compare_by_value_not_scale() {
        assert_eq!(decimal("001.500"), "1.5");
        assert_eq!(decimal("-0.000"), "0");
        assert_eq!(decimal("-12"), "-12");
        assert_eq!(decimal(".5"), "0.5");
        assert_ne!(decimal("1.05"), decimal("1.5"));
    }

    #[test]
    fn a_time_held_as_an_interval_is_the_same_time() {
        use ferry_operators::value::Interval;
        let ty = ColumnType::Time { fsp: 6 };
        for us in [-3_020_399_999_999i64, -1, 0, 86_400_000_000, 3_020_399_999_999] {
            let iv = Value::Interval(Interval { months: 0, days: 0, micros: us });
            assert_eq!(canon(&iv, &ty), canon(&Value::Time(us), &ty));
        }
        // A day is not 24 hours to an interval column: it stays an interval's text.
        let day = Value::Interval(Interval { months: 0, days: 1, micros: 0 });
        assert_ne!(canon(&day, &ty), canon(&Value::Time(86_400_000_000), &ty));
    }

    #[test]
    fn char_pads_are_trimmed_only_for_fixed_width_targets() {
        let fixed = ColumnType::String { max_chars: Some(5), fixed: true };
        let var = ColumnType::String { max_chars: Some(5), fixed: false };
        assert_eq!(canon(&Value::Text("ab  ".into()), &fixed), Some("ab".into()));
        assert_eq!(canon(&Value::Text("ab  ".into()), &var), Some("ab  ".into()));
    }

    #[test]
    fn json_key_order_and_spacing_do_not_matter_but_values_do() {
        assert_eq!(json(r#"{"b": 1, "a": [1, {"d": 2, "c": 3}]}"#), json(r#"{"a":[1,{"c":3,"d":2}],"b":1}"#));
        assert_ne!(json(r#"{"a": 1}"#), json(r#"{"a": 2}"#));
    }

    #[test]
    fn a_row_hash_sees_null_apart_from_empty_text_and_where_a_value_ends() {
        let t = ColumnType::String { max_chars: None, fixed: false };
        let types = [&t, &t];
        let h = |row: &[Value]| row_hash(row, &types, &[0, 1], &mut String::new());
        let text = |s: &str| Value::Text(s.into());
        assert_ne!(h(&[Value::Null, text("")]), h(&[text(""), text("")]));
        assert_ne!(h(&[text("a"), text("b")]), h(&[text("ab"), text("")]));
        assert_eq!(h(&[text("a"), Value::Int(1)]), h(&[text("a"), Value::UInt(1)]));
    }

    proptest! {
        #[test]
        fn writing_in_place_gives_the_canonical_text(i: i64, u: u64, s in "[ a-zé]{0,12}") {
            let fixed = ColumnType::String { max_chars: Some(12), fixed: true };
            let int = ColumnType::Int { bits: 64, unsigned: false };
            for (v, ty) in [(Value::Int(i), &int), (Value::UInt(u), &int), (Value::Text(s.clone()), &fixed), (Value::Timestamp(i), &int)] {
                let mut out = String::new();
                prop_assert!(write(&v, ty, &mut out));
                prop_assert_eq!(Some(out), canon(&v, ty));
            }
        }
    }

    proptest! {
        #[test]
        fn a_decimal_and_its_padded_forms_are_equal(int in 0u64..1_000_000_000, frac in 0u32..1000, pad in 0usize..4, neg: bool) {
            let base = format!("{}{int}.{frac:03}", if neg { "-" } else { "" });
            let padded = format!("{}{}{int}.{frac:03}{}", if neg { "-" } else { "" }, "0".repeat(pad), "0".repeat(pad));
            prop_assert_eq!(decimal(&base), decimal(&padded));
            // The canonical text reads back as the same number.
            let back: f64 = decimal(&base).parse().unwrap();
            let orig: f64 = base.parse().unwrap();
            prop_assert!((back - orig).abs() < 1e-9 * orig.abs().max(1.0));
        }

        #[test]
        fn floats_read_back_from_their_canonical_text(bits: u32) {
            let f = f32::from_bits(bits);
            prop_assume!(f.is_finite());
            let text = canon(&Value::Float(f), &ColumnType::Float).unwrap();
            prop_assert_eq!(text.parse::<f32>().unwrap(), f);
        }

        #[test]
        fn times_keep_sign_and_microseconds(us in -3_020_399_999_999i64..3_020_399_999_999) {
            let text = canon(&Value::Time(us), &ColumnType::Time { fsp: 6 }).unwrap();
            let neg = text.starts_with('-');
            let parts: Vec<&str> = text.trim_start_matches('-').split([':', '.']).collect();
            let back = parts[0].parse::<i64>().unwrap() * 3_600_000_000
                + parts[1].parse::<i64>().unwrap() * 60_000_000
                + parts[2].parse::<i64>().unwrap() * 1_000_000
                + parts[3].parse::<i64>().unwrap();
            prop_assert_eq!(if neg { -back } else { back }, us);
        }
    }
}
