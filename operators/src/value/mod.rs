//! Values: one enum that carries every MySQL/MariaDB and PostgreSQL value without loss.
//!
//! # Exactness rules
//!
//! - integers keep their signedness (`Int` for signed, `UInt` for unsigned 64-bit);
//! - `Decimal` keeps the exact decimal text (any number of digits, any scale) in a canonical
//!   form, or one of PostgreSQL's special `numeric` values `NaN`, `Infinity`, `-Infinity`;
//! - `Time` is a signed number of microseconds, so `-838:59:59.000000` and values past 24 h fit;
//! - `Date` and `DateTime` keep their civil fields, so MySQL zero dates (`0000-00-00`) survive,
//!   and so do PostgreSQL's BC dates and years past 9999: the year is astronomical (`0` is
//!   1 BC, `-1` is 2 BC); PostgreSQL's dates run from `-4713-11-24` (4714-11-24 BC) to
//!   `5874897-12-31`;
//! - `Timestamp` is an instant: microseconds since the Unix epoch, in UTC (from 4714 BC to
//!   294247-01-10 AD: PostgreSQL's `timestamptz` values after that, up to its limit of
//!   294276 AD, do not fit an `i64` counted from 1970; a source must reject them);
//! - PostgreSQL's `infinity` and `-infinity` dates and timestamps are the sentinels
//!   [`Date::INFINITY`], [`Date::NEG_INFINITY`] (and the [`DateTime`]s at their midnight),
//!   [`TIMESTAMP_INFINITY`] and [`TIMESTAMP_NEG_INFINITY`] (PostgreSQL's own representation):
//!   they sort after (before) every other value and print as `infinity` (`-infinity`);
//! - `Interval` keeps PostgreSQL's three parts (months, days, microseconds) apart, never
//!   normalized (`1 mon` and `30 days` are different values);
//! - `Bytes` keep any byte sequence (non-UTF-8 included); `Text` is always valid UTF-8.
//!
//! # Source types
//!
//! Every source column type and the [`Value`] kind its values arrive as; the column's
//! [`ColumnType`](crate::schema::ColumnType) keeps the details a target DDL needs.
//!
//! | MySQL / MariaDB | PostgreSQL | `Value` | notes |
//! |---|---|---|---|
//! | `BOOLEAN` | `bool` | `Bool` | |
//! | `TINYINT`, `SMALLINT`, `MEDIUMINT`, `INT`, `BIGINT` | `int2`, `int4`, `int8`, `oid` | `Int` | |
//! | the same, `UNSIGNED` | | `UInt` | |
//! | `FLOAT` | `float4` | `Float` | |
//! | `DOUBLE` | `float8` | `Double` | |
//! | `DECIMAL(p,s)` | `numeric`, `money` | `Decimal` | `money` as its number, without currency symbol or group separators; `numeric` may be `NaN`, `Infinity`, `-Infinity` |
//! | `CHAR`, `VARCHAR`, `TINYTEXT` .. `LONGTEXT` | `char`, `varchar`, `text`, `name`, `citext` | `Text` | |
//! | `BINARY`, `VARBINARY`, `TINYBLOB` .. `LONGBLOB` | `bytea` | `Bytes` | |
//! | `DATE` | `date` | `Date` | zero dates, BC dates, `infinity` |
//! | `TIME` | `time` | `Time` | |
//! | | `timetz` | `Text` | keeps the offset: `10:00:00+02` |
//! | `DATETIME` | `timestamp` | `DateTime` | |
//! | `TIMESTAMP` | `timestamptz` | `Timestamp` | |
//! | | `interval` | `Interval` | |
//! | `JSON` | `json`, `jsonb` | `Json` | |
//! | | `uuid` | `Uuid` | |
//! | | `inet`, `cidr`, `macaddr`, `macaddr8` | `Text` | PostgreSQL's text form |
//! | `BIT(n)` | `bit(n)`, `varbit(n)` | `Bit` | `width` is the value's own length (a `varbit`'s varies) |
//! | | `xml` | `Text` | |
//! | | `tsvector`, `tsquery` | `Text` | PostgreSQL's text form |
//! | | `point`, `line`, `lseg`, `box`, `path`, `polygon`, `circle` | `Text` | PostgreSQL's text form, e.g. `(1,2)` |
//! | | range and multirange types | `Text` | PostgreSQL's text form, e.g. `[1,10)` |
//! | `ENUM` | enum types | `Enum` | |
//! | `SET` | | `Set` | members comma-separated, as MySQL writes them |
//! | `YEAR` | | `Year` | |
//! | | arrays (any element type, any number of dimensions) | `Array` | nested `Array`s per dimension; NULL elements are `Null`; lower bounds other than 1 are not kept |
//! | | composite types | `Json` | an object by field name |
//! | | `hstore` | `Json` | an object of strings (or `null`) |
//! | | any other type (`pg_lsn`, `txid_snapshot`, ...) | `Text` | its text form |
//!
//! Types carried as `Text` or `Json` that a target DDL cannot infer from the value kind have
//! the column type [`ColumnType::Other`](crate::schema::ColumnType::Other) with their name.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt::{self, Write as _};

mod array;
mod decimal;
mod interval;

pub use array::{parse_array, write_array, MAX_ARRAY_DEPTH};
pub use decimal::{canonical_decimal, compare_decimal, decimal_special};

/// Microseconds in a day.
pub const DAY_MICROS: i64 = 86_400_000_000;
const HOUR_MICROS: i64 = 3_600_000_000;

/// `infinity` as a [`Value::Timestamp`] (PostgreSQL's own representation: the largest `i64`).
pub const TIMESTAMP_INFINITY: i64 = i64::MAX;
/// `-infinity` as a [`Value::Timestamp`] (the smallest `i64`).
pub const TIMESTAMP_NEG_INFINITY: i64 = i64::MIN;

/// A calendar date with civil fields; month and day may be 0 (MySQL zero dates).
///
/// Dates order by their fields (year, month, day), so zero dates sort before the first day of
/// their year, and the infinities sort last and first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Date {
    /// Astronomical year: `0` is 1 BC, `-1` is 2 BC; PostgreSQL's range is `-4713..=5874897`.
    pub year: i32,
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

/// A PostgreSQL `interval`: months, days and microseconds, kept apart as PostgreSQL keeps them
/// (a month is not a fixed number of days, nor a day a fixed number of hours across DST).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Interval {
    /// Months (years are 12 months).
    pub months: i32,
    /// Days.
    pub days: i32,
    /// Microseconds (hours, minutes, seconds).
    pub micros: i64,
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
    /// Exact decimal in canonical text form (optional `-`, digits, optional `.` and digits), or
    /// exactly one of `NaN`, `Infinity`, `-Infinity` (PostgreSQL `numeric`).
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
    /// An instant: microseconds since 1970-01-01T00:00:00Z ([`TIMESTAMP_INFINITY`] and
    /// [`TIMESTAMP_NEG_INFINITY`] are PostgreSQL's `infinity` and `-infinity`).
    Timestamp(i64),
    /// A JSON document as text.
    Json(String),
    /// An ENUM member, as its string.
    Enum(String),
    /// SET members, as MySQL writes them: comma-separated.
    Set(String),
    /// A bit string: `width` bits, big-endian in `bytes` (right-aligned).
    Bit {
        /// Number of bits (PostgreSQL bit strings may have up to 83886080).
        width: u32,
        /// The bits, big-endian, `ceil(width/8)` bytes.
        bytes: Vec<u8>,
    },
    /// A MySQL `YEAR`.
    Year(u16),
    /// A PostgreSQL `interval`.
    Interval(Interval),
    /// A UUID, its 16 bytes in the order of the text form.
    Uuid([u8; 16]),
    /// A PostgreSQL array: the elements of one dimension; a multi-dimensional array is an
    /// `Array` of `Array`s, and NULL elements are [`Value::Null`].
    Array(Vec<Value>),
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
            Value::Interval(_) => "interval",
            Value::Uuid(_) => "uuid",
            Value::Array(_) => "array",
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
            Value::Interval(i) => {
                h.write_u64(i.months as u32 as u64 | (i.days as u32 as u64) << 32);
                h.write_u64(i.micros as u64)
            }
            Value::Uuid(u) => {
                let (hi, lo) = u.split_at(8);
                h.write_u64(u64::from_be_bytes(hi.try_into().expect("8 bytes")));
                h.write_u64(u64::from_be_bytes(lo.try_into().expect("8 bytes")))
            }
            Value::Array(items) => {
                h.write_u64(items.len() as u64);
                for v in items {
                    v.stable_hash(h)
                }
            }
        }
    }

    /// Writes the value as JSON into `out` (see [`crate::json`] for the encoding of each kind).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        crate::json::write_value(self, out)
    }
}

fn date_key(d: &Date) -> u64 {
    ((d.year as i64 as u64) << 16) | ((d.month as u64) << 8) | d.day as u64
}

/// A fast, deterministic 64-bit hasher for exchange routing and key netting.
///
/// `std`'s default hasher is randomly seeded per process, so it cannot route records the same
/// way in two processes of a cluster; this one can. Each word is mixed with two
/// multiply-xorshift rounds: a single FxHash-style round (rotate, xor, multiply) collided in
/// full on short strings such as `acct_1019` / `acct_1094`.
#[derive(Clone, Copy, Debug, Default)]
pub struct StableHasher(u64);

impl StableHasher {
    /// Mixes in one word.
    #[inline]
    pub fn write_u64(&mut self, v: u64) {
        let mut x = (self.0 ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^= x >> 32;
        x = x.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        self.0 = x ^ (x >> 32);
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

/// Day numbers beyond this (about 1.9 billion years) become the infinite dates.
const MAX_DAYS: i64 = 700_000_000_000;

impl Date {
    /// PostgreSQL's `infinity` date: after every other date.
    pub const INFINITY: Date = Date { year: i32::MAX, month: 12, day: 31 };
    /// PostgreSQL's `-infinity` date: before every other date.
    pub const NEG_INFINITY: Date = Date { year: i32::MIN, month: 1, day: 1 };

    /// Builds a date (no validation: zero dates are allowed).
    pub const fn new(year: i32, month: u8, day: u8) -> Self {
        Date { year, month, day }
    }

    /// Whether this is a MySQL zero date (month or day 0).
    pub fn is_zero(&self) -> bool {
        self.month == 0 || self.day == 0
    }

    /// Whether this is [`Date::INFINITY`] or [`Date::NEG_INFINITY`].
    pub fn is_infinite(&self) -> bool {
        *self == Date::INFINITY || *self == Date::NEG_INFINITY
    }

    /// Days since 1970-01-01 in the proleptic Gregorian calendar; `None` for zero dates and the
    /// infinities.
    pub fn to_days(&self) -> Option<i64> {
        if self.is_zero() || self.is_infinite() {
            return None;
        }
        Some(days_from_civil(self.year as i64, self.month as i64, self.day as i64))
    }

    /// The date `days` after 1970-01-01 (an infinity for day numbers past a billion years).
    pub fn from_days(days: i64) -> Self {
        if days > MAX_DAYS {
            return Date::INFINITY;
        }
        if days < -MAX_DAYS {
            return Date::NEG_INFINITY;
        }
        let (y, m, d) = civil_from_days(days);
        Date { year: y as i32, month: m as u8, day: d as u8 }
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
    /// PostgreSQL's `infinity` timestamp (its date is [`Date::INFINITY`]).
    pub const INFINITY: DateTime = DateTime { date: Date::INFINITY, micros: 0 };
    /// PostgreSQL's `-infinity` timestamp (its date is [`Date::NEG_INFINITY`]).
    pub const NEG_INFINITY: DateTime = DateTime { date: Date::NEG_INFINITY, micros: 0 };

    /// Microseconds since 1970-01-01T00:00:00 as if the civil time were UTC; the infinities
    /// give [`TIMESTAMP_INFINITY`] and [`TIMESTAMP_NEG_INFINITY`]; `None` for zero dates and
    /// for finite date-times an `i64` cannot count (after 294247-01-10).
    pub fn to_epoch_micros(&self) -> Option<i64> {
        if self.date == Date::INFINITY {
            return Some(TIMESTAMP_INFINITY);
        }
        if self.date == Date::NEG_INFINITY {
            return Some(TIMESTAMP_NEG_INFINITY);
        }
        let us = self.date.to_days()? as i128 * DAY_MICROS as i128 + self.micros as i128;
        i64::try_from(us).ok().filter(|&us| us != TIMESTAMP_INFINITY && us != TIMESTAMP_NEG_INFINITY)
    }

    /// The civil date-time of an epoch offset in microseconds (the infinities map to
    /// [`DateTime::INFINITY`] and [`DateTime::NEG_INFINITY`]).
    pub fn from_epoch_micros(us: i64) -> Self {
        match us {
            TIMESTAMP_INFINITY => DateTime::INFINITY,
            TIMESTAMP_NEG_INFINITY => DateTime::NEG_INFINITY,
            _ => {
                let days = us.div_euclid(DAY_MICROS);
                let micros = us.rem_euclid(DAY_MICROS) as u64;
                DateTime { date: Date::from_days(days), micros }
            }
        }
    }
}

/// Writes a year with at least 4 digits, `-` before negative (astronomical) years: `0044`,
/// `12345`, `-0044` (45 BC).
pub fn write_year(out: &mut impl fmt::Write, year: i64) -> fmt::Result {
    if year < 0 {
        write!(out, "-{:04}", year.unsigned_abs())
    } else {
        write!(out, "{year:04}")
    }
}

impl fmt::Display for Date {
    /// `YYYY-MM-DD` (see [`write_year`] for other years), `infinity` or `-infinity`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Date::INFINITY {
            return f.write_str("infinity");
        }
        if *self == Date::NEG_INFINITY {
            return f.write_str("-infinity");
        }
        write_year(f, self.year as i64)?;
        write!(f, "-{:02}-{:02}", self.month, self.day)
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
    /// `YYYY-MM-DD HH:MM:SS[.ffffff]`, `infinity` or `-infinity`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.date.is_infinite() {
            return write!(f, "{}", self.date);
        }
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

/// Formats an instant as RFC 3339 UTC with microseconds when present (`infinity` and
/// `-infinity` for the sentinels).
pub fn format_timestamp(micros: i64, out: &mut impl fmt::Write) -> fmt::Result {
    let dt = DateTime::from_epoch_micros(micros);
    if dt.date.is_infinite() {
        return write!(out, "{}", dt.date);
    }
    write!(out, "{}T", dt.date)?;
    write_clock(out, dt.micros)?;
    out.write_char('Z')
}

/// The canonical text form of a UUID: 36 lowercase ASCII characters, hyphenated 8-4-4-4-12.
pub fn uuid_text(u: &[u8; 16]) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'-'; 36];
    let mut j = 0;
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            j += 1;
        }
        out[j] = HEX[(b >> 4) as usize];
        out[j + 1] = HEX[(b & 15) as usize];
        j += 2;
    }
    out
}

/// Parses a UUID as PostgreSQL does: 32 hex digits of either case, optionally in braces, with a
/// hyphen allowed after any group of four digits.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let t = s.trim();
    let t = t.strip_prefix('{').and_then(|r| r.strip_suffix('}')).unwrap_or(t);
    let mut out = [0u8; 16];
    let mut n = 0;
    let mut prev_hyphen = false;
    for c in t.bytes() {
        if c == b'-' {
            if n == 0 || n % 4 != 0 || n == 32 || prev_hyphen {
                return None;
            }
            prev_hyphen = true;
            continue;
        }
        prev_hyphen = false;
        let v = (c as char).to_digit(16)? as u8;
        if n == 32 {
            return None;
        }
        out[n / 2] |= if n % 2 == 0 { v << 4 } else { v };
        n += 1;
    }
    (n == 32 && !prev_hyphen).then_some(out)
}

impl fmt::Display for Value {
    /// The value as SQL-ish text (what `CAST(x AS CHAR)` would give); NULL prints as `NULL`.
    /// Intervals print in PostgreSQL's default style, UUIDs hyphenated in lowercase, arrays in
    /// PostgreSQL's text form.
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
                for _ in total..*width as usize {
                    f.write_char('0')?;
                }
                for i in total.saturating_sub(*width as usize)..total {
                    let bit = bytes[i / 8] >> (7 - i % 8) & 1;
                    f.write_char(if bit == 1 { '1' } else { '0' })?;
                }
                Ok(())
            }
            Value::Year(y) => write!(f, "{y:04}"),
            Value::Interval(i) => write!(f, "{i}"),
            Value::Uuid(u) => f.write_str(std::str::from_utf8(&uuid_text(u)).expect("ASCII")),
            Value::Array(items) => write_array(f, items),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
    fn dates_of_year_10000_and_minus_4712_round_trip_through_display_and_civil_days() {
        for (d, text) in [
            (Date::new(10_000, 1, 1), "10000-01-01"),
            (Date::new(-4712, 1, 1), "-4712-01-01"),
            (Date::new(5_874_897, 12, 31), "5874897-12-31"),
            (Date::new(0, 2, 29), "0000-02-29"),
            (Date::new(-1, 12, 31), "-0001-12-31"),
            (Date::new(-44, 3, 15), "-0044-03-15"),
        ] {
            assert_eq!(d.to_string(), text);
            let days = d.to_days().unwrap();
            assert_eq!(Date::from_days(days), d, "{text}");
        }
        // PostgreSQL's first date, 4714-11-24 BC (Julian day 0), is -4713-11-24 here.
        assert_eq!(Date::new(-4713, 11, 24).to_days(), Some(-2_440_588));
        assert_eq!(Date::from_days(-2_440_588).to_string(), "-4713-11-24");
        assert_eq!(Date::new(10_000, 1, 1).to_days(), Some(2_932_897));
        assert!(Date::new(-1, 12, 31) < Date::new(0, 1, 1));
        assert_eq!(Date::new(0, 0, 0).to_string(), "0000-00-00");
    }

    #[test]
    fn timestamps_and_datetimes_of_far_years_format_without_panicking() {
        let mut s = String::new();
        let far = DateTime { date: Date::new(294_276, 12, 31), micros: DAY_MICROS as u64 - 1 };
        assert_eq!(far.to_string(), "294276-12-31 23:59:59.999999");
        assert_eq!(far.to_epoch_micros(), None, "beyond an i64 of microseconds since 1970");
        let bc = DateTime { date: Date::new(-4712, 1, 1), micros: 1 };
        assert_eq!(bc.to_string(), "-4712-01-01 00:00:00.000001");
        let us = bc.to_epoch_micros().unwrap();
        assert_eq!(DateTime::from_epoch_micros(us), bc);
        format_timestamp(us, &mut s).unwrap();
        assert_eq!(s, "-4712-01-01T00:00:00.000001Z");
        s.clear();
        let y10k = DateTime { date: Date::new(10_000, 1, 1), micros: 0 }.to_epoch_micros().unwrap();
        format_timestamp(y10k, &mut s).unwrap();
        assert_eq!(s, "10000-01-01T00:00:00Z");
        for us in [i64::MIN + 1, i64::MAX - 1, -1, 0, y10k, -y10k] {
            let dt = DateTime::from_epoch_micros(us);
            assert_eq!(dt.to_epoch_micros(), Some(us), "{dt}");
            let _ = Value::Timestamp(us).to_string();
        }
        assert_eq!(Value::Timestamp(i64::MAX - 1).to_string(), "294247-01-10T04:00:54.775806Z");
        assert_eq!(Value::Timestamp(i64::MIN + 1).to_string(), "-290308-12-21T19:59:05.224193Z");
    }

    #[test]
    fn infinite_dates_and_timestamps_print_as_postgresql_and_sort_at_the_ends() {
        assert_eq!(Value::Date(Date::INFINITY).to_string(), "infinity");
        assert_eq!(Value::Date(Date::NEG_INFINITY).to_string(), "-infinity");
        assert_eq!(Value::DateTime(DateTime::INFINITY).to_string(), "infinity");
        assert_eq!(Value::Timestamp(TIMESTAMP_NEG_INFINITY).to_string(), "-infinity");
        assert_eq!(DateTime::from_epoch_micros(TIMESTAMP_INFINITY), DateTime::INFINITY);
        assert_eq!(DateTime::NEG_INFINITY.to_epoch_micros(), Some(TIMESTAMP_NEG_INFINITY));
        assert!(Date::INFINITY > Date::new(5_874_897, 12, 31));
        assert!(Date::NEG_INFINITY < Date::new(-4712, 1, 1));
        assert_eq!(Date::INFINITY.to_days(), None);
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
    fn decimal_special_values_order_as_postgresql() {
        let big = "9".repeat(1000);
        let neg_big = format!("-{big}");
        // Ascending, as PostgreSQL sorts numeric.
        let sorted = ["-Infinity", neg_big.as_str(), "-1", "0", "0.5", big.as_str(), "Infinity", "NaN"];
        for (i, a) in sorted.iter().enumerate() {
            for (j, b) in sorted.iter().enumerate() {
                assert_eq!(compare_decimal(a, b), i.cmp(&j), "{a} vs {b}");
            }
        }
        assert_eq!(compare_decimal("NaN", "NaN"), Ordering::Equal);
        assert_eq!(canonical_decimal("nan").as_deref(), Some("NaN"));
        assert_eq!(canonical_decimal(" -inf ").as_deref(), Some("-Infinity"));
        assert_eq!(canonical_decimal("+Infinity").as_deref(), Some("Infinity"));
        assert_eq!(canonical_decimal("-NaN"), None);
        assert_eq!(decimal_special("Infinity"), Some(f64::INFINITY));
        assert_eq!(decimal_special("infinity"), None, "only the canonical spellings are values");
    }

    #[test]
    fn bit_prints_its_width() {
        let v = Value::Bit { width: 10, bytes: vec![0b10, 0b0000_0101] };
        assert_eq!(v.to_string(), "1000000101");
        // A malformed width never panics: missing high bits print as 0.
        assert_eq!(Value::Bit { width: 10, bytes: vec![5] }.to_string(), "0000000101");
    }

    #[test]
    fn interval_prints_as_postgresql_and_as_iso_8601() {
        let cases = [
            (
                Interval::new(14, 3, 4 * HOUR_MICROS + 5 * 60_000_000 + 6_000_007),
                "1 year 2 mons 3 days 04:05:06.000007",
                "P1Y2M3DT4H5M6.000007S",
            ),
            (Interval::new(-1, 0, 0), "-1 mons", "P-1M"),
            (Interval::new(0, -1, 2 * HOUR_MICROS + 3 * 60_000_000), "-1 days +02:03:00", "P-1DT2H3M"),
            (Interval::new(0, 0, 0), "00:00:00", "PT0S"),
            (Interval::new(0, 0, -1_500_000), "-00:00:01.5", "PT-1.5S"),
            (Interval::new(12, 1, 0), "1 year 1 day", "P1Y1D"),
            (Interval::new(-13, 0, -HOUR_MICROS), "-1 years -1 mons -01:00:00", "P-1Y-1MT-1H"),
            (Interval::new(0, 0, 100 * HOUR_MICROS), "100:00:00", "PT100H"),
            (Interval::INFINITY, "infinity", "infinity"),
            (Interval::NEG_INFINITY, "-infinity", "-infinity"),
        ];
        for (i, pg, iso) in cases {
            assert_eq!(i.to_string(), pg);
            let mut s = String::new();
            i.write_iso(&mut s).unwrap();
            assert_eq!(s, iso);
            assert_eq!(Interval::parse(pg), Ok(i), "{pg}");
            assert_eq!(Interval::parse(iso), Ok(i), "{iso}");
        }
    }

    #[test]
    fn interval_parses_postgresql_input_forms() {
        let us = |h: i64, m: i64, s: i64| (h * 3600 + m * 60 + s) * 1_000_000;
        for (text, want) in [
            ("@ 1 year 2 mons", Interval::new(14, 0, 0)),
            ("1 day ago", Interval::new(0, -1, 0)),
            ("2 weeks 1.5 hours", Interval::new(0, 14, us(1, 30, 0))),
            ("3 4:05:06", Interval::new(0, 3, us(4, 5, 6))),
            ("10min", Interval::new(0, 0, us(0, 10, 0))),
            ("90", Interval::new(0, 0, us(0, 1, 30))),
            ("1 century 1 decade", Interval::new(1320, 0, 0)),
            ("250 ms 3 us", Interval::new(0, 0, 250_003)),
            ("P1W", Interval::new(0, 7, 0)),
            ("pt1.25s", Interval::new(0, 0, 1_250_000)),
        ] {
            assert_eq!(Interval::parse(text), Ok(want), "{text}");
        }
        for bad in ["", "P", "1 fortnight", "1.5 years", "P1.5D", "1:60", "PT1D", "2147483648 days", "1 ago 2"] {
            assert!(Interval::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Interval::new(1, 0, 0).pg_cmp(&Interval::new(0, 30, 0)), Ordering::Equal);
        assert_eq!(Interval::new(0, 1, 0).pg_cmp(&Interval::new(0, 0, 25 * HOUR_MICROS)), Ordering::Less);
        assert!(Interval::INFINITY.pg_cmp(&Interval::new(i32::MAX, i32::MAX, 0)).is_gt());
    }

    #[test]
    fn uuid_text_is_canonical_and_parses_postgresql_forms() {
        let text = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        let u = parse_uuid(text).unwrap();
        assert_eq!(Value::Uuid(u).to_string(), text);
        for other in [
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}",
            "a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
        ] {
            assert_eq!(parse_uuid(other), Some(u), "{other}");
        }
        for bad in [
            "",
            "a0eebc99",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-",
            "-a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "a0eeb-c999c0b4ef8bb6d6bb9bd380a11",
            "g0eebc999c0b4ef8bb6d6bb9bd380a11",
        ] {
            assert_eq!(parse_uuid(bad), None, "{bad}");
        }
    }

    fn text_element(s: &str) -> Result<Value, String> {
        Ok(Value::Text(s.into()))
    }

    #[test]
    fn array_text_form_quotes_as_postgresql() {
        let v = Value::Array(vec![
            Value::Array(vec![Value::Text("a b".into()), Value::Null, Value::Text("NULL".into())]),
            Value::Array(vec![Value::Text("".into()), Value::Text("q\"\\".into()), Value::Text("{,}".into())]),
        ]);
        assert_eq!(v.to_string(), r#"{{"a b",NULL,"NULL"},{"","q\"\\","{,}"}}"#);
        assert_eq!(parse_array(&v.to_string(), &mut text_element), Ok(v));
        assert_eq!(Value::Array(vec![Value::Int(1), Value::Int(-2)]).to_string(), "{1,-2}");
        assert_eq!(Value::Array(vec![]).to_string(), "{}");
        let parsed = parse_array(" { 1 , NULL ,\\NULL, x\\ } ", &mut text_element).unwrap();
        let want = ["1", "", "NULL", "x "].map(|s| if s.is_empty() { Value::Null } else { Value::Text(s.into()) });
        assert_eq!(parsed, Value::Array(want.to_vec()));
        for bad in ["", "{", "{1,2", "{1}x", "[1:2]={1,2}", "{a\"b}", "{\"a}", "1,2"] {
            assert!(parse_array(bad, &mut text_element).is_err(), "{bad}");
        }
        let deep = "{".repeat(MAX_ARRAY_DEPTH + 1) + &"}".repeat(MAX_ARRAY_DEPTH + 1);
        assert!(parse_array(&deep, &mut text_element).is_err());
    }

    #[test]
    fn new_kinds_hash_stably_and_distinctly() {
        let hash = |v: &Value| {
            let mut h = StableHasher::default();
            v.stable_hash(&mut h);
            h.finish()
        };
        let a = Value::Array(vec![Value::Array(vec![Value::Int(1)]), Value::Array(vec![Value::Int(2)])]);
        let b = Value::Array(vec![Value::Int(1), Value::Int(2)]);
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(hash(&a), hash(&a.clone()));
        assert_ne!(hash(&Value::Interval(Interval::new(1, 0, 0))), hash(&Value::Interval(Interval::new(0, 1, 0))));
        assert_ne!(hash(&Value::Uuid([0; 16])), hash(&Value::Uuid([1; 16])));
    }

    fn arb_interval() -> impl Strategy<Value = Interval> {
        (any::<i32>(), any::<i32>(), any::<i64>())
            .prop_map(|(m, d, us)| Interval::new(m, d, us))
            .prop_filter("finite", |i| *i != Interval::INFINITY && *i != Interval::NEG_INFINITY)
    }

    fn arb_text_array() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            "\\PC{0,6}".prop_map(Value::Text),
            "[ ,{}\"\\\\a]{0,4}".prop_map(Value::Text)
        ];
        prop::collection::vec(leaf, 0..5)
            .prop_map(Value::Array)
            .prop_recursive(3, 32, 4, |inner| prop::collection::vec(inner, 0..4).prop_map(Value::Array))
    }

    proptest! {
        #[test]
        fn interval_text_forms_parse_back_to_the_same_parts(i in arb_interval()) {
            prop_assert_eq!(Interval::parse(&i.to_string()), Ok(i));
            let mut iso = String::new();
            i.write_iso(&mut iso).unwrap();
            prop_assert_eq!(Interval::parse(&iso), Ok(i));
        }

        #[test]
        fn array_text_form_parses_back_to_the_same_array(v in arb_text_array()) {
            prop_assert_eq!(parse_array(&v.to_string(), &mut text_element), Ok(v));
        }

        #[test]
        fn dates_round_trip_through_day_numbers(days in -2_200_000_000i64..2_200_000_000) {
            let d = Date::from_days(days);
            prop_assert_eq!(d.to_days(), Some(days));
        }
    }
}
