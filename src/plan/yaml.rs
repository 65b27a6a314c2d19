//! YAML text → JSON tree plus a map from every key path to its line and column.
//!
//! serde reports *where in the tree* a value is wrong (`runtime.workers`); this map turns that
//! path back into `file:line:column`, so every plan error points at the text the user wrote.

use serde_json::{Map, Number, Value as Json};
use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A place in the plan text (1-based line and column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
    /// Whether the scalar at this place was quoted (its text starts one column later).
    pub quoted: bool,
}

/// The marks of one node: where its key is and where its value starts.
#[derive(Clone, Copy, Debug, Default)]
pub struct NodeMarks {
    /// Position of the mapping key naming this node (the value's for sequence items).
    pub key: Pos,
    /// Position of the value.
    pub value: Pos,
}

/// A parsed YAML document.
#[derive(Debug)]
pub struct Doc {
    /// The document as JSON.
    pub root: Json,
    /// Marks by path (`source.seed`, `transforms[0].filter`); the root is `""`.
    pub marks: HashMap<String, NodeMarks>,
}

impl Doc {
    /// The best position for a path: the node itself, else its nearest ancestor.
    pub fn pos(&self, path: &str, want_key: bool) -> Pos {
        if path.is_empty() {
            return Pos { line: 1, col: 1, quoted: false };
        }
        let mut p = path.to_string();
        loop {
            if let Some(m) = self.marks.get(&p) {
                return if want_key { m.key } else { m.value };
            }
            match p.rfind(['.', '[']) {
                Some(i) => p.truncate(i),
                None => return Pos { line: 1, col: 1, quoted: false },
            }
        }
    }
}

/// A YAML syntax error with its place.
#[derive(Debug)]
pub struct SyntaxError {
    /// Where.
    pub pos: Pos,
    /// What the parser said.
    pub message: String,
}

enum Frame {
    Map { map: Map<String, Json>, path: String, key: Option<(String, Pos)> },
    Seq { items: Vec<Json>, path: String },
}

struct Builder {
    stack: Vec<Frame>,
    root: Option<Json>,
    marks: HashMap<String, NodeMarks>,
    error: Option<SyntaxError>,
}

fn pos_of(m: &Marker, quoted: bool) -> Pos {
    Pos { line: m.line(), col: m.col() + 1, quoted }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn scalar(text: String, style: TScalarStyle) -> Json {
    if style != TScalarStyle::Plain {
        return Json::String(text);
    }
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => Json::Null,
        "true" | "True" | "TRUE" => Json::Bool(true),
        "false" | "False" | "FALSE" => Json::Bool(false),
        t => {
            if let Ok(i) = t.parse::<i64>() {
                Json::Number(i.into())
            } else if let Ok(u) = t.parse::<u64>() {
                Json::Number(u.into())
            } else if t.contains(['.', 'e', 'E']) && t.parse::<f64>().is_ok_and(|f| f.is_finite()) {
                Number::from_f64(t.parse().expect("checked")).map_or(Json::String(text), Json::Number)
            } else {
                Json::String(text)
            }
        }
    }
}

impl Builder {
    /// The path and key mark the next value will get.
    fn next_path(&mut self, mark: Pos) -> Option<(String, Pos)> {
        match self.stack.last_mut() {
            None => Some((String::new(), mark)),
            Some(Frame::Seq { items, path }) => Some((format!("{path}[{}]", items.len()), mark)),
            Some(Frame::Map { path, key, .. }) => key.as_ref().map(|(k, p)| (join(path, k), *p)),
        }
    }

    fn put(&mut self, value: Json) {
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map { map, key, .. }) => {
                let (k, p) = key.take().expect("key before value");
                if map.contains_key(&k) && self.error.is_none() {
                    self.error = Some(SyntaxError { pos: p, message: format!("duplicate key `{k}`") });
                }
                map.insert(k, value);
            }
        }
    }

    /// In a mapping awaiting a key, a scalar is that key.
    fn awaiting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(text, style, _, _) => {
                let pos = pos_of(&mark, style != TScalarStyle::Plain);
                if self.awaiting_key() {
                    if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
                        *key = Some((text, pos));
                    }
                    return;
                }
                if let Some((path, key)) = self.next_path(pos) {
                    self.marks.insert(path, NodeMarks { key, value: pos });
                }
                self.put(scalar(text, style));
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let pos = pos_of(&mark, false);
                if self.awaiting_key() {
                    if self.error.is_none() {
                        self.error = Some(SyntaxError { pos, message: "a mapping key must be a plain name".into() });
                    }
                    if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
                        *key = Some(("?".into(), pos));
                    }
                }
                let (path, key) = self.next_path(pos).unwrap_or_default();
                self.marks.insert(path.clone(), NodeMarks { key, value: pos });
                self.stack.push(if matches!(ev, Event::MappingStart(..)) {
                    Frame::Map { map: Map::new(), path, key: None }
                } else {
                    Frame::Seq { items: Vec::new(), path }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let value = match self.stack.pop() {
                    Some(Frame::Map { map, .. }) => Json::Object(map),
                    Some(Frame::Seq { items, .. }) => Json::Array(items),
                    None => return,
                };
                self.put(value);
            }
            Event::Alias(_) => {
                if self.error.is_none() {
                    self.error = Some(SyntaxError {
                        pos: pos_of(&mark, false),
                        message: "YAML aliases (`*name`) are not supported in plans: repeat the value".into(),
                    });
                }
                if !self.awaiting_key() {
                    self.put(Json::Null);
                }
            }
            _ => {}
        }
    }
}

/// Parses one YAML document.
pub fn parse(text: &str) -> Result<Doc, SyntaxError> {
    let mut b = Builder { stack: Vec::new(), root: None, marks: HashMap::new(), error: None };
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut b, false).map_err(|e| SyntaxError {
        pos: Pos { line: e.marker().line(), col: e.marker().col() + 1, quoted: false },
        message: e.info().to_string(),
    })?;
    if let Some(e) = b.error {
        return Err(e);
    }
    Ok(Doc { root: b.root.unwrap_or(Json::Null), marks: b.marks })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_point_at_keys_and_values() {
        let doc = parse("task: demo\nsource:\n  type: datagen\n  seed: 7\nlist:\n  - a\n  - 'b'\n").unwrap();
        assert_eq!(doc.root["source"]["seed"], 7);
        let m = doc.marks["source.seed"];
        assert_eq!((m.key.line, m.key.col, m.value.line, m.value.col), (4, 3, 4, 9));
        let b = doc.marks["list[1]"].value;
        assert_eq!((b.line, b.col, b.quoted), (7, 5, true));
        assert_eq!(doc.pos("source.nope", true).line, 2);
    }

    #[test]
    fn duplicate_keys_and_bad_syntax_are_errors_with_lines() {
        let e = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!((e.pos.line, e.message.as_str()), (2, "duplicate key `a`"));
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.pos.line >= 1, "{e:?}");
    }
}
