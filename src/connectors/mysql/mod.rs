//! MySQL/MariaDB source.
//!
//! - [`config`]: the plan's `source:` section for `type: mysql`/`mariadb`.
//! - [`discover`]: connecting, preconditions (binlog, format, row image, grants), discovery.
//! - [`types`]: MySQL types → record model, snapshot value decoding.
//! - [`snapshot`]: chunk planning and consistent-snapshot chunk reads.
//! - [`binlog`]: the replication stream, decoded into the record model.
//! - [`ddl`]: DDL statements parsed into schema-change events.
//! - [`start`]: finding the start position for a point in time.

pub mod binlog;
pub mod config;
pub mod ddl;
pub mod discover;
pub mod snapshot;
pub mod start;
pub mod types;
