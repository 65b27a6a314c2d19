//! DDL statements of the binlog, parsed with a SQL parser (`sqlparser`, MySQL dialect) into
//! schema-change events.
//!
//! Rows are always decoded from the binlog's own table maps, which carry every column's name
//! (`binlog_row_metadata=FULL`); what a table map cannot say is that a column was *renamed*
//! rather than dropped and added. The events here say it, so a renamed source column keeps
//! flowing into the same target column; the binlog operator also hands them to the sinks as
//! `ferry_operators::SchemaEvent`s.

use ferry_operators::{ColumnSpec, SchemaChangeKind};
use sqlparser::ast::{AlterTableOperation, ColumnOption, DataType, ObjectName, ObjectNamePart, ObjectType, Statement};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

/// One schema change of one table, as parsed: which table (when the statement names one in a
/// form the parser knows) and what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaChange {
    /// `(database, table)`.
    pub table: Option<(String, String)>,
    /// What changed.
    pub kind: SchemaChangeKind,
}

fn on(table: &(String, String), kind: SchemaChangeKind) -> SchemaChange {
    SchemaChange { table: Some(table.clone()), kind }
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

/// A column's definition from its type and options.
fn spec<'a>(data_type: &DataType, options: impl IntoIterator<Item = &'a ColumnOption>) -> ColumnSpec {
    let mut spec = ColumnSpec { ty: data_type.to_string(), ..ColumnSpec::default() };
    for o in options {
        match o {
            ColumnOption::NotNull => spec.not_null = true,
            ColumnOption::Null => spec.not_null = false,
            ColumnOption::Default(e) => spec.default = Some(e.to_string()).filter(|d| !d.eq_ignore_ascii_case("null")),
            ColumnOption::CharacterSet(n) => spec.charset = Some(unquoted(n)),
            ColumnOption::Collation(n) => spec.collation = Some(unquoted(n)),
            ColumnOption::PrimaryKey(_) => spec.not_null = true,
            _ => {}
        }
    }
    spec
}

fn unquoted(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => i.value.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Parses one binlog QUERY event's statement; `default_db` is the database it ran in.
/// Statements the parser does not know become [`SchemaChange::Other`] (never an error: the
/// table maps stay the source of truth for decoding).
pub fn parse(default_db: &str, sql: &str) -> Vec<SchemaChange> {
    match Parser::parse_sql(&MySqlDialect {}, sql) {
        Ok(statements) => changes(default_db, statements),
        Err(_) => vec![unknown()],
    }
}

/// [`parse`], and in the same pass whether the statement leaves every selected table alone,
/// so that the binlog need not end its epoch at it: each of its statements creates a
/// database, or creates, alters (without a rename), indexes, truncates or drops only tables
/// that `selected(db, table)` refuses, or drops a database holding none
/// (`holds_selected(db)`), or renames tables between names that are all refused. Anything
/// else (a rename into or out of the selection, a statement the parser does not know) may
/// touch one: not foreign.
pub fn parse_foreign(
    default_db: &str,
    sql: &str,
    selected: &dyn Fn(&str, &str) -> bool,
    holds_selected: &dyn Fn(&str) -> bool,
) -> (Vec<SchemaChange>, bool) {
    let Ok(statements) = Parser::parse_sql(&MySqlDialect {}, sql) else { return (vec![unknown()], false) };
    let foreign = foreign(default_db, &statements, selected, holds_selected);
    (changes(default_db, statements), foreign)
}

/// What a statement the parser does not know is.
fn unknown() -> SchemaChange {
    SchemaChange { table: None, kind: SchemaChangeKind::Other }
}

/// The schema changes of parsed statements, in order.
fn changes(default_db: &str, statements: Vec<Statement>) -> Vec<SchemaChange> {
    use SchemaChangeKind as K;
    let mut out = Vec::new();
    for st in statements {
        match st {
            Statement::AlterTable(alter) => {
                let table = qualify(default_db, &alter.name);
                for op in alter.operations {
                    match op {
                        AlterTableOperation::AddColumn { column_def, .. } => {
                            let spec = spec(&column_def.data_type, column_def.options.iter().map(|o| &o.option));
                            out.push(on(&table, K::AddColumn { column: column_def.name.value, spec }))
                        }
                        AlterTableOperation::DropColumn { column_names, .. } => {
                            for c in column_names {
                                out.push(on(&table, K::DropColumn { column: c.value }));
                            }
                        }
                        AlterTableOperation::RenameColumn { old_column_name, new_column_name } => out.push(on(
                            &table,
                            K::RenameColumn { from: old_column_name.value, to: new_column_name.value },
                        )),
                        // `CHANGE old new type`: a rename (when the name differs), then the
                        // definition under the new name.
                        AlterTableOperation::ChangeColumn { old_name, new_name, data_type, options, .. } => {
                            if !old_name.value.eq_ignore_ascii_case(&new_name.value) {
                                out.push(on(
                                    &table,
                                    K::RenameColumn { from: old_name.value, to: new_name.value.clone() },
                                ));
                            }
                            let spec = spec(&data_type, &options);
                            out.push(on(&table, K::ModifyColumn { column: new_name.value, spec }));
                        }
                        AlterTableOperation::ModifyColumn { col_name, data_type, options, .. } => {
                            let spec = spec(&data_type, &options);
                            out.push(on(&table, K::ModifyColumn { column: col_name.value, spec }))
                        }
                        _ => out.push(on(&table, K::Other)),
                    }
                }
            }
            Statement::CreateTable(ct) if !ct.temporary => {
                out.push(on(&qualify(default_db, &ct.name), K::CreateTable));
            }
            Statement::Truncate(t) => {
                for target in t.table_names {
                    out.push(on(&qualify(default_db, &target.name), K::Truncate));
                }
            }
            Statement::Drop { object_type: ObjectType::Table, names, .. } => {
                for n in names {
                    out.push(on(&qualify(default_db, &n), K::Other));
                }
            }
            Statement::RenameTable(renames) => {
                for r in renames {
                    out.push(on(&qualify(default_db, &r.old_name), K::Other));
                }
            }
            _ => out.push(unknown()),
        }
    }
    out
}

/// Whether parsed statements leave every selected table alone (see [`parse_foreign`]).
fn foreign(
    default_db: &str,
    statements: &[Statement],
    selected: &dyn Fn(&str, &str) -> bool,
    holds_selected: &dyn Fn(&str) -> bool,
) -> bool {
    let outside = |name: &ObjectName| {
        let (db, t) = qualify(default_db, name);
        !selected(&db, &t)
    };
    statements.iter().all(|st| match st {
        Statement::CreateDatabase { .. } => true,
        Statement::CreateTable(ct) => outside(&ct.name),
        Statement::AlterTable(alter) => {
            outside(&alter.name)
                && !alter.operations.iter().any(|op| matches!(op, AlterTableOperation::RenameTable { .. }))
        }
        Statement::CreateIndex(ci) => outside(&ci.table_name),
        Statement::Truncate(t) => t.table_names.iter().all(|n| outside(&n.name)),
        Statement::Drop { object_type: ObjectType::Table, names, .. } => names.iter().all(outside),
        Statement::Drop { object_type: ObjectType::Index, table: Some(t), .. } => outside(t),
        Statement::Drop { object_type: ObjectType::Database | ObjectType::Schema, names, .. } => {
            names.iter().all(|n| !holds_selected(&unquoted(n)))
        }
        Statement::RenameTable(renames) => renames.iter().all(|r| outside(&r.old_name) && outside(&r.new_name)),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(db: &str, name: &str, kind: SchemaChangeKind) -> SchemaChange {
        SchemaChange { table: Some((db.into(), name.into())), kind }
    }

    #[test]
    fn alter_statements_become_one_event_per_operation() {
        let got =
            parse("shop", "ALTER TABLE orders ADD COLUMN c INT DEFAULT 7, DROP COLUMN note, RENAME COLUMN a TO b");
        let c = ColumnSpec { ty: "INT".into(), default: Some("7".into()), ..ColumnSpec::default() };
        assert_eq!(
            got,
            vec![
                at("shop", "orders", SchemaChangeKind::AddColumn { column: "c".into(), spec: c }),
                at("shop", "orders", SchemaChangeKind::DropColumn { column: "note".into() }),
                at("shop", "orders", SchemaChangeKind::RenameColumn { from: "a".into(), to: "b".into() }),
            ]
        );
    }

    #[test]
    fn change_with_a_new_name_is_a_rename_then_a_new_definition_and_modify_is_a_new_definition() {
        let big = ColumnSpec { ty: "BIGINT".into(), not_null: true, ..ColumnSpec::default() };
        assert_eq!(
            parse("d", "ALTER TABLE `x`.`t` CHANGE old_c new_c BIGINT NOT NULL"),
            vec![
                at("x", "t", SchemaChangeKind::RenameColumn { from: "old_c".into(), to: "new_c".into() }),
                at("x", "t", SchemaChangeKind::ModifyColumn { column: "new_c".into(), spec: big }),
            ]
        );
        let text = ColumnSpec {
            ty: "VARCHAR(200)".into(),
            charset: Some("latin1".into()),
            collation: Some("latin1_bin".into()),
            default: Some("'x'".into()),
            ..ColumnSpec::default()
        };
        assert_eq!(
            parse("d", "ALTER TABLE t MODIFY v VARCHAR(200) CHARACTER SET latin1 COLLATE latin1_bin NULL DEFAULT 'x'"),
            vec![at("d", "t", SchemaChangeKind::ModifyColumn { column: "v".into(), spec: text })]
        );
    }

    #[test]
    fn statements_on_tables_outside_the_selection_are_foreign_and_renames_into_it_or_unknown_ones_are_not() {
        let selected = |db: &str, t: &str| db == "shop" && t.starts_with("orders");
        let holds = |db: &str| db == "shop";
        let f = |db: &str, sql: &str| parse_foreign(db, sql, &selected, &holds).1;
        for sql in [
            "CREATE TABLE other.t (id INT PRIMARY KEY)",
            "CREATE TABLE IF NOT EXISTS items (id INT)",
            "ALTER TABLE items ADD COLUMN c INT, DROP COLUMN d",
            "CREATE INDEX i ON items (c)",
            "DROP INDEX i ON items",
            "TRUNCATE TABLE other.t",
            "DROP TABLE IF EXISTS items, other.t",
            "CREATE DATABASE shop2",
            "DROP DATABASE other",
            "RENAME TABLE items TO items_old, items_new TO items",
        ] {
            assert!(f("shop", sql), "{sql}");
        }
        for sql in [
            "CREATE TABLE orders_2 (id INT)",
            "ALTER TABLE orders ADD COLUMN c INT",
            "ALTER TABLE items RENAME TO orders_x",
            "CREATE INDEX i ON shop.orders (c)",
            "TRUNCATE TABLE orders",
            "DROP TABLE items, orders",
            "DROP DATABASE shop",
            "RENAME TABLE orders_new TO orders",
            "RENAME TABLE orders TO items",
            "GRANT SELECT ON *.* TO someone",
            "THIS IS NOT SQL",
        ] {
            assert!(!f("shop", sql), "{sql}");
        }
        // The default database names unqualified tables.
        assert!(f("other", "ALTER TABLE orders ADD COLUMN c INT"));
    }

    #[test]
    fn truncate_drop_and_rename_name_their_tables_and_unknown_statements_are_reported_not_refused() {
        assert_eq!(parse("d", "TRUNCATE TABLE t"), vec![at("d", "t", SchemaChangeKind::Truncate)]);
        assert_eq!(
            parse("d", "CREATE TABLE IF NOT EXISTS e.n (id INT PRIMARY KEY)"),
            vec![at("e", "n", SchemaChangeKind::CreateTable)]
        );
        assert_eq!(
            parse("d", "CREATE TEMPORARY TABLE tmp (id INT)"),
            vec![SchemaChange { table: None, kind: SchemaChangeKind::Other }]
        );
        assert_eq!(
            parse("d", "DROP TABLE IF EXISTS t, e.u"),
            vec![at("d", "t", SchemaChangeKind::Other), at("e", "u", SchemaChangeKind::Other)]
        );
        assert_eq!(parse("d", "RENAME TABLE t TO t2"), vec![at("d", "t", SchemaChangeKind::Other)]);
        assert_eq!(
            parse("d", "FLUSH PRIVILEGES ON nonsense")[0],
            SchemaChange { table: None, kind: SchemaChangeKind::Other }
        );
    }
}
