//! The mapping preview (F4.1, F4.2, F5.2): one line per selected source table with its
//! resolved target, whether the target exists, the key used, the primary-key verdict for the
//! plan's semantics × write mode, what `create-tables` would do, and the type-loss report.

use super::create::TableAdmin;
use super::ddl;
use super::types::{Loss, LossKind};
use super::DdlDialect;
use crate::plan::config::{ExistingTable, MissingTable, Semantics, WriteMode};
use crate::plan::Compiled;
use ferry_operators::TableSchema;
use serde::Serialize;
use std::collections::BTreeMap;

/// The F4.2 message for a table without a key.
pub const NO_KEY: &str =
    "no primary key or unique index: remove it from the source selection or use at-least-once + append";

/// The key a table is written by.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    /// `primary`, `unique` or `none`.
    pub kind: &'static str,
    /// Its source columns.
    pub columns: Vec<String>,
}

/// Whether a table may run under a semantics × write mode (`None`: it may).
pub fn verdict(source: &TableSchema, target: &TableSchema, semantics: Semantics, mode: WriteMode) -> Option<String> {
    let strict = semantics == Semantics::ExactlyOnce || mode == WriteMode::Upsert;
    if !strict {
        return None;
    }
    if !source.has_key() {
        return Some(NO_KEY.into());
    }
    if target.row_key().is_empty() {
        return Some("a key column is dropped by the plan's transform: keep it or use at-least-once + append".into());
    }
    None
}

/// One type-loss line of a table.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnLoss {
    /// Target column.
    pub column: String,
    /// Source type.
    pub source_type: String,
    /// Target type.
    pub target_type: String,
    /// The loss.
    #[serde(flatten)]
    pub loss: Loss,
}

/// A source column as the preview shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SourceColumn {
    /// Its name.
    pub name: String,
    /// Its record-model type, SQL-like (`BIGINT`, `VARCHAR(20)`): what a sampled Kafka topic
    /// was found to carry, or what the source's catalog says.
    #[serde(rename = "type")]
    pub ty: String,
    /// Whether it may be NULL.
    pub nullable: bool,
}

/// One table of the preview.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Source `db.table`.
    pub source: String,
    /// The source table's columns.
    pub columns: Vec<SourceColumn>,
    /// Target `db.table` (the templates' text when it depends on record fields).
    pub target: String,
    /// Whether the target table exists (`None`: unknown, or a target without tables).
    pub target_exists: Option<bool>,
    /// The key used.
    pub key: KeyInfo,
    /// The verdict for the plan's semantics and write mode: `None` means it runs.
    pub verdict: Option<String>,
    /// The verdicts of all four combinations, e.g. `exactly-once+upsert`.
    pub verdicts: BTreeMap<String, Option<String>>,
    /// What `create-tables` would do: `create`, `skip`, `use-existing`, `drop-and-recreate`.
    pub action: Option<&'static str>,
    /// The DDL comes from this file.
    pub ddl_file: Option<String>,
    /// Type loss (in the target's dialect).
    pub losses: Vec<ColumnLoss>,
}

/// The preview of a compiled (lenient) plan; `exists` checks target tables.
pub fn preview(
    plan: &Compiled,
    dialect: Option<DdlDialect>,
    admin: Option<&mut dyn TableAdmin>,
) -> Result<Vec<Row>, String> {
    let settings = &plan.plan.settings;
    let exists = target_exists(plan, admin)?;
    let mut rows = Vec::new();
    for (i, (source, tp)) in plan.catalog.tables.iter().zip(&plan.tables).enumerate() {
        let target = &tp.target_schema;
        let key_cols = |k: &[usize]| k.iter().map(|&c| source.columns[c].name.clone()).collect::<Vec<_>>();
        let key = if !source.primary_key.is_empty() {
            KeyInfo { kind: "primary", columns: key_cols(&source.primary_key) }
        } else if source.has_key() {
            KeyInfo { kind: "unique", columns: key_cols(source.row_key()) }
        } else {
            KeyInfo { kind: "none", columns: Vec::new() }
        };
        let mut verdicts = BTreeMap::new();
        for s in [Semantics::AtLeastOnce, Semantics::ExactlyOnce] {
            for m in [WriteMode::Upsert, WriteMode::Append] {
                verdicts.insert(combo(s, m), verdict(source, target, s, m));
            }
        }
        let exists_here = exists.get(i).copied().flatten();
        let (missing, existing) = super::create::strategies(settings, &source.name.to_string());
        let action = exists_here.map(|e| match (e, missing, existing) {
            (false, MissingTable::Create, _) => "create",
            (false, MissingTable::Skip, _) => "skip",
            (true, _, ExistingTable::UseExisting) => "use-existing",
            (true, _, ExistingTable::DropAndRecreate) => "drop-and-recreate",
        });
        let mut losses = Vec::new();
        let mut ddl_file = None;
        if let Some(d) = dialect {
            if let Ok(t) = ddl::table_ddl(plan, i as u32, d) {
                ddl_file = t.file.clone();
                for c in t.columns {
                    for l in c.losses {
                        losses.push(ColumnLoss {
                            column: c.column.clone(),
                            source_type: c.source_type.clone(),
                            target_type: c.target_type.clone(),
                            loss: l,
                        });
                    }
                }
            }
        }
        rows.push(Row {
            source: source.name.to_string(),
            columns: source
                .columns
                .iter()
                .map(|c| SourceColumn { name: c.name.clone(), ty: c.ty.sql_name(), nullable: c.nullable })
                .collect(),
            target: match &tp.static_names {
                Some((d, t)) => format!("{d}.{t}"),
                None => target.name.to_string(),
            },
            target_exists: exists_here,
            key,
            verdict: verdict(source, target, settings.semantics, settings.write_mode),
            verdicts,
            action,
            ddl_file,
            losses,
        });
    }
    Ok(rows)
}

/// `exactly-once+upsert` and the like.
pub fn combo(s: Semantics, m: WriteMode) -> String {
    let s = match s {
        Semantics::AtLeastOnce => "at-least-once",
        Semantics::ExactlyOnce => "exactly-once",
    };
    let m = match m {
        WriteMode::Upsert => "upsert",
        WriteMode::Append => "append",
    };
    format!("{s}+{m}")
}

/// Per selected table, whether its target exists (`None` where it cannot be known: no admin
/// connection, or a name from a template).
fn target_exists(plan: &Compiled, admin: Option<&mut dyn TableAdmin>) -> Result<Vec<Option<bool>>, String> {
    let Some(db) = admin else { return Ok(vec![None; plan.tables.len()]) };
    let names: Vec<(&str, &str)> =
        plan.tables.iter().filter_map(|tp| tp.static_names.as_ref().map(|(d, t)| (d.as_str(), t.as_str()))).collect();
    let mut found = db.tables_exist(&names).map_err(|e| format!("target: {e}"))?.into_iter();
    Ok(plan.tables.iter().map(|tp| tp.static_names.as_ref().and_then(|_| found.next())).collect())
}

/// The preview as a table for people.
pub fn render(rows: &[Row], plan: &Compiled, dialect: Option<DdlDialect>) -> String {
    let settings = &plan.plan.settings;
    let head = [
        "source",
        "target",
        "exists",
        "key",
        "action",
        &format!("verdict ({})", combo(settings.semantics, settings.write_mode)),
    ];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.source.clone(),
                r.target.clone(),
                match r.target_exists {
                    Some(true) => "yes".into(),
                    Some(false) => "no".into(),
                    None => "-".into(),
                },
                match r.key.kind {
                    "none" => "none".into(),
                    k => {
                        format!("{} ({})", if k == "primary" { "PRIMARY" } else { "UNIQUE" }, r.key.columns.join(", "))
                    }
                },
                r.action.unwrap_or("-").to_string(),
                r.verdict.clone().unwrap_or_else(|| "ok".into()),
            ]
        })
        .collect();
    let mut widths = head.map(|h| h.chars().count());
    for c in &cells {
        for (w, x) in widths.iter_mut().zip(c.iter()).take(5) {
            *w = (*w).max(x.chars().count());
        }
    }
    let line = |c: &[String]| {
        let mut s = String::new();
        for (i, x) in c.iter().enumerate() {
            if i < 5 {
                s.push_str(&format!("{x:<w$}  ", w = widths[i]));
            } else {
                s.push_str(x);
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(&head.map(String::from));
    for (c, r) in cells.iter().zip(rows) {
        out.push_str(&line(c));
        if let Some(f) = &r.ddl_file {
            out.push_str(&format!("    DDL from {f}\n"));
        }
        for l in &r.losses {
            let tag = match l.loss.kind {
                LossKind::Refused => "refused",
                LossKind::Changed => "changed",
                LossKind::Note => "note",
            };
            out.push_str(&format!(
                "    {tag:<7} {} ({} → {}): {}\n",
                l.column, l.source_type, l.target_type, l.loss.what
            ));
        }
    }
    let refused = rows.iter().filter(|r| r.verdict.is_some()).count();
    let lossy = rows.iter().filter(|r| r.losses.iter().any(|l| l.loss.kind != LossKind::Note)).count();
    out.push_str(&format!(
        "{} tables; {} refused by the primary-key rule; {} with type loss{}\n",
        rows.len(),
        refused,
        lossy,
        match dialect {
            Some(DdlDialect::Postgres) =>
                format!(" (into postgres; target_tables.postgres: {})", settings.target_tables.postgres.describe()),
            Some(d) => format!(" (into {})", d.name()),
            None => String::new(),
        }
    ));
    out
}
