//! The pgoutput protocol (version 2) messages: transaction boundaries and streamed blocks
//! ([`control`]), and inside a transaction relations, row changes and truncations ([`decode`]).
//!
//! With `streaming 'on'` the server sends a transaction that outgrows its decoding memory in
//! blocks while it is still open, interleaved with other transactions; every message in a
//! block carries the xid of the (sub)transaction that made it, right after its tag.
//!
//! ```text
//!  B final_lsn time xid                   begin            C flags commit_lsn end_lsn time   commit
//!  S xid first                            stream start     E                                  stream stop
//!  c xid flags commit_lsn end_lsn time    stream commit    A xid subxid                       stream abort
//!  R relid nspname relname identity ncols (flags name typoid typmod)*   a table's columns
//!  I relid N tuple                                                    insert
//!  U relid [K tuple | O tuple] N tuple                                update (old key / old row)
//!  D relid (K | O) tuple                                              delete
//!  T nrels options relid*                                             truncate
//!  tuple = ncols (n | u | t len bytes | b len bytes)*                 null, unchanged TOAST, text
//! ```

/// A decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A table's current shape (sent before its first change in a session and after it changes).
    Relation(Relation),
    /// A new row.
    Insert {
        /// The relation.
        rel: u32,
        /// The row.
        new: Vec<Cell>,
    },
    /// A changed row.
    Update {
        /// The relation.
        rel: u32,
        /// The old key (`K`, when the key changed) or the old row (`O`, `REPLICA IDENTITY FULL`).
        old: Option<(OldImage, Vec<Cell>)>,
        /// The new row.
        new: Vec<Cell>,
    },
    /// A removed row.
    Delete {
        /// The relation.
        rel: u32,
        /// The old key or the old row.
        old: (OldImage, Vec<Cell>),
    },
    /// `TRUNCATE` of these relations.
    Truncate {
        /// The relations.
        rels: Vec<u32>,
    },
    /// A message ferry does not use (type, origin).
    Other(u8),
}

/// What an old image holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldImage {
    /// Only the replica identity's columns (the others are null).
    Key,
    /// The whole row.
    Full,
}

/// One column of a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// A TOAST value the update did not change, not sent.
    Unchanged,
    /// The value's text form.
    Text(String),
}

/// A table as pgoutput describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// The relation's OID.
    pub id: u32,
    /// Its schema.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `REPLICA IDENTITY`: `d` default, `n` nothing, `f` full, `i` index.
    pub identity: u8,
    /// Its published columns.
    pub columns: Vec<RelColumn>,
}

/// A column of a [`Relation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelColumn {
    /// Part of the replica identity.
    pub key: bool,
    /// Name.
    pub name: String,
    /// Type OID.
    pub type_oid: u32,
    /// Type modifier (`-1`: none).
    pub typmod: i32,
}

/// Where a message stands in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// A transaction begins (sent whole, at its commit).
    Begin {
        /// Its commit record's position.
        final_lsn: u64,
        /// Its commit time (microseconds from 2000-01-01).
        micros: i64,
    },
    /// The transaction begun last ends.
    Commit {
        /// Where the stream resumes after it.
        end_lsn: u64,
    },
    /// A block of the open transaction `xid` follows (its messages carry an xid).
    StreamStart {
        /// The top-level transaction.
        xid: u32,
    },
    /// The block ends.
    StreamStop,
    /// The streamed transaction `xid` committed.
    StreamCommit {
        /// The top-level transaction.
        xid: u32,
        /// Its commit record's position.
        commit_lsn: u64,
        /// Where the stream resumes after it.
        end_lsn: u64,
        /// Its commit time (microseconds from 2000-01-01).
        micros: i64,
    },
    /// The streamed (sub)transaction `subxid` of `xid` rolled back (`subxid == xid`: all of it).
    StreamAbort {
        /// The top-level transaction.
        xid: u32,
        /// The (sub)transaction rolled back.
        subxid: u32,
    },
    /// Anything else: a relation, change, truncation, type, origin or logical message.
    Change,
}

/// The control part of a message; [`Control::Change`] for the rest.
pub fn control(data: &[u8]) -> Result<Control, String> {
    let mut r = Reader { b: data, at: 0 };
    Ok(match r.u8()? {
        b'B' => {
            let final_lsn = r.u64()?;
            Control::Begin { final_lsn, micros: r.u64()? as i64 }
        }
        b'C' => {
            let _flags = r.u8()?;
            let _commit_lsn = r.u64()?;
            Control::Commit { end_lsn: r.u64()? }
        }
        b'S' => Control::StreamStart { xid: r.u32()? },
        b'E' => Control::StreamStop,
        b'c' => {
            let xid = r.u32()?;
            let _flags = r.u8()?;
            let commit_lsn = r.u64()?;
            let end_lsn = r.u64()?;
            Control::StreamCommit { xid, commit_lsn, end_lsn, micros: r.u64()? as i64 }
        }
        b'A' => {
            let xid = r.u32()?;
            Control::StreamAbort { xid, subxid: r.u32()? }
        }
        _ => Control::Change,
    })
}

/// Whether a message inside a streamed block matters to ferry (relations, row changes,
/// truncations; not types, origins or logical messages), and the (sub)transaction that made it.
pub fn streamed_change(data: &[u8]) -> Result<Option<u32>, String> {
    let mut r = Reader { b: data, at: 0 };
    match r.u8()? {
        b'R' | b'I' | b'U' | b'D' | b'T' => Ok(Some(r.u32()?)),
        _ => Ok(None),
    }
}

/// Decodes one payload; the error names what is wrong and where.
pub fn decode(data: &[u8]) -> Result<Message, String> {
    decode_message(data, false)
}

/// Decodes one payload of a streamed block (its xid after the tag is skipped).
pub fn decode_streamed(data: &[u8]) -> Result<Message, String> {
    decode_message(data, true)
}

fn decode_message(data: &[u8], streamed: bool) -> Result<Message, String> {
    let mut r = Reader { b: data, at: 0 };
    let tag = r.u8()?;
    if streamed {
        let _xid = r.u32()?;
    }
    let msg = match tag {
        b'R' => {
            let id = r.u32()?;
            let namespace = r.string()?;
            let name = r.string()?;
            let identity = r.u8()?;
            let n = r.u16()?;
            let mut columns = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let flags = r.u8()?;
                let name = r.string()?;
                let type_oid = r.u32()?;
                let typmod = r.u32()? as i32;
                columns.push(RelColumn { key: flags & 1 != 0, name, type_oid, typmod });
            }
            Message::Relation(Relation { id, namespace, name, identity, columns })
        }
        b'I' => {
            let rel = r.u32()?;
            r.expect(b'N')?;
            Message::Insert { rel, new: r.tuple()? }
        }
        b'U' => {
            let rel = r.u32()?;
            let mut old = None;
            let mut kind = r.u8()?;
            if kind == b'K' || kind == b'O' {
                let image = if kind == b'K' { OldImage::Key } else { OldImage::Full };
                old = Some((image, r.tuple()?));
                kind = r.u8()?;
            }
            if kind != b'N' {
                return Err(format!("update: expected N at byte {}, got {:?}", r.at - 1, kind as char));
            }
            Message::Update { rel, old, new: r.tuple()? }
        }
        b'D' => {
            let rel = r.u32()?;
            let image = match r.u8()? {
                b'K' => OldImage::Key,
                b'O' => OldImage::Full,
                k => return Err(format!("delete: expected K or O, got {:?}", k as char)),
            };
            Message::Delete { rel, old: (image, r.tuple()?) }
        }
        b'T' => {
            let n = r.u32()?;
            let _options = r.u8()?;
            let rels = (0..n).map(|_| r.u32()).collect::<Result<_, _>>()?;
            Message::Truncate { rels }
        }
        other => Message::Other(other),
    };
    Ok(msg)
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| {
            format!("message ends at byte {} where {n} more bytes were expected (at byte {})", self.b.len(), self.at)
        })?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn expect(&mut self, tag: u8) -> Result<(), String> {
        let at = self.at;
        match self.u8()? {
            t if t == tag => Ok(()),
            t => Err(format!("expected {:?} at byte {at}, got {:?}", tag as char, t as char)),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let rest = &self.b[self.at..];
        let end = rest.iter().position(|&c| c == 0).ok_or("a name without its terminating NUL")?;
        let s = String::from_utf8(rest[..end].to_vec()).map_err(|_| "a name that is not UTF-8".to_string())?;
        self.at += end + 1;
        Ok(s)
    }

    fn tuple(&mut self) -> Result<Vec<Cell>, String> {
        let n = self.u16()?;
        let mut cells = Vec::with_capacity(n as usize);
        for i in 0..n {
            let cell = match self.u8()? {
                b'n' => Cell::Null,
                b'u' => Cell::Unchanged,
                b't' => {
                    let len = self.u32()? as usize;
                    let bytes = self.take(len)?;
                    Cell::Text(
                        String::from_utf8(bytes.to_vec()).map_err(|_| format!("column {} is not UTF-8 text", i + 1))?,
                    )
                }
                b'b' => return Err("binary tuple data (ferry asks for text)".into()),
                k => return Err(format!("column {}: unknown kind {:?}", i + 1, k as char)),
            };
            cells.push(cell);
        }
        Ok(cells)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tuple(cells: &[Cell], out: &mut Vec<u8>) {
        out.extend((cells.len() as u16).to_be_bytes());
        for c in cells {
            match c {
                Cell::Null => out.push(b'n'),
                Cell::Unchanged => out.push(b'u'),
                Cell::Text(s) => {
                    out.push(b't');
                    out.extend((s.len() as u32).to_be_bytes());
                    out.extend(s.as_bytes());
                }
            }
        }
    }

    fn encode(m: &Message) -> Vec<u8> {
        let mut o = Vec::new();
        match m {
            Message::Relation(r) => {
                o.push(b'R');
                o.extend(r.id.to_be_bytes());
                for s in [&r.namespace, &r.name] {
                    o.extend(s.as_bytes());
                    o.push(0);
                }
                o.push(r.identity);
                o.extend((r.columns.len() as u16).to_be_bytes());
                for c in &r.columns {
                    o.push(u8::from(c.key));
                    o.extend(c.name.as_bytes());
                    o.push(0);
                    o.extend(c.type_oid.to_be_bytes());
                    o.extend(c.typmod.to_be_bytes());
                }
            }
            Message::Insert { rel, new } => {
                o.push(b'I');
                o.extend(rel.to_be_bytes());
                o.push(b'N');
                tuple(new, &mut o);
            }
            Message::Update { rel, old, new } => {
                o.push(b'U');
                o.extend(rel.to_be_bytes());
                if let Some((k, t)) = old {
                    o.push(if *k == OldImage::Key { b'K' } else { b'O' });
                    tuple(t, &mut o);
                }
                o.push(b'N');
                tuple(new, &mut o);
            }
            Message::Delete { rel, old: (k, t) } => {
                o.push(b'D');
                o.extend(rel.to_be_bytes());
                o.push(if *k == OldImage::Key { b'K' } else { b'O' });
                tuple(t, &mut o);
            }
            Message::Truncate { rels } => {
                o.push(b'T');
                o.extend((rels.len() as u32).to_be_bytes());
                o.push(0);
                for r in rels {
                    o.extend(r.to_be_bytes());
                }
            }
            Message::Other(t) => o.push(*t),
        }
        o
    }

    fn cell() -> impl Strategy<Value = Cell> {
        prop_oneof![Just(Cell::Null), Just(Cell::Unchanged), "\\PC{0,12}".prop_map(Cell::Text)]
    }

    fn message() -> impl Strategy<Value = Message> {
        let cells = || proptest::collection::vec(cell(), 0..6);
        let old = prop_oneof![Just(OldImage::Key), Just(OldImage::Full)];
        prop_oneof![
            (
                any::<u32>(),
                "[a-z_]{0,8}",
                "[a-z_]{1,8}",
                any::<u8>(),
                proptest::collection::vec((any::<bool>(), "[a-z_]{1,8}", any::<u32>(), any::<i32>()), 0..5)
            )
                .prop_map(|(id, namespace, name, identity, cols)| Message::Relation(Relation {
                    id,
                    namespace,
                    name,
                    identity,
                    columns: cols
                        .into_iter()
                        .map(|(key, name, type_oid, typmod)| RelColumn { key, name, type_oid, typmod })
                        .collect(),
                })),
            (any::<u32>(), cells()).prop_map(|(rel, new)| Message::Insert { rel, new }),
            (any::<u32>(), proptest::option::of((old.clone(), cells())), cells())
                .prop_map(|(rel, old, new)| Message::Update { rel, old, new }),
            (any::<u32>(), old, cells()).prop_map(|(rel, k, t)| Message::Delete { rel, old: (k, t) }),
            proptest::collection::vec(any::<u32>(), 0..4).prop_map(|rels| Message::Truncate { rels }),
        ]
    }

    proptest! {
        #[test]
        fn every_message_decodes_to_what_was_encoded(m in message()) {
            prop_assert_eq!(decode(&encode(&m)), Ok(m));
        }

        #[test]
        fn a_cut_message_is_an_error_not_a_panic(m in message(), cut in 0usize..64) {
            let bytes = encode(&m);
            if cut < bytes.len() {
                // Shorter input either fails or (a tuple cut at a boundary) decodes to less.
                let _ = decode(&bytes[..cut]);
            }
        }
    }

    proptest! {
        #[test]
        fn a_streamed_message_decodes_like_its_plain_twin_after_its_xid(m in message(), xid in any::<u32>()) {
            let plain = encode(&m);
            let mut streamed = vec![plain[0]];
            streamed.extend(xid.to_be_bytes());
            streamed.extend(&plain[1..]);
            prop_assert_eq!(decode_streamed(&streamed), Ok(m.clone()));
            prop_assert_eq!(streamed_change(&streamed), Ok(Some(xid)));
        }
    }

    #[test]
    fn control_messages_give_their_positions_and_xids() {
        let mut b = vec![b'B'];
        b.extend(0x1_0000_0010u64.to_be_bytes());
        b.extend(42i64.to_be_bytes());
        b.extend(7u32.to_be_bytes());
        assert_eq!(control(&b), Ok(Control::Begin { final_lsn: 0x1_0000_0010, micros: 42 }));
        let mut c = vec![b'C', 0];
        c.extend(10u64.to_be_bytes());
        c.extend(20u64.to_be_bytes());
        c.extend(42i64.to_be_bytes());
        assert_eq!(control(&c), Ok(Control::Commit { end_lsn: 20 }));
        let mut sc = vec![b'c'];
        sc.extend(9u32.to_be_bytes());
        sc.push(0);
        sc.extend(10u64.to_be_bytes());
        sc.extend(20u64.to_be_bytes());
        sc.extend(42i64.to_be_bytes());
        assert_eq!(control(&sc), Ok(Control::StreamCommit { xid: 9, commit_lsn: 10, end_lsn: 20, micros: 42 }));
        let mut a = vec![b'A'];
        a.extend(9u32.to_be_bytes());
        a.extend(11u32.to_be_bytes());
        assert_eq!(control(&a), Ok(Control::StreamAbort { xid: 9, subxid: 11 }));
        assert_eq!(control(&[b'S', 0, 0, 0, 9, 1]), Ok(Control::StreamStart { xid: 9 }));
        assert_eq!(control(b"E"), Ok(Control::StreamStop));
        assert_eq!(control(&[b'I', 0]), Ok(Control::Change));
        assert!(control(&[b'c', 0, 0]).is_err());
    }

    #[test]
    fn binary_tuples_are_refused_with_the_reason() {
        let mut b = vec![b'I', 0, 0, 0, 1, b'N', 0, 1, b'b', 0, 0, 0, 1, 7];
        assert!(decode(&b).unwrap_err().contains("binary"));
        b[8] = b'x';
        assert!(decode(&b).unwrap_err().contains("unknown kind"));
    }
}
