//! Replication slots and exported snapshots, over replication sessions ([`super::wire`]:
//! replication commands before any `START_REPLICATION`).
//!
//! - The task's slot is permanent, created once (without a snapshot) by the first run; its
//!   consistent point is where the stream starts after a full snapshot.
//! - Each process exports one snapshot from a *temporary* slot ([`Exported`]) before its
//!   workers start, and its readers import it: the slot's consistent point is exactly the
//!   snapshot's point, and the temporary slot dies with the session, so a crash leaks nothing.

use super::discover::{Endpoint, PgSourceError};
use super::wire::Session;

/// Creates the task's permanent logical slot (pgoutput, no snapshot): its consistent point.
pub async fn create_slot(ep: &Endpoint, slot: &str) -> Result<u64, PgSourceError> {
    let mut s = Session::connect(ep).await?;
    let rows = s.query(&format!("CREATE_REPLICATION_SLOT {slot} LOGICAL pgoutput NOEXPORT_SNAPSHOT")).await?;
    consistent_point(&rows)
}

fn consistent_point(rows: &[Vec<Option<bytes::Bytes>>]) -> Result<u64, PgSourceError> {
    let text = rows
        .first()
        .and_then(|r| r.get(1).cloned().flatten())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .ok_or_else(|| PgSourceError::Server("CREATE_REPLICATION_SLOT returned no consistent point".into()))?;
    super::config::parse_lsn(&text).map_err(|e| PgSourceError::Server(format!("consistent point: {e}")))
}

/// A snapshot exported by a temporary slot: valid while this value lives (the session stays
/// idle), importable by any session with `SET TRANSACTION SNAPSHOT`.
pub struct Exported {
    /// The snapshot's point: transactions committed before it are in the snapshot, later ones
    /// are in the stream.
    pub lsn: u64,
    /// The snapshot's name.
    pub name: String,
    /// Kept open: the snapshot and the temporary slot end with it.
    _session: Session,
}

/// `<slot>_r<pid>_<process>_<n>`, at most 63 bytes: the temporary slot of this process's
/// snapshot for its `n`-th run (processes of a cluster in containers may share a pid; a run's
/// session may not be gone yet when the next run of the same process starts).
pub fn temp_slot_name(slot: &str, process: usize) -> String {
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let suffix = format!("_r{}_{process}_{n}", std::process::id());
    let keep = 63usize.saturating_sub(suffix.len()).min(slot.len());
    format!("{}{suffix}", &slot[..keep])
}

impl std::fmt::Debug for Exported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Exported({} at {})", self.name, super::config::format_lsn(self.lsn))
    }
}

/// Exports a snapshot through a temporary slot named `name` (unique on the server).
pub async fn export(ep: &Endpoint, name: &str) -> Result<Exported, PgSourceError> {
    let mut s = Session::connect(ep).await?;
    let rows = s.query(&format!("CREATE_REPLICATION_SLOT {name} TEMPORARY LOGICAL pgoutput EXPORT_SNAPSHOT")).await?;
    let lsn = consistent_point(&rows)?;
    let snapshot = rows
        .first()
        .and_then(|r| r.get(2).cloned().flatten())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .ok_or_else(|| PgSourceError::Server("CREATE_REPLICATION_SLOT returned no snapshot name".into()))?;
    Ok(Exported { lsn, name: snapshot, _session: s })
}

/// What the server says of a slot: its plugin, whether a session reads it, its confirmed
/// position.
#[derive(Debug, Clone)]
pub struct SlotInfo {
    /// The output plugin.
    pub plugin: String,
    /// A session streams from it now.
    pub active: bool,
    /// `confirmed_flush_lsn` (0: none yet).
    pub confirmed: u64,
    /// The slot's database.
    pub database: String,
}

/// The slot named `slot`, if it exists.
pub async fn slot_info(c: &tokio_postgres::Client, slot: &str) -> Result<Option<SlotInfo>, PgSourceError> {
    let row = c
        .query_opt(
            "SELECT COALESCE(plugin::text, ''), active, COALESCE(confirmed_flush_lsn::text, '0/0'), COALESCE(database::text, '') \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(PgSourceError::from_pg)?;
    Ok(row.map(|r| SlotInfo {
        plugin: r.get(0),
        active: r.get(1),
        confirmed: super::config::parse_lsn(r.get::<_, &str>(2)).unwrap_or(0),
        database: r.get(3),
    }))
}

/// Drops `slot` (a leftover of a first run that never recorded its plan).
pub async fn drop_slot(c: &tokio_postgres::Client, slot: &str) -> Result<(), PgSourceError> {
    c.execute("SELECT pg_drop_replication_slot($1)", &[&slot]).await.map_err(PgSourceError::from_pg)?;
    Ok(())
}
