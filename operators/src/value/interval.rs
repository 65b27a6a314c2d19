//! PostgreSQL intervals: parsing every input form PostgreSQL takes (its own verbose and
//! `IntervalStyle` forms, ISO 8601 with designators and the alternative format, SQL standard)
//! into three parts that are never normalized, and writing PostgreSQL's default output.

use super::*;

impl Interval {
    /// PostgreSQL's `infinity` interval (every part at its maximum).
    pub const INFINITY: Interval = Interval { months: i32::MAX, days: i32::MAX, micros: i64::MAX };
    /// PostgreSQL's `-infinity` interval (every part at its minimum).
    pub const NEG_INFINITY: Interval = Interval { months: i32::MIN, days: i32::MIN, micros: i64::MIN };

    /// An interval of the three parts.
    pub const fn new(months: i32, days: i32, micros: i64) -> Self {
        Interval { months, days, micros }
    }

    /// PostgreSQL's comparison key: a month counts 30 days and a day 24 hours, so `1 mon`
    /// equals `30 days` in comparisons (but they stay different values).
    pub fn cmp_key(&self) -> i128 {
        (self.months as i128 * 30 + self.days as i128) * DAY_MICROS as i128 + self.micros as i128
    }

    /// Compares as PostgreSQL does (by [`Interval::cmp_key`]).
    pub fn pg_cmp(&self, other: &Interval) -> Ordering {
        self.cmp_key().cmp(&other.cmp_key())
    }

    /// Years, months, days, hours, minutes, seconds and microseconds, each with the sign of
    /// its part (PostgreSQL's split for output).
    fn fields(&self) -> [i64; 7] {
        let m = self.micros;
        [
            (self.months / 12) as i64,
            (self.months % 12) as i64,
            self.days as i64,
            m / HOUR_MICROS,
            (m / 60_000_000) % 60,
            (m / 1_000_000) % 60,
            m % 1_000_000,
        ]
    }

    /// Writes the interval as an ISO 8601 duration the way PostgreSQL's `iso_8601` style does:
    /// `P1Y2M3DT4H5M6.000007S`, `P-1M`, `PT-1.5S`, `PT0S`; the infinities as `infinity` and
    /// `-infinity`.
    pub fn write_iso(&self, out: &mut impl fmt::Write) -> fmt::Result {
        if let Some(s) = self.infinity_text() {
            return out.write_str(s);
        }
        let [y, mo, d, h, mi, s, us] = self.fields();
        if [y, mo, d, h, mi, s, us].iter().all(|&x| x == 0) {
            return out.write_str("PT0S");
        }
        out.write_char('P')?;
        for (v, u) in [(y, 'Y'), (mo, 'M'), (d, 'D')] {
            if v != 0 {
                write!(out, "{v}{u}")?;
            }
        }
        if h != 0 || mi != 0 || s != 0 || us != 0 {
            out.write_char('T')?;
        }
        for (v, u) in [(h, 'H'), (mi, 'M')] {
            if v != 0 {
                write!(out, "{v}{u}")?;
            }
        }
        if s != 0 || us != 0 {
            if s < 0 || us < 0 {
                out.write_char('-')?;
            }
            write!(out, "{}", s.unsigned_abs())?;
            write_fraction(out, us.unsigned_abs())?;
            out.write_char('S')?;
        }
        Ok(())
    }

    fn infinity_text(&self) -> Option<&'static str> {
        match *self {
            Interval::INFINITY => Some("infinity"),
            Interval::NEG_INFINITY => Some("-infinity"),
            _ => None,
        }
    }

    /// Parses an interval: PostgreSQL's output (`1 year 2 mons -3 days +04:05:06.5`, with
    /// optional `@` and `ago`, units spelled as PostgreSQL accepts them, fractions only for
    /// hours and smaller units, a bare number being seconds), an ISO 8601 duration
    /// (`P1Y2M3W4DT5H6M7.5S`, signs allowed per part, a fraction only for seconds), or
    /// `infinity`/`-infinity`.
    pub fn parse(s: &str) -> Result<Interval, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("infinity") || t.eq_ignore_ascii_case("+infinity") {
            return Ok(Interval::INFINITY);
        }
        if t.eq_ignore_ascii_case("-infinity") {
            return Ok(Interval::NEG_INFINITY);
        }
        let mut acc = IntervalAcc::default();
        match t.strip_prefix(['P', 'p']) {
            Some(iso) => acc.iso(iso)?,
            None => acc.words(t)?,
        }
        acc.finish()
    }
}

/// Writes `.ffffff` without trailing zeros (nothing for 0).
fn write_fraction(out: &mut impl fmt::Write, us: u64) -> fmt::Result {
    if us == 0 {
        return Ok(());
    }
    let mut digits = format!("{us:06}");
    while digits.ends_with('0') {
        digits.pop();
    }
    write!(out, ".{digits}")
}

impl fmt::Display for Interval {
    /// PostgreSQL's default output (`IntervalStyle` `postgres`): `1 year 2 mons 3 days
    /// 04:05:06.000007`, `-1 days +02:03:00`, `00:00:00`; `infinity`, `-infinity`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = self.infinity_text() {
            return f.write_str(s);
        }
        let [y, mo, d, h, mi, s, us] = self.fields();
        let mut first = true;
        let mut before = false;
        for (v, unit) in [(y, "year"), (mo, "mon"), (d, "day")] {
            if v == 0 {
                continue;
            }
            let sep = if first { "" } else { " " };
            let plus = if before && v > 0 { "+" } else { "" };
            write!(f, "{sep}{plus}{v} {unit}{}", if v == 1 { "" } else { "s" })?;
            before = v < 0;
            first = false;
        }
        if first || h != 0 || mi != 0 || s != 0 || us != 0 {
            let minus = h < 0 || mi < 0 || s < 0 || us < 0;
            let sign = if minus {
                "-"
            } else if before {
                "+"
            } else {
                ""
            };
            let sep = if first { "" } else { " " };
            write!(f, "{sep}{sign}{:02}:{:02}:{:02}", h.unsigned_abs(), mi.unsigned_abs(), s.unsigned_abs())?;
            write_fraction(f, us.unsigned_abs())?;
        }
        Ok(())
    }
}

/// Sums of the three interval parts while parsing, wide enough not to overflow.
#[derive(Default)]
struct IntervalAcc {
    months: i128,
    days: i128,
    micros: i128,
}

/// A signed decimal number of interval text: integer part and up to 9 fraction digits.
struct IntervalNum {
    neg: bool,
    int: i128,
    /// Fraction digits as an integer, and their count.
    frac: (i128, u32),
}

impl IntervalNum {
    /// Reads `[+-]digits[.digits]` at the start of `s`; returns the number and the rest.
    fn read(s: &str) -> Option<(IntervalNum, &str)> {
        let b = s.as_bytes();
        let mut i = 0;
        let neg = match b.first() {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        let mut int: i128 = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            int = int.checked_mul(10)?.checked_add((b[i] - b'0') as i128)?;
            i += 1;
        }
        let mut digits = i - start;
        let mut frac = (0i128, 0u32);
        if b.get(i) == Some(&b'.') {
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                if frac.1 >= 9 {
                    return None;
                }
                frac = (frac.0 * 10 + (b[i] - b'0') as i128, frac.1 + 1);
                i += 1;
                digits += 1;
            }
        }
        (digits > 0).then_some((IntervalNum { neg, int, frac }, &s[i..]))
    }

    /// `self * unit` microseconds, rounded half away from zero.
    fn times(&self, unit: i128) -> i128 {
        let scale = 10i128.pow(self.frac.1);
        let frac = (self.frac.0 * unit * 2 + scale) / (2 * scale);
        let v = self.int * unit + frac;
        if self.neg {
            -v
        } else {
            v
        }
    }

    /// The integer value; an error if there is a fraction.
    fn whole(&self, unit: &str) -> Result<i128, String> {
        if self.frac.0 != 0 {
            return Err(format!("fractional {unit} are not supported"));
        }
        Ok(if self.neg { -self.int } else { self.int })
    }
}

impl IntervalAcc {
    fn add(&mut self, n: &IntervalNum, unit: &str) -> Result<(), String> {
        let u = unit.to_ascii_lowercase();
        let (months, days, micros): (i128, i128, i128) = match u.as_str() {
            "millennium" | "millennia" | "millenniums" | "mil" | "mils" => (12_000, 0, 0),
            "century" | "centuries" | "cent" | "c" => (1200, 0, 0),
            "decade" | "decades" | "dec" | "decs" => (120, 0, 0),
            "year" | "years" | "y" | "yr" | "yrs" => (12, 0, 0),
            "month" | "months" | "mon" | "mons" => (1, 0, 0),
            "week" | "weeks" | "w" => (0, 7, 0),
            "day" | "days" | "d" => (0, 1, 0),
            "hour" | "hours" | "h" | "hr" | "hrs" => (0, 0, HOUR_MICROS as i128),
            "minute" | "minutes" | "min" | "mins" | "m" => (0, 0, 60_000_000),
            "second" | "seconds" | "sec" | "secs" | "s" => (0, 0, 1_000_000),
            "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" => (0, 0, 1000),
            "microsecond" | "microseconds" | "us" | "usec" | "usecs" => (0, 0, 1),
            _ => return Err(format!("unknown interval unit '{unit}'")),
        };
        if months != 0 {
            self.months += n.whole(&u)? * months;
        } else if days != 0 {
            self.days += n.whole(&u)? * days;
        } else {
            self.micros += n.times(micros);
        }
        Ok(())
    }

    /// `[+-]H:MM[:SS[.f]]`, any number of hours.
    fn clock(&mut self, tok: &str) -> Result<(), String> {
        let bad = || format!("invalid time '{tok}' in interval");
        let (neg, body) = match tok.as_bytes().first() {
            Some(b'-') => (true, &tok[1..]),
            Some(b'+') => (false, &tok[1..]),
            _ => (false, tok),
        };
        let mut parts = body.split(':');
        let h: i128 = parts.next().filter(|p| !p.is_empty()).ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let m: i128 = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let s = match parts.next() {
            Some(p) => match IntervalNum::read(p) {
                Some((n, "")) if !n.neg && !p.starts_with('+') => n.times(1_000_000),
                _ => return Err(bad()),
            },
            None => 0,
        };
        if parts.next().is_some() || !(0..60).contains(&m) || s >= 60_000_000 {
            return Err(bad());
        }
        let v = h * HOUR_MICROS as i128 + m * 60_000_000 + s;
        self.micros += if neg { -v } else { v };
        Ok(())
    }

    fn words(&mut self, t: &str) -> Result<(), String> {
        let mut toks = t.split_whitespace().peekable();
        if toks.peek() == Some(&"@") {
            toks.next();
        }
        if toks.peek().is_none() {
            return Err("empty interval".into());
        }
        let mut ago = false;
        while let Some(tok) = toks.next() {
            if tok.eq_ignore_ascii_case("ago") {
                if toks.peek().is_some() {
                    return Err("'ago' must come last in an interval".into());
                }
                ago = true;
            } else if tok.contains(':') {
                self.clock(tok)?;
            } else {
                let (n, rest) = IntervalNum::read(tok).ok_or_else(|| format!("unexpected '{tok}' in interval"))?;
                let unit = if !rest.is_empty() {
                    rest
                } else {
                    match toks.peek() {
                        Some(next) if next.starts_with(|c: char| c.is_ascii_alphabetic()) => {
                            if next.eq_ignore_ascii_case("ago") {
                                "second"
                            } else {
                                toks.next().expect("peeked")
                            }
                        }
                        Some(next) if next.contains(':') => "day",
                        None => "second",
                        Some(next) => return Err(format!("expected a unit after '{tok}', found '{next}'")),
                    }
                };
                self.add(&n, unit)?;
            }
        }
        if ago {
            self.months = -self.months;
            self.days = -self.days;
            self.micros = -self.micros;
        }
        Ok(())
    }

    fn iso(&mut self, s: &str) -> Result<(), String> {
        if s.is_empty() {
            return Err("empty ISO 8601 duration".into());
        }
        let mut rest = s;
        let mut time = false;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix(['T', 't']) {
                if time || r.is_empty() {
                    return Err(format!("misplaced 'T' in duration 'P{s}'"));
                }
                time = true;
                rest = r;
                continue;
            }
            let (n, r) = IntervalNum::read(rest).ok_or_else(|| format!("expected a number in duration 'P{s}'"))?;
            let mut chars = r.chars();
            let d = chars.next().ok_or_else(|| format!("missing unit at the end of duration 'P{s}'"))?;
            let unit = match (time, d.to_ascii_uppercase()) {
                (false, 'Y') => "years",
                (false, 'M') => "months",
                (false, 'W') => "weeks",
                (false, 'D') => "days",
                (true, 'H') => "hours",
                (true, 'M') => "minutes",
                (true, 'S') => "seconds",
                _ => return Err(format!("unexpected '{d}' in duration 'P{s}'")),
            };
            if n.frac.0 != 0 && unit != "seconds" {
                return Err(format!("fractional {unit} are not supported"));
            }
            self.add(&n, unit)?;
            rest = chars.as_str();
        }
        Ok(())
    }

    fn finish(self) -> Result<Interval, String> {
        let out = || "interval out of range".to_string();
        Ok(Interval {
            months: i32::try_from(self.months).map_err(|_| out())?,
            days: i32::try_from(self.days).map_err(|_| out())?,
            micros: i64::try_from(self.micros).map_err(|_| out())?,
        })
    }
}
