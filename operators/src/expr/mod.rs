//! The expression language of row filters and function fields (F4.3).
//!
//! An expression is SQL-like text such as `amount > 100 AND status IN ('a', 'b')` or
//! `concat(upper(code), '-', id)`. [`parse`] turns text into an [`Ast`]; [`Expr::compile`]
//! resolves column names against one [`TableSchema`], type-checks, converts literals and folds
//! constants, so that [`Expr::eval`] does no name lookup, no parsing, and no allocation for
//! comparisons of numbers and dates.
//!
//! # Grammar
//!
//! Keywords are case-insensitive. From lowest to highest precedence:
//!
//! ```text
//! expr      := or
//! or        := and ( OR and )*
//! and       := not ( AND not )*
//! not       := NOT not | predicate
//! predicate := additive ( cmp additive
//!                       | IS [NOT] NULL
//!                       | [NOT] IN ( expr, ... )
//!                       | [NOT] BETWEEN additive AND additive
//!                       | [NOT] LIKE additive )*
//! cmp       := = | != | <> | < | > | <= | >=
//! additive  := multiplicative ( (+ | -) multiplicative )*
//! multiplicative := unary ( (* | / | %) unary )*
//! unary     := - unary | + unary | primary
//! primary   := literal | column | name ( [expr, ...] ) | CAST ( expr AS type )
//!            | DATE 'text' | TIME 'text' | TIMESTAMP 'text' | ( expr )
//! ```
//!
//! - Literals: integers (`Int` if they fit `i64`, else `UInt` if they fit `u64`, else an exact
//!   `Decimal`); decimals `1.50` (exact [`Value::Decimal`], canonical text, at most 65 digits);
//!   floats with an exponent `1e3` (`Double`); strings in single quotes with `''` for a quote
//!   (backslashes are not escapes in strings, but they are in `LIKE` patterns); `TRUE`, `FALSE`,
//!   `NULL`. A minus written directly before a number is part of the literal.
//! - Columns: bare identifiers (`amount`), or quoted with backquotes (`` `order id` ``) or double
//!   quotes (`"order id"`), a doubled quote standing for itself. Names are resolved with
//!   [`TableSchema::column_index`]. `AND OR NOT IS IN BETWEEN LIKE TRUE FALSE NULL` are reserved
//!   and must be quoted to be used as column names.
//! - `CAST` types: `SIGNED [INTEGER]`, `INT`, `INTEGER`, `BIGINT`, `UNSIGNED [INTEGER]`,
//!   `DECIMAL[(p[,s])]` (default `(10,0)`), `DOUBLE`, `REAL`, `FLOAT`, `CHAR[(n)]`, `VARCHAR(n)`,
//!   `TEXT`, `DATE`, `DATETIME[(fsp)]`, `TIMESTAMP[(fsp)]`, `TIME[(fsp)]` (fsp defaults to 0 and
//!   fractional seconds are rounded, as MySQL does), `JSON`, `BINARY[(n)]` (`n` at most [`MAX_BINARY_LEN`]).
//! - Trees deeper than [`MAX_DEPTH`] are rejected (an error, never a stack overflow).
//!
//! # Typing
//!
//! Every column has its schema type; every subexpression gets a static type ([`Expr::ty`]) and
//! a nullability ([`Expr::nullable`]). Types fall in classes: numbers (integers, decimals,
//! floats, `BIT`, `YEAR`, and booleans as 0/1), text (strings, `ENUM`, `SET`, `JSON` and the
//! source types carried as text, [`ColumnType::Other`], as their text; bytes compare with text
//! byte-wise), date-likes (`DATE`, `DATETIME`, `TIMESTAMP`), `TIME`, `UUID`, `INTERVAL` and
//! arrays. Comparing values of different classes, or arrays whose element classes differ, is a
//! compile error.
//!
//! - Numbers compare numerically across kinds, exactly between integers (signed and unsigned)
//!   and decimals of any length, exactly between doubles and integers, via `f64` between doubles
//!   and decimals. NaN equals NaN and sorts above every number. PostgreSQL's special decimals
//!   order as PostgreSQL does: `-Infinity` < every number < `Infinity` < `NaN`; arithmetic on
//!   them follows IEEE doubles and gives a special or exact decimal (`Infinity - Infinity` is
//!   `NaN`, `1 / Infinity` is `0`); `abs`, `round`, `floor`, `ceil` keep them; a cast to an
//!   integer fails.
//! - Text compares by bytes (case-sensitive; no collation). `LIKE` is case-sensitive and works
//!   on characters: `%` any run, `_` one character, `\` escapes.
//! - Date-likes compare by their civil fields, timestamps read in UTC; a date equals the same
//!   date-time at midnight; a zero date sorts before the first day of its year (so MySQL's
//!   `0000-00-00` first among MySQL dates); years may be negative (astronomical: `0000` is 1
//!   BC) or past 9999; PostgreSQL's `infinity` and `-infinity` sort after and before every
//!   other value. `year()` .. `second()` of an infinity, or its cast to a number, is an
//!   [`EvalError`]; `date_format` of an infinity gives `'infinity'` or `'-infinity'`.
//! - UUIDs compare by their bytes (the order of their text). Intervals compare as PostgreSQL
//!   compares them: a month counts 30 days and a day 24 hours, so `'1 mon' = '30 days'` is
//!   true (the values stay distinct in the row). Arrays compare only with `=`, `!=`/`<>`,
//!   `IN` and `nullif`, element by element: NULL elements equal each other (PostgreSQL's
//!   array equality), arrays of different lengths or dimensions differ; `<`, `>`, `<=`, `>=`
//!   and `BETWEEN` on arrays are compile errors.
//! - A string constant compared with (or `IN`/`BETWEEN`/`coalesce`'d with) a number, boolean,
//!   date-like, time, UUID, interval or array is converted **at compile time** to that type:
//!   `created_at >= '2024-01-01'`, `id = '5'`, `u = 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'`,
//!   `wait > '1 day 02:00:00'`, `tags = '{a,"b c"}'` work, and `'2024-13-01'` is a compile error
//!   pointing at the literal. Date-time text is `[-]YYYY-MM-DD[ HH:MM[:SS[.ffffff]]]` (years of
//!   4 to 7 digits), `T` also separates, or `infinity`/`-infinity`; text for timestamps is UTC
//!   unless it ends in `Z` or `±HH:MM`. Booleans also read `true`/`false`/`t`/`f`; decimal and
//!   float columns also read `NaN`, `Infinity`, `-Infinity` (any case, `inf`). UUID text is
//!   PostgreSQL's ([`crate::value::parse_uuid`]), interval text PostgreSQL's output or ISO 8601
//!   ([`crate::value::Interval::parse`]), array text PostgreSQL's (`{1,2,NULL}`, `{{1,2},{3,4}}`,
//!   [`crate::value::parse_array`]) with each element converted to the element type. A number
//!   compared with a text column is a compile error (quote it).
//! - Arithmetic (`+ - * / %`): any double operand gives `DOUBLE`; else any decimal operand, or
//!   `/`, gives an exact `DECIMAL` (`/` has the dividend's scale + 4, as MySQL's
//!   `div_precision_increment`); else integers give `BIGINT` (`BIGINT UNSIGNED` when both are
//!   unsigned, except for `-`). An integer result outside the static type's range is **promoted
//!   to an exact `DECIMAL`** instead of overflowing. Division or modulo by zero is **NULL**
//!   (MySQL's behaviour). A double result out of range is an [`EvalError`].
//! - Conditions (`AND`, `OR`, `NOT`, `if()`) take booleans or numbers (non-zero is true).
//! - Constant subexpressions are evaluated once at compile time; one that always fails (e.g.
//!   `CAST('abc' AS SIGNED)`) is a compile error.
//!
//! # NULL
//!
//! SQL three-valued logic: a comparison, `IN`, `BETWEEN` or `LIKE` involving NULL is NULL
//! (unknown); `NULL AND FALSE` is false, `NULL OR TRUE` is true, `NOT NULL` is NULL; `x IN (1,
//! NULL)` is true when x = 1 and NULL otherwise. Arithmetic and functions return NULL when an
//! argument is NULL unless noted below. [`Expr::eval_bool`] maps NULL to false, so a row filter
//! drops rows whose condition is unknown.
//!
//! # Functions
//!
//! Names are case-insensitive. "NULL if any argument is NULL" applies unless the table says
//! otherwise. Runtime failures are [`EvalError`]s naming the function and the offending value.
//!
//! | function | result | notes |
//! |---|---|---|
//! | `now()` | `TIMESTAMP(6)` | `EvalContext::now_micros` |
//! | `concat(a, b, ...)` | `TEXT` | values rendered with `Value`'s `Display`; NULL if any argument is NULL (MySQL) |
//! | `concat_ws(sep, a, ...)` | `TEXT` | skips NULL arguments; NULL only if `sep` is NULL |
//! | `upper(s)`, `lower(s)` | type of `s` | Unicode case mapping; bytes unchanged |
//! | `trim(s)` | type of `s` | removes leading and trailing spaces (only `' '`) |
//! | `length(s)` | `BIGINT` | length in bytes (UTF-8) |
//! | `char_length(s)` | `BIGINT` | length in characters (bytes for binary) |
//! | `substring(s, pos[, len])`, `substr` | text | 1-based, in characters; negative `pos` counts from the end; `pos` 0, `len` < 1 or past the end give `''` (MySQL) |
//! | `replace(s, from, to)` | `TEXT` | case-sensitive; empty `from` leaves `s` unchanged |
//! | `coalesce(a, b, ...)` | unified | first non-NULL argument |
//! | `ifnull(a, b)` | unified | `coalesce(a, b)` |
//! | `nullif(a, b)` | type of `a` | NULL if `a = b`, else `a` |
//! | `if(cond, a, b)` | unified | `a` if `cond` is true, else `b` (NULL counts as false) |
//! | `CAST(x AS type)` | the type | strict: `'abc'` to `SIGNED` is an error (MySQL would warn and give 0); numbers round half away from zero; `DECIMAL(p,s)` out of range is an error; dates to numbers as `YYYYMMDD[hhmmss]`; UUIDs, intervals and arrays cast only to `CHAR` (their `Display` text: PostgreSQL's), `JSON` (their [`crate::json`] encoding) and `BINARY` |
//! | `date_format(t, fmt)` | `TEXT` | `t`: date, datetime, timestamp (UTC); specifiers `%Y %y %m %c %d %e %H %k %h %I %l %i %s %S %f %p %r %T %W %a %w %M %b %j %D %U %u %v %x %%`; an unknown specifier `%q` gives `q` (MySQL); NULL when a weekday, day-of-year, week or month-name specifier meets a zero date |
//! | `year(t)`, `month(t)`, `day(t)` | `INT` | of a date-like (`year` also of `YEAR`) |
//! | `hour(t)`, `minute(t)`, `second(t)` | `INT` | of a date-like or time (hours of a time may exceed 23) |
//! | `abs(x)` | type of `x` | |
//! | `round(x[, d])` | type of `x` (decimals: scale `d`) | half away from zero (doubles too); `d` may be negative |
//! | `floor(x)`, `ceil(x)`, `ceiling(x)` | type of `x` (decimals: scale 0) | |
//! | `mod(a, b)` | as `a % b` | sign of `a`; NULL when `b` is 0 |
//! | `op_type()` | `TEXT` | `'insert'`, `'update'` or `'delete'` |
//! | `event_time()` | `TIMESTAMP(6)` | commit time at the source |
//! | `source_datasource()`, `source_database()`, `source_table()` | `TEXT` | never NULL |
//! | `source_schema()` | `TEXT` | NULL for sources without schemas (MySQL) |
//! | `source_position()` | `TEXT` | the change's [`Position`], e.g. `3:1042` |
//!
//! "Unified" means the arguments' common type: string constants are converted to the other
//! arguments' type; integers, decimals and doubles promote to the widest (signed with unsigned
//! gives `DECIMAL`); text kinds give `TEXT`; dates, date-times and timestamps give `DATETIME(6)`;
//! other mixes are a compile error.

mod ast;
mod compile;
mod eval;
mod functions;
mod lexer;
mod num;
mod parser;
mod temporal;

#[cfg(test)]
mod tests;

pub use ast::{Ast, BinaryOp, CastType, Literal, Span, UnaryOp};
pub use parser::{parse, MAX_BINARY_LEN, MAX_DEPTH};

use crate::change::{Op, Position};
use crate::schema::{ColumnType, TableSchema};
use crate::value::Value;

/// A parse or compile error, with the byte span of the offending source text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at byte {offset})")]
pub struct ExprError {
    /// Byte offset of the offending text in the source.
    pub offset: usize,
    /// Length in bytes of the offending text (0 at the end of input).
    pub len: usize,
    /// What is wrong.
    pub message: String,
}

impl ExprError {
    /// An error at `offset..offset + len`.
    pub fn new(offset: usize, len: usize, message: impl Into<String>) -> Self {
        ExprError { offset, len, message: message.into() }
    }
}

/// A runtime failure for one row (e.g. `CAST('abc' AS SIGNED)`); the message names the
/// function and the offending value. The engine sends such rows to the dirty-data archive.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    /// What failed, with the function and the value.
    pub message: String,
}

impl EvalError {
    /// An error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        EvalError { message: message.into() }
    }
}

/// What an expression may read besides the row: the change's metadata and the clock.
#[derive(Clone, Copy, Debug)]
pub struct EvalContext<'a> {
    /// The change's operation (`op_type()`).
    pub op: Op,
    /// Commit time at the source, microseconds since the epoch (`event_time()`).
    pub commit_micros: i64,
    /// The current time, microseconds since the epoch (`now()`).
    pub now_micros: i64,
    /// The source datasource name (`source_datasource()`).
    pub datasource: &'a str,
    /// The source database (`source_database()`).
    pub database: &'a str,
    /// The source schema, if the source has schemas (`source_schema()`).
    pub schema: Option<&'a str>,
    /// The source table (`source_table()`).
    pub table: &'a str,
    /// The change's source position (`source_position()`).
    pub position: &'a Position,
}

/// An expression compiled against one table schema: columns are indexes, literals are
/// converted values, constant subexpressions are folded.
#[derive(Clone, Debug)]
pub struct Expr {
    root: eval::Node,
    ty: Option<ColumnType>,
    nullable: bool,
    columns: Vec<usize>,
}

impl Expr {
    /// Parses `src`, resolves its columns in `schema`, type-checks it and converts literals.
    pub fn compile(src: &str, schema: &TableSchema) -> Result<Expr, ExprError> {
        let ast = parse(src)?;
        Self::from_ast(&ast, schema)
    }

    /// Compiles an already parsed tree (spans in errors refer to the tree's source text).
    pub fn from_ast(ast: &Ast, schema: &TableSchema) -> Result<Expr, ExprError> {
        let t = compile::Compiler { schema }.compile(ast)?;
        let mut columns = Vec::new();
        t.node.collect_columns(&mut columns);
        columns.sort_unstable();
        columns.dedup();
        Ok(Expr { root: t.node, ty: t.ty, nullable: t.nullable, columns })
    }

    /// Evaluates the expression on a row (values in the schema's column order).
    pub fn eval(&self, row: &[Value], ctx: &EvalContext<'_>) -> Result<Value, EvalError> {
        Ok(self.root.eval(row, ctx)?.into_owned())
    }

    /// Evaluates the expression as a row filter: NULL and false are `false`. Numbers are true
    /// when non-zero; other values are an error.
    pub fn eval_bool(&self, row: &[Value], ctx: &EvalContext<'_>) -> Result<bool, EvalError> {
        Ok(self.root.truth(row, ctx)? == Some(true))
    }

    /// The static result type (best effort: e.g. an integer result promoted to a decimal on
    /// overflow still reports its integer type). The NULL literal reports `TEXT`.
    pub fn ty(&self) -> ColumnType {
        self.ty.clone().unwrap_or(ColumnType::String { max_chars: None, fixed: false })
    }

    /// Whether the result can be NULL.
    pub fn nullable(&self) -> bool {
        self.nullable
    }

    /// The indexes of the columns the expression reads, ascending, without duplicates.
    pub fn columns(&self) -> Vec<usize> {
        self.columns.clone()
    }

    /// The constant value of the expression, if it reads no column and no context.
    pub fn constant(&self) -> Option<&Value> {
        match &self.root {
            eval::Node::Const(v) => Some(v),
            _ => None,
        }
    }
}
