//! Target DDL for a source schema change under the `auto` policy (F8.1): the statements that
//! make a target table follow one `ALTER TABLE … ADD | DROP | RENAME | MODIFY COLUMN` or
//! `TRUNCATE` of its source table, in the target's dialect.
//!
//! ```text
//!  SchemaChangeKind ──► alter(dialect, table, change, current columns) ──► statements
//!  (parsed source DDL)          │                                          (empty: the target
//!                               └─ checked against the target's columns     has it already)
//! ```
//!
//! Each statement list is idempotent against the target's current columns: a change the
//! target already has (a restart after the `ALTER` ran, before it was recorded) yields no
//! statement, so a replayed epoch never applies a change twice. Types of added and modified
//! columns go through the same mapping as `ferry ddl` ([`super::types`]).

use super::spelling::parse_column_type;
use super::types::{self, ColumnIn};
use super::{ColumnDetail, DdlDialect};
use crate::plan::config::PostgresTypes;
use ferry_operators::{Column, ColumnSpec, SchemaChangeKind};

/// A column of the target table as the target reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetColumn {
    /// Its name.
    pub name: String,
    /// Its full type (MySQL family: `COLUMN_TYPE`; PostgreSQL: `format_type`).
    pub ty: String,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// MySQL family: the character set and collation of a text column.
    pub charset: Option<(String, String)>,
}

/// What the statements for one change do to the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alter {
    /// The statements, in order (empty: nothing to do).
    pub statements: Vec<String>,
    /// The type-loss lines of an added or modified column.
    pub losses: Vec<types::Loss>,
}

fn find<'a>(current: &'a [TargetColumn], name: &str) -> Option<&'a TargetColumn> {
    current.iter().find(|c| c.name.eq_ignore_ascii_case(name))
}

/// The record-model column and its mapped type for a column definition of a source statement.
fn mapped(
    dialect: DdlDialect,
    name: &str,
    spec: &ColumnSpec,
    pg: &PostgresTypes,
) -> Result<(Column, types::Mapped), String> {
    let lower = spec.ty.to_ascii_lowercase();
    let (ty, source_type) = match &spec.column_type {
        // A source of another dialect gave the record-model type: mapped like `ferry ddl`.
        Some(t) => (t.clone(), None),
        None => {
            let data_type = lower.split(|c: char| c == '(' || c.is_whitespace()).next().unwrap_or("");
            let ty = parse_column_type(data_type, &lower, spec.charset.as_deref())
                .map_err(|e| format!("column {name}: {e}"))?;
            (ty, Some(lower.clone()))
        }
    };
    let column = Column::new(name, ty, !spec.not_null);
    // The MySQL family takes a MySQL statement's own spelling; the others map the type.
    let detail = ColumnDetail { source_type, ..ColumnDetail::default() };
    let input = ColumnIn { column: &column, detail: Some(&detail), charset: None, collation: None, key: false };
    let mut m = types::map(dialect, input, pg);
    if matches!(dialect, DdlDialect::Mysql | DdlDialect::Mariadb) {
        if let Some(cs) = &spec.charset {
            m.sql.push_str(&format!(" CHARACTER SET {cs}"));
        }
        if let Some(coll) = &spec.collation {
            m.sql.push_str(&format!(" COLLATE {coll}"));
        }
    }
    Ok((column, m))
}

/// ` DEFAULT x` in `dialect`, or nothing (also when the dialect cannot take it).
fn default_clause(dialect: DdlDialect, column: &Column, spec: &ColumnSpec) -> String {
    match spec.default.as_deref().map(|d| types::default(dialect, column, d)) {
        Some(Ok(Some(d))) => format!(" DEFAULT {d}"),
        _ => String::new(),
    }
}

/// The statements that make `db.table` (its key columns named by `key`) take `change`, given
/// the target's current columns. `keep_dropped`: a dropped column stays, made nullable; `pg`:
/// the plan's PostgreSQL type choices. An error says why the target cannot take the change.
#[allow(clippy::too_many_arguments)]
pub fn alter(
    dialect: DdlDialect,
    db: &str,
    table: &str,
    key: &[String],
    change: &SchemaChangeKind,
    current: &[TargetColumn],
    keep_dropped: bool,
    pg: &PostgresTypes,
) -> Result<Alter, String> {
    use SchemaChangeKind as K;
    let q = dialect.qualified(db, table);
    let id = |n: &str| dialect.ident(n);
    let none = Alter { statements: Vec::new(), losses: Vec::new() };
    let mysql_family = matches!(dialect, DdlDialect::Mysql | DdlDialect::Mariadb);
    let missing = |n: &str| format!("the target table {db}.{table} has no column {n}");
    Ok(match change {
        K::AddColumn { column, spec } => {
            if find(current, column).is_some() {
                return Ok(none);
            }
            let (col, m) = mapped(dialect, column, spec, pg)?;
            let default = default_clause(dialect, &col, spec);
            // NOT NULL only with a default: the target's existing rows need a value (and not
            // when a type choice writes NULL).
            let not_null = spec.not_null && !default.is_empty() && !m.nullable;
            let null = match (not_null, dialect) {
                (true, _) => " NOT NULL",
                (false, DdlDialect::Doris) => " NULL",
                (false, _) => "",
            };
            let sql = match dialect {
                DdlDialect::Postgres => format!("ALTER TABLE {q} ADD COLUMN {} {}{default}{null}", id(column), m.sql),
                _ => format!("ALTER TABLE {q} ADD COLUMN {} {}{null}{default}", id(column), m.sql),
            };
            Alter { statements: vec![sql], losses: m.losses }
        }
        K::DropColumn { column } => {
            let Some(have) = find(current, column) else { return Ok(none) };
            if !keep_dropped {
                return Ok(Alter {
                    statements: vec![format!("ALTER TABLE {q} DROP COLUMN {}", id(&have.name))],
                    losses: vec![],
                });
            }
            if have.nullable {
                return Ok(none);
            }
            if key.iter().any(|k| k.eq_ignore_ascii_case(column)) {
                return Err(format!("column {column} is part of the target's key: it cannot be kept as nullable"));
            }
            let sql = match dialect {
                DdlDialect::Postgres => format!("ALTER TABLE {q} ALTER COLUMN {} DROP NOT NULL", id(&have.name)),
                _ => {
                    let cs = match (&have.charset, mysql_family) {
                        (Some((cs, coll)), true) => format!(" CHARACTER SET {cs} COLLATE {coll}"),
                        _ => String::new(),
                    };
                    format!("ALTER TABLE {q} MODIFY COLUMN {} {}{cs} NULL", id(&have.name), have.ty)
                }
            };
            Alter { statements: vec![sql], losses: vec![] }
        }
        K::RenameColumn { from, to } => match (find(current, from), find(current, to)) {
            (None, Some(_)) => none,
            (None, None) => return Err(missing(from)),
            (Some(_), Some(_)) if !from.eq_ignore_ascii_case(to) => {
                return Err(format!("the target table {db}.{table} has both {from} and {to}"))
            }
            (Some(have), _) => {
                let sql = match dialect {
                    DdlDialect::Doris => format!("ALTER TABLE {q} RENAME COLUMN {} {}", id(&have.name), id(to)),
                    _ => format!("ALTER TABLE {q} RENAME COLUMN {} TO {}", id(&have.name), id(to)),
                };
                Alter { statements: vec![sql], losses: vec![] }
            }
        },
        K::ModifyColumn { column, spec } => {
            let Some(have) = find(current, column) else { return Err(missing(column)) };
            let (col, m) = mapped(dialect, column, spec, pg)?;
            let not_null = spec.not_null && !m.nullable;
            let is_key = key.iter().any(|k| k.eq_ignore_ascii_case(column));
            let c = id(&have.name);
            let statements = match dialect {
                DdlDialect::Postgres => {
                    let mut s = vec![format!("ALTER TABLE {q} ALTER COLUMN {c} TYPE {} USING {c}::{}", m.sql, m.sql)];
                    match (not_null, is_key) {
                        (true, _) => s.push(format!("ALTER TABLE {q} ALTER COLUMN {c} SET NOT NULL")),
                        (false, false) => s.push(format!("ALTER TABLE {q} ALTER COLUMN {c} DROP NOT NULL")),
                        (false, true) => {}
                    }
                    match default_clause(dialect, &col, spec).strip_prefix(" DEFAULT ") {
                        Some(d) => s.push(format!("ALTER TABLE {q} ALTER COLUMN {c} SET DEFAULT {d}")),
                        None => s.push(format!("ALTER TABLE {q} ALTER COLUMN {c} DROP DEFAULT")),
                    }
                    s
                }
                DdlDialect::Doris => {
                    let null = if is_key { "" } else { " NULL" };
                    vec![format!("ALTER TABLE {q} MODIFY COLUMN {c} {}{null}", m.sql)]
                }
                _ => {
                    let null = if not_null { " NOT NULL" } else { "" };
                    let default = default_clause(dialect, &col, spec);
                    vec![format!("ALTER TABLE {q} MODIFY COLUMN {c} {}{null}{default}", m.sql)]
                }
            };
            Alter { statements, losses: m.losses }
        }
        K::Truncate => Alter { statements: vec![format!("TRUNCATE TABLE {q}")], losses: vec![] },
        K::CreateTable | K::Other => none,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: &str, nullable: bool) -> TargetColumn {
        TargetColumn { name: name.into(), ty: ty.into(), nullable, charset: None }
    }

    fn spec(ty: &str) -> ColumnSpec {
        ColumnSpec { ty: ty.into(), ..ColumnSpec::default() }
    }

    fn run(d: DdlDialect, change: SchemaChangeKind, current: &[TargetColumn], keep: bool) -> Vec<String> {
        alter(d, "db", "t", &["id".into()], &change, current, keep, &PostgresTypes::default()).unwrap().statements
    }

    #[test]
    fn each_change_becomes_the_dialects_statement() {
        use SchemaChangeKind as K;
        let cur = [col("id", "int", false), col("a", "int", true)];
        let add = K::AddColumn {
            column: "c".into(),
            spec: ColumnSpec { default: Some("7".into()), not_null: true, ..spec("INT") },
        };
        assert_eq!(
            run(DdlDialect::Mariadb, add.clone(), &cur, false),
            ["ALTER TABLE `db`.`t` ADD COLUMN `c` int NOT NULL DEFAULT 7"]
        );
        assert_eq!(
            run(DdlDialect::Postgres, add, &cur, false),
            [r#"ALTER TABLE "db"."t" ADD COLUMN "c" integer DEFAULT 7 NOT NULL"#]
        );
        let rename = K::RenameColumn { from: "a".into(), to: "b".into() };
        assert_eq!(
            run(DdlDialect::Mysql, rename.clone(), &cur, false),
            ["ALTER TABLE `db`.`t` RENAME COLUMN `a` TO `b`"]
        );
        assert_eq!(run(DdlDialect::Doris, rename, &cur, false), ["ALTER TABLE `db`.`t` RENAME COLUMN `a` `b`"]);
        let modify = K::ModifyColumn { column: "a".into(), spec: spec("BIGINT") };
        assert_eq!(
            run(DdlDialect::Mariadb, modify.clone(), &cur, false),
            ["ALTER TABLE `db`.`t` MODIFY COLUMN `a` bigint"]
        );
        assert_eq!(
            run(DdlDialect::Postgres, modify, &cur, false),
            [
                r#"ALTER TABLE "db"."t" ALTER COLUMN "a" TYPE bigint USING "a"::bigint"#,
                r#"ALTER TABLE "db"."t" ALTER COLUMN "a" DROP NOT NULL"#,
                r#"ALTER TABLE "db"."t" ALTER COLUMN "a" DROP DEFAULT"#,
            ]
        );
        assert_eq!(run(DdlDialect::Postgres, K::Truncate, &cur, false), [r#"TRUNCATE TABLE "db"."t""#]);
    }

    #[test]
    fn a_change_the_target_has_already_yields_no_statement() {
        use SchemaChangeKind as K;
        let after = [col("id", "int", false), col("b", "int", true), col("c", "int", true)];
        assert!(
            run(DdlDialect::Mariadb, K::AddColumn { column: "C".into(), spec: spec("INT") }, &after, false).is_empty()
        );
        assert!(run(DdlDialect::Mariadb, K::DropColumn { column: "gone".into() }, &after, false).is_empty());
        assert!(
            run(DdlDialect::Mariadb, K::RenameColumn { from: "a".into(), to: "b".into() }, &after, false).is_empty()
        );
        // Kept columns: made nullable once.
        assert!(run(DdlDialect::Postgres, K::DropColumn { column: "b".into() }, &after, true).is_empty());
    }

    #[test]
    fn kept_dropped_columns_become_nullable_with_their_type_and_charset() {
        let mut note = col("note", "varchar(20)", false);
        note.charset = Some(("latin1".into(), "latin1_bin".into()));
        let drop = SchemaChangeKind::DropColumn { column: "note".into() };
        assert_eq!(
            run(DdlDialect::Mariadb, drop.clone(), std::slice::from_ref(&note), true),
            ["ALTER TABLE `db`.`t` MODIFY COLUMN `note` varchar(20) CHARACTER SET latin1 COLLATE latin1_bin NULL"]
        );
        assert_eq!(run(DdlDialect::Mariadb, drop, &[note], false), ["ALTER TABLE `db`.`t` DROP COLUMN `note`"]);
    }

    #[test]
    fn a_change_the_target_cannot_take_says_why() {
        use SchemaChangeKind as K;
        let cur = [col("id", "int", false)];
        let e = alter(
            DdlDialect::Mariadb,
            "db",
            "t",
            &[],
            &K::ModifyColumn { column: "x".into(), spec: spec("INT") },
            &cur,
            false,
            &PostgresTypes::default(),
        );
        assert_eq!(e.unwrap_err(), "the target table db.t has no column x");
        let e = alter(
            DdlDialect::Mariadb,
            "db",
            "t",
            &["id".into()],
            &K::DropColumn { column: "id".into() },
            &cur,
            true,
            &PostgresTypes::default(),
        );
        assert!(e.unwrap_err().contains("part of the target's key"));
    }
}
