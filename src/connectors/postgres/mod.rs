//! PostgreSQL source: a parallel chunked snapshot from exported snapshots, then logical
//! replication (pgoutput) from the task's slot, joined without a gap or a duplicate.
//!
//! - [`config`]: the plan's `source:` section for `type: postgres`.
//! - [`discover`]: connecting, the server's preconditions, discovery from `pg_catalog`.
//! - [`types`]: PostgreSQL types → record model, text values → [`ferry_operators::Value`].
//! - [`pgoutput`]: the pgoutput messages inside a transaction.
//! - [`slot`]: the task's slot, temporary slots that export the readers' snapshots.
//! - `wire`: the replication session (startup, authentication, replication commands, the
//!   CopyBoth stream with pgoutput protocol 2); `streamed`: transactions streamed while open,
//!   held until their commit.
//! - [`snapshot`]: chunk planning and chunk reads (`COPY … TO STDOUT` under a snapshot).
//! - [`prepare`]: before the workers: preconditions per table, publication, slot, chunk plan.
//! - [`verify`]: the source as `ferry verify` reads it (key ranges, bounds, WAL position).
//! - `source`: the snapshot operator on every worker and the entry point; `stream`: the
//!   replication operator on worker 0 (handoff rule, schema events, acknowledgement,
//!   heartbeats).

pub mod config;
pub mod digest;
pub mod discover;
pub mod pgoutput;
pub mod prepare;
pub mod slot;
pub mod snapshot;
mod source;
mod stream;
mod streamed;
pub mod types;
pub mod verify;
mod wire;

pub use prepare::PgRun;

use crate::connector::{PreparedSource, SourceConnector, SourceCtx, SourcePrepare};
use crate::plan::{Compiled, DiscoverError, Section, SourceCatalog, SourceConfig, Wanted};
use crate::runtime::TaskError;
use config::PostgresSourceConfig;
use ferry_operators::{Change, SchemaEvent};
use serde_json::Value as Json;
use std::sync::Arc;
use timely::dataflow::{Scope, StreamVec};

/// The PostgreSQL source connector.
#[derive(Debug)]
pub struct Postgres;

impl SourceConfig for PostgresSourceConfig {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn discover(&self, _wanted: Wanted<'_>) -> Result<SourceCatalog, DiscoverError> {
        let fail = |e: discover::PgSourceError| DiscoverError {
            key: if matches!(e, discover::PgSourceError::Auth { .. }) { "source.password" } else { "source.url" },
            transient: e.is_transient(),
            message: e.to_string(),
        };
        let ep = discover::endpoint(self).map_err(fail)?;
        crate::runtime::io_runtime().block_on(async {
            let c = discover::connect(&ep).await.map_err(fail)?;
            discover::check_preconditions(&c, &ep.user).await.map_err(fail)?;
            discover::discover(&c).await.map_err(fail)
        })
    }

    fn check_selected(&self, tables: &[ferry_operators::TableSchema]) -> Result<(), DiscoverError> {
        let fail = |e: discover::PgSourceError| DiscoverError {
            key: "source.url",
            transient: e.is_transient(),
            message: e.to_string(),
        };
        let ep = discover::endpoint(self).map_err(fail)?;
        crate::runtime::io_runtime().block_on(async {
            let c = discover::connect(&ep).await.map_err(fail)?;
            prepare::check_tables(&c, tables, self, &ep.user).await.map_err(fail)
        })
    }
}

impl SourceConnector for Postgres {
    fn types(&self) -> &'static [&'static str] {
        &["postgres", "postgresql"]
    }

    fn parse(&self, _kind: &str, section: &Json, at: &mut Section<'_, '_>) -> Option<Arc<dyn SourceConfig>> {
        let c = at.parse_checked(section, PostgresSourceConfig::validate)?;
        Some(Arc::new(c))
    }

    fn prepare(&self, cx: &SourcePrepare<'_>) -> Result<Arc<dyn PreparedSource>, TaskError> {
        let cfg = cx.plan.plan.source.config_as::<PostgresSourceConfig>().expect("a PostgreSQL source's config");
        Ok(Arc::new(prepare::prepare(cfg, cx.plan, cx.state, cx.process, cx.workers)?))
    }

    fn verify_reader(&self, plan: &Compiled) -> Result<Box<dyn crate::connector::verify::TableReader>, String> {
        let cfg = plan.plan.source.config_as::<PostgresSourceConfig>().expect("a PostgreSQL source's config");
        Ok(Box::new(verify::reader(cfg)?))
    }
}

impl PreparedSource for PgRun {
    fn build<'s>(
        &self,
        scope: Scope<'s, u64>,
        cx: &SourceCtx,
    ) -> (StreamVec<'s, u64, Change>, StreamVec<'s, u64, SchemaEvent>) {
        source::postgres_source(scope, cx, self.clone())
    }
}
