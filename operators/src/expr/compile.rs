//! Name resolution, type checking, literal coercion and constant folding: [`Ast`] to [`Node`].

use super::ast::{Ast, BinaryOp, CastType, Literal, Span, UnaryOp};
use super::eval::{compile_like, ArithKind, Conv, FmtArg, Node, Pattern};
use super::functions::{self, show, Func};
use super::num::parse_number;
use super::temporal;
use super::{EvalContext, ExprError};
use crate::change::{Op, Position};
use crate::schema::{ColumnType, TableSchema};
use crate::value::{canonical_decimal, decimal_special, parse_array, parse_uuid, Interval, Value};

/// A compiled subexpression with its static type. `ty` is `None` for the NULL literal.
#[derive(Clone, Debug)]
pub(crate) struct T {
    pub(crate) node: Node,
    pub(crate) ty: Option<ColumnType>,
    pub(crate) nullable: bool,
    pub(crate) span: Span,
}

/// Broad type classes: values of two classes compare when the classes are compatible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    Null,
    Bool,
    Num,
    Text,
    Bytes,
    Temporal,
    Time,
    Uuid,
    Interval,
    /// Arrays compare only for equality.
    Array,
}

pub(crate) fn class(ty: &Option<ColumnType>) -> Class {
    ty.as_ref().map_or(Class::Null, class_of)
}

fn class_of(t: &ColumnType) -> Class {
    match t {
        ColumnType::Bool => Class::Bool,
        ColumnType::Int { .. }
        | ColumnType::Float
        | ColumnType::Double
        | ColumnType::Decimal { .. }
        | ColumnType::Bit { .. }
        | ColumnType::Year => Class::Num,
        ColumnType::String { .. }
        | ColumnType::Json
        | ColumnType::Enum { .. }
        | ColumnType::Set { .. }
        | ColumnType::Other { .. } => Class::Text,
        ColumnType::Bytes { .. } => Class::Bytes,
        ColumnType::Date | ColumnType::DateTime { .. } | ColumnType::Timestamp { .. } => Class::Temporal,
        ColumnType::Time { .. } => Class::Time,
        ColumnType::Uuid => Class::Uuid,
        ColumnType::Interval => Class::Interval,
        ColumnType::Array { .. } => Class::Array,
    }
}

fn comparable(a: Class, b: Class) -> bool {
    use Class::*;
    matches!(
        (a, b),
        (Null, _)
            | (_, Null)
            | (Bool | Num, Bool | Num)
            | (Text | Bytes, Text | Bytes)
            | (Temporal, Temporal)
            | (Time, Time)
            | (Uuid, Uuid)
            | (Interval, Interval)
            | (Array, Array)
    )
}

/// Whether values of the two types compare: their classes do, and so do array elements.
fn types_comparable(a: &Option<ColumnType>, b: &Option<ColumnType>) -> bool {
    match (a, b) {
        (Some(ColumnType::Array { element: x }), Some(ColumnType::Array { element: y })) => elements_comparable(x, y),
        _ => comparable(class(a), class(b)),
    }
}

fn elements_comparable(x: &ColumnType, y: &ColumnType) -> bool {
    match (x, y) {
        (ColumnType::Array { element: x }, ColumnType::Array { element: y }) => elements_comparable(x, y),
        _ => comparable(class_of(x), class_of(y)),
    }
}

/// `true`/`false` and PostgreSQL's `t`/`f`, in any case.
fn bool_text(s: &str) -> Option<bool> {
    match s.trim() {
        t if t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("t") => Some(true),
        t if t.eq_ignore_ascii_case("false") || t.eq_ignore_ascii_case("f") => Some(false),
        _ => None,
    }
}

/// Converts text to a value of type `target`, as a string constant compared with a column of
/// that type; `None` when the type's values are text or bytes already.
fn convert_text(s: &str, target: &ColumnType) -> Option<Result<Value, String>> {
    let c = class_of(target);
    Some(match c {
        Class::Num | Class::Bool => match parse_number(s) {
            Some(v) => Ok(v),
            None if c == Class::Bool && bool_text(s).is_some() => Ok(Value::Bool(bool_text(s) == Some(true))),
            None => match canonical_decimal(s) {
                // PostgreSQL's special values of numeric and floats.
                Some(d)
                    if decimal_special(&d).is_some()
                        && matches!(target, ColumnType::Decimal { .. } | ColumnType::Float | ColumnType::Double) =>
                {
                    Ok(Value::Decimal(d))
                }
                _ => Err("not a number".into()),
            },
        },
        Class::Temporal => match target {
            ColumnType::Date => temporal::text_to_date(s),
            ColumnType::DateTime { .. } => temporal::text_to_datetime(s).map(Value::DateTime),
            _ => temporal::text_to_timestamp(s).map(Value::Timestamp),
        },
        Class::Time => temporal::parse_time(s).map(Value::Time),
        Class::Uuid => parse_uuid(s)
            .map(Value::Uuid)
            .ok_or_else(|| "not a UUID (32 hex digits, like a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11)".into()),
        Class::Interval => Interval::parse(s).map(Value::Interval),
        Class::Array => {
            let ColumnType::Array { element } = target else { unreachable!("class Array") };
            parse_array(s, &mut |e| element_value(e, element))
        }
        Class::Null | Class::Text | Class::Bytes => return None,
    })
}

/// The value of one element of an array constant (PostgreSQL's text form of the element).
fn element_value(s: &str, ty: &ColumnType) -> Result<Value, String> {
    match convert_text(s, ty) {
        Some(r) => r.map_err(|m| format!("element {}: {m}", show(&Value::Text(s.into())))),
        None if class_of(ty) == Class::Bytes => Ok(Value::Bytes(bytea_text(s))),
        None => Ok(Value::Text(s.into())),
    }
}

/// PostgreSQL's hex text of `bytea` (`\x0aff`) to bytes; other text as its bytes.
fn bytea_text(s: &str) -> Vec<u8> {
    let hex = s.strip_prefix("\\x").filter(|h| h.len() % 2 == 0 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    match hex {
        Some(h) => h
            .as_bytes()
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).expect("ASCII"), 16).expect("hex"))
            .collect(),
        None => s.as_bytes().to_vec(),
    }
}

fn ty_name(ty: &Option<ColumnType>) -> String {
    ty.as_ref().map_or_else(|| "NULL".into(), ColumnType::sql_name)
}

const TEXT: ColumnType = ColumnType::String { max_chars: None, fixed: false };
const BIGINT: ColumnType = ColumnType::Int { bits: 64, unsigned: false };
const INT: ColumnType = ColumnType::Int { bits: 32, unsigned: false };

fn is_unsigned(ty: &Option<ColumnType>) -> bool {
    matches!(ty, Some(ColumnType::Int { unsigned: true, .. } | ColumnType::Bit { .. }))
}

fn is_float(ty: &Option<ColumnType>) -> bool {
    matches!(ty, Some(ColumnType::Float | ColumnType::Double))
}

fn scale_of(ty: &Option<ColumnType>) -> u32 {
    match ty {
        Some(ColumnType::Decimal { scale, .. }) => *scale as u32,
        _ => 0,
    }
}

fn fsp_of(us: u64) -> u8 {
    if us.is_multiple_of(1_000_000) {
        0
    } else {
        6
    }
}

/// The static type of a constant.
pub(crate) fn type_of_value(v: &Value) -> Option<ColumnType> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(_) => ColumnType::Bool,
        Value::Int(_) => BIGINT,
        Value::UInt(_) => ColumnType::Int { bits: 64, unsigned: true },
        Value::Float(_) => ColumnType::Float,
        Value::Double(_) => ColumnType::Double,
        Value::Decimal(s) if decimal_special(s).is_some() => ColumnType::Decimal { precision: 0, scale: 0 },
        Value::Decimal(s) => {
            let body = s.trim_start_matches('-');
            let (i, f) = body.split_once('.').unwrap_or((body, ""));
            let digits = (i.trim_start_matches('0').len() + f.len()).clamp(1, 65);
            ColumnType::Decimal { precision: digits as u8, scale: f.len().min(30) as u8 }
        }
        Value::Text(_) | Value::Enum(_) | Value::Set(_) => TEXT,
        Value::Bytes(_) => ColumnType::Bytes { max_len: None, fixed: false },
        Value::Date(_) => ColumnType::Date,
        Value::Time(t) => ColumnType::Time { fsp: fsp_of(t.unsigned_abs()) },
        Value::DateTime(dt) => ColumnType::DateTime { fsp: fsp_of(dt.micros) },
        Value::Timestamp(t) => ColumnType::Timestamp { fsp: fsp_of(t.unsigned_abs()) },
        Value::Json(_) => ColumnType::Json,
        Value::Bit { width, .. } => ColumnType::Bit { width: *width },
        Value::Year(_) => ColumnType::Year,
        Value::Interval(_) => ColumnType::Interval,
        Value::Uuid(_) => ColumnType::Uuid,
        Value::Array(items) => ColumnType::Array { element: Box::new(element_type(items).unwrap_or(TEXT)) },
    })
}

/// The type of the first non-NULL leaf of a (nested) array.
fn element_type(items: &[Value]) -> Option<ColumnType> {
    items.iter().find_map(|v| match v {
        Value::Array(inner) => element_type(inner),
        other => type_of_value(other),
    })
}

fn literal_value(l: &Literal) -> Value {
    match l {
        Literal::Null => Value::Null,
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Int(i) => Value::Int(*i),
        Literal::UInt(u) => Value::UInt(*u),
        Literal::Decimal(d) => Value::Decimal(d.clone()),
        Literal::Double(x) => Value::Double(*x),
        Literal::String(s) => Value::Text(s.clone()),
    }
}

static NO_POSITION: Position = Position::None;

/// The context constant folding evaluates with (only pure nodes are folded, so it is unused).
fn fold_ctx() -> EvalContext<'static> {
    EvalContext {
        op: Op::Insert,
        commit_micros: 0,
        now_micros: 0,
        datasource: "",
        database: "",
        schema: None,
        table: "",
        position: &NO_POSITION,
    }
}

fn e(span: Span, msg: impl Into<String>) -> ExprError {
    ExprError::new(span.offset, span.len, msg)
}

/// Compiles against one table.
pub(crate) struct Compiler<'s> {
    pub(crate) schema: &'s TableSchema,
}

impl Compiler<'_> {
    /// How a subexpression is named in messages.
    fn describe(&self, t: &T) -> String {
        match &t.node {
            Node::Column(i) => {
                let c = &self.schema.columns[*i];
                format!("column `{}` ({})", c.name, c.ty.sql_name())
            }
            Node::Const(Value::Null) => "NULL".into(),
            Node::Const(v @ (Value::Text(_) | Value::Bytes(_))) => format!("string {}", show(v)),
            Node::Const(v) => format!("{} {}", ty_name(&t.ty), show(v)),
            _ => format!("an expression of type {}", ty_name(&t.ty)),
        }
    }

    /// Evaluates `node` now if it only depends on constants.
    fn fold(&self, node: Node, ty: Option<ColumnType>, nullable: bool, span: Span) -> Result<T, ExprError> {
        if !node.foldable() {
            return Ok(T { node, ty, nullable, span });
        }
        match node.eval(&[], &fold_ctx()) {
            Ok(v) => {
                let v = v.into_owned();
                let nullable = v.is_null();
                Ok(T { node: Node::Const(v), ty, nullable, span })
            }
            Err(err) => Err(e(span, format!("this constant expression always fails: {}", err.message))),
        }
    }

    /// Converts a constant string to the type of `target` (numbers, booleans, dates, times,
    /// UUIDs, intervals, arrays), as a literal compared with a column of that type.
    fn coerce(&self, t: T, target: &Option<ColumnType>) -> Result<T, ExprError> {
        let Node::Const(Value::Text(s)) = &t.node else {
            return Ok(t);
        };
        let Some(target_ty) = target else {
            return Ok(t);
        };
        let Some(converted) = convert_text(s, target_ty) else {
            return Ok(t);
        };
        match converted {
            Ok(v) => {
                // An array constant has the column's element type, even when its elements are NULL.
                let ty = if class_of(target_ty) == Class::Array { Some(target_ty.clone()) } else { type_of_value(&v) };
                Ok(T { ty, node: Node::Const(v), nullable: false, span: t.span })
            }
            Err(m) => Err(e(
                t.span,
                format!("cannot convert {} to {}: {m}", show(&Value::Text(s.clone())), target_ty.sql_name()),
            )),
        }
    }

    /// Coerces string constants of a comparison to the other side's type and checks that the
    /// two sides compare.
    fn comparison(&self, l: T, r: T, span: Span) -> Result<(T, T), ExprError> {
        let r = self.coerce(r, &l.ty)?;
        let l = self.coerce(l, &r.ty)?;
        if !types_comparable(&l.ty, &r.ty) {
            return Err(e(span, format!("cannot compare {} with {}", self.describe(&l), self.describe(&r))));
        }
        Ok((l, r))
    }

    /// A comparison that orders (`<`, `BETWEEN`): both sides must be of an ordered kind.
    fn ordering(&self, l: T, r: T, what: &str, span: Span) -> Result<(T, T), ExprError> {
        let (l, r) = self.comparison(l, r, span)?;
        if let Some(a) = [&l, &r].into_iter().find(|t| class(&t.ty) == Class::Array) {
            return Err(e(
                span,
                format!(
                    "{what} is not defined for arrays ({}); arrays compare only with =, !=, <>, IN and IS NULL",
                    self.describe(a)
                ),
            ));
        }
        Ok((l, r))
    }

    /// A number operand (a string constant is converted; booleans count as 0/1).
    fn numeric(&self, t: T, what: &str) -> Result<T, ExprError> {
        let t = self.coerce(t, &Some(BIGINT))?;
        match class(&t.ty) {
            Class::Num | Class::Bool | Class::Null => Ok(t),
            _ => Err(e(t.span, format!("{what} needs a number, but {} is not one", self.describe(&t)))),
        }
    }

    /// A condition operand: boolean or number (non-zero is true).
    fn condition(&self, t: T, what: &str) -> Result<T, ExprError> {
        match class(&t.ty) {
            Class::Num | Class::Bool | Class::Null => Ok(t),
            _ => Err(e(t.span, format!("{what} needs a boolean condition, but {} is not one", self.describe(&t)))),
        }
    }

    /// A date-like operand (date, datetime, timestamp; a string constant is converted).
    fn date_like(&self, t: T, f: &str, time_ok: bool) -> Result<T, ExprError> {
        let t = if let Node::Const(Value::Text(s)) = &t.node {
            let v = match temporal::parse_civil(s) {
                Ok(c) if c.has_time => temporal::text_to_datetime(s).map(Value::DateTime),
                Ok(c) => Ok(Value::Date(c.dt.date)),
                Err(m) if time_ok => temporal::parse_time(s).map(Value::Time).map_err(|_| m),
                Err(m) => Err(m),
            }
            .map_err(|m| e(t.span, format!("{f}: cannot convert {} to a date: {m}", show(&Value::Text(s.clone())))))?;
            T { ty: type_of_value(&v), node: Node::Const(v), nullable: false, span: t.span }
        } else {
            t
        };
        match (class(&t.ty), &t.ty) {
            (Class::Temporal | Class::Null, _) => Ok(t),
            (Class::Time, _) if time_ok => Ok(t),
            (_, Some(ColumnType::Year)) if f == "year" => Ok(t),
            _ => {
                let want =
                    if time_ok { "a date, datetime, timestamp or time" } else { "a date, datetime or timestamp" };
                Err(e(t.span, format!("{f}() needs {want}, but {} is not one", self.describe(&t))))
            }
        }
    }

    /// Unifies the types of value arguments (`coalesce`, `if` branches): string constants are
    /// converted to the other arguments' type, numbers promote (int < decimal < double), text
    /// kinds become text, dates become date-times; other mixes are an error.
    fn unify(&self, ts: Vec<T>, f: &str) -> Result<(Vec<T>, Option<ColumnType>), ExprError> {
        let anchor =
            ts.iter().find(|t| !matches!(class(&t.ty), Class::Null | Class::Text | Class::Bytes)).map(|t| t.ty.clone());
        let ts = match anchor {
            Some(a) => ts.into_iter().map(|t| self.coerce(t, &a)).collect::<Result<Vec<_>, _>>()?,
            None => ts,
        };
        let typed: Vec<&T> = ts.iter().filter(|t| t.ty.is_some()).collect();
        let Some(first) = typed.first() else {
            return Ok((ts, None));
        };
        if typed.iter().all(|t| t.ty == first.ty) {
            let ty = first.ty.clone();
            return Ok((ts, ty));
        }
        let classes: Vec<Class> = typed.iter().map(|t| class(&t.ty)).collect();
        let all = |cs: &[Class]| classes.iter().all(|c| cs.contains(c));
        let (ty, conv): (ColumnType, Option<Conv>) = if all(&[Class::Num, Class::Bool]) {
            if typed.iter().any(|t| is_float(&t.ty)) {
                (ColumnType::Double, Some(Conv::Double))
            } else if typed.iter().any(|t| matches!(t.ty, Some(ColumnType::Decimal { .. })))
                || (typed.iter().any(|t| is_unsigned(&t.ty)) && !typed.iter().all(|t| is_unsigned(&t.ty)))
            {
                let scale = typed.iter().map(|t| scale_of(&t.ty)).max().unwrap_or(0);
                (ColumnType::Decimal { precision: 65, scale: scale as u8 }, Some(Conv::Decimal))
            } else if typed.iter().all(|t| is_unsigned(&t.ty)) {
                (ColumnType::Int { bits: 64, unsigned: true }, Some(Conv::UInt))
            } else {
                (BIGINT, Some(Conv::Int))
            }
        } else if all(&[Class::Text]) {
            (TEXT, Some(Conv::Text))
        } else if all(&[Class::Text, Class::Bytes]) {
            (ColumnType::Bytes { max_len: None, fixed: false }, Some(Conv::Bytes))
        } else if all(&[Class::Temporal]) {
            (ColumnType::DateTime { fsp: 6 }, Some(Conv::DateTime))
        } else {
            let a = typed.iter().find(|t| class(&t.ty) != classes[0]).expect("two classes");
            return Err(e(
                a.span,
                format!("{f}() arguments have incompatible types: {} and {}", self.describe(first), self.describe(a)),
            ));
        };
        let ts = ts
            .into_iter()
            .map(|t| {
                if t.ty.is_none() || same_kind(&t.ty, &Some(ty.clone())) {
                    return Ok(t);
                }
                let conv = conv.expect("set above");
                let T { node, nullable, span, .. } = t;
                self.fold(Node::Conv(Box::new(node), conv), Some(ty.clone()), nullable, span)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((ts, Some(ty)))
    }

    /// Compiles a tree.
    pub(crate) fn compile(&self, ast: &Ast) -> Result<T, ExprError> {
        match ast {
            Ast::Literal(l, span) => {
                let v = literal_value(l);
                Ok(T { ty: type_of_value(&v), nullable: v.is_null(), node: Node::Const(v), span: *span })
            }
            Ast::Column(name, span) => match self.schema.column_index(name) {
                Some(i) => {
                    let c = &self.schema.columns[i];
                    Ok(T { node: Node::Column(i), ty: Some(c.ty.clone()), nullable: c.nullable, span: *span })
                }
                None => {
                    let cols: Vec<String> = self.schema.columns.iter().map(|c| format!("`{}`", c.name)).collect();
                    Err(e(
                        *span,
                        format!(
                            "unknown column `{name}` in table {}; its columns are: {}",
                            self.schema.name,
                            cols.join(", ")
                        ),
                    ))
                }
            },
            Ast::Unary { op: UnaryOp::Not, operand, span } => {
                let t = self.condition(self.compile(operand)?, "NOT")?;
                self.fold(Node::Not(Box::new(t.node)), Some(ColumnType::Bool), t.nullable, *span)
            }
            Ast::Unary { op: UnaryOp::Neg, operand, span } => {
                let t = self.numeric(self.compile(operand)?, "unary -")?;
                let ty = match &t.ty {
                    Some(ty @ (ColumnType::Float | ColumnType::Double | ColumnType::Decimal { .. })) => ty.clone(),
                    None => return Ok(T { span: *span, ..t }),
                    _ => BIGINT,
                };
                self.fold(Node::Neg(Box::new(t.node)), Some(ty), t.nullable, *span)
            }
            Ast::Binary { op, left, right, span } => {
                let l = self.compile(left)?;
                let r = self.compile(right)?;
                self.binary(*op, l, r, *span)
            }
            Ast::IsNull { operand, negated, span } => {
                let t = self.compile(operand)?;
                self.fold(Node::IsNull(Box::new(t.node), *negated), Some(ColumnType::Bool), false, *span)
            }
            Ast::InList { operand, list, negated, span } => {
                let mut x = self.compile(operand)?;
                let mut nullable = x.nullable;
                let mut nodes = Vec::with_capacity(list.len());
                for item in list {
                    let (l, r) = self.comparison(x, self.compile(item)?, item.span())?;
                    x = l;
                    nullable |= r.nullable;
                    nodes.push(r.node);
                }
                self.fold(Node::In(Box::new(x.node), nodes, *negated), Some(ColumnType::Bool), nullable, *span)
            }
            Ast::Between { operand, low, high, negated, span } => {
                let x = self.compile(operand)?;
                let (x, lo) = self.ordering(x, self.compile(low)?, "BETWEEN", *span)?;
                let (x, hi) = self.ordering(x, self.compile(high)?, "BETWEEN", *span)?;
                let nullable = x.nullable || lo.nullable || hi.nullable;
                let node = Node::Between(Box::new(x.node), Box::new(lo.node), Box::new(hi.node), *negated);
                self.fold(node, Some(ColumnType::Bool), nullable, *span)
            }
            Ast::Like { operand, pattern, negated, span } => {
                let x = self.compile(operand)?;
                let p = self.compile(pattern)?;
                if !matches!(class(&p.ty), Class::Text | Class::Bytes | Class::Null) {
                    return Err(e(p.span, format!("LIKE needs a text pattern, but {} is not text", self.describe(&p))));
                }
                let nullable = x.nullable || p.nullable;
                let pat = match &p.node {
                    Node::Const(Value::Text(s)) => Pattern::Static(compile_like(s)),
                    _ => Pattern::Dynamic(Box::new(p.node)),
                };
                self.fold(Node::Like(Box::new(x.node), pat, *negated), Some(ColumnType::Bool), nullable, *span)
            }
            Ast::Call { name, args, span } => self.call(name, args, *span),
            Ast::Cast { operand, ty, span } => {
                let t = self.compile(operand)?;
                self.cast(t, *ty, *span)
            }
        }
    }

    fn binary(&self, op: BinaryOp, l: T, r: T, span: Span) -> Result<T, ExprError> {
        match op {
            BinaryOp::And | BinaryOp::Or => {
                let l = self.condition(l, op.symbol())?;
                let r = self.condition(r, op.symbol())?;
                let nullable = l.nullable || r.nullable;
                let node = if op == BinaryOp::And {
                    Node::And(Box::new(l.node), Box::new(r.node))
                } else {
                    Node::Or(Box::new(l.node), Box::new(r.node))
                };
                self.fold(node, Some(ColumnType::Bool), nullable, span)
            }
            _ if op.is_comparison() => {
                let (l, r) = match op {
                    BinaryOp::Eq | BinaryOp::Ne => self.comparison(l, r, span)?,
                    _ => self.ordering(l, r, &format!("operator {}", op.symbol()), span)?,
                };
                let nullable = l.nullable || r.nullable;
                self.fold(Node::Cmp(op, Box::new(l.node), Box::new(r.node)), Some(ColumnType::Bool), nullable, span)
            }
            _ => self.arith(op, l, r, span),
        }
    }

    fn arith(&self, op: BinaryOp, l: T, r: T, span: Span) -> Result<T, ExprError> {
        let what = format!("operator {}", op.symbol());
        let l = self.numeric(l, &what)?;
        let r = self.numeric(r, &what)?;
        let (kind, ty) = if is_float(&l.ty) || is_float(&r.ty) {
            (ArithKind::Float, ColumnType::Double)
        } else if op == BinaryOp::Div
            || matches!(l.ty, Some(ColumnType::Decimal { .. }))
            || matches!(r.ty, Some(ColumnType::Decimal { .. }))
        {
            let (a, b) = (scale_of(&l.ty), scale_of(&r.ty));
            let scale = match op {
                BinaryOp::Mul => a + b,
                BinaryOp::Div => a + 4,
                _ => a.max(b),
            }
            .min(30);
            (ArithKind::Dec, ColumnType::Decimal { precision: 65, scale: scale as u8 })
        } else {
            let unsigned = is_unsigned(&l.ty) && is_unsigned(&r.ty) && op != BinaryOp::Sub;
            (ArithKind::Int { unsigned }, ColumnType::Int { bits: 64, unsigned })
        };
        let nullable = l.nullable || r.nullable || matches!(op, BinaryOp::Div | BinaryOp::Mod);
        self.fold(Node::Arith(op, kind, Box::new(l.node), Box::new(r.node)), Some(ty), nullable, span)
    }

    fn cast(&self, t: T, ty: CastType, span: Span) -> Result<T, ExprError> {
        let c = class(&t.ty);
        let ok = match ty {
            // UUIDs, intervals and arrays become text (or JSON, or the bytes of their text).
            _ if matches!(c, Class::Uuid | Class::Interval | Class::Array) => {
                matches!(ty, CastType::Char(_) | CastType::Json | CastType::Binary(_))
            }
            CastType::Date => !matches!(c, Class::Time | Class::Bool) && !is_float(&t.ty),
            CastType::DateTime(_) | CastType::Timestamp(_) => {
                matches!(c, Class::Temporal | Class::Text | Class::Bytes | Class::Null)
            }
            CastType::Time(_) => matches!(c, Class::Time | Class::Temporal | Class::Text | Class::Bytes | Class::Null),
            _ => true,
        };
        if !ok {
            return Err(e(span, format!("cannot cast {} to {ty}", self.describe(&t))));
        }
        let out = match ty {
            CastType::Signed => BIGINT,
            CastType::Unsigned => ColumnType::Int { bits: 64, unsigned: true },
            CastType::Decimal { precision, scale } => ColumnType::Decimal { precision, scale },
            CastType::Double => ColumnType::Double,
            CastType::Float => ColumnType::Float,
            CastType::Char(n) => ColumnType::String { max_chars: n, fixed: false },
            CastType::Date => ColumnType::Date,
            CastType::DateTime(fsp) => ColumnType::DateTime { fsp },
            CastType::Timestamp(fsp) => ColumnType::Timestamp { fsp },
            CastType::Time(fsp) => ColumnType::Time { fsp },
            CastType::Json => ColumnType::Json,
            CastType::Binary(n) => ColumnType::Bytes { max_len: n, fixed: n.is_some() },
        };
        self.fold(Node::Cast(Box::new(t.node), ty), Some(out), t.nullable, span)
    }

    fn call(&self, name: &str, args: &[Ast], span: Span) -> Result<T, ExprError> {
        let name_span = Span::new(span.offset, name.len().min(span.len));
        let spec = functions::lookup(name).ok_or_else(|| {
            e(name_span, format!("unknown function '{name}'; known functions: {}", functions::known_names()))
        })?;
        if args.len() < spec.min || args.len() > spec.max {
            let (expected, last) = if spec.min == spec.max {
                (format!("{}", spec.min), spec.min)
            } else if spec.max == usize::MAX {
                (format!("at least {}", spec.min), spec.min)
            } else {
                (format!("{} to {}", spec.min, spec.max), spec.max)
            };
            return Err(e(
                span,
                format!(
                    "{name}() takes {expected} argument{} but {} {} given; usage: {}",
                    if last == 1 { "" } else { "s" },
                    args.len(),
                    if args.len() == 1 { "was" } else { "were" },
                    spec.usage
                ),
            ));
        }
        let mut ts = args.iter().map(|a| self.compile(a)).collect::<Result<Vec<T>, _>>()?;
        let f = spec.func;
        let fname = spec.name;
        let any_null = ts.iter().any(|t| t.nullable);
        let str_ty = |t: &T| match &t.ty {
            Some(ty @ ColumnType::String { .. }) => ty.clone(),
            Some(ty @ ColumnType::Bytes { .. }) => ty.clone(),
            _ => TEXT,
        };
        let (ty, nullable): (Option<ColumnType>, bool) = match f {
            Func::Now | Func::EventTime => (Some(ColumnType::Timestamp { fsp: 6 }), false),
            Func::OpType | Func::SourceDatasource | Func::SourceDatabase | Func::SourceTable | Func::SourcePosition => {
                (Some(TEXT), false)
            }
            Func::SourceSchema => (Some(TEXT), true),
            Func::Concat => (Some(TEXT), any_null),
            Func::ConcatWs => (Some(TEXT), ts[0].nullable),
            Func::Upper | Func::Lower | Func::Trim => (Some(str_ty(&ts[0])), any_null),
            Func::Replace => {
                let ty = match &ts[0].ty {
                    Some(ColumnType::Bytes { .. }) => ColumnType::Bytes { max_len: None, fixed: false },
                    _ => TEXT,
                };
                (Some(ty), any_null)
            }
            Func::Length | Func::CharLength => (Some(BIGINT), any_null),
            Func::Substring => {
                for t in ts.iter_mut().skip(1) {
                    *t = self.numeric(t.clone(), &format!("{fname}() position and length"))?;
                }
                let ty = match &ts[0].ty {
                    Some(ColumnType::String { max_chars, .. }) => {
                        ColumnType::String { max_chars: *max_chars, fixed: false }
                    }
                    Some(ColumnType::Bytes { max_len, .. }) => ColumnType::Bytes { max_len: *max_len, fixed: false },
                    _ => TEXT,
                };
                (Some(ty), any_null)
            }
            Func::Coalesce | Func::IfNull => {
                let all_null = ts.iter().all(|t| t.nullable);
                let (unified, ty) = self.unify(ts, fname)?;
                ts = unified;
                (ty, all_null)
            }
            Func::NullIf => {
                let b = ts.pop().expect("2 args");
                let a = ts.pop().expect("2 args");
                let (a, b) = self.comparison(a, b, span)?;
                let ty = a.ty.clone();
                ts = vec![a, b];
                (ty, true)
            }
            Func::If => {
                let c = ts.remove(0);
                let c = self.condition(c, "if()")?;
                let (mut branches, ty) = self.unify(ts, fname)?;
                let nullable = branches.iter().any(|t| t.nullable);
                branches.insert(0, c);
                ts = branches;
                (ty, nullable)
            }
            Func::DateFormat => {
                let t = ts.remove(0);
                let t = self.date_like(t, fname, false)?;
                let fmt = ts.pop().expect("2 args");
                if !matches!(class(&fmt.ty), Class::Text | Class::Null) {
                    return Err(e(
                        fmt.span,
                        format!("date_format() needs a text format, but {} is not text", self.describe(&fmt)),
                    ));
                }
                let zero_dates = !matches!(t.ty, Some(ColumnType::Timestamp { .. }));
                let (fmt_arg, calendar) = match &fmt.node {
                    Node::Const(Value::Text(s)) => {
                        let f = temporal::compile_format(s);
                        let cal = f.iter().any(|p| matches!(p, temporal::Fmt::Spec(c) if temporal::needs_calendar(*c)));
                        (FmtArg::Static(f), cal)
                    }
                    _ => (FmtArg::Dynamic(Box::new(fmt.node)), true),
                };
                let nullable = t.nullable || fmt.nullable || (zero_dates && calendar);
                return self.fold(Node::DateFormat(Box::new(t.node), fmt_arg), Some(TEXT), nullable, span);
            }
            Func::Year | Func::Month | Func::Day => {
                let t = ts.remove(0);
                ts.push(self.date_like(t, fname, false)?);
                (Some(INT), any_null)
            }
            Func::Hour | Func::Minute | Func::Second => {
                let t = ts.remove(0);
                ts.push(self.date_like(t, fname, true)?);
                (Some(INT), any_null)
            }
            Func::Abs | Func::Floor | Func::Ceil | Func::Round => {
                let t = ts.remove(0);
                let t = self.numeric(t, &format!("{fname}()"))?;
                let digits = match ts.pop() {
                    Some(d) => Some(self.numeric(d, &format!("{fname}() digits"))?),
                    None => None,
                };
                let ty = match (&t.ty, f) {
                    (None, _) => None,
                    (Some(ColumnType::Float), Func::Abs | Func::Floor | Func::Ceil | Func::Round) => {
                        Some(ColumnType::Float)
                    }
                    (Some(ColumnType::Double), _) => Some(ColumnType::Double),
                    (Some(ColumnType::Decimal { precision, scale }), Func::Floor | Func::Ceil) => {
                        // Precision 0 (unconstrained) stays unconstrained.
                        let p = if *precision == 0 { 0 } else { (precision.saturating_sub(*scale) + 1).min(65) };
                        Some(ColumnType::Decimal { precision: p, scale: 0 })
                    }
                    (Some(ColumnType::Decimal { precision, scale }), Func::Round) => {
                        let s = match digits.as_ref().map(|d| &d.node) {
                            Some(Node::Const(v)) => match functions::cast(v, CastType::Signed) {
                                Ok(Value::Int(d)) => d.clamp(0, 30) as u8,
                                _ => *scale,
                            },
                            Some(_) => *scale,
                            None => 0,
                        };
                        let p = if *precision == 0 { 0 } else { (*precision + 1).min(65) };
                        Some(ColumnType::Decimal { precision: p, scale: s })
                    }
                    (Some(ty @ ColumnType::Decimal { .. }), _) => Some(ty.clone()),
                    (Some(ColumnType::Int { bits, unsigned: true }), _) => {
                        Some(ColumnType::Int { bits: *bits, unsigned: true })
                    }
                    (Some(ColumnType::Bit { .. }), _) => Some(ColumnType::Int { bits: 64, unsigned: true }),
                    (Some(ColumnType::Int { .. }), Func::Abs) => Some(BIGINT),
                    (Some(ty @ ColumnType::Int { .. }), _) => Some(ty.clone()),
                    (Some(_), _) => Some(BIGINT),
                };
                ts.insert(0, t);
                ts.extend(digits);
                (ty, ts.iter().any(|t| t.nullable))
            }
            Func::Mod => {
                let r = ts.pop().expect("2 args");
                let l = ts.pop().expect("2 args");
                return self.arith(BinaryOp::Mod, l, r, span);
            }
        };
        let nodes = ts.into_iter().map(|t| t.node).collect();
        self.fold(Node::Call(f, nodes), ty, nullable, span)
    }
}

/// Whether values of the two types have the same runtime kind (no conversion needed).
fn same_kind(a: &Option<ColumnType>, b: &Option<ColumnType>) -> bool {
    use ColumnType as C;
    match (a, b) {
        (Some(C::Int { unsigned: x, .. }), Some(C::Int { unsigned: y, .. })) => x == y,
        (Some(C::Decimal { .. }), Some(C::Decimal { .. })) => true,
        (Some(C::String { .. }), Some(C::String { .. })) => true,
        (Some(C::Bytes { .. }), Some(C::Bytes { .. })) => true,
        (Some(C::DateTime { .. }), Some(C::DateTime { .. })) => true,
        (Some(C::Timestamp { .. }), Some(C::Timestamp { .. })) => true,
        (Some(C::Time { .. }), Some(C::Time { .. })) => true,
        (x, y) => x == y,
    }
}
