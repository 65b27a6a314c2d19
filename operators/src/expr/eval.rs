//! The compiled tree and its evaluation.

use super::ast::{BinaryOp, CastType};
use super::functions::{self, Func};
use super::num::{self, cmp_num, int_value, Dec, Num};
use super::temporal::{self, Fmt};
use super::{EvalContext, EvalError};
use crate::value::Value;
use std::borrow::Cow;
use std::cmp::Ordering;

/// How an arithmetic node computes, decided at compile time from the operand types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ArithKind {
    /// Integer arithmetic (in `i128`); results outside the 64-bit range become `Decimal`.
    Int {
        /// The result is `UInt` (else `Int`).
        unsigned: bool,
    },
    /// Exact decimal arithmetic.
    Dec,
    /// Double arithmetic.
    Float,
}

/// An implicit conversion inserted by the type checker (e.g. to unify `coalesce` arguments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Conv {
    Int,
    UInt,
    Decimal,
    Double,
    Text,
    Bytes,
    DateTime,
}

/// A `LIKE` pattern piece.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum LikeTok {
    /// Literal text.
    Lit(String),
    /// `_`: one character.
    One,
    /// `%`: any run of characters.
    Many,
}

/// The pattern of a `LIKE`: compiled once when constant.
#[derive(Clone, Debug)]
pub(crate) enum Pattern {
    Static(Vec<LikeTok>),
    Dynamic(Box<Node>),
}

/// The format of `date_format`: compiled once when constant.
#[derive(Clone, Debug)]
pub(crate) enum FmtArg {
    Static(Vec<Fmt>),
    Dynamic(Box<Node>),
}

/// A compiled expression node: columns are indexes, literals are converted values.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    Const(Value),
    Column(usize),
    Not(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    /// A comparison; the operator is one of the six comparison [`BinaryOp`]s.
    Cmp(BinaryOp, Box<Node>, Box<Node>),
    /// `IS NULL` (`true`: `IS NOT NULL`).
    IsNull(Box<Node>, bool),
    /// `IN` (`true`: `NOT IN`).
    In(Box<Node>, Vec<Node>, bool),
    /// `BETWEEN` (`true`: `NOT BETWEEN`).
    Between(Box<Node>, Box<Node>, Box<Node>, bool),
    /// `LIKE` (`true`: `NOT LIKE`).
    Like(Box<Node>, Pattern, bool),
    /// `+ - * / %`.
    Arith(BinaryOp, ArithKind, Box<Node>, Box<Node>),
    Neg(Box<Node>),
    Call(Func, Vec<Node>),
    DateFormat(Box<Node>, FmtArg),
    Cast(Box<Node>, CastType),
    Conv(Box<Node>, Conv),
}

impl Node {
    /// Direct children.
    pub(crate) fn children(&self) -> Vec<&Node> {
        match self {
            Node::Const(_) | Node::Column(_) => vec![],
            Node::Not(x) | Node::IsNull(x, _) | Node::Neg(x) | Node::Cast(x, _) | Node::Conv(x, _) => {
                vec![x]
            }
            Node::And(a, b) | Node::Or(a, b) | Node::Cmp(_, a, b) | Node::Arith(_, _, a, b) => {
                vec![a, b]
            }
            Node::In(x, list, _) => std::iter::once(&**x).chain(list.iter()).collect(),
            Node::Between(x, l, h, _) => vec![x, l, h],
            Node::Like(x, Pattern::Static(_), _) => vec![x],
            Node::Like(x, Pattern::Dynamic(p), _) => vec![x, p],
            Node::Call(_, args) => args.iter().collect(),
            Node::DateFormat(x, FmtArg::Static(_)) => vec![x],
            Node::DateFormat(x, FmtArg::Dynamic(f)) => vec![x, f],
        }
    }

    /// Whether the node can be evaluated once at compile time: all children are constants and
    /// the node reads no context (`now()`, metadata functions).
    pub(crate) fn foldable(&self) -> bool {
        match self {
            Node::Const(_) | Node::Column(_) => false,
            Node::Call(f, _) if !f.is_pure() => false,
            _ => self.children().iter().all(|c| matches!(c, Node::Const(_))),
        }
    }

    /// Adds the column indexes the node reads to `out`.
    pub(crate) fn collect_columns(&self, out: &mut Vec<usize>) {
        if let Node::Column(i) = self {
            out.push(*i);
        }
        for c in self.children() {
            c.collect_columns(out);
        }
    }

    /// Evaluates to a value; columns and constants are borrowed, not cloned.
    pub(crate) fn eval<'a>(&'a self, row: &'a [Value], ctx: &EvalContext<'_>) -> Result<Cow<'a, Value>, EvalError> {
        Ok(match self {
            Node::Const(v) => Cow::Borrowed(v),
            Node::Column(i) => Cow::Borrowed(column(row, *i)?),
            Node::Not(_)
            | Node::And(..)
            | Node::Or(..)
            | Node::Cmp(..)
            | Node::IsNull(..)
            | Node::In(..)
            | Node::Between(..)
            | Node::Like(..) => Cow::Owned(match self.truth(row, ctx)? {
                Some(b) => Value::Bool(b),
                None => Value::Null,
            }),
            Node::Arith(op, kind, l, r) => {
                let a = l.eval(row, ctx)?;
                let b = r.eval(row, ctx)?;
                Cow::Owned(arith(*op, *kind, &a, &b)?)
            }
            _ => self.eval_other(row, ctx)?,
        })
    }

    /// The less common nodes, kept out of [`Node::eval`] so that its frame stays small.
    #[inline(never)]
    fn eval_other<'a>(&'a self, row: &'a [Value], ctx: &EvalContext<'_>) -> Result<Cow<'a, Value>, EvalError> {
        Ok(match self {
            Node::Neg(x) => Cow::Owned(negate(&*x.eval(row, ctx)?)?),
            Node::Call(f, args) => functions::call(*f, args, row, ctx)?,
            Node::DateFormat(ts, fmt) => Cow::Owned(functions::date_format(ts, fmt, row, ctx)?),
            Node::Cast(x, ty) => {
                let v = x.eval(row, ctx)?;
                if v.is_null() {
                    return Ok(v);
                }
                Cow::Owned(
                    functions::cast(&v, *ty)
                        .map_err(|m| EvalError::new(format!("cast({} AS {ty}): {m}", functions::show(&v))))?,
                )
            }
            Node::Conv(x, c) => {
                let v = x.eval(row, ctx)?;
                if v.is_null() {
                    return Ok(v);
                }
                Cow::Owned(functions::convert(&v, *c)?)
            }
            _ => self.eval(row, ctx)?,
        })
    }

    /// Evaluates as a SQL truth value: `None` is UNKNOWN (NULL).
    pub(crate) fn truth(&self, row: &[Value], ctx: &EvalContext<'_>) -> Result<Option<bool>, EvalError> {
        match self {
            Node::Not(x) => Ok(x.truth(row, ctx)?.map(|b| !b)),
            Node::And(l, r) => {
                let a = l.truth(row, ctx)?;
                if a == Some(false) {
                    return Ok(a);
                }
                Ok(match (a, r.truth(row, ctx)?) {
                    (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                })
            }
            Node::Or(l, r) => {
                let a = l.truth(row, ctx)?;
                if a == Some(true) {
                    return Ok(a);
                }
                Ok(match (a, r.truth(row, ctx)?) {
                    (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                })
            }
            Node::Cmp(op, l, r) => {
                let a = operand(l, row, ctx)?;
                let b = operand(r, row, ctx)?;
                Ok(compare(&a, &b)?.map(|o| holds(*op, o)))
            }
            Node::IsNull(x, negated) => Ok(Some(x.eval(row, ctx)?.is_null() != *negated)),
            Node::In(x, list, negated) => {
                let v = operand(x, row, ctx)?;
                if v.is_null() {
                    return Ok(None);
                }
                let mut unknown = false;
                for e in list {
                    match compare(&v, &*operand(e, row, ctx)?)? {
                        Some(Ordering::Equal) => return Ok(Some(!*negated)),
                        Some(_) => {}
                        None => unknown = true,
                    }
                }
                Ok(if unknown { None } else { Some(*negated) })
            }
            Node::Between(x, lo, hi, negated) => {
                let v = operand(x, row, ctx)?;
                let ge = compare(&v, &*operand(lo, row, ctx)?)?.map(|o| o != Ordering::Less);
                if ge == Some(false) {
                    return Ok(Some(*negated));
                }
                let le = compare(&v, &*operand(hi, row, ctx)?)?.map(|o| o != Ordering::Greater);
                let r = match (ge, le) {
                    (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                };
                Ok(r.map(|b| b != *negated))
            }
            Node::Like(x, pat, negated) => like(x, pat, *negated, row, ctx),
            _ => truthy(&*self.eval(row, ctx)?),
        }
    }
}

#[inline(never)]
fn like(
    x: &Node,
    pat: &Pattern,
    negated: bool,
    row: &[Value],
    ctx: &EvalContext<'_>,
) -> Result<Option<bool>, EvalError> {
    let v = x.eval(row, ctx)?;
    if v.is_null() {
        return Ok(None);
    }
    let s = functions::text(&v);
    let m = match pat {
        Pattern::Static(p) => like_match(p, &s),
        Pattern::Dynamic(p) => {
            let pv = p.eval(row, ctx)?;
            if pv.is_null() {
                return Ok(None);
            }
            like_match(&compile_like(&functions::text(&pv)), &s)
        }
    };
    Ok(Some(m != negated))
}

/// The value of an operand, without a call for the common column and constant cases.
#[inline(always)]
fn operand<'a>(n: &'a Node, row: &'a [Value], ctx: &EvalContext<'_>) -> Result<Cow<'a, Value>, EvalError> {
    match n {
        Node::Column(i) => Ok(Cow::Borrowed(column(row, *i)?)),
        Node::Const(v) => Ok(Cow::Borrowed(v)),
        _ => n.eval(row, ctx),
    }
}

/// The value of column `i` of `row`.
#[inline]
fn column(row: &[Value], i: usize) -> Result<&Value, EvalError> {
    match row.get(i) {
        Some(v) => Ok(v),
        None => Err(short_row(row.len(), i)),
    }
}

#[cold]
#[inline(never)]
fn short_row(len: usize, i: usize) -> EvalError {
    EvalError::new(format!("row has {len} values but the expression reads column #{}", i + 1))
}

/// Whether ordering `o` satisfies comparison operator `op`.
#[inline]
pub(crate) fn holds(op: BinaryOp, o: Ordering) -> bool {
    match op {
        BinaryOp::Eq => o == Ordering::Equal,
        BinaryOp::Ne => o != Ordering::Equal,
        BinaryOp::Lt => o == Ordering::Less,
        BinaryOp::Le => o != Ordering::Greater,
        BinaryOp::Gt => o == Ordering::Greater,
        BinaryOp::Ge => o != Ordering::Less,
        _ => false,
    }
}

/// SQL truthiness: NULL is unknown, numbers are true when non-zero.
pub(crate) fn truthy(v: &Value) -> Result<Option<bool>, EvalError> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        other => match num::num(other) {
            Some(n) => Ok(Some(!n.is_zero())),
            None => Err(not_boolean(other)),
        },
    }
}

#[cold]
#[inline(never)]
fn not_boolean(v: &Value) -> EvalError {
    EvalError::new(format!("expected a boolean condition, got {} {}", v.kind_name(), functions::show(v)))
}

/// The text view of a value for comparison: character kinds and bytes.
#[inline]
fn text_bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::Text(s) | Value::Enum(s) | Value::Set(s) | Value::Json(s) => Some(s.as_bytes()),
        Value::Bytes(b) => Some(b),
        _ => None,
    }
}

/// Compares two values with SQL semantics: `None` when either is NULL. Numbers compare
/// numerically across kinds; text and bytes by bytes; dates, date-times and timestamps (as UTC)
/// by their civil fields; times by length; UUIDs, intervals and arrays as PostgreSQL does
/// (see `compare_other`). Other pairs are an error.
#[inline]
pub(crate) fn compare(a: &Value, b: &Value) -> Result<Option<Ordering>, EvalError> {
    // Fast paths for the most common same-kind pairs.
    match (a, b) {
        (Value::Null, _) | (_, Value::Null) => return Ok(None),
        (Value::Int(x), Value::Int(y)) => return Ok(Some(x.cmp(y))),
        (Value::Text(x), Value::Text(y)) => return Ok(Some(x.as_bytes().cmp(y.as_bytes()))),
        (Value::UInt(x), Value::UInt(y)) => return Ok(Some(x.cmp(y))),
        (Value::DateTime(x), Value::DateTime(y)) => return Ok(Some(x.cmp(y))),
        _ => {}
    }
    if let (Some(x), Some(y)) = (num::num(a), num::num(b)) {
        return Ok(Some(cmp_num(x, y)));
    }
    if let (Some(x), Some(y)) = (text_bytes(a), text_bytes(b)) {
        return Ok(Some(x.cmp(y)));
    }
    match (a, b) {
        (Value::Timestamp(x), Value::Timestamp(y)) => return Ok(Some(x.cmp(y))),
        (Value::Date(x), Value::Date(y)) => return Ok(Some(x.cmp(y))),
        (Value::Time(x), Value::Time(y)) => return Ok(Some(x.cmp(y))),
        _ => {}
    }
    if let (Some(x), Some(y)) = (temporal::civil(a), temporal::civil(b)) {
        return Ok(Some(x.cmp(&y)));
    }
    compare_other(a, b)
}

/// The kinds PostgreSQL adds: UUIDs by their bytes, intervals as PostgreSQL compares them (a
/// month is 30 days, a day 24 hours), arrays element by element (PostgreSQL's order: NULL
/// elements equal each other and sort after any value, then the shorter array first; arrays of
/// different dimensions are never equal).
#[inline(never)]
fn compare_other(a: &Value, b: &Value) -> Result<Option<Ordering>, EvalError> {
    match (a, b) {
        (Value::Uuid(x), Value::Uuid(y)) => Ok(Some(x.cmp(y))),
        (Value::Interval(x), Value::Interval(y)) => Ok(Some(x.pg_cmp(y))),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let o = match (p.is_null(), q.is_null()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => Ordering::Greater,
                    (false, true) => Ordering::Less,
                    // Arrays of different dimensions are different; fewer dimensions first.
                    (false, false) => match (p, q) {
                        (Value::Array(_), Value::Array(_)) => compare(p, q)?.unwrap_or(Ordering::Equal),
                        (Value::Array(_), _) => Ordering::Greater,
                        (_, Value::Array(_)) => Ordering::Less,
                        _ => compare(p, q)?.unwrap_or(Ordering::Equal),
                    },
                };
                if o != Ordering::Equal {
                    return Ok(Some(o));
                }
            }
            Ok(Some(x.len().cmp(&y.len())))
        }
        _ => Err(incomparable(a, b)),
    }
}

#[cold]
#[inline(never)]
fn incomparable(a: &Value, b: &Value) -> EvalError {
    EvalError::new(format!(
        "cannot compare {} {} with {} {}",
        a.kind_name(),
        functions::show(a),
        b.kind_name(),
        functions::show(b)
    ))
}

/// Evaluates `a op b` for `+ - * / %`. NULL in, NULL out; division by zero is NULL.
#[inline(never)]
pub(crate) fn arith(op: BinaryOp, kind: ArithKind, a: &Value, b: &Value) -> Result<Value, EvalError> {
    if a.is_null() || b.is_null() {
        return Ok(Value::Null);
    }
    let not_num = |v: &Value| {
        EvalError::new(format!("operator {} needs numbers, got {} {}", op.symbol(), v.kind_name(), functions::show(v)))
    };
    let x = num::num(a).ok_or_else(|| not_num(a))?;
    let y = num::num(b).ok_or_else(|| not_num(b))?;
    if kind != ArithKind::Float && (is_special(a) || is_special(b)) {
        return Ok(special_arith(op, x.to_f64(), y.to_f64()));
    }
    if kind == ArithKind::Float || matches!(x, Num::F(_)) || matches!(y, Num::F(_)) {
        let (p, q) = (x.to_f64(), y.to_f64());
        let r = match op {
            BinaryOp::Add => p + q,
            BinaryOp::Sub => p - q,
            BinaryOp::Mul => p * q,
            BinaryOp::Div | BinaryOp::Mod if q == 0.0 => return Ok(Value::Null),
            BinaryOp::Div => p / q,
            _ => p % q,
        };
        if !r.is_finite() && p.is_finite() && q.is_finite() {
            return Err(EvalError::new(format!(
                "DOUBLE value is out of range in {} {} {}",
                functions::show(a),
                op.symbol(),
                functions::show(b)
            )));
        }
        return Ok(Value::Double(r));
    }
    if let (Num::I(p), Num::I(q), false) = (x, y, op == BinaryOp::Div) {
        let r = match op {
            BinaryOp::Add => p.checked_add(q),
            BinaryOp::Sub => p.checked_sub(q),
            BinaryOp::Mul => p.checked_mul(q),
            _ if q == 0 => return Ok(Value::Null),
            _ => p.checked_rem(q),
        };
        if let Some(r) = r {
            return Ok(match kind {
                ArithKind::Int { unsigned } => int_value(r, unsigned),
                _ => Value::Decimal(r.to_string()),
            });
        }
    }
    let bad =
        || EvalError::new(format!("invalid decimal in {} {} {}", functions::show(a), op.symbol(), functions::show(b)));
    let p = x.to_dec().ok_or_else(bad)?;
    let q = y.to_dec().ok_or_else(bad)?;
    let r = match op {
        BinaryOp::Add => p.add(&q),
        BinaryOp::Sub => p.sub(&q),
        BinaryOp::Mul => p.mul(&q),
        BinaryOp::Div => match p.div(&q, (p.scale() + 4).min(30)) {
            Some(r) => r,
            None => return Ok(Value::Null),
        },
        _ => match p.rem(&q) {
            Some(r) => r,
            None => return Ok(Value::Null),
        },
    };
    if let (ArithKind::Int { unsigned }, Some(i)) = (kind, r.to_i128()) {
        return Ok(int_value(i, unsigned));
    }
    Ok(Value::Decimal(r.to_string()))
}

/// Whether `v` is one of PostgreSQL's special `numeric` values.
pub(crate) fn is_special(v: &Value) -> bool {
    matches!(v, Value::Decimal(d) if crate::value::decimal_special(d).is_some())
}

/// The decimal of a double that stands for a decimal result: the special values for NaN and
/// the infinities, else the exact text of the double.
pub(crate) fn special_decimal(x: f64) -> Value {
    Value::Decimal(if x.is_nan() {
        "NaN".into()
    } else if x == f64::INFINITY {
        "Infinity".into()
    } else if x == f64::NEG_INFINITY {
        "-Infinity".into()
    } else {
        // Rust prints doubles without exponent, with the shortest digits that round-trip.
        crate::value::canonical_decimal(&format!("{x}")).unwrap_or_else(|| "NaN".into())
    })
}

/// Decimal arithmetic with a special operand, in doubles as PostgreSQL defines it (`Infinity -
/// Infinity` is `NaN`, `1 / Infinity` is 0); division by zero is NULL as everywhere.
#[cold]
#[inline(never)]
fn special_arith(op: BinaryOp, p: f64, q: f64) -> Value {
    let r = match op {
        BinaryOp::Add => p + q,
        BinaryOp::Sub => p - q,
        BinaryOp::Mul => p * q,
        BinaryOp::Div | BinaryOp::Mod if q == 0.0 => return Value::Null,
        BinaryOp::Div => p / q,
        _ => p % q,
    };
    special_decimal(r)
}

/// Unary minus.
pub(crate) fn negate(v: &Value) -> Result<Value, EvalError> {
    Ok(match v {
        Value::Null => Value::Null,
        Value::Decimal(d) if is_special(v) => Value::Decimal(match d.as_str() {
            "Infinity" => "-Infinity".into(),
            "-Infinity" => "Infinity".into(),
            _ => d.clone(),
        }),
        Value::Float(x) => Value::Float(-x),
        other => match num::num(other) {
            Some(Num::I(i)) => int_value(-i, false),
            Some(Num::D(d)) => Value::Decimal(
                Dec::parse(d).ok_or_else(|| EvalError::new(format!("invalid decimal '{d}'")))?.neg().to_string(),
            ),
            Some(Num::F(x)) => Value::Double(-x),
            None => {
                return Err(EvalError::new(format!(
                    "operator - needs a number, got {} {}",
                    other.kind_name(),
                    functions::show(other)
                )))
            }
        },
    })
}

/// Compiles a `LIKE` pattern: `%` any run, `_` one character, `\` escapes the next character.
pub(crate) fn compile_like(p: &str) -> Vec<LikeTok> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut it = p.chars();
    while let Some(c) = it.next() {
        let tok = match c {
            '%' => LikeTok::Many,
            '_' => LikeTok::One,
            '\\' => {
                lit.push(it.next().unwrap_or('\\'));
                continue;
            }
            c => {
                lit.push(c);
                continue;
            }
        };
        if !lit.is_empty() {
            out.push(LikeTok::Lit(std::mem::take(&mut lit)));
        }
        if !(tok == LikeTok::Many && out.last() == Some(&LikeTok::Many)) {
            out.push(tok);
        }
    }
    if !lit.is_empty() {
        out.push(LikeTok::Lit(lit));
    }
    out
}

fn char_len_at(s: &str, i: usize) -> usize {
    s[i..].chars().next().map_or(1, char::len_utf8)
}

/// Matches `s` against a compiled pattern (case-sensitive, by characters).
pub(crate) fn like_match(pat: &[LikeTok], s: &str) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p < pat.len() {
            match &pat[p] {
                LikeTok::Many => {
                    star = Some((p, i));
                    p += 1;
                    continue;
                }
                LikeTok::One if i < s.len() => {
                    i += char_len_at(s, i);
                    p += 1;
                    continue;
                }
                LikeTok::Lit(l) if s[i..].starts_with(l.as_str()) => {
                    i += l.len();
                    p += 1;
                    continue;
                }
                _ => {}
            }
        } else if i == s.len() {
            return true;
        }
        match star {
            Some((sp, si)) if si < s.len() => {
                let ni = si + char_len_at(s, si);
                star = Some((sp, ni));
                p = sp + 1;
                i = ni;
            }
            _ => return false,
        }
    }
}
