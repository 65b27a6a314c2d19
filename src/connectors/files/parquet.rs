//! The `files` target's Parquet format: one file per part, one schema per file (the table's
//! target schema of the rows in it), types mapped without loss:
//!
//! ```text
//!  column type                    Arrow / Parquet
//!  ───────────                    ───────────────
//!  BOOLEAN                        bool
//!  TINYINT..BIGINT [UNSIGNED]     int8..int64 / uint8..uint64 (MEDIUMINT: int32 / uint32)
//!  FLOAT, DOUBLE                  float32, float64
//!  DECIMAL(p,s), p ≤ 38           decimal128(p,s);  p ≤ 76: decimal256(p,s)
//!  NUMERIC (no precision)         string (the exact decimal text, NaN, Infinity)
//!  CHAR, VARCHAR, TEXT, ENUM, SET string (SET: members comma-separated)
//!  JSON                           string, Parquet logical type JSON
//!  BINARY, VARBINARY, BLOB        binary
//!  DATE                           date32
//!  TIME                           duration[µs] (MySQL TIME spans -838:59:59..838:59:59)
//!  DATETIME                       timestamp[µs] without zone
//!  TIMESTAMP                      timestamp[µs, UTC]
//!  BIT(n ≤ 64)                    uint64;  wider: binary (big-endian bits)
//!  YEAR                           int16
//!  UUID                           fixed_size_binary(16), Parquet logical type UUID
//!  INTERVAL, other types          string (PostgreSQL's text form)
//!  arrays                         string (the JSON lines form: a JSON array)
//!  (upsert) __deleted             bool
//! ```
//!
//! A value a column's Parquet type cannot hold (a zero date, PostgreSQL's `infinity` dates, a
//! timestamp past what 64-bit microseconds count, a DECIMAL value wider than its declared
//! precision) makes its change dirty data, with the column and the value named.

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Decimal256Builder, DurationMicrosecondBuilder,
    FixedSizeBinaryBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, Int8Builder,
    StringBuilder, TimestampMicrosecondBuilder, UInt16Builder, UInt32Builder, UInt64Builder, UInt8Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_buffer::i256;
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use ferry_operators::schema::{ColumnType, TableSchema};
use ferry_operators::{Row, Value};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::sync::Arc;

/// Rows per row group: large enough for column readers, bounded by the part size anyway.
const ROW_GROUP_ROWS: usize = 1 << 20;

/// The Arrow type a column is written as.
pub fn arrow_type(ty: &ColumnType) -> DataType {
    match ty {
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Int { bits, unsigned: false } => match bits {
            8 => DataType::Int8,
            16 => DataType::Int16,
            24 | 32 => DataType::Int32,
            _ => DataType::Int64,
        },
        ColumnType::Int { bits, unsigned: true } => match bits {
            8 => DataType::UInt8,
            16 => DataType::UInt16,
            24 | 32 => DataType::UInt32,
            _ => DataType::UInt64,
        },
        ColumnType::Float => DataType::Float32,
        ColumnType::Double => DataType::Float64,
        ColumnType::Decimal { precision: p @ 1..=38, scale } => DataType::Decimal128(*p, *scale as i8),
        ColumnType::Decimal { precision: p @ 39..=76, scale } => DataType::Decimal256(*p, *scale as i8),
        ColumnType::Bytes { .. } => DataType::Binary,
        ColumnType::Bit { width } if *width <= 64 => DataType::UInt64,
        ColumnType::Bit { .. } => DataType::Binary,
        ColumnType::Date => DataType::Date32,
        ColumnType::Time { .. } => DataType::Duration(TimeUnit::Microsecond),
        ColumnType::DateTime { .. } => DataType::Timestamp(TimeUnit::Microsecond, None),
        ColumnType::Timestamp { .. } => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ColumnType::Year => DataType::Int16,
        ColumnType::Uuid => DataType::FixedSizeBinary(16),
        _ => DataType::Utf8,
    }
}

fn field(name: &str, ty: &ColumnType) -> Field {
    let f = Field::new(name, arrow_type(ty), true);
    match ty {
        ColumnType::Json => f.with_extension_type(arrow_schema::extension::Json::default()),
        ColumnType::Uuid => f.with_extension_type(arrow_schema::extension::Uuid),
        _ => f,
    }
}

/// The Arrow schema of a part of `schema`'s rows (with `__deleted` in upsert mode).
pub fn arrow_schema(schema: &TableSchema, upsert: bool) -> Schema {
    let mut fields: Vec<Field> = schema.columns.iter().map(|c| field(&c.name, &c.ty)).collect();
    if upsert {
        fields.push(Field::new("__deleted", DataType::Boolean, false));
    }
    Schema::new(fields)
}

/// Why a value does not fit its column's Parquet type.
fn unfit(v: &Value, ty: &ColumnType) -> String {
    format!(
        "value {v} ({}) does not fit the Parquet type {} of a {} column",
        v.kind_name(),
        arrow_type(ty),
        ty.sql_name()
    )
}

fn int_of(v: &Value) -> Option<i128> {
    match v {
        Value::Int(i) => Some(*i as i128),
        Value::UInt(u) => Some(*u as i128),
        Value::Year(y) => Some(*y as i128),
        Value::Bool(b) => Some(*b as i128),
        _ => None,
    }
}

/// The unscaled integer of an exact decimal's text at `scale` digits after the point.
fn unscaled(text: &str, scale: u8) -> Option<(bool, String)> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > scale as usize {
        return None;
    }
    let mut s = String::with_capacity(int.len() + scale as usize);
    s.push_str(int);
    s.push_str(frac);
    s.extend(std::iter::repeat_n('0', scale as usize - frac.len()));
    let trimmed = s.trim_start_matches('0');
    Some((neg, if trimmed.is_empty() { "0".into() } else { trimmed.into() }))
}

fn decimal_digits(v: &Value, precision: u8, scale: u8) -> Option<(bool, String)> {
    let text = match v {
        Value::Decimal(t) => t.as_str(),
        _ => return None,
    };
    let (neg, digits) = unscaled(text, scale)?;
    (digits.len() <= precision as usize).then_some((neg, digits))
}

fn bits_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Bit { bytes, .. } if bytes.len() <= 8 => Some(bytes.iter().fold(0u64, |a, b| (a << 8) | *b as u64)),
        Value::UInt(u) => Some(*u),
        _ => None,
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::Text(s) | Value::Json(s) | Value::Enum(s) | Value::Set(s) | Value::Decimal(s) => s.clone(),
        Value::Array(_) => {
            let mut out = Vec::new();
            ferry_operators::json::write_value(v, &mut out);
            String::from_utf8(out).expect("JSON is UTF-8")
        }
        other => other.to_string(),
    }
}

/// Checks that every value of `row` fits its column's Parquet type; the error names the
/// column and the value.
pub fn check_row(schema: &TableSchema, row: &[Value]) -> Result<(), String> {
    for (c, v) in schema.columns.iter().zip(row) {
        if v.is_null() {
            continue;
        }
        let fits = match (&c.ty, v) {
            (ColumnType::Bool, Value::Bool(_)) => true,
            (ColumnType::Int { .. }, _) => {
                let dt = arrow_type(&c.ty);
                int_of(v).is_some_and(|i| match dt {
                    DataType::Int8 => i8::try_from(i).is_ok(),
                    DataType::Int16 => i16::try_from(i).is_ok(),
                    DataType::Int32 => i32::try_from(i).is_ok(),
                    DataType::Int64 => i64::try_from(i).is_ok(),
                    DataType::UInt8 => u8::try_from(i).is_ok(),
                    DataType::UInt16 => u16::try_from(i).is_ok(),
                    DataType::UInt32 => u32::try_from(i).is_ok(),
                    _ => u64::try_from(i).is_ok(),
                })
            }
            (ColumnType::Float, Value::Float(_)) | (ColumnType::Double, Value::Double(_) | Value::Float(_)) => true,
            (ColumnType::Decimal { precision: p @ 1..=76, scale }, _) => decimal_digits(v, *p, *scale).is_some(),
            (ColumnType::Bytes { .. }, Value::Bytes(_)) => true,
            (ColumnType::Bit { width }, _) if *width <= 64 => bits_u64(v).is_some(),
            (ColumnType::Bit { .. }, Value::Bit { .. } | Value::Bytes(_)) => true,
            (ColumnType::Date, Value::Date(d)) => d.to_days().and_then(|d| i32::try_from(d).ok()).is_some(),
            (ColumnType::Time { .. }, Value::Time(_)) => true,
            (ColumnType::DateTime { .. }, Value::DateTime(d)) => d.to_epoch_micros().is_some(),
            (ColumnType::Timestamp { .. }, Value::Timestamp(_)) => true,
            (ColumnType::Year, _) => int_of(v).is_some_and(|i| i16::try_from(i).is_ok()),
            (ColumnType::Uuid, Value::Uuid(_)) => true,
            (ty, _) => arrow_type(ty) == DataType::Utf8,
        };
        if !fits {
            return Err(format!("column `{}`: {}", c.name, unfit(v, &c.ty)));
        }
    }
    Ok(())
}

/// Builds one column of `rows` (values [`check_row`] accepted).
fn column(ty: &ColumnType, rows: &[Row], i: usize) -> ArrayRef {
    macro_rules! build {
        ($builder:expr, $conv:expr) => {{
            let mut b = $builder;
            for r in rows {
                match &r[i] {
                    Value::Null => b.append_null(),
                    v => b.append_option($conv(v)),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    match arrow_type(ty) {
        DataType::Boolean => build!(BooleanBuilder::with_capacity(rows.len()), |v: &Value| match v {
            Value::Bool(b) => Some(*b),
            _ => None,
        }),
        DataType::Int8 => {
            build!(Int8Builder::with_capacity(rows.len()), |v| int_of(v).and_then(|i| i8::try_from(i).ok()))
        }
        DataType::Int16 => {
            build!(Int16Builder::with_capacity(rows.len()), |v| int_of(v).and_then(|i| i16::try_from(i).ok()))
        }
        DataType::Int32 => {
            build!(Int32Builder::with_capacity(rows.len()), |v| int_of(v).and_then(|i| i32::try_from(i).ok()))
        }
        DataType::Int64 => {
            build!(Int64Builder::with_capacity(rows.len()), |v| int_of(v).and_then(|i| i64::try_from(i).ok()))
        }
        DataType::UInt8 => {
            build!(UInt8Builder::with_capacity(rows.len()), |v| int_of(v).and_then(|i| u8::try_from(i).ok()))
        }
        DataType::UInt16 => {
            build!(UInt16Builder::with_capacity(rows.len()), |v| int_of(v).and_then(|i| u16::try_from(i).ok()))
        }
        DataType::UInt32 => {
            build!(UInt32Builder::with_capacity(rows.len()), |v| int_of(v).and_then(|i| u32::try_from(i).ok()))
        }
        DataType::UInt64 => build!(UInt64Builder::with_capacity(rows.len()), |v: &Value| match ty {
            ColumnType::Bit { .. } => bits_u64(v),
            _ => int_of(v).and_then(|i| u64::try_from(i).ok()),
        }),
        DataType::Float32 => build!(Float32Builder::with_capacity(rows.len()), |v: &Value| match v {
            Value::Float(f) => Some(*f),
            _ => None,
        }),
        DataType::Float64 => build!(Float64Builder::with_capacity(rows.len()), |v: &Value| match v {
            Value::Double(f) => Some(*f),
            Value::Float(f) => Some(*f as f64),
            _ => None,
        }),
        DataType::Decimal128(p, s) => {
            let b =
                Decimal128Builder::with_capacity(rows.len()).with_precision_and_scale(p, s).expect("a valid decimal");
            build!(b, |v| decimal_digits(v, p, s as u8).and_then(|(neg, d)| d.parse::<i128>().ok().map(|x| if neg {
                -x
            } else {
                x
            })))
        }
        DataType::Decimal256(p, s) => {
            let b =
                Decimal256Builder::with_capacity(rows.len()).with_precision_and_scale(p, s).expect("a valid decimal");
            build!(b, |v| decimal_digits(v, p, s as u8)
                .and_then(|(neg, d)| { i256::from_string(&d).map(|x| if neg { x.wrapping_neg() } else { x }) }))
        }
        DataType::Binary => build!(BinaryBuilder::with_capacity(rows.len(), 0), |v: &Value| match v {
            Value::Bytes(b) => Some(b.clone()),
            Value::Bit { bytes, .. } => Some(bytes.clone()),
            _ => None,
        }),
        DataType::Date32 => build!(Date32Builder::with_capacity(rows.len()), |v: &Value| match v {
            Value::Date(d) => d.to_days().and_then(|d| i32::try_from(d).ok()),
            _ => None,
        }),
        DataType::Duration(_) => build!(DurationMicrosecondBuilder::with_capacity(rows.len()), |v: &Value| match v {
            Value::Time(t) => Some(*t),
            _ => None,
        }),
        DataType::Timestamp(_, zone) => {
            let b = TimestampMicrosecondBuilder::with_capacity(rows.len()).with_timezone_opt(zone);
            build!(b, |v: &Value| match v {
                Value::Timestamp(t) => Some(*t),
                Value::DateTime(d) => d.to_epoch_micros(),
                _ => None,
            })
        }
        DataType::FixedSizeBinary(_) => {
            let mut b = FixedSizeBinaryBuilder::with_capacity(rows.len(), 16);
            for r in rows {
                match &r[i] {
                    Value::Uuid(u) => b.append_value(u).expect("16 bytes"),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        _ => build!(StringBuilder::with_capacity(rows.len(), 0), |v: &Value| Some(text_of(v))),
    }
}

/// Rows a part keeps as values before it encodes them into its file's row group.
const ENCODE_ROWS: usize = 8192;

/// One Parquet file being written: rows are kept as values until [`ENCODE_ROWS`] of them are
/// there, then encoded (compressed pages in memory), so a part holds little more than its
/// encoded size however many rows it gets.
pub struct PartEncoder {
    schema: Arc<TableSchema>,
    arrow: Arc<Schema>,
    upsert: bool,
    writer: ArrowWriter<Vec<u8>>,
    rows: Vec<Row>,
    deleted: Vec<bool>,
    buffered: usize,
    /// An encoding error, returned by [`PartEncoder::finish`] (rows stay buffered meanwhile).
    failed: Option<String>,
}

impl PartEncoder {
    /// A file for rows of `schema` (`upsert`: with the `__deleted` column).
    pub fn new(schema: Arc<TableSchema>, upsert: bool) -> Result<Self, String> {
        let arrow = Arc::new(arrow_schema(&schema, upsert));
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_created_by(format!("ferry {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = ArrowWriter::try_new(Vec::new(), arrow.clone(), Some(props)).map_err(|e| e.to_string())?;
        Ok(PartEncoder {
            schema,
            arrow,
            upsert,
            writer,
            rows: Vec::new(),
            deleted: Vec::new(),
            buffered: 0,
            failed: None,
        })
    }

    /// The schema of the file's rows.
    pub fn schema(&self) -> &Arc<TableSchema> {
        &self.schema
    }

    /// Adds a row ([`check_row`] accepted it). Never fails: an encoding error (which a
    /// checked row cannot cause) is kept for [`PartEncoder::finish`].
    pub fn push(&mut self, row: Row, deleted: bool) {
        self.buffered += row.iter().map(value_size).sum::<usize>();
        self.rows.push(row);
        self.deleted.push(deleted);
        if self.rows.len() >= ENCODE_ROWS && self.failed.is_none() {
            if let Err(e) = self.encode() {
                self.failed = Some(e);
            }
        }
    }

    fn encode(&mut self) -> Result<(), String> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let mut cols: Vec<ArrayRef> =
            self.schema.columns.iter().enumerate().map(|(i, c)| column(&c.ty, &self.rows, i)).collect();
        if self.upsert {
            cols.push(Arc::new(arrow_array::BooleanArray::from(self.deleted.clone())));
        }
        let batch = RecordBatch::try_new(self.arrow.clone(), cols).map_err(|e| e.to_string())?;
        self.writer.write(&batch).map_err(|e| e.to_string())?;
        self.rows.clear();
        self.deleted.clear();
        self.buffered = 0;
        Ok(())
    }

    /// The file's size so far: encoded bytes and an estimate of the rows not encoded yet.
    pub fn size(&self) -> usize {
        self.writer.bytes_written() + self.writer.in_progress_size() + self.buffered
    }

    /// The whole file.
    pub fn finish(mut self) -> Result<Vec<u8>, String> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        self.encode()?;
        self.writer.into_inner().map_err(|e| e.to_string())
    }
}

/// Reads the rows of a Parquet file this module wrote, as values of `schema`'s columns (a
/// column the file lacks reads as NULL), each with its `__deleted` flag (`false` without one).
pub fn read_rows(data: bytes::Bytes, schema: &TableSchema) -> Result<Vec<(Row, bool)>, String> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::*;
    use arrow_array::Array;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let reader = ParquetRecordBatchReaderBuilder::try_new(data).and_then(|b| b.build()).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        let cols: Vec<Option<&ArrayRef>> = schema.columns.iter().map(|c| batch.column_by_name(&c.name)).collect();
        let deleted = batch.column_by_name("__deleted").map(|a| a.as_boolean().clone());
        for i in 0..batch.num_rows() {
            let mut row = Vec::with_capacity(cols.len());
            for (c, col) in schema.columns.iter().zip(&cols) {
                let Some(a) = col.filter(|a| !a.is_null(i)) else {
                    row.push(Value::Null);
                    continue;
                };
                let bad = |e: String| format!("column `{}` row {i}: {e}", c.name);
                let v = match (a.data_type(), &c.ty) {
                    (DataType::Boolean, _) => Value::Bool(a.as_boolean().value(i)),
                    (DataType::Int8, _) => Value::Int(a.as_primitive::<Int8Type>().value(i) as i64),
                    (DataType::Int16, ColumnType::Year) => Value::Year(a.as_primitive::<Int16Type>().value(i) as u16),
                    (DataType::Int16, _) => Value::Int(a.as_primitive::<Int16Type>().value(i) as i64),
                    (DataType::Int32, _) => Value::Int(a.as_primitive::<Int32Type>().value(i) as i64),
                    (DataType::Int64, _) => Value::Int(a.as_primitive::<Int64Type>().value(i)),
                    (DataType::UInt8, _) => Value::UInt(a.as_primitive::<UInt8Type>().value(i) as u64),
                    (DataType::UInt16, _) => Value::UInt(a.as_primitive::<UInt16Type>().value(i) as u64),
                    (DataType::UInt32, _) => Value::UInt(a.as_primitive::<UInt32Type>().value(i) as u64),
                    (DataType::UInt64, ColumnType::Bit { width }) => {
                        let x = a.as_primitive::<UInt64Type>().value(i);
                        let n = (*width as usize).div_ceil(8);
                        Value::Bit { width: *width, bytes: x.to_be_bytes()[8 - n..].to_vec() }
                    }
                    (DataType::UInt64, _) => Value::UInt(a.as_primitive::<UInt64Type>().value(i)),
                    (DataType::Float32, _) => Value::Float(a.as_primitive::<Float32Type>().value(i)),
                    (DataType::Float64, _) => Value::Double(a.as_primitive::<Float64Type>().value(i)),
                    (DataType::Decimal128(..), _) => {
                        Value::Decimal(a.as_primitive::<Decimal128Type>().value_as_string(i))
                    }
                    (DataType::Decimal256(..), _) => {
                        Value::Decimal(a.as_primitive::<Decimal256Type>().value_as_string(i))
                    }
                    (DataType::Binary, ColumnType::Bit { width }) => {
                        Value::Bit { width: *width, bytes: a.as_binary::<i32>().value(i).to_vec() }
                    }
                    (DataType::Binary, _) => Value::Bytes(a.as_binary::<i32>().value(i).to_vec()),
                    (DataType::Date32, _) => Value::Date(ferry_operators::value::Date::from_days(
                        a.as_primitive::<Date32Type>().value(i) as i64,
                    )),
                    (DataType::Duration(_), _) => Value::Time(a.as_primitive::<DurationMicrosecondType>().value(i)),
                    (DataType::Timestamp(_, None), _) => {
                        Value::DateTime(ferry_operators::value::DateTime::from_epoch_micros(
                            a.as_primitive::<TimestampMicrosecondType>().value(i),
                        ))
                    }
                    (DataType::Timestamp(_, Some(_)), _) => {
                        Value::Timestamp(a.as_primitive::<TimestampMicrosecondType>().value(i))
                    }
                    (DataType::FixedSizeBinary(16), _) => {
                        let b = a.as_fixed_size_binary().value(i);
                        Value::Uuid(b.try_into().map_err(|_| bad("not 16 bytes".into()))?)
                    }
                    (DataType::Utf8, ty) => {
                        let s = a.as_string::<i32>().value(i);
                        match ty {
                            ColumnType::Json => Value::Json(s.to_string()),
                            ColumnType::Array { .. } => {
                                let j: serde_json::Value = serde_json::from_str(s).map_err(|e| bad(e.to_string()))?;
                                ferry_operators::json::read_value(&j, ty).map_err(bad)?
                            }
                            _ => ferry_operators::json::read_value(&serde_json::Value::String(s.into()), ty)
                                .map_err(bad)?,
                        }
                    }
                    (other, ty) => return Err(bad(format!("a {other} column for a {} column", ty.sql_name()))),
                };
                row.push(v);
            }
            out.push((row, deleted.as_ref().is_some_and(|d| d.value(i))));
        }
    }
    Ok(out)
}

/// An estimate of a value's size in memory, for the part size bound.
pub fn value_size(v: &Value) -> usize {
    std::mem::size_of::<Value>()
        + match v {
            Value::Text(s) | Value::Json(s) | Value::Enum(s) | Value::Set(s) | Value::Decimal(s) => s.capacity(),
            Value::Bytes(b) | Value::Bit { bytes: b, .. } => b.capacity(),
            _ => 0,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_decimal_text_becomes_its_unscaled_integer_at_the_column_scale() {
        assert_eq!(unscaled("12.5", 3), Some((false, "12500".into())));
        assert_eq!(unscaled("-0.001", 3), Some((true, "1".into())));
        assert_eq!(unscaled("0", 2), Some((false, "0".into())));
        assert_eq!(unscaled("1.2345", 3), None, "more fraction digits than the scale");
        assert_eq!(unscaled("NaN", 2), None);
        assert_eq!(unscaled("", 2), None);
    }

    #[test]
    fn a_zero_date_and_an_overwide_decimal_are_refused_naming_the_column() {
        use ferry_operators::schema::Column;
        let schema = TableSchema {
            name: ferry_operators::TableName::new("d", "t"),
            columns: vec![
                Column::new("d", ColumnType::Date, true),
                Column::new("n", ColumnType::Decimal { precision: 4, scale: 2 }, true),
            ],
            primary_key: vec![],
            unique_keys: vec![],
            version: 1,
        };
        let zero = Value::Date(ferry_operators::value::Date { year: 0, month: 0, day: 0 });
        let err = check_row(&schema, &[zero, Value::Null]).unwrap_err();
        assert!(err.contains("column `d`") && err.contains("Date32"), "{err}");
        let err = check_row(&schema, &[Value::Null, Value::Decimal("123.4".into())]).unwrap_err();
        assert!(err.contains("column `n`") && err.contains("123.4"), "{err}");
        assert!(check_row(&schema, &[Value::Null, Value::Decimal("-12.34".into())]).is_ok());
    }

    #[test]
    fn a_part_encodes_its_rows_in_batches_and_reads_back_with_its_deleted_flags() {
        let schema = Arc::new(schema_of_ids());
        let mut part = PartEncoder::new(schema, true).unwrap();
        for i in 0..(ENCODE_ROWS as i64 * 2 + 5) {
            part.push(vec![Value::Int(i)], i % 2 == 0);
        }
        // Two batches were encoded; five rows wait as values.
        assert!(part.rows.len() == 5 && part.size() > 0);
        let file = part.finish().unwrap();
        assert_eq!(&file[..4], b"PAR1");
        let back = read_rows(file.into(), &schema_of_ids()).unwrap();
        assert_eq!(back.len(), ENCODE_ROWS * 2 + 5);
        assert!(back.iter().enumerate().all(|(i, (r, d))| r == &vec![Value::Int(i as i64)] && *d == (i % 2 == 0)));
    }

    fn schema_of_ids() -> TableSchema {
        use ferry_operators::schema::Column;
        TableSchema {
            name: ferry_operators::TableName::new("d", "t"),
            columns: vec![Column::new("id", ColumnType::Int { bits: 64, unsigned: false }, false)],
            primary_key: vec![0],
            unique_keys: vec![],
            version: 1,
        }
    }

    proptest! {
        #[test]
        fn unscaled_digits_and_scale_give_back_the_number(int in 0u64..1_000_000_000, frac in 0u32..10_000, neg: bool) {
            let text = format!("{}{int}.{frac:04}", if neg { "-" } else { "" });
            let (n, digits) = unscaled(&text, 6).unwrap();
            let back = digits.parse::<i128>().unwrap();
            let want = int as i128 * 1_000_000 + frac as i128 * 100;
            prop_assert_eq!(back, want);
            prop_assert_eq!(n, neg);
        }
    }
}
