//! The `files` target: one directory per target table, JSON lines, through the object store.
//!
//! ```text
//!  <path>/<database>/<table>/e<epoch>-w<worker>-p<part>.jsonl              exactly-once
//!  <path>/<database>/<table>/g<run>-e<epoch>-w<worker>-p<part>.jsonl       at-least-once
//!  <path>/.staging/...                                                     exactly-once parts not yet committed
//!  <path>/_schema_changes/e<epoch>-<source database>.<source table>.jsonl  schema changes
//! ```
//!
//! Applying the files of a table in name order replays its changes in an order that keeps
//! every key's changes in source order. Each line is one change as a JSON object of the target
//! columns (encoding: `ferry_operators::json`). In `upsert` mode every line also has
//! `"__deleted"`: `false` for an insert or the new image of an update, `true` for a delete (the
//! line then holds the deleted row). In `append` mode a line is just the row; add an `op_type`
//! metadata column to see the change kind.
//!
//! Exactly-once: rows of an epoch go to `.staging/` as batches fill; when the epoch is complete
//! the parts are renamed into place and the worker's progress is recorded. A restart replays
//! uncommitted epochs with the same boundaries and rewrites the same names, and skips committed
//! ones. At-least-once: parts are written in place as batches fill and at every epoch end; a
//! restart writes a new run number `g<run>`, so replayed duplicates sort after the originals.
//!
//! Schema changes of source tables (from a binlog's DDL) are JSON lines in `_schema_changes/`,
//! one file per epoch and source table, written when the epoch commits: the source table, its
//! target, the change (`{"kind":"add_column","column":"c"}`, …), the statement, the position
//! and the commit time. A schema change ends its epoch, so it applies after the row files of
//! its epoch and before those of later epochs. A replayed epoch rewrites the same file.

use crate::connector::{SinkError, SinkWriter};
use crate::plan::config::{Semantics, WriteMode};
use crate::plan::Compiled;
use crate::state::TaskState;
use crate::store::Store;
use ferry_operators::{json, Change, Op, SchemaEvent, TableId};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Settings of one files writer.
#[derive(Debug, Clone)]
pub struct FilesOptions {
    /// This worker's index.
    pub worker: usize,
    /// Run number for at-least-once file names.
    pub run: u64,
    /// Rows per part file.
    pub batch_rows: usize,
    /// Epochs up to this one may be replays of a crashed run (clean up their old parts).
    pub replay_upto: u64,
}

struct Part {
    rows: usize,
    buf: Vec<u8>,
    next_part: u32,
    staged: Vec<(String, String)>,
}

/// A files writer for one worker.
pub struct FilesWriter {
    plan: Arc<Compiled>,
    out: Store,
    state: TaskState,
    opts: FilesOptions,
    exactly_once: bool,
    upsert: bool,
    committed: u64,
    /// Open buffers by (epoch, target directory).
    open: BTreeMap<(u64, String), Part>,
    names: HashMap<TableId, String>,
    line: Vec<u8>,
    /// Schema change lines by (epoch, source table), written at the epoch's commit.
    schema: BTreeMap<(u64, String), Vec<u8>>,
}

impl FilesWriter {
    /// A writer into `out` (the target's root directory).
    pub fn new(plan: Arc<Compiled>, out: Store, state: TaskState, opts: FilesOptions) -> Result<Self, SinkError> {
        let exactly_once = plan.plan.settings.semantics == Semantics::ExactlyOnce;
        let upsert = plan.plan.settings.write_mode == WriteMode::Upsert;
        let committed = if exactly_once {
            state.sink_progress("files", opts.worker).map_err(|e| SinkError::Transient(e.to_string()))?
        } else {
            0
        };
        Ok(FilesWriter {
            plan,
            out,
            state,
            opts,
            exactly_once,
            upsert,
            committed,
            open: BTreeMap::new(),
            names: HashMap::new(),
            line: Vec::new(),
            schema: BTreeMap::new(),
        })
    }

    fn dir_for(&mut self, table: TableId, change: &Change) -> Result<String, SinkError> {
        if let Some(d) = self.names.get(&table) {
            return Ok(d.clone());
        }
        let tp = self.plan.table(table);
        let schema = change.schema.as_deref().unwrap_or(&tp.target_schema);
        let (db, tb) = crate::connector::target_names(&self.plan, table, schema, change)?;
        if tp.static_names.is_none() {
            return Ok(format!("{db}/{tb}"));
        }
        let dir = format!("{db}/{tb}");
        self.names.insert(table, dir.clone());
        Ok(dir)
    }

    fn encode(&mut self, table: TableId, change: &Change) {
        // Rows after a source schema change carry their own (grown) target schema.
        let schema = change.schema.as_deref().unwrap_or(&self.plan.table(table).target_schema);
        let row = change.image();
        self.line.clear();
        self.line.push(b'{');
        for (i, (c, v)) in schema.columns.iter().zip(row).enumerate() {
            if i > 0 {
                self.line.push(b',');
            }
            json::write_str(&c.name, &mut self.line);
            self.line.push(b':');
            json::write_value(v, &mut self.line);
        }
        if self.upsert {
            self.line.extend_from_slice(if change.op == Op::Delete {
                b",\"__deleted\":true"
            } else {
                b",\"__deleted\":false"
            });
        }
        self.line.extend_from_slice(b"}\n");
    }

    fn part_name(&self, epoch: u64, part: u32) -> String {
        if self.exactly_once {
            format!("e{epoch:010}-w{:03}-p{part:05}.jsonl", self.opts.worker)
        } else {
            format!("g{:013}-e{epoch:010}-w{:03}-p{part:05}.jsonl", self.opts.run, self.opts.worker)
        }
    }

    fn flush_part(&mut self, epoch: u64, dir: &str) -> Result<(), SinkError> {
        let name_part = match self.open.get(&(epoch, dir.to_string())) {
            Some(p) if p.rows > 0 => p.next_part,
            _ => return Ok(()),
        };
        let name = self.part_name(epoch, name_part);
        let final_path = format!("{dir}/{name}");
        let path = if self.exactly_once { format!(".staging/{dir}/{name}") } else { final_path.clone() };
        let part = self.open.get_mut(&(epoch, dir.to_string())).expect("open part");
        let data = std::mem::take(&mut part.buf);
        part.rows = 0;
        part.next_part += 1;
        if self.exactly_once {
            part.staged.push((path.clone(), final_path));
        }
        self.out.put(&path, data).map_err(|e| SinkError::Transient(e.to_string()))
    }
}

impl SinkWriter for FilesWriter {
    fn name(&self) -> &'static str {
        "files"
    }

    fn write(&mut self, epoch: u64, table: TableId, change: &Change) -> Result<(), SinkError> {
        let dir = self.dir_for(table, change)?;
        self.encode(table, change);
        let batch = self.opts.batch_rows;
        let part = self.open.entry((epoch, dir.clone())).or_insert_with(|| Part {
            rows: 0,
            buf: Vec::new(),
            next_part: 0,
            staged: Vec::new(),
        });
        part.buf.extend_from_slice(&self.line);
        part.rows += 1;
        if part.rows >= batch {
            self.flush_part(epoch, &dir)?;
        }
        Ok(())
    }

    fn schema_change(&mut self, epoch: u64, event: &SchemaEvent) -> Result<(), SinkError> {
        let source = self.plan.catalog.get(event.table).name.to_string();
        let target = self.plan.table(event.table).static_names.as_ref().map(|(d, t)| format!("{d}.{t}"));
        let line = serde_json::json!({
            "table": source,
            "target": target,
            "epoch": epoch,
            "change": event.change,
            "statement": event.statement,
            "position": event.pos.to_string(),
            "commit_time": ferry_operators::Value::Timestamp(event.commit_micros).to_string(),
        });
        let buf = self.schema.entry((epoch, source)).or_default();
        serde_json::to_writer(&mut *buf, &line).map_err(|e| SinkError::Definite(e.to_string()))?;
        buf.push(b'\n');
        Ok(())
    }

    fn commit(&mut self, epoch: u64) -> Result<(), SinkError> {
        let due: Vec<(u64, String)> = self.schema.range(..(epoch + 1, String::new())).map(|(k, _)| k.clone()).collect();
        for key in due {
            // Dropped only once written: a retried commit writes it again.
            let data = self.schema.get(&key).expect("listed").clone();
            let path = format!("_schema_changes/e{:010}-{}.jsonl", key.0, key.1);
            self.out.put(&path, data).map_err(|e| SinkError::Transient(e.to_string()))?;
            self.schema.remove(&key);
        }
        let keys: Vec<(u64, String)> =
            self.open.range((0, String::new())..(epoch + 1, String::new())).map(|(k, _)| k.clone()).collect();
        for (e, dir) in keys {
            self.flush_part(e, &dir)?;
            // The part stays open until published: a retried commit (after a transient error)
            // finds what is left to rename.
            let next_part = self.open.get(&(e, dir.clone())).expect("open part").next_part;
            if self.exactly_once {
                if e <= self.opts.replay_upto {
                    // A crashed run may have published more parts of this epoch: remove them.
                    let prefix = format!("e{e:010}-w{:03}-p", self.opts.worker);
                    for old in self.out.list(&dir).map_err(|x| SinkError::Transient(x.to_string()))? {
                        let file = old.rsplit('/').next().unwrap_or("");
                        let n: Option<u32> = file
                            .strip_prefix(&prefix)
                            .and_then(|r| r.strip_suffix(".jsonl"))
                            .and_then(|n| n.parse().ok());
                        if n.is_some_and(|n| n >= next_part) {
                            self.out.delete(&old).map_err(|x| SinkError::Transient(x.to_string()))?;
                        }
                    }
                }
                while let Some((from, to)) = self.open.get(&(e, dir.clone())).and_then(|p| p.staged.first().cloned()) {
                    self.out.rename(&from, &to).map_err(|x| SinkError::Transient(x.to_string()))?;
                    self.open.get_mut(&(e, dir.clone())).expect("open part").staged.remove(0);
                }
            }
            self.open.remove(&(e, dir));
        }
        if self.exactly_once && epoch > self.committed {
            self.state
                .write_sink_progress("files", self.opts.worker, epoch)
                .map_err(|e| SinkError::Transient(e.to_string()))?;
            self.committed = epoch;
        }
        Ok(())
    }

    fn committed(&self) -> u64 {
        if self.exactly_once {
            self.committed
        } else {
            0
        }
    }
}
