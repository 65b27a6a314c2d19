//! Transactions the server streams while they are still open (pgoutput `streaming 'on'`):
//! their messages are held per top-level transaction until its Stream Commit, then replayed in
//! the order they came, as if the whole transaction had arrived at its commit; a Stream Abort
//! drops what a rolled-back subtransaction sent (or the whole transaction).
//!
//! ```text
//!  S xid ─ R/I/U/D/T (sub)xid … ─ E   ─► push(xid, sub, message)   memory ≤ STREAMED_MEMORY,
//!  A xid subxid                        ─► abort(xid, subxid)         beyond it: the transaction's
//!  c xid commit_lsn end_lsn            ─► commit(xid) → Replay       messages in an unlinked file
//! ```
//!
//! A rolled-back subtransaction's relation messages go too: they may describe a shape its own
//! DDL made, and after a Stream Abort the server describes each relation again before the
//! transaction's next change to it.

use bytes::Bytes;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicU64, Ordering};

/// Memory for all open streamed transactions together; past it the transaction that grows
/// moves its messages to a temporary file.
pub const STREAMED_MEMORY: usize = 64 << 20;

/// The open streamed transactions.
#[derive(Default)]
pub struct Streamed {
    open: HashMap<u32, Pending>,
    memory: usize,
}

/// One open transaction's messages.
#[derive(Default)]
struct Pending {
    mem: VecDeque<(u32, Bytes)>,
    memory: usize,
    aborted: HashSet<u32>,
    file: Option<BufWriter<File>>,
}

impl Streamed {
    /// Holds a message of (sub)transaction `sub` of the open transaction `xid` (a copy: the
    /// message is a slice of a much larger read buffer).
    pub fn push(&mut self, xid: u32, sub: u32, data: &[u8]) -> io::Result<()> {
        self.push_within(xid, sub, Bytes::copy_from_slice(data), STREAMED_MEMORY)
    }

    fn push_within(&mut self, xid: u32, sub: u32, data: Bytes, limit: usize) -> io::Result<()> {
        let p = self.open.entry(xid).or_default();
        p.memory += data.len();
        self.memory += data.len();
        p.mem.push_back((sub, data));
        if self.memory > limit {
            self.memory -= p.memory;
            p.spill()?;
        }
        Ok(())
    }

    /// `subxid` of `xid` rolled back (`subxid == xid`: the whole transaction).
    pub fn abort(&mut self, xid: u32, subxid: u32) {
        if xid == subxid {
            if let Some(p) = self.open.remove(&xid) {
                self.memory -= p.memory;
            }
        } else if let Some(p) = self.open.get_mut(&xid) {
            p.aborted.insert(subxid);
        }
    }

    /// `xid` committed: its messages, to replay (none when it streamed nothing ferry keeps).
    pub fn commit(&mut self, xid: u32) -> io::Result<Replay> {
        let p = self.open.remove(&xid).unwrap_or_default();
        self.memory -= p.memory;
        let file = match p.file {
            Some(w) => {
                let mut f = w.into_inner().map_err(|e| e.into_error())?;
                f.seek(SeekFrom::Start(0))?;
                Some(BufReader::with_capacity(1 << 20, f))
            }
            None => None,
        };
        Ok(Replay { file, mem: p.mem, aborted: p.aborted })
    }

    /// Open transactions held.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.open.len()
    }
}

impl Pending {
    fn spill(&mut self) -> io::Result<()> {
        let f = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(BufWriter::with_capacity(1 << 20, spill_file()?)),
        };
        for (sub, data) in self.mem.drain(..) {
            f.write_all(&sub.to_be_bytes())?;
            f.write_all(&(data.len() as u32).to_be_bytes())?;
            f.write_all(&data)?;
        }
        self.memory = 0;
        Ok(())
    }
}

/// A committed transaction's messages, oldest first.
pub struct Replay {
    file: Option<BufReader<File>>,
    mem: VecDeque<(u32, Bytes)>,
    aborted: HashSet<u32>,
}

impl Replay {
    /// The next message the commit keeps (what rolled-back subtransactions sent is left out).
    pub fn next(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            let (sub, data) = match self.file.as_mut() {
                Some(f) => match read_record(f)? {
                    Some(r) => r,
                    None => {
                        self.file = None;
                        continue;
                    }
                },
                None => match self.mem.pop_front() {
                    Some(r) => r,
                    None => return Ok(None),
                },
            };
            if !self.aborted.contains(&sub) {
                return Ok(Some(data));
            }
        }
    }
}

fn read_record(f: &mut BufReader<File>) -> io::Result<Option<(u32, Bytes)>> {
    let mut head = [0u8; 8];
    match f.read_exact(&mut head) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        r => r?,
    }
    let sub = u32::from_be_bytes(head[..4].try_into().expect("4 bytes"));
    let len = u32::from_be_bytes(head[4..].try_into().expect("4 bytes")) as usize;
    let mut data = vec![0; len];
    f.read_exact(&mut data)?;
    Ok(Some((sub, Bytes::from(data))))
}

/// A temporary file that is already unlinked: nothing is left behind by a crash.
fn spill_file() -> io::Result<File> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "ferry-pg-txn-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let f = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
    let _ = std::fs::remove_file(&path);
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, n: u32) -> Bytes {
        let mut v = vec![tag];
        v.extend(n.to_be_bytes());
        Bytes::from(v)
    }

    fn replayed(mut r: Replay) -> Vec<Bytes> {
        let mut out = Vec::new();
        while let Some(b) = r.next().unwrap() {
            out.push(b);
        }
        out
    }

    #[test]
    fn a_committed_transaction_replays_in_order_without_what_its_rolled_back_subtransactions_sent() {
        let mut s = Streamed::default();
        s.push(1, 1, &msg(b'R', 0)).unwrap();
        s.push(1, 1, &msg(b'I', 1)).unwrap();
        s.push(1, 5, &msg(b'R', 9)).unwrap();
        s.push(1, 5, &msg(b'I', 2)).unwrap();
        s.push(2, 2, &msg(b'I', 100)).unwrap();
        s.push(1, 6, &msg(b'R', 0)).unwrap();
        s.push(1, 6, &msg(b'U', 3)).unwrap();
        s.abort(1, 5);
        let got = replayed(s.commit(1).unwrap());
        assert_eq!(got, vec![msg(b'R', 0), msg(b'I', 1), msg(b'R', 0), msg(b'U', 3)]);
        assert_eq!(s.open(), 1);
        s.abort(2, 2);
        assert_eq!(s.open(), 0);
        assert_eq!(s.memory, 0);
        assert!(replayed(s.commit(2).unwrap()).is_empty());
    }

    #[test]
    fn past_the_memory_limit_a_transaction_moves_to_a_file_and_replays_the_same() {
        let mut s = Streamed::default();
        let mut want = Vec::new();
        for i in 0..1000u32 {
            let sub = if i % 10 == 3 { 7 } else { 1 };
            s.push_within(1, sub, msg(b'I', i), 600).unwrap();
            if sub != 7 {
                want.push(msg(b'I', i));
            }
        }
        assert!(s.open[&1].file.is_some(), "spilled");
        assert!(s.memory <= 600);
        s.abort(1, 7);
        assert_eq!(replayed(s.commit(1).unwrap()), want);
        assert_eq!(s.memory, 0);
    }
}
