//! The test oracle: what a bounded config's streams leave behind ([`expected_state`]) and a
//! generic materializer of change logs ([`Materializer`]). Tests and benchmarks use it; the
//! run does not.

use super::generator::*;
use super::DatagenConfig;
use ferry_operators::change::{Change, Op, Row};
use ferry_operators::schema::{TableId, TableSchema};
use ferry_operators::value::Value;
use std::collections::BTreeMap;

/// The canonical line of a row: `[v1,v2,...]` with each value JSON-encoded by
/// [`ferry_operators::json::write_value`]. Rows are compared and sorted by it.
pub fn canonical_line(row: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * row.len() + 2);
    out.push(b'[');
    for (i, v) in row.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        ferry_operators::json::write_value(v, &mut out);
    }
    out.push(b']');
    out
}

/// Sorts rows by their [`canonical_line`].
pub fn sort_canonical(rows: &mut [Row]) {
    rows.sort_by_cached_key(|r| canonical_line(r));
}

/// The final state a bounded config's streams leave: per table (in [`catalog`] order) its rows,
/// sorted by [`canonical_line`]. Keyed tables have one row per key; `events` is a multiset.
///
/// # Panics
/// If `cfg.changes` is `None` (an unbounded run has no final state).
pub fn expected_state(cfg: &DatagenConfig) -> Vec<(TableSchema, Vec<Row>)> {
    assert!(cfg.changes.is_some(), "expected_state needs a bounded config: set `changes`");
    let cat = catalog(cfg);
    (0..cat.len() as TableId)
        .map(|t| {
            let mut rows = Vec::new();
            for s in 0..cfg.shards_per_table {
                let mut g = ShardGen::new(cfg, &cat, t, s);
                g.skip_to(g.limit().expect("bounded"));
                rows.extend(g.current_rows());
            }
            sort_canonical(&mut rows);
            (cat[t as usize].clone(), rows)
        })
        .collect()
}

/// Applies a log of [`Change`]s to in-memory tables, for tests: insert upserts by key, update
/// replaces the row of the before image's key (so a key change moves the row), delete removes
/// it. Tables without a key are multisets of whole rows: an update or delete removes one copy
/// equal to the before image. Works with any schemas, not only datagen's.
#[derive(Clone, Debug)]
pub struct Materializer {
    schemas: Vec<TableSchema>,
    tables: Vec<BTreeMap<Vec<u8>, (Row, usize)>>,
    strict: bool,
}

impl Materializer {
    /// Empty tables for `schemas`, indexed by [`TableId`]. Lenient: see [`Materializer::strict`].
    pub fn new(schemas: &[TableSchema]) -> Self {
        Materializer { schemas: schemas.to_vec(), tables: vec![BTreeMap::new(); schemas.len()], strict: false }
    }

    /// In strict mode [`Materializer::apply`] fails on an insert of an existing key, and on an
    /// update or delete whose before image is not the current row. Lenient mode (the default)
    /// accepts replays: inserts overwrite, updates of missing rows insert, deletes of missing
    /// rows do nothing.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    pub(crate) fn key_of(schema: &TableSchema, row: &[Value]) -> Vec<u8> {
        let key = schema.row_key();
        if key.is_empty() {
            return canonical_line(row);
        }
        let mut out = Vec::with_capacity(16 * key.len());
        for (n, &i) in key.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            ferry_operators::json::write_value(&row[i], &mut out);
        }
        out
    }

    /// Applies one change; the error says what did not match (strict mode).
    pub fn apply(&mut self, change: &Change) -> Result<(), String> {
        let t = change.table as usize;
        let schema = self.schemas.get(t).ok_or_else(|| format!("change for unknown table id {t}"))?;
        let table = &mut self.tables[t];
        let keyed = schema.has_key();
        let strict = self.strict;
        let width = schema.columns.len();
        let image = |r: &Option<Row>, what: &str| -> Result<Row, String> {
            let r =
                r.as_ref().ok_or_else(|| format!("{} on {} without {what} image", change.op.as_str(), schema.name))?;
            if r.len() != width {
                return Err(format!(
                    "{} image on {} has {} values, the table {width} columns",
                    what,
                    schema.name,
                    r.len()
                ));
            }
            Ok(r.clone())
        };
        // Removes the row the before image names; Ok(false) if it was not there (lenient).
        let remove = |table: &mut BTreeMap<Vec<u8>, (Row, usize)>, before: &Row| -> Result<bool, String> {
            let k = Self::key_of(schema, before);
            match table.get_mut(&k) {
                Some((cur, n)) if !strict || cur == before => {
                    *n -= 1;
                    if *n == 0 || keyed {
                        table.remove(&k);
                    }
                    Ok(true)
                }
                Some((cur, _)) => Err(format!(
                    "{} at {}: before image {} differs from the current row {}",
                    change.op.as_str(),
                    change.pos,
                    String::from_utf8_lossy(&canonical_line(before)),
                    String::from_utf8_lossy(&canonical_line(cur))
                )),
                None if strict => Err(format!(
                    "{} at {}: no row {} in {}",
                    change.op.as_str(),
                    change.pos,
                    String::from_utf8_lossy(&canonical_line(before)),
                    schema.name
                )),
                None => Ok(false),
            }
        };
        let insert = |table: &mut BTreeMap<Vec<u8>, (Row, usize)>, after: Row| -> Result<(), String> {
            let k = Self::key_of(schema, &after);
            if keyed {
                if let Some(old) = table.insert(k, (after, 1)) {
                    if strict {
                        return Err(format!(
                            "{} at {}: key already holds {}",
                            change.op.as_str(),
                            change.pos,
                            String::from_utf8_lossy(&canonical_line(&old.0))
                        ));
                    }
                }
            } else {
                table.entry(k).or_insert((after, 0)).1 += 1;
            }
            Ok(())
        };
        match change.op {
            Op::Insert => insert(table, image(&change.after, "after")?),
            Op::Update => {
                let after = image(&change.after, "after")?;
                match &change.before {
                    Some(_) => {
                        let before = image(&change.before, "before")?;
                        remove(table, &before)?;
                    }
                    None if strict => return Err(format!("update at {} without before image", change.pos)),
                    None if keyed => {
                        table.remove(&Self::key_of(schema, &after));
                    }
                    None => {}
                }
                insert(table, after)
            }
            Op::Delete => remove(table, &image(&change.before, "before")?).map(|_| ()),
        }
    }

    /// Applies every change, stopping at the first error.
    pub fn apply_all<'a>(&mut self, changes: impl IntoIterator<Item = &'a Change>) -> Result<(), String> {
        changes.into_iter().try_for_each(|c| self.apply(c))
    }

    /// The rows of one table, sorted by [`canonical_line`] (multiset copies repeated).
    pub fn rows(&self, table: TableId) -> Vec<Row> {
        // BTreeMap order of keyless tables is already canonical; keyed ones need a sort.
        let mut rows: Vec<Row> =
            self.tables[table as usize].values().flat_map(|(r, n)| std::iter::repeat_n(r, *n).cloned()).collect();
        if self.schemas[table as usize].has_key() {
            sort_canonical(&mut rows);
        }
        rows
    }

    /// Every table's schema and sorted rows, in table-id order (the shape of [`expected_state`]).
    pub fn into_state(self) -> Vec<(TableSchema, Vec<Row>)> {
        let rows: Vec<Vec<Row>> = (0..self.schemas.len() as TableId).map(|t| self.rows(t)).collect();
        self.schemas.into_iter().zip(rows).collect()
    }
}
