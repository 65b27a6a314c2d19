//! Tokens of the expression language.

use super::ast::{Literal, Span};
use super::ExprError;

/// A punctuation or operator token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sym {
    LParen,
    RParen,
    Comma,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Sym {
    pub(crate) fn text(self) -> &'static str {
        match self {
            Sym::LParen => "(",
            Sym::RParen => ")",
            Sym::Comma => ",",
            Sym::Plus => "+",
            Sym::Minus => "-",
            Sym::Star => "*",
            Sym::Slash => "/",
            Sym::Percent => "%",
            Sym::Eq => "=",
            Sym::Ne => "!=",
            Sym::Lt => "<",
            Sym::Le => "<=",
            Sym::Gt => ">",
            Sym::Ge => ">=",
        }
    }
}

/// One token.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    /// A numeric literal (never negative: signs are separate tokens).
    Number(Literal),
    /// A single-quoted string, unescaped.
    Str(String),
    /// A bare identifier or keyword, as written.
    Ident(String),
    /// A backquoted or double-quoted identifier, unescaped.
    Quoted(String),
    /// Punctuation.
    Sym(Sym),
    /// End of input.
    Eof,
}

impl Tok {
    /// How the token is named in "expected ..., found ..." messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Number(l) => format!("number {l}"),
            Tok::Str(s) => {
                let mut out = String::from("string ");
                let _ = super::ast::write_quoted(&mut out, &truncate(s, 40), '\'');
                out
            }
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Quoted(s) => format!("identifier `{s}`"),
            Tok::Sym(s) => format!("'{}'", s.text()),
            Tok::Eof => "end of input".into(),
        }
    }
}

/// At most `n` characters of `s`, with `…` appended when cut.
pub(crate) fn truncate(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$'
}

fn is_ident_continue(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Splits `src` into tokens; the last token is always [`Tok::Eof`] at `src.len()`.
pub(crate) fn tokenize(src: &str) -> Result<Vec<(Tok, Span)>, ExprError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < src.len() {
        let c = src[i..].chars().next().expect("in bounds");
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        let start = i;
        let tok = match c {
            '\'' => {
                let (s, end) = quoted(src, i, '\'')
                    .ok_or_else(|| ExprError::new(start, src.len() - start, "unterminated string literal"))?;
                i = end;
                Tok::Str(s)
            }
            '`' | '"' => {
                let (s, end) = quoted(src, i, c)
                    .ok_or_else(|| ExprError::new(start, src.len() - start, "unterminated quoted identifier"))?;
                if s.is_empty() {
                    return Err(ExprError::new(start, end - start, "empty quoted identifier"));
                }
                i = end;
                Tok::Quoted(s)
            }
            '0'..='9' | '.' => {
                let (lit, end) = number(src, i)?;
                i = end;
                Tok::Number(lit)
            }
            c if is_ident_start(c) => {
                let end =
                    src[i..].char_indices().find(|&(_, c)| !is_ident_continue(c)).map_or(src.len(), |(j, _)| i + j);
                let word = src[i..end].to_string();
                i = end;
                Tok::Ident(word)
            }
            _ => {
                let next = bytes.get(i + 1).copied();
                let (sym, n) = match (c, next) {
                    ('(', _) => (Sym::LParen, 1),
                    (')', _) => (Sym::RParen, 1),
                    (',', _) => (Sym::Comma, 1),
                    ('+', _) => (Sym::Plus, 1),
                    ('-', _) => (Sym::Minus, 1),
                    ('*', _) => (Sym::Star, 1),
                    ('/', _) => (Sym::Slash, 1),
                    ('%', _) => (Sym::Percent, 1),
                    ('=', _) => (Sym::Eq, 1),
                    ('!', Some(b'=')) => (Sym::Ne, 2),
                    ('<', Some(b'>')) => (Sym::Ne, 2),
                    ('<', Some(b'=')) => (Sym::Le, 2),
                    ('<', _) => (Sym::Lt, 1),
                    ('>', Some(b'=')) => (Sym::Ge, 2),
                    ('>', _) => (Sym::Gt, 1),
                    ('|', Some(b'|')) => {
                        return Err(ExprError::new(i, 2, "the '||' operator is not supported; use concat(a, b) or OR"))
                    }
                    _ => return Err(ExprError::new(i, c.len_utf8(), format!("unexpected character '{c}'"))),
                };
                i += n;
                Tok::Sym(sym)
            }
        };
        out.push((tok, Span::new(start, i - start)));
    }
    out.push((Tok::Eof, Span::new(src.len(), 0)));
    Ok(out)
}

/// Reads a quoted run starting at the quote at `start`; a doubled quote stands for itself.
/// Returns the unescaped text and the offset after the closing quote.
fn quoted(src: &str, start: usize, q: char) -> Option<(String, usize)> {
    let mut s = String::new();
    let mut it = src[start + 1..].char_indices().peekable();
    while let Some((j, c)) = it.next() {
        if c == q {
            if it.peek().map(|&(_, c)| c) == Some(q) {
                it.next();
                s.push(q);
            } else {
                return Some((s, start + 1 + j + 1));
            }
        } else {
            s.push(c);
        }
    }
    None
}

/// Lexes a number starting at `start`: digits, an optional fraction, an optional exponent.
fn number(src: &str, start: usize) -> Result<(Literal, usize), ExprError> {
    let b = src.as_bytes();
    let digits = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let int_end = digits(start);
    let mut end = int_end;
    let mut has_frac = false;
    if end < b.len() && b[end] == b'.' {
        let frac_end = digits(end + 1);
        if frac_end == end + 1 {
            let what = if int_end == start { "unexpected character '.'" } else { "expected a digit after '.'" };
            return Err(ExprError::new(start, frac_end - start, what));
        }
        has_frac = true;
        end = frac_end;
    }
    let mut has_exp = false;
    if end < b.len() && (b[end] == b'e' || b[end] == b'E') {
        let mut j = end + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        let exp_end = digits(j);
        if exp_end > j {
            has_exp = true;
            end = exp_end;
        }
    }
    if let Some(c) = src[end..].chars().next() {
        if is_ident_continue(c) || c == '.' {
            let bad_end = src[end..]
                .char_indices()
                .find(|&(_, c)| !is_ident_continue(c) && c != '.')
                .map_or(src.len(), |(j, _)| end + j);
            return Err(ExprError::new(start, bad_end - start, format!("invalid number '{}'", &src[start..bad_end])));
        }
    }
    let text = &src[start..end];
    let span_err = |m: &str| ExprError::new(start, end - start, m.to_string());
    let lit = if has_exp {
        let x: f64 = text.parse().map_err(|_| span_err("invalid number"))?;
        if !x.is_finite() {
            return Err(span_err("number is out of the range of DOUBLE"));
        }
        Literal::Double(x)
    } else if has_frac {
        let canon = crate::value::canonical_decimal(text).ok_or_else(|| span_err("invalid number"))?;
        let (int, frac) = canon.split_once('.').unwrap_or((&canon, ""));
        let int_digits = if int == "0" { 0 } else { int.len() };
        if int_digits + frac.len() > 65 {
            return Err(span_err("decimal literal has more than 65 digits"));
        }
        Literal::Decimal(canon)
    } else if let Ok(i) = text.parse::<i64>() {
        Literal::Int(i)
    } else if let Ok(u) = text.parse::<u64>() {
        Literal::UInt(u)
    } else {
        let canon = crate::value::canonical_decimal(text).ok_or_else(|| span_err("invalid number"))?;
        if canon.len() > 65 {
            return Err(span_err("integer literal has more than 65 digits"));
        }
        Literal::Decimal(canon)
    };
    Ok((lit, end))
}
