//! Connecting to a MySQL/MariaDB source, checking its preconditions, and discovering its
//! tables (F2.1) into the record model's schemas.
//!
//! ```text
//!  plan url + password ──► connect (session: time_zone +00:00, raw result charsets)
//!        │                     │
//!        │                     ├─► preconditions: binlog on, ROW, FULL image, grants
//!        │                     └─► information_schema: TABLES, COLUMNS, STATISTICS,
//!        │                                           CHECK_CONSTRAINTS (MariaDB JSON)
//!        ▼
//!  errors are one line each, with what to change
//! ```

use super::config::MysqlSourceConfig;
use super::types::parse_column_type;
use crate::plan::discovery::{ColumnDetail, SourceCatalog, TableDetail};
use crate::plan::Wanted;
use ferry_operators::schema::{Catalog, Column, ColumnType, TableName, TableSchema};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};
use std::collections::BTreeMap;

/// Why a MySQL source cannot be used. Every message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The URL cannot be parsed.
    #[error("source url: {0}")]
    Url(String),
    /// The server cannot be reached (transient: it may come back).
    #[error("cannot reach the MySQL server at {addr}: {reason}. Is it running, and is the port open?")]
    Unreachable {
        /// host:port
        addr: String,
        /// the I/O error
        reason: String,
    },
    /// The server refused the user or password.
    #[error(
        "the MySQL server refused user `{user}`: {reason}. Check the user and password (`password: ${{env:NAME}}`)"
    )]
    Auth {
        /// The user.
        user: String,
        /// The server's message.
        reason: String,
    },
    /// A server setting or grant is missing.
    #[error("{0}")]
    Precondition(String),
    /// Any other server error.
    #[error("MySQL: {0}")]
    Server(String),
}

impl SourceError {
    /// Whether retrying later may help (connection problems), as opposed to a setting to fix.
    pub fn is_transient(&self) -> bool {
        matches!(self, SourceError::Unreachable { .. } | SourceError::Server(_))
    }
}

/// Connection options from the plan: URL, password, and the session setup every ferry
/// connection uses (UTC session time zone; results in each column's own character set, so text
/// is decoded the same way as in the binlog).
pub fn opts(cfg: &MysqlSourceConfig) -> Result<Opts, SourceError> {
    let url = cfg.url.replacen("mariadb://", "mysql://", 1);
    let base = Opts::from_url(&url).map_err(|e| SourceError::Url(crate::secrets::redact(&e.to_string())))?;
    let mut b = OptsBuilder::from_opts(base)
        .prefer_socket(false)
        .init(vec!["SET time_zone = '+00:00', character_set_results = NULL, sql_mode = ''"]);
    if let Some(p) = &cfg.password {
        b = b.pass(Some(p.clone()));
    }
    Ok(b.into())
}

fn classify(e: mysql_async::Error, opts: &Opts) -> SourceError {
    let addr = format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port());
    match e {
        mysql_async::Error::Io(io) => SourceError::Unreachable { addr, reason: io.to_string() },
        mysql_async::Error::Server(s) if s.code == 1045 || s.code == 1044 || s.code == 1698 => {
            SourceError::Auth { user: opts.user().unwrap_or("").to_string(), reason: s.message }
        }
        other => SourceError::Server(crate::secrets::redact(&other.to_string())),
    }
}

/// Connects once.
pub async fn connect(opts: &Opts) -> Result<Conn, SourceError> {
    Conn::new(opts.clone()).await.map_err(|e| classify(e, opts))
}

async fn var(conn: &mut Conn, name: &str) -> Result<Option<String>, SourceError> {
    let v: Option<(String, Option<String>)> = conn
        .exec_first(
            "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES WHERE VARIABLE_NAME = ?",
            (name,),
        )
        .await
        .map_err(|e| SourceError::Server(e.to_string()))?;
    Ok(v.and_then(|(_, v)| v))
}

/// Checks what a change-data source needs: binary logging on, `binlog_format=ROW`,
/// `binlog_row_image=FULL`, `binlog_row_metadata=FULL` (where the server has it), on MySQL no
/// `PARTIAL_JSON` in `binlog_row_value_options` and `gtid_mode` ON or OFF (not a migration
/// state), and the grants `SELECT`, `REPLICATION SLAVE` (the stream, and the watermark
/// handoff's window reads), `REPLICATION CLIENT` (binlog positions: `SHOW MASTER STATUS`,
/// `SHOW BINARY LOGS`; MariaDB ≥ 10.5: `BINLOG MONITOR` or `SLAVE MONITOR` serve as well).
pub async fn check_preconditions(conn: &mut Conn, user: &str) -> Result<(), SourceError> {
    let fix = "in the server's configuration ([mysqld] section) and restart it";
    match var(conn, "LOG_BIN").await?.as_deref() {
        Some("ON") | Some("1") => {}
        _ => {
            return Err(SourceError::Precondition(format!(
                "binary logging is off: set log_bin=ON, binlog_format=ROW and binlog_row_image=FULL {fix}"
            )))
        }
    }
    let format = var(conn, "BINLOG_FORMAT").await?.unwrap_or_default();
    if !format.eq_ignore_ascii_case("ROW") {
        return Err(SourceError::Precondition(format!(
            "binlog_format is {format}: set binlog_format=ROW {fix} (or SET GLOBAL binlog_format='ROW')"
        )));
    }
    let image = var(conn, "BINLOG_ROW_IMAGE").await?.unwrap_or_else(|| "FULL".into());
    if !image.eq_ignore_ascii_case("FULL") {
        return Err(SourceError::Precondition(format!(
            "binlog_row_image is {image}: set binlog_row_image=FULL {fix} (or SET GLOBAL binlog_row_image='FULL')"
        )));
    }
    // Column names in the binlog's table maps: how the stream follows schema changes.
    if let Some(meta) = var(conn, "BINLOG_ROW_METADATA").await? {
        if !meta.eq_ignore_ascii_case("FULL") {
            return Err(SourceError::Precondition(format!(
                "binlog_row_metadata is {meta}: set binlog_row_metadata=FULL {fix} (or SET GLOBAL binlog_row_metadata='FULL')"
            )));
        }
    }
    mysql_settings(
        var(conn, "BINLOG_ROW_VALUE_OPTIONS").await?.as_deref(),
        var(conn, "GTID_MODE").await?.as_deref(),
        fix,
    )
    .map_err(SourceError::Precondition)?;
    let grants: Vec<String> = conn.query("SHOW GRANTS").await.map_err(|e| SourceError::Server(e.to_string()))?;
    let all = grants.join("\n").to_ascii_uppercase();
    let global: Vec<&str> = all.lines().filter(|l| l.contains(" ON *.* ")).collect();
    let has = |p: &str| global.iter().any(|l| l.contains("ALL PRIVILEGES") || l.contains(p));
    let mut missing = Vec::new();
    if !has("SELECT") && !all.contains("GRANT SELECT") {
        missing.push("SELECT");
    }
    if !has("REPLICATION SLAVE") {
        missing.push("REPLICATION SLAVE");
    }
    if !(has("REPLICATION CLIENT") || has("BINLOG MONITOR") || has("SLAVE MONITOR") || has("SUPER")) {
        missing.push("REPLICATION CLIENT");
    }
    if !missing.is_empty() {
        return Err(SourceError::Precondition(format!(
            "user `{user}` lacks {}: GRANT {} ON *.* TO '{user}'@'%'",
            missing.join(", "),
            missing.join(", ")
        )));
    }
    Ok(())
}

/// MySQL's settings (absent on MariaDB): JSON updates logged as diffs
/// (`binlog_row_value_options=PARTIAL_JSON`) have no full after image; the stream resumes by
/// GTID set with `gtid_mode=ON` and by file/position with `OFF`, and the two migration states
/// in between mix both kinds of transaction.
fn mysql_settings(row_value_options: Option<&str>, gtid_mode: Option<&str>, fix: &str) -> Result<(), String> {
    if let Some(opts) = row_value_options.filter(|o| o.to_ascii_uppercase().contains("PARTIAL_JSON")) {
        return Err(format!(
            "binlog_row_value_options is {opts}: partial JSON updates carry no full row image; set \
             binlog_row_value_options='' {fix} (or SET GLOBAL binlog_row_value_options='')"
        ));
    }
    if let Some(mode) =
        gtid_mode.filter(|m| m.eq_ignore_ascii_case("ON_PERMISSIVE") || m.eq_ignore_ascii_case("OFF_PERMISSIVE"))
    {
        return Err(format!(
            "gtid_mode is {mode}, a migration state in which transactions with and without GTIDs mix: finish the \
             migration (SET GLOBAL gtid_mode=ON) or go back to OFF"
        ));
    }
    Ok(())
}

/// One row of `information_schema.COLUMNS`: schema, table, column, data type, column type,
/// nullable, character set, collation, default, extra, comment.
type ColumnRow =
    (String, String, String, String, String, String, Option<String>, Option<String>, Option<String>, String, String);

/// Databases never copied.
const SYSTEM: [&str; 4] = ["mysql", "information_schema", "performance_schema", "sys"];

/// The same, as a condition for the `information_schema` queries: the server then does not
/// open the system tables at all (on a small server most of the columns it lists are theirs).
const NOT_SYSTEM: &str = "TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')";

/// Reads the schema of every user table `wanted` takes, ordered by `db.table`, with each
/// column's character set and collation (which decoding and the handoff need) and what a
/// target DDL needs beyond the type.
///
/// The names come first (the server lists them without opening a table); the definitions are
/// then asked only of the databases holding a wanted table: the server opens every table it
/// describes, and on a server of thousands of tables describing all of them takes a second.
pub async fn discover(conn: &mut Conn, wanted: Wanted<'_>) -> Result<SourceCatalog, SourceError> {
    let err = |e: mysql_async::Error| SourceError::Server(e.to_string());
    let version: Option<String> = conn.query_first("SELECT VERSION()").await.map_err(err)?;
    let mariadb = version.unwrap_or_default().to_ascii_lowercase().contains("mariadb");
    // The databases first (the server lists them without looking inside), then the table
    // names only of those that may hold a wanted table: listing the names of a database
    // reads its directory, and a server of tens of thousands of tables in other databases
    // takes a tenth of a second for them.
    let databases: Vec<String> = conn
        .query(format!(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN ({})",
            sql_list(&SYSTEM)
        ))
        .await
        .map_err(err)?;
    let reachable: Vec<&str> = databases.iter().map(String::as_str).filter(|db| wanted.may_hold(db)).collect();
    if reachable.is_empty() {
        return Ok(SourceCatalog::default());
    }
    let listed = if reachable.len() == databases.len() {
        NOT_SYSTEM.to_string()
    } else {
        format!("TABLE_SCHEMA IN ({})", sql_list(&reachable))
    };
    let names: Vec<(String, String)> = conn
        .query(format!(
            // Without TABLE_TYPE, which opens each table's definition (views are told apart
            // in the next query).
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE {listed}"
        ))
        .await
        .map_err(err)?;
    let mut dbs: Vec<&str> = names
        .iter()
        .filter(|(db, t)| !SYSTEM.contains(&db.to_ascii_lowercase().as_str()) && wanted.takes(&TableName::new(db, t)))
        .map(|(db, _)| db.as_str())
        .collect();
    dbs.sort_unstable();
    dbs.dedup();
    if dbs.is_empty() {
        return Ok(SourceCatalog::default());
    }
    let in_dbs = format!("TABLE_SCHEMA IN ({})", sql_list(&dbs));
    let tables: Vec<(String, String, String)> = conn
        .query(format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_COMMENT FROM information_schema.TABLES \
             WHERE TABLE_TYPE = 'BASE TABLE' AND {in_dbs} ORDER BY TABLE_SCHEMA, TABLE_NAME"
        ))
        .await
        .map_err(err)?;
    let cols: Vec<ColumnRow> = conn
        .query(format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, CHARACTER_SET_NAME, COLLATION_NAME, \
             COLUMN_DEFAULT, EXTRA, COLUMN_COMMENT \
             FROM information_schema.COLUMNS WHERE {in_dbs} ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION"
        ))
        .await
        .map_err(err)?;
    let keys: Vec<(String, String, String, i64, String)> = conn
        .query(format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE NON_UNIQUE = 0 AND {in_dbs} \
             ORDER BY TABLE_SCHEMA, TABLE_NAME, INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX"
        ))
        .await
        .map_err(err)?;
    // MariaDB stores JSON as LONGTEXT with a json_valid() check. Asked only of the databases
    // that have a LONGTEXT column: the server opens every table it looks at, and a server of
    // ten thousand tables takes a second for all of them.
    let mut longtext: Vec<&str> =
        cols.iter().filter(|c| c.3.eq_ignore_ascii_case("longtext")).map(|c| c.0.as_str()).collect();
    longtext.sort_unstable();
    longtext.dedup();
    let json_checks: Vec<(String, String, String)> = if longtext.is_empty() {
        Vec::new()
    } else {
        conn.query(format!(
            "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
             WHERE CHECK_CLAUSE LIKE 'json_valid(%' AND CONSTRAINT_SCHEMA IN ({})",
            sql_list(&longtext)
        ))
        .await
        .unwrap_or_default()
    };
    let mut by_table: BTreeMap<(String, String), TableSchema> = BTreeMap::new();
    let mut charsets: BTreeMap<(String, String), Vec<Option<String>>> = BTreeMap::new();
    let mut collations: BTreeMap<(String, String), Vec<Option<String>>> = BTreeMap::new();
    let mut details: BTreeMap<(String, String), TableDetail> = BTreeMap::new();
    for (db, t, comment) in tables.into_iter().filter(|(db, t, _)| wanted.takes(&TableName::new(db, t))) {
        details.insert((db.clone(), t.clone()), TableDetail { comment, columns: Vec::new() });
        by_table.insert(
            (db.clone(), t.clone()),
            TableSchema {
                name: TableName::new(db, t),
                columns: Vec::new(),
                primary_key: Vec::new(),
                unique_keys: Vec::new(),
                version: 1,
            },
        );
    }
    for (db, t, name, data_type, column_type, nullable, charset, collation, default, extra, comment) in cols {
        let Some(schema) = by_table.get_mut(&(db.clone(), t.clone())) else { continue };
        let is_json = json_checks.iter().any(|(cdb, ct, clause)| {
            cdb == &db
                && ct == &t
                && clause.trim_start_matches("json_valid(").trim_end_matches(')').trim_matches('`') == name
        });
        let ty = if is_json {
            ColumnType::Json
        } else {
            parse_column_type(&data_type, &column_type, charset.as_deref())
                .map_err(|e| SourceError::Server(format!("{db}.{t}.{name}: {e}")))?
        };
        let detail = ColumnDetail {
            source_type: Some(column_type.to_ascii_lowercase()),
            default: source_default(mariadb, default, &extra, &ty),
            auto_increment: extra.to_ascii_lowercase().contains("auto_increment"),
            comment,
        };
        if let Some(d) = details.get_mut(&(db.clone(), t.clone())) {
            d.columns.push(detail);
        }
        schema.columns.push(Column::new(name, ty, nullable == "YES"));
        collations.entry((db.clone(), t.clone())).or_default().push(collation);
        charsets.entry((db, t)).or_default().push(charset);
    }
    let mut current: Option<(String, String, String)> = None;
    for (db, t, index, _, col) in keys {
        let Some(schema) = by_table.get_mut(&(db.clone(), t.clone())) else { continue };
        let Some(ci) = schema.columns.iter().position(|c| c.name == col) else { continue };
        let same = current.as_ref().is_some_and(|(d, tt, i)| d == &db && tt == &t && i == &index);
        if index == "PRIMARY" {
            schema.primary_key.push(ci);
        } else if same {
            schema.unique_keys.last_mut().expect("open key").push(ci);
        } else {
            schema.unique_keys.push(vec![ci]);
        }
        current = Some((db, t, index));
    }
    let charsets = by_table.keys().map(|k| charsets.remove(k).unwrap_or_default()).collect();
    let collations = by_table.keys().map(|k| collations.remove(k).unwrap_or_default()).collect();
    let details = by_table.keys().map(|k| details.remove(k).unwrap_or_default()).collect();
    Ok(SourceCatalog { catalog: Catalog { tables: by_table.into_values().collect() }, charsets, collations, details })
}

/// `'a','b'`: names as SQL string literals, for an `IN (…)` list.
pub(super) fn sql_list(names: &[&str]) -> String {
    let quoted: Vec<String> =
        names.iter().map(|d| format!("'{}'", d.replace('\\', "\\\\").replace('\'', "''"))).collect();
    quoted.join(",")
}

/// A column default as a SQL expression of the source's dialect (`None`: no default, or
/// `DEFAULT NULL`). MariaDB (10.2.7+) reports defaults as expressions already (`'text'`, `5`,
/// `current_timestamp()`, `NULL`); MySQL reports a literal's bare text and marks expressions
/// `DEFAULT_GENERATED` in `EXTRA`.
fn source_default(mariadb: bool, default: Option<String>, extra: &str, ty: &ColumnType) -> Option<String> {
    let d = default?;
    if mariadb {
        return (!d.eq_ignore_ascii_case("NULL")).then_some(d);
    }
    let expression = extra.to_ascii_uppercase().contains("DEFAULT_GENERATED")
        || d.to_ascii_uppercase().starts_with("CURRENT_TIMESTAMP");
    let numeric = matches!(
        ty,
        ColumnType::Int { .. } | ColumnType::Float | ColumnType::Double | ColumnType::Decimal { .. } | ColumnType::Year
    );
    Some(if expression || numeric { d } else { format!("'{}'", d.replace('\'', "''")) })
}

#[cfg(test)]
mod tests {
    use super::mysql_settings;

    #[test]
    fn mysql_partial_json_and_gtid_migration_states_are_refused_with_the_setting_to_change() {
        assert!(mysql_settings(Some(""), Some("ON"), "").is_ok());
        assert!(mysql_settings(Some(""), Some("OFF"), "").is_ok());
        assert!(mysql_settings(None, None, "").is_ok(), "MariaDB has neither setting");
        let e = mysql_settings(Some("PARTIAL_JSON"), Some("ON"), "").unwrap_err();
        assert!(e.contains("binlog_row_value_options=''"), "{e}");
        let e = mysql_settings(Some(""), Some("ON_PERMISSIVE"), "").unwrap_err();
        assert!(e.contains("gtid_mode is ON_PERMISSIVE") && e.contains("gtid_mode=ON"), "{e}");
        assert!(mysql_settings(Some(""), Some("off_permissive"), "").is_err());
    }
}
