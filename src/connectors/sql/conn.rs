//! Connections to a database target, either dialect: settings from the plan
//! ([`MysqlTargetConfig`], [`PostgresTargetConfig`]) build a [`SqlTarget`]; a [`Db`] is one
//! open session with the statements the writer needs (plain SQL, bulk load, progress row), and
//! [`DbError`] sorts what the server said into the row's fault, a passing fault, or a fatal one.

use super::encode::Dialect;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The `target:` section for `type: mysql` (also `mariadb`, `tidb`, `tdsql`, `doris`,
/// `starrocks`: servers that speak the MySQL protocol). Defaults live in [`Default`].
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MysqlTargetConfig {
    /// Connection URL, `mysql://user[:password]@host[:port]`. Put the password in `password`
    /// (e.g. `${env:TARGET_PASSWORD}`); it is masked in every log line and error. Required.
    pub url: String,
    /// The password, if it is not in the URL.
    pub password: Option<String>,
    /// Load insert-only batches (the snapshot phase, append mode) with
    /// `LOAD DATA LOCAL INFILE` from memory instead of multi-row INSERT (the server needs
    /// `local_infile=ON`). Default `true`.
    pub bulk_load: bool,
    /// Database of the exactly-once progress table `progress` (created if missing). Default
    /// `ferry`.
    pub progress_database: String,
}

impl Default for MysqlTargetConfig {
    fn default() -> Self {
        MysqlTargetConfig { url: String::new(), password: None, bulk_load: true, progress_database: "ferry".into() }
    }
}

/// The `target:` section for `type: postgres`. Defaults live in [`Default`].
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresTargetConfig {
    /// Connection URL, `postgres://user[:password]@host[:port]/database`. The route's
    /// `database` template names the PostgreSQL *schema* inside this database. Required.
    pub url: String,
    /// The password, if it is not in the URL.
    pub password: Option<String>,
    /// Load insert-only batches with `COPY … FROM STDIN` (upserts through a temporary staging
    /// table and one `INSERT … SELECT … ON CONFLICT`). Default `true`.
    pub bulk_load: bool,
    /// Schema of the exactly-once progress table `progress` (created if missing). Default
    /// `ferry`.
    pub progress_schema: String,
}

impl Default for PostgresTargetConfig {
    fn default() -> Self {
        PostgresTargetConfig { url: String::new(), password: None, bulk_load: true, progress_schema: "ferry".into() }
    }
}

/// What a database error means.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    /// The target rejected a row (constraint, type, length, encoding): the row is at fault.
    #[error("{0}")]
    Row(String),
    /// Connection lost, deadlock, server shutting down: a retry or restart may succeed.
    #[error("{0}")]
    Transient(String),
    /// Anything else (missing table or column, no privilege): the run cannot go on.
    #[error("{0}")]
    Fatal(String),
}

impl DbError {
    fn mysql(e: mysql_async::Error) -> DbError {
        let text = crate::secrets::redact(&e.to_string());
        match &e {
            mysql_async::Error::Server(s) => {
                let transient = [1040, 1053, 1205, 1213, 1290, 1836, 1927, 2006, 2013];
                if transient.contains(&s.code) {
                    DbError::Transient(text)
                } else if s.state.starts_with("22")
                    || s.state.starts_with("23")
                    || [1048, 1062, 1264, 1265, 1292, 1364, 1366, 1406, 1451, 1452, 1690, 3819, 4025].contains(&s.code)
                {
                    DbError::Row(text)
                } else {
                    DbError::Fatal(text)
                }
            }
            mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => DbError::Transient(text),
            _ => DbError::Fatal(text),
        }
    }

    /// A PostgreSQL error, classified.
    pub fn pg(e: tokio_postgres::Error) -> DbError {
        let Some(db) = e.as_db_error() else {
            return DbError::Transient(crate::secrets::redact(&e.to_string()));
        };
        let text = crate::secrets::redact(&format!(
            "{}: {}{}",
            db.severity(),
            db.message(),
            db.detail().map(|d| format!(" ({d})")).unwrap_or_default()
        ));
        let code = db.code().code();
        if code.starts_with("21") || code.starts_with("22") || code.starts_with("23") {
            DbError::Row(text)
        } else if code.starts_with("08")
            || code.starts_with("40")
            || code.starts_with("53")
            || code.starts_with("57P")
            || code == "55P03"
        {
            DbError::Transient(text)
        } else {
            DbError::Fatal(text)
        }
    }
}

/// A database target's runtime settings (built from the plan's target section).
#[derive(Debug, Clone)]
pub struct SqlTarget {
    /// The dialect.
    pub dialect: Dialect,
    my: Option<mysql_async::Opts>,
    pg: Option<tokio_postgres::Config>,
    /// Whether insert-only batches take the bulk path.
    pub bulk: bool,
    /// The progress table, quoted and qualified.
    pub progress: String,
    progress_ns: String,
    /// `host:port` for messages.
    pub addr: String,
}

impl SqlTarget {
    /// From a `mysql` target section.
    pub fn mysql(cfg: &MysqlTargetConfig) -> Result<SqlTarget, String> {
        use mysql_async::{Opts, OptsBuilder};
        let url = cfg.url.replacen("mariadb://", "mysql://", 1);
        let base =
            Opts::from_url(&url).map_err(|e| format!("target url: {}", crate::secrets::redact(&e.to_string())))?;
        let addr = format!("{}:{}", base.ip_or_hostname(), base.tcp_port());
        let mut b = OptsBuilder::from_opts(base)
            .prefer_socket(false)
            .wait_timeout(Some(28_800))
            .conn_ttl(None::<Duration>)
            .init(vec![
                "SET time_zone = '+00:00', names utf8mb4, foreign_key_checks = 0, \
                 sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO', \
                 innodb_lock_wait_timeout = 20",
                // Workers write disjoint keys in concurrent transactions: without gap locks
                // (REPEATABLE READ takes them for deletes of absent keys) they never wait on
                // each other.
                "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
            ]);
        if let Some(p) = &cfg.password {
            b = b.pass(Some(p.clone()));
        }
        let d = Dialect::Mysql;
        Ok(SqlTarget {
            dialect: d,
            my: Some(b.into()),
            pg: None,
            bulk: cfg.bulk_load,
            progress: d.qualified(&cfg.progress_database, "progress"),
            progress_ns: cfg.progress_database.clone(),
            addr,
        })
    }

    /// From a `postgres` target section.
    pub fn postgres(cfg: &PostgresTargetConfig) -> Result<SqlTarget, String> {
        let mut c: tokio_postgres::Config =
            cfg.url.replacen("postgresql://", "postgres://", 1).parse().map_err(|e: tokio_postgres::Error| {
                format!("target url: {}", crate::secrets::redact(&e.to_string()))
            })?;
        if let Some(p) = &cfg.password {
            c.password(p.as_bytes());
        }
        c.application_name("ferry");
        // Workers write disjoint keys; a lock wait between them (a secondary unique key) must
        // end in an error and a restart, not hold the epoch forever.
        c.options("-c TimeZone=UTC -c client_encoding=UTF8 -c lock_timeout=20s");
        c.connect_timeout(Duration::from_secs(10));
        let host = match c.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "localhost".into(),
        };
        let port = c.get_ports().first().copied().unwrap_or(5432);
        let d = Dialect::Postgres;
        Ok(SqlTarget {
            dialect: d,
            my: None,
            pg: Some(c),
            bulk: cfg.bulk_load,
            progress: d.qualified(&cfg.progress_schema, "progress"),
            progress_ns: cfg.progress_schema.clone(),
            addr: format!("{host}:{port}"),
        })
    }

    /// Opens one session.
    pub async fn connect(&self) -> Result<Db, DbError> {
        let unreachable = |e: String| DbError::Transient(format!("cannot connect to the target at {}: {e}", self.addr));
        if let Some(o) = &self.my {
            let conn = mysql_async::Conn::new(o.clone()).await.map_err(|e| match DbError::mysql(e) {
                DbError::Transient(m) => unreachable(m),
                other => DbError::Fatal(format!("cannot connect to the target at {}: {other}", self.addr)),
            })?;
            return Ok(Db::My(conn));
        }
        let cfg = self.pg.as_ref().expect("one of the two");
        let (client, connection) = cfg.connect(tokio_postgres::NoTls).await.map_err(|e| match DbError::pg(e) {
            DbError::Transient(m) => unreachable(m),
            other => DbError::Fatal(format!("cannot connect to the target at {}: {other}", self.addr)),
        })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %crate::secrets::redact(&e.to_string()), "target connection ended");
            }
        });
        Ok(Db::Pg(client))
    }

    /// `s` as a string literal of the dialect.
    fn text(&self, s: &str) -> String {
        let mut out = String::new();
        // Text is never refused except a NUL for PostgreSQL, which then fails the statement.
        let _ = self.dialect.literal(&ferry_operators::Value::Text(s.into()), &mut out);
        out
    }

    /// The PostgreSQL database the URL names (`None`: a MySQL-family target).
    pub fn pg_database(&self) -> Option<&str> {
        self.pg.as_ref().and_then(|c| c.get_dbname())
    }

    /// Creates the progress table if it is missing (called once per run, before the workers).
    pub async fn ensure_progress_table(&self, db: &mut Db) -> Result<(), DbError> {
        let mut ns = String::new();
        self.dialect.ident(&self.progress_ns, &mut ns);
        match self.dialect {
            Dialect::Mysql => {
                db.exec(&format!("CREATE DATABASE IF NOT EXISTS {ns}")).await?;
                db.exec(&format!(
                    "CREATE TABLE IF NOT EXISTS {} (task VARCHAR(190) NOT NULL, worker INT NOT NULL, \
                     epoch BIGINT NOT NULL, updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), \
                     PRIMARY KEY (task, worker)) ENGINE=InnoDB",
                    self.progress
                ))
                .await
            }
            Dialect::Postgres => {
                // Two runs creating them at once: PostgreSQL's `IF NOT EXISTS` is not atomic,
                // the loser fails on a catalog unique index (23505) or sees the relation
                // (42P07); a second try finds them made.
                let table = format!(
                    "CREATE TABLE IF NOT EXISTS {} (task text NOT NULL, worker int NOT NULL, epoch bigint NOT NULL, \
                     updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (task, worker))",
                    self.progress
                );
                for sql in [format!("CREATE SCHEMA IF NOT EXISTS {ns}"), table] {
                    let mut tries = 0;
                    loop {
                        match db.exec(&sql).await {
                            Ok(()) => break,
                            Err(DbError::Row(_) | DbError::Fatal(_)) if tries < 3 => {
                                tries += 1;
                                tokio::time::sleep(std::time::Duration::from_millis(20 * tries)).await;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// The statement that records `epoch` as committed by `worker` of `task`.
    pub fn progress_upsert(&self, task: &str, worker: usize, epoch: u64) -> String {
        let t = self.text(task);
        match self.dialect {
            Dialect::Mysql => format!(
                "INSERT INTO {} (task, worker, epoch) VALUES ({t}, {worker}, {epoch}) \
                 ON DUPLICATE KEY UPDATE epoch = VALUES(epoch), updated_at = CURRENT_TIMESTAMP(6)",
                self.progress
            ),
            Dialect::Postgres => format!(
                "INSERT INTO {} (task, worker, epoch) VALUES ({t}, {worker}, {epoch}) \
                 ON CONFLICT (task, worker) DO UPDATE SET epoch = EXCLUDED.epoch, updated_at = now()",
                self.progress
            ),
        }
    }

    /// The last epoch `worker` of `task` committed (0: none).
    pub async fn committed(&self, db: &mut Db, task: &str, worker: usize) -> Result<u64, DbError> {
        let t = self.text(task);
        let sql = format!("SELECT epoch FROM {} WHERE task = {t} AND worker = {worker}", self.progress);
        db.query_u64(&sql).await.map(|v| v.unwrap_or(0))
    }

    /// Whether `db.table` exists (for PostgreSQL: `schema.table` in the connected database).
    pub async fn table_exists(&self, db: &mut Db, schema: &str, table: &str) -> Result<bool, DbError> {
        let (s, t) = (self.text(schema), self.text(table));
        let sql =
            format!("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = {s} AND table_name = {t}");
        Ok(db.query_u64(&sql).await?.unwrap_or(0) > 0)
    }

    /// Whether each `(schema, table)` exists: one query per 500 names. A name the target holds
    /// only in another letter case is asked alone ([`SqlTarget::table_exists`]), so the answer
    /// is the same as asking each.
    pub async fn tables_exist(&self, db: &mut Db, tables: &[(&str, &str)]) -> Result<Vec<bool>, DbError> {
        let mut out = Vec::with_capacity(tables.len());
        for part in tables.chunks(500) {
            let mut schemas: Vec<&str> = part.iter().map(|(s, _)| *s).collect();
            schemas.sort_unstable();
            schemas.dedup();
            let list: Vec<String> = schemas.iter().map(|s| self.text(s)).collect();
            let sql = format!(
                "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema IN ({})",
                list.join(",")
            );
            let found: std::collections::HashSet<(String, String)> = match db {
                Db::My(c) => {
                    use mysql_async::prelude::Queryable;
                    c.query(sql).await.map_err(DbError::mysql)?.into_iter().collect()
                }
                Db::Pg(c) => c
                    .simple_query(&sql)
                    .await
                    .map_err(DbError::pg)?
                    .into_iter()
                    .filter_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(r) => {
                            Some((r.get(0)?.to_string(), r.get(1)?.to_string()))
                        }
                        _ => None,
                    })
                    .collect(),
            };
            let lower = |s: &str, t: &str| (s.to_lowercase(), t.to_lowercase());
            let found_lower: std::collections::HashSet<(String, String)> =
                found.iter().map(|(s, t)| lower(s, t)).collect();
            for (s, t) in part {
                let exact = found.contains(&(s.to_string(), t.to_string()));
                let folded = !exact && found_lower.contains(&lower(s, t));
                out.push(if folded { self.table_exists(db, s, t).await? } else { exact });
            }
        }
        Ok(out)
    }

    /// The columns of `schema.table` as the target reports them, in table order (empty: no
    /// such table).
    pub async fn columns(
        &self,
        db: &mut Db,
        schema: &str,
        table: &str,
    ) -> Result<Vec<crate::catalog::alter::TargetColumn>, DbError> {
        use crate::catalog::alter::TargetColumn;
        match db {
            Db::My(c) => {
                use mysql_async::prelude::Queryable;
                type Row = (String, String, String, Option<String>, Option<String>);
                let rows: Vec<Row> = c
                    .exec(
                        "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, CHARACTER_SET_NAME, COLLATION_NAME \
                         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
                         ORDER BY ORDINAL_POSITION",
                        (schema, table),
                    )
                    .await
                    .map_err(DbError::mysql)?;
                Ok(rows
                    .into_iter()
                    .map(|(name, ty, nullable, cs, coll)| TargetColumn {
                        name,
                        ty,
                        nullable: nullable == "YES",
                        charset: cs.zip(coll),
                    })
                    .collect())
            }
            Db::Pg(c) => {
                let q = self.text(&self.dialect.qualified(schema, table));
                let sql = format!(
                    "SELECT attname, format_type(atttypid, atttypmod), CASE WHEN attnotnull THEN 'f' ELSE 't' END \
                     FROM pg_attribute WHERE attrelid = to_regclass({q}) AND attnum > 0 AND NOT attisdropped \
                     ORDER BY attnum"
                );
                let mut out = Vec::new();
                for m in c.simple_query(&sql).await.map_err(DbError::pg)? {
                    if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                        let get = |i: usize| r.get(i).unwrap_or_default().to_string();
                        out.push(TargetColumn { name: get(0), ty: get(1), nullable: get(2) == "t", charset: None });
                    }
                }
                Ok(out)
            }
        }
    }

    /// Forgets the task's progress (a `--from-scratch` run).
    pub async fn forget(&self, db: &mut Db, task: &str) -> Result<(), DbError> {
        let t = self.text(task);
        db.exec(&format!("DELETE FROM {} WHERE task = {t}", self.progress)).await
    }
}

/// One open session with a database target.
pub enum Db {
    /// MySQL family.
    My(mysql_async::Conn),
    /// PostgreSQL.
    Pg(tokio_postgres::Client),
}

impl Db {
    /// Runs one statement; the MySQL family's warning count is returned (0 for PostgreSQL).
    pub async fn exec_warnings(&mut self, sql: &str) -> Result<u16, DbError> {
        match self {
            Db::My(c) => {
                use mysql_async::prelude::Queryable;
                c.query_drop(sql).await.map_err(DbError::mysql)?;
                Ok(c.get_warnings())
            }
            Db::Pg(c) => c.batch_execute(sql).await.map(|_| 0).map_err(DbError::pg),
        }
    }

    /// Runs one statement.
    pub async fn exec(&mut self, sql: &str) -> Result<(), DbError> {
        self.exec_warnings(sql).await.map(|_| ())
    }

    /// Runs a query returning at most one integer.
    pub async fn query_u64(&mut self, sql: &str) -> Result<Option<u64>, DbError> {
        match self {
            Db::My(c) => {
                use mysql_async::prelude::Queryable;
                let v: Option<u64> = c.query_first(sql).await.map_err(DbError::mysql)?;
                Ok(v)
            }
            Db::Pg(c) => {
                let rows = c.simple_query(sql).await.map_err(DbError::pg)?;
                for r in rows {
                    if let tokio_postgres::SimpleQueryMessage::Row(row) = r {
                        return Ok(row.get(0).and_then(|v| v.parse().ok()));
                    }
                }
                Ok(None)
            }
        }
    }

    /// The MySQL family's `LOAD DATA LOCAL INFILE` of `data` (rows in the bulk text format)
    /// into `table (cols)`, replacing rows with the same key when `replace`. Any warning (the
    /// server turns rejected values into warnings under `LOCAL`) is reported as a row error,
    /// so the caller rolls back and writes the batch row by row.
    pub async fn load_data(
        &mut self,
        table: &str,
        cols: &str,
        data: Vec<u8>,
        replace: bool,
        charset: &str,
    ) -> Result<(), DbError> {
        let Db::My(c) = self else { unreachable!("LOAD DATA is the MySQL family's") };
        let data = Bytes::from(data);
        c.set_infile_handler(
            async move { Ok(futures::stream::once(async move { Ok::<_, std::io::Error>(data) }).boxed()) },
        );
        let sql = format!(
            "LOAD DATA LOCAL INFILE 'ferry' {}INTO TABLE {table} CHARACTER SET {charset} \
             FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({cols})",
            if replace { "REPLACE " } else { "" }
        );
        let warnings = self.exec_warnings(&sql).await?;
        if warnings > 0 {
            return Err(DbError::Row(format!("the bulk load reported {warnings} warnings")));
        }
        Ok(())
    }

    /// PostgreSQL `COPY table (cols) FROM STDIN` of `data` (rows in COPY text format).
    pub async fn copy_in(&mut self, table: &str, cols: &str, data: Vec<u8>) -> Result<(), DbError> {
        let Db::Pg(c) = self else { unreachable!("COPY is PostgreSQL's") };
        let sink = c.copy_in::<_, Bytes>(&format!("COPY {table} ({cols}) FROM STDIN")).await.map_err(DbError::pg)?;
        futures::pin_mut!(sink);
        sink.send(Bytes::from(data)).await.map_err(DbError::pg)?;
        sink.finish().await.map_err(DbError::pg)?;
        Ok(())
    }

    /// Starts a PostgreSQL `COPY table (cols) FROM STDIN` that later batches may feed (see
    /// [`CopyStream`]); no other statement runs on this session until it is finished.
    pub async fn copy_open(&mut self, table: &str, cols: &str) -> Result<CopyStream, DbError> {
        let Db::Pg(c) = self else { unreachable!("COPY is PostgreSQL's") };
        let sink = c.copy_in::<_, Bytes>(&format!("COPY {table} ({cols}) FROM STDIN")).await.map_err(DbError::pg)?;
        Ok(CopyStream(Box::pin(sink)))
    }

    /// The character set a `LOAD DATA` into `db.table` reads its input in: `binary` when every
    /// character column is utf8mb4 (the UTF-8 bytes go in as they are), `latin1` when every one
    /// is latin1 (the writer transcodes, see [`to_latin1`]), else `utf8mb4` (the server
    /// converts into each column's character set).
    pub async fn load_charset(&mut self, db: &str, table: &str) -> Result<&'static str, DbError> {
        let Db::My(c) = self else { unreachable!("LOAD DATA is the MySQL family's") };
        use mysql_async::prelude::Queryable;
        let sets: Vec<String> = c
            .exec(
                "SELECT DISTINCT CHARACTER_SET_NAME FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CHARACTER_SET_NAME IS NOT NULL",
                (db, table),
            )
            .await
            .map_err(DbError::mysql)?;
        Ok(if sets.iter().all(|s| s.eq_ignore_ascii_case("utf8mb4")) {
            "binary"
        } else if sets.iter().all(|s| s.eq_ignore_ascii_case("latin1")) {
            "latin1"
        } else {
            "utf8mb4"
        })
    }

    /// Ensures a temporary staging table shaped like `table` exists in this session; returns
    /// its quoted name. It is created each time if missing: a rollback to a savepoint drops a
    /// temporary table created after it.
    pub async fn staging(&mut self, table: &str) -> Result<String, DbError> {
        let mut h = ferry_operators::value::StableHasher::default();
        h.write_bytes(table.as_bytes());
        let name = format!("\"ferry_stage_{:016x}\"", h.finish());
        self.exec(&format!("CREATE TEMP TABLE IF NOT EXISTS {name} (LIKE {table} INCLUDING DEFAULTS)")).await?;
        Ok(name)
    }
}

/// The bulk text in MySQL's `latin1` (which is Windows-1252), when every character has a
/// latin1 byte; `None` otherwise (the batch then goes as utf8mb4 and the server refuses what
/// does not fit, row by row).
pub fn to_latin1(utf8: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(utf8).ok()?;
    if text.is_ascii() {
        return Some(utf8.to_vec());
    }
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(text);
    (!unmappable).then(|| bytes.into_owned())
}

/// An open `COPY … FROM STDIN`: rows go in as COPY text, several batches' worth, until
/// [`CopyStream::finish`] (a row the server rejects fails a later `send` or the `finish`).
pub struct CopyStream(std::pin::Pin<Box<tokio_postgres::CopyInSink<Bytes>>>);

impl CopyStream {
    /// Sends rows in COPY text format (waits while the server is behind).
    pub async fn send(&mut self, data: Vec<u8>) -> Result<(), DbError> {
        self.0.send(Bytes::from(data)).await.map_err(DbError::pg)
    }

    /// Ends the COPY; the server's answer says whether every row went in.
    pub async fn finish(mut self) -> Result<(), DbError> {
        self.0.as_mut().finish().await.map(|_| ()).map_err(DbError::pg)
    }
}

#[cfg(test)]
mod tests {
    use super::to_latin1;

    #[test]
    fn latin1_transcoding_maps_western_letters_and_refuses_the_rest() {
        assert_eq!(to_latin1("José\tMüller €".as_bytes()).unwrap(), b"Jos\xe9\tM\xfcller \x80");
        assert_eq!(to_latin1(b"plain").unwrap(), b"plain");
        assert!(to_latin1("emoji 😀".as_bytes()).is_none());
        assert!(to_latin1("中文".as_bytes()).is_none());
    }
}
