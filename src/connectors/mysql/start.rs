//! Start positions (F2.2, F10.4): finding where the change stream starts for
//! `start.from: timestamp`.
//!
//! ```text
//!  SHOW BINARY LOGS ──► first event time of each file (its FORMAT_DESCRIPTION) ──► the newest
//!  file that began at or before the time (the oldest file if none did) ──► scan it: the
//!  boundary before the first transaction at or after the time (its end, if none is)
//! ```
//!
//! The binlog keeps whole seconds, so the time is matched to the second.

use super::binlog::{BinlogEvent, BinlogPos, BinlogReader, StartFrom};
pub use super::config::parse_local_time;
use super::discover::{connect, SourceError};
use mysql_async::prelude::Queryable;
use mysql_async::Opts;

async fn first_event_time(opts: &Opts, server_id: u32, file: &str) -> Result<u32, SourceError> {
    let err = |e: super::binlog::BinlogError| SourceError::Server(e.to_string());
    let mut r = BinlogReader::connect(opts.clone(), server_id, StartFrom::Position(BinlogPos::new(file, 4)))
        .await
        .map_err(err)?;
    loop {
        match r.next().await.map_err(err)? {
            Some(_) if r.event_time() != 0 => return Ok(r.event_time()),
            Some(_) => continue,
            None => return Ok(0),
        }
    }
}

/// The binlog position of the first transaction committed at or after `at` (seconds since the
/// epoch, UTC); the earliest available position when `at` is older than every binlog.
pub async fn position_at(opts: &Opts, server_id: u32, at: i64) -> Result<BinlogPos, SourceError> {
    let mut conn = connect(opts).await?;
    let logs: Vec<mysql_async::Row> =
        conn.query("SHOW BINARY LOGS").await.map_err(|e| SourceError::Server(e.to_string()))?;
    let _ = conn.disconnect().await;
    let files: Vec<String> = logs.iter().filter_map(|r| r.get::<String, _>(0)).collect();
    let Some(oldest) = files.first() else {
        return Err(SourceError::Precondition("the server lists no binary logs: is log_bin on?".into()));
    };
    // The newest file whose first event is not after `at`.
    let mut chosen = None;
    for f in files.iter().rev() {
        if i64::from(first_event_time(opts, server_id, f).await?) <= at {
            chosen = Some(f.clone());
            break;
        }
    }
    let Some(file) = chosen else {
        return Ok(BinlogPos::new(oldest.clone(), 4));
    };
    let err = |e: super::binlog::BinlogError| SourceError::Server(e.to_string());
    let mut r = BinlogReader::connect(opts.clone(), server_id, StartFrom::Position(BinlogPos::new(file.clone(), 4)))
        .await
        .map_err(err)?;
    let mut boundary = BinlogPos::new(file, 4);
    loop {
        let Some(ev) = r.next().await.map_err(err)? else { return Ok(boundary) };
        match ev {
            BinlogEvent::Begin { .. } if i64::from(r.event_time()) >= at => return Ok(boundary),
            // A DDL at or after the time starts there too (it has no Begin of its own on every server).
            BinlogEvent::Ddl { .. } if i64::from(r.event_time()) >= at => return Ok(boundary),
            BinlogEvent::Commit { next, .. }
            | BinlogEvent::Ddl { next, .. }
            | BinlogEvent::Rotate { next }
            | BinlogEvent::Position { next } => boundary = next,
            // Caught up with the server: nothing at or after the time yet.
            BinlogEvent::Heartbeat { next } => return Ok(next),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_are_read_in_their_offset() {
        assert_eq!(parse_local_time("1970-01-01 08:00:00", 8 * 3600).unwrap(), 0);
        assert_eq!(parse_local_time("2026-01-01 00:00:00", 0).unwrap(), 1_767_225_600);
        assert!(parse_local_time("2026-13-01 00:00:00", 0).is_err());
        assert!(parse_local_time("yesterday", 0).is_err());
    }
}
