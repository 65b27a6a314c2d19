//! Decoding the rows of a rows event: each row image's cells, read straight from the event
//! bytes by the column's binlog type and metadata (integers, floats, DECIMAL, the temporal
//! types with fractional seconds, strings and blobs in their character set, JSON in MySQL's
//! binary form, ENUM/SET, BIT), into the record model's values.

use super::*;

/// Decodes all rows of one rows event against its table map.
pub(super) fn decode_rows(info: &TableInfo, rows: &RowsEventData<'_>, op: Op) -> Result<Vec<RowChange>, BinlogError> {
    let err = |column: &str, reason: String| BinlogError::Decode {
        database: info.database.clone(),
        table: info.table.clone(),
        column: column.to_string(),
        reason,
    };
    let n = rows.num_columns() as usize;
    if n != info.cols.len() {
        return Err(err("*", format!("rows event has {n} columns, its table map {}", info.cols.len())));
    }
    let (before, after) = (rows.columns_before_image(), rows.columns_after_image());
    if before.is_some_and(|b| b.count_ones() != n) || after.is_some_and(|b| b.count_ones() != n) {
        return Err(err("*", "row image is not complete: set binlog_row_image=FULL on the source".into()));
    }
    let (has_before, has_after) = (before.is_some(), after.is_some());
    let mut data = rows.rows_data();
    // Rows events usually hold many rows: start with room for some.
    let mut out = Vec::with_capacity(16);
    while !data.is_empty() {
        let b = if has_before { Some(read_image(info, &mut data, &err)?) } else { None };
        let a = if has_after { Some(read_image(info, &mut data, &err)?) } else { None };
        out.push((op, b, a));
    }
    Ok(out)
}

fn read_image<'a>(
    info: &'a TableInfo,
    data: &mut &'a [u8],
    err: &impl Fn(&str, String) -> BinlogError,
) -> Result<Row, BinlogError> {
    let n = info.cols.len();
    let nb = n.div_ceil(8);
    if data.len() < nb {
        return Err(err("*", "row data ends inside the null bitmap".into()));
    }
    let (nulls, rest) = data.split_at(nb);
    *data = rest;
    let mut row = Vec::with_capacity(n);
    for (i, col) in info.cols.iter().enumerate() {
        if nulls[i / 8] >> (i % 8) & 1 == 1 {
            row.push(Value::Null);
            continue;
        }
        row.push(decode_cell(col, data).map_err(|r| err(&col.name, r))?);
    }
    Ok(row)
}

/// A `mysql_common` binlog value of the next cell.
fn binlog_value<'a>(col: &'a Col, data: &mut &'a [u8], unsigned: bool) -> Result<BinlogValue<'a>, String> {
    let mut pb = ParseBuf(data);
    let v = BinlogValue::deserialize((col.ty, &col.meta[..], unsigned, false), &mut pb).map_err(|e| e.to_string())?;
    *data = pb.0;
    Ok(v)
}

fn plain(v: BinlogValue<'_>) -> Result<MyValue, String> {
    match v {
        BinlogValue::Value(v) => Ok(v),
        other => Err(format!("unexpected binlog value {other:?}")),
    }
}

fn take<'a>(data: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if data.len() < n {
        return Err("row data ends inside a value".into());
    }
    let (a, b) = data.split_at(n);
    *data = b;
    Ok(a)
}

fn be(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |acc, &x| (acc << 8) | x as u64)
}

fn le(b: &[u8]) -> u64 {
    b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | x as u64)
}

/// Reads a `TIME2` value (MySQL 5.6+ packed format) as signed microseconds.
pub(super) fn read_time2(data: &mut &[u8], dec: u8) -> Result<i64, String> {
    const INT_OFS: i64 = 0x80_0000;
    let packed: i64 = match dec {
        1 | 2 => {
            let mut int = be(take(data, 3)?) as i64 - INT_OFS;
            let mut frac = take(data, 1)?[0] as i64;
            if int < 0 && frac > 0 {
                int += 1;
                frac -= 0x100;
            }
            (int << 24) + frac * 10_000
        }
        3 | 4 => {
            let mut int = be(take(data, 3)?) as i64 - INT_OFS;
            let mut frac = be(take(data, 2)?) as i64;
            if int < 0 && frac > 0 {
                int += 1;
                frac -= 0x1_0000;
            }
            (int << 24) + frac * 100
        }
        5 | 6 => be(take(data, 6)?) as i64 - 0x8000_0000_0000,
        _ => (be(take(data, 3)?) as i64 - INT_OFS) << 24,
    };
    let neg = packed < 0;
    let p = packed.unsigned_abs();
    let hms = p >> 24;
    let frac = p % (1 << 24);
    let (h, m, s) = ((hms >> 12) % (1 << 10), (hms >> 6) % (1 << 6), hms % (1 << 6));
    Ok(types::time_micros(neg, h, m, s, frac))
}

/// Reads a `DATETIME2` value (5 bytes big-endian, sign bit set, then the fraction).
fn read_datetime2(data: &mut &[u8], dec: u8) -> Result<Value, String> {
    let packed = be(take(data, 5)?) as i64 - 0x80_0000_0000;
    let us = match dec {
        1 | 2 => be(take(data, 1)?) as u32 * 10_000,
        3 | 4 => be(take(data, 2)?) as u32 * 100,
        5 | 6 => be(take(data, 3)?) as u32,
        _ => 0,
    };
    let (ymd, hms) = (packed >> 17, packed % (1 << 17));
    let ym = ymd >> 5;
    Ok(types::civil_micros(
        (ym / 13) as u16,
        (ym % 13) as u8,
        (ymd % (1 << 5)) as u8,
        (hms >> 12) as u8,
        (hms >> 6 & 63) as u8,
        (hms & 63) as u8,
        us,
    ))
}

/// The width in bytes of a TINYINT, SMALLINT, INT or BIGINT cell.
fn int_width(ty: MyType) -> Option<usize> {
    match ty {
        MyType::MYSQL_TYPE_TINY => Some(1),
        MyType::MYSQL_TYPE_SHORT => Some(2),
        MyType::MYSQL_TYPE_LONG => Some(4),
        MyType::MYSQL_TYPE_LONGLONG => Some(8),
        _ => None,
    }
}

/// The width of the length prefix of a string or blob cell, when the column is one.
pub(super) fn string_prefix(ty: MyType, meta: [u8; 2]) -> Option<usize> {
    match ty {
        MyType::MYSQL_TYPE_VARCHAR | MyType::MYSQL_TYPE_VAR_STRING => {
            Some(if u16::from_le_bytes(meta) < 256 { 1 } else { 2 })
        }
        MyType::MYSQL_TYPE_STRING if meta[0] >= 1 => Some(if string_len(meta) < 256 { 1 } else { 2 }),
        MyType::MYSQL_TYPE_TINY_BLOB
        | MyType::MYSQL_TYPE_MEDIUM_BLOB
        | MyType::MYSQL_TYPE_LONG_BLOB
        | MyType::MYSQL_TYPE_BLOB
        | MyType::MYSQL_TYPE_GEOMETRY
            if (1..=4).contains(&meta[0]) =>
        {
            Some(meta[0] as usize)
        }
        _ => None,
    }
}

/// The bytes of a string or blob cell whose length prefix is `prefix` bytes wide.
fn length_prefixed<'a>(prefix: usize, data: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let n = le(take(data, prefix)?) as usize;
    take(data, n)
}

/// Reads a `TIMESTAMP2` value as UTC microseconds (0 is the zero timestamp).
fn read_timestamp2(data: &mut &[u8], dec: u8) -> Result<i64, String> {
    let secs = be(take(data, 4)?) as i64;
    let frac = match dec {
        1 | 2 => be(take(data, 1)?) as i64 * 10_000,
        3 | 4 => be(take(data, 2)?) as i64 * 100,
        5 | 6 => be(take(data, 3)?) as i64,
        _ => 0,
    };
    Ok(secs * 1_000_000 + frac)
}

fn decode_cell<'a>(col: &'a Col, data: &mut &'a [u8]) -> Result<Value, String> {
    match &col.kind {
        Kind::Int { unsigned } if col.ty == MyType::MYSQL_TYPE_INT24 => {
            // mysql_common reads the signed minimum -8388608 as +8388608.
            let raw = le(take(data, 3)?);
            Ok(if *unsigned {
                Value::UInt(raw)
            } else {
                Value::Int(if raw & 0x80_0000 != 0 { raw as i64 - 0x100_0000 } else { raw as i64 })
            })
        }
        Kind::Int { unsigned } if int_width(col.ty).is_some() => {
            let n = int_width(col.ty).expect("checked");
            let raw = le(take(data, n)?);
            Ok(if *unsigned {
                Value::UInt(raw)
            } else {
                // Sign-extend from n bytes.
                let shift = 64 - 8 * n as u32;
                Value::Int(((raw << shift) as i64) >> shift)
            })
        }
        Kind::Int { unsigned } => match plain(binlog_value(col, data, *unsigned)?)? {
            MyValue::Int(i) if *unsigned => Ok(Value::UInt(i as u64)),
            MyValue::Int(i) => Ok(Value::Int(i)),
            MyValue::UInt(u) if *unsigned => Ok(Value::UInt(u)),
            MyValue::UInt(u) => Ok(Value::Int(u as i64)),
            other => Err(format!("unexpected integer {other:?}")),
        },
        Kind::Float => Ok(Value::Float(f32::from_bits(le(take(data, 4)?) as u32))),
        Kind::Double => Ok(Value::Double(f64::from_bits(le(take(data, 8)?)))),
        Kind::Decimal => match plain(binlog_value(col, data, false)?)? {
            MyValue::Bytes(b) => std::str::from_utf8(&b)
                .ok()
                .and_then(canonical_decimal)
                .map(Value::Decimal)
                .ok_or_else(|| "malformed decimal".to_string()),
            other => Err(format!("unexpected decimal {other:?}")),
        },
        Kind::Year => {
            let y = take(data, 1)?[0] as u16;
            Ok(Value::Year(if y == 0 { 0 } else { 1900 + y }))
        }
        Kind::Date if col.ty == MyType::MYSQL_TYPE_NEWDATE => {
            let v = le(take(data, 3)?);
            Ok(types::civil_date((v >> 9) as u16, (v >> 5 & 15) as u8, (v & 31) as u8))
        }
        Kind::DateTime if col.ty == MyType::MYSQL_TYPE_DATETIME2 => read_datetime2(data, col.meta[0]),
        Kind::Date => match plain(binlog_value(col, data, false)?)? {
            MyValue::Date(y, m, d, ..) => Ok(types::civil_date(y, m, d)),
            other => Err(format!("unexpected date {other:?}")),
        },
        Kind::DateTime => match plain(binlog_value(col, data, false)?)? {
            MyValue::Date(y, mo, d, h, mi, s, us) => Ok(types::civil_micros(y, mo, d, h, mi, s, us)),
            other => Err(format!("unexpected date-time {other:?}")),
        },
        Kind::Time => {
            // Old format: signed HHMMSS in 3 bytes.
            let raw = le(take(data, 3)?) as i64;
            let v = if raw & 0x80_0000 != 0 { raw - 0x100_0000 } else { raw };
            let a = v.unsigned_abs();
            Ok(Value::Time(types::time_micros(v < 0, a / 10_000, a / 100 % 100, a % 100, 0)))
        }
        Kind::Time2 { dec } => read_time2(data, *dec).map(Value::Time),
        Kind::Timestamp => Ok(Value::Timestamp(le(take(data, 4)?) as i64 * 1_000_000)),
        Kind::Timestamp2 { dec } => read_timestamp2(data, *dec).map(Value::Timestamp),
        Kind::Bit { width } => match plain(binlog_value(col, data, false)?)? {
            MyValue::Bytes(bytes) => Ok(Value::Bit { width: *width, bytes }),
            other => Err(format!("unexpected bit string {other:?}")),
        },
        Kind::Enum { values } => {
            let idx = le(take(data, col.meta[1] as usize)?) as usize;
            let values = values.as_ref().ok_or("ENUM members unknown: set binlog_row_metadata=FULL on the source")?;
            match idx {
                0 => Ok(Value::Enum(String::new())),
                i => values.get(i - 1).cloned().map(Value::Enum).ok_or_else(|| format!("ENUM index {i} out of range")),
            }
        }
        Kind::Set { values } => {
            let bits = le(take(data, col.meta[1] as usize)?);
            let values = values.as_ref().ok_or("SET members unknown: set binlog_row_metadata=FULL on the source")?;
            let mut s = String::new();
            for (i, m) in values.iter().enumerate().take(64) {
                if bits >> i & 1 == 1 {
                    if !s.is_empty() {
                        s.push(',');
                    }
                    s.push_str(m);
                }
            }
            Ok(Value::Set(s))
        }
        Kind::Text { charset, name, json } if col.prefix.is_some() => {
            let b = length_prefixed(col.prefix.expect("checked"), data)?;
            let s = decode_slice(b, *charset, name).map_err(|e| e.to_string())?;
            Ok(if *json { Value::Json(s) } else { Value::Text(s) })
        }
        Kind::Binary { pad_to } if col.prefix.is_some() => {
            let mut b = length_prefixed(col.prefix.expect("checked"), data)?.to_vec();
            if let Some(n) = pad_to {
                if b.len() < *n {
                    b.resize(*n, 0);
                }
            }
            Ok(Value::Bytes(b))
        }
        Kind::Text { charset, name, json } => match plain(binlog_value(col, data, false)?)? {
            MyValue::Bytes(b) => {
                let s = decode_with(b, *charset, name).map_err(|e| e.to_string())?;
                Ok(if *json { Value::Json(s) } else { Value::Text(s) })
            }
            other => Err(format!("unexpected text {other:?}")),
        },
        Kind::Binary { pad_to } => match plain(binlog_value(col, data, false)?)? {
            MyValue::Bytes(mut b) => {
                if let Some(n) = pad_to {
                    if b.len() < *n {
                        b.resize(*n, 0);
                    }
                }
                Ok(Value::Bytes(b))
            }
            other => Err(format!("unexpected binary value {other:?}")),
        },
        Kind::Inet { v6 } => match plain(binlog_value(col, data, false)?)? {
            MyValue::Bytes(mut b) => {
                let n = if *v6 { 16 } else { 4 };
                if b.len() > n {
                    return Err(format!("{} bytes for an INET{} value", b.len(), if *v6 { 6 } else { 4 }));
                }
                b.resize(n, 0);
                Ok(Value::Text(if *v6 {
                    std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&b[..]).expect("16 bytes")).to_string()
                } else {
                    std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()
                }))
            }
            other => Err(format!("unexpected INET value {other:?}")),
        },
        Kind::JsonB => match binlog_value(col, data, false)? {
            BinlogValue::Jsonb(j) => {
                let v = serde_json::Value::try_from(j).map_err(|e| e.to_string())?;
                let mut s = String::new();
                write_mysql_json(&v, &mut s);
                Ok(Value::Json(s))
            }
            other => Err(format!("unexpected JSON value {other:?}")),
        },
        Kind::Unsupported(t) => Err(format!("unsupported binlog column type {t}")),
    }
}

/// Writes JSON the way MySQL prints it (`{"a": 1, "b": [1, 2]}`), so binlog JSON equals the
/// snapshot's text.
pub(super) fn write_mysql_json(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value as J;
    match v {
        J::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_mysql_json(x, out);
            }
            out.push(']');
        }
        J::Object(map) => {
            out.push('{');
            for (i, (k, x)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&J::String(k.clone()).to_string());
                out.push_str(": ");
                write_mysql_json(x, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}
