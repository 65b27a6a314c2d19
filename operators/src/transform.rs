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
    /// The number of source columns the projection was compiled for.
    source_width: usize,
}

/// Source-side names and time for one batch of changes.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Source data source name.
    pub datasource: &'a str,
    /// Processing time for `now()`, microseconds since the epoch.
    pub now_micros: i64,
}

/// What expressions see of a change: its op, times, position and source names.
fn eval_context<'a>(
    op: Op,
    commit_micros: i64,
    position: &'a crate::change::Position,
    schema: &'a TableSchema,
    cx: &Context<'a>,
) -> EvalContext<'a> {
    EvalContext {
        op,
        commit_micros,
        now_micros: cx.now_micros,
        datasource: cx.datasource,
        database: &schema.name.database,
        schema: schema.name.schema.as_deref(),
        table: &schema.name.table,
        position,
    }
}

/// Gives the change the op the row filter decided, dropping the image that op does not have.
fn set_op(c: &mut Change, op: Op) {
    if op != c.op {
        match op {
            Op::Delete => c.after = None,
            _ => c.before = None,
        }
        c.op = op;
    }
}

impl Transform {
    /// A transform; `source_width` is the number of source columns.
    pub fn new(ops: OpFilter, filter: Option<Expr>, projection: Vec<Proj>, source_width: usize) -> Self {
        let prefix = projection.len() >= source_width
            && projection[..source_width].iter().enumerate().all(|(i, p)| matches!(p, Proj::Col(c) if *c == i));
        let identity = prefix && projection.len() == source_width;
        let append_only = prefix && projection[source_width..].iter().all(|p| matches!(p, Proj::Expr(_)));
        Transform { ops, filter, projection, identity, append_only, source_width }
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
        let ctx = |op| eval_context(op, c.commit_micros, &c.pos, schema, cx);
        let op = match self.filtered_op(&c, &ctx) {
            Ok(Some(op)) => op,
            Ok(None) => return Ok(()),
            Err(e) => return Err(Box::new((e, c))),
        };
        if self.append_only && !self.identity && self.fits(&c) {
            return self.append_in_place(c, op, schema, cx, out);
        }
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
        set_op(&mut c, op);
        if let Some((b, a)) = computed {
            c.before = c.before.map(|r| self.assemble(r, b));
            c.after = c.after.map(|r| self.assemble(r, a));
        }
        out.push(c);
        Ok(())
    }

    /// The projection of an `append_only` transform: each kept image gets the expressions'
    /// values pushed onto its end (no new row, no intermediate vector). A failing expression
    /// truncates what was pushed, so the change goes to `failed` as it came.
    fn append_in_place(
        &self,
        mut c: Change,
        op: Op,
        schema: &TableSchema,
        cx: &Context<'_>,
        out: &mut Vec<Change>,
    ) -> Result<(), Box<(EvalError, Change)>> {
        let keep_before = matches!(op, Op::Update | Op::Delete);
        let keep_after = matches!(op, Op::Insert | Op::Update);
        let widths = (c.before.as_ref().map_or(0, Vec::len), c.after.as_ref().map_or(0, Vec::len));
        let mut result = Ok(());
        let Change { before, after, pos, commit_micros, .. } = &mut c;
        let cx = eval_context(op, *commit_micros, pos, schema, cx);
        for (row, keep) in [(before, keep_before), (after, keep_after)] {
            let Some(row) = row.as_mut().filter(|_| keep) else { continue };
            let width = row.len();
            row.reserve_exact(self.projection.len() - width);
            for p in &self.projection[width..] {
                let Proj::Expr(e) = p else { unreachable!("an append_only projection ends in expressions") };
                match e.eval(&row[..width], &cx) {
                    Ok(v) => row.push(v),
                    Err(err) => {
                        result = Err(err);
                        break;
                    }
                }
            }
            if result.is_err() {
                break;
            }
        }
        if let Err(err) = result {
            if let Some(b) = c.before.as_mut() {
                b.truncate(widths.0);
            }
            if let Some(a) = c.after.as_mut() {
                a.truncate(widths.1);
            }
            return Err(Box::new((err, c)));
        }
        set_op(&mut c, op);
        out.push(c);
        Ok(())
    }

    /// Values a source should leave room for at the end of each row of this table (the
    /// expressions an `append_only` projection pushes), so the row is not reallocated.
    pub fn spare_columns(&self) -> usize {
        if self.append_only {
            self.projection.len() - self.source_width
        } else {
            0
        }
    }

    /// Whether the change's images have the source width the projection was compiled for.
    fn fits(&self, c: &Change) -> bool {
        let w = self.source_width;
        c.before.as_ref().is_none_or(|r| r.len() == w) && c.after.as_ref().is_none_or(|r| r.len() == w)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::Position;
    use crate::schema::{Column, ColumnType, TableName};

    fn schema() -> TableSchema {
        TableSchema {
            name: TableName::new("db", "t"),
            columns: vec![
                Column::new("id", ColumnType::Int { bits: 64, unsigned: false }, false),
                Column::new("s", ColumnType::String { max_chars: None, fixed: false }, true),
            ],
            primary_key: vec![0],
            unique_keys: vec![],
            version: 1,
        }
    }

    /// `id`, `s`, then the expressions appended.
    fn appending(filter: Option<&str>, exprs: &[&str]) -> Transform {
        let s = schema();
        let mut proj = vec![Proj::Col(0), Proj::Col(1)];
        proj.extend(exprs.iter().map(|e| Proj::Expr(Box::new(Expr::compile(e, &s).unwrap()))));
        Transform::new(OpFilter::default(), filter.map(|f| Expr::compile(f, &s).unwrap()), proj, 2)
    }

    fn change(op: Op, before: Option<(i64, &str)>, after: Option<(i64, &str)>) -> Change {
        let row = |(id, s): (i64, &str)| vec![Value::Int(id), Value::Text(s.into())];
        Change {
            table: 0,
            op,
            before: before.map(row),
            after: after.map(row),
            pos: Position::Seq { partition: 0, seq: 1 },
            commit_micros: 0,
            schema: None,
        }
    }

    fn run(t: &Transform, c: Change) -> (Vec<Change>, Vec<(EvalError, Change)>) {
        let cx = Context { datasource: "src", now_micros: 0 };
        let (mut out, mut failed) = (Vec::new(), Vec::new());
        t.apply(c, &schema(), &cx, &mut out, &mut failed);
        (out, failed)
    }

    #[test]
    fn appended_expressions_extend_both_images_of_an_update() {
        let t = appending(None, &["upper(s)", "id * 2"]);
        assert!(t.append_only && !t.identity);
        assert_eq!(t.spare_columns(), 2);
        let (out, failed) = run(&t, change(Op::Update, Some((1, "a")), Some((1, "b"))));
        assert!(failed.is_empty());
        assert_eq!(out.len(), 1);
        let img = |r: &Option<Row>| r.clone().unwrap();
        assert_eq!(
            img(&out[0].before),
            vec![Value::Int(1), Value::Text("a".into()), Value::Text("A".into()), Value::Int(2)]
        );
        assert_eq!(
            img(&out[0].after),
            vec![Value::Int(1), Value::Text("b".into()), Value::Text("B".into()), Value::Int(2)]
        );
    }

    #[test]
    fn a_failing_appended_expression_leaves_the_change_as_it_came() {
        // The first expression succeeds on both images, the second fails on the after image.
        let t = appending(None, &["upper(s)", "cast(s AS SIGNED)"]);
        let c = change(Op::Update, Some((1, "7")), Some((1, "x")));
        let (out, failed) = run(&t, c.clone());
        assert!(out.is_empty());
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].1, c, "the archived change has no appended value");
    }

    #[test]
    fn an_update_leaving_the_filter_becomes_a_delete_with_the_appended_values() {
        let t = appending(Some("s = 'in'"), &["upper(s)"]);
        let (out, _) = run(&t, change(Op::Update, Some((1, "in")), Some((1, "out"))));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].op, Op::Delete);
        assert!(out[0].after.is_none());
        assert_eq!(out[0].before.as_ref().unwrap()[2], Value::Text("IN".into()));
        let (out, _) = run(&t, change(Op::Update, Some((1, "out")), Some((1, "in"))));
        assert_eq!((out[0].op, out[0].before.is_none()), (Op::Insert, true));
        assert_eq!(out[0].after.as_ref().unwrap()[2], Value::Text("IN".into()));
    }
}
