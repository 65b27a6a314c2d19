//! The connectors of this build, one folder each, and their registry: the one list that
//! `ferry links`, `check`, `preview` and `run` read (through [`registry`]).
//!
//! | folder | kind | types |
//! |---|---|---|
//! | [`datagen`] | source | `datagen` |
//! | [`mysql`] | source | `mysql`, `mariadb` |
//! | [`postgres`] | source | `postgres`, `postgresql` |
//! | [`kafka`] | source and sink | `kafka` |
//! | [`files`] | sink | `files` |
//! | [`null`] | sink | `null` |
//! | [`sql`] | sink | `mysql`, `mariadb`, `tidb`, `tdsql`, `doris`, `starrocks`, `postgres`, `postgresql` |
//!
//! Adding a connector: a folder here implementing [`crate::connector::SourceConnector`] or
//! [`crate::connector::SinkConnector`], and its line in [`REGISTRY`] (see ARCHITECTURE.md).

pub mod datagen;
pub mod files;
pub mod kafka;
pub mod mysql;
pub mod null;
pub mod postgres;
pub mod sql;

use crate::connector::{SinkConnector, SourceConnector};
use crate::plan::{self, Compiled, PlanErrors, Section, SourceConfig, TargetConfig};
use serde_json::Value as Json;
use std::sync::Arc;

/// Every connector this build has.
pub struct Registry {
    sources: &'static [&'static dyn SourceConnector],
    sinks: &'static [&'static dyn SinkConnector],
}

/// The registry: one line per connector.
pub static REGISTRY: Registry = Registry {
    sources: &[&datagen::Datagen, &mysql::Mysql, &postgres::Postgres, &kafka::Kafka],
    sinks: &[&files::Files, &null::Null, &sql::Sql, &kafka::KafkaSink],
};

/// The registry of this build.
pub fn registry() -> &'static Registry {
    &REGISTRY
}

impl Registry {
    /// The source connector serving `source.type` `kind`.
    pub fn source(&self, kind: &str) -> Option<&'static dyn SourceConnector> {
        self.sources.iter().copied().find(|c| c.types().contains(&kind))
    }

    /// The sink connector serving `target.type` `kind`.
    pub fn sink(&self, kind: &str) -> Option<&'static dyn SinkConnector> {
        self.sinks.iter().copied().find(|c| c.types().contains(&kind))
    }
}

impl plan::Connectors for Registry {
    fn source_types(&self) -> Vec<&'static str> {
        self.sources.iter().flat_map(|c| c.types().iter().copied()).collect()
    }

    fn target_types(&self) -> Vec<&'static str> {
        self.sinks.iter().flat_map(|c| c.types().iter().copied()).collect()
    }

    fn planned_targets(&self) -> &'static [&'static str] {
        &["s3"]
    }

    fn parse_source(&self, kind: &str, section: &Json, at: &mut Section<'_, '_>) -> Option<Arc<dyn SourceConfig>> {
        self.source(kind)?.parse(kind, section, at)
    }

    fn parse_target(&self, kind: &str, section: &Json, at: &mut Section<'_, '_>) -> Option<Arc<dyn TargetConfig>> {
        self.sink(kind)?.parse(kind, section, at)
    }
}

/// Loads, checks and compiles a plan file with this build's connectors
/// ([`plan::load_file`]).
pub fn load_file(path: &str) -> Result<Compiled, PlanErrors> {
    plan::load_file(&REGISTRY, path)
}

/// Like [`load_file`], keeping tables that break the primary-key rule (for `preview`).
pub fn load_file_lenient(path: &str) -> Result<Compiled, PlanErrors> {
    plan::load_file_lenient(&REGISTRY, path)
}

/// Checks a plan's text with this build's connectors, without contacting the source
/// ([`plan::load`]).
pub fn load(file: &str, text: &str) -> Result<plan::Plan, PlanErrors> {
    plan::load(&REGISTRY, file, text)
}
