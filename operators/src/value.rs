//! Values: one enum that carries every MySQL/MariaDB and PostgreSQL value without loss.
//!
//! Exactness rules:
//! - integers keep their signedness (`Int` for signed, `UInt` for unsigned 64-bit);
//! - `Decimal` keeps the exact decimal text (up to 65 digits, any scale) in a canonical form;
//! - `Time` is a signed number of microseconds, so `-838:59:59.000000` and values past 24 h fit;
//! - `Date` and `DateTime` keep their civil fields, so MySQL zero dates (`0000-00-00`) survive;
//! - `Timestamp` is an instant: microseconds since the Unix epoch, in UTC;
//! - `Bytes` keep any byte sequence (non-UTF-8 included); `Text` is always valid UTF-8.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt::{self, Write as _};

/// A calendar date with civil fields; month and day may be 0 (MySQL zero dates).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Date {
    /// Year, 0..=9999.
    pub year: u16,
    /// Month 1..=12, or 0 in a zero date.
    pub month: u8,
    /// Day 1..=31, or 0 in a zero date.
    pub day: u8,
}

/// A civil date and time of day without time zone (MySQL `DATETIME`, PostgreSQL `timestamp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DateTime {
    /// The date part.
    pub date: Date,
    /// Microseconds since midnight, `0..86_400_000_000`.
    pub micros: u64,
}

/// One value of a row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// Boolean.
    Bool(bool),
    /// Signed integer of any width up to 64 bits.
    Int(i64),
    /// Unsigned integer of any width up to 64 bits.
    UInt(u64),
    /// Single-precision float.
    Float(f32),
    /// Double-precision float.
    Double(f64),
    /// Exact decimal in canonical text form: optional `-`, digits, optional `.` and digits.
    Decimal(String),
    /// Character data, always valid UTF-8.
    Text(String),
    /// Binary data, any bytes.
    Bytes(Vec<u8>),
    /// A date.
    Date(Date),
    /// A signed time span in microseconds (MySQL `TIME`: -838:59:59 to 838:59:59).
    Time(i64),
    /// A civil date-time without zone.
    DateTime(DateTime),
    /// An instant: microseconds since 1970-01-01T00:00:00Z.
    Timestamp(i64),
    /// A JSON document as text.
    Json(String),
    /// An ENUM member, as its string.
    Enum(String),
    /// SET members, as MySQL writes them: comma-separated.
    Set(String),
    /// A bit string: `width` bits, big-endian in `bytes` (right-aligned).
    Bit {
        /// Number of bits.
        width: u16,
        /// The bits, big-endian, `ceil(width/8)` bytes.
        bytes: Vec<u8>,
    },
    /// A MySQL `YEAR`.
    Year(u16),
}

impl Value {
    /// True for SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// A short name of the value's kind, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::UInt(_) => "uint",
            Value::Float(_) => "float",
            Value::Double(_) => "double",
            Value::Decimal(_) => "decimal",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
            Value::Date(_) => "date",
            Value::Time(_) => "time",
            Value::DateTime(_) => "datetime",
            Value::Timestamp(_) => "timestamp",
            Value::Json(_) => "json",
            Value::Enum(_) => "enum",
            Value::Set(_) => "set",
            Value::Bit { .. } => "bit",
            Value::Year(_) => "year",
        }
    }

    /// Feeds the value into a hasher in a way that is stable across processes and builds.
    pub fn stable_hash(&self, h: &mut StableHasher) {
        match self {
            Value::Null => h.write_u8(0),
            Value::Bool(b) => h.write_u64(*b as u64 + 1),
            Value::Int(i) => h.write_u64(*i as u64),
            Value::UInt(u) => h.write_u64(*u),
            Value::Float(f) => h.write_u64(f.to_bits() as u64),
            Value::Double(f) => h.write_u64(f.to_bits()),
            Value::Year(y) => h.write_u64(*y as u64),
            Value::Time(t) | Value::Timestamp(t) => h.write_u64(*t as u64),
            Value::Date(d) => h.write_u64(date_key(d)),
            Value::DateTime(dt) => {
                h.write_u64(date_key(&dt.date));
                h.write_u64(dt.micros)
            }
            Value::Decimal(s) | Value::Text(s) | Value::Json(s) | Value::Enum(s) | Value::Set(s) => {
                h.write_bytes(s.as_bytes())
            }
            Value::Bytes(b) | Value::Bit { bytes: b, .. } => h.write_bytes(b),
        }
    }

    /// Writes the value as JSON into `out` (see [`crate::json`] for the encoding of each kind).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        crate::json::write_value(self, out)
    }
}

fn date_key(d: &Date) -> u64 {
    ((d.year as u64) << 16) | ((d.month as u64) << 8) | d.day as u64
}

/// A fast, deterministic 64-bit hasher (FxHash-style) for exchange routing.
///
/// `std`'s default hasher is randomly seeded per process, so it cannot route records the same
/// way in two processes of a cluster; this one can.
#[derive(Clone, Copy, Debug, Default)]
pub struct StableHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl StableHasher {
    /// Mixes in one word.
    #[inline]
    pub fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(SEED);
    }
    /// Mixes in one byte.
    #[inline]
    pub fn write_u8(&mut self, v: u8) {
        self.write_u64(v as u64)
    }
    /// Mixes in a byte string (length-prefixed).
    pub fn write_bytes(&mut self, b: &[u8]) {
        self.write_u64(b.len() as u64);
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            self.write_u64(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let mut last = [0u8; 8];
        let rest = chunks.remainder();
        last[..rest.len()].copy_from_slice(rest);
        self.write_u64(u64::from_le_bytes(last));
    }
    /// The hash so far, with a final avalanche so low bits are well mixed.
    pub fn finish(&self) -> u64 {
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51afd7ed558ccd);
        x ^= x >> 33;
        x
    }
}

impl Date {
    /// Builds a date (no validation: zero dates are allowed).
    pub const fn new(year: u16, month: u8, day: u8) -> Self {
        Date { year, month, day }
    }

    /// Days since 1970-01-01 in the proleptic Gregorian calendar; `None` for zero dates.
    pub fn to_days(&self) -> Option<i64> {
        if self.month == 0 || self.day == 0 {
            return None;
        }
        Some(days_from_civil(self.year as i64, self.month as i64, self.day as i64))
    }

    /// The date `days` after 1970-01-01.
    pub fn from_days(days: i64) -> Self {
        let (y, m, d) = civil_from_days(days);
        Date { year: y as u16, month: m as u8, day: d as u8 }
    }
}

/// Days from 1970-01-01 to the civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl DateTime {
    /// Microseconds since 1970-01-01T00:00:00 as if the civil time were UTC; `None` for zero dates.
    pub fn to_epoch_micros(&self) -> Option<i64> {
        self.date.to_days().map(|d| d * 86_400_000_000 + self.micros as i64)
    }
    /// The civil date-time of an epoch offset in microseconds.
    pub fn from_epoch_micros(us: i64) -> Self {
        let days = us.div_euclid(86_400_000_000);
        let micros = us.rem_euclid(86_400_000_000) as u64;
        DateTime { date: Date::from_days(days), micros }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

fn write_clock(f: &mut impl fmt::Write, micros: u64) -> fmt::Result {
    let secs = micros / 1_000_000;
    let frac = micros % 1_000_000;
    write!(f, "{:02}:{:02}:{:02}", secs / 3600, (secs / 60) % 60, secs % 60)?;
    if frac != 0 {
        write!(f, ".{frac:06}")?;
    }
    Ok(())
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.date)?;
        write_clock(f, self.micros)
    }
}

/// Formats a signed TIME span as `[-]HHH:MM:SS[.ffffff]`.
pub fn format_time(micros: i64, out: &mut impl fmt::Write) -> fmt::Result {
    if micros < 0 {
        out.write_char('-')?;
    }
    write_clock(out, micros.unsigned_abs())
}

/// Formats an instant as RFC 3339 UTC with microseconds when present.
pub fn format_timestamp(micros: i64, out: &mut impl fmt::Write) -> fmt::Result {
    let dt = DateTime::from_epoch_micros(micros);
    write!(out, "{}T", dt.date)?;
    write_clock(out, dt.micros)?;
    out.write_char('Z')
}

impl fmt::Display for Value {
    /// The value as SQL-ish text (what `CAST(x AS CHAR)` would give); NULL prints as `NULL`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::UInt(u) => write!(f, "{u}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Double(x) => write!(f, "{x}"),
            Value::Decimal(s) | Value::Text(s) | Value::Json(s) | Value::Enum(s) | Value::Set(s) => f.write_str(s),
            Value::Bytes(b) => f.write_str(&String::from_utf8_lossy(b)),
            Value::Date(d) => write!(f, "{d}"),
            Value::Time(t) => format_time(*t, f),
            Value::DateTime(dt) => write!(f, "{dt}"),
            Value::Timestamp(t) => format_timestamp(*t, f),
            Value::Bit { width, bytes } => {
                let total = bytes.len() * 8;
                for i in (total - *width as usize)..total {
                    let bit = bytes[i / 8] >> (7 - i % 8) & 1;
                    f.write_char(if bit == 1 { '1' } else { '0' })?;
                }
                Ok(())
            }
            Value::Year(y) => write!(f, "{y:04}"),
        }
    }
}

/// Canonicalizes decimal text: strips `+`, leading zeros of the integer part, keeps the scale.
/// Returns `None` if `s` is not a decimal number.
pub fn canonical_decimal(s: &str) -> Option<String> {
    let s = s.trim();
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    if int.is_empty() && frac.is_none_or(|f| f.is_empty()) {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.unwrap_or("").bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int = int.trim_start_matches('0');
    let mut out = String::with_capacity(s.len() + 1);
    let zero = int.is_empty() && frac.unwrap_or("").bytes().all(|b| b == b'0');
    if neg && !zero {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { int });
    if let Some(f) = frac {
        if !f.is_empty() {
            out.push('.');
            out.push_str(f);
        }
    }
    Some(out)
}

/// Compares two decimal texts numerically (both must be canonical or at least well-formed).
pub fn compare_decimal(a: &str, b: &str) -> Ordering {
    let (an, a) = a.strip_prefix('-').map_or((false, a), |r| (true, r));
    let (bn, b) = b.strip_prefix('-').map_or((false, b), |r| (true, r));
    let mag = |x: &str| -> (String, String) {
        let (i, f) = x.split_once('.').unwrap_or((x, ""));
        (i.trim_start_matches('0').to_string(), f.trim_end_matches('0').to_string())
    };
    let (ai, af) = mag(a);
    let (bi, bf) = mag(b);
    let a_zero = ai.is_empty() && af.is_empty();
    let b_zero = bi.is_empty() && bf.is_empty();
    let an = an && !a_zero;
    let bn = bn && !b_zero;
    let magnitude = ai.len().cmp(&bi.len()).then_with(|| ai.cmp(&bi)).then_with(|| af.cmp(&bf));
    match (an, bn) {
        (false, false) => magnitude,
        (true, true) => magnitude.reverse(),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_round_trip_over_four_centuries() {
        for z in (-800_000..800_000).step_by(37) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn time_formats_negative_and_over_24_hours() {
        let mut s = String::new();
        format_time(-(838 * 3600 + 59 * 60 + 59) * 1_000_000, &mut s).unwrap();
        assert_eq!(s, "-838:59:59");
        assert_eq!(Value::Time(25 * 3_600_000_000 + 1).to_string(), "25:00:00.000001");
    }

    #[test]
    fn decimal_canonical_form_and_order() {
        assert_eq!(canonical_decimal("+007.50").as_deref(), Some("7.50"));
        assert_eq!(canonical_decimal("-0.000").as_deref(), Some("0.000"));
        assert_eq!(canonical_decimal("1e5"), None);
        assert_eq!(compare_decimal("-1.5", "1"), Ordering::Less);
        assert_eq!(compare_decimal("10.0", "9.99"), Ordering::Greater);
        assert_eq!(compare_decimal("-10", "-9.99"), Ordering::Less);
        assert_eq!(compare_decimal("2.50", "2.5"), Ordering::Equal);
        let big = "9".repeat(35) + "." + &"9".repeat(30);
        assert_eq!(compare_decimal(&big, "1"), Ordering::Greater);
    }

    #[test]
    fn bit_prints_its_width() {
        let v = Value::Bit { width: 10, bytes: vec![0b10, 0b0000_0101] };
        assert_eq!(v.to_string(), "1000000101");
    }
}
