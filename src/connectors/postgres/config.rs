//! The `source:` section of a plan whose source is `postgres`: connection, the replication
//! slot and publication, snapshot chunking, where the change stream starts.

use serde::{Deserialize, Serialize};

/// PostgreSQL source settings. Defaults live in [`Default`].
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresSourceConfig {
    /// Connection URL, `postgres://user[:password]@host[:port]/database`. Put the password in
    /// `password` (or write it as `${env:NAME}`); it is masked in every log line and error
    /// either way. The user needs `REPLICATION` (or superuser) and `SELECT` on the tables.
    /// Required.
    pub url: String,
    /// The password, if it is not in the URL; e.g. `${env:PG_PASSWORD}`.
    pub password: Option<String>,
    /// The logical replication slot (pgoutput) the task reads and acknowledges. Created by the
    /// first run, kept between runs; never created again silently once the task has state.
    /// Default `ferry_<task>` (lower case, other characters as `_`).
    pub slot: Option<String>,
    /// The publication the slot streams. Default `ferry_<task>`.
    pub publication: Option<String>,
    /// `create`: the first run creates the publication for the selected tables (before the
    /// slot; needs table ownership), later runs add tables the selection gained. `existing`:
    /// use a publication an administrator made; `check` says which selected tables it lacks.
    /// Default `create`.
    pub publication_mode: PublicationMode,
    /// Rows per snapshot chunk (tables whose key starts with an integer column are split in
    /// ranges of about this many rows; other tables are one chunk, a big one read in `ctid`
    /// page ranges by as many sessions as the process has workers). Default 8192.
    pub chunk_rows: u64,
    /// Where the change stream starts.
    pub start: StartConfig,
    /// Stop once the stream reaches the WAL position the server had when the run started (a
    /// one-off copy, a catch-up benchmark, a test). Default `false`: run until stopped.
    pub bounded: bool,
    /// What a selected table whose `REPLICA IDENTITY` is `DEFAULT` (the primary key only in
    /// before images) gets: `require-full` refuses it at `check` and at start with the
    /// statement that fixes it; `allow-default` takes it (before images carry the key only;
    /// updates and deletes apply by key, which is what upserts need). Tables without a key
    /// need `FULL` either way. Default `allow-default`.
    pub replica_identity: ReplicaIdentityPolicy,
    /// How often an idle source writes a logical message (`pg_logical_emit_message`) so its
    /// epochs close and the slot's acknowledged position moves while the watched tables see
    /// no change (retained WAL stays bounded). Default `10s`; `0s` turns it off.
    pub heartbeat_interval: String,
}

/// Who makes the publication.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PublicationMode {
    /// ferry creates it for the selected tables.
    #[default]
    Create,
    /// It exists; ferry only reads it.
    Existing,
}

/// What tables with `REPLICA IDENTITY DEFAULT` get.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplicaIdentityPolicy {
    /// Refuse them: every selected table needs `REPLICA IDENTITY FULL`.
    RequireFull,
    /// Accept them with key-only before images.
    #[default]
    AllowDefault,
}

impl Default for PostgresSourceConfig {
    fn default() -> Self {
        PostgresSourceConfig {
            url: String::new(),
            password: None,
            slot: None,
            publication: None,
            publication_mode: PublicationMode::Create,
            chunk_rows: 8192,
            start: StartConfig::default(),
            bounded: false,
            replica_identity: ReplicaIdentityPolicy::AllowDefault,
            heartbeat_interval: "10s".into(),
        }
    }
}

/// Where the change stream starts.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StartConfig {
    /// `default` (full+incremental: the snapshot's consistent point; incremental: the slot's
    /// position, or where a new slot starts), `latest` (a new slot's position, no snapshot) or
    /// `lsn` (with `lsn`: an existing slot, from that position).
    pub from: StartFrom,
    /// With `from: lsn`: a WAL position `X/Y`, e.g. `0/16B3748`; it must not be behind the
    /// slot's confirmed position (that WAL is gone).
    pub lsn: Option<String>,
}

/// Kinds of start position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    /// The read mode's default.
    #[default]
    Default,
    /// Where the slot stands now (a new slot: the server's current position).
    Latest,
    /// A WAL position.
    Lsn,
}

impl PostgresSourceConfig {
    /// Cross-field checks; the message says how to fix the plan.
    pub fn validate(&self) -> Result<(), String> {
        if self.url.is_empty() {
            return Err("missing `url`: e.g. `url: postgres://ferry@127.0.0.1:5432/shop`".into());
        }
        if !self.url.starts_with("postgres://") && !self.url.starts_with("postgresql://") {
            return Err(format!(
                "`url` must start with postgres:// (got `{}`)",
                crate::secrets::redact(&self.url).split("://").next().unwrap_or("")
            ));
        }
        if self.chunk_rows == 0 {
            return Err("`chunk_rows` must be at least 1".into());
        }
        crate::plan::config::parse_duration_ms(&self.heartbeat_interval)
            .map_err(|e| format!("`heartbeat_interval`: {e}"))?;
        for (key, name) in [("slot", &self.slot), ("publication", &self.publication)] {
            if let Some(n) = name {
                check_ident(n).map_err(|e| format!("`{key}`: {e}"))?;
            }
        }
        match (self.start.from, &self.start.lsn) {
            (StartFrom::Lsn, None) => Err("`start.from: lsn` needs `start.lsn: 'X/Y'` (e.g. `0/16B3748`)".into()),
            (StartFrom::Lsn, Some(l)) => parse_lsn(l).map(|_| ()),
            (_, Some(_)) => Err("`start.lsn` needs `start.from: lsn`".into()),
            _ => Ok(()),
        }
    }

    /// The slot name: the configured one or `ferry_<task>`.
    pub fn slot_for(&self, task: &str) -> String {
        self.slot.clone().unwrap_or_else(|| default_name(task))
    }

    /// The publication name: the configured one or `ferry_<task>`.
    pub fn publication_for(&self, task: &str) -> String {
        self.publication.clone().unwrap_or_else(|| default_name(task))
    }

    /// The heartbeat period (`None`: off).
    pub fn heartbeat(&self) -> Option<std::time::Duration> {
        let ms = crate::plan::config::parse_duration_ms(&self.heartbeat_interval).unwrap_or(10_000);
        (ms > 0).then(|| std::time::Duration::from_millis(ms))
    }
}

/// `ferry_<task>` as a slot name: lower case letters, digits and `_`, at most 63 bytes.
fn default_name(task: &str) -> String {
    let mut s: String = format!("ferry_{task}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .collect();
    s.truncate(63);
    s
}

/// Slot names allow lower case letters, digits and `_` (PostgreSQL's rule; publications are
/// held to it too, so one name serves both).
fn check_ident(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 63
        || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(format!("`{name}` is not a slot name: use 1 to 63 lower case letters, digits and `_`"));
    }
    Ok(())
}

/// Parses a WAL position `X/Y` (hexadecimal halves) into its 64-bit value.
pub fn parse_lsn(text: &str) -> Result<u64, String> {
    let bad = || format!("`{text}` is not a WAL position: write `X/Y` in hexadecimal, e.g. `0/16B3748`");
    let (hi, lo) = text.trim().split_once('/').ok_or_else(bad)?;
    let hi = u32::from_str_radix(hi, 16).map_err(|_| bad())?;
    let lo = u32::from_str_radix(lo, 16).map_err(|_| bad())?;
    Ok((u64::from(hi) << 32) | u64::from(lo))
}

/// A WAL position as PostgreSQL writes it.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn default_slot_and_publication_names_follow_the_task() {
        let c = PostgresSourceConfig::default();
        assert_eq!(c.slot_for("Orders-Sync"), "ferry_orders_sync");
        assert_eq!(c.publication_for("x"), "ferry_x");
        assert_eq!(c.slot_for(&"t".repeat(100)).len(), 63);
    }

    #[test]
    fn validation_names_the_key_and_the_fix() {
        let ok = PostgresSourceConfig { url: "postgres://u@h/db".into(), ..Default::default() };
        assert!(ok.validate().is_ok());
        let bad_slot = PostgresSourceConfig { slot: Some("My-Slot".into()), ..ok.clone() };
        assert!(bad_slot.validate().unwrap_err().contains("`slot`"));
        let no_lsn = PostgresSourceConfig { start: StartConfig { from: StartFrom::Lsn, lsn: None }, ..ok.clone() };
        assert!(no_lsn.validate().unwrap_err().contains("start.lsn"));
        let mysql = PostgresSourceConfig { url: "mysql://u@h".into(), ..ok };
        assert!(mysql.validate().unwrap_err().contains("postgres://"));
    }

    proptest! {
        #[test]
        fn lsn_text_reads_back(v in any::<u64>()) {
            prop_assert_eq!(parse_lsn(&format_lsn(v)), Ok(v));
        }
    }
}
