//! Per-table transform: operation filter, key-change split, row filter, projection (renames,
//! drops, constant and function fields, metadata columns).
//!
//! ```text
//!  Change(source shape) ─► op filter ─► split key change ─► row filter ─► projection ─► Change(target shape)
//! ```
//!
//! Row-filter semantics for updates (as a materialized view would see them): both images pass →
//! update; only the before image passes → delete; only the after image passes → insert;
//! neither → dropped. Inserts test the after image, deletes the before image.

use crate::change::{Change, Op, Row};
use crate::expr::{EvalContext, EvalError, Expr};
use crate::schema::TableSchema;
use crate::value::Value;

/// How one target column is computed.
#[derive(Debug, Clone)]
pub enum Proj {
    /// Copy a source column.
    Col(usize),
    /// Evaluate an expression over the source row.
    Expr(Box<Expr>),
}

/// Which change kinds pass (F2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpFilter {
    /// Keep inserts.
    pub insert: bool,
    /// Keep updates.
    pub update: bool,
    /// Keep deletes.
    pub delete: bool,
}

impl Default for OpFilter {
    fn default() -> Self {
        OpFilter { insert: true, update: true, delete: true }
    }
}

/// The compiled transform of one table.
#[derive(Debug, Clone)]
pub struct Transform {
    /// Change kinds kept.
    pub ops: OpFilter,
    /// Row filter.
    pub filter: Option<Expr>,
    /// Target columns.
    pub projection: Vec<Proj>,
    /// Whether the projection copies every source column in order (no per-row work).
    pub identity: bool,
    /// Whether the projection is every source column in order followed by expressions only, so
    /// a row is extended in place instead of rebuilt.
    pub append_only: bool,
}

/// Source-side names and time for one batch of changes.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Source data source name.
    pub datasource: &'a str,
    /// Processing time for `now()`, microseconds since the epoch.
    pub now_micros: i64,
}

impl Transform {
    /// A transform; `source_width` is the number of source columns.
    pub fn new(ops: OpFilter, filter: Option<Expr>, projection: Vec<Proj>, source_width: usize) -> Self {
        let prefix = projection.len() >= source_width
            && projection[..source_width].iter().enumerate().all(|(i, p)| matches!(p, Proj::Col(c) if *c == i));
        let identity = prefix && projection.len() == source_width;
        let append_only = prefix && projection[source_width..].iter().all(|p| matches!(p, Proj::Expr(_)));
        Transform { ops, filter, projection, identity, append_only }
    }

    /// Applies the transform to one change of `schema`'s table, pushing 0, 1 or 2 target changes
    /// to `out`. A change whose row cannot be computed goes to `failed` with the error,
    /// untouched (it belongs in the dirty-data archive); when a key-changing update is split,
    /// each half succeeds or fails on its own, so neither is ever lost.
    pub fn apply(
        &self,
        change: Change,
        schema: &TableSchema,
        cx: &Context<'_>,
        out: &mut Vec<Change>,
        failed: &mut Vec<(EvalError, Change)>,
    ) {
        let keep = match change.op {
            Op::Insert => self.ops.insert,
            Op::Update => self.ops.update,
            Op::Delete => self.ops.delete,
        };
        if !keep {
            return;
        }
        let (first, second) = change.split_key_change(schema);
        for c in std::iter::once(first).chain(second) {
            if let Err(f) = self.apply_one(c, schema, cx, out) {
                failed.push(*f);
            }
        }
    }

    fn apply_one(
        &self,
        c: Change,
        schema: &TableSchema,
        cx: &Context<'_>,
        out: &mut Vec<Change>,
    ) -> Result<(), Box<(EvalError, Change)>> {
        let ctx = |op| EvalContext {
            op,
            commit_micros: c.commit_micros,
            now_micros: cx.now_micros,
            datasource: cx.datasource,
            database: &schema.name.database,
            schema: schema.name.schema.as_deref(),
            table: &schema.name.table,
            position: &c.pos,
        };
        let op = match self.filtered_op(&c, &ctx) {
            Ok(Some(op)) => op,
            Ok(None) => return Ok(()),
            Err(e) => return Err(Box::new((e, c))),
        };
        // Expressions first (they read the source row and may fail); then columns are moved.
        let computed = if self.identity {
            None
        } else {
            let eval = |row: &Option<Row>, keep: bool| -> Result<Vec<Value>, EvalError> {
                match row {
                    Some(r) if keep => self.eval_exprs(r, &ctx(op)),
                    _ => Ok(Vec::new()),
                }
            };
            let before = eval(&c.before, matches!(op, Op::Update | Op::Delete));
            let after = eval(&c.after, matches!(op, Op::Insert | Op::Update));
            match (before, after) {
                (Ok(b), Ok(a)) => Some((b, a)),
                (Err(e), _) | (_, Err(e)) => return Err(Box::new((e, c))),
            }
        };
        let mut c = c;
        if op != c.op {
            match op {
                Op::Delete => c.after = None,
                _ => c.before = None,
            }
            c.op = op;
        }
        if let Some((b, a)) = computed {
            c.before = c.before.map(|r| self.assemble(r, b));
            c.after = c.after.map(|r| self.assemble(r, a));
        }
        out.push(c);
        Ok(())
    }

    /// The op after the row filter (`None`: the change is filtered out).
    fn filtered_op<'c>(&self, c: &'c Change, ctx: &impl Fn(Op) -> EvalContext<'c>) -> Result<Option<Op>, EvalError> {
        let Some(f) = &self.filter else { return Ok(Some(c.op)) };
        let before = match &c.before {
            Some(b) => f.eval_bool(b, &ctx(c.op))?,
            None => false,
        };
        let after = match &c.after {
            Some(a) => f.eval_bool(a, &ctx(c.op))?,
            None => false,
        };
        Ok(match (c.op, before, after) {
            (Op::Insert, _, false) | (Op::Delete, false, _) | (Op::Update, false, false) => None,
            (Op::Update, true, false) => Some(Op::Delete),
            (Op::Update, false, true) => Some(Op::Insert),
            (op, _, _) => Some(op),
        })
    }

    fn eval_exprs(&self, row: &Row, ctx: &EvalContext<'_>) -> Result<Vec<Value>, EvalError> {
        let mut out = Vec::new();
        for p in &self.projection {
            if let Proj::Expr(e) = p {
                out.push(e.eval(row, ctx)?);
            }
        }
        Ok(out)
    }

    /// Builds the target row, moving source values instead of cloning them.
    fn assemble(&self, mut row: Row, computed: Vec<Value>) -> Row {
        if self.append_only && row.len() + computed.len() == self.projection.len() {
            row.extend(computed);
            return row;
        }
        let mut computed = computed.into_iter();
        self.projection
            .iter()
            .map(|p| match p {
                Proj::Col(i) => std::mem::replace(&mut row[*i], Value::Null),
                Proj::Expr(_) => computed.next().expect("one value per expression"),
            })
            .collect()
    }
}
