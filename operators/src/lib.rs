//! # ferry-operators
//!
//! The connector-free half of ferry: the record model and the dataflow operators that sit between
//! sources and sinks. Nothing here does network I/O; sources and sinks plug in through small
//! traits, so every operator can be tested with in-memory inputs.
//!
//! ```text
//!  sources ──► route (table, key) ──► transform ──► sinks ──► probe ──► checkpoint manifest
//!             template names        filter, map,    commit
//!                                   functions,      per epoch
//!                                   metadata
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
