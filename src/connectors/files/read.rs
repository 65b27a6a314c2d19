//! The `files` target as `ferry verify` reads it: a table's files (JSON lines or Parquet)
//! applied in name order (the order the writer guarantees keeps each key's changes in source
//! order). In exactly-once a
//! reader follows the commit manifests (`_committed/`): only the files they list are read, so
//! parts of an epoch not yet committed are not. In `upsert` mode the
//! result is each key's last image unless its last line is `"__deleted": true`; in `append`
//! mode every line is a row. The table is materialized in memory and compared whole (files have
//! no key index to read a range from).

use crate::connector::verify::{KeyRange, ReadError, TableReader};
use crate::store::Store;
use ferry_operators::json::read_value;
use ferry_operators::schema::TableSchema;
use ferry_operators::Row;
use std::collections::HashMap;

/// Reads the files of a target.
pub struct FilesReader {
    store: Store,
    upsert: bool,
    exactly_once: bool,
}

/// The committed objects of an exactly-once files target: every file its commit manifests
/// list, in name order.
pub fn committed_files(store: &Store) -> Result<Vec<String>, String> {
    let mut files = Vec::new();
    for m in store.list(super::COMMITTED).map_err(|e| e.to_string())? {
        if super::manifest_of(&m).is_none() {
            continue;
        }
        let data = store.get(&m).map_err(|e| e.to_string())?.unwrap_or_default();
        let manifest: super::CommitManifest = serde_json::from_slice(&data).map_err(|e| format!("{m}: {e}"))?;
        files.extend(manifest.files);
    }
    files.sort();
    files.dedup();
    Ok(files)
}

impl FilesReader {
    /// A reader of the files in `store` (`exactly_once`: follow the commit manifests).
    pub fn new(store: Store, upsert: bool, exactly_once: bool) -> Self {
        FilesReader { store, upsert, exactly_once }
    }

    fn load(&self, schema: &TableSchema) -> Result<Vec<Row>, ReadError> {
        let dir = format!("{}/{}/", schema.name.database, schema.name.table);
        let mut files: Vec<String> = if self.exactly_once {
            committed_files(&self.store)
                .map_err(ReadError::Unavailable)?
                .into_iter()
                .filter(|f| f.starts_with(&dir))
                .collect()
        } else {
            self.store.list(&dir).map_err(|e| ReadError::Unavailable(e.to_string()))?
        };
        files.retain(|f| f.ends_with(".jsonl") || f.ends_with(".parquet"));
        files.sort();
        let key = schema.row_key();
        let mut by_key: HashMap<Vec<String>, (usize, Row)> = HashMap::new();
        let mut rows = Vec::new();
        let mut seq = 0usize;
        let mut apply = |row: Row, deleted: bool| {
            if !self.upsert || key.is_empty() {
                rows.push(row);
                return;
            }
            let k: Vec<String> = key.iter().map(|&i| row[i].to_string()).collect();
            if deleted {
                by_key.remove(&k);
            } else {
                seq += 1;
                by_key.insert(k, (seq, row));
            }
        };
        for f in files {
            let data = self.store.get(&f).map_err(|e| ReadError::Unavailable(e.to_string()))?.unwrap_or_default();
            if f.ends_with(".parquet") {
                let read = super::parquet::read_rows(data, schema)
                    .map_err(|e| ReadError::Table(format!("target file {f}: {e}")))?;
                for (row, deleted) in read {
                    apply(row, deleted);
                }
                continue;
            }
            for (n, line) in String::from_utf8_lossy(&data).lines().enumerate() {
                let bad = |why: String| ReadError::Table(format!("target file {f} line {}: {why}", n + 1));
                let obj: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
                let mut row = Vec::with_capacity(schema.columns.len());
                for c in &schema.columns {
                    let v = obj.get(&c.name).unwrap_or(&serde_json::Value::Null);
                    row.push(read_value(v, &c.ty).map_err(|e| bad(format!("column `{}`: {e}", c.name)))?);
                }
                apply(row, obj.get("__deleted").and_then(|d| d.as_bool()) == Some(true));
            }
        }
        if self.upsert && !key.is_empty() {
            let mut kept: Vec<(usize, Row)> = by_key.into_values().collect();
            kept.sort_by_key(|(s, _)| *s);
            rows = kept.into_iter().map(|(_, r)| r).collect();
        }
        Ok(rows)
    }
}

impl TableReader for FilesReader {
    fn rows(&mut self, schema: &TableSchema, range: &KeyRange) -> Result<Vec<Row>, ReadError> {
        debug_assert!(range.lower.is_none() && range.upper.is_none(), "files are read whole");
        self.load(schema)
    }

    fn reads_ranges(&self) -> bool {
        false
    }
}
