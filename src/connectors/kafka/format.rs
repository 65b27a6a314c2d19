//! Changes as Kafka messages, per format (the Kafka target's side; [`super::decode`] reads
//! them back). Values use ferry's JSON encoding (`ferry_operators::json`): decimals as strings
//! with their exact digits, 64-bit integers in full, bytes in base64, temporal values as
//! text, JSON documents embedded — Canal's values are the same text as strings, as Canal
//! writes every value.
//!
//! | | key | value |
//! |---|---|---|
//! | `debezium-json` | `{"id":1}` | `{"before","after","source":{version, connector, name, ts_ms, snapshot, db, table, server_id, gtid, file, pos, row, …; PostgreSQL: schema, txId, lsn},"op":"c/u/d/r","ts_ms","transaction":null}` |
//! | `canal-json` | `{"id":1}` | `{"data":[…],"database","es","id","isDdl","mysqlType","old":[…changed columns],"pkNames","sql","sqlType","table","ts","type"}` |
//! | `maxwell-json` | `{"database","table","pk.id":1}` | `{"database","table","type","ts","xid","commit","position","data","old"}` |
//! | `ferry-json` | `{"id":1}` | `{"op","database","table","source":{…},"commit_time","key":[…],"types":{column: record-model type},"before","after"}` |
//!
//! Names: Debezium's `source` block holds the source's own database and table; the other
//! formats' `database`/`table` are the target names of the plan's `route` (by default the
//! source's). What ferry's positions do not keep is written as Debezium leaves it when
//! unknown: `server_id` 0, `gtid` null, `row` 0, `file` the binlog file's number
//! (`"000003"`), `txId` null. Maxwell's `xid` is a number derived from the transaction's
//! position (equal for every row of one source transaction) and every row has
//! `"commit":true`. Snapshot rows are Debezium's `"op":"r"` with `"snapshot":"true"`, Canal's
//! and Maxwell's plain inserts.

use super::config::Format;
use crate::catalog::types::ColumnIn;
use crate::catalog::DdlDialect;
use ferry_operators::json::{write_str, write_value};
use ferry_operators::{Change, ColumnType, Op, Position, SchemaChangeKind, SchemaEvent, TableId, TableSchema, Value};
use std::collections::HashMap;
use std::io::Write as _;

/// The names a message carries.
pub struct Names<'a> {
    /// The source table's database, schema (PostgreSQL) and table.
    pub source: &'a ferry_operators::TableName,
    /// The target database and table of the plan's route.
    pub target: (&'a str, &'a str),
}

/// One encoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The key (`None`: a table without a key).
    pub key: Option<Vec<u8>>,
    /// The value (`None`: a tombstone).
    pub value: Option<Vec<u8>>,
}

/// Per-table texts the formats repeat in every message, computed once per schema.
struct TableTexts {
    /// Canal's `mysqlType` and `sqlType` objects, ferry-json's `types` object, `pkNames`.
    mysql_type: String,
    sql_type: String,
    types: String,
    pk_names: String,
}

/// Encodes changes of one run (per sink worker).
pub struct Encoder {
    format: Format,
    /// Debezium's `source.connector`: `mysql`, `postgresql`, or the source type.
    connector: String,
    /// The source's data source name (Debezium's `source.name`).
    datasource: String,
    /// Whether the source snapshots (rows with a chunk position are snapshot rows).
    snapshots: bool,
    texts: HashMap<(TableId, u32, usize), TableTexts>,
    canal_id: u64,
    tmp: Vec<u8>,
    value: Vec<u8>,
}

fn now_ms() -> i64 {
    crate::runtime::now_micros() / 1000
}

impl Encoder {
    /// An encoder for `format`; `source_kind` is the plan's `source.type`.
    pub fn new(format: Format, source_kind: &str, datasource: &str) -> Self {
        let connector = match source_kind {
            "mysql" | "mariadb" => "mysql",
            "postgres" | "postgresql" => "postgresql",
            other => other,
        };
        Encoder {
            format,
            connector: connector.to_string(),
            datasource: datasource.to_string(),
            snapshots: matches!(connector, "mysql" | "postgresql"),
            texts: HashMap::new(),
            canal_id: 0,
            tmp: Vec::new(),
            value: Vec::with_capacity(1024),
        }
    }

    fn texts(&mut self, table: TableId, schema: &TableSchema) -> &TableTexts {
        self.texts.entry((table, schema.version, schema.columns.len())).or_insert_with(|| table_texts(schema))
    }

    /// The message key: the row key as a JSON object (Maxwell: with `database`, `table` and
    /// `pk.`-prefixed columns); `None` for a table without a key.
    pub fn key(&self, schema: &TableSchema, row: &[Value], names: &Names<'_>) -> Option<Vec<u8>> {
        let key = schema.row_key();
        if key.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(32);
        out.push(b'{');
        if self.format == Format::MaxwellJson {
            out.extend_from_slice(b"\"database\":");
            write_str(names.target.0, &mut out);
            out.extend_from_slice(b",\"table\":");
            write_str(names.target.1, &mut out);
        }
        for (n, &i) in key.iter().enumerate() {
            if n > 0 || self.format == Format::MaxwellJson {
                out.push(b',');
            }
            if self.format == Format::MaxwellJson {
                write_str(&format!("pk.{}", schema.columns[i].name.to_lowercase()), &mut out);
            } else {
                write_str(&schema.columns[i].name, &mut out);
            }
            out.push(b':');
            write_value(&row[i], &mut out);
        }
        out.push(b'}');
        Some(out)
    }

    /// The message(s) of one row change: the change, then a tombstone after a delete when
    /// `tombstones`.
    pub fn change(
        &mut self,
        table: TableId,
        schema: &TableSchema,
        change: &Change,
        names: &Names<'_>,
        tombstones: bool,
        out: &mut Vec<Message>,
    ) {
        let key = self.key(schema, change.image(), names);
        // Encoded into one reused buffer, then copied at its exact size: messages wait in
        // memory for their transaction.
        let mut v = std::mem::take(&mut self.value);
        v.clear();
        match self.format {
            Format::DebeziumJson => self.debezium(schema, change, names, &mut v),
            Format::CanalJson => self.canal(table, schema, change, names, &mut v),
            Format::MaxwellJson => self.maxwell(schema, change, names, &mut v),
            Format::FerryJson | Format::Json => self.ferry(table, schema, change, names, &mut v),
        }
        out.push(Message { key: key.clone(), value: Some(v.as_slice().to_vec()) });
        self.value = v;
        if tombstones && change.op == Op::Delete && key.is_some() {
            out.push(Message { key, value: None });
        }
    }

    fn object(schema: &TableSchema, row: &[Value], out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, (c, v)) in schema.columns.iter().zip(row).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(&c.name, out);
            out.push(b':');
            write_value(v, out);
        }
        out.push(b'}');
    }

    fn debezium_source(
        &self,
        src: &ferry_operators::TableName,
        pos: &Position,
        commit_ms: i64,
        snapshot: bool,
        out: &mut Vec<u8>,
    ) {
        out.extend_from_slice(b"{\"version\":");
        write_str(concat!("ferry-", env!("CARGO_PKG_VERSION")), out);
        out.extend_from_slice(b",\"connector\":");
        write_str(&self.connector, out);
        out.extend_from_slice(b",\"name\":");
        write_str(&self.datasource, out);
        let _ = write!(out, ",\"ts_ms\":{commit_ms},\"snapshot\":\"{snapshot}\",\"db\":");
        write_str(&src.database, out);
        out.extend_from_slice(b",\"sequence\":null");
        if let Some(s) = &src.schema {
            out.extend_from_slice(b",\"schema\":");
            write_str(s, out);
        }
        out.extend_from_slice(b",\"table\":");
        write_str(&src.table, out);
        match pos {
            Position::Lsn { lsn } | Position::LsnFor { lsn, .. } => {
                let _ = write!(out, ",\"txId\":null,\"lsn\":{lsn},\"xmin\":null");
            }
            Position::Binlog { file, pos } => {
                let _ = write!(out, ",\"server_id\":0,\"gtid\":null,\"file\":\"{file:06}\",\"pos\":{pos},\"row\":0,\"thread\":null,\"query\":null");
            }
            _ if self.connector == "mysql" => {
                out.extend_from_slice(
                    b",\"server_id\":0,\"gtid\":null,\"file\":\"\",\"pos\":0,\"row\":0,\"thread\":null,\"query\":null",
                );
            }
            _ => {}
        }
        out.push(b'}');
    }

    fn debezium(&self, schema: &TableSchema, change: &Change, names: &Names<'_>, out: &mut Vec<u8>) {
        let snapshot = self.snapshots && matches!(change.pos, Position::Seq { .. });
        out.extend_from_slice(b"{\"before\":");
        match &change.before {
            Some(b) => Self::object(schema, b, out),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"after\":");
        match &change.after {
            Some(a) if change.op != Op::Delete => Self::object(schema, a, out),
            _ => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"source\":");
        self.debezium_source(names.source, &change.pos, change.commit_micros / 1000, snapshot, out);
        let op = match change.op {
            Op::Insert if snapshot => "r",
            Op::Insert => "c",
            Op::Update => "u",
            Op::Delete => "d",
        };
        let _ = write!(out, ",\"op\":\"{op}\",\"ts_ms\":{},\"transaction\":null}}", now_ms());
    }

    fn canal_string(&mut self, v: &Value, out: &mut Vec<u8>) {
        if v.is_null() {
            out.extend_from_slice(b"null");
            return;
        }
        self.tmp.clear();
        write_value(v, &mut self.tmp);
        if self.tmp.first() == Some(&b'"') {
            out.extend_from_slice(&self.tmp);
        } else {
            write_str(std::str::from_utf8(&self.tmp).expect("JSON is UTF-8"), out);
        }
    }

    fn canal_object(&mut self, schema: &TableSchema, row: &[Value], only: Option<&[Value]>, out: &mut Vec<u8>) {
        out.push(b'{');
        let mut first = true;
        for (i, (c, v)) in schema.columns.iter().zip(row).enumerate() {
            if only.is_some_and(|other| other[i] == *v) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            write_str(&c.name, out);
            out.push(b':');
            self.canal_string(v, out);
        }
        out.push(b'}');
    }

    fn canal(&mut self, table: TableId, schema: &TableSchema, change: &Change, names: &Names<'_>, out: &mut Vec<u8>) {
        self.canal_id += 1;
        out.extend_from_slice(b"{\"data\":[");
        let image = change.image();
        self.canal_object(schema, image, None, out);
        out.extend_from_slice(b"],\"database\":");
        write_str(names.target.0, out);
        let _ = write!(
            out,
            ",\"es\":{},\"id\":{},\"isDdl\":false,\"mysqlType\":",
            change.commit_micros / 1000,
            self.canal_id
        );
        let texts = self.texts(table, schema);
        let (mt, st, pk) = (texts.mysql_type.clone(), texts.sql_type.clone(), texts.pk_names.clone());
        out.extend_from_slice(mt.as_bytes());
        out.extend_from_slice(b",\"old\":");
        match (change.op, &change.before, &change.after) {
            (Op::Update, Some(b), Some(a)) => {
                out.push(b'[');
                self.canal_object(schema, b, Some(a), out);
                out.push(b']');
            }
            _ => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"pkNames\":");
        out.extend_from_slice(pk.as_bytes());
        out.extend_from_slice(b",\"sql\":\"\",\"sqlType\":");
        out.extend_from_slice(st.as_bytes());
        out.extend_from_slice(b",\"table\":");
        write_str(names.target.1, out);
        let ty = match change.op {
            Op::Insert => "INSERT",
            Op::Update => "UPDATE",
            Op::Delete => "DELETE",
        };
        let _ = write!(out, ",\"ts\":{},\"type\":\"{ty}\"}}", now_ms());
    }

    fn maxwell(&self, schema: &TableSchema, change: &Change, names: &Names<'_>, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"database\":");
        write_str(names.target.0, out);
        out.extend_from_slice(b",\"table\":");
        write_str(names.target.1, out);
        let ty = match change.op {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
        };
        let _ = write!(
            out,
            ",\"type\":\"{ty}\",\"ts\":{},\"xid\":{},\"commit\":true,\"position\":",
            change.commit_micros.div_euclid(1_000_000),
            xid(&change.pos)
        );
        write_str(&change.pos.to_string(), out);
        out.extend_from_slice(b",\"data\":");
        Self::object(schema, change.image(), out);
        if let (Op::Update, Some(b), Some(a)) = (change.op, &change.before, &change.after) {
            out.extend_from_slice(b",\"old\":{");
            let mut first = true;
            for (i, c) in schema.columns.iter().enumerate() {
                if b[i] != a[i] {
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    write_str(&c.name, out);
                    out.push(b':');
                    write_value(&b[i], out);
                }
            }
            out.push(b'}');
        }
        out.push(b'}');
    }

    fn ferry_source(&self, src: &ferry_operators::TableName, pos: &Position, snapshot: bool, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"datasource\":");
        write_str(&self.datasource, out);
        out.extend_from_slice(b",\"database\":");
        write_str(&src.database, out);
        if let Some(s) = &src.schema {
            out.extend_from_slice(b",\"schema\":");
            write_str(s, out);
        }
        out.extend_from_slice(b",\"table\":");
        write_str(&src.table, out);
        out.extend_from_slice(b",\"position\":");
        write_str(&pos.to_string(), out);
        let _ = write!(out, ",\"snapshot\":{snapshot}}}");
    }

    fn ferry(&mut self, table: TableId, schema: &TableSchema, change: &Change, names: &Names<'_>, out: &mut Vec<u8>) {
        let snapshot = self.snapshots && matches!(change.pos, Position::Seq { .. });
        out.extend_from_slice(b"{\"op\":");
        write_str(change.op.as_str(), out);
        out.extend_from_slice(b",\"database\":");
        write_str(names.target.0, out);
        out.extend_from_slice(b",\"table\":");
        write_str(names.target.1, out);
        out.extend_from_slice(b",\"source\":");
        self.ferry_source(names.source, &change.pos, snapshot, out);
        out.extend_from_slice(b",\"commit_time\":");
        write_value(&Value::Timestamp(change.commit_micros), out);
        let texts = self.texts(table, schema);
        let (pk, types) = (texts.pk_names.clone(), texts.types.clone());
        out.extend_from_slice(b",\"key\":");
        out.extend_from_slice(pk.as_bytes());
        out.extend_from_slice(b",\"types\":");
        out.extend_from_slice(types.as_bytes());
        out.extend_from_slice(b",\"before\":");
        match (&change.before, change.op) {
            (Some(b), _) => Self::object(schema, b, out),
            (None, _) => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"after\":");
        match (&change.after, change.op) {
            (Some(a), Op::Insert | Op::Update) => Self::object(schema, a, out),
            _ => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
    }

    /// The message of a schema change: Canal `isDdl`, Debezium's schema-change message (for
    /// its schema topic), Maxwell's `table-alter`/`table-create`, ferry-json `"op":"ddl"`.
    pub fn schema_change(&mut self, event: &SchemaEvent, names: &Names<'_>) -> Message {
        let mut v = Vec::with_capacity(256);
        let commit_ms = event.commit_micros / 1000;
        let key = match self.format {
            Format::DebeziumJson => {
                v.extend_from_slice(b"{\"source\":");
                self.debezium_source(names.source, &event.pos, commit_ms, false, &mut v);
                let _ = write!(v, ",\"ts_ms\":{},\"databaseName\":", now_ms());
                write_str(&names.source.database, &mut v);
                v.extend_from_slice(b",\"schemaName\":");
                match &names.source.schema {
                    Some(s) => write_str(s, &mut v),
                    None => v.extend_from_slice(b"null"),
                }
                v.extend_from_slice(b",\"ddl\":");
                write_str(&event.statement, &mut v);
                v.extend_from_slice(b",\"tableChanges\":[]}");
                let mut k = b"{\"databaseName\":".to_vec();
                write_str(&names.source.database, &mut k);
                k.push(b'}');
                k
            }
            Format::CanalJson => {
                self.canal_id += 1;
                v.extend_from_slice(b"{\"data\":null,\"database\":");
                write_str(names.target.0, &mut v);
                let _ = write!(v, ",\"es\":{commit_ms},\"id\":{},\"isDdl\":true,\"mysqlType\":null,\"old\":null,\"pkNames\":null,\"sql\":", self.canal_id);
                write_str(&event.statement, &mut v);
                v.extend_from_slice(b",\"sqlType\":null,\"table\":");
                write_str(names.target.1, &mut v);
                let ty = match event.change {
                    SchemaChangeKind::Truncate => "TRUNCATE",
                    SchemaChangeKind::CreateTable => "CREATE",
                    SchemaChangeKind::Other => "QUERY",
                    _ => "ALTER",
                };
                let _ = write!(v, ",\"ts\":{},\"type\":\"{ty}\"}}", now_ms());
                table_key(names)
            }
            Format::MaxwellJson => {
                let ty = match event.change {
                    SchemaChangeKind::CreateTable => "table-create",
                    _ => "table-alter",
                };
                let _ = write!(v, "{{\"type\":\"{ty}\",\"database\":");
                write_str(names.target.0, &mut v);
                v.extend_from_slice(b",\"table\":");
                write_str(names.target.1, &mut v);
                v.extend_from_slice(b",\"sql\":");
                write_str(&event.statement, &mut v);
                v.extend_from_slice(b",\"position\":");
                write_str(&event.pos.to_string(), &mut v);
                let _ = write!(v, ",\"ts\":{}}}", event.commit_micros.div_euclid(1_000_000));
                table_key(names)
            }
            Format::FerryJson | Format::Json => {
                v.extend_from_slice(b"{\"op\":\"ddl\",\"database\":");
                write_str(names.target.0, &mut v);
                v.extend_from_slice(b",\"table\":");
                write_str(names.target.1, &mut v);
                v.extend_from_slice(b",\"source\":");
                self.ferry_source(names.source, &event.pos, false, &mut v);
                v.extend_from_slice(b",\"commit_time\":");
                write_value(&Value::Timestamp(event.commit_micros), &mut v);
                v.extend_from_slice(b",\"change\":");
                v.extend_from_slice(&serde_json::to_vec(&event.change).expect("a schema change serializes"));
                v.extend_from_slice(b",\"statement\":");
                write_str(&event.statement, &mut v);
                v.push(b'}');
                table_key(names)
            }
        };
        Message { key: Some(key), value: Some(v) }
    }
}

fn table_key(names: &Names<'_>) -> Vec<u8> {
    let mut k = b"{\"database\":".to_vec();
    write_str(names.target.0, &mut k);
    k.extend_from_slice(b",\"table\":");
    write_str(names.target.1, &mut k);
    k.push(b'}');
    k
}

/// Maxwell's `xid`: one number per source transaction, from its position.
fn xid(pos: &Position) -> u64 {
    match pos {
        Position::Binlog { file, pos } => ((*file as u64) << 40) | (pos & ((1 << 40) - 1)),
        Position::Lsn { lsn } | Position::LsnFor { lsn, .. } => *lsn,
        Position::Seq { partition, seq } => ((*partition as u64) << 40) | (seq & ((1 << 40) - 1)),
        Position::None => 0,
    }
}

/// JDBC's `java.sql.Types` code of a column type (Canal's `sqlType`).
pub fn sql_type_code(ty: &ColumnType) -> i32 {
    use ColumnType as T;
    match ty {
        T::Bool => 16,
        T::Int { bits: 8, .. } => -6,
        T::Int { bits: 16, .. } => 5,
        T::Int { bits: 24 | 32, .. } => 4,
        T::Int { .. } => -5,
        T::Float => 7,
        T::Double => 8,
        T::Decimal { .. } => 3,
        T::String { fixed: true, .. } => 1,
        T::String { max_chars: None, .. } => 2005,
        T::String { .. } | T::Enum { .. } | T::Set { .. } | T::Json | T::Year => 12,
        T::Bytes { fixed: true, .. } => -2,
        T::Bytes { max_len: None, .. } => 2004,
        T::Bytes { .. } => -3,
        T::Date => 91,
        T::Time { .. } => 92,
        T::DateTime { .. } | T::Timestamp { .. } => 93,
        T::Bit { .. } => -7,
        T::Interval | T::Uuid | T::Array { .. } | T::Other { .. } => 1111,
    }
}

fn table_texts(schema: &TableSchema) -> TableTexts {
    let mut mysql_type = Vec::new();
    let mut sql_type = Vec::new();
    let mut types = Vec::new();
    mysql_type.push(b'{');
    sql_type.push(b'{');
    types.push(b'{');
    let key = schema.row_key();
    for (i, c) in schema.columns.iter().enumerate() {
        if i > 0 {
            mysql_type.push(b',');
            sql_type.push(b',');
            types.push(b',');
        }
        let input = ColumnIn { column: c, detail: None, charset: None, collation: None, key: key.contains(&i) };
        let spelled = crate::catalog::types::mysql(DdlDialect::Mysql, input).sql;
        let spelled = spelled.split(" CHARACTER SET").next().unwrap_or(&spelled).to_ascii_lowercase();
        write_str(&c.name, &mut mysql_type);
        mysql_type.push(b':');
        write_str(&spelled, &mut mysql_type);
        write_str(&c.name, &mut sql_type);
        let _ = write!(sql_type, ":{}", sql_type_code(&c.ty));
        write_str(&c.name, &mut types);
        types.push(b':');
        types.extend_from_slice(&serde_json::to_vec(&c.ty).expect("a column type serializes"));
    }
    mysql_type.push(b'}');
    sql_type.push(b'}');
    types.push(b'}');
    let pk_names = if key.is_empty() {
        "null".to_string()
    } else {
        let names: Vec<&str> = key.iter().map(|&i| schema.columns[i].name.as_str()).collect();
        serde_json::to_string(&names).expect("names serialize")
    };
    let s = |b: Vec<u8>| String::from_utf8(b).expect("JSON is UTF-8");
    TableTexts { mysql_type: s(mysql_type), sql_type: s(sql_type), types: s(types), pk_names }
}
