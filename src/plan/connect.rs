//! What a plan needs of the connectors, without knowing any of them: the plan's `source:` and
//! `target:` sections are parsed by the connector their `type` names, found through
//! [`Connectors`] (the registry in `crate::connectors` implements it and is passed in by the
//! caller), into a [`SourceConfig`] or [`TargetConfig`] the plan keeps as it is.
//!
//! ```text
//!  plan::load(connectors, file, text)
//!     source: {type: mysql, …} ──connectors.parse_source("mysql", section, &mut Section)──► Arc<dyn SourceConfig>
//!     target: {type: postgres, …} ──connectors.parse_target(…)────────────────────────────► Arc<dyn TargetConfig>
//!                                    errors: Section::error(key, message) → file:line:column
//! ```

use super::discovery::SourceCatalog;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;
use std::any::Any;
use std::fmt::Debug;

/// Which source tables a plan takes, as discovery asks it: by table name (the plan's
/// `tables.include` minus `tables.exclude`), and by database, so that a server source can
/// leave out whole databases before it lists their tables.
#[derive(Clone, Copy)]
pub struct Wanted<'a> {
    table: &'a dyn Fn(&ferry_operators::schema::TableName) -> bool,
    database: &'a dyn Fn(&str) -> bool,
}

impl<'a> Wanted<'a> {
    /// From a table predicate and a database one; `database(db)` must be `true` for every
    /// database holding a table `table` takes (it may be `true` for others).
    pub fn new(
        table: &'a dyn Fn(&ferry_operators::schema::TableName) -> bool,
        database: &'a dyn Fn(&str) -> bool,
    ) -> Self {
        Wanted { table, database }
    }

    /// Whether the plan takes the table `name`.
    pub fn takes(&self, name: &ferry_operators::schema::TableName) -> bool {
        (self.table)(name)
    }

    /// Whether the database `db` (of a `db.table` source) may hold a table the plan takes:
    /// `false` only when none of its tables can be taken, whatever their names.
    pub fn may_hold(&self, db: &str) -> bool {
        (self.database)(db)
    }
}

/// A source section, parsed and validated by its connector.
pub trait SourceConfig: Any + Debug + Send + Sync {
    /// The config as `Any`, for its connector to take back its own type.
    fn as_any(&self) -> &dyn Any;
    /// Discovers the source's tables; a server source checks its connectivity, credentials
    /// and change-data preconditions here. Every table `wanted` takes is in the answer; the
    /// others may be left out (a server source then does not read their definitions).
    fn discover(&self, wanted: Wanted<'_>) -> Result<SourceCatalog, DiscoverError>;
    /// Checks what the selected tables need on the source (grants, replica identity, a
    /// publication), after selection: `check` and `run` report it before anything starts.
    fn check_selected(&self, tables: &[ferry_operators::TableSchema]) -> Result<(), DiscoverError> {
        let _ = tables;
        Ok(())
    }
}

/// A target section, parsed and validated by its connector.
pub trait TargetConfig: Any + Debug + Send + Sync {
    /// The config as `Any`, for its connector to take back its own type.
    fn as_any(&self) -> &dyn Any;
    /// Where the output goes, for people: `files under ./out`, `PostgreSQL database at …`.
    fn describe(&self) -> String;
    /// Where the output goes, as an identity two plans writing the same place share (the
    /// task service's check: no two tasks write one table). Default: [`TargetConfig::describe`].
    fn identity(&self) -> String {
        self.describe()
    }
    /// Checks the target against the compiled plan, before anything runs (`check` and `run`):
    /// names its templates render for the selected tables, the target's own limits (a Kafka
    /// target: brokers reachable, topic names, the transaction timeout).
    fn check_compiled(&self, plan: &super::Compiled) -> Result<(), DiscoverError> {
        let _ = plan;
        Ok(())
    }
}

/// Why discovery failed, with the plan key to point at.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct DiscoverError {
    /// The plan key the error is about (`source.url`, `source.password`).
    pub key: &'static str,
    /// What is wrong and how to fix it (secrets masked).
    pub message: String,
    /// Whether a retry later may succeed (the server is down), as opposed to a setting to fix.
    pub transient: bool,
}

/// The connectors a plan can name: implemented by the registry (`crate::connectors`).
pub trait Connectors: Sync {
    /// Source types this build has.
    fn source_types(&self) -> Vec<&'static str>;
    /// Target types this build has.
    fn target_types(&self) -> Vec<&'static str>;
    /// Source types the product plans but this build lacks (a clearer error than "unknown").
    fn planned_sources(&self) -> &'static [&'static str] {
        &[]
    }
    /// Target types the product plans but this build lacks.
    fn planned_targets(&self) -> &'static [&'static str] {
        &[]
    }
    /// Parses a `source:` section of type `kind` (one of [`Connectors::source_types`]); errors go
    /// to `section`, `None` when there were any.
    fn parse_source(
        &self,
        kind: &str,
        section: &Json,
        at: &mut Section<'_, '_>,
    ) -> Option<std::sync::Arc<dyn SourceConfig>>;
    /// Parses a `target:` section of type `kind`.
    fn parse_target(
        &self,
        kind: &str,
        section: &Json,
        at: &mut Section<'_, '_>,
    ) -> Option<std::sync::Arc<dyn TargetConfig>>;
}

/// One connector section of a plan being checked: deserializes it with every error located.
pub struct Section<'c, 'd> {
    pub(super) ctx: &'c mut super::check::Ctx<'d>,
    pub(super) path: &'static str,
}

impl Section<'_, '_> {
    /// Deserializes the section (without `type` and `name`) into `T`; errors are recorded with
    /// their place.
    pub fn parse<T: DeserializeOwned>(&mut self, section: &Json) -> Option<T> {
        self.ctx.de::<T>(section, self.path)
    }

    /// Like [`Section::parse`], then `check` (the config's cross-field rules): its error is
    /// recorded at the section.
    pub fn parse_checked<T: DeserializeOwned>(
        &mut self,
        section: &Json,
        check: impl FnOnce(&T) -> Result<(), String>,
    ) -> Option<T> {
        let value = self.parse(section)?;
        match check(&value) {
            Ok(()) => Some(value),
            Err(e) => {
                self.error("", e);
                None
            }
        }
    }

    /// Records an error at `key` inside the section (`""`: the section itself; `"url"`:
    /// `target.url`).
    pub fn error(&mut self, key: &str, message: impl Into<String>) {
        let path = if key.is_empty() { self.path.to_string() } else { format!("{}.{key}", self.path) };
        self.ctx.err_at(&path, key.is_empty(), message.into());
    }
}

/// A connector's own config from the plan's (`None` when another connector's).
pub fn config_as<T: 'static>(any: &dyn Any) -> Option<&T> {
    any.downcast_ref::<T>()
}
