//! The catalog: what a task's target tables look like before anything runs, and how they come
//! to exist (F4.1–F4.2, F5).
//!
//! ```text
//!  plan + source discovery ──► Compiled (target schemas, column details)
//!        │
//!        ├─► types    per column: target type in a dialect + what cannot survive (type loss)
//!        ├─► ddl      CREATE DATABASE/SCHEMA + CREATE TABLE per target table (MySQL, MariaDB,
//!        │            PostgreSQL, Doris), or the user's own DDL file
//!        ├─► preview  one line per table: target, exists?, key used, F4.2 verdict, type loss
//!        └─► create   per table strategy (create | skip, use-existing | drop-and-recreate),
//!                     failures kept in the state store for `--retry-failed`; `run` creates
//!                     missing targets the same way
//! ```
//!
//! The type mapping is one function per dialect in [`types`]; its table is in
//! `ARCHITECTURE.md` ("Type mapping").

pub mod alter;
pub mod create;
pub mod ddl;
pub mod preview;
pub mod spelling;
pub mod types;

use crate::plan::Compiled;
use serde::{Deserialize, Serialize};

pub use crate::plan::discovery::{ColumnDetail, TableDetail};

/// The DDL dialect of a target: the SQL it takes and the types it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DdlDialect {
    /// MySQL, TiDB, TDSQL.
    Mysql,
    /// MariaDB (also has `inet4`, `inet6`, `uuid`, and JSON as checked text).
    Mariadb,
    /// PostgreSQL.
    Postgres,
    /// Apache Doris and StarRocks (OLAP key models, byte-sized VARCHAR, buckets).
    Doris,
}

impl DdlDialect {
    /// The dialect of a plan's `target.type`; `None` for targets without tables (`files`,
    /// `null`).
    pub fn of_target_type(kind: &str) -> Option<DdlDialect> {
        Some(match kind {
            "mysql" | "tidb" | "tdsql" => DdlDialect::Mysql,
            "mariadb" => DdlDialect::Mariadb,
            "postgres" | "postgresql" => DdlDialect::Postgres,
            "doris" | "starrocks" => DdlDialect::Doris,
            _ => return None,
        })
    }

    /// The dialect of the plan's target.
    pub fn of_plan(plan: &Compiled) -> Option<DdlDialect> {
        DdlDialect::of_target_type(&plan.plan.target.kind)
    }

    /// The name a user writes (`--dialect`).
    pub fn name(self) -> &'static str {
        match self {
            DdlDialect::Mysql => "mysql",
            DdlDialect::Mariadb => "mariadb",
            DdlDialect::Postgres => "postgres",
            DdlDialect::Doris => "doris",
        }
    }

    /// Parses a `--dialect` value.
    pub fn parse(s: &str) -> Result<DdlDialect, String> {
        DdlDialect::of_target_type(&s.to_ascii_lowercase())
            .ok_or_else(|| format!("unknown dialect `{s}`: use mysql, mariadb, postgres or doris"))
    }

    /// Quotes an identifier.
    pub fn ident(self, name: &str) -> String {
        match self {
            DdlDialect::Postgres => format!("\"{}\"", name.replace('"', "\"\"")),
            _ => format!("`{}`", name.replace('`', "``")),
        }
    }

    /// `db.table`, quoted.
    pub fn qualified(self, db: &str, table: &str) -> String {
        format!("{}.{}", self.ident(db), self.ident(table))
    }

    /// A string literal.
    pub fn string(self, s: &str) -> String {
        match self {
            DdlDialect::Postgres => format!("'{}'", s.replace('\'', "''")),
            _ => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''")),
        }
    }
}

/// The source column a target column is copied from, by target column index (`None` for
/// added and metadata columns).
pub fn source_columns(plan: &Compiled, table: ferry_operators::TableId) -> Vec<Option<usize>> {
    use ferry_operators::transform::Proj;
    plan.table(table)
        .transform
        .projection
        .iter()
        .map(|p| match p {
            Proj::Col(i) => Some(*i),
            Proj::Expr(_) => None,
        })
        .collect()
}
