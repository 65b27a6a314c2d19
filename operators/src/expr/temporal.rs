//! Date and time: parsing literals, civil views, and `date_format`.

use crate::value::{days_from_civil, write_year, Date, DateTime, Value, TIMESTAMP_INFINITY, TIMESTAMP_NEG_INFINITY};
use std::fmt::Write as _;

const DAY_US: i64 = 86_400_000_000;

/// Days in a month of a year (proleptic Gregorian).
pub(crate) fn days_in_month(y: i64, m: u8) -> u8 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// A small cursor over ASCII text.
struct Cur<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cur<'_> {
    fn digits(&mut self, min: usize, max: usize) -> Option<u64> {
        let start = self.i;
        while self.i < self.b.len() && self.i - start < max && self.b[self.i].is_ascii_digit() {
            self.i += 1;
        }
        if self.i - start < min {
            return None;
        }
        Some(self.b[start..self.i].iter().fold(0, |a, &d| a * 10 + (d - b'0') as u64))
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn done(&self) -> bool {
        self.i == self.b.len()
    }
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
}

/// Parses `[-]YYYY-MM-DD` (a year of 4 to 7 digits, negative years astronomical: `-0044` is
/// 45 BC); the all-zero date `0000-00-00` is allowed.
fn date_part(c: &mut Cur<'_>) -> Result<Date, String> {
    let neg = c.eat(b'-');
    if !neg {
        c.eat(b'+');
    }
    let y = c.digits(4, 7).ok_or("expected a year of at least 4 digits")? as i64;
    let y = if neg { -y } else { y };
    if c.peek().is_some_and(|b| b.is_ascii_digit()) {
        return Err("the year has more than 7 digits".into());
    }
    if !c.eat(b'-') {
        return Err("expected '-' after the year".into());
    }
    let m = c.digits(1, 2).ok_or("expected a month")?;
    if !c.eat(b'-') {
        return Err("expected '-' after the month".into());
    }
    let d = c.digits(1, 2).ok_or("expected a day")?;
    if y == 0 && m == 0 && d == 0 {
        return Ok(Date::new(0, 0, 0));
    }
    if !(1..=12).contains(&m) {
        return Err(format!("month {m} is out of range 1..12"));
    }
    let dim = days_in_month(y, m as u8) as u64;
    if d < 1 || d > dim {
        let mut ym = String::new();
        let _ = write_year(&mut ym, y);
        return Err(format!("day {d} is out of range 1..{dim} for {ym}-{m:02}"));
    }
    Ok(Date::new(y as i32, m as u8, d as u8))
}

/// Parses `HH:MM[:SS[.ffffff]]` (hours up to `max_h`), returning microseconds.
fn clock(c: &mut Cur<'_>, max_h: u64) -> Result<u64, String> {
    let h = c.digits(1, 3).ok_or("expected hours")?;
    if h > max_h {
        return Err(format!("hour {h} is out of range 0..{max_h}"));
    }
    if !c.eat(b':') {
        return Err("expected ':' after the hours".into());
    }
    let mi = c.digits(2, 2).ok_or("expected 2-digit minutes")?;
    if mi > 59 {
        return Err(format!("minute {mi} is out of range 0..59"));
    }
    let mut s = 0;
    let mut frac = 0;
    if c.eat(b':') {
        s = c.digits(2, 2).ok_or("expected 2-digit seconds")?;
        if s > 59 {
            return Err(format!("second {s} is out of range 0..59"));
        }
        if c.eat(b'.') {
            let start = c.i;
            let f = c.digits(1, 6).ok_or("expected fractional seconds")?;
            frac = f * 10u64.pow(6 - (c.i - start) as u32);
            if c.peek().is_some_and(|b| b.is_ascii_digit()) {
                return Err("more than 6 fractional digits".into());
            }
        }
    }
    Ok(((h * 60 + mi) * 60 + s) * 1_000_000 + frac)
}

/// A parsed date or date-time literal, with an optional zone offset in seconds.
pub(crate) struct Civil {
    pub(crate) dt: DateTime,
    pub(crate) has_time: bool,
    pub(crate) offset_secs: Option<i64>,
}

/// Parses `[-]YYYY-MM-DD[( |T)HH:MM[:SS[.ffffff]]][Z|±HH:MM]`.
pub(crate) fn parse_civil(s: &str) -> Result<Civil, String> {
    let t = s.trim();
    let mut c = Cur { b: t.as_bytes(), i: 0 };
    let date = date_part(&mut c)?;
    let mut micros = 0;
    let mut has_time = false;
    let mut offset_secs = None;
    if c.eat(b' ') || c.eat(b'T') || c.eat(b't') {
        micros = clock(&mut c, 23)?;
        has_time = true;
        if c.eat(b'Z') || c.eat(b'z') {
            offset_secs = Some(0);
        } else if let Some(sign @ (b'+' | b'-')) = c.peek() {
            c.i += 1;
            let h = c.digits(2, 2).ok_or("expected a zone offset like +02:00")?;
            c.eat(b':');
            let m = c.digits(2, 2).ok_or("expected a zone offset like +02:00")?;
            if h > 14 || m > 59 {
                return Err("zone offset out of range".into());
            }
            let secs = (h * 3600 + m * 60) as i64;
            offset_secs = Some(if sign == b'-' { -secs } else { secs });
        }
    }
    if !c.done() {
        return Err(format!("unexpected '{}'", &t[c.i..]));
    }
    Ok(Civil { dt: DateTime { date, micros }, has_time, offset_secs })
}

/// Parses a `TIME`: `[-][D ]HHH:MM[:SS[.ffffff]]`, up to ±838:59:59.
pub(crate) fn parse_time(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let (neg, body) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t),
    };
    let mut c = Cur { b: body.as_bytes(), i: 0 };
    let mut days = 0;
    if let Some(sp) = body.find(' ') {
        days = body[..sp].parse::<u64>().map_err(|_| "expected days before the space")?;
        if days > 34 {
            return Err("out of the TIME range -838:59:59..838:59:59".into());
        }
        c.i = sp + 1;
    }
    let us = clock(&mut c, 838)? + days * DAY_US as u64;
    if !c.done() {
        return Err(format!("unexpected '{}'", &body[c.i..]));
    }
    if us > 838 * 3_600_000_000 + 59 * 60_000_000 + 59_000_000 {
        return Err("out of the TIME range -838:59:59..838:59:59".into());
    }
    Ok(if neg { -(us as i64) } else { us as i64 })
}

/// Epoch microseconds of a civil date-time read as UTC (the infinities give the timestamp
/// infinities); an error for zero dates and for instants an `i64` cannot count.
pub(crate) fn civil_to_utc(dt: &DateTime) -> Result<i64, String> {
    match dt.to_epoch_micros() {
        Some(us) => Ok(us),
        None if dt.date.is_zero() => Err("a zero date is not a valid TIMESTAMP".into()),
        None => Err(format!("{dt} is out of the range of TIMESTAMP")),
    }
}

/// PostgreSQL's `infinity` (`Some(true)`) or `-infinity` (`Some(false)`), in any case.
fn infinity(s: &str) -> Option<bool> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("infinity") || t.eq_ignore_ascii_case("+infinity") {
        Some(true)
    } else if t.eq_ignore_ascii_case("-infinity") {
        Some(false)
    } else {
        None
    }
}

/// Text to a `DATE` for comparison with a date column: a date, or a date-time when the text
/// has a time of day; `infinity` and `-infinity` are the infinite dates.
pub(crate) fn text_to_date(s: &str) -> Result<Value, String> {
    if let Some(pos) = infinity(s) {
        return Ok(Value::Date(if pos { Date::INFINITY } else { Date::NEG_INFINITY }));
    }
    let c = parse_civil(s)?;
    if c.has_time {
        // A date column compared with a date-time literal compares as date-times.
        Ok(Value::DateTime(c.dt))
    } else {
        Ok(Value::Date(c.dt.date))
    }
}

/// Text to `DATETIME` (a date alone means midnight). A zone offset converts to UTC.
/// `infinity` and `-infinity` are the infinite date-times.
pub(crate) fn text_to_datetime(s: &str) -> Result<DateTime, String> {
    if let Some(pos) = infinity(s) {
        return Ok(if pos { DateTime::INFINITY } else { DateTime::NEG_INFINITY });
    }
    let c = parse_civil(s)?;
    match c.offset_secs {
        Some(off) if off != 0 => {
            if c.dt.date.is_zero() {
                return Err("a zero date cannot have a zone".into());
            }
            Ok(DateTime::from_epoch_micros(shift(civil_to_utc(&c.dt)?, off)?))
        }
        _ => Ok(c.dt),
    }
}

/// `us` minus a zone offset, within the finite range of timestamps.
fn shift(us: i64, offset_secs: i64) -> Result<i64, String> {
    us.checked_sub(offset_secs * 1_000_000)
        .filter(|&r| r != TIMESTAMP_INFINITY && r != TIMESTAMP_NEG_INFINITY)
        .ok_or_else(|| "out of the range of TIMESTAMP".to_string())
}

/// Text to `TIMESTAMP`: UTC unless a `Z` or `±HH:MM` offset is given; zero dates are rejected;
/// `infinity` and `-infinity` are the infinite timestamps.
pub(crate) fn text_to_timestamp(s: &str) -> Result<i64, String> {
    if let Some(pos) = infinity(s) {
        return Ok(if pos { TIMESTAMP_INFINITY } else { TIMESTAMP_NEG_INFINITY });
    }
    let c = parse_civil(s)?;
    shift(civil_to_utc(&c.dt)?, c.offset_secs.unwrap_or(0))
}

/// A civil view of a date-like value: Date (midnight), DateTime, Timestamp (UTC).
#[inline]
pub(crate) fn civil(v: &Value) -> Option<DateTime> {
    match v {
        Value::Date(d) => Some(DateTime { date: *d, micros: 0 }),
        Value::DateTime(dt) => Some(*dt),
        Value::Timestamp(t) => Some(DateTime::from_epoch_micros(*t)),
        _ => None,
    }
}

/// Rounds microseconds of a day/instant to `fsp` fractional digits (half up).
/// The infinities stay as they are; a finite value never rounds into one.
pub(crate) fn round_micros(us: i64, fsp: u8) -> i64 {
    if fsp >= 6 || us == TIMESTAMP_INFINITY || us == TIMESTAMP_NEG_INFINITY {
        return us;
    }
    let unit = 10i64.pow(6 - fsp as u32);
    let r = us.rem_euclid(unit);
    let base = us - r;
    if r * 2 >= unit {
        base.checked_add(unit).filter(|&v| v != TIMESTAMP_INFINITY).unwrap_or(base)
    } else {
        base
    }
}

/// One piece of a compiled `date_format` pattern.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Fmt {
    Lit(String),
    Spec(u8),
}

/// Specifiers `date_format` understands.
pub(crate) const SPECIFIERS: &[u8] = b"abcDdefHhIijklMmprSsTUuvWwxYy%";

/// Compiles a `date_format` pattern. Unknown specifiers stand for the letter itself (MySQL).
pub(crate) fn compile_format(f: &str) -> Vec<Fmt> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut it = f.chars();
    while let Some(c) = it.next() {
        if c != '%' {
            lit.push(c);
            continue;
        }
        match it.next() {
            Some(s) if s.is_ascii() && SPECIFIERS.contains(&(s as u8)) && s != '%' => {
                if !lit.is_empty() {
                    out.push(Fmt::Lit(std::mem::take(&mut lit)));
                }
                out.push(Fmt::Spec(s as u8));
            }
            Some(s) => lit.push(s),
            None => lit.push('%'),
        }
    }
    if !lit.is_empty() {
        out.push(Fmt::Lit(lit));
    }
    out
}

/// Whether a specifier needs a real calendar date (weekday, day of year, week).
pub(crate) fn needs_calendar(spec: u8) -> bool {
    matches!(spec, b'a' | b'W' | b'w' | b'j' | b'U' | b'u' | b'v' | b'x' | b'M' | b'b')
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/// ISO 8601 week number and week-based year of a day number.
fn iso_week(days: i64) -> (i64, i64) {
    let wd = (days + 3).rem_euclid(7); // 0 = Monday
    let thursday = days - wd + 3;
    let (y, _, _) = crate::value::civil_from_days(thursday);
    let jan1 = days_from_civil(y, 1, 1);
    (y, (thursday - jan1) / 7 + 1)
}

/// Formats a civil date-time; `None` when a calendar specifier meets a zero date.
pub(crate) fn format(dt: &DateTime, fmt: &[Fmt], out: &mut String) -> Option<()> {
    let d = dt.date;
    // Calendar specifiers need a real date (months outside 1..12 would also index out of range).
    let days = if (1..=12).contains(&d.month) { d.to_days() } else { None };
    let secs = dt.micros / 1_000_000;
    let (h, mi, s, us) = (secs / 3600, (secs / 60) % 60, secs % 60, dt.micros % 1_000_000);
    let h12 = if h % 12 == 0 { 12 } else { h % 12 };
    for f in fmt {
        let spec = match f {
            Fmt::Lit(l) => {
                out.push_str(l);
                continue;
            }
            Fmt::Spec(c) => *c,
        };
        if needs_calendar(spec) && days.is_none() {
            return None;
        }
        let days = days.unwrap_or(0);
        let wd = (days + 4).rem_euclid(7) as usize; // 0 = Sunday
        let yday = days - days_from_civil(d.year as i64, 1, 1); // 0-based
        let _ = match spec {
            b'a' => out.write_str(&WEEKDAYS[wd][..3]),
            b'b' => out.write_str(&MONTHS[d.month as usize - 1][..3]),
            b'c' => write!(out, "{}", d.month),
            b'D' => {
                let suffix = match (d.day % 10, d.day % 100) {
                    (_, 11..=13) => "th",
                    (1, _) => "st",
                    (2, _) => "nd",
                    (3, _) => "rd",
                    _ => "th",
                };
                write!(out, "{}{suffix}", d.day)
            }
            b'd' => write!(out, "{:02}", d.day),
            b'e' => write!(out, "{}", d.day),
            b'f' => write!(out, "{us:06}"),
            b'H' => write!(out, "{h:02}"),
            b'h' | b'I' => write!(out, "{h12:02}"),
            b'i' => write!(out, "{mi:02}"),
            b'j' => write!(out, "{:03}", yday + 1),
            b'k' => write!(out, "{h}"),
            b'l' => write!(out, "{h12}"),
            b'M' => out.write_str(MONTHS[d.month as usize - 1]),
            b'm' => write!(out, "{:02}", d.month),
            b'p' => out.write_str(if h < 12 { "AM" } else { "PM" }),
            b'r' => write!(out, "{h12:02}:{mi:02}:{s:02} {}", if h < 12 { "AM" } else { "PM" }),
            b'S' | b's' => write!(out, "{s:02}"),
            b'T' => write!(out, "{h:02}:{mi:02}:{s:02}"),
            b'U' => write!(out, "{:02}", (yday + 7 - wd as i64) / 7),
            b'u' => {
                // Monday-first weeks; week 1 is the first with 4 or more days this year (mode 1).
                let jan1_wd = (days - yday + 3).rem_euclid(7); // 0 = Monday
                let first_week_days = 7 - jan1_wd;
                let offset = if first_week_days >= 4 { 1 } else { 0 };
                let w = (yday + jan1_wd) / 7 + offset;
                write!(out, "{w:02}")
            }
            b'v' => write!(out, "{:02}", iso_week(days).1),
            b'x' => write_year(out, iso_week(days).0),
            b'W' => out.write_str(WEEKDAYS[wd]),
            b'w' => write!(out, "{wd}"),
            b'Y' => write_year(out, d.year as i64),
            b'y' => write!(out, "{:02}", d.year.unsigned_abs() % 100),
            _ => out.write_char(spec as char),
        };
    }
    Some(())
}
