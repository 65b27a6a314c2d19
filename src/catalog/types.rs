//! Type mapping: a source column's type in each target dialect, and the type-loss report —
//! what of the column's values cannot survive the trip, said before anything runs.
//!
//! One function per dialect ([`mysql`], [`postgres`], [`doris`]); `ARCHITECTURE.md` has the
//! same table for readers. A MySQL-family column copied into the MySQL family keeps the
//! source's own spelling (`COLUMN_TYPE`), character set and collation, so nothing is lost;
//! columns of generated sources (no spelling) and PostgreSQL sources map from the record
//! model's [`ColumnType`].
//!
//! PostgreSQL targets take the plan's type choices (`target_tables.postgres`,
//! [`PostgresTypes`]): they pick the type of a MySQL `TIME` column and what becomes of zero
//! dates and text with NUL. [`pg_value_rules`] gives the writer the same choices per column
//! as [`ValueRule`]s, so a value arrives exactly as the report line says.
//!
//! Loss kinds: [`LossKind::Refused`] values are refused by the target and go to the dirty
//! archive (with the write-error policy); [`LossKind::Changed`] values arrive in another form;
//! [`LossKind::Note`] is about the table's definition (a default or auto-increment that the
//! dialect cannot take), never about values.

use super::{ColumnDetail, DdlDialect};
use crate::plan::config::{NulInText, PostgresTypes, TimeAs, ZeroDates};
use ferry_operators::value::Date;
use ferry_operators::{Column, ColumnType, TableSchema, Value};
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
    /// A choice writes NULL for some values: the column is created nullable.
    pub nullable: bool,
}

impl Mapped {
    fn plain(sql: impl Into<String>) -> Mapped {
        Mapped { sql: sql.into(), losses: Vec::new(), nullable: false }
    }
    fn with(mut self, kind: LossKind, what: impl Into<String>) -> Mapped {
        self.losses.push(Loss { kind, what: what.into() });
        self
    }
}

/// The column's type in `dialect` (`pg`: the plan's PostgreSQL type choices).
pub fn map(dialect: DdlDialect, c: ColumnIn<'_>, pg: &PostgresTypes) -> Mapped {
    match dialect {
        DdlDialect::Mysql | DdlDialect::Mariadb => mysql(dialect, c),
        DdlDialect::Postgres => postgres(c, pg),
        DdlDialect::Doris => doris(c),
    }
}

const ZERO_DATES: &str = "zero dates (0000-00-00) and dates with a zero month or day are refused";
const ZERO_DATES_PG: &str = "zero dates (0000-00-00) and dates with a zero month or day";

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

/// PostgreSQL, with the plan's type choices `pg`.
pub fn postgres(c: ColumnIn<'_>, pg: &PostgresTypes) -> Mapped {
    use ColumnType as T;
    let ty = &c.column.ty;
    // A MySQL-family source column (it has its MySQL spelling): its own types' rules apply.
    let mysql_source = c.detail.is_some_and(|d| d.source_type.is_some());
    // A PostgreSQL source column (details, no MySQL spelling): its values fit its own types.
    let pg_source = c.detail.is_some_and(|d| d.source_type.is_none());
    let zero = |m: Mapped, what: &str| -> Mapped {
        match (pg.zero_dates, c.key) {
            (ZeroDates::Refuse, _) => m.with(LossKind::Refused, format!("{what} are refused (zero_dates: refuse)")),
            (ZeroDates::Null, true) => {
                m.with(LossKind::Refused, format!("{what} are refused: a key column cannot be NULL (zero_dates: null)"))
            }
            (ZeroDates::Null, false) => {
                let mut m = m.with(LossKind::Changed, format!("{what} arrive as NULL (zero_dates: null)"));
                m.nullable = true;
                m
            }
            (ZeroDates::Infinity, _) => {
                m.with(LossKind::Changed, format!("{what} arrive as -infinity (zero_dates: infinity)"))
            }
        }
    };
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
        T::String { max_chars, fixed } => {
            let m = Mapped::plain(match (max_chars, fixed) {
                (Some(n), true) => format!("char({n})"),
                (Some(n), false) => format!("varchar({n})"),
                (None, _) => "text".into(),
            });
            match pg.nul_in_text {
                _ if pg_source => m,
                NulInText::Refuse => m.with(
                    LossKind::Refused,
                    "text containing the NUL character (U+0000) is refused (nul_in_text: refuse)",
                ),
                NulInText::Strip => {
                    m.with(LossKind::Changed, "NUL characters (U+0000) are removed from text (nul_in_text: strip)")
                }
                NulInText::Escape => m.with(
                    LossKind::Changed,
                    "NUL characters (U+0000) in text arrive as the two characters \\0 (nul_in_text: escape)",
                ),
            }
        }
        T::Bytes { .. } => Mapped::plain("bytea"),
        T::Date if pg_source => Mapped::plain("date"),
        T::Date => zero(Mapped::plain("date"), ZERO_DATES_PG),
        T::Time { fsp } if pg_source => Mapped::plain(format!("time({fsp})")),
        T::Time { fsp } => match pg.time {
            TimeAs::Time => Mapped::plain(format!("time({fsp})")).with(
                LossKind::Refused,
                "negative times and times past 24:00:00 are refused (time: time; `interval` keeps them)",
            ),
            TimeAs::Interval => Mapped::plain(format!("interval({fsp})")),
        },
        T::DateTime { fsp } if pg_source => Mapped::plain(format!("timestamp({fsp})")),
        T::DateTime { fsp } => zero(Mapped::plain(format!("timestamp({fsp})")), ZERO_DATES_PG),
        T::Timestamp { fsp } => {
            let m = Mapped::plain(format!("timestamptz({fsp})"));
            if mysql_source {
                zero(m, "zero TIMESTAMPs (0000-00-00 00:00:00)")
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
            let inner = postgres(ColumnIn { column: &Column::new("", (**element).clone(), true), ..c }, pg);
            Mapped { sql: format!("{}[]", inner.sql), ..inner }
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

/// What the writer does to one PostgreSQL column's values on the way, by the plan's type
/// choices: the value-level side of the report lines of [`postgres`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueRule {
    /// A zero date or date-time (month or day 0): refused, NULL or `-infinity`.
    ZeroDate(ZeroDates),
    /// The zero `TIMESTAMP` of a MySQL-family source (stored as 0 seconds): refused, NULL or
    /// `-infinity`.
    ZeroTimestamp(ZeroDates),
    /// A time outside PostgreSQL `time`'s 00:00:00 … 24:00:00: refused.
    TimeOfDay,
    /// Text with U+0000: refused, stripped or escaped.
    Nul(NulInText),
}

/// A value a [`ValueRule`] refuses: why, naming the choice that would keep it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column `{column}`: {what}")]
pub struct Refused {
    /// The column.
    pub column: String,
    /// What the value is and which choice keeps it.
    pub what: String,
}

/// One day in microseconds: PostgreSQL `time` holds 0 … this, inclusive.
const DAY_MICROS: i64 = 86_400_000_000;

impl ValueRule {
    /// `v` as the column takes it: `Ok(None)` when it arrives unchanged.
    pub fn apply(self, column: &str, v: &Value) -> Result<Option<Value>, Refused> {
        let refuse = |what: String| Err(Refused { column: column.to_string(), what });
        let zero = |choice: ZeroDates, what: &str, neg_inf: Value| {
            match choice {
            ZeroDates::Refuse => refuse(format!(
                "{what}: PostgreSQL has no zero date (target_tables.postgres.zero_dates: null or infinity keeps the row)"
            )),
            ZeroDates::Null => Ok(Some(Value::Null)),
            ZeroDates::Infinity => Ok(Some(neg_inf)),
        }
        };
        match (self, v) {
            (ValueRule::ZeroDate(c), Value::Date(d)) if d.is_zero() => {
                zero(c, &format!("the zero date {d}"), Value::Date(Date::NEG_INFINITY))
            }
            (ValueRule::ZeroDate(c), Value::DateTime(dt)) if dt.date.is_zero() => zero(
                c,
                &format!("the zero date-time {dt}"),
                Value::DateTime(ferry_operators::value::DateTime::NEG_INFINITY),
            ),
            (ValueRule::ZeroTimestamp(c), Value::Timestamp(0)) => zero(
                c,
                "the zero TIMESTAMP 0000-00-00 00:00:00",
                Value::Timestamp(ferry_operators::value::TIMESTAMP_NEG_INFINITY),
            ),
            (ValueRule::TimeOfDay, Value::Time(t)) if !(0..=DAY_MICROS).contains(t) => refuse(format!(
                "the time {v} is outside PostgreSQL time's 00:00:00 … 24:00:00 \
                 (target_tables.postgres.time: interval keeps it)"
            )),
            (ValueRule::Nul(c), Value::Text(s) | Value::Enum(s) | Value::Set(s)) if s.contains('\0') => match c {
                NulInText::Refuse => refuse(
                    "text with the NUL character (U+0000): PostgreSQL text cannot hold it \
                     (target_tables.postgres.nul_in_text: strip or escape keeps the row)"
                        .into(),
                ),
                NulInText::Strip => Ok(Some(rebuilt(v, s.replace('\0', "")))),
                NulInText::Escape => Ok(Some(rebuilt(v, s.replace('\0', "\\0")))),
            },
            _ => Ok(None),
        }
    }
}

/// `v`'s variant with the text `s`.
fn rebuilt(v: &Value, s: String) -> Value {
    match v {
        Value::Enum(_) => Value::Enum(s),
        Value::Set(_) => Value::Set(s),
        _ => Value::Text(s),
    }
}

/// Per column of `schema`, the [`ValueRule`] of `plan`'s PostgreSQL type choices (empty when
/// the plan's target is not PostgreSQL).
pub fn plan_value_rules(plan: &crate::plan::Compiled, schema: &TableSchema) -> Vec<Option<ValueRule>> {
    if DdlDialect::of_plan(plan) != Some(DdlDialect::Postgres) {
        return Vec::new();
    }
    let mysql_source =
        matches!(DdlDialect::of_target_type(&plan.plan.source.kind), Some(DdlDialect::Mysql | DdlDialect::Mariadb));
    pg_value_rules(schema, schema.row_key(), mysql_source, &plan.plan.settings.target_tables.postgres)
}

/// `row` with each column through its rule of `rules` (what the writer sends); a value a
/// rule refuses stays as it is.
pub fn apply_value_rules(rules: &[Option<ValueRule>], schema: &TableSchema, row: &mut [Value]) {
    for (i, rule) in rules.iter().enumerate() {
        if let (Some(rule), Some(v)) = (rule, row.get_mut(i)) {
            if let Ok(Some(x)) = rule.apply(&schema.columns[i].name, v) {
                *v = x;
            }
        }
    }
}

/// Per column of `schema` written into PostgreSQL, its [`ValueRule`] under the choices `pg`
/// (`None`: values arrive as they are). `key`: the row positions of the target's key;
/// `mysql_source`: the rows come from a MySQL-family source (whose zero `TIMESTAMP` is 0).
pub fn pg_value_rules(
    schema: &TableSchema,
    key: &[usize],
    mysql_source: bool,
    pg: &PostgresTypes,
) -> Vec<Option<ValueRule>> {
    use ColumnType as T;
    schema
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            // NULL cannot go into a key column: refused there, as the report says.
            let zero =
                if key.contains(&i) && pg.zero_dates == ZeroDates::Null { ZeroDates::Refuse } else { pg.zero_dates };
            match &c.ty {
                T::Date | T::DateTime { .. } => Some(ValueRule::ZeroDate(zero)),
                T::Timestamp { .. } if mysql_source => Some(ValueRule::ZeroTimestamp(zero)),
                T::Time { .. } if pg.time == TimeAs::Time => Some(ValueRule::TimeOfDay),
                T::String { .. } | T::Enum { .. } | T::Set { .. } => Some(ValueRule::Nul(pg.nul_in_text)),
                _ => None,
            }
        })
        .collect()
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
        let m = map(DdlDialect::Mariadb, input(&c, Some(&d), Some("utf8mb4")), &PostgresTypes::default());
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

    fn choices(time: TimeAs, zero_dates: ZeroDates, nul_in_text: NulInText) -> PostgresTypes {
        PostgresTypes { time, zero_dates, nul_in_text }
    }

    #[test]
    fn postgres_reports_what_each_type_choice_does_to_the_values() {
        let mysql = ColumnDetail { source_type: Some("x".into()), ..Default::default() };
        let lossy = |ty: ColumnType, key: bool, pg: PostgresTypes| {
            let c = col(ty);
            postgres(ColumnIn { key, ..input(&c, Some(&mysql), None) }, &pg)
        };
        let default = PostgresTypes::default();
        let m = lossy(ColumnType::Date, false, default);
        assert_eq!((m.sql.as_str(), m.losses[0].kind, m.nullable), ("date", LossKind::Refused, false));
        let m = lossy(ColumnType::Time { fsp: 6 }, false, default);
        assert_eq!((m.sql.as_str(), m.losses[0].kind), ("time(6)", LossKind::Refused));
        assert!(m.losses[0].what.contains("24:00:00"), "{m:?}");
        // `interval` holds every MySQL time: nothing is lost.
        let m = lossy(ColumnType::Time { fsp: 2 }, false, choices(TimeAs::Interval, ZeroDates::Null, NulInText::Strip));
        assert_eq!((m.sql.as_str(), m.losses.len()), ("interval(2)", 0));
        // NULL for zero dates: changed, the column nullable; refused in a key column.
        let null = choices(TimeAs::Time, ZeroDates::Null, NulInText::Escape);
        let m = lossy(ColumnType::DateTime { fsp: 0 }, false, null);
        assert_eq!((m.losses[0].kind, m.nullable), (LossKind::Changed, true));
        assert!(m.losses[0].what.contains("NULL"), "{m:?}");
        let m = lossy(ColumnType::DateTime { fsp: 0 }, true, null);
        assert_eq!((m.losses[0].kind, m.nullable), (LossKind::Refused, false));
        let m = lossy(
            ColumnType::Timestamp { fsp: 0 },
            false,
            choices(TimeAs::Time, ZeroDates::Infinity, NulInText::Refuse),
        );
        assert_eq!(m.losses[0].kind, LossKind::Changed);
        assert!(m.losses[0].what.contains("-infinity"), "{m:?}");
        let m = lossy(ColumnType::String { max_chars: None, fixed: false }, false, null);
        assert_eq!((m.sql.as_str(), m.losses[0].kind), ("text", LossKind::Changed));
        let m = lossy(ColumnType::Int { bits: 64, unsigned: true }, false, default);
        assert_eq!((m.sql.as_str(), m.losses.len()), ("numeric(20,0)", 0));
        // A PostgreSQL source's own values fit: no line, and its `time` stays `time`.
        let c = col(ColumnType::Time { fsp: 6 });
        let pg_detail = ColumnDetail::default();
        let m = postgres(
            input(&c, Some(&pg_detail), None),
            &choices(TimeAs::Interval, ZeroDates::Refuse, NulInText::Refuse),
        );
        assert_eq!((m.sql.as_str(), m.losses.len()), ("time(6)", 0));
    }

    #[test]
    fn value_rules_change_exactly_the_values_their_report_line_names() {
        use ferry_operators::value::{DateTime, TIMESTAMP_NEG_INFINITY};
        let zero = Value::Date(Date::new(0, 0, 0));
        let zero_month = Value::DateTime(DateTime { date: Date::new(2020, 0, 15), micros: 36_000_000_000 });
        let rule = ValueRule::ZeroDate(ZeroDates::Infinity);
        assert_eq!(rule.apply("d", &zero), Ok(Some(Value::Date(Date::NEG_INFINITY))));
        assert_eq!(rule.apply("d", &zero_month), Ok(Some(Value::DateTime(DateTime::NEG_INFINITY))));
        assert_eq!(rule.apply("d", &Value::Date(Date::new(2020, 1, 1))), Ok(None));
        assert_eq!(ValueRule::ZeroDate(ZeroDates::Null).apply("d", &zero), Ok(Some(Value::Null)));
        let e = ValueRule::ZeroDate(ZeroDates::Refuse).apply("dt", &zero).unwrap_err();
        assert!(e.to_string().contains("column `dt`") && e.to_string().contains("zero_dates"), "{e}");
        let ts = ValueRule::ZeroTimestamp(ZeroDates::Infinity);
        assert_eq!(ts.apply("ts", &Value::Timestamp(0)), Ok(Some(Value::Timestamp(TIMESTAMP_NEG_INFINITY))));
        assert_eq!(ts.apply("ts", &Value::Timestamp(1)), Ok(None));
        assert!(ValueRule::TimeOfDay.apply("t", &Value::Time(-1)).is_err());
        assert!(ValueRule::TimeOfDay.apply("t", &Value::Time(DAY_MICROS + 1)).is_err());
        assert_eq!(ValueRule::TimeOfDay.apply("t", &Value::Time(DAY_MICROS)), Ok(None));
        let nul = Value::Text("a\0b\0".into());
        assert_eq!(ValueRule::Nul(NulInText::Strip).apply("s", &nul), Ok(Some(Value::Text("ab".into()))));
        assert_eq!(ValueRule::Nul(NulInText::Escape).apply("s", &nul), Ok(Some(Value::Text("a\\0b\\0".into()))));
        assert_eq!(
            ValueRule::Nul(NulInText::Strip).apply("s", &Value::Enum("x\0".into())),
            Ok(Some(Value::Enum("x".into())))
        );
        assert!(ValueRule::Nul(NulInText::Refuse).apply("s", &nul).is_err());
    }

    #[test]
    fn a_key_column_refuses_zero_dates_instead_of_writing_null() {
        let schema = TableSchema {
            name: ferry_operators::TableName::new("db", "t"),
            columns: vec![Column::new("d", ColumnType::Date, false), Column::new("e", ColumnType::Date, true)],
            primary_key: vec![0],
            unique_keys: vec![],
            version: 1,
        };
        let pg = choices(TimeAs::Time, ZeroDates::Null, NulInText::Refuse);
        assert_eq!(
            pg_value_rules(&schema, &[0], true, &pg),
            vec![Some(ValueRule::ZeroDate(ZeroDates::Refuse)), Some(ValueRule::ZeroDate(ZeroDates::Null))]
        );
    }

    proptest::proptest! {
        /// Rules are idempotent: a value they changed arrives unchanged the second time (a row
        /// `ferry verify` computed is encoded by the writer's rules again).
        #[test]
        fn text_rules_remove_every_nul_and_are_idempotent(s in "[a\\\\0\u{0}é]{0,12}", escape: bool) {
            let rule = ValueRule::Nul(if escape { NulInText::Escape } else { NulInText::Strip });
            let v = Value::Text(s.clone());
            let once = rule.apply("c", &v).unwrap().unwrap_or(v);
            let Value::Text(t) = &once else { panic!("text stays text") };
            proptest::prop_assert!(!t.contains('\0'));
            proptest::prop_assert_eq!(rule.apply("c", &once).unwrap(), None);
            let want = if escape { s.replace('\0', "\\0") } else { s.replace('\0', "") };
            proptest::prop_assert_eq!(t, &want);
        }
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
