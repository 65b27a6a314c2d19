//! What a source reports about its tables, in source-neutral terms: the record model's schemas
//! ([`Catalog`]) plus what a target DDL and the handoff need beyond the types (the source's own
//! type text, defaults, comments, character sets, collations). Every source connector fills it.

use ferry_operators::schema::Catalog;
use serde::{Deserialize, Serialize};

/// What discovery found: every table of the source (before selection), and per table per
/// column the character set and collation (MySQL-family sources; empty for others).
#[derive(Debug, Clone, Default)]
pub struct SourceCatalog {
    /// Every table.
    pub catalog: Catalog,
    /// Per table, per column, the character set.
    pub charsets: Vec<Vec<Option<String>>>,
    /// Per table, per column, the collation of text columns.
    pub collations: Vec<Vec<Option<String>>>,
    /// Per table, what a target DDL needs beyond the types (empty for generated sources).
    pub details: Vec<TableDetail>,
}

/// What a source knows of a column beyond its [`ferry_operators::ColumnType`]: what a target
/// DDL needs to be faithful.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDetail {
    /// The source's own spelling of the type (MySQL `COLUMN_TYPE`, lower case), e.g.
    /// `int(10) unsigned`, `enum('a','b')`; `None` for generated sources.
    pub source_type: Option<String>,
    /// The default as a SQL expression of the source's dialect (`'text'`, `5`,
    /// `current_timestamp()`); `None`: no default or `DEFAULT NULL`.
    pub default: Option<String>,
    /// `AUTO_INCREMENT`.
    pub auto_increment: bool,
    /// The column comment (empty: none).
    pub comment: String,
}

/// A source table's comment and column details (columns in table order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDetail {
    /// The table comment (empty: none).
    pub comment: String,
    /// Per source column.
    pub columns: Vec<ColumnDetail>,
}
