//! The `files` target: one directory per target table, JSON lines or Parquet, through the
//! object store (a local directory or an S3-compatible bucket).
//!
//! ```text
//!  <path>/<database>/<table>/e<epoch>-w<worker>-p<part>.<ext>              exactly-once
//!  <path>/<database>/<table>/g<run>-e<epoch>-w<worker>-p<part>.<ext>       at-least-once
//!  <path>/_committed/<task>/e<epoch>-w<worker>.json                        exactly-once: the
//!                                                                          files an epoch commit published
//!  <path>/.staging/...                                                     local directory: parts not yet committed
//!  <path>/_schema_changes/e<epoch>-<source database>.<source table>.jsonl  schema changes
//! ```
//!
//! Applying the files of a table in name order replays its changes in an order that keeps
//! every key's changes in source order. In JSON lines each line is one change as a JSON object
//! of the target columns (encoding: `ferry_operators::json`); a Parquet file holds the same
//! rows as columns ([`super::parquet`] has the type mapping). In `upsert` mode every row also
//! has `__deleted`: `false` for an insert or the new image of an update, `true` for a delete
//! (the row is then the deleted row). In `append` mode a row is just the row; add an `op_type`
//! metadata column to see the change kind. A part ends at `max_file_rows` rows or
//! `max_file_bytes` bytes and at every epoch commit; a schema change starts a new part.
//!
//! Exactly-once: the commit point of a worker's epoch is its manifest
//! `_committed/<task>/e<epoch>-w<worker>.json`, written once every part of the epoch is in place; it
//! lists them. **A reader that must see only committed data reads the files the manifests
//! list** (in name order) and nothing else. On S3 parts are written under their final names
//! (no rename); a part no manifest lists belongs to an epoch not yet committed (a crashed run
//! left it, and the replay of that epoch overwrites or deletes it). In a local directory parts
//! wait in `.staging/` and are renamed into place before the manifest is written, so there a
//! reader of the plain directory sees an epoch's parts only once they are committed or being
//! committed. A restart replays uncommitted epochs with the same boundaries and rewrites the
//! same names; epochs with a manifest are committed and skipped. At-least-once: parts are
//! written in place as they fill and at every epoch end, without manifests; a restart writes a
//! new run number `g<run>`, so replayed duplicates sort after the originals.
//!
//! Schema changes of source tables (from a binlog's DDL) are JSON lines in `_schema_changes/`,
//! one file per epoch and source table, written when the epoch commits: the source table, its
//! target, the change (`{"kind":"add_column","column":"c"}`, …), the statement, the position
//! and the commit time. A schema change ends its epoch, so it applies after the row files of
//! its epoch and before those of later epochs. A replayed epoch rewrites the same file.

use super::parquet;
use super::FileFormat;
use crate::connector::{SinkError, SinkWriter};
use crate::plan::config::{Semantics, WriteMode};
use crate::plan::Compiled;
use crate::state::TaskState;
use crate::store::Store;
use ferry_operators::{json, Change, Op, Row, SchemaEvent, TableId, TableSchema};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Settings of one files writer.
#[derive(Debug, Clone)]
pub struct FilesOptions {
    /// This worker's index.
    pub worker: usize,
    /// Run number for at-least-once file names.
    pub run: u64,
    /// The file format.
    pub format: FileFormat,
    /// Rows per part file at most.
    pub max_rows: usize,
    /// Bytes per part file at most (JSON lines: exact; Parquet: the encoded size and an
    /// estimate of the rows not encoded yet).
    pub max_bytes: usize,
    /// Epochs up to this one may be replays of a crashed run (clean up their old parts).
    pub replay_upto: u64,
}

/// An exactly-once commit record: the files one worker's commit of `epoch` published.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitManifest {
    /// The epoch committed (every epoch up to it of this worker is committed).
    pub epoch: u64,
    /// The worker.
    pub worker: usize,
    /// The published objects, relative to the target path, in name order.
    pub files: Vec<String>,
}

/// The folder of the commit manifests under the target path.
pub const COMMITTED: &str = "_committed";

/// The manifest name of `task`'s worker `worker`'s commit of `epoch` (tasks writing into one
/// target path keep their manifests apart).
pub fn manifest_name(task: &str, epoch: u64, worker: usize) -> String {
    format!("{COMMITTED}/{task}/e{epoch:010}-w{worker:03}.json")
}

/// The epoch and worker of a manifest name.
pub fn manifest_of(name: &str) -> Option<(u64, usize)> {
    let file = name.rsplit('/').next()?.strip_suffix(".json")?;
    let (e, w) = file.strip_prefix('e')?.split_once("-w")?;
    Some((e.parse().ok()?, w.parse().ok()?))
}

/// Rows of a part waiting to be written.
enum Buf {
    /// JSON lines, encoded.
    Jsonl(Vec<u8>),
    /// Parquet: the file being encoded (made at the part's first row).
    Parquet(Option<Box<parquet::PartEncoder>>),
}

struct Part {
    /// Rows in `buf`.
    rows: usize,
    /// Bytes of `buf` (Parquet: encoded, and an estimate of the rows not encoded yet).
    bytes: usize,
    buf: Buf,
    /// A complete file whose put failed: written first at the next flush, under the part
    /// number it had.
    pending: Option<bytes::Bytes>,
    next_part: u32,
    staged: Vec<(String, String)>,
}

impl Part {
    fn new(buf: Buf) -> Part {
        Part { rows: 0, bytes: 0, buf, pending: None, next_part: 0, staged: Vec::new() }
    }
}

/// The row image a change is written as.
fn slot_of(change: &mut Change) -> &mut Option<Row> {
    if change.op == Op::Delete {
        &mut change.before
    } else {
        &mut change.after
    }
}

/// A files writer for one worker.
pub struct FilesWriter {
    plan: Arc<Compiled>,
    out: Store,
    state: TaskState,
    opts: FilesOptions,
    exactly_once: bool,
    /// Parts wait in `.staging/` and are renamed at commit (a local directory).
    stage: bool,
    upsert: bool,
    committed: u64,
    /// Open buffers by (epoch, target directory).
    open: BTreeMap<(u64, String), Part>,
    /// Objects written for epochs not yet committed, by epoch (exactly-once).
    published: BTreeMap<u64, Vec<String>>,
    names: HashMap<TableId, String>,
    /// The compiled target schema of each table, shared by its Parquet parts.
    schemas: HashMap<TableId, Arc<TableSchema>>,
    line: Vec<u8>,
    /// Schema change lines by (epoch, source table), written at the epoch's commit.
    schema: BTreeMap<(u64, String), Vec<u8>>,
}

impl FilesWriter {
    /// A writer into `out` (the target's root).
    pub fn new(plan: Arc<Compiled>, out: Store, state: TaskState, opts: FilesOptions) -> Result<Self, SinkError> {
        let exactly_once = plan.plan.settings.semantics == Semantics::ExactlyOnce;
        let upsert = plan.plan.settings.write_mode == WriteMode::Upsert;
        let transient = |e: &dyn std::fmt::Display| SinkError::Transient(e.to_string());
        let committed = if exactly_once {
            // The manifests are the commit points; the progress record may lag one behind (a
            // crash between the two).
            let progress = state.sink_progress("files", opts.worker).map_err(|e| transient(&e))?;
            let manifests = out.list(&format!("{COMMITTED}/{}", plan.plan.settings.task)).map_err(|e| transient(&e))?;
            let newest =
                manifests.iter().filter_map(|m| manifest_of(m)).filter(|&(_, w)| w == opts.worker).map(|(e, _)| e);
            newest.fold(progress, u64::max)
        } else {
            0
        };
        Ok(FilesWriter {
            stage: out.is_local(),
            plan,
            out,
            state,
            opts,
            exactly_once,
            upsert,
            committed,
            open: BTreeMap::new(),
            published: BTreeMap::new(),
            names: HashMap::new(),
            schemas: HashMap::new(),
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

    fn ext(&self) -> &'static str {
        match self.opts.format {
            FileFormat::Jsonl => "jsonl",
            FileFormat::Parquet => "parquet",
        }
    }

    fn part_name(&self, epoch: u64, part: u32) -> String {
        let ext = self.ext();
        if self.exactly_once {
            format!("e{epoch:010}-w{:03}-p{part:05}.{ext}", self.opts.worker)
        } else {
            format!("g{:013}-e{epoch:010}-w{:03}-p{part:05}.{ext}", self.opts.run, self.opts.worker)
        }
    }

    /// The target schema of a change's rows.
    fn schema_of(&mut self, table: TableId, change: &Change) -> Arc<TableSchema> {
        match &change.schema {
            Some(s) => s.clone(),
            None => {
                let plan = &self.plan;
                self.schemas.entry(table).or_insert_with(|| Arc::new(plan.table(table).target_schema.clone())).clone()
            }
        }
    }

    /// Readies the Parquet part of `key` for a row of `schema`: a part holds rows
    /// of one schema, so a row of another (after a schema change) flushes the part first.
    fn prepare_part(&mut self, key: &(u64, String), schema: Arc<TableSchema>) -> Result<(), SinkError> {
        let other_schema = matches!(self.open.get(key).map(|p| &p.buf),
            Some(Buf::Parquet(Some(enc))) if !Arc::ptr_eq(enc.schema(), &schema) && enc.schema().columns != schema.columns);
        if other_schema {
            self.flush_part(key.0, &key.1)?;
        }
        let upsert = self.upsert;
        let part = self.open.entry(key.clone()).or_insert_with(|| Part::new(Buf::Parquet(None)));
        let Buf::Parquet(enc) = &mut part.buf else { unreachable!("a Parquet writer's parts are Parquet") };
        if enc.is_none() {
            *enc = Some(Box::new(parquet::PartEncoder::new(schema, upsert).map_err(SinkError::Definite)?));
        }
        Ok(())
    }

    /// Adds a row ([`parquet::check_row`] accepted) to its part ([`Self::prepare_part`] made it).
    fn push_row(&mut self, key: &(u64, String), row: Row, deleted: bool) {
        let part = self.open.get_mut(key).expect("a prepared part");
        let Buf::Parquet(Some(enc)) = &mut part.buf else { unreachable!("a prepared Parquet part") };
        enc.push(row, deleted);
        part.rows += 1;
        part.bytes = enc.size();
    }

    /// Writes the part of `(epoch, dir)`: a file whose put failed before, then the rows
    /// buffered. A file stays in the part until its put succeeded, so a failed put loses
    /// nothing: the next flush (at the latest the commit's) writes it.
    fn flush_part(&mut self, epoch: u64, dir: &str) -> Result<(), SinkError> {
        let key = (epoch, dir.to_string());
        loop {
            let Some(part) = self.open.get_mut(&key) else { return Ok(()) };
            if part.pending.is_none() {
                if part.rows == 0 {
                    return Ok(());
                }
                let data: bytes::Bytes = match &mut part.buf {
                    Buf::Jsonl(b) => std::mem::take(b).into(),
                    Buf::Parquet(enc) => enc
                        .take()
                        .expect("a part with rows has its file")
                        .finish()
                        .map_err(|e| SinkError::Definite(format!("{dir}: encoding a Parquet file: {e}")))?
                        .into(),
                };
                part.pending = Some(data);
                part.rows = 0;
                part.bytes = 0;
            }
            let (data, n) = (part.pending.clone().expect("set above"), part.next_part);
            let name = self.part_name(epoch, n);
            let final_path = format!("{dir}/{name}");
            let path =
                if self.exactly_once && self.stage { format!(".staging/{dir}/{name}") } else { final_path.clone() };
            self.out.put(&path, data).map_err(|e| SinkError::Transient(e.to_string()))?;
            let part = self.open.get_mut(&key).expect("open part");
            part.pending = None;
            part.next_part += 1;
            if self.exactly_once {
                if self.stage {
                    part.staged.push((path, final_path.clone()));
                }
                self.published.entry(epoch).or_default().push(final_path);
            }
        }
    }

    /// Writes the part of `key` once it is full. A failed put keeps the rows buffered (the
    /// commit writes them or fails), so the change counts as taken.
    fn flush_if_full(&mut self, key: &(u64, String)) {
        let part = &self.open[key];
        if part.rows >= self.opts.max_rows || part.bytes >= self.opts.max_bytes {
            if let Err(e) = self.flush_part(key.0, &key.1) {
                tracing::warn!(error = %crate::secrets::redact(&e.to_string()), "writing a part failed; it is written again at the latest at the epoch's commit");
            }
        }
    }
}

impl SinkWriter for FilesWriter {
    fn name(&self) -> &'static str {
        "files"
    }

    fn write(&mut self, epoch: u64, table: TableId, change: &Change) -> Result<(), SinkError> {
        let dir = self.dir_for(table, change)?;
        let key = (epoch, dir.clone());
        match self.opts.format {
            FileFormat::Jsonl => {
                self.encode(table, change);
                let part = self.open.entry(key.clone()).or_insert_with(|| Part::new(Buf::Jsonl(Vec::new())));
                if let Buf::Jsonl(b) = &mut part.buf {
                    b.extend_from_slice(&self.line);
                }
                part.rows += 1;
                part.bytes += self.line.len();
            }
            FileFormat::Parquet => {
                let schema = self.schema_of(table, change);
                parquet::check_row(&schema, change.image()).map_err(|e| SinkError::Definite(format!("{dir}: {e}")))?;
                self.prepare_part(&key, schema)?;
                self.push_row(&key, change.image().clone(), change.op == Op::Delete);
            }
        }
        self.flush_if_full(&key);
        Ok(())
    }

    fn write_owned(&mut self, epoch: u64, mut change: Change) -> Result<(), (SinkError, Change)> {
        if self.opts.format != FileFormat::Parquet {
            return self.write(epoch, change.table, &change).map_err(|e| (e, change));
        }
        let table = change.table;
        let dir = match self.dir_for(table, &change) {
            Ok(d) => d,
            Err(e) => return Err((e, change)),
        };
        let key = (epoch, dir);
        let schema = self.schema_of(table, &change);
        if let Err(e) = parquet::check_row(&schema, change.image()) {
            return Err((SinkError::Definite(format!("{}: {e}", key.1)), change));
        }
        if let Err(e) = self.prepare_part(&key, schema) {
            return Err((e, change));
        }
        // Nothing fails from here: the row moves into its part.
        let deleted = change.op == Op::Delete;
        let row = slot_of(&mut change).take().expect("a change has its image");
        self.push_row(&key, row, deleted);
        self.flush_if_full(&key);
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
        let transient = |e: &dyn std::fmt::Display| SinkError::Transient(e.to_string());
        let due: Vec<(u64, String)> = self.schema.range(..(epoch + 1, String::new())).map(|(k, _)| k.clone()).collect();
        for key in due {
            // Dropped only once written: a retried commit writes it again.
            let data = self.schema.get(&key).expect("listed").clone();
            let path = format!("_schema_changes/e{:010}-{}.jsonl", key.0, key.1);
            self.out.put(&path, data).map_err(|e| transient(&e))?;
            // (A schema change of an epoch committed before this run is rewritten as it was and
            // is already in that epoch's manifest.)
            if self.exactly_once && key.0 > self.committed {
                let files = self.published.entry(key.0).or_default();
                if !files.contains(&path) {
                    files.push(path);
                }
            }
            self.schema.remove(&key);
        }
        let keys: Vec<(u64, String)> =
            self.open.range((0, String::new())..(epoch + 1, String::new())).map(|(k, _)| k.clone()).collect();
        let ext = format!(".{}", self.ext());
        for (e, dir) in keys {
            self.flush_part(e, &dir)?;
            // The part stays open until published: a retried commit (after a transient error)
            // finds what is left to rename.
            let next_part = self.open.get(&(e, dir.clone())).expect("open part").next_part;
            if self.exactly_once {
                if e <= self.opts.replay_upto {
                    // A crashed run may have written more parts of this epoch: remove them.
                    let prefix = format!("e{e:010}-w{:03}-p", self.opts.worker);
                    for old in self.out.list(&dir).map_err(|x| transient(&x))? {
                        let file = old.rsplit('/').next().unwrap_or("");
                        let n: Option<u32> =
                            file.strip_prefix(&prefix).and_then(|r| r.strip_suffix(&ext)).and_then(|n| n.parse().ok());
                        if n.is_some_and(|n| n >= next_part) {
                            self.out.delete(&old).map_err(|x| transient(&x))?;
                        }
                    }
                }
                while let Some((from, to)) = self.open.get(&(e, dir.clone())).and_then(|p| p.staged.first().cloned()) {
                    self.out.rename(&from, &to).map_err(|x| transient(&x))?;
                    self.open.get_mut(&(e, dir.clone())).expect("open part").staged.remove(0);
                }
            }
            self.open.remove(&(e, dir));
        }
        if self.exactly_once && epoch > self.committed {
            // The commit point: the manifest of what this commit published (epochs up to
            // `epoch`), then the progress record.
            let mut files: Vec<String> = self.published.range(..=epoch).flat_map(|(_, f)| f.iter().cloned()).collect();
            if !files.is_empty() {
                files.sort();
                let m = CommitManifest { epoch, worker: self.opts.worker, files };
                let bytes = serde_json::to_vec_pretty(&m).expect("a manifest serializes");
                let name = manifest_name(&self.plan.plan.settings.task, epoch, self.opts.worker);
                self.out.put(&name, bytes).map_err(|e| transient(&e))?;
            }
            self.published = self.published.split_off(&(epoch + 1));
            self.state.write_sink_progress("files", self.opts.worker, epoch).map_err(|e| transient(&e))?;
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
