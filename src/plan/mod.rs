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

pub mod config;
pub mod connect;
pub mod discovery;
pub mod yaml;

pub use connect::{Connectors, DiscoverError, Section, SourceConfig, TargetConfig};
pub use discovery::SourceCatalog;

use crate::secrets;
use config::*;
use ferry_operators::expr::Expr;
use ferry_operators::schema::{Catalog, Column, TableId, TableSchema};
use ferry_operators::template::{check_name, Names, Template};
use ferry_operators::transform::{OpFilter, Proj, Transform};
use regex::Regex;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;
use std::fmt;
use yaml::{Doc, Pos};

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
    /// The parsed plan.
    pub raw: PlanFile,
    /// Source connector.
    pub source: SourceSpec,
    /// Source data source name.
    pub source_name: String,
    /// Target connector.
    pub target: TargetSpec,
    /// Checkpoint interval in milliseconds.
    pub checkpoint_ms: u64,
}

/// The compiled route and transform of one selected source table.
#[derive(Debug, Clone)]
pub struct TablePlan {
    /// Target database name template.
    pub database: Template,
    /// Target table name template.
    pub table: Template,
    /// The names when both templates are static.
    pub static_names: Option<(String, String)>,
    /// Operation filter, row filter and projection.
    pub transform: Transform,
    /// The row filter's text, to compile it again for a changed source schema.
    pub filter_src: Option<String>,
    /// Name and text of every expression column (added and metadata), in projection order.
    pub exprs: Vec<(String, String)>,
    /// Source columns the plan drops (by name).
    pub dropped: Vec<String>,
    /// The target table's schema (name: the static target name, or the templates' text).
    pub target_schema: TableSchema,
}

/// A plan compiled against the source's catalog: what the dataflow is built from.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The checked plan.
    pub plan: Plan,
    /// The selected source tables; a [`TableId`] indexes this and `tables`.
    pub catalog: Catalog,
    /// Per selected table, its route and transform.
    pub tables: Vec<TablePlan>,
    /// Per selected table, per column, the source character set (MySQL-family sources).
    pub charsets: Vec<Vec<Option<String>>>,
    /// Per selected table, per column, the source collation of text columns (MySQL-family
    /// sources).
    pub collations: Vec<Vec<Option<String>>>,
    /// Per selected table, the source's table comment and column details (MySQL-family
    /// sources; default for generated ones): what a target DDL needs beyond the types.
    pub details: Vec<discovery::TableDetail>,
    /// Per selected table, the columns a database target dropped in earlier runs (policy
    /// `auto`): rows replayed from before the drop do not bring them back.
    pub ddl_dropped: Vec<Vec<String>>,
    /// The plan's table selection, compiled.
    selection: Selection,
}

/// `tables.include` minus `tables.exclude`, compiled once: which source tables a plan takes.
#[derive(Debug, Clone)]
struct Selection {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
}

impl Selection {
    /// From a checked plan (its patterns compile).
    fn new(tables: &TableSelection) -> Selection {
        let re = |p: &String| Regex::new(&format!("^(?:{p})$")).expect("checked regex");
        Selection { include: tables.include.iter().map(re).collect(), exclude: tables.exclude.iter().map(re).collect() }
    }

    /// Whether `db.table` is taken.
    fn takes(&self, name: &str) -> bool {
        self.include.iter().any(|r| r.is_match(name)) && !self.exclude.iter().any(|r| r.is_match(name))
    }
}

impl Compiled {
    /// Whether the plan's selection (`tables.include` minus `tables.exclude`) takes the
    /// source table `db.table`.
    pub fn selects(&self, name: &str) -> bool {
        self.selection.takes(name)
    }

    /// The compiled plan of one table.
    pub fn table(&self, id: TableId) -> &TablePlan {
        &self.tables[id as usize]
    }

    /// The transform and target schema of a table whose source schema changed while running.
    ///
    /// Columns the plan writes keep their order; a source column that disappeared leaves the
    /// target schema when the plan follows drops (`schema_changes` `auto` without
    /// `keep_dropped_columns`; keys are remapped, rows are routed by their own schema's key),
    /// else it is written as NULL. Expressions are compiled again against the new source
    /// schema, and source columns the plan has never seen are appended at the end (unless the
    /// plan drops them by name, or its policy for added columns is not `auto`: then the target
    /// keeps its columns).
    pub fn evolve(&self, id: TableId, source: &TableSchema) -> Result<(Transform, TableSchema), String> {
        let tp = self.table(id);
        let compiled = self.catalog.get(id);
        let fail = |e: ferry_operators::expr::ExprError| {
            format!("table {} after its schema changed: {}", source.name, e.message)
        };
        let mut exprs = tp.exprs.iter();
        let mut projection = Vec::new();
        let mut columns = Vec::new();
        let follow_drops = self.plan.raw.schema_changes.follows_drops();
        // Positions (in the plan's target schema) of columns this version does not have.
        let mut absent: Vec<usize> = Vec::new();
        for (pos, (p, target)) in tp.transform.projection.iter().zip(&tp.target_schema.columns).enumerate() {
            match p {
                Proj::Col(i) => match source.column_index(&compiled.columns[*i].name) {
                    Some(j) => {
                        projection.push(Proj::Col(j));
                        columns.push(target.clone());
                    }
                    // Not in this version of the source table: when the plan follows drops,
                    // the column leaves the target's rows (a restart may replay rows from before
                    // an added column too: the target gets it only with the ALTER), else NULL.
                    None if follow_drops => absent.push(pos),
                    None => {
                        projection.push(Proj::Expr(Box::new(Expr::compile("NULL", source).map_err(fail)?)));
                        columns.push(Column { nullable: true, ..target.clone() });
                    }
                },
                Proj::Expr(_) => {
                    let (_, text) = exprs.next().expect("one text per expression");
                    projection.push(Proj::Expr(Box::new(Expr::compile(text, source).map_err(fail)?)));
                    columns.push(target.clone());
                }
            }
        }
        // A new source column reaches the target only when the plan follows added columns.
        let add = ferry_operators::SchemaChangeKind::AddColumn { column: String::new(), spec: Default::default() };
        let follow_added = self.plan.raw.schema_changes.policy_for(&add) == DdlPolicy::Auto;
        for (j, c) in source.columns.iter().enumerate().filter(|_| follow_added) {
            let known = compiled.column_index(&c.name).is_some();
            let ddl_dropped = self.ddl_dropped.get(id as usize).into_iter().flatten();
            let dropped = tp.dropped.iter().chain(ddl_dropped).any(|d| d.eq_ignore_ascii_case(&c.name));
            if !known && !dropped {
                projection.push(Proj::Col(j));
                columns.push(Column { nullable: true, ..c.clone() });
            }
        }
        let filter = tp.filter_src.as_deref().map(|f| Expr::compile(f, source)).transpose().map_err(fail)?;
        // Keys keep pointing at their columns; a key that lost a column is no key any more.
        let base = &tp.target_schema;
        let moved = |i: usize| -> Option<usize> {
            (!absent.contains(&i)).then(|| i - absent.iter().filter(|&&a| a < i).count())
        };
        let remap = |key: &[usize]| -> Option<Vec<usize>> { key.iter().map(|&i| moved(i)).collect() };
        let target = TableSchema {
            columns,
            version: source.version,
            primary_key: remap(&base.primary_key).unwrap_or_default(),
            unique_keys: base.unique_keys.iter().filter_map(|k| remap(k)).collect(),
            name: base.name.clone(),
        };
        Ok((Transform::new(tp.transform.ops, filter, projection, source.columns.len()), target))
    }
}

struct Ctx<'a> {
    file: &'a str,
    doc: &'a Doc,
    errors: Vec<PlanError>,
}

impl Ctx<'_> {
    fn err_at(&mut self, path: &str, want_key: bool, message: impl Into<String>) {
        let p = self.doc.pos(path, want_key);
        self.push(p, path, message.into());
    }

    fn push(&mut self, p: Pos, path: &str, message: String) {
        self.errors.push(PlanError { file: self.file.into(), line: p.line, col: p.col, key: path.into(), message });
    }

    /// An error inside a scalar string value, `offset` bytes into its text.
    fn err_in_scalar(&mut self, path: &str, offset: usize, message: String) {
        let mut p = self.doc.pos(path, false);
        let text = path_value(&self.doc.root, path).and_then(|v| v.as_str().map(str::to_string));
        // Plain and quoted one-line scalars: the column of the offending character.
        if let Some(t) = text.filter(|t| !t.contains('\n')) {
            p.col += t[..offset.min(t.len())].chars().count() + usize::from(p.quoted);
        }
        self.push(p, path, message);
    }

    fn de<T: DeserializeOwned>(&mut self, value: &Json, path: &str) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(v) => Some(v),
            Err(e) => {
                let inner = e.path().to_string();
                let inner = if inner == "." { String::new() } else { inner };
                let full = match (path.is_empty(), inner.is_empty()) {
                    (_, true) => path.to_string(),
                    (true, false) => inner,
                    (false, false) if inner.starts_with('[') => format!("{path}{inner}"),
                    (false, false) => format!("{path}.{inner}"),
                };
                let msg = e.into_inner().to_string();
                self.serde_error(&full, msg);
                None
            }
        }
    }

    fn serde_error(&mut self, path: &str, msg: String) {
        // Point unknown keys at the key itself, missing keys at their parent.
        if let Some(rest) = msg.strip_prefix("unknown field `") {
            let field = rest.split('`').next().unwrap_or("");
            let key_path = if path.ends_with(field) { path.to_string() } else { join(path, field) };
            let expected = rest.split_once(", expected ").map(|(_, e)| e).unwrap_or("");
            let hint = if expected.is_empty() { String::new() } else { format!("; expected {expected}") };
            self.err_at(&key_path, true, format!("unknown key `{field}`: remove it or fix its spelling{hint}"));
        } else if let Some(rest) = msg.strip_prefix("missing field `") {
            let field = rest.split('`').next().unwrap_or("");
            self.err_at(path, true, format!("missing required key `{field}`: add `{field}:` here"));
        } else {
            self.err_at(path, false, msg);
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.into()
    } else {
        format!("{path}.{key}")
    }
}

fn path_value<'a>(root: &'a Json, path: &str) -> Option<&'a Json> {
    let mut cur = root;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let (name, idx) = match seg.find('[') {
            Some(i) => (&seg[..i], Some(&seg[i..])),
            None => (seg, None),
        };
        if !name.is_empty() {
            cur = cur.get(name)?;
        }
        if let Some(idx) = idx {
            for part in idx.split(']').filter(|s| !s.is_empty()) {
                cur = cur.get(part.trim_start_matches('[').parse::<usize>().ok()?)?;
            }
        }
    }
    Some(cur)
}

/// Replaces `${env:NAME}` in every string of the tree; registers the values as secrets.
fn substitute_env(value: &mut Json, path: &str, ctx: &mut Ctx<'_>) {
    match value {
        Json::String(s) if s.contains("${env:") => {
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(i) = rest.find("${env:") {
                out.push_str(&rest[..i]);
                let Some(end) = rest[i..].find('}') else {
                    ctx.err_at(path, false, "unclosed `${env:`: write `${env:NAME}`".to_string());
                    return;
                };
                let name = &rest[i + 6..i + end];
                match std::env::var(name) {
                    Ok(v) => {
                        secrets::register(&v);
                        out.push_str(&v);
                    }
                    Err(_) => ctx.err_at(
                        path,
                        false,
                        format!("environment variable `{name}` is not set: export it before running ferry"),
                    ),
                }
                rest = &rest[i + end + 1..];
            }
            out.push_str(rest);
            *s = out;
        }
        Json::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                substitute_env(v, &format!("{path}[{i}]"), ctx);
            }
        }
        Json::Object(map) => {
            for (k, v) in map.iter_mut() {
                substitute_env(v, &join(path, k), ctx);
            }
        }
        _ => {}
    }
}

fn connector_section(
    ctx: &mut Ctx<'_>,
    value: &Json,
    path: &str,
    known: &[&'static str],
    planned: &[&str],
) -> Option<(String, Option<String>, Json)> {
    let Some(obj) = value.as_object() else {
        ctx.err_at(path, false, format!("`{path}` must be a mapping with a `type` key"));
        return None;
    };
    let kind = match obj.get("type") {
        Some(Json::String(t)) => t.clone(),
        // YAML reads a bare `null` as the null value: that is the `null` connector.
        Some(Json::Null) => "null".to_string(),
        Some(_) => {
            ctx.err_at(&format!("{path}.type"), false, "`type` must be a string".to_string());
            return None;
        }
        None => {
            ctx.err_at(path, true, format!("missing required key `type`: one of {}", known.join(", ")));
            return None;
        }
    };
    if !known.contains(&kind.as_str()) {
        let msg = if planned.contains(&kind.as_str()) {
            format!(
                "{path} type `{kind}` is not in this build yet; this build has: {} (see `ferry links`)",
                known.join(", ")
            )
        } else {
            format!("unknown {path} type `{kind}`: use one of {} (see `ferry links`)", known.join(", "))
        };
        ctx.err_at(&format!("{path}.type"), false, msg);
        return None;
    }
    let name = match obj.get("name") {
        None | Some(Json::Null) => None,
        Some(Json::String(n)) => Some(n.clone()),
        Some(_) => {
            ctx.err_at(&format!("{path}.name"), false, "`name` must be a string".to_string());
            None
        }
    };
    let mut rest = obj.clone();
    rest.shift_remove("type");
    rest.shift_remove("name");
    Some((kind, name, Json::Object(rest)))
}

fn compile_regex(ctx: &mut Ctx<'_>, pattern: &str, path: &str) -> Option<Regex> {
    match Regex::new(&format!("^(?:{pattern})$")) {
        Ok(r) => Some(r),
        Err(e) => {
            let detail = e.to_string();
            let last = detail.lines().last().unwrap_or("").trim().to_string();
            ctx.err_at(path, false, format!("bad regular expression `{pattern}`: {last}"));
            None
        }
    }
}

/// Loads and checks a plan file's text, without contacting the source. Returns every error.
pub fn load(connectors: &dyn Connectors, file: &str, text: &str) -> Result<Plan, PlanErrors> {
    let doc = match yaml::parse(text) {
        Ok(d) => d,
        Err(e) => {
            return Err(PlanErrors(vec![PlanError {
                file: file.into(),
                line: e.pos.line,
                col: e.pos.col,
                key: String::new(),
                message: format!("YAML syntax: {}", e.message),
            }]))
        }
    };
    let mut ctx = Ctx { file, doc: &doc, errors: Vec::new() };
    let mut root = doc.root.clone();
    if !root.is_object() {
        ctx.err_at("", false, "a plan is a mapping with at least `task`, `source` and `target`".to_string());
        return Err(PlanErrors(ctx.errors));
    }
    substitute_env(&mut root, "", &mut ctx);
    // Deserialize; after an error in an optional section, drop that section and go on, so one
    // `check` shows the errors of every section at once.
    let raw = loop {
        let before = ctx.errors.len();
        if let Some(raw) = ctx.de::<PlanFile>(&root, "") {
            break Some(raw);
        }
        let failed = ctx.errors[before..].first().map(|e| e.key.clone()).unwrap_or_default();
        let top = failed.split(['.', '[']).next().unwrap_or("").to_string();
        let optional = !matches!(top.as_str(), "" | "task" | "source" | "target");
        let removed = optional && root.as_object_mut().is_some_and(|obj| obj.shift_remove(&top).is_some());
        if !removed {
            break None;
        }
    };
    let Some(raw) = raw else {
        return Err(PlanErrors(dedupe(ctx.errors)));
    };
    if raw.task.is_empty() || !raw.task.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        ctx.err_at("task", false, format!("task name `{}` must be letters, digits, `_` or `-`", raw.task));
    }
    let (sources, targets) = (connectors.source_types(), connectors.target_types());
    let source = connector_section(&mut ctx, &raw.source, "source", &sources, connectors.planned_sources()).and_then(
        |(kind, name, rest)| {
            let mut at = Section { ctx: &mut ctx, path: "source" };
            let config = connectors.parse_source(&kind, &rest, &mut at)?;
            Some((SourceSpec { kind: kind.clone(), config }, name.unwrap_or(kind)))
        },
    );
    let target = connector_section(&mut ctx, &raw.target, "target", &targets, connectors.planned_targets()).and_then(
        |(kind, _name, rest)| {
            let mut at = Section { ctx: &mut ctx, path: "target" };
            let config = connectors.parse_target(&kind, &rest, &mut at)?;
            Some(TargetSpec { kind, config })
        },
    );
    let checkpoint_ms = match parse_duration_ms(&raw.runtime.checkpoint_interval) {
        Ok(ms) if ms >= 10 => ms,
        Ok(_) => {
            ctx.err_at(
                "runtime.checkpoint_interval",
                false,
                "the checkpoint interval must be at least 10ms".to_string(),
            );
            0
        }
        Err(e) => {
            ctx.err_at("runtime.checkpoint_interval", false, e);
            0
        }
    };
    if raw.runtime.workers == 0 || raw.runtime.workers > 256 {
        ctx.err_at("runtime.workers", false, format!("workers must be 1..=256, got {}", raw.runtime.workers));
    }
    if !(-1..=100).contains(&raw.errors.max_restarts) {
        ctx.err_at(
            "errors.max_restarts",
            false,
            format!("max_restarts must be -1 (unlimited), 0 (none) or up to 100, got {}", raw.errors.max_restarts),
        );
    }
    if raw.runtime.batch_rows == 0 {
        ctx.err_at("runtime.batch_rows", false, "batch_rows must be at least 1".to_string());
    }
    for (i, p) in raw.tables.include.iter().enumerate() {
        compile_regex(&mut ctx, p, &format!("tables.include[{i}]"));
    }
    for (i, p) in raw.tables.exclude.iter().enumerate() {
        compile_regex(&mut ctx, p, &format!("tables.exclude[{i}]"));
    }
    for (i, t) in raw.transforms.iter().enumerate() {
        compile_regex(&mut ctx, &t.tables, &format!("transforms[{i}].tables"));
    }
    for (i, t) in raw.target_tables.tables.iter().enumerate() {
        compile_regex(&mut ctx, &t.tables, &format!("target_tables.tables[{i}].tables"));
        if let Some(f) = &t.ddl_file {
            let path = relative_to(file, f);
            if !std::path::Path::new(&path).is_file() {
                ctx.err_at(
                    &format!("target_tables.tables[{i}].ddl_file"),
                    false,
                    format!("no DDL file `{path}`: write one (`ferry ddl PLAN --table db.table` prints the generated DDL to start from) or remove the key"),
                );
            }
        }
    }
    if raw.target_tables.doris_buckets == Some(0) {
        ctx.err_at(
            "target_tables.doris_buckets",
            false,
            "buckets must be at least 1 (leave the key out for AUTO)".to_string(),
        );
    }
    let mut seen = std::collections::HashSet::new();
    for (i, m) in raw.metadata.iter().enumerate() {
        if !seen.insert(m.column.clone()) {
            ctx.err_at(
                &format!("metadata[{i}].column"),
                false,
                format!("metadata column `{}` is named twice", m.column),
            );
        }
    }
    // Templates parse on their own; unknown fields are checked against the catalog later.
    let routes = std::iter::once(("route".to_string(), &raw.route)).chain(
        raw.transforms
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.route.as_ref().map(|r| (format!("transforms[{i}].route"), r))),
    );
    let mut template_errors = Vec::new();
    for (path, r) in routes {
        for (k, t) in [("database", &r.database), ("table", &r.table)] {
            if let Some(t) = t {
                if let Err(e) = Template::parse(t) {
                    template_errors.push((format!("{path}.{k}"), e));
                }
            }
        }
    }
    for (p, e) in template_errors {
        ctx.err_in_scalar(&p, e.offset, e.message);
    }
    match (source, target, ctx.errors.is_empty()) {
        (Some((source, source_name)), Some(target), true) => {
            Ok(Plan { file: file.into(), text: text.into(), raw, source, source_name, target, checkpoint_ms })
        }
        _ => Err(PlanErrors(dedupe(ctx.errors))),
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

/// One error per place and key: the same mistake found for many tables is reported once, with
/// a count.
fn dedupe(errors: Vec<PlanError>) -> Vec<PlanError> {
    let mut out: Vec<(PlanError, usize)> = Vec::new();
    for e in errors {
        match out.iter_mut().find(|(o, _)| o.line == e.line && o.col == e.col && o.key == e.key) {
            Some((_, n)) => *n += 1,
            None => out.push((e, 0)),
        }
    }
    out.into_iter()
        .map(|(mut e, n)| {
            if n > 0 {
                e.message.push_str(&format!(" (and {n} more like it)"));
            }
            e
        })
        .collect()
}

/// Discovers the source's tables (every table, before selection). Contacts the source when it
/// is a server: connectivity, credentials and the change-data preconditions are checked here.
pub fn discover(source: &SourceSpec) -> Result<SourceCatalog, DiscoverError> {
    source.config.discover()
}

/// Compiles a checked plan against the source's full catalog: table selection, routes,
/// transforms, metadata columns and the key rule (F4.2). Returns every error.
pub fn compile(plan: Plan, source: &SourceCatalog) -> Result<Compiled, PlanErrors> {
    let full = &source.catalog;
    let mut charsets = Vec::new();
    let mut collations = Vec::new();
    let mut details = Vec::new();
    let doc = yaml::parse(&plan.text).expect("checked plan parses");
    let mut ctx = Ctx { file: &plan.file, doc: &doc, errors: Vec::new() };
    let raw = &plan.raw;
    let re = |p: &String| Regex::new(&format!("^(?:{p})$")).expect("checked regex");
    let selection = Selection::new(&raw.tables);
    let transforms: Vec<Regex> = raw.transforms.iter().map(|t| re(&t.tables)).collect();
    let mut catalog = Catalog::default();
    let mut tables = Vec::new();
    let ops = OpFilter {
        insert: !raw.operations.skip.contains(&OpKind::Insert),
        update: !raw.operations.skip.contains(&OpKind::Update),
        delete: !raw.operations.skip.contains(&OpKind::Delete),
    };
    let strict = raw.semantics == Semantics::ExactlyOnce || raw.write_mode == WriteMode::Upsert;
    for schema in &full.tables {
        let name = schema.name.to_string();
        if !selection.takes(&name) {
            continue;
        }
        let tx = transforms.iter().position(|r| r.is_match(&name));
        let tx_path = tx.map(|i| format!("transforms[{i}]"));
        let t = tx.map(|i| &raw.transforms[i]);
        if strict && !schema.has_key() {
            let why = match (raw.semantics, raw.write_mode) {
                (Semantics::ExactlyOnce, WriteMode::Upsert) => "exactly-once and upsert need",
                (Semantics::ExactlyOnce, _) => "exactly-once needs",
                _ => "upsert needs",
            };
            ctx.err_at(
                if raw.write_mode == WriteMode::Upsert { "write_mode" } else { "semantics" },
                false,
                format!(
                    "table {name}: no primary key or unique index; {why} one. Remove it from the source \
                     selection (`tables.exclude`) or use at-least-once + append"
                ),
            );
            continue;
        }
        // Route templates.
        let route = t.and_then(|t| t.route.as_ref());
        let route_path =
            if route.is_some() { format!("{}.route", tx_path.clone().unwrap_or_default()) } else { "route".into() };
        let pick = |k: &str, own: Option<&String>, task: &Option<String>, default: &str| -> (String, String) {
            match (own, task) {
                (Some(t), _) => (t.clone(), format!("{route_path}.{k}")),
                (None, Some(t)) => (t.clone(), format!("route.{k}")),
                (None, None) => (default.to_string(), format!("route.{k}")),
            }
        };
        let (db_src, db_path) =
            pick("database", route.and_then(|r| r.database.as_ref()), &raw.route.database, "${db_name_di_src}");
        let (tb_src, tb_path) =
            pick("table", route.and_then(|r| r.table.as_ref()), &raw.route.table, "${table_name_di_src}");
        let db_t = Template::parse(&db_src).expect("checked template");
        let tb_t = Template::parse(&tb_src).expect("checked template");
        let names = Names {
            datasource: &plan.source_name,
            database: &schema.name.database,
            schema: schema.name.schema.as_deref(),
            table: &schema.name.table,
            topic: None,
        };
        let mut ok = true;
        // Projection.
        let mut projection = Vec::new();
        let mut columns: Vec<Column> = Vec::new();
        let mut key_map = vec![None; schema.columns.len()];
        if let Some((t, p)) = t.zip(tx_path.as_ref()) {
            for (i, d) in t.drop.iter().enumerate() {
                if schema.column_index(d).is_none() {
                    ctx.err_at(&format!("{p}.drop[{i}]"), false, unknown_column(d, schema));
                    ok = false;
                }
            }
            for from in t.rename.keys() {
                if schema.column_index(from).is_none() {
                    ctx.err_at(&format!("{p}.rename.{from}"), true, unknown_column(from, schema));
                    ok = false;
                }
            }
        }
        for (i, c) in schema.columns.iter().enumerate() {
            if t.is_some_and(|t| t.drop.iter().any(|d| schema.column_index(d) == Some(i))) {
                continue;
            }
            let new_name = t
                .and_then(|t| t.rename.iter().find(|(from, _)| schema.column_index(from) == Some(i)))
                .map(|(_, to)| to.clone())
                .unwrap_or_else(|| c.name.clone());
            key_map[i] = Some(columns.len());
            projection.push(Proj::Col(i));
            columns.push(Column { name: new_name, ..c.clone() });
        }
        let mut added: Vec<(String, String, String)> = Vec::new();
        let mut exprs: Vec<(String, String)> = Vec::new();
        if let Some((t, p)) = t.zip(tx_path.as_ref()) {
            for (col, v) in &t.add {
                let path = format!("{p}.add.{col}");
                let text = match v {
                    Json::String(s) => s.clone(),
                    Json::Number(n) => n.to_string(),
                    Json::Bool(b) => b.to_string(),
                    Json::Null => "NULL".into(),
                    _ => {
                        ctx.err_at(
                            &path,
                            false,
                            "an added column is an expression string, e.g. `'eu'` or `upper(name)`".to_string(),
                        );
                        ok = false;
                        continue;
                    }
                };
                added.push((col.clone(), text, path));
            }
        }
        for (i, m) in raw.metadata.iter().enumerate() {
            added.push((m.column.clone(), m.field.expr().into(), format!("metadata[{i}].field")));
        }
        for (col, text, path) in added {
            exprs.push((col.clone(), text.clone()));
            match Expr::compile(&text, schema) {
                Ok(e) => {
                    columns.push(Column { name: col, ty: e.ty(), nullable: e.nullable() });
                    projection.push(Proj::Expr(Box::new(e)));
                }
                Err(e) => {
                    ctx.err_in_scalar(&path, e.offset, format!("in `{text}` for table {name}: {}", e.message));
                    ok = false;
                }
            }
        }
        {
            let mut seen = std::collections::HashSet::new();
            for c in &columns {
                if !seen.insert(c.name.to_ascii_lowercase()) {
                    // Point at what introduced the second copy: a rename, an added column, a metadata column.
                    let lower = c.name.to_ascii_lowercase();
                    let tx = tx_path.clone().unwrap_or_default();
                    let path = t
                        .and_then(|t| {
                            t.rename
                                .iter()
                                .find(|(_, to)| to.to_ascii_lowercase() == lower)
                                .map(|(from, _)| format!("{tx}.rename.{from}"))
                                .or_else(|| {
                                    t.add
                                        .keys()
                                        .find(|k| k.to_ascii_lowercase() == lower)
                                        .map(|k| format!("{tx}.add.{k}"))
                                })
                        })
                        .or_else(|| {
                            raw.metadata
                                .iter()
                                .position(|m| m.column.to_ascii_lowercase() == lower)
                                .map(|i| format!("metadata[{i}].column"))
                        })
                        .unwrap_or(tx);
                    ctx.err_at(
                        &path,
                        true,
                        format!("table {name}: target column `{}` appears twice; rename or drop one", c.name),
                    );
                    ok = false;
                }
            }
        }
        // Templates: `${field}` names a target column (after renames and added columns).
        let probe = TableSchema {
            name: schema.name.clone(),
            columns: columns.clone(),
            primary_key: vec![],
            unique_keys: vec![],
            version: 1,
        };
        for (tpl, path) in [(&db_t, &db_path), (&tb_t, &tb_path)] {
            if let Err(e) = tpl.check_fields(&probe) {
                ctx.err_in_scalar(path, e.offset, e.message);
                ok = false;
            } else if tpl.is_static() {
                let resolved = tpl.render(&names, None).expect("static template renders");
                if let Err(why) = check_name(&resolved) {
                    ctx.err_at(
                        path,
                        false,
                        format!("for table {name} the template `{tpl}` gives an illegal name: {why}"),
                    );
                    ok = false;
                }
            }
        }
        let filter = match t.and_then(|t| t.filter.as_ref()) {
            Some(f) => match Expr::compile(f, schema) {
                Ok(e) => Some(e),
                Err(e) => {
                    let path = format!("{}.filter", tx_path.clone().unwrap_or_default());
                    ctx.err_in_scalar(&path, e.offset, format!("bad filter for table {name}: {}", e.message));
                    ok = false;
                    None
                }
            },
            None => None,
        };
        let map_key = |k: &[usize]| -> Option<Vec<usize>> { k.iter().map(|&i| key_map[i]).collect() };
        let primary_key = map_key(schema.row_key()).unwrap_or_default();
        if strict && primary_key.is_empty() && ok {
            ctx.err_at(
                tx_path.as_deref().unwrap_or(""),
                true,
                format!(
                    "table {name}: a key column is dropped, but {} needs the key; keep it",
                    if raw.write_mode == WriteMode::Upsert { "upsert" } else { "exactly-once" }
                ),
            );
            ok = false;
        }
        if !ok {
            continue;
        }
        let static_names = (db_t.is_static() && tb_t.is_static())
            .then(|| (db_t.render(&names, None).expect("static"), tb_t.render(&names, None).expect("static")));
        let target_name = match &static_names {
            Some((d, t)) => ferry_operators::TableName::new(d.clone(), t.clone()),
            None => ferry_operators::TableName::new(db_t.to_string(), tb_t.to_string()),
        };
        let identity = projection.len() == schema.columns.len()
            && projection.iter().enumerate().all(|(i, p)| matches!(p, Proj::Col(c) if *c == i));
        let unique_keys = schema.unique_keys.iter().filter_map(|k| map_key(k)).collect();
        let target_schema =
            TableSchema { name: target_name, columns, primary_key, unique_keys, version: schema.version };
        catalog.tables.push(schema.clone());
        let ti = full.tables.iter().position(|t| t.name == schema.name).unwrap_or(0);
        charsets.push(source.charsets.get(ti).cloned().unwrap_or_default());
        collations.push(source.collations.get(ti).cloned().unwrap_or_default());
        details.push(source.details.get(ti).cloned().unwrap_or_default());
        let transform = Transform::new(ops, filter, projection, schema.columns.len());
        debug_assert_eq!(transform.identity, identity);
        let filter_src = t.and_then(|t| t.filter.clone());
        let dropped = t.map(|t| t.drop.clone()).unwrap_or_default();
        tables.push(TablePlan {
            database: db_t,
            table: tb_t,
            static_names,
            transform,
            filter_src,
            exprs,
            dropped,
            target_schema,
        });
    }
    if catalog.tables.is_empty() && ctx.errors.is_empty() {
        ctx.err_at("tables", true, "no source table matches `tables.include` minus `tables.exclude`".to_string());
    }
    // Two source tables must not write one static target table.
    let mut targets = std::collections::HashMap::new();
    for (i, t) in tables.iter().enumerate() {
        if let Some(n) = &t.static_names {
            if let Some(other) = targets.insert(n.clone(), i) {
                let (a, b) = (&catalog.tables[other].name, &catalog.tables[i].name);
                ctx.err_at(
                    "route",
                    true,
                    format!("{a} and {b} both map to {}.{}; give them distinct target names", n.0, n.1),
                );
            }
        }
    }
    if ctx.errors.is_empty() {
        Ok(Compiled { plan, catalog, tables, charsets, collations, details, ddl_dropped: Vec::new(), selection })
    } else {
        Err(PlanErrors(dedupe(ctx.errors)))
    }
}

fn unknown_column(name: &str, schema: &TableSchema) -> String {
    let cols: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    format!("table {} has no column `{name}`; its columns: {}", schema.name, cols.join(", "))
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
    let catalog = discover(&plan.source).map_err(|e| {
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
    if key_rule {
        return compile(plan, &catalog);
    }
    let (semantics, write_mode) = (plan.raw.semantics, plan.raw.write_mode);
    let mut relaxed = plan;
    relaxed.raw.semantics = Semantics::AtLeastOnce;
    relaxed.raw.write_mode = WriteMode::Append;
    let mut compiled = compile(relaxed, &catalog)?;
    compiled.plan.raw.semantics = semantics;
    compiled.plan.raw.write_mode = write_mode;
    Ok(compiled)
}
