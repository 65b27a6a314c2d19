//! The catalog against the private MariaDB and PostgreSQL: the mapping preview's verdicts
//! (F4.1, F4.2), generated DDL against golden files (F5.1, F5.3), all-types data through the
//! generated DDL of both databases (exact except what the type-loss report names; into
//! PostgreSQL under each of the `target_tables.postgres` type choices, through the snapshot,
//! the binlog, an added and a modified column, `dirty replay` and `verify`), and
//! `create-tables` with every strategy, a failing table and `--retry-failed` (F5.2, F5.4).
//!
//! `FERRY_BLESS=1` rewrites the golden files from the current output.

mod common;

use common::mysql::*;
use common::sql::{canon, pg_client, Target};
use common::*;
use ferry_operators::value::DateTime;
use ferry_operators::{ColumnType, TableSchema, Value};
use serde_json::Value as Json;
use std::path::Path;

const RICH: &str = "CREATE TABLE rich (
    id INT UNSIGNED NOT NULL AUTO_INCREMENT COMMENT 'row id',
    code VARCHAR(20) CHARACTER SET latin1 NOT NULL DEFAULT 'n/a' COMMENT 'it''s a code',
    qty INT NOT NULL DEFAULT 0,
    price DECIMAL(12,2) DEFAULT 9.99,
    made DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    flags BIT(3) DEFAULT b'101',
    note TEXT,
    PRIMARY KEY (id), UNIQUE KEY uk_code (code, qty)
) COMMENT 'a table with defaults' DEFAULT CHARSET = utf8mb4";

fn plan(task: &str, source_db: &str, target: &str, extra: &str) -> String {
    format!(
        "task: {task}\nsource:\n  type: mariadb\n  url: {}\n  bounded: true\ntarget:\n{target}tables:\n  include: ['{source_db}\\..*']\n\
         runtime:\n  workers: 2\n  checkpoint_interval: 200ms\n  state: ./state\n{extra}",
        main_url()
    )
}

fn null_target() -> String {
    "  type: 'null'\n".into()
}

fn preview_json(dir: &Path, plan: &str) -> (Vec<Json>, bool) {
    let out = run_in(dir, &["preview", "--json", plan]);
    let rows: Json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    (rows.as_array().unwrap().clone(), out.status.success())
}

/// The columns the preview's type-loss report says the target refuses values of.
fn refused_columns(dir: &Path, plan: &str, source: &str) -> Vec<String> {
    let (rows, _) = preview_json(dir, plan);
    by_source(&rows, source)["losses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["kind"] == "refused")
        .map(|l| l["column"].as_str().unwrap().to_string())
        .collect()
}

fn by_source<'a>(rows: &'a [Json], source: &str) -> &'a Json {
    rows.iter().find(|r| r["source"] == source).unwrap_or_else(|| panic!("no {source} in {rows:?}"))
}

#[test]
fn preview_shows_target_key_and_the_primary_key_verdict_for_all_four_combinations() {
    let db = "cat_prev";
    fresh_db(db);
    exec(&[
        &format!("CREATE TABLE {db}.keyed (id INT PRIMARY KEY, v TEXT)"),
        &format!("CREATE TABLE {db}.uniq (code VARCHAR(10) NOT NULL, v INT, UNIQUE KEY uk (code))"),
        &format!("CREATE TABLE {db}.nokey (a INT, b TEXT)"),
    ]);
    let target = Target::Pg;
    target.fresh_namespace("cat_prev_t");
    target.exec(&["CREATE TABLE cat_prev_t.keyed (id int PRIMARY KEY, v text)".to_string()]);
    let dir = workdir();
    for semantics in ["at-least-once", "exactly-once"] {
        for mode in ["upsert", "append"] {
            let text = plan(
                "prev",
                db,
                &target.plan_section(),
                &format!("semantics: {semantics}\nwrite_mode: {mode}\nroute:\n  database: cat_prev_t\n"),
            );
            let p = write_plan(dir.path(), "plan.yaml", &text);
            let (rows, success) = preview_json(dir.path(), &p);
            let strict = semantics == "exactly-once" || mode == "upsert";
            assert_eq!(success, !strict, "{semantics}+{mode}: exit code");
            assert_eq!(rows.len(), 3);
            let keyed = by_source(&rows, "cat_prev.keyed");
            assert_eq!(keyed["target"], "cat_prev_t.keyed");
            assert_eq!(keyed["target_exists"], true);
            assert_eq!(keyed["key"]["kind"], "primary");
            assert_eq!(keyed["key"]["columns"], serde_json::json!(["id"]));
            assert_eq!(keyed["verdict"], Json::Null);
            assert_eq!(keyed["action"], "use-existing");
            let uniq = by_source(&rows, "cat_prev.uniq");
            assert_eq!((uniq["key"]["kind"].as_str(), uniq["target_exists"].as_bool()), (Some("unique"), Some(false)));
            assert_eq!(uniq["verdict"], Json::Null);
            assert_eq!(uniq["action"], "create");
            let nokey = by_source(&rows, "cat_prev.nokey");
            assert_eq!(nokey["key"]["kind"], "none");
            if strict {
                let v = nokey["verdict"].as_str().expect("a verdict");
                assert!(v.starts_with("no primary key or unique index"), "{v}");
                assert!(v.contains("at-least-once + append"), "{v}");
            } else {
                assert_eq!(nokey["verdict"], Json::Null);
            }
            // Every row carries all four verdicts; only the keyless table's strict ones refuse.
            for r in &rows {
                let all = r["verdicts"].as_object().unwrap();
                assert_eq!(all.len(), 4);
                for (combo, v) in all {
                    let refused = r["source"] == "cat_prev.nokey" && combo != "at-least-once+append";
                    assert_eq!(!v.is_null(), refused, "{} {combo}", r["source"]);
                }
            }
            // The people's table says the same, naming the table.
            let human = String::from_utf8_lossy(&run_in(dir.path(), &["preview", &p]).stdout).into_owned();
            let line = human.lines().find(|l| l.starts_with("cat_prev.nokey")).unwrap();
            assert_eq!(line.contains("no primary key or unique index"), strict, "{human}");
        }
    }
}

#[test]
fn generated_ddl_matches_the_golden_files_for_every_dialect() {
    let db = "cat_golden";
    fresh_db(db);
    exec(&[&format!("USE {db}"), ALL_TYPES, RICH]);
    let dir = workdir();
    let p = write_plan(dir.path(), "plan.yaml", &plan("golden", db, &null_target(), ""));
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    for dialect in ["mariadb", "mysql", "postgres", "doris"] {
        let got = ok(&run_in(dir.path(), &["ddl", "--dialect", dialect, &p]));
        let file = golden.join(format!("ddl-{dialect}.sql"));
        if std::env::var_os("FERRY_BLESS").is_some() {
            std::fs::write(&file, &got).unwrap();
        }
        let want = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(got == want, "{dialect}: the DDL differs from {} (FERRY_BLESS=1 rewrites it):\n{got}", file.display());
    }
}

/// The source's all-types rows: edge values (MIN, MAX), NULLs, zero dates, and a row of
/// in-range values of every type (5).
fn all_types_source(db: &str) {
    fresh_db(db);
    let in_range = MIN_ROW
        .replace("VALUES (1,", "VALUES (5,")
        .replace("'-838:59:59', '-00:00:01.50', '-12:34:56.789012'", "'12:00:00', '00:00:01.50', '23:59:59.999999'");
    exec(&[
        &format!("USE {db}"),
        ALL_TYPES,
        MIN_ROW,
        MAX_ROW,
        NULL_ROW,
        "SET SESSION sql_mode = ''",
        ZERO_ROW,
        &in_range,
        RICH,
    ]);
    exec(&[
        &format!("USE {db}"),
        "INSERT INTO rich (code, qty, note) VALUES ('a', 1, 'first'), ('b', 2, NULL)",
        "INSERT INTO rich (code, qty, price, made, flags, note) VALUES ('c', 3, NULL, '2001-02-03 04:05:06.789', b'010', 'x')",
    ]);
}

/// At most 80 characters of a value, for messages.
fn short(v: &Option<String>) -> String {
    match v {
        Some(s) => s.chars().take(80).collect(),
        None => "NULL".into(),
    }
}

fn sorted(mut rows: Vec<ferry_operators::Row>) -> Vec<ferry_operators::Row> {
    rows.sort_by(|a, b| a[0].to_string().cmp(&b[0].to_string()));
    rows
}

#[test]
fn all_types_copy_exactly_through_generated_mariadb_ddl() {
    let (src, dst) = ("cat_rt_src_m", "cat_rt_m");
    all_types_source(src);
    let target = Target::Maria;
    exec(&[&format!("DROP DATABASE IF EXISTS {dst}")]);
    let dir = workdir();
    let extra = format!("semantics: exactly-once\nroute:\n  database: {dst}\n");
    let p = write_plan(dir.path(), "plan.yaml", &plan("rt-m", src, &target.plan_section(), &extra));
    // The report names the ENUM columns: a strict MariaDB refuses their error value.
    let refused = refused_columns(dir.path(), &p, "cat_rt_src_m.all_types");
    assert_eq!(refused, vec!["e", "el"]);
    let created = ok(&run_in(dir.path(), &["create-tables", &p]));
    assert!(created.contains("cat_rt_src_m.all_types → cat_rt_m.all_types: created"), "{created}");
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    for t in ["all_types", "rich"] {
        let (s_schema, s_rows) = read_table(src, t);
        let (d_schema, d_rows) = read_table(dst, t);
        assert_eq!(s_schema.columns, d_schema.columns, "{t}: column names, types and nullability");
        assert_eq!(s_schema.primary_key, d_schema.primary_key, "{t}: primary key");
        assert_eq!(s_schema.unique_keys, d_schema.unique_keys, "{t}: unique keys");
        // Row 4 holds the ENUM error value '' (written by a non-strict session): refused.
        let lost = if t == "all_types" { vec![4] } else { vec![] };
        assert_eq!(dirty_ids(dir.path(), &p, &format!("{src}.{t}")), lost, "{t}: dirty rows");
        let s_rows: Vec<_> =
            s_rows.into_iter().filter(|r| !lost.iter().any(|id| r[0].to_string() == id.to_string())).collect();
        let (s_rows, d_rows) = (sorted(s_rows), sorted(d_rows));
        let ids = |rows: &[ferry_operators::Row]| rows.iter().map(|r| r[0].to_string()).collect::<Vec<_>>();
        assert_eq!(ids(&s_rows), ids(&d_rows), "{t}: row ids");
        for (s, d) in s_rows.iter().zip(&d_rows) {
            for (i, (sv, dv)) in s.iter().zip(d).enumerate() {
                assert!(
                    sv == dv,
                    "{t}.{} of row {}: source {}, target {}",
                    s_schema.columns[i].name,
                    s[0],
                    short(&Some(format!("{sv:?}"))),
                    short(&Some(format!("{dv:?}")))
                );
            }
        }
    }
}

/// The ids (first column) of the archived rows of source table `table`, sorted.
fn dirty_ids(dir: &Path, plan: &str, table: &str) -> Vec<i64> {
    let dirty = ok(&run_in(dir, &["dirty", "show", "--limit", "1000", plan]));
    let mut ids: Vec<i64> = dirty
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str::<Json>(l).unwrap())
        .filter(|v| v["table"] == table)
        .map(|v| v["row"][0].as_i64().unwrap())
        .collect();
    ids.sort();
    ids
}

/// A PostgreSQL select expression whose text [`pg_text`] reproduces from the source value.
fn pg_expr(name: &str, ty: &ColumnType) -> String {
    let c = format!("\"{name}\"");
    match ty {
        ColumnType::Bytes { .. } => format!("encode({c}, 'hex')"),
        ColumnType::Other { name: n } if n.starts_with("inet") => format!("host({c})"),
        ColumnType::Timestamp { .. } => {
            format!("CASE WHEN isfinite({c}) THEN to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') ELSE {c}::text END")
        }
        _ => format!("{c}::text"),
    }
}

fn pg_text(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => return None,
        Value::Bytes(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
        Value::Timestamp(t) => DateTime::from_epoch_micros(*t).to_string(),
        Value::Year(y) => y.to_string(),
        other => other.to_string(),
    })
}

fn pg_rows(db: &str, table: &str, schema: &TableSchema) -> Vec<Vec<Option<String>>> {
    let cols: Vec<String> = schema.columns.iter().map(|c| pg_expr(&c.name, &c.ty)).collect();
    let sql = format!("SELECT {} FROM \"{db}\".\"{table}\" ORDER BY 1", cols.join(", "));
    ferry::runtime::io_runtime().block_on(async {
        let c = pg_client().await;
        let mut out = Vec::new();
        for m in c.simple_query(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}")) {
            if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                out.push((0..r.len()).map(|i| r.get(i).map(|t| canon(&schema.columns[i].ty, t))).collect());
            }
        }
        out
    })
}

/// The plan's `target_tables.postgres` choices of one all-types run.
#[derive(Clone, Copy)]
struct Choices {
    time: &'static str,
    zero_dates: &'static str,
    nul_in_text: &'static str,
}

impl Choices {
    fn plan(&self) -> String {
        format!(
            "target_tables:\n  postgres: {{time: {}, zero_dates: {}, nul_in_text: {}}}\n",
            self.time, self.zero_dates, self.nul_in_text
        )
    }

    /// The PostgreSQL text of source value `v` under these choices, worked out here from the
    /// choices' documented meaning (`None`: NULL).
    fn arrives_as(&self, v: &Value) -> Option<String> {
        let zero = || match self.zero_dates {
            "null" => None,
            "infinity" => Some("-infinity".to_string()),
            other => panic!("zero_dates: {other} arrives nowhere"),
        };
        match v {
            Value::Date(d) if d.is_zero() => zero(),
            Value::DateTime(dt) if dt.date.is_zero() => zero(),
            // MariaDB's zero TIMESTAMP.
            Value::Timestamp(0) => zero(),
            Value::Text(s) | Value::Enum(s) if s.contains('\0') => Some(match self.nul_in_text {
                "strip" => s.replace('\0', ""),
                "escape" => s.replace('\0', "\\0"),
                other => panic!("nul_in_text: {other} arrives nowhere"),
            }),
            other => pg_text(other),
        }
    }

    /// Whether the choices refuse (dirty data) a source row.
    fn refuses(&self, schema: &TableSchema, row: &[Value]) -> bool {
        row.iter().zip(&schema.columns).any(|(v, c)| match v {
            Value::Date(d) => d.is_zero() && self.zero_dates == "refuse",
            Value::DateTime(dt) => dt.date.is_zero() && self.zero_dates == "refuse",
            Value::Timestamp(0) => self.zero_dates == "refuse",
            Value::Time(t) => self.time == "time" && !(0..=86_400_000_000).contains(t),
            Value::Text(s) => s.contains('\0') && self.nul_in_text == "refuse" && c.ty != ColumnType::Json,
            _ => false,
        })
    }
}

/// Source rows beyond the shared ones: TIME at both ends of MariaDB's range and just below
/// zero, text with NUL (6–8); in the binlog: zero dates and date-times, NUL text, a column
/// added (a DATE NOT NULL, then a zero date in it) and one modified (TIME(2) → TIME(6), then
/// its largest value), rows 9–13.
const EDGE_ROWS: &str = "INSERT INTO all_types (id, tm6, vc, tx, l1) VALUES
    (6, '838:59:59.999999', 'a\\0b', '\\0\\0x\\0', 'n\\0l'),
    (7, '-838:59:59.999999', NULL, NULL, NULL),
    (8, '-00:00:00.000001', NULL, NULL, NULL)";

fn binlog_changes(db: &str) {
    exec(&[
        &format!("USE {db}"),
        "SET SESSION sql_mode = ''",
        "INSERT INTO all_types (id, dt, dtm, dtm6, ts, ts0, tm) VALUES
            (9, '0000-00-00', '0000-00-00 00:00:00', '2021-07-00 01:02:03.5', '0000-00-00 00:00:00', '2038-01-19 03:14:07', '12:00:00')",
        "INSERT INTO all_types (id, vc, tx) VALUES (10, '\\0', 'end\\0')",
        "INSERT INTO all_types (id, tm6, dtm6, ts) VALUES
            (11, '-838:59:59.999999', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999')",
        "ALTER TABLE all_types ADD COLUMN late_dt DATE NOT NULL DEFAULT '2000-01-01'",
        "ALTER TABLE all_types MODIFY COLUMN tm2 TIME(6) NULL",
        "INSERT INTO all_types (id, tm2, late_dt) VALUES (12, '838:59:59.999999', '0000-00-00')",
        "INSERT INTO all_types (id, tm2, late_dt) VALUES (13, '01:02:03.000004', '2001-02-03')",
    ]);
}

/// Every source row of `all_types` and `rich` is in PostgreSQL as `choices` say, except the
/// rows they refuse (dirty, listed by id), and the refused `extra` rows; returns the ids of
/// `all_types` rows the choices refuse.
fn assert_arrived_as_chosen(src: &str, dst: &str, choices: Choices, dir: &Path, p: &str) -> Vec<i64> {
    let mut refused_ids = Vec::new();
    for t in ["all_types", "rich"] {
        let (schema, rows) = read_table(src, t);
        let got = pg_rows(dst, t, &schema);
        let mut want = Vec::new();
        for r in sorted(rows) {
            if choices.refuses(&schema, &r) {
                refused_ids.push(r[0].to_string().parse::<i64>().unwrap());
                continue;
            }
            want.push(
                r.iter()
                    .zip(&schema.columns)
                    .map(|(v, c)| choices.arrives_as(v).map(|s| canon(&c.ty, &s)))
                    .collect::<Vec<_>>(),
            );
        }
        want.sort_by(|a: &Vec<Option<String>>, b| a[0].cmp(&b[0]));
        let ids =
            |rows: &[Vec<Option<String>>]| rows.iter().map(|r| r[0].clone().unwrap_or_default()).collect::<Vec<_>>();
        assert_eq!(ids(&got), ids(&want), "{t}: row ids");
        for (g, w) in got.iter().zip(&want) {
            for (i, (gv, wv)) in g.iter().zip(w).enumerate() {
                let c = &schema.columns[i];
                let same = match (&c.ty, gv, wv) {
                    (ColumnType::Json, Some(a), Some(b)) => {
                        serde_json::from_str::<Json>(a).ok() == serde_json::from_str::<Json>(b).ok()
                    }
                    _ => gv == wv,
                };
                assert!(same, "{t}.{} of row {:?}: target {}, want {}", c.name, w[0], short(gv), short(wv));
            }
        }
    }
    refused_ids.sort();
    assert_eq!(dirty_ids(dir, p, &format!("{src}.all_types")), refused_ids, "all_types: dirty rows");
    assert!(dirty_ids(dir, p, &format!("{src}.rich")).is_empty(), "rich: dirty rows");
    refused_ids
}

/// An all-types table into PostgreSQL under `choices`: the preview and `ferry ddl` show them,
/// the snapshot and the binlog (with an added and a modified column) write every value as they
/// say, and the rows they refuse are dirty data.
fn all_types_into_postgres_under(tag: &str, choices: Choices) -> (tempfile::TempDir, String, String, String) {
    let (src, dst) = (format!("cat_pg_{tag}"), format!("cat_pg_{tag}_t"));
    all_types_source(&src);
    exec(&[&format!("USE {src}"), EDGE_ROWS]);
    let target = Target::Pg;
    target.exec(&[format!("DROP SCHEMA IF EXISTS {dst} CASCADE")]);
    let dir = workdir();
    let extra = format!("semantics: exactly-once\nroute:\n  database: {dst}\n{}", choices.plan());
    let p = write_plan(dir.path(), "plan.yaml", &plan(&format!("pgt-{tag}"), &src, &target.plan_section(), &extra));
    // The preview's report says what each choice does, column by column.
    let (rows, _) = preview_json(dir.path(), &p);
    let losses = by_source(&rows, &format!("{src}.all_types"))["losses"].as_array().unwrap().clone();
    let line = |col: &str| -> Vec<(String, String)> {
        losses
            .iter()
            .filter(|l| l["column"] == col)
            .map(|l| (l["kind"].as_str().unwrap().to_string(), l["what"].as_str().unwrap().to_string()))
            .collect()
    };
    match choices.time {
        "interval" => assert!(line("tm6").is_empty(), "an interval loses no time: {:?}", line("tm6")),
        _ => assert_eq!(line("tm6")[0].0, "refused", "{:?}", line("tm6")),
    }
    for col in ["dt", "dtm6", "ts"] {
        let l = line(col);
        let want = if choices.zero_dates == "refuse" { "refused" } else { "changed" };
        assert!(l.len() == 1 && l[0].0 == want, "{col}: {l:?}");
        assert!(l[0].1.contains(&format!("zero_dates: {}", choices.zero_dates)), "{col}: {l:?}");
    }
    let l = line("vc");
    assert!(l.len() == 1 && l[0].1.contains(&format!("nul_in_text: {}", choices.nul_in_text)), "{l:?}");
    let human = ok(&run_in(dir.path(), &["preview", &p]));
    let said =
        format!("time: {}, zero_dates: {}, nul_in_text: {}", choices.time, choices.zero_dates, choices.nul_in_text);
    assert!(human.contains(&said), "{human}");
    let ddl = ok(&run_in(dir.path(), &["ddl", &p]));
    assert!(ddl.starts_with(&format!("-- target_tables.postgres: {said}")), "{ddl}");
    let tm6 = if choices.time == "interval" { "\"tm6\" interval(6) NULL" } else { "\"tm6\" time(6) NULL" };
    assert!(ddl.contains(tm6), "{ddl}");

    // The snapshot, then the binlog.
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    binlog_changes(&src);
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    // The added DATE NOT NULL takes NULL only where the choice writes NULL.
    let nullable = ferry::runtime::io_runtime().block_on(async {
        let c = pg_client().await;
        let r = c
            .query_one(
                "SELECT is_nullable FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'all_types' AND column_name = 'late_dt'",
                &[&dst],
            )
            .await
            .unwrap();
        r.get::<_, String>(0)
    });
    assert_eq!(nullable == "YES", choices.zero_dates == "null", "late_dt nullable: {nullable}");
    assert_arrived_as_chosen(&src, &dst, choices, dir.path(), &p);
    (dir, p, src, dst)
}

/// [`all_types_into_postgres_under`] choices that keep every row, then `ferry verify` finds the
/// target equal to the source in its chosen form.
fn every_row_arrives_and_verifies_equal(tag: &str, choices: Choices) {
    let (dir, p, ..) = all_types_into_postgres_under(tag, choices);
    let out = run_in(dir.path(), &["verify", "-q", &p, "--output", "out"]);
    let said = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{said}");
}

#[test]
fn every_mysql_value_arrives_in_postgres_as_interval_null_and_stripped_and_verifies_equal() {
    every_row_arrives_and_verifies_equal("ins", Choices { time: "interval", zero_dates: "null", nul_in_text: "strip" });
}

#[test]
fn every_mysql_value_arrives_in_postgres_as_interval_infinity_and_escaped_and_verifies_equal() {
    every_row_arrives_and_verifies_equal(
        "iie",
        Choices { time: "interval", zero_dates: "infinity", nul_in_text: "escape" },
    );
}

/// The defaults refuse what PostgreSQL's natural types cannot hold; a replay after the plan
/// chose otherwise writes the rows the new choices keep, by the same rules.
#[test]
fn refused_values_are_dirty_by_default_and_a_replay_applies_the_choices_made_since() {
    let choices = Choices { time: "time", zero_dates: "refuse", nul_in_text: "refuse" };
    let (dir, p, src, dst) = all_types_into_postgres_under("ref", choices);
    let text = std::fs::read_to_string(&p).unwrap();
    let after = Choices { time: "time", zero_dates: "infinity", nul_in_text: "strip" };
    std::fs::write(&p, text.replace(&choices.plan(), &after.plan())).unwrap();
    let out = run_in(dir.path(), &["dirty", "replay", &p]);
    let replayed = String::from_utf8_lossy(&out.stdout).into_owned();
    // Rows 4 and 9 (zero dates, one archived before `late_dt` was added) and 10 (NUL) arrive;
    // the times beyond a day are refused still: the target's columns are `time`.
    assert!(replayed.contains("replayed 10 rows") && replayed.contains("3 written, 7 failed again"), "{replayed}");
    assert_eq!(out.status.code(), Some(4), "rows failed again: {replayed}");
    let still = assert_arrived_as_chosen(&src, &dst, after, dir.path(), &p);
    assert_eq!(still, vec![1, 2, 6, 7, 8, 11, 12], "{replayed}");
}

#[test]
fn create_tables_follows_each_strategy_and_retries_only_the_failures() {
    let (src, dst) = ("cat_ct", "cat_ct_t");
    fresh_db(src);
    for t in ["a", "b", "c", "d", "e"] {
        exec(&[&format!("CREATE TABLE {src}.{t} (id INT PRIMARY KEY, v VARCHAR(10))")]);
    }
    fresh_db(dst);
    exec(&[
        &format!("CREATE TABLE {dst}.c (id INT PRIMARY KEY, v VARCHAR(10))"),
        &format!("INSERT INTO {dst}.c VALUES (1, 'kept')"),
        &format!("CREATE TABLE {dst}.d (id INT PRIMARY KEY, old_column INT)"),
        &format!("INSERT INTO {dst}.d VALUES (1, 1)"),
    ]);
    let dir = workdir();
    std::fs::write(dir.path().join("e.sql"), "CREATE TABLE cat_ct_t.e (id INT PRIMARY KEY, v VARCHAR(10) NOT NUL);\n")
        .unwrap();
    let extra = format!(
        "route:\n  database: {dst}\ntarget_tables:\n  tables:\n    - {{ tables: 'cat_ct\\.b', missing: skip }}\n    \
         - {{ tables: 'cat_ct\\.d', existing: drop-and-recreate }}\n    - {{ tables: 'cat_ct\\.e', ddl_file: e.sql }}\n"
    );
    let p = write_plan(dir.path(), "plan.yaml", &plan("ct", src, &Target::Maria.plan_section(), &extra));
    // Without --yes nothing happens: d would be dropped.
    let out = run_in(dir.path(), &["create-tables", &p]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cat_ct_t.d") && err.contains("--yes"), "{err}");
    let tables = |db: &str| -> Vec<String> {
        let opts = mysql_async::Opts::from_url(&main_url()).unwrap();
        ferry::runtime::io_runtime().block_on(async {
            use mysql_async::prelude::Queryable;
            let mut c = mysql_async::Conn::new(opts).await.unwrap();
            let names: Vec<String> = c
                .exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY 1", (db,))
                .await
                .unwrap();
            c.disconnect().await.unwrap();
            names
        })
    };
    assert_eq!(tables(dst), vec!["c", "d"]);
    // With --yes: every table by its strategy; e fails with the target's error.
    let out = run_in(dir.path(), &["create-tables", "--yes", &p]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = |t: &str| text.lines().find(|l| l.starts_with(&format!("cat_ct.{t} "))).unwrap_or("").to_string();
    assert!(line("a").ends_with("created"), "{text}");
    assert!(line("b").ends_with("missing, skipped"), "{text}");
    assert!(line("c").ends_with("exists, used as it is"), "{text}");
    assert!(line("d").ends_with("dropped and created anew"), "{text}");
    assert!(line("e").contains("FAILED") && line("e").contains("SQL syntax"), "{text}");
    assert_eq!(tables(dst), vec!["a", "c", "d"]);
    let (_, kept) = read_table(dst, "c");
    assert_eq!(kept.len(), 1, "use-existing keeps the rows");
    let (d_schema, d_rows) = read_table(dst, "d");
    assert!(d_rows.is_empty() && d_schema.column_index("v").is_some(), "d is the source's shape now");
    // Fix the file; --retry-failed tries e alone.
    std::fs::write(dir.path().join("e.sql"), "CREATE TABLE cat_ct_t.e (id INT PRIMARY KEY, v VARCHAR(10) NOT NULL);\n")
        .unwrap();
    let text = ok(&run_in(dir.path(), &["create-tables", "--retry-failed", &p]));
    assert_eq!(text.trim(), "cat_ct.e → cat_ct_t.e: created");
    assert_eq!(tables(dst), vec!["a", "c", "d", "e"]);
    let text = ok(&run_in(dir.path(), &["create-tables", "--retry-failed", &p]));
    assert!(text.contains("nothing to do"), "{text}");
    // A run with create_on_run: false stops on the table still missing (b), naming it.
    let p = write_plan(
        dir.path(),
        "plan2.yaml",
        &plan(
            "ct2",
            src,
            &Target::Maria.plan_section(),
            &extra.replace("target_tables:\n", "target_tables:\n  create_on_run: false\n"),
        ),
    );
    let out = run_in(dir.path(), &["run", "-q", &p]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has no table cat_ct_t.b"), "{err}");
}

/// Polls `cond` every 100 ms for up to a minute.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !cond() {
        assert!(std::time::Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// [`wait_for`] on a spawned run: a timeout or the run's early end shows its stderr.
fn wait_for_run(what: &str, dir: &Path, child: &mut std::process::Child, mut cond: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !cond() {
        let log = || std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before {what}:\n{}", log());
        }
        assert!(std::time::Instant::now() < end, "timed out waiting for {what}; the run's stderr:\n{}", log());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn target_ids(db: &str) -> Vec<String> {
    if Target::Maria.columns(db, "t").is_empty() {
        return Vec::new();
    }
    let (_, rows) = read_table(db, "t");
    sorted(rows).iter().map(|r| r[0].to_string()).collect()
}

/// Writes an unbounded plan (the schema changes happen while it runs) of task `task` over the
/// source database `src`; returns its path.
fn streaming_plan(dir: &Path, task: &str, src: &str, target: Target, extra: &str) -> String {
    let text = plan(task, src, &target.plan_section(), extra).replace("  bounded: true\n", "");
    write_plan(dir, "plan.yaml", &text)
}

/// Starts `ferry run -q plan` in `dir` with `env`, its stderr appended to `dir/stderr.log`.
fn spawn_run(dir: &Path, plan: &str, env: &[(&str, &str)]) -> std::process::Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("stderr.log")).unwrap();
    let mut cmd = ferry();
    cmd.current_dir(dir).args(["run", "-q", plan]).stderr(log).envs(env.iter().copied());
    cmd.spawn().unwrap()
}

/// Rows of `db.table` in the MariaDB target (0: no such table).
fn count(db: &str, table: &str) -> usize {
    if Target::Maria.columns(db, table).is_empty() {
        return 0;
    }
    read_table(db, table).1.len()
}

/// Whether the target's `dst.table` has the source's `src.table` columns and rows, exactly.
fn same_as_source(target: Target, src: &str, dst: &str, table: &str) -> bool {
    let (schema, rows) = read_table(src, table);
    let names: Vec<String> = schema.columns.iter().map(|c| c.name.clone()).collect();
    target.columns(dst, table) == names && target.rows(dst, table, &schema) == common::sql::expected(&schema, &rows)
}

#[test]
fn schema_change_policy_auto_makes_each_target_follow_the_source_between_the_same_rows() {
    // The crash runs replay the epochs after the last checkpoint: exactly-once skips what it
    // committed, at-least-once writes the rows again and runs their DDL again.
    let runs = [
        (Target::Maria, false, "exactly-once"),
        (Target::Pg, false, "exactly-once"),
        (Target::Maria, true, "exactly-once"),
        (Target::Pg, true, "at-least-once"),
    ];
    for (target, crash, semantics) in runs {
        let tag = format!("{}{}", target.tag(), if crash { "_crash" } else { "" });
        let (src, dst) = (format!("cat_auto_{tag}"), format!("cat_auto_{tag}_t"));
        fresh_db(&src);
        target.fresh_namespace(&dst);
        exec(&[
            &format!("CREATE TABLE {src}.t (id INT PRIMARY KEY, a INT, b VARCHAR(10))"),
            &format!("INSERT INTO {src}.t VALUES (1, 1, 'x'), (2, 2, 'y'), (3, 3, 'z')"),
            &format!("CREATE TABLE {src}.u (id INT PRIMARY KEY)"),
            &format!("INSERT INTO {src}.u VALUES (1), (2)"),
        ]);
        let dir = workdir();
        let extra = format!("semantics: {semantics}\nroute:\n  database: {dst}\nerrors:\n  max_restarts: 0\n");
        let p = streaming_plan(dir.path(), &format!("auto-{tag}"), &src, target, &extra);
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.replace("runtime:\n", &format!("  exclude: ['{src}\\.skip.*']\nruntime:\n"))).unwrap();
        // The fault kills the run right after the target took the first DDL, before its record.
        let fault: &[(&str, &str)] = if crash { &[("FERRY_FAULT_DDL_CRASH", "1")] } else { &[] };
        let mut child = spawn_run(dir.path(), &p, fault);
        wait_for_run("the snapshot in the target", dir.path(), &mut child, || same_as_source(target, &src, &dst, "t"));
        // DML right before and after each DDL: a row after a DDL needs it (a value only the
        // wider type holds, the renamed and the added column), a row before it must not see it.
        exec(&[
            &format!("USE {src}"),
            "INSERT INTO t VALUES (4, 4, 'w')",
            "ALTER TABLE t ADD COLUMN c INT NOT NULL DEFAULT 7",
            "INSERT INTO t VALUES (5, 5, 'v', 9)",
            "ALTER TABLE t MODIFY a BIGINT",
            "INSERT INTO t VALUES (6, 6000000000, 'u', 6)",
            "ALTER TABLE t RENAME COLUMN a TO a2",
            "INSERT INTO t VALUES (7, 7, 't', 7)",
            "UPDATE t SET a2 = a2 + 10 WHERE id = 1",
            "ALTER TABLE t DROP COLUMN b",
            "INSERT INTO t VALUES (8, 8, 8)",
            "UPDATE t SET c = 70 WHERE id = 2",
            "INSERT INTO u VALUES (3)",
            "TRUNCATE TABLE u",
            "INSERT INTO u VALUES (4)",
            // A new table the selection takes, with rows right after it; one it does not take.
            "CREATE TABLE n (id INT PRIMARY KEY, v VARCHAR(5))",
            "INSERT INTO n VALUES (1, 'a'), (2, 'b')",
            "UPDATE n SET v = 'bb' WHERE id = 2",
            "CREATE TABLE skip_me (id INT PRIMARY KEY)",
            "INSERT INTO skip_me VALUES (1)",
            "INSERT INTO n VALUES (3, 'c')",
        ]);
        if crash {
            let status = child.wait().unwrap();
            assert!(!status.success(), "{tag}: the fault must kill the run");
            child = spawn_run(dir.path(), &p, &[]);
        }
        wait_for_run("the target to follow the source", dir.path(), &mut child, || {
            same_as_source(target, &src, &dst, "t")
                && same_as_source(target, &src, &dst, "u")
                && same_as_source(target, &src, &dst, "n")
        });
        assert!(target.columns(&dst, "skip_me").is_empty(), "{tag}: a table the selection does not take");
        let _ = child.kill();
        child.wait().unwrap();
        let dirty = dir.path().join(format!("state/auto-{tag}/dirty"));
        let refused = std::fs::read_dir(&dirty).map(|d| d.count()).unwrap_or(0);
        assert_eq!(
            refused,
            0,
            "{tag}: no row refused\n{}",
            std::fs::read_to_string(dir.path().join("stderr.log")).unwrap()
        );
        let ids: Vec<String> = target.rows(&dst, "u", &read_table(&src, "u").0);
        assert_eq!(ids, vec!["4"], "{tag}: u holds only the row after the TRUNCATE");
        // The record of what the target took.
        let applied: Json = serde_json::from_slice(
            &std::fs::read(dir.path().join(format!("state/auto-{tag}/ddl/applied.json"))).unwrap(),
        )
        .unwrap();
        let kinds: Vec<&str> =
            applied["changes"].as_array().unwrap().iter().map(|c| c["change"]["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["add_column", "modify_column", "rename_column", "drop_column", "truncate"], "{tag}");
    }
}

#[test]
fn auto_keeps_dropped_columns_when_asked_and_a_change_the_target_cannot_take_follows_the_write_error_policy() {
    let (src, dst) = ("cat_keep", "cat_keep_t");
    fresh_db(src);
    exec(&[
        &format!("DROP DATABASE IF EXISTS {dst}"),
        &format!("CREATE TABLE {src}.k (id INT PRIMARY KEY, b VARCHAR(10) NOT NULL)"),
        &format!("INSERT INTO {src}.k VALUES (1, 'one')"),
        &format!("CREATE TABLE {src}.r (id INT PRIMARY KEY, a INT)"),
        &format!("INSERT INTO {src}.r VALUES (1, 1)"),
    ]);
    let dir = workdir();
    let extra = format!(
        "semantics: exactly-once\nroute:\n  database: {dst}\nschema_changes:\n  keep_dropped_columns: true\n\
         errors:\n  max_restarts: 0\n  write_error: partial-stop\n"
    );
    let p = streaming_plan(dir.path(), "keep", src, Target::Maria, &extra);
    let mut child = spawn_run(dir.path(), &p, &[]);
    wait_for_run("the snapshot in the target", dir.path(), &mut child, || count(dst, "k") == 1 && count(dst, "r") == 1);
    // Someone renamed the target's column: the source's rename cannot follow.
    exec(&[&format!("ALTER TABLE {dst}.r RENAME COLUMN a TO theirs")]);
    exec(&[
        &format!("USE {src}"),
        "ALTER TABLE k DROP COLUMN b",
        "INSERT INTO k VALUES (2)",
        "ALTER TABLE r RENAME COLUMN a TO a2",
        "INSERT INTO r VALUES (2, 2)",
    ]);
    let stop = dir.path().join(format!("state/keep/stopped/{src}.r.json"));
    // The stop comes first, r's next row reaches the dirty archive an epoch later (awaited as
    // `ferry dirty show` lists it: a file in the archive's folder can belong to an epoch not
    // committed yet, and the kill below would leave it out).
    let table = format!("{src}.r");
    wait_for_run("k's new row, r's stop and its archived row", dir.path(), &mut child, || {
        count(dst, "k") == 2 && stop.exists() && dirty_ids(dir.path(), &p, &table) == [2]
    });
    assert!(child.try_wait().unwrap().is_none(), "the run goes on");
    let _ = child.kill();
    child.wait().unwrap();
    // k keeps b, now nullable, NULL in the row after the drop.
    let (schema, rows) = read_table(dst, "k");
    assert_eq!(
        schema.columns.iter().map(|c| (c.name.as_str(), c.nullable)).collect::<Vec<_>>(),
        [("id", false), ("b", true)]
    );
    let rows: Vec<String> = sorted(rows).iter().map(|r| format!("{} {}", r[0], r[1])).collect();
    assert_eq!(rows, ["1 one", "2 NULL"]);
    // r: stopped with the reason; its row after the rename went to the dirty archive.
    let reason = std::fs::read_to_string(&stop).unwrap();
    assert!(reason.contains("has no column a"), "{reason}");
    assert_eq!(count(dst, "r"), 1);
    let err = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(err.contains("the target cannot take the schema change"), "{err}");
    assert_eq!(dirty_ids(dir.path(), &p, &format!("{src}.r")), [2]);
}

#[test]
fn schema_change_policy_error_fails_the_task_at_each_kind_and_every_restart() {
    let kinds = [
        ("add_column", "ALTER TABLE t ADD COLUMN c INT"),
        ("drop_column", "ALTER TABLE t DROP COLUMN a"),
        ("rename_column", "ALTER TABLE t RENAME COLUMN a TO a2"),
        ("modify_column", "ALTER TABLE t MODIFY a BIGINT"),
        ("truncate", "TRUNCATE TABLE t"),
        ("create_table", "CREATE TABLE n (id INT PRIMARY KEY)"),
    ];
    for (kind, ddl) in kinds {
        let (src, dst) = (format!("cat_err_{kind}"), format!("cat_err_{kind}_t"));
        fresh_db(&src);
        exec(&[
            &format!("DROP DATABASE IF EXISTS {dst}"),
            &format!("CREATE TABLE {src}.t (id INT PRIMARY KEY, a INT)"),
            &format!("INSERT INTO {src}.t VALUES (1, 1), (2, 2), (3, 3)"),
        ]);
        let dir = workdir();
        // Every other kind is ignored: only this one fails the task.
        let extra = format!(
            "semantics: exactly-once\nroute:\n  database: {dst}\nschema_changes:\n  policy: ignore\n  {kind}: error\n\
             errors:\n  max_restarts: 0\n"
        );
        let p = streaming_plan(dir.path(), &format!("err-{kind}"), &src, Target::Maria, &extra);
        let mut child = spawn_run(dir.path(), &p, &[]);
        wait_for_run("the snapshot in the target", dir.path(), &mut child, || target_ids(&dst).len() == 3);
        exec(&[
            &format!("USE {src}"),
            "ALTER TABLE t COMMENT 'ignored'",
            "INSERT INTO t (id) VALUES (4)",
            ddl,
            "INSERT INTO t (id) VALUES (5)",
        ]);
        wait_for("the run to fail", || child.try_wait().unwrap().is_some());
        let status = child.wait().unwrap();
        let err = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
        assert!(!status.success(), "{kind}: the run must fail");
        assert!(err.contains("refused by the schema_changes policy `error`"), "{kind}: {err}");
        assert!(err.contains(ddl), "{kind}: the statement is named: {err}");
        let ids = target_ids(&dst);
        assert!(!ids.contains(&"5".to_string()), "{kind}: no row after the DDL: {ids:?}");
        // And again: the task keeps failing with the same statement.
        let mut again = spawn_run(dir.path(), &p, &[]);
        let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while again.try_wait().unwrap().is_none() && std::time::Instant::now() < end {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = again.kill();
        let status = again.wait().unwrap();
        let refusals = |log: &str| {
            log.lines().filter(|l| l.contains("refused by the schema_changes policy") && l.contains(ddl)).count()
        };
        let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
        let first = refusals(&err);
        assert!(
            !status.success() && first > 0 && refusals(&log) > first,
            "{kind}: the restart must fail with the statement too\n{log}"
        );
    }
}

#[test]
fn schema_change_policies_ignore_and_log_keep_the_target_as_it_is() {
    for policy in ["ignore", "log"] {
        let (src, dst) = (format!("cat_ddl_{policy}"), format!("cat_ddl_{policy}_t"));
        fresh_db(&src);
        exec(&[
            &format!("DROP DATABASE IF EXISTS {dst}"),
            &format!("CREATE TABLE {src}.t (id INT PRIMARY KEY, a INT)"),
            &format!("INSERT INTO {src}.t VALUES (1, 1), (2, 2), (3, 3)"),
            &format!("CREATE TABLE {src}.u (id INT PRIMARY KEY)"),
            &format!("INSERT INTO {src}.u VALUES (1), (2)"),
        ]);
        let dir = workdir();
        let extra = format!(
            "semantics: exactly-once\nroute:\n  database: {dst}\nschema_changes:\n  policy: {policy}\nerrors:\n  max_restarts: 0\n"
        );
        let p = streaming_plan(dir.path(), &format!("ddl-{policy}"), &src, Target::Maria, &extra);
        let mut child = spawn_run(dir.path(), &p, &[]);
        wait_for_run("the snapshot in the target", dir.path(), &mut child, || target_ids(&dst).len() == 3);
        // DML right before and after each DDL, in one batch.
        exec(&[
            &format!("USE {src}"),
            "INSERT INTO t VALUES (4, 4)",
            "ALTER TABLE t ADD COLUMN c INT DEFAULT 7",
            "INSERT INTO t VALUES (5, 5, 9)",
            "ALTER TABLE t MODIFY a BIGINT",
            "INSERT INTO t VALUES (6, 6, 6)",
            "ALTER TABLE t RENAME COLUMN a TO a2",
            "INSERT INTO t VALUES (7, 7, 7)",
            "ALTER TABLE t DROP COLUMN c",
            "INSERT INTO t VALUES (8, 8)",
            "INSERT INTO u VALUES (3)",
            "TRUNCATE TABLE u",
            "INSERT INTO u VALUES (4)",
            "CREATE TABLE n (id INT PRIMARY KEY)",
            "INSERT INTO n VALUES (1)",
            "INSERT INTO u VALUES (5)",
        ]);
        wait_for_run("every row in the target", dir.path(), &mut child, || {
            target_ids(&dst).len() == 8 && count(&dst, "u") == 5
        });
        let _ = child.kill();
        child.wait().unwrap();
        let err = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
        let (schema, rows) = read_table(&dst, "t");
        let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["id", "a"], "{policy}: the target keeps its shape");
        let ids: Vec<String> = sorted(rows.clone()).iter().map(|r| r[0].to_string()).collect();
        {
            assert_eq!(ids, (1..=8).map(|i| i.to_string()).collect::<Vec<_>>(), "{policy}: every row");
            // The renamed column keeps flowing into `a`.
            let a: Vec<String> = sorted(rows).iter().map(|r| r[1].to_string()).collect();
            assert_eq!(a, (1..=8).map(|i| i.to_string()).collect::<Vec<_>>(), "{policy}: column a");
            let warned =
                ["ADD COLUMN c", "MODIFY a BIGINT", "RENAME COLUMN a TO a2", "DROP COLUMN c", "TRUNCATE TABLE u"]
                    .iter()
                    .filter(|s| err.lines().any(|l| l.contains(*s) && l.contains("schema_changes policy: log")))
                    .count();
            assert_eq!(warned, if policy == "log" { 5 } else { 0 }, "{policy}: warnings\n{err}");
            // Not truncated: every row of u, the ones before the TRUNCATE too.
            assert_eq!(count(&dst, "u"), 5, "{policy}: u keeps its rows");
            // The new table is not copied.
            assert!(Target::Maria.columns(&dst, "n").is_empty(), "{policy}: no table n");
            let new_table =
                err.lines().any(|l| l.contains("a new table matches the selection") && l.contains(&format!("{src}.n")));
            assert_eq!(new_table, policy == "log", "{policy}: warning about the new table\n{err}");
        }
    }
}
