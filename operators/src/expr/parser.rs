//! Recursive-descent parser: tokens to [`Ast`].

use super::ast::{Ast, BinaryOp, CastType, Literal, Span, UnaryOp};
use super::lexer::{tokenize, Sym, Tok};
use super::ExprError;

/// Deepest tree the parser builds (and deepest parenthesis nesting it follows); deeper input is
/// an error rather than a stack overflow anywhere later.
pub const MAX_DEPTH: u32 = 200;

/// Largest `n` of `CAST(x AS BINARY(n))` (the result is padded to `n` bytes).
pub const MAX_BINARY_LEN: u32 = 65_535;

/// Words that cannot be bare column names.
const RESERVED: &[&str] = &["AND", "OR", "NOT", "IS", "IN", "BETWEEN", "LIKE", "TRUE", "FALSE", "NULL"];

/// Whether `word` is a reserved keyword (case-insensitive).
pub(crate) fn is_reserved(word: &str) -> bool {
    RESERVED.iter().any(|k| k.eq_ignore_ascii_case(word))
}

/// Parses an expression.
pub fn parse(src: &str) -> Result<Ast, ExprError> {
    let toks = tokenize(src)?;
    let mut p = Parser { toks, pos: 0 };
    let e = p.expr(0)?;
    if p.peek() != &Tok::Eof {
        return Err(p.unexpected("an operator or end of input"));
    }
    Ok(e.ast)
}

/// A subtree with its depth.
struct P {
    ast: Ast,
    depth: u32,
}

struct Parser {
    toks: Vec<(Tok, Span)>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].0
    }

    fn peek_at(&self, n: usize) -> &Tok {
        &self.toks[(self.pos + n).min(self.toks.len() - 1)].0
    }

    fn span(&self) -> Span {
        self.toks[self.pos].1
    }

    fn bump(&mut self) -> (Tok, Span) {
        let t = self.toks[self.pos].clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn unexpected(&self, expected: &str) -> ExprError {
        let (tok, span) = &self.toks[self.pos];
        ExprError::new(span.offset, span.len, format!("expected {expected}, found {}", tok.describe()))
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Ident(w) if w.eq_ignore_ascii_case(kw))
    }

    fn is_kw_at(&self, n: usize, kw: &str) -> bool {
        matches!(self.peek_at(n), Tok::Ident(w) if w.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        let yes = self.is_kw(kw);
        if yes {
            self.bump();
        }
        yes
    }

    fn expect_kw(&mut self, kw: &str) -> Result<Span, ExprError> {
        if self.is_kw(kw) {
            Ok(self.bump().1)
        } else {
            Err(self.unexpected(kw))
        }
    }

    fn is_sym(&self, s: Sym) -> bool {
        self.peek() == &Tok::Sym(s)
    }

    fn expect_sym(&mut self, s: Sym) -> Result<Span, ExprError> {
        if self.is_sym(s) {
            Ok(self.bump().1)
        } else {
            Err(self.unexpected(&format!("'{}'", s.text())))
        }
    }

    fn nest(&self, nest: u32) -> Result<u32, ExprError> {
        if nest >= MAX_DEPTH {
            let s = self.span();
            return Err(ExprError::new(
                s.offset,
                s.len,
                format!("expression is nested too deeply (more than {MAX_DEPTH} levels)"),
            ));
        }
        Ok(nest + 1)
    }

    /// Wraps a new node whose children have depth `child_depth`.
    fn node(&self, ast: Ast, child_depth: u32) -> Result<P, ExprError> {
        let depth = child_depth + 1;
        if depth > MAX_DEPTH {
            let s = ast.span();
            return Err(ExprError::new(
                s.offset,
                s.len,
                format!("expression is nested too deeply (more than {MAX_DEPTH} levels)"),
            ));
        }
        Ok(P { ast, depth })
    }

    fn expr(&mut self, nest: u32) -> Result<P, ExprError> {
        let nest = self.nest(nest)?;
        let mut left = self.and(nest)?;
        while self.eat_kw("OR") {
            let right = self.and(nest)?;
            left = self.binary(BinaryOp::Or, left, right)?;
        }
        Ok(left)
    }

    fn binary(&self, op: BinaryOp, left: P, right: P) -> Result<P, ExprError> {
        let span = left.ast.span().to(right.ast.span());
        let d = left.depth.max(right.depth);
        self.node(Ast::Binary { op, left: Box::new(left.ast), right: Box::new(right.ast), span }, d)
    }

    fn and(&mut self, nest: u32) -> Result<P, ExprError> {
        let mut left = self.not(nest)?;
        while self.eat_kw("AND") {
            let right = self.not(nest)?;
            left = self.binary(BinaryOp::And, left, right)?;
        }
        Ok(left)
    }

    fn not(&mut self, nest: u32) -> Result<P, ExprError> {
        if self.is_kw("NOT") {
            let start = self.bump().1;
            let nest = self.nest(nest)?;
            let operand = self.not(nest)?;
            let span = start.to(operand.ast.span());
            let d = operand.depth;
            return self.node(Ast::Unary { op: UnaryOp::Not, operand: Box::new(operand.ast), span }, d);
        }
        self.predicate(nest)
    }

    fn predicate(&mut self, nest: u32) -> Result<P, ExprError> {
        let mut left = self.additive(nest)?;
        loop {
            let cmp = match self.peek() {
                Tok::Sym(Sym::Eq) => Some(BinaryOp::Eq),
                Tok::Sym(Sym::Ne) => Some(BinaryOp::Ne),
                Tok::Sym(Sym::Lt) => Some(BinaryOp::Lt),
                Tok::Sym(Sym::Le) => Some(BinaryOp::Le),
                Tok::Sym(Sym::Gt) => Some(BinaryOp::Gt),
                Tok::Sym(Sym::Ge) => Some(BinaryOp::Ge),
                _ => None,
            };
            if let Some(op) = cmp {
                self.bump();
                let right = self.additive(nest)?;
                left = self.binary(op, left, right)?;
                continue;
            }
            if self.is_kw("IS") {
                self.bump();
                let negated = self.eat_kw("NOT");
                let end = self.expect_kw("NULL")?;
                let span = left.ast.span().to(end);
                let d = left.depth;
                left = self.node(Ast::IsNull { operand: Box::new(left.ast), negated, span }, d)?;
                continue;
            }
            let negated = self.is_kw("NOT")
                && (self.is_kw_at(1, "IN") || self.is_kw_at(1, "BETWEEN") || self.is_kw_at(1, "LIKE"));
            if negated {
                self.bump();
            }
            if self.eat_kw("IN") {
                self.expect_sym(Sym::LParen)?;
                let inner = self.nest(nest)?;
                let mut list = Vec::new();
                let mut d = left.depth;
                loop {
                    let e = self.expr(inner)?;
                    d = d.max(e.depth);
                    list.push(e.ast);
                    if !self.is_sym(Sym::Comma) {
                        break;
                    }
                    self.bump();
                }
                let end = self.expect_sym(Sym::RParen)?;
                let span = left.ast.span().to(end);
                left = self.node(Ast::InList { operand: Box::new(left.ast), list, negated, span }, d)?;
            } else if self.eat_kw("BETWEEN") {
                let low = self.additive(nest)?;
                self.expect_kw("AND")?;
                let high = self.additive(nest)?;
                let span = left.ast.span().to(high.ast.span());
                let d = left.depth.max(low.depth).max(high.depth);
                let ast = Ast::Between {
                    operand: Box::new(left.ast),
                    low: Box::new(low.ast),
                    high: Box::new(high.ast),
                    negated,
                    span,
                };
                left = self.node(ast, d)?;
            } else if self.eat_kw("LIKE") {
                let pattern = self.additive(nest)?;
                let span = left.ast.span().to(pattern.ast.span());
                let d = left.depth.max(pattern.depth);
                let ast = Ast::Like { operand: Box::new(left.ast), pattern: Box::new(pattern.ast), negated, span };
                left = self.node(ast, d)?;
            } else {
                return Ok(left);
            }
        }
    }

    fn additive(&mut self, nest: u32) -> Result<P, ExprError> {
        let mut left = self.multiplicative(nest)?;
        loop {
            let op = match self.peek() {
                Tok::Sym(Sym::Plus) => BinaryOp::Add,
                Tok::Sym(Sym::Minus) => BinaryOp::Sub,
                _ => return Ok(left),
            };
            self.bump();
            let right = self.multiplicative(nest)?;
            left = self.binary(op, left, right)?;
        }
    }

    fn multiplicative(&mut self, nest: u32) -> Result<P, ExprError> {
        let mut left = self.unary(nest)?;
        loop {
            let op = match self.peek() {
                Tok::Sym(Sym::Star) => BinaryOp::Mul,
                Tok::Sym(Sym::Slash) => BinaryOp::Div,
                Tok::Sym(Sym::Percent) => BinaryOp::Mod,
                _ => return Ok(left),
            };
            self.bump();
            let right = self.unary(nest)?;
            left = self.binary(op, left, right)?;
        }
    }

    fn unary(&mut self, nest: u32) -> Result<P, ExprError> {
        match self.peek() {
            Tok::Sym(Sym::Minus) => {
                let start = self.bump().1;
                // A minus written directly before a number is part of the literal.
                if let Tok::Number(lit) = self.peek().clone() {
                    let end = self.bump().1;
                    let span = start.to(end);
                    return Ok(P { ast: Ast::Literal(negate(lit), span), depth: 1 });
                }
                let nest = self.nest(nest)?;
                let operand = self.unary(nest)?;
                let span = start.to(operand.ast.span());
                let d = operand.depth;
                self.node(Ast::Unary { op: UnaryOp::Neg, operand: Box::new(operand.ast), span }, d)
            }
            Tok::Sym(Sym::Plus) => {
                self.bump();
                let nest = self.nest(nest)?;
                self.unary(nest)
            }
            _ => self.primary(nest),
        }
    }

    fn primary(&mut self, nest: u32) -> Result<P, ExprError> {
        let (tok, span) = (self.peek().clone(), self.span());
        let leaf = |ast| Ok(P { ast, depth: 1 });
        match tok {
            Tok::Number(lit) => {
                self.bump();
                leaf(Ast::Literal(lit, span))
            }
            Tok::Str(s) => {
                self.bump();
                leaf(Ast::Literal(Literal::String(s), span))
            }
            Tok::Quoted(name) => {
                self.bump();
                leaf(Ast::Column(name, span))
            }
            Tok::Sym(Sym::LParen) => {
                self.bump();
                let inner = self.expr(nest)?;
                let end = self.expect_sym(Sym::RParen)?;
                // Parentheses only group; widen the span to include them.
                let mut ast = inner.ast;
                set_span(&mut ast, span.to(end));
                Ok(P { ast, depth: inner.depth })
            }
            Tok::Ident(word) => {
                let upper = word.to_ascii_uppercase();
                match upper.as_str() {
                    "TRUE" | "FALSE" | "NULL" => {
                        self.bump();
                        let lit = match upper.as_str() {
                            "TRUE" => Literal::Bool(true),
                            "FALSE" => Literal::Bool(false),
                            _ => Literal::Null,
                        };
                        return leaf(Ast::Literal(lit, span));
                    }
                    "DATE" | "TIME" | "TIMESTAMP" | "DATETIME" if matches!(self.peek_at(1), Tok::Str(_)) => {
                        self.bump();
                        let (tok, lspan) = self.bump();
                        let Tok::Str(s) = tok else { unreachable!("checked above") };
                        let ty = match upper.as_str() {
                            "DATE" => CastType::Date,
                            "TIME" => CastType::Time(6),
                            "TIMESTAMP" => CastType::Timestamp(6),
                            _ => CastType::DateTime(6),
                        };
                        let operand = Box::new(Ast::Literal(Literal::String(s), lspan));
                        return self.node(Ast::Cast { operand, ty, span: span.to(lspan) }, 1);
                    }
                    "CAST" if self.peek_at(1) == &Tok::Sym(Sym::LParen) => {
                        self.bump();
                        self.bump();
                        let nest = self.nest(nest)?;
                        let operand = self.expr(nest)?;
                        self.expect_kw("AS")?;
                        let ty = self.cast_type()?;
                        let end = self.expect_sym(Sym::RParen)?;
                        let d = operand.depth;
                        return self.node(Ast::Cast { operand: Box::new(operand.ast), ty, span: span.to(end) }, d);
                    }
                    _ => {}
                }
                if is_reserved(&word) {
                    return Err(self.unexpected("an expression"));
                }
                self.bump();
                if !self.is_sym(Sym::LParen) {
                    return leaf(Ast::Column(word, span));
                }
                self.bump();
                let nest = self.nest(nest)?;
                let mut args = Vec::new();
                let mut d = 0;
                if !self.is_sym(Sym::RParen) {
                    loop {
                        let a = self.expr(nest)?;
                        d = d.max(a.depth);
                        args.push(a.ast);
                        if !self.is_sym(Sym::Comma) {
                            break;
                        }
                        self.bump();
                    }
                }
                let end = self.expect_sym(Sym::RParen)?;
                self.node(Ast::Call { name: word.to_ascii_lowercase(), args, span: span.to(end) }, d)
            }
            _ => Err(self.unexpected("an expression")),
        }
    }

    /// An optional `(n)` after a type name.
    fn paren_number(&mut self, max: u64, what: &str) -> Result<Option<u64>, ExprError> {
        if !self.is_sym(Sym::LParen) {
            return Ok(None);
        }
        self.bump();
        let n = self.number(max, what)?;
        self.expect_sym(Sym::RParen)?;
        Ok(Some(n))
    }

    fn number(&mut self, max: u64, what: &str) -> Result<u64, ExprError> {
        let span = self.span();
        let n = match self.peek() {
            Tok::Number(Literal::Int(i)) if *i >= 0 => *i as u64,
            Tok::Number(Literal::UInt(u)) => *u,
            _ => return Err(self.unexpected(what)),
        };
        if n > max {
            return Err(ExprError::new(span.offset, span.len, format!("{what} must be at most {max}")));
        }
        self.bump();
        Ok(n)
    }

    fn cast_type(&mut self) -> Result<CastType, ExprError> {
        let (tok, span) = (self.peek().clone(), self.span());
        let Tok::Ident(word) = tok else {
            return Err(self.unexpected("a type"));
        };
        self.bump();
        let fsp = |p: &mut Self| -> Result<u8, ExprError> {
            Ok(p.paren_number(6, "fractional second precision")?.unwrap_or(0) as u8)
        };
        let ty = match word.to_ascii_uppercase().as_str() {
            "SIGNED" | "UNSIGNED" => {
                let _ = self.eat_kw("INTEGER") || self.eat_kw("INT");
                if word.eq_ignore_ascii_case("SIGNED") {
                    CastType::Signed
                } else {
                    CastType::Unsigned
                }
            }
            "INT" | "INTEGER" | "BIGINT" => CastType::Signed,
            "DECIMAL" | "NUMERIC" | "DEC" => {
                if self.is_sym(Sym::LParen) {
                    self.bump();
                    let pspan = self.span();
                    let p = self.number(65, "DECIMAL precision")?;
                    if p == 0 {
                        return Err(ExprError::new(pspan.offset, pspan.len, "DECIMAL precision must be at least 1"));
                    }
                    let mut s = 0;
                    if self.is_sym(Sym::Comma) {
                        self.bump();
                        let sspan = self.span();
                        s = self.number(30, "DECIMAL scale")?;
                        if s > p {
                            return Err(ExprError::new(
                                sspan.offset,
                                sspan.len,
                                format!("DECIMAL scale {s} is larger than its precision {p}"),
                            ));
                        }
                    }
                    self.expect_sym(Sym::RParen)?;
                    CastType::Decimal { precision: p as u8, scale: s as u8 }
                } else {
                    CastType::Decimal { precision: 10, scale: 0 }
                }
            }
            "DOUBLE" => {
                let _ = self.eat_kw("PRECISION");
                CastType::Double
            }
            "REAL" => CastType::Double,
            "FLOAT" => CastType::Float,
            "CHAR" | "NCHAR" | "VARCHAR" => {
                let n = self.paren_number(u32::MAX as u64, "length")?;
                CastType::Char(n.map(|n| n as u32))
            }
            "TEXT" => CastType::Char(None),
            "DATE" => CastType::Date,
            "DATETIME" => CastType::DateTime(fsp(self)?),
            "TIMESTAMP" => CastType::Timestamp(fsp(self)?),
            "TIME" => CastType::Time(fsp(self)?),
            "JSON" => CastType::Json,
            "BINARY" | "VARBINARY" => {
                let n = self.paren_number(MAX_BINARY_LEN as u64, "BINARY length")?;
                CastType::Binary(n.map(|n| n as u32))
            }
            _ => {
                return Err(ExprError::new(
                    span.offset,
                    span.len,
                    format!(
                        "unknown cast type '{word}'; expected one of SIGNED, UNSIGNED, INT, BIGINT, \
                         DECIMAL(p,s), DOUBLE, FLOAT, CHAR(n), VARCHAR(n), TEXT, DATE, DATETIME, \
                         TIMESTAMP, TIME, JSON, BINARY"
                    ),
                ))
            }
        };
        Ok(ty)
    }
}

fn set_span(ast: &mut Ast, s: Span) {
    match ast {
        Ast::Literal(_, span) | Ast::Column(_, span) => *span = s,
        Ast::Unary { span, .. }
        | Ast::Binary { span, .. }
        | Ast::IsNull { span, .. }
        | Ast::InList { span, .. }
        | Ast::Between { span, .. }
        | Ast::Like { span, .. }
        | Ast::Call { span, .. }
        | Ast::Cast { span, .. } => *span = s,
    }
}

/// The literal `-lit` for a (non-negative) number literal.
fn negate(lit: Literal) -> Literal {
    match lit {
        Literal::Int(i) => Literal::Int(-i),
        Literal::UInt(u) => {
            if u == 1u64 << 63 {
                Literal::Int(i64::MIN)
            } else {
                Literal::Decimal(format!("-{u}"))
            }
        }
        Literal::Decimal(d) => {
            let neg = format!("-{d}");
            Literal::Decimal(crate::value::canonical_decimal(&neg).unwrap_or(neg))
        }
        Literal::Double(x) => Literal::Double(-x),
        other => other,
    }
}
