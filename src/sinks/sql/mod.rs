//! Database targets: the MySQL family (MySQL, MariaDB, TiDB, TDSQL; Doris and StarRocks speak
//! the same protocol) and PostgreSQL.
//!
//! ```text
//!  plan target section ─► conn::SqlTarget ─► one writer::SqlWriter per sink worker
//!                                               │ batches (netted by key in upsert mode)
//!                                               ▼
//!                                            I/O task on the shared runtime, own session:
//!                                            statements from encode (literals, bulk rows)
//! ```
//!
//! Upsert mode writes multi-row `INSERT … ON DUPLICATE KEY UPDATE` / `INSERT … ON CONFLICT …
//! DO UPDATE` and deletes by key in batches; batches of 64 rows or more take the bulk path
//! (`LOAD DATA LOCAL INFILE … REPLACE`, or `COPY` into a staging table and one merge). Append
//! mode inserts every change as a new row (`LOAD DATA` / `COPY` for large batches).
//! Exactly-once: one target transaction per worker and epoch, committed with the worker's row
//! in the progress table; a restart skips the epochs that row covers.

pub mod conn;
pub mod encode;
pub mod writer;

pub use conn::{MysqlTargetConfig, PostgresTargetConfig, SqlTarget};
pub use writer::{SqlContext, SqlWriter};
