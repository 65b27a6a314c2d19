//! Type mapping: a source column's type in each target dialect, and the type-loss report —
//! what of the column's values cannot survive the trip, said before anything runs.
//!
//! One function per dialect ([`mysql`], [`postgres`], [`doris`]); `ARCHITECTURE.md` has the
//! same table for readers. A MySQL-family column copied into the MySQL family keeps the
//! source's own spelling (`COLUMN_TYPE`), character set and collation, so nothing is lost;
//! columns of generated sources (no spelling) and PostgreSQL sources map from the record
//! model's [`ColumnType`].
//!
//! Loss kinds: [`LossKind::Refused`] values are refused by the target and go to the dirty
//! archive (with the write-error policy); [`LossKind::Changed`] values arrive in another form;
//! [`LossKind::Note`] is about the table's definition (a default or auto-increment that the
//! dialect cannot take), never about values.

use super::{ColumnDetail, DdlDialect};
use ferry_operators::{Column, ColumnType};
use serde::Serialize;

/// How a column's values fare in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// Some values are refused by the target: they become dirty rows.
    Refused,
    /// Some values arrive in another form.
    Changed,
    /// The definition loses something (a default, auto-increment); values are unaffected.
    Note,
}

/// One line of the type-loss report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Loss {
    /// Its kind.
    pub kind: LossKind,
    /// What happens, e.g. "zero dates (0000-00-00) are refused".
    pub what: String,
}

/// A column as the mapping sees it.
#[derive(Debug, Clone, Copy)]
pub struct ColumnIn<'a> {
    /// The target column (name, record-model type, nullability).
    pub column: &'a Column,
    /// The source column's details (`None`: an added or metadata column, or a generated source).
    pub detail: Option<&'a ColumnDetail>,
    /// The source character set of a text column.
    pub charset: Option<&'a str>,
    /// The source collation of a text column.
    pub collation: Option<&'a str>,
    /// Whether the column is part of the target table's key.
    pub key: bool,
}

/// A column's type in a dialect, with what cannot survive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    /// The type (with character set and collation where the dialect has them per column).
    pub sql: String,
    /// The type-loss lines of this column.
    pub losses: Vec<Loss>,
}

impl Mapped {
    fn plain(sql: impl Into<String>) -> Mapped {
        Mapped { sql: sql.into(), losses: Vec::new() }
    }
    fn with(mut self, kind: LossKind, what: impl Into<String>) -> Mapped {
        self.losses.push(Loss { kind, what: what.into() });
        self
    }
}

/// The column's type in `dialect`.
pub fn map(dialect: DdlDialect, c: ColumnIn<'_>) -> Mapped {
    match dialect {
        DdlDialect::Mysql | DdlDialect::Mariadb => mysql(dialect, c),
        DdlDialect::Postgres => postgres(c),
        DdlDialect::Doris => doris(c),
    }
}

const ZERO_DATES: &str = "zero dates (0000-00-00) and dates with a zero month or day are refused";

fn enum_list(values: &[String]) -> String {
    values.iter().map(|m| format!("'{}'", m.replace('\\', "\\\\").replace('\'', "''"))).collect::<Vec<_>>().join(",")
}

/// The MySQL family: the source's spelling when it has one, else from the record model.
pub fn mysql(dialect: DdlDialect, c: ColumnIn<'_>) -> Mapped {
    use ColumnType as T;
    let mariadb = dialect == DdlDialect::Mariadb;
    let ty = &c.column.ty;
    // MariaDB-only types into MySQL servers become text.
    if let T::Other { name } = ty {
        let base = name.split('(').next().unwrap_or("").to_ascii_lowercase();
        let text = match base.as_str() {
            "uuid" => Some("CHAR(36)"),
            "inet6" => Some("VARCHAR(45)"),
            "inet4" => Some("VARCHAR(15)"),
            _ => None,
        };
        match (mariadb, text, c.detail.and_then(|d| d.source_type.as_deref())) {
            (true, _, Some(src)) => return Mapped::plain(src),
            (false, Some(t), _) => {
                return Mapped::plain(t).with(LossKind::Changed, format!("MariaDB `{name}` values arrive as text"))
            }
            _ => {}
        }
    }
    if let (Some(src), false) = (c.detail.and_then(|d| d.source_type.as_deref()), matches!(ty, T::Json)) {
        let mut sql = src.to_string();
        if let (Some(cs), Some(coll)) = (c.charset, c.collation) {
            if !cs.eq_ignore_ascii_case("binary") {
                sql.push_str(&format!(" CHARACTER SET {cs} COLLATE {coll}"));
            }
        }
        let m = Mapped::plain(sql);
        // ferry writes in strict mode: the server refuses the error value there.
        return if matches!(ty, T::Enum { values } if !values.iter().any(String::is_empty)) {
            m.with(
                LossKind::Refused,
                "the empty error value '' (an invalid member a non-strict server stored) is refused",
            )
        } else {
            m
        };
    }
    let m = Mapped::plain(match ty {
        T::Bool => "BOOLEAN".into(),
        T::Int { .. } | T::Float | T::Double => ty.sql_name(),
        T::Decimal { precision: 0, .. } => {
            let m = Mapped::plain("DECIMAL(65,30)").with(
                LossKind::Refused,
                "numbers beyond 35 integer digits are refused; digits beyond 30 after the point are rounded",
            );
            return if c.detail.is_some_and(|d| d.source_type.is_none()) {
                m.with(LossKind::Refused, "NaN and ±Infinity are refused")
            } else {
                m
            };
        }
        T::Decimal { precision, scale } if c.detail.is_some_and(|d| d.source_type.is_none()) => {
            return Mapped::plain(format!("DECIMAL({precision},{scale})"))
                .with(LossKind::Refused, "NaN and ±Infinity are refused")
        }
        T::Decimal { precision, scale } => format!("DECIMAL({precision},{scale})"),
        T::String { max_chars: Some(n), fixed: true } if *n <= 255 => format!("CHAR({n})"),
        T::String { max_chars: Some(n), .. } if *n <= 16_383 => format!("VARCHAR({n})"),
        T::String { .. } => "LONGTEXT".into(),
        T::Bytes { max_len: Some(n), fixed: true } if *n <= 255 => format!("BINARY({n})"),
        T::Bytes { max_len: Some(n), .. } if *n <= 65_532 => format!("VARBINARY({n})"),
        T::Bytes { .. } => "LONGBLOB".into(),
        T::Date => "DATE".into(),
        T::Time { fsp } => format!("TIME({fsp})"),
        T::DateTime { fsp } => format!("DATETIME({fsp})"),
        T::Timestamp { fsp } => format!("TIMESTAMP({fsp})"),
        T::Json => "JSON".into(),
        T::Enum { values } => format!("ENUM({})", enum_list(values)),
        T::Set { values } => format!("SET({})", enum_list(values)),
        T::Bit { width } if *width <= 64 => format!("BIT({width})"),
        T::Bit { .. } => {
            return Mapped::plain("LONGTEXT").with(LossKind::Changed, "bit strings longer than 64 arrive as text")
        }
        T::Year => "YEAR".into(),
        T::Uuid => "CHAR(36)".into(),
        T::Interval | T::Array { .. } | T::Other { .. } => {
            return Mapped::plain("LONGTEXT")
                .with(LossKind::Changed, format!("{} values arrive as text", ty.sql_name()))
        }
    });
    // Values a PostgreSQL source has and the MySQL family does not (a source column with
    // details but no MySQL spelling).
    let pg_source = c.detail.is_some_and(|d| d.source_type.is_none());
    let m = match ty {
        T::Float | T::Double if pg_source => m.with(LossKind::Refused, "NaN and ±Infinity are refused"),
        T::Date | T::DateTime { .. } if pg_source => {
            m.with(LossKind::Refused, "infinity, -infinity and years before 1 AD or after 9999 are refused")
        }
        T::Timestamp { .. } if pg_source => m.with(
            LossKind::Refused,
            "infinity, -infinity and instants outside TIMESTAMP's range (1970-01-01 to 2038-01-19 UTC) are refused",
        ),
        _ => m,
    };
    if matches!(ty, T::Json) && !mariadb && c.detail.is_some() {
        m.with(LossKind::Changed, "MySQL stores JSON normalized: key order and spacing may change")
    } else {
        m
    }
}

/// PostgreSQL.
pub fn postgres(c: ColumnIn<'_>) -> Mapped {
    use ColumnType as T;
    let ty = &c.column.ty;
    // A MySQL-family source column (it has its MySQL spelling): its own types' rules apply.
    let mysql_source = c.detail.is_some_and(|d| d.source_type.is_some());
    match ty {
        T::Bool => Mapped::plain("boolean"),
        T::Int { bits, unsigned } => Mapped::plain(match (bits, unsigned) {
            (8, _) | (16, false) => "smallint",
            (16, true) | (24, _) | (32, false) => "integer",
            (32, true) | (64, false) => "bigint",
            _ => "numeric(20,0)",
        }),
        T::Float => Mapped::plain("real"),
        T::Double => Mapped::plain("double precision"),
        T::Decimal { precision: 0, .. } => Mapped::plain("numeric"),
        T::Decimal { precision, scale } => Mapped::plain(format!("numeric({precision},{scale})")),
        T::String { max_chars, fixed } => Mapped::plain(match (max_chars, fixed) {
            (Some(n), true) => format!("char({n})"),
            (Some(n), false) => format!("varchar({n})"),
            (None, _) => "text".into(),
        })
        .with(LossKind::Refused, "text containing the NUL character (U+0000) is refused"),
        T::Bytes { .. } => Mapped::plain("bytea"),
        T::Date => Mapped::plain("date").with(LossKind::Refused, ZERO_DATES),
        T::Time { fsp } => Mapped::plain(format!("time({fsp})"))
            .with(LossKind::Refused, "negative times and times of 24:00:00 or more are refused"),
        T::DateTime { fsp } => Mapped::plain(format!("timestamp({fsp})")).with(LossKind::Refused, ZERO_DATES),
        T::Timestamp { fsp } => {
            let m = Mapped::plain(format!("timestamptz({fsp})"));
            if mysql_source {
                m.with(LossKind::Changed, "the zero TIMESTAMP (0000-00-00 00:00:00) arrives as 1970-01-01 00:00:00+00")
            } else {
                m
            }
        }
        T::Json => Mapped::plain("json"),
        T::Enum { .. } | T::Set { .. } => Mapped::plain("text"),
        T::Bit { width } => Mapped::plain(format!("bit({width})")),
        T::Year => Mapped::plain("smallint"),
        T::Interval => Mapped::plain("interval"),
        T::Uuid => Mapped::plain("uuid"),
        T::Array { element } => {
            let inner = postgres(ColumnIn { column: &Column::new("", (**element).clone(), true), ..c });
            Mapped { sql: format!("{}[]", inner.sql), losses: inner.losses }
        }
        T::Other { name } => {
            let base = name.split('(').next().unwrap_or("").to_ascii_lowercase();
            match (base.as_str(), mysql_source) {
                ("uuid", true) => Mapped::plain("uuid"),
                ("inet4" | "inet6", true) => Mapped::plain("inet"),
                (_, true) => Mapped::plain("text").with(LossKind::Changed, format!("`{name}` values arrive as text")),
                (_, false) => Mapped::plain(name.clone()),
            }
        }
    }
}

/// Bytes one character of `charset` takes in UTF-8, at most (Doris sizes VARCHAR in bytes).
fn utf8_bytes_per_char(charset: Option<&str>) -> u64 {
    match charset.map(|c| c.to_ascii_lowercase()) {
        Some(c) if c == "ascii" || c == "binary" => 1,
        Some(c) if c == "utf8mb3" || c == "utf8" || c == "ucs2" => 3,
        None => 4,
        Some(c) if c.starts_with("utf8mb4") || c.starts_with("utf16") || c == "utf32" || c == "gb18030" => 4,
        // Single- and double-byte charsets: every character they have is at most 3 bytes in UTF-8.
        Some(_) => 3,
    }
}

/// Doris VARCHAR's limit in bytes.
const DORIS_VARCHAR_MAX: u64 = 65_533;

/// Apache Doris (and StarRocks): byte-sized strings, no TIME, no unsigned types, DECIMAL up to
/// 38 digits.
pub fn doris(c: ColumnIn<'_>) -> Mapped {
    use ColumnType as T;
    let ty = &c.column.ty;
    let text = |bytes: u64| -> Mapped {
        if bytes <= DORIS_VARCHAR_MAX {
            Mapped::plain(format!("VARCHAR({})", bytes.max(1)))
        } else if c.key {
            Mapped::plain(format!("VARCHAR({DORIS_VARCHAR_MAX})"))
                .with(LossKind::Refused, "key values longer than 65533 bytes are refused")
        } else {
            Mapped::plain("STRING")
        }
    };
    match ty {
        T::Bool => Mapped::plain("BOOLEAN"),
        T::Int { bits, unsigned } => Mapped::plain(match (bits, unsigned) {
            (8, false) => "TINYINT",
            (8, true) | (16, false) => "SMALLINT",
            (16, true) | (24, _) | (32, false) => "INT",
            (32, true) | (64, false) => "BIGINT",
            _ => "LARGEINT",
        }),
        T::Float => Mapped::plain("FLOAT"),
        T::Double => Mapped::plain("DOUBLE"),
        T::Decimal { precision, scale } if *precision > 0 && *precision <= 38 => {
            Mapped::plain(format!("DECIMAL({precision},{scale})"))
        }
        T::Decimal { .. } => {
            text(80).with(LossKind::Changed, "exact decimals arrive as text: Doris DECIMAL has at most 38 digits")
        }
        T::String { max_chars: Some(n), fixed } => {
            let bytes = u64::from(*n) * utf8_bytes_per_char(c.charset);
            if *fixed && bytes <= 255 {
                Mapped::plain(format!("CHAR({})", bytes.max(1)))
            } else {
                text(bytes)
            }
        }
        T::String { max_chars: None, .. } => text(u64::MAX),
        T::Bytes { max_len, .. } => text(max_len.map(|n| u64::from(n) * 2).unwrap_or(u64::MAX))
            .with(LossKind::Changed, "bytes arrive in a text column: bytes that are not UTF-8 may be replaced"),
        T::Date => Mapped::plain("DATE").with(LossKind::Refused, ZERO_DATES),
        T::Time { .. } => Mapped::plain("VARCHAR(20)")
            .with(LossKind::Changed, "times arrive as text (`-838:59:59.000000`): Doris has no TIME column type"),
        T::DateTime { fsp } => Mapped::plain(format!("DATETIME({fsp})")).with(LossKind::Refused, ZERO_DATES),
        T::Timestamp { fsp } => Mapped::plain(format!("DATETIME({fsp})"))
            .with(LossKind::Changed, "instants arrive as their UTC date and time: Doris has no time-zone type"),
        T::Json => Mapped::plain("JSON"),
        T::Enum { values } => text(values.iter().map(|v| v.len() as u64).max().unwrap_or(1) * 4),
        T::Set { values } => text(values.iter().map(|v| v.len() as u64 + 1).sum::<u64>() * 4),
        T::Bit { width } if *width < 64 => {
            Mapped::plain("BIGINT").with(LossKind::Changed, "bit strings arrive as their unsigned integer value")
        }
        T::Bit { width } if *width == 64 => {
            Mapped::plain("LARGEINT").with(LossKind::Changed, "bit strings arrive as their unsigned integer value")
        }
        T::Bit { .. } => text(u64::MAX).with(LossKind::Changed, "bit strings arrive as text"),
        T::Year => Mapped::plain("SMALLINT"),
        T::Uuid => Mapped::plain("VARCHAR(36)"),
        T::Interval | T::Array { .. } | T::Other { .. } => {
            text(u64::MAX).with(LossKind::Changed, format!("{} values arrive as text", ty.sql_name()))
        }
    }
}

/// A default of the source (`detail.default`, MySQL dialect) in `dialect`: `Ok(None)` for no
/// default, `Err(note)` when the dialect cannot take it (the DDL leaves it out).
pub fn default(dialect: DdlDialect, column: &Column, source: &str) -> Result<Option<String>, String> {
    let s = source.trim();
    let lower = s.to_ascii_lowercase();
    if matches!(dialect, DdlDialect::Mysql | DdlDialect::Mariadb) {
        return Ok(Some(s.to_string()));
    }
    let is_literal_number = !s.is_empty() && s.parse::<f64>().is_ok();
    let quoted = s.len() >= 2 && s.starts_with('\'') && s.ends_with('\'');
    if lower.starts_with("current_timestamp") || lower == "now()" || lower.starts_with("now(") {
        return Ok(Some("CURRENT_TIMESTAMP".into()));
    }
    if is_literal_number {
        return match (&column.ty, dialect) {
            (ColumnType::Bool, DdlDialect::Postgres) => Ok(Some(if s == "0" { "false" } else { "true" }.into())),
            _ => Ok(Some(s.to_string())),
        };
    }
    if quoted {
        // MariaDB writes '' for a quote and may escape with backslashes.
        let inner = s[1..s.len() - 1].replace("''", "'").replace("\\\\", "\\");
        if matches!(column.ty, ColumnType::Date | ColumnType::DateTime { .. } | ColumnType::Timestamp { .. })
            && inner.starts_with("0000-00-00")
        {
            return Err(format!("default {s} (a zero date) left out"));
        }
        return Ok(Some(dialect.string(&inner)));
    }
    if lower.starts_with("b'") && dialect == DdlDialect::Postgres {
        return Ok(Some(format!("B{}", &s[1..])));
    }
    Err(format!("default {s} is not translated to {}: left out", dialect.name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(ty: ColumnType) -> Column {
        Column::new("c", ty, true)
    }

    fn input<'a>(c: &'a Column, d: Option<&'a ColumnDetail>, charset: Option<&'a str>) -> ColumnIn<'a> {
        ColumnIn { column: c, detail: d, charset, collation: charset.map(|_| "utf8mb4_general_ci"), key: false }
    }

    #[test]
    fn mysql_keeps_the_source_spelling_and_collation() {
        let c = col(ColumnType::String { max_chars: Some(20), fixed: false });
        let d = ColumnDetail { source_type: Some("varchar(20)".into()), ..Default::default() };
        let m = map(DdlDialect::Mariadb, input(&c, Some(&d), Some("utf8mb4")));
        assert_eq!(m.sql, "varchar(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci");
        assert!(m.losses.is_empty());
    }

    #[test]
    fn doris_sizes_varchar_in_bytes_and_turns_long_text_into_string() {
        let c = col(ColumnType::String { max_chars: Some(100), fixed: false });
        assert_eq!(doris(input(&c, None, Some("utf8mb4"))).sql, "VARCHAR(400)");
        assert_eq!(doris(input(&c, None, Some("latin1"))).sql, "VARCHAR(300)");
        let c = col(ColumnType::String { max_chars: Some(20_000), fixed: false });
        assert_eq!(doris(input(&c, None, Some("utf8mb4"))).sql, "STRING");
        let key = ColumnIn { key: true, ..input(&c, None, Some("utf8mb4")) };
        assert_eq!(doris(key).sql, "VARCHAR(65533)");
        assert_eq!(doris(key).losses[0].kind, LossKind::Refused);
    }

    #[test]
    fn postgres_reports_zero_dates_and_long_times() {
        let m = postgres(input(&col(ColumnType::Date), None, None));
        assert_eq!((m.sql.as_str(), m.losses[0].kind), ("date", LossKind::Refused));
        let m = postgres(input(&col(ColumnType::Time { fsp: 6 }), None, None));
        assert!(m.losses[0].what.contains("24:00:00"), "{m:?}");
        let m = postgres(input(&col(ColumnType::Int { bits: 64, unsigned: true }), None, None));
        assert_eq!((m.sql.as_str(), m.losses.len()), ("numeric(20,0)", 0));
    }

    #[test]
    fn defaults_translate_literals_and_current_timestamp() {
        let c = col(ColumnType::String { max_chars: Some(5), fixed: false });
        assert_eq!(default(DdlDialect::Postgres, &c, "'it''s'"), Ok(Some("'it''s'".into())));
        assert_eq!(default(DdlDialect::Postgres, &c, "current_timestamp(6)"), Ok(Some("CURRENT_TIMESTAMP".into())));
        assert!(default(DdlDialect::Postgres, &c, "uuid()").is_err());
        assert_eq!(default(DdlDialect::Mariadb, &c, "uuid()"), Ok(Some("uuid()".into())));
        let b = col(ColumnType::Bool);
        assert_eq!(default(DdlDialect::Postgres, &b, "1"), Ok(Some("true".into())));
    }
}
