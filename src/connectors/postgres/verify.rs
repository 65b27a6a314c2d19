//! The PostgreSQL source as `ferry verify` reads it: key ranges with `COPY (SELECT …) TO
//! STDOUT` decoded like the snapshot's rows, chunk bounds on a single integer key (evenly over
//! its span, as the snapshot plans), and the WAL insert position that a running task's
//! checkpoint (its stream's commit LSN) is compared with.

use super::config::{parse_lsn, PostgresSourceConfig};
use super::discover::{self, PgSourceError};
use super::snapshot::{self, ident, qualified};
use crate::connector::verify::{Digest, DigestColumn, KeyRange, ReadError, TableReader};
use crate::connectors::sql::encode::Dialect;
use crate::state::Offsets;
use ferry_operators::schema::TableSchema;
use ferry_operators::{Row, Value};
use serde_json::{json, Value as Json};

/// One session on the source.
pub struct PgReader {
    /// The runtime of this reader's session (its own: see [`crate::runtime::own_runtime`]).
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

/// Opens a reader for the plan's source.
pub fn reader(cfg: &PostgresSourceConfig) -> Result<PgReader, String> {
    let ep = discover::endpoint(cfg).map_err(|e| e.to_string())?;
    let rt = crate::runtime::own_runtime().map_err(|e| e.to_string())?;
    let client = rt.block_on(discover::connect(&ep)).map_err(|e| e.to_string())?;
    Ok(PgReader { rt, client })
}

fn read_error(e: PgSourceError) -> ReadError {
    ReadError::classify(e.is_transient(), e.to_string())
}

/// `(k1, k2) op (v1, v2)` for a key bound.
fn bound(schema: &TableSchema, op: &str, values: &[Value]) -> Result<String, ReadError> {
    let keys: Vec<String> = schema.row_key().iter().map(|&i| ident(&schema.columns[i].name)).collect();
    let mut lits = Vec::new();
    for v in values {
        let mut s = String::new();
        Dialect::Postgres
            .literal(v, &mut s)
            .map_err(|e| ReadError::Table(format!("a key bound of {}: {e}", schema.name)))?;
        lits.push(s);
    }
    Ok(format!("({}) {op} ({})", keys.join(", "), lits.join(", ")))
}

/// The conditions of a key range (none for an unbounded one).
pub fn range_conds(schema: &TableSchema, range: &KeyRange) -> Result<Vec<String>, ReadError> {
    let mut conds = Vec::new();
    if let Some(lo) = &range.lower {
        conds.push(bound(schema, ">=", lo)?);
    }
    if let Some(hi) = &range.upper {
        conds.push(bound(schema, "<", hi)?);
    }
    Ok(conds)
}

impl TableReader for PgReader {
    fn digest(
        &mut self,
        schema: &TableSchema,
        columns: &[DigestColumn],
        range: &KeyRange,
    ) -> Result<Option<Digest>, ReadError> {
        let cols = columns.iter().map(|c| c.index);
        let q = super::digest::select(schema, &qualified(schema), cols, &range_conds(schema, range)?);
        self.rt.block_on(super::digest::copy_digest(&self.client, &q, columns)).map(Some).map_err(read_error)
    }

    fn rows(&mut self, schema: &TableSchema, range: &KeyRange) -> Result<Vec<Row>, ReadError> {
        let q =
            super::digest::select(schema, &qualified(schema), 0..schema.columns.len(), &range_conds(schema, range)?);
        let client = &self.client;
        let mut rows = Vec::new();
        self.rt
            .block_on(async {
                let stream = client.copy_out(&format!("COPY ({q}) TO STDOUT")).await.map_err(PgSourceError::from_pg)?;
                snapshot::copy_rows(stream, schema, "a verified range", &mut |b| {
                    rows.extend(b);
                    true
                })
                .await
            })
            .map_err(read_error)?;
        Ok(rows)
    }

    fn bounds(&mut self, schema: &TableSchema, rows: u64) -> Result<Vec<Vec<Value>>, ReadError> {
        if schema.row_key().len() != 1 {
            return Ok(Vec::new());
        }
        let chunks = self.rt.block_on(snapshot::plan_table(&self.client, 0, schema, rows, 0)).map_err(read_error)?;
        Ok(chunks.into_iter().filter_map(|c| c.upper).map(|u| vec![Value::Int(u)]).collect())
    }

    fn position(&mut self) -> Result<Option<Json>, ReadError> {
        let row = self
            .rt
            .block_on(self.client.query_one("SELECT pg_current_wal_insert_lsn()::text", &[]))
            .map_err(|e| read_error(PgSourceError::from_pg(e)))?;
        let text: String = row.get(0);
        let lsn = parse_lsn(&text).map_err(ReadError::Table)?;
        Ok(Some(json!({ "lsn": lsn })))
    }

    fn passed(&self, offsets: &Offsets, position: &Json) -> bool {
        // Partition 0 is the replication stream's commit position.
        let lsn = |j: &Json| j.get("lsn")?.as_u64();
        matches!((offsets.get(&0).and_then(lsn), lsn(position)), (Some(at), Some(want)) if at >= want)
    }
}
