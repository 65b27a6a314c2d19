//! Exact numbers: cross-kind comparison without allocation, and decimal arithmetic.

use crate::value::Value;
use std::cmp::Ordering;

/// A numeric view of a value.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Num<'a> {
    /// Any integer kind (bool, int, uint, year, bit).
    I(i128),
    /// Exact decimal text (canonical or at least well-formed; never a special value).
    D(&'a str),
    /// Float or double, or a special decimal value (`NaN`, `Infinity`, `-Infinity`).
    F(f64),
}

/// The numeric view of `v`, or `None` if `v` is not a number.
#[inline]
pub(crate) fn num(v: &Value) -> Option<Num<'_>> {
    Some(match v {
        Value::Int(i) => Num::I(*i as i128),
        Value::UInt(u) => Num::I(*u as i128),
        Value::Bool(b) => Num::I(*b as i128),
        Value::Year(y) => Num::I(*y as i128),
        // Canonical digits end in a digit; PostgreSQL's `NaN`, `Infinity` and `-Infinity` are
        // the doubles of the same name, which order as PostgreSQL orders them.
        Value::Decimal(d) => match d.as_bytes().last() {
            Some(b'0'..=b'9') => Num::D(d),
            _ => crate::value::decimal_special(d).map_or(Num::D(d), Num::F),
        },
        Value::Double(x) => Num::F(*x),
        Value::Float(x) => Num::F(*x as f64),
        Value::Bit { bytes, .. } => Num::I(bit_value(bytes) as i128),
        _ => return None,
    })
}

/// The unsigned value of a big-endian bit string (the low 64 bits).
pub(crate) fn bit_value(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, &b| (acc << 8) | b as u64)
}

/// Splits well-formed decimal text into (negative, integer digits without leading zeros,
/// fraction digits without trailing zeros); zero is never negative.
fn dec_parts(s: &str) -> (bool, &str, &str) {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (i, f) = body.split_once('.').unwrap_or((body, ""));
    let i = i.trim_start_matches('0');
    let f = f.trim_end_matches('0');
    (neg && !(i.is_empty() && f.is_empty()), i, f)
}

/// Compares two decimal texts numerically, without allocating.
pub(crate) fn cmp_dec(a: &str, b: &str) -> Ordering {
    let (an, ai, af) = dec_parts(a);
    let (bn, bi, bf) = dec_parts(b);
    let mag = ai.len().cmp(&bi.len()).then_with(|| ai.cmp(bi)).then_with(|| af.cmp(bf));
    match (an, bn) {
        (false, false) => mag,
        (true, true) => mag.reverse(),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
    }
}

/// Compares decimal text with an integer exactly, in one pass over the text.
fn cmp_dec_int(d: &str, i: i128) -> Ordering {
    let (neg, body) = match d.as_bytes().first() {
        Some(b'-') => (true, &d[1..]),
        Some(b'+') => (false, &d[1..]),
        _ => (false, d),
    };
    let (int, frac) = match body.find('.') {
        Some(p) => (&body[..p], &body[p + 1..]),
        None => (body, ""),
    };
    let int = int.trim_start_matches('0');
    if !int.bytes().all(|b| b.is_ascii_digit()) {
        // Not well-formed; compare as text rather than misread it.
        return cmp_dec(d, &i.to_string());
    }
    if int.len() > 38 {
        // Beyond every i128.
        return if neg { Ordering::Less } else { Ordering::Greater };
    }
    let mag = int.bytes().fold(0i128, |a, b| a * 10 + (b - b'0') as i128);
    let frac_nonzero = frac.bytes().any(|b| b != b'0');
    let di = if neg { -mag } else { mag };
    match di.cmp(&i) {
        Ordering::Equal if frac_nonzero => {
            if neg {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        }
        o => o,
    }
}

/// Total order on doubles for SQL comparison: NaN equals NaN and sorts above every number.
fn cmp_f64(a: f64, b: f64) -> Ordering {
    match a.partial_cmp(&b) {
        Some(o) => o,
        None => a.is_nan().cmp(&b.is_nan()),
    }
}

/// Compares a double with an integer exactly.
fn cmp_f64_int(x: f64, i: i128) -> Ordering {
    if x.is_nan() {
        return Ordering::Greater;
    }
    // i128 covers ±1.7e38; doubles beyond that are beyond every i128.
    if x >= 1.7e38 {
        return Ordering::Greater;
    }
    if x <= -1.7e38 {
        return Ordering::Less;
    }
    let t = x.trunc();
    let ti = t as i128; // exact: |t| < 2^127 and t is integral
    ti.cmp(&i).then_with(|| {
        if x > t {
            Ordering::Greater
        } else if x < t {
            Ordering::Less
        } else {
            Ordering::Equal
        }
    })
}

/// Numeric comparison across every numeric kind: exact between integers and decimals, exact
/// between doubles and integers, via `f64` between doubles and decimals.
pub(crate) fn cmp_num(a: Num<'_>, b: Num<'_>) -> Ordering {
    match (a, b) {
        (Num::I(x), Num::I(y)) => x.cmp(&y),
        (Num::D(x), Num::D(y)) => cmp_dec(x, y),
        (Num::I(x), Num::D(y)) => cmp_dec_int(y, x).reverse(),
        (Num::D(x), Num::I(y)) => cmp_dec_int(x, y),
        (Num::F(x), Num::F(y)) => cmp_f64(x, y),
        (Num::F(x), Num::I(y)) => cmp_f64_int(x, y),
        (Num::I(x), Num::F(y)) => cmp_f64_int(y, x).reverse(),
        (Num::F(x), Num::D(y)) => cmp_f64_dec(x, y),
        (Num::D(x), Num::F(y)) => cmp_f64_dec(y, x).reverse(),
    }
}

/// Compares a double with decimal text: infinities and NaN against any decimal exactly (a
/// decimal of more digits than a double can hold is still finite), others via `f64`.
fn cmp_f64_dec(x: f64, d: &str) -> Ordering {
    if x.is_finite() {
        cmp_f64(x, dec_to_f64(d))
    } else {
        cmp_f64(x, 0.0)
    }
}

/// The nearest double of decimal text.
pub(crate) fn dec_to_f64(s: &str) -> f64 {
    s.parse().unwrap_or(f64::NAN)
}

impl Num<'_> {
    pub(crate) fn to_f64(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::D(d) => dec_to_f64(d),
            Num::F(x) => x,
        }
    }

    /// The exact decimal of an integer or decimal view (`None` for doubles).
    pub(crate) fn to_dec(self) -> Option<Dec> {
        match self {
            Num::I(i) => Some(Dec::from_i128(i)),
            Num::D(d) => Dec::parse(d),
            Num::F(_) => None,
        }
    }

    /// Whether the number is zero.
    pub(crate) fn is_zero(self) -> bool {
        match self {
            Num::I(i) => i == 0,
            Num::D(d) => d.bytes().all(|b| matches!(b, b'0' | b'.' | b'-' | b'+')),
            Num::F(x) => x == 0.0,
        }
    }
}

/// An exact decimal: `(-1)^neg * mag / 10^scale`, digits of `mag` least significant first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Dec {
    neg: bool,
    /// Base-10 digits, least significant first, no high zeros (zero is empty).
    mag: Vec<u8>,
    scale: u32,
}

fn trim(mag: &mut Vec<u8>) {
    while mag.last() == Some(&0) {
        mag.pop();
    }
}

fn cmp_mag(a: &[u8], b: &[u8]) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.iter().rev().cmp(b.iter().rev()))
}

fn add_mag(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len().max(b.len()) + 1);
    let mut carry = 0;
    for i in 0..a.len().max(b.len()) {
        let s = a.get(i).copied().unwrap_or(0) + b.get(i).copied().unwrap_or(0) + carry;
        out.push(s % 10);
        carry = s / 10;
    }
    if carry > 0 {
        out.push(carry);
    }
    out
}

/// `a - b` for `a >= b`.
fn sub_mag(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len());
    let mut borrow = 0i8;
    for (i, &x) in a.iter().enumerate() {
        let mut d = x as i8 - b.get(i).copied().unwrap_or(0) as i8 - borrow;
        borrow = 0;
        if d < 0 {
            d += 10;
            borrow = 1;
        }
        out.push(d as u8);
    }
    trim(&mut out);
    out
}

fn mul_mag(a: &[u8], b: &[u8]) -> Vec<u8> {
    if a.is_empty() || b.is_empty() {
        return Vec::new();
    }
    let mut acc = vec![0u32; a.len() + b.len()];
    for (i, &x) in a.iter().enumerate() {
        for (j, &y) in b.iter().enumerate() {
            acc[i + j] += x as u32 * y as u32;
        }
    }
    let mut out = Vec::with_capacity(acc.len());
    let mut carry = 0u32;
    for v in acc {
        let s = v + carry;
        out.push((s % 10) as u8);
        carry = s / 10;
    }
    while carry > 0 {
        out.push((carry % 10) as u8);
        carry /= 10;
    }
    trim(&mut out);
    out
}

/// Long division of magnitudes: (quotient, remainder). `b` must be non-zero.
fn divmod_mag(a: &[u8], b: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut q = vec![0u8; a.len()];
    let mut r: Vec<u8> = Vec::new();
    for i in (0..a.len()).rev() {
        r.insert(0, a[i]);
        trim(&mut r);
        let mut d = 0;
        while cmp_mag(&r, b) != Ordering::Less {
            r = sub_mag(&r, b);
            d += 1;
        }
        q[i] = d;
    }
    trim(&mut q);
    (q, r)
}

fn shift(mag: &[u8], k: u32) -> Vec<u8> {
    if mag.is_empty() {
        return Vec::new();
    }
    let mut out = vec![0u8; k as usize];
    out.extend_from_slice(mag);
    out
}

impl Dec {
    /// Parses well-formed decimal text (optional sign, digits, optional fraction).
    pub(crate) fn parse(s: &str) -> Option<Dec> {
        let s = s.trim();
        let (neg, body) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let (i, f) = body.split_once('.').unwrap_or((body, ""));
        if (i.is_empty() && f.is_empty()) || !i.bytes().chain(f.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut mag: Vec<u8> = f.bytes().rev().chain(i.bytes().rev()).map(|b| b - b'0').collect();
        trim(&mut mag);
        let neg = neg && !mag.is_empty();
        Some(Dec { neg, mag, scale: f.len() as u32 })
    }

    pub(crate) fn from_i128(i: i128) -> Dec {
        let mut mag = Vec::new();
        let mut m = i.unsigned_abs();
        while m > 0 {
            mag.push((m % 10) as u8);
            m /= 10;
        }
        Dec { neg: i < 0, mag, scale: 0 }
    }

    pub(crate) fn scale(&self) -> u32 {
        self.scale
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.mag.is_empty()
    }

    /// Number of digits before the point.
    pub(crate) fn int_digits(&self) -> u32 {
        (self.mag.len() as u32).saturating_sub(self.scale)
    }

    fn norm(mut self) -> Dec {
        trim(&mut self.mag);
        if self.mag.is_empty() {
            self.neg = false;
        }
        self
    }

    /// The same value at a larger scale.
    fn upscale(&self, scale: u32) -> Vec<u8> {
        shift(&self.mag, scale - self.scale)
    }

    pub(crate) fn neg(mut self) -> Dec {
        self.neg = !self.neg && !self.mag.is_empty();
        self
    }

    pub(crate) fn abs(mut self) -> Dec {
        self.neg = false;
        self
    }

    pub(crate) fn add(&self, o: &Dec) -> Dec {
        let scale = self.scale.max(o.scale);
        let (a, b) = (self.upscale(scale), o.upscale(scale));
        if self.neg == o.neg {
            return Dec { neg: self.neg, mag: add_mag(&a, &b), scale }.norm();
        }
        match cmp_mag(&a, &b) {
            Ordering::Equal => Dec { neg: false, mag: Vec::new(), scale },
            Ordering::Greater => Dec { neg: self.neg, mag: sub_mag(&a, &b), scale }.norm(),
            Ordering::Less => Dec { neg: o.neg, mag: sub_mag(&b, &a), scale }.norm(),
        }
    }

    pub(crate) fn sub(&self, o: &Dec) -> Dec {
        self.add(&o.clone().neg())
    }

    pub(crate) fn mul(&self, o: &Dec) -> Dec {
        Dec { neg: self.neg != o.neg, mag: mul_mag(&self.mag, &o.mag), scale: self.scale + o.scale }.norm()
    }

    /// `self / o` rounded half away from zero to `scale` digits; `None` when `o` is zero.
    pub(crate) fn div(&self, o: &Dec, scale: u32) -> Option<Dec> {
        if o.is_zero() {
            return None;
        }
        // self/o = (a / 10^sa) / (b / 10^sb); scaled by 10^(scale+1) for the rounding digit.
        let num_shift = (scale + 1 + o.scale) as i64 - self.scale as i64;
        let (a, b) = if num_shift >= 0 {
            (shift(&self.mag, num_shift as u32), o.mag.clone())
        } else {
            (self.mag.clone(), shift(&o.mag, (-num_shift) as u32))
        };
        let (q, _) = divmod_mag(&a, &b);
        let q = Dec { neg: self.neg != o.neg, mag: q, scale: scale + 1 }.norm();
        Some(q.round(scale as i64))
    }

    /// `self % o` with the sign of `self` (truncated division); `None` when `o` is zero.
    pub(crate) fn rem(&self, o: &Dec) -> Option<Dec> {
        if o.is_zero() {
            return None;
        }
        let scale = self.scale.max(o.scale);
        let (_, r) = divmod_mag(&self.upscale(scale), &o.upscale(scale));
        Some(Dec { neg: self.neg, mag: r, scale }.norm())
    }

    /// Rounds half away from zero to `d` digits after the point (`d` may be negative: tens,
    /// hundreds...). The result has scale `max(d, 0)`.
    pub(crate) fn round(&self, d: i64) -> Dec {
        self.round_with(d, |digit, _| digit >= 5)
    }

    /// Rounds toward negative infinity to an integer.
    pub(crate) fn floor(&self) -> Dec {
        let neg = self.neg;
        self.round_with(0, |_, nonzero| neg && nonzero)
    }

    /// Rounds toward positive infinity to an integer.
    pub(crate) fn ceil(&self) -> Dec {
        let neg = self.neg;
        self.round_with(0, |_, nonzero| !neg && nonzero)
    }

    /// Cuts to `d` digits; `up(first dropped digit, any dropped digit non-zero)` decides whether
    /// the magnitude goes up by one unit.
    fn round_with(&self, d: i64, up: impl Fn(u8, bool) -> bool) -> Dec {
        let drop = self.scale as i64 - d;
        if drop <= 0 {
            let scale = d.max(0) as u32;
            return Dec { neg: self.neg, mag: self.upscale(scale.max(self.scale)), scale: scale.max(self.scale) }
                .norm();
        }
        let drop = drop as usize;
        let first = if drop <= self.mag.len() { self.mag[drop - 1] } else { 0 };
        let nonzero = self.mag.iter().take(drop).any(|&x| x != 0);
        let mut kept: Vec<u8> = self.mag.iter().skip(drop).copied().collect();
        if up(first, nonzero) {
            kept = add_mag(&kept, &[1]);
        }
        // Back to scale max(d, 0): for negative d, re-append the zeros of the dropped places.
        let (mag, scale) = if d < 0 { (shift(&kept, (-d) as u32), 0) } else { (kept, d as u32) };
        Dec { neg: self.neg, mag, scale }.norm()
    }

    /// The value at exactly `scale` digits (rounded half away from zero or zero-padded).
    pub(crate) fn rescale(&self, scale: u32) -> Dec {
        if scale >= self.scale {
            Dec { neg: self.neg, mag: self.upscale(scale), scale }
        } else {
            let r = self.round(scale as i64);
            Dec { mag: r.upscale(scale), scale, ..r }
        }
    }

    /// The value as an integer if it is integral and fits `i128`.
    pub(crate) fn to_i128(&self) -> Option<i128> {
        if self.mag.iter().take(self.scale as usize).any(|&d| d != 0) {
            return None;
        }
        let mut v: i128 = 0;
        for &d in self.mag.iter().skip(self.scale as usize).rev() {
            v = v.checked_mul(10)?.checked_add(d as i128)?;
        }
        Some(if self.neg { -v } else { v })
    }

    pub(crate) fn to_f64(&self) -> f64 {
        dec_to_f64(&self.to_string())
    }
}

impl std::fmt::Display for Dec {
    /// Canonical text: optional `-`, integer digits (at least one), `.` and exactly `scale`
    /// fraction digits when the scale is positive.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::with_capacity(self.mag.len() + 3);
        if self.neg && !self.mag.is_empty() {
            s.push('-');
        }
        let scale = self.scale as usize;
        if self.mag.len() <= scale {
            s.push('0');
        } else {
            s.extend(self.mag[scale..].iter().rev().map(|&d| (b'0' + d) as char));
        }
        if scale > 0 {
            s.push('.');
            for i in (0..scale).rev() {
                s.push((b'0' + self.mag.get(i).copied().unwrap_or(0)) as char);
            }
        }
        f.write_str(&s)
    }
}

/// Parses numeric text as a SQL number: an integer (`Int`, else `UInt`, else `Decimal`), a
/// decimal with a fraction (`Decimal`), or a float with an exponent (`Double`). Surrounding
/// whitespace and a sign are allowed.
pub(crate) fn parse_number(s: &str) -> Option<Value> {
    let t = s.trim();
    let body = t.strip_prefix(['-', '+']).unwrap_or(t);
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-')) {
        return None;
    }
    if body.bytes().any(|b| b == b'e' || b == b'E') {
        let x: f64 = t.parse().ok()?;
        return x.is_finite().then_some(Value::Double(x));
    }
    if !body.contains('.') {
        if let Ok(i) = t.parse::<i64>() {
            return Some(Value::Int(i));
        }
        if let Ok(u) = t.strip_prefix('+').unwrap_or(t).parse::<u64>() {
            return Some(Value::UInt(u));
        }
    }
    let d = Dec::parse(t)?;
    Some(Value::Decimal(d.to_string()))
}

/// The value of an integer result: `Int` if it fits (and `unsigned` is false), `UInt` if
/// `unsigned` and it fits, else an exact `Decimal`.
pub(crate) fn int_value(v: i128, unsigned: bool) -> Value {
    if unsigned {
        if let Ok(u) = u64::try_from(v) {
            return Value::UInt(u);
        }
    } else if let Ok(i) = i64::try_from(v) {
        return Value::Int(i);
    }
    Value::Decimal(v.to_string())
}
