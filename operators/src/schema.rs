//! Table identity and schema: names, columns, types, nullability, keys, schema version.
//!
//! Every worker of a run holds the same [`Catalog`] (built deterministically from the plan and the
//! source's discovery), so records carry only a small [`TableId`] and a schema version, never the
//! schema itself.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Index of a table in the run's [`Catalog`]; the same on every worker and process.
pub type TableId = u32;

/// A fully qualified source or target table name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TableName {
    /// Database (MySQL) or catalog name.
    pub database: String,
    /// Schema (PostgreSQL and similar); `None` for MySQL-family sources.
    pub schema: Option<String>,
    /// Table name.
    pub table: String,
}

impl TableName {
    /// A `database.table` name.
    pub fn new(database: impl Into<String>, table: impl Into<String>) -> Self {
        TableName { database: database.into(), schema: None, table: table.into() }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{}.{}.{}", self.database, s, self.table),
            None => write!(f, "{}.{}", self.database, self.table),
        }
    }
}

/// The type of a column, with the details a target DDL needs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ColumnType {
    /// Boolean (`BOOLEAN`, PostgreSQL `bool`).
    Bool,
    /// Integer of `bits` width (8, 16, 24, 32, 64).
    Int {
        /// Width in bits.
        bits: u8,
        /// Unsigned (MySQL `UNSIGNED`).
        unsigned: bool,
    },
    /// 32-bit float.
    Float,
    /// 64-bit float.
    Double,
    /// Exact decimal (MySQL `DECIMAL`, PostgreSQL `numeric`, `money`).
    Decimal {
        /// Total digits, up to 65 for MySQL; 0 for PostgreSQL's unconstrained `numeric` (any
        /// number of digits, any scale).
        precision: u8,
        /// Digits after the point, up to 30.
        scale: u8,
    },
    /// Character data.
    String {
        /// Maximum length in characters (`None`: unbounded text).
        max_chars: Option<u32>,
        /// Fixed length (`CHAR`).
        fixed: bool,
    },
    /// Binary data.
    Bytes {
        /// Maximum length in bytes (`None`: unbounded blob).
        max_len: Option<u32>,
        /// Fixed length (`BINARY`).
        fixed: bool,
    },
    /// Date.
    Date,
    /// Signed time span.
    Time {
        /// Fractional second digits, 0..=6.
        fsp: u8,
    },
    /// Civil date-time without zone.
    DateTime {
        /// Fractional second digits, 0..=6.
        fsp: u8,
    },
    /// Instant (MySQL `TIMESTAMP`, PostgreSQL `timestamptz`).
    Timestamp {
        /// Fractional second digits, 0..=6.
        fsp: u8,
    },
    /// JSON document.
    Json,
    /// ENUM with its members.
    Enum {
        /// Allowed members in order.
        values: Vec<String>,
    },
    /// SET with its members.
    Set {
        /// Allowed members in order.
        values: Vec<String>,
    },
    /// Bit string (MySQL `BIT(n)`, PostgreSQL `bit(n)` and `varbit(n)`).
    Bit {
        /// Width in bits: 1..=64 for MySQL, up to 83886080 for PostgreSQL (for `varbit`, the
        /// maximum width).
        width: u32,
    },
    /// MySQL `YEAR`.
    Year,
    /// PostgreSQL `interval`.
    Interval,
    /// UUID (PostgreSQL `uuid`).
    Uuid,
    /// PostgreSQL array of any number of dimensions (PostgreSQL does not fix the number in the
    /// type: `int[]` and `int[][]` are the same type).
    Array {
        /// The element type.
        element: Box<ColumnType>,
    },
    /// A source type carried as `Text` or `Json` values whose name a target DDL needs
    /// (PostgreSQL `inet`, `timetz`, `point`, `tsvector`, `int4range`, composite types,
    /// `hstore`, ...); comparisons treat it as text.
    Other {
        /// The source's name of the type, with its modifiers, e.g. `inet`, `timetz(3)`.
        name: String,
    },
}

impl ColumnType {
    /// A SQL-like spelling, for previews and error messages (`INT[]` for arrays, the source's
    /// name for [`ColumnType::Other`]).
    pub fn sql_name(&self) -> String {
        match self {
            ColumnType::Bool => "BOOLEAN".into(),
            ColumnType::Int { bits, unsigned } => {
                let base = match bits {
                    8 => "TINYINT",
                    16 => "SMALLINT",
                    24 => "MEDIUMINT",
                    32 => "INT",
                    _ => "BIGINT",
                };
                if *unsigned {
                    format!("{base} UNSIGNED")
                } else {
                    base.into()
                }
            }
            ColumnType::Float => "FLOAT".into(),
            ColumnType::Double => "DOUBLE".into(),
            ColumnType::Decimal { precision: 0, .. } => "NUMERIC".into(),
            ColumnType::Decimal { precision, scale } => format!("DECIMAL({precision},{scale})"),
            ColumnType::String { max_chars: Some(n), fixed: true } => format!("CHAR({n})"),
            ColumnType::String { max_chars: Some(n), fixed: false } => format!("VARCHAR({n})"),
            ColumnType::String { max_chars: None, .. } => "TEXT".into(),
            ColumnType::Bytes { max_len: Some(n), fixed: true } => format!("BINARY({n})"),
            ColumnType::Bytes { max_len: Some(n), fixed: false } => format!("VARBINARY({n})"),
            ColumnType::Bytes { max_len: None, .. } => "BLOB".into(),
            ColumnType::Date => "DATE".into(),
            ColumnType::Time { fsp } => format!("TIME({fsp})"),
            ColumnType::DateTime { fsp } => format!("DATETIME({fsp})"),
            ColumnType::Timestamp { fsp } => format!("TIMESTAMP({fsp})"),
            ColumnType::Json => "JSON".into(),
            ColumnType::Enum { values } => format!("ENUM({})", quote_list(values)),
            ColumnType::Set { values } => format!("SET({})", quote_list(values)),
            ColumnType::Bit { width } => format!("BIT({width})"),
            ColumnType::Year => "YEAR".into(),
            ColumnType::Interval => "INTERVAL".into(),
            ColumnType::Uuid => "UUID".into(),
            ColumnType::Array { element } => format!("{}[]", element.sql_name()),
            ColumnType::Other { name } => name.clone(),
        }
    }
}

fn quote_list(values: &[String]) -> String {
    values.iter().map(|v| format!("'{}'", v.replace('\'', "''"))).collect::<Vec<_>>().join(",")
}

/// One column of a table.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Column type.
    pub ty: ColumnType,
    /// Whether NULL is allowed.
    pub nullable: bool,
}

impl Column {
    /// A column.
    pub fn new(name: impl Into<String>, ty: ColumnType, nullable: bool) -> Self {
        Column { name: name.into(), ty, nullable }
    }
}

/// The schema of one table at one version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    /// Qualified name.
    pub name: TableName,
    /// Columns in table order.
    pub columns: Vec<Column>,
    /// Primary key column indexes (empty: no primary key).
    pub primary_key: Vec<usize>,
    /// Unique keys (each a list of column indexes), in declaration order.
    pub unique_keys: Vec<Vec<usize>>,
    /// Schema version: starts at 1, bumped by every schema change.
    pub version: u32,
}

impl TableSchema {
    /// The key that identifies a row: the primary key, else the first unique key whose columns
    /// are all NOT NULL, else the first unique key; empty when the table has none.
    pub fn row_key(&self) -> &[usize] {
        if !self.primary_key.is_empty() {
            return &self.primary_key;
        }
        self.unique_keys
            .iter()
            .find(|k| k.iter().all(|&c| !self.columns[c].nullable))
            .or(self.unique_keys.first())
            .map(|k| k.as_slice())
            .unwrap_or(&[])
    }

    /// Whether the table has a primary key or unique index (F4.2).
    pub fn has_key(&self) -> bool {
        !self.row_key().is_empty()
    }

    /// Index of a column by name (exact match first, then case-insensitive as MySQL does).
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name == name)
            .or_else(|| self.columns.iter().position(|c| c.name.eq_ignore_ascii_case(name)))
    }

    /// Names of the key columns.
    pub fn key_names(&self) -> Vec<&str> {
        self.row_key().iter().map(|&i| self.columns[i].name.as_str()).collect()
    }
}

/// The schemas of every table a run reads, indexed by [`TableId`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// Tables; a table's id is its index here.
    pub tables: Vec<TableSchema>,
}

impl Catalog {
    /// The schema of a table.
    pub fn get(&self, id: TableId) -> &TableSchema {
        &self.tables[id as usize]
    }
    /// Finds a table by name.
    pub fn find(&self, name: &TableName) -> Option<TableId> {
        self.tables.iter().position(|t| &t.name == name).map(|i| i as TableId)
    }
    /// Every table's id by `(database, table)` (the lookup of sources whose events name tables
    /// so: binlog events, Kafka messages).
    pub fn ids_by_db_table(&self) -> std::collections::HashMap<(String, String), TableId> {
        self.tables
            .iter()
            .enumerate()
            .map(|(i, t)| ((t.name.database.clone(), t.name.table.clone()), i as TableId))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_names_of_postgresql_types() {
        let int_array = ColumnType::Array { element: Box::new(ColumnType::Int { bits: 32, unsigned: false }) };
        assert_eq!(int_array.sql_name(), "INT[]");
        assert_eq!(ColumnType::Array { element: Box::new(ColumnType::Uuid) }.sql_name(), "UUID[]");
        assert_eq!(ColumnType::Interval.sql_name(), "INTERVAL");
        assert_eq!(ColumnType::Other { name: "timetz(3)".into() }.sql_name(), "timetz(3)");
        assert_eq!(ColumnType::Decimal { precision: 0, scale: 0 }.sql_name(), "NUMERIC");
        assert_eq!(ColumnType::Bit { width: 83_886_080 }.sql_name(), "BIT(83886080)");
    }
}
