//! What the running task's stream changed since continuous verification last looked: per source
//! table, the keys of its changed rows (a single integer key), or "the whole table" (other keys,
//! or more than [`MAX_KEYS`] changes).
//!
//! ```text
//!  stream change (binlog / WAL, not snapshot rows) ─► engine transform stage ─► note(table, key)
//!  continuous::pass ─► take() ─► the chunks holding a noted key are verified this pass
//! ```
//!
//! Stream changes are read by worker 0, which is in process 0 — where the background verifier
//! runs — so in a cluster too every stream change is noted where it is needed. Nothing is noted
//! until [`enable`] is called (a plan without `verify.continuous` pays one atomic load per
//! batch).

use ferry_operators::{Change, Position, TableId, TableSchema, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Keys noted per table at most before the whole table counts as changed.
pub const MAX_KEYS: usize = 100_000;

/// The changed keys of one table.
#[derive(Debug, Clone, PartialEq)]
pub enum Keys {
    /// These single-integer keys (old and new key of an update).
    Some(HashSet<i128>),
    /// Any row may have changed.
    All,
}

impl Keys {
    /// Whether a changed key lies in `[lower, upper)` (`None`: unbounded; bounds of a single
    /// integer key).
    pub fn any_in(&self, lower: Option<&[Value]>, upper: Option<&[Value]>) -> bool {
        let Keys::Some(keys) = self else { return true };
        let (lo, hi) = (lower.map(int_key), upper.map(int_key));
        if matches!(lo, Some(None)) || matches!(hi, Some(None)) {
            // Bounds that are not one integer: no way to place the keys, so any may be inside.
            return true;
        }
        let (lo, hi) = (lo.flatten(), hi.flatten());
        keys.iter().any(|k| lo.is_none_or(|l| *k >= l) && hi.is_none_or(|h| *k < h))
    }

    fn merge(&mut self, other: Keys) {
        match (&mut *self, other) {
            (Keys::All, _) => {}
            (_, Keys::All) => *self = Keys::All,
            (Keys::Some(a), Keys::Some(b)) => {
                a.extend(b);
                if a.len() > MAX_KEYS {
                    *self = Keys::All;
                }
            }
        }
    }

    fn add(&mut self, key: Option<i128>) {
        match (&mut *self, key) {
            (Keys::All, _) => {}
            (_, None) => *self = Keys::All,
            (Keys::Some(a), Some(k)) => {
                a.insert(k);
                if a.len() > MAX_KEYS {
                    *self = Keys::All;
                }
            }
        }
    }
}

/// A one-column integer key's value.
fn int_key(key: &[Value]) -> Option<i128> {
    match key {
        [Value::Int(i)] => Some(i128::from(*i)),
        [Value::UInt(u)] => Some(i128::from(*u)),
        _ => None,
    }
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static NOTED: Mutex<Option<HashMap<TableId, Keys>>> = Mutex::new(None);

/// Starts noting stream changes (continuous verification is on).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Notes the keys of a batch's stream changes (snapshot rows and computed rows are not
/// changes of the source); `schema` gives a table's key.
pub fn note<'a>(changes: &[Change], schema: impl Fn(TableId) -> &'a TableSchema) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let mut batch: HashMap<TableId, Keys> = HashMap::new();
    for c in changes {
        if matches!(c.pos, Position::None | Position::Seq { .. }) {
            continue;
        }
        // The rows of a change after a schema change follow its own schema.
        let key = c.schema.as_deref().map_or_else(|| schema(c.table).row_key(), |s| s.row_key());
        let entry = batch.entry(c.table).or_insert_with(|| Keys::Some(HashSet::new()));
        for row in [&c.before, &c.after].into_iter().flatten() {
            entry.add(match key {
                [k] => row.get(*k).and_then(|v| int_key(std::slice::from_ref(v))),
                _ => None,
            });
        }
    }
    if !batch.is_empty() {
        give_back(batch);
    }
}

/// The keys noted since the previous `take`, and forgets them.
pub fn take() -> HashMap<TableId, Keys> {
    NOTED.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_default()
}

/// Adds keys to the noted ones: a batch's, or those a pass could not verify (it failed), for
/// the next pass.
pub fn give_back(keys: HashMap<TableId, Keys>) {
    let mut noted = NOTED.lock().unwrap_or_else(|p| p.into_inner());
    let noted = noted.get_or_insert_with(HashMap::new);
    for (t, k) in keys {
        match noted.get_mut(&t) {
            Some(have) => have.merge(k),
            None => {
                noted.insert(t, k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_holds_a_noted_key_only_between_its_bounds() {
        let k = Keys::Some([5, 2500].into());
        let b = |i: i64| vec![Value::Int(i)];
        assert!(k.any_in(Some(&b(2001)), Some(&b(3001))));
        assert!(!k.any_in(Some(&b(6)), Some(&b(2500))), "the upper bound is exclusive");
        assert!(k.any_in(None, Some(&b(6))));
        assert!(!k.any_in(Some(&b(2501)), None));
        assert!(Keys::All.any_in(Some(&b(1)), Some(&b(2))));
        let text = vec![Value::Text("a".into())];
        assert!(Keys::Some(HashSet::new()).any_in(Some(&text), None), "bounds it cannot place take every key");
    }

    #[test]
    fn too_many_keys_count_as_the_whole_table() {
        let mut k = Keys::Some((0..MAX_KEYS as i128).collect());
        k.merge(Keys::Some([1, 2].into()));
        assert_eq!(k, Keys::Some((0..MAX_KEYS as i128).collect()), "a key noted again is one key");
        k.add(Some(-1));
        assert_eq!(k, Keys::All);
    }
}
