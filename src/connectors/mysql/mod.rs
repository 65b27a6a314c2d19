//! MySQL/MariaDB source.
//!
//! - [`config`]: the plan's `source:` section for `type: mysql`/`mariadb`.
//! - [`discover`]: connecting, preconditions (binlog, format, row image, grants), discovery.
//! - [`types`]: MySQL types → record model, snapshot value decoding.
//! - [`snapshot`]: chunk planning and chunk reads (consistent-snapshot transactions, or the
//!   bare `SELECT` the watermark handoff wraps).
//! - [`binlog`]: the replication stream, decoded into the record model.
//! - [`ddl`]: DDL statements parsed into schema-change events.
//! - [`start`]: finding the start position for a point in time.
//! - [`verify`]: the source as `ferry verify` reads it (key ranges, chunk bounds, position).
//! - [`prepare`]: before the workers: the chunk plan, the start position, chunk bound sort keys.
//! - `run`: what the operators share (the prepared run, messages, offsets, failures);
//!   `source`: the operators: the snapshot on every worker and the entry point; `stream`: the
//!   binlog operator on worker 0; `handoff`: placing binlog rows among the snapshot's chunks;
//!   `watermark`: the watermark handoff's chunk read (low/high binlog positions, the window's
//!   changes merged into the chunk).

pub mod binlog;
pub mod config;
pub mod ddl;
pub mod digest;
pub mod discover;
mod handoff;
pub mod prepare;
mod run;
pub mod snapshot;
mod source;
pub mod start;
mod stream;
pub mod types;
pub mod verify;
mod watermark;

pub use run::MysqlRun;

use crate::connector::verify::TableReader;
use crate::connector::{PreparedSource, SourceConnector, SourceCtx, SourcePrepare};
use crate::plan::{Compiled, DiscoverError, Section, SourceCatalog, SourceConfig, Wanted};
use crate::runtime::TaskError;
use config::MysqlSourceConfig;
use ferry_operators::{Change, SchemaEvent};
use serde_json::Value as Json;
use std::sync::Arc;
use timely::dataflow::{Scope, StreamVec};

/// The MySQL/MariaDB source connector.
#[derive(Debug)]
pub struct Mysql;

impl SourceConfig for MysqlSourceConfig {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn discover(&self, wanted: Wanted<'_>) -> Result<SourceCatalog, DiscoverError> {
        let fail = |e: discover::SourceError| DiscoverError {
            key: if matches!(e, discover::SourceError::Auth { .. }) { "source.password" } else { "source.url" },
            transient: e.is_transient(),
            message: e.to_string(),
        };
        let opts = discover::opts(self).map_err(fail)?;
        crate::runtime::io_runtime().block_on(async {
            let mut conn = discover::connect(&opts).await.map_err(fail)?;
            discover::check_preconditions(&mut conn, opts.user().unwrap_or("")).await.map_err(fail)?;
            let found = discover::discover(&mut conn, wanted).await.map_err(fail)?;
            let _ = conn.disconnect().await;
            Ok(found)
        })
    }
}

impl SourceConnector for Mysql {
    fn types(&self) -> &'static [&'static str] {
        &["mysql", "mariadb"]
    }

    fn parse(&self, _kind: &str, section: &Json, at: &mut Section<'_, '_>) -> Option<Arc<dyn SourceConfig>> {
        let c = at.parse_checked(section, MysqlSourceConfig::validate)?;
        Some(Arc::new(c))
    }

    fn prepare(&self, cx: &SourcePrepare<'_>) -> Result<Arc<dyn PreparedSource>, TaskError> {
        let cfg = cx.plan.plan.source.config_as::<MysqlSourceConfig>().expect("a MySQL source's config");
        Ok(Arc::new(prepare::prepare(cfg, cx.plan, cx.state, cx.process)?))
    }

    fn verify_reader(&self, plan: &Compiled) -> Result<Box<dyn TableReader>, String> {
        let cfg = plan.plan.source.config_as::<MysqlSourceConfig>().expect("a MySQL source's config");
        Ok(Box::new(verify::reader(cfg, plan)?))
    }
}

impl PreparedSource for MysqlRun {
    fn build<'s>(
        &self,
        scope: Scope<'s, u64>,
        cx: &SourceCtx,
    ) -> (StreamVec<'s, u64, Change>, StreamVec<'s, u64, SchemaEvent>) {
        source::mysql_source(scope, cx, self.clone())
    }
}
