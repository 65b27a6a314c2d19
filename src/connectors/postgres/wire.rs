//! The replication session: PostgreSQL's wire protocol with `replication=database`, our own
//! (startup, authentication, replication commands, then the CopyBoth stream), so that the
//! stream can ask pgoutput for protocol 2 and have large transactions streamed while they are
//! still open instead of spilled to disk and re-read by the server.
//!
//! Message framing and SCRAM-SHA-256 come from `postgres-protocol` (the crate under
//! `tokio-postgres`); everything else is a few bytes per message, done here.
//!
//! ```text
//!  connect ─► StartupMessage(replication=database, options) ─► auth ─► ReadyForQuery
//!  query("CREATE_REPLICATION_SLOT …")  ─► rows
//!  start(slot, lsn, publication) ─► CopyBothResponse ─► recv(): XLogData 'w' | keepalive 'k'
//!                                                       ◄── status(lsn): standby status 'r'
//! ```
//!
//! Reads go into one buffer and frames are cut out of it, so [`Session::recv`] can be
//! cancelled (by a timeout) without losing a byte.
//!
//! Paced reads while streaming, near the server. The walsender writes every pgoutput message
//! to its socket at once (one `send()` per change); while the client keeps the TCP window open
//! by reading each small segment as it comes, every one of those sends also transmits a
//! segment, and the server's sender spends most of its time there, not decoding. So when the
//! server is near (a round trip of at most [`NEAR`], measured with `IDENTIFY_SYSTEM` before the
//! stream starts: the same host or the next one), the session reads the way a batching
//! consumer would: the socket's receive buffer is made small ([`PACED_RECV_BUFFER`], set
//! before `START_REPLICATION`), and a read that brought less than [`PACE_BELOW`] bytes is
//! followed by a [`PACE`] pause before the next one. The window then closes during the pause,
//! the server's sends only append to its socket queue, and the queue goes out in large
//! segments when the client reads. Measured on this project's 2-core machine (1M inserts,
//! loopback): catch-up 7.3 s → 3.4 s, the server's CPU 6.5 s → 2.8 s. The cost: a change can
//! wait a few milliseconds longer. A farther server is read as before: a window small enough
//! to close in a millisecond would cap its stream at a window per round trip (and the kernel
//! caps an explicit buffer at `net.core.rmem_max` and stops growing it), a loss that was not
//! measured against a gain on a real network.

use super::discover::{Endpoint, PgSourceError};
use super::types::SESSION_OPTIONS;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::frontend;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The pause before a read that follows a small one, while streaming paced.
const PACE: Duration = Duration::from_millis(1);
/// A paced read that brought fewer bytes than this is followed by [`PACE`].
const PACE_BELOW: usize = 16 * 1024;
/// The receive buffer of a paced stream (Linux doubles what is asked; the window is part of it).
const PACED_RECV_BUFFER: usize = 32 * 1024;
/// The longest round trip to the server at which the stream is paced.
const NEAR: Duration = Duration::from_micros(200);

/// Whether a stream whose round trip to the server took `rtt` (`None`: not measured) is read
/// paced.
fn paced_at(rtt: Option<Duration>) -> bool {
    rtt.is_some_and(|r| r <= NEAR)
}

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
pub(super) const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// What the stream delivers.
#[derive(Debug)]
pub enum Frame {
    /// One pgoutput message (`XLogData`).
    Data {
        /// The message.
        data: Bytes,
    },
    /// The server's keepalive (its WAL end is never taken as a position: transactions before
    /// it may still be on their way).
    KeepAlive {
        /// The server asks for a status update at once.
        reply: bool,
    },
}

/// One replication session (a TCP connection in the replication protocol).
pub struct Session {
    sock: TcpStream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    addr: String,
    /// Streaming: reads are paced (see the module doc).
    paced: bool,
    /// Bytes the last read brought.
    last_read: usize,
}

/// A server error: its SQLSTATE and message.
struct ServerError {
    code: String,
    text: String,
}

impl ServerError {
    fn parse(mut body: Bytes) -> ServerError {
        let (mut code, mut message, mut severity) = (String::new(), String::new(), String::new());
        while body.has_remaining() {
            let field = body.get_u8();
            if field == 0 {
                break;
            }
            let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
            let value = String::from_utf8_lossy(&body[..end]).into_owned();
            body.advance((end + 1).min(body.len()));
            match field {
                b'C' => code = value,
                b'M' => message = value,
                b'V' => severity = value,
                b'S' if severity.is_empty() => severity = value,
                _ => {}
            }
        }
        let text = crate::secrets::redact(&format!("{severity}: {message} (SQLSTATE {code})"));
        ServerError { code, text }
    }

    /// As a source error: lost connections, shutdowns and a slot still held by a session that
    /// is going away are transient; refusals are not.
    fn into_source(self, ep_user: &str) -> PgSourceError {
        let class = self.code.get(..2).unwrap_or("");
        if class == "28" {
            return PgSourceError::Auth { user: ep_user.to_string(), reason: self.text };
        }
        if class == "57" || class == "08" || self.code == "55006" || class == "53" {
            return PgSourceError::Server(self.text);
        }
        PgSourceError::Precondition(format!("PostgreSQL: {}", self.text))
    }
}

impl Session {
    /// Connects and authenticates (trust, password, MD5 or SCRAM-SHA-256).
    pub async fn connect(ep: &Endpoint) -> Result<Session, PgSourceError> {
        let unreachable = |reason: String| PgSourceError::Unreachable { addr: ep.addr.clone(), reason };
        let sock = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect((ep.host.as_str(), ep.port)))
            .await
            .map_err(|_| unreachable("connecting timed out after 10 s".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        let _ = sock.set_nodelay(true);
        let mut s = Session {
            sock,
            rbuf: BytesMut::with_capacity(1 << 20),
            wbuf: BytesMut::new(),
            addr: ep.addr.clone(),
            paced: false,
            last_read: 0,
        };
        let params = [
            ("user", ep.user.as_str()),
            ("database", ep.database.as_str()),
            ("replication", "database"),
            ("options", SESSION_OPTIONS),
            ("application_name", "ferry"),
        ];
        frontend::startup_message(params.iter().copied(), &mut s.wbuf).map_err(|e| unreachable(e.to_string()))?;
        s.flush().await?;
        s.authenticate(ep).await?;
        loop {
            let (tag, body) = s.message().await?;
            match tag {
                b'Z' => return Ok(s),
                b'E' => return Err(startup_error(ep, ServerError::parse(body))),
                _ => {}
            }
        }
    }

    async fn authenticate(&mut self, ep: &Endpoint) -> Result<(), PgSourceError> {
        let refused = |reason: String| PgSourceError::Auth { user: ep.user.clone(), reason };
        let mut scram: Option<sasl::ScramSha256> = None;
        loop {
            let (tag, mut body) = self.message().await?;
            match tag {
                b'R' => {}
                b'E' => return Err(startup_error(ep, ServerError::parse(body))),
                _ => continue,
            }
            if body.remaining() < 4 {
                return Err(self.broken("a short authentication message"));
            }
            match body.get_i32() {
                0 => return Ok(()),
                3 => frontend::password_message(ep.password.as_bytes(), &mut self.wbuf).map_err(io_error)?,
                5 => {
                    if body.remaining() < 4 {
                        return Err(self.broken("an MD5 request without its salt"));
                    }
                    let salt = [body[0], body[1], body[2], body[3]];
                    let hash = md5_hash(ep.user.as_bytes(), ep.password.as_bytes(), salt);
                    frontend::password_message(hash.as_bytes(), &mut self.wbuf).map_err(io_error)?;
                }
                10 => {
                    let offered = String::from_utf8_lossy(&body).replace('\0', " ");
                    if !offered.split_whitespace().any(|m| m == sasl::SCRAM_SHA_256) {
                        return Err(refused(format!(
                            "the server offers SASL mechanisms `{}`; ferry speaks SCRAM-SHA-256",
                            offered.trim()
                        )));
                    }
                    let s = sasl::ScramSha256::new(ep.password.as_bytes(), sasl::ChannelBinding::unsupported());
                    frontend::sasl_initial_response(sasl::SCRAM_SHA_256, s.message(), &mut self.wbuf)
                        .map_err(io_error)?;
                    scram = Some(s);
                }
                11 => {
                    let s = scram.as_mut().ok_or_else(|| self.broken("a SASL continuation before its start"))?;
                    s.update(&body).map_err(|e| refused(format!("SCRAM: {e}")))?;
                    frontend::sasl_response(s.message(), &mut self.wbuf).map_err(io_error)?;
                }
                12 => {
                    let s = scram.as_mut().ok_or_else(|| self.broken("a SASL final message before its start"))?;
                    s.finish(&body).map_err(|e| refused(format!("SCRAM: {e}")))?;
                    continue;
                }
                other => {
                    return Err(PgSourceError::Precondition(format!(
                        "PostgreSQL at {} asks for authentication method {other}, which the replication session does \
                         not speak: allow `scram-sha-256`, `md5`, `password` or `trust` for replication connections \
                         in pg_hba.conf",
                        ep.addr
                    )))
                }
            }
            self.flush().await?;
        }
    }

    /// Runs one command (a replication command or SQL) and returns its rows as text.
    pub async fn query(&mut self, sql: &str) -> Result<Vec<Vec<Option<Bytes>>>, PgSourceError> {
        frontend::query(sql, &mut self.wbuf).map_err(io_error)?;
        self.flush().await?;
        let (mut rows, mut failed) = (Vec::new(), None);
        loop {
            let (tag, body) = self.message().await?;
            match tag {
                b'D' => rows.push(data_row(body).ok_or_else(|| self.broken("a malformed data row"))?),
                b'E' => failed = Some(ServerError::parse(body)),
                b'Z' => break,
                _ => {}
            }
        }
        match failed {
            Some(e) => Err(e.into_source("")),
            None => Ok(rows),
        }
    }

    /// Starts streaming `slot` from `lsn`: pgoutput protocol 2 with `streaming` (a large
    /// transaction arrives in blocks while it is open, see `pgoutput`), logical messages on.
    /// Reads are paced from then on when the server is near (see the module doc).
    pub async fn start(&mut self, slot: &str, lsn: u64, publication: &str) -> Result<(), PgSourceError> {
        // Best effort: a server that refuses the probe is read as before.
        let rtt = match self.round_trip().await {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::debug!(error = %e, "the replication session's round trip was not measured");
                None
            }
        };
        let paced = paced_at(rtt)
            && match socket2::SockRef::from(&self.sock).set_recv_buffer_size(PACED_RECV_BUFFER) {
                Ok(()) => true,
                Err(e) => {
                    tracing::debug!(error = %e, "the replication socket keeps its receive buffer");
                    false
                }
            };
        let sql = format!(
            "START_REPLICATION SLOT {slot} LOGICAL {} (proto_version '2', streaming 'on', messages 'true', \
             publication_names '{}')",
            super::config::format_lsn(lsn),
            publication_option(publication)
        );
        frontend::query(&sql, &mut self.wbuf).map_err(io_error)?;
        self.flush().await?;
        loop {
            let (tag, body) = self.message().await?;
            match tag {
                b'W' => {
                    tracing::debug!(rtt_us = rtt.map(|r| r.as_micros() as u64), paced, "replication stream started");
                    self.paced = paced;
                    return Ok(());
                }
                b'E' => return Err(ServerError::parse(body).into_source("")),
                _ => {}
            }
        }
    }

    /// The shortest of three round trips of `IDENTIFY_SYSTEM`: the path's round-trip time, give
    /// or take the server's answer.
    async fn round_trip(&mut self) -> Result<Duration, PgSourceError> {
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let t = std::time::Instant::now();
            self.query("IDENTIFY_SYSTEM").await?;
            best = best.min(t.elapsed());
        }
        Ok(best)
    }

    /// The next frame of the stream; `None` when the server ended it (CopyDone). Cancel-safe.
    pub async fn recv(&mut self) -> Result<Option<Frame>, PgSourceError> {
        loop {
            let (tag, mut body) = self.message().await?;
            match tag {
                // w, WAL start, WAL end, send time, data
                b'd' if body.first() == Some(&b'w') && body.len() >= 25 => {
                    return Ok(Some(Frame::Data { data: body.split_off(25) }));
                }
                // k, WAL end, send time, reply requested
                b'd' if body.first() == Some(&b'k') && body.len() >= 18 => {
                    return Ok(Some(Frame::KeepAlive { reply: body[17] == 1 }));
                }
                b'c' => return Ok(None),
                b'E' => return Err(ServerError::parse(body).into_source("")),
                _ => {}
            }
        }
    }

    /// Tells the server that everything up to `lsn` is written, flushed and applied (its
    /// slot's confirmed position may move there).
    pub async fn status(&mut self, lsn: u64) -> Result<(), PgSourceError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0)
            - PG_EPOCH_MICROS;
        let mut msg = BytesMut::with_capacity(34);
        msg.put_u8(b'r');
        msg.put_u64(lsn);
        msg.put_u64(lsn);
        msg.put_u64(lsn);
        msg.put_i64(now);
        msg.put_u8(0);
        self.wbuf.put_u8(b'd');
        self.wbuf.put_i32(4 + msg.len() as i32);
        self.wbuf.put_slice(&msg);
        self.flush().await
    }

    async fn flush(&mut self) -> Result<(), PgSourceError> {
        let out = self.wbuf.split();
        self.sock.write_all(&out).await.map_err(|e| self.lost(e))
    }

    /// The next whole message: its tag and body.
    async fn message(&mut self) -> Result<(u8, Bytes), PgSourceError> {
        loop {
            if self.rbuf.len() >= 5 {
                let len = (&self.rbuf[1..5]).get_u32() as usize;
                if len < 4 {
                    return Err(self.broken("a message with a negative length"));
                }
                if self.rbuf.len() > len {
                    let tag = self.rbuf.get_u8();
                    self.rbuf.advance(4);
                    return Ok((tag, self.rbuf.split_to(len - 4).freeze()));
                }
                self.rbuf.reserve(len + 1 - self.rbuf.len());
            }
            if self.rbuf.capacity() - self.rbuf.len() < 64 * 1024 {
                self.rbuf.reserve(1 << 20);
            }
            if self.paced && self.last_read < PACE_BELOW {
                tokio::time::sleep(PACE).await;
            }
            let n = self.sock.read_buf(&mut self.rbuf).await.map_err(|e| self.lost(e))?;
            self.last_read = n;
            if n == 0 {
                return Err(PgSourceError::Server(format!("the replication connection to {} was closed", self.addr)));
            }
        }
    }

    fn lost(&self, e: std::io::Error) -> PgSourceError {
        PgSourceError::Server(format!("the replication connection to {} failed: {e}", self.addr))
    }

    fn broken(&self, what: &str) -> PgSourceError {
        PgSourceError::Server(format!("the replication connection to {} sent {what}", self.addr))
    }
}

/// A DataRow's columns (`None`: NULL); `None` when the message is cut short.
fn data_row(mut body: Bytes) -> Option<Vec<Option<Bytes>>> {
    if body.remaining() < 2 {
        return None;
    }
    let n = body.get_i16().max(0) as usize;
    let mut row = Vec::with_capacity(n);
    for _ in 0..n {
        if body.remaining() < 4 {
            return None;
        }
        let len = body.get_i32();
        if len < 0 {
            row.push(None);
        } else if body.remaining() < len as usize {
            return None;
        } else {
            row.push(Some(body.split_to(len as usize)));
        }
    }
    Some(row)
}

fn io_error(e: std::io::Error) -> PgSourceError {
    PgSourceError::Server(format!("encoding a message: {e}"))
}

/// An error before the session is ready: a missing database is a precondition to fix.
fn startup_error(ep: &Endpoint, e: ServerError) -> PgSourceError {
    if e.code == "3D000" {
        return PgSourceError::Precondition(format!(
            "database `{}` does not exist on {}: fix the database in `source.url`",
            ep.database, ep.addr
        ));
    }
    e.into_source(&ep.user)
}

/// `publication_names`' value: the name as a quoted identifier (its case kept), inside a
/// string literal.
fn publication_option(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\"")).replace('\'', "''")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_paced_only_near_the_server_and_never_unmeasured() {
        assert!(paced_at(Some(Duration::from_micros(90))));
        assert!(paced_at(Some(NEAR)));
        assert!(!paced_at(Some(Duration::from_micros(201))));
        assert!(!paced_at(Some(Duration::from_millis(20))));
        assert!(!paced_at(None));
    }

    #[test]
    fn a_publication_name_keeps_its_case_and_quotes_inside_the_option_literal() {
        assert_eq!(publication_option("ferry_t"), "\"ferry_t\"");
        assert_eq!(publication_option("My\"Pub's"), "\"My\"\"Pub''s\"");
    }

    #[test]
    fn a_data_row_reads_its_columns_and_a_cut_one_is_an_error_not_a_panic() {
        let mut b = BytesMut::new();
        b.put_i16(2);
        b.put_i32(-1);
        b.put_i32(3);
        b.put_slice(b"0/1");
        let full = b.freeze();
        assert_eq!(data_row(full.clone()), Some(vec![None, Some(Bytes::from_static(b"0/1"))]));
        for cut in 0..full.len() {
            assert_eq!(data_row(full.slice(..cut)), None, "cut at {cut}");
        }
    }

    #[test]
    fn a_server_error_names_its_sqlstate_and_sorts_into_transient_or_not() {
        let body = |code: &str| {
            let mut b = BytesMut::new();
            for (f, v) in [(b'S', "ERROR"), (b'V', "ERROR"), (b'C', code), (b'M', "it failed")] {
                b.put_u8(f);
                b.put_slice(v.as_bytes());
                b.put_u8(0);
            }
            b.put_u8(0);
            b.freeze()
        };
        let e = ServerError::parse(body("42704"));
        assert_eq!(e.text, "ERROR: it failed (SQLSTATE 42704)");
        assert!(matches!(e.into_source("u"), PgSourceError::Precondition(_)));
        assert!(matches!(ServerError::parse(body("57P01")).into_source("u"), PgSourceError::Server(_)));
        assert!(matches!(ServerError::parse(body("55006")).into_source("u"), PgSourceError::Server(_)));
        assert!(matches!(ServerError::parse(body("28P01")).into_source("u"), PgSourceError::Auth { .. }));
    }
}
