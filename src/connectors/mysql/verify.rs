//! The MySQL/MariaDB source as `ferry verify` reads it: key ranges with the snapshot's own
//! `SELECT` (same session settings, same decoding as the run), chunk bounds by walking the key
//! index as the snapshot plans its chunks, and the binlog position (`SHOW MASTER STATUS`) that
//! a running task's checkpoint is compared with.

use super::binlog::BinlogPos;
use super::config::MysqlSourceConfig;
use super::discover;
use super::snapshot::{self, Chunk};
use crate::connector::verify::{Digest, DigestColumn, KeyRange, ReadError, TableReader};
use crate::plan::Compiled;
use crate::state::Offsets;
use ferry_operators::schema::TableSchema;
use ferry_operators::{Row, Value};
use serde_json::{json, Value as Json};
use std::collections::HashMap;

/// One session on the source.
pub struct MysqlReader {
    /// The runtime of this reader's session (its own: see [`crate::runtime::own_runtime`]).
    rt: tokio::runtime::Runtime,
    conn: mysql_async::Conn,
    /// Per source table (`db.table`), its columns' character sets.
    charsets: HashMap<String, Vec<Option<String>>>,
    /// Whether the server computes range digests (asked once).
    digests: Option<bool>,
}

/// Opens a reader for the plan's source.
pub fn reader(cfg: &MysqlSourceConfig, plan: &Compiled) -> Result<MysqlReader, String> {
    let opts = discover::opts(cfg).map_err(|e| e.to_string())?;
    let rt = crate::runtime::own_runtime().map_err(|e| e.to_string())?;
    let conn = rt.block_on(discover::connect(&opts)).map_err(|e| e.to_string())?;
    let charsets =
        plan.catalog.tables.iter().zip(&plan.charsets).map(|(t, cs)| (t.name.to_string(), cs.clone())).collect();
    Ok(MysqlReader { rt, conn, charsets, digests: None })
}

fn unavailable(e: discover::SourceError) -> ReadError {
    ReadError::classify(e.is_transient(), e.to_string())
}

impl TableReader for MysqlReader {
    fn rows(&mut self, schema: &TableSchema, range: &KeyRange) -> Result<Vec<Row>, ReadError> {
        let charsets = self.charsets.get(&schema.name.to_string()).cloned().unwrap_or_default();
        let chunk = Chunk { id: 0, table: 0, lower: range.lower.clone(), upper: range.upper.clone() };
        let mut rows = Vec::new();
        self.rt
            .block_on(snapshot::select_chunk(&mut self.conn, &chunk, schema, &charsets, |b| rows.extend(b)))
            .map_err(unavailable)?;
        Ok(rows)
    }

    fn digest(
        &mut self,
        schema: &TableSchema,
        columns: &[DigestColumn],
        range: &KeyRange,
    ) -> Result<Option<Digest>, ReadError> {
        let rt = &self.rt;
        if !rt.block_on(super::digest::supported(&mut self.conn, &mut self.digests)) {
            return Ok(None);
        }
        let charsets = self.charsets.get(&schema.name.to_string()).cloned().unwrap_or_default();
        let chunk = Chunk { id: 0, table: 0, lower: range.lower.clone(), upper: range.upper.clone() };
        super::digest::answer(
            rt.block_on(super::digest::chunk_digest(&mut self.conn, schema, columns, &charsets, &chunk)),
            &mut self.digests,
            &schema.name.to_string(),
        )
    }

    fn bounds(&mut self, schema: &TableSchema, rows: u64) -> Result<Vec<Vec<Value>>, ReadError> {
        let charsets = self.charsets.get(&schema.name.to_string()).cloned().unwrap_or_default();
        let chunks = self
            .rt
            .block_on(snapshot::plan_table(&mut self.conn, 0, schema, &charsets, rows, 0, None))
            .map_err(unavailable)?;
        Ok(chunks.into_iter().filter_map(|c| c.upper).collect())
    }

    fn position(&mut self) -> Result<Option<Json>, ReadError> {
        let p = self.rt.block_on(snapshot::current_position(&mut self.conn)).map_err(unavailable)?;
        Ok(Some(json!({ "file": p.file, "pos": p.pos })))
    }

    fn passed(&self, offsets: &Offsets, position: &Json) -> bool {
        let pos = |j: &Json| Some(BinlogPos::new(j.get("file")?.as_str()?, j.get("pos")?.as_u64()?));
        // Partition 0 is the binlog stream's position.
        match (offsets.get(&0).and_then(pos), pos(position)) {
            (Some(at), Some(want)) => at >= want,
            _ => false,
        }
    }
}
