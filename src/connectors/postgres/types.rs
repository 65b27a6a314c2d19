//! PostgreSQL types → the record model ([`ColumnType`]), and PostgreSQL's text output of a
//! value → [`Value`]. The snapshot (`COPY … TO STDOUT`) and the stream (pgoutput in text
//! mode) both deliver text, so one decoder serves both and a value reads the same way through
//! either path.
//!
//! Every ferry session sets what the text depends on: `DateStyle=ISO`, `IntervalStyle=postgres`,
//! `TimeZone=UTC`, `extra_float_digits=3`, `bytea_output=hex`, `lc_monetary=C` (see
//! [`SESSION_OPTIONS`]); timestamps with an offset are read as instants whatever the offset.

use ferry_operators::value::{canonical_decimal, parse_array, parse_uuid, Date, DateTime, Interval};
use ferry_operators::{ColumnType, Value};

/// The startup options of every source session (normal and replication): the text forms the
/// decoder reads.
pub const SESSION_OPTIONS: &str = "-c DateStyle=ISO -c IntervalStyle=postgres -c TimeZone=UTC \
     -c extra_float_digits=3 -c bytea_output=hex -c lc_monetary=C -c client_encoding=UTF8";

/// What discovery knows of a column's type: the base type's name (`int4`, `numeric`, a domain's
/// base type), its modifier as `format_type` writes it, its kind, and for arrays the element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgType {
    /// `pg_type.typname` of the (domain's base) type, e.g. `int4`, `_int4`, `numeric`.
    pub name: String,
    /// `format_type(oid, typmod)`, e.g. `numeric(10,2)`, `character varying(20)`.
    pub formatted: String,
    /// `pg_type.typtype`: `b` base, `e` enum, `c` composite, `r` range, `m` multirange, `p`
    /// pseudo.
    pub kind: char,
    /// Enum members, in order.
    pub labels: Vec<String>,
    /// For arrays, the element type.
    pub element: Option<Box<PgType>>,
}

/// The record-model type of a PostgreSQL type.
pub fn column_type(t: &PgType) -> ColumnType {
    if let Some(e) = &t.element {
        return ColumnType::Array { element: Box::new(column_type(e)) };
    }
    if t.kind == 'e' {
        return ColumnType::Enum { values: t.labels.clone() };
    }
    let args = modifiers(&t.formatted);
    let fsp = || args.first().map_or(6, |&p| p.min(6) as u8);
    match t.name.as_str() {
        "bool" => ColumnType::Bool,
        "int2" => ColumnType::Int { bits: 16, unsigned: false },
        "int4" => ColumnType::Int { bits: 32, unsigned: false },
        "int8" | "oid" => ColumnType::Int { bits: 64, unsigned: false },
        "float4" => ColumnType::Float,
        "float8" => ColumnType::Double,
        "numeric" => match args.as_slice() {
            // Precision past 255 digits cannot be written in the model: unconstrained.
            [p, s] if *p <= 255 => ColumnType::Decimal { precision: *p as u8, scale: (*s).min(255) as u8 },
            [p] if *p <= 255 => ColumnType::Decimal { precision: *p as u8, scale: 0 },
            _ => ColumnType::Decimal { precision: 0, scale: 0 },
        },
        "money" => ColumnType::Decimal { precision: 19, scale: 2 },
        "bpchar" | "char" => {
            ColumnType::String { max_chars: Some(args.first().copied().unwrap_or(1) as u32), fixed: true }
        }
        "varchar" => ColumnType::String { max_chars: args.first().map(|&n| n as u32), fixed: false },
        "text" | "name" | "citext" => ColumnType::String { max_chars: None, fixed: false },
        "bytea" => ColumnType::Bytes { max_len: None, fixed: false },
        "date" => ColumnType::Date,
        "time" => ColumnType::Time { fsp: fsp() },
        "timestamp" => ColumnType::DateTime { fsp: fsp() },
        "timestamptz" => ColumnType::Timestamp { fsp: fsp() },
        "interval" => ColumnType::Interval,
        "json" | "jsonb" => ColumnType::Json,
        "uuid" => ColumnType::Uuid,
        "bit" => ColumnType::Bit { width: args.first().copied().unwrap_or(1) as u32 },
        // Varying bit strings keep their type by name (the model's `Bit` is fixed-width).
        "varbit" => ColumnType::Other { name: t.formatted.clone() },
        _ => ColumnType::Other { name: t.formatted.clone() },
    }
}

/// The numbers in a formatted type's parentheses: `numeric(10,2)` → `[10, 2]`,
/// `timestamp(3) with time zone` → `[3]`.
fn modifiers(formatted: &str) -> Vec<u64> {
    let Some(open) = formatted.find('(') else { return Vec::new() };
    let Some(close) = formatted[open..].find(')') else { return Vec::new() };
    formatted[open + 1..open + close].split(',').filter_map(|p| p.trim().parse().ok()).collect()
}

/// A value from its PostgreSQL text form, for a column of type `ty`.
pub fn decode(ty: &ColumnType, s: &str) -> Result<Value, String> {
    let bad = |what: &str| format!("`{}` is not a {what}", clip(s));
    Ok(match ty {
        ColumnType::Bool => match s {
            "t" | "true" => Value::Bool(true),
            "f" | "false" => Value::Bool(false),
            _ => return Err(bad("boolean")),
        },
        ColumnType::Int { .. } | ColumnType::Year => Value::Int(s.parse().map_err(|_| bad("integer"))?),
        ColumnType::Float => Value::Float(parse_float(s).ok_or_else(|| bad("float"))? as f32),
        ColumnType::Double => Value::Double(parse_float(s).ok_or_else(|| bad("double"))?),
        ColumnType::Decimal { .. } => Value::Decimal(decimal(s).ok_or_else(|| bad("number"))?),
        ColumnType::String { .. } => Value::Text(s.to_string()),
        ColumnType::Bytes { .. } => Value::Bytes(bytea(s).ok_or_else(|| bad("bytea in hex"))?),
        ColumnType::Date => Value::Date(date(s).ok_or_else(|| bad("date"))?),
        ColumnType::Time { .. } => Value::Time(clock(s).ok_or_else(|| bad("time"))? as i64),
        ColumnType::DateTime { .. } => Value::DateTime(datetime(s).ok_or_else(|| bad("timestamp"))?.0),
        ColumnType::Timestamp { .. } => Value::Timestamp(timestamptz(s).ok_or_else(|| bad("timestamptz"))?),
        ColumnType::Interval => Value::Interval(Interval::parse(s)?),
        ColumnType::Json => Value::Json(s.to_string()),
        ColumnType::Uuid => Value::Uuid(parse_uuid(s).ok_or_else(|| bad("uuid"))?),
        ColumnType::Bit { .. } => bits(s).ok_or_else(|| bad("bit string"))?,
        ColumnType::Enum { .. } => Value::Enum(s.to_string()),
        ColumnType::Set { .. } => Value::Set(s.to_string()),
        ColumnType::Array { element } => parse_array(s, &mut |e| decode(element, e))?,
        ColumnType::Other { .. } => Value::Text(s.to_string()),
    })
}

fn clip(s: &str) -> String {
    if s.len() <= 64 {
        return s.to_string();
    }
    let mut end = 64;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// `numeric` text (or `money` under `lc_monetary=C`: `$1,234.56`, `-$0.50`) in canonical form.
fn decimal(s: &str) -> Option<String> {
    if s.contains('$') || s.contains(',') {
        let neg = s.starts_with('-') || s.starts_with('(');
        let digits: String = s.chars().filter(|c| c.is_ascii_digit() || *c == '.').collect();
        return canonical_decimal(&format!("{}{digits}", if neg { "-" } else { "" }));
    }
    canonical_decimal(s)
}

fn bytea(s: &str) -> Option<Vec<u8>> {
    let h = s.strip_prefix("\\x")?.as_bytes();
    if h.len() % 2 != 0 {
        return None;
    }
    let nib = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    h.chunks(2).map(|p| Some(nib(p[0])? << 4 | nib(p[1])?)).collect()
}

/// `YYYY-MM-DD` (years may have more than 4 digits), optional ` BC`; `infinity`, `-infinity`.
fn date(s: &str) -> Option<Date> {
    match s {
        "infinity" => return Some(Date::INFINITY),
        "-infinity" => return Some(Date::NEG_INFINITY),
        _ => {}
    }
    let (body, bc) = match s.strip_suffix(" BC") {
        Some(b) => (b, true),
        None => (s, false),
    };
    let mut it = body.splitn(3, '-');
    let (y, m, d) = (it.next()?, it.next()?, it.next()?);
    if y.is_empty() || !y.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i32 = y.parse().ok()?;
    let (m, d): (u8, u8) = (m.parse().ok()?, d.parse().ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Year 1 BC is the astronomical year 0.
    Some(Date::new(if bc { 1 - y } else { y }, m, d))
}

/// `HH:MM:SS[.ffffff]` as microseconds (`24:00:00` is allowed).
fn clock(s: &str) -> Option<u64> {
    let (hms, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut it = hms.split(':');
    let (h, m, sec) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m, sec): (u64, u64, u64) = (h.parse().ok()?, m.parse().ok()?, sec.parse().ok()?);
    if m > 59 || sec > 59 || h > 24 {
        return None;
    }
    let mut us: u64 = 0;
    for (i, b) in frac.bytes().enumerate() {
        us += u64::from(b - b'0') * 10u64.pow(5 - i as u32);
    }
    let total = ((h * 60 + m) * 60 + sec) * 1_000_000 + us;
    (total <= 86_400_000_000).then_some(total)
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff][+TZ][ BC]`: the civil date-time and the offset (seconds east)
/// when there is one.
fn datetime(s: &str) -> Option<(DateTime, Option<i64>)> {
    match s {
        "infinity" => return Some((DateTime::INFINITY, Some(0))),
        "-infinity" => return Some((DateTime::NEG_INFINITY, Some(0))),
        _ => {}
    }
    let (body, bc) = match s.strip_suffix(" BC") {
        Some(b) => (b, true),
        None => (s, false),
    };
    let (d, rest) = body.split_once(' ')?;
    // The offset starts at the first sign after the clock.
    let (clock_text, offset) = match rest.find(['+', '-']) {
        Some(i) => (&rest[..i], Some(offset(&rest[i..])?)),
        None => (rest, None),
    };
    let date = date(&format!("{d}{}", if bc { " BC" } else { "" }))?;
    let micros = clock(clock_text)?;
    // 24:00:00 is the next day's midnight.
    if micros == 86_400_000_000 {
        let days = date.to_days()? + 1;
        return Some((DateTime { date: Date::from_days(days), micros: 0 }, offset));
    }
    Some((DateTime { date, micros }, offset))
}

/// `+HH`, `-HH:MM`, `+HH:MM:SS` as seconds east of UTC.
fn offset(s: &str) -> Option<i64> {
    let sign = if s.starts_with('-') { -1 } else { 1 };
    let mut parts = s[1..].split(':').map(|p| p.parse::<i64>());
    let h = parts.next()?.ok()?;
    let m = parts.next().unwrap_or(Ok(0)).ok()?;
    let sec = parts.next().unwrap_or(Ok(0)).ok()?;
    Some(sign * (h * 3600 + m * 60 + sec))
}

/// A `timestamptz` as microseconds since the epoch (UTC), whatever offset it is written in.
fn timestamptz(s: &str) -> Option<i64> {
    let (dt, off) = datetime(s)?;
    if dt.date.is_infinite() {
        return dt.to_epoch_micros();
    }
    dt.to_epoch_micros()?.checked_sub(off.unwrap_or(0) * 1_000_000)
}

/// `0101…` as a bit string.
fn bits(s: &str) -> Option<Value> {
    if !s.bytes().all(|b| b == b'0' || b == b'1') {
        return None;
    }
    let width = s.len();
    let mut bytes = vec![0u8; width.div_ceil(8)];
    let pad = bytes.len() * 8 - width;
    for (i, b) in s.bytes().enumerate() {
        if b == b'1' {
            let bit = pad + i;
            bytes[bit / 8] |= 0x80 >> (bit % 8);
        }
    }
    Some(Value::Bit { width: width as u32, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn base(name: &str, formatted: &str) -> PgType {
        PgType { name: name.into(), formatted: formatted.into(), kind: 'b', labels: Vec::new(), element: None }
    }

    #[test]
    fn types_keep_their_modifiers() {
        assert_eq!(column_type(&base("numeric", "numeric(10,2)")), ColumnType::Decimal { precision: 10, scale: 2 });
        assert_eq!(column_type(&base("numeric", "numeric")), ColumnType::Decimal { precision: 0, scale: 0 });
        assert_eq!(column_type(&base("numeric", "numeric(1000,0)")), ColumnType::Decimal { precision: 0, scale: 0 });
        assert_eq!(
            column_type(&base("varchar", "character varying(20)")),
            ColumnType::String { max_chars: Some(20), fixed: false }
        );
        assert_eq!(column_type(&base("timestamptz", "timestamp(3) with time zone")), ColumnType::Timestamp { fsp: 3 });
        assert_eq!(column_type(&base("inet", "inet")), ColumnType::Other { name: "inet".into() });
        let arr = PgType { element: Some(Box::new(base("int4", "integer"))), ..base("_int4", "integer[]") };
        assert_eq!(
            column_type(&arr),
            ColumnType::Array { element: Box::new(ColumnType::Int { bits: 32, unsigned: false }) }
        );
    }

    #[test]
    fn text_forms_decode_to_exact_values() {
        let d = |ty: ColumnType, s: &str| decode(&ty, s).unwrap();
        assert_eq!(d(ColumnType::Decimal { precision: 0, scale: 0 }, "NaN"), Value::Decimal("NaN".into()));
        assert_eq!(d(ColumnType::Decimal { precision: 19, scale: 2 }, "-$1,234.50"), Value::Decimal("-1234.50".into()));
        assert_eq!(d(ColumnType::Bytes { max_len: None, fixed: false }, "\\x00ff"), Value::Bytes(vec![0, 255]));
        assert_eq!(d(ColumnType::Date, "0044-03-15 BC"), Value::Date(Date::new(-43, 3, 15)));
        assert_eq!(d(ColumnType::Date, "infinity"), Value::Date(Date::INFINITY));
        assert_eq!(d(ColumnType::Timestamp { fsp: 6 }, "1970-01-01 02:00:00.5+02"), Value::Timestamp(500_000));
        assert_eq!(d(ColumnType::Timestamp { fsp: 6 }, "1970-01-01 00:00:00-05:30"), Value::Timestamp(19_800_000_000));
        assert_eq!(
            d(ColumnType::DateTime { fsp: 6 }, "2024-02-29 23:59:59.000001"),
            Value::DateTime(DateTime { date: Date::new(2024, 2, 29), micros: 86_399_000_001 })
        );
        assert_eq!(d(ColumnType::Time { fsp: 6 }, "24:00:00"), Value::Time(86_400_000_000));
        assert_eq!(d(ColumnType::Bit { width: 10 }, "1000000001"), Value::Bit { width: 10, bytes: vec![2, 1] });
        assert_eq!(d(ColumnType::Double, "-Infinity"), Value::Double(f64::NEG_INFINITY));
        let arr = ColumnType::Array { element: Box::new(ColumnType::Int { bits: 32, unsigned: false }) };
        assert_eq!(
            d(arr, "{{1,NULL},{3,4}}"),
            Value::Array(vec![
                Value::Array(vec![Value::Int(1), Value::Null]),
                Value::Array(vec![Value::Int(3), Value::Int(4)])
            ])
        );
        assert!(decode(&ColumnType::Date, "2024-13-01").unwrap_err().contains("2024-13-01"));
    }

    proptest! {
        #[test]
        fn timestamps_read_back_from_their_utc_text(us in -210_000_000_000_000_000i64..250_000_000_000_000_000i64) {
            // PostgreSQL's text of a timestamptz in UTC: civil time, `+00`, ` BC` for BC years.
            let dt = DateTime::from_epoch_micros(us);
            let y = dt.date.year;
            let (year, bc) = if y <= 0 { (1 - y, " BC") } else { (y, "") };
            let mut clock = String::new();
            ferry_operators::value::format_time(dt.micros as i64, &mut clock).unwrap();
            let text = format!("{year:04}-{:02}-{:02} {clock}+00{bc}", dt.date.month, dt.date.day);
            prop_assert_eq!(decode(&ColumnType::Timestamp { fsp: 6 }, &text), Ok(Value::Timestamp(us)));
        }

        #[test]
        fn bit_strings_keep_their_width_and_bits(s in "[01]{0,70}") {
            let Value::Bit { width, bytes } = bits(&s).unwrap() else { unreachable!() };
            prop_assert_eq!(width as usize, s.len());
            let back: String = (0..s.len())
                .map(|i| {
                    let bit = bytes.len() * 8 - s.len() + i;
                    if bytes[bit / 8] & (0x80 >> (bit % 8)) != 0 { '1' } else { '0' }
                })
                .collect();
            prop_assert_eq!(back, s);
        }

        #[test]
        fn bytea_hex_reads_back(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let text: String = format!("\\x{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>());
            prop_assert_eq!(bytea(&text), Some(b));
        }
    }
}
