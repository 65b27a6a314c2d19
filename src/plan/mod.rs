//! Plans: loading, checking and compiling a plan file.
//!
//! ```text
//!  plan.yaml ──yaml::parse──► JSON tree + marks ──${env:..}──► PlanFile (serde, deny_unknown_fields)
//!      │                                                           │
//!      └──────── every error: file:line:column, key, how to fix ◄──┤
//!                                                                  ▼
//!                        source discovery (catalog) ──► compile ──► Compiled { plan, catalog, tables }
//! ```
//!
//! [`load`] collects *all* errors of a plan at once; [`Compiled`] is the runtime form the
//! engine builds its dataflow from (config kept apart from what it builds). The `source:` and
//! `target:` sections are parsed by their connectors, which the caller passes in as
//! [`connect::Connectors`] (the plan knows no connector; see [`connect`]).

mod check;
mod compile;
pub mod config;
pub mod connect;
pub mod discovery;
pub mod yaml;

pub use check::load;
pub use compile::{compile, Compiled, TablePlan};
pub use connect::{Connectors, DiscoverError, Section, SourceConfig, TargetConfig, Wanted};
pub use discovery::SourceCatalog;

use crate::secrets;
use config::*;
use std::fmt;

/// One problem in a plan, with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    /// The plan file.
    pub file: String,
    /// Line and column (1-based).
    pub line: usize,
    /// Column (1-based).
    pub col: usize,
    /// The key path, e.g. `runtime.workers`.
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = if self.key.is_empty() { String::new() } else { format!("`{}`: ", self.key) };
        write!(f, "{}:{}:{}: {}{}", self.file, self.line, self.col, key, secrets::redact(&self.message))
    }
}

/// All errors of a plan.
#[derive(Debug, Clone, thiserror::Error)]
pub struct PlanErrors(pub Vec<PlanError>);

impl fmt::Display for PlanErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// The source connector's type and its parsed section.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    /// The `type` as written (`mysql`, `mariadb`, `datagen`, …).
    pub kind: String,
    /// The section as its connector parsed it.
    pub config: std::sync::Arc<dyn SourceConfig>,
}

impl SourceSpec {
    /// The connector's own config type, when it is `T`.
    pub fn config_as<T: 'static>(&self) -> Option<&T> {
        connect::config_as(self.config.as_any())
    }
}

/// The target connector's type and its parsed section.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    /// The `type` as written (`files`, `postgres`, `mariadb`, …).
    pub kind: String,
    /// The section as its connector parsed it.
    pub config: std::sync::Arc<dyn TargetConfig>,
}

impl TargetSpec {
    /// The connector's own config type, when it is `T`.
    pub fn config_as<T: 'static>(&self) -> Option<&T> {
        connect::config_as(self.config.as_any())
    }
}

/// A checked plan (before source discovery).
#[derive(Debug, Clone)]
pub struct Plan {
    /// The plan file's path as given.
    pub file: String,
    /// The plan text as written (secrets still as `${env:NAME}`).
    pub text: String,
    /// The parsed plan file (read inside `plan` only; the rest of the program reads
    /// [`Plan::settings`] and the compiled tables).
    raw: PlanFile,
    /// What a run needs of the plan file besides its tables.
    pub settings: Settings,
    /// Source connector.
    pub source: SourceSpec,
    /// Source data source name.
    pub source_name: String,
    /// Target connector.
    pub target: TargetSpec,
    /// Checkpoint interval in milliseconds.
    pub checkpoint_ms: u64,
}

/// What a run needs of a plan file besides its tables, taken from the checked file once:
/// the connector sections and the table-level parts (selection, routes, transforms, metadata)
/// are compiled elsewhere ([`SourceSpec`], [`TargetSpec`], [`Compiled::tables`]). Nothing
/// outside `plan` reads the plan file's own structs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The task's name (its state is `<runtime.state>/<task>/`).
    pub task: String,
    /// Read mode (F2.2).
    pub mode: ReadMode,
    /// Consistency semantics (F2.3).
    pub semantics: Semantics,
    /// Write mode (F3.1).
    pub write_mode: WriteMode,
    /// Change kinds to skip (F2.4).
    pub operations: OperationFilter,
    /// Workers, state store, batch size.
    pub runtime: RuntimeConfig,
    /// Rejected rows, restarts, the dirty-data archive.
    pub errors: ErrorsConfig,
    /// Settings of `s3://` locations.
    pub s3: S3Config,
    /// Target table strategies.
    pub target_tables: TargetTablesConfig,
    /// Schema-change policies.
    pub schema_changes: SchemaChangesConfig,
    /// `ferry verify` settings.
    pub verify: VerifyConfig,
    /// The task service's alert rules and webhook.
    pub alerts: config::AlertsConfig,
}

impl Settings {
    /// The settings of a checked plan file.
    pub fn of(raw: &PlanFile) -> Settings {
        Settings {
            task: raw.task.clone(),
            mode: raw.mode,
            semantics: raw.semantics,
            write_mode: raw.write_mode,
            operations: raw.operations.clone(),
            runtime: raw.runtime.clone(),
            errors: raw.errors.clone(),
            s3: raw.s3.clone(),
            target_tables: raw.target_tables.clone(),
            schema_changes: raw.schema_changes.clone(),
            verify: raw.verify.clone(),
            alerts: raw.alerts.clone(),
        }
    }

    /// Opens the state store (`runtime.state`: a local directory, or `s3://bucket/prefix` with
    /// the plan's `s3` settings).
    pub fn state_store(&self) -> Result<crate::store::Store, crate::store::StoreError> {
        crate::store::Store::open(&self.runtime.state, &self.s3)
    }

    /// Whether schema events reach the sinks (`operations.skip` does not name `ddl`).
    pub fn delivers_ddl(&self) -> bool {
        !self.operations.skip.contains(&OpKind::Ddl)
    }
}

/// `path` as written in the plan file `plan`: relative paths are relative to the plan file's
/// directory.
pub fn relative_to(plan: &str, path: &str) -> String {
    let p = std::path::Path::new(path);
    if p.is_absolute() {
        return path.to_string();
    }
    match std::path::Path::new(plan).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(p).to_string_lossy().into_owned(),
        _ => path.to_string(),
    }
}

/// Discovers the source tables the plan selects (a source may report more). Contacts the
/// source when it is a server: connectivity, credentials and the change-data preconditions are
/// checked here.
pub fn discover(plan: &Plan) -> Result<SourceCatalog, DiscoverError> {
    let selection = compile::Selection::new(&plan.raw.tables);
    let databases = selection.database_filter();
    plan.source.config.discover(Wanted::new(&|name| selection.takes_table(name), &|db| databases.may_hold(db)))
}

/// Loads, checks and compiles a plan file from disk.
pub fn load_file(connectors: &dyn Connectors, path: &str) -> Result<Compiled, PlanErrors> {
    load_file_with(connectors, path, true)
}

/// Like [`load_file`], but tables that break the primary-key rule (F4.2) stay in the compiled
/// plan: for `ferry preview`, which shows every table with its verdict.
pub fn load_file_lenient(connectors: &dyn Connectors, path: &str) -> Result<Compiled, PlanErrors> {
    load_file_with(connectors, path, false)
}

fn load_file_with(connectors: &dyn Connectors, path: &str, key_rule: bool) -> Result<Compiled, PlanErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        PlanErrors(vec![PlanError {
            file: path.into(),
            line: 0,
            col: 0,
            key: String::new(),
            message: format!("cannot read the plan: {e}"),
        }])
    })?;
    let plan = load(connectors, path, &text)?;
    let catalog = discover(&plan).map_err(|e| {
        let key = e.key;
        let pos = yaml::parse(&plan.text).map(|d| d.pos(key, false)).unwrap_or_default();
        PlanErrors(vec![PlanError {
            file: path.into(),
            line: pos.line,
            col: pos.col,
            key: key.into(),
            message: e.to_string(),
        }])
    })?;
    // What the selected tables need on the source, located at the source's key.
    let selected = |compiled: Compiled| -> Result<Compiled, PlanErrors> {
        let checked = compiled
            .plan
            .source
            .config
            .check_selected(&compiled.catalog.tables)
            .and_then(|()| compiled.plan.target.config.check_compiled(&compiled));
        checked.map_err(|e| {
            let pos = yaml::parse(&compiled.plan.text).map(|d| d.pos(e.key, false)).unwrap_or_default();
            PlanErrors(vec![PlanError {
                file: path.into(),
                line: pos.line,
                col: pos.col,
                key: e.key.into(),
                message: e.to_string(),
            }])
        })?;
        Ok(compiled)
    };
    if key_rule {
        return selected(compile(plan, &catalog)?);
    }
    let (semantics, write_mode) = (plan.raw.semantics, plan.raw.write_mode);
    let mut relaxed = plan;
    relaxed.raw.semantics = Semantics::AtLeastOnce;
    relaxed.raw.write_mode = WriteMode::Append;
    let mut compiled = compile(relaxed, &catalog)?;
    compiled.plan.raw.semantics = semantics;
    compiled.plan.raw.write_mode = write_mode;
    compiled.plan.settings = Settings::of(&compiled.plan.raw);
    selected(compiled)
}
