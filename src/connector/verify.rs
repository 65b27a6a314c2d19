//! What `ferry verify` asks of a source and of a target: a table's rows in key order within a
//! key range, decoded into the record model ([`Row`] of [`Value`]s in the given schema's column
//! order); the source also splits a table into key ranges and says where it stands, and a
//! database target writes the statements that repair a difference. A side whose server can
//! hash rows the way ferry does (MariaDB ≥ 10.8: `CRC32`, `CRC32C`) also answers a range's
//! digest without sending its rows.
//!
//! ```text
//!  source TableReader ── rows(range) ──► transform (the run's) ──┐
//!                        bounds(chunk_rows)                     ├─► crate::verify: count + hash per
//!  target TableReader ── rows(range) ───────────────────────────┘   chunk, row diff, retries, report
//!            either side ── digest(range) (server-side, where it can) ──► equal digests: done
//! ```

pub use super::digest::{Digest, DigestColumn, DigestText};
use crate::state::Offsets;
use ferry_operators::schema::TableSchema;
use ferry_operators::{Row, Value};
use serde_json::Value as Json;

/// A key range: `lower <= key < upper`; `None` is unbounded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyRange {
    /// Inclusive lower bound.
    pub lower: Option<Vec<Value>>,
    /// Exclusive upper bound.
    pub upper: Option<Vec<Value>>,
}

/// Why a read for verification failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The server could not be reached or the session broke: verification stops with exit 2.
    #[error("{0}")]
    Unavailable(String),
    /// The table cannot be read as the plan describes it (missing, a column missing, a value
    /// that does not decode as its type).
    #[error("{0}")]
    Table(String),
}

impl ReadError {
    /// A read error by its kind: `transient` (the server or session) or the table's.
    pub fn classify(transient: bool, message: String) -> ReadError {
        if transient {
            ReadError::Unavailable(message)
        } else {
            ReadError::Table(message)
        }
    }
}

/// Reads one side's tables for verification. One reader is one session (a verifying thread
/// owns its own).
pub trait TableReader: Send {
    /// The rows of `schema`'s table (by its name) whose key is in `range`, every column of
    /// `schema` in order, sorted by the key (keyless tables: all rows, `range` unbounded).
    fn rows(&mut self, schema: &TableSchema, range: &KeyRange) -> Result<Vec<Row>, ReadError>;

    /// The digest of the rows of `schema`'s table in `range` over `columns`, computed by the
    /// server or from its raw rows (see `crate::connector::digest`); `None` when this side cannot (the rows are read and
    /// digested in ferry instead).
    fn digest(
        &mut self,
        schema: &TableSchema,
        columns: &[DigestColumn],
        range: &KeyRange,
    ) -> Result<Option<Digest>, ReadError> {
        let _ = (schema, columns, range);
        Ok(None)
    }

    /// Whether `rows` reads a key range (else it is only ever asked for a whole table).
    fn reads_ranges(&self) -> bool {
        true
    }

    /// Keys that split the table into ranges of about `rows` rows, ascending (empty: one range).
    fn bounds(&mut self, schema: &TableSchema, rows: u64) -> Result<Vec<Vec<Value>>, ReadError> {
        let _ = (schema, rows);
        Ok(Vec::new())
    }

    /// Where the source stands now, in the form its checkpoint offsets can be compared with
    /// ([`TableReader::passed`]); `None` when the side cannot say.
    fn position(&mut self) -> Result<Option<Json>, ReadError> {
        Ok(None)
    }

    /// Whether a task checkpoint's offsets are at or past `position` (every change committed at
    /// the source before `position` was read is in the target once that checkpoint exists).
    fn passed(&self, offsets: &Offsets, position: &Json) -> bool {
        let _ = (offsets, position);
        false
    }

    /// Statements that make the target row with `row`'s key equal `row` (an upsert), in the
    /// target's dialect; `None` when the target takes no statements.
    fn upsert_sql(&self, schema: &TableSchema, row: &[Value]) -> Option<String> {
        let _ = (schema, row);
        None
    }

    /// The statement that deletes the target row with key `key` (values of the key columns in
    /// order); `None` when the target takes no statements.
    fn delete_sql(&self, schema: &TableSchema, key: &[Value]) -> Option<String> {
        let _ = (schema, key);
        None
    }
}
