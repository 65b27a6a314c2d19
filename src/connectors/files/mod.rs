//! The `files` target: JSON lines per target table under a directory ([`writer`] has the
//! layout and the commit protocol; [`read`] reads them back for `ferry verify`).

pub mod read;
mod writer;

pub use writer::{FilesOptions, FilesWriter};

use crate::catalog::create::{AdminError, TableAdmin};
use crate::connector::{SinkConnector, SinkWriter, WriterCtx};
use crate::plan::{Compiled, Section, TargetConfig};
use crate::runtime::TaskError;
use crate::store::Store;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::sync::Arc;

/// The `files` target (object storage files; a local directory today).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FilesTarget {
    /// Output root directory; each table is written under `<path>/<database>/<table>/`.
    pub path: String,
    /// File format: `jsonl` (JSON lines; the only one today).
    #[serde(default)]
    pub format: FileFormat,
}

/// Output file formats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// One JSON object per line.
    #[default]
    Jsonl,
}

impl TargetConfig for FilesTarget {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn describe(&self) -> String {
        format!("files under {}", self.path)
    }
}

/// The `files` sink connector.
#[derive(Debug)]
pub struct Files;

fn config(plan: &Compiled) -> &FilesTarget {
    plan.plan.target.config_as::<FilesTarget>().expect("a files target's config")
}

impl SinkConnector for Files {
    fn types(&self) -> &'static [&'static str] {
        &["files"]
    }

    fn parse(&self, _kind: &str, section: &Json, at: &mut Section<'_, '_>) -> Option<Arc<dyn TargetConfig>> {
        at.parse::<FilesTarget>(section).map(|c| Arc::new(c) as Arc<dyn TargetConfig>)
    }

    fn prepare(&self, plan: &Compiled, from_scratch: bool, _fresh: bool) -> Result<(), TaskError> {
        if !from_scratch {
            return Ok(());
        }
        // The task's output tables go with its state.
        let out = Store::open_local(&config(plan).path).map_err(TaskError::definite)?;
        for t in &plan.tables {
            let Some((d, tb)) = &t.static_names else { continue };
            out.delete_prefix(&format!("{d}/{tb}")).map_err(TaskError::transient)?;
        }
        out.delete_prefix(".staging").map_err(TaskError::transient)?;
        Ok(())
    }

    fn verify_reader(&self, plan: &Compiled) -> Result<Box<dyn crate::connector::verify::TableReader>, String> {
        let upsert = plan.plan.settings.write_mode == crate::plan::config::WriteMode::Upsert;
        Ok(Box::new(read::reader(&config(plan).path, upsert)?))
    }

    fn writer(&self, cx: &WriterCtx) -> Result<Box<dyn SinkWriter>, TaskError> {
        let out = Store::open_local(&config(&cx.plan).path).map_err(TaskError::definite)?;
        let opts = FilesOptions {
            worker: cx.worker,
            run: cx.run,
            batch_rows: cx.plan.plan.settings.runtime.batch_rows,
            replay_upto: cx.replay_upto,
        };
        Ok(Box::new(FilesWriter::new(cx.plan.clone(), out, cx.state.clone(), opts).map_err(TaskError::transient)?))
    }

    fn admin(&self, plan: &Compiled) -> Result<Option<Box<dyn TableAdmin>>, String> {
        Ok(Some(Box::new(DirAdmin(config(plan).path.clone()))))
    }
}

/// A files target's "tables" are directories: they exist or not; no DDL.
struct DirAdmin(String);

impl TableAdmin for DirAdmin {
    fn table_exists(&mut self, database: &str, table: &str) -> Result<bool, AdminError> {
        Ok(std::path::Path::new(&self.0).join(database).join(table).is_dir())
    }

    fn execute(&mut self, _statement: &str) -> Result<(), AdminError> {
        Err(AdminError::Refused("a files target takes no DDL".into()))
    }
}
