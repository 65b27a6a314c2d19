//! A first target DDL: `CREATE TABLE` for a target schema in either dialect, with a direct
//! type mapping and the row key as the primary key (or a unique key when the source had only
//! a unique key). The database sinks write into tables that exist; this is what tests and
//! `plans/` examples create them with until the catalog's DDL generator (mapping preview,
//! per-dialect options, batch creation) lands.

use super::encode::Dialect;
use ferry_operators::{ColumnType, TableSchema};

/// The column type in `d` for a ferry column type.
pub fn column_type(d: Dialect, ty: &ColumnType) -> String {
    use ColumnType as T;
    let list = |v: &[String]| v.iter().map(|m| format!("'{}'", m.replace('\'', "''"))).collect::<Vec<_>>().join(",");
    match d {
        Dialect::Mysql => match ty {
            T::Bool | T::Int { .. } | T::Float | T::Double => ty.sql_name(),
            T::Decimal { precision: 0, .. } => "DECIMAL(65,30)".into(),
            T::Decimal { precision, scale } => format!("DECIMAL({precision},{scale})"),
            T::String { max_chars: Some(n), fixed: true } => format!("CHAR({n})"),
            T::String { max_chars: Some(n), fixed: false } if *n <= 16_383 => format!("VARCHAR({n})"),
            T::String { .. } => "LONGTEXT".into(),
            T::Bytes { max_len: Some(n), fixed: true } => format!("BINARY({n})"),
            T::Bytes { max_len: Some(n), fixed: false } if *n <= 65_532 => format!("VARBINARY({n})"),
            T::Bytes { .. } => "LONGBLOB".into(),
            T::Date => "DATE".into(),
            T::Time { fsp } => format!("TIME({fsp})"),
            T::DateTime { fsp } => format!("DATETIME({fsp})"),
            T::Timestamp { fsp } => format!("TIMESTAMP({fsp})"),
            T::Json => "JSON".into(),
            T::Enum { values } => format!("ENUM({})", list(values)),
            T::Set { values } => format!("SET({})", list(values)),
            T::Bit { width } if *width <= 64 => format!("BIT({width})"),
            T::Bit { .. } => "LONGTEXT".into(),
            T::Year => "YEAR".into(),
            T::Uuid => "CHAR(36)".into(),
            T::Interval | T::Array { .. } | T::Other { .. } => "LONGTEXT".into(),
        },
        Dialect::Postgres => match ty {
            T::Bool => "boolean".into(),
            T::Int { bits, unsigned } => match (bits, unsigned) {
                (8, _) | (16, false) => "smallint".into(),
                (16, true) | (24, _) | (32, false) => "integer".into(),
                (32, true) | (64, false) => "bigint".into(),
                _ => "numeric(20,0)".into(),
            },
            T::Float => "real".into(),
            T::Double => "double precision".into(),
            T::Decimal { precision: 0, .. } => "numeric".into(),
            T::Decimal { precision, scale } => format!("numeric({precision},{scale})"),
            T::String { max_chars: Some(n), fixed: true } => format!("char({n})"),
            T::String { max_chars: Some(n), fixed: false } => format!("varchar({n})"),
            T::String { .. } => "text".into(),
            T::Bytes { .. } => "bytea".into(),
            T::Date => "date".into(),
            T::Time { fsp } => format!("time({fsp})"),
            T::DateTime { fsp } => format!("timestamp({fsp})"),
            T::Timestamp { fsp } => format!("timestamptz({fsp})"),
            T::Json => "json".into(),
            T::Enum { .. } | T::Set { .. } => "text".into(),
            T::Bit { width } => format!("bit({width})"),
            T::Year => "smallint".into(),
            T::Interval => "interval".into(),
            T::Uuid => "uuid".into(),
            T::Array { element } => format!("{}[]", column_type(d, element)),
            T::Other { name } => name.clone(),
        },
    }
}

/// `CREATE TABLE IF NOT EXISTS db.table (…)` for `schema` in `d` (for PostgreSQL `db` is the
/// schema, created by [`create_namespace`]).
pub fn create_table(d: Dialect, db: &str, table: &str, schema: &TableSchema) -> String {
    let mut sql = format!("CREATE TABLE IF NOT EXISTS {} (", d.qualified(db, table));
    for (i, c) in schema.columns.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        d.ident(&c.name, &mut sql);
        sql.push(' ');
        sql.push_str(&column_type(d, &c.ty));
        sql.push_str(if c.nullable { " NULL" } else { " NOT NULL" });
    }
    let key = schema.row_key();
    if !key.is_empty() {
        sql.push_str(if schema.primary_key.is_empty() { ", UNIQUE (" } else { ", PRIMARY KEY (" });
        for (i, &k) in key.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            d.ident(&schema.columns[k].name, &mut sql);
        }
        sql.push(')');
    }
    sql.push(')');
    sql
}

/// `CREATE DATABASE` (MySQL family) or `CREATE SCHEMA` (PostgreSQL) `IF NOT EXISTS`.
pub fn create_namespace(d: Dialect, db: &str) -> String {
    let mut name = String::new();
    d.ident(db, &mut name);
    match d {
        Dialect::Mysql => format!("CREATE DATABASE IF NOT EXISTS {name} CHARACTER SET utf8mb4"),
        Dialect::Postgres => format!("CREATE SCHEMA IF NOT EXISTS {name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_operators::{Column, TableName};

    #[test]
    fn create_table_maps_types_and_the_row_key() {
        let s = TableSchema {
            name: TableName::new("a", "b"),
            columns: vec![
                Column::new("id", ColumnType::Int { bits: 64, unsigned: true }, false),
                Column::new("at", ColumnType::Timestamp { fsp: 6 }, true),
            ],
            primary_key: vec![0],
            unique_keys: vec![],
            version: 1,
        };
        assert_eq!(
            create_table(Dialect::Postgres, "a", "b", &s),
            "CREATE TABLE IF NOT EXISTS \"a\".\"b\" (\"id\" numeric(20,0) NOT NULL, \"at\" timestamptz(6) NULL, PRIMARY KEY (\"id\"))"
        );
        assert_eq!(
            create_table(Dialect::Mysql, "a", "b", &s),
            "CREATE TABLE IF NOT EXISTS `a`.`b` (`id` BIGINT UNSIGNED NOT NULL, `at` TIMESTAMP(6) NULL, PRIMARY KEY (`id`))"
        );
    }
}
