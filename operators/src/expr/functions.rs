//! The function library: the registry (names, arities) and runtime evaluation, including `CAST`.

use super::ast::CastType;
use super::eval::{self, Conv, FmtArg, Node};
use super::num::{self, int_value, parse_number, Dec, Num};
use super::temporal;
use super::{EvalContext, EvalError};
use crate::value::{Date, DateTime, Value};
use std::borrow::Cow;

/// A library function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Func {
    Now,
    Concat,
    ConcatWs,
    Upper,
    Lower,
    Trim,
    Length,
    CharLength,
    Substring,
    Replace,
    Coalesce,
    IfNull,
    NullIf,
    If,
    DateFormat,
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Abs,
    Round,
    Floor,
    Ceil,
    Mod,
    OpType,
    EventTime,
    SourceDatasource,
    SourceDatabase,
    SourceSchema,
    SourceTable,
    SourcePosition,
}

/// A registry entry.
pub(crate) struct FuncSpec {
    pub(crate) name: &'static str,
    pub(crate) func: Func,
    pub(crate) min: usize,
    /// `usize::MAX`: variadic.
    pub(crate) max: usize,
    pub(crate) usage: &'static str,
}

const V: usize = usize::MAX;

/// Every function, by name (aliases included). `cast` is syntax, not listed here.
pub(crate) const FUNCS: &[FuncSpec] = &[
    FuncSpec { name: "abs", func: Func::Abs, min: 1, max: 1, usage: "abs(x)" },
    FuncSpec { name: "ceil", func: Func::Ceil, min: 1, max: 1, usage: "ceil(x)" },
    FuncSpec { name: "ceiling", func: Func::Ceil, min: 1, max: 1, usage: "ceiling(x)" },
    FuncSpec { name: "char_length", func: Func::CharLength, min: 1, max: 1, usage: "char_length(s)" },
    FuncSpec { name: "coalesce", func: Func::Coalesce, min: 1, max: V, usage: "coalesce(a, b, ...)" },
    FuncSpec { name: "concat", func: Func::Concat, min: 1, max: V, usage: "concat(a, b, ...)" },
    FuncSpec { name: "concat_ws", func: Func::ConcatWs, min: 2, max: V, usage: "concat_ws(sep, a, b, ...)" },
    FuncSpec { name: "date_format", func: Func::DateFormat, min: 2, max: 2, usage: "date_format(t, format)" },
    FuncSpec { name: "day", func: Func::Day, min: 1, max: 1, usage: "day(t)" },
    FuncSpec { name: "event_time", func: Func::EventTime, min: 0, max: 0, usage: "event_time()" },
    FuncSpec { name: "floor", func: Func::Floor, min: 1, max: 1, usage: "floor(x)" },
    FuncSpec { name: "hour", func: Func::Hour, min: 1, max: 1, usage: "hour(t)" },
    FuncSpec { name: "if", func: Func::If, min: 3, max: 3, usage: "if(cond, then, else)" },
    FuncSpec { name: "ifnull", func: Func::IfNull, min: 2, max: 2, usage: "ifnull(a, b)" },
    FuncSpec { name: "length", func: Func::Length, min: 1, max: 1, usage: "length(s)" },
    FuncSpec { name: "lower", func: Func::Lower, min: 1, max: 1, usage: "lower(s)" },
    FuncSpec { name: "minute", func: Func::Minute, min: 1, max: 1, usage: "minute(t)" },
    FuncSpec { name: "mod", func: Func::Mod, min: 2, max: 2, usage: "mod(a, b)" },
    FuncSpec { name: "month", func: Func::Month, min: 1, max: 1, usage: "month(t)" },
    FuncSpec { name: "now", func: Func::Now, min: 0, max: 0, usage: "now()" },
    FuncSpec { name: "nullif", func: Func::NullIf, min: 2, max: 2, usage: "nullif(a, b)" },
    FuncSpec { name: "op_type", func: Func::OpType, min: 0, max: 0, usage: "op_type()" },
    FuncSpec { name: "replace", func: Func::Replace, min: 3, max: 3, usage: "replace(s, from, to)" },
    FuncSpec { name: "round", func: Func::Round, min: 1, max: 2, usage: "round(x[, digits])" },
    FuncSpec { name: "second", func: Func::Second, min: 1, max: 1, usage: "second(t)" },
    FuncSpec { name: "source_database", func: Func::SourceDatabase, min: 0, max: 0, usage: "source_database()" },
    FuncSpec { name: "source_datasource", func: Func::SourceDatasource, min: 0, max: 0, usage: "source_datasource()" },
    FuncSpec { name: "source_position", func: Func::SourcePosition, min: 0, max: 0, usage: "source_position()" },
    FuncSpec { name: "source_schema", func: Func::SourceSchema, min: 0, max: 0, usage: "source_schema()" },
    FuncSpec { name: "source_table", func: Func::SourceTable, min: 0, max: 0, usage: "source_table()" },
    FuncSpec { name: "substr", func: Func::Substring, min: 2, max: 3, usage: "substr(s, pos[, len])" },
    FuncSpec { name: "substring", func: Func::Substring, min: 2, max: 3, usage: "substring(s, pos[, len])" },
    FuncSpec { name: "trim", func: Func::Trim, min: 1, max: 1, usage: "trim(s)" },
    FuncSpec { name: "upper", func: Func::Upper, min: 1, max: 1, usage: "upper(s)" },
    FuncSpec { name: "year", func: Func::Year, min: 1, max: 1, usage: "year(t)" },
];

/// Looks a function up by name (case-insensitive).
pub(crate) fn lookup(name: &str) -> Option<&'static FuncSpec> {
    FUNCS.iter().find(|f| f.name.eq_ignore_ascii_case(name))
}

/// The names of every function, for error messages (includes `cast`).
pub(crate) fn known_names() -> String {
    let mut names: Vec<&str> = FUNCS.iter().map(|f| f.name).chain(["cast"]).collect();
    names.sort_unstable();
    names.join(", ")
}

impl Func {
    /// The canonical name, for messages.
    pub(crate) fn name(self) -> &'static str {
        FUNCS.iter().find(|f| f.func == self).map_or("?", |f| f.name)
    }

    /// False for functions that read the evaluation context (never folded at compile time).
    pub(crate) fn is_pure(self) -> bool {
        !matches!(
            self,
            Func::Now
                | Func::OpType
                | Func::EventTime
                | Func::SourceDatasource
                | Func::SourceDatabase
                | Func::SourceSchema
                | Func::SourceTable
                | Func::SourcePosition
        )
    }
}

/// A value for an error message: text quoted and cut to 64 characters, others as displayed.
pub(crate) fn show(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Text(s) | Value::Enum(s) | Value::Set(s) | Value::Json(s) => {
            let mut out = String::new();
            let _ = super::ast::write_quoted(&mut out, &super::lexer::truncate(s, 64), '\'');
            out
        }
        Value::Bytes(b) => {
            let mut out = String::from("x'");
            for byte in b.iter().take(32) {
                out.push_str(&format!("{byte:02x}"));
            }
            out.push_str(if b.len() > 32 { "…'" } else { "'" });
            out
        }
        other => other.to_string(),
    }
}

/// The text of a value as string functions see it: character kinds as they are, bytes as
/// (lossy) UTF-8, everything else as displayed.
pub(crate) fn text(v: &Value) -> Cow<'_, str> {
    match v {
        Value::Text(s) | Value::Enum(s) | Value::Set(s) | Value::Json(s) | Value::Decimal(s) => Cow::Borrowed(s),
        Value::Bytes(b) => String::from_utf8_lossy(b),
        other => Cow::Owned(other.to_string()),
    }
}

fn err(f: Func, args: &[&Value], msg: impl std::fmt::Display) -> EvalError {
    let shown: Vec<String> = args.iter().map(|v| show(v)).collect();
    EvalError::new(format!("{}({}): {msg}", f.name(), shown.join(", ")))
}

/// An integer argument (position, length, digits): numbers are rounded; NULL is `None`.
fn int_arg(f: Func, v: &Value) -> Result<Option<i64>, EvalError> {
    Ok(match num::num(v) {
        _ if v.is_null() => None,
        Some(Num::I(i)) => Some(i.clamp(i64::MIN as i128, i64::MAX as i128) as i64),
        Some(Num::D(d)) => {
            let r = Dec::parse(d).map(|d| d.round(0)).and_then(|d| d.to_i128());
            Some(
                r.unwrap_or(if d.starts_with('-') { i64::MIN as i128 } else { i64::MAX as i128 })
                    .clamp(i64::MIN as i128, i64::MAX as i128) as i64,
            )
        }
        Some(Num::F(x)) if x.is_nan() => return Err(err(f, &[v], "NaN is not an integer")),
        Some(Num::F(x)) => Some(x.round() as i64),
        None => match parse_number(&text(v)) {
            Some(n) => return int_arg(f, &n),
            None => return Err(err(f, &[v], format!("{} is not a number", show(v)))),
        },
    })
}

/// MySQL `SUBSTRING` on a sequence of `n` units: the unit range, or `None` for empty.
fn substring_range(n: usize, pos: i64, len: Option<i64>) -> Option<(usize, usize)> {
    let n = n as i128;
    let start = match pos {
        0 => return None,
        p if p > 0 => p as i128 - 1,
        p => n + p as i128,
    };
    if start < 0 || start >= n {
        return None;
    }
    let end = match len {
        None => n,
        Some(l) if l <= 0 => return None,
        Some(l) => (start + l as i128).min(n),
    };
    Some((start as usize, end as usize))
}

/// `substring(s, pos[, len])` on characters (MySQL semantics).
pub(crate) fn substring_str(s: &str, pos: i64, len: Option<i64>) -> &str {
    let n = s.chars().count();
    match substring_range(n, pos, len) {
        None => "",
        Some((a, b)) => {
            let mut idx = s.char_indices().map(|(i, _)| i).chain([s.len()]);
            let start = idx.nth(a).unwrap_or(s.len());
            let end = if b == a { start } else { idx.nth(b - a - 1).unwrap_or(s.len()) };
            &s[start..end]
        }
    }
}

fn substring_bytes(s: &[u8], pos: i64, len: Option<i64>) -> &[u8] {
    match substring_range(s.len(), pos, len) {
        None => &[],
        Some((a, b)) => &s[a..b],
    }
}

fn replace_bytes(s: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    if from.is_empty() {
        return s.to_vec();
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// Applies a string function to text, keeping `Bytes` as bytes (`bytes_fn`) and turning other
/// kinds into text.
fn map_text(v: &Value, text_fn: impl Fn(&str) -> String, bytes_fn: impl Fn(&[u8]) -> Vec<u8>) -> Value {
    match v {
        Value::Bytes(b) => Value::Bytes(bytes_fn(b)),
        other => Value::Text(text_fn(&text(other))),
    }
}

/// Evaluates a call of `f` on the argument nodes.
pub(crate) fn call<'a>(
    f: Func,
    args: &'a [Node],
    row: &'a [Value],
    ctx: &EvalContext<'_>,
) -> Result<Cow<'a, Value>, EvalError> {
    let owned = |v: Value| Ok(Cow::Owned(v));
    match f {
        Func::Now => return owned(Value::Timestamp(ctx.now_micros)),
        Func::EventTime => return owned(Value::Timestamp(ctx.commit_micros)),
        Func::OpType => return owned(Value::Text(ctx.op.as_str().into())),
        Func::SourceDatasource => return owned(Value::Text(ctx.datasource.into())),
        Func::SourceDatabase => return owned(Value::Text(ctx.database.into())),
        Func::SourceSchema => return owned(ctx.schema.map_or(Value::Null, |s| Value::Text(s.into()))),
        Func::SourceTable => return owned(Value::Text(ctx.table.into())),
        Func::SourcePosition => return owned(Value::Text(ctx.position.to_string())),
        Func::Coalesce | Func::IfNull => {
            for a in args {
                let v = a.eval(row, ctx)?;
                if !v.is_null() {
                    return Ok(v);
                }
            }
            return owned(Value::Null);
        }
        Func::If => {
            let c = args[0].truth(row, ctx)?;
            return args[if c == Some(true) { 1 } else { 2 }].eval(row, ctx);
        }
        Func::NullIf => {
            let a = args[0].eval(row, ctx)?;
            let b = args[1].eval(row, ctx)?;
            return if eval::compare(&a, &b)? == Some(std::cmp::Ordering::Equal) { owned(Value::Null) } else { Ok(a) };
        }
        Func::Concat => {
            let mut out = String::new();
            for a in args {
                let v = a.eval(row, ctx)?;
                if v.is_null() {
                    return owned(Value::Null);
                }
                out.push_str(&text(&v));
            }
            return owned(Value::Text(out));
        }
        Func::ConcatWs => {
            let sep = args[0].eval(row, ctx)?;
            if sep.is_null() {
                return owned(Value::Null);
            }
            let sep = text(&sep);
            let mut out = String::new();
            let mut first = true;
            for a in &args[1..] {
                let v = a.eval(row, ctx)?;
                if v.is_null() {
                    continue;
                }
                if !first {
                    out.push_str(&sep);
                }
                first = false;
                out.push_str(&text(&v));
            }
            return owned(Value::Text(out));
        }
        _ => {}
    }
    // The remaining functions are NULL when any argument is NULL.
    let mut vals: Vec<Cow<'a, Value>> = Vec::with_capacity(args.len());
    for a in args {
        let v = a.eval(row, ctx)?;
        if v.is_null() {
            return owned(Value::Null);
        }
        vals.push(v);
    }
    let x = &*vals[0];
    let v = match f {
        Func::Upper => match x {
            Value::Bytes(_) => return Ok(vals.swap_remove(0)),
            other => Value::Text(text(other).to_uppercase()),
        },
        Func::Lower => match x {
            Value::Bytes(_) => return Ok(vals.swap_remove(0)),
            other => Value::Text(text(other).to_lowercase()),
        },
        Func::Trim => map_text(
            x,
            |s| s.trim_matches(' ').to_string(),
            |b| {
                let start = b.iter().position(|&c| c != b' ').unwrap_or(b.len());
                let end = b.iter().rposition(|&c| c != b' ').map_or(start, |e| e + 1);
                b[start..end].to_vec()
            },
        ),
        Func::Length => Value::Int(match x {
            Value::Bytes(b) => b.len() as i64,
            other => text(other).len() as i64,
        }),
        Func::CharLength => Value::Int(match x {
            Value::Bytes(b) => b.len() as i64,
            other => text(other).chars().count() as i64,
        }),
        Func::Substring => {
            let pos = int_arg(f, &vals[1])?.unwrap_or(0);
            let len = match vals.get(2) {
                Some(l) => Some(int_arg(f, l)?.unwrap_or(0)),
                None => None,
            };
            match x {
                Value::Bytes(b) => Value::Bytes(substring_bytes(b, pos, len).to_vec()),
                other => Value::Text(substring_str(&text(other), pos, len).to_string()),
            }
        }
        Func::Replace => match x {
            Value::Bytes(b) => {
                let from = bytes_of(&vals[1]);
                let to = bytes_of(&vals[2]);
                Value::Bytes(replace_bytes(b, &from, &to))
            }
            other => {
                let (from, to) = (text(&vals[1]), text(&vals[2]));
                let s = text(other);
                Value::Text(if from.is_empty() { s.into_owned() } else { s.replace(&*from, &to) })
            }
        },
        Func::Year | Func::Month | Func::Day => match (x, temporal::civil(x)) {
            (Value::Year(y), _) if f == Func::Year => Value::Int(*y as i64),
            (_, Some(dt)) if dt.date.is_infinite() => return Err(err(f, &[x], "an infinite date has no fields")),
            (_, Some(dt)) => Value::Int(match f {
                Func::Year => dt.date.year as i64,
                Func::Month => dt.date.month as i64,
                _ => dt.date.day as i64,
            }),
            _ => return Err(err(f, &[x], format!("{} is not a date", x.kind_name()))),
        },
        Func::Hour | Func::Minute | Func::Second => {
            let us = match (x, temporal::civil(x)) {
                (Value::Time(t), _) => t.unsigned_abs(),
                (_, Some(dt)) if dt.date.is_infinite() => {
                    return Err(err(f, &[x], "an infinite date has no fields"));
                }
                (_, Some(dt)) => dt.micros,
                _ => return Err(err(f, &[x], format!("{} is not a time", x.kind_name()))),
            };
            let secs = us / 1_000_000;
            Value::Int(match f {
                Func::Hour => secs / 3600,
                Func::Minute => (secs / 60) % 60,
                _ => secs % 60,
            } as i64)
        }
        Func::Abs => match x {
            Value::Float(v) => Value::Float(v.abs()),
            Value::Decimal(d) if eval::is_special(x) => Value::Decimal(d.trim_start_matches('-').into()),
            Value::UInt(_) => return Ok(vals.swap_remove(0)),
            other => match num::num(other) {
                Some(Num::I(i)) => int_value(i.abs(), false),
                Some(Num::D(d)) => Value::Decimal(dec(f, other, d)?.abs().to_string()),
                Some(Num::F(v)) => Value::Double(v.abs()),
                None => return Err(err(f, &[x], "not a number")),
            },
        },
        Func::Round | Func::Floor | Func::Ceil => {
            let d = match vals.get(1) {
                Some(d) => int_arg(f, d)?.unwrap_or(0).clamp(-100, 100),
                None => 0,
            };
            round_like(f, x, d)?
        }
        Func::Mod => eval::arith(super::ast::BinaryOp::Mod, mod_kind(x, &vals[1]), x, &vals[1])?,
        _ => unreachable!("handled above: {f:?}"),
    };
    Ok(Cow::Owned(v))
}

fn mod_kind(a: &Value, b: &Value) -> eval::ArithKind {
    match (num::num(a), num::num(b)) {
        (Some(Num::I(_)), Some(Num::I(_))) => {
            eval::ArithKind::Int { unsigned: matches!(a, Value::UInt(_)) && matches!(b, Value::UInt(_)) }
        }
        (Some(Num::F(_)), _) | (_, Some(Num::F(_))) => eval::ArithKind::Float,
        _ => eval::ArithKind::Dec,
    }
}

fn bytes_of(v: &Value) -> Cow<'_, [u8]> {
    match v {
        Value::Bytes(b) => Cow::Borrowed(b),
        other => match text(other) {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        },
    }
}

fn dec(f: Func, v: &Value, d: &str) -> Result<Dec, EvalError> {
    Dec::parse(d).ok_or_else(|| err(f, &[v], "invalid decimal"))
}

/// `round(x, d)`, `floor(x)`, `ceil(x)`: integers stay integers, decimals stay exact, doubles
/// stay doubles. Rounding is half away from zero.
fn round_like(f: Func, x: &Value, d: i64) -> Result<Value, EvalError> {
    if eval::is_special(x) {
        return Ok(x.clone());
    }
    let unsigned = matches!(x, Value::UInt(_));
    Ok(match num::num(x) {
        Some(Num::I(i)) => {
            if f != Func::Round || d >= 0 {
                int_value(i, unsigned)
            } else {
                let r = Dec::from_i128(i).round(d);
                match r.to_i128() {
                    Some(i) => int_value(i, unsigned),
                    None => Value::Decimal(r.to_string()),
                }
            }
        }
        Some(Num::D(s)) => {
            let v = dec(f, x, s)?;
            Value::Decimal(
                match f {
                    Func::Round => v.round(d),
                    Func::Floor => v.floor(),
                    _ => v.ceil(),
                }
                .to_string(),
            )
        }
        Some(Num::F(v)) => {
            let r = match f {
                Func::Floor => v.floor(),
                Func::Ceil => v.ceil(),
                _ if d >= 0 => {
                    let m = 10f64.powi(d as i32);
                    let r = (v * m).round() / m;
                    if r.is_finite() {
                        r
                    } else {
                        v
                    }
                }
                _ => {
                    let m = 10f64.powi((-d) as i32);
                    (v / m).round() * m
                }
            };
            if let Value::Float(_) = x {
                Value::Float(r as f32)
            } else {
                Value::Double(r)
            }
        }
        None => return Err(err(f, &[x], format!("{} is not a number", x.kind_name()))),
    })
}

/// `date_format(t, fmt)`.
pub(crate) fn date_format(ts: &Node, fmt: &FmtArg, row: &[Value], ctx: &EvalContext<'_>) -> Result<Value, EvalError> {
    let v = ts.eval(row, ctx)?;
    if v.is_null() {
        return Ok(Value::Null);
    }
    let dt = match temporal::civil(&v) {
        Some(dt) => dt,
        None => match &*v {
            Value::Text(s) => temporal::text_to_datetime(s)
                .map_err(|m| EvalError::new(format!("date_format({}, ...): {m}", show(&v))))?,
            other => {
                return Err(EvalError::new(format!(
                    "date_format({}, ...): {} is not a date",
                    show(other),
                    other.kind_name()
                )))
            }
        },
    };
    if dt.date.is_infinite() {
        return Ok(Value::Text(dt.date.to_string()));
    }
    let mut out = String::new();
    let ok = match fmt {
        FmtArg::Static(f) => temporal::format(&dt, f, &mut out),
        FmtArg::Dynamic(n) => {
            let fv = n.eval(row, ctx)?;
            if fv.is_null() {
                return Ok(Value::Null);
            }
            temporal::format(&dt, &temporal::compile_format(&text(&fv)), &mut out)
        }
    };
    Ok(ok.map_or(Value::Null, |_| Value::Text(out)))
}

/// An owned numeric value for casts.
enum N {
    I(i128),
    D(Dec),
    F(f64),
}

/// The number a value stands for in a numeric cast: numbers as they are, text parsed, dates as
/// `YYYYMMDD`, date-times as `YYYYMMDDhhmmss`, times as `hhmmss`.
fn numeric_of(v: &Value) -> Result<N, String> {
    let clock = |us: u64| {
        let s = us / 1_000_000;
        ((s / 3600) * 10_000 + ((s / 60) % 60) * 100 + s % 60) as i128
    };
    let date = |d: &Date| {
        let n = d.year.unsigned_abs() as i128 * 10_000 + d.month as i128 * 100 + d.day as i128;
        if d.year < 0 {
            -n
        } else {
            n
        }
    };
    if temporal::civil(v).is_some_and(|dt| dt.date.is_infinite()) {
        return Err(format!("{} is not a number", show(v)));
    }
    Ok(match v {
        Value::Date(d) => N::I(date(d)),
        Value::DateTime(_) | Value::Timestamp(_) => {
            let dt = temporal::civil(v).expect("date-like");
            N::I(date(&dt.date) * 1_000_000 + clock(dt.micros))
        }
        Value::Time(t) => N::I(if *t < 0 { -clock(t.unsigned_abs()) } else { clock(*t as u64) }),
        other => match num::num(other) {
            Some(Num::I(i)) => N::I(i),
            Some(Num::D(d)) => N::D(Dec::parse(d).ok_or("invalid decimal")?),
            Some(Num::F(x)) => N::F(x),
            None => {
                let t = match other {
                    Value::Bytes(b) => std::str::from_utf8(b).map_err(|_| "bytes are not a number")?,
                    Value::Text(s) | Value::Enum(s) | Value::Set(s) | Value::Json(s) => s,
                    _ => return Err(format!("cannot convert {} to a number", other.kind_name())),
                };
                match parse_number(t) {
                    Some(Value::Int(i)) => N::I(i as i128),
                    Some(Value::UInt(u)) => N::I(u as i128),
                    Some(Value::Decimal(d)) => N::D(Dec::parse(&d).ok_or("invalid decimal")?),
                    Some(Value::Double(x)) => N::F(x),
                    _ => return Err(format!("{} is not a number", show(other))),
                }
            }
        },
    })
}

/// A number rounded half away from zero to an integer.
fn to_integer(n: N) -> Result<i128, String> {
    match n {
        N::I(i) => Ok(i),
        N::D(d) => d.round(0).to_i128().ok_or_else(|| "out of range".to_string()),
        N::F(x) if x.is_finite() && x.abs() < 1.7e38 => Ok(x.round() as i128),
        N::F(_) => Err("out of range".into()),
    }
}

fn dec_of_f64(x: f64) -> Result<Dec, String> {
    if !x.is_finite() {
        return Err(format!("{x} is not a finite number"));
    }
    // Rust prints doubles without exponent, with the shortest digits that round-trip.
    Dec::parse(&format!("{x}")).ok_or_else(|| "invalid number".into())
}

fn text_of_value(v: &Value) -> Result<String, String> {
    match v {
        Value::Bytes(b) => String::from_utf8(b.clone()).map_err(|_| "bytes are not valid UTF-8".to_string()),
        other => Ok(text(other).into_owned()),
    }
}

/// `CAST(v AS ty)` for a non-NULL value; the error is the reason (the caller adds context).
pub(crate) fn cast(v: &Value, ty: CastType) -> Result<Value, String> {
    Ok(match ty {
        CastType::Signed => {
            let i = to_integer(numeric_of(v)?)?;
            Value::Int(i64::try_from(i).map_err(|_| format!("{i} is out of the range of SIGNED"))?)
        }
        CastType::Unsigned => {
            let i = to_integer(numeric_of(v)?)?;
            Value::UInt(u64::try_from(i).map_err(|_| format!("{i} is out of the range of UNSIGNED"))?)
        }
        CastType::Decimal { precision, scale } => {
            let d = match numeric_of(v)? {
                N::I(i) => Dec::from_i128(i),
                N::D(d) => d,
                // NaN and the infinities keep their special decimal (PostgreSQL's cast).
                N::F(x) if !x.is_finite() => return Ok(eval::special_decimal(x)),
                N::F(x) => dec_of_f64(x)?,
            }
            .rescale(scale as u32);
            if d.int_digits() > (precision - scale) as u32 {
                return Err(format!("{d} is out of the range of DECIMAL({precision},{scale})"));
            }
            Value::Decimal(d.to_string())
        }
        CastType::Double | CastType::Float => {
            let x = match numeric_of(v)? {
                N::I(i) => i as f64,
                N::D(d) => d.to_f64(),
                N::F(x) => x,
            };
            if ty == CastType::Float {
                let f = x as f32;
                if f.is_infinite() && x.is_finite() {
                    return Err(format!("{x} is out of the range of FLOAT"));
                }
                Value::Float(f)
            } else {
                Value::Double(x)
            }
        }
        CastType::Char(n) => {
            let s = text_of_value(v)?;
            match n {
                Some(n) => Value::Text(substring_str(&s, 1, Some(n as i64)).to_string()),
                None => Value::Text(s),
            }
        }
        CastType::Binary(n) => {
            let mut b = match v {
                Value::Bytes(b) => b.clone(),
                other => text(other).into_owned().into_bytes(),
            };
            if let Some(n) = n {
                b.resize(n as usize, 0);
            }
            Value::Bytes(b)
        }
        CastType::Json => match v {
            Value::Json(_) => v.clone(),
            Value::Text(_) | Value::Bytes(_) | Value::Enum(_) | Value::Set(_) => {
                let s = text_of_value(v)?;
                serde_json::from_str::<serde_json::Value>(&s).map_err(|e| format!("invalid JSON: {e}"))?;
                Value::Json(s)
            }
            Value::Decimal(d) => Value::Json(d.clone()),
            other => {
                let mut out = Vec::new();
                other.write_json(&mut out);
                Value::Json(String::from_utf8(out).map_err(|_| "invalid JSON encoding".to_string())?)
            }
        },
        CastType::Date => Value::Date(match v {
            Value::Int(_) | Value::UInt(_) => {
                let n = to_integer(numeric_of(v)?)?;
                let s = format!("{:04}-{:02}-{:02}", n / 10_000, (n / 100) % 100, n % 100);
                if !(0..=99_991_231).contains(&n) {
                    return Err(format!("{n} is not a date"));
                }
                temporal::parse_civil(&s)?.dt.date
            }
            Value::Text(s) => temporal::parse_civil(s)?.dt.date,
            Value::Bytes(_) => temporal::parse_civil(&text_of_value(v)?)?.dt.date,
            other => temporal::civil(other).ok_or_else(|| format!("{} is not a date", other.kind_name()))?.date,
        }),
        CastType::DateTime(fsp) => {
            let dt = match v {
                Value::Text(_) | Value::Bytes(_) => temporal::text_to_datetime(&text_of_value(v)?)?,
                other => temporal::civil(other).ok_or_else(|| format!("{} is not a date", other.kind_name()))?,
            };
            Value::DateTime(match dt.to_epoch_micros() {
                Some(us) => DateTime::from_epoch_micros(temporal::round_micros(us, fsp)),
                None => DateTime { date: dt.date, micros: temporal::round_micros(dt.micros as i64, fsp) as u64 },
            })
        }
        CastType::Timestamp(fsp) => {
            let us = match v {
                Value::Text(_) | Value::Bytes(_) => temporal::text_to_timestamp(&text_of_value(v)?)?,
                Value::Timestamp(t) => *t,
                other => temporal::civil_to_utc(
                    &temporal::civil(other).ok_or_else(|| format!("{} is not a date", other.kind_name()))?,
                )?,
            };
            Value::Timestamp(temporal::round_micros(us, fsp))
        }
        CastType::Time(fsp) => {
            let t = match v {
                Value::Time(t) => *t,
                Value::Text(_) | Value::Bytes(_) => {
                    let s = text_of_value(v)?;
                    match temporal::parse_time(&s) {
                        Ok(t) => t,
                        Err(e) => match temporal::parse_civil(&s) {
                            Ok(c) if c.has_time => c.dt.micros as i64,
                            _ => return Err(e),
                        },
                    }
                }
                other => {
                    temporal::civil(other).ok_or_else(|| format!("{} is not a time", other.kind_name()))?.micros as i64
                }
            };
            Value::Time(temporal::round_micros(t, fsp))
        }
    })
}

/// An implicit conversion (see [`Conv`]) of a non-NULL value.
pub(crate) fn convert(v: &Value, c: Conv) -> Result<Value, EvalError> {
    let r = match c {
        Conv::Int => cast(v, CastType::Signed),
        Conv::UInt => cast(v, CastType::Unsigned),
        Conv::Double => cast(v, CastType::Double),
        Conv::Text => Ok(match v {
            Value::Text(_) => v.clone(),
            other => Value::Text(text(other).into_owned()),
        }),
        Conv::Bytes => cast(v, CastType::Binary(None)),
        Conv::DateTime => cast(v, CastType::DateTime(6)),
        Conv::Decimal => match numeric_of(v) {
            Ok(N::I(i)) => Ok(Value::Decimal(i.to_string())),
            Ok(N::D(d)) => Ok(Value::Decimal(d.to_string())),
            Ok(N::F(x)) if !x.is_finite() => Ok(eval::special_decimal(x)),
            Ok(N::F(x)) => dec_of_f64(x).map(|d| Value::Decimal(d.to_string())),
            Err(e) => Err(e),
        },
    };
    r.map_err(|m| EvalError::new(format!("conversion of {} to {c:?}: {m}", show(v))))
}
