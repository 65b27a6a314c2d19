//! The parsed, unresolved syntax tree and its fully parenthesized printer.

use std::fmt;

/// A byte range of the source text: `offset..offset + len`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    /// Byte offset of the first byte.
    pub offset: usize,
    /// Length in bytes.
    pub len: usize,
}

impl Span {
    /// A span.
    pub const fn new(offset: usize, len: usize) -> Self {
        Span { offset, len }
    }

    /// The smallest span covering both `self` and `other`.
    pub fn to(self, other: Span) -> Span {
        let start = self.offset.min(other.offset);
        let end = (self.offset + self.len).max(other.offset + other.len);
        Span { offset: start, len: end - start }
    }
}

/// A literal as written in the source.
///
/// Numbers are classified by the lexer: an integer that fits `i64` is [`Literal::Int`], else one
/// that fits `u64` is [`Literal::UInt`], else a [`Literal::Decimal`]; a number with a fraction and
/// no exponent is a [`Literal::Decimal`] (canonical text); a number with an exponent is a
/// [`Literal::Double`]. A minus sign written directly before a number is folded into the literal.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    /// `NULL`.
    Null,
    /// `TRUE` / `FALSE`.
    Bool(bool),
    /// An integer that fits `i64`.
    Int(i64),
    /// A non-negative integer above `i64::MAX` that fits `u64`.
    UInt(u64),
    /// An exact decimal in canonical text form (see [`crate::value::canonical_decimal`]).
    Decimal(String),
    /// A float written with an exponent, e.g. `1e3`.
    Double(f64),
    /// A string in single quotes.
    String(String),
}

/// A unary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `NOT x`.
    Not,
    /// `-x`.
    Neg,
}

/// A binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `OR`.
    Or,
    /// `AND`.
    And,
    /// `=`.
    Eq,
    /// `!=` or `<>`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
    /// `%`.
    Mod,
}

impl BinaryOp {
    /// The operator as written (`!=` for [`BinaryOp::Ne`]).
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "OR",
            BinaryOp::And => "AND",
            BinaryOp::Eq => "=",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
        }
    }

    /// Whether this is one of the six comparison operators.
    pub fn is_comparison(self) -> bool {
        matches!(self, BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge)
    }
}

/// The target type of `CAST(x AS type)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CastType {
    /// `SIGNED`, `INT`, `INTEGER`, `BIGINT`: a signed 64-bit integer.
    Signed,
    /// `UNSIGNED`: an unsigned 64-bit integer.
    Unsigned,
    /// `DECIMAL(p,s)` (`DECIMAL` alone is `DECIMAL(10,0)`, `DECIMAL(p)` is `DECIMAL(p,0)`).
    Decimal {
        /// Total digits, 1..=65.
        precision: u8,
        /// Digits after the point, 0..=30 and at most `precision`.
        scale: u8,
    },
    /// `DOUBLE` or `REAL`.
    Double,
    /// `FLOAT`.
    Float,
    /// `CHAR`, `CHAR(n)`, `VARCHAR(n)`, `TEXT`: text, truncated to `n` characters if given.
    Char(Option<u32>),
    /// `DATE`.
    Date,
    /// `DATETIME(fsp)`; fractional seconds are rounded to `fsp` digits (default 0).
    DateTime(u8),
    /// `TIMESTAMP(fsp)`; fractional seconds are rounded to `fsp` digits (default 0).
    Timestamp(u8),
    /// `TIME(fsp)`; fractional seconds are rounded to `fsp` digits (default 0).
    Time(u8),
    /// `JSON`.
    Json,
    /// `BINARY` or `BINARY(n)` (padded with zero bytes or truncated to `n` bytes).
    Binary(Option<u32>),
}

impl fmt::Display for CastType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CastType::Signed => f.write_str("SIGNED"),
            CastType::Unsigned => f.write_str("UNSIGNED"),
            CastType::Decimal { precision, scale } => write!(f, "DECIMAL({precision},{scale})"),
            CastType::Double => f.write_str("DOUBLE"),
            CastType::Float => f.write_str("FLOAT"),
            CastType::Char(None) => f.write_str("CHAR"),
            CastType::Char(Some(n)) => write!(f, "CHAR({n})"),
            CastType::Date => f.write_str("DATE"),
            CastType::DateTime(0) => f.write_str("DATETIME"),
            CastType::DateTime(p) => write!(f, "DATETIME({p})"),
            CastType::Timestamp(0) => f.write_str("TIMESTAMP"),
            CastType::Timestamp(p) => write!(f, "TIMESTAMP({p})"),
            CastType::Time(0) => f.write_str("TIME"),
            CastType::Time(p) => write!(f, "TIME({p})"),
            CastType::Json => f.write_str("JSON"),
            CastType::Binary(None) => f.write_str("BINARY"),
            CastType::Binary(Some(n)) => write!(f, "BINARY({n})"),
        }
    }
}

/// A parsed expression: names are not resolved and nothing is type-checked yet.
///
/// Every node carries the [`Span`] of its source text. [`Ast::without_spans`] clears them, for
/// comparing trees that were parsed from different texts.
#[derive(Clone, Debug, PartialEq)]
pub enum Ast {
    /// A literal.
    Literal(Literal, Span),
    /// A column reference, as written (unquoted).
    Column(String, Span),
    /// `NOT x` or `-x`.
    Unary {
        /// The operator.
        op: UnaryOp,
        /// The operand.
        operand: Box<Ast>,
        /// Source span.
        span: Span,
    },
    /// `l op r`.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// Left operand.
        left: Box<Ast>,
        /// Right operand.
        right: Box<Ast>,
        /// Source span.
        span: Span,
    },
    /// `x IS [NOT] NULL`.
    IsNull {
        /// The tested expression.
        operand: Box<Ast>,
        /// `IS NOT NULL`.
        negated: bool,
        /// Source span.
        span: Span,
    },
    /// `x [NOT] IN (a, b, ...)`.
    InList {
        /// The tested expression.
        operand: Box<Ast>,
        /// The list (never empty).
        list: Vec<Ast>,
        /// `NOT IN`.
        negated: bool,
        /// Source span.
        span: Span,
    },
    /// `x [NOT] BETWEEN low AND high`.
    Between {
        /// The tested expression.
        operand: Box<Ast>,
        /// Lower bound (inclusive).
        low: Box<Ast>,
        /// Upper bound (inclusive).
        high: Box<Ast>,
        /// `NOT BETWEEN`.
        negated: bool,
        /// Source span.
        span: Span,
    },
    /// `x [NOT] LIKE pattern`.
    Like {
        /// The tested expression.
        operand: Box<Ast>,
        /// The pattern: `%` any run, `_` one character, `\` escapes.
        pattern: Box<Ast>,
        /// `NOT LIKE`.
        negated: bool,
        /// Source span.
        span: Span,
    },
    /// A function call `name(args)`; the name is stored in lower case.
    Call {
        /// Function name, lower case.
        name: String,
        /// Arguments.
        args: Vec<Ast>,
        /// Source span.
        span: Span,
    },
    /// `CAST(x AS type)` (also the typed literals `DATE '...'`, `TIME '...'`, `TIMESTAMP '...'`).
    Cast {
        /// The converted expression.
        operand: Box<Ast>,
        /// Target type.
        ty: CastType,
        /// Source span.
        span: Span,
    },
}

impl Ast {
    /// Whether the expression calls any of `names` (lower case) anywhere in its tree.
    pub fn calls_any(&self, names: &[&str]) -> bool {
        let any = |v: &[Ast]| v.iter().any(|a| a.calls_any(names));
        match self {
            Ast::Literal(..) | Ast::Column(..) => false,
            Ast::Unary { operand, .. } | Ast::IsNull { operand, .. } | Ast::Cast { operand, .. } => {
                operand.calls_any(names)
            }
            Ast::Binary { left, right, .. } => left.calls_any(names) || right.calls_any(names),
            Ast::InList { operand, list, .. } => operand.calls_any(names) || any(list),
            Ast::Between { operand, low, high, .. } => {
                operand.calls_any(names) || low.calls_any(names) || high.calls_any(names)
            }
            Ast::Like { operand, pattern, .. } => operand.calls_any(names) || pattern.calls_any(names),
            Ast::Call { name, args, .. } => names.contains(&name.as_str()) || any(args),
        }
    }

    /// The source span of this node.
    pub fn span(&self) -> Span {
        match self {
            Ast::Literal(_, s) | Ast::Column(_, s) => *s,
            Ast::Unary { span, .. }
            | Ast::Binary { span, .. }
            | Ast::IsNull { span, .. }
            | Ast::InList { span, .. }
            | Ast::Between { span, .. }
            | Ast::Like { span, .. }
            | Ast::Call { span, .. }
            | Ast::Cast { span, .. } => *span,
        }
    }

    /// The same tree with every span set to `Span::default()`.
    pub fn without_spans(&self) -> Ast {
        let b = |a: &Ast| Box::new(a.without_spans());
        let z = Span::default();
        match self {
            Ast::Literal(l, _) => Ast::Literal(l.clone(), z),
            Ast::Column(c, _) => Ast::Column(c.clone(), z),
            Ast::Unary { op, operand, .. } => Ast::Unary { op: *op, operand: b(operand), span: z },
            Ast::Binary { op, left, right, .. } => Ast::Binary { op: *op, left: b(left), right: b(right), span: z },
            Ast::IsNull { operand, negated, .. } => Ast::IsNull { operand: b(operand), negated: *negated, span: z },
            Ast::InList { operand, list, negated, .. } => Ast::InList {
                operand: b(operand),
                list: list.iter().map(Ast::without_spans).collect(),
                negated: *negated,
                span: z,
            },
            Ast::Between { operand, low, high, negated, .. } => {
                Ast::Between { operand: b(operand), low: b(low), high: b(high), negated: *negated, span: z }
            }
            Ast::Like { operand, pattern, negated, .. } => {
                Ast::Like { operand: b(operand), pattern: b(pattern), negated: *negated, span: z }
            }
            Ast::Call { name, args, .. } => {
                Ast::Call { name: name.clone(), args: args.iter().map(Ast::without_spans).collect(), span: z }
            }
            Ast::Cast { operand, ty, .. } => Ast::Cast { operand: b(operand), ty: *ty, span: z },
        }
    }
}

/// Writes `s` as a single-quoted SQL string (`'` doubled).
pub(crate) fn write_quoted(f: &mut impl fmt::Write, s: &str, quote: char) -> fmt::Result {
    f.write_char(quote)?;
    for c in s.chars() {
        if c == quote {
            f.write_char(quote)?;
        }
        f.write_char(c)?;
    }
    f.write_char(quote)
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => f.write_str("NULL"),
            Literal::Bool(true) => f.write_str("TRUE"),
            Literal::Bool(false) => f.write_str("FALSE"),
            Literal::Int(i) => write!(f, "{i}"),
            Literal::UInt(u) => write!(f, "{u}"),
            Literal::Decimal(d) => f.write_str(d),
            // The shortest exponent form round-trips and always re-lexes as a float.
            Literal::Double(x) => write!(f, "{x:e}"),
            Literal::String(s) => write_quoted(f, s, '\''),
        }
    }
}

/// Prints the expression fully parenthesized, so that parsing the text gives the same tree
/// (spans aside). Columns are always backquoted.
impl fmt::Display for Ast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let not = |n: bool| if n { " NOT" } else { "" };
        match self {
            Ast::Literal(l, _) => write!(f, "{l}"),
            Ast::Column(c, _) => write_quoted(f, c, '`'),
            Ast::Unary { op: UnaryOp::Not, operand, .. } => write!(f, "(NOT {operand})"),
            Ast::Unary { op: UnaryOp::Neg, operand, .. } => write!(f, "(-({operand}))"),
            Ast::Binary { op, left, right, .. } => write!(f, "({left} {} {right})", op.symbol()),
            Ast::IsNull { operand, negated, .. } => {
                write!(f, "({operand} IS{} NULL)", not(*negated))
            }
            Ast::InList { operand, list, negated, .. } => {
                write!(f, "({operand}{} IN (", not(*negated))?;
                for (i, a) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str("))")
            }
            Ast::Between { operand, low, high, negated, .. } => {
                write!(f, "({operand}{} BETWEEN {low} AND {high})", not(*negated))
            }
            Ast::Like { operand, pattern, negated, .. } => {
                write!(f, "({operand}{} LIKE {pattern})", not(*negated))
            }
            Ast::Call { name, args, .. } => {
                write!(f, "{name}(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
            Ast::Cast { operand, ty, .. } => write!(f, "CAST({operand} AS {ty})"),
        }
    }
}
