//! MySQL/MariaDB source.
//!
//! - [`config`]: the plan's `source:` section for `type: mysql`/`mariadb`.
//! - [`discover`]: connecting, preconditions (binlog, format, row image, grants), discovery.
//! - [`types`]: MySQL types → record model, snapshot value decoding.
//! - [`snapshot`]: chunk planning and consistent-snapshot chunk reads.
//! - [`binlog`]: the replication stream, decoded into the record model.
//! - [`start`]: finding the start position for a point in time.

pub mod binlog;
pub mod config;
pub mod discover;
pub mod snapshot;
pub mod start;
pub mod types;
