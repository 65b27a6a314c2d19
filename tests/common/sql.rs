//! Database-target helpers for integration tests: run SQL on the private MariaDB or
//! PostgreSQL, create target tables, read a table back as canonical row texts, and render
//! expected rows the same way, so a target can be compared with what the source holds.
#![allow(dead_code)]

use ferry::catalog::{ddl, DdlDialect};
use ferry::connectors::sql::encode::Dialect;
use ferry_operators::{Column, ColumnType, TableSchema, Value};
use mysql_async::prelude::Queryable;

/// The two database targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The private MariaDB.
    Maria,
    /// The private PostgreSQL.
    Pg,
    /// The MariaDB instance the outage test stops and starts.
    Outage,
    /// The PostgreSQL instance the outage test stops and starts.
    PgOutage,
}

impl Target {
    /// The dialect.
    pub fn dialect(self) -> Dialect {
        match self {
            Target::Maria | Target::Outage => Dialect::Mysql,
            Target::Pg | Target::PgOutage => Dialect::Postgres,
        }
    }

    /// The plan's `target:` section (as YAML lines indented by two spaces).
    pub fn plan_section(self) -> String {
        match self {
            Target::Maria | Target::Outage => format!("  type: mariadb\n  url: {}\n", self.mysql_url()),
            Target::Pg | Target::PgOutage => format!("  type: postgres\n  url: {}\n", self.pg_url()),
        }
    }

    /// A short tag for names of test databases and tasks.
    pub fn tag(self) -> &'static str {
        match self {
            Target::Maria | Target::Outage => "m",
            Target::Pg | Target::PgOutage => "p",
        }
    }

    /// The URL of a PostgreSQL target.
    pub fn pg_url(self) -> String {
        match self {
            Target::PgOutage => super::mysql::url("FERRY_TEST_PG_OUTAGE_URL"),
            _ => pg_url(),
        }
    }

    /// The MySQL-protocol URL of a MariaDB target.
    pub fn mysql_url(self) -> String {
        match self {
            Target::Outage => super::mysql::url("FERRY_TEST_MYSQL_OUTAGE_URL"),
            _ => super::mysql::main_url(),
        }
    }

    /// Runs statements in order.
    pub fn exec(self, sqls: &[String]) {
        match self {
            Target::Maria | Target::Outage => {
                super::mysql::exec_at(&self.mysql_url(), &sqls.iter().map(String::as_str).collect::<Vec<_>>())
            }
            Target::Pg | Target::PgOutage => ferry::runtime::io_runtime().block_on(async {
                let c = pg_client_at(&self.pg_url()).await;
                for s in sqls {
                    c.batch_execute(s).await.unwrap_or_else(|e| panic!("{s}: {e:?}"));
                }
            }),
        }
    }

    /// Drops and creates the namespace `db` (a MariaDB database, a PostgreSQL schema).
    pub fn fresh_namespace(self, db: &str) {
        let drop = match self {
            Target::Maria | Target::Outage => format!("DROP DATABASE IF EXISTS `{db}`"),
            Target::Pg | Target::PgOutage => format!("DROP SCHEMA IF EXISTS \"{db}\" CASCADE"),
        };
        self.exec(&[drop, ddl::create_namespace(self.ddl_dialect(), db)]);
    }

    /// Creates `db.table` for `schema`.
    pub fn create_table(self, db: &str, table: &str, schema: &TableSchema) {
        self.exec(&ddl::create_table(self.ddl_dialect(), db, table, schema));
    }

    /// The DDL dialect.
    pub fn ddl_dialect(self) -> DdlDialect {
        match self.dialect() {
            Dialect::Mysql => DdlDialect::Mariadb,
            Dialect::Postgres => DdlDialect::Postgres,
        }
    }

    /// The column names of `db.table`, in table order (empty: no such table).
    pub fn columns(self, db: &str, table: &str) -> Vec<String> {
        let sql = format!(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = '{db}' AND table_name = '{table}' \
             ORDER BY ordinal_position"
        );
        ferry::runtime::io_runtime().block_on(async {
            match self {
                Target::Pg | Target::PgOutage => {
                    let c = pg_client_at(&self.pg_url()).await;
                    c.query(&sql, &[]).await.unwrap().iter().map(|r| r.get::<_, String>(0)).collect()
                }
                Target::Maria | Target::Outage => {
                    let opts = mysql_async::Opts::from_url(&self.mysql_url()).unwrap();
                    let mut c = mysql_async::Conn::new(opts).await.unwrap();
                    let names: Vec<String> = c.query(&sql).await.unwrap();
                    c.disconnect().await.unwrap();
                    names
                }
            }
        })
    }

    /// Every row of `db.table` as canonical texts (see [`canon`]), sorted.
    pub fn rows(self, db: &str, table: &str, schema: &TableSchema) -> Vec<String> {
        let cols: Vec<String> = schema
            .columns
            .iter()
            .map(|c| {
                let mut s = String::new();
                self.dialect().ident(&c.name, &mut s);
                s
            })
            .collect();
        let sql = format!("SELECT {} FROM {}", cols.join(","), self.dialect().qualified(db, table));
        let raw: Vec<Vec<Option<String>>> = match self {
            Target::Maria | Target::Outage => {
                let opts = mysql_async::Opts::from_url(&self.mysql_url()).unwrap();
                ferry::runtime::io_runtime().block_on(async {
                    let mut conn = mysql_async::Conn::new(opts).await.unwrap();
                    conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
                    let rows: Vec<mysql_async::Row> = conn.query(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
                    conn.disconnect().await.unwrap();
                    rows.into_iter()
                        .map(|r| {
                            (0..r.len())
                                .map(|i| match r.as_ref(i).unwrap() {
                                    mysql_async::Value::NULL => None,
                                    mysql_async::Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
                                    other => Some(other.as_sql(true)),
                                })
                                .collect()
                        })
                        .collect()
                })
            }
            Target::Pg | Target::PgOutage => pg_text_rows(&self.pg_url(), &sql),
        };
        canon_rows(raw, schema)
    }
}

/// Every row `sql` returns on the PostgreSQL server at `url`, as text (`None`: NULL).
pub fn pg_text_rows(url: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    ferry::runtime::io_runtime().block_on(async {
        let c = pg_client_at(url).await;
        let mut out = Vec::new();
        for m in c.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}")) {
            if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                out.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
            }
        }
        out
    })
}

/// Rows of text (as read, in `schema`'s column order) as canonical texts (see [`canon`]),
/// sorted.
pub fn canon_rows(raw: Vec<Vec<Option<String>>>, schema: &TableSchema) -> Vec<String> {
    let mut rows: Vec<String> = raw
        .into_iter()
        .map(|r| {
            r.iter()
                .zip(&schema.columns)
                .map(|(v, c)| v.as_deref().map_or("NULL".to_string(), |t| canon(&c.ty, t)))
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect();
    rows.sort();
    rows
}

/// The private PostgreSQL's URL.
pub fn pg_url() -> String {
    super::mysql::url("FERRY_TEST_PG_URL")
}

/// A client of the private PostgreSQL (session time zone UTC).
pub async fn pg_client() -> tokio_postgres::Client {
    pg_client_at(&pg_url()).await
}

/// A client of a PostgreSQL server at `url` (session time zone UTC).
pub async fn pg_client_at(url: &str) -> tokio_postgres::Client {
    let mut cfg: tokio_postgres::Config = url.parse().unwrap();
    cfg.options("-c TimeZone=UTC");
    let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// A value's text in a form both targets' output and ferry's values reduce to: timestamps
/// without zone marks and trailing fraction zeros, decimals without trailing zeros, floats
/// by their parsed value, booleans as 1 or 0.
pub fn canon(ty: &ColumnType, text: &str) -> String {
    fn trim_fraction(s: &str) -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    }
    match ty {
        ColumnType::Timestamp { .. } | ColumnType::DateTime { .. } | ColumnType::Time { .. } => {
            let s = text.trim_end_matches("+00").trim_end_matches('Z').replace('T', " ");
            trim_fraction(&s)
        }
        ColumnType::Decimal { .. } => trim_fraction(text),
        // PostgreSQL pads char(n) on output, MariaDB strips the padding.
        ColumnType::String { fixed: true, .. } => text.trim_end_matches(' ').to_string(),
        ColumnType::Float => text.parse::<f32>().map_or(text.to_string(), |f| f.to_string()),
        ColumnType::Double => text.parse::<f64>().map_or(text.to_string(), |f| f.to_string()),
        ColumnType::Bool => match text {
            "1" | "t" | "true" => "1".into(),
            "0" | "f" | "false" => "0".into(),
            other => other.into(),
        },
        _ => text.to_string(),
    }
}

/// Expected rows of `schema` as canonical texts, sorted.
pub fn expected(schema: &TableSchema, rows: &[Vec<Value>]) -> Vec<String> {
    let mut out: Vec<String> = rows
        .iter()
        .map(|r| {
            r.iter()
                .zip(&schema.columns)
                .map(|(v, c)| if v.is_null() { "NULL".to_string() } else { canon(&c.ty, &v.to_string()) })
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect();
    out.sort();
    out
}

/// `schema` as an append-mode target: no key, plus an `_op` column for the operation.
pub fn append_schema(schema: &TableSchema) -> TableSchema {
    let mut s = schema.clone();
    s.primary_key.clear();
    s.unique_keys.clear();
    s.columns.push(Column::new("_op", ColumnType::String { max_chars: Some(8), fixed: false }, false));
    s
}

/// A fresh PostgreSQL namespace `schema` with an append-log table `items (id, v, _op, _seq)`:
/// `_seq` numbers rows as they are written; one key's changes reach one worker, in order, so
/// per key `_seq` is the apply order.
pub fn fresh_pg_append_log(schema: &str) {
    Target::Pg.fresh_namespace(schema);
    Target::Pg.exec(&[format!(
        "CREATE TABLE \"{schema}\".items (id bigint NOT NULL, v bigint NOT NULL, _op text, _seq bigserial)"
    )]);
}

/// The append log `(id, v, _op)` of `"schema".items` in the PostgreSQL target, in write order
/// (`_seq`, a `bigserial` the test's table numbers rows with).
pub fn pg_append_log(schema: &str) -> Vec<(i64, i64, String)> {
    ferry::runtime::io_runtime().block_on(async {
        let c = pg_client().await;
        c.query(&format!("SELECT id, v, _op FROM \"{schema}\".items ORDER BY _seq"), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    })
}

/// Replays an append log `(id, v, op)` strictly, per key in write order: an insert of a present
/// key, an update or delete of an absent one (a duplicate or a gap) fails. The final state.
pub fn replay_strictly(log: &[(i64, i64, String)]) -> std::collections::BTreeMap<i64, i64> {
    let mut state = std::collections::BTreeMap::new();
    for (n, (id, v, op)) in log.iter().enumerate() {
        match op.as_str() {
            "insert" => assert!(state.insert(*id, *v).is_none(), "line {n}: insert of present key {id}"),
            "update" => assert!(state.insert(*id, *v).is_some(), "line {n}: update of absent key {id}"),
            "delete" => assert!(state.remove(id).is_some(), "line {n}: delete of absent key {id}"),
            other => panic!("line {n}: op {other}"),
        }
    }
    state
}
