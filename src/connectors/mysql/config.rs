//! The `source:` section of a plan whose source is `mysql` (MySQL, MariaDB and compatible
//! servers): connection, snapshot chunking, where the change stream starts.

use serde::{Deserialize, Serialize};

/// MySQL/MariaDB source settings. Defaults live in [`Default`].
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MysqlSourceConfig {
    /// Connection URL, `mysql://user[:password]@host[:port]`. Put the password in `password`
    /// (or write it as `${env:NAME}`) so it never sits in the plan file; it is masked in every
    /// log line and error either way. Required.
    pub url: String,
    /// The password, if it is not in the URL; e.g. `${env:MYSQL_PASSWORD}`.
    pub password: Option<String>,
    /// Server id of the replication connection; must differ from every other replica of the
    /// server. Default: derived from the task name (5400..=6399).
    pub server_id: Option<u32>,
    /// Time zone of the source (F2.5), `+08:00` or `UTC`: the zone start timestamps are read in.
    /// TIMESTAMP values are always read as instants (the session uses `+00:00`). Default `+00:00`.
    pub time_zone: String,
    /// Rows per snapshot chunk; a chunk is read in one statement (see `handoff`) and never
    /// split across epochs. Default 8192.
    pub chunk_rows: u64,
    /// Where the change stream starts (F2.2, F10.4).
    pub start: StartConfig,
    /// Heartbeat period of the replication connection, so idle sources still close epochs.
    /// Default `1s`.
    pub heartbeat: String,
    /// Stop once the change stream reaches the binlog position the server had when the run
    /// started (a one-off copy, a catch-up benchmark, a test). Default `false`: run until stopped.
    pub bounded: bool,
    /// How each snapshot chunk is joined to the binlog: `auto` (MariaDB: `server-snapshot`;
    /// MySQL: `watermark`), `server-snapshot` (MariaDB's consistent-snapshot binlog position)
    /// or `watermark` (binlog positions before and after the chunk's read, the changes between
    /// them merged into the chunk's rows; any server). Default `auto`.
    pub handoff: Handoff,
    /// With `handoff: watermark`: a chunk's binlog window starts at the newest low watermark
    /// measured at least this long before its read, so a transaction already in the binlog but
    /// not yet committed when the read began (an fsync, a semi-synchronous replica's
    /// acknowledgement) is in the window. Default `1s`.
    pub watermark_lookback: String,
}

/// How snapshot chunks are joined to the binlog.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Handoff {
    /// `server-snapshot` on MariaDB, `watermark` on other servers.
    #[default]
    Auto,
    /// Each chunk in a consistent-snapshot transaction whose binlog position MariaDB reports
    /// (`binlog_snapshot_file/position`).
    ServerSnapshot,
    /// Low and high binlog watermarks around each chunk's read; the chunk's keys changed
    /// between them take their newest image (DBLog-style; no lock, no server feature).
    Watermark,
}

impl Default for MysqlSourceConfig {
    fn default() -> Self {
        MysqlSourceConfig {
            url: String::new(),
            password: None,
            server_id: None,
            time_zone: "+00:00".into(),
            chunk_rows: 8192,
            start: StartConfig::default(),
            heartbeat: "1s".into(),
            bounded: false,
            handoff: Handoff::Auto,
            watermark_lookback: "1s".into(),
        }
    }
}

/// Where the change stream starts.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StartConfig {
    /// `default` (full+incremental: after the snapshot; incremental: the latest position),
    /// `latest`, `timestamp`, `position` or `gtid`.
    pub from: StartFrom,
    /// With `from: timestamp`: `YYYY-MM-DD HH:MM:SS` in `time_zone`; the first binlog whose
    /// events are at or after it (or the earliest binlog, if the time is older).
    pub timestamp: Option<String>,
    /// With `from: position`: the binlog file name, e.g. `mysql-bin.000003`.
    pub file: Option<String>,
    /// With `from: position`: the offset in `file`.
    pub position: Option<u64>,
    /// With `from: gtid`: a MariaDB GTID position `domain-server-seq[,...]` or a MySQL GTID set.
    pub gtid: Option<String>,
}

/// Kinds of start position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    /// The read mode's default.
    #[default]
    Default,
    /// The server's current position.
    Latest,
    /// A point in time.
    Timestamp,
    /// A binlog file and offset.
    Position,
    /// A GTID position.
    Gtid,
}

impl MysqlSourceConfig {
    /// Cross-field checks; the message says how to fix the plan.
    pub fn validate(&self) -> Result<(), String> {
        if self.url.is_empty() {
            return Err("missing `url`: e.g. `url: mysql://ferry@127.0.0.1:3306`".into());
        }
        if !self.url.starts_with("mysql://") && !self.url.starts_with("mariadb://") {
            return Err(format!(
                "`url` must start with mysql:// (got `{}`)",
                crate::secrets::redact(&self.url).split("://").next().unwrap_or("")
            ));
        }
        if self.chunk_rows == 0 {
            return Err("`chunk_rows` must be at least 1".into());
        }
        crate::plan::config::parse_duration_ms(&self.heartbeat)?;
        crate::plan::config::parse_duration_ms(&self.watermark_lookback)
            .map_err(|e| format!("`watermark_lookback`: {e}"))?;
        parse_offset(&self.time_zone)?;
        let s = &self.start;
        match s.from {
            StartFrom::Timestamp => match &s.timestamp {
                None => Err("`start.from: timestamp` needs `start.timestamp: 'YYYY-MM-DD HH:MM:SS'`".into()),
                Some(t) => parse_local_time(t, 0).map(|_| ()),
            },
            StartFrom::Position if s.file.is_none() || s.position.is_none() => {
                Err("`start.from: position` needs `start.file` and `start.position`".into())
            }
            StartFrom::Gtid if s.gtid.is_none() => Err("`start.from: gtid` needs `start.gtid`".into()),
            _ => Ok(()),
        }
    }

    /// The replication server id: the configured one, or a stable one from the task name.
    pub fn server_id_for(&self, task: &str) -> u32 {
        self.server_id.unwrap_or_else(|| {
            let h = task.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3));
            5400 + (h % 1000) as u32
        })
    }
}

/// Parses `+08:00`, `-05:30`, `UTC`, `Z` into seconds east of UTC.
pub fn parse_offset(tz: &str) -> Result<i32, String> {
    let t = tz.trim();
    if t.eq_ignore_ascii_case("utc") || t == "Z" || t == "SYSTEM" {
        return Ok(0);
    }
    let bad = || format!("time zone `{tz}` is not an offset: write e.g. `+08:00`, `-05:30` or `UTC`");
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let h: i32 = h.parse().map_err(|_| bad())?;
    let m: i32 = m.parse().map_err(|_| bad())?;
    if h > 14 || m > 59 {
        return Err(bad());
    }
    Ok(sign * (h * 3600 + m * 60))
}

/// Parses `YYYY-MM-DD HH:MM:SS` in a UTC offset (seconds east) into seconds since the epoch.
pub fn parse_local_time(text: &str, offset_secs: i32) -> Result<i64, String> {
    let bad = || format!("`{text}` is not a time: write `YYYY-MM-DD HH:MM:SS`");
    let (d, t) = text.trim().split_once([' ', 'T']).unwrap_or((text.trim(), "00:00:00"));
    let mut dp = d.split('-').map(|x| x.parse::<i64>());
    let (y, m, dd) = match (dp.next(), dp.next(), dp.next()) {
        (Some(Ok(y)), Some(Ok(m)), Some(Ok(d))) if (1..=12).contains(&m) && (1..=31).contains(&d) => (y, m, d),
        _ => return Err(bad()),
    };
    let mut tp = t.split(':').map(|x| x.parse::<i64>());
    let (h, mi, s) = match (tp.next(), tp.next(), tp.next().unwrap_or(Ok(0))) {
        (Some(Ok(h)), Some(Ok(mi)), Ok(s)) if h < 24 && mi < 60 && s < 60 => (h, mi, s),
        _ => return Err(bad()),
    };
    let days = ferry_operators::value::days_from_civil(y, m, dd);
    Ok(days * 86_400 + h * 3600 + mi * 60 + s - offset_secs as i64)
}
