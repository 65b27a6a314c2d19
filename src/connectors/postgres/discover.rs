//! Connecting to PostgreSQL, the server's preconditions for logical replication, and discovery
//! of schemas, tables, columns, types and keys from `pg_catalog`.

use super::config::PostgresSourceConfig;
use super::types::{column_type, PgType, SESSION_OPTIONS};
use crate::plan::discovery::{ColumnDetail, SourceCatalog, TableDetail};
use ferry_operators::schema::{Catalog, Column, TableName, TableSchema};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio_postgres::{Client, Config, NoTls};

/// What can go wrong talking to the source.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PgSourceError {
    /// The URL cannot be parsed.
    #[error("source url: {0}")]
    Url(String),
    /// The server cannot be reached (transient: it may come back).
    #[error("cannot reach the PostgreSQL server at {addr}: {reason}. Is it running, and is the port open?")]
    Unreachable {
        /// host:port
        addr: String,
        /// Why.
        reason: String,
    },
    /// The server refused the user or password.
    #[error("the PostgreSQL server refused user `{user}`: {reason}. Check the user and password (`password: ${{env:NAME}}`)")]
    Auth {
        /// The user.
        user: String,
        /// The server's message.
        reason: String,
    },
    /// A setting, grant, slot or publication is missing or wrong: the message says the fix.
    #[error("{0}")]
    Precondition(String),
    /// Any other server error (transient: a restart may help).
    #[error("PostgreSQL: {0}")]
    Server(String),
}

impl PgSourceError {
    /// Whether retrying later may help (connection problems), as opposed to a setting to fix.
    pub fn is_transient(&self) -> bool {
        matches!(self, PgSourceError::Unreachable { .. } | PgSourceError::Server(_))
    }

    /// A server error: lost connections and the server going away are transient; errors with
    /// an SQLSTATE of a definite kind (syntax, privileges, undefined objects) are not.
    pub fn from_pg(e: tokio_postgres::Error) -> Self {
        let text = crate::secrets::redact(&e.to_string());
        match e.as_db_error().map(|d| d.code().code().to_string()) {
            Some(code) if code.starts_with("42") || code.starts_with("55") || code == "0A000" => {
                PgSourceError::Precondition(format!("PostgreSQL: {text}"))
            }
            _ => PgSourceError::Server(text),
        }
    }
}

/// Where and how to connect: the client config and the parts a replication session needs.
#[derive(Clone)]
pub struct Endpoint {
    /// For normal sessions.
    pub config: Config,
    /// `host:port`, for messages.
    pub addr: String,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User.
    pub user: String,
    /// Password ("" when none).
    pub password: String,
    /// Database.
    pub database: String,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Endpoint({}@{}/{})", self.user, self.addr, self.database)
    }
}

/// The endpoint of a source section.
pub fn endpoint(cfg: &PostgresSourceConfig) -> Result<Endpoint, PgSourceError> {
    let mut c: Config = cfg
        .url
        .replacen("postgresql://", "postgres://", 1)
        .parse()
        .map_err(|e: tokio_postgres::Error| PgSourceError::Url(crate::secrets::redact(&e.to_string())))?;
    if let Some(p) = &cfg.password {
        c.password(p.as_bytes());
    }
    c.application_name("ferry");
    c.options(SESSION_OPTIONS);
    c.connect_timeout(Duration::from_secs(10));
    let host = match c.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "localhost".into(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    let user = c.get_user().unwrap_or("postgres").to_string();
    let password = c.get_password().map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_default();
    let database = c.get_dbname().unwrap_or(&user).to_string();
    if c.get_user().is_none() {
        c.user(&user);
    }
    Ok(Endpoint { config: c, addr: format!("{host}:{port}"), host, port, user, password, database })
}

/// Opens a session (its connection task on the current runtime).
pub async fn connect(ep: &Endpoint) -> Result<Client, PgSourceError> {
    let (client, conn) = ep.config.connect(NoTls).await.map_err(|e| {
        let code = e.as_db_error().map(|d| d.code().code().to_string());
        let reason = crate::secrets::redact(&e.to_string());
        match code.as_deref() {
            Some("28P01") | Some("28000") => PgSourceError::Auth { user: ep.user.clone(), reason },
            Some("3D000") => PgSourceError::Precondition(format!(
                "database `{}` does not exist on {}: fix the database in `source.url`",
                ep.database, ep.addr
            )),
            _ => PgSourceError::Unreachable { addr: ep.addr.clone(), reason },
        }
    })?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %crate::secrets::redact(&e.to_string()), "source connection ended");
        }
    });
    Ok(client)
}

/// The server-wide preconditions of logical replication, each with the statement that fixes it.
pub async fn check_preconditions(c: &Client, user: &str) -> Result<(), PgSourceError> {
    let err = PgSourceError::from_pg;
    let setting = |name: &'static str| async move {
        let row = c.query_one(&format!("SHOW {name}"), &[]).await.map_err(err)?;
        Ok::<String, PgSourceError>(row.get(0))
    };
    let version: i64 = setting("server_version_num").await?.parse().unwrap_or(0);
    if version < 140_000 {
        return Err(PgSourceError::Precondition(format!(
            "the source runs PostgreSQL {}.{}: ferry's replication (pgoutput with logical messages, the \
             heartbeat) needs PostgreSQL 14 or later",
            version / 10_000,
            version % 10_000 / 100
        )));
    }
    let wal = setting("wal_level").await?;
    if wal != "logical" {
        return Err(PgSourceError::Precondition(format!(
            "the source's wal_level is `{wal}`: logical replication needs `ALTER SYSTEM SET wal_level = logical;` \
             and a server restart"
        )));
    }
    for name in ["max_replication_slots", "max_wal_senders"] {
        let v: i64 = setting(name).await?.parse().unwrap_or(0);
        if v < 1 {
            return Err(PgSourceError::Precondition(format!(
                "the source's {name} is 0: `ALTER SYSTEM SET {name} = 10;` and a server restart"
            )));
        }
    }
    let row = c
        .query_one("SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user", &[])
        .await
        .map_err(err)?;
    if !row.get::<_, bool>(0) {
        return Err(PgSourceError::Precondition(format!(
            "user `{user}` may not replicate: `ALTER ROLE \"{user}\" REPLICATION;`"
        )));
    }
    Ok(())
}

const NOT_SYSTEM: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' \
     AND n.nspname NOT LIKE 'pg\\_temp%' AND c.relkind IN ('r', 'p') AND NOT c.relispartition";

/// Every user table of the database: schema, name, columns (generated columns left out: pgoutput
/// does not publish them), types, keys, comments, defaults.
pub async fn discover(c: &Client) -> Result<SourceCatalog, PgSourceError> {
    let err = PgSourceError::from_pg;
    let db: String = c.query_one("SELECT current_database()", &[]).await.map_err(err)?.get(0);
    let tables = c
        .query(
            &format!(
                "SELECT c.oid, n.nspname::text, c.relname::text, COALESCE(obj_description(c.oid, 'pg_class'), '') \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {NOT_SYSTEM} ORDER BY 2, 3"
            ),
            &[],
        )
        .await
        .map_err(err)?;
    let labels = c
        .query("SELECT enumtypid, enumlabel::text FROM pg_enum ORDER BY enumtypid, enumsortorder", &[])
        .await
        .map_err(err)?;
    let mut enum_labels: HashMap<u32, Vec<String>> = HashMap::new();
    for r in labels {
        enum_labels.entry(r.get(0)).or_default().push(r.get(1));
    }
    let cols = c
        .query(
            &format!(
                "SELECT c.oid, a.attname::text, a.attnotnull, \
                   bt.oid, bt.typname::text, bt.typtype::text, \
                   format_type(bt.oid, CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END), \
                   et.oid, et.typname::text, et.typtype::text, format_type(et.oid, CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END), \
                   pg_get_expr(ad.adbin, ad.adrelid), \
                   COALESCE(col_description(c.oid, a.attnum), ''), a.attidentity::text \
                 FROM pg_attribute a \
                 JOIN pg_class c ON c.oid = a.attrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_type t ON t.oid = a.atttypid \
                 JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
                 LEFT JOIN pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A' \
                 LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
                 WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' AND {NOT_SYSTEM} \
                 ORDER BY c.oid, a.attnum"
            ),
            &[],
        )
        .await
        .map_err(err)?;
    let keys = c
        .query(
            &format!(
                "SELECT i.indrelid, i.indexrelid, i.indisprimary, a.attname::text \
                 FROM pg_index i \
                 JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord) \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                 WHERE i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL AND {NOT_SYSTEM} \
                 ORDER BY i.indrelid, i.indisprimary DESC, i.indexrelid, k.ord"
            ),
            &[],
        )
        .await
        .map_err(err)?;

    let mut by_oid: BTreeMap<u32, (TableSchema, TableDetail)> = BTreeMap::new();
    let mut order: Vec<u32> = Vec::new();
    for r in &tables {
        let oid: u32 = r.get(0);
        let name = TableName { database: db.clone(), schema: Some(r.get(1)), table: r.get(2) };
        let schema =
            TableSchema { name, columns: Vec::new(), primary_key: Vec::new(), unique_keys: Vec::new(), version: 1 };
        by_oid.insert(oid, (schema, TableDetail { comment: r.get(3), columns: Vec::new() }));
        order.push(oid);
    }
    for r in &cols {
        let oid: u32 = r.get(0);
        let Some((schema, detail)) = by_oid.get_mut(&oid) else { continue };
        let element = r.get::<_, Option<u32>>(7).map(|eoid| {
            let kind: String = r.get(9);
            Box::new(PgType {
                name: r.get(8),
                formatted: r.get(10),
                kind: kind.chars().next().unwrap_or('b'),
                labels: enum_labels.get(&eoid).cloned().unwrap_or_default(),
                element: None,
            })
        });
        let kind: String = r.get(5);
        let base_oid: u32 = r.get(3);
        let pg = PgType {
            name: r.get(4),
            formatted: r.get(6),
            kind: kind.chars().next().unwrap_or('b'),
            labels: enum_labels.get(&base_oid).cloned().unwrap_or_default(),
            element,
        };
        let identity: String = r.get(13);
        schema.columns.push(Column::new(r.get::<_, String>(1), column_type(&pg), !r.get::<_, bool>(2)));
        // `source_type` is a MySQL-family spelling the catalog may reuse verbatim: PostgreSQL
        // columns are mapped from the record model instead.
        detail.columns.push(ColumnDetail {
            source_type: None,
            default: r.get(11),
            auto_increment: !identity.is_empty(),
            comment: r.get(12),
        });
    }
    let mut current: Option<(u32, u32)> = None;
    for r in &keys {
        let (oid, index, primary, col): (u32, u32, bool, String) = (r.get(0), r.get(1), r.get(2), r.get(3));
        let Some((schema, _)) = by_oid.get_mut(&oid) else { continue };
        // A key over a generated column is not usable (the column is not published).
        let Some(ci) = schema.columns.iter().position(|c| c.name == col) else { continue };
        let same = current == Some((oid, index));
        current = Some((oid, index));
        if primary {
            schema.primary_key.push(ci);
        } else if same {
            if let Some(k) = schema.unique_keys.last_mut() {
                k.push(ci);
            }
        } else {
            schema.unique_keys.push(vec![ci]);
        }
    }
    let mut catalog = Catalog::default();
    let mut details = Vec::new();
    let mut charsets = Vec::new();
    for oid in order {
        let (schema, detail) = by_oid.remove(&oid).expect("listed");
        charsets.push(vec![None; schema.columns.len()]);
        catalog.tables.push(schema);
        details.push(detail);
    }
    Ok(SourceCatalog { catalog, collations: charsets.clone(), charsets, details })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_keeps_the_password_out_of_its_debug_text() {
        let cfg =
            PostgresSourceConfig { url: "postgres://ferry:s3cret@db.example:6543/shop".into(), ..Default::default() };
        let ep = endpoint(&cfg).unwrap();
        assert_eq!((ep.host.as_str(), ep.port, ep.database.as_str()), ("db.example", 6543, "shop"));
        assert_eq!(ep.password, "s3cret");
        assert!(!format!("{ep:?}").contains("s3cret"));
        let env = PostgresSourceConfig { url: "postgres://ferry@h/shop".into(), password: Some("p".into()), ..cfg };
        assert_eq!(endpoint(&env).unwrap().password, "p");
    }
}
