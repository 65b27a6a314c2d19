//! PostgreSQL arrays in their text form: `{1,2,NULL}`, `{{a,"b c"},{"",NULL}}`.

use super::*;

/// Whether an array element's text must be quoted in PostgreSQL's array text form.
fn array_needs_quotes(s: &str) -> bool {
    s.is_empty()
        || s.eq_ignore_ascii_case("null")
        || s.bytes().any(|b| matches!(b, b'"' | b'\\' | b'{' | b'}' | b',' | 0x0b) || b.is_ascii_whitespace())
}

/// Writes PostgreSQL's text form of an array: `{1,2,NULL}`, `{{a,"b c"},{"",NULL}}`; elements
/// are their `Display` text, quoted when needed.
pub fn write_array(out: &mut impl fmt::Write, items: &[Value]) -> fmt::Result {
    out.write_char('{')?;
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            out.write_char(',')?;
        }
        match v {
            Value::Null => out.write_str("NULL")?,
            Value::Array(inner) => write_array(out, inner)?,
            other => {
                let s = other.to_string();
                if array_needs_quotes(&s) {
                    out.write_char('"')?;
                    for c in s.chars() {
                        if c == '"' || c == '\\' {
                            out.write_char('\\')?;
                        }
                        out.write_char(c)?;
                    }
                    out.write_char('"')?;
                } else {
                    out.write_str(&s)?;
                }
            }
        }
    }
    out.write_char('}')
}

/// Arrays nested deeper than this are rejected by [`parse_array`] (PostgreSQL allows 6).
pub const MAX_ARRAY_DEPTH: usize = 32;

/// Parses PostgreSQL's text form of an array (`{1,2,NULL}`, `{{"a b",c},{d,e}}`, backslash
/// escapes, unquoted `NULL` for NULL) into a [`Value::Array`]; `element` converts the text of
/// each non-NULL element. Explicit bounds (`[0:1]={...}`) are rejected: they cannot be kept.
pub fn parse_array(s: &str, element: &mut dyn FnMut(&str) -> Result<Value, String>) -> Result<Value, String> {
    let b = s.as_bytes();
    let mut i = 0;
    skip_ws(b, &mut i);
    if b.get(i) == Some(&b'[') {
        return Err("arrays with explicit bounds ([lo:hi]={...}) are not supported".into());
    }
    let items = parse_array_level(s, &mut i, element, 1)?;
    skip_ws(b, &mut i);
    if i != b.len() {
        return Err(format!("unexpected '{}' after the array", &s[i..]));
    }
    Ok(Value::Array(items))
}

fn skip_ws(b: &[u8], i: &mut usize) {
    while *i < b.len() && (b[*i].is_ascii_whitespace() || b[*i] == 0x0b) {
        *i += 1;
    }
}

fn parse_array_level(
    s: &str,
    i: &mut usize,
    element: &mut dyn FnMut(&str) -> Result<Value, String>,
    depth: usize,
) -> Result<Vec<Value>, String> {
    let b = s.as_bytes();
    if b.get(*i) != Some(&b'{') {
        return Err("an array must start with '{'".into());
    }
    if depth > MAX_ARRAY_DEPTH {
        return Err(format!("arrays nest at most {MAX_ARRAY_DEPTH} levels deep"));
    }
    *i += 1;
    let mut items = Vec::new();
    skip_ws(b, i);
    if b.get(*i) == Some(&b'}') {
        *i += 1;
        return Ok(items);
    }
    loop {
        skip_ws(b, i);
        match b.get(*i) {
            None => return Err("unterminated array: missing '}'".into()),
            Some(b'{') => items.push(Value::Array(parse_array_level(s, i, element, depth + 1)?)),
            Some(b'"') => {
                *i += 1;
                let mut text = Vec::new();
                loop {
                    match b.get(*i) {
                        None => return Err("unterminated quoted array element".into()),
                        Some(b'"') => break,
                        Some(b'\\') if *i + 1 < b.len() => {
                            text.push(b[*i + 1]);
                            *i += 2;
                        }
                        Some(&c) => {
                            text.push(c);
                            *i += 1;
                        }
                    }
                }
                *i += 1;
                let text = String::from_utf8(text).map_err(|_| "invalid UTF-8 in an array element".to_string())?;
                items.push(element(&text)?);
            }
            Some(_) => {
                let mut text = Vec::new();
                let mut escaped = false;
                // Length of `text` up to its last escaped byte: trailing blanks after it stay.
                let mut keep = 0;
                loop {
                    match b.get(*i) {
                        None => return Err("unterminated array: missing '}'".into()),
                        Some(b',' | b'}') => break,
                        Some(b'"' | b'{') => return Err(format!("unexpected '{}' in an array element", b[*i] as char)),
                        Some(b'\\') if *i + 1 < b.len() => {
                            text.push(b[*i + 1]);
                            *i += 2;
                            escaped = true;
                            keep = text.len();
                        }
                        Some(&c) => {
                            text.push(c);
                            *i += 1;
                        }
                    }
                }
                while text.len() > keep && text.last().is_some_and(|c| c.is_ascii_whitespace() || *c == 0x0b) {
                    text.pop();
                }
                let text = String::from_utf8(text).map_err(|_| "invalid UTF-8 in an array element".to_string())?;
                if !escaped && text.eq_ignore_ascii_case("null") {
                    items.push(Value::Null);
                } else {
                    items.push(element(&text)?);
                }
            }
        }
        skip_ws(b, i);
        match b.get(*i) {
            Some(b',') => *i += 1,
            Some(b'}') => {
                *i += 1;
                return Ok(items);
            }
            Some(&c) => return Err(format!("expected ',' or '}}' in an array, found '{}'", c as char)),
            None => return Err("unterminated array: missing '}'".into()),
        }
    }
}
