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
    /// Applies the transform to one change of `schema`'s table, pushing 0, 1 or 2 target changes.
    /// An error means the row could not be computed (it belongs in the dirty-data archive); it
    /// comes back with the change (or the half of a split key change) that failed, untouched.
    pub fn apply(
        &self,
        change: Change,
        schema: &TableSchema,
        cx: &Context<'_>,
        out: &mut Vec<Change>,
    ) -> Result<(), Box<(EvalError, Change)>> {
        let keep = match change.op {
            Op::Insert => self.ops.insert,
            Op::Update => self.ops.update,
            Op::Delete => self.ops.delete,
        };
        if !keep {
            return Ok(());
        }
        let (first, second) = change.split_key_change(schema);
        self.apply_one(first, schema, cx, out)?;
        if let Some(second) = second {
            self.apply_one(second, schema, cx, out)?;
        }
        Ok(())
    }

    fn apply_one(
        &self,
        c: Change,
        schema: &TableSchema,
        cx: &Context<'_>,
        out: &mut Vec<Change>,
    ) -> Result<(), Box<(EvalError, Change)>> {
        match self.compute(&c, schema, cx) {
            Ok(None) => {}
            Ok(Some((op, before, after))) => {
                let identity_rows = before.is_none() && after.is_none();
                let mut c = c;
                if op != c.op {
                    match op {
                        Op::Delete => c.after = None,
                        _ => c.before = None,
                    }
                    c.op = op;
                }
                if !identity_rows {
                    c.before = before;
                    c.after = after;
                }
                out.push(c);
            }
            Err(e) => return Err(Box::new((e, c))),
        }
        Ok(())
    }

    /// The resulting op and, when the projection is not the identity, the projected images.
    #[allow(clippy::type_complexity)]
    fn compute(
        &self,
        c: &Change,
        schema: &TableSchema,
        cx: &Context<'_>,
    ) -> Result<Option<(Op, Option<Row>, Option<Row>)>, EvalError> {
        let mut op = c.op;
        if let Some(f) = &self.filter {
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
            let before = match &c.before {
                Some(b) => f.eval_bool(b, &ctx(c.op))?,
                None => false,
            };
            let after = match &c.after {
                Some(a) => f.eval_bool(a, &ctx(c.op))?,
                None => false,
            };
            match (c.op, before, after) {
                (Op::Insert, _, false) | (Op::Delete, false, _) | (Op::Update, false, false) => return Ok(None),
                (Op::Update, true, false) => op = Op::Delete,
                (Op::Update, false, true) => op = Op::Insert,
                _ => {}
            }
        }
        if self.identity {
            return Ok(Some((op, None, None)));
        }
        {
            let ctx = EvalContext {
                op,
                commit_micros: c.commit_micros,
                now_micros: cx.now_micros,
                datasource: cx.datasource,
                database: &schema.name.database,
                schema: schema.name.schema.as_deref(),
                table: &schema.name.table,
                position: &c.pos,
            };
            let before = match (op, &c.before) {
                (Op::Update | Op::Delete, Some(r)) => Some(self.project(r, &ctx)?),
                _ => None,
            };
            let after = match (op, &c.after) {
                (Op::Insert | Op::Update, Some(r)) => Some(self.project(r, &ctx)?),
                _ => None,
            };
            Ok(Some((op, before, after)))
        }
    }

    fn project(&self, row: &Row, ctx: &EvalContext<'_>) -> Result<Row, EvalError> {
        let mut out = Vec::with_capacity(self.projection.len());
        for p in &self.projection {
            out.push(match p {
                Proj::Col(i) => row[*i].clone(),
                Proj::Expr(e) => e.eval(row, ctx)?,
            });
        }
        Ok(out)
    }
}
