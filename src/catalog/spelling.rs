//! MySQL/MariaDB type spellings (`information_schema.COLUMNS.COLUMN_TYPE`, and the types a
//! DDL statement names) as record-model types: the MySQL source's discovery and the catalog's
//! schema-change DDL both read them.

use ferry_operators::schema::ColumnType;

/// Maps an `information_schema.COLUMNS` row to a [`ColumnType`].
///
/// `data_type` is `DATA_TYPE` (`bigint`, `varchar`, ...), `column_type` is `COLUMN_TYPE`
/// (`bigint(20) unsigned`, `enum('a','b''c')`, `datetime(6)`), `charset` is
/// `CHARACTER_SET_NAME` (`None` for non-character columns). Character types with charset `binary`
/// become `Bytes`. MariaDB `JSON` columns are reported as `longtext`: pass `data_type = "json"` for
/// them (a `json_valid(col)` CHECK constraint marks them) to get [`ColumnType::Json`]. MariaDB's
/// `inet4`, `inet6` and `uuid` are [`ColumnType::Other`] with that name: their values are text
/// (the snapshot reads their text form).
pub fn parse_column_type(data_type: &str, column_type: &str, charset: Option<&str>) -> Result<ColumnType, String> {
    let dt = data_type.trim().to_ascii_lowercase();
    let ct = column_type.trim();
    let ct_lower = ct.to_ascii_lowercase();
    let unsigned = ct_lower.contains("unsigned") || ct_lower.contains("zerofill");
    let binary = charset.is_some_and(|c| c.eq_ignore_ascii_case("binary"));
    let args = || paren_args(&ct_lower);
    let first_arg = |default: u32| -> Result<u32, String> {
        match args().first() {
            Some(a) => a.trim().parse::<u32>().map_err(|_| format!("bad length in column type `{column_type}`")),
            None => Ok(default),
        }
    };
    let fsp = || -> Result<u8, String> {
        let f = first_arg(0)?;
        if f > 6 {
            return Err(format!("fractional seconds above 6 in `{column_type}`"));
        }
        Ok(f as u8)
    };
    let int = |bits: u8| Ok(ColumnType::Int { bits, unsigned });
    match dt.as_str() {
        "tinyint" | "bool" | "boolean" => int(8),
        "smallint" => int(16),
        "mediumint" => int(24),
        "int" | "integer" => int(32),
        "bigint" => int(64),
        "decimal" | "numeric" | "dec" | "fixed" => {
            let a = args();
            let p = a.first().map(|s| s.trim().parse::<u8>()).transpose().map_err(|_| bad(column_type))?.unwrap_or(10);
            let s = a.get(1).map(|s| s.trim().parse::<u8>()).transpose().map_err(|_| bad(column_type))?.unwrap_or(0);
            if p == 0 || p > 65 || s > 30 || s > p {
                return Err(format!("decimal precision/scale out of range in `{column_type}`"));
            }
            Ok(ColumnType::Decimal { precision: p, scale: s })
        }
        "float" => Ok(ColumnType::Float),
        "double" | "double precision" | "real" => Ok(ColumnType::Double),
        "char" | "varchar" => {
            let n = first_arg(1)?;
            let fixed = dt == "char";
            if binary {
                Ok(ColumnType::Bytes { max_len: Some(n), fixed })
            } else {
                Ok(ColumnType::String { max_chars: Some(n), fixed })
            }
        }
        "binary" | "varbinary" => Ok(ColumnType::Bytes { max_len: Some(first_arg(1)?), fixed: dt == "binary" }),
        "tinytext" | "text" | "mediumtext" | "longtext" | "long" | "long varchar" => {
            if binary {
                Ok(ColumnType::Bytes { max_len: None, fixed: false })
            } else {
                Ok(ColumnType::String { max_chars: None, fixed: false })
            }
        }
        "tinyblob" | "blob" | "mediumblob" | "longblob" | "long varbinary" => {
            Ok(ColumnType::Bytes { max_len: None, fixed: false })
        }
        "date" => Ok(ColumnType::Date),
        "time" => Ok(ColumnType::Time { fsp: fsp()? }),
        "datetime" => Ok(ColumnType::DateTime { fsp: fsp()? }),
        "timestamp" => Ok(ColumnType::Timestamp { fsp: fsp()? }),
        "year" => Ok(ColumnType::Year),
        "json" => Ok(ColumnType::Json),
        "enum" => Ok(ColumnType::Enum { values: parse_quoted_list(ct)? }),
        "set" => Ok(ColumnType::Set { values: parse_quoted_list(ct)? }),
        "bit" => {
            let w = first_arg(1)?;
            if w == 0 || w > 64 {
                return Err(format!("bit width out of range in `{column_type}`"));
            }
            Ok(ColumnType::Bit { width: w })
        }
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring" | "multipolygon"
        | "geometrycollection" | "geomcollection" | "vector" => Ok(ColumnType::Bytes { max_len: None, fixed: false }),
        "inet4" | "inet6" | "uuid" => Ok(ColumnType::Other { name: dt }),
        _ => Err(format!("unsupported MySQL/MariaDB column type `{column_type}` (DATA_TYPE `{data_type}`)")),
    }
}

fn bad(column_type: &str) -> String {
    format!("bad precision or scale in column type `{column_type}`")
}

/// The comma-separated arguments inside the first parentheses (not for enum/set lists).
fn paren_args(ct: &str) -> Vec<String> {
    match (ct.find('('), ct.find(')')) {
        (Some(a), Some(b)) if b > a => ct[a + 1..b].split(',').map(|s| s.to_string()).collect(),
        _ => Vec::new(),
    }
}

/// Parses `enum('a','b''c')` / `set(...)` members; `''` is a quote inside a member.
fn parse_quoted_list(column_type: &str) -> Result<Vec<String>, String> {
    let start = column_type.find('(').ok_or_else(|| format!("no member list in `{column_type}`"))?;
    let body = &column_type[start + 1..];
    let mut out = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        match chars.next() {
            Some('\'') => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            s.push('\'');
                        }
                        Some('\'') => break,
                        Some(c) => s.push(c),
                        None => return Err(format!("unterminated member in `{column_type}`")),
                    }
                }
                out.push(s);
            }
            Some(',') | Some(' ') => {}
            Some(')') => return Ok(out),
            _ => return Err(format!("malformed member list in `{column_type}`")),
        }
    }
}
