//! What the MySQL operators share: the prepared run ([`MysqlRun`]), the messages between the
//! reader tasks and the operators, the offsets they record, and how their errors become the
//! run's failures.

use super::binlog::{BinlogEvent, BinlogPos, StartFrom};
use super::handoff::ImageWeights;
use super::snapshot::{Chunk, WeighedColumn};
use crate::runtime::TaskError;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Everything the MySQL operators need, prepared before the dataflow starts ([`super::prepare`]).
#[derive(Clone)]
pub struct MysqlRun {
    /// Connection options (session set up for exact reads).
    pub opts: mysql_async::Opts,
    /// Replication server id.
    pub server_id: u32,
    /// The snapshot's chunks (empty in `incremental` mode).
    pub chunks: Arc<Vec<Chunk>>,
    /// Per selected table, per column, the character set.
    pub charsets: Arc<Vec<Vec<Option<String>>>>,
    /// Per selected table, per column, the collation (text columns): it decides whether a
    /// text key's order can be reproduced for the snapshot/binlog handoff.
    pub collations: Arc<Vec<Vec<Option<String>>>>,
    /// Per selected table, its key columns ordered by the server's sort keys
    /// ([`KeyOrder::Weight`]), in key order; empty for other tables.
    pub weighed: Arc<Vec<Vec<WeighedColumn>>>,
    /// Per chunk of such a table, the sort keys of its lower bound's weighed columns.
    pub bound_weights: Arc<HashMap<u32, Vec<Option<Vec<u8>>>>>,
    /// Where the binlog starts when no checkpoint says otherwise and there is no snapshot.
    pub initial: Option<StartFrom>,
    /// Stop once the binlog reaches this position (bounded runs: tests, catch-up benchmarks).
    pub stop_at: Option<BinlogPos>,
    /// How chunks join the binlog (resolved: never `auto`).
    pub handoff: super::config::Handoff,
    /// With the watermark handoff: when and where the binlog stood as the run was prepared
    /// (the first chunks' window start).
    pub watermark_start: Option<(std::time::Instant, BinlogPos)>,
    /// With the watermark handoff: how far back a chunk's window starts.
    pub watermark_lookback: Duration,
    /// Heartbeat period of the replication connection.
    pub heartbeat: Duration,
}

/// A decoded binlog event, its server time (seconds), after a commit the GTID position, and
/// for rows of a table whose column names changed since the last rows sent, the new names.
/// Rows events of a table with [`KeyOrder::Weight`] key columns in the snapshot window also
/// carry, per row change, the sort keys of its before and after images.
pub(super) type Event = (BinlogEvent, u32, Option<String>, Option<Vec<String>>, Option<Vec<[ImageWeights; 2]>>);

/// A binlog reader task's message: an event, or why the stream stopped.
pub(super) type EventMsg = Result<Event, TaskError>;

/// What a finished snapshot worker tells the binlog reader.
pub(super) type Done = crate::connector::snapshot::Done<BinlogPos>;

/// A source error as the run's failure: connection problems restart the task, settings and
/// grants stop it.
pub(super) fn source_failure(e: super::discover::SourceError) -> TaskError {
    if e.is_transient() {
        TaskError::transient(format!("snapshot: {e}"))
    } else {
        TaskError::definite(format!("snapshot: {e}"))
    }
}

/// A chunk's offset: done, at the binlog position its rows are exact at.
impl crate::connector::snapshot::ChunkPosition for BinlogPos {
    fn to_offset(&self) -> serde_json::Value {
        json!({ "done": true, "file": self.file, "pos": self.pos })
    }

    fn from_offset(v: &serde_json::Value) -> Option<Self> {
        v.get("done")?.as_bool()?.then(|| offset_pos(v)).flatten()
    }
}

/// The binlog position in a stored offset (`{"file", "pos", ...}`).
pub(super) fn offset_pos(v: &serde_json::Value) -> Option<BinlogPos> {
    BinlogPos::deserialize(v).ok()
}

/// A binlog error as the run's failure: a lost connection or a server going away restarts the
/// task from its checkpoint; a purged position, a refusal or an undecodable event stops it.
pub(super) fn binlog_failure(e: super::binlog::BinlogError) -> TaskError {
    if e.is_transient() {
        TaskError::transient(format!("binlog: {e}"))
    } else {
        TaskError::definite(format!("binlog: {e}"))
    }
}
