//! Replication slots and exported snapshots, over replication sessions (`pgwire-replication`
//! in gated mode: commands before `START_REPLICATION`).
//!
//! - The task's slot is permanent, created once (without a snapshot) by the first run; its
//!   consistent point is where the stream starts after a full snapshot.
//! - Every snapshot reader exports a snapshot of its own from a *temporary* slot
//!   ([`Exported`]): the slot's consistent point is exactly the snapshot's point, and the
//!   temporary slot dies with the session, so a crashed reader leaks nothing.

use super::discover::{Endpoint, PgSourceError};
use super::types::SESSION_OPTIONS;
use pgwire_replication::{client::ReplicationClient, config::ReplicationConfig, Lsn, PgWireError};

/// A replication session's config for `slot` (and `publication`, when it streams).
pub fn session_config(ep: &Endpoint, slot: &str, publication: &str) -> ReplicationConfig {
    ReplicationConfig::new(
        ep.host.clone(),
        ep.user.clone(),
        ep.password.clone(),
        ep.database.clone(),
        slot,
        publication,
    )
    .with_port(ep.port)
    .with_options(SESSION_OPTIONS)
    .with_application_name("ferry")
}

/// A replication-session error as a source error: lost connections are transient, refusals
/// (SQLSTATE in the message) are not.
pub fn wire_error(e: PgWireError) -> PgSourceError {
    let text = crate::secrets::redact(&e.to_string());
    match &e {
        // 55006: the slot is still held by a session that is going away (the run before this
        // one, in the same process, ended a moment ago): a retry takes it.
        PgWireError::Server(m)
            if !m.contains("SQLSTATE 57") && !m.contains("SQLSTATE 08") && !m.contains("SQLSTATE 55006") =>
        {
            PgSourceError::Precondition(format!("PostgreSQL: {text}"))
        }
        PgWireError::Auth(_) => PgSourceError::Precondition(format!("PostgreSQL: {text}")),
        _ => PgSourceError::Server(text),
    }
}

/// Creates the task's permanent logical slot (pgoutput, no snapshot): its consistent point.
pub async fn create_slot(ep: &Endpoint, slot: &str) -> Result<u64, PgSourceError> {
    let mut s = ReplicationClient::connect_gated(session_config(ep, slot, "unused")).await.map_err(wire_error)?;
    let rows = s
        .simple_query(&format!("CREATE_REPLICATION_SLOT {slot} LOGICAL pgoutput NOEXPORT_SNAPSHOT"))
        .await
        .map_err(wire_error)?;
    s.abort();
    consistent_point(&rows)
}

fn consistent_point(rows: &[Vec<Option<bytes::Bytes>>]) -> Result<u64, PgSourceError> {
    let text = rows
        .first()
        .and_then(|r| r.get(1).cloned().flatten())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .ok_or_else(|| PgSourceError::Server("CREATE_REPLICATION_SLOT returned no consistent point".into()))?;
    Lsn::parse(&text).map(Lsn::as_u64).map_err(|e| PgSourceError::Server(format!("consistent point `{text}`: {e}")))
}

/// A snapshot exported by a temporary slot: valid while this value lives (the session stays
/// idle), importable by any session with `SET TRANSACTION SNAPSHOT`.
pub struct Exported {
    /// The snapshot's point: transactions committed before it are in the snapshot, later ones
    /// are in the stream.
    pub lsn: u64,
    /// The snapshot's name.
    pub name: String,
    session: ReplicationClient,
}

impl Drop for Exported {
    fn drop(&mut self) {
        self.session.abort();
    }
}

/// Exports a snapshot through a temporary slot named `name` (unique on the server).
pub async fn export(ep: &Endpoint, name: &str) -> Result<Exported, PgSourceError> {
    let mut s = ReplicationClient::connect_gated(session_config(ep, name, "unused")).await.map_err(wire_error)?;
    let rows = s
        .simple_query(&format!("CREATE_REPLICATION_SLOT {name} TEMPORARY LOGICAL pgoutput EXPORT_SNAPSHOT"))
        .await
        .map_err(wire_error)?;
    let lsn = consistent_point(&rows)?;
    let snapshot = rows
        .first()
        .and_then(|r| r.get(2).cloned().flatten())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .ok_or_else(|| PgSourceError::Server("CREATE_REPLICATION_SLOT returned no snapshot name".into()))?;
    Ok(Exported { lsn, name: snapshot, session: s })
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
