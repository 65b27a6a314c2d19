//! What verification found: per table the counts (the terminal's summary table and
//! `summary.json`), and per differing row a line of `diff.jsonl` (key, column, both values),
//! `missing.jsonl` (only in the source), `extra.jsonl` (only in the target) and the statements
//! of `repair.sql` that make the target equal (upserts of the expected rows, deletes of the
//! extra keys, in the target's dialect). Values are written in their canonical text.

use super::canon;
use super::Outcome;
use crate::connector::verify::TableReader;
use ferry_operators::schema::TableSchema;
use ferry_operators::Row;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One target table's result.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TableReport {
    /// The target table (`db.table`), or the source table when it was left out.
    pub table: String,
    /// The source tables routed into it.
    pub sources: Vec<String>,
    /// Rows the target must hold (source rows through the plan).
    pub source_rows: u64,
    /// Rows the target holds.
    pub target_rows: u64,
    /// Rows equal on both sides.
    pub equal: u64,
    /// Keys on both sides with a differing column.
    pub different: u64,
    /// Rows only in the source (missing from the target).
    pub only_source: u64,
    /// Rows only in the target.
    pub only_target: u64,
    /// Keys that kept changing at the source through every re-read (not reported as
    /// differences).
    pub unsettled: u64,
    /// Times a differing chunk was read again because the task was running.
    pub rereads: u64,
    /// Source rows the plan's transform could not compute (they are in the dirty archive).
    pub transform_failed: u64,
    /// Of the equal rows, those found equal by range digests (count and hash on both sides,
    /// the rows not read one by one).
    #[serde(default)]
    pub equal_by_digest: u64,
    /// Target columns not compared (computed from the time or position of a change).
    pub skipped_columns: Vec<String>,
    /// Why the table was not verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

impl TableReport {
    /// A table left out, with the reason.
    pub fn skipped(table: String, why: String) -> TableReport {
        TableReport { sources: vec![table.clone()], table, skipped: Some(why), ..TableReport::default() }
    }

    /// Whether the table differs.
    pub fn differs(&self) -> bool {
        self.different + self.only_source + self.only_target > 0
    }
}

/// Everything a verification found.
#[derive(Debug, Default)]
pub struct Report {
    /// Per target table.
    pub tables: Vec<TableReport>,
    /// Seconds the verification took.
    pub seconds: f64,
    /// `diff.jsonl` lines.
    pub diffs: Vec<Json>,
    /// `missing.jsonl` lines.
    pub missing: Vec<Json>,
    /// `extra.jsonl` lines.
    pub extra: Vec<Json>,
    /// `repair.sql` statements.
    pub repair: Vec<String>,
}

fn text(v: Option<String>) -> Json {
    v.map_or(Json::Null, Json::String)
}

/// The canonical texts of `row`'s columns `cols`, by column name.
fn row_json(schema: &TableSchema, row: &Row, cols: &[usize]) -> Json {
    let mut m = Map::new();
    for &i in cols {
        m.insert(schema.columns[i].name.clone(), text(canon::canon(&row[i], &schema.columns[i].ty)));
    }
    Json::Object(m)
}

fn key_json(schema: &TableSchema, row: &Row) -> Json {
    row_json(schema, row, schema.row_key())
}

impl Report {
    /// Whether any table differs.
    pub fn differs(&self) -> bool {
        self.tables.iter().any(TableReport::differs)
    }

    /// Adds one target table's outcomes.
    pub(super) fn add(
        &mut self,
        schema: &TableSchema,
        sources: Vec<String>,
        skipped_columns: Vec<String>,
        outcomes: Vec<Outcome>,
        compare: &[usize],
        target: &dyn TableReader,
    ) {
        let name = schema.name.to_string();
        let mut t = TableReport { table: name.clone(), sources, skipped_columns, ..TableReport::default() };
        let keyless = schema.row_key().is_empty();
        let key: Vec<usize> = schema.row_key().to_vec();
        for o in outcomes {
            t.source_rows += o.source_rows;
            t.target_rows += o.target_rows;
            t.equal += o.equal;
            t.equal_by_digest += o.by_digest;
            t.unsettled += o.unsettled;
            t.transform_failed += o.transform_failed;
            t.rereads += o.rereads;
            t.different += o.different.len() as u64;
            t.only_source += o.missing.len() as u64;
            t.only_target += o.extra.len() as u64;
            for (e, a) in &o.different {
                for &i in compare {
                    let ty = &schema.columns[i].ty;
                    let (se, sa) = (canon::canon(&e[i], ty), canon::canon(&a[i], ty));
                    if se != sa {
                        self.diffs.push(json!({
                            "table": name, "key": key_json(schema, e), "column": schema.columns[i].name,
                            "source": text(se), "target": text(sa),
                        }));
                    }
                }
                self.repair.extend(target.upsert_sql(schema, e));
            }
            for r in &o.missing {
                self.missing
                    .push(json!({ "table": name, "key": key_json(schema, r), "row": row_json(schema, r, compare) }));
                if keyless {
                    self.repair.push(format!("-- {name} has no key: insert the row of missing.jsonl by hand"));
                } else {
                    self.repair.extend(target.upsert_sql(schema, r));
                }
            }
            for r in &o.extra {
                self.extra
                    .push(json!({ "table": name, "key": key_json(schema, r), "row": row_json(schema, r, compare) }));
                if keyless {
                    self.repair.push(format!("-- {name} has no key: delete the row of extra.jsonl by hand"));
                } else {
                    let k: Vec<_> = key.iter().map(|&i| r[i].clone()).collect();
                    self.repair.extend(target.delete_sql(schema, &k));
                }
            }
        }
        self.tables.push(t);
    }

    /// The summary table for the terminal.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{:<32} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>9}  {}\n",
            "table", "source", "target", "equal", "differ", "missing", "extra", "unsettled", "notes"
        );
        for t in &self.tables {
            let mut notes = Vec::new();
            if let Some(s) = &t.skipped {
                notes.push(s.clone());
            }
            if !t.skipped_columns.is_empty() {
                notes.push(format!("not compared: {}", t.skipped_columns.join(", ")));
            }
            if t.equal_by_digest > 0 {
                notes.push(format!("{} equal by digest", t.equal_by_digest));
            }
            if t.transform_failed > 0 {
                notes.push(format!("{} source rows failed the transform (dirty archive)", t.transform_failed));
            }
            if t.sources.len() > 1 || t.sources.first().is_some_and(|s| *s != t.table) {
                notes.push(format!("from {}", t.sources.join(", ")));
            }
            out.push_str(&format!(
                "{:<32} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>9}  {}\n",
                t.table,
                t.source_rows,
                t.target_rows,
                t.equal,
                t.different,
                t.only_source,
                t.only_target,
                t.unsettled,
                notes.join("; ")
            ));
        }
        let verdict = if self.differs() { "DIFFERENT" } else { "EQUAL" };
        out.push_str(&format!("{verdict} ({:.1} s)\n", self.seconds));
        out
    }

    /// Writes `summary.json`, `diff.jsonl`, `missing.jsonl`, `extra.jsonl` and `repair.sql`
    /// under `dir`.
    pub fn write(&self, dir: &std::path::Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let summary = json!({
            "equal": !self.differs(),
            "seconds": self.seconds,
            "tables": self.tables,
        });
        std::fs::write(dir.join("summary.json"), serde_json::to_vec_pretty(&summary)?)?;
        for (file, lines) in
            [("diff.jsonl", &self.diffs), ("missing.jsonl", &self.missing), ("extra.jsonl", &self.extra)]
        {
            let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join(file))?);
            for l in lines.iter() {
                writeln!(f, "{l}")?;
            }
            f.flush()?;
        }
        let mut sql = String::new();
        for s in &self.repair {
            sql.push_str(s);
            if !s.starts_with("--") {
                sql.push(';');
            }
            sql.push('\n');
        }
        std::fs::write(dir.join("repair.sql"), sql)
    }
}

/// The progress line on stderr (a terminal only), until `done` is `usize::MAX`.
pub(super) fn progress(done: &AtomicUsize, rows: &AtomicUsize, total: usize, failed: &AtomicBool, started: Instant) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    loop {
        let d = done.load(Ordering::Relaxed);
        if d == usize::MAX || failed.load(Ordering::Relaxed) {
            eprint!("\r\x1b[K");
            return;
        }
        let r = rows.load(Ordering::Relaxed);
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let width = 30;
        let filled = (d * width).checked_div(total).unwrap_or(width);
        eprint!(
            "\rverify [{}{}] {d}/{total} chunks, {r} rows read, {:.0} rows/s",
            "#".repeat(filled),
            " ".repeat(width - filled),
            r as f64 / secs
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
