//! The `files` target as `ferry verify` reads it: a table's files applied in name order (the
//! order the writer guarantees keeps each key's changes in source order). In `upsert` mode the
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
}

/// A reader of the files under `path`.
pub fn reader(path: &str, upsert: bool) -> Result<FilesReader, String> {
    let store = Store::open_local(path).map_err(|e| format!("target: {e}"))?;
    Ok(FilesReader { store, upsert })
}

impl FilesReader {
    fn load(&self, schema: &TableSchema) -> Result<Vec<Row>, ReadError> {
        let dir = format!("{}/{}/", schema.name.database, schema.name.table);
        let mut files: Vec<String> = self
            .store
            .list(&dir)
            .map_err(|e| ReadError::Unavailable(e.to_string()))?
            .into_iter()
            .filter(|f| f.ends_with(".jsonl"))
            .collect();
        files.sort();
        let key = schema.row_key();
        let mut by_key: HashMap<Vec<String>, (usize, Row)> = HashMap::new();
        let mut rows = Vec::new();
        let mut seq = 0usize;
        for f in files {
            let data = self.store.get(&f).map_err(|e| ReadError::Unavailable(e.to_string()))?.unwrap_or_default();
            for (n, line) in String::from_utf8_lossy(&data).lines().enumerate() {
                let bad = |why: String| ReadError::Table(format!("target file {f} line {}: {why}", n + 1));
                let obj: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
                let mut row = Vec::with_capacity(schema.columns.len());
                for c in &schema.columns {
                    let v = obj.get(&c.name).unwrap_or(&serde_json::Value::Null);
                    row.push(read_value(v, &c.ty).map_err(|e| bad(format!("column `{}`: {e}", c.name)))?);
                }
                if !self.upsert || key.is_empty() {
                    rows.push(row);
                    continue;
                }
                let k: Vec<String> = key.iter().map(|&i| row[i].to_string()).collect();
                if obj.get("__deleted").and_then(|d| d.as_bool()) == Some(true) {
                    by_key.remove(&k);
                } else {
                    seq += 1;
                    by_key.insert(k, (seq, row));
                }
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
