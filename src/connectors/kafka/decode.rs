//! Kafka messages back into changes (the Kafka source's side; [`super::format`] writes them),
//! and the table schemas a sample of messages implies.
//!
//! ```text
//!  message (key, value) ──envelope per format──► events: op, before/after objects, commit time,
//!                                                 types and key fields the format carries
//!        ──templates `database`/`table` over the message's fields──► source table (catalog)
//!        ──read_value per column type──► Change (position: partition index, offset)
//! ```
//!
//! What is skipped (not an error): tombstones, schema-change messages (Canal `isDdl`, Debezium
//! schema-change messages, Maxwell's `table-*`/`database-*`/`bootstrap-start|complete`,
//! ferry-json `ddl`) — logged once per table — and messages of tables the plan's selection
//! leaves out. What goes to the dirty archive: values that are not JSON, an envelope without
//! its fields, a selected table that is neither declared nor in the sample, a value that does
//! not fit its column type.

use super::config::{column_type, Format};
use ferry_operators::json::read_value;
use ferry_operators::template::{Part, Template, Var};
use ferry_operators::{Change, Column, ColumnType, Op, Position, TableId, TableName, TableSchema, Value};
use serde_json::{Map, Value as Json};
use std::collections::HashMap;

/// One row event of a message, before its table is known.
#[derive(Debug, Default)]
pub struct Event {
    /// Insert, update or delete.
    pub op: Option<Op>,
    /// The before image (updates: with the changed columns' old values).
    pub before: Option<Map<String, Json>>,
    /// The after image.
    pub after: Option<Map<String, Json>>,
    /// Commit time at the source, milliseconds.
    pub commit_ms: Option<i64>,
}

/// What one message is.
#[derive(Debug)]
pub enum Decoded {
    /// Row events, and the message's envelope (what the name templates read; its row images
    /// are taken out into the events).
    Rows(Json, Vec<Event>),
    /// A schema change, a tombstone or a control message: nothing to copy (the reason).
    Skip(&'static str),
}

/// Why a message is dirty.
pub type Bad = String;

/// Takes the object at `key` out of the message (no copy).
fn take_obj(msg: &mut Json, key: &str) -> Option<Map<String, Json>> {
    match msg.get_mut(key).map(Json::take) {
        Some(Json::Object(m)) => Some(m),
        _ => None,
    }
}

fn overlay(data: &Map<String, Json>, old: Option<&Json>) -> Map<String, Json> {
    let mut before = data.clone();
    if let Some(Json::Object(o)) = old {
        for (k, v) in o {
            before.insert(k.clone(), v.clone());
        }
    }
    before
}

/// Parses one message's value by `format`.
pub fn envelope(format: Format, value: Option<&[u8]>) -> Result<Decoded, Bad> {
    let Some(bytes) = value else { return Ok(Decoded::Skip("tombstone")) };
    if bytes.is_empty() {
        return Ok(Decoded::Skip("tombstone"));
    }
    let mut msg: Json = serde_json::from_slice(bytes).map_err(|e| format!("the message is not JSON: {e}"))?;
    // Debezium's JSON converter with schemas on wraps the event: {"schema": …, "payload": …}.
    if format == Format::DebeziumJson && msg.get("schema").is_some() && msg.get("payload").is_some() {
        msg = msg["payload"].take();
        if msg.is_null() {
            return Ok(Decoded::Skip("tombstone"));
        }
    }
    if !msg.is_object() {
        return Err(format!("the message is JSON but not an object: {}", short(&msg)));
    }
    let events = match format {
        Format::DebeziumJson => {
            if msg.get("ddl").is_some() || msg.get("historyRecord").is_some() {
                return Ok(Decoded::Skip("schema change"));
            }
            let op = match msg.get("op").and_then(Json::as_str) {
                Some("c" | "r") => Op::Insert,
                Some("u") => Op::Update,
                Some("d") => Op::Delete,
                Some("t") => return Ok(Decoded::Skip("truncate")),
                Some("m") => return Ok(Decoded::Skip("logical message")),
                _ => return Err("a debezium-json message needs `op` (c, r, u or d)".into()),
            };
            let before = take_obj(&mut msg, "before");
            let after = take_obj(&mut msg, "after");
            let commit_ms =
                msg.pointer("/source/ts_ms").and_then(Json::as_i64).or_else(|| msg.get("ts_ms").and_then(Json::as_i64));
            let (before, after) = match op {
                Op::Insert => (None, Some(after.ok_or("an insert (`op` c or r) needs `after`")?)),
                Op::Update => {
                    let a = after.ok_or("an update (`op` u) needs `after`")?;
                    (Some(before.unwrap_or_else(|| a.clone())), Some(a))
                }
                Op::Delete => (Some(before.ok_or("a delete (`op` d) needs `before`")?), None),
            };
            vec![Event { op: Some(op), before, after, commit_ms }]
        }
        Format::CanalJson => {
            if msg.get("isDdl").and_then(Json::as_bool) == Some(true) {
                return Ok(Decoded::Skip("schema change"));
            }
            let op = match msg.get("type").and_then(Json::as_str) {
                Some("INSERT") => Op::Insert,
                Some("UPDATE") => Op::Update,
                Some("DELETE") => Op::Delete,
                Some(_) => return Ok(Decoded::Skip("schema change")),
                None => return Err("a canal-json message needs `type` (INSERT, UPDATE or DELETE)".into()),
            };
            let data = match msg.get_mut("data").map(Json::take) {
                Some(Json::Array(rows)) => rows,
                _ => return Err("a canal-json message needs `data` (an array of rows)".into()),
            };
            let old = msg.get("old").and_then(Json::as_array);
            let commit_ms = msg.get("es").and_then(Json::as_i64).or_else(|| msg.get("ts").and_then(Json::as_i64));
            let mut out = Vec::with_capacity(data.len());
            for (i, row) in data.into_iter().enumerate() {
                let Json::Object(row) = row else { return Err(format!("`data[{i}]` is not an object")) };
                out.push(match op {
                    Op::Insert => Event { op: Some(op), before: None, after: Some(row), commit_ms },
                    Op::Update => Event {
                        op: Some(op),
                        before: Some(overlay(&row, old.and_then(|o| o.get(i)))),
                        after: Some(row),
                        commit_ms,
                    },
                    Op::Delete => Event { op: Some(op), before: Some(row), after: None, commit_ms },
                });
            }
            out
        }
        Format::MaxwellJson => {
            let op = match msg.get("type").and_then(Json::as_str) {
                Some("insert" | "bootstrap-insert") => Op::Insert,
                Some("update") => Op::Update,
                Some("delete") => Op::Delete,
                Some(_) => return Ok(Decoded::Skip("schema change or bootstrap marker")),
                None => return Err("a maxwell-json message needs `type` (insert, update or delete)".into()),
            };
            let data = take_obj(&mut msg, "data").ok_or("a maxwell-json row message needs `data` (an object)")?;
            let commit_ms = msg.get("ts").and_then(Json::as_i64).map(|s| s * 1000);
            match op {
                Op::Insert => vec![Event { op: Some(op), before: None, after: Some(data), commit_ms }],
                Op::Update => vec![Event {
                    op: Some(op),
                    before: Some(overlay(&data, msg.get("old"))),
                    after: Some(data),
                    commit_ms,
                }],
                Op::Delete => vec![Event { op: Some(op), before: Some(data), after: None, commit_ms }],
            }
        }
        Format::FerryJson => {
            let op = match msg.get("op").and_then(Json::as_str) {
                Some("insert") => Op::Insert,
                Some("update") => Op::Update,
                Some("delete") => Op::Delete,
                Some("ddl") => return Ok(Decoded::Skip("schema change")),
                _ => return Err("a ferry-json message needs `op` (insert, update, delete or ddl)".into()),
            };
            let commit_ms = msg.get("commit_time").and_then(Json::as_str).and_then(|t| {
                read_value(&Json::String(t.into()), &ColumnType::Timestamp { fsp: 6 }).ok().and_then(|v| match v {
                    Value::Timestamp(us) => Some(us / 1000),
                    _ => None,
                })
            });
            let before = take_obj(&mut msg, "before");
            let after = take_obj(&mut msg, "after");
            match op {
                Op::Insert if after.is_none() => return Err("an insert needs `after`".into()),
                Op::Update if after.is_none() || before.is_none() => {
                    return Err("an update needs `before` and `after`".into())
                }
                Op::Delete if before.is_none() => return Err("a delete needs `before`".into()),
                _ => {}
            }
            vec![Event { op: Some(op), before, after, commit_ms }]
        }
        Format::Json => {
            // The row is the message: name templates read its fields (see [`fields`]).
            let row = match msg.take() {
                Json::Object(m) => m,
                _ => unreachable!("checked above"),
            };
            vec![Event { op: Some(Op::Insert), before: None, after: Some(row), commit_ms: None }]
        }
    };
    Ok(Decoded::Rows(msg, events))
}

fn short(v: &Json) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

/// The value at a dotted path (`source.table`) of a message's fields.
fn path<'a>(fields: &'a Map<String, Json>, p: &str) -> Option<&'a Json> {
    let mut parts = p.split('.');
    let first = fields.get(parts.next()?)?;
    parts.try_fold(first, |v, k| v.get(k))
}

/// The fields the name templates of `ev` read: the envelope's, or for plain JSON the row's.
pub fn fields<'a>(format: Format, msg: &'a Json, ev: &'a Event) -> Option<&'a Map<String, Json>> {
    match format {
        Format::Json => ev.after.as_ref(),
        _ => msg.as_object(),
    }
}

/// Renders a source-name template over a message: `${topic_di_src}`,
/// `${datasource_name_di_src}` and the message's fields (see [`fields`]).
pub fn render(t: &Template, fields: &Map<String, Json>, topic: &str, datasource: &str) -> Result<String, Bad> {
    let mut out = String::new();
    for p in &t.parts {
        match p {
            Part::Lit(s) => out.push_str(s),
            Part::Var(Var::Topic, _) => out.push_str(topic),
            Part::Var(Var::Datasource, _) => out.push_str(datasource),
            Part::Var(Var::Field(f), _) => match path(fields, f) {
                Some(Json::String(s)) => out.push_str(s),
                Some(Json::Number(n)) => out.push_str(&n.to_string()),
                Some(Json::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
                _ => return Err(format!("the message has no field `{f}` to name its table with")),
            },
            Part::Var(v, _) => {
                return Err(format!(
                    "`{v:?}` is not known before the table is: name tables from the message's fields or `${{topic_di_src}}`"
                ))
            }
        }
    }
    Ok(out)
}

/// The key columns a message names: Canal's `pkNames`, ferry-json's `key`, the fields of the
/// message key (Debezium; Maxwell's `pk.`-prefixed ones).
pub fn key_fields(format: Format, msg: &Json, key: Option<&[u8]>) -> Vec<String> {
    let from = |v: Option<&Json>| -> Vec<String> {
        v.and_then(Json::as_array)
            .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
            .unwrap_or_default()
    };
    match format {
        Format::CanalJson => from(msg.get("pkNames")),
        Format::FerryJson => from(msg.get("key")),
        Format::DebeziumJson | Format::MaxwellJson => {
            let Some(k) = key.and_then(|k| serde_json::from_slice::<Json>(k).ok()) else { return Vec::new() };
            let k = if k.get("payload").is_some() && k.get("schema").is_some() { k["payload"].clone() } else { k };
            let Json::Object(m) = k else { return Vec::new() };
            if format == Format::MaxwellJson {
                m.keys().filter_map(|f| f.strip_prefix("pk.").map(String::from)).collect()
            } else {
                m.keys().cloned().collect()
            }
        }
        Format::Json => Vec::new(),
    }
}

/// The column types a message states: Canal's `mysqlType`, ferry-json's `types`.
pub fn stated_types(format: Format, msg: &Json) -> HashMap<String, ColumnType> {
    let mut out = HashMap::new();
    match format {
        Format::CanalJson => {
            if let Some(Json::Object(m)) = msg.get("mysqlType") {
                for (c, t) in m {
                    if let Some(ty) = t.as_str().and_then(|t| column_type(t).ok()) {
                        out.insert(c.clone(), ty);
                    }
                }
            }
        }
        Format::FerryJson => {
            if let Some(Json::Object(m)) = msg.get("types") {
                for (c, t) in m {
                    if let Ok(ty) = serde_json::from_value::<ColumnType>(t.clone()) {
                        out.insert(c.clone(), ty);
                    }
                }
            }
        }
        _ => {}
    }
    out
}

/// A column type from sampled JSON values alone.
fn kind_of(v: &Json) -> Option<ColumnType> {
    match v {
        Json::Null => None,
        Json::Bool(_) => Some(ColumnType::Bool),
        Json::Number(n) if n.is_i64() => Some(ColumnType::Int { bits: 64, unsigned: false }),
        Json::Number(n) if n.is_u64() => Some(ColumnType::Int { bits: 64, unsigned: true }),
        Json::Number(_) => Some(ColumnType::Double),
        Json::String(_) => Some(ColumnType::String { max_chars: None, fixed: false }),
        Json::Array(_) | Json::Object(_) => Some(ColumnType::Json),
    }
}

/// Two sampled kinds of one column, joined: integers widen to doubles, anything else mixed
/// becomes text.
fn join(a: ColumnType, b: ColumnType) -> ColumnType {
    use ColumnType as T;
    match (a, b) {
        (a, b) if a == b => a,
        (T::Int { .. }, T::Double) | (T::Double, T::Int { .. }) => T::Double,
        (T::Int { .. }, T::Int { .. }) => T::Decimal { precision: 20, scale: 0 },
        _ => T::String { max_chars: None, fixed: false },
    }
}

/// What a sample says about one table.
#[derive(Debug, Default, Clone)]
pub struct Sampled {
    /// Columns in first-seen order, with their type (stated, or joined from values).
    pub columns: Vec<(String, Option<ColumnType>, bool)>,
    /// Key columns, as the messages name them.
    pub key: Vec<String>,
}

impl Sampled {
    /// Adds one event's images.
    pub fn add(&mut self, ev: &Event, stated: &HashMap<String, ColumnType>, key: &[String]) {
        for image in [&ev.before, &ev.after].into_iter().flatten() {
            for (name, v) in image {
                let pos = match self.columns.iter().position(|(n, _, _)| n == name) {
                    Some(p) => p,
                    None => {
                        self.columns.push((name.clone(), None, false));
                        self.columns.len() - 1
                    }
                };
                let slot = &mut self.columns[pos];
                if let Some(t) = stated.get(name) {
                    slot.1 = Some(t.clone());
                    slot.2 = true;
                } else if !slot.2 {
                    if let Some(k) = kind_of(v) {
                        slot.1 = Some(match slot.1.take() {
                            Some(prev) => join(prev, k),
                            None => k,
                        });
                    }
                }
            }
        }
        if self.key.is_empty() && !key.is_empty() {
            self.key = key.to_vec();
        }
    }

    /// The table's schema (columns never seen with a value are text).
    pub fn schema(&self, name: TableName) -> TableSchema {
        let columns: Vec<Column> = self
            .columns
            .iter()
            .map(|(n, t, _)| {
                let key = self.key.contains(n);
                Column::new(n.clone(), t.clone().unwrap_or(ColumnType::String { max_chars: None, fixed: false }), !key)
            })
            .collect();
        let primary_key = self.key.iter().filter_map(|k| columns.iter().position(|c| &c.name == k)).collect::<Vec<_>>();
        let primary_key = if primary_key.len() == self.key.len() { primary_key } else { Vec::new() };
        TableSchema { name, columns, primary_key, unique_keys: vec![], version: 1 }
    }
}

/// A row of `schema` from a JSON object; the error names the column and the value.
pub fn row(schema: &TableSchema, image: &Map<String, Json>) -> Result<Vec<Value>, Bad> {
    schema
        .columns
        .iter()
        .map(|c| match image.get(&c.name) {
            None => Ok(Value::Null),
            Some(v) => read_value(v, &c.ty).map_err(|e| format!("column `{}`: {e}", c.name)),
        })
        .collect()
}

/// A change of table `table` (schema `schema`) from an event read at `pos`.
pub fn change(
    table: TableId,
    schema: &TableSchema,
    ev: &Event,
    pos: Position,
    commit_micros: i64,
) -> Result<Change, Bad> {
    let op = ev.op.unwrap_or(Op::Insert);
    let before = ev.before.as_ref().map(|b| row(schema, b)).transpose()?;
    let after = ev.after.as_ref().map(|a| row(schema, a)).transpose()?;
    Ok(Change { table, op, before, after, pos, commit_micros, schema: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canal_update_rebuilds_the_before_image_from_old() {
        let m = br#"{"data":[{"id":"1","name":"b"}],"database":"d","es":1589373560000,"id":9,"isDdl":false,
            "mysqlType":{"id":"int(11)","name":"varchar(255)"},"old":[{"name":"a"}],"pkNames":["id"],"sql":"",
            "sqlType":{"id":4,"name":12},"table":"t","ts":1589373560798,"type":"UPDATE"}"#;
        let Decoded::Rows(msg, evs) = envelope(Format::CanalJson, Some(m)).unwrap() else { panic!() };
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].before.as_ref().unwrap()["name"], "a");
        assert_eq!(evs[0].after.as_ref().unwrap()["name"], "b");
        assert_eq!(key_fields(Format::CanalJson, &msg, None), vec!["id"]);
        let types = stated_types(Format::CanalJson, &msg);
        assert_eq!(types["id"], ColumnType::Int { bits: 32, unsigned: false });
        let t = Template::parse("${database}.${table}").unwrap();
        assert_eq!(render(&t, msg.as_object().unwrap(), "topic", "src").unwrap(), "d.t");
        let t = Template::parse("${datasource_name_di_src}_${topic_di_src}").unwrap();
        assert_eq!(render(&t, msg.as_object().unwrap(), "cdc", "src").unwrap(), "src_cdc");
    }

    #[test]
    fn bad_messages_say_what_is_wrong() {
        assert!(envelope(Format::DebeziumJson, Some(b"not json")).unwrap_err().contains("not JSON"));
        assert!(envelope(Format::DebeziumJson, Some(br#"{"after":{}}"#)).unwrap_err().contains("needs `op`"));
        assert!(matches!(envelope(Format::DebeziumJson, None), Ok(Decoded::Skip("tombstone"))));
        assert!(matches!(envelope(Format::CanalJson, Some(br#"{"isDdl":true,"sql":"alter"}"#)), Ok(Decoded::Skip(_))));
    }
}
