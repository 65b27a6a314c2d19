//! MySQL 8 binlog events built byte by byte from the layouts the MySQL source documents
//! (`libbinlogevents`: FORMAT_DESCRIPTION, PREVIOUS_GTIDS, GTID and anonymous GTID, QUERY,
//! TABLE_MAP with `binlog_row_metadata=FULL`, WRITE_ROWS v2 with a binary JSON cell, XID,
//! TRANSACTION_PAYLOAD compressed with zstd, PARTIAL_UPDATE_ROWS), decoded by [`BinlogReader`]
//! without a server.

use super::*;

const UUID: [u8; 16] = [0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42, 0x95, 0x62];
const UUID_TEXT: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

/// A binlog file being written: the magic, then events whose `log_pos` is their end.
struct File {
    bytes: Vec<u8>,
}

impl File {
    fn new() -> File {
        let mut f = File { bytes: vec![0xfe, b'b', b'i', b'n'] };
        // FORMAT_DESCRIPTION: binlog version 4, server version, create time, header length 19;
        // no per-type post-header lengths (the documented defaults apply); checksums OFF
        // (algorithm byte 0, then the 4 bytes every FDE carries).
        let mut fde = 4u16.to_le_bytes().to_vec();
        let mut version = b"8.0.36".to_vec();
        version.resize(50, 0);
        fde.extend(version);
        fde.extend(0u32.to_le_bytes());
        fde.push(19);
        fde.push(0);
        fde.extend([0u8; 4]);
        f.push(15, &fde);
        f
    }

    /// Appends an event; returns its end position.
    fn push(&mut self, ty: u8, data: &[u8]) -> u64 {
        let end = (self.bytes.len() + 19 + data.len()) as u32;
        self.bytes.extend(event(ty, end, data));
        end as u64
    }
}

/// An event: the 19-byte v4 header (timestamp, type, server id, size, end position, flags),
/// then the data.
fn event(ty: u8, log_pos: u32, data: &[u8]) -> Vec<u8> {
    let mut e = 1_700_000_000u32.to_le_bytes().to_vec();
    e.push(ty);
    e.extend(1u32.to_le_bytes());
    e.extend(((19 + data.len()) as u32).to_le_bytes());
    e.extend(log_pos.to_le_bytes());
    e.extend(0u16.to_le_bytes());
    e.extend(data);
    e
}

fn lenenc(n: u64) -> Vec<u8> {
    match n {
        0..=250 => vec![n as u8],
        251..=0xffff => [vec![0xfc], (n as u16).to_le_bytes().to_vec()].concat(),
        _ => [vec![0xfe], n.to_le_bytes().to_vec()].concat(),
    }
}

/// GTID_LOG_EVENT (33) / ANONYMOUS_GTID_LOG_EVENT (34) data, MySQL 8 layout: flags, SID, GNO,
/// logical clock (type code 2, last committed, sequence number), immediate commit timestamp
/// (7 bytes), transaction length, immediate server version.
fn gtid(sid: [u8; 16], gno: u64) -> Vec<u8> {
    let mut d = vec![1u8];
    d.extend(sid);
    d.extend(gno.to_le_bytes());
    d.push(2);
    d.extend(5u64.to_le_bytes());
    d.extend(6u64.to_le_bytes());
    d.extend(&1_700_000_000_000_000u64.to_le_bytes()[..7]);
    d.extend(lenenc(300));
    d.extend(80036u32.to_le_bytes());
    d
}

/// PREVIOUS_GTIDS_LOG_EVENT (35): SIDs, each with half-open GNO intervals.
fn previous_gtids(sid: [u8; 16], intervals: &[(u64, u64)]) -> Vec<u8> {
    let mut d = 1u64.to_le_bytes().to_vec();
    d.extend(sid);
    d.extend((intervals.len() as u64).to_le_bytes());
    for (a, b) in intervals {
        d.extend(a.to_le_bytes());
        d.extend(b.to_le_bytes());
    }
    d
}

/// QUERY_EVENT (2): thread id, exec time, db length, error code, status vars length; the
/// database name with its NUL; the statement.
fn query(db: &str, sql: &str) -> Vec<u8> {
    let mut d = 7u32.to_le_bytes().to_vec();
    d.extend(0u32.to_le_bytes());
    d.push(db.len() as u8);
    d.extend(0u16.to_le_bytes());
    d.extend(0u16.to_le_bytes());
    d.extend(db.as_bytes());
    d.push(0);
    d.extend(sql.as_bytes());
    d
}

const TABLE_ID: u64 = 0x71;

/// TABLE_MAP_EVENT (19) of `shop.doc (id INT, doc JSON, name VARCHAR(20) utf8mb4)` with the
/// optional metadata `binlog_row_metadata=FULL` writes: signedness, default charset, column
/// names.
fn table_map() -> Vec<u8> {
    let mut d = TABLE_ID.to_le_bytes()[..6].to_vec();
    d.extend(1u16.to_le_bytes());
    for name in ["shop", "doc"] {
        d.push(name.len() as u8);
        d.extend(name.as_bytes());
        d.push(0);
    }
    d.extend(lenenc(3));
    d.extend([3u8, 245, 15]);
    // Metadata: JSON's length-prefix width (4), VARCHAR's maximum bytes (80).
    let meta = [4u8, 80, 0];
    d.extend(lenenc(meta.len() as u64));
    d.extend(meta);
    d.push(0b110); // nullable: doc, name
                   // SIGNEDNESS (1): one numeric column, signed.
    d.extend([1u8, 1, 0]);
    // DEFAULT_CHARSET (2): collation 255, utf8mb4_0900_ai_ci.
    let cs = lenenc(255);
    d.push(2);
    d.extend(lenenc(cs.len() as u64));
    d.extend(cs);
    // COLUMN_NAME (4).
    let mut names = Vec::new();
    for n in ["id", "doc", "name"] {
        names.extend(lenenc(n.len() as u64));
        names.extend(n.as_bytes());
    }
    d.push(4);
    d.extend(lenenc(names.len() as u64));
    d.extend(names);
    d
}

/// MySQL's binary JSON of `{"a": 1, "b": "x"}`: a small object (type 0), element count and
/// size, key entries (offset, length), value entries (int16 inline; string at an offset), keys,
/// the string (length, bytes).
fn json_doc() -> Vec<u8> {
    vec![0x00, 2, 0, 22, 0, 18, 0, 1, 0, 19, 0, 1, 0, 0x05, 1, 0, 0x0c, 20, 0, b'a', b'b', 1, b'x']
}

/// WRITE_ROWS_EVENT v2 (30): table id, flags (statement end), extra data length 2, column
/// count, columns present, then one row: null bitmap, INT, JSON (4-byte length), VARCHAR
/// (1-byte length).
fn write_row(id: i32, name: &str) -> Vec<u8> {
    let mut d = TABLE_ID.to_le_bytes()[..6].to_vec();
    d.extend(1u16.to_le_bytes());
    d.extend(2u16.to_le_bytes());
    d.extend(lenenc(3));
    d.push(0b111);
    d.push(0);
    d.extend(id.to_le_bytes());
    let doc = json_doc();
    d.extend((doc.len() as u32).to_le_bytes());
    d.extend(doc);
    d.push(name.len() as u8);
    d.extend(name.as_bytes());
    d
}

/// TRANSACTION_PAYLOAD_EVENT (40) data holding `inner` zstd-compressed: type-length-value
/// fields (compression type 0 = zstd, uncompressed size, payload size), the end mark 0, then
/// the payload.
fn payload(inner: &[u8]) -> Vec<u8> {
    let compressed = zstd::bulk::compress(inner, 3).unwrap();
    let mut data = Vec::new();
    for (field, value) in [(2u64, 0u64), (3, inner.len() as u64), (1, compressed.len() as u64)] {
        let v = lenenc(value);
        data.extend(lenenc(field));
        data.extend(lenenc(v.len() as u64));
        data.extend(v);
    }
    data.push(0);
    data.extend(&compressed);
    data
}

fn xid() -> Vec<u8> {
    42u64.to_le_bytes().to_vec()
}

fn row(id: i64, name: &str) -> Row {
    vec![Value::Int(id), Value::Json(r#"{"a": 1, "b": "x"}"#.into()), Value::Text(name.into())]
}

fn rows(changes: Vec<RowChange>) -> BinlogEvent {
    BinlogEvent::Rows { database: "shop".into(), table: "doc".into(), changes }
}

#[test]
fn a_mysql8_transaction_decodes_with_its_gtid_full_metadata_and_binary_json_and_the_gtid_set_grows() {
    let mut f = File::new();
    f.push(35, &previous_gtids(UUID, &[(1, 7)]));
    f.push(33, &gtid(UUID, 7));
    f.push(2, &query("shop", "BEGIN"));
    f.push(19, &table_map());
    f.push(30, &write_row(1, "héllo"));
    let end = f.push(16, &xid());
    let mut r = BinlogReader::detached();
    let got = r.decode_all(&f.bytes).unwrap();
    let g = Some(format!("{UUID_TEXT}:7"));
    // The file's header (its end: after the previous GTIDs) says where the reader is.
    assert_eq!(got[0], BinlogEvent::Position { next: BinlogPos::new("binlog.000001", 152) });
    assert_eq!(
        got[1..],
        [
            BinlogEvent::Begin { gtid: g.clone() },
            rows(vec![(Op::Insert, None, Some(row(1, "héllo")))]),
            BinlogEvent::Commit { next: BinlogPos::new("binlog.000001", end), gtid: g },
        ]
    );
    assert_eq!(r.columns("shop", "doc").unwrap(), ["id", "doc", "name"]);
    // PREVIOUS_GTIDS said 1-6 were before this file; 7 is now done.
    assert_eq!(r.gtid_position().as_deref(), Some(format!("{UUID_TEXT}:1-7").as_str()));
}

#[test]
fn an_anonymous_gtid_transaction_has_no_gtid_and_leaves_the_set_alone() {
    let mut f = File::new();
    f.push(35, &previous_gtids(UUID, &[(1, 4)]));
    f.push(34, &gtid([0; 16], 0));
    f.push(2, &query("shop", "BEGIN"));
    f.push(19, &table_map());
    f.push(30, &write_row(2, "a"));
    let end = f.push(16, &xid());
    let mut r = BinlogReader::detached();
    let got = r.decode_all(&f.bytes).unwrap();
    assert_eq!(got[0], BinlogEvent::Position { next: BinlogPos::new("binlog.000001", 152) });
    assert_eq!(got[1], BinlogEvent::Begin { gtid: None });
    assert_eq!(got[3], BinlogEvent::Commit { next: BinlogPos::new("binlog.000001", end), gtid: None });
    assert_eq!(r.gtid_position().as_deref(), Some(format!("{UUID_TEXT}:1-3").as_str()));
}

#[test]
fn a_compressed_transaction_payload_decodes_to_its_events_and_resumes_after_the_payload() {
    // The transaction's events, as the server puts them in the payload: no checksums, and
    // positions that mean nothing outside it.
    let mut inner = Vec::new();
    inner.extend(event(2, 0, &query("shop", "BEGIN")));
    inner.extend(event(19, 0, &table_map()));
    inner.extend(event(30, 0, &write_row(3, "zstd")));
    inner.extend(event(30, 0, &write_row(4, "twice")));
    inner.extend(event(16, 0, &xid()));
    let mut f = File::new();
    f.push(33, &gtid(UUID, 9));
    let end = f.push(40, &payload(&inner));
    let mut r = BinlogReader::detached();
    let got = r.decode_all(&f.bytes).unwrap();
    let g = Some(format!("{UUID_TEXT}:9"));
    // No header event after the format description: no position before the transaction.
    assert_eq!(
        got,
        vec![
            BinlogEvent::Begin { gtid: g.clone() },
            rows(vec![(Op::Insert, None, Some(row(3, "zstd")))]),
            rows(vec![(Op::Insert, None, Some(row(4, "twice")))]),
            BinlogEvent::Commit { next: BinlogPos::new("binlog.000001", end), gtid: g },
        ]
    );
}

#[test]
fn a_truncated_payload_is_an_error_not_a_panic_or_a_skip() {
    let inner = event(2, 0, &query("shop", "BEGIN"));
    let cut = &inner[..inner.len() - 3];
    let mut f = File::new();
    f.push(40, &payload(cut));
    let err = BinlogReader::detached().decode_all(&f.bytes).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn partial_json_updates_are_refused_with_the_setting_to_change() {
    let mut f = File::new();
    f.push(19, &table_map());
    f.push(39, &write_row(1, "x"));
    let err = BinlogReader::detached().decode_all(&f.bytes).unwrap_err();
    assert!(err.to_string().contains("binlog_row_value_options=''"), "{err}");
}

#[test]
fn the_caching_sha2_password_fast_path_scramble_matches_the_documented_formula() {
    // XOR(SHA256(pw), SHA256(SHA256(SHA256(pw)) ++ nonce)), computed apart from this code.
    let got = mysql_common::scramble::scramble_sha256(b"0123456789abcdefghij", b"ferry-pw").unwrap();
    let hex: String = got.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, "88c52baee345816e46306853d5f28d5eb80c84b19a6556c7156a79588f74f57d");
}
