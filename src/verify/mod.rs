//! `ferry verify`: does the target hold what the source holds, through the plan?
//!
//! ```text
//!  per target table (a "unit": the source tables routed into it), per key range
//!    source digest ─┐ (count + Σ CRC-32/CRC-32C row hash: on a MariaDB server, from PostgreSQL's
//!    target digest ─┴─ COPY text) ── equal? ── yes ─► done (units of plain copied integers and texts)
//!                                      └─ no, or no digest ─▼
//!    source ─ key-range read ─► the run's transform (filter, projection, renames, constants,
//!                                functions) ─► expected rows ─┐
//!    target ─ key-range read ──────────────────► actual rows ─┴─► canonical texts (canon) ─►
//!          count + sum of row hashes per chunk ── equal? ── yes ─► done
//!                                                   └─ no ─► row diff by key (from the rows
//!                                                           already read), re-read while the
//!                                                           task runs (below) ─► report
//! ```
//!
//! Chunks are the snapshot's key ranges (`verify.chunk_rows` rows each, bounds walked on the
//! source's key index). A table is cut into chunks only when its key reaches the target
//! unchanged and orders the same on both sides (numbers, dates and times); other tables — text
//! keys, whose order depends on each side's collation, keyless tables, several source tables
//! merged into one target table — are compared whole. A range of a unit whose compared columns
//! are all integers and texts copied unchanged (no row filter, condition or computed column) is
//! first compared by digests ([`crate::connector::digest`]): MariaDB 10.8+ computes its own
//! with `CRC32`/`CRC32C` in one aggregate query, a PostgreSQL side is hashed from its `COPY`
//! text without decoding values; equal digests end the range, a differing one (or a side that
//! cannot digest) goes on to rows. Otherwise hashing happens in ferry, on rows read in
//! key order: the canonical text of a value (see [`canon`]) is defined once, for every dialect,
//! where a server-side hash would need one proof per function and type. A chunk whose count or
//! hash differs is diffed row by row from the rows already in memory (a bisection would only
//! re-read them). Chunks are spread over `--workers` threads, each with its own session on
//! either side.
//!
//! While the task runs, the target lags the source. A chunk that differs is read again, up to
//! `verify.retries` times: source rows (S1), the source position P, then — once the task's
//! newest checkpoint has passed P — the target rows (T), then the source rows again (S2). A key
//! whose source row changed between S1 and S2 is *unsettled* and tried again; a key whose source
//! row held still and whose target row differs from it is a difference: the target has applied
//! every change up to P and the source row did not change after it. Keys still unsettled after
//! the last retry are reported as unsettled, not as differences.

pub mod canon;
pub mod continuous;
mod report;
pub mod touched;

pub use report::{Report, TableReport};

use crate::connector::digest::{self, DigestColumn, DigestText};
use crate::connector::verify::{KeyRange, ReadError, TableReader};
use crate::plan::Compiled;
use crate::state::{RunState, TaskState};
use ferry_operators::expr::{parse, EvalContext, Expr};
use ferry_operators::schema::{TableName, TableSchema};
use ferry_operators::transform::{Context, Proj};
use ferry_operators::{Change, ColumnType, Op, Position, Row, TableId, Value};
use regex::Regex;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Functions whose value depends on the change, its time or position, not on the row: target
/// columns computed with them are not compared.
const VOLATILE: &[&str] = &["now", "event_time", "source_position", "op_type"];

/// What `ferry verify` was asked.
#[derive(Clone, Default)]
pub struct VerifyOptions {
    /// Only source tables (`db.table`) matching this.
    pub tables: Option<Regex>,
    /// Threads (each with a session on either side).
    pub workers: usize,
    /// Overrides `verify.retries`.
    pub retries: Option<u32>,
    /// A progress line on stderr.
    pub progress: bool,
    /// Rows per second (both sides) read at most; 0: no limit.
    pub max_rows_per_second: u64,
    /// Only the key ranges this takes (a unit's source tables and the range) are compared;
    /// `None`: all of them.
    pub only: Option<RangeFilter>,
    /// Set: stop taking ranges (the verification ends with [`VerifyError::Cancelled`]).
    pub cancel: Option<Arc<AtomicBool>>,
}

/// Picks the key ranges a verification compares: (the unit's source tables, the range).
pub type RangeFilter = std::sync::Arc<dyn Fn(&[TableId], &KeyRange) -> bool + Send + Sync>;

/// Why verification could not be done (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The plan's `verify` section does not fit the tables (the message names the key).
    #[error("{0}")]
    Plan(String),
    /// Stopped before every range was compared (`VerifyOptions::cancel`).
    #[error("stopped before every range was compared")]
    Cancelled,
    /// A side could not be read.
    #[error("{0}")]
    Read(#[from] ReadError),
    /// A connector cannot read its side for verification.
    #[error("{0}")]
    Unsupported(String),
}

/// The row condition of a unit: per source table, and on target rows through the columns it
/// reads (each copied from the source unchanged).
struct Cond {
    source: Vec<Expr>,
    target: Expr,
    /// (source column, target column) of every column the condition reads.
    back: Vec<(usize, usize)>,
    width: usize,
}

/// One target table and the source tables routed into it.
struct Unit {
    target: TableSchema,
    sources: Vec<TableId>,
    compare: Vec<usize>,
    skipped_columns: Vec<String>,
    chunked: bool,
    cond: Option<Cond>,
    /// The rules of the plan's PostgreSQL type choices the writer puts values through.
    rules: Vec<Option<crate::catalog::types::ValueRule>>,
    /// The compared columns as range digests take them, on the source table and on the target
    /// (see [`digest`]); `None` when the unit's rows are not plain copies digests can compare.
    digest: Option<(Vec<DigestColumn>, Vec<DigestColumn>)>,
}

/// A compared key range of one unit.
struct Job {
    unit: usize,
    range: KeyRange,
}

fn eval_cx<'a>(schema: &'a TableSchema, datasource: &'a str, pos: &'a Position, now: i64) -> EvalContext<'a> {
    EvalContext {
        op: Op::Insert,
        commit_micros: now,
        now_micros: now,
        datasource,
        database: &schema.name.database,
        schema: schema.name.schema.as_deref(),
        table: &schema.name.table,
        position: pos,
    }
}

/// Whether a key column orders the same way in every dialect.
fn orders_alike(ty: &ColumnType) -> bool {
    matches!(
        ty,
        ColumnType::Int { .. }
            | ColumnType::Decimal { .. }
            | ColumnType::Date
            | ColumnType::DateTime { .. }
            | ColumnType::Timestamp { .. }
            | ColumnType::Time { .. }
            | ColumnType::Year
    )
}

/// A source table of a unit, with its `verify.tables` rule's index and condition text.
type Member = (TableId, Option<(usize, String)>);

/// A session on either side.
type Sessions = (Box<dyn TableReader>, Box<dyn TableReader>);

/// Groups the plan's selected tables into units, with the tables left out and why.
fn units(plan: &Compiled, opts: &VerifyOptions) -> Result<(Vec<Unit>, Vec<TableReport>), VerifyError> {
    let rules: Vec<(Regex, &crate::plan::config::VerifyTable)> = plan
        .plan
        .settings
        .verify
        .tables
        .iter()
        .map(|r| (Regex::new(&format!("^(?:{})$", r.tables)).expect("checked regex"), r))
        .collect();
    let mut by_target: Vec<((String, String), Vec<Member>)> = Vec::new();
    let mut left_out = Vec::new();
    for (i, tp) in plan.tables.iter().enumerate() {
        let id = i as TableId;
        let src = plan.catalog.get(id);
        let name = src.name.to_string();
        // A table with a schema (PostgreSQL) also goes by `schema.table`, as in `tables.include`.
        let names: Vec<String> = std::iter::once(name.clone())
            .chain(src.name.schema.as_ref().map(|s| format!("{s}.{}", src.name.table)))
            .collect();
        let matches = |r: &Regex| names.iter().any(|n| r.is_match(n));
        if opts.tables.as_ref().is_some_and(|r| !matches(r)) {
            continue;
        }
        let rule = rules.iter().enumerate().find(|(_, (r, _))| matches(r));
        let why = match (rule, &tp.static_names) {
            (Some((_, (_, r))), _) if r.skip => Some("skipped by `verify.tables`".to_string()),
            (_, None) => Some("routed by row values (a template reads a column): not verified".to_string()),
            _ if !tp.transform.ops.insert => Some("the plan skips inserts: the target holds no copy".to_string()),
            _ => None,
        };
        if let Some(why) = why {
            left_out.push(TableReport::skipped(name, why));
            continue;
        }
        let (d, t) = tp.static_names.clone().expect("checked above");
        let cond = rule.and_then(|(i, (_, r))| r.condition.clone().map(|c| (i, c)));
        match by_target.iter_mut().find(|(k, _)| *k == (d.clone(), t.clone())) {
            Some((_, v)) => v.push((id, cond)),
            None => by_target.push(((d, t), vec![(id, cond)])),
        }
    }
    let mut out = Vec::new();
    for ((d, t), members) in by_target {
        let first = members[0].0;
        let tp = plan.table(first);
        let mut target = tp.target_schema.clone();
        target.name = TableName::new(d, t);
        // Expression columns whose value depends on the change or the clock.
        let mut skipped_columns = Vec::new();
        let mut e = 0;
        for (i, p) in tp.transform.projection.iter().enumerate() {
            if let Proj::Expr(_) = p {
                let volatile = tp.exprs.get(e).is_some_and(|(_, src)| parse(src).is_ok_and(|a| a.calls_any(VOLATILE)));
                if volatile {
                    skipped_columns.push(target.columns[i].name.clone());
                }
                e += 1;
            }
        }
        let compare: Vec<usize> =
            (0..target.columns.len()).filter(|&i| !skipped_columns.contains(&target.columns[i].name)).collect();
        let src = plan.catalog.get(first);
        let (tk, sk) = (target.row_key().to_vec(), src.row_key().to_vec());
        let chunked = members.len() == 1
            && !tk.is_empty()
            && tk.len() == sk.len()
            && tk.iter().zip(&sk).all(|(&t, &s)| {
                matches!(tp.transform.projection.get(t), Some(Proj::Col(c)) if *c == s)
                    && orders_alike(&src.columns[s].ty)
            });
        let cond = match members.iter().find_map(|(_, c)| c.clone()) {
            None => None,
            Some((rule, text)) => Some(condition(plan, &members, rule, &text)?),
        };
        let rules = crate::catalog::types::plan_value_rules(plan, &target);
        let digest = (members.len() == 1 && cond.is_none())
            .then(|| digest_columns(plan, first, &target, &compare, &rules))
            .flatten();
        out.push(Unit {
            rules,
            digest,
            target,
            sources: members.iter().map(|(id, _)| *id).collect(),
            compare,
            skipped_columns,
            chunked,
            cond,
        });
    }
    Ok((out, left_out))
}

/// The compared columns of a one-table unit as range digests take them (source index, target
/// index), when every one is a plain copy of a source column (no row filter, no value rule) of a
/// kind a digest compares: integers, and text in UTF-8 or latin1.
fn digest_columns(
    plan: &Compiled,
    id: TableId,
    target: &TableSchema,
    compare: &[usize],
    rules: &[Option<crate::catalog::types::ValueRule>],
) -> Option<(Vec<DigestColumn>, Vec<DigestColumn>)> {
    let tp = plan.table(id);
    let src = plan.catalog.get(id);
    if tp.transform.filter.is_some() || compare.is_empty() {
        return None;
    }
    let charsets = plan.charsets.get(id as usize);
    let mut out = (Vec::new(), Vec::new());
    for &t in compare {
        let Some(Proj::Col(s)) = tp.transform.projection.get(t) else { return None };
        // A text rule only changes texts holding NUL, which PostgreSQL cannot: such a range's
        // digests differ and its rows are compared through the rule.
        if rules
            .get(t)
            .is_some_and(|r| r.as_ref().is_some_and(|r| !matches!(r, crate::catalog::types::ValueRule::Nul(_))))
        {
            return None;
        }
        let text = match (&src.columns[*s].ty, &target.columns[t].ty) {
            (ColumnType::Int { .. }, ColumnType::Int { .. }) => DigestText::Integer,
            (ColumnType::String { .. }, ColumnType::String { fixed, .. }) => {
                let latin1 = match charsets.and_then(|c| c.get(*s)).cloned().flatten() {
                    None => false,
                    Some(cs) => digest::stored_text(&cs)?,
                };
                DigestText::Text { latin1, trim: *fixed }
            }
            _ => return None,
        };
        out.0.push(DigestColumn { index: *s, text });
        out.1.push(DigestColumn { index: t, text });
    }
    Some(out)
}

/// Compiles a unit's `where` against each source table, and against the target through the
/// columns it reads.
fn condition(plan: &Compiled, members: &[Member], rule: usize, text: &str) -> Result<Cond, VerifyError> {
    let key = format!("verify.tables[{rule}].where");
    let mut source = Vec::new();
    for (id, _) in members {
        let schema = plan.catalog.get(*id);
        source.push(
            Expr::compile(text, schema).map_err(|e| VerifyError::Plan(format!("{key} on {}: {e}", schema.name)))?,
        );
    }
    let first = members[0].0;
    let schema = plan.catalog.get(first);
    let proj = &plan.table(first).transform.projection;
    let mut back = Vec::new();
    for c in source[0].columns() {
        let Some(t) = proj.iter().position(|p| matches!(p, Proj::Col(x) if *x == c)) else {
            return Err(VerifyError::Plan(format!(
                "{key}: it reads `{}` of {}, which the plan does not copy to the target: the condition must read \
                 columns the target has (copied or renamed), so target rows can be tested too",
                schema.columns[c].name, schema.name
            )));
        };
        back.push((c, t));
    }
    Ok(Cond { target: source[0].clone(), source, back, width: schema.columns.len() })
}

/// One side of a compared range: its rows and their hashes.
struct Side {
    rows: Vec<Row>,
    hashes: Vec<u64>,
}

impl Side {
    fn new(rows: Vec<Row>, unit: &Unit) -> Side {
        let types: Vec<&ColumnType> = unit.target.columns.iter().map(|c| &c.ty).collect();
        let mut buf = String::new();
        let hashes = rows.iter().map(|r| canon::row_hash(r, &types, &unit.compare, &mut buf)).collect();
        Side { rows, hashes }
    }

    fn checksum(&self) -> (usize, u64) {
        (self.rows.len(), self.hashes.iter().fold(0u64, |s, h| s.wrapping_add(*h)))
    }

    /// Row indexes by the canonical key (keyless: by the row's hash).
    fn by_key(&self, unit: &Unit, key: &[usize]) -> HashMap<Vec<Option<String>>, Vec<usize>> {
        let mut m: HashMap<Vec<Option<String>>, Vec<usize>> = HashMap::new();
        for (i, r) in self.rows.iter().enumerate() {
            let k = if key.is_empty() {
                vec![Some(self.hashes[i].to_string())]
            } else {
                key.iter().map(|&k| canon::canon(&r[k], &unit.target.columns[k].ty)).collect()
            };
            m.entry(k).or_default().push(i);
        }
        m
    }
}

/// What one compared range found.
#[derive(Default)]
struct Outcome {
    source_rows: u64,
    target_rows: u64,
    equal: u64,
    /// (expected row, actual row) per differing key.
    different: Vec<(Row, Row)>,
    missing: Vec<Row>,
    extra: Vec<Row>,
    unsettled: u64,
    transform_failed: u64,
    /// Rows found equal by their range's digests.
    by_digest: u64,
    /// Re-reads done while the task ran.
    rereads: u64,
}

impl Outcome {
    fn clean(&self) -> bool {
        self.different.is_empty() && self.missing.is_empty() && self.extra.is_empty() && self.unsettled == 0
    }
}

/// One thread's view of the work: its sessions and the shared plan.
struct Verifier<'a> {
    plan: &'a Compiled,
    units: &'a [Unit],
    source: Box<dyn TableReader>,
    target: Box<dyn TableReader>,
}

impl Verifier<'_> {
    /// The rows the target must hold in `range`: source rows through the condition and the run's
    /// transform. Also the number of rows the transform could not compute (dirty data).
    fn expected(&mut self, unit: &Unit, range: &KeyRange) -> Result<(Vec<Row>, u64), ReadError> {
        let mut out = Vec::new();
        let mut failed_n = 0;
        let datasource = &self.plan.plan.source_name;
        let now = crate::runtime::now_micros();
        let pos = Position::None;
        for (n, &id) in unit.sources.iter().enumerate() {
            let schema = self.plan.catalog.get(id);
            let tp = self.plan.table(id);
            let rows = self.source.rows(schema, range)?;
            let cx = Context { datasource, now_micros: now };
            let mut changes = Vec::new();
            let mut failed = Vec::new();
            for row in rows {
                if let Some(c) = &unit.cond {
                    if !c.source[n].eval_bool(&row, &eval_cx(schema, datasource, &pos, now)).unwrap_or(false) {
                        continue;
                    }
                }
                let change = Change {
                    table: id,
                    op: Op::Insert,
                    before: None,
                    after: Some(row),
                    pos: Position::None,
                    commit_micros: now,
                    schema: None,
                };
                tp.transform.apply(change, schema, &cx, &mut changes, &mut failed);
            }
            failed_n += failed.len() as u64;
            out.extend(changes.into_iter().filter_map(|c| c.after).map(|mut row| {
                crate::catalog::types::apply_value_rules(&unit.rules, &unit.target, &mut row);
                row
            }));
        }
        Ok((out, failed_n))
    }

    /// The target's rows in `range` that the unit's condition takes.
    fn actual(&mut self, unit: &Unit, range: &KeyRange) -> Result<Vec<Row>, ReadError> {
        let rows = self.target.rows(&unit.target, range)?;
        let Some(c) = &unit.cond else { return Ok(rows) };
        let schema = self.plan.catalog.get(unit.sources[0]);
        let (datasource, pos, now) = (&self.plan.plan.source_name, Position::None, crate::runtime::now_micros());
        Ok(rows
            .into_iter()
            .filter(|r| {
                let mut src = vec![Value::Null; c.width];
                for &(s, t) in &c.back {
                    src[s] = r[t].clone();
                }
                c.target.eval_bool(&src, &eval_cx(schema, datasource, &pos, now)).unwrap_or(false)
            })
            .collect())
    }

    /// Compares one range once: by digests first where the unit takes them and a side's server
    /// computes them (the source's asked on a thread of its own while the target answers), then
    /// — when they differ, or no server computes one — row by row, with the rows already read.
    fn compare(&mut self, unit: &Unit, range: &KeyRange) -> Result<Outcome, ReadError> {
        // Rows already read for the digests: expected rows (and transform failures), target rows.
        let mut expected_read: Option<(Vec<Row>, u64)> = None;
        let mut actual_read: Option<Vec<Row>> = None;
        if let Some((sc, tc)) = &unit.digest {
            let schema = self.plan.catalog.get(unit.sources[0]);
            let (source, target) = (&mut self.source, &mut self.target);
            let (sd, target_side) = std::thread::scope(|s| {
                let h = s.spawn(move || source.digest(schema, sc, range));
                // Without a digest from its server, the target's rows (all of them: the unit
                // has no condition), read while the source's server works.
                let td = target.digest(&unit.target, tc, range).and_then(|d| match d {
                    Some(d) => Ok((Some(d), None)),
                    None => target.rows(&unit.target, range).map(|rows| (None, Some(rows))),
                });
                (h.join().expect("a digest thread"), td)
            });
            let (sd, (td, target_rows)) = (sd?, target_side?);
            let digests = match (sd, td) {
                // Neither server computes one: rows as before.
                (None, None) => None,
                (Some(sd), Some(td)) => Some((sd, td)),
                (Some(sd), None) => Some((sd, digest::of_rows(target_rows.as_deref().unwrap_or_default(), tc))),
                (None, Some(td)) => {
                    let (rows, failed) = self.expected(unit, range)?;
                    let sd = digest::of_rows(&rows, tc);
                    expected_read = Some((rows, failed));
                    Some((sd, td))
                }
            };
            actual_read = target_rows;
            if let Some((sd, td)) = digests.filter(|(sd, td)| sd == td) {
                let n = sd.rows;
                debug_assert_eq!(n, td.rows);
                return Ok(Outcome { source_rows: n, target_rows: n, equal: n, by_digest: n, ..Outcome::default() });
            }
        }
        let (expected, failed) = match expected_read {
            Some(r) => r,
            None => self.expected(unit, range)?,
        };
        let actual = match actual_read {
            Some(r) => r,
            None => self.actual(unit, range)?,
        };
        Ok(diff(unit, Side::new(expected, unit), Side::new(actual, unit), failed, None))
    }
}

/// The row-level comparison of one range. `stable`: the source's first read of a re-read,
/// whose keys that changed since are unsettled rather than compared.
fn diff(unit: &Unit, expected: Side, actual: Side, failed: u64, stable: Option<&Side>) -> Outcome {
    let mut o = Outcome {
        source_rows: expected.rows.len() as u64,
        target_rows: actual.rows.len() as u64,
        transform_failed: failed,
        ..Outcome::default()
    };
    if stable.is_none() && expected.checksum() == actual.checksum() {
        o.equal = o.source_rows;
        return o;
    }
    let key = unit.target.row_key().to_vec();
    let key = if key.iter().all(|k| unit.compare.contains(k)) { key } else { Vec::new() };
    let exp = expected.by_key(unit, &key);
    let mut act = actual.by_key(unit, &key);
    let before = stable.map(|s| s.by_key(unit, &key));
    for (k, idx) in exp {
        if let Some(b) = &before {
            let same = b.get(&k).is_some_and(|bi| {
                bi.iter().map(|&i| stable.unwrap().hashes[i]).eq(idx.iter().map(|&i| expected.hashes[i]))
            });
            if !same {
                o.unsettled += 1;
                act.remove(&k);
                continue;
            }
        }
        let found = act.remove(&k).unwrap_or_default();
        if key.is_empty() {
            // Keyless: a multiset of whole rows.
            let n = idx.len().min(found.len());
            o.equal += n as u64;
            o.missing.extend(idx[n..].iter().map(|&i| expected.rows[i].clone()));
            o.extra.extend(found[n..].iter().map(|&i| actual.rows[i].clone()));
            continue;
        }
        let (e, a) = (idx[0], found.first().copied());
        match a {
            None => o.missing.push(expected.rows[e].clone()),
            Some(a) if expected.hashes[e] == actual.hashes[a] => o.equal += 1,
            Some(a) => o.different.push((expected.rows[e].clone(), actual.rows[a].clone())),
        }
    }
    for (k, idx) in act {
        if before.as_ref().is_some_and(|b| b.contains_key(&k)) {
            // The source had the key at the first read and not at the second: it moved.
            o.unsettled += 1;
            continue;
        }
        o.extra.extend(idx.iter().map(|&i| actual.rows[i].clone()));
    }
    o
}

/// Whether the task is running now (its target keeps moving).
fn task_running(state: &TaskState) -> bool {
    matches!(
        state.status().ok().flatten().map(|s| s.state),
        Some(RunState::Running | RunState::Restarting | RunState::Stopping)
    )
}

/// Verifies the plan's tables; the report says what differs.
pub fn verify(plan: &Compiled, state: &TaskState, opts: &VerifyOptions) -> Result<Report, VerifyError> {
    let started = Instant::now();
    let registry = crate::connectors::registry();
    let source_conn = registry
        .source(&plan.plan.source.kind)
        .ok_or_else(|| VerifyError::Unsupported("no source connector".into()))?;
    let sink_conn =
        registry.sink(&plan.plan.target.kind).ok_or_else(|| VerifyError::Unsupported("no target connector".into()))?;
    let (units, left_out) = units(plan, opts)?;
    let settings = &plan.plan.settings.verify;
    let retries = opts.retries.unwrap_or(settings.retries);
    let open = || -> Result<Sessions, VerifyError> {
        Ok((
            source_conn.verify_reader(plan).map_err(VerifyError::Unsupported)?,
            sink_conn.verify_reader(plan).map_err(VerifyError::Unsupported)?,
        ))
    };
    // Chunk plans, on one session.
    let (src0, tgt0) = open()?;
    let mut jobs = VecDeque::new();
    let mut planner = Verifier { plan, units: &units, source: src0, target: tgt0 };
    let ranges = planner.target.reads_ranges();
    for (i, u) in units.iter().enumerate() {
        if !u.chunked || !ranges {
            jobs.push_back(Job { unit: i, range: KeyRange::default() });
            continue;
        }
        let bounds = planner.source.bounds(plan.catalog.get(u.sources[0]), settings.chunk_rows)?;
        let mut lower = None;
        for b in bounds {
            jobs.push_back(Job { unit: i, range: KeyRange { lower: lower.take(), upper: Some(b.clone()) } });
            lower = Some(b);
        }
        jobs.push_back(Job { unit: i, range: KeyRange { lower, upper: None } });
    }
    if let Some(only) = &opts.only {
        jobs.retain(|j| only(&units[j.unit].sources, &j.range));
    }
    let total = jobs.len();
    let jobs = Mutex::new(jobs);
    let done = AtomicUsize::new(0);
    let rows_read = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<(usize, Outcome)>> = Mutex::new(Vec::new());
    let first_error: Mutex<Option<VerifyError>> = Mutex::new(None);
    let running = task_running(state);
    let workers = opts.workers.max(1);
    std::thread::scope(|s| {
        let work = |mut v: Verifier<'_>| loop {
            if failed.load(Ordering::Relaxed) || opts.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
                return;
            }
            let Some(job) = jobs.lock().expect("queue").pop_front() else { return };
            let unit = &v.units[job.unit];
            let r = v.compare(unit, &job.range).and_then(|o| {
                if o.clean() || !running || retries == 0 {
                    return Ok(o);
                }
                settle(&mut v, unit, &job.range, state, retries, Duration::from_secs(settings.wait_seconds))
            });
            match r {
                Ok(o) => {
                    let total = rows_read.fetch_add((o.source_rows + o.target_rows) as usize, Ordering::Relaxed)
                        + (o.source_rows + o.target_rows) as usize;
                    results.lock().expect("results").push((job.unit, o));
                    done.fetch_add(1, Ordering::Relaxed);
                    // At most `max_rows_per_second` rows (both sides) over the whole run.
                    if opts.max_rows_per_second > 0 {
                        let due = Duration::from_secs_f64(total as f64 / opts.max_rows_per_second as f64);
                        // In slices, so a cancel is seen.
                        while let Some(wait) = due.checked_sub(started.elapsed()) {
                            if opts.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
                                break;
                            }
                            std::thread::sleep(wait.min(Duration::from_millis(100)));
                        }
                    }
                }
                Err(e) => {
                    failed.store(true, Ordering::Relaxed);
                    first_error.lock().expect("error").get_or_insert(e.into());
                    return;
                }
            }
        };
        let mut handles = Vec::new();
        handles.push(s.spawn(move || work(planner)));
        for _ in 1..workers {
            match open() {
                Ok((src, tgt)) => {
                    let v = Verifier { plan, units: &units, source: src, target: tgt };
                    handles.push(s.spawn(move || work(v)));
                }
                Err(e) => {
                    first_error.lock().expect("error").get_or_insert(e);
                    failed.store(true, Ordering::Relaxed);
                }
            }
        }
        if opts.progress {
            s.spawn(|| report::progress(&done, &rows_read, total, &failed, started));
        }
        for h in handles {
            if h.join().is_err() {
                failed.store(true, Ordering::Relaxed);
                first_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(VerifyError::Unsupported("a verifying thread failed (see the log)".into()));
            }
        }
        // Ends the progress line.
        done.store(usize::MAX, Ordering::Relaxed);
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    if opts.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
        return Err(VerifyError::Cancelled);
    }
    let mut per_unit: Vec<Vec<Outcome>> = (0..units.len()).map(|_| Vec::new()).collect();
    for (u, o) in results.into_inner().expect("results") {
        per_unit[u].push(o);
    }
    let target_reader = sink_conn.verify_reader(plan).map_err(VerifyError::Unsupported)?;
    let mut report = Report::default();
    for (u, outcomes) in units.iter().zip(per_unit) {
        if opts.only.is_some() && outcomes.is_empty() {
            // Not asked about this time.
            continue;
        }
        let sources = u.sources.iter().map(|&id| plan.catalog.get(id).name.to_string()).collect();
        report.add(&u.target, sources, u.skipped_columns.clone(), outcomes, &u.compare, target_reader.as_ref());
    }
    report.tables.extend(left_out);
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Re-reads a differing range while the task runs (see the module's doc), up to `retries`
/// times.
fn settle(
    v: &mut Verifier<'_>,
    unit: &Unit,
    range: &KeyRange,
    state: &TaskState,
    retries: u32,
    wait: Duration,
) -> Result<Outcome, ReadError> {
    let mut last = Outcome::default();
    for round in 1..=retries {
        let (s1, _) = v.expected(unit, range)?;
        let s1 = Side::new(s1, unit);
        let position = v.source.position()?;
        let deadline = Instant::now() + wait;
        // Without a position to wait for, the next checkpoint after the source read.
        let after = state.latest_manifest().ok().flatten().map(|m| m.epoch);
        let mut passed = false;
        while !passed && Instant::now() < deadline {
            let m = state.latest_manifest().ok().flatten();
            passed = match (&position, m) {
                (Some(p), Some(m)) => v.source.passed(&m.offsets, p),
                (None, Some(m)) => Some(m.epoch) > after,
                (_, None) => false,
            };
            if !passed {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let actual = Side::new(v.actual(unit, range)?, unit);
        let (s2, failed) = v.expected(unit, range)?;
        last = diff(unit, Side::new(s2, unit), actual, failed, Some(&s1));
        if !passed {
            // The task did not get as far as the source read in time (a snapshot still
            // running, a task that lags): nothing can be said of these keys yet.
            last.unsettled += (last.different.len() + last.missing.len() + last.extra.len()) as u64;
            last.different.clear();
            last.missing.clear();
            last.extra.clear();
        }
        last.rereads = round as u64;
        if last.unsettled == 0 {
            break;
        }
    }
    Ok(last)
}
