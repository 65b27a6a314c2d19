//! The message formats against the reference tools' documented examples: ferry reads the
//! examples Debezium, Canal and Maxwell document (field names, value types, envelopes) into
//! the right changes, and the messages ferry writes have exactly those fields with the same
//! JSON types. No broker needed.

use ferry::connectors::kafka::config::Format;
use ferry::connectors::kafka::decode::{self, Decoded};
use ferry::connectors::kafka::format::{Encoder, Message, Names};
use ferry_operators::{Change, Column, ColumnType, Op, Position, TableName, TableSchema, Value};
use serde_json::Value as Json;

/// Debezium's MySQL connector documentation: an update of `inventory.customers` (JSON
/// converter, schemas off).
const DEBEZIUM_UPDATE: &str = r#"{"before":{"id":1004,"first_name":"Anne","last_name":"Kretchmar","email":"annek@noanswer.org"},
 "after":{"id":1004,"first_name":"Anne Marie","last_name":"Kretchmar","email":"annek@noanswer.org"},
 "source":{"version":"2.4.0.Final","connector":"mysql","name":"mysql-server-1","ts_ms":1465581029100,
  "snapshot":"false","db":"inventory","table":"customers","server_id":223344,"gtid":null,"file":"mysql-bin.000003",
  "pos":484,"row":0,"thread":7,"query":"UPDATE customers SET first_name='Anne Marie' WHERE id=1004"},
 "op":"u","ts_ms":1465581029523}"#;

/// The same, with the converter's schemas on (the event under `payload`).
const DEBEZIUM_DELETE_WITH_SCHEMA: &str = r#"{"schema":{"type":"struct","fields":[],"optional":false,"name":"mysql-server-1.inventory.customers.Envelope"},
 "payload":{"before":{"id":1004,"first_name":"Anne Marie","last_name":"Kretchmar","email":"annek@noanswer.org"},"after":null,
 "source":{"version":"2.4.0.Final","connector":"mysql","name":"mysql-server-1","ts_ms":1465581902300,"snapshot":"false",
  "db":"inventory","table":"customers","server_id":223344,"gtid":null,"file":"mysql-bin.000003","pos":805,"row":0,"thread":7,"query":null},
 "op":"d","ts_ms":1465581902461}}"#;

/// Debezium's PostgreSQL connector documentation: a create event's `source` block.
const DEBEZIUM_PG_CREATE: &str = r#"{"before":null,"after":{"id":1,"first_name":"Anne","last_name":"Kretchmar","email":"annek@noanswer.org"},
 "source":{"version":"2.4.0.Final","connector":"postgresql","name":"PostgreSQL_server","ts_ms":1559033904863,"snapshot":"false",
  "db":"postgres","sequence":"[\"24023119\",\"24023128\"]","schema":"public","table":"customers","txId":555,"lsn":24023128,"xmin":null},
 "op":"c","ts_ms":1559033904863}"#;

/// Canal's flat message documentation (Kafka/RocketMQ): an update.
const CANAL_UPDATE: &str = r#"{"data":[{"id":"13","name":"gg","age":"10"}],"database":"test","es":1589373515000,"id":3,"isDdl":false,
 "mysqlType":{"id":"int(11)","name":"varchar(255)","age":"int(11)"},"old":[{"age":"9"}],"pkNames":["id"],"sql":"",
 "sqlType":{"id":4,"name":12,"age":4},"table":"user","ts":1589373515477,"type":"UPDATE"}"#;

/// Canal: a DDL message.
const CANAL_DDL: &str = r#"{"data":null,"database":"test","es":1589372710000,"id":2,"isDdl":true,"mysqlType":null,"old":null,
 "pkNames":null,"sql":"ALTER TABLE user ADD COLUMN age int","sqlType":null,"table":"user","ts":1589372710553,"type":"ALTER"}"#;

/// Maxwell's documentation: an update with `old`.
const MAXWELL_UPDATE: &str = r#"{"database":"test","table":"maxwell","type":"update","ts":1449786341,"xid":940786,"commit":true,
 "data":{"id":1,"daemon":"Firebus! Firebus!"},"old":{"daemon":"Stanislaw Lem"}}"#;

fn schema(db: &str, table: &str, cols: &[(&str, ColumnType)], key: usize) -> TableSchema {
    TableSchema {
        name: TableName::new(db, table),
        columns: cols.iter().map(|(n, t)| Column::new(*n, t.clone(), true)).collect(),
        primary_key: vec![key],
        unique_keys: vec![],
        version: 1,
    }
}

fn text() -> ColumnType {
    ColumnType::String { max_chars: Some(255), fixed: false }
}

fn int() -> ColumnType {
    ColumnType::Int { bits: 32, unsigned: false }
}

fn rows(format: Format, msg: &str) -> (Json, Vec<decode::Event>) {
    match decode::envelope(format, Some(msg.as_bytes())).unwrap() {
        Decoded::Rows(m, e) => (m, e),
        Decoded::Skip(why) => panic!("skipped: {why}"),
    }
}

#[test]
fn debezium_documented_events_read_as_the_same_changes() {
    let s = schema(
        "inventory",
        "customers",
        &[("id", int()), ("first_name", text()), ("last_name", text()), ("email", text())],
        0,
    );
    let (msg, evs) = rows(Format::DebeziumJson, DEBEZIUM_UPDATE);
    let c = decode::change(0, &s, &evs[0], Position::None, 0).unwrap();
    assert_eq!(c.op, Op::Update);
    assert_eq!(c.before.as_ref().unwrap()[1], Value::Text("Anne".into()));
    assert_eq!(c.after.as_ref().unwrap()[1], Value::Text("Anne Marie".into()));
    assert_eq!(evs[0].commit_ms, Some(1465581029100));
    let t = ferry_operators::template::Template::parse("${source.db}.${source.table}").unwrap();
    assert_eq!(decode::render(&t, msg.as_object().unwrap(), "topic", "src").unwrap(), "inventory.customers");
    assert_eq!(decode::key_fields(Format::DebeziumJson, &msg, Some(br#"{"id":1004}"#)), vec!["id"]);

    let (_, evs) = rows(Format::DebeziumJson, DEBEZIUM_DELETE_WITH_SCHEMA);
    let c = decode::change(0, &s, &evs[0], Position::None, 0).unwrap();
    assert_eq!((c.op, c.after.is_none()), (Op::Delete, true));
    assert_eq!(c.before.as_ref().unwrap()[0], Value::Int(1004));

    let (msg, evs) = rows(Format::DebeziumJson, DEBEZIUM_PG_CREATE);
    assert_eq!(evs[0].op, Some(Op::Insert));
    assert_eq!(msg["source"]["schema"], "public");
    assert!(matches!(decode::envelope(Format::DebeziumJson, None), Ok(Decoded::Skip("tombstone"))));
}

#[test]
fn canal_documented_messages_read_with_their_stated_types() {
    let (msg, evs) = rows(Format::CanalJson, CANAL_UPDATE);
    let types = decode::stated_types(Format::CanalJson, &msg);
    let cols: Vec<(&str, ColumnType)> = ["id", "name", "age"].iter().map(|c| (*c, types[*c].clone())).collect();
    assert_eq!(cols[0].1, int());
    let s = schema("test", "user", &cols, 0);
    let c = decode::change(0, &s, &evs[0], Position::None, 0).unwrap();
    assert_eq!(c.op, Op::Update);
    assert_eq!(c.before.unwrap(), vec![Value::Int(13), Value::Text("gg".into()), Value::Int(9)]);
    assert_eq!(c.after.unwrap(), vec![Value::Int(13), Value::Text("gg".into()), Value::Int(10)]);
    assert_eq!(decode::key_fields(Format::CanalJson, &msg, None), vec!["id"]);
    assert!(matches!(decode::envelope(Format::CanalJson, Some(CANAL_DDL.as_bytes())), Ok(Decoded::Skip(_))));
}

#[test]
fn maxwell_documented_messages_read_as_the_same_changes() {
    let s = schema("test", "maxwell", &[("id", int()), ("daemon", text())], 0);
    let (msg, evs) = rows(Format::MaxwellJson, MAXWELL_UPDATE);
    let c = decode::change(0, &s, &evs[0], Position::None, 0).unwrap();
    assert_eq!(c.before.unwrap()[1], Value::Text("Stanislaw Lem".into()));
    assert_eq!(c.after.unwrap()[1], Value::Text("Firebus! Firebus!".into()));
    assert_eq!(evs[0].commit_ms, Some(1449786341000));
    assert_eq!(
        decode::key_fields(Format::MaxwellJson, &msg, Some(br#"{"database":"test","table":"maxwell","pk.id":1}"#)),
        vec!["id"]
    );
}

/// Field name → JSON kind, recursively for the listed objects.
fn shape(v: &Json) -> Vec<(String, &'static str)> {
    let kind = |v: &Json| match v {
        Json::Null => "null",
        Json::Bool(_) => "bool",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    };
    let mut out: Vec<(String, &'static str)> =
        v.as_object().unwrap().iter().map(|(k, x)| (k.clone(), kind(x))).collect();
    out.sort();
    out
}

fn update() -> (TableSchema, Change) {
    let s = schema(
        "inventory",
        "customers",
        &[("id", int()), ("first_name", text()), ("last_name", text()), ("email", text())],
        0,
    );
    let before = vec![
        Value::Int(1004),
        Value::Text("Anne".into()),
        Value::Text("Kretchmar".into()),
        Value::Text("annek@noanswer.org".into()),
    ];
    let mut after = before.clone();
    after[1] = Value::Text("Anne Marie".into());
    let c = Change {
        table: 0,
        op: Op::Update,
        before: Some(before),
        after: Some(after),
        pos: Position::Binlog { file: 3, pos: 484 },
        commit_micros: 1_465_581_029_100_000,
        schema: None,
    };
    (s, c)
}

fn encode(format: Format, source_kind: &str) -> (Json, Json) {
    let (s, c) = update();
    let mut enc = Encoder::new(format, source_kind, "mysql-server-1");
    let mut out: Vec<Message> = Vec::new();
    let names = Names { source: &s.name, target: (&s.name.database, &s.name.table) };
    enc.change(0, &s, &c, &names, false, &mut out);
    assert_eq!(out.len(), 1);
    let key: Json = serde_json::from_slice(out[0].key.as_ref().unwrap()).unwrap();
    let value: Json = serde_json::from_slice(out[0].value.as_ref().unwrap()).unwrap();
    (key, value)
}

#[test]
fn debezium_json_messages_have_the_documented_fields_and_types() {
    let (key, v) = encode(Format::DebeziumJson, "mysql");
    let doc: Json = serde_json::from_str(DEBEZIUM_UPDATE).unwrap();
    assert_eq!(key, serde_json::json!({"id": 1004}));
    // The envelope: the documented fields plus `transaction` (null without transaction metadata).
    let mut want = shape(&doc);
    want.push(("transaction".into(), "null"));
    want.sort();
    assert_eq!(shape(&v), want);
    // The source block: every documented field with the documented JSON type.
    let (got, want) = (shape(&v["source"]), shape(&doc["source"]));
    for (field, kind) in &want {
        let g = got.iter().find(|(f, _)| f == field).unwrap_or_else(|| panic!("source.{field} missing"));
        if !(field == "thread" || field == "query" || field == "gtid") {
            assert_eq!(g.1, *kind, "source.{field}");
        }
    }
    assert_eq!((v["op"].as_str(), v["source"]["snapshot"].as_str()), (Some("u"), Some("false")));
    assert_eq!(v["source"]["ts_ms"], 1465581029100i64);
    assert_eq!(v["before"], doc["before"]);
    assert_eq!(v["after"], doc["after"]);
    // A PostgreSQL source's block has its documented fields.
    let (_, pg) = {
        let (s, mut c) = update();
        c.pos = Position::Lsn { lsn: 24023128 };
        let mut enc = Encoder::new(Format::DebeziumJson, "postgres", "PostgreSQL_server");
        let mut out = Vec::new();
        enc.change(0, &s, &c, &Names { source: &s.name, target: ("d", "t") }, false, &mut out);
        ((), serde_json::from_slice::<Json>(out[0].value.as_ref().unwrap()).unwrap())
    };
    let doc: Json = serde_json::from_str(DEBEZIUM_PG_CREATE).unwrap();
    for field in ["version", "connector", "name", "ts_ms", "snapshot", "db", "table", "txId", "lsn", "xmin"] {
        assert!(pg["source"].get(field).is_some(), "source.{field} missing: {}", pg["source"]);
        assert!(doc["source"].get(field).is_some());
    }
    assert_eq!(pg["source"]["connector"], "postgresql");
    assert_eq!(pg["source"]["lsn"], 24023128);
}

#[test]
fn canal_json_messages_have_the_documented_fields_and_types() {
    let (key, v) = encode(Format::CanalJson, "mysql");
    let doc: Json = serde_json::from_str(CANAL_UPDATE).unwrap();
    assert_eq!(key, serde_json::json!({"id": 1004}));
    assert_eq!(shape(&v), shape(&doc));
    assert_eq!(v["type"], "UPDATE");
    // Every value a string, as Canal writes them; `old` holds the changed columns only.
    assert_eq!(v["data"][0]["id"], "1004");
    assert_eq!(v["old"], serde_json::json!([{"first_name": "Anne"}]));
    assert_eq!(v["pkNames"], serde_json::json!(["id"]));
    assert_eq!(v["mysqlType"]["id"], "int");
    assert_eq!(v["sqlType"]["id"], 4);
    assert_eq!(v["sqlType"]["first_name"], 12);
    assert_eq!(v["es"], 1465581029100i64);
}

#[test]
fn maxwell_json_messages_have_the_documented_fields_and_types() {
    let (key, v) = encode(Format::MaxwellJson, "mysql");
    let doc: Json = serde_json::from_str(MAXWELL_UPDATE).unwrap();
    assert_eq!(key, serde_json::json!({"database": "inventory", "table": "customers", "pk.id": 1004}));
    let mut want = shape(&doc);
    want.push(("position".into(), "string"));
    want.sort();
    assert_eq!(shape(&v), want);
    assert_eq!(v["ts"], 1465581029);
    assert_eq!(v["old"], serde_json::json!({"first_name": "Anne"}));
    assert_eq!(v["data"]["first_name"], "Anne Marie");
}

#[test]
fn every_format_reads_back_what_it_writes() {
    let (s, c) = update();
    for format in [Format::DebeziumJson, Format::CanalJson, Format::MaxwellJson, Format::FerryJson] {
        let mut enc = Encoder::new(format, "mysql", "src");
        let mut out = Vec::new();
        enc.change(0, &s, &c, &Names { source: &s.name, target: ("d", "t") }, false, &mut out);
        let (_, evs) = rows(format, std::str::from_utf8(out[0].value.as_ref().unwrap()).unwrap());
        let back = decode::change(0, &s, &evs[0], c.pos.clone(), c.commit_micros).unwrap();
        assert_eq!((back.op, &back.before, &back.after), (c.op, &c.before, &c.after), "{format:?}");
        // Maxwell's `ts` has seconds; the others milliseconds.
        let want =
            if format == Format::MaxwellJson { c.commit_micros / 1_000_000 * 1000 } else { c.commit_micros / 1000 };
        assert_eq!(evs[0].commit_ms, Some(want), "{format:?}");
    }
}
