//! The `files` target: JSON lines or Parquet per target table under a local directory or an
//! S3-compatible prefix ([`writer`] has the layout and the commit protocol, [`parquet`] the
//! Parquet type mapping; [`read`] reads both back for `ferry verify`).

pub mod parquet;
pub mod read;
mod writer;

pub use writer::{manifest_name, manifest_of, CommitManifest, FilesOptions, FilesWriter, COMMITTED};

use crate::catalog::create::{AdminError, TableAdmin};
use crate::connector::{PreparedSink, SinkConnector, SinkWriter, WriterCtx};
use crate::plan::{Compiled, Section, TargetConfig};
use crate::runtime::TaskError;
use crate::store::Store;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::sync::Arc;

/// The `files` target (files in a local directory or an S3-compatible bucket).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FilesTarget {
    /// Output root: a local directory or `s3://bucket/prefix` (with the plan's `s3` settings);
    /// each table is written under `<path>/<database>/<table>/`.
    pub path: String,
    /// File format: `jsonl` (JSON lines, the default) or `parquet`.
    #[serde(default)]
    pub format: FileFormat,
    /// Rows per file at most; default `runtime.batch_rows` for JSON lines, 1000000 for Parquet
    /// (a file also ends at every checkpoint).
    #[serde(default)]
    pub max_file_rows: Option<usize>,
    /// Bytes per file at most, e.g. `64MiB` (Parquet: encoded, plus up to 8,192 rows not
    /// encoded yet); default `128MiB`. Files above 8 MiB go to S3 as multipart uploads.
    #[serde(default = "FilesTarget::default_max_file_bytes")]
    pub max_file_bytes: String,
}

impl FilesTarget {
    fn default_max_file_bytes() -> String {
        "128MiB".into()
    }

    /// Checks the section's values together.
    pub fn validate(&self) -> Result<(), String> {
        if self.path.trim().is_empty() {
            return Err("`path` is empty: write a directory (./out) or s3://bucket/prefix".into());
        }
        if self.path.strip_prefix("s3://").is_some_and(|r| r.split('/').next().unwrap_or("").is_empty()) {
            return Err(format!("`path: {}` names no bucket: write s3://<bucket>/<prefix>", self.path));
        }
        if self.max_file_rows == Some(0) {
            return Err("`max_file_rows: 0`: write a number of rows ≥ 1, or leave it out".into());
        }
        self.max_bytes().map(|_| ())
    }

    /// `max_file_bytes` in bytes.
    pub fn max_bytes(&self) -> Result<usize, String> {
        parse_bytes(&self.max_file_bytes).ok_or_else(|| {
            format!("target.max_file_bytes: `{}` is not a size; write e.g. 64MiB, 1GiB or 500000", self.max_file_bytes)
        })
    }

    /// Rows per file at most.
    pub fn max_rows(&self, batch_rows: usize) -> usize {
        self.max_file_rows.unwrap_or(match self.format {
            FileFormat::Jsonl => batch_rows,
            FileFormat::Parquet => 1_000_000,
        })
    }
}

/// A size such as `500000`, `64KiB`, `64MiB`, `1GiB` (also `KB`/`MB`/`GB` as powers of 1000).
pub fn parse_bytes(text: &str) -> Option<usize> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: usize = n.parse().ok()?;
    let mul = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mul).filter(|&b| b > 0)
}

/// Output file formats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// One JSON object per line.
    #[default]
    Jsonl,
    /// Apache Parquet, one schema per file.
    Parquet,
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
        at.parse_checked::<FilesTarget>(section, FilesTarget::validate).map(|c| Arc::new(c) as Arc<dyn TargetConfig>)
    }

    fn prepare(&self, plan: &Compiled, from_scratch: bool, fresh: bool) -> Result<PreparedSink, TaskError> {
        // A location that cannot be listed (no such bucket, refused credentials, the service
        // down) fails the run naming the setting, before anything is read.
        let out = open(plan)?;
        let manifests = format!("{COMMITTED}/{}", plan.plan.settings.task);
        out.list(&manifests).map_err(|e| {
            TaskError::transient(format!(
                "the files target at {} cannot be used ({}): check target.path and the plan's s3 section",
                crate::secrets::redact(&config(plan).path),
                crate::secrets::redact(&e.to_string())
            ))
        })?;
        if fresh {
            // Commit manifests of an earlier task of this name whose state is gone: they must
            // not mark this task's epochs committed.
            out.delete_prefix(&manifests).map_err(TaskError::transient)?;
        }
        if !from_scratch {
            return Ok(PreparedSink::default());
        }
        // The task's output tables go with its state.
        for t in &plan.tables {
            let Some((d, tb)) = &t.static_names else { continue };
            out.delete_prefix(&format!("{d}/{tb}")).map_err(TaskError::transient)?;
        }
        out.delete_prefix(".staging").map_err(TaskError::transient)?;
        out.delete_prefix(&format!("{COMMITTED}/{}", plan.plan.settings.task)).map_err(TaskError::transient)?;
        Ok(PreparedSink::default())
    }

    fn verify_reader(&self, plan: &Compiled) -> Result<Box<dyn crate::connector::verify::TableReader>, String> {
        let upsert = plan.plan.settings.write_mode == crate::plan::config::WriteMode::Upsert;
        let exactly_once = plan.plan.settings.semantics == crate::plan::config::Semantics::ExactlyOnce;
        let store = open(plan).map_err(|e| format!("target: {e}"))?;
        Ok(Box::new(read::FilesReader::new(store, upsert, exactly_once)))
    }

    fn writer(&self, cx: &WriterCtx) -> Result<Box<dyn SinkWriter>, TaskError> {
        let out = open(&cx.plan)?;
        let c = config(&cx.plan);
        let opts = FilesOptions {
            worker: cx.worker,
            run: cx.run,
            format: c.format,
            max_rows: c.max_rows(cx.plan.plan.settings.runtime.batch_rows),
            max_bytes: c.max_bytes().map_err(TaskError::definite)?,
            replay_upto: cx.replay_upto,
        };
        Ok(Box::new(FilesWriter::new(cx.plan.clone(), out, cx.state.clone(), opts).map_err(TaskError::transient)?))
    }

    fn admin(&self, plan: &Compiled) -> Result<Option<Box<dyn TableAdmin>>, String> {
        Ok(Some(Box::new(DirAdmin(open(plan).map_err(|e| e.to_string())?))))
    }
}

/// Opens the target's root (a local directory or an S3 prefix).
fn open(plan: &Compiled) -> Result<Store, TaskError> {
    Store::open(&config(plan).path, &plan.plan.settings.s3).map_err(TaskError::definite)
}

/// A files target's "tables" are folders: they exist (hold an object) or not; no DDL.
struct DirAdmin(Store);

impl TableAdmin for DirAdmin {
    fn table_exists(&mut self, database: &str, table: &str) -> Result<bool, AdminError> {
        let objects =
            self.0.list(&format!("{database}/{table}")).map_err(|e| AdminError::Unreachable(e.to_string()))?;
        Ok(!objects.is_empty())
    }

    fn execute(&mut self, _statement: &str) -> Result<(), AdminError> {
        Err(AdminError::Refused("a files target takes no DDL".into()))
    }
}
