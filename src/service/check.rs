//! The pre-submit checks of a task (`POST /api/tasks/{task}/check`, F10.3): every check with
//! `ok`, `warning` or `error` and a message. Errors block the start (state `check-error`);
//! warnings can be acknowledged.
//!
//! ```text
//!  plan text ─► plan valid ─► source reachable, privileges, binlog/WAL (discovery)
//!                          ─► primary-key rule, type loss, target tables (preview, target's admin)
//!                          ─► other tasks: same target table (error), same source table (warning)
//!                          ─► resources: processes × workers, connections, room on this machine
//! ```

use serde::Serialize;

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Passed.
    Ok,
    /// Passed with something to look at; can be acknowledged.
    Warning,
    /// Failed: the task does not start.
    Error,
}

/// One check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Its name: `plan`, `source`, `target`, `primary-keys`, `type-loss`, `target-tables`,
    /// `target-conflict`, `source-shared`, `resources`.
    pub name: &'static str,
    /// The verdict.
    pub level: Level,
    /// What was found, and how to fix it.
    pub message: String,
    /// A warning acknowledged by a client.
    pub acknowledged: bool,
}

impl Check {
    fn new(name: &'static str, level: Level, message: impl Into<String>) -> Check {
        Check { name, level, message: message.into(), acknowledged: false }
    }
}

/// What a compiled plan reads and writes: the tables the other tasks' checks compare with.
#[derive(Debug, Clone, Default)]
pub struct Footprint {
    /// `<target identity> <target table>` per selected table.
    pub writes: Vec<String>,
    /// `<source identity> <source table>` per selected table.
    pub reads: Vec<String>,
    /// Worker threads of a run.
    pub workers: usize,
}

/// The footprint of a compiled plan.
pub fn footprint(c: &crate::plan::Compiled) -> Footprint {
    let target = c.plan.target.config.identity();
    let source = format!("{} {}", c.plan.source.kind, c.plan.source_name);
    Footprint {
        writes: c.tables.iter().map(|t| format!("{target} {}", t.target_schema.name)).collect(),
        reads: c.catalog.tables.iter().map(|t| format!("{source} {}", t.name)).collect(),
        workers: c.plan.settings.runtime.workers,
    }
}

/// What [`run`] found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Every check.
    pub checks: Vec<Check>,
    /// The plan's footprint, if it compiled.
    pub footprint: Option<Footprint>,
    /// Plan errors with their places: `{line, col, key, message}`.
    pub located: Vec<serde_json::Value>,
    /// The mapping preview (`ferry preview --json`'s rows: target, key, verdict, type loss).
    pub preview: serde_json::Value,
}

/// Plan errors as `{line, col, key, message}` (the console marks their lines).
pub fn located(errors: &crate::plan::PlanErrors) -> Vec<serde_json::Value> {
    errors
        .0
        .iter()
        .map(|e| serde_json::json!({ "line": e.line, "col": e.col, "key": e.key, "message": e.message }))
        .collect()
}

/// Runs the checks of `yaml` (written to `file` first: plan-relative paths resolve there).
/// `others`: the other tasks' footprints, by task; `busy_workers`: workers of the runs alive
/// now.
pub fn run(file: &std::path::Path, yaml: &str, others: &[(String, Footprint)], busy_workers: usize) -> Outcome {
    let mut outcome = Outcome::default();
    let out = &mut outcome.checks;
    let path = file.to_string_lossy().into_owned();
    if let Err(e) = std::fs::write(file, yaml) {
        out.push(Check::new("plan", Level::Error, format!("cannot write {path}: {e}")));
        return outcome;
    }
    let plan = match crate::connectors::load(&path, yaml) {
        Ok(p) => p,
        Err(errors) => {
            let list: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
            out.push(Check::new("plan", Level::Error, list.join("\n")));
            outcome.located = located(&errors);
            return outcome;
        }
    };
    out.push(Check::new("plan", Level::Ok, "the plan is valid"));
    let compiled = match crate::connectors::load_file_lenient(&path) {
        Ok(c) => c,
        Err(errors) => {
            let list: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
            out.push(Check::new("source", Level::Error, list.join("\n")));
            outcome.located = located(&errors);
            return outcome;
        }
    };
    out.push(Check::new(
        "source",
        Level::Ok,
        format!(
            "{} `{}` reachable, privileges and change-data settings as needed; {} tables selected",
            plan.source.kind,
            plan.source_name,
            compiled.tables.len()
        ),
    ));
    let sink = crate::connectors::registry().sink(&compiled.plan.target.kind).expect("the plan's target was parsed");
    let mut admin = match sink.admin(&compiled) {
        Ok(a) => {
            out.push(Check::new("target", Level::Ok, format!("{} reachable", compiled.plan.target.config.describe())));
            a
        }
        Err(e) => {
            out.push(Check::new("target", Level::Error, e));
            None
        }
    };
    let dialect = crate::catalog::DdlDialect::of_plan(&compiled);
    match crate::catalog::preview::preview(
        &compiled,
        dialect,
        admin.as_deref_mut().map(|a| a as &mut dyn crate::catalog::create::TableAdmin),
    ) {
        Ok(rows) => {
            outcome.preview = serde_json::to_value(&rows).unwrap_or_default();
            let broken: Vec<String> =
                rows.iter().filter_map(|r| r.verdict.as_ref().map(|v| format!("{}: {v}", r.source))).collect();
            out.push(if broken.is_empty() {
                Check::new(
                    "primary-keys",
                    Level::Ok,
                    "every table has the key the plan's semantics and write mode need",
                )
            } else {
                Check::new("primary-keys", Level::Error, broken.join("\n"))
            });
            let losses: Vec<String> = rows
                .iter()
                .flat_map(|r| {
                    r.losses
                        .iter()
                        .map(move |l| format!("{}.{}: {} → {}", r.target, l.column, l.source_type, l.target_type))
                })
                .collect();
            out.push(if losses.is_empty() {
                Check::new("type-loss", Level::Ok, "every value survives the target's types")
            } else {
                Check::new(
                    "type-loss",
                    Level::Warning,
                    format!("{} column(s) lose values (see `ferry preview`): {}", losses.len(), losses.join("; ")),
                )
            });
            let missing = rows.iter().filter(|r| r.target_exists == Some(false)).count();
            let skipped: Vec<&str> = rows
                .iter()
                .filter(|r| r.target_exists == Some(false) && r.action == Some("skip"))
                .map(|r| r.target.as_str())
                .collect();
            out.push(if !skipped.is_empty() {
                Check::new(
                    "target-tables",
                    Level::Error,
                    format!("missing and not to be created (target_tables.missing: skip): {}", skipped.join(", ")),
                )
            } else {
                Check::new(
                    "target-tables",
                    Level::Ok,
                    format!("{} exist, {missing} will be created", rows.len() - missing),
                )
            });
        }
        Err(e) => out.push(Check::new("target-tables", Level::Error, e)),
    }
    let mine = footprint(&compiled);
    let mut conflicts = Vec::new();
    let mut shared = Vec::new();
    for (task, f) in others {
        if let Some(t) = mine.writes.iter().find(|w| f.writes.contains(w)) {
            conflicts.push(format!("task {task} writes the same target table ({t})"));
        }
        if let Some(t) = mine.reads.iter().find(|r| f.reads.contains(r)) {
            shared.push(format!("task {task} reads the same source table ({t})"));
        }
    }
    out.push(if conflicts.is_empty() {
        Check::new("target-conflict", Level::Ok, "no other task writes these target tables")
    } else {
        Check::new("target-conflict", Level::Error, conflicts.join("\n"))
    });
    out.push(if shared.is_empty() {
        Check::new("source-shared", Level::Ok, "no other task reads these source tables")
    } else {
        Check::new(
            "source-shared",
            Level::Warning,
            format!("{} (two readers load the source twice)", shared.join("\n")),
        )
    });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = mine.workers;
    let server_source = !matches!(compiled.plan.source.kind.as_str(), "datagen" | "files" | "kafka");
    let server_target = admin.is_some();
    let resources = format!(
        "1 process × {workers} worker(s); connections: {} to the source, {} to the target; {busy_workers} worker(s) \
         of other runs on {cores} core(s)",
        // (A PostgreSQL source's big tables without an integer key are read in ctid ranges by
        // helper sessions too: up to the workers less one more.)
        match (server_source, compiled.plan.source.kind.as_str()) {
            (false, _) => "0".into(),
            (true, "postgres") => (2 * workers + 1).to_string(),
            (true, _) => (workers + 2).to_string(),
        },
        if server_target { (workers + 1).to_string() } else { "0".into() },
    );
    out.push(if busy_workers + workers > 4 * cores {
        Check::new(
            "resources",
            Level::Warning,
            format!("{resources}: more than 4 workers per core, runs will slow each other down"),
        )
    } else {
        Check::new("resources", Level::Ok, resources)
    });
    outcome.footprint = Some(mine);
    outcome
}
