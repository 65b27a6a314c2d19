//! Changes: what flows through the dataflow. One [`Change`] is one row-level event of a source
//! (insert, update with before and after images, delete), carried together with its source
//! position and commit time so the two can never drift apart.

use crate::schema::{TableId, TableSchema};
use crate::value::{StableHasher, Value};
use serde::{Deserialize, Serialize};

/// A single integer key is routed by blocks of `2^KEY_BLOCK_BITS` consecutive values (see
/// [`Change::route_hash`]): long enough for ascending runs, short enough that a stream of
/// new keys at a table's end moves between workers many times per epoch.
pub const KEY_BLOCK_BITS: u32 = 10;

/// A row: values in the column order of its table's schema.
pub type Row = Vec<Value>;

/// The kind of a row change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Op {
    /// A new row (also every row read by a snapshot).
    Insert,
    /// A changed row: `before` and `after` images.
    Update,
    /// A removed row: the `before` image.
    Delete,
}

impl Op {
    /// The lower-case name used in plans, metadata columns and files: `insert`, `update`, `delete`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

/// Where a change came from in its source: ordered within one source partition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub enum Position {
    /// No position (e.g. computed rows).
    #[default]
    None,
    /// A sequence number within a numbered source partition (datagen shard, snapshot chunk).
    Seq {
        /// The partition (shard, chunk) number.
        partition: u32,
        /// The sequence number of the change within it.
        seq: u64,
    },
    /// A MySQL/MariaDB binlog position: the file's number (the numeric suffix of its name,
    /// e.g. 3 for `mysql-bin.000003`) and the offset of the transaction's first event.
    Binlog {
        /// Binlog file number.
        file: u32,
        /// Offset in the file.
        pos: u64,
    },
    /// A PostgreSQL WAL position: the LSN of the transaction's commit record (logical
    /// decoding delivers transactions in commit order).
    Lsn {
        /// The LSN.
        lsn: u64,
    },
    /// A PostgreSQL change that only the sink workers whose bit is set in `workers` apply, as
    /// a [`Position::Lsn`]; the others drop it: their rows of its snapshot chunk were read
    /// again after it (a replayed epoch some workers had committed and others had not).
    /// Shown as its LSN.
    LsnFor {
        /// The LSN of the transaction's commit record.
        lsn: u64,
        /// The sink workers that apply it: bit `w` for worker `w` (32 at most: the
        /// position stays 16 bytes).
        workers: u32,
    },
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::None => Ok(()),
            Position::Seq { partition, seq } => write!(f, "{partition}:{seq}"),
            Position::Binlog { file, pos } => write!(f, "{file:06}:{pos}"),
            Position::Lsn { lsn } | Position::LsnFor { lsn, .. } => {
                write!(f, "{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
            }
        }
    }
}

/// One row-level change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The table (an index into the run's catalog).
    pub table: TableId,
    /// Insert, update or delete.
    pub op: Op,
    /// Before image: set for updates and deletes.
    pub before: Option<Row>,
    /// After image: set for inserts and updates.
    pub after: Option<Row>,
    /// Source position of the change.
    pub pos: Position,
    /// Commit time at the source, microseconds since the Unix epoch.
    pub commit_micros: i64,
    /// The schema of this change's rows when it differs from the one the plan was compiled
    /// with (after a schema change at the source); `None`: the compiled schema of `table`.
    /// Before the transform it is the source schema, after it the target schema.
    #[serde(default)]
    pub schema: Option<std::sync::Arc<TableSchema>>,
}

impl Change {
    /// The image that identifies the row: `after` for inserts and updates, `before` for deletes.
    pub fn image(&self) -> &Row {
        match self.op {
            Op::Delete => self.before.as_ref().expect("delete has a before image"),
            _ => self.after.as_ref().expect("insert and update have an after image"),
        }
    }

    /// Hash of `(table, key)` used to route the change: one key's changes go to one worker, in
    /// order. Tables without a key hash the whole row.
    pub fn route_hash(&self, schema: &TableSchema) -> u64 {
        let schema = self.schema.as_deref().unwrap_or(schema);
        let mut h = StableHasher::default();
        h.write_u64(self.table as u64);
        let row = self.image();
        let key = schema.row_key();
        match key {
            [] => row.iter().for_each(|v| v.stable_hash(&mut h)),
            // A single integer key goes by blocks of consecutive keys: a sink worker then
            // writes long ascending runs, which B-tree indexes take far more cheaply than keys
            // scattered one by one (a bulk load into PostgreSQL: 43 instead of 56 MB of primary
            // key, and less server CPU). Still a function of the key alone.
            [i] if matches!(row[*i], Value::Int(_) | Value::UInt(_)) => match row[*i] {
                Value::Int(v) => h.write_u64((v >> KEY_BLOCK_BITS) as u64),
                Value::UInt(v) => h.write_u64(v >> KEY_BLOCK_BITS),
                _ => unreachable!("matched above"),
            },
            _ => key.iter().for_each(|&i| row[i].stable_hash(&mut h)),
        }
        h.finish()
    }

    /// Splits an update that changes the row key into a delete of the old key and an insert of
    /// the new one (as Debezium does), so each half can be routed by its own key.
    pub fn split_key_change(self, schema: &TableSchema) -> (Change, Option<Change>) {
        if self.op != Op::Update {
            return (self, None);
        }
        let own = self.schema.clone();
        let key = own.as_deref().unwrap_or(schema).row_key();
        let (b, a) = (self.before.as_ref().expect("before"), self.after.as_ref().expect("after"));
        if key.is_empty() || key.iter().all(|&i| b[i] == a[i]) {
            return (self, None);
        }
        let Change { table, before, after, pos, commit_micros, schema: row_schema, .. } = self;
        let del = Change {
            table,
            op: Op::Delete,
            before,
            after: None,
            pos: pos.clone(),
            commit_micros,
            schema: row_schema.clone(),
        };
        let ins = Change { table, op: Op::Insert, before: None, after, pos, commit_micros, schema: row_schema };
        (del, Some(ins))
    }
}

/// A column definition as a source DDL statement wrote it (MySQL dialect, or a source's own
/// spelling with [`ColumnSpec::column_type`]): what a target needs to add or change the
/// column the same way.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSpec {
    /// The type, e.g. `VARCHAR(20)`, `INT UNSIGNED`, `ENUM('a','b')`.
    pub ty: String,
    /// `CHARACTER SET`, when the statement names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charset: Option<String>,
    /// `COLLATE`, when the statement names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collation: Option<String>,
    /// `NOT NULL`.
    #[serde(default)]
    pub not_null: bool,
    /// `DEFAULT`, as an expression of the source's dialect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// The record-model type, from sources whose `ty` is not a MySQL-dialect spelling
    /// (PostgreSQL: `ty` is its `format_type`): targets map this type instead of parsing `ty`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column_type: Option<crate::schema::ColumnType>,
}

/// What one source schema change did to one table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SchemaChangeKind {
    /// A new column.
    AddColumn {
        /// Its name.
        column: String,
        /// Its definition, as the statement wrote it.
        #[serde(default)]
        spec: ColumnSpec,
    },
    /// A removed column.
    DropColumn {
        /// Its name.
        column: String,
    },
    /// A renamed column.
    RenameColumn {
        /// The old name.
        from: String,
        /// The new name.
        to: String,
    },
    /// A column with a new definition (type, nullability, default).
    ModifyColumn {
        /// Its name.
        column: String,
        /// The new definition, as the statement wrote it.
        #[serde(default)]
        spec: ColumnSpec,
    },
    /// Every row removed (`TRUNCATE`).
    Truncate,
    /// A new table (`CREATE TABLE`); its event names no selected table yet.
    CreateTable,
    /// Any other statement on the table (other `ALTER`s, `DROP`, `RENAME TABLE`, …): see the
    /// event's statement.
    Other,
}

/// A schema change of one source table, delivered to sinks beside its rows: a schema change
/// always ends its epoch, so it follows every row change of that epoch and precedes every
/// row change of later ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SchemaEvent {
    /// The table (an index into the run's catalog).
    pub table: TableId,
    /// What changed.
    pub change: SchemaChangeKind,
    /// The whole statement as the source logged it.
    pub statement: String,
    /// Source position of the statement.
    pub pos: Position,
    /// When the source ran it, microseconds since the Unix epoch.
    pub commit_micros: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Column, ColumnType, TableName};

    fn table(key: ColumnType) -> TableSchema {
        TableSchema {
            name: TableName::new("d", "t"),
            columns: vec![
                Column::new("id", key, false),
                Column::new("v", ColumnType::String { max_chars: None, fixed: false }, true),
            ],
            primary_key: vec![0],
            unique_keys: vec![],
            version: 1,
        }
    }

    fn insert(id: Value, v: &str) -> Change {
        Change {
            table: 3,
            op: Op::Insert,
            before: None,
            after: Some(vec![id, Value::Text(v.into())]),
            pos: Position::None,
            commit_micros: 0,
            schema: None,
        }
    }

    #[test]
    fn a_position_stays_sixteen_bytes() {
        // Every change carries one: a wider variant would grow every change in flight.
        assert_eq!(std::mem::size_of::<Position>(), 16);
    }

    #[test]
    fn route_hash_depends_on_the_key_only_and_integer_keys_go_by_blocks() {
        let s = table(ColumnType::Int { bits: 64, unsigned: false });
        let h = |id: i64, v: &str| insert(Value::Int(id), v).route_hash(&s);
        assert_eq!(h(5, "a"), h(5, "b"));
        let block = 1i64 << KEY_BLOCK_BITS;
        assert_eq!(h(3 * block, "a"), h(4 * block - 1, "a"));
        let mut deletion = insert(Value::Int(7), "x");
        (deletion.op, deletion.before, deletion.after) = (Op::Delete, deletion.after.take(), None);
        assert_eq!(deletion.route_hash(&s), h(7, "y"));
        // Over many blocks, two workers get about half each.
        let to_first = (0..1000).filter(|b| h(b * block, "") % 2 == 0).count();
        assert!((400..600).contains(&to_first), "{to_first} of 1000 blocks to worker 0");
        // Other key types go key by key.
        let t = table(ColumnType::String { max_chars: Some(20), fixed: false });
        let text = |id: &str| insert(Value::Text(id.into()), "v").route_hash(&t);
        let firsts = (0..1000).filter(|i| text(&i.to_string()) % 2 == 0).count();
        assert!((400..600).contains(&firsts), "{firsts}");
    }
}
