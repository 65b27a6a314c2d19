//! Name templates (F3.2): `${variable}` placeholders in target database and table names.
//!
//! ```text
//!  "${table_name_di_src}_inlong"  ──parse──►  [Var(Table), Lit("_inlong")]  ──render──►  "orders_inlong"
//! ```
//!
//! Built-in variables: `${datasource_name_di_src}`, `${db_name_di_src}`, `${table_name_di_src}`,
//! `${schema_name_di_src}`, `${topic_di_src}`. Any other `${name}` is a field of the record (its
//! value rendered as text), so one source table may fan out to several target tables.
//! `$${` writes a literal `${`.

use crate::schema::TableSchema;
use crate::value::Value;
use std::fmt;

/// A variable a template can use.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Var {
    /// `${datasource_name_di_src}`: the source data source's name.
    Datasource,
    /// `${db_name_di_src}`: the source database.
    Database,
    /// `${schema_name_di_src}`: the source schema (PostgreSQL); empty for MySQL-family sources.
    Schema,
    /// `${table_name_di_src}`: the source table.
    Table,
    /// `${topic_di_src}`: the Kafka topic (Kafka sources); empty otherwise.
    Topic,
    /// `${field}`: a field of the record.
    Field(String),
}

/// The built-in variable names, for messages.
pub const BUILTINS: [&str; 5] =
    ["datasource_name_di_src", "db_name_di_src", "table_name_di_src", "schema_name_di_src", "topic_di_src"];

impl Var {
    fn from_name(name: &str) -> Var {
        match name {
            "datasource_name_di_src" => Var::Datasource,
            "db_name_di_src" => Var::Database,
            "schema_name_di_src" => Var::Schema,
            "table_name_di_src" => Var::Table,
            "topic_di_src" => Var::Topic,
            other => Var::Field(other.to_string()),
        }
    }
    fn name(&self) -> &str {
        match self {
            Var::Datasource => BUILTINS[0],
            Var::Database => BUILTINS[1],
            Var::Table => BUILTINS[2],
            Var::Schema => BUILTINS[3],
            Var::Topic => BUILTINS[4],
            Var::Field(f) => f,
        }
    }
}

/// One piece of a template.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    /// Literal text.
    Lit(String),
    /// A variable, with the byte offset of its `$` in the source text.
    Var(Var, usize),
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Template {
    /// The pieces in order.
    pub parts: Vec<Part>,
}

/// A template that cannot be parsed, or a variable that cannot be resolved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    /// Byte offset in the template text.
    pub offset: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// The source-side names a template is rendered with.
#[derive(Clone, Copy, Debug, Default)]
pub struct Names<'a> {
    /// Data source name.
    pub datasource: &'a str,
    /// Source database.
    pub database: &'a str,
    /// Source schema, if any.
    pub schema: Option<&'a str>,
    /// Source table.
    pub table: &'a str,
    /// Kafka topic, if any.
    pub topic: Option<&'a str>,
}

impl<'a> Names<'a> {
    /// The names of source table `table` of data source `datasource` (no topic).
    pub fn of(datasource: &'a str, table: &'a crate::schema::TableName) -> Names<'a> {
        Names {
            datasource,
            database: &table.database,
            schema: table.schema.as_deref(),
            table: &table.table,
            topic: None,
        }
    }
}

impl Template {
    /// Parses `${var}` placeholders; `$${` escapes a literal `${`.
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut i = 0;
        let b = src.as_bytes();
        while i < b.len() {
            if src[i..].starts_with("$${") {
                lit.push_str("${");
                i += 3;
            } else if src[i..].starts_with("${") {
                let close = src[i + 2..].find('}').ok_or_else(|| TemplateError {
                    offset: i,
                    message: "unclosed `${`: add the closing `}` (write `$${` for a literal `${`)".into(),
                })?;
                let name = &src[i + 2..i + 2 + close];
                let valid =
                    !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.');
                if !valid {
                    return Err(TemplateError {
                        offset: i,
                        message: format!(
                            "`${{{name}}}` is not a variable name: use letters, digits and `_`, \
                             e.g. `${{table_name_di_src}}`"
                        ),
                    });
                }
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                parts.push(Part::Var(Var::from_name(name), i));
                i += close + 3;
            } else {
                let c = src[i..].chars().next().expect("char at boundary");
                lit.push(c);
                i += c.len_utf8();
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template { parts })
    }

    /// Whether the template depends only on the table (no record fields).
    pub fn is_static(&self) -> bool {
        self.fields().next().is_none()
    }

    /// The record fields the template reads, with their offsets.
    pub fn fields(&self) -> impl Iterator<Item = (&str, usize)> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(Var::Field(f), off) => Some((f.as_str(), *off)),
            _ => None,
        })
    }

    /// Checks that every record field exists in `schema`; the error names the variable and the
    /// built-ins.
    pub fn check_fields(&self, schema: &TableSchema) -> Result<(), TemplateError> {
        for (f, offset) in self.fields() {
            if schema.column_index(f).is_none() {
                return Err(TemplateError {
                    offset,
                    message: format!(
                        "unknown variable `${{{f}}}`: it is neither a built-in ({}) nor a column of {}",
                        BUILTINS.map(|b| format!("${{{b}}}")).join(", "),
                        schema.name
                    ),
                });
            }
        }
        Ok(())
    }

    /// Renders the template. `row` supplies record fields (`None` when rendering statically).
    pub fn render(&self, names: &Names<'_>, row: Option<(&TableSchema, &[Value])>) -> Result<String, TemplateError> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(v, offset) => match v {
                    Var::Datasource => out.push_str(names.datasource),
                    Var::Database => out.push_str(names.database),
                    Var::Schema => out.push_str(names.schema.unwrap_or("")),
                    Var::Table => out.push_str(names.table),
                    Var::Topic => out.push_str(names.topic.unwrap_or("")),
                    Var::Field(f) => {
                        let (schema, row) = row.ok_or_else(|| TemplateError {
                            offset: *offset,
                            message: format!("`${{{f}}}` needs a record"),
                        })?;
                        let idx = schema.column_index(f).ok_or_else(|| TemplateError {
                            offset: *offset,
                            message: format!("unknown field `{f}` in {}", schema.name),
                        })?;
                        match &row[idx] {
                            Value::Null => {
                                return Err(TemplateError {
                                    offset: *offset,
                                    message: format!("field `{f}` is NULL, so the name cannot be built"),
                                })
                            }
                            v => out.push_str(&v.to_string()),
                        }
                    }
                },
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.parts {
            match p {
                Part::Lit(s) => f.write_str(&s.replace("${", "$${"))?,
                Part::Var(v, _) => write!(f, "${{{}}}", v.name())?,
            }
        }
        Ok(())
    }
}

/// Checks that a resolved database or table name can be used by every target: 1 to 64
/// characters, no `/`, `\`, NUL or control characters, not `.` or `..`, no leading or trailing
/// space. Returns the reason otherwise.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.chars().count() > 64 {
        return Err(format!("`{name}` is longer than 64 characters"));
    }
    if let Some(c) = name.chars().find(|c| matches!(c, '/' | '\\') || c.is_control()) {
        return Err(format!("`{}` contains the character {c:?}", name.escape_debug()));
    }
    if name == "." || name == ".." {
        return Err(format!("`{name}` is not a name"));
    }
    if name.starts_with(' ') || name.ends_with(' ') {
        return Err(format!("`{name}` starts or ends with a space"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Column, ColumnType, TableName};
    use proptest::prelude::*;

    fn names() -> Names<'static> {
        Names { datasource: "src", database: "db1", schema: None, table: "table1", topic: None }
    }

    #[test]
    fn suffix_template_maps_table1_to_table1_inlong() {
        let t = Template::parse("${table_name_di_src}_inlong").unwrap();
        assert_eq!(t.render(&names(), None).unwrap(), "table1_inlong");
        assert!(t.is_static());
    }

    #[test]
    fn field_variable_reads_the_record() {
        let schema = TableSchema {
            name: TableName::new("db1", "table1"),
            columns: vec![Column::new("name", ColumnType::String { max_chars: None, fixed: false }, true)],
            primary_key: vec![],
            unique_keys: vec![],
            version: 1,
        };
        let t = Template::parse("${name}_di").unwrap();
        assert!(!t.is_static());
        t.check_fields(&schema).unwrap();
        let row = vec![Value::Text("inlong".into())];
        assert_eq!(t.render(&names(), Some((&schema, &row))).unwrap(), "inlong_di");
        let err = Template::parse("${nme}_di").unwrap().check_fields(&schema).unwrap_err();
        assert!(err.message.contains("unknown variable `${nme}`"), "{}", err.message);
        assert_eq!(err.offset, 0);
        let null = vec![Value::Null];
        assert!(t.render(&names(), Some((&schema, &null))).is_err());
    }

    #[test]
    fn unclosed_and_empty_variables_are_errors_with_offsets() {
        assert_eq!(Template::parse("ab${x").unwrap_err().offset, 2);
        assert_eq!(Template::parse("a${}").unwrap_err().offset, 1);
        assert_eq!(Template::parse("a${a b}").unwrap_err().offset, 1);
    }

    #[test]
    fn illegal_names_are_named() {
        assert!(check_name("").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
        assert!(check_name("..").is_err());
        check_name("orders_inlong").unwrap();
    }

    fn part() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z_0-9$}{ .-]{0,6}",
            prop::sample::select(BUILTINS.to_vec()).prop_map(|b| format!("${{{b}}}")),
            "[a-z_]{1,8}".prop_map(|f| format!("${{{f}}}")),
        ]
    }

    proptest! {
        #[test]
        fn text_without_dollar_renders_to_itself(s in "[^$]{0,40}") {
            let t = Template::parse(&s).unwrap();
            prop_assert_eq!(t.render(&names(), None).unwrap(), s);
        }

        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = Template::parse(&s);
        }

        #[test]
        fn display_then_parse_is_identity(parts in prop::collection::vec(part(), 0..6)) {
            let src: String = parts.concat();
            if let Ok(t) = Template::parse(&src) {
                let again = Template::parse(&t.to_string()).unwrap();
                let strip = |t: &Template| t.parts.iter().map(|p| match p {
                    Part::Var(v, _) => format!("V{}", v.name()),
                    Part::Lit(l) => format!("L{l}"),
                }).collect::<Vec<_>>();
                prop_assert_eq!(strip(&again), strip(&t));
            }
        }

        #[test]
        fn builtins_render_their_names(db in "[a-z]{1,8}", tb in "[a-z]{1,8}") {
            let t = Template::parse("${db_name_di_src}.${table_name_di_src}").unwrap();
            let n = Names { database: &db, table: &tb, ..names() };
            prop_assert_eq!(t.render(&n, None).unwrap(), format!("{db}.{tb}"));
        }
    }
}
