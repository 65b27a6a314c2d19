//! Compiling a checked plan against the source's catalog: the table selection, each table's
//! route, transform and target schema, the key rule (F4.2); and compiling a table again when
//! its source schema changes while running ([`Compiled::evolve`]).

use super::check::{dedupe, Ctx};
use super::config::*;
use super::discovery::{self, SourceCatalog};
use super::{yaml, Plan, PlanErrors};
use ferry_operators::expr::Expr;
use ferry_operators::schema::{Catalog, Column, TableId, TableName, TableSchema};
use ferry_operators::template::{check_name, Names, Template};
use ferry_operators::transform::{OpFilter, Proj, Transform};
use regex::Regex;
use serde_json::Value as Json;

/// The compiled route and transform of one selected source table.
#[derive(Debug, Clone)]
pub struct TablePlan {
    /// Target database name template.
    pub database: Template,
    /// Target table name template.
    pub table: Template,
    /// The names when both templates are static.
    pub static_names: Option<(String, String)>,
    /// Operation filter, row filter and projection.
    pub transform: Transform,
    /// The row filter's text, to compile it again for a changed source schema.
    pub filter_src: Option<String>,
    /// Name and text of every expression column (added and metadata), in projection order.
    pub exprs: Vec<(String, String)>,
    /// Source columns the plan drops (by name).
    pub dropped: Vec<String>,
    /// The target table's schema (name: the static target name, or the templates' text).
    pub target_schema: TableSchema,
}

/// A plan compiled against the source's catalog: what the dataflow is built from.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The checked plan.
    pub plan: Plan,
    /// The selected source tables; a [`TableId`] indexes this and `tables`.
    pub catalog: Catalog,
    /// Per selected table, its route and transform.
    pub tables: Vec<TablePlan>,
    /// Per selected table, per column, the source character set (MySQL-family sources).
    pub charsets: Vec<Vec<Option<String>>>,
    /// Per selected table, per column, the source collation of text columns (MySQL-family
    /// sources).
    pub collations: Vec<Vec<Option<String>>>,
    /// Per selected table, the source's table comment and column details (MySQL-family
    /// sources; default for generated ones): what a target DDL needs beyond the types.
    pub details: Vec<discovery::TableDetail>,
    /// Per selected table, the columns a database target dropped in earlier runs (policy
    /// `auto`): rows replayed from before the drop do not bring them back.
    pub ddl_dropped: Vec<Vec<String>>,
    /// The plan's table selection, compiled.
    selection: Selection,
}

/// `tables.include` minus `tables.exclude`, compiled once: which source tables a plan takes.
#[derive(Debug, Clone)]
pub(crate) struct Selection {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
}

impl Selection {
    /// From a checked plan (its patterns compile).
    pub(crate) fn new(tables: &TableSelection) -> Selection {
        let re = |p: &String| Regex::new(&anchored(p)).expect("checked regex");
        Selection { include: tables.include.iter().map(re).collect(), exclude: tables.exclude.iter().map(re).collect() }
    }

    /// Which databases may hold a taken `db.table`: for discovery, to skip the others
    /// before listing their tables.
    pub(crate) fn database_filter(&self) -> DatabaseFilter {
        DatabaseFilter::new(self.include.iter().map(|r| r.as_str()))
    }

    /// Whether `db.table` is taken.
    fn takes(&self, name: &str) -> bool {
        self.include.iter().any(|r| r.is_match(name)) && !self.exclude.iter().any(|r| r.is_match(name))
    }

    /// Whether the table `name` is taken, by any of its names.
    pub(crate) fn takes_table(&self, name: &TableName) -> bool {
        self.takes_any(&selection_names(name))
    }

    /// Whether a table known by any of `names` is taken (a PostgreSQL table is
    /// `db.schema.table` and `schema.table`): some name included, none excluded.
    fn takes_any(&self, names: &[String]) -> bool {
        let any = |rs: &[Regex]| names.iter().any(|n| rs.iter().any(|r| r.is_match(n)));
        any(&self.include) && !any(&self.exclude)
    }
}

/// A selection pattern as it matches: the whole name.
fn anchored(pattern: &str) -> String {
    format!("^(?:{pattern})$")
}

/// Whether a database may hold a table some include pattern takes: whether `db.` is the
/// start of a name one of the (anchored) patterns can match. Each pattern runs as a lazy DFA
/// over the prefix; a database is left out only when every pattern's automaton is dead after
/// `db.` (no name that starts so can match it). Exclusions are not consulted (a database may
/// hold a table no exclusion takes), and an automaton that cannot tell (one it gives up on)
/// keeps the database.
pub(crate) struct DatabaseFilter {
    dfas: Vec<Option<(regex_automata::hybrid::dfa::DFA, std::cell::RefCell<regex_automata::hybrid::dfa::Cache>)>>,
}

impl DatabaseFilter {
    /// From anchored include patterns (as [`Selection`] keeps them).
    fn new<'a>(patterns: impl Iterator<Item = &'a str>) -> Self {
        let dfas = patterns
            .map(|p| {
                let dfa = regex_automata::hybrid::dfa::DFA::new(p).ok()?;
                let cache = std::cell::RefCell::new(dfa.create_cache());
                Some((dfa, cache))
            })
            .collect();
        DatabaseFilter { dfas }
    }

    /// Whether `db` may hold a taken table.
    pub(crate) fn may_hold(&self, db: &str) -> bool {
        let prefix = format!("{db}.");
        self.dfas.iter().any(|d| match d {
            None => true,
            Some((dfa, cache)) => prefix_may_match(dfa, &mut cache.borrow_mut(), prefix.as_bytes()),
        })
    }
}

/// Whether some haystack starting with `prefix` may match the anchored `dfa` (`true` when the
/// automaton cannot tell).
fn prefix_may_match(
    dfa: &regex_automata::hybrid::dfa::DFA,
    cache: &mut regex_automata::hybrid::dfa::Cache,
    prefix: &[u8],
) -> bool {
    let input = regex_automata::Input::new(prefix).anchored(regex_automata::Anchored::Yes);
    let Ok(mut state) = dfa.start_state_forward(cache, &input) else { return true };
    for &b in prefix {
        match dfa.next_state(cache, state, b) {
            Ok(s) if s.is_dead() => return false,
            Ok(s) if s.is_quit() => return true,
            Ok(s) => state = s,
            Err(_) => return true,
        }
    }
    true
}

/// The names a table's selection and transforms match: its full name, and `schema.table` for
/// sources with schemas.
fn selection_names(name: &TableName) -> Vec<String> {
    std::iter::once(name.to_string()).chain(name.schema.as_ref().map(|s| format!("{s}.{}", name.table))).collect()
}

impl Compiled {
    /// Whether the plan's selection (`tables.include` minus `tables.exclude`) takes the
    /// source table `db.table`.
    pub fn selects(&self, name: &str) -> bool {
        self.selection.takes(name)
    }

    /// Whether the selection takes a source table by any of its names (`db.table`, or
    /// `db.schema.table` and `schema.table`).
    pub fn selects_table(&self, name: &TableName) -> bool {
        self.selection.takes_table(name)
    }

    /// The compiled plan of one table.
    pub fn table(&self, id: TableId) -> &TablePlan {
        &self.tables[id as usize]
    }

    /// The transform and target schema of a table whose source schema changed while running.
    ///
    /// Columns the plan writes keep their order; a source column that disappeared leaves the
    /// target schema when the plan follows drops (`schema_changes` `auto` without
    /// `keep_dropped_columns`; keys are remapped, rows are routed by their own schema's key),
    /// else it is written as NULL. Expressions are compiled again against the new source
    /// schema, and source columns the plan has never seen are appended at the end (unless the
    /// plan drops them by name, or its policy for added columns is not `auto`: then the target
    /// keeps its columns).
    pub fn evolve(&self, id: TableId, source: &TableSchema) -> Result<(Transform, TableSchema), String> {
        let tp = self.table(id);
        let compiled = self.catalog.get(id);
        let fail = |e: ferry_operators::expr::ExprError| {
            format!("table {} after its schema changed: {}", source.name, e.message)
        };
        let mut exprs = tp.exprs.iter();
        let mut projection = Vec::new();
        let mut columns = Vec::new();
        let follow_drops = self.plan.raw.schema_changes.follows_drops();
        // Positions (in the plan's target schema) of columns this version does not have.
        let mut absent: Vec<usize> = Vec::new();
        for (pos, (p, target)) in tp.transform.projection.iter().zip(&tp.target_schema.columns).enumerate() {
            match p {
                Proj::Col(i) => match source.column_index(&compiled.columns[*i].name) {
                    Some(j) => {
                        projection.push(Proj::Col(j));
                        columns.push(target.clone());
                    }
                    // Not in this version of the source table: when the plan follows drops,
                    // the column leaves the target's rows (a restart may replay rows from before
                    // an added column too: the target gets it only with the ALTER), else NULL.
                    None if follow_drops => absent.push(pos),
                    None => {
                        projection.push(Proj::Expr(Box::new(Expr::compile("NULL", source).map_err(fail)?)));
                        columns.push(Column { nullable: true, ..target.clone() });
                    }
                },
                Proj::Expr(_) => {
                    let (_, text) = exprs.next().expect("one text per expression");
                    projection.push(Proj::Expr(Box::new(Expr::compile(text, source).map_err(fail)?)));
                    columns.push(target.clone());
                }
            }
        }
        // A new source column reaches the target only when the plan follows added columns.
        let add = ferry_operators::SchemaChangeKind::AddColumn { column: String::new(), spec: Default::default() };
        let follow_added = self.plan.raw.schema_changes.policy_for(&add) == DdlPolicy::Auto;
        for (j, c) in source.columns.iter().enumerate().filter(|_| follow_added) {
            let known = compiled.column_index(&c.name).is_some();
            let ddl_dropped = self.ddl_dropped.get(id as usize).into_iter().flatten();
            let dropped = tp.dropped.iter().chain(ddl_dropped).any(|d| d.eq_ignore_ascii_case(&c.name));
            if !known && !dropped {
                projection.push(Proj::Col(j));
                columns.push(Column { nullable: true, ..c.clone() });
            }
        }
        let filter = tp.filter_src.as_deref().map(|f| Expr::compile(f, source)).transpose().map_err(fail)?;
        // Keys keep pointing at their columns; a key that lost a column is no key any more.
        let base = &tp.target_schema;
        let moved = |i: usize| -> Option<usize> {
            (!absent.contains(&i)).then(|| i - absent.iter().filter(|&&a| a < i).count())
        };
        let remap = |key: &[usize]| -> Option<Vec<usize>> { key.iter().map(|&i| moved(i)).collect() };
        let target = TableSchema {
            columns,
            version: source.version,
            primary_key: remap(&base.primary_key).unwrap_or_default(),
            unique_keys: base.unique_keys.iter().filter_map(|k| remap(k)).collect(),
            name: base.name.clone(),
        };
        Ok((Transform::new(tp.transform.ops, filter, projection, source.columns.len()), target))
    }
}

/// Compiles a checked plan against the source's full catalog: table selection, routes,
/// transforms, metadata columns and the key rule (F4.2). Returns every error.
pub fn compile(plan: Plan, source: &SourceCatalog) -> Result<Compiled, PlanErrors> {
    let full = &source.catalog;
    let mut charsets = Vec::new();
    let mut collations = Vec::new();
    let mut details = Vec::new();
    let doc = yaml::parse(&plan.text).expect("checked plan parses");
    let mut ctx = Ctx { file: &plan.file, doc: &doc, errors: Vec::new() };
    let raw = &plan.raw;
    let re = |p: &String| Regex::new(&format!("^(?:{p})$")).expect("checked regex");
    let selection = Selection::new(&raw.tables);
    let transforms: Vec<Regex> = raw.transforms.iter().map(|t| re(&t.tables)).collect();
    let mut catalog = Catalog::default();
    let mut tables = Vec::new();
    let ops = OpFilter {
        insert: !raw.operations.skip.contains(&OpKind::Insert),
        update: !raw.operations.skip.contains(&OpKind::Update),
        delete: !raw.operations.skip.contains(&OpKind::Delete),
    };
    let strict = raw.semantics == Semantics::ExactlyOnce || raw.write_mode == WriteMode::Upsert;
    for schema in &full.tables {
        let name = schema.name.to_string();
        let names = selection_names(&schema.name);
        if !selection.takes_any(&names) {
            continue;
        }
        let tx = transforms.iter().position(|r| names.iter().any(|n| r.is_match(n)));
        let tx_path = tx.map(|i| format!("transforms[{i}]"));
        let t = tx.map(|i| &raw.transforms[i]);
        if strict && !schema.has_key() {
            let why = match (raw.semantics, raw.write_mode) {
                (Semantics::ExactlyOnce, WriteMode::Upsert) => "exactly-once and upsert need",
                (Semantics::ExactlyOnce, _) => "exactly-once needs",
                _ => "upsert needs",
            };
            ctx.err_at(
                if raw.write_mode == WriteMode::Upsert { "write_mode" } else { "semantics" },
                false,
                format!(
                    "table {name}: no primary key or unique index; {why} one. Remove it from the source \
                     selection (`tables.exclude`) or use at-least-once + append"
                ),
            );
            continue;
        }
        // Route templates.
        let route = t.and_then(|t| t.route.as_ref());
        let route_path =
            if route.is_some() { format!("{}.route", tx_path.clone().unwrap_or_default()) } else { "route".into() };
        let pick = |k: &str, own: Option<&String>, task: &Option<String>, default: &str| -> (String, String) {
            match (own, task) {
                (Some(t), _) => (t.clone(), format!("{route_path}.{k}")),
                (None, Some(t)) => (t.clone(), format!("route.{k}")),
                (None, None) => (default.to_string(), format!("route.{k}")),
            }
        };
        // A source with schemas (PostgreSQL) routes each schema to a database (MySQL family)
        // or schema (PostgreSQL) of its name by default, so `a.t` and `b.t` stay apart.
        let db_default = if schema.name.schema.is_some() { "${schema_name_di_src}" } else { "${db_name_di_src}" };
        let (db_src, db_path) =
            pick("database", route.and_then(|r| r.database.as_ref()), &raw.route.database, db_default);
        let (tb_src, tb_path) =
            pick("table", route.and_then(|r| r.table.as_ref()), &raw.route.table, "${table_name_di_src}");
        let db_t = Template::parse(&db_src).expect("checked template");
        let tb_t = Template::parse(&tb_src).expect("checked template");
        let names = Names::of(&plan.source_name, &schema.name);
        let mut ok = true;
        // Projection.
        let mut projection = Vec::new();
        let mut columns: Vec<Column> = Vec::new();
        let mut key_map = vec![None; schema.columns.len()];
        if let Some((t, p)) = t.zip(tx_path.as_ref()) {
            for (i, d) in t.drop.iter().enumerate() {
                if schema.column_index(d).is_none() {
                    ctx.err_at(&format!("{p}.drop[{i}]"), false, unknown_column(d, schema));
                    ok = false;
                }
            }
            for from in t.rename.keys() {
                if schema.column_index(from).is_none() {
                    ctx.err_at(&format!("{p}.rename.{from}"), true, unknown_column(from, schema));
                    ok = false;
                }
            }
        }
        for (i, c) in schema.columns.iter().enumerate() {
            if t.is_some_and(|t| t.drop.iter().any(|d| schema.column_index(d) == Some(i))) {
                continue;
            }
            let new_name = t
                .and_then(|t| t.rename.iter().find(|(from, _)| schema.column_index(from) == Some(i)))
                .map(|(_, to)| to.clone())
                .unwrap_or_else(|| c.name.clone());
            key_map[i] = Some(columns.len());
            projection.push(Proj::Col(i));
            columns.push(Column { name: new_name, ..c.clone() });
        }
        let mut added: Vec<(String, String, String)> = Vec::new();
        let mut exprs: Vec<(String, String)> = Vec::new();
        if let Some((t, p)) = t.zip(tx_path.as_ref()) {
            for (col, v) in &t.add {
                let path = format!("{p}.add.{col}");
                let text = match v {
                    Json::String(s) => s.clone(),
                    Json::Number(n) => n.to_string(),
                    Json::Bool(b) => b.to_string(),
                    Json::Null => "NULL".into(),
                    _ => {
                        ctx.err_at(
                            &path,
                            false,
                            "an added column is an expression string, e.g. `'eu'` or `upper(name)`".to_string(),
                        );
                        ok = false;
                        continue;
                    }
                };
                added.push((col.clone(), text, path));
            }
        }
        for (i, m) in raw.metadata.iter().enumerate() {
            added.push((m.column.clone(), m.field.expr().into(), format!("metadata[{i}].field")));
        }
        for (col, text, path) in added {
            exprs.push((col.clone(), text.clone()));
            match Expr::compile(&text, schema) {
                Ok(e) => {
                    columns.push(Column { name: col, ty: e.ty(), nullable: e.nullable() });
                    projection.push(Proj::Expr(Box::new(e)));
                }
                Err(e) => {
                    ctx.err_in_scalar(&path, e.offset, format!("in `{text}` for table {name}: {}", e.message));
                    ok = false;
                }
            }
        }
        {
            let mut seen = std::collections::HashSet::new();
            for c in &columns {
                if !seen.insert(c.name.to_ascii_lowercase()) {
                    // Point at what introduced the second copy: a rename, an added column, a metadata column.
                    let lower = c.name.to_ascii_lowercase();
                    let tx = tx_path.clone().unwrap_or_default();
                    let path = t
                        .and_then(|t| {
                            t.rename
                                .iter()
                                .find(|(_, to)| to.to_ascii_lowercase() == lower)
                                .map(|(from, _)| format!("{tx}.rename.{from}"))
                                .or_else(|| {
                                    t.add
                                        .keys()
                                        .find(|k| k.to_ascii_lowercase() == lower)
                                        .map(|k| format!("{tx}.add.{k}"))
                                })
                        })
                        .or_else(|| {
                            raw.metadata
                                .iter()
                                .position(|m| m.column.to_ascii_lowercase() == lower)
                                .map(|i| format!("metadata[{i}].column"))
                        })
                        .unwrap_or(tx);
                    ctx.err_at(
                        &path,
                        true,
                        format!("table {name}: target column `{}` appears twice; rename or drop one", c.name),
                    );
                    ok = false;
                }
            }
        }
        // Templates: `${field}` names a target column (after renames and added columns).
        let probe = TableSchema {
            name: schema.name.clone(),
            columns: columns.clone(),
            primary_key: vec![],
            unique_keys: vec![],
            version: 1,
        };
        for (tpl, path) in [(&db_t, &db_path), (&tb_t, &tb_path)] {
            if let Err(e) = tpl.check_fields(&probe) {
                ctx.err_in_scalar(path, e.offset, e.message);
                ok = false;
            } else if tpl.is_static() {
                let resolved = tpl.render(&names, None).expect("static template renders");
                if let Err(why) = check_name(&resolved) {
                    ctx.err_at(
                        path,
                        false,
                        format!("for table {name} the template `{tpl}` gives an illegal name: {why}"),
                    );
                    ok = false;
                }
            }
        }
        let filter = match t.and_then(|t| t.filter.as_ref()) {
            Some(f) => match Expr::compile(f, schema) {
                Ok(e) => Some(e),
                Err(e) => {
                    let path = format!("{}.filter", tx_path.clone().unwrap_or_default());
                    ctx.err_in_scalar(&path, e.offset, format!("bad filter for table {name}: {}", e.message));
                    ok = false;
                    None
                }
            },
            None => None,
        };
        let map_key = |k: &[usize]| -> Option<Vec<usize>> { k.iter().map(|&i| key_map[i]).collect() };
        let primary_key = map_key(schema.row_key()).unwrap_or_default();
        if strict && primary_key.is_empty() && ok {
            ctx.err_at(
                tx_path.as_deref().unwrap_or(""),
                true,
                format!(
                    "table {name}: a key column is dropped, but {} needs the key; keep it",
                    if raw.write_mode == WriteMode::Upsert { "upsert" } else { "exactly-once" }
                ),
            );
            ok = false;
        }
        if !ok {
            continue;
        }
        let static_names = (db_t.is_static() && tb_t.is_static())
            .then(|| (db_t.render(&names, None).expect("static"), tb_t.render(&names, None).expect("static")));
        let target_name = match &static_names {
            Some((d, t)) => ferry_operators::TableName::new(d.clone(), t.clone()),
            None => ferry_operators::TableName::new(db_t.to_string(), tb_t.to_string()),
        };
        let identity = projection.len() == schema.columns.len()
            && projection.iter().enumerate().all(|(i, p)| matches!(p, Proj::Col(c) if *c == i));
        let unique_keys = schema.unique_keys.iter().filter_map(|k| map_key(k)).collect();
        let target_schema =
            TableSchema { name: target_name, columns, primary_key, unique_keys, version: schema.version };
        catalog.tables.push(schema.clone());
        let ti = full.tables.iter().position(|t| t.name == schema.name).unwrap_or(0);
        charsets.push(source.charsets.get(ti).cloned().unwrap_or_default());
        collations.push(source.collations.get(ti).cloned().unwrap_or_default());
        details.push(source.details.get(ti).cloned().unwrap_or_default());
        let transform = Transform::new(ops, filter, projection, schema.columns.len());
        debug_assert_eq!(transform.identity, identity);
        let filter_src = t.and_then(|t| t.filter.clone());
        let dropped = t.map(|t| t.drop.clone()).unwrap_or_default();
        tables.push(TablePlan {
            database: db_t,
            table: tb_t,
            static_names,
            transform,
            filter_src,
            exprs,
            dropped,
            target_schema,
        });
    }
    if catalog.tables.is_empty() && ctx.errors.is_empty() {
        ctx.err_at("tables", true, "no source table matches `tables.include` minus `tables.exclude`".to_string());
    }
    // Two source tables must not write one static target table.
    let mut targets = std::collections::HashMap::new();
    for (i, t) in tables.iter().enumerate() {
        if let Some(n) = &t.static_names {
            if let Some(other) = targets.insert(n.clone(), i) {
                let (a, b) = (&catalog.tables[other].name, &catalog.tables[i].name);
                ctx.err_at(
                    "route",
                    true,
                    format!("{a} and {b} both map to {}.{}; give them distinct target names", n.0, n.1),
                );
            }
        }
    }
    if ctx.errors.is_empty() {
        Ok(Compiled { plan, catalog, tables, charsets, collations, details, ddl_dropped: Vec::new(), selection })
    } else {
        Err(PlanErrors(dedupe(ctx.errors)))
    }
}

fn unknown_column(name: &str, schema: &TableSchema) -> String {
    let cols: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    format!("table {} has no column `{name}`; its columns: {}", schema.name, cols.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn selection(include: &[&str]) -> Selection {
        Selection::new(&TableSelection { include: include.iter().map(|p| p.to_string()).collect(), exclude: vec![] })
    }

    #[test]
    fn a_database_is_left_out_only_when_no_name_in_it_can_match() {
        let f = selection(&[r"bench\.sbtest_cdc"]).database_filter();
        assert!(f.may_hold("bench"));
        assert!(!f.may_hold("bench_many"));
        assert!(!f.may_hold("benc"));
        let f = selection(&[r"shop_\d+\.orders", r"crm\..*"]).database_filter();
        assert!(f.may_hold("shop_1") && f.may_hold("shop_2024") && f.may_hold("crm"));
        assert!(!f.may_hold("shop_") && !f.may_hold("shop_x") && !f.may_hold("crm2"));
        // An unescaped dot matches the separator too, and a pattern may span it.
        let f = selection(&["bench.sbtest", "a.*"]).database_filter();
        assert!(f.may_hold("bench") && f.may_hold("ab") && f.may_hold("a"));
        assert!(!f.may_hold("benchx"));
        let f = selection(&[".*"]).database_filter();
        assert!(f.may_hold("anything") && f.may_hold(""));
        // Case matters as it does for the tables (a `(?i)` pattern ignores it).
        let f = selection(&[r"Shop\..*", r"(?i)crm\..*"]).database_filter();
        assert!(f.may_hold("Shop") && !f.may_hold("shop") && f.may_hold("CRM"));
    }

    #[test]
    fn an_empty_include_list_holds_no_database() {
        assert!(!selection(&[]).database_filter().may_hold("bench"));
    }

    proptest! {
        /// Whatever table a selection takes, its database is kept (the filter never hides a
        /// table), for patterns built from name pieces, classes, alternations and repeats.
        #[test]
        fn every_taken_table_keeps_its_database(
            db in "[a-c_.]{0,5}",
            table in "[a-c_.]{1,5}",
            pattern in prop::collection::vec(
                prop_oneof![
                    Just("a".to_string()), Just("b".to_string()), Just("_".to_string()),
                    Just(r"\.".to_string()), Just(".".to_string()), Just(".*".to_string()),
                    Just("[ab]+".to_string()), Just("(a|c)".to_string()), Just("b?".to_string()),
                    Just(r"[^.]*".to_string()),
                ],
                1..6,
            ),
        ) {
            let pattern = pattern.concat();
            let s = selection(&[pattern.as_str()]);
            let name = TableName::new(db.clone(), table);
            if s.takes_table(&name) {
                prop_assert!(s.database_filter().may_hold(&db), "{pattern} takes {name} but leaves out {db}");
            }
        }
    }
}
