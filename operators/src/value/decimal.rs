//! Decimals as canonical text (exact at any length, no big-number crate): canonical form,
//! numeric comparison, PostgreSQL's `NaN` and infinities.

use super::*;

/// The special values of PostgreSQL `numeric`, as `f64`: `NaN`, `Infinity`, `-Infinity`
/// (exactly these spellings); `None` for anything else.
pub fn decimal_special(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// Canonicalizes decimal text: strips `+`, leading zeros of the integer part, keeps the scale.
/// PostgreSQL's special values are accepted in any case (`nan`, `inf`, `+Infinity`, `-inf`)
/// and spelled `NaN`, `Infinity`, `-Infinity`. Returns `None` if `s` is not a decimal number.
pub fn canonical_decimal(s: &str) -> Option<String> {
    let s = s.trim();
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if body.eq_ignore_ascii_case("infinity") || body.eq_ignore_ascii_case("inf") {
        return Some(if neg { "-Infinity" } else { "Infinity" }.into());
    }
    if body.eq_ignore_ascii_case("nan") {
        return (body.len() == s.len()).then(|| "NaN".into());
    }
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

/// The rank of decimal text in PostgreSQL's order: `-Infinity` < numbers < `Infinity` < `NaN`.
fn decimal_rank(s: &str) -> u8 {
    match s {
        "-Infinity" => 0,
        "Infinity" => 2,
        "NaN" => 3,
        _ => 1,
    }
}

/// Compares two decimal texts numerically (both must be canonical or at least well-formed),
/// with PostgreSQL's order of the special values: `-Infinity` < every number < `Infinity` <
/// `NaN`, and `NaN` equals `NaN`.
pub fn compare_decimal(a: &str, b: &str) -> Ordering {
    match (decimal_rank(a), decimal_rank(b)) {
        (1, 1) => {}
        (x, y) => return x.cmp(&y),
    }
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
