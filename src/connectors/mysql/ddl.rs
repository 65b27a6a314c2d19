//! DDL statements of the binlog, parsed with a SQL parser (`sqlparser`, MySQL dialect) into
//! schema-change events.
//!
//! Rows are always decoded from the binlog's own table maps, which carry every column's name
//! (`binlog_row_metadata=FULL`); what a table map cannot say is that a column was *renamed*
//! rather than dropped and added. The events here say it, so a renamed source column keeps
//! flowing into the same target column.

use sqlparser::ast::{AlterTableOperation, ObjectName, ObjectNamePart, Statement};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

/// One schema change of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaChange {
    /// `ADD COLUMN`.
    AddColumn {
        /// `(database, table)`.
        table: (String, String),
        /// The new column.
        column: String,
    },
    /// `DROP COLUMN`.
    DropColumn {
        /// `(database, table)`.
        table: (String, String),
        /// The dropped column.
        column: String,
    },
    /// `RENAME COLUMN a TO b`, or `CHANGE a b <type>` with a new name.
    RenameColumn {
        /// `(database, table)`.
        table: (String, String),
        /// Old name.
        from: String,
        /// New name.
        to: String,
    },
    /// `MODIFY`, or `CHANGE` keeping the name: a new type.
    ModifyColumn {
        /// `(database, table)`.
        table: (String, String),
        /// The column.
        column: String,
        /// The new type, as written.
        ty: String,
    },
    /// `TRUNCATE TABLE`.
    Truncate {
        /// `(database, table)`.
        table: (String, String),
    },
    /// Any other statement on a table (`CREATE`, `DROP`, `RENAME TABLE`, other `ALTER`s).
    Other {
        /// `(database, table)`, when the statement names one.
        table: Option<(String, String)>,
        /// The statement.
        sql: String,
    },
}

fn qualify(default_db: &str, name: &ObjectName) -> (String, String) {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => i.value.clone(),
            other => other.to_string(),
        })
        .collect();
    match parts.as_slice() {
        [db, t] => (db.clone(), t.clone()),
        [t] => (default_db.to_string(), t.clone()),
        _ => (default_db.to_string(), parts.last().cloned().unwrap_or_default()),
    }
}

/// Parses one binlog QUERY event's statement; `default_db` is the database it ran in.
/// Statements the parser does not know become [`SchemaChange::Other`] (never an error: the
/// table maps stay the source of truth for decoding).
pub fn parse(default_db: &str, sql: &str) -> Vec<SchemaChange> {
    let Ok(statements) = Parser::parse_sql(&MySqlDialect {}, sql) else {
        return vec![SchemaChange::Other { table: None, sql: sql.to_string() }];
    };
    let mut out = Vec::new();
    for st in statements {
        match st {
            Statement::AlterTable(alter) => {
                let table = qualify(default_db, &alter.name);
                for op in alter.operations {
                    let mut extra = Vec::new();
                    let change = match op {
                        AlterTableOperation::AddColumn { column_def, .. } => {
                            SchemaChange::AddColumn { table: table.clone(), column: column_def.name.value }
                        }
                        AlterTableOperation::DropColumn { column_names, .. } => {
                            for c in column_names.iter().skip(1) {
                                extra.push(SchemaChange::DropColumn { table: table.clone(), column: c.value.clone() });
                            }
                            let first = column_names.into_iter().next().map(|c| c.value).unwrap_or_default();
                            SchemaChange::DropColumn { table: table.clone(), column: first }
                        }
                        AlterTableOperation::RenameColumn { old_column_name, new_column_name } => {
                            SchemaChange::RenameColumn {
                                table: table.clone(),
                                from: old_column_name.value,
                                to: new_column_name.value,
                            }
                        }
                        AlterTableOperation::ChangeColumn { old_name, new_name, data_type, .. } => {
                            if old_name.value.eq_ignore_ascii_case(&new_name.value) {
                                SchemaChange::ModifyColumn {
                                    table: table.clone(),
                                    column: new_name.value,
                                    ty: data_type.to_string(),
                                }
                            } else {
                                SchemaChange::RenameColumn {
                                    table: table.clone(),
                                    from: old_name.value,
                                    to: new_name.value,
                                }
                            }
                        }
                        AlterTableOperation::ModifyColumn { col_name, data_type, .. } => SchemaChange::ModifyColumn {
                            table: table.clone(),
                            column: col_name.value,
                            ty: data_type.to_string(),
                        },
                        other => SchemaChange::Other { table: Some(table.clone()), sql: other.to_string() },
                    };
                    out.push(change);
                    out.extend(extra);
                }
            }
            Statement::Truncate(t) => {
                for target in t.table_names {
                    out.push(SchemaChange::Truncate { table: qualify(default_db, &target.name) });
                }
            }
            other => out.push(SchemaChange::Other { table: None, sql: other.to_string() }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(db: &str, name: &str) -> (String, String) {
        (db.into(), name.into())
    }

    #[test]
    fn alter_statements_become_one_event_per_operation() {
        let got =
            parse("shop", "ALTER TABLE orders ADD COLUMN c INT DEFAULT 7, DROP COLUMN note, RENAME COLUMN a TO b");
        assert_eq!(
            got,
            vec![
                SchemaChange::AddColumn { table: t("shop", "orders"), column: "c".into() },
                SchemaChange::DropColumn { table: t("shop", "orders"), column: "note".into() },
                SchemaChange::RenameColumn { table: t("shop", "orders"), from: "a".into(), to: "b".into() },
            ]
        );
    }

    #[test]
    fn change_with_a_new_name_is_a_rename_and_modify_is_a_type_change() {
        assert_eq!(
            parse("d", "ALTER TABLE `x`.`t` CHANGE old_c new_c BIGINT"),
            vec![SchemaChange::RenameColumn { table: t("x", "t"), from: "old_c".into(), to: "new_c".into() }]
        );
        assert_eq!(
            parse("d", "ALTER TABLE t MODIFY v VARCHAR(200)"),
            vec![SchemaChange::ModifyColumn { table: t("d", "t"), column: "v".into(), ty: "VARCHAR(200)".into() }]
        );
    }

    #[test]
    fn truncate_and_unknown_statements_are_reported_not_refused() {
        assert_eq!(parse("d", "TRUNCATE TABLE t"), vec![SchemaChange::Truncate { table: t("d", "t") }]);
        assert!(matches!(parse("d", "FLUSH PRIVILEGES ON nonsense")[0], SchemaChange::Other { .. }));
    }
}
