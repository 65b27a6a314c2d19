//! # ferry-operators
//!
//! The connector-free core of ferry: the record model and the per-row logic between sources and
//! sinks. Nothing here does I/O or knows a dataflow: the engine (`ferry`'s `engine` and
//! `connectors`) builds the timely operators around these pieces, so each is tested with
//! plain values.
//!
//! ```text
//!  source rows ──► Change (value, schema) ──► transform (op filter, row filter, projection,
//!                                              functions, metadata) ──► route (template names)
//! ```
//!
//! - [`value`], [`schema`], [`change`]: the record model (row changes and schema events).
//! - [`json`]: the JSON encoding of values used by file sinks and the dirty archive.
//! - [`template`]: `${variable}` name templates (F3.2).
//! - [`expr`]: the expression language of row filters and function fields (F4.3).
//! - [`transform`]: per-table filter, projection, constants, functions and metadata columns.

pub mod change;
pub mod expr;
pub mod json;
pub mod schema;
pub mod template;
pub mod transform;
pub mod value;

pub use change::{Change, ColumnSpec, Op, Position, Row, SchemaChangeKind, SchemaEvent};
pub use schema::{Catalog, Column, ColumnType, TableId, TableName, TableSchema};
pub use value::Value;
